//! The documents, filters and updates of the MongoDB run store, and reading them back. Pure
//! functions only, so every shape is checked without a server.
//!
//! Collections, all prefixed `inngest_` so they can share the application's database:
//!
//! - `inngest_events`: `{_id: event id, name, received_at, body}`: seen event ids.
//! - `inngest_runs`: `{_id, function_id, status, created_at, ended_at, rev, summary, state}`.
//! - `inngest_queue`: `{_id, key (unique), run_id, kind, due_at, wake_at, lease_until,
//!   lease_token, concurrency: [{key, limit}], body}`. `wake_at` is `max(due_at, lease_until)`,
//!   kept up to date by every write so the next wake-up is one indexed read.
//! - `inngest_pauses`: `{_id, run_id, event_name, expires_at, body}`.
//! - `inngest_slots`: `{_id: concurrency key, claims}`: written by every claim that takes the
//!   slot, so two claims filling the same slot conflict instead of both succeeding.
//!
//! Run states, queue items and pauses are stored whole as JSON text (`state`, `body`), the same
//! text the SQLite store keeps: step outputs and events are arbitrary JSON (integers beyond
//! 64-bit signed, `$`-prefixed or dotted keys) that BSON cannot always hold as such, and a run
//! must never become unwritable because of what a step returned. The fields that queries
//! filter and sort on sit beside them as native values, with times as BSON dates (milliseconds,
//! as SQLite's columns).

use chrono::{DateTime, Duration, Utc};
use mongodb::IndexModel;
use mongodb::bson::{self, Bson, Document, doc};
use serde_json::Value;
use storage_kit::mongo::index;

use crate::state::{RunState, RunStatus};
use crate::store::{
    ItemKind, Pause, QueueItem, RunFilter, RunSummary, Slot, StoreError, StoreResult,
};

pub(super) const EVENTS: &str = "inngest_events";
pub(super) const RUNS: &str = "inngest_runs";
pub(super) const QUEUE: &str = "inngest_queue";
pub(super) const PAUSES: &str = "inngest_pauses";
pub(super) const SLOTS: &str = "inngest_slots";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn date(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

fn from_date(t: bson::DateTime) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(t.timestamp_millis())
        .ok_or_else(|| corrupt("date", t.timestamp_millis()))
}

fn json<T: serde::Serialize>(what: &str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| corrupt(what, e))
}

fn field_str<'d>(d: &'d Document, what: &str, key: &str) -> StoreResult<&'d str> {
    d.get_str(key)
        .map_err(|e| corrupt(what, format!("{key}: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(d: &Document, what: &str, key: &str) -> StoreResult<T> {
    serde_json::from_str(field_str(d, what, key)?).map_err(|e| corrupt(what, e))
}

/// Integers come back as 32- or 64-bit depending on their size.
fn int(value: Option<&Bson>) -> Option<i64> {
    match value {
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        Some(Bson::Int64(n)) => Some(*n),
        _ => None,
    }
}

fn rev(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|e| corrupt("run revision", e))
}

/// An insert that leaves an existing document alone: `update_one(filter, update)` with
/// upsert. Inside a transaction a duplicate-key error would abort the whole transaction, so
/// "insert unless present" cannot be an insert that ignores that error.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Upsert {
    pub collection: &'static str,
    pub filter: Document,
    pub update: Document,
}

/// `document` minus the fields `filter` pins: the server seeds a new document from the
/// filter's equalities, and the rest goes in `$setOnInsert`.
fn upsert(collection: &'static str, filter: Document, mut document: Document) -> Upsert {
    for key in filter.keys() {
        document.remove(key);
    }
    Upsert {
        collection,
        filter,
        update: doc! { "$setOnInsert": document },
    }
}

pub(super) fn event_upsert(id: &str, event: &Value, now: DateTime<Utc>) -> Upsert {
    let name = event.get("name").and_then(Value::as_str).unwrap_or("");
    upsert(
        EVENTS,
        doc! { "_id": id },
        doc! {
            "_id": id,
            "name": name,
            "received_at": date(now),
            "body": event.to_string(),
        },
    )
}

