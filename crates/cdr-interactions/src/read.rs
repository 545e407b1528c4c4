//! read and vread.

use cdr_model::{LogicalId, ResourceType, VersionId};
use cdr_store::StoredVersion;

use crate::{Engine, InteractionError, VersionedResource, parse_id};

impl Engine {
    /// The current version of `type/id`.
    ///
    /// # Errors
    /// Unknown type, invalid id, not found, or gone (deleted).
    pub async fn read(
        &self,
        type_name: &str,
        id: &str,
    ) -> Result<VersionedResource, InteractionError> {
        let resource_type = self.served_type(type_name)?;
        let id = parse_id(id)?;
        let stored = self.store.read(resource_type, &id).await?;
        let Some(stored) = stored else {
            return Err(InteractionError::NotFound(format!("{resource_type}/{id}")));
        };
        live_version(resource_type, id, stored)
    }

    /// Version `version` of `type/id`.
    ///
    /// # Errors
    /// Unknown type, invalid id or version, not found, or gone (that version is a deletion).
    pub async fn vread(
        &self,
        type_name: &str,
        id: &str,
        version: &str,
    ) -> Result<VersionedResource, InteractionError> {
        let resource_type = self.served_type(type_name)?;
        let id = parse_id(id)?;
        let version = VersionId::parse(version)
            .map_err(|error| InteractionError::invalid(error.to_string()))?;
        let stored = self.store.vread(resource_type, &id, version).await?;
        let Some(stored) = stored else {
            return Err(InteractionError::NotFound(format!(
                "{resource_type}/{id}/_history/{version}"
            )));
        };
        live_version(resource_type, id, stored)
    }
}

pub(crate) fn live_version(
    resource_type: ResourceType,
    id: LogicalId,
    stored: StoredVersion,
) -> Result<VersionedResource, InteractionError> {
    let last_updated = stored.last_updated;
    if stored.deleted {
        return Err(InteractionError::Gone {
            address: format!("{resource_type}/{id}"),
            version: stored.version,
            last_updated,
        });
    }
    Ok(VersionedResource {
        resource_type,
        id,
        version: stored.version,
        last_updated,
        body: stored.body,
    })
}
