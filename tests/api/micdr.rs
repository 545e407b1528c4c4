//! The miCDR rules of `--mode micdr` beyond the Bundle forms (those are in `transaction.rs`): the patient
//! and provider registry, the report lifecycle and addenda, the DocumentReference index entries, and the
//! rules of single requests. Base validation, so that the rules are tested on their own (the index entries
//! are checked against the Ontario DocumentReference profile with `$validate`).

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, TestResponse, build_request, send_to};

backend_tests!(
    with cdr_interactions::EngineConfig { contribution_rules: true, ..crate::helpers::engine_config() };
    the_registry_accepts_known_people_and_refuses_the_others,
    every_allowed_report_transition_is_accepted,
    a_refused_transition_fails_through_put_bundle_and_patch,
    addenda_reference_a_stored_or_submitted_report,
    each_order_study_and_report_has_one_index_entry,
    a_failed_bundle_leaves_no_index_entry,
    single_requests_follow_the_contribution_rules,
    validate_checks_the_rules_of_the_update_or_create
);

const HCN: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn";
const MRN: &str = "http://hospital.example/mrn";
const LICENCE: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician";
const UPI: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-provider-upi";
const ACCESSION: &str = "http://hospital.example/accession";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ADDENDUM_OF: &str = "http://ontariohealth.ca/fhir/mi/StructureDefinition/ext-di-addendum-of";
const PATIENT_URL: &str = "urn:uuid:1b7e4c1a-0000-4000-8000-000000000001";
const PRACTITIONER_URL: &str = "urn:uuid:1b7e4c1a-0000-4000-8000-000000000002";
const ORGANIZATION_URL: &str = "urn:uuid:1b7e4c1a-0000-4000-8000-000000000003";
const ORDER_URL: &str = "urn:uuid:1b7e4c1a-0000-4000-8000-000000000004";
const STUDY_URL: &str = "urn:uuid:1b7e4c1a-0000-4000-8000-000000000005";
const REPORT_URL: &str = "urn:uuid:1b7e4c1a-0000-4000-8000-000000000006";
const PROCEDURE: &str = "urn:oid:2.16.840.1.113883.3.239.99.1";
const STATUSES: [&str; 9] = [
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
];

fn put(full_url: &str, resource: Value, criteria: &str) -> Value {
    let mut entry = json!({"fullUrl": full_url, "request": {"method": "PUT", "url": criteria}});
    entry["resource"] = resource;
    entry
}

fn patient(tag: &str, birth_date: &str) -> Value {
    json!({"resourceType": "Patient",
           "identifier": [{"system": MRN, "value": tag}, {"system": HCN, "value": format!("HCN-{tag}")}],
           "name": [{"family": "Tremblay", "given": ["Élise"]}], "birthDate": birth_date})
}

fn practitioner(licence: &str) -> Value {
    json!({"resourceType": "Practitioner", "identifier": [{"system": LICENCE, "value": licence}],
           "name": [{"family": "Roy"}]})
}

fn procedure_code() -> Value {
    json!({"coding": [{"system": PROCEDURE, "code": "CTHEADWO", "display": "CT HEAD WITHOUT CONTRAST"}]})
}

fn order(tag: &str) -> Value {
    json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
           "identifier": [{"system": ACCESSION, "value": tag}],
           "category": [{"coding": [{"system": DCM, "code": "CT", "display": "Computed Tomography"}]}],
           "code": procedure_code(), "subject": {"reference": PATIENT_URL},
           "requester": {"reference": PRACTITIONER_URL}, "occurrenceDateTime": "2026-03-02T09:00:00-05:00"})
}

fn study(tag: &str) -> Value {
    json!({"resourceType": "ImagingStudy", "status": "available",
           "identifier": [{"system": ACCESSION, "value": tag}],
           "modality": [{"system": DCM, "code": "CT"}], "subject": {"reference": PATIENT_URL},
           "basedOn": [{"reference": ORDER_URL}], "started": "2026-03-02T09:12:00-05:00",
           "procedureCode": [procedure_code()],
           "series": [{"uid": "1.2.3.4.5", "modality": {"system": DCM, "code": "CT"}},
                      {"uid": "1.2.3.4.6", "modality": {"system": DCM, "code": "SR"}},
                      {"uid": "1.2.3.4.7", "modality": {"system": DCM, "code": "MR"}}]})
}

