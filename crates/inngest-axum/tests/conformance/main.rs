//! The SDK against the official JS SDK: the same functions (`app`) served by this crate and by
//! the JS oracle in `tests/js-oracle` (`harness`), compared request by request (`conformance`),
//! and the serve endpoint's own golden exchanges and edge cases (`serve`). Needs node and npm.

mod app;
mod conformance;
mod harness;
mod serve;
