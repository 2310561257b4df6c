//! One behaviour suite that every [`RunStore`] implementation must pass.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("BUG: literal")
        .with_timezone(&Utc)
}

fn run(id: &str, function_id: &str) -> RunState {
    RunState::new(
        id.into(),
        "app",
        function_id,
        3,
        json!({"id": format!("evt-{id}"), "name": "app/e", "data": {}}),
        t0(),
    )
}

fn call_item(run_id: &str, step: &str, due: DateTime<Utc>) -> QueueItem {
    QueueItem::new(
        format!("call:{run_id}:{step}"),
        Some(run_id.into()),
        ItemKind::Call {
            step_id: step.into(),
            attempt: 0,
        },
        due,
    )
}

fn ingest_of(event_id: &str, runs: Vec<RunState>, items: Vec<QueueItem>) -> Ingest {
    Ingest {
        event: json!({"id": event_id, "name": "app/e", "data": {}}),
        event_id: event_id.into(),
        runs,
        items,
        pauses: Vec::new(),
        resumes: Vec::new(),
        remove_items: Vec::new(),
    }
}

fn pause(id: &str, run_id: &str, event: &str, expires_at: DateTime<Utc>) -> Pause {
    Pause {
        id: id.into(),
        run_id: run_id.into(),
        kind: PauseKind::Wait {
            step_id: "w".into(),
        },
        event: event.into(),
        condition: Some("event.data.a == async.data.a".into()),
        trigger_event: json!({"data": {"a": 1}}),
        expires_at,
    }
}

pub(crate) async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn RunStore>>,
{
    events_are_deduplicated(make().await).await;
    claims_lease_due_items_until_the_lease_expires(make().await).await;
    commit_is_all_or_nothing(make().await).await;
    concurrency_slots_limit_claims(make().await).await;
    live_keys_are_unique(make().await).await;
    kept_items_are_leased_to_their_committer(make().await).await;
    pauses_are_consumed_once(make().await).await;
    finished_runs_lose_their_work_but_not_their_publishes(make().await).await;
    runs_are_listed_newest_first_with_filters(make().await).await;
    queue_depth_and_next_wake(make().await).await;
    released_leases_are_claimable_again(make().await).await;
    old_finished_runs_and_event_ids_are_swept_and_live_runs_never(make().await).await;
}

async fn events_are_deduplicated(store: Arc<dyn RunStore>) {
    let first = store
        .ingest(ingest_of(
            "e1",
            vec![run("r1", "f")],
            vec![call_item("r1", "step", t0())],
        ))
        .await
        .expect("ingest");
    assert_eq!(first, IngestOutcome::Accepted { resumed: 0 });
    let again = store
        .ingest(ingest_of(
            "e1",
            vec![run("r2", "f")],
            vec![call_item("r2", "step", t0())],
        ))
        .await
        .expect("ingest");
    assert_eq!(again, IngestOutcome::Duplicate);
    assert!(store.load_run("r1").await.expect("load").is_some());
    assert!(
        store.load_run("r2").await.expect("load").is_none(),
        "a duplicate starts nothing"
    );
    assert_eq!(
        store
            .claim(t0(), 10, Duration::minutes(1))
            .await
            .expect("claim")
            .len(),
        1
    );

    // Events recorded by a commit (invokes, crons) count as seen too.
    store
        .commit(Commit {
            events: vec![json!({"id": "e2", "name": "x"})],
            ..Commit::default()
        })
        .await
        .expect("commit");
    let dup = store
        .ingest(ingest_of("e2", vec![], vec![]))
        .await
        .expect("ingest");
    assert_eq!(dup, IngestOutcome::Duplicate);
}

async fn claims_lease_due_items_until_the_lease_expires(store: Arc<dyn RunStore>) {
    store
        .ingest(ingest_of(
            "e1",
            vec![run("r1", "f")],
            vec![
                call_item("r1", "step", t0()),
                call_item("r1", "later", t0() + Duration::minutes(5)),
            ],
        ))
        .await
        .expect("ingest");
    let claimed = store
        .claim(t0(), 10, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "only the due item");
    assert_eq!(claimed[0].item.key, "call:r1:step");
    assert!(
        store
            .claim(t0(), 10, Duration::seconds(30))
            .await
            .expect("claim")
            .is_empty()
    );
    let retaken = store
        .claim(t0() + Duration::seconds(31), 10, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(retaken.len(), 1, "an expired lease is retaken");
    assert_ne!(retaken[0].lease.token, claimed[0].lease.token);
    // The first holder lost its lease.
    let lost = store
        .commit(Commit {
            done: Some(claimed[0].lease.clone()),
            ..Commit::default()
        })
        .await;
    assert!(matches!(lost, Err(StoreError::LeaseLost(_))), "{lost:?}");
    store
        .commit(Commit {
            done: Some(retaken[0].lease.clone()),
            ..Commit::default()
        })
        .await
        .expect("commit with a held lease");
    let later = store
        .claim(t0() + Duration::minutes(5), 10, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].item.key, "call:r1:later");
}

