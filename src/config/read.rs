//! The readers of `Config`'s areas, one per group of variables, and the rules every variable
//! shares (trimming, blank as unset, one error line naming the variable).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    AccountConfig, AiConfig, AiProviderKind, ConfigError, DEFAULT_GEMINI_BASE_URL,
    DEFAULT_GEMINI_MODEL, LogFormat, S3Settings, Secret, SlaConfig, StoreUrl, err, parse_duration,
};
use crate::domain::user::{Email, Password};

/// The variable source, with the reading rules every variable shares.
pub(super) struct Env<'a> {
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    /// The trimmed value; blank counts as unset.
    pub(super) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value exactly as set (passwords may start or end with spaces).
    pub(super) fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// A number: `default` when unset, else one `valid` accepts; otherwise the error is the
    /// value followed by `expected` ("is not a positive integer").
    pub(super) fn number<T: std::str::FromStr + Copy>(
        &self,
        name: &'static str,
        default: T,
        valid: impl Fn(T) -> bool,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| valid(*n))
                .ok_or_else(|| err(name, format!("{raw:?} {expected}"))),
        }
    }

    /// A duration as [`parse_duration`] reads it, with the same rules as [`Env::number`].
    pub(super) fn duration(
        &self,
        name: &'static str,
        default: Duration,
        valid: impl Fn(Duration) -> bool,
        expected: &str,
    ) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse_duration(&raw)
                .filter(|d| valid(*d))
                .ok_or_else(|| err(name, format!("{raw:?} {expected}"))),
        }
    }
}

pub(super) fn host(env: &Env) -> Result<IpAddr, ConfigError> {
    match env.get("HOST") {
        None => Ok(IpAddr::from([127, 0, 0, 1])),
        Some(h) if h == "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
        Some(h) => h
            .parse()
            .map_err(|_| err("HOST", format!("{h:?} is not an IP address"))),
    }
}

pub(super) fn data_dir(env: &Env) -> PathBuf {
    // Vercel's file system is read-only outside /tmp.
    let default_data_dir = if env.get("VERCEL").is_some() {
        "/tmp/ticketing"
    } else {
        "./data"
    };
    PathBuf::from(
        env.get("DATA_DIR")
            .unwrap_or_else(|| default_data_dir.into()),
    )
}

pub(super) fn store(env: &Env, data_dir: &Path) -> Result<StoreUrl, ConfigError> {
    let mongo_db = env.get("MONGODB_DB").unwrap_or_else(|| "ticketing".into());
    let (url_var, url) = ["DATABASE_URL", "MONGO_URI", "MONGODB_URI"]
        .into_iter()
        .find_map(|name| env.get(name).map(|v| (name, v)))
        .unwrap_or(("DATABASE_URL", String::new()));
    if url.is_empty() {
        Ok(StoreUrl::Sqlite(data_dir.join("ticketing.db")))
    } else if url.starts_with("mongodb://") || url.starts_with("mongodb+srv://") {
        Ok(StoreUrl::Mongo {
            uri: Secret::new(url),
            database: mongo_db,
        })
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(err(url_var, "sqlite URL has no file path"));
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(path)))
    } else {
        Err(err(
            url_var,
            "expected sqlite://PATH, mongodb://… or mongodb+srv://…",
        ))
    }
}

pub(super) fn ai(env: &Env) -> Result<AiConfig, ConfigError> {
    let gemini_api_key = env.get("GEMINI_API_KEY").map(Secret::new);
    let provider = match env.get("AI_PROVIDER").as_deref() {
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
        gemini_model: env
            .get("GEMINI_MODEL")
            .unwrap_or_else(|| DEFAULT_GEMINI_MODEL.into()),
        gemini_base_url: http_url("GEMINI_BASE_URL", env.get("GEMINI_BASE_URL"))?
            .unwrap_or_else(|| DEFAULT_GEMINI_BASE_URL.into()),
        gemini_api_key,
        openai_base_url: http_url("AI_BASE_URL", env.get("AI_BASE_URL"))?,
        openai_api_key: env.get("AI_API_KEY").map(Secret::new),
        openai_model: env.get("AI_MODEL"),
    };
    match ai.provider {
        AiProviderKind::Gemini if ai.gemini_api_key.is_none() => {
            Err(err("GEMINI_API_KEY", "required when AI_PROVIDER=gemini"))
        }
        AiProviderKind::OpenAi if ai.openai_base_url.is_none() => {
            Err(err("AI_BASE_URL", "required when AI_PROVIDER=openai"))
        }
        AiProviderKind::OpenAi if ai.openai_model.is_none() => {
            Err(err("AI_MODEL", "required when AI_PROVIDER=openai"))
        }
        _ => Ok(ai),
    }
}

