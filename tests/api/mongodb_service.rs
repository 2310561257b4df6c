//! The service on MongoDB, end to end, with the embedded executor keeping its runs in the same
//! database: the real binary against the test's MongoDB server (`MONGODB_URI`, else the peer of
//! `tests/mongo_peer`) and a real SMTP server. An account made on the command line, a signup, a
//! ticket triaged, routed and mailed, `ticketing runs …` on the same database while the server
//! runs, a SIGKILL and a restart that carries the waiting run to its end.

use crate::mongo_server;
use crate::support::binary::{self, Binary};
use crate::support::smtp_peer::{ReceivedMail, SmtpPeer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const ADMIN: &str = "mongo-admin@example.com";
const DBA: &str = "mongo-dba@example.com";
const CUSTOMER: &str = "mongo-customer@example.com";
const PASSWORD: &str = "password123";
const TITLE: &str = "Checkout fails with database deadlocks";
const APP_URL: &str = "http://support.test:8080";

fn cli(env: &BTreeMap<String, String>, args: &[&str]) -> String {
    let out = binary::run(env, args);
    assert!(
        out.status.success(),
        "ticketing {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn ticket(server: &Binary, token: &str, id: &str) -> Value {
    let (status, body) = server.get(&format!("/api/tickets/{id}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["ticket"].clone()
}

/// The `on-ticket-created` run of the ticket, in full.
async fn ticket_run(server: &Binary, admin: &str, ticket_id: &str) -> Option<Value> {
    for summary in server.runs(admin).await {
        if summary["function"] != "on-ticket-created" {
            continue;
        }
        let run = server.run(admin, summary["id"].as_str()?).await;
        if run["event"]["data"]["ticket_id"] == ticket_id {
            return Some(run);
        }
    }
    None
}

fn waits_for_resolution(run: &Value) -> bool {
    run["steps"].as_array().is_some_and(|steps| {
        steps
            .iter()
            .any(|s| s["name"] == "wait-for-resolution" && s["status"] == "waiting")
    })
}

fn subjects_to(mails: &[ReceivedMail], address: &str) -> Vec<String> {
    let mut subjects: Vec<String> = mails
        .iter()
        .filter(|m| m.to.iter().any(|t| t == address))
        .map(ReceivedMail::subject)
        .collect();
    subjects.sort();
    subjects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_is_triaged_routed_mailed_and_kept_across_a_restart_on_mongodb() {
    let mongo = mongo_server::mongo().await;
    let smtp = SmtpPeer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let database = format!("ticketing_service_{}", uuid::Uuid::new_v4().simple());
    let mut env = binary::env(dir.path(), binary::free_port());
    env.extend([
        ("DATABASE_URL".into(), mongo.uri.clone()),
        ("MONGODB_DB".into(), database.clone()),
        ("SMTP_URL".into(), smtp.smtp_url()),
        ("APP_URL".into(), APP_URL.into()),
        ("BOOTSTRAP_ADMIN_EMAIL".into(), ADMIN.into()),
        ("BOOTSTRAP_ADMIN_PASSWORD".into(), PASSWORD.into()),
    ]);

    // A moderator for database work, made on the command line before the server starts.
    let created = cli(
        &env,
        &[
            "user",
            "create",
            "--email",
            DBA,
            "--password",
            PASSWORD,
            "--role",
            "moderator",
            "--skills",
            "SQL, Postgres",
        ],
    );
    let dba_id = created
        .trim()
        .rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .expect("created <role> <email> (<id>)")
        .to_owned();

    let mut server = Binary::start(&env).await;
    let admin = server.login(ADMIN, PASSWORD).await;
    let (_, customer) = server.register(CUSTOMER).await;
    let (status, body) = server
        .send(
            Method::POST,
            "/api/tickets",
            &customer,
            json!({
                "title": TITLE,
                "description": "Since 9am every checkout fails. Our Postgres database logs show \
                                deadlocks on the orders table and queries time out.",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["ticket"]["id"].as_str().expect("ticket id").to_owned();

    // Triaged by the rules engine and routed to the moderator whose skills match.
    let triaged = server
        .until("triage and routing", Duration::from_secs(60), async || {
            let t = ticket(&server, &admin, &id).await;
            (t["triage_status"] != "pending" && t["routing_reason"].is_string()).then_some(t)
        })
        .await;
    assert_eq!(triaged["triage_status"], "done", "{triaged}");
    assert_eq!(triaged["triage"]["source"], "rules", "{triaged}");
    assert_eq!(triaged["triage"]["required_skills"], json!(["Database"]));
    assert_eq!(triaged["assigned_to"], dba_id.as_str(), "{triaged}");
    let run = server
        .until(
            "the run to wait for the resolution",
            Duration::from_secs(60),
            async || {
                ticket_run(&server, &admin, &id)
                    .await
                    .filter(waits_for_resolution)
            },
        )
        .await;
    let run_id = run["id"].as_str().expect("run id").to_owned();

    // Three welcomes, the receipt to the customer, the assignment to the moderator.
    let mails = smtp.wait_for(5, Duration::from_secs(60)).await;
    assert_eq!(mails.len(), 5, "{:?}", subjects_to(&mails, CUSTOMER));
    assert_eq!(subjects_to(&mails, ADMIN), ["Welcome to Support"]);
    assert_eq!(
        subjects_to(&mails, CUSTOMER),
        [
            format!("We received your ticket: {TITLE}"),
            "Welcome to Support".to_owned()
        ]
    );
    let to_dba = subjects_to(&mails, DBA);
    assert_eq!(to_dba.len(), 2, "{to_dba:?}");
    assert!(
        to_dba
            .iter()
            .any(|s| s.ends_with(&format!("Ticket assigned to you: {TITLE}"))),
        "{to_dba:?}"
    );

    // The runs from the command line, on the database the server is using.
    let listed = cli(&env, &["runs", "list", "--function", "on-ticket-created"]);
    assert!(
        listed.contains(&run_id) && listed.contains("running"),
        "{listed}"
    );
    let report = cli(&env, &["runs", "show", &run_id]);
    for expected in [
        "ticket/created",
        id.as_str(),
        "wait-for-resolution",
        "waiting",
    ] {
        assert!(report.contains(expected), "{expected:?} in:\n{report}");
    }
    let welcomes = cli(&env, &["runs", "list", "--function", "on-user-signup"]);
    assert_eq!(
        welcomes.lines().count(),
        4,
        "a header and three runs: {welcomes}"
    );

    // Killed like a crash, started again on the same database.
    server.kill();
    let server = Binary::start(&env).await;
    let admin = server.login(ADMIN, PASSWORD).await;
    let kept = ticket(&server, &admin, &id).await;
    for field in [
        "status",
        "triage_status",
        "category",
        "priority",
        "assigned_to",
    ] {
        assert_eq!(kept[field], triaged[field], "{field} is kept: {kept}");
    }
    let dba = server.login(DBA, PASSWORD).await;

    // The run still waits; the moderator resolves the ticket, and the run ends.
    let (status, body) = server
        .send(
            Method::PATCH,
            &format!("/api/tickets/{id}"),
            &dba,
            json!({"status": "resolved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let finished = server
        .until(
            "the ticket's run to complete",
            Duration::from_secs(60),
            async || {
                let run = server.run(&admin, &run_id).await;
                (run["status"] == "completed").then_some(run)
            },
        )
        .await;
    assert!(finished["ended_at"].is_string(), "{finished}");

    assert!(
        smtp.wait_for(6, Duration::from_secs(60))
            .await
            .iter()
            .any(|m| m.to == [CUSTOMER]
                && m.subject() == format!("Your ticket is now resolved: {TITLE}")),
        "the customer hears of the resolution"
    );

    // A re-run written by the command line is carried out by the server, and sends nothing the
    // first run sent.
    let welcome_run = server
        .runs(&admin)
        .await
        .into_iter()
        .find(|r| r["function"] == "on-user-signup")
        .and_then(|r| r["id"].as_str().map(str::to_owned))
        .expect("a welcome run");
    let out = cli(&env, &["runs", "rerun", &welcome_run]);
    let rerun_id = out
        .split_whitespace()
        .nth(2)
        .expect("started run <id>")
        .to_owned();
    let rerun = server
        .until(
            "the re-run to complete",
            Duration::from_secs(60),
            async || {
                let run = server.run(&admin, &rerun_id).await;
                (run["status"] == "completed").then_some(run)
            },
        )
        .await;
    assert_eq!(rerun["rerun_of"], welcome_run.as_str());
    assert_eq!(smtp.messages().len(), 6, "no mail twice");

    drop(server);
    ::mongodb::Client::with_uri_str(&mongo.uri)
        .await
        .expect("MongoDB client")
        .database(&database)
        .drop()
        .await
        .expect("drop the test database");
}
