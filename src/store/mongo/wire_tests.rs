//! The store driven through the real driver against a scripted stand-in that speaks MongoDB's
//! wire protocol (OP_MSG) on loopback. It has no storage: it records each command and answers
//! with a plausible reply or the one a test scripts. That checks what no server-free unit test
//! can: the commands the driver really sends for our calls (transaction fields, filters, index
//! specs) and how its replies and errors come back through the store, retries included.

use super::MongoStore;
use crate::domain::events::NewEvent;
use crate::domain::ticket::TicketStatus;
use crate::domain::ticket::{Category, Priority, TriageStatus};
use crate::domain::triage::{Sentiment, TriageSource};
use crate::domain::user::Role;
use crate::store::{
    AutomationStore, NewTicket, NewUser, OutboxStore, StaffStore, StoreError, TicketChange,
    TicketQuery, TicketStore, TriageUpdate, UserStore, Visibility,
};
use mongodb::bson::{Bson, Document, doc};
use std::sync::{Arc, Mutex};
pub(crate) use storage_kit::mongo::fake_server::{
    FakeMongod, Kind, Received, is_in_transaction, txn_number,
};

fn counter_at(value: i64) -> Document {
    doc! {
        "lastErrorObject": { "n": 1, "updatedExisting": true },
        "value": { "_id": super::outbox::SEQ_COUNTER, "value": value },
        "ok": 1.0,
    }
}

/// Answers the outbox counter like a server whose counter stood at `start - 1`.
fn counter_script(start: i64) -> impl Fn(&Received) -> Option<Document> + Send + Sync + 'static {
    move |c: &Received| {
        (c.name == "findAndModify" && c.body.get_str("findAndModify") == Ok("counters"))
            .then(|| counter_at(start))
    }
}

fn new_ticket() -> (NewTicket, NewEvent) {
    let id = crate::domain::new_id();
    let event = NewEvent::ticket_created(&id, "u1");
    (
        NewTicket {
            id,
            title: crate::domain::ticket::Title::parse("Printer on fire").unwrap(),
            description: crate::domain::ticket::Description::parse("smoke").unwrap(),
            created_by: "u1".into(),
        },
        event,
    )
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        id: crate::domain::new_id(),
        email: email.into(),
        name: "Ann".into(),
        password_hash: "hash".into(),
        role: Role::User,
        skills: vec![],
        email_verified: true,
    }
}

#[tokio::test]
async fn standalone_servers_are_refused_at_connect() {
    let server = FakeMongod::start(Kind::Standalone, |_| None).await;
    let Err(StoreError::Unavailable(message)) = MongoStore::connect(&server.uri(), "t").await
    else {
        panic!("a standalone server must be refused");
    };
    assert!(message.contains("replica set"), "{message}");
    assert!(
        server.named("createIndexes").is_empty(),
        "refused before any write"
    );
}

#[tokio::test]
async fn mongos_is_accepted() {
    let server = FakeMongod::start(Kind::Mongos, |_| None).await;
    MongoStore::connect(&server.uri(), "t").await.unwrap();
}

#[tokio::test]
async fn connect_creates_every_index_and_seeds_the_counter() {
    let server = FakeMongod::start(Kind::ReplicaSet, |_| None).await;
    let store = MongoStore::connect(&server.uri(), "ticketing")
        .await
        .unwrap();
    assert_eq!(
        crate::store::Store::backend(&store),
        "mongodb",
        "connected through the fake"
    );
    let hello = server
        .received()
        .iter()
        .any(|c| c.name == "hello" && c.body.get_str("$db") == Ok("admin"));
    assert!(hello, "the deployment is checked with hello");

    let mut specs = Vec::new();
    for c in server.named("createIndexes") {
        assert_eq!(c.body.get_str("$db"), Ok("ticketing"));
        let collection = c.body.get_str("createIndexes").unwrap().to_owned();
        for index in c.body.get_array("indexes").unwrap() {
            let index = index.as_document().unwrap();
            specs.push((
                collection.clone(),
                index.get_str("name").unwrap().to_owned(),
                index.get_document("key").unwrap().clone(),
                index.get_bool("unique").unwrap_or(false),
            ));
        }
    }
    let spec = |c: &str, n: &str, k: Document, u: bool| (c.to_owned(), n.to_owned(), k, u);
    assert_eq!(
        specs,
        vec![
            spec("users", "users_email_unique", doc! { "email": 1 }, true),
            spec(
                "users",
                "users_by_role",
                doc! { "role": 1, "_id": 1 },
                false
            ),
            spec(
                "tickets",
                "tickets_by_creator",
                doc! { "created_by": 1, "_id": 1 },
                false
            ),
            spec(
                "tickets",
                "tickets_by_assignee",
                doc! { "assigned_to": 1, "_id": 1 },
                false
            ),
            spec(
                "tickets",
                "tickets_by_assignee_status",
                doc! { "assigned_to": 1, "status": 1 },
                false
            ),
            spec(
                "tickets",
                "tickets_by_status",
                doc! { "status": 1, "_id": 1 },
                false
            ),
            spec(
                "tickets",
                "tickets_by_priority",
                doc! { "priority": 1, "_id": 1 },
                false
            ),
            spec(
                "tickets",
                "tickets_by_category",
                doc! { "category": 1, "_id": 1 },
                false
            ),
            spec(
                "tickets",
                "tickets_by_sla_due",
                doc! { "sla_due_at": 1, "_id": 1 },
                false
            ),
            spec(
                "comments",
                "comments_by_ticket",
                doc! { "ticket_id": 1, "_id": 1 },
                false
            ),
            spec(
                "ticket_activity",
                "activity_by_ticket",
                doc! { "ticket_id": 1, "_id": 1 },
                false
            ),
            spec("outbox", "outbox_seq_unique", doc! { "seq": 1 }, true),
            spec(
                "outbox",
                "outbox_pending",
                doc! { "sent_at": 1, "seq": 1 },
                false
            ),
            spec(
                "account_tokens",
                "account_tokens_by_user",
                doc! { "user_id": 1, "purpose": 1 },
                false
            ),
            spec(
                "account_tokens",
                "account_tokens_expiry",
                doc! { "expires_at": 1 },
                false
            ),
            spec(
                "attachments",
                "attachments_by_ticket",
                doc! { "ticket_id": 1, "_id": 1 },
                false
            ),
            spec(
                "attachments",
                "attachments_by_sha256",
                doc! { "sha256": 1 },
                false
            ),
        ]
    );
    // Expired account links are removed by the server itself.
    let ttl: Vec<(String, Bson)> = server
        .named("createIndexes")
        .iter()
        .flat_map(|c| c.body.get_array("indexes").unwrap().clone())
        .filter_map(|i| {
            let i = i.as_document()?.clone();
            let ttl = i.get("expireAfterSeconds")?.clone();
            Some((i.get_str("name").ok()?.to_owned(), ttl))
        })
        .collect();
    assert_eq!(ttl.len(), 1, "{ttl:?}");
    assert_eq!(ttl[0].0, "account_tokens_expiry");
    assert!(
        matches!(ttl[0].1, Bson::Int32(0) | Bson::Int64(0)),
        "{ttl:?}"
    );

    let seed = server.named("update");
    assert_eq!(seed.len(), 1);
    let update = seed[0].body.get_array("updates").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(
        update.get_document("q").unwrap(),
        &doc! { "_id": "outbox_seq" }
    );
    assert_eq!(
        update.get_document("u").unwrap(),
        &doc! { "$max": { "value": 0_i64 } }
    );
    assert_eq!(update.get_bool("upsert"), Ok(true));
}

