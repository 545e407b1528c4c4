//! The token modifiers that use the loaded terminology: `:in`, `:not-in` (ValueSet expansions), `:below` and
//! `:above` (CodeSystem hierarchies), and the 400s for what cannot be expanded.

use axum::http::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::TestApp;
use crate::search::{label_of, labels};

backend_tests!(
    value_set_modifiers,
    hierarchy_modifiers,
    unexpandable_terminology_is_400,
    conditional_criteria_use_terminology,
);

const STATUS: &str = "http://hl7.org/fhir/diagnostic-report-status";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const CORE_STATUS: &str = "http://hl7.org/fhir/ValueSet/diagnostic-report-status";
const ONTARIO_STATUS: &str = "http://ontariohealth.ca/fhir/mi/ValueSet/ca-on-mi-report-status";

async fn check(app: &TestApp, cases: &[(String, &[&str])]) {
    for (query, expected) in cases {
        let bundle = app.search(query).await;
        assert_eq!(labels(&bundle), *expected, "{query}");
    }
}

/// One DiagnosticReport per status, labelled by it.
async fn reports(app: &TestApp) {
    for status in
        ["registered", "preliminary", "final", "amended", "corrected", "appended", "unknown"]
    {
        app.create(
            "DiagnosticReport",
            &format!(
                r#"{{"resourceType":"DiagnosticReport","identifier":[{{"system":"urn:test","value":"{status}"}}],
                "status":"{status}","code":{{"text":"CT head"}}}}"#
            ),
        )
        .await;
    }
}

async fn value_set_modifiers(app: &TestApp) {
    reports(app).await;
    let all: &[&str] =
        &["amended", "appended", "corrected", "final", "preliminary", "registered", "unknown"];
    check(
        app,
        &[
            // The Ontario subset leaves out `registered` and `unknown`.
            (
                format!("DiagnosticReport?status:in={ONTARIO_STATUS}"),
                &["amended", "appended", "corrected", "final", "preliminary"],
            ),
            (
                format!("DiagnosticReport?status:not-in={ONTARIO_STATUS}"),
                &["registered", "unknown"],
            ),
            // The whole core value set, with and without a version.
            (format!("DiagnosticReport?status:in={CORE_STATUS}"), all),
            (format!("DiagnosticReport?status:in={CORE_STATUS}|4.0.1"), all),
            (format!("DiagnosticReport?status:not-in={CORE_STATUS}"), &[]),
            // Combined with other criteria (AND) and with another modifier.
            (
                format!(
                    "DiagnosticReport?status:in={ONTARIO_STATUS}&status:below={STATUS}|amended"
                ),
                &["amended", "appended", "corrected"],
            ),
            (
                format!("DiagnosticReport?status:in={ONTARIO_STATUS}&status:not=final"),
                &["amended", "appended", "corrected", "preliminary"],
            ),
        ],
    )
    .await;
}

async fn hierarchy_modifiers(app: &TestApp) {
    reports(app).await;
    for (label, system, code) in [
        ("amb", ACT_CODE, "AMB"),
        ("imp", ACT_CODE, "IMP"),
        ("acute", ACT_CODE, "ACUTE"),
        ("elsewhere", "http://example.org/other", "IMP"),
    ] {
        app.create(
            "Encounter",
            &format!(
                r#"{{"resourceType":"Encounter","identifier":[{{"system":"urn:test","value":"{label}"}}],
                "status":"finished","class":{{"system":"{system}","code":"{code}"}}}}"#
            ),
        )
        .await;
    }
    check(
        app,
        &[
            // Nesting in the core CodeSystem: `corrected` and `appended` are below `amended`.
            (
                format!("DiagnosticReport?status:below={STATUS}|amended"),
                &["amended", "appended", "corrected"],
            ),
            (
                format!("DiagnosticReport?status:above={STATUS}|corrected"),
                &["amended", "corrected"],
            ),
            (format!("DiagnosticReport?status:below={STATUS}|partial"), &["preliminary"]),
            (format!("DiagnosticReport?status:above={STATUS}|final"), &["final"]),
            (
                format!("DiagnosticReport?status:below={STATUS}|final,{STATUS}|amended"),
                &["amended", "appended", "corrected", "final"],
            ),
            // The v3 ActCode hierarchy; the system must match.
            (format!("Encounter?class:below={ACT_CODE}|IMP"), &["acute", "imp"]),
            (
                format!("Encounter?class:below={ACT_CODE}|_ActEncounterCode"),
                &["acute", "amb", "imp"],
            ),
            (format!("Encounter?class:above={ACT_CODE}|ACUTE"), &["acute", "imp"]),
            (format!("Encounter?class:above={ACT_CODE}|AMB"), &["amb"]),
            (
                "Encounter?class:in=http://terminology.hl7.org/ValueSet/v3-ActEncounterCode"
                    .to_owned(),
                &["acute", "amb", "imp"],
            ),
        ],
    )
    .await;
}

