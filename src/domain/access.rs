//! Who may see what. Handlers turn "not visible" into a 404 so existence never leaks.

use super::activity::Activity;
use super::user::Role;

/// The facts about a ticket that visibility depends on.
pub struct TicketOwnership<'a> {
    pub created_by: &'a str,
    pub assigned_to: Option<&'a str>,
}

pub fn can_view(user_id: &str, role: Role, ticket: &TicketOwnership<'_>) -> bool {
    match role {
        Role::Admin => true,
        Role::Moderator => ticket.assigned_to == Some(user_id) || ticket.created_by == user_id,
        Role::User => ticket.created_by == user_id,
    }
}

/// Which tickets a caller may list: the rule of [`can_view`] as a filter the stores apply.
/// Computed from the role, never from the request.
#[derive(Clone, Debug, PartialEq)]
pub enum Visibility {
    All,
    CreatedBy(String),
    /// Moderators: assigned to them, plus any they opened themselves.
    Staff(String),
}

pub fn listable(user_id: &str, role: Role) -> Visibility {
    match role {
        Role::Admin => Visibility::All,
        Role::Moderator => Visibility::Staff(user_id.to_owned()),
        Role::User => Visibility::CreatedBy(user_id.to_owned()),
    }
}

/// Internal notes are for staff who can see the ticket.
pub fn can_see_internal(role: Role) -> bool {
    role.is_staff()
}

/// Only the ticket's creator rates it; others who can see it may not.
pub fn can_rate(user_id: &str, ticket: &TicketOwnership<'_>) -> bool {
    ticket.created_by == user_id
}

/// What `role` may see of an entry of a ticket it can see: internal notes and routing reasons
/// stay with staff. `None` hides the entry.
pub fn visible_activity(role: Role, activity: Activity) -> Option<Activity> {
    if can_see_internal(role) {
        return Some(activity);
    }
    match activity {
        Activity::Commented { internal: true, .. } => None,
        Activity::Assigned { assignee_id, .. } => Some(Activity::Assigned {
            assignee_id,
            reason: None,
        }),
        other => Some(other),
    }
}

/// How much of a ticket a viewer gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketView {
    /// What a help desk shows a customer: status, priority, category, who works on it, public
    /// replies; no triage internals and no routing reason.
    Customer,
    /// Everything.
    Staff,
}

/// Staff (moderators and admins) see everything, on tickets they opened themselves too; the
/// only other person who sees a ticket, its creator, gets the customer view.
pub fn ticket_view(role: Role) -> TicketView {
    if role.is_staff() {
        TicketView::Staff
    } else {
        TicketView::Customer
    }
}

/// What a notification about a ticket reveals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disclosure {
    /// Fit for the ticket's creator: status changes, public replies.
    Customer,
    /// For staff only: internal notes, triage, routing reasons, escalations.
    Staff,
}

/// Whether a mail with this content may go to this person now. Checked when the mail is sent,
/// not when the event happened: a person demoted meanwhile, or no longer assigned, gets nothing.
pub fn may_receive(
    user_id: &str,
    role: Role,
    ticket: &TicketOwnership<'_>,
    disclosure: Disclosure,
) -> bool {
    can_view(user_id, role, ticket)
        && match disclosure {
            Disclosure::Customer => true,
            Disclosure::Staff => role.is_staff(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_by_role() {
        let t = TicketOwnership {
            created_by: "u1",
            assigned_to: Some("m1"),
        };
        assert!(can_view("u1", Role::User, &t));
        assert!(!can_view("u2", Role::User, &t));
        assert!(can_view("m1", Role::Moderator, &t));
        assert!(!can_view("m2", Role::Moderator, &t));
        assert!(can_view("a9", Role::Admin, &t));
        assert!(!can_see_internal(Role::User));
        assert!(can_see_internal(Role::Moderator));
    }

    #[test]
    fn listing_filters_by_the_rule_of_viewing() {
        let t = TicketOwnership {
            created_by: "u1",
            assigned_to: Some("m1"),
        };
        let lists = |visibility: Visibility| match visibility {
            Visibility::All => true,
            Visibility::CreatedBy(id) => t.created_by == id,
            Visibility::Staff(id) => t.created_by == id || t.assigned_to == Some(id.as_str()),
        };
        for (user, role) in [
            ("u1", Role::User),
            ("u2", Role::User),
            ("m1", Role::Moderator),
            ("m2", Role::Moderator),
            ("u1", Role::Moderator),
            ("a1", Role::Admin),
        ] {
            assert_eq!(
                lists(listable(user, role)),
                can_view(user, role, &t),
                "{user} as {role:?}"
            );
        }
    }

    #[test]
    fn creators_see_no_internal_notes_or_routing_reasons() {
        let note = Activity::Commented {
            comment_id: "c1".into(),
            internal: true,
        };
        let reply = Activity::Commented {
            comment_id: "c2".into(),
            internal: false,
        };
        let assigned = Activity::Assigned {
            assignee_id: Some("m1".into()),
            reason: Some("skills match".into()),
        };
        assert_eq!(visible_activity(Role::User, note.clone()), None);
        assert_eq!(visible_activity(Role::User, reply.clone()), Some(reply));
        assert_eq!(
            visible_activity(Role::User, assigned.clone()),
            Some(Activity::Assigned {
                assignee_id: Some("m1".into()),
                reason: None
            })
        );
        for staff in [Role::Moderator, Role::Admin] {
            assert_eq!(visible_activity(staff, note.clone()), Some(note.clone()));
            assert_eq!(
                visible_activity(staff, assigned.clone()),
                Some(assigned.clone())
            );
        }
    }

    #[test]
    fn only_the_creator_rates() {
        let t = TicketOwnership {
            created_by: "u1",
            assigned_to: Some("m1"),
        };
        assert!(can_rate("u1", &t));
        assert!(!can_rate("m1", &t));
    }

    #[test]
    fn the_creator_gets_the_customer_view_and_staff_everything() {
        assert_eq!(ticket_view(Role::User), TicketView::Customer);
        assert_eq!(ticket_view(Role::Moderator), TicketView::Staff);
        assert_eq!(ticket_view(Role::Admin), TicketView::Staff);
    }

    #[test]
    fn mail_goes_only_to_people_who_may_see_what_it_says() {
        let t = TicketOwnership {
            created_by: "u1",
            assigned_to: Some("m1"),
        };
        assert!(may_receive("u1", Role::User, &t, Disclosure::Customer));
        assert!(!may_receive("u1", Role::User, &t, Disclosure::Staff));
        assert!(may_receive("m1", Role::Moderator, &t, Disclosure::Staff));
        // Demoted, still assigned: sees nothing of the ticket any more.
        assert!(!may_receive("m1", Role::User, &t, Disclosure::Customer));
        assert!(!may_receive("m2", Role::Moderator, &t, Disclosure::Staff));
        assert!(may_receive("a1", Role::Admin, &t, Disclosure::Staff));
    }
}
