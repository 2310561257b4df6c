//! Mail configuration from raw environment values. The configuration module reads the
//! variables; this module only interprets them:
//!
//! 1. `SMTP_URL` when set: `smtp://user:pass@host:port` (STARTTLS: `?tls=opportunistic`, the
//!    default, `?tls=required`, or `?tls=none` for plain text) or `smtps://user:pass@host:port`
//!    (implicit TLS). A path names the EHLO host (`smtp://host/mail.example.com`);
//!    `accept_invalid_certs=true` trusts any certificate (self-signed development servers only).
//!    User and password are percent-decoded.
//! 2. Otherwise the Mailtrap-style variables: `MAILTRAP_SMTP_HOST`, `MAILTRAP_SMTP_PORT`
//!    (default 2525), `MAILTRAP_SMTP_USER`/`MAILTRAP_SMTP_PASS`, or `MAILTRAP_USER`/
//!    `MAILTRAP_PASS` (which alone imply the Mailtrap sandbox host), with opportunistic STARTTLS.
//! 3. Otherwise `.eml` files in `DATA_DIR/outbox`.
//!
//! `MAIL_FROM` (default `Support <support@localhost>`) is the sender.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use url::Url;

use super::{MailError, Mailer, OutboxMailer, SmtpMailer};

/// Mailtrap's sandbox, used when only `MAILTRAP_USER`/`MAILTRAP_PASS` are given.
pub const MAILTRAP_SANDBOX_HOST: &str = "sandbox.smtp.mailtrap.io";

/// The raw values, as found in the environment (empty strings count as unset).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawMailEnv {
    pub smtp_url: Option<String>,
    pub mailtrap_smtp_host: Option<String>,
    pub mailtrap_smtp_port: Option<String>,
    pub mailtrap_smtp_user: Option<String>,
    pub mailtrap_smtp_pass: Option<String>,
    pub mailtrap_user: Option<String>,
    pub mailtrap_pass: Option<String>,
    pub mail_from: Option<String>,
}

impl fmt::Debug for RawMailEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("RawMailEnv")
            .field("smtp_url", &redact(&self.smtp_url))
            .field("mailtrap_smtp_host", &self.mailtrap_smtp_host)
            .field("mailtrap_smtp_port", &self.mailtrap_smtp_port)
            .field("mailtrap_smtp_user", &self.mailtrap_smtp_user)
            .field("mailtrap_smtp_pass", &redact(&self.mailtrap_smtp_pass))
            .field("mailtrap_user", &self.mailtrap_user)
            .field("mailtrap_pass", &redact(&self.mailtrap_pass))
            .field("mail_from", &self.mail_from)
            .finish()
    }
}

impl RawMailEnv {
    /// Collects the values through `lookup` (e.g. a closure over the environment or a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        RawMailEnv {
            smtp_url: lookup("SMTP_URL"),
            mailtrap_smtp_host: lookup("MAILTRAP_SMTP_HOST"),
            mailtrap_smtp_port: lookup("MAILTRAP_SMTP_PORT"),
            mailtrap_smtp_user: lookup("MAILTRAP_SMTP_USER"),
            mailtrap_smtp_pass: lookup("MAILTRAP_SMTP_PASS"),
            mailtrap_user: lookup("MAILTRAP_USER"),
            mailtrap_pass: lookup("MAILTRAP_PASS"),
            mail_from: lookup("MAIL_FROM"),
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Implicit TLS from the first byte (`smtps://`, port 465).
    Wrapper,
    /// STARTTLS, and fail if the server does not offer it.
    Required,
    /// STARTTLS when offered, plain text otherwise.
    Opportunistic,
    /// Plain text.
    None,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCredentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<SmtpCredentials>,
    /// Skip certificate verification (self-signed development servers only).
    pub accept_invalid_certs: bool,
    /// An extra trusted root certificate (PEM), e.g. a private CA.
    pub extra_root_cert_pem: Option<String>,
    /// Name sent in EHLO; the local host name by default.
    pub hello_name: Option<String>,
    /// Timeout of each SMTP command.
    pub timeout: Duration,
    /// Most pooled connections.
    pub pool_max_size: u32,
}

