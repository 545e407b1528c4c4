//! `_include` and `_revinclude`: the live resources a page's matches point to, or that point to them.

use cdr_model::{LogicalId, ResourceType};
use cdr_search::{Compartment, Include};
use sqlx::FromRow;

use crate::connect::dispatch;
use crate::page::{FoundResource, found};
use crate::row::ResourceRow;
use crate::sql::{Sql, query_of};
use crate::{Store, StoreError};

/// Most sources per `IN (…)` list of an include query.
const INCLUDE_CHUNK: usize = 500;

impl Store {
    /// The live resources that `sources` point to through `include` (`reverse`: that point to `sources`), at
    /// most `limit` of them; with a `compartment`, only those in it.
    ///
    /// # Errors
    /// On database failure.
    pub async fn include(
        &self,
        sources: &[(ResourceType, LogicalId)],
        include: &Include,
        reverse: bool,
        limit: i64,
        compartment: Option<&Compartment>,
    ) -> Result<Vec<FoundResource>, StoreError> {
        let mut by_type: Vec<(ResourceType, Vec<&str>)> = Vec::new();
        for (res_type, res_id) in sources {
            match by_type.iter_mut().find(|(known, _)| known == res_type) {
                Some((_, ids)) => ids.push(res_id.as_str()),
                None => by_type.push((*res_type, vec![res_id.as_str()])),
            }
        }
        let mut results: Vec<FoundResource> = Vec::new();
        for (res_type, ids) in by_type {
            for chunk in ids.chunks(INCLUDE_CHUNK) {
                let Some(sql) = include_sql(res_type, chunk, include, reverse, limit, compartment)
                else {
                    continue;
                };
                let rows = dispatch!(&self.pool, pool => query_of!(&sql)
                .fetch_all(pool)
                .await
                .and_then(|rows| {
                    rows.iter()
                        .map(|row| Ok((ResourceRow::from_row(row)?, Vec::new())))
                        .collect::<Result<Vec<_>, sqlx::Error>>()
                }))?;
                for resource in found(rows)? {
                    let known = results.iter().any(|other| {
                        other.res_type == resource.res_type && other.res_id == resource.res_id
                    });
                    if !known {
                        results.push(resource);
                    }
                }
            }
        }
        results.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(results)
    }
}

fn include_sql(
    res_type: ResourceType,
    ids: &[&str],
    include: &Include,
    reverse: bool,
    limit: i64,
    compartment: Option<&Compartment>,
) -> Option<Sql> {
    if include.source_type.is_some_and(|source| !reverse && source != res_type) {
        return None;
    }
    let mut sql = Sql::new(
        "SELECT DISTINCT t.res_type, t.res_id, t.version, t.last_updated, t.body FROM idx_reference x JOIN resource t ON ",
    );
    if reverse {
        sql.push("t.res_type = x.res_type AND t.res_id = x.res_id WHERE NOT t.deleted");
        if let Some(source) = include.source_type {
            sql.push(" AND x.res_type = ").bind_text(source.as_str());
        }
        if let Some(target) = include.target_type
            && target != res_type
        {
            return None;
        }
        sql.push(" AND x.target_type = ").bind_text(res_type.as_str());
        sql.push(" AND x.target_id IN ").bind_text_list(ids.iter().copied());
    } else {
        sql.push("t.res_type = x.target_type AND t.res_id = x.target_id WHERE NOT t.deleted");
        sql.push(" AND x.res_type = ").bind_text(res_type.as_str());
        sql.push(" AND x.res_id IN ").bind_text_list(ids.iter().copied());
        if let Some(target) = include.target_type {
            sql.push(" AND x.target_type = ").bind_text(target.as_str());
        }
    }
    if let Some(param) = &include.param {
        sql.push(" AND x.param = ").bind_text(param);
    }
    if let Some(compartment) = compartment {
        sql.push(" AND ");
        let found_type = if reverse { include.source_type } else { include.target_type };
        let types: Vec<ResourceType> = found_type.into_iter().collect();
        crate::compile::confine(&mut sql, compartment, "t.res_type", "t.res_id", &types);
    }
    sql.push(" ORDER BY t.res_type, t.res_id").push_limit(limit);
    Some(sql)
}
