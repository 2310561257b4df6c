//! The web app's first page: from navigation start to the moment the app has drawn it and its
//! controls work (the app's `interactive` performance mark), in headless Chromium on loopback
//! against the release server. A first visit (a fresh browser profile, nothing cached) and
//! repeat visits (assets from the cache, as their hashed URLs allow).

use crate::load::percentile;
use crate::report::Report;
use crate::server::start_server;
use crate::settings::Settings;
use crate::webdriver::{Browser, Driver};

const LIMIT_MS: f64 = 100.0;

/// Loads `/` (an anonymous visitor: the app shows the sign-in page) and reads the mark.
async fn visit(browser: &Browser) -> f64 {
    browser.goto("/").await;
    let v = browser
        .wait_for(
            "const m = performance.getEntriesByName('interactive'); return m.length ? m[0].startTime : 0",
            "the interactive mark",
        )
        .await;
    v.as_f64().unwrap_or(f64::NAN)
}

fn line(sorted: &[f64]) -> String {
    format!(
        "{:.1} ms median (min {:.1}, max {:.1})",
        percentile(sorted, 0.5),
        sorted[0],
        sorted[sorted.len() - 1]
    )
}

pub async fn run(report: &mut Report, settings: &Settings) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_server(dir.path(), &[]);
    let app = server.url("");
    println!(
        "\nweb: navigation start to the first page drawn and usable, median of {}",
        settings.starts
    );
    let driver = Driver::start().await;
    let mut first = Vec::new();
    let mut repeat = Vec::new();
    // One untimed visit, so the server's files and the browser binary are warm.
    let warmup = driver.browser(&app, 1280, 800).await;
    visit(&warmup).await;
    warmup.quit().await;
    for _ in 0..settings.starts {
        let browser = driver.browser(&app, 1280, 800).await;
        first.push(visit(&browser).await);
        repeat.push(visit(&browser).await);
        browser.quit().await;
    }
    first.sort_by(f64::total_cmp);
    repeat.sort_by(f64::total_cmp);
    let bench = "web";
    report.row(bench, "first page, first visit (empty cache)", line(&first));
    report.row(
        bench,
        "first page, repeat visit (assets cached)",
        line(&repeat),
    );
    report.below(
        "web: time to interactive of the first page, first visit",
        percentile(&first, 0.5),
        LIMIT_MS,
        "ms",
    );
    drop(server);
}
