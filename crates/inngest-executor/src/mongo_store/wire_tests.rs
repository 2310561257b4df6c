//! The store driven through the real driver against the scripted wire-protocol server of the
//! application's MongoDB tests, answering from [`FakeDb`] unless a test scripts a reply. This
//! runs the RunStore contract end to end, and checks what no server-free unit test can: the
//! commands the driver really sends (transactions, filters, upserts, index specs) and how
//! errors and retries come back through the store.

use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use mongodb::bson::{Bson, Document, doc};
use serde_json::json;

use super::MongoRunStore;
use super::documents as docs;
use super::fake_db::FakeDb;
use crate::state::RunState;
use crate::store::{Commit, ItemKind, QueueItem, RunStore, Slot, StoreError, contract};
use storage_kit::mongo::fake_server::{FakeMongod, Kind, Received, is_in_transaction, txn_number};

/// A server that answers from a fresh [`FakeDb`] unless `script` has a reply.
async fn server(
    script: impl Fn(&Received) -> Option<Document> + Send + Sync + 'static,
) -> FakeMongod {
    let db = FakeDb::default();
    FakeMongod::start(Kind::ReplicaSet, move |c| {
        script(c).or_else(|| db.answer(c))
    })
    .await
}

async fn store_on(server: &FakeMongod) -> MongoRunStore {
    MongoRunStore::connect(&server.uri(), "t")
        .await
        .expect("connect to the fake")
}

/// A reply scripted for the first `times` commands that `pick` selects.
fn fail_first(
    times: usize,
    pick: impl Fn(&Received) -> bool + Send + Sync + 'static,
    reply: Document,
) -> impl Fn(&Received) -> Option<Document> + Send + Sync + 'static {
    let left = Mutex::new(times);
    move |c| {
        if !pick(c) {
            return None;
        }
        let mut left = left.lock().expect("BUG: poisoned");
        (*left > 0).then(|| {
            *left -= 1;
            reply.clone()
        })
    }
}

fn on(command: &'static str, collection: &'static str) -> impl Fn(&Received) -> bool {
    move |c| c.name == command && c.body.get_str(command) == Ok(collection)
}

fn names(server: &FakeMongod) -> Vec<String> {
    server.commands().into_iter().map(|c| c.name).collect()
}

fn run(id: &str) -> RunState {
    RunState::new(
        id.into(),
        "app",
        "f",
        3,
        json!({"id": format!("evt-{id}"), "name": "app/e"}),
        Utc::now(),
    )
}

fn call(run_id: &str, step: &str) -> QueueItem {
    QueueItem::new(
        format!("call:{run_id}:{step}"),
        Some(run_id.into()),
        ItemKind::Call {
            step_id: step.into(),
            attempt: 0,
        },
        Utc::now() - Duration::seconds(1),
    )
}

fn first_statement(c: &Received, sequence: &str) -> Document {
    c.body.get_array(sequence).expect("statements")[0]
        .as_document()
        .expect("statement")
        .clone()
}

/// All commands share one session and transaction number; the first starts the transaction
/// with snapshot reads, and the commit waits for a majority.
fn assert_one_transaction(commands: &[Received]) {
    let first = &commands[0];
    assert_eq!(first.body.get_bool("startTransaction"), Ok(true));
    assert_eq!(
        first.body.get_document("readConcern"),
        Ok(&doc! { "level": "snapshot" })
    );
    for c in commands {
        assert!(is_in_transaction(c), "{c:?}");
        assert_eq!(txn_number(c), txn_number(first));
        assert_eq!(c.body.get_document("lsid"), first.body.get_document("lsid"));
    }
    assert!(
        commands[1..]
            .iter()
            .all(|c| !c.body.contains_key("startTransaction"))
    );
    let commit = commands.last().expect("commands");
    assert_eq!(commit.name, "commitTransaction");
    assert_eq!(
        commit
            .body
            .get_document("writeConcern")
            .and_then(|w| w.get_str("w")),
        Ok("majority")
    );
}

#[tokio::test]
async fn the_contract_holds_through_the_driver() {
    contract::run_all(|| async {
        let server = server(|_| None).await;
        Arc::new(store_on(&server).await) as Arc<dyn RunStore>
    })
    .await;
}

#[tokio::test]
async fn standalone_servers_are_refused_before_any_write() {
    let server = FakeMongod::start(Kind::Standalone, |_| None).await;
    let err = MongoRunStore::connect(&server.uri(), "t")
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("replica set")),
        "{err:?}"
    );
    assert!(server.named("create").is_empty());
    assert!(server.named("createIndexes").is_empty());
}

