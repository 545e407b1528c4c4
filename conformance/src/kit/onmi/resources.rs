//! Groups: read and the guide's searches (§2.3) of each type, every match re-checked against the parameters
//! and validated against its Ontario profile, with the includes viewers ask for.

use super::must_support::coverage;
use super::search::{SearchCase, read_case, run_case};
use crate::context::{Ctx, Mode};
use crate::model::{GroupDef, Outcome, TestDef, Verdict, body};

/// A read test of a type: the fixture, or in read-only mode the first match of a search.
macro_rules! read_test {
    ($name:ident, $ty:literal, $fixture:literal, $param:literal, $value:literal) => {
        async fn $name(ctx: &mut Ctx) -> Outcome {
            read_case(ctx, $ty, $fixture, ($param, $value)).await
        }
    };
}

/// A search test of a [`SearchCase`].
macro_rules! search_test {
    ($name:ident, $ty:literal, [$(($param:literal, $value:literal)),*], expect [$($expect:literal),*], exclude [$($exclude:literal),*], include $include:expr) => {
        async fn $name(ctx: &mut Ctx) -> Outcome {
            const CASE: SearchCase = SearchCase {
                resource: $ty,
                params: &[$(($param, $value)),*],
                expect: &[$($expect),*],
                exclude: &[$($exclude),*],
                include: $include,
            };
            run_case(ctx, &CASE).await
        }
    };
}

/// The must-support coverage test of a type, over what its group's tests returned.
macro_rules! must_support_test {
    ($name:ident, $ty:literal) => {
        async fn $name(ctx: &mut Ctx) -> Outcome {
            coverage(ctx, $ty).await
        }
    };
}

const MUST_SUPPORT: &str = "Guide §2.6 and the US Core kit's must-support tests: every element the Ontario MI profile marks mustSupport (slices recognised by their discriminators) is in at least one resource the group's reads and searches returned; read-only, a missing one skips with the list.";

const READ: &str =
    "R4 http.html#read, in FHIR JSON; the resource conforms to its Ontario MI profile.";
const SEARCH: &str = "Guide §2.3 (patient.identifier as system|value is mandatory); every match is re-checked against the parameters (R4 search.html) and validated against its Ontario MI profile.";

read_test!(order_read, "ServiceRequest", "order", "patient.identifier", "{patient}");
search_test!(order_by_patient, "ServiceRequest", [("patient.identifier", "{patient}")], expect ["order", "decoy-order"], exclude [], include None);
search_test!(order_by_identifier, "ServiceRequest", [("patient.identifier", "{patient}"), ("identifier", "{accession}")], expect ["order"], exclude ["decoy-order"], include None);
search_test!(order_by_status, "ServiceRequest", [("patient.identifier", "{patient}"), ("status", "completed")], expect ["order"], exclude ["decoy-order"], include None);
search_test!(order_by_code, "ServiceRequest", [("patient.identifier", "{patient}"), ("code", "{code}")], expect ["order", "decoy-order"], exclude [], include None);
search_test!(order_by_occurrence, "ServiceRequest", [("patient.identifier", "{patient}"), ("occurrence", "ge2026-03-02T09:00:00-05:00")], expect ["order"], exclude ["decoy-order"], include None);
search_test!(order_by_authored, "ServiceRequest", [("patient.identifier", "{patient}"), ("authored", "lt2026-03-01")], expect ["decoy-order"], exclude ["order"], include None);
search_test!(order_include, "ServiceRequest", [("patient.identifier", "{patient}"), ("_include", "ServiceRequest:patient")], expect ["order"], exclude [], include Some("Patient"));

