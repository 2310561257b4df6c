//! `on-ticket-created`: triage -> route -> assign -> notify -> wait for `ticket/resolved` until
//! the SLA deadline -> escalate.

use super::notify::{Delivery, Recipient, admins, send_once};
use super::triage::{Routed, triage_and_route};
use super::{Deps, data_id, limit_ai, retriable, ticket_of_run};
use crate::domain::access::Disclosure;
use crate::domain::events::{TICKET_CREATED, TICKET_RESOLVED};
use crate::inngest::{Ctx, FnError, Function, Step, Trigger, WaitForEvent};
use crate::mail::TicketInfo;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const ID: &str = "on-ticket-created";
/// Triage, routing and mail are each retried this often before the run fails.
pub const RETRIES: u32 = 4;

pub fn function(deps: Arc<Deps>) -> Function {
    let failure_deps = deps.clone();
    let f = Function::new(ID, "Triage, route and follow up a new ticket")
        .trigger(Trigger::event(TICKET_CREATED))
        .retries(RETRIES);
    // Only running steps count against the limit; runs waiting for resolution do not.
    limit_ai(f, &deps)
        .on_failure(move |ctx, step| super::on_ticket_failed::run(failure_deps.clone(), ctx, step))
        .handler(move |ctx: Ctx, step: Step| run(deps.clone(), ctx, step))
}

async fn run(deps: Arc<Deps>, ctx: Ctx, step: Step) -> Result<Value, FnError> {
    let ticket_id = data_id(&ctx.event, "ticket_id")?;
    let event_id = ctx.event.id.clone().unwrap_or_else(|| ctx.run_id.clone());

    let (triaged, routed) = triage_and_route(&deps, &step, &ctx, &ticket_id, false).await?;

    notify_routed(&deps, &step, &routed, &ticket_id, &event_id).await?;

    step.run("notify-creator", || {
        let (deps, id, key) = (
            deps.clone(),
            ticket_id.clone(),
            format!("{event_id}:received"),
        );
        async move { notify_creator(&deps, &id, &key).await }
    })
    .await?;

    let due: DateTime<Utc> = step
        .run("start-sla", || {
            let (deps, id) = (deps.clone(), ticket_id.clone());
            let sla = deps.sla.for_priority(triaged.priority);
            async move {
                let due = Utc::now()
                    + chrono::Duration::from_std(sla)
                        .map_err(|e| FnError::non_retriable(e.to_string()))?;
                deps.store.set_sla_due(&id, due).await.map_err(retriable)?;
                Ok(due)
            }
        })
        .await?;

    // The timeout is only read when the wait is first reached; replays use the stored result.
    let timeout = wait_timeout(due, Utc::now());
    let resolved: Option<Value> = step
        .wait_for_event(
            "wait-for-resolution",
            WaitForEvent::new(TICKET_RESOLVED, timeout)
                .if_exp("event.data.ticket_id == async.data.ticket_id"),
        )
        .await?;
    if resolved.is_some() {
        return Ok(
            json!({ "ticket_id": ticket_id, "triage": triaged.status, "assignee": routed.assignee, "sla": "met" }),
        );
    }

    let escalated: bool = step
        .run("escalate", || {
            let (deps, id) = (deps.clone(), ticket_id.clone());
            async move { Ok(deps.store.escalate(&id).await.map_err(retriable)?.is_some()) }
        })
        .await?;
    if escalated {
        metrics::counter!("sla_breaches_total").increment(1);
        step.run("notify-escalation", || {
            let (deps, id, key) = (
                deps.clone(),
                ticket_id.clone(),
                format!("{event_id}:escalated"),
            );
            async move { notify_escalation(&deps, &id, &key, due).await }
        })
        .await?;
    }
    Ok(
        json!({ "ticket_id": ticket_id, "triage": triaged.status, "assignee": routed.assignee, "sla": if escalated { "breached" } else { "met" } }),
    )
}

