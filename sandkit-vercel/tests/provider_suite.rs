//! The Vercel provider passes the provider conformance suite against the fake API.

use std::sync::Arc;

use sandkit_testkit::ProviderFixture;
use sandkit_vercel::fake::FakeVercel;

async fn provider() -> Option<ProviderFixture> {
    let fake = FakeVercel::start().await;
    Some(ProviderFixture {
        provider: Arc::new(fake.provider()),
        guard: Some(Box::new(fake)),
    })
}

sandkit_testkit::provider_suite!(provider);
