//! Campaigns and crash safety end to end: the orchestrator binary on PostgreSQL
//! and real agent processes on loopback, driven only through the REST API and
//! the agent's command line. A campaign, a drill, an agent offline at fire time;
//! then SIGKILL on either side in the middle of a campaign. Every consumer must
//! end migrated exactly once: key id 2 on both sides, the same PSK on both
//! sides, one sequence number used, no delivery failed, and an audit chain that
//! still verifies.
//!
//! Where the agent binary comes from: Cargo builds, for a package's integration
//! tests, only that package's own binaries, never a dependency's. These tests
//! live with the orchestrator, so the orchestrator binary is always the one just
//! built, and they take `pqescape-agent` from beside it in the same target
//! directory. `cargo test --workspace` (what scripts/test runs) builds every
//! binary of the workspace before it runs any test; for this package alone, run
//! `cargo build -p pqescape-agent` first. A missing agent binary, or one older
//! than a source it is built from, fails the test with that advice instead of
//! testing stale code.
//!
//! Where a crash must land at one exact step, a PostgreSQL trigger installed by
//! the test refuses one row change of one consumer: the orchestrator then drops
//! that message exactly as if it had died while recording it, and the test
//! SIGKILLs the process (or the agent) in that state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

#[path = "support/fleet.rs"]
mod fleet;
mod support;

use std::time::Duration;

use fleet::{Fleet, MASTER, until};
use pqescape_orchestrator::secrets::{MasterKey, Purpose};
use serde_json::json;
use sqlx::Row;

/// Time allowed for a campaign, restarts and agent reconnections included.
const LIMIT: Duration = Duration::from_secs(30);

/// Makes the orchestrator's store refuse to move `consumer`'s delivery to `state`.
async fn refuse_transition(fleet: &Fleet, consumer: &str, state: &str) {
    let mut db = fleet.db().await;
    let function = format!(
        "CREATE FUNCTION crash_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.consumer_id = '{consumer}' AND NEW.state = '{state}' THEN \
         RAISE EXCEPTION 'refused by the crash test'; END IF; RETURN NEW; END $$"
    );
    let trigger = "CREATE TRIGGER crash_test_refuse BEFORE UPDATE ON deliveries \
                   FOR EACH ROW EXECUTE FUNCTION crash_test_refuse()";
    for sql in [function.as_str(), trigger] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut db).await.unwrap();
    }
}

/// Removes the refusal of [`refuse_transition`].
async fn allow_transitions(fleet: &Fleet) {
    let mut db = fleet.db().await;
    let sql = "DROP FUNCTION crash_test_refuse() CASCADE";
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut db).await.unwrap();
}

/// Delivery states of `campaign` straight from the database, by consumer id.
async fn delivery_states(fleet: &Fleet, campaign: &str) -> Vec<(String, String)> {
    let mut db = fleet.db().await;
    let sql = "SELECT consumer_id, state FROM deliveries WHERE campaign_id = $1 ORDER BY wave";
    let rows = sqlx::query(sql).bind(campaign).fetch_all(&mut db).await.unwrap();
    rows.iter().map(|r| (r.get("consumer_id"), r.get("state"))).collect()
}

/// The PSK the orchestrator holds for `consumer`, opened with the master key.
async fn orchestrator_psk(fleet: &Fleet, consumer: &str) -> String {
    let mut db = fleet.db().await;
    let row = sqlx::query("SELECT psk_sealed FROM consumers WHERE id = $1")
        .bind(consumer)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get("psk_sealed");
    let psk = MasterKey::from_hex(MASTER).unwrap().open32(Purpose::Psk, consumer, &sealed).unwrap();
    hex::encode(*psk)
}

/// Waits for the campaign to complete; a failed delivery or a pause ends the wait
/// at once, with the progress that shows it.
async fn wait_completed(fleet: &Fleet, campaign: &str) {
    until("the campaign completed", LIMIT, async || {
        let progress = fleet.progress(campaign);
        let failed = progress["deliveries"]["failed"].as_u64().unwrap_or(0);
        assert!(failed == 0 && progress["state"] != "paused", "{progress}");
        progress["state"] == "completed"
    })
    .await;
}

