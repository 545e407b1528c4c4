//! Writes: a [`StoreTx`] wraps one database transaction in which an interaction (or a whole Bundle)
//! reads what it needs, takes its locks and writes new versions.

use std::collections::HashMap;

use cdr_model::{Instant, LogicalId, ResourceType, VersionId};
use cdr_search::{IndexEntry, SearchQuery};
use sqlx::{Postgres, Row, Sqlite, Transaction};

use crate::compile::match_sql;
use crate::connect::{Pool, dispatch};
use crate::feed::{REGISTER_POSTGRES, Registration, registry_keys};
use crate::index::{IndexedResource, replace_statements};
use crate::read::StoredVersion;
use crate::row::{CurrentRow, logical_id, resource_type, version_id};
use crate::sql::{Bind, Sql, pack, query_of};
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

/// Most addresses one [`StoreTx::current_all`] statement looks up.
const ADDRESSES_PER_LOOKUP: usize = 500;

/// Most criteria one [`StoreTx::find_all`] statement matches.
const QUERIES_PER_LOOKUP: usize = 50;

/// Most versions one multi-row `INSERT` writes (six bound values each).
const VERSIONS_PER_INSERT: usize = 500;

#[derive(Debug)]
pub(crate) enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// An open database transaction. Dropping it without [`StoreTx::commit`] rolls back.
#[derive(Debug)]
pub struct StoreTx {
    pub(crate) tx: Tx,
    /// The resources this transaction wrote a version of, in the order written.
    written: Vec<(ResourceType, LogicalId)>,
    /// The versions written, in the same order: the version number and whether it is a deletion.
    written_versions: Vec<(VersionId, bool)>,
    /// On SQLite, this transaction's turn as the one writer; released after commit or rollback.
    _writer_turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The store's outbox signal, and whether this transaction recorded subscription events (told after
    /// commit).
    pub(crate) outbox_signal: std::sync::Arc<tokio::sync::Notify>,
    pub(crate) recorded_events: bool,
    /// On SQLite, its place in the feed registry (`feed.rs`), left after commit or rollback; on PostgreSQL the
    /// registration is a lock the transaction holds.
    _registration: Option<Registration>,
}

