//! Hooks: the host's own executables, run after a migration so that the services
//! on it (an IKEv2 daemon, a TLS server) move to the new post-quantum context.
//!
//! Every regular executable file in the hooks directory runs once, in name order,
//! with a cleared environment holding only the documented variables (docs/hooks.md)
//! and the operator's extra ones; the RFC 8784 PPK arrives on standard input, never
//! in argv or the environment. Each hook has a timeout, after which it is killed.
//! The first failure stops the run; its name and exit status are what the agent
//! reports to the orchestrator.
//!
//! The work to do is saved in the state file together with the new PSK, so an
//! agent that crashes between the migration and its hooks runs them when it
//! starts again.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::state::PendingHooks;

/// The `PATH` hooks run with.
pub const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where and how hooks run.
#[derive(Clone, Debug)]
pub struct HookSettings {
    /// Directory of the hooks.
    pub dir: PathBuf,
    /// Time each hook may take.
    pub timeout: Duration,
    /// Extra variables the operator hands to every hook.
    pub env: BTreeMap<String, String>,
}

impl HookSettings {
    /// No hooks at all: an empty directory path is never read.
    pub fn none() -> Self {
        Self { dir: PathBuf::new(), timeout: Duration::ZERO, env: BTreeMap::new() }
    }
}

/// How a run of the hooks ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every hook exited 0 (possibly none ran).
    Succeeded {
        /// How many ran.
        ran: usize,
    },
    /// One hook failed; those after it did not run.
    Failed {
        /// The hook's file name.
        hook: String,
        /// What happened, for the operator: an exit status, a signal, a timeout.
        why: String,
    },
}

impl Outcome {
    /// Short text for the status report (at most 64 bytes of it are kept).
    pub fn detail(&self) -> String {
        let text = match self {
            Outcome::Succeeded { ran } => format!("hooks ok: {ran}"),
            Outcome::Failed { hook, why } => format!("hook {hook}: {why}"),
        };
        text.chars().take(64).collect()
    }
}

/// The hooks in `dir`, in name order: regular files with an execute bit, not
/// writable by group or others, and not editor or package-manager leftovers.
/// A missing directory means no hooks.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    if dir.as_os_str().is_empty() {
        return Ok(Vec::new());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut hooks = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with('~') || name.contains(".dpkg-") {
            continue;
        }
        let meta = entry.metadata()?;
        let mode = meta.permissions().mode();
        if !meta.is_file() || mode & 0o111 == 0 {
            continue;
        }
        if mode & 0o022 != 0 {
            tracing::warn!(hook = %name, "hook skipped: writable by group or others");
            continue;
        }
        hooks.push(entry.path());
    }
    hooks.sort();
    Ok(hooks)
}

/// Runs every hook for `pending`; returns how the run ended.
pub async fn run(settings: &HookSettings, consumer_id: &str, pending: &PendingHooks) -> Outcome {
    let hooks = match discover(&settings.dir) {
        Ok(h) => h,
        Err(e) => {
            return Outcome::Failed { hook: "-".into(), why: format!("hooks directory: {e}") };
        }
    };
    for (ran, hook) in hooks.iter().enumerate() {
        let name = hook.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let started = std::time::Instant::now();
        match run_one(settings, hook, consumer_id, pending).await {
            Ok(()) => {
                tracing::info!(hook = %name, elapsed_ms = started.elapsed().as_millis() as u64, "hook succeeded");
            }
            Err(why) => {
                tracing::warn!(hook = %name, why = %why, ran, "hook failed; later hooks not run");
                return Outcome::Failed { hook: name, why };
            }
        }
    }
    Outcome::Succeeded { ran: hooks.len() }
}

