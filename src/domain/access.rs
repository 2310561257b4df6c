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
}
