//! Agent configuration: a TOML file, overridden by `PQESCAPE_AGENT_*` environment
//! variables and flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The effective configuration.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// URL of the orchestrator's agent gateway (`https://host:port`).
    #[serde(default = "default_orchestrator")]
    pub orchestrator: String,
    /// PEM file of the CA certificates that may sign the gateway's certificate.
    #[serde(default = "default_ca_file")]
    pub ca_file: PathBuf,
    /// Directory of the state file (created with mode 0700).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Suite of the enrollment key exchange.
    #[serde(default = "default_suite")]
    pub enrollment_suite: String,
    /// Seconds to wait for the orchestrator on each call.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Directory of the hooks run after a migration (docs/hooks.md).
    #[serde(default = "default_hooks_dir")]
    pub hooks_dir: PathBuf,
    /// Seconds each hook may run before it is killed.
    #[serde(default = "default_hook_timeout")]
    pub hook_timeout_secs: u64,
    /// Extra environment variables for every hook (names in upper case).
    #[serde(default)]
    pub hook_env: std::collections::BTreeMap<String, String>,
    /// Once migrated on a classical channel, the agent moves the channel to
    /// X25519MLKEM768 after a random delay of up to this many seconds, so that a
    /// fleet escaping together does not reconnect in one wave.
    #[serde(default = "default_upgrade_spread")]
    pub channel_upgrade_spread_secs: u64,
}

fn default_orchestrator() -> String {
    "https://127.0.0.1:8443".into()
}
fn default_ca_file() -> PathBuf {
    PathBuf::from("/etc/pqescape/gateway-ca.pem")
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/pqescape-agent")
}
fn default_suite() -> String {
    "x25519-mlkem768".into()
}
fn default_timeout() -> u64 {
    30
}
fn default_hooks_dir() -> PathBuf {
    PathBuf::from("/etc/pqescape/hooks.d")
}
fn default_hook_timeout() -> u64 {
    120
}
fn default_upgrade_spread() -> u64 {
    30
}

impl Default for Config {
    fn default() -> Self {
        Self {
            orchestrator: default_orchestrator(),
            ca_file: default_ca_file(),
            state_dir: default_state_dir(),
            enrollment_suite: default_suite(),
            timeout_secs: default_timeout(),
            hooks_dir: default_hooks_dir(),
            hook_timeout_secs: default_hook_timeout(),
            hook_env: std::collections::BTreeMap::new(),
            channel_upgrade_spread_secs: default_upgrade_spread(),
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// How hooks run.
    pub fn hooks(&self) -> crate::hooks::HookSettings {
        crate::hooks::HookSettings {
            dir: self.hooks_dir.clone(),
            timeout: std::time::Duration::from_secs(self.hook_timeout_secs),
            env: self.hook_env.clone(),
        }
    }

    /// Reads `path` if given (a missing default file is not an error), then applies
    /// the overrides.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError(format!("{}: {e}", p.display())))?;
                toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", p.display())))?
            }
            None => Config::default(),
        };
        if let Some(o) = overrides.orchestrator {
            config.orchestrator = o;
        }
        if let Some(d) = overrides.state_dir {
            config.state_dir = d;
        }
        if let Some(f) = overrides.ca_file {
            config.ca_file = f;
        }
        if let Some(d) = overrides.hooks_dir {
            config.hooks_dir = d;
        }
        if let Some(s) = overrides.channel_upgrade_spread_secs {
            config.channel_upgrade_spread_secs = s;
        }
        if let Some(bad) = config.hook_env.keys().find(|k| {
            k.is_empty()
                || k.starts_with("PQESCAPE_")
                || !k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        }) {
            return Err(ConfigError(format!(
                "hook_env: {bad:?} must be upper-case letters, digits and _, not PQESCAPE_*"
            )));
        }
        if !config.orchestrator.starts_with("https://") {
            return Err(ConfigError(format!(
                "orchestrator must be an https:// URL (the agent gateway speaks TLS), not {:?}",
                config.orchestrator
            )));
        }
        if pqescape_message::types::Suite::from_name(&config.enrollment_suite)
            .is_none_or(|s| !s.is_post_quantum())
        {
            return Err(ConfigError(
                "enrollment_suite must be x25519-mlkem768 or x25519-mlkem1024".into(),
            ));
        }
        Ok(config)
    }
}

/// Values given on the command line or in the environment.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Gateway URL.
    pub orchestrator: Option<String>,
    /// State directory.
    pub state_dir: Option<PathBuf>,
    /// CA file.
    pub ca_file: Option<PathBuf>,
    /// Hooks directory.
    pub hooks_dir: Option<PathBuf>,
    /// Longest delay before moving the channel to X25519MLKEM768 after a migration.
    pub channel_upgrade_spread_secs: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_configuration_loads() {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/systemd/agent.toml.example"
        ));
        let c = Config::load(Some(&path), Overrides::default()).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/pqescape-agent"));
    }

    #[test]
    fn overrides_win_and_bad_values_are_refused() {
        let url = |u: &str| Overrides { orchestrator: Some(u.into()), ..Overrides::default() };
        let c = Config::load(None, url("https://o:1")).unwrap();
        assert_eq!(c.orchestrator, "https://o:1");
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/pqescape-agent"));
        assert!(Config::load(None, url("o:1")).is_err());
        // Plain HTTP would hand the channel hello to anyone on the path.
        assert!(Config::load(None, url("http://o:1")).is_err());
        assert!(toml::from_str::<Config>("colour = 1").is_err());
    }
}
