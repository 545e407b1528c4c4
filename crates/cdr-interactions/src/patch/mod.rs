//! The patch interaction (R4 http.html#patch), plain and conditional: a [`Patch`] (JSON Patch or FHIRPath
//! Patch) applied to the current version, then validated and written as the next version exactly as an
//! update is (`check_for_write`, `write_version`, history method `PUT`).
//!
//! The steps are separate so that a transaction Bundle can run a PATCH entry in its own transaction:
//! [`Patch::parse`] reads the body, [`apply_patch`] is the pure change of a resource's JSON, and
//! [`Engine::patch_in`] reads the current version inside a [`StoreTx`] (row-locked on PostgreSQL),
//! applies, validates and writes. The resource stays locked while it is validated: the patch needs the
//! version it changes.

mod fhirpath;
mod json;

#[cfg(test)]
mod tests;

use cdr_model::{Issue, IssueType, LogicalId, OperationOutcome, Resource, ResourceType};
use cdr_store::{StoreError, StoreTx, WriteMethod};
use serde_json::Value;

use crate::audit::AuditEntities;
use crate::write::{check_structure, multiple_matches, refuse_outside_bundle, write_version};
use crate::{Engine, InteractionError, Precondition, ResourceLimits, VersionedResource, parse_id};

pub use crate::patch::fhirpath::FhirPathPatch;

/// How a PATCH body is written, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchFormat {
    /// `application/json-patch+json`: JSON Patch (RFC 6902).
    JsonPatch,
    /// `application/fhir+json` (or plain JSON): a Parameters resource of FHIRPath Patch operations.
    FhirPath,
}

/// A parsed patch document.
#[derive(Debug, Clone)]
pub enum Patch {
    /// JSON Patch (RFC 6902) operations on the resource JSON.
    Json(json_patch::Patch),
    /// FHIRPath Patch operations (R4 fhirpatch.html).
    FhirPath(FhirPathPatch),
}

impl Patch {
    /// Parses a PATCH body written in `format`.
    ///
    /// # Errors
    /// [`InteractionError::Invalid`] when the body is not a patch document of that format.
    pub fn parse(format: PatchFormat, body: &[u8]) -> Result<Patch, InteractionError> {
        match format {
            PatchFormat::JsonPatch => Ok(Patch::Json(json::parse(body)?)),
            PatchFormat::FhirPath => {
                let parameters: Value = serde_json::from_slice(body).map_err(|error| {
                    InteractionError::invalid(format!("the body is not valid JSON: {error}"))
                })?;
                Ok(Patch::FhirPath(FhirPathPatch::parse(&parameters)?))
            }
        }
    }
}

impl Patch {
    /// Calls `visit` with each JSON value the patch writes (or tests), the name of the element it is
    /// written as where the patch says, and where in the patch document it is (`parameter[2]`, or `data`
    /// for JSON Patch in a Binary).
    pub(crate) fn visit_values<E>(
        &mut self,
        visit: &mut impl FnMut(&mut Value, Option<&str>, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Patch::Json(patch) => {
                for operation in &mut patch.0 {
                    let (json_patch::PatchOperation::Add(json_patch::AddOperation { path, value })
                    | json_patch::PatchOperation::Replace(json_patch::ReplaceOperation {
                        path,
                        value,
                    })
                    | json_patch::PatchOperation::Test(json_patch::TestOperation {
                        path,
                        value,
                    })) = operation
                    else {
                        continue;
                    };
                    let name = path.as_str().rsplit('/').next().filter(|name| !name.is_empty());
                    visit(value, name, "data")?;
                }
                Ok(())
            }
            Patch::FhirPath(patch) => patch.visit_values(&mut |value, name, position| {
                visit(value, name, &format!("parameter[{position}]"))
            }),
        }
    }
}

/// The resource JSON with `patch` applied. The patched resource keeps its `resourceType` and `id`; it is not
/// validated here. `limits` bounds how much JSON Patch `copy` operations may add.
///
/// # Errors
/// [`InteractionError::Unprocessable`] naming the operation that cannot be applied, or when the patch
/// changes `resourceType` or `id`; [`InteractionError::ResourceTooCostly`] when copies grow the resource
/// past `limits`.
pub(crate) fn apply_patch(
    resource: &Value,
    patch: &Patch,
    limits: &ResourceLimits,
) -> Result<Value, InteractionError> {
    let mut patched = resource.clone();
    match patch {
        Patch::Json(patch) => json::apply(&mut patched, patch, limits)?,
        Patch::FhirPath(patch) => patch.apply(&mut patched)?,
    }
    for key in ["resourceType", "id"] {
        if patched.get(key) != resource.get(key) {
            return Err(unprocessable(format!(
                "the patch changes {key}, which a patch must leave as it is"
            )));
        }
    }
    Ok(patched)
}

