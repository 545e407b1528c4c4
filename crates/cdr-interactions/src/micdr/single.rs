//! The contribution rules for single requests (`POST [type]`, `PUT [type]/[id]`, `PUT [type]?criteria`,
//! `PATCH`, `DELETE`) under `EngineConfig::contribution_rules`. The guide describes Bundle submission;
//! a single write follows the same rules where they apply:
//! - a create is conditional on business identifiers (`POST` with `If-None-Exist`, or `PUT [type]?criteria`)
//!   and its resource carries no id (the repository assigns ids): a plain `POST` would store a duplicate
//!   on every resubmission, so it is refused (400);
//! - `PUT [type]/[id]` and `PATCH` change a resource the client knows (update-as-create is off);
//! - Patients and Practitioners pass the registry check (`registry.rs`);
//! - every reference to a Patient, Practitioner, Organization or ServiceRequest, and an addendum's reference to
//!   its report, is a `Type/id` reference to a live resource (422 `not-found` naming the element; `urn:uuid:`
//!   and conditional references are refused from every single write, in every mode, before:
//!   `write::refuse_outside_bundle`);
//! - a DiagnosticReport update follows the report lifecycle (`lifecycle.rs`);
//! - ServiceRequests, ImagingStudies and DiagnosticReports get their index entry (`index_entry.rs`), in the
//!   same transaction.
//!
//! A single request does not have to name a Patient, a Practitioner and an Organization: that rule is about a
//! Bundle's contents.

use cdr_model::{Issue, IssueType, LogicalId, OperationOutcome, Resource, ResourceType};
use cdr_store::{RowLock, StoreTx};
use serde_json::Value;

use super::index_entry::Source;
use super::{lifecycle, registry};
use crate::bundle::rewrite;
use crate::subscriptions::Change;
use crate::write::invalid_at;
use crate::{Engine, InteractionError, VersionedResource};

/// The types whose references must resolve.
const RESOLVED_TYPES: [&str; 4] = ["Patient", "Practitioner", "Organization", "ServiceRequest"];

impl Engine {
    /// The checks of a single write before its transaction: the form of a create (`conditional`: it has
    /// criteria; `is_create`: it may create a resource) and the registry check.
    pub(crate) async fn check_submission(
        &self,
        resource: &Resource,
        is_create: bool,
        conditional: bool,
    ) -> Result<(), InteractionError> {
        if !self.config.contribution_rules {
            return Ok(());
        }
        if is_create && !conditional {
            return Err(InteractionError::invalid(
                "this repository takes submissions as conditional writes on business identifiers (PUT [type]?identifier=system|value, or POST with If-None-Exist)",
            ));
        }
        if is_create && resource.id().is_some() {
            return Err(invalid_at(
                "a submitted resource carries no id: this repository assigns every id",
                "id",
            ));
        }
        registry::check(self.person_registry.as_ref(), resource).await
    }

    /// The report lifecycle: the update of DiagnosticReport `id` to `resource` (a Bundle entry's or a
    /// single write's) moves its status only as `lifecycle.rs` allows. `current` is the stored body the
    /// caller has read (a report that does not exist or is deleted has no status to leave: no check).
    pub(crate) fn check_report_update(
        &self,
        resource: &Resource,
        id: &LogicalId,
        current: &str,
    ) -> Result<(), InteractionError> {
        let report = ResourceType::known("DiagnosticReport");
        if !self.config.contribution_rules || resource.resource_type() != report {
            return Ok(());
        }
        let stored: Value = serde_json::from_str(current).map_err(|error| {
            InteractionError::Internal(cdr_store::StoreError::Corrupt(format!(
                "{report}/{id}: {error}"
            )))
        })?;
        lifecycle::check_transition(&stored, &Value::Object(resource.json().clone()))
    }

    /// The references of `resource` that must resolve do, checked in a transaction of their own that writes
    /// nothing (for `$validate`).
    pub(crate) async fn check_single_references(
        &self,
        resource: &Resource,
    ) -> Result<(), InteractionError> {
        if !self.config.contribution_rules {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        check_references(&mut tx, resource).await
    }

    /// After a single write of `written` inside its transaction: its references must resolve, and its
    /// index entry is written (`base`: the FHIR base of the attachment URL). A deletion marks the entry.
    pub(crate) async fn after_single_write(
        &self,
        tx: &mut StoreTx,
        written: &VersionedResource,
        base: &str,
    ) -> Result<(), InteractionError> {
        let change = Change {
            resource_type: written.resource_type,
            id: &written.id,
            body: written.body.as_deref(),
        };
        self.record_subscriptions(tx, &[change], base).await?;
        if !self.config.contribution_rules {
            return Ok(());
        }
        if let Some(body) = &written.body {
            // The body as written: its references are the final ones.
            let resource = Resource::from_slice(body.as_bytes())
                .map_err(|error| InteractionError::invalid(error.to_string()))?;
            check_references(tx, &resource).await?;
        }
        let source = Source {
            resource_type: written.resource_type,
            id: &written.id,
            version: written.version,
            body: written.body.as_deref(),
        };
        self.write_index_entries(tx, &[source], base, written.last_updated).await
    }
}

/// Checks that every reference of `resource` that must resolve names a live resource of the store.
async fn check_references(tx: &mut StoreTx, resource: &Resource) -> Result<(), InteractionError> {
    let type_name = resource.resource_type().as_str();
    let mut json = Value::Object(resource.json().clone());
    let mut must_resolve: Vec<(String, String)> = lifecycle::addenda(&json);
    for (reference, element) in &must_resolve {
        if !reference.starts_with("DiagnosticReport/") {
            return Err(unresolved(
                format!(
                    "an addendum references the DiagnosticReport it adds to, not '{reference}'"
                ),
                &format!("{type_name}.{element}"),
            ));
        }
    }
    let _ = rewrite::<()>(
        &mut json,
        &mut |reference: &str, path: &str| {
            // `urn:` and conditional references were refused before the write (`refuse_outside_bundle`).
            let target = reference.split('/').next().unwrap_or_default();
            if RESOLVED_TYPES.contains(&target) {
                let element = path.strip_suffix(".reference").unwrap_or(path);
                must_resolve.push((reference.to_owned(), element.to_owned()));
            }
            Ok(None)
        },
        &|_| None,
    );
    let mut addresses = Vec::with_capacity(must_resolve.len());
    for (reference, element) in &must_resolve {
        let Some(address) = crate::bundle::address(reference) else {
            return Err(unresolved(
                format!(
                    "'{reference}' is not a reference to a resource of this repository (Type/id)"
                ),
                &format!("{type_name}.{element}"),
            ));
        };
        addresses.push(address);
    }
    let rows: Vec<(ResourceType, &LogicalId, RowLock)> =
        addresses.iter().map(|(resource_type, id)| (*resource_type, id, RowLock::Share)).collect();
    let current = tx.lock_rows(&rows).await?;
    for ((reference, element), address) in must_resolve.iter().zip(&addresses) {
        if !matches!(current.get(address), Some((_, false))) {
            return Err(unresolved(
                format!("'{reference}' resolves to no resource of this repository"),
                &format!("{type_name}.{element}"),
            ));
        }
    }
    Ok(())
}

fn unresolved(diagnostics: String, expression: &str) -> InteractionError {
    InteractionError::Unprocessable(OperationOutcome::single(
        Issue::error(IssueType::NotFound, diagnostics).at(expression),
    ))
}
