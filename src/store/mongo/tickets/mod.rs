//! Tickets, their comments, ratings and stats in MongoDB: the store's operations. The
//! documents, the list filters and the stats pipeline have modules of their own.

mod documents;
mod queries;
mod stats;

use super::transaction::{TxError, TxResult};
use super::{
    Inner, MongoStore, all_documents, driver, duplicate_key_index, fetch_limit, now,
    ticket_records, to_bson_date, visible_on_ticket,
};
use crate::domain::events::NewEvent;
use crate::domain::ticket::TicketStatus;
use crate::store::{
    Activity, ActivityEntry, Comment, Load, NewActivity, NewComment, NewRating, NewTicket, Page,
    RateOutcome, Satisfaction, Stats, StoreError, StoreResult, Ticket, TicketChange, TicketQuery,
    TicketSort, TicketStore,
};
use async_trait::async_trait;
use chrono::Utc;
use futures::{FutureExt, TryStreamExt};
use mongodb::ClientSession;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;

use documents::{CommentDoc, comment_document, ticket_document, ticket_update};
pub(super) use documents::{TicketDoc, triage_document};
use queries::{sla_due_filters, ticket_filter};
use stats::{stats_from, stats_pipeline};

fn ticket_conflict(e: mongodb::error::Error) -> TxError {
    match duplicate_key_index(&e) {
        Some(_) => StoreError::Conflict { field: "id" }.into(),
        None => TxError::Driver(e),
    }
}

impl Inner {
    /// The ticket as this transaction's snapshot sees it: a concurrent write after this read
    /// makes the transaction's own write a conflict, and the transaction runs again.
    pub(super) async fn ticket_in(&self, s: &mut ClientSession, id: &str) -> TxResult<Ticket> {
        let Some(document) = self.tickets.find_one(doc! { "_id": id }).session(s).await? else {
            return Err(StoreError::NotFound.into());
        };
        Ok(TicketDoc::decode(document)?)
    }
}

#[async_trait]
impl TicketStore for MongoStore {
    async fn create_ticket(&self, ticket: NewTicket, event: NewEvent) -> StoreResult<Ticket> {
        self.run(move |inner| async move {
            let now = now();
            let document = ticket_document(&ticket, to_bson_date(now));
            let events = [event];
            let created = [NewActivity::new(
                Some(&ticket.created_by),
                Activity::Created {},
            )];
            inner
                .transact(|db, s| {
                    let document = document.clone();
                    let events = events.clone();
                    let (id, created) = (ticket.id.clone(), created.clone());
                    async move {
                        db.tickets
                            .insert_one(document)
                            .session(&mut *s)
                            .await
                            .map_err(ticket_conflict)?;
                        db.append_events(s, &events, now).await?;
                        db.append_activity(s, &id, &created, now).await
                    }
                    .boxed()
                })
                .await?;
            TicketDoc::decode(document)
        })
        .await
    }

    async fn get_ticket(&self, id: &str) -> StoreResult<Option<Ticket>> {
        let id = id.to_owned();
        self.run(move |inner| async move {
            inner
                .tickets
                .find_one(doc! { "_id": id })
                .await
                .map_err(driver)?
                .map(TicketDoc::decode)
                .transpose()
        })
        .await
    }

    async fn list_tickets(&self, query: &TicketQuery) -> StoreResult<Page<Ticket>> {
        let query = query.clone();
        self.run(move |inner| async move {
            let documents = match query.sort {
                TicketSort::Newest => {
                    inner
                        .find_tickets(ticket_filter(&query), doc! { "_id": -1 }, query.limit)
                        .await?
                }
                TicketSort::SlaDue { after_due } => {
                    let (due, undue) = sla_due_filters(&query, after_due);
                    let mut documents = match due {
                        Some(due) => {
                            let sort = doc! { "sla_due_at": 1, "_id": 1 };
                            inner.find_tickets(due, sort, query.limit).await?
                        }
                        None => Vec::new(),
                    };
                    // `limit + 1` rows say whether another page follows.
                    if documents.len() <= query.limit {
                        let rest = query.limit - documents.len();
                        documents.extend(inner.find_tickets(undue, doc! { "_id": 1 }, rest).await?);
                    }
                    documents
                }
            };
            let items = documents
                .into_iter()
                .map(TicketDoc::decode)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(crate::store::model::page(items, query.limit, |t| {
                t.id.clone()
            }))
        })
        .await
    }

