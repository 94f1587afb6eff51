#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod compile;
mod credentials;
mod error;
mod evaluate;
mod json;
mod model;
mod normalise;
mod policy;
pub mod presets;
mod redact;
mod secret;
mod text;

pub use compile::{DomainRule, FirewallRules, HeaderRule};
pub use credentials::{CredentialEnv, MapEnv, ProcessEnv, default_credential_variable};
pub use error::PolicyError;
pub use evaluate::Evaluation;
pub use model::{CredentialSource, HeaderEncoding, HeaderTransform, ServiceDescriptor};
pub use policy::{Policy, PolicyMode};
pub use redact::{MIN_SECRET_LEN, REDACTED, Redactor};
pub use secret::Secret;
