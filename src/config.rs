//! Environment -> typed `Config`, read once at start. A bad value stops the process with one
//! line naming the variable. Nothing else in the crate reads the environment.

use crate::domain::user::{Email, Password};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Mongo { uri: Secret, database: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AiProviderKind {
    Gemini,
    OpenAi,
    Rules,
}

#[derive(Clone, Debug)]
pub struct AiConfig {
    pub provider: AiProviderKind,
    pub gemini_api_key: Option<Secret>,
    pub gemini_model: String,
    pub gemini_base_url: String,
    pub openai_base_url: Option<String>,
    pub openai_api_key: Option<Secret>,
    pub openai_model: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    pub store: StoreUrl,
    /// `None`: generated once into `DATA_DIR` at start.
    pub jwt_secret: Option<Secret>,
    pub jwt_ttl: Duration,
    pub ai: AiConfig,
    pub mail: crate::mail::MailSettings,
    pub app_url: String,
    /// Every `INNGEST_*` variable that was set, for the SDK to resolve as the official SDKs do.
    pub inngest_env: BTreeMap<String, String>,
    pub cors_origins: Vec<String>,
    pub log_format: LogFormat,
    pub bootstrap_admin: Option<(Email, Password)>,
    /// Login and register attempts allowed per client per minute.
    pub auth_rate_limit_per_min: u32,
    /// Trust `X-Forwarded-For` for the client address even when a peer address exists.
    pub trust_proxy: bool,
    /// Set on Vercel; changes defaults that make no sense there.
    pub on_vercel: bool,
    /// How long a ticket of each priority may stay unresolved before it is escalated.
    pub sla: SlaConfig,
    /// Most triage calls to the AI provider running at once, across all tickets.
    pub ai_concurrency: u32,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    /// Largest attachment accepted, in bytes.
    pub attachment_max_bytes: u64,
    /// `ATTACHMENTS_URL=s3://bucket/prefix`: attachments in that bucket instead of beside the
    /// store.
    pub attachments_s3: Option<S3Settings>,
    pub accounts: AccountConfig,
    /// How long the embedded executor keeps finished runs and the event ids it de-duplicates by.
    pub runs_retention: Duration,
}

/// Account recovery and verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountConfig {
    /// Sign-up confirms the address by mail before the account may open tickets.
    pub require_email_verification: bool,
    /// How long a password-reset link works.
    pub password_reset_ttl: Duration,
    /// How long an address-verification link works.
    pub email_verification_ttl: Duration,
}

/// An S3-compatible bucket, with the standard `AWS_*` variables. Without keys, the instance's
/// own credentials are used (instance metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// Without leading or trailing slashes; may be empty.
    pub prefix: String,
    pub region: String,
    /// `AWS_ENDPOINT_URL`, for S3-compatible services (MinIO, R2, …); plain http is allowed
    /// only when the URL says so.
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
}

pub const DEFAULT_ATTACHMENT_MAX_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlaConfig {
    pub low: Duration,
    pub medium: Duration,
    pub high: Duration,
}

impl SlaConfig {
    pub fn for_priority(&self, priority: crate::domain::ticket::Priority) -> Duration {
        use crate::domain::ticket::Priority;
        match priority {
            Priority::Low => self.low,
            Priority::Medium => self.medium,
            Priority::High => self.high,
        }
    }
}

pub const DEFAULT_GEMINI_MODEL: &str = "gemini-3.5-flash-lite";
pub const DEFAULT_GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The `INNGEST_*` names the official SDKs read.
pub const INNGEST_VARS: &[&str] = &[
    "INNGEST_DEV",
    "INNGEST_BASE_URL",
    "INNGEST_API_BASE_URL",
    "INNGEST_EVENT_API_BASE_URL",
    "INNGEST_EVENT_KEY",
    "INNGEST_SIGNING_KEY",
    "INNGEST_SIGNING_KEY_FALLBACK",
    "INNGEST_SERVE_ORIGIN",
    "INNGEST_SERVE_HOST",
    "INNGEST_SERVE_PATH",
    "INNGEST_ENV",
    "INNGEST_LOG_LEVEL",
    "INNGEST_STREAMING",
    "INNGEST_ALLOW_IN_BAND_SYNC",
];