/// The native fields of a run beside its JSON state, as written on insert and on update.
fn run_fields(run: &RunState) -> StoreResult<Document> {
    Ok(doc! {
        "function_id": &run.function_id,
        "status": run.status.as_str(),
        "created_at": date(run.created_at),
        "ended_at": run.ended_at.map_or(Bson::Null, |t| Bson::DateTime(date(t))),
        "rev": rev(run.rev)?,
        "summary": json("run summary", &RunSummary::of(run))?,
        "state": json("run state", run)?,
    })
}

pub(super) fn run_upsert(run: &RunState) -> StoreResult<Upsert> {
    Ok(upsert(RUNS, doc! { "_id": &run.id }, run_fields(run)?))
}

/// Writes `run` (at its loaded revision) as the next revision, if nobody wrote it since.
pub(super) fn run_update(run: &RunState) -> StoreResult<(Document, Document)> {
    let mut next = run.clone();
    next.rev = run
        .rev
        .checked_add(1)
        .ok_or_else(|| corrupt("run revision", "overflow"))?;
    let mut fields = run_fields(&next)?;
    // Fixed at creation.
    fields.remove("function_id");
    fields.remove("created_at");
    Ok((
        doc! { "_id": &run.id, "rev": rev(run.rev)? },
        doc! { "$set": fields },
    ))
}

pub(super) fn kind_name(kind: &ItemKind) -> &'static str {
    match kind {
        ItemKind::Call { .. } => "call",
        ItemKind::Resume { .. } => "resume",
        ItemKind::Publish { .. } => "publish",
        ItemKind::Cron { .. } => "cron",
        ItemKind::Cancel { .. } => "cancel",
    }
}

fn slot_documents(slots: &[Slot]) -> Vec<Document> {
    slots
        .iter()
        .map(|s| doc! { "key": &s.key, "limit": i64::from(s.limit) })
        .collect()
}

/// At most one live item per key: the upsert matches on `key`, so a second item with a live
/// key changes nothing.
pub(super) fn item_upsert(item: &QueueItem) -> StoreResult<Upsert> {
    let run_id = item.run_id.as_deref().map_or(Bson::Null, Bson::from);
    Ok(upsert(
        QUEUE,
        doc! { "key": &item.key },
        doc! {
            "_id": &item.id,
            "key": &item.key,
            "run_id": run_id,
            "kind": kind_name(&item.kind),
            "due_at": date(item.due_at),
            "wake_at": date(item.due_at),
            "lease_until": Bson::Null,
            "lease_token": Bson::Null,
            "concurrency": slot_documents(&item.concurrency),
            "body": json("queue item", item)?,
        },
    ))
}

pub(super) fn pause_upsert(p: &Pause) -> StoreResult<Upsert> {
    Ok(upsert(
        PAUSES,
        doc! { "_id": &p.id },
        doc! {
            "_id": &p.id,
            "run_id": &p.run_id,
            "event_name": &p.event,
            "expires_at": date(p.expires_at),
            "body": json("pause", p)?,
        },
    ))
}

/// Not leased, or leased until a time that has passed.
fn lease_free(now: DateTime<Utc>) -> Bson {
    Bson::Array(vec![
        Bson::Document(doc! { "lease_until": Bson::Null }),
        Bson::Document(doc! { "lease_until": { "$lte": date(now) } }),
    ])
}

/// Due and free to lease.
pub(super) fn claimable(now: DateTime<Utc>) -> Document {
    doc! { "due_at": { "$lte": date(now) }, "$or": lease_free(now) }
}

/// Oldest first, ties by id (UUID v7, so by creation).
pub(super) fn claim_order() -> Document {
    doc! { "due_at": 1, "_id": 1 }
}