#[tokio::test]
async fn a_ticket_its_event_and_its_activity_commit_in_one_transaction() {
    let server = FakeMongod::start(Kind::ReplicaSet, counter_script(7)).await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();

    let (new, event) = new_ticket();
    let ticket = store.create_ticket(new, event.clone()).await.unwrap();
    assert_eq!(ticket.title, "Printer on fire");
    assert_eq!(ticket.status, TicketStatus::Open);
    assert_eq!(ticket.version, 1);

    let commands = server.commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "insert",
            "findAndModify",
            "insert",
            "insert",
            "commitTransaction"
        ]
    );
    let (first, rest) = commands.split_first().unwrap();
    // The first command opens the transaction; all share its session and number.
    assert_eq!(first.body.get_bool("startTransaction"), Ok(true));
    assert_eq!(
        first.body.get_document("readConcern").unwrap(),
        &doc! { "level": "snapshot" }
    );
    for c in &commands {
        assert!(is_in_transaction(c), "{c:?}");
        assert_eq!(txn_number(c), txn_number(first));
        assert_eq!(c.body.get_document("lsid"), first.body.get_document("lsid"));
    }
    assert!(
        rest.iter()
            .all(|c| !c.body.contains_key("startTransaction"))
    );
    let commit = &commands[4];
    assert_eq!(
        commit
            .body
            .get_document("writeConcern")
            .unwrap()
            .get_str("w"),
        Ok("majority")
    );

    let stored = first.body.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(first.body.get_str("insert"), Ok("tickets"));
    assert_eq!(stored.get_str("_id"), Ok(ticket.id.as_str()));
    assert!(matches!(stored.get("created_at"), Some(Bson::DateTime(_))));
    assert_eq!(stored.get_i64("version"), Ok(1));

    let counter = &commands[1];
    assert_eq!(counter.body.get_str("findAndModify"), Ok("counters"));
    assert_eq!(
        counter.body.get_document("update").unwrap(),
        &doc! { "$inc": { "value": 1_i64 } }
    );
    assert_eq!(counter.body.get_bool("upsert"), Ok(true));
    assert_eq!(counter.body.get_bool("new"), Ok(true));

    let outbox = &commands[2];
    assert_eq!(outbox.body.get_str("insert"), Ok("outbox"));
    let row = outbox.body.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(row.get_str("_id"), Ok(event.id.as_str()));
    assert_eq!(row.get_i64("seq"), Ok(7));
    assert_eq!(row.get_str("name"), Ok("ticket/created"));
    assert_eq!(
        row.get_document("data").unwrap(),
        &doc! { "ticket_id": &ticket.id, "created_by": "u1" }
    );
    assert_eq!(row.get("sent_at"), Some(&Bson::Null));

    let activity = &commands[3];
    assert_eq!(activity.body.get_str("insert"), Ok("ticket_activity"));
    let entry = activity.body.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(entry.get_str("ticket_id"), Ok(ticket.id.as_str()));
    assert_eq!(entry.get_str("kind"), Ok("created"));
    assert_eq!(entry.get_str("actor_id"), Ok("u1"));
    assert_eq!(entry.get_document("data").unwrap(), &doc! {});
}

#[tokio::test]
async fn events_of_one_write_take_consecutive_seqs() {
    let server = FakeMongod::start(Kind::ReplicaSet, move |c| {
        if c.name == "find" && c.body.get_str("find") == Ok("tickets") {
            return Some(cursor(
                "t.tickets",
                vec![super::tickets::tests_support::stored_ticket("t1", 1)],
            ));
        }
        if c.name == "findAndModify" && c.body.get_str("findAndModify") == Ok("tickets") {
            return Some(doc! {
                "lastErrorObject": { "n": 1, "updatedExisting": true },
                "value": super::tickets::tests_support::stored_ticket("t1", 2),
                "ok": 1.0,
            });
        }
        counter_script(12)(c)
    })
    .await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let updated = store
        .update_ticket(
            "t1",
            1,
            TicketChange {
                status: Some(TicketStatus::Resolved),
                ..TicketChange::default()
            },
            vec![
                NewEvent::ticket_updated("t1", "m", serde_json::json!({})),
                NewEvent::ticket_resolved("t1", "m"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    let commands = server.commands();
    let update = &commands[1];
    assert_eq!(
        update.body.get_document("query").unwrap(),
        &doc! { "_id": "t1", "version": 1_i64 }
    );
    assert_eq!(
        server.named("findAndModify")[1]
            .body
            .get_document("update")
            .unwrap(),
        &doc! { "$inc": { "value": 2_i64 } }
    );
    let inserts = server.named("insert");
    let seqs: Vec<i64> = inserts
        .iter()
        .filter(|c| c.body.get_str("insert") == Ok("outbox"))
        .map(|c| {
            c.body.get_array("documents").unwrap()[0]
                .as_document()
                .unwrap()
                .get_i64("seq")
                .unwrap()
        })
        .collect();
    // The counter answered 12 after adding 2: the events are 11 and 12, in the order given.
    assert_eq!(seqs, [11, 12]);
    // The stored ticket was open: the change is in its activity, from the snapshot read.
    let activity = inserts.last().unwrap();
    assert_eq!(activity.body.get_str("insert"), Ok("ticket_activity"));
    let entry = activity.body.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(entry.get_str("kind"), Ok("status_changed"));
    assert_eq!(
        entry.get_document("data").unwrap(),
        &doc! { "from": "open", "to": "resolved" }
    );
}

#[tokio::test]
async fn transient_errors_rerun_the_whole_transaction() {
    let failures = Arc::new(Mutex::new(1));
    let left = failures.clone();
    let server = FakeMongod::start(Kind::ReplicaSet, move |c| {
        if c.name == "insert" && c.body.get_str("insert") == Ok("tickets") {
            let mut left = left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Some(doc! {
                    "ok": 0.0, "code": 112, "codeName": "WriteConflict",
                    "errmsg": "write conflict", "errorLabels": ["TransientTransactionError"],
                });
            }
        }
        counter_script(1)(c)
    })
    .await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();

    let (new, event) = new_ticket();
    store.create_ticket(new, event).await.unwrap();
    let commands = server.commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "insert",
            "abortTransaction",
            "insert",
            "findAndModify",
            "insert",
            "insert",
            "commitTransaction"
        ]
    );
    assert_eq!(commands[2].body.get_bool("startTransaction"), Ok(true));
    assert!(txn_number(&commands[2]) > txn_number(&commands[0]));
    assert_eq!(*failures.lock().unwrap(), 0);
}

