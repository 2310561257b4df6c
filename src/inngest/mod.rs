//! An Inngest SDK for axum 0.8: serve endpoint, step tool and event client, wire-compatible with
//! the official SDKs. It knows nothing about this application and could be its own crate.
//!
//! # Pieces
//! - [`InngestSettings`]: every `INNGEST_*` variable resolved as the JS SDK does
//!   ([`InngestSettings::from_lookup`] takes `std::env::var` or a test map; [`Mode`] is dev or
//!   cloud; [`InngestSettings::validate`] reports half-configured setups as [`SettingsError`]).
//! - [`Function`]: `Function::new(id, name)` returns a [`FunctionBuilder`] for triggers
//!   ([`Trigger`]), retries, flow control ([`Concurrency`], [`Throttle`], [`RateLimit`],
//!   [`Debounce`], [`Batch`], [`Cancel`], [`Timeouts`], [`Singleton`], idempotency, priority)
//!   and an optional failure handler; `.handler(|ctx: Ctx, step: Step| async move { … })`
//!   finishes it. A handler returns `Result<T: Serialize, FnError>`.
//! - [`Step`]: `run` (typed, memoized by hashed id), `sleep`, `sleep_until`, `wait_for_event`
//!   ([`WaitForEvent`], `None` on timeout), `send_event`, `invoke` ([`Invoke`]) and `parallel`.
//!   An unmemoized step yields `Err(FnError::Interrupt(_))`; propagate it with `?`.
//! - [`FnError`]: retriable (any `std::error::Error` converts), `NonRetriable`, `RetryAfter`,
//!   and [`StepError`] (a memoized step failure raised back into the handler).
//! - [`ServeHandler`]: `ServeHandler::new(app_id, settings, functions)`; `.router()` serves
//!   GET/PUT/POST at `/api/inngest`; `.function_configs(url)` is the register `functions` array;
//!   `.sync(url)` registers out of band; `.handle(…)` answers one request without a socket.
//! - [`EventClient`]: `EventClient::new(&settings).send(&[Event])` returns the event ids or a
//!   [`SendError`].
//! - [`signature`]: signing and verification with an injectable [`Clock`].
//!
//! ```no_run
//! use ticketing::inngest::{Ctx, FnError, Function, InngestSettings, ServeHandler, Step, Trigger};
//! use std::time::Duration;
//!
//! let hello = Function::new("hello", "Say hello")
//!     .trigger(Trigger::event("app/hello"))
//!     .retries(2)
//!     .handler(|ctx: Ctx, step: Step| async move {
//!         let name: String = step
//!             .run("load", || async move { Ok(ctx.event.data["name"].to_string()) })
//!             .await?;
//!         step.sleep("pause", Duration::from_secs(60)).await?;
//!         Ok::<_, FnError>(serde_json::json!({ "hello": name }))
//!     });
//! let settings = InngestSettings::from_lookup(|k| std::env::var(k).ok());
//! let router = ServeHandler::new("my-app", settings, vec![hello]).router();
//! # let _ = router;
//! ```

pub mod client;
pub mod error;
pub mod execution;
pub mod executor;
pub mod function;
pub mod headers;
pub mod protocol;
pub mod serve;
pub mod settings;
pub mod signature;
pub mod step;

pub use client::{EventClient, SendError};
pub use error::{FnError, Interrupt, RetryAfter, StepError};
pub use execution::{CallOutcome, Retriability};
pub use function::{
    Batch, Cancel, Concurrency, ConcurrencyScope, Ctx, Debounce, Function, FunctionBuilder,
    RateLimit, Singleton, SingletonMode, Throttle, Timeouts, Trigger,
};
pub use protocol::{Event, Opcode, OutgoingOp};
pub use serve::{ServeHandler, SyncError, SyncReport};
pub use settings::{InngestSettings, Mode, SettingsError};
pub use signature::{Clock, SigningKey};
pub use step::{Invoke, Step, WaitForEvent};

/// Version of this SDK.
pub const SDK_VERSION: &str = "0.1.0";
/// Language reported in introspection.
pub const SDK_LANGUAGE: &str = "rust";
/// `<language>:v<version>`, the same in the `X-Inngest-SDK` header and the register body.
pub const SDK_IDENT: &str = "rust:v0.1.0";
/// Reported as `X-Inngest-Framework`.
pub const FRAMEWORK: &str = "axum";
