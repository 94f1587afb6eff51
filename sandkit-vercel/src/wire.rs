//! Response shapes of the Vercel Sandbox API, decoded leniently.
//!
//! Unknown fields are ignored, optional fields are `Option`, enums fall back to
//! `Unknown`, and millisecond numbers accept floats (the OpenAPI types them as
//! `number`).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Milliseconds (timestamps since the epoch, or durations), tolerating a JSON float.
pub(crate) fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.as_ref().and_then(value_millis))
}

/// A signed integer, tolerating a JSON float; anything else is `None`.
pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(match value {
        Some(Value::Number(n)) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                // Saturating float-to-int conversion.
                .map(|f| f.round() as i64)
        }),
        _ => None,
    })
}

fn value_millis(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                // Saturating float-to-int conversion; timestamps fit in f64 exactly.
                .map(|f| f.round() as u64)
        }),
        _ => None,
    }
}

/// Status of a session (one VM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SessionStatus {
    Pending,
    Running,
    Stopping,
    Stopped,
    Failed,
    Aborted,
    Snapshotting,
    #[serde(other)]
    Unknown,
}

impl SessionStatus {
    /// The API spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Running => "running",
            SessionStatus::Stopping => "stopping",
            SessionStatus::Stopped => "stopped",
            SessionStatus::Failed => "failed",
            SessionStatus::Aborted => "aborted",
            SessionStatus::Snapshotting => "snapshotting",
            SessionStatus::Unknown => "in an unknown state",
        }
    }

    /// Whether commands can still run in it.
    pub(crate) fn is_live(self) -> bool {
        matches!(self, SessionStatus::Pending | SessionStatus::Running)
    }

    /// Whether it has ended for good (stopped, failed or aborted).
    pub(crate) fn is_over(self) -> bool {
        matches!(
            self,
            SessionStatus::Stopped | SessionStatus::Failed | SessionStatus::Aborted
        )
    }

    /// Whether it is on its way to `stopped`.
    pub(crate) fn is_settling(self) -> bool {
        matches!(self, SessionStatus::Stopping | SessionStatus::Snapshotting)
    }
}

/// `Session` (§6.2), the fields this client uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) status: SessionStatus,
    #[serde(default, deserialize_with = "millis")]
    pub(crate) timeout: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    pub(crate) created_at: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    pub(crate) started_at: Option<u64>,
    #[serde(default, deserialize_with = "millis")]
    pub(crate) snapshotted_at: Option<u64>,
}

impl Session {
    /// Deadline in ms since the epoch: (startedAt or createdAt) + timeout.
    pub(crate) fn deadline_ms(&self) -> Option<u64> {
        let base = self.started_at.or(self.created_at)?;
        Some(base.saturating_add(self.timeout?))
    }
}

/// `Route` (§6.3).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Route {
    pub(crate) subdomain: String,
    #[serde(default, deserialize_with = "millis")]
    pub(crate) port: Option<u64>,
}

/// `Command` (§6.4).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Command {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) args: Vec<String>,
    #[serde(default, deserialize_with = "int")]
    pub(crate) exit_code: Option<i64>,
}

impl Command {
    /// Exit code as an `i32` (codes out of range are clamped).
    pub(crate) fn exit(&self) -> Option<i32> {
        self.exit_code
            .map(|c| i32::try_from(c).unwrap_or(if c < 0 { i32::MIN } else { i32::MAX }))
    }
}

/// `Snapshot` (§6.5), the fields this client uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Snapshot {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) source_session_id: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
}

impl Snapshot {
    /// Whether a session can start from it (`created`, or a status this client does
    /// not know); `deleted` and `failed` ones cannot.
    pub(crate) fn is_usable(&self) -> bool {
        !matches!(self.status.as_deref(), Some("deleted" | "failed"))
    }
}

/// `{"snapshots": […], "pagination": {"next"}}` of the list endpoint (§5.22).
#[derive(Debug, Deserialize)]
pub(crate) struct SnapshotList {
    #[serde(default)]
    pub(crate) snapshots: Vec<Snapshot>,
    #[serde(default)]
    pub(crate) pagination: Option<Pagination>,
}

/// `Pagination` (§6.7): the cursor of the next page, if any.
#[derive(Debug, Deserialize)]
pub(crate) struct Pagination {
    #[serde(default)]
    pub(crate) next: Option<String>,
}