#[tokio::test]
async fn unknown_commit_results_retry_only_the_commit() {
    let failures = Arc::new(Mutex::new(1));
    let left = failures.clone();
    let server = FakeMongod::start(Kind::ReplicaSet, move |c| {
        if c.name == "commitTransaction" {
            let mut left = left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Some(doc! {
                    "ok": 0.0, "code": 8, "codeName": "UnknownError", "errmsg": "lost",
                    "errorLabels": ["UnknownTransactionCommitResult"],
                });
            }
        }
        counter_script(1)(c)
    })
    .await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();

    let (new, event) = new_ticket();
    store.create_ticket(new, event).await.unwrap();
    let commits = server.named("commitTransaction");
    assert_eq!(commits.len(), 2);
    assert_eq!(txn_number(&commits[0]), txn_number(&commits[1]));
    assert_eq!(server.named("insert").len(), 3, "the writes ran once");
}

#[tokio::test]
async fn other_errors_abort_without_retrying() {
    let server = FakeMongod::start(Kind::ReplicaSet, |c| {
        (c.name == "insert").then(|| {
            doc! { "ok": 0.0, "code": 2, "codeName": "BadValue", "errmsg": "no" }
        })
    })
    .await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let (new, event) = new_ticket();
    let err = store.create_ticket(new, event).await.unwrap_err();
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    let names: Vec<String> = server.commands().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["insert", "abortTransaction"]);
}

#[tokio::test]
async fn duplicate_emails_abort_and_report_the_field() {
    let server = FakeMongod::start(Kind::ReplicaSet, |c| {
        (c.name == "insert" && c.body.get_str("insert") == Ok("users")).then(|| {
            doc! { "ok": 1.0, "n": 0, "writeErrors": [ {
                "index": 0, "code": 11000,
                "errmsg": "E11000 duplicate key error collection: t.users index: users_email_unique dup key: { email: \"ann@example.com\" }",
                "keyPattern": { "email": 1 }, "keyValue": { "email": "ann@example.com" },
            } ] }
        })
    })
    .await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let user = new_user("ann@example.com");
    let event = NewEvent::user_signup(&user.id);
    let err = store.create_user(user, Some(event)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "email" }),
        "{err:?}"
    );
    let names: Vec<String> = server.commands().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["insert", "abortTransaction"], "no event, no commit");
}

#[tokio::test]
async fn a_version_miss_is_stale_when_the_ticket_exists_and_not_found_otherwise() {
    for (exists, expected) in [(true, "stale"), (false, "not found")] {
        let server = FakeMongod::start(Kind::ReplicaSet, move |c| {
            (c.name == "find" && exists && c.body.get_str("find") == Ok("tickets")).then(|| {
                cursor(
                    "t.tickets",
                    vec![super::tickets::tests_support::stored_ticket("t1", 2)],
                )
            })
        })
        .await;
        let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
        server.clear();
        let err = store
            .update_ticket(
                "t1",
                3,
                TicketChange::default(),
                vec![NewEvent::ticket_updated("t1", "a", serde_json::json!({}))],
            )
            .await
            .unwrap_err();
        let got = match err {
            StoreError::Stale => "stale",
            StoreError::NotFound => "not found",
            other => panic!("{other:?}"),
        };
        assert_eq!(got, expected);
        let names: Vec<String> = server.commands().into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            ["find", "abortTransaction"],
            "decided on the snapshot read"
        );
    }
}

#[tokio::test]
async fn lists_send_the_built_filter_sort_and_limit() {
    let server = FakeMongod::start(Kind::ReplicaSet, |_| None).await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let page = store
        .list_tickets(&TicketQuery {
            visibility: Visibility::CreatedBy("u1".into()),
            status: None,
            priority: None,
            category: None,
            assignee: None,
            text: Some("a.b".into()),
            sort: crate::store::TicketSort::Newest,
            limit: 20,
            after: Some("t9".into()),
        })
        .await
        .unwrap();
    assert!(page.items.is_empty());
    let find = &server.named("find")[0];
    assert_eq!(find.body.get_str("find"), Ok("tickets"));
    assert_eq!(find.body.get_document("sort").unwrap(), &doc! { "_id": -1 });
    assert_eq!(find.body.get_i64("limit"), Ok(21));
    let filter = find.body.get_document("filter").unwrap();
    let clauses = filter.get_array("$and").unwrap();
    assert_eq!(clauses[0], Bson::Document(doc! { "created_by": "u1" }));
    let text = clauses[1].as_document().unwrap().get_array("$or").unwrap();
    let Some(Bson::RegularExpression(re)) = text[0].as_document().unwrap().get("title") else {
        panic!("title is matched by a regex");
    };
    assert_eq!((re.pattern.as_str(), re.options.as_str()), ("a\\.b", "i"));

    assert!(store.pending_events(0).await.unwrap().is_empty());
    assert!(server.named("find").len() == 1, "limit 0 asks nothing");
    store.pending_events(5).await.unwrap();
    let find = server.named("find").pop().unwrap();
    assert_eq!(find.body.get_str("find"), Ok("outbox"));
    assert_eq!(
        find.body.get_document("filter").unwrap(),
        &doc! { "sent_at": Bson::Null }
    );
    assert_eq!(find.body.get_document("sort").unwrap(), &doc! { "seq": 1 });
}

