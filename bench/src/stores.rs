//! The stores a figure runs on: memory, SQLite (file, WAL) and a fresh PostgreSQL
//! database that is dropped afterwards.

use std::sync::Arc;

use sandkit_adapter_memory::MemoryStore;
use sandkit_adapter_seaorm::SeaOrmStore;
use sandkit_adapter_seaorm::sea_orm::{ConnectionTrait, Database};
use sandkit_core::Store;

use crate::timed_store::TimedStore;

/// The PostgreSQL server used when `SANDKIT_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `MemoryStore`.
    Memory,
    /// SQLite file in WAL mode, every commit flushed (`synchronous = FULL`, the default).
    Sqlite,
    /// SQLite file in WAL mode with `synchronous = NORMAL` (no flush per commit).
    SqliteNormal,
    /// A fresh database on the PostgreSQL server.
    Postgres,
}

impl StoreKind {
    /// Name on the command line (`--store`).
    pub fn flag(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite => "sqlite",
            StoreKind::SqliteNormal => "sqlite-normal",
            StoreKind::Postgres => "postgres",
        }
    }

    /// Name in the results.
    pub fn label(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite => "sqlite",
            StoreKind::SqliteNormal => "sqlite (synchronous=normal)",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// A store for one figure, with what must be cleaned up after it.
pub struct BenchStore {
    /// The store, timed.
    pub timed: Arc<TimedStore>,
    /// Connection URL (SQL stores), for child processes.
    pub url: Option<String>,
    /// The fresh PostgreSQL database to drop, with its server URL.
    drop: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchStore {
    /// Opens (and for SQL, creates and migrates) a store of `kind`.
    pub async fn open(kind: StoreKind) -> Result<BenchStore, String> {
        match kind {
            StoreKind::Memory => Ok(BenchStore {
                timed: Arc::new(TimedStore::new(Arc::new(MemoryStore::new()))),
                url: None,
                drop: None,
                _dir: None,
            }),
            StoreKind::Sqlite | StoreKind::SqliteNormal => {
                let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
                let mut url = format!("sqlite://{}", dir.path().join("bench.db").display());
                if kind == StoreKind::SqliteNormal {
                    url.push_str("?synchronous=normal");
                }
                let store = connect(&url).await?;
                Ok(BenchStore {
                    timed: Arc::new(TimedStore::new(store)),
                    url: Some(url),
                    drop: None,
                    _dir: Some(dir),
                })
            }
            StoreKind::Postgres => {
                let (server, name, url) = create_postgres_database().await?;
                match connect(&url).await {
                    Ok(store) => Ok(BenchStore {
                        timed: Arc::new(TimedStore::new(store)),
                        url: Some(url),
                        drop: Some((server, name)),
                        _dir: None,
                    }),
                    Err(e) => {
                        drop_postgres_database(&server, &name).await;
                        Err(e)
                    }
                }
            }
        }
    }

    /// The store as Sandkit takes it.
    pub fn store(&self) -> Arc<dyn Store> {
        self.timed.clone()
    }

    /// Drops the fresh database (if any) and removes temporary files.
    pub async fn close(self) {
        if let Some((server, name)) = &self.drop {
            drop_postgres_database(server, name).await;
        }
    }
}

/// Connects to `url` and migrates.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, String> {
    let store = SeaOrmStore::connect(url).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// The PostgreSQL server URL.
pub fn postgres_server() -> String {
    std::env::var("SANDKIT_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// Creates `sandkit_bench_<uuid>` on the server; returns (server URL, name, its URL).
async fn create_postgres_database() -> Result<(String, String, String), String> {
    let server = postgres_server();
    let name = format!("sandkit_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(server.as_str()).await.map_err(|e| {
        format!("PostgreSQL unreachable ({e}); set SANDKIT_TEST_POSTGRES_URL to a server")
    })?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .map_err(|e| format!("could not create the bench database: {e}"))?;
    let _ = admin.close().await;
    let mut url = url::Url::parse(&server).map_err(|e| format!("bad PostgreSQL URL: {e}"))?;
    url.set_path(&format!("/{name}"));
    Ok((server, name, url.to_string()))
}

async fn drop_postgres_database(server: &str, name: &str) {
    match Database::connect(server).await {
        Ok(admin) => {
            if let Err(e) = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
            {
                eprintln!("sandkit-bench: could not drop database {name}: {e}");
            }
            let _ = admin.close().await;
        }
        Err(e) => eprintln!("sandkit-bench: could not drop database {name}: {e}"),
    }
}
