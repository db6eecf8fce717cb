//! The gRPC admin API over a real socket, against a real PostgreSQL store: the
//! same semantics as REST, with gRPC status codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::HashMap;

use pqescape_orchestrator::clock::now;
use pqescape_orchestrator::grpc::pb;
use pqescape_orchestrator::grpc::pb::audit_client::AuditClient;
use pqescape_orchestrator::grpc::pb::campaigns_client::CampaignsClient;
use pqescape_orchestrator::grpc::pb::consumers_client::ConsumersClient;
use pqescape_orchestrator::server;
use support::*;
use tonic::{Code, Request};

fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

fn register(name: &str, labels: &[(&str, &str)]) -> pb::RegisterConsumerRequest {
    let labels: HashMap<String, String> =
        labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    pb::RegisterConsumerRequest { name: name.into(), labels, token_ttl_secs: None }
}

/// The orchestrator's listeners on loopback, served until [`Served::stop`].
struct Served {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _tls_dir: TempDir,
}

impl Served {
    async fn start(orchestrator: &std::sync::Arc<pqescape_orchestrator::Orchestrator>) -> Self {
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", grpc.local_addr().unwrap());
        let agents = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_dir = TempDir::new();
        let agents_tls =
            pqescape_orchestrator::tls::GatewayTls::load_or_generate(&tls_dir.0, &[]).unwrap();
        let listeners = server::Listeners { http, admin: grpc, agents, agents_tls };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(orchestrator.clone(), listeners, None, async move {
            let _ = stopped.await;
        }));
        Self { url, stop, task, _tls_dir: tls_dir }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn the_admin_api_works_over_grpc_with_proper_status_codes() {
    let db = PgDatabase::create().await;
    let orchestrator = orchestrator(pg_store(&db).await).await;
    let admin = orchestrator.bootstrap_admin().await.unwrap().unwrap();
    let served = Served::start(&orchestrator).await;
    let url = served.url.clone();

    let mut consumers = ConsumersClient::connect(url.clone()).await.unwrap();
    let created = register_edge(&mut consumers, &admin).await;
    assert!(created.enrollment.unwrap().token.starts_with("pqe1."));
    let id = created.consumer.unwrap().id;

    let list = pb::ListConsumersRequest { selector: "env=prod".into(), ..Default::default() };
    let page = consumers.list(authed(list, &admin)).await.unwrap().into_inner();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, id);

