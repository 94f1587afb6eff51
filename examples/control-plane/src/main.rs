//! `control-plane`: a small HTTP service that keeps one live session per workspace.
//!
//! The shape of the TypeScript original's OpenClaw example: a client asks for "a session
//! I can use for the next N minutes", and the service attaches to the workspace's live
//! session or opens one, extends it to that minimum, and repairs it (reopens it from the
//! last commit) when its sandbox was lost. The client then runs commands in it, asks for
//! the URL of a port, and commits when the work should be kept.
//!
//! * [`live`] — the attach-or-open / extend / repair pattern (the part to copy);
//! * [`routes`] — the endpoints;
//! * [`api_error`] — Sandkit error kinds as HTTP statuses with a JSON body.
//!
//! Sessions outlive this service: stop it, start it again (or run several replicas on
//! one database) and the same sessions are attached.

mod api_error;
mod live;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sandkit_core::Sandkit;
use sandkit_example_support::{
    Home, ProviderKind, Report, init_logging, open_provider, open_store,
};

use crate::routes::{AppState, router};

/// An HTTP control plane keeping one live session per workspace.
#[derive(Debug, Parser)]
#[command(after_help = "Switch to Vercel Sandbox with SANDKIT_PROVIDER=vercel \
    (credentials: VERCEL_OIDC_TOKEN, or VERCEL_TOKEN + VERCEL_TEAM_ID + VERCEL_PROJECT_ID).")]
struct Args {
    /// Directory for the SQLite database and the local sandboxes [default: a temporary
    /// directory, deleted on exit]
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,

    /// Database URL (sqlite://…, postgres://…, mysql://…) [default: SQLite in --home]
    #[arg(long, value_name = "URL")]
    database: Option<String>,

    /// Address to listen on (port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// Lifetime of a newly opened session, in seconds
    #[arg(long, default_value_t = 30 * 60, value_parser = clap::value_parser!(u64).range(1..))]
    session_timeout_secs: u64,

    /// Time a session must have left after `POST …/session` when the request does not
    /// say, in seconds
    #[arg(long, default_value_t = 5 * 60, value_parser = clap::value_parser!(u64).range(1..))]
    min_remaining_secs: u64,
}

#[tokio::main]
async fn main() -> Result<(), Report> {
    init_logging();
    let args = Args::parse();
    let provider = ProviderKind::from_env()?;
    let home = Home::open(args.home.as_deref())?;
    let database = args.database.unwrap_or_else(|| home.sqlite_url());

    let sandkit = Sandkit::builder()
        .store(open_store(&database).await?)
        .provider(open_provider(provider, &home)?)
        .build()?;
    let app = router(AppState {
        sandkit,
        session_timeout: Duration::from_secs(args.session_timeout_secs),
        min_remaining: Duration::from_secs(args.min_remaining_secs),
    });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            Report::new(format!(
                "cannot listen on {}: {e}; pass another --listen",
                args.listen
            ))
        })?;
    let address = listener
        .local_addr()
        .map_err(|e| Report::new(format!("cannot read the listening address: {e}")))?;
    println!("provider: {provider}; state in {}", home.dir().display());
    // Tests and scripts read this line to find the port.
    println!("listening on http://{address}");

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // Ctrl-C stops the service; live sessions keep running and are attached
            // again by the next start.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Report::new(format!("the server stopped: {e}")))?;
    Ok(())
}
