//! Search by every parameter type, prefix and modifier, table-driven: each case is a query and the labels
//! (`identifier` `urn:test|label`) of the resources it must match, no more, no fewer.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    patient_parameters,
    code_tokens_have_their_binding_system,
    clinical_parameters,
    composite_parameters,
    numbers_are_points,
    chains_and_has,
    invalid_values_are_400,
    oversized_queries_are_400,
);

/// With validation off, so that text FHIR forbids (a NUL character) still reaches the index.
mod without_validation {
    use crate::backend_tests;

    backend_tests!(
        with cdr_interactions::EngineConfig {
            validation: cdr_interactions::ValidationMode::Off,
            ..crate::helpers::engine_config()
        };
        odd_input_is_never_a_500
    );

    use super::odd_input_is_never_a_500;
}

/// The labels of the `match` entries of a searchset, sorted.
pub(crate) fn labels(bundle: &Value) -> Vec<String> {
    let mut labels: Vec<String> = bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|entry| entry["search"]["mode"] == "match")
        .map(|entry| label_of(&entry["resource"]))
        .collect();
    labels.sort();
    labels
}

/// The `urn:test` identifier value of a resource.
pub(crate) fn label_of(resource: &Value) -> String {
    resource["identifier"]
        .as_array()
        .and_then(|identifiers| {
            identifiers.iter().find(|identifier| identifier["system"] == "urn:test")
        })
        .and_then(|identifier| identifier["value"].as_str())
        .unwrap_or("?")
        .to_owned()
}

async fn check(app: &TestApp, cases: &[(&str, &[&str])]) {
    for (query, expected) in cases {
        let bundle = app.search(query).await;
        assert_eq!(labels(&bundle), *expected, "{query}");
    }
}

/// Four patients whose names, birth dates, identifiers and meta exercise strings, tokens and dates.
pub(crate) async fn patients(app: &TestApp) -> Vec<String> {
    let bodies = [
        r#"{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"p1"},
            {"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},
             "system":"http://hospital.example/mrn","value":"MRN-1"}],
            "meta":{"tag":[{"system":"urn:tags","code":"vip"}],"profile":["http://example.org/profile"],
                    "security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]},
            "active":true,"name":[{"family":"Müller","given":["Anna"]}],"gender":"female","birthDate":"1970-01-15"}"#,
        r#"{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"p2"}],"active":false,
            "name":[{"family":"Muller","given":["Bob"]}],"gender":"male","birthDate":"1970-02"}"#,
        r#"{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"p3"}],
            "name":[{"family":"Smith-Jones","given":["Éve"]}],"gender":"other","birthDate":"1985"}"#,
        r#"{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"p4"}],
            "gender":"unknown","birthDate":"2000-12-31"}"#,
    ];
    let mut ids = Vec::new();
    for body in bodies {
        ids.push(app.create("Patient", body).await);
    }
    ids
}

