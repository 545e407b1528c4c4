//! Transaction and batch Bundles posted to `[base]`: the R4 example, reference rewriting, conditional
//! references, rollback, idempotent resubmission, batch independence and the same Bundle raced.

use std::io::Read;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, api_config, build_request, engine_config, send_to};

backend_tests!(
    references_between_entries_are_rewritten,
    conditional_references_resolve_in_the_store_and_the_bundle,
    a_failing_entry_rolls_back_the_whole_transaction,
    resubmitting_a_bundle_writes_no_new_resources,
    batch_entries_succeed_and_fail_on_their_own,
    the_same_new_patient_bundle_raced_yields_one_of_each,
    malformed_bundles_are_refused_with_their_location,
    reads_in_a_transaction_see_its_writes,
    deletes_in_a_transaction,
    prefer_shapes_the_entry_responses,
    a_five_megabyte_report_round_trips_byte_exact,
    patch_entries_in_both_formats,
    patch_values_refer_to_other_entries,
    the_base_with_a_trailing_slash_takes_bundles_and_system_searches
);

const MRN: &str = "http://hospital.example/mrn";
const ACCESSION: &str = "http://hospital.example/accession";

async fn post_bundle(app: &TestApp, bundle: &Value) -> crate::helpers::TestResponse {
    app.post("/fhir", &bundle.to_string()).await
}

/// How many resources a search finds (on one page).
async fn matches(app: &TestApp, query: impl AsRef<str>) -> usize {
    app.search(query.as_ref()).await["entry"].as_array().map_or(0, Vec::len)
}

