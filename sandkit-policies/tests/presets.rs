//! Every preset: its stored JSON form and its compiled rules (insta snapshots; all
//! credentials are obviously fake).

mod common;

use common::{test_env, view};
use sandkit_policies::presets::{self, ai_gateway_from_env, bun, codex, gemini, github, npm};
use sandkit_policies::{MapEnv, Policy, Secret, ServiceDescriptor};

fn gateway() -> ServiceDescriptor {
    // Deterministic: ignores any AI_GATEWAY_BASE_URL in the test process environment.
    ai_gateway_from_env(&MapEnv::new())
}

fn compiled(service: ServiceDescriptor) -> serde_json::Value {
    let policy = Policy::allow_services([service]).unwrap();
    view(&policy.compile(&test_env()).unwrap())
}

fn stored(service: ServiceDescriptor) -> serde_json::Value {
    Policy::allow_services([service]).unwrap().to_json_value()
}

#[test]
fn npm_compiled() {
    insta::assert_json_snapshot!(compiled(npm()));
}

#[test]
fn bun_compiled() {
    insta::assert_json_snapshot!(compiled(bun()));
}

#[test]
fn github_compiled() {
    insta::assert_json_snapshot!(compiled(github()));
}

#[test]
fn codex_compiled() {
    insta::assert_json_snapshot!(compiled(codex()));
}

#[test]
fn gemini_compiled() {
    insta::assert_json_snapshot!(compiled(gemini()));
}

#[test]
fn ai_gateway_compiled() {
    insta::assert_json_snapshot!(compiled(gateway()));
}

#[test]
fn ai_gateway_custom_base_url_compiled() {
    let service = presets::ai_gateway_with_base_url("https://gw.example.test:8443/v1").unwrap();
    insta::assert_json_snapshot!(compiled(service));
}

#[test]
fn explicit_overrides_compiled() {
    let policy = Policy::allow_services([
        codex().api_key(Secret::new("test-explicit-codex")),
        gemini().api_key(Secret::new("test-explicit-gemini")),
        github().token(Secret::new("test-explicit-github")),
        gateway().api_key(Secret::new("test-explicit-gateway")),
    ])
    .unwrap();
    // No environment at all: explicit secrets need none.
    insta::assert_json_snapshot!(view(&policy.compile(&MapEnv::new()).unwrap()));
}

#[test]
fn all_presets_together_compiled() {
    let policy =
        Policy::allow_services([npm(), bun(), github(), codex(), gemini(), gateway()]).unwrap();
    assert_eq!(
        policy.describe(),
        "allow-services:aiGateway,bun,codex,gemini,github,npm"
    );
    insta::assert_json_snapshot!(view(&policy.compile(&test_env()).unwrap()));
}

#[test]
fn all_presets_stored_form() {
    insta::assert_json_snapshot!(serde_json::json!({
        "npm": stored(npm()),
        "bun": stored(bun()),
        "github": stored(github()),
        "codex": stored(codex()),
        "gemini": stored(gemini()),
        "aiGateway": stored(gateway()),
    }));
}

#[test]
fn compiled_debug_is_redacted() {
    let policy = Policy::allow_services([github(), codex()]).unwrap();
    let rules = policy.compile(&test_env()).unwrap();
    let debug = format!("{rules:?}");
    assert!(!debug.contains("test-github-token"), "{debug}");
    assert!(!debug.contains("test-codex-key"), "{debug}");
    assert!(debug.contains("[redacted]"));
    insta::assert_debug_snapshot!(rules);
}

#[test]
fn presets_are_durable_and_need_injection_except_registries() {
    for service in [npm(), bun()] {
        let policy = Policy::allow_services([service]).unwrap();
        assert!(policy.ensure_durable().is_ok());
        assert!(!policy.requires_header_injection());
        assert!(!policy.has_secrets());
    }
    for service in [github(), codex(), gemini(), gateway()] {
        let policy = Policy::allow_services([service]).unwrap();
        assert!(policy.ensure_durable().is_ok());
        assert!(policy.requires_header_injection());
        assert!(!policy.has_secrets());
    }
}
