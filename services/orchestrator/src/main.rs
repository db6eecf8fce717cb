//! `pqescape-orchestrator`: opens the store, checks the master key, prints where
//! the API is (and, on the very first start, the bootstrap admin token), then
//! serves until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use pqescape_orchestrator::config::{Cli, Config};
use pqescape_orchestrator::secrets::MasterKey;
use pqescape_orchestrator::store::{PgStore, SqliteStore, Store};
use pqescape_orchestrator::tls::GatewayTls;
use pqescape_orchestrator::{Orchestrator, server, telemetry};

/// jemalloc gives back the memory of a connection storm that glibc keeps
/// (docs/performance.md); its settings are in .cargo/config.toml.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load(Cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logs(config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "orchestrator stopped");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn run(config: Config) -> Result<(), BoxError> {
    let shutdown = shutdown_signal();
    let metrics = telemetry::init_metrics();
    metrics::gauge!("pqescape_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let store = open_store(&config).await?;
    let master = master_key(&config, store.backend())?;
    let orchestrator = Arc::new(Orchestrator::start(store, master, config.limits.clone()).await?);

    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let grpc_listener = tokio::net::TcpListener::bind(config.grpc_listen).await?;
    let agent_listener = tokio::net::TcpListener::bind(config.agent_listen).await?;
    let agents_tls = gateway_tls(&config)?;
    let (address, grpc_address) = (listener.local_addr()?, grpc_listener.local_addr()?);
    let agent_address = agent_listener.local_addr()?;
    let backend = orchestrator.store().backend();
    if let Some(secret) = orchestrator.bootstrap_admin().await? {
        // Printed once on the console, never logged: it is a secret.
        announce(&format!("bootstrap admin token (shown once, store it now): {secret}"));
    }
    tracing::info!(listen = %address, grpc = %grpc_address, agents = %agent_address, store = backend, "orchestrator ready");
    if let Some(ca) = agents_tls.ca_file() {
        announce(&format!("agents trust the gateway with --ca-file {}", ca.display()));
    }
    // Last, so that whoever waits for it has everything above.
    announce(&format!(
        "pqescape orchestrator ({backend} store): API at http://{address}/api/v1, \
         gRPC admin at {grpc_address}, agent gateway at https://{agent_address}"
    ));

    let listeners = server::Listeners {
        http: listener,
        admin: grpc_listener,
        agents: agent_listener,
        agents_tls,
    };
    server::serve(orchestrator, listeners, metrics, shutdown).await?;
    tracing::info!("orchestrator stopped cleanly");
    Ok(())
}

/// The operator's gateway certificate, or the one generated under the data directory.
fn gateway_tls(config: &Config) -> Result<GatewayTls, BoxError> {
    match (&config.agent_tls_cert, &config.agent_tls_key) {
        (Some(cert), Some(key)) => Ok(GatewayTls::from_files(cert, key)?),
        _ => {
            let mut names = config.agent_tls_names.clone();
            if !config.agent_listen.ip().is_unspecified() {
                names.push(config.agent_listen.ip().to_string());
            }
            Ok(GatewayTls::load_or_generate(&config.data_dir, &names)?)
        }
    }
}

/// One line on standard output. A closed or full stdout (a supervisor that stopped
/// reading) must not stop the orchestrator, so a failed write is ignored.
fn announce(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

async fn open_store(config: &Config) -> Result<Arc<dyn Store>, BoxError> {
    if let Some(url) = &config.database_url {
        return Ok(Arc::new(PgStore::connect(url, config.max_db_connections).await?));
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let path = config.data_dir.join("pqescape.db");
    tracing::info!(path = %path.display(), "using the embedded store");
    Ok(Arc::new(SqliteStore::open(&path).await?))
}

/// The master key: from its file, from `PQESCAPE_MASTER_KEY`, or, for the embedded
/// store only, generated into the data directory on the first run.
fn master_key(config: &Config, backend: &str) -> Result<MasterKey, BoxError> {
    if let Some(path) = &config.master_key_file {
        return Ok(MasterKey::from_file(path)?);
    }
    if let Ok(hex) = std::env::var("PQESCAPE_MASTER_KEY") {
        return Ok(MasterKey::from_hex(&hex)?);
    }
    if backend != "sqlite" {
        return Err(
            "a shared store needs the master key from --master-key-file or PQESCAPE_MASTER_KEY"
                .into(),
        );
    }
    let path = config.data_dir.join("master.key");
    if path.exists() {
        return Ok(MasterKey::from_file(&path)?);
    }
    let key = MasterKey::generate();
    key.write_new_file(&path)?;
    tracing::warn!(path = %path.display(), "generated a master key; back it up, and keep it apart from the database");
    Ok(key)
}

/// Registers for SIGTERM at once (so a signal that arrives during start-up is not
/// lost), and resolves on SIGTERM or Ctrl-C.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let terminate = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            () = terminate => {},
        }
        tracing::info!("shutdown signal received; finishing requests in flight");
    }
}