fn statuses(response: &Value) -> Vec<String> {
    response["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["response"]["status"].as_str().unwrap().to_owned())
        .collect()
}

/// The id of a `location` such as `Patient/abc/_history/1`.
fn location_id(entry: &Value) -> String {
    let location = entry["response"]["location"].as_str().unwrap();
    location.split('/').nth(1).unwrap().to_owned()
}

fn patient(mrn: &str) -> Value {
    json!({"resourceType": "Patient", "identifier": [{"system": MRN, "value": mrn}],
           "name": [{"family": "Tremblay", "given": ["Élise"]}], "birthDate": "1970-01-01"})
}

fn study(accession: &str, subject: &str) -> Value {
    json!({"resourceType": "ImagingStudy", "status": "available",
           "identifier": [{"system": ACCESSION, "value": accession}],
           "subject": {"reference": subject}})
}

fn entry(full_url: &str, resource: Value, method: &str, url: &str) -> Value {
    let mut entry = json!({"fullUrl": full_url, "request": {"method": method, "url": url}});
    entry["resource"] = resource;
    entry
}

fn transaction(entries: Vec<Value>) -> Value {
    let mut bundle = json!({"resourceType": "Bundle", "type": "transaction"});
    bundle["entry"] = Value::Array(entries);
    bundle
}

/// The official R4 example transaction (`Bundle-bundle-transaction.json`) produces what the example
/// response (`Bundle-bundle-response.json`) shows, given the state it presumes: Patient/123 at version 3,
/// Patient/123a at version 2, Patient/234, a Patient with identifier 123456, Patient/12334 at version 4
/// and a Patient with identifier `http:/example.org/fhir/ids|234234`. Left out: the `ValueSet/$lookup`
/// entry (this server has no terminology operations).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_r4_example_transaction_on_sqlite() {
    the_r4_example_transaction(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_r4_example_transaction_on_postgres() {
    the_r4_example_transaction(Backend::Postgres).await;
}

fn r4_example(name: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/cdr-validation/test_data/r4-examples/examples.tgz"
    );
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for member in archive.entries().unwrap() {
        let mut member = member.unwrap();
        if member.path().unwrap().to_str() == Some(name) {
            let mut text = String::new();
            member.read_to_string(&mut text).unwrap();
            return serde_json::from_str(&text).unwrap();
        }
    }
    panic!("{name} is not among the R4 examples");
}

async fn the_r4_example_transaction(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        cdr_interactions::EngineConfig { update_create: true, ..engine_config() },
    )
    .await;
    // Each version differs from the one before (an update that changes nothing writes no version).
    let seed = |id: &str, version: usize, extra: &str| {
        format!(
            r#"{{"resourceType":"Patient","id":"{id}","active":true,"multipleBirthInteger":{version}{extra}}}"#
        )
    };
    for (id, versions, extra) in [
        ("123", 3, ""),
        ("123a", 2, ""),
        ("234", 1, ""),
        ("12334", 4, ""),
        ("seed-123456", 1, r#","identifier":[{"value":"123456"}]"#),
        (
            "seed-234234",
            1,
            r#","identifier":[{"system":"http:/example.org/fhir/ids","value":"234234"}]"#,
        ),
    ] {
        for version in 0..versions {
            let response = app.put(&format!("/fhir/Patient/{id}"), &seed(id, version, extra)).await;
            assert!(response.status.is_success(), "{}", response.text());
        }
    }
    let mut request = r4_example("Bundle-bundle-transaction.json");
    let mut expected = r4_example("Bundle-bundle-response.json");
    request["entry"].as_array_mut().unwrap().remove(7);
    expected["entry"].as_array_mut().unwrap().remove(7);

    let response = post_bundle(&app, &request).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    assert_eq!(body["type"], "transaction-response");
    let ours = statuses(&body);
    let theirs = statuses(&expected);
    // The example writes its deletes' statuses loosely ("202 Accepted", "DELETE"); this server answers
    // 204 No Content. Every other status is the example's.
    assert_eq!(
        ours,
        [
            "201 Created",
            "200 OK",
            "200 OK",
            "201 Created",
            "200 OK",
            "204 No Content",
            "204 No Content",
            "200 OK",
            "304 Not Modified"
        ]
    );
    for position in [0, 1, 2, 3, 4, 7, 8] {
        assert_eq!(ours[position][..3], theirs[position][..3], "entry {position}");
    }
    // Where the example gives the version, it is the same: modulo ids, the same response.
    let entries = body["entry"].as_array().unwrap();
    let expected_entries = expected["entry"].as_array().unwrap();
    for position in [2, 4] {
        assert_eq!(
            entries[position]["response"]["location"],
            expected_entries[position]["response"]["location"]
        );
        assert_eq!(
            entries[position]["response"]["etag"],
            expected_entries[position]["response"]["etag"]
        );
    }
    assert_eq!(entries[0]["response"]["etag"], "W/\"1\"");
    assert_eq!(entries[3]["response"]["etag"], "W/\"1\"");
    assert_eq!(
        location_id(&entries[1]),
        "seed-234234",
        "the ifNoneExist entry found the seeded patient"
    );
    assert_eq!(entries[7]["resource"]["type"], "searchset");
    assert_eq!(app.get("/fhir/Patient/234").await.status, StatusCode::GONE);
    assert_eq!(app.get("/fhir/Patient/seed-123456").await.status, StatusCode::GONE);
    let created = app.get(&format!("/fhir/Patient/{}", location_id(&entries[0]))).await;
    assert_eq!(created.json()["name"][0]["family"], "Chalmers");
}

async fn references_between_entries_are_rewritten(app: &TestApp) {
    let practitioner = json!({"resourceType": "Practitioner", "name": [{"family": "Roy"}]});
    let mut order = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "urn:uuid:7a1b8c52-0a0b-4b43-9d8a-0f4d7f1d2a01"},
        "requester": {"reference": "urn:uuid:7a1b8c52-0a0b-4b43-9d8a-0f4d7f1d2a02"},
        "extension": [{"url": "http://hospital.example/ext/for", "valueReference": {"reference": "urn:uuid:7a1b8c52-0a0b-4b43-9d8a-0f4d7f1d2a01"}}],
        "contained": [{"resourceType": "Practitioner", "id": "p1",
            "extension": [{"url": "http://hospital.example/ext/patient", "valueReference": {"reference": "urn:uuid:7a1b8c52-0a0b-4b43-9d8a-0f4d7f1d2a01"}}]}],
        "performer": [{"reference": "#p1"}]});
    order["text"] = json!({"status": "generated",
        "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:7a1b8c52-0a0b-4b43-9d8a-0f4d7f1d2a01\">patient</a></div>"});
    // An absolute RESTful fullUrl, referenced relatively from an entry under the same base.
    let mut imaging = study("ACC-1", "Patient/p-42");
    imaging["basedOn"] = json!([{"reference": "urn:uuid:7a1b8c52-0a0b-4b43-9d8a-0f4d7f1d2a03"}]);
    let bundle = transaction(vec![
        entry("http://example.org/fhir/Patient/p-42", patient("R1"), "POST", "Patient"),
        entry("urn:uuid:7a1b8c52-0a0b-4b43-9d8a-0f4d7f1d2a01", patient("R2"), "POST", "Patient"),
        entry(
            "urn:uuid:7a1b8c52-0a0b-4b43-9d8a-0f4d7f1d2a02",
            practitioner,
            "POST",
            "Practitioner",
        ),
        entry("urn:uuid:7a1b8c52-0a0b-4b43-9d8a-0f4d7f1d2a03", order, "POST", "ServiceRequest"),
        entry("http://example.org/fhir/ImagingStudy/s-1", imaging, "POST", "ImagingStudy"),
    ]);
    let response = post_bundle(app, &bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    assert_eq!(statuses(&body), ["201 Created"; 5]);
    let entries = body["entry"].as_array().unwrap();
    let ids: Vec<String> = entries.iter().map(location_id).collect();
    assert_eq!(entries[0]["fullUrl"], format!("http://cdr.test/fhir/Patient/{}", ids[0]));
    let patient_ref = format!("Patient/{}", ids[1]);

    let stored = app.get(&format!("/fhir/ServiceRequest/{}", ids[3])).await.json();
    assert_eq!(stored["subject"]["reference"], patient_ref.as_str());
    assert_eq!(stored["requester"]["reference"], format!("Practitioner/{}", ids[2]));
    assert_eq!(stored["extension"][0]["valueReference"]["reference"], patient_ref.as_str());
    assert_eq!(
        stored["contained"][0]["extension"][0]["valueReference"]["reference"],
        patient_ref.as_str()
    );
    assert_eq!(stored["performer"][0]["reference"], "#p1");
    assert!(stored["text"]["div"].as_str().unwrap().contains(&format!("href=\"{patient_ref}\"")));
    let stored = app.get(&format!("/fhir/ImagingStudy/{}", ids[4])).await.json();
    assert_eq!(stored["subject"]["reference"], format!("Patient/{}", ids[0]));
    assert_eq!(stored["basedOn"][0]["reference"], format!("ServiceRequest/{}", ids[3]));
    // The index rows hold the rewritten references.
    assert_eq!(matches(app, format!("ServiceRequest?subject={patient_ref}")).await, 1);
    assert_eq!(matches(app, format!("ImagingStudy?patient=Patient/{}", ids[0])).await, 1);
}