impl AiConfig {
    /// The provider the service triages with.
    pub fn provider_settings(&self) -> crate::ai::ProviderSettings {
        use crate::ai::ProviderSettings;
        match self.provider {
            AiProviderKind::Gemini => ProviderSettings::Gemini {
                api_key: self
                    .gemini_api_key
                    .as_ref()
                    .map(|k| k.expose().to_owned())
                    .unwrap_or_default(),
                model: self.gemini_model.clone(),
                base_url: self.gemini_base_url.clone(),
            },
            AiProviderKind::OpenAi => ProviderSettings::OpenAi {
                base_url: self.openai_base_url.clone().unwrap_or_default(),
                api_key: self.openai_api_key.as_ref().map(|k| k.expose().to_owned()),
                model: self.openai_model.clone().unwrap_or_default(),
            },
            AiProviderKind::Rules => ProviderSettings::Rules,
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the config from any variable source; tests pass a map.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let host: IpAddr = match get("HOST") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(h) if h == "localhost" => IpAddr::from([127, 0, 0, 1]),
            Some(h) => h
                .parse()
                .map_err(|_| err("HOST", format!("{h:?} is not an IP address")))?,
        };
        let port: u16 = match get("PORT") {
            None => 3000,
            Some(p) => p
                .parse()
                .map_err(|_| err("PORT", format!("{p:?} is not a port number (0-65535)")))?,
        };
        // Vercel's file system is read-only outside /tmp.
        let default_data_dir = if get("VERCEL").is_some() {
            "/tmp/ticketing"
        } else {
            "./data"
        };
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| default_data_dir.into()));

        let mongo_db = get("MONGODB_DB").unwrap_or_else(|| "ticketing".into());
        let (url_var, url) = [
            ("DATABASE_URL", get("DATABASE_URL")),
            ("MONGO_URI", get("MONGO_URI")),
            ("MONGODB_URI", get("MONGODB_URI")),
        ]
        .into_iter()
        .find_map(|(name, value)| value.map(|v| (name, v)))
        .unwrap_or(("DATABASE_URL", String::new()));
        let store = if url.is_empty() {
            StoreUrl::Sqlite(data_dir.join("ticketing.db"))
        } else if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
            StoreUrl::Mongo {
                uri: Secret::new(url),
                database: mongo_db,
            }
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(err(url_var, "sqlite URL has no file path"));
            }
            StoreUrl::Sqlite(PathBuf::from(path))
        } else {
            return Err(err(
                url_var,
                "expected sqlite://PATH, mongodb://… or mongodb+srv://…",
            ));
        };

        let jwt_secret = match get("JWT_SECRET") {
            Some(s) if s.len() < 32 => return Err(err("JWT_SECRET", "must be at least 32 bytes")),
            other => other.map(Secret::new),
        };
        let jwt_ttl = match get("JWT_TTL") {
            None => Duration::from_secs(24 * 3600),
            Some(raw) => parse_duration(&raw)
                .filter(|d| {
                    *d >= Duration::from_secs(60) && *d <= Duration::from_secs(90 * 24 * 3600)
                })
                .ok_or_else(|| {
                    err(
                        "JWT_TTL",
                        format!("{raw:?} is not a duration between 1m and 90d (e.g. 24h, 30m)"),
                    )
                })?,
        };

        let gemini_api_key = get("GEMINI_API_KEY").map(Secret::new);
        let provider = match get("AI_PROVIDER").as_deref() {
            None if gemini_api_key.is_some() => AiProviderKind::Gemini,
            None => AiProviderKind::Rules,
            Some("gemini") => AiProviderKind::Gemini,
            Some("openai") => AiProviderKind::OpenAi,
            Some("rules") => AiProviderKind::Rules,
            Some(other) => {
                return Err(err(
                    "AI_PROVIDER",
                    format!("{other:?} is not one of gemini, openai, rules"),
                ));
            }
        };
        let ai = AiConfig {
            provider,
            gemini_model: get("GEMINI_MODEL").unwrap_or_else(|| DEFAULT_GEMINI_MODEL.into()),
            gemini_base_url: http_url("GEMINI_BASE_URL", get("GEMINI_BASE_URL"))?
                .unwrap_or_else(|| DEFAULT_GEMINI_BASE_URL.into()),
            gemini_api_key,
            openai_base_url: http_url("AI_BASE_URL", get("AI_BASE_URL"))?,
            openai_api_key: get("AI_API_KEY").map(Secret::new),
            openai_model: get("AI_MODEL"),
        };
        match ai.provider {
            AiProviderKind::Gemini if ai.gemini_api_key.is_none() => {
                return Err(err("GEMINI_API_KEY", "required when AI_PROVIDER=gemini"));
            }
            AiProviderKind::OpenAi if ai.openai_base_url.is_none() => {
                return Err(err("AI_BASE_URL", "required when AI_PROVIDER=openai"));
            }
            AiProviderKind::OpenAi if ai.openai_model.is_none() => {
                return Err(err("AI_MODEL", "required when AI_PROVIDER=openai"));
            }
            _ => {}
        }

        let raw_mail = crate::mail::RawMailEnv::from_lookup(get);
        let mail = crate::mail::MailSettings::parse(&raw_mail, &data_dir).map_err(|e| {
            use crate::mail::MailConfigError as M;
            let variable = match &e {
                M::InvalidPort(_) => "MAILTRAP_SMTP_PORT",
                M::InvalidFrom { .. } => "MAIL_FROM",
                M::IncompleteCredentials(name) => name,
                _ if raw_mail.smtp_url.is_some() => "SMTP_URL",
                _ => "MAILTRAP_SMTP_HOST",
            };
            let message = e.to_string();
            let message = message
                .strip_prefix(variable)
                .map(str::trim_start)
                .unwrap_or(&message)
                .to_owned();
            err(variable, message)
        })?;

        let app_url = http_url("APP_URL", get("APP_URL"))?
            .unwrap_or_else(|| format!("http://{host}:{port}"))
            .trim_end_matches('/')
            .to_owned();

        let inngest_env: BTreeMap<String, String> = INNGEST_VARS
            .iter()
            .filter_map(|name| get(name).map(|v| ((*name).to_owned(), v)))
            .collect();

        if !inngest_env.is_empty() {
            inngest_settings_check(&inngest_env)?;
        }

        let cors_origins = match get("CORS_ORIGINS") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| {
                    if o == "*" || url::Url::parse(o).is_ok_and(|u| u.has_host()) {
                        Ok(o.trim_end_matches('/').to_owned())
                    } else {
                        Err(err(
                            "CORS_ORIGINS",
                            format!("{o:?} is not an origin like https://app.example.com"),
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
        };

        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") | Some("pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("{other:?} is not one of text, json"),
                ));
            }
        };

        let bootstrap_admin = match (
            get("BOOTSTRAP_ADMIN_EMAIL"),
            lookup("BOOTSTRAP_ADMIN_PASSWORD"),
        ) {
            (None, None) => None,
            (Some(email), Some(password)) => Some((
                Email::parse(&email).map_err(|e| err("BOOTSTRAP_ADMIN_EMAIL", e.to_string()))?,
                Password::parse(&password)
                    .map_err(|e| err("BOOTSTRAP_ADMIN_PASSWORD", e.to_string()))?,
            )),
            (Some(_), None) => {
                return Err(err(
                    "BOOTSTRAP_ADMIN_PASSWORD",
                    "required with BOOTSTRAP_ADMIN_EMAIL",
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    "BOOTSTRAP_ADMIN_EMAIL",
                    "required with BOOTSTRAP_ADMIN_PASSWORD",
                ));
            }
        };

        let auth_rate_limit_per_min = match get("AUTH_RATE_LIMIT_PER_MIN") {
            None => 30,
            Some(raw) => raw.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                err(
                    "AUTH_RATE_LIMIT_PER_MIN",
                    format!("{raw:?} is not a positive integer"),
                )
            })?,
        };

        let sla_var = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_secs(default)),
                Some(raw) => parse_duration(&raw)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        err(
                            name,
                            format!("{raw:?} is not a duration like 4h, 30m or 90s"),
                        )
                    }),
            }
        };
        let sla = SlaConfig {
            low: sla_var("SLA_LOW", 72 * 3600)?,
            medium: sla_var("SLA_MEDIUM", 24 * 3600)?,
            high: sla_var("SLA_HIGH", 4 * 3600)?,
        };
        let ai_concurrency = match get("AI_CONCURRENCY") {
            None => 4,
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    err(
                        "AI_CONCURRENCY",
                        format!("{raw:?} is not an integer from 1 to 1000"),
                    )
                })?,
        };

        // Down to seconds, so a test can watch a link expire.
        let link_ttl = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_secs(default)),
                Some(raw) => parse_duration(&raw)
                    .filter(|d| !d.is_zero() && *d <= Duration::from_secs(30 * 86_400))
                    .ok_or_else(|| {
                        err(
                            name,
                            format!("{raw:?} is not a duration between 1s and 30d (e.g. 1h, 30m)"),
                        )
                    }),
            }
        };
        let accounts = AccountConfig {
            require_email_verification: flag(
                "REQUIRE_EMAIL_VERIFICATION",
                get("REQUIRE_EMAIL_VERIFICATION"),
            )?,
            password_reset_ttl: link_ttl("PASSWORD_RESET_TTL", 3600)?,
            email_verification_ttl: link_ttl("EMAIL_VERIFICATION_TTL", 24 * 3600)?,
        };

        let runs_retention = match get("RUNS_RETENTION") {
            None => Duration::from_secs(30 * 86_400),
            Some(raw) => parse_duration(&raw)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    err(
                        "RUNS_RETENTION",
                        format!("{raw:?} is not a duration like 30d, 12h or 90s"),
                    )
                })?,
        };

        let attachment_max_bytes = match get("ATTACHMENT_MAX_BYTES") {
            None => DEFAULT_ATTACHMENT_MAX_BYTES,
            Some(raw) => raw.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                err(
                    "ATTACHMENT_MAX_BYTES",
                    format!("{raw:?} is not a positive number of bytes"),
                )
            })?,
        };
        let attachments_s3 = match get("ATTACHMENTS_URL") {
            None => None,
            Some(url) => Some(s3_settings(&url, &get)?),
        };

        Ok(Config {
            attachment_max_bytes,
            attachments_s3,
            accounts,
            runs_retention,
            metrics_token: get("METRICS_TOKEN").map(Secret::new),
            sla,
            ai_concurrency,
            host,
            port,
            data_dir,
            store,
            jwt_secret,
            jwt_ttl,
            ai,
            mail,
            app_url,
            inngest_env,
            cors_origins,
            log_format,
            bootstrap_admin,
            auth_rate_limit_per_min,
            trust_proxy: flag("TRUST_PROXY", get("TRUST_PROXY"))?,
            on_vercel: get("VERCEL").is_some(),
        })
    }
}

