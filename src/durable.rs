//! Durable execution, wired for the mode chosen at start:
//!
//! - **embedded** (no `INNGEST_*` variable): the in-process executor drives the app's own serve
//!   handler over the Inngest protocol, with its state in the application's store: the SQLite
//!   file, or the MongoDB database (`inngest_*` collections, on the application's client). The
//!   serve endpoint is signed with a key generated at start and known only to this process, so
//!   nobody outside can call the functions. One process owns the queue (it drops every lease
//!   when it starts): to run several instances, use Inngest.
//! - **dev** (`INNGEST_DEV`): the Inngest dev server calls `/api/inngest`; events go to its API.
//! - **cloud** (signing and event keys): Inngest Cloud, the same way.
//!
//! The outbox relay delivers to the executor or to the event API; either way each event keeps
//! its outbox id, so a resend is deduplicated.

use crate::config::{Config, StoreUrl};
use crate::functions::{self, APP_ID, Deps};
use crate::inngest::executor::{
    Executor, ExecutorOptions, HandlerTransport, MongoRunStore, RouterTransport, RunStore,
    ServerKind, SqliteRunStore,
};
use crate::inngest::{Event, EventClient, InngestSettings, Mode, ServeHandler};
use crate::relay::{EventSink, SinkError};
use crate::store::OutboxEvent;
use anyhow::Context;
use async_trait::async_trait;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionMode {
    Embedded,
    Dev,
    Cloud,
}

impl ExecutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Embedded => "embedded",
            ExecutionMode::Dev => "dev",
            ExecutionMode::Cloud => "cloud",
        }
    }
}

/// The SDK settings and mode the environment asks for; a half-configured cloud setup is an
/// error naming what is missing.
pub fn resolve(config: &Config) -> anyhow::Result<(ExecutionMode, InngestSettings)> {
    if config.inngest_env.is_empty() {
        // A fresh key per process, which nobody knows: the executor's calls go to the handler
        // in process, unsigned, and anything that reaches `/api/inngest` over the network
        // must be signed with this key, so it is refused.
        let key = format!("signkey-prod-{}", hex::encode(rand::random::<[u8; 32]>()));
        return Ok((
            ExecutionMode::Embedded,
            InngestSettings::cloud(key, "embedded"),
        ));
    }
    let settings = InngestSettings::from_lookup(|name| config.inngest_env.get(name).cloned());
    settings
        .validate()
        .map_err(|e| anyhow::anyhow!("INNGEST: {e}"))?;
    let mode = match settings.mode() {
        Mode::Dev => ExecutionMode::Dev,
        Mode::Cloud => ExecutionMode::Cloud,
    };
    Ok((mode, settings))
}

/// The dev server calls functions unsigned, as the official SDKs allow in dev mode; on an
/// address other machines can reach, anyone there can run them. That is legitimate (a dev
/// server in another container), but never unnoticed.
fn warn_if_dev_mode_is_exposed(mode: ExecutionMode, host: std::net::IpAddr) {
    if mode == ExecutionMode::Dev && !host.is_loopback() {
        tracing::warn!(
            %host,
            "INNGEST_DEV IS SET AND HOST IS NOT A LOOPBACK ADDRESS: /api/inngest runs functions \
             for unsigned requests in dev mode, so anyone who can reach {host} can run them. \
             Use HOST=127.0.0.1 for local development, or INNGEST_SIGNING_KEY and \
             INNGEST_EVENT_KEY (cloud mode) on a network"
        );
    }
}

/// Everything durable execution adds to the service.
pub struct Durable {
    pub mode: ExecutionMode,
    /// Serves `/api/inngest`.
    pub router: Router,
    pub sink: Arc<dyn EventSink>,
    pub executor: Option<Executor>,
    handler: ServeHandler,
    serve_url: String,
    /// In dev and cloud modes: whether the functions were registered with Inngest.
    pub synced: Arc<AtomicBool>,
}

