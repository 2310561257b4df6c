//! `retriage-ticket`: an admin asked for a fresh triage. The ticket is triaged again (a
//! priority a person set stays) and routed if it is still unassigned.

use super::triage::{Routed, Triaged, route, triage};
use super::{Deps, data_id};
use crate::domain::events::TICKET_RETRIAGE;
use crate::inngest::{Concurrency, Ctx, FnError, Function, Step, Trigger};
use serde_json::json;
use std::sync::Arc;

pub const ID: &str = "retriage-ticket";

pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(ID, "Triage a ticket again")
        .trigger(Trigger::event(TICKET_RETRIAGE))
        .retries(4)
        .concurrency(Concurrency::new(deps.ai_concurrency))
        .handler(move |ctx: Ctx, step: Step| {
            let deps = deps.clone();
            async move {
                let ticket_id = data_id(&ctx.event, "ticket_id")?;
                let last_attempt = ctx.max_attempts.is_some_and(|max| ctx.attempt + 1 >= max);
                let triaged: Triaged = step
                    .run("triage", || {
                        let (deps, id) = (deps.clone(), ticket_id.clone());
                        async move { triage(&deps, &id, last_attempt).await }
                    })
                    .await?;
                let routed: Routed = step
                    .run("route", || {
                        let (deps, id, skills) = (deps.clone(), ticket_id.clone(), triaged.skills.clone());
                        async move { route(&deps, &id, &skills).await }
                    })
                    .await?;
                Ok::<_, FnError>(json!({ "ticket_id": ticket_id, "triage": triaged.status, "assignee": routed.assignee }))
            }
        })
}
