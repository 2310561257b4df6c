//! Scenario tests of the run state machine: SDK answers in, actions out, no HTTP.

use super::*;
use crate::opcode::{CallError, Op};
use inngest_axum::protocol::FUNCTION_INVOKED_EVENT;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("BUG: literal")
        .with_timezone(&Utc)
}

fn ctx(at: DateTime<Utc>) -> Ctx {
    Ctx {
        now: at,
        retry_jitter: Duration::zero(),
    }
}

fn new_run(max_attempts: u32) -> RunState {
    RunState::new(
        "run-1".into(),
        "my-app",
        "my-app-steps",
        max_attempts,
        json!({"id": "evt-1", "name": "app/steps", "data": {"id": "123"}, "ts": 1, "user": {}}),
        t0(),
    )
}

fn op(v: Value) -> Op {
    Op::from_json(&v).expect("valid op")
}

fn ops(list: Vec<Value>) -> SdkResponse {
    SdkResponse::Ops {
        ops: list.into_iter().map(op).collect(),
        no_retry: false,
        retry_at: None,
    }
}

fn call(step_id: &str, attempt: u32, response: SdkResponse) -> Input {
    Input::Call {
        step_id: step_id.into(),
        attempt,
        outcome: CallOutcome {
            response,
            request_version: Some(2),
        },
        started_at: t0(),
        duration: Duration::milliseconds(3),
    }
}

fn discovery_at(at: DateTime<Utc>) -> Action {
    Action::Call {
        step_id: DISCOVERY_STEP_ID.into(),
        attempt: 0,
        at,
    }
}

fn fn_error(no_retry: bool, retry_at: Option<DateTime<Utc>>) -> SdkResponse {
    SdkResponse::Error(CallError {
        status: Some(500),
        no_retry,
        retry_at,
        error: json!({"name": "Error", "message": "broken func"}),
    })
}

#[test]
fn sequential_steps_with_a_sleep_follow_the_transcript() {
    let run = new_run(5);
    let (run, actions) = apply(
        run,
        call(
            "step",
            0,
            ops(vec![
                json!({"id": "98bf", "op": "StepRun", "name": "first step", "data": "A"}),
            ]),
        ),
        &ctx(t0()),
    );
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.version, 2);
    assert_eq!(run.steps["98bf"], json!({"data": "A"}));
    assert_eq!(run.stack, vec!["98bf"]);
    assert_eq!(actions, vec![discovery_at(t0())]);

    let (run, actions) = apply(
        run,
        call(
            "step",
            0,
            ops(vec![
                json!({"id": "c3ca", "op": "Sleep", "name": "1m", "opts": {}}),
            ]),
        ),
        &ctx(t0()),
    );
    let wake = t0() + Duration::minutes(1);
    assert_eq!(
        actions,
        vec![Action::Resume {
            step_id: "c3ca".into(),
            value: Value::Null,
            at: wake
        }]
    );
    assert_eq!(run.pending.get("c3ca"), Some(&Pending::Sleep));

    let (run, actions) = apply(
        run,
        Input::Resume {
            step_id: "c3ca".into(),
            value: Value::Null,
            reason: ResumeReason::SleepDone,
        },
        &ctx(wake),
    );
    assert_eq!(run.steps["c3ca"], Value::Null);
    assert_eq!(run.stack, vec!["98bf", "c3ca"]);
    assert_eq!(actions, vec![discovery_at(wake)]);

    let (run, _) = apply(
        run,
        call(
            "step",
            0,
            ops(vec![
                json!({"id": "764e", "op": "StepRun", "name": "second step", "data": "AB"}),
            ]),
        ),
        &ctx(wake),
    );
    let (run, actions) = apply(
        run,
        call("step", 0, SdkResponse::Complete(json!({"b": "AB"}))),
        &ctx(wake),
    );
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!({"b": "AB"})));
    assert_eq!(run.ended_at, Some(wake));
    let Action::SendEvents(events) = &actions[0] else {
        panic!("expected the finished event first, got {actions:?}");
    };
    assert_eq!(events[0]["name"], FUNCTION_FINISHED_EVENT);
    assert_eq!(events[0]["data"]["result"], json!({"b": "AB"}));
    assert_eq!(events[0]["data"]["function_id"], "my-app-steps");
    assert_eq!(
        actions.last(),
        Some(&Action::Finished(RunStatus::Completed))
    );
    assert_eq!(
        run.history.iter().map(|h| h.outcome).collect::<Vec<_>>(),
        vec![
            Outcome::Completed,
            Outcome::Sleeping,
            Outcome::Resumed,
            Outcome::Completed,
            Outcome::Completed
        ]
    );
}

