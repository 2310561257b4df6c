//! `RUNS_RETENTION`: the embedded executor forgets finished runs and the event ids it
//! de-duplicates by once they are older than the retention, and never a run still going, like
//! a ticket waiting out its 72-hour SLA.

use ticketing::domain::user::Role;
use ticketing::inngest::executor::RunFilter;

use crate::helpers::*;
use crate::pipeline_common::{
    DEADLINE, executor, function_id, is_waiting_for_event, wait_run, wait_until,
};
use crate::support::smtp_peer::SmtpPeer;

/// How many runs of `function` the executor still has.
async fn run_count(app: &TestApp, function: &str) -> usize {
    executor(app)
        .list_runs(RunFilter {
            function_id: Some(function_id(function)),
            limit: 1000,
            ..RunFilter::default()
        })
        .await
        .expect("list runs")
        .len()
}

/// Waits until `n` welcome mails went out and every welcome run is gone again.
async fn welcomes_sent_then_swept(app: &TestApp, peer: &SmtpPeer, n: usize) {
    wait_until(DEADLINE, || async {
        let sent = peer
            .messages()
            .iter()
            .filter(|m| m.subject() == "Welcome to Support")
            .count();
        if sent >= n {
            Ok(())
        } else {
            Err(format!("{sent} welcome mails"))
        }
    })
    .await;
    wait_until(DEADLINE, || async {
        match run_count(app, "on-user-signup").await {
            0 => Ok(()),
            left => Err(format!("{left} welcome runs left")),
        }
    })
    .await;
}

#[tokio::test]
async fn finished_runs_go_after_the_retention_and_a_72h_sla_wait_stays() {
    let peer = SmtpPeer::start();
    let app = spawn_app_with(&[
        ("RUNS_RETENTION", "2s"),
        ("SMTP_URL", &peer.smtp_url()),
        ("SLA_HIGH", "72h"),
        ("SLA_MEDIUM", "72h"),
        ("SLA_LOW", "72h"),
    ])
    .await;
    let (_, customer) = app.register("customer@example.com").await;
    let ticket = app.create_ticket(&customer, "Printer on fire").await;
    let id = ticket["id"].as_str().unwrap().to_owned();
    let waiting = wait_run(&app, "on-ticket-created", &id, is_waiting_for_event).await;
    let signup = app
        .events()
        .await
        .into_iter()
        .find(|e| e.name == "user/signup")
        .unwrap();

    // The welcome run finished: it is gone within seconds of its retention.
    welcomes_sent_then_swept(&app, &peer, 1).await;
    // Another one, begun after the ticket's run, finishes and goes too: the ticket's run is
    // now older than the retention, and still there, still waiting.
    app.staff("admin@example.com", Role::Admin, &[]).await;
    welcomes_sent_then_swept(&app, &peer, 2).await;
    let still = executor(&app)
        .get_run(&waiting.id)
        .await
        .unwrap()
        .expect("the waiting run is kept");
    assert!(is_waiting_for_event(&still), "{:?}", still.status);

    // The event ids kept for de-duplication went too: the first signup's id is new again.
    let ids = executor(&app)
        .publish(vec![serde_json::json!({
            "id": signup.id,
            "name": signup.name,
            "data": signup.data,
        })])
        .await
        .expect("publish");
    assert_eq!(ids, vec![signup.id.clone()]);
    wait_until(DEADLINE, || async {
        match run_count(&app, "on-user-signup").await {
            0 => Err("no new run".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
}