async fn conditional_references_resolve_in_the_store_and_the_bundle(app: &TestApp) {
    let existing = app.create("Patient", &patient("C1").to_string()).await;
    let bundle = transaction(vec![
        // Resolved against the store.
        entry(
            "urn:uuid:1b1a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01",
            study("ACC-C1", &format!("Patient?identifier={MRN}|C1")),
            "POST",
            "ImagingStudy",
        ),
        // Resolved against a conditional entry of the same Bundle that creates the patient.
        entry(
            "urn:uuid:1b1a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e02",
            study("ACC-C2", &format!("Patient?identifier={MRN}|C2")),
            "POST",
            "ImagingStudy",
        ),
        entry(
            "urn:uuid:1b1a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e03",
            patient("C2"),
            "PUT",
            &format!("Patient?identifier={MRN}|C2"),
        ),
    ]);
    let response = post_bundle(app, &bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    let entries = body["entry"].as_array().unwrap();
    let first = app.get(&format!("/fhir/ImagingStudy/{}", location_id(&entries[0]))).await.json();
    assert_eq!(first["subject"]["reference"], format!("Patient/{existing}"));
    let second = app.get(&format!("/fhir/ImagingStudy/{}", location_id(&entries[1]))).await.json();
    assert_eq!(second["subject"]["reference"], format!("Patient/{}", location_id(&entries[2])));

    // No match: the transaction fails at the element.
    let none = transaction(vec![entry(
        "urn:uuid:1b1a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e04",
        study("ACC-C3", &format!("Patient?identifier={MRN}|nobody")),
        "POST",
        "ImagingStudy",
    )]);
    let response = post_bundle(app, &none).await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "not-found");
    assert_eq!(response.json()["issue"][0]["expression"][0], "Bundle.entry[0].resource.subject");
    // Two matches: 412.
    app.create("Patient", &patient("TWIN").to_string()).await;
    app.create("Patient", &patient("TWIN").to_string()).await;
    let two = transaction(vec![entry(
        "urn:uuid:1b1a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e05",
        study("ACC-C4", &format!("Patient?identifier={MRN}|TWIN")),
        "POST",
        "ImagingStudy",
    )]);
    post_bundle(app, &two)
        .await
        .assert_outcome(StatusCode::PRECONDITION_FAILED, "multiple-matches");
    assert_eq!(
        matches(app, format!("ImagingStudy?identifier={ACCESSION}|ACC-C3,{ACCESSION}|ACC-C4"))
            .await,
        0
    );
}

async fn a_failing_entry_rolls_back_the_whole_transaction(app: &TestApp) {
    let kept = app.create("Patient", &patient("RB0").to_string()).await;
    let mut outdated = patient("RB0");
    outdated["id"] = json!(kept);
    let precondition = json!({"fullUrl": format!("http://cdr.test/fhir/Patient/{kept}"), "resource": outdated,
        "request": {"method": "PUT", "url": format!("Patient/{kept}"), "ifMatch": "W/\"7\""}});
    let bundle = transaction(vec![
        entry("urn:uuid:2c2a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01", patient("RB1"), "POST", "Patient"),
        entry(
            "urn:uuid:2c2a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e02",
            study("ACC-RB", "urn:uuid:2c2a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01"),
            "POST",
            "ImagingStudy",
        ),
        precondition,
    ]);
    let response = post_bundle(app, &bundle).await;
    response.assert_outcome(StatusCode::PRECONDITION_FAILED, "conflict");
    assert_eq!(response.json()["issue"][0]["expression"][0], "Bundle.entry[2]");
    // Nothing of it is stored: no resource, no index row.
    assert_eq!(matches(app, &format!("Patient?identifier={MRN}|RB1")).await, 0);
    assert_eq!(matches(app, &format!("ImagingStudy?identifier={ACCESSION}|ACC-RB")).await, 0);
    assert_eq!(app.get(&format!("/fhir/Patient/{kept}")).await.json()["meta"]["versionId"], "1");

    // A resource that breaks its definition names its element within the entry.
    let mut invalid = study("ACC-RB2", "urn:uuid:2c2a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01");
    invalid["status"] = json!("not-a-status");
    let bundle = transaction(vec![
        entry("urn:uuid:2c2a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01", patient("RB2"), "POST", "Patient"),
        entry("urn:uuid:2c2a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e03", invalid, "POST", "ImagingStudy"),
    ]);
    let response = post_bundle(app, &bundle).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
    let outcome = response.json();
    let expressions: Vec<&str> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|issue| issue["severity"] == "error")
        .map(|issue| issue["expression"][0].as_str().unwrap())
        .collect();
    assert!(expressions.contains(&"Bundle.entry[1].resource.status"), "{outcome}");
    assert_eq!(matches(app, &format!("Patient?identifier={MRN}|RB2")).await, 0);
}

