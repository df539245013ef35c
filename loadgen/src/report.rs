//! Outcomes and the report: percentiles, throughput, errors by kind.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A session was returned after this long.
    Ready(Duration),
    /// The matchmaker answered an error code.
    Refused(u16),
    /// The connection or protocol failed; the kind (e.g. `connect`, `closed`, `timeout`).
    Failed(&'static str),
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Requests sent.
    pub requests: usize,
    /// Sessions returned.
    pub ready: usize,
    /// Errors by kind (`http-<code>` for matchmaker errors).
    pub errors: BTreeMap<String, usize>,
    /// Wall time of the run, seconds.
    pub elapsed_secs: f64,
    /// Sessions per second.
    pub throughput_per_sec: f64,
    /// Request→result latency of successful requests, milliseconds.
    pub latency_ms: Percentiles,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (nearest rank).
    pub fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |p: f64| {
            let rank = ((samples.len() as f64) * p).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1].as_secs_f64() * 1000.0
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl Report {
    /// Builds the report from outcomes and the run's wall time.
    pub fn from_outcomes(outcomes: &[Outcome], elapsed: Duration) -> Self {
        let mut latencies = Vec::new();
        let mut errors = BTreeMap::new();
        for outcome in outcomes {
            match outcome {
                Outcome::Ready(latency) => latencies.push(*latency),
                Outcome::Refused(code) => *errors.entry(format!("http-{code}")).or_insert(0) += 1,
                Outcome::Failed(kind) => *errors.entry((*kind).to_owned()).or_insert(0) += 1,
            }
        }
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            requests: outcomes.len(),
            ready: latencies.len(),
            errors,
            elapsed_secs: secs,
            throughput_per_sec: latencies.len() as f64 / secs,
            latency_ms: Percentiles::of(&mut latencies),
        }
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("requests      {}\n", self.requests));
        out.push_str(&format!("sessions      {}\n", self.ready));
        out.push_str(&format!("elapsed       {:.2} s\n", self.elapsed_secs));
        out.push_str(&format!(
            "throughput    {:.0} sessions/s\n",
            self.throughput_per_sec
        ));
        let l = &self.latency_ms;
        out.push_str(&format!(
            "latency (ms)  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n",
            l.p50, l.p90, l.p99, l.max
        ));
        if self.errors.is_empty() {
            out.push_str("errors        none\n");
        }
        for (kind, count) in &self.errors {
            out.push_str(&format!("error         {kind}: {count}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut samples);
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let outcomes = [
            Outcome::Ready(Duration::from_millis(2)),
            Outcome::Refused(503),
            Outcome::Refused(503),
            Outcome::Failed("connect"),
        ];
        let report = Report::from_outcomes(&outcomes, Duration::from_secs(1));
        assert_eq!(report.ready, 1);
        assert_eq!(report.errors["http-503"], 2);
        assert_eq!(report.errors["connect"], 1);
        assert!(report.table().contains("http-503: 2"));
    }
}
