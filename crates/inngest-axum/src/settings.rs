//! Resolution of every `INNGEST_*` variable, as the official JS SDK (v4) does it.
//!
//! The SDK never reads the process environment itself: [`InngestSettings::from_lookup`] takes a
//! lookup function (the application passes `std::env::var`), so tests stay pure.

use std::fmt;

use serde::Serialize;

use super::signature::SigningKey;

/// Default API origin in cloud mode.
pub const DEFAULT_API_ORIGIN: &str = "https://api.inngest.com/";
/// Default event API origin in cloud mode.
pub const DEFAULT_EVENT_API_ORIGIN: &str = "https://inn.gs/";
/// Default dev-server origin. The JS SDK says `localhost`, which may resolve to IPv6 while the
/// dev server listens on IPv4, so the Go SDK's `127.0.0.1` is used.
pub const DEFAULT_DEV_SERVER_ORIGIN: &str = "http://127.0.0.1:8288/";
/// Event key used in dev mode when none is configured (the dev server accepts any key).
pub const DUMMY_EVENT_KEY: &str = "NO_EVENT_KEY_SET";
/// Where the serve endpoint is mounted unless told otherwise.
pub const DEFAULT_SERVE_PATH: &str = "/api/inngest";

/// Every variable this module reads, for documentation, for [`InngestSettings::is_explicit`],
/// and for applications that gather them from their own configuration.
pub const VARIABLES: &[&str] = &[
    "INNGEST_DEV",
    "INNGEST_BASE_URL",
    "INNGEST_API_BASE_URL",
    "INNGEST_EVENT_API_BASE_URL",
    "INNGEST_EVENT_KEY",
    "INNGEST_SIGNING_KEY",
    "INNGEST_SIGNING_KEY_FALLBACK",
    "INNGEST_ENV",
    "INNGEST_SERVE_ORIGIN",
    "INNGEST_SERVE_HOST",
    "INNGEST_SERVE_PATH",
    "INNGEST_STREAMING",
    "INNGEST_ALLOW_IN_BAND_SYNC",
    "INNGEST_ENABLE_UNAUTHED_SYNC",
];

/// Dev mode talks to a local dev server and skips signatures; cloud mode requires them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A local dev server: no signing, events to the dev server.
    Dev,
    /// Inngest Cloud (or self-hosted): requests signed and verified.
    Cloud,
}

impl Mode {
    /// `dev` or `cloud`, as in the `X-Inngest-Server-Kind` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dev => "dev",
            Mode::Cloud => "cloud",
        }
    }
}

/// An event key; its `Debug` output hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct EventKey(String);

impl EventKey {
    /// Wraps an event key as configured.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key exactly as configured.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EventKey(***)")
    }
}

/// A configuration that cannot work, reported by [`InngestSettings::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "cloud mode needs INNGEST_SIGNING_KEY (set INNGEST_DEV=1 to use a local dev server instead)"
    )]
    /// Cloud mode with no signing key.
    MissingSigningKey,
    #[error("cloud mode needs INNGEST_EVENT_KEY to send events (INNGEST_SIGNING_KEY is set)")]
    /// Cloud mode with a signing key but no event key.
    MissingEventKey,
    #[error("INNGEST_SIGNING_KEY_FALLBACK is set without INNGEST_SIGNING_KEY")]
    /// A fallback signing key without a primary one.
    FallbackWithoutPrimary,
    #[error("{var} is not a valid URL: {value:?}")]
    /// A URL variable does not hold a valid URL.
    InvalidUrl {
        /// The variable that holds it.
        var: &'static str,
        /// The value given.
        value: String,
    },
}

