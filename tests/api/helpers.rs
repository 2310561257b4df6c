//! Spawning the real app and talking to it over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use tempfile::TempDir;
use ticketing::domain::user::{Email, Password, Role};
use ticketing::store::Store;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    /// The embedded executor (for run inspection, reruns and hand-built events).
    pub executor: Option<ticketing::inngest::executor::Executor>,
    _dir: Option<TempDir>,
}

pub fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        ticketing::telemetry::init(ticketing::config::LogFormat::Text);
    }
}

pub fn base_env(data_dir: &std::path::Path) -> HashMap<String, String> {
    HashMap::from([
        ("PORT".into(), "0".into()),
        ("DATA_DIR".into(), data_dir.display().to_string()),
        (
            "JWT_SECRET".into(),
            "test-secret-test-secret-test-secret-0123".into(),
        ),
        ("AUTH_RATE_LIMIT_PER_MIN".into(), "100000".into()),
    ])
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = base_env(dir.path());
    for (k, v) in overrides {
        env.insert((*k).into(), (*v).into());
    }
    let mut app = spawn_with_env(env).await;
    app._dir = Some(dir);
    app
}

/// Like `spawn_app`, but serving until `stop` completes; the handle says how serving ended.
pub async fn spawn_app_until(
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (TestApp, tokio::task::JoinHandle<anyhow::Result<()>>) {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let env = base_env(dir.path());
    let config = ticketing::Config::from_lookup(|k| env.get(k).cloned()).expect("test config");
    let app = ticketing::App::build(config).await.expect("app builds");
    let test_app = TestApp {
        base: format!("http://127.0.0.1:{}", app.port()),
        client: reqwest::Client::new(),
        store: app.state().store.clone(),
        executor: app.state().executor.clone(),
        _dir: Some(dir),
    };
    (test_app, tokio::spawn(app.run_until(stop)))
}

pub async fn spawn_with_env(env: HashMap<String, String>) -> TestApp {
    init_logs();
    let config = ticketing::Config::from_lookup(|k| env.get(k).cloned()).expect("test config");
    let app = ticketing::App::build(config).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.state().store.clone();
    let executor = app.state().executor.clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        client: reqwest::Client::new(),
        store,
        executor,
        _dir: None,
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// Sends the request; a body that is not JSON is kept as a string.
    async fn from(req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            body,
            headers,
        }
    }

    /// The error code of an error body, for compact assertions.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req).await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        Resp::from(req).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// Registers a user through the API and returns (id, token).
    pub async fn register(&self, email: &str) -> (String, String) {
        let r = self
            .request(
                Method::POST,
                "/api/auth/register",
                None,
                Some(json!({"email": email, "password": "password123"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        (
            r.body["user"]["id"].as_str().unwrap().to_owned(),
            r.body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a staff account directly in the store (as the CLI does) and logs it in.
    pub async fn staff(&self, email: &str, role: Role, skills: &[&str]) -> (String, String) {
        let user = ticketing::app::create_user(
            &self.store,
            Email::parse(email).unwrap(),
            Password::parse("password123").unwrap(),
            role,
            skills.iter().map(|s| s.to_string()).collect(),
        )
        .await
        .expect("staff created");
        (user.id, self.login(email, "password123").await)
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .request(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }

    pub async fn create_ticket(&self, token: &str, title: &str) -> Value {
        let r = self
            .post(
                "/api/tickets",
                token,
                json!({"title": title, "description": format!("Details about {title}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["ticket"].clone()
    }

    /// Waits until the outbox is delivered and every ticket went through triage and routing.
    pub async fn wait_until_processed(&self) {
        crate::support::wait_until(std::time::Duration::from_secs(30), async || {
            let backlog = self.store.outbox_backlog().await.expect("backlog");
            let stats = self.store.stats().await.expect("stats");
            let pending = stats
                .by_triage_status
                .iter()
                .find(|c| c.key == "pending")
                .map_or(0, |c| c.count);
            let page = self
                .store
                .list_tickets(&ticketing::store::TicketQuery {
                    visibility: ticketing::store::Visibility::All,
                    status: None,
                    priority: None,
                    category: None,
                    assignee: None,
                    text: None,
                    sort: ticketing::store::TicketSort::Newest,
                    limit: 1000,
                    after: None,
                })
                .await
                .expect("tickets");
            let unrouted = page
                .items
                .iter()
                .filter(|t| t.routing_reason.is_none() && t.assigned_to.is_none())
                .count();
            if backlog == 0 && pending == 0 && unrouted == 0 {
                Ok(())
            } else {
                Err(format!(
                    "background processing did not finish: backlog {backlog}, pending {pending}, unrouted {unrouted}"
                ))
            }
        })
        .await
    }

    pub async fn events(&self) -> Vec<ticketing::store::OutboxEvent> {
        self.store.list_events(0, 10_000).await.expect("events")
    }
}

/// A plain HTTP client for tests that talk to spawned processes.
pub fn http_client() -> reqwest::Client {
    ticketing::tls::install_crypto_provider();
    reqwest::Client::new()
}
