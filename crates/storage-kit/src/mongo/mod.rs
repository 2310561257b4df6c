//! A MongoDB client for a store: fast-failing connection settings, the check that the
//! deployment runs transactions, and the transaction helper with the specification's retry
//! rules ([`transaction`]).

#[cfg(feature = "test-support")]
pub mod fake_server;
pub mod transaction;

use std::future::Future;
use std::time::Duration;

use mongodb::bson::{Document, doc};
use mongodb::error::{Error, ErrorKind};
use mongodb::options::{ClientOptions, IndexOptions, ReadPreference, SelectionCriteria};
use mongodb::{Client, Database, IndexModel};
use tracing::Instrument;

/// How long to look for a usable server (and to open a connection) before giving up, when
/// the URI does not say: the driver's default of 30 s would leave a misconfigured service
/// hanging at start.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The server does not know the command.
pub const COMMAND_NOT_FOUND: i32 = 59;
/// `create` of a collection that exists.
pub const NAMESPACE_EXISTS: i32 = 48;
/// Duplicate key; 11001 is its pre-3.0 spelling, still returned by some paths.
pub const DUPLICATE_KEY: [i32; 2] = [11000, 11001];

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The URI does not parse (or names no usable host).
    #[error("invalid MongoDB URI: {0}")]
    Uri(Error),
    /// The driver refused the options.
    #[error("invalid MongoDB options: {0}")]
    Options(Error),
    /// The first command did not get through.
    #[error("{}", unreachable_message(.0))]
    Unreachable(Error),
    /// The deployment cannot run transactions; the message says what to do.
    #[error("{0}")]
    Standalone(String),
}

/// Parses the URI and fills in fast-failure timeouts and, when given, the application name the
/// server logs; explicit settings in the URI win.
pub async fn client_options(
    uri: &str,
    app_name: Option<&str>,
) -> Result<ClientOptions, SetupError> {
    let mut options = ClientOptions::parse(uri).await.map_err(SetupError::Uri)?;
    options
        .server_selection_timeout
        .get_or_insert(CONNECT_TIMEOUT);
    options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
    if let Some(name) = app_name {
        options.app_name.get_or_insert_with(|| name.to_owned());
    }
    Ok(options)
}

/// A client for `uri` (see [`client_options`]). It connects lazily: call [`check_deployment`].
pub async fn connect(uri: &str, app_name: Option<&str>) -> Result<Client, SetupError> {
    Client::with_options(client_options(uri, app_name).await?).map_err(SetupError::Options)
}

/// The read preference of everything that must see the latest writes: transactions, claims.
pub fn primary() -> SelectionCriteria {
    SelectionCriteria::ReadPreference(ReadPreference::Primary)
}

/// One round trip that doubles as the start-up ping: refuses unreachable servers and
/// deployments without transactions. `needs` says what of the caller's needs transactions, for
/// the message to a standalone server's operator ("this service writes each record and its
/// events in one transaction").
pub async fn check_deployment(client: &Client, needs: &str) -> Result<(), SetupError> {
    let admin = client.database("admin");
    let reply = match admin.run_command(doc! { "hello": 1 }).await {
        Ok(reply) => reply,
        // Servers before 4.4.2 only know the legacy name.
        Err(e) if command_code(&e) == Some(COMMAND_NOT_FOUND) => admin
            .run_command(doc! { "isMaster": 1 })
            .await
            .map_err(SetupError::Unreachable)?,
        Err(e) => return Err(SetupError::Unreachable(e)),
    };
    check_topology(&reply, needs).map_err(SetupError::Standalone)
}

/// Accepts replica sets and sharded clusters (both run transactions); refuses the rest, with a
/// message built on `needs` (see [`check_deployment`]).
pub fn check_topology(hello: &Document, needs: &str) -> Result<(), String> {
    if hello.get_str("setName").is_ok() || hello.get_str("msg") == Ok("isdbgrid") {
        return Ok(());
    }
    Err(format!(
        "MongoDB is a standalone server, but {needs}, which needs a replica set: start mongod \
         with --replSet rs0 and run rs.initiate() once, or use MongoDB Atlas"
    ))
}