fn report(tag: &str, status: &str, subject: &str) -> Value {
    json!({"resourceType": "DiagnosticReport", "status": status,
           "identifier": [{"system": ACCESSION, "value": tag}], "code": procedure_code(),
           "subject": {"reference": subject}, "effectiveDateTime": "2026-03-02T09:12:00-05:00",
           "resultsInterpreter": [{"reference": PRACTITIONER_URL}]})
}

/// A submission of the Patient `tag` (born 1970-01-01), Practitioner `12345` and an Organization, then `more`.
fn submission(tag: &str, more: Vec<Value>) -> Value {
    let mut entries = vec![
        put(PATIENT_URL, patient(tag, "1970-01-01"), &format!("Patient?identifier={MRN}|{tag}")),
        put(
            PRACTITIONER_URL,
            practitioner("12345"),
            &format!("Practitioner?identifier={LICENCE}|12345"),
        ),
        put(
            ORGANIZATION_URL,
            json!({"resourceType": "Organization", "identifier": [{"system": UPI, "value": "H1"}], "name": "Hospital"}),
            &format!("Organization?identifier={UPI}|H1"),
        ),
    ];
    entries.extend(more);
    let mut bundle = json!({"resourceType": "Bundle", "type": "transaction"});
    bundle["entry"] = Value::Array(entries);
    bundle
}

fn order_entry(tag: &str) -> Value {
    put(ORDER_URL, order(tag), &format!("ServiceRequest?identifier={ACCESSION}|{tag}"))
}

fn study_entry(tag: &str) -> Value {
    put(STUDY_URL, study(tag), &format!("ImagingStudy?identifier={ACCESSION}|{tag}"))
}

fn report_entry(tag: &str, status: &str) -> Value {
    put(
        REPORT_URL,
        report(tag, status, PATIENT_URL),
        &format!("DiagnosticReport?identifier={ACCESSION}|{tag}"),
    )
}

async fn post_bundle(app: &TestApp, bundle: &Value) -> TestResponse {
    app.post("/fhir", &bundle.to_string()).await
}

/// Posts a submission and returns the ids of its entries, asserting 200.
async fn submit(app: &TestApp, bundle: &Value) -> Vec<String> {
    let response = post_bundle(app, bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let location = entry["response"]["location"].as_str().unwrap();
            location.split('/').nth(1).unwrap().to_owned()
        })
        .collect()
}

fn expression(response: &TestResponse) -> String {
    response.json()["issue"][0]["expression"][0].as_str().unwrap_or_default().to_owned()
}

/// A stored Patient, Practitioner and Organization for single requests to reference: the Patient's id.
async fn people(app: &TestApp, tag: &str) -> (String, String) {
    let ids = submit(app, &submission(tag, vec![])).await;
    (ids[0].clone(), ids[1].clone())
}

/// `PUT [type]?identifier=ACCESSION|tag` with `resource`.
async fn conditional_put(app: &TestApp, resource: &Value, tag: &str) -> TestResponse {
    let type_name = resource["resourceType"].as_str().unwrap();
    app.put(&format!("/fhir/{type_name}?identifier={ACCESSION}|{tag}"), &resource.to_string()).await
}

/// A stored report at `status` referencing `patient` and `practitioner`; its id.
async fn stored_report(
    app: &TestApp,
    tag: &str,
    status: &str,
    people: &(String, String),
) -> String {
    let mut body = report(tag, status, &format!("Patient/{}", people.0));
    body["resultsInterpreter"][0]["reference"] = json!(format!("Practitioner/{}", people.1));
    let response = conditional_put(app, &body, tag).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    response.json()["id"].as_str().unwrap().to_owned()
}