async fn unexpandable_terminology_is_400(app: &TestApp) {
    for (query, code) in [
        ("DiagnosticReport?status:in=http://example.org/no-such-vs".to_owned(), "not-found"),
        ("DiagnosticReport?status:not-in=http://example.org/no-such-vs".to_owned(), "not-found"),
        // LOINC is not loaded, so its codes cannot be listed.
        (
            "DiagnosticReport?code:in=http://hl7.org/fhir/ValueSet/report-codes".to_owned(),
            "not-supported",
        ),
        // All of v3 ActCode: more codes than the server expands.
        (
            "Encounter?class:in=http://terminology.hl7.org/ValueSet/v3-ActCode".to_owned(),
            "too-costly",
        ),
        ("DiagnosticReport?status:below=http://example.org/cs|x".to_owned(), "not-found"),
        (format!("DiagnosticReport?status:above={STATUS}|nope"), "code-invalid"),
        ("DiagnosticReport?status:below=amended".to_owned(), "invalid"),
        ("DiagnosticReport?status:above=|amended".to_owned(), "invalid"),
        // A fragment CodeSystem's hierarchy is not known.
        (
            "Encounter?type:below=http://terminology.hl7.org/CodeSystem/service-type|1".to_owned(),
            "not-supported",
        ),
    ] {
        let response = app.get(&format!("/fhir/{query}")).await;
        response.assert_outcome(StatusCode::BAD_REQUEST, code);
        let name = query.split_once('?').unwrap().1.split_once('=').unwrap().0;
        let diagnostics = response.json()["issue"][0]["diagnostics"].clone();
        assert!(diagnostics.as_str().unwrap().contains(name), "{query}: {diagnostics}");
    }
}

/// Conditional criteria are rewritten the same way: a conditional create matches through `:below`.
async fn conditional_criteria_use_terminology(app: &TestApp) {
    reports(app).await;
    let body = r#"{"resourceType":"DiagnosticReport","identifier":[{"system":"urn:test","value":"corrected"}],
        "status":"corrected","code":{"text":"CT head"}}"#;
    let criteria = format!("identifier=urn:test|corrected&status:below={STATUS}|amended");
    let headers = [("content-type", "application/fhir+json"), ("if-none-exist", criteria.as_str())];
    let existing = app.request(Method::POST, "/fhir/DiagnosticReport", &headers, body).await;
    assert_eq!(existing.status, StatusCode::OK, "{}", existing.text());
    assert_eq!(label_of(&existing.json()), "corrected");
    let criteria = format!("identifier=urn:test|corrected&status:below={STATUS}|partial");
    let headers = [("content-type", "application/fhir+json"), ("if-none-exist", criteria.as_str())];
    let created = app.request(Method::POST, "/fhir/DiagnosticReport", &headers, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let headers = [
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "status:in=http://example.org/no-such-vs"),
    ];
    app.request(Method::POST, "/fhir/DiagnosticReport", &headers, body)
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "not-found");
}
