//! The attachment part of the store contract, on SQLite and on MongoDB (see `store_contract`),
//! and the sweep over every kind of byte storage.

use crate::store_contract::{add_ticket, add_user, with_mongo, with_sqlite};
use std::sync::Arc;
use std::time::Duration;
use ticketing::attachments::Attachments;
use ticketing::attachments::blob::BlobStore;
use ticketing::domain::new_id;
use ticketing::domain::user::Role;
use ticketing::store::{AttachOutcome, Attachment, NewAttachment, Store, StoreError};

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
    records_round_trip_and_internal_ones_are_listed_for_staff_only,
    the_per_ticket_limit_holds_under_concurrent_uploads,
    files_need_an_existing_ticket,
    deletes_say_whether_the_bytes_are_still_used,
);

fn record(ticket: &str, by: &str, sha256: &str, internal: bool) -> NewAttachment {
    NewAttachment {
        id: new_id(),
        ticket_id: ticket.to_owned(),
        filename: "../../etc/passwd".into(),
        content_type: "image/png".into(),
        size: 1234,
        sha256: sha256.to_owned(),
        internal,
        uploaded_by: by.to_owned(),
    }
}

fn key(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

async fn added(store: &Arc<dyn Store>, new: NewAttachment) -> Attachment {
    match store.add_attachment(new, 20).await.expect("add attachment") {
        AttachOutcome::Added(a) => a,
        AttachOutcome::TicketFull => panic!("the ticket is not full"),
    }
}

async fn records_round_trip_and_internal_ones_are_listed_for_staff_only(store: Arc<dyn Store>) {
    let customer = add_user(&store, Role::User).await;
    let admin = add_user(&store, Role::Admin).await;
    let ticket = add_ticket(&store, &customer, "Printer", "On fire").await;
    let public = added(&store, record(&ticket.id, &customer.id, &key(1), false)).await;
    let internal = added(&store, record(&ticket.id, &admin.id, &key(2), true)).await;
    assert_eq!(public.filename, "../../etc/passwd");
    assert_eq!(
        (public.size, public.sha256.as_str()),
        (1234, key(1).as_str())
    );
    assert_eq!(public.ticket_id, ticket.id);
    assert!(internal.internal);

    assert_eq!(
        store.get_attachment(&public.id).await.unwrap(),
        Some(public.clone())
    );
    assert_eq!(store.get_attachment(&new_id()).await.unwrap(), None);
    assert_eq!(
        store.list_attachments(&ticket.id, true).await.unwrap(),
        [public.clone(), internal]
    );
    assert_eq!(
        store.list_attachments(&ticket.id, false).await.unwrap(),
        [public]
    );
    // Files are not a change of the ticket: its version stays.
    let again = store.get_ticket(&ticket.id).await.unwrap().unwrap();
    assert_eq!(again.version, ticket.version);
}

async fn the_per_ticket_limit_holds_under_concurrent_uploads(store: Arc<dyn Store>) {
    let customer = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &customer, "Printer", "On fire").await;
    let tries = (0..6u8).map(|n| {
        let store = store.clone();
        let new = record(&ticket.id, &customer.id, &key(n), false);
        tokio::spawn(async move { store.add_attachment(new, 3).await })
    });
    let outcomes: Vec<AttachOutcome> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("add"))
        .collect();
    let added = outcomes
        .iter()
        .filter(|o| matches!(o, AttachOutcome::Added(_)))
        .count();
    assert_eq!(added, 3, "{outcomes:?}");
    assert_eq!(
        store
            .list_attachments(&ticket.id, true)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(store.blobs_in_use().await.unwrap().len(), 3);
}

async fn files_need_an_existing_ticket(store: Arc<dyn Store>) {
    let customer = add_user(&store, Role::User).await;
    let missing = new_id();
    let result = store
        .add_attachment(record(&missing, &customer.id, &key(9), false), 20)
        .await;
    assert!(matches!(result, Err(StoreError::NotFound)), "{result:?}");
    assert!(
        store
            .list_attachments(&missing, true)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.blob_in_use(&key(9)).await.unwrap());
}