    // Status codes: no token, bad input, taken name, unknown id.
    let err = consumers.get(Request::new(pb::ConsumerRef { id: id.clone() })).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = consumers
        .register(authed(register("edge-2", &[("bad key", "v")]), &admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("labels.bad key"), "{}", err.message());
    let err = consumers.register(authed(register("edge-1", &[]), &admin)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = consumers
        .get(authed(pb::ConsumerRef { id: uuid::Uuid::new_v4().to_string() }, &admin))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Campaigns: a plan cannot fire before it is armed; then it can, with confirmation.
    let mut campaigns = CampaignsClient::connect(url.clone()).await.unwrap();
    let plan = pb::CreateCampaignRequest {
        name: "grpc plan".into(),
        selector: "env=prod".into(),
        target_suite: "x25519-mlkem768".into(),
        waves: vec![20, 100],
        deadline: now() + 3600,
        drill: true,
        ..Default::default()
    };
    let c = campaigns.create(authed(plan, &admin)).await.unwrap().into_inner();
    let fire = |confirm: &str| pb::FireRequest { id: c.id.clone(), confirm: confirm.into() };
    let err = campaigns.fire(authed(fire(&c.id), &admin)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let armed = campaigns
        .arm(authed(pb::CampaignRef { id: c.id.clone() }, &admin))
        .await
        .unwrap()
        .into_inner();
    assert!(armed.manifest_digest.is_some());
    let err = campaigns.fire(authed(fire("no"), &admin)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let running = campaigns.fire(authed(fire(&c.id), &admin)).await.unwrap().into_inner();
    assert_eq!(running.state, "running");
    // Its one registered consumer is not enrolled, so nobody is targeted and the
    // engine completes it; the audit log is read once it has said so there (the
    // state changes just before the entry is appended).
    let mut audit = AuditClient::connect(url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let request = pb::ListAuditRequest { after: 0, limit: Some(100) };
        let listed = audit.list(authed(request, &admin)).await.unwrap().into_inner();
        if listed.items.iter().any(|e| e.action == "campaign.complete") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the empty campaign did not complete");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let report =
        audit.verify(authed(pb::VerifyAuditRequest {}, &admin)).await.unwrap().into_inner();
    assert!(report.valid);
    let listed = audit
        .list(authed(pb::ListAuditRequest { after: 0, limit: Some(100) }, &admin))
        .await
        .unwrap()
        .into_inner();
    let actions: Vec<&str> = listed.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions.len(), 6, "bootstrap, register, create, arm, fire, complete: {actions:?}");
    assert!(
        actions.ends_with(&[
            "campaign.create",
            "campaign.arm",
            "campaign.fire",
            "campaign.complete"
        ]),
        "{actions:?}"
    );
    assert_eq!(report.entries, actions.len() as u64);

    served.stop().await;
    db.drop_now().await;
}

/// Registers consumer `edge-1`, labelled `env=prod`, over gRPC.
async fn register_edge(
    consumers: &mut ConsumersClient<tonic::transport::Channel>,
    admin: &str,
) -> pb::RegisterConsumerResponse {
    let request = authed(register("edge-1", &[("env", "prod")]), admin);
    consumers.register(request).await.unwrap().into_inner()
}

/// Enrolls the registered consumer whose one-time token is `token`, as an agent
/// would, through the orchestrator's own enrollment calls.
async fn enroll(orchestrator: &pqescape_orchestrator::Orchestrator, token: &str) {
    use pqescape_message::enrollment::{AgentEnrollment, EnrollmentToken};
    use pqescape_message::types::Suite;
    let token = EnrollmentToken::parse(token).unwrap();
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (agent, hello) = AgentEnrollment::start(token, Suite::X25519MlKem768, &mut rng).unwrap();
    let (accept, session) = orchestrator.enroll_hello(&hello).await.unwrap();
    let (confirm, _, _) = agent.confirm(&accept).unwrap();
    orchestrator.enroll_confirm(&session, &confirm).await.unwrap();
}

#[tokio::test]
async fn a_running_campaign_is_paused_resumed_and_cancelled_over_grpc_by_an_operator_only() {
    let db = PgDatabase::create().await;
    let orchestrator = orchestrator(pg_store(&db).await).await;
    let admin = orchestrator.bootstrap_admin().await.unwrap().unwrap();
    let caller = orchestrator.authenticate(&admin).await.unwrap();
    let (_, viewer) = orchestrator
        .create_api_token(&caller, "wallboard", pqescape_orchestrator::domain::Role::Viewer)
        .await
        .unwrap();
    let served = Served::start(&orchestrator).await;
    let url = served.url.clone();

    // An enrolled consumer whose agent is not connected: the campaign keeps its
    // delivery pending, so it stays running until it is steered.
    let mut consumers = ConsumersClient::connect(url.clone()).await.unwrap();
    let created = register_edge(&mut consumers, &admin).await;
    enroll(&orchestrator, &created.enrollment.unwrap().token).await;

    let mut campaigns = CampaignsClient::connect(url).await.unwrap();
    let plan = pb::CreateCampaignRequest {
        name: "steered".into(),
        selector: "env=prod".into(),
        target_suite: "x25519-mlkem768".into(),
        waves: vec![100],
        deadline: now() + 3600,
        ..Default::default()
    };
    let c = campaigns.create(authed(plan, &admin)).await.unwrap().into_inner();
    let id = || pb::CampaignRef { id: c.id.clone() };
    campaigns.arm(authed(id(), &admin)).await.unwrap();
    let fire = pb::FireRequest { id: c.id.clone(), confirm: c.id.clone() };
    assert_eq!(campaigns.fire(authed(fire, &admin)).await.unwrap().into_inner().state, "running");

    let err = campaigns.pause(authed(id(), &viewer)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "a viewer cannot steer");
    let err = campaigns.resume(authed(id(), &admin)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "only a paused campaign resumes");

    let paused = campaigns.pause(authed(id(), &admin)).await.unwrap().into_inner();
    assert_eq!(paused.state, "paused");
    let resumed = campaigns.resume(authed(id(), &admin)).await.unwrap().into_inner();
    assert_eq!(resumed.state, "running");
    let cancelled = campaigns.cancel(authed(id(), &admin)).await.unwrap().into_inner();
    assert_eq!(cancelled.state, "cancelled");
    assert!(cancelled.finished_at.is_some());
    let err = campaigns.resume(authed(id(), &admin)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a cancelled campaign stays cancelled");
    let stored = orchestrator.store().campaign(&c.id).await.unwrap().unwrap();
    assert_eq!(stored.state.as_str(), "cancelled");

    served.stop().await;
    db.drop_now().await;
}
