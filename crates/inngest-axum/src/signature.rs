//! Request and response signing (`X-Inngest-Signature: t=<unix>&s=<hex>`).
//!
//! `s = hex(HMAC-SHA256(key_without_prefix_as_utf8, body || t))`. Requests are verified over the
//! raw bytes first and then over their canonical JSON form (RFC 8785), because proxies and
//! frameworks re-serialize bodies. Responses are signed over the exact bytes sent.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Requests whose timestamp is further than this from now (either direction) are rejected.
pub const MAX_SIGNATURE_AGE_SECS: i64 = 5 * 60;

/// An Inngest signing key (`signkey-<env>-<hex>`). Its `Debug` output hides the secret part.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(String);

impl SigningKey {
    /// Wraps a key as configured. Like the official SDKs, any string is accepted.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key exactly as configured.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `signkey-<env>-` prefix, or `""` (JS `^signkey-\w+-`; greedy `.+` would be wrong).
    pub fn prefix(&self) -> &str {
        &self.0[..prefix_len(&self.0)]
    }

    /// The key without its prefix; its UTF-8 bytes are the HMAC key.
    pub fn material(&self) -> &str {
        &self.0[prefix_len(&self.0)..]
    }

    /// The hashed key sent as `Authorization: Bearer …`: prefix + hex(SHA-256(hex-decoded material)).
    pub fn hashed(&self) -> String {
        let bytes = decode_hex_like_js(self.material());
        format!("{}{}", self.prefix(), hex::encode(Sha256::digest(&bytes)))
    }

    /// Lowercase hex HMAC of `body || timestamp`.
    pub fn mac_hex(&self, body: &[u8], timestamp: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(self.material().as_bytes())
            .expect("BUG: HMAC accepts keys of any length");
        mac.update(body);
        mac.update(timestamp.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A full header value `t=<unix>&s=<hex>` for `body` at `unix_secs`.
    pub fn sign(&self, body: &[u8], unix_secs: i64) -> String {
        let t = unix_secs.to_string();
        format!("t={t}&s={}", self.mac_hex(body, &t))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}***)", self.prefix())
    }
}

fn prefix_len(key: &str) -> usize {
    let Some(rest) = key.strip_prefix("signkey-") else {
        return 0;
    };
    let word = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    if word > 0 && rest.as_bytes().get(word) == Some(&b'-') {
        "signkey-".len() + word + 1
    } else {
        0
    }
}

/// Hex decoding as the JS SDK's hash.js does it, so that odd or non-hex keys hash the same:
/// non-alphanumerics are dropped, odd lengths get a leading `0`, and each pair is `parseInt(pair, 16)`.
fn decode_hex_like_js(text: &str) -> Vec<u8> {
    let mut chars: Vec<char> = text.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if chars.len() % 2 == 1 {
        chars.insert(0, '0');
    }
    chars
        .chunks(2)
        .map(|pair| match (pair[0].to_digit(16), pair[1].to_digit(16)) {
            (Some(hi), Some(lo)) => (hi * 16 + lo) as u8,
            (Some(hi), None) => hi as u8,
            (None, _) => 0,
        })
        .collect()
}

/// Hex SHA-256 of an event key, as reported in authenticated introspection.
pub fn hash_event_key(event_key: &str) -> String {
    hex::encode(Sha256::digest(event_key.as_bytes()))
}

/// Where "now" comes from; tests inject a fixed instant to replay golden exchanges.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    /// A clock stopped at `at`.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self(Arc::new(move || at))
    }

    /// A clock that asks `f`.
    pub fn from_fn(f: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Which configured key verified a request; responses are signed with the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    /// `INNGEST_SIGNING_KEY`.
    Primary,
    /// `INNGEST_SIGNING_KEY_FALLBACK` (during key rotation).
    Fallback,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
/// Why a request signature was not accepted.
pub enum VerifyError {
    #[error("no X-Inngest-Signature header")]
    /// The request had no signature header.
    Missing,
    #[error("malformed X-Inngest-Signature header")]
    /// The header is not `t=<unix>&s=<hex>`.
    Malformed,
    #[error("signature has expired")]
    /// The timestamp is more than [`MAX_SIGNATURE_AGE_SECS`] from now.
    Expired,
    #[error("invalid signature")]
    /// No configured key produces this signature.
    Mismatch,
    #[error("no signing key configured")]
    /// There is no key to verify with.
    NoKey,
}

/// A parsed `t=…&s=…` header (query-string syntax, first value wins, both required).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// `t`: Unix seconds, as sent.
    pub timestamp: String,
    /// `s`: hex HMAC-SHA256, as sent.
    pub signature: String,
}

