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
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pqescape_orchestrator::domain::Labels;
use pqescape_orchestrator::secrets::MasterKey;
use pqescape_orchestrator::store::SqliteStore;
use pqescape_orchestrator::tls::GatewayTls;
use pqescape_orchestrator::{Limits, Orchestrator, server};

pub const MASTER: &str = "4242424242424242424242424242424242424242424242424242424242424242";

pub struct Fixture {
    pub dir: PathBuf,
    pub orchestrator: Arc<Orchestrator>,
    pub gateway: String,
    /// The CA the gateway's generated certificate chains to.
    pub ca_file: PathBuf,
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
    let gateway = format!("https://{}", agents.local_addr().unwrap());
    let agents_tls = GatewayTls::load_or_generate(&dir, &[]).unwrap();
    let ca_file = agents_tls.ca_file().unwrap().to_owned();
    let listeners = server::Listeners { http, admin: grpc, agents, agents_tls };
    tokio::spawn(server::serve(o.clone(), listeners, None, std::future::pending()));
    Fixture { dir, orchestrator: o, gateway, ca_file, admin }
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

    /// The agent binary, pointed at this gateway, `state` and its hooks directory
    /// ([`hooks_dir`]).
    pub fn command(&self, state: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pqescape-agent"));
        cmd.arg("--orchestrator").arg(&self.gateway).arg("--ca-file").arg(&self.ca_file);
        cmd.arg("--state-dir").arg(state).arg("--hooks-dir").arg(hooks_dir(state));
        cmd.args(["--channel-upgrade-spread-secs", "0"]);
        cmd
    }

    /// Starts `pqescape-agent run`, logging JSON next to its state directory.
    pub fn spawn_agent(&self, state: &Path) -> Agent {
        let log = std::fs::File::create(state.with_extension("log")).unwrap();
        let child = self
            .command(state)
            .args(["run", "--log-format", "json"])
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        Agent(Some(child))
    }

    /// Runs the agent binary; the token goes through a private file, never argv.
    pub async fn agent(&self, state: &Path, args: &[&str], token: Option<&str>) -> Output {
        let mut cmd = self.command(state);
        cmd.args(args);
        if let Some(t) = token {
            let file = self.dir.join("token");
            std::fs::write(&file, t).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            cmd.arg("--token-file").arg(&file);
        }
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }
}

/// An agent process, killed if the test ends without stopping it.
pub struct Agent(pub Option<Child>);

impl Agent {
    /// Stops the agent with SIGTERM; it must exit cleanly.
    pub fn stop(mut self) {
        let mut child = self.0.take().unwrap();
        assert!(sigterm(&mut child).success());
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.0.as_mut().unwrap().try_wait().unwrap().is_none()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap()
}

/// Polls `check` every 100 ms for up to 30 s.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// The hooks directory of the agent whose state is in `state`.
pub fn hooks_dir(state: &Path) -> PathBuf {
    state.with_extension("hooks")
}

/// Writes an executable shell hook.
pub fn write_hook(state: &Path, name: &str, body: &str) {
    let dir = hooks_dir(state);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn stored_psk(state: &Path) -> String {
    let text = std::fs::read_to_string(state.join("state.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["psks"][0]["psk"].as_str().unwrap().to_owned()
}
