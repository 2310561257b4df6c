//! What the step calls of one request share: the memoized steps, the ids met so far, the
//! targeted step, and what the request found and ran.

use std::collections::{HashMap, HashSet};
use std::task::Waker;

use serde_json::{Map, Value};

use crate::protocol::{OutgoingOp, hash_step_id};

/// How the executor should treat the step that ran in this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StepRetry {
    /// The step succeeded (no `X-Inngest-No-Retry` header).
    Succeeded,
    Retry,
    NoRetry,
    RetryAfter(String),
}

#[derive(Debug, Clone)]
pub(crate) struct FoundStep {
    pub op: OutgoingOp,
    /// Run-type steps can be executed by the SDK; async ops are handled by Inngest.
    pub runnable: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct RanStep {
    pub op: OutgoingOp,
    pub retry: StepRetry,
}

/// Everything a step call needs to know about the current request, and what it produced.
#[derive(Debug, Default)]
pub(crate) struct StepState {
    pub(super) memo: Map<String, Value>,
    pub(super) seen: HashSet<String>,
    pub(super) next_index: HashMap<String, u32>,
    pub(super) target: Option<String>,
    pub(super) attempt: u32,
    pub(super) max_attempts: Option<u32>,
    pub found: Vec<FoundStep>,
    pub ran: Option<RanStep>,
    /// Whether new run-type steps wait for [`Hold`] instead of interrupting at once.
    pub(super) holding: bool,
    pub(super) hold: Hold,
}

/// Discovery with immediate execution in one pass: a new run-type step's future waits until
/// the handler can go no further, and then learns whether it is the one step to run now. The
/// step's closure may borrow from the handler, so it can only run inside the handler's own
/// future; without this the handler would be replayed a second time to reach it.
#[derive(Debug)]
pub(crate) enum Hold {
    /// Not decided yet; the wakers of the step futures waiting.
    Undecided(Vec<Waker>),
    /// This step (hashed id) runs; every other one interrupts.
    Run(String),
    /// Every found step interrupts, to be reported as planned.
    Stop,
}

impl StepState {
    /// The final id for a user id: the id itself the first time, then `id:1`, `id:2`, … counted
    /// over every step met in this request, memoized or not (JS `resolveStepIdCollision`).
    pub(super) fn resolve(&mut self, base: &str) -> (String, Option<u32>) {
        let hashed = hash_step_id(base);
        if !self.seen.contains(&hashed) && !self.next_index.contains_key(base) {
            self.next_index.insert(base.to_owned(), 1);
            self.seen.insert(hashed.clone());
            return (hashed, None);
        }
        let start = self.next_index.get(base).copied().unwrap_or(1);
        let mut i = start;
        loop {
            let candidate = hash_step_id(&format!("{base}:{i}"));
            if !self.seen.contains(&candidate) {
                self.next_index.insert(base.to_owned(), i + 1);
                self.seen.insert(candidate.clone());
                return (candidate, Some(i));
            }
            i += 1;
        }
    }

    pub(super) fn is_final_attempt(&self) -> bool {
        self.max_attempts.is_some_and(|max| self.attempt + 1 >= max)
    }
}

impl Default for Hold {
    fn default() -> Self {
        Self::Undecided(Vec::new())
    }
}
