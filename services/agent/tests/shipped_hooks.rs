//! The hooks shipped in deploy/hooks, run by the agent's hook runner against
//! stand-ins for `swanctl` and a service reload: what they write, what they call,
//! and that a failure surfaces with the hook's name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pqescape_agent::hooks::{HookSettings, Outcome, run};
use pqescape_agent::state::PendingHooks;
use zeroize::Zeroizing;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/hooks");

fn pending() -> PendingHooks {
    PendingHooks {
        campaign: "22".repeat(16),
        sequence: 1,
        key_id: 2,
        suite: "x25519-mlkem768".into(),
        ppk_id: "pqescape-c-1-k2".into(),
        ppk: Zeroizing::new("5a".repeat(32)),
        channel_binding: "00".repeat(32),
    }
}

/// A scratch directory with one shipped hook in its hooks/ subdirectory.
fn setup(name: &str, hook: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pqescape-shipped-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("hooks")).unwrap();
    std::fs::copy(Path::new(SHIPPED).join(hook), dir.join("hooks").join(hook)).unwrap();
    dir
}

/// A stand-in command that logs its arguments and exits with `code`.
fn stand_in(dir: &Path, name: &str, code: i32) -> PathBuf {
    let path = dir.join(name);
    let log = dir.join(format!("{name}.log"));
    std::fs::write(&path, format!("#!/bin/sh\necho \"$*\" >> {}\nexit {code}\n", log.display()))
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn settings(dir: &Path, env: &[(&str, String)]) -> HookSettings {
    let env: BTreeMap<_, _> = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    HookSettings { dir: dir.join("hooks"), timeout: Duration::from_secs(20), env }
}

#[tokio::test]
async fn the_strongswan_hook_writes_ml_kem_proposals_and_the_ppk_then_reauthenticates() {
    let dir = setup("swan", "50-strongswan");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let swanctl = stand_in(&dir, "swanctl", 0);
    let env = [
        ("SWANCTL_CONNECTIONS", "site-a site-b".to_owned()),
        ("SWANCTL_CONF_DIR", dir.join("conf.d").display().to_string()),
        ("SWANCTL", swanctl.display().to_string()),
    ];
    let outcome = run(&settings(&dir, &env), "c-1", &pending()).await;
    assert_eq!(outcome, Outcome::Succeeded { ran: 1 });

    let conf = dir.join("conf.d").join("pqescape.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    for expected in [
        "site-a {",
        "site-b {",
        "proposals = aes256gcm16-prfsha384-x25519-ke1_mlkem768",
        "ppk_id = pqescape-c-1-k2",
        "ppk_required = yes",
        &format!("secret = 0x{}", "5a".repeat(32)),
        "id = pqescape-c-1-k2",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    let mode = std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the PPK file is private");
    let calls = std::fs::read_to_string(dir.join("swanctl.log")).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        ["--load-all --noprompt", "--rekey --ike site-a --reauth", "--rekey --ike site-b --reauth"]
    );
    let leftovers = std::fs::read_dir(dir.join("conf.d")).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file is left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_strongswan_hook_fails_loudly_on_bad_settings_or_a_failing_swanctl() {
    let dir = setup("swan-fail", "50-strongswan");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let swanctl = stand_in(&dir, "swanctl", 1);
    let conf_dir = ("SWANCTL_CONF_DIR", dir.join("conf.d").display().to_string());
    let tool = ("SWANCTL", swanctl.display().to_string());

    let unset = run(&settings(&dir, &[conf_dir.clone(), tool.clone()]), "c-1", &pending()).await;
    assert_eq!(unset, Outcome::Failed { hook: "50-strongswan".into(), why: "exit 2".into() });
    let injected = ("SWANCTL_CONNECTIONS", "a;reboot".to_owned());
    let bad_name =
        run(&settings(&dir, &[conf_dir.clone(), tool.clone(), injected]), "c-1", &pending()).await;
    assert_eq!(bad_name, Outcome::Failed { hook: "50-strongswan".into(), why: "exit 2".into() });
    assert!(!dir.join("swanctl.log").exists(), "nothing was loaded");

    let good = ("SWANCTL_CONNECTIONS", "site-a".to_owned());
    let refused = run(&settings(&dir, &[conf_dir, tool, good]), "c-1", &pending()).await;
    assert_eq!(refused, Outcome::Failed { hook: "50-strongswan".into(), why: "exit 1".into() });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_tls_hook_sets_the_hybrid_group_reloads_and_restores_on_a_failed_check() {
    let dir = setup("tls", "60-tls-reload");
    let groups = dir.join("pqescape-groups.conf");
    std::fs::write(&groups, "ssl_ecdh_curve X25519;\n").unwrap();
    let reload = stand_in(&dir, "reload", 0);
    let file = ("TLS_GROUPS_FILE", groups.display().to_string());

    let failed_check = [file.clone(), ("TLS_CHECK", "false".to_owned())];
    let outcome = run(&settings(&dir, &failed_check), "c-1", &pending()).await;
    assert_eq!(outcome, Outcome::Failed { hook: "60-tls-reload".into(), why: "exit 3".into() });
    assert_eq!(std::fs::read_to_string(&groups).unwrap(), "ssl_ecdh_curve X25519;\n");

    let ok = [file, ("TLS_CHECK", "true".to_owned()), ("TLS_RELOAD", reload.display().to_string())];
    assert_eq!(run(&settings(&dir, &ok), "c-1", &pending()).await, Outcome::Succeeded { ran: 1 });
    let text = std::fs::read_to_string(&groups).unwrap();
    assert!(text.contains("ssl_ecdh_curve X25519MLKEM768:X25519;"), "{text}");
    assert!(dir.join("reload.log").exists(), "the service was reloaded");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pqescape"))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
