//! The R4 patient compartment (`CompartmentDefinition/patient`): which resources belong to one patient's
//! record. A resource is in `Patient/X`'s compartment when it is `Patient/X` itself, or when one of its
//! type's compartment parameters (`src/patient_compartment.rs`, generated from the definition) references
//! `Patient/X` (a Patient through `link`, a DiagnosticReport through `subject`, …). Types the definition gives
//! no parameter (Practitioner, Organization, Location, Endpoint, Binary, …) are in no patient's compartment.
//!
//! A [`Compartment`] on a [`crate::SearchQuery`] confines its matches, and everything its chains and `_has`
//! walk over, to the compartment (the store compiles it); [`Compartment::holds`] tests one resource body.

use cdr_model::ResourceType;
use serde_json::Value;

use crate::extract::{IndexEntry, extract_params};
use crate::index::IndexValue;
use crate::patient_compartment::PATIENT_COMPARTMENT;
use crate::registry::SearchParamRegistry;

/// One patient's compartment, named by the patient's logical id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Compartment {
    patient: String,
}

impl Compartment {
    /// The compartment of `Patient/{id}`.
    #[must_use]
    pub fn patient(id: &str) -> Compartment {
        Compartment { patient: id.to_owned() }
    }

    /// The patient's logical id.
    #[must_use]
    pub fn patient_id(&self) -> &str {
        &self.patient
    }

    /// The reference parameters of `resource_type` that put a resource in a patient's compartment (empty for
    /// a type that is never in one).
    #[must_use]
    pub fn params(resource_type: ResourceType) -> &'static [&'static str] {
        PATIENT_COMPARTMENT
            .binary_search_by(|(name, _)| (*name).cmp(resource_type.as_str()))
            .map_or(&[], |index| PATIENT_COMPARTMENT[index].1)
    }

    /// Every type that can be in a patient's compartment, with its compartment parameters.
    pub fn types() -> impl Iterator<Item = (ResourceType, &'static [&'static str])> {
        PATIENT_COMPARTMENT.iter().filter_map(|(name, params)| {
            ResourceType::parse(name).ok().map(|resource_type| (resource_type, *params))
        })
    }

    /// Whether `resource`, of `resource_type` with logical id `id`, is in this compartment, by the same
    /// index values the store matches.
    #[must_use]
    pub fn holds(
        &self,
        resource: &Value,
        registry: &SearchParamRegistry,
        resource_type: ResourceType,
        id: &str,
    ) -> bool {
        if resource_type.as_str() == "Patient" && id == self.patient {
            return true;
        }
        let params = Compartment::params(resource_type);
        if params.is_empty() {
            return false;
        }
        let extraction =
            extract_params(resource, registry, resource_type, |code| params.contains(&code));
        self.holds_index(resource_type, id, &extraction.entries)
    }

    /// Whether a resource of `resource_type` with logical id `id` and these index rows (as
    /// [`crate::extract()`] makes them) is in this compartment.
    #[must_use]
    pub fn holds_index(
        &self,
        resource_type: ResourceType,
        id: &str,
        entries: &[IndexEntry],
    ) -> bool {
        if resource_type.as_str() == "Patient" && id == self.patient {
            return true;
        }
        let params = Compartment::params(resource_type);
        entries.iter().any(|entry| match &entry.value {
            IndexValue::Reference(reference) => {
                params.contains(&entry.code.as_str())
                    && reference.target_type.is_some_and(|target| target.as_str() == "Patient")
                    && reference.target_id.as_deref() == Some(self.patient.as_str())
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn membership_by_the_compartment_parameters() {
        let registry = SearchParamRegistry::r4().unwrap();
        let compartment = Compartment::patient("p1");
        let report = ResourceType::parse("DiagnosticReport").unwrap();
        let patient = ResourceType::parse("Patient").unwrap();
        let practitioner = ResourceType::parse("Practitioner").unwrap();
        assert_eq!(Compartment::params(report), ["subject"]);
        assert!(Compartment::params(practitioner).is_empty());
        let own =
            json!({"resourceType": "DiagnosticReport", "subject": {"reference": "Patient/p1"}});
        let other =
            json!({"resourceType": "DiagnosticReport", "subject": {"reference": "Patient/p2"}});
        // `performer` is not a compartment parameter of DiagnosticReport.
        let performer =
            json!({"resourceType": "DiagnosticReport", "performer": [{"reference": "Patient/p1"}]});
        assert!(compartment.holds(&own, &registry, report, "r1"));
        assert!(!compartment.holds(&other, &registry, report, "r2"));
        assert!(!compartment.holds(&performer, &registry, report, "r3"));
        let itself = json!({"resourceType": "Patient"});
        assert!(compartment.holds(&itself, &registry, patient, "p1"));
        assert!(!compartment.holds(&itself, &registry, patient, "p2"));
        let linked = json!({"resourceType": "Patient", "link": [{"other": {"reference": "Patient/p1"}, "type": "seealso"}]});
        assert!(compartment.holds(&linked, &registry, patient, "p3"));
        let named = json!({"resourceType": "Practitioner"});
        assert!(!compartment.holds(&named, &registry, practitioner, "p1"));
    }
}
