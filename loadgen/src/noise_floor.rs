//! The machine's own noise: a fixed CPU job timed thousands of times, and the CPU steal seen
//! meanwhile. Latency figures are read against it: a p99 that is a small multiple of the floor's
//! p99 is the machine's; one far above it is ours.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::report::Percentiles;

/// How long one run of the fixed job takes on a quiet core, about.
pub const JOB: Duration = Duration::from_millis(1);

/// The noise floor of this machine, now.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct NoiseFloor {
    /// Runs of the job timed.
    pub samples: usize,
    /// Iterations in one run (calibrated once to take about [`JOB`]).
    pub iterations: u64,
    /// Median run, ms.
    pub p50_ms: f64,
    /// 99th percentile run, ms.
    pub p99_ms: f64,
    /// Longest run, ms.
    pub max_ms: f64,
    /// CPU time stolen by the hypervisor during the runs, % of all CPU time (0 where the
    /// kernel does not report it).
    pub steal_percent: f64,
}

impl NoiseFloor {
    /// Times the fixed job `samples` times.
    pub fn measure(samples: usize) -> Self {
        let iterations = calibrate();
        let before = cpu_times();
        let mut runs = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            black_box(job(iterations));
            runs.push(started.elapsed());
        }
        let after = cpu_times();
        let p = Percentiles::of(&mut runs);
        Self {
            samples,
            iterations,
            p50_ms: p.p50,
            p99_ms: p.p99,
            max_ms: p.max,
            steal_percent: steal_percent(before, after),
        }
    }

    /// `p99_ms` as a multiple of the floor's p99.
    pub fn multiple(&self, p99_ms: f64) -> f64 {
        if self.p99_ms > 0.0 {
            p99_ms / self.p99_ms
        } else {
            0.0
        }
    }
}

/// The fixed job: integer mixing that stays in registers.
fn job(iterations: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = x.wrapping_add(black_box(i));
    }
    x
}

/// Iterations that take about [`JOB`]: the fastest of a few tries, so one noisy try does not
/// shrink the job.
fn calibrate() -> u64 {
    let probe = 100_000;
    let fastest = (0..20)
        .map(|_| {
            let started = Instant::now();
            black_box(job(probe));
            started.elapsed()
        })
        .min()
        .unwrap_or(JOB)
        .max(Duration::from_nanos(1));
    let per_iteration = fastest.as_secs_f64() / probe as f64;
    ((JOB.as_secs_f64() / per_iteration) as u64).max(1)
}

/// (steal, total) jiffies from `/proc/stat`, when there is one.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let steal = *fields.get(7)?;
    Some((steal, fields.iter().sum()))
}

fn steal_percent(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> f64 {
    match (before, after) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
            s1.saturating_sub(s0) as f64 / (t1 - t0) as f64 * 100.0
        }
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_measured_and_read_as_multiples() {
        let floor = NoiseFloor::measure(20);
        assert_eq!(floor.samples, 20);
        assert!(floor.p50_ms > 0.0 && floor.p50_ms <= floor.p99_ms && floor.p99_ms <= floor.max_ms);
        assert!((0.0..=100.0).contains(&floor.steal_percent));
        assert!((floor.multiple(floor.p99_ms * 3.0) - 3.0).abs() < 1e-9);
        assert_eq!(NoiseFloor::default().multiple(5.0), 0.0);
    }
}
