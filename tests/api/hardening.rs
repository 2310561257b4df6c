//! What a probe of the running service found, each kept fixed by a test against the real server:
//! syncs under a forged `Host`, demoted staff still mailed, metric labels and log lines chosen
//! by clients, plain-text rejections, world-readable data, staff details shown to customers,
//! and dev mode on a public address.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing::domain::user::Role;
use ticketing::inngest::executor::RunStatus;

use crate::helpers::*;
use crate::pipeline_common::{DEADLINE, runs, wait_processed, wait_until};
use crate::support::binary::{self, Binary};
use crate::support::fake_inngest::FakeInngest;
use crate::support::smtp_peer::{ReceivedMail, SmtpPeer};

const SIGNING_KEY: &str = "signkey-prod-12345678";

async fn cloud_app(base_url: &str) -> TestApp {
    spawn_app_with(&[
        ("INNGEST_SIGNING_KEY", SIGNING_KEY),
        ("INNGEST_EVENT_KEY", "test-event-key"),
        ("INNGEST_BASE_URL", base_url),
        ("APP_URL", "https://tickets.example.com"),
    ])
    .await
}

/// An unsigned `PUT /api/inngest`, as anyone on the network can send it.
async fn put_sync(
    app: &TestApp,
    host: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut req = app.client.put(format!("{}/api/inngest", app.base));
    if let Some(host) = host {
        req = req.header("host", host);
    }
    let r = req.send().await.expect("PUT sent");
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.text().await.expect("body"))
}

