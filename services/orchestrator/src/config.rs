//! Configuration: command line and environment (`PQESCAPE_*`), over an optional
//! TOML file, over defaults. With no database URL the embedded SQLite store in the
//! data directory is used.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

use crate::service::Limits;

/// Command line of `pqescape-orchestrator`. Every flag also reads an environment variable.
#[derive(Parser, Debug, Default)]
#[command(name = "pqescape-orchestrator", version, about = "The pqescape orchestrator")]
pub struct Cli {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "PQESCAPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the HTTP API, dashboard and metrics.
    #[arg(long, env = "PQESCAPE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the gRPC admin API.
    #[arg(long, env = "PQESCAPE_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// Address of the agent gateway.
    #[arg(long, env = "PQESCAPE_AGENT_LISTEN")]
    pub agent_listen: Option<SocketAddr>,
    /// PostgreSQL URL; without it, the embedded SQLite store in the data directory.
    #[arg(long, env = "PQESCAPE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded store and of a generated master key.
    #[arg(long, env = "PQESCAPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// File holding the master key (64 hex digits).
    #[arg(long, env = "PQESCAPE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// PEM certificate chain of the agent gateway; without it, one is generated
    /// with a private CA under the data directory.
    #[arg(long, env = "PQESCAPE_AGENT_TLS_CERT", requires = "agent_tls_key")]
    pub agent_tls_cert: Option<PathBuf>,
    /// PEM private key of the agent gateway's certificate.
    #[arg(long, env = "PQESCAPE_AGENT_TLS_KEY", requires = "agent_tls_cert")]
    pub agent_tls_key: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, env = "PQESCAPE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The file form; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    grpc_listen: Option<SocketAddr>,
    agent_listen: Option<SocketAddr>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    master_key_file: Option<PathBuf>,
    agent_tls_cert: Option<PathBuf>,
    agent_tls_key: Option<PathBuf>,
    #[serde(default)]
    agent_tls_names: Vec<String>,
    log_format: Option<LogFormat>,
    max_db_connections: Option<u32>,
    default_token_ttl_secs: Option<u64>,
    max_token_ttl_secs: Option<u64>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// Agent gateway listen address.
    pub agent_listen: SocketAddr,
    /// PostgreSQL URL, if any.
    pub database_url: Option<String>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Master key file, if given.
    pub master_key_file: Option<PathBuf>,
    /// PEM certificate chain of the agent gateway (generated when absent).
    pub agent_tls_cert: Option<PathBuf>,
    /// PEM private key of the agent gateway.
    pub agent_tls_key: Option<PathBuf>,
    /// Extra names for a generated gateway certificate (DNS names or addresses).
    pub agent_tls_names: Vec<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Pool size towards PostgreSQL.
    pub max_db_connections: u32,
    /// Token limits.
    pub limits: Limits,
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Merges flags and environment over the file over defaults.
    pub fn load(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Limits::default();
        let limits = Limits {
            default_token_ttl_secs: file
                .default_token_ttl_secs
                .unwrap_or(defaults.default_token_ttl_secs),
            max_token_ttl_secs: file.max_token_ttl_secs.unwrap_or(defaults.max_token_ttl_secs),
        };
        if file.agent_tls_cert.is_some() != file.agent_tls_key.is_some() {
            return Err(ConfigError("agent_tls_cert and agent_tls_key go together".into()));
        }
        if limits.default_token_ttl_secs > limits.max_token_ttl_secs {
            return Err(ConfigError("default_token_ttl_secs exceeds max_token_ttl_secs".into()));
        }
        Ok(Self {
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            grpc_listen: cli
                .grpc_listen
                .or(file.grpc_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081))),
            agent_listen: cli
                .agent_listen
                .or(file.agent_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
            database_url: cli.database_url.or(file.database_url).filter(|u| !u.is_empty()),
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("pqescape-data")),
            master_key_file: cli.master_key_file.or(file.master_key_file),
            agent_tls_cert: cli.agent_tls_cert.or(file.agent_tls_cert),
            agent_tls_key: cli.agent_tls_key.or(file.agent_tls_key),
            agent_tls_names: file.agent_tls_names,
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
            max_db_connections: file.max_db_connections.unwrap_or(16),
            limits,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_configuration_loads() {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/systemd/orchestrator.toml.example"
        ));
        let c = Config::load(Cli { config: Some(path), ..Cli::default() }).unwrap();
        assert_eq!(
            (c.listen.port(), c.grpc_listen.port(), c.agent_listen.port()),
            (8080, 8081, 8443)
        );
    }

    #[test]
    fn flags_override_the_file_and_unknown_keys_are_refused() {
        let dir = std::env::temp_dir().join(format!("pqescape-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\n").unwrap();
        let cli = Cli {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            ..Cli::default()
        };
        let c = Config::load(cli).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.log_format, LogFormat::Json);
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        assert!(Config::load(Cli { config: Some(path), ..Cli::default() }).is_err());
    }
}