fn cursor(namespace: &str, batch: Vec<Document>) -> Document {
    doc! { "cursor": { "firstBatch": batch, "id": 0_i64, "ns": namespace }, "ok": 1.0 }
}

fn first_stage(c: &Received) -> String {
    c.body
        .get_array("pipeline")
        .ok()
        .and_then(|p| p.first())
        .and_then(Bson::as_document)
        .and_then(|d| d.keys().next().cloned())
        .unwrap_or_default()
}

#[tokio::test]
async fn stats_come_from_one_aggregation_plus_the_staff_loads() {
    let server = FakeMongod::start(Kind::ReplicaSet, |c| match c.name.as_str() {
        "aggregate" if first_stage(c) == "$facet" => Some(cursor(
            "t.tickets",
            vec![doc! {
                "total": [ { "count": 2 } ],
                "by_status": [ { "_id": "open", "count": 2 } ],
                "by_priority": [ { "_id": "medium", "count": 2 } ],
                "by_category": [ { "_id": Bson::Null, "count": 2 } ],
                "by_assignee": [ { "_id": Bson::Null, "count": 1 }, { "_id": "m1", "count": 1 } ],
                "by_triage_status": [ { "_id": "pending", "count": 2 } ],
                "by_triage_source": [ { "_id": Bson::Null, "count": 2 } ],
                "first_response_ms": [ { "_id": Bson::Null, "ms": 2500.0 } ],
                "resolution_ms": [],
                "sla_breaches": [ { "count": 1 } ],
                "satisfaction": [ { "_id": 4, "count": 1 } ],
                "created_per_day": [],
                "resolved_per_day": [],
            }],
        )),
        "aggregate" => Some(cursor("t.tickets", vec![doc! { "_id": "m1", "count": 1 }])),
        "find" if c.body.get_str("find") == Ok("users") => Some(cursor(
            "t.users",
            vec![doc! {
                "_id": "m1", "email": "m1@example.com", "name": "Mo", "role": "moderator",
                "skills": ["sql"], "capacity": 2_i64, "last_assigned_at": Bson::Null,
            }],
        )),
        _ => None,
    })
    .await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.total, 2);
    assert_eq!(stats.by_category[0].key, "none");
    assert_eq!(stats.by_assignee[0].key, "unassigned");
    assert_eq!(stats.by_triage_source[0].key, "none");
    assert_eq!(stats.avg_first_response_secs, Some(2.5));
    assert_eq!(stats.avg_resolution_secs, None);
    assert_eq!(stats.sla_breaches, 1);
    assert_eq!(stats.satisfaction.count, 1);
    assert_eq!(stats.satisfaction.average, Some(4.0));
    assert_eq!(stats.per_day.len(), 30);
    assert_eq!(stats.moderator_load.len(), 1);
    assert_eq!(stats.moderator_load[0].user_id, "m1");
    assert_eq!(stats.moderator_load[0].open_tickets, 1);
    assert_eq!(stats.moderator_load[0].capacity, Some(2));

    let aggregates = server.named("aggregate");
    assert_eq!(aggregates.len(), 2);
    assert_eq!(aggregates[0].body.get_str("aggregate"), Ok("tickets"));
    assert_eq!(first_stage(&aggregates[0]), "$facet");
    let staff = &server.named("find")[0];
    assert_eq!(
        staff.body.get_document("filter").unwrap(),
        &doc! { "role": { "$in": ["moderator", "admin"] } }
    );
    assert_eq!(staff.body.get_document("sort").unwrap(), &doc! { "_id": 1 });
    assert_eq!(
        staff.body.get_document("projection").unwrap(),
        &doc! { "password_hash": 0 }
    );
    let loads = &aggregates[1];
    assert_eq!(loads.body.get_str("aggregate"), Ok("tickets"));
    assert_eq!(
        loads.body.get_array("pipeline").unwrap()[0],
        Bson::Document(doc! { "$match": {
            "assigned_to": { "$in": ["m1"] },
            "status": { "$in": ["open", "in_progress"] },
        } })
    );
}

#[tokio::test]
async fn no_staff_means_no_load_query() {
    let server = FakeMongod::start(Kind::ReplicaSet, |_| None).await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    assert!(store.staff_loads().await.unwrap().is_empty());
    let names: Vec<String> = server.commands().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["find"]);
}

/// Answers `findAndModify` on tickets with a stored ticket, or with nothing when `found` is off.
fn ticket_script(found: bool) -> impl Fn(&Received) -> Option<Document> + Send + Sync + 'static {
    move |c: &Received| {
        // Assignment first checks, in the transaction, that the assignee is still staff.
        if c.name == "find" && c.body.get_str("find") == Ok("users") {
            return Some(doc! {
                "cursor": { "firstBatch": [ { "_id": "m1" } ], "id": 0_i64, "ns": "t.users" },
                "ok": 1.0,
            });
        }
        if c.name == "findAndModify" && c.body.get_str("findAndModify") == Ok("tickets") {
            let value = if found {
                Bson::Document(super::tickets::tests_support::stored_ticket("t1", 2))
            } else {
                Bson::Null
            };
            return Some(doc! {
                "lastErrorObject": { "n": i32::from(found), "updatedExisting": found },
                "value": value, "ok": 1.0,
            });
        }
        counter_script(1)(c)
    }
}

fn update_of(c: &Received) -> (String, Document, Document) {
    let update = c.body.get_array("updates").unwrap()[0]
        .as_document()
        .unwrap();
    (
        c.body.get_str("update").unwrap().to_owned(),
        update.get_document("q").unwrap().clone(),
        update.get_document("u").unwrap().clone(),
    )
}

