//! Real headless Chromium for the browser tests, driven over WebDriver: `chromedriver` spoken to
//! with plain HTTP. Chromium and chromedriver come from the PATH; when they are missing and the
//! tests run as root with apt-get (CI), they are installed once; otherwise the test fails with
//! one line saying how to install them.

use base64::Engine;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use super::wait::{free_port, poll_until, wait_until};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const INSTALL_HINT: &str = "browser tests need Chromium and chromedriver: run `apt-get install -y chromium chromium-driver` (Debian/Ubuntu) and make sure both are on the PATH";

/// Two browsers at a time at most: each Chromium wants a core of its own.
static SLOTS: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| tokio::sync::Semaphore::new(2));

#[derive(Clone, Debug)]
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn find_tools() -> Option<Tools> {
    Some(Tools {
        chromium: which(&[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ])?,
        chromedriver: which(&["chromedriver"])?,
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn install() -> Result<(), String> {
    if !is_root() || which(&["apt-get"]).is_none() {
        return Err(INSTALL_HINT.to_owned());
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let packages = [
        "install",
        "-y",
        "--no-install-recommends",
        "chromium",
        "chromium-driver",
    ];
    if apt(&packages) || (apt(&["update"]) && apt(&packages)) {
        Ok(())
    } else {
        Err(format!(
            "installing Chromium with apt-get failed; {INSTALL_HINT}"
        ))
    }
}

fn tools() -> Tools {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    let found = TOOLS.get_or_init(|| match find_tools() {
        Some(t) => Ok(t),
        None => install().and_then(|()| find_tools().ok_or_else(|| INSTALL_HINT.to_owned())),
    });
    match found {
        Ok(t) => t.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Where screenshots go: `target/screenshots/` of the build that runs the tests.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/api-<hash>
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

/// One chromedriver process (and the browsers it starts), killed with its process group.
pub struct Driver {
    child: Child,
    url: String,
    client: reqwest::Client,
    _slot: tokio::sync::SemaphorePermit<'static>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver runs in its own process group with every browser it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub async fn start() -> Driver {
        let tools = tools();
        let slot = SLOTS.acquire().await.expect("browser slots");
        let port = free_port();
        let mut cmd = Command::new(&tools.chromedriver);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e}; {INSTALL_HINT}",
                tools.chromedriver.display()
            )
        });
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _slot: slot,
        };
        wait_until(Duration::from_secs(30), async || {
            if let Ok(r) = driver
                .client
                .get(format!("{}/status", driver.url))
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                Ok(())
            } else {
                Err("chromedriver did not become ready")
            }
        })
        .await;
        driver
    }

    /// A fresh browser (its own profile) with a window of this size, pointed at `app`.
    pub async fn browser(&self, app: &str, width: u32, height: u32) -> Browser {
        let tools = tools();
        let profile = tempfile::tempdir().expect("profile dir");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--lang=en-GB".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": tools.chromium, "args": args },
                    "goog:loggingPrefs": { "browser": "ALL" },
                    "timeouts": { "script": 20000, "pageLoad": 30000, "implicit": 0 }
                }
            }
        });
        let r = self
            .client
            .post(format!("{}/session", self.url))
            .json(&caps)
            .send()
            .await
            .expect("new session request");
        let v: Value = r.json().await.expect("new session answer");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {v}"))
            .to_owned();
        let browser = Browser {
            session: format!("{}/session/{id}", self.url),
            client: self.client.clone(),
            app: app.trim_end_matches('/').to_owned(),
            console: Vec::new(),
            _profile: profile,
        };
        browser.resize(width, height).await;
        browser
    }
}

