//! The TypeScript original's policy tests (§10.3, §10.4) and policy smokes (§11.4, §11.5).

mod common;

use common::headers_on;
use sandkit_policies::presets::{
    AI_GATEWAY_BASE_URL, ai_gateway_from_env, ai_gateway_with_base_url, bun, codex, gemini, github,
    npm,
};
use sandkit_policies::{
    CredentialSource, MapEnv, Policy, PolicyError, PolicyMode, Secret, ServiceDescriptor,
};
use serde_json::json;

// §10.3 policies/ai-gateway.test.ts ---------------------------------------------------------

#[test]
fn ai_gateway_derives_domains_from_base_url_hostname() {
    let service = ai_gateway_with_base_url("https://api.example.com:8443/v1").unwrap();
    assert_eq!(
        service.get_domains(),
        ["api.example.com", "*.api.example.com"]
    );
    let policy = Policy::allow_services([service]).unwrap();
    assert_eq!(
        policy.services()[0].get_domains(),
        ["*.api.example.com", "api.example.com"]
    );
}

#[test]
fn ai_gateway_falls_back_to_env_base_url_and_strips_ports() {
    let env = MapEnv::new().with(AI_GATEWAY_BASE_URL, "https://env.example.net:9443/gateway");
    let service = ai_gateway_from_env(&env);
    assert_eq!(
        service.get_domains(),
        ["env.example.net", "*.env.example.net"]
    );
    assert_eq!(service.id(), "aiGateway");
}

#[test]
fn ai_gateway_uses_default_credential_for_authorization_header() {
    let service = ai_gateway_from_env(&MapEnv::new());
    let [header] = service.headers() else {
        panic!("expected one header transform");
    };
    assert_eq!(header.header_name(), "authorization");
    assert_eq!(header.get_value_prefix(), "Bearer ");
    assert_eq!(header.get_credential(), &CredentialSource::Default);
}

// §10.4 policies/package-registries.test.ts -------------------------------------------------

#[test]
fn npm_allows_the_public_registry_hostname() {
    let policy = Policy::allow_service(npm()).unwrap();
    let verdict = policy.evaluate("https://registry.npmjs.org/react");
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(verdict.service_id.as_deref(), Some("npm"));
    assert_eq!(verdict.domain.as_deref(), Some("registry.npmjs.org"));
}

#[test]
fn npm_does_not_broaden_to_unrelated_npm_web_hosts() {
    let policy = Policy::allow_service(npm()).unwrap();
    let verdict = policy.evaluate("https://www.npmjs.com/package/react");
    assert!(!verdict.allowed);
    assert_eq!(verdict.service_id, None);
}

#[test]
fn bun_allows_install_endpoints() {
    let policy = Policy::allow_service(bun()).unwrap();
    for target in ["https://bun.sh/install", "https://bun.com/install"] {
        let verdict = policy.evaluate(target);
        assert!(verdict.allowed, "{target}: {verdict:?}");
        assert_eq!(verdict.service_id.as_deref(), Some("bun"));
    }
}

// §11.4 policy-smoke ---------------------------------------------------------------------------

#[test]
fn policy_ids_match_the_original() {
    assert_eq!(Policy::deny_all().describe(), "deny-all");
    assert_eq!(
        Policy::allow_service(codex()).unwrap().describe(),
        "allow-services:codex"
    );
    assert_eq!(Policy::allow_all().describe(), "allow-all");
}

#[test]
fn wildcard_does_not_match_apex() {
    let policy =
        Policy::allow_service(ServiceDescriptor::new("example", "Example").domain("*.example.com"))
            .unwrap();
    assert!(!policy.evaluate("https://example.com").allowed);
    let verdict = policy.evaluate("https://api.example.com");
    assert!(verdict.allowed);
    assert_eq!(verdict.domain.as_deref(), Some("*.example.com"));

    let rules = policy.compile(&MapEnv::new()).unwrap();
    assert_eq!(
        rules.evaluate("https://example.com"),
        policy.evaluate("https://example.com")
    );
    assert_eq!(
        rules.evaluate("https://api.example.com"),
        policy.evaluate("https://api.example.com")
    );
}

// §11.5 policy-credentials-smoke ---------------------------------------------------------------

fn env_secret() -> MapEnv {
    MapEnv::new()
        .with("CODEX_API_KEY", "env-secret")
        .with("GITHUB_TOKEN", "env-secret")
}

#[test]
fn codex_default_credential_from_env() {
    let rules = Policy::allow_service(codex())
        .unwrap()
        .compile(&env_secret())
        .unwrap();
    assert_eq!(
        headers_on(&rules, "api.openai.com"),
        [json!({"authorization": "Bearer env-secret"})
            .as_object()
            .unwrap()
            .clone()]
    );
}

#[test]
fn github_default_credential_from_env() {
    let rules = Policy::allow_service(github())
        .unwrap()
        .compile(&env_secret())
        .unwrap();
    assert_eq!(
        headers_on(&rules, "github.com"),
        [
            json!({"authorization": "Basic eC1hY2Nlc3MtdG9rZW46ZW52LXNlY3JldA=="})
                .as_object()
                .unwrap()
                .clone()
        ]
    );
    assert_eq!(
        headers_on(&rules, "api.github.com"),
        [json!({"authorization": "Bearer env-secret"})
            .as_object()
            .unwrap()
            .clone()]
    );
    assert!(headers_on(&rules, "*.githubusercontent.com").is_empty());
}

