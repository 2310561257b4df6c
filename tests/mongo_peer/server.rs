//! The MongoDB server a test runs against: the one `MONGODB_URI` names, when it is set (a real
//! replica set wins), else the peer of `peer.py` beside this file (see [`python_peer`]).
//! Shared by the library's unit tests and the integration tests (each includes this file).

#![allow(dead_code)]

use std::path::PathBuf;

use tokio::sync::{Mutex, MutexGuard, OnceCell};

#[path = "../api/support/python_peer.rs"]
pub mod python_peer;

const PEER_SPEC: python_peer::Spec = python_peer::Spec {
    name: "MongoDB",
    script: "tests/mongo_peer/peer.py",
    dir: "mongo-peer",
    scheme: "mongodb://",
    otherwise: ", or set MONGODB_URI to a replica set",
};

/// A MongoDB server and, on the peer, this test's turn on it.
pub struct TestMongo {
    pub uri: String,
    /// True on the peer, false on a server named by `MONGODB_URI`.
    pub peer: bool,
    _turn: Option<MutexGuard<'static, ()>>,
}

static PEER: OnceCell<Result<python_peer::Peer, String>> = OnceCell::const_new();

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
    let uri = python_peer::started(&PEER, &PEER_SPEC)
        .await
        .address
        .clone();
    TestMongo {
        uri,
        peer: true,
        _turn: Some(TURN.lock().await),
    }
}

/// The Python of the peer's virtualenv (installed on first use), for scripts about the peer.
pub async fn peer_python() -> PathBuf {
    python_peer::started(&PEER, &PEER_SPEC).await;
    python_peer::venv_python(&PEER_SPEC)
}