#[tokio::test]
async fn opening_creates_the_collections_and_their_indexes() {
    let server = server(|_| None).await;
    store_on(&server).await;
    let created: Vec<String> = server
        .named("create")
        .iter()
        .map(|c| c.body.get_str("create").expect("name").to_owned())
        .collect();
    assert_eq!(
        created,
        [
            docs::EVENTS,
            docs::RUNS,
            docs::QUEUE,
            docs::PAUSES,
            docs::SLOTS
        ]
    );
    let mut specs = Vec::new();
    for c in server.named("createIndexes") {
        assert_eq!(c.body.get_str("$db"), Ok("t"));
        for index in c.body.get_array("indexes").expect("indexes") {
            let index = index.as_document().expect("index");
            specs.push((
                c.body.get_str("createIndexes").expect("coll").to_owned(),
                index.get_str("name").expect("name").to_owned(),
                index.get_document("key").expect("key").clone(),
                index.get_bool("unique").unwrap_or(false),
            ));
        }
    }
    let spec = |c: &str, n: &str, k: Document, u: bool| (c.to_owned(), n.to_owned(), k, u);
    assert_eq!(
        specs,
        [
            spec(
                docs::RUNS,
                "inngest_runs_by_function",
                doc! { "function_id": 1, "_id": 1 },
                false
            ),
            spec(
                docs::RUNS,
                "inngest_runs_by_status",
                doc! { "status": 1, "_id": 1 },
                false
            ),
            spec(
                docs::RUNS,
                "inngest_runs_by_end",
                doc! { "ended_at": 1 },
                false
            ),
            spec(
                docs::EVENTS,
                "inngest_events_by_time",
                doc! { "received_at": 1 },
                false
            ),
            spec(
                docs::QUEUE,
                "inngest_queue_key_unique",
                doc! { "key": 1 },
                true
            ),
            spec(
                docs::QUEUE,
                "inngest_queue_by_due",
                doc! { "due_at": 1, "_id": 1 },
                false
            ),
            spec(
                docs::QUEUE,
                "inngest_queue_by_wake",
                doc! { "wake_at": 1 },
                false
            ),
            spec(
                docs::QUEUE,
                "inngest_queue_by_lease",
                doc! { "lease_until": 1 },
                false
            ),
            spec(
                docs::QUEUE,
                "inngest_queue_by_run",
                doc! { "run_id": 1 },
                false
            ),
            spec(
                docs::PAUSES,
                "inngest_pauses_by_event",
                doc! { "event_name": 1, "expires_at": 1 },
                false
            ),
            spec(
                docs::PAUSES,
                "inngest_pauses_by_run",
                doc! { "run_id": 1 },
                false
            ),
        ]
    );
}

#[tokio::test]
async fn existing_collections_are_not_an_error() {
    let server = server(|c| {
        (c.name == "create").then(|| {
            doc! { "ok": 0.0, "code": 48, "codeName": "NamespaceExists", "errmsg": "exists" }
        })
    })
    .await;
    store_on(&server).await;
    assert_eq!(server.named("createIndexes").len(), 4);
}

#[tokio::test]
async fn a_commit_is_one_transaction_applied_in_order() {
    let server = server(|_| None).await;
    let store = store_on(&server).await;
    store
        .commit(Commit {
            new_runs: vec![run("r1")],
            enqueue: vec![call("r1", "a")],
            ..Commit::default()
        })
        .await
        .expect("seed");
    let claimed = store
        .claim(Utc::now(), 1, Duration::minutes(1))
        .await
        .expect("claim")
        .remove(0);
    let loaded = store.load_run("r1").await.expect("load").expect("run");
    server.clear();

    store
        .commit(Commit {
            done: Some(claimed.lease.clone()),
            run: Some(Arc::new(loaded.clone())),
            remove_items: vec!["call:r1:gone".into()],
            events: vec![json!({"id": "inv-1", "name": "app/invoked"})],
            enqueue: vec![call("r1", "b")],
            ..Commit::default()
        })
        .await
        .expect("commit");
    let commands = server.commands();
    let seen: Vec<(&str, &str)> = commands
        .iter()
        .map(|c| (c.name.as_str(), c.body.get_str(&c.name).unwrap_or("")))
        .collect();
    assert_eq!(
        seen,
        [
            ("delete", docs::QUEUE),
            ("update", docs::RUNS),
            ("delete", docs::QUEUE),
            ("update", docs::EVENTS),
            ("update", docs::QUEUE),
            ("commitTransaction", ""),
        ]
    );
    assert_one_transaction(&commands);
    let done = first_statement(&commands[0], "deletes");
    assert_eq!(
        done.get_document("q"),
        Ok(&docs::held(&claimed.lease.item_id, &claimed.lease.token))
    );
    assert_eq!(done.get_i32("limit"), Ok(1));
    let write = first_statement(&commands[1], "updates");
    assert_eq!(
        write.get_document("q"),
        Ok(&doc! { "_id": "r1", "rev": 0_i64 })
    );
    assert_ne!(
        write.get_bool("upsert"),
        Ok(true),
        "a run update never inserts"
    );
    let enqueue = first_statement(&commands[4], "updates");
    assert_eq!(enqueue.get_bool("upsert"), Ok(true));
    assert_eq!(enqueue.get_document("q"), Ok(&doc! { "key": "call:r1:b" }));
    assert_eq!(
        store.load_run("r1").await.expect("load").expect("run").rev,
        1
    );
}

