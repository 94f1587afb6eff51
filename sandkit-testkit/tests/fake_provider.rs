//! The fake provider passes the provider conformance suite with every capability.

use std::sync::Arc;

use sandkit_testkit::{FakeProvider, ProviderFixture};

async fn provider() -> Option<ProviderFixture> {
    Some(ProviderFixture::new(Arc::new(FakeProvider::new())))
}

sandkit_testkit::provider_suite!(provider);