#[tokio::test]
async fn assigning_in_an_update_notes_the_assignee_in_the_same_transaction() {
    for newly in [true, false] {
        let server = FakeMongod::start(Kind::ReplicaSet, move |c| {
            if c.name == "find" && c.body.get_str("find") == Ok("tickets") {
                let mut stored = super::tickets::tests_support::stored_ticket("t1", 1);
                if !newly {
                    stored.insert("assigned_to", "m1");
                }
                return Some(cursor("t.tickets", vec![stored]));
            }
            ticket_script(true)(c)
        })
        .await;
        let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
        server.clear();
        store
            .update_ticket(
                "t1",
                1,
                TicketChange {
                    assigned_to: Some(Some("m1".into())),
                    actor: Some("a1".into()),
                    ..TicketChange::default()
                },
                vec![NewEvent::ticket_updated("t1", "a", serde_json::json!({}))],
            )
            .await
            .unwrap();
        let commands = server.commands();
        let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
        let expected: &[&str] = if newly {
            &[
                "find",
                "findAndModify",
                "update",
                "findAndModify",
                "insert",
                "insert",
                "commitTransaction",
            ]
        } else {
            // Already theirs: no assignment to note, and nothing for the activity log.
            &[
                "find",
                "findAndModify",
                "findAndModify",
                "insert",
                "commitTransaction",
            ]
        };
        assert_eq!(names, expected);
        for c in &commands {
            assert!(is_in_transaction(c), "{c:?}");
            assert_eq!(txn_number(c), txn_number(&commands[0]));
        }
        assert_eq!(
            commands[1].body.get_document("query").unwrap(),
            &doc! { "_id": "t1", "version": 1_i64 }
        );
        let set = commands[1]
            .body
            .get_document("update")
            .unwrap()
            .get_document("$set")
            .unwrap();
        if newly {
            let at = set.get_datetime("assigned_at").unwrap();
            assert_eq!(set.get_datetime("updated_at"), Ok(at), "one time for both");
            let (collection, filter, update) = update_of(&commands[2]);
            assert_eq!(collection, "users");
            assert_eq!(filter, doc! { "_id": "m1" });
            assert_eq!(update, doc! { "$set": { "last_assigned_at": *at } });
            let entry = commands[5].body.get_array("documents").unwrap()[0]
                .as_document()
                .unwrap()
                .clone();
            assert_eq!(entry.get_str("kind"), Ok("assigned"));
            assert_eq!(entry.get_str("actor_id"), Ok("a1"));
            assert_eq!(
                entry.get_document("data").unwrap(),
                &doc! { "assignee_id": "m1", "reason": Bson::Null }
            );
        } else {
            assert!(!set.contains_key("assigned_at"));
        }
    }
}

#[tokio::test]
async fn conditional_assignment_runs_only_on_unassigned_tickets_and_current_staff() {
    for (staff, found) in [(true, true), (true, false), (false, true)] {
        let server = FakeMongod::start(Kind::ReplicaSet, move |c: &Received| {
            if c.name == "find" && c.body.get_str("find") == Ok("users") {
                let batch: Vec<Document> = if staff {
                    vec![doc! { "_id": "m1" }]
                } else {
                    Vec::new()
                };
                return Some(doc! {
                    "cursor": { "firstBatch": batch, "id": 0_i64, "ns": "t.users" }, "ok": 1.0,
                });
            }
            ticket_script(found)(c)
        })
        .await;
        let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
        server.clear();
        let assigned = store
            .assign_if_unassigned("t1", "m1", "skills: sql")
            .await
            .unwrap();
        assert_eq!(assigned.is_some(), staff && found);
        let commands = server.commands();
        let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
        assert!(commands.iter().all(is_in_transaction));
        // Read in the transaction first: the assignee is still staff.
        assert_eq!(
            commands[0].body.get_document("filter").unwrap(),
            &doc! { "role": { "$in": ["moderator", "admin"] }, "_id": "m1" }
        );
        if !staff {
            assert_eq!(names, ["find", "commitTransaction"]);
            continue;
        }
        if found {
            assert_eq!(
                names,
                [
                    "find",
                    "findAndModify",
                    "update",
                    "insert",
                    "commitTransaction"
                ]
            );
            let (collection, filter, _) = update_of(&commands[2]);
            assert_eq!(
                (collection.as_str(), filter),
                ("users", doc! { "_id": "m1" })
            );
            let entry = commands[3].body.get_array("documents").unwrap()[0]
                .as_document()
                .unwrap()
                .clone();
            assert_eq!(entry.get_str("kind"), Ok("assigned"));
            assert_eq!(entry.get("actor_id"), Some(&Bson::Null));
            assert_eq!(
                entry.get_document("data").unwrap(),
                &doc! { "assignee_id": "m1", "reason": "skills: sql" }
            );
        } else {
            assert_eq!(names, ["find", "findAndModify", "commitTransaction"]);
        }
        let claim = &commands[1];
        assert_eq!(
            claim.body.get_document("query").unwrap(),
            &doc! { "_id": "t1", "assigned_to": Bson::Null }
        );
        let set = claim
            .body
            .get_document("update")
            .unwrap()
            .get_document("$set")
            .unwrap();
        assert_eq!(set.get_str("assigned_to"), Ok("m1"));
        assert_eq!(set.get_str("routing_reason"), Ok("skills: sql"));
        assert_eq!(
            set.get_datetime("assigned_at"),
            set.get_datetime("updated_at")
        );
    }
}

#[tokio::test]
async fn triage_falls_back_to_keeping_a_locked_priority() {
    let server = FakeMongod::start(Kind::ReplicaSet, ticket_script(false)).await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let err = store
        .save_triage(
            "t1",
            TriageUpdate {
                status: TriageStatus::Done,
                summary: "s".into(),
                category: Category::Bug,
                priority: Priority::High,
                sentiment: Sentiment::Neutral,
                required_skills: vec![],
                helpful_notes: "n".into(),
                confidence: 1.0,
                source: TriageSource::Rules,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let tries = server.named("findAndModify");
    assert_eq!(tries.len(), 2);
    assert_eq!(
        tries[0].body.get_document("query").unwrap(),
        &doc! { "_id": "t1", "priority_locked": false }
    );
    assert_eq!(
        tries[1].body.get_document("query").unwrap(),
        &doc! { "_id": "t1" }
    );
    let set = |i: usize| {
        tries[i]
            .body
            .get_document("update")
            .unwrap()
            .get_document("$set")
            .unwrap()
            .clone()
    };
    assert_eq!(set(0).get_str("priority"), Ok("high"));
    assert!(!set(1).contains_key("priority"));
    let names: Vec<String> = server.commands().into_iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["findAndModify", "findAndModify", "abortTransaction"]
    );
    assert!(server.commands().iter().all(is_in_transaction));
}

#[tokio::test]
async fn saved_triage_is_logged_in_its_transaction() {
    let server = FakeMongod::start(Kind::ReplicaSet, ticket_script(true)).await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let saved = store
        .save_triage(
            "t1",
            TriageUpdate {
                status: TriageStatus::Fallback,
                summary: "s".into(),
                category: Category::Bug,
                priority: Priority::High,
                sentiment: Sentiment::Neutral,
                required_skills: vec![],
                helpful_notes: "n".into(),
                confidence: 1.0,
                source: TriageSource::Rules,
            },
        )
        .await
        .unwrap();
    let commands = server.commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["findAndModify", "insert", "commitTransaction"]);
    assert!(commands.iter().all(is_in_transaction));
    let entry = commands[1].body.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(entry.get_str("kind"), Ok("triaged"));
    // The priority the ticket has after saving (the scripted one), not the one triage asked for.
    assert_eq!(
        entry.get_document("data").unwrap(),
        &doc! { "source": "rules", "status": "fallback", "category": "bug", "priority": saved.priority.as_str() }
    );
}

