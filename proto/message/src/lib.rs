//! pqescape-message: the escape protocol of pqescape, with no I/O.
pub mod agent;
pub mod campaign;
pub mod channel;
pub mod context;
pub mod enrollment;
pub mod entropy;
pub mod error;
pub mod freshness;
pub mod kem;
pub mod message;
pub mod orchestrator;
pub mod report;
pub mod schedule;
pub mod secret;
pub mod sign;
pub mod types;
pub mod wire;
