//! Staff and the tickets each holds open: what routing weighs when it picks an assignee.

use super::{Inner, all_documents, bad_document, bson_i64, from_opt_bson_date};
use crate::domain::ticket::TicketStatus;
use crate::domain::user::Role;
use crate::store::{StaffLoad, StoreResult};
use mongodb::bson::{self, Document, doc};
use serde::Deserialize;
use std::collections::HashMap;

/// Staff carry tickets; plain users never do.
const STAFF: [Role; 2] = [Role::Moderator, Role::Admin];
/// Tickets that occupy their assignee.
const OPEN: [TicketStatus; 2] = [TicketStatus::Open, TicketStatus::InProgress];

#[derive(Deserialize)]
struct StaffDoc {
    #[serde(rename = "_id")]
    id: String,
    email: String,
    name: String,
    role: Role,
    skills: Vec<String>,
    capacity: Option<i64>,
    last_assigned_at: Option<bson::DateTime>,
}

/// The users who can hold tickets.
pub(super) fn staff_filter() -> Document {
    let roles: Vec<&str> = STAFF.iter().map(|r| r.as_str()).collect();
    doc! { "role": { "$in": roles } }
}

/// The statuses of tickets that occupy their assignee, as stored.
pub(super) fn open_statuses() -> Vec<&'static str> {
    OPEN.iter().map(|s| s.as_str()).collect()
}

/// Open tickets per assignee, for the given staff ids.
fn load_pipeline(ids: &[String]) -> Vec<Document> {
    vec![
        doc! { "$match": { "assigned_to": { "$in": ids }, "status": { "$in": open_statuses() } } },
        doc! { "$group": { "_id": "$assigned_to", "count": { "$sum": 1 } } },
    ]
}

fn load_counts(groups: &[Document]) -> StoreResult<HashMap<String, u32>> {
    groups
        .iter()
        .map(|group| {
            let id = group
                .get_str("_id")
                .map_err(|e| bad_document("staff load", e))?;
            let count = group
                .get("count")
                .and_then(bson_i64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad_document("staff load", "count is not a number"))?;
            Ok((id.to_owned(), count))
        })
        .collect()
}

fn staff_load(document: Document, loads: &HashMap<String, u32>) -> StoreResult<StaffLoad> {
    let d: StaffDoc = bson::from_document(document).map_err(|e| bad_document("user", e))?;
    Ok(StaffLoad {
        open_tickets: loads.get(&d.id).copied().unwrap_or(0),
        capacity: d
            .capacity
            .map(u32::try_from)
            .transpose()
            .map_err(|e| bad_document("user capacity", e))?,
        last_assigned_at: from_opt_bson_date(d.last_assigned_at)?,
        id: d.id,
        email: d.email,
        name: d.name,
        role: d.role,
        skills: d.skills,
    })
}

impl Inner {
    /// Staff in id order, each with the tickets they hold open.
    pub(super) async fn staff_loads(&self) -> StoreResult<Vec<StaffLoad>> {
        let staff = all_documents(
            self.users
                .find(staff_filter())
                .sort(doc! { "_id": 1 })
                .projection(doc! { "password_hash": 0 }),
        )
        .await?;
        if staff.is_empty() {
            return Ok(Vec::new());
        }
        let ids = staff
            .iter()
            .map(|d| {
                d.get_str("_id")
                    .map(str::to_owned)
                    .map_err(|e| bad_document("user", e))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let groups = all_documents(self.tickets.aggregate(load_pipeline(&ids))).await?;
        let loads = load_counts(&groups)?;
        staff.into_iter().map(|d| staff_load(d, &loads)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use mongodb::bson::Bson;

    #[test]
    fn loads_count_only_open_work_of_the_staff_asked_about() {
        let pipeline = load_pipeline(&["m1".into(), "a1".into()]);
        assert_eq!(
            pipeline[0],
            doc! { "$match": {
                "assigned_to": { "$in": ["m1", "a1"] },
                "status": { "$in": ["open", "in_progress"] },
            } }
        );
        assert_eq!(
            staff_filter(),
            doc! { "role": { "$in": ["moderator", "admin"] } }
        );
        let counts = load_counts(&[
            doc! { "_id": "m1", "count": 2 },
            doc! { "_id": "a1", "count": 1_i64 },
        ])
        .unwrap();
        assert_eq!(counts.get("m1"), Some(&2));
        assert_eq!(counts.get("a1"), Some(&1));
        assert!(load_counts(&[doc! { "_id": Bson::Null, "count": 1 }]).is_err());
    }

    #[test]
    fn staff_without_tickets_or_history_load_nothing() {
        let at = bson::DateTime::from_millis(1_000);
        let document = doc! {
            "_id": "m1", "email": "m@example.com", "name": "Mo", "role": "moderator",
            "skills": ["sql"], "capacity": 4_i64, "last_assigned_at": at,
            "created_at": at, "updated_at": at,
        };
        let mut loads = HashMap::new();
        let load = staff_load(document.clone(), &loads).unwrap();
        assert_eq!(load.open_tickets, 0);
        assert_eq!(load.capacity, Some(4));
        assert_eq!(
            load.last_assigned_at,
            DateTime::from_timestamp_millis(1_000)
        );
        loads.insert("m1".to_owned(), 3);
        assert_eq!(
            staff_load(document.clone(), &loads).unwrap().open_tickets,
            3
        );

        // Users written before `last_assigned_at` existed read as never assigned.
        let mut older = document;
        older.remove("last_assigned_at");
        older.insert("capacity", Bson::Null);
        let load = staff_load(older, &loads).unwrap();
        assert_eq!(load.last_assigned_at, None);
        assert_eq!(load.capacity, None);
    }
}