search_test!(order_by_demographics, "ServiceRequest", [("patient.identifier", "{patient}"), ("patient.gender", "female"), ("patient.birthDate", "1970-04-01")], expect ["order", "decoy-order"], exclude [], include None);
search_test!(order_by_status_not, "ServiceRequest", [("patient.identifier", "{patient}"), ("status:not", "completed")], expect ["decoy-order"], exclude ["order"], include None);
search_test!(order_by_placer, "ServiceRequest", [("patient.identifier", "{patient}"), ("identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|PLAC|{placer}")], expect ["order"], exclude ["decoy-order"], include None);
search_test!(order_last_updated_range, "ServiceRequest", [("patient.identifier", "{patient}"), ("_lastUpdated", "ge2020-01-01"), ("_lastUpdated", "lt2200-01-01")], expect ["order", "decoy-order"], exclude [], include None);
const ORDERS_BEFORE_2020: SearchCase = SearchCase {
    resource: "ServiceRequest",
    params: &[("patient.identifier", "{patient}"), ("_lastUpdated", "lt2020-01-01")],
    expect: &[],
    exclude: &["order", "decoy-order"],
    include: None,
};

/// `_lastUpdated` in a range that holds the orders finds them, and before it none.
async fn order_last_updated(ctx: &mut Ctx) -> Outcome {
    order_last_updated_range(ctx).await?;
    none_expected(ctx, &ORDERS_BEFORE_2020).await
}
search_test!(order_by_category, "ServiceRequest", [("patient.identifier", "{patient}"), ("category", "http://dicom.nema.org/resources/ontology/DCM|CT")], expect ["order"], exclude ["decoy-order"], include None);

read_test!(study_read, "ImagingStudy", "study", "patient.identifier", "{patient}");
search_test!(study_by_patient, "ImagingStudy", [("patient.identifier", "{patient}")], expect ["study", "study2"], exclude [], include None);
search_test!(study_by_identifier, "ImagingStudy", [("patient.identifier", "{patient}"), ("identifier", "{accession}")], expect ["study"], exclude ["study2"], include None);
search_test!(study_started_from, "ImagingStudy", [("patient.identifier", "{patient}"), ("started", "ge2026-03-02T09:12:00-05:00")], expect ["study"], exclude ["study2"], include None);
search_test!(study_started_range, "ImagingStudy", [("patient.identifier", "{patient}"), ("started", "ge2026-02-01"), ("started", "lt2026-03-01")], expect ["study2"], exclude ["study"], include None);
search_test!(study_by_modality, "ImagingStudy", [("patient.identifier", "{patient}"), ("modality", "http://dicom.nema.org/resources/ontology/DCM|MR")], expect ["study2"], exclude ["study"], include None);
search_test!(study_by_order_code, "ImagingStudy", [("patient.identifier", "{patient}"), ("basedon:ServiceRequest.code", "{code}")], expect ["study", "study2"], exclude [], include None);
search_test!(study_include, "ImagingStudy", [("patient.identifier", "{patient}"), ("_include", "ImagingStudy:basedon")], expect ["study"], exclude [], include Some("ServiceRequest"));

search_test!(study_without_referrer, "ImagingStudy", [("patient.identifier", "{patient}"), ("referrer:missing", "true")], expect ["study2"], exclude ["study"], include None);
search_test!(study_by_profile, "ImagingStudy", [("patient.identifier", "{patient}"), ("_profile:below", "http://ontariohealth.ca/fhir/mi/StructureDefinition/")], expect ["study", "study2"], exclude [], include None);
search_test!(study_by_order_code_category, "ImagingStudy", [("patient.identifier", "{patient}"), ("basedOn:ServiceRequest.code-category", "{code}$http://dicom.nema.org/resources/ontology/DCM|CT")], expect ["study"], exclude ["study2"], include None);

read_test!(report_read, "DiagnosticReport", "report", "patient.identifier", "{patient}");
search_test!(report_by_patient, "DiagnosticReport", [("patient.identifier", "{patient}")], expect ["report"], exclude [], include None);
search_test!(report_by_identifier, "DiagnosticReport", [("patient.identifier", "{patient}"), ("identifier", "{accession}")], expect ["report"], exclude [], include None);
search_test!(report_by_status, "DiagnosticReport", [("patient.identifier", "{patient}"), ("status", "final,amended,corrected")], expect ["report"], exclude [], include None);
search_test!(report_by_code, "DiagnosticReport", [("patient.identifier", "{patient}"), ("code", "{code}")], expect ["report"], exclude [], include None);
search_test!(report_by_issued, "DiagnosticReport", [("patient.identifier", "{patient}"), ("issued", "ge2026-03-02")], expect ["report"], exclude [], include None);
search_test!(report_by_order_code, "DiagnosticReport", [("patient.identifier", "{patient}"), ("based-on:ServiceRequest.code", "{code}")], expect ["report"], exclude [], include None);
search_test!(report_include, "DiagnosticReport", [("patient.identifier", "{patient}"), ("_include", "DiagnosticReport:based-on")], expect ["report"], exclude [], include Some("ServiceRequest"));

