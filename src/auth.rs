//! Password hashing (Argon2id, off the async runtime) and access tokens (JWT HS256).

use crate::config::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("token could not be created: {0}")]
    Token(String),
    #[error("background task failed: {0}")]
    Join(String),
}

/// Argon2id, at most one hash per core at a time in reused memory (see `password_hashing`).
pub async fn hash_password(password: String) -> Result<String, AuthError> {
    crate::password_hashing::hash(password)
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Verifies against `hash`, or against a fixed dummy hash when there is no account, so that
/// "no such user" and "wrong password" take the same time.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, AuthError> {
    crate::password_hashing::verify(password, hash)
        .await
        .map_err(|e| AuthError::Hash(e.to_string()))
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    /// The account's token generation at issue; tokens from before this claim existed read 0.
    #[serde(default)]
    tgen: i64,
}

/// Who a valid token names, and under which token generation it was issued.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenSubject {
    pub user_id: String,
    pub generation: i64,
}

/// Mints and checks access tokens. The token carries the user id and the account's token
/// generation: the role and the current generation are read from the store on every request,
/// so a demotion, a password change or "sign out everywhere" takes effect at once.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl Tokens {
    pub fn new(secret: &Secret, ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: &str, generation: i64) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            tgen: generation,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Token(e.to_string()))
    }

    /// The subject of a valid, unexpired token; whether its generation is still current is
    /// for the caller to check against the account.
    pub fn verify(&self, token: &str) -> Option<TokenSubject> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation) {
            Ok(data) => Some(TokenSubject {
                user_id: data.claims.sub,
                generation: data.claims.tgen,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "rejected access token");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("timing-equalizer".into(), None)
                .await
                .unwrap()
        );
    }

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let tokens = Tokens::new(&Secret::new("x".repeat(32)), Duration::from_secs(60));
        let t = tokens.issue("user-1", 3).unwrap();
        assert_eq!(
            tokens.verify(&t),
            Some(TokenSubject {
                user_id: "user-1".into(),
                generation: 3
            })
        );
        let other = Tokens::new(&Secret::new("y".repeat(32)), Duration::from_secs(60));
        assert_eq!(other.verify(&t), None);
        assert_eq!(tokens.verify("not.a.token"), None);
    }

    #[test]
    fn expired_tokens_are_rejected() {
        let secret = Secret::new("z".repeat(32));
        let tokens = Tokens::new(&secret, Duration::from_secs(60));
        let claims = Claims {
            sub: "u".into(),
            iat: 0,
            exp: chrono::Utc::now().timestamp() - 120,
            tgen: 0,
        };
        let t = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &tokens.encoding)
            .unwrap();
        assert_eq!(tokens.verify(&t), None);
    }

    #[test]
    fn tokens_from_before_generations_read_generation_zero() {
        #[derive(Serialize)]
        struct OldClaims {
            sub: String,
            iat: i64,
            exp: i64,
        }
        let tokens = Tokens::new(&Secret::new("w".repeat(32)), Duration::from_secs(60));
        let now = chrono::Utc::now().timestamp();
        let old = OldClaims {
            sub: "u".into(),
            iat: now,
            exp: now + 60,
        };
        let t =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &old, &tokens.encoding).unwrap();
        assert_eq!(tokens.verify(&t).map(|s| s.generation), Some(0));
    }
}
