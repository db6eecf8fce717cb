//! A real `pqescape-agent run` process holds an authenticated channel to the
//! gateway: the orchestrator records it as seen, with its version; a PSK that does
//! not match is refused and leaves no trace; SIGTERM stops the agent cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

fn run_agent(f: &Fixture, state: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pqescape-agent"))
        .arg("--orchestrator")
        .arg(&f.gateway)
        .arg("--state-dir")
        .arg(state)
        .args(["run", "--log-format", "json"])
        .stderr(Stdio::from(std::fs::File::create(state.with_extension("log")).unwrap()))
        .spawn()
        .unwrap()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    child.wait().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enrolled_agent_holds_an_authenticated_channel_and_is_seen() {
    let f = fixture().await;
    let (id, token) = f.register("host-run").await;
    let state = f.dir.join("agent");
    assert!(f.agent(&state, &["enroll"], Some(&token)).await.status.success());

    let mut agent = run_agent(&f, &state);
    eventually("the agent is connected", async || f.orchestrator.connections().is_connected(&id))
        .await;
    let c = f.orchestrator.store().consumer(&id).await.unwrap().unwrap();
    assert!(c.last_seen.is_some());
    assert_eq!(
        c.agent_version.as_deref(),
        Some(concat!("pqescape-agent ", env!("CARGO_PKG_VERSION")))
    );

    assert!(sigterm(&mut agent).success(), "SIGTERM stops the agent cleanly");
    eventually("the channel is gone", async || !f.orchestrator.connections().is_connected(&id))
        .await;
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    assert!(log.contains("channel open") && log.contains("agent stopped"), "{log}");
    assert!(!log.contains(&stored_psk(&state)), "the PSK never reaches the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_with_the_wrong_psk_is_refused_and_keeps_retrying() {
    let f = fixture().await;
    let (id, token) = f.register("host-bad").await;
    let state = f.dir.join("agent");
    assert!(f.agent(&state, &["enroll"], Some(&token)).await.status.success());
    let file = state.join("state.json");
    let text =
        std::fs::read_to_string(&file).unwrap().replace(&stored_psk(&state), &"11".repeat(32));
    std::fs::write(&file, text).unwrap();

    let mut agent = run_agent(&f, &state);
    let log_path = state.with_extension("log");
    eventually("the refusal is logged", async || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("refused by the orchestrator")
    })
    .await;
    assert!(!f.orchestrator.connections().is_connected(&id));
    let c = f.orchestrator.store().consumer(&id).await.unwrap().unwrap();
    assert_eq!((c.last_seen, c.agent_version), (None, None), "a refused hello changes nothing");
    assert!(agent.try_wait().unwrap().is_none(), "the agent keeps trying with backoff");
    assert!(sigterm(&mut agent).success());
}
