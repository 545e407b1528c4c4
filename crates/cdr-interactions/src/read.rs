//! read and vread. Under patient confinement a resource outside the compartment is not found (404, never 403,
//! so its existence is not revealed); a vread shows a version when both it and the current version are in the
//! compartment.

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
        let Some(stored) = stored.filter(|stored| self.shows(resource_type, &id, stored)) else {
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
        let visible = match &stored {
            Some(_) if self.confinement.is_some() => self
                .store
                .read(resource_type, &id)
                .await?
                .is_some_and(|current| self.shows(resource_type, &id, &current)),
            _ => true,
        };
        let Some(stored) =
            stored.filter(|stored| visible && self.shows(resource_type, &id, stored))
        else {
            return Err(InteractionError::NotFound(format!(
                "{resource_type}/{id}/_history/{version}"
            )));
        };
        live_version(resource_type, id, stored)
    }
}

impl Engine {
    /// Whether a stored version is shown under this engine's confinement: a version with a body in the
    /// compartment. A deletion has no body to tell whose it was, so a confined caller does not see it.
    pub(crate) fn shows(
        &self,
        resource_type: ResourceType,
        id: &LogicalId,
        stored: &StoredVersion,
    ) -> bool {
        match &stored.body {
            Some(body) => self.visible(resource_type, id, body),
            None => self.confinement.is_none(),
        }
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
