//! Operating the executor: listing, inspecting, re-running and cancelling runs; registration
//! checks; cron triggers.

use chrono::Duration;
use serde_json::json;
use ticketing::inngest::executor::{ExecutorError, Outcome, RegisterError, RunFilter, RunStatus};

use crate::executor_support::{APP, End, FakeFn, RunStep, Step, composite, harness, hash, run, t0};

#[tokio::test]
async fn runs_are_listed_by_function_and_status_and_shown_with_their_history() {
    let mut flaky = RunStep::new("flaky", json!("ok"));
    flaky.fail_first = 1;
    let good = FakeFn::new("good", "app/go")
        .triggers(vec![
            json!({"event": "app/go", "expression": "event.data.n == 1"}),
        ])
        .step(Step::Run(flaky));
    let bad = FakeFn::new("bad", "app/go").retries(0).end(End::Throw {
        message: "nope",
        non_retriable: false,
    });
    let h = harness(&[good, bad]).await;
    h.publish("app/go", json!({"n": 1})).await;
    h.publish("app/go", json!({"n": 2})).await;
    h.settle().await;
    h.advance(Duration::seconds(15));
    h.settle().await;

    let list = |function_id: Option<&str>, status: Option<RunStatus>| {
        let ex = h.executor.clone();
        let function_id = function_id.map(composite);
        async move {
            ex.list_runs(RunFilter {
                function_id,
                status,
                limit: 0,
                before: None,
            })
            .await
            .expect("list")
        }
    };
    assert_eq!(list(None, None).await.len(), 3);
    let failed = list(None, Some(RunStatus::Failed)).await;
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|r| r.function_id == composite("bad")));
    assert_eq!(
        list(Some("good"), Some(RunStatus::Completed)).await.len(),
        1
    );
    assert!(list(Some("good"), Some(RunStatus::Failed)).await.is_empty());
    let all = list(None, None).await;
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let page = h
        .executor
        .list_runs(RunFilter {
            before: Some(all[1].id.clone()),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, all[2].id);

    let id = &list(Some("good"), None).await[0].id;
    let r = h.executor.get_run(id).await.expect("get").expect("exists");
    assert_eq!(r.function_id, composite("good"));
    assert_eq!(r.app_id, APP);
    assert!(r.started_at.is_some() && r.ended_at.is_some());
    let flaky_attempts: Vec<(u32, Outcome)> = r
        .history
        .iter()
        .filter(|e| e.step_id == hash("flaky"))
        .map(|e| (e.attempt, e.outcome))
        .collect();
    assert_eq!(
        flaky_attempts,
        vec![(0, Outcome::Retrying), (1, Outcome::Completed)]
    );
    let retry = &r.history[0];
    assert_eq!(retry.name.as_deref(), Some("flaky"));
    assert_eq!(
        retry.until,
        Some(t0() + Duration::seconds(15)),
        "when the retry was due"
    );
    assert!(retry.duration_ms.is_some());
    assert!(retry.error.is_some());
    assert!(
        h.executor
            .get_run("no-such-run")
            .await
            .expect("get")
            .is_none()
    );
}

#[tokio::test]
async fn rerun_starts_a_fresh_run_with_the_same_event() {
    let f = FakeFn::new("once", "app/once").step(run("work", json!("w")));
    let h = harness(&[f]).await;
    h.publish("app/once", json!({"x": 1})).await;
    h.settle().await;
    let first = h.only_run("once").await;
    assert_eq!(first.status, RunStatus::Completed);

    let new_id = h.executor.rerun(&first.id).await.expect("rerun");
    assert_ne!(new_id, first.id);
    h.settle().await;
    let second = h.run(&new_id).await;
    assert_eq!(second.status, RunStatus::Completed);
    assert_eq!(second.event, first.event);
    assert_eq!(second.rerun_of.as_deref(), Some(first.id.as_str()));
    assert_eq!(
        h.sdk.executions("once", "work"),
        2,
        "a re-run executes the steps again"
    );
    assert!(matches!(
        h.executor.rerun("missing").await,
        Err(ExecutorError::RunNotFound(_))
    ));
}

#[tokio::test]
async fn cancel_stops_a_sleeping_run_and_drops_its_timer() {
    let f = FakeFn::new("sleepy", "app/sleepy")
        .step(Step::Sleep {
            id: "nap",
            duration: "1h",
        })
        .step(run("after", json!(1)));
    let listener =
        FakeFn::new("on-cancel", "inngest/function.cancelled").end(End::Value(json!("seen")));
    let h = harness(&[f, listener]).await;
    h.publish("app/sleepy", json!({})).await;
    h.settle().await;
    let r = h.only_run("sleepy").await;
    let cancelled = h.executor.cancel(&r.id).await.expect("cancel");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(cancelled.ended_at.is_some());
    h.advance(Duration::hours(2));
    h.settle().await;
    assert_eq!(h.sdk.executions("sleepy", "after"), 0);
    assert_eq!(h.only_run("sleepy").await.status, RunStatus::Cancelled);
    let seen = h.only_run("on-cancel").await;
    assert_eq!(seen.event["data"]["run_id"], json!(r.id));
    assert!(matches!(
        h.executor.cancel(&r.id).await,
        Err(ExecutorError::RunFinished {
            status: "cancelled",
            ..
        })
    ));
    assert_eq!(h.executor.stats().await.expect("stats").runs_cancelled, 1);
}

