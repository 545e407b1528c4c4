//! Index rows whose values come from other resources (a report's `recipient`s from the orders it is based on):
//! the reference rows a transaction reads them from, the resources that point at a changed one, and the
//! replacement of one parameter's rows. Which rows to derive is the caller's decision; the store reads and
//! writes rows as it is told.

use std::collections::BTreeSet;

use cdr_model::{LogicalId, ResourceType};
use cdr_search::{IndexEntry, ReferenceIndex, SearchParamType, TokenIndex};
use sqlx::Row;

use crate::StoreError;
use crate::connect::dispatch;
use crate::index::{IndexTable, IndexedResource, replace_param_statements};
use crate::row::{logical_id, resource_type};
use crate::sql::{Sql, pack, query_of};
use crate::write::{StoreTx, Tx};

/// Most resources one lookup statement names.
const IDS_PER_LOOKUP: usize = 500;

/// One reference row of a resource, as [`StoreTx::references`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReference {
    pub res_id: LogicalId,
    /// The parameter's code, such as `requester`.
    pub param: String,
    pub reference: ReferenceIndex,
}

impl StoreTx {
    /// The ids of the resources of `res_type` whose reference parameter `param` points at one of `targets`
    /// (of `target_type`), as committed or written by this transaction; sorted, each once.
    ///
    /// # Errors
    /// On database failure.
    pub async fn referrers(
        &mut self,
        res_type: ResourceType,
        param: &str,
        target_type: ResourceType,
        targets: &[&LogicalId],
    ) -> Result<Vec<LogicalId>, StoreError> {
        let mut found = BTreeSet::new();
        for chunk in targets.chunks(IDS_PER_LOOKUP) {
            let mut sql =
                Sql::new("SELECT DISTINCT res_id FROM idx_reference WHERE target_type = ");
            sql.bind_text(target_type.as_str()).push(" AND target_id IN (");
            push_ids(&mut sql, chunk);
            sql.push(") AND res_type = ").bind_text(res_type.as_str());
            sql.push(" AND param = ").bind_text(param);
            let ids: Vec<String> = dispatch!(Tx, &mut self.tx, tx => query_of!(&sql)
                .fetch_all(&mut **tx)
                .await
                .and_then(|rows| rows.iter().map(|row| row.try_get("res_id")).collect()))?;
            for id in ids {
                found.insert(logical_id(&id)?);
            }
        }
        Ok(found.into_iter().collect())
    }

    /// The reference rows of parameters `params` of the resources `ids` of `res_type`, as committed or
    /// written by this transaction (composite components left out), in id order.
    ///
    /// # Errors
    /// On database failure, or a stored row naming an unknown type.
    pub async fn references(
        &mut self,
        res_type: ResourceType,
        ids: &[&LogicalId],
        params: &[&str],
    ) -> Result<Vec<StoredReference>, StoreError> {
        let mut found = Vec::new();
        if params.is_empty() {
            return Ok(found);
        }
        for chunk in ids.chunks(IDS_PER_LOOKUP) {
            let mut sql = Sql::new(
                "SELECT res_id, param, target_type, target_id, version, url, id_system, id_value \
                 FROM idx_reference WHERE res_type = ",
            );
            sql.bind_text(res_type.as_str()).push(" AND res_id IN (");
            push_ids(&mut sql, chunk);
            sql.push(") AND grp = 0 AND param IN (");
            for (position, param) in params.iter().enumerate() {
                if position > 0 {
                    sql.push(", ");
                }
                sql.bind_text(param);
            }
            sql.push(") ORDER BY res_id, param");
            let rows: Vec<ReferenceRow> = dispatch!(Tx, &mut self.tx, tx => query_of!(&sql)
                .fetch_all(&mut **tx)
                .await
                .and_then(|rows| rows.iter().map(sqlx::FromRow::from_row).collect()))?;
            for row in rows {
                found.push(row.into_stored()?);
            }
        }
        Ok(found)
    }

    /// Replaces, for each of `resources` (of `res_type`, each named once), its rows of the parameter `param`
    /// (of `param_type`) with the given entries, leaving its other rows as they are.
    ///
    /// # Errors
    /// [`StoreError::NotSupported`] for a composite parameter; on database failure.
    pub async fn replace_param_index(
        &mut self,
        res_type: ResourceType,
        param: &str,
        param_type: SearchParamType,
        resources: &[(LogicalId, Vec<IndexEntry>)],
    ) -> Result<(), StoreError> {
        if resources.is_empty() {
            return Ok(());
        }
        let table = IndexTable::of(param_type)?;
        let indexed: Vec<IndexedResource<'_>> = resources
            .iter()
            .map(|(res_id, entries)| IndexedResource { res_type, res_id, entries, fresh: false })
            .collect();
        let statements = replace_param_statements(table, param, &indexed);
        let statements = match self.tx {
            Tx::Postgres(_) => pack(statements),
            Tx::Sqlite(_) => statements,
        };
        for statement in &statements {
            self.execute(statement).await?;
        }
        Ok(())
    }
}

/// Appends `$n, …` binds of ids.
fn push_ids(sql: &mut Sql, ids: &[&LogicalId]) {
    for (position, id) in ids.iter().enumerate() {
        if position > 0 {
            sql.push(", ");
        }
        sql.bind_text(id.as_str());
    }
}

/// A row of `idx_reference` with its resource id and parameter.
#[derive(sqlx::FromRow)]
struct ReferenceRow {
    res_id: String,
    param: String,
    target_type: Option<String>,
    target_id: Option<String>,
    version: Option<String>,
    url: Option<String>,
    id_system: Option<String>,
    id_value: Option<String>,
}

impl ReferenceRow {
    fn into_stored(self) -> Result<StoredReference, StoreError> {
        let identifier =
            (self.id_system.is_some() || self.id_value.is_some()).then_some(TokenIndex {
                system: self.id_system,
                code: self.id_value,
                text: None,
                identifier_type: None,
            });
        Ok(StoredReference {
            res_id: logical_id(&self.res_id)?,
            param: self.param,
            reference: ReferenceIndex {
                target_type: self.target_type.as_deref().map(resource_type).transpose()?,
                target_id: self.target_id,
                version: self.version,
                url: self.url,
                identifier,
            },
        })
    }
}
