//! The executor driving real SDKs through one scenario: the official JS SDK (the oracle app in
//! `crates/inngest-axum/tests/js-oracle`) over HTTP, syncing out of band and sending events to
//! the executor's own API as it would with the Inngest dev server; and this crate's Rust SDK serving the same
//! functions (`inngest_app`), mounted in-process as the application does.

use std::sync::Arc;

use chrono::Duration;
use serde_json::{Value, json};
use ticketing::inngest::executor::{
    Executor, ExecutorOptions, HttpTransport, ManualClock, RunFilter, RunState, RunStatus,
    SqliteRunStore, SyncOutcome, server_api,
};

use ticketing::inngest::executor::RouterTransport;
use ticketing::inngest::{InngestSettings, ServeHandler};

use crate::executor_support::t0;
use crate::inngest_app;
use crate::inngest_harness::start_node;
use crate::support::{Listening, Served};

#[derive(Clone, Copy, Debug)]
enum Sdk {
    Js,
    Rust,
}

struct SdkApp {
    executor: Executor,
    clock: Arc<ManualClock>,
    _node: Option<std::process::Child>,
    _api: Served,
    _dir: tempfile::TempDir,
}

impl SdkApp {
    async fn start(sdk: Sdk) -> SdkApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            SqliteRunStore::open(dir.path().join("app.db"))
                .await
                .expect("sqlite"),
        );
        let clock = Arc::new(ManualClock::new(t0()));
        // The executor's API is the SDK's Inngest base URL (register and event sends).
        let listening = Listening::bind().await;
        let api = format!("{}/", listening.url());
        let env = [("INNGEST_DEV", "1".to_string()), ("INNGEST_BASE_URL", api)];
        let options = ExecutorOptions {
            clock: clock.clone(),
            max_retry_jitter: Duration::zero(),
            omit_fn_id: true,
            ..ExecutorOptions::default()
        };
        let (executor, node, api) = match sdk {
            Sdk::Js => {
                let transport = Arc::new(
                    HttpTransport::new(std::time::Duration::from_secs(30), None).expect("client"),
                );
                let executor = Executor::new(store, transport, options);
                let served = listening.serve(server_api::router(executor.clone()));
                let (node, port) = start_node(&env);
                let outcome = executor
                    .sync(&format!("http://127.0.0.1:{port}/api/inngest"))
                    .await
                    .expect("the JS app syncs");
                assert_eq!(outcome, SyncOutcome::OutOfBand);
                (executor, Some(node), served)
            }
            Sdk::Rust => {
                let settings = InngestSettings::from_lookup(|k| {
                    env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
                });
                let handler =
                    ServeHandler::new(inngest_app::APP_ID, settings, inngest_app::functions());
                let executor = Executor::new(
                    store,
                    Arc::new(RouterTransport::new(handler.router())),
                    options,
                );
                let served = listening.serve(server_api::router(executor.clone()));
                let configs = handler
                    .function_configs("http://127.0.0.1:3000/api/inngest")
                    .expect("configs");
                executor
                    .register(inngest_app::APP_ID, configs)
                    .await
                    .expect("register");
                (executor, None, served)
            }
        };
        SdkApp {
            executor,
            clock,
            _node: node,
            _api: api,
            _dir: dir,
        }
    }

    async fn settle(&self) {
        self.executor.run_until_idle().await.expect("run");
    }

    async fn start_run(&self, name: &str, data: Value) {
        self.executor
            .publish(vec![json!({"name": name, "data": data})])
            .await
            .expect("publish");
        self.settle().await;
    }

    async fn runs(&self, function: &str) -> Vec<RunState> {
        let summaries = self
            .executor
            .list_runs(RunFilter {
                function_id: Some(format!("my-app-{function}")),
                limit: 50,
                ..RunFilter::default()
            })
            .await
            .expect("list");
        let mut runs = Vec::new();
        for s in summaries {
            runs.push(
                self.executor
                    .get_run(&s.id)
                    .await
                    .expect("get")
                    .expect("run"),
            );
        }
        runs
    }

    async fn only(&self, function: &str) -> RunState {
        let mut runs = self.runs(function).await;
        assert_eq!(runs.len(), 1, "{function}: {runs:?}");
        runs.remove(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_the_official_js_sdk_end_to_end() {
    scenario(SdkApp::start(Sdk::Js).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_the_rust_sdk_end_to_end() {
    scenario(SdkApp::start(Sdk::Rust).await).await;
}

async fn scenario(app: SdkApp) {
    let ids = app.executor.function_ids();
    for f in [
        "hello",
        "steps",
        "parallel",
        "wait",
        "invoker",
        "sender",
        "configured",
        "configured-failure",
    ] {
        assert!(
            ids.contains(&format!("my-app-{f}")),
            "{f} not registered: {ids:?}"
        );
    }

    app.start_run("app/hello", json!({"name": "Ada"})).await;
    assert_eq!(
        app.only("hello").await.output,
        Some(json!({"hello": "Ada"}))
    );

    app.start_run("app/steps", json!({})).await;
    assert_eq!(
        app.only("steps").await.status,
        RunStatus::Running,
        "sleeping for a minute"
    );
    app.clock.advance(Duration::minutes(1));
    app.settle().await;
    assert_eq!(app.only("steps").await.output, Some(json!({"b": "AB"})));

    app.start_run("app/loop", json!({})).await;
    assert_eq!(app.only("loop").await.output, Some(json!([0, 1, 2])));

    app.start_run("app/parallel", json!({})).await;
    let p = app.only("parallel").await;
    assert_eq!(p.output, Some(json!([1, 2, 3])), "{:?}", p.history);
    assert_eq!(
        p.history.iter().filter(|h| h.op == "StepPlanned").count(),
        3
    );

    app.start_run("app/wait", json!({"id": "123"})).await;
    app.executor
        .publish(vec![json!({"name": "test/resume", "data": {"id": "456"}})])
        .await
        .expect("publish");
    app.executor
        .publish(vec![
            json!({"name": "test/resume", "id": "01HRESUME", "data": {"id": "123"}}),
        ])
        .await
        .expect("publish");
    app.settle().await;
    let w = app.only("wait").await;
    assert_eq!(w.output.as_ref().expect("output")["got"]["id"], "01HRESUME");

    app.start_run("app/invoke", json!({})).await;
    assert_eq!(
        app.only("invoker").await.output,
        Some(json!({"hello": "x"}))
    );

    app.start_run("app/send", json!({})).await;
    let sent = app.only("sender").await;
    assert_eq!(sent.status, RunStatus::Completed, "{:?}", sent.history);
    let hellos = app.runs("hello").await;
    assert!(
        hellos
            .iter()
            .any(|r| r.output == Some(json!({"hello": "from-step"}))),
        "the event sent by the step started hello: {hellos:?}"
    );

    app.start_run("app/configured", json!({"ok": false})).await;
    assert!(
        app.runs("configured").await.is_empty(),
        "the trigger expression filters"
    );
    app.start_run("app/configured", json!({"ok": true, "user_id": "u1"}))
        .await;
    assert_eq!(app.only("configured").await.status, RunStatus::Completed);

    app.start_run("app/nr", json!({})).await;
    let nr = app.only("non-retriable").await;
    assert_eq!(nr.status, RunStatus::Failed);
    assert_eq!(
        nr.error.as_ref().expect("error")["name"],
        "NonRetriableError"
    );

    // Step retries: attempt 0 at once, then 15 s and 30 s later; the last one fails the step,
    // and the error raised back into the function fails the run.
    app.start_run("app/fails", json!({})).await;
    app.clock.advance(Duration::seconds(15));
    app.settle().await;
    app.clock.advance(Duration::seconds(30));
    app.settle().await;
    let f = app.only("fails").await;
    assert_eq!(f.status, RunStatus::Failed, "{:?}", f.history);
    let attempts: Vec<u32> = f
        .history
        .iter()
        .filter(|h| h.name.as_deref() == Some("flaky"))
        .map(|h| h.attempt)
        .collect();
    assert_eq!(attempts, vec![0, 1, 2]);
    assert_eq!(f.error.as_ref().expect("error")["message"], "broken");

    // RetryAfterError("30s"): not before 30 s.
    app.start_run("app/ra", json!({})).await;
    app.clock.advance(Duration::seconds(29));
    app.settle().await;
    assert_eq!(app.only("retry-after").await.history.len(), 1);
    app.clock.advance(Duration::seconds(1));
    app.settle().await;
    assert_eq!(app.only("retry-after").await.history.len(), 2);
}
