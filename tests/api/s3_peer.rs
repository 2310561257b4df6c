//! The S3 server the attachment tests run against: moto's, from `tests/s3_peer/peer.py`,
//! started once per test process on first use, on loopback.
//!
//! The peer holds the read end of a pipe whose write end only this process has: when the
//! process exits, however it exits, the peer reads end of file and exits too.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Installing the peer's packages on a cold machine takes a minute or two.
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// The keys moto accepts (any), as `AWS_*` variables for the service.
pub const ACCESS_KEY: &str = "testing-access-key";
pub const SECRET_KEY: &str = "testing-secret-key";

struct Peer {
    url: String,
    _process: Child,
}

static PEER: OnceCell<Result<Peer, String>> = OnceCell::const_new();

/// The peer's base URL (`http://127.0.0.1:PORT`); panics with one line saying what is missing.
pub async fn s3_url() -> String {
    ticketing::tls::install_crypto_provider();
    let peer = PEER
        .get_or_init(|| async {
            tokio::task::spawn_blocking(start)
                .await
                .unwrap_or_else(|e| Err(format!("starting the S3 peer panicked: {e}")))
        })
        .await;
    match peer {
        Ok(peer) => peer.url.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Creates a bucket (moto takes unsigned requests).
pub async fn create_bucket(bucket: &str) {
    let url = s3_url().await;
    let r = reqwest::Client::new()
        .put(format!("{url}/{bucket}"))
        .send()
        .await
        .expect("create bucket");
    assert!(r.status().is_success(), "create bucket: {}", r.status());
}

/// The object keys in a bucket.
pub async fn keys(bucket: &str) -> Vec<String> {
    let url = s3_url().await;
    let body = reqwest::Client::new()
        .get(format!("{url}/{bucket}?list-type=2"))
        .send()
        .await
        .expect("list bucket")
        .text()
        .await
        .expect("listing");
    body.split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect()
}

fn peer_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(2)
        .map(|profile| profile.join("s3-peer"))
        .expect("the test binary is in target/<profile>/deps")
}

fn start() -> Result<Peer, String> {
    let python = crate::mongo_server::python()?;
    let dir = peer_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let log_path = dir.join(format!("peer-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3_peer/peer.py");
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
            "the S3 peer {what}; its log, {}:\n{}",
            log_path.display(),
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    };
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) if line.starts_with("http://") => Ok(Peer {
            url: line.trim().to_owned(),
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
