//! The stored JSON form (the original's shape) with serde support.
//!
//! ```json
//! {"mode":"allow-all"}
//! {"mode":"deny-all"}
//! {"mode":"allow-services","services":[{"id":"github","name":"GitHub","domains":["api.github.com"],
//!   "headers":[{"headerName":"authorization","valuePrefix":"Bearer ","valueEncoding":"plain",
//!               "credential":{"kind":"default"}}]}]}
//! ```
//!
//! Serialising never writes a secret: an explicit credential becomes
//! `{"kind":"redacted"}`. Parsing accepts `{"kind":"value","value":"..."}` (a per-run
//! policy file may carry one; [`Policy::ensure_durable`] rejects it), validates,
//! normalises, and names the JSON path of the first problem.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::{CredentialSource, HeaderEncoding, HeaderTransform, ServiceDescriptor};
use crate::normalise::{child, normalise_services};
use crate::{Policy, PolicyError, PolicyMode, Secret};

impl Policy {
    /// The JSON form as a value. Explicit secrets are written as `{"kind":"redacted"}`.
    pub fn to_json_value(&self) -> Value {
        let mut root = Map::new();
        root.insert("mode".into(), self.mode().as_str().into());
        if self.mode() == PolicyMode::AllowServices {
            let services = self.services().iter().map(service_to_json).collect();
            root.insert("services".into(), Value::Array(services));
        }
        Value::Object(root)
    }

    /// The JSON form as compact text. Explicit secrets are written as `{"kind":"redacted"}`.
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }

    /// Parses, validates and normalises the JSON form.
    ///
    /// ```
    /// use sandkit_policies::{Policy, PolicyError};
    /// let policy = Policy::from_json(r#"{"mode":"allow-services","services":[
    ///     {"id":"npm","name":"npm","domains":["registry.npmjs.org"]}]}"#)?;
    /// assert_eq!(policy.describe(), "allow-services:npm");
    ///
    /// let err = Policy::from_json(r#"{"mode":"allow-services","services":[
    ///     {"id":"npm","name":"npm","domains":"registry.npmjs.org"}]}"#).unwrap_err();
    /// assert!(matches!(err, PolicyError::Json { ref path, .. } if path == "services[0].domains"));
    /// # Ok::<(), PolicyError>(())
    /// ```
    ///
    /// # Errors
    /// [`PolicyError::Json`] for syntax errors, wrong types, missing or unknown fields;
    /// [`PolicyError::JsonField`] wrapping the validation error (unknown mode, no
    /// domains, ...) with the path where it was found.
    pub fn from_json(text: &str) -> Result<Policy, PolicyError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PolicyError::Json {
            path: "$".into(),
            reason: format!("not valid JSON ({e})"),
        })?;
        Policy::from_json_value(&value)
    }

    /// [`Policy::from_json`] for an already-parsed JSON value.
    ///
    /// # Errors
    /// As [`Policy::from_json`].
    pub fn from_json_value(value: &Value) -> Result<Policy, PolicyError> {
        parse_policy(value)
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Policy::from_json_value(&value).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------
// Writing

fn service_to_json(service: &ServiceDescriptor) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), service.id().into());
    out.insert("name".into(), service.name().into());
    if let Some(description) = service.get_description() {
        out.insert("description".into(), description.into());
    }
    out.insert("domains".into(), service.get_domains().into());
    if !service.headers().is_empty() {
        out.insert("headers".into(), transforms_to_json(service.headers()));
    }
    if !service.domain_headers().is_empty() {
        let map = service
            .domain_headers()
            .iter()
            .map(|(domain, list)| (domain.clone(), transforms_to_json(list)))
            .collect();
        out.insert("domainHeaders".into(), Value::Object(map));
    }
    Value::Object(out)
}

fn transforms_to_json(transforms: &[HeaderTransform]) -> Value {
    Value::Array(transforms.iter().map(transform_to_json).collect())
}

