//! `ticketing`: an AI-powered support-ticket service.
//!
//! Data flows one way: `http` -> `domain` -> `store`, and the store's outbox -> `inngest` ->
//! durable functions -> (ai, routing, mail, store).

pub mod ai;
pub mod app;
pub mod attachments;
pub mod auth;
pub mod config;
pub mod domain;
pub mod durable;
#[path = "../functions/mod.rs"]
pub mod functions;
pub mod http;
pub mod inngest;
pub mod live;
pub mod mail;
pub mod memory;
pub mod password_hashing;
pub mod private_fs;
pub mod relay;
pub mod routing;
pub mod runs;
pub mod store;
pub mod telemetry;
pub mod tls;

/// The MongoDB server of the unit tests (shared with the integration tests).
#[cfg(test)]
#[path = "../tests/mongo_peer/server.rs"]
pub(crate) mod test_mongo;

pub use app::App;
pub use config::Config;
