//! The deterministic synthetic data set: Ontario hospitals, physicians, patients, and for each patient
//! imaging orders (ServiceRequest), studies (ImagingStudy) and reports (DiagnosticReport), some amended.
//!
//! Every resource carries a generator-local `id` (`pat-17`, `sr-40`, ...) and references use those ids;
//! the loader rewrites them to the ids the server assigns. The output depends on the seed and the patient
//! count only: the same inputs give byte-identical files.

use serde_json::{Value, json};

use crate::BenchError;
use crate::catalog::{
    CPSO_SYSTEM, DCM_SYSTEM, DICOM_UID_SYSTEM, FAMILY_NAMES, FINDINGS, GIVEN_NAMES, HCN_SYSTEM,
    HOSPITALS, Hospital, IDENTIFIER_TYPE_SYSTEM, LOINC_SYSTEM, PROCEDURES, Procedure,
    SERVICE_SECTION_SYSTEM, UPI_SYSTEM, modality_details,
};
use crate::rng::Rng;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenerateConfig {
    pub patients: u64,
    pub seed: u64,
}

/// The files of a data set, in loading order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataFile {
    Organization,
    Practitioner,
    Patient,
    ServiceRequest,
    ImagingStudy,
    DiagnosticReport,
    /// Later versions of some reports (`meta.versionId` 2 or 3), applied as updates after the reports.
    DiagnosticReportAmendment,
}

impl DataFile {
    pub const ALL: [DataFile; 7] = [
        DataFile::Organization,
        DataFile::Practitioner,
        DataFile::Patient,
        DataFile::ServiceRequest,
        DataFile::ImagingStudy,
        DataFile::DiagnosticReport,
        DataFile::DiagnosticReportAmendment,
    ];

    #[must_use]
    pub fn file_name(self) -> &'static str {
        match self {
            DataFile::Organization => "Organization.ndjson",
            DataFile::Practitioner => "Practitioner.ndjson",
            DataFile::Patient => "Patient.ndjson",
            DataFile::ServiceRequest => "ServiceRequest.ndjson",
            DataFile::ImagingStudy => "ImagingStudy.ndjson",
            DataFile::DiagnosticReport => "DiagnosticReport.ndjson",
            DataFile::DiagnosticReportAmendment => "DiagnosticReport.amendments.ndjson",
        }
    }

    #[must_use]
    pub fn resource_type(self) -> &'static str {
        match self {
            DataFile::Organization => "Organization",
            DataFile::Practitioner => "Practitioner",
            DataFile::Patient => "Patient",
            DataFile::ServiceRequest => "ServiceRequest",
            DataFile::ImagingStudy => "ImagingStudy",
            DataFile::DiagnosticReport | DataFile::DiagnosticReportAmendment => "DiagnosticReport",
        }
    }
}

/// Where generated resources go, one call per resource, in file order.
pub trait ResourceSink {
    /// # Errors
    /// When the resource cannot be written.
    fn emit(&mut self, file: DataFile, resource: &Value) -> Result<(), BenchError>;
}

