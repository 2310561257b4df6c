//! Crash and restart on a real SQLite file: runs resume, timers and pauses survive, and a step
//! whose result was saved never runs again.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Duration;
use serde_json::json;
use ticketing::inngest::executor::{
    ExecutorOptions, ManualClock, RunStatus, RunStore, SqliteRunStore,
};

use crate::executor_support::{
    FakeFn, FakeSdk, Harness, RunStep, Step, WatchedStore, harness_with, run, t0,
};

async fn sqlite(path: &Path) -> Arc<dyn RunStore> {
    Arc::new(SqliteRunStore::open(path).await.expect("open sqlite"))
}

async fn restart(sdk: &Arc<FakeSdk>, path: &Path, clock: &Arc<ManualClock>) -> Harness {
    let h = harness_with(sdk.clone(), sqlite(path).await, clock.clone(), |o| o).await;
    // A new process owns the queue: leases of the dead one are void.
    h.executor.release_leases().await.expect("release leases");
    h
}

fn pipeline(hang: Option<&'static str>) -> FakeFn {
    let step = |id: &'static str, out| {
        let mut s = RunStep::new(id, json!(out));
        if hang == Some(id) {
            s.hang_on = Some(1);
        }
        Step::Run(s)
    };
    FakeFn::new("pipeline", "app/pipeline")
        .step(step("a", "A"))
        .step(step("b", "B"))
        .step(Step::Sleep {
            id: "pause",
            duration: "10m",
        })
        .step(step("c", "C"))
}

#[tokio::test]
async fn killed_mid_step_the_run_resumes_and_saved_steps_never_rerun() {
    for hung in ["a", "b", "c"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.db");
        let clock = Arc::new(ManualClock::new(t0()));
        let sdk = FakeSdk::new(&[pipeline(Some(hung))], None);

        let first = harness_with(sdk.clone(), sqlite(&path).await, clock.clone(), |o| o).await;
        first.publish("app/pipeline", json!({"hung": hung})).await;
        if hung == "c" {
            // Get past the sleep first; the loop then takes the due timer and reaches `c`.
            first.settle().await;
            clock.advance(Duration::minutes(10));
        }
        let handle = first.executor.spawn();
        tokio::time::timeout(std::time::Duration::from_secs(20), sdk.hung.notified())
            .await
            .expect("the step started");
        // The process dies with the call in flight.
        handle.abort();
        drop(first);

        let second = restart(&sdk, &path, &clock).await;
        second.settle().await;
        clock.advance(Duration::minutes(10));
        second.settle().await;

        let r = second.only_run("pipeline").await;
        assert_eq!(r.status, RunStatus::Completed, "hung at {hung}: {r:?}");
        assert_eq!(
            r.output,
            Some(json!({"a": "A", "b": "B", "pause": null, "c": "C"}))
        );
        for step in ["a", "b", "c"] {
            let expected = if step == hung { 2 } else { 1 };
            assert_eq!(
                sdk.executions("pipeline", step),
                expected,
                "hung at {hung}, step {step}"
            );
        }
    }
}

fn branching() -> FakeFn {
    FakeFn::new("branching", "app/branching")
        .step(run("a", json!(1)))
        .step(Step::Sleep {
            id: "nap",
            duration: "1m",
        })
        .step(Step::Parallel(vec![
            RunStep::new("p1", json!(2)),
            RunStep::new("p2", json!(3)),
        ]))
        .step(run("c", json!(4)))
}

const BRANCH_STEPS: [&str; 4] = ["a", "p1", "p2", "c"];

async fn drive_to_end(h: &Harness) {
    h.settle().await;
    h.advance(Duration::minutes(1));
    h.settle().await;
}

