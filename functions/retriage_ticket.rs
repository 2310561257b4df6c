//! `retriage-ticket`: an admin asked for a fresh triage. The ticket is triaged again (a
//! priority a person set stays) and routed if it is still unassigned.

use super::triage::triage_and_route;
use super::{Deps, data_id, limit_ai};
use crate::domain::events::TICKET_RETRIAGE;
use crate::inngest::{Ctx, FnError, Function, Step, Trigger};
use serde_json::json;
use std::sync::Arc;

pub const ID: &str = "retriage-ticket";

pub fn function(deps: Arc<Deps>) -> Function {
    let f = Function::new(ID, "Triage a ticket again")
        .trigger(Trigger::event(TICKET_RETRIAGE))
        .retries(4);
    limit_ai(f, &deps).handler(move |ctx: Ctx, step: Step| {
            let deps = deps.clone();
            async move {
                let ticket_id = data_id(&ctx.event, "ticket_id")?;
                let (triaged, routed) = triage_and_route(&deps, &step, &ctx, &ticket_id, true).await?;
                Ok::<_, FnError>(json!({ "ticket_id": ticket_id, "triage": triaged.status, "assignee": routed.assignee }))
            }
        })
}
