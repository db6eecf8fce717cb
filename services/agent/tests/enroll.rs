//! A real `pqescape-agent` process enrolls against an orchestrator serving on
//! loopback: the PSK both sides hold matches, the state file is private, and a
//! spent token, a second enrollment or a foreign orchestrator key are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use pqescape_orchestrator::secrets::{MasterKey, Purpose};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_process_enrolls_and_holds_the_same_psk_as_the_orchestrator() {
    let f = fixture().await;
    let (id, token) = f.register("host-a").await;
    let state = f.dir.join("agent-a");

    let out = f.agent(&state, &["enroll"], Some(&token)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    let mode = std::fs::metadata(state.join("state.json")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let sealed = f.orchestrator.store().consumer_psk(&id).await.unwrap().unwrap();
    let psk =
        MasterKey::from_hex(MASTER).unwrap().open32(Purpose::Psk, &id, &sealed.sealed).unwrap();
    assert_eq!(stored_psk(&state), hex::encode(*psk), "both sides hold the same PSK");

    let status = f.agent(&state, &["status"], None).await;
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && shown.contains(&id) && shown.contains("key id 1"),
        "{shown}"
    );
    assert!(!shown.contains(&stored_psk(&state)), "status never prints the PSK");

    // A second enrollment into the same state is refused, and so is the spent token elsewhere.
    let again = f.agent(&state, &["enroll"], Some(&token)).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already enrolled"));
    let other = f.dir.join("agent-b");
    let spent = f.agent(&other, &["enroll"], Some(&token)).await;
    assert!(!spent.status.success());
    assert!(String::from_utf8_lossy(&spent.stderr).contains("refused"));
    assert!(!other.join("state.json").exists(), "nothing written on failure");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_pinning_another_orchestrator_is_refused_before_anything_is_sent_back() {
    let f = fixture().await;
    let (id, token) = f.register("host-c").await;
    // Same token, but pinned to a key this orchestrator does not hold.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[3] = "00".repeat(32);
    let forged_pin = parts.join(".");
    let state = f.dir.join("agent-c");
    let out = f.agent(&state, &["enroll"], Some(&forged_pin)).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did not verify"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!state.join("state.json").exists());
    let c = f.orchestrator.store().consumer(&id).await.unwrap().unwrap();
    assert_eq!(c.state.as_str(), "pending_enrollment", "the orchestrator never got a confirm");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_orchestrator_or_a_bad_token_fail_with_a_clear_message() {
    let dir = std::env::temp_dir().join(format!("pqescape-agent-unreach-{}", rand_suffix()));
    let token = dir.join("t");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&token, "not-a-token").unwrap();
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_pqescape-agent"))
            .args(["--orchestrator", url, "--state-dir"])
            .arg(dir.join("s"))
            .args(["enroll", "--token-file"])
            .arg(&token)
            .output()
            .unwrap()
    };
    let out = run("https://127.0.0.1:1");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed"));

    let key = pqescape_message::sign::OrchestratorSigningKey::from_seed(&[1; 32]).verifying_key();
    let valid = pqescape_message::enrollment::EnrollmentToken::generate(
        &key,
        &mut rand_core::UnwrapErr(getrandom::SysRng),
    );
    std::fs::write(&token, valid.reveal()).unwrap();
    let out = run("https://127.0.0.1:1");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the orchestrator"));
    assert!(!dir.join("s").join("state.json").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
