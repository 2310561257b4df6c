//! The store contract: one suite of behaviours every `Store` must show, run against SQLite and
//! against MongoDB: the server `MONGODB_URI` names (a replica set), else the test peer
//! (`tests/mongo_peer`), each test in a database of its own, dropped afterwards.

use futures::FutureExt;
use serde_json::json;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use ticketing::domain::account_token::{RawToken, TokenHash, TokenPurpose};
use ticketing::domain::events::NewEvent;
use ticketing::domain::new_id;
use ticketing::domain::ticket::{
    Category, Description, Priority, TicketStatus, Title, TriageStatus,
};
use ticketing::domain::triage::{Sentiment, TriageSource};
use ticketing::domain::user::Role;
use ticketing::store::mongo::MongoStore;
use ticketing::store::sqlite::SqliteStore;
use ticketing::store::{
    Activity, AssigneeFilter, Comment, Count, Load, NewAccountToken, NewComment, NewRating,
    NewTicket, NewUser, OutboxEvent, RateOutcome, StaffLoad, Stats, Store, StoreError, Ticket,
    TicketChange, TicketQuery, TicketSort, TicketTriage, TriageUpdate, User, UserPatch, UserQuery,
    Visibility,
};

/// Declares each test once per backend: `store_contract::sqlite::<name>` and
/// `store_contract::mongodb::<name>`.
macro_rules! contract {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_sqlite(super::$name).await;
                }
            )+
        }
        mod mongodb {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_mongo(super::$name).await;
                }
            )+
        }
    };
}

contract!(
    users_are_created_with_their_event,
    taken_emails_and_ids_conflict_and_write_nothing,
    users_list_in_id_order_by_cursor_and_role,
    user_patches_apply_and_unknown_users_are_not_found,
    password_changes_end_sessions_and_drop_reset_links,
    reset_links_work_once_and_only_until_they_expire,
    verification_links_confirm_the_address_once,
    user_events_are_queued_only_for_matching_accounts,
    tickets_start_open_with_a_created_event,
    ticket_ids_are_unique,
    an_event_id_conflict_rolls_back_its_record,
    updates_need_the_current_version,
    concurrent_updates_of_one_version_have_one_winner,
    updates_track_resolution_priority_and_assignment,
    tickets_list_newest_first_by_cursor,
    ticket_filters_and_visibility_narrow_the_list,
    text_search_is_literal_and_case_insensitive,
    comments_hide_internal_notes_and_time_the_first_staff_reply,
    comments_need_an_existing_ticket,
    outbox_delivers_in_order_and_tracks_what_was_sent,
    concurrent_writes_get_distinct_ordered_events,
    stats_count_by_status_priority_category_and_assignee,
    stats_cover_triage_response_times_breaches_and_load,
    assigning_times_the_ticket_and_the_assignee,
    triage_is_saved_whole_and_keeps_a_locked_priority,
    failed_triage_marks_only_pending_tickets,
    staff_loads_count_open_and_in_progress_work_only,
    conditional_assignment_refuses_assigned_tickets,
    assignment_needs_a_current_staff_member,
    revoking_staff_hands_their_open_tickets_back_to_routing,
    routing_reason_and_sla_due_leave_the_version,
    escalation_raises_priority_once_and_spares_finished_tickets,
    sent_mail_is_recorded_once,
    the_store_answers_pings,
    tickets_list_by_sla_deadline_across_pages,
    every_change_is_logged_with_its_actor_in_order,
    failed_and_repeated_writes_log_nothing,
    ratings_need_resolution_and_land_once,
    stats_cover_satisfaction_and_tickets_per_day,
);

pub(crate) async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("contract.db"))
        .await
        .expect("open SQLite");
    test(Arc::new(store)).await;
}

