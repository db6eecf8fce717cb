//! The agent gateway (proto/agent.proto): where agents reach the orchestrator.
//!
//! For now it carries enrollment; the persistent escape channel joins it with the
//! campaign engine. It is a listener of its own, apart from the admin APIs, so the
//! two can be exposed to different networks.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::Orchestrator;
use crate::enroll::EnrollError;

/// Code generated from proto/agent.proto.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used)]
pub mod pb {
    tonic::include_proto!("pqescape.agent.v1");
}

use pb::agent_gateway_server::{AgentGateway, AgentGatewayServer};

/// Largest message an agent may send: the largest enrollment message is under 2 KiB.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// The gateway service, ready for `tonic::transport::Server`.
pub fn services(o: Arc<Orchestrator>) -> tonic::service::Routes {
    let server = AgentGatewayServer::new(Gateway(o))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(64 * 1024);
    tonic::service::Routes::new(server)
}

struct Gateway(Arc<Orchestrator>);

fn status(e: EnrollError) -> Status {
    metrics::counter!("pqescape_enrollment_failures_total", "kind" => e.kind()).increment(1);
    match e {
        EnrollError::Protocol(p) => {
            tracing::warn!(error.kind = p.kind(), "enrollment message refused");
            Status::invalid_argument(format!("enrollment message refused: {}", p.kind()))
        }
        EnrollError::Token => Status::permission_denied(e.to_string()),
        EnrollError::Internal(detail) => {
            tracing::error!(error = %detail, "enrollment failed");
            Status::internal("the request could not be completed")
        }
    }
}

#[tonic::async_trait]
impl AgentGateway for Gateway {
    async fn enroll_hello(
        &self,
        req: Request<pb::EnrollHelloRequest>,
    ) -> Result<Response<pb::EnrollHelloResponse>, Status> {
        let (accept, session) =
            self.0.enroll_hello(&req.into_inner().hello).await.map_err(status)?;
        Ok(Response::new(pb::EnrollHelloResponse { accept, session }))
    }

    async fn enroll_confirm(
        &self,
        req: Request<pb::EnrollConfirmRequest>,
    ) -> Result<Response<pb::EnrollConfirmResponse>, Status> {
        let r = req.into_inner();
        let consumer_id = self.0.enroll_confirm(&r.session, &r.confirm).await.map_err(status)?;
        tracing::info!(consumer.id = %consumer_id, "consumer enrolled");
        metrics::counter!("pqescape_enrollments_total").increment(1);
        Ok(Response::new(pb::EnrollConfirmResponse { consumer_id }))
    }
}
