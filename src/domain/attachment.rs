//! Files on tickets: what a file is (from its bytes, never from the client's word), what its
//! name may be, how it may be served, and who may remove it. No I/O here.

use super::user::Role;

/// Most files one ticket holds, internal ones included.
pub const MAX_PER_TICKET: usize = 20;

/// Longest kept filename, in characters.
pub const MAX_FILENAME_CHARS: usize = 200;

/// How many leading bytes content detection looks at. Every signature `infer` knows for the
/// formats that matter here sits well inside this.
pub const SNIFF_BYTES: usize = 8192;

/// The name shown for a file whose name was empty or nothing but unusable characters.
const FALLBACK_NAME: &str = "file";

/// A file's name for display only: it is never part of a path (files are stored under their
/// SHA-256) and never trusted as markup. Control and invisible formatting characters are
/// dropped (a right-to-left override could make `exe.png` read as `gnp.exe`), whitespace is
/// collapsed, and the length is bounded. Anything else, slashes and dots included, stays as
/// the text it was: `../../etc/passwd` is kept as that text.
pub fn sanitize_filename(raw: &str) -> String {
    let visible: String = raw
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .collect();
    let collapsed = visible
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let bounded: String = collapsed.chars().take(MAX_FILENAME_CHARS).collect();
    let trimmed = bounded.trim();
    if trimmed.is_empty() {
        FALLBACK_NAME.to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Bidirectional controls, zero-width characters and the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}'
        | '\u{061C}' | '\u{00AD}')
}

/// The filename for a `Content-Disposition` header: the ASCII fallback (`filename=`, every
/// character a browser could misread replaced by `_`) and the exact name (`filename*=`,
/// percent-encoded UTF-8, RFC 6266).
pub fn content_disposition(disposition: Disposition, filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_()[]+,@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(filename.len() * 3);
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = match disposition {
        Disposition::Inline => "inline",
        Disposition::Attachment => "attachment",
    };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    Inline,
    Attachment,
}

/// The content type of a file as its first bytes show it; `application/octet-stream` when
/// nothing is recognised. Text formats (HTML, SVG, scripts) are recognised by some detectors
/// and not others: it does not matter, as only [`serve_as`] decides what a browser gets.
pub fn detect_content_type(head: &[u8]) -> String {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    infer::get(head)
        .map(|kind| kind.mime_type().to_owned())
        .unwrap_or_else(|| OCTET_STREAM.to_owned())
}

pub const OCTET_STREAM: &str = "application/octet-stream";

/// Raster images that browsers render without running anything; every other type (SVG and
/// HTML carry scripts, PDF has its own) is served as a download.
const INLINE_IMAGES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// How a file with this detected type is served: as itself inline when it is one of the four
/// safe raster formats, otherwise as an opaque download.
pub fn serve_as(content_type: &str) -> (&'static str, Disposition) {
    match INLINE_IMAGES.iter().find(|t| **t == content_type) {
        Some(image) => (image, Disposition::Inline),
        None => (OCTET_STREAM, Disposition::Attachment),
    }
}

/// The uploader may remove their own file; admins may remove any.
pub fn can_delete(user_id: &str, role: Role, uploaded_by: &str) -> bool {
    role == Role::Admin || user_id == uploaded_by
}

/// Whether `raw` is a SHA-256 in lowercase hex, the only form a blob key takes.
pub fn is_sha256_hex(raw: &str) -> bool {
    raw.len() == 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_text_without_invisible_or_control_characters() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "../../etc/passwd");
        assert_eq!(
            sanitize_filename("C:\\Windows\\win.ini"),
            "C:\\Windows\\win.ini"
        );
        assert_eq!(sanitize_filename("report\u{202E}gnp.exe"), "reportgnp.exe");
        assert_eq!(sanitize_filename("a\r\nb\u{0}c\td.png"), "a bc d.png");
        assert_eq!(sanitize_filename("  spaced   out .txt "), "spaced out .txt");
        assert_eq!(sanitize_filename(""), "file");
        assert_eq!(sanitize_filename("\u{200B}\u{FEFF} "), "file");
        let long = "é".repeat(500);
        assert_eq!(sanitize_filename(&long).chars().count(), MAX_FILENAME_CHARS);
    }

    #[test]
    fn dispositions_quote_nothing_a_header_could_misread() {
        assert_eq!(
            content_disposition(Disposition::Attachment, "../../etc/passwd"),
            "attachment; filename=\".._.._etc_passwd\"; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd"
        );
        assert_eq!(
            content_disposition(Disposition::Inline, "a \"b\";\r\nc.png"),
            "inline; filename=\"a _b____c.png\"; filename*=UTF-8''a%20%22b%22%3B%0D%0Ac.png"
        );
        assert_eq!(
            content_disposition(Disposition::Inline, "straße.png"),
            "inline; filename=\"stra_e.png\"; filename*=UTF-8''stra%C3%9Fe.png"
        );
    }

    #[test]
    fn types_come_from_the_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(detect_content_type(png), "image/png");
        assert_eq!(
            detect_content_type(b"\xFF\xD8\xFF\xE0\0\x10JFIF"),
            "image/jpeg"
        );
        assert_eq!(detect_content_type(b"GIF89a\x01\0\x01\0"), "image/gif");
        assert_eq!(detect_content_type(b"RIFF\x24\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(detect_content_type(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(detect_content_type(b"just some words"), OCTET_STREAM);
        assert_eq!(detect_content_type(b""), OCTET_STREAM);
    }

    #[test]
    fn only_raster_images_are_served_inline() {
        for t in ["image/png", "image/jpeg", "image/gif", "image/webp"] {
            assert_eq!(serve_as(t), (t, Disposition::Inline));
        }
        for t in [
            "image/svg+xml",
            "text/html",
            "text/xml",
            "application/pdf",
            OCTET_STREAM,
            "image/bmp",
        ] {
            assert_eq!(serve_as(t), (OCTET_STREAM, Disposition::Attachment), "{t}");
        }
    }

    #[test]
    fn uploaders_and_admins_delete() {
        assert!(can_delete("u1", Role::User, "u1"));
        assert!(!can_delete("u2", Role::User, "u1"));
        assert!(!can_delete("m1", Role::Moderator, "u1"));
        assert!(can_delete("a1", Role::Admin, "u1"));
    }

    #[test]
    fn blob_keys_are_lowercase_sha256() {
        assert!(is_sha256_hex(&"a1".repeat(32)));
        assert!(!is_sha256_hex(&"A1".repeat(32)));
        assert!(!is_sha256_hex("../etc"));
        assert!(!is_sha256_hex(&"a".repeat(63)));
    }
}
