//! Command output: the wait+logs NDJSON stream of §5.13 and following a detached
//! command through its logs (§5.15) and wait (§5.14) endpoints.

use reqwest::Method;
use sandkit_core::{Error, LogChunk, ProcessSink, Result};
use tracing::debug;

use crate::ndjson::NdjsonLines;
use crate::session::SessionCore;
use crate::wire::{Command, CommandEnvelope, StreamFailure, StreamLine};

fn broken(session: &str, command: &str, why: &str) -> Error {
    Error::provider(
        None,
        Some("stream_ended_early".to_owned()),
        format!(
            "the output stream of command {command} in Vercel session {session} {why} before \
             its exit code arrived; the command was not run again (it may still have finished) — \
             check the workspace before retrying"
        ),
    )
}

/// The error an `error` line carries; the server's message is scrubbed of the token
/// and `secrets` (it may echo what the command was given). The code is one of the
/// service's own identifiers: classified as sent, and kept unless it holds a secret.
pub(crate) fn stream_error(
    core: &SessionCore,
    failure: StreamFailure,
    secrets: &[String],
) -> Error {
    let session = core.id.as_str();
    let raw_code = failure.code.as_deref().unwrap_or("stream_error");
    let message = core
        .client
        .scrub(failure.message.as_deref().unwrap_or("no message"), secrets);
    if raw_code == "sandbox_stopped" {
        return Error::session_unavailable(format!(
            "Vercel session {session} stopped while the command ran ({message}); start a new session"
        ));
    }
    let code = core.client.scrub(raw_code, secrets);
    Error::provider(
        None,
        Some(code.clone()),
        format!("Vercel reported {code} on the command stream of session {session}: {message}"),
    )
}

/// Reads the first line of a wait stream, which must be the started command.
pub(crate) async fn read_first_command(
    lines: &mut NdjsonLines,
    core: &SessionCore,
    secrets: &[String],
) -> Result<Command> {
    let session = core.id.as_str();
    let protocol = |why: String| {
        Error::provider(
            None,
            None,
            format!("the command stream of Vercel session {session} {why}"),
        )
    };
    match lines.next_line().await {
        None => Err(broken(session, "(not started)", "was empty")),
        Some(Err(e)) => Err(broken(session, "(not started)", &format!("broke ({e})"))),
        Some(Ok(line)) => match StreamLine::parse(&line) {
            Ok(StreamLine::Command(command)) => Ok(command),
            Ok(StreamLine::Failure(f)) => Err(stream_error(core, f, secrets)),
            Ok(_) => Err(protocol("did not start with a command line".to_owned())),
            Err(e) => Err(protocol(format!("has a line that is not JSON ({e})"))),
        },
    }
}

/// Forwards log lines to `sink` until the final command line; returns its exit code.
pub(crate) async fn read_wait_stream(
    mut lines: NdjsonLines,
    core: &SessionCore,
    command: &str,
    secrets: &[String],
    sink: &ProcessSink,
) -> Result<i32> {
    let session = core.id.as_str();
    loop {
        let line = match lines.next_line().await {
            None => return Err(broken(session, command, "ended")),
            Some(Err(e)) => return Err(broken(session, command, &format!("broke ({e})"))),
            Some(Ok(line)) => line,
        };
        match StreamLine::parse(&line) {
            Ok(StreamLine::Output { stderr, data }) => {
                sink.send(chunk(stderr, data)).await;
            }
            Ok(StreamLine::Failure(f)) => return Err(stream_error(core, f, secrets)),
            Ok(StreamLine::Command(c)) => {
                return match c.exit() {
                    Some(code) => {
                        debug!(
                            session,
                            command,
                            exit_code = code,
                            "vercel command finished"
                        );
                        Ok(code)
                    }
                    None => Err(Error::provider(
                        None,
                        None,
                        format!(
                            "the final line of command {command} in Vercel session {session} has no \
                             numeric exitCode"
                        ),
                    )),
                };
            }
            Ok(StreamLine::Other) => {}
            Err(e) => {
                return Err(Error::provider(
                    None,
                    None,
                    format!(
                        "the command stream of Vercel session {session} has a line that is not JSON ({e})"
                    ),
                ));
            }
        }
    }
}

/// Ends `sink` with the outcome of following a command, as [`SessionCore::watched`]
/// gives it.
pub(crate) async fn deliver(sink: ProcessSink, outcome: Result<Result<i32>>) {
    match outcome.and_then(|r| r) {
        Ok(code) => sink.finish(code),
        Err(e) => sink.fail(e).await,
    }
}

