//! The short text form used by the CLI: `allow-all`, `deny-all`, or a comma-separated
//! list of preset names (`npm,github,codex`, `ai-gateway`).

use std::str::FromStr;

use crate::{Policy, PolicyError, presets};

impl Policy {
    /// Parses the text form: `allow-all`, `deny-all` (case-insensitive), or a
    /// comma-separated list of preset names (see [`presets::by_name`]). Whitespace
    /// around names is ignored; duplicates are merged.
    ///
    /// ```
    /// use sandkit_policies::{Policy, PolicyError};
    /// assert_eq!(Policy::parse_spec("npm, github")?.describe(), "allow-services:github,npm");
    /// assert_eq!("deny-all".parse::<Policy>()?, Policy::deny_all());
    /// assert_eq!(
    ///     Policy::parse_spec("npm,,foo"),
    ///     Err(PolicyError::EmptyPresetName { position: 2 })
    /// );
    /// # Ok::<(), PolicyError>(())
    /// ```
    ///
    /// # Errors
    /// [`PolicyError::EmptySpec`] for blank input, [`PolicyError::EmptyPresetName`] for
    /// an empty list element, [`PolicyError::UnknownPreset`] for an unknown name, and
    /// any error of building the presets (e.g. an invalid `AI_GATEWAY_BASE_URL`).
    pub fn parse_spec(spec: &str) -> Result<Policy, PolicyError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(PolicyError::EmptySpec);
        }
        if spec.eq_ignore_ascii_case("allow-all") {
            return Ok(Policy::allow_all());
        }
        if spec.eq_ignore_ascii_case("deny-all") {
            return Ok(Policy::deny_all());
        }
        let mut services = Vec::new();
        for (index, element) in spec.split(',').enumerate() {
            let name = element.trim();
            if name.is_empty() {
                return Err(PolicyError::EmptyPresetName {
                    position: index + 1,
                });
            }
            let service = presets::by_name(name).ok_or_else(|| PolicyError::UnknownPreset {
                name: name.to_owned(),
            })?;
            services.push(service);
        }
        Policy::allow_services(services)
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    /// See [`Policy::parse_spec`].
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Policy::parse_spec(spec)
    }
}
