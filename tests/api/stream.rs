//! `GET /api/stream`: Server-Sent Events, read as the web app reads them (a fetch with the
//! token in the header and a reader over the body).

use crate::helpers::*;
use crate::pipeline_common::{DEADLINE, open_db_ticket, wait_until};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use ticketing::domain::user::Role;

/// One message of an event stream: its fields, or the comment lines of a comment-only one.
#[derive(Debug, Default)]
struct Message {
    id: Option<String>,
    event: Option<String>,
    data: String,
    comments: Vec<String>,
}

fn parse(block: &str) -> Message {
    let mut m = Message::default();
    for line in block.lines().filter(|l| !l.is_empty()) {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match field {
            "" => m.comments.push(value),
            "id" => m.id = Some(value),
            "event" => m.event = Some(value),
            "data" => m.data.push_str(&value),
            other => panic!("unexpected field {other:?} in {block:?}"),
        }
    }
    m
}

struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl EventStream {
    async fn open(app: &TestApp, token: &str, last_event_id: Option<&str>) -> EventStream {
        let mut request = app
            .client
            .get(format!("{}/api/stream", app.base))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.expect("stream opened");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        assert_eq!(response.headers()["cache-control"], "no-cache");
        let mut stream = EventStream {
            response,
            buffer: Vec::new(),
        };
        let hello = stream.message().await.expect("the greeting");
        assert_eq!(hello.comments, ["connected"]);
        stream
    }

    /// The next message, or `None` once the server ended the stream.
    async fn message(&mut self) -> Option<Message> {
        let read = async {
            loop {
                if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                    return Some(parse(std::str::from_utf8(&block).expect("UTF-8")));
                }
                match self.response.chunk().await.expect("stream readable") {
                    Some(bytes) => self.buffer.extend_from_slice(&bytes),
                    None => {
                        assert!(self.buffer.is_empty(), "a message cut short");
                        return None;
                    }
                }
            }
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .expect("a message before the deadline")
    }

    /// The next event, comments (pings) skipped.
    async fn event(&mut self) -> Message {
        loop {
            let m = self.message().await.expect("the stream stays open");
            if m.event.is_some() {
                return m;
            }
        }
    }

    /// The next `event: ticket`: its id and data.
    async fn ticket_event(&mut self) -> (u64, Value) {
        let m = self.event().await;
        assert_eq!(m.event.as_deref(), Some("ticket"), "{m:?}");
        let id = m.id.as_deref().expect("an id").parse().expect("a number");
        (id, serde_json::from_str(&m.data).expect("JSON data"))
    }

    /// The next `comment.added` event's data, other ticket events skipped.
    async fn comment_event(&mut self) -> Value {
        loop {
            let (_, data) = self.ticket_event().await;
            if data["type"] == "comment.added" {
                return data;
            }
        }
    }
}

