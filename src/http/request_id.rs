//! Incoming request ids are written into every log line of the request, so only a short id of
//! a safe alphabet is kept; anything else (a forged log line, control characters, a megabyte)
//! is dropped and a fresh id is generated in its place.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-request-id";
/// Longer than any UUID or trace id in common use.
const MAX_LEN: usize = 64;

/// `[A-Za-z0-9._-]{1,64}`.
pub fn is_acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Runs before the id is set: removes every unacceptable incoming id, so the next layer
/// generates one.
pub async fn drop_unsafe(mut req: Request, next: Next) -> Response {
    let unsafe_id = req
        .headers()
        .get_all(HEADER)
        .iter()
        .any(|v| !is_acceptable(v.as_bytes()));
    if unsafe_id {
        req.headers_mut().remove(HEADER);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_ids_of_a_safe_alphabet_pass() {
        for ok in [
            "0190c6f2-7b1e-7c3a-9d51-3f1e2a4b5c6d",
            "abc.DEF_123-x",
            &"a".repeat(64),
        ] {
            assert!(is_acceptable(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "forged}: ticketing::http::auth: account registered",
            "a b",
            "line\nbreak",
            "quote\"",
            "ünicode",
            &"a".repeat(65),
        ] {
            assert!(!is_acceptable(bad.as_bytes()), "{bad:?}");
        }
    }
}
