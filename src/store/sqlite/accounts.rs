use super::users::get_user;
use super::{SqliteStore, exec, insert_event, query_one, sql, ts};
use crate::domain::account_token::{TokenHash, TokenPurpose};
use crate::domain::events::NewEvent;
use crate::store::{AccountStore, NewAccountToken, StoreError, StoreResult, User};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

/// Raises the token generation, in the caller's transaction.
fn end_sessions(tx: &Transaction<'_>, user_id: &str, now: DateTime<Utc>) -> StoreResult<()> {
    let changed = exec(
        tx,
        "UPDATE users SET token_generation = token_generation + 1, updated_at = ?1 WHERE id = ?2",
        params![ts(now), user_id],
    )
    .map_err(sql)?;
    if changed == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

fn drop_tokens(tx: &Transaction<'_>, user_id: &str, purpose: TokenPurpose) -> StoreResult<()> {
    exec(
        tx,
        "DELETE FROM account_tokens WHERE user_id = ?1 AND purpose = ?2",
        params![user_id, purpose.as_str()],
    )
    .map_err(sql)?;
    Ok(())
}

/// Removes a live token and says whose it was.
fn take_token(
    tx: &Transaction<'_>,
    hash: &TokenHash,
    purpose: TokenPurpose,
    now: DateTime<Utc>,
) -> StoreResult<Option<String>> {
    query_one(
        tx,
        "DELETE FROM account_tokens WHERE hash = ?1 AND purpose = ?2 AND expires_at > ?3
         RETURNING user_id",
        params![hash.as_str(), purpose.as_str(), ts(now)],
        |r| r.get(0),
    )
    .optional()
    .map_err(sql)
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn set_password(&self, user_id: &str, password_hash: &str) -> StoreResult<User> {
        let (id, hash) = (user_id.to_owned(), password_hash.to_owned());
        self.write(move |tx| {
            exec(
                tx,
                "UPDATE users SET password_hash = ?1 WHERE id = ?2",
                params![hash, id],
            )
            .map_err(sql)?;
            end_sessions(tx, &id, Utc::now())?;
            drop_tokens(tx, &id, TokenPurpose::PasswordReset)?;
            get_user(tx, &id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn end_sessions(&self, user_id: &str) -> StoreResult<User> {
        let id = user_id.to_owned();
        self.write(move |tx| {
            end_sessions(tx, &id, Utc::now())?;
            get_user(tx, &id)?.ok_or(StoreError::NotFound)
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
        self.write(move |tx| {
            let found: Option<(String, bool)> = query_one(
                tx,
                "SELECT id, email_verified FROM users WHERE email = ?1",
                [email],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql)?;
            match found {
                Some((id, verified)) if !(unverified_only && verified) => {
                    insert_event(tx, &event(&id), Utc::now())?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await
    }

    async fn create_account_token(&self, token: NewAccountToken) -> StoreResult<()> {
        self.write(move |tx| {
            let now = Utc::now();
            exec(
                tx,
                "DELETE FROM account_tokens WHERE expires_at <= ?1",
                [ts(now)],
            )
            .map_err(sql)?;
            exec(
                tx,
                "INSERT INTO account_tokens (hash, user_id, purpose, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token.hash.as_str(),
                    token.user_id,
                    token.purpose.as_str(),
                    ts(now),
                    ts(token.expires_at)
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn find_account_token(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>> {
        let hash = hash.clone();
        self.read(move |c| {
            query_one(
                c,
                "SELECT user_id FROM account_tokens
                 WHERE hash = ?1 AND purpose = ?2 AND expires_at > ?3",
                params![hash.as_str(), purpose.as_str(), ts(now)],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)
        })
        .await
    }

    async fn reset_password(
        &self,
        hash: &TokenHash,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        let (hash, password_hash) = (hash.clone(), password_hash.to_owned());
        self.write(move |tx| {
            let Some(id) = take_token(tx, &hash, TokenPurpose::PasswordReset, now)? else {
                return Ok(None);
            };
            exec(
                tx,
                "UPDATE users SET password_hash = ?1, email_verified = 1 WHERE id = ?2",
                params![password_hash, id],
            )
            .map_err(sql)?;
            end_sessions(tx, &id, now)?;
            drop_tokens(tx, &id, TokenPurpose::PasswordReset)?;
            get_user(tx, &id)
        })
        .await
    }

    async fn verify_email(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        let hash = hash.clone();
        self.write(move |tx| {
            let Some(id) = take_token(tx, &hash, TokenPurpose::EmailVerification, now)? else {
                return Ok(None);
            };
            exec(
                tx,
                "UPDATE users SET email_verified = 1, updated_at = ?1 WHERE id = ?2",
                params![ts(now), id],
            )
            .map_err(sql)?;
            drop_tokens(tx, &id, TokenPurpose::EmailVerification)?;
            get_user(tx, &id)
        })
        .await
    }
}