async fn put_status(app: &TestApp, id: &str, status: &str) -> TestResponse {
    let mut current = app.get(&format!("/fhir/DiagnosticReport/{id}")).await.json();
    current["status"] = json!(status);
    app.put(&format!("/fhir/DiagnosticReport/{id}"), &current.to_string()).await
}

async fn the_registry_accepts_known_people_and_refuses_the_others(app: &TestApp) {
    let registry = cdr_interactions::LocalRegistry::from_ndjson(&format!(
        "{{\"kind\":\"patient\",\"system\":\"{HCN}\",\"value\":\"HCN-RG1\",\"birthDate\":\"1970-01-01\"}}\n\
         {{\"kind\":\"practitioner\",\"system\":\"{LICENCE}\",\"value\":\"12345\"}}\n"
    ))
    .unwrap();
    let router = app.router_with_registry(Arc::new(registry));
    let post = |bundle: Value| {
        let router = router.clone();
        async move {
            let request = build_request(
                Method::POST,
                "/fhir",
                &[("content-type", "application/fhir+json")],
                &bundle.to_string(),
            );
            send_to(&router, request).await
        }
    };
    let accepted = post(submission("RG1", vec![])).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());

    let mut mismatch = submission("RG1", vec![]);
    mismatch["entry"][0]["resource"]["birthDate"] = json!("1971-02-03");
    let response = post(mismatch).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
    assert_eq!(expression(&response), "Bundle.entry[0].resource.birthDate");
    let diagnostics = response.json()["issue"][0]["diagnostics"].as_str().unwrap().to_owned();
    assert!(
        diagnostics.contains("1971-02-03") && diagnostics.contains("1970-01-01"),
        "{diagnostics}"
    );

    let response = post(submission("RG2", vec![])).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
    assert_eq!(expression(&response), "Bundle.entry[0].resource.identifier[1]");

    let mut unknown_licence = submission("RG1", vec![]);
    unknown_licence["entry"][1]["resource"] = practitioner("99999");
    unknown_licence["entry"][1]["request"]["url"] =
        json!(format!("Practitioner?identifier={LICENCE}|99999"));
    let response = post(unknown_licence).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
    assert_eq!(expression(&response), "Bundle.entry[1].resource.identifier[0]");

    // A single write is checked too.
    let request = build_request(
        Method::PUT,
        &format!("/fhir/Patient?identifier={MRN}|RG1"),
        &[("content-type", "application/fhir+json")],
        &patient("RG1", "1980-05-05").to_string(),
    );
    let response = send_to(&router, request).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
    assert_eq!(expression(&response), "Patient.birthDate");
    // Without a registry file nothing is checked.
    assert_eq!(post_bundle(app, &submission("RG2", vec![])).await.status, StatusCode::OK);
}

async fn every_allowed_report_transition_is_accepted(app: &TestApp) {
    let people = people(app, "LC1").await;
    let open = ["registered", "partial", "preliminary"];
    let revised = ["amended", "corrected", "appended"];
    let mut allowed: Vec<(&str, &str)> = Vec::new();
    for from in STATUSES {
        for to in STATUSES {
            let ok = from == to
                || to == "entered-in-error"
                || to == "cancelled"
                || (open.contains(&from) && (open.contains(&to) || to == "final"))
                || ((from == "final" || revised.contains(&from)) && revised.contains(&to));
            if ok {
                allowed.push((from, to));
            }
        }
    }
    assert_eq!(allowed.len(), 43);
    for (number, (from, to)) in allowed.into_iter().enumerate() {
        let id = stored_report(app, &format!("LC-{number}"), from, &people).await;
        let response = put_status(app, &id, to).await;
        assert_eq!(response.status, StatusCode::OK, "{from} → {to}: {}", response.text());
    }
    // Every version stays readable.
    let id = stored_report(app, "LC-H", "preliminary", &people).await;
    for status in ["final", "corrected", "amended"] {
        assert_eq!(put_status(app, &id, status).await.status, StatusCode::OK);
    }
    let history = app.get(&format!("/fhir/DiagnosticReport/{id}/_history")).await.json();
    let statuses: Vec<&str> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["resource"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["amended", "corrected", "final", "preliminary"]);
}