pub(super) fn mail(env: &Env, data_dir: &Path) -> Result<crate::mail::MailSettings, ConfigError> {
    let raw_mail = crate::mail::RawMailEnv::from_lookup(|name| env.get(name));
    crate::mail::MailSettings::parse(&raw_mail, data_dir).map_err(|e| {
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
    })
}

pub(super) fn inngest_env(env: &Env) -> Result<BTreeMap<String, String>, ConfigError> {
    // Exactly the variables the SDK reads: any of them set selects Inngest over the embedded
    // executor.
    let inngest_env: BTreeMap<String, String> = inngest_axum::settings::VARIABLES
        .iter()
        .filter_map(|name| env.get(name).map(|v| ((*name).to_owned(), v)))
        .collect();
    if !inngest_env.is_empty() {
        inngest_settings_check(&inngest_env)?;
    }
    Ok(inngest_env)
}

pub(super) fn cors_origins(env: &Env) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = env.get("CORS_ORIGINS") else {
        return Ok(Vec::new());
    };
    raw.split(',')
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
        .collect()
}

pub(super) fn log_format(env: &Env) -> Result<LogFormat, ConfigError> {
    match env.get("LOG_FORMAT").as_deref() {
        None | Some("text") | Some("pretty") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(err(
            "LOG_FORMAT",
            format!("{other:?} is not one of text, json"),
        )),
    }
}

pub(super) fn bootstrap_admin(env: &Env) -> Result<Option<(Email, Password)>, ConfigError> {
    match (
        env.get("BOOTSTRAP_ADMIN_EMAIL"),
        env.raw("BOOTSTRAP_ADMIN_PASSWORD"),
    ) {
        (None, None) => Ok(None),
        (Some(email), Some(password)) => Ok(Some((
            Email::parse(&email).map_err(|e| err("BOOTSTRAP_ADMIN_EMAIL", e.to_string()))?,
            Password::parse(&password)
                .map_err(|e| err("BOOTSTRAP_ADMIN_PASSWORD", e.to_string()))?,
        ))),
        (Some(_), None) => Err(err(
            "BOOTSTRAP_ADMIN_PASSWORD",
            "required with BOOTSTRAP_ADMIN_EMAIL",
        )),
        (None, Some(_)) => Err(err(
            "BOOTSTRAP_ADMIN_EMAIL",
            "required with BOOTSTRAP_ADMIN_PASSWORD",
        )),
    }
}

pub(super) fn sla(env: &Env) -> Result<SlaConfig, ConfigError> {
    let sla_var = |name: &'static str, hours: u64| {
        env.duration(
            name,
            Duration::from_secs(hours * 3600),
            |d| !d.is_zero(),
            "is not a duration like 4h, 30m or 90s",
        )
    };
    Ok(SlaConfig {
        low: sla_var("SLA_LOW", 72)?,
        medium: sla_var("SLA_MEDIUM", 24)?,
        high: sla_var("SLA_HIGH", 4)?,
    })
}

pub(super) fn accounts(env: &Env) -> Result<AccountConfig, ConfigError> {
    // Down to seconds, so a test can watch a link expire.
    let link_ttl = |name: &'static str, default: u64| {
        env.duration(
            name,
            Duration::from_secs(default),
            |d| !d.is_zero() && d <= Duration::from_secs(30 * 86_400),
            "is not a duration between 1s and 30d (e.g. 1h, 30m)",
        )
    };
    Ok(AccountConfig {
        require_email_verification: flag(
            "REQUIRE_EMAIL_VERIFICATION",
            env.get("REQUIRE_EMAIL_VERIFICATION"),
        )?,
        password_reset_ttl: link_ttl("PASSWORD_RESET_TTL", 3600)?,
        email_verification_ttl: link_ttl("EMAIL_VERIFICATION_TTL", 24 * 3600)?,
    })
}

pub(super) fn s3_settings(url: &str, env: &Env) -> Result<S3Settings, ConfigError> {
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
    let access_key_id = env.get("AWS_ACCESS_KEY_ID");
    let secret_access_key = env.get("AWS_SECRET_ACCESS_KEY").map(Secret::new);
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
        region: env
            .get("AWS_REGION")
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned()),
        endpoint: http_url("AWS_ENDPOINT_URL", env.get("AWS_ENDPOINT_URL"))?,
        access_key_id,
        secret_access_key,
        session_token: env.get("AWS_SESSION_TOKEN").map(Secret::new),
    })
}

pub(super) fn flag(name: &'static str, raw: Option<String>) -> Result<bool, ConfigError> {
    match raw.as_deref() {
        None | Some("0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(other) => Err(err(
            name,
            format!("{other:?} is not a boolean (true/false)"),
        )),
    }
}

pub(super) fn http_url(
    name: &'static str,
    raw: Option<String>,
) -> Result<Option<String>, ConfigError> {
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