impl Durable {
    /// `mongo` is the application's MongoDB database when that is its store; the embedded
    /// executor then keeps its runs there, on the same client.
    pub async fn build(
        config: &Config,
        deps: Arc<Deps>,
        mongo: Option<mongodb::Database>,
    ) -> anyhow::Result<Self> {
        let (mode, settings) = resolve(config)?;
        warn_if_dev_mode_is_exposed(mode, config.host);
        let serve_url = serve_url(config, &settings);
        let mut handler = ServeHandler::new(APP_ID, settings.clone(), functions::all(deps));
        // Syncs register this URL, never one rebuilt from a request's `Host`.
        let parsed = url::Url::parse(&serve_url)
            .with_context(|| format!("the serve URL {serve_url:?} (APP_URL, INNGEST_SERVE_*)"))?;
        handler = handler.with_serve_url(parsed);
        if mode == ExecutionMode::Embedded {
            handler = handler.with_local_executor();
        }
        let synced = Arc::new(AtomicBool::new(mode == ExecutionMode::Embedded));
        let router = match mode {
            ExecutionMode::Embedded => handler.router(),
            ExecutionMode::Dev | ExecutionMode::Cloud => handler.router().layer(
                axum::middleware::from_fn_with_state(synced.clone(), observe_sync),
            ),
        };
        let (sink, executor): (Arc<dyn EventSink>, _) = match mode {
            ExecutionMode::Embedded => {
                let store = run_store(&config.store, mongo).await?;
                let options = ExecutorOptions {
                    // Its calls go straight to the handler in this process, which trusts
                    // them; requests from the network are still checked against the key.
                    signing_key: None,
                    server_kind: ServerKind::Cloud,
                    // `ticketing runs rerun|cancel` write to the same file from another
                    // process; the loop sees that work within this interval.
                    idle_poll: Duration::from_secs(1),
                    retention: Some(config.runs_retention),
                    // At least twice a minute; more often when the retention is shorter.
                    sweep_every: (config.runs_retention / 2)
                        .clamp(Duration::from_secs(1), Duration::from_secs(30)),
                    // Each worker drives one run's steps in a row, waiting on each step's group
                    // commit; twice the library's default keeps both cores busier in a burst
                    // (about 5% more tickets per second, measured) at no cost in memory.
                    workers: 16,
                    ..ExecutorOptions::default()
                };
                let executor = Executor::new(
                    store,
                    Arc::new(HandlerTransport::new(handler.clone())),
                    options,
                );
                let configs = handler
                    .function_configs(&serve_url)
                    .context("describing the functions")?;
                executor
                    .register(APP_ID, configs)
                    .await
                    .context("registering the functions with the executor")?;
                (
                    Arc::new(ExecutorSink(executor.clone())) as Arc<dyn EventSink>,
                    Some(executor),
                )
            }
            ExecutionMode::Dev | ExecutionMode::Cloud => (
                Arc::new(EventApiSink(EventClient::new(&settings))) as Arc<dyn EventSink>,
                None,
            ),
        };
        tracing::info!(
            mode = mode.as_str(),
            serve_url,
            "durable execution: {}",
            match mode {
                ExecutionMode::Embedded => "embedded executor (no INNGEST_* variable set)",
                ExecutionMode::Dev => "Inngest dev server (INNGEST_DEV)",
                ExecutionMode::Cloud => "Inngest Cloud (signing and event keys)",
            }
        );
        Ok(Self {
            mode,
            router,
            sink,
            executor,
            handler,
            serve_url,
            synced,
        })
    }

    pub fn syncer(&self) -> Syncer {
        Syncer {
            handler: self.handler.clone(),
            serve_url: self.serve_url.clone(),
            synced: self.synced.clone(),
            mode: self.mode,
        }
    }
}

