//! Sending a mail at most once per key: a replayed or retried step finds the record and sends
//! nothing. (A crash between sending and recording can repeat one mail; it can never lose one.)
//!
//! Every mail is addressed to a person, not an address, and checked when it is sent: the
//! person must still be able to see what it says (an internal note only reaches current staff
//! who can see the ticket). Time passes between an event and its mail (retries, a backlog),
//! and a demotion or a reassignment in that time must not leak what the event was about. So
//! the person is read when the mail goes out, and the ticket is the one the sending step read
//! when it ran (not when the event happened).

use super::{Deps, retriable};
use crate::domain::access::{Disclosure, TicketOwnership, may_receive};
use crate::inngest::FnError;
use crate::mail::{Email, MailContent};
use crate::store::{StaffLoad, Ticket};

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
    /// Not sent: the person may no longer see what it says (or no longer exists).
    Withheld,
}

/// Who a mail is for, and what it is about.
#[derive(Clone, Copy, Debug)]
pub struct Recipient<'a> {
    pub user_id: &'a str,
    /// The ticket the mail is about, as the sending step read it, and how much of it the mail
    /// shows; `None` for mail about the person's own account.
    pub about: Option<(&'a Ticket, Disclosure)>,
}

impl<'a> Recipient<'a> {
    pub fn account(user_id: &'a str) -> Self {
        Self {
            user_id,
            about: None,
        }
    }

    pub fn ticket(user_id: &'a str, ticket: &'a Ticket, disclosure: Disclosure) -> Self {
        Self {
            user_id,
            about: Some((ticket, disclosure)),
        }
    }
}

/// The person's address, if they may receive this mail now.
async fn address_now(deps: &Deps, to: Recipient<'_>) -> Result<Option<String>, FnError> {
    let Some(user) = deps.store.get_user(to.user_id).await.map_err(retriable)? else {
        return Ok(None);
    };
    let Some((ticket, disclosure)) = to.about else {
        return Ok(Some(user.email));
    };
    let ownership = TicketOwnership {
        created_by: &ticket.created_by,
        assigned_to: ticket.assigned_to.as_deref(),
    };
    Ok(may_receive(&user.id, user.role, &ownership, disclosure).then_some(user.email))
}

pub async fn send_once(
    deps: &Deps,
    key: &str,
    to: Recipient<'_>,
    content: MailContent,
) -> Result<Delivery, FnError> {
    if deps.store.mail_sent(key).await.map_err(retriable)? {
        return Ok(Delivery::AlreadySent);
    }
    let Some(address) = address_now(deps, to).await? else {
        tracing::info!(
            key,
            user_id = to.user_id,
            "mail withheld: the recipient may no longer see what it says"
        );
        return Ok(Delivery::Withheld);
    };
    let subject = content.subject.clone();
    let email = Email::new(&address, content).with_idempotency_key(key);
    match deps.mailer.send(&email).await {
        Ok(()) => {
            metrics::counter!("mails_sent_total").increment(1);
            deps.store
                .record_mail(key, &address, &subject)
                .await
                .map_err(retriable)?;
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

/// The admins, for escalations and failures.
pub async fn admins(deps: &Deps) -> Result<Vec<StaffLoad>, FnError> {
    let loads = deps.store.staff_loads().await.map_err(retriable)?;
    Ok(loads
        .into_iter()
        .filter(|s| s.role == crate::domain::user::Role::Admin)
        .collect())
}