#[test]
fn parallel_steps_are_planned_and_coalesced_into_one_discovery() {
    let run = new_run(5);
    let planned = |id: &str| json!({"id": id, "op": "StepPlanned", "name": "send-email"});
    let (run, actions) = apply(
        run,
        call(
            "step",
            0,
            ops(vec![planned("ae5e"), planned("15ce"), planned("700a")]),
        ),
        &ctx(t0()),
    );
    assert!(run.force_step_plan);
    assert_eq!(actions.len(), 3);
    assert!(actions.iter().all(
        |a| matches!(a, Action::Call { attempt: 0, step_id, .. } if step_id != DISCOVERY_STEP_ID)
    ));

    let done = |id: &str, n: i64| {
        call(
            id,
            0,
            ops(vec![json!({"id": id, "op": "StepRun", "data": n})]),
        )
    };
    let (run, a1) = apply(run, done("15ce", 2), &ctx(t0()));
    assert!(a1.is_empty(), "siblings still pending: {a1:?}");
    let (run, a2) = apply(run, done("ae5e", 1), &ctx(t0()));
    assert!(a2.is_empty());
    assert!(run.force_step_plan);
    let (run, a3) = apply(run, done("700a", 3), &ctx(t0()));
    assert_eq!(a3, vec![discovery_at(t0())]);
    assert!(
        !run.force_step_plan,
        "the flag resets once the parallel group is done"
    );
    assert_eq!(run.stack, vec!["15ce", "ae5e", "700a"]);

    // A planned step reported again while pending or saved is not planned twice.
    let (run, again) = apply(run, call("step", 0, ops(vec![planned("ae5e")])), &ctx(t0()));
    assert!(again.is_empty());
    assert!(run.pending.is_empty());
}

#[test]
fn step_errors_retry_with_backoff_then_fail_on_the_last_attempt() {
    let run = new_run(3);
    let err = || {
        ops(vec![
            json!({"id": "0612", "op": "StepError", "name": "flaky", "error": {"name": "Error", "message": "broken"}}),
        ])
    };
    let (run, actions) = apply(run, call("step", 0, err()), &ctx(t0()));
    assert_eq!(
        actions,
        vec![Action::Call {
            step_id: "step".into(),
            attempt: 1,
            at: t0() + Duration::seconds(15)
        }]
    );
    assert!(run.steps.is_empty());
    let (run, actions) = apply(run, call("step", 1, err()), &ctx(t0()));
    assert_eq!(
        actions,
        vec![Action::Call {
            step_id: "step".into(),
            attempt: 2,
            at: t0() + Duration::seconds(30)
        }]
    );
    // Final attempt: a StepError is turned into a failure and memoized.
    let (run, actions) = apply(run, call("step", 2, err()), &ctx(t0()));
    assert_eq!(
        run.steps["0612"],
        json!({"error": {"name": "Error", "message": "broken"}})
    );
    assert_eq!(actions, vec![discovery_at(t0())]);
    assert_eq!(run.status, RunStatus::Running);
    let retries = run
        .history
        .iter()
        .filter(|h| h.outcome == Outcome::Retrying)
        .count();
    assert_eq!(retries, 2);
    assert_eq!(run.history.last().map(|h| h.attempt), Some(2));
}

#[test]
fn step_failed_and_no_retry_are_never_retried() {
    let run = new_run(5);
    let failed = ops(vec![
        json!({"id": "a", "op": "StepFailed", "error": {"name": "NonRetriableError", "message": "no"}}),
    ]);
    let (run, actions) = apply(run, call("step", 0, failed), &ctx(t0()));
    assert_eq!(run.steps["a"]["error"]["name"], "NonRetriableError");
    assert_eq!(actions, vec![discovery_at(t0())]);

    let no_retry = SdkResponse::Ops {
        ops: vec![op(
            json!({"id": "b", "op": "StepError", "error": {"message": "x"}}),
        )],
        no_retry: true,
        retry_at: None,
    };
    let (run, actions) = apply(run, call("step", 0, no_retry), &ctx(t0()));
    assert!(run.steps.contains_key("b"));
    assert_eq!(actions, vec![discovery_at(t0())]);
}