async fn patient_parameters(app: &TestApp) {
    let ids = patients(app).await;
    let all: &[&str] = &["p1", "p2", "p3", "p4"];
    check(
        app,
        &[
            // string: normalized prefix, :exact, :contains, :missing
            ("Patient?name=muller", &["p1", "p2"]),
            ("Patient?name=MÜL", &["p1", "p2"]),
            ("Patient?name:exact=Müller", &["p1"]),
            ("Patient?name:exact=muller", &[]),
            ("Patient?name:contains=ITH", &["p3"]),
            ("Patient?family=smith-j", &["p3"]),
            ("Patient?given=eve", &["p3"]),
            ("Patient?name:missing=true", &["p4"]),
            ("Patient?name:missing=false", &["p1", "p2", "p3"]),
            ("Patient?name=zz", &[]),
            ("Patient?name=anna,bob", &["p1", "p2"]),
            ("Patient?name=muller&given=bob", &["p2"]),
            // token forms and modifiers
            ("Patient?gender=male", &["p2"]),
            ("Patient?gender=male,female", &["p1", "p2"]),
            ("Patient?gender:not=male", &["p1", "p3", "p4"]),
            ("Patient?identifier=urn:test|p1", &["p1"]),
            ("Patient?identifier=|p1", &[]),
            ("Patient?identifier=p1", &["p1"]),
            ("Patient?identifier=urn:test|", all),
            (
                "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN-1",
                &["p1"],
            ),
            (
                "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN-2",
                &[],
            ),
            ("Patient?active=true", &["p1"]),
            ("Patient?active:missing=true", &["p3", "p4"]),
            ("Patient?_tag=urn:tags|vip", &["p1"]),
            ("Patient?_profile=http://example.org/profile", &["p1"]),
            (
                "Patient?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
                &["p1"],
            ),
            // dates: precision, every prefix, time zones, AND by repetition
            ("Patient?birthdate=1970", &["p1", "p2"]),
            ("Patient?birthdate=1970-01", &["p1"]),
            ("Patient?birthdate=1970-01-15", &["p1"]),
            ("Patient?birthdate=1970-01-15T10:00:00Z", &[]),
            ("Patient?birthdate=ge1970-02-01", &["p2", "p3", "p4"]),
            ("Patient?birthdate=gt1970-02", &["p3", "p4"]),
            ("Patient?birthdate=lt1970-02", &["p1"]),
            ("Patient?birthdate=le1970-02", &["p1", "p2"]),
            ("Patient?birthdate=sa1970-12-31", &["p3", "p4"]),
            ("Patient?birthdate=eb1985", &["p1", "p2"]),
            ("Patient?birthdate=ne1970", &["p3", "p4"]),
            ("Patient?birthdate=ap2000-12-31", &["p4"]),
            ("Patient?birthdate=ge1970&birthdate=lt1971", &["p1", "p2"]),
            ("Patient?birthdate=eb2001-01-01T00:00:00Z", all),
            ("Patient?birthdate=eb2000-12-31T23:59:59Z", &["p1", "p2", "p3"]),
            ("Patient?birthdate=eb2000-12-31T23:00:00-01:00", all),
            ("Patient?birthdate=1985,2000", &["p3", "p4"]),
            ("Patient?birthDate=1985", &["p3"]),
            ("Patient?_lastUpdated=gt2000-01-01", all),
            ("Patient?_lastUpdated=lt2000-01-01", &[]),
        ],
    )
    .await;
    let by_id = app.search(&format!("Patient?_id={},{}", ids[0], ids[2])).await;
    assert_eq!(labels(&by_id), ["p1", "p3"]);
    let not_id = app.search(&format!("Patient?_id:not={}", ids[0])).await;
    assert_eq!(labels(&not_id), ["p2", "p3", "p4"]);
    app.delete(&format!("/fhir/Patient/{}", ids[3])).await;
    check(app, &[("Patient?birthdate=2000-12-31", &[]), ("Patient?gender=unknown", &[])]).await;
}

/// A token on a `code` element has the system its required binding implies (R4 search.html#token:
/// `Patient.gender` is in `http://hl7.org/fhir/administrative-gender`), so `system|code`, `system|` and `|code` (no
/// system: nothing) treat it as a Coding; `:not`, `:missing` and `:text` keep their meaning.
async fn code_tokens_have_their_binding_system(app: &TestApp) {
    patients(app).await;
    let subject = app.create("Patient", r#"{"resourceType":"Patient","gender":"female"}"#).await;
    for (label, status) in [("r1", "final"), ("r2", "preliminary")] {
        app.create(
            "DiagnosticReport",
            &format!(
                r#"{{"resourceType":"DiagnosticReport","identifier":[{{"system":"urn:test","value":"{label}"}}],
                "status":"{status}","subject":{{"reference":"Patient/{subject}"}},
                "code":{{"coding":[{{"system":"http://loinc.org","code":"36643-5"}}],"text":"XR Chest"}}}}"#
            ),
        )
        .await;
    }
    let gender = "http://hl7.org/fhir/administrative-gender";
    let status = "http://hl7.org/fhir/diagnostic-report-status";
    let cases: Vec<(String, &[&str])> = vec![
        (format!("Patient?gender={gender}|male"), &["p2"]),
        (format!("Patient?gender={gender}|male,{gender}|other"), &["p2", "p3"]),
        (format!("Patient?gender={gender}|"), &["?", "p1", "p2", "p3", "p4"]),
        ("Patient?gender=|male".to_owned(), &[]),
        ("Patient?gender=male".to_owned(), &["p2"]),
        ("Patient?gender=http://hl7.org/fhir/v3/AdministrativeGender|male".to_owned(), &[]),
        ("Patient?gender=http://hl7.org/fhir/diagnostic-report-status|".to_owned(), &[]),
        (format!("Patient?gender:not={gender}|male"), &["?", "p1", "p3", "p4"]),
        ("Patient?gender:not=|male".to_owned(), &["?", "p1", "p2", "p3", "p4"]),
        ("Patient?gender:missing=true".to_owned(), &[]),
        ("Patient?gender:text=male".to_owned(), &[]),
        (format!("DiagnosticReport?status={status}|final"), &["r1"]),
        (format!("DiagnosticReport?status={status}|"), &["r1", "r2"]),
        ("DiagnosticReport?status=|final".to_owned(), &[]),
        ("DiagnosticReport?status=final".to_owned(), &["r1"]),
        (format!("DiagnosticReport?status:not={status}|final"), &["r2"]),
        ("DiagnosticReport?status=http://hl7.org/fhir/request-status|final".to_owned(), &[]),
        ("DiagnosticReport?code:text=xr%20chest".to_owned(), &["r1", "r2"]),
        ("DiagnosticReport?status:missing=false".to_owned(), &["r1", "r2"]),
    ];
    for (query, expected) in &cases {
        assert_eq!(labels(&app.search(query).await), *expected, "{query}");
    }
}

