//! The pqescape agent: the service consumer of the escape protocol.
//!
//! * `config`: the TOML file and its overrides;
//! * `state`: what must survive a crash, written atomically with mode 0600;
//! * `enroll`: PQ-safe enrollment with a one-time token;
//! * `escape`: verify, persist, acknowledge, migrate and report;
//! * `channel`: the persistent, authenticated channel, with backoff and jitter;
//! * `hooks`: the host's executables run after a migration, outcome reported;
//! * `tls`: TLS 1.3 to the gateway, classical before migration and
//!   X25519MLKEM768 alone after it;
//! * `gateway`: the generated client of the orchestrator's agent gateway.

pub mod backoff;
pub mod channel;
pub mod config;
pub mod enroll;
pub mod escape;
pub mod gateway;
pub mod hooks;
pub mod state;
pub mod tls;
