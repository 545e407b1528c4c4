//! The number of matches of a search (`_total`, `_summary=count`).

use cdr_model::ResourceType;
use cdr_search::SearchQuery;
use sqlx::Row;

use crate::compile::where_clause;
use crate::connect::dispatch;
use crate::sql::{Sql, query_of};
use crate::{Store, StoreError};

impl Store {
    /// The number of matches.
    ///
    /// # Errors
    /// As [`Store::search`].
    pub async fn count(
        &self,
        query: &SearchQuery,
        types: &[ResourceType],
        now_micros: i64,
    ) -> Result<i64, StoreError> {
        if crate::audit::searches_audit(types)? {
            return self.count_audit(query, now_micros).await;
        }
        let drive = self.drive(query, types, now_micros, true).await?;
        let mut sql = Sql::new("SELECT COUNT(*) AS n FROM resource r WHERE ");
        where_clause(&mut sql, query, types, now_micros, drive, false)?;
        let count = dispatch!(&self.pool, pool => query_of!(&sql)
            .fetch_one(pool)
            .await
            .and_then(|row| row.try_get::<i64, _>("n")))?;
        Ok(count)
    }
}
