//! From events to work: the runs an event starts, the pauses it resumes or cancels, and the
//! queue items and events the executor makes for runs, timers and cron ticks.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Executor;
use crate::events;
use crate::expr::{Expression, Scope};
use crate::function::FunctionDef;
use crate::state::{self, ParentRef, RunState};
use crate::store::{
    Ingest, IngestOutcome, ItemKind, Pause, PauseKind, QueueItem, Slot, StoreError,
};
use inngest_axum::protocol::{DISCOVERY_STEP_ID, FUNCTION_INVOKED_EVENT, SCHEDULED_TIMER_EVENT};

impl Executor {
    pub(crate) async fn ingest_event(
        &self,
        event: Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let name = events::name_of(&event).to_string();
        let mut ingest = Ingest {
            event_id: events::id_of(&event).to_string(),
            event: event.clone(),
            runs: Vec::new(),
            items: Vec::new(),
            pauses: Vec::new(),
            resumes: Vec::new(),
            remove_items: Vec::new(),
        };
        for def in self.all_functions() {
            if def.triggers.iter().any(|t| t.matches(&name, &event)) {
                let (run, item, pauses) = self.new_run(&def, event.clone(), now);
                ingest.runs.push(run);
                ingest.items.push(item);
                ingest.pauses.extend(pauses);
            }
        }
        for pause in self.inner.store.pauses_for(&name, now).await? {
            let matched = match &pause.condition {
                None => true,
                Some(src) => match Expression::parse(src, Scope::EventAndAsync) {
                    Ok(e) => e.matches(&pause.trigger_event, Some(&event)),
                    Err(e) => {
                        tracing::warn!(pause = %pause.id, error = %e, "pause has an unreadable condition");
                        false
                    }
                },
            };
            if !matched {
                continue;
            }
            match &pause.kind {
                PauseKind::Wait { step_id } => {
                    ingest.resumes.push((
                        pause.id.clone(),
                        QueueItem::new(
                            format!("resume:{}:{step_id}", pause.run_id),
                            Some(pause.run_id.clone()),
                            ItemKind::Resume {
                                step_id: step_id.clone(),
                                value: event.clone(),
                                reason: state::ResumeReason::EventReceived,
                                pause_id: None,
                            },
                            now,
                        ),
                    ));
                    ingest
                        .remove_items
                        .push(timeout_key(&pause.run_id, step_id));
                }
                PauseKind::Cancel => ingest.resumes.push((
                    pause.id.clone(),
                    QueueItem::new(
                        format!("cancel:{}", pause.run_id),
                        Some(pause.run_id.clone()),
                        ItemKind::Cancel {
                            reason: format!(
                                "cancelled by event {name} ({})",
                                events::id_of(&event)
                            ),
                        },
                        now,
                    ),
                )),
            }
        }
        let started = ingest.runs.len() as u64;
        match self.inner.store.ingest(ingest).await? {
            IngestOutcome::Duplicate => {
                tracing::debug!(event = %name, "duplicate event id ignored");
                self.inner.counters.event(true);
            }
            IngestOutcome::Accepted { resumed } => {
                tracing::debug!(event = %name, started, resumed, "event accepted");
                self.inner.counters.event(false);
                self.inner.counters.runs_started(started);
            }
        }
        Ok(())
    }

    /// A new run of `def` with its first discovery call and its cancellation pauses.
    pub(crate) fn new_run(
        &self,
        def: &FunctionDef,
        event: Value,
        now: DateTime<Utc>,
    ) -> (RunState, QueueItem, Vec<Pause>) {
        let run = RunState::new(
            uuid::Uuid::now_v7().to_string(),
            &def.app_id,
            &def.id,
            def.max_attempts,
            event,
            now,
        );
        let item = self.call_item(def, &run, DISCOVERY_STEP_ID, 0, now);
        let pauses = def
            .cancel
            .iter()
            .map(|c| Pause {
                id: uuid::Uuid::now_v7().to_string(),
                run_id: run.id.clone(),
                kind: PauseKind::Cancel,
                event: c.event.clone(),
                condition: c.condition.as_ref().map(|e| e.source().to_string()),
                trigger_event: run.event.clone(),
                expires_at: c
                    .timeout
                    .as_deref()
                    .and_then(|t| crate::duration::sleep_until(t, now))
                    .unwrap_or(now + crate::duration::MAX_DURATION),
            })
            .collect();
        (run, item, pauses)
    }

    pub(crate) fn call_item(
        &self,
        def: &FunctionDef,
        run: &RunState,
        step_id: &str,
        attempt: u32,
        at: DateTime<Utc>,
    ) -> QueueItem {
        let mut item = QueueItem::new(
            format!("call:{}:{step_id}", run.id),
            Some(run.id.clone()),
            ItemKind::Call {
                step_id: step_id.to_string(),
                attempt,
            },
            at,
        );
        item.concurrency = def
            .concurrency_slots(&run.event)
            .into_iter()
            .map(|(key, limit)| Slot { key, limit })
            .collect();
        item
    }
}

pub(crate) fn cron_key(function_id: &str, schedule: &str) -> String {
    format!("cron:{function_id}:{schedule}")
}

pub(crate) fn timeout_key(run_id: &str, step_id: &str) -> String {
    format!("timeout:{run_id}:{step_id}")
}

/// The event that starts an invoked function (reference §7.2).
pub(crate) fn invoke_event(
    parent: &RunState,
    step_id: &str,
    target: &str,
    payload: &Value,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Value {
    let mut data = payload
        .get("data")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let correlation_id = format!("{}.{step_id}", parent.id);
    data["_inngest"] = json!({
        "fn_id": target,
        "correlation_id": correlation_id,
        "source_app_id": parent.app_id,
        "source_fn_id": parent.function_id,
        "source_fn_v": 1,
        "expire": expires_at.timestamp_millis(),
        "name": FUNCTION_INVOKED_EVENT,
    });
    json!({
        "id": format!("{}:invoke:{step_id}", parent.id),
        "name": FUNCTION_INVOKED_EVENT,
        "data": data,
        "user": payload.get("user").cloned().filter(Value::is_object).unwrap_or_else(|| json!({})),
        "ts": now.timestamp_millis(),
    })
}

/// The event of a cron tick (reference §7.1).
pub(crate) fn cron_event(
    function_id: &str,
    schedule: &str,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Value {
    json!({
        "id": format!("cron:{function_id}:{}", due.timestamp_millis()),
        "name": SCHEDULED_TIMER_EVENT,
        "data": {"cron": schedule},
        "user": {},
        "ts": now.timestamp_millis(),
    })
}

pub(crate) fn parent_of(run_id: &str, step_id: &str) -> ParentRef {
    ParentRef {
        run_id: run_id.to_string(),
        step_id: step_id.to_string(),
    }
}