    async fn update_ticket(
        &self,
        id: &str,
        expected_version: i64,
        change: TicketChange,
        events: Vec<NewEvent>,
    ) -> StoreResult<Ticket> {
        let id = id.to_owned();
        self.run(move |inner| async move {
            let now = now();
            let at = to_bson_date(now);
            let update = ticket_update(&change, at);
            let assignee = change.assigned_to.clone().flatten();
            let updated = inner
                .transact(|db, s| {
                    let (id, change) = (id.clone(), change.clone());
                    let mut update = update.clone();
                    let events = events.clone();
                    let assignee = assignee.clone();
                    async move {
                        // The snapshot read that the activity entries are computed from; a
                        // concurrent write after it makes the update below a write conflict.
                        let before = db.ticket_in(s, &id).await?;
                        if before.version != expected_version {
                            return Err(StoreError::Stale.into());
                        }
                        let newly_assigned =
                            assignee.filter(|a| before.assigned_to.as_ref() != Some(a));
                        if newly_assigned.is_some()
                            && let Ok(set) = update.get_document_mut("$set")
                        {
                            set.insert("assigned_at", at);
                        }
                        let updated = db
                            .tickets
                            .find_one_and_update(
                                doc! { "_id": &id, "version": expected_version },
                                update,
                            )
                            .return_document(ReturnDocument::After)
                            .session(&mut *s)
                            .await?
                            .ok_or(StoreError::Stale)?;
                        if let Some(assignee) = &newly_assigned {
                            db.note_assignee(s, assignee, at).await?;
                        }
                        db.append_events(s, &events, now).await?;
                        let entries = crate::store::activity_of_change(&before, &change);
                        db.append_activity(s, &id, &entries, now).await?;
                        Ok(updated)
                    }
                    .boxed()
                })
                .await?;
            TicketDoc::decode(updated)
        })
        .await
    }

    async fn add_comment(&self, comment: NewComment, event: NewEvent) -> StoreResult<Comment> {
        self.run(move |inner| async move {
            let now = now();
            let at = to_bson_date(now);
            let document = comment_document(&comment, at);
            let first_response = comment.by_staff && !comment.internal;
            let ticket_id = comment.ticket_id.clone();
            let events = [event];
            let entries = [NewActivity::new(
                Some(&comment.author_id),
                Activity::Commented {
                    comment_id: comment.id.clone(),
                    internal: comment.internal,
                },
            )];
            inner
                .transact(|db, s| {
                    let document = document.clone();
                    let ticket_id = ticket_id.clone();
                    let events = events.clone();
                    let entries = entries.clone();
                    async move {
                        // No foreign keys here: the ticket must exist, checked in the same
                        // snapshot the comment is written in.
                        let ticket = db
                            .tickets
                            .find_one(doc! { "_id": &ticket_id })
                            .projection(doc! { "_id": 1 })
                            .session(&mut *s)
                            .await?;
                        if ticket.is_none() {
                            return Err(StoreError::NotFound.into());
                        }
                        db.comments
                            .insert_one(document)
                            .session(&mut *s)
                            .await
                            .map_err(ticket_conflict)?;
                        if first_response {
                            db.tickets
                                .update_one(
                                    doc! { "_id": &ticket_id, "first_response_at": Bson::Null },
                                    doc! { "$set": { "first_response_at": at } },
                                )
                                .session(&mut *s)
                                .await?;
                        }
                        db.append_events(s, &events, now).await?;
                        db.append_activity(s, &ticket_id, &entries, now).await
                    }
                    .boxed()
                })
                .await?;
            CommentDoc::decode(document)
        })
        .await
    }

    async fn list_comments(
        &self,
        ticket_id: &str,
        include_internal: bool,
    ) -> StoreResult<Vec<Comment>> {
        let filter = visible_on_ticket(ticket_id, include_internal);
        self.run(move |inner| async move {
            ticket_records(&inner.comments, filter, CommentDoc::decode).await
        })
        .await
    }

