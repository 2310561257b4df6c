//! The embedded pipeline and memory, on one server: rules triage (no AI configured), routing to
//! moderators, and mail written to `DATA_DIR/outbox`.
//!
//! 1. Idle: resident memory once the server has started and settled.
//! 2. Steady (after one warm-up ticket): tickets at a modest fixed rate; time from creation to assignment.
//! 3. Burst: the rest of the tickets as fast as the API takes them; tickets fully processed
//!    (triaged, routed, both mails written) per second, from the first request to the last mail.
//! 4. Resident memory after all of them.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::api::{Api, PASSWORD};
use crate::load::{ms, percentile};
use crate::report::Report;
use crate::server::start_server;
use crate::settings::Settings;

pub(crate) const ADMIN: &str = "admin@bench.test";
pub(crate) const MODERATORS: [&[&str]; 3] = [&["SQL", "Postgres"], &["React", "CSS"], &["Billing"]];
/// Each ticket's run writes two mails: to the assignee and to the creator.
pub(crate) const MAILS_PER_TICKET: usize = 2;
const STEADY_RATE: f64 = 100.0;
const STEADY_TICKETS: usize = 500;
const THROUGHPUT_TARGET: f64 = 200.0;
const IDLE_LIMIT_MB: f64 = 16.0;
const AFTER_LIMIT_MB: f64 = 64.0;

