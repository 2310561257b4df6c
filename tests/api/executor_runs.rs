//! End-to-end runs through the embedded executor against the scripted SDK endpoint.

use chrono::Duration;
use serde_json::{Value, json};
use ticketing::inngest::executor::{Outcome, RunStatus};

use std::sync::Arc;
use std::sync::atomic::Ordering;

use ticketing::inngest::executor::{ExecutorOptions, ManualClock, MemoryStore};

use crate::executor_support::{
    End, FakeFn, FakeSdk, RunStep, Step, WatchedStore, composite, harness, harness_with, hash, run,
    t0,
};

#[tokio::test]
async fn a_multi_step_run_with_a_sleep_completes_after_the_timer() {
    let f = FakeFn::new("steps", "app/steps")
        .step(run("first", json!("A")))
        .step(Step::Sleep {
            id: "nap",
            duration: "1m",
        })
        .step(run("second", json!("AB")));
    let h = harness(&[f]).await;
    h.publish("app/steps", json!({"n": 1})).await;
    h.settle().await;

    let r = h.only_run("steps").await;
    assert_eq!(r.status, RunStatus::Running, "asleep: {r:?}");
    assert_eq!(r.steps[&hash("first")], json!({"data": "A"}));
    assert!(!r.steps.contains_key(&hash("second")));
    assert_eq!(
        h.executor.stats().await.expect("stats").queue.scheduled,
        1,
        "the timer is queued"
    );

    // Nothing is due before the minute is over.
    h.advance(Duration::seconds(59));
    assert_eq!(h.settle().await, 0);
    h.advance(Duration::seconds(1));
    h.settle().await;

    let r = h.only_run("steps").await;
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(
        r.output,
        Some(json!({"first": "A", "nap": null, "second": "AB"}))
    );
    assert_eq!(r.stack, vec![hash("first"), hash("nap"), hash("second")]);
    assert_eq!(h.sdk.executions("steps", "first"), 1);
    assert_eq!(h.sdk.executions("steps", "second"), 1);
    assert_eq!(r.version, 2);
    let stats = h.executor.stats().await.expect("stats");
    assert_eq!((stats.runs_started, stats.runs_completed), (1, 1));
    assert_eq!(stats.steps_completed, 2);
    assert_eq!(stats.calls, 4);
    // The finish event was published too (id derived from the run, so never twice).
    assert_eq!(stats.events_accepted, 2);
    assert_eq!(
        stats.queue.due + stats.queue.scheduled + stats.queue.leased,
        0
    );
}

#[tokio::test]
async fn event_ids_deduplicate_and_triggers_filter_by_expression() {
    let f = FakeFn::new("filtered", "app/order")
        .triggers(vec![
            json!({"event": "app/order", "expression": "event.data.total > 10 && event.data.currency == 'EUR'"}),
            json!({"event": "shop/*"}),
        ])
        .end(End::Value(json!("ok")));
    let h = harness(&[f]).await;
    let same =
        json!({"id": "order-1", "name": "app/order", "data": {"total": 20, "currency": "EUR"}});
    let ids = h
        .executor
        .publish(vec![same.clone(), same.clone()])
        .await
        .expect("publish");
    assert_eq!(ids, vec!["order-1", "order-1"]);
    h.executor
        .publish(vec![
            json!({"name": "app/order", "data": {"total": 5, "currency": "EUR"}}),
            json!({"name": "app/order", "data": {"total": 50, "currency": "USD"}}),
            json!({"name": "shop/anything"}),
            json!({"name": "shopping/no"}),
        ])
        .await
        .expect("publish");
    h.settle().await;
    let runs = h.runs_of("filtered").await;
    let mut names: Vec<&str> = runs.iter().map(|r| r.event_name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["app/order", "shop/anything"]);
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
    let stats = h.executor.stats().await.expect("stats");
    assert_eq!(stats.events_duplicate, 1);

    let invalid = h.executor.publish(vec![json!({"data": {}})]).await;
    assert!(invalid.is_err(), "an event without a name is refused");
}

