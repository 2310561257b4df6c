//! Whatever a client sends, the answer is a clear 4xx in the error shape, never a 500.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_get_clear_4xx() {
    let app = spawn_app().await;
    let (_, token) = app.register("user@example.com").await;
    let json_ct = Some("application/json");
    let cases: Vec<(&str, Option<&str>, Vec<u8>, StatusCode)> = vec![
        (
            "/api/tickets",
            json_ct,
            b"{\"title\": ".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/tickets",
            json_ct,
            b"[]".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/tickets",
            json_ct,
            b"null".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/tickets",
            json_ct,
            br#"{"title": {"$ne": null}, "description": "x"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/tickets",
            Some("text/plain"),
            br#"{"title":"abc","description":"x"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/api/tickets",
            None,
            Vec::new(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/api/tickets",
            json_ct,
            vec![0xff, 0xfe, 0x00],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/auth/login",
            json_ct,
            br#"{"email": {"$gt": ""}, "password": {"$ne": null}}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/auth/register",
            json_ct,
            br#"{"email": ["a@b.io"], "password": "password123"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (path, ct, body, expected) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let r = app.raw(Method::POST, path, Some(&token), ct, body).await;
        assert_eq!(r.status, expected, "{path} {shown} -> {:?}", r.body);
        assert!(
            r.body["error"]["code"].is_string(),
            "error shape for {shown}: {:?}",
            r.body
        );
        assert!(r.body["error"]["message"].is_string());
    }
    assert_eq!(
        app.store.stats().await.unwrap().total,
        0,
        "nothing was created"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = spawn_app().await;
    let (_, token) = app.register("user@example.com").await;
    let huge = json!({"title": "Big", "description": "x".repeat(1024 * 1024)})
        .to_string()
        .into_bytes();
    let r = app
        .raw(
            Method::POST,
            "/api/tickets",
            Some(&token),
            Some("application/json"),
            huge,
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
}

#[tokio::test]
async fn bad_ids_routes_and_methods_are_json_4xx() {
    let app = spawn_app().await;
    let (_, token) = app.register("user@example.com").await;
    for path in [
        "/api/tickets/not-an-id",
        "/api/tickets/%7B%22$ne%22:null%7D",
        "/api/tickets/01a22690-9ae6-7364-9678-174c27f7504f",
        "/api/nothing-here",
    ] {
        let r = app.get(path, &token).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.code(), "not_found");
    }
    let r = app
        .request(Method::DELETE, "/api/tickets", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
    let r = app
        .patch(
            "/api/tickets/not-an-id",
            &token,
            json!({"status": "closed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .patch("/api/users/not-an-id", &token, json!({"role": "admin"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let app = spawn_app().await;
    let r = app.request(Method::GET, "/healthz", None, None).await;
    assert!(r.headers.get("x-request-id").is_some());
    let r = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["store"], "sqlite");
}

#[tokio::test]
async fn openapi_and_docs_are_served() {
    let app = spawn_app().await;
    let r = app.request(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.1.0");
    for path in [
        "/api/auth/register",
        "/api/auth/signup",
        "/api/auth/password/forgot",
        "/api/auth/password/reset",
        "/api/auth/password/change",
        "/api/auth/sign-out-everywhere",
        "/api/auth/verify",
        "/api/auth/verify/resend",
        "/api/tickets",
        "/api/tickets/{id}",
        "/api/tickets/{id}/comments",
        "/api/users/{id}",
        "/api/stats",
    ] {
        assert!(r.body["paths"].get(path).is_some(), "{path} documented");
    }
    let docs = app
        .client
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}