/// Creates the collection unless it exists.
pub async fn create_collection(database: &Database, name: &str) -> Result<(), Error> {
    match database.create_collection(name).await {
        Err(e) if command_code(&e) != Some(NAMESPACE_EXISTS) => Err(e),
        _ => Ok(()),
    }
}

/// A named index on `keys`, unique or not.
pub fn index(name: &str, keys: Document, unique: bool) -> IndexModel {
    let options = IndexOptions::builder()
        .name(name.to_owned())
        .unique(unique.then_some(true))
        .build();
    IndexModel::builder().keys(keys).options(options).build()
}

/// The code of a command error.
pub fn command_code(e: &Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

/// A plain account of an error, saying for server-selection failures that no server could be
/// reached and how long that was tried.
pub fn unreachable_message(e: &Error) -> String {
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { message, .. } => format!(
            "cannot reach MongoDB (no usable server before the server-selection timeout, \
             {} s unless the URI sets serverSelectionTimeoutMS): {message}",
            CONNECT_TIMEOUT.as_secs()
        ),
        _ => format!("MongoDB: {e}"),
    }
}

/// A store call's task was cancelled: the runtime is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("store task cancelled: {0}")]
pub struct Cancelled(tokio::task::JoinError);

/// Runs `fut` in a task of its own and waits for it; dropping the returned future leaves the
/// task running to the end. Dropping a driver future mid-operation can leave a connection or a
/// session in a bad state (the driver's RUST-937 warning), and a store's callers may be dropped
/// (a client going away, shutdown). A panic in the task is raised again here.
pub async fn detached<T, E, Fut>(fut: Fut) -> Result<T, E>
where
    T: Send + 'static,
    E: From<Cancelled> + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    match tokio::spawn(fut.instrument(tracing::Span::current())).await {
        Ok(out) => out,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Cancelled(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_timeouts_default_to_fast_failure() {
        let options = client_options("mongodb://db.invalid:27017/?replicaSet=rs0", Some("svc"))
            .await
            .unwrap();
        assert_eq!(options.server_selection_timeout, Some(CONNECT_TIMEOUT));
        assert_eq!(options.connect_timeout, Some(CONNECT_TIMEOUT));
        assert_eq!(options.app_name.as_deref(), Some("svc"));
        let options = client_options("mongodb://db.invalid:27017/", None)
            .await
            .unwrap();
        assert_eq!(options.app_name, None);

        let options = client_options(
            "mongodb://db.invalid/?serverSelectionTimeoutMS=1500&connectTimeoutMS=700&appName=ops",
            Some("svc"),
        )
        .await
        .unwrap();
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(options.connect_timeout, Some(Duration::from_millis(700)));
        assert_eq!(options.app_name.as_deref(), Some("ops"));

        let err = client_options("postgres://nope", None).await.unwrap_err();
        assert!(err.to_string().contains("invalid MongoDB URI"), "{err}");
    }

    #[test]
    fn only_replica_sets_and_sharded_clusters_are_accepted() {
        let needs = "this store commits in transactions";
        let accepted = |hello: Document| check_topology(&hello, needs).is_ok();
        assert!(accepted(
            doc! { "isWritablePrimary": true, "setName": "rs0" }
        ));
        assert!(accepted(
            doc! { "isWritablePrimary": true, "msg": "isdbgrid" }
        ));
        assert!(!accepted(doc! { "msg": "something else" }));
        let err =
            check_topology(&doc! { "isWritablePrimary": true, "ok": 1.0 }, needs).unwrap_err();
        assert!(err.contains("replica set"), "{err}");
        assert!(err.contains(needs), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_plainly() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let uri = format!("mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=300");
        let client = connect(&uri, None).await.unwrap();
        let err = check_deployment(&client, "x").await.unwrap_err();
        assert!(matches!(err, SetupError::Unreachable(_)), "{err:?}");
        assert!(err.to_string().contains("cannot reach MongoDB"), "{err}");
    }

    #[tokio::test]
    async fn detached_work_finishes_when_its_caller_leaves() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let caller = tokio::spawn(detached(async move {
            let _ = wait.await;
            let _ = tx.send("done");
            Ok::<_, Cancelled>(())
        }));
        tokio::task::yield_now().await;
        caller.abort();
        let _ = caller.await;
        go.send(()).unwrap();
        assert_eq!(rx.await.unwrap(), "done");
    }
}
