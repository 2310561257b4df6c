//! Property-based fuzzing of the whole API from its own OpenAPI document: schemathesis sends
//! thousands of generated requests (valid and not) and checks there is no 5xx, every status is
//! documented and every body matches its schema.

use crate::helpers::*;
use std::path::PathBuf;
use std::process::Command;
use ticketing::domain::user::Role;

/// A virtualenv with the pinned schemathesis, created once and reused across runs.
fn schemathesis() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-venv");
    let st = venv.join("bin").join("st");
    if st.exists() {
        return st;
    }
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 -m venv failed: python3 with venv is required for the fuzz test"
    );
    let requirements = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/requirements.txt");
    let ok = Command::new(venv.join("bin").join("pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            requirements,
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "installing schemathesis from PyPI failed");
    st
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors() {
    let st = tokio::task::spawn_blocking(schemathesis).await.unwrap();
    let app = spawn_app().await;
    let (_, admin) = app
        .staff("fuzz-admin@example.com", Role::Admin, &["SQL"])
        .await;
    // Some data so that generated ids sometimes hit real rows.
    let (_, user) = app.register("fuzz-user@example.com").await;
    app.create_ticket(&user, "Fuzzing seed ticket").await;

    let output = tokio::process::Command::new(st)
        .arg("run")
        .arg(format!("{}/openapi.json", app.base))
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        // Business rules (a valid-looking but unknown cursor, a taken e-mail) rightly refuse some
        // schema-valid requests; every other check applies.
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        // Every request carries the admin's token: signing it out would leave the rest of the
        // run testing nothing but 401s.
        .args(["--exclude-path", "/api/auth/sign-out-everywhere"])
        // The event stream answers with a body that never ends, by design; its tests are in
        // `stream.rs`.
        .args(["--exclude-path", "/api/stream"])
        .args(["--max-examples", "40", "--seed", "20261129", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .await
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    assert!(!report.contains("[500]"), "{report}");
}
