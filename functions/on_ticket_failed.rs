//! The failure handler of `on-ticket-created`: when a run fails for good, the ticket is marked
//! (never left `pending`) and the admins are told.

use super::notify::{Delivery, Recipient, admins, send_once};
use super::{Deps, retriable};
use crate::domain::access::Disclosure;
use crate::inngest::{Ctx, FnError, Step};
use serde_json::{Value, json};
use std::sync::Arc;

pub async fn run(deps: Arc<Deps>, ctx: Ctx, step: Step) -> Result<Value, FnError> {
    // `inngest/function.failed` carries the original event and the error.
    let original = &ctx.event.data["event"];
    let ticket_id = original["data"]["ticket_id"]
        .as_str()
        .and_then(crate::domain::parse_id)
        .ok_or_else(|| FnError::non_retriable("failure event without a ticket id"))?;
    let reason = ctx.event.data["error"]["message"]
        .as_str()
        .unwrap_or("unknown error")
        .to_owned();
    let event_id = ctx.event.id.clone().unwrap_or_else(|| ctx.run_id.clone());

    step.run("mark-failed", || {
        let (deps, id, reason) = (deps.clone(), ticket_id.clone(), reason.clone());
        async move {
            deps.store
                .mark_triage_failed(&id, &format!("Automatic processing failed: {reason}"))
                .await
                .map_err(retriable)?;
            Ok(true)
        }
    })
    .await?;

    let sent: Vec<Delivery> = step
        .run("notify-admins", || {
            let (deps, id, reason, key) = (
                deps.clone(),
                ticket_id.clone(),
                reason.clone(),
                format!("{event_id}:failed"),
            );
            async move {
                let Some(ticket) = deps.store.get_ticket(&id).await.map_err(retriable)? else {
                    return Ok(Vec::new());
                };
                let mut sent = Vec::new();
                for admin in admins(&deps).await? {
                    let content = deps.templates.processing_failed(
                        &crate::mail::TicketInfo::new(&ticket.id, &ticket.title),
                        &reason,
                        ticket.triage_status == crate::domain::ticket::TriageStatus::Failed,
                    );
                    let to = Recipient::ticket(&admin.id, &ticket, Disclosure::Staff);
                    let key = format!("{key}:{}", admin.email);
                    sent.push(send_once(&deps, &key, to, content).await?);
                }
                Ok(sent)
            }
        })
        .await?;
    tracing::error!(
        ticket_id,
        reason,
        admins_told = sent.len(),
        "ticket processing failed for good"
    );
    Ok(json!({ "ticket_id": ticket_id, "admins_told": sent.len() }))
}