/// Imaging resources that cover references, quantities, numbers, URIs and token `:text`.
async fn clinical_parameters(app: &TestApp) {
    let ids = patients(app).await;
    let (p1, p2) = (&ids[0], &ids[1]);
    let sr1 = app
        .create(
            "ServiceRequest",
            &format!(
                r#"{{"resourceType":"ServiceRequest","identifier":[{{"system":"urn:test","value":"sr1"}}],
                "status":"active","intent":"order","subject":{{"reference":"Patient/{p1}"}},
                "instantiatesUri":["http://example.org/protocols/chest/v1"],
                "code":{{"coding":[{{"system":"http://loinc.org","code":"36643-5","display":"XR Chest 2 Views"}}],"text":"Chest X-ray"}}}}"#
            ),
        )
        .await;
    app.create(
        "ServiceRequest",
        &format!(
            r#"{{"resourceType":"ServiceRequest","identifier":[{{"system":"urn:test","value":"sr2"}}],
            "status":"active","intent":"order","subject":{{"reference":"Patient/{p2}"}},
            "instantiatesUri":["http://example.org/protocols/head"],"code":{{"text":"Head CT"}}}}"#
        ),
    )
    .await;
    for (label, patient, series) in [("s1", p1, "3"), ("s2", p2, "10")] {
        app.create(
            "ImagingStudy",
            &format!(
                r#"{{"resourceType":"ImagingStudy","identifier":[{{"system":"urn:test","value":"{label}"}}],
                "status":"available","subject":{{"reference":"Patient/{patient}"}},"numberOfSeries":{series},
                "basedOn":[{{"reference":"ServiceRequest/{sr1}"}}]}}"#
            ),
        )
        .await;
    }
    for (label, value, unit) in [("e1", "90", "min"), ("e2", "2.5", "h")] {
        app.create(
            "Encounter",
            &format!(
                r#"{{"resourceType":"Encounter","identifier":[{{"system":"urn:test","value":"{label}"}}],
                "status":"finished","class":{{"code":"AMB"}},
                "length":{{"value":{value},"unit":"{unit}","system":"http://unitsofmeasure.org","code":"{unit}"}}}}"#
            ),
        )
        .await;
    }
    let subject = format!("ImagingStudy?subject=Patient/{p1}");
    let patient = format!("ImagingStudy?patient={p1}");
    let typed = format!("ImagingStudy?subject:Patient={p1}");
    check(
        app,
        &[
            // reference
            (&subject, &["s1"]),
            (&patient, &["s1"]),
            (&typed, &["s1"]),
            ("ImagingStudy?subject:missing=true", &[]),
            // quantity: prefixes, system and code, unit, ap
            ("Encounter?length=90", &["e1"]),
            ("Encounter?length=gt89", &["e1"]),
            ("Encounter?length=lt10", &["e2"]),
            ("Encounter?length=90|http://unitsofmeasure.org|min", &["e1"]),
            ("Encounter?length=90||min", &["e1"]),
            ("Encounter?length=90|http://unitsofmeasure.org|h", &[]),
            ("Encounter?length=ap88", &["e1"]),
            ("Encounter?length=100", &[]),
            ("Encounter?length=2.5", &["e2"]),
            ("Encounter?length=2.50", &["e2"]),
            ("Encounter?length=2.6", &[]),
            // number, with precision ranges
            ("ImagingStudy?number-of-series=3", &["s1"]),
            ("ImagingStudy?number-of-series=gt5", &["s2"]),
            ("ImagingStudy?number-of-series=le3", &["s1"]),
            ("ImagingStudy?number-of-series=1e1", &["s2"]),
            ("ImagingStudy?number-of-series=ne3", &["s2"]),
            // uri with :below and :above
            ("ServiceRequest?instantiates-uri=http://example.org/protocols/head", &["sr2"]),
            ("ServiceRequest?instantiates-uri:below=http://example.org/protocols", &["sr1", "sr2"]),
            (
                "ServiceRequest?instantiates-uri:above=http://example.org/protocols/chest/v1/x",
                &["sr1"],
            ),
            // token :text, code forms
            ("ServiceRequest?code:text=chest", &["sr1"]),
            ("ServiceRequest?code:text=xr%20chest", &["sr1"]),
            ("ServiceRequest?code:text=head", &["sr2"]),
            ("ServiceRequest?code=http://loinc.org|36643-5", &["sr1"]),
            ("ServiceRequest?code=http://loinc.org|", &["sr1"]),
        ],
    )
    .await;
}