    async fn stats(&self) -> StoreResult<Stats> {
        self.run(|inner| async move {
            let now = Utc::now();
            let since = to_bson_date(crate::store::model::per_day_since(now));
            let mut cursor = inner
                .tickets
                .aggregate(stats_pipeline(since))
                .await
                .map_err(driver)?;
            let facets = cursor.try_next().await.map_err(driver)?;
            let moderator_load = inner
                .staff_loads()
                .await?
                .into_iter()
                .map(|s| Load {
                    user_id: s.id,
                    email: s.email,
                    role: s.role,
                    open_tickets: u64::from(s.open_tickets),
                    capacity: s.capacity,
                })
                .collect();
            match facets {
                Some(result) => stats_from(&result, moderator_load, now),
                None => Ok(Stats {
                    moderator_load,
                    satisfaction: Satisfaction::from_scores(&[]),
                    per_day: crate::store::model::per_day(now, &[], &[]),
                    ..Stats::default()
                }),
            }
        })
        .await
    }

    async fn rate_ticket(&self, rating: NewRating) -> StoreResult<RateOutcome> {
        self.run(move |inner| async move {
            let now = now();
            let entries = [NewActivity::new(
                Some(&rating.by),
                Activity::Rated {
                    score: rating.score,
                },
            )];
            let stored = doc! {
                "score": i32::from(rating.score),
                "comment": rating.comment.clone(),
                "created_at": to_bson_date(now),
            };
            let outcome = inner
                .transact(|db, s| {
                    let (id, stored, entries) =
                        (rating.ticket_id.clone(), stored.clone(), entries.clone());
                    async move {
                        let current = db.ticket_in(s, &id).await?;
                        if current.rating.is_some() {
                            return Ok(None);
                        }
                        if !matches!(
                            current.status,
                            TicketStatus::Resolved | TicketStatus::Closed
                        ) {
                            return Ok(Some(RateOutcome::NotResolved));
                        }
                        // The snapshot read above makes a concurrent rating a write conflict,
                        // which reruns the transaction and then finds it rated.
                        let updated = db
                            .tickets
                            .find_one_and_update(
                                doc! { "_id": &id, "rating": Bson::Null },
                                doc! { "$set": { "rating": stored } },
                            )
                            .return_document(ReturnDocument::After)
                            .session(&mut *s)
                            .await?;
                        let Some(updated) = updated else {
                            return Ok(None);
                        };
                        db.append_activity(s, &id, &entries, now).await?;
                        let rated = TicketDoc::decode(updated)?;
                        Ok(Some(RateOutcome::Rated(Box::new(rated))))
                    }
                    .boxed()
                })
                .await?;
            Ok(outcome.unwrap_or(RateOutcome::AlreadyRated))
        })
        .await
    }

    async fn list_activity(&self, ticket_id: &str) -> StoreResult<Vec<ActivityEntry>> {
        self.activity_of(ticket_id).await
    }
}

impl super::Inner {
    async fn find_tickets(
        &self,
        filter: Document,
        sort: Document,
        limit: usize,
    ) -> StoreResult<Vec<Document>> {
        all_documents(
            self.tickets
                .find(filter)
                .sort(sort)
                .limit(fetch_limit(limit)),
        )
        .await
    }
}

#[cfg(test)]
pub(super) mod tests_support {
    use super::*;
    use crate::domain::ticket::{Description, Title};

