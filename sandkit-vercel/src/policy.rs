//! [`FirewallRules`] → the network policy request form of §8.1.

use sandkit_policies::FirewallRules;
use serde_json::{Map, Value, json};

/// Compiles firewall rules to the `networkPolicy` request body of the Vercel API.
///
/// * `AllowAll` → `{"mode":"allow-all"}`, `DenyAll` → `{"mode":"deny-all"}`.
/// * `Allow(domains)` → the record form `{"allow": {domain: [rule, …]}}` in the rules'
///   domain order: a plain allowed domain maps to `[]`; a domain with header rules maps
///   to one rule `{"transform":[{"headers":{name: value}}, …]}` holding every header set
///   (services sharing a domain all inject theirs). Credential values are exposed here,
///   so treat the result as secret: never log it.
///
/// ```
/// use sandkit_policies::FirewallRules;
/// let body = sandkit_vercel::network_policy(&FirewallRules::DenyAll);
/// assert_eq!(body, serde_json::json!({"mode": "deny-all"}));
/// ```
pub fn network_policy(rules: &FirewallRules) -> Value {
    match rules {
        FirewallRules::AllowAll => json!({"mode": "allow-all"}),
        FirewallRules::DenyAll => json!({"mode": "deny-all"}),
        FirewallRules::Allow(domains) => {
            let mut allow = Map::new();
            for domain in domains {
                // All header sets of a domain go in one rule's `transform` list: the
                // rules carry no `match`, and the firewall may apply only the first rule
                // that matches, so separate rules would drop later services' headers.
                let transforms: Vec<Value> = domain
                    .rules
                    .iter()
                    .map(|rule| {
                        let headers: Map<String, Value> = rule
                            .headers
                            .iter()
                            .map(|(name, value)| {
                                (name.clone(), Value::String(value.expose().to_owned()))
                            })
                            .collect();
                        json!({"headers": headers})
                    })
                    .collect();
                let rules = if transforms.is_empty() {
                    Vec::new()
                } else {
                    vec![json!({ "transform": transforms })]
                };
                allow.insert(domain.domain.clone(), Value::Array(rules));
            }
            json!({ "allow": allow })
        }
    }
}

/// The credential values inside `rules`, to scrub from anything the server echoes.
pub(crate) fn secret_values(rules: &FirewallRules) -> Vec<String> {
    match rules {
        FirewallRules::Allow(domains) => domains
            .iter()
            .flat_map(|d| d.rules.iter())
            .flat_map(|r| r.headers.values())
            .map(|s| s.expose().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        FirewallRules::AllowAll | FirewallRules::DenyAll => Vec::new(),
    }
}

/// A short description for logs: mode and domains, never header values.
pub(crate) fn describe(rules: &FirewallRules) -> String {
    match rules {
        FirewallRules::AllowAll => "allow-all".to_owned(),
        FirewallRules::DenyAll => "deny-all".to_owned(),
        FirewallRules::Allow(domains) => format!(
            "allow {} domain(s), {} with header injection",
            domains.len(),
            domains.iter().filter(|d| !d.rules.is_empty()).count()
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sandkit_policies::{DomainRule, HeaderRule, Secret};

    use super::*;

    #[test]
    fn services_sharing_a_domain_inject_all_their_headers_in_one_rule() {
        let header = |name: &str, value: &str| HeaderRule {
            headers: BTreeMap::from([(name.to_owned(), Secret::new(value))]),
        };
        let rules = FirewallRules::Allow(vec![DomainRule {
            domain: "api.example.com".into(),
            service_ids: vec!["a".into(), "b".into()],
            rules: vec![header("x-a", "fake-a"), header("x-b", "fake-b")],
        }]);
        assert_eq!(
            network_policy(&rules),
            json!({"allow": {"api.example.com": [
                {"transform": [{"headers": {"x-a": "fake-a"}}, {"headers": {"x-b": "fake-b"}}]}
            ]}})
        );
    }
}