search_test!(report_by_placer, "DiagnosticReport", [("patient.identifier", "{patient}"), ("identifier:of-type", "http://terminology.hl7.org/CodeSystem/v2-0203|PLAC|{placer}")], expect ["report"], exclude ["addendum"], include None);
search_test!(report_by_order_category, "DiagnosticReport", [("patient.identifier", "{patient}"), ("basedOn:ServiceRequest.category", "http://dicom.nema.org/resources/ontology/DCM|CT")], expect ["report"], exclude [], include None);

search_test!(index_by_patient, "DocumentReference", [("patient.identifier", "{patient}")], expect [], exclude [], include None);
search_test!(index_by_category, "DocumentReference", [("patient.identifier", "{patient}"), ("category", "http://ontariohealth.ca/fhir/CodeSystem/ca-on-mi-index-entry-type|mi-report")], expect [], exclude [], include None);
search_test!(index_by_demographics, "DocumentReference", [("patient.identifier", "{patient}"), ("patient.gender", "female"), ("patient.birthDate", "1970-04-01")], expect [], exclude [], include None);
search_test!(index_by_period, "DocumentReference", [("patient.identifier", "{patient}"), ("period", "lt2026-03-01")], expect ["decoy-order", "study2"], exclude ["order", "study", "report", "addendum"], include None);
search_test!(index_by_type, "DocumentReference", [("patient.identifier", "{patient}"), ("type", "{code}")], expect ["order", "study", "report", "decoy-order", "study2"], exclude [], include None);
search_test!(index_by_event, "DocumentReference", [("patient.identifier", "{patient}"), ("event", "http://dicom.nema.org/resources/ontology/DCM|MR")], expect ["decoy-order", "study2"], exclude ["order", "study"], include None);
search_test!(index_open_ended, "DocumentReference", [("patient.identifier", "{patient}"), ("period", "ge2100-01-01")], expect ["order", "study", "report", "decoy-order", "study2"], exclude [], include None);
search_test!(index_by_date, "DocumentReference", [("patient.identifier", "{patient}"), ("date", "ge2020-01-01")], expect [], exclude [], include None);

/// `_revinclude=DocumentReference:related` of the reports: their index entries (omitted unless declared).
async fn report_revinclude(ctx: &mut Ctx) -> Outcome {
    let cs = super::support::capabilities(ctx).await?;
    let declared = super::support::resource_capability(&cs, "DiagnosticReport")
        .and_then(|resource| resource["searchRevInclude"].as_array())
        .is_some_and(|list| {
            list.iter().any(|value| value == "DocumentReference:related" || value == "*")
        });
    if !declared {
        return Err(crate::model::Stop::omit(
            "DiagnosticReport does not declare _revinclude=DocumentReference:related",
        ));
    }
    search_case_revinclude(ctx).await
}
search_test!(search_case_revinclude, "DiagnosticReport", [("patient.identifier", "{patient}"), ("_revinclude", "DocumentReference:related")], expect ["report"], exclude [], include Some("DocumentReference"));

read_test!(patient_read, "Patient", "patient", "identifier", "{patient}");
search_test!(patient_by_identifier, "Patient", [("identifier", "{patient}")], expect ["patient"], exclude [], include None);
search_test!(patient_by_demographics, "Patient", [("identifier", "{patient}"), ("gender", "female"), ("birthdate", "1970-04-01")], expect ["patient"], exclude [], include None);
search_test!(patient_by_family, "Patient", [("identifier", "{patient}"), ("family", "DOE")], expect ["patient"], exclude [], include None);
search_test!(patient_by_family_exact_case, "Patient", [("identifier", "{patient}"), ("family:exact", "Doe")], expect ["patient"], exclude [], include None);
const PATIENTS_EXACTLY_DO: SearchCase = SearchCase {
    resource: "Patient",
    params: &[("identifier", "{patient}"), ("family:exact", "Do")],
    expect: &[],
    exclude: &["patient"],
    include: None,
};
const PATIENTS_EXACTLY_DOE_UPPER: SearchCase = SearchCase {
    resource: "Patient",
    params: &[("identifier", "{patient}"), ("family:exact", "DOE")],
    expect: &[],
    exclude: &["patient"],
    include: None,
};

