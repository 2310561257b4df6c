//! Environment -> typed `Config`, read once at start. A bad value stops the process with one
//! line naming the variable. Nothing else in the crate reads the environment.

mod read;

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

    /// Builds the config from any variable source; tests pass a map. Areas are read in a fixed
    /// order, so with several bad values the same one is always reported.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = read::Env { lookup: &lookup };
        let host = read::host(&env)?;
        let port: u16 = env.number("PORT", 3000, |_| true, "is not a port number (0-65535)")?;
        let data_dir = read::data_dir(&env);
        let store = read::store(&env, &data_dir)?;
        let jwt_secret = match env.get("JWT_SECRET") {
            Some(s) if s.len() < 32 => return Err(err("JWT_SECRET", "must be at least 32 bytes")),
            other => other.map(Secret::new),
        };
        let jwt_ttl = env.duration(
            "JWT_TTL",
            Duration::from_secs(24 * 3600),
            |d| d >= Duration::from_secs(60) && d <= Duration::from_secs(90 * 24 * 3600),
            "is not a duration between 1m and 90d (e.g. 24h, 30m)",
        )?;
        let ai = read::ai(&env)?;
        let mail = read::mail(&env, &data_dir)?;
        let app_url = read::http_url("APP_URL", env.get("APP_URL"))?
            .unwrap_or_else(|| format!("http://{host}:{port}"))
            .trim_end_matches('/')
            .to_owned();
        let inngest_env = read::inngest_env(&env)?;
        let cors_origins = read::cors_origins(&env)?;
        let log_format = read::log_format(&env)?;
        let bootstrap_admin = read::bootstrap_admin(&env)?;
        let auth_rate_limit_per_min = env.number(
            "AUTH_RATE_LIMIT_PER_MIN",
            30,
            |n| n > 0,
            "is not a positive integer",
        )?;
        let sla = read::sla(&env)?;
        let ai_concurrency = env.number(
            "AI_CONCURRENCY",
            4,
            |n| (1..=1000).contains(&n),
            "is not an integer from 1 to 1000",
        )?;
        let accounts = read::accounts(&env)?;
        let runs_retention = env.duration(
            "RUNS_RETENTION",
            Duration::from_secs(30 * 86_400),
            |d| !d.is_zero(),
            "is not a duration like 30d, 12h or 90s",
        )?;
        let attachment_max_bytes = env.number(
            "ATTACHMENT_MAX_BYTES",
            DEFAULT_ATTACHMENT_MAX_BYTES,
            |n| n > 0,
            "is not a positive number of bytes",
        )?;
        let attachments_s3 = match env.get("ATTACHMENTS_URL") {
            None => None,
            Some(url) => Some(read::s3_settings(&url, &env)?),
        };

        Ok(Config {
            attachment_max_bytes,
            attachments_s3,
            accounts,
            runs_retention,
            metrics_token: env.get("METRICS_TOKEN").map(Secret::new),
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
            trust_proxy: read::flag("TRUST_PROXY", env.get("TRUST_PROXY"))?,
            on_vercel: env.get("VERCEL").is_some(),
        })
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
