//! Writes: a [`StoreTx`] wraps one database transaction in which an interaction (or a whole Bundle)
//! reads what it needs, takes its locks and writes new versions.

use cdr_model::{Instant, LogicalId, ResourceType, VersionId};
use cdr_search::{IndexEntry, SearchQuery};
use sqlx::{Postgres, Row, Sqlite, Transaction};

use crate::compile::where_clause;
use crate::connect::{Pool, dispatch};
use crate::index::replace_statements;
use crate::plan::usual_drive;
use crate::read::StoredVersion;
use crate::row::{CurrentRow, logical_id, version_id};
use crate::sql::{Sql, pack, query_of};
use crate::{Store, StoreError};

/// How a version came to be; kept in the version table for history entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    Create,
    Update,
    Delete,
}

impl WriteMethod {
    /// The HTTP verb of the interaction, as history entries report it.
    #[must_use]
    pub fn verb(self) -> &'static str {
        match self {
            WriteMethod::Create => "POST",
            WriteMethod::Update => "PUT",
            WriteMethod::Delete => "DELETE",
        }
    }

    pub(crate) fn parse(verb: &str) -> Result<WriteMethod, StoreError> {
        match verb {
            "POST" => Ok(WriteMethod::Create),
            "PUT" => Ok(WriteMethod::Update),
            "DELETE" => Ok(WriteMethod::Delete),
            other => Err(StoreError::Corrupt(format!("unknown history method '{other}'"))),
        }
    }
}

/// A new version to write.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    pub res_type: ResourceType,
    pub res_id: &'a LogicalId,
    pub version: VersionId,
    pub last_updated: Instant,
    pub method: WriteMethod,
    /// The JSON to serve, with `id` and `meta` set; `None` for a deletion.
    pub body: Option<&'a str>,
    /// The resource's index rows (empty for a deletion), from `cdr_search::extract`.
    pub index: &'a [IndexEntry],
}

#[derive(Debug)]
enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// An open database transaction. Dropping it without [`StoreTx::commit`] rolls back.
#[derive(Debug)]
pub struct StoreTx {
    tx: Tx,
    /// On SQLite, this transaction's turn as the one writer; released after commit or rollback.
    _writer_turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Store {
    /// Begins a write transaction. On SQLite writers first wait their turn in a fair queue, then take the
    /// write lock at once (`BEGIN IMMEDIATE`), so a read-then-write inside never fails on lock upgrade.
    ///
    /// # Errors
    /// [`StoreError::Busy`] when no connection (on SQLite: no turn) comes within the pool timeout; on
    /// database failure.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => {
                Ok(StoreTx { tx: Tx::Postgres(pool.begin().await?), _writer_turn: None })
            }
            Pool::Sqlite(pool) => {
                // Waiting for the turn is waiting for the one writing connection: bounded like the pool's.
                let turn = tokio::time::timeout(
                    self.pool_timeout,
                    std::sync::Arc::clone(&self.writer_gate).lock_owned(),
                )
                .await
                .map_err(|_| StoreError::Busy(sqlx::Error::PoolTimedOut))?;
                let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(StoreTx { tx: Tx::Sqlite(tx), _writer_turn: Some(turn) })
            }
        }
    }
}

