//! Builds the running service from a `Config`: store, secrets, state, router, listener.

use crate::ai::{ProviderSettings, RulesEngine, TriageProvider};
use crate::auth::Tokens;
use crate::config::{Config, Secret, StoreUrl};
use crate::domain::user::{Email, Password, Role};
use crate::durable::Durable;
use crate::functions::Deps;
use crate::http::rate_limit::{AuthLimit, RateLimiter};
use crate::http::{AppInner, AppState};
use crate::live::{ChangeBus, Publishing};
use crate::mail::Templates;
use crate::relay::Relay;
use crate::store::mongo::MongoStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};
use anyhow::Context;
use axum::Router;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_backend(config).await?.0)
}

/// The store, and on MongoDB its database too, so the embedded executor keeps its runs there
/// on the same client.
async fn open_backend(
    config: &Config,
) -> anyhow::Result<(Arc<dyn Store>, Option<mongodb::Database>)> {
    match &config.store {
        StoreUrl::Sqlite(path) => {
            let store = SqliteStore::open(path)
                .await
                .with_context(|| format!("opening SQLite at {}", path.display()))?;
            Ok((Arc::new(store), None))
        }
        StoreUrl::Mongo { uri, database } => {
            let store = MongoStore::connect(uri.expose(), database)
                .await
                .with_context(|| format!("connecting to MongoDB (database {database:?})"))?;
            let db = store.database();
            Ok((Arc::new(store), Some(db)))
        }
    }
}

/// The configured secret, or one generated once into `DATA_DIR/jwt_secret` and reused after.
fn jwt_secret(config: &Config) -> anyhow::Result<Secret> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    let path = config.data_dir.join("jwt_secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(Secret::new(existing));
        }
    }
    tracing::warn!(path = %path.display(), "JWT_SECRET is not set: generated one and stored it in DATA_DIR; set JWT_SECRET in production");
    crate::private_fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let bytes: [u8; 32] = rand::random();
    let secret = hex::encode(bytes);
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(Secret::new(secret))
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    crate::private_fs::create_file(path)?.write_all(content.as_bytes())
}

/// Creates an account directly (CLI and bootstrap), its address counted as verified. An
/// existing e-mail is reported, not changed.
pub async fn create_user(
    store: &Arc<dyn Store>,
    email: Email,
    password: Password,
    role: Role,
    skills: Vec<String>,
) -> Result<crate::store::User, StoreError> {
    let hash = crate::auth::hash_password(password.expose().to_owned())
        .await
        .map_err(|e| StoreError::Other(e.into()))?;
    let id = crate::domain::new_id();
    let user = crate::store::NewUser {
        id: id.clone(),
        email: email.as_str().to_owned(),
        name: String::new(),
        password_hash: hash,
        role,
        skills,
        // Made by an operator: there is nothing to confirm.
        email_verified: true,
    };
    store
        .create_user(
            user,
            Some(crate::domain::events::NewEvent::user_signup(&id)),
        )
        .await
}

async fn bootstrap_admin(config: &Config, store: &Arc<dyn Store>) -> anyhow::Result<()> {
    let Some((email, password)) = config.bootstrap_admin.clone() else {
        return Ok(());
    };
    match create_user(store, email.clone(), password, Role::Admin, Vec::new()).await {
        Ok(user) => tracing::info!(user_id = %user.id, email = %email, "bootstrap admin created"),
        Err(StoreError::Conflict { .. }) => {
            tracing::info!(email = %email, "bootstrap admin already exists; left unchanged")
        }
        Err(e) => return Err(e).context("creating the bootstrap admin"),
    }
    Ok(())
}

/// The service without a listener: the router, its state, and the background work (outbox
/// relay, executor). `App` binds it to a port; the Vercel entry hands the router to the runtime.
pub struct Service {
    pub router: Router,
    pub state: AppState,
    background: Background,
}

/// Background tasks, stopped together.
struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                ?grace,
                "background work did not finish in time; it resumes at next start"
            );
        }
    }
}

