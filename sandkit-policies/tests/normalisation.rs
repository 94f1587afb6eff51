//! Normalisation (the original's `allowServices`) and compilation semantics (§6.6).

mod common;

use common::{headers_on, view};
use sandkit_policies::{
    CredentialSource, FirewallRules, HeaderEncoding, HeaderTransform, MapEnv, Policy, PolicyError,
    Secret, ServiceDescriptor,
};
use serde_json::json;

fn secret(value: &str) -> CredentialSource {
    CredentialSource::Secret(Secret::new(value))
}

#[test]
fn trims_lower_cases_dedupes_and_sorts() {
    let policy = Policy::allow_services([
        ServiceDescriptor::new("  zeta ", "  Zeta  ")
            .description("   ")
            .domains([
                " B.example.com ",
                "a.example.com",
                "b.example.com.",
                "",
                "  ",
            ])
            .header(HeaderTransform::new("  X-Api-Key ").credential(secret("k"))),
        ServiceDescriptor::new("alpha", "Alpha")
            .description("  first  ")
            .domain("alpha.example.com"),
    ])
    .unwrap();
    let [alpha, zeta] = policy.services() else {
        panic!("two services expected");
    };
    assert_eq!(alpha.id(), "alpha");
    assert_eq!(alpha.get_description(), Some("first"));
    assert_eq!(zeta.id(), "zeta");
    assert_eq!(zeta.name(), "Zeta");
    assert_eq!(zeta.get_description(), None);
    assert_eq!(zeta.get_domains(), ["a.example.com", "b.example.com"]);
    assert_eq!(zeta.headers()[0].header_name(), "x-api-key");
    assert_eq!(policy.describe(), "allow-services:alpha,zeta");
}

#[test]
fn later_duplicate_service_id_wins() {
    let policy = Policy::allow_services([
        ServiceDescriptor::new("svc", "First").domain("first.example.com"),
        ServiceDescriptor::new(" svc ", "Second").domain("second.example.com"),
    ])
    .unwrap();
    assert_eq!(policy.services().len(), 1);
    assert_eq!(policy.services()[0].name(), "Second");
    assert_eq!(policy.services()[0].get_domains(), ["second.example.com"]);
}

#[test]
fn prefixes_are_kept_verbatim() {
    let policy = Policy::allow_service(
        ServiceDescriptor::new("s", "S")
            .domain("s.example.com")
            .header(
                HeaderTransform::new("authorization")
                    .value_prefix("  Token ")
                    .credential(secret("k")),
            ),
    )
    .unwrap();
    assert_eq!(
        policy.services()[0].headers()[0].get_value_prefix(),
        "  Token "
    );
}

#[test]
fn rejects_malformed_services() {
    let domain = |id: &str| ServiceDescriptor::new(id, "Name").domain("ok.example.com");
    let cases: Vec<(Vec<ServiceDescriptor>, PolicyError)> = vec![
        (vec![], PolicyError::NoServices),
        (
            vec![
                domain("a"),
                ServiceDescriptor::new("  ", "Name").domain("x.com"),
            ],
            PolicyError::EmptyServiceId { index: 1 },
        ),
        (
            vec![ServiceDescriptor::new("a", " ").domain("x.com")],
            PolicyError::MissingName {
                service: "a".into(),
            },
        ),
        (
            vec![ServiceDescriptor::new("a", "A")],
            PolicyError::NoDomains {
                service: "a".into(),
            },
        ),
        (
            vec![ServiceDescriptor::new("a", "A").domains(["", "   "])],
            PolicyError::NoDomains {
                service: "a".into(),
            },
        ),
        (
            vec![domain("a").header(HeaderTransform::new("   "))],
            PolicyError::EmptyHeaderName {
                service: "a".into(),
            },
        ),
        (
            vec![domain("a").header(HeaderTransform::new("bad header"))],
            PolicyError::InvalidHeaderName {
                service: "a".into(),
                header: "bad header".into(),
            },
        ),
        (
            vec![domain("a").domain_header("other.example.com", HeaderTransform::bearer())],
            PolicyError::UndeclaredDomainHeaders {
                service: "a".into(),
                domain: "other.example.com".into(),
            },
        ),
    ];
    for (services, expected) in cases {
        assert_eq!(Policy::allow_services(services), Err(expected));
    }
}