#[tokio::test]
async fn parallel_steps_run_once_each_then_one_discovery_finishes() {
    let branch = |id, n| RunStep::new(id, json!(n));
    let f = FakeFn::new("parallel", "app/parallel")
        .step(Step::Parallel(vec![
            branch("a", 1),
            branch("b", 2),
            branch("c", 3),
        ]))
        .step(run("after", json!("done")));
    let h = harness(&[f]).await;
    h.publish("app/parallel", json!({})).await;
    h.settle().await;

    let r = h.only_run("parallel").await;
    assert_eq!(r.status, RunStatus::Completed, "{r:?}");
    assert_eq!(
        r.output,
        Some(json!({"a": 1, "b": 2, "c": 3, "after": "done"}))
    );
    for s in ["a", "b", "c", "after"] {
        assert_eq!(h.sdk.executions("parallel", s), 1, "step {s}");
    }
    let calls = h.sdk.calls_of("parallel");
    let targeted: Vec<_> = calls.iter().filter(|c| c.step_id != "step").collect();
    assert_eq!(targeted.len(), 3);
    for c in &targeted {
        assert_eq!(c.body["ctx"]["disable_immediate_execution"], true);
        assert_eq!(c.headers["x-inngest-step-id"], c.step_id.as_str());
    }
    // Discoveries: the first, one after all three branches (coalesced), and the final one.
    let discoveries: Vec<_> = calls.iter().filter(|c| c.step_id == "step").collect();
    assert_eq!(
        discoveries.len(),
        3,
        "{:?}",
        calls.iter().map(|c| &c.step_id).collect::<Vec<_>>()
    );
    assert_eq!(
        discoveries[1].body["steps"].as_object().map(|m| m.len()),
        Some(3)
    );
    assert_eq!(
        discoveries[2].body["ctx"]["disable_immediate_execution"], false,
        "the flag is reset after the parallel group"
    );
}

#[tokio::test]
async fn step_errors_retry_with_backoff_and_the_attempt_counter_resets_per_step() {
    let mut flaky = RunStep::new("flaky", json!("finally"));
    flaky.fail_first = 2;
    let f = FakeFn::new("retry", "app/retry")
        .retries(3)
        .step(Step::Run(flaky))
        .step(run("next", json!(1)));
    let h = harness(&[f]).await;
    h.publish("app/retry", json!({})).await;
    h.settle().await;
    assert_eq!(h.sdk.executions("retry", "flaky"), 1);
    h.advance(Duration::seconds(14));
    h.settle().await;
    assert_eq!(h.sdk.executions("retry", "flaky"), 1, "backoff is 15 s");
    h.advance(Duration::seconds(1));
    h.settle().await;
    assert_eq!(h.sdk.executions("retry", "flaky"), 2);
    h.advance(Duration::seconds(30));
    h.settle().await;

    let r = h.only_run("retry").await;
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(r.output, Some(json!({"flaky": "finally", "next": 1})));
    let attempts: Vec<u64> = h
        .sdk
        .calls_of("retry")
        .iter()
        .map(|c| c.body["ctx"]["attempt"].as_u64().expect("attempt"))
        .collect();
    assert_eq!(attempts, vec![0, 1, 2, 0, 0]);
    assert!(
        h.sdk
            .calls_of("retry")
            .iter()
            .all(|c| c.body["ctx"]["max_attempts"] == 4)
    );
    let retries: Vec<_> = r
        .history
        .iter()
        .filter(|e| e.outcome == Outcome::Retrying)
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(
        retries[0].error.as_ref().map(|e| e["message"].clone()),
        Some(json!("flaky failed (execution 1)"))
    );
    assert_eq!(h.executor.stats().await.expect("stats").retries, 2);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mut slow = RunStep::new("slow", json!(1));
    slow.fail_first = 1;
    slow.retry_after = Some("120");
    let f = FakeFn::new("ra", "app/ra").step(Step::Run(slow));
    let h = harness(&[f]).await;
    h.publish("app/ra", json!({})).await;
    h.settle().await;
    h.advance(Duration::seconds(119));
    h.settle().await;
    assert_eq!(
        h.sdk.executions("ra", "slow"),
        1,
        "the default 15 s backoff is overridden"
    );
    h.advance(Duration::seconds(1));
    h.settle().await;
    assert_eq!(h.sdk.executions("ra", "slow"), 2);
    assert_eq!(h.only_run("ra").await.status, RunStatus::Completed);
}

