//! [`Email`] -> RFC 5322 message (multipart/alternative: plain text + HTML).

use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use sha2::{Digest, Sha256};

use super::{Email, MailError};
use crate::domain::triage::{clamp_chars, clean_line};

/// Longest subject, in characters.
const MAX_SUBJECT_CHARS: usize = 200;

pub(crate) fn parse_recipients(to: &[String]) -> Result<Vec<Mailbox>, MailError> {
    if to.is_empty() {
        return Err(MailError::InvalidAddress {
            address: String::new(),
            reason: "no recipient".into(),
        });
    }
    to.iter()
        .map(|raw| {
            raw.trim()
                .parse::<Mailbox>()
                .map_err(|e| MailError::InvalidAddress {
                    address: raw.clone(),
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// `<hash@domain>`: the same key always gives the same id.
fn message_id(key: &str, from: &Mailbox) -> String {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    format!("<{}@{}>", &digest[..32], from.email.domain())
}

pub(crate) fn build(from: &Mailbox, email: &Email) -> Result<Message, MailError> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(clamp_chars(&clean_line(&email.subject), MAX_SUBJECT_CHARS));
    for to in parse_recipients(&email.to)? {
        builder = builder.to(to);
    }
    builder = builder.message_id(
        email
            .idempotency_key
            .as_deref()
            .map(|k| message_id(k, from)),
    );
    builder
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .map_err(|e| MailError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            to: vec!["Ann <ann@example.com>".into(), "bob@example.com".into()],
            subject: "Hello\r\nBcc: evil@example.com".into(),
            text: "plain body".into(),
            html: "<p>html body</p>".into(),
            idempotency_key: Some("welcome:42".into()),
        }
    }

    #[test]
    fn builds_multipart_with_headers() {
        let from: Mailbox = "Support <support@localhost>".parse().unwrap();
        let msg = build(&from, &email()).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains("From: Support <support@localhost>"), "{raw}");
        assert!(
            raw.contains("To: Ann <ann@example.com>, bob@example.com"),
            "{raw}"
        );
        assert!(
            raw.contains("Subject: Hello Bcc: evil@example.com"),
            "{raw}"
        );
        assert!(!raw.contains("\r\nBcc:"));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("text/html"));
        assert!(raw.contains("plain body") && raw.contains("<p>html body</p>"));
        let id = message_id("welcome:42", &from);
        assert!(raw.contains(&format!("Message-ID: {id}")), "{raw}");
        assert!(id.ends_with("@localhost>"));
        assert_eq!(msg.envelope().to().len(), 2);
    }

    #[test]
    fn stable_message_ids() {
        let from: Mailbox = "a@example.com".parse().unwrap();
        assert_eq!(message_id("k", &from), message_id("k", &from));
        assert_ne!(message_id("k", &from), message_id("k2", &from));
    }

    #[test]
    fn bad_recipients() {
        let from: Mailbox = "a@example.com".parse().unwrap();
        let mut e = email();
        e.to = vec![];
        assert!(matches!(
            build(&from, &e),
            Err(MailError::InvalidAddress { .. })
        ));
        e.to = vec!["nope".into()];
        assert!(matches!(
            build(&from, &e),
            Err(MailError::InvalidAddress { .. })
        ));
    }
}
