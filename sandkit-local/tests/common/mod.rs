//! Helpers shared by the integration tests.

#![allow(dead_code, unused_imports)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::Duration;

use sandkit_core::{Provider, ProviderSession, StartSpec};
use sandkit_local::LocalProvider;
pub use sandkit_testkit::provider_suite::{Ran, fresh, run, sh, shell};

/// A provider over `root` with a short kill grace.
pub fn provider(root: &Path) -> LocalProvider {
    LocalProvider::builder(root)
        .kill_grace(Duration::from_millis(500))
        .build()
        .expect("local provider")
}

/// Starts a fresh allow-all session.
pub async fn start(p: &LocalProvider) -> Box<dyn ProviderSession> {
    p.start(fresh("local-tests")).await.expect("start")
}

/// Starts a session from `spec`.
pub async fn start_with(p: &LocalProvider, spec: StartSpec) -> Box<dyn ProviderSession> {
    p.start(spec).await.expect("start")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Whether a process exists and is not a zombie.
pub fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("X");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}
