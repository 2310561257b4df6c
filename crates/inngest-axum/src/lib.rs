#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod client;
pub mod error;
pub mod execution;
pub mod function;
pub mod headers;
pub mod protocol;
pub mod serve;
pub mod settings;
pub mod signature;
pub mod step;

pub use client::{EventClient, SendError, install_crypto_provider};
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
