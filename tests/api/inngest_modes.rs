//! Dev and cloud mode against a fake Inngest API on loopback: the app registers its functions
//! with the right body and key, `/readyz` waits for the sync, and the outbox relay delivers
//! every event exactly once with its id, across an outage too.

use crate::helpers::*;
use crate::support::binary;
use crate::support::fake_inngest::FakeInngest;
use crate::support::wait::wait_until;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use ticketing::domain::user::Role;

/// Waits up to 30 s for `probe` to give a value; the failure names `what` was awaited.
async fn until<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    wait_until(Duration::from_secs(30), async || {
        probe()
            .await
            .ok_or_else(|| format!("still waiting for {what}"))
    })
    .await
}

const FUNCTIONS: [&str; 7] = [
    "ticketing-on-ticket-created",
    "ticketing-on-ticket-created-failure",
    "ticketing-on-user-signup",
    "ticketing-on-account-request",
    "ticketing-on-ticket-updated",
    "ticketing-retriage-ticket",
    "ticketing-reroute-ticket",
];

fn check_register_body(body: &Value, url: &str) {
    assert_eq!(body["url"], url, "{body:#}");
    assert_eq!(body["appName"], "ticketing");
    assert_eq!(body["deployType"], "ping");
    let functions = body["functions"].as_array().expect("functions");
    let mut ids: Vec<&str> = functions.iter().filter_map(|f| f["id"].as_str()).collect();
    ids.sort();
    let mut expected = FUNCTIONS.to_vec();
    expected.sort();
    assert_eq!(ids, expected);
    for f in functions {
        let step_url = f["steps"]["step"]["runtime"]["url"]
            .as_str()
            .unwrap_or_default();
        let id = f["id"].as_str().unwrap_or_default();
        assert_eq!(step_url, format!("{url}?fnId={id}&stepId=step"));
    }
    let created = functions
        .iter()
        .find(|f| f["id"] == "ticketing-on-ticket-created")
        .expect("on-ticket-created");
    assert_eq!(created["triggers"][0]["event"], "ticket/created");
    let failure = functions
        .iter()
        .find(|f| f["id"] == "ticketing-on-ticket-created-failure")
        .expect("the failure handler");
    assert_eq!(failure["triggers"][0]["event"], "inngest/function.failed");
}

/// Every outbox event reached the fake exactly once, with the outbox id; nothing else did.
async fn assert_delivered_exactly_once(app: &TestApp, fake: &FakeInngest) {
    let outbox = app.events().await;
    let accepted = fake.accepted_events();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &accepted {
        *seen
            .entry(e["id"].as_str().unwrap_or("<no id>").to_owned())
            .or_default() += 1;
    }
    for e in &outbox {
        assert_eq!(seen.get(&e.id), Some(&1), "event {} ({})", e.id, e.name);
        let sent = accepted.iter().find(|a| a["id"] == e.id.as_str());
        assert_eq!(sent.map(|s| &s["name"]), Some(&Value::from(e.name.clone())));
    }
    assert_eq!(
        accepted.len(),
        outbox.len(),
        "no event the outbox did not hold"
    );
}

#[tokio::test]
async fn dev_mode_syncs_with_the_dev_server_and_relays_events() {
    let fake = FakeInngest::start().await;
    fake.refuse_registrations(usize::MAX);
    let app = spawn_app_with(&[
        ("INNGEST_DEV", &fake.base_url),
        ("APP_URL", "http://127.0.0.1:4321"),
    ])
    .await;

    // Not ready while the dev server refuses the registration; the app keeps trying, backing off.
    until("three refused registrations", async || {
        (fake.registrations().len() >= 3).then_some(())
    })
    .await;
    let r = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.body["synced"], false);
    assert_eq!(r.body["mode"], "dev");
    let attempts = fake.registrations();
    assert!(
        attempts.len() <= 4,
        "backs off: {} attempts",
        attempts.len()
    );

    // The dev server's own sync ping (PUT) gets through: ready at once.
    fake.refuse_registrations(0);
    let put = app.request(Method::PUT, "/api/inngest", None, None).await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let r = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["synced"], true);

    for reg in fake.registrations() {
        assert_eq!(reg.authorization, None, "no key in dev mode");
        assert_eq!(reg.sync_kind.as_deref(), Some("out_of_band"));
    }
    // Both the app's own registration and the ping's name APP_URL: never the URL the request
    // reached, which its `Host` header decides.
    check_register_body(&attempts[0].body, "http://127.0.0.1:4321/api/inngest");
    let ping = fake
        .registrations()
        .into_iter()
        .find(|r| r.accepted)
        .expect("accepted");
    check_register_body(&ping.body, "http://127.0.0.1:4321/api/inngest");

    // Events go to the dev server's event API, each once, with its outbox id.
    let (_, admin) = app.staff("dev-admin@example.com", Role::Admin, &[]).await;
    let (_, user) = app.register("dev-user@example.com").await;
    app.create_ticket(&user, "Dev mode ticket").await;
    until("the outbox to drain", async || {
        (app.store.outbox_backlog().await.ok()? == 0).then_some(())
    })
    .await;
    assert_delivered_exactly_once(&app, &fake).await;
    assert!(fake.posts().iter().all(|p| p.key == "NO_EVENT_KEY_SET"));

    // Runs live in the dev server, not here.
    let r = app.get("/api/runs", &admin).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "not_embedded");
    let id = ticketing::domain::new_id();
    for path in [
        format!("/api/runs/{id}/rerun"),
        format!("/api/runs/{id}/cancel"),
    ] {
        let r = app.request(Method::POST, &path, Some(&admin), None).await;
        assert_eq!(r.code(), "not_embedded", "{path}");
    }
    assert_eq!(
        app.get(&format!("/api/runs/{id}"), &admin).await.code(),
        "not_embedded"
    );
    // Still admin-only first.
    assert_eq!(
        app.get("/api/runs", &user).await.status,
        StatusCode::FORBIDDEN
    );
}