async fn commit_is_all_or_nothing(store: Arc<dyn RunStore>) {
    store
        .ingest(ingest_of(
            "e1",
            vec![run("r1", "f")],
            vec![call_item("r1", "step", t0())],
        ))
        .await
        .expect("ingest");
    let claimed = store
        .claim(t0(), 1, Duration::minutes(1))
        .await
        .expect("claim")
        .remove(0);
    let mut loaded = store.load_run("r1").await.expect("load").expect("run");
    loaded.status = RunStatus::Running;
    loaded.steps.insert("a".into(), json!({"data": 1}));
    store
        .commit(Commit {
            run: Some(Arc::new(loaded.clone())),
            ..Commit::default()
        })
        .await
        .expect("first write");
    // A second write from the same stale revision conflicts and changes nothing.
    let mut stale = loaded.clone();
    stale.steps.insert("b".into(), json!({"data": 2}));
    let res = store
        .commit(Commit {
            done: Some(claimed.lease.clone()),
            run: Some(Arc::new(stale)),
            enqueue: vec![call_item("r1", "next", t0())],
            ..Commit::default()
        })
        .await;
    assert!(matches!(res, Err(StoreError::Conflict(_))), "{res:?}");
    let now = store.load_run("r1").await.expect("load").expect("run");
    assert_eq!(now.rev, loaded.rev + 1);
    assert!(now.steps.contains_key("a") && !now.steps.contains_key("b"));
    assert_eq!(now.status, RunStatus::Running);
    let depth = store.queue_depth(t0()).await.expect("depth");
    assert_eq!(
        (depth.due, depth.leased),
        (0, 1),
        "the item is still ours, nothing was enqueued"
    );
    // Retrying with the fresh revision succeeds.
    let mut fresh = now.clone();
    fresh.steps.insert("b".into(), json!({"data": 2}));
    store
        .commit(Commit {
            done: Some(claimed.lease),
            run: Some(Arc::new(fresh)),
            enqueue: vec![call_item("r1", "next", t0())],
            ..Commit::default()
        })
        .await
        .expect("commit");
    let done = store.load_run("r1").await.expect("load").expect("run");
    assert_eq!(done.steps.len(), 2);
    assert_eq!(done.rev, loaded.rev + 2);
    assert_eq!(store.queue_depth(t0()).await.expect("depth").due, 1);
}

async fn concurrency_slots_limit_claims(store: Arc<dyn RunStore>) {
    let slot = Slot {
        key: "fn:f:".into(),
        limit: 1,
    };
    let mut a = call_item("r1", "step", t0());
    a.concurrency = vec![slot.clone()];
    let mut b = call_item("r2", "step", t0() + Duration::milliseconds(1));
    b.concurrency = vec![slot.clone()];
    let free = call_item("r3", "step", t0() + Duration::milliseconds(2));
    store
        .ingest(ingest_of(
            "e1",
            vec![run("r1", "f"), run("r2", "f"), run("r3", "g")],
            vec![a, b, free],
        ))
        .await
        .expect("ingest");
    let now = t0() + Duration::seconds(1);
    let first = store
        .claim(now, 10, Duration::minutes(1))
        .await
        .expect("claim");
    let keys: Vec<&str> = first.iter().map(|c| c.item.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["call:r1:step", "call:r3:step"],
        "r2 waits for the slot"
    );
    assert!(
        store
            .claim(now, 10, Duration::minutes(1))
            .await
            .expect("claim")
            .is_empty()
    );
    let held = first
        .into_iter()
        .find(|c| c.item.key == "call:r1:step")
        .expect("r1");
    store
        .commit(Commit {
            done: Some(held.lease),
            ..Commit::default()
        })
        .await
        .expect("commit");
    let second = store
        .claim(now, 10, Duration::minutes(1))
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].item.key, "call:r2:step");
}

