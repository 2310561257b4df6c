//! The web app in real headless Chromium (WebDriver through chromedriver), against the real
//! server on 127.0.0.1: people sign up, open tickets, watch triage land and moderators work
//! them without reloading; admins manage people, tickets and runs. Every page is checked for
//! console errors, named controls and typed markup staying text; screenshots of each page go to
//! `target/screenshots/`.

use crate::helpers::{TestApp, base_env, spawn_app, spawn_app_with, spawn_with_env};
use crate::support::fake_gemini::{
    FAKE_GEMINI_KEY, FAKE_GEMINI_MODEL, FakeGemini, GeminiReply, auto_triage, gate,
};
use crate::support::wait_until;
use crate::support::webdriver::{Browser, Driver, js_str};
use reqwest::StatusCode;
use serde_json::{Value, json};
use ticketing::domain::user::Role;
use ticketing::store::UserPatch;

const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);
const XSS_IMG: &str = r#"<img src=x onerror="window.__x=1">"#;
const XSS_SCRIPT: &str = "</script><script>window.__x=1</script>";

async fn set_name(app: &TestApp, id: &str, name: &str) {
    app.store
        .update_user(
            id,
            UserPatch {
                name: Some(name.to_owned()),
                ..UserPatch::default()
            },
        )
        .await
        .expect("name set");
}

/// A staff member with a display name, signed in through the API.
async fn staff(
    app: &TestApp,
    email: &str,
    name: &str,
    role: Role,
    skills: &[&str],
) -> (String, String) {
    let (id, token) = app.staff(email, role, skills).await;
    set_name(app, &id, name).await;
    (id, token)
}

/// Signs a browser in with a token from the API (the sign-in form itself is tested once).
async fn sign_in_with_token(b: &Browser, token: &str) {
    b.goto("/signin").await;
    // Signed in already, the page moves on to the home page; any page of the app will do.
    b.find("main h1").await;
    b.js_with(
        "localStorage.setItem('ticketing.token', arguments[0])",
        json!([token]),
    )
    .await;
}

async fn sign_in_with_form(b: &Browser, email: &str, password: &str) {
    b.goto("/signin").await;
    b.fill("#signin-email", email).await;
    b.fill("#signin-password", password).await;
    b.click("#signin-form button[type=submit]").await;
    b.wait_for(
        "return location.pathname !== '/signin'",
        "sign-in to finish",
    )
    .await;
}

/// Checks a page as every page is checked, and saves it at desktop and phone width.
async fn check_page(b: &mut Browser, name: &str) {
    nothing_injected(b, name).await;
    check_page_with_images(b, name).await;
}

/// Nothing a person typed ran or became markup: no flag set, no image, one script.
async fn nothing_injected(b: &Browser, page: &str) {
    let v = b
        .js_value(
            "return [typeof window.__x, document.images.length, document.scripts.length, \
             document.querySelectorAll('[onerror], [onclick], iframe, object, embed').length]",
        )
        .await;
    assert_eq!(
        v,
        json!(["undefined", 0, 1, 0]),
        "injected markup on {page}"
    );
}

async fn body_contains(b: &Browser, needle: &str, page: &str) {
    b.wait_for(
        &format!(
            "return document.querySelector('main').textContent.includes({})",
            js_str(needle)
        ),
        &format!("{page} to show {needle:?} as text"),
    )
    .await;
}

fn gemini_env(fake: &FakeGemini) -> Vec<(&'static str, String)> {
    vec![
        ("GEMINI_API_KEY", FAKE_GEMINI_KEY.to_owned()),
        ("GEMINI_BASE_URL", fake.base_url().to_owned()),
        ("GEMINI_MODEL", FAKE_GEMINI_MODEL.to_owned()),
    ]
}

