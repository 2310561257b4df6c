//! Header names of the Inngest protocol, lower-cased so they can be used with
//! `HeaderName::from_static`.

pub const SIGNATURE: &str = "x-inngest-signature";
pub const SDK: &str = "x-inngest-sdk";
pub const SDK_HANDLED: &str = "x-inngest-sdk-handled";
pub const REQ_VERSION: &str = "x-inngest-req-version";
pub const FRAMEWORK: &str = "x-inngest-framework";
pub const PLATFORM: &str = "x-inngest-platform";
pub const ENV: &str = "x-inngest-env";
pub const NO_RETRY: &str = "x-inngest-no-retry";
pub const RETRY_AFTER: &str = "retry-after";
pub const SERVER_KIND: &str = "x-inngest-server-kind";
pub const EXPECTED_SERVER_KIND: &str = "x-inngest-expected-server-kind";
pub const SYNC_KIND: &str = "x-inngest-sync-kind";
pub const EVENT_ID_SEED: &str = "x-inngest-event-id-seed";
pub const RUN_ID: &str = "x-run-id";
pub const STEP_ID: &str = "x-inngest-step-id";
pub const FORCE_STEP_PLAN: &str = "x-inngest-force-step-plan";
pub const REQUEST_ID: &str = "x-request-id";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// Values of [`SYNC_KIND`]. The spec text says `in-band`; every server uses underscores.
pub const SYNC_KIND_IN_BAND: &str = "in_band";
pub const SYNC_KIND_OUT_OF_BAND: &str = "out_of_band";

/// The execution version this SDK speaks (`X-Inngest-Req-Version`).
pub const EXECUTION_VERSION: &str = "2";
