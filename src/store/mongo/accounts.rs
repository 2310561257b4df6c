//! One-time links live in `account_tokens`, keyed by their hash; a TTL index on `expires_at`
//! lets the server remove expired ones (within a minute or so, hence the expiry in every filter).
//! Using a link and changing the account it opens happen in one transaction.

use super::transaction::TxResult;
use super::users::{UserDoc, without_hash};
use super::{Inner, MongoStore, bad_document, driver, now, to_bson_date};
use crate::domain::account_token::{TokenHash, TokenPurpose};
use crate::domain::events::NewEvent;
use crate::store::{AccountStore, NewAccountToken, StoreError, StoreResult, User};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use mongodb::ClientSession;
use mongodb::bson::{Document, doc};
use mongodb::options::ReturnDocument;

fn live_token(hash: &TokenHash, purpose: TokenPurpose, at: DateTime<Utc>) -> Document {
    doc! {
        "_id": hash.as_str(),
        "purpose": purpose.as_str(),
        "expires_at": { "$gt": to_bson_date(at) },
    }
}

/// The update that ends every access token issued so far, plus `set`.
fn ending_sessions(mut set: Document, at: DateTime<Utc>) -> Document {
    set.insert("updated_at", to_bson_date(at));
    doc! { "$set": set, "$inc": { "token_generation": 1_i64 } }
}

impl Inner {
    /// Applies `update` to the user in the caller's transaction and returns them as they are now.
    async fn update_user_in(
        &self,
        session: &mut ClientSession,
        user_id: &str,
        update: Document,
    ) -> TxResult<Document> {
        self.users
            .find_one_and_update(doc! { "_id": user_id }, update)
            .projection(without_hash())
            .return_document(ReturnDocument::After)
            .session(&mut *session)
            .await?
            .ok_or_else(|| StoreError::NotFound.into())
    }

    async fn drop_tokens_in(
        &self,
        session: &mut ClientSession,
        user_id: &str,
        purpose: TokenPurpose,
    ) -> TxResult<()> {
        self.account_tokens
            .delete_many(doc! { "user_id": user_id, "purpose": purpose.as_str() })
            .session(&mut *session)
            .await?;
        Ok(())
    }

    /// Removes a live link and says whose it was.
    async fn take_token_in(
        &self,
        session: &mut ClientSession,
        hash: &TokenHash,
        purpose: TokenPurpose,
        at: DateTime<Utc>,
    ) -> TxResult<Option<String>> {
        let Some(token) = self
            .account_tokens
            .find_one_and_delete(live_token(hash, purpose, at))
            .session(&mut *session)
            .await?
        else {
            return Ok(None);
        };
        let user_id = token
            .get_str("user_id")
            .map_err(|e| bad_document("account token", e))?;
        Ok(Some(user_id.to_owned()))
    }

    /// Uses a live link of `purpose` and applies `set` to its account, which loses every link
    /// of that purpose; `end_sessions` also ends its access tokens.
    async fn redeem(
        &self,
        hash: TokenHash,
        purpose: TokenPurpose,
        set: Document,
        end_sessions: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        let updated = self
            .transact(|db, s| {
                let (hash, set) = (hash.clone(), set.clone());
                async move {
                    let Some(user_id) = db.take_token_in(s, &hash, purpose, at).await? else {
                        return Ok(None);
                    };
                    let update = if end_sessions {
                        ending_sessions(set, at)
                    } else {
                        let mut set = set;
                        set.insert("updated_at", to_bson_date(at));
                        doc! { "$set": set }
                    };
                    let user = db.update_user_in(s, &user_id, update).await?;
                    db.drop_tokens_in(s, &user_id, purpose).await?;
                    Ok(Some(user))
                }
                .boxed()
            })
            .await?;
        updated.map(UserDoc::decode).transpose()
    }
}

#[async_trait]
impl AccountStore for MongoStore {
    async fn set_password(&self, user_id: &str, password_hash: &str) -> StoreResult<User> {
        let (id, hash) = (user_id.to_owned(), password_hash.to_owned());
        self.run(move |inner| async move {
            let update = ending_sessions(doc! { "password_hash": &hash }, now());
            let user = inner
                .transact(|db, s| {
                    let (id, update) = (id.clone(), update.clone());
                    async move {
                        let user = db.update_user_in(s, &id, update).await?;
                        db.drop_tokens_in(s, &id, TokenPurpose::PasswordReset)
                            .await?;
                        Ok(user)
                    }
                    .boxed()
                })
                .await?;
            UserDoc::decode(user)
        })
        .await
    }

