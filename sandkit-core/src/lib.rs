//! Sandkit core: durable workspaces over ephemeral sandboxes.
//!
//! A [`Sandkit`] combines a [`Store`] (where workspaces, runs and leases live) with a
//! [`Provider`] (where sandboxes run). A [`Workspace`] survives every sandbox:
//!
//! * [`Workspace::run_command`] runs one **durable command** — the sandbox starts from the
//!   workspace's head snapshot, runs the command, snapshots, and the new head is committed
//!   in one fenced transaction. A non-zero exit is a result, not an error.
//! * [`Workspace::open_session`] takes an exclusive **session** lease on a live sandbox
//!   that any process can [`attach`](Workspace::attach_session) to, ended by
//!   [`Session::commit`] or [`Session::discard`].
//! * Every write is a compare-and-set on the workspace `revision`; lease tokens fence
//!   holders that were taken over; a crashed holder's lease expires and the next
//!   operation recovers it (its run is marked interrupted, the head is kept).
//! * Every commit is a row of the run journal ([`Workspace::runs`],
//!   [`Workspace::journal`]); workspaces can be forked
//!   ([`Sandkit::fork_workspace`]) and restored to an earlier run
//!   ([`Workspace::restore`]); snapshots no head or recent run needs are deleted at the
//!   provider ([`SandkitBuilder::keep_snapshots`], [`Sandkit::gc`]).
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn sandkit_core::Store>, provider: std::sync::Arc<dyn sandkit_core::Provider>) -> sandkit_core::Result<()> {
//! use sandkit_core::{CommandSpec, Sandkit, WorkspaceSpec};
//!
//! let sandkit = Sandkit::builder().store(store).provider(provider).build()?;
//! let ws = sandkit.create_workspace(WorkspaceSpec::new().name("agent-1")).await?;
//! ws.run_command(CommandSpec::new("sh").args(["-c", "echo hi > hello.txt"])).await?;
//! let out = ws.run_command(CommandSpec::new("cat").arg("hello.txt")).await?;
//! assert_eq!(out.stdout, "hi\n");
//! # Ok(()) }
//! ```
//!
//! Stores implement [`Store`] (see `sandkit-adapter-memory`, `sandkit-adapter-seaorm`);
//! providers implement [`Provider`] (see `sandkit-local`, `sandkit-vercel`). Both are
//! checked by the conformance suites in `sandkit-testkit`.

mod check;
mod durable;
mod error;
mod holder;
mod ids;
mod lease;
mod lifecycle;
mod model;
mod output;
pub mod provider;
mod retention;
mod sandkit;
mod session;
mod setup;
mod spec;
pub mod store;
mod workspace;

pub use check::{CheckReport, MissingSnapshot, SnapshotRole};
pub use durable::{Command, CommandPhase};
pub use error::{Error, ErrorKind, Result};
pub use ids::{LeaseToken, MAX_ID_LEN, RunId, WorkspaceId};
pub use lifecycle::JournalEntry;
pub use model::{
    EnvMap, Lease, LeaseKind, PolicySnapshot, RunFinish, RunKind, RunRecord, RunStatus,
    SandboxConfig, SessionRef, SetupBuild, SetupRecord, SnapshotRef, WorkspaceRecord,
    WorkspaceState, WorkspaceStatus, now,
};
pub use output::{CommandResult, DEFAULT_LOG_MEMORY_CAP, LIVE_OUTPUT_BACKLOG, LogBuffer};
pub use provider::{
    Capabilities, ExecSpec, LogChunk, LogStream, NetworkCapabilities, PROCESS_OUTPUT_BACKLOG,
    PortCapabilities, ProcessHandle, ProcessInfo, ProcessSink, Provider, ProviderSession,
    SnapshotInfo, StartSpec, StdStream,
};
pub use retention::GcReport;
pub use sandkit::{Config, Sandkit, SandkitBuilder};
pub use session::{Process, Session};
pub use setup::setup_id;
pub use spec::{
    CommandSpec, DEFAULT_PAGE_SIZE, ListOptions, MAX_COMMAND_TIMEOUT, MAX_PAGE_SIZE,
    RESERVED_METADATA_PREFIX, RunQuery, SessionOptions, SetupSpec, WorkspaceSpec, env_map,
};
pub use store::{
    FencedChange, Order, Page, RunListing, RunWrite, Store, WorkspaceListing, WorkspaceWrite,
    WriteBatch,
};
pub use workspace::{LeaseInfo, Workspace};

/// Re-export of the policy crate, so callers need one dependency.
pub use sandkit_policies as policies;
