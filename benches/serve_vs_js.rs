//! Requests per second of the Rust serve endpoint and of the official JS SDK on the same signed
//! replay request (a three-step function with every step memoized), in one run.
//!
//! `cargo bench --bench serve_vs_js`; `BENCH_REQUESTS` (default 3000) and `BENCH_CONCURRENCY`
//! (default 8) tune the load. Both servers listen on 127.0.0.1 only.

#[path = "../tests/api/inngest_app.rs"]
mod inngest_app;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use ticketing::inngest::protocol::hash_step_id;
use ticketing::inngest::signature::{SigningKey, canonical_json};
use ticketing::inngest::{InngestSettings, ServeHandler};

const KEY: &str = "signkey-test-8ee2262a15e8d3c42d6a840db7af3de2aab08ef632b32a37a687f24b34dba3ff";
const WARMUP: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// The oracle's own environment: cloud mode with the same key, an API nobody calls.
fn oracle_env() -> Vec<(&'static str, String)> {
    vec![
        ("INNGEST_SIGNING_KEY", KEY.to_owned()),
        ("INNGEST_EVENT_KEY", "bench".to_owned()),
        ("INNGEST_BASE_URL", "http://127.0.0.1:9/".to_owned()),
    ]
}

fn start_node() -> (Child, u16) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js-oracle");
    if !dir.join("node_modules/inngest").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm is needed for the JS side of the benchmark");
        assert!(status.success(), "npm ci failed");
    }
    let mut cmd = Command::new("node");
    cmd.arg("server.mjs")
        .current_dir(&dir)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for var in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    for (k, v) in oracle_env() {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("node is needed for the JS side of the benchmark");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("oracle output");
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected oracle output {line:?}"));
    (child, port)
}

fn replay_body() -> String {
    let event = json!({"name": "app/steps", "data": {}, "id": "01HEVT", "ts": 1_700_000_000_000u64, "user": {}});
    let ids = ["first step", "sleep", "second step"].map(hash_step_id);
    canonical_json(&json!({
        "ctx": {
            "attempt": 0,
            "disable_immediate_execution": false,
            "run_id": "01HRUN",
            "stack": { "current": 3, "stack": ids },
            "use_api": false,
        },
        "event": event,
        "events": [event],
        "steps": { ids[0].clone(): {"data": "A"}, ids[1].clone(): null, ids[2].clone(): {"data": "AB"} },
        "version": 2,
    }))
}

struct Run {
    rps: f64,
    failures: usize,
}

async fn load(url: &str, body: &str, requests: usize, concurrency: usize) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let signature = SigningKey::new(KEY).sign(body.as_bytes(), chrono::Utc::now().timestamp());
    let shared = Arc::new((client, url.to_owned(), body.to_owned(), signature));
    let hit = |shared: Arc<(reqwest::Client, String, String, String)>| async move {
        let (client, url, body, sig) = &*shared;
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-inngest-signature", sig)
            .body(body.clone())
            .send()
            .await;
        match res {
            Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
            _ => false,
        }
    };
    for _ in 0..WARMUP {
        hit(shared.clone()).await;
    }
    let per_worker = requests / concurrency;
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut failures = 0;
                for _ in 0..per_worker {
                    if !hit(shared.clone()).await {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = 0;
    for w in workers {
        failures += w.await.unwrap_or(per_worker);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Run {
        rps: (per_worker * concurrency) as f64 / elapsed,
        failures,
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let requests = env_usize("BENCH_REQUESTS", 3000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut node, js_port) = start_node();
    rt.block_on(async {
        let env: HashMap<&str, String> = oracle_env().into_iter().collect();
        let settings = InngestSettings::from_lookup(|k| env.get(k).cloned());
        let handler = ServeHandler::new(inngest_app::APP_ID, settings, inngest_app::functions());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = handler.router();
        tokio::spawn(async move { axum::serve(listener, router).await });

        let body = replay_body();
        let path = "/api/inngest?fnId=my-app-steps&stepId=step";
        println!(
            "replay request: {} bytes, {requests} requests, {concurrency} concurrent clients",
            body.len()
        );
        let rust = load(
            &format!("http://{addr}{path}"),
            &body,
            requests,
            concurrency,
        )
        .await;
        let js = load(
            &format!("http://127.0.0.1:{js_port}{path}"),
            &body,
            requests,
            concurrency,
        )
        .await;
        println!(
            "rust (axum) : {:>9.0} req/s  ({} failed)",
            rust.rps, rust.failures
        );
        println!(
            "js (node)   : {:>9.0} req/s  ({} failed)",
            js.rps, js.failures
        );
        println!("ratio       : {:>9.2}x", rust.rps / js.rps);
    });
    let _ = node.kill();
    let _ = node.wait();
}
