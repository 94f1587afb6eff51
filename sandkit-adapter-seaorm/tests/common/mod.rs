//! Test databases: a temporary SQLite file, or a fresh PostgreSQL / MariaDB database
//! per test (created on the server named by `SANDKIT_TEST_POSTGRES_URL` /
//! `SANDKIT_TEST_MYSQL_URL`, dropped afterwards), and a raw-SQL corruptor.

#![allow(dead_code)]

pub mod typescript;

use std::sync::Arc;

use async_trait::async_trait;
use sandkit_adapter_seaorm::sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, Value};
use sandkit_adapter_seaorm::sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use sandkit_adapter_seaorm::{Dialect, SeaOrmStore};
use sandkit_core::{Error, Result};
use sandkit_testkit::{Corruptor, StoreFixture};

/// Environment variable naming the PostgreSQL test server.
pub const POSTGRES_VAR: &str = "SANDKIT_TEST_POSTGRES_URL";
/// Environment variable naming the MySQL/MariaDB test server.
pub const MYSQL_VAR: &str = "SANDKIT_TEST_MYSQL_URL";

/// A database that lives as long as this value: a temporary SQLite file, or a
/// server database dropped on drop.
pub struct TestDb {
    /// Connection URL of the database.
    pub url: String,
    pub dialect: Dialect,
    _dir: Option<tempfile::TempDir>,
    drop_on: Option<(String, String)>,
}

impl TestDb {
    /// A new SQLite database file in a temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("sandkit.db").display());
        TestDb {
            url,
            dialect: Dialect::Sqlite,
            _dir: Some(dir),
            drop_on: None,
        }
    }

    /// A new database on the server of `var`, or `None` (skip) when it is unset.
    pub async fn server(dialect: Dialect) -> Option<TestDb> {
        let var = match dialect {
            Dialect::Postgres => POSTGRES_VAR,
            Dialect::MySql => MYSQL_VAR,
            Dialect::Sqlite => return Some(TestDb::sqlite()),
        };
        let server = sandkit_testkit::database_url(var)?;
        let name = format!("sandkit_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(server.as_str())
            .await
            .expect("connect to the test server");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        admin.close().await.expect("close");
        let mut url = url::Url::parse(&server).expect("server URL");
        url.set_path(&format!("/{name}"));
        Some(TestDb {
            url: url.to_string(),
            dialect,
            _dir: None,
            drop_on: Some((server, name)),
        })
    }

    /// A new database of `dialect` (`None`: skipped).
    pub async fn new(dialect: Dialect) -> Option<TestDb> {
        match dialect {
            Dialect::Sqlite => Some(TestDb::sqlite()),
            _ => TestDb::server(dialect).await,
        }
    }

    /// A connected store (not migrated).
    pub async fn store(&self) -> SeaOrmStore {
        SeaOrmStore::connect(&self.url).await.expect("connect")
    }

    /// A connected, migrated store.
    pub async fn migrated(&self) -> SeaOrmStore {
        let store = self.store().await;
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.drop_on.take() else {
            return;
        };
        let sql = match self.dialect {
            Dialect::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            _ => format!("DROP DATABASE IF EXISTS {name}"),
        };
        // Drop runs outside any runtime the test may still be inside.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let admin = Database::connect(server.as_str()).await?;
                admin.execute_unprepared(&sql).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {name}: {dropped:?}");
        }
    }
}

/// Overwrites columns with raw SQL. JSON columns on PostgreSQL and MySQL only accept
/// valid JSON, so there the raw text is stored as a JSON string (a value of the wrong
/// shape); on SQLite it is stored as is.
pub struct SqlCorruptor {
    db: DatabaseConnection,
    dialect: Dialect,
}

const JSON_COLUMNS: &[(&str, &str)] = &[
    ("sandkit_workspaces", "metadata"),
    ("sandkit_workspaces", "policy"),
    ("sandkit_workspaces", "sandbox_config"),
    ("sandkit_workspaces", "head"),
    ("sandkit_workspaces", "lease_session"),
    ("sandkit_workspaces", "lease_policy"),
    ("sandkit_runs", "args"),
    ("sandkit_runs", "env_keys"),
    ("sandkit_runs", "base_snapshot"),
    ("sandkit_runs", "provider_commit"),
    ("sandkit_policies", "config"),
    ("sandkit_setup_states", "snapshot"),
];

