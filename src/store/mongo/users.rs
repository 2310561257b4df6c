use super::transaction::TxError;
use super::{
    ID_INDEX, MongoStore, all_documents, bad_document, driver, duplicate_key_index, fetch_limit,
    from_bson_date, now, to_bson_date,
};
use crate::domain::events::NewEvent;
use crate::domain::user::Role;
use crate::store::{
    Credentials, NewUser, Page, StoreError, StoreResult, User, UserPatch, UserQuery, UserStore,
};
use async_trait::async_trait;
use futures::FutureExt;
use mongodb::bson::{self, Bson, Document, doc};
use serde::Deserialize;

/// Every read but login leaves the password hash on the server.
pub(super) fn without_hash() -> Document {
    doc! { "password_hash": 0 }
}

#[derive(Deserialize)]
pub(super) struct UserDoc {
    #[serde(rename = "_id")]
    id: String,
    email: String,
    name: String,
    role: Role,
    skills: Vec<String>,
    capacity: Option<i64>,
    /// Absent on accounts written before verification existed: those count as verified.
    #[serde(default = "verified_by_default")]
    email_verified: bool,
    #[serde(default)]
    token_generation: i64,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
}

fn verified_by_default() -> bool {
    true
}

impl UserDoc {
    pub(super) fn decode(document: Document) -> StoreResult<User> {
        let d: UserDoc = bson::from_document(document).map_err(|e| bad_document("user", e))?;
        Ok(User {
            capacity: d
                .capacity
                .map(u32::try_from)
                .transpose()
                .map_err(|e| bad_document("user capacity", e))?,
            id: d.id,
            email: d.email,
            name: d.name,
            role: d.role,
            skills: d.skills,
            email_verified: d.email_verified,
            token_generation: d.token_generation,
            created_at: from_bson_date(d.created_at)?,
            updated_at: from_bson_date(d.updated_at)?,
        })
    }
}

pub(super) fn user_document(user: &NewUser, now: bson::DateTime) -> Document {
    doc! {
        "_id": &user.id,
        "email": &user.email,
        "name": &user.name,
        "password_hash": &user.password_hash,
        "role": user.role.as_str(),
        "skills": &user.skills,
        "capacity": Bson::Null,
        "last_assigned_at": Bson::Null,
        "email_verified": user.email_verified,
        "token_generation": 0_i64,
        "created_at": now,
        "updated_at": now,
    }
}

/// The update for `patch`, or `None` when it changes nothing (and `updated_at` stays).
fn user_update(patch: &UserPatch, now: bson::DateTime) -> Option<Document> {
    let mut set = Document::new();
    if let Some(role) = patch.role {
        set.insert("role", role.as_str());
    }
    if let Some(skills) = &patch.skills {
        set.insert("skills", skills);
    }
    if let Some(name) = &patch.name {
        set.insert("name", name);
    }
    if let Some(capacity) = patch.capacity {
        set.insert("capacity", capacity.map(i64::from));
    }
    if set.is_empty() {
        return None;
    }
    set.insert("updated_at", now);
    Some(doc! { "$set": set })
}

/// `_id` and `email` are the only unique keys of a user, so any other index name is the e-mail.
fn user_conflict(e: mongodb::error::Error) -> TxError {
    match duplicate_key_index(&e) {
        Some(index) if index == ID_INDEX => StoreError::Conflict { field: "id" }.into(),
        Some(_) => StoreError::Conflict { field: "email" }.into(),
        None => TxError::Driver(e),
    }
}

fn list_filter(query: &UserQuery) -> Document {
    let mut filter = Document::new();
    if let Some(role) = query.role {
        filter.insert("role", role.as_str());
    }
    if let Some(after) = &query.after {
        filter.insert("_id", doc! { "$gt": after });
    }
    filter
}

#[async_trait]
impl UserStore for MongoStore {
    async fn create_user(&self, user: NewUser, event: Option<NewEvent>) -> StoreResult<User> {
        self.run(move |inner| async move {
            let now = now();
            let document = user_document(&user, to_bson_date(now));
            let events: Vec<NewEvent> = event.into_iter().collect();
            inner
                .transact(|db, s| {
                    let document = document.clone();
                    let events = events.clone();
                    async move {
                        db.users
                            .insert_one(document)
                            .session(&mut *s)
                            .await
                            .map_err(user_conflict)?;
                        db.append_events(s, &events, now).await
                    }
                    .boxed()
                })
                .await?;
            UserDoc::decode(document)
        })
        .await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        let id = id.to_owned();
        self.run(move |inner| async move {
            inner
                .users
                .find_one(doc! { "_id": id })
                .projection(without_hash())
                .await
                .map_err(driver)?
                .map(UserDoc::decode)
                .transpose()
        })
        .await
    }

    async fn find_credentials(&self, email: &str) -> StoreResult<Option<Credentials>> {
        #[derive(Deserialize)]
        struct CredentialsDoc {
            #[serde(rename = "_id")]
            id: String,
            password_hash: String,
        }
        let email = email.to_owned();
        self.run(move |inner| async move {
            let Some(found) = inner
                .users
                .find_one(doc! { "email": email })
                .projection(doc! { "password_hash": 1 })
                .await
                .map_err(driver)?
            else {
                return Ok(None);
            };
            let d: CredentialsDoc =
                bson::from_document(found).map_err(|e| bad_document("user", e))?;
            Ok(Some(Credentials {
                user_id: d.id,
                password_hash: d.password_hash,
            }))
        })
        .await
    }

