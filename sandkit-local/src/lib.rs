//! Sandkit's local provider runs sandboxes as directories and processes on this
//! machine. **It is a development provider, not a security boundary:** commands run
//! as the current user with access to the host's files, processes and (unless
//! deny-all) network; use it for development, tests and trusted workloads, and a real
//! sandbox provider (e.g. `sandkit-vercel`) for untrusted code.
//!
//! [`LocalProvider`] is Sandkit's embedded default: with it the whole lifecycle —
//! durable commands, live sessions, snapshots, forks — works with no cloud account,
//! and tests exercise real processes and files.
//!
//! | capability | local provider |
//! |---|---|
//! | ports / URLs | yes: `http://127.0.0.1:<port>` for ports declared at start (1024–65535, at most 15; configurable) |
//! | extend timeout | yes (expiry stored with the session; a session with background processes has a watchdog that stops them at expiry even when no Sandkit process runs; the directory goes when next touched, or by [`LocalProvider::reap_expired`]) |
//! | background processes | yes: own process group, logs on disk, they outlive the process that started them |
//! | allow-all | yes (host network) |
//! | deny-all | yes where network namespaces work (root or `CAP_SYS_ADMIN`): every command runs in its own namespace with only loopback; otherwise refused |
//! | allow-services, header injection | no: refused with `Unsupported` (never run with weaker egress) |
//! | snapshot delete | yes (packs no snapshot needs are deleted) |
//! | fork | yes: a snapshot seeds any number of independent sessions |
//! | cross-process attach | yes: any OS process with the same root can attach |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> sandkit_core::Result<()> {
//! use sandkit_core::{ExecSpec, LogBuffer, Provider, StartSpec, WorkspaceId};
//! use sandkit_core::policies::FirewallRules;
//! use sandkit_local::LocalProvider;
//!
//! let root = tempfile::tempdir().expect("temp dir");
//! let provider = LocalProvider::new(root.path())?;
//! let spec = StartSpec {
//!     workspace_id: WorkspaceId::new("docs")?,
//!     from: None,
//!     rules: FirewallRules::AllowAll,
//!     ports: Vec::new(),
//!     timeout: std::time::Duration::from_secs(60),
//!     vcpus: None,
//!     name: None,
//! };
//! let session = provider.start(spec.clone()).await?;
//! let sh = |script: &str| ExecSpec {
//!     command: "sh".into(),
//!     args: vec!["-c".into(), script.into()],
//!     ..ExecSpec::default()
//! };
//! let log = LogBuffer::default();
//! log.pump(session.exec(sh("echo hello > greeting.txt")).await?).await?;
//! // Snapshotting ends the session; the snapshot seeds new ones.
//! let snapshot = session.snapshot().await?;
//! let restored = provider.start(StartSpec { from: Some(snapshot), ..spec }).await?;
//! let out = LogBuffer::default();
//! assert_eq!(out.pump(restored.exec(sh("cat greeting.txt")).await?).await?, 0);
//! assert_eq!(out.collect().0, "hello\n");
//! restored.stop().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! Under the root given to [`LocalProvider::new`]:
//!
//! * `sessions/<id>/` — one live session: `work/` (the working directory and `HOME`
//!   of its commands), `session.json` (workspace, expiry, ports, policy, processes with
//!   pid, process group, log and exit files), `procs/` (background process logs),
//!   and, once a background process started, `expires`, `groups` and `watchdog`: the
//!   deadline, the process groups and the marker of the session's expiry watchdog (a
//!   detached `sh` loop that stops those processes at the deadline).
//! * `snapshots/<id>` — immutable snapshot manifests (JSON): every directory, file and
//!   symlink with its mode and modification time; file contents by BLAKE3 hash and
//!   location. `snapshots/.by-session/<session id>` names the snapshot a session ended
//!   with, so a commit whose process died right after its snapshot is finished by the
//!   retry instead of losing the work.
//! * `objects/<snapshot id>.pack` — the contents each snapshot stored. A snapshot
//!   stores only contents not stored yet, and does not even read files unchanged since
//!   its session was restored (a git-index-like stat cache), so incremental snapshots
//!   cost about what changed.
//!
//! # Behaviour
//!
//! * Commands run with a clean environment (`HOME` = the session directory, `PATH`
//!   from the host, `LANG=C.UTF-8`, plus [`LocalProviderBuilder::env`] and the
//!   command's own variables), in their own session and process group, so a timeout
//!   (SIGKILL, exit code 137) or [`kill`](sandkit_core::ProviderSession::kill)
//!   (SIGTERM, then SIGKILL after a grace period) reaches everything they started.
//! * Output is passed on as raw bytes, exactly as written (binary output such as
//!   `tar c .` is intact), of any size: the pipes are read only as fast as the reader
//!   takes the chunks, so a slow reader slows the command down instead of growing
//!   memory.
//! * Snapshots keep symlinks as symlinks (never followed, wherever they point) and
//!   restoring never writes outside the new session directory. Packs and manifests are
//!   written under temporary names and renamed into place, so a failed snapshot (disk
//!   full: error code `disk_full`) leaves earlier snapshots intact and the session
//!   running (its processes stopped) so it can be retried. Snapshots survive the
//!   process that made them, not power loss (nothing is fsynced).
//! * Snapshotting, stopping or timing out ends every process a command started, even
//!   ones that moved to another process group (each command leads its own OS session
//!   and is tracked by it). Processes that call `setsid` themselves (daemons) leave
//!   that session and are not tracked.
//! * Commands inherit no file descriptor of the calling process besides stdio; a
//!   deny-all command cannot `setns`/`nsenter` back into the host network namespace.
//!   That is egress enforcement, not containment: a command keeps the user's other
//!   rights (host files, host Unix sockets, and as root its other capabilities). Mounts made inside a
//!   session directory are neither captured nor deleted through, and a working
//!   directory replaced by a symlink is never followed.
//! * Under deny-all each command gets its own network namespace: processes of one
//!   session cannot reach each other over TCP, and declared ports are not served to
//!   the host (`url` is `Unsupported`). Tightening a session to deny-all while
//!   processes it started with network access still run is refused.
//! * Ownership, hard links between files, extended attributes and special files
//!   (sockets, fifos, devices) are not captured; `vcpus` is ignored.
//!
//! `sandkit-local-probe ROOT SESSION (exec|spawn|logs|snapshot|stop) …` drives a live
//! session from another process (it is how the cross-process tests attach).

mod background;
mod errors;
mod expiry;
mod foreground;
mod fsat;
mod launch;
mod layout;
mod meta;
mod mounts;
mod procs;
mod provider;
mod removal;
mod sandbox;
mod session;
mod snapshot;

pub use sandbox::WORKSPACE;

pub use provider::{
    DEFAULT_KILL_GRACE, DEFAULT_MAX_PORTS, DEFAULT_TIMEOUT, LocalProvider, LocalProviderBuilder,
    PROVIDER_ID,
};