impl SmtpSettings {
    pub fn new(host: impl Into<String>, port: u16, tls: SmtpTls) -> Self {
        SmtpSettings {
            host: host.into(),
            port,
            tls,
            credentials: None,
            accept_invalid_certs: false,
            extra_root_cert_pem: None,
            hello_name: None,
            timeout: Duration::from_secs(15),
            pool_max_size: 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailTransportSettings {
    Smtp(SmtpSettings),
    /// Write `.eml` files into this folder.
    Outbox {
        dir: PathBuf,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailSettings {
    pub from: Mailbox,
    pub transport: MailTransportSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailConfigError {
    #[error("SMTP_URL is not a valid URL: {0}")]
    InvalidUrl(String),
    #[error("SMTP_URL scheme must be smtp or smtps, got {0:?}")]
    UnsupportedScheme(String),
    #[error("SMTP_URL has no host")]
    MissingHost,
    #[error("SMTP_URL parameter tls must be required, opportunistic or none, got {0:?}")]
    InvalidTls(String),
    #[error("SMTP_URL parameter {0:?} is not supported (use tls or accept_invalid_certs)")]
    UnknownParameter(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0} has a user name but no password, or a password but no user name")]
    IncompleteCredentials(&'static str),
    #[error("MAILTRAP_SMTP_PORT must be a port number, got {0:?}")]
    InvalidPort(String),
    #[error("MAIL_FROM is not a valid mailbox ({value:?}): {reason}")]
    InvalidFrom { value: String, reason: String },
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl MailSettings {
    pub const DEFAULT_FROM: &'static str = "Support <support@localhost>";

    /// Interprets the raw values; see the module docs for the precedence.
    pub fn parse(raw: &RawMailEnv, data_dir: &Path) -> Result<MailSettings, MailConfigError> {
        let from_raw = set(&raw.mail_from).unwrap_or(Self::DEFAULT_FROM);
        let from = from_raw
            .parse::<Mailbox>()
            .map_err(|e| MailConfigError::InvalidFrom {
                value: from_raw.to_string(),
                reason: e.to_string(),
            })?;

        let transport = if let Some(url) = set(&raw.smtp_url) {
            MailTransportSettings::Smtp(parse_smtp_url(url)?)
        } else if let Some(smtp) = mailtrap(raw)? {
            MailTransportSettings::Smtp(smtp)
        } else {
            MailTransportSettings::Outbox {
                dir: data_dir.join("outbox"),
            }
        };
        Ok(MailSettings { from, transport })
    }

    /// Builds the mailer.
    pub fn build(&self) -> Result<Arc<dyn Mailer>, MailError> {
        Ok(match &self.transport {
            MailTransportSettings::Smtp(s) => Arc::new(SmtpMailer::new(s, self.from.clone())?),
            MailTransportSettings::Outbox { dir } => {
                Arc::new(OutboxMailer::new(dir.clone(), self.from.clone()))
            }
        })
    }

    /// One line for the startup log (no secrets).
    pub fn describe(&self) -> String {
        match &self.transport {
            MailTransportSettings::Smtp(s) => format!(
                "SMTP {}:{} ({}{}), from {}",
                s.host,
                s.port,
                match s.tls {
                    SmtpTls::Wrapper => "implicit TLS",
                    SmtpTls::Required => "STARTTLS required",
                    SmtpTls::Opportunistic => "STARTTLS when offered",
                    SmtpTls::None => "no TLS",
                },
                if s.credentials.is_some() {
                    ", authenticated"
                } else {
                    ""
                },
                self.from
            ),
            MailTransportSettings::Outbox { dir } => {
                format!(".eml files in {}, from {}", dir.display(), self.from)
            }
        }
    }
}

/// Parses an `SMTP_URL`.
pub fn parse_smtp_url(raw: &str) -> Result<SmtpSettings, MailConfigError> {
    let url = Url::parse(raw).map_err(|e| MailConfigError::InvalidUrl(e.to_string()))?;
    let implicit_tls = match url.scheme() {
        "smtp" => false,
        "smtps" => true,
        other => return Err(MailConfigError::UnsupportedScheme(other.to_string())),
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(MailConfigError::MissingHost),
    };

    let mut tls_param: Option<String> = None;
    let mut accept_invalid_certs = false;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "tls" => tls_param = Some(value.to_lowercase()),
            "accept_invalid_certs" => {
                accept_invalid_certs = match value.to_lowercase().as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => {
                        return Err(MailConfigError::InvalidParameter(format!(
                            "SMTP_URL parameter accept_invalid_certs must be true or false, got {value:?}"
                        )));
                    }
                }
            }
            other => return Err(MailConfigError::UnknownParameter(other.to_string())),
        }
    }
    let tls = match (implicit_tls, tls_param.as_deref()) {
        (true, None) => SmtpTls::Wrapper,
        (true, Some(t)) => {
            return Err(MailConfigError::InvalidParameter(format!(
                "smtps:// always uses implicit TLS; remove tls={t} or use smtp://"
            )));
        }
        (false, None | Some("opportunistic")) => SmtpTls::Opportunistic,
        (false, Some("required")) => SmtpTls::Required,
        (false, Some("none")) => SmtpTls::None,
        (false, Some(other)) => return Err(MailConfigError::InvalidTls(other.to_string())),
    };
    let port = url.port().unwrap_or(match tls {
        SmtpTls::Wrapper => 465,
        SmtpTls::None => 25,
        SmtpTls::Required | SmtpTls::Opportunistic => 587,
    });

    let decode = |s: &str| {
        percent_decode(s).map_err(|()| {
            MailConfigError::InvalidParameter("SMTP_URL credentials are not valid UTF-8".into())
        })
    };
    let username = decode(url.username())?;
    let password = url.password().map(decode).transpose()?;
    let credentials = match (username.is_empty(), password) {
        (true, None) => None,
        (false, Some(password)) => Some(SmtpCredentials { username, password }),
        _ => return Err(MailConfigError::IncompleteCredentials("SMTP_URL")),
    };

    let path = url.path().trim_matches('/');
    let mut settings = SmtpSettings::new(host, port, tls);
    settings.credentials = credentials;
    settings.accept_invalid_certs = accept_invalid_certs;
    settings.hello_name = (!path.is_empty()).then(|| path.to_string());
    Ok(settings)
}

fn mailtrap(raw: &RawMailEnv) -> Result<Option<SmtpSettings>, MailConfigError> {
    let user = set(&raw.mailtrap_smtp_user).or(set(&raw.mailtrap_user));
    let pass = set(&raw.mailtrap_smtp_pass).or(set(&raw.mailtrap_pass));
    let host = match set(&raw.mailtrap_smtp_host) {
        Some(h) => h,
        None if user.is_some() || pass.is_some() => MAILTRAP_SANDBOX_HOST,
        None => return Ok(None),
    };
    let port = match set(&raw.mailtrap_smtp_port) {
        None => 2525,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| MailConfigError::InvalidPort(p.to_string()))?,
    };
    let credentials = match (user, pass) {
        (None, None) => None,
        (Some(u), Some(p)) => Some(SmtpCredentials {
            username: u.to_string(),
            password: p.to_string(),
        }),
        _ => {
            return Err(MailConfigError::IncompleteCredentials(
                "MAILTRAP_SMTP_USER/PASS",
            ));
        }
    };
    let mut settings = SmtpSettings::new(host, port, SmtpTls::Opportunistic);
    settings.credentials = credentials;
    Ok(Some(settings))
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Option<SmtpCredentials> {
        Some(SmtpCredentials {
            username: u.into(),
            password: p.into(),
        })
    }

    #[test]
    fn smtp_url_forms() {
        let s = parse_smtp_url("smtp://user:pa%40ss@mail.example.com:2525").unwrap();
        assert_eq!(s.host, "mail.example.com");
        assert_eq!(s.port, 2525);
        assert_eq!(s.tls, SmtpTls::Opportunistic);
        assert_eq!(s.credentials, creds("user", "pa@ss"));

        let s = parse_smtp_url("smtps://u%2Bx:p@smtp.example.com").unwrap();
        assert_eq!((s.port, s.tls), (465, SmtpTls::Wrapper));
        assert_eq!(s.credentials, creds("u+x", "p"));

        let s = parse_smtp_url("smtp://smtp.example.com?tls=required").unwrap();
        assert_eq!(
            (s.port, s.tls, s.credentials),
            (587, SmtpTls::Required, None)
        );

        let s = parse_smtp_url("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("127.0.0.1", 2525, SmtpTls::None)
        );
        assert_eq!(
            parse_smtp_url("smtp://localhost?tls=NONE").unwrap().port,
            25
        );

        let s =
            parse_smtp_url("smtp://[::1]:25/relay.example.com?accept_invalid_certs=true").unwrap();
        assert_eq!(s.host, "::1");
        assert_eq!(s.hello_name.as_deref(), Some("relay.example.com"));
        assert!(s.accept_invalid_certs);
    }

    #[test]
    fn smtp_url_errors() {
        assert!(matches!(
            parse_smtp_url("not a url"),
            Err(MailConfigError::InvalidUrl(_))
        ));
        assert_eq!(
            parse_smtp_url("http://x"),
            Err(MailConfigError::UnsupportedScheme("http".into()))
        );
        assert_eq!(
            parse_smtp_url("smtp://x?tls=maybe"),
            Err(MailConfigError::InvalidTls("maybe".into()))
        );
        assert_eq!(
            parse_smtp_url("smtp://x?tsl=required"),
            Err(MailConfigError::UnknownParameter("tsl".into()))
        );
        assert!(matches!(
            parse_smtp_url("smtps://x?tls=required"),
            Err(MailConfigError::InvalidParameter(_))
        ));
        assert!(matches!(
            parse_smtp_url("smtp://x?accept_invalid_certs=perhaps"),
            Err(MailConfigError::InvalidParameter(_))
        ));
        assert_eq!(
            parse_smtp_url("smtp://user@x"),
            Err(MailConfigError::IncompleteCredentials("SMTP_URL"))
        );
    }

    #[test]
    fn precedence_and_defaults() {
        let dir = Path::new("/data");
        let s = MailSettings::parse(&RawMailEnv::default(), dir).unwrap();
        assert_eq!(
            s.transport,
            MailTransportSettings::Outbox {
                dir: dir.join("outbox")
            }
        );
        assert_eq!(s.from.to_string(), "Support <support@localhost>");
        assert!(s.describe().contains("outbox"));

        let raw = RawMailEnv {
            smtp_url: Some("smtp://a:b@smtp.example.com".into()),
            mailtrap_smtp_host: Some("sandbox.smtp.mailtrap.io".into()),
            mail_from: Some("Help Desk <help@example.com>".into()),
            ..RawMailEnv::default()
        };
        let s = MailSettings::parse(&raw, dir).unwrap();
        let MailTransportSettings::Smtp(smtp) = &s.transport else {
            panic!()
        };
        assert_eq!(smtp.host, "smtp.example.com");
        assert_eq!(s.from.email.to_string(), "help@example.com");
        let d = s.describe();
        assert!(
            d.contains("smtp.example.com:587") && d.contains("authenticated"),
            "{d}"
        );
        assert!(!d.contains(":b@"));

        let blank = RawMailEnv {
            smtp_url: Some("   ".into()),
            mail_from: Some("".into()),
            ..RawMailEnv::default()
        };
        assert!(matches!(
            MailSettings::parse(&blank, dir).unwrap().transport,
            MailTransportSettings::Outbox { .. }
        ));
    }

    #[test]
    fn mailtrap_variables() {
        let dir = Path::new("/d");
        let raw = RawMailEnv {
            mailtrap_smtp_host: Some("sandbox.smtp.mailtrap.io".into()),
            mailtrap_smtp_port: Some("587".into()),
            mailtrap_smtp_user: Some("u1".into()),
            mailtrap_smtp_pass: Some("p1".into()),
            ..RawMailEnv::default()
        };
        let MailTransportSettings::Smtp(s) = MailSettings::parse(&raw, dir).unwrap().transport
        else {
            panic!()
        };
        assert_eq!((s.port, s.tls), (587, SmtpTls::Opportunistic));
        assert_eq!(s.credentials, creds("u1", "p1"));

        // the README-style names alone select the sandbox
        let raw = RawMailEnv {
            mailtrap_user: Some("u2".into()),
            mailtrap_pass: Some("p2".into()),
            ..RawMailEnv::default()
        };
        let MailTransportSettings::Smtp(s) = MailSettings::parse(&raw, dir).unwrap().transport
        else {
            panic!()
        };
        assert_eq!((s.host.as_str(), s.port), (MAILTRAP_SANDBOX_HOST, 2525));
        assert_eq!(s.credentials, creds("u2", "p2"));

        let bad_port = RawMailEnv {
            mailtrap_smtp_host: Some("h".into()),
            mailtrap_smtp_port: Some("99999".into()),
            ..RawMailEnv::default()
        };
        assert_eq!(
            MailSettings::parse(&bad_port, dir),
            Err(MailConfigError::InvalidPort("99999".into()))
        );
        let half = RawMailEnv {
            mailtrap_smtp_host: Some("h".into()),
            mailtrap_smtp_user: Some("u".into()),
            ..RawMailEnv::default()
        };
        assert!(matches!(
            MailSettings::parse(&half, dir),
            Err(MailConfigError::IncompleteCredentials(_))
        ));
    }

    #[test]
    fn from_lookup_and_redaction() {
        let raw = RawMailEnv::from_lookup(|k| match k {
            "SMTP_URL" => Some("smtp://u:SECRET@h".into()),
            "MAILTRAP_PASS" => Some("SECRET2".into()),
            "MAIL_FROM" => Some("x@example.com".into()),
            _ => None,
        });
        assert_eq!(raw.smtp_url.as_deref(), Some("smtp://u:SECRET@h"));
        assert_eq!(raw.mail_from.as_deref(), Some("x@example.com"));
        let dbg = format!("{raw:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        let s = parse_smtp_url("smtp://u:SECRET@h").unwrap();
        assert!(!format!("{s:?}").contains("SECRET"));
    }

    #[test]
    fn invalid_from() {
        let raw = RawMailEnv {
            mail_from: Some("Support <not-an-address>".into()),
            ..RawMailEnv::default()
        };
        assert!(matches!(
            MailSettings::parse(&raw, Path::new("/d")),
            Err(MailConfigError::InvalidFrom { .. })
        ));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc").unwrap(), "a b/c");
        assert_eq!(percent_decode("100%").unwrap(), "100%");
        assert_eq!(percent_decode("%zz").unwrap(), "%zz");
        assert!(percent_decode("%ff").is_err());
        assert_eq!(percent_decode("%é%4").unwrap(), "%é%4");
    }
}
