//! The gRPC admin API (proto/admin.proto): the same operations as the REST API,
//! through the same `admin` and `campaigns` functions, so semantics cannot drift.

use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::Orchestrator;
use crate::admin::{AdminError, Caller, page_size};
use crate::campaign::{Campaign, CampaignRequest, Transition};
use crate::domain::{ConsumerState, Invalid, Labels};
use crate::store::{AuditEntry, Consumer, ConsumerQuery};

/// Code generated from proto/admin.proto.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used)]
pub mod pb {
    tonic::include_proto!("pqescape.admin.v1");
}

use pb::audit_server::{Audit, AuditServer};
use pb::campaigns_server::{Campaigns, CampaignsServer};
use pb::consumers_server::{Consumers, ConsumersServer};

/// Largest gRPC message accepted or sent.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// The three admin services, ready for `tonic::transport::Server`.
pub fn services(o: Arc<Orchestrator>) -> tonic::service::Routes {
    let svc = AdminGrpc(o);
    tonic::service::Routes::new(
        ConsumersServer::new(svc.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE),
    )
    .add_service(CampaignsServer::new(svc.clone()).max_decoding_message_size(MAX_MESSAGE))
    .add_service(AuditServer::new(svc).max_decoding_message_size(MAX_MESSAGE))
}

#[derive(Clone)]
struct AdminGrpc(Arc<Orchestrator>);

fn status(e: AdminError) -> Status {
    match e {
        AdminError::Unauthenticated => Status::unauthenticated(e.to_string()),
        AdminError::Forbidden { .. } => Status::permission_denied(e.to_string()),
        AdminError::Invalid(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            Status::invalid_argument(list.join("; "))
        }
        AdminError::NotFound(_) => Status::not_found(e.to_string()),
        AdminError::Exists(_) => Status::already_exists(e.to_string()),
        AdminError::Conflict(_) => Status::failed_precondition(e.to_string()),
        AdminError::Internal(detail) => {
            tracing::error!(error = %detail, "grpc request failed");
            Status::internal("the request could not be completed")
        }
    }
}

fn invalid(i: Invalid) -> Status {
    status(i.into())
}

impl AdminGrpc {
    async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let header = req.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let token = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
        let token = token.ok_or_else(|| status(AdminError::Unauthenticated))?;
        self.0.authenticate(token).await.map_err(status)
    }
}

fn labels(map: std::collections::HashMap<String, String>) -> Result<Labels, Status> {
    Labels::new(map.into_iter().collect::<BTreeMap<_, _>>()).map_err(invalid)
}

fn consumer(c: Consumer) -> pb::Consumer {
    pb::Consumer {
        id: c.id,
        name: c.name,
        labels: c.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        state: c.state.as_str().to_owned(),
        suite: c.suite,
        key_id: c.key_id,
        last_sequence: c.last_sequence,
        last_seen: c.last_seen,
        agent_version: c.agent_version,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

fn campaign(c: Campaign) -> pb::Campaign {
    pb::Campaign {
        id: c.id,
        name: c.spec.name,
        selector: c.spec.selector.to_string(),
        target_suite: c.spec.target_suite.name().to_owned(),
        waves: c.spec.waves.into_iter().map(u32::from).collect(),
        max_in_flight: c.spec.max_in_flight,
        failure_threshold_percent: u32::from(c.spec.failure_threshold_percent),
        deadline: c.spec.deadline,
        drill: c.spec.drill,
        sign_handshakes: c.spec.sign_handshakes,
        directives: c.spec.directives,
        state: c.state.as_str().to_owned(),
        manifest_digest: c.manifest_digest,
        created_by: c.created_by,
        created_at: c.created_at,
        updated_at: c.updated_at,
        armed_at: c.armed_at,
        fired_at: c.fired_at,
        finished_at: c.finished_at,
    }
}

fn audit_entry(e: AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        at: e.at,
        actor: e.actor,
        action: e.action,
        target: e.target,
        detail: e.detail,
        prev_hash: hex::encode(e.prev_hash),
        hash: hex::encode(e.hash),
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Consumers for AdminGrpc {
    async fn register(
        &self,
        req: Request<pb::RegisterConsumerRequest>,
    ) -> Reply<pb::RegisterConsumerResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let (c, token) = self
            .0
            .register_consumer(&caller, &r.name, labels(r.labels)?, r.token_ttl_secs)
            .await
            .map_err(status)?;
        let enrollment = pb::EnrollmentToken { token: token.token, expires_at: token.expires_at };
        Ok(Response::new(pb::RegisterConsumerResponse {
            consumer: Some(consumer(c)),
            enrollment: Some(enrollment),
        }))
    }

    async fn list(
        &self,
        req: Request<pb::ListConsumersRequest>,
    ) -> Reply<pb::ListConsumersResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let state = match r.state.as_deref() {
            None | Some("") => None,
            Some(s) => Some(ConsumerState::parse(s).ok_or_else(|| {
                invalid(Invalid::new("state", "one of pending_enrollment, enrolled, revoked"))
            })?),
        };
        let query = ConsumerQuery {
            selector: r.selector.parse().map_err(invalid)?,
            name_contains: r.name.filter(|n| !n.is_empty()),
            state,
            after: r.after,
            limit: page_size(r.limit).map_err(invalid)?,
            exclude_suite: None,
        };
        let page = self.0.list_consumers(&caller, &query).await.map_err(status)?;
        let items = page.items.into_iter().map(consumer).collect();
        Ok(Response::new(pb::ListConsumersResponse { items, next: page.next }))
    }

    async fn get(&self, req: Request<pb::ConsumerRef>) -> Reply<pb::Consumer> {
        let caller = self.caller(&req).await?;
        let c = self.0.consumer(&caller, &req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(consumer(c)))
    }

    async fn set_labels(&self, req: Request<pb::SetLabelsRequest>) -> Reply<pb::Consumer> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let c = self.0.set_labels(&caller, &r.id, labels(r.labels)?).await.map_err(status)?;
        Ok(Response::new(consumer(c)))
    }

    async fn revoke(&self, req: Request<pb::ConsumerRef>) -> Reply<pb::Consumer> {
        let caller = self.caller(&req).await?;
        let c = self.0.revoke_consumer(&caller, &req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(consumer(c)))
    }

    async fn issue_enrollment_token(
        &self,
        req: Request<pb::IssueTokenRequest>,
    ) -> Reply<pb::EnrollmentToken> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let t = self
            .0
            .issue_enrollment_token(&caller, &r.id, r.token_ttl_secs)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::EnrollmentToken { token: t.token, expires_at: t.expires_at }))
    }
}

