//! Accounts people can recover and end, against the real server and a real SMTP peer: a
//! forgotten password reset through the mailed link (once, and not after it expired), a changed
//! password and "sign out everywhere" ending every earlier token, and sign-up with
//! `REQUIRE_EMAIL_VERIFICATION` answering the same for new and taken addresses.

use crate::helpers::*;
use crate::pipeline_common::{APP_URL, DEADLINE, mails_to, runs, summary, wait_until};
use crate::support::smtp_peer::{ReceivedMail, SmtpPeer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use ticketing::domain::account_token::{TokenHash, TokenPurpose};
use ticketing::domain::user::Role;

const RESET_SUBJECT: &str = "Reset your Support password";
const VERIFY_SUBJECT: &str = "Confirm your e-mail address for Support";
const ATTEMPT_SUBJECT: &str = "Someone tried to sign up to Support with your address";

/// The app with its own data directory (so a test can read every file it wrote) and mail to
/// `peer`.
async fn spawn(peer: &SmtpPeer, extra: &[(&str, &str)]) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = base_env(dir.path());
    env.insert("SMTP_URL".into(), peer.smtp_url());
    env.insert("APP_URL".into(), APP_URL.into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    (spawn_with_env(env).await, dir)
}

async fn post_anon(app: &TestApp, path: &str, body: Value) -> Resp {
    app.request(Method::POST, path, None, Some(body)).await
}

async fn me(app: &TestApp, token: &str) -> StatusCode {
    app.get("/api/auth/me", token).await.status
}

async fn login_status(app: &TestApp, email: &str, password: &str) -> StatusCode {
    post_anon(
        app,
        "/api/auth/login",
        json!({"email": email, "password": password}),
    )
    .await
    .status
}

/// Waits for the one mail to `to` with `subject` and returns it.
async fn mail(peer: &SmtpPeer, to: &str, subject: &str) -> ReceivedMail {
    wait_until(DEADLINE, || async {
        let mails = peer.messages();
        let found: Vec<&ReceivedMail> = mails_to(&mails, to)
            .into_iter()
            .filter(|m| m.subject() == subject)
            .collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(format!(
                "{} mails {subject:?} to {to}; all: {:?}",
                found.len(),
                summary(&mails)
            )),
        }
    })
    .await
}

/// The token of the `APP_URL{page}?token=` link in both parts of `mail`.
fn link_token(mail: &ReceivedMail, page: &str) -> String {
    let prefix = format!("{APP_URL}{page}?token=");
    let text = mail.text();
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in: {text}"))
        + prefix.len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "{text}");
    assert!(
        mail.html().contains(&format!("href=\"{prefix}{token}\"")),
        "{}",
        mail.html()
    );
    token
}

