//! The store's side of a reindex: whether one is needed, and the batches of live bodies it reads. The index
//! rows themselves are computed by the caller and written with `StoreTx::replace_index`.

use cdr_model::{LogicalId, ResourceType};
use sqlx::{FromRow, Row};

use crate::connect::dispatch;
use crate::row::{BodyRow, logical_id, resource_type};
use crate::sql::{Sql, query_of};
use crate::{Store, StoreError};

/// A live resource's stored body, as [`Store::live_bodies`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBody {
    pub res_type: ResourceType,
    pub res_id: LogicalId,
    /// The resource JSON as served.
    pub body: String,
}

impl Store {
    /// Whether live resources exist but no index rows do: a database written before the search index tables
    /// existed (every live resource has at least its `_lastUpdated` date row).
    ///
    /// # Errors
    /// On database failure.
    pub async fn needs_reindex(&self) -> Result<bool, StoreError> {
        let sql = Sql::new(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM resource WHERE NOT deleted) \
             AND NOT EXISTS (SELECT 1 FROM idx_date) THEN 1 ELSE 0 END AS needed",
        );
        let needed = dispatch!(&self.pool, pool => query_of!(&sql)
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get::<i32, _>("needed")))?;
        Ok(needed == 1)
    }

    /// At most `limit` live resources with their bodies, in `(type, id)` order, strictly after `after`: the
    /// batches a reindex reads.
    ///
    /// # Errors
    /// On database failure, or a live resource without a body.
    pub async fn live_bodies(
        &self,
        after: Option<(ResourceType, &LogicalId)>,
        limit: u32,
    ) -> Result<Vec<LiveBody>, StoreError> {
        let mut sql = Sql::new("SELECT res_type, res_id, body FROM resource WHERE NOT deleted");
        if let Some((res_type, res_id)) = after {
            sql.push(" AND (res_type > ").bind_text(res_type.as_str());
            sql.push(" OR (res_type = ").bind_text(res_type.as_str());
            sql.push(" AND res_id > ").bind_text(res_id.as_str()).push("))");
        }
        sql.push(" ORDER BY res_type, res_id").push_limit(i64::from(limit.max(1)));
        let rows = dispatch!(&self.pool, pool => query_of!(&sql)
            .fetch_all(pool)
            .await
            .and_then(|rows| rows.iter().map(BodyRow::from_row).collect::<Result<Vec<_>, _>>()))?;
        rows.into_iter()
            .map(|row| {
                let res_type = resource_type(&row.res_type)?;
                let res_id = logical_id(&row.res_id)?;
                let body = row.body.ok_or_else(|| {
                    StoreError::Corrupt(format!("{res_type}/{res_id} is live but has no body"))
                })?;
                Ok(LiveBody { res_type, res_id, body })
            })
            .collect()
    }
}
