//! A `Store` that announces every committed ticket change on the change bus. It wraps the
//! configured store once, at start, for the API and the durable functions alike, so changes
//! made by triage, routing, SLA and escalation are published without those knowing about it.

use super::{ChangeBus, ChangeKind};
use crate::domain::account_token::{TokenHash, TokenPurpose};
use crate::domain::events::NewEvent;
use crate::store::{
    AccountStore, ActivityEntry, AttachOutcome, Attachment, AttachmentStore, AutomationStore,
    Comment, Credentials, Detached, NewAccountToken, NewAttachment, NewComment, NewRating,
    NewTicket, NewUser, OutboxEvent, OutboxStore, Page, RateOutcome, StaffLoad, StaffStore, Stats,
    Store, StoreResult, Ticket, TicketChange, TicketQuery, TicketStore, TriageUpdate, User,
    UserPatch, UserQuery, UserStore,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub struct Publishing {
    inner: Arc<dyn Store>,
    bus: Arc<ChangeBus>,
}

impl Publishing {
    pub fn new(inner: Arc<dyn Store>, bus: Arc<ChangeBus>) -> Self {
        Self { inner, bus }
    }

    /// Announces `ticket_id` as updated once `result` says the write committed.
    fn updated<T>(&self, ticket_id: &str, result: StoreResult<T>) -> StoreResult<T> {
        if result.is_ok() {
            self.bus.publish(ChangeKind::TicketUpdated, ticket_id, None);
        }
        result
    }
}

#[async_trait]
impl StaffStore for Publishing {
    async fn revoke_staff(
        &self,
        user_id: &str,
        actor_id: &str,
    ) -> StoreResult<(User, Vec<String>)> {
        let (user, released) = self.inner.revoke_staff(user_id, actor_id).await?;
        for ticket_id in &released {
            self.bus.publish(ChangeKind::TicketUpdated, ticket_id, None);
        }
        Ok((user, released))
    }
}

#[async_trait]
impl UserStore for Publishing {
    async fn create_user(&self, user: NewUser, event: Option<NewEvent>) -> StoreResult<User> {
        self.inner.create_user(user, event).await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        self.inner.get_user(id).await
    }

    async fn find_credentials(&self, email: &str) -> StoreResult<Option<Credentials>> {
        self.inner.find_credentials(email).await
    }

    async fn list_users(&self, query: &UserQuery) -> StoreResult<Page<User>> {
        self.inner.list_users(query).await
    }

    async fn update_user(&self, id: &str, patch: UserPatch) -> StoreResult<User> {
        self.inner.update_user(id, patch).await
    }
}

#[async_trait]
impl AccountStore for Publishing {
    async fn set_password(&self, user_id: &str, password_hash: &str) -> StoreResult<User> {
        self.inner.set_password(user_id, password_hash).await
    }

    async fn end_sessions(&self, user_id: &str) -> StoreResult<User> {
        self.inner.end_sessions(user_id).await
    }

    async fn queue_user_event(
        &self,
        email: &str,
        unverified_only: bool,
        event: for<'a> fn(&'a str) -> NewEvent,
    ) -> StoreResult<bool> {
        self.inner
            .queue_user_event(email, unverified_only, event)
            .await
    }

    async fn create_account_token(&self, token: NewAccountToken) -> StoreResult<()> {
        self.inner.create_account_token(token).await
    }

    async fn find_account_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        self.inner.find_account_token(hash, purpose, now).await
    }

    async fn reset_password(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        self.inner.reset_password(hash, password_hash, now).await
    }

    async fn verify_email(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        self.inner.verify_email(hash, now).await
    }
}

#[async_trait]
impl TicketStore for Publishing {
    async fn create_ticket(&self, ticket: NewTicket, event: NewEvent) -> StoreResult<Ticket> {
        let created = self.inner.create_ticket(ticket, event).await?;
        self.bus
            .publish(ChangeKind::TicketCreated, &created.id, None);
        Ok(created)
    }

    async fn get_ticket(&self, id: &str) -> StoreResult<Option<Ticket>> {
        self.inner.get_ticket(id).await
    }

    async fn list_tickets(&self, query: &TicketQuery) -> StoreResult<Page<Ticket>> {
        self.inner.list_tickets(query).await
    }