/// R4's number and quantity examples: the stored value is compared as is, a point, with the precision range
/// of the search value (`100` is [99.5, 100.5), `100.00` is [99.995, 100.005), `1e2` is [50, 150)), and `gt`
/// `lt` `ge` `le` with the search value exactly.
async fn numbers_are_points(app: &TestApp) {
    let patient = &patients(app).await[0];
    for (label, series) in [("s99", "99"), ("s100", "100"), ("s101", "101"), ("s150", "150")] {
        app.create(
            "ImagingStudy",
            &format!(
                r#"{{"resourceType":"ImagingStudy","identifier":[{{"system":"urn:test","value":"{label}"}}],
                "status":"available","subject":{{"reference":"Patient/{patient}"}},"numberOfSeries":{series}}}"#
            ),
        )
        .await;
    }
    let lengths = [
        ("e40", "40"),
        ("e44.5", "44.5"),
        ("e44.95", "44.95"),
        ("e45", "45"),
        ("e45.0", "45.0"),
        ("e4.5e1", "4.5e1"),
        ("e45.4", "45.4"),
        ("e45.5", "45.5"),
    ];
    for (label, value) in lengths {
        app.create(
            "Encounter",
            &format!(
                r#"{{"resourceType":"Encounter","identifier":[{{"system":"urn:test","value":"{label}"}}],
                "status":"finished","class":{{"code":"AMB"}},
                "length":{{"value":{value},"unit":"min","system":"http://unitsofmeasure.org","code":"min"}}}}"#
            ),
        )
        .await;
    }
    check(
        app,
        &[
            ("ImagingStudy?number-of-series=100", &["s100"]),
            ("ImagingStudy?number-of-series=100.00", &["s100"]),
            ("ImagingStudy?number-of-series=1e2", &["s100", "s101", "s99"]),
            ("ImagingStudy?number-of-series=lt100", &["s99"]),
            ("ImagingStudy?number-of-series=le100", &["s100", "s99"]),
            ("ImagingStudy?number-of-series=gt100", &["s101", "s150"]),
            ("ImagingStudy?number-of-series=ge100", &["s100", "s101", "s150"]),
            ("ImagingStudy?number-of-series=ne100", &["s101", "s150", "s99"]),
            ("ImagingStudy?number-of-series=sa100", &["s101", "s150"]),
            ("ImagingStudy?number-of-series=eb100", &["s99"]),
            ("ImagingStudy?number-of-series=ap100", &["s100", "s101", "s99"]),
        ],
    )
    .await;
    // Labels sort as text: "e4.5e1" first.
    let within_45 = ["e4.5e1", "e44.5", "e44.95", "e45", "e45.0", "e45.4"];
    let exactly_45 = ["e4.5e1", "e45", "e45.0"];
    let above_45 = ["e45.4", "e45.5"];
    let at_least_45 = ["e4.5e1", "e45", "e45.0", "e45.4", "e45.5"];
    let at_most_45 = ["e4.5e1", "e40", "e44.5", "e44.95", "e45", "e45.0"];
    let all = ["e4.5e1", "e40", "e44.5", "e44.95", "e45", "e45.0", "e45.4", "e45.5"];
    check(
        app,
        &[
            // [44.5, 45.5): the written precision of the search value, whatever the stored one.
            ("Encounter?length=45", &within_45),
            ("Encounter?length=4.5e1", &within_45),
            // [44.95, 45.05): finds a stored 45 and 45.0, not 45.4.
            ("Encounter?length=45.0", &["e4.5e1", "e44.95", "e45", "e45.0"]),
            ("Encounter?length=45.00|http://unitsofmeasure.org|min", &exactly_45),
            ("Encounter?length=45.4||min", &["e45.4"]),
            ("Encounter?length=45.0|http://unitsofmeasure.org|h", &[]),
            ("Encounter?length=gt45", &above_45),
            ("Encounter?length=ge45", &at_least_45),
            ("Encounter?length=lt45", &["e40", "e44.5", "e44.95"]),
            ("Encounter?length=le45|http://unitsofmeasure.org|min", &at_most_45),
            ("Encounter?length=ne45.0", &["e40", "e44.5", "e45.4", "e45.5"]),
            ("Encounter?length=sa45", &["e45.5"]),
            ("Encounter?length=eb45", &["e40"]),
            ("Encounter?length=eb45.0", &["e40", "e44.5"]),
            // [40, 50) and [44.5, 55.5): the precision range widened by 10% of the value.
            ("Encounter?length=ap45", &all),
            (
                "Encounter?length=ap50",
                &["e4.5e1", "e44.5", "e44.95", "e45", "e45.0", "e45.4", "e45.5"],
            ),
        ],
    )
    .await;
}

