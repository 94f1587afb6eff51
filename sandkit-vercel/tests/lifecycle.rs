//! Fork and snapshot retention through `Sandkit` on the fake Vercel API, with the fake's
//! snapshots inspected.

use std::sync::Arc;

use sandkit_adapter_memory::MemoryStore;
use sandkit_core::Sandkit;
use sandkit_vercel::fake::FakeVercel;

fn kit(fake: &FakeVercel) -> Sandkit {
    Sandkit::builder()
        .store(Arc::new(MemoryStore::new()))
        .provider(Arc::new(fake.provider()))
        .keep_snapshots(3)
        .build()
        .expect("sandkit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_diverge_and_outlive_their_source() {
    let fake = FakeVercel::start().await;
    sandkit_testkit::lifecycle::forks_diverge_and_outlive_their_source(&kit(&fake)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_leaves_exactly_the_expected_snapshots() {
    let fake = FakeVercel::start().await;
    let exists = |id: &str| fake.snapshot_file(id, "f").is_some();
    sandkit_testkit::lifecycle::retention_keeps_exactly_the_last_three(&kit(&fake), exists).await;
    assert!(fake.count("DELETE", "/v2/sandboxes/snapshots/*") >= 7);
}
