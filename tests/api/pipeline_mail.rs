//! Every notification through a real SMTP server, end to end: signups, a ticket's lifecycle
//! through the REST API, and replays of the runs that sent them.

use reqwest::StatusCode;
use serde_json::json;
use ticketing::domain::user::Role;
use ticketing::inngest::executor::RunStatus;

use crate::helpers::spawn_app_with;
use crate::pipeline_common::*;
use crate::support::smtp_peer::SmtpPeer;

const TITLE: &str = "Orders page times out";

#[tokio::test]
async fn every_mail_reaches_the_right_people_once() {
    let peer = SmtpPeer::start();
    let smtp_url = peer.smtp_url();
    let app = spawn_app_with(&[("SMTP_URL", &smtp_url), ("APP_URL", APP_URL)]).await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (dba_id, dba) = app
        .staff("dba@example.com", Role::Moderator, &["SQL"])
        .await;
    let (_, customer) = app.register("customer@example.com").await;

    let id = open_db_ticket(&app, &customer, TITLE).await;
    let t = wait_processed(&app, &admin, &id).await;
    assert_eq!(t["assigned_to"], dba_id.as_str(), "{t}");
    let link = format!("{APP_URL}/tickets/{id}");

    // The assignee starts work, answers publicly, and an admin leaves an internal note.
    let r = app
        .patch(
            &format!("/api/tickets/{id}"),
            &dba,
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .post(
            &format!("/api/tickets/{id}/comments"),
            &dba,
            json!({"body": "We are restarting the database replica now."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app
        .post(
            &format!("/api/tickets/{id}/comments"),
            &admin,
            json!({"body": "INTERNAL: customer is on the enterprise plan.", "internal": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // 3 welcomes, received, assigned, status changed, public reply, internal note to the assignee.
    let mails = peer.wait_for(8, DEADLINE).await;
    // Nothing else is on its way: every run that mails has finished (or waits for resolution).
    settle(&app).await;
    let mails_now = peer.messages();
    assert_eq!(mails_now.len(), 8, "{:#?}", summary(&mails_now));
    assert_eq!(mails.len(), 8);

    for m in &mails {
        assert_eq!(m.from, "support@localhost");
    }
    for who in [
        "admin@example.com",
        "dba@example.com",
        "customer@example.com",
    ] {
        let w = the_mail(&mails, who, "Welcome to Support");
        assert_links_to(w, &format!("{APP_URL}/tickets"));
    }

    let received = the_mail(
        &mails,
        "customer@example.com",
        &format!("We received your ticket: {TITLE}"),
    );
    assert_links_to(received, &link);

    let high = if t["priority"] == "high" {
        "[High] "
    } else {
        ""
    };
    let assigned = the_mail(
        &mails,
        "dba@example.com",
        &format!("{high}Ticket assigned to you: {TITLE}"),
    );
    assert_links_to(assigned, &link);
    assert!(assigned.text().contains("Why you: Moderator matches"));

    let status = the_mail(
        &mails,
        "customer@example.com",
        &format!("Your ticket is now in progress: {TITLE}"),
    );
    assert_links_to(status, &link);

    let reply = the_mail(
        &mails,
        "customer@example.com",
        &format!("New reply on: {TITLE}"),
    );
    assert_links_to(reply, &link);
    assert!(reply.text().contains("restarting the database replica"));

    // The internal note reached the assignee, never the creator.
    let note = the_mail(&mails, "dba@example.com", &format!("New reply on: {TITLE}"));
    assert!(note.text().contains("enterprise plan"));
    for m in mails_to(&mails, "customer@example.com") {
        assert!(!m.text().contains("enterprise plan"), "{}", m.text());
        assert!(!m.html().contains("enterprise plan"));
    }
    // Nobody is told about their own action.
    assert_eq!(mails_to(&mails, "dba@example.com").len(), 3);
    assert_eq!(mails_to(&mails, "admin@example.com").len(), 1);

    // Replays send nothing twice: rerun every run that mailed...
    let exec = executor(&app);
    let mut reruns = Vec::new();
    for function in ["on-user-signup", "on-ticket-updated", "on-ticket-created"] {
        for run in runs(&app, function).await {
            reruns.push((function, exec.rerun(&run.id).await.expect("rerun")));
        }
    }
    assert_eq!(reruns.len(), 3 + 3 + 1);
    let mut already_sent = 0;
    for (function, rerun_id) in &reruns {
        let run = wait_until(DEADLINE, || async {
            let run = exec.get_run(rerun_id).await.unwrap().unwrap();
            let settled = match *function {
                "on-ticket-created" => is_waiting_for_event(&run),
                _ => run.status == RunStatus::Completed,
            };
            if settled {
                Ok(run)
            } else {
                Err(format!(
                    "{function} rerun: {:?} {:?}",
                    run.status, run.history
                ))
            }
        })
        .await;
        already_sent += step_results_equal(&run, &json!("already_sent"));
    }
    // ...each found its mail recorded: 3 welcomes, status, reply, note, received.
    assert_eq!(already_sent, 7);

    // ...and deliver the ticket's event again: its id was seen, so no run starts.
    let created = runs(&app, "on-ticket-created").await;
    let original = created.iter().find(|r| r.rerun_of.is_none()).unwrap();
    exec.publish(vec![original.event.clone()]).await.unwrap();
    assert_eq!(runs(&app, "on-ticket-created").await.len(), created.len());

    let after = peer.messages();
    assert_eq!(after.len(), 8, "{:#?}", summary(&after));
}

/// Waits until signup and update runs completed and the ticket's run waits for resolution.
async fn settle(app: &crate::helpers::TestApp) {
    wait_until(DEADLINE, || async {
        let mut open = Vec::new();
        for function in ["on-user-signup", "on-ticket-updated"] {
            for r in runs(app, function).await {
                if r.status != RunStatus::Completed {
                    open.push(format!("{function} {} {:?}", r.id, r.status));
                }
            }
        }
        for r in runs(app, "on-ticket-created").await {
            if !is_waiting_for_event(&r) {
                open.push(format!("on-ticket-created {} {:?}", r.id, r.status));
            }
        }
        if open.is_empty() {
            Ok(())
        } else {
            Err(open.join(", "))
        }
    })
    .await
}

/// A burst of notifications (many runs mailing at once) must not open more connections than
/// the pool keeps: servers cap connections per client, and the peer serves only four at a
/// time. Each send used to open its own connection, and the ones beyond the cap stalled until
/// the SMTP timeout, holding their steps for seconds.
#[tokio::test]
async fn a_burst_of_mail_is_delivered_promptly() {
    use ticketing::mail::{Email, MailSettings, RawMailEnv, Templates};
    let peer = SmtpPeer::start();
    let raw = RawMailEnv {
        smtp_url: Some(peer.smtp_url()),
        ..RawMailEnv::default()
    };
    let mailer = MailSettings::parse(&raw, std::path::Path::new("unused"))
        .unwrap()
        .build()
        .unwrap();
    let templates = Templates::new(APP_URL, "Support");
    let started = std::time::Instant::now();
    let sends = (0..12).map(|i| {
        let mailer = mailer.clone();
        let email = Email::new(format!("user{i}@example.com"), templates.welcome(None));
        tokio::spawn(async move { mailer.send(&email).await })
    });
    for send in futures::future::join_all(sends).await {
        send.unwrap().unwrap();
    }
    assert_eq!(peer.messages().len(), 12);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
