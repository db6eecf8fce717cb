//! Escape campaigns end to end with real agent processes: fired through the admin
//! operations, every targeted agent verifies its escape, acknowledges, completes
//! the hybrid handshake and ratchets; an agent offline at fire time migrates when
//! it comes back; a drill goes through every step and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pqescape_orchestrator::campaign::{CampaignRequest, CampaignState, Transition};
use pqescape_orchestrator::clock::now;
use pqescape_orchestrator::delivery::DeliveryState;
use pqescape_orchestrator::secrets::{MasterKey, Purpose};
use support::*;

/// An agent process, killed if the test ends without stopping it.
struct Agent(Option<Child>);

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run_agent(f: &Fixture, state: &std::path::Path) -> Agent {
    let child = Command::new(env!("CARGO_BIN_EXE_pqescape-agent"))
        .arg("--orchestrator")
        .arg(&f.gateway)
        .arg("--state-dir")
        .arg(state)
        .args(["run", "--log-format", "json"])
        .stderr(Stdio::from(std::fs::File::create(state.with_extension("log")).unwrap()))
        .spawn()
        .unwrap();
    Agent(Some(child))
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

fn state_json(state: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap()
}

/// Registers and enrolls `n` agents; returns (consumer id, state dir) pairs.
async fn enrolled(f: &Fixture, n: usize) -> Vec<(String, std::path::PathBuf)> {
    let mut agents = Vec::new();
    for i in 0..n {
        let (id, token) = f.register(&format!("host-{i}")).await;
        let state = f.dir.join(format!("agent-{i}"));
        assert!(f.agent(&state, &["enroll"], Some(&token)).await.status.success());
        agents.push((id, state));
    }
    agents
}

async fn fire(f: &Fixture, drill: bool, waves: &[u8]) -> String {
    let req: CampaignRequest = serde_json::from_value(serde_json::json!({
        "name": if drill { "drill" } else { "escape" }, "target_suite": "x25519-mlkem768",
        "waves": waves, "deadline": now() + 600, "drill": drill
    }))
    .unwrap();
    let o = &f.orchestrator;
    let c = o.create_campaign(&f.admin, req).await.unwrap();
    o.transition(&f.admin, &c.id, Transition::Arm, None).await.unwrap();
    o.transition(&f.admin, &c.id, Transition::Fire, Some(&c.id)).await.unwrap();
    c.id
}

async fn count(f: &Fixture, campaign: &str, state: DeliveryState) -> u64 {
    let counts = f.orchestrator.store().delivery_counts(campaign).await.unwrap();
    counts.into_iter().find(|(s, _)| *s == state).map(|(_, n)| n).unwrap_or(0)
}

fn stop(mut agent: Agent) {
    let mut child = agent.0.take().unwrap();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_migrates_every_agent_including_one_that_was_offline() {
    let f = fixture().await;
    let agents = enrolled(&f, 3).await;
    let mut running: Vec<Agent> = agents[..2].iter().map(|(_, s)| run_agent(&f, s)).collect();
    eventually("two agents connected", async || f.orchestrator.connections().len() == 2).await;

    // One wave: the offline agent must not hold back the others.
    let campaign = fire(&f, false, &[100]).await;
    eventually("the two online agents migrated", async || {
        count(&f, &campaign, DeliveryState::Migrated).await == 2
    })
    .await;
    running.push(run_agent(&f, &agents[2].1));
    eventually("the late agent migrated too", async || {
        count(&f, &campaign, DeliveryState::Migrated).await == 3
    })
    .await;
    eventually("the campaign completed", async || {
        f.orchestrator.store().campaign(&campaign).await.unwrap().unwrap().state
            == CampaignState::Completed
    })
    .await;

    let master = MasterKey::from_hex(MASTER).unwrap();
    for (id, state) in &agents {
        let c = f.orchestrator.store().consumer(id).await.unwrap().unwrap();
        assert_eq!((c.suite.as_str(), c.key_id), ("x25519-mlkem768", 2), "{id}");
        let s = state_json(state);
        assert_eq!(s["suite"], "x25519-mlkem768");
        assert_eq!(s["psks"][0]["key_id"], 2);
        assert!(s["pending_escape"].is_null());
        let sealed = f.orchestrator.store().consumer_psk(id).await.unwrap().unwrap();
        let psk = master.open32(Purpose::Psk, id, &sealed.sealed).unwrap();
        assert_eq!(s["psks"][0]["psk"], hex::encode(*psk), "both sides ratcheted to the same PSK");
        assert!(s["last_sequence"].as_u64().unwrap() >= 1);
    }
    for child in running {
        stop(child);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_goes_through_every_step_and_changes_nothing() {
    let f = fixture().await;
    let agents = enrolled(&f, 2).await;
    let running: Vec<Agent> = agents.iter().map(|(_, s)| run_agent(&f, s)).collect();
    eventually("agents connected", async || f.orchestrator.connections().len() == 2).await;

    // Two waves: the second opens once the canary has ended.
    let campaign = fire(&f, true, &[50, 100]).await;
    eventually("both drills passed", async || {
        count(&f, &campaign, DeliveryState::DrillPassed).await == 2
    })
    .await;
    for (id, state) in &agents {
        let c = f.orchestrator.store().consumer(id).await.unwrap().unwrap();
        assert_eq!((c.suite.as_str(), c.key_id), ("classical", 1), "a drill migrates nobody");
        let s = state_json(state);
        assert_eq!(
            (s["suite"].as_str(), s["psks"][0]["key_id"].as_u64()),
            (Some("classical"), Some(1))
        );
        assert_eq!(s["last_sequence"], 1, "the sequence still advanced: escapes are never reused");
    }
    for child in running {
        stop(child);
    }
}
