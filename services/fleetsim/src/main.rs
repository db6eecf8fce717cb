//! `pqescape-fleetsim`: many virtual agents in one process against a real
//! orchestrator, and how fast a campaign escapes them all.
//!
//! It registers and enrolls N consumers (gRPC admin API, then the agent's own
//! enrollment), connects every online one over its own TLS channel, fires a
//! campaign at them (or waits for one an operator fires), shows progress, and
//! prints a summary: escapes per second, fire-to-escape percentiles, failures by
//! reason, the orchestrator's CPU and memory (with `--orchestrator-pid`) and the
//! rows its store wrote (with `--database-url`). docs/performance.md has the
//! benchmark built on it.

mod admin;
mod fleet;
mod procstat;
mod report;
mod rest;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use pqescape_agent::channel::{ChannelSettings, run_with};
use pqescape_agent::hooks::HookSettings;
use pqescape_message::types::Suite;

use crate::admin::Admin;
use crate::fleet::{Behaviour, Mix, SimState, Tally};
use crate::report::Summary;
use crate::rest::Rest;

#[derive(Parser, Debug)]
#[command(name = "pqescape-fleetsim", version, about = "Simulates a fleet of pqescape agents")]
struct Cli {
    /// The orchestrator's HTTP API (for /metrics and campaign progress).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The orchestrator's gRPC admin API.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    grpc: String,
    /// The agent gateway.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    gateway: String,
    /// CA file for the gateway's certificate.
    #[arg(long)]
    ca_file: PathBuf,
    /// File holding an admin API token (never on the command line).
    #[arg(long, env = "PQESCAPE_FLEETSIM_TOKEN_FILE")]
    token_file: PathBuf,
    /// Consumers to simulate.
    #[arg(long, default_value_t = 100)]
    consumers: usize,
    /// Share of agents that never connect.
    #[arg(long, default_value_t = 0.0)]
    offline: f64,
    /// Share of agents that pause before each answer.
    #[arg(long, default_value_t = 0.0)]
    slow: f64,
    /// Share of agents that refuse the escape.
    #[arg(long, default_value_t = 0.0)]
    failing: f64,
    /// How long a slow agent pauses, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    slow_ms: u64,
    /// Seed that decides which agents are offline, slow or failing.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fire a drill instead of a migration.
    #[arg(long)]
    drill: bool,
    /// Wave sizes, cumulative percentages (e.g. 10,100).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    waves: Vec<u32>,
    /// Longest random delay before an agent that migrated moves its channel to
    /// X25519MLKEM768, as the agent's `channel_upgrade_spread_secs`.
    #[arg(long, default_value_t = 30)]
    upgrade_spread_secs: u64,
    /// Escapes in flight at once.
    #[arg(long, default_value_t = 100_000)]
    max_in_flight: u32,
    /// Do not fire: wait for a campaign fired by someone else at this run's label.
    #[arg(long)]
    wait: bool,
    /// The run's label value (consumers carry `fleetsim=LABEL`); several simulators
    /// given the same one form one fleet, each against its own orchestrator
    /// replica (scripts/bench-fleet-replicas). Default: from the seed and the pid.
    #[arg(long)]
    run_label: Option<String>,
    /// Concurrent registrations and enrollments while setting up.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Give up after this many seconds from fire.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// The orchestrator's process id, to report its CPU and memory.
    #[arg(long)]
    orchestrator_pid: Option<u32>,
    /// The orchestrator's PostgreSQL, to count the rows its store writes.
    #[arg(long, env = "PQESCAPE_FLEETSIM_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A run with no new escape for this long has stalled: stop and report.
const STALL: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PQESCAPE_FLEETSIM_LOG")
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(summary) if summary.escaped + summary.failures.values().sum::<u64>() as usize > 0 => {
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("pqescape-fleetsim: no consumer escaped");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("pqescape-fleetsim: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<Summary, BoxError> {
    let token = std::fs::read_to_string(&cli.token_file)?.trim().to_owned();
    let pid = std::process::id();
    let run_label = cli.run_label.clone().unwrap_or_else(|| format!("s{}-{pid}", cli.seed));
    let admin = Admin::connect(&cli.grpc, &token).await?;
    let rest = Rest::new(&cli.api, &token);
    let mix = Mix { offline: cli.offline, slow: cli.slow, failing: cli.failing };
    let settings = ChannelSettings {
        orchestrator: cli.gateway.clone(),
        ca_file: cli.ca_file.clone(),
        timeout: Duration::from_secs(30),
        hooks: HookSettings::none(),
        pace: None,
        upgrade_spread: Duration::from_secs(cli.upgrade_spread_secs),
    };

    // Set-up: register and enroll, a few at a time.
    let started = Instant::now();
    eprint!("enrolling {} consumers (fleetsim={run_label})...", cli.consumers);
    let tally = Arc::new(Tally::default());
    let enrolled: Vec<Result<(Behaviour, Arc<SimState>), BoxError>> =
        futures::stream::iter(0..cli.consumers)
            .map(|i| {
                let (admin, settings, tally, label) =
                    (admin.clone(), settings.clone(), tally.clone(), run_label.clone());
                async move {
                    let name = format!("sim-{label}-{pid}-{i:06}");
                    let token = admin.register(&name, &label).await?;
                    let mut state = pqescape_agent::enroll::enroll_with(
                        &settings,
                        Suite::X25519MlKem768,
                        &token,
                    )
                    .await?;
                    let behaviour = mix.behaviour(cli.seed, i);
                    if behaviour == Behaviour::Failing {
                        state.suite = Suite::X25519MlKem1024.name().into();
                    }
                    Ok((behaviour, Arc::new(SimState::new(state, tally))))
                }
            })
            .buffer_unordered(cli.concurrency.max(1))
            .collect()
            .await;
    let fleet: Vec<(Behaviour, Arc<SimState>)> = enrolled.into_iter().collect::<Result<_, _>>()?;
    eprintln!(" done in {:.1} s", started.elapsed().as_secs_f64());

    // Connect the online ones, and measure what they cost the orchestrator idle.
    let before = cli.orchestrator_pid.and_then(procstat::sample);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut online = 0;
    for (behaviour, state) in &fleet {
        if *behaviour == Behaviour::Offline {
            continue;
        }
        online += 1;
        let mut settings = settings.clone();
        if *behaviour == Behaviour::Slow {
            settings.pace = Some(Duration::from_millis(cli.slow_ms));
        }
        let (state, mut stopped) = (state.clone(), stopped.clone());
        tokio::spawn(async move {
            run_with(&settings, state, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        });
    }
    eprint!("connecting {online} agents...");
    // However long a loaded machine takes, as long as agents keep connecting.
    let (mut connected, mut progressed) = (0, Instant::now());
    while connected < online as u64 {
        let now_connected = rest.connected_agents().await?;
        if now_connected > connected {
            (connected, progressed) = (now_connected, Instant::now());
        } else if progressed.elapsed() > STALL {
            let stalled = STALL.as_secs();
            return Err(
                format!("{connected} of {online} agents connected, none in {stalled} s").into()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(" connected");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = cli.orchestrator_pid.and_then(procstat::sample);
    let rows_before = match &cli.database_url {
        Some(url) => Some(admin::rows_written(url).await?),
        None => None,
    };

    // Fire (or wait), then follow until every online, non-failing agent is done.
    let campaign = if cli.wait {
        eprintln!("waiting for a campaign with selector fleetsim={run_label}");
        None
    } else {
        let deadline_secs = cli.timeout_secs + 60;
        let id = admin
            .create_and_arm(&run_label, cli.drill, &cli.waves, cli.max_in_flight, deadline_secs)
            .await?;
        Some(id)
    };
    let cpu_at_fire = cli.orchestrator_pid.and_then(procstat::sample);
    let (sim_at_fire, machine_at_fire) =
        (procstat::sample(std::process::id()), procstat::machine_busy_seconds());
    let fired = Instant::now();
    if let Some(id) = &campaign {
        admin.fire(id).await?;
    }
    let expected =
        fleet.iter().filter(|(b, _)| matches!(b, Behaviour::Normal | Behaviour::Slow)).count();
    let failing = fleet.iter().filter(|(b, _)| *b == Behaviour::Failing).count();
    let give_up = fired + Duration::from_secs(cli.timeout_secs);
    let (mut last_ended, mut last_change) = (0, Instant::now());
    loop {
        let ended = tally.ended.load(Ordering::Relaxed);
        // A simulator that waits for someone else's campaign may wait long: its
        // stall clock starts with the first escape.
        if ended != last_ended || (cli.wait && ended == 0) {
            (last_ended, last_change) = (ended, Instant::now());
        }
        progress(ended, expected, fired.elapsed());
        let failed_seen = match &campaign {
            Some(id) if failing > 0 => failed_count(&rest, id).await.unwrap_or(0),
            _ => 0,
        };
        if ended >= expected && failed_seen >= failing as u64 {
            break;
        }
        if Instant::now() > give_up {
            eprintln!();
            eprintln!("timed out after {} s with {ended} of {expected} escaped", cli.timeout_secs);
            break;
        }
        if last_change.elapsed() > STALL {
            eprintln!();
            eprintln!("no escape for {} s; stopping with {ended} of {expected}", STALL.as_secs());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!();
    let end = cli.orchestrator_pid.and_then(procstat::sample);
    let (sim_end, machine_end) =
        (procstat::sample(std::process::id()), procstat::machine_busy_seconds());
    // Then every migrated agent moves its channel to X25519MLKEM768 (a drill
    // changes nothing): how long until the whole fleet is on post-quantum channels,
    // and what the moves cost the orchestrator.
    let upgraded = if cli.drill {
        None
    } else {
        let give_up = Instant::now() + Duration::from_secs(cli.upgrade_spread_secs + 60);
        let mut pq = 0;
        loop {
            // A failed poll (the process out of sockets while agents reconnect, say)
            // is retried on the next tick.
            pq = rest.post_quantum_agents().await.unwrap_or(pq);
            if pq >= online as u64 {
                break Some(fired.elapsed());
            }
            if Instant::now() > give_up {
                eprintln!("{pq} of {online} channels post-quantum; not waiting longer");
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let after_upgrades = upgraded.and(cli.orchestrator_pid).and_then(procstat::sample);

    // The figures.
    let t0 = if cli.wait {
        fleet.iter().filter_map(|(_, s)| s.ended_at()).min().unwrap_or(fired)
    } else {
        fired
    };
    let mut latencies: Vec<Duration> = fleet
        .iter()
        .filter_map(|(_, s)| s.ended_at())
        .map(|t| t.saturating_duration_since(t0))
        .collect();
    latencies.sort();
    let failures = match &campaign {
        Some(id) => failures(&rest, id).await?,
        None => BTreeMap::new(),
    };
    let rows_written = match (&cli.database_url, rows_before) {
        (Some(url), Some(before)) => {
            // PostgreSQL publishes a backend's counts up to a second after its commit.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            Some(admin::rows_written(url).await? - before)
        }
        _ => None,
    };
    let memory_per_agent = match (before, idle) {
        (Some(b), Some(i)) if online > 0 => Some((i.rss as f64 - b.rss as f64) / online as f64),
        _ => None,
    };
    let clock = WallClock::now();
    let mut ended_unix_ms: Vec<f64> =
        fleet.iter().filter_map(|(_, s)| s.ended_at()).map(|t| clock.unix_ms(t)).collect();
    ended_unix_ms.sort_by(f64::total_cmp);
    let summary = Summary {
        consumers: cli.consumers,
        fired_unix_ms: campaign.as_ref().map(|_| clock.unix_ms(fired)),
        ended_unix_ms,
        upgraded_unix_ms: upgraded.map(|d| clock.unix_ms(fired + d)),
        online,
        escaped: latencies.len(),
        latencies,
        failures,
        orchestrator_cpu: cpu_at_fire.zip(end).map(|(a, b)| b.cpu_seconds - a.cpu_seconds),
        simulator_cpu: sim_at_fire.zip(sim_end).map(|(a, b)| b.cpu_seconds - a.cpu_seconds),
        machine_cpu: machine_at_fire.zip(machine_end).map(|(a, b)| b - a),
        channels_upgraded: upgraded,
        orchestrator_cpu_with_upgrades: cpu_at_fire
            .zip(after_upgrades)
            .map(|(a, b)| b.cpu_seconds - a.cpu_seconds),
        orchestrator_peak_rss: end.map(|e| e.peak_rss),
        memory_per_agent,
        rows_written,
    };
    println!("{summary}");
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary.to_json())?)?;
    }
    let _ = stop.send(true);
    Ok(summary)
}

/// Turns the monotonic instants of a run into wall-clock times, so that several
/// simulators' runs can be laid on one time line.
struct WallClock {
    instant: Instant,
    unix_ms: f64,
}

impl WallClock {
    fn now() -> Self {
        let since_epoch =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Self { instant: Instant::now(), unix_ms: since_epoch.as_secs_f64() * 1000.0 }
    }

    /// `t`, an instant before this clock was read, in milliseconds since the epoch.
    fn unix_ms(&self, t: Instant) -> f64 {
        self.unix_ms - self.instant.saturating_duration_since(t).as_secs_f64() * 1000.0
    }
}

/// One line, redrawn: a bar, the count and the elapsed time.
fn progress(done: usize, of: usize, elapsed: Duration) {
    let width = 40;
    let filled = (done.min(of) * width).checked_div(of).unwrap_or(width);
    let bar: String = "#".repeat(filled) + &".".repeat(width - filled);
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r[{bar}] {done}/{of} escaped  {:.1} s", elapsed.as_secs_f64());
    let _ = err.flush();
}

async fn failed_count(rest: &Rest, campaign: &str) -> Result<u64, BoxError> {
    let p = rest.json(&format!("/api/v1/campaigns/{campaign}/progress")).await?;
    let count =
        |s: &str| p.get("deliveries").and_then(|d| d.get(s)).and_then(|v| v.as_u64()).unwrap_or(0);
    Ok(count("failed") + count("expired"))
}

/// Failed and expired deliveries by reason, read page by page.
async fn failures(rest: &Rest, campaign: &str) -> Result<BTreeMap<String, u64>, BoxError> {
    let mut out = BTreeMap::new();
    for state in ["failed", "expired"] {
        let mut after = String::new();
        loop {
            let path =
                format!("/api/v1/campaigns/{campaign}/deliveries?state={state}&limit=500{after}");
            let page = rest.json(&path).await?;
            let items = page.get("items").and_then(|i| i.as_array());
            for item in items.into_iter().flatten() {
                let reason = item.get("reason").and_then(|r| r.as_str()).unwrap_or(state);
                let reason = reason.to_owned();
                *out.entry(reason).or_insert(0) += 1;
            }
            match page.get("next").and_then(|n| n.as_str()) {
                Some(next) => after = format!("&after={next}"),
                None => break,
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_places_earlier_instants_before_its_reading() {
        let earlier = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let clock = WallClock::now();
        let gap = clock.unix_ms - clock.unix_ms(earlier);
        assert!((20.0..1000.0).contains(&gap), "{gap} ms");
        assert!((clock.unix_ms(clock.instant) - clock.unix_ms).abs() < f64::EPSILON);
    }
}
