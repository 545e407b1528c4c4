//! Reads outside a transaction: current version, a given version, and history.

use cdr_model::{Instant, LogicalId, ResourceType, VersionId};

use sqlx::FromRow;

use crate::audit::AUDIT_EVENT;
use crate::connect::dispatch;
use crate::row::{CurrentRow, HistoryRow, VersionRow, logical_id, resource_type, version_id};
use crate::sql::{Sql, query_of};
use crate::write::WriteMethod;
use crate::{Store, StoreError};

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub version: VersionId,
    pub last_updated: Instant,
    /// Whether this version is a deletion (then `body` is `None`).
    pub deleted: bool,
    /// The resource JSON exactly as served, with `id` and `meta` already set.
    pub body: Option<String>,
}

/// Which resources' history to list.
#[derive(Debug, Clone, Copy)]
pub enum HistoryScope<'a> {
    System,
    Type(ResourceType),
    Instance(ResourceType, &'a LogicalId),
}

/// A page request over history, newest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery<'a> {
    /// Only versions written at or after this time, as `_since`.
    pub since: Option<Instant>,
    /// Only versions written at or before this time, as `_at`-style upper bounds.
    pub until: Option<Instant>,
    /// Only versions stamped before this instant: the feed horizon ([`Store::feed_horizon`]) the walk
    /// started at.
    pub horizon: Option<Instant>,
    /// Keyset cursor: only entries with a change sequence below this one.
    pub before_seq: Option<i64>,
    /// Page size.
    pub count: u32,
    /// Only versions of the resources now in this compartment (their current version is; whether each
    /// version also was is for the caller to check on its body).
    pub compartment: Option<&'a cdr_search::Compartment>,
}

/// One entry of a history listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The system-wide change sequence; the keyset cursor for the next page.
    pub seq: i64,
    pub res_type: ResourceType,
    pub res_id: LogicalId,
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
        res_type: ResourceType,
        res_id: &LogicalId,
    ) -> Result<Option<StoredVersion>, StoreError> {
        if res_type == AUDIT_EVENT {
            return self.read_audit(res_id).await;
        }
        let row = dispatch!(&self.pool, pool => sqlx::query_as::<_, CurrentRow>(
            "SELECT version, last_updated, deleted, body FROM resource WHERE res_type = $1 AND res_id = $2",
        )
        .bind(res_type.as_str())
        .bind(res_id.as_str())
        .fetch_optional(pool)
        .await)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(StoredVersion {
            version: version_id(row.version)?,
            last_updated: Instant::from_millis(row.last_updated),
            deleted: row.deleted,
            body: row.body,
        }))
    }

    /// A given version of a resource; `None` if that version does not exist.
    ///
    /// # Errors
    /// On database failure.
    pub async fn vread(
        &self,
        res_type: ResourceType,
        res_id: &LogicalId,
        version: VersionId,
    ) -> Result<Option<StoredVersion>, StoreError> {
        if res_type == AUDIT_EVENT {
            let found = self.read_audit(res_id).await?;
            return Ok(found.filter(|_| version == VersionId::FIRST));
        }
        let row = dispatch!(&self.pool, pool => sqlx::query_as::<_, VersionRow>(
            "SELECT version, last_updated, method, body FROM resource_version \
             WHERE res_type = $1 AND res_id = $2 AND version = $3",
        )
        .bind(res_type.as_str())
        .bind(res_id.as_str())
        .bind(version.get())
        .fetch_optional(pool)
        .await)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(row.into_stored()?.1))
    }

    /// A page of history, newest first; `count + 1` rows are asked for so the caller knows whether a next
    /// page exists.
    ///
    /// # Errors
    /// On database failure.
    pub async fn history(
        &self,
        scope: HistoryScope<'_>,
        query: &HistoryQuery<'_>,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        match scope {
            HistoryScope::Instance(res_type, res_id) if res_type == AUDIT_EVENT => {
                return self.audit_history(Some(res_id), query).await;
            }
            HistoryScope::Type(res_type) if res_type == AUDIT_EVENT => {
                return self.audit_history(None, query).await;
            }
            _ => {}
        }
        let mut sql = Sql::new(
            "SELECT seq, res_type, res_id, version, last_updated, method, body FROM resource_version WHERE 1 = 1",
        );
        match scope {
            // The audit trail is in a table of its own (`audit.rs`), out of every history but its events'
            // own. Migration 0010's partial index, from when it was not, serves this predicate still.
            HistoryScope::System => {
                sql.push(" AND res_type <> 'AuditEvent'");
            }
            HistoryScope::Type(res_type) => {
                sql.push(" AND res_type = ").bind_text(res_type.as_str());
            }
            HistoryScope::Instance(res_type, res_id) => {
                sql.push(" AND res_type = ").bind_text(res_type.as_str());
                sql.push(" AND res_id = ").bind_text(res_id.as_str());
            }
        }
        if let Some(since) = query.since {
            sql.push(" AND last_updated >= ").bind_int(since.millis());
        }
        if let Some(until) = query.until {
            sql.push(" AND last_updated <= ").bind_int(until.millis());
        }
        if let Some(horizon) = query.horizon {
            sql.push(" AND last_updated < ").bind_int(horizon.millis());
        }
        if let Some(before_seq) = query.before_seq {
            sql.push(" AND seq < ").bind_int(before_seq);
        }
        if let Some(compartment) = query.compartment {
            let types = match scope {
                HistoryScope::System => Vec::new(),
                HistoryScope::Type(res_type) | HistoryScope::Instance(res_type, _) => {
                    vec![res_type]
                }
            };
            sql.push(" AND ");
            crate::compile::confine(&mut sql, compartment, "res_type", "res_id", &types);
        }
        sql.push(" ORDER BY seq DESC").push_limit(i64::from(query.count) + 1);
        let rows = dispatch!(&self.pool, pool => query_of!(&sql)
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(HistoryRow::from_row).collect::<Result<Vec<_>, _>>()))?;
        rows.into_iter()
            .map(|row| {
                let (method, version) = row.version.into_stored()?;
                Ok(HistoryEntry {
                    seq: row.seq,
                    res_type: resource_type(&row.res_type)?,
                    res_id: logical_id(&row.res_id)?,
                    method,
                    version,
                })
            })
            .collect()
    }
}