#[tokio::test]
async fn dying_before_any_commit_loses_at_most_the_unsaved_step() {
    // A clean run first, to count its commits.
    let dir = tempfile::tempdir().expect("tempdir");
    let counting = WatchedStore::new(sqlite(&dir.path().join("count.db")).await, usize::MAX);
    let sdk = FakeSdk::new(&[branching()], None);
    let clean = harness_with(
        sdk,
        counting.clone(),
        Arc::new(ManualClock::new(t0())),
        |o| o,
    )
    .await;
    clean.publish("app/branching", json!({})).await;
    drive_to_end(&clean).await;
    assert_eq!(
        clean.only_run("branching").await.status,
        RunStatus::Completed
    );
    let total = counting.commits.load(Ordering::SeqCst);
    assert!(
        total >= 8,
        "a run of this shape commits at least 8 times, saw {total}"
    );

    for die_at in 1..=total {
        let path = dir.path().join(format!("crash-{die_at}.db"));
        let clock = Arc::new(ManualClock::new(t0()));
        let sdk = FakeSdk::new(&[branching()], None);
        let dying = WatchedStore::new(sqlite(&path).await, die_at);
        // One worker: a dead process has at most one call in flight.
        let first = harness_with(sdk.clone(), dying, clock.clone(), |o| ExecutorOptions {
            workers: 1,
            ..o
        })
        .await;
        first.publish("app/branching", json!({})).await;
        drive_to_end(&first).await;
        drop(first);

        let second = restart(&sdk, &path, &clock).await;
        drive_to_end(&second).await;
        let r = second.only_run("branching").await;
        assert_eq!(
            r.status,
            RunStatus::Completed,
            "died at commit {die_at}: {r:?}"
        );
        assert_eq!(
            r.output,
            Some(json!({"a": 1, "nap": null, "p1": 2, "p2": 3, "c": 4}))
        );
        let runs: Vec<u32> = BRANCH_STEPS
            .iter()
            .map(|s| sdk.executions("branching", s))
            .collect();
        assert!(
            runs.iter().all(|n| *n >= 1),
            "died at commit {die_at}: {runs:?}"
        );
        let reruns: u32 = runs.iter().map(|n| n - 1).sum();
        assert!(
            reruns <= 1,
            "died at commit {die_at}: only the unsaved step may run twice, got {runs:?}"
        );
    }
}

#[tokio::test]
async fn timers_and_pauses_survive_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.db");
    let clock = Arc::new(ManualClock::new(t0()));
    let f = FakeFn::new("waiter", "app/start")
        .step(Step::Sleep {
            id: "nap",
            duration: "5m",
        })
        .step(Step::Wait {
            id: "go",
            event: "app/go",
            cond: Some("event.data.k == async.data.k"),
            timeout: "1d",
        })
        .step(run("done", json!("yes")));
    let sdk = FakeSdk::new(&[f], None);

    let first = restart(&sdk, &path, &clock).await;
    first.publish("app/start", json!({"k": 7})).await;
    first.settle().await;
    drop(first);

    clock.advance(Duration::minutes(5));
    let second = restart(&sdk, &path, &clock).await;
    second.settle().await;
    let r = second.only_run("waiter").await;
    assert_eq!(r.status, RunStatus::Running);
    assert!(
        r.steps.contains_key(&crate::executor_support::hash("nap")),
        "the timer fired after the restart"
    );
    drop(second);

    let third = restart(&sdk, &path, &clock).await;
    third.publish("app/go", json!({"k": 8})).await;
    third.settle().await;
    assert_eq!(third.only_run("waiter").await.status, RunStatus::Running);
    let go = third.publish("app/go", json!({"k": 7})).await;
    third.settle().await;
    let r = third.only_run("waiter").await;
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(r.output.as_ref().expect("output")["go"]["id"], json!(go));
    assert_eq!(sdk.executions("waiter", "done"), 1);

    // Event ids seen before the restarts are still deduplicated.
    let again = third
        .executor
        .publish(vec![json!({"id": go, "name": "app/go", "data": {"k": 7}})])
        .await
        .expect("publish");
    assert_eq!(again, vec![go]);
    assert_eq!(
        third
            .executor
            .stats()
            .await
            .expect("stats")
            .events_duplicate,
        1
    );
}
