//! Tried as a new user would: the real binary in an empty directory with nothing configured
//! (rules engine, mail written to `DATA_DIR/outbox`), following the README's walk-through.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pipeline_common::wait_until;
use crate::support::binary::KillOnDrop;
use crate::support::free_port;
use crate::support::mime::{self, ParsedMail};

/// The `.eml` files in the outbox, parsed.
fn outbox(data_dir: &Path) -> Vec<ParsedMail> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("outbox")) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| mime::parse(&std::fs::read_to_string(p).unwrap()))
        .collect()
}

#[tokio::test]
async fn a_new_user_sees_the_ticket_triaged_assigned_and_mailed_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // No AI key, no SMTP, no secrets: only where to listen and the README's bootstrap admin.
    let _server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_ticketing"))
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATA_DIR", &data_dir)
            .env("PORT", port.to_string())
            .env("BOOTSTRAP_ADMIN_EMAIL", "admin@example.com")
            .env("BOOTSTRAP_ADMIN_PASSWORD", "change-me-now")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts"),
    );
    ticketing::tls::install_crypto_provider();
    let client = reqwest::Client::new();
    wait_until(Duration::from_secs(30), || async {
        match client.get(format!("{base}/readyz")).send().await {
            Ok(r) if r.status() == StatusCode::OK => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut req = client.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, ann) = post(
        "/api/auth/register",
        None,
        json!({"email": "ann@example.com", "password": "correct horse", "name": "Ann"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ann}");
    let token = ann["token"].as_str().unwrap().to_owned();
    let (status, created) = post(
        "/api/tickets",
        Some(&token),
        json!({"title": "Cannot log in",
               "description": "Since this morning the login page says my password is wrong."}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["ticket"]["id"].as_str().unwrap().to_owned();
    let opened = Instant::now();

    // Within seconds: triaged by the rules engine and assigned (to the only staff member).
    let t = wait_until(Duration::from_secs(10), || async {
        let t: Value = client
            .get(format!("{base}/api/tickets/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let t = t["ticket"].clone();
        if t["triage_status"] != "pending" && t["assigned_to"].is_string() {
            Ok(t)
        } else {
            Err(t.to_string())
        }
    })
    .await;
    assert_eq!(t["triage_status"], "done", "{t}");
    assert_eq!(t["category"], "account", "{t}");
    // The creator sees who works on it, and none of what triage and routing found.
    assert_eq!(t["view"], "customer", "{t}");
    assert_eq!(t["assignee_name"], "admin", "{t}");
    assert!(
        t.get("triage").is_none() && t.get("routing_reason").is_none(),
        "{t}"
    );
    let (status, admin_login) = post(
        "/api/auth/login",
        None,
        json!({"email": "admin@example.com", "password": "change-me-now"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{admin_login}");
    let staff: Value = client
        .get(format!("{base}/api/tickets/{id}"))
        .bearer_auth(admin_login["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(staff["ticket"]["triage"]["source"], "rules", "{staff}");
    assert!(staff["ticket"]["routing_reason"].is_string());

    // And the mail, as files: welcomes, the receipt for Ann, the assignment for the admin.
    let link = format!("{base}/tickets/{id}");
    let mails = wait_until(Duration::from_secs(10), || async {
        let mails = outbox(&data_dir);
        if mails.len() >= 4 {
            Ok(mails)
        } else {
            Err(format!(
                "{:?}",
                mails.iter().map(|m| m.subject()).collect::<Vec<_>>()
            ))
        }
    })
    .await;
    let elapsed = opened.elapsed();
    let find = |to: &str, subject: &str| {
        let found: Vec<&ParsedMail> = mails
            .iter()
            .filter(|m| m.header("To") == Some(to) && m.subject() == Some(subject))
            .collect();
        assert_eq!(found.len(), 1, "{to} {subject}: {:#?}", mails);
        found[0].clone()
    };
    find("admin@example.com", "Welcome to Support");
    find("ann@example.com", "Welcome to Support");
    let received = find("ann@example.com", "We received your ticket: Cannot log in");
    assert!(received.text.unwrap().contains(&link));
    let assigned = mails
        .iter()
        .find(|m| {
            m.header("To") == Some("admin@example.com")
                && m.subject()
                    .is_some_and(|s| s.ends_with("Ticket assigned to you: Cannot log in"))
        })
        .unwrap_or_else(|| panic!("no assignment mail: {mails:#?}"));
    assert!(
        assigned
            .html
            .as_deref()
            .unwrap()
            .contains(&format!("href=\"{link}\""))
    );
    assert_eq!(mails.len(), 4);
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}