/// `family:exact` finds the whole name in its case, and neither a prefix of it nor another case.
async fn patient_by_family_exact(ctx: &mut Ctx) -> Outcome {
    patient_by_family_exact_case(ctx).await?;
    none_expected(ctx, &PATIENTS_EXACTLY_DO).await?;
    none_expected(ctx, &PATIENTS_EXACTLY_DOE_UPPER).await
}

/// A case that should match none of the fixtures: read-only, where nothing matching skips, that is a pass.
async fn none_expected(ctx: &mut Ctx, case: &SearchCase) -> Outcome {
    match run_case(ctx, case).await {
        Err(stop) if ctx.mode == Mode::ReadOnly && stop.verdict == Verdict::Skip => Ok(()),
        outcome => outcome,
    }
}
search_test!(patient_by_name_contains, "Patient", [("identifier", "{patient}"), ("name:contains", "ANE")], expect ["patient"], exclude [], include None);

read_test!(practitioner_read, "Practitioner", "practitioner", "identifier", "{licence}");
search_test!(practitioner_by_identifier, "Practitioner", [("identifier", "{licence}")], expect ["practitioner"], exclude [], include None);
read_test!(organization_read, "Organization", "organization", "identifier", "{upi}");
search_test!(organization_by_identifier, "Organization", [("identifier", "{upi}")], expect ["organization"], exclude [], include None);

must_support_test!(order_must_support, "ServiceRequest");
must_support_test!(study_must_support, "ImagingStudy");
must_support_test!(report_must_support, "DiagnosticReport");
must_support_test!(index_must_support, "DocumentReference");
must_support_test!(patient_must_support, "Patient");
must_support_test!(practitioner_must_support, "Practitioner");
must_support_test!(organization_must_support, "Organization");

pub(crate) fn groups() -> Vec<GroupDef> {
    vec![
        orders(),
        studies(),
        reports(),
        index_entries(),
        patients(),
        practitioners(),
        organizations(),
    ]
}

fn orders() -> GroupDef {
    GroupDef {
        id: "service-request",
        title: "ServiceRequest (Search MI Order)",
        description: "Read and the guide's order searches.",
        tests: vec![
            TestDef::new("read", "Read an order", READ, body!(order_read)),
            TestDef::new(
                "patient",
                "Orders of a patient (patient.identifier)",
                SEARCH,
                body!(order_by_patient),
            ),
            TestDef::new(
                "identifier",
                "+ identifier (accession, system|value)",
                SEARCH,
                body!(order_by_identifier),
            ),
            TestDef::new("status", "+ status", SEARCH, body!(order_by_status)),
            TestDef::new(
                "code",
                "+ code (local procedure code, system|code)",
                SEARCH,
                body!(order_by_code),
            ),
            TestDef::new(
                "occurrence",
                "+ occurrence=ge (the boundary included)",
                SEARCH,
                body!(order_by_occurrence),
            ),
            TestDef::new("authored", "+ authored=lt", SEARCH, body!(order_by_authored)),
            TestDef::new(
                "include",
                "+ _include=ServiceRequest:patient",
                SEARCH,
                body!(order_include),
            ),
            TestDef::new(
                "demographics",
                "+ patient.gender and patient.birthDate (the guide's chains)",
                SEARCH,
                body!(order_by_demographics),
            ),
            TestDef::new(
                "category",
                "+ category (modality, system|code)",
                SEARCH,
                body!(order_by_category),
            ),
            TestDef::new(
                "status-not",
                "+ status:not (R4's reversed token)",
                SEARCH,
                body!(order_by_status_not),
            ),
            TestDef::new(
                "placer",
                "+ identifier:of-type (the placer order number, PLAC)",
                SEARCH,
                body!(order_by_placer),
            ),
            TestDef::new(
                "last-updated",
                "+ _lastUpdated=ge…&_lastUpdated=lt… (a range), and lt a date before them",
                SEARCH,
                body!(order_last_updated),
            ),
            TestDef::new(
                "must-support",
                "Every must-support element is in some returned ServiceRequest",
                MUST_SUPPORT,
                body!(order_must_support),
            ),
        ],
    }
}