async fn deletes_say_whether_the_bytes_are_still_used(store: Arc<dyn Store>) {
    let customer = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &customer, "Printer", "On fire").await;
    let first = added(&store, record(&ticket.id, &customer.id, &key(1), false)).await;
    let twin = added(&store, record(&ticket.id, &customer.id, &key(1), false)).await;
    let other = added(&store, record(&ticket.id, &customer.id, &key(2), false)).await;
    let mut used = store.blobs_in_use().await.unwrap();
    used.sort();
    assert_eq!(used, [key(1), key(2)]);

    let d = store.delete_attachment(&first.id).await.unwrap().unwrap();
    assert_eq!((d.attachment, d.blob_still_used), (first.clone(), true));
    assert!(store.blob_in_use(&key(1)).await.unwrap());
    let d = store.delete_attachment(&twin.id).await.unwrap().unwrap();
    assert!(!d.blob_still_used);
    assert!(!store.blob_in_use(&key(1)).await.unwrap());
    assert_eq!(store.delete_attachment(&first.id).await.unwrap(), None);
    assert_eq!(store.blobs_in_use().await.unwrap(), [key(2)]);
    assert_eq!(
        store.list_attachments(&ticket.id, true).await.unwrap(),
        [other]
    );
}

/// A spooled file with these bytes, as an upload leaves it.
fn file_with(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Files under a folder and an S3 bucket (moto), with records on SQLite.
#[tokio::test]
async fn the_sweep_removes_bytes_nothing_refers_to_in_files_and_s3() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        ticketing::store::sqlite::SqliteStore::open(dir.path().join("sweep.db"))
            .await
            .unwrap(),
    );
    let endpoint = crate::s3_peer::s3_url().await;
    let bucket = format!("sweep-{}", uuid::Uuid::new_v4().simple());
    crate::s3_peer::create_bucket(&bucket).await;
    let settings = ticketing::config::S3Settings {
        bucket,
        prefix: "p".into(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint),
        access_key_id: Some(crate::s3_peer::ACCESS_KEY.into()),
        secret_access_key: Some(ticketing::config::Secret::new(crate::s3_peer::SECRET_KEY)),
        session_token: None,
    };
    let backends: Vec<Arc<dyn BlobStore>> = vec![
        Arc::new(ticketing::attachments::fs::FsBlobs::new(
            dir.path().join("blobs"),
        )),
        Arc::new(ticketing::attachments::s3::S3Blobs::new(&settings).unwrap()),
    ];
    sweep_case(store, backends, dir.path()).await;
}

/// GridFS in the store's own MongoDB database (the test peer).
#[tokio::test]
async fn the_sweep_removes_bytes_nothing_refers_to_in_gridfs() {
    let server = crate::mongo_server::mongo().await;
    let database = format!("ticketing_sweep_{}", uuid::Uuid::new_v4().simple());
    let store = ticketing::store::mongo::MongoStore::connect(&server.uri, &database)
        .await
        .expect("MongoDB");
    let db = store.database();
    let dir = tempfile::tempdir().unwrap();
    let backends: Vec<Arc<dyn BlobStore>> = vec![Arc::new(
        ticketing::attachments::gridfs::GridFsBlobs::new(db.clone()),
    )];
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(sweep_case(
        Arc::new(store),
        backends,
        dir.path(),
    )))
    .await;
    db.drop().await.expect("drop the test database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Bytes stored with no record (what a crash between the two steps leaves) go; bytes in use
/// stay.
async fn sweep_case(
    store: Arc<dyn Store>,
    backends: Vec<Arc<dyn BlobStore>>,
    dir: &std::path::Path,
) {
    let customer = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &customer, "Printer", "On fire").await;
    for (i, blobs) in backends.into_iter().enumerate() {
        let kept = format!("kept by a record {i}");
        let orphan = format!("left by a crash {i}");
        blobs
            .put(&sha(kept.as_bytes()), &file_with(dir, "a", kept.as_bytes()))
            .await
            .unwrap();
        blobs
            .put(
                &sha(orphan.as_bytes()),
                &file_with(dir, "b", orphan.as_bytes()),
            )
            .await
            .unwrap();
        // Storing the same bytes again is a no-op.
        blobs
            .put(&sha(kept.as_bytes()), &file_with(dir, "c", kept.as_bytes()))
            .await
            .unwrap();
        added(
            &store,
            record(&ticket.id, &customer.id, &sha(kept.as_bytes()), false),
        )
        .await;
        let attachments = Attachments::new(
            blobs.clone(),
            store.clone(),
            dir.join("spool"),
            1024,
            Duration::ZERO,
        );
        let report = attachments.sweep().await.unwrap();
        assert_eq!(
            report.orphans_removed,
            1,
            "{}: {report:?}",
            blobs.describe()
        );
        assert!(!blobs.exists(&sha(orphan.as_bytes())).await.unwrap());
        assert!(blobs.exists(&sha(kept.as_bytes())).await.unwrap());
        let listed: Vec<String> = blobs
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.key)
            .collect();
        assert_eq!(listed, [sha(kept.as_bytes())], "{}", blobs.describe());
        let mut bytes = Vec::new();
        let mut stream = blobs.get(&sha(kept.as_bytes())).await.unwrap().unwrap();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(bytes, kept.as_bytes());
        blobs.delete(&sha(kept.as_bytes())).await.unwrap();
        blobs.delete(&sha(kept.as_bytes())).await.unwrap();
        assert!(blobs.get(&sha(kept.as_bytes())).await.unwrap().is_none());
    }
}