/// Every consumer migrated exactly once, seen from the API, the database, the
/// agents' state files and the audit chain.
async fn assert_each_migrated_once(fleet: &Fleet, campaign: &str) {
    let progress = fleet.progress(campaign);
    let n = fleet.agents.len() as u64;
    assert_eq!(progress["state"], "completed", "{progress}");
    assert_eq!(progress["deliveries"]["migrated"], n, "{progress}");
    assert_eq!(progress["total"], n, "{progress}");
    for agent in &fleet.agents {
        let consumer = fleet.api("GET", &format!("/consumers/{}", agent.id), None);
        assert_eq!(consumer["suite"], "x25519-mlkem768", "{consumer}");
        assert_eq!(consumer["key_id"], 2, "ratcheted once, not twice: {consumer}");
        assert_eq!(consumer["last_sequence"], 1, "one escape issued: {consumer}");

        let state = agent.state_json();
        assert_eq!(state["suite"], "x25519-mlkem768", "agent {}", agent.id);
        assert_eq!(state["psks"][0]["key_id"], 2, "agent {}", agent.id);
        assert_eq!(state["last_sequence"], 1, "agent {}", agent.id);
        assert!(state["pending_escape"].is_null(), "agent {} left an escape open", agent.id);
        let psk = orchestrator_psk(fleet, &agent.id).await;
        assert_eq!(state["psks"][0]["psk"], psk.as_str(), "both sides hold the same new PSK");
    }
    let audit = fleet.api("GET", "/audit/verify", None);
    assert_eq!(audit["valid"], true, "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_fired_through_rest_migrates_every_consumer() {
    let mut fleet = Fleet::enrolled(5).await;
    for i in 0..fleet.agents.len() {
        fleet.run_agent(i);
    }

    // A canary wave first; agents still connecting get their escape on attach.
    let campaign = fleet.fire(&[20, 100]);
    wait_completed(&fleet, &campaign).await;
    assert_each_migrated_once(&fleet, &campaign).await;
    let fleet_summary = fleet.api("GET", "/fleet/summary", None);
    assert!(fleet_summary.to_string().contains("x25519-mlkem768"), "{fleet_summary}");
    fleet.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_fired_through_rest_goes_through_every_step_and_migrates_nobody() {
    let mut fleet = Fleet::enrolled(3).await;
    for i in 0..fleet.agents.len() {
        fleet.run_agent(i);
    }
    let campaign = fleet.fire_plan(&[34, 100], true);
    wait_completed(&fleet, &campaign).await;
    let progress = fleet.progress(&campaign);
    assert_eq!(progress["deliveries"]["drill_passed"], 3, "{progress}");
    assert!(progress["deliveries"]["migrated"].as_u64().unwrap_or(0) == 0, "{progress}");
    for agent in &fleet.agents {
        let consumer = fleet.api("GET", &format!("/consumers/{}", agent.id), None);
        assert_eq!((&consumer["suite"], &consumer["key_id"]), (&json!("classical"), &json!(1)));
        assert_eq!(consumer["last_sequence"], 1, "the drill used a sequence number");
        let state = agent.state_json();
        assert_eq!(
            (&state["suite"], &state["psks"][0]["key_id"]),
            (&json!("classical"), &json!(1))
        );
        assert_eq!(state["last_sequence"], 1, "agent {}", agent.id);
        let psk = orchestrator_psk(&fleet, &agent.id).await;
        assert_eq!(state["psks"][0]["psk"], psk.as_str(), "the PSK is unchanged on both sides");
    }
    fleet.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_offline_when_the_campaign_fires_migrates_when_it_comes_back() {
    let mut fleet = Fleet::enrolled(3).await;
    fleet.run_agent(0);
    fleet.run_agent(1);
    let campaign = fleet.fire(&[100]);
    until("the two online agents migrated", LIMIT, async || {
        fleet.progress(&campaign)["deliveries"]["migrated"] == 2
    })
    .await;
    let progress = fleet.progress(&campaign);
    assert_eq!(progress["state"], "running", "waits for the offline one: {progress}");
    assert_eq!(progress["deliveries"]["pending"], 1, "{progress}");
    fleet.run_agent(2);
    wait_completed(&fleet, &campaign).await;
    assert_each_migrated_once(&fleet, &campaign).await;
    fleet.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_orchestrator_killed_mid_campaign_finishes_it_after_a_restart() {
    let mut fleet = Fleet::enrolled(6).await;
    for i in 0..fleet.agents.len() {
        fleet.run_agent(i);
    }
    // One consumer per wave, in consumer id order: the third one's finished
    // message is lost, as if the orchestrator had died while committing it.
    let mut ids: Vec<String> = fleet.agents.iter().map(|a| a.id.clone()).collect();
    ids.sort();
    let victim = fleet.agents.iter().position(|a| a.id == ids[2]).unwrap();
    refuse_transition(&fleet, &ids[2], "migrated").await;

    let campaign = fleet.fire(&[17, 34, 50, 67, 84, 100]);
    until("the third consumer's agent committed its new PSK", LIMIT, async || {
        fleet.agents[victim].state_json()["psks"][0]["key_id"] == 2
    })
    .await;
    until("the orchestrator holds the exchange open", LIMIT, async || {
        let states = delivery_states(&fleet, &campaign).await;
        states.iter().any(|(id, s)| *id == ids[2] && s == "negotiating")
    })
    .await;
    fleet.kill_orchestrator();

    // What the killed process left behind: the campaign is truly half done.
    let states = delivery_states(&fleet, &campaign).await;
    let migrated = states.iter().filter(|(_, s)| s == "migrated").count();
    let pending = states.iter().filter(|(_, s)| s == "pending").count();
    assert_eq!((migrated, pending), (2, 3), "killed mid-campaign: {states:?}");

    allow_transitions(&fleet).await;
    fleet.restart_orchestrator();
    wait_completed(&fleet, &campaign).await;
    assert_each_migrated_once(&fleet, &campaign).await;
    fleet.shut_down().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_mid_handshake_resumes_it_after_a_restart() {
    let mut fleet = Fleet::enrolled(2).await;
    let victim = fleet.agents[0].id.clone();
    // The orchestrator drops the victim's acknowledgement, so the agent waits in
    // the middle of the handshake with the escape accepted and persisted.
    refuse_transition(&fleet, &victim, "negotiating").await;
    for i in 0..fleet.agents.len() {
        fleet.run_agent(i);
    }
    let campaign = fleet.fire(&[100]);
    until("the victim acknowledged its escape", LIMIT, async || {
        fleet.agents[0].log().contains("escape accepted; acknowledged")
    })
    .await;
    let log = fleet.dir.0.join("orchestrator.log");
    until("the orchestrator received the acknowledgement", LIMIT, async || {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        log.lines().any(|l| l.contains("agent message refused") && l.contains("crash test"))
    })
    .await;
    fleet.agents[0].proc.take().unwrap().sigkill();

    let state = fleet.agents[0].state_json();
    assert!(state["pending_escape"].is_string(), "killed with the escape pending: {state}");
    assert_eq!(
        (state["psks"][0]["key_id"].as_u64(), state["last_sequence"].as_u64()),
        (Some(1), Some(1))
    );

    allow_transitions(&fleet).await;
    fleet.run_agent(0);
    wait_completed(&fleet, &campaign).await;
    assert!(
        fleet.agents[0].log().contains("\"resumed\":true"),
        "the restarted agent resumed the stored escape rather than taking a new one"
    );
    assert_each_migrated_once(&fleet, &campaign).await;
    fleet.shut_down().await;
}
