//! The outbox relay: delivers the events the API wrote in its transactions, in order, with
//! their stable ids, to the embedded executor or to the Inngest event API. A delivered batch is
//! marked sent only after the sink accepted it; since the id travels with each event, a resend
//! after a crash is deduplicated downstream. Failures back off exponentially, never busy-loop,
//! and lose nothing.

use crate::store::{OutboxEvent, OutboxStore, StoreError};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

const BATCH: usize = 100;
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Even without a wake-up, look again now and then (another process may have written).
const IDLE_POLL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth retrying later (network, 5xx, executor busy).
    #[error("delivery failed, will retry: {0}")]
    Retry(String),
}

/// Where events go: the embedded executor or the Inngest event API.
#[async_trait]
pub trait EventSink: Send + Sync {
    fn name(&self) -> &'static str;
    async fn deliver(&self, events: &[OutboxEvent]) -> Result<(), SinkError>;
}

#[derive(Debug, PartialEq, Eq)]
pub enum RelayOutcome {
    Sent(usize),
    Empty,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}

pub struct Relay {
    store: Arc<dyn OutboxStore>,
    sink: Arc<dyn EventSink>,
    wake: Arc<Notify>,
}

impl Relay {
    pub fn new(store: Arc<dyn OutboxStore>, sink: Arc<dyn EventSink>, wake: Arc<Notify>) -> Self {
        Self { store, sink, wake }
    }

    /// Delivers one batch of pending events, oldest first.
    pub async fn relay_once(&self) -> Result<RelayOutcome, RelayError> {
        let events = self.store.pending_events(BATCH).await?;
        if events.is_empty() {
            return Ok(RelayOutcome::Empty);
        }
        self.sink.deliver(&events).await?;
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        self.store.mark_sent(&ids).await?;
        metrics::counter!("outbox_events_delivered_total").increment(ids.len() as u64);
        Ok(RelayOutcome::Sent(ids.len()))
    }

    /// Delivers everything pending now; used on shutdown and by tests.
    pub async fn drain(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        while let RelayOutcome::Sent(n) = self.relay_once().await? {
            total += n;
        }
        Ok(total)
    }

    /// Runs until `stop` turns true, then makes one last attempt to flush.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            if *stop.borrow() {
                break;
            }
            let (pause, failing) = match self.relay_once().await {
                Ok(RelayOutcome::Sent(_)) => {
                    backoff = Duration::from_millis(250);
                    continue;
                }
                Ok(RelayOutcome::Empty) => (IDLE_POLL, false),
                Err(e) => {
                    tracing::warn!(sink = self.sink.name(), error = %e, retry_in = ?backoff, "outbox delivery failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    (pause, true)
                }
            };
            if let Ok(n) = self.store.outbox_backlog().await {
                metrics::gauge!("outbox_backlog").set(n as f64);
            }
            // While the sink is failing, new events wait for the backoff: waking on each write
            // would hammer a sink that is down as fast as tickets come in.
            tokio::select! {
                _ = self.wake.notified(), if !failing => {}
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), self.drain()).await {
            Ok(Ok(n)) => tracing::info!(delivered = n, "outbox flushed on shutdown"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "outbox not fully flushed on shutdown; it will be delivered at next start")
            }
            Err(_) => tracing::warn!(
                "outbox flush timed out; remaining events are delivered at next start"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::NewEvent;
    use crate::domain::user::Role;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewUser, UserStore};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct FlakySink {
        failures_left: AtomicUsize,
        received: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl EventSink for FlakySink {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn deliver(&self, events: &[OutboxEvent]) -> Result<(), SinkError> {
            if self.failures_left.load(Ordering::SeqCst) > 0 {
                self.failures_left.fetch_sub(1, Ordering::SeqCst);
                return Err(SinkError::Retry("down".into()));
            }
            self.received
                .lock()
                .unwrap()
                .extend(events.iter().map(|e| e.id.clone()));
            Ok(())
        }
    }

    async fn store_with_events(n: usize) -> (tempfile::TempDir, Arc<SqliteStore>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("t.db")).await.unwrap());
        let mut ids = Vec::new();
        for i in 0..n {
            let id = crate::domain::new_id();
            let event = NewEvent::user_signup(&id);
            ids.push(event.id.clone());
            let user = NewUser {
                id,
                email: format!("u{i}@x.io"),
                name: String::new(),
                password_hash: "h".into(),
                role: Role::User,
                skills: vec![],
                email_verified: true,
            };
            store.create_user(user, Some(event)).await.unwrap();
        }
        (dir, store, ids)
    }

    /// One pending event that never leaves: the sink is down for the whole test.
    struct OneEvent;

    #[async_trait]
    impl OutboxStore for OneEvent {
        async fn pending_events(&self, _: usize) -> Result<Vec<OutboxEvent>, StoreError> {
            Ok(vec![OutboxEvent {
                seq: 1,
                id: crate::domain::new_id(),
                name: "user/signup".into(),
                data: serde_json::json!({}),
                created_at: chrono::Utc::now(),
                sent_at: None,
            }])
        }
        async fn list_events(&self, _: i64, _: usize) -> Result<Vec<OutboxEvent>, StoreError> {
            Ok(Vec::new())
        }
        async fn mark_sent(&self, _: &[String]) -> Result<(), StoreError> {
            Ok(())
        }
        async fn outbox_backlog(&self) -> Result<u64, StoreError> {
            Ok(1)
        }
    }

    #[tokio::test]
    async fn a_failing_sink_is_retried_with_backoff_even_while_writes_keep_coming() {
        let sink = Arc::new(FlakySink {
            failures_left: AtomicUsize::new(usize::MAX),
            ..Default::default()
        });
        let wake = Arc::new(Notify::new());
        let relay = Relay::new(Arc::new(OneEvent), sink.clone(), wake.clone());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(relay.run(stopped));
        // 1.2 s of writes, each waking the relay.
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(1200) {
            wake.notify_one();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let attempts = usize::MAX - sink.failures_left.load(Ordering::SeqCst);
        // Backoff 0.25, 0.5, 1 s: attempts at 0, 0.25 and 0.75 s, the next at 1.75 s.
        assert!((3..=4).contains(&attempts), "{attempts} attempts in 1.2 s");
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn outage_loses_nothing_and_order_is_kept() {
        let (_dir, store, ids) = store_with_events(150).await;
        let sink = Arc::new(FlakySink {
            failures_left: AtomicUsize::new(2),
            ..Default::default()
        });
        let relay = Relay::new(store.clone(), sink.clone(), Arc::new(Notify::new()));
        assert!(relay.relay_once().await.is_err());
        assert!(relay.relay_once().await.is_err());
        assert_eq!(
            store.outbox_backlog().await.unwrap(),
            150,
            "nothing marked sent during the outage"
        );
        assert_eq!(relay.drain().await.unwrap(), 150);
        assert_eq!(*sink.received.lock().unwrap(), ids);
        assert_eq!(store.outbox_backlog().await.unwrap(), 0);
        assert_eq!(relay.relay_once().await.unwrap(), RelayOutcome::Empty);
    }
}
