//! The triage and routing steps, shared by ticket creation and re-triage.

use super::{Deps, retriable, ticket_of_run};
use crate::ai::{OnRateLimit, TicketText, TriageDecision, triage_with_fallback};
use crate::domain::ticket::TriageStatus;
use crate::domain::user::Role;
use crate::inngest::FnError;
use crate::inngest::{Ctx, Step};
use crate::routing::{Candidate, CandidateRole, choose_assignee};
use crate::store::TriageUpdate;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the triage step leaves in the run state.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Triaged {
    pub status: TriageStatus,
    pub source: String,
    pub priority: crate::domain::ticket::Priority,
    pub skills: Vec<String>,
}

/// Triages the ticket and saves the result. A rate limit is retried later (as the provider
/// asked) while attempts remain; on the last attempt, and on any other AI failure, the rules
/// engine decides, so a ticket is never left untriaged.
pub async fn triage(deps: &Deps, ticket_id: &str, last_attempt: bool) -> Result<Triaged, FnError> {
    let ticket = ticket_of_run(deps, ticket_id).await?;
    let input = TicketText::new(ticket.title, ticket.description);
    let on_rate_limit = if last_attempt {
        OnRateLimit::Fallback
    } else {
        OnRateLimit::Defer
    };
    let decision = {
        let _permit = deps.ai_permits.acquire().await.map_err(retriable)?;
        let started = Instant::now();
        let decision =
            triage_with_fallback(deps.ai.as_ref(), &deps.rules, &input, on_rate_limit).await;
        let outcome = match &decision {
            TriageDecision::Done(_) => "ok",
            TriageDecision::Fallback { cause, .. } => cause.kind(),
            TriageDecision::RetryLater { .. } => "rate_limited",
        };
        metrics::counter!("ai_calls_total", "provider" => deps.ai.name(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("ai_call_duration_seconds", "provider" => deps.ai.name())
            .record(started.elapsed().as_secs_f64());
        decision
    };
    let (outcome, status) = match decision {
        // With no AI configured the rules engine is the provider itself: that is `Done`.
        TriageDecision::Done(outcome) => (outcome, TriageStatus::Done),
        TriageDecision::Fallback { outcome, .. } => (outcome, TriageStatus::Fallback),
        TriageDecision::RetryLater { retry_after, cause } => {
            return Err(FnError::retry_after(
                cause.to_string(),
                retry_after.unwrap_or(Duration::from_secs(30)),
            ));
        }
    };
    if let Some(usage) = &outcome.usage {
        metrics::counter!("ai_tokens_total", "provider" => deps.ai.name())
            .increment(u64::from(usage.total_tokens));
    }
    let t = outcome.triage;
    let update = TriageUpdate {
        status,
        summary: t.summary,
        category: t.category,
        priority: t.priority,
        sentiment: t.sentiment,
        required_skills: t.required_skills.clone(),
        helpful_notes: t.helpful_notes,
        confidence: t.confidence,
        source: outcome.source,
    };
    let saved = deps
        .store
        .save_triage(ticket_id, update)
        .await
        .map_err(retriable)?;
    Ok(Triaged {
        status,
        source: outcome.source.as_str().to_owned(),
        priority: saved.priority,
        skills: t.required_skills,
    })
}

/// Who the ticket went to, small enough for step state.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Routed {
    pub assignee: Option<String>,
    /// False when someone (an admin) had assigned it already.
    pub by_routing: bool,
}

pub async fn route(
    deps: &Deps,
    ticket_id: &str,
    skills: &[String],
    reroute: bool,
) -> Result<Routed, FnError> {
    let ticket = ticket_of_run(deps, ticket_id).await?;
    if let Some(assignee) = ticket.assigned_to {
        return Ok(Routed {
            assignee: Some(assignee),
            by_routing: false,
        });
    }
    // A reason already recorded means the assignment was decided, by a person or an earlier
    // routing; only an explicit re-triage routes such a ticket again.
    if ticket.routing_reason.is_some() && !reroute {
        return Ok(Routed {
            assignee: None,
            by_routing: false,
        });
    }
    let candidates: Vec<Candidate> = deps
        .store
        .staff_loads()
        .await
        .map_err(retriable)?
        .into_iter()
        .map(|s| Candidate {
            id: s.id,
            role: if s.role == Role::Admin {
                CandidateRole::Admin
            } else {
                CandidateRole::Moderator
            },
            skills: s.skills,
            open_tickets: s.open_tickets,
            capacity: s.capacity,
            last_assigned_at: s.last_assigned_at,
        })
        .collect();
    let decision = choose_assignee(skills, &candidates, chrono::Utc::now());
    match decision.assignee {
        Some(assignee) => match deps
            .store
            .assign_if_unassigned(ticket_id, &assignee, &decision.reason)
            .await
            .map_err(retriable)?
        {
            Some(_) => Ok(Routed {
                assignee: Some(assignee),
                by_routing: true,
            }),
            // Someone assigned it between our read and our write: theirs stands.
            None => {
                let current = deps
                    .store
                    .get_ticket(ticket_id)
                    .await
                    .map_err(retriable)?
                    .and_then(|t| t.assigned_to);
                if current.is_none() {
                    // Nobody did: the chosen person stopped being staff meanwhile.
                    return Err(FnError::retriable(
                        "the chosen assignee is no longer staff; routing again",
                    ));
                }
                Ok(Routed {
                    assignee: current,
                    by_routing: false,
                })
            }
        },
        None => {
            deps.store
                .set_routing_reason(ticket_id, &decision.reason)
                .await
                .map_err(retriable)?;
            Ok(Routed {
                assignee: None,
                by_routing: true,
            })
        }
    }
}

/// The two durable steps both functions start with: `triage`, then `route` with the skills
/// triage found. Each is memoized, so a replay reads the saved results.
pub async fn triage_and_route(
    deps: &Arc<Deps>,
    step: &Step,
    ctx: &Ctx,
    ticket_id: &str,
    reroute: bool,
) -> Result<(Triaged, Routed), FnError> {
    // On the last attempt a rate-limited AI is not waited for: the rules engine decides.
    let last_attempt = ctx.max_attempts.is_some_and(|max| ctx.attempt + 1 >= max);
    let triaged: Triaged = step
        .run("triage", || {
            let (deps, id) = (deps.clone(), ticket_id.to_owned());
            async move { triage(&deps, &id, last_attempt).await }
        })
        .await?;
    let routed: Routed = step
        .run("route", || {
            let (deps, id, skills) = (deps.clone(), ticket_id.to_owned(), triaged.skills.clone());
            async move { route(&deps, &id, &skills, reroute).await }
        })
        .await?;
    Ok((triaged, routed))
}
