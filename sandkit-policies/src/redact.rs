//! [`Redactor`]: scrubs known secret values out of text in every encoded form.

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::{FirewallRules, Secret};

/// What a scrubbed secret is replaced by.
pub const REDACTED: &str = "[redacted]";

/// Values shorter than this many bytes are not redacted: replacing every `ab12` or
/// `true` in a message would shred ordinary text, and a secret that short is not a
/// secret worth the name.
pub const MIN_SECRET_LEN: usize = 8;

/// A set of secret values, and the means to remove each of them from text.
///
/// Every value is replaced in its raw form, as standard base64 (with and without
/// padding), as base64url (with and without padding) and percent-encoded, so that an
/// error quoting a Basic header or a URL query still does not leak it. Values shorter
/// than [`MIN_SECRET_LEN`] bytes are ignored.
///
/// ```
/// use sandkit_policies::Redactor;
/// let mut redactor = Redactor::new();
/// redactor.add("tok_0123456789");
/// assert_eq!(redactor.scrub("token tok_0123456789 refused"), "token [redacted] refused");
/// assert_eq!(redactor.scrub("dG9rXzAxMjM0NTY3ODk="), "[redacted]");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    /// Every form of every value, longest first when scrubbing.
    forms: BTreeSet<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("forms", &self.forms.len())
            .finish()
    }
}

impl Redactor {
    /// An empty redactor (scrubbing changes nothing).
    pub fn new() -> Self {
        Redactor::default()
    }

    /// True when no value is known.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// Adds a secret value (ignored when shorter than [`MIN_SECRET_LEN`] bytes).
    pub fn add(&mut self, value: &str) -> &mut Self {
        if value.len() < MIN_SECRET_LEN {
            return self;
        }
        let bytes = value.as_bytes();
        let forms = [
            value.to_owned(),
            STANDARD.encode(bytes),
            STANDARD_NO_PAD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            percent_encode(value),
        ];
        self.forms.extend(forms);
        self
    }

    /// Adds a [`Secret`].
    pub fn add_secret(&mut self, secret: &Secret) -> &mut Self {
        self.add(secret.expose())
    }

    /// Adds every injected header value of compiled rules, and the credential inside it:
    /// the part after the scheme (`Bearer tok` → `tok`) and, for a base64 value such as
    /// a Basic header, the decoded text and its part after `:` (the password).
    pub fn add_rules(&mut self, rules: &FirewallRules) -> &mut Self {
        let FirewallRules::Allow(domains) = rules else {
            return self;
        };
        for rule in domains.iter().flat_map(|d| d.rules.iter()) {
            for value in rule.headers.values() {
                self.add_header_value(value.expose());
            }
        }
        self
    }

    /// Adds a header value and the credential inside it: the part after the scheme
    /// (`Bearer tok` → `tok`) and, when that part is base64 (a Basic header), the
    /// decoded text and its part after `:`.
    pub fn add_header_value(&mut self, value: &str) -> &mut Self {
        self.add(value);
        let tail = value.rsplit(' ').next().unwrap_or(value);
        self.add(tail);
        if let Ok(decoded) = STANDARD.decode(tail.trim())
            && let Ok(text) = String::from_utf8(decoded)
        {
            self.add(&text);
            if let Some((_, password)) = text.split_once(':') {
                self.add(password);
            }
        }
        self
    }

    /// Adds every value another redactor knows.
    pub fn extend(&mut self, other: &Redactor) -> &mut Self {
        self.forms.extend(other.forms.iter().cloned());
        self
    }

    /// `text` with every form of every known value replaced by [`REDACTED`].
    pub fn scrub(&self, text: &str) -> String {
        if self.forms.is_empty() {
            return text.to_owned();
        }
        let mut forms: Vec<&String> = self.forms.iter().collect();
        // Longest first: a padded form must go before its unpadded prefix.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        let mut out = text.to_owned();
        for form in forms {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), REDACTED);
            }
        }
        out
    }

    /// True when `text` holds any form of a known value.
    pub fn leaks(&self, text: &str) -> bool {
        self.forms.iter().any(|f| text.contains(f.as_str()))
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MapEnv, Policy, presets::github};

    const TOKEN: &str = "s3cret+tok/en=?&";

    #[test]
    fn every_encoded_form_is_scrubbed() {
        let mut r = Redactor::new();
        r.add(TOKEN);
        let forms = [
            TOKEN.to_owned(),
            STANDARD.encode(TOKEN),
            STANDARD_NO_PAD.encode(TOKEN),
            URL_SAFE.encode(TOKEN),
            URL_SAFE_NO_PAD.encode(TOKEN),
            percent_encode(TOKEN),
        ];
        for form in &forms {
            let text = format!("upstream said: {form} is invalid");
            let scrubbed = r.scrub(&text);
            assert_eq!(
                scrubbed, "upstream said: [redacted] is invalid",
                "form {form}"
            );
            assert!(!r.leaks(&scrubbed));
        }
    }

    #[test]
    fn short_values_are_ignored_so_text_survives() {
        let mut r = Redactor::new();
        r.add("true").add("1234567");
        assert!(r.is_empty());
        assert_eq!(r.scrub("true 1234567"), "true 1234567");
    }

    #[test]
    fn credentials_inside_compiled_header_rules_are_known() {
        let env = MapEnv::new().with("GITHUB_TOKEN", "ghp_abcdefgh12345");
        let rules = Policy::allow_services([github()])
            .unwrap()
            .compile(&env)
            .unwrap();
        let mut r = Redactor::new();
        r.add_rules(&rules);
        assert_eq!(
            r.scrub("bad token ghp_abcdefgh12345"),
            "bad token [redacted]"
        );
        let basic = STANDARD.encode("x-access-token:ghp_abcdefgh12345");
        assert_eq!(r.scrub(&format!("got {basic}")), "got [redacted]");
        assert_eq!(r.scrub(&format!("got Basic {basic}")), "got [redacted]");
    }

    #[test]
    fn basic_header_password_is_known_from_the_header_alone() {
        let mut rules_header = std::collections::BTreeMap::new();
        let basic = STANDARD.encode("user:p4ssw0rd-long");
        rules_header.insert(
            "authorization".to_owned(),
            Secret::new(format!("Basic {basic}")),
        );
        let rules = FirewallRules::Allow(vec![crate::DomainRule {
            domain: "example.com".into(),
            service_ids: vec!["x".into()],
            rules: vec![crate::HeaderRule {
                headers: rules_header,
            }],
        }]);
        let mut r = Redactor::new();
        r.add_rules(&rules);
        assert_eq!(r.scrub("password p4ssw0rd-long"), "password [redacted]");
        assert_eq!(r.scrub(&basic), "[redacted]");
    }
}
