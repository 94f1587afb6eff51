//! The TypeScript Sandkit's Drizzle schema and rows in its shapes, for upgrade tests.

use chrono::{DateTime, Utc};
use sandkit_adapter_seaorm::{Dialect, SeaOrmStore};
use sandkit_core::{Store, WorkspaceId, WorkspaceRecord};

/// Reads a workspace the upgrade must have kept.
pub async fn upgraded_workspace(store: &SeaOrmStore, id: &str) -> WorkspaceRecord {
    store
        .get_workspace(&WorkspaceId::new(id).expect("id"))
        .await
        .expect("read")
        .expect("exists")
}

/// The original's Drizzle DDL (`sandkit-ts-behaviour.md` §5.2). On MySQL the ids are
/// `varchar(255)`: MySQL cannot index the `text` columns the original's generator named.
pub fn typescript_ddl(dialect: Dialect) -> Vec<String> {
    let (q, json, ts, int, id) = match dialect {
        Dialect::Sqlite => ('`', "text", "integer", "integer", "text"),
        Dialect::Postgres => ('"', "jsonb", "timestamp", "integer", "text"),
        Dialect::MySql => ('`', "json", "timestamp", "int", "varchar(255)"),
    };
    let null_ts = if dialect == Dialect::MySql {
        " NULL"
    } else {
        ""
    };
    let pk = |table: &str| match dialect {
        Dialect::MySql => format!(", CONSTRAINT {q}{table}_id{q} PRIMARY KEY({q}id{q})"),
        _ => String::new(),
    };
    let id_col = match dialect {
        Dialect::MySql => format!("{q}id{q} {id} NOT NULL"),
        _ => format!("{q}id{q} {id} PRIMARY KEY NOT NULL"),
    };
    let fk = |table: &str| match dialect {
        Dialect::Sqlite => format!(
            ", FOREIGN KEY ({q}workspace_id{q}) REFERENCES {q}sandkit_workspaces{q}({q}id{q}) ON UPDATE no action ON DELETE no action"
        ),
        _ => {
            let _ = table;
            String::new()
        }
    };
    let mut ddl = vec![
        format!(
            "CREATE TABLE {q}sandkit_workspaces{q} ({id_col}, {q}metadata{q} {json}, {q}sandboxId{q} text, \
             {q}status{q} text NOT NULL, {q}name{q} text, {q}lastResumedAt{q} {ts}{null_ts}, \
             {q}createdAt{q} {ts} NOT NULL, {q}updatedAt{q} {ts} NOT NULL{})",
            pk("sandkit_workspaces")
        ),
        format!(
            "CREATE TABLE {q}sandkit_runs{q} ({id_col}, {q}workspace_id{q} {id} NOT NULL, {q}command{q} text NOT NULL, \
             {q}args{q} {json}, {q}provider{q} text NOT NULL, {q}execution_target_id{q} text NOT NULL, \
             {q}status{q} text NOT NULL, {q}policy_snapshot_id{q} text, {q}provider_commit{q} {json}, \
             {q}exit_code{q} {int}, {q}stdout{q} text, {q}stderr{q} text, {q}started_at{q} {ts} NOT NULL, \
             {q}finished_at{q} {ts}{null_ts}{}{})",
            pk("sandkit_runs"),
            fk("sandkit_runs")
        ),
        format!(
            "CREATE TABLE {q}sandkit_policies{q} ({id_col}, {q}workspace_id{q} {id} NOT NULL, \
             {q}policy_id{q} text NOT NULL, {q}config{q} {json} NOT NULL, {q}created_at{q} {ts} NOT NULL{}{})",
            pk("sandkit_policies"),
            fk("sandkit_policies")
        ),
        format!(
            "CREATE TABLE {q}sandkit_setup_states{q} ({id_col}, {q}state{q} {json} NOT NULL, \
             {q}createdAt{q} {ts} NOT NULL, {q}updatedAt{q} {ts} NOT NULL{})",
            pk("sandkit_setup_states")
        ),
    ];
    if dialect != Dialect::Sqlite {
        let public = if dialect == Dialect::Postgres {
            "\"public\"."
        } else {
            ""
        };
        for table in ["sandkit_runs", "sandkit_policies"] {
            ddl.push(format!(
                "ALTER TABLE {q}{table}{q} ADD CONSTRAINT {q}{table}_workspace_id_sandkit_workspaces_id_fk{q} \
                 FOREIGN KEY ({q}workspace_id{q}) REFERENCES {public}{q}sandkit_workspaces{q}({q}id{q}) \
                 ON DELETE no action ON UPDATE no action"
            ));
        }
    }
    ddl
}

pub const CREATED_MS: i64 = 1_767_225_600_123; // 2026-01-01T00:00:00.123Z