#[tokio::test]
async fn a_lost_lease_aborts_before_the_run_is_written() {
    let server = server(fail_first(
        1,
        on("delete", docs::QUEUE),
        doc! { "n": 0, "ok": 1.0 },
    ))
    .await;
    let store = store_on(&server).await;
    server.clear();
    let err = store
        .commit(Commit {
            done: Some(crate::store::Lease {
                item_id: "i1".into(),
                token: "old".into(),
            }),
            run: Some(Arc::new(run("r1"))),
            ..Commit::default()
        })
        .await
        .expect_err("lost");
    assert!(
        matches!(&err, StoreError::LeaseLost(id) if id == "i1"),
        "{err:?}"
    );
    assert_eq!(names(&server), ["delete", "abortTransaction"]);
}

#[tokio::test]
async fn a_stale_revision_conflicts_and_undoes_the_delete() {
    let server = server(|_| None).await;
    let store = store_on(&server).await;
    store
        .commit(Commit {
            new_runs: vec![run("r1")],
            enqueue: vec![call("r1", "a")],
            ..Commit::default()
        })
        .await
        .expect("seed");
    let claimed = store
        .claim(Utc::now(), 1, Duration::minutes(1))
        .await
        .expect("claim")
        .remove(0);
    let mut stale = run("r1");
    stale.rev = 7;
    server.clear();
    let err = store
        .commit(Commit {
            done: Some(claimed.lease.clone()),
            run: Some(Arc::new(stale)),
            ..Commit::default()
        })
        .await
        .expect_err("stale");
    assert!(
        matches!(&err, StoreError::Conflict(id) if id == "r1"),
        "{err:?}"
    );
    assert_eq!(names(&server), ["delete", "update", "abortTransaction"]);
    // The item is still held: committing with the lease works.
    store
        .commit(Commit {
            done: Some(claimed.lease),
            ..Commit::default()
        })
        .await
        .expect("lease still held");
}

#[tokio::test]
async fn claims_filter_on_due_and_lease_and_take_their_slots() {
    let server = server(|_| None).await;
    let store = store_on(&server).await;
    let mut item = call("r1", "a");
    item.concurrency = vec![Slot {
        key: "fn:f:".into(),
        limit: 2,
    }];
    store.enqueue(vec![item.clone()]).await.expect("enqueue");
    server.clear();
    let now = Utc::now();
    let claimed = store
        .claim(now, 4, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].item, item);

    let commands = server.commands();
    assert_eq!(
        commands.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        [
            "find",
            "find",
            "update",
            "findAndModify",
            "commitTransaction"
        ]
    );
    assert_one_transaction(&commands);
    assert_eq!(
        commands[1].body.get_document("filter"),
        Ok(&docs::leased_with_slots(now))
    );
    let candidates = &commands[0].body;
    assert_eq!(candidates.get_document("filter"), Ok(&docs::claimable(now)));
    assert_eq!(candidates.get_document("sort"), Ok(&docs::claim_order()));
    assert_eq!(candidates.get_i64("limit"), Ok(96));
    let slot = first_statement(&commands[2], "updates");
    assert_eq!(commands[2].body.get_str("update"), Ok(docs::SLOTS));
    assert_eq!(slot.get_document("q"), Ok(&doc! { "_id": "fn:f:" }));
    assert_eq!(slot.get_bool("upsert"), Ok(true));
    let lease = &commands[3].body;
    assert_eq!(lease.get_str("findAndModify"), Ok(docs::QUEUE));
    let mut expected = docs::claimable(now);
    expected.insert("_id", &item.id);
    assert_eq!(lease.get_document("query"), Ok(&expected));
    let set = lease
        .get_document("update")
        .and_then(|u| u.get_document("$set"))
        .expect("$set");
    assert_eq!(
        set.get_str("lease_token"),
        Ok(claimed[0].lease.token.as_str())
    );
    assert_eq!(
        set.get_datetime("lease_until"),
        Ok(&docs::date(now + Duration::seconds(30)))
    );
    assert_eq!(
        store.next_wake().await.expect("wake"),
        Some(
            chrono::DateTime::from_timestamp_millis(
                (now + Duration::seconds(30)).timestamp_millis()
            )
            .expect("t")
        )
    );
}