#[tokio::test]
async fn cancel_events_from_the_function_config_cancel_matching_runs() {
    let f = FakeFn::new("cancellable", "app/order")
        .extra(json!({"cancel": [{"event": "app/order.cancelled", "if": "event.data.order == async.data.order"}]}))
        .step(Step::Sleep {
            id: "nap",
            duration: "1h",
        });
    let h = harness(&[f]).await;
    h.publish("app/order", json!({"order": 1})).await;
    h.publish("app/order", json!({"order": 2})).await;
    h.settle().await;
    h.publish("app/order.cancelled", json!({"order": 2})).await;
    h.settle().await;
    let mut statuses = Vec::new();
    for s in h.runs_of("cancellable").await {
        let r = h.run(&s.id).await;
        statuses.push((r.event["data"]["order"].as_i64().expect("order"), r.status));
    }
    statuses.sort_by_key(|(o, _)| *o);
    assert_eq!(
        statuses,
        vec![(1, RunStatus::Running), (2, RunStatus::Cancelled)]
    );
}

#[tokio::test]
async fn registration_rejects_what_the_executor_cannot_evaluate() {
    let h = harness(&[]).await;
    let bad_trigger = json!({"id": "a-x", "triggers": [{"event": "e", "expression": "event.data.tags.exists(t, t == 'x')"}]});
    let err = h
        .executor
        .register("a", vec![bad_trigger])
        .await
        .expect_err("rejected");
    assert!(
        matches!(
            err,
            RegisterError::Expression {
                place: "trigger",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("a-x"));

    let bad_cancel = json!({"id": "a-y", "triggers": [{"event": "e"}],
        "cancel": [{"event": "c", "if": "event.data.a == async.data.a || event.data.b matches 'x'"}]});
    assert!(h.executor.register("a", vec![bad_cancel]).await.is_err());

    let dup = json!({"id": "a-z", "triggers": [{"event": "e"}]});
    assert!(matches!(
        h.executor.register("a", vec![dup.clone(), dup]).await,
        Err(RegisterError::DuplicateId { .. })
    ));

    // A failed registration leaves the previous functions in place.
    let ok = json!({"id": "a-ok", "triggers": [{"event": "e", "expression": "event.data.n >= 2 && !(event.data.skip == true)"}]});
    h.executor.register("a", vec![ok]).await.expect("valid");
    let bad = json!({"id": "a-bad", "triggers": [{"cron": "not a cron"}]});
    assert!(h.executor.register("a", vec![bad]).await.is_err());
    assert_eq!(h.executor.function_ids(), vec!["a-ok"]);
}

#[tokio::test]
async fn cron_triggers_start_runs_on_schedule_and_reschedule() {
    let f = FakeFn::new("cleanup", "unused")
        .triggers(vec![json!({"cron": "*/5 * * * *"})])
        .end(End::Value(json!("swept")));
    let h = harness(&[f]).await;
    // Registered at 00:03: the first tick is at 00:05.
    h.settle().await;
    assert!(h.runs_of("cleanup").await.is_empty());
    h.advance(Duration::minutes(2));
    h.settle().await;
    let r = h.only_run("cleanup").await;
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(r.event["name"], "inngest/scheduled.timer");
    assert_eq!(r.event["data"]["cron"], "*/5 * * * *");
    assert_eq!(
        h.executor.stats().await.expect("stats").queue.scheduled,
        1,
        "next tick queued"
    );
    h.advance(Duration::minutes(5));
    h.settle().await;
    assert_eq!(h.runs_of("cleanup").await.len(), 2);

    // Registering the app again does not double the schedule.
    h.executor
        .register(APP, h.sdk.functions_json())
        .await
        .expect("register again");
    h.advance(Duration::minutes(5));
    h.settle().await;
    assert_eq!(h.runs_of("cleanup").await.len(), 3);

    // Dropping the function stops its ticks.
    h.executor
        .register(APP, vec![])
        .await
        .expect("register nothing");
    h.advance(Duration::minutes(5));
    h.settle().await;
    assert_eq!(h.runs_of("cleanup").await.len(), 3);
    assert_eq!(h.executor.stats().await.expect("stats").queue.scheduled, 0);
}
