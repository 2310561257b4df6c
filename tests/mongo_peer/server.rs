//! The MongoDB server a test runs against: the one `MONGODB_URI` names, when it is set (a real
//! replica set wins), else the peer of `peer.py` beside this file, started once per test process
//! on first use. Shared by the library's unit tests and the integration tests (each includes
//! this file).
//!
//! The peer holds the read end of a pipe whose write end only this process has: when the
//! process exits, however it exits, the peer reads end of file and exits too, so no peer
//! outlives `cargo test`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard, OnceCell};

/// Installing the peer's packages on a cold machine takes a minute or two; a start that has
/// not printed its address by then is stuck.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// A MongoDB server and, on the peer, this test's turn on it.
pub struct TestMongo {
    pub uri: String,
    /// True on the peer, false on a server named by `MONGODB_URI`.
    pub peer: bool,
    _turn: Option<MutexGuard<'static, ()>>,
}

struct Peer {
    uri: String,
    /// Never waited for: it exits when this process does (see the module note).
    _process: Child,
}

static PEER: OnceCell<Result<Peer, String>> = OnceCell::const_new();

/// One test at a time on the peer. mongoeco's transactions are coarse: a commit fails with a
/// write conflict whenever any other transaction committed since this one started, in any
/// database, whatever documents either touched (MongoDB conflicts only on the same document).
/// Tests side by side still pass, as every transaction retries, but they spend their time
/// retrying each other's conflicts and take longer than one after the other. Within a test,
/// concurrent writers still conflict and retry, which is what the concurrency tests want.
static TURN: Mutex<()> = Mutex::const_new(());

/// The server for a MongoDB test; panics with one line saying what is missing when there is
/// none (never skips).
pub async fn mongo() -> TestMongo {
    if let Some(uri) = std::env::var("MONGODB_URI").ok().filter(|u| !u.is_empty()) {
        return TestMongo {
            uri,
            peer: false,
            _turn: None,
        };
    }
    let uri = peer().await.uri.clone();
    TestMongo {
        uri,
        peer: true,
        _turn: Some(TURN.lock().await),
    }
}

/// The peer, started on first use; panics with one line saying what is missing.
async fn peer() -> &'static Peer {
    let peer = PEER
        .get_or_init(|| async {
            tokio::task::spawn_blocking(start_peer)
                .await
                .unwrap_or_else(|e| Err(format!("starting the MongoDB peer panicked: {e}")))
        })
        .await;
    match peer {
        Ok(peer) => peer,
        Err(message) => panic!("{message}"),
    }
}

/// The Python of the peer's virtualenv (installed on first use), for scripts about the peer.
pub async fn peer_python() -> PathBuf {
    peer().await;
    peer_dir().join("venv").join("bin").join("python")
}

/// Where the peer keeps its virtualenv and log: beside the test binaries, under `target/`.
fn peer_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary>
    exe.ancestors()
        .nth(2)
        .map(|profile| profile.join("mongo-peer"))
        .expect("the test binary is in target/<profile>/deps")
}

/// A Python 3.13 that runs: `python3.13` on `PATH`, else pyenv's newest 3.13 (pyenv's root
/// from `pyenv root`, `PYENV_ROOT` or `~/.pyenv`, as a CI shell may not have pyenv set up).
pub fn python() -> Result<PathBuf, String> {
    let runs = |python: &Path| {
        Command::new(python)
            .args(["-c", "import sys; assert sys.version_info[:2] == (3, 13)"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let on_path = PathBuf::from("python3.13");
    if runs(&on_path) {
        return Ok(on_path);
    }
    let pyenv_roots = [
        Command::new("pyenv")
            .arg("root")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
        std::env::var_os("PYENV_ROOT").map(PathBuf::from),
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pyenv")),
    ];
    for root in pyenv_roots.into_iter().flatten() {
        let Ok(entries) = std::fs::read_dir(root.join("versions")) else {
            continue;
        };
        let mut versions: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("3.13"))
            .map(|e| e.path().join("bin").join("python3"))
            .collect();
        versions.sort();
        if let Some(python) = versions.into_iter().rev().find(|p| runs(p)) {
            return Ok(python);
        }
    }
    Err(
        "the MongoDB tests need Python 3.13 for their peer (tests/mongo_peer/peer.py): \
         install python3.13 (with venv), or `pyenv install 3.13`, or set MONGODB_URI to a \
         replica set"
            .to_owned(),
    )
}

fn start_peer() -> Result<Peer, String> {
    let python = python()?;
    let dir = peer_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let log_path = dir.join(format!("peer-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    // The workspace root's tests/, whichever member's tests include this file.
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/mongo_peer/peer.py"))
        .find(|script| script.is_file())
        .ok_or("tests/mongo_peer/peer.py is not in the workspace")?;
    let mut process = Command::new(&python)
        .arg(&script)
        .arg(dir.join("venv"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("starting {} {}: {e}", python.display(), script.display()))?;
    let stdout = process.stdout.take().expect("BUG: piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let failed = |what: &str| {
        format!(
            "the MongoDB peer {what}; its log, {}:\n{}",
            log_path.display(),
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    };
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) if line.starts_with("mongodb://") => Ok(Peer {
            uri: line.trim().to_owned(),
            _process: process,
        }),
        Ok(_) => {
            let _ = process.wait();
            Err(failed("exited before it served"))
        }
        Err(_) => {
            let _ = process.kill();
            let _ = process.wait();
            Err(failed("did not start in time"))
        }
    }
}
