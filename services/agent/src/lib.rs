//! The pqescape agent: the service consumer of the escape protocol.
//!
//! * `config`: the TOML file and its overrides;
//! * `state`: what must survive a crash, written atomically with mode 0600;
//! * `enroll`: PQ-safe enrollment with a one-time token;
//! * `gateway`: the generated client of the orchestrator's agent gateway.
//!
//! The persistent escape channel, hooks and migration come with the campaign engine.

pub mod config;
pub mod enroll;
pub mod gateway;
pub mod state;
