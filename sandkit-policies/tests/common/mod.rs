//! Helpers shared by the integration tests.
#![allow(dead_code)]

use sandkit_policies::{FirewallRules, MapEnv};
use serde_json::{Map, Value, json};

/// Obviously fake credentials for every preset variable.
pub fn test_env() -> MapEnv {
    MapEnv::new()
        .with("CODEX_API_KEY", "test-codex-key")
        .with("GEMINI_API_KEY", "test-gemini-key")
        .with("GITHUB_TOKEN", "test-github-token")
        .with("AI_GATEWAY_API_KEY", "test-gateway-key")
}

/// A JSON view of compiled rules that deliberately exposes header values
/// (for snapshots with fake secrets only).
pub fn view(rules: &FirewallRules) -> Value {
    match rules {
        FirewallRules::AllowAll => json!("allow-all"),
        FirewallRules::DenyAll => json!("deny-all"),
        FirewallRules::Allow(domains) => Value::Array(
            domains
                .iter()
                .map(|d| {
                    let rules: Vec<Value> = d
                        .rules
                        .iter()
                        .map(|r| {
                            let headers: Map<String, Value> = r
                                .headers
                                .iter()
                                .map(|(k, v)| (k.clone(), json!(v.expose())))
                                .collect();
                            Value::Object(headers)
                        })
                        .collect();
                    json!({ "domain": d.domain, "serviceIds": d.service_ids, "rules": rules })
                })
                .collect(),
        ),
    }
}

/// The header map of the single rule on `domain` (panics in tests if absent).
pub fn headers_on(rules: &FirewallRules, domain: &str) -> Vec<Map<String, Value>> {
    let FirewallRules::Allow(domains) = rules else {
        panic!("expected an allow list, got {rules:?}");
    };
    let rule = domains
        .iter()
        .find(|d| d.domain == domain)
        .unwrap_or_else(|| panic!("no rule for {domain}"));
    rule.rules
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v.expose())))
                .collect()
        })
        .collect()
}