#[test]
fn retry_after_overrides_the_backoff_for_steps_and_functions() {
    let later = t0() + Duration::seconds(30);
    let step = SdkResponse::Ops {
        ops: vec![op(
            json!({"id": "p", "op": "StepError", "error": {"message": "slow"}}),
        )],
        no_retry: false,
        retry_at: Some(later),
    };
    let (run, actions) = apply(new_run(5), call("p", 0, step), &ctx(t0()));
    assert_eq!(
        actions,
        vec![Action::Call {
            step_id: "p".into(),
            attempt: 1,
            at: later
        }]
    );
    let (_, actions) = apply(
        run,
        call("step", 0, fn_error(false, Some(later))),
        &ctx(t0()),
    );
    assert_eq!(
        actions,
        vec![Action::Call {
            step_id: "step".into(),
            attempt: 1,
            at: later
        }]
    );
}

#[test]
fn function_errors_retry_then_fail_and_emit_the_failure_event() {
    let jittered = Ctx {
        now: t0(),
        retry_jitter: Duration::seconds(7),
    };
    let (run, actions) = apply(
        new_run(2),
        call("step", 0, fn_error(false, None)),
        &jittered,
    );
    assert_eq!(
        actions,
        vec![Action::Call {
            step_id: "step".into(),
            attempt: 1,
            at: t0() + Duration::seconds(22)
        }]
    );
    let (run, actions) = apply(run, call("step", 1, fn_error(false, None)), &ctx(t0()));
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.error.as_ref().map(|e| e["message"].clone()),
        Some(json!("broken func"))
    );
    let Action::SendEvents(events) = &actions[0] else {
        panic!("expected events, got {actions:?}");
    };
    let failed = events
        .iter()
        .find(|e| e["name"] == FUNCTION_FAILED_EVENT)
        .expect("failed event");
    assert_eq!(failed["id"], "run-1");
    assert_eq!(failed["data"]["function_id"], "my-app-steps");
    assert_eq!(failed["data"]["error"]["message"], "broken func");
    assert_eq!(failed["data"]["event"]["name"], "app/steps");
    assert!(events.iter().any(|e| e["name"] == FUNCTION_FINISHED_EVENT));
    assert_eq!(actions.last(), Some(&Action::Finished(RunStatus::Failed)));

    // Terminal runs ignore anything that arrives late.
    let (after, nothing) = apply(
        run.clone(),
        call("step", 0, SdkResponse::Complete(json!(1))),
        &ctx(t0()),
    );
    assert!(nothing.is_empty());
    assert_eq!(after, run);
}

#[test]
fn a_non_retriable_function_error_fails_at_once() {
    let (run, actions) = apply(
        new_run(5),
        call("step", 0, fn_error(true, None)),
        &ctx(t0()),
    );
    assert_eq!(run.status, RunStatus::Failed);
    assert!(actions.contains(&Action::Finished(RunStatus::Failed)));
}

#[test]
fn wait_for_event_resumes_with_the_raw_event_or_null_on_timeout() {
    let wait = json!({"id": "daaa", "op": "WaitForEvent", "name": "test/resume",
        "opts": {"timeout": "10s", "if": "async.data.id == event.data.id"}});
    let (run, actions) = apply(
        new_run(5),
        call("step", 0, ops(vec![wait.clone()])),
        &ctx(t0()),
    );
    assert_eq!(
        actions,
        vec![Action::WaitForEvent {
            step_id: "daaa".into(),
            event: "test/resume".into(),
            condition: Some("async.data.id == event.data.id".into()),
            expires_at: t0() + Duration::seconds(10)
        }]
    );
    let resume_event = json!({"data": {"id": "123"}, "id": "01HRESUME", "name": "test/resume", "ts": 1700000001000_i64});
    let (matched, actions) = apply(
        run.clone(),
        Input::Resume {
            step_id: "daaa".into(),
            value: resume_event.clone(),
            reason: ResumeReason::EventReceived,
        },
        &ctx(t0()),
    );
    assert_eq!(matched.steps["daaa"], resume_event);
    assert_eq!(actions, vec![discovery_at(t0())]);
    // The timeout arriving after the match is ignored.
    let (same, none) = apply(
        matched.clone(),
        Input::Resume {
            step_id: "daaa".into(),
            value: Value::Null,
            reason: ResumeReason::TimedOut,
        },
        &ctx(t0()),
    );
    assert!(none.is_empty());
    assert_eq!(same.steps["daaa"], resume_event);

    let (timed_out, _) = apply(
        run,
        Input::Resume {
            step_id: "daaa".into(),
            value: Value::Null,
            reason: ResumeReason::TimedOut,
        },
        &ctx(t0()),
    );
    assert_eq!(timed_out.steps["daaa"], Value::Null);
}

