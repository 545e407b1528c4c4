//! The patient and provider registry check of the miCDR (Ontario MI guide, transition IG rules 2 and 3:
//! "validate received data against the PCR and the PPR", "the patient's DOB must match the DOB in the
//! PCR"), behind the [`PersonRegistry`] trait so that a deployment can plug in its registries.
//!
//! [`AcceptAll`] is the default (no registry configured: nothing is checked, no network call).
//! [`LocalRegistry`] holds known patients and practitioners read from a file (`--registry-file`, NDJSON:
//! one `{"kind":"patient","system":…,"value":…,"birthDate":…}` or `{"kind":"practitioner","system":…,
//! "value":…}` a line). A registry checks only the identifiers of the systems it keeps (the HCN, a college
//! licence): a Patient known only by its MRN is not the PCR's to judge.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use cdr_model::{Issue, IssueType, OperationOutcome, Resource};
use serde_json::Value;

use crate::InteractionError;

/// One `Identifier` of a submitted resource, as a registry sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonIdentifier {
    pub system: String,
    pub value: String,
}

/// What a registry says of a submitted Patient or Practitioner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Known (or not the registry's to check).
    Accepted,
    /// The identifier at this position of the list checked is of a system the registry keeps, but the
    /// registry does not know it.
    UnknownIdentifier(usize),
    /// The patient is known by the identifier at `identifier`, with another birth date.
    BirthDateMismatch { identifier: usize, registered: String },
}

/// The future of a registry check.
pub type RegistryFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// A patient and provider registry (the PCR and PPR of the Ontario guide).
pub trait PersonRegistry: Debug + Send + Sync {
    /// Checks a Patient's identifiers and its birth date (`None` when the Patient has none).
    fn check_patient<'a>(
        &'a self,
        identifiers: &'a [PersonIdentifier],
        birth_date: Option<&'a str>,
    ) -> RegistryFuture<'a>;

    /// Checks a Practitioner's identifiers.
    fn check_practitioner<'a>(&'a self, identifiers: &'a [PersonIdentifier]) -> RegistryFuture<'a>;
}

/// The registry of a server that has none: every Patient and Practitioner is accepted.
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl PersonRegistry for AcceptAll {
    fn check_patient<'a>(
        &'a self,
        _identifiers: &'a [PersonIdentifier],
        _birth_date: Option<&'a str>,
    ) -> RegistryFuture<'a> {
        Box::pin(std::future::ready(Verdict::Accepted))
    }

    fn check_practitioner<'a>(
        &'a self,
        _identifiers: &'a [PersonIdentifier],
    ) -> RegistryFuture<'a> {
        Box::pin(std::future::ready(Verdict::Accepted))
    }
}

/// A registry held in memory: the known patients (identifier → birth date) and practitioners.
#[derive(Debug, Clone, Default)]
pub struct LocalRegistry {
    patients: HashMap<PersonIdentifier, String>,
    patient_systems: HashSet<String>,
    practitioners: HashSet<PersonIdentifier>,
    practitioner_systems: HashSet<String>,
}

impl LocalRegistry {
    /// Parses the NDJSON text of a registry file (blank lines are skipped).
    ///
    /// # Errors
    /// The line (1-based) that is not a patient or practitioner record, and why.
    pub fn from_ndjson(text: &str) -> Result<LocalRegistry, String> {
        let mut registry = LocalRegistry::default();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            registry.add_line(line).map_err(|error| format!("line {}: {error}", number + 1))?;
        }
        Ok(registry)
    }

    fn add_line(&mut self, line: &str) -> Result<(), String> {
        let record: Value =
            serde_json::from_str(line).map_err(|error| format!("not JSON: {error}"))?;
        let text = |name: &str| {
            record
                .get(name)
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .ok_or_else(|| format!("'{name}' must be a non-empty string"))
        };
        let identifier = PersonIdentifier {
            system: text("system")?.to_owned(),
            value: text("value")?.to_owned(),
        };
        match text("kind")? {
            "patient" => {
                let birth_date = text("birthDate")?.to_owned();
                self.patient_systems.insert(identifier.system.clone());
                self.patients.insert(identifier, birth_date);
            }
            "practitioner" => {
                self.practitioner_systems.insert(identifier.system.clone());
                self.practitioners.insert(identifier);
            }
            other => return Err(format!("'kind' is 'patient' or 'practitioner', not '{other}'")),
        }
        Ok(())
    }

    fn patient_verdict(
        &self,
        identifiers: &[PersonIdentifier],
        birth_date: Option<&str>,
    ) -> Verdict {
        for (position, identifier) in identifiers.iter().enumerate() {
            if !self.patient_systems.contains(&identifier.system) {
                continue;
            }
            match self.patients.get(identifier) {
                None => return Verdict::UnknownIdentifier(position),
                Some(registered) if Some(registered.as_str()) != birth_date => {
                    return Verdict::BirthDateMismatch {
                        identifier: position,
                        registered: registered.clone(),
                    };
                }
                Some(_) => {}
            }
        }
        Verdict::Accepted
    }

    fn practitioner_verdict(&self, identifiers: &[PersonIdentifier]) -> Verdict {
        identifiers
            .iter()
            .position(|identifier| {
                self.practitioner_systems.contains(&identifier.system)
                    && !self.practitioners.contains(identifier)
            })
            .map_or(Verdict::Accepted, Verdict::UnknownIdentifier)
    }
}

