//! The TypeScript Sandkit's persisted shapes, and their conversion to and from ours.
//!
//! The original kept all lifecycle state in `sandkit_workspaces.metadata` under reserved
//! keys; runs and setup states held the driver's snapshot payload. These pure functions
//! convert those shapes (used by the upgrade migration) and back (used by its `down`).

use chrono::{DateTime, SubsecRound, Utc};
use sandkit_core::policies::Policy;
use sandkit_core::{Lease, LeaseKind, LeaseToken, SessionRef, SnapshotRef};
use serde_json::{Map, Value as Json, json};

/// Metadata key of the original's sandbox state machine.
pub(crate) const SANDBOX_KEY: &str = "sandkit:sandbox";
/// Metadata key of the original's durable default policy.
pub(crate) const POLICY_KEY: &str = "sandkit:policy";
/// Metadata key of the original's sandbox settings.
pub(crate) const CONFIG_KEY: &str = "sandkit:sandbox-config";
/// Prefix of every reserved metadata key.
pub(crate) const RESERVED_PREFIX: &str = "sandkit:";
/// The Vercel driver's snapshot payload kind.
const VERCEL_SNAPSHOT: &str = "vercel-sandbox-snapshot";
/// Provider id of the Vercel provider.
const VERCEL: &str = "vercel";
/// Holder recorded on a session lease carried over from the original.
pub(crate) const MIGRATED_HOLDER: &str = "sandkit-ts (migrated)";

/// A workspace's state moved out of its metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Upgraded {
    /// Metadata without reserved keys.
    pub(crate) metadata: Map<String, Json>,
    /// Durable default policy (JSON form), if one was stored.
    pub(crate) policy: Option<Json>,
    /// Sandbox settings, if stored.
    pub(crate) sandbox_config: Option<Json>,
    /// The committed snapshot, if the state was a Vercel snapshot.
    pub(crate) head: Option<SnapshotRef>,
    /// The session lease, if the state was a session with a lease.
    pub(crate) lease: Option<Lease>,
    /// What could not be carried over, for the migration's log.
    pub(crate) dropped: Vec<String>,
}

/// Whether a metadata object holds any reserved key.
pub(crate) fn has_reserved_keys(metadata: &Map<String, Json>) -> bool {
    metadata.keys().any(|k| k.starts_with(RESERVED_PREFIX))
}

/// Moves the original's reserved keys into our columns.
pub(crate) fn upgrade_workspace(mut metadata: Map<String, Json>) -> Upgraded {
    let mut out = Upgraded::default();
    if let Some(policy) = metadata.remove(POLICY_KEY).filter(|v| !v.is_null()) {
        out.policy = Some(match Policy::from_json_value(&policy) {
            Ok(parsed) => parsed.redacted().to_json_value(),
            // Kept as it was, so reading the workspace reports it as corrupt instead of
            // silently dropping the policy.
            Err(e) => {
                out.dropped
                    .push(format!("{POLICY_KEY} does not parse ({e}); kept as is"));
                policy
            }
        });
    }
    out.sandbox_config = metadata.remove(CONFIG_KEY).filter(|v| !v.is_null());
    if let Some(state) = metadata.remove(SANDBOX_KEY) {
        upgrade_sandbox_state(&state, &mut out);
    }
    let reserved: Vec<String> = metadata
        .keys()
        .filter(|k| k.starts_with(RESERVED_PREFIX))
        .cloned()
        .collect();
    for key in reserved {
        metadata.remove(&key);
        out.dropped
            .push(format!("removed unknown reserved key {key}"));
    }
    out.metadata = metadata;
    out
}

fn upgrade_sandbox_state(state: &Json, out: &mut Upgraded) {
    match state.get("kind").and_then(Json::as_str) {
        Some("snapshot") => match state.get("state").and_then(snapshot_from_payload) {
            Some(head) => out.head = Some(head),
            None => out.dropped.push(format!(
                "{SANDBOX_KEY} holds a snapshot of a driver other than Vercel; the workspace starts cold"
            )),
        },
        Some("session") => match session_lease(state) {
            Some(lease) => out.lease = Some(lease),
            None => out
                .dropped
                .push(format!("{SANDBOX_KEY} holds a session without a valid lease")),
        },
        _ => {}
    }
}

