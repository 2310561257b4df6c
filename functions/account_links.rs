//! `on-account-request`: mails one-time account links — a password reset, a new verification
//! link, or word to an address's owner that someone tried to sign up with it.
//!
//! The token is made inside the step that mails it: its hash goes to the store, the token itself
//! only into the message, and the step returns a `Delivery`. So neither the event, the outbox,
//! the step's saved output (here or at Inngest) nor the store ever holds a usable token. A retry
//! after a failed send makes a new token; the unsent one's hash just expires.

use super::notify::{Delivery, Recipient, send_once};
use super::{Deps, data_id, retriable};
use crate::domain::account_token::{RawToken, TokenPurpose};
use crate::domain::events::{
    USER_PASSWORD_RESET_REQUESTED, USER_SIGNUP_ATTEMPTED, USER_VERIFICATION_REQUESTED,
};
use crate::inngest::{Ctx, FnError, Function, Step, Trigger};
use crate::store::{NewAccountToken, User};
use std::sync::Arc;

pub const ID: &str = "on-account-request";

/// Which mail to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMail {
    PasswordReset,
    Verification,
    SignupAttempt,
}

impl LinkMail {
    fn for_event(name: &str) -> Option<Self> {
        match name {
            USER_PASSWORD_RESET_REQUESTED => Some(Self::PasswordReset),
            USER_VERIFICATION_REQUESTED => Some(Self::Verification),
            USER_SIGNUP_ATTEMPTED => Some(Self::SignupAttempt),
            _ => None,
        }
    }

    fn key_suffix(self) -> &'static str {
        match self {
            Self::PasswordReset => "password-reset",
            Self::Verification => "verify",
            Self::SignupAttempt => "signup-attempt",
        }
    }
}

pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(ID, "Mail account links")
        .trigger(Trigger::event(USER_PASSWORD_RESET_REQUESTED))
        .trigger(Trigger::event(USER_VERIFICATION_REQUESTED))
        .trigger(Trigger::event(USER_SIGNUP_ATTEMPTED))
        .retries(5)
        .handler(move |ctx: Ctx, step: Step| {
            let deps = deps.clone();
            async move {
                let mail = LinkMail::for_event(&ctx.event.name).ok_or_else(|| {
                    FnError::non_retriable(format!("unexpected event {}", ctx.event.name))
                })?;
                let user_id = data_id(&ctx.event, "user_id")?;
                let key = mail_key(&ctx, mail);
                let sent: Delivery = step
                    .run("send-link", || async move {
                        let Some(user) = deps.store.get_user(&user_id).await.map_err(retriable)?
                        else {
                            return Ok(Delivery::Undeliverable);
                        };
                        send_link(&deps, &key, &user, mail).await
                    })
                    .await?;
                Ok::<_, FnError>(sent)
            }
        })
}

/// The idempotency key of the mail an event asks for.
pub(super) fn mail_key(ctx: &Ctx, mail: LinkMail) -> String {
    format!(
        "{}:{}",
        ctx.event.id.clone().unwrap_or_else(|| ctx.run_id.clone()),
        mail.key_suffix()
    )
}

/// Makes a token, keeps its hash, and mails the link, once per `key`.
pub(super) async fn send_link(
    deps: &Deps,
    key: &str,
    user: &User,
    mail: LinkMail,
) -> Result<Delivery, FnError> {
    // Checked before a token is made, so a replay leaves no stray live link behind.
    if deps.store.mail_sent(key).await.map_err(retriable)? {
        return Ok(Delivery::AlreadySent);
    }
    if mail == LinkMail::Verification && user.email_verified {
        return Ok(Delivery::NotNeeded);
    }
    let (purpose, valid_for) = match mail {
        LinkMail::PasswordReset | LinkMail::SignupAttempt => (
            TokenPurpose::PasswordReset,
            deps.accounts.password_reset_ttl,
        ),
        LinkMail::Verification => (
            TokenPurpose::EmailVerification,
            deps.accounts.email_verification_ttl,
        ),
    };
    let (token, hash) = RawToken::generate();
    let expires_at = chrono::Utc::now()
        + chrono::Duration::from_std(valid_for)
            .map_err(|e| FnError::non_retriable(e.to_string()))?;
    deps.store
        .create_account_token(NewAccountToken {
            hash,
            user_id: user.id.clone(),
            purpose,
            expires_at,
        })
        .await
        .map_err(retriable)?;
    let name = Some(user.name.as_str()).filter(|n| !n.is_empty());
    let t = &deps.templates;
    let content = match mail {
        LinkMail::PasswordReset => t.password_reset(name, &t.reset_url(token.expose()), valid_for),
        LinkMail::Verification => t.verify_email(name, &t.verify_url(token.expose()), valid_for),
        LinkMail::SignupAttempt => {
            t.signup_attempted(name, &t.reset_url(token.expose()), valid_for)
        }
    };
    send_once(deps, key, Recipient::account(&user.id), content).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_names_its_mail() {
        assert_eq!(
            LinkMail::for_event("user/password-reset-requested"),
            Some(LinkMail::PasswordReset)
        );
        assert_eq!(
            LinkMail::for_event("user/verification-requested"),
            Some(LinkMail::Verification)
        );
        assert_eq!(
            LinkMail::for_event("user/signup-attempted"),
            Some(LinkMail::SignupAttempt)
        );
        assert_eq!(LinkMail::for_event("user/signup"), None);
    }
}
