//! Policy compilation to the §8.1 request form, for every preset (insta snapshots with
//! obviously fake secrets), and the fake storing what was sent.

use sandkit_core::Provider;
use sandkit_policies::{FirewallRules, MapEnv, Policy, ServiceDescriptor, presets};
use sandkit_testkit::provider_suite::fresh;
use sandkit_vercel::fake::FakeVercel;
use sandkit_vercel::network_policy;

fn env() -> MapEnv {
    MapEnv::new()
        .with("GITHUB_TOKEN", "fake-github-token")
        .with("CODEX_API_KEY", "fake-codex-key")
        .with("GEMINI_API_KEY", "fake-gemini-key")
        .with("AI_GATEWAY_API_KEY", "fake-gateway-key")
}

fn compile(services: Vec<ServiceDescriptor>) -> FirewallRules {
    Policy::allow_services(services)
        .expect("policy")
        .compile(&env())
        .expect("compile")
}

#[test]
fn modes() {
    insta::assert_json_snapshot!("allow_all", network_policy(&FirewallRules::AllowAll));
    insta::assert_json_snapshot!("deny_all", network_policy(&FirewallRules::DenyAll));
    insta::assert_json_snapshot!(
        "allow_nothing",
        network_policy(&FirewallRules::Allow(Vec::new()))
    );
}

#[test]
fn presets_compile_to_the_record_form() {
    let env = env();
    let cases = [
        ("npm", presets::npm()),
        ("bun", presets::bun()),
        ("github", presets::github()),
        ("codex", presets::codex()),
        ("gemini", presets::gemini()),
        ("ai_gateway", presets::ai_gateway_from_env(&env)),
    ];
    for (name, preset) in cases {
        insta::assert_json_snapshot!(name, network_policy(&compile(vec![preset])));
    }
}

#[test]
fn several_services_keep_the_compiled_domain_order() {
    insta::assert_json_snapshot!(
        "npm_github_codex",
        network_policy(&compile(vec![
            presets::npm(),
            presets::github(),
            presets::codex()
        ]))
    );
}

#[tokio::test]
async fn the_fake_stores_the_policy_as_sent_and_answers_without_secrets() {
    let fake = FakeVercel::start().await;
    let rules = compile(vec![presets::github(), presets::npm()]);
    let mut spec = fresh("policy");
    spec.rules = rules.clone();
    let session = fake.provider().start(spec).await.expect("start");
    assert_eq!(
        fake.network_policy(&session.session_ref().id),
        Some(network_policy(&rules))
    );
    // Answers carry the response form: header names, never their values.
    let answer = reqwest::Client::new()
        .get(format!(
            "{}/v2/sandboxes/sessions/{}?teamId=team_abc",
            fake.uri(),
            session.session_ref().id
        ))
        .bearer_auth("tok")
        .send()
        .await
        .expect("get session")
        .text()
        .await
        .expect("body");
    assert!(
        answer.contains(r#""headerNames":["authorization"]"#),
        "{answer}"
    );
    assert!(!answer.contains("fake-github-token"), "{answer}");
    session
        .set_policy(&FirewallRules::DenyAll)
        .await
        .expect("set");
    assert_eq!(
        fake.network_policy(&session.session_ref().id),
        Some(serde_json::json!({"mode": "deny-all"}))
    );
}
