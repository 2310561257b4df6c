//! The embedded Inngest executor: runs durable functions on one machine, with no other
//! process, by driving the app's own serve endpoint (`/api/inngest`) exactly as Inngest does.
//!
//! It knows functions only from the register JSON (the `functions` array of a sync body) and
//! talks to the SDK only through call requests and their responses (reference §2.3, §3, §7),
//! so it works with any SDK that speaks the wire protocol. The protocol's vocabulary is the
//! SDK's ([`inngest_axum`], the `inngest-axum` crate): its [`SigningKey`](inngest_axum::SigningKey),
//! canonical JSON, header names and [`Opcode`](inngest_axum::Opcode); the executor defines
//! none of its own.
//!
//! # Using it
//!
//! ```text
//! let store = Arc::new(SqliteRunStore::open(data_dir.join("ticketing.db")).await?);
//! let transport = Arc::new(RouterTransport::new(serve_handler.router()));  // in-process, no port
//! let executor = Executor::new(store, transport, ExecutorOptions::default());
//! executor.register("ticketing", serve_handler.function_configs(&app_url)?).await?;
//! let handle = executor.spawn();                            // background loop
//! executor.publish(vec![json!({"id": outbox_id, "name": "ticket/created", "data": {...}})]).await?;
//! ...
//! handle.shutdown().await;
//! ```
//!
//! - [`Executor::register`]`(app_id, functions)` replaces an app's functions; invalid triggers,
//!   crons and expressions are rejected here ([`RegisterError`]), never at run time.
//! - [`Executor::publish`]`(events) -> ids`: events with an id already seen are ignored.
//! - [`Executor::spawn`] / [`Executor::run_until`] run the loop; [`Executor::run_until_idle`]
//!   processes what is due now and returns (tests, CLI).
//! - Operations: [`Executor::list_runs`]`(RunFilter)`, [`Executor::get_run`] (steps, history of
//!   every attempt with timings and errors), [`Executor::rerun`], [`Executor::cancel`],
//!   [`Executor::stats`] (counters and queue depth; also reported through the `metrics` crate,
//!   see [`stats`]).
//! - [`server_api::router`] serves `POST /e/{key}` and `POST /fn/register`, the two endpoints an
//!   SDK in dev mode calls on its Inngest base URL (`step.sendEvent`, out-of-band sync);
//!   [`Executor::sync`] asks a serve endpoint to sync (`PUT`, or signed in-band with a key).
//! - [`HttpTransport`] drives a serve endpoint over the network instead, e.g. the official JS
//!   SDK; set [`ExecutorOptions::omit_fn_id`] for SDKs that checkpoint (JS v4).
//!
//! Requests are what Inngest sends: JCS-canonical body with `event`, `events`, `steps`,
//! `version` and `ctx` (`run_id`, `attempt`, `max_attempts`, `fn_id`, `step_id`, `stack`,
//! `disable_immediate_execution`, `use_api`), query `fnId`/`stepId`, headers `X-Run-ID`,
//! `X-Inngest-Step-ID`, `x-inngest-req-version`, and `X-Inngest-Signature` only when a signing
//! key is configured (embedded mode has none: the SDK runs in dev mode).
//!
//! # Guarantees
//!
//! Every state change of a run — a memoized step, the next call, a timer, a pause, a retry —
//! is one [`RunStore::commit`], written before the next step is started. Killing the process
//! at any point loses at most the answer of calls in flight; those steps run again, while a
//! step whose result was saved never does. Timers and pauses are queue items and rows with a
//! due time, so they survive restarts.
//!
//! # Layout
//!
//! - [`state`]: the pure run state machine, `apply(run, input, ctx) -> (run, actions)`.
//! - [`driver`]: the worker loop: claim, call, apply, commit.
//! - [`store`]: the [`RunStore`] port and [`MemoryStore`]; [`sqlite_store`]: [`SqliteRunStore`];
//!   [`mongo_store`]: [`MongoRunStore`].
//! - [`transport`]: [`Transport`], [`RouterTransport`], [`HttpTransport`], request building and
//!   signing. [`opcode`]: reading SDK answers. [`function`]: reading register JSON.
//! - [`expr`]: the expression subset (`event.`/`async.` comparisons); [`cron`]; [`duration`].
//!
//! Retries follow the server: `retries.attempts` (default 4) + 1 attempts per step or discovery
//! call, backoff 15 s, 30 s, 1 m, 2 m, 5 m … 2 h plus up to 30 s jitter, `Retry-After` honoured,
//! `X-Inngest-No-Retry: true` final. A run that fails emits `inngest/function.failed` (id = run
//! id) and `inngest/function.finished`, which start failure handlers like any trigger.
//!
//! Not enforced (registering them only logs a warning): `rateLimit`, `throttle`, `debounce`,
//! `batchEvents`, `idempotency`, `priority`, `singleton`. Concurrency limits are.

/// The MongoDB server of the unit tests: the workspace's MongoDB test peer.
#[cfg(test)]
#[path = "../../../tests/mongo_peer/server.rs"]
mod test_mongo;

pub mod clock;
pub mod cron;
pub mod driver;
pub mod duration;
pub mod events;
pub mod expr;
pub mod function;
pub mod mongo_store;
pub mod opcode;
pub mod server_api;
pub mod service;
pub mod sqlite_store;
pub mod state;
pub mod stats;
pub mod store;
pub mod transport;

pub use clock::{Clock, ManualClock, SystemClock};
pub use function::{FunctionDef, RegisterError};
pub use mongo_store::MongoRunStore;
pub use server_api::{SyncError, SyncOutcome};
pub use service::{
    Executor, ExecutorError, ExecutorHandle, ExecutorOptions, PublishError, ServerKind,
};
pub use sqlite_store::SqliteRunStore;
pub use state::{HistoryEntry, Outcome, RunState, RunStatus};
pub use stats::ExecutorStats;
pub use store::{MemoryStore, QueueDepth, RunFilter, RunStore, RunSummary, StoreError, Swept};
pub use transport::{HandlerTransport, HttpTransport, RouterTransport, Transport, TransportError};
