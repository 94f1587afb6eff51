//! Sandkit codegen: one schema model rendered to SQL DDL, SeaORM entities and migrations
