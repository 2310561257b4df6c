//! Throughput and latency of the embedded executor, with an in-process SDK endpoint.
//!
//! `cargo bench --bench executor [-- RUNS]` prints, for the SQLite and the in-memory store:
//! - multi-step runs completed per second when RUNS events arrive at once (each run: three
//!   `step.run`s, i.e. four calls to the serve endpoint and four commits);
//! - event-to-completion latency (p50, p95, max) of those runs, and of runs started one at a
//!   time on an idle executor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use ticketing::inngest::executor::{
    Executor, ExecutorOptions, MemoryStore, RouterTransport, RunFilter, RunStatus, RunStore,
    SqliteRunStore,
};

const STEPS: [&str; 3] = ["load", "transform", "save"];

/// A serve endpoint whose function runs three steps, one per request, like an SDK does.
async fn sdk(body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let steps = req
        .get("steps")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let headers = [
        ("content-type", "application/json"),
        ("x-inngest-sdk", "bench:v0.1.0"),
        ("x-inngest-req-version", "2"),
    ];
    for step in STEPS {
        if !steps.contains_key(step) {
            let op = json!([{"id": step, "op": "StepRun", "name": step, "opts": {}, "data": {"step": step}}]);
            return (StatusCode::PARTIAL_CONTENT, headers, op.to_string()).into_response();
        }
    }
    (
        StatusCode::OK,
        headers,
        json!({"done": steps.len()}).to_string(),
    )
        .into_response()
}

fn function() -> Value {
    json!({"id": "bench-multi", "name": "multi", "triggers": [{"event": "bench/go"}],
           "steps": {"step": {"id": "step", "name": "step",
             "runtime": {"type": "http", "url": "http://127.0.0.1/api/inngest?fnId=bench-multi&stepId=step"}}}})
}

async fn executor(store: Arc<dyn RunStore>) -> Executor {
    let router = Router::new().route("/api/inngest", post(sdk));
    let ex = Executor::new(
        store,
        Arc::new(RouterTransport::new(router)),
        ExecutorOptions {
            workers: 8,
            ..ExecutorOptions::default()
        },
    );
    ex.register("bench", vec![function()])
        .await
        .expect("register");
    ex
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

async fn latencies(ex: &Executor, limit: usize) -> Vec<f64> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = ex
            .list_runs(RunFilter {
                limit: 1000,
                before: before.clone(),
                ..RunFilter::default()
            })
            .await
            .expect("list");
        if page.is_empty() || all.len() >= limit {
            break;
        }
        before = page.last().map(|r| r.id.clone());
        for r in page {
            assert_eq!(
                r.status,
                RunStatus::Completed,
                "run {} did not complete",
                r.id
            );
            if let Some(end) = r.ended_at {
                all.push((end - r.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
    }
    all.sort_by(|a, b| a.total_cmp(b));
    all
}

async fn burst(name: &str, store: Arc<dyn RunStore>, runs: usize) {
    let ex = executor(store).await;
    let handle = ex.spawn();
    let events: Vec<Value> = (0..runs)
        .map(|i| json!({"name": "bench/go", "data": {"i": i}}))
        .collect();
    let start = Instant::now();
    for chunk in events.chunks(100) {
        ex.publish(chunk.to_vec()).await.expect("publish");
    }
    loop {
        let s = ex.stats().await.expect("stats");
        if s.runs_completed >= runs as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();
    handle.shutdown().await;
    let lat = latencies(&ex, runs).await;
    let stats = ex.stats().await.expect("stats");
    println!(
        "{name:7} burst of {runs}: {:.0} runs/s ({:.0} calls/s, {} steps) in {:.2} s; event-to-completion ms p50 {:.1} p95 {:.1} max {:.1}",
        runs as f64 / elapsed.as_secs_f64(),
        stats.calls as f64 / elapsed.as_secs_f64(),
        stats.steps_completed,
        elapsed.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 1.0),
    );
}

async fn one_at_a_time(name: &str, store: Arc<dyn RunStore>, runs: usize) {
    let ex = executor(store).await;
    let handle = ex.spawn();
    let mut lat = Vec::with_capacity(runs);
    for i in 0..runs {
        let start = Instant::now();
        ex.publish(vec![json!({"name": "bench/go", "data": {"i": i}})])
            .await
            .expect("publish");
        while ex.stats().await.expect("stats").runs_completed < (i + 1) as u64 {
            tokio::task::yield_now().await;
        }
        lat.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    handle.shutdown().await;
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:7} idle executor, {runs} runs one by one: event-to-completion ms p50 {:.2} p95 {:.2} max {:.2}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 1.0),
    );
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = |n: &str| {
            let path = dir.path().join(n);
            async move {
                Arc::new(SqliteRunStore::open(path).await.expect("sqlite")) as Arc<dyn RunStore>
            }
        };
        println!(
            "embedded executor: 3-step function (4 calls per run), in-process transport, 8 workers"
        );
        burst("sqlite", sqlite("burst.db").await, runs).await;
        burst("memory", Arc::new(MemoryStore::new()), runs).await;
        one_at_a_time("sqlite", sqlite("serial.db").await, 200).await;
        one_at_a_time("memory", Arc::new(MemoryStore::new()), 200).await;
    });
}
