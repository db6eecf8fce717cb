//! Serving: the HTTP API, the gRPC admin API and the agent gateway (TLS) on their own
//! listeners, stopped together and gracefully (requests in flight finish) when `shutdown` resolves.

use std::future::Future;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::tls::GatewayTls;
use crate::{Orchestrator, api, gateway, grpc};

/// The three listeners: HTTP (REST, metrics), gRPC admin, agent gateway.
pub struct Listeners {
    /// REST API, enrollment over HTTP, health, metrics.
    pub http: TcpListener,
    /// gRPC admin API.
    pub admin: TcpListener,
    /// Agent gateway.
    pub agents: TcpListener,
    /// The agent gateway's TLS certificate and settings.
    pub agents_tls: GatewayTls,
}

/// Serves until `shutdown` resolves and every server has drained.
pub async fn serve(
    orchestrator: Arc<Orchestrator>,
    listeners: Listeners,
    metrics: Option<PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Listeners { http, admin: grpc_listener, agents, agents_tls } = listeners;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let orchestrator_for_engine = orchestrator.clone();
    let app = api::router(orchestrator.clone(), metrics);
    let http_server = axum::serve(http, app).with_graceful_shutdown(wait(stopped.clone()));
    let grpc_server = tonic::transport::Server::builder()
        .add_routes(grpc::services(orchestrator.clone()))
        .serve_with_incoming_shutdown(TcpListenerStream::new(grpc_listener), wait(stopped.clone()));
    // One listener, two transports (protocol.md §8.5): gRPC for enrollment and
    // Attach, and the framed channel of pqescape agents.
    let incoming = agents_tls.incoming(agents);
    let framed_server =
        gateway::framed::serve(orchestrator.clone(), incoming.framed, stopped.clone());
    let gateway_server = tonic::transport::Server::builder()
        .add_routes(gateway::services(orchestrator))
        .serve_with_incoming_shutdown(incoming.grpc, wait(stopped.clone()));
    tokio::spawn(crate::engine::run(orchestrator_for_engine, stopped));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });

    let (http_result, grpc_result, gateway_result, ()) =
        tokio::join!(http_server, grpc_server, gateway_server, framed_server);
    http_result?;
    grpc_result.map_err(std::io::Error::other)?;
    gateway_result.map_err(std::io::Error::other)
}
