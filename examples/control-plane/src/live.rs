//! One live session per workspace: attach or open, extend to a required minimum, repair.
//!
//! The session lease lives in the database, so this service keeps no session in memory:
//! every request attaches to the workspace's session (any replica of the service can
//! serve it), and at most one session exists per workspace because the lease is
//! exclusive.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sandkit_core::{ErrorKind, LeaseKind, Result, Session, SessionOptions, Workspace};
use serde::Serialize;

/// Extra time added when extending, so that the required minimum still holds when the
/// answer reaches the client.
const EXTEND_MARGIN: Duration = Duration::from_secs(10);

/// What [`ensure_session`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A live session existed: attached to it.
    Attached,
    /// There was none: opened one from the workspace's last commit.
    Opened,
    /// The lease said a session was live but its sandbox was gone: Sandkit released
    /// the lease (the workspace kept its last commit) and a new session was opened.
    /// Uncommitted changes of the lost session are gone.
    Repaired,
}

/// A live session and how it was obtained.
#[derive(Debug)]
pub struct Ensured {
    /// The session.
    pub session: Session,
    /// Attached, opened or repaired.
    pub action: Action,
    /// How much the lease was extended by, when it had less than the minimum left.
    pub extended_by: Option<Duration>,
    /// When the session (and its lease) ends unless extended again.
    pub expires_at: DateTime<Utc>,
    /// Time left when this answer was made.
    pub remaining: Duration,
}

/// Returns the workspace's live session with at least `min_remaining` left: attaches to
/// it, or opens one (lasting `open_timeout`, or `min_remaining` if longer) when there is
/// none or when its sandbox was lost, and extends it when it would end too soon.
///
/// # Errors
/// `Busy` while a durable command holds the workspace; provider and store errors as
/// they come.
pub async fn ensure_session(
    workspace: &Workspace,
    min_remaining: Duration,
    open_timeout: Duration,
) -> Result<Ensured> {
    // A session lease recorded now tells "its sandbox was lost" apart from "never
    // opened" when attaching fails below.
    let recorded = workspace
        .lease()
        .await?
        .is_some_and(|lease| lease.kind == LeaseKind::Session);

    let (session, action) = match workspace.attach_session().await {
        Ok(session) => (session, Action::Attached),
        // No live session: never opened, committed, discarded, expired — or its sandbox
        // died, in which case Sandkit has just released its lease.
        Err(e) if e.kind() == &ErrorKind::NoActiveSession => {
            let options = SessionOptions::new().timeout(open_timeout.max(min_remaining));
            match workspace.open_session(options).await {
                Ok(session) if recorded => (session, Action::Repaired),
                Ok(session) => (session, Action::Opened),
                // Another request opened it a moment ago: use that one.
                Err(busy) if busy.kind() == &ErrorKind::Busy => {
                    match workspace.attach_session().await {
                        Ok(session) => (session, Action::Attached),
                        // A durable command holds the workspace: report that.
                        Err(_) => return Err(busy),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };

    let mut lease = session.lease().await?;
    let mut extended_by = None;
    if lease.remaining < min_remaining {
        let by = min_remaining - lease.remaining + EXTEND_MARGIN;
        session.extend(by).await?;
        lease = session.lease().await?;
        extended_by = Some(by);
    }
    Ok(Ensured {
        session,
        action,
        extended_by,
        expires_at: lease.expires_at,
        remaining: lease.remaining,
    })
}
