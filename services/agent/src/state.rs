//! The agent's persistent state: who it is, its PSKs, the last sequence number it
//! accepted, and the orchestrator key it pinned at enrollment.
//!
//! Written atomically: a new file is created beside the old one (mode 0600),
//! written, flushed to disk, renamed over it, and the directory is flushed too.
//! A crash at any point leaves either the old state or the new one, never a mix.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// File name of the state inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// Format version of the state file.
pub const STATE_VERSION: u32 = 1;

/// Failures reading or writing state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// What was being accessed.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The file is not state this version wrote.
    #[error("{path}: not a pqescape agent state file ({detail})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The file is readable by others than its owner.
    #[error("{0}: readable by group or others; it holds the PSK and must be mode 0600")]
    Permissions(PathBuf),
    /// An in-memory state's lock was poisoned by a panic elsewhere.
    #[error("in-memory state poisoned")]
    Poisoned,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_owned(), source }
}

/// A PSK as stored: key id and hex. Redacted in `Debug`, zeroized on drop.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredPsk {
    /// Key id.
    pub key_id: u32,
    /// 32 bytes, hex.
    pub psk: Zeroizing<String>,
}

impl fmt::Debug for StoredPsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredPsk {{ key_id: {}, psk: .. }}", self.key_id)
    }
}

/// Everything the agent must not lose.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentState {
    /// Format version.
    pub version: u32,
    /// This consumer's id (UUID).
    pub consumer_id: String,
    /// The current PSK, and the previous one until the new one has been used (§5.3).
    pub psks: Vec<StoredPsk>,
    /// The suite this consumer runs: the floor under any escape target.
    pub suite: String,
    /// The last escape sequence number accepted and persisted.
    pub last_sequence: u64,
    /// The orchestrator's ML-DSA-65 verifying key, hex, pinned at enrollment.
    pub orchestrator_key: String,
    /// The gateway the agent enrolled with.
    pub orchestrator: String,
    /// The escape accepted (its sequence persisted) whose handshake has not finished,
    /// hex: after a restart the agent resumes it with fresh key shares.
    #[serde(default)]
    pub pending_escape: Option<String>,
    /// Hooks owed for a committed migration (hooks.rs): saved with the new PSK,
    /// cleared once they have run and their outcome is reported.
    #[serde(default)]
    pub pending_hooks: Option<PendingHooks>,
}

/// What the hooks of one migration need. The PPK is as secret as a PSK and lives
/// only in this 0600 file until the hooks have had it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingHooks {
    /// Campaign of the escape, hex.
    pub campaign: String,
    /// Sequence of the escape.
    pub sequence: u64,
    /// Key id of the new PSK, which seals the report.
    pub key_id: u32,
    /// The new suite.
    pub suite: String,
    /// RFC 8784 PPK_ID the PPK is bound to.
    pub ppk_id: String,
    /// The 32-byte PPK, hex.
    pub ppk: Zeroizing<String>,
    /// The context's public channel binding value, hex.
    pub channel_binding: String,
}

impl fmt::Debug for PendingHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingHooks")
            .field("campaign", &self.campaign)
            .field("sequence", &self.sequence)
            .field("key_id", &self.key_id)
            .field("ppk_id", &self.ppk_id)
            .finish_non_exhaustive()
    }
}

impl AgentState {
    /// Reads the state in `dir`, if any; refuses a file others can read.
    pub fn load(dir: &Path) -> Result<Option<Self>, StateError> {
        let path = dir.join(STATE_FILE);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(StateError::Permissions(path));
        }
        let text = Zeroizing::new(fs::read_to_string(&path).map_err(io(&path))?);
        let state: Self = serde_json::from_str(&text)
            .map_err(|e| StateError::Corrupt { path: path.clone(), detail: e.to_string() })?;
        if state.version != STATE_VERSION {
            let detail = format!("version {} (this agent writes {STATE_VERSION})", state.version);
            return Err(StateError::Corrupt { path, detail });
        }
        Ok(Some(state))
    }

    /// Replaces the state in `dir` atomically (see the module docs).
    pub fn save(&self, dir: &Path) -> Result<(), StateError> {
        ensure_private_dir(dir)?;
        let path = dir.join(STATE_FILE);
        let temp = dir.join(format!(".{STATE_FILE}.{}.tmp", std::process::id()));
        let text = Zeroizing::new(
            serde_json::to_string_pretty(self)
                .map_err(|e| StateError::Corrupt { path: path.clone(), detail: e.to_string() })?,
        );
        let _ = fs::remove_file(&temp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io(&temp))?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io(&temp))?;
        drop(file);
        fs::rename(&temp, &path).map_err(io(&path))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
    }
}

