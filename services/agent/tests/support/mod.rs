//! Shared fixtures: an orchestrator serving on loopback, and the agent binary.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use pqescape_orchestrator::domain::Labels;
use pqescape_orchestrator::secrets::MasterKey;
use pqescape_orchestrator::store::SqliteStore;
use pqescape_orchestrator::{Limits, Orchestrator, server};

pub const MASTER: &str = "4242424242424242424242424242424242424242424242424242424242424242";

pub struct Fixture {
    pub dir: PathBuf,
    pub orchestrator: Arc<Orchestrator>,
    pub gateway: String,
    pub admin: pqescape_orchestrator::admin::Caller,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!(
        "pqescape-agent-it-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("orchestrator.db")).await.unwrap());
    let o = Arc::new(
        Orchestrator::start(store, MasterKey::from_hex(MASTER).unwrap(), Limits::default())
            .await
            .unwrap(),
    );
    let token = o.bootstrap_admin().await.unwrap().unwrap();
    let admin = o.authenticate(&token).await.unwrap();
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (http, grpc, agents) =
        (bind().await.unwrap(), bind().await.unwrap(), bind().await.unwrap());
    let gateway = format!("http://{}", agents.local_addr().unwrap());
    let listeners = server::Listeners { http, admin: grpc, agents };
    tokio::spawn(server::serve(o.clone(), listeners, None, std::future::pending()));
    Fixture { dir, orchestrator: o, gateway, admin }
}

pub fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

impl Fixture {
    pub async fn register(&self, name: &str) -> (String, String) {
        let (c, t) = self
            .orchestrator
            .register_consumer(&self.admin, name, Labels::default(), None)
            .await
            .unwrap();
        (c.id, t.token)
    }

    /// Runs the agent binary; the token goes through a private file, never argv.
    pub async fn agent(&self, state: &Path, args: &[&str], token: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pqescape-agent"));
        cmd.arg("--orchestrator").arg(&self.gateway).arg("--state-dir").arg(state).args(args);
        if let Some(t) = token {
            let file = self.dir.join("token");
            std::fs::write(&file, t).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            cmd.arg("--token-file").arg(&file);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }
}

pub fn stored_psk(state: &Path) -> String {
    let text = std::fs::read_to_string(state.join("state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["psks"][0]["psk"].as_str().unwrap().to_owned()
}
