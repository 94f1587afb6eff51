//! The store conformance suite on SQLite (a file), PostgreSQL and MariaDB, plus
//! timestamps outside the usual range.

mod common;

mod sqlite {
    async fn store() -> Option<sandkit_testkit::StoreFixture> {
        super::common::fixture(sandkit_adapter_seaorm::Dialect::Sqlite).await
    }
    sandkit_testkit::store_suite!(store);

    #[tokio::test]
    async fn far_timestamps_round_trip() {
        super::common::far_timestamps_round_trip(sandkit_adapter_seaorm::Dialect::Sqlite).await;
    }
}

/// SQLite connections use WAL, a busy timeout and foreign keys, and create the file.
#[tokio::test]
async fn sqlite_connection_settings() {
    use sandkit_adapter_seaorm::SeaOrmStore;
    use sandkit_adapter_seaorm::sea_orm::{ConnectionTrait, DbBackend, Statement};

    async fn pragma(store: &SeaOrmStore, name: &str) -> String {
        let row = store
            .connection()
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                format!("PRAGMA {name}"),
            ))
            .await
            .expect("pragma")
            .expect("row");
        row.try_get_by_index::<String>(0)
            .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
            .expect("value")
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.db");
    let store = SeaOrmStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect creates the file");
    assert!(path.exists());
    assert_eq!(pragma(&store, "journal_mode").await, "wal");
    assert_eq!(pragma(&store, "foreign_keys").await, "1");
    assert_eq!(pragma(&store, "busy_timeout").await, "5000");
    assert_eq!(pragma(&store, "synchronous").await, "2", "FULL by default");
    let fast = SeaOrmStore::connect(&format!("sqlite://{}?synchronous=normal", path.display()))
        .await
        .expect("connect");
    assert_eq!(pragma(&fast, "synchronous").await, "1", "NORMAL on request");
}

mod postgres {
    async fn store() -> Option<sandkit_testkit::StoreFixture> {
        super::common::fixture(sandkit_adapter_seaorm::Dialect::Postgres).await
    }
    sandkit_testkit::store_suite!(store);

    #[tokio::test]
    async fn far_timestamps_round_trip() {
        super::common::far_timestamps_round_trip(sandkit_adapter_seaorm::Dialect::Postgres).await;
    }
}

mod mysql {
    async fn store() -> Option<sandkit_testkit::StoreFixture> {
        super::common::fixture(sandkit_adapter_seaorm::Dialect::MySql).await
    }
    sandkit_testkit::store_suite!(store);

    #[tokio::test]
    async fn far_timestamps_round_trip() {
        super::common::far_timestamps_round_trip(sandkit_adapter_seaorm::Dialect::MySql).await;
    }
}
