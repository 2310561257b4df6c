//! The S3 server the attachment tests run against: moto's, from `tests/s3_peer/peer.py`, on
//! loopback (see [`python_peer`](crate::support::python_peer)).

use crate::support::python_peer::{self, Peer, Spec};
use tokio::sync::OnceCell;

/// The keys moto accepts (any), as `AWS_*` variables for the service.
pub const ACCESS_KEY: &str = "testing-access-key";
pub const SECRET_KEY: &str = "testing-secret-key";

const PEER_SPEC: Spec = Spec {
    name: "S3",
    script: "tests/s3_peer/peer.py",
    dir: "s3-peer",
    scheme: "http://",
    otherwise: "",
};

static PEER: OnceCell<Result<Peer, String>> = OnceCell::const_new();

/// The peer's base URL (`http://127.0.0.1:PORT`); panics with one line saying what is missing.
pub async fn s3_url() -> String {
    ticketing::tls::install_crypto_provider();
    python_peer::started(&PEER, &PEER_SPEC)
        .await
        .address
        .clone()
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