const ENUM_COLUMNS: &[(&str, &str)] = &[
    ("sandkit_workspaces", "status"),
    ("sandkit_workspaces", "state"),
    ("sandkit_workspaces", "lease_kind"),
    ("sandkit_runs", "status"),
    ("sandkit_runs", "kind"),
];

impl SqlCorruptor {
    pub fn new(store: &SeaOrmStore) -> SqlCorruptor {
        SqlCorruptor {
            db: store.connection().clone(),
            dialect: store.dialect(),
        }
    }
}

#[async_trait]
impl Corruptor for SqlCorruptor {
    fn columns(&self) -> Vec<(&'static str, &'static str)> {
        JSON_COLUMNS.iter().chain(ENUM_COLUMNS).copied().collect()
    }

    async fn corrupt(&self, table: &str, column: &str, id: &str, raw: &str) -> Result<()> {
        let is_json = JSON_COLUMNS.contains(&(table, column));
        let value = match self.dialect {
            Dialect::Postgres | Dialect::MySql if is_json => {
                Value::Json(Some(Box::new(serde_json::Value::String(raw.to_owned()))))
            }
            _ => Value::String(Some(raw.to_owned())),
        };
        let mut stmt = Query::update();
        stmt.table(Alias::new(table))
            .value(Alias::new(column), Expr::val(value))
            .and_where(Expr::col(Alias::new("id")).eq(id));
        let done = self
            .db
            .execute(&stmt)
            .await
            .map_err(|e| Error::storage(format!("corrupting {table}.{column}: {e}")))?;
        assert_eq!(
            done.rows_affected(),
            1,
            "{table}.{column} of {id} was not written"
        );
        Ok(())
    }
}

/// A fixture for the store conformance suite on `dialect` (`None`: skipped).
pub async fn fixture(dialect: Dialect) -> Option<StoreFixture> {
    let db = TestDb::new(dialect).await?;
    let store = db.migrated().await;
    Some(StoreFixture {
        corruptor: Some(Arc::new(SqlCorruptor::new(&store))),
        store: Arc::new(store),
        guard: Some(Box::new(db)),
    })
}

/// Timestamps far from now (before 1970 is not needed; after 2038 is, for MySQL's
/// `timestamp` range) round-trip exactly.
pub async fn far_timestamps_round_trip(dialect: Dialect) {
    use chrono::{DateTime, Utc};
    use sandkit_core::{
        Lease, LeaseKind, LeaseToken, SetupBuild, SetupRecord, Store, WorkspaceId, WorkspaceRecord,
        WorkspaceWrite, WriteBatch,
    };
    let Some(db) = TestDb::new(dialect).await else {
        return;
    };
    let store = db.migrated().await;
    let at = |rfc3339: &str| -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("timestamp")
            .with_timezone(&Utc)
    };
    let mut ws = WorkspaceRecord::new(WorkspaceId::new("far").expect("id"));
    ws.created_at = at("2001-02-03T04:05:06.007Z");
    ws.updated_at = at("2039-01-01T00:00:00.999Z");
    ws.lease = Some(Lease {
        kind: LeaseKind::Session,
        token: LeaseToken::generate(),
        holder: "h".into(),
        session: None,
        run_id: None,
        acquired_at: at("2038-01-19T03:14:08.000Z"),
        expires_at: at("9999-12-31T23:59:59.999Z"),
        policy: None,
    });
    store
        .apply(WriteBatch::workspace(WorkspaceWrite::Create(ws.clone())))
        .await
        .expect("create");
    assert_eq!(store.get_workspace(&ws.id).await.expect("read"), Some(ws));
    let setup = SetupRecord {
        id: "far:setup".into(),
        snapshot: None,
        build: Some(SetupBuild {
            token: LeaseToken::generate(),
            holder: "h".into(),
            expires_at: at("2100-06-01T12:00:00.500Z"),
        }),
        revision: 0,
        created_at: at("2038-01-19T03:14:07.999Z"),
        updated_at: at("2038-01-19T03:14:08.001Z"),
    };
    assert!(store.put_setup_if_absent(&setup).await.expect("put"));
    assert_eq!(store.get_setup(&setup.id).await.expect("read"), Some(setup));
}
