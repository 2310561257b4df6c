//! Just enough MIME to inspect the messages this project sends (from the SMTP peer or the
//! outbox folder): unfolded headers, RFC 2047 encoded words, multipart bodies, base64 and
//! quoted-printable parts.

use base64::Engine;

/// A parsed message.
#[derive(Clone, Debug, Default)]
pub struct ParsedMail {
    /// `(name, value)` with continuation lines unfolded and encoded words decoded.
    pub headers: Vec<(String, String)>,
    /// Decoded `text/plain` part (or the body of a single-part text message).
    pub text: Option<String>,
    /// Decoded `text/html` part.
    pub html: Option<String>,
}

impl ParsedMail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn subject(&self) -> Option<&str> {
        self.header("Subject")
    }
}

pub fn parse(raw: &str) -> ParsedMail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let headers = parse_headers(head);
    let mut mail = ParsedMail {
        headers: headers.clone(),
        ..ParsedMail::default()
    };
    collect_parts(&headers, body, &mut mail);
    mail
}

fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    for h in &mut out {
        h.1 = decode_words(&h.1);
    }
    out
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn collect_parts(headers: &[(String, String)], body: &str, mail: &mut ParsedMail) {
    let ctype = header_value(headers, "Content-Type").unwrap_or("text/plain");
    let lower = ctype.to_ascii_lowercase();
    if lower.starts_with("multipart/") {
        let Some(boundary) = param(ctype, "boundary") else {
            return;
        };
        let delimiter = format!("--{boundary}");
        for chunk in body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.strip_prefix('\n').unwrap_or(chunk);
            let (head, part_body) = chunk.split_once("\n\n").unwrap_or((chunk, ""));
            let part_headers = parse_headers(head);
            collect_parts(&part_headers, part_body.trim_end_matches('\n'), mail);
        }
        return;
    }
    let encoding = header_value(headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let decoded = match encoding.as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        }
        "quoted-printable" => decode_qp(body),
        _ => body.to_string(),
    };
    if lower.starts_with("text/html") {
        mail.html = Some(decoded);
    } else if lower.starts_with("text/plain") {
        mail.text = Some(decoded);
    }
}

fn decode_qp(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if i + 2 < bytes.len()
                && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
            {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 2047 `=?charset?B|Q?text?=` words (UTF-8 only, which is what lettre writes).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, after) = rest.split_at(start);
        let parsed = (|| {
            let inner = &after[2..];
            let (_charset, inner) = inner.split_once('?')?;
            let (enc, inner) = inner.split_once('?')?;
            let (text, tail) = inner.split_once("?=")?;
            let decoded = match enc {
                "B" | "b" => String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .ok()?,
                )
                .into_owned(),
                "Q" | "q" => decode_qp(&text.replace('_', " ")),
                _ => return None,
            };
            Some((decoded, tail))
        })();
        match parsed {
            Some((decoded, tail)) => {
                // Whitespace between adjacent encoded words is not part of the text.
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&decoded);
                rest = tail;
                last_was_word = true;
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = &rest[start + 2..];
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn mime_decoding_basics() {
    assert_eq!(decode_qp("caf=C3=A9 =\nnext"), "café next");
    assert_eq!(
        decode_words("=?utf-8?b?Y2Fmw6k=?= =?utf-8?b?IQ==?="),
        "café!"
    );
    assert_eq!(decode_words("plain"), "plain");
    let raw = "Subject: Hi\r\n there\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nY2Fmw6k=\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=C3=A9</p>\r\n--b1--\r\n";
    let m = parse(raw);
    assert_eq!(m.subject(), Some("Hi there"));
    assert_eq!(m.text.as_deref(), Some("café"));
    assert_eq!(m.html.as_deref(), Some("<p>café</p>"));
}
