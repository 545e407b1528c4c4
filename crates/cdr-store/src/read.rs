//! Reads outside a transaction: current version, a given version, and history.

use sqlx::Row;

use crate::connect::dispatch;
use crate::write::WriteMethod;
use crate::{Store, StoreError};

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub version: i64,
    /// Milliseconds since the Unix epoch.
    pub last_updated: i64,
    /// Whether this version is a deletion (then `body` is `None`).
    pub deleted: bool,
    /// The resource JSON exactly as served, with `id` and `meta` already set.
    pub body: Option<String>,
}

/// Which resources' history to list.
#[derive(Debug, Clone, Copy)]
pub enum HistoryScope<'a> {
    System,
    Type(&'a str),
    Instance(&'a str, &'a str),
}

/// A page request over history, newest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery {
    /// Only versions written at or after this time (ms since the Unix epoch), as `_since`.
    pub since: Option<i64>,
    /// Only versions written at or before this time, as `_at`-style upper bounds.
    pub until: Option<i64>,
    /// Keyset cursor: only entries with a change sequence below this one.
    pub before_seq: Option<i64>,
    /// Page size.
    pub count: u32,
}

/// One entry of a history listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The system-wide change sequence; the keyset cursor for the next page.
    pub seq: i64,
    pub res_type: String,
    pub res_id: String,
    pub method: WriteMethod,
    pub version: StoredVersion,
}

impl Store {
    /// The current version of a resource, deleted or not; `None` if it never existed.
    ///
    /// # Errors
    /// On database failure.
    pub async fn read(
        &self,
        res_type: &str,
        res_id: &str,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let row = dispatch!(&self.pool, pool => sqlx::query(
            "SELECT version, last_updated, deleted, body FROM resource WHERE res_type = $1 AND res_id = $2",
        )
        .bind(res_type)
        .bind(res_id)
        .fetch_optional(pool)
        .await
        .and_then(|row| row.map(|row| Ok(StoredVersion {
            version: row.try_get("version")?,
            last_updated: row.try_get("last_updated")?,
            deleted: row.try_get("deleted")?,
            body: row.try_get("body")?,
        })).transpose()))?;
        Ok(row)
    }

    /// A given version of a resource; `None` if that version does not exist.
    ///
    /// # Errors
    /// On database failure.
    pub async fn vread(
        &self,
        res_type: &str,
        res_id: &str,
        version: i64,
    ) -> Result<Option<StoredVersion>, StoreError> {
        let row = dispatch!(&self.pool, pool => sqlx::query(
            "SELECT version, last_updated, method, body FROM resource_version \
             WHERE res_type = $1 AND res_id = $2 AND version = $3",
        )
        .bind(res_type)
        .bind(res_id)
        .bind(version)
        .fetch_optional(pool)
        .await
        .and_then(|row| row.map(|row| Ok((
            row.try_get::<i64, _>("version")?,
            row.try_get::<i64, _>("last_updated")?,
            row.try_get::<String, _>("method")?,
            row.try_get::<Option<String>, _>("body")?,
        ))).transpose()))?;
        let Some((version, last_updated, method, body)) = row else {
            return Ok(None);
        };
        let method = WriteMethod::parse(&method)?;
        Ok(Some(StoredVersion {
            version,
            last_updated,
            deleted: method == WriteMethod::Delete,
            body,
        }))
    }

    /// A page of history, newest first; `count + 1` rows are asked for so the caller knows whether a next
    /// page exists.
    ///
    /// # Errors
    /// On database failure.
    pub async fn history(
        &self,
        scope: HistoryScope<'_>,
        query: &HistoryQuery,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = dispatch!(&self.pool, pool => {
            let mut sql = sqlx::QueryBuilder::new(
                "SELECT seq, res_type, res_id, version, last_updated, method, body FROM resource_version WHERE 1 = 1",
            );
            match scope {
                HistoryScope::System => {}
                HistoryScope::Type(res_type) => {
                    sql.push(" AND res_type = ").push_bind(res_type);
                }
                HistoryScope::Instance(res_type, res_id) => {
                    sql.push(" AND res_type = ").push_bind(res_type).push(" AND res_id = ").push_bind(res_id);
                }
            }
            if let Some(since) = query.since {
                sql.push(" AND last_updated >= ").push_bind(since);
            }
            if let Some(until) = query.until {
                sql.push(" AND last_updated <= ").push_bind(until);
            }
            if let Some(before_seq) = query.before_seq {
                sql.push(" AND seq < ").push_bind(before_seq);
            }
            // Written out, not bound: see `Sql::push_limit`.
            sql.push(" ORDER BY seq DESC LIMIT ").push(i64::from(query.count) + 1);
            sql.build()
                .fetch_all(pool)
                .await
                .and_then(|rows| rows.iter().map(|row| Ok((
                    row.try_get::<i64, _>("seq")?,
                    row.try_get::<String, _>("res_type")?,
                    row.try_get::<String, _>("res_id")?,
                    row.try_get::<i64, _>("version")?,
                    row.try_get::<i64, _>("last_updated")?,
                    row.try_get::<String, _>("method")?,
                    row.try_get::<Option<String>, _>("body")?,
                ))).collect::<Result<Vec<_>, sqlx::Error>>())
        })?;
        rows.into_iter()
            .map(|(seq, res_type, res_id, version, last_updated, method, body)| {
                let method = WriteMethod::parse(&method)?;
                let deleted = method == WriteMethod::Delete;
                Ok(HistoryEntry {
                    seq,
                    res_type,
                    res_id,
                    method,
                    version: StoredVersion { version, last_updated, deleted, body },
                })
            })
            .collect()
    }
}
