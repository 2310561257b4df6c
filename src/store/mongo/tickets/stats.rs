//! `GET /api/stats` in one aggregation: a `$facet` per figure, read back into `Stats`.

use crate::store::mongo::{bad_document, bson_i64};
use crate::store::{Count, Load, Satisfaction, Stats, StoreResult};
use chrono::{DateTime, Utc};
use mongodb::bson::{self, Bson, Document, doc};

pub(super) fn stats_pipeline(since: bson::DateTime) -> Vec<Document> {
    let count_by = |field: &str| {
        vec![
            doc! { "$group": { "_id": format!("${field}"), "count": { "$sum": 1 } } },
            doc! { "$sort": { "_id": 1 } },
        ]
    };
    // Milliseconds from opening to `field`, averaged over the tickets that have it.
    let mean_ms_to = |field: &str| {
        vec![
            doc! { "$match": { field: { "$ne": Bson::Null } } },
            doc! { "$group": {
                "_id": Bson::Null,
                "ms": { "$avg": { "$subtract": [format!("${field}"), "$created_at"] } },
            } },
        ]
    };
    // Tickets per UTC day of `field`, over the `per_day` window.
    let per_day = |field: &str| {
        vec![
            doc! { "$match": { field: { "$gte": since } } },
            doc! { "$group": {
                "_id": { "$dateToString": { "format": "%Y-%m-%d", "date": format!("${field}") } },
                "count": { "$sum": 1 },
            } },
        ]
    };
    vec![doc! { "$facet": {
        "total": [ { "$count": "count" } ],
        "by_status": count_by("status"),
        "by_priority": count_by("priority"),
        "by_category": count_by("category"),
        "by_assignee": count_by("assigned_to"),
        "by_triage_status": count_by("triage_status"),
        "by_triage_source": count_by("triage_source"),
        "first_response_ms": mean_ms_to("first_response_at"),
        "resolution_ms": mean_ms_to("resolved_at"),
        "sla_breaches": [
            { "$match": { "escalated_at": { "$ne": Bson::Null } } },
            { "$count": "count" },
        ],
        "satisfaction": [
            { "$match": { "rating.score": { "$ne": Bson::Null } } },
            { "$group": { "_id": "$rating.score", "count": { "$sum": 1 } } },
        ],
        "created_per_day": per_day("created_at"),
        "resolved_per_day": per_day("resolved_at"),
    } }]
}

/// Reads the `$facet` result. Groups sort with null first, as SQLite's `ORDER BY` does, and a
/// null key is named like SQLite names it. Staff loads come from the users, read separately.
pub(super) fn stats_from(
    result: &Document,
    moderator_load: Vec<Load>,
    now: DateTime<Utc>,
) -> StoreResult<Stats> {
    let groups = |facet: &str| -> StoreResult<Vec<&Document>> {
        result
            .get_array(facet)
            .map_err(|e| bad_document("stats", e))?
            .iter()
            .map(|group| {
                group
                    .as_document()
                    .ok_or_else(|| bad_document("stats", "group is not a document"))
            })
            .collect()
    };
    let counts = |facet: &str, null_key: &str| -> StoreResult<Vec<Count>> {
        groups(facet)?
            .into_iter()
            .map(|group| {
                let key = match group.get("_id") {
                    Some(Bson::String(key)) => key.clone(),
                    None | Some(Bson::Null) => null_key.to_owned(),
                    // Scores group by number.
                    Some(other @ (Bson::Int32(_) | Bson::Int64(_))) => {
                        bson_i64(other).unwrap_or_default().to_string()
                    }
                    Some(other) => return Err(bad_document("stats key", other)),
                };
                let count = group
                    .get("count")
                    .and_then(bson_i64)
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| bad_document("stats", "count is not a number"))?;
                Ok(Count { key, count })
            })
            .collect()
    };
    let single = |facet: &str| -> StoreResult<u64> {
        Ok(counts(facet, facet)?.first().map_or(0, |c| c.count))
    };
    // No group at all when no ticket has the field: no mean, as SQL's AVG over no rows.
    let mean_secs = |facet: &str| -> StoreResult<Option<f64>> {
        let Some(group) = groups(facet)?.first().copied() else {
            return Ok(None);
        };
        match group.get("ms") {
            Some(Bson::Double(ms)) => Ok(Some(ms / 1000.0)),
            // `$avg` over values that are all null.
            Some(Bson::Null) => Ok(None),
            Some(other) => bson_i64(other)
                .map(|ms| Some(ms as f64 / 1000.0))
                .ok_or_else(|| bad_document("stats mean", other)),
            None => Err(bad_document("stats mean", "missing")),
        }
    };
    Ok(Stats {
        total: single("total")?,
        by_status: counts("by_status", "none")?,
        by_priority: counts("by_priority", "none")?,
        by_category: counts("by_category", "none")?,
        by_assignee: counts("by_assignee", "unassigned")?,
        by_triage_status: counts("by_triage_status", "none")?,
        by_triage_source: counts("by_triage_source", "none")?,
        avg_first_response_secs: mean_secs("first_response_ms")?,
        avg_resolution_secs: mean_secs("resolution_ms")?,
        sla_breaches: single("sla_breaches")?,
        moderator_load,
        satisfaction: Satisfaction::from_scores(
            &counts("satisfaction", "none")?
                .into_iter()
                .map(|c| {
                    c.key
                        .parse::<u8>()
                        .map(|score| (score, c.count))
                        .map_err(|e| bad_document("rating score", e))
                })
                .collect::<StoreResult<Vec<_>>>()?,
        ),
        per_day: crate::store::model::per_day(
            now,
            &day_counts(counts("created_per_day", "none")?),
            &day_counts(counts("resolved_per_day", "none")?),
        ),
    })
}

fn day_counts(counts: Vec<Count>) -> Vec<(String, u64)> {
    counts.into_iter().map(|c| (c.key, c.count)).collect()
}