async fn resubmitting_a_bundle_writes_no_new_resources(app: &TestApp) {
    let submission = |family: &str| {
        let mut person = patient("IDEM");
        person["name"][0]["family"] = json!(family);
        transaction(vec![
            json!({"fullUrl": "urn:uuid:3d3a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01", "resource": person,
                   "request": {"method": "PUT", "url": format!("Patient?identifier={MRN}|IDEM")}}),
            json!({"fullUrl": "urn:uuid:3d3a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e02",
                   "resource": study("ACC-IDEM", "urn:uuid:3d3a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01"),
                   "request": {"method": "POST", "url": "ImagingStudy", "ifNoneExist": format!("identifier={ACCESSION}|ACC-IDEM")}}),
        ])
    };
    let first = post_bundle(app, &submission("Tremblay")).await.json();
    assert_eq!(statuses(&first), ["201 Created", "201 Created"]);
    let second = post_bundle(app, &submission("Tremblay-Roy")).await.json();
    assert_eq!(statuses(&second), ["200 OK", "200 OK"]);
    assert_eq!(location_id(&first["entry"][0]), location_id(&second["entry"][0]));
    assert_eq!(location_id(&first["entry"][1]), location_id(&second["entry"][1]));
    assert_eq!(second["entry"][0]["response"]["etag"], "W/\"2\"");
    assert_eq!(
        second["entry"][1]["response"]["etag"], "W/\"1\"",
        "the existing study is not written again"
    );
    // The same Bundle again: the conditional PUT finds the same content and writes no version; its
    // entry says so in an informational outcome.
    let third = post_bundle(app, &submission("Tremblay-Roy")).await.json();
    assert_eq!(statuses(&third), ["200 OK", "200 OK"]);
    assert_eq!(third["entry"][0]["response"]["etag"], "W/\"2\"");
    assert_eq!(
        third["entry"][0]["response"]["lastModified"],
        second["entry"][0]["response"]["lastModified"]
    );
    assert_eq!(third["entry"][0]["resource"], second["entry"][0]["resource"]);
    let diagnostics = &third["entry"][0]["response"]["outcome"]["issue"][0]["diagnostics"];
    assert!(diagnostics.as_str().is_some_and(|text| text.starts_with("unchanged")), "{third}");
    assert!(second["entry"][0]["response"].get("outcome").is_none(), "{second}");
    let id = location_id(&third["entry"][0]);
    let history = app.get(&format!("/fhir/Patient/{id}/_history")).await.json();
    assert_eq!(history["entry"].as_array().map(Vec::len), Some(2), "{history}");
    assert_eq!(matches(app, &format!("Patient?identifier={MRN}|IDEM")).await, 1);
    assert_eq!(matches(app, &format!("ImagingStudy?identifier={ACCESSION}|ACC-IDEM")).await, 1);
    assert_eq!(matches(app, "Patient?family=Tremblay-Roy").await, 1);
}

async fn batch_entries_succeed_and_fail_on_their_own(app: &TestApp) {
    let existing = app.create("Patient", &patient("B0").to_string()).await;
    let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient("B1"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final"}, "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": format!("Patient/{existing}")}},
        {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        {"resource": study("ACC-B", "urn:uuid:4e4a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01"), "request": {"method": "POST", "url": "ImagingStudy"}},
        {"request": {"method": "GET", "url": format!("Patient?identifier={MRN}|B1")}},
        {"request": {"method": "POST"}}
    ]});
    let response = post_bundle(app, &bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    assert_eq!(body["type"], "batch-response");
    assert_eq!(
        statuses(&body),
        [
            "201 Created",
            "404 Not Found",
            "200 OK",
            "404 Not Found",
            "422 Unprocessable Entity",
            "200 OK",
            "400 Bad Request"
        ]
    );
    assert_eq!(body["entry"][1]["response"]["outcome"]["resourceType"], "OperationOutcome");
    assert_eq!(body["entry"][2]["resource"]["id"], existing.as_str());
    // A batch entry cannot refer to another entry.
    assert_eq!(
        body["entry"][4]["response"]["outcome"]["issue"][0]["expression"][0],
        "Bundle.entry[4].resource.subject"
    );
    assert_eq!(
        body["entry"][5]["resource"]["entry"].as_array().map_or(0, Vec::len),
        1,
        "the read runs after the earlier writes"
    );
    assert_eq!(
        body["entry"][6]["response"]["outcome"]["issue"][0]["expression"][0],
        "Bundle.entry[6].request.url"
    );
}

async fn the_same_new_patient_bundle_raced_yields_one_of_each(app: &TestApp) {
    let bundle = transaction(vec![
        json!({"fullUrl": "urn:uuid:5f5a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01", "resource": patient("RACE"),
               "request": {"method": "PUT", "url": format!("Patient?identifier={MRN}|RACE")}}),
        json!({"fullUrl": "urn:uuid:5f5a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e02",
               "resource": study("ACC-RACE", "urn:uuid:5f5a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01"),
               "request": {"method": "POST", "url": "ImagingStudy", "ifNoneExist": format!("identifier={ACCESSION}|ACC-RACE")}}),
    ])
    .to_string();
    let requests = (0..8)
        .map(|_| {
            build_request(
                Method::POST,
                "/fhir",
                &[("content-type", "application/fhir+json")],
                &bundle,
            )
        })
        .collect();
    let responses = app.race(requests).await;
    for response in &responses {
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    assert_eq!(matches(app, &format!("Patient?identifier={MRN}|RACE")).await, 1);
    assert_eq!(matches(app, &format!("ImagingStudy?identifier={ACCESSION}|ACC-RACE")).await, 1);
    let created: usize = responses
        .iter()
        .map(|response| {
            statuses(&response.json()).iter().filter(|status| status.starts_with("201")).count()
        })
        .sum();
    assert_eq!(created, 2, "one client created the patient and the study; the others found them");
    let id = location_id(&responses[0].json()["entry"][0]);
    let history = app.get(&format!("/fhir/Patient/{id}/_history")).await.json();
    let versions = |history: &Value| history["entry"].as_array().map_or(0, Vec::len);
    assert_eq!(versions(&history), 1, "the other clients' PUTs changed nothing: {history}");

    // Clients updating the one patient, half of them with what it holds and half with changes: every
    // Bundle succeeds (an unchanged update that finds the row changed before it locked it is applied
    // again), and a version is written only where it differs from the one before it.
    let requests = (0..8)
        .map(|client| {
            let mut person = patient("RACE");
            if client % 2 == 1 {
                person["name"][0]["family"] = json!(format!("Changed-{client}"));
            }
            let bundle = transaction(vec![json!({"resource": person,
                "request": {"method": "PUT", "url": format!("Patient?identifier={MRN}|RACE")}})]);
            build_request(
                Method::POST,
                "/fhir",
                &[("content-type", "application/fhir+json")],
                &bundle.to_string(),
            )
        })
        .collect();
    for response in app.race(requests).await {
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        assert_eq!(statuses(&response.json()), ["200 OK"]);
    }
    let history = app.get(&format!("/fhir/Patient/{id}/_history")).await.json();
    let families: Vec<&Value> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| &entry["resource"]["name"])
        .collect();
    assert!(families.len() >= 2, "{history}");
    assert!(
        families.windows(2).all(|pair| pair[0] != pair[1]),
        "no version repeats the one before: {history}"
    );
}