async fn a_refused_transition_fails_through_put_bundle_and_patch(app: &TestApp) {
    let people = people(app, "LC2").await;
    let id = stored_report(app, "LC2-R", "final", &people).await;
    let response = put_status(app, &id, "preliminary").await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
    assert_eq!(expression(&response), "DiagnosticReport.status");
    let diagnostics = response.json()["issue"][0]["diagnostics"].as_str().unwrap().to_owned();
    assert!(diagnostics.contains("'final' to 'preliminary'"), "{diagnostics}");

    // A conditional PUT in a Bundle: allowed (final → amended), then refused (amended → final).
    let mut bundle = submission("LC2", vec![report_entry("LC2-R", "amended")]);
    let ids = submit(app, &bundle).await;
    assert_eq!(ids[3], id);
    bundle["entry"][3]["resource"]["status"] = json!("final");
    let response = post_bundle(app, &bundle).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
    assert_eq!(expression(&response), "Bundle.entry[3].resource.status");

    // PATCH: allowed (amended → corrected), then refused (corrected → preliminary).
    let patch = |status: &str| {
        build_request(
            Method::PATCH,
            &format!("/fhir/DiagnosticReport/{id}"),
            &[("content-type", "application/json-patch+json")],
            &json!([{"op": "replace", "path": "/status", "value": status}]).to_string(),
        )
    };
    assert_eq!(app.send(patch("corrected")).await.status, StatusCode::OK);
    let response = app.send(patch("preliminary")).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
    assert_eq!(expression(&response), "DiagnosticReport.status");
    let current = app.get(&format!("/fhir/DiagnosticReport/{id}")).await.json();
    assert_eq!(current["status"], "corrected");
}

async fn addenda_reference_a_stored_or_submitted_report(app: &TestApp) {
    let people = people(app, "AD1").await;
    let original = stored_report(app, "AD1-R", "final", &people).await;
    let addendum = |tag: &str, target: &str| {
        let mut body = report(tag, "final", &format!("Patient/{}", people.0));
        body["resultsInterpreter"][0]["reference"] = json!(format!("Practitioner/{}", people.1));
        body["extension"] = json!([{"url": ADDENDUM_OF, "valueReference": {"reference": target}}]);
        body
    };
    let response =
        conditional_put(app, &addendum("AD1-A", &format!("DiagnosticReport/{original}")), "AD1-A")
            .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let response =
        conditional_put(app, &addendum("AD1-B", "DiagnosticReport/not-here"), "AD1-B").await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "not-found");
    assert_eq!(expression(&response), "DiagnosticReport.extension[0].valueReference");
    let response =
        conditional_put(app, &addendum("AD1-C", &format!("Patient/{}", people.0)), "AD1-C").await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
    assert!(response.text().contains("DiagnosticReport"), "{}", response.text());

    // In a Bundle, the original may be an entry of the same Bundle, or must be stored.
    let mut with_addendum = addendum("AD2-A", REPORT_URL);
    with_addendum["subject"]["reference"] = json!(PATIENT_URL);
    with_addendum["resultsInterpreter"][0]["reference"] = json!(PRACTITIONER_URL);
    let addendum_entry = |resource: Value| {
        put(
            "urn:uuid:1b7e4c1a-0000-4000-8000-000000000007",
            resource,
            &format!("DiagnosticReport?identifier={ACCESSION}|AD2-A"),
        )
    };
    let bundle = submission(
        "AD2",
        vec![report_entry("AD2-R", "final"), addendum_entry(with_addendum.clone())],
    );
    let ids = submit(app, &bundle).await;
    let stored = app.get(&format!("/fhir/DiagnosticReport/{}", ids[4])).await.json();
    assert_eq!(
        stored["extension"][0]["valueReference"]["reference"],
        format!("DiagnosticReport/{}", ids[3])
    );
    with_addendum["extension"][0]["valueReference"]["reference"] = json!("DiagnosticReport/gone");
    let response = post_bundle(app, &submission("AD2", vec![addendum_entry(with_addendum)])).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "not-found");
    assert_eq!(expression(&response), "Bundle.entry[3].resource.extension[0].valueReference");
}