fn files_in(outbox: &Path) -> usize {
    std::fs::read_dir(outbox)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

/// Mails written so far, from the server's own counter: listing an outbox of 20,000 files (some
/// 10 ms each time) in a polling loop would take CPU from the server under test.
pub(crate) async fn mails(api: &Api) -> usize {
    let Ok(res) = api.http.get(format!("{}/metrics", api.base)).send().await else {
        return 0;
    };
    let text = res.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("mails_sent_total "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .map_or(0, |n| n as usize)
}

/// Waits until `count` mails were written; the time it took, or `None` at `limit`.
pub(crate) async fn wait_for_mails(api: &Api, count: usize, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if mails(api).await >= count {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mb(bytes: Option<u64>) -> f64 {
    bytes.map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0))
}

fn time(ticket: &Value, field: &str) -> Option<DateTime<Utc>> {
    ticket[field].as_str()?.parse().ok()
}

/// Creation-to-assignment times of the tickets whose number (`#i` in the title) is in `range`,
/// sorted, and how many of those are unassigned.
pub(crate) fn assignment_times(
    tickets: &[Value],
    range: std::ops::Range<usize>,
) -> (Vec<Duration>, usize) {
    let mut times = Vec::new();
    let mut unassigned = 0;
    for t in tickets {
        let number = t["title"]
            .as_str()
            .and_then(|s| s.rsplit_once('#'))
            .and_then(|(_, n)| n.parse::<usize>().ok());
        if !number.is_some_and(|n| range.contains(&n)) {
            continue;
        }
        match (time(t, "created_at"), time(t, "assigned_at")) {
            (Some(c), Some(a)) => times.push((a - c).to_std().unwrap_or_default()),
            _ => unassigned += 1,
        }
    }
    times.sort();
    (times, unassigned)
}

pub(crate) fn latency_line(times: &[Duration], unassigned: usize) -> String {
    format!(
        "{:.1} / {:.1} ms ({} tickets, {unassigned} unassigned)",
        ms(percentile(times, 0.5)),
        ms(percentile(times, 0.99)),
        times.len()
    )
}

pub async fn run(report: &mut Report, settings: &Settings, pipeline: bool, memory: bool) {
    let dir = crate::server::data_dir();
    let outbox = dir.join("outbox");
    let env = vec![
        (
            "JWT_SECRET",
            "bench-secret-0123456789abcdef0123456789".to_owned(),
        ),
        ("BOOTSTRAP_ADMIN_EMAIL", ADMIN.to_owned()),
        ("BOOTSTRAP_ADMIN_PASSWORD", PASSWORD.to_owned()),
    ];
    let path = dir.clone();
    let server = tokio::task::spawn_blocking(move || start_server(&path, &env))
        .await
        .expect("server start");
    let total = settings.tickets.max(STEADY_TICKETS + 1);
    println!(
        "\nembedded pipeline: rules triage, {} moderators, mail to the outbox folder; {total} tickets",
        MODERATORS.len()
    );

    // Idle: started, the admin's welcome mail written, nothing else asked of it.
    let api = Api::new(server.url(""));
    wait_for_mails(&api, 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = mb(server.rss());

    let admin = api.login(ADMIN, PASSWORD).await;
    for (i, skills) in MODERATORS.iter().enumerate() {
        let (id, _) = api.register(&format!("moderator{i}@bench.test")).await;
        api.patch_user(&admin, &id, json!({"role": "moderator", "skills": skills}))
            .await;
    }
    let customer = api.register("customer@bench.test").await.1;
    let welcomed = 1 + MODERATORS.len() + 1;
    wait_for_mails(&api, welcomed, Duration::from_secs(30)).await;
    // One ticket through first: the rules engine compiles its patterns on first use.
    let mut expected = mails(&api).await + MAILS_PER_TICKET;
    api.create_ticket(&customer, total).await;
    wait_for_mails(&api, expected, Duration::from_secs(30)).await;

    // Steady: well under capacity, so the times are the pipeline's own, not queueing.
    let steady = crate::load::open_loop(
        STEADY_RATE,
        Duration::from_secs_f64(STEADY_TICKETS as f64 / STEADY_RATE),
        |i| api.create_ticket(&customer, i),
    )
    .await;
    expected += MAILS_PER_TICKET * steady.ok;
    let steady_done = wait_for_mails(&api, expected, Duration::from_secs(120)).await;

    // Burst: everything else at once.
    let burst_count = total - STEADY_TICKETS;
    let started = Instant::now();
    let create = {
        let (api, customer) = (api.clone(), customer.clone());
        move |i: usize| api.create_ticket(&customer, STEADY_TICKETS + i)
    };
    let burst = crate::load::closed_loop(32, burst_count, Duration::from_secs(120), create).await;
    let accepted_in = started.elapsed();
    expected += MAILS_PER_TICKET * burst.ok;
    let burst_done = wait_for_mails(&api, expected, settings.pipeline_limit)
        .await
        .map(|_| started.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = mb(server.rss());
    let peak = mb(server.peak_rss());

    let tickets = api.all_tickets(&admin).await;
    // The counter the waits read must agree with the folder.
    let (counted, on_disk) = (mails(&api).await, files_in(&outbox));
    if counted != on_disk {
        println!("  (mails_sent_total says {counted}, the outbox holds {on_disk} files)");
    }
    let bench = "embedded pipeline";
    if pipeline {
        let (steady_times, steady_unassigned) = assignment_times(&tickets, 0..STEADY_TICKETS);
        let (burst_times, burst_unassigned) = assignment_times(&tickets, STEADY_TICKETS..total);
        report.row(
            bench,
            &format!("creation to assignment p50 / p99, {STEADY_RATE} tickets/s"),
            latency_line(&steady_times, steady_unassigned),
        );
        if steady_done.is_none() {
            println!("  (steady phase: not every mail was written within 120 s)");
        }
        report.row(
            bench,
            &format!("burst of {burst_count}: API accepted them in"),
            format!(
                "{:.2} s ({:.0} tickets/s, {} failed)",
                accepted_in.as_secs_f64(),
                burst.rps(),
                burst.failed
            ),
        );
        let throughput = burst_done.map_or(0.0, |d| burst.ok as f64 / d.as_secs_f64());
        report.row(
            bench,
            &format!("burst of {burst_count}: fully processed in"),
            match burst_done {
                Some(d) => format!("{:.2} s ({throughput:.0} tickets/s)", d.as_secs_f64()),
                None => format!("not within {:?}", settings.pipeline_limit),
            },
        );
        report.row(
            bench,
            "creation to assignment p50 / p99, burst",
            latency_line(&burst_times, burst_unassigned),
        );
        report.at_least(
            "tickets fully processed per second",
            throughput,
            THROUGHPUT_TARGET,
            "tickets/s",
        );
    }
    if memory {
        let bench = "memory (VmRSS)";
        report.row(bench, "idle, after start", format!("{idle:.1} MB"));
        report.row(
            bench,
            &format!("after {} tickets processed", tickets.len()),
            format!("{after:.1} MB (peak {peak:.1} MB)"),
        );
        report.below("idle memory", idle, IDLE_LIMIT_MB, "MB");
        report.below(
            &format!("memory after {} tickets", tickets.len()),
            after,
            AFTER_LIMIT_MB,
            "MB",
        );
    }
}
