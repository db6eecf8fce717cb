//! The two binaries as an operator runs them: the floor prints its figures as
//! JSON, and the simulator refuses a run it cannot make with a clear message.
//! (The simulator's campaign runs are in scripts/test and scripts/bench-fleet,
//! against a real orchestrator.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::process::Command;

#[test]
fn the_floor_reports_both_sides_and_the_tls_handshake() {
    let out = Command::new(env!("CARGO_BIN_EXE_pqescape-floor")).arg("20").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rounds"], 20);
    for key in [
        "exchange_orchestrator_us",
        "exchange_agent_us",
        "tls_x25519mlkem768_server_us",
        "tls_x25519mlkem768_client_us",
    ] {
        let v = report[key].as_f64().unwrap_or_else(|| panic!("{key} missing"));
        assert!(v > 1.0, "{key} = {v}: a real handshake takes more than a microsecond");
    }
}

#[test]
fn the_simulator_without_its_token_file_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_pqescape-fleetsim"))
        .args(["--ca-file", "/nonexistent/ca.pem", "--token-file", "/nonexistent/token"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("pqescape-fleetsim: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
