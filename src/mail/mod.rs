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

use std::sync::Mutex;

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

/// Keeps messages in memory; for tests and for running without any delivery.
#[derive(Debug, Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Email>>,
}

impl MemoryMailer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything sent so far, oldest first.
    pub fn sent(&self) -> Vec<Email> {
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[async_trait::async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, msg: &Email) -> Result<(), MailError> {
        // Same validation as the real transports, so tests catch bad addresses.
        message::parse_recipients(&msg.to)?;
        self.sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(msg.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_mailer_records_and_validates() {
        let m = MemoryMailer::new();
        let content = MailContent {
            subject: "s".into(),
            text: "t".into(),
            html: "<p>t</p>".into(),
        };
        m.send(&Email::new("a@example.com", content.clone()))
            .await
            .unwrap();
        let err = m
            .send(&Email::new("not an address", content))
            .await
            .unwrap_err();
        assert!(matches!(err, MailError::InvalidAddress { .. }));
        assert!(err.is_permanent());
        assert_eq!(m.sent().len(), 1);
        assert_eq!(m.sent()[0].to, vec!["a@example.com"]);
        assert!(!MailError::Transient("x".into()).is_permanent());
    }
}