    async fn end_sessions(&self, user_id: &str) -> StoreResult<User> {
        let id = user_id.to_owned();
        self.run(move |inner| async move {
            inner
                .users
                .find_one_and_update(doc! { "_id": &id }, ending_sessions(doc! {}, now()))
                .projection(without_hash())
                .return_document(ReturnDocument::After)
                .await
                .map_err(driver)?
                .map(UserDoc::decode)
                .ok_or(StoreError::NotFound)?
        })
        .await
    }

    async fn queue_user_event(
        &self,
        email: &str,
        unverified_only: bool,
        event: for<'a> fn(&'a str) -> NewEvent,
    ) -> StoreResult<bool> {
        let email = email.to_owned();
        self.run(move |inner| async move {
            let at = now();
            inner
                .transact(|db, s| {
                    let email = email.clone();
                    async move {
                        let Some(found) = db
                            .users
                            .find_one(doc! { "email": &email })
                            .projection(doc! { "email_verified": 1 })
                            .session(&mut *s)
                            .await?
                        else {
                            return Ok(false);
                        };
                        let id = found
                            .get_str("_id")
                            .map_err(|e| bad_document("user", e))?
                            .to_owned();
                        // Absent on accounts from before verification: those count as verified.
                        let verified = found.get_bool("email_verified").unwrap_or(true);
                        if unverified_only && verified {
                            return Ok(false);
                        }
                        db.append_events(s, &[event(&id)], at).await?;
                        Ok(true)
                    }
                    .boxed()
                })
                .await
        })
        .await
    }

    async fn create_account_token(&self, token: NewAccountToken) -> StoreResult<()> {
        self.run(move |inner| async move {
            inner
                .account_tokens
                .insert_one(doc! {
                    "_id": token.hash.as_str(),
                    "user_id": &token.user_id,
                    "purpose": token.purpose.as_str(),
                    "created_at": to_bson_date(now()),
                    "expires_at": to_bson_date(token.expires_at),
                })
                .await
                .map_err(driver)?;
            Ok(())
        })
        .await
    }

    async fn find_account_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        let filter = live_token(hash, purpose, at);
        self.run(move |inner| async move {
            let Some(token) = inner
                .account_tokens
                .find_one(filter)
                .await
                .map_err(driver)?
            else {
                return Ok(None);
            };
            let user_id = token
                .get_str("user_id")
                .map_err(|e| bad_document("account token", e))?;
            Ok(Some(user_id.to_owned()))
        })
        .await
    }

    async fn reset_password(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        let (hash, set) = (
            hash.clone(),
            doc! { "password_hash": password_hash, "email_verified": true },
        );
        self.run(move |inner| async move {
            inner
                .redeem(hash, TokenPurpose::PasswordReset, set, true, at)
                .await
        })
        .await
    }

    async fn verify_email(&self, hash: &TokenHash, at: DateTime<Utc>) -> StoreResult<Option<User>> {
        let hash = hash.clone();
        self.run(move |inner| async move {
            let set = doc! { "email_verified": true };
            inner
                .redeem(hash, TokenPurpose::EmailVerification, set, false, at)
                .await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_live_tokens_of_the_purpose_match() {
        let hash = TokenHash::of(&"a".repeat(43)).unwrap();
        let at = DateTime::from_timestamp_millis(1_000).unwrap();
        assert_eq!(
            live_token(&hash, TokenPurpose::PasswordReset, at),
            doc! {
                "_id": hash.as_str(),
                "purpose": "password_reset",
                "expires_at": { "$gt": mongodb::bson::DateTime::from_millis(1_000) },
            }
        );
    }

    #[test]
    fn ending_sessions_raises_the_generation_beside_the_change() {
        let at = DateTime::from_timestamp_millis(5).unwrap();
        let update = ending_sessions(doc! { "password_hash": "h" }, at);
        assert_eq!(
            update,
            doc! {
                "$set": { "password_hash": "h", "updated_at": mongodb::bson::DateTime::from_millis(5) },
                "$inc": { "token_generation": 1_i64 },
            }
        );
    }
}
