//! `uploads`: the server's memory while it takes in attachments. Uploads are spooled to disk as
//! they arrive and the size limit (`ATTACHMENT_MAX_BYTES`, 10 MiB here) is enforced while they
//! stream, so an attempt at 50 MiB must leave the resident set size where it was: refused after
//! 10 MiB when it comes without a length, before a byte is read when it declares one.
//!
//! Memory is sampled from `/proc/<pid>/status` every 2 ms while each request runs.

use crate::api::Api;
use crate::report::Report;
use crate::server::{Process, start_server};
use axum::body::Bytes;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
const LIMIT: usize = 10 * MIB;
const BOUNDARY: &str = "bench-boundary-5c1e";

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// A multipart body with one `file` part of `size` bytes, produced in 64 KiB chunks as it is
/// sent, so the client holds none of it.
fn body(
    size: usize,
) -> (
    u64,
    impl futures::Stream<Item = Result<Bytes, std::io::Error>>,
) {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let total = (head.len() + size + tail.len()) as u64;
    let chunk = Bytes::from(vec![0x5au8; 64 * 1024]);
    let full = size / chunk.len();
    let rest = size % chunk.len();
    let pieces = std::iter::once(Bytes::from(head))
        .chain(std::iter::repeat_n(chunk.clone(), full))
        .chain(std::iter::once(chunk.slice(..rest)))
        .chain(std::iter::once(Bytes::from(tail)))
        .map(Ok);
    (total, futures::stream::iter(pieces))
}

/// The highest resident set size seen while `work` runs, and its outcome.
async fn peak_during<T>(server: &Process, work: impl Future<Output = T>) -> (u64, T) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(server.rss().unwrap_or(0)));
    let pid_status = format!("/proc/{}/status", server.pid());
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kb) = std::fs::read_to_string(&pid_status).ok().and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                }) {
                    peak.fetch_max(kb * 1024, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let out = work.await;
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    (peak.load(Ordering::Relaxed), out)
}

/// Sends `size` bytes as a file; the status, or what went wrong on the wire.
async fn send(api: &Api, token: &str, ticket: &str, size: usize, declare: bool) -> String {
    let (length, stream) = body(size);
    let mut req = api
        .http
        .post(format!("{}/api/tickets/{ticket}/attachments", api.base))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(reqwest::Body::wrap_stream(stream));
    if declare {
        req = req.header("content-length", length);
    }
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let _ = res.bytes().await;
            status.to_string()
        }
        // The server answered and closed while the rest was still on its way.
        Err(e) => format!("connection closed ({e})"),
    }
}

pub async fn run(report: &mut Report) {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = vec![
        (
            "JWT_SECRET",
            "bench-secret-0123456789abcdef0123456789".to_owned(),
        ),
        ("ATTACHMENT_MAX_BYTES", LIMIT.to_string()),
    ];
    let path = dir.path().to_owned();
    let server = tokio::task::spawn_blocking(move || start_server(&path, &env))
        .await
        .expect("server start");
    println!("\nuploads: memory while attachments stream in (limit 10 MiB)");
    let api = Api::new(server.url(""));
    let (_, token) = api.register("uploader@example.com").await;
    assert!(api.create_ticket(&token, 0).await, "ticket created");
    let list: Value = api
        .http
        .get(format!("{}/api/tickets", api.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("tickets")
        .json()
        .await
        .expect("tickets body");
    let ticket = list["tickets"][0]["id"]
        .as_str()
        .expect("ticket id")
        .to_owned();
    // Settle: the welcome mail and the ticket's processing are done.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let cases = [
        ("9 MiB accepted", 9 * MIB, true),
        ("50 MiB, no length: refused at 10 MiB", 50 * MIB, false),
        ("50 MiB, declared: refused up front", 50 * MIB, true),
    ];
    let mut worst_growth: f64 = 0.0;
    for (name, size, declare) in cases {
        let before = server.rss().unwrap_or(0);
        let started = Instant::now();
        let (peak, outcome) =
            peak_during(&server, send(&api, &token, &ticket, size, declare)).await;
        let took = started.elapsed();
        let growth = mb(peak.saturating_sub(before));
        worst_growth = worst_growth.max(if size > LIMIT { growth } else { 0.0 });
        report.row(
            "uploads",
            name,
            format!(
                "{outcome} in {:.0} ms; RSS {:.1} MB before, peak {:.1} MB (+{growth:.1} MB)",
                took.as_secs_f64() * 1000.0,
                mb(before),
                mb(peak),
            ),
        );
    }
    report.below(
        "uploads: RSS growth during a 50 MiB attempt",
        worst_growth,
        8.0,
        "MB",
    );
}
