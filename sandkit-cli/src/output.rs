//! Printing: JSON documents, plain tables, live output and progress.
//!
//! Everything written to stdout goes through [`stdout_fmt`] (the `outln!`/`out!`
//! macros) or [`write_chunk`]: a reader that closed the pipe (`| head`) ends the
//! process quietly with [`SIGPIPE_EXIT`] instead of a panic.

use std::io::{ErrorKind, IsTerminal, Write};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sandkit_core::{Error, LogChunk, LogStream, Result, StdStream};
use serde::Serialize;

/// Exit status when stdout was closed by its reader (128 + SIGPIPE), the shell
/// convention.
pub const SIGPIPE_EXIT: i32 = 141;

/// Writes formatted text to stdout and flushes it. When stdout is a closed pipe the
/// process ends quietly with [`SIGPIPE_EXIT`]; another write error ends it with 1.
pub fn stdout_fmt(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        drop(out);
        stdout_failed(&e);
    }
}

/// Ends the process after a failed write to stdout (see [`stdout_fmt`]).
pub fn stdout_failed(error: &std::io::Error) -> ! {
    if error.kind() == ErrorKind::BrokenPipe {
        std::process::exit(SIGPIPE_EXIT);
    }
    let _ = writeln!(
        std::io::stderr(),
        "sandkit: error: cannot write to stdout: {error}"
    );
    std::process::exit(1);
}

/// Prints `value` as one pretty JSON document on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::storage(format!("cannot encode JSON output: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// Prints `value` as one compact JSON line on stdout.
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string(value)
        .map_err(|e| Error::storage(format!("cannot encode JSON output: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// A timestamp for humans (UTC, seconds).
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Prints rows as left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        outln!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Where command output went (see [`write_chunk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Written (or dropped because our stderr is gone: output on stdout goes on).
    Ok,
    /// Our stdout is a closed pipe: the reader is gone.
    StdoutClosed,
}

/// Writes one chunk of command output, as raw bytes, to our stdout or stderr, unbuffered.
pub fn write_chunk(chunk: &LogChunk) -> Written {
    match chunk.stream {
        StdStream::Stdout => {
            let mut out = std::io::stdout().lock();
            match out.write_all(&chunk.bytes).and_then(|()| out.flush()) {
                Ok(()) => Written::Ok,
                Err(e) if e.kind() == ErrorKind::BrokenPipe => Written::StdoutClosed,
                Err(e) => {
                    drop(out);
                    stdout_failed(&e)
                }
            }
        }
        StdStream::Stderr => {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&chunk.bytes).and_then(|()| err.flush());
            Written::Ok
        }
    }
}

/// Copies a log stream to stdout/stderr until it ends (or, unless `follow`, until it
/// has been idle for a moment); returns the exit status: 0, or [`SIGPIPE_EXIT`] when
/// our stdout was closed.
pub async fn pipe_logs(mut stream: LogStream, follow: bool) -> Result<i32> {
    let idle = Duration::from_millis(500);
    loop {
        let next = if follow {
            stream.next().await
        } else {
            match tokio::time::timeout(idle, stream.next()).await {
                Ok(next) => next,
                Err(_) => return Ok(0),
            }
        };
        match next {
            Some(Ok(chunk)) => {
                if write_chunk(&chunk) == Written::StdoutClosed {
                    return Ok(SIGPIPE_EXIT);
                }
            }
            Some(Err(e)) => return Err(e),
            None => return Ok(0),
        }
    }
}

/// A spinner on stderr, only when stderr is a terminal.
pub struct Progress {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Shown on terminals unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: None,
        }
    }

    /// Shows `message` with a ticking spinner and elapsed time.
    pub fn show(&mut self, message: &str) {
        self.hide();
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bar = Some(bar);
    }

    /// Clears the spinner.
    pub fn hide(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.hide();
    }
}