#[tokio::test]
async fn a_sync_registers_the_configured_url_whatever_the_host_a_few_times_a_minute() {
    let fake = FakeInngest::start().await;
    let app = cloud_app(&fake.base_url).await;
    // The app's own registration at start.
    wait_until(DEADLINE, || async {
        let n = fake.registrations().len();
        if n >= 1 {
            Ok(())
        } else {
            Err(format!("{n} registrations"))
        }
    })
    .await;
    let at_start = fake.registrations().len();

    let (status, _, body) = put_sync(&app, Some("attacker.example")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let regs = fake.registrations();
    assert_eq!(regs.len(), at_start + 1);
    for reg in &regs {
        assert_eq!(reg.body["url"], "https://tickets.example.com/api/inngest");
        assert!(!reg.body.to_string().contains("attacker.example"));
    }

    // Five a minute: four more get through, the sixth is refused without calling Inngest.
    for _ in 0..4 {
        let (status, _, body) = put_sync(&app, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, headers, body) = put_sync(&app, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(fake.registrations().len(), at_start + 5);

    // Inngest refusing is a bad gateway, not an internal error.
    let fake_down = FakeInngest::start().await;
    fake_down.go_down();
    let app = cloud_app(&fake_down.base_url).await;
    let (status, _, body) = put_sync(&app, None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(!body.contains(&fake_down.base_url), "{body}");
}

#[tokio::test]
async fn a_sync_that_cannot_reach_inngest_names_no_upstream_url() {
    let closed = binary::free_port();
    let upstream = format!("http://127.0.0.1:{closed}");
    let app = cloud_app(&upstream).await;
    let (status, _, body) = put_sync(&app, None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(!body.contains(&closed.to_string()), "{body}");
    let json: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["modified"], false);
}

#[tokio::test]
async fn in_embedded_mode_a_put_calls_nobody_and_answers_at_once() {
    let app = spawn_app().await;
    let (status, _, body) = put_sync(&app, Some("attacker.example")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["modified"], false);
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .starts_with("Nothing to sync"),
        "{body}"
    );
    assert!(!body.contains("inngest.com"), "{body}");
}

/// A customer's ticket, routed by the rules engine, then unassigned and assigned to `assignee`
/// by an admin: a person's decision, which routing otherwise never undoes.
async fn ticket_assigned_by_admin(
    app: &TestApp,
    admin: &str,
    customer: &str,
    assignee: &str,
) -> String {
    let id = app
        .create_ticket(customer, "Checkout fails with a database error")
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_processed(app, admin, &id).await;
    for to in [Value::Null, json!(assignee)] {
        let r = app
            .patch(
                &format!("/api/tickets/{id}"),
                admin,
                json!({"assignee_id": to}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["ticket"]["assigned_to"], to);
    }
    let t = app.get(&format!("/api/tickets/{id}"), admin).await.body["ticket"].clone();
    assert_eq!(t["routing_reason"], "Assigned by an admin.", "{t}");
    id
}

/// Adds a comment as `token`; returns its id.
async fn comment(app: &TestApp, token: &str, ticket: &str, body: &str, internal: bool) -> String {
    let r = app
        .post(
            &format!("/api/tickets/{ticket}/comments"),
            token,
            json!({"body": body, "internal": internal}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["comment"]["id"].as_str().unwrap().to_owned()
}

/// Waits until the `on-ticket-updated` run for each of these comments has finished: every mail
/// they call for has been sent or withheld by then.
async fn notified(app: &TestApp, comments: &[&str]) {
    wait_until(DEADLINE, || async {
        let all = runs(app, "on-ticket-updated").await;
        let done = comments
            .iter()
            .filter(|c| {
                all.iter().any(|r| {
                    r.event["data"]["comment_id"] == **c && r.status == RunStatus::Completed
                })
            })
            .count();
        if done == comments.len() {
            Ok(())
        } else {
            Err(format!(
                "{done} of {} comment runs completed",
                comments.len()
            ))
        }
    })
    .await;
}

fn mails_mentioning<'a>(mails: &'a [ReceivedMail], to: &str, text: &str) -> Vec<&'a ReceivedMail> {
    mails
        .iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .filter(|m| m.text().contains(text) || m.html().contains(text))
        .collect()
}

#[tokio::test]
async fn demotion_hands_open_tickets_back_to_routing_and_ends_the_mail() {
    let peer = SmtpPeer::start();
    let app = spawn_app_with(&[("SMTP_URL", &peer.smtp_url())]).await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (leaving, _) = app
        .staff("leaving@example.com", Role::Moderator, &["SQL"])
        .await;
    let (staying, _) = app
        .staff("staying@example.com", Role::Moderator, &["SQL"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;
    let id = ticket_assigned_by_admin(&app, &admin, &customer, &leaving).await;

    let assigned_mails = |mails: &[ReceivedMail]| {
        mails
            .iter()
            .filter(|m| m.to.iter().any(|t| t == "staying@example.com"))
            .filter(|m| m.subject().contains("Ticket assigned to you"))
            .count()
    };
    let assigned_before = assigned_mails(&peer.messages());

    let r = app
        .patch(
            &format!("/api/users/{leaving}"),
            &admin,
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["user"]["role"], "user");
    // The admin's assignment is overridden: routing chooses again among current staff.
    let t = wait_until(DEADLINE, || async {
        let t = app.get(&format!("/api/tickets/{id}"), &admin).await.body["ticket"].clone();
        if t["assigned_to"] == staying.as_str() {
            Ok(t)
        } else {
            Err(t.to_string())
        }
    })
    .await;
    let reason = t["routing_reason"].as_str().unwrap();
    assert!(
        reason != "Assigned by an admin." && reason != ticketing::store::RELEASED_REASON,
        "{t}"
    );
    // The new assignee is told.
    wait_until(DEADLINE, || async {
        let n = assigned_mails(&peer.messages());
        if n > assigned_before {
            Ok(())
        } else {
            Err(format!("{n} assigned mails"))
        }
    })
    .await;

    let note = "INTERNAL: refund approved by finance";
    let c = comment(&app, &admin, &id, note, true).await;
    notified(&app, &[&c]).await;
    let mails = peer.messages();
    assert_eq!(
        mails_mentioning(&mails, "staying@example.com", note).len(),
        1
    );
    assert!(mails_mentioning(&mails, "leaving@example.com", note).is_empty());
    // The former moderator no longer sees the ticket at all.
    let former = app.login("leaving@example.com", "password123").await;
    let r = app.get(&format!("/api/tickets/{id}"), &former).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_mail_is_checked_against_what_the_recipient_may_see_when_sent() {
    let peer = SmtpPeer::start();
    let app = spawn_app_with(&[("SMTP_URL", &peer.smtp_url())]).await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (moderator, _) = app
        .staff("mod@example.com", Role::Moderator, &["SQL"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;
    let id = ticket_assigned_by_admin(&app, &admin, &customer, &moderator).await;
    // A role change that did not hand the tickets back (made in the store directly): the
    // assignment stays, and only the check at send time stands between the note and the mail.
    app.store
        .update_user(
            &moderator,
            ticketing::store::UserPatch {
                role: Some(Role::User),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let note = "INTERNAL: customer is on the enterprise plan";
    let public = "We restarted the database replica.";
    let c1 = comment(&app, &admin, &id, note, true).await;
    let c2 = comment(&app, &admin, &id, public, false).await;
    notified(&app, &[&c1, &c2]).await;
    let mails = peer.messages();
    assert!(mails_mentioning(&mails, "mod@example.com", note).is_empty());
    assert!(mails_mentioning(&mails, "mod@example.com", public).is_empty());
    assert_eq!(
        mails_mentioning(&mails, "customer@example.com", public).len(),
        1
    );
    assert!(mails_mentioning(&mails, "customer@example.com", note).is_empty());
}

#[tokio::test]
async fn clients_cannot_add_metric_series() {
    let app = spawn_app().await;
    for method in ["XYZZY1", "XYZZY2"] {
        for path in ["/api/inngest", "/api/tickets"] {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let r = app
                .client
                .request(m, format!("{}{path}", app.base))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_client_error(),
                "{method} {path}: {}",
                r.status()
            );
        }
    }
    // Page paths serve the web app (200); unknown API paths are 404. Neither names a series.
    for path in ["/nope/1", "/nope/2"] {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    for path in ["/api/nope/1", "/api/nope/2", "/api/nothing-here"] {
        let r = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("XYZZY"), "{text}");
    assert!(!text.contains("/nope"), "{text}");
    assert!(!text.contains("nothing-here"), "{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
}

#[tokio::test]
async fn only_short_safe_request_ids_are_kept() {
    let app = spawn_app().await;
    let echoed = |id: String| {
        let app = &app;
        async move {
            let r = app
                .client
                .get(format!("{}/healthz", app.base))
                .header("x-request-id", id)
                .send()
                .await
                .unwrap();
            r.headers()["x-request-id"].to_str().unwrap().to_owned()
        }
    };
    assert_eq!(echoed("abc-123_OK.1".into()).await, "abc-123_OK.1");
    for forged in [
        "forged}: ticketing::http::auth: account registered user_id=admin".to_owned(),
        "a".repeat(65),
        "tab\there".to_owned(),
    ] {
        let got = echoed(forged.clone()).await;
        assert_ne!(got, forged);
        assert!(
            uuid::Uuid::parse_str(&got).is_ok(),
            "a fresh id, got {got:?}"
        );
    }
}

#[tokio::test]
async fn path_rejections_are_json_errors() {
    let app = spawn_app().await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    for (method, path) in [
        (Method::GET, "/api/tickets/%FF"),
        (Method::GET, "/api/tickets/%FF/comments"),
        (Method::POST, "/api/tickets/%FF/retriage"),
        (Method::GET, "/api/runs/%C3%28"),
    ] {
        let r = app.request(method.clone(), path, Some(&admin), None).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "invalid_path", "{method} {path}: {:?}", r.body);
        assert!(r.body["error"]["message"].is_string());
    }
    let r = app
        .request(
            Method::PATCH,
            "/api/users/%FF",
            Some(&admin),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    // Queries and bodies already answered in the same shape.
    let r = app
        .request(Method::GET, "/api/tickets?limit=%FF", Some(&admin), None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn what_the_service_writes_is_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("srv/data");
    let mut env: BTreeMap<String, String> = binary::env(&data, binary::free_port());
    env.remove("JWT_SECRET");
    let server = Binary::spawn_with_umask(&env, "022", &tmp.path().join("first.log"));
    server
        .wait_for(
            "/readyz",
            |s, _| s == StatusCode::OK,
            Duration::from_secs(60),
        )
        .await;
    server.register("ann@example.com").await;
    let outbox = data.join("outbox");
    let eml = wait_until(DEADLINE, async || {
        let found = std::fs::read_dir(&outbox).ok().and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        found.ok_or_else(|| format!("no mail in the outbox\n{}", server.log()))
    })
    .await;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&tmp.path().join("srv")), 0o700);
    assert_eq!(mode(&outbox), 0o700);
    for file in [
        data.join("ticketing.db"),
        data.join("ticketing.db-wal"),
        data.join("ticketing.db-shm"),
        data.join("jwt_secret"),
        eml,
    ] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert!(
        !server.log().contains("DATA_DIR can be read"),
        "{}",
        server.log()
    );
    drop(server);

    // A folder that exists and is open to others is reported once, and left as it is.
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut env = binary::env(&shared, binary::free_port());
    env.remove("JWT_SECRET");
    let server = Binary::spawn_with_umask(&env, "022", &tmp.path().join("second.log"));
    server
        .wait_for(
            "/readyz",
            |s, _| s == StatusCode::OK,
            Duration::from_secs(60),
        )
        .await;
    let log = server.log();
    assert_eq!(
        log.matches("DATA_DIR can be read by other users").count(),
        1,
        "{log}"
    );
    assert_eq!(mode(&shared), 0o755);
    assert_eq!(mode(&shared.join("ticketing.db")), 0o600);
}

fn has_no_key(ticket: &Value, key: &str) -> bool {
    ticket.as_object().is_some_and(|o| !o.contains_key(key))
}

#[tokio::test]
async fn the_creator_sees_a_customer_view_and_staff_see_everything() {
    let peer = SmtpPeer::start();
    let app = spawn_app_with(&[("SMTP_URL", &peer.smtp_url())]).await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (mod_id, moderator) = app
        .staff("dana@example.com", Role::Moderator, &["SQL"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;

    let r = app
        .post(
            "/api/tickets",
            &customer,
            json!({"title": "Orders page times out", "description": "Our Postgres database logs deadlocks."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let created = &r.body["ticket"];
    assert_eq!(created["view"], "customer");
    assert!(
        has_no_key(created, "triage") && has_no_key(created, "routing_reason"),
        "{created}"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let staff_view = wait_processed(&app, &admin, &id).await;
    assert_eq!(staff_view["assigned_to"], mod_id.as_str());
    // Without a name, the part of the address before the `@`.
    assert_eq!(staff_view["assignee_name"], "dana");

    let r = app
        .patch(
            &format!("/api/users/{mod_id}"),
            &admin,
            json!({"name": "Dana Scully"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let mine = app.get(&format!("/api/tickets/{id}"), &customer).await.body["ticket"].clone();
    assert_eq!(mine["view"], "customer", "{mine}");
    for key in [
        "status",
        "priority",
        "category",
        "assigned_to",
        "title",
        "description",
    ] {
        assert_eq!(mine[key], staff_view[key], "{key}");
    }
    assert_eq!(mine["assignee_name"], "Dana Scully");
    assert!(
        has_no_key(&mine, "triage") && has_no_key(&mine, "routing_reason"),
        "{mine}"
    );
    let text = mine.to_string();
    for internal in [
        "sentiment",
        "confidence",
        "required_skills",
        "helpful_notes",
        "matches",
    ] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
    let list = app.get("/api/tickets", &customer).await.body["tickets"].clone();
    assert_eq!(list[0]["view"], "customer");
    assert!(has_no_key(&list[0], "triage"), "{list}");

    // Staff get everything, the assignee's name too.
    let theirs = app
        .get(&format!("/api/tickets/{id}"), &moderator)
        .await
        .body["ticket"]
        .clone();
    assert_eq!(theirs["view"], "staff");
    assert!(theirs["triage"]["sentiment"].is_string(), "{theirs}");
    assert!(theirs["routing_reason"].is_string());
    assert_eq!(theirs["assignee_name"], "Dana Scully");
    // A moderator's own ticket is still the staff view.
    let r = app
        .post(
            "/api/tickets",
            &moderator,
            json!({"title": "My laptop", "description": "It will not boot."}),
        )
        .await;
    assert_eq!(r.body["ticket"]["view"], "staff", "{:?}", r.body);
    assert!(r.body["ticket"].as_object().unwrap().contains_key("triage"));

    // The assignee replies: the customer's mail names them, not their address.
    let r = app
        .post(
            &format!("/api/tickets/{id}/comments"),
            &moderator,
            json!({"body": "Looking at it now."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let reply = wait_until(DEADLINE, || async {
        peer.messages()
            .into_iter()
            .find(|m| {
                m.to.iter().any(|t| t == "customer@example.com")
                    && m.subject().starts_with("New reply")
            })
            .ok_or_else(|| "no reply mail yet".to_owned())
    })
    .await;
    assert!(
        reply.text().contains("Dana Scully replied"),
        "{}",
        reply.text()
    );
    assert!(
        !reply.text().contains("dana@example.com") && !reply.html().contains("dana@example.com")
    );
    // The customer closes it and still gets the customer view back.
    let r = app
        .patch(
            &format!("/api/tickets/{id}"),
            &customer,
            json!({"status": "closed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["ticket"]["view"], "customer");
    assert!(has_no_key(&r.body["ticket"], "triage"));

    // Both views are in the OpenAPI document.
    let doc = app
        .request(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let schemas = &doc["components"]["schemas"];
    for name in ["CustomerTicket", "StaffTicket", "TicketBody"] {
        assert!(schemas[name].is_object(), "{name} missing");
    }
}

#[tokio::test]
async fn dev_mode_on_a_public_address_is_announced_loudly() {
    let fake = FakeInngest::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let warning = "INNGEST_DEV IS SET AND HOST IS NOT A LOOPBACK ADDRESS";
    for (host, warned) in [("0.0.0.0", true), ("127.0.0.1", false)] {
        let mut env = binary::env(&tmp.path().join(host), binary::free_port());
        env.insert("HOST".into(), host.into());
        env.insert("INNGEST_DEV".into(), fake.base_url.clone());
        let server = Binary::start(&env).await;
        assert_eq!(
            server.log().contains(warning),
            warned,
            "HOST={host}\n{}",
            server.log()
        );
    }
}