/// R4's `DocumentReference?relationship=[target]$[code]` (corrected by cdr-search's overlay) pairs its components
/// within one repetition of `relatesTo`, never across two.
async fn composite_parameters(app: &TestApp) {
    let d1 = app
        .create(
            "DocumentReference",
            r#"{"resourceType":"DocumentReference","identifier":[{"system":"urn:test","value":"d1"}],
            "status":"current","content":[{"attachment":{"url":"http://example.org/docs/1"}}]}"#,
        )
        .await;
    for (label, code) in [("d2", "replaces"), ("d3", "appends")] {
        app.create(
            "DocumentReference",
            &format!(
                r#"{{"resourceType":"DocumentReference","identifier":[{{"system":"urn:test","value":"{label}"}}],
                "status":"current","content":[{{"attachment":{{"url":"http://example.org/docs/{label}"}}}}],
                "relatesTo":[{{"code":"{code}","target":{{"reference":"DocumentReference/{d1}"}}}}]}}"#
            ),
        )
        .await;
    }
    // d4 replaces d2 and appends to d1: its components must not pair across relatesTo entries.
    let d2 =
        app.search("DocumentReference?identifier=urn:test|d2").await["entry"][0]["resource"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    app.create(
        "DocumentReference",
        &format!(
            r#"{{"resourceType":"DocumentReference","identifier":[{{"system":"urn:test","value":"d4"}}],
            "status":"current","content":[{{"attachment":{{"url":"http://example.org/docs/d4"}}}}],
            "relatesTo":[{{"code":"replaces","target":{{"reference":"DocumentReference/{d2}"}}}},
                         {{"code":"appends","target":{{"reference":"DocumentReference/{d1}"}}}}]}}"#
        ),
    )
    .await;
    // R4's relationship, as corrected by cdr-search's overlay: target$code, paired within one relatesTo.
    let either = format!(
        "DocumentReference?relationship=DocumentReference/{d1}$replaces,DocumentReference/{d1}$appends"
    );
    let replaces = format!("DocumentReference?relationship=DocumentReference/{d1}$replaces");
    let appends = format!("DocumentReference?relationship=DocumentReference/{d1}$appends");
    let d2_replaced = format!("DocumentReference?relationship=DocumentReference/{d2}$replaces");
    let d2_appended = format!("DocumentReference?relationship=DocumentReference/{d2}$appends");
    let by_id = format!("DocumentReference?relationship={d1}$replaces");
    check(
        app,
        &[
            (&replaces, &["d2"]),
            (&appends, &["d3", "d4"]),
            (&d2_replaced, &["d4"]),
            (&d2_appended, &[]),
            (&by_id, &["d2"]),
            ("DocumentReference?relationship=DocumentReference/other$replaces", &[]),
            (&either, &["d2", "d3", "d4"]),
            ("DocumentReference?location=http://example.org/docs/1", &["d1"]),
            ("DocumentReference?relationship:missing=true", &["d1"]),
            ("DocumentReference?relationship:missing=false", &["d2", "d3", "d4"]),
        ],
    )
    .await;
}