#[test]
fn unsupported_wait_conditions_fail_the_step_not_the_executor() {
    let wait = json!({"id": "w", "op": "WaitForEvent", "name": "x", "opts": {"timeout": "1h", "if": "size(async.data) > 1"}});
    let (run, actions) = apply(new_run(5), call("step", 0, ops(vec![wait])), &ctx(t0()));
    assert_eq!(run.steps["w"]["error"]["name"], "InvalidExpression");
    assert_eq!(actions, vec![discovery_at(t0())]);
}

#[test]
fn a_wait_without_timeout_expires_at_once() {
    let wait = json!({"id": "w", "op": "WaitForEvent", "name": "x", "opts": {}});
    let (_, actions) = apply(new_run(5), call("step", 0, ops(vec![wait])), &ctx(t0()));
    assert!(matches!(&actions[0], Action::WaitForEvent { expires_at, .. } if *expires_at == t0()));
}

#[test]
fn invoke_starts_a_child_and_the_child_resumes_its_parent() {
    let invoke = json!({"id": "e507", "op": "InvokeFunction",
        "opts": {"payload": {"data": {"name": "x"}}, "function_id": "my-app-hello", "timeout": "1h"}});
    let (parent, actions) = apply(new_run(5), call("step", 0, ops(vec![invoke])), &ctx(t0()));
    assert_eq!(
        actions,
        vec![Action::Invoke {
            step_id: "e507".into(),
            function_id: "my-app-hello".into(),
            payload: json!({"data": {"name": "x"}}),
            expires_at: t0() + Duration::hours(1)
        }]
    );
    let mut child = RunState::new(
        "child".into(),
        "my-app",
        "my-app-hello",
        1,
        json!({"name": FUNCTION_INVOKED_EVENT}),
        t0(),
    );
    child.parent = Some(ParentRef {
        run_id: parent.id.clone(),
        step_id: "e507".into(),
    });
    let (_, child_actions) = apply(
        child,
        call("step", 0, SdkResponse::Complete(json!({"hello": "x"}))),
        &ctx(t0()),
    );
    let resume = child_actions
        .iter()
        .find_map(|a| match a {
            Action::ResumeParent {
                run_id,
                step_id,
                value,
            } => Some((run_id.clone(), step_id.clone(), value.clone())),
            _ => None,
        })
        .expect("parent resumed");
    assert_eq!(
        resume,
        (
            "run-1".into(),
            "e507".into(),
            json!({"data": {"hello": "x"}})
        )
    );
    let (parent, actions) = apply(
        parent,
        Input::Resume {
            step_id: resume.1,
            value: resume.2,
            reason: ResumeReason::InvokeFinished,
        },
        &ctx(t0()),
    );
    assert_eq!(parent.steps["e507"], json!({"data": {"hello": "x"}}));
    assert_eq!(actions, vec![discovery_at(t0())]);
}

#[test]
fn cancel_ends_the_run_and_emits_cancelled() {
    let sleep = json!({"id": "s", "op": "Sleep", "name": "1h"});
    let (run, _) = apply(new_run(5), call("step", 0, ops(vec![sleep])), &ctx(t0()));
    let (run, actions) = apply(
        run,
        Input::Cancel {
            reason: "by operator".into(),
        },
        &ctx(t0()),
    );
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(run.pending.is_empty());
    assert!(
        matches!(&actions[0], Action::SendEvents(ev) if ev[0]["name"] == FUNCTION_CANCELLED_EVENT)
    );
    assert_eq!(
        actions.last(),
        Some(&Action::Finished(RunStatus::Cancelled))
    );
    let (_, none) = apply(
        run,
        Input::Resume {
            step_id: "s".into(),
            value: Value::Null,
            reason: ResumeReason::SleepDone,
        },
        &ctx(t0()),
    );
    assert!(none.is_empty());
}