async fn malformed_bundles_are_refused_with_their_location(app: &TestApp) {
    app.post("/fhir", &patient("M1").to_string())
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    let collection = json!({"resourceType": "Bundle", "type": "collection"});
    let response = app.post("/fhir", &collection.to_string()).await;
    response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(response.json()["issue"][0]["expression"][0], "Bundle.type");
    let no_request = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": patient("M2")}]});
    let response = app.post("/fhir", &no_request.to_string()).await;
    response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(response.json()["issue"][0]["expression"][0], "Bundle.entry[0].request");
    let same_full_url = transaction(vec![
        entry("urn:uuid:6a6a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01", patient("M3"), "POST", "Patient"),
        entry("urn:uuid:6a6a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01", patient("M4"), "POST", "Patient"),
    ]);
    let response = post_bundle(app, &same_full_url).await;
    response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(response.json()["issue"][0]["expression"][0], "Bundle.entry[1].fullUrl");
    let id = app.create("Patient", &patient("M5").to_string()).await;
    let mut again = patient("M5");
    again["id"] = json!(id);
    let twice = transaction(vec![
        entry(
            "urn:uuid:6a6a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e02",
            again.clone(),
            "PUT",
            &format!("Patient/{id}"),
        ),
        json!({"request": {"method": "DELETE", "url": format!("Patient/{id}")}}),
    ]);
    post_bundle(app, &twice).await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    let wrong_type = transaction(vec![entry(
        "urn:uuid:6a6a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e03",
        patient("M6"),
        "POST",
        "ImagingStudy",
    )]);
    let response = post_bundle(app, &wrong_type).await;
    assert_eq!(
        response.json()["issue"][0]["expression"][0],
        "Bundle.entry[0].resource.resourceType"
    );
    let metadata = app.get("/fhir/metadata").await.json();
    let system: Vec<&str> = metadata["rest"][0]["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|interaction| interaction["code"].as_str().unwrap())
        .collect();
    assert!(system.contains(&"transaction") && system.contains(&"batch"), "{system:?}");
    // The guide's spelling, POST [base]/Bundle, is the same interaction.
    let response = app
        .post(
            "/fhir/Bundle",
            &transaction(vec![entry(
                "urn:uuid:6a6a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e04",
                patient("M7"),
                "POST",
                "Patient",
            )])
            .to_string(),
        )
        .await;
    assert_eq!(statuses(&response.json()), ["201 Created"]);
}

async fn reads_in_a_transaction_see_its_writes(app: &TestApp) {
    let bundle = transaction(vec![
        json!({"request": {"method": "GET", "url": format!("Patient?identifier={MRN}|READ1")}}),
        entry("urn:uuid:7b7a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01", patient("READ1"), "POST", "Patient"),
    ]);
    let body = post_bundle(app, &bundle).await.json();
    assert_eq!(statuses(&body), ["200 OK", "201 Created"]);
    assert_eq!(
        body["entry"][0]["resource"]["entry"].as_array().map_or(0, Vec::len),
        1,
        "GET entries run after the writes"
    );
}

async fn deletes_in_a_transaction(app: &TestApp) {
    let first = app.create("Patient", &patient("D1").to_string()).await;
    app.create("Patient", &patient("D2").to_string()).await;
    let bundle = transaction(vec![
        json!({"request": {"method": "DELETE", "url": format!("Patient/{first}")}}),
        json!({"request": {"method": "DELETE", "url": format!("Patient?identifier={MRN}|D2")}}),
        json!({"request": {"method": "DELETE", "url": format!("Patient?identifier={MRN}|nobody")}}),
        // A conditional create after the delete of its match creates anew (deletes come first).
        json!({"resource": patient("D2"), "request": {"method": "POST", "url": "Patient", "ifNoneExist": format!("identifier={MRN}|D2")}}),
    ]);
    let body = post_bundle(app, &bundle).await.json();
    assert_eq!(
        statuses(&body),
        ["204 No Content", "204 No Content", "204 No Content", "201 Created"]
    );
    assert_eq!(app.get(&format!("/fhir/Patient/{first}")).await.status, StatusCode::GONE);
    assert_eq!(matches(app, &format!("Patient?identifier={MRN}|D2")).await, 1);
    let missing =
        transaction(vec![json!({"request": {"method": "DELETE", "url": "Patient/never-was"}})]);
    post_bundle(app, &missing).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
}

async fn prefer_shapes_the_entry_responses(app: &TestApp) {
    let bundle = transaction(vec![entry(
        "urn:uuid:8c8a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01",
        patient("P1"),
        "POST",
        "Patient",
    )])
    .to_string();
    let headers = |prefer| [("content-type", "application/fhir+json"), ("prefer", prefer)];
    let representation =
        app.request(Method::POST, "/fhir", &headers("return=representation"), &bundle).await.json();
    assert_eq!(representation["entry"][0]["resource"]["identifier"][0]["value"], "P1");
    assert_eq!(representation["entry"][0]["resource"]["meta"]["versionId"], "1");
    let minimal =
        app.request(Method::POST, "/fhir", &headers("return=minimal"), &bundle).await.json();
    assert!(minimal["entry"][0].get("resource").is_none(), "{minimal}");
    assert_eq!(minimal["entry"][0]["response"]["etag"], "W/\"1\"");
    let outcome = app
        .request(Method::POST, "/fhir", &headers("return=OperationOutcome"), &bundle)
        .await
        .json();
    assert_eq!(outcome["entry"][0]["response"]["outcome"]["resourceType"], "OperationOutcome");
    assert!(outcome["entry"][0]["response"]["lastModified"].is_string());
}

/// A report with a 5 MB PDF (base64 in `presentedForm.data`) is stored and served byte for byte.
async fn a_five_megabyte_report_round_trips_byte_exact(app: &TestApp) {
    let router =
        app.router_with(cdr_api::ApiConfig { max_body_bytes: 16 * 1024 * 1024, ..api_config() });
    // Deterministic bytes with every value.
    let bytes: Vec<u8> =
        (0..5 * 1024 * 1024_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let data = base64(&bytes);
    let report = json!({"resourceType": "DiagnosticReport", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4"}]},
        "subject": {"reference": "urn:uuid:9d9a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01"},
        "presentedForm": [{"contentType": "application/pdf", "data": data}]});
    let bundle = transaction(vec![
        entry("urn:uuid:9d9a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01", patient("PDF"), "POST", "Patient"),
        entry("urn:uuid:9d9a0d5e-4c1e-4a51-8f7e-6a2b7c9d0e02", report, "POST", "DiagnosticReport"),
    ]);
    let headers = [("content-type", "application/fhir+json"), ("prefer", "return=minimal")];
    let response =
        send_to(&router, build_request(Method::POST, "/fhir", &headers, &bundle.to_string())).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let id = location_id(&response.json()["entry"][1]);
    let stored = send_to(
        &router,
        build_request(Method::GET, &format!("/fhir/DiagnosticReport/{id}"), &[], ""),
    )
    .await;
    assert_eq!(stored.json()["presentedForm"][0]["data"].as_str(), Some(data.as_str()));
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn patch_entries_in_both_formats(app: &TestApp) {
    let first = app.create("Patient", &patient("PA1").to_string()).await;
    app.create("Patient", &patient("PA2").to_string()).await;
    let fhirpath = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.birthDate"},
        {"name": "value", "valueDate": "1980-02-03"}]}]});
    let json_patch = |operations: &str| {
        json!({"resourceType": "Binary", "contentType": "application/json-patch+json",
               "data": base64(operations.as_bytes())})
    };
    let bundle = transaction(vec![
        json!({"resource": fhirpath, "request": {"method": "PATCH", "url": format!("Patient/{first}"), "ifMatch": "W/\"1\""}}),
        json!({"resource": json_patch(r#"[{"op":"add","path":"/active","value":true}]"#),
               "request": {"method": "PATCH", "url": format!("Patient?identifier={MRN}|PA2")}}),
    ]);
    let response = post_bundle(app, &bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    assert_eq!(statuses(&body), ["200 OK", "200 OK"]);
    assert_eq!(body["entry"][0]["response"]["etag"], "W/\"2\"");
    assert_eq!(app.get(&format!("/fhir/Patient/{first}")).await.json()["birthDate"], "1980-02-03");
    assert_eq!(matches(app, format!("Patient?identifier={MRN}|PA2&active=true")).await, 1);

    // A patch that cannot be applied rolls back the whole transaction, other entries included.
    let failing = transaction(vec![
        entry("urn:uuid:aeaa0d5e-4c1e-4a51-8f7e-6a2b7c9d0e01", patient("PA3"), "POST", "Patient"),
        json!({"resource": json_patch(r#"[{"op":"test","path":"/birthDate","value":"1900-01-01"}]"#),
               "request": {"method": "PATCH", "url": format!("Patient/{first}")}}),
    ]);
    let response = post_bundle(app, &failing).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
    assert!(
        response.json()["issue"][0]["expression"][0]
            .as_str()
            .unwrap()
            .starts_with("Bundle.entry[1]")
    );
    assert_eq!(matches(app, format!("Patient?identifier={MRN}|PA3")).await, 0);
    // Not a patch document.
    let wrong = transaction(vec![json!({"resource": patient("PA4"),
        "request": {"method": "PATCH", "url": format!("Patient/{first}")}})]);
    let response = post_bundle(app, &wrong).await;
    response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(
        response.json()["issue"][0]["expression"][0],
        "Bundle.entry[0].resource.resourceType"
    );
}

/// References in the values a PATCH entry writes are resolved as the resources' own: to the entry with
/// that fullUrl (under the id a conditional update settled on) and by conditional reference.
async fn patch_values_refer_to_other_entries(app: &TestApp) {
    let target = app.create("Patient", &patient("PV1").to_string()).await;
    let existing_org = app
        .create(
            "Organization",
            &json!({"resourceType": "Organization", "identifier": [{"system": MRN, "value": "ORG1"}]})
                .to_string(),
        )
        .await;
    let linked = app.create("Patient", &patient("PV2").to_string()).await;
    let practitioner = "urn:uuid:b1c2d3e4-0000-4000-8000-000000000001";
    let organization = "urn:uuid:b1c2d3e4-0000-4000-8000-000000000002";
    let fhirpath = json!({"resourceType": "Parameters", "parameter": [
        {"name": "operation", "part": [
            {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "generalPractitioner"},
            {"name": "value", "valueReference": {"reference": practitioner}}]},
        {"name": "operation", "part": [
            {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "Patient"},
            {"name": "name", "valueString": "link"},
            {"name": "value", "part": [
                {"name": "other", "valueReference": {"reference": format!("Patient?identifier={MRN}|PV2")}},
                {"name": "type", "valueCode": "seealso"}]}]}]});
    let json_patch = json!({"resourceType": "Binary", "contentType": "application/json-patch+json",
        "data": base64(format!(r#"[{{"op":"add","path":"/managingOrganization","value":{{"reference":"{organization}"}}}}]"#).as_bytes())});
    let bundle = transaction(vec![
        entry(practitioner, json!({"resourceType": "Practitioner"}), "POST", "Practitioner"),
        entry(
            organization,
            json!({"resourceType": "Organization", "identifier": [{"system": MRN, "value": "ORG1"}]}),
            "PUT",
            &format!("Organization?identifier={MRN}|ORG1"),
        ),
        json!({"resource": fhirpath, "request": {"method": "PATCH", "url": format!("Patient/{target}")}}),
        json!({"resource": json_patch,
               "request": {"method": "PATCH", "url": format!("Patient?identifier={MRN}|PV2")}}),
    ]);
    let response = post_bundle(app, &bundle).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let body = response.json();
    let new_practitioner = location_id(&body["entry"][0]);
    assert_eq!(location_id(&body["entry"][1]), existing_org);
    let patched = app.get(&format!("/fhir/Patient/{target}")).await.json();
    assert_eq!(
        patched["generalPractitioner"][0]["reference"],
        format!("Practitioner/{new_practitioner}")
    );
    assert_eq!(patched["link"][0]["other"]["reference"], format!("Patient/{linked}"));
    let patched = app.get(&format!("/fhir/Patient/{linked}")).await.json();
    assert_eq!(
        patched["managingOrganization"]["reference"],
        format!("Organization/{existing_org}")
    );

    // A urn: reference in a patch value that no entry owns fails the transaction at that value.
    let dangling = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "Patient.generalPractitioner[0].reference"},
        {"name": "value", "valueString": "urn:uuid:b1c2d3e4-0000-4000-8000-0000000000ff"}]}]});
    let response = post_bundle(
        app,
        &transaction(vec![json!({"resource": dangling,
            "request": {"method": "PATCH", "url": format!("Patient/{target}")}})]),
    )
    .await;
    response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "not-found");
    assert_eq!(
        response.json()["issue"][0]["expression"][0],
        "Bundle.entry[0].resource.parameter[0]"
    );
}

