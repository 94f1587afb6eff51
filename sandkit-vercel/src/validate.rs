//! Input checks done before any request, with the limits of §9 of the API contract.

use std::time::Duration;

use sandkit_core::{Error, ExecSpec, Result};
use sandkit_policies::FirewallRules;

/// Shortest session lifetime the API accepts.
pub(crate) const MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(1);
/// Shortest command timeout the API accepts.
pub(crate) const MIN_COMMAND_TIMEOUT: Duration = Duration::from_millis(100);
/// Most vCPUs of any plan (Enterprise).
const MAX_VCPUS: u32 = 32;

/// vCPUs: 1 or an even number up to 32.
pub(crate) fn vcpus(vcpus: Option<u32>) -> Result<()> {
    match vcpus {
        Some(n) if n == 0 || n > MAX_VCPUS || (n != 1 && n % 2 != 0) => {
            Err(Error::invalid_input(format!(
                "{n} vCPUs requested; Vercel Sandbox takes 1 or an even number up to {MAX_VCPUS} \
                 (the plan may allow fewer)"
            )))
        }
        _ => Ok(()),
    }
}

/// Session lifetime within [1 s, plan maximum].
pub(crate) fn session_timeout(timeout: Duration, max: Duration) -> Result<()> {
    if timeout < MIN_SESSION_TIMEOUT {
        return Err(Error::invalid_input(format!(
            "sandbox timeout {}ms is below Vercel's minimum of 1s",
            timeout.as_millis()
        )));
    }
    if timeout > max {
        return Err(Error::invalid_input(format!(
            "sandbox timeout {}s exceeds the {}s plan maximum (45 min on Hobby, 24 h on Pro); \
             ask for less, or extend the session later",
            timeout.as_secs(),
            max.as_secs()
        )));
    }
    Ok(())
}

/// Ports: distinct (capability limits are checked separately).
pub(crate) fn distinct_ports(ports: &[u16]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    match ports.iter().find(|p| !seen.insert(**p)) {
        Some(p) => Err(Error::invalid_input(format!(
            "port {p} is listed twice; list each exposed port once"
        ))),
        None => Ok(()),
    }
}

/// Domains and header names of allow rules are non-empty and free of control characters.
pub(crate) fn rules(rules: &FirewallRules) -> Result<()> {
    let FirewallRules::Allow(domains) = rules else {
        return Ok(());
    };
    for d in domains {
        if d.domain.trim().is_empty() || d.domain.chars().any(|c| c.is_whitespace()) {
            return Err(Error::invalid_input(format!(
                "firewall domain {:?} is empty or contains whitespace; use a host such as api.example.com",
                d.domain
            )));
        }
        for rule in &d.rules {
            for (name, value) in &rule.headers {
                if name.is_empty() || !name.bytes().all(is_header_name_byte) {
                    return Err(Error::invalid_input(format!(
                        "header name {name:?} for domain {} is not a valid HTTP header name",
                        d.domain
                    )));
                }
                if value.expose().chars().any(|c| c.is_control() && c != '\t') {
                    return Err(Error::invalid_input(format!(
                        "the value of header {name} for domain {} contains control characters",
                        d.domain
                    )));
                }
            }
        }
    }
    Ok(())
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A command: non-empty executable, sane env names, timeout ≥ 100 ms.
pub(crate) fn exec(spec: &ExecSpec) -> Result<()> {
    if spec.command.trim().is_empty() {
        return Err(Error::invalid_input(
            "the command is empty; pass an executable such as `sh`",
        ));
    }
    if spec.command.contains('\0') || spec.args.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid_input(
            "the command or an argument contains a NUL byte",
        ));
    }
    if let Some(key) = spec
        .env
        .keys()
        .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
    {
        return Err(Error::invalid_input(format!(
            "environment variable name {key:?} is invalid (empty, or contains '=' or NUL)"
        )));
    }
    if let Some(t) = spec.timeout.filter(|t| *t < MIN_COMMAND_TIMEOUT) {
        return Err(Error::invalid_input(format!(
            "command timeout {}ms is below Vercel's minimum of 100ms",
            t.as_millis()
        )));
    }
    if spec.cwd.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(Error::invalid_input(
            "the working directory is empty; leave it unset for the sandbox default",
        ));
    }
    Ok(())
}

/// Milliseconds as a JSON integer (saturating).
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Checks an id Vercel handed out (session, command, snapshot) before it goes into a
/// URL path: ids are `[A-Za-z0-9_-]+`, so `..` or `/` can never reach another endpoint.
pub(crate) fn api_id(what: &str, id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 256
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "{id:?} is not a Vercel {what} id (letters, digits, '_' and '-' only)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_rules() {
        for ok in [None, Some(1), Some(2), Some(8), Some(32)] {
            assert!(vcpus(ok).is_ok(), "{ok:?}");
        }
        for bad in [0, 3, 5, 34] {
            assert!(vcpus(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts_and_ports() {
        let max = Duration::from_secs(3600);
        assert!(session_timeout(Duration::from_millis(999), max).is_err());
        assert!(session_timeout(Duration::from_secs(3601), max).is_err());
        assert!(session_timeout(Duration::from_secs(60), max).is_ok());
        assert!(distinct_ports(&[3000, 3001]).is_ok());
        assert!(distinct_ports(&[3000, 3000]).is_err());
    }

    #[test]
    fn exec_rules() {
        let mut spec = ExecSpec {
            command: "sh".into(),
            ..ExecSpec::default()
        };
        assert!(exec(&spec).is_ok());
        spec.timeout = Some(Duration::from_millis(50));
        assert!(exec(&spec).is_err());
        spec.timeout = None;
        spec.env.insert("A=B".into(), "x".into());
        assert!(exec(&spec).is_err());
        assert!(
            exec(&ExecSpec {
                command: " ".into(),
                ..ExecSpec::default()
            })
            .is_err()
        );
    }
}
