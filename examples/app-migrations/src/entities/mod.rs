//! The application's entities: Sandkit's generated ones under [`sandkit`].

pub mod sandkit;
