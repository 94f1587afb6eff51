//! The baseline: the provider calls a durable command needs, made directly.

use std::time::Duration;

use sandkit_core::policies::FirewallRules;
use sandkit_core::{ExecSpec, LogBuffer, Provider, SnapshotRef, StartSpec, WorkspaceId};

/// Sandbox lifetime the baseline asks for (Sandkit's default).
const SANDBOX_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Start (from `from`, like a durable command starts from the head) → exec `command`
/// and read its output to the end → snapshot. Returns the new snapshot.
pub async fn command(
    provider: &dyn Provider,
    workspace: &WorkspaceId,
    from: Option<SnapshotRef>,
    command: &str,
) -> Result<SnapshotRef, String> {
    let session = provider
        .start(StartSpec {
            workspace_id: workspace.clone(),
            from,
            rules: FirewallRules::AllowAll,
            ports: Vec::new(),
            timeout: SANDBOX_TIMEOUT,
            vcpus: None,
            name: None,
        })
        .await
        .map_err(|e| format!("start: {e}"))?;
    let handle = session
        .exec(ExecSpec {
            command: command.to_owned(),
            ..ExecSpec::default()
        })
        .await
        .map_err(|e| format!("exec: {e}"))?;
    let code = LogBuffer::default()
        .pump(handle)
        .await
        .map_err(|e| format!("exec output: {e}"))?;
    if code != 0 {
        return Err(format!("`{command}` exited with {code}"));
    }
    session
        .snapshot()
        .await
        .map_err(|e| format!("snapshot: {e}"))
}
