//! Resource storage on PostgreSQL and SQLite behind one [`Store`].
//!
//! Architecture Invariant: this is the only crate that speaks SQL. It stores what it is given and validates
//! nothing; index rows are derived data that callers compute from the resource JSON with
//! `cdr_search::extract`, on every write and in a reindex (which reads [`Store::live_bodies`] in batches and
//! writes [`StoreTx::replace_index`]).
//! Searches compile a `cdr_search::SearchQuery` to SQL with bind parameters only (`compile.rs`).
//!
//! Both backends share one logical schema (`migrations/postgres`, `migrations/sqlite`) and, where the
//! dialects agree, one SQL text: each operation is written once and run on either pool through the
//! `dispatch!` macro. Every write happens inside a [`StoreTx`], so a single interaction and, later, a whole
//! transaction Bundle commit or roll back as one database transaction.

//!
//! # Search
//!
//! Supported: every parameter type (token, string, date, reference, quantity, number, uri, composite), the nine
//! prefixes with precision ranges, `:missing :exact :contains :text :not :of-type :identifier :[type]`,
//! `:above`/`:below` on uri, token forms `system|code`, `|code`, `code`, `system|`, OR and AND, chains and `_has`
//! to the parser's depth, `_id`, `_lastUpdated`, `_tag`, `_profile`, `_security`, multi-key `_sort`, keyset pages
//! ([`Store::search`]), `COUNT` ([`Store::count`]), `_include`/`_revinclude` targets ([`Store::include`]),
//! and conditional matching ([`StoreTx::find`]).
//! Not supported (the caller gets [`StoreError::NotSupported`]): token `:above`/`:below`/`:in`/`:not-in` (no
//! terminology here: `cdr-interactions` rewrites them into token lists first), reference `:above`/`:below`,
//! `special` parameters.
//!
//! Where each concern lives: `compile.rs` turns criteria into SQL conditions, `plan.rs` chooses how a search is
//! driven (a driving clause or a walk in page order; its module doc has the reasoning and the figures),
//! `page.rs` reads a page in sort order, `count.rs` the total, `include.rs` `_include`/`_revinclude` targets,
//! `index.rs` the index tables and their rows, and `sql.rs` builds every statement's text; measured plans and
//! figures at 100,000 ImagingStudy are in bench/README.md.

mod audit;
mod compile;
mod connect;
mod count;
mod derived;
mod feed;
mod include;
mod index;
mod jobs;
mod page;
mod plan;
mod read;
mod reindex;
mod row;
mod sql;
mod subscriptions;
mod write;

use std::time::Duration;

pub use crate::audit::{AUDIT_EVENT, AuditRow};
pub use crate::derived::StoredReference;
pub use crate::index::MAX_INDEXED_BYTES;
pub use crate::jobs::{
    ClaimedJob, JobCompletion, JobCounts, JobRecord, JobState, NewJob, RemovedJob,
};
pub use crate::page::{
    FoundResource, PageDirection, PageKey, SearchPage, SearchRequest, SortValue,
};
pub use crate::read::{HistoryEntry, HistoryQuery, HistoryScope, StoredVersion};
pub use crate::reindex::LiveBody;
pub use crate::subscriptions::{
    ClaimedSubscription, DeliveryAttempt, MatchingSubscription, OutboxEvent, SubscriptionCounts,
    SubscriptionDef, SubscriptionState, SubscriptionStatus,
};
pub use crate::write::{LockMode, NewVersion, RowLock, StoreTx, WriteMethod};

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://PATH` (the file and its folder are created if missing) or `postgres://…`.
    pub url: String,
    /// Upper bound of pooled connections.
    pub max_connections: u32,
    /// Longest time one statement may run before the database cancels it (on SQLite: one statement, or
    /// every statement of one transaction together, counted from when its connection leaves the pool).
    pub statement_timeout: Duration,
    /// Longest a caller waits for a pooled connection before the store reports [`StoreError::Busy`].
    pub pool_timeout: Duration,
}