pub(crate) async fn with_mongo<F, Fut>(test: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    let server = crate::mongo_server::mongo().await;
    let database = format!("ticketing_test_{}", uuid::Uuid::new_v4().simple());
    let store = MongoStore::connect(&server.uri, &database)
        .await
        .expect("the MongoDB server must be usable");
    let outcome = AssertUnwindSafe(test(Arc::new(store))).catch_unwind().await;
    // Dropped through a client of its own, so a failing test still cleans up.
    let client = ::mongodb::Client::with_uri_str(&server.uri)
        .await
        .expect("MongoDB client for cleanup");
    client
        .database(&database)
        .drop()
        .await
        .expect("drop the test database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Needs no server: nothing listens on the port, so connecting must fail, quickly and plainly.
#[tokio::test]
async fn mongo_connect_refuses_an_unreachable_server_quickly() {
    let port = crate::support::free_port();
    let started = std::time::Instant::now();
    let result = MongoStore::connect(
        &format!("mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=300"),
        "ticketing",
    )
    .await;
    let Err(StoreError::Unavailable(message)) = result else {
        panic!("expected Unavailable, got {:?}", result.err());
    };
    assert!(message.contains("cannot reach MongoDB"), "{message}");
    assert!(
        !message.contains("mongodb://"),
        "no URI (and so no password) in the message"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------------
// Helpers

pub(crate) async fn add_user(store: &Arc<dyn Store>, role: Role) -> User {
    let id = new_id();
    store
        .create_user(
            NewUser {
                id: id.clone(),
                email: format!("{id}@example.com"),
                name: format!("{role} {id}"),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$salt$hash".into(),
                role,
                skills: vec!["sql".into()],
                email_verified: true,
            },
            Some(NewEvent::user_signup(&id)),
        )
        .await
        .expect("create user")
}

pub(crate) async fn add_ticket(
    store: &Arc<dyn Store>,
    by: &User,
    title: &str,
    description: &str,
) -> Ticket {
    let id = new_id();
    store
        .create_ticket(
            NewTicket {
                id: id.clone(),
                title: Title::parse(title).expect("a valid title"),
                description: Description::parse(description).expect("a valid description"),
                created_by: by.id.clone(),
            },
            NewEvent::ticket_created(&id, &by.id),
        )
        .await
        .expect("create ticket")
}

async fn change(store: &Arc<dyn Store>, ticket: &Ticket, change: TicketChange) -> Ticket {
    let event = NewEvent::ticket_updated(&ticket.id, "actor", json!({}));
    store
        .update_ticket(&ticket.id, ticket.version, change, vec![event])
        .await
        .expect("update ticket")
}

async fn comment(
    store: &Arc<dyn Store>,
    ticket: &Ticket,
    author: &User,
    internal: bool,
) -> Comment {
    let id = new_id();
    store
        .add_comment(
            NewComment {
                id: id.clone(),
                ticket_id: ticket.id.clone(),
                author_id: author.id.clone(),
                body: format!("comment {id}"),
                internal,
                by_staff: author.role.is_staff(),
            },
            NewEvent::ticket_commented(&ticket.id, &id, &author.id, internal),
        )
        .await
        .expect("add comment")
}

async fn all_events(store: &Arc<dyn Store>) -> Vec<OutboxEvent> {
    store.list_events(0, 10_000).await.expect("list events")
}

fn names(events: &[OutboxEvent]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

fn everything() -> TicketQuery {
    TicketQuery {
        visibility: Visibility::All,
        status: None,
        priority: None,
        category: None,
        assignee: None,
        text: None,
        sort: TicketSort::Newest,
        limit: 100,
        after: None,
    }
}

async fn ids(store: &Arc<dyn Store>, query: TicketQuery) -> Vec<String> {
    store
        .list_tickets(&query)
        .await
        .expect("list tickets")
        .items
        .into_iter()
        .map(|t| t.id)
        .collect()
}

fn ids_of(tickets: &[&Ticket]) -> Vec<String> {
    tickets.iter().map(|t| t.id.clone()).collect()
}

fn set_status(status: TicketStatus) -> TicketChange {
    TicketChange {
        status: Some(status),
        ..TicketChange::default()
    }
}

fn assign_to(user: &User) -> TicketChange {
    TicketChange {
        assigned_to: Some(Some(user.id.clone())),
        ..TicketChange::default()
    }
}

fn triage(status: TriageStatus, priority: Priority, source: TriageSource) -> TriageUpdate {
    TriageUpdate {
        status,
        summary: format!("Summary by {source}"),
        category: Category::Bug,
        priority,
        sentiment: Sentiment::Frustrated,
        required_skills: vec!["printers".into(), "sql".into()],
        helpful_notes: "Ask for the **model**.".into(),
        confidence: 0.8,
        source,
    }
}

async fn reread(store: &Arc<dyn Store>, ticket: &Ticket) -> Ticket {
    store
        .get_ticket(&ticket.id)
        .await
        .expect("get ticket")
        .expect("ticket exists")
}

async fn load_of(store: &Arc<dyn Store>, user: &User) -> StaffLoad {
    store
        .staff_loads()
        .await
        .expect("staff loads")
        .into_iter()
        .find(|l| l.id == user.id)
        .expect("a staff member")
}

/// Seconds from `from` to `to`, as precise as either store keeps time.
fn secs(from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) -> f64 {
    (to - from).num_microseconds().expect("small interval") as f64 / 1e6
}

fn assert_close(got: Option<f64>, expected: f64) {
    let got = got.expect("a mean");
    assert!(
        (got - expected).abs() < 0.01,
        "mean {got}, expected {expected}"
    );
}

// ---------------------------------------------------------------------------------------------
// Users

async fn users_are_created_with_their_event(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::Moderator).await;
    assert_eq!(user.role, Role::Moderator);
    assert_eq!(user.skills, vec!["sql".to_string()]);
    assert_eq!(user.capacity, None);
    assert_eq!(user.created_at, user.updated_at);
    assert_eq!(store.get_user(&user.id).await.unwrap(), Some(user.clone()));

    let credentials = store
        .find_credentials(&user.email)
        .await
        .unwrap()
        .expect("credentials by e-mail");
    assert_eq!(credentials.user_id, user.id);
    assert!(credentials.password_hash.starts_with("$argon2id$"));

    let events = all_events(&store).await;
    assert_eq!(names(&events), ["user/signup"]);
    assert_eq!(events[0].data, json!({ "user_id": user.id }));

    // No event asked for, none written.
    let quiet = store
        .create_user(
            NewUser {
                id: new_id(),
                email: "quiet@example.com".into(),
                name: String::new(),
                password_hash: "h".into(),
                role: Role::User,
                skills: Vec::new(),
                email_verified: true,
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(all_events(&store).await.len(), 1);
    assert_eq!(store.get_user(&quiet.id).await.unwrap(), Some(quiet));

    assert_eq!(store.get_user(&new_id()).await.unwrap(), None);
    assert!(
        store
            .find_credentials("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

async fn taken_emails_and_ids_conflict_and_write_nothing(store: Arc<dyn Store>) {
    let first = add_user(&store, Role::User).await;
    let second_id = new_id();
    let err = store
        .create_user(
            NewUser {
                id: second_id.clone(),
                email: first.email.clone(),
                name: "Copy".into(),
                password_hash: "h".into(),
                role: Role::User,
                skills: Vec::new(),
                email_verified: true,
            },
            Some(NewEvent::user_signup(&second_id)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "email" }),
        "{err:?}"
    );
    assert_eq!(store.get_user(&second_id).await.unwrap(), None);

    let err = store
        .create_user(
            NewUser {
                id: first.id.clone(),
                email: "other@example.com".into(),
                name: String::new(),
                password_hash: "h".into(),
                role: Role::User,
                skills: Vec::new(),
                email_verified: true,
            },
            Some(NewEvent::user_signup(&first.id)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "id" }),
        "{err:?}"
    );
    assert!(
        store
            .find_credentials("other@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // Only the first user's event: failed writes leave nothing behind.
    assert_eq!(names(&all_events(&store).await), ["user/signup"]);
}

async fn users_list_in_id_order_by_cursor_and_role(store: Arc<dyn Store>) {
    let mut created = Vec::new();
    for role in [
        Role::User,
        Role::Moderator,
        Role::User,
        Role::Admin,
        Role::Moderator,
    ] {
        created.push(add_user(&store, role).await);
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_users(&UserQuery {
                role: None,
                limit: 2,
                after: after.clone(),
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().cloned());
        match page.next_after {
            Some(next) => {
                assert_eq!(Some(&next), page.items.last().map(|u| &u.id));
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "ascending id order, each user once");

    let moderators = store
        .list_users(&UserQuery {
            role: Some(Role::Moderator),
            limit: 10,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(
        moderators.items,
        vec![created[1].clone(), created[4].clone()]
    );
    assert_eq!(moderators.next_after, None);

    // A page that is exactly full has no next page.
    let exact = store
        .list_users(&UserQuery {
            role: Some(Role::User),
            limit: 2,
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 2);
    assert_eq!(exact.next_after, None);
}

async fn user_patches_apply_and_unknown_users_are_not_found(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;

    let unchanged = store
        .update_user(&user.id, UserPatch::default())
        .await
        .unwrap();
    assert_eq!(unchanged, user);

    let patched = store
        .update_user(
            &user.id,
            UserPatch {
                role: Some(Role::Moderator),
                skills: Some(vec!["react".into(), "billing".into()]),
                name: Some("Renamed".into()),
                capacity: Some(Some(3)),
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.role, Role::Moderator);
    assert_eq!(patched.skills, vec!["react".to_string(), "billing".into()]);
    assert_eq!(patched.name, "Renamed");
    assert_eq!(patched.capacity, Some(3));
    assert_eq!(patched.email, user.email);
    assert_eq!(patched.created_at, user.created_at);
    assert!(patched.updated_at >= user.updated_at);
    assert_eq!(store.get_user(&user.id).await.unwrap(), Some(patched));

    let cleared = store
        .update_user(
            &user.id,
            UserPatch {
                capacity: Some(None),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.capacity, None);
    assert_eq!(cleared.role, Role::Moderator);

    let err = store
        .update_user(
            &new_id(),
            UserPatch {
                name: Some("x".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store
        .update_user(&new_id(), UserPatch::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    // Patches write no events.
    assert_eq!(all_events(&store).await.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Accounts: password changes, one-time links, ended sessions

async fn add_unverified_user(store: &Arc<dyn Store>) -> User {
    let id = new_id();
    store
        .create_user(
            NewUser {
                id: id.clone(),
                email: format!("{id}@example.com"),
                name: String::new(),
                password_hash: "$argon2id$old".into(),
                role: Role::User,
                skills: Vec::new(),
                email_verified: false,
            },
            Some(NewEvent::user_signup(&id)),
        )
        .await
        .expect("create user")
}

/// A live link for `user`, valid for `secs` from now (negative: already expired).
async fn add_link(
    store: &Arc<dyn Store>,
    user: &User,
    purpose: TokenPurpose,
    secs: i64,
) -> TokenHash {
    let (_, hash) = RawToken::generate();
    store
        .create_account_token(NewAccountToken {
            hash: hash.clone(),
            user_id: user.id.clone(),
            purpose,
            expires_at: chrono::Utc::now() + chrono::Duration::seconds(secs),
        })
        .await
        .expect("create link");
    hash
}

async fn password_hash_of(store: &Arc<dyn Store>, user: &User) -> String {
    store
        .find_credentials(&user.email)
        .await
        .unwrap()
        .expect("credentials")
        .password_hash
}

async fn password_changes_end_sessions_and_drop_reset_links(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    assert_eq!(user.token_generation, 0);
    let other = add_user(&store, Role::User).await;
    let link = add_link(&store, &user, TokenPurpose::PasswordReset, 3600).await;
    let verify = add_link(&store, &user, TokenPurpose::EmailVerification, 3600).await;
    let others_link = add_link(&store, &other, TokenPurpose::PasswordReset, 3600).await;
    let now = chrono::Utc::now();

    let changed = store.set_password(&user.id, "$argon2id$new").await.unwrap();
    assert_eq!(changed.token_generation, 1);
    assert_eq!(changed.email, user.email);
    assert_eq!(password_hash_of(&store, &user).await, "$argon2id$new");
    assert_eq!(store.get_user(&user.id).await.unwrap(), Some(changed));
    // The old password's reset links are gone; other links and other accounts are untouched.
    let find = |hash: TokenHash, purpose| {
        let store = store.clone();
        async move { store.find_account_token(&hash, purpose, now).await.unwrap() }
    };
    assert_eq!(find(link, TokenPurpose::PasswordReset).await, None);
    assert_eq!(
        find(verify, TokenPurpose::EmailVerification).await,
        Some(user.id.clone())
    );
    assert_eq!(
        find(others_link, TokenPurpose::PasswordReset).await,
        Some(other.id.clone())
    );

    let ended = store.end_sessions(&user.id).await.unwrap();
    assert_eq!(ended.token_generation, 2);
    assert_eq!(password_hash_of(&store, &user).await, "$argon2id$new");
    let other_now = store.get_user(&other.id).await.unwrap().unwrap();
    assert_eq!(other_now.token_generation, 0);

    let nobody = new_id();
    assert!(matches!(
        store.set_password(&nobody, "h").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.end_sessions(&nobody).await,
        Err(StoreError::NotFound)
    ));
}

async fn reset_links_work_once_and_only_until_they_expire(store: Arc<dyn Store>) {
    let user = add_unverified_user(&store).await;
    assert!(!user.email_verified);
    let first = add_link(&store, &user, TokenPurpose::PasswordReset, 3600).await;
    let second = add_link(&store, &user, TokenPurpose::PasswordReset, 3600).await;
    let expired = add_link(&store, &user, TokenPurpose::PasswordReset, -1).await;
    let now = chrono::Utc::now();

    assert_eq!(
        store
            .find_account_token(&first, TokenPurpose::PasswordReset, now)
            .await
            .unwrap(),
        Some(user.id.clone())
    );
    // A link works for its own purpose only, and not past its time.
    assert_eq!(
        store
            .find_account_token(&first, TokenPurpose::EmailVerification, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.verify_email(&first, now).await.unwrap(), None);
    let later = now + chrono::Duration::hours(2);
    assert_eq!(
        store
            .find_account_token(&first, TokenPurpose::PasswordReset, later)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .reset_password(&first, "$argon2id$x", later)
            .await
            .unwrap(),
        None
    );
    for dead in [&expired, &TokenHash::of(&"x".repeat(43)).unwrap()] {
        assert_eq!(
            store
                .find_account_token(dead, TokenPurpose::PasswordReset, now)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .reset_password(dead, "$argon2id$x", now)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(password_hash_of(&store, &user).await, "$argon2id$old");

    let reset = store
        .reset_password(&first, "$argon2id$new", now)
        .await
        .unwrap()
        .expect("a live link resets");
    assert_eq!(reset.id, user.id);
    assert_eq!(reset.token_generation, user.token_generation + 1);
    assert!(reset.email_verified, "the link reached the address");
    assert_eq!(password_hash_of(&store, &user).await, "$argon2id$new");
    assert_eq!(store.get_user(&user.id).await.unwrap(), Some(reset));

    // Used once; and every other reset link of the account went with it.
    for used in [&first, &second] {
        assert_eq!(
            store
                .reset_password(used, "$argon2id$again", now)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(password_hash_of(&store, &user).await, "$argon2id$new");
}

async fn verification_links_confirm_the_address_once(store: Arc<dyn Store>) {
    let user = add_unverified_user(&store).await;
    assert_eq!(store.get_user(&user.id).await.unwrap(), Some(user.clone()));
    assert!(!user.email_verified);
    let reset = add_link(&store, &user, TokenPurpose::PasswordReset, 3600).await;
    let first = add_link(&store, &user, TokenPurpose::EmailVerification, 3600).await;
    let second = add_link(&store, &user, TokenPurpose::EmailVerification, 3600).await;
    let now = chrono::Utc::now();

    assert_eq!(store.verify_email(&reset, now).await.unwrap(), None);
    assert!(
        !store
            .get_user(&user.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    let verified = store
        .verify_email(&second, now)
        .await
        .unwrap()
        .expect("a live link verifies");
    assert!(verified.email_verified);
    assert_eq!(
        verified.token_generation, user.token_generation,
        "sessions go on"
    );
    assert_eq!(store.get_user(&user.id).await.unwrap(), Some(verified));
    assert_eq!(store.verify_email(&second, now).await.unwrap(), None);
    assert_eq!(store.verify_email(&first, now).await.unwrap(), None);
    // The reset link is another purpose: it still works.
    assert_eq!(
        store
            .find_account_token(&reset, TokenPurpose::PasswordReset, now)
            .await
            .unwrap(),
        Some(user.id.clone())
    );
}

async fn user_events_are_queued_only_for_matching_accounts(store: Arc<dyn Store>) {
    let verified = add_user(&store, Role::User).await;
    let unverified = add_unverified_user(&store).await;
    let before = all_events(&store).await.len();

    let queued = |email: String, unverified_only: bool, event: fn(&str) -> NewEvent| {
        let store = store.clone();
        async move {
            store
                .queue_user_event(&email, unverified_only, event)
                .await
                .unwrap()
        }
    };
    assert!(
        !queued(
            "nobody@example.com".into(),
            false,
            NewEvent::password_reset_requested
        )
        .await
    );
    assert!(
        !queued(
            verified.email.clone(),
            true,
            NewEvent::verification_requested
        )
        .await
    );
    assert_eq!(all_events(&store).await.len(), before, "nothing written");

    assert!(
        queued(
            verified.email.clone(),
            false,
            NewEvent::password_reset_requested
        )
        .await
    );
    assert!(
        queued(
            unverified.email.clone(),
            true,
            NewEvent::verification_requested
        )
        .await
    );
    assert!(queued(unverified.email.clone(), false, NewEvent::signup_attempted).await);
    let events = all_events(&store).await;
    let new: Vec<(&str, &serde_json::Value)> = events[before..]
        .iter()
        .map(|e| (e.name.as_str(), &e.data))
        .collect();
    assert_eq!(
        new,
        [
            (
                "user/password-reset-requested",
                &json!({ "user_id": verified.id })
            ),
            (
                "user/verification-requested",
                &json!({ "user_id": unverified.id })
            ),
            (
                "user/signup-attempted",
                &json!({ "user_id": unverified.id })
            ),
        ]
    );
    let pending = store.pending_events(100).await.unwrap();
    assert_eq!(pending.len(), events.len(), "new events wait for delivery");
}

// ---------------------------------------------------------------------------------------------
// Tickets

async fn tickets_start_open_with_a_created_event(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &user, "Printer on fire", "Smoke everywhere").await;
    assert_eq!(ticket.title, "Printer on fire");
    assert_eq!(ticket.description, "Smoke everywhere");
    assert_eq!(ticket.status, TicketStatus::Open);
    assert_eq!(ticket.priority, Priority::Medium);
    assert_eq!(ticket.category, None);
    assert_eq!(ticket.created_by, user.id);
    assert_eq!(ticket.assigned_to, None);
    assert_eq!(ticket.triage_status, TriageStatus::Pending);
    assert!(!ticket.priority_locked);
    assert_eq!(ticket.version, 1);
    assert_eq!(ticket.created_at, ticket.updated_at);
    assert_eq!(ticket.first_response_at, None);
    assert_eq!(ticket.resolved_at, None);
    assert_eq!(ticket.triage, None);
    assert_eq!(ticket.routing_reason, None);
    assert_eq!(ticket.assigned_at, None);
    assert_eq!(ticket.sla_due_at, None);
    assert_eq!(ticket.escalated_at, None);
    assert_eq!(
        store.get_ticket(&ticket.id).await.unwrap(),
        Some(ticket.clone())
    );
    assert_eq!(store.get_ticket(&new_id()).await.unwrap(), None);

    let events = all_events(&store).await;
    assert_eq!(names(&events), ["user/signup", "ticket/created"]);
    assert_eq!(
        events[1].data,
        json!({ "ticket_id": ticket.id, "created_by": user.id })
    );
}

async fn ticket_ids_are_unique(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &user, "First", "one").await;
    let err = store
        .create_ticket(
            NewTicket {
                id: ticket.id.clone(),
                title: Title::parse("Second").unwrap(),
                description: Description::parse("two").unwrap(),
                created_by: user.id.clone(),
            },
            NewEvent::ticket_created(&ticket.id, &user.id),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "id" }),
        "{err:?}"
    );
    assert_eq!(
        store.get_ticket(&ticket.id).await.unwrap().map(|t| t.title),
        Some("First".into())
    );
    assert_eq!(
        names(&all_events(&store).await),
        ["user/signup", "ticket/created"]
    );
}

async fn an_event_id_conflict_rolls_back_its_record(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let first = add_ticket(&store, &user, "First", "one").await;
    let taken = all_events(&store).await[1].id.clone();

    let second_id = new_id();
    let mut event = NewEvent::ticket_created(&second_id, &user.id);
    event.id = taken.clone();
    let err = store
        .create_ticket(
            NewTicket {
                id: second_id.clone(),
                title: Title::parse("Second").unwrap(),
                description: Description::parse("two").unwrap(),
                created_by: user.id.clone(),
            },
            event,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "event id" }),
        "{err:?}"
    );
    assert_eq!(store.get_ticket(&second_id).await.unwrap(), None);

    // The same for an update: neither the change nor any of its events is kept.
    let fresh = NewEvent::ticket_updated(&first.id, "actor", json!({}));
    let mut clash = NewEvent::ticket_resolved(&first.id, "actor");
    clash.id = taken;
    let err = store
        .update_ticket(
            &first.id,
            first.version,
            set_status(TicketStatus::Resolved),
            vec![fresh, clash],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "event id" }),
        "{err:?}"
    );
    assert_eq!(store.get_ticket(&first.id).await.unwrap(), Some(first));

    // And for a user.
    let user_id = new_id();
    let mut signup = NewEvent::user_signup(&user_id);
    signup.id = all_events(&store).await[0].id.clone();
    let err = store
        .create_user(
            NewUser {
                id: user_id.clone(),
                email: "late@example.com".into(),
                name: String::new(),
                password_hash: "h".into(),
                role: Role::User,
                skills: Vec::new(),
                email_verified: true,
            },
            Some(signup),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "event id" }),
        "{err:?}"
    );
    assert_eq!(store.get_user(&user_id).await.unwrap(), None);
    assert_eq!(
        names(&all_events(&store).await),
        ["user/signup", "ticket/created"]
    );
}

async fn updates_need_the_current_version(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &user, "Login fails", "always").await;

    let started = change(&store, &ticket, set_status(TicketStatus::InProgress)).await;
    assert_eq!(started.status, TicketStatus::InProgress);
    assert_eq!(started.version, ticket.version + 1);
    assert!(started.updated_at >= ticket.updated_at);
    assert_eq!(started.created_at, ticket.created_at);
    assert_eq!(
        store.get_ticket(&ticket.id).await.unwrap(),
        Some(started.clone())
    );

    let before = all_events(&store).await.len();
    let err = store
        .update_ticket(
            &ticket.id,
            ticket.version,
            set_status(TicketStatus::Closed),
            vec![NewEvent::ticket_updated(&ticket.id, "late", json!({}))],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale), "{err:?}");
    assert_eq!(
        store.get_ticket(&ticket.id).await.unwrap(),
        Some(started.clone())
    );
    assert_eq!(
        all_events(&store).await.len(),
        before,
        "no event when stale"
    );

    let err = store
        .update_ticket(
            &new_id(),
            1,
            set_status(TicketStatus::Closed),
            vec![NewEvent::ticket_updated("missing", "actor", json!({}))],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(all_events(&store).await.len(), before);

    // The current version still works.
    let closed = change(&store, &started, set_status(TicketStatus::Closed)).await;
    assert_eq!(closed.version, started.version + 1);
    assert_eq!(closed.status, TicketStatus::Closed);
}

async fn concurrent_updates_of_one_version_have_one_winner(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &user, "Race", "who wins").await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let ticket = ticket.clone();
            tokio::spawn(async move {
                store
                    .update_ticket(
                        &ticket.id,
                        ticket.version,
                        TicketChange {
                            priority: Some(if i % 2 == 0 {
                                Priority::High
                            } else {
                                Priority::Low
                            }),
                            ..TicketChange::default()
                        },
                        vec![NewEvent::ticket_updated(
                            &ticket.id,
                            &format!("writer {i}"),
                            json!({}),
                        )],
                    )
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(updated) => winners.push(updated),
            Err(StoreError::Stale) => {}
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    assert_eq!(winners[0].version, ticket.version + 1);
    assert_eq!(
        store.get_ticket(&ticket.id).await.unwrap(),
        Some(winners[0].clone())
    );
    assert_eq!(
        names(&all_events(&store).await),
        ["user/signup", "ticket/created", "ticket/updated"]
    );
}

async fn updates_track_resolution_priority_and_assignment(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let moderator = add_user(&store, Role::Moderator).await;
    let ticket = add_ticket(&store, &user, "Billing wrong", "charged twice").await;

    let resolved = change(&store, &ticket, set_status(TicketStatus::Resolved)).await;
    assert_eq!(resolved.status, TicketStatus::Resolved);
    let resolved_at = resolved.resolved_at.expect("resolved_at set on resolve");
    assert!(resolved_at >= ticket.created_at);

    let closed = change(&store, &resolved, set_status(TicketStatus::Closed)).await;
    assert_eq!(
        closed.resolved_at,
        Some(resolved_at),
        "closing keeps the resolution time"
    );

    let reopened = change(&store, &closed, set_status(TicketStatus::Open)).await;
    assert_eq!(reopened.status, TicketStatus::Open);
    assert_eq!(reopened.resolved_at, None, "reopening clears it");

    let prioritised = change(
        &store,
        &reopened,
        TicketChange {
            priority: Some(Priority::High),
            lock_priority: true,
            assigned_to: Some(Some(moderator.id.clone())),
            ..TicketChange::default()
        },
    )
    .await;
    assert_eq!(prioritised.priority, Priority::High);
    assert!(prioritised.priority_locked);
    assert_eq!(prioritised.assigned_to, Some(moderator.id.clone()));
    assert_eq!(prioritised.status, TicketStatus::Open);

    // Fields not named stay as they are; the lock is never undone by a later change.
    let lowered = change(
        &store,
        &prioritised,
        TicketChange {
            priority: Some(Priority::Low),
            ..TicketChange::default()
        },
    )
    .await;
    assert_eq!(lowered.priority, Priority::Low);
    assert!(lowered.priority_locked);
    assert_eq!(lowered.assigned_to, Some(moderator.id.clone()));

    let unassigned = change(
        &store,
        &lowered,
        TicketChange {
            assigned_to: Some(None),
            ..TicketChange::default()
        },
    )
    .await;
    assert_eq!(unassigned.assigned_to, None);
    assert_eq!(unassigned.version, ticket.version + 6);
    assert_eq!(unassigned.title, ticket.title);
    assert_eq!(unassigned.created_by, ticket.created_by);

    // All events of one update are written, in the order given.
    let events_before = all_events(&store).await.len();
    let done = store
        .update_ticket(
            &unassigned.id,
            unassigned.version,
            set_status(TicketStatus::Resolved),
            vec![
                NewEvent::ticket_updated(&ticket.id, &moderator.id, json!({ "status": 1 })),
                NewEvent::ticket_resolved(&ticket.id, &moderator.id),
            ],
        )
        .await
        .unwrap();
    assert_eq!(done.status, TicketStatus::Resolved);
    let events = all_events(&store).await;
    assert_eq!(events.len(), events_before + 2);
    assert_eq!(
        names(&events[events_before..]),
        ["ticket/updated", "ticket/resolved"]
    );
    assert_eq!(
        events[events_before].data["changes"],
        json!({ "status": 1 })
    );
}

async fn tickets_list_newest_first_by_cursor(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(add_ticket(&store, &user, &format!("Ticket {i}"), "body").await);
    }
    created.reverse();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_tickets(&TicketQuery {
                limit: 2,
                after: after.clone(),
                ..everything()
            })
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().cloned());
        match page.next_after {
            Some(next) => {
                assert_eq!(page.items.len(), 2);
                assert_eq!(Some(&next), page.items.last().map(|t| &t.id));
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "newest first, each ticket once");

    // A cursor is an id bound, so it also works after the ticket it names.
    let tail = ids(
        &store,
        TicketQuery {
            after: Some(created[1].id.clone()),
            ..everything()
        },
    )
    .await;
    assert_eq!(tail, ids_of(&[&created[2], &created[3], &created[4]]));
    let exact = store
        .list_tickets(&TicketQuery {
            limit: 5,
            ..everything()
        })
        .await
        .unwrap();
    assert_eq!(exact.items.len(), 5);
    assert_eq!(exact.next_after, None);
}

async fn ticket_filters_and_visibility_narrow_the_list(store: Arc<dyn Store>) {
    let ann = add_user(&store, Role::User).await;
    let bob = add_user(&store, Role::User).await;
    let mod_a = add_user(&store, Role::Moderator).await;
    let mod_b = add_user(&store, Role::Moderator).await;

    let a = add_ticket(&store, &ann, "Printer on fire", "smoke").await;
    let b = add_ticket(&store, &bob, "Login fails", "password reset loop").await;
    let c = add_ticket(&store, &ann, "Coupon", "does not apply").await;
    let d = add_ticket(&store, &mod_a, "Tooling", "internal").await;

    let a = change(
        &store,
        &a,
        TicketChange {
            assigned_to: Some(Some(mod_a.id.clone())),
            ..TicketChange::default()
        },
    )
    .await;
    let b = change(
        &store,
        &b,
        TicketChange {
            status: Some(TicketStatus::InProgress),
            priority: Some(Priority::High),
            lock_priority: true,
            assigned_to: Some(Some(mod_b.id.clone())),
            routing_reason: Some("Assigned by an admin.".into()),
            actor: None,
        },
    )
    .await;
    assert_eq!(b.routing_reason.as_deref(), Some("Assigned by an admin."));

    assert_eq!(ids(&store, everything()).await, ids_of(&[&d, &c, &b, &a]));
    let visible = |visibility| TicketQuery {
        visibility,
        ..everything()
    };
    assert_eq!(
        ids(&store, visible(Visibility::CreatedBy(ann.id.clone()))).await,
        ids_of(&[&c, &a])
    );
    assert_eq!(
        ids(&store, visible(Visibility::Staff(mod_a.id.clone()))).await,
        ids_of(&[&d, &a]),
        "assigned to them, plus their own"
    );
    assert_eq!(
        ids(&store, visible(Visibility::Staff(mod_b.id.clone()))).await,
        ids_of(&[&b])
    );
    assert!(
        ids(&store, visible(Visibility::CreatedBy(new_id())))
            .await
            .is_empty()
    );

    let status = |status| TicketQuery {
        status: Some(status),
        ..everything()
    };
    assert_eq!(
        ids(&store, status(TicketStatus::InProgress)).await,
        ids_of(&[&b])
    );
    assert_eq!(
        ids(&store, status(TicketStatus::Open)).await,
        ids_of(&[&d, &c, &a])
    );
    assert!(ids(&store, status(TicketStatus::Closed)).await.is_empty());

    let priority = |priority| TicketQuery {
        priority: Some(priority),
        ..everything()
    };
    assert_eq!(ids(&store, priority(Priority::High)).await, ids_of(&[&b]));
    assert_eq!(
        ids(&store, priority(Priority::Medium)).await,
        ids_of(&[&d, &c, &a])
    );
    assert!(ids(&store, priority(Priority::Low)).await.is_empty());

    // Nothing in the store sets a category yet: every category filter is empty.
    for category in Category::ALL {
        let query = TicketQuery {
            category: Some(category),
            ..everything()
        };
        assert!(ids(&store, query).await.is_empty(), "{category}");
    }

    let assignee = |filter| TicketQuery {
        assignee: Some(filter),
        ..everything()
    };
    assert_eq!(
        ids(&store, assignee(AssigneeFilter::User(mod_a.id.clone()))).await,
        ids_of(&[&a])
    );
    assert_eq!(
        ids(&store, assignee(AssigneeFilter::Unassigned)).await,
        ids_of(&[&d, &c])
    );

    // Filters combine.
    assert_eq!(
        ids(
            &store,
            TicketQuery {
                visibility: Visibility::CreatedBy(ann.id.clone()),
                assignee: Some(AssigneeFilter::Unassigned),
                ..everything()
            }
        )
        .await,
        ids_of(&[&c])
    );
    assert_eq!(
        ids(
            &store,
            TicketQuery {
                visibility: Visibility::Staff(mod_a.id.clone()),
                text: Some("PRINTER".into()),
                ..everything()
            }
        )
        .await,
        ids_of(&[&a])
    );
    assert!(
        ids(
            &store,
            TicketQuery {
                status: Some(TicketStatus::InProgress),
                priority: Some(Priority::Medium),
                ..everything()
            }
        )
        .await
        .is_empty()
    );
}

async fn text_search_is_literal_and_case_insensitive(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let printer = add_ticket(&store, &user, "Printer on fire", "smoke everywhere").await;
    let reset = add_ticket(&store, &user, "Login fails", "Password RESET loop").await;
    let coupon = add_ticket(&store, &user, "50%_off coupon", "regex a.b*c (x|y) [z]").await;
    let slash = add_ticket(&store, &user, "Path C:\\temp", "$where: 1 {\"$ne\": null}").await;

    let search = |text: &str| TicketQuery {
        text: Some(text.into()),
        ..everything()
    };
    assert_eq!(ids(&store, search("printer")).await, ids_of(&[&printer]));
    assert_eq!(ids(&store, search("reset")).await, ids_of(&[&reset]));
    assert_eq!(ids(&store, search("SMOKE")).await, ids_of(&[&printer]));
    assert_eq!(ids(&store, search("E")).await.len(), 4);
    assert_eq!(ids(&store, search("50%_")).await, ids_of(&[&coupon]));
    assert_eq!(ids(&store, search("%")).await, ids_of(&[&coupon]));
    assert_eq!(ids(&store, search("_")).await, ids_of(&[&coupon]));
    assert_eq!(ids(&store, search("a.b*c")).await, ids_of(&[&coupon]));
    assert_eq!(ids(&store, search("(x|y) [z]")).await, ids_of(&[&coupon]));
    assert_eq!(ids(&store, search("C:\\temp")).await, ids_of(&[&slash]));
    assert_eq!(
        ids(&store, search("{\"$ne\": null}")).await,
        ids_of(&[&slash])
    );
    // Pattern syntax is text, not a pattern.
    for literal in [
        ".*",
        "r.gex",
        "fire|smoke",
        "^Printer",
        "fire$",
        "[a-z]",
        "p_ssword",
        "p%d",
    ] {
        assert!(
            ids(&store, search(literal)).await.is_empty(),
            "{literal:?} must be matched literally"
        );
    }
    assert!(ids(&store, search("nothing like this")).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Comments

async fn comments_hide_internal_notes_and_time_the_first_staff_reply(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let moderator = add_user(&store, Role::Moderator).await;
    let admin = add_user(&store, Role::Admin).await;
    let ticket = add_ticket(&store, &user, "Help", "please").await;
    assert!(
        store
            .list_comments(&ticket.id, true)
            .await
            .unwrap()
            .is_empty()
    );
    let events_before = all_events(&store).await.len();

    let question = comment(&store, &ticket, &user, false).await;
    assert_eq!(question.ticket_id, ticket.id);
    assert_eq!(question.author_id, user.id);
    assert!(!question.internal);
    let after_user = store.get_ticket(&ticket.id).await.unwrap().unwrap();
    assert_eq!(after_user.first_response_at, None, "users do not respond");

    let note = comment(&store, &ticket, &moderator, true).await;
    assert!(note.internal);
    let after_note = store.get_ticket(&ticket.id).await.unwrap().unwrap();
    assert_eq!(after_note.first_response_at, None, "notes are not replies");

    let reply = comment(&store, &ticket, &moderator, false).await;
    let after_reply = store.get_ticket(&ticket.id).await.unwrap().unwrap();
    assert_eq!(after_reply.first_response_at, Some(reply.created_at));
    assert_eq!(
        after_reply.version, ticket.version,
        "comments leave the version"
    );

    let second = comment(&store, &ticket, &admin, false).await;
    let after_second = store.get_ticket(&ticket.id).await.unwrap().unwrap();
    assert_eq!(
        after_second.first_response_at,
        Some(reply.created_at),
        "only the first reply counts"
    );

    assert_eq!(
        store.list_comments(&ticket.id, false).await.unwrap(),
        vec![question.clone(), reply.clone(), second.clone()]
    );
    assert_eq!(
        store.list_comments(&ticket.id, true).await.unwrap(),
        vec![
            question.clone(),
            note.clone(),
            reply.clone(),
            second.clone()
        ]
    );

    let events = all_events(&store).await;
    assert_eq!(events.len(), events_before + 4, "one event per comment");
    assert!(
        events[events_before..]
            .iter()
            .all(|e| e.name == "ticket/commented")
    );
    assert_eq!(
        events[events_before + 1].data,
        json!({
            "ticket_id": ticket.id,
            "comment_id": note.id,
            "author_id": moderator.id,
            "internal": true,
        })
    );

    // Comments belong to their ticket only.
    let other = add_ticket(&store, &user, "Other", "ticket").await;
    assert!(
        store
            .list_comments(&other.id, true)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn comments_need_an_existing_ticket(store: Arc<dyn Store>) {
    let moderator = add_user(&store, Role::Moderator).await;
    let missing = new_id();
    let id = new_id();
    let result = store
        .add_comment(
            NewComment {
                id: id.clone(),
                ticket_id: missing.clone(),
                author_id: moderator.id.clone(),
                body: "hello?".into(),
                internal: false,
                by_staff: true,
            },
            NewEvent::ticket_commented(&missing, &id, &moderator.id, false),
        )
        .await;
    assert!(result.is_err(), "{result:?}");
    assert!(
        store
            .list_comments(&missing, true)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(names(&all_events(&store).await), ["user/signup"]);
}

// ---------------------------------------------------------------------------------------------
// Outbox

async fn outbox_delivers_in_order_and_tracks_what_was_sent(store: Arc<dyn Store>) {
    assert!(store.pending_events(10).await.unwrap().is_empty());
    assert_eq!(store.outbox_backlog().await.unwrap(), 0);

    let user = add_user(&store, Role::User).await;
    let moderator = add_user(&store, Role::Moderator).await;
    let ticket = add_ticket(&store, &user, "Outbox", "order").await;
    let resolved = store
        .update_ticket(
            &ticket.id,
            ticket.version,
            set_status(TicketStatus::Resolved),
            vec![
                NewEvent::ticket_updated(&ticket.id, &moderator.id, json!({})),
                NewEvent::ticket_resolved(&ticket.id, &moderator.id),
            ],
        )
        .await
        .unwrap();
    comment(&store, &resolved, &moderator, false).await;

    let events = all_events(&store).await;
    assert_eq!(
        names(&events),
        [
            "user/signup",
            "user/signup",
            "ticket/created",
            "ticket/updated",
            "ticket/resolved",
            "ticket/commented"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(events.iter().all(|e| e.sent_at.is_none()));
    assert_eq!(events[0].data, json!({ "user_id": user.id }));
    assert_eq!(store.outbox_backlog().await.unwrap(), 6);

    assert_eq!(store.pending_events(2).await.unwrap(), events[..2].to_vec());
    assert!(store.pending_events(0).await.unwrap().is_empty());
    assert_eq!(
        store.list_events(events[1].seq, 2).await.unwrap(),
        events[2..4].to_vec()
    );
    assert!(
        store
            .list_events(events[5].seq, 10)
            .await
            .unwrap()
            .is_empty()
    );

    store
        .mark_sent(&[events[0].id.clone(), events[2].id.clone()])
        .await
        .unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap(), 4);
    let pending = store.pending_events(10).await.unwrap();
    assert_eq!(
        pending,
        vec![
            events[1].clone(),
            events[3].clone(),
            events[4].clone(),
            events[5].clone()
        ]
    );
    let after = all_events(&store).await;
    let first_sent = after[0].sent_at.expect("marked sent");
    assert!(first_sent >= after[0].created_at);
    assert!(after[2].sent_at.is_some());
    assert_eq!(after[1].sent_at, None);

    // Marking again keeps the first delivery time; unknown ids and empty lists are harmless.
    store.mark_sent(&[events[0].id.clone()]).await.unwrap();
    store.mark_sent(&[new_id()]).await.unwrap();
    store.mark_sent(&[]).await.unwrap();
    assert_eq!(all_events(&store).await[0].sent_at, Some(first_sent));
    assert_eq!(store.outbox_backlog().await.unwrap(), 4);

    store
        .mark_sent(&pending.iter().map(|e| e.id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap(), 0);
    assert!(store.pending_events(10).await.unwrap().is_empty());
    // Sent events stay listed for operators.
    assert_eq!(all_events(&store).await.len(), 6);
}

/// Twelve writers race for the outbox counter; on MongoDB the losers' transactions conflict and
/// run again. On the test peer that needs patch 6 of `tests/mongo_peer/peer.py`: mongoeco as
/// installed keeps a transaction whose commit failed open, so the retry inserted its ticket a
/// second time inside it and failed with a taken id (`repro_stale_transaction.py` shows it
/// without our code). The patched peer starts the retry afresh, as MongoDB does.
async fn concurrent_writes_get_distinct_ordered_events(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            let user = user.clone();
            tokio::spawn(async move {
                add_ticket(&store, &user, &format!("Concurrent {i}"), "load").await
            })
        })
        .collect();
    let mut tickets = Vec::new();
    for task in tasks {
        tickets.push(task.await.expect("task"));
    }
    let events = all_events(&store).await;
    assert_eq!(events.len(), 13);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let mut announced: Vec<String> = events[1..]
        .iter()
        .map(|e| e.data["ticket_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    announced.sort();
    let mut created: Vec<String> = tickets.iter().map(|t| t.id.clone()).collect();
    created.sort();
    assert_eq!(announced, created, "exactly one event per ticket");
    assert_eq!(ids(&store, everything()).await.len(), 12);
}

// ---------------------------------------------------------------------------------------------
// Stats and health

async fn stats_count_by_status_priority_category_and_assignee(store: Arc<dyn Store>) {
    let empty = store.stats().await.unwrap();
    assert_eq!(
        Stats {
            satisfaction: Default::default(),
            per_day: Vec::new(),
            ..empty.clone()
        },
        Stats::default()
    );
    assert_eq!(empty.satisfaction.count, 0);
    assert_eq!(empty.per_day.len(), 30);
    assert!(empty.per_day.iter().all(|d| d.created + d.resolved == 0));

    let user = add_user(&store, Role::User).await;
    let moderator = add_user(&store, Role::Moderator).await;
    let assign = TicketChange {
        assigned_to: Some(Some(moderator.id.clone())),
        ..TicketChange::default()
    };
    let t1 = add_ticket(&store, &user, "One", "1").await;
    change(&store, &t1, assign.clone()).await;
    let t2 = add_ticket(&store, &user, "Two", "2").await;
    let t2 = change(&store, &t2, assign.clone()).await;
    let resolved = change(&store, &t2, set_status(TicketStatus::Resolved)).await;
    let t3 = add_ticket(&store, &user, "Three", "3").await;
    let t3 = change(&store, &t3, assign).await;
    change(&store, &t3, set_status(TicketStatus::Closed)).await;
    let t4 = add_ticket(&store, &user, "Four", "4").await;
    change(
        &store,
        &t4,
        TicketChange {
            priority: Some(Priority::High),
            lock_priority: true,
            ..TicketChange::default()
        },
    )
    .await;
    add_ticket(&store, &user, "Five", "5").await;

    let count = |key: &str, count| Count {
        key: key.into(),
        count,
    };
    let stats = store.stats().await.unwrap();
    assert_close(
        stats.avg_resolution_secs,
        secs(t2.created_at, resolved.resolved_at.expect("resolved")),
    );
    assert_eq!(
        stats,
        Stats {
            total: 5,
            by_status: vec![count("closed", 1), count("open", 3), count("resolved", 1)],
            by_priority: vec![count("high", 1), count("medium", 4)],
            by_category: vec![count("none", 5)],
            // Every ticket counts for its assignee, finished ones too.
            by_assignee: vec![count("unassigned", 2), count(&moderator.id, 3)],
            by_triage_status: vec![count("pending", 5)],
            by_triage_source: vec![count("none", 5)],
            avg_first_response_secs: None,
            avg_resolution_secs: stats.avg_resolution_secs,
            sla_breaches: 0,
            // Only the open ticket is work in hand.
            moderator_load: vec![Load {
                user_id: moderator.id.clone(),
                email: moderator.email.clone(),
                role: Role::Moderator,
                open_tickets: 1,
                capacity: None,
            }],
            satisfaction: stats.satisfaction.clone(),
            per_day: stats.per_day.clone(),
        }
    );
    let today = stats.per_day.last().expect("today");
    assert_eq!(
        today.date,
        resolved.created_at.format("%Y-%m-%d").to_string()
    );
    assert_eq!((today.created, today.resolved), (5, 1));
}

async fn stats_cover_triage_response_times_breaches_and_load(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let moderator = add_user(&store, Role::Moderator).await;
    let admin = add_user(&store, Role::Admin).await;
    let capped = store
        .update_user(
            &admin.id,
            UserPatch {
                capacity: Some(Some(5)),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();

    // Staff appear with no tickets at all, and no means exist without the times they average.
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.total, 0);
    assert_eq!(stats.avg_first_response_secs, None);
    assert_eq!(stats.avg_resolution_secs, None);
    assert_eq!(stats.moderator_load.len(), 2);
    assert!(stats.moderator_load.iter().all(|l| l.open_tickets == 0));

    let by_rules = add_ticket(&store, &user, "One", "1").await;
    store
        .save_triage(
            &by_rules.id,
            triage(TriageStatus::Done, Priority::High, TriageSource::Rules),
        )
        .await
        .unwrap();
    let by_gemini = add_ticket(&store, &user, "Two", "2").await;
    store
        .save_triage(
            &by_gemini.id,
            triage(TriageStatus::Fallback, Priority::Low, TriageSource::Gemini),
        )
        .await
        .unwrap();
    let pending = add_ticket(&store, &user, "Three", "3").await;
    let failed = add_ticket(&store, &user, "Four", "4").await;
    store
        .mark_triage_failed(&failed.id, "AI unavailable")
        .await
        .unwrap();

    // First responses: public staff replies only; a note and a user's comment do not count.
    comment(&store, &by_rules, &user, false).await;
    comment(&store, &by_rules, &moderator, true).await;
    comment(&store, &by_rules, &moderator, false).await;
    comment(&store, &by_gemini, &admin, false).await;
    let answered = [
        reread(&store, &by_rules).await,
        reread(&store, &by_gemini).await,
    ];
    let first_response = answered
        .iter()
        .map(|t| secs(t.created_at, t.first_response_at.expect("answered")))
        .sum::<f64>()
        / 2.0;

    let assigned = change(&store, &answered[0], assign_to(&moderator)).await;
    let resolved = change(&store, &assigned, set_status(TicketStatus::Resolved)).await;
    let working = change(&store, &answered[1], assign_to(&moderator)).await;
    change(&store, &working, set_status(TicketStatus::InProgress)).await;
    change(&store, &pending, assign_to(&admin)).await;
    store
        .escalate(&pending.id)
        .await
        .unwrap()
        .expect("escalated");

    let count = |key: &str, count| Count {
        key: key.into(),
        count,
    };
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.total, 4);
    assert_eq!(
        stats.by_triage_status,
        vec![
            count("done", 1),
            count("failed", 1),
            count("fallback", 1),
            count("pending", 1)
        ]
    );
    assert_eq!(
        stats.by_triage_source,
        vec![count("none", 2), count("gemini", 1), count("rules", 1)]
    );
    assert_eq!(stats.by_category, vec![count("none", 2), count("bug", 2)]);
    assert_close(stats.avg_first_response_secs, first_response);
    assert_close(
        stats.avg_resolution_secs,
        secs(resolved.created_at, resolved.resolved_at.expect("resolved")),
    );
    assert_eq!(stats.sla_breaches, 1);
    let mut expected_load = vec![
        Load {
            user_id: moderator.id.clone(),
            email: moderator.email.clone(),
            role: Role::Moderator,
            open_tickets: 1,
            capacity: None,
        },
        Load {
            user_id: admin.id.clone(),
            email: admin.email.clone(),
            role: Role::Admin,
            open_tickets: 1,
            capacity: capped.capacity,
        },
    ];
    expected_load.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(stats.moderator_load, expected_load);
}

// ---------------------------------------------------------------------------------------------
// Automation: triage, routing, SLA, mail

async fn assigning_times_the_ticket_and_the_assignee(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let first = add_user(&store, Role::Moderator).await;
    let second = add_user(&store, Role::Admin).await;
    let ticket = add_ticket(&store, &user, "Route me", "please").await;
    assert_eq!(load_of(&store, &first).await.last_assigned_at, None);

    let assigned = change(&store, &ticket, assign_to(&first)).await;
    assert_eq!(assigned.assigned_at, Some(assigned.updated_at));
    assert_eq!(reread(&store, &assigned).await, assigned);
    assert_eq!(
        load_of(&store, &first).await.last_assigned_at,
        assigned.assigned_at
    );

    // Naming the same assignee again is no new assignment.
    let same = change(
        &store,
        &assigned,
        TicketChange {
            assigned_to: Some(Some(first.id.clone())),
            priority: Some(Priority::Low),
            ..TicketChange::default()
        },
    )
    .await;
    assert_eq!(same.assigned_at, assigned.assigned_at);
    assert_eq!(
        load_of(&store, &first).await.last_assigned_at,
        assigned.assigned_at
    );

    // Other changes and unassigning keep the time of the last assignment.
    let unassigned = change(
        &store,
        &same,
        TicketChange {
            assigned_to: Some(None),
            ..TicketChange::default()
        },
    )
    .await;
    assert_eq!(unassigned.assigned_to, None);
    assert_eq!(unassigned.assigned_at, assigned.assigned_at);

    let moved = change(&store, &unassigned, assign_to(&second)).await;
    assert_eq!(moved.assigned_to, Some(second.id.clone()));
    assert_eq!(moved.assigned_at, Some(moved.updated_at));
    assert!(moved.assigned_at >= assigned.assigned_at);
    assert_eq!(
        load_of(&store, &second).await.last_assigned_at,
        moved.assigned_at
    );
    assert_eq!(
        load_of(&store, &first).await.last_assigned_at,
        assigned.assigned_at
    );

    // A stale update assigns nobody.
    let third = add_user(&store, Role::Moderator).await;
    let err = store
        .update_ticket(
            &moved.id,
            assigned.version,
            assign_to(&third),
            vec![NewEvent::ticket_updated(&moved.id, "late", json!({}))],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale), "{err:?}");
    assert_eq!(reread(&store, &moved).await, moved);
    assert_eq!(load_of(&store, &third).await.last_assigned_at, None);
}

async fn triage_is_saved_whole_and_keeps_a_locked_priority(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &user, "Printer", "jammed").await;
    let events_before = all_events(&store).await.len();

    let triaged = store
        .save_triage(
            &ticket.id,
            triage(TriageStatus::Done, Priority::High, TriageSource::Gemini),
        )
        .await
        .unwrap();
    assert_eq!(triaged.triage_status, TriageStatus::Done);
    assert_eq!(triaged.category, Some(Category::Bug));
    assert_eq!(triaged.priority, Priority::High);
    assert_eq!(triaged.version, ticket.version + 1);
    assert!(triaged.updated_at >= ticket.updated_at);
    let saved = triaged.triage.clone().expect("triage saved");
    // The time of the save; each store keeps it at its own precision.
    let skew = (saved.triaged_at - triaged.updated_at).abs();
    assert!(skew < chrono::Duration::milliseconds(1), "{skew}");
    assert_eq!(
        saved,
        TicketTriage {
            summary: "Summary by gemini".into(),
            sentiment: "frustrated".into(),
            required_skills: vec!["printers".into(), "sql".into()],
            helpful_notes: Some("Ask for the **model**.".into()),
            confidence: 0.8,
            source: "gemini".into(),
            triaged_at: saved.triaged_at,
        }
    );
    assert_eq!(reread(&store, &ticket).await, triaged);
    assert_eq!(
        all_events(&store).await.len(),
        events_before,
        "triage writes no event"
    );

    // A person set the priority: a later triage updates everything else.
    let locked = change(
        &store,
        &triaged,
        TicketChange {
            priority: Some(Priority::Low),
            lock_priority: true,
            ..TicketChange::default()
        },
    )
    .await;
    let mut again = triage(TriageStatus::Fallback, Priority::High, TriageSource::Rules);
    again.category = Category::Billing;
    again.helpful_notes = String::new();
    let retriaged = store.save_triage(&ticket.id, again).await.unwrap();
    assert_eq!(retriaged.priority, Priority::Low, "a locked priority stays");
    assert!(retriaged.priority_locked);
    assert_eq!(retriaged.category, Some(Category::Billing));
    assert_eq!(retriaged.triage_status, TriageStatus::Fallback);
    assert_eq!(retriaged.version, locked.version + 1);
    let saved = retriaged.triage.clone().expect("triage");
    assert_eq!(saved.source, "rules");
    assert_eq!(saved.helpful_notes, Some(String::new()));
    assert_eq!(reread(&store, &ticket).await, retriaged);

    let err = store
        .save_triage(
            &new_id(),
            triage(TriageStatus::Done, Priority::Low, TriageSource::Rules),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn failed_triage_marks_only_pending_tickets(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let plain = add_ticket(&store, &user, "One", "1").await;
    store
        .mark_triage_failed(&plain.id, "AI unavailable")
        .await
        .unwrap();
    let failed = reread(&store, &plain).await;
    assert_eq!(failed.triage_status, TriageStatus::Failed);
    assert_eq!(failed.routing_reason.as_deref(), Some("AI unavailable"));
    assert_eq!(failed.version, plain.version + 1);
    assert_eq!(failed.triage, None);
    assert_eq!(failed.priority, plain.priority);

    // A reason already given stays.
    let routed = add_ticket(&store, &user, "Two", "2").await;
    store
        .set_routing_reason(&routed.id, "queued: nobody has capacity")
        .await
        .unwrap();
    store
        .mark_triage_failed(&routed.id, "AI unavailable")
        .await
        .unwrap();
    let routed_failed = reread(&store, &routed).await;
    assert_eq!(routed_failed.triage_status, TriageStatus::Failed);
    assert_eq!(
        routed_failed.routing_reason.as_deref(),
        Some("queued: nobody has capacity")
    );

    // A finished triage is left alone, and so is a second failure.
    let done = add_ticket(&store, &user, "Three", "3").await;
    let done = store
        .save_triage(
            &done.id,
            triage(TriageStatus::Done, Priority::High, TriageSource::Rules),
        )
        .await
        .unwrap();
    store
        .mark_triage_failed(&done.id, "too late")
        .await
        .unwrap();
    assert_eq!(reread(&store, &done).await, done);
    store.mark_triage_failed(&plain.id, "again").await.unwrap();
    assert_eq!(reread(&store, &plain).await, failed);

    // Unknown tickets are no error.
    store.mark_triage_failed(&new_id(), "gone").await.unwrap();
}

async fn staff_loads_count_open_and_in_progress_work_only(store: Arc<dyn Store>) {
    assert!(store.staff_loads().await.unwrap().is_empty());
    let user = add_user(&store, Role::User).await;
    let busy = add_user(&store, Role::Moderator).await;
    let idle = add_user(&store, Role::Moderator).await;
    let idle = store
        .update_user(
            &idle.id,
            UserPatch {
                capacity: Some(Some(3)),
                skills: Some(vec!["billing".into()]),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    let admin = add_user(&store, Role::Admin).await;

    let mut last = None;
    for (title, status) in [
        ("open", None),
        ("working", Some(TicketStatus::InProgress)),
        ("resolved", Some(TicketStatus::Resolved)),
        ("closed", Some(TicketStatus::Closed)),
    ] {
        let ticket = add_ticket(&store, &user, title, "load").await;
        let assigned = change(&store, &ticket, assign_to(&busy)).await;
        last = assigned.assigned_at;
        if let Some(status) = status {
            change(&store, &assigned, set_status(status)).await;
        }
    }
    let for_admin = add_ticket(&store, &user, "admin's", "load").await;
    let for_admin = change(&store, &for_admin, assign_to(&admin)).await;
    // Unassigned work loads nobody.
    add_ticket(&store, &user, "queued", "load").await;

    let mut expected = vec![
        StaffLoad {
            id: busy.id.clone(),
            email: busy.email.clone(),
            name: busy.name.clone(),
            role: Role::Moderator,
            skills: busy.skills.clone(),
            capacity: None,
            open_tickets: 2,
            last_assigned_at: last,
        },
        StaffLoad {
            id: idle.id.clone(),
            email: idle.email.clone(),
            name: idle.name.clone(),
            role: Role::Moderator,
            skills: vec!["billing".into()],
            capacity: Some(3),
            open_tickets: 0,
            last_assigned_at: None,
        },
        StaffLoad {
            id: admin.id.clone(),
            email: admin.email.clone(),
            name: admin.name.clone(),
            role: Role::Admin,
            skills: admin.skills.clone(),
            capacity: None,
            open_tickets: 1,
            last_assigned_at: for_admin.assigned_at,
        },
    ];
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        store.staff_loads().await.unwrap(),
        expected,
        "users excluded"
    );

    // Demoted staff leave the list; promoted users join it.
    store
        .update_user(
            &busy.id,
            UserPatch {
                role: Some(Role::User),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<String> = store
        .staff_loads()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    let mut remaining = vec![idle.id.clone(), admin.id.clone()];
    remaining.sort();
    assert_eq!(ids, remaining);
}

async fn conditional_assignment_refuses_assigned_tickets(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let chosen = add_user(&store, Role::Moderator).await;
    let other = add_user(&store, Role::Moderator).await;
    let ticket = add_ticket(&store, &user, "Route me", "please").await;
    let events_before = all_events(&store).await.len();

    let assigned = store
        .assign_if_unassigned(&ticket.id, &chosen.id, "skills: sql")
        .await
        .unwrap()
        .expect("was unassigned");
    assert_eq!(assigned.assigned_to, Some(chosen.id.clone()));
    assert_eq!(assigned.routing_reason.as_deref(), Some("skills: sql"));
    assert_eq!(assigned.assigned_at, Some(assigned.updated_at));
    assert_eq!(assigned.version, ticket.version + 1);
    assert_eq!(reread(&store, &ticket).await, assigned);
    assert_eq!(
        load_of(&store, &chosen).await.last_assigned_at,
        assigned.assigned_at
    );

    // Someone got there first: nothing changes.
    let refused = store
        .assign_if_unassigned(&ticket.id, &other.id, "least loaded")
        .await
        .unwrap();
    assert_eq!(refused, None);
    assert_eq!(reread(&store, &ticket).await, assigned);
    assert_eq!(load_of(&store, &other).await.last_assigned_at, None);
    assert_eq!(load_of(&store, &chosen).await.open_tickets, 1);

    // Unknown tickets cannot be assigned either.
    assert_eq!(
        store
            .assign_if_unassigned(&new_id(), &other.id, "x")
            .await
            .unwrap(),
        None
    );

    // Once unassigned again, it can be routed again.
    let unassigned = change(
        &store,
        &assigned,
        TicketChange {
            assigned_to: Some(None),
            ..TicketChange::default()
        },
    )
    .await;
    let rerouted = store
        .assign_if_unassigned(&ticket.id, &other.id, "least loaded")
        .await
        .unwrap()
        .expect("unassigned again");
    assert_eq!(rerouted.assigned_to, Some(other.id.clone()));
    assert_eq!(rerouted.routing_reason.as_deref(), Some("least loaded"));
    assert_eq!(rerouted.version, unassigned.version + 1);
    assert_eq!(
        load_of(&store, &other).await.last_assigned_at,
        rerouted.assigned_at
    );
    // Routing writes no events; only the manual update did.
    assert_eq!(all_events(&store).await.len(), events_before + 1);
}

async fn assignment_needs_a_current_staff_member(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let former = add_user(&store, Role::Moderator).await;
    let ticket = add_ticket(&store, &user, "Route me", "please").await;
    store
        .update_user(
            &former.id,
            UserPatch {
                role: Some(Role::User),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    // Chosen while still staff, demoted before the write: nobody is assigned.
    for not_staff in [&former, &user] {
        let refused = store
            .assign_if_unassigned(&ticket.id, &not_staff.id, "skills: sql")
            .await
            .unwrap();
        assert_eq!(refused, None);
    }
    assert_eq!(reread(&store, &ticket).await, ticket);
}

async fn revoking_staff_hands_their_open_tickets_back_to_routing(store: Arc<dyn Store>) {
    let admin = add_user(&store, Role::Admin).await;
    let leaving = add_user(&store, Role::Moderator).await;
    let customer = add_user(&store, Role::User).await;
    let open = assigned_ticket(&store, &customer, &leaving, None).await;
    let working =
        assigned_ticket(&store, &customer, &leaving, Some(TicketStatus::InProgress)).await;
    let resolved = assigned_ticket(&store, &customer, &leaving, Some(TicketStatus::Resolved)).await;
    let others = assigned_ticket(&store, &customer, &admin, None).await;
    let events_before = all_events(&store).await.len();

    let (user, mut released) = store.revoke_staff(&leaving.id, &admin.id).await.unwrap();
    assert_eq!(user.role, Role::User);
    assert_eq!(user.id, leaving.id);
    released.sort();
    let mut expected = vec![open.id.clone(), working.id.clone()];
    expected.sort();
    assert_eq!(released, expected);
    for before in [&open, &working] {
        let after = reread(&store, before).await;
        assert_eq!(after.assigned_to, None);
        assert_eq!(after.assigned_at, None);
        assert_eq!(
            after.routing_reason.as_deref(),
            Some(ticketing::store::RELEASED_REASON)
        );
        assert_eq!(after.status, before.status);
        assert_eq!(after.version, before.version + 1);
        // The log says who let the ticket go, and why.
        let log = store.list_activity(&before.id).await.unwrap();
        let last = log.last().expect("an entry for the release");
        assert_eq!(last.actor_id.as_deref(), Some(admin.id.as_str()));
        assert_eq!(
            last.activity,
            ticketing::domain::activity::Activity::Assigned {
                assignee_id: None,
                reason: Some(ticketing::store::RELEASED_REASON.to_owned()),
            }
        );
    }
    // Finished work keeps its history; other people's tickets are untouched.
    assert_eq!(reread(&store, &resolved).await, resolved);
    assert_eq!(reread(&store, &others).await, others);
    assert!(
        store
            .staff_loads()
            .await
            .unwrap()
            .iter()
            .all(|l| l.id != leaving.id)
    );

    let events = all_events(&store).await;
    let new = &events[events_before..];
    assert_eq!(new.len(), 4, "{new:?}");
    for id in &expected {
        let mine: Vec<OutboxEvent> = new
            .iter()
            .filter(|e| e.data["ticket_id"] == *id)
            .cloned()
            .collect();
        assert_eq!(names(&mine), ["ticket/updated", "ticket/reroute.requested"]);
        assert_eq!(mine[0].data["actor_id"], admin.id.as_str());
        assert_eq!(
            mine[0].data["changes"]["assigned_to"],
            json!({"from": leaving.id, "to": null})
        );
        assert_eq!(mine[1].data["actor_id"], admin.id.as_str());
    }

    // Unknown people are not found, and nothing is written.
    assert!(matches!(
        store.revoke_staff(&new_id(), &admin.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(all_events(&store).await.len(), events.len());
}

/// A ticket `by` opened, assigned to `to`, then moved to `status`.
async fn assigned_ticket(
    store: &Arc<dyn Store>,
    by: &User,
    to: &User,
    status: Option<TicketStatus>,
) -> Ticket {
    let t = add_ticket(store, by, "Assigned", "to someone").await;
    let t = change(store, &t, assign_to(to)).await;
    match status {
        Some(s) => change(store, &t, set_status(s)).await,
        None => t,
    }
}

async fn routing_reason_and_sla_due_leave_the_version(store: Arc<dyn Store>) {
    use chrono::SubsecRound;
    let user = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &user, "SLA", "clock").await;

    store
        .set_routing_reason(&ticket.id, "queued: nobody free")
        .await
        .unwrap();
    // Whole milliseconds: the finest time both stores keep.
    let due = (chrono::Utc::now() + chrono::Duration::hours(4)).trunc_subsecs(3);
    store.set_sla_due(&ticket.id, due).await.unwrap();
    let noted = reread(&store, &ticket).await;
    assert_eq!(noted.routing_reason.as_deref(), Some("queued: nobody free"));
    assert_eq!(noted.sla_due_at, Some(due));
    assert_eq!(noted.version, ticket.version);
    assert_eq!(noted.updated_at, ticket.updated_at);

    let later = due + chrono::Duration::minutes(30);
    store
        .set_routing_reason(&ticket.id, "skills: printers")
        .await
        .unwrap();
    store.set_sla_due(&ticket.id, later).await.unwrap();
    let renoted = reread(&store, &ticket).await;
    assert_eq!(renoted.routing_reason.as_deref(), Some("skills: printers"));
    assert_eq!(renoted.sla_due_at, Some(later));

    // Unknown tickets are no error, and nothing appears.
    let missing = new_id();
    store.set_routing_reason(&missing, "x").await.unwrap();
    store.set_sla_due(&missing, due).await.unwrap();
    assert_eq!(store.get_ticket(&missing).await.unwrap(), None);
}

async fn escalation_raises_priority_once_and_spares_finished_tickets(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &user, "Late", "overdue").await;
    assert_eq!(ticket.priority, Priority::Medium);

    let escalated = store
        .escalate(&ticket.id)
        .await
        .unwrap()
        .expect("first escalation");
    assert_eq!(escalated.priority, Priority::High);
    assert_eq!(escalated.escalated_at, Some(escalated.updated_at));
    assert_eq!(escalated.version, ticket.version + 1);
    assert_eq!(reread(&store, &ticket).await, escalated);

    // Once only.
    assert_eq!(store.escalate(&ticket.id).await.unwrap(), None);
    assert_eq!(reread(&store, &ticket).await, escalated);

    // One step at a time, from the current priority.
    let low = add_ticket(&store, &user, "Low", "overdue").await;
    let low = change(
        &store,
        &low,
        TicketChange {
            priority: Some(Priority::Low),
            ..TicketChange::default()
        },
    )
    .await;
    let raised = store.escalate(&low.id).await.unwrap().expect("escalated");
    assert_eq!(raised.priority, Priority::Medium);

    // Finished tickets breached nothing.
    for status in [TicketStatus::Resolved, TicketStatus::Closed] {
        let finished = add_ticket(&store, &user, "Done", "in time").await;
        let finished = change(&store, &finished, set_status(status)).await;
        assert_eq!(store.escalate(&finished.id).await.unwrap(), None);
        assert_eq!(reread(&store, &finished).await, finished);
    }
    // In progress still counts.
    let working = add_ticket(&store, &user, "Working", "slowly").await;
    let working = change(&store, &working, set_status(TicketStatus::InProgress)).await;
    assert!(store.escalate(&working.id).await.unwrap().is_some());

    let err = store.escalate(&new_id()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(store.stats().await.unwrap().sla_breaches, 3);
}

async fn sent_mail_is_recorded_once(store: Arc<dyn Store>) {
    let key = format!("run-{}:step-welcome", new_id());
    assert!(!store.mail_sent(&key).await.unwrap());
    store
        .record_mail(&key, "ann@example.com", "Welcome")
        .await
        .unwrap();
    assert!(store.mail_sent(&key).await.unwrap());
    // A replayed step records again: no error, still one record.
    store
        .record_mail(&key, "ann@example.com", "Welcome")
        .await
        .unwrap();
    store
        .record_mail(&key, "bob@example.com", "Other")
        .await
        .unwrap();
    assert!(store.mail_sent(&key).await.unwrap());
    assert!(!store.mail_sent(&format!("{key}-other")).await.unwrap());
    assert!(!store.mail_sent("").await.unwrap());
}

async fn the_store_answers_pings(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    assert!(["sqlite", "mongodb"].contains(&store.backend()));
}

async fn set_due(store: &Arc<dyn Store>, ticket: &Ticket, due: chrono::DateTime<chrono::Utc>) {
    store.set_sla_due(&ticket.id, due).await.expect("set SLA");
}

async fn tickets_list_by_sla_deadline_across_pages(store: Arc<dyn Store>) {
    use chrono::SubsecRound;
    let user = add_user(&store, Role::User).await;
    let mut tickets = Vec::new();
    for i in 0..7 {
        tickets.push(add_ticket(&store, &user, &format!("Ticket {i}"), "d").await);
    }
    // Whole milliseconds: the finest time both stores keep.
    let base = chrono::Utc::now().trunc_subsecs(3);
    let hours = |h| base + chrono::Duration::hours(h);
    set_due(&store, &tickets[0], hours(5)).await;
    set_due(&store, &tickets[1], hours(1)).await;
    set_due(&store, &tickets[2], hours(3)).await;
    // Same deadline: by id.
    set_due(&store, &tickets[3], hours(3)).await;
    // 4, 5 and 6 have none: last, by id.
    set_due(&store, &tickets[6], hours(-2)).await;
    let expected = ids_of(&[
        &tickets[6],
        &tickets[1],
        &tickets[2],
        &tickets[3],
        &tickets[0],
        &tickets[4],
        &tickets[5],
    ]);

    let mut seen = Vec::new();
    let mut cursor: Option<(Option<chrono::DateTime<chrono::Utc>>, String)> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_tickets(&TicketQuery {
                sort: TicketSort::SlaDue {
                    after_due: cursor.as_ref().and_then(|c| c.0),
                },
                after: cursor.as_ref().map(|c| c.1.clone()),
                limit: 2,
                ..everything()
            })
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|t| t.id.clone()));
        let Some(next) = page.next_after else { break };
        let last = page.items.last().unwrap();
        assert_eq!(next, last.id);
        cursor = Some((last.sla_due_at, last.id.clone()));
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 4);

    // One page with everything, and filters still apply.
    let all = ids(
        &store,
        TicketQuery {
            sort: TicketSort::SlaDue { after_due: None },
            ..everything()
        },
    )
    .await;
    assert_eq!(all, expected);
    let other = add_user(&store, Role::User).await;
    add_ticket(&store, &other, "Not theirs", "d").await;
    let theirs = ids(
        &store,
        TicketQuery {
            sort: TicketSort::SlaDue { after_due: None },
            visibility: Visibility::CreatedBy(user.id.clone()),
            ..everything()
        },
    )
    .await;
    assert_eq!(theirs, expected);
}

/// (kind, actor, activity) of each logged entry, oldest first.
async fn log_of(store: &Arc<dyn Store>, ticket: &Ticket) -> Vec<(Option<String>, Activity)> {
    let entries = store.list_activity(&ticket.id).await.expect("activity");
    assert!(entries.iter().all(|e| e.ticket_id == ticket.id));
    assert!(
        entries
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at)
    );
    entries
        .into_iter()
        .map(|e| (e.actor_id, e.activity))
        .collect()
}

async fn every_change_is_logged_with_its_actor_in_order(store: Arc<dyn Store>) {
    use chrono::SubsecRound;
    let user = add_user(&store, Role::User).await;
    let moderator = add_user(&store, Role::Moderator).await;
    let admin = add_user(&store, Role::Admin).await;
    let ticket = add_ticket(&store, &user, "Printer", "on fire").await;
    store
        .save_triage(
            &ticket.id,
            triage(TriageStatus::Done, Priority::Low, TriageSource::Gemini),
        )
        .await
        .unwrap();
    store
        .assign_if_unassigned(&ticket.id, &moderator.id, "skills: printers")
        .await
        .unwrap()
        .expect("assigned");
    let due = (chrono::Utc::now() + chrono::Duration::hours(8)).trunc_subsecs(3);
    set_due(&store, &ticket, due).await;
    let note = comment(&store, &ticket, &moderator, true).await;
    let reply = comment(&store, &ticket, &user, false).await;
    let current = reread(&store, &ticket).await;
    change(
        &store,
        &current,
        TicketChange {
            status: Some(TicketStatus::InProgress),
            priority: Some(Priority::High),
            lock_priority: true,
            assigned_to: Some(Some(admin.id.clone())),
            routing_reason: Some("Assigned by an admin.".into()),
            actor: Some(admin.id.clone()),
        },
    )
    .await;
    let escalated = store
        .escalate(&ticket.id)
        .await
        .unwrap()
        .expect("escalated");
    let current = reread(&store, &ticket).await;
    change(
        &store,
        &current,
        TicketChange {
            status: Some(TicketStatus::Resolved),
            actor: Some(admin.id.clone()),
            ..TicketChange::default()
        },
    )
    .await;
    let rated = store
        .rate_ticket(NewRating {
            ticket_id: ticket.id.clone(),
            by: user.id.clone(),
            score: 5,
            comment: None,
        })
        .await
        .unwrap();
    assert!(matches!(rated, RateOutcome::Rated(_)));

    let by = |u: &User| Some(u.id.clone());
    assert_eq!(
        log_of(&store, &ticket).await,
        vec![
            (by(&user), Activity::Created {}),
            (
                None,
                Activity::Triaged {
                    source: Some("gemini".into()),
                    status: TriageStatus::Done,
                    category: Some(Category::Bug),
                    priority: Some(Priority::Low),
                }
            ),
            (
                None,
                Activity::Assigned {
                    assignee_id: by(&moderator),
                    reason: Some("skills: printers".into()),
                }
            ),
            (None, Activity::SlaSet { due_at: due }),
            (
                by(&moderator),
                Activity::Commented {
                    comment_id: note.id.clone(),
                    internal: true,
                }
            ),
            (
                by(&user),
                Activity::Commented {
                    comment_id: reply.id.clone(),
                    internal: false,
                }
            ),
            (
                by(&admin),
                Activity::StatusChanged {
                    from: TicketStatus::Open,
                    to: TicketStatus::InProgress,
                }
            ),
            (
                by(&admin),
                Activity::PriorityChanged {
                    from: Priority::Low,
                    to: Priority::High,
                }
            ),
            (
                by(&admin),
                Activity::Assigned {
                    assignee_id: by(&admin),
                    reason: Some("Assigned by an admin.".into()),
                }
            ),
            (
                None,
                Activity::Escalated {
                    priority: escalated.priority,
                }
            ),
            (
                by(&admin),
                Activity::StatusChanged {
                    from: TicketStatus::InProgress,
                    to: TicketStatus::Resolved,
                }
            ),
            (by(&user), Activity::Rated { score: 5 }),
        ]
    );

    // Routing that finds nobody leaves the ticket in the queue, with its reason.
    let queued = add_ticket(&store, &user, "Queued", "nobody free").await;
    store
        .set_routing_reason(&queued.id, "No moderator has capacity.")
        .await
        .unwrap();
    store
        .mark_triage_failed(&queued.id, "triage failed")
        .await
        .unwrap();
    assert_eq!(
        log_of(&store, &queued).await,
        vec![
            (by(&user), Activity::Created {}),
            (
                None,
                Activity::Assigned {
                    assignee_id: None,
                    reason: Some("No moderator has capacity.".into()),
                }
            ),
            (
                None,
                Activity::Triaged {
                    source: None,
                    status: TriageStatus::Failed,
                    category: None,
                    priority: None,
                }
            ),
        ]
    );
    // Another ticket's log is its own.
    assert_eq!(
        log_of(&store, &add_ticket(&store, &user, "New", "d").await)
            .await
            .len(),
        1
    );
    assert!(store.list_activity(&new_id()).await.unwrap().is_empty());
}

async fn failed_and_repeated_writes_log_nothing(store: Arc<dyn Store>) {
    use chrono::SubsecRound;
    let user = add_user(&store, Role::User).await;
    let moderator = add_user(&store, Role::Moderator).await;
    let ticket = add_ticket(&store, &user, "Quiet", "d").await;
    let before = log_of(&store, &ticket).await;

    // A stale version changes nothing, so it logs nothing.
    let stale = store
        .update_ticket(
            &ticket.id,
            ticket.version + 7,
            set_status(TicketStatus::Closed),
            vec![],
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
    // A change to what it already is logs nothing either.
    change(&store, &ticket, set_status(TicketStatus::Open)).await;
    assert_eq!(log_of(&store, &ticket).await, before);

    // Replayed bookkeeping (the same deadline, the same reason) is logged once.
    let due = (chrono::Utc::now() + chrono::Duration::hours(1)).trunc_subsecs(3);
    set_due(&store, &ticket, due).await;
    set_due(&store, &ticket, due).await;
    store
        .set_routing_reason(&ticket.id, "queued")
        .await
        .unwrap();
    store
        .set_routing_reason(&ticket.id, "queued")
        .await
        .unwrap();
    // Assigned already: the conditional assignment does nothing.
    let ticket = change(
        &store,
        &reread(&store, &ticket).await,
        assign_to(&moderator),
    )
    .await;
    assert!(
        store
            .assign_if_unassigned(&ticket.id, &moderator.id, "again")
            .await
            .unwrap()
            .is_none()
    );
    // Triage completed: a late failure does not count.
    store
        .save_triage(
            &ticket.id,
            triage(TriageStatus::Done, Priority::Low, TriageSource::Rules),
        )
        .await
        .unwrap();
    store.mark_triage_failed(&ticket.id, "late").await.unwrap();
    let kinds: Vec<&str> = log_of(&store, &ticket)
        .await
        .iter()
        .map(|(_, a)| match a {
            Activity::Created {} => "created",
            Activity::SlaSet { .. } => "sla_set",
            Activity::Assigned { .. } => "assigned",
            Activity::Triaged { .. } => "triaged",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["created", "sla_set", "assigned", "assigned", "triaged"]
    );
}

fn rating(ticket: &Ticket, by: &User, score: u8, comment: Option<&str>) -> NewRating {
    NewRating {
        ticket_id: ticket.id.clone(),
        by: by.id.clone(),
        score,
        comment: comment.map(str::to_owned),
    }
}

async fn ratings_need_resolution_and_land_once(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &user, "Rate me", "d").await;
    assert_eq!(ticket.rating, None);
    assert_eq!(
        store
            .rate_ticket(rating(&ticket, &user, 4, None))
            .await
            .unwrap(),
        RateOutcome::NotResolved
    );
    let in_progress = change(&store, &ticket, set_status(TicketStatus::InProgress)).await;
    assert_eq!(
        store
            .rate_ticket(rating(&ticket, &user, 4, None))
            .await
            .unwrap(),
        RateOutcome::NotResolved
    );
    let resolved = change(&store, &in_progress, set_status(TicketStatus::Resolved)).await;
    let RateOutcome::Rated(rated) = store
        .rate_ticket(rating(&ticket, &user, 4, Some("Quick and kind")))
        .await
        .unwrap()
    else {
        panic!("a resolved ticket is rated");
    };
    let given = rated.rating.clone().expect("rating");
    assert_eq!(given.score, 4);
    assert_eq!(given.comment.as_deref(), Some("Quick and kind"));
    // A rating is feedback, not a change to the work: the version stays.
    assert_eq!(rated.version, resolved.version);
    assert_eq!(reread(&store, &ticket).await.rating, Some(given.clone()));
    assert_eq!(
        store
            .rate_ticket(rating(&ticket, &user, 1, None))
            .await
            .unwrap(),
        RateOutcome::AlreadyRated
    );
    // Reopened and closed again: still rated once, with the first rating.
    let reopened = change(&store, &rated, set_status(TicketStatus::Open)).await;
    let closed = change(&store, &reopened, set_status(TicketStatus::Closed)).await;
    assert_eq!(closed.rating, Some(given));
    assert_eq!(
        store
            .rate_ticket(rating(&ticket, &user, 2, None))
            .await
            .unwrap(),
        RateOutcome::AlreadyRated
    );

    // Closed without resolving counts as finished.
    let other = add_ticket(&store, &user, "Closed early", "d").await;
    let other = change(&store, &other, set_status(TicketStatus::Closed)).await;
    let outcome = store
        .rate_ticket(rating(&other, &user, 2, None))
        .await
        .unwrap();
    assert!(matches!(outcome, RateOutcome::Rated(_)), "{outcome:?}");

    // Two at once: one lands.
    let raced = add_ticket(&store, &user, "Raced", "d").await;
    let raced = change(&store, &raced, set_status(TicketStatus::Closed)).await;
    let (a, b) = tokio::join!(
        store.rate_ticket(rating(&raced, &user, 5, None)),
        store.rate_ticket(rating(&raced, &user, 1, None))
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, RateOutcome::Rated(_)))
            .count(),
        1
    );
    assert!(outcomes.contains(&RateOutcome::AlreadyRated));
    let rated_logs = log_of(&store, &raced)
        .await
        .into_iter()
        .filter(|(_, a)| matches!(a, Activity::Rated { .. }))
        .count();
    assert_eq!(rated_logs, 1);

    let missing = store
        .rate_ticket(NewRating {
            ticket_id: new_id(),
            ..rating(&ticket, &user, 3, None)
        })
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}

async fn stats_cover_satisfaction_and_tickets_per_day(store: Arc<dyn Store>) {
    let user = add_user(&store, Role::User).await;
    for (i, score) in [5_u8, 5, 2].into_iter().enumerate() {
        let t = add_ticket(&store, &user, &format!("Rated {i}"), "d").await;
        let t = change(&store, &t, set_status(TicketStatus::Resolved)).await;
        store
            .rate_ticket(rating(&t, &user, score, None))
            .await
            .unwrap();
    }
    let open = add_ticket(&store, &user, "Open", "d").await;
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.satisfaction.count, 3);
    assert_close(stats.satisfaction.average, 4.0);
    assert_eq!(
        stats.satisfaction.by_score,
        ["1", "2", "3", "4", "5"]
            .into_iter()
            .zip([0, 1, 0, 0, 2])
            .map(|(key, count)| Count {
                key: key.into(),
                count
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(stats.per_day.len(), 30);
    let today = open.created_at.format("%Y-%m-%d").to_string();
    let (last, earlier) = stats.per_day.split_last().unwrap();
    assert_eq!(last.date, today);
    assert_eq!((last.created, last.resolved), (4, 3));
    assert!(earlier.iter().all(|d| d.created == 0 && d.resolved == 0));
    assert!(stats.per_day.windows(2).all(|w| w[0].date < w[1].date));
}