fn studies() -> GroupDef {
    GroupDef {
        id: "imaging-study",
        title: "ImagingStudy (Search ImagingStudy)",
        description: "Read and the guide's study searches.",
        tests: vec![
            TestDef::new("read", "Read a study", READ, body!(study_read)),
            TestDef::new(
                "patient",
                "Studies of a patient (patient.identifier)",
                SEARCH,
                body!(study_by_patient),
            ),
            TestDef::new(
                "identifier",
                "+ identifier (accession)",
                SEARCH,
                body!(study_by_identifier),
            ),
            TestDef::new(
                "started",
                "+ started=ge (the boundary included)",
                SEARCH,
                body!(study_started_from),
            ),
            TestDef::new(
                "started-range",
                "+ started=ge…&started=lt… (a range)",
                SEARCH,
                body!(study_started_range),
            ),
            TestDef::new("modality", "+ modality (system|code)", SEARCH, body!(study_by_modality)),
            TestDef::new(
                "order-code",
                "+ basedon:ServiceRequest.code (chained)",
                SEARCH,
                body!(study_by_order_code),
            ),
            TestDef::new(
                "include",
                "+ _include=ImagingStudy:basedon",
                SEARCH,
                body!(study_include),
            ),
            TestDef::new(
                "order-code-category",
                "+ basedOn:ServiceRequest.code-category (the guide's composite)",
                SEARCH,
                body!(study_by_order_code_category),
            ),
            TestDef::new(
                "referrer-missing",
                "+ referrer:missing=true",
                SEARCH,
                body!(study_without_referrer),
            ),
            TestDef::new(
                "profile",
                "+ _profile:below (the Ontario MI profiles, a uri prefix)",
                SEARCH,
                body!(study_by_profile),
            ),
            TestDef::new(
                "must-support",
                "Every must-support element is in some returned ImagingStudy",
                MUST_SUPPORT,
                body!(study_must_support),
            ),
        ],
    }
}

fn reports() -> GroupDef {
    GroupDef {
        id: "diagnostic-report",
        title: "DiagnosticReport (Search MI Report)",
        description: "Read and the guide's report searches.",
        tests: vec![
            TestDef::new("read", "Read a report", READ, body!(report_read)),
            TestDef::new(
                "patient",
                "Reports of a patient (patient.identifier)",
                SEARCH,
                body!(report_by_patient),
            ),
            TestDef::new(
                "identifier",
                "+ identifier (accession)",
                SEARCH,
                body!(report_by_identifier),
            ),
            TestDef::new("status", "+ status (several)", SEARCH, body!(report_by_status)),
            TestDef::new("code", "+ code", SEARCH, body!(report_by_code)),
            TestDef::new("issued", "+ issued=ge", SEARCH, body!(report_by_issued)),
            TestDef::new(
                "order-code",
                "+ based-on:ServiceRequest.code (chained)",
                SEARCH,
                body!(report_by_order_code),
            ),
            TestDef::new(
                "include",
                "+ _include=DiagnosticReport:based-on",
                SEARCH,
                body!(report_include),
            ),
            TestDef::new(
                "revinclude",
                "+ _revinclude=DocumentReference:related (the index entries)",
                "The reports' index entries come with them; omitted unless DiagnosticReport declares the revinclude.",
                body!(report_revinclude),
            ),
            TestDef::new(
                "order-category",
                "+ basedOn:ServiceRequest.category (the guide's spelling)",
                SEARCH,
                body!(report_by_order_category),
            ),
            TestDef::new(
                "placer",
                "+ identifier:of-type (the placer order number, PLAC)",
                SEARCH,
                body!(report_by_placer),
            ),
            TestDef::new(
                "must-support",
                "Every must-support element is in some returned DiagnosticReport",
                MUST_SUPPORT,
                body!(report_must_support),
            ),
        ],
    }
}

