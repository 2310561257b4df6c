//! The Inngest protocol as this service uses it: the SDK ([`inngest_axum`], in
//! `crates/inngest-axum`) re-exported, so `crate::inngest::Function` and friends read as before,
//! and the embedded executor ([`inngest_executor`], in `crates/inngest-executor`) that drives the
//! SDK's serve endpoint.

pub use inngest_axum::*;

pub use inngest_executor as executor;