#[tokio::test]
async fn deadlines_and_routing_reasons_are_logged_only_when_new() {
    for found in [true, false] {
        let server = FakeMongod::start(Kind::ReplicaSet, ticket_script(found)).await;
        let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
        server.clear();
        let due = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        store.set_sla_due("t1", due).await.unwrap();
        store.set_routing_reason("t1", "nobody free").await.unwrap();
        let commands = server.commands();
        let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
        if found {
            assert_eq!(
                names,
                [
                    "findAndModify",
                    "insert",
                    "commitTransaction",
                    "findAndModify",
                    "insert",
                    "commitTransaction"
                ]
            );
            let kinds: Vec<&str> = [&commands[1], &commands[4]]
                .iter()
                .map(|c| {
                    c.body.get_array("documents").unwrap()[0]
                        .as_document()
                        .unwrap()
                        .get_str("kind")
                        .unwrap()
                })
                .collect();
            assert_eq!(kinds, ["sla_set", "assigned"]);
        } else {
            // The value was there already (or the ticket is gone): nothing to log.
            assert_eq!(
                names,
                [
                    "findAndModify",
                    "commitTransaction",
                    "findAndModify",
                    "commitTransaction"
                ]
            );
        }
        let date = mongodb::bson::DateTime::from_millis(due.timestamp_millis());
        assert_eq!(
            commands[0].body.get_document("query").unwrap(),
            &doc! { "_id": "t1", "sla_due_at": { "$ne": date } }
        );
        assert_eq!(
            commands[0].body.get_document("update").unwrap(),
            &doc! { "$set": { "sla_due_at": date } }
        );
    }
}

#[tokio::test]
async fn a_rating_is_decided_on_a_snapshot_read_and_logged_with_it() {
    for (status, rated, expected) in [
        ("resolved", false, "rated"),
        ("closed", false, "rated"),
        ("open", false, "not resolved"),
        ("resolved", true, "already rated"),
    ] {
        let server = FakeMongod::start(Kind::ReplicaSet, move |c| {
            if c.name == "find" && c.body.get_str("find") == Ok("tickets") {
                let mut stored = super::tickets::tests_support::stored_ticket("t1", 1);
                stored.insert("status", status);
                if rated {
                    stored.insert(
                        "rating",
                        doc! { "score": 2, "comment": Bson::Null, "created_at": mongodb::bson::DateTime::now() },
                    );
                }
                return Some(cursor("t.tickets", vec![stored]));
            }
            if c.name == "findAndModify" && c.body.get_str("findAndModify") == Ok("tickets") {
                let mut stored = super::tickets::tests_support::stored_ticket("t1", 1);
                stored.insert("status", status);
                let rating = c
                    .body
                    .get_document("update")
                    .unwrap()
                    .get_document("$set")
                    .unwrap()
                    .get_document("rating")
                    .unwrap()
                    .clone();
                stored.insert("rating", rating);
                return Some(doc! {
                    "lastErrorObject": { "n": 1, "updatedExisting": true },
                    "value": stored, "ok": 1.0,
                });
            }
            None
        })
        .await;
        let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
        server.clear();
        let outcome = store
            .rate_ticket(crate::store::NewRating {
                ticket_id: "t1".into(),
                by: "u1".into(),
                score: 4,
                comment: Some("quick".into()),
            })
            .await
            .unwrap();
        let got = match &outcome {
            crate::store::RateOutcome::Rated(t) => {
                let rating = t.rating.as_ref().unwrap();
                assert_eq!(
                    (rating.score, rating.comment.as_deref()),
                    (4, Some("quick"))
                );
                "rated"
            }
            crate::store::RateOutcome::NotResolved => "not resolved",
            crate::store::RateOutcome::AlreadyRated => "already rated",
        };
        assert_eq!(got, expected, "{status} rated={rated}");
        let commands = server.commands();
        let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
        assert!(commands.iter().all(is_in_transaction));
        if expected == "rated" {
            assert_eq!(
                names,
                ["find", "findAndModify", "insert", "commitTransaction"]
            );
            assert_eq!(
                commands[1].body.get_document("query").unwrap(),
                &doc! { "_id": "t1", "rating": Bson::Null }
            );
            let entry = commands[2].body.get_array("documents").unwrap()[0]
                .as_document()
                .unwrap()
                .clone();
            assert_eq!(entry.get_str("kind"), Ok("rated"));
            assert_eq!(entry.get_str("actor_id"), Ok("u1"));
        } else {
            assert_eq!(names, ["find", "commitTransaction"]);
        }
    }
}

#[tokio::test]
async fn the_sla_order_reads_deadlines_first_then_the_rest() {
    let server = FakeMongod::start(Kind::ReplicaSet, |_| None).await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    store
        .list_tickets(&TicketQuery {
            visibility: Visibility::All,
            status: None,
            priority: None,
            category: None,
            assignee: None,
            text: None,
            sort: crate::store::TicketSort::SlaDue { after_due: None },
            limit: 10,
            after: None,
        })
        .await
        .unwrap();
    let finds = server.named("find");
    assert_eq!(
        finds.len(),
        2,
        "nothing with a deadline: the rest is read too"
    );
    assert_eq!(
        finds[0].body.get_document("filter").unwrap(),
        &doc! { "sla_due_at": { "$ne": Bson::Null } }
    );
    assert_eq!(
        finds[0].body.get_document("sort").unwrap(),
        &doc! { "sla_due_at": 1, "_id": 1 }
    );
    assert_eq!(finds[0].body.get_i64("limit"), Ok(11));
    assert_eq!(
        finds[1].body.get_document("filter").unwrap(),
        &doc! { "sla_due_at": Bson::Null }
    );
    assert_eq!(
        finds[1].body.get_document("sort").unwrap(),
        &doc! { "_id": 1 }
    );
    assert_eq!(finds[1].body.get_i64("limit"), Ok(11));
}

