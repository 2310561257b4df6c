//! Per-client token buckets for the routes that take a password, a mailed link or an address
//! to mail (login, register, password reset and change, verification). In memory and per
//! process: on serverless it is best-effort, which is stated in the README.

use super::error::AppError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the limiting middleware needs: the buckets and whether proxies' headers name the
/// client. Apart from the application's state, so the routes can be built before the stores
/// are open.
#[derive(Clone)]
pub struct AuthLimit {
    pub limiter: Arc<RateLimiter>,
    pub trust_proxy: bool,
}

pub struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how many seconds until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        let rate_per_sec = self.per_minute / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED {
            // Full buckets carry no information; dropping them bounds memory under a flood of keys.
            let per_minute = self.per_minute;
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate_per_sec < per_minute
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.per_minute,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate_per_sec).min(self.per_minute);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate_per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// The client address: the peer, unless there is none (serverless) or proxies are trusted, in
/// which case the first `X-Forwarded-For` hop or `X-Real-IP`.
pub fn client_key(headers: &HeaderMap, peer: Option<SocketAddr>, trust_proxy: bool) -> String {
    let forwarded = || {
        headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .or_else(|| headers.get("x-real-ip").and_then(|v| v.to_str().ok()))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    match peer {
        Some(addr) if !trust_proxy => addr.ip().to_string(),
        Some(addr) => forwarded().unwrap_or_else(|| addr.ip().to_string()),
        None => forwarded().unwrap_or_else(|| "unknown".to_owned()),
    }
}

pub async fn limit_auth(
    State(limit): State<AuthLimit>,
    req: Request,
    next: Next,
) -> Result<Response, AppError> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let key = client_key(req.headers(), peer, limit.trust_proxy);
    if let Err(retry_after_secs) = limit.limiter.check(&key, Instant::now()) {
        tracing::warn!(client = %key, "auth rate limit hit");
        return Err(AppError::TooManyRequests { retry_after_secs });
    }
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_over_time() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        assert!(limiter.check("a", t0).is_ok());
        assert!(limiter.check("a", t0).is_ok());
        assert_eq!(limiter.check("a", t0), Err(30));
        assert!(limiter.check("b", t0).is_ok(), "keys are independent");
        assert!(limiter.check("a", t0 + Duration::from_secs(30)).is_ok());
    }

    #[test]
    fn client_key_prefers_peer_unless_trusted() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.1".parse().unwrap());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(client_key(&h, Some(peer), false), "127.0.0.1");
        assert_eq!(client_key(&h, Some(peer), true), "203.0.113.9");
        assert_eq!(client_key(&h, None, false), "203.0.113.9");
        assert_eq!(client_key(&HeaderMap::new(), None, false), "unknown");
    }
}