/// Every byte the service wrote under its data directory, as text, for "is it stored?" checks.
fn stored_bytes(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                stack.push(entry.expect("entry").path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

#[tokio::test]
async fn a_forgotten_password_is_reset_once_through_the_mailed_link() {
    let peer = SmtpPeer::start();
    let (app, dir) = spawn(&peer, &[]).await;
    let (_, old_token) = app.register("ann@example.com").await;
    let (_, bob_token) = app.register("bob@example.com").await;

    // Known, unknown and differently spelled addresses: one answer.
    let known = post_anon(
        &app,
        "/api/auth/password/forgot",
        json!({"email": "ann@example.com"}),
    )
    .await;
    assert_eq!(known.status, StatusCode::ACCEPTED, "{:?}", known.body);
    assert!(known.body["message"].is_string(), "{:?}", known.body);
    for email in ["nobody@example.com", "  ANN@example.com "] {
        let r = post_anon(&app, "/api/auth/password/forgot", json!({"email": email})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        assert_eq!(r.body, known.body, "{email}");
    }

    // Ann gets a link (one per request); nobody else is written to or mailed.
    let requested: Vec<Value> = app
        .events()
        .await
        .into_iter()
        .filter(|e| e.name == "user/password-reset-requested")
        .map(|e| e.data)
        .collect();
    assert_eq!(requested.len(), 2, "{requested:?}");
    let reset_mails = wait_until(DEADLINE, || async {
        let mails = peer.messages();
        let resets: Vec<ReceivedMail> = mails_to(&mails, "ann@example.com")
            .into_iter()
            .filter(|m| m.subject() == RESET_SUBJECT)
            .cloned()
            .collect();
        if resets.len() == 2 {
            Ok(resets)
        } else {
            Err(format!("{:?}", summary(&mails)))
        }
    })
    .await;
    assert!(
        peer.messages()
            .iter()
            .all(|m| m.to == ["ann@example.com"] || m.subject().starts_with("Welcome")),
        "{:?}",
        summary(&peer.messages())
    );
    let token = link_token(&reset_mails[0], "/reset");
    let other_link = link_token(&reset_mails[1], "/reset");
    assert_ne!(token, other_link);
    assert!(reset_mails[0].text().contains("within 1 hour"));

    // Only the hash is kept: not in the store, the outbox, the runs' saved steps, anywhere.
    let on_disk = stored_bytes(dir.path());
    for t in [&token, &other_link] {
        assert!(!on_disk.contains(t.as_str()), "a raw token was stored");
        let hash = TokenHash::of(t).expect("a token");
        assert!(on_disk.contains(hash.as_str()), "the hash is what is kept");
    }
    for run in runs(&app, "on-account-request").await {
        let saved = serde_json::to_string(&run).expect("run as JSON");
        assert!(!saved.contains(&token) && !saved.contains(&other_link));
    }

    // A dead link changes nothing; a live one sets the password.
    let bad = post_anon(
        &app,
        "/api/auth/password/reset",
        json!({"token": "x".repeat(43), "password": "new-password-1"}),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "invalid_token");
    let short = post_anon(
        &app,
        "/api/auth/password/reset",
        json!({"token": token, "password": "short"}),
    )
    .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(me(&app, &old_token).await, StatusCode::OK);

    let done = post_anon(
        &app,
        "/api/auth/password/reset",
        json!({"token": token, "password": "new-password-1"}),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert!(done.body["message"].is_string());

    // Every token from before is ended; only the new password signs in.
    assert_eq!(me(&app, &old_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me(&app, &bob_token).await,
        StatusCode::OK,
        "others unaffected"
    );
    assert_eq!(
        login_status(&app, "ann@example.com", "password123").await,
        StatusCode::UNAUTHORIZED
    );
    let new_token = app.login("ann@example.com", "new-password-1").await;
    assert_eq!(me(&app, &new_token).await, StatusCode::OK);

    // Single use, and the other link of the same account went with it.
    for used in [&token, &other_link] {
        let again = post_anon(
            &app,
            "/api/auth/password/reset",
            json!({"token": used, "password": "newer-password-2"}),
        )
        .await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "{:?}", again.body);
        assert_eq!(again.code(), "invalid_token");
    }
    assert_eq!(me(&app, &new_token).await, StatusCode::OK);
}

#[tokio::test]
async fn a_reset_link_stops_working_when_it_expires() {
    let peer = SmtpPeer::start();
    let (app, _dir) = spawn(&peer, &[("PASSWORD_RESET_TTL", "2s")]).await;
    app.register("ann@example.com").await;
    let r = post_anon(
        &app,
        "/api/auth/password/forgot",
        json!({"email": "ann@example.com"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let reset = mail(&peer, "ann@example.com", RESET_SUBJECT).await;
    assert!(
        reset.text().contains("within 2 seconds"),
        "{}",
        reset.text()
    );
    let token = link_token(&reset, "/reset");
    let hash = TokenHash::of(&token).expect("a token");
    let ann = app
        .store
        .find_credentials("ann@example.com")
        .await
        .unwrap()
        .unwrap()
        .user_id;

    // The link was issued to Ann; wait until its time has passed, then it is refused.
    let earlier = chrono::Utc::now() - chrono::Duration::minutes(1);
    let owner = app
        .store
        .find_account_token(&hash, TokenPurpose::PasswordReset, earlier)
        .await
        .unwrap();
    assert_eq!(owner, Some(ann));
    wait_until(DEADLINE, || async {
        let live = app
            .store
            .find_account_token(&hash, TokenPurpose::PasswordReset, chrono::Utc::now())
            .await
            .map_err(|e| e.to_string())?;
        live.map_or(Ok(()), |_| Err("the link is still live".to_owned()))
    })
    .await;
    let late = post_anon(
        &app,
        "/api/auth/password/reset",
        json!({"token": token, "password": "new-password-1"}),
    )
    .await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{:?}", late.body);
    assert_eq!(late.code(), "invalid_token");
    assert_eq!(
        login_status(&app, "ann@example.com", "password123").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions_and_returns_a_working_token() {
    let app = spawn_app().await;
    let (_, first) = app.register("ann@example.com").await;
    let second = app.login("ann@example.com", "password123").await;
    let change = |token: Option<&str>, body: Value| {
        let token = token.map(str::to_owned);
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/api/auth/password/change",
                token.as_deref(),
                Some(body),
            )
            .await
        }
    };

    let wrong = change(
        Some(&first),
        json!({"current_password": "not-my-password", "new_password": "new-password-1"}),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.body["error"]["details"]["field"], "current_password");
    let short = change(
        Some(&first),
        json!({"current_password": "password123", "new_password": "short"}),
    )
    .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(short.body["error"]["details"]["field"], "new_password");
    let anonymous = change(
        None,
        json!({"current_password": "password123", "new_password": "new-password-1"}),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me(&app, &first).await,
        StatusCode::OK,
        "failures end nothing"
    );

    let changed = change(
        Some(&first),
        json!({"current_password": "password123", "new_password": "new-password-1"}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(changed.body["user"]["email"], "ann@example.com");
    assert!(changed.body["expires_in"].as_u64().unwrap() > 0);
    let fresh = changed.body["token"].as_str().expect("a new token");

    assert_eq!(me(&app, &first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, fresh).await, StatusCode::OK);
    let ticket = app.create_ticket(fresh, "Works with the new token").await;
    assert_eq!(ticket["title"], "Works with the new token");
    assert_eq!(
        login_status(&app, "ann@example.com", "password123").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&app, "ann@example.com", "new-password-1").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_token_so_far() {
    let app = spawn_app().await;
    let (_, first) = app.register("ann@example.com").await;
    let second = app.login("ann@example.com", "password123").await;
    let (_, bob) = app.register("bob@example.com").await;

    let r = app
        .request(
            Method::POST,
            "/api/auth/sign-out-everywhere",
            Some(&second),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(me(&app, &first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &second).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &bob).await, StatusCode::OK, "others unaffected");
    let again = app
        .request(
            Method::POST,
            "/api/auth/sign-out-everywhere",
            Some(&first),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);

    // The password still works, and a new sign-in gets a working token.
    let third = app.login("ann@example.com", "password123").await;
    assert_eq!(me(&app, &third).await, StatusCode::OK);
}

#[tokio::test]
async fn with_verification_required_sign_up_waits_for_the_mailed_link() {
    let peer = SmtpPeer::start();
    let (app, _dir) = spawn(
        &peer,
        &[
            ("REQUIRE_EMAIL_VERIFICATION", "true"),
            ("BOOTSTRAP_ADMIN_EMAIL", "root@example.com"),
            ("BOOTSTRAP_ADMIN_PASSWORD", "root-password"),
        ],
    )
    .await;
    // Made by an operator (as `ticketing user create` does) or at start: no link needed.
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    app.create_ticket(&admin, "Operators need no confirmation")
        .await;
    let root = app.login("root@example.com", "root-password").await;
    app.create_ticket(&root, "Neither does the bootstrap admin")
        .await;

    let register = |email: &str| {
        let body = json!({"email": email, "password": "password123", "name": "Ann"});
        let app = &app;
        async move { post_anon(app, "/api/auth/register", body).await }
    };
    let new = register("ann@example.com").await;
    assert_eq!(new.status, StatusCode::ACCEPTED, "{:?}", new.body);
    assert!(new.body["message"].is_string());
    assert!(new.body.get("token").is_none() && new.body.get("user").is_none());
    for taken in ["ann@example.com", "admin@example.com", " Admin@Example.com"] {
        let r = register(taken).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{taken}");
        assert_eq!(
            r.body, new.body,
            "{taken}: the same answer for a taken address"
        );
    }

    // Ann can sign in (so the app can tell her what to do) but not open tickets yet.
    let r = post_anon(
        &app,
        "/api/auth/login",
        json!({"email": "ann@example.com", "password": "password123"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["user"]["email_verified"], false);
    let ann = r.body["token"].as_str().unwrap().to_owned();
    let blocked = app
        .post(
            "/api/tickets",
            &ann,
            json!({"title": "Help", "description": "Please help me"}),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN, "{:?}", blocked.body);
    assert_eq!(blocked.code(), "email_unverified");

    // The mails say what happened: a link for the new account, word to the taken ones' owners.
    let verify = mail(&peer, "ann@example.com", VERIFY_SUBJECT).await;
    assert!(
        verify.text().starts_with("Welcome, Ann!"),
        "{}",
        verify.text()
    );
    let token = link_token(&verify, "/verify");
    let attempt = mail(&peer, "ann@example.com", ATTEMPT_SUBJECT).await;
    link_token(&attempt, "/reset");
    let attempts = wait_until(DEADLINE, || async {
        let mails = peer.messages();
        let n = mails_to(&mails, "admin@example.com")
            .iter()
            .filter(|m| m.subject() == ATTEMPT_SUBJECT)
            .count();
        if n == 2 {
            Ok(n)
        } else {
            Err(format!("{:?}", summary(&mails)))
        }
    })
    .await;
    assert_eq!(attempts, 2);
    mail(&peer, "admin@example.com", "Welcome to Support").await;
    let mails = peer.messages();
    assert!(
        mails_to(&mails, "ann@example.com")
            .iter()
            .all(|m| !m.subject().starts_with("Welcome")),
        "no welcome before the address is confirmed: {:?}",
        summary(&mails)
    );

    // Resending: the same answer for anyone; a new link only for Ann.
    let resent = post_anon(
        &app,
        "/api/auth/verify/resend",
        json!({"email": "ann@example.com"}),
    )
    .await;
    assert_eq!(resent.status, StatusCode::ACCEPTED);
    for other in ["nobody@example.com", "admin@example.com"] {
        let r = post_anon(&app, "/api/auth/verify/resend", json!({"email": other})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        assert_eq!(r.body, resent.body);
    }
    let second_link = wait_until(DEADLINE, || async {
        let mails = peer.messages();
        let links: Vec<&ReceivedMail> = mails_to(&mails, "ann@example.com")
            .into_iter()
            .filter(|m| m.subject() == VERIFY_SUBJECT)
            .collect();
        match links.as_slice() {
            [_, second] => Ok(link_token(second, "/verify")),
            _ => Err(format!("{:?}", summary(&mails))),
        }
    })
    .await;
    assert_ne!(second_link, token);
    let verification_requests = app
        .events()
        .await
        .iter()
        .filter(|e| e.name == "user/verification-requested")
        .count();
    assert_eq!(verification_requests, 1, "only Ann's account waits");

    // Confirming: once; then Ann opens tickets with the token she already has.
    let bad = post_anon(&app, "/api/auth/verify", json!({"token": "nope"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "invalid_token");
    let ok = post_anon(&app, "/api/auth/verify", json!({"token": token})).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.body["user"]["email"], "ann@example.com");
    assert_eq!(ok.body["user"]["email_verified"], true);
    for used in [&token, &second_link] {
        let again = post_anon(&app, "/api/auth/verify", json!({"token": used})).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert_eq!(again.code(), "invalid_token");
    }
    let profile = app.get("/api/auth/me", &ann).await;
    assert_eq!(profile.body["user"]["email_verified"], true);
    let ticket = app.create_ticket(&ann, "Printer on fire").await;
    assert_eq!(ticket["title"], "Printer on fire");
}

#[tokio::test]
async fn account_routes_share_the_auth_rate_limit_and_refuse_bad_input() {
    let app = spawn_app_with(&[("AUTH_RATE_LIMIT_PER_MIN", "4")]).await;
    let bad_email = post_anon(
        &app,
        "/api/auth/password/forgot",
        json!({"email": "not-an-address"}),
    )
    .await;
    assert_eq!(bad_email.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_email.body["error"]["details"]["field"], "email");
    let extra = post_anon(
        &app,
        "/api/auth/verify/resend",
        json!({"email": "a@example.com", "role": "admin"}),
    )
    .await;
    assert_eq!(extra.status, StatusCode::UNPROCESSABLE_ENTITY);
    let malformed = app
        .raw(
            Method::POST,
            "/api/auth/password/reset",
            None,
            Some("application/json"),
            b"{\"token\":".to_vec(),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "malformed_json");
    let empty = post_anon(&app, "/api/auth/verify", json!({"token": ""})).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.code(), "invalid_token");

    // Four attempts were allowed from this address; the fifth waits.
    let limited = post_anon(
        &app,
        "/api/auth/password/forgot",
        json!({"email": "a@example.com"}),
    )
    .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.headers.get("retry-after").is_some());
}