    async fn update_ticket(
        &self,
        id: &str,
        expected_version: i64,
        change: TicketChange,
        events: Vec<NewEvent>,
    ) -> StoreResult<Ticket> {
        let result = self
            .inner
            .update_ticket(id, expected_version, change, events)
            .await;
        self.updated(id, result)
    }

    async fn add_comment(&self, comment: NewComment, event: NewEvent) -> StoreResult<Comment> {
        let added = self.inner.add_comment(comment, event).await?;
        self.bus.publish(
            ChangeKind::CommentAdded,
            &added.ticket_id,
            Some(added.clone()),
        );
        Ok(added)
    }

    async fn list_comments(
        &self,
        ticket_id: &str,
        include_internal: bool,
    ) -> StoreResult<Vec<Comment>> {
        self.inner.list_comments(ticket_id, include_internal).await
    }

    async fn stats(&self) -> StoreResult<Stats> {
        self.inner.stats().await
    }

    async fn rate_ticket(&self, rating: NewRating) -> StoreResult<RateOutcome> {
        let ticket_id = rating.ticket_id.clone();
        let outcome = self.inner.rate_ticket(rating).await?;
        if matches!(outcome, RateOutcome::Rated(_)) {
            self.bus
                .publish(ChangeKind::TicketUpdated, &ticket_id, None);
        }
        Ok(outcome)
    }

    async fn list_activity(&self, ticket_id: &str) -> StoreResult<Vec<ActivityEntry>> {
        self.inner.list_activity(ticket_id).await
    }
}

#[async_trait]
impl AttachmentStore for Publishing {
    async fn add_attachment(
        &self,
        attachment: NewAttachment,
        max_per_ticket: usize,
    ) -> StoreResult<AttachOutcome> {
        let ticket_id = attachment.ticket_id.clone();
        let outcome = self
            .inner
            .add_attachment(attachment, max_per_ticket)
            .await?;
        if matches!(outcome, AttachOutcome::Added(_)) {
            self.bus
                .publish(ChangeKind::TicketUpdated, &ticket_id, None);
        }
        Ok(outcome)
    }

    async fn get_attachment(&self, id: &str) -> StoreResult<Option<Attachment>> {
        self.inner.get_attachment(id).await
    }

    async fn list_attachments(
        &self,
        ticket_id: &str,
        include_internal: bool,
    ) -> StoreResult<Vec<Attachment>> {
        self.inner
            .list_attachments(ticket_id, include_internal)
            .await
    }

    async fn delete_attachment(&self, id: &str) -> StoreResult<Option<Detached>> {
        let detached = self.inner.delete_attachment(id).await?;
        if let Some(d) = &detached {
            self.bus
                .publish(ChangeKind::TicketUpdated, &d.attachment.ticket_id, None);
        }
        Ok(detached)
    }

    async fn blob_in_use(&self, sha256: &str) -> StoreResult<bool> {
        self.inner.blob_in_use(sha256).await
    }

    async fn blobs_in_use(&self) -> StoreResult<Vec<String>> {
        self.inner.blobs_in_use().await
    }
}

#[async_trait]
impl OutboxStore for Publishing {
    async fn pending_events(&self, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.inner.pending_events(limit).await
    }

    async fn list_events(&self, after_seq: i64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.inner.list_events(after_seq, limit).await
    }

    async fn mark_sent(&self, ids: &[String]) -> StoreResult<()> {
        self.inner.mark_sent(ids).await
    }

    async fn outbox_backlog(&self) -> StoreResult<u64> {
        self.inner.outbox_backlog().await
    }
}

#[async_trait]
impl AutomationStore for Publishing {
    async fn save_triage(&self, ticket_id: &str, triage: TriageUpdate) -> StoreResult<Ticket> {
        let result = self.inner.save_triage(ticket_id, triage).await;
        self.updated(ticket_id, result)
    }

    async fn mark_triage_failed(&self, ticket_id: &str, reason: &str) -> StoreResult<()> {
        let result = self.inner.mark_triage_failed(ticket_id, reason).await;
        self.updated(ticket_id, result)
    }

    async fn staff_loads(&self) -> StoreResult<Vec<StaffLoad>> {
        self.inner.staff_loads().await
    }

