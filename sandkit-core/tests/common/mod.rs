//! Shared helpers for the core behaviour tests: a Sandkit over the memory store and the
//! fake provider, with injectable credentials and short leases.

#![allow(dead_code)]

pub mod spy;

use std::sync::Arc;
use std::time::Duration;

use sandkit_adapter_memory::MemoryStore;
use sandkit_core::policies::MapEnv;
use sandkit_core::{
    CommandResult, CommandSpec, RunQuery, RunRecord, Sandkit, SandkitBuilder, SetupSpec, Store,
    Workspace, WorkspaceId, WorkspaceRecord, WorkspaceSpec,
};
use sandkit_testkit::FakeProvider;

/// A fake provider, a shared memory store, and a builder wired to both.
pub struct Rig {
    pub provider: FakeProvider,
    pub store: Arc<MemoryStore>,
    pub env: MapEnv,
}

impl Rig {
    pub fn new() -> Self {
        Rig {
            provider: FakeProvider::new(),
            store: Arc::new(MemoryStore::new()),
            env: MapEnv::new(),
        }
    }

    pub fn with_provider(provider: FakeProvider) -> Self {
        Rig {
            provider,
            ..Rig::new()
        }
    }

    pub fn builder(&self) -> SandkitBuilder {
        Sandkit::builder()
            .store(self.store.clone())
            .provider(Arc::new(self.provider.clone()))
            .credentials(Arc::new(self.env.clone()))
            .setup_poll_interval(Duration::from_millis(10))
    }

    pub fn kit(&self) -> Sandkit {
        self.builder().build().expect("sandkit")
    }

    pub fn kit_with_setup(&self, setup: SetupSpec) -> Sandkit {
        self.builder().setup(setup).build().expect("sandkit")
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The stored record of a workspace that must exist.
    pub async fn record(&self, id: &WorkspaceId) -> WorkspaceRecord {
        self.store
            .get_workspace(id)
            .await
            .expect("get")
            .expect("ws")
    }
}

pub fn sh(script: &str) -> CommandSpec {
    CommandSpec::new("sh").args(["-c", script])
}

pub async fn run(ws: &Workspace, script: &str) -> CommandResult {
    ws.run_command(sh(script)).await.expect("run_command")
}

pub async fn new_ws(kit: &Sandkit) -> Workspace {
    kit.create_workspace(WorkspaceSpec::new())
        .await
        .expect("create")
}

pub async fn all_runs(ws: &Workspace) -> Vec<RunRecord> {
    ws.runs(RunQuery {
        limit: Some(1000),
        ..RunQuery::default()
    })
    .await
    .expect("runs")
    .items
}
