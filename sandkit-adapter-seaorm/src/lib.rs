//! Sandkit SQL Store on SeaORM: SQLite, PostgreSQL, MySQL/MariaDB