    async fn list_users(&self, query: &UserQuery) -> StoreResult<Page<User>> {
        let query = query.clone();
        self.run(move |inner| async move {
            let documents = all_documents(
                inner
                    .users
                    .find(list_filter(&query))
                    .sort(doc! { "_id": 1 })
                    .limit(fetch_limit(query.limit))
                    .projection(without_hash()),
            )
            .await?;
            let items = documents
                .into_iter()
                .map(UserDoc::decode)
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(crate::store::model::page(items, query.limit, |u| {
                u.id.clone()
            }))
        })
        .await
    }

    async fn update_user(&self, id: &str, patch: UserPatch) -> StoreResult<User> {
        let id = id.to_owned();
        self.run(move |inner| async move {
            let found = match user_update(&patch, to_bson_date(now())) {
                Some(update) => inner
                    .users
                    .find_one_and_update(doc! { "_id": &id }, update)
                    .projection(without_hash())
                    .return_document(mongodb::options::ReturnDocument::After)
                    .await
                    .map_err(driver)?,
                None => inner
                    .users
                    .find_one(doc! { "_id": &id })
                    .projection(without_hash())
                    .await
                    .map_err(driver)?,
            };
            found.map(UserDoc::decode).ok_or(StoreError::NotFound)?
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_user() -> NewUser {
        NewUser {
            id: crate::domain::new_id(),
            email: "ann@example.com".into(),
            name: "Ann".into(),
            password_hash: "$argon2id$secret".into(),
            role: Role::Moderator,
            skills: vec!["sql".into(), "react".into()],
            email_verified: true,
        }
    }

    #[test]
    fn stored_users_read_back_as_created() {
        let user = new_user();
        let now = super::super::now();
        let document = user_document(&user, to_bson_date(now));
        assert_eq!(document.get_str("password_hash"), Ok("$argon2id$secret"));
        let read = UserDoc::decode(document).unwrap();
        assert_eq!(
            read,
            User {
                id: user.id,
                email: user.email,
                name: user.name,
                role: Role::Moderator,
                skills: user.skills,
                capacity: None,
                email_verified: true,
                token_generation: 0,
                created_at: now,
                updated_at: now,
            }
        );
    }

    #[test]
    fn accounts_from_before_verification_count_as_verified() {
        let mut document = user_document(&new_user(), to_bson_date(super::super::now()));
        document.remove("email_verified");
        document.remove("token_generation");
        let read = UserDoc::decode(document).unwrap();
        assert!(read.email_verified);
        assert_eq!(read.token_generation, 0);
        let mut unverified = new_user();
        unverified.email_verified = false;
        let read = UserDoc::decode(user_document(&unverified, bson::DateTime::from_millis(0)));
        assert!(!read.unwrap().email_verified);
    }

    #[test]
    fn patches_set_only_what_they_name() {
        let t = bson::DateTime::from_millis(1_000);
        assert_eq!(user_update(&UserPatch::default(), t), None);
        let patch = UserPatch {
            role: Some(Role::Admin),
            capacity: Some(None),
            ..UserPatch::default()
        };
        assert_eq!(
            user_update(&patch, t),
            Some(doc! { "$set": { "role": "admin", "capacity": Bson::Null, "updated_at": t } })
        );
        let patch = UserPatch {
            skills: Some(vec!["go".into()]),
            name: Some("Bo".into()),
            capacity: Some(Some(3)),
            ..UserPatch::default()
        };
        assert_eq!(
            user_update(&patch, t),
            Some(doc! { "$set": {
                "skills": ["go"], "name": "Bo", "capacity": 3_i64, "updated_at": t
            } })
        );
    }

    #[test]
    fn user_filters_keep_values_as_plain_strings() {
        let query = UserQuery {
            role: Some(Role::User),
            limit: 10,
            after: Some("{\"$gt\": \"\"}".into()),
        };
        assert_eq!(
            list_filter(&query),
            doc! { "role": "user", "_id": { "$gt": "{\"$gt\": \"\"}" } }
        );
        assert_eq!(list_filter(&UserQuery::default()), doc! {});
    }

    #[test]
    fn duplicate_emails_are_email_conflicts() {
        let w: mongodb::error::WriteError = bson::from_document(doc! {
            "code": 11000,
            "errmsg": "E11000 duplicate key error collection: t.users index: users_email_unique dup key: { email: \"a\" }",
        })
        .unwrap();
        let e = mongodb::error::Error::from(mongodb::error::ErrorKind::Write(
            mongodb::error::WriteFailure::WriteError(w),
        ));
        assert!(matches!(
            user_conflict(e),
            TxError::Store(StoreError::Conflict { field: "email" })
        ));
        let w: mongodb::error::WriteError = bson::from_document(doc! {
            "code": 11000,
            "errmsg": "E11000 duplicate key error collection: t.users index: _id_ dup key: { _id: \"u1\" }",
        })
        .unwrap();
        let e = mongodb::error::Error::from(mongodb::error::ErrorKind::Write(
            mongodb::error::WriteFailure::WriteError(w),
        ));
        assert!(matches!(
            user_conflict(e),
            TxError::Store(StoreError::Conflict { field: "id" })
        ));
    }
}