/// A chunk of a log line's `data`. The service sends output as JSON text: output that
/// was not UTF-8 reaches us already replaced (U+FFFD) by the service, so the chunk holds
/// the UTF-8 bytes of that text, not the bytes the command wrote.
fn chunk(stderr: bool, data: String) -> LogChunk {
    if stderr {
        LogChunk::stderr(data)
    } else {
        LogChunk::stdout(data)
    }
}

/// Bytes of each stream already forwarded, so that a replayed log can be skipped.
#[derive(Debug, Default)]
struct Progress {
    delivered: [usize; 2],
    replayed: [usize; 2],
}

impl Progress {
    fn start_pass(&mut self) {
        self.replayed = [0, 0];
    }

    /// The part of `data` not forwarded yet.
    fn fresh(&mut self, stderr: bool, data: &str) -> Option<String> {
        let i = usize::from(stderr);
        let start = self.replayed[i];
        let end = start + data.len();
        self.replayed[i] = end;
        if end <= self.delivered[i] {
            return None;
        }
        let mut offset = self.delivered[i].saturating_sub(start);
        while !data.is_char_boundary(offset) {
            offset += 1;
        }
        self.delivered[i] = end;
        Some(data[offset..].to_owned())
    }
}

/// Reads the logs endpoint once, forwarding what was not forwarded before. Returns
/// whether the stream ended cleanly.
async fn logs_pass(
    core: &SessionCore,
    command: &str,
    secrets: &[String],
    progress: &mut Progress,
    sink: &ProcessSink,
) -> Result<bool> {
    let call = core
        .call(Method::GET, "read command logs", &["cmd", command, "logs"])
        .long();
    let mut lines = core.ndjson(call).await?;
    progress.start_pass();
    while let Some(line) = lines.next_line().await {
        let Ok(line) = line else {
            return Ok(false);
        };
        match StreamLine::parse(&line) {
            Ok(StreamLine::Output { stderr, data }) => {
                if let Some(fresh) = progress.fresh(stderr, &data) {
                    sink.send(chunk(stderr, fresh)).await;
                }
            }
            Ok(StreamLine::Failure(f)) => return Err(stream_error(core, f, secrets)),
            Ok(_) | Err(_) => {}
        }
    }
    Ok(true)
}

/// Follows a detached command: its logs from the start, then its exit code.
///
/// Logs replay from the start and stream until the command exits; once the stream
/// ends, `GET …/cmd/{id}?wait=true` gives the exit code. Should the stream end before
/// the exit (a dropped connection, or the fake API, which answers with the output so far),
/// the loop reads the logs again and forwards only what is new.
pub(crate) async fn follow(
    core: &SessionCore,
    command: &str,
    secrets: &[String],
    sink: &ProcessSink,
) -> Result<i32> {
    let mut progress = Progress::default();
    loop {
        logs_pass(core, command, secrets, &mut progress, sink).await?;
        let call = core
            .call(Method::GET, "wait for command", &["cmd", command])
            .query("wait", "true")
            .long();
        let waited: CommandEnvelope = core.json(call).await?;
        if let Some(code) = waited.command.exit() {
            // Output written after the last pass ended (none when the stream ran to the exit).
            if !logs_pass(core, command, secrets, &mut progress, sink).await? {
                return Err(broken(&core.id, command, "broke"));
            }
            return Ok(code);
        }
        tokio::time::sleep(core.poll_interval()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_output_is_skipped_per_stream() {
        let mut p = Progress::default();
        p.start_pass();
        assert_eq!(p.fresh(false, "hello "), Some("hello ".into()));
        assert_eq!(p.fresh(true, "warn"), Some("warn".into()));
        p.start_pass();
        // The replay is chunked differently; only the new tail comes out.
        assert_eq!(p.fresh(false, "hel"), None);
        assert_eq!(p.fresh(false, "lo world"), Some("world".into()));
        assert_eq!(p.fresh(true, "warn"), None);
        assert_eq!(p.fresh(true, "!"), Some("!".into()));
    }

    #[test]
    fn multibyte_boundaries_are_respected() {
        let mut p = Progress::default();
        p.start_pass();
        assert_eq!(p.fresh(false, "é"), Some("é".into()));
        p.start_pass();
        assert_eq!(p.fresh(false, "éa"), Some("a".into()));
    }
}