/// The miCDR contribution rules (`--mode micdr`), here with base validation so that the rules are tested
/// on their own.
mod contribution {
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    use super::{MRN, location_id, patient, post_bundle, statuses, transaction};
    use crate::backend_tests;
    use crate::helpers::TestApp;

    backend_tests!(
        with cdr_interactions::EngineConfig { contribution_rules: true, ..crate::helpers::engine_config() };
        a_submission_of_conditional_puts_is_accepted_and_resubmitted,
        other_entry_forms_and_ids_are_refused,
        a_bundle_names_a_patient_a_practitioner_and_an_organization,
        references_must_resolve
    );

    const LICENCE: &str = "https://fhir.cpso.on.ca/license";
    const UPI: &str = "https://fhir.hospital.example/upi";

    fn put(full_url: &str, resource: Value, criteria: &str) -> Value {
        let mut entry = json!({"fullUrl": full_url, "request": {"method": "PUT", "url": criteria}});
        entry["resource"] = resource;
        entry
    }

    /// Patient, Practitioner and Organization entries, then `more`.
    fn submission(mrn: &str, more: Vec<Value>) -> Value {
        let mut entries = vec![
            put(
                "urn:uuid:c0c0a0d5-4c1e-4a51-8f7e-6a2b7c9d0e01",
                patient(mrn),
                &format!("Patient?identifier={MRN}|{mrn}"),
            ),
            put(
                "urn:uuid:c0c0a0d5-4c1e-4a51-8f7e-6a2b7c9d0e02",
                json!({"resourceType": "Practitioner", "identifier": [{"system": LICENCE, "value": "12345"}]}),
                &format!("Practitioner?identifier={LICENCE}|12345"),
            ),
            put(
                "urn:uuid:c0c0a0d5-4c1e-4a51-8f7e-6a2b7c9d0e03",
                json!({"resourceType": "Organization", "identifier": [{"system": UPI, "value": "H1"}], "name": "Hospital"}),
                &format!("Organization?identifier={UPI}|H1"),
            ),
        ];
        entries.extend(more);
        transaction(entries)
    }

