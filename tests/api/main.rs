//! Integration tests: one binary, modules by area. Every test starts the real server on
//! 127.0.0.1 with its own data directory.

mod helpers;
/// The MongoDB server of the MongoDB tests (shared with the unit tests).
#[path = "../mongo_peer/server.rs"]
mod mongo_server;
mod support;

/// The functions the SDK's JS-SDK differential suite serves, and its harness (servers, the JS
/// oracle), shared with that suite in the SDK crate; the harness names the functions `app`.
#[path = "../../crates/inngest-axum/tests/conformance/app.rs"]
mod inngest_app;
#[path = "../../crates/inngest-axum/tests/conformance/harness.rs"]
mod inngest_harness;
use inngest_app as app;

mod access;
mod accounts;
mod activity;
mod ai_gemini;
mod ai_openai;
mod attachment_contract;
mod attachments;
mod auth;
mod bad_input;
mod browser;
mod crash;
mod durability;
mod executor_durability;
mod executor_ops;
mod executor_protocol;
mod executor_runs;
mod executor_sdks;
mod executor_support;
mod fuzz;
mod hardening;
mod inngest_modes;
mod mail_delivery;
mod mongo_peer;
mod mongodb_service;
mod operations;
mod pipeline_common;
mod pipeline_failure;
mod pipeline_first_run;
mod pipeline_gemini;
mod pipeline_mail;
mod pipeline_routing;
mod pipeline_sla;
mod ratings;
mod retention;
mod runs_api;
mod runs_cli;
mod s3_peer;
mod store_contract;
mod stream;
mod ticket_sort;
mod tickets;