/// `{"session", "routes"}` from create and get-session.
#[derive(Debug, Deserialize)]
pub(crate) struct SessionEnvelope {
    pub(crate) session: Session,
    #[serde(default, deserialize_with = "lenient_routes")]
    pub(crate) routes: Vec<Route>,
}

/// Routes, tolerating `null` and skipping entries that are not port routes (e.g. system
/// routes without a subdomain): one odd entry must not fail a create whose sandbox
/// already runs.
fn lenient_routes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Route>, D::Error> {
    let raw = Option::<Vec<serde_json::Value>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// `{"session"}` from extend-timeout and network-policy.
#[derive(Debug, Deserialize)]
pub(crate) struct SessionOnly {
    pub(crate) session: Session,
}

/// `{"command"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct CommandEnvelope {
    pub(crate) command: Command,
}

/// `{"commands"}` from list-commands.
#[derive(Debug, Deserialize)]
pub(crate) struct CommandList {
    #[serde(default)]
    pub(crate) commands: Vec<Command>,
}

/// `{"snapshot"}` from create-snapshot.
#[derive(Debug, Deserialize)]
pub(crate) struct SnapshotEnvelope {
    pub(crate) snapshot: Snapshot,
}

/// Output stream of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogStreamName {
    Stdout,
    Stderr,
    Error,
    #[serde(other)]
    Unknown,
}

/// The `data` of an `error` log line.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StreamFailure {
    #[serde(default)]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

/// One parsed NDJSON line of a command stream.
#[derive(Debug)]
pub(crate) enum StreamLine {
    /// `{"command": …}`.
    Command(Command),
    /// `{"stream": "stdout"|"stderr", "data": "…"}`.
    Output { stderr: bool, data: String },
    /// `{"stream": "error", "data": {code, message}}`.
    Failure(StreamFailure),
    /// Anything else (ignored, as the SDK does).
    Other,
}

#[derive(Deserialize)]
struct RawLine {
    #[serde(default)]
    command: Option<Command>,
    #[serde(default)]
    stream: Option<LogStreamName>,
    #[serde(default)]
    data: Option<Value>,
}

impl StreamLine {
    /// Parses one non-empty line.
    pub(crate) fn parse(line: &[u8]) -> Result<StreamLine, serde_json::Error> {
        let raw: RawLine = serde_json::from_slice(line)?;
        if let Some(command) = raw.command {
            return Ok(StreamLine::Command(command));
        }
        Ok(match (raw.stream, raw.data) {
            (Some(LogStreamName::Stdout), Some(Value::String(data))) => StreamLine::Output {
                stderr: false,
                data,
            },
            (Some(LogStreamName::Stderr), Some(Value::String(data))) => {
                StreamLine::Output { stderr: true, data }
            }
            (Some(LogStreamName::Error), data) => StreamLine::Failure(
                data.and_then(|d| serde_json::from_value(d).ok())
                    .unwrap_or_default(),
            ),
            _ => StreamLine::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_tolerate_floats_and_ignore_garbage() {
        let s: Session = serde_json::from_str(
            r#"{"id":"sbx_1","status":"running","timeout":300000.0,"createdAt":1787306400000,
                "startedAt":"soon","extra":{"nested":true}}"#,
        )
        .expect("lenient");
        assert_eq!(s.timeout, Some(300_000));
        assert_eq!(s.started_at, None);
        assert_eq!(s.deadline_ms(), Some(1_787_306_700_000));
    }

    #[test]
    fn unknown_status_is_not_live() {
        let s: Session =
            serde_json::from_str(r#"{"id":"sbx_1","status":"hibernating"}"#).expect("lenient");
        assert_eq!(s.status, SessionStatus::Unknown);
        assert!(!s.status.is_live());
    }

    #[test]
    fn stream_lines() {
        assert!(matches!(
            StreamLine::parse(br#"{"stream":"stderr","data":"x"}"#),
            Ok(StreamLine::Output { stderr: true, .. })
        ));
        let Ok(StreamLine::Failure(f)) = StreamLine::parse(
            br#"{"stream":"error","data":{"code":"sandbox_stream_closed","message":"closed"}}"#,
        ) else {
            panic!("error line")
        };
        assert_eq!(f.code.as_deref(), Some("sandbox_stream_closed"));
        let Ok(StreamLine::Command(c)) =
            StreamLine::parse(br#"{"command":{"id":"cmd_1","exitCode":3,"new":1}}"#)
        else {
            panic!("command line")
        };
        assert_eq!(c.exit(), Some(3));
    }
}
