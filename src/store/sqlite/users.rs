use super::{SqliteStore, bad_value, exec, insert_event, parse_ts, query_one, sql, ts};
use crate::domain::events::NewEvent;
use crate::domain::user::Role;
use crate::store::{
    Credentials, NewUser, Page, StoreError, StoreResult, User, UserPatch, UserQuery, UserStore,
};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Row, params};

const COLUMNS: &str = "id, email, name, role, skills, capacity, created_at, updated_at, \
                       email_verified, token_generation";

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = row.get(3)?;
    let skills: String = row.get(4)?;
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        name: row.get(2)?,
        role: Role::parse(&role).map_err(|_| bad_value("role", &role))?,
        skills: serde_json::from_str(&skills).map_err(|_| bad_value("skills", &skills))?,
        capacity: row.get(5)?,
        created_at: parse_ts(&row.get::<_, String>(6)?)?,
        updated_at: parse_ts(&row.get::<_, String>(7)?)?,
        email_verified: row.get(8)?,
        token_generation: row.get(9)?,
    })
}

pub(super) fn get_user(conn: &Connection, id: &str) -> StoreResult<Option<User>> {
    query_one(
        conn,
        &format!("SELECT {COLUMNS} FROM users WHERE id = ?1"),
        [id],
        user_from_row,
    )
    .optional()
    .map_err(sql)
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: NewUser, event: Option<NewEvent>) -> StoreResult<User> {
        self.write(move |tx| {
            let now = Utc::now();
            let id = user.id.clone();
            exec(
                tx,
                "INSERT INTO users (id, email, name, password_hash, role, skills, created_at,
                                    updated_at, email_verified)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                params![
                    id,
                    user.email,
                    user.name,
                    user.password_hash,
                    user.role.as_str(),
                    serde_json::to_string(&user.skills).map_err(|e| StoreError::Other(e.into()))?,
                    ts(now),
                    user.email_verified
                ],
            )
            .map_err(sql)?;
            if let Some(event) = &event {
                insert_event(tx, event, now)?;
            }
            get_user(tx, &id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        let id = id.to_owned();
        self.lookup(move |c| get_user(c, &id)).await
    }

    async fn find_credentials(&self, email: &str) -> StoreResult<Option<Credentials>> {
        let email = email.to_owned();
        self.read(move |c| {
            query_one(
                c,
                "SELECT id, password_hash FROM users WHERE email = ?1",
                [email],
                |r| {
                    Ok(Credentials {
                        user_id: r.get(0)?,
                        password_hash: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(sql)
        })
        .await
    }

    async fn list_users(&self, query: &UserQuery) -> StoreResult<Page<User>> {
        let query = query.clone();
        self.read(move |c| {
            let mut sql_text = format!("SELECT {COLUMNS} FROM users WHERE 1=1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(role) = query.role {
                sql_text.push_str(" AND role = ?");
                args.push(role.as_str().to_owned().into());
            }
            if let Some(after) = &query.after {
                sql_text.push_str(" AND id > ?");
                args.push(after.clone().into());
            }
            sql_text.push_str(" ORDER BY id LIMIT ?");
            args.push(((query.limit + 1) as i64).into());
            let mut stmt = c.prepare_cached(&sql_text).map_err(sql)?;
            let items = stmt
                .query_map(rusqlite::params_from_iter(args), user_from_row)
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            Ok(crate::store::model::page(items, query.limit, |u| {
                u.id.clone()
            }))
        })
        .await
    }

    async fn update_user(&self, id: &str, patch: UserPatch) -> StoreResult<User> {
        let id = id.to_owned();
        self.write(move |tx| {
            if get_user(tx, &id)?.is_none() {
                return Err(StoreError::NotFound);
            }
            let now = ts(Utc::now());
            if let Some(role) = patch.role {
                exec(
                    tx,
                    "UPDATE users SET role = ?1, updated_at = ?2 WHERE id = ?3",
                    params![role.as_str(), now, id],
                )
                .map_err(sql)?;
            }
            if let Some(skills) = &patch.skills {
                let skills =
                    serde_json::to_string(skills).map_err(|e| StoreError::Other(e.into()))?;
                exec(
                    tx,
                    "UPDATE users SET skills = ?1, updated_at = ?2 WHERE id = ?3",
                    params![skills, now, id],
                )
                .map_err(sql)?;
            }
            if let Some(name) = &patch.name {
                exec(
                    tx,
                    "UPDATE users SET name = ?1, updated_at = ?2 WHERE id = ?3",
                    params![name, now, id],
                )
                .map_err(sql)?;
            }
            if let Some(capacity) = patch.capacity {
                exec(
                    tx,
                    "UPDATE users SET capacity = ?1, updated_at = ?2 WHERE id = ?3",
                    params![capacity, now, id],
                )
                .map_err(sql)?;
            }
            get_user(tx, &id)?.ok_or(StoreError::NotFound)
        })
        .await
    }
}
