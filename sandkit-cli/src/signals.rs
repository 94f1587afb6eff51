//! Ctrl-C and SIGTERM while a command runs: stop it cleanly, or — on a second signal —
//! exit at once (recovery handles the rest).

use std::future::Future;

use sandkit_core::{Command, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Exit status after SIGINT (128 + 2), the shell convention.
pub const SIGINT_EXIT: i32 = 130;
/// Exit status after SIGTERM (128 + 15).
pub const SIGTERM_EXIT: i32 = 143;

/// Both signals, listened for from now on (so the default action, dying at once, no
/// longer applies).
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Starts listening.
    pub fn listen() -> Result<Signals> {
        let listen = |kind| {
            signal(kind).map_err(|e| {
                sandkit_core::Error::storage(format!("cannot listen for signals: {e}"))
            })
        };
        Ok(Signals {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
        })
    }

    /// Runs `work` unless a signal comes first (then nothing was started: returns the
    /// exit status the signal calls for).
    pub async fn unless_signal<T>(
        &mut self,
        work: impl Future<Output = T>,
    ) -> std::result::Result<T, i32> {
        tokio::select! {
            done = work => Ok(done),
            (_, code) = self.next() => Err(code),
        }
    }

    /// The next signal: its name and the exit status it calls for.
    async fn next(&mut self) -> (&'static str, i32) {
        tokio::select! {
            _ = self.interrupt.recv() => ("SIGINT", SIGINT_EXIT),
            _ = self.terminate.recv() => ("SIGTERM", SIGTERM_EXIT),
        }
    }
}

/// Runs `follow` (which streams `cmd` and returns its exit code). On SIGINT/SIGTERM:
/// says so in one line, interrupts the command (its sandbox stops, its run is journaled
/// as interrupted, the workspace keeps its head) and returns 130/143 once that is done;
/// a second signal exits the process at once.
pub async fn until_signal(
    signals: Signals,
    cmd: &Command,
    follow: impl Future<Output = Result<i32>>,
) -> Result<i32> {
    until_signal_then(signals, follow, |name| async move {
        eprintln!(
            "sandkit: {name}: stopping run {} (it is journaled as interrupted and the \
             workspace keeps its last commit); press Ctrl-C again to exit at once",
            cmd.run_id()
        );
        cmd.interrupt(format!("signal {name}"));
        let _ = cmd.wait().await;
    })
    .await
}

/// Runs `follow`; on SIGINT/SIGTERM runs `stop` (given the signal's name; it says what
/// it stops in one line) and returns 130/143 once it finished. A second signal exits
/// the process at once.
pub async fn until_signal_then<F>(
    mut signals: Signals,
    follow: impl Future<Output = Result<i32>>,
    stop: impl FnOnce(&'static str) -> F,
) -> Result<i32>
where
    F: Future<Output = ()>,
{
    let (name, code) = tokio::select! {
        outcome = follow => return outcome,
        got = signals.next() => got,
    };
    tokio::select! {
        () = stop(name) => Ok(code),
        (_, again) = signals.next() => std::process::exit(again),
    }
}
