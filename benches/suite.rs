//! The benchmark suite: `cargo bench --bench suite [-- NAME...]` with NAME among `cold-start`,
//! `serve`, `create`, `pipeline`, `memory`, `logins`, `web`, `uploads` (all when none is given). It
//! prints each number as it is measured, PASS or MISS for each target with the gap, and Markdown
//! tables at the end.
//!
//! Everything listens on 127.0.0.1. The server under test is the release `ticketing` binary that
//! cargo builds for this bench; the JS side is the official SDK app in
//! `crates/inngest-axum/tests/js-oracle` (`npm ci` on first use). Sizes come from `BENCH_*`
//! variables (see `suite/settings.rs`).

#[path = "../crates/inngest-axum/tests/conformance/app.rs"]
mod inngest_app;

#[path = "suite/api.rs"]
mod api;
#[path = "suite/burst.rs"]
mod burst;
#[path = "suite/cold_start.rs"]
mod cold_start;
#[path = "suite/create.rs"]
mod create;
#[path = "suite/fake_gemini.rs"]
mod fake_gemini;
#[path = "suite/load.rs"]
mod load;
#[path = "suite/logins.rs"]
mod logins;
#[path = "suite/pipeline.rs"]
mod pipeline;
#[path = "suite/report.rs"]
mod report;
#[path = "suite/serve.rs"]
mod serve;
#[path = "../tests/api/support/served.rs"]
#[allow(dead_code)]
mod served;
#[path = "suite/server.rs"]
mod server;
#[path = "suite/settings.rs"]
mod settings;
#[path = "suite/uploads.rs"]
mod uploads;
#[path = "../tests/api/support/wait.rs"]
mod wait;
#[path = "suite/web.rs"]
mod web;
#[path = "../tests/api/support/webdriver.rs"]
#[allow(dead_code)]
mod webdriver;

use std::process::ExitCode;

const NAMES: [&str; 9] = [
    "cold-start",
    "serve",
    "create",
    "burst",
    "pipeline",
    "memory",
    "logins",
    "web",
    "uploads",
];

fn main() -> ExitCode {
    // cargo passes `--bench`; names are the other arguments.
    let mut selected: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let Some(unknown) = selected.iter().find(|a| !NAMES.contains(&a.as_str())) {
        eprintln!(
            "unknown benchmark {unknown:?}; choose from {}",
            NAMES.join(", ")
        );
        return ExitCode::from(2);
    }
    if selected.is_empty() {
        selected = NAMES.iter().map(|n| (*n).to_owned()).collect();
    }
    let wants = |name: &str| selected.iter().any(|s| s == name);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = settings::Settings::from_env();
    println!("server binary: {}", server::binary().display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut report = report::Report::new();
    // Quietest first: nothing else is running while processes start.
    if wants("cold-start") {
        cold_start::run(&mut report, &settings);
    }
    rt.block_on(async {
        if wants("serve") {
            serve::run(&mut report, &settings).await;
        }
        if wants("create") {
            create::run(&mut report, &settings).await;
        }
        if wants("web") {
            web::run(&mut report, &settings).await;
        }
        if wants("burst") {
            burst::run(&mut report, &settings).await;
        }
        if wants("pipeline") || wants("memory") {
            pipeline::run(&mut report, &settings, wants("pipeline"), wants("memory")).await;
        }
        if wants("logins") {
            logins::run(&mut report).await;
        }
        if wants("uploads") {
            uploads::run(&mut report).await;
        }
    });
    report.print_summary();
    server::remove_data_dirs();
    ExitCode::SUCCESS
}