/// The index entries of a patient, by `DocumentReference?patient.identifier=`, keyed by the type of
/// their source.
async fn index_entries(app: &TestApp, tag: &str) -> Vec<Value> {
    let bundle = app.search(&format!("DocumentReference?patient.identifier={HCN}|HCN-{tag}")).await;
    bundle["entry"]
        .as_array()
        .map(|entries| entries.iter().map(|entry| entry["resource"].clone()).collect())
        .unwrap_or_default()
}

fn entry_for<'a>(entries: &'a [Value], source: &str) -> &'a Value {
    entries
        .iter()
        .find(|entry| entry["context"]["related"][0]["reference"] == source)
        .unwrap_or_else(|| panic!("no index entry for {source}: {entries:?}"))
}

async fn assert_valid(app: &TestApp, resource: &Value) {
    let response = app.post("/fhir/DocumentReference/$validate", &resource.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let outcome = response.json();
    let errors: Vec<&Value> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|issue| issue["severity"] == "error" || issue["severity"] == "fatal")
        .collect();
    assert!(errors.is_empty(), "{outcome}");
}

async fn each_order_study_and_report_has_one_index_entry(app: &TestApp) {
    let bundle = submission(
        "IX1",
        vec![order_entry("IX1-O"), study_entry("IX1-S"), report_entry("IX1-R", "preliminary")],
    );
    let ids = submit(app, &bundle).await;
    let entries = index_entries(app, "IX1").await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    let (order, study, report) = (
        entry_for(&entries, &format!("ServiceRequest/{}", ids[3])),
        entry_for(&entries, &format!("ImagingStudy/{}", ids[4])),
        entry_for(&entries, &format!("DiagnosticReport/{}", ids[5])),
    );
    for (entry, code) in [(order, "mi-order"), (study, "imaging-manifest"), (report, "mi-report")] {
        assert_eq!(entry["category"][0]["coding"][0]["code"], code);
        assert_eq!(entry["subject"]["reference"], format!("Patient/{}", ids[0]));
        assert_eq!(entry["type"], procedure_code());
        assert_eq!(entry["status"], "current");
        assert_valid(app, entry).await;
    }
    assert_eq!(
        study["content"][0]["attachment"]["url"],
        format!("http://cdr.test/fhir/ImagingStudy/{}", ids[4])
    );
    assert_eq!(study["identifier"][0]["value"], format!("ImagingStudy/{}", ids[4]));
    assert_eq!(study["identifier"][1], json!({"system": ACCESSION, "value": "IX1-S"}));
    let study_events: Vec<&Value> = study["context"]["event"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| &event["coding"][0]["code"])
        .collect();
    // Each modality once, and only those of the AcquisitionModality value set (not SR).
    assert_eq!(study_events, [&json!("CT"), &json!("MR")]);
    assert_eq!(order["context"]["event"][0]["coding"][0]["code"], "CT");
    assert_eq!(study["context"]["period"]["start"], "2026-03-02T09:12:00-05:00");
    assert_eq!((&order["docStatus"], &study["docStatus"]), (&json!("final"), &json!("final")));
    assert_eq!(report["docStatus"], "preliminary");

    // The report's update updates its entry: same id, next version.
    let bundle = submission("IX1", vec![report_entry("IX1-R", "final")]);
    submit(app, &bundle).await;
    let updated = index_entries(app, "IX1").await;
    assert_eq!(updated.len(), 3);
    let new_report = entry_for(&updated, &format!("DiagnosticReport/{}", ids[5]));
    assert_eq!(new_report["id"], report["id"]);
    assert_eq!(new_report["meta"]["versionId"], "2");
    assert_eq!(new_report["docStatus"], "final");

    // Deleting the source marks its entry entered-in-error.
    let deleted = app.delete(&format!("/fhir/DiagnosticReport/{}", ids[5])).await;
    assert!(deleted.status.is_success(), "{}", deleted.text());
    let entry_id = report["id"].as_str().unwrap();
    let marked = app.get(&format!("/fhir/DocumentReference/{entry_id}")).await.json();
    assert_eq!(marked["status"], "entered-in-error");
    assert_eq!(marked["meta"]["versionId"], "3");
    assert_valid(app, &marked).await;
}