/// The embedded executor's store, beside the application's data.
async fn run_store(
    store: &StoreUrl,
    mongo: Option<mongodb::Database>,
) -> anyhow::Result<Arc<dyn RunStore>> {
    Ok(match (store, mongo) {
        (StoreUrl::Sqlite(path), _) => Arc::new(
            SqliteRunStore::open(path)
                .await
                .context("opening the executor's run store in SQLite")?,
        ),
        (StoreUrl::Mongo { .. }, Some(db)) => Arc::new(
            MongoRunStore::open(db)
                .await
                .context("opening the executor's run store in MongoDB")?,
        ),
        (StoreUrl::Mongo { uri, database }, None) => Arc::new(
            MongoRunStore::connect(uri.expose(), database)
                .await
                .with_context(|| {
                    format!(
                        "connecting the executor's run store to MongoDB (database {database:?})"
                    )
                })?,
        ),
    })
}

/// Registers the functions with Inngest in dev and cloud modes.
pub struct Syncer {
    handler: ServeHandler,
    serve_url: String,
    synced: Arc<AtomicBool>,
    mode: ExecutionMode,
}

impl Syncer {
    /// Retries with backoff until it succeeds or `stop` fires; `/readyz` reports the result.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if self.mode == ExecutionMode::Embedded {
            return;
        }
        let mut backoff = Duration::from_millis(500);
        loop {
            if self.synced.load(Ordering::SeqCst) {
                // Inngest synced the app itself meanwhile (a dev-server ping).
                return;
            }
            match self.handler.sync(&self.serve_url).await {
                Ok(_) => {
                    self.synced.store(true, Ordering::SeqCst);
                    tracing::info!(serve_url = %self.serve_url, "functions synced with Inngest");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "sync with Inngest failed")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
}

/// The dev server re-syncs the app with a `PUT` to the serve endpoint (and Inngest Cloud syncs
/// in band the same way); a successful one means Inngest knows the functions, whether or not
/// the app's own registration at start got through.
async fn observe_sync(State(synced): State<Arc<AtomicBool>>, req: Request, next: Next) -> Response {
    let is_sync = req.method() == Method::PUT;
    let response = next.run(req).await;
    if is_sync && response.status().is_success() && !synced.swap(true, Ordering::SeqCst) {
        tracing::info!("functions synced by Inngest");
    }
    response
}

/// An executor over the run store, for operating on runs from outside the server (the CLI).
/// It knows the functions (a re-run needs them) but never runs anything itself, and takes no
/// lease: the server's executor picks up what it writes. `mongo` is the application's MongoDB
/// database when that is the store, as for [`Durable::build`].
pub async fn operations_executor(
    config: &Config,
    deps: Arc<Deps>,
    mongo: Option<mongodb::Database>,
) -> anyhow::Result<Executor> {
    if !config.inngest_env.is_empty() {
        anyhow::bail!(
            "runs are managed by Inngest when INNGEST_* variables are set; use the Inngest dashboard"
        );
    }
    let store = run_store(&config.store, mongo).await?;
    let handler = ServeHandler::new(APP_ID, InngestSettings::dev(), functions::all(deps));
    let executor = Executor::new(
        store,
        Arc::new(RouterTransport::new(Router::new())),
        ExecutorOptions::default(),
    );
    let configs = handler
        .function_configs(&serve_url(config, &InngestSettings::dev()))
        .context("describing the functions")?;
    executor
        .register(APP_ID, configs)
        .await
        .context("registering the functions")?;
    Ok(executor)
}

/// Where Inngest reaches this app: `INNGEST_SERVE_ORIGIN` + path, else `APP_URL` + path.
fn serve_url(config: &Config, settings: &InngestSettings) -> String {
    let origin = settings
        .serve_origin()
        .map(|o| o.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| config.app_url.clone());
    format!(
        "{origin}{}",
        settings.serve_path().unwrap_or("/api/inngest")
    )
}

fn to_event(e: &OutboxEvent) -> Event {
    Event {
        name: e.name.clone(),
        data: e.data.clone(),
        id: Some(e.id.clone()),
        ts: Some(e.created_at.timestamp_millis()),
        v: None,
        user: None,
    }
}

struct ExecutorSink(Executor);

#[async_trait]
impl EventSink for ExecutorSink {
    fn name(&self) -> &'static str {
        "embedded executor"
    }
    async fn deliver(&self, events: &[OutboxEvent]) -> Result<(), SinkError> {
        let events = events
            .iter()
            .map(|e| serde_json::to_value(to_event(e)).map_err(|e| SinkError::Retry(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        self.0
            .publish(events)
            .await
            .map(|_| ())
            .map_err(|e| SinkError::Retry(e.to_string()))
    }
}

struct EventApiSink(EventClient);

#[async_trait]
impl EventSink for EventApiSink {
    fn name(&self) -> &'static str {
        "Inngest event API"
    }
    async fn deliver(&self, events: &[OutboxEvent]) -> Result<(), SinkError> {
        let events: Vec<Event> = events.iter().map(to_event).collect();
        self.0
            .send(&events)
            .await
            .map(|_| ())
            .map_err(|e| SinkError::Retry(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::inngest::executor::store::{ItemKind, QueueItem};
    use crate::store::mongo::MongoStore;
    use crate::store::mongo::wire_tests::{FakeMongod, Kind};

    fn databases_written(server: &FakeMongod) -> Vec<(String, String)> {
        server
            .commands()
            .iter()
            .filter(|c| ["create", "update"].contains(&c.name.as_str()))
            .map(|c| {
                (
                    c.body.get_str("$db").unwrap_or_default().to_owned(),
                    c.body.get_str(&c.name).unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn on_mongodb_runs_live_in_the_application_database_on_its_client() {
        let server = FakeMongod::start(Kind::ReplicaSet, |_| None).await;
        let app = MongoStore::connect(&server.uri(), "ticketing")
            .await
            .expect("app store");
        server.clear();
        // Never dialled: the application's client is used.
        let url = StoreUrl::Mongo {
            uri: Secret::new("mongodb://unreachable.invalid:1/?serverSelectionTimeoutMS=100"),
            database: "unused".into(),
        };
        let store = run_store(&url, Some(app.database()))
            .await
            .expect("run store");
        store
            .enqueue(vec![QueueItem::new(
                "cron:f:x".into(),
                None,
                ItemKind::Cancel { reason: "x".into() },
                chrono::Utc::now(),
            )])
            .await
            .expect("enqueue");
        let written = databases_written(&server);
        assert!(written.contains(&("ticketing".into(), "inngest_runs".into())));
        assert!(written.contains(&("ticketing".into(), "inngest_queue".into())));
        assert!(
            written.iter().all(|(db, _)| db == "ticketing"),
            "{written:?}"
        );
    }

    #[tokio::test]
    async fn without_a_shared_client_the_run_store_connects_itself() {
        let server = FakeMongod::start(Kind::ReplicaSet, |_| None).await;
        let url = StoreUrl::Mongo {
            uri: Secret::new(server.uri()),
            database: "runs".into(),
        };
        run_store(&url, None).await.expect("run store");
        let written = databases_written(&server);
        assert!(!written.is_empty());
        assert!(written.iter().all(|(db, _)| db == "runs"), "{written:?}");

        let standalone = FakeMongod::start(Kind::Standalone, |_| None).await;
        let url = StoreUrl::Mongo {
            uri: Secret::new(standalone.uri()),
            database: "runs".into(),
        };
        let Err(err) = run_store(&url, None).await else {
            panic!("a standalone server is refused");
        };
        let message = format!("{err:#}");
        assert!(message.contains("replica set"), "{message}");
    }

    #[tokio::test]
    async fn on_sqlite_runs_live_in_the_application_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.db");
        run_store(&StoreUrl::Sqlite(path.clone()), None)
            .await
            .expect("run store");
        assert!(path.exists());
    }
}
