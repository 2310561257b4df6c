//! Data survives restarts of the real binary; concurrent clients lose nothing.

use crate::helpers::*;
use crate::support::binary::{self, Binary};
use crate::support::free_port;
use reqwest::StatusCode;
use serde_json::json;

async fn start_binary(data_dir: &std::path::Path, port: u16) -> Binary {
    Binary::start(&binary::env(data_dir, port)).await
}

#[tokio::test]
async fn data_survives_a_restart_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let client = reqwest::Client::new();
    let server = start_binary(dir.path(), port).await;
    let r: serde_json::Value = client
        .post(format!("{}/api/auth/register", server.base))
        .json(&json!({"email": "ann@example.com", "password": "password123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["token"].as_str().unwrap().to_owned();
    let created: serde_json::Value = client
        .post(format!("{}/api/tickets", server.base))
        .bearer_auth(&token)
        .json(&json!({"title": "Lost after restart?", "description": "hopefully not"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    drop(server);

    // The generated JWT secret persisted too, so the old token still works.
    let server = start_binary(dir.path(), port).await;
    let listed: serde_json::Value = client
        .get(format!("{}/api/tickets", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["tickets"][0]["id"], created["ticket"]["id"]);
    assert!(dir.path().join("ticketing.db").exists());
}

#[tokio::test]
async fn concurrent_ticket_creation_loses_nothing() {
    let app = spawn_app().await;
    let mut tokens = Vec::new();
    for i in 0..8 {
        tokens.push(app.register(&format!("user{i}@example.com")).await.1);
    }
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        for j in 0..25 {
            let client = app.client.clone();
            let url = format!("{}/api/tickets", app.base);
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({"title": format!("Ticket {i}-{j}"), "description": "concurrent"}))
                    .send()
                    .await
                    .map(|r| r.status())
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), StatusCode::CREATED);
    }
    assert_eq!(app.store.stats().await.unwrap().total, 200);
    let created = app
        .events()
        .await
        .into_iter()
        .filter(|e| e.name == "ticket/created")
        .count();
    assert_eq!(created, 200, "one event per ticket");
}

#[tokio::test]
async fn cli_creates_accounts_and_config_errors_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = binary::env(dir.path(), free_port());
    let out = binary::run(
        &env,
        &[
            "user",
            "create",
            "--email",
            "Mod@Example.com",
            "--password",
            "password123",
            "--role",
            "moderator",
            "--skills",
            "SQL, React",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created moderator mod@example.com"));
    let again = binary::run(
        &env,
        &[
            "user",
            "create",
            "--email",
            "mod@example.com",
            "--password",
            "password123",
            "--role",
            "moderator",
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    env.insert("PORT".into(), "eighty".into());
    let bad = binary::run(&env, &[]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: PORT:"), "{stderr}");
}