#[test]
fn explicit_credentials_need_no_env() {
    let policy = Policy::allow_services([
        codex().api_key(Secret::new("explicit-secret")),
        github().token(Secret::new("explicit-secret")),
    ])
    .unwrap();
    let rules = policy.compile(&MapEnv::new()).unwrap();
    assert_eq!(
        headers_on(&rules, "api.openai.com"),
        [json!({"authorization": "Bearer explicit-secret"})
            .as_object()
            .unwrap()
            .clone()]
    );
    assert_eq!(
        headers_on(&rules, "github.com"),
        [
            json!({"authorization": "Basic eC1hY2Nlc3MtdG9rZW46ZXhwbGljaXQtc2VjcmV0"})
                .as_object()
                .unwrap()
                .clone()
        ]
    );
    assert_eq!(
        headers_on(&rules, "api.github.com"),
        [json!({"authorization": "Bearer explicit-secret"})
            .as_object()
            .unwrap()
            .clone()]
    );
    assert!(headers_on(&rules, "*.githubusercontent.com").is_empty());
}

#[test]
fn missing_env_credential_fails_compilation() {
    let err = Policy::allow_service(codex())
        .unwrap()
        .compile(&MapEnv::new())
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::MissingCredential {
            service: "codex".into(),
            variable: "CODEX_API_KEY".into()
        }
    );
    assert!(err.to_string().contains("requires CODEX_API_KEY"), "{err}");

    // A blank variable counts as missing.
    let blank = MapEnv::new().with("GITHUB_TOKEN", "  ");
    let err = Policy::allow_service(github())
        .unwrap()
        .compile(&blank)
        .unwrap_err();
    assert!(err.to_string().contains("requires GITHUB_TOKEN"), "{err}");
}

#[test]
fn empty_explicit_overrides_are_errors_not_fallbacks() {
    // Even with the env set, an empty override must not fall back to it.
    let cases = [
        (
            codex().api_key(Secret::new("")),
            "codex",
            "CODEX_API_KEY",
            ".api_key(",
        ),
        (
            gemini().api_key(Secret::new(" ")),
            "gemini",
            "GEMINI_API_KEY",
            ".api_key(",
        ),
        (
            github().token(Secret::new("   ")),
            "github",
            "GITHUB_TOKEN",
            ".token(",
        ),
        (
            ai_gateway_from_env(&MapEnv::new()).api_key(Secret::new("\t")),
            "aiGateway",
            "AI_GATEWAY_API_KEY",
            ".api_key(",
        ),
    ];
    for (service, id, variable, method) in cases {
        let err = Policy::allow_service(service).unwrap_err();
        let PolicyError::EmptyCredential { service, hint } = &err else {
            panic!("expected EmptyCredential, got {err:?}");
        };
        assert_eq!(service, id);
        assert!(hint.contains(variable), "{hint}");
        assert!(hint.contains(method), "{hint}");
        assert!(err.to_string().contains(variable), "{err}");
    }
}

#[test]
fn explicit_secrets_cannot_be_stored_durably() {
    let policy = Policy::allow_service(codex().api_key(Secret::new("explicit-secret"))).unwrap();
    assert!(policy.has_secrets());
    let err = policy.ensure_durable().unwrap_err();
    assert_eq!(
        err,
        PolicyError::NotDurable {
            service: "codex".into()
        }
    );
    assert!(
        err.to_string().contains("cannot be stored durably"),
        "{err}"
    );
    assert!(!err.to_string().contains("explicit-secret"));

    // The redacted form is durable but cannot be applied.
    let redacted = policy.redacted();
    assert!(redacted.ensure_durable().is_ok());
    assert!(!redacted.has_secrets());
    assert_eq!(
        redacted.compile(&env_secret()).unwrap_err(),
        PolicyError::RedactedCredential {
            service: "codex".into()
        }
    );
}

#[test]
fn per_run_snapshot_is_redacted() {
    let policy = Policy::allow_services([
        codex().api_key(Secret::new("explicit-secret")),
        github().token(Secret::new("explicit-secret")),
        npm(),
    ])
    .unwrap();
    // Serialising redacts by itself; `redacted()` is what gets stored.
    for stored in [
        policy.redacted().to_json(),
        policy.to_json(),
        serde_json::to_string(&policy).unwrap(),
    ] {
        assert!(!stored.contains("explicit-secret"), "{stored}");
        let value: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(value["mode"], "allow-services");
        let credential = &value["services"][0]["headers"][0]["credential"];
        assert_eq!(credential, &json!({"kind": "redacted"}));
        assert!(credential.get("value").is_none());
        let github_credential =
            &value["services"][1]["domainHeaders"]["github.com"][0]["credential"];
        assert_eq!(github_credential, &json!({"kind": "redacted"}));
    }
    // Default credentials stay default.
    let durable = Policy::allow_service(codex())
        .unwrap()
        .redacted()
        .to_json_value();
    assert_eq!(
        durable["services"][0]["headers"][0]["credential"],
        json!({"kind": "default"})
    );
}

#[test]
fn mode_accessor() {
    assert_eq!(Policy::allow_all().mode(), PolicyMode::AllowAll);
    assert_eq!(Policy::deny_all().mode(), PolicyMode::DenyAll);
    let policy = Policy::allow_services([npm(), bun()]).unwrap();
    assert_eq!(policy.mode(), PolicyMode::AllowServices);
    let ids: Vec<&str> = policy.services().iter().map(|s| s.id()).collect();
    assert_eq!(ids, ["bun", "npm"]);
}