/// Generates the whole data set into `sink`.
///
/// # Errors
/// When the sink fails.
pub fn generate(config: GenerateConfig, sink: &mut dyn ResourceSink) -> Result<(), BenchError> {
    let mut rng = Rng::new(config.seed);
    for (index, hospital) in HOSPITALS.iter().enumerate() {
        sink.emit(DataFile::Organization, &organization(index, hospital))?;
    }
    let n_practitioners = (config.patients / 40).clamp(5, 50_000);
    for index in 0..n_practitioners {
        sink.emit(DataFile::Practitioner, &practitioner(index, &mut rng))?;
    }
    let mut order_index = 0;
    for patient_index in 0..config.patients {
        let hospital_index = rng.below(HOSPITALS.len() as u64) as usize;
        let patient = PatientRef { index: patient_index, hospital_index };
        sink.emit(DataFile::Patient, &patient_resource(patient, &mut rng))?;
        for _ in 0..rng.between(1, 3) {
            let requester = rng.below(n_practitioners);
            let interpreter = rng.below(n_practitioners);
            let order = Order::draw(order_index, patient, requester, &mut rng);
            order_index += 1;
            sink.emit(DataFile::ServiceRequest, &order.service_request())?;
            sink.emit(DataFile::ImagingStudy, &order.imaging_study(&mut rng))?;
            for report in order.report_versions(interpreter, &mut rng) {
                let file = match report["meta"]["versionId"].as_str() {
                    Some("1") => DataFile::DiagnosticReport,
                    _ => DataFile::DiagnosticReportAmendment,
                };
                sink.emit(file, &report)?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct PatientRef {
    index: u64,
    hospital_index: usize,
}

impl PatientRef {
    fn reference(self) -> String {
        format!("Patient/pat-{}", self.index)
    }

    fn hospital(self) -> &'static Hospital {
        &HOSPITALS[self.hospital_index]
    }
}

fn identifier_type(code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": IDENTIFIER_TYPE_SYSTEM, "code": code, "display": display }] })
}

fn organization(index: usize, hospital: &Hospital) -> Value {
    json!({
        "resourceType": "Organization",
        "id": format!("org-{index}"),
        "identifier": [{
            "type": identifier_type("RRI", "Regional registry ID"),
            "system": UPI_SYSTEM,
            "value": format!("{}", 41_000_000 + index * 1_337),
        }],
        "active": true,
        "name": hospital.name,
        "address": [{ "city": hospital.city, "state": "ON", "country": "CA" }],
    })
}

fn practitioner(index: u64, rng: &mut Rng) -> Value {
    // A permutation of 10000..99999, so licence numbers look scattered yet never repeat.
    let licence = 10_000 + (index * 7_919) % 89_999;
    json!({
        "resourceType": "Practitioner",
        "id": format!("prac-{index}"),
        "identifier": [{
            "type": identifier_type("LN", "License number"),
            "system": CPSO_SYSTEM,
            "value": licence.to_string(),
        }],
        "active": true,
        "name": [{ "family": rng.pick(FAMILY_NAMES), "given": [rng.pick(GIVEN_NAMES)], "prefix": ["Dr."] }],
    })
}

fn patient_resource(patient: PatientRef, rng: &mut Rng) -> Value {
    let hospital = patient.hospital();
    // Multipliers coprime with the moduli make these bijections: MRNs and HCNs never repeat.
    let mrn = format!("{:08}", (patient.index * 48_271 + 12_345) % 100_000_000);
    let hcn_base = 100_000_000 + (patient.index * 7_368_787) % 900_000_000;
    let hcn = format!("{hcn_base}{}", luhn_check_digit(hcn_base));
    let gender = match rng.below(100) {
        0..48 => "female",
        48..96 => "male",
        96..98 => "other",
        _ => "unknown",
    };
    let mut given = vec![rng.pick(GIVEN_NAMES).to_owned()];
    if rng.percent(30) {
        given.push(rng.pick(GIVEN_NAMES).to_owned());
    }
    let birth_date = format_date(days_from_civil(1930, 1, 1) + rng.below(34_000) as i64);
    json!({
        "resourceType": "Patient",
        "id": format!("pat-{}", patient.index),
        "identifier": [
            {
                "type": identifier_type("MR", "Medical record number"),
                "system": format!("https://fhir.{}.example/mrn", hospital.slug),
                "value": mrn,
                "assigner": { "display": hospital.name },
            },
            {
                "type": identifier_type("JHN", "Jurisdictional health number (Canada)"),
                "system": HCN_SYSTEM,
                "value": hcn,
            },
        ],
        "active": true,
        "name": [{ "use": "official", "family": rng.pick(FAMILY_NAMES), "given": given }],
        "gender": gender,
        "birthDate": birth_date,
        "managingOrganization": { "reference": format!("Organization/org-{}", patient.hospital_index) },
    })
}

/// The Luhn check digit that Ontario health card numbers end with.
fn luhn_check_digit(number: u64) -> u64 {
    let mut sum = 0;
    let mut rest = number;
    let mut double = true;
    while rest > 0 {
        let mut digit = rest % 10;
        if double {
            digit *= 2;
            if digit > 9 {
                digit -= 9;
            }
        }
        sum += digit;
        double = !double;
        rest /= 10;
    }
    (10 - sum % 10) % 10
}

/// One imaging order and what it leads to: a study and a report.
#[derive(Debug)]
struct Order {
    index: u64,
    patient: PatientRef,
    requester: u64,
    procedure: &'static Procedure,
    /// Minutes since the Unix epoch, local Ontario time (written with a fixed -05:00 offset).
    started_minutes: i64,
    accession: String,
}

impl Order {
    fn draw(index: u64, patient: PatientRef, requester: u64, rng: &mut Rng) -> Order {
        let first_day = days_from_civil(2010, 1, 1);
        let n_days = (days_from_civil(2026, 1, 1) - first_day) as u64;
        let day = first_day + rng.below(n_days) as i64;
        let started_minutes = day * 1_440 + rng.between(7 * 60, 22 * 60) as i64;
        Order {
            index,
            patient,
            requester,
            procedure: rng.pick(PROCEDURES),
            started_minutes,
            accession: format!("A{:010}", (index * 2_654_435_761 + 97) % 10_000_000_000),
        }
    }

    fn accession_identifier(&self) -> Value {
        json!({
            "type": identifier_type("ACSN", "Accession ID"),
            "system": format!("https://fhir.{}.example/accession", self.patient.hospital().slug),
            "value": self.accession,
        })
    }

    fn procedure_code(&self) -> Value {
        json!({
            "coding": [{
                "system": format!("https://fhir.{}.example/procedure-code", self.patient.hospital().slug),
                "code": self.procedure.code,
                "display": self.procedure.display,
            }],
            "text": self.procedure.display,
        })
    }

    fn service_request(&self) -> Value {
        let hospital = self.patient.hospital();
        let status = if self.index.is_multiple_of(10) { "active" } else { "completed" };
        json!({
            "resourceType": "ServiceRequest",
            "id": format!("sr-{}", self.index),
            "identifier": [
                self.accession_identifier(),
                {
                    "type": identifier_type("PLAC", "Placer Identifier"),
                    "system": format!("https://fhir.{}.example/placer", hospital.slug),
                    "value": format!("P{}", self.index),
                },
            ],
            "status": status,
            "intent": "order",
            "code": self.procedure_code(),
            "subject": { "reference": self.patient.reference() },
            "authoredOn": format_date_time(self.started_minutes - 3 * 1_440),
            "requester": { "reference": format!("Practitioner/prac-{}", self.requester) },
        })
    }

    fn imaging_study(&self, rng: &mut Rng) -> Value {
        let study_uid = format!("2.25.{}", rng.next_u128());
        let mut series = Vec::new();
        let mut n_instances = 0;
        for modality in self.procedure.modalities {
            let (display, sop_class) = modality_details(modality);
            for _ in 0..rng.between(1, 2) {
                let series_number = series.len() + 1;
                let series_uid = format!("{study_uid}.{series_number}");
                let instances: Vec<Value> = (1..=rng.between(2, 6))
                    .map(|number| {
                        json!({
                            "uid": format!("{series_uid}.{number}"),
                            "sopClass": { "system": "urn:ietf:rfc:3986", "code": format!("urn:oid:{sop_class}") },
                            "number": number,
                        })
                    })
                    .collect();
                n_instances += instances.len();
                series.push(json!({
                    "uid": series_uid,
                    "number": series_number,
                    "modality": { "system": DCM_SYSTEM, "code": modality, "display": display },
                    "numberOfInstances": instances.len(),
                    "instance": instances,
                }));
            }
        }
        let modalities: Vec<Value> = self
            .procedure
            .modalities
            .iter()
            .map(|modality| json!({ "system": DCM_SYSTEM, "code": modality }))
            .collect();
        json!({
            "resourceType": "ImagingStudy",
            "id": format!("is-{}", self.index),
            "identifier": [
                { "system": DICOM_UID_SYSTEM, "value": format!("urn:oid:{study_uid}") },
                self.accession_identifier(),
            ],
            "status": "available",
            "modality": modalities,
            "subject": { "reference": self.patient.reference() },
            "started": format_date_time(self.started_minutes),
            "basedOn": [{ "reference": format!("ServiceRequest/sr-{}", self.index) }],
            "referrer": { "reference": format!("Practitioner/prac-{}", self.requester) },
            "numberOfSeries": series.len(),
            "numberOfInstances": n_instances,
            "procedureCode": [self.procedure_code()],
            "series": series,
        })
    }

    /// The report's versions: one for most reports, two (preliminary, final) or three (preliminary,
    /// final, amended) for some.
    fn report_versions(&self, interpreter: u64, rng: &mut Rng) -> Vec<Value> {
        let statuses: &[&str] = match rng.below(100) {
            0..80 => &["final"],
            80..85 => &["preliminary"],
            85..95 => &["preliminary", "final"],
            _ => &["preliminary", "final", "amended"],
        };
        let mut issued_minutes = self.started_minutes + rng.between(30, 3 * 1_440) as i64;
        let mut findings = rng.pick(FINDINGS).to_string();
        let mut versions = Vec::new();
        for (version_index, status) in statuses.iter().enumerate() {
            if version_index > 0 {
                issued_minutes += rng.between(60, 3 * 1_440) as i64;
                findings = format!("{findings} Addendum {version_index}: {}", rng.pick(FINDINGS));
            }
            versions.push(self.report(
                interpreter,
                version_index + 1,
                status,
                issued_minutes,
                &findings,
            ));
        }
        versions
    }

    fn report(
        &self,
        interpreter: u64,
        version: usize,
        status: &str,
        issued_minutes: i64,
        findings: &str,
    ) -> Value {
        let hospital = self.patient.hospital();
        let text = format!(
            "{}\nAccession {}\nStatus: {status}\n\nFindings: {findings}\n",
            self.procedure.display, self.accession
        );
        json!({
            "resourceType": "DiagnosticReport",
            "id": format!("dr-{}", self.index),
            "meta": { "versionId": version.to_string() },
            "identifier": [{
                "type": identifier_type("FILL", "Filler Identifier"),
                "system": format!("https://fhir.{}.example/report", hospital.slug),
                "value": format!("R{}", self.accession),
            }],
            "basedOn": [{ "reference": format!("ServiceRequest/sr-{}", self.index) }],
            "status": status,
            "category": [{ "coding": [{ "system": SERVICE_SECTION_SYSTEM, "code": "RAD", "display": "Radiology" }] }],
            "code": {
                "coding": [
                    { "system": LOINC_SYSTEM, "code": "18748-4", "display": "Diagnostic imaging study" },
                    self.procedure_code()["coding"][0].clone(),
                ],
            },
            "subject": { "reference": self.patient.reference() },
            "effectiveDateTime": format_date_time(self.started_minutes),
            "issued": format_date_time(issued_minutes),
            "resultsInterpreter": [{ "reference": format!("Practitioner/prac-{interpreter}") }],
            "imagingStudy": [{ "reference": format!("ImagingStudy/is-{}", self.index) }],
            "conclusion": findings,
            "presentedForm": [{
                "contentType": "text/plain",
                "language": "en-CA",
                "data": base64(text.as_bytes()),
                "title": format!("{} report", self.procedure.code),
            }],
        })
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn format_date(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

fn format_date_time(minutes: i64) -> String {
    let date = format_date(minutes.div_euclid(1_440));
    let minute_of_day = minutes.rem_euclid(1_440);
    format!("{date}T{:02}:{:02}:00-05:00", minute_of_day / 60, minute_of_day % 60)
}

/// Standard base64 with padding (RFC 4648 section 4), for `Attachment.data`.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |group, (index, byte)| group | u32::from(*byte) << (16 - 8 * index));
        for position in 0..4 {
            if position <= chunk.len() {
                text.push(char::from(ALPHABET[(group >> (18 - 6 * position)) as usize & 63]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests;
