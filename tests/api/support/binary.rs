//! The real `ticketing` binary as a child process: started with a clean environment, waited for
//! over HTTP, killed with SIGKILL like a crash.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::wait::{Reached, poll_until};

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves nothing
/// running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Binary {
    child: Option<Child>,
    pub base: String,
    pub client: reqwest::Client,
    log: PathBuf,
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

pub use super::wait::free_port;

/// The environment every test binary gets: its data directory, a port, no rate limit, and
/// nothing inherited but `PATH`.
pub fn env(data_dir: &Path, port: u16) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DATA_DIR".into(), data_dir.display().to_string()),
        ("PORT".into(), port.to_string()),
        ("AUTH_RATE_LIMIT_PER_MIN".into(), "100000".into()),
        (
            "JWT_SECRET".into(),
            "binary-test-secret-binary-test-secret-01".into(),
        ),
    ])
}

fn command(env: &BTreeMap<String, String>) -> Command {
    command_of(env!("CARGO_BIN_EXE_ticketing"), env)
}

/// The binary `bin` (`ticketing` or `vercel`) with `env` and nothing inherited but `PATH`.
pub fn command_of(bin: &str, env: &BTreeMap<String, String>) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env);
    cmd
}

/// Runs a one-shot command (`user create`, `runs list`, ...) to completion; one that is still
/// running after a minute (a server that should have refused to start) is killed and fails.
pub fn run(env: &BTreeMap<String, String>, args: &[&str]) -> Output {
    let mut child = command(env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("child status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "`ticketing {}` did not exit:\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

impl Binary {
    /// Starts `ticketing serve`; its log goes to `DATA_DIR/server-<port>.log` (printed by the
    /// tests on failure with [`Binary::log`]).
    pub fn spawn(env: &BTreeMap<String, String>) -> Binary {
        let dir = PathBuf::from(&env["DATA_DIR"]);
        std::fs::create_dir_all(&dir).expect("data dir");
        let log = dir.join(format!("server-{}.log", env["PORT"]));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = command(env);
        if !env.contains_key("RUST_LOG") {
            cmd.env("RUST_LOG", "info,ticketing=debug");
        }
        let child = cmd
            .arg("serve")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("binary starts");
        ticketing::tls::install_crypto_provider();
        Binary {
            child: Some(child),
            base: format!("http://127.0.0.1:{}", env["PORT"]),
            client: reqwest::Client::new(),
            log,
        }
    }

    /// Starts `ticketing serve` through `sh` under `umask`, with its log in `log` and the data
    /// directory left for the server to create (or find as it is).
    pub fn spawn_with_umask(env: &BTreeMap<String, String>, umask: &str, log: &Path) -> Binary {
        let out = std::fs::File::create(log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new("sh");
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .args(["-c", &format!("umask {umask} && exec \"$0\" serve")])
            .arg(env!("CARGO_BIN_EXE_ticketing"));
        if !env.contains_key("RUST_LOG") {
            cmd.env("RUST_LOG", "info,ticketing=debug");
        }
        let child = cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("binary starts");
        ticketing::tls::install_crypto_provider();
        Binary {
            child: Some(child),
            base: format!("http://127.0.0.1:{}", env["PORT"]),
            client: reqwest::Client::new(),
            log: log.to_path_buf(),
        }
    }

    /// Starts the server and waits until `/readyz` answers 200.
    pub async fn start(env: &BTreeMap<String, String>) -> Binary {
        let b = Binary::spawn(env);
        b.wait_for(
            "/readyz",
            |s, _| s == StatusCode::OK,
            Duration::from_secs(60),
        )
        .await;
        b
    }

    /// Polls `path` until `done(status, body)`, failing with the server log after `within`.
    pub async fn wait_for(
        &self,
        path: &str,
        done: impl Fn(StatusCode, &Value) -> bool,
        within: Duration,
    ) -> Value {
        self.until(
            &format!("{path} to reach the expected state"),
            within,
            async || {
                let r = self
                    .client
                    .get(format!("{}{path}", self.base))
                    .send()
                    .await
                    .ok()?;
                let status = r.status();
                let body = r.json::<Value>().await.unwrap_or(Value::Null);
                done(status, &body).then_some(body)
            },
        )
        .await
    }

    /// Polls `probe` until it holds, failing with `what`, the last state it reported and the
    /// server log after `within`.
    pub async fn until<T, R: Reached<T>>(
        &self,
        what: &str,
        within: Duration,
        probe: impl AsyncFnMut() -> R,
    ) -> T {
        match poll_until(within, probe).await {
            Ok(value) => value,
            Err(last) if last.is_empty() => {
                panic!("timed out waiting for {what}\n{}", self.log())
            }
            Err(last) => panic!("timed out waiting for {what}: {last}\n{}", self.log()),
        }
    }

    /// SIGKILL: no shutdown hook, no flush, exactly like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .client
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login sent");
        assert_eq!(r.status(), StatusCode::OK, "login as {email}");
        let body: Value = r.json().await.expect("login body");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Registers a user; returns (id, token).
    pub async fn register(&self, email: &str) -> (String, String) {
        let r = self
            .client
            .post(format!("{}/api/auth/register", self.base))
            .json(&json!({"email": email, "password": "password123"}))
            .send()
            .await
            .expect("register sent");
        assert_eq!(r.status(), StatusCode::CREATED, "register {email}");
        let body: Value = r.json().await.expect("register body");
        (
            body["user"]["id"].as_str().expect("id").to_owned(),
            body["token"].as_str().expect("token").to_owned(),
        )
    }

    /// Opens a ticket; returns its id.
    pub async fn create_ticket(&self, token: &str, title: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/tickets",
                token,
                json!({"title": title, "description": format!("Details about {title}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["ticket"]["id"].as_str().expect("ticket id").to_owned()
    }

    /// Every run the executor knows, through the admin API (newest first).
    pub async fn runs(&self, admin: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/runs?limit=100&cursor={c}"),
                None => "/api/runs?limit=100".to_owned(),
            };
            let (status, body) = self.get(&path, admin).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            all.extend(body["runs"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return all,
            }
        }
    }

    pub async fn run(&self, admin: &str, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/runs/{id}"), admin).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["run"].clone()
    }
}