/// `commit_keeping`, for stores that keep (SQLite, memory). A store that cannot answers `None`
/// and the item must then be claimable like any other.
async fn kept_items_are_leased_to_their_committer(store: Arc<dyn RunStore>) {
    let slot = Slot {
        key: "fn:f:".into(),
        limit: 1,
    };
    let mut first = call_item("r1", "a", t0());
    first.concurrency = vec![slot.clone()];
    let mut other = call_item("r2", "a", t0());
    other.concurrency = vec![slot.clone()];
    store
        .ingest(ingest_of(
            "e1",
            vec![run("r1", "f"), run("r2", "f")],
            vec![first, other],
        ))
        .await
        .expect("ingest");
    let claimed = store
        .claim(t0(), 10, Duration::minutes(1))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "one slot");
    let held = claimed[0].clone();
    let mut next = call_item("r1", "b", t0());
    next.concurrency = vec![slot.clone()];
    let parallel = call_item("r1", "c", t0());
    let keep = next.id.clone();
    let kept = store
        .commit_keeping(
            Commit {
                done: Some(held.lease.clone()),
                enqueue: vec![next, parallel],
                ..Commit::default()
            },
            &keep,
            t0() + Duration::seconds(30),
        )
        .await
        .expect("commit");
    let keys = |claimed: Vec<Claimed>| -> Vec<String> {
        claimed.into_iter().map(|c| c.item.key).collect::<Vec<_>>()
    };
    let Some(lease) = kept else {
        // Not kept: the item is queued like any other, behind r2's older one for the slot.
        let claimed = store
            .claim(t0(), 10, Duration::minutes(1))
            .await
            .expect("claim");
        assert_eq!(keys(claimed), vec!["call:r2:a", "call:r1:c"]);
        return;
    };
    assert_eq!(lease.item_id, keep);
    // The kept item holds its slot: r2 still waits, only the unlimited item is claimed.
    let claimed = store
        .claim(t0(), 10, Duration::minutes(1))
        .await
        .expect("claim");
    assert_eq!(keys(claimed), vec!["call:r1:c"]);
    // An item whose key is live is not inserted, so it is not kept either.
    let dup = call_item("r1", "c", t0());
    let dup_id = dup.id.clone();
    let not_kept = store
        .commit_keeping(
            Commit {
                enqueue: vec![dup],
                ..Commit::default()
            },
            &dup_id,
            t0() + Duration::seconds(30),
        )
        .await
        .expect("commit");
    assert_eq!(not_kept, None);
    // A commit that fails keeps nothing: its item never existed.
    let failed_item = call_item("r1", "d", t0());
    let failed_id = failed_item.id.clone();
    let failed = store
        .commit_keeping(
            Commit {
                done: Some(held.lease),
                enqueue: vec![failed_item],
                ..Commit::default()
            },
            &failed_id,
            t0() + Duration::seconds(30),
        )
        .await;
    assert!(
        matches!(failed, Err(StoreError::LeaseLost(_))),
        "{failed:?}"
    );
    let depth = store.queue_depth(t0()).await.expect("depth");
    assert_eq!(
        depth.leased, 2,
        "the kept item and the claimed one, nothing else"
    );
    // The kept lease finishes its item like a claimed one, and frees the slot for r2.
    store
        .commit(Commit {
            done: Some(lease),
            ..Commit::default()
        })
        .await
        .expect("commit with the kept lease");
    let claimed = store
        .claim(t0(), 10, Duration::minutes(1))
        .await
        .expect("claim");
    assert_eq!(keys(claimed), vec!["call:r2:a"]);
}

async fn live_keys_are_unique(store: Arc<dyn RunStore>) {
    store
        .enqueue(vec![
            call_item("r1", "step", t0()),
            call_item("r1", "step", t0()),
        ])
        .await
        .expect("enqueue");
    store
        .enqueue(vec![call_item("r1", "step", t0())])
        .await
        .expect("enqueue");
    let claimed = store
        .claim(t0(), 10, Duration::minutes(1))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    // Once done, the key can be used again (the next discovery call of the run).
    store
        .commit(Commit {
            done: Some(claimed[0].lease.clone()),
            enqueue: vec![call_item("r1", "step", t0())],
            ..Commit::default()
        })
        .await
        .expect("commit");
    assert_eq!(
        store
            .claim(t0(), 10, Duration::minutes(1))
            .await
            .expect("claim")
            .len(),
        1
    );
}