#[tokio::test]
async fn escalation_reads_and_raises_in_one_transaction() {
    let server = FakeMongod::start(Kind::ReplicaSet, |c| {
        if c.name == "find" && c.body.get_str("find") == Ok("tickets") {
            return Some(cursor(
                "t.tickets",
                vec![super::tickets::tests_support::stored_ticket("t1", 1)],
            ));
        }
        ticket_script(true)(c)
    })
    .await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    assert!(store.escalate("t1").await.unwrap().is_some());
    let commands = server.commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["find", "findAndModify", "insert", "commitTransaction"]
    );
    assert!(commands.iter().all(is_in_transaction));
    let entry = commands[2].body.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(entry.get_str("kind"), Ok("escalated"));
    assert_eq!(
        entry.get_document("data").unwrap(),
        &doc! { "priority": "high" }
    );
    let set = commands[1]
        .body
        .get_document("update")
        .unwrap()
        .get_document("$set")
        .unwrap();
    // The stored ticket is medium: one step up.
    assert_eq!(set.get_str("priority"), Ok("high"));
    assert_eq!(
        set.get_datetime("escalated_at"),
        set.get_datetime("updated_at")
    );
}

#[tokio::test]
async fn recording_a_mail_twice_is_no_error_but_other_failures_are() {
    for (code, index, ok) in [
        (11000, "_id_", true),
        (11000, "other_unique", false),
        (2, "_id_", false),
    ] {
        let server = FakeMongod::start(Kind::ReplicaSet, move |c| {
            (c.name == "insert" && c.body.get_str("insert") == Ok("sent_mail")).then(|| {
                doc! { "ok": 1.0, "n": 0, "writeErrors": [ {
                    "index": 0, "code": code,
                    "errmsg": format!("E11000 duplicate key error collection: t.sent_mail index: {index} dup key: {{ _id: \"k\" }}"),
                } ] }
            })
        })
        .await;
        let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
        server.clear();
        let result = store.record_mail("k", "ann@example.com", "Welcome").await;
        assert_eq!(result.is_ok(), ok, "{code} {index}: {result:?}");
        let insert = &server.named("insert")[0];
        let row = insert.body.get_array("documents").unwrap()[0]
            .as_document()
            .unwrap();
        assert_eq!(row.get_str("_id"), Ok("k"));
        assert_eq!(row.get_str("recipient"), Ok("ann@example.com"));
        assert!(matches!(row.get("sent_at"), Some(Bson::DateTime(_))));
    }
}

#[tokio::test]
async fn reads_leave_the_password_hash_on_the_server() {
    let server = FakeMongod::start(Kind::ReplicaSet, |_| None).await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    assert_eq!(store.get_user("u1").await.unwrap(), None);
    assert_eq!(
        server.named("find")[0]
            .body
            .get_document("projection")
            .unwrap(),
        &doc! { "password_hash": 0 }
    );
}

/// A stored user as the server returns it (without the hash, as every read but login asks).
fn stored_user(id: &str, email_verified: bool, token_generation: i64) -> Document {
    let mut user = new_user("ann@example.com");
    user.id = id.into();
    user.email_verified = email_verified;
    let mut d = super::users::user_document(&user, mongodb::bson::DateTime::from_millis(1_000));
    d.remove("password_hash");
    d.insert("token_generation", token_generation);
    d
}

fn found(value: Document) -> Document {
    doc! { "lastErrorObject": { "n": 1, "updatedExisting": true }, "value": value, "ok": 1.0 }
}

/// A server holding one live reset link of user `u1`.
fn link_script(c: &Received) -> Option<Document> {
    match (c.name.as_str(), c.body.get_str(&c.name)) {
        ("findAndModify", Ok("account_tokens")) => Some(found(doc! {
            "_id": "h", "user_id": "u1", "purpose": "password_reset",
        })),
        ("findAndModify", Ok("users")) => Some(found(stored_user("u1", true, 4))),
        _ => None,
    }
}

#[tokio::test]
async fn a_reset_link_is_used_and_the_password_set_in_one_transaction() {
    use crate::domain::account_token::TokenHash;
    use crate::store::AccountStore;
    let server = FakeMongod::start(Kind::ReplicaSet, link_script).await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let hash = TokenHash::of(&"a".repeat(43)).unwrap();
    let at = chrono::DateTime::from_timestamp_millis(5_000).unwrap();
    let user = store
        .reset_password(&hash, "$argon2id$new", at)
        .await
        .unwrap()
        .expect("the link was live");
    assert_eq!((user.id.as_str(), user.token_generation), ("u1", 4));

    let commands = server.commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "findAndModify",
            "findAndModify",
            "delete",
            "commitTransaction"
        ]
    );
    assert!(commands.iter().all(is_in_transaction));
    assert!(
        commands
            .iter()
            .all(|c| txn_number(c) == txn_number(&commands[0]))
    );

    let take = &commands[0].body;
    assert_eq!(take.get_str("findAndModify"), Ok("account_tokens"));
    assert_eq!(take.get_bool("remove"), Ok(true));
    let when = mongodb::bson::DateTime::from_millis(5_000);
    assert_eq!(
        take.get_document("query").unwrap(),
        &doc! { "_id": hash.as_str(), "purpose": "password_reset", "expires_at": { "$gt": when } }
    );

    let set = &commands[1].body;
    assert_eq!(set.get_str("findAndModify"), Ok("users"));
    assert_eq!(set.get_document("query").unwrap(), &doc! { "_id": "u1" });
    assert_eq!(
        set.get_document("update").unwrap(),
        &doc! {
            "$set": { "password_hash": "$argon2id$new", "email_verified": true, "updated_at": when },
            "$inc": { "token_generation": 1_i64 },
        }
    );
    assert_eq!(
        set.get_document("fields").unwrap(),
        &doc! { "password_hash": 0 }
    );

    let deletes = commands[2].body.get_array("deletes").unwrap();
    assert_eq!(commands[2].body.get_str("delete"), Ok("account_tokens"));
    assert_eq!(
        deletes[0].as_document().unwrap().get_document("q").unwrap(),
        &doc! { "user_id": "u1", "purpose": "password_reset" }
    );
}