fn transform_to_json(transform: &HeaderTransform) -> Value {
    let mut out = Map::new();
    out.insert("headerName".into(), transform.header_name().into());
    if !transform.get_value_prefix().is_empty() {
        out.insert("valuePrefix".into(), transform.get_value_prefix().into());
    }
    if !transform.get_credential_prefix().is_empty() {
        out.insert(
            "credentialPrefix".into(),
            transform.get_credential_prefix().into(),
        );
    }
    out.insert(
        "valueEncoding".into(),
        transform.get_encoding().as_str().into(),
    );
    // Deliberately no arm writes a secret value.
    let kind = match transform.get_credential() {
        CredentialSource::Default => "default",
        CredentialSource::Secret(_) | CredentialSource::Redacted => "redacted",
    };
    let mut credential = Map::new();
    credential.insert("kind".into(), kind.into());
    out.insert("credential".into(), Value::Object(credential));
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------
// Reading

type Obj = Map<String, Value>;

fn parse_policy(value: &Value) -> Result<Policy, PolicyError> {
    let root = expect_object(
        value,
        "$",
        "a policy object such as {\"mode\":\"deny-all\"}",
    )?;
    let mode = expect_str(required(root, "", "mode", MODE_HINT)?, "mode")?;
    match mode {
        "allow-all" | "deny-all" => {
            if optional(root, "services").is_some() {
                return Err(json_error(
                    "services",
                    "only allow-services policies list services; remove \"services\" or \
                     set \"mode\" to \"allow-services\"",
                ));
            }
            reject_unknown(root, "", &["mode"])?;
            Ok(if mode == "allow-all" {
                Policy::allow_all()
            } else {
                Policy::deny_all()
            })
        }
        "allow-services" => {
            reject_unknown(root, "", &["mode", "services"])?;
            let list = expect_array(
                required(root, "", "services", "list the allowed services")?,
                "services",
                "an array of service objects",
            )?;
            let mut services = Vec::with_capacity(list.len());
            for (index, item) in list.iter().enumerate() {
                services.push(parse_service(item, &format!("services[{index}]"))?);
            }
            normalise_services(services)
                .map(Policy::from_services)
                .map_err(|located| PolicyError::JsonField {
                    path: located.path,
                    error: Box::new(located.error),
                })
        }
        other => Err(PolicyError::JsonField {
            path: "mode".into(),
            error: Box::new(PolicyError::UnknownMode {
                mode: other.to_owned(),
            }),
        }),
    }
}

const MODE_HINT: &str = "set \"mode\" to \"allow-all\", \"deny-all\" or \"allow-services\"";

fn parse_service(value: &Value, path: &str) -> Result<ServiceDescriptor, PolicyError> {
    let obj = expect_object(value, path, "a service object with id, name and domains")?;
    reject_unknown(
        obj,
        path,
        &[
            "id",
            "name",
            "description",
            "domains",
            "headers",
            "domainHeaders",
        ],
    )?;
    let id = required_str(obj, path, "id", "give the service a non-empty id")?;
    let name = required_str(obj, path, "name", "give the service a display name")?;
    let mut service = ServiceDescriptor::new(id, name);
    if let Some(description) = optional(obj, "description") {
        service = service.description(expect_str(description, &child(path, "description"))?);
    }
    let domains_path = child(path, "domains");
    let domains = expect_array(
        required(obj, path, "domains", "list at least one domain")?,
        &domains_path,
        "an array of domain strings",
    )?;
    for (index, domain) in domains.iter().enumerate() {
        service = service.domain(expect_str(domain, &format!("{domains_path}[{index}]"))?);
    }
    if let Some(headers) = optional(obj, "headers") {
        for transform in parse_transforms(headers, &child(path, "headers"))? {
            service = service.header(transform);
        }
    }
    if let Some(domain_headers) = optional(obj, "domainHeaders") {
        let map_path = child(path, "domainHeaders");
        let map = expect_object(
            domain_headers,
            &map_path,
            "an object mapping domains to arrays of header transforms",
        )?;
        for (domain, list) in map {
            let transforms = parse_transforms(list, &child(&map_path, domain))?;
            service = service.domain_header_list(domain.clone(), transforms);
        }
    }
    Ok(service)
}

fn parse_transforms(value: &Value, path: &str) -> Result<Vec<HeaderTransform>, PolicyError> {
    let list = expect_array(value, path, "an array of header transforms")?;
    list.iter()
        .enumerate()
        .map(|(index, item)| parse_transform(item, &format!("{path}[{index}]")))
        .collect()
}

fn parse_transform(value: &Value, path: &str) -> Result<HeaderTransform, PolicyError> {
    let obj = expect_object(
        value,
        path,
        "a header transform object with headerName and credential",
    )?;
    reject_unknown(
        obj,
        path,
        &[
            "headerName",
            "valuePrefix",
            "credentialPrefix",
            "valueEncoding",
            "credential",
        ],
    )?;
    let name = required_str(
        obj,
        path,
        "headerName",
        "set a header name such as \"authorization\"",
    )?;
    let mut transform = HeaderTransform::new(name);
    if let Some(prefix) = optional(obj, "valuePrefix") {
        transform = transform.value_prefix(expect_str(prefix, &child(path, "valuePrefix"))?);
    }
    if let Some(prefix) = optional(obj, "credentialPrefix") {
        transform =
            transform.credential_prefix(expect_str(prefix, &child(path, "credentialPrefix"))?);
    }
    if let Some(encoding) = optional(obj, "valueEncoding") {
        let encoding_path = child(path, "valueEncoding");
        transform = transform.encoding(match expect_str(encoding, &encoding_path)? {
            "plain" => HeaderEncoding::Plain,
            "base64" => HeaderEncoding::Base64,
            other => {
                return Err(json_error(
                    &encoding_path,
                    format!("unsupported valueEncoding \"{other}\"; use \"plain\" or \"base64\""),
                ));
            }
        });
    }
    let credential_path = child(path, "credential");
    let credential = required(
        obj,
        path,
        "credential",
        "use {\"kind\":\"default\"} to read the service's environment variable",
    )?;
    Ok(transform.credential(parse_credential(credential, &credential_path)?))
}

fn parse_credential(value: &Value, path: &str) -> Result<CredentialSource, PolicyError> {
    let obj = expect_object(
        value,
        path,
        "a credential object such as {\"kind\":\"default\"}",
    )?;
    let kind_path = child(path, "kind");
    let kind = expect_str(
        required(
            obj,
            path,
            "kind",
            "use \"default\", \"redacted\" or \"value\"",
        )?,
        &kind_path,
    )?;
    match kind {
        "default" => {
            reject_unknown(obj, path, &["kind"])?;
            Ok(CredentialSource::Default)
        }
        "redacted" => {
            reject_unknown(obj, path, &["kind"])?;
            Ok(CredentialSource::Redacted)
        }
        "value" => {
            reject_unknown(obj, path, &["kind", "value"])?;
            let secret = required(obj, path, "value", "put the secret in \"value\"")?;
            let secret = secret.as_str().ok_or_else(|| {
                // Never echo the value itself.
                json_error(
                    &child(path, "value"),
                    format!("expected a string, found {}", type_name(secret)),
                )
            })?;
            Ok(CredentialSource::Secret(Secret::new(secret)))
        }
        other => Err(json_error(
            &kind_path,
            format!(
                "unsupported credential kind \"{other}\"; use \"default\" (environment \
                 variable), \"redacted\" or \"value\""
            ),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn json_error(path: &str, reason: impl Into<String>) -> PolicyError {
    PolicyError::Json {
        path: if path.is_empty() {
            "$".into()
        } else {
            path.into()
        },
        reason: reason.into(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect_object<'a>(value: &'a Value, path: &str, what: &str) -> Result<&'a Obj, PolicyError> {
    value
        .as_object()
        .ok_or_else(|| json_error(path, format!("expected {what}, found {}", type_name(value))))
}

fn expect_array<'a>(
    value: &'a Value,
    path: &str,
    what: &str,
) -> Result<&'a Vec<Value>, PolicyError> {
    value
        .as_array()
        .ok_or_else(|| json_error(path, format!("expected {what}, found {}", type_name(value))))
}

fn expect_str<'a>(value: &'a Value, path: &str) -> Result<&'a str, PolicyError> {
    value.as_str().ok_or_else(|| {
        json_error(
            path,
            format!("expected a string, found {}", type_name(value)),
        )
    })
}

/// A present, non-null field.
fn optional<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn required<'a>(obj: &'a Obj, path: &str, key: &str, hint: &str) -> Result<&'a Value, PolicyError> {
    optional(obj, key)
        .ok_or_else(|| json_error(&child(path, key), format!("missing required field; {hint}")))
}

fn required_str<'a>(
    obj: &'a Obj,
    path: &str,
    key: &str,
    hint: &str,
) -> Result<&'a str, PolicyError> {
    expect_str(required(obj, path, key, hint)?, &child(path, key))
}

fn reject_unknown(obj: &Obj, path: &str, known: &[&str]) -> Result<(), PolicyError> {
    match obj.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(json_error(
            &child(path, key),
            format!("unknown field; expected only {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::normalise::child;

    #[test]
    fn paths() {
        assert_eq!(child("", "mode"), "mode");
        assert_eq!(child("services[0]", "domains"), "services[0].domains");
        assert_eq!(
            child("services[0].domainHeaders", "api.github.com"),
            r#"services[0].domainHeaders["api.github.com"]"#
        );
        assert_eq!(child("x", ""), r#"x[""]"#);
    }
}