impl Engine {
    /// patch of `type/id`; `base` is this server's FHIR base URL (for the index entry of the contribution
    /// rules).
    ///
    /// # Errors
    /// Unknown type, invalid id, a resource that does not exist or is deleted, failed precondition, a patch
    /// that cannot be applied or whose result is invalid, a broken contribution rule, or a storage failure.
    pub async fn patch(
        &self,
        type_name: &str,
        id: &str,
        patch: &Patch,
        precondition: Precondition,
        base: &str,
    ) -> Result<VersionedResource, InteractionError> {
        let resource_type = self.served_type(type_name)?;
        self.refuse_audit_write(resource_type)?;
        let id = parse_id(id)?;
        let mut tx = self.store.begin().await?;
        let outcome = self.patch_in(&mut tx, resource_type, &id, patch, precondition).await?;
        refuse_result_outside_bundle(&outcome)?;
        self.after_single_write(&mut tx, &outcome, base).await?;
        self.commit_audited(tx, &[(None, AuditEntities::of_version(&outcome))]).await?;
        Ok(outcome)
    }

    /// Conditional patch: `PATCH type?criteria` patches the one resource the criteria match; none is
    /// [`InteractionError::NotFound`], several [`InteractionError::MultipleMatches`].
    ///
    /// # Errors
    /// As [`Engine::patch`], and invalid criteria, no match or several.
    pub async fn conditional_patch(
        &self,
        type_name: &str,
        query: &str,
        patch: &Patch,
        precondition: Precondition,
        base: &str,
    ) -> Result<VersionedResource, InteractionError> {
        let resource_type = self.served_type(type_name)?;
        self.refuse_audit_write(resource_type)?;
        let mut tx = self.store.begin().await?;
        let matches = self.conditional_matches(&mut tx, resource_type, query).await?;
        let outcome = match matches.as_slice() {
            [] => {
                return Err(InteractionError::NotFound(format!(
                    "a {resource_type} matching '{query}'"
                )));
            }
            [found] => self.patch_in(&mut tx, resource_type, found, patch, precondition).await?,
            _ => return Err(multiple_matches(resource_type, query)),
        };
        refuse_result_outside_bundle(&outcome)?;
        self.after_single_write(&mut tx, &outcome, base).await?;
        self.commit_audited(tx, &[(None, AuditEntities::of_version(&outcome))]).await?;
        Ok(outcome)
    }

    /// Patches `type/id` inside `tx`: reads its current version (locking it), checks `precondition`,
    /// applies `patch`, validates the result like an update and writes it as the next version, which it
    /// returns (a patch always writes one: its response is an update's `200`).
    ///
    /// # Errors
    /// A resource that does not exist or is deleted, failed precondition, a patch that cannot be applied or
    /// whose result is invalid, or a storage failure.
    pub(crate) async fn patch_in(
        &self,
        tx: &mut StoreTx,
        resource_type: ResourceType,
        id: &LogicalId,
        patch: &Patch,
        precondition: Precondition,
    ) -> Result<VersionedResource, InteractionError> {
        let Some(current) = tx.current_version(resource_type, id).await? else {
            return Err(InteractionError::NotFound(format!("{resource_type}/{id}")));
        };
        self.confine_existing(resource_type, id, Some(&current))?;
        if current.deleted {
            return Err(InteractionError::Gone {
                address: format!("{resource_type}/{id}"),
                version: current.version,
                last_updated: current.last_updated,
            });
        }
        if let Precondition::IfMatch(expected) = precondition
            && expected != current.version
        {
            return Err(InteractionError::PreconditionFailed(format!(
                "If-Match expects version {expected} of {resource_type}/{id}, but the current version is {}",
                current.version
            )));
        }
        let stored = current.body.as_deref().unwrap_or_default();
        let json: Value = serde_json::from_str(stored).map_err(|error| {
            InteractionError::Internal(StoreError::Corrupt(format!(
                "{resource_type}/{id}: {error}"
            )))
        })?;
        let (patch, limits) = (patch.clone(), self.limits);
        let patched = self.cpu.run(move || apply_patch(&json, &patch, &limits)).await?;
        let resource = Resource::from_value(patched)
            .map_err(|error| unprocessable(format!("the patched resource: {error}")))
            .and_then(|resource| {
                check_structure(resource_type, resource).map_err(|error| match error {
                    InteractionError::Invalid(outcome) => InteractionError::Unprocessable(outcome),
                    other => other,
                })
            })?;
        let resource = self.check_for_write(resource).await?;
        if self.config.contribution_rules {
            crate::micdr::registry::check(self.person_registry.as_ref(), &resource).await?;
            self.check_report_update(&resource, id, stored)?;
        }
        let version = current.version.next();
        self.confine_write(resource_type, id, &resource)?;
        write_version(tx, &self.registry, resource_type, id, resource, version, WriteMethod::Update)
            .await
    }
}

/// The result of a single patch, as written in its uncommitted transaction, is refused as a single update is
/// when it holds a reference only a transaction Bundle resolves (`urn:uuid:`, conditional).
fn refuse_result_outside_bundle(outcome: &VersionedResource) -> Result<(), InteractionError> {
    let Some(body) = &outcome.body else { return Ok(()) };
    let resource = Resource::from_slice(body.as_bytes()).map_err(|error| {
        InteractionError::Internal(StoreError::Corrupt(format!(
            "{}/{}: {error}",
            outcome.resource_type, outcome.id
        )))
    })?;
    refuse_outside_bundle(&resource)
}

fn unprocessable(diagnostics: String) -> InteractionError {
    InteractionError::Unprocessable(OperationOutcome::single(Issue::error(
        IssueType::Processing,
        diagnostics,
    )))
}