impl Service {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Building the Prometheus recorder calibrates a clock by spinning for 1-6 ms: on
        // another thread, while the stores open.
        let metrics = tokio::task::spawn_blocking(crate::telemetry::prometheus);
        crate::tls::install_crypto_provider();
        crate::memory::spawn_trim_when_quiet();
        let config = Arc::new(config);
        crate::private_fs::warn_if_open_to_others(&config.data_dir);
        let (store, mongo) = open_backend(&config).await?;
        // Everything writes through this, the durable functions too, so every committed ticket
        // change reaches the event stream.
        let live = Arc::new(ChangeBus::default());
        let store: Arc<dyn Store> = Arc::new(Publishing::new(store, live.clone()));
        bootstrap_admin(&config, &store).await?;
        let attachments = crate::attachments::from_config(&config, store.clone(), mongo.clone())
            .context("attachment storage (ATTACHMENTS_URL)")?;
        tracing::info!(storage = %attachments.describe(), "attachments");

        let deps = Arc::new(function_deps(&config, store.clone())?);
        // Metrics sent before the recorder is installed are lost. The executor describes its
        // metrics when it is made, so the recorder must be in place by then.
        metrics.await.context("installing the metrics recorder")?;
        crate::telemetry::spawn_metrics_upkeep();
        let durable = Durable::build(&config, deps, mongo).await?;
        let outbox_signal = Arc::new(Notify::new());
        let state = AppState::new(AppInner {
            tokens: Tokens::new(&jwt_secret(&config)?, config.jwt_ttl),
            outbox_signal: outbox_signal.clone(),
            execution_mode: durable.mode,
            executor: durable.executor.clone(),
            synced: durable.synced.clone(),
            attachments: attachments.clone(),
            live,
            store: store.clone(),
            config: config.clone(),
        });
        let auth_limit = AuthLimit {
            limiter: Arc::new(RateLimiter::new(config.auth_rate_limit_per_min)),
            trust_proxy: config.trust_proxy,
        };
        let routes = crate::http::routes(auth_limit, config.attachment_max_bytes);
        let router = crate::http::router(state.clone(), durable.router.clone(), routes);

        let (stop, _) = watch::channel(false);
        let mut tasks = vec![attachments.spawn_sweep()];
        let relay = Relay::new(store.clone(), durable.sink.clone(), outbox_signal);
        tasks.push(tokio::spawn(relay.run(stop.subscribe())));
        tasks.push(tokio::spawn(durable.syncer().run(stop.subscribe())));
        if let Some(executor) = &durable.executor {
            let handle = executor.spawn();
            let mut stopped = stop.subscribe();
            tasks.push(tokio::spawn(async move {
                let _ = stopped.changed().await;
                // Lets steps in flight finish; their results are saved before it returns.
                handle.shutdown().await;
            }));
        }
        Ok(Self {
            router,
            state,
            background: Background { stop, tasks },
        })
    }

    /// Ends the event streams, then stops background work, letting steps in flight finish and
    /// flushing the outbox.
    pub async fn shutdown(self) {
        self.state.live.close();
        self.background.shutdown(SHUTDOWN_GRACE).await;
    }
}

/// The embedded executor's runs, for `ticketing runs`: opened on the same store as the server
/// (the SQLite file or the MongoDB database), which may be running.
pub async fn operations_executor(
    config: &Config,
) -> anyhow::Result<crate::inngest::executor::Executor> {
    crate::tls::install_crypto_provider();
    let (store, mongo) = open_backend(config).await?;
    let deps = Arc::new(function_deps(config, store)?);
    crate::durable::operations_executor(config, deps, mongo).await
}