#[tokio::test]
async fn a_dead_link_changes_no_account() {
    use crate::domain::account_token::TokenHash;
    use crate::store::AccountStore;
    // The default reply finds nothing.
    let server = FakeMongod::start(Kind::ReplicaSet, |_| None).await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let hash = TokenHash::of(&"b".repeat(43)).unwrap();
    let now = chrono::Utc::now();
    assert_eq!(store.verify_email(&hash, now).await.unwrap(), None);
    assert_eq!(store.reset_password(&hash, "h", now).await.unwrap(), None);
    let touched: Vec<String> = server
        .commands()
        .iter()
        .filter(|c| c.name != "commitTransaction")
        .map(|c| format!("{} {}", c.name, c.body.get_str(&c.name).unwrap_or_default()))
        .collect();
    assert_eq!(
        touched,
        [
            "findAndModify account_tokens",
            "findAndModify account_tokens"
        ]
    );
}

#[tokio::test]
async fn user_events_are_written_with_the_lookup_and_only_when_it_matches() {
    use crate::store::AccountStore;
    let user = stored_user("u1", false, 0);
    let server = FakeMongod::start(Kind::ReplicaSet, move |c| {
        let filter = c.body.get_document("filter").ok();
        if c.name == "find" && filter == Some(&doc! { "email": "ann@example.com" }) {
            return Some(cursor("t.users", vec![user.clone()]));
        }
        counter_script(7)(c)
    })
    .await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();

    assert!(
        !store
            .queue_user_event(
                "nobody@example.com",
                false,
                NewEvent::password_reset_requested
            )
            .await
            .unwrap()
    );
    assert!(server.named("insert").is_empty(), "nothing written");
    assert!(
        store
            .queue_user_event("ann@example.com", true, NewEvent::verification_requested)
            .await
            .unwrap()
    );
    let commands = server.commands();
    assert!(commands.iter().all(is_in_transaction));
    let inserts = server.named("insert");
    assert_eq!(inserts.len(), 1);
    let event = inserts[0].body.get_array("documents").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(event.get_str("name"), Ok("user/verification-requested"));
    assert_eq!(
        event.get_document("data").unwrap(),
        &doc! { "user_id": "u1" }
    );
    assert_eq!(event.get_i64("seq"), Ok(7));
    // The lookup and the write are one transaction.
    let find = commands.iter().rposition(|c| c.name == "find").unwrap();
    assert_eq!(txn_number(&commands[find]), txn_number(&inserts[0]));
}

#[tokio::test]
async fn revoking_staff_releases_open_tickets_with_their_events_in_one_transaction() {
    let now = mongodb::bson::DateTime::now();
    let server = FakeMongod::start(Kind::ReplicaSet, move |c: &Received| {
        match (c.name.as_str(), c.body.get_str(&c.name)) {
            ("findAndModify", Ok("users")) => Some(doc! {
                "lastErrorObject": { "n": 1, "updatedExisting": true },
                "value": {
                    "_id": "m1", "email": "m1@example.com", "name": "", "role": "user",
                    "skills": ["sql"], "capacity": Bson::Null,
                    "created_at": now, "updated_at": now,
                },
                "ok": 1.0,
            }),
            ("find", Ok("tickets")) => Some(doc! {
                "cursor": { "firstBatch": [ { "_id": "t1" }, { "_id": "t2" } ], "id": 0_i64,
                            "ns": "t.tickets" },
                "ok": 1.0,
            }),
            _ => counter_script(4)(c),
        }
    })
    .await;
    let store = MongoStore::connect(&server.uri(), "t").await.unwrap();
    server.clear();
    let (user, released) = store.revoke_staff("m1", "a1").await.unwrap();
    assert_eq!(user.role, Role::User);
    assert_eq!(released, ["t1", "t2"]);

    let commands = server.commands();
    let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "findAndModify",
            "find",
            "update",
            "insert",
            "update",
            "insert",
            "findAndModify",
            "insert",
            "insert",
            "insert",
            "insert",
            "commitTransaction"
        ]
    );
    assert!(commands.iter().all(is_in_transaction));
    let role_change = commands[0].body.get_document("update").unwrap();
    assert_eq!(
        role_change.get_document("$set").unwrap().get_str("role"),
        Ok("user")
    );
    assert_eq!(
        commands[1].body.get_document("filter").unwrap(),
        &doc! { "assigned_to": "m1", "status": { "$in": ["open", "in_progress"] } }
    );
    for (i, ticket) in [(2, "t1"), (4, "t2")] {
        let (collection, filter, update) = update_of(&commands[i]);
        assert_eq!(
            (collection.as_str(), filter),
            ("tickets", doc! { "_id": ticket })
        );
        let set = update.get_document("$set").unwrap();
        assert_eq!(set.get("assigned_to"), Some(&Bson::Null));
        assert_eq!(
            set.get_str("routing_reason"),
            Ok(crate::store::RELEASED_REASON)
        );
        assert_eq!(
            update.get_document("$inc").unwrap(),
            &doc! { "version": 1_i64 }
        );
    }
    for i in [3, 5] {
        let insert = &commands[i].body;
        assert_eq!(insert.get_str("insert"), Ok("ticket_activity"));
        let entry = insert.get_array("documents").unwrap()[0]
            .as_document()
            .unwrap();
        assert_eq!(entry.get_str("kind"), Ok("assigned"));
        assert_eq!(entry.get_str("actor_id"), Ok("a1"));
        assert_eq!(
            entry.get_document("data").unwrap(),
            &doc! { "assignee_id": Bson::Null, "reason": crate::store::RELEASED_REASON }
        );
    }
    let events: Vec<String> = commands[7..11]
        .iter()
        .map(|c| {
            let d = c.body.get_array("documents").unwrap()[0]
                .as_document()
                .unwrap();
            d.get_str("name").unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        events,
        [
            "ticket/updated",
            "ticket/reroute.requested",
            "ticket/updated",
            "ticket/reroute.requested"
        ]
    );
}
