//! Leases of the SQLite store, kept in memory.
//!
//! A lease says which worker owns a queue item and until when; it exists so that an item whose
//! worker died is taken again. Writing it to the file cost a transaction per claim, and bought
//! nothing: the file has one executor (each one drops every lease when it starts, see
//! [`crate::Executor::spawn`]), and after a crash the leases would be dropped anyway. The items
//! themselves, and everything a step's commit writes, stay in the file as before.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::super::store::{Lease, Slot};

#[derive(Debug)]
struct Held {
    token: String,
    /// Epoch milliseconds.
    until: i64,
    due_at: i64,
    slots: Vec<Slot>,
}

/// The leased items of one store, by item id.
#[derive(Debug, Default)]
pub(super) struct Leases(Mutex<HashMap<String, Held>>);

/// The table, locked for one claim.
pub(super) struct Claiming<'a>(MutexGuard<'a, HashMap<String, Held>>);

impl Leases {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the table for a claim, forgetting leases expired at `now`: their items can be
    /// taken again, and their holders' commits fail with a lost lease.
    pub(super) fn claiming(&self, now: i64) -> Claiming<'_> {
        let mut held = self.lock();
        held.retain(|_, h| h.until > now);
        Claiming(held)
    }

    /// Whether `lease` is the item's current lease.
    pub(super) fn holds(&self, lease: &Lease) -> bool {
        self.lock()
            .get(&lease.item_id)
            .is_some_and(|h| h.token == lease.token)
    }

    /// Forgets `lease` once its item is done (or gone), unless the item was leased again.
    pub(super) fn release(&self, lease: &Lease) {
        let mut held = self.lock();
        if held
            .get(&lease.item_id)
            .is_some_and(|h| h.token == lease.token)
        {
            held.remove(&lease.item_id);
        }
    }

    /// Leases an item its committer keeps (see [`crate::RunStore::commit_keeping`]). Called
    /// inside the commit's transaction, so no claim can see the item before it is leased.
    pub(super) fn keep(&self, item_id: &str, until: i64, due_at: i64, slots: Vec<Slot>) -> Lease {
        insert(&mut self.lock(), item_id, until, due_at, slots)
    }

    /// Drops the lease of an item that was never committed.
    pub(super) fn forget(&self, item_id: &str) {
        self.lock().remove(item_id);
    }

    pub(super) fn clear(&self) -> u64 {
        let mut held = self.lock();
        let n = held.len() as u64;
        held.clear();
        n
    }

    /// The leased items (those still leased at `now`, if given), and when the first of them
    /// becomes claimable again: its lease's expiry, or its due time if later.
    pub(super) fn snapshot(&self, now: Option<i64>) -> (Vec<String>, Option<i64>) {
        let held = self.lock();
        let live = held
            .iter()
            .filter(|(_, h)| now.is_none_or(|now| h.until > now));
        let ids = live.clone().map(|(id, _)| id.clone()).collect();
        let wake = live.map(|(_, h)| h.until.max(h.due_at)).min();
        (ids, wake)
    }
}

impl Claiming<'_> {
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn is_leased(&self, item_id: &str) -> bool {
        self.0.contains_key(item_id)
    }

    /// Every slot the leased items occupy.
    pub(super) fn slots(&self) -> Vec<Slot> {
        self.0
            .values()
            .flat_map(|h| h.slots.iter().cloned())
            .collect()
    }

    pub(super) fn lease(
        &mut self,
        item_id: &str,
        until: i64,
        due_at: i64,
        slots: Vec<Slot>,
    ) -> Lease {
        insert(&mut self.0, item_id, until, due_at, slots)
    }
}

fn insert(
    held: &mut HashMap<String, Held>,
    item_id: &str,
    until: i64,
    due_at: i64,
    slots: Vec<Slot>,
) -> Lease {
    let token = uuid::Uuid::now_v7().to_string();
    held.insert(
        item_id.to_owned(),
        Held {
            token: token.clone(),
            until,
            due_at,
            slots,
        },
    );
    Lease {
        item_id: item_id.to_owned(),
        token,
    }
}