#[tokio::test]
async fn non_retriable_failures_fail_the_run_and_start_the_failure_handler() {
    let mut broken = RunStep::new("charge", json!(null));
    broken.fail_first = 1;
    broken.non_retriable = true;
    let f = FakeFn::new("payments", "app/pay").step(Step::Run(broken));
    let handler = FakeFn::new("payments-failure", "inngest/function.failed")
        .triggers(vec![json!({"event": "inngest/function.failed",
            "expression": format!("event.data.function_id == '{}'", composite("payments"))})])
        .retries(1)
        .end(End::Value(json!({"handled": true})));
    let h = harness(&[f, handler]).await;
    h.publish("app/pay", json!({"order": 7})).await;
    h.settle().await;

    let r = h.only_run("payments").await;
    assert_eq!(r.status, RunStatus::Failed, "{r:?}");
    assert_eq!(h.sdk.executions("payments", "charge"), 1, "never retried");
    assert_eq!(
        r.steps[&hash("charge")]["error"]["message"],
        "charge failed (execution 1)"
    );
    assert_eq!(
        r.error.as_ref().map(|e| e["message"].clone()),
        Some(json!("charge failed (execution 1)"))
    );

    let hr = h.only_run("payments-failure").await;
    assert_eq!(hr.status, RunStatus::Completed);
    assert_eq!(hr.event["name"], "inngest/function.failed");
    assert_eq!(
        hr.event["id"],
        json!(r.id),
        "the failure event has the run id as its id"
    );
    assert_eq!(hr.event["data"]["run_id"], json!(r.id));
    assert_eq!(hr.event["data"]["event"]["data"]["order"], 7);
    assert_eq!(
        hr.event["data"]["error"]["message"],
        "charge failed (execution 1)"
    );
    let stats = h.executor.stats().await.expect("stats");
    assert_eq!(
        (stats.runs_failed, stats.runs_completed, stats.steps_failed),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn function_errors_use_up_the_attempts_then_fail() {
    let f = FakeFn::new("throws", "app/throws")
        .retries(1)
        .end(End::Throw {
            message: "broken func",
            non_retriable: false,
        });
    let h = harness(&[f]).await;
    h.publish("app/throws", json!({})).await;
    h.settle().await;
    assert_eq!(h.only_run("throws").await.status, RunStatus::Running);
    h.advance(Duration::seconds(15));
    h.settle().await;
    let r = h.only_run("throws").await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(h.sdk.calls_of("throws").len(), 2);
    let last = r.history.last().expect("history");
    assert_eq!((last.outcome, last.attempt), (Outcome::Failed, 1));
}

#[tokio::test]
async fn wait_for_event_matches_on_the_if_expression_or_times_out() {
    let f = FakeFn::new("sla", "ticket/created")
        .step(Step::Wait {
            id: "resolved",
            event: "ticket/resolved",
            cond: Some(
                "event.data.ticket_id == async.data.ticket_id && async.data.state != 'reopened'",
            ),
            timeout: "1h",
        })
        .step(run("after", json!("next")));
    let h = harness(&[f]).await;
    h.publish("ticket/created", json!({"ticket_id": "t1"}))
        .await;
    h.publish("ticket/created", json!({"ticket_id": "t2"}))
        .await;
    h.settle().await;

    // Neither another ticket's event nor an excluded state resumes t1.
    h.publish("ticket/resolved", json!({"ticket_id": "t3"}))
        .await;
    h.publish(
        "ticket/resolved",
        json!({"ticket_id": "t1", "state": "reopened"}),
    )
    .await;
    h.settle().await;
    let runs = h.runs_of("sla").await;
    assert!(runs.iter().all(|r| r.status == RunStatus::Running));

    let id = h
        .publish(
            "ticket/resolved",
            json!({"ticket_id": "t1", "state": "done"}),
        )
        .await;
    h.settle().await;
    let mut by_ticket = std::collections::HashMap::new();
    for s in h.runs_of("sla").await {
        let r = h.run(&s.id).await;
        by_ticket.insert(
            r.event["data"]["ticket_id"]
                .as_str()
                .expect("id")
                .to_string(),
            r,
        );
    }
    let t1 = &by_ticket["t1"];
    assert_eq!(t1.status, RunStatus::Completed);
    let got = t1.output.as_ref().expect("output")["resolved"].clone();
    assert_eq!(got["id"], json!(id), "the raw event is memoized");
    assert_eq!(got["data"]["state"], "done");
    assert_eq!(by_ticket["t2"].status, RunStatus::Running);

    // A second matching event does not resume t1 again.
    h.publish(
        "ticket/resolved",
        json!({"ticket_id": "t1", "state": "done"}),
    )
    .await;
    h.settle().await;
    assert_eq!(h.sdk.executions("sla", "after"), 1);

    h.advance(Duration::hours(1));
    h.settle().await;
    let t2 = h.run(&by_ticket["t2"].id).await;
    assert_eq!(t2.status, RunStatus::Completed);
    assert_eq!(
        t2.output,
        Some(json!({"resolved": null, "after": "next"})),
        "a timeout resumes with null"
    );
}

#[tokio::test]
async fn invoke_runs_the_child_and_returns_its_result_to_the_parent() {
    let parent = FakeFn::new("parent", "app/parent").step(Step::Invoke {
        id: "call-child",
        function: "child",
        data: json!({"name": "x"}),
    });
    let child = FakeFn::new("child", "app/never").end(End::Value(json!({"hello": "x"})));
    let failing_parent = FakeFn::new("parent2", "app/parent2").step(Step::Invoke {
        id: "call-missing",
        function: "missing",
        data: json!({}),
    });
    let h = harness(&[parent, child, failing_parent]).await;
    h.publish("app/parent", json!({})).await;
    h.publish("app/parent2", json!({})).await;
    h.settle().await;

    let p = h.only_run("parent").await;
    assert_eq!(p.status, RunStatus::Completed, "{p:?}");
    assert_eq!(p.output, Some(json!({"call-child": {"hello": "x"}})));
    let c = h.only_run("child").await;
    assert_eq!(c.event["name"], "inngest/function.invoked");
    assert_eq!(c.event["data"]["name"], "x");
    assert_eq!(
        c.event["data"]["_inngest"]["source_fn_id"],
        json!(composite("parent"))
    );
    assert_eq!(
        c.parent.as_ref().map(|p| p.run_id.clone()),
        Some(p.id.clone())
    );
    // The invoke timeout was dropped when the child finished.
    assert_eq!(h.executor.stats().await.expect("stats").queue.scheduled, 0);

    let p2 = h.only_run("parent2").await;
    assert_eq!(
        p2.status,
        RunStatus::Failed,
        "an unknown target fails the invoke step"
    );
    assert!(
        p2.error.as_ref().expect("error")["message"]
            .as_str()
            .is_some_and(|m| m.contains("not registered"))
    );
}

#[tokio::test]
async fn send_event_steps_trigger_other_functions_once() {
    let sender = FakeFn::new("sender", "app/send").step(Step::Send {
        id: "send-it",
        events: vec![json!({"id": "fixed-id", "name": "app/hello", "data": {"from": "step"}})],
    });
    let receiver = FakeFn::new("receiver", "app/hello").end(End::Value(json!("got it")));
    let h = harness(&[sender, receiver]).await;
    h.publish("app/send", json!({})).await;
    h.settle().await;
    let s = h.only_run("sender").await;
    assert_eq!(s.output, Some(json!({"send-it": {"ids": ["fixed-id"]}})));
    let r = h.only_run("receiver").await;
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(r.event["data"]["from"], "step");
}

#[tokio::test]
async fn concurrency_limits_cap_calls_in_flight() {
    let busy = |id| {
        let mut s = RunStep::new(id, json!(1));
        s.yields = 20;
        Step::Run(s)
    };
    let limited = FakeFn::new("limited", "app/work")
        .extra(json!({"concurrency": [{"limit": 1}]}))
        .step(busy("work"))
        .step(busy("more"));
    let keyed = FakeFn::new("keyed", "app/work")
        .extra(json!({"concurrency": [{"limit": 1, "key": "event.data.user"}]}))
        .step(busy("work"))
        .step(busy("more"));
    // Two steps each: a worker that goes on to its run's next step keeps the slot, no more.
    let free = FakeFn::new("free", "app/work")
        .step(busy("work"))
        .step(busy("more"));
    // Enough workers for every call at once, so only the limits hold calls back.
    let sdk = FakeSdk::new(&[limited, keyed, free], None);
    let h = harness_with(
        sdk,
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(t0())),
        |o| ExecutorOptions { workers: 16, ..o },
    )
    .await;
    for user in ["u1", "u1", "u2"] {
        h.publish("app/work", json!({"user": user})).await;
    }
    h.settle().await;
    for f in ["limited", "keyed", "free"] {
        assert_eq!(h.runs_of(f).await.len(), 3);
        assert!(
            h.runs_of(f)
                .await
                .iter()
                .all(|r| r.status == RunStatus::Completed),
            "{f}"
        );
    }
    assert_eq!(
        h.sdk.max_in_flight("free"),
        3,
        "control: without a limit all three overlap"
    );
    assert_eq!(h.sdk.max_in_flight("limited"), 1);
    assert_eq!(h.sdk.max_in_flight("keyed"), 2, "one per user key");
}

#[tokio::test]
async fn an_uncaught_memoized_step_error_fails_the_run_without_retries() {
    let mut s = RunStep::new("always", json!(null));
    s.fail_first = 10;
    let f = FakeFn::new("exhaust", "app/exhaust")
        .retries(1)
        .step(Step::Run(s));
    let h = harness(&[f]).await;
    h.publish("app/exhaust", json!({})).await;
    h.settle().await;
    h.advance(Duration::seconds(15));
    h.settle().await;
    let r = h.only_run("exhaust").await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(
        h.sdk.executions("exhaust", "always"),
        2,
        "max_attempts = retries + 1"
    );
    let outcomes: Vec<Outcome> = r.history.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        vec![Outcome::Retrying, Outcome::Failed, Outcome::Failed]
    );
    assert_eq!(r.history[2].op, "FunctionError");
    let _: &Value = r.error.as_ref().expect("error");
}

