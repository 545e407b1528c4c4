//! Profile validation: `$validate` (raw resource and Parameters), 422 on invalid creates and updates
//! (narrative entities, reference grammar, references only a Bundle resolves and extension contexts among them), and the three validation modes (base, the default here; strict; off).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, TestResponse};

backend_tests!(
    validate_a_raw_resource,
    validate_a_parameters_resource_with_a_profile,
    validate_rejects_what_is_not_a_resource,
    invalid_create_is_unprocessable,
    invalid_update_is_unprocessable,
    narrative_entities_are_xml_own_or_numeric,
    malformed_references_are_unprocessable,
    extensions_outside_their_context_are_unprocessable,
    references_only_a_bundle_resolves_are_refused_on_single_writes,
    malformed_json_is_still_a_bad_request,
    declared_profiles_are_enforced_in_base_mode,
    capability_statement_declares_profiles_and_validate,
    validate_an_instance_for_update,
    validate_an_instance_for_create,
    validate_an_instance_for_delete,
    validate_an_instance_refuses_what_it_cannot_check,
    validate_mode_update_at_type_level_names_the_resource_by_its_id,
);

const ONTARIO_PATIENT: &str =
    "http://ontariohealth.ca/fhir/mi/StructureDefinition/ca-on-mi-profile-patient";

/// A Patient that satisfies base R4 but not the Ontario profile (no MRN, no health card number).
const PATIENT_WITHOUT_MRN: &str =
    r#"{"resourceType":"Patient","name":[{"family":"Doe"}],"gender":"female"}"#;

/// The valid Ontario example (its `id` is ignored by create).
const ONTARIO_EXAMPLE: &str =
    include_str!("../../profiles/examples/patient/valid-mrn-and-hcn.json");

