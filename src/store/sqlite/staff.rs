use super::users::get_user;
use super::{SqliteStore, exec, insert_event, sql, ts};
use crate::domain::events::NewEvent;
use crate::domain::user::Role;
use crate::store::{
    Activity, NewActivity, RELEASED_REASON, StaffStore, StoreError, StoreResult, User,
};
use async_trait::async_trait;
use chrono::Utc;
use rusqlite::params;

#[async_trait]
impl StaffStore for SqliteStore {
    async fn revoke_staff(
        &self,
        user_id: &str,
        actor_id: &str,
    ) -> StoreResult<(User, Vec<String>)> {
        let (id, actor) = (user_id.to_owned(), actor_id.to_owned());
        self.write(move |tx| {
            if get_user(tx, &id)?.is_none() {
                return Err(StoreError::NotFound);
            }
            let now = Utc::now();
            exec(
                tx,
                "UPDATE users SET role = ?1, updated_at = ?2 WHERE id = ?3",
                params![Role::User.as_str(), ts(now), id],
            )
            .map_err(sql)?;
            let released: Vec<String> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id FROM tickets
                         WHERE assigned_to = ?1 AND status IN ('open', 'in_progress') ORDER BY id",
                    )
                    .map_err(sql)?;
                stmt.query_map([&id], |r| r.get(0))
                    .map_err(sql)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(sql)?
            };
            for ticket_id in &released {
                exec(
                    tx,
                    "UPDATE tickets SET assigned_to = NULL, assigned_at = NULL, routing_reason = ?1,
                            updated_at = ?2, version = version + 1
                     WHERE id = ?3",
                    params![RELEASED_REASON, ts(now), ticket_id],
                )
                .map_err(sql)?;
                let entry = NewActivity::new(
                    Some(&actor),
                    Activity::Assigned {
                        assignee_id: None,
                        reason: Some(RELEASED_REASON.to_owned()),
                    },
                );
                super::activity::append(tx, ticket_id, [entry], now)?;
                for event in NewEvent::assignee_released(ticket_id, &actor, &id) {
                    insert_event(tx, &event, now)?;
                }
            }
            let user = get_user(tx, &id)?.ok_or(StoreError::NotFound)?;
            Ok((user, released))
        })
        .await
    }
}
