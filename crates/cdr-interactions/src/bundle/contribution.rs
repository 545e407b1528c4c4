//! The miCDR contribution rules (`EngineConfig::contribution_rules`, the server's `--mode micdr`), for
//! transaction and batch Bundles (Ontario MI guide: "Submit MI Bundle", "Submit MI Report"):
//! - resources are submitted without an `id` (the repository assigns every id), as conditional PUTs on their
//!   business identifiers (`PUT T?identifier=system|value`): no match creates, one updates, several fail the
//!   Bundle (412);
//! - a Bundle provides, or references, a Patient, a Practitioner and an Organization;
//! - every reference to a Patient, Practitioner, Organization or ServiceRequest, and an addendum's reference
//!   to its DiagnosticReport (`ext-di-addendum-of`), resolves, to an entry of the Bundle or to a live resource
//!   of the repository (else 422 naming the element).
//!
//! The registry check, the report lifecycle and the index entries are in `crate::micdr`.

use cdr_model::{Issue, IssueType, LogicalId, OperationOutcome, Resource, ResourceType};
use serde_json::Value;

use super::entry::{Entry, Method, Target};
use super::references::{conditional, rewrite};
use crate::InteractionError;
use crate::micdr::lifecycle::addenda;
use crate::write::invalid_at;

/// The types every Bundle must provide or reference.
const REQUIRED_TYPES: [&str; 3] = ["Patient", "Practitioner", "Organization"];

/// The types whose references must resolve.
const RESOLVED_TYPES: [&str; 4] = ["Patient", "Practitioner", "Organization", "ServiceRequest"];

/// Checks an entry's form: reads are free; writes are conditional PUTs of resources without an id.
pub(super) fn check_entry(entry: &Entry) -> Result<(), InteractionError> {
    match (entry.method, &entry.target) {
        (Method::Get | Method::Head, _) => return Ok(()),
        (Method::Put, Target::Type(_, query)) if !query.is_empty() => {}
        _ => {
            return Err(invalid_at(
                "this repository takes submissions as conditional PUTs on business identifiers (PUT [type]?identifier=system|value)",
                "request",
            ));
        }
    }
    if entry.resource.as_ref().and_then(Resource::id).is_some() {
        return Err(invalid_at(
            "a submitted resource carries no id: this repository assigns every id",
            "resource.id",
        ));
    }
    Ok(())
}

/// A reference that must resolve: its text after the Bundle's own references were rewritten, and its
/// element within the entry (`resource.subject`).
#[derive(Debug, Clone)]
pub(super) struct MustResolve {
    pub(super) reference: String,
    pub(super) element: String,
}

/// The references of `resource` to the types that must resolve (with an addendum's reference to its
/// report, which must be a DiagnosticReport), and the types it references at all.
pub(super) fn references_of(
    resource: &mut Value,
) -> Result<(Vec<MustResolve>, Vec<String>), InteractionError> {
    let mut must_resolve = Vec::new();
    for (reference, element) in addenda(resource) {
        if !reference.starts_with("DiagnosticReport/")
            && !reference.starts_with("DiagnosticReport?")
        {
            return Err(InteractionError::Unprocessable(OperationOutcome::single(
                Issue::error(
                    IssueType::NotFound,
                    format!(
                        "an addendum references the DiagnosticReport it adds to, not '{reference}'"
                    ),
                )
                .at(format!("resource.{element}")),
            )));
        }
        if conditional(&reference).is_none() {
            must_resolve.push(MustResolve { reference, element: format!("resource.{element}") });
        }
    }
    let mut types = Vec::new();
    let _ = rewrite::<()>(
        resource,
        &mut |reference: &str, path: &str| {
            let type_name = match conditional(reference) {
                Some((type_name, _)) => type_name,
                None => reference.split('/').next().unwrap_or_default(),
            };
            types.push(type_name.to_owned());
            if RESOLVED_TYPES.contains(&type_name) && conditional(reference).is_none() {
                let element = path.strip_suffix(".reference").unwrap_or(path);
                must_resolve.push(MustResolve {
                    reference: reference.to_owned(),
                    element: format!("resource.{element}"),
                });
            }
            Ok(None)
        },
        &|_| None,
    );
    Ok((must_resolve, types))
}

/// Checks that the Bundle's entries and references together name each of [`REQUIRED_TYPES`].
pub(super) fn check_required_types<'a>(
    named: impl Iterator<Item = &'a str>,
) -> Result<(), InteractionError> {
    let named: Vec<&str> = named.collect();
    let missing: Vec<&str> =
        REQUIRED_TYPES.iter().copied().filter(|required| !named.contains(required)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(InteractionError::Unprocessable(OperationOutcome::single(
        Issue::error(
            IssueType::BusinessRule,
            format!(
                "a submission provides or references a Patient, a Practitioner and an Organization; this Bundle names no {}",
                missing.join(", no ")
            ),
        )
        .at("Bundle.entry"),
    )))
}

/// The address a must-resolve reference names (`Patient/123`, also with `/_history/n`), if it is a
/// relative RESTful reference.
pub(crate) fn address(reference: &str) -> Option<(ResourceType, LogicalId)> {
    let mut segments = reference.split('/');
    let (Some(type_name), Some(id)) = (segments.next(), segments.next()) else { return None };
    let resource_type = ResourceType::parse(type_name).ok()?;
    Some((resource_type, LogicalId::parse(id).ok()?))
}

/// The error of a reference that does not resolve.
pub(super) fn unresolved(reference: &MustResolve) -> InteractionError {
    InteractionError::Unprocessable(OperationOutcome::single(
        Issue::error(
            IssueType::NotFound,
            format!(
                "'{}' resolves to no entry of the Bundle and to no resource of this repository",
                reference.reference
            ),
        )
        .at(reference.element.clone()),
    ))
}
