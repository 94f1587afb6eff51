//! The CLI text form.

use sandkit_policies::{Policy, PolicyError, PolicyMode, presets};

#[test]
fn parses_modes() {
    assert_eq!("allow-all".parse::<Policy>(), Ok(Policy::allow_all()));
    assert_eq!(" DENY-ALL \n".parse::<Policy>(), Ok(Policy::deny_all()));
    assert_eq!(Policy::parse_spec("Allow-All"), Ok(Policy::allow_all()));
}

#[test]
fn parses_preset_lists() {
    let policy: Policy = "npm,github,codex".parse().unwrap();
    assert_eq!(policy.describe(), "allow-services:codex,github,npm");
    assert_eq!(
        policy,
        Policy::allow_services([presets::npm(), presets::github(), presets::codex()]).unwrap()
    );

    let spaced: Policy = "  npm ,\tgithub ,codex  ".parse().unwrap();
    assert_eq!(spaced, policy);

    let dupes: Policy = "npm,npm,NPM".parse().unwrap();
    assert_eq!(dupes.describe(), "allow-services:npm");

    for spelling in ["ai-gateway", "aiGateway", "ai_gateway", "AI-GATEWAY"] {
        let gateway: Policy = spelling.parse().unwrap();
        assert_eq!(gateway.describe(), "allow-services:aiGateway", "{spelling}");
        assert_eq!(gateway.mode(), PolicyMode::AllowServices);
    }

    let all: Policy = presets::NAMES.join(",").parse().unwrap();
    assert_eq!(all.services().len(), presets::NAMES.len());
}

#[test]
fn rejects_bad_specs() {
    let cases = [
        ("", PolicyError::EmptySpec),
        ("   ", PolicyError::EmptySpec),
        ("npm,,foo", PolicyError::EmptyPresetName { position: 2 }),
        (",npm", PolicyError::EmptyPresetName { position: 1 }),
        ("npm,", PolicyError::EmptyPresetName { position: 2 }),
        ("npm, ,github", PolicyError::EmptyPresetName { position: 2 }),
        ("foo", PolicyError::UnknownPreset { name: "foo".into() }),
        (
            "npm, pypi",
            PolicyError::UnknownPreset {
                name: "pypi".into(),
            },
        ),
        (
            "allow-all,npm",
            PolicyError::UnknownPreset {
                name: "allow-all".into(),
            },
        ),
        (
            "deny-all, allow-all",
            PolicyError::UnknownPreset {
                name: "deny-all".into(),
            },
        ),
        (
            "allow-services:npm",
            PolicyError::UnknownPreset {
                name: "allow-services:npm".into(),
            },
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(spec.parse::<Policy>(), Err(expected), "{spec:?}");
    }
}

#[test]
fn unknown_preset_message_lists_every_known_name() {
    let message = "foo".parse::<Policy>().unwrap_err().to_string();
    assert!(message.contains("\"foo\""), "{message}");
    for name in presets::NAMES {
        assert!(message.contains(name), "{message} should list {name}");
    }
    let empty = PolicyError::EmptySpec.to_string();
    for name in presets::NAMES {
        assert!(empty.contains(name), "{empty} should list {name}");
    }
}

#[test]
fn empty_element_message_says_what_to_do() {
    let message = "npm,,foo".parse::<Policy>().unwrap_err().to_string();
    assert!(message.contains("position 2"), "{message}");
    assert!(message.contains("remove the extra comma"), "{message}");
}