/// The durable functions' collaborators, from the configuration.
fn function_deps(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Deps> {
    let provider = config.ai.provider_settings();
    tracing::info!(provider = ?provider, "AI triage provider");
    tracing::info!(mail = %config.mail.describe(), "mail transport");
    // The rules engine calls nobody, so it has no rate limit to protect: its triage runs are
    // bounded only by the executor's workers.
    let external_ai = !matches!(provider, ProviderSettings::Rules);
    // Building an HTTP client loads the system's root certificates, which costs milliseconds
    // at start: only the AI providers need one.
    let ai = match provider {
        ProviderSettings::Rules => Arc::new(RulesEngine::new()) as Arc<dyn TriageProvider>,
        _ => provider.build(
            crate::ai::http_client()
                .map_err(|e| anyhow::anyhow!("building the HTTP client: {e}"))?,
        ),
    };
    Ok(Deps {
        store,
        ai,
        rules: RulesEngine::new(),
        mailer: config
            .mail
            .build()
            .map_err(|e| anyhow::anyhow!("mail transport: {e}"))?,
        templates: Templates::new(&config.app_url, "Support"),
        sla: config.sla,
        accounts: config.accounts,
        ai_permits: Semaphore::new(config.ai_concurrency as usize),
        ai_concurrency: external_ai.then_some(config.ai_concurrency),
    })
}

/// How long shutdown waits for in-flight work before giving up (it resumes at next start).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub struct App {
    listener: TcpListener,
    service: Service,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let addr = SocketAddr::new(config.host, config.port);
        let service = Service::build(config).await?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} (HOST/PORT)"))?;
        Ok(Self { listener, service })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.service.state
    }

    /// Serves until SIGTERM or Ctrl-C: stops accepting, lets in-flight requests finish, then
    /// stops background work and flushes the outbox.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.listener.local_addr()?;
        let Service {
            router,
            state,
            background,
        } = self.service;
        tracing::info!(%addr, store = state.store.backend(), "listening");
        // Open event streams would hold a graceful shutdown forever: they end first.
        let live = state.live.clone();
        let stop = async move {
            stop.await;
            live.close();
        };
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop)
        .await?;
        background.shutdown(SHUTDOWN_GRACE).await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested; finishing in-flight work");
}

/// On Vercel a SQLite file and the embedded executor would vanish with the instance: refuse to
/// start there without MongoDB and Inngest Cloud keys, naming what to set.
pub fn vercel_preflight(config: &Config) -> Result<(), String> {
    if !config.on_vercel {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !matches!(config.store, StoreUrl::Mongo { .. }) {
        missing.push("DATABASE_URL (mongodb+srv://…)");
    }
    for key in ["INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY"] {
        if !config.inngest_env.contains_key(key) {
            missing.push(key);
        }
    }
    // A generated secret would differ per instance and every token would fail elsewhere.
    if config.jwt_secret.is_none() {
        missing.push("JWT_SECRET");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "on Vercel set {}: a SQLite file and the embedded executor do not survive serverless instances",
            missing.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::{on_ticket_created, retriage_ticket};
    use serde_json::{Value, json};
    use std::collections::HashMap;

    /// The concurrency setting of each function that triages, under `vars`.
    async fn triage_limits(vars: &[(&str, &str)]) -> Vec<(String, Value)> {
        let dir = tempfile::tempdir().unwrap();
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.insert("DATA_DIR".into(), dir.path().display().to_string());
        let config = Config::from_lookup(|name| map.get(name).cloned()).unwrap();
        let (store, _) = open_backend(&config).await.unwrap();
        let deps = Arc::new(function_deps(&config, store).unwrap());
        let url = url::Url::parse("http://127.0.0.1:3000/api/inngest").unwrap();
        crate::functions::all(deps)
            .iter()
            .filter(|f| [on_ticket_created::ID, retriage_ticket::ID].contains(&f.id()))
            .map(|f| {
                let config = &f.configs("ticketing", &url)[0];
                (f.id().to_string(), config["concurrency"].clone())
            })
            .collect()
    }

    #[tokio::test]
    async fn triage_is_limited_only_when_it_calls_an_external_ai() {
        let rules = triage_limits(&[("AI_CONCURRENCY", "3")]).await;
        assert_eq!(rules.len(), 2, "{rules:?}");
        for (id, limit) in &rules {
            assert_eq!(limit, &Value::Null, "{id} with the rules engine");
        }
        let gemini = triage_limits(&[
            ("AI_CONCURRENCY", "3"),
            ("GEMINI_API_KEY", "test-key"),
            ("GEMINI_BASE_URL", "http://127.0.0.1:9"),
        ])
        .await;
        assert_eq!(gemini.len(), 2, "{gemini:?}");
        for (id, limit) in &gemini {
            assert_eq!(limit, &json!([{"limit": 3}]), "{id} with Gemini");
        }
    }
}
