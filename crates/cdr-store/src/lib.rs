//! Resource storage on PostgreSQL and SQLite behind one [`Store`].
//!
//! Architecture Invariant: this is the only crate that speaks SQL. It stores what it is given and never
//! validates profiles; index rows are derived data that callers compute from the resource JSON.
//!
//! Both backends share one logical schema (`migrations/postgres`, `migrations/sqlite`) and, where the
//! dialects agree, one SQL text: each operation is written once and run on either pool through the
//! `dispatch!` macro. Every write happens inside a [`StoreTx`], so a single interaction and, later, a whole
//! transaction Bundle commit or roll back as one database transaction.

mod connect;
mod read;
mod write;

use std::time::Duration;

pub use crate::read::{HistoryEntry, HistoryQuery, HistoryScope, StoredVersion};
pub use crate::write::{Condition, NewVersion, StoreTx, TokenRow, WriteMethod};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://PATH` (the file and its folder are created if missing) or `postgres://…`.
    pub url: String,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// Longest time one statement may run before the database cancels it.
    pub statement_timeout: Duration,
}

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A storage failure. Callers map every variant except the conflicts to an internal error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database url: {0} (expected sqlite://PATH or postgres://…)")]
    UnsupportedUrl(String),
    /// The SQLite file's folder could not be created.
    #[error("cannot create the database folder {path}")]
    CreateFolder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A concurrent write changed the same resource version first (a unique key was violated).
    #[error("the resource was changed by a concurrent request")]
    Conflict,
    /// A row holds a value this version of the server cannot read.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Applying migrations failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
                StoreError::Conflict
            }
            _ => StoreError::Database(error),
        }
    }
}

/// The resource store: a connection pool on one backend.
#[derive(Debug, Clone)]
pub struct Store {
    pool: connect::Pool,
    /// SQLite admits one writer at a time. Writers queue here, in arrival order, before they open their
    /// transaction, instead of polling SQLite's lock with its busy handler (which is unfair and makes
    /// tail latency under concurrent writes hundreds of milliseconds). Unused on PostgreSQL.
    writer_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}
