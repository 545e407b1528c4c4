//! `ResourceType`: the name of a concrete FHIR R4 resource type.

use std::fmt;

use crate::id::IdError;

/// Every concrete resource type of FHIR R4 (4.0.1), sorted; taken from the official `fhir.schema.json`.
pub const ALL_RESOURCE_TYPES: [&str; 146] = [
    "Account",
    "ActivityDefinition",
    "AdverseEvent",
    "AllergyIntolerance",
    "Appointment",
    "AppointmentResponse",
    "AuditEvent",
    "Basic",
    "Binary",
    "BiologicallyDerivedProduct",
    "BodyStructure",
    "Bundle",
    "CapabilityStatement",
    "CarePlan",
    "CareTeam",
    "CatalogEntry",
    "ChargeItem",
    "ChargeItemDefinition",
    "Claim",
    "ClaimResponse",
    "ClinicalImpression",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "CompartmentDefinition",
    "Composition",
    "ConceptMap",
    "Condition",
    "Consent",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "DetectedIssue",
    "Device",
    "DeviceDefinition",
    "DeviceMetric",
    "DeviceRequest",
    "DeviceUseStatement",
    "DiagnosticReport",
    "DocumentManifest",
    "DocumentReference",
    "EffectEvidenceSynthesis",
    "Encounter",
    "Endpoint",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "EpisodeOfCare",
    "EventDefinition",
    "Evidence",
    "EvidenceVariable",
    "ExampleScenario",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Flag",
    "Goal",
    "GraphDefinition",
    "Group",
    "GuidanceResponse",
    "HealthcareService",
    "ImagingStudy",
    "Immunization",
    "ImmunizationEvaluation",
    "ImmunizationRecommendation",
    "ImplementationGuide",
    "InsurancePlan",
    "Invoice",
    "Library",
    "Linkage",
    "List",
    "Location",
    "Measure",
    "MeasureReport",
    "Media",
    "Medication",
    "MedicationAdministration",
    "MedicationDispense",
    "MedicationKnowledge",
    "MedicationRequest",
    "MedicationStatement",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "MessageDefinition",
    "MessageHeader",
    "MolecularSequence",
    "NamingSystem",
    "NutritionOrder",
    "Observation",
    "ObservationDefinition",
    "OperationDefinition",
    "OperationOutcome",
    "Organization",
    "OrganizationAffiliation",
    "Parameters",
    "Patient",
    "PaymentNotice",
    "PaymentReconciliation",
    "Person",
    "PlanDefinition",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "RelatedPerson",
    "RequestGroup",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "ResearchStudy",
    "ResearchSubject",
    "RiskAssessment",
    "RiskEvidenceSynthesis",
    "Schedule",
    "SearchParameter",
    "ServiceRequest",
    "Slot",
    "Specimen",
    "SpecimenDefinition",
    "StructureDefinition",
    "StructureMap",
    "Subscription",
    "Substance",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
    "SupplyDelivery",
    "SupplyRequest",
    "Task",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
    "ValueSet",
    "VerificationResult",
    "VisionPrescription",
];

/// A concrete FHIR R4 resource type name, such as `ImagingStudy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceType {
    /// Always one of [`ALL_RESOURCE_TYPES`].
    name: &'static str,
}

impl ResourceType {
    /// Parses a type name; the match is case-sensitive, as FHIR's is.
    ///
    /// # Errors
    /// When the name is not a concrete R4 resource type.
    pub fn parse(name: &str) -> Result<ResourceType, IdError> {
        match ALL_RESOURCE_TYPES.binary_search(&name) {
            Ok(index) => Ok(ResourceType { name: ALL_RESOURCE_TYPES[index] }),
            Err(_) => Err(IdError::UnknownResourceType(name.to_owned())),
        }
    }

    /// The type of a name known when the program is written, for constants such as
    /// `const PATIENT: ResourceType = ResourceType::known("Patient")`.
    ///
    /// # Panics
    /// When the name is not a concrete R4 resource type; evaluated in a constant, that fails the build.
    #[must_use]
    pub const fn known(name: &'static str) -> ResourceType {
        let mut index = 0;
        while index < ALL_RESOURCE_TYPES.len() {
            if same_text(ALL_RESOURCE_TYPES[index], name) {
                return ResourceType { name: ALL_RESOURCE_TYPES[index] };
            }
            index += 1;
        }
        panic!("not a concrete FHIR R4 resource type")
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        self.name
    }
}

/// String equality usable in a `const fn`.
const fn same_text(left: &str, right: &str) -> bool {
    let (left, right) = (left.as_bytes(), right.as_bytes());
    if left.len() != right.len() {
        return false;
    }
    let mut index = 0;
    while index < left.len() {
        if left[index] != right[index] {
            return false;
        }
        index += 1;
    }
    true
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_for_binary_search() {
        assert!(ALL_RESOURCE_TYPES.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn parses_known_and_rejects_unknown() {
        assert_eq!(ResourceType::parse("ImagingStudy").unwrap().as_str(), "ImagingStudy");
        assert!(ResourceType::parse("imagingstudy").is_err());
        assert!(ResourceType::parse("Resource").is_err());
    }

    #[test]
    fn known_names_are_the_parsed_types() {
        const STUDY: ResourceType = ResourceType::known("ImagingStudy");
        assert_eq!(STUDY, ResourceType::parse("ImagingStudy").unwrap());
        assert!(std::panic::catch_unwind(|| ResourceType::known("Imaging")).is_err());
    }
}