/// Resolved SDK settings. Build with [`InngestSettings::from_lookup`], [`InngestSettings::dev`]
/// or [`InngestSettings::cloud`], then adjust with the `with_*` methods.
#[derive(Debug, Clone)]
pub struct InngestSettings {
    mode: Mode,
    signing_key: Option<SigningKey>,
    signing_key_fallback: Option<SigningKey>,
    event_key: Option<EventKey>,
    /// `(variable it came from, value)`; `None` means the mode's default.
    api_base_url: Option<(&'static str, String)>,
    event_api_base_url: Option<(&'static str, String)>,
    dev_server_url: Option<String>,
    env: Option<String>,
    serve_origin: Option<String>,
    serve_path: Option<String>,
    streaming: bool,
    allow_in_band_sync: bool,
    enable_unauthed_sync: bool,
    platform: Option<&'static str>,
    app_version: Option<String>,
    explicit: bool,
}

/// JS `parseAsBoolean`: `true`/`1` and `false`/`0` (trimmed, any case); anything else is unknown.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// JS `normalizeUrl`: prepend `http://` when there is no scheme.
fn normalize_url(value: &str) -> String {
    if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    }
}

impl InngestSettings {
    fn base(mode: Mode) -> Self {
        Self {
            mode,
            signing_key: None,
            signing_key_fallback: None,
            event_key: None,
            api_base_url: None,
            event_api_base_url: None,
            dev_server_url: None,
            env: None,
            serve_origin: None,
            serve_path: None,
            streaming: false,
            allow_in_band_sync: true,
            enable_unauthed_sync: true,
            platform: None,
            app_version: None,
            explicit: false,
        }
    }

    /// Dev mode against the default dev server, no keys.
    pub fn dev() -> Self {
        Self::base(Mode::Dev)
    }

    /// Cloud mode with a signing key and an event key.
    pub fn cloud(signing_key: impl Into<String>, event_key: impl Into<String>) -> Self {
        Self::base(Mode::Cloud)
            .with_signing_key(signing_key)
            .with_event_key(event_key)
    }

    /// Resolves every variable through `lookup` (empty values count as unset, as in JS).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let first = |names: &[&'static str]| {
            names
                .iter()
                .find_map(|name| get(name).map(|value| (*name, value)))
        };

        let dev_raw = get("INNGEST_DEV");
        let dev_bool = dev_raw.as_deref().and_then(parse_bool);
        let dev_server_url = match (&dev_raw, dev_bool) {
            (Some(raw), None) if !raw.trim().eq_ignore_ascii_case("undefined") => {
                let normalized = normalize_url(raw);
                url::Url::parse(&normalized).ok().map(|u| u.to_string())
            }
            _ => None,
        };
        let mode = match dev_bool {
            Some(true) => Mode::Dev,
            Some(false) => Mode::Cloud,
            None if dev_server_url.is_some() => Mode::Dev,
            None => Mode::Cloud,
        };

        let streaming_raw = get("INNGEST_STREAMING");
        let streaming = streaming_raw
            .as_deref()
            .is_some_and(|v| parse_bool(v) == Some(true) || v == "allow" || v == "force");

        let platform = if get("VERCEL").as_deref() == Some("1") {
            Some("vercel")
        } else if get("NETLIFY").as_deref() == Some("true") {
            Some("netlify")
        } else if get("CF_PAGES").as_deref() == Some("1") {
            Some("cloudflare-pages")
        } else if get("RENDER").as_deref() == Some("true") {
            Some("render")
        } else if get("RAILWAY_ENVIRONMENT").is_some() {
            Some("railway")
        } else {
            None
        };

