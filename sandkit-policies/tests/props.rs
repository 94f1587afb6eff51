//! Property tests: redaction never leaks, parsers never panic, JSON round-trips.

use proptest::prelude::*;
use sandkit_policies::presets::{self, ai_gateway_from_env, codex, gemini, github};
use sandkit_policies::{
    CredentialSource, HeaderEncoding, HeaderTransform, MapEnv, Policy, Secret, ServiceDescriptor,
};
use serde_json::{Map, Value, json};

/// Never appears in any fixed JSON text, so its absence proves the secret is absent
/// whatever escaping the serialiser applies to the rest of the secret.
const MARK: &str = "SECRETMARK-";

fn service_with_secret(choice: u8, secret: Secret) -> ServiceDescriptor {
    match choice % 5 {
        0 => codex().api_key(secret),
        1 => gemini().api_key(secret),
        2 => github().token(secret),
        3 => ai_gateway_from_env(&MapEnv::new()).api_key(secret),
        _ => ServiceDescriptor::new("custom", "Custom")
            .domains(["a.example.com", "b.example.com"])
            .domain_header(
                "b.example.com",
                HeaderTransform::new("x-key")
                    .encoding(HeaderEncoding::Base64)
                    .credential(CredentialSource::Secret(secret)),
            ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// (a) `redacted()` output, serialised any way, never contains the secret; neither
    /// does serialising or debugging the unredacted policy.
    #[test]
    fn redaction_never_leaks(tail in "\\PC{0,40}", choice in 0u8..5, extra_npm in any::<bool>()) {
        let raw = format!("{MARK}{tail}");
        let mut services = vec![service_with_secret(choice, Secret::new(raw.clone()))];
        if extra_npm {
            services.push(presets::npm());
        }
        let policy = Policy::allow_services(services).unwrap();
        prop_assert!(policy.has_secrets());

        let redacted = policy.redacted();
        prop_assert!(!redacted.has_secrets());
        prop_assert!(redacted.ensure_durable().is_ok());
        let outputs = [
            redacted.to_json(),
            serde_json::to_string(&redacted).unwrap(),
            serde_json::to_string_pretty(&redacted.to_json_value()).unwrap(),
            format!("{redacted:?}"),
            policy.to_json(),
            format!("{policy:?}"),
            format!("{:?}", policy.compile(&MapEnv::new()).unwrap()),
            policy.ensure_durable().unwrap_err().to_string(),
        ];
        for output in &outputs {
            prop_assert!(!output.contains(MARK), "leaked in {}", output);
            prop_assert!(!output.contains(&raw));
        }
        // Sanity: the secret really is in the policy, so its absence above means something.
        let expected = CredentialSource::Secret(Secret::new(raw.clone()));
        prop_assert!(policy
            .services()
            .iter()
            .flat_map(|s| s.all_transforms())
            .any(|t| t.get_credential() == &expected));
    }

    /// (b) The parsers never panic on arbitrary strings.
    #[test]
    fn parsers_never_panic_on_strings(text in "\\PC{0,200}") {
        let _ = Policy::from_json(&text);
        let _ = text.parse::<Policy>();
        let _ = serde_json::from_str::<Policy>(&text);
    }

    /// (b) ... nor on JSON-ish text.
    #[test]
    fn parsers_never_panic_on_jsonish(text in "[\\[\\]{}:,\" a-zA-Z0-9.*-]{0,120}") {
        let _ = Policy::from_json(&text);
        let _ = text.parse::<Policy>();
    }

    /// (b) ... nor on structured documents close to the real shape.
    #[test]
    fn parser_never_panics_on_structured_json(services in prop::collection::vec(arb_json(), 0..4), mode in arb_mode()) {
        let doc = json!({"mode": mode, "services": services});
        let _ = Policy::from_json_value(&doc);
        let _ = Policy::from_json(&doc.to_string());
    }

    /// (c) Serialise → parse round-trips any valid policy without secrets.
    #[test]
    fn json_round_trip(policy in arb_policy()) {
        prop_assert!(!policy.has_secrets());
        let text = policy.to_json();
        let back = Policy::from_json(&text).unwrap();
        prop_assert_eq!(&back, &policy);
        let via_serde: Policy = serde_json::from_str(&serde_json::to_string(&policy).unwrap()).unwrap();
        prop_assert_eq!(&via_serde, &policy);
        // Normalisation is idempotent.
        if policy.mode() == sandkit_policies::PolicyMode::AllowServices {
            prop_assert_eq!(Policy::allow_services(policy.services()).unwrap(), policy);
        }
    }
}

fn arb_mode() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("allow-services")),
        Just(json!("allow-all")),
        Just(json!("deny-all")),
        "[a-z-]{0,12}".prop_map(Value::String),
        Just(Value::Null),
        Just(json!(1)),
    ]
}

const KEYS: [&str; 14] = [
    "id",
    "name",
    "description",
    "domains",
    "headers",
    "domainHeaders",
    "headerName",
    "valuePrefix",
    "credentialPrefix",
    "valueEncoding",
    "credential",
    "kind",
    "value",
    "x.com",
];

/// Arbitrary JSON built from the policy vocabulary.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![
            Just("default".to_owned()),
            Just("redacted".to_owned()),
            Just("value".to_owned()),
            Just("base64".to_owned()),
            Just("plain".to_owned()),
            Just("x.com".to_owned()),
            Just("*.x.com".to_owned()),
            "\\PC{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..6).prop_map(
                |entries| {
                    Value::Object(
                        entries
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<String, Value>>(),
                    )
                }
            ),
        ]
    })
}

fn arb_domain() -> impl Strategy<Value = String> {
    "(\\*\\.)?[a-z0-9][a-z0-9-]{0,6}(\\.[a-z0-9]{1,6}){0,2}"
}

fn arb_transform() -> impl Strategy<Value = HeaderTransform> {
    (
        "[A-Za-z][A-Za-z0-9-]{0,10}",
        "\\PC{0,8}",
        "\\PC{0,8}",
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(name, value_prefix, credential_prefix, base64, redacted)| {
                HeaderTransform::new(name)
                    .value_prefix(value_prefix)
                    .credential_prefix(credential_prefix)
                    .encoding(if base64 {
                        HeaderEncoding::Base64
                    } else {
                        HeaderEncoding::Plain
                    })
                    .credential(if redacted {
                        CredentialSource::Redacted
                    } else {
                        CredentialSource::Default
                    })
            },
        )
}

fn arb_service() -> impl Strategy<Value = ServiceDescriptor> {
    (
        "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
        "[A-Za-z0-9][A-Za-z0-9 ._-]{0,12}",
        prop::option::of("\\PC{0,20}"),
        prop::collection::vec(arb_domain(), 1..4),
        prop::collection::vec(arb_transform(), 0..3),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop::collection::vec(arb_transform(), 0..2),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(id, name, description, domains, headers, domain_headers)| {
                let mut service = ServiceDescriptor::new(id, name).domains(domains.clone());
                if let Some(description) = description {
                    service = service.description(description);
                }
                for header in headers {
                    service = service.header(header);
                }
                for (index, list) in domain_headers {
                    service = service.domain_header_list(index.get(&domains).clone(), list);
                }
                service
            },
        )
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        1 => Just(Policy::allow_all()),
        1 => Just(Policy::deny_all()),
        8 => prop::collection::vec(arb_service(), 1..4)
            .prop_map(|services| Policy::allow_services(services).unwrap()),
    ]
}