    /// A ticket as stored, at `version`.
    pub(in crate::store::mongo) fn stored_ticket(id: &str, version: i64) -> Document {
        let mut document = ticket_document(
            &NewTicket {
                id: id.into(),
                title: Title::parse("Stored").unwrap(),
                description: Description::parse("ticket").unwrap(),
                created_by: "u1".into(),
            },
            to_bson_date(now()),
        );
        document.insert("version", version);
        document
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ticket::{Category, Description, Priority, Title, TriageStatus};
    use crate::domain::triage::{Sentiment, TriageSource};
    use crate::store::{AssigneeFilter, Count, TicketTriage, TriageUpdate, Visibility};
    use chrono::DateTime;
    use mongodb::bson;

    fn query() -> TicketQuery {
        TicketQuery {
            visibility: Visibility::All,
            status: None,
            priority: None,
            category: None,
            assignee: None,
            text: None,
            sort: TicketSort::Newest,
            limit: 20,
            after: None,
        }
    }

    #[test]
    fn new_tickets_read_back_with_their_defaults() {
        let new = NewTicket {
            id: crate::domain::new_id(),
            title: Title::parse("Login broken").unwrap(),
            description: Description::parse("It fails").unwrap(),
            created_by: "u1".into(),
        };
        let now = super::super::now();
        let ticket = TicketDoc::decode(ticket_document(&new, to_bson_date(now))).unwrap();
        assert_eq!(
            ticket,
            Ticket {
                id: new.id,
                title: new.title.into_inner(),
                description: new.description.into_inner(),
                status: TicketStatus::Open,
                priority: Priority::Medium,
                category: None,
                created_by: new.created_by,
                assigned_to: None,
                triage_status: TriageStatus::Pending,
                priority_locked: false,
                version: 1,
                created_at: now,
                updated_at: now,
                first_response_at: None,
                resolved_at: None,
                triage: None,
                routing_reason: None,
                assigned_at: None,
                sla_due_at: None,
                escalated_at: None,
                rating: None,
            }
        );
    }

    #[test]
    fn documents_from_before_triage_read_as_untriaged() {
        let mut document = tests_support::stored_ticket("t1", 3);
        for field in [
            "triage",
            "triage_source",
            "routing_reason",
            "assigned_at",
            "sla_due_at",
            "escalated_at",
        ] {
            assert!(document.remove(field).is_some(), "{field}");
        }
        let ticket = TicketDoc::decode(document).unwrap();
        assert_eq!(ticket.triage, None);
        assert_eq!(ticket.routing_reason, None);
        assert_eq!(ticket.assigned_at, None);
        assert_eq!(ticket.sla_due_at, None);
        assert_eq!(ticket.escalated_at, None);
        assert_eq!(ticket.version, 3);
    }

    #[test]
    fn triage_reads_back_as_saved_with_its_notes() {
        let now = super::super::now();
        let update = TriageUpdate {
            status: TriageStatus::Done,
            summary: "Printer burns".into(),
            category: Category::Bug,
            priority: Priority::High,
            sentiment: Sentiment::Frustrated,
            required_skills: vec!["hardware".into()],
            helpful_notes: String::new(),
            confidence: 0.5,
            source: TriageSource::Gemini,
        };
        let mut document = tests_support::stored_ticket("t1", 1);
        document.insert("triage", triage_document(&update, to_bson_date(now)));
        document.insert("routing_reason", "skills match");
        document.insert("sla_due_at", to_bson_date(now));
        let ticket = TicketDoc::decode(document).unwrap();
        assert_eq!(
            ticket.triage,
            Some(TicketTriage {
                summary: "Printer burns".into(),
                sentiment: "frustrated".into(),
                required_skills: vec!["hardware".into()],
                // Stored even when empty, and always returned: hiding it is the API's call.
                helpful_notes: Some(String::new()),
                confidence: 0.5,
                source: "gemini".into(),
                triaged_at: now,
            })
        );
        assert_eq!(ticket.routing_reason.as_deref(), Some("skills match"));
        assert_eq!(ticket.sla_due_at, Some(now));
    }

    #[test]
    fn comments_read_back_as_written() {
        let new = NewComment {
            id: "c1".into(),
            ticket_id: "t1".into(),
            author_id: "u1".into(),
            body: "hello".into(),
            internal: true,
            by_staff: true,
        };
        let now = super::super::now();
        let comment = CommentDoc::decode(comment_document(&new, to_bson_date(now))).unwrap();
        assert_eq!(
            comment,
            Comment {
                id: "c1".into(),
                ticket_id: "t1".into(),
                author_id: "u1".into(),
                body: "hello".into(),
                internal: true,
                created_at: now,
            }
        );
    }

    #[test]
    fn stored_enums_use_the_domain_spelling() {
        let mut document = ticket_document(
            &NewTicket {
                id: "t".into(),
                title: Title::parse("abc").unwrap(),
                description: Description::parse("d").unwrap(),
                created_by: "u".into(),
            },
            bson::DateTime::from_millis(0),
        );
        document.insert("status", TicketStatus::InProgress.as_str());
        document.insert("category", Category::FeatureRequest.as_str());
        document.insert("triage_status", TriageStatus::Fallback.as_str());
        let ticket = TicketDoc::decode(document.clone()).unwrap();
        assert_eq!(ticket.status, TicketStatus::InProgress);
        assert_eq!(ticket.category, Some(Category::FeatureRequest));
        assert_eq!(ticket.triage_status, TriageStatus::Fallback);
        document.insert("status", "bogus");
        assert!(TicketDoc::decode(document).is_err());
    }

    #[test]
    fn updates_bump_the_version_and_track_resolution() {
        let t = bson::DateTime::from_millis(5);
        let resolve = TicketChange {
            status: Some(TicketStatus::Resolved),
            ..TicketChange::default()
        };
        assert_eq!(
            ticket_update(&resolve, t),
            doc! { "$set": { "updated_at": t, "status": "resolved", "resolved_at": t },
            "$inc": { "version": 1_i64 } }
        );
        let reopen = TicketChange {
            status: Some(TicketStatus::Open),
            ..TicketChange::default()
        };
        assert_eq!(
            ticket_update(&reopen, t).get_document("$set").unwrap(),
            &doc! { "updated_at": t, "status": "open", "resolved_at": Bson::Null }
        );
        let close = TicketChange {
            status: Some(TicketStatus::Closed),
            ..TicketChange::default()
        };
        assert_eq!(
            ticket_update(&close, t).get_document("$set").unwrap(),
            &doc! { "updated_at": t, "status": "closed" }
        );
        let admin = TicketChange {
            priority: Some(Priority::High),
            lock_priority: true,
            assigned_to: Some(None),
            ..TicketChange::default()
        };
        assert_eq!(
            ticket_update(&admin, t).get_document("$set").unwrap(),
            &doc! { "updated_at": t, "priority": "high", "priority_locked": true, "assigned_to": Bson::Null }
        );
        let assign = TicketChange {
            assigned_to: Some(Some("m1".into())),
            ..TicketChange::default()
        };
        assert_eq!(
            ticket_update(&assign, t).get_document("$set").unwrap(),
            &doc! { "updated_at": t, "assigned_to": "m1" }
        );
    }

    #[test]
    fn an_empty_query_lists_everything() {
        assert_eq!(ticket_filter(&query()), doc! {});
    }

    #[test]
    fn every_filter_is_a_clause() {
        let q = TicketQuery {
            visibility: Visibility::Staff("m1".into()),
            status: Some(TicketStatus::InProgress),
            priority: Some(Priority::High),
            category: Some(Category::Bug),
            assignee: Some(AssigneeFilter::Unassigned),
            text: None,
            sort: TicketSort::Newest,
            limit: 5,
            after: Some("t9".into()),
        };
        assert_eq!(
            ticket_filter(&q),
            doc! { "$and": [
                { "$or": [ { "assigned_to": "m1" }, { "created_by": "m1" } ] },
                { "status": "in_progress" },
                { "priority": "high" },
                { "category": "bug" },
                { "assigned_to": Bson::Null },
                { "_id": { "$lt": "t9" } },
            ] }
        );
        let q = TicketQuery {
            visibility: Visibility::CreatedBy("u1".into()),
            assignee: Some(AssigneeFilter::User("m2".into())),
            ..query()
        };
        assert_eq!(
            ticket_filter(&q),
            doc! { "$and": [ { "created_by": "u1" }, { "assigned_to": "m2" } ] }
        );
    }

    #[test]
    fn operator_shaped_values_stay_strings() {
        let q = TicketQuery {
            visibility: Visibility::CreatedBy("{\"$ne\": null}".into()),
            ..query()
        };
        assert_eq!(
            ticket_filter(&q),
            doc! { "created_by": Bson::String("{\"$ne\": null}".into()) }
        );
    }

    fn pattern_of(filter: &Document) -> (String, String) {
        let or = filter.get_array("$or").unwrap();
        let title = or[0].as_document().unwrap().get("title").unwrap();
        let Bson::RegularExpression(re) = title else {
            panic!("not a regex: {title:?}");
        };
        (re.pattern.clone(), re.options.clone())
    }

    #[test]
    fn text_search_is_a_literal_case_insensitive_pattern() {
        let q = TicketQuery {
            text: Some("a.b*(c)|$x^[y]{2}\\".into()),
            ..query()
        };
        let (pattern, options) = pattern_of(&ticket_filter(&q));
        assert_eq!(options, "i");
        assert_eq!(pattern, regex::escape("a.b*(c)|$x^[y]{2}\\"));
        // The escaped pattern matches exactly the literal text, nothing broader.
        let re = regex::RegexBuilder::new(&pattern)
            .case_insensitive(true)
            .build()
            .unwrap();
        assert!(re.is_match("xx A.B*(C)|$X^[Y]{2}\\ yy"));
        assert!(!re.is_match("aXbbbc"));
    }

    #[test]
    fn the_sla_order_reads_tickets_with_a_deadline_then_the_rest() {
        let mut q = TicketQuery {
            visibility: Visibility::CreatedBy("u1".into()),
            sort: TicketSort::SlaDue { after_due: None },
            ..query()
        };
        let undue = doc! { "$and": [ { "created_by": "u1" }, { "sla_due_at": Bson::Null } ] };
        assert_eq!(
            sla_due_filters(&q, None),
            (
                Some(
                    doc! { "$and": [ { "created_by": "u1" }, { "sla_due_at": { "$ne": Bson::Null } } ] }
                ),
                undue.clone()
            )
        );
        q.after = Some("t5".into());
        let at = DateTime::from_timestamp_millis(7_000).unwrap();
        let date = to_bson_date(at);
        assert_eq!(
            sla_due_filters(&q, Some(at)),
            (
                Some(doc! { "$and": [
                    { "created_by": "u1" },
                    { "sla_due_at": { "$ne": Bson::Null } },
                    { "$or": [
                        { "sla_due_at": { "$gt": date } },
                        { "sla_due_at": date, "_id": { "$gt": "t5" } },
                    ] },
                ] }),
                undue
            )
        );
        // Past every deadline: only the tickets without one, after the cursor.
        assert_eq!(
            sla_due_filters(&q, None),
            (
                None,
                doc! { "$and": [
                    { "created_by": "u1" },
                    { "sla_due_at": Bson::Null },
                    { "_id": { "$gt": "t5" } },
                ] }
            )
        );
    }

    #[test]
    fn text_with_nul_matches_nothing() {
        let q = TicketQuery {
            text: Some("a\0b".into()),
            ..query()
        };
        assert_eq!(ticket_filter(&q), doc! { "_id": { "$in": [] } });
    }

    #[test]
    fn stats_read_the_facets() {
        let since = bson::DateTime::from_millis(1_000);
        let pipeline = stats_pipeline(since);
        assert_eq!(pipeline.len(), 1);
        let facet = pipeline[0].get_document("$facet").unwrap();
        // Every ticket counts for its assignee, whatever its status.
        assert_eq!(
            facet.get_array("by_assignee").unwrap()[0],
            Bson::Document(doc! { "$group": { "_id": "$assigned_to", "count": { "$sum": 1 } } })
        );
        assert_eq!(
            facet.get_array("resolution_ms").unwrap()[0],
            Bson::Document(doc! { "$match": { "resolved_at": { "$ne": Bson::Null } } })
        );
        assert_eq!(
            facet.get_array("resolution_ms").unwrap()[1],
            Bson::Document(doc! { "$group": {
                "_id": Bson::Null,
                "ms": { "$avg": { "$subtract": ["$resolved_at", "$created_at"] } },
            } })
        );
        assert_eq!(
            facet.get_array("resolved_per_day").unwrap()[0],
            Bson::Document(doc! { "$match": { "resolved_at": { "$gte": since } } })
        );
        assert_eq!(
            facet.get_array("created_per_day").unwrap()[1],
            Bson::Document(doc! { "$group": {
                "_id": { "$dateToString": { "format": "%Y-%m-%d", "date": "$created_at" } },
                "count": { "$sum": 1 },
            } })
        );
        assert_eq!(
            facet.get_array("satisfaction").unwrap()[1],
            Bson::Document(doc! { "$group": { "_id": "$rating.score", "count": { "$sum": 1 } } })
        );
        let result = doc! {
            "total": [ { "count": 3 } ],
            "by_status": [ { "_id": "open", "count": 2 }, { "_id": "resolved", "count": 1_i64 } ],
            "by_priority": [ { "_id": "medium", "count": 3 } ],
            "by_category": [ { "_id": Bson::Null, "count": 2 }, { "_id": "bug", "count": 1 } ],
            "by_assignee": [ { "_id": Bson::Null, "count": 1 }, { "_id": "m1", "count": 2 } ],
            "by_triage_status": [ { "_id": "done", "count": 1 }, { "_id": "pending", "count": 2 } ],
            "by_triage_source": [ { "_id": Bson::Null, "count": 2 }, { "_id": "rules", "count": 1 } ],
            "first_response_ms": [ { "_id": Bson::Null, "ms": 1500.0 } ],
            "resolution_ms": [ { "_id": Bson::Null, "ms": 60_000_i64 } ],
            "sla_breaches": [ { "count": 1 } ],
            "satisfaction": [ { "_id": 5, "count": 2 }, { "_id": 2_i64, "count": 1 } ],
            "created_per_day": [ { "_id": "2024-03-01", "count": 3 } ],
            "resolved_per_day": [ { "_id": "2024-02-29", "count": 1 } ],
        };
        let now = DateTime::parse_from_rfc3339("2024-03-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let count = |key: &str, count| Count {
            key: key.into(),
            count,
        };
        let load = Load {
            user_id: "m1".into(),
            email: "m1@example.com".into(),
            role: crate::domain::user::Role::Moderator,
            open_tickets: 2,
            capacity: None,
        };
        let read = stats_from(&result, vec![load.clone()], now).unwrap();
        assert_eq!(
            read.satisfaction,
            Satisfaction::from_scores(&[(5, 2), (2, 1)])
        );
        assert_eq!(
            read.per_day,
            crate::store::model::per_day(
                now,
                &[("2024-03-01".into(), 3)],
                &[("2024-02-29".into(), 1)]
            )
        );
        assert_eq!(
            read,
            Stats {
                total: 3,
                by_status: vec![count("open", 2), count("resolved", 1)],
                by_priority: vec![count("medium", 3)],
                by_category: vec![count("none", 2), count("bug", 1)],
                by_assignee: vec![count("unassigned", 1), count("m1", 2)],
                by_triage_status: vec![count("done", 1), count("pending", 2)],
                by_triage_source: vec![count("none", 2), count("rules", 1)],
                avg_first_response_secs: Some(1.5),
                avg_resolution_secs: Some(60.0),
                sla_breaches: 1,
                moderator_load: vec![load],
                satisfaction: read.satisfaction.clone(),
                per_day: read.per_day.clone(),
            }
        );
        let empty = doc! {
            "total": [], "by_status": [], "by_priority": [], "by_category": [], "by_assignee": [],
            "by_triage_status": [], "by_triage_source": [], "first_response_ms": [],
            "resolution_ms": [], "sla_breaches": [], "satisfaction": [], "created_per_day": [],
            "resolved_per_day": [],
        };
        assert_eq!(
            stats_from(&empty, Vec::new(), now).unwrap(),
            Stats {
                satisfaction: Satisfaction::from_scores(&[]),
                per_day: crate::store::model::per_day(now, &[], &[]),
                ..Stats::default()
            }
        );
        let mut odd = empty;
        odd.insert(
            "resolution_ms",
            vec![doc! { "_id": Bson::Null, "ms": "soon" }],
        );
        assert!(stats_from(&odd, Vec::new(), now).is_err());
    }
}
