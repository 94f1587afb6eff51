//! Fork and snapshot retention through `Sandkit` on the local provider, with the
//! snapshot directory inspected.

use std::sync::Arc;

use sandkit_adapter_memory::MemoryStore;
use sandkit_core::Sandkit;
use sandkit_local::LocalProvider;

fn kit(root: &std::path::Path, keep: usize) -> Sandkit {
    Sandkit::builder()
        .store(Arc::new(MemoryStore::new()))
        .provider(Arc::new(LocalProvider::new(root).expect("provider")))
        .keep_snapshots(keep)
        .build()
        .expect("sandkit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_diverge_and_outlive_their_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    sandkit_testkit::lifecycle::forks_diverge_and_outlive_their_source(&kit(dir.path(), 3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_leaves_exactly_the_expected_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshots = dir.path().join("snapshots");
    let exists = |id: &str| {
        std::fs::read_dir(&snapshots)
            .expect("snapshots dir")
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with(id))
    };
    sandkit_testkit::lifecycle::retention_keeps_exactly_the_last_three(&kit(dir.path(), 3), exists)
        .await;
}
