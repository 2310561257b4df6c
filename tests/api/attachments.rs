//! Files on tickets through the real server: byte-for-byte round trips, the size and count
//! limits, safe serving of files that carry scripts, who sees and removes what, names that look
//! like paths, the sweep at start, mail, and the bytes in files (SQLite), GridFS (MongoDB peer)
//! and S3 (moto's server).

use crate::helpers::{Resp, TestApp, spawn_app_with};
use crate::pipeline_common::{APP_URL, DEADLINE, the_mail, wait_until};
use crate::support::fake_gemini::{FAKE_GEMINI_KEY, FakeGemini, GeminiReply};
use crate::support::smtp_peer::SmtpPeer;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use ticketing::domain::user::Role;

const BOUNDARY: &str = "ticketing-test-boundary-7f3a";

struct Part<'a> {
    name: &'a str,
    filename: Option<&'a str>,
    content_type: &'a str,
    body: &'a [u8],
}

fn form(parts: &[Part<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match p.filename {
            Some(f) => format!("form-data; name=\"{}\"; filename=\"{f}\"", p.name),
            None => format!("form-data; name=\"{}\"", p.name),
        };
        out.extend_from_slice(
            format!(
                "Content-Disposition: {disposition}\r\nContent-Type: {}\r\n\r\n",
                p.content_type
            )
            .as_bytes(),
        );
        out.extend_from_slice(p.body);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

fn file_part<'a>(filename: &'a str, body: &'a [u8]) -> Part<'a> {
    Part {
        name: "file",
        filename: Some(filename),
        content_type: "application/octet-stream",
        body,
    }
}

async fn upload_parts(app: &TestApp, token: &str, ticket: &str, parts: &[Part<'_>]) -> Resp {
    app.raw(
        Method::POST,
        &format!("/api/tickets/{ticket}/attachments"),
        Some(token),
        Some(&multipart_type()),
        form(parts),
    )
    .await
}

async fn upload(app: &TestApp, token: &str, ticket: &str, filename: &str, body: &[u8]) -> Resp {
    upload_parts(app, token, ticket, &[file_part(filename, body)]).await
}

async fn upload_internal(app: &TestApp, token: &str, ticket: &str, body: &[u8]) -> Resp {
    let internal = Part {
        name: "internal",
        filename: None,
        content_type: "text/plain",
        body: b"true",
    };
    upload_parts(
        app,
        token,
        ticket,
        &[internal, file_part("staff-notes.txt", body)],
    )
    .await
}

/// Uploads and returns the attachment, asserting 201.
async fn attach(app: &TestApp, token: &str, ticket: &str, filename: &str, body: &[u8]) -> Value {
    let r = upload(app, token, ticket, filename, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["attachment"].clone()
}

struct Download {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Download {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn download(app: &TestApp, token: &str, id: &str) -> Download {
    let r = app
        .client
        .get(format!("{}/api/attachments/{id}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    Download {
        status: r.status(),
        headers: r.headers().clone(),
        bytes: r.bytes().await.expect("body").to_vec(),
    }
}

async fn delete(app: &TestApp, token: &str, id: &str) -> Resp {
    app.request(
        Method::DELETE,
        &format!("/api/attachments/{id}"),
        Some(token),
        None,
    )
    .await
}

async fn listed(app: &TestApp, token: &str, ticket: &str) -> Vec<String> {
    let r = app
        .get(&format!("/api/tickets/{ticket}/attachments"), token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["attachments"]
        .as_array()
        .expect("attachments")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Deterministic bytes that are not all alike, starting with `head`.
fn bytes_with(head: &[u8], len: usize) -> Vec<u8> {
    let mut out = head.to_vec();
    let mut x: u32 = 0x9E37_79B9;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x >> 24) as u8);
    }
    out.truncate(len);
    out
}

fn png(len: usize) -> Vec<u8> {
    bytes_with(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", len)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every stored file under `DATA_DIR/attachments/` (not the spool).
fn stored(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(data_dir.join("attachments")) else {
        return out;
    };
    for shard in shards.flatten() {
        if shard.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for f in std::fs::read_dir(shard.path()).expect("shard").flatten() {
            out.push(f.path());
        }
    }
    out.sort();
    out
}

fn spooled(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("attachments/.incoming"))
        .map(|d| d.count())
        .unwrap_or(0)
}

struct Setup {
    app: TestApp,
    dir: tempfile::TempDir,
    customer: String,
    ticket: String,
}

impl Setup {
    fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A server on SQLite with its data directory at hand, a customer and their ticket.
async fn setup(extra: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().display().to_string();
    let mut env = vec![("DATA_DIR", data_dir.as_str())];
    env.extend_from_slice(extra);
    let app = spawn_app_with(&env).await;
    let (_, customer) = app.register("customer@example.com").await;
    let ticket = app.create_ticket(&customer, "Printer on fire").await["id"]
        .as_str()
        .expect("ticket id")
        .to_owned();
    Setup {
        app,
        dir,
        customer,
        ticket,
    }
}

#[tokio::test]
async fn files_come_back_byte_for_byte_with_their_detected_type() {
    let s = setup(&[]).await;
    // Past the 256 KiB JSON limit: the upload route has its own.
    let image = png(700 * 1024 + 3);
    let a = attach(&s.app, &s.customer, &s.ticket, "screenshot.png", &image).await;
    assert_eq!(a["filename"], "screenshot.png");
    assert_eq!(a["content_type"], "image/png");
    assert_eq!(a["size"], image.len());
    assert_eq!(a["sha256"], sha256_hex(&image));
    assert_eq!(a["internal"], false);
    assert_eq!(a["ticket_id"], s.ticket.as_str());
    assert!(
        a["uploaded_by"].is_string() && a["created_at"].is_string(),
        "{a}"
    );

    let id = a["id"].as_str().unwrap();
    let d = download(&s.app, &s.customer, id).await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(d.bytes == image, "the bytes differ");
    assert_eq!(d.header("content-type"), "image/png");
    assert_eq!(
        d.header("content-disposition"),
        "inline; filename=\"screenshot.png\"; filename*=UTF-8''screenshot.png"
    );
    assert_eq!(d.header("x-content-type-options"), "nosniff");
    assert_eq!(d.header("content-security-policy"), "sandbox");
    assert_eq!(d.header("etag"), format!("\"{}\"", sha256_hex(&image)));

    let again = s
        .app
        .client
        .get(format!("{}/api/attachments/{id}", s.app.base))
        .bearer_auth(&s.customer)
        .header("if-none-match", d.header("etag"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // A file whose type nobody knows is a download, whatever the client called it.
    let blob = bytes_with(b"\x00\x01binary", 300 * 1024);
    let b = upload_parts(
        &s.app,
        &s.customer,
        &s.ticket,
        &[Part {
            name: "file",
            filename: Some("dump.png"),
            content_type: "image/png",
            body: &blob,
        }],
    )
    .await;
    assert_eq!(b.status, StatusCode::CREATED, "{:?}", b.body);
    assert_eq!(
        b.body["attachment"]["content_type"],
        "application/octet-stream"
    );
    let d = download(
        &s.app,
        &s.customer,
        b.body["attachment"]["id"].as_str().unwrap(),
    )
    .await;
    assert!(d.bytes == blob);
    assert_eq!(d.header("content-type"), "application/octet-stream");
    assert!(d.header("content-disposition").starts_with("attachment;"));

    assert_eq!(
        listed(&s.app, &s.customer, &s.ticket).await,
        [id, b.body["attachment"]["id"].as_str().unwrap()]
    );

    // Stored under their hashes, readable by the service alone.
    let files = stored(s.data_dir());
    assert_eq!(files.len(), 2);
    assert!(files.iter().any(|f| f.ends_with(sha256_hex(&image))));
    #[cfg(unix)]
    for f in &files {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    assert_eq!(spooled(s.data_dir()), 0);
}

#[tokio::test]
async fn one_byte_over_the_limit_is_refused_and_leaves_nothing() {
    let s = setup(&[("ATTACHMENT_MAX_BYTES", "4096")]).await;
    let exact = png(4096);
    attach(&s.app, &s.customer, &s.ticket, "exact.png", &exact).await;

    let over = png(4097);
    let r = upload(&s.app, &s.customer, &s.ticket, "over.png", &over).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    assert_eq!(r.code(), "payload_too_large");
    assert_eq!(r.body["error"]["details"]["limit"], 4096);

    // Without a length up front the limit holds while the bytes stream in.
    let body = form(&[file_part("streamed.png", &over)]);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let r = s
        .app
        .client
        .post(format!(
            "{}/api/tickets/{}/attachments",
            s.app.base, s.ticket
        ))
        .bearer_auth(&s.customer)
        .header("content-type", multipart_type())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("streamed upload");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    assert_eq!(listed(&s.app, &s.customer, &s.ticket).await.len(), 1);
    assert_eq!(stored(s.data_dir()).len(), 1);
    assert_eq!(spooled(s.data_dir()), 0);
}

#[tokio::test]
async fn files_that_carry_scripts_are_only_ever_downloads() {
    let s = setup(&[]).await;
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>"#;
    let html = b"<!DOCTYPE html><html><body><script>fetch('/api/auth/me')</script></body></html>";
    for (name, bytes, claimed) in [
        ("logo.svg", &svg[..], "image/svg+xml"),
        ("page.html", &html[..], "image/png"),
    ] {
        let r = upload_parts(
            &s.app,
            &s.customer,
            &s.ticket,
            &[Part {
                name: "file",
                filename: Some(name),
                content_type: claimed,
                body: bytes,
            }],
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let id = r.body["attachment"]["id"].as_str().unwrap();
        assert!(
            !r.body["attachment"]["content_type"]
                .as_str()
                .unwrap()
                .starts_with("image/"),
            "{name}: {}",
            r.body
        );
        let d = download(&s.app, &s.customer, id).await;
        assert_eq!(d.status, StatusCode::OK);
        assert_eq!(
            d.header("content-type"),
            "application/octet-stream",
            "{name}"
        );
        assert_eq!(
            d.header("content-disposition"),
            format!("attachment; filename=\"{name}\"; filename*=UTF-8''{name}")
        );
        assert_eq!(d.header("x-content-type-options"), "nosniff");
        assert_eq!(d.header("content-security-policy"), "sandbox");
        assert!(d.bytes == bytes);
    }
}

#[tokio::test]
async fn strangers_see_nothing_and_creators_not_internal_files() {
    let s = setup(&[]).await;
    let app = &s.app;
    let (_, stranger) = app.register("stranger@example.com").await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (_, other_mod) = app
        .staff("other-mod@example.com", Role::Moderator, &[])
        .await;
    let public = attach(app, &s.customer, &s.ticket, "public.png", &png(500)).await;
    let public = public["id"].as_str().unwrap();

    let r = upload_internal(
        app,
        &admin,
        &s.ticket,
        b"customer is on the enterprise plan",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["attachment"]["internal"], true);
    let internal = r.body["attachment"]["id"].as_str().unwrap().to_owned();

    // The creator: their files, not the staff's internal one, and no way to make one.
    assert_eq!(listed(app, &s.customer, &s.ticket).await, [public]);
    assert_eq!(
        download(app, &s.customer, &internal).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(app, &s.customer, &internal).await.status,
        StatusCode::NOT_FOUND
    );
    let r = upload_internal(app, &s.customer, &s.ticket, b"sneaky").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);

    // Staff who can see the ticket see both.
    assert_eq!(
        listed(app, &admin, &s.ticket).await,
        [public, internal.as_str()]
    );
    assert_eq!(
        download(app, &admin, &internal).await.status,
        StatusCode::OK
    );

    // Anyone who cannot see the ticket: the same 404 as for nothing at all.
    for token in [&stranger, &other_mod] {
        for id in [public, internal.as_str()] {
            assert_eq!(download(app, token, id).await.status, StatusCode::NOT_FOUND);
            assert_eq!(delete(app, token, id).await.status, StatusCode::NOT_FOUND);
        }
        let r = app
            .get(&format!("/api/tickets/{}/attachments", s.ticket), token)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = upload(app, token, &s.ticket, "x.png", &png(100)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    let missing = ticketing::domain::new_id();
    assert_eq!(
        download(app, &admin, &missing).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        // Encoded, so the dots reach the handler instead of being resolved by the client.
        download(app, &admin, "..%2F..%2Fetc%2Fpasswd").await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .raw(
            Method::GET,
            &format!("/api/attachments/{public}"),
            None,
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deleting_removes_the_file_once_nothing_refers_to_it() {
    let s = setup(&[]).await;
    let app = &s.app;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let same = png(2048);
    let first = attach(app, &s.customer, &s.ticket, "one.png", &same).await;
    let second = attach(app, &s.customer, &s.ticket, "two.png", &same).await;
    let staff_file = upload_internal(app, &admin, &s.ticket, b"admin's file").await;
    assert_eq!(staff_file.status, StatusCode::CREATED);
    // Stored once for both records.
    assert_eq!(stored(s.data_dir()).len(), 2);

    let staff_id = staff_file.body["attachment"]["id"].as_str().unwrap();
    assert_eq!(
        delete(app, &admin, staff_id).await.status,
        StatusCode::NO_CONTENT
    );

    let first_id = first["id"].as_str().unwrap();
    let second_id = second["id"].as_str().unwrap();
    assert_eq!(
        delete(app, &s.customer, first_id).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        download(app, &s.customer, first_id).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(app, &s.customer, first_id).await.status,
        StatusCode::NOT_FOUND
    );
    // The other record still has its bytes.
    assert!(download(app, &s.customer, second_id).await.bytes == same);
    assert_eq!(stored(s.data_dir()).len(), 1);

    assert_eq!(
        delete(app, &admin, second_id).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(stored(s.data_dir()).is_empty());
    assert!(listed(app, &s.customer, &s.ticket).await.is_empty());
}

#[tokio::test]
async fn only_the_uploader_or_an_admin_deletes() {
    let s = setup(&[]).await;
    let app = &s.app;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    // An admin's public file on the customer's ticket: the customer sees it, cannot delete it.
    let a = attach(app, &admin, &s.ticket, "answer.pdf", b"%PDF-1.7\n...").await;
    let id = a["id"].as_str().unwrap();
    let r = delete(app, &s.customer, id).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(r.code(), "forbidden");
    assert_eq!(download(app, &s.customer, id).await.status, StatusCode::OK);
}

#[tokio::test]
async fn names_that_look_like_paths_are_kept_as_text() {
    let s = setup(&[]).await;
    let a = attach(
        &s.app,
        &s.customer,
        &s.ticket,
        "../../etc/passwd",
        b"root:x:0:0",
    )
    .await;
    assert_eq!(a["filename"], "../../etc/passwd");
    let d = download(&s.app, &s.customer, a["id"].as_str().unwrap()).await;
    assert_eq!(
        d.header("content-disposition"),
        "attachment; filename=\".._.._etc_passwd\"; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd"
    );
    // Stored under its hash and nowhere else.
    assert_eq!(
        stored(s.data_dir()),
        [s.data_dir()
            .join("attachments")
            .join(&sha256_hex(b"root:x:0:0")[..2])
            .join(sha256_hex(b"root:x:0:0"))]
    );
    assert!(!s.data_dir().join("etc").exists());
    assert!(!s.data_dir().parent().unwrap().join("etc/passwd").exists());

    // Invisible characters that would disguise a name are dropped.
    let b = attach(
        &s.app,
        &s.customer,
        &s.ticket,
        "invoice\u{202E}fdp.exe",
        b"MZ",
    )
    .await;
    assert_eq!(b["filename"], "invoicefdp.exe");
}

#[tokio::test]
async fn the_twenty_first_file_is_refused() {
    let s = setup(&[]).await;
    for i in 0..20 {
        attach(
            &s.app,
            &s.customer,
            &s.ticket,
            &format!("f{i}.txt"),
            format!("file {i}").as_bytes(),
        )
        .await;
    }
    let r = upload(&s.app, &s.customer, &s.ticket, "f20.txt", b"one too many").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "too_many_attachments");
    assert_eq!(listed(&s.app, &s.customer, &s.ticket).await.len(), 20);
    assert_eq!(stored(s.data_dir()).len(), 20);
    assert!(
        !stored(s.data_dir())
            .iter()
            .any(|f| f.ends_with(sha256_hex(b"one too many")))
    );
}

#[tokio::test]
async fn malformed_uploads_get_clear_errors() {
    let s = setup(&[]).await;
    let path = format!("/api/tickets/{}/attachments", s.ticket);
    let r = s
        .app
        .post(&path, &s.customer, json!({"file": "not multipart"}))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{:?}", r.body);
    let r = upload_parts(
        &s.app,
        &s.customer,
        &s.ticket,
        &[Part {
            name: "document",
            filename: Some("a.txt"),
            content_type: "text/plain",
            body: b"a",
        }],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = upload_parts(
        &s.app,
        &s.customer,
        &s.ticket,
        &[
            Part {
                name: "internal",
                filename: None,
                content_type: "text/plain",
                body: b"0",
            },
            file_part("a.txt", b"a"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["error"]["details"]["field"], "internal");
    let r = upload_parts(&s.app, &s.customer, &s.ticket, &[]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.body["error"]["details"]["field"], "file");
    let r = upload_parts(
        &s.app,
        &s.customer,
        &s.ticket,
        &[file_part("a.txt", b"a"), file_part("b.txt", b"b")],
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = s
        .app
        .raw(
            Method::POST,
            &path,
            Some(&s.customer),
            Some(&multipart_type()),
            b"--not-the-boundary\r\ngarbage".to_vec(),
        )
        .await;
    assert!(r.status.is_client_error(), "{:?} {:?}", r.status, r.body);
    assert_eq!(listed(&s.app, &s.customer, &s.ticket).await.len(), 0);
    assert!(stored(s.data_dir()).is_empty());
    assert_eq!(spooled(s.data_dir()), 0);
}

#[tokio::test]
async fn leftovers_of_a_crash_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // What a crash leaves: bytes stored whose record was never written, and an upload cut off
    // while it was spooled.
    let orphan = b"bytes without a record";
    let key = sha256_hex(orphan);
    let shard = dir.path().join("attachments").join(&key[..2]);
    std::fs::create_dir_all(&shard).unwrap();
    std::fs::write(shard.join(&key), orphan).unwrap();
    let spool = dir.path().join("attachments/.incoming");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("0123abcd.upload"), b"half an upl").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in [shard.join(&key), spool.join("0123abcd.upload")] {
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    let data_dir = dir.path().display().to_string();
    let app = spawn_app_with(&[("DATA_DIR", data_dir.as_str())]).await;
    wait_until(DEADLINE, || async {
        let left = stored(dir.path()).len() + spooled(dir.path());
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} leftovers"))
        }
    })
    .await;
    // And the service works on: a new upload of the same bytes is stored again.
    let (_, customer) = app.register("customer@example.com").await;
    let ticket = app.create_ticket(&customer, "After the crash").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = attach(&app, &customer, &ticket, "again.txt", orphan).await;
    assert!(
        download(&app, &customer, a["id"].as_str().unwrap())
            .await
            .bytes
            == orphan
    );
    assert_eq!(stored(dir.path()), [shard.join(&key)]);
}

/// Every mail received so far, once one with `subject` is among them.
async fn mail_with_subject(
    peer: &SmtpPeer,
    subject: &str,
) -> Vec<crate::support::smtp_peer::ReceivedMail> {
    wait_until(DEADLINE, || async {
        let mails = peer.messages();
        if mails.iter().any(|m| m.subject() == subject) {
            Ok(mails)
        } else {
            Err(format!("{} mails, none {subject:?}", mails.len()))
        }
    })
    .await
}

#[tokio::test]
async fn mails_name_the_files_with_a_link_never_attach_them() {
    let peer = SmtpPeer::start();
    let gemini = FakeGemini::start().await;
    // Triage waits for the test: the customer's files are in before the confirmation is written.
    let (open, held) = crate::support::fake_gemini::gate();
    gemini.enqueue([GeminiReply::Held(held, Box::new(GeminiReply::Auto))]);
    let smtp_url = peer.smtp_url();
    let app = spawn_app_with(&[
        ("SMTP_URL", smtp_url.as_str()),
        ("APP_URL", APP_URL),
        ("GEMINI_API_KEY", FAKE_GEMINI_KEY),
        ("GEMINI_BASE_URL", gemini.base_url()),
    ])
    .await;
    let (_, admin) = app.staff("admin@example.com", Role::Admin, &[]).await;
    let (_, customer) = app.register("customer@example.com").await;
    let ticket = app.create_ticket(&customer, "Broken export").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = b"%PDF-1.7 the whole secret report";
    attach(&app, &customer, &ticket, "export-error.png", &png(4000)).await;
    open.send_replace(true);
    let link = format!("{APP_URL}/tickets/{ticket}");

    let mails = mail_with_subject(&peer, "We received your ticket: Broken export").await;
    let received = the_mail(
        &mails,
        "customer@example.com",
        "We received your ticket: Broken export",
    );
    assert!(
        received.text().contains(&format!(
            "Attached files (open them on the ticket: {link}):\n- export-error.png\n"
        )),
        "{}",
        received.text()
    );

    // A staff reply with one public and one internal file: the customer is told of the public
    // one only.
    let r = upload_parts(&app, &admin, &ticket, &[file_part("fix-steps.pdf", secret)]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = upload_internal(&app, &admin, &ticket, b"internal analysis").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .post(
            &format!("/api/tickets/{ticket}/comments"),
            &admin,
            json!({"body": "Here is how to fix it."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let mails = mail_with_subject(&peer, "New reply on: Broken export").await;
    let reply = the_mail(
        &mails,
        "customer@example.com",
        "New reply on: Broken export",
    );
    assert!(
        reply.text().contains("- fix-steps.pdf\n"),
        "{}",
        reply.text()
    );
    assert!(
        !reply.text().contains("staff-notes.txt"),
        "{}",
        reply.text()
    );
    assert!(
        !reply.text().contains("export-error.png"),
        "{}",
        reply.text()
    );
    assert!(
        reply
            .html()
            .contains(&format!("<a href=\"{link}\">fix-steps.pdf</a>"))
    );
    for m in &mails {
        let raw = m.parsed();
        assert!(
            raw.header("content-disposition")
                .is_none_or(|d| !d.contains("attachment")),
            "a mail carries a file"
        );
        assert!(!m.text().contains("the whole secret report"));
    }
}

/// The same rules with the bytes in GridFS, in the store's MongoDB database (the test peer).
#[tokio::test]
async fn on_mongodb_the_bytes_live_in_gridfs() {
    let server = crate::mongo_server::mongo().await;
    let database = format!("ticketing_attach_{}", uuid::Uuid::new_v4().simple());
    let client = ::mongodb::Client::with_uri_str(&server.uri).await.unwrap();
    let db = client.database(&database);
    let files = db.collection::<::mongodb::bson::Document>("attachment_blobs.files");
    let chunks = db.collection::<::mongodb::bson::Document>("attachment_blobs.chunks");

    // A crash's leftovers from before this start: chunks of an upload that never finished,
    // begun an hour ago.
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let secs = hour_ago
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let mut raw = [0u8; 12];
    raw[..4].copy_from_slice(&secs.to_be_bytes());
    raw[4..].copy_from_slice(&[7; 8]);
    let dead_upload = ::mongodb::bson::oid::ObjectId::from_bytes(raw);
    chunks
        .insert_one(::mongodb::bson::doc! { "files_id": dead_upload, "n": 0, "data": ::mongodb::bson::Binary { subtype: ::mongodb::bson::spec::BinarySubtype::Generic, bytes: b"half".to_vec() } })
        .await
        .unwrap();

    let app = spawn_app_with(&[
        ("DATABASE_URL", server.uri.as_str()),
        ("MONGODB_DB", database.as_str()),
    ])
    .await;
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        wait_until(DEADLINE, || async {
            let n = chunks
                .count_documents(::mongodb::bson::doc! { "files_id": dead_upload })
                .await
                .unwrap();
            if n == 0 {
                Ok(())
            } else {
                Err("the dead upload's chunks remain")
            }
        })
        .await;

        let (_, customer) = app.register("customer@example.com").await;
        let (_, stranger) = app.register("stranger@example.com").await;
        let ticket = app.create_ticket(&customer, "Printer on fire").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Several GridFS chunks' worth.
        let image = png(600 * 1024 + 11);
        let a = attach(&app, &customer, &ticket, "screenshot.png", &image).await;
        let twin = attach(&app, &customer, &ticket, "again.png", &image).await;
        let id = a["id"].as_str().unwrap();
        let d = download(&app, &customer, id).await;
        assert!(d.bytes == image, "the bytes differ");
        assert_eq!(d.header("content-type"), "image/png");
        assert_eq!(
            download(&app, &stranger, id).await.status,
            StatusCode::NOT_FOUND
        );
        let key = sha256_hex(&image);
        let count = |filter| {
            let files = files.clone();
            async move { files.count_documents(filter).await.unwrap() }
        };
        assert_eq!(count(::mongodb::bson::doc! { "filename": &key }).await, 1);

        assert_eq!(
            delete(&app, &customer, id).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(count(::mongodb::bson::doc! { "filename": &key }).await, 1);
        let twin_id = twin["id"].as_str().unwrap();
        assert_eq!(
            delete(&app, &customer, twin_id).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(count(::mongodb::bson::doc! {}).await, 0);
        assert_eq!(
            chunks
                .count_documents(::mongodb::bson::doc! {})
                .await
                .unwrap(),
            0
        );

        for i in 0..20 {
            attach(&app, &customer, &ticket, "n.txt", format!("{i}").as_bytes()).await;
        }
        let r = upload(&app, &customer, &ticket, "n.txt", b"21").await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(count(::mongodb::bson::doc! {}).await, 20);
    }))
    .await;
    db.drop().await.expect("drop the test database");
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The same with the bytes in an S3 bucket (moto's server on loopback), large enough to go up
/// in parts.
#[tokio::test]
async fn with_an_s3_url_the_bytes_live_in_the_bucket() {
    let endpoint = crate::s3_peer::s3_url().await;
    let bucket = format!("attach-{}", uuid::Uuid::new_v4().simple());
    crate::s3_peer::create_bucket(&bucket).await;
    let url = format!("s3://{bucket}/tickets/files");
    let s = setup(&[
        ("ATTACHMENTS_URL", url.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", crate::s3_peer::ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", crate::s3_peer::SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
    ])
    .await;
    let big = png(7 * 1024 * 1024 + 5);
    let a = attach(&s.app, &s.customer, &s.ticket, "capture.png", &big).await;
    let small = attach(&s.app, &s.customer, &s.ticket, "note.txt", b"short note").await;
    let key = format!("tickets/files/{}", sha256_hex(&big));
    let mut keys = crate::s3_peer::keys(&bucket).await;
    keys.sort();
    let mut expected = vec![
        key.clone(),
        format!("tickets/files/{}", sha256_hex(b"short note")),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert!(stored(s.data_dir()).is_empty(), "nothing on local disk");

    let d = download(&s.app, &s.customer, a["id"].as_str().unwrap()).await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(d.bytes == big, "the bytes differ");
    assert_eq!(d.header("content-type"), "image/png");

    assert_eq!(
        delete(&s.app, &s.customer, a["id"].as_str().unwrap())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        crate::s3_peer::keys(&bucket).await,
        [format!("tickets/files/{}", sha256_hex(b"short note"))]
    );
    let d = download(&s.app, &s.customer, small["id"].as_str().unwrap()).await;
    assert!(d.bytes == b"short note");
}

#[tokio::test]
async fn the_routes_are_in_the_openapi_document() {
    let app = crate::helpers::spawn_app().await;
    let r = app.request(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let paths = &r.body["paths"];
    let upload = &paths["/api/tickets/{id}/attachments"]["post"];
    assert!(
        upload["requestBody"]["content"]["multipart/form-data"].is_object(),
        "{upload}"
    );
    assert!(upload["responses"]["413"].is_object());
    assert!(paths["/api/tickets/{id}/attachments"]["get"].is_object());
    let download = &paths["/api/attachments/{id}"]["get"]["responses"]["200"]["content"];
    for t in ["application/octet-stream", "image/png", "image/webp"] {
        assert!(download[t].is_object(), "{t}: {download}");
    }
    assert!(paths["/api/attachments/{id}"]["delete"]["responses"]["204"].is_object());
}