impl SignatureHeader {
    /// Reads a header value; both `t` and `s` must be present and non-empty.
    pub fn parse(header: &str) -> Result<Self, VerifyError> {
        let mut t = None;
        let mut s = None;
        for (k, v) in url::form_urlencoded::parse(header.as_bytes()) {
            match k.as_ref() {
                "t" if t.is_none() => t = Some(v.into_owned()),
                "s" if s.is_none() => s = Some(v.into_owned()),
                _ => {}
            }
        }
        match (t, s) {
            (Some(timestamp), Some(signature))
                if !timestamp.is_empty() && !signature.is_empty() =>
            {
                Ok(Self {
                    timestamp,
                    signature,
                })
            }
            _ => Err(VerifyError::Malformed),
        }
    }

    /// `parseInt(t, 10)` semantics: leading whitespace, optional sign, then digits.
    fn unix_secs(&self) -> Option<i64> {
        let s = self.timestamp.trim_start();
        let (neg, digits) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let end = digits.bytes().take_while(u8::is_ascii_digit).count();
        let n: i64 = digits[..end].parse().ok()?;
        Some(if neg { -n } else { n })
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        match self.unix_secs() {
            Some(t) => {
                (now.timestamp_millis() - t.saturating_mul(1000)).abs()
                    > MAX_SIGNATURE_AGE_SECS * 1000
            }
            None => true,
        }
    }

    fn matches(&self, key: &SigningKey, raw: &[u8], canonical: Option<&str>) -> bool {
        if constant_time_eq(&key.mac_hex(raw, &self.timestamp), &self.signature) {
            return true;
        }
        canonical.is_some_and(|c| {
            constant_time_eq(&key.mac_hex(c.as_bytes(), &self.timestamp), &self.signature)
        })
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Verifies a request signature over `body`, trying the primary key and then the fallback.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    primary: Option<&SigningKey>,
    fallback: Option<&SigningKey>,
    now: DateTime<Utc>,
) -> Result<KeyUsed, VerifyError> {
    let primary = primary.ok_or(VerifyError::NoKey)?;
    let header = SignatureHeader::parse(header.ok_or(VerifyError::Missing)?)?;
    if header.expired(now) {
        return Err(VerifyError::Expired);
    }
    // The raw bytes match for any SDK that signs what it sends; the canonical form (a parse and
    // a re-serialisation) is only worth computing when they do not.
    if header.matches(primary, body, None) {
        return Ok(KeyUsed::Primary);
    }
    let canonical = canonical_form(body);
    if header.matches(primary, body, canonical.as_deref()) {
        return Ok(KeyUsed::Primary);
    }
    match fallback {
        Some(key) if header.matches(key, body, canonical.as_deref()) => Ok(KeyUsed::Fallback),
        _ => Err(VerifyError::Mismatch),
    }
}

/// The JCS form of a JSON body, when it parses and differs from the raw bytes.
fn canonical_form(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let canonical = canonical_json(&value);
    (canonical.as_bytes() != body).then_some(canonical)
}

/// RFC 8785 (JCS) serialization: keys sorted by UTF-16 code units, ECMAScript number format.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// [`canonical_json`], appended to `out`: a caller can write the outer object of a body by
/// hand and borrow its parts rather than clone them into one [`Value`].
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => push_ecmascript_number(n, out),
        Value::String(s) => push_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_canonical_object(map, out),
    }
}

/// An object's canonical form; see [`write_canonical`].
pub fn write_canonical_object(map: &Map<String, Value>, out: &mut String) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| utf16_order(a.0, b.0));
    out.push('{');
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(k, out);
        out.push(':');
        write_canonical(v, out);
    }
    out.push('}');
}

