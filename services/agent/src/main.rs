//! `pqescape-agent`: enroll this host with a one-time token, or show its state.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pqescape_agent::config::{Config, Overrides};
use pqescape_agent::enroll::enroll;
use pqescape_agent::state::AgentState;
use zeroize::Zeroizing;

#[derive(Parser, Debug)]
#[command(name = "pqescape-agent", version, about = "The pqescape agent")]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, env = "PQESCAPE_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// URL of the orchestrator's agent gateway.
    #[arg(long, env = "PQESCAPE_AGENT_ORCHESTRATOR")]
    orchestrator: Option<String>,
    /// State directory.
    #[arg(long, env = "PQESCAPE_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// PEM file of the CA certificates that may sign the gateway's certificate.
    #[arg(long, env = "PQESCAPE_AGENT_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Directory of the hooks run after a migration.
    #[arg(long, env = "PQESCAPE_AGENT_HOOKS_DIR")]
    hooks_dir: Option<PathBuf>,
    /// Longest random delay, in seconds, before the channel moves to X25519MLKEM768
    /// after a migration (0: at once).
    #[arg(long, env = "PQESCAPE_AGENT_CHANNEL_UPGRADE_SPREAD_SECS")]
    channel_upgrade_spread_secs: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Enroll with a one-time token, read from a file or from standard input ("-"),
    /// so that it never appears in the process list.
    Enroll {
        /// File holding the token, or "-" for standard input.
        #[arg(long, env = "PQESCAPE_AGENT_TOKEN_FILE")]
        token_file: PathBuf,
    },
    /// Print this agent's identity and state (never its keys).
    Status,
    /// Hold the channel to the orchestrator until SIGTERM or Ctrl-C.
    Run {
        /// Log format: text or json.
        #[arg(long, env = "PQESCAPE_AGENT_LOG_FORMAT", default_value = "text")]
        log_format: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        orchestrator: cli.orchestrator,
        state_dir: cli.state_dir,
        ca_file: cli.ca_file,
        hooks_dir: cli.hooks_dir,
        channel_upgrade_spread_secs: cli.channel_upgrade_spread_secs,
    };
    let config = match Config::load(cli.config.as_deref(), overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match cli.command {
        Command::Enroll { token_file } => {
            let token = match read_token(&token_file) {
                Ok(t) => t,
                Err(e) => return fail(&e),
            };
            match enroll(&config, &token).await {
                Ok(state) => {
                    println!(
                        "enrolled as consumer {} (key id {})",
                        state.consumer_id,
                        key_id(&state)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            }
        }
        Command::Run { log_format } => {
            init_logs(&log_format);
            let shutdown = shutdown_signal();
            tracing::info!(orchestrator = %config.orchestrator, "agent starting");
            pqescape_agent::channel::run(&config, shutdown).await;
            tracing::info!("agent stopped");
            ExitCode::SUCCESS
        }
        Command::Status => match AgentState::load(&config.state_dir) {
            Ok(Some(state)) => {
                println!("consumer {}", state.consumer_id);
                println!(
                    "suite {}; key id {}; last sequence {}",
                    state.suite,
                    key_id(&state),
                    state.last_sequence
                );
                println!("orchestrator {}", state.orchestrator);
                ExitCode::SUCCESS
            }
            Ok(None) => {
                println!("not enrolled (no state in {})", config.state_dir.display());
                ExitCode::from(3)
            }
            Err(e) => fail(&e),
        },
    }
}

fn key_id(state: &AgentState) -> u32 {
    state.psks.iter().map(|p| p.key_id).max().unwrap_or(0)
}

fn read_token(path: &std::path::Path) -> std::io::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = Zeroizing::new(std::fs::read_to_string(path)?);
    }
    Ok(Zeroizing::new(text.trim().to_owned()))
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("pqescape-agent: {e}");
    ExitCode::FAILURE
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Registers for SIGTERM at once and resolves on SIGTERM or Ctrl-C.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let terminate = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            () = terminate => {},
        }
    }
}
