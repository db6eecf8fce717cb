//! Escape campaigns end to end with real agent processes: fired through the admin
//! operations, every targeted agent verifies its escape, acknowledges, completes
//! the hybrid handshake and ratchets; an agent offline at fire time migrates when
//! it comes back; a drill goes through every step and changes nothing; a deadline
//! expires what is left; failures past the threshold pause the campaign; no more
//! escapes are in flight than the campaign's cap allows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use pqescape_orchestrator::campaign::{CampaignRequest, CampaignState, Transition};
use pqescape_orchestrator::clock::now;
use pqescape_orchestrator::delivery::DeliveryState;
use pqescape_orchestrator::secrets::{MasterKey, Purpose};
use support::*;

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
    fire_capped(f, drill, waves, 1000).await
}

async fn fire_capped(f: &Fixture, drill: bool, waves: &[u8], max_in_flight: u32) -> String {
    let req: CampaignRequest = serde_json::from_value(serde_json::json!({
        "name": if drill { "drill" } else { "escape" }, "target_suite": "x25519-mlkem768",
        "waves": waves, "deadline": now() + 600, "drill": drill, "max_in_flight": max_in_flight
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

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_migrates_every_agent_including_one_that_was_offline() {
    let f = fixture().await;
    let agents = enrolled(&f, 3).await;
    let mut running: Vec<Agent> = agents[..2].iter().map(|(_, s)| f.spawn_agent(s)).collect();
    eventually("two agents connected", async || f.orchestrator.connections().len() == 2).await;

    // One wave: the offline agent must not hold back the others.
    let campaign = fire(&f, false, &[100]).await;
    eventually("the two online agents migrated", async || {
        count(&f, &campaign, DeliveryState::Migrated).await == 2
    })
    .await;
    running.push(f.spawn_agent(&agents[2].1));
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
        child.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn once_migrated_the_channel_is_post_quantum_and_a_classical_one_is_refused() {
    let f = fixture().await;
    let agents = enrolled(&f, 1).await;
    let (id, state) = &agents[0];
    let agent = f.spawn_agent(state);
    eventually("the agent connected", async || f.orchestrator.connections().is_connected(id)).await;
    let campaign = fire(&f, false, &[100]).await;
    eventually("the agent migrated", async || {
        count(&f, &campaign, DeliveryState::Migrated).await == 1
    })
    .await;
    let log = state.with_extension("log");
    let opened = |pq: bool| {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("channel open"))
            .any(|l| l.contains(&format!("\"tls.post_quantum\":{pq}")))
    };
    assert!(opened(false), "classical before");
    // Without a restart, the running agent moves its channel to X25519MLKEM768.
    eventually("the channel moved to X25519MLKEM768", async || opened(true)).await;
    eventually("the agent is connected again", async || {
        f.orchestrator.connections().is_connected(id)
    })
    .await;
    let c = f.orchestrator.store().consumer(id).await.unwrap().unwrap();
    assert_eq!((c.suite.as_str(), c.key_id), ("x25519-mlkem768", 2));
    agent.stop();

    // Restarted (its log starts afresh), it offers X25519MLKEM768 alone from the
    // first connection.
    let agent = f.spawn_agent(state);
    eventually("the agent reconnected", async || opened(true)).await;
    assert!(!opened(false), "no classical channel after a restart");
    agent.stop();

    // An agent with the migrated PSK that offers only classical groups (its state
    // edited to look unmigrated) is refused by the gateway, after a valid hello.
    let file = state.join("state.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("\"x25519-mlkem768\"", "\"classical\"")).unwrap();
    let agent = f.spawn_agent(state);
    eventually("the classical channel is refused", async || {
        std::fs::read_to_string(&log).unwrap().contains("refused by the orchestrator")
    })
    .await;
    assert!(!f.orchestrator.connections().is_connected(id));
    drop(agent);
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_run_after_migration_and_a_failure_is_reported_with_the_hook_named() {
    let f = fixture().await;
    let agents = enrolled(&f, 2).await;
    let ((ok_id, ok_state), (bad_id, bad_state)) = (&agents[0], &agents[1]);
    let seen = f.dir.join("hook-env");
    write_hook(
        ok_state,
        "10-record",
        &format!("env > {}; cat > {}.ppk", seen.display(), seen.display()),
    );
    write_hook(bad_state, "10-fine", "exit 0");
    write_hook(bad_state, "20-swanctl", "echo 'cannot load' >&2; exit 4");
    let running: Vec<Agent> = agents.iter().map(|(_, s)| f.spawn_agent(s)).collect();
    eventually("agents connected", async || f.orchestrator.connections().len() == 2).await;
    let campaign = fire(&f, false, &[100]).await;
    let store = f.orchestrator.store();
    eventually("the hook failure is recorded", async || {
        let d = store.delivery(&campaign, bad_id).await.unwrap().unwrap();
        d.reason.is_some_and(|r| r.contains("hook 20-swanctl: exit 4"))
    })
    .await;
    let bad = store.delivery(&campaign, bad_id).await.unwrap().unwrap();
    assert_eq!(bad.state, DeliveryState::Migrated, "the consumer migrated all the same");
    let ok = store.delivery(&campaign, ok_id).await.unwrap().unwrap();
    assert_eq!((ok.state, ok.reason), (DeliveryState::Migrated, None));

    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(env.contains(&format!("PQESCAPE_CONSUMER_ID={ok_id}")), "{env}");
    assert!(env.contains("PQESCAPE_KEY_ID=2") && env.contains("PQESCAPE_SUITE=x25519-mlkem768"));
    let ppk = std::fs::read_to_string(seen.with_extension("ppk")).unwrap();
    assert_eq!(ppk.trim().len(), 64, "a 32-byte PPK arrives on standard input");
    assert!(!env.contains(ppk.trim()), "and never in the environment");
    for (_, state) in &agents {
        assert!(state_json(state)["pending_hooks"].is_null(), "hooks are no longer owed");
    }
    for child in running {
        child.stop();
    }
}

/// A channel that authenticates like the agent of `state` and then never answers:
/// the frames the gateway sends it, and the sender that keeps it open.
async fn silent_channel(
    f: &Fixture,
    id: &str,
    state: &std::path::Path,
) -> (
    tonic::Streaming<pqescape_agent::gateway::pb::GatewayFrame>,
    tokio::sync::mpsc::Sender<pqescape_agent::gateway::pb::AgentFrame>,
) {
    use pqescape_agent::gateway::pb;
    use pqescape_agent::gateway::pb::agent_gateway_client::AgentGatewayClient;
    use pqescape_agent::tls::{self, Groups};
    use pqescape_message::channel::seal_hello;
    use pqescape_message::secret::SecretKey;
    use pqescape_message::types::ConsumerId;

    let s = state_json(state);
    let psk: [u8; 32] =
        hex::decode(s["psks"][0]["psk"].as_str().unwrap()).unwrap().try_into().unwrap();
    let uuid: [u8; 16] = hex::decode(id.replace('-', "")).unwrap().try_into().unwrap();
    let timeout = Duration::from_secs(5);
    let (channel, session) =
        tls::connect(&f.gateway, &f.ca_file, Groups::Classical, timeout).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut client = AgentGatewayClient::new(channel);
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut inbound = client.attach(stream).await.unwrap().into_inner();
    let Some(pb::gateway_frame::Frame::Challenge(challenge)) =
        inbound.message().await.unwrap().unwrap().frame
    else {
        panic!("no challenge")
    };
    let challenge: [u8; 16] = challenge.try_into().unwrap();
    let hello = seal_hello(
        ConsumerId(uuid),
        1,
        &SecretKey::from_bytes(psk),
        challenge,
        "silent",
        &session.binding,
    )
    .unwrap();
    tx.send(pb::AgentFrame { frame: Some(pb::agent_frame::Frame::Message(hello)) }).await.unwrap();
    eventually("the silent channel is up", async || f.orchestrator.connections().is_connected(id))
        .await;
    (inbound, tx)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_escape_left_unanswered_is_sent_again_unchanged() {
    use pqescape_agent::gateway::pb;

    let f = fixture().await;
    let agents = enrolled(&f, 1).await;
    let (id, state) = &agents[0];
    let (mut inbound, _keep) = silent_channel(&f, id, state).await;

    let campaign = fire(&f, false, &[100]).await;
    let mut next_escape = async || loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), inbound.message()).await;
        if let Some(pb::gateway_frame::Frame::Message(bytes)) =
            frame.unwrap().unwrap().unwrap().frame
        {
            return (bytes, std::time::Instant::now());
        }
    };
    let (first, sent) = next_escape().await;
    let (again, resent) = next_escape().await;
    assert_eq!(first, again, "the same escape, not a new one with a new sequence");
    let waited = resent - sent;
    assert!(waited >= Duration::from_secs(4), "sent again only after the backoff ({waited:?})");
    let d = f.orchestrator.store().delivery(&campaign, id).await.unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Sent);
    assert!(d.attempts >= 2, "each send is recorded ({})", d.attempts);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_more_escapes_are_in_flight_than_the_cap_allows() {
    let f = fixture().await;
    let agents = enrolled(&f, 4).await;
    // Two connected when the campaign fires, two attaching after: an escape owed
    // to an agent that attaches counts against the cap too.
    let mut running: Vec<Agent> = agents[..2].iter().map(|(_, s)| f.spawn_agent(s)).collect();
    eventually("agents connected", async || f.orchestrator.connections().len() == 2).await;
    let campaign = fire_capped(&f, false, &[100], 1).await;
    running.extend(agents[2..].iter().map(|(_, s)| f.spawn_agent(s)));
    let mut most = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&f, &campaign, DeliveryState::Migrated).await < 4 {
        let counts = f.orchestrator.store().delivery_counts(&campaign).await.unwrap();
        let in_flight: u64 = counts
            .iter()
            .filter(|(s, _)| {
                matches!(
                    s,
                    DeliveryState::Sent | DeliveryState::Acknowledged | DeliveryState::Negotiating
                )
            })
            .map(|(_, n)| n)
            .sum();
        most = most.max(in_flight);
        assert!(std::time::Instant::now() < deadline, "the capped campaign did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(most, 1, "one escape at a time, and at least one seen in flight");
    for child in running {
        child.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cap_holds_across_sweeps_that_share_one_count() {
    let f = fixture().await;
    let agents = enrolled(&f, 2).await;
    let mut channels = Vec::new();
    for (id, state) in &agents {
        channels.push(silent_channel(&f, id, state).await);
    }
    // Neither agent answers: the first escape stays in flight, and the sweeps of
    // the next seconds, some of them on the same shared count, must not send the
    // second.
    let campaign = fire_capped(&f, false, &[100], 1).await;
    eventually("one escape out", async || count(&f, &campaign, DeliveryState::Sent).await == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        (
            count(&f, &campaign, DeliveryState::Sent).await,
            count(&f, &campaign, DeliveryState::Pending).await
        ),
        (1, 1),
        "the cap of one held"
    );
    drop(channels);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_goes_through_every_step_and_changes_nothing() {
    let f = fixture().await;
    let agents = enrolled(&f, 2).await;
    let running: Vec<Agent> = agents.iter().map(|(_, s)| f.spawn_agent(s)).collect();
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
        child.stop();
    }
}

/// Creates, arms and fires a campaign from `request`, whose fields the admin API
/// would not all accept (a deadline seconds away): the campaign is stored as the
/// API made it, with those fields changed.
async fn fire_adjusted(f: &Fixture, request: serde_json::Value, deadline: i64) -> String {
    let o = &f.orchestrator;
    let req: CampaignRequest = serde_json::from_value(request).unwrap();
    let mut c = o.create_campaign(&f.admin, req).await.unwrap();
    let (a, b) = (rand_suffix(), rand_suffix());
    c.id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        a & 0xffff,
        (a >> 16) & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    );
    c.spec.deadline = deadline;
    o.store().insert_campaign(&c).await.unwrap();
    o.transition(&f.admin, &c.id, Transition::Arm, None).await.unwrap();
    o.transition(&f.admin, &c.id, Transition::Fire, Some(&c.id)).await.unwrap();
    c.id
}

#[tokio::test(flavor = "multi_thread")]
async fn past_its_deadline_a_campaign_expires_what_is_left_and_a_late_agent_stays_put() {
    let f = fixture().await;
    let agents = enrolled(&f, 2).await;
    let online = f.spawn_agent(&agents[0].1);
    eventually("one agent connected", async || f.orchestrator.connections().len() == 1).await;
    let request = serde_json::json!({
        "name": "short", "target_suite": "x25519-mlkem768", "waves": [100],
        "deadline": now() + 600,
    });
    // Long enough for the online agent to migrate on a loaded machine.
    let campaign = fire_adjusted(&f, request, now() + 10).await;
    eventually("the online agent migrated", async || {
        count(&f, &campaign, DeliveryState::Migrated).await == 1
    })
    .await;
    eventually("the offline agent's delivery expired at the deadline", async || {
        count(&f, &campaign, DeliveryState::Expired).await == 1
    })
    .await;
    let c = f.orchestrator.store().campaign(&campaign).await.unwrap().unwrap();
    assert_eq!(c.state, CampaignState::Completed);

    // Back after the deadline, the agent is owed nothing and stays classical.
    let late = f.spawn_agent(&agents[1].1);
    let late_id = &agents[1].0;
    eventually("the late agent connected", async || {
        f.orchestrator.connections().is_connected(late_id)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let consumer = f.orchestrator.store().consumer(late_id).await.unwrap().unwrap();
    assert_eq!((consumer.suite.as_str(), consumer.key_id), ("classical", 1));
    assert_eq!(state_json(&agents[1].1)["suite"], "classical");
    let d = f.orchestrator.store().delivery(&campaign, late_id).await.unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Expired);
    online.stop();
    late.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_past_the_threshold_pause_the_campaign_with_their_reasons() {
    let f = fixture().await;
    let agents = enrolled(&f, 3).await;
    let running: Vec<Agent> = agents[..2].iter().map(|(_, s)| f.spawn_agent(s)).collect();
    eventually("two agents connected", async || f.orchestrator.connections().len() == 2).await;

    // The two online agents first escape to ML-KEM-1024 ...
    let o = &f.orchestrator;
    let req: CampaignRequest = serde_json::from_value(serde_json::json!({
        "name": "to 1024", "target_suite": "x25519-mlkem1024", "waves": [100],
        "deadline": now() + 600,
    }))
    .unwrap();
    let first = o.create_campaign(&f.admin, req).await.unwrap().id;
    o.transition(&f.admin, &first, Transition::Arm, None).await.unwrap();
    o.transition(&f.admin, &first, Transition::Fire, Some(&first)).await.unwrap();
    eventually("two consumers on ML-KEM-1024", async || {
        count(&f, &first, DeliveryState::Migrated).await == 2
    })
    .await;
    o.transition(&f.admin, &first, Transition::Cancel, None).await.unwrap();

    // ... so a campaign to ML-KEM-768 is a downgrade they refuse. Two failures of
    // two attempts pass a 40 % threshold: the engine pauses the campaign before the
    // third consumer is reached.
    let request = serde_json::json!({
        "name": "to 768", "target_suite": "x25519-mlkem768", "waves": [100],
        "deadline": now() + 600, "failure_threshold_percent": 40,
    });
    let second = fire_adjusted(&f, request, now() + 600).await;
    eventually("the campaign paused itself", async || {
        o.store().campaign(&second).await.unwrap().unwrap().state == CampaignState::Paused
    })
    .await;
    eventually("both refusals recorded", async || {
        count(&f, &second, DeliveryState::Failed).await == 2
    })
    .await;
    assert_eq!(count(&f, &second, DeliveryState::Pending).await, 1, "the offline one waits");
    for (id, _) in &agents[..2] {
        let d = o.store().delivery(&second, id).await.unwrap().unwrap();
        assert!(d.reason.as_deref().is_some_and(|r| !r.is_empty()), "{id}: a reason");
        let c = o.store().consumer(id).await.unwrap().unwrap();
        assert_eq!(c.suite, "x25519-mlkem1024", "{id}: no downgrade");
    }
    for child in running {
        child.stop();
    }
}
