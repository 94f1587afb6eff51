//! Strict request-body validation, as the real service does (an unknown field is a 400).

use serde_json::{Map, Value};

/// A validation failure message (sent as `400 bad_request`).
pub(crate) type Invalid = String;

/// Fields of the create body (§5.1); `__`-prefixed private parameters pass.
pub(crate) const CREATE_FIELDS: &[&str] = &[
    "projectId",
    "name",
    "source",
    "ports",
    "timeout",
    "resources",
    "runtime",
    "image",
    "persistent",
    "networkPolicy",
    "env",
    "tags",
    "snapshotExpiration",
    "keepLastSnapshots",
    "region",
    "failoverRegions",
];

/// Fields of the run-command body (§5.13).
pub(crate) const RUN_FIELDS: &[&str] = &[
    "command", "args", "cwd", "env", "sudo", "wait", "logs", "timeout",
];

/// The body as an object: absent/empty is `{}`, anything else but an object is invalid.
pub(crate) fn object(body: Option<&Value>) -> Result<Map<String, Value>, Invalid> {
    match body {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err("Invalid request: the body must be a JSON object.".to_owned()),
    }
}

/// Rejects fields outside `allowed` (and, when `private`, not starting with `__`).
pub(crate) fn known_fields(
    body: &Map<String, Value>,
    allowed: &[&str],
    private: bool,
) -> Result<(), Invalid> {
    match body
        .keys()
        .find(|k| !(allowed.contains(&k.as_str()) || (private && k.starts_with("__"))))
    {
        Some(k) => Err(format!(
            "Invalid request: should NOT have additional property `{k}`."
        )),
        None => Ok(()),
    }
}

/// An optional non-negative integer field.
pub(crate) fn uint(body: &Map<String, Value>, field: &str) -> Result<Option<u64>, Invalid> {
    match body.get(field) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("Invalid request: `{field}` should be a non-negative integer.")),
    }
}

/// An optional boolean field.
pub(crate) fn boolean(body: &Map<String, Value>, field: &str) -> Result<Option<bool>, Invalid> {
    match body.get(field) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("Invalid request: `{field}` should be a boolean.")),
    }
}

/// An optional string field.
pub(crate) fn string<'a>(
    body: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, Invalid> {
    match body.get(field) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| format!("Invalid request: `{field}` should be a string.")),
    }
}

/// An optional map of strings.
pub(crate) fn string_map(
    body: &Map<String, Value>,
    field: &str,
) -> Result<Vec<(String, String)>, Invalid> {
    match body.get(field) {
        None => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| {
                v.as_str()
                    .map(|s| (k.clone(), s.to_owned()))
                    .ok_or_else(|| format!("Invalid request: `{field}.{k}` should be a string."))
            })
            .collect(),
        Some(_) => Err(format!("Invalid request: `{field}` should be an object.")),
    }
}

/// An optional list of strings.
pub(crate) fn strings(body: &Map<String, Value>, field: &str) -> Result<Vec<String>, Invalid> {
    match body.get(field) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    format!("Invalid request: `{field}` should be a list of strings.")
                })
            })
            .collect(),
        Some(_) => Err(format!("Invalid request: `{field}` should be a list.")),
    }
}

/// `ports`: at most 15 integers in 1024–65535.
pub(crate) fn ports(body: &Map<String, Value>) -> Result<Vec<u16>, Invalid> {
    let Some(value) = body.get("ports") else {
        return Ok(Vec::new());
    };
    let Some(items) = value.as_array() else {
        return Err("Invalid request: `ports` should be a list.".to_owned());
    };
    if items.len() > 15 {
        return Err("Invalid request: `ports` should NOT have more than 15 items.".to_owned());
    }
    items
        .iter()
        .map(|p| {
            p.as_u64()
                .filter(|p| (1024..=65535).contains(p))
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| {
                    "Invalid request: `ports` items should be integers from 1024 to 65535."
                        .to_owned()
                })
        })
        .collect()
}

/// A network policy in request form (§8.1, or the legacy form of §8.2).
pub(crate) fn network_policy(policy: &Value) -> Result<(), Invalid> {
    let bad = |why: &str| Err(format!("Invalid request: `networkPolicy` {why}."));
    let Some(map) = policy.as_object() else {
        return bad("should be an object");
    };
    if let Some(mode) = map.get("mode") {
        return match mode.as_str() {
            Some("allow-all" | "deny-all") if map.len() == 1 => Ok(()),
            Some("custom") => known_fields(
                map,
                &[
                    "mode",
                    "allowedDomains",
                    "allowedCIDRs",
                    "deniedCIDRs",
                    "injectionRules",
                ],
                false,
            ),
            _ => bad("has an unknown mode or extra fields next to `mode`"),
        };
    }
    known_fields(map, &["allow", "subnets"], false)?;
    match map.get("allow") {
        None | Some(Value::Array(_)) => {}
        Some(Value::Object(domains)) => {
            for (domain, rules) in domains {
                let Some(rules) = rules.as_array() else {
                    return bad(&format!("rules for {domain} should be a list"));
                };
                for rule in rules {
                    rule_shape(domain, rule)?;
                }
            }
        }
        Some(_) => return bad("`allow` should be a list or an object"),
    }
    if let Some(subnets) = map.get("subnets") {
        let Some(subnets) = subnets.as_object() else {
            return bad("`subnets` should be an object");
        };
        known_fields(subnets, &["allow", "deny"], false)?;
    }
    Ok(())
}

