//! `GET`: what the app reports about itself, in more detail to a verified caller.

use serde_json::{Map, Value, json};

use super::ServeHandler;
use super::request::{Request, Validation};
use super::sync::capabilities;
use crate::headers;
use crate::protocol::INTROSPECTION_SCHEMA_VERSION;
use crate::settings::Mode;
use crate::signature::{self, hash_event_key};
use crate::{FRAMEWORK, SDK_LANGUAGE, SDK_VERSION};

impl ServeHandler {
    pub(super) fn introspection(&self, req: &Request, validation: &Validation) -> Value {
        let settings = &self.inner.settings;
        let function_count: usize = self
            .inner
            .functions
            .iter()
            .map(|f| 1 + usize::from(f.failure_handler().is_some()))
            .sum();
        let mut body = Map::new();
        body.insert("function_count".into(), json!(function_count));
        body.insert(
            "has_event_key".into(),
            json!(settings.event_key().is_some()),
        );
        body.insert(
            "has_signing_key".into(),
            json!(settings.signing_key().is_some()),
        );
        body.insert(
            "has_signing_key_fallback".into(),
            json!(settings.signing_key_fallback().is_some()),
        );
        body.insert("mode".into(), json!(settings.mode()));
        body.insert("schema_version".into(), json!(INTROSPECTION_SCHEMA_VERSION));
        let authenticated = settings.mode() == Mode::Cloud && matches!(validation, Ok(Some(_)));
        if !authenticated {
            let attempted =
                settings.mode() == Mode::Cloud && req.header(headers::SIGNATURE).is_some();
            body.insert(
                "authentication_succeeded".into(),
                if attempted { json!(false) } else { Value::Null },
            );
            return Value::Object(body);
        }
        let short_hash = |key: Option<&signature::SigningKey>| {
            key.map(|k| {
                let hashed = k.hashed();
                hashed[k.prefix().len()..]
                    .chars()
                    .take(12)
                    .collect::<String>()
            })
        };
        body.insert("authentication_succeeded".into(), json!(true));
        body.insert("api_origin".into(), json!(settings.api_base_url()));
        body.insert("app_id".into(), json!(self.inner.app_id));
        body.insert("capabilities".into(), capabilities());
        body.insert("env".into(), json!(settings.env()));
        body.insert(
            "event_api_origin".into(),
            json!(settings.event_api_base_url()),
        );
        body.insert(
            "event_key_hash".into(),
            json!(settings.event_key().map(|k| hash_event_key(k.expose()))),
        );
        body.insert(
            "extra".into(),
            json!({ "is_streaming": settings.streaming() }),
        );
        body.insert("framework".into(), json!(FRAMEWORK));
        body.insert("sdk_language".into(), json!(SDK_LANGUAGE));
        body.insert("sdk_version".into(), json!(SDK_VERSION));
        body.insert("serve_origin".into(), json!(settings.serve_origin()));
        body.insert("serve_path".into(), json!(settings.serve_path()));
        body.insert(
            "signing_key_fallback_hash".into(),
            json!(short_hash(settings.signing_key_fallback())),
        );
        body.insert(
            "signing_key_hash".into(),
            json!(short_hash(settings.signing_key())),
        );
        Value::Object(body)
    }
}
