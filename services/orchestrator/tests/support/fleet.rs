//! A fleet of real processes on loopback: the orchestrator binary on its own
//! PostgreSQL database, and `pqescape-agent` processes enrolled and driven the way
//! an operator does it, through the REST API and the agent's command line.
//!
//! Every process is killed when its handle drops, so a failing test leaves none
//! behind; the working directory goes with the [`TempDir`].

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::support::{PgDatabase, TempDir};

/// The master key the orchestrator gets through `PQESCAPE_MASTER_KEY`.
pub const MASTER: &str = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Proc(Option<Child>);

impl Proc {
    /// SIGKILL, then reap: nothing of the process runs after this returns.
    pub fn sigkill(mut self) {
        let mut child = self.0.take().expect("the process is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, then the exit status.
    pub fn sigterm(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("the process is running");
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 50 ms until it holds; panics after `limit`.
pub async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The agent binary, beside the orchestrator binary (see crash.rs on why), checked
/// to be at least as new as every source it is built from.
pub fn agent_binary() -> PathBuf {
    let orchestrator = Path::new(env!("CARGO_BIN_EXE_pqescape-orchestrator"));
    let agent = orchestrator.with_file_name("pqescape-agent");
    let built = std::fs::metadata(&agent).and_then(|m| m.modified()).unwrap_or_else(|_| {
        panic!("{} is missing: run `cargo build -p pqescape-agent`", agent.display())
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for source in ["services/agent", "proto"] {
        if let Some(newer) = newer_than(&root.join(source), built) {
            panic!(
                "{} is older than {}: run `cargo build -p pqescape-agent`",
                agent.display(),
                newer.display()
            );
        }
    }
    agent
}

/// A file under `dir` (sources and manifests, not `tests/`) modified after `time`.
fn newer_than(dir: &Path, time: SystemTime) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && !["tests", "fuzz", "benches", "examples"].iter().any(|n| name == *n) {
            if let Some(found) = newer_than(&path, time) {
                return Some(found);
            }
        } else if ["rs", "proto", "toml"].iter().any(|e| path.extension() == Some(e.as_ref()))
            && entry.metadata().and_then(|m| m.modified()).is_ok_and(|m| m > time)
        {
            return Some(path);
        }
    }
    None
}

/// A free loopback port, for a listener that must come back on the same address.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The orchestrator process and what it printed.
pub struct Orchestrator {
    pub proc: Proc,
    /// host:port of the REST API.
    pub api: String,
    /// The bootstrap admin token, printed on the first start only.
    pub token: Option<String>,
    /// The CA file agents trust, printed when the certificate was generated.
    pub ca_file: Option<PathBuf>,
}

/// Starts the orchestrator binary on `database_url` with its agent gateway on
/// `agent_port`, and waits for the line that says where it listens.
pub fn start_orchestrator(dir: &Path, database_url: &str, agent_port: u16) -> Orchestrator {
    // Appended to, so a restart keeps what the killed process logged.
    let log = OpenOptions::new().create(true).append(true).open(dir.join("orchestrator.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pqescape-orchestrator"))
        .args(["--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--agent-listen")
        .arg(format!("127.0.0.1:{agent_port}"))
        .arg("--data-dir")
        .arg(dir.join("orchestrator"))
        .env("PQESCAPE_DATABASE_URL", database_url)
        .env("PQESCAPE_MASTER_KEY", MASTER)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log.unwrap()))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(Some(child));
    let (mut token, mut ca_file) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(t) = line.strip_prefix("bootstrap admin token (shown once, store it now): ") {
            token = Some(t.to_owned());
        }
        if let Some(ca) = line.strip_prefix("agents trust the gateway with --ca-file ") {
            ca_file = Some(PathBuf::from(ca));
        }
        if let Some(rest) = line.split("API at http://").nth(1) {
            let api = rest.split('/').next().unwrap().to_owned();
            return Orchestrator { proc, api, token, ca_file };
        }
    }
    let log = std::fs::read_to_string(dir.join("orchestrator.log")).unwrap_or_default();
    panic!("the orchestrator exited before it listened:\n{log}");
}

/// One HTTP/1.1 request with a JSON body; returns the status and the JSON answer.
pub fn http(api: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} /api/v1{path} HTTP/1.1\r\nHost: {api}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (_, text) = response.split_once("\r\n\r\n").unwrap_or_default();
    (status, serde_json::from_str(text).unwrap_or(Value::Null))
}

/// One enrolled agent: its consumer id, state directory and process, if running.
pub struct Agent {
    pub id: String,
    pub state: PathBuf,
    pub proc: Option<Proc>,
}

impl Agent {
    /// Its state file, as JSON.
    pub fn state_json(&self) -> Value {
        let text = std::fs::read_to_string(self.state.join("state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Its JSON log so far (standard error, kept across restarts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.with_extension("log")).unwrap_or_default()
    }
}

/// The orchestrator on a database of its own, and `n` agents enrolled through it.
pub struct Fleet {
    /// Dropped with the fleet, even when a test fails.
    db: Option<PgDatabase>,
    db_url: String,
    pub orchestrator: Option<Orchestrator>,
    pub agent_port: u16,
    pub token: String,
    pub ca_file: PathBuf,
    pub agents: Vec<Agent>,
    agent_bin: PathBuf,
    // Last: removed after the processes above are gone.
    pub dir: TempDir,
}

impl Fleet {
    /// Starts the orchestrator, registers `n` consumers through REST and enrolls an
    /// agent for each with its one-time token; the agents are not running yet.
    pub async fn enrolled(n: usize) -> Self {
        let agent_bin = agent_binary();
        let dir = TempDir::new();
        let db = PgDatabase::create().await;
        let agent_port = free_port();
        let db_url = db.url.clone();
        let o = start_orchestrator(&dir.0, &db_url, agent_port);
        let token = o.token.clone().expect("a first start prints the admin token");
        let ca_file = o.ca_file.clone().expect("a first start generates the gateway certificate");
        let mut fleet = Fleet {
            db: Some(db),
            db_url,
            orchestrator: Some(o),
            agent_port,
            token,
            ca_file,
            agents: Vec::new(),
            agent_bin,
            dir,
        };
        for i in 0..n {
            let agent = fleet.enroll(&format!("crash-host-{i}"));
            fleet.agents.push(agent);
        }
        fleet
    }

    /// A REST call that must succeed (2xx); returns the JSON answer.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let api = &self.orchestrator.as_ref().expect("the orchestrator is running").api;
        let (status, answer) = http(api, &self.token, method, path, body);
        assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
        answer
    }

    fn agent_command(&self, state: &Path) -> Command {
        let mut cmd = Command::new(&self.agent_bin);
        cmd.arg("--orchestrator").arg(format!("https://127.0.0.1:{}", self.agent_port));
        cmd.arg("--ca-file").arg(&self.ca_file).arg("--state-dir").arg(state);
        cmd
    }

    fn enroll(&self, name: &str) -> Agent {
        let body = json!({ "name": name, "labels": { "env": "crash" } });
        let registered = self.api("POST", "/consumers", Some(body));
        let id = registered["consumer"]["id"].as_str().unwrap().to_owned();
        let token_file = self.dir.0.join(format!("{name}.token"));
        std::fs::write(&token_file, registered["enrollment"]["token"].as_str().unwrap()).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let state = self.dir.0.join(name);
        let out = self
            .agent_command(&state)
            .arg("enroll")
            .arg("--token-file")
            .arg(&token_file)
            .output()
            .unwrap();
        assert!(out.status.success(), "enroll: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_file(token_file).unwrap();
        Agent { id, state, proc: None }
    }

    /// Starts `pqescape-agent run` for agent `i`, appending JSON logs to its log file.
    pub fn run_agent(&mut self, i: usize) {
        let state = self.agents[i].state.clone();
        let log = OpenOptions::new().create(true).append(true).open(state.with_extension("log"));
        let child = self
            .agent_command(&state)
            .args(["run", "--log-format", "json"])
            .stderr(Stdio::from(log.unwrap()))
            .spawn()
            .unwrap();
        self.agents[i].proc = Some(Proc(Some(child)));
    }

    /// SIGKILLs the orchestrator.
    pub fn kill_orchestrator(&mut self) {
        self.orchestrator.take().expect("the orchestrator is running").proc.sigkill();
    }

    /// Starts the orchestrator again on the same database, data directory and agent
    /// port, so the agents find it at the address they know.
    pub fn restart_orchestrator(&mut self) {
        assert!(self.orchestrator.is_none(), "stop it first");
        let o = start_orchestrator(&self.dir.0, &self.db_url, self.agent_port);
        assert!(o.token.is_none(), "a restart prints no new admin token");
        self.orchestrator = Some(o);
    }

    /// Creates, arms and fires an escape to x25519-mlkem768 over every agent, all
    /// through REST; returns the campaign id.
    pub fn fire(&self, waves: &[u8]) -> String {
        self.fire_plan(waves, false)
    }

    /// [`Self::fire`], as a drill when `drill` is set.
    pub fn fire_plan(&self, waves: &[u8], drill: bool) -> String {
        let deadline = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
        let plan = json!({
            "name": if drill { "end-to-end drill" } else { "end-to-end escape" },
            "selector": "env=crash",
            "target_suite": "x25519-mlkem768",
            "waves": waves,
            "deadline": deadline.as_secs() + 600,
            "drill": drill,
        });
        let id = self.api("POST", "/campaigns", Some(plan))["id"].as_str().unwrap().to_owned();
        let preview = self.api("GET", &format!("/campaigns/{id}/preview"), None);
        assert_eq!(preview["targets"], self.agents.len(), "{preview}");
        self.api("POST", &format!("/campaigns/{id}/arm"), None);
        self.api("POST", &format!("/campaigns/{id}/fire"), Some(json!({ "confirm": id })));
        id
    }

    /// The campaign's progress, through REST.
    pub fn progress(&self, campaign: &str) -> Value {
        self.api("GET", &format!("/campaigns/{campaign}/progress"), None)
    }

    /// A connection to the orchestrator's database, for what REST does not show.
    pub async fn db(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&self.db_url).await.unwrap()
    }

    /// Stops the agents with SIGTERM (each must exit cleanly), then the orchestrator,
    /// and drops the database.
    pub async fn shut_down(mut self) {
        for agent in &mut self.agents {
            if let Some(proc) = agent.proc.take() {
                assert!(proc.sigterm().success(), "agent {} stops cleanly", agent.id);
            }
        }
        if let Some(o) = self.orchestrator.take() {
            assert!(o.proc.sigterm().success(), "the orchestrator stops cleanly");
        }
        if let Some(db) = self.db.take() {
            db.drop_now().await;
        }
    }
}

impl Fleet {
    /// The end of every log, for the report of a failed test.
    fn print_logs(&self) {
        let tail = |path: PathBuf| {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        eprintln!("--- orchestrator log\n{}", tail(self.dir.0.join("orchestrator.log")));
        for agent in &self.agents {
            eprintln!("--- agent {} log\n{}", agent.id, tail(agent.state.with_extension("log")));
        }
    }
}

impl Drop for Fleet {
    /// A test that failed still kills its processes and drops its database; the
    /// drop runs on a runtime of its own, since the test's may be unwinding.
    fn drop(&mut self) {
        self.orchestrator = None;
        if std::thread::panicking() {
            self.print_logs();
        }
        self.agents.clear();
        if let Some(db) = self.db.take() {
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                runtime.unwrap().block_on(db.drop_now());
            });
            let _ = dropped.join();
        }
    }
}
