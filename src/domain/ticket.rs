//! Tickets: their parsed fields, status, priority, and the one function that decides which
//! status changes each role may make.

use super::user::Role;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketParseError {
    #[error("title must be between {min} and {max} characters")]
    TitleLength { min: usize, max: usize },
    #[error("description must be between {min} and {max} characters")]
    DescriptionLength { min: usize, max: usize },
    #[error("comment must be between 1 and {max} characters")]
    CommentLength { max: usize },
}

fn clean(raw: &str) -> String {
    // Control characters other than newlines and tabs only ever hide content from the reader.
    raw.trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub const MIN: usize = 3;
    pub const MAX: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, TicketParseError> {
        let t: String = clean(raw).replace(['\n', '\t'], " ");
        let n = t.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&n) {
            return Err(TicketParseError::TitleLength {
                min: Self::MIN,
                max: Self::MAX,
            });
        }
        Ok(Self(t))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub const MIN: usize = 1;
    pub const MAX: usize = 20_000;

    pub fn parse(raw: &str) -> Result<Self, TicketParseError> {
        let d = clean(raw);
        let n = d.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&n) {
            return Err(TicketParseError::DescriptionLength {
                min: Self::MIN,
                max: Self::MAX,
            });
        }
        Ok(Self(d))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

pub fn parse_comment_body(raw: &str) -> Result<String, TicketParseError> {
    const MAX: usize = 20_000;
    let body = clean(raw);
    let n = body.chars().count();
    if n == 0 || n > MAX {
        return Err(TicketParseError::CommentLength { max: MAX });
    }
    Ok(body)
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// `open` -> `in_progress` -> `resolved` -> `closed`, and back to `open` on reopen.
    TicketStatus {
        Open => "open",
        InProgress => "in_progress",
        Resolved => "resolved",
        Closed => "closed",
    }
);

pub use super::triage::{Category, Priority};

impl Category {
    /// Exact parse of the stored form.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw)
    }
}

string_enum!(
    /// `fallback` means the rules engine triaged the ticket after the AI failed.
    TriageStatus { Pending => "pending", Done => "done", Fallback => "fallback", Failed => "failed" }
);

impl Priority {
    /// Exact parse of the stored form.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    /// One step up, for SLA escalation.
    pub fn raised(self) -> Self {
        match self {
            Priority::Low => Priority::Medium,
            Priority::Medium | Priority::High => Priority::High,
        }
    }
}

/// How the actor relates to the ticket; status rules depend on it, not only on the role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub role: Role,
    pub is_creator: bool,
    pub is_assignee: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransitionError {
    #[error("you may not change this ticket's status to {to}")]
    NotAllowed { to: TicketStatus },
    #[error("a ticket cannot go from {from} to {to}")]
    Invalid {
        from: TicketStatus,
        to: TicketStatus,
    },
}

impl TicketStatus {
    /// Decides a status change. Same-status requests are accepted as no-ops by the caller.
    ///
    /// - creators close their ticket (from any state) and reopen it once resolved or closed;
    /// - the assigned moderator starts work, resolves, and may take a resolved ticket back;
    /// - admins may make any change.
    pub fn transition(self, to: TicketStatus, by: Actor) -> Result<TicketStatus, TransitionError> {
        use TicketStatus::*;
        if by.role == Role::Admin {
            return Ok(to);
        }
        let by_assignee = by.role == Role::Moderator && by.is_assignee;
        let allowed_by_role = match to {
            Closed | Open => by.is_creator || (by_assignee && to == Open && self == InProgress),
            InProgress | Resolved => by_assignee,
        };
        if !allowed_by_role {
            return Err(TransitionError::NotAllowed { to });
        }
        let valid = match (self, to) {
            (Open | InProgress | Resolved, Closed) => true,
            (Resolved | Closed, Open) => true,
            (InProgress, Open) => by_assignee,
            (Open | Resolved, InProgress) => true,
            (Open | InProgress, Resolved) => true,
            _ => false,
        };
        if valid {
            Ok(to)
        } else {
            Err(TransitionError::Invalid { from: self, to })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketStatus::*;

    const CREATOR: Actor = Actor {
        role: Role::User,
        is_creator: true,
        is_assignee: false,
    };
    const STRANGER: Actor = Actor {
        role: Role::User,
        is_creator: false,
        is_assignee: false,
    };
    const ASSIGNEE: Actor = Actor {
        role: Role::Moderator,
        is_creator: false,
        is_assignee: true,
    };
    const OTHER_MOD: Actor = Actor {
        role: Role::Moderator,
        is_creator: false,
        is_assignee: false,
    };
    const ADMIN: Actor = Actor {
        role: Role::Admin,
        is_creator: false,
        is_assignee: false,
    };

    #[test]
    fn creators_close_and_reopen_only() {
        assert_eq!(Open.transition(Closed, CREATOR), Ok(Closed));
        assert_eq!(Resolved.transition(Open, CREATOR), Ok(Open));
        assert_eq!(Closed.transition(Open, CREATOR), Ok(Open));
        assert!(matches!(
            Open.transition(Resolved, CREATOR),
            Err(TransitionError::NotAllowed { .. })
        ));
        assert!(matches!(
            Open.transition(InProgress, CREATOR),
            Err(TransitionError::NotAllowed { .. })
        ));
        assert!(matches!(
            InProgress.transition(Open, CREATOR),
            Err(TransitionError::Invalid { .. })
        ));
    }

    #[test]
    fn assignee_works_the_ticket() {
        assert_eq!(Open.transition(InProgress, ASSIGNEE), Ok(InProgress));
        assert_eq!(InProgress.transition(Resolved, ASSIGNEE), Ok(Resolved));
        assert_eq!(Resolved.transition(InProgress, ASSIGNEE), Ok(InProgress));
        assert!(matches!(
            Closed.transition(InProgress, ASSIGNEE),
            Err(TransitionError::Invalid { .. })
        ));
        assert!(Open.transition(Closed, ASSIGNEE).is_err());
        assert!(Open.transition(InProgress, OTHER_MOD).is_err());
    }

    #[test]
    fn strangers_change_nothing_and_admins_everything() {
        for from in TicketStatus::ALL {
            for to in TicketStatus::ALL {
                assert!(from.transition(*to, STRANGER).is_err());
                assert_eq!(from.transition(*to, ADMIN), Ok(*to));
            }
        }
    }

    #[test]
    fn titles_and_descriptions_are_bounded() {
        assert!(Title::parse("  ab ").is_err());
        assert_eq!(
            Title::parse(" Login\nbroken ").unwrap().into_inner(),
            "Login broken"
        );
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert!(Description::parse("   ").is_err());
        assert_eq!(
            Description::parse("a\u{7}b\nc").unwrap().into_inner(),
            "ab\nc"
        );
    }

    #[test]
    fn priority_escalates_one_step() {
        assert_eq!(Priority::Low.raised(), Priority::Medium);
        assert_eq!(Priority::High.raised(), Priority::High);
    }
}
