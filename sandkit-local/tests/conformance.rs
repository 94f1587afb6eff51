//! The local provider passes the provider conformance suite with every capability it
//! declares (real processes and files in a temporary root), in both modes: commands in
//! sandboxes (the default) and commands on the host (`isolation(false)`). As root, the
//! whole file runs a second time as an unprivileged user.

mod common;

use std::sync::Arc;
use std::time::Duration;

use sandkit_local::LocalProvider;
use sandkit_testkit::ProviderFixture;

fn fixture(isolation: bool) -> ProviderFixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let provider = LocalProvider::builder(dir.path())
        .kill_grace(Duration::from_millis(500))
        .isolation(isolation)
        .build()
        .expect("local provider");
    assert_eq!(
        provider.is_sandboxed(),
        isolation,
        "sandboxes must work here (unprivileged user namespaces), as root and as a normal user"
    );
    assert_eq!(provider.enforces_deny_all(), isolation);
    ProviderFixture {
        provider: Arc::new(provider),
        guard: Some(Box::new(dir)),
    }
}

async fn sandboxed() -> Option<ProviderFixture> {
    Some(fixture(true))
}

async fn on_the_host() -> Option<ProviderFixture> {
    Some(fixture(false))
}

sandkit_testkit::provider_suite!(sandboxed);

mod host {
    use super::on_the_host;

    sandkit_testkit::provider_suite!(on_the_host);
}

#[test]
fn the_suite_passes_as_a_normal_user() {
    common::rerun_as_normal_user("the_suite_passes_as_a_normal_user");
}
