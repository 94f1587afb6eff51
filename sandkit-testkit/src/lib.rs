//! Conformance suites and test doubles for Sandkit.
//!
//! * [`store_suite!`] — every behaviour Sandkit relies on from a `Store`: compare-and-set
//!   conflicts, lease fencing, atomic batches, run idempotency lookup, setup
//!   put-if-absent, list cursors and corruption reporting. Every adapter runs it.
//! * [`provider_suite!`] — what every `Provider` must do, filtered by the capabilities it
//!   declares. Every provider runs it.
//! * [`FakeProvider`] — an in-memory scripted provider with fault injection, so core
//!   tests reach every branch without a cloud or real processes.
//! * [`lifecycle`] — fork and snapshot-retention checks a provider runs end to end
//!   through `Sandkit`, inspecting its own snapshot storage.
//!
//! ```text
//! // tests/conformance.rs of an adapter crate
//! async fn store() -> Option<sandkit_testkit::StoreFixture> {
//!     Some(sandkit_testkit::StoreFixture::new(std::sync::Arc::new(MyStore::new())))
//! }
//! sandkit_testkit::store_suite!(store);
//! ```

pub mod fake;
pub mod lifecycle;
pub mod logs;
pub mod provider_suite;
pub mod store_suite;

pub use fake::{Calls, FAKE_ROOT, FakeProvider};
pub use provider_suite::ProviderFixture;
pub use store_suite::{Corruptor, StoreFixture};

/// Reads a test database URL from `var`.
///
/// Unset: returns `None` after printing that the test is skipped — unless `CI=true`,
/// where a missing database is a failure (panics), so CI never silently skips.
pub fn database_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("{var} is not set but CI=true: CI must run the tests against a real database")
        }
        _ => {
            eprintln!("skipped: set {var} to run this test against a real database");
            None
        }
    }
}
