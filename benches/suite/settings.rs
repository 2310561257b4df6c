//! Sizes of the runs, from the environment, with the defaults the targets are stated for.

use std::time::Duration;

pub struct Settings {
    /// `BENCH_RATE`: ticket creations per second (open loop).
    pub rate: f64,
    /// `BENCH_SECS`: measured seconds per run of each AI latency.
    pub create_duration: Duration,
    /// `BENCH_CREATE_RUNS`: measured runs per AI latency (each one's p99 is printed).
    pub create_runs: usize,
    /// `BENCH_SERVE_CLIENTS`, `BENCH_SERVE_SECS`: the serve endpoint comparison.
    pub serve_clients: usize,
    pub serve_duration: Duration,
    /// `BENCH_STARTS`: cold starts per program (median taken).
    pub starts: usize,
    /// `BENCH_TICKETS`: tickets through the pipeline (memory is read after them).
    pub tickets: usize,
    /// `BENCH_PIPELINE_LIMIT_SECS`: how long the pipeline may take to drain.
    pub pipeline_limit: Duration,
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Settings {
    pub fn from_env() -> Settings {
        Settings {
            rate: var("BENCH_RATE", 500.0f64).max(1.0),
            create_duration: Duration::from_secs(var("BENCH_SECS", 10u64).max(1)),
            create_runs: var("BENCH_CREATE_RUNS", 5usize).max(1),
            serve_clients: var("BENCH_SERVE_CLIENTS", 8usize).max(1),
            serve_duration: Duration::from_secs(var("BENCH_SERVE_SECS", 5u64).max(1)),
            starts: var("BENCH_STARTS", 9usize).max(1),
            tickets: var("BENCH_TICKETS", 10_000usize),
            pipeline_limit: Duration::from_secs(var("BENCH_PIPELINE_LIMIT_SECS", 300u64)),
        }
    }
}
