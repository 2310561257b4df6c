//! Test doubles shared by the integration tests (and by end-to-end tests through the REST API):
//! a fake Gemini API, a fake OpenAI-compatible endpoint, a real SMTP peer, and MIME parsing for
//! the messages they collect; the real binary as a child process; polling for a condition and
//! free ports. Not every helper is used by every test module.
#![allow(dead_code)]

pub mod binary;
pub mod fake_gemini;
pub mod fake_inngest;
pub mod fake_openai;
pub mod mime;
pub mod served;
pub mod smtp_peer;
pub mod wait;
pub mod webdriver;

pub use served::{Listening, Served};
pub use wait::{free_port, wait_until};

/// The Python peers' launcher. Its file sits here, with the rest of the test support, but it is
/// compiled once, inside the MongoDB server module that the library's unit tests share.
pub use crate::mongo_server::python_peer;

/// A realistic ticket for triage tests.
pub fn sample_ticket() -> ticketing::ai::TicketText {
    ticketing::ai::TicketText::new(
        "Checkout page returns 500 since this morning",
        "Since 9am every customer gets an internal server error when paying. Our Postgres logs \
         show deadlocks on the orders table. This is urgent, we are losing sales.",
    )
}
