//! SeaORM entities for Sandkit's four tables, one module per table.
//!
//! The column names keep the TypeScript Sandkit's spelling (`sandboxId`, `createdAt`, …
//! on workspaces and setup states; snake case on runs and policies) so that a database
//! created by the original is upgraded in place. Applications may use these entities
//! to query Sandkit's tables next to their own (for example to join their rows to
//! `sandkit_workspaces.id`); writes must go through the [`Store`](sandkit_core::Store).
//!
//! These modules are the output of one schema model (see `sandkit-codegen`); keep them
//! plain: one `Model` per table, relations, nothing else.

pub mod policies;
pub mod runs;
pub mod setup_states;
pub mod workspaces;