        Self {
            mode,
            signing_key: get("INNGEST_SIGNING_KEY").map(SigningKey::new),
            signing_key_fallback: get("INNGEST_SIGNING_KEY_FALLBACK").map(SigningKey::new),
            event_key: get("INNGEST_EVENT_KEY").map(EventKey::new),
            api_base_url: first(&["INNGEST_API_BASE_URL", "INNGEST_BASE_URL"]),
            event_api_base_url: first(&["INNGEST_EVENT_API_BASE_URL", "INNGEST_BASE_URL"]),
            dev_server_url,
            env: first(&[
                "INNGEST_ENV",
                "BRANCH_NAME",
                "VERCEL_GIT_COMMIT_REF",
                "BRANCH",
                "CF_PAGES_BRANCH",
                "RENDER_GIT_BRANCH",
                "RAILWAY_GIT_BRANCH",
            ])
            .map(|(_, v)| v),
            serve_origin: first(&["INNGEST_SERVE_ORIGIN", "INNGEST_SERVE_HOST"]).map(|(_, v)| v),
            serve_path: get("INNGEST_SERVE_PATH"),
            streaming,
            allow_in_band_sync: get("INNGEST_ALLOW_IN_BAND_SYNC")
                .and_then(|v| parse_bool(&v))
                .unwrap_or(true),
            enable_unauthed_sync: get("INNGEST_ENABLE_UNAUTHED_SYNC")
                .and_then(|v| parse_bool(&v))
                .unwrap_or(true),
            platform,
            app_version: None,
            explicit: VARIABLES.iter().any(|name| get(name).is_some()),
        }
    }

    /// Reports configurations that cannot work: cloud without a signing key, a half-configured
    /// cloud (signing key but no event key), a fallback without a primary, or a malformed URL.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (var, value) in [&self.api_base_url, &self.event_api_base_url]
            .into_iter()
            .flatten()
        {
            if url::Url::parse(value).is_err() {
                return Err(SettingsError::InvalidUrl {
                    var,
                    value: value.clone(),
                });
            }
        }
        if let Some(origin) = &self.serve_origin
            && url::Url::parse(&normalize_url(origin)).is_err()
        {
            return Err(SettingsError::InvalidUrl {
                var: "INNGEST_SERVE_ORIGIN",
                value: origin.clone(),
            });
        }
        if self.signing_key_fallback.is_some() && self.signing_key.is_none() {
            return Err(SettingsError::FallbackWithoutPrimary);
        }
        if self.mode == Mode::Cloud {
            if self.signing_key.is_none() {
                return Err(SettingsError::MissingSigningKey);
            }
            if self.event_key.is_none() {
                return Err(SettingsError::MissingEventKey);
            }
        }
        Ok(())
    }

    /// Dev or cloud.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether any `INNGEST_*` variable was set (the app runs its embedded executor otherwise).
    pub fn is_explicit(&self) -> bool {
        self.explicit
    }

    /// `INNGEST_SIGNING_KEY`.
    pub fn signing_key(&self) -> Option<&SigningKey> {
        self.signing_key.as_ref()
    }

    /// `INNGEST_SIGNING_KEY_FALLBACK`: also accepted while keys rotate.
    pub fn signing_key_fallback(&self) -> Option<&SigningKey> {
        self.signing_key_fallback.as_ref()
    }

    /// `INNGEST_EVENT_KEY`.
    pub fn event_key(&self) -> Option<&EventKey> {
        self.event_key.as_ref()
    }

    /// The key used in `/e/{key}`: the configured one, or [`DUMMY_EVENT_KEY`].
    pub fn event_key_or_dummy(&self) -> &str {
        self.event_key
            .as_ref()
            .map_or(DUMMY_EVENT_KEY, EventKey::expose)
    }

    fn default_origin(&self, cloud: &str) -> String {
        match (&self.dev_server_url, self.mode) {
            (Some(url), _) => url.clone(),
            (None, Mode::Cloud) => cloud.to_owned(),
            (None, Mode::Dev) => DEFAULT_DEV_SERVER_ORIGIN.to_owned(),
        }
    }

    /// API origin: `INNGEST_API_BASE_URL` > `INNGEST_BASE_URL` > URL in `INNGEST_DEV` > default.
    pub fn api_base_url(&self) -> String {
        self.api_base_url.as_ref().map_or_else(
            || self.default_origin(DEFAULT_API_ORIGIN),
            |(_, v)| v.clone(),
        )
    }

    /// Event origin: `INNGEST_EVENT_API_BASE_URL` > `INNGEST_BASE_URL` > URL in `INNGEST_DEV` > default.
    pub fn event_api_base_url(&self) -> String {
        self.event_api_base_url.as_ref().map_or_else(
            || self.default_origin(DEFAULT_EVENT_API_ORIGIN),
            |(_, v)| v.clone(),
        )
    }

    /// `INNGEST_ENV` (or a platform's branch variable), sent as `X-Inngest-Env`.
    pub fn env(&self) -> Option<&str> {
        self.env.as_deref()
    }

    /// `INNGEST_SERVE_ORIGIN` (or the deprecated `INNGEST_SERVE_HOST`).
    pub fn serve_origin(&self) -> Option<&str> {
        self.serve_origin.as_deref()
    }

    /// `INNGEST_SERVE_PATH`: the path reported when syncing (not where the router listens).
    pub fn serve_path(&self) -> Option<&str> {
        self.serve_path.as_deref()
    }

    /// `INNGEST_STREAMING=true`: answer calls with `201` and keep-alive bytes.
    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// `INNGEST_ALLOW_IN_BAND_SYNC=false` turns every PUT into an out-of-band sync.
    pub fn allow_in_band_sync(&self) -> bool {
        self.allow_in_band_sync
    }

    /// `INNGEST_ENABLE_UNAUTHED_SYNC=false` requires a valid signature on every request in cloud
    /// mode, out-of-band PUTs included.
    pub fn enable_unauthed_sync(&self) -> bool {
        self.enable_unauthed_sync
    }

    /// Hosting platform detected from its variables (`X-Inngest-Platform`).
    pub fn platform(&self) -> Option<&'static str> {
        self.platform
    }

    /// `INNGEST_APP_VERSION`, reported on sync.
    pub fn app_version(&self) -> Option<&str> {
        self.app_version.as_deref()
    }

    /// Sets the mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the signing key.
    pub fn with_signing_key(mut self, key: impl Into<String>) -> Self {
        self.signing_key = Some(SigningKey::new(key));
        self
    }

    /// Sets the fallback signing key.
    pub fn with_signing_key_fallback(mut self, key: impl Into<String>) -> Self {
        self.signing_key_fallback = Some(SigningKey::new(key));
        self
    }

    /// Sets the event key.
    pub fn with_event_key(mut self, key: impl Into<String>) -> Self {
        self.event_key = Some(EventKey::new(key));
        self
    }

    /// Sets both origins, like `INNGEST_BASE_URL`.
    pub fn with_base_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.with_api_base_url(url.clone())
            .with_event_api_base_url(url)
    }

    /// Sets the API origin only (`INNGEST_API_BASE_URL`).
    pub fn with_api_base_url(mut self, url: impl Into<String>) -> Self {
        self.api_base_url = Some(("INNGEST_API_BASE_URL", url.into()));
        self
    }

    /// Sets the event API origin only (`INNGEST_EVENT_API_BASE_URL`).
    pub fn with_event_api_base_url(mut self, url: impl Into<String>) -> Self {
        self.event_api_base_url = Some(("INNGEST_EVENT_API_BASE_URL", url.into()));
        self
    }

    /// Sets the environment (`INNGEST_ENV`).
    pub fn with_env(mut self, env: impl Into<String>) -> Self {
        self.env = Some(env.into());
        self
    }

    /// Sets the origin Inngest calls back (`INNGEST_SERVE_ORIGIN`).
    pub fn with_serve_origin(mut self, origin: impl Into<String>) -> Self {
        self.serve_origin = Some(origin.into());
        self
    }

    /// Sets the path Inngest calls back (`INNGEST_SERVE_PATH`).
    pub fn with_serve_path(mut self, path: impl Into<String>) -> Self {
        self.serve_path = Some(path.into());
        self
    }

    /// Answers calls with `201` and keep-alive bytes (`INNGEST_STREAMING`).
    pub fn with_streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }

    /// Allows in-band syncs (`INNGEST_ALLOW_IN_BAND_SYNC`).
    pub fn with_allow_in_band_sync(mut self, on: bool) -> Self {
        self.allow_in_band_sync = on;
        self
    }

    /// Sets `INNGEST_ENABLE_UNAUTHED_SYNC` (see [`Self::enable_unauthed_sync`]).
    pub fn with_enable_unauthed_sync(mut self, on: bool) -> Self {
        self.enable_unauthed_sync = on;
        self
    }

    /// Sets the app version reported on sync (`INNGEST_APP_VERSION`).
    pub fn with_app_version(mut self, version: impl Into<String>) -> Self {
        self.app_version = Some(version.into());
        self
    }

    /// Applies `INNGEST_SERVE_PATH` and `INNGEST_SERVE_ORIGIN` to the URL Inngest reached
    /// (JS `reqUrl`: replace the path, then rebuild path + query on the origin).
    pub fn reported_url(&self, reached: &url::Url) -> url::Url {
        let mut url = reached.clone();
        if let Some(path) = &self.serve_path {
            url.set_path(path);
        }
        if let Some(origin) = &self.serve_origin
            && let Ok(base) = url::Url::parse(&normalize_url(origin))
        {
            let mut path_and_query = url.path().to_owned();
            if let Some(q) = url.query() {
                path_and_query.push('?');
                path_and_query.push_str(q);
            }
            if let Ok(rebuilt) = base.join(&path_and_query) {
                url = rebuilt;
            }
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> InngestSettings {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        InngestSettings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn nothing_set_is_cloud_with_cloud_origins_and_not_explicit() {
        let s = settings(&[]);
        assert_eq!(s.mode(), Mode::Cloud);
        assert!(!s.is_explicit());
        assert_eq!(s.api_base_url(), DEFAULT_API_ORIGIN);
        assert_eq!(s.event_api_base_url(), DEFAULT_EVENT_API_ORIGIN);
        assert_eq!(s.validate(), Err(SettingsError::MissingSigningKey));
    }

    #[test]
    fn inngest_dev_is_parsed_like_js() {
        for (value, mode) in [
            ("1", Mode::Dev),
            ("true", Mode::Dev),
            (" TRUE ", Mode::Dev),
            ("0", Mode::Cloud),
            ("false", Mode::Cloud),
            ("undefined", Mode::Cloud),
        ] {
            let s = settings(&[("INNGEST_DEV", value)]);
            assert_eq!(s.mode(), mode, "{value}");
            assert!(s.is_explicit());
        }
        let s = settings(&[("INNGEST_DEV", "1")]);
        assert_eq!(s.api_base_url(), DEFAULT_DEV_SERVER_ORIGIN);
        assert_eq!(s.event_key_or_dummy(), DUMMY_EVENT_KEY);
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn inngest_dev_url_selects_dev_and_both_origins() {
        let s = settings(&[("INNGEST_DEV", "devhost:9999")]);
        assert_eq!(s.mode(), Mode::Dev);
        assert_eq!(s.api_base_url(), "http://devhost:9999/");
        assert_eq!(s.event_api_base_url(), "http://devhost:9999/");
        let s = settings(&[
            ("INNGEST_DEV", "http://a:1"),
            ("INNGEST_BASE_URL", "http://b:2"),
        ]);
        assert_eq!(s.api_base_url(), "http://b:2");
    }

    #[test]
    fn origin_precedence_specific_over_base() {
        let s = settings(&[
            ("INNGEST_BASE_URL", "http://base/"),
            ("INNGEST_API_BASE_URL", "http://api/"),
        ]);
        assert_eq!(s.api_base_url(), "http://api/");
        assert_eq!(s.event_api_base_url(), "http://base/");
        let s = settings(&[("INNGEST_EVENT_API_BASE_URL", "http://ev/")]);
        assert_eq!(s.api_base_url(), DEFAULT_API_ORIGIN);
        assert_eq!(s.event_api_base_url(), "http://ev/");
    }

    #[test]
    fn half_configured_cloud_is_detected() {
        let s = settings(&[("INNGEST_SIGNING_KEY", "signkey-prod-12")]);
        assert_eq!(s.validate(), Err(SettingsError::MissingEventKey));
        let s = settings(&[("INNGEST_EVENT_KEY", "k")]);
        assert_eq!(s.validate(), Err(SettingsError::MissingSigningKey));
        let s = settings(&[
            ("INNGEST_DEV", "1"),
            ("INNGEST_SIGNING_KEY_FALLBACK", "signkey-prod-12"),
        ]);
        assert_eq!(s.validate(), Err(SettingsError::FallbackWithoutPrimary));
        let s = settings(&[
            ("INNGEST_SIGNING_KEY", "signkey-prod-12"),
            ("INNGEST_EVENT_KEY", "k"),
        ]);
        assert_eq!(s.validate(), Ok(()));
        let s = settings(&[("INNGEST_DEV", "1"), ("INNGEST_BASE_URL", "not a url")]);
        assert!(matches!(
            s.validate(),
            Err(SettingsError::InvalidUrl {
                var: "INNGEST_BASE_URL",
                ..
            })
        ));
    }

    #[test]
    fn env_falls_back_to_branch_variables() {
        assert_eq!(settings(&[("BRANCH", "feat")]).env(), Some("feat"));
        assert_eq!(
            settings(&[("INNGEST_ENV", "stage"), ("BRANCH_NAME", "x")]).env(),
            Some("stage")
        );
        assert_eq!(settings(&[]).env(), None);
    }

    #[test]
    fn flags_and_platform() {
        let s = settings(&[
            ("INNGEST_STREAMING", "true"),
            ("INNGEST_ALLOW_IN_BAND_SYNC", "0"),
            ("INNGEST_ENABLE_UNAUTHED_SYNC", "false"),
            ("VERCEL", "1"),
        ]);
        assert!(s.streaming());
        assert!(!s.allow_in_band_sync());
        assert!(!s.enable_unauthed_sync());
        assert_eq!(s.platform(), Some("vercel"));
        let s = settings(&[
            ("INNGEST_STREAMING", "force"),
            ("RAILWAY_ENVIRONMENT", "prod"),
        ]);
        assert!(s.streaming());
        assert!(s.allow_in_band_sync());
        assert!(s.enable_unauthed_sync());
        assert_eq!(s.platform(), Some("railway"));
        assert!(!settings(&[("INNGEST_STREAMING", "nope")]).streaming());
    }

    #[test]
    fn reported_url_applies_path_then_origin() {
        let reached = url::Url::parse("http://10.0.0.5:3000/api/inngest?x=1").expect("url");
        let s = settings(&[("INNGEST_SERVE_PATH", "/v2/inngest")]);
        assert_eq!(
            s.reported_url(&reached).as_str(),
            "http://10.0.0.5:3000/v2/inngest?x=1"
        );
        let s = settings(&[("INNGEST_SERVE_HOST", "https://app.example.com")]);
        assert_eq!(s.serve_origin(), Some("https://app.example.com"));
        assert_eq!(
            s.reported_url(&reached).as_str(),
            "https://app.example.com/api/inngest?x=1"
        );
        let s = settings(&[
            ("INNGEST_SERVE_ORIGIN", "app.example.com:8443"),
            ("INNGEST_SERVE_PATH", "/p"),
        ]);
        assert_eq!(
            s.reported_url(&reached).as_str(),
            "http://app.example.com:8443/p?x=1"
        );
    }
}