async fn a_failed_bundle_leaves_no_index_entry(app: &TestApp) {
    let people = people(app, "RB1").await;
    stored_report(app, "RB1-R", "final", &people).await;
    // A new order and a refused transition of the stored report: nothing is written.
    let bundle =
        submission("RB1", vec![order_entry("RB1-O"), report_entry("RB1-R", "preliminary")]);
    post_bundle(app, &bundle)
        .await
        .assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
    let entries = index_entries(app, "RB1").await;
    assert_eq!(entries.len(), 1, "only the stored report's entry: {entries:?}");
    assert_eq!(entries[0]["category"][0]["coding"][0]["code"], "mi-report");
    let orders = app.search(&format!("ServiceRequest?identifier={ACCESSION}|RB1-O")).await;
    assert!(orders["entry"].is_null(), "{orders}");
}

async fn single_requests_follow_the_contribution_rules(app: &TestApp) {
    let people = people(app, "SG1").await;
    let mut body = order("SG1-O");
    body["subject"]["reference"] = json!(format!("Patient/{}", people.0));
    body["requester"]["reference"] = json!(format!("Practitioner/{}", people.1));
    let post = |headers: &[(&str, &str)], body: &Value| {
        let mut all = vec![("content-type", "application/fhir+json")];
        all.extend_from_slice(headers);
        build_request(Method::POST, "/fhir/ServiceRequest", &all, &body.to_string())
    };
    let criteria = format!("identifier={ACCESSION}|SG1-O");
    let if_none_exist = [("if-none-exist", criteria.as_str())];

    // A plain create is refused: resubmitting it would store a duplicate.
    let response = app.send(post(&[], &body)).await;
    response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    // So is an id chosen by the client.
    let mut with_id = body.clone();
    with_id["id"] = json!("mine");
    let response = app.send(post(&if_none_exist, &with_id)).await;
    response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(expression(&response), "id");
    // References must name live resources of the repository.
    let mut unresolved = body.clone();
    unresolved["subject"]["reference"] = json!("Patient/not-here");
    let response = app.send(post(&if_none_exist, &unresolved)).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "not-found");
    assert_eq!(expression(&response), "ServiceRequest.subject");
    // References only a Bundle resolves are refused from every single write.
    for subject in [PATIENT_URL, "Patient?identifier=x|y"] {
        let mut unresolved = body.clone();
        unresolved["subject"]["reference"] = json!(subject);
        let response = app.send(post(&if_none_exist, &unresolved)).await;
        response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "value");
        assert_eq!(expression(&response), "ServiceRequest.subject.reference", "{subject}");
    }
    // A conditional create is stored with its index entry, and found again.
    let created = app.send(post(&if_none_exist, &body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(app.send(post(&if_none_exist, &body)).await.status, StatusCode::OK);
    let entries = index_entries(app, "SG1").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0]["content"][0]["attachment"]["url"],
        format!("http://cdr.test/fhir/ServiceRequest/{id}")
    );
    // An update by id: references resolve there too, and the entry follows.
    let mut update = created.json();
    update["requester"]["reference"] = json!("Practitioner/not-here");
    let response = app.put(&format!("/fhir/ServiceRequest/{id}"), &update.to_string()).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "not-found");
    assert_eq!(expression(&response), "ServiceRequest.requester");
    update["requester"]["reference"] = json!(format!("Practitioner/{}", people.1));
    update["status"] = json!("completed");
    assert_eq!(
        app.put(&format!("/fhir/ServiceRequest/{id}"), &update.to_string()).await.status,
        StatusCode::OK
    );
    let entry = &index_entries(app, "SG1").await[0];
    assert_eq!(
        (entry["meta"]["versionId"].as_str(), entry["id"].as_str()),
        (Some("2"), entries[0]["id"].as_str())
    );
    // A conditional update carries no id either.
    let response = conditional_put(app, &with_id, "SG1-O").await;
    response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(expression(&response), "id");
}

