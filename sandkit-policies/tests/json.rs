//! The stored JSON form: shape, serde, redaction and path-naming errors.

use sandkit_policies::presets::{codex, github, npm};
use sandkit_policies::{CredentialSource, Policy, PolicyError, Secret};
use serde_json::json;

#[test]
fn mode_shapes() {
    assert_eq!(Policy::allow_all().to_json(), r#"{"mode":"allow-all"}"#);
    assert_eq!(Policy::deny_all().to_json(), r#"{"mode":"deny-all"}"#);
    assert_eq!(
        serde_json::to_value(Policy::allow_service(npm()).unwrap()).unwrap(),
        json!({"mode": "allow-services", "services": [{
            "id": "npm",
            "name": "npm",
            "description": "Allow outbound access to the public npm package registry.",
            "domains": ["registry.npmjs.org"]
        }]})
    );
}

#[test]
fn serde_round_trip_and_original_documents() {
    let policy = Policy::allow_services([npm(), github(), codex()]).unwrap();
    let text = serde_json::to_string(&policy).unwrap();
    assert_eq!(serde_json::from_str::<Policy>(&text).unwrap(), policy);
    assert_eq!(Policy::from_json(&text).unwrap(), policy);

    // As the original stores it (valueEncoding omitted, explicit nulls tolerated).
    let original = json!({"mode": "allow-services", "services": [{
        "id": "codex", "name": "Codex", "description": null,
        "domains": ["api.openai.com", "*.openai.com", "openrouter.ai", "*.openrouter.ai"],
        "headers": [{"headerName": "Authorization", "valuePrefix": "Bearer ",
                     "credential": {"kind": "default"}}]
    }]});
    let parsed = Policy::from_json_value(&original).unwrap();
    let expected = Policy::allow_service(codex()).unwrap();
    assert_eq!(
        parsed.services()[0].get_domains(),
        expected.services()[0].get_domains()
    );
    assert_eq!(
        parsed.services()[0].headers(),
        expected.services()[0].headers()
    );
    assert_eq!(parsed.describe(), "allow-services:codex");
}

#[test]
fn value_credentials_parse_but_are_not_durable() {
    let text = r#"{"mode":"allow-services","services":[{"id":"codex","name":"Codex",
        "domains":["api.openai.com"],"headers":[{"headerName":"authorization",
        "valuePrefix":"Bearer ","credential":{"kind":"value","value":"file-secret"}}]}]}"#;
    let policy = Policy::from_json(text).unwrap();
    assert!(policy.has_secrets());
    assert_eq!(
        policy.services()[0].headers()[0].get_credential(),
        &CredentialSource::Secret(Secret::new("file-secret"))
    );
    let err = policy.ensure_durable().unwrap_err();
    assert!(!err.to_string().contains("file-secret"));
    // Serialising again never writes it back.
    assert!(!policy.to_json().contains("file-secret"));
    assert!(!format!("{policy:?}").contains("file-secret"));
}

#[test]
fn redacted_policy_json() {
    let policy = Policy::allow_service(codex().api_key(Secret::new("test-secret-123"))).unwrap();
    let redacted = policy.redacted();
    let value = redacted.to_json_value();
    assert_eq!(
        value["services"][0]["headers"][0],
        json!({"headerName": "authorization", "valuePrefix": "Bearer ",
               "valueEncoding": "plain", "credential": {"kind": "redacted"}})
    );
    assert!(!redacted.to_json().contains("test-secret-123"));
    assert!(!redacted.to_json().contains("\"value\""));
    // Redacted round-trips.
    assert_eq!(Policy::from_json(&redacted.to_json()).unwrap(), redacted);
}

fn err(text: &str) -> PolicyError {
    Policy::from_json(text).expect_err(text)
}

fn path_of(error: &PolicyError) -> &str {
    match error {
        PolicyError::Json { path, .. } | PolicyError::JsonField { path, .. } => path,
        other => panic!("expected a JSON error with a path, got {other:?}"),
    }
}

