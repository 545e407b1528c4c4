//! Profile validation: the check every create and update runs before writing, and the `$validate`
//! operation.
//!
//! What a write is validated against depends on [`ValidationMode`]: `strict` is base R4, the
//! resource's `meta.profile` and the server's profile for its type ([`Profiles`]); `base` drops the
//! server's profile; `off` leaves only the structural checks of `parse_body`. `$validate` always
//! validates (base R4, `meta.profile`, the `profile` parameter, and in strict mode the type's profile),
//! whatever the mode.

use std::collections::BTreeMap;

use cdr_model::{Issue, IssueSeverity, IssueType, OperationOutcome, Resource, ResourceType};
use cdr_validation::{ConformanceKind, ProfileSet, ValidationReport, validate};
use serde_json::Value;

use crate::write::parse_value;
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

/// What `$validate` was asked: the resource and any extra profile.
struct ValidateRequest {
    resource: Resource,
    profile: Option<String>,
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
        let engine = self.clone();
        self.cpu
            .clone()
            .run(move || {
                engine.limits.check(resource.json())?;
                let report = engine.validate_for_write(&resource);
                if !report.has_errors() {
                    return Ok(resource);
                }
                let mut outcome = report.to_operation_outcome();
                outcome.issues.retain(|issue| issue.severity != IssueSeverity::Information);
                Err(InteractionError::Unprocessable(outcome))
            })
            .await
    }

    /// The `$validate` operation: `type_name` is the type of `POST [base]/[type]/$validate`, `None`
    /// for `POST [base]/$validate`. The body is the resource, or a Parameters resource with a
    /// `resource` part and optional `profile` and `mode` parts. The outcome lists every issue, or one
    /// information issue when there is none.
    ///
    /// # Errors
    /// Unknown type, a body that is not a resource (or a Parameters without one), a resource of
    /// another type than the URL's, or an unsupported `mode`.
    pub async fn validate_operation(
        &self,
        type_name: Option<&str>,
        body: &[u8],
    ) -> Result<OperationOutcome, InteractionError> {
        let expected_type = type_name.map(|name| self.served_type(name)).transpose()?;
        let engine = self.clone();
        let body = body.to_vec();
        self.cpu.clone().run(move || engine.validate_now(expected_type, &body)).await
    }

    /// [`Engine::validate_operation`] on the calling thread.
    fn validate_now(
        &self,
        expected_type: Option<ResourceType>,
        body: &[u8],
    ) -> Result<OperationOutcome, InteractionError> {
        let request = parse_validate_request(expected_type, body)?;
        let resource = &request.resource;
        if let Some(expected) = expected_type
            && resource.resource_type() != expected
        {
            return Err(InteractionError::invalid(format!(
                "the resource is a {}, but the URL is for {expected}",
                resource.resource_type()
            )));
        }
        let mut extra: Vec<&str> = request.profile.iter().map(String::as_str).collect();
        if self.config.validation == ValidationMode::Strict
            && let Some(url) = self.profiles.for_type(resource.resource_type().as_str())
        {
            extra.push(url);
        }
        self.limits.check(resource.json())?;
        let value = Value::Object(resource.json().clone());
        let report = validate(&value, self.profiles.set(), &extra);
        let mut outcome = report.to_operation_outcome();
        if outcome.issues.is_empty() {
            outcome.issues.push(Issue::new(
                IssueSeverity::Information,
                IssueType::Informational,
                "validation found no issues",
            ));
        }
        Ok(outcome)
    }
}

fn parse_validate_request(
    expected_type: Option<ResourceType>,
    body: &[u8],
) -> Result<ValidateRequest, InteractionError> {
    let parsed = parse_value(body)?;
    let is_parameters = parsed.resource_type().as_str() == "Parameters"
        && expected_type.is_none_or(|expected| expected.as_str() != "Parameters");
    if !is_parameters {
        return Ok(ValidateRequest { resource: parsed, profile: None });
    }
    let parameters = parsed;
    let mut resource = None;
    let mut profile = None;
    for (index, part) in parameters
        .json()
        .get("parameter")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let location = format!("Parameters.parameter[{index}]");
        match part.get("name").and_then(Value::as_str) {
            Some("resource") => {
                let value = part.get("resource").cloned().ok_or_else(|| {
                    invalid_at("the resource parameter has no resource", &location)
                })?;
                let parsed = Resource::from_value(value).map_err(|error| {
                    invalid_at(&format!("the resource parameter: {error}"), &location)
                })?;
                resource = Some(parsed);
            }
            Some("profile") => {
                let url = ["valueUri", "valueCanonical", "valueString"]
                    .iter()
                    .find_map(|key| part.get(*key).and_then(Value::as_str))
                    .ok_or_else(|| {
                        invalid_at(
                            "the profile parameter needs a valueUri or valueCanonical",
                            &location,
                        )
                    })?;
                profile = Some(url.to_owned());
            }
            Some("mode") => {
                let mode = ["valueCode", "valueString"]
                    .iter()
                    .find_map(|key| part.get(*key).and_then(Value::as_str));
                match mode {
                    Some("create" | "update") => {}
                    Some(other) => {
                        return Err(InteractionError::NotSupported(format!(
                            "$validate mode '{other}' is not supported (create and update are)"
                        )));
                    }
                    None => {
                        return Err(invalid_at("the mode parameter needs a valueCode", &location));
                    }
                }
            }
            _ => {}
        }
    }
    let resource = resource.ok_or_else(|| {
        invalid_at("the Parameters have no resource parameter to validate", "Parameters.parameter")
    })?;
    Ok(ValidateRequest { resource, profile })
}

fn invalid_at(diagnostics: &str, expression: &str) -> InteractionError {
    InteractionError::Invalid(OperationOutcome::single(
        Issue::error(IssueType::Invalid, diagnostics).at(expression),
    ))
}
