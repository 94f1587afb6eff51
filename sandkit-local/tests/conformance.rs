//! The local provider passes the provider conformance suite with every capability it
//! declares (real processes and files in a temporary root).

use std::sync::Arc;
use std::time::Duration;

use sandkit_local::LocalProvider;
use sandkit_testkit::ProviderFixture;

async fn provider() -> Option<ProviderFixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let provider = LocalProvider::builder(dir.path())
        .kill_grace(Duration::from_millis(500))
        .build()
        .expect("local provider");
    assert!(
        provider.enforces_deny_all(),
        "network namespaces must work here (root): deny-all is part of the declared capabilities"
    );
    Some(ProviderFixture {
        provider: Arc::new(provider),
        guard: Some(Box::new(dir)),
    })
}

sandkit_testkit::provider_suite!(provider);
