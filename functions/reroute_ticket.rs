//! `reroute-ticket`: a ticket lost its assignee, who is no longer staff, and goes back to
//! routing with the skills triage found; whoever routing chooses is told.

use super::on_ticket_created::notify_routed;
use super::triage::{Routed, route};
use super::{Deps, data_id, retriable};
use crate::domain::events::TICKET_REROUTE;
use crate::inngest::{Ctx, FnError, Function, Step, Trigger};
use serde_json::json;
use std::sync::Arc;

pub const ID: &str = "reroute-ticket";

pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(ID, "Route a ticket again after its assignee left the staff")
        .trigger(Trigger::event(TICKET_REROUTE))
        .retries(4)
        .handler(move |ctx: Ctx, step: Step| {
            let deps = deps.clone();
            async move { run(deps, ctx, step).await }
        })
}

async fn run(deps: Arc<Deps>, ctx: Ctx, step: Step) -> Result<serde_json::Value, FnError> {
    let ticket_id = data_id(&ctx.event, "ticket_id")?;
    let event_id = ctx.event.id.clone().unwrap_or_else(|| ctx.run_id.clone());
    let routed: Routed = step
        .run("route", || {
            let (deps, id) = (deps.clone(), ticket_id.clone());
            async move {
                let Some(ticket) = deps.store.get_ticket(&id).await.map_err(retriable)? else {
                    return Ok(Routed {
                        assignee: None,
                        by_routing: false,
                    });
                };
                let skills = ticket.triage.map(|t| t.required_skills).unwrap_or_default();
                route(&deps, &id, &skills, true).await
            }
        })
        .await?;
    notify_routed(&deps, &step, &routed, &ticket_id, &event_id).await?;
    Ok(json!({ "ticket_id": ticket_id, "assignee": routed.assignee }))
}
