//! A store decorator for tests: hooks see every batch before and after it is applied,
//! to count writes, put another operation right before or after one, or report a
//! failure after a write took effect.

use std::sync::Arc;

use futures::future::BoxFuture;
use sandkit_adapter_memory::MemoryStore;
use sandkit_core::WriteBatch;

/// What a hook returns: `None` to go on, or a future awaited first; an error from it
/// is the batch's result (before: nothing is applied; after: it was).
pub type Hooked = Option<BoxFuture<'static, sandkit_core::Result<()>>>;

/// A hook over batches.
pub type ApplyHook = Box<dyn Fn(&WriteBatch) -> Hooked + Send + Sync>;

/// A memory store whose writes pass hooks.
pub struct Spy {
    inner: Arc<MemoryStore>,
    before: ApplyHook,
    after: ApplyHook,
}

impl std::fmt::Debug for Spy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spy").finish_non_exhaustive()
    }
}

impl Spy {
    /// `before` runs before each batch, `after` once it was applied.
    pub fn new(inner: Arc<MemoryStore>, before: ApplyHook, after: ApplyHook) -> Self {
        Spy {
            inner,
            before,
            after,
        }
    }

    /// A spy with only a `before` hook.
    pub fn before(inner: Arc<MemoryStore>, before: ApplyHook) -> Self {
        Self::new(inner, before, Box::new(|_| None))
    }

    /// A spy with only an `after` hook.
    pub fn after(inner: Arc<MemoryStore>, after: ApplyHook) -> Self {
        Self::new(inner, Box::new(|_| None), after)
    }
}

#[async_trait::async_trait]
impl sandkit_core::Store for Spy {
    fn id(&self) -> &str {
        self.inner.id()
    }
    async fn apply(&self, batch: WriteBatch) -> sandkit_core::Result<()> {
        if let Some(first) = (self.before)(&batch) {
            first.await?;
        }
        let then = (self.after)(&batch);
        self.inner.apply(batch).await?;
        match then {
            Some(then) => then.await,
            None => Ok(()),
        }
    }
    async fn get_workspace(
        &self,
        id: &sandkit_core::WorkspaceId,
    ) -> sandkit_core::Result<Option<sandkit_core::WorkspaceRecord>> {
        self.inner.get_workspace(id).await
    }
    async fn list_workspaces(
        &self,
        q: &sandkit_core::WorkspaceListing,
    ) -> sandkit_core::Result<sandkit_core::Page<sandkit_core::WorkspaceRecord>> {
        self.inner.list_workspaces(q).await
    }
    async fn get_run(
        &self,
        id: &sandkit_core::RunId,
    ) -> sandkit_core::Result<Option<sandkit_core::RunRecord>> {
        self.inner.get_run(id).await
    }
    async fn list_runs(
        &self,
        q: &sandkit_core::RunListing,
    ) -> sandkit_core::Result<sandkit_core::Page<sandkit_core::RunRecord>> {
        self.inner.list_runs(q).await
    }
    async fn find_run_by_key(
        &self,
        ws: &sandkit_core::WorkspaceId,
        key: &str,
    ) -> sandkit_core::Result<Option<sandkit_core::RunRecord>> {
        self.inner.find_run_by_key(ws, key).await
    }
    async fn find_runs_by_snapshot(
        &self,
        id: &str,
    ) -> sandkit_core::Result<Vec<sandkit_core::RunRecord>> {
        self.inner.find_runs_by_snapshot(id).await
    }
    async fn get_policy_snapshot(
        &self,
        id: &str,
    ) -> sandkit_core::Result<Option<sandkit_core::PolicySnapshot>> {
        self.inner.get_policy_snapshot(id).await
    }
    async fn get_setup(&self, id: &str) -> sandkit_core::Result<Option<sandkit_core::SetupRecord>> {
        self.inner.get_setup(id).await
    }
    async fn put_setup_if_absent(
        &self,
        r: &sandkit_core::SetupRecord,
    ) -> sandkit_core::Result<bool> {
        self.inner.put_setup_if_absent(r).await
    }
    async fn update_setup(
        &self,
        r: &sandkit_core::SetupRecord,
        rev: i64,
    ) -> sandkit_core::Result<()> {
        self.inner.update_setup(r, rev).await
    }
    async fn delete_setup(&self, id: &str, rev: Option<i64>) -> sandkit_core::Result<bool> {
        self.inner.delete_setup(id, rev).await
    }
}