async fn spawn_with_gemini(fake: &FakeGemini) -> TestApp {
    let env = gemini_env(fake);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_app_with(&pairs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_ticket_lifecycle_shows_every_change_live() {
    let gemini = FakeGemini::start().await;
    let (open_gate, held) = gate();
    gemini.set_default(GeminiReply::Held(held, Box::new(GeminiReply::Auto)));
    let app = spawn_with_gemini(&gemini).await;
    staff(
        &app,
        "mona@example.com",
        "Mona Moderator",
        Role::Moderator,
        &["Database"],
    )
    .await;

    let driver = Driver::start().await;
    let mut ann = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;

    // Sign up; the API's validation error shows next to its field.
    ann.goto("/signup").await;
    check_page(&mut ann, "signup").await;
    ann.fill("#signup-name", "Ann Example").await;
    ann.fill("#signup-email", "ann@example.com").await;
    ann.fill("#signup-password", "short").await;
    ann.click("#signup-form button[type=submit]").await;
    ann.wait_text("#signup-password-error", "Password must be between 8")
        .await;
    assert_eq!(
        ann.js_value(
            "return document.getElementById('signup-password').getAttribute('aria-invalid')"
        )
        .await,
        "true"
    );
    ann.screenshot("signup-field-error-desktop").await;
    ann.fill("#signup-password", "correct horse battery").await;
    ann.click("#signup-form button[type=submit]").await;
    ann.wait_for("return location.pathname === '/'", "my tickets")
        .await;
    ann.wait_text("main .empty", "You have no tickets yet")
        .await;
    check_page(&mut ann, "my-tickets-empty").await;

    // Open a ticket: its page opens at once, triage still running.
    ann.click(".page-actions a[href='/tickets/new']").await;
    ann.fill("#ticket-title", "Checkout fails with a database error")
        .await;
    ann.fill(
        "#ticket-description",
        "Since this morning every payment ends with an error about the database.",
    )
    .await;
    check_page(&mut ann, "new-ticket").await;
    ann.click("#new-ticket-form button[type=submit]").await;
    ann.wait_for(
        "return location.pathname.startsWith('/tickets/0')",
        "the ticket page",
    )
    .await;
    let ticket_id = ann.path().await.trim_start_matches("/tickets/").to_owned();
    ann.wait_text("#triage-state", "Triage is running").await;
    ann.js_value("window.__samePage = 'yes'").await;
    ann.screenshot("ticket-triage-running-desktop").await;

    // Triage finishes: category, priority and assignee appear without a reload.
    open_gate.send(true).expect("gate opens");
    ann.wait_text("#ticket-category", "Technical issue").await;
    ann.wait_text("#ticket-priority", "High").await;
    // The creator's view names the assignee (`assignee_name`).
    ann.wait_text("#ticket-assignee", "Mona Moderator").await;
    assert_eq!(ann.js_value("return window.__samePage").await, "yes");

    // The moderator, in a second browser, finds it in the queue and works it.
    let mut mona = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;
    sign_in_with_form(&mona, "mona@example.com", "password123").await;
    assert_eq!(mona.path().await, "/queue");
    mona.wait_text("#ticket-table", "Checkout fails with a database error")
        .await;
    check_page(&mut mona, "moderator-queue").await;
    mona.click(&format!("a[href='/tickets/{ticket_id}']")).await;
    mona.wait_text("#triage-summary", "Summary of: Checkout fails")
        .await;
    // The helpful notes are markdown, rendered to a list.
    mona.wait_text("#triage-notes li", "Look at the database logs.")
        .await;
    mona.click("button[data-to='in_progress']").await;
    ann.wait_text("#ticket-status", "In progress").await;

    mona.fill("#reply-body", "Looking into it now.").await;
    mona.click("#reply-send").await;
    ann.wait_text("#conversation", "Looking into it now.").await;
    mona.click("#reply-internal").await;
    mona.fill("#reply-body", "Internal: the orders table is locked.")
        .await;
    mona.click("#reply-send").await;
    mona.wait_text("#conversation .internal", "Internal note: staff only")
        .await;
    check_page(&mut mona, "ticket-moderator").await;

    mona.click("button[data-to='resolved']").await;
    ann.wait_text("#ticket-status", "Resolved").await;
    // Resolved: the creator is asked for a rating, still on the same page.
    ann.find("#rating-form").await;
    assert_eq!(ann.js_value("return window.__samePage").await, "yes");
    let creator_sees = ann.body_text().await;
    assert!(
        !creator_sees.contains("orders table is locked") && !ann.exists(".internal").await,
        "the creator saw an internal note: {creator_sees}"
    );
    check_page(&mut ann, "ticket-creator-resolved").await;
    ann.js_value("document.getElementById('rating-form').scrollIntoView({block: 'center'})")
        .await;
    ann.screenshot("ticket-rating-form-desktop").await;
    // The list shows the new status too.
    ann.click(".back a").await;
    ann.wait_text("#ticket-table", "Resolved").await;
    check_page(&mut ann, "my-tickets").await;

    ann.quit().await;
    mona.quit().await;
}

/// Needs the rating and activity endpoints (`POST /api/tickets/{id}/rating`,
/// `GET /api/tickets/{id}/activity`) and the satisfaction figures of `GET /api/stats`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_creator_rates_and_the_timeline_tells_the_story() {
    let app = spawn_app().await;
    let (mona_id, mona) = staff(
        &app,
        "mona@example.com",
        "Mona Moderator",
        Role::Moderator,
        &[],
    )
    .await;
    let (_, ada) = staff(&app, "ada@example.com", "Ada Admin", Role::Admin, &[]).await;
    let (_, ann) = app.register("ann@example.com").await;
    let ticket = app
        .create_ticket(&ann, "Invoice shows the wrong amount")
        .await;
    let id = ticket["id"].as_str().expect("id").to_owned();
    app.wait_until_processed().await;
    let r = app
        .patch(
            &format!("/api/tickets/{id}"),
            &ada,
            json!({"assignee_id": mona_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    for status in ["in_progress", "resolved"] {
        let r = app
            .patch(
                &format!("/api/tickets/{id}"),
                &mona,
                json!({"status": status}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    let driver = Driver::start().await;
    let mut creator = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;
    sign_in_with_token(&creator, &ann).await;
    creator.goto(&format!("/tickets/{id}")).await;
    creator.find("#rating-form").await;
    creator.click("#rating-form label[for$='-4']").await;
    creator.fill("#rating-comment", "Quick and friendly.").await;
    creator.click("#rating-send").await;
    creator
        .wait_text("#rating-result", "You rated the help 4 out of 5")
        .await;
    creator
        .wait_text("#timeline", "rated the help 4 out of 5")
        .await;
    creator
        .wait_text("#timeline", "Triaged by the rules engine")
        .await;
    creator
        .wait_text("#timeline", "Assigned to Mona Moderator")
        .await;
    creator
        .wait_text(
            "#timeline",
            "changed the status from In progress to Resolved",
        )
        .await;
    check_page(&mut creator, "ticket-rated").await;
    let r = app.get(&format!("/api/tickets/{id}"), &ann).await;
    assert_eq!(r.body["ticket"]["rating"]["score"], 4, "{:?}", r.body);

    // Staff see the rating on the ticket and in the numbers.
    let mut admin = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;
    sign_in_with_token(&admin, &ada).await;
    admin.goto(&format!("/tickets/{id}")).await;
    admin
        .wait_text("#rating-result", "The customer rated the help 4 out of 5")
        .await;
    admin
        .wait_text("#timeline", "Assigned to Mona Moderator")
        .await;
    admin.goto("/admin/dashboard").await;
    admin.wait_text("#dashboard", "4.0 / 5").await;
    admin
        .wait_for(
            "return document.querySelectorAll('#dashboard svg.chart').length >= 7",
            "every chart, per-day and satisfaction included",
        )
        .await;
    check_page(&mut admin, "dashboard-with-ratings").await;
    creator.quit().await;
    admin.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_admin_manages_people_tickets_and_runs() {
    let app = spawn_app().await;
    let (_, _mona) = staff(
        &app,
        "mona@example.com",
        "Mona Moderator",
        Role::Moderator,
        &["Database"],
    )
    .await;
    staff(&app, "ada@example.com", "Ada Admin", Role::Admin, &[]).await;
    let (bob_id, bob) = app.register("bob@example.com").await;
    set_name(&app, &bob_id, "Bob Builder").await;
    let ticket = app
        .create_ticket(&bob, "Database backup keeps failing")
        .await;
    let id = ticket["id"].as_str().expect("id").to_owned();
    let (_, carl) = app.register("carl@example.com").await;
    app.create_ticket(&carl, "How do I export my invoices?")
        .await;
    app.wait_until_processed().await;

    let driver = Driver::start().await;
    let mut ada = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;
    sign_in_with_form(&ada, "ada@example.com", "password123").await;
    assert_eq!(ada.path().await, "/admin/tickets");
    ada.wait_text("#ticket-table", "Database backup keeps failing")
        .await;
    ada.wait_text("#ticket-table", "How do I export my invoices?")
        .await;
    check_page(&mut ada, "admin-all-tickets").await;
    // Filters and search narrow the list through the API.
    ada.fill("#filter-q", "backup").await;
    ada.click("#filter-q + button").await;
    ada.wait_for(
        "const t = document.querySelector('#ticket-table'); return t && !t.textContent.includes('export my invoices') && t.textContent.includes('backup')",
        "the search to narrow the list",
    )
    .await;
    assert_eq!(ada.path().await, "/admin/tickets?q=backup");

    // People: Bob becomes a moderator with a skill and a capacity.
    ada.goto("/admin/people").await;
    ada.choose(&format!("#role-{bob_id}"), "moderator").await;
    ada.fill(&format!("#skills-{bob_id}"), "Database, Billing")
        .await;
    ada.fill(&format!("#capacity-{bob_id}"), "3").await;
    ada.click(&format!("tr[data-id='{bob_id}'] button.primary"))
        .await;
    ada.wait_text(&format!("tr[data-id='{bob_id}'] .row-status"), "Saved")
        .await;
    check_page(&mut ada, "admin-people").await;
    let admin_token = app.login("ada@example.com", "password123").await;
    let users = app.get("/api/users?role=moderator", &admin_token).await;
    let bob_now = users.body["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["id"] == bob_id.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(bob_now["role"], "moderator", "{:?}", users.body);
    assert_eq!(bob_now["skills"], json!(["Database", "Billing"]));
    assert_eq!(bob_now["capacity"], 3);

    // The ticket: reassign to Bob from the staff picker, override the priority, re-run triage.
    ada.goto(&format!("/tickets/{id}")).await;
    ada.find("#triage-panel").await;
    ada.choose("#admin-assignee", &bob_id).await;
    ada.click("#admin-assignee + button").await;
    ada.wait_text("#ticket-assignee", "Bob Builder").await;
    ada.choose("#admin-priority", "low").await;
    ada.click("#admin-priority + button").await;
    ada.wait_text("#ticket-priority", "Low").await;
    ada.click("#retriage").await;
    ada.wait_text("#status-announcer", "Triage runs again")
        .await;
    let t = app.get(&format!("/api/tickets/{id}"), &admin_token).await;
    assert_eq!(t.body["ticket"]["assigned_to"], bob_id.as_str());
    assert_eq!(t.body["ticket"]["priority"], "low");
    assert_eq!(t.body["ticket"]["priority_locked"], true);
    check_page(&mut ada, "ticket-admin").await;

    ada.goto("/admin/unassigned").await;
    ada.find("#ticket-table, main .empty").await;
    check_page(&mut ada, "admin-unassigned").await;

    ada.goto("/admin/dashboard").await;
    ada.wait_for(
        "return document.querySelectorAll('#dashboard svg.chart').length >= 5",
        "the charts",
    )
    .await;
    ada.wait_text("#dashboard", "Open tickets per staff member")
        .await;
    check_page(&mut ada, "admin-dashboard").await;

    // Runs: filter, open one, re-run it.
    ada.goto("/admin/runs").await;
    ada.find("#runs-table").await;
    ada.choose("#runs-function", "on-ticket-created").await;
    ada.wait_for(
        "const rows = document.querySelectorAll('#runs-table tbody tr'); return rows.length > 0 && Array.from(rows).every((r) => r.textContent.includes('on-ticket-created'))",
        "only on-ticket-created runs",
    )
    .await;
    assert_eq!(ada.path().await, "/admin/runs?function=on-ticket-created");
    check_page(&mut ada, "admin-runs").await;
    ada.click("#runs-table tbody tr a").await;
    ada.find("#run-steps").await;
    let old_run = ada
        .path()
        .await
        .trim_start_matches("/admin/runs/")
        .to_owned();
    // It waits for the ticket's resolution (the SLA step), so it is still running.
    ada.wait_text("#run-status", "Running").await;
    ada.wait_text("#run-steps", "attempt").await;
    check_page(&mut ada, "admin-run").await;
    ada.click("#run-rerun").await;
    ada.wait_for(
        &format!("return location.pathname.startsWith('/admin/runs/') && !location.pathname.endsWith({})", js_str(&old_run)),
        "the new run's page",
    )
    .await;
    let new_run = ada
        .path()
        .await
        .trim_start_matches("/admin/runs/")
        .to_owned();
    let run = app.get(&format!("/api/runs/{new_run}"), &admin_token).await;
    assert_eq!(
        run.body["run"]["rerun_of"],
        old_run.as_str(),
        "{:?}",
        run.body
    );
    ada.find(&format!("a[href='/admin/runs/{old_run}']")).await;
    // The new run is cancelled from its page.
    ada.click("#run-cancel").await;
    ada.wait_text("#run-status", "Cancelled").await;
    let run = app.get(&format!("/api/runs/{new_run}"), &admin_token).await;
    assert_eq!(run.body["run"]["status"], "cancelled", "{:?}", run.body);
    ada.assert_clean_console("admin-run-rerun").await;
    ada.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_typed_markup_shows_as_text_on_every_page() {
    let gemini = FakeGemini::start().await;
    let mut triage = auto_triage(XSS_IMG);
    triage["summary"] = json!(format!("Summary: {XSS_IMG} {XSS_SCRIPT}"));
    triage["helpful_notes"] = json!(format!(
        "**Check** the logs.\n\n- {XSS_IMG}\n- [bad link](javascript:window.__x=1)\n- [docs](https://example.com/docs)\n\n```\n{XSS_SCRIPT}\n```"
    ));
    gemini.set_default(GeminiReply::Triage(triage));
    let app = spawn_with_gemini(&gemini).await;
    let (mod_id, mona) = staff(
        &app,
        "mona@example.com",
        XSS_SCRIPT,
        Role::Moderator,
        &["Database"],
    )
    .await;
    let (_, ada) = staff(&app, "ada@example.com", "Ada Admin", Role::Admin, &[]).await;
    let (ann_id, ann) = app.register("ann@example.com").await;
    set_name(&app, &ann_id, XSS_IMG).await;
    let r = app
        .post(
            "/api/tickets",
            &ann,
            json!({"title": XSS_IMG, "description": format!("{XSS_SCRIPT}\n{XSS_IMG}")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["ticket"]["id"].as_str().expect("id").to_owned();
    app.wait_until_processed().await;
    let t = app.get(&format!("/api/tickets/{id}"), &mona).await;
    assert_eq!(
        t.body["ticket"]["assigned_to"],
        mod_id.as_str(),
        "{:?}",
        t.body
    );
    for (token, body, internal) in [
        (&ann, XSS_SCRIPT, false),
        (&mona, XSS_IMG, false),
        (&mona, XSS_SCRIPT, true),
    ] {
        let r = app
            .post(
                &format!("/api/tickets/{id}/comments"),
                token,
                json!({"body": body, "internal": internal}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }

    let driver = Driver::start().await;
    let mut b = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;

    // The creator: list, ticket, timeline, account.
    sign_in_with_token(&b, &ann).await;
    b.goto("/").await;
    b.find("#ticket-table").await;
    body_contains(&b, XSS_IMG, "the list").await;
    check_page(&mut b, "xss-list").await;
    b.goto(&format!("/tickets/{id}")).await;
    b.find("#conversation .comment").await;
    for needle in [XSS_IMG, XSS_SCRIPT] {
        body_contains(&b, needle, "the ticket").await;
    }
    b.wait_text("#ticket-heading", XSS_IMG).await;
    b.wait_text("#timeline", "replied").await;
    check_page(&mut b, "xss-ticket-creator").await;
    b.goto("/account").await;
    body_contains(&b, XSS_IMG, "the account page").await;
    nothing_injected(&b, "account").await;

    // The moderator (named with markup): queue, ticket with triage notes.
    sign_in_with_token(&b, &mona).await;
    b.goto("/queue").await;
    b.find("#ticket-table").await;
    body_contains(&b, XSS_IMG, "the queue").await;
    check_page(&mut b, "xss-queue").await;
    b.goto(&format!("/tickets/{id}")).await;
    b.find("#triage-notes").await;
    body_contains(&b, XSS_SCRIPT, "the ticket (staff)").await;
    b.wait_text("#triage-summary", XSS_IMG).await;
    b.wait_text("#triage-notes", XSS_IMG).await;
    b.wait_text("#triage-notes pre", XSS_SCRIPT).await;
    let links = b
        .js_value("return Array.from(document.querySelectorAll('#triage-notes a')).map((a) => [a.getAttribute('href'), a.rel])")
        .await;
    assert_eq!(
        links,
        json!([["https://example.com/docs", "noopener noreferrer nofollow"]])
    );
    assert!(b.exists("#triage-notes strong").await);
    nothing_injected(&b, "ticket (staff)").await;
    b.wait_text("#conversation .internal", XSS_SCRIPT).await;
    check_page(&mut b, "xss-ticket-staff").await;

    // The admin: all tickets, people, dashboard, runs.
    sign_in_with_token(&b, &ada).await;
    b.goto("/admin/tickets").await;
    b.find("#ticket-table").await;
    body_contains(&b, XSS_IMG, "all tickets").await;
    nothing_injected(&b, "all tickets").await;
    b.goto(&format!("/tickets/{id}")).await;
    b.find("#admin-assignee").await;
    body_contains(&b, XSS_SCRIPT, "the ticket (admin)").await;
    nothing_injected(&b, "ticket (admin)").await;
    b.goto("/admin/people").await;
    b.find("#people-table").await;
    for needle in [XSS_IMG, XSS_SCRIPT] {
        body_contains(&b, needle, "people").await;
    }
    check_page(&mut b, "xss-people").await;
    b.goto("/admin/dashboard").await;
    b.find("#dashboard svg.chart").await;
    nothing_injected(&b, "dashboard").await;
    b.goto("/admin/runs?function=on-ticket-created").await;
    b.find("#runs-table tbody tr a").await;
    nothing_injected(&b, "runs").await;
    b.click("#runs-table tbody tr a").await;
    b.find("#run-steps").await;
    b.js_value("document.querySelectorAll('#run details').forEach((d) => { d.open = true; })")
        .await;
    nothing_injected(&b, "run").await;
    check_page(&mut b, "xss-run").await;
    b.assert_clean_console("xss pages").await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_pages_show_only_what_each_role_may_see() {
    let app = spawn_app().await;
    let (mona_id, mona) = staff(
        &app,
        "mona@example.com",
        "Mona Moderator",
        Role::Moderator,
        &[],
    )
    .await;
    let (_, max) = staff(
        &app,
        "max@example.com",
        "Max Moderator",
        Role::Moderator,
        &[],
    )
    .await;
    let (_, ada) = staff(&app, "ada@example.com", "Ada Admin", Role::Admin, &[]).await;
    let (_, ann) = app.register("ann@example.com").await;
    let (_, bob) = app.register("bob@example.com").await;
    let anns = app.create_ticket(&ann, "Ann cannot print").await;
    let bobs = app.create_ticket(&bob, "Bob secret ticket").await;
    let (ann_ticket, bob_ticket) = (
        anns["id"].as_str().expect("id"),
        bobs["id"].as_str().expect("id"),
    );
    app.wait_until_processed().await;
    // Both tickets with Mona, so Max sees neither.
    for t in [ann_ticket, bob_ticket] {
        let r = app
            .patch(
                &format!("/api/tickets/{t}"),
                &ada,
                json!({"assignee_id": mona_id}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    let driver = Driver::start().await;
    let mut b = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;

    // Anonymous: every page but the account ones sends to sign-in, and back after it.
    for path in [
        "/",
        format!("/tickets/{ann_ticket}").as_str(),
        "/queue",
        "/admin/people",
        "/admin/runs",
    ] {
        b.goto(path).await;
        b.wait_for(
            &format!(
                "return location.pathname === '/signin' && new URLSearchParams(location.search).get('next') === {}",
                js_str(path)
            ),
            &format!("{path} to send an anonymous visitor to sign in"),
        )
        .await;
    }
    b.goto(&format!("/tickets/{ann_ticket}")).await;
    b.find("#signin-form").await;
    check_page(&mut b, "signin").await;
    b.fill("#signin-email", "ann@example.com").await;
    b.fill("#signin-password", "wrong password").await;
    b.click("#signin-form button[type=submit]").await;
    b.wait_text("#signin-form .form-error", "Invalid email or password")
        .await;
    b.fill("#signin-password", "password123").await;
    b.click("#signin-form button[type=submit]").await;
    b.wait_for(
        &format!("return location.pathname === '/tickets/{ann_ticket}'"),
        "the page asked for before signing in",
    )
    .await;
    b.wait_text("#ticket-heading", "Ann cannot print").await;
    assert!(
        !b.exists("#triage-panel:not([hidden])").await,
        "a user sees the triage panel"
    );

    // A user: someone else's ticket is not found; staff pages are not allowed.
    b.goto(&format!("/tickets/{bob_ticket}")).await;
    b.wait_text("h1", "Ticket not found").await;
    assert!(!b.body_text().await.contains("Bob secret"));
    for path in [
        "/queue",
        "/admin/people",
        "/admin/tickets",
        "/admin/dashboard",
        "/admin/runs",
    ] {
        b.goto(path).await;
        b.wait_text("h1", "Not allowed").await;
    }
    let nav = b.text("#nav").await;
    assert!(
        !nav.contains("People") && !nav.contains("Runs") && !nav.contains("queue"),
        "{nav}"
    );
    b.goto("/").await;
    b.find("#ticket-table").await;
    assert!(!b.body_text().await.contains("Bob secret"));
    b.assert_clean_console("user pages").await;

    // Sign-out forgets the token.
    b.click("#sign-out").await;
    b.wait_for("return location.pathname === '/signin'", "the sign-in page")
        .await;
    assert_eq!(
        b.js_value("return localStorage.getItem('ticketing.token')")
            .await,
        Value::Null
    );
    b.goto(&format!("/tickets/{ann_ticket}")).await;
    b.wait_for(
        "return location.pathname === '/signin'",
        "sign-in after sign-out",
    )
    .await;

    // A token the server no longer accepts is forgotten too.
    sign_in_with_token(&b, "not-a-valid-token").await;
    b.goto("/").await;
    b.wait_for(
        "return location.pathname === '/signin'",
        "sign-in for a bad token",
    )
    .await;
    assert_eq!(
        b.js_value("return localStorage.getItem('ticketing.token')")
            .await,
        Value::Null
    );

    // A moderator: tickets assigned to others are not found; admin pages are not allowed.
    sign_in_with_token(&b, &max).await;
    b.goto(&format!("/tickets/{ann_ticket}")).await;
    b.wait_text("h1", "Ticket not found").await;
    b.goto("/admin/runs").await;
    b.wait_text("h1", "Not allowed").await;
    b.goto("/queue").await;
    b.find("main .empty").await;
    assert!(!b.body_text().await.contains("Ann cannot print"));

    // Their own queue for the assigned moderator, with the triage panel.
    sign_in_with_token(&b, &mona).await;
    b.goto(&format!("/tickets/{bob_ticket}")).await;
    b.wait_text("#ticket-heading", "Bob secret ticket").await;
    b.find("#triage-panel:not([hidden])").await;

    // The admin sees everything.
    sign_in_with_token(&b, &ada).await;
    for path in [
        "/admin/tickets",
        "/admin/people",
        "/admin/runs",
        "/admin/dashboard",
        "/queue",
    ] {
        b.goto(path).await;
        b.find("main h1").await;
        let h1 = b.text("main h1").await;
        assert!(
            h1 != "Not allowed" && h1 != "Page not found",
            "{path}: {h1}"
        );
    }
    b.goto("/no/such/page").await;
    b.wait_text("h1", "Page not found").await;
    b.assert_clean_console("every role").await;
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_works_by_keyboard_and_at_phone_width() {
    let app = spawn_app().await;
    let (_, ann) = app.register("ann@example.com").await;
    let t = app
        .create_ticket(&ann, "The export button does nothing")
        .await;
    app.wait_until_processed().await;

    let driver = Driver::start().await;
    let mut b = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;
    b.goto("/signin").await;
    b.find("#signin-form").await;
    // Tab from the top of the page to the e-mail field, then fill the form and press Enter.
    let mut reached = false;
    for _ in 0..20 {
        b.keys("\u{E004}").await;
        if b.js_value("return document.activeElement && document.activeElement.id")
            .await
            == "signin-email"
        {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the e-mail field");
    let outline = b
        .js_value("const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]")
        .await;
    assert_ne!(outline[0], "none", "focus is invisible: {outline}");
    b.keys("ann@example.com\u{E004}password123\u{E007}").await;
    b.wait_for("return location.pathname === '/'", "signed in by keyboard")
        .await;
    b.find("#ticket-table").await;

    // The skip link leads to the page's content.
    b.goto("/").await;
    b.find("#ticket-table").await;
    b.keys("\u{E004}").await;
    assert_eq!(
        b.js_value("return document.activeElement.className").await,
        "skip"
    );

    // Phone width: every main page fits and reads.
    b.resize(PHONE.0, PHONE.1).await;
    for (path, ready, name) in [
        ("/".to_owned(), "#ticket-table", "phone-my-tickets"),
        (
            format!("/tickets/{}", t["id"].as_str().expect("id")),
            "#conversation",
            "phone-ticket",
        ),
        (
            "/tickets/new".to_owned(),
            "#new-ticket-form",
            "phone-new-ticket",
        ),
        ("/account".to_owned(), "#password-form", "phone-account"),
    ] {
        b.goto(&path).await;
        b.find(ready).await;
        b.assert_no_sideways_scroll(name).await;
        b.assert_named_controls(name).await;
        b.screenshot(name).await;
    }
    b.assert_clean_console("phone pages").await;

    // The pages mail links open: a reset link shows its form; a bad confirmation link says so
    // and offers a new one.
    b.click("#sign-out").await;
    b.resize(DESKTOP.0, DESKTOP.1).await;
    b.goto("/reset?token=abc").await;
    b.find("#reset-form").await;
    check_page(&mut b, "reset-password-form").await;
    b.goto("/verify?token=not-a-real-token").await;
    b.wait_text("main", "invalid or has expired").await;
    b.find("#resend-form").await;
    check_page(&mut b, "verify-bad-link").await;
    b.goto("/forgot").await;
    b.find("#forgot-form").await;
    check_page(&mut b, "forgot").await;

    // Swagger UI keeps working under its own policy.
    b.goto("/docs/").await;
    b.find(".swagger-ui .info").await;
    b.find(".swagger-ui .opblock").await;
    b.assert_clean_console("/docs/").await;
    b.quit().await;
}

/// Pages and assets over plain HTTP: every page path gets the shell with its security headers,
/// the API keeps its JSON (404s included), and assets are cached by version.
#[tokio::test]
async fn web_shell_headers_and_assets() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let mut asset_paths = Vec::new();
    for path in [
        "/",
        "/signin",
        "/tickets/0190a0b0-0000-7000-8000-000000000000",
        "/reset?token=abc",
        "/verify?token=abc",
        "/admin/people",
        "/admin/runs/x",
        "/no/such/page",
    ] {
        let r = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("GET");
        let status = r.status();
        if status != StatusCode::OK {
            panic!(
                "{path}: {status} {:?} {}",
                r.headers().clone(),
                r.text().await.unwrap_or_default()
            );
        }
        let h = r.headers().clone();
        let header = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(header("content-type").starts_with("text/html"), "{path}");
        let csp = header("content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("default-src 'self'"),
            "{path}: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"),
            "{csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("cache-control"), "no-cache");
        let html = r.text().await.expect("shell");
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "inline script or style in the shell"
        );
        asset_paths = html
            .split("\"/assets/")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(|s| format!("/assets/{s}"))
            .collect();
    }
    assert!(asset_paths.len() >= 3, "{asset_paths:?}");
    for path in &asset_paths {
        let r = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("GET asset");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let cache = r.headers()["cache-control"].to_str().expect("ascii");
        assert!(
            cache.contains("immutable") && cache.contains("max-age=31536000"),
            "{path}: {cache}"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let ct = r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let expected = if path.ends_with(".js") {
            "text/javascript"
        } else if path.ends_with(".css") {
            "text/css"
        } else {
            "image/svg+xml"
        };
        assert!(ct.starts_with(expected), "{path}: {ct}");
    }
    // An asset of another version is served uncached; an unknown one is the JSON 404.
    let file = asset_paths[0].splitn(4, '/').nth(3).unwrap_or_default();
    let other = format!("/assets/0ld/{file}");
    let r = client
        .get(format!("{}{other}", app.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK, "{other}");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let r = app
        .request(reqwest::Method::GET, "/assets/v/nope.js", None, None)
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));

    // The API answers JSON, 404s included; other services are unchanged.
    for path in ["/api/nope", "/api", "/api/tickets/x/nope"] {
        let r = app.request(reqwest::Method::GET, path, None, None).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let r = app
        .request(reqwest::Method::POST, "/", None, Some(json!({})))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = app
        .request(reqwest::Method::GET, "/healthz", None, None)
        .await;
    assert_eq!(r.body["status"], "ok");
    let r = app
        .request(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert!(r.body["paths"]["/api/tickets"].is_object());

    // On Vercel (several instances) the page is told to poll; a single server streams.
    let page = |base: String| {
        let client = client.clone();
        async move {
            let r = client.get(format!("{base}/")).send().await.expect("GET /");
            r.text().await.expect("page")
        }
    };
    let single = page(app.base.clone()).await;
    assert!(
        single.contains(r#"<meta name="ticketing-live" content="stream">"#),
        "{single}"
    );
    let vercel = spawn_app_with(&[("VERCEL", "1")]).await;
    let several = page(vercel.base.clone()).await;
    assert!(
        several.contains(r#"<meta name="ticketing-live" content="poll">"#),
        "{several}"
    );

    let r = client
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .expect("GET /docs/");
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(r.text().await.expect("docs").contains("swagger"));
}

/// The link of a mail in the outbox folder (`APP_URL/reset?token=…`, `APP_URL/verify?token=…`),
/// as a path.
fn mailed_link(outbox: &std::path::Path, page: &str) -> Option<String> {
    let needle = format!("/{page}?token=");
    for entry in std::fs::read_dir(outbox).ok()?.flatten() {
        let raw = std::fs::read_to_string(entry.path()).ok()?;
        let text = crate::support::mime::parse(&raw).text.unwrap_or_default();
        if let Some(start) = text.find(&needle) {
            let link: String = text[start..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '"')
                .collect();
            return Some(link);
        }
    }
    None
}

/// Needs the account endpoints (`POST /api/auth/password/forgot|reset|change`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_password_reset_from_the_mail_link_and_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_with_env(base_env(dir.path())).await;
    app.register("ann@example.com").await;

    let driver = Driver::start().await;
    let mut b = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;
    b.goto("/signin").await;
    b.click("a[href='/forgot']").await;
    b.fill("#forgot-email", "ann@example.com").await;
    check_page(&mut b, "forgot-password").await;
    b.click("#forgot-form button[type=submit]").await;
    b.wait_text("main", "a mail with a link").await;

    let outbox = dir.path().join("outbox");
    let link = wait_until(std::time::Duration::from_secs(30), async || {
        mailed_link(&outbox, "reset")
            .ok_or_else(|| format!("no reset mail in {}", outbox.display()))
    })
    .await;
    b.goto(&link).await;
    b.fill("#reset-password", "a brand new secret").await;
    b.fill("#reset-confirm", "a different one").await;
    b.click("#reset-form button[type=submit]").await;
    b.wait_text("#reset-confirm-error", "differ").await;
    b.fill("#reset-confirm", "a brand new secret").await;
    check_page(&mut b, "reset-password").await;
    b.click("#reset-form button[type=submit]").await;
    b.wait_text("main", "Your password is changed").await;
    // The link works once.
    b.goto(&link).await;
    b.fill("#reset-password", "yet another secret").await;
    b.fill("#reset-confirm", "yet another secret").await;
    b.click("#reset-form button[type=submit]").await;
    b.find("#reset-form .form-error").await;

    sign_in_with_form(&b, "ann@example.com", "a brand new secret").await;
    b.goto("/account").await;
    b.fill("#current-password", "a brand new secret").await;
    b.fill("#new-password", "the third secret").await;
    check_page(&mut b, "account").await;
    b.click("#password-form button[type=submit]").await;
    b.wait_text("#password-form .form-done", "Password changed")
        .await;
    b.click("#sign-out").await;
    sign_in_with_form(&b, "ann@example.com", "the third secret").await;
    b.assert_clean_console("account pages").await;
    b.quit().await;
}

/// With `REQUIRE_EMAIL_VERIFICATION`: sign-up waits for the mailed link; an unconfirmed account
/// is told so and cannot open tickets; the link confirms it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sign_up_with_address_confirmation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut env = base_env(dir.path());
    env.insert("REQUIRE_EMAIL_VERIFICATION".into(), "true".into());
    let app = spawn_with_env(env).await;

    let driver = Driver::start().await;
    let mut b = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;
    b.goto("/signup").await;
    b.fill("#signup-name", "Vera").await;
    b.fill("#signup-email", "vera@example.com").await;
    b.fill("#signup-password", "correct horse battery").await;
    b.click("#signup-form button[type=submit]").await;
    b.wait_text("main h1", "Check your inbox").await;
    check_page(&mut b, "signup-check-inbox").await;

    // Signed in before confirming: the banner says what to do; opening a ticket is refused.
    sign_in_with_form(&b, "vera@example.com", "correct horse battery").await;
    b.wait_text("#account-banner", "Please confirm your e-mail address")
        .await;
    b.goto("/tickets/new").await;
    b.fill("#ticket-title", "Cannot do anything").await;
    b.fill("#ticket-description", "Why not?").await;
    b.click("#new-ticket-form button[type=submit]").await;
    b.find("#new-ticket-form .form-error").await;
    check_page(&mut b, "new-ticket-unconfirmed").await;

    let outbox = dir.path().join("outbox");
    let link = wait_until(std::time::Duration::from_secs(30), async || {
        mailed_link(&outbox, "verify")
            .ok_or_else(|| format!("no confirmation mail in {}", outbox.display()))
    })
    .await;
    b.goto(&link).await;
    b.wait_text("main", "Your address is confirmed").await;
    assert!(!b.exists("#account-banner .banner").await);
    check_page(&mut b, "verify-confirmed").await;
    b.goto("/tickets/new").await;
    b.fill("#ticket-title", "Now it works").await;
    b.fill("#ticket-description", "Thanks.").await;
    b.click("#new-ticket-form button[type=submit]").await;
    b.wait_for(
        "return location.pathname.startsWith('/tickets/0')",
        "the new ticket",
    )
    .await;
    b.assert_clean_console("confirmation pages").await;
    b.quit().await;
}

/// `check_page` without the check for injected images, for pages that show pictures on purpose
/// (attachments): controls named, console clean, no sideways scroll at phone width, screenshots
/// at both widths.
async fn check_page_with_images(b: &mut Browser, name: &str) {
    b.assert_named_controls(name).await;
    b.assert_clean_console(name).await;
    b.screenshot(&format!("{name}-desktop")).await;
    b.resize(PHONE.0, PHONE.1).await;
    b.wait_for(
        &format!("return window.innerWidth <= {}", PHONE.0),
        "the phone width",
    )
    .await;
    b.assert_no_sideways_scroll(name).await;
    b.screenshot(&format!("{name}-phone")).await;
    b.resize(DESKTOP.0, DESKTOP.1).await;
    b.wait_for(
        &format!("return window.innerWidth > {}", PHONE.0),
        "the desktop width",
    )
    .await;
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_files_upload_with_a_ticket_and_a_reply_and_show_by_kind() {
    let app = spawn_app().await;
    let (_, ada) = staff(&app, "ada@example.com", "Ada Admin", Role::Admin, &[]).await;
    let (_, ann) = app.register("ann@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A real screenshot, a text file and an SVG carrying a script.
    let screenshot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/screenshots/ticket-moderator.png");
    let png = std::fs::read(&screenshot).expect("a screenshot in docs/");
    let notes = dir.path().join("steps to reproduce.txt");
    std::fs::write(&notes, "1. open the export\n2. see the error\n").unwrap();
    let svg = dir.path().join("diagram.svg");
    std::fs::write(
        &svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg"><script>window.__x=1</script></svg>"#,
    )
    .unwrap();

    let driver = Driver::start().await;
    let mut creator = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;
    sign_in_with_token(&creator, &ann).await;
    creator.goto("/tickets/new").await;
    creator
        .fill("#ticket-title", "Export fails with an error")
        .await;
    creator
        .fill(
            "#ticket-description",
            "The export page shows an error; screenshot attached.",
        )
        .await;
    creator
        .choose_files(
            "#new-ticket-form input[type=file]",
            &[&screenshot, &notes, &svg],
        )
        .await;
    creator
        .wait_for(
            "return document.querySelectorAll('#new-ticket-form .file-row').length === 3",
            "three files listed before sending",
        )
        .await;
    creator
        .wait_text("#new-ticket-form .file-list", "steps to reproduce.txt")
        .await;
    check_page_with_images(&mut creator, "new-ticket-with-files").await;
    creator.click("#new-ticket-form button[type=submit]").await;
    creator
        .wait_for(
            "return /^\\/tickets\\/[0-9a-f-]+$/.test(location.pathname)",
            "the ticket page after the upload",
        )
        .await;
    let id = creator
        .path()
        .await
        .trim_start_matches("/tickets/")
        .to_owned();

    // The screenshot shows as a picture (decoded from the bytes the API returns); the text and
    // the SVG as downloads, never drawn.
    creator
        .wait_for(
            "const i = document.querySelector('#attachment-list img.thumb-img'); \
             return i && i.complete && i.naturalWidth > 0",
            "the screenshot's thumbnail",
        )
        .await;
    let shown = creator
        .js_value(
            "return [document.querySelectorAll('#attachment-list img').length, \
             Array.from(document.querySelectorAll('#attachment-list .file-download')).map((b) => b.textContent), \
             document.querySelector('#attachment-list a.thumb').href.startsWith('blob:'), \
             typeof window.__x]",
        )
        .await;
    assert_eq!(
        shown,
        json!([
            1,
            [
                "⇩ Download steps to reproduce.txt",
                "⇩ Download diagram.svg"
            ],
            true,
            "undefined"
        ])
    );
    creator.wait_text("#attachments-h", "Files (3)").await;
    let r = app
        .get(&format!("/api/tickets/{id}/attachments"), &ann)
        .await;
    let files = r.body["attachments"].as_array().expect("a list").clone();
    assert_eq!(files.len(), 3, "{:?}", r.body);
    assert_eq!(files[0]["filename"], "ticket-moderator.png");
    assert_eq!(files[0]["content_type"], "image/png");
    assert_eq!(files[0]["sha256"], sha256_hex(&png), "byte for byte");
    assert_eq!(files[2]["content_type"], "application/octet-stream");

    // Staff add an internal file with an internal note; the creator's open page never shows it.
    let mut admin = driver.browser(&app.base, DESKTOP.0, DESKTOP.1).await;
    sign_in_with_token(&admin, &ada).await;
    admin.goto(&format!("/tickets/{id}")).await;
    admin.wait_text("#attachments-h", "Files (3)").await;
    admin.click("#reply-internal").await;
    let analysis = dir.path().join("internal analysis.txt");
    std::fs::write(&analysis, "the export job runs out of memory").unwrap();
    admin
        .choose_files("#reply-form input[type=file]", &[&analysis])
        .await;
    admin
        .wait_for(
            "const c = document.querySelector('#reply-form .file-row input[type=checkbox]'); \
             return c && c.checked",
            "the file to start out internal, like the note",
        )
        .await;
    admin
        .fill(
            "#reply-body",
            "Memory limit of the export job; see the file.",
        )
        .await;
    admin.click("#reply-send").await;
    admin.wait_text("#attachments-h", "Files (4)").await;
    admin
        .wait_text("#attachment-list li.internal", "Internal: staff only")
        .await;
    admin
        .wait_text("#conversation", "Memory limit of the export job")
        .await;
    let r = app
        .get(&format!("/api/tickets/{id}/attachments"), &ada)
        .await;
    assert_eq!(r.body["attachments"][3]["internal"], true, "{:?}", r.body);
    admin
        .js_value("document.getElementById('attachments').scrollIntoView(); return true")
        .await;
    check_page_with_images(&mut admin, "ticket-files-staff").await;

    // The creator deletes one of their files; the staff page follows live.
    creator
        .js_value("window.confirm = () => true; return true")
        .await;
    creator
        .click("#attachment-list button[aria-label='Delete steps to reproduce.txt']")
        .await;
    creator.wait_text("#attachments-h", "Files (2)").await;
    admin.wait_text("#attachments-h", "Files (3)").await;
    let r = app
        .get(&format!("/api/tickets/{id}/attachments"), &ann)
        .await;
    let names: Vec<&str> = r.body["attachments"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["filename"].as_str())
        .collect();
    assert_eq!(names, ["ticket-moderator.png", "diagram.svg"]);
    assert!(
        !creator.body_text().await.contains("internal analysis"),
        "the creator never sees the internal file"
    );
    check_page_with_images(&mut creator, "ticket-files-creator").await;
    creator.quit().await;
    admin.quit().await;
}
