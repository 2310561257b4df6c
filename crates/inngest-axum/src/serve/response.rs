//! Replies: the identity headers, the signature of the body, and streamed answers.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};

use super::ServeHandler;
use super::request::{Request, Validation};
use crate::headers;
use crate::signature::KeyUsed;
use crate::{FRAMEWORK, SDK_IDENT};

/// A response before the identity headers and the signature are added.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
}

impl Reply {
    pub(super) fn json(status: StatusCode, body: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: serde_json::to_vec(body).unwrap_or_default(),
        }
    }

    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(super) fn unauthorized() -> Self {
        Self::json(
            StatusCode::UNAUTHORIZED,
            &json!({ "message": "Unauthorized" }),
        )
    }

    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({ "type": "internal", "name": "Error", "message": message.into() }),
        )
    }
}

impl ServeHandler {
    /// Adds identity headers, forwards trace headers and signs the body with the key that
    /// verified the request. Unverified requests get only the bare headers (no SDK identity).
    fn finish_headers(&self, req: &Request, validation: &Validation, reply: &Reply) -> HeaderMap {
        // Room for all of them at once: growing the map rehashes it.
        let mut h = HeaderMap::with_capacity(16);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert(
            HeaderName::from_static(headers::SDK_HANDLED),
            HeaderValue::from_static("true"),
        );
        for (name, value) in &reply.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
        if validation.is_err() {
            h.retain_inngest_safe();
            return h;
        }
        h.insert(USER_AGENT, HeaderValue::from_static(SDK_IDENT));
        h.insert(
            HeaderName::from_static(headers::SDK),
            HeaderValue::from_static(SDK_IDENT),
        );
        h.insert(
            HeaderName::from_static(headers::FRAMEWORK),
            HeaderValue::from_static(FRAMEWORK),
        );
        h.insert(
            HeaderName::from_static(headers::REQ_VERSION),
            HeaderValue::from_static(headers::EXECUTION_VERSION),
        );
        let settings = &self.inner.settings;
        if let Some(v) = settings.env().and_then(|e| HeaderValue::from_str(e).ok()) {
            h.insert(HeaderName::from_static(headers::ENV), v);
        }
        if let Some(v) = settings
            .platform()
            .and_then(|p| HeaderValue::from_str(p).ok())
        {
            h.insert(HeaderName::from_static(headers::PLATFORM), v);
        }
        if let Some(kind) = req.headers.get(headers::SERVER_KIND) {
            h.insert(
                HeaderName::from_static(headers::EXPECTED_SERVER_KIND),
                kind.clone(),
            );
        }
        for name in [headers::TRACEPARENT, headers::TRACESTATE] {
            if let Some(v) = req.headers.get(name) {
                h.insert(HeaderName::from_static(name), v.clone());
            }
        }
        if let Ok(Some(used)) = validation {
            let key = match used {
                KeyUsed::Primary => settings.signing_key(),
                KeyUsed::Fallback => settings.signing_key_fallback(),
            };
            if let Some(key) = key {
                let signed = key.sign(&reply.body, self.inner.clock.now().timestamp());
                if let Ok(v) = HeaderValue::from_str(&signed) {
                    h.insert(HeaderName::from_static(headers::SIGNATURE), v);
                }
            }
        }
        h
    }

    pub(super) fn finish(&self, req: &Request, validation: &Validation, reply: Reply) -> Response {
        let headers = self.finish_headers(req, validation, &reply);
        let mut response = Response::new(Body::from(reply.body));
        *response.status_mut() = reply.status;
        *response.headers_mut() = headers;
        response
    }

    /// `INNGEST_STREAMING`: answer `201` at once, send a space every few seconds, then the real
    /// response as `{"status","headers","body"}`.
    pub(super) fn stream(&self, req: Request, validation: Validation) -> Response {
        let (mut tx, rx) = futures::channel::mpsc::channel::<Bytes>(4);
        let mut outer = HeaderMap::new();
        let this = self.clone();
        let ok_validation: Validation = Ok(None);
        let outer_reply = Reply {
            status: StatusCode::CREATED,
            headers: Vec::new(),
            body: Vec::new(),
        };
        for (k, v) in &this.finish_headers(&req, &ok_validation, &outer_reply) {
            outer.insert(k.clone(), v.clone());
        }
        tokio::spawn(async move {
            let work = async {
                let reply = this.action(&req, &validation).await;
                let headers = this.finish_headers(&req, &validation, &reply);
                let header_map: Map<String, Value> = headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str().to_owned(), json!(v.to_str().ok()?))))
                    .collect();
                json!({
                    "status": reply.status.as_u16(),
                    "headers": header_map,
                    "body": String::from_utf8_lossy(&reply.body),
                    "version": 2,
                })
            };
            tokio::pin!(work);
            let mut beat = tokio::time::interval(this.inner.heartbeat);
            beat.tick().await;
            let final_value = loop {
                tokio::select! {
                    value = &mut work => break value,
                    _ = beat.tick() => {
                        if tx.send(Bytes::from_static(b" ")).await.is_err() {
                            return;
                        }
                    }
                }
            };
            let _ = tx
                .send(Bytes::from(
                    serde_json::to_vec(&final_value).unwrap_or_default(),
                ))
                .await;
        });
        let mut response = Response::new(Body::from_stream(rx.map(Ok::<_, Infallible>)));
        *response.status_mut() = StatusCode::CREATED;
        *response.headers_mut() = outer;
        response
    }
}

trait RetainSafe {
    fn retain_inngest_safe(&mut self);
}

impl RetainSafe for HeaderMap {
    /// Drops `x-inngest-*` (except `x-inngest-sdk-handled`) and `user-agent` so that an
    /// unverified caller learns nothing about the SDK.
    fn retain_inngest_safe(&mut self) {
        let drop: Vec<HeaderName> = self
            .keys()
            .filter(|k| {
                let name = k.as_str();
                name == USER_AGENT.as_str()
                    || (name.starts_with("x-inngest-") && name != headers::SDK_HANDLED)
            })
            .cloned()
            .collect();
        for name in drop {
            self.remove(name);
        }
    }
}