fn index_entries() -> GroupDef {
    GroupDef {
        id: "document-reference",
        title: "DocumentReference (Search DocumentReference)",
        description: "The guide's searches of the index entries.",
        tests: vec![
            TestDef::new(
                "patient",
                "Index entries of a patient (patient.identifier)",
                SEARCH,
                body!(index_by_patient),
            ),
            TestDef::new("category", "+ category (mi-report)", SEARCH, body!(index_by_category)),
            TestDef::new("date", "+ date=ge", SEARCH, body!(index_by_date)),
            TestDef::new(
                "demographics",
                "+ patient.gender and patient.birthDate",
                SEARCH,
                body!(index_by_demographics),
            ),
            TestDef::new(
                "period",
                "+ period=lt (the clinical start and end date)",
                SEARCH,
                body!(index_by_period),
            ),
            TestDef::new("type", "+ type (the procedure type)", SEARCH, body!(index_by_type)),
            TestDef::new(
                "event",
                "+ event (the clinical event: the modality, system|code)",
                SEARCH,
                body!(index_by_event),
            ),
            TestDef::new(
                "period-open",
                "+ period=ge a later date (a period without an end is open-ended)",
                "Guide §2 rule 26 (TU query rule 6): an empty start or end date is an open-ended range; R4 search.html#date: a Period without an end matches every later date.",
                body!(index_open_ended),
            ),
            TestDef::new(
                "must-support",
                "Every must-support element is in some returned DocumentReference",
                MUST_SUPPORT,
                body!(index_must_support),
            ),
        ],
    }
}

fn patients() -> GroupDef {
    GroupDef {
        id: "patient",
        title: "Patient",
        description: "Read and search by identifier and demographics.",
        tests: vec![
            TestDef::new("read", "Read a patient", READ, body!(patient_read)),
            TestDef::new(
                "identifier",
                "Patient?identifier (system|value)",
                SEARCH,
                body!(patient_by_identifier),
            ),
            TestDef::new(
                "demographics",
                "+ gender and birthdate",
                SEARCH,
                body!(patient_by_demographics),
            ),
            TestDef::new("family", "+ family (prefix, any case)", SEARCH, body!(patient_by_family)),
            TestDef::new(
                "family-exact",
                "+ family:exact (whole, case kept: not a prefix, not another case)",
                SEARCH,
                body!(patient_by_family_exact),
            ),
            TestDef::new(
                "name-contains",
                "+ name:contains (anywhere, any case)",
                SEARCH,
                body!(patient_by_name_contains),
            ),
            TestDef::new(
                "must-support",
                "Every must-support element is in some returned Patient",
                MUST_SUPPORT,
                body!(patient_must_support),
            ),
        ],
    }
}

fn practitioners() -> GroupDef {
    GroupDef {
        id: "practitioner",
        title: "Practitioner",
        description: "Read and search by the college licence.",
        tests: vec![
            TestDef::new("read", "Read a practitioner", READ, body!(practitioner_read)),
            TestDef::new(
                "identifier",
                "Practitioner?identifier (licence)",
                SEARCH,
                body!(practitioner_by_identifier),
            ),
            TestDef::new(
                "must-support",
                "Every must-support element is in some returned Practitioner",
                MUST_SUPPORT,
                body!(practitioner_must_support),
            ),
        ],
    }
}

fn organizations() -> GroupDef {
    GroupDef {
        id: "organization",
        title: "Organization",
        description: "Read and search by UPI.",
        tests: vec![
            TestDef::new("read", "Read an organization", READ, body!(organization_read)),
            TestDef::new(
                "identifier",
                "Organization?identifier (UPI)",
                SEARCH,
                body!(organization_by_identifier),
            ),
            TestDef::new(
                "must-support",
                "Every must-support element is in some returned Organization",
                MUST_SUPPORT,
                body!(organization_must_support),
            ),
        ],
    }
}