#[test]
fn rejects_invalid_domains_with_a_reason() {
    for bad in [
        "https://x.com",
        "x.com/path",
        "x.com:443",
        "*",
        "a.*.com",
        "a..com",
    ] {
        let err = Policy::allow_service(ServiceDescriptor::new("a", "A").domain(bad)).unwrap_err();
        let PolicyError::InvalidDomain {
            service,
            domain,
            reason,
        } = &err
        else {
            panic!("{bad}: expected InvalidDomain, got {err:?}");
        };
        assert_eq!(service, "a");
        assert_eq!(domain, bad);
        assert!(!reason.is_empty());
    }
}

#[test]
fn blank_custom_secret_has_generic_hint() {
    let err = Policy::allow_service(
        ServiceDescriptor::new("custom", "Custom")
            .domain("c.example.com")
            .header(HeaderTransform::new("x-key").credential(secret("  "))),
    )
    .unwrap_err();
    assert!(matches!(err, PolicyError::EmptyCredential { ref service, .. } if service == "custom"));
}

#[test]
fn overriding_a_service_without_credentials_is_an_error() {
    let err = Policy::allow_service(sandkit_policies::presets::npm().api_key(Secret::new("x")))
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::NothingToOverride {
            service: "npm".into()
        }
    );
}

#[test]
fn domain_header_keys_are_normalised() {
    let policy = Policy::allow_service(
        ServiceDescriptor::new("s", "S")
            .domain("api.example.com")
            .domain_header(
                " API.Example.com. ",
                HeaderTransform::new("x-a").credential(secret("1")),
            )
            .domain_header(
                "   ",
                HeaderTransform::new("x-dropped").credential(secret("2")),
            ),
    )
    .unwrap();
    let keys: Vec<&String> = policy.services()[0].domain_headers().keys().collect();
    assert_eq!(keys, ["api.example.com"]);
}

#[test]
fn compile_merges_one_list_into_one_rule() {
    let policy = Policy::allow_service(
        ServiceDescriptor::new("s", "S")
            .domain("api.example.com")
            .header(HeaderTransform::new("X-One").credential(secret("1")))
            .header(
                HeaderTransform::new("x-two")
                    .value_prefix("P ")
                    .credential_prefix("user:")
                    .encoding(HeaderEncoding::Base64)
                    .credential(secret("pw")),
            ),
    )
    .unwrap();
    let rules = policy.compile(&MapEnv::new()).unwrap();
    // base64("user:pw") = dXNlcjpwdw==
    assert_eq!(
        view(&rules),
        json!([{
            "domain": "api.example.com",
            "serviceIds": ["s"],
            "rules": [{"x-one": "1", "x-two": "P dXNlcjpwdw=="}]
        }])
    );
}

#[test]
fn domain_headers_replace_service_headers_even_when_empty() {
    let policy = Policy::allow_service(
        ServiceDescriptor::new("s", "S")
            .domains(["a.example.com", "b.example.com", "c.example.com"])
            .header(HeaderTransform::new("x-all").credential(secret("all")))
            .domain_header(
                "b.example.com",
                HeaderTransform::new("x-b").credential(secret("b")),
            )
            .domain_header_list("c.example.com", []),
    )
    .unwrap();
    let rules = policy.compile(&MapEnv::new()).unwrap();
    assert_eq!(
        view(&rules),
        json!([
            {"domain": "a.example.com", "serviceIds": ["s"], "rules": [{"x-all": "all"}]},
            {"domain": "b.example.com", "serviceIds": ["s"], "rules": [{"x-b": "b"}]},
            {"domain": "c.example.com", "serviceIds": ["s"], "rules": []},
        ])
    );
}

