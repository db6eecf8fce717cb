//! The orchestrator as an operator runs it: a real process on the embedded store,
//! real sockets, JSON logs, SIGTERM. Secrets appear on the console once and in no
//! log line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::TempDir;

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

struct Running {
    child: Child,
    addr: String,
    token: Option<String>,
}

fn start(dir: &TempDir) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pqescape-orchestrator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--agent-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(dir.0.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(dir.0.join("log.jsonl")).unwrap()))
        .spawn()
        .unwrap();
    // The token line, if any, comes first; the address line always comes last.
    let mut token = None;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("orchestrator exited early").unwrap();
        if let Some(t) = line.strip_prefix("bootstrap admin token (shown once, store it now): ") {
            token = Some(t.to_owned());
        }
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    Running { child, addr, token }
}

fn stop(mut r: Running) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &r.child.id().to_string()]).status().unwrap();
    r.child.wait().unwrap()
}

#[test]
fn first_run_prints_a_token_once_logs_no_secret_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new();
    let run = start(&dir);
    let token = run.token.clone().expect("first start prints the bootstrap token");
    assert!(token.starts_with("pqe_"));

    let (status, body) = http(
        &run.addr,
        "POST",
        "/api/v1/consumers",
        Some(&token),
        r#"{"name":"h1","labels":{"env":"prod"}}"#,
    );
    assert_eq!(status, 201, "{body}");
    let enrollment: serde_json::Value = serde_json::from_str(&body).unwrap();
    let enrollment = enrollment["enrollment"]["token"].as_str().unwrap().to_owned();
    assert_eq!(http(&run.addr, "GET", "/api/v1/consumers", Some("pqe_bad"), "").0, 401);
    assert_eq!(http(&run.addr, "GET", "/readyz", None, "").0, 200);
    let (_, metrics) = http(&run.addr, "GET", "/metrics", None, "");
    assert!(metrics.contains("pqescape_http_requests_total"), "{metrics}");
    assert!(stop(run).success(), "SIGTERM is a clean stop");

    let log = std::fs::read_to_string(dir.0.join("log.jsonl")).unwrap();
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(log.contains("stopped cleanly"));
    assert!(!log.contains(&token), "an API token reached the log");
    assert!(!log.contains(&enrollment), "an enrollment token reached the log");
    let key = std::fs::read_to_string(dir.0.join("data/master.key")).unwrap();
    assert!(!log.contains(key.trim()), "the master key reached the log");

    // The second start reuses the key and the store, and prints no new token.
    let again = start(&dir);
    assert!(again.token.is_none());
    assert_eq!(http(&again.addr, "GET", "/api/v1/consumers", Some(&token), "").0, 200);
    assert!(stop(again).success());
}

#[test]
fn a_wrong_master_key_refuses_to_start() {
    let dir = TempDir::new();
    assert!(stop(start(&dir)).success());
    std::fs::write(dir.0.join("other.key"), "11".repeat(32)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pqescape-orchestrator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--agent-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.0.join("data"))
        .arg("--master-key-file")
        .arg(dir.0.join("other.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("master key does not match"));
}
