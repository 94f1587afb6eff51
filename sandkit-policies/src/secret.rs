//! [`Secret`]: a credential value that never prints itself.

use std::fmt;

/// A credential value (API key, token).
///
/// `Debug` and `Display` print `[redacted]`, and `Secret` deliberately does not
/// implement `serde::Serialize`: a policy holding one serialises the credential as
/// `{"kind":"redacted"}`. Only code that applies compiled rules (a provider) should
/// call [`Secret::expose`].
///
/// ```
/// use sandkit_policies::Secret;
/// let key = Secret::new("sk-test");
/// assert_eq!(format!("{key} {key:?}"), "[redacted] [redacted]");
/// assert_eq!(key.expose(), "sk-test");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value; only providers applying compiled rules should call this.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the value is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_prints_its_value() {
        let secret = Secret::new("test-secret");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), "test-secret");
    }

    #[test]
    fn blank_detection() {
        assert!(Secret::new("").is_blank());
        assert!(Secret::new(" \t\n").is_blank());
        assert!(!Secret::new(" x ").is_blank());
    }
}