/// Waits until the durable functions are done with the ticket (the SLA clock runs), so the
/// only changes that follow are the test's own.
async fn wait_settled(app: &TestApp, admin: &str, ticket: &str) {
    wait_until(DEADLINE, || async {
        let r = app
            .get(&format!("/api/tickets/{ticket}/activity"), admin)
            .await;
        let text = r.body.to_string();
        if text.contains("\"sla_set\"") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
}

async fn comment(app: &TestApp, token: &str, ticket: &str, body: Value) -> Value {
    let r = app
        .post(&format!("/api/tickets/{ticket}/comments"), token, body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["comment"].clone()
}

#[tokio::test]
async fn a_user_follows_their_own_ticket_through_triage_and_routing_and_no_one_elses() {
    let app = spawn_app().await;
    let (_, ann) = app.register("ann@example.com").await;
    let (_, bob) = app.register("bob@example.com").await;
    app.staff("mo@example.com", Role::Moderator, &["SQL"]).await;
    let mut stream = EventStream::open(&app, &ann, None).await;
    // Bob's ticket goes through the same functions at the same time.
    open_db_ticket(&app, &bob, "Bob's checkout fails").await;
    let mine = open_db_ticket(&app, &ann, "Ann's checkout fails").await;

    let mut seen: Vec<Value> = Vec::new();
    let mut last_id = 0;
    loop {
        let (id, data) = stream.ticket_event().await;
        assert!(id > last_id, "ids increase: {id} after {last_id}");
        last_id = id;
        assert_eq!(
            data["ticket_id"],
            mine.as_str(),
            "only Ann's ticket: {data}"
        );
        assert_eq!(data["ticket"]["id"], mine.as_str());
        let done = data["ticket"]["sla_due_at"].is_string();
        seen.push(data);
        if done {
            break;
        }
    }
    assert_eq!(seen[0]["type"], "ticket.created");
    assert_eq!(seen[0]["ticket"]["triage_status"], "pending");
    assert!(seen[1..].iter().all(|d| d["type"] == "ticket.updated"));
    assert!(
        seen.iter().any(|d| d["ticket"]["triage_status"] == "done"),
        "triage arrived live"
    );
    assert!(
        seen.iter().any(|d| d["ticket"]["assigned_to"].is_string()),
        "the assignment arrived live"
    );
    assert!(seen.iter().all(|d| d.get("comment").is_none()));
    // Each ticket is the one `GET /api/tickets/{id}` shows Ann.
    let shown = app.get(&format!("/api/tickets/{mine}"), &ann).await;
    assert_eq!(seen.last().unwrap()["ticket"], shown.body["ticket"]);
}

#[tokio::test]
async fn internal_notes_reach_staff_streams_only() {
    let app = spawn_app().await;
    let (_, ann) = app.register("ann@example.com").await;
    let (mo_id, mo) = app.staff("mo@example.com", Role::Moderator, &["SQL"]).await;
    let (_, max) = app.staff("max@example.com", Role::Moderator, &[]).await;
    let (_, ada) = app.staff("ada@example.com", Role::Admin, &[]).await;
    let ticket = open_db_ticket(&app, &ann, "Checkout fails").await;
    wait_settled(&app, &ada, &ticket).await;
    let r = app
        .patch(
            &format!("/api/tickets/{ticket}"),
            &ada,
            json!({"assignee_id": mo_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let mut streams = Vec::new();
    for token in [&ann, &mo, &ada, &max] {
        streams.push(EventStream::open(&app, token, None).await);
    }
    let [ann_stream, mo_stream, ada_stream, max_stream] = &mut streams[..] else {
        unreachable!()
    };
    let note = comment(
        &app,
        &mo,
        &ticket,
        json!({"body": "Pool exhausted?", "internal": true}),
    )
    .await;
    let reply = comment(&app, &mo, &ticket, json!({"body": "On it."})).await;

    for staff in [&mut *mo_stream, &mut *ada_stream] {
        let first = staff.comment_event().await;
        assert_eq!(first["comment"], note);
        assert_eq!(first["ticket_id"], ticket.as_str());
        assert_eq!(staff.comment_event().await["comment"], reply);
    }
    // The creator's first comment event is the reply: the note, sent before it, was held back.
    let first = ann_stream.comment_event().await;
    assert_eq!(first["comment"], reply);
    assert_eq!(first["comment"]["internal"], false);

    // Another moderator sees nothing of the ticket: the first thing they get is their own.
    let own = app.create_ticket(&max, "My own laptop").await;
    let (_, data) = max_stream.ticket_event().await;
    assert_eq!(data["type"], "ticket.created");
    assert_eq!(data["ticket_id"], own["id"]);
}

#[tokio::test]
async fn a_demoted_moderator_stops_receiving_at_once() {
    let app = spawn_app().await;
    let (_, ann) = app.register("ann@example.com").await;
    let (mo_id, mo) = app.staff("mo@example.com", Role::Moderator, &[]).await;
    let (_, ada) = app.staff("ada@example.com", Role::Admin, &[]).await;
    let ticket = open_db_ticket(&app, &ann, "Checkout fails").await;
    wait_settled(&app, &ada, &ticket).await;
    let r = app
        .patch(
            &format!("/api/tickets/{ticket}"),
            &ada,
            json!({"assignee_id": mo_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let mut stream = EventStream::open(&app, &mo, None).await;
    let before = comment(&app, &ann, &ticket, json!({"body": "Any news?"})).await;
    assert_eq!(stream.comment_event().await["comment"], before);

    let r = app
        .patch(
            &format!("/api/users/{mo_id}"),
            &ada,
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    comment(&app, &ann, &ticket, json!({"body": "Hello?"})).await;
    let r = app
        .patch(
            &format!("/api/tickets/{ticket}"),
            &ada,
            json!({"priority": "high"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Still signed in, now as a user: their own ticket comes through, the other no longer does.
    let own = app.create_ticket(&mo, "My own request").await;
    let (_, data) = stream.ticket_event().await;
    assert_eq!(data["ticket_id"], own["id"], "{data}");
    assert_eq!(
        app.get(&format!("/api/tickets/{ticket}"), &mo).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn signing_out_everywhere_ends_the_stream_at_the_next_event() {
    let app = spawn_app().await;
    let (_, ann) = app.register("ann@example.com").await;
    let (_, ada) = app.staff("ada@example.com", Role::Admin, &[]).await;
    let ticket = open_db_ticket(&app, &ann, "Checkout fails").await;
    wait_settled(&app, &ada, &ticket).await;
    let mut stream = EventStream::open(&app, &ann, None).await;
    let r = app
        .request(
            Method::POST,
            "/api/auth/sign-out-everywhere",
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    // A change Ann could see: instead of it, the stream ends.
    comment(&app, &ada, &ticket, json!({"body": "We are on it."})).await;
    while let Some(m) = stream.message().await {
        assert!(m.event.is_none(), "nothing after signing out: {m:?}");
    }
    let r = app
        .request(Method::GET, "/api/stream", Some(&ann), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reconnecting_with_the_last_event_id_replays_what_was_missed() {
    let app = spawn_app().await;
    let (_, ann) = app.register("ann@example.com").await;
    let (_, ada) = app.staff("ada@example.com", Role::Admin, &[]).await;
    let ticket = open_db_ticket(&app, &ann, "Checkout fails").await;
    wait_settled(&app, &ada, &ticket).await;

    let mut stream = EventStream::open(&app, &ada, None).await;
    comment(&app, &ann, &ticket, json!({"body": "one"})).await;
    let (seen, data) = stream.ticket_event().await;
    assert_eq!(data["comment"]["body"], "one");
    drop(stream);

    comment(&app, &ann, &ticket, json!({"body": "two"})).await;
    comment(&app, &ann, &ticket, json!({"body": "three"})).await;
    let mut stream = EventStream::open(&app, &ada, Some(&seen.to_string())).await;
    let (two, data) = stream.ticket_event().await;
    assert_eq!(data["comment"]["body"], "two");
    let (three, data) = stream.ticket_event().await;
    assert_eq!(data["comment"]["body"], "three");
    assert_eq!((two, three), (seen + 1, seen + 2));
    // Then it goes on live.
    comment(&app, &ann, &ticket, json!({"body": "four"})).await;
    let (four, data) = stream.ticket_event().await;
    assert_eq!(
        (four, data["comment"]["body"].as_str()),
        (seen + 3, Some("four"))
    );

    // Up to date: nothing replayed.
    let mut current = EventStream::open(&app, &ada, Some(&four.to_string())).await;
    comment(&app, &ann, &ticket, json!({"body": "five"})).await;
    assert_eq!(current.ticket_event().await.1["comment"]["body"], "five");

    // Too old (or not an id of this server): re-read everything.
    for stale in ["1", "not-a-number", &(four + 1000).to_string()] {
        let mut s = EventStream::open(&app, &ada, Some(stale)).await;
        let m = s.event().await;
        assert_eq!(m.event.as_deref(), Some("resync"), "{stale}");
        assert_eq!(m.data, "{}");
    }
}

#[tokio::test]
async fn the_stream_needs_a_valid_token() {
    let app = spawn_app().await;
    for token in [None, Some("not-a-token")] {
        let r = app.request(Method::GET, "/api/stream", token, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.code(), "unauthorized");
    }
}

#[tokio::test]
async fn streams_end_cleanly_when_the_server_shuts_down() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (app, server) = spawn_app_until(async move {
        let _ = stopped.await;
    })
    .await;
    let (_, ann) = app.register("ann@example.com").await;
    let mut stream = EventStream::open(&app, &ann, None).await;
    stop.send(()).expect("the server listens for the stop");
    while let Some(m) = stream.message().await {
        assert!(m.event.is_none(), "only comments before the end: {m:?}");
    }
    let served = tokio::time::timeout(DEADLINE, server)
        .await
        .expect("the server stops before the deadline")
        .expect("the server task");
    assert!(served.is_ok(), "{served:?}");
}

#[tokio::test]
async fn the_stream_and_the_new_routes_are_in_the_openapi_document() {
    let app = spawn_app().await;
    let doc = app
        .request(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let stream = &doc["paths"]["/api/stream"]["get"];
    assert!(
        stream["responses"]["200"]["content"]["text/event-stream"].is_object(),
        "{stream}"
    );
    assert!(doc["paths"]["/api/tickets/{id}/activity"]["get"].is_object());
    assert!(doc["paths"]["/api/tickets/{id}/rating"]["post"].is_object());
    let params: Vec<&str> = doc["paths"]["/api/tickets"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(params.contains(&"sort"), "{params:?}");
    let stats = &doc["components"]["schemas"]["Stats"]["properties"];
    assert!(stats["satisfaction"].is_object() && stats["per_day"].is_object());
}
