//! Who may see what. Handlers turn "not visible" into a 404 so existence never leaks.

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
}
