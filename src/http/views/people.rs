//! Accounts, replies and files as the API shows them.

use crate::domain::user::Role;
use crate::store::{Attachment, Comment, User};
use chrono::{DateTime, Utc};
use serde::Serialize;

// An account as its owner and admins see it; never its password or token generation.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub skills: Vec<String>,
    /// Most open tickets this person should hold at once; `None` means no limit.
    pub capacity: Option<u32>,
    /// Whether the address is confirmed, or needs no confirming: accounts made while
    /// `REQUIRE_EMAIL_VERIFICATION` was off, and those made by an operator, count as verified.
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            role: user.role,
            skills: user.skills,
            capacity: user.capacity,
            email_verified: user.email_verified,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Comment)]
pub struct CommentView {
    pub id: String,
    pub ticket_id: String,
    pub author_id: String,
    pub body: String,
    pub internal: bool,
    pub created_at: DateTime<Utc>,
}

impl From<Comment> for CommentView {
    fn from(comment: Comment) -> Self {
        Self {
            id: comment.id,
            ticket_id: comment.ticket_id,
            author_id: comment.author_id,
            body: comment.body,
            internal: comment.internal,
            created_at: comment.created_at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Attachment)]
pub struct AttachmentView {
    pub id: String,
    pub ticket_id: String,
    /// For display only, never a path.
    pub filename: String,
    /// Detected from the bytes; `application/octet-stream` when unknown.
    pub content_type: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// Staff-only, hidden from the ticket's creator like internal notes.
    pub internal: bool,
    pub uploaded_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<Attachment> for AttachmentView {
    fn from(attachment: Attachment) -> Self {
        Self {
            id: attachment.id,
            ticket_id: attachment.ticket_id,
            filename: attachment.filename,
            content_type: attachment.content_type,
            size: attachment.size,
            sha256: attachment.sha256,
            internal: attachment.internal,
            uploaded_by: attachment.uploaded_by,
            created_at: attachment.created_at,
        }
    }
}
