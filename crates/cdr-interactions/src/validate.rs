//! Profile validation: the check every create and update runs before writing, and the profiles the
//! `$validate` operation (`validate_operation.rs`) validates against.
//!
//! What a write is validated against depends on [`ValidationMode`]: `strict` is base R4, the
//! resource's `meta.profile` and the server's profile for its type ([`Profiles`]); `base` drops the
//! server's profile; `off` leaves only the structural checks of `parse_body`. `$validate` always
//! validates (base R4, `meta.profile`, the `profile` parameter, and in strict mode the type's profile),
//! whatever the mode.

use std::collections::BTreeMap;

use cdr_model::{IssueSeverity, Resource};
use cdr_validation::{ConformanceKind, ProfileSet, ValidationReport, validate};
use serde_json::Value;

use crate::{Engine, InteractionError};

/// The Ontario MI profile of each type it constrains (see `profiles/README.md`), required in strict mode.
pub const ONTARIO_PROFILES: [(&str, &str); 8] = [
    (
        "DiagnosticReport",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-diagnosticReport",
    ),
    (
        "DocumentReference",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-documentReference",
    ),
    (
        "ImagingStudy",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-imagingStudy",
    ),
    (
        "Organization",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-organization",
    ),
    ("Patient", "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-patient"),
    (
        "Practitioner",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-practitioner",
    ),
    (
        "PractitionerRole",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-practitionerRole",
    ),
    (
        "ServiceRequest",
        "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-serviceRequest",
    ),
];

/// How much of profile validation creates and updates go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationMode {
    /// Base R4, declared `meta.profile`, and the server's profile for the type.
    Strict,
    /// Base R4 and declared `meta.profile`.
    Base,
    /// Structural checks only (JSON object, known `resourceType`, valid `id`).
    Off,
}

/// The conformance resources writes are validated against, and the profile required per type in
/// strict mode.
#[derive(Debug)]
pub struct Profiles {
    set: ProfileSet,
    by_type: BTreeMap<String, String>,
}

impl Profiles {
    /// `set` with [`ONTARIO_PROFILES`] as the per-type profiles.
    #[must_use]
    pub fn new(set: ProfileSet) -> Profiles {
        let by_type = ONTARIO_PROFILES
            .iter()
            .map(|(resource_type, url)| ((*resource_type).to_owned(), (*url).to_owned()))
            .collect();
        Profiles { set, by_type }
    }

    #[must_use]
    pub fn set(&self) -> &ProfileSet {
        &self.set
    }

    /// The profile required of this type in strict mode.
    #[must_use]
    pub fn for_type(&self, resource_type: &str) -> Option<&str> {
        self.by_type.get(resource_type).map(String::as_str)
    }

    /// The profile of this type when its StructureDefinition is loaded (and so can be enforced).
    #[must_use]
    pub fn loaded_for_type(&self, resource_type: &str) -> Option<&str> {
        self.for_type(resource_type)
            .filter(|url| self.set.resource(ConformanceKind::StructureDefinition, url).is_some())
    }

    /// The per-type profiles whose StructureDefinition is not loaded; strict mode would reject every
    /// write of those types.
    #[must_use]
    pub fn missing(&self) -> Vec<&str> {
        self.by_type
            .values()
            .filter(|url| self.set.resource(ConformanceKind::StructureDefinition, url).is_none())
            .map(String::as_str)
            .collect()
    }
}

impl Engine {
    /// Validates a parsed resource as a write would (per the configured [`ValidationMode`]); a
    /// transaction validates each entry with this. An empty report in `off` mode.
    #[must_use]
    pub fn validate_for_write(&self, resource: &Resource) -> ValidationReport {
        let type_profile = match self.config.validation {
            ValidationMode::Off => return ValidationReport::default(),
            ValidationMode::Base => None,
            ValidationMode::Strict => self.profiles.for_type(resource.resource_type().as_str()),
        };
        let value = Value::Object(resource.json().clone());
        validate(&value, self.profiles.set(), type_profile.as_slice())
    }

    /// [`Engine::validate_for_write`] as a gate, after the [`ResourceLimits`](crate::ResourceLimits)
    /// check, on the blocking pool: [`InteractionError::Unprocessable`] listing the errors and warnings
    /// when there are errors. Gives the resource back when it passes.
    ///
    /// # Errors
    /// When the resource is over a limit or breaks a profile it must conform to.
    pub async fn check_for_write(&self, resource: Resource) -> Result<Resource, InteractionError> {
        let resource = self.prepare_subscription(resource)?;
        let engine = self.clone();
        self.cpu
            .clone()
            .run(move || {
                engine.limits.check(resource.json())?;
                let started = std::time::Instant::now();
                let report = engine.validate_for_write(&resource);
                if engine.config.validation != ValidationMode::Off {
                    engine.validation_times.observe(started.elapsed());
                }
                if !report.has_errors() {
                    return Ok(resource);
                }
                let mut outcome = report.to_operation_outcome();
                outcome.issues.retain(|issue| issue.severity != IssueSeverity::Information);
                Err(InteractionError::Unprocessable(outcome))
            })
            .await
    }
}