/// Orders keys by their UTF-16 code units, as JCS requires. UTF-8 bytes sort in code point
/// order, which is the same order for ASCII keys (nearly all of them), so those skip the
/// re-encoding.
fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        a.cmp(b)
    } else {
        a.encode_utf16().cmp(b.encode_utf16())
    }
}

/// A JSON string escaped as `JSON.stringify` (and serde_json) escape one: quote, backslash and
/// control characters; everything else as it is.
fn push_json_string(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is a character boundary: every escaped byte is ASCII.
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

fn push_ecmascript_number(n: &serde_json::Number, out: &mut String) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    if let Some(u) = n.as_u64().filter(|u| *u <= MAX_SAFE_INTEGER) {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64().filter(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER) {
        let _ = write!(out, "{i}");
    } else {
        out.push_str(&format_f64_like_js(n.as_f64().unwrap_or(0.0)));
    }
}

/// ECMAScript `Number::toString(10)` for finite values.
fn format_f64_like_js(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return "0".to_owned();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    // `{:e}` prints the shortest round-trip digits, e.g. "1.2345e3".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exp + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        if k == 1 {
            format!("{digits}e{e_sign}{}", e.abs())
        } else {
            format!("{}.{}e{e_sign}{}", &digits[..1], &digits[1..], e.abs())
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn vectors() -> Value {
        serde_json::from_str(include_str!("testdata/inngest-test-vectors.json"))
            .expect("test vectors parse")
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().expect("valid instant")
    }

    #[test]
    fn every_signature_vector_matches() {
        let v = vectors();
        let list = v["signature_vectors"].as_array().expect("array");
        assert_eq!(list.len(), 5);
        for case in list {
            let key = SigningKey::new(case["signing_key"].as_str().expect("key"));
            let t: i64 = case["t"].as_str().expect("t").parse().expect("t number");
            let body = case["body"].as_str().expect("body");
            let expected = case["expected_header"].as_str().expect("header");
            assert_eq!(key.sign(body.as_bytes(), t), expected, "{}", case["name"]);
            assert_eq!(
                verify(Some(expected), body.as_bytes(), Some(&key), None, at(t)),
                Ok(KeyUsed::Primary)
            );
        }
    }

    #[test]
    fn every_hashed_key_vector_matches() {
        let v = vectors();
        for case in v["hashed_signing_keys"].as_array().expect("array") {
            let key = SigningKey::new(case["key"].as_str().expect("key"));
            assert_eq!(key.hashed(), case["hashed"].as_str().expect("hashed"));
        }
        let ek = &v["event_key_hash"];
        assert_eq!(
            hash_event_key(ek["key"].as_str().expect("key")),
            ek["sha256"].as_str().expect("sha")
        );
    }

    #[test]
    fn non_canonical_body_verifies_through_its_jcs_form() {
        let key = SigningKey::new(vectors()["keys"]["KEY"].as_str().expect("key"));
        let raw = br#"{"b":"a\u0026b","a":1.0,"c":{"z":null,"y":[3,2,1]}}"#;
        let parsed: Value = serde_json::from_slice(raw).expect("json");
        assert_eq!(
            canonical_json(&parsed),
            r#"{"a":1,"b":"a&b","c":{"y":[3,2,1],"z":null}}"#
        );
        let over_jcs =
            "t=1705586504&s=1e93bb6e9119161098fb34f18a0209b18aba52cbcfa594aeaca5e1d04c68b74d";
        let over_raw =
            "t=1705586504&s=2c8d802f272aa0f0a203c576355f384428696bdaad78e445e7e42bb4a3f7c313";
        assert_eq!(key.sign(raw, 1705586504), over_raw);
        let now = at(1705586504);
        assert_eq!(
            verify(Some(over_jcs), raw, Some(&key), None, now),
            Ok(KeyUsed::Primary)
        );
        assert_eq!(
            verify(Some(over_raw), raw, Some(&key), None, now),
            Ok(KeyUsed::Primary)
        );
    }

    #[test]
    fn window_is_five_minutes_in_both_directions() {
        let key = SigningKey::new("signkey-test-abcd");
        let header = key.sign(b"{}", 1_000_000);
        for (now, ok) in [
            (1_000_300, true),
            (1_000_301, false),
            (999_700, true),
            (999_699, false),
        ] {
            let res = verify(Some(&header), b"{}", Some(&key), None, at(now));
            assert_eq!(res.is_ok(), ok, "now={now}");
            if !ok {
                assert_eq!(res, Err(VerifyError::Expired));
            }
        }
    }

    #[test]
    fn fallback_key_is_tried_and_reported() {
        let primary = SigningKey::new("signkey-test-aaaa");
        let fallback = SigningKey::new("signkey-test-bbbb");
        let header = fallback.sign(b"x", 100);
        assert_eq!(
            verify(
                Some(&header),
                b"x",
                Some(&primary),
                Some(&fallback),
                at(100)
            ),
            Ok(KeyUsed::Fallback)
        );
        assert_eq!(
            verify(Some(&header), b"x", Some(&primary), None, at(100)),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_and_missing_headers_are_rejected() {
        let key = SigningKey::new("signkey-test-aaaa");
        for bad in ["", "t=1", "s=ab", "t=&s=ab", "garbage"] {
            assert_eq!(
                verify(Some(bad), b"", Some(&key), None, at(1)),
                Err(VerifyError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify(None, b"", Some(&key), None, at(1)),
            Err(VerifyError::Missing)
        );
        assert_eq!(
            verify(Some("t=1&s=a"), b"", None, None, at(1)),
            Err(VerifyError::NoKey)
        );
        // A non-numeric timestamp can never be fresh.
        let header = format!("t=abc&s={}", key.mac_hex(b"", "abc"));
        assert_eq!(
            verify(Some(&header), b"", Some(&key), None, at(0)),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn prefix_is_matched_like_the_official_regex() {
        assert_eq!(SigningKey::new("signkey-prod-1234").material(), "1234");
        assert_eq!(SigningKey::new("signkey-branch_1-ab").material(), "ab");
        // `\w` excludes '-', so only the first segment is the environment.
        assert_eq!(SigningKey::new("signkey-a-b-cd").material(), "b-cd");
        assert_eq!(SigningKey::new("plainhex").material(), "plainhex");
        assert_eq!(SigningKey::new("signkey--x").material(), "signkey--x");
        assert!(!format!("{:?}", SigningKey::new("signkey-prod-secret")).contains("secret"));
        // The HMAC key is the material's text, not its hex-decoded bytes.
        assert_eq!(
            SigningKey::new("signkey-prod-12345678").sign(br#"{"a":1}"#, 1705586504),
            "t=1705586504&s=bd16d89641dac2e340a40e3800435b96c0e533c00bc7322c1eefae65d6ab6954"
        );
    }

    #[test]
    fn numbers_follow_ecmascript_formatting() {
        let cases = [
            ("1.0", "1"),
            ("-0.0", "0"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
            ("123.456", "123.456"),
            ("1.5e-10", "1.5e-10"),
            ("9007199254740993", "9007199254740992"),
            ("-42", "-42"),
            ("4.35", "4.35"),
        ];
        for (input, expected) in cases {
            let v: Value = serde_json::from_str(input).expect("number");
            assert_eq!(canonical_json(&v), expected, "{input}");
        }
        // Strings escape exactly as serde_json (and JSON.stringify) escape them.
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é\u{2028}\u{1F600}\u{FFFF}");
        for s in [all.as_str(), "", "plain", "\"\\", "tail\u{1}"] {
            let expected = serde_json::to_string(s).expect("string");
            assert_eq!(
                canonical_json(&Value::String(s.to_owned())),
                expected,
                "{s:?}"
            );
        }
        // UTF-16 order, not code point order: U+1F600 is D83D DE00, before U+FFFF.
        let v: Value =
            serde_json::from_str(r#"{"\uffff":1,"\ud83d\ude00":2,"b":3,"a":4}"#).expect("json");
        assert_eq!(
            canonical_json(&v),
            "{\"a\":4,\"b\":3,\"\u{1F600}\":2,\"\u{FFFF}\":1}"
        );
        let v: Value = serde_json::from_str(r#"{"é":1,"z":2,"a":{"\u0001":"\n"}}"#).expect("json");
        assert_eq!(
            canonical_json(&v),
            "{\"a\":{\"\\u0001\":\"\\n\"},\"z\":2,\"é\":1}"
        );
    }
}
