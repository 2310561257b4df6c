//! One-time account links (password reset, address verification): 32 random bytes, sent to the
//! person as URL-safe base64 and kept by the stores only as their SHA-256. A leaked database or
//! outbox therefore holds nothing that opens an account; the raw token exists in the mail alone.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;

/// 32 bytes in unpadded base64.
const ENCODED_LEN: usize = 43;

/// What a link is good for; a token of one purpose never works for the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    PasswordReset,
    EmailVerification,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::PasswordReset => "password_reset",
            TokenPurpose::EmailVerification => "email_verification",
        }
    }
}

/// The token as it goes into the link. Its `Debug` never shows it.
pub struct RawToken(String);

impl RawToken {
    /// A fresh token and the hash to store.
    pub fn generate() -> (RawToken, TokenHash) {
        let bytes: [u8; 32] = rand::random();
        let raw = URL_SAFE_NO_PAD.encode(bytes);
        let hash = TokenHash::digest(&raw);
        (RawToken(raw), hash)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RawToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawToken(***)")
    }
}

/// Lower-case hex SHA-256 of a raw token: what the stores keep and look up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHash(String);

impl TokenHash {
    /// The hash of a token a client sent, or `None` when it cannot be one of ours (so a store
    /// is never asked about arbitrary text).
    pub fn of(raw: &str) -> Option<TokenHash> {
        let raw = raw.trim();
        let ours = raw.len() == ENCODED_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ours.then(|| TokenHash::digest(raw))
    }

    fn digest(raw: &str) -> TokenHash {
        TokenHash(hex::encode(Sha256::digest(raw.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_hashes_to_what_is_stored() {
        let (raw, stored) = RawToken::generate();
        assert_eq!(raw.expose().len(), ENCODED_LEN);
        assert_eq!(TokenHash::of(raw.expose()), Some(stored.clone()));
        assert_eq!(stored.as_str().len(), 64);
        assert_ne!(stored.as_str(), raw.expose());
        let (other, _) = RawToken::generate();
        assert_ne!(raw.expose(), other.expose());
        assert_eq!(format!("{raw:?}"), "RawToken(***)");
    }

    #[test]
    fn text_that_is_not_a_token_has_no_hash() {
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
            &format!("{}$", "a".repeat(42)),
            "{\"$ne\": null}",
        ] {
            assert_eq!(TokenHash::of(bad), None, "{bad:?}");
        }
        assert!(TokenHash::of(&"a".repeat(43)).is_some());
    }
}
