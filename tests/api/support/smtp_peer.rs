//! A real SMTP server for tests (mailin-embedded on 127.0.0.1, random port) that keeps every
//! delivered message.
//!
//! Two flavours: [`SmtpPeer::start`] speaks plain SMTP without authentication;
//! [`SmtpPeer::start_tls`] offers STARTTLS with the test certificate in `support/tls/` (signed by
//! the test CA `ca.pem`, valid for 127.0.0.1 until 2126) and requires AUTH with the given
//! credentials. Recipients at `reject.example` are refused with 550 and at `busy.example` with
//! 451, to exercise error handling.
//!
//! The server thread cannot be stopped (mailin has no shutdown); it idles once the test ends.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::response::{AUTH_OK, INTERNAL_ERROR, INVALID_CREDENTIALS, NO_MAILBOX, OK};
use mailin_embedded::{AuthMechanism, Handler, Response, Server, SslConfig};
use ticketing::mail::{SmtpCredentials, SmtpSettings, SmtpTls};

use super::mime::{self, ParsedMail};

const TLS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/support/tls");

/// The CA that signed the peer's certificate, for clients that should trust it.
pub fn test_ca_pem() -> String {
    std::fs::read_to_string(format!("{TLS_DIR}/ca.pem")).expect("test CA certificate")
}

/// A message as the server received it.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub to: Vec<String>,
    /// Raw message data (headers and body).
    pub data: String,
    /// The user name that authenticated the session, if any.
    pub authenticated_as: Option<String>,
}

impl ReceivedMail {
    pub fn parsed(&self) -> ParsedMail {
        mime::parse(&self.data)
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_string()
    }

    pub fn text(&self) -> String {
        self.parsed().text.unwrap_or_default()
    }

    pub fn html(&self) -> String {
        self.parsed().html.unwrap_or_default()
    }
}

#[derive(Default)]
struct Inbox {
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Condvar,
}

#[derive(Clone)]
struct Session {
    inbox: Arc<Inbox>,
    credentials: Option<(String, String)>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    user: Option<String>,
}

impl Handler for Session {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.from = from.to_string();
        self.to.clear();
        self.data.clear();
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if to.ends_with("@reject.example") {
            return NO_MAILBOX;
        }
        if to.ends_with("@busy.example") {
            return INTERNAL_ERROR;
        }
        self.to.push(to.to_string());
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = ReceivedMail {
            from: self.from.clone(),
            to: self.to.clone(),
            data: String::from_utf8_lossy(&self.data).into_owned(),
            authenticated_as: self.user.clone(),
        };
        self.data.clear();
        let mut mails = self
            .inbox
            .mails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        mails.push(mail);
        self.inbox.arrived.notify_all();
        OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.check(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.check(user, password)
    }
}

impl Session {
    fn check(&mut self, user: &str, password: &str) -> Response {
        match &self.credentials {
            Some((u, p)) if u == user && p == password => {
                self.user = Some(user.to_string());
                AUTH_OK
            }
            _ => INVALID_CREDENTIALS,
        }
    }
}

pub struct SmtpPeer {
    addr: SocketAddr,
    inbox: Arc<Inbox>,
    credentials: Option<(String, String)>,
}

impl SmtpPeer {
    /// Plain SMTP, no TLS, no authentication.
    pub fn start() -> SmtpPeer {
        Self::spawn(None)
    }

    /// STARTTLS offered (test certificate), AUTH PLAIN/LOGIN required with these credentials.
    pub fn start_tls(user: &str, password: &str) -> SmtpPeer {
        // mailin builds its rustls config with the process-wide provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self::spawn(Some((user.to_string(), password.to_string())))
    }

    fn spawn(credentials: Option<(String, String)>) -> SmtpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind SMTP peer");
        let addr = listener.local_addr().expect("SMTP peer address");
        let inbox = Arc::new(Inbox::default());
        let session = Session {
            inbox: inbox.clone(),
            credentials: credentials.clone(),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
            user: None,
        };
        let mut server = Server::new(session);
        server
            .with_name("smtp-peer.test")
            .with_tcp_listener(listener);
        if credentials.is_some() {
            server
                .with_ssl(SslConfig::SelfSigned {
                    cert_path: format!("{TLS_DIR}/server.pem"),
                    key_path: format!("{TLS_DIR}/server.key"),
                })
                .expect("SMTP peer TLS setup")
                .with_auth(AuthMechanism::Plain)
                .with_auth(AuthMechanism::Login);
        } else {
            server.with_ssl(SslConfig::None).expect("SMTP peer setup");
        }
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        SmtpPeer {
            addr,
            inbox,
            credentials,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `SMTP_URL` for this peer.
    pub fn smtp_url(&self) -> String {
        match &self.credentials {
            None => format!("smtp://127.0.0.1:{}?tls=none", self.port()),
            Some((u, p)) => format!("smtp://{u}:{p}@127.0.0.1:{}?tls=required", self.port()),
        }
    }

    /// Settings that deliver here: plain for [`Self::start`]; STARTTLS required, trusting the
    /// test CA, with the credentials for [`Self::start_tls`].
    pub fn settings(&self) -> SmtpSettings {
        match &self.credentials {
            None => SmtpSettings::new("127.0.0.1", self.port(), SmtpTls::None),
            Some((u, p)) => {
                let mut s = SmtpSettings::new("127.0.0.1", self.port(), SmtpTls::Required);
                s.credentials = Some(SmtpCredentials {
                    username: u.clone(),
                    password: p.clone(),
                });
                s.extra_root_cert_pem = Some(test_ca_pem());
                s
            }
        }
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.inbox
            .mails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits until at least `n` messages arrived (or `timeout` passes) and returns them all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let inbox = self.inbox.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + timeout;
            let mut mails = inbox
                .mails
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while mails.len() < n {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                mails = inbox
                    .arrived
                    .wait_timeout(mails, left)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            mails.clone()
        })
        .await
        .expect("SMTP peer wait")
    }
}
