//! Outgoing mail: the [`Mailer`] trait with an SMTP transport (lettre, pooled) and an outbox
//! transport that writes `.eml` files, plus the message templates.
//!
//! Whether a given notification was already sent (replays of a durable step) is recorded by the
//! store; a mailer just delivers what it is given. An [`Email::idempotency_key`] becomes a stable
//! `Message-ID`, so a duplicate that slips through is recognisable downstream.

mod message;
pub mod outbox;
pub mod settings;
pub mod smtp;
pub mod templates;

use serde::{Deserialize, Serialize};

pub use outbox::OutboxMailer;
pub use settings::{
    MailConfigError, MailSettings, MailTransportSettings, RawMailEnv, SmtpCredentials,
    SmtpSettings, SmtpTls,
};
pub use smtp::SmtpMailer;
pub use templates::{MailContent, Templates, TicketInfo};

/// One message to send. The sender is the mailer's configured `From`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    /// Recipients: `user@example.com` or `Name <user@example.com>`.
    pub to: Vec<String>,
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part (already escaped by the templates).
    pub html: String,
    /// Stable key of this logical message (e.g. `ticket-assigned:<ticket id>`), turned into
    /// the `Message-ID`.
    pub idempotency_key: Option<String>,
}

impl Email {
    pub fn new(to: impl Into<String>, content: MailContent) -> Self {
        Email {
            to: vec![to.into()],
            subject: content.subject,
            text: content.text,
            html: content.html,
            idempotency_key: None,
        }
    }

    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("could not build the message: {0}")]
    Build(String),
    /// The server refused for good (5xx): retrying the same message will not help.
    #[error("mail server rejected the message: {0}")]
    Rejected(String),
    /// Connection, TLS, timeout or 4xx problems: worth retrying later.
    #[error("mail delivery failed: {0}")]
    Transient(String),
    #[error("could not write the message to the outbox: {0}")]
    Io(String),
}

impl MailError {
    /// `true` when retrying the same message cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            MailError::InvalidAddress { .. } | MailError::Build(_) | MailError::Rejected(_)
        )
    }
}

/// Delivers messages.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, msg: &Email) -> Result<(), MailError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_recipients_are_permanent_errors() {
        let err = message::parse_recipients(&["not an address".to_string()]).unwrap_err();
        assert!(matches!(err, MailError::InvalidAddress { .. }));
        assert!(err.is_permanent());
        assert!(message::parse_recipients(&["a@example.com".to_string()]).is_ok());
        assert!(!MailError::Transient("x".into()).is_permanent());
    }
}
