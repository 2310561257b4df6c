//! Header names of the Inngest protocol, lower-cased so they can be used with
//! `HeaderName::from_static`. The SDK and an executor driving it read and write the same names.

/// `t=<unix>&s=<hex>`: the HMAC of a request or response body (see [`crate::signature`]).
pub const SIGNATURE: &str = "x-inngest-signature";
/// `<language>:v<version>` of the SDK that answered; an executor treats a 2xx without it as not
/// coming from an SDK.
pub const SDK: &str = "x-inngest-sdk";
/// `true` on what an SDK sends (answers and event sends), as the official SDKs mark theirs.
pub const SDK_HANDLED: &str = "x-inngest-sdk-handled";
/// The execution version of a call: asked for by the executor, chosen by the SDK.
pub const REQ_VERSION: &str = "x-inngest-req-version";
/// The web framework the SDK is served by.
pub const FRAMEWORK: &str = "x-inngest-framework";
/// The hosting platform, when one is detected.
pub const PLATFORM: &str = "x-inngest-platform";
/// The Inngest environment (branch) the request is for.
pub const ENV: &str = "x-inngest-env";
/// `true` on an SDK answer: the failure is final, do not retry.
pub const NO_RETRY: &str = "x-inngest-no-retry";
/// Seconds or an HTTP date: retry no earlier than this.
pub const RETRY_AFTER: &str = "retry-after";
/// `dev` or `cloud`: the kind of server that sends the request.
pub const SERVER_KIND: &str = "x-inngest-server-kind";
/// The server kind the SDK expects on a register request.
pub const EXPECTED_SERVER_KIND: &str = "x-inngest-expected-server-kind";
/// How a sync is done: [`SYNC_KIND_IN_BAND`] or [`SYNC_KIND_OUT_OF_BAND`].
pub const SYNC_KIND: &str = "x-inngest-sync-kind";
/// Seed from which the event API derives ids for events sent without one, so that a retried
/// send is deduplicated.
pub const EVENT_ID_SEED: &str = "x-inngest-event-id-seed";
/// The run a call request belongs to.
pub const RUN_ID: &str = "x-run-id";
/// The hashed id of the step a call request targets.
pub const STEP_ID: &str = "x-inngest-step-id";
/// Asks the SDK to report steps rather than run them in the same request.
pub const FORCE_STEP_PLAN: &str = "x-inngest-force-step-plan";
/// A request id, echoed for tracing.
pub const REQUEST_ID: &str = "x-request-id";
/// W3C trace context, passed through.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace state, passed through.
pub const TRACESTATE: &str = "tracestate";

/// Values of [`SYNC_KIND`]. The spec text says `in-band`; every server uses underscores.
pub const SYNC_KIND_IN_BAND: &str = "in_band";
/// Value of [`SYNC_KIND`] for a sync through `POST /fn/register`.
pub const SYNC_KIND_OUT_OF_BAND: &str = "out_of_band";

/// The execution version this SDK speaks (`X-Inngest-Req-Version`).
pub const EXECUTION_VERSION: &str = "2";
