//! The change bus: a broadcast channel for subscribers that keep up, and a bounded ring of the
//! latest changes, numbered, so a subscriber that reconnects with the last number it saw gets
//! what it missed (or is told to re-read everything when that is no longer in the ring).

use crate::store::Comment;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// How many changes are kept for replay; also how far a subscriber may fall behind before it is
/// told to re-read.
pub const REPLAY_CAPACITY: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    TicketCreated,
    TicketUpdated,
    CommentAdded,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::TicketCreated => "ticket.created",
            ChangeKind::TicketUpdated => "ticket.updated",
            ChangeKind::CommentAdded => "comment.added",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Increases by one per change; the SSE event id.
    pub seq: u64,
    pub kind: ChangeKind,
    pub ticket_id: String,
    /// The new comment, for `CommentAdded`.
    pub comment: Option<Comment>,
}

pub struct ChangeBus {
    sender: broadcast::Sender<Arc<Change>>,
    ring: Mutex<Ring>,
    closed: watch::Sender<bool>,
}

struct Ring {
    /// The number the next change gets. It starts at the time this process started, in
    /// microseconds, so a number from an earlier process (or another instance) is never taken
    /// for one of ours: it is older than anything here, or newer than anything issued, and
    /// either way the subscriber re-reads.
    next_seq: u64,
    changes: VecDeque<Arc<Change>>,
    capacity: usize,
}

/// What a subscriber gets next.
#[derive(Debug, PartialEq)]
pub enum Next {
    Change(Arc<Change>),
    /// Changes were missed and cannot be replayed: re-read what is shown.
    Resync,
    /// The server is shutting down.
    Closed,
}

impl Default for ChangeBus {
    fn default() -> Self {
        Self::new(REPLAY_CAPACITY)
    }
}

impl ChangeBus {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let start = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1);
        Self {
            sender: broadcast::channel(capacity).0,
            ring: Mutex::new(Ring {
                next_seq: start.max(1),
                changes: VecDeque::with_capacity(capacity),
                capacity,
            }),
            closed: watch::channel(false).0,
        }
    }

    /// Numbers and announces a committed change.
    pub fn publish(&self, kind: ChangeKind, ticket_id: &str, comment: Option<Comment>) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let change = Arc::new(Change {
            seq: ring.next_seq,
            kind,
            ticket_id: ticket_id.to_owned(),
            comment,
        });
        ring.next_seq += 1;
        if ring.changes.len() == ring.capacity {
            ring.changes.pop_front();
        }
        ring.changes.push_back(change.clone());
        // Sent under the lock, so a subscriber joining now sees each change exactly once:
        // either in its replay or on its receiver. An error only means nobody listens.
        let _ = self.sender.send(change);
    }

    /// Follows changes from now on, or from after `last_event_id` (the `Last-Event-ID` a client
    /// reconnects with).
    pub fn subscribe(&self, last_event_id: Option<&str>) -> Subscription {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = self.sender.subscribe();
        let (replay, resync) = match last_event_id.map(|raw| raw.trim().parse::<u64>()) {
            None => (VecDeque::new(), false),
            Some(Ok(seen)) => match ring.after(seen) {
                Some(missed) => (missed, false),
                None => (VecDeque::new(), true),
            },
            Some(Err(_)) => (VecDeque::new(), true),
        };
        Subscription {
            replay,
            resync,
            receiver,
            closed: self.closed.subscribe(),
        }
    }

    /// Ends every subscription (graceful shutdown), so open streams finish.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

impl Ring {
    /// The changes after `seen`, or `None` when some of them are gone (or `seen` is not ours).
    fn after(&self, seen: u64) -> Option<VecDeque<Arc<Change>>> {
        let oldest = self.changes.front().map_or(self.next_seq, |c| c.seq);
        if seen >= self.next_seq || seen.saturating_add(1) < oldest {
            return None;
        }
        Some(
            self.changes
                .iter()
                .filter(|c| c.seq > seen)
                .cloned()
                .collect(),
        )
    }
}

pub struct Subscription {
    replay: VecDeque<Arc<Change>>,
    resync: bool,
    receiver: broadcast::Receiver<Arc<Change>>,
    closed: watch::Receiver<bool>,
}

impl Subscription {
    /// The next change. Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> Next {
        if *self.closed.borrow() {
            return Next::Closed;
        }
        if std::mem::take(&mut self.resync) {
            return Next::Resync;
        }
        if let Some(change) = self.replay.pop_front() {
            return Next::Change(change);
        }
        tokio::select! {
            _ = self.closed.wait_for(|closed| *closed) => Next::Closed,
            received = self.receiver.recv() => match received {
                Ok(change) => Next::Change(change),
                Err(broadcast::error::RecvError::Lagged(_)) => Next::Resync,
                Err(broadcast::error::RecvError::Closed) => Next::Closed,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish_n(bus: &ChangeBus, n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| {
                bus.publish(ChangeKind::TicketUpdated, &format!("t{i}"), None);
                bus.ring.lock().unwrap().next_seq - 1
            })
            .collect()
    }

    async fn seqs(sub: &mut Subscription, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for _ in 0..n {
            match sub.next().await {
                Next::Change(c) => out.push(c.seq),
                other => panic!("expected a change, got {other:?}"),
            }
        }
        out
    }

    #[tokio::test]
    async fn live_subscribers_get_every_change_in_order() {
        let bus = ChangeBus::new(8);
        let mut sub = bus.subscribe(None);
        let issued = publish_n(&bus, 3);
        assert!(issued.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(seqs(&mut sub, 3).await, issued);
    }

    #[tokio::test]
    async fn reconnecting_replays_what_was_missed_then_continues() {
        let bus = ChangeBus::new(8);
        let issued = publish_n(&bus, 4);
        let mut sub = bus.subscribe(Some(&issued[1].to_string()));
        let later = publish_n(&bus, 1);
        assert_eq!(seqs(&mut sub, 3).await, [issued[2], issued[3], later[0]]);

        // Up to date: nothing to replay, the next change comes live.
        let mut sub = bus.subscribe(Some(&later[0].to_string()));
        let more = publish_n(&bus, 1);
        assert_eq!(seqs(&mut sub, 1).await, more);
    }

    #[tokio::test]
    async fn ids_that_cannot_be_replayed_ask_for_a_resync() {
        let bus = ChangeBus::new(2);
        let issued = publish_n(&bus, 4);
        // Evicted from the ring.
        let mut sub = bus.subscribe(Some(&issued[0].to_string()));
        assert_eq!(sub.next().await, Next::Resync);
        // The oldest kept one's predecessor is still fine.
        let mut sub = bus.subscribe(Some(&issued[1].to_string()));
        assert_eq!(seqs(&mut sub, 2).await, [issued[2], issued[3]]);
        // From before this process, from the future, or not a number.
        for id in [
            "1".to_owned(),
            (issued[3] + 5).to_string(),
            "abc".to_owned(),
        ] {
            let mut sub = bus.subscribe(Some(&id));
            assert_eq!(sub.next().await, Next::Resync, "{id}");
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_to_resync() {
        let bus = ChangeBus::new(2);
        let mut sub = bus.subscribe(None);
        publish_n(&bus, 5);
        assert_eq!(sub.next().await, Next::Resync);
    }

    #[tokio::test]
    async fn closing_ends_every_subscription() {
        let bus = ChangeBus::new(4);
        let mut sub = bus.subscribe(None);
        let waiting = tokio::spawn(async move { sub.next().await });
        bus.close();
        assert_eq!(waiting.await.unwrap(), Next::Closed);
        assert_eq!(bus.subscribe(None).next().await, Next::Closed);
    }
}
