//! Maps a request to a handler of the model.

use serde_json::Value;

use super::reply::Reply;
use super::state::Model;

/// Runs the handler for `method` + path `segments`.
pub(crate) fn route(
    model: &mut Model,
    method: &str,
    segments: &[&str],
    query: &[(String, String)],
    body: Option<&Value>,
) -> Reply {
    let wait = query.iter().any(|(k, v)| k == "wait" && v == "true");
    let result = match (method, segments) {
        ("POST", ["v3", "sandboxes"]) => model.create(body),
        ("GET", ["v2", "sandboxes", "sessions", id]) => model.get_session(id),
        ("POST", ["v2", "sandboxes", "sessions", id, "cmd"]) => model.run_command(id, body),
        ("GET", ["v2", "sandboxes", "sessions", id, "cmd"]) => model.list_commands(id),
        ("GET", ["v2", "sandboxes", "sessions", id, "cmd", cmd]) => {
            model.get_command(id, cmd, wait)
        }
        ("GET", ["v2", "sandboxes", "sessions", id, "cmd", cmd, "logs"]) => {
            model.command_logs(id, cmd)
        }
        ("POST", ["v2", "sandboxes", "sessions", id, "cmd", cmd, "kill"]) => {
            model.kill(id, cmd, body)
        }
        ("POST", ["v2", "sandboxes", "sessions", id, "network-policy"]) => {
            model.set_policy(id, body)
        }
        ("POST", ["v2", "sandboxes", "sessions", id, "extend-timeout"]) => model.extend(id, body),
        ("POST", ["v2", "sandboxes", "sessions", id, "stop"]) => model.stop(id, body),
        ("POST", ["v2", "sandboxes", "sessions", id, "snapshot"]) => model.snapshot(id, body),
        ("GET", ["v2", "sandboxes", "snapshots"]) => model.list_snapshots(query),
        ("GET", ["v2", "sandboxes", "snapshots", id]) => model.get_snapshot(id),
        ("GET", ["v2", "sandboxes", name]) => model.get_sandbox(name, query),
        ("DELETE", ["v2", "sandboxes", "snapshots", id]) => model.delete_snapshot(id),
        _ => Err(Reply::not_found(format!(
            "The fake Vercel API has no endpoint {method} /{}",
            segments.join("/")
        ))),
    };
    result.unwrap_or_else(|reply| reply)
}
