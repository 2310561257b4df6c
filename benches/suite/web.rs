//! The web app's first page: from navigation start to the moment the app has drawn it and its
//! controls work (the app's `interactive` performance mark), in headless Chromium on loopback
//! against the release server; an anonymous visitor, so the page is the sign-in form. Measured
//! on a first visit (a fresh browser profile: nothing cached, nothing compiled) and on a repeat
//! visit (assets from the cache, as their hashed URLs allow). A blank HTML page served from
//! loopback, in fresh profiles too, is the baseline: what the browser costs by itself.

use crate::load::percentile;
use crate::report::Report;
use crate::server::start_server;
use crate::settings::Settings;
use crate::webdriver::{Browser, Driver};

const LIMIT_MS: f64 = 100.0;

/// Loads `/` and reads the app's mark.
async fn app_visit(browser: &Browser) -> f64 {
    browser.goto("/").await;
    let v = browser
        .wait_for(
            "const m = performance.getEntriesByName('interactive'); return m.length ? m[0].startTime : 0",
            "the interactive mark",
        )
        .await;
    v.as_f64().unwrap_or(f64::NAN)
}

/// Loads the blank page and reads when its document was parsed.
async fn blank_visit(browser: &Browser) -> f64 {
    browser.goto("/").await;
    let v = browser
        .wait_for(
            "const n = performance.getEntriesByType('navigation')[0]; return n && n.domInteractive",
            "the blank page",
        )
        .await;
    v.as_f64().unwrap_or(f64::NAN)
}

/// A server of one blank page, for the baseline.
async fn blank_server() -> crate::served::Served {
    let app = axum::Router::new().fallback(|| async {
        axum::response::Html(
            "<!doctype html><html lang=\"en\"><title>blank</title><p>blank</p></html>",
        )
    });
    crate::served::Served::start(app).await
}

fn line(sorted: &[f64]) -> String {
    format!(
        "{:.1} ms median (min {:.1}, max {:.1})",
        percentile(sorted, 0.5),
        sorted[0],
        sorted[sorted.len() - 1]
    )
}

/// First and repeat visits in `starts` fresh profiles.
async fn measure<F>(driver: &Driver, base: &str, starts: usize, visit: F) -> (Vec<f64>, Vec<f64>)
where
    F: AsyncFn(&Browser) -> f64,
{
    // One untimed visit, so the browser binary and the server's files are warm.
    let warmup = driver.browser(base, 1280, 800).await;
    visit(&warmup).await;
    warmup.quit().await;
    let (mut first, mut repeat) = (Vec::new(), Vec::new());
    for _ in 0..starts {
        let browser = driver.browser(base, 1280, 800).await;
        first.push(visit(&browser).await);
        repeat.push(visit(&browser).await);
        browser.quit().await;
    }
    first.sort_by(f64::total_cmp);
    repeat.sort_by(f64::total_cmp);
    (first, repeat)
}

pub async fn run(report: &mut Report, settings: &Settings) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(dir.path(), &[]);
    let app = server.url("");
    let blank_server = blank_server().await;
    let blank = blank_server.url();
    println!(
        "\nweb: navigation start to the first page drawn and usable, median of {}",
        settings.starts
    );
    let driver = Driver::start().await;
    let (blank_first, blank_repeat) = measure(&driver, &blank, settings.starts, blank_visit).await;
    let (first, repeat) = measure(&driver, &app, settings.starts, app_visit).await;
    let bench = "web";
    report.row(
        bench,
        "first page, repeat visit (assets cached)",
        line(&repeat),
    );
    report.row(
        bench,
        "first page, first visit (fresh profile)",
        line(&first),
    );
    report.row(
        bench,
        "blank page, repeat visit (baseline)",
        line(&blank_repeat),
    );
    report.row(
        bench,
        "blank page, first visit (baseline)",
        line(&blank_first),
    );
    report.row(
        bench,
        "first visit over the blank page",
        format!(
            "{:.1} ms",
            percentile(&first, 0.5) - percentile(&blank_first, 0.5)
        ),
    );
    report.below(
        "web: time to interactive of the first page (repeat visit)",
        percentile(&repeat, 0.5),
        LIMIT_MS,
        "ms",
    );
    drop(server);
}
