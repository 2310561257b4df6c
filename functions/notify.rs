//! Sending a mail at most once per key: a replayed or retried step finds the record and sends
//! nothing. (A crash between sending and recording can repeat one mail; it can never lose one.)

use super::Deps;
use crate::inngest::FnError;
use crate::mail::{Email, MailContent};

/// What happened to one notification, small enough for step state.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Sent,
    AlreadySent,
    /// The address was refused for good; retrying cannot help.
    Undeliverable,
    /// Nothing to send any more (an address confirmed before its new link went out).
    NotNeeded,
}

pub async fn send_once(
    deps: &Deps,
    key: &str,
    to: &str,
    content: MailContent,
) -> Result<Delivery, FnError> {
    if deps
        .store
        .mail_sent(key)
        .await
        .map_err(|e| FnError::retriable(e.to_string()))?
    {
        return Ok(Delivery::AlreadySent);
    }
    let subject = content.subject.clone();
    let email = Email::new(to, content).with_idempotency_key(key);
    match deps.mailer.send(&email).await {
        Ok(()) => {
            metrics::counter!("mails_sent_total").increment(1);
            deps.store
                .record_mail(key, to, &subject)
                .await
                .map_err(|e| FnError::retriable(e.to_string()))?;
            Ok(Delivery::Sent)
        }
        Err(e) if e.is_permanent() => {
            metrics::counter!("mails_failed_total", "kind" => "permanent").increment(1);
            tracing::warn!(error = %e, key, "mail refused for good; not retrying");
            Ok(Delivery::Undeliverable)
        }
        Err(e) => {
            metrics::counter!("mails_failed_total", "kind" => "transient").increment(1);
            Err(FnError::retriable(format!("sending mail failed: {e}")))
        }
    }
}

/// Admins' e-mail addresses, for escalations and failures.
pub async fn admin_emails(deps: &Deps) -> Result<Vec<String>, FnError> {
    let loads = deps
        .store
        .staff_loads()
        .await
        .map_err(|e| FnError::retriable(e.to_string()))?;
    Ok(loads
        .into_iter()
        .filter(|s| s.role == crate::domain::user::Role::Admin)
        .map(|s| s.email)
        .collect())
}