fn campaign_request(r: pb::CreateCampaignRequest) -> Result<CampaignRequest, Status> {
    let narrow = |field: &str, v: u32| {
        u8::try_from(v).map_err(|_| invalid(Invalid::new(field, "between 0 and 100")))
    };
    let waves = if r.waves.is_empty() {
        vec![100]
    } else {
        r.waves.into_iter().map(|w| narrow("waves", w)).collect::<Result<_, _>>()?
    };
    Ok(CampaignRequest {
        name: r.name,
        selector: r.selector,
        target_suite: r.target_suite,
        waves,
        max_in_flight: r.max_in_flight.unwrap_or(1000),
        failure_threshold_percent: narrow(
            "failure_threshold_percent",
            r.failure_threshold_percent.unwrap_or(5),
        )?,
        deadline: r.deadline,
        drill: r.drill,
        sign_handshakes: r.sign_handshakes,
        directives: r.directives,
    })
}

impl AdminGrpc {
    async fn step(&self, req: Request<pb::CampaignRef>, t: Transition) -> Reply<pb::Campaign> {
        let caller = self.caller(&req).await?;
        let c = self.0.transition(&caller, &req.into_inner().id, t, None).await.map_err(status)?;
        Ok(Response::new(campaign(c)))
    }
}

#[tonic::async_trait]
impl Campaigns for AdminGrpc {
    async fn create(&self, req: Request<pb::CreateCampaignRequest>) -> Reply<pb::Campaign> {
        let caller = self.caller(&req).await?;
        let request = campaign_request(req.into_inner())?;
        let c = self.0.create_campaign(&caller, request).await.map_err(status)?;
        Ok(Response::new(campaign(c)))
    }

    async fn list(
        &self,
        req: Request<pb::ListCampaignsRequest>,
    ) -> Reply<pb::ListCampaignsResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let limit = page_size(r.limit).map_err(invalid)?;
        let page =
            self.0.list_campaigns(&caller, r.after.as_deref(), limit).await.map_err(status)?;
        let items = page.items.into_iter().map(campaign).collect();
        Ok(Response::new(pb::ListCampaignsResponse { items, next: page.next }))
    }

    async fn get(&self, req: Request<pb::CampaignRef>) -> Reply<pb::Campaign> {
        let caller = self.caller(&req).await?;
        let c = self.0.campaign(&caller, &req.into_inner().id).await.map_err(status)?;
        Ok(Response::new(campaign(c)))
    }

    async fn preview(&self, req: Request<pb::CampaignRef>) -> Reply<pb::CampaignPreview> {
        let caller = self.caller(&req).await?;
        let p = self.0.campaign_preview(&caller, &req.into_inner().id).await.map_err(status)?;
        let sample = p.sample.into_iter().map(consumer).collect();
        Ok(Response::new(pb::CampaignPreview {
            targets: p.targets,
            first_wave: p.first_wave,
            sample,
        }))
    }

    async fn arm(&self, req: Request<pb::CampaignRef>) -> Reply<pb::Campaign> {
        self.step(req, Transition::Arm).await
    }

    async fn fire(&self, req: Request<pb::FireRequest>) -> Reply<pb::Campaign> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let c = self
            .0
            .transition(&caller, &r.id, Transition::Fire, Some(&r.confirm))
            .await
            .map_err(status)?;
        Ok(Response::new(campaign(c)))
    }

    async fn pause(&self, req: Request<pb::CampaignRef>) -> Reply<pb::Campaign> {
        self.step(req, Transition::Pause).await
    }

    async fn resume(&self, req: Request<pb::CampaignRef>) -> Reply<pb::Campaign> {
        self.step(req, Transition::Resume).await
    }

    async fn cancel(&self, req: Request<pb::CampaignRef>) -> Reply<pb::Campaign> {
        self.step(req, Transition::Cancel).await
    }
}

#[tonic::async_trait]
impl Audit for AdminGrpc {
    async fn list(&self, req: Request<pb::ListAuditRequest>) -> Reply<pb::ListAuditResponse> {
        let caller = self.caller(&req).await?;
        let r = req.into_inner();
        let limit = page_size(r.limit).map_err(invalid)?;
        let entries = self.0.audit(&caller, r.after, limit).await.map_err(status)?;
        Ok(Response::new(pb::ListAuditResponse {
            items: entries.into_iter().map(audit_entry).collect(),
        }))
    }

    async fn verify(&self, req: Request<pb::VerifyAuditRequest>) -> Reply<pb::ChainReport> {
        let caller = self.caller(&req).await?;
        let r = self.0.verify_audit(&caller).await.map_err(status)?;
        Ok(Response::new(pb::ChainReport {
            valid: r.valid,
            entries: r.entries,
            first_invalid_seq: r.first_invalid_seq,
        }))
    }
}