/// How many candidates to read for `max` claims: more than `max`, since calls over their
/// concurrency limit are skipped.
pub(super) fn candidate_limit(max: usize) -> i64 {
    let n = max.saturating_mul(8).saturating_add(64);
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Items holding concurrency slots now.
pub(super) fn leased_with_slots(now: DateTime<Utc>) -> Document {
    doc! { "lease_until": { "$gt": date(now) }, "concurrency.0": { "$exists": true } }
}

/// Leases `item` if it is still claimable: the filter repeats the due and lease conditions,
/// so a worker that read a stale copy leases nothing.
pub(super) fn lease(
    item: &QueueItem,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    token: &str,
) -> (Document, Document) {
    let mut filter = claimable(now);
    filter.insert("_id", &item.id);
    let update = doc! { "$set": {
        "lease_until": date(until),
        "lease_token": token,
        "wake_at": date(item.due_at.max(until)),
    } };
    (filter, update)
}

/// Takes one claim on a concurrency key (see the module note on `inngest_slots`).
pub(super) fn slot_claim(key: &str) -> (Document, Document) {
    (doc! { "_id": key }, doc! { "$inc": { "claims": 1_i64 } })
}

/// The processed item, if this lease still holds it.
pub(super) fn held(item_id: &str, token: &str) -> Document {
    doc! { "_id": item_id, "lease_token": token }
}

pub(super) fn leased() -> Document {
    doc! { "lease_token": { "$ne": Bson::Null } }
}

/// Drops the lease; the item wakes at its due time again. A pipeline, to read `due_at`.
pub(super) fn release() -> Vec<Document> {
    vec![doc! { "$set": {
        "lease_until": Bson::Null,
        "lease_token": Bson::Null,
        "wake_at": "$due_at",
    } }]
}

/// Work of finished runs, except the events they still have to publish.
pub(super) fn run_work(run_ids: &[String]) -> (Document, Document) {
    (
        doc! { "run_id": { "$in": run_ids }, "kind": { "$ne": "publish" } },
        doc! { "run_id": { "$in": run_ids } },
    )
}

fn finished() -> Bson {
    Bson::Array(
        [
            RunStatus::Completed,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .iter()
        .map(|s| Bson::from(s.as_str()))
        .collect(),
    )
}

/// Runs that finished before `cutoff`.
pub(super) fn sweepable_runs(cutoff: DateTime<Utc>) -> Document {
    doc! { "status": { "$in": finished() }, "ended_at": { "$lt": date(cutoff) } }
}

/// Finished runs written before `ended_at` was: they count as finished at `now`.
pub(super) fn runs_without_end() -> Document {
    doc! { "status": { "$in": finished() }, "ended_at": { "$exists": false } }
}

/// Event ids received before `cutoff`.
pub(super) fn sweepable_events(cutoff: DateTime<Utc>) -> Document {
    doc! { "received_at": { "$lt": date(cutoff) } }
}

pub(super) fn keys_in(keys: &[String]) -> Document {
    doc! { "key": { "$in": keys } }
}

pub(super) fn ids_in(ids: &[String]) -> Document {
    doc! { "_id": { "$in": ids } }
}

pub(super) fn pauses_for(event_name: &str, now: DateTime<Utc>) -> Document {
    doc! { "event_name": event_name, "expires_at": { "$gt": date(now) } }
}

pub(super) fn run_list(filter: &RunFilter) -> Document {
    let mut f = Document::new();
    if let Some(function_id) = &filter.function_id {
        f.insert("function_id", function_id);
    }
    if let Some(status) = filter.status {
        f.insert("status", status.as_str());
    }
    if let Some(before) = &filter.before {
        f.insert("_id", doc! { "$lt": before });
    }
    f
}

/// The three queue-depth counts: leased, due, scheduled.
pub(super) fn depth(now: DateTime<Utc>) -> [Document; 3] {
    [
        doc! { "lease_until": { "$gt": date(now) } },
        doc! { "due_at": { "$lte": date(now) }, "$or": lease_free(now) },
        doc! { "due_at": { "$gt": date(now) }, "$or": lease_free(now) },
    ]
}

/// Secondary indexes per collection; `inngest_slots` is read by `_id` only.
pub(super) fn indexes() -> Vec<(&'static str, Vec<IndexModel>)> {
    vec![
        (
            RUNS,
            vec![
                index(
                    "inngest_runs_by_function",
                    doc! { "function_id": 1, "_id": 1 },
                    false,
                ),
                index(
                    "inngest_runs_by_status",
                    doc! { "status": 1, "_id": 1 },
                    false,
                ),
                index("inngest_runs_by_end", doc! { "ended_at": 1 }, false),
            ],
        ),
        (
            EVENTS,
            vec![index(
                "inngest_events_by_time",
                doc! { "received_at": 1 },
                false,
            )],
        ),
        (
            QUEUE,
            vec![
                index("inngest_queue_key_unique", doc! { "key": 1 }, true),
                index("inngest_queue_by_due", claim_order(), false),
                index("inngest_queue_by_wake", doc! { "wake_at": 1 }, false),
                index("inngest_queue_by_lease", doc! { "lease_until": 1 }, false),
                index("inngest_queue_by_run", doc! { "run_id": 1 }, false),
            ],
        ),
        (
            PAUSES,
            vec![
                index(
                    "inngest_pauses_by_event",
                    doc! { "event_name": 1, "expires_at": 1 },
                    false,
                ),
                index("inngest_pauses_by_run", doc! { "run_id": 1 }, false),
            ],
        ),
    ]
}

pub(super) fn read_run(d: &Document) -> StoreResult<RunState> {
    let mut run: RunState = parse(d, "run", "state")?;
    let rev = int(d.get("rev")).ok_or_else(|| corrupt("run", "rev is not an integer"))?;
    run.rev = u64::try_from(rev).map_err(|e| corrupt("run revision", e))?;
    Ok(run)
}

pub(super) fn read_summary(d: &Document) -> StoreResult<RunSummary> {
    parse(d, "run summary", "summary")
}

pub(super) fn read_item(d: &Document) -> StoreResult<QueueItem> {
    parse(d, "queue item", "body")
}

pub(super) fn read_pause(d: &Document) -> StoreResult<Pause> {
    parse(d, "pause", "body")
}

pub(super) fn read_slots(d: &Document) -> StoreResult<Vec<Slot>> {
    let slots = d
        .get_array("concurrency")
        .map_err(|e| corrupt("concurrency", e))?;
    slots
        .iter()
        .map(|s| {
            let s = s
                .as_document()
                .ok_or_else(|| corrupt("concurrency", "slot is not a document"))?;
            let limit = int(s.get("limit"))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| corrupt("concurrency", "limit is not a small integer"))?;
            Ok(Slot {
                key: field_str(s, "concurrency", "key")?.to_owned(),
                limit,
            })
        })
        .collect()
}

pub(super) fn read_wake(d: &Document) -> StoreResult<DateTime<Utc>> {
    from_date(
        *d.get_datetime("wake_at")
            .map_err(|e| corrupt("queue item", e))?,
    )
}

/// `now + lease_for`, refusing durations that overflow a date.
pub(super) fn lease_until(now: DateTime<Utc>, lease_for: Duration) -> StoreResult<DateTime<Utc>> {
    now.checked_add_signed(lease_for)
        .ok_or_else(|| StoreError::Corrupt(format!("lease of {lease_for} overflows")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ResumeReason, RunStatus};
    use crate::store::PauseKind;
    use serde_json::json;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00.123456789Z")
            .expect("BUG: literal")
            .with_timezone(&Utc)
    }

    fn run() -> RunState {
        let mut run = RunState::new(
            "r1".into(),
            "app",
            "f",
            3,
            json!({"id": "e1", "name": "app/e", "data": {"big": u64::MAX, "$odd.key": 1}}),
            t0(),
        );
        run.steps
            .insert("s".into(), json!({"data": {"a.b": [1.5, null, "x"]}}));
        run.rev = 4;
        run
    }

    /// What the server makes of an upsert that inserts: the filter's fields plus `$setOnInsert`.
    fn inserted(u: &Upsert) -> Document {
        let mut d = u.filter.clone();
        d.extend(
            u.update
                .get_document("$setOnInsert")
                .expect("setOnInsert")
                .clone(),
        );
        d
    }

    #[test]
    fn runs_round_trip_whatever_their_steps_return() {
        let run = run();
        let u = run_upsert(&run).expect("doc");
        assert_eq!(u.collection, RUNS);
        assert_eq!(u.filter, doc! { "_id": "r1" });
        let set = u.update.get_document("$setOnInsert").expect("set");
        assert!(!set.contains_key("_id"), "pinned by the filter");
        let stored = inserted(&u);
        assert_eq!(stored.get_str("function_id"), Ok("f"));
        assert_eq!(stored.get_str("status"), Ok("queued"));
        assert_eq!(stored.get_i64("rev"), Ok(4));
        assert_eq!(
            stored
                .get_datetime("created_at")
                .expect("date")
                .timestamp_millis(),
            t0().timestamp_millis()
        );
        // Read back through BSON bytes, as from the wire.
        let mut bytes = Vec::new();
        stored.to_writer(&mut bytes).expect("encode");
        let back = Document::from_reader(bytes.as_slice()).expect("decode");
        assert_eq!(read_run(&back).expect("run"), run);
        let summary = read_summary(&back).expect("summary");
        assert_eq!(summary, RunSummary::of(&run));
        assert_eq!(summary.created_at, t0(), "full precision, as SQLite");
    }

    #[test]
    fn a_run_update_checks_the_loaded_revision_and_writes_the_next() {
        let mut run = run();
        run.status = RunStatus::Failed;
        let (filter, update) = run_update(&run).expect("update");
        assert_eq!(filter, doc! { "_id": "r1", "rev": 4_i64 });
        let set = update.get_document("$set").expect("set");
        assert_eq!(set.get_i64("rev"), Ok(5));
        assert_eq!(set.get_str("status"), Ok("failed"));
        assert!(!set.contains_key("function_id") && !set.contains_key("created_at"));
        let mut stored = set.clone();
        stored.insert("rev", 5_i64);
        let back = read_run(&stored).expect("run");
        assert_eq!(back.rev, 5);
        assert_eq!(back.status, RunStatus::Failed);
        assert_eq!(back.steps, run.steps);

        run.rev = u64::MAX;
        assert!(matches!(run_update(&run), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn revisions_stored_as_int32_are_read() {
        let u = run_upsert(&run()).expect("doc");
        let mut stored = inserted(&u);
        stored.insert("rev", 7_i32);
        assert_eq!(read_run(&stored).expect("run").rev, 7);
        stored.insert("rev", -1_i64);
        assert!(matches!(read_run(&stored), Err(StoreError::Corrupt(_))));
        stored.insert("state", "{not json");
        assert!(matches!(read_run(&stored), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn queue_items_are_keyed_and_carry_their_query_fields() {
        let mut item = QueueItem::new(
            "call:r1:s".into(),
            Some("r1".into()),
            ItemKind::Call {
                step_id: "s".into(),
                attempt: 2,
            },
            t0(),
        );
        item.concurrency = vec![Slot {
            key: "fn:f:".into(),
            limit: 3,
        }];
        let u = item_upsert(&item).expect("doc");
        assert_eq!(u.collection, QUEUE);
        assert_eq!(u.filter, doc! { "key": "call:r1:s" });
        let stored = inserted(&u);
        assert_eq!(stored.get_str("_id"), Ok(item.id.as_str()));
        assert_eq!(stored.get_str("run_id"), Ok("r1"));
        assert_eq!(stored.get_str("kind"), Ok("call"));
        assert_eq!(stored.get("lease_until"), Some(&Bson::Null));
        assert_eq!(stored.get("lease_token"), Some(&Bson::Null));
        assert_eq!(
            stored.get_datetime("wake_at"),
            stored.get_datetime("due_at")
        );
        assert_eq!(read_item(&stored).expect("item"), item);
        assert_eq!(read_slots(&stored).expect("slots"), item.concurrency);
        assert_eq!(
            read_wake(&stored).expect("wake"),
            DateTime::from_timestamp_millis(t0().timestamp_millis()).expect("t")
        );

        let cron = QueueItem::new(
            "cron:f:* * * * *".into(),
            None,
            ItemKind::Cron {
                function_id: "f".into(),
                schedule: "* * * * *".into(),
            },
            t0(),
        );
        let stored = inserted(&item_upsert(&cron).expect("doc"));
        assert_eq!(stored.get("run_id"), Some(&Bson::Null));
        assert_eq!(stored.get_array("concurrency").expect("array").len(), 0);
    }

    #[test]
    fn bad_slots_are_corrupt() {
        for slots in [
            doc! { "concurrency": [ { "key": "k", "limit": -1_i64 } ] },
            doc! { "concurrency": [ { "key": "k", "limit": "1" } ] },
            doc! { "concurrency": [ "k" ] },
            doc! {},
        ] {
            assert!(
                matches!(read_slots(&slots), Err(StoreError::Corrupt(_))),
                "{slots}"
            );
        }
        let ok = doc! { "concurrency": [ { "key": "k", "limit": 2_i32 } ] };
        assert_eq!(read_slots(&ok).expect("slots")[0].limit, 2);
    }

    #[test]
    fn pauses_and_events_round_trip() {
        let p = Pause {
            id: "p1".into(),
            run_id: "r1".into(),
            kind: PauseKind::Wait {
                step_id: "w".into(),
            },
            event: "app/resume".into(),
            condition: Some("event.data.a == async.data.a".into()),
            trigger_event: json!({"data": {"a": 1}}),
            expires_at: t0(),
        };
        let u = pause_upsert(&p).expect("doc");
        assert_eq!((u.collection, &u.filter), (PAUSES, &doc! { "_id": "p1" }));
        let stored = inserted(&u);
        assert_eq!(stored.get_str("event_name"), Ok("app/resume"));
        assert_eq!(stored.get_str("run_id"), Ok("r1"));
        assert_eq!(read_pause(&stored).expect("pause"), p);

        let e = event_upsert("e1", &json!({"id": "e1", "name": "a/b"}), t0());
        assert_eq!((e.collection, &e.filter), (EVENTS, &doc! { "_id": "e1" }));
        let stored = inserted(&e);
        assert_eq!(stored.get_str("name"), Ok("a/b"));
        let nameless = inserted(&event_upsert("e2", &json!({"id": "e2"}), t0()));
        assert_eq!(nameless.get_str("name"), Ok(""));
    }

    #[test]
    fn claims_lease_only_what_is_due_and_free() {
        let now = t0();
        let free = doc! { "$or": [
            { "lease_until": Bson::Null },
            { "lease_until": { "$lte": date(now) } },
        ] };
        let mut expected = doc! { "due_at": { "$lte": date(now) } };
        expected.extend(free.clone());
        assert_eq!(claimable(now), expected);

        let item = QueueItem::new(
            "k".into(),
            None,
            ItemKind::Cancel { reason: "x".into() },
            now - Duration::seconds(1),
        );
        let until = now + Duration::seconds(30);
        let (filter, update) = lease(&item, now, until, "tok");
        let mut expected = claimable(now);
        expected.insert("_id", &item.id);
        assert_eq!(filter, expected);
        assert_eq!(
            update,
            doc! { "$set": { "lease_until": date(until), "lease_token": "tok", "wake_at": date(until) } }
        );
        // A lease shorter than the wait to the due time (claims ahead of time) wakes at due.
        let (_, update) = lease(&item, now, now - Duration::seconds(5), "tok");
        let set = update.get_document("$set").expect("set");
        assert_eq!(set.get_datetime("wake_at"), Ok(&date(item.due_at)));

        assert_eq!(
            leased_with_slots(now),
            doc! { "lease_until": { "$gt": date(now) }, "concurrency.0": { "$exists": true } }
        );
        assert_eq!(held("i", "t"), doc! { "_id": "i", "lease_token": "t" });
        assert_eq!(
            slot_claim("fn:f:"),
            (
                doc! { "_id": "fn:f:" },
                doc! { "$inc": { "claims": 1_i64 } }
            )
        );
    }

    #[test]
    fn candidate_limits_never_mean_unlimited() {
        assert_eq!(candidate_limit(0), 64);
        assert_eq!(candidate_limit(4), 96);
        assert_eq!(candidate_limit(usize::MAX), i64::MAX);
    }

    #[test]
    fn depth_counts_partition_the_queue() {
        let now = t0();
        let [leased, due, scheduled] = depth(now);
        assert_eq!(leased, doc! { "lease_until": { "$gt": date(now) } });
        assert_eq!(due.get_document("due_at"), Ok(&doc! { "$lte": date(now) }));
        assert_eq!(
            scheduled.get_document("due_at"),
            Ok(&doc! { "$gt": date(now) })
        );
        assert_eq!(due.get("$or"), Some(&lease_free(now)));
        assert_eq!(scheduled.get("$or"), Some(&lease_free(now)));
    }

    #[test]
    fn run_lists_filter_only_on_what_is_set() {
        assert_eq!(run_list(&RunFilter::default()), doc! {});
        let f = RunFilter {
            function_id: Some("f".into()),
            status: Some(RunStatus::Failed),
            before: Some("r9".into()),
            limit: 5,
        };
        assert_eq!(
            run_list(&f),
            doc! { "function_id": "f", "status": "failed", "_id": { "$lt": "r9" } }
        );
    }

    #[test]
    fn finished_runs_keep_their_publishes() {
        let ids = vec!["r1".to_owned(), "r2".to_owned()];
        let (queue, pauses) = run_work(&ids);
        assert_eq!(
            queue,
            doc! { "run_id": { "$in": ["r1", "r2"] }, "kind": { "$ne": "publish" } }
        );
        assert_eq!(pauses, doc! { "run_id": { "$in": ["r1", "r2"] } });
        assert_eq!(kind_name(&ItemKind::Publish { events: vec![] }), "publish");
        assert_eq!(
            kind_name(&ItemKind::Resume {
                step_id: "s".into(),
                value: Value::Null,
                reason: ResumeReason::SleepDone,
                pause_id: None
            }),
            "resume"
        );
    }

    #[test]
    fn released_items_wake_at_their_due_time() {
        assert_eq!(leased(), doc! { "lease_token": { "$ne": Bson::Null } });
        assert_eq!(
            release(),
            vec![
                doc! { "$set": { "lease_until": Bson::Null, "lease_token": Bson::Null, "wake_at": "$due_at" } }
            ]
        );
    }

    #[test]
    fn every_index_is_named_and_the_key_is_unique() {
        let all = indexes();
        let mut names = Vec::new();
        for (collection, models) in &all {
            assert!(collection.starts_with("inngest_"));
            for m in models {
                let options = m.options.as_ref().expect("options");
                let name = options.name.clone().expect("named");
                assert!(name.starts_with(collection), "{name} on {collection}");
                let unique = options.unique == Some(true);
                assert_eq!(unique, name == "inngest_queue_key_unique", "{name}");
                names.push(name);
            }
        }
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), before);
    }

    #[test]
    fn huge_leases_are_refused() {
        assert!(lease_until(t0(), Duration::seconds(30)).is_ok());
        assert!(lease_until(t0(), Duration::MAX).is_err());
    }
}
