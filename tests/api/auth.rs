use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use ticketing::domain::user::Role;

#[tokio::test]
async fn register_normalizes_email_and_never_grants_a_role() {
    let app = spawn_app().await;
    let r = app
        .request(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"email": "  Ann@Example.COM ", "password": "password123", "name": "Ann"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["user"]["email"], "ann@example.com");
    assert_eq!(r.body["user"]["role"], "user");
    assert!(r.body["user"].get("password_hash").is_none());
    assert!(
        !r.body.to_string().contains("argon2"),
        "no hash in any response"
    );

    let dup = app
        .request(
            Method::POST,
            "/api/auth/signup",
            None,
            Some(json!({"email": "ann@example.com", "password": "password123"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.code(), "email_taken");

    let sneaky = app
        .request(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"email": "eve@example.com", "password": "password123", "role": "admin"})),
        )
        .await;
    assert_eq!(sneaky.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        app.store
            .find_credentials("eve@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn short_passwords_and_bad_emails_are_rejected() {
    let app = spawn_app().await;
    for body in [
        json!({"email": "ann@example.com", "password": "short"}),
        json!({"email": "not-an-email", "password": "password123"}),
    ] {
        let r = app
            .request(Method::POST, "/api/auth/register", None, Some(body))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert!(r.body["error"]["details"]["field"].is_string());
    }
}

#[tokio::test]
async fn every_login_failure_is_the_same_401() {
    let app = spawn_app().await;
    app.register("ann@example.com").await;
    let mut bodies = Vec::new();
    for (email, password) in [
        ("ann@example.com", "wrong-password"),
        ("nobody@example.com", "password123"),
        ("garbage", "password123"),
    ] {
        let r = app
            .request(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        bodies.push(r.body.to_string());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // Case and whitespace of the address do not matter.
    app.login(" ANN@example.com", "password123").await;
}

#[tokio::test]
async fn me_needs_a_valid_token() {
    let app = spawn_app().await;
    let (id, token) = app.register("ann@example.com").await;
    let r = app.get("/api/auth/me", &token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["user"]["id"], id.as_str());
    for bad in ["", "garbage", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
        let r = app.get("/api/auth/me", bad).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "token {bad:?}");
        assert_eq!(r.code(), "unauthorized");
    }
    let r = app.request(Method::GET, "/api/auth/me", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A token signed with another secret is refused.
    let other = spawn_app_with(&[("JWT_SECRET", "another-secret-another-secret-another-1")]).await;
    let (_, foreign) = other.register("ann@example.com").await;
    assert_eq!(
        app.get("/api/auth/me", &foreign).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn demoted_admin_loses_access_at_once() {
    let app = spawn_app().await;
    let (_, root) = app.staff("root@example.com", Role::Admin, &[]).await;
    let (other_id, other) = app.staff("other@example.com", Role::Admin, &[]).await;
    assert_eq!(app.get("/api/users", &other).await.status, StatusCode::OK);
    let r = app
        .patch(
            &format!("/api/users/{other_id}"),
            &root,
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Same token, new role.
    assert_eq!(
        app.get("/api/users", &other).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn login_and_register_are_rate_limited_per_client() {
    let app = spawn_app_with(&[("AUTH_RATE_LIMIT_PER_MIN", "3")]).await;
    for _ in 0..3 {
        let r = app
            .request(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"email": "a@b.io", "password": "password123"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app
        .request(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"email": "a@b.io", "password": "password123"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    assert!(r.headers.get("retry-after").is_some());
    let r = app
        .request(
            Method::POST,
            "/api/auth/register",
            None,
            Some(json!({"email": "new@b.io", "password": "password123"})),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "register shares the login budget"
    );
    // Other routes are not limited.
    let r = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn bootstrap_admin_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = base_env(dir.path());
    env.insert("BOOTSTRAP_ADMIN_EMAIL".into(), "Boss@Example.com".into());
    env.insert("BOOTSTRAP_ADMIN_PASSWORD".into(), "bootstrap-pass".into());
    let app = spawn_with_env(env.clone()).await;
    let token = app.login("boss@example.com", "bootstrap-pass").await;
    let me = app.get("/api/auth/me", &token).await;
    assert_eq!(me.body["user"]["role"], "admin");
    // A second start with the same variables keeps the one account.
    let again = spawn_with_env(env).await;
    let users = again.get("/api/users", &token).await;
    assert_eq!(users.body["users"].as_array().unwrap().len(), 1);
}