impl PersonRegistry for LocalRegistry {
    fn check_patient<'a>(
        &'a self,
        identifiers: &'a [PersonIdentifier],
        birth_date: Option<&'a str>,
    ) -> RegistryFuture<'a> {
        Box::pin(std::future::ready(self.patient_verdict(identifiers, birth_date)))
    }

    fn check_practitioner<'a>(&'a self, identifiers: &'a [PersonIdentifier]) -> RegistryFuture<'a> {
        Box::pin(std::future::ready(self.practitioner_verdict(identifiers)))
    }
}

/// Checks a Patient or Practitioner with `registry`; other types pass. The error is a 422
/// `business-rule` located at `Patient.birthDate` or at the identifier (`Practitioner.identifier[1]`).
pub(crate) async fn check(
    registry: &dyn PersonRegistry,
    resource: &Resource,
) -> Result<(), InteractionError> {
    let type_name = resource.resource_type().as_str();
    if type_name != "Patient" && type_name != "Practitioner" {
        return Ok(());
    }
    let json = resource.json();
    // The positions in the resource of the identifiers handed to the registry.
    let mut positions = Vec::new();
    let mut identifiers = Vec::new();
    for (position, identifier) in
        json.get("identifier").and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        let field = |name: &str| identifier.get(name).and_then(Value::as_str);
        if let (Some(system), Some(value)) = (field("system"), field("value")) {
            positions.push(position);
            identifiers
                .push(PersonIdentifier { system: system.to_owned(), value: value.to_owned() });
        }
    }
    let verdict = if type_name == "Patient" {
        let birth_date = json.get("birthDate").and_then(Value::as_str);
        registry.check_patient(&identifiers, birth_date).await
    } else {
        registry.check_practitioner(&identifiers).await
    };
    let registry_name = if type_name == "Patient" {
        "the patient registry (PCR)"
    } else {
        "the provider registry (PPR)"
    };
    let (diagnostics, expression) = match verdict {
        Verdict::Accepted => return Ok(()),
        Verdict::UnknownIdentifier(at) => {
            let identifier = &identifiers[at];
            (
                format!(
                    "{registry_name} knows no {type_name} with the identifier {}|{}",
                    identifier.system, identifier.value
                ),
                format!("{type_name}.identifier[{}]", positions[at]),
            )
        }
        Verdict::BirthDateMismatch { identifier: at, registered } => {
            let identifier = &identifiers[at];
            let given = json.get("birthDate").and_then(Value::as_str).unwrap_or("none");
            (
                format!(
                    "the birth date {given} is not the one {registry_name} holds for {}|{} ({registered})",
                    identifier.system, identifier.value
                ),
                "Patient.birthDate".to_owned(),
            )
        }
    };
    Err(InteractionError::Unprocessable(OperationOutcome::single(
        Issue::error(IssueType::BusinessRule, diagnostics).at(expression),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HCN: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn";

    fn id(system: &str, value: &str) -> PersonIdentifier {
        PersonIdentifier { system: system.to_owned(), value: value.to_owned() }
    }

    #[test]
    fn a_registry_file_lists_patients_and_practitioners() {
        let registry = LocalRegistry::from_ndjson(&format!(
            "{{\"kind\":\"patient\",\"system\":\"{HCN}\",\"value\":\"1\",\"birthDate\":\"1970-01-01\"}}\n\n\
             {{\"kind\":\"practitioner\",\"system\":\"lic\",\"value\":\"9\"}}\n"
        ))
        .unwrap();
        let mrn = id("mrn", "x");
        assert_eq!(registry.patient_verdict(std::slice::from_ref(&mrn), None), Verdict::Accepted);
        assert_eq!(
            registry.patient_verdict(&[mrn.clone(), id(HCN, "1")], Some("1970-01-01")),
            Verdict::Accepted
        );
        assert_eq!(
            registry.patient_verdict(&[mrn, id(HCN, "1")], Some("1971-01-01")),
            Verdict::BirthDateMismatch { identifier: 1, registered: "1970-01-01".to_owned() }
        );
        assert_eq!(registry.patient_verdict(&[id(HCN, "2")], None), Verdict::UnknownIdentifier(0));
        assert_eq!(registry.practitioner_verdict(&[id("lic", "9")]), Verdict::Accepted);
        assert_eq!(registry.practitioner_verdict(&[id("lic", "8")]), Verdict::UnknownIdentifier(0));
        assert_eq!(registry.practitioner_verdict(&[id("other", "8")]), Verdict::Accepted);
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let error =
            LocalRegistry::from_ndjson("{\"kind\":\"patient\",\"system\":\"s\",\"value\":\"v\"}")
                .unwrap_err();
        assert!(error.starts_with("line 1: 'birthDate'"), "{error}");
        let error =
            LocalRegistry::from_ndjson("\n{\"kind\":\"org\",\"system\":\"s\",\"value\":\"v\"}")
                .unwrap_err();
        assert!(error.starts_with("line 2: 'kind'"), "{error}");
        assert!(LocalRegistry::from_ndjson("nope").unwrap_err().contains("not JSON"));
    }
}
