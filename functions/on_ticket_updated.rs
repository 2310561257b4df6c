//! `on-ticket-updated`: tells the people involved about status changes, reassignments and
//! replies. Nobody is told about their own action.

use super::notify::{Delivery, Recipient, send_once};
use super::{Deps, data_id, retriable};
use crate::domain::access::Disclosure;
use crate::domain::events::{TICKET_COMMENTED, TICKET_UPDATED};
use crate::domain::user::display_name;
use crate::inngest::{Ctx, FnError, Function, Step, Trigger};
use crate::mail::{MailContent, TicketInfo};
use crate::store::{Attachment, Comment, Ticket};

use std::sync::Arc;

pub const ID: &str = "on-ticket-updated";

pub fn function(deps: Arc<Deps>) -> Function {
    Function::new(ID, "Notify the people involved in a ticket change")
        .trigger(Trigger::event(TICKET_UPDATED))
        .trigger(Trigger::event(TICKET_COMMENTED))
        .retries(5)
        .handler(move |ctx: Ctx, step: Step| {
            let deps = deps.clone();
            async move {
                let sent: Vec<Delivery> = step
                    .run("notify", || async move { notify(&deps, &ctx).await })
                    .await?;
                Ok::<_, FnError>(sent.len())
            }
        })
}

/// One mail this change calls for.
struct Message {
    user_id: String,
    key_suffix: &'static str,
    disclosure: Disclosure,
    content: MailContent,
}

/// Every message this change calls for.
async fn messages(deps: &Deps, ctx: &Ctx, ticket: &Ticket) -> Result<Vec<Message>, FnError> {
    let data = &ctx.event.data;
    let mut info = TicketInfo::new(&ticket.id, &ticket.title);
    info.priority = Some(ticket.priority);
    info.category = ticket.category;
    let mut out = Vec::new();
    if ctx.event.name == TICKET_COMMENTED {
        let author = data["author_id"].as_str().unwrap_or_default();
        let internal = data["internal"].as_bool().unwrap_or(true);
        let comment_id = data["comment_id"].as_str().unwrap_or_default();
        let comments = deps
            .store
            .list_comments(&ticket.id, true)
            .await
            .map_err(retriable)?;
        let Some(at) = comments.iter().position(|c| c.id == comment_id) else {
            return Ok(out);
        };
        let comment = &comments[at];
        let files = reply_files(deps, ticket, &comments[..at], comment).await?;
        // Named as people see them elsewhere, never by their address.
        let author_name = deps
            .store
            .get_user(author)
            .await
            .map_err(retriable)?
            .map_or_else(|| "someone".into(), |u| display_name(&u.name, &u.email));
        let reply = |staff: bool| {
            let names: Vec<&str> = files
                .iter()
                .filter(|f| staff || !f.internal)
                .map(|f| f.filename.as_str())
                .collect();
            deps.templates
                .reply_added(&info, &author_name, &comment.body, &names)
        };
        // Internal notes never reach the ticket's creator, nor do internal files.
        if !internal && author != ticket.created_by {
            out.push(Message {
                user_id: ticket.created_by.clone(),
                key_suffix: "creator",
                disclosure: Disclosure::Customer,
                content: reply(false),
            });
        }
        if let Some(assignee) = ticket.assigned_to.as_ref().filter(|a| a.as_str() != author) {
            // Only staff may read an internal note or an internal file's name.
            let staff_only = internal || files.iter().any(|f| f.internal);
            out.push(Message {
                user_id: assignee.clone(),
                key_suffix: "assignee",
                disclosure: if staff_only {
                    Disclosure::Staff
                } else {
                    Disclosure::Customer
                },
                content: reply(true),
            });
        }
        return Ok(out);
    }
    let actor = data["actor_id"].as_str().unwrap_or_default();
    let changes = &data["changes"];
    if let (Some(from), Some(to)) = (
        changes["status"]["from"].as_str(),
        changes["status"]["to"].as_str(),
    ) {
        let content = deps.templates.status_changed(&info, from, to);
        if actor != ticket.created_by {
            out.push(Message {
                user_id: ticket.created_by.clone(),
                key_suffix: "status:creator",
                disclosure: Disclosure::Customer,
                content: content.clone(),
            });
        }
        if let Some(assignee) = ticket.assigned_to.as_ref().filter(|a| a.as_str() != actor) {
            out.push(Message {
                user_id: assignee.clone(),
                key_suffix: "status:assignee",
                disclosure: Disclosure::Customer,
                content,
            });
        }
    }
    if let Some(new_assignee) = changes["assigned_to"]["to"]
        .as_str()
        .filter(|a| *a != actor)
    {
        out.push(Message {
            user_id: new_assignee.to_owned(),
            key_suffix: "assigned",
            disclosure: Disclosure::Staff,
            content: deps.templates.ticket_assigned(&info, None),
        });
    }
    Ok(out)
}

/// The files that came with a reply: those its author attached after the reply before it (or
/// after the ticket was opened) and up to the reply itself. The web app uploads a reply's files
/// first and then posts the reply.
async fn reply_files(
    deps: &Deps,
    ticket: &Ticket,
    earlier: &[Comment],
    reply: &Comment,
) -> Result<Vec<Attachment>, FnError> {
    let since = earlier.last().map(|c| c.created_at);
    Ok(deps
        .store
        .list_attachments(&ticket.id, true)
        .await
        .map_err(retriable)?
        .into_iter()
        .filter(|f| f.uploaded_by == reply.author_id)
        .filter(|f| since.is_none_or(|t| f.created_at > t) && f.created_at <= reply.created_at)
        .collect())
}

async fn notify(deps: &Deps, ctx: &Ctx) -> Result<Vec<Delivery>, FnError> {
    let ticket_id = data_id(&ctx.event, "ticket_id")?;
    let Some(ticket) = deps.store.get_ticket(&ticket_id).await.map_err(retriable)? else {
        return Ok(Vec::new());
    };
    let event_id = ctx.event.id.clone().unwrap_or_else(|| ctx.run_id.clone());
    let mut sent = Vec::new();
    for m in messages(deps, ctx, &ticket).await? {
        let key = format!("{event_id}:{}", m.key_suffix);
        let to = Recipient::ticket(&m.user_id, &ticket, m.disclosure);
        sent.push(send_once(deps, &key, to, m.content).await?);
    }
    Ok(sent)
}
