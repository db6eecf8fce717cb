//! The client of the orchestrator's agent gateway (proto/agent.proto).

/// Code generated from proto/agent.proto.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used)]
pub mod pb {
    tonic::include_proto!("pqescape.agent.v1");
}