fn s3_settings(
    url: &str,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<S3Settings, ConfigError> {
    let bad = || {
        err(
            "ATTACHMENTS_URL",
            format!("{url:?} is not an S3 URL like s3://bucket or s3://bucket/prefix"),
        )
    };
    let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(bad());
    }
    let prefix = prefix.trim_matches('/').to_owned();
    if !prefix.is_empty()
        && prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(bad());
    }
    let access_key_id = get("AWS_ACCESS_KEY_ID");
    let secret_access_key = get("AWS_SECRET_ACCESS_KEY").map(Secret::new);
    match (&access_key_id, &secret_access_key) {
        (Some(_), None) => {
            return Err(err(
                "AWS_SECRET_ACCESS_KEY",
                "required with AWS_ACCESS_KEY_ID",
            ));
        }
        (None, Some(_)) => {
            return Err(err(
                "AWS_ACCESS_KEY_ID",
                "required with AWS_SECRET_ACCESS_KEY",
            ));
        }
        _ => {}
    }
    Ok(S3Settings {
        bucket: bucket.to_owned(),
        prefix,
        region: get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned()),
        endpoint: http_url("AWS_ENDPOINT_URL", get("AWS_ENDPOINT_URL"))?,
        access_key_id,
        secret_access_key,
        session_token: get("AWS_SESSION_TOKEN").map(Secret::new),
    })
}

