//! A tiny in-memory interpreter for the commands the run store sends, plugged into the
//! scripted wire-protocol server of the application's MongoDB tests. It lets the RunStore
//! contract suite run through the real driver without a server: what the store encodes, what
//! the driver sends and how replies are decoded are all exercised, against MongoDB's documented
//! query semantics for the few operators used (`$lt`, `$lte`, `$gt`, `$ne`, `$in`, `$exists`,
//! `$or`, dotted array paths, null matching a missing field, type-bracketed comparisons).
//!
//! It is not MongoDB: one transaction at a time (the suite is sequential), so a transaction is
//! a copy of the data taken at `startTransaction` and put back on `abortTransaction`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Mutex;

use mongodb::bson::{Bson, Document, doc, oid::ObjectId};

use storage_kit::mongo::fake_server::Received;

type Collections = BTreeMap<String, Vec<Document>>;

#[derive(Default)]
pub(super) struct FakeDb {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    collections: Collections,
    before_transaction: Option<Collections>,
}

impl FakeDb {
    /// The reply to `c`, or `None` for the handshakes the wire server answers by itself.
    pub(super) fn answer(&self, c: &Received) -> Option<Document> {
        let mut state = self.state.lock().expect("BUG: poisoned");
        if c.body.get_bool("startTransaction") == Ok(true) {
            state.before_transaction = Some(state.collections.clone());
        }
        let body = &c.body;
        let name = body.get_str(&c.name).unwrap_or_default().to_owned();
        let reply = match c.name.as_str() {
            "find" => {
                let docs = state.collections.get(&name).cloned().unwrap_or_default();
                let found = find(
                    &docs,
                    &body.get_document("filter").cloned().unwrap_or_default(),
                    body.get_document("sort").ok(),
                    int(body.get("limit")).unwrap_or(0).unsigned_abs() as usize,
                    body.get_document("projection").ok(),
                );
                cursor(&name, found)
            }
            "aggregate" => {
                // Only `count_documents`: `$match`, then `$group` with `n: {$sum: 1}`.
                let pipeline = body.get_array("pipeline").expect("pipeline");
                let filter = pipeline[0]
                    .as_document()
                    .and_then(|s| s.get_document("$match").ok())
                    .expect("count_documents starts with $match");
                let docs = state.collections.get(&name).cloned().unwrap_or_default();
                let n = docs.iter().filter(|d| matches(d, filter)).count() as i64;
                let batch = if n == 0 {
                    vec![]
                } else {
                    vec![doc! { "_id": 1, "n": n }]
                };
                cursor(&name, batch)
            }
            "update" => {
                let docs = state.collections.entry(name).or_default();
                let mut n = 0_i64;
                let mut modified = 0_i64;
                let mut upserted = Vec::new();
                for (index, u) in body
                    .get_array("updates")
                    .expect("updates")
                    .iter()
                    .enumerate()
                {
                    let u = u.as_document().expect("update statement");
                    let q = u.get_document("q").expect("q");
                    let multi = u.get_bool("multi").unwrap_or(false);
                    let hits: Vec<usize> =
                        (0..docs.len()).filter(|i| matches(&docs[*i], q)).collect();
                    let hits = if multi {
                        hits
                    } else {
                        hits.into_iter().take(1).collect()
                    };
                    if hits.is_empty() && u.get_bool("upsert").unwrap_or(false) {
                        let new = insert_for(q, u.get("u").expect("u"));
                        upserted.push(doc! { "index": index as i32, "_id": new.get("_id").cloned().expect("id") });
                        docs.push(new);
                        n += 1;
                        continue;
                    }
                    for i in hits {
                        n += 1;
                        let after = apply(&docs[i], u.get("u").expect("u"), false);
                        if after != docs[i] {
                            modified += 1;
                        }
                        docs[i] = after;
                    }
                }
                let mut reply = doc! { "n": n, "nModified": modified, "ok": 1.0 };
                if !upserted.is_empty() {
                    reply.insert("upserted", upserted);
                }
                reply
            }
            "delete" => {
                let docs = state.collections.entry(name).or_default();
                let mut n = 0_i64;
                for d in body.get_array("deletes").expect("deletes") {
                    let d = d.as_document().expect("delete statement");
                    let q = d.get_document("q").expect("q");
                    let limit = int(d.get("limit")).unwrap_or(0);
                    let mut left = if limit == 1 { 1 } else { usize::MAX };
                    docs.retain(|doc| {
                        if left > 0 && matches(doc, q) {
                            left -= 1;
                            n += 1;
                            false
                        } else {
                            true
                        }
                    });
                }
                doc! { "n": n, "ok": 1.0 }
            }
            "findAndModify" => {
                let docs = state.collections.entry(name).or_default();
                let q = body.get_document("query").expect("query");
                let update = body.get("update").expect("update");
                let fields = body.get_document("fields").ok();
                let new = body.get_bool("new").unwrap_or(false);
                match docs.iter().position(|d| matches(d, q)) {
                    Some(i) => {
                        let before = docs[i].clone();
                        docs[i] = apply(&before, update, false);
                        let shown = if new { &docs[i] } else { &before };
                        doc! {
                            "lastErrorObject": { "n": 1, "updatedExisting": true },
                            "value": project(shown, fields),
                            "ok": 1.0,
                        }
                    }
                    None => doc! {
                        "lastErrorObject": { "n": 0, "updatedExisting": false },
                        "value": Bson::Null,
                        "ok": 1.0,
                    },
                }
            }
            "abortTransaction" => {
                if let Some(before) = state.before_transaction.take() {
                    state.collections = before;
                }
                doc! { "ok": 1.0 }
            }
            "commitTransaction" => {
                state.before_transaction = None;
                doc! { "ok": 1.0 }
            }
            "create" | "createIndexes" | "dropDatabase" => doc! { "ok": 1.0 },
            _ => return None,
        };
        Some(reply)
    }
}