/// `{"kind":"session","sessionId":…,"lease":{"observedAt":…,"expiresAt":…},"policy"?}`
/// → a session lease with a fresh fencing token.
fn session_lease(state: &Json) -> Option<Lease> {
    let session_id = state.get("sessionId")?.as_str()?;
    let lease = state.get("lease")?;
    let acquired_at = timestamp(lease.get("observedAt")?)?;
    let expires_at = timestamp(lease.get("expiresAt")?)?;
    // Like the original's reader: an unparsable or secret-holding session policy means
    // "no session override" (and the secret does not survive the migration).
    let policy = state
        .get("policy")
        .and_then(|p| Policy::from_json_value(p).ok())
        .filter(|p| p.ensure_durable().is_ok());
    Some(Lease {
        kind: LeaseKind::Session,
        token: LeaseToken::generate(),
        holder: MIGRATED_HOLDER.to_owned(),
        session: Some(SessionRef {
            provider: VERCEL.to_owned(),
            id: session_id.to_owned(),
        }),
        run_id: None,
        acquired_at,
        expires_at,
        policy,
    })
}

/// An ISO-8601 string or epoch milliseconds, truncated to milliseconds.
fn timestamp(value: &Json) -> Option<DateTime<Utc>> {
    let at = match value {
        Json::String(s) => DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc),
        Json::Number(n) => DateTime::from_timestamp_millis(n.as_i64()?)?,
        _ => return None,
    };
    Some(at.trunc_subsecs(3))
}

/// The Vercel driver's snapshot payload
/// `{"kind":"vercel-sandbox-snapshot","sessionId":…,"state":{"snapshotId":…}}` → a
/// snapshot reference.
pub(crate) fn snapshot_from_payload(payload: &Json) -> Option<SnapshotRef> {
    if payload.get("kind")?.as_str()? != VERCEL_SNAPSHOT {
        return None;
    }
    let id = payload.get("state")?.get("snapshotId")?.as_str()?;
    Some(SnapshotRef {
        provider: VERCEL.to_owned(),
        id: id.to_owned(),
    })
}

/// Whether a stored snapshot value is in the original's driver-payload shape (rather
/// than our `{"provider":…,"id":…}`).
pub(crate) fn is_payload(value: &Json) -> bool {
    value.get("kind").is_some() && value.get("provider").is_none()
}

/// A snapshot reference in the original's payload shape (Vercel snapshots only; the
/// original cannot restore others).
pub(crate) fn snapshot_to_payload(snapshot: &SnapshotRef, session_id: &str) -> Option<Json> {
    (snapshot.provider == VERCEL).then(|| {
        json!({
            "kind": VERCEL_SNAPSHOT,
            "sessionId": session_id,
            "state": {"snapshotId": snapshot.id},
        })
    })
}

/// Puts a workspace's state back under the original's reserved metadata keys.
pub(crate) fn downgrade_workspace(
    mut metadata: Map<String, Json>,
    policy: Option<Json>,
    sandbox_config: Option<Json>,
    head: Option<&SnapshotRef>,
    lease: Option<&Lease>,
) -> Map<String, Json> {
    if let Some(policy) = policy {
        metadata.insert(POLICY_KEY.to_owned(), policy);
    }
    if let Some(config) = sandbox_config.filter(has_exposed_ports) {
        metadata.insert(CONFIG_KEY.to_owned(), config);
    }
    let session = lease
        .filter(|l| l.kind == LeaseKind::Session)
        .and_then(|l| Some((l, l.session.as_ref().filter(|s| s.provider == VERCEL)?)));
    let state = match (session, head.and_then(|h| snapshot_to_payload(h, ""))) {
        (Some((lease, session)), _) => {
            let mut state = json!({
                "kind": "session",
                "sessionId": session.id,
                "lease": {
                    "observedAt": lease.acquired_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "expiresAt": lease.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                },
            });
            if let (Some(policy), Some(obj)) = (&lease.policy, state.as_object_mut()) {
                obj.insert("policy".to_owned(), policy.to_json_value());
            }
            state
        }
        (None, Some(payload)) => json!({"kind": "snapshot", "state": payload}),
        (None, None) => json!({"kind": "cold"}),
    };
    metadata.insert(SANDBOX_KEY.to_owned(), state);
    metadata
}