/// When the record cannot be written (the ticket filled up meanwhile, or is gone), the bytes
/// stored for it are taken back, unless another record uses them: no file without a record.
#[tokio::test]
async fn a_refused_record_takes_its_bytes_back() {
    use ticketing::attachments::{AttachmentError, Upload};
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        ticketing::store::sqlite::SqliteStore::open(dir.path().join("refused.db"))
            .await
            .unwrap(),
    );
    let blobs: Arc<dyn BlobStore> = Arc::new(ticketing::attachments::fs::FsBlobs::new(
        dir.path().join("blobs"),
    ));
    let attachments = Attachments::new(
        blobs.clone(),
        store.clone(),
        dir.path().join("spool"),
        1024,
        Duration::ZERO,
    );
    let customer = add_user(&store, Role::User).await;
    let ticket = add_ticket(&store, &customer, "Printer", "On fire").await;
    let shared = b"bytes another record uses".to_vec();
    for n in 0..19u8 {
        added(&store, record(&ticket.id, &customer.id, &key(n), false)).await;
    }
    added(
        &store,
        record(&ticket.id, &customer.id, &sha(&shared), false),
    )
    .await;
    blobs
        .put(&sha(&shared), &file_with(dir.path(), "shared", &shared))
        .await
        .unwrap();

    let upload = |ticket_id: &str| Upload {
        ticket_id: ticket_id.to_owned(),
        uploaded_by: customer.id.clone(),
        filename: "late.txt".into(),
        internal: false,
    };
    let body = |bytes: &'static [u8]| {
        futures::stream::iter([Ok::<_, AttachmentError>(axum::body::Bytes::from_static(
            bytes,
        ))])
    };
    let spooled = attachments.spool(body(b"one too many")).await.unwrap();
    let refused = attachments.attach(spooled, upload(&ticket.id)).await;
    assert!(
        matches!(refused, Err(AttachmentError::TicketFull)),
        "{refused:?}"
    );
    assert!(!blobs.exists(&sha(b"one too many")).await.unwrap());

    let spooled = attachments.spool(body(b"for no ticket")).await.unwrap();
    let refused = attachments.attach(spooled, upload(&new_id())).await;
    assert!(
        matches!(refused, Err(AttachmentError::Store(StoreError::NotFound))),
        "{refused:?}"
    );
    assert!(!blobs.exists(&sha(b"for no ticket")).await.unwrap());

    // Bytes that a record already uses stay when a second record for them is refused.
    let spooled = attachments
        .spool(futures::stream::iter([Ok::<_, AttachmentError>(
            axum::body::Bytes::from(shared.clone()),
        )]))
        .await
        .unwrap();
    let refused = attachments.attach(spooled, upload(&ticket.id)).await;
    assert!(matches!(refused, Err(AttachmentError::TicketFull)));
    assert!(blobs.exists(&sha(&shared)).await.unwrap());
    assert_eq!(
        std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
        0
    );
}
