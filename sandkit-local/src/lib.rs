//! Sandkit's local provider runs sandboxes on this machine: each command runs in a
//! rootless sandbox built from Linux namespaces (see [Isolation](#isolation)), over a
//! session directory that snapshots capture into a content-addressed store.
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
//! | allow-all | yes (the host's network, inside the sandbox) |
//! | deny-all | yes where sandboxes work (unprivileged user namespaces; root not needed): each command gets a network namespace with only loopback; otherwise refused |
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
//! * `sessions/<id>/` — one live session: `work/` (the workspace, shown to commands
//!   as [`WORKSPACE`]), `tmp/` (the session's `/tmp`), `session.json` (workspace, expiry, ports, policy, processes with
//!   pid, process group, log and exit files), `procs/` (background process logs),
//!   and, once a background process started, `expires`, `groups` and `watchdog`: the
//!   deadline, the process groups and the marker of the session's expiry watchdog (a
//!   detached `sh` loop that stops those processes at the deadline).
//! * `sandbox/root` — the empty directory each command's filesystem view is built on
//!   (inside the command's own mount namespace: nothing appears there on the host).
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
//! * Commands run with a clean environment (`HOME` = the workspace, `PATH`
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
//!   and is tracked by it). In a sandbox that includes processes that call `setsid`
//!   themselves (daemons): they end with the sandbox's PID namespace. Host commands
//!   (see below) that call `setsid` leave the session and are not tracked.
//! * Commands inherit no file descriptor of the calling process besides stdio. Mounts
//!   made inside a session directory (possible only for host commands, see below) are
//!   neither captured nor deleted through, and a working directory replaced by a
//!   symlink is never followed.
//! * Under deny-all each command gets its own network namespace: processes of one
//!   session cannot reach each other over TCP, and declared ports are not served to
//!   the host (`url` is `Unsupported`). Tightening a session to deny-all while
//!   processes it started with network access still run is refused.
//! * Ownership, hard links between files, extended attributes and special files
//!   (sockets, fifos, devices) are not captured; `vcpus` is ignored.
//!
//! # Isolation
//!
//! On Linux, every command (durable command, session command or background process)
//! runs in its own user, mount, PID, IPC and UTS namespaces, and under deny-all its
//! own network namespace with only loopback. They are created without root (no setuid
//! helper, no daemon) and also when the provider runs as root. Inside:
//!
//! * the command runs as the calling user (uid 0 only when the provider runs as root)
//!   with no capabilities at all — empty bounding set, `no_new_privs`, and root
//!   gaining nothing by `exec` — so it can neither mount, nor enter another namespace,
//!   nor gain privileges through setuid or file-capability binaries;
//! * the filesystem is a view built for the command: the session's workspace at
//!   [`WORKSPACE`] (`/workspace`, read-write; also `HOME` and the default working
//!   directory), the host's `/usr`, `/etc`, `/bin`, `/sbin` and `/lib*` read-only (with
//!   `/etc/shadow`, `/etc/gshadow`, `/etc/sudoers` and the SSH host keys hidden), any
//!   directory added with [`LocalProviderBuilder::read_only_path`], a `/tmp` private to
//!   the session (kept across its commands, not in snapshots), a fresh `/proc` of the
//!   command's own PID namespace (kernel settings read-only), and a minimal `/dev`
//!   (`null`, `zero`, `full`, `random`, `urandom`, `tty`, `pts`, `ptmx`, `shm`). Nothing
//!   else of the host is there: no `/home`, `/root`, `/run`, `/var/run`, no host Unix
//!   socket, no other session;
//! * host processes are invisible and cannot be signalled; when a command ends, what it
//!   left running keeps running until the session's snapshot or stop ends it, and then
//!   every process of the sandbox ends with it, including ones that called `setsid`.
//!
//! What stays shared with the host: the kernel (this is namespaces, not a VM: a kernel
//! exploit escapes it), CPU, memory and disk (no resource limits yet; `vcpus` is
//! ignored), the host's network under allow-all (including its loopback services and
//! abstract Unix sockets), and the system directories' contents (read-only).
//!
//! Where unprivileged user namespaces are refused (e.g. a kernel setting, or a
//! container that forbids them), or with [`LocalProviderBuilder::isolation`]`(false)`,
//! commands run as plain processes on the host with the user's rights, in the session
//! directory (`HOME` is then its host path); [`Capabilities`](sandkit_core::Capabilities)
//! then declare no deny-all and deny-all policies are refused. Use that mode only for
//! trusted code.
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
