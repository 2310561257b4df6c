//! The vocabulary of the service: parsed values, roles, ticket rules. No I/O here.

pub mod access;
pub mod events;
pub mod ids;
pub mod ticket;
pub mod user;

pub use ids::{new_id, parse_id};
