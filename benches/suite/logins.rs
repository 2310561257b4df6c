//! A storm of failed logins from many addresses, the attack a per-address limit cannot stop,
//! against the release binary: resident memory after it (each Argon2 hash needs 19 MiB, and
//! unbounded hashing once grew the process to gigabytes), and how long a correct login takes
//! while it lasts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::{Api, PASSWORD};
use crate::load::{closed_loop, ms, percentile};
use crate::report::Report;
use crate::server::start_server;

const FAILED_LOGINS: usize = 2_000;
const ADDRESSES: usize = 200;
const CLIENTS: usize = 8;
const RSS_LIMIT_MB: f64 = 64.0;
const ACCOUNT: &str = "victim@bench.test";

fn mb(bytes: Option<u64>) -> f64 {
    bytes.map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0))
}

/// One failed login from forwarded address `i % ADDRESSES`: a wrong password for a real
/// account, or (every other one) an address nobody registered, which costs a dummy hash.
fn failed_login(api: &Api, i: usize) -> impl Future<Output = bool> + Send + use<> {
    let email = if i.is_multiple_of(2) {
        ACCOUNT.to_owned()
    } else {
        format!("nobody{i}@bench.test")
    };
    let req = api
        .http
        .post(format!("{}/api/auth/login", api.base))
        .header("x-forwarded-for", format!("10.0.0.{}", i % ADDRESSES + 1))
        .json(&json!({"email": email, "password": "not the password"}));
    async move {
        match req.send().await {
            Ok(res) => res.status() == 401 && res.bytes().await.is_ok(),
            Err(_) => false,
        }
    }
}

pub async fn run(report: &mut Report) {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = vec![
        (
            "JWT_SECRET",
            "bench-secret-0123456789abcdef0123456789".to_owned(),
        ),
        ("TRUST_PROXY", "true".to_owned()),
        ("AUTH_RATE_LIMIT_PER_MIN", "1000000".to_owned()),
    ];
    let path = dir.path().to_owned();
    let server = tokio::task::spawn_blocking(move || start_server(&path, &env))
        .await
        .expect("server start");
    let api = Api::new(server.url(""));
    api.register(ACCOUNT).await;
    // The welcome mail and the first hash are behind us: this is the settled start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = mb(server.rss());
    println!(
        "\nfailed logins: {FAILED_LOGINS} from {ADDRESSES} forwarded addresses, {CLIENTS} at a time, \
         while one client logs in correctly, again and again"
    );

    let storming = Arc::new(AtomicBool::new(true));
    let correct = {
        let (api, storming) = (api.clone(), storming.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while storming.load(Ordering::Relaxed) {
                let started = Instant::now();
                api.login(ACCOUNT, PASSWORD).await;
                latencies.push(started.elapsed());
            }
            latencies
        })
    };
    let storm_api = api.clone();
    let storm = closed_loop(CLIENTS, FAILED_LOGINS, Duration::from_secs(600), move |i| {
        failed_login(&storm_api, i)
    })
    .await;
    storming.store(false, Ordering::Relaxed);
    let mut latencies = correct.await.expect("correct logins");
    latencies.sort();
    let after = mb(server.rss());
    let peak = mb(server.peak_rss());

    let bench = "failed-login storm";
    report.row(
        bench,
        "resident memory idle, after start",
        format!("{idle:.1} MB"),
    );
    report.row(
        bench,
        "storm: failed logins answered 401",
        format!(
            "{} in {:.1} s ({:.0}/s, {} other answers)",
            storm.ok,
            storm.elapsed.as_secs_f64(),
            storm.rps(),
            storm.failed
        ),
    );
    report.row(
        bench,
        "correct login during the storm p50 / p99",
        format!(
            "{:.0} / {:.0} ms ({} logins)",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            latencies.len()
        ),
    );
    report.row(
        bench,
        "resident memory after / peak",
        format!("{after:.1} / {peak:.1} MB"),
    );
    let measured = if storm.failed > 0 {
        f64::INFINITY
    } else {
        after
    };
    report.below(
        &format!("resident memory after {FAILED_LOGINS} failed logins"),
        measured,
        RSS_LIMIT_MB,
        "MB",
    );
    drop(server);
}
