//! The pqescape orchestrator: the service provider of the escape protocol.
//!
//! * `store`: everything that must survive a crash (PostgreSQL or embedded SQLite);
//! * `secrets`: seals what the store must not see in clear, under the master key;
//! * `service`: the orchestrator object, checked against its store at start;
//! * `admin`: the administrator's operations, shared by REST and gRPC;
//! * `enroll`: the orchestrator's side of PQ-safe enrollment; `gateway`: where agents call,
//!   over TLS 1.3 with X25519MLKEM768 offered first (`tls`);
//! * `api`: the REST API (axum) with problem+json errors; `grpc`: the same over gRPC;
//! * `domain`, `audit`, `access`: validation, the audit hash chain, API tokens;
//! * `engine`, `connections`, `recent`: the campaign engine, this replica's agent
//!   channels, and what it wrote a moment ago.

pub mod access;
pub mod admin;
pub mod api;
pub mod audit;
pub mod campaign;
pub mod campaigns;
pub mod clock;
pub mod codec;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod domain;
pub mod engine;
pub mod enroll;
pub mod gateway;
pub mod grpc;
pub mod recent;
pub mod report;
pub mod secrets;
pub mod server;
pub mod service;
pub mod store;
pub mod tally;
pub mod telemetry;
pub mod tls;

pub use service::{Limits, Orchestrator, StartError};