fn flag(name: &'static str, raw: Option<String>) -> Result<bool, ConfigError> {
    match raw.as_deref() {
        None | Some("0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(other) => Err(err(
            name,
            format!("{other:?} is not a boolean (true/false)"),
        )),
    }
}

fn http_url(name: &'static str, raw: Option<String>) -> Result<Option<String>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(u) => match url::Url::parse(&u) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
                Ok(Some(u.trim_end_matches('/').to_owned()))
            }
            _ => Err(err(name, format!("{u:?} is not an http(s) URL"))),
        },
    }
}

/// `90`, `90s`, `30m`, `24h`, `7d`.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Any `INNGEST_*` variable selects Inngest (dev server or cloud) over the embedded executor; a
/// setup that cannot work there stops the start, naming the variable to set.
fn inngest_settings_check(env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    use crate::inngest::{InngestSettings, SettingsError};
    let settings = InngestSettings::from_lookup(|name| env.get(name).cloned());
    let set = || env.keys().cloned().collect::<Vec<_>>().join(", ");
    match settings.validate() {
        Ok(()) => Ok(()),
        Err(SettingsError::MissingSigningKey) => Err(err(
            "INNGEST_SIGNING_KEY",
            format!(
                "required for Inngest Cloud, selected because {} is set; set INNGEST_DEV=1 for a local dev server, or unset every INNGEST_* variable for the embedded executor",
                set()
            ),
        )),
        Err(SettingsError::MissingEventKey) => Err(err(
            "INNGEST_EVENT_KEY",
            "required with INNGEST_SIGNING_KEY: Inngest Cloud accepts events only with an event key",
        )),
        Err(SettingsError::FallbackWithoutPrimary) => Err(err(
            "INNGEST_SIGNING_KEY",
            "required with INNGEST_SIGNING_KEY_FALLBACK",
        )),
        Err(SettingsError::InvalidUrl { var, value }) => {
            Err(err(var, format!("{value:?} is not a valid URL")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_nothing() {
        let c = config(&[]).unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(
            c.store,
            StoreUrl::Sqlite(PathBuf::from("./data/ticketing.db"))
        );
        assert_eq!(c.ai.provider, AiProviderKind::Rules);
        assert_eq!(c.app_url, "http://127.0.0.1:3000");
        assert_eq!(c.jwt_ttl, Duration::from_secs(86_400));
        assert!(c.inngest_env.is_empty());
        assert_eq!(
            c.accounts,
            AccountConfig {
                require_email_verification: false,
                password_reset_ttl: Duration::from_secs(3600),
                email_verification_ttl: Duration::from_secs(86_400),
            }
        );
        assert_eq!(c.runs_retention, Duration::from_secs(30 * 86_400));
        let c = config(&[("RUNS_RETENTION", "2s")]).unwrap();
        assert_eq!(c.runs_retention, Duration::from_secs(2));
    }

    #[test]
    fn half_configured_inngest_names_the_missing_variable() {
        let missing = |vars: &[(&str, &str)]| config(vars).unwrap_err().variable;
        assert_eq!(
            missing(&[("INNGEST_SIGNING_KEY", "signkey-prod-00ff")]),
            "INNGEST_EVENT_KEY"
        );
        assert_eq!(
            missing(&[("INNGEST_EVENT_KEY", "key")]),
            "INNGEST_SIGNING_KEY"
        );
        assert_eq!(
            missing(&[("INNGEST_DEV", "1"), ("INNGEST_BASE_URL", "not a url")]),
            "INNGEST_BASE_URL"
        );
        assert!(config(&[("INNGEST_DEV", "1")]).is_ok());
        assert!(
            config(&[
                ("INNGEST_SIGNING_KEY", "signkey-prod-00ff"),
                ("INNGEST_EVENT_KEY", "key")
            ])
            .is_ok()
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (vars, variable) in [
            (vec![("PORT", "eighty")], "PORT"),
            (vec![("HOST", "my host")], "HOST"),
            (vec![("JWT_SECRET", "short")], "JWT_SECRET"),
            (vec![("JWT_TTL", "forever")], "JWT_TTL"),
            (vec![("AI_PROVIDER", "skynet")], "AI_PROVIDER"),
            (vec![("AI_PROVIDER", "gemini")], "GEMINI_API_KEY"),
            (vec![("AI_PROVIDER", "openai")], "AI_BASE_URL"),
            (vec![("DATABASE_URL", "postgres://x")], "DATABASE_URL"),
            (vec![("MONGO_URI", "redis://x")], "MONGO_URI"),
            (vec![("SMTP_URL", "http://x")], "SMTP_URL"),
            (vec![("LOG_FORMAT", "xml")], "LOG_FORMAT"),
            (
                vec![("BOOTSTRAP_ADMIN_EMAIL", "a@b.io")],
                "BOOTSTRAP_ADMIN_PASSWORD",
            ),
            (
                vec![
                    ("BOOTSTRAP_ADMIN_EMAIL", "nope"),
                    ("BOOTSTRAP_ADMIN_PASSWORD", "longenough"),
                ],
                "BOOTSTRAP_ADMIN_EMAIL",
            ),
            (vec![("CORS_ORIGINS", "not an origin")], "CORS_ORIGINS"),
            (vec![("SLA_HIGH", "0")], "SLA_HIGH"),
            (vec![("AI_CONCURRENCY", "0")], "AI_CONCURRENCY"),
            (
                vec![("ATTACHMENT_MAX_BYTES", "10MB")],
                "ATTACHMENT_MAX_BYTES",
            ),
            (vec![("ATTACHMENT_MAX_BYTES", "0")], "ATTACHMENT_MAX_BYTES"),
            (vec![("ATTACHMENTS_URL", "/var/files")], "ATTACHMENTS_URL"),
            (
                vec![("ATTACHMENTS_URL", "s3://Bad_Bucket")],
                "ATTACHMENTS_URL",
            ),
            (
                vec![("ATTACHMENTS_URL", "s3://bucket/a/../b")],
                "ATTACHMENTS_URL",
            ),
            (
                vec![
                    ("ATTACHMENTS_URL", "s3://bucket"),
                    ("AWS_ACCESS_KEY_ID", "k"),
                ],
                "AWS_SECRET_ACCESS_KEY",
            ),
            (
                vec![
                    ("ATTACHMENTS_URL", "s3://bucket"),
                    ("AWS_ENDPOINT_URL", "ftp://x"),
                ],
                "AWS_ENDPOINT_URL",
            ),
            (
                vec![("REQUIRE_EMAIL_VERIFICATION", "maybe")],
                "REQUIRE_EMAIL_VERIFICATION",
            ),
            (vec![("PASSWORD_RESET_TTL", "0")], "PASSWORD_RESET_TTL"),
            (vec![("PASSWORD_RESET_TTL", "31d")], "PASSWORD_RESET_TTL"),
            (
                vec![("EMAIL_VERIFICATION_TTL", "soon")],
                "EMAIL_VERIFICATION_TTL",
            ),
            (vec![("RUNS_RETENTION", "0")], "RUNS_RETENTION"),
            (vec![("RUNS_RETENTION", "a month")], "RUNS_RETENTION"),
        ] {
            let e = config(&vars).unwrap_err();
            assert_eq!(e.variable, variable, "{vars:?} -> {e}");
            assert!(e.to_string().starts_with(variable));
        }
    }

    #[test]
    fn mongo_urls_select_mongo() {
        let c = config(&[
            ("MONGODB_URI", "mongodb+srv://u:p@cluster.example.net"),
            ("MONGODB_DB", "prod"),
        ])
        .unwrap();
        assert!(matches!(c.store, StoreUrl::Mongo { ref database, .. } if database == "prod"));
        assert!(!format!("{c:?}").contains("u:p@"), "secrets must not print");
    }

    #[test]
    fn gemini_is_chosen_by_its_key() {
        let c = config(&[("GEMINI_API_KEY", "k")]).unwrap();
        assert_eq!(c.ai.provider, AiProviderKind::Gemini);
        assert_eq!(c.ai.gemini_model, DEFAULT_GEMINI_MODEL);
    }

    #[test]
    fn attachments_default_beside_the_store_and_an_s3_url_selects_a_bucket() {
        let c = config(&[]).unwrap();
        assert_eq!(c.attachment_max_bytes, 10 * 1024 * 1024);
        assert_eq!(c.attachments_s3, None);
        let c = config(&[
            ("ATTACHMENT_MAX_BYTES", "2048"),
            ("ATTACHMENTS_URL", "s3://files.example/tickets/prod/"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
        ])
        .unwrap();
        assert_eq!(c.attachment_max_bytes, 2048);
        let s3 = c.attachments_s3.clone().unwrap();
        assert_eq!(s3.bucket, "files.example");
        assert_eq!(s3.prefix, "tickets/prod");
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(
            !format!("{c:?}").contains("very-secret"),
            "secrets must not print"
        );
        let bare = config(&[
            ("ATTACHMENTS_URL", "s3://bucket"),
            ("AWS_REGION", "eu-west-3"),
        ])
        .unwrap()
        .attachments_s3
        .unwrap();
        assert_eq!(
            (bare.prefix.as_str(), bare.region.as_str()),
            ("", "eu-west-3")
        );
        assert_eq!(bare.access_key_id, None);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("h"), None);
    }
}
