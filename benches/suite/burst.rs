//! A burst with people watching: 1,000 tickets from 10 customers as fast as the API takes them,
//! each triaged by the rules engine, routed to one of three moderators and mailed twice, while
//! an admin's client polls `GET /api/tickets` (the newest page) every 100 ms as a dashboard
//! would. Reported: tickets fully processed per second (first request to last mail), creation
//! to assignment, and the admin's poll latency during the burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::{Api, PASSWORD};
use crate::load::{ms, percentile};
use crate::pipeline::{
    ADMIN, MAILS_PER_TICKET, MODERATORS, assignment_times, latency_line, mails, wait_for_mails,
};
use crate::report::Report;
use crate::server::start_server;
use crate::settings::Settings;

const CUSTOMERS: usize = 10;
const TICKETS: usize = 1_000;
const IN_FLIGHT: usize = 32;
const POLL_EVERY: Duration = Duration::from_millis(100);
const TARGET: f64 = 400.0;

/// Polls the newest page until `stop`; each poll's latency, sorted, and how many failed.
async fn poll(api: Api, admin: String, stop: Arc<AtomicBool>) -> (Vec<Duration>, usize) {
    let (mut times, mut failed) = (Vec::new(), 0);
    let url = format!("{}/api/tickets?limit=50&sort=newest", api.base);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answered = match api.http.get(&url).bearer_auth(&admin).send().await {
            Ok(res) if res.status() == 200 => res.bytes().await.is_ok(),
            _ => false,
        };
        if answered {
            times.push(started.elapsed());
        } else {
            failed += 1;
        }
        tokio::time::sleep(POLL_EVERY.saturating_sub(started.elapsed())).await;
    }
    times.sort();
    (times, failed)
}

pub async fn run(report: &mut Report, settings: &Settings) {
    let path = crate::server::data_dir();
    let env = vec![
        (
            "JWT_SECRET",
            "bench-secret-0123456789abcdef0123456789".to_owned(),
        ),
        ("BOOTSTRAP_ADMIN_EMAIL", ADMIN.to_owned()),
        ("BOOTSTRAP_ADMIN_PASSWORD", PASSWORD.to_owned()),
    ];
    let server = tokio::task::spawn_blocking(move || start_server(&path, &env))
        .await
        .expect("server start");
    let api = Api::new(server.url(""));
    println!(
        "\nburst: {TICKETS} tickets from {CUSTOMERS} customers, {IN_FLIGHT} in flight, an admin polling every {POLL_EVERY:?}"
    );
    let admin = api.login(ADMIN, PASSWORD).await;
    for (i, skills) in MODERATORS.iter().enumerate() {
        let (id, _) = api.register(&format!("moderator{i}@bench.test")).await;
        api.patch_user(&admin, &id, json!({"role": "moderator", "skills": skills}))
            .await;
    }
    let mut customers = Vec::new();
    for c in 0..CUSTOMERS {
        customers.push(api.register(&format!("customer{c}@bench.test")).await.1);
    }
    // One ticket through first: the rules engine compiles its patterns on first use.
    let mut expected = mails(&api).await + MAILS_PER_TICKET;
    api.create_ticket(&customers[0], TICKETS).await;
    wait_for_mails(&api, expected, Duration::from_secs(30)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll(api.clone(), admin.clone(), stop.clone()));
    let started = Instant::now();
    let cpu_before = server.cpu_time();
    let create = {
        let (api, customers) = (api.clone(), customers.clone());
        move |i: usize| api.create_ticket(&customers[i % CUSTOMERS], i)
    };
    let burst =
        crate::load::closed_loop(IN_FLIGHT, TICKETS, Duration::from_secs(120), create).await;
    let accepted_in = started.elapsed();
    expected += MAILS_PER_TICKET * burst.ok;
    let done = wait_for_mails(&api, expected, settings.pipeline_limit)
        .await
        .map(|_| started.elapsed());
    let cpu_used = server
        .cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    stop.store(true, Ordering::Relaxed);
    let (polls, polls_failed) = poller.await.expect("poller");
    let tickets = api.all_tickets(&admin).await;
    drop(server);

    let bench = "burst with a polling admin";
    report.row(
        bench,
        "API accepted the burst in",
        format!(
            "{:.2} s ({:.0} tickets/s, {} failed)",
            accepted_in.as_secs_f64(),
            burst.rps(),
            burst.failed
        ),
    );
    let throughput = done.map_or(0.0, |d| burst.ok as f64 / d.as_secs_f64());
    report.row(
        bench,
        "fully processed (triaged, routed, 2 mails) in",
        match done {
            Some(d) => format!("{:.2} s ({throughput:.0} tickets/s)", d.as_secs_f64()),
            None => format!("not within {:?}", settings.pipeline_limit),
        },
    );
    // Steadier than the throughput on a shared machine: what the server spent per ticket.
    if let (Some(cpu), Some(d)) = (cpu_used, done) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        report.row(
            bench,
            "server CPU per ticket (share of all cores)",
            format!(
                "{:.2} ms ({:.0}% of {cores})",
                cpu.as_secs_f64() * 1000.0 / burst.ok.max(1) as f64,
                cpu.as_secs_f64() * 100.0 / d.as_secs_f64() / cores as f64
            ),
        );
    }
    let (times, unassigned) = assignment_times(&tickets, 0..TICKETS);
    report.row(
        bench,
        "creation to assignment p50 / p99",
        latency_line(&times, unassigned),
    );
    report.row(
        bench,
        "admin poll p50 / p99 / max",
        format!(
            "{:.1} / {:.1} / {:.1} ms ({} polls, {polls_failed} failed)",
            ms(percentile(&polls, 0.5)),
            ms(percentile(&polls, 0.99)),
            ms(percentile(&polls, 1.0)),
            polls.len()
        ),
    );
    report.at_least(
        "burst of 1,000 with a polling admin, tickets/s",
        throughput,
        TARGET,
        "tickets/s",
    );
}
