//! `on-user-signup`: the welcome mail, or, for an address still to be confirmed
//! (`REQUIRE_EMAIL_VERIFICATION`), the mail with its verification link instead.

use super::account_links::{LinkMail, mail_key, send_link};
use super::notify::{Delivery, Recipient, send_once};
use super::{Deps, data_id, retriable};
use crate::domain::events::USER_SIGNUP;
use crate::inngest::{Ctx, FnError, Function, Step, Trigger};
use std::sync::Arc;

pub const ID: &str = "on-user-signup";

pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(ID, "Welcome a new user")
        .trigger(Trigger::event(USER_SIGNUP))
        .retries(5)
        .handler(move |ctx: Ctx, step: Step| {
            let deps = deps.clone();
            async move {
                let user_id = data_id(&ctx.event, "user_id")?;
                let key = format!(
                    "{}:welcome",
                    ctx.event.id.clone().unwrap_or_else(|| ctx.run_id.clone())
                );
                let verify_key = mail_key(&ctx, LinkMail::Verification);
                // One step decides and sends, so a replay repeats the decision it saved.
                let sent: Delivery = step
                    .run("send-welcome", || async move {
                        let Some(user) = deps.store.get_user(&user_id).await.map_err(retriable)?
                        else {
                            return Ok(Delivery::Undeliverable);
                        };
                        if !user.email_verified {
                            return send_link(&deps, &verify_key, &user, LinkMail::Verification)
                                .await;
                        }
                        let name = Some(user.name.as_str()).filter(|n| !n.is_empty());
                        let content = deps.templates.welcome(name);
                        send_once(&deps, &key, Recipient::account(&user.id), content).await
                    })
                    .await?;
                Ok::<_, FnError>(sent)
            }
        })
}