    fn order(accession: &str, subject: &str) -> Value {
        put(
            "urn:uuid:c0c0a0d5-4c1e-4a51-8f7e-6a2b7c9d0e04",
            json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                   "identifier": [{"system": "http://hospital.example/accession", "value": accession}],
                   "subject": {"reference": subject},
                   "requester": {"reference": "urn:uuid:c0c0a0d5-4c1e-4a51-8f7e-6a2b7c9d0e02"},
                   "performer": [{"reference": "urn:uuid:c0c0a0d5-4c1e-4a51-8f7e-6a2b7c9d0e03"}]}),
            &format!("ServiceRequest?identifier=http://hospital.example/accession|{accession}"),
        )
    }

    async fn a_submission_of_conditional_puts_is_accepted_and_resubmitted(app: &TestApp) {
        let bundle = submission(
            "MC1",
            vec![order("MC-ACC1", "urn:uuid:c0c0a0d5-4c1e-4a51-8f7e-6a2b7c9d0e01")],
        );
        let first = post_bundle(app, &bundle).await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        assert_eq!(statuses(&first.json()), ["201 Created"; 4]);
        let second = post_bundle(app, &bundle).await.json();
        assert_eq!(statuses(&second), ["200 OK"; 4]);
        assert_eq!(location_id(&first.json()["entry"][0]), location_id(&second["entry"][0]));
    }

    async fn other_entry_forms_and_ids_are_refused(app: &TestApp) {
        let mut bundle = submission("MC2", vec![]);
        bundle["entry"][0]["request"] = json!({"method": "POST", "url": "Patient"});
        let response = post_bundle(app, &bundle).await;
        response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
        assert_eq!(response.json()["issue"][0]["expression"][0], "Bundle.entry[0].request");
        let mut bundle = submission("MC2", vec![]);
        bundle["entry"][1]["resource"]["id"] = json!("chosen-by-the-client");
        let response = post_bundle(app, &bundle).await;
        response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
        assert_eq!(response.json()["issue"][0]["expression"][0], "Bundle.entry[1].resource.id");
    }

    async fn a_bundle_names_a_patient_a_practitioner_and_an_organization(app: &TestApp) {
        let mut bundle = submission("MC3", vec![]);
        bundle["entry"].as_array_mut().unwrap().truncate(1);
        let response = post_bundle(app, &bundle).await;
        response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule");
        let diagnostics = response.json()["issue"][0]["diagnostics"].as_str().unwrap().to_owned();
        assert!(diagnostics.contains("no Practitioner, no Organization"), "{diagnostics}");
        assert_eq!(super::matches(app, format!("Patient?identifier={MRN}|MC3")).await, 0);
    }

    async fn references_must_resolve(app: &TestApp) {
        // A stored patient may be referenced by id; a patient that does not exist may not.
        let created = app
            .request(
                axum::http::Method::POST,
                "/fhir/Patient",
                &[
                    ("content-type", "application/fhir+json"),
                    ("if-none-exist", &format!("identifier={MRN}|MC4")),
                ],
                &patient("MC4").to_string(),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        let stored = created.json()["id"].as_str().unwrap().to_owned();
        let bundle = submission("MC5", vec![order("MC-ACC4", &format!("Patient/{stored}"))]);
        let response = post_bundle(app, &bundle).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let bundle = submission("MC6", vec![order("MC-ACC5", "Patient/not-here")]);
        let response = post_bundle(app, &bundle).await;
        response.assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "not-found");
        assert_eq!(
            response.json()["issue"][0]["expression"][0],
            "Bundle.entry[3].resource.subject"
        );
        assert_eq!(super::matches(app, format!("Patient?identifier={MRN}|MC6")).await, 0);
        // A deleted patient does not resolve either.
        app.delete(&format!("/fhir/Patient/{stored}")).await;
        let bundle = submission("MC7", vec![order("MC-ACC6", &format!("Patient/{stored}"))]);
        post_bundle(app, &bundle)
            .await
            .assert_outcome(StatusCode::UNPROCESSABLE_ENTITY, "not-found");
    }
}

