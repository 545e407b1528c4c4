//! Rows as the store's queries read them (`sqlx::FromRow`), and their decoding into the model's types.
//!
//! The columns hold plain text and integers; a value the model refuses (an unknown type name, an invalid
//! id, a version below 1) is [`StoreError::Corrupt`], since the store only ever writes valid ones.

use cdr_model::{Instant, LogicalId, ResourceType, VersionId};

use crate::StoreError;
use crate::read::StoredVersion;
use crate::write::WriteMethod;

/// The current row of a resource (`resource`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CurrentRow {
    pub(crate) version: i64,
    pub(crate) last_updated: i64,
    pub(crate) deleted: bool,
    pub(crate) body: Option<String>,
}

/// One version of a resource (`resource_version`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct VersionRow {
    pub(crate) version: i64,
    pub(crate) last_updated: i64,
    pub(crate) method: String,
    pub(crate) body: Option<String>,
}

/// One history entry (`resource_version` with its change sequence and address).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HistoryRow {
    pub(crate) seq: i64,
    pub(crate) res_type: String,
    pub(crate) res_id: String,
    #[sqlx(flatten)]
    pub(crate) version: VersionRow,
}

/// A live resource found by a search or an include (its sort values, if any, are read separately).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ResourceRow {
    pub(crate) res_type: String,
    pub(crate) res_id: String,
    pub(crate) version: i64,
    pub(crate) last_updated: i64,
    pub(crate) body: Option<String>,
}

/// A live resource's stored body, as a reindex reads it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct BodyRow {
    pub(crate) res_type: String,
    pub(crate) res_id: String,
    pub(crate) body: Option<String>,
}

pub(crate) fn resource_type(name: &str) -> Result<ResourceType, StoreError> {
    ResourceType::parse(name).map_err(|error| StoreError::Corrupt(error.to_string()))
}

pub(crate) fn logical_id(id: &str) -> Result<LogicalId, StoreError> {
    LogicalId::parse(id).map_err(|error| StoreError::Corrupt(error.to_string()))
}

pub(crate) fn version_id(version: i64) -> Result<VersionId, StoreError> {
    VersionId::from_number(version).map_err(|error| StoreError::Corrupt(error.to_string()))
}

impl VersionRow {
    /// The stored version, typed.
    pub(crate) fn into_stored(self) -> Result<(WriteMethod, StoredVersion), StoreError> {
        let method = WriteMethod::parse(&self.method)?;
        let stored = StoredVersion {
            version: version_id(self.version)?,
            last_updated: Instant::from_millis(self.last_updated),
            deleted: method == WriteMethod::Delete,
            body: self.body,
        };
        Ok((method, stored))
    }
}
