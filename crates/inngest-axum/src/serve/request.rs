//! The parts of a request the handler looks at, and its signature check.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};

use super::ServeHandler;
use crate::headers;
use crate::settings::Mode;
use crate::signature::{self, KeyUsed, VerifyError};

/// The parts of a request the handler looks at.
pub(super) struct Request {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(super) fn query(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    }
}

/// Signature check of one request: `Ok(None)` when not required (dev mode).
pub(super) type Validation = Result<Option<KeyUsed>, VerifyError>;

impl ServeHandler {
    pub(super) fn validate(&self, req: &Request) -> Validation {
        let settings = &self.inner.settings;
        if settings.mode() != Mode::Cloud {
            return Ok(None);
        }
        signature::verify(
            req.header(headers::SIGNATURE),
            &req.body,
            settings.signing_key(),
            settings.signing_key_fallback(),
            self.inner.clock.now(),
        )
        .map(Some)
    }
}
