//! `fake-vercel`: the fake Vercel Sandbox API ([`sandkit_vercel::fake::FakeVercel`]) as a
//! standalone server on loopback, so a client in any language can test against it.
//!
//! ```text
//! cargo run -p sandkit-vercel --features fake --bin fake-vercel
//! ```
//!
//! Prints one line, the base URL (`http://127.0.0.1:PORT`), on stdout, then the
//! credentials it accepts on stderr, and serves until SIGINT or SIGTERM. Point a client
//! at it with the base URL, the bearer token `tok`, team `team_abc` and project
//! `prj_123`; the official SDK takes them through its `fetch` option (rewrite the
//! `https://api.vercel.com` prefix of each request to the printed URL).

use std::io::Write;

use sandkit_vercel::fake::{FAKE_PROJECT_ID, FAKE_TEAM_ID, FAKE_TOKEN, FakeVercel};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let fake = FakeVercel::start().await;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", fake.uri())?;
        out.flush()?;
    }
    eprintln!(
        "fake-vercel: serving the fake Vercel Sandbox API at {} (token {FAKE_TOKEN}, team \
         {FAKE_TEAM_ID}, project {FAKE_PROJECT_ID}); stop with Ctrl-C",
        fake.uri()
    );
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted?,
        _ = terminate.recv() => {}
    }
    eprintln!("fake-vercel: stopped");
    Ok(())
}
