//! Writes: a [`StoreTx`] wraps one database transaction in which an interaction (or a whole Bundle)
//! reads what it needs, takes its locks and writes new versions.

use sqlx::{Postgres, Row, Sqlite, Transaction};

use crate::connect::{Pool, dispatch};
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

/// One token index row of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// The search parameter code, e.g. `identifier`.
    pub param: String,
    pub system: Option<String>,
    pub code: Option<String>,
}

/// A condition on a resource for conditional interactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The logical id equals this value.
    Id(String),
    /// A token row of `param` has this code and, when `system` is `Some`, this system (`Some(None)`: no
    /// system at all).
    Token { param: String, system: Option<Option<String>>, code: String },
}

/// A new version to write.
#[derive(Debug, Clone, Copy)]
pub struct NewVersion<'a> {
    pub res_type: &'a str,
    pub res_id: &'a str,
    pub version: i64,
    /// Milliseconds since the Unix epoch.
    pub last_updated: i64,
    pub method: WriteMethod,
    /// The JSON to serve, with `id` and `meta` set; `None` for a deletion.
    pub body: Option<&'a str>,
    /// The resource's token index rows (empty for a deletion).
    pub tokens: &'a [TokenRow],
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
    /// On database failure.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => {
                Ok(StoreTx { tx: Tx::Postgres(pool.begin().await?), _writer_turn: None })
            }
            Pool::Sqlite(pool) => {
                let turn = std::sync::Arc::clone(&self.writer_gate).lock_owned().await;
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
        res_type: &str,
        res_id: &str,
    ) -> Result<Option<(i64, bool)>, StoreError> {
        let row = match &mut self.tx {
            Tx::Postgres(tx) => {
                sqlx::query(
                    "SELECT version, deleted FROM resource WHERE res_type = $1 AND res_id = $2 FOR UPDATE",
                )
                .bind(res_type)
                .bind(res_id)
                .fetch_optional(&mut **tx)
                .await?
                .map(|row| Ok::<_, sqlx::Error>((row.try_get("version")?, row.try_get("deleted")?)))
            }
            Tx::Sqlite(tx) => sqlx::query("SELECT version, deleted FROM resource WHERE res_type = $1 AND res_id = $2")
                .bind(res_type)
                .bind(res_id)
                .fetch_optional(&mut **tx)
                .await?
                .map(|row| Ok((row.try_get("version")?, row.try_get("deleted")?))),
        };
        Ok(row.transpose()?)
    }

    /// The ids of live resources of a type matching every condition, at most `limit` of them.
    ///
    /// # Errors
    /// On database failure.
    pub async fn find(
        &mut self,
        res_type: &str,
        conditions: &[Condition],
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids = dispatch!(Tx, &mut self.tx, tx => {
            let mut sql = sqlx::QueryBuilder::new("SELECT r.res_id FROM resource r WHERE r.res_type = ");
            sql.push_bind(res_type).push(" AND NOT r.deleted");
            for condition in conditions {
                match condition {
                    Condition::Id(id) => {
                        sql.push(" AND r.res_id = ").push_bind(id.as_str());
                    }
                    Condition::Token { param, system, code } => {
                        sql.push(" AND EXISTS (SELECT 1 FROM idx_token t WHERE t.res_type = r.res_type AND t.res_id = r.res_id AND t.param = ")
                            .push_bind(param.as_str())
                            .push(" AND t.code = ")
                            .push_bind(code.as_str());
                        match system {
                            None => {}
                            Some(None) => {
                                sql.push(" AND t.system IS NULL");
                            }
                            Some(Some(system)) => {
                                sql.push(" AND t.system = ").push_bind(system.as_str());
                            }
                        }
                        sql.push(")");
                    }
                }
            }
            sql.push(" ORDER BY r.res_id LIMIT ").push_bind(limit);
            sql.build().fetch_all(&mut **tx).await.and_then(|rows| {
                rows.iter().map(|row| row.try_get::<String, _>("res_id")).collect::<Result<Vec<_>, _>>()
            })
        })?;
        Ok(ids)
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
            .bind(new.res_type)
            .bind(new.res_id)
            .bind(new.version)
            .bind(new.last_updated)
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
            .bind(new.res_type)
            .bind(new.res_id)
            .bind(new.version)
            .bind(new.last_updated)
            .bind(deleted)
            .bind(new.body)
            .execute(&mut **tx)
            .await?;
            sqlx::query("DELETE FROM idx_token WHERE res_type = $1 AND res_id = $2")
                .bind(new.res_type)
                .bind(new.res_id)
                .execute(&mut **tx)
                .await?;
            if !new.tokens.is_empty() {
                let mut sql = sqlx::QueryBuilder::new("INSERT INTO idx_token (res_type, res_id, param, system, code) ");
                sql.push_values(new.tokens, |mut values, token| {
                    values
                        .push_bind(new.res_type)
                        .push_bind(new.res_id)
                        .push_bind(token.param.as_str())
                        .push_bind(token.system.as_deref())
                        .push_bind(token.code.as_deref());
                });
                sql.build().execute(&mut **tx).await?;
            }
            Ok::<(), sqlx::Error>(())
        })?;
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