fn cursor(collection: &str, batch: Vec<Document>) -> Document {
    doc! { "cursor": { "firstBatch": batch, "id": 0_i64, "ns": format!("t.{collection}") }, "ok": 1.0 }
}

fn int(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        Bson::Double(n) => Some(*n as i64),
        _ => None,
    }
}

fn lookup<'d>(doc: &'d Document, path: &str) -> Option<&'d Bson> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?)?;
    for part in parts {
        value = match value {
            Bson::Document(d) => d.get(part)?,
            Bson::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// BSON's order across types (the part of it this store meets).
fn rank(value: &Bson) -> u8 {
    match value {
        Bson::Null => 1,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => 2,
        Bson::String(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        _ => 10,
    }
}

fn compare(a: &Bson, b: &Bson) -> Ordering {
    match (a, b) {
        (Bson::String(x), Bson::String(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.cmp(y),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.cmp(y),
        _ if rank(a) == 2 && rank(b) == 2 => int(Some(a)).cmp(&int(Some(b))),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Equality as a query sees it: null matches a missing field; numbers compare by value.
fn equals(value: Option<&Bson>, wanted: &Bson) -> bool {
    match value {
        None => *wanted == Bson::Null,
        Some(v) if rank(v) == 2 && rank(wanted) == 2 => int(Some(v)) == int(Some(wanted)),
        Some(v) => v == wanted,
    }
}

fn matches(doc: &Document, filter: &Document) -> bool {
    filter.iter().all(|(key, condition)| match key.as_str() {
        "$or" => condition
            .as_array()
            .expect("$or takes an array")
            .iter()
            .any(|f| matches(doc, f.as_document().expect("$or clause"))),
        "$and" => condition
            .as_array()
            .expect("$and takes an array")
            .iter()
            .all(|f| matches(doc, f.as_document().expect("$and clause"))),
        path => field_matches(lookup(doc, path), condition),
    })
}

fn field_matches(value: Option<&Bson>, condition: &Bson) -> bool {
    let operators = match condition {
        Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')) => d,
        _ => return equals(value, condition),
    };
    // Range operators only compare values of the same type ("type bracketing").
    let ordered = |wanted: &Bson, ok: fn(Ordering) -> bool| {
        value.is_some_and(|v| rank(v) == rank(wanted) && ok(compare(v, wanted)))
    };
    operators.iter().all(|(op, wanted)| match op.as_str() {
        "$lt" => ordered(wanted, Ordering::is_lt),
        "$lte" => ordered(wanted, Ordering::is_le),
        "$gt" => ordered(wanted, Ordering::is_gt),
        "$gte" => ordered(wanted, Ordering::is_ge),
        "$ne" => !equals(value, wanted),
        "$in" => wanted
            .as_array()
            .expect("$in takes an array")
            .iter()
            .any(|w| equals(value, w)),
        "$exists" => value.is_some() == wanted.as_bool().expect("$exists takes a bool"),
        other => panic!("the fake does not know {other}"),
    })
}

fn find(
    docs: &[Document],
    filter: &Document,
    sort: Option<&Document>,
    limit: usize,
    projection: Option<&Document>,
) -> Vec<Document> {
    let mut found: Vec<&Document> = docs.iter().filter(|d| matches(d, filter)).collect();
    if let Some(sort) = sort {
        found.sort_by(|a, b| {
            sort.iter()
                .map(|(key, dir)| {
                    let null = Bson::Null;
                    let order = compare(
                        lookup(a, key).unwrap_or(&null),
                        lookup(b, key).unwrap_or(&null),
                    );
                    if int(Some(dir)) == Some(-1) {
                        order.reverse()
                    } else {
                        order
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
    }
    if limit > 0 {
        found.truncate(limit);
    }
    found.into_iter().map(|d| project(d, projection)).collect()
}

fn project(doc: &Document, projection: Option<&Document>) -> Document {
    let Some(projection) = projection else {
        return doc.clone();
    };
    doc.iter()
        .filter(|(key, _)| *key == "_id" || projection.contains_key(key.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The document an upsert inserts: the filter's equalities, then the update.
fn insert_for(filter: &Document, update: &Bson) -> Document {
    let mut seed = Document::new();
    for (key, value) in filter {
        let is_operator = matches!(value, Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$')));
        if !key.starts_with('$') && !is_operator {
            seed.insert(key.clone(), value.clone());
        }
    }
    let mut doc = apply(&seed, update, true);
    if !doc.contains_key("_id") {
        doc.insert("_id", ObjectId::new());
    }
    doc
}

fn apply(doc: &Document, update: &Bson, inserting: bool) -> Document {
    let mut out = doc.clone();
    match update {
        Bson::Document(ops) => {
            for (op, fields) in ops {
                let fields = fields.as_document().expect("operator fields");
                for (key, value) in fields {
                    match op.as_str() {
                        "$set" => {
                            out.insert(key.clone(), value.clone());
                        }
                        "$setOnInsert" => {
                            if inserting {
                                out.insert(key.clone(), value.clone());
                            }
                        }
                        "$inc" => {
                            let now = int(out.get(key)).unwrap_or(0);
                            out.insert(
                                key.clone(),
                                now + int(Some(value)).expect("$inc by a number"),
                            );
                        }
                        other => panic!("the fake does not know {other}"),
                    }
                }
            }
        }
        Bson::Array(stages) => {
            for stage in stages {
                let set = stage
                    .as_document()
                    .and_then(|s| s.get_document("$set").ok())
                    .expect("the fake knows pipeline $set only");
                let before = out.clone();
                for (key, value) in set {
                    let value = match value {
                        Bson::String(s) if s.starts_with('$') => {
                            before.get(&s[1..]).cloned().unwrap_or(Bson::Null)
                        }
                        other => other.clone(),
                    };
                    out.insert(key.clone(), value);
                }
            }
        }
        other => panic!("not an update: {other}"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::DateTime;

    #[test]
    fn the_fake_follows_mongodb_on_nulls_and_types() {
        let t = |ms| Bson::DateTime(DateTime::from_millis(ms));
        let leased = doc! { "lease_until": t(10), "concurrency": [ { "key": "k" } ] };
        let free = doc! { "lease_until": Bson::Null, "concurrency": [] };
        let missing = doc! {};
        assert!(matches(&free, &doc! { "lease_until": Bson::Null }));
        assert!(matches(&missing, &doc! { "lease_until": Bson::Null }));
        assert!(!matches(&leased, &doc! { "lease_until": Bson::Null }));
        assert!(matches(&leased, &doc! { "lease_until": { "$gt": t(5) } }));
        assert!(
            !matches(&free, &doc! { "lease_until": { "$lte": t(5) } }),
            "null is not a date"
        );
        assert!(matches(&free, &doc! { "lease_until": { "$ne": t(5) } }));
        assert!(matches(
            &leased,
            &doc! { "concurrency.0": { "$exists": true } }
        ));
        assert!(!matches(
            &free,
            &doc! { "concurrency.0": { "$exists": true } }
        ));
        assert!(matches(&missing, &doc! { "kind": { "$ne": "publish" } }));
        assert!(matches(
            &leased,
            &doc! { "$or": [ { "x": 1 }, { "lease_until": t(10) } ] }
        ));
    }
}