fn svc(extra: serde_json::Value) -> String {
    let mut service = json!({"id": "s", "name": "S", "domains": ["s.example.com"]});
    if let (Some(base), Some(extra)) = (service.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    json!({"mode": "allow-services", "services": [service]}).to_string()
}

#[test]
fn shape_errors_name_the_path() {
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "$"),
        ("[]".into(), "$"),
        ("null".into(), "$"),
        ("{}".into(), "mode"),
        (r#"{"mode":5}"#.into(), "mode"),
        (r#"{"mode":"allow-all","services":[]}"#.into(), "services"),
        (r#"{"mode":"deny-all","extra":1}"#.into(), "extra"),
        (r#"{"mode":"allow-services"}"#.into(), "services"),
        (
            r#"{"mode":"allow-services","services":{}}"#.into(),
            "services",
        ),
        (
            r#"{"mode":"allow-services","services":[1]}"#.into(),
            "services[0]",
        ),
        (
            r#"{"mode":"allow-services","services":[{"id":"a","name":"A","domains":["a.com"]},
               {"id":"b","name":"B","domains":"b.com"}]}"#
                .into(),
            "services[1].domains",
        ),
        (svc(json!({"id": 7})), "services[0].id"),
        (svc(json!({"name": null})), "services[0].name"),
        (
            svc(json!({"domains": ["a.com", 3]})),
            "services[0].domains[1]",
        ),
        (svc(json!({"domain": "x"})), "services[0].domain"),
        (svc(json!({"headers": {}})), "services[0].headers"),
        (
            svc(json!({"headers": [{"credential": {"kind": "default"}}]})),
            "services[0].headers[0].headerName",
        ),
        (
            svc(
                json!({"headers": [{"headerName": "a", "valueEncoding": "hex", "credential": {"kind": "default"}}]}),
            ),
            "services[0].headers[0].valueEncoding",
        ),
        (
            svc(json!({"headers": [{"headerName": "a"}]})),
            "services[0].headers[0].credential",
        ),
        (
            svc(json!({"headers": [{"headerName": "a", "credential": {"kind": "secret"}}]})),
            "services[0].headers[0].credential.kind",
        ),
        (
            svc(json!({"headers": [{"headerName": "a", "credential": {"kind": "value"}}]})),
            "services[0].headers[0].credential.value",
        ),
        (
            svc(
                json!({"headers": [{"headerName": "a", "credential": {"kind": "default", "value": "x"}}]}),
            ),
            "services[0].headers[0].credential.value",
        ),
        (
            svc(json!({"domainHeaders": []})),
            "services[0].domainHeaders",
        ),
        (
            svc(
                json!({"domainHeaders": {"s.example.com": [{"headerName": 1, "credential": {"kind": "default"}}]}}),
            ),
            r#"services[0].domainHeaders["s.example.com"][0].headerName"#,
        ),
    ];
    for (text, path) in cases {
        let error = err(&text);
        assert!(
            matches!(error, PolicyError::Json { .. }),
            "{text}: {error:?}"
        );
        assert_eq!(path_of(&error), path, "{text}");
        assert!(error.to_string().contains(path), "{error}");
    }
}

#[test]
fn validation_errors_name_the_path_and_keep_the_type() {
    let cases: Vec<(String, &str, PolicyError)> = vec![
        (
            r#"{"mode":"custom"}"#.into(),
            "mode",
            PolicyError::UnknownMode {
                mode: "custom".into(),
            },
        ),
        (
            r#"{"mode":"allow-services","services":[]}"#.into(),
            "services",
            PolicyError::NoServices,
        ),
        (
            r#"{"mode":"allow-services","services":[{"id":"a","name":"A","domains":["a.com"]},
               {"id":"b","name":"B","domains":[" "]}]}"#
                .into(),
            "services[1].domains",
            PolicyError::NoDomains {
                service: "b".into(),
            },
        ),
        (
            svc(json!({"id": " "})),
            "services[0].id",
            PolicyError::EmptyServiceId { index: 0 },
        ),
        (
            svc(json!({"name": ""})),
            "services[0].name",
            PolicyError::MissingName {
                service: "s".into(),
            },
        ),
        (
            svc(json!({"domains": ["ok.com", "https://bad.com"]})),
            "services[0].domains[1]",
            PolicyError::InvalidDomain {
                service: "s".into(),
                domain: "https://bad.com".into(),
                reason: "use a bare host name without a scheme, such as \"api.example.com\"".into(),
            },
        ),
        (
            svc(json!({"headers": [{"headerName": " ", "credential": {"kind": "default"}}]})),
            "services[0].headers[0].headerName",
            PolicyError::EmptyHeaderName {
                service: "s".into(),
            },
        ),
        (
            svc(json!({"domainHeaders": {"x.com": []}})),
            r#"services[0].domainHeaders["x.com"]"#,
            PolicyError::UndeclaredDomainHeaders {
                service: "s".into(),
                domain: "x.com".into(),
            },
        ),
    ];
    for (text, path, inner) in cases {
        let error = err(&text);
        assert!(
            matches!(error, PolicyError::JsonField { .. }),
            "{text}: {error:?}"
        );
        assert_eq!(path_of(&error), path, "{text}");
        assert_eq!(error.innermost(), &inner, "{text}");
    }
}

#[test]
fn empty_value_credential_in_json() {
    let text = svc(
        json!({"headers": [{"headerName": "a", "credential": {"kind": "value", "value": "  "}}]}),
    );
    let error = err(&text);
    assert_eq!(path_of(&error), "services[0].headers[0].credential.value");
    assert!(matches!(
        error.innermost(),
        PolicyError::EmptyCredential { .. }
    ));
}

#[test]
fn non_string_secret_is_not_echoed() {
    let text = svc(
        json!({"headers": [{"headerName": "a", "credential": {"kind": "value", "value": 123456789}}]}),
    );
    let error = err(&text);
    assert!(!error.to_string().contains("123456789"), "{error}");
}

#[test]
fn serde_errors_carry_the_path() {
    let error = serde_json::from_str::<Policy>(
        r#"{"mode":"allow-services","services":[{"id":"a","name":"A","domains":[]}]}"#,
    )
    .unwrap_err();
    assert!(error.to_string().contains("services[0].domains"), "{error}");
}