async fn chains_and_has(app: &TestApp) {
    let ids = patients(app).await;
    let p1 = &ids[0];
    let sr1 = app
        .create(
            "ServiceRequest",
            &format!(
                r#"{{"resourceType":"ServiceRequest","identifier":[{{"system":"urn:test","value":"sr1"}}],
                "status":"active","intent":"order","subject":{{"reference":"Patient/{p1}"}},
                "category":[{{"coding":[{{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"DX"}}]}}],
                "code":{{"coding":[{{"system":"http://loinc.org","code":"36643-5"}}]}}}}"#
            ),
        )
        .await;
    let s1 = app
        .create(
            "ImagingStudy",
            &format!(
                r#"{{"resourceType":"ImagingStudy","identifier":[{{"system":"urn:test","value":"s1"}}],
                "status":"available","subject":{{"reference":"Patient/{p1}"}},
                "series":[{{"uid":"1.2.3","modality":{{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"DX"}}}}],
                "basedOn":[{{"reference":"ServiceRequest/{sr1}"}}]}}"#
            ),
        )
        .await;
    app.create(
        "DiagnosticReport",
        &format!(
            r#"{{"resourceType":"DiagnosticReport","identifier":[{{"system":"urn:test","value":"r1"}}],
            "status":"final","code":{{"text":"report"}},"subject":{{"reference":"Patient/{p1}"}},
            "basedOn":[{{"reference":"ServiceRequest/{sr1}"}}],"imagingStudy":[{{"reference":"ImagingStudy/{s1}"}}]}}"#
        ),
    )
    .await;
    app.create(
        "DiagnosticReport",
        r#"{"resourceType":"DiagnosticReport","identifier":[{"system":"urn:test","value":"r2"}],
        "status":"final","code":{"text":"outside report"},
        "subject":{"identifier":{"system":"urn:mrn","value":"MRN-9"}}}"#,
    )
    .await;
    let based_on = format!("ImagingStudy?basedon:ServiceRequest={sr1}");
    let chained_id = format!("DiagnosticReport?based-on:ServiceRequest._id={sr1}");
    check(
        app,
        &[
            (&based_on, &["s1"]),
            (&chained_id, &["r1"]),
            ("ImagingStudy?patient.name=anna", &["s1"]),
            ("ImagingStudy?subject:Patient.name=bob", &[]),
            ("ImagingStudy?patient.identifier=urn:test|p1", &["s1"]),
            ("DiagnosticReport?based-on:ServiceRequest.patient.gender=female", &["r1"]),
            ("DiagnosticReport?based-on:ServiceRequest.patient.gender=male", &[]),
            ("DiagnosticReport?basedOn:ServiceRequest.code=36643-5", &["r1"]),
            ("DiagnosticReport?imagingStudy.patient.birthDate=1970-01", &["r1"]),
            ("ImagingStudy?basedOn:ServiceRequest.code=36643-5", &["s1"]),
            ("ImagingStudy?basedOn:ServiceRquest.code-category=36643-5$DX", &["s1"]),
            ("ImagingStudy?basedon:ServiceRequest.code-category=http://loinc.org|36643-5$CT", &[]),
            ("ServiceRequest?code-category=36643-5$DX", &["sr1"]),
            ("ImagingStudy?basedon.code=http://loinc.org|36643-5", &["s1"]),
            ("DiagnosticReport?imagingStudy.identifier=urn:test|s1", &["r1"]),
            ("DiagnosticReport?subject:identifier=urn:mrn|MRN-9", &["r2"]),
            ("DiagnosticReport?subject:missing=true", &[]),
            ("DiagnosticReport?subject.name=anna", &["r1"]),
            ("Patient?_has:ImagingStudy:patient:modality=DX", &["p1"]),
            ("Patient?_has:ImagingStudy:patient:modality=CT", &[]),
            ("Patient?_has:DiagnosticReport:subject:based-on:ServiceRequest.code=36643-5", &["p1"]),
            ("ServiceRequest?_has:ImagingStudy:basedon:_has:DiagnosticReport:imagingStudy:status=final", &["sr1"]),
            ("ServiceRequest?_has:ImagingStudy:basedon:_has:DiagnosticReport:imagingStudy:status=partial", &[]),
        ],
    )
    .await;
}

