//! What the API answers with: response types built from store records, so a record can change
//! without changing the API. Schema names stay those of the document (`#[schema(as = …)]`), and
//! the types carry no doc comments of their own where the document has no description.

mod people;
mod stats;
mod tickets;

pub use people::{AttachmentView, CommentView, UserView};
pub use stats::StatsView;
pub use tickets::{RatingView, TicketBody};