/// The connections of a [`Store`]'s pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open, busy or idle.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// Which database a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A storage failure. Callers map [`StoreError::Conflict`], [`StoreError::NotSupported`] and
/// [`StoreError::LimitExceeded`] to client errors, [`StoreError::Busy`] and [`StoreError::Timeout`] to
/// "try again later", and every other variant to an internal error.
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
    /// The search asks for something the query compiler does not do (a client error).
    #[error("{0}")]
    NotSupported(String),
    /// The statement would pass a limit of the database (bound values, expression depth, program limits):
    /// the request asks too much (a client error); the text names the limit.
    #[error("{0}")]
    LimitExceeded(String),
    /// No connection became free within the pool timeout, or the database refused another connection or
    /// its lock stayed taken: the server is overloaded for now.
    #[error("the database is busy")]
    Busy(#[source] sqlx::Error),
    /// The database cancelled a statement that ran past the statement timeout.
    #[error("the database statement ran past its time limit")]
    Timeout(#[source] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// An asynchronous job's completion was refused: the job is no longer running under this worker (it
    /// was cancelled, or its lease passed and another worker claimed it). The transaction must roll back.
    #[error("the asynchronous job {0} is no longer this worker's")]
    JobLost(String),
    /// Any other database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

/// SQLite's error messages for statements past one of its compile-time limits (all under result code 1,
/// `SQLITE_ERROR`, so the text is what tells them apart), each with the limit it names.
const SQLITE_LIMIT_MESSAGES: [(&str, &str); 7] = [
    ("Expression tree is too large", "the database's expression depth limit"),
    ("too many SQL variables", "the database's limit of bound values"),
    ("parser stack overflow", "the database's parser depth limit"),
    ("at most 64 tables in a join", "the database's limit of 64 tables in a join"),
    ("too many terms in compound SELECT", "the database's limit of terms in a compound SELECT"),
    ("too many columns", "the database's limit of columns"),
    ("too many terms in ORDER BY", "the database's limit of ORDER BY terms"),
];

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        match &error {
            sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
                StoreError::Conflict
            }
            // PostgreSQL's deadlock_detected: it rolled this transaction back so that the other one goes on
            // (a report and its order rewritten at the same moment can wait on each other's rows); run again,
            // it waits its turn.
            sqlx::Error::Database(database_error)
                if database_error.code().as_deref() == Some("40P01") =>
            {
                StoreError::Conflict
            }
            sqlx::Error::PoolTimedOut => StoreError::Busy(error),
            sqlx::Error::Database(database_error) => {
                let code = database_error.code().unwrap_or_default();
                let message = database_error.message();
                match code.as_ref() {
                    // PostgreSQL: query_canceled (statement_timeout); SQLite: SQLITE_INTERRUPT (the deadline
                    // set in `connect.rs`).
                    "57014" | "9" => StoreError::Timeout(error),
                    // PostgreSQL: too_many_connections, lock_not_available; SQLite: SQLITE_BUSY and
                    // SQLITE_LOCKED with their extended codes (busy_timeout passed).
                    "53300" | "55P03" => StoreError::Busy(error),
                    code if sqlite_primary_code(code)
                        .is_some_and(|primary| [5, 6].contains(&primary)) =>
                    {
                        StoreError::Busy(error)
                    }
                    // PostgreSQL: program_limit_exceeded, statement_too_complex, too_many_columns.
                    "54000" | "54001" | "54011" => StoreError::LimitExceeded(format!(
                        "the request compiles to a statement past a database limit: {message}"
                    )),
                    // SQLite: SQLITE_TOOBIG.
                    "18" => StoreError::LimitExceeded(
                        "the request compiles to a statement past the database's size limit"
                            .to_owned(),
                    ),
                    "1" => {
                        match SQLITE_LIMIT_MESSAGES.iter().find(|(text, _)| message.contains(text))
                        {
                            Some((_, limit)) => StoreError::LimitExceeded(format!(
                                "the request compiles to a statement past {limit}; ask for fewer values or parameters"
                            )),
                            None => StoreError::Database(error),
                        }
                    }
                    _ => StoreError::Database(error),
                }
            }
            _ => StoreError::Database(error),
        }
    }
}

/// The primary result code of a SQLite (extended) result code written in decimal, such as 5 for 517
/// (`SQLITE_BUSY_SNAPSHOT`); `None` for PostgreSQL's SQLSTATE codes, which are five characters.
fn sqlite_primary_code(code: &str) -> Option<i64> {
    if code.len() == 5 {
        return None;
    }
    code.parse::<i64>().ok().map(|code| code & 0xff)
}

/// The resource store: a connection pool on one backend.
#[derive(Debug, Clone)]
pub struct Store {
    pool: connect::Pool,
    /// SQLite admits one writer at a time. Writers queue here, in arrival order, before they open their
    /// transaction, instead of polling SQLite's lock with its busy handler (which is unfair and makes
    /// tail latency under concurrent writes hundreds of milliseconds). Unused on PostgreSQL.
    writer_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Told when a transaction that recorded subscription events commits, so this process's dispatchers
    /// need not wait for their next look.
    outbox_signal: std::sync::Arc<tokio::sync::Notify>,
    /// Longest wait for a connection, and on SQLite for a writer's turn.
    pool_timeout: Duration,
    /// On SQLite, the change sequence (`resource_version.seq`) the planner statistics were last refreshed
    /// at: a store that wrote nothing since needs no new ones. Unused on PostgreSQL.
    analysed_through: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// On SQLite, the start of the write transaction in flight, for the feed horizon (`feed.rs`). Unused on
    /// PostgreSQL, whose lock table is the registry.
    in_flight: feed::InFlight,
}