async fn pauses_are_consumed_once(store: Arc<dyn RunStore>) {
    let expires = t0() + Duration::hours(1);
    let timeout = QueueItem::new(
        "timeout:r1:w".into(),
        Some("r1".into()),
        ItemKind::Resume {
            step_id: "w".into(),
            value: Value::Null,
            reason: ResumeReason::TimedOut,
            pause_id: Some("p1".into()),
        },
        expires,
    );
    store
        .commit(Commit {
            new_runs: vec![run("r1", "f")],
            pauses: vec![
                pause("p1", "r1", "app/resume", expires),
                pause("p2", "r1", "app/other", expires),
            ],
            enqueue: vec![timeout],
            ..Commit::default()
        })
        .await
        .expect("commit");
    let found = store.pauses_for("app/resume", t0()).await.expect("pauses");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0], pause("p1", "r1", "app/resume", expires));
    assert!(
        store
            .pauses_for("app/resume", expires)
            .await
            .expect("pauses")
            .is_empty(),
        "expired"
    );

    let resume = |event_id: &str| {
        let mut ing = ingest_of(event_id, vec![], vec![]);
        ing.resumes = vec![(
            "p1".into(),
            QueueItem::new(
                "resume:r1:w".into(),
                Some("r1".into()),
                ItemKind::Resume {
                    step_id: "w".into(),
                    value: json!({"name": "app/resume"}),
                    reason: ResumeReason::EventReceived,
                    pause_id: None,
                },
                t0(),
            ),
        )];
        ing.remove_items = vec!["timeout:r1:w".into()];
        ing
    };
    let first = store.ingest(resume("m1")).await.expect("ingest");
    assert_eq!(first, IngestOutcome::Accepted { resumed: 1 });
    let second = store.ingest(resume("m2")).await.expect("ingest");
    assert_eq!(second, IngestOutcome::Accepted { resumed: 0 });
    let depth = store.queue_depth(t0()).await.expect("depth");
    assert_eq!(
        (depth.due, depth.scheduled),
        (1, 0),
        "one resume, and the timeout is gone"
    );
    assert_eq!(
        store
            .pauses_for("app/other", t0())
            .await
            .expect("pauses")
            .len(),
        1
    );
}

async fn finished_runs_lose_their_work_but_not_their_publishes(store: Arc<dyn RunStore>) {
    let expires = t0() + Duration::hours(1);
    let publish = QueueItem::new(
        "publish:r1:a".into(),
        Some("r1".into()),
        ItemKind::Publish {
            events: vec![json!({"id": "x", "name": "y"})],
        },
        t0(),
    );
    store
        .commit(Commit {
            new_runs: vec![run("r1", "f"), run("r2", "f")],
            enqueue: vec![
                call_item("r1", "a", expires),
                call_item("r1", "b", t0()),
                call_item("r2", "a", t0()),
                publish,
            ],
            pauses: vec![
                pause("p1", "r1", "ev", expires),
                pause("p2", "r2", "ev", expires),
            ],
            ..Commit::default()
        })
        .await
        .expect("commit");
    store
        .commit(Commit {
            remove_run_work: vec!["r1".into()],
            ..Commit::default()
        })
        .await
        .expect("commit");
    let claimed = store
        .claim(expires, 10, Duration::minutes(1))
        .await
        .expect("claim");
    let mut keys: Vec<&str> = claimed.iter().map(|c| c.item.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, vec!["call:r2:a", "publish:r1:a"]);
    let pauses = store.pauses_for("ev", t0()).await.expect("pauses");
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0].run_id, "r2");
}

async fn runs_are_listed_newest_first_with_filters(store: Arc<dyn RunStore>) {
    let mut runs = Vec::new();
    for i in 0..5 {
        let mut r = run(&format!("r{i}"), if i % 2 == 0 { "even" } else { "odd" });
        if i == 2 {
            r.status = RunStatus::Failed;
        }
        runs.push(r);
    }
    store
        .commit(Commit {
            new_runs: runs,
            ..Commit::default()
        })
        .await
        .expect("commit");
    let ids = |v: Vec<RunSummary>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store
        .list_runs(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(all), vec!["r4", "r3", "r2", "r1", "r0"]);
    let even = store
        .list_runs(&RunFilter {
            function_id: Some("even".into()),
            limit: 2,
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(even), vec!["r4", "r2"]);
    let failed = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Failed),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].event_name, "app/e");
    let page = store
        .list_runs(&RunFilter {
            before: Some("r2".into()),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(page), vec!["r1", "r0"]);
}

