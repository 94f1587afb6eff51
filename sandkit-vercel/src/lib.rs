//! Sandkit provider for [Vercel Sandbox](https://vercel.com/docs/vercel-sandbox), over
//! its REST API.
//!
//! [`VercelProvider`] implements [`sandkit_core::Provider`] with the endpoints the
//! official SDK 3.1 uses: `POST /v3/sandboxes` to start (fresh, or from a snapshot with
//! `source: {"type":"snapshot"}`), the session endpoints under
//! `/v2/sandboxes/sessions/{id}` (run with wait + logs as NDJSON, detached run, logs,
//! wait, kill, list, network policy, extend, stop, snapshot) and
//! `DELETE /v2/sandboxes/snapshots/{id}`. Every request carries `teamId`; the create
//! body carries `projectId`.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn demo(store: Arc<dyn sandkit_core::Store>) -> sandkit_core::Result<()> {
//! use sandkit_core::{CommandSpec, Sandkit, WorkspaceSpec};
//! use sandkit_vercel::VercelProvider;
//!
//! let provider = VercelProvider::from_env()?; // VERCEL_OIDC_TOKEN, or VERCEL_TOKEN + team + project
//! let sandkit = Sandkit::builder().store(store).provider(Arc::new(provider)).build()?;
//! let ws = sandkit.create_workspace(WorkspaceSpec::new()).await?;
//! ws.run_command(CommandSpec::new("sh").args(["-c", "echo hi > hi.txt"])).await?;
//! # Ok(()) }
//! ```
//!
//! # Credentials
//!
//! An access token (`VERCEL_TOKEN` + `VERCEL_TEAM_ID` + `VERCEL_PROJECT_ID`) does not
//! expire. An OIDC token (`VERCEL_OIDC_TOKEN`, from `vercel env pull`) lives about 12
//! hours; a long-running process can follow its refreshes with
//! [`VercelProviderBuilder::credentials_source`] — e.g. [`OidcTokenFile`] re-reads
//! `.env.local` when the token in use expires within 5 minutes. Tokens never appear in
//! logs, errors or `Debug`.
//!
//! # Costs
//!
//! The effective network policy is sent with the create request, so a durable command
//! costs exactly three API calls: create, run (wait + logs, streamed), snapshot.
//!
//! # Snapshot lifetime
//!
//! Every snapshot is taken with `expiration: 0` (never) unless
//! [`VercelProviderBuilder::snapshot_expiration`] says otherwise. Vercel's default
//! (30 days after last use) would silently take the head of a workspace left idle for a
//! month; Sandkit's retention already deletes the snapshots no head, recent run, fork or
//! setup needs (`sandkit gc`, and after every commit). A head that did expire anyway is a
//! typed `SnapshotUnavailable` with `reset`/`restore` as the way out.
//!
//! # Command output
//!
//! Output streams as it arrives (NDJSON log lines), with backpressure: a slow reader
//! slows the stream down instead of growing memory. The service sends each line's
//! `data` as JSON text, so output that is not UTF-8 (a PNG, a tar stream) reaches
//! Sandkit already replaced (U+FFFD) by the service; the chunks hold the UTF-8 bytes
//! of that text as sent. Byte-exact output needs a provider with raw pipes (e.g.
//! `sandkit-local`), or an encoding done inside the sandbox (`base64`).
//!
//! # Capabilities
//!
//! | capability | value |
//! |---|---|
//! | ports | up to 15, in 1024–65535, public URL `https://<subdomain>.vercel.run` |
//! | extend timeout | yes |
//! | background processes | yes (detached commands, logs, wait, kill, list) |
//! | network | allow-all, deny-all, allow-services, credential header injection |
//! | snapshot delete | yes |
//! | fork (one snapshot seeds many sessions) | yes |
//! | attach from another process | yes, by session id |
//! | max timeout | 24 h (Pro/Enterprise); set [`VercelProviderBuilder::max_timeout`] to [`HOBBY_MAX_TIMEOUT`] (45 min) on Hobby |
//!
//! # Errors and retries
//!
//! Connection failures, 5xx and 429 answers are retried (3 attempts, 400 ms doubling
//! with jitter ×[1, 2); `Retry-After` up to 20 s is honoured, a longer one is returned at
//! once as `RateLimited`). Calls that create or run something are retried only when the
//! service provably did not act (429, 503, a connection that never opened); a 500/502/504
//! or a connection lost mid-request is reported, and a broken command stream is an
//! error, never a rerun: a durable command cannot run twice. A create or snapshot
//! request that failed in a way that may hide success (500/502/504, connection lost) is
//! not resent but looked up — the sandbox by the unique name Sandkit gives it, the
//! snapshot among the project's snapshots — and used when it exists, so neither is
//! left running or stored unseen. Command streams and waits
//! for an exit code have no request timeout (commands may run silently for hours);
//! once one is still open past its session's deadline plus
//! [`VercelProviderBuilder::deadline_grace`], the session is checked and, if it has
//! stopped, the wait ends with `SessionUnavailable`. Stream lines over 8 MiB and error
//! lines are handled as typed errors, with the command's env values scrubbed. See [`RetryConfig`].
//!
//! | answer | error kind |
//! |---|---|
//! | 410 `sandbox_stopped` (any session call) | `SessionUnavailable` |
//! | 410 `snapshot_not_found` (start from a deleted/expired snapshot) | `SnapshotUnavailable` |
//! | 422 `sandbox_stopping` / `sandbox_snapshotting` | `SessionUnavailable`, after polling the session every 500 ms until it settled |
//! | 401 / 403 | `Provider { status, code }`, naming the credential to check |
//! | 429 with `Retry-After` > 20 s, or after the last attempt | `RateLimited { retry_after }` |
//! | other non-2xx | `Provider { status, code }` with the server's message |
//!
//! Credentials never appear in `Debug` output, logs or error messages: the token is a
//! [`sandkit_policies::Secret`], and server messages are scrubbed of the token and of
//! any header value the request carried.
//!
//! # The fake API (feature `fake`)
//!
//! `fake::FakeVercel` is a stateful in-memory imitation of the same REST API on
//! wiremock, for tests and `cargo xtask smoke`; see the module documentation. It also
//! runs as a standalone server for clients in any language:
//! `cargo run -p sandkit-vercel --features fake --bin fake-vercel` prints its base URL
//! and serves until stopped (token `tok`, team `team_abc`, project `prj_123`).

mod auth;
mod client;
mod config;
mod credentials;
mod errors;
mod ndjson;
mod policy;
mod process;
mod provider;
mod session;
mod validate;
mod wire;

#[cfg(feature = "fake")]
pub mod fake;

pub use config::{
    BASE_URL_VAR, DEFAULT_BASE_URL, HOBBY_MAX_TIMEOUT, PRO_MAX_TIMEOUT, RetryConfig,
    VercelProviderBuilder, default_user_agent,
};
pub use credentials::{
    Credentials, CredentialsSource, OIDC_TOKEN_VAR, OidcTokenFile, PROJECT_ID_VAR, TEAM_ID_VAR,
    TOKEN_VAR, TokenKind,
};
pub use policy::network_policy;
pub use provider::{PROVIDER_ID, VercelProvider, WORKSPACE_TAG};