async fn invalid_values_are_400(app: &TestApp) {
    for query in [
        "Patient?birthdate=1970-13",
        "Patient?birthdate=xx1970",
        "Patient?gender:exact=male",
        "Patient?_count=abc",
        "Patient?_sort=nonsense",
        "Patient?identifier=a|b|c",
        "Patient?_total=maybe",
        "Encounter?length=abc",
        "Patient?_cursor=zz",
        "Patient?_cursor=5b5d",
        // Cursors whose text holds a NUL character, which PostgreSQL text cannot (a forged res_id, a sort value).
        "Patient?_cursor=5b2261222c2250617469656e74222c225c7530303030222c5b5d5d",
        "Patient?_sort=family&_cursor=5b2261222c2250617469656e74222c2278222c5b7b2274223a225c7530303030227d5d5d",
        "Patient?name:missing=perhaps",
    ] {
        app.get(&format!("/fhir/{query}")).await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    }
    app.get("/fhir/Patient?_contained=true")
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "not-supported");
    app.get("/fhir/Unknown?name=x").await.assert_outcome(StatusCode::NOT_FOUND, "not-supported");
}

/// Queries past the parser's cost budget are refused as `too-costly` (400), also under lenient handling and as
/// conditional criteria (before the budget, bigger ones of these shapes made SQLite fail: 1,000 AND-ed clauses
/// passed its expression depth, tens of thousands of values its bind variables, 2,100 `_sort` keys a 500); an
/// un-typed chain through a reference to any type is answered.
async fn oversized_queries_are_400(app: &TestApp) {
    let clauses = vec!["name=x"; 150].join("&");
    let values = vec!["x"; 30_000].join(",");
    let spread_values = vec![format!("name={}", vec!["x"; 100].join(",")); 11].join("&");
    let sort_keys = vec!["family"; 2_100].join(",");
    let long_value = format!("name={}", "x".repeat(40_000));
    for body in [
        clauses.clone(),
        format!("name={values}"),
        spread_values,
        format!("_sort={sort_keys}"),
        long_value,
    ] {
        for handling in ["handling=strict", "handling=lenient"] {
            let headers =
                [("content-type", "application/x-www-form-urlencoded"), ("prefer", handling)];
            app.request(Method::POST, "/fhir/Patient/_search", &headers, &body)
                .await
                .assert_outcome(StatusCode::BAD_REQUEST, "too-costly");
        }
    }
    app.get(&format!("/fhir/Patient?{clauses}"))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "too-costly");
    app.request(
        Method::POST,
        "/fhir/Patient",
        &[("content-type", "application/fhir+json"), ("if-none-exist", &clauses)],
        r#"{"resourceType":"Patient"}"#,
    )
    .await
    .assert_outcome(StatusCode::BAD_REQUEST, "too-costly");
    let bundle = app.search("AuditEvent?entity.derived-from.derived-from.identifier=urn:x|1").await;
    assert_eq!(bundle["entry"], Value::Null, "{bundle}");
}

/// Odd but well-formed input never makes the server fail: long and control-character text in resources and
/// in queries.
pub(super) async fn odd_input_is_never_a_500(app: &TestApp) {
    let long_name = "Ab".repeat(3_000);
    app.create(
        "Patient",
        &format!(
            r#"{{"resourceType":"Patient","identifier":[{{"system":"urn:test","value":"long"}}],
            "name":[{{"family":"{long_name}","given":["nul\u0000in"]}}],"gender":"female"}}"#
        ),
    )
    .await;
    check(
        app,
        &[
            ("Patient?family=abab", &["long"]),
            ("Patient?given=nulin", &["long"]),
            ("Patient?_count=4294967295", &["long"]),
            ("Patient?_sort=family,-_id,given", &["long"]),
        ],
    )
    .await;
    let long_query = format!("/fhir/Patient?name={}", "x".repeat(5_000));
    assert_eq!(app.get(&long_query).await.status, StatusCode::OK);
    for query in
        ["Patient?name=%00", "Patient?_sort=", "Patient?_include=Patient:nothing", "Patient?name:"]
    {
        let response = app.get(&format!("/fhir/{query}")).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}: {}", response.text());
    }
    app.put("/fhir/Patient?name=%00", r#"{"resourceType":"Patient"}"#)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}