/// `signkey-<env>-<hex>` -> `signkey-<env>-<sha256 of the decoded hex>` (reference §4.5).
fn hashed(key: &str) -> String {
    let (prefix, hex_part) = key.split_at("signkey-prod-".len());
    let bytes = hex::decode(hex_part).expect("hex key");
    format!("{prefix}{}", hex::encode(Sha256::digest(bytes)))
}

#[tokio::test]
async fn cloud_mode_registers_with_the_hashed_key_and_survives_an_event_api_outage() {
    let signing_key = "signkey-prod-12345678";
    assert_eq!(
        hashed(signing_key),
        "signkey-prod-b2ed992186a5cb19f6668aade821f502c1d00970dfd0e35128d51bac4649916c"
    );
    let fake = FakeInngest::start().await;
    fake.refuse_registrations(2);
    let app = spawn_app_with(&[
        ("INNGEST_SIGNING_KEY", signing_key),
        ("INNGEST_EVENT_KEY", "test-event-key"),
        ("INNGEST_BASE_URL", &fake.base_url),
        ("INNGEST_SERVE_ORIGIN", "https://tickets.example.com"),
    ])
    .await;
    let r = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "refused at first: {:?}",
        r.body
    );
    assert_eq!(r.body["mode"], "cloud");
    until("ready", async || {
        let r = app.request(Method::GET, "/readyz", None, None).await;
        (r.status == StatusCode::OK && r.body["synced"] == true).then_some(())
    })
    .await;
    let regs = fake.registrations();
    assert_eq!(regs.len(), 3, "two refused, one accepted, then no more");
    for reg in &regs {
        assert_eq!(
            reg.authorization.as_deref(),
            Some(format!("Bearer {}", hashed(signing_key)).as_str())
        );
        check_register_body(&reg.body, "https://tickets.example.com/api/inngest");
    }

    // Normal delivery.
    let (_, user) = app.register("cloud-user@example.com").await;
    app.create_ticket(&user, "Before the outage").await;
    until("the outbox to drain", async || {
        (app.store.outbox_backlog().await.ok()? == 0).then_some(())
    })
    .await;
    let before = fake.accepted_events().len();
    assert_eq!(before, 2);

    // The event API goes down while tickets keep coming: nothing is lost, nothing is marked
    // sent, and the relay backs off instead of hammering it.
    fake.go_down();
    for i in 0..5 {
        app.create_ticket(&user, &format!("During the outage {i}"))
            .await;
    }
    let refused = until("ten refused posts", async || {
        let refused: Vec<Instant> = fake
            .posts()
            .into_iter()
            .filter(|p| !p.accepted)
            .map(|p| p.at)
            .collect();
        (refused.len() >= 10).then_some(refused)
    })
    .await;
    assert_eq!(app.store.outbox_backlog().await.unwrap(), 5);
    let spread = refused[9] - refused[0];
    assert!(
        spread >= Duration::from_secs(1),
        "ten attempts within {spread:?}: the relay is not backing off"
    );
    fake.recover();
    until("the outbox to drain after the outage", async || {
        (app.store.outbox_backlog().await.ok()? == 0).then_some(())
    })
    .await;
    assert_delivered_exactly_once(&app, &fake).await;
    assert!(fake.posts().iter().all(|p| p.key == "test-event-key"));
    // In order: the outage's events arrive after the earlier ones, oldest first.
    let accepted = fake.accepted_events();
    let delivered: Vec<&str> = accepted.iter().filter_map(|e| e["id"].as_str()).collect();
    let outbox: Vec<String> = app.events().await.into_iter().map(|e| e.id).collect();
    assert_eq!(delivered, outbox);
}

#[test]
fn half_configured_cloud_mode_stops_the_binary_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = binary::env(dir.path(), binary::free_port());
    env.insert("INNGEST_SIGNING_KEY".into(), "signkey-prod-12345678".into());
    let out = binary::run(&env, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: INNGEST_EVENT_KEY: "), "{stderr}");
    assert!(
        !dir.path().join("ticketing.db").exists(),
        "stopped before touching the data"
    );

    env.remove("INNGEST_SIGNING_KEY");
    env.insert("INNGEST_EVENT_KEY".into(), "test-event-key".into());
    let out = binary::run(&env, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: INNGEST_SIGNING_KEY: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("INNGEST_DEV=1"),
        "says how to use the dev server: {stderr}"
    );
}
