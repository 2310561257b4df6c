//! Live updates: every committed change to a ticket, published in-process after its commit to
//! whoever follows `GET /api/stream` on this instance. Changes carry ids, never documents: what a
//! viewer may see is decided when it is sent, against the ticket and the viewer as they are then.

mod bus;
mod publishing;

pub use bus::{Change, ChangeBus, ChangeKind, Next, Subscription};
pub use publishing::Publishing;