#[test]
fn a_saved_step_keeps_its_first_result() {
    let (run, _) = apply(
        new_run(5),
        call(
            "step",
            0,
            ops(vec![json!({"id": "a", "op": "StepRun", "data": 1})]),
        ),
        &ctx(t0()),
    );
    let (run, _) = apply(
        run,
        call(
            "a",
            0,
            ops(vec![json!({"id": "a", "op": "StepRun", "data": 2})]),
        ),
        &ctx(t0()),
    );
    assert_eq!(run.steps["a"], json!({"data": 1}));
    assert_eq!(run.stack, vec!["a"]);
}

#[test]
fn an_empty_discovery_is_an_error_but_an_empty_targeted_call_is_not() {
    let (run, actions) = apply(new_run(5), call("step", 0, ops(vec![])), &ctx(t0()));
    assert!(matches!(&actions[..], [Action::Call { attempt: 1, .. }]));
    let planned = json!({"id": "a", "op": "StepPlanned"});
    let (run, _) = apply(
        run,
        call(
            "step",
            0,
            ops(vec![planned, json!({"id": "b", "op": "StepPlanned"})]),
        ),
        &ctx(t0()),
    );
    let (_, actions) = apply(run, call("a", 0, ops(vec![])), &ctx(t0()));
    assert!(actions.is_empty());
}

#[test]
fn unknown_opcodes_fail_the_step_with_a_clear_error() {
    let (run, actions) = apply(
        new_run(5),
        call("step", 0, ops(vec![json!({"id": "g", "op": "AIGateway"})])),
        &ctx(t0()),
    );
    assert_eq!(run.steps["g"]["error"]["name"], "UnsupportedOpcode");
    assert_eq!(actions, vec![discovery_at(t0())]);
}

#[test]
fn run_complete_opcode_finishes_with_its_data() {
    let (run, actions) = apply(
        new_run(5),
        call(
            "step",
            0,
            ops(vec![
                json!({"id": "c", "op": "RunComplete", "data": {"ok": true}}),
            ]),
        ),
        &ctx(t0()),
    );
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!({"ok": true})));
    assert!(actions.contains(&Action::Finished(RunStatus::Completed)));
}

#[test]
fn backoff_follows_the_server_table() {
    assert_eq!(backoff(0), Duration::seconds(15));
    assert_eq!(backoff(3), Duration::minutes(2));
    assert_eq!(backoff(9), Duration::hours(2));
    assert_eq!(backoff(50), Duration::hours(2));
}

#[test]
fn an_input_said_not_to_change_the_run_leaves_it_as_it_was() {
    let wait = json!({"id": "daaa", "op": "WaitForEvent", "name": "test/resume",
        "opts": {"timeout": "10s"}});
    let (waiting, _) = apply(new_run(5), call("step", 0, ops(vec![wait])), &ctx(t0()));
    let (finished, _) = apply(
        waiting.clone(),
        Input::Cancel {
            reason: "stop".into(),
        },
        &ctx(t0()),
    );
    let resume = |step: &str| Input::Resume {
        step_id: step.into(),
        value: Value::Null,
        reason: ResumeReason::TimedOut,
    };
    let step_run = || {
        call(
            "step",
            0,
            ops(vec![json!({"id": "98bf", "op": "StepRun", "data": "A"})]),
        )
    };
    let cases = [
        (new_run(5), step_run(), true),
        (waiting.clone(), resume("daaa"), true),
        (waiting.clone(), Input::Cancel { reason: "x".into() }, true),
        (waiting.clone(), resume("gone"), false),
        (finished.clone(), resume("daaa"), false),
        (finished.clone(), step_run(), false),
        (finished, Input::Cancel { reason: "x".into() }, false),
    ];
    for (run, input, expected) in cases {
        let said = may_change(&run, &input);
        assert_eq!(said, expected, "{input:?}");
        let (after, actions) = apply(run.clone(), input, &ctx(t0()));
        // The executor writes the run only when told it may change: it must not miss a change.
        assert_eq!(after != run, said, "{after:?}");
        if !said {
            assert!(actions.is_empty(), "{actions:?}");
        }
    }
}
