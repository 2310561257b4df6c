use super::loads::open_statuses;
use super::users::{UserDoc, without_hash};
use super::{MongoStore, now, to_bson_date};
use crate::domain::events::NewEvent;
use crate::domain::user::Role;
use crate::store::{
    Activity, NewActivity, RELEASED_REASON, StaffStore, StoreError, StoreResult, User,
};
use async_trait::async_trait;
use futures::FutureExt;
use mongodb::bson::{Bson, doc};
use mongodb::options::ReturnDocument;

#[async_trait]
impl StaffStore for MongoStore {
    async fn revoke_staff(
        &self,
        user_id: &str,
        actor_id: &str,
    ) -> StoreResult<(User, Vec<String>)> {
        let (id, actor) = (user_id.to_owned(), actor_id.to_owned());
        self.run(move |inner| async move {
            let now = now();
            let at = to_bson_date(now);
            let open = open_statuses();
            let (user, released) = inner
                .transact(|db, s| {
                    let (id, actor, open) = (id.clone(), actor.clone(), open.clone());
                    async move {
                        // Routing's assignment writes the assignee's document in its own
                        // transaction, so it conflicts with this one instead of assigning a
                        // ticket to someone who just lost the role.
                        let Some(user) = db
                            .users
                            .find_one_and_update(
                                doc! { "_id": &id },
                                doc! { "$set": { "role": Role::User.as_str(), "updated_at": at } },
                            )
                            .projection(without_hash())
                            .return_document(ReturnDocument::After)
                            .session(&mut *s)
                            .await?
                        else {
                            return Err(StoreError::NotFound.into());
                        };
                        let mut cursor = db
                            .tickets
                            .find(doc! { "assigned_to": &id, "status": { "$in": &open } })
                            .projection(doc! { "_id": 1 })
                            .sort(doc! { "_id": 1 })
                            .session(&mut *s)
                            .await?;
                        let mut released = Vec::new();
                        while let Some(found) = cursor.next(&mut *s).await {
                            if let Ok(ticket_id) = found?.get_str("_id") {
                                released.push(ticket_id.to_owned());
                            }
                        }
                        let mut events = Vec::new();
                        for ticket_id in &released {
                            db.tickets
                                .update_one(
                                    doc! { "_id": ticket_id },
                                    doc! {
                                        "$set": {
                                            "assigned_to": Bson::Null,
                                            "assigned_at": Bson::Null,
                                            "routing_reason": RELEASED_REASON,
                                            "updated_at": at,
                                        },
                                        "$inc": { "version": 1_i64 },
                                    },
                                )
                                .session(&mut *s)
                                .await?;
                            db.append_activity(s, ticket_id, &released_entry(&actor), now)
                                .await?;
                            events.extend(NewEvent::assignee_released(ticket_id, &actor, &id));
                        }
                        db.append_events(s, &events, now).await?;
                        Ok((user, released))
                    }
                    .boxed()
                })
                .await?;
            Ok((UserDoc::decode(user)?, released))
        })
        .await
    }
}

/// The log entry of a ticket given back to routing because its assignee lost the role.
fn released_entry(actor: &str) -> [NewActivity; 1] {
    [NewActivity::new(
        Some(actor),
        Activity::Assigned {
            assignee_id: None,
            reason: Some(RELEASED_REASON.to_owned()),
        },
    )]
}
