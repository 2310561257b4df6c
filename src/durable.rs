//! Durable execution, wired for the mode chosen at start:
//!
//! - **embedded** (no `INNGEST_*` variable): the in-process executor drives the app's own serve
//!   handler over the Inngest protocol, with its state in the SQLite file. The serve endpoint is
//!   signed with a key generated at start and known only to this process, so nobody outside can
//!   call the functions.
//! - **dev** (`INNGEST_DEV`): the Inngest dev server calls `/api/inngest`; events go to its API.
//! - **cloud** (signing and event keys): Inngest Cloud, the same way.
//!
//! The outbox relay delivers to the executor or to the event API; either way each event keeps
//! its outbox id, so a resend is deduplicated.

use crate::config::{Config, StoreUrl};
use crate::functions::{self, APP_ID, Deps};
use crate::inngest::executor::{
    Executor, ExecutorOptions, RouterTransport, ServerKind, SigningKey, SqliteRunStore,
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
        // A fresh key per process: the executor signs every call, the handler verifies it.
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
    pub async fn build(config: &Config, deps: Arc<Deps>) -> anyhow::Result<Self> {
        let (mode, settings) = resolve(config)?;
        let signing_key = settings.signing_key().map(|k| k.expose().to_owned());
        let handler = ServeHandler::new(APP_ID, settings.clone(), functions::all(deps));
        let serve_url = serve_url(config, &settings);
        let synced = Arc::new(AtomicBool::new(mode == ExecutionMode::Embedded));
        let router = match mode {
            ExecutionMode::Embedded => handler.router(),
            ExecutionMode::Dev | ExecutionMode::Cloud => handler.router().layer(
                axum::middleware::from_fn_with_state(synced.clone(), observe_sync),
            ),
        };
        let (sink, executor): (Arc<dyn EventSink>, _) = match mode {
            ExecutionMode::Embedded => {
                let StoreUrl::Sqlite(path) = &config.store else {
                    anyhow::bail!(
                        "the embedded executor keeps its state in SQLite: with MongoDB, run under Inngest \
                         (set INNGEST_DEV=1 for the dev server, or INNGEST_SIGNING_KEY and INNGEST_EVENT_KEY)"
                    );
                };
                let store = SqliteRunStore::open(path)
                    .await
                    .context("opening the executor's run store")?;
                let options = ExecutorOptions {
                    signing_key: signing_key.map(SigningKey::new),
                    server_kind: ServerKind::Cloud,
                    // `ticketing runs rerun|cancel` write to the same file from another
                    // process; the loop sees that work within this interval.
                    idle_poll: Duration::from_secs(1),
                    ..ExecutorOptions::default()
                };
                let executor = Executor::new(
                    Arc::new(store),
                    Arc::new(RouterTransport::new(router.clone())),
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
/// It knows the functions (a re-run needs them) but never runs anything itself: the server's
/// executor picks up what it writes.
pub async fn operations_executor(config: &Config, deps: Arc<Deps>) -> anyhow::Result<Executor> {
    if !config.inngest_env.is_empty() {
        anyhow::bail!(
            "runs are managed by Inngest when INNGEST_* variables are set; use the Inngest dashboard"
        );
    }
    let StoreUrl::Sqlite(path) = &config.store else {
        anyhow::bail!(
            "the embedded executor keeps its runs in SQLite; with MongoDB runs are managed by Inngest"
        );
    };
    let store = SqliteRunStore::open(path)
        .await
        .with_context(|| format!("opening the run store in {}", path.display()))?;
    let handler = ServeHandler::new(APP_ID, InngestSettings::dev(), functions::all(deps));
    let executor = Executor::new(
        Arc::new(store),
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
