//! The memory store passes the store conformance suite.

use std::sync::Arc;

use sandkit_adapter_memory::MemoryStore;
use sandkit_testkit::StoreFixture;

async fn store() -> Option<StoreFixture> {
    Some(StoreFixture::new(Arc::new(MemoryStore::new())))
}

sandkit_testkit::store_suite!(store);
