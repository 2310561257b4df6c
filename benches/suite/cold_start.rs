//! Cold start: from process spawn to the first `200` from `GET /api/inngest`, for the release
//! server (fresh `DATA_DIR` each time, nothing configured) and for the JS SDK app. One untimed
//! start of each first, so neither pays for reading its files from disk.

use std::time::Duration;

use crate::load::{ms, percentile};
use crate::report::Report;
use crate::serve::sdk_env;
use crate::server::{ensure_js_deps, start_js, start_server};
use crate::settings::Settings;

const LIMIT_MS: f64 = 10.0;

fn rust_start() -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    start_server(dir.path(), &[]).started_in
}

/// A restart: the database, its schema and the JWT secret exist already.
fn rust_restart() -> Duration {
    static DIR: std::sync::LazyLock<tempfile::TempDir> =
        std::sync::LazyLock::new(|| tempfile::tempdir().expect("tempdir"));
    start_server(DIR.path(), &[]).started_in
}

fn js_start() -> Duration {
    start_js(&sdk_env()).started_in
}

fn measure(starts: usize, start: fn() -> Duration) -> Vec<Duration> {
    start();
    let mut times: Vec<Duration> = (0..starts).map(|_| start()).collect();
    times.sort();
    times
}

pub fn run(report: &mut Report, settings: &Settings) {
    ensure_js_deps();
    println!(
        "\ncold start: spawn to first GET /api/inngest 200, median of {}",
        settings.starts
    );
    let rust = measure(settings.starts, rust_start);
    let restart = measure(settings.starts, rust_restart);
    let js = measure(settings.starts, js_start);
    let bench = "cold start";
    let line = |t: &[Duration]| {
        format!(
            "{:.1} ms median (min {:.1}, max {:.1})",
            ms(percentile(t, 0.5)),
            ms(t[0]),
            ms(t[t.len() - 1])
        )
    };
    report.row(
        bench,
        "server (release binary, fresh DATA_DIR)",
        line(&rust),
    );
    report.row(bench, "server, existing DATA_DIR", line(&restart));
    report.row(bench, "JS SDK app (node)", line(&js));
    let (r, j) = (ms(percentile(&rust, 0.5)), ms(percentile(&js, 0.5)));
    report.row(bench, "ratio (JS / Rust)", format!("{:.1}x faster", j / r));
    report.below("server cold start (median)", r, LIMIT_MS, "ms");
}