fn has_exposed_ports(config: &Json) -> bool {
    config
        .get("exposedPorts")
        .and_then(Json::as_array)
        .is_some_and(|ports| !ports.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Json) -> Map<String, Json> {
        value.as_object().cloned().expect("object")
    }

    #[test]
    fn vercel_snapshot_state_becomes_the_head() {
        let up = upgrade_workspace(object(json!({
            "team": "infra",
            "sandkit:sandbox": {"kind": "snapshot", "state": {
                "kind": "vercel-sandbox-snapshot", "sessionId": "sbx_1",
                "state": {"snapshotId": "snap_1"}}},
            "sandkit:policy": {"mode": "deny-all"},
            "sandkit:sandbox-config": {"exposedPorts": [3000]},
        })));
        assert_eq!(up.metadata, object(json!({"team": "infra"})));
        assert_eq!(
            up.head,
            Some(SnapshotRef {
                provider: "vercel".into(),
                id: "snap_1".into()
            })
        );
        assert_eq!(up.policy, Some(json!({"mode": "deny-all"})));
        assert_eq!(up.sandbox_config, Some(json!({"exposedPorts": [3000]})));
        assert_eq!(up.lease, None);
    }

    #[test]
    fn session_state_becomes_a_session_lease_without_secrets() {
        let up = upgrade_workspace(object(json!({
            "sandkit:sandbox": {"kind": "session", "sessionId": "sbx_2",
                "lease": {"observedAt": "2026-01-01T00:00:00.000Z", "expiresAt": "2026-01-01T00:05:00.000Z"},
                "policy": {"mode": "allow-services", "services": [{"id": "codex", "name": "Codex",
                    "domains": ["api.openai.com"], "headers": [{"headerName": "authorization",
                    "valuePrefix": "Bearer ", "credential": {"kind": "value", "value": "sk-secret"}}]}]}},
        })));
        let lease = up.lease.expect("lease");
        assert_eq!(lease.kind, LeaseKind::Session);
        assert_eq!(lease.session.map(|s| s.id), Some("sbx_2".to_owned()));
        assert_eq!(lease.expires_at.to_rfc3339(), "2026-01-01T00:05:00+00:00");
        assert_eq!(
            lease.policy, None,
            "a secret-holding session policy is dropped"
        );
        assert!(up.metadata.is_empty());
    }

    #[test]
    fn cold_and_unknown_states_start_cold() {
        for state in [
            json!({"kind": "cold"}),
            json!({"kind": "command", "sessionId": "x"}),
            json!("junk"),
        ] {
            let up = upgrade_workspace(object(
                json!({"sandkit:sandbox": state, "sandkit:other": 1}),
            ));
            assert_eq!((up.head, up.lease), (None, None));
            assert!(up.metadata.is_empty());
        }
    }

    #[test]
    fn unparsable_policy_is_kept_for_the_reader_to_report() {
        let up = upgrade_workspace(object(json!({"sandkit:policy": {"mode": "sometimes"}})));
        assert_eq!(up.policy, Some(json!({"mode": "sometimes"})));
        assert_eq!(up.dropped.len(), 1);
    }

    #[test]
    fn downgrade_round_trips_vercel_state() {
        let meta = object(json!({
            "team": "infra",
            "sandkit:sandbox": {"kind": "snapshot", "state": {
                "kind": "vercel-sandbox-snapshot", "sessionId": "",
                "state": {"snapshotId": "snap_1"}}},
            "sandkit:policy": {"mode": "deny-all"},
            "sandkit:sandbox-config": {"exposedPorts": [3000]},
        }));
        let up = upgrade_workspace(meta.clone());
        let down = downgrade_workspace(
            up.metadata.clone(),
            up.policy.clone(),
            up.sandbox_config.clone(),
            up.head.as_ref(),
            up.lease.as_ref(),
        );
        assert_eq!(down, meta);
    }

    #[test]
    fn payload_shapes_are_told_apart() {
        let payload = json!({"kind": "vercel-sandbox-snapshot", "sessionId": "s", "state": {"snapshotId": "snap"}});
        assert!(is_payload(&payload));
        assert!(!is_payload(&json!({"provider": "vercel", "id": "snap"})));
        let snap = snapshot_from_payload(&payload).expect("vercel");
        assert_eq!(snapshot_to_payload(&snap, "s"), Some(payload));
        assert_eq!(
            snapshot_to_payload(
                &SnapshotRef {
                    provider: "local".into(),
                    id: "x".into()
                },
                ""
            ),
            None
        );
    }
}
