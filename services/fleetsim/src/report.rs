//! The summary of a run: rates, latency percentiles, failures, the
//! orchestrator's CPU and memory, store rows.

use std::collections::BTreeMap;
use std::time::Duration;

/// What a run measured.
#[derive(Debug, Default)]
pub struct Summary {
    /// Consumers in the run.
    pub consumers: usize,
    /// When this simulator fired the campaign, ms since the epoch (none if it waited).
    pub fired_unix_ms: Option<f64>,
    /// When each escaped consumer's escape ended, ms since the epoch, sorted.
    pub ended_unix_ms: Vec<f64>,
    /// When every online agent held a post-quantum channel, ms since the epoch.
    pub upgraded_unix_ms: Option<f64>,
    /// Of them, connected.
    pub online: usize,
    /// Of them, whose escape ended in a new context (or a passed drill).
    pub escaped: usize,
    /// From fire to each escaped consumer's end, sorted.
    pub latencies: Vec<Duration>,
    /// Failed or expired deliveries by reason.
    pub failures: BTreeMap<String, u64>,
    /// Orchestrator CPU seconds from fire to the end.
    pub orchestrator_cpu: Option<f64>,
    /// The simulator's own CPU seconds from fire to the end.
    pub simulator_cpu: Option<f64>,
    /// CPU seconds the whole machine was busy from fire to the end.
    pub machine_cpu: Option<f64>,
    /// From fire until every online agent held a post-quantum channel.
    pub channels_upgraded: Option<Duration>,
    /// Orchestrator CPU seconds from fire to [`Summary::channels_upgraded`].
    pub orchestrator_cpu_with_upgrades: Option<f64>,
    /// Orchestrator peak resident memory, bytes.
    pub orchestrator_peak_rss: Option<u64>,
    /// Orchestrator resident memory added per idle connected agent, bytes.
    pub memory_per_agent: Option<f64>,
    /// Rows the store inserted, updated or deleted from fire to the end.
    pub rows_written: Option<i64>,
}

/// The `p`-th percentile (0-100) of sorted values, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

impl Summary {
    /// Fire to the last escape.
    pub fn wall(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }

    /// Escapes per second over [`Summary::wall`].
    pub fn rate(&self) -> f64 {
        let wall = self.wall().as_secs_f64();
        if wall > 0.0 { self.escaped as f64 / wall } else { 0.0 }
    }

    /// The summary as JSON, for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        serde_json::json!({
            "consumers": self.consumers,
            "online": self.online,
            "escaped": self.escaped,
            "wall_seconds": self.wall().as_secs_f64(),
            "escapes_per_second": self.rate(),
            "p50_ms": ms(percentile(&self.latencies, 50.0)),
            "p95_ms": ms(percentile(&self.latencies, 95.0)),
            "p99_ms": ms(percentile(&self.latencies, 99.0)),
            "failures": self.failures,
            "orchestrator_cpu_seconds": self.orchestrator_cpu,
            "simulator_cpu_seconds": self.simulator_cpu,
            "machine_cpu_seconds": self.machine_cpu,
            "channels_upgraded_seconds": self.channels_upgraded.map(|d| d.as_secs_f64()),
            "orchestrator_cpu_with_upgrades_seconds": self.orchestrator_cpu_with_upgrades,
            "orchestrator_peak_rss_bytes": self.orchestrator_peak_rss,
            "orchestrator_bytes_per_idle_agent": self.memory_per_agent,
            "store_rows_written": self.rows_written,
            "fired_unix_ms": self.fired_unix_ms,
            "ended_unix_ms": self.ended_unix_ms,
            "upgraded_unix_ms": self.upgraded_unix_ms,
        })
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |p: f64| {
            percentile(&self.latencies, p)
                .map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
        };
        writeln!(f, "consumers          {} ({} online)", self.consumers, self.online)?;
        writeln!(
            f,
            "escaped            {} in {:.2} s: {:.0} per second",
            self.escaped,
            self.wall().as_secs_f64(),
            self.rate()
        )?;
        writeln!(f, "fire to escaped    p50 {}  p95 {}  p99 {}", ms(50.0), ms(95.0), ms(99.0))?;
        if self.failures.is_empty() {
            writeln!(f, "failures           none")?;
        }
        for (reason, n) in &self.failures {
            writeln!(f, "failures           {n} {reason}")?;
        }
        if let Some(cpu) = self.orchestrator_cpu {
            let per = if self.escaped > 0 { cpu / self.escaped as f64 * 1e6 } else { 0.0 };
            writeln!(f, "orchestrator CPU   {cpu:.2} s ({per:.0} us per escape)")?;
        }
        if let (Some(sim), Some(all)) = (self.simulator_cpu, self.machine_cpu) {
            let other = all - sim - self.orchestrator_cpu.unwrap_or(0.0);
            writeln!(
                f,
                "other CPU          simulator {sim:.2} s, rest of the machine (store) {other:.2} s"
            )?;
        }
        if let Some(at) = self.channels_upgraded {
            write!(
                f,
                "channels upgraded  all {} post-quantum {:.2} s after fire",
                self.online,
                at.as_secs_f64()
            )?;
            match self.orchestrator_cpu_with_upgrades {
                Some(cpu) => writeln!(f, " (orchestrator CPU until then {cpu:.2} s)")?,
                None => writeln!(f)?,
            }
        }
        if let Some(peak) = self.orchestrator_peak_rss {
            writeln!(f, "orchestrator peak  {:.1} MiB", peak as f64 / (1024.0 * 1024.0))?;
        }
        if let Some(per) = self.memory_per_agent {
            writeln!(f, "memory per agent   {:.1} KiB (idle, connected)", per / 1024.0)?;
        }
        if let Some(rows) = self.rows_written {
            writeln!(f, "store rows written {rows}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 50.0), None);
        let one = [Duration::from_millis(7)];
        assert_eq!(percentile(&one, 1.0), Some(Duration::from_millis(7)));
    }
}