#[test]
fn services_sharing_a_domain_concatenate() {
    let policy = Policy::allow_services([
        ServiceDescriptor::new("b", "B")
            .domains(["shared.example.com", "b.example.com"])
            .header(HeaderTransform::new("x-b").credential(secret("b"))),
        ServiceDescriptor::new("a", "A")
            .domain("shared.example.com")
            .header(HeaderTransform::new("x-a").credential(secret("a"))),
        ServiceDescriptor::new("c", "C").domain("shared.example.com"),
    ])
    .unwrap();
    let rules = policy.compile(&MapEnv::new()).unwrap();
    assert_eq!(
        view(&rules),
        json!([
            {"domain": "shared.example.com", "serviceIds": ["a", "b", "c"],
             "rules": [{"x-a": "a"}, {"x-b": "b"}]},
            {"domain": "b.example.com", "serviceIds": ["b"], "rules": [{"x-b": "b"}]},
        ])
    );
    assert_eq!(headers_on(&rules, "shared.example.com").len(), 2);
}

#[test]
fn custom_default_credential_has_no_variable() {
    let policy = Policy::allow_service(
        ServiceDescriptor::new("custom", "Custom")
            .domain("c.example.com")
            .header(HeaderTransform::bearer()),
    )
    .unwrap();
    assert_eq!(
        policy.compile(&MapEnv::new()),
        Err(PolicyError::NoDefaultCredential {
            service: "custom".into()
        })
    );
}

#[test]
fn allow_all_and_deny_all_compile() {
    assert_eq!(
        Policy::allow_all().compile(&MapEnv::new()),
        Ok(FirewallRules::AllowAll)
    );
    assert_eq!(
        Policy::deny_all().compile(&MapEnv::new()),
        Ok(FirewallRules::DenyAll)
    );
    assert!(!FirewallRules::AllowAll.has_header_rules());
}

#[test]
fn evaluator_cases() {
    let policy = Policy::allow_services([
        ServiceDescriptor::new("wild", "Wild").domain("*.example.com"),
        ServiceDescriptor::new("exact", "Exact").domain("api.example.com"),
        ServiceDescriptor::new("other", "Other").domain("Other.Test"),
    ])
    .unwrap();
    let rules = policy.compile(&MapEnv::new()).unwrap();
    let cases: [(&str, bool, Option<&str>, Option<&str>); 11] = [
        (
            "https://api.example.com/v1?q=1",
            true,
            Some("exact"),
            Some("api.example.com"),
        ),
        (
            "https://deep.api.example.com",
            true,
            Some("wild"),
            Some("*.example.com"),
        ),
        ("https://example.com", false, None, None),
        ("https://notexample.com", false, None, None),
        (
            "HTTPS://OTHER.TEST./path",
            true,
            Some("other"),
            Some("other.test"),
        ),
        ("other.test:8443/x", true, Some("other"), Some("other.test")),
        ("other.test", true, Some("other"), Some("other.test")),
        (
            "http://other.test:80",
            true,
            Some("other"),
            Some("other.test"),
        ),
        ("", false, None, None),
        ("https://", false, None, None),
        ("not a url", false, None, None),
    ];
    for (target, allowed, service, domain) in cases {
        for verdict in [policy.evaluate(target), rules.evaluate(target)] {
            assert_eq!(verdict.allowed, allowed, "{target}: {verdict:?}");
            assert_eq!(verdict.service_id.as_deref(), service, "{target}");
            assert_eq!(verdict.domain.as_deref(), domain, "{target}");
            assert!(!verdict.reason.is_empty());
        }
    }
    assert!(Policy::allow_all().evaluate("anything at all").allowed);
    assert!(!Policy::deny_all().evaluate("https://example.com").allowed);
    assert!(
        policy
            .evaluate("not a url")
            .reason
            .contains("invalid target URL")
    );
}