async fn run_one(
    settings: &HookSettings,
    hook: &Path,
    consumer_id: &str,
    pending: &PendingHooks,
) -> Result<(), String> {
    let mut command = Command::new(hook);
    command
        .env_clear()
        .envs(&settings.env)
        .env("PATH", HOOK_PATH)
        .env("PQESCAPE_EVENT", "migrated")
        .env("PQESCAPE_CONSUMER_ID", consumer_id)
        .env("PQESCAPE_SUITE", &pending.suite)
        .env("PQESCAPE_KEY_ID", pending.key_id.to_string())
        .env("PQESCAPE_CAMPAIGN_ID", &pending.campaign)
        .env("PQESCAPE_PPK_ID", &pending.ppk_id)
        .env("PQESCAPE_CHANNEL_BINDING", &pending.channel_binding)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let mut child = command.spawn().map_err(|e| format!("cannot start: {e}"))?;
    // The hook leads its own process group (above): its id names the group.
    let group = child.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw);
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its standard input closes it early: not an error.
        let _ = stdin.write_all(format!("{}\n", pending.ppk.as_str()).as_bytes()).await;
    }
    let waited = tokio::time::timeout(settings.timeout, child.wait_with_output()).await;
    let output = match waited {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("wait: {e}")),
        // The whole group goes, so helpers the hook started do not outlive it; the
        // hook itself is also killed when the child handle drops.
        Err(_) => {
            if let Some(group) = group {
                let _ = kill_process_group(group, Signal::KILL);
            }
            return Err(format!("timed out after {:?}", settings.timeout));
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    if output.status.success() {
        return Ok(());
    }
    let status = match output.status.code() {
        Some(code) => format!("exit {code}"),
        None => "killed by a signal".into(),
    };
    if !last.is_empty() {
        tracing::warn!(hook = %hook.display(), stderr = %last, "hook error output");
    }
    Err(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn pending() -> PendingHooks {
        PendingHooks {
            campaign: "11".repeat(16),
            sequence: 3,
            key_id: 2,
            suite: "x25519-mlkem768".into(),
            ppk_id: "pqescape-k2".into(),
            ppk: Zeroizing::new("ab".repeat(32)),
            channel_binding: "cd".repeat(32),
        }
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pqescape-hooks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn hook(dir: &Path, name: &str, body: &str, mode: u32) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn settings(dir: &Path, timeout: Duration) -> HookSettings {
        let env = BTreeMap::from([("SITE".to_owned(), "lab".to_owned())]);
        HookSettings { dir: dir.to_owned(), timeout, env }
    }

    #[tokio::test]
    async fn hooks_run_in_order_with_the_documented_environment_and_the_ppk_on_stdin() {
        let d = dir("env");
        let out = d.join("out");
        let record = format!(
            "env | sort > {o}.$(basename $0); read ppk; echo \"$ppk\" > {o}.ppk.$(basename $0); echo \"$0 $*\" >> {o}.order",
            o = out.display()
        );
        hook(&d, "20-second", &record, 0o700);
        hook(&d, "10-first", &record, 0o755);
        hook(&d, "15-not-executable", "exit 1", 0o644);
        hook(&d, "17-world-writable", "exit 1", 0o777);
        hook(&d, "18-edited~", "exit 1", 0o755);
        let outcome = run(&settings(&d, Duration::from_secs(10)), "c-1", &pending()).await;
        assert_eq!(outcome, Outcome::Succeeded { ran: 2 });
        let order = std::fs::read_to_string(d.join("out.order")).unwrap();
        assert!(order.find("10-first").unwrap() < order.find("20-second").unwrap(), "{order}");
        assert!(!order.contains(&"ab".repeat(32)), "no secret in argv");
        let env = std::fs::read_to_string(d.join("out.10-first")).unwrap();
        for expected in [
            "PQESCAPE_EVENT=migrated",
            "PQESCAPE_CONSUMER_ID=c-1",
            "PQESCAPE_SUITE=x25519-mlkem768",
            "PQESCAPE_KEY_ID=2",
            "PQESCAPE_PPK_ID=pqescape-k2",
            "SITE=lab",
        ] {
            assert!(env.lines().any(|l| l == expected), "{expected} missing in\n{env}");
        }
        assert!(!env.contains(&"ab".repeat(32)), "no secret in the environment");
        assert!(!env.contains("HOME="), "the agent's own environment is not inherited");
        let ppk = std::fs::read_to_string(d.join("out.ppk.10-first")).unwrap();
        assert_eq!(ppk.trim(), "ab".repeat(32));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn the_first_failure_stops_the_run_and_names_the_hook() {
        let d = dir("fail");
        hook(&d, "10-ok", "exit 0", 0o755);
        hook(&d, "20-broken", "echo 'swanctl: connection refused' >&2; exit 3", 0o755);
        hook(&d, "30-never", &format!("touch {}", d.join("ran").display()), 0o755);
        let outcome = run(&settings(&d, Duration::from_secs(10)), "c-1", &pending()).await;
        assert_eq!(outcome, Outcome::Failed { hook: "20-broken".into(), why: "exit 3".into() });
        assert_eq!(outcome.detail(), "hook 20-broken: exit 3");
        assert!(!d.join("ran").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_hook_that_hangs_is_killed_at_its_timeout() {
        let d = dir("hang");
        hook(&d, "10-hang", "exec sleep 30", 0o755);
        let started = std::time::Instant::now();
        let outcome = run(&settings(&d, Duration::from_millis(300)), "c-1", &pending()).await;
        assert_eq!(
            outcome,
            Outcome::Failed { hook: "10-hang".into(), why: "timed out after 300ms".into() }
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn a_timed_out_hook_takes_the_helpers_it_started_with_it() {
        let d = dir("helpers");
        let pid_file = d.join("helper.pid");
        hook(&d, "10-spawns", &format!("sleep 30 & echo $! > {}; wait", pid_file.display()), 0o755);
        let outcome = run(&settings(&d, Duration::from_millis(500)), "c-1", &pending()).await;
        assert!(matches!(outcome, Outcome::Failed { .. }), "{outcome:?}");
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
        // Gone, or a zombie waiting for init to reap it: either way no longer running.
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z'))
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while running() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!running(), "the hook's helper {pid} outlived its timeout");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[tokio::test]
    async fn no_directory_means_no_hooks() {
        let s = settings(Path::new("/nonexistent/pqescape-hooks"), Duration::from_secs(1));
        assert_eq!(run(&s, "c-1", &pending()).await, Outcome::Succeeded { ran: 0 });
    }
}