#[tokio::test]
async fn write_conflicts_rerun_the_whole_claim() {
    let server = server(fail_first(
        1,
        on("findAndModify", docs::QUEUE),
        doc! {
            "ok": 0.0, "code": 112, "codeName": "WriteConflict", "errmsg": "write conflict",
            "errorLabels": ["TransientTransactionError"],
        },
    ))
    .await;
    let store = store_on(&server).await;
    store.enqueue(vec![call("r1", "a")]).await.expect("enqueue");
    server.clear();
    let claimed = store
        .claim(Utc::now(), 1, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let commands = server.commands();
    assert_eq!(
        commands.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        [
            "find",
            "findAndModify",
            "abortTransaction",
            "find",
            "findAndModify",
            "commitTransaction"
        ]
    );
    assert_eq!(commands[3].body.get_bool("startTransaction"), Ok(true));
    assert!(txn_number(&commands[3]) > txn_number(&commands[0]));
}

#[tokio::test]
async fn racing_upserts_rerun_the_transaction() {
    let server = server(fail_first(
        1,
        on("update", docs::QUEUE),
        doc! { "ok": 1.0, "n": 0, "writeErrors": [ {
            "index": 0, "code": 11000,
            "errmsg": "E11000 duplicate key error collection: t.inngest_queue index: inngest_queue_key_unique dup key: { key: \"call:r1:a\" }",
        } ] },
    ))
    .await;
    let store = store_on(&server).await;
    server.clear();
    store.enqueue(vec![call("r1", "a")]).await.expect("enqueue");
    assert_eq!(
        names(&server),
        ["update", "abortTransaction", "update", "commitTransaction"]
    );
    assert_eq!(store.queue_depth(Utc::now()).await.expect("depth").due, 1);
}

#[tokio::test]
async fn unknown_commit_results_retry_only_the_commit() {
    let server = server(fail_first(
        1,
        |c| c.name == "commitTransaction",
        doc! {
            "ok": 0.0, "code": 8, "codeName": "UnknownError", "errmsg": "lost",
            "errorLabels": ["UnknownTransactionCommitResult"],
        },
    ))
    .await;
    let store = store_on(&server).await;
    server.clear();
    store
        .commit(Commit {
            new_runs: vec![run("r1")],
            ..Commit::default()
        })
        .await
        .expect("commit");
    let commits = server.named("commitTransaction");
    assert_eq!(commits.len(), 2);
    assert_eq!(txn_number(&commits[0]), txn_number(&commits[1]));
    assert_eq!(server.named("update").len(), 1, "the write ran once");
}

#[tokio::test]
async fn other_errors_are_unavailable_and_not_retried() {
    let in_a_transaction = |c: &Received| on("update", docs::RUNS)(c) && is_in_transaction(c);
    let server = server(fail_first(
        1,
        in_a_transaction,
        doc! { "ok": 0.0, "code": 2, "codeName": "BadValue", "errmsg": "no" },
    ))
    .await;
    let store = store_on(&server).await;
    server.clear();
    let err = store
        .commit(Commit {
            new_runs: vec![run("r1")],
            ..Commit::default()
        })
        .await
        .expect_err("fails");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(names(&server), ["update", "abortTransaction"]);
}

#[tokio::test]
async fn corrupt_documents_are_reported_as_such() {
    let server = server(|c| {
        on("find", docs::RUNS)(c).then(|| {
            doc! { "cursor": { "firstBatch": [ { "_id": "r1", "rev": 1, "state": "{" } ],
            "id": 0_i64, "ns": "t.inngest_runs" }, "ok": 1.0 }
        })
    })
    .await;
    let store = store_on(&server).await;
    let err = store.load_run("r1").await.expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[tokio::test]
async fn releasing_leases_is_one_pipeline_update_of_leased_items() {
    let server = server(|_| None).await;
    let store = store_on(&server).await;
    store
        .enqueue(vec![call("r1", "a"), call("r1", "b")])
        .await
        .expect("enqueue");
    store
        .claim(Utc::now(), 1, Duration::hours(1))
        .await
        .expect("claim");
    server.clear();
    assert_eq!(store.release_leases().await.expect("release"), 1);
    let update = server.named("update");
    assert_eq!(update.len(), 1);
    assert!(!is_in_transaction(&update[0]));
    let statement = first_statement(&update[0], "updates");
    assert_eq!(statement.get_bool("multi"), Ok(true));
    assert_eq!(statement.get_document("q"), Ok(&docs::leased()));
    assert_eq!(
        statement.get_array("u").map(|u| u.to_vec()),
        Ok(docs::release().into_iter().map(Bson::Document).collect())
    );
}

#[tokio::test]
async fn an_empty_page_or_batch_sends_nothing() {
    let server = server(|_| None).await;
    let store = store_on(&server).await;
    server.clear();
    store.enqueue(Vec::new()).await.expect("enqueue");
    assert!(
        store
            .claim(Utc::now(), 0, Duration::seconds(1))
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        store
            .list_runs(&crate::store::RunFilter::default())
            .await
            .expect("list")
            .is_empty()
    );
    assert!(server.commands().is_empty(), "{:?}", names(&server));
}

/// The caller gives up mid-transaction (a timeout, a shutdown): the spawned task still finishes
/// it, rather than leaving a session in the middle of a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_still_finishes_its_transaction() {
    let server = server(|c| {
        if on("update", docs::RUNS)(c) {
            std::thread::sleep(StdDuration::from_millis(300));
        }
        None
    })
    .await;
    let store = store_on(&server).await;
    server.clear();
    // Give up once the server has the write in hand and is still working on it. Not a timer:
    // the server logs a command before answering it, and the log is looked at first on every
    // wake-up, so the call cannot have finished by the time it is dropped, however busy the
    // machine is.
    let mut call = Box::pin(store.commit(Commit {
        new_runs: vec![run("r1")],
        ..Commit::default()
    }));
    let write_in_hand = async {
        while server.named("update").is_empty() {
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
    };
    let finished_first = tokio::select! {
        biased;
        () = write_in_hand => None,
        outcome = &mut call => Some(outcome),
    };
    assert!(
        finished_first.is_none(),
        "the call was still running: {finished_first:?}"
    );
    drop(call);
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    while server.named("commitTransaction").is_empty() {
        assert!(std::time::Instant::now() < deadline, "{:?}", names(&server));
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    assert!(store.load_run("r1").await.expect("load").is_some());
}

/// A URI asking for secondary reads (for the application's own queries) must not break the
/// executor: transactions have to read from the primary, and so do its plain reads.
#[tokio::test]
async fn secondary_reads_in_the_uri_do_not_reach_the_run_store() {
    let server = server(|_| None).await;
    let store = MongoRunStore::connect(
        &format!("{}&readPreference=secondaryPreferred", server.uri()),
        "t",
    )
    .await
    .expect("connect");
    store
        .commit(Commit {
            new_runs: vec![run("r1")],
            enqueue: vec![call("r1", "a")],
            ..Commit::default()
        })
        .await
        .expect("a transaction despite the URI's read preference");
    assert_eq!(
        store
            .claim(Utc::now(), 1, Duration::seconds(30))
            .await
            .expect("claim")
            .len(),
        1
    );
    assert!(store.load_run("r1").await.expect("load").is_some());
}

#[tokio::test]
async fn runs_finished_before_their_end_was_stored_count_as_finished_when_the_store_opens() {
    let server = server(|_| None).await;
    store_on(&server).await;
    // A finished run as an older version stored it: no `ended_at` beside the state.
    let mut legacy = run("legacy");
    legacy.status = crate::state::RunStatus::Completed;
    legacy.ended_at = Some(Utc::now() - Duration::days(90));
    let mut old = docs::run_upsert(&legacy).expect("document");
    if let Ok(fields) = old.update.get_document_mut("$setOnInsert") {
        fields.remove("ended_at");
    }
    let client = mongodb::Client::with_uri_str(server.uri())
        .await
        .expect("client");
    client
        .database("t")
        .collection::<Document>(docs::RUNS)
        .update_one(old.filter, old.update)
        .upsert(true)
        .await
        .expect("legacy run");

    // Reopened after the upgrade: kept for one more retention period from now.
    let store = store_on(&server).await;
    let now = Utc::now();
    let swept = store
        .sweep(now - Duration::minutes(1), 10)
        .await
        .expect("sweep");
    assert_eq!(swept.runs, 0);
    assert!(store.load_run("legacy").await.expect("load").is_some());
    let swept = store
        .sweep(now + Duration::minutes(1), 10)
        .await
        .expect("sweep");
    assert_eq!(swept.runs, 1);
    assert_eq!(store.load_run("legacy").await.expect("load"), None);
}