/// One browser window.
pub struct Browser {
    session: String,
    client: reqwest::Client,
    app: String,
    /// Console entries read so far.
    pub console: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("chromedriver answers");
        let ok = resp.status().is_success();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.call(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("WebDriver {path} failed: {e}"),
        }
    }

    /// Sizes the viewport to `width` x `height`: the window's frame takes some height (its
    /// reported outer width is clamped, so only the height is corrected).
    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
        let frame = self
            .js_value("return window.outerHeight - window.innerHeight")
            .await;
        let dh = frame.as_u64().unwrap_or(0);
        if dh > 0 {
            self.cmd(
                reqwest::Method::POST,
                "/window/rect",
                Some(json!({"width": width, "height": u64::from(height) + dh})),
            )
            .await;
        }
    }

    /// Opens a path of the app (a full page load).
    pub async fn goto(&self, path: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/url",
            Some(json!({"url": format!("{}{path}", self.app)})),
        )
        .await;
    }

    /// The current path and query.
    pub async fn path(&self) -> String {
        self.js_value("return location.pathname + location.search")
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub async fn js_value(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    pub async fn js_with(&self, script: &str, args: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Polls a script until it returns something truthy (up to 30 s: polling pages refresh
    /// every 5 s).
    pub async fn wait_for(&self, script: &str, what: &str) -> Value {
        let polled = poll_until(Duration::from_secs(30), async || {
            match self
                .call(
                    reqwest::Method::POST,
                    "/execute/sync",
                    Some(json!({"script": script, "args": []})),
                )
                .await
            {
                Ok(v) if truthy(&v) => Ok(v),
                Ok(v) | Err(v) => Err(v),
            }
        })
        .await;
        match polled {
            Ok(v) => v,
            Err(last) => {
                let text = self.body_text().await;
                panic!(
                    "timed out waiting for {what} (last: {last}); page {} shows:\n{text}",
                    self.path().await
                );
            }
        }
    }

    /// Waits for an element matching `css` and returns its WebDriver id.
    pub async fn find(&self, css: &str) -> String {
        let polled = poll_until(Duration::from_secs(30), async || {
            self.call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .ok()
            .and_then(|v| v[ELEMENT].as_str().map(str::to_owned))
        })
        .await;
        match polled {
            Ok(id) => id,
            Err(_) => {
                let text = self.body_text().await;
                panic!(
                    "no element {css} on {}; the page shows:\n{text}",
                    self.path().await
                );
            }
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.js_with(
            "return document.querySelector(arguments[0]) !== null",
            json!([css]),
        )
        .await
            == Value::Bool(true)
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.wait_for(
            &format!("const e = document.querySelector({}); return e && !e.disabled && e.offsetParent !== null", js_str(css)),
            &format!("{css} to be enabled and visible"),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clears a field and types into it, key by key.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Puts local files into a file input, as a person choosing them in the file dialog would.
    pub async fn choose_files(&self, css: &str, paths: &[&std::path::Path]) {
        let id = self.find(css).await;
        let text: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text.join("\n")})),
        )
        .await;
    }

    /// Types into whatever has focus (special keys as WebDriver code points, e.g. "\u{E004}" Tab).
    pub async fn keys(&self, text: &str) {
        let actions: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                let k = c.to_string();
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.cmd(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    /// Picks an option of a <select> by its value, as a person would (click the option).
    pub async fn choose(&self, select_css: &str, value: &str) {
        self.find(select_css).await;
        let option = format!("{select_css} option[value=\"{value}\"]");
        let id = self.find(&option).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the element's text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        self.wait_for(
            &format!(
                "const e = document.querySelector({}); return e && e.textContent.includes({})",
                js_str(css),
                js_str(needle)
            ),
            &format!("{css} to show {needle:?}"),
        )
        .await;
    }

    pub async fn body_text(&self) -> String {
        match self
            .call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": "return document.body ? document.body.innerText : ''", "args": []})))
            .await
        {
            Ok(v) => v.as_str().unwrap_or_default().to_owned(),
            Err(e) => format!("(cannot read the page: {e})"),
        }
    }

    /// Saves a PNG of the window under `target/screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        // Let fonts and layout settle: wait for two animation frames.
        self.cmd(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));", "args": []})),
        )
        .await;
        let data = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    /// Reads the browser console since the last call and keeps it in `console`.
    pub async fn read_console(&mut self) -> Vec<Value> {
        let entries = self
            .cmd(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        let entries = entries.as_array().cloned().unwrap_or_default();
        self.console.extend(entries.iter().cloned());
        entries
    }

    /// Fails on any console error other than an API request answered with a 4xx the page
    /// expected and handled (a 404 for a ticket someone may not see, a 409 shown to them). A 5xx
    /// from the API, a failed asset, a script error or a policy violation all fail.
    pub async fn assert_clean_console(&mut self, page: &str) {
        self.read_console().await;
        let app = self.app.clone();
        let bad: Vec<&Value> = self
            .console
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .filter(|e| {
                let message = e["message"].as_str().unwrap_or_default();
                let handled_api_status = e["source"] == "network"
                    && message.starts_with(&format!("{app}/api/"))
                    && message.contains("the server responded with a status of 4");
                !handled_api_status
            })
            .collect();
        assert!(bad.is_empty(), "console errors on {page}: {bad:#?}");
    }

    /// Every control has an accessible name: a label, aria-label(ledby), or text.
    pub async fn assert_named_controls(&self, page: &str) {
        let unnamed = self
            .js_value(
                r#"
                const named = (el) => {
                  if (el.getAttribute('aria-label')) return true;
                  const by = el.getAttribute('aria-labelledby');
                  if (by && by.split(' ').some((id) => (document.getElementById(id)?.textContent || '').trim())) return true;
                  if (el.labels && Array.from(el.labels).some((l) => l.textContent.trim())) return true;
                  if ((el.tagName === 'BUTTON' || el.tagName === 'A' || el.tagName === 'SUMMARY') && el.textContent.trim()) return true;
                  return Boolean(el.getAttribute('title'));
                };
                return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href], summary'))
                  .filter((el) => el.offsetParent !== null || el.type === 'radio')
                  .filter((el) => !named(el))
                  .map((el) => el.outerHTML.slice(0, 160));
                "#,
            )
            .await;
        assert_eq!(
            unnamed,
            json!([]),
            "controls without an accessible name on {page}"
        );
    }

    /// The page fits the window: nothing scrolls sideways.
    pub async fn assert_no_sideways_scroll(&self, page: &str) {
        let v = self
            .js_value("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        let (scroll, inner) = (v[0].as_i64().unwrap_or(0), v[1].as_i64().unwrap_or(0));
        if scroll > inner + 1 {
            let wide = self
                .js_value(
                    "return Array.from(document.querySelectorAll('body *')).filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !Array.from(e.children).some((c) => c.getBoundingClientRect().right > window.innerWidth + 1)).slice(0, 5).map((e) => e.outerHTML.slice(0, 200))",
                )
                .await;
            panic!("{page} is {scroll}px wide in a {inner}px window; too wide: {wide:#}");
        }
    }

    pub async fn quit(self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A JavaScript string literal.
pub fn js_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}