/// The open server writes no index entries and checks no lifecycle.
mod open_server {
    use axum::http::StatusCode;
    use serde_json::json;

    use crate::backend_tests;
    use crate::helpers::TestApp;

    backend_tests!(orders_get_no_index_entry_and_reports_any_status);

    async fn orders_get_no_index_entry_and_reports_any_status(app: &TestApp) {
        let patient = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
        let order = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                           "subject": {"reference": format!("Patient/{patient}")}});
        app.create("ServiceRequest", &order.to_string()).await;
        let report = json!({"resourceType": "DiagnosticReport", "status": "final",
                            "code": {"text": "CT head"}});
        let id = app.create("DiagnosticReport", &report.to_string()).await;
        let mut back = app.get(&format!("/fhir/DiagnosticReport/{id}")).await.json();
        back["status"] = json!("preliminary");
        let response = app.put(&format!("/fhir/DiagnosticReport/{id}"), &back.to_string()).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let entries = app.search("DocumentReference").await;
        assert!(entries["entry"].is_null(), "{entries}");
    }
}

/// `$validate` in mode update checks an update's miCDR rules (the report lifecycle against the stored report,
/// references that must resolve) and in mode create a submission's (no client id), reporting each as an
/// error issue of a 200 outcome; nothing is written.
async fn validate_checks_the_rules_of_the_update_or_create(app: &TestApp) {
    let people = people(app, "VL1").await;
    let id = stored_report(app, "VL1-R", "final", &people).await;
    let url = format!("/fhir/DiagnosticReport/{id}/$validate?mode=update");
    let mut current = app.get(&format!("/fhir/DiagnosticReport/{id}")).await.json();
    let errors = |response: &TestResponse| -> Vec<(String, String)> {
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        response.json()["issue"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|issue| issue["severity"] == "error")
            .map(|issue| {
                let code = issue["code"].as_str().unwrap().to_owned();
                (code, issue["expression"][0].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    };
    current["status"] = json!("amended");
    assert_eq!(errors(&app.post(&url, &current.to_string()).await), []);
    current["status"] = json!("preliminary");
    let refused = app.post(&url, &current.to_string()).await;
    assert_eq!(
        errors(&refused),
        [("business-rule".to_owned(), "DiagnosticReport.status".to_owned())],
        "{}",
        refused.text()
    );
    current["status"] = json!("amended");
    current["subject"]["reference"] = json!("Patient/not-here");
    let unresolved = app.post(&url, &current.to_string()).await;
    assert_eq!(
        errors(&unresolved),
        [("not-found".to_owned(), "DiagnosticReport.subject".to_owned())],
        "{}",
        unresolved.text()
    );
    let stored = app.get(&format!("/fhir/DiagnosticReport/{id}")).await.json();
    assert_eq!((&stored["status"], &stored["meta"]["versionId"]), (&json!("final"), &json!("1")));

    let mut new_report = report("VL1-N", "final", &format!("Patient/{}", people.0));
    new_report["resultsInterpreter"][0]["reference"] = json!(format!("Practitioner/{}", people.1));
    let create = "/fhir/DiagnosticReport/$validate?mode=create";
    assert_eq!(errors(&app.post(create, &new_report.to_string()).await), []);
    new_report["id"] = json!("mine");
    let with_id = app.post(create, &new_report.to_string()).await;
    assert_eq!(errors(&with_id), [("invalid".to_owned(), "id".to_owned())], "{}", with_id.text());
}