/// Where an agent's state lives. The agent keeps it in a private directory
/// ([`StateDir`]); the fleet simulator keeps thousands in memory, running the same
/// protocol code over them.
pub trait StateStore: Send + Sync {
    /// The state, if enrolled.
    fn load(&self) -> Result<Option<AgentState>, StateError>;
    /// Replaces the state; when this returns, it survives a crash.
    fn save(&self, state: &AgentState) -> Result<(), StateError>;
}

/// The state file in a private directory (module docs).
#[derive(Clone, Debug)]
pub struct StateDir(pub PathBuf);

impl StateStore for StateDir {
    fn load(&self) -> Result<Option<AgentState>, StateError> {
        AgentState::load(&self.0)
    }

    fn save(&self, state: &AgentState) -> Result<(), StateError> {
        state.save(&self.0)
    }
}

/// State held in memory only: for simulated agents, which have no crash to survive.
#[derive(Debug, Default)]
pub struct MemoryState(std::sync::Mutex<Option<AgentState>>);

impl MemoryState {
    /// Holding `state`.
    pub fn new(state: AgentState) -> Self {
        Self(std::sync::Mutex::new(Some(state)))
    }
}

impl StateStore for MemoryState {
    fn load(&self) -> Result<Option<AgentState>, StateError> {
        Ok(self.0.lock().map_err(|_| StateError::Poisoned)?.clone())
    }

    fn save(&self, state: &AgentState) -> Result<(), StateError> {
        *self.0.lock().map_err(|_| StateError::Poisoned)? = Some(state.clone());
        Ok(())
    }
}

/// Creates the state directory with mode 0700, or checks an existing one is private.
fn ensure_private_dir(dir: &Path) -> Result<(), StateError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("pqescape-agent-state-{}", getrandom_hex()));
        d.join("state")
    }

    fn getrandom_hex() -> String {
        let mut b = [0u8; 8];
        rand_core::Rng::fill_bytes(&mut rand_core::UnwrapErr(getrandom::SysRng), &mut b);
        hex::encode(b)
    }

    fn state(seq: u64) -> AgentState {
        AgentState {
            version: STATE_VERSION,
            consumer_id: "c".into(),
            psks: vec![StoredPsk { key_id: 1, psk: Zeroizing::new("ab".repeat(32)) }],
            suite: "classical".into(),
            last_sequence: seq,
            orchestrator_key: "00".into(),
            orchestrator: "http://x".into(),
            pending_escape: None,
            pending_hooks: None,
        }
    }

    #[test]
    fn state_round_trips_privately_and_replaces_atomically() {
        let d = dir();
        assert!(AgentState::load(&d).unwrap().is_none());
        state(1).save(&d).unwrap();
        state(2).save(&d).unwrap();
        assert_eq!(AgentState::load(&d).unwrap().unwrap().last_sequence, 2);
        let mode = fs::metadata(d.join(STATE_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let leftovers: Vec<_> = fs::read_dir(&d).unwrap().filter_map(Result::ok).collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
        let _ = fs::remove_dir_all(d.parent().unwrap());
    }

    #[test]
    fn a_state_file_others_can_read_or_that_is_not_state_is_refused() {
        let d = dir();
        state(1).save(&d).unwrap();
        let path = d.join(STATE_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(AgentState::load(&d), Err(StateError::Permissions(_))));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "{}").unwrap();
        assert!(matches!(AgentState::load(&d), Err(StateError::Corrupt { .. })));
        let _ = fs::remove_dir_all(d.parent().unwrap());
    }

    #[test]
    fn debug_output_never_shows_a_psk() {
        assert!(!format!("{:?}", state(1)).contains("abab"));
    }
}
