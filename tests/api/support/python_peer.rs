//! The tests' Python peers (the MongoDB and the S3 server): a script that makes its own
//! virtualenv from pinned requirements under `target/`, prints the address it serves on as its
//! first line, and serves until its standard input reaches end of file. This process holds the
//! only write end of that pipe, so when it exits, however it exits, the peer exits too: no peer
//! outlives `cargo test`.
//!
//! Each peer starts once per test process, on first use. The library's unit tests include this
//! file too (through `tests/mongo_peer/server.rs`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::OnceCell;

/// Installing a peer's packages on a cold machine takes a minute or two; a start that has not
/// printed its address by then is stuck.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// What tells one peer from another.
pub struct Spec {
    /// Names the peer in messages: "MongoDB", "S3".
    pub name: &'static str,
    /// The script, from the workspace root.
    pub script: &'static str,
    /// Its folder beside the test binaries (virtualenv and logs).
    pub dir: &'static str,
    /// How the address it prints begins, e.g. `mongodb://`.
    pub scheme: &'static str,
    /// What else would do when there is no Python 3.13, said after the ways to install one.
    pub otherwise: &'static str,
}

/// A running peer.
pub struct Peer {
    /// The address it printed.
    pub address: String,
    /// Never waited for: it exits when this process does (see the module note).
    _process: Child,
}

/// The peer of `spec` in `cell`, started on first use; panics with one line saying what is
/// missing when it cannot start.
pub async fn started(
    cell: &'static OnceCell<Result<Peer, String>>,
    spec: &'static Spec,
) -> &'static Peer {
    let peer = cell
        .get_or_init(|| async {
            tokio::task::spawn_blocking(|| start(spec))
                .await
                .unwrap_or_else(|e| Err(format!("starting the {} peer panicked: {e}", spec.name)))
        })
        .await;
    match peer {
        Ok(peer) => peer,
        Err(message) => panic!("{message}"),
    }
}

/// The Python of the peer's virtualenv (there once the peer has started).
pub fn venv_python(spec: &Spec) -> PathBuf {
    peer_dir(spec).join("venv").join("bin").join("python")
}

/// Where the peer keeps its virtualenv and log: beside the test binaries, under `target/`.
fn peer_dir(spec: &Spec) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test binary>
    exe.ancestors()
        .nth(2)
        .map(|profile| profile.join(spec.dir))
        .expect("the test binary is in target/<profile>/deps")
}

/// A Python 3.13 that runs: `python3.13` on `PATH`, else pyenv's newest 3.13 (pyenv's root
/// from `pyenv root`, `PYENV_ROOT` or `~/.pyenv`, as a CI shell may not have pyenv set up).
fn python(spec: &Spec) -> Result<PathBuf, String> {
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
    Err(format!(
        "the {} tests need Python 3.13 for their peer ({}): install python3.13 (with venv), \
         or `pyenv install 3.13`{}",
        spec.name, spec.script, spec.otherwise
    ))
}

fn start(spec: &Spec) -> Result<Peer, String> {
    let python = python(spec)?;
    let dir = peer_dir(spec);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let log_path = dir.join(format!("peer-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    // From the workspace root, whichever member's tests include this file.
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join(spec.script))
        .find(|script| script.is_file())
        .ok_or_else(|| format!("{} is not in the workspace", spec.script))?;
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
            "the {} peer {what}; its log, {}:\n{}",
            spec.name,
            log_path.display(),
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    };
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) if line.starts_with(spec.scheme) => Ok(Peer {
            address: line.trim().to_owned(),
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
