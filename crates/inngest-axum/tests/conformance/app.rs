//! The functions served by both the Rust test app and the JS oracle (`tests/js-oracle/server.mjs`).
//! The service at the workspace root includes this file too, in its executor tests and benchmarks.

#![allow(dead_code)]

use std::time::Duration;

use inngest_axum::{
    Batch, Cancel, Concurrency, ConcurrencyScope, Ctx, Debounce, Event, FnError, Function, Invoke,
    RateLimit, Step, Throttle, Timeouts, Trigger, WaitForEvent,
};
use serde_json::{Value, json};

pub const APP_ID: &str = "my-app";

pub fn functions() -> Vec<Function> {
    vec![
        Function::new("hello", "hello")
            .trigger(Trigger::event("app/hello"))
            .handler(|ctx: Ctx, _step: Step| async move {
                Ok::<_, FnError>(json!({ "hello": ctx.event.data["name"] }))
            }),
        Function::new("steps", "steps")
            .trigger(Trigger::event("app/steps"))
            .handler(|_ctx: Ctx, step: Step| async move {
                let a: String = step
                    .run("first step", || async { Ok("A".to_owned()) })
                    .await?;
                step.sleep("sleep", Duration::from_secs(60)).await?;
                let b: String = step
                    .run("second step", || async move { Ok(format!("{a}B")) })
                    .await?;
                Ok(json!({ "b": b }))
            }),
        Function::new("loop", "loop")
            .trigger(Trigger::event("app/loop"))
            .handler(|_ctx: Ctx, step: Step| async move {
                let mut sent = Vec::new();
                for i in 0..3 {
                    sent.push(step.run("send-email", move || async move { Ok(i) }).await?);
                }
                Ok::<Vec<i64>, FnError>(sent)
            }),
        Function::new("parallel", "parallel")
            .trigger(Trigger::event("app/parallel"))
            .handler(|_ctx: Ctx, step: Step| async move {
                let sends: Vec<_> = (1..=3)
                    .map(|i| step.run("send-email", move || async move { Ok(i) }))
                    .collect();
                step.parallel(sends).await
            }),
        Function::new("wait", "wait")
            .trigger(Trigger::event("app/wait"))
            .handler(|_ctx: Ctx, step: Step| async move {
                let got: Option<Value> = step
                    .wait_for_event(
                        "wait",
                        WaitForEvent::new("test/resume", Duration::from_secs(10))
                            .if_exp("async.data.id == event.data.id"),
                    )
                    .await?;
                Ok(json!({ "got": got }))
            }),
        Function::new("fails", "fails")
            .trigger(Trigger::event("app/fails"))
            .retries(2)
            .handler(|_ctx: Ctx, step: Step| async move {
                step.run::<Value, _, _>("flaky", || async { Err(FnError::retriable("broken")) })
                    .await?;
                Ok(json!("unreachable"))
            }),
        Function::new("fn-throws", "fn-throws")
            .trigger(Trigger::event("app/throws"))
            .handler(|_ctx: Ctx, _step: Step| async move {
                Err::<Value, _>(FnError::retriable("broken func"))
            }),
        Function::new("non-retriable", "non-retriable")
            .trigger(Trigger::event("app/nr"))
            .handler(|_ctx: Ctx, _step: Step| async move {
                Err::<Value, _>(FnError::non_retriable("do not retry"))
            }),
        Function::new("retry-after", "retry-after")
            .trigger(Trigger::event("app/ra"))
            .handler(|_ctx: Ctx, _step: Step| async move {
                Err::<Value, _>(FnError::retry_after("slow down", Duration::from_secs(30)))
            }),
        Function::new("invoker", "invoker")
            .trigger(Trigger::event("app/invoke"))
            .handler(|_ctx: Ctx, step: Step| async move {
                step.invoke::<Value>(
                    "call-hello",
                    Invoke::new("hello", json!({ "name": "x" })).timeout(Duration::from_secs(3600)),
                )
                .await
            }),
        Function::new("sender", "sender")
            .trigger(Trigger::event("app/send"))
            .handler(|_ctx: Ctx, step: Step| async move {
                let ids = step
                    .send_event(
                        "send-it",
                        vec![Event::new("app/hello", json!({ "name": "from-step" }))],
                    )
                    .await?;
                Ok(json!({ "ids": ids }))
            }),
        configured(),
    ]
}

/// Every flow-control option at once.
pub fn configured() -> Function {
    let user = || Some("event.data.user_id".to_owned());
    Function::new("configured", "Configured Fn")
        .trigger(Trigger::event_if("app/configured", "event.data.ok == true"))
        .trigger(Trigger::cron("0 * * * *"))
        .retries(7)
        .idempotency("event.data.order_id")
        .batch_events(Batch {
            max_size: 10,
            timeout: Duration::from_secs(5),
            key: user(),
            if_exp: None,
        })
        .rate_limit(RateLimit {
            limit: 1,
            period: Duration::from_secs(3600),
            key: user(),
        })
        .throttle(Throttle {
            limit: 10,
            period: Duration::from_secs(60),
            burst: Some(2),
            key: user(),
        })
        .concurrency(Concurrency::new(5).key("event.data.user_id"))
        .concurrency(
            Concurrency::new(100)
                .scope(ConcurrencyScope::Env)
                .key("\"global\""),
        )
        .debounce(Debounce {
            period: Duration::from_secs(10),
            key: user(),
            timeout: Some(Duration::from_secs(60)),
        })
        .priority("event.data.priority")
        .timeouts(Timeouts {
            start: Some(Duration::from_secs(60)),
            finish: Some(Duration::from_secs(3600)),
        })
        .cancel_on(
            Cancel::on("app/cancel")
                .timeout(Duration::from_secs(86_400))
                .if_exp("event.data.user_id == async.data.user_id"),
        )
        .on_failure(|ctx: Ctx, _step: Step| async move {
            Ok::<_, FnError>(json!({ "handled": ctx.event.data["function_id"] }))
        })
        .handler(|_ctx: Ctx, _step: Step| async move { Ok::<_, FnError>(Value::Null) })
}