impl StoreTx {
    /// Serialises, until commit, every transaction that takes the same key: used for conditional
    /// creates so two identical ones cannot both see no match. SQLite writers are already serialised.
    ///
    /// # Errors
    /// On database failure.
    pub async fn lock(&mut self, key: &str) -> Result<(), StoreError> {
        if let Tx::Postgres(tx) = &mut self.tx {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The current version number of a resource and whether it is deleted, locking its row until commit.
    ///
    /// # Errors
    /// On database failure.
    pub async fn current(
        &mut self,
        res_type: ResourceType,
        res_id: &LogicalId,
    ) -> Result<Option<(VersionId, bool)>, StoreError> {
        let row: Option<(i64, bool)> = match &mut self.tx {
            Tx::Postgres(tx) => {
                sqlx::query_as(
                    "SELECT version, deleted FROM resource WHERE res_type = $1 AND res_id = $2 FOR UPDATE",
                )
                .bind(res_type.as_str())
                .bind(res_id.as_str())
                .fetch_optional(&mut **tx)
                .await?
            }
            Tx::Sqlite(tx) => sqlx::query_as("SELECT version, deleted FROM resource WHERE res_type = $1 AND res_id = $2")
                .bind(res_type.as_str())
                .bind(res_id.as_str())
                .fetch_optional(&mut **tx)
                .await?,
        };
        row.map(|(version, deleted)| Ok((version_id(version)?, deleted))).transpose()
    }

    /// The current version of a resource with its body, locking its row until commit like
    /// [`StoreTx::current`]: what a patch reads before it writes the next version.
    ///
    /// # Errors
    /// On database failure.
    pub async fn current_version(
        &mut self,
        res_type: ResourceType,
        res_id: &LogicalId,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let row: Option<CurrentRow> = match &mut self.tx {
            Tx::Postgres(tx) => {
                sqlx::query_as(
                    "SELECT version, last_updated, deleted, body FROM resource WHERE res_type = $1 AND res_id = $2 FOR UPDATE",
                )
                .bind(res_type.as_str())
                .bind(res_id.as_str())
                .fetch_optional(&mut **tx)
                .await?
            }
            Tx::Sqlite(tx) => {
                sqlx::query_as(
                    "SELECT version, last_updated, deleted, body FROM resource WHERE res_type = $1 AND res_id = $2",
                )
                .bind(res_type.as_str())
                .bind(res_id.as_str())
                .fetch_optional(&mut **tx)
                .await?
            }
        };
        let Some(row) = row else { return Ok(None) };
        Ok(Some(StoredVersion {
            version: version_id(row.version)?,
            last_updated: Instant::from_millis(row.last_updated),
            deleted: row.deleted,
            body: row.body,
        }))
    }

    /// The ids of live resources of `types` matching `query`'s criteria, at most `limit` of them, in id order.
    ///
    /// # Errors
    /// [`StoreError::NotSupported`] for a criterion the compiler cannot serve; database failures.
    pub async fn find(
        &mut self,
        query: &SearchQuery,
        types: &[ResourceType],
        now_micros: i64,
        limit: i64,
    ) -> Result<Vec<LogicalId>, StoreError> {
        let mut sql = Sql::new("SELECT r.res_id FROM resource r WHERE ");
        let drive = usual_drive(query);
        where_clause(&mut sql, query, types, now_micros, drive, true)?;
        sql.push(" ORDER BY r.res_id").push_limit(limit);
        let ids = dispatch!(Tx, &mut self.tx, tx => query_of!(&sql)
        .fetch_all(&mut **tx)
        .await
        .and_then(|rows| {
            rows.iter().map(|row| row.try_get::<String, _>("res_id")).collect::<Result<Vec<_>, _>>()
        }))?;
        ids.iter().map(|id| logical_id(id)).collect()
    }

    /// Replaces the index rows of one resource with `entries` (from `cdr_search::extract`), as a reindex
    /// does.
    ///
    /// # Errors
    /// On database failure.
    pub async fn replace_index(
        &mut self,
        res_type: ResourceType,
        res_id: &LogicalId,
        entries: &[IndexEntry],
    ) -> Result<(), StoreError> {
        self.write_index(res_type, res_id, entries, false).await
    }

    /// Replaces the index rows of one resource (no deletes for a `fresh` first version). On PostgreSQL the
    /// deletes and inserts go as one packed statement.
    async fn write_index(
        &mut self,
        res_type: ResourceType,
        res_id: &LogicalId,
        entries: &[IndexEntry],
        fresh: bool,
    ) -> Result<(), StoreError> {
        let statements = replace_statements(res_type, res_id, entries, fresh);
        let statements = match self.tx {
            Tx::Postgres(_) => pack(statements),
            Tx::Sqlite(_) => statements,
        };
        for statement in &statements {
            self.execute(statement).await?;
        }
        Ok(())
    }

    /// Runs one statement built by this crate.
    pub(crate) async fn execute(&mut self, sql: &Sql) -> Result<(), StoreError> {
        dispatch!(Tx, &mut self.tx, tx => query_of!(sql).execute(&mut **tx).await.map(drop))?;
        Ok(())
    }

    /// Writes a new version: appends it to the version table, makes it current and replaces the
    /// resource's index rows. A concurrent writer of the same version makes this fail with
    /// [`StoreError::Conflict`].
    ///
    /// # Errors
    /// On conflict or database failure.
    pub async fn write(&mut self, new: &NewVersion<'_>) -> Result<(), StoreError> {
        let deleted = new.method == WriteMethod::Delete;
        dispatch!(Tx, &mut self.tx, tx => {
            sqlx::query(
                "INSERT INTO resource_version (res_type, res_id, version, last_updated, method, body) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new.res_type.as_str())
            .bind(new.res_id.as_str())
            .bind(new.version.get())
            .bind(new.last_updated.millis())
            .bind(new.method.verb())
            .bind(new.body)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO resource (res_type, res_id, version, last_updated, deleted, body) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (res_type, res_id) DO UPDATE SET version = excluded.version, \
                 last_updated = excluded.last_updated, deleted = excluded.deleted, body = excluded.body",
            )
            .bind(new.res_type.as_str())
            .bind(new.res_id.as_str())
            .bind(new.version.get())
            .bind(new.last_updated.millis())
            .bind(deleted)
            .bind(new.body)
            .execute(&mut **tx)
            .await?;
            Ok::<(), sqlx::Error>(())
        })?;
        self.write_index(new.res_type, new.res_id, new.index, new.version == VersionId::FIRST)
            .await?;
        Ok(())
    }

    /// Commits every write of this transaction.
    ///
    /// # Errors
    /// On conflict or database failure.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.tx {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}