fn rule_shape(domain: &str, rule: &Value) -> Result<(), Invalid> {
    let bad = |why: &str| {
        Err(format!(
            "Invalid request: `networkPolicy` rule for {domain} {why}."
        ))
    };
    let Some(rule) = rule.as_object() else {
        return bad("should be an object");
    };
    known_fields(rule, &["match", "transform", "forwardURL"], false)?;
    match (rule.get("transform"), rule.get("forwardURL")) {
        (Some(_), Some(_)) => bad("cannot have both transform and forwardURL"),
        (None, None) => bad("needs transform or forwardURL"),
        (Some(Value::Array(transforms)), None) => {
            for t in transforms {
                let headers = t.get("headers").and_then(Value::as_object);
                let valid = t.as_object().is_some_and(|o| o.len() == 1)
                    && headers.is_some_and(|h| h.values().all(Value::is_string));
                if !valid {
                    return bad("has a transform that is not {\"headers\": {name: value}}");
                }
            }
            Ok(())
        }
        (Some(_), None) => bad("has a transform that is not a list"),
        (None, Some(url)) => match url.as_str() {
            Some(u) if u.starts_with("https://") => Ok(()),
            _ => bad("has a forwardURL that is not an https URL"),
        },
    }
}

/// The response form of a stored request-form policy (§8.3): header values never
/// leave the server, only their names.
pub(crate) fn response_policy(policy: &Value) -> Value {
    let Some(map) = policy.as_object() else {
        return serde_json::json!({"mode": "allow-all"});
    };
    match map.get("mode").and_then(Value::as_str) {
        Some("custom") => {
            let mut out = map.clone();
            if let Some(Value::Array(rules)) = map.get("injectionRules") {
                let redacted: Vec<Value> = rules
                    .iter()
                    .map(|r| {
                        let names: Vec<Value> = r["headers"]
                            .as_object()
                            .map(|h| h.keys().cloned().map(Value::String).collect())
                            .unwrap_or_default();
                        serde_json::json!({"domain": r["domain"], "headerNames": names})
                    })
                    .collect();
                out.insert("injectionRules".into(), Value::Array(redacted));
            }
            return Value::Object(out);
        }
        Some(mode) => return serde_json::json!({ "mode": mode }),
        None => {}
    }
    let mut domains = Vec::new();
    let mut injection = Vec::new();
    let mut forward = Vec::new();
    match map.get("allow") {
        Some(Value::Array(list)) => domains.extend(list.iter().cloned()),
        Some(Value::Object(record)) => {
            for (domain, rules) in record {
                domains.push(Value::String(domain.clone()));
                for rule in rules.as_array().into_iter().flatten() {
                    if let Some(transforms) = rule["transform"].as_array() {
                        let names: Vec<Value> = transforms
                            .iter()
                            .filter_map(|t| t["headers"].as_object())
                            .flat_map(|h| h.keys().cloned().map(Value::String))
                            .collect();
                        let mut entry = serde_json::json!({"domain": domain, "headerNames": names});
                        if let Some(m) = rule.get("match") {
                            entry["match"] = m.clone();
                        }
                        injection.push(entry);
                    }
                    if let Some(url) = rule.get("forwardURL") {
                        let mut entry = serde_json::json!({"domain": domain, "forwardURL": url});
                        if let Some(m) = rule.get("match") {
                            entry["match"] = m.clone();
                        }
                        forward.push(entry);
                    }
                }
            }
        }
        _ => {}
    }
    let mut out = Map::new();
    out.insert("mode".into(), "custom".into());
    out.insert("allowedDomains".into(), Value::Array(domains));
    if let Some(allow) = map.get("subnets").and_then(|s| s.get("allow")) {
        out.insert("allowedCIDRs".into(), allow.clone());
    }
    if let Some(deny) = map.get("subnets").and_then(|s| s.get("deny")) {
        out.insert("deniedCIDRs".into(), deny.clone());
    }
    if !injection.is_empty() {
        out.insert("injectionRules".into(), Value::Array(injection));
    }
    if !forward.is_empty() {
        out.insert("forwardRules".into(), Value::Array(forward));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn policies_validate_and_redact() {
        let policy = json!({"allow": {
            "api.github.com": [{"transform": [{"headers": {"authorization": "Bearer x"}}]}],
            "registry.npmjs.org": []
        }, "subnets": {"deny": ["10.0.0.0/8"]}});
        assert!(network_policy(&policy).is_ok());
        let shown = response_policy(&policy);
        assert_eq!(
            shown,
            json!({"mode": "custom", "allowedDomains": ["api.github.com", "registry.npmjs.org"],
                   "deniedCIDRs": ["10.0.0.0/8"],
                   "injectionRules": [{"domain": "api.github.com", "headerNames": ["authorization"]}]})
        );
        assert!(!shown.to_string().contains("Bearer x"));
        assert!(network_policy(&json!({"mode": "open"})).is_err());
        assert!(network_policy(&json!({"allow": {"a.com": [{}]}})).is_err());
        assert!(network_policy(&json!({"allow": [], "extra": 1})).is_err());
    }

    #[test]
    fn ports_and_fields() {
        let body = json!({"ports": [3000, 80]});
        assert!(ports(body.as_object().expect("object")).is_err());
        let many: Vec<u16> = (3000..3016).collect();
        let body = json!({ "ports": many });
        assert!(
            ports(body.as_object().expect("object"))
                .expect_err("16 ports")
                .contains("15")
        );
        let body = json!({"command": "ls", "bogus": true});
        assert!(known_fields(body.as_object().expect("object"), RUN_FIELDS, false).is_err());
    }
}
