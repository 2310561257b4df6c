//! `ticketing runs …` on the data directory of a running server: the listing and report are
//! readable, and re-runs and cancellations made from the command line are carried out by the
//! server.

use crate::support::binary::{self, Binary};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Output;
use std::time::Duration;

const ADMIN: &str = "cli-admin@example.com";
const PASSWORD: &str = "password123";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(env: &BTreeMap<String, String>, args: &[&str]) -> String {
    let out = binary::run(env, args);
    assert!(
        out.status.success(),
        "ticketing {}: {}",
        args.join(" "),
        stderr(&out)
    );
    stdout(&out)
}

async fn poll_run(server: &Binary, admin: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    server
        .until(&format!("run {id}"), Duration::from_secs(30), async || {
            let (status, body) = server.get(&format!("/api/runs/{id}"), admin).await;
            if status == StatusCode::OK && done(&body["run"]) {
                Ok(body["run"].clone())
            } else {
                Err(format!("{body:#}"))
            }
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_commands_work_on_the_store_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = binary::env(dir.path(), binary::free_port());
    env.insert("BOOTSTRAP_ADMIN_EMAIL".into(), ADMIN.into());
    env.insert("BOOTSTRAP_ADMIN_PASSWORD".into(), PASSWORD.into());
    let server = Binary::start(&env).await;
    let admin = server.login(ADMIN, PASSWORD).await;
    let (_, user) = server.register("cli-user@example.com").await;
    let ticket = server.create_ticket(&user, "Export to CSV is empty").await;

    // The ticket's run waits for the resolution; both welcome runs are done.
    let (ticket_run, welcome_run) = server
        .until(
            "the ticket's run to wait",
            Duration::from_secs(30),
            async || {
                let runs = server.runs(&admin).await;
                let find = |function: &str, status: &str| {
                    runs.iter()
                        .filter(|r| r["function"] == function && r["status"] == status)
                        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
                        .collect::<Vec<_>>()
                };
                let waiting = find("on-ticket-created", "running");
                let welcomed = find("on-user-signup", "completed");
                if let Some(t) = waiting.first()
                    && welcomed.len() == 2
                {
                    let run = server.run(&admin, t).await;
                    let wait = run["steps"]
                        .as_array()
                        .and_then(|s| s.iter().find(|s| s["name"] == "wait-for-resolution"))
                        .cloned();
                    if wait.is_some_and(|w| w["status"] == "waiting") {
                        return Ok((t.clone(), welcomed[0].clone()));
                    }
                }
                Err(format!("runs: {runs:#?}"))
            },
        )
        .await;

    // list: a header, one line per run, filters.
    let all = ok(&env, &["runs", "list"]);
    let lines: Vec<&str> = all.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("FUNCTION"),
        "{all}"
    );
    assert_eq!(lines.len(), 4, "three runs: {all}");
    let running = ok(
        &env,
        &[
            "runs",
            "list",
            "--function",
            "on-ticket-created",
            "--status",
            "running",
        ],
    );
    assert_eq!(running.lines().count(), 2, "{running}");
    assert!(
        running.contains(&ticket_run) && running.contains("running"),
        "{running}"
    );
    let welcomes = ok(
        &env,
        &["runs", "list", "--function", "ticketing-on-user-signup"],
    );
    assert!(
        welcomes.contains(&welcome_run) && !welcomes.contains(&ticket_run),
        "{welcomes}"
    );
    assert_eq!(
        ok(&env, &["runs", "list", "--status", "failed"]),
        "no runs\n"
    );

    // show: the event, each step with attempts and timing, the history.
    let report = ok(&env, &["runs", "show", &ticket_run]);
    for expected in [
        "on-ticket-created (ticketing-on-ticket-created)",
        "status    running",
        "ticket/created",
        &ticket,
        "steps",
        "triage",
        "notify-creator",
        "wait-for-resolution",
        "waiting",
        "history",
    ] {
        assert!(report.contains(expected), "{expected:?} in:\n{report}");
    }

    // rerun: written by the CLI, run by the server.
    let out = ok(&env, &["runs", "rerun", &welcome_run]);
    let new_id = out
        .split_whitespace()
        .nth(2)
        .expect("started run <id>")
        .to_owned();
    assert!(out.starts_with("started run "), "{out}");
    let rerun = poll_run(&server, &admin, &new_id, |r| r["status"] == "completed").await;
    assert_eq!(rerun["rerun_of"], welcome_run.as_str());

    // cancel: the server's run stops and its deadline timer is gone.
    let out = ok(&env, &["runs", "cancel", &ticket_run]);
    assert!(
        out.starts_with(&format!("cancelled run {ticket_run}")),
        "{out}"
    );
    let cancelled = poll_run(&server, &admin, &ticket_run, |r| r["status"] == "cancelled").await;
    assert!(cancelled["ended_at"].is_string());
    let again = binary::run(&env, &["runs", "cancel", &ticket_run]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already cancelled"),
        "{}",
        stderr(&again)
    );

    // Errors are one clear line.
    let bad = binary::run(&env, &["runs", "show", "not-a-run"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("is not a run id"), "{}", stderr(&bad));
    let missing = ticketing::domain::new_id();
    let bad = binary::run(&env, &["runs", "show", &missing]);
    assert!(
        stderr(&bad).contains(&format!("run {missing} not found")),
        "{}",
        stderr(&bad)
    );
    let bad = binary::run(&env, &["runs", "rerun", &missing]);
    assert!(!bad.status.success());
    let bad = binary::run(&env, &["runs", "list", "--function", "nope"]);
    assert!(
        stderr(&bad).contains("unknown function"),
        "{}",
        stderr(&bad)
    );
    let bad = binary::run(&env, &["runs", "list", "--status", "bogus"]);
    assert_eq!(bad.status.code(), Some(2), "clap rejects it");
    assert!(stderr(&bad).contains("possible values"), "{}", stderr(&bad));
}

#[test]
fn runs_commands_have_help_and_refuse_under_inngest() {
    let dir = tempfile::tempdir().unwrap();
    let env = binary::env(dir.path(), binary::free_port());
    let top = ok(&env, &["--help"]);
    assert!(top.contains("runs"), "{top}");
    let runs = ok(&env, &["runs", "--help"]);
    for sub in ["list", "show", "rerun", "cancel"] {
        assert!(runs.contains(sub), "{sub} in {runs}");
        let help = ok(&env, &["runs", sub, "--help"]);
        assert!(help.contains("Usage: ticketing runs"), "{help}");
    }
    assert!(ok(&env, &["runs", "list", "--help"]).contains("--function"));

    let mut dev = env.clone();
    dev.insert("INNGEST_DEV".into(), "1".into());
    let out = binary::run(&dev, &["runs", "list"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("managed by Inngest"),
        "{}",
        stderr(&out)
    );
}