impl Store {
    /// Begins a write transaction. On SQLite writers first wait their turn in a fair queue, then take the
    /// write lock at once (`BEGIN IMMEDIATE`), so a read-then-write inside never fails on lock upgrade.
    /// On PostgreSQL the transaction plans each statement for its values and the tables as they are now
    /// (custom plans; reads keep the generic plans the connections are set to): its statements are key
    /// lookups and inserts, cheap to plan, and a generic plan made while a new database's tables were
    /// nearly empty would otherwise serve every Bundle of a bulk load on that connection until the next
    /// `ANALYZE`, walking whole tables where an index finds one row.
    ///
    /// Every transaction registers its start for the feed horizon ([`Store::feed_horizon`]) until it ends, before
    /// its caller can stamp a version: on PostgreSQL with one more statement, a shared advisory lock.
    ///
    /// # Errors
    /// [`StoreError::Busy`] when no connection (on SQLite: no turn) comes within the pool timeout; on
    /// database failure.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        self.begin_registered(true).await
    }

    /// [`Store::begin`] for a transaction that writes no version (the job queue's): it stays out of the feed
    /// registry, so it holds no feed horizon back.
    pub(crate) async fn begin_unregistered(&self) -> Result<StoreTx, StoreError> {
        self.begin_registered(false).await
    }

    async fn begin_registered(&self, register: bool) -> Result<StoreTx, StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut tx =
                    pool.begin_with("BEGIN; SET LOCAL plan_cache_mode = force_custom_plan").await?;
                if register {
                    let (high, low) = registry_keys(Instant::now());
                    sqlx::query(REGISTER_POSTGRES).bind(high).bind(low).execute(&mut *tx).await?;
                }
                Ok(StoreTx {
                    tx: Tx::Postgres(tx),
                    written: Vec::new(),
                    written_versions: Vec::new(),
                    _writer_turn: None,
                    _registration: None,
                    outbox_signal: std::sync::Arc::clone(&self.outbox_signal),
                    recorded_events: false,
                })
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
                let registration = register.then(|| self.in_flight.register(Instant::now()));
                Ok(StoreTx {
                    tx: Tx::Sqlite(tx),
                    written: Vec::new(),
                    written_versions: Vec::new(),
                    _writer_turn: Some(turn),
                    _registration: registration,
                    outbox_signal: std::sync::Arc::clone(&self.outbox_signal),
                    recorded_events: false,
                })
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

    /// Takes the locks of `keys` as [`StoreTx::lock`] does, each in its [`LockMode`], in one statement, in
    /// the sorted order of the keys, so that transactions taking overlapping sets never wait on each other
    /// in a cycle. A key given in both modes is taken exclusively.
    ///
    /// # Errors
    /// On database failure.
    pub async fn lock_all(&mut self, keys: &[(&str, LockMode)]) -> Result<(), StoreError> {
        let Tx::Postgres(tx) = &mut self.tx else { return Ok(()) };
        if keys.is_empty() {
            return Ok(());
        }
        let mut sorted = keys.to_vec();
        // Exclusive sorts before shared, so that dedup keeps the exclusive one of a key named twice.
        sorted.sort_unstable();
        sorted.dedup_by(|later, first| later.0 == first.0);
        let (keys, shared): (Vec<&str>, Vec<bool>) =
            sorted.into_iter().map(|(key, mode)| (key, mode == LockMode::Shared)).unzip();
        sqlx::query(
            "SELECT CASE WHEN shared THEN pg_advisory_xact_lock_shared(hashtextextended(key, 0)) \
             ELSE pg_advisory_xact_lock(hashtextextended(key, 0)) END \
             FROM unnest($1::text[], $2::boolean[]) WITH ORDINALITY AS keys(key, shared, position) \
             ORDER BY position",
        )
        .bind(keys)
        .bind(shared)
        .execute(&mut **tx)
        .await?;
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
        let mut sql = Sql::new("");
        match_sql(&mut sql, query, types, now_micros)?;
        sql.push_limit(limit);
        let ids = dispatch!(Tx, &mut self.tx, tx => query_of!(&sql)
        .fetch_all(&mut **tx)
        .await
        .and_then(|rows| {
            rows.iter().map(|row| row.try_get::<String, _>("res_id")).collect::<Result<Vec<_>, _>>()
        }))?;
        let mut ids = ids.iter().map(|id| logical_id(id)).collect::<Result<Vec<_>, _>>()?;
        ids.sort_unstable_by(|left, right| left.as_str().cmp(right.as_str()));
        Ok(ids)
    }

    /// The current version of each of `addresses` that exists, body included, read without locking: what
    /// a transaction decides its writes from before it locks the rows ([`StoreTx::lock_rows`]), which
    /// then confirms that nothing changed in between. One statement per few hundred addresses.
    ///
    /// # Errors
    /// On database failure.
    pub async fn peek_all(
        &mut self,
        addresses: &[(ResourceType, &LogicalId)],
    ) -> Result<HashMap<(ResourceType, LogicalId), StoredVersion>, StoreError> {
        let mut sorted = addresses.to_vec();
        sorted.sort_unstable_by(|left, right| {
            (left.0.as_str(), left.1.as_str()).cmp(&(right.0.as_str(), right.1.as_str()))
        });
        sorted.dedup();
        let mut found = HashMap::with_capacity(sorted.len());
        for chunk in sorted.chunks(ADDRESSES_PER_LOOKUP) {
            let mut sql = Sql::new(
                "SELECT res_type, res_id, version, last_updated, deleted, body FROM resource \
                 WHERE (res_type, res_id) IN (VALUES ",
            );
            push_addresses(&mut sql, chunk.iter().copied());
            sql.push(")");
            let rows: Vec<AddressedRow> = dispatch!(Tx, &mut self.tx, tx => query_of!(&sql)
                .fetch_all(&mut **tx)
                .await
                .and_then(|rows| rows.iter().map(sqlx::FromRow::from_row).collect::<Result<Vec<_>, _>>()))?;
            for row in rows {
                found.insert(
                    (resource_type(&row.res_type)?, logical_id(&row.res_id)?),
                    StoredVersion {
                        version: version_id(row.version)?,
                        last_updated: Instant::from_millis(row.last_updated),
                        deleted: row.deleted,
                        body: row.body,
                    },
                );
            }
        }
        Ok(found)
    }

    /// Locks the current rows of `rows` that exist until commit, each in its [`RowLock`] mode, and returns
    /// their version and deletion flag. On PostgreSQL the rows are locked in one canonical order (type,
    /// then id) whatever their modes, so that two transactions locking overlapping sets never wait on each
    /// other in a cycle: one statement per run of rows of one mode in that order. SQLite's one writer
    /// needs no row locks.
    ///
    /// # Errors
    /// On database failure.
    pub async fn lock_rows(
        &mut self,
        rows: &[(ResourceType, &LogicalId, RowLock)],
    ) -> Result<HashMap<(ResourceType, LogicalId), (VersionId, bool)>, StoreError> {
        let mut sorted = rows.to_vec();
        // For a row named twice, `Update` sorts first and dedup keeps it.
        sorted.sort_unstable_by(|left, right| {
            (left.0.as_str(), left.1.as_str(), left.2).cmp(&(
                right.0.as_str(),
                right.1.as_str(),
                right.2,
            ))
        });
        sorted.dedup_by(|later, first| later.0 == first.0 && later.1 == first.1);
        let clause = match self.tx {
            Tx::Postgres(_) => |mode: RowLock| match mode {
                RowLock::Update => " FOR UPDATE",
                RowLock::Share => " FOR SHARE",
            },
            Tx::Sqlite(_) => |_: RowLock| "",
        };
        let mut found = HashMap::with_capacity(sorted.len());
        let mut rest = sorted.as_slice();
        while let Some(&(_, _, mode)) = rest.first() {
            let same = rest
                .iter()
                .take(ADDRESSES_PER_LOOKUP)
                .take_while(|row| clause(row.2) == clause(mode))
                .count();
            let (run, after) = rest.split_at(same);
            rest = after;
            let mut sql = Sql::new(
                "SELECT res_type, res_id, version, deleted FROM resource WHERE (res_type, res_id) IN (VALUES ",
            );
            push_addresses(&mut sql, run.iter().map(|(res_type, res_id, _)| (*res_type, *res_id)));
            sql.push(") ORDER BY res_type, res_id").push(clause(mode));
            let rows: Vec<(String, String, i64, bool)> = dispatch!(Tx, &mut self.tx, tx => query_of!(&sql)
            .fetch_all(&mut **tx)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|row| {
                        Ok((
                            row.try_get("res_type")?,
                            row.try_get("res_id")?,
                            row.try_get("version")?,
                            row.try_get("deleted")?,
                        ))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
            }))?;
            for (res_type, res_id, version, deleted) in rows {
                found.insert(
                    (resource_type(&res_type)?, logical_id(&res_id)?),
                    (version_id(version)?, deleted),
                );
            }
        }
        Ok(found)
    }

    /// For each of `queries` (criteria and the types they search), the ids of at most `limit` live
    /// resources matching it, in id order: [`StoreTx::find`] for many criteria in one statement per few
    /// criteria (`UNION ALL` of one bounded select each).
    ///
    /// # Errors
    /// [`StoreError::NotSupported`] for a criterion the compiler cannot serve; database failures.
    pub async fn find_all(
        &mut self,
        queries: &[(&SearchQuery, &[ResourceType])],
        now_micros: i64,
        limit: i64,
    ) -> Result<Vec<Vec<LogicalId>>, StoreError> {
        let mut found = vec![Vec::new(); queries.len()];
        for (chunk_index, chunk) in queries.chunks(QUERIES_PER_LOOKUP).enumerate() {
            let mut sql = Sql::new("");
            for (position, (query, types)) in chunk.iter().enumerate() {
                let number = chunk_index * QUERIES_PER_LOOKUP + position;
                if position > 0 {
                    sql.push(" UNION ALL ");
                }
                let mut part = Sql::new("SELECT CAST(");
                part.push(&number.to_string()).push(" AS BIGINT) AS q, f.res_id FROM (");
                match_sql(&mut part, query, types, now_micros)?;
                part.push_limit(limit);
                part.push(") AS f");
                sql.append(&part);
            }
            let rows: Vec<(i64, String)> = dispatch!(Tx, &mut self.tx, tx => query_of!(&sql)
            .fetch_all(&mut **tx)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|row| Ok((row.try_get("q")?, row.try_get("res_id")?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()
            }))?;
            for (number, res_id) in rows {
                let slot = usize::try_from(number)
                    .ok()
                    .and_then(|number| found.get_mut(number))
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown lookup number {number}"))
                    })?;
                slot.push(logical_id(&res_id)?);
            }
        }
        for ids in &mut found {
            ids.sort_unstable_by(|left, right| left.as_str().cmp(right.as_str()));
        }
        Ok(found)
    }

    /// [`StoreTx::find_all`] under the advisory lock of each criteria's key, so that conditional writes on
    /// the same criteria cannot both see no match. On PostgreSQL the criteria are matched once before
    /// locking: those that match nothing are locked exclusively (this transaction may create their
    /// resource), those that match are locked shared (it updates or reads what they match; any number of
    /// such transactions proceed together, none may create), then all are matched again under the locks. A
    /// criteria that matched before locking and matches nothing after (its resource was deleted meanwhile)
    /// fails with [`StoreError::Conflict`]: applied again, it is locked exclusively. SQLite's one writer
    /// needs no locks.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] as above; [`StoreError::NotSupported`] for a criterion the compiler cannot
    /// serve; database failures.
    pub async fn find_all_locked(
        &mut self,
        queries: &[(&SearchQuery, &[ResourceType], &str)],
        now_micros: i64,
        limit: i64,
    ) -> Result<Vec<Vec<LogicalId>>, StoreError> {
        let criteria: Vec<(&SearchQuery, &[ResourceType])> =
            queries.iter().map(|(query, types, _)| (*query, *types)).collect();
        if matches!(self.tx, Tx::Sqlite(_)) || queries.is_empty() {
            return self.find_all(&criteria, now_micros, limit).await;
        }
        let before = self.find_all(&criteria, now_micros, limit).await?;
        let keys: Vec<(&str, LockMode)> = queries
            .iter()
            .zip(&before)
            .map(|((_, _, key), found)| {
                (*key, if found.is_empty() { LockMode::Exclusive } else { LockMode::Shared })
            })
            .collect();
        self.lock_all(&keys).await?;
        let after = self.find_all(&criteria, now_micros, limit).await?;
        if before.iter().zip(&after).any(|(before, after)| !before.is_empty() && after.is_empty()) {
            return Err(StoreError::Conflict);
        }
        Ok(after)
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
        self.write_index(&[IndexedResource { res_type, res_id, entries, fresh: false }]).await
    }

    /// Replaces the index rows of `resources`. On PostgreSQL the deletes and inserts go as few packed
    /// statements.
    async fn write_index(&mut self, resources: &[IndexedResource<'_>]) -> Result<(), StoreError> {
        let statements = replace_statements(resources);
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
        self.write_all(std::slice::from_ref(new)).await
    }

    /// Writes new versions of several resources, each named at most once, as [`StoreTx::write`] does for
    /// one: the version rows, the current rows and the index rows each go in multi-row statements, so a
    /// Bundle's writes cost a few statements, not a few per resource.
    ///
    /// # Errors
    /// On conflict or database failure.
    pub async fn write_all(&mut self, versions: &[NewVersion<'_>]) -> Result<(), StoreError> {
        for chunk in versions.chunks(VERSIONS_PER_INSERT) {
            let mut history = Sql::new(
                "INSERT INTO resource_version (res_type, res_id, version, last_updated, method, body) VALUES ",
            );
            let mut current = Sql::new(
                "INSERT INTO resource (res_type, res_id, version, last_updated, deleted, body) VALUES ",
            );
            for (position, new) in chunk.iter().enumerate() {
                let separator = if position == 0 { "(" } else { ", (" };
                let body = Bind::OptText(new.body.map(str::to_owned));
                history.push(separator);
                current.push(separator);
                for sql in [&mut history, &mut current] {
                    sql.bind_text(new.res_type.as_str())
                        .push(", ")
                        .bind_text(new.res_id.as_str())
                        .push(", ")
                        .bind_int(new.version.get())
                        .push(", ")
                        .bind_int(new.last_updated.millis())
                        .push(", ");
                }
                history.bind_text(new.method.verb()).push(", ").bind(body.clone()).push(")");
                // A literal of this crate's own, not a client value (both backends read TRUE and FALSE).
                current
                    .push(if new.method == WriteMethod::Delete { "TRUE, " } else { "FALSE, " })
                    .bind(body)
                    .push(")");
            }
            current.push(
                " ON CONFLICT (res_type, res_id) DO UPDATE SET version = excluded.version, \
                 last_updated = excluded.last_updated, deleted = excluded.deleted, body = excluded.body",
            );
            self.execute(&history).await?;
            self.execute(&current).await?;
        }
        self.written.extend(versions.iter().map(|new| (new.res_type, new.res_id.clone())));
        self.written_versions
            .extend(versions.iter().map(|new| (new.version, new.method == WriteMethod::Delete)));
        let indexed: Vec<IndexedResource<'_>> = versions
            .iter()
            .map(|new| IndexedResource {
                res_type: new.res_type,
                res_id: new.res_id,
                entries: new.index,
                fresh: new.version == VersionId::FIRST,
            })
            .collect();
        self.write_index(&indexed).await
    }

    /// The resources this transaction wrote a version of so far ([`StoreTx::write_all`]), in the order
    /// written: what the steps that run before commit derive their own writes from.
    #[must_use]
    pub fn written(&self) -> &[(ResourceType, LogicalId)] {
        &self.written
    }

    /// The version number of each of [`StoreTx::written`], and whether it is a deletion.
    #[must_use]
    pub fn written_versions(&self) -> &[(VersionId, bool)] {
        &self.written_versions
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
        if self.recorded_events {
            self.outbox_signal.notify_waiters();
        }
        Ok(())
    }
}

/// How [`StoreTx::lock_all`] takes an advisory lock. Shared locks of one key do not wait on each other;
/// an exclusive one waits for, and holds off, every other lock of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    Exclusive,
    Shared,
}

/// How [`StoreTx::lock_rows`] locks a current row: `Update` for a row the transaction writes (it waits for,
/// and holds off, every other lock of the row), `Share` for one it only relies on (it holds off writers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowLock {
    Update,
    Share,
}

/// Appends `(type, id), …` binds for an `IN (VALUES …)` list.
fn push_addresses<'a>(
    sql: &mut Sql,
    addresses: impl Iterator<Item = (ResourceType, &'a LogicalId)>,
) {
    for (position, (res_type, res_id)) in addresses.enumerate() {
        sql.push(if position == 0 { "(" } else { ", (" });
        sql.bind_text(res_type.as_str()).push(", ").bind_text(res_id.as_str()).push(")");
    }
}

/// A current row with its address, as [`StoreTx::peek_all`] reads it.
#[derive(sqlx::FromRow)]
struct AddressedRow {
    res_type: String,
    res_id: String,
    version: i64,
    last_updated: i64,
    deleted: bool,
    body: Option<String>,
}
