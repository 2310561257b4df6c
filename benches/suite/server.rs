//! The processes under test: the release `ticketing` binary and the JS SDK app, each on its own
//! 127.0.0.1 port, killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The data folders of the servers, deleted when the suite ends rather than when each
/// benchmark does. A benchmark leaves thousands of mail files behind, and on a file system
/// without a journal (this machine's ext4) every file created in the minutes after they are
/// deleted costs a scan past their inodes: the next benchmark's server would pay, in CPU,
/// for the clean-up of the one before.
static DATA_DIRS: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

/// A new data folder, kept until [`remove_data_dirs`].
pub fn data_dir() -> PathBuf {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_owned();
    DATA_DIRS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(dir);
    path
}

/// Deletes the folders [`data_dir`] gave out.
pub fn remove_data_dirs() {
    DATA_DIRS.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// The server binary `cargo bench` builds next to the bench (release profile); `BENCH_BIN`
/// overrides it.
pub fn binary() -> PathBuf {
    std::env::var_os("BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ticketing")))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    /// Time from spawn to the first answer of the serve endpoint to `GET /api/inngest`.
    pub started_in: Duration,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has used so far, user and system together.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // In clock ticks of USER_HZ, which Linux fixes at 100 for user space.
        Some(Duration::from_millis(ticks * 10))
    }

    /// Resident set size in bytes (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss(&self) -> Option<u64> {
        status_kb(self.child.id(), "VmRSS").map(|kb| kb * 1024)
    }

    /// Peak resident set size in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> Option<u64> {
        status_kb(self.child.id(), "VmHWM").map(|kb| kb * 1024)
    }
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Starts the server in `data_dir` (its working directory too, so no stray `.env` is read) with
/// only `env` and the port set, and waits until it serves `GET /api/inngest`.
pub fn start_server(data_dir: &Path, env: &[(&str, String)]) -> Process {
    let port = free_port();
    let mut cmd = Command::new(binary());
    cmd.current_dir(data_dir)
        .env_clear()
        .env("PORT", port.to_string())
        .env("DATA_DIR", data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // For looking into a result: the server's log goes to BENCH_SERVER_LOG/server-PORT.log.
    if let Some(dir) = std::env::var_os("BENCH_SERVER_LOG") {
        let path = Path::new(&dir).join(format!("server-{port}.log"));
        if let Ok(file) = std::fs::File::create(&path) {
            if let Ok(copy) = file.try_clone() {
                cmd.stderr(copy);
            }
            cmd.stdout(file);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_and_wait(cmd, port, "ticketing")
}

pub fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/inngest-axum/tests/js-oracle")
}

/// Installs the JS SDK (pinned by the lock file) on first use.
pub fn ensure_js_deps() {
    let dir = js_dir();
    if dir.join("node_modules/inngest").exists() {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .expect("npm is needed for the JS side of the benchmark");
    assert!(status.success(), "npm ci failed");
}

/// The JS SDK app (the official `inngest` package with its node adapter), in cloud mode with
/// `env`, waited for like the server.
pub fn start_js(env: &[(&str, String)]) -> Process {
    ensure_js_deps();
    let port = free_port();
    let mut cmd = Command::new("node");
    cmd.arg("server.mjs")
        .current_dir(js_dir())
        .env_clear()
        .env("ORACLE_PORT", port.to_string())
        // The app exits when its stdin closes, i.e. with us.
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for var in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_and_wait(cmd, port, "node")
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn spawn_and_wait(mut cmd: Command, port: u16, what: &str) -> Process {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    loop {
        if introspection_ok(addr) {
            return Process {
                child,
                addr,
                started_in: started.elapsed(),
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited during start: {status}");
        }
        if started.elapsed() > START_TIMEOUT {
            let _ = child.kill();
            panic!("{what} did not answer GET /api/inngest within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// One `GET /api/inngest` on a fresh connection; true when the serve endpoint answers it: 200,
/// or 401 from a server in cloud mode (the embedded executor signs with a key private to the
/// process, so an outside request cannot be signed; the JS SDK in cloud mode answers the same).
/// The server binds its port only once fully built, so this is the first moment it can serve.
/// Blocking and allocation-light so that polling adds little to the measured start time.
fn introspection_ok(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /api/inngest HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    if reader.read_line(&mut status).is_err() {
        return false;
    }
    // Drain so the server is not reset mid-answer.
    let _ = reader.read_to_end(&mut Vec::new());
    matches!(status.split_whitespace().nth(1), Some("200" | "401"))
}
