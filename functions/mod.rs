//! The durable functions, one file each, registered with the Inngest SDK. Steps return ids and
//! small values only; every side effect is idempotent under replay (mail is recorded by key).

pub mod account_links;
mod notify;
pub mod on_ticket_created;
pub mod on_ticket_failed;
pub mod on_ticket_updated;
pub mod on_user_signup;
pub mod reroute_ticket;
pub mod retriage_ticket;
mod triage;

use crate::ai::{RulesEngine, TriageProvider};
use crate::config::{AccountConfig, SlaConfig};
use crate::inngest::{Function, FunctionBuilder};
use crate::mail::{Mailer, Templates};
use crate::store::Store;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The app id the functions are registered under.
pub const APP_ID: &str = "ticketing";

/// What the functions work with, built once at start.
pub struct Deps {
    pub store: Arc<dyn Store>,
    pub ai: Arc<dyn TriageProvider>,
    pub rules: RulesEngine,
    pub mailer: Arc<dyn Mailer>,
    pub templates: Templates,
    pub sla: SlaConfig,
    /// How long mailed account links work.
    pub accounts: AccountConfig,
    /// Bounds AI calls in this process, on top of the functions' concurrency limits, so a
    /// burst of tickets cannot overrun the provider's rate limit.
    pub ai_permits: Semaphore,
    /// The concurrency limit of the functions that call the AI; none with the rules engine.
    pub ai_concurrency: Option<u32>,
}

pub fn all(deps: Arc<Deps>) -> Vec<Function> {
    vec![
        on_ticket_created::function(deps.clone()),
        on_user_signup::function(deps.clone()),
        account_links::function(deps.clone()),
        on_ticket_updated::function(deps.clone()),
        retriage_ticket::function(deps.clone()),
        reroute_ticket::function(deps),
    ]
}

/// Limits `f` to `AI_CONCURRENCY` steps at once when it calls an external AI. Inngest counts
/// every running step of the function against the limit, not only the AI call, so with the
/// rules engine (which calls nobody) there is no limit to pay for.
pub(crate) fn limit_ai(f: FunctionBuilder, deps: &Deps) -> FunctionBuilder {
    match deps.ai_concurrency {
        Some(n) => f.concurrency(crate::inngest::Concurrency::new(n)),
        None => f,
    }
}

/// The id in an event's data, or a non-retriable error: a malformed event will not get better.
pub(crate) fn data_id(
    event: &crate::inngest::Event,
    field: &str,
) -> Result<String, crate::inngest::FnError> {
    event.data[field]
        .as_str()
        .and_then(crate::domain::parse_id)
        .ok_or_else(|| {
            crate::inngest::FnError::non_retriable(format!(
                "event {} has no valid {field}",
                event.name
            ))
        })
}

/// A failure that may pass (the store or the mailer unavailable): the step is tried again.
pub(crate) fn retriable(e: impl std::fmt::Display) -> crate::inngest::FnError {
    crate::inngest::FnError::retriable(e.to_string())
}

/// The ticket a run is about. One that does not exist ends the run: retrying cannot make it.
pub(crate) async fn ticket_of_run(
    deps: &Deps,
    ticket_id: &str,
) -> Result<crate::store::Ticket, crate::inngest::FnError> {
    deps.store
        .get_ticket(ticket_id)
        .await
        .map_err(retriable)?
        .ok_or_else(|| {
            crate::inngest::FnError::non_retriable(format!("ticket {ticket_id} does not exist"))
        })
}