#[tokio::test]
async fn a_call_without_an_answer_times_out_and_is_retried() {
    let mut stuck = RunStep::new("stuck", json!("second time lucky"));
    stuck.hang_on = Some(1);
    let f = FakeFn::new("slowpoke", "app/slow").step(Step::Run(stuck));
    let sdk = FakeSdk::new(&[f], None);
    let h = harness_with(
        sdk,
        Arc::new(MemoryStore::new()),
        Arc::new(ManualClock::new(t0())),
        |o| ExecutorOptions {
            call_timeout: std::time::Duration::from_millis(50),
            ..o
        },
    )
    .await;
    h.publish("app/slow", json!({})).await;
    h.settle().await;
    let r = h.only_run("slowpoke").await;
    assert_eq!(r.status, RunStatus::Running);
    let last = r.history.last().expect("history");
    assert_eq!(
        (last.outcome, last.op.as_str()),
        (Outcome::Retrying, "FunctionError")
    );
    assert_eq!(
        last.error.as_ref().map(|e| e["name"].clone()),
        Some(json!("TransportError"))
    );
    h.advance(Duration::seconds(15));
    h.settle().await;
    let r = h.only_run("slowpoke").await;
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(h.sdk.executions("slowpoke", "stuck"), 2);
}

#[tokio::test]
async fn a_worker_goes_on_to_its_runs_next_step_without_a_claim() {
    let f = FakeFn::new("steps", "app/steps")
        .step(run("first", json!("A")))
        .step(run("second", json!("AB")))
        .step(run("third", json!("ABC")));
    let store = WatchedStore::new(Arc::new(MemoryStore::new()), usize::MAX);
    let h = harness_with(
        FakeSdk::new(&[f], None),
        store.clone(),
        Arc::new(ManualClock::new(t0())),
        |o| o,
    )
    .await;
    h.publish("app/steps", json!({})).await;
    h.settle().await;
    // One claim and one load for the first call; the worker took the other three in a row
    // (the second claimed item is the finish event's publish).
    assert_eq!(store.claimed.load(Ordering::SeqCst), 2);
    assert_eq!(store.loads.load(Ordering::SeqCst), 1);

    let r = h.only_run("steps").await;
    assert_eq!(r.status, RunStatus::Completed);
    for step in ["first", "second", "third"] {
        assert_eq!(h.sdk.executions("steps", step), 1, "{step}");
    }
    let stats = h.executor.stats().await.expect("stats");
    assert_eq!(stats.calls, 4, "three steps and the call that returns");
    assert_eq!(
        stats.queue.due + stats.queue.scheduled + stats.queue.leased,
        0
    );
}
