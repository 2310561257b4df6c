//! What happened to a ticket, one entry per change, written by the store in the transaction of
//! the change itself. Entries name people by id; the API resolves names when it shows them.

use super::ticket::{Category, Priority, TicketStatus, TriageStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One change. The `kind` and its `data` are stored apart (a column each, or two fields), so the
/// log can be read by kind without parsing every entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Activity {
    Created {},
    /// `source`, `category` and `priority` are absent when triage failed for good.
    Triaged {
        source: Option<String>,
        status: TriageStatus,
        category: Option<Category>,
        priority: Option<Priority>,
    },
    /// `assignee_id` is `None` when the ticket was unassigned or left in the queue; `reason` is
    /// the routing reason, for staff.
    Assigned {
        assignee_id: Option<String>,
        reason: Option<String>,
    },
    StatusChanged {
        from: TicketStatus,
        to: TicketStatus,
    },
    PriorityChanged {
        from: Priority,
        to: Priority,
    },
    SlaSet {
        due_at: DateTime<Utc>,
    },
    /// The SLA passed unresolved; `priority` is the raised one.
    Escalated {
        priority: Priority,
    },
    Commented {
        comment_id: String,
        internal: bool,
    },
    Rated {
        score: u8,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("stored activity entry {kind:?} does not decode: {source}")]
pub struct ActivityDecodeError {
    kind: String,
    source: serde_json::Error,
}

impl Activity {
    /// The stored form: the kind, and its data as a JSON object.
    pub fn into_parts(self) -> (String, Value) {
        let mut tagged = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // An adjacently tagged enum always serializes to an object with both fields.
            _ => unreachable!("BUG: activity did not serialize to an object"),
        };
        let kind = match tagged.remove("kind") {
            Some(Value::String(kind)) => kind,
            _ => unreachable!("BUG: activity without a kind"),
        };
        let data = tagged
            .remove("data")
            .unwrap_or_else(|| Value::Object(Default::default()));
        (kind, data)
    }

    pub fn from_parts(kind: &str, data: Value) -> Result<Self, ActivityDecodeError> {
        serde_json::from_value(serde_json::json!({ "kind": kind, "data": data })).map_err(
            |source| ActivityDecodeError {
                kind: kind.to_owned(),
                source,
            },
        )
    }
}

/// An entry as the store keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivityEntry {
    pub id: String,
    pub ticket_id: String,
    /// Who made the change; `None` for the service itself (triage, routing, SLA).
    pub actor_id: Option<String>,
    pub activity: Activity,
    pub at: DateTime<Utc>,
}

/// An entry on its way into the store, inside the transaction of its change.
#[derive(Clone, Debug, PartialEq)]
pub struct NewActivity {
    pub id: String,
    pub actor_id: Option<String>,
    pub activity: Activity,
}

impl NewActivity {
    pub fn new(actor_id: Option<&str>, activity: Activity) -> Self {
        Self {
            id: super::new_id(),
            actor_id: actor_id.map(str::to_owned),
            activity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_round_trips_through_its_stored_parts() {
        let all = [
            Activity::Created {},
            Activity::Triaged {
                source: Some("rules".into()),
                status: TriageStatus::Fallback,
                category: Some(Category::Bug),
                priority: Some(Priority::High),
            },
            Activity::Triaged {
                source: None,
                status: TriageStatus::Failed,
                category: None,
                priority: None,
            },
            Activity::Assigned {
                assignee_id: Some("m1".into()),
                reason: Some("skills match".into()),
            },
            Activity::StatusChanged {
                from: TicketStatus::Open,
                to: TicketStatus::Resolved,
            },
            Activity::PriorityChanged {
                from: Priority::Low,
                to: Priority::High,
            },
            Activity::SlaSet {
                due_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
            Activity::Escalated {
                priority: Priority::High,
            },
            Activity::Commented {
                comment_id: "c1".into(),
                internal: true,
            },
            Activity::Rated { score: 4 },
        ];
        for activity in all {
            let (kind, data) = activity.clone().into_parts();
            assert!(data.is_object(), "{kind}: {data}");
            assert_eq!(Activity::from_parts(&kind, data).unwrap(), activity);
        }
    }

    #[test]
    fn kinds_and_data_use_the_api_spelling() {
        let (kind, data) = Activity::StatusChanged {
            from: TicketStatus::InProgress,
            to: TicketStatus::Resolved,
        }
        .into_parts();
        assert_eq!(kind, "status_changed");
        assert_eq!(data, json!({"from": "in_progress", "to": "resolved"}));
        assert_eq!(
            Activity::Created {}.into_parts(),
            ("created".into(), json!({}))
        );
        assert!(Activity::from_parts("bogus", json!({})).is_err());
        assert!(Activity::from_parts("rated", json!({"score": "five"})).is_err());
    }
}