async fn queue_depth_and_next_wake(store: Arc<dyn RunStore>) {
    assert_eq!(store.next_wake().await.expect("wake"), None);
    store
        .enqueue(vec![
            call_item("r1", "a", t0()),
            call_item("r1", "b", t0()),
            call_item("r1", "c", t0() + Duration::minutes(2)),
        ])
        .await
        .expect("enqueue");
    assert_eq!(store.next_wake().await.expect("wake"), Some(t0()));
    store
        .claim(t0(), 1, Duration::minutes(1))
        .await
        .expect("claim");
    let d = store.queue_depth(t0()).await.expect("depth");
    assert_eq!((d.due, d.scheduled, d.leased), (1, 1, 1));
    store
        .claim(t0(), 1, Duration::minutes(5))
        .await
        .expect("claim");
    // Both due items leased: the next wake is the first lease expiry.
    assert_eq!(
        store.next_wake().await.expect("wake"),
        Some(t0() + Duration::minutes(1))
    );
}

async fn released_leases_are_claimable_again(store: Arc<dyn RunStore>) {
    store
        .enqueue(vec![call_item("r1", "a", t0())])
        .await
        .expect("enqueue");
    assert_eq!(
        store
            .claim(t0(), 5, Duration::hours(1))
            .await
            .expect("claim")
            .len(),
        1
    );
    assert!(
        store
            .claim(t0(), 5, Duration::hours(1))
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(store.release_leases().await.expect("release"), 1);
    assert_eq!(
        store
            .claim(t0(), 5, Duration::hours(1))
            .await
            .expect("claim")
            .len(),
        1
    );
}

async fn old_finished_runs_and_event_ids_are_swept_and_live_runs_never(store: Arc<dyn RunStore>) {
    // Event ids are stamped with the wall clock when they arrive; run ends with the run's.
    let now = Utc::now();
    let cutoff = now - Duration::days(30);
    let finished = |id: &str, status: RunStatus, ended: DateTime<Utc>| {
        let mut r = run(id, "f");
        r.status = status;
        r.ended_at = Some(ended);
        r
    };
    let long_ago = now - Duration::days(40);
    let mut waiting = run("r-waiting", "f");
    waiting.status = RunStatus::Running;
    let publish = QueueItem::new(
        "publish:r-done:a".into(),
        Some("r-done".into()),
        ItemKind::Publish {
            events: vec![json!({"id": "x", "name": "y"})],
        },
        now + Duration::days(1),
    );
    store
        .ingest(ingest_of(
            "e-seen",
            vec![
                finished("r-done", RunStatus::Completed, long_ago),
                finished("r-failed", RunStatus::Failed, long_ago),
                finished("r-cancelled", RunStatus::Cancelled, long_ago),
                finished("r-recent", RunStatus::Completed, now - Duration::hours(1)),
                waiting,
                run("r-queued", "f"),
            ],
            vec![
                // A 72-hour SLA wait, begun long ago: its timeout and its pause.
                call_item("r-waiting", "wait", now + Duration::hours(72)),
                publish,
            ],
        ))
        .await
        .expect("ingest");
    store
        .commit(Commit {
            pauses: vec![pause(
                "p-sla",
                "r-waiting",
                "ticket/resolved",
                now + Duration::hours(72),
            )],
            ..Commit::default()
        })
        .await
        .expect("commit");

    // Small batches: two of the three old finished runs, then the last.
    let first = store.sweep(cutoff, 2).await.expect("sweep");
    assert_eq!(first, Swept { runs: 2, events: 0 });
    let second = store.sweep(cutoff, 2).await.expect("sweep");
    assert_eq!(second, Swept { runs: 1, events: 0 });
    assert_eq!(
        store.sweep(cutoff, 2).await.expect("sweep"),
        Swept::default()
    );
    for gone in ["r-done", "r-failed", "r-cancelled"] {
        assert_eq!(store.load_run(gone).await.expect("load"), None, "{gone}");
    }
    for kept in ["r-recent", "r-waiting", "r-queued"] {
        assert!(
            store.load_run(kept).await.expect("load").is_some(),
            "{kept}"
        );
    }
    let pauses = store
        .pauses_for("ticket/resolved", now)
        .await
        .expect("pauses");
    assert_eq!(pauses.len(), 1);
    // The timer and the events a swept run still had to publish stay queued.
    assert_eq!(store.queue_depth(now).await.expect("depth").scheduled, 2);

    // Past their retention, event ids go too: the same id is then a new event.
    let later = store
        .sweep(now + Duration::minutes(1), 100)
        .await
        .expect("sweep");
    assert_eq!(later, Swept { runs: 1, events: 1 });
    assert!(store.load_run("r-waiting").await.expect("load").is_some());
    assert!(store.load_run("r-queued").await.expect("load").is_some());
    let again = store
        .ingest(ingest_of("e-seen", Vec::new(), Vec::new()))
        .await
        .expect("ingest");
    assert_eq!(again, IngestOutcome::Accepted { resumed: 0 });
}