/// `[base]/` is `[base]`, as on HAPI: fhir-kit-client and fhirpy post their transactions there, and a
/// system search may be sent there too.
async fn the_base_with_a_trailing_slash_takes_bundles_and_system_searches(app: &TestApp) {
    let bundle = transaction(vec![entry(
        "urn:uuid:0c7c3f1e-5b0a-4d7e-9a51-2f4c8e6b1d03",
        patient("SLASH-1"),
        "POST",
        "Patient",
    )]);
    let response = app.post("/fhir/", &bundle.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let answer = response.json();
    assert_eq!(answer["type"], "transaction-response");
    assert_eq!(statuses(&answer), ["201 Created"]);
    let id = location_id(&answer["entry"][0]);
    let response = app.get(&format!("/fhir/?_type=Patient&identifier={MRN}|SLASH-1")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let found = response.json();
    assert_eq!(found["type"], "searchset");
    assert_eq!(found["entry"][0]["resource"]["id"], id.as_str(), "{found}");
    let batch = json!({"resourceType": "Bundle", "type": "batch",
                       "entry": [{"request": {"method": "GET", "url": format!("Patient/{id}")}}]});
    let answer = app.post("/fhir/", &batch.to_string()).await.json();
    assert_eq!(answer["type"], "batch-response");
    assert_eq!(statuses(&answer), ["200 OK"]);
}