/// How long to wait for resolution so the wait cannot end before `due`. Timeouts travel as
/// whole seconds ("1s"), and the wire format drops the fraction: 1.9 s left would become "1s"
/// and the ticket would be escalated before its deadline. So round up, and wait at least 1 s.
fn wait_timeout(due: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    let left = (due - now).to_std().unwrap_or(Duration::ZERO);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

fn info(t: &crate::store::Ticket) -> TicketInfo<'_> {
    let mut info = TicketInfo::new(&t.id, &t.title);
    info.priority = Some(t.priority);
    info.category = t.category;
    info.summary = t.triage.as_ref().map(|tr| tr.summary.as_str());
    info
}

/// The "assigned to you" mail, with what triage found and why routing chose them.
/// Tells the person routing chose, once per event; an assignment a person made stays quiet.
pub(super) async fn notify_routed(
    deps: &Arc<Deps>,
    step: &Step,
    routed: &Routed,
    ticket_id: &str,
    event_id: &str,
) -> Result<(), FnError> {
    if let Some(assignee) = routed.assignee.clone().filter(|_| routed.by_routing) {
        step.run("notify-assignee", || {
            let (deps, id, key) = (
                deps.clone(),
                ticket_id.to_owned(),
                format!("{event_id}:assigned:{assignee}"),
            );
            async move { notify_assignee(&deps, &id, &assignee, &key).await }
        })
        .await?;
    }
    Ok(())
}

async fn notify_assignee(
    deps: &Deps,
    ticket_id: &str,
    assignee: &str,
    key: &str,
) -> Result<Delivery, FnError> {
    let ticket = ticket_of_run(deps, ticket_id).await?;
    let content = deps
        .templates
        .ticket_assigned(&info(&ticket), ticket.routing_reason.as_deref());
    let to = Recipient::ticket(assignee, &ticket, Disclosure::Staff);
    send_once(deps, key, to, content).await
}

async fn notify_creator(deps: &Deps, ticket_id: &str, key: &str) -> Result<Delivery, FnError> {
    let ticket = ticket_of_run(deps, ticket_id).await?;
    // The files attached by the time this is written: the web app uploads them right after
    // the ticket is created, while triage runs.
    let files = deps
        .store
        .list_attachments(&ticket.id, false)
        .await
        .map_err(retriable)?;
    let names: Vec<&str> = files.iter().map(|f| f.filename.as_str()).collect();
    let content = deps.templates.ticket_received(&info(&ticket), &names);
    let to = Recipient::ticket(&ticket.created_by, &ticket, Disclosure::Customer);
    send_once(deps, key, to, content).await
}

async fn notify_escalation(
    deps: &Deps,
    ticket_id: &str,
    key: &str,
    due: DateTime<Utc>,
) -> Result<Vec<Delivery>, FnError> {
    let ticket = ticket_of_run(deps, ticket_id).await?;
    let assignee = match &ticket.assigned_to {
        Some(id) => deps.store.get_user(id).await.map_err(retriable)?,
        None => None,
    };
    let mut recipients: Vec<(String, String)> = admins(deps)
        .await?
        .into_iter()
        .map(|a| (a.id, a.email))
        .collect();
    if let Some(a) = &assignee
        && !recipients.iter().any(|(id, _)| *id == a.id)
    {
        recipients.push((a.id.clone(), a.email.clone()));
    }
    let mut sent = Vec::new();
    for (id, email) in recipients {
        let content = deps.templates.sla_escalation(
            &info(&ticket),
            due,
            assignee.as_ref().map(|a| a.email.as_str()),
        );
        let to = Recipient::ticket(&id, &ticket, Disclosure::Staff);
        sent.push(send_once(deps, &format!("{key}:{email}"), to, content).await?);
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_never_ends_before_the_deadline() {
        let now = Utc::now();
        let ms = chrono::Duration::milliseconds;
        assert_eq!(wait_timeout(now + ms(1900), now), Duration::from_secs(2));
        assert_eq!(wait_timeout(now + ms(2000), now), Duration::from_secs(2));
        assert_eq!(wait_timeout(now + ms(2001), now), Duration::from_secs(3));
        assert_eq!(wait_timeout(now + ms(300), now), Duration::from_secs(1));
        assert_eq!(wait_timeout(now - ms(5000), now), Duration::from_secs(1));
        let wire = crate::inngest::protocol::time_str(wait_timeout(now + ms(14_400_500), now));
        assert_eq!(wire, "4h1s");
    }
}
