//! The MongoDB test peer itself (`tests/mongo_peer`). Its patches make mongoeco answer like a
//! real server; this checks the one found by the concurrency tests: mongoeco as installed keeps
//! a transaction whose commit failed open, so the retry carries on inside it, while the
//! patched peer starts the retry afresh, as MongoDB does.

use crate::mongo_server;
use tokio::process::Command;

const REPRO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/mongo_peer/repro_stale_transaction.py"
);

#[tokio::test]
async fn a_retried_transaction_starts_afresh_only_with_the_peers_patch() {
    let python = mongo_server::peer_python().await;
    let unpatched = Command::new(&python)
        .arg(REPRO)
        .output()
        .await
        .expect("the reproduction runs");
    let report = String::from_utf8_lossy(&unpatched.stdout);
    assert_eq!(
        unpatched.status.code(),
        Some(1),
        "mongoeco no longer keeps a failed transaction open (patch 6 of peer.py may go):\n\
         {report}{}",
        String::from_utf8_lossy(&unpatched.stderr)
    );
    assert!(report.contains("duplicate key"), "{report}");

    let patched = Command::new(&python)
        .arg(REPRO)
        .arg("--patched")
        .output()
        .await
        .expect("the reproduction runs");
    assert!(
        patched.status.success(),
        "{}{}",
        String::from_utf8_lossy(&patched.stdout),
        String::from_utf8_lossy(&patched.stderr)
    );
}
