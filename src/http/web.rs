//! The browser app: a shell page and its assets, compiled into the binary. Every GET outside
//! `/api/` that no other route answers gets the shell, so links in mails (`/tickets/{id}`,
//! `/reset?token=…`) open the app, which then talks to the REST API like any other client.

use super::error::AppError;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Assets by their path under `/assets/{version}/`, with their content type.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("app.css", CSS, include_bytes!("../web/app.css")),
    ("icon.svg", SVG, include_bytes!("../web/icon.svg")),
    ("app.js", JS, include_bytes!("../web/app.js")),
    ("api.js", JS, include_bytes!("../web/api.js")),
    ("dom.js", JS, include_bytes!("../web/dom.js")),
    ("md.js", JS, include_bytes!("../web/md.js")),
    ("live.js", JS, include_bytes!("../web/live.js")),
    ("charts.js", JS, include_bytes!("../web/charts.js")),
    ("files.js", JS, include_bytes!("../web/files.js")),
    ("pages/auth.js", JS, include_bytes!("../web/pages/auth.js")),
    ("pages/list.js", JS, include_bytes!("../web/pages/list.js")),
    (
        "pages/ticket.js",
        JS,
        include_bytes!("../web/pages/ticket.js"),
    ),
    (
        "pages/people.js",
        JS,
        include_bytes!("../web/pages/people.js"),
    ),
    (
        "pages/dashboard.js",
        JS,
        include_bytes!("../web/pages/dashboard.js"),
    ),
    ("pages/runs.js", JS, include_bytes!("../web/pages/runs.js")),
];

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The app's policy: scripts and styles from this origin only, no inline script, no eval.
const APP_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

/// Swagger UI sets inline styles and shows data-URL images; it still runs no inline script.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

/// A hash of every asset: a new build with changed assets gets new URLs, so browsers may keep
/// any one version forever.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for (path, _, bytes) in ASSETS {
        hash.update(path.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    hex::encode(&hash.finalize()[..6])
});

/// The page, for a server whose event stream sees every change (one instance), and for one
/// whose stream would miss the changes other instances make (Vercel): that page polls.
static SHELL: LazyLock<[String; 2]> = LazyLock::new(|| {
    let page = include_str!("../web/index.html").replace("__VERSION__", &VERSION);
    [
        page.replace("__LIVE__", "stream"),
        page.replace("__LIVE__", "poll"),
    ]
});

/// `/assets/{version}/{*path}`. The current version is cached for a year; any other version
/// (a page loaded before a deploy) still gets today's file, but uncached.
pub async fn asset(Path((version, path)): Path<(String, String)>) -> Response {
    let Some((_, content_type, bytes)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return AppError::NotFound.into_response();
    };
    let cache = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, cache),
        ],
        *bytes,
    )
        .into_response()
}

/// The router's fallback: the app's shell for page paths, the JSON 404 for everything else.
/// `poll` tells the page to poll instead of reading the event stream.
pub fn fallback(method: &Method, uri: &axum::http::Uri, poll: bool) -> Response {
    let path = uri.path();
    let is_api = path == "/api" || path.starts_with("/api/");
    if is_api || !(method == Method::GET || method == Method::HEAD) {
        return AppError::NotFound.into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SHELL[usize::from(poll)].as_str(),
    )
        .into_response()
}

/// Every response: no MIME sniffing, no referrer. HTML responses also get a content security
/// policy and may not be framed.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let docs = req.uri().path().starts_with("/docs");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        let policy = if docs { DOCS_CSP } else { APP_CSP };
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_names_versioned_assets_that_exist() {
        let shell = &SHELL[0];
        assert!(!shell.contains("__VERSION__") && !shell.contains("__LIVE__"));
        assert!(shell.contains(r#"<meta name="ticketing-live" content="stream">"#));
        assert!(SHELL[1].contains(r#"<meta name="ticketing-live" content="poll">"#));
        let prefix = format!("/assets/{}/", *VERSION);
        let mut named = 0;
        for part in shell.split(&prefix).skip(1) {
            let path = part.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|(p, _, _)| *p == path),
                "the shell names {path}, which is not an asset"
            );
            named += 1;
        }
        assert!(named >= 3, "{shell}");
    }

    #[test]
    fn every_asset_file_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut on_disk = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("src/web is readable") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&dir) {
                    on_disk.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        for file in on_disk.iter().filter(|f| *f != "index.html") {
            assert!(
                ASSETS.iter().any(|(p, _, _)| p == file),
                "src/web/{file} is not in ASSETS"
            );
        }
    }

    /// Values people typed reach the page as text only; nothing builds HTML from strings or
    /// evaluates code.
    #[test]
    fn scripts_never_parse_html_or_code() {
        let banned = [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "createContextualFragment",
            "DOMParser",
            "setAttribute('style'",
            "javascript:",
        ];
        for (path, content_type, bytes) in ASSETS {
            if *content_type != JS {
                continue;
            }
            let text = String::from_utf8_lossy(bytes);
            for word in banned {
                assert!(!text.contains(word), "{path} uses {word}");
            }
        }
    }

    #[test]
    fn scripts_and_styles_stay_small() {
        let total: usize = ASSETS
            .iter()
            .filter(|(_, t, _)| *t == JS || *t == CSS)
            .map(|(_, _, b)| b.len())
            .sum();
        assert!(total < 200 * 1024, "JS + CSS is {total} bytes");
    }
}
