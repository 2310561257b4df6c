//! The vocabulary of the service: parsed values, roles, ticket rules, triage. No I/O here.

pub mod access;
pub mod account_token;
pub mod activity;
pub mod attachment;
pub mod events;
pub mod ids;
pub mod rating;
pub mod skills;
pub mod ticket;
pub mod triage;
pub mod user;

pub use ids::{new_id, parse_id};