/// The `(severity, expression)` of every issue.
fn issues(response: &TestResponse) -> Vec<(String, String)> {
    let outcome = response.json();
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
    outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|issue| {
            (
                issue["severity"].as_str().unwrap().to_owned(),
                issue["expression"][0].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn errors_at(response: &TestResponse) -> Vec<String> {
    issues(response)
        .into_iter()
        .filter(|(severity, _)| severity == "error")
        .map(|(_, expression)| expression)
        .collect()
}

async fn validate_a_raw_resource(app: &TestApp) {
    let invalid = r#"{"resourceType":"Patient","gender":"x","birthDate":"1970-13-01"}"#;
    let response = app.post("/fhir/Patient/$validate", invalid).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let mut errors = errors_at(&response);
    errors.sort();
    assert_eq!(errors, ["Patient.birthDate", "Patient.gender"], "{}", response.text());

    let valid = app.post("/fhir/Patient/$validate", PATIENT_WITHOUT_MRN).await;
    assert_eq!(valid.status, StatusCode::OK);
    assert!(
        issues(&valid).iter().all(|(severity, _)| severity == "information"),
        "{}",
        valid.text()
    );

    let system_level = app.post("/fhir/$validate", invalid).await;
    assert_eq!(system_level.status, StatusCode::OK);
    assert_eq!(errors_at(&system_level).len(), 2, "{}", system_level.text());
    // Nothing was stored.
    let history = app.get("/fhir/Patient/_history").await.json();
    assert!(history.get("entry").is_none(), "{history}");
}

async fn validate_a_parameters_resource_with_a_profile(app: &TestApp) {
    let patient: Value = serde_json::from_str(PATIENT_WITHOUT_MRN).unwrap();
    let parameters = |profile: Option<&str>, mode: &str| {
        let mut parts = vec![
            json!({"name": "resource", "resource": patient}),
            json!({"name": "mode", "valueCode": mode}),
        ];
        if let Some(profile) = profile {
            parts.push(json!({"name": "profile", "valueCanonical": profile}));
        }
        json!({"resourceType": "Parameters", "parameter": parts}).to_string()
    };
    let against_base = app.post("/fhir/Patient/$validate", &parameters(None, "create")).await;
    assert_eq!(against_base.status, StatusCode::OK);
    assert!(errors_at(&against_base).is_empty(), "{}", against_base.text());

    let against_ontario =
        app.post("/fhir/$validate", &parameters(Some(ONTARIO_PATIENT), "update")).await;
    assert_eq!(against_ontario.status, StatusCode::OK);
    let outcome = against_ontario.text();
    assert!(errors_at(&against_ontario).iter().any(|at| at == "Patient"), "{outcome}");
    assert!(outcome.contains("ca-on-mi-pat-1"), "{outcome}");

    let unknown_profile =
        app.post("/fhir/$validate", &parameters(Some("http://example.org/nope"), "create")).await;
    assert_eq!(unknown_profile.status, StatusCode::OK);
    assert!(!errors_at(&unknown_profile).is_empty(), "{}", unknown_profile.text());

    // A delete needs an instance; an unknown mode is refused.
    app.post("/fhir/$validate", &parameters(None, "delete"))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.post("/fhir/Patient/$validate", &parameters(None, "remove"))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

async fn validate_rejects_what_is_not_a_resource(app: &TestApp) {
    app.post("/fhir/Patient/$validate", "{not json")
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "structure");
    app.post("/fhir/Patient/$validate", r#"{"resourceType":"Observation"}"#)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.post("/fhir/$validate", r#"{"resourceType":"Parameters","parameter":[]}"#)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.post("/fhir/Unknown/$validate", PATIENT_WITHOUT_MRN)
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-supported");
}

async fn invalid_create_is_unprocessable(app: &TestApp) {
    let response = app
        .post(
            "/fhir/Patient",
            r#"{"resourceType":"Patient","gender":"x","name":[{"family":"Doe","unknown":1}]}"#,
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
    let outcome = response.json();
    let codes: Vec<&str> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|issue| issue["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["structure", "code-invalid"], "{outcome}");
    let mut errors = errors_at(&response);
    errors.sort();
    assert_eq!(errors, ["Patient.gender", "Patient.name[0].unknown"], "{outcome}");
    let history = app.get("/fhir/Patient/_history").await.json();
    assert!(history.get("entry").is_none(), "{history}");
}

async fn invalid_update_is_unprocessable(app: &TestApp) {
    let id = app.create("Patient", PATIENT_WITHOUT_MRN).await;
    let invalid = format!(r#"{{"resourceType":"Patient","id":"{id}","birthDate":"yesterday"}}"#);
    let response = app.put(&format!("/fhir/Patient/{id}"), &invalid).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
    assert_eq!(errors_at(&response), ["Patient.birthDate"]);
    let conditional = app.put("/fhir/Patient?identifier=http://x|1", &invalid).await;
    assert_eq!(conditional.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", conditional.text());
    let read = app.get(&format!("/fhir/Patient/{id}")).await;
    assert_eq!(read.header("etag"), Some("W/\"1\""));
}

/// A narrative may use XML's predefined entities and numeric character references; any other named entity
/// (`&reg;`, defined only by an HTML DTD) is refused at `Patient.text.div`.
async fn narrative_entities_are_xml_own_or_numeric(app: &TestApp) {
    let patient = |inner: &str| {
        json!({
            "resourceType": "Patient",
            "text": {
                "status": "generated",
                "div": format!(r#"<div xmlns="http://www.w3.org/1999/xhtml">{inner}</div>"#),
            },
        })
        .to_string()
    };
    let allowed =
        app.post("/fhir/Patient", &patient("Acme&#174; &#xAE; &amp; &lt;&gt; &quot;&apos;")).await;
    assert_eq!(allowed.status, StatusCode::CREATED, "{}", allowed.text());
    let refused = app.post("/fhir/Patient", &patient("Acme&reg; scanner")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text());
    assert_eq!(errors_at(&refused), ["Patient.text.div"], "{}", refused.text());
    assert!(refused.text().contains("&reg;"), "{}", refused.text());
}

/// A literal reference follows R4's grammar (`[type]/[id]`, `…/_history/[vid]`, absolute URL, `#id`, `urn:`);
/// a malformed one is refused at its `reference` element and nothing is stored.
/// `urn:uuid:`/`urn:oid:` references and conditional references only have meaning inside a transaction Bundle
/// (R4 references.html, http.html#trules): a single create or update (plain or conditional) holding one is a 422
/// at the reference, in the default mode; the same references in a transaction resolve and are stored as
/// `Type/id`. `$validate` of the standalone resource accepts them, as the HL7 validator does.
async fn references_only_a_bundle_resolves_are_refused_on_single_writes(app: &TestApp) {
    let organization =
        app.create("Organization", r#"{"resourceType":"Organization","name":"Clinic"}"#).await;
    let with = |reference: &str| {
        json!({
            "resourceType": "Patient",
            "identifier": [{"system": "http://hospital.example/mrn", "value": "U1"}],
            "generalPractitioner": [{"display": "Dr. Who"}, {"reference": reference}],
        })
    };
    let bundle_only = [
        "urn:uuid:0f5e2a7c-2a4e-4c1b-9d55-2b6f3c1e9a10",
        "urn:oid:1.2.36.146.595.217.0.1",
        "Organization?name=Clinic",
    ];
    let expected = ["Patient.generalPractitioner[1].reference"];
    for reference in bundle_only {
        let body = with(reference).to_string();
        let created = app.post("/fhir/Patient", &body).await;
        assert_eq!(
            created.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reference}: {}",
            created.text()
        );
        assert_eq!(errors_at(&created), expected, "{reference}");
        let conditional = app
            .send(
                axum::http::Request::post("/fhir/Patient")
                    .header("content-type", "application/fhir+json")
                    .header("if-none-exist", "identifier=http://hospital.example/mrn|U1")
                    .body(axum::body::Body::from(body.clone()))
                    .unwrap(),
            )
            .await;
        assert_eq!(conditional.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", conditional.text());
        let by_criteria =
            app.put("/fhir/Patient?identifier=http://hospital.example/mrn|U1", &body).await;
        assert_eq!(by_criteria.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", by_criteria.text());
        assert_eq!(errors_at(&by_criteria), expected, "{reference}");
    }
    let id =
        app.create("Patient", &with(&format!("Organization/{organization}")).to_string()).await;
    for reference in bundle_only {
        let mut body = with(reference);
        body["id"] = json!(id);
        let updated = app.put(&format!("/fhir/Patient/{id}"), &body.to_string()).await;
        assert_eq!(
            updated.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reference}: {}",
            updated.text()
        );
        assert_eq!(errors_at(&updated), expected, "{reference}");
    }
    let validated = app.post("/fhir/Patient/$validate", &with(bundle_only[2]).to_string()).await;
    assert_eq!(validated.status, StatusCode::OK);
    assert!(errors_at(&validated).is_empty(), "{}", validated.text());

    // In a transaction, the same references resolve: to the entry, and to the stored Organization.
    let transaction = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": bundle_only[0],
                "resource": {"resourceType": "Organization", "name": "Network"},
                "request": {"method": "POST", "url": "Organization"},
            },
            {
                "resource": {
                    "resourceType": "Patient",
                    "managingOrganization": {"reference": bundle_only[0]},
                    "generalPractitioner": [{"reference": bundle_only[2]}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    });
    let response = app.post("/fhir", &transaction.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let location = response.json()["entry"][1]["response"]["location"].as_str().unwrap().to_owned();
    let patient_id = location.split('/').nth(1).unwrap();
    let stored = app.get(&format!("/fhir/Patient/{patient_id}")).await.json();
    assert!(
        stored["managingOrganization"]["reference"].as_str().unwrap().starts_with("Organization/"),
        "{stored}"
    );
    assert_eq!(
        stored["generalPractitioner"][0]["reference"],
        format!("Organization/{organization}")
    );
}

/// R4's `humanname-mothers-family` has the context `HumanName.family`: on the family name it is stored, on the
/// name itself it is a 422 at the extension.
async fn extensions_outside_their_context_are_unprocessable(app: &TestApp) {
    let mothers_family = json!({
        "url": "http://hl7.org/fhir/StructureDefinition/humanname-mothers-family",
        "valueString": "Lopez",
    });
    let on_family = json!({
        "resourceType": "Patient",
        "name": [{"family": "Moreno Lopez", "_family": {"extension": [mothers_family]}}],
    });
    let response = app.post("/fhir/Patient", &on_family.to_string()).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());

    let on_name = json!({
        "resourceType": "Patient",
        "name": [{"extension": [mothers_family], "family": "Moreno Lopez"}],
    });
    let response = app.post("/fhir/Patient", &on_name.to_string()).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
    assert_eq!(errors_at(&response), ["Patient.name[0].extension[0]"], "{}", response.text());
    assert!(
        response.text().contains("is not allowed to be used at this point"),
        "{}",
        response.text()
    );
}

async fn malformed_references_are_unprocessable(app: &TestApp) {
    let organization =
        app.create("Organization", r#"{"resourceType":"Organization","name":"x"}"#).await;
    let with_practitioner = |reference: &str| {
        json!({"resourceType": "Patient", "generalPractitioner": [{"reference": reference}]})
            .to_string()
    };
    for reference in [
        format!("Organization/{organization}"),
        format!("Organization/{organization}/_history/1"),
        format!("http://other.example/fhir/Organization/{organization}"),
    ] {
        let response = app.post("/fhir/Patient", &with_practitioner(&reference)).await;
        assert_eq!(response.status, StatusCode::CREATED, "{reference}: {}", response.text());
    }
    for reference in
        ["Patient/not a valid id!", "Organization", "Nonsense/1", "urn:uuid:42", "http://"]
    {
        let response = app.post("/fhir/Patient", &with_practitioner(reference)).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reference}: {}",
            response.text()
        );
        assert_eq!(
            errors_at(&response),
            ["Patient.generalPractitioner[0].reference"],
            "{reference}"
        );
    }
    let update = json!({
        "resourceType": "Organization",
        "id": organization,
        "name": "x",
        "partOf": {"reference": "Organization/a/b"},
    });
    let response =
        app.put(&format!("/fhir/Organization/{organization}"), &update.to_string()).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
    assert_eq!(errors_at(&response), ["Organization.partOf.reference"]);
    let stored = app.get("/fhir/Patient?_summary=count").await.json();
    assert_eq!(stored["total"], 3, "only the well-formed references were stored: {stored}");
}

async fn malformed_json_is_still_a_bad_request(app: &TestApp) {
    app.post("/fhir/Patient", r#"{"resourceType":"Patient","#)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "structure");
}

async fn declared_profiles_are_enforced_in_base_mode(app: &TestApp) {
    let declaring = format!(
        r#"{{"resourceType":"Patient","meta":{{"profile":["{ONTARIO_PATIENT}"]}},"name":[{{"family":"Doe"}}],"gender":"female"}}"#
    );
    let response = app.post("/fhir/Patient", &declaring).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
    assert!(response.text().contains("ca-on-mi-pat-1"), "{}", response.text());
    app.create("Patient", PATIENT_WITHOUT_MRN).await;
    app.create("Patient", ONTARIO_EXAMPLE).await;
}

async fn capability_statement_declares_profiles_and_validate(app: &TestApp) {
    let metadata = app.get("/fhir/metadata").await.json();
    let rest = &metadata["rest"][0];
    let validate = json!({
        "name": "validate",
        "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    });
    assert_eq!(rest["operation"][0]["name"], "validate");
    assert_eq!(rest["operation"][0]["definition"], validate["definition"]);
    let resources = rest["resource"].as_array().unwrap();
    let patient = resources.iter().find(|resource| resource["type"] == "Patient").unwrap();
    assert_eq!(patient["profile"], "http://hl7.org/fhir/StructureDefinition/Patient");
    assert_eq!(patient["supportedProfile"], json!([ONTARIO_PATIENT]));
    assert_eq!(patient["operation"][0]["name"], "validate");
    assert_eq!(patient["operation"][0]["definition"], validate["definition"]);
    let documentation = patient["operation"][0]["documentation"].as_str().unwrap();
    assert!(documentation.contains("POST [base]/[type]/[id]/$validate"), "{documentation}");
    let with_profiles =
        resources.iter().filter(|resource| resource.get("supportedProfile").is_some()).count();
    assert_eq!(with_profiles, 8);
}

/// The diagnostics of every issue of `severity`.
fn diagnostics(response: &TestResponse, severity: &str) -> Vec<String> {
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let outcome = response.json();
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
    outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|issue| issue["severity"] == severity)
        .map(|issue| issue["diagnostics"].as_str().unwrap().to_owned())
        .collect()
}

/// A Parameters of `$validate` with these parts (`resource` and `mode` when given).
fn validate_parameters(resource: Option<&Value>, mode: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(resource) = resource {
        parts.push(json!({"name": "resource", "resource": resource}));
    }
    if let Some(mode) = mode {
        parts.push(json!({"name": "mode", "valueCode": mode}));
    }
    json!({"resourceType": "Parameters", "parameter": parts}).to_string()
}

/// The number of versions of `Patient/id` in its history.
async fn versions(app: &TestApp, id: &str) -> usize {
    let history = app.get(&format!("/fhir/Patient/{id}/_history")).await.json();
    history["entry"].as_array().map_or(0, Vec::len)
}

/// Mode update at instance level: the resource's id must be the URL's and the resource must exist (update as
/// create is off here); an update that changes nothing, or brings a deleted resource back, is said so.
/// Nothing is written.
async fn validate_an_instance_for_update(app: &TestApp) {
    let id = app.create("Patient", PATIENT_WITHOUT_MRN).await;
    let url = format!("/fhir/Patient/{id}/$validate");
    let mut patient = app.get(&format!("/fhir/Patient/{id}")).await.json();

    let same = app.post(&format!("{url}?mode=update"), &patient.to_string()).await;
    assert!(errors_at(&same).is_empty(), "{}", same.text());
    let information = diagnostics(&same, "information");
    assert!(information.iter().any(|text| text.contains("change nothing")), "{information:?}");

    patient["gender"] = json!("male");
    let changed = app.post(&url, &validate_parameters(Some(&patient), Some("update"))).await;
    assert!(errors_at(&changed).is_empty(), "{}", changed.text());
    assert!(
        diagnostics(&changed, "information").iter().all(|text| !text.contains("change nothing")),
        "{}",
        changed.text()
    );

    patient["id"] = json!("another-id");
    let mismatch = app.post(&format!("{url}?mode=update"), &patient.to_string()).await;
    assert_eq!(errors_at(&mismatch), ["Patient.id"], "{}", mismatch.text());
    assert!(mismatch.text().contains("another-id"), "{}", mismatch.text());

    let without_id = app.post(&format!("{url}?mode=update"), PATIENT_WITHOUT_MRN).await;
    assert_eq!(errors_at(&without_id), ["Patient.id"], "{}", without_id.text());

    // Invalid content is reported with the update's own findings.
    patient["id"] = json!(id);
    patient["gender"] = json!("x");
    let invalid = app.post(&format!("{url}?mode=update"), &patient.to_string()).await;
    assert_eq!(errors_at(&invalid), ["Patient.gender"], "{}", invalid.text());

    // An instance that does not exist cannot be updated with update as create off.
    let mut unknown = patient.clone();
    unknown["id"] = json!("no-such-patient");
    unknown["gender"] = json!("female");
    let missing =
        app.post("/fhir/Patient/no-such-patient/$validate?mode=update", &unknown.to_string()).await;
    let errors = diagnostics(&missing, "error");
    assert_eq!(errors.len(), 1, "{}", missing.text());
    assert!(errors[0].contains("does not exist"), "{errors:?}");

    assert_eq!(app.delete(&format!("/fhir/Patient/{id}")).await.status, StatusCode::NO_CONTENT);
    patient["gender"] = json!("female");
    let deleted = app.post(&format!("{url}?mode=update"), &patient.to_string()).await;
    assert!(errors_at(&deleted).is_empty(), "{}", deleted.text());
    let information = diagnostics(&deleted, "information");
    assert!(information.iter().any(|text| text.contains("bring it back")), "{information:?}");
    assert_eq!(versions(app, &id).await, 2);
}

/// Mode create (and no mode) at instance level validate the content as the type level does: the URL's
/// instance is not looked up, since a create assigns its own id.
async fn validate_an_instance_for_create(app: &TestApp) {
    let invalid: Value =
        serde_json::from_str(r#"{"resourceType":"Patient","gender":"x","birthDate":"1970-13-01"}"#)
            .unwrap();
    let valid: Value = serde_json::from_str(PATIENT_WITHOUT_MRN).unwrap();
    for url in ["/fhir/Patient/any-id/$validate", "/fhir/Patient/$validate"] {
        let response = app.post(url, &validate_parameters(Some(&invalid), Some("create"))).await;
        let mut errors = errors_at(&response);
        errors.sort();
        assert_eq!(errors, ["Patient.birthDate", "Patient.gender"], "{}", response.text());
        let response = app.post(&format!("{url}?mode=create"), &valid.to_string()).await;
        assert!(
            issues(&response).iter().all(|(severity, _)| severity == "information"),
            "{}",
            response.text()
        );
        let no_mode = app.post(url, &valid.to_string()).await;
        assert!(errors_at(&no_mode).is_empty(), "{}", no_mode.text());
        let mut with_id = valid.clone();
        with_id["id"] = json!("chosen");
        let ignored = app.post(&format!("{url}?mode=create"), &with_id.to_string()).await;
        assert!(errors_at(&ignored).is_empty(), "{}", ignored.text());
        let information = diagnostics(&ignored, "information");
        assert!(
            information.iter().any(|text| text.contains("ignores the resource's id")),
            "{information:?}"
        );
    }
    let history = app.get("/fhir/Patient/_history").await.json();
    assert!(history.get("entry").is_none(), "{history}");
}

/// Mode delete: no resource is needed (the URL's mode, or a Parameters without one); a live or deleted
/// resource may be deleted; an unknown one is 404.
async fn validate_an_instance_for_delete(app: &TestApp) {
    let id = app.create("Patient", PATIENT_WITHOUT_MRN).await;
    let url = format!("/fhir/Patient/{id}/$validate");
    let live = app.request(Method::POST, &format!("{url}?mode=delete"), &[], "").await;
    assert_eq!(diagnostics(&live, "information"), [format!("Patient/{id} may be deleted")]);
    let by_parameters = app.post(&url, &validate_parameters(None, Some("delete"))).await;
    assert_eq!(diagnostics(&by_parameters, "information").len(), 1, "{}", by_parameters.text());
    // The content of a delete is ignored, as R4 says.
    let with_body =
        app.post(&format!("{url}?mode=delete"), r#"{"resourceType":"Patient","gender":"x"}"#).await;
    assert!(errors_at(&with_body).is_empty(), "{}", with_body.text());
    assert_eq!(versions(app, &id).await, 1);

    assert_eq!(app.delete(&format!("/fhir/Patient/{id}")).await.status, StatusCode::NO_CONTENT);
    let deleted = app.post(&format!("{url}?mode=delete"), "").await;
    let information = diagnostics(&deleted, "information");
    assert!(information[0].contains("already deleted"), "{information:?}");

    app.post("/fhir/Patient/no-such-patient/$validate?mode=delete", "")
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    app.post("/fhir/Patient/$validate?mode=delete", "")
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

/// What the instance level cannot validate is an error: a resource of another type, an unknown type, no
/// resource, an unknown mode, two modes that disagree, mode profile without a profile; GET is not allowed.
async fn validate_an_instance_refuses_what_it_cannot_check(app: &TestApp) {
    let id = app.create("Patient", PATIENT_WITHOUT_MRN).await;
    let url = format!("/fhir/Patient/{id}/$validate");
    app.post(&url, r#"{"resourceType":"Organization","name":"Hospital"}"#)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.post(&format!("/fhir/Unknown/{id}/$validate"), PATIENT_WITHOUT_MRN)
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-supported");
    app.post(&url, "").await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.post(&format!("{url}?mode=update"), &validate_parameters(None, Some("update")))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.post(&format!("{url}?mode=erase"), PATIENT_WITHOUT_MRN)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    let patient: Value = serde_json::from_str(PATIENT_WITHOUT_MRN).unwrap();
    app.post(&format!("{url}?mode=create"), &validate_parameters(Some(&patient), Some("update")))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.post(&format!("{url}?mode=profile"), PATIENT_WITHOUT_MRN)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    let with_profile = app
        .post(&format!("{url}?mode=profile&profile={ONTARIO_PATIENT}"), PATIENT_WITHOUT_MRN)
        .await;
    assert!(errors_at(&with_profile).iter().any(|at| at == "Patient"), "{}", with_profile.text());
    app.post("/fhir/Patient/not%20an%20id/$validate", PATIENT_WITHOUT_MRN)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.get(&url).await.assert_outcome(StatusCode::METHOD_NOT_ALLOWED, "not-supported");
    app.get("/fhir/Patient/$validate")
        .await
        .assert_outcome(StatusCode::METHOD_NOT_ALLOWED, "not-supported");
}

/// Mode update at type and system level checks the update of the resource its own id names.
async fn validate_mode_update_at_type_level_names_the_resource_by_its_id(app: &TestApp) {
    let id = app.create("Patient", PATIENT_WITHOUT_MRN).await;
    let mut patient: Value = serde_json::from_str(PATIENT_WITHOUT_MRN).unwrap();
    patient["id"] = json!(id);
    patient["gender"] = json!("male");
    for url in ["/fhir/Patient/$validate?mode=update", "/fhir/$validate?mode=update"] {
        let existing = app.post(url, &patient.to_string()).await;
        assert!(errors_at(&existing).is_empty(), "{}", existing.text());
    }
    patient["id"] = json!("no-such-patient");
    let unknown = app.post("/fhir/Patient/$validate?mode=update", &patient.to_string()).await;
    assert!(diagnostics(&unknown, "error")[0].contains("does not exist"), "{}", unknown.text());
    let without_id = app.post("/fhir/$validate?mode=update", PATIENT_WITHOUT_MRN).await;
    assert_eq!(errors_at(&without_id), ["Patient.id"], "{}", without_id.text());
}

mod update_create {
    use serde_json::{Value, json};

    use super::{PATIENT_WITHOUT_MRN, diagnostics, errors_at};
    use crate::backend_tests;
    use crate::helpers::TestApp;

    backend_tests!(with cdr_interactions::EngineConfig { update_create: true, ..crate::helpers::engine_config() };
        validate_update_of_an_unknown_id_would_create_it);

    /// With update as create on, mode update of an instance that does not exist is no error.
    async fn validate_update_of_an_unknown_id_would_create_it(app: &TestApp) {
        let mut patient: Value = serde_json::from_str(PATIENT_WITHOUT_MRN).unwrap();
        patient["id"] = json!("new-patient");
        let response =
            app.post("/fhir/Patient/new-patient/$validate?mode=update", &patient.to_string()).await;
        assert!(errors_at(&response).is_empty(), "{}", response.text());
        let information = diagnostics(&response, "information");
        assert!(information.iter().any(|text| text.contains("would create it")), "{information:?}");
        assert_eq!(
            app.get("/fhir/Patient/new-patient").await.status,
            axum::http::StatusCode::NOT_FOUND
        );
    }
}

mod strict {
    use super::{ONTARIO_EXAMPLE, PATIENT_WITHOUT_MRN};
    use crate::backend_tests;
    use crate::helpers::TestApp;
    use axum::http::StatusCode;

    backend_tests!(with cdr_interactions::EngineConfig { validation: cdr_interactions::ValidationMode::Strict, ..crate::helpers::engine_config() };
        strict_mode_requires_the_ontario_profile);

    async fn strict_mode_requires_the_ontario_profile(app: &TestApp) {
        let response = app.post("/fhir/Patient", PATIENT_WITHOUT_MRN).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", response.text());
        assert!(response.text().contains("ca-on-mi-pat-1"), "{}", response.text());
        app.create("Patient", ONTARIO_EXAMPLE).await;
        // Types without an Ontario profile are held to base R4 only.
        app.create("Location", r#"{"resourceType":"Location","name":"CT room"}"#).await;
        // $validate applies the type's profile in strict mode too.
        let validated = app.post("/fhir/Patient/$validate", PATIENT_WITHOUT_MRN).await;
        assert!(validated.text().contains("ca-on-mi-pat-1"), "{}", validated.text());
    }
}

mod off {
    use crate::backend_tests;
    use crate::helpers::TestApp;

    backend_tests!(with cdr_interactions::EngineConfig { validation: cdr_interactions::ValidationMode::Off, ..crate::helpers::engine_config() };
        validation_off_keeps_only_the_structural_checks);

    async fn validation_off_keeps_only_the_structural_checks(app: &TestApp) {
        app.create("Patient", r#"{"resourceType":"Patient","gender":"x","unknown":true}"#).await;
        app.post("/fhir/Patient", r#"{"resourceType":"Patient","id":"a b"}"#)
            .await
            .assert_outcome(axum::http::StatusCode::BAD_REQUEST, "invalid");
        // $validate still validates.
        let validated =
            app.post("/fhir/Patient/$validate", r#"{"resourceType":"Patient","gender":"x"}"#).await;
        assert!(validated.text().contains("\"error\""), "{}", validated.text());
    }
}