    async fn assign_if_unassigned(
        &self,
        ticket_id: &str,
        assignee_id: &str,
        reason: &str,
    ) -> StoreResult<Option<Ticket>> {
        let assigned = self
            .inner
            .assign_if_unassigned(ticket_id, assignee_id, reason)
            .await?;
        if assigned.is_some() {
            self.bus.publish(ChangeKind::TicketUpdated, ticket_id, None);
        }
        Ok(assigned)
    }

    async fn set_routing_reason(&self, ticket_id: &str, reason: &str) -> StoreResult<()> {
        let result = self.inner.set_routing_reason(ticket_id, reason).await;
        self.updated(ticket_id, result)
    }

    async fn set_sla_due(&self, ticket_id: &str, due: DateTime<Utc>) -> StoreResult<()> {
        let result = self.inner.set_sla_due(ticket_id, due).await;
        self.updated(ticket_id, result)
    }

    async fn escalate(&self, ticket_id: &str) -> StoreResult<Option<Ticket>> {
        let escalated = self.inner.escalate(ticket_id).await?;
        if escalated.is_some() {
            self.bus.publish(ChangeKind::TicketUpdated, ticket_id, None);
        }
        Ok(escalated)
    }

    async fn mail_sent(&self, key: &str) -> StoreResult<bool> {
        self.inner.mail_sent(key).await
    }

    async fn record_mail(&self, key: &str, recipient: &str, subject: &str) -> StoreResult<()> {
        self.inner.record_mail(key, recipient, subject).await
    }
}

#[async_trait]
impl Store for Publishing {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ticket::TicketStatus;
    use crate::domain::user::Role;
    use crate::live::Next;
    use crate::store::sqlite::SqliteStore;

    async fn next(sub: &mut crate::live::Subscription) -> (ChangeKind, String, bool) {
        match sub.next().await {
            Next::Change(c) => (c.kind, c.ticket_id.clone(), c.comment.is_some()),
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn committed_ticket_changes_are_announced_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let inner = SqliteStore::open(dir.path().join("t.db")).await.unwrap();
        let bus = Arc::new(ChangeBus::new(16));
        let store = Publishing::new(Arc::new(inner), bus.clone());
        let mut sub = bus.subscribe(None);

        let user_id = crate::domain::new_id();
        let user = store
            .create_user(
                NewUser {
                    id: user_id.clone(),
                    email: "a@example.com".into(),
                    name: String::new(),
                    password_hash: "h".into(),
                    role: Role::User,
                    skills: vec![],
                    email_verified: true,
                },
                None,
            )
            .await
            .unwrap();
        let id = crate::domain::new_id();
        let ticket = store
            .create_ticket(
                NewTicket {
                    id: id.clone(),
                    title: crate::domain::ticket::Title::parse("A ticket").unwrap(),
                    description: crate::domain::ticket::Description::parse("d").unwrap(),
                    created_by: user.id.clone(),
                },
                NewEvent::ticket_created(&id, &user.id),
            )
            .await
            .unwrap();
        assert_eq!(
            next(&mut sub).await,
            (ChangeKind::TicketCreated, id.clone(), false)
        );

        // Refused writes announce nothing: the next change seen is the comment.
        let stale = store
            .update_ticket(&id, ticket.version + 1, TicketChange::default(), vec![])
            .await;
        assert!(stale.is_err());
        let refused = store
            .rate_ticket(NewRating {
                ticket_id: id.clone(),
                by: user.id.clone(),
                score: 3,
                comment: None,
            })
            .await
            .unwrap();
        assert_eq!(refused, RateOutcome::NotResolved);
        let comment_id = crate::domain::new_id();
        store
            .add_comment(
                NewComment {
                    id: comment_id.clone(),
                    ticket_id: id.clone(),
                    author_id: user.id.clone(),
                    body: "hi".into(),
                    internal: false,
                    by_staff: false,
                },
                NewEvent::ticket_commented(&id, &comment_id, &user.id, false),
            )
            .await
            .unwrap();
        assert_eq!(
            next(&mut sub).await,
            (ChangeKind::CommentAdded, id.clone(), true)
        );

        let change = TicketChange {
            status: Some(TicketStatus::Closed),
            ..TicketChange::default()
        };
        store
            .update_ticket(&id, ticket.version, change, vec![])
            .await
            .unwrap();
        store.set_sla_due(&id, chrono::Utc::now()).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                next(&mut sub).await,
                (ChangeKind::TicketUpdated, id.clone(), false)
            );
        }
    }
}