/// A timestamp literal as the original's Drizzle schema stored it, and the value it
/// holds (MySQL's `timestamp` keeps whole seconds).
pub fn ts_literal(dialect: Dialect, ms: i64) -> (String, DateTime<Utc>) {
    let at = DateTime::from_timestamp_millis(ms).expect("valid");
    match dialect {
        Dialect::Sqlite => (ms.to_string(), at),
        Dialect::Postgres => (format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.3f")), at),
        Dialect::MySql => {
            let whole = DateTime::from_timestamp_millis(ms - ms % 1000).expect("valid");
            (format!("'{}'", whole.format("%Y-%m-%d %H:%M:%S")), whole)
        }
    }
}

pub fn typescript_rows(dialect: Dialect) -> Vec<String> {
    let q = if dialect == Dialect::Postgres {
        '"'
    } else {
        '`'
    };
    let (t, _) = ts_literal(dialect, CREATED_MS);
    let snap = |id: &str| {
        format!(
            r#"{{"kind":"vercel-sandbox-snapshot","sessionId":"sbx_old","state":{{"snapshotId":"{id}"}}}}"#
        )
    };
    let session = |expires: &str| {
        format!(
            r#"{{"sandkit:sandbox":{{"kind":"session","sessionId":"sbx_live","lease":{{"observedAt":"2026-01-01T00:00:00.000Z","expiresAt":"{expires}"}},"policy":{{"mode":"deny-all"}}}},"owner":"ops"}}"#
        )
    };
    let snapshot_ws = format!(
        r#"{{"team":"infra","sandkit:sandbox":{{"kind":"snapshot","state":{}}},"sandkit:policy":{{"mode":"allow-services","services":[{{"id":"github","name":"GitHub","domains":["github.com"]}}]}},"sandkit:sandbox-config":{{"exposedPorts":[3000]}}}}"#,
        snap("snap_abc")
    );
    let config = r#"{"mode":"allow-services","services":[{"id":"github","name":"GitHub","domains":["github.com"],"headers":[{"headerName":"authorization","valuePrefix":"Bearer ","credential":{"kind":"redacted"}}]}]}"#;
    let ws_cols = format!(
        "({q}id{q}, {q}metadata{q}, {q}sandboxId{q}, {q}status{q}, {q}name{q}, {q}lastResumedAt{q}, {q}createdAt{q}, {q}updatedAt{q})"
    );
    vec![
        format!(
            "INSERT INTO sandkit_workspaces {ws_cols} VALUES ('ws-snap', '{snapshot_ws}', 'sbx_old', 'active', 'agent', {t}, {t}, {t})"
        ),
        format!(
            "INSERT INTO sandkit_workspaces {ws_cols} VALUES ('ws-live', '{}', 'sbx_live', 'active', 'live', {t}, {t}, {t})",
            session("2099-01-01T00:00:00.000Z")
        ),
        format!(
            "INSERT INTO sandkit_workspaces {ws_cols} VALUES ('ws-expired', '{}', 'sbx_live', 'active', 'expired', {t}, {t}, {t})",
            session("2020-01-01T00:05:00.000Z")
        ),
        format!(
            "INSERT INTO sandkit_workspaces {ws_cols} VALUES ('ws-cold', NULL, NULL, 'inactive', NULL, NULL, {t}, {t})"
        ),
        format!(
            "INSERT INTO sandkit_policies (id, workspace_id, policy_id, config, created_at) VALUES ('policy-snapshot-1', 'ws-snap', 'allow-services:github', '{config}', {t})"
        ),
        format!(
            "INSERT INTO sandkit_runs (id, workspace_id, command, args, provider, execution_target_id, status, policy_snapshot_id, provider_commit, exit_code, stdout, stderr, started_at, finished_at) \
             VALUES ('run-1', 'ws-snap', 'sh', '[\"-c\",\"echo hi\"]', 'vercel-sandbox', 'sbx_old', 'succeeded', 'policy-snapshot-1', '{}', 0, 'hi', '', {t}, {t})",
            snap("snap_abc")
        ),
        format!(
            "INSERT INTO sandkit_runs (id, workspace_id, command, args, provider, execution_target_id, status, policy_snapshot_id, provider_commit, exit_code, stdout, stderr, started_at, finished_at) \
             VALUES ('run-2', 'ws-snap', 'ls', NULL, 'vercel-sandbox', 'sbx_old', 'started', NULL, NULL, NULL, NULL, NULL, {t}, NULL)"
        ),
        format!(
            "INSERT INTO sandkit_setup_states ({q}id{q}, {q}state{q}, {q}createdAt{q}, {q}updatedAt{q}) VALUES ('sqlite-bun:shared-bootstrap:x', '{}', {t}, {t})",
            snap("snap_setup")
        ),
    ]
}
