//! The analytics of `GET /api/stats` as the API shows them.

use crate::domain::user::Role;
use crate::store::{Count, DayCount, Load, Satisfaction, Stats};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Stats)]
pub struct StatsView {
    pub total: u64,
    pub by_status: Vec<CountView>,
    pub by_priority: Vec<CountView>,
    pub by_category: Vec<CountView>,
    /// All tickets per assignee; `key` is the user id or "unassigned".
    pub by_assignee: Vec<CountView>,
    pub by_triage_status: Vec<CountView>,
    /// Which engine triaged: `gemini`, `openai`, `rules`; `none` while pending.
    pub by_triage_source: Vec<CountView>,
    /// Mean seconds from opening to the first public staff reply, over tickets that have one.
    pub avg_first_response_secs: Option<f64>,
    /// Mean seconds from opening to resolution, over resolved tickets.
    pub avg_resolution_secs: Option<f64>,
    /// Tickets escalated because their SLA passed unresolved.
    pub sla_breaches: u64,
    /// Open work per staff member, with their capacity.
    pub moderator_load: Vec<LoadView>,
    pub satisfaction: SatisfactionView,
    /// The last 30 days (UTC), oldest first, days without tickets included.
    pub per_day: Vec<DayCountView>,
}

fn all<T, V: From<T>>(items: Vec<T>) -> Vec<V> {
    items.into_iter().map(V::from).collect()
}

impl From<Stats> for StatsView {
    fn from(stats: Stats) -> Self {
        Self {
            total: stats.total,
            by_status: all(stats.by_status),
            by_priority: all(stats.by_priority),
            by_category: all(stats.by_category),
            by_assignee: all(stats.by_assignee),
            by_triage_status: all(stats.by_triage_status),
            by_triage_source: all(stats.by_triage_source),
            avg_first_response_secs: stats.avg_first_response_secs,
            avg_resolution_secs: stats.avg_resolution_secs,
            sla_breaches: stats.sla_breaches,
            moderator_load: all(stats.moderator_load),
            satisfaction: stats.satisfaction.into(),
            per_day: all(stats.per_day),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Count)]
pub struct CountView {
    pub key: String,
    pub count: u64,
}

impl From<Count> for CountView {
    fn from(count: Count) -> Self {
        Self {
            key: count.key,
            count: count.count,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Load)]
pub struct LoadView {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    pub open_tickets: u64,
    pub capacity: Option<u32>,
}

impl From<Load> for LoadView {
    fn from(load: Load) -> Self {
        Self {
            user_id: load.user_id,
            email: load.email,
            role: load.role,
            open_tickets: load.open_tickets,
            capacity: load.capacity,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Satisfaction)]
pub struct SatisfactionView {
    /// Rated tickets.
    pub count: u64,
    /// Mean score; `null` when nothing was rated.
    pub average: Option<f64>,
    /// Every score from "1" to "5", each with its count.
    pub by_score: Vec<CountView>,
}

impl From<Satisfaction> for SatisfactionView {
    fn from(satisfaction: Satisfaction) -> Self {
        Self {
            count: satisfaction.count,
            average: satisfaction.average,
            by_score: all(satisfaction.by_score),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = DayCount)]
pub struct DayCountView {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Tickets opened that day.
    pub created: u64,
    /// Tickets resolved that day (and not reopened since).
    pub resolved: u64,
}

impl From<DayCount> for DayCountView {
    fn from(day: DayCount) -> Self {
        Self {
            date: day.date,
            created: day.created,
            resolved: day.resolved,
        }
    }
}
