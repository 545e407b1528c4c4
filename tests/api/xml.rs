//! FHIR XML over HTTP (R4 http.html#mime-type, xml.html): bodies sent as `application/fhir+xml`, answers asked
//! for by `Accept` or `_format`, errors in the format asked for, and hostile XML refused before it costs anything.
//! Each XML answer is read back with `cdr-xml` and compared with the JSON answer to the same request; the
//! client checks (`tests/clients/run`) read the same answers with an independent implementation.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, TestResponse};

backend_tests!(
    create_read_and_update_in_xml,
    search_and_history_bundles_in_xml,
    transaction_in_xml,
    errors_are_answered_in_the_format_asked_for,
    hostile_xml_is_refused,
    patch_and_validate_with_xml_parameters,
    capabilities_list_xml
);

const FHIR_XML: &str = "application/fhir+xml; charset=utf-8";

/// A Location with decimals (whose text must survive), a narrative and a primitive extension.
const LOCATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Location xmlns="http://hl7.org/fhir">
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>Radiology, <b>level 2</b> &amp; annex</p></div>
  </text>
  <identifier>
    <system value="http://hospital.example/locations"/>
    <value value="RAD-2"/>
  </identifier>
  <status value="active"/>
  <name value="Radiology">
    <extension url="http://hl7.org/fhir/StructureDefinition/translation">
      <extension url="lang"><valueCode value="fr"/></extension>
      <extension url="content"><valueString value="Radiologie"/></extension>
    </extension>
  </name>
  <position>
    <longitude value="-79.3900"/>
    <latitude value="43.6500"/>
    <altitude value="0.0"/>
  </position>
</Location>"#;

fn xml_json(response: &TestResponse) -> Value {
    assert_eq!(response.header("content-type"), Some(FHIR_XML), "{}", response.text());
    cdr_xml::from_xml(&response.body).unwrap_or_else(|error| panic!("{error}: {}", response.text()))
}

async fn post_xml(app: &TestApp, uri: &str, body: &str, accept: &str) -> TestResponse {
    app.request(
        Method::POST,
        uri,
        &[("content-type", "application/fhir+xml"), ("accept", accept)],
        body,
    )
    .await
}

async fn create_read_and_update_in_xml(app: &TestApp) {
    let created = post_xml(app, "/fhir/Location", LOCATION, "application/fhir+xml").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert!(created.header("location").is_some());
    let answered = xml_json(&created);
    let id = answered["id"].as_str().unwrap().to_owned();
    // The stored JSON: decimals as written, the narrative to the byte, the extension as `_name`.
    let stored = app.get(&format!("/fhir/Location/{id}")).await;
    assert_eq!(stored.header("content-type"), Some("application/fhir+json; charset=utf-8"));
    let text = stored.text();
    assert!(text.contains(r#""latitude":43.6500"#) && text.contains(r#""altitude":0.0"#), "{text}");
    let json = stored.json();
    assert_eq!(
        json["text"]["div"],
        r#"<div xmlns="http://www.w3.org/1999/xhtml"><p>Radiology, <b>level 2</b> &amp; annex</p></div>"#
    );
    assert_eq!(json["_name"]["extension"][0]["extension"][1]["valueString"], "Radiologie");
    assert_eq!(answered, json);
    // Read as XML, by Accept and by each _format spelling; `_pretty` indents.
    for (uri, accept) in [
        (format!("/fhir/Location/{id}"), "application/fhir+xml"),
        (format!("/fhir/Location/{id}"), "application/xml;q=0.9, application/json;q=0.1"),
        (format!("/fhir/Location/{id}?_format=xml"), "application/json"),
        (format!("/fhir/Location/{id}?_format=application/fhir%2Bxml"), "*/*"),
        (format!("/fhir/Location/{id}?_format=text/xml"), "*/*"),
    ] {
        let read = app.request(Method::GET, &uri, &[("accept", accept)], "").await;
        assert_eq!(read.status, StatusCode::OK, "{uri}");
        assert_eq!(read.header("etag"), Some("W/\"1\""));
        assert_eq!(xml_json(&read), json, "{uri}");
    }
    let pretty = app.get(&format!("/fhir/Location/{id}?_format=xml&_pretty=true")).await;
    assert!(pretty.text().contains("\n  <id value="), "{}", pretty.text());
    assert_eq!(xml_json(&pretty), json);
    let pretty_json = app.get(&format!("/fhir/Location/{id}?_pretty=true")).await;
    assert!(pretty_json.text().contains("\n  \"resourceType\": \"Location\""));
    assert!(pretty_json.text().contains("\"latitude\": 43.6500"));
    // An update in XML, answered in JSON by default.
    let updated = LOCATION
        .replace(
            "<Location xmlns=\"http://hl7.org/fhir\">",
            &format!("<Location xmlns=\"http://hl7.org/fhir\"><id value=\"{id}\"/>"),
        )
        .replace("RAD-2", "RAD-3");
    let put = app
        .request(
            Method::PUT,
            &format!("/fhir/Location/{id}"),
            &[("content-type", "application/xml")],
            &updated,
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(put.json()["identifier"][0]["value"], "RAD-3");
    assert_eq!(put.json()["meta"]["versionId"], "2");
}

async fn search_and_history_bundles_in_xml(app: &TestApp) {
    for value in ["RAD-1", "RAD-2"] {
        let body = LOCATION.replace("RAD-2", value);
        assert_eq!(post_xml(app, "/fhir/Location", &body, "*/*").await.status, StatusCode::CREATED);
    }
    let query =
        "/fhir/Location?identifier=http://hospital.example/locations|&_sort=identifier&_count=1";
    let json = app.get(query).await.json();
    let xml = app.request(Method::GET, query, &[("accept", "application/fhir+xml")], "").await;
    assert_eq!(xml.status, StatusCode::OK);
    let text = xml.text();
    assert!(text.starts_with(
        r#"<?xml version="1.0" encoding="UTF-8"?><Bundle xmlns="http://hl7.org/fhir">"#
    ));
    assert!(text.contains("<entry><fullUrl value=\"http://cdr.test/fhir/Location/"), "{text}");
    assert!(text.contains("<resource><Location><id value="), "{text}");
    assert!(text.contains("<search><mode value=\"match\"/></search>"), "{text}");
    let bundle = xml_json(&xml);
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["entry"], json["entry"]);
    assert_eq!(bundle["entry"][0]["resource"]["identifier"][0]["value"], "RAD-1");
    let relations: Vec<&str> = bundle["link"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|link| link["relation"].as_str())
        .collect();
    assert!(relations.contains(&"next"), "{bundle}");
    let history = app.get("/fhir/Location/_history?_format=xml").await;
    let history = xml_json(&history);
    assert_eq!(history["type"], "history");
    assert_eq!(history["entry"].as_array().map(Vec::len), Some(2));
    assert_eq!(history["entry"][0]["request"]["method"], "POST");
}

async fn transaction_in_xml(app: &TestApp) {
    let bundle = r#"<Bundle xmlns="http://hl7.org/fhir">
  <type value="transaction"/>
  <entry>
    <fullUrl value="urn:uuid:0b2a6f59-7c1c-4d6a-9c1e-2f0f3c6b8a11"/>
    <resource><Patient><identifier><system value="http://hospital.example/mrn"/><value value="X-1"/></identifier><gender value="female"/></Patient></resource>
    <request><method value="POST"/><url value="Patient"/><ifNoneExist value="identifier=http://hospital.example/mrn|X-1"/></request>
  </entry>
  <entry>
    <fullUrl value="urn:uuid:5d7c2e0e-9a43-4f7e-8d51-6a1b7f0c2d22"/>
    <resource>
      <DiagnosticReport>
        <status value="final"/>
        <code><coding><system value="http://loinc.org"/><code value="24627-2"/></coding><text value="CT chest"/></code>
        <subject><reference value="urn:uuid:0b2a6f59-7c1c-4d6a-9c1e-2f0f3c6b8a11"/></subject>
        <conclusion value="No acute findings."/>
      </DiagnosticReport>
    </resource>
    <request><method value="POST"/><url value="DiagnosticReport"/></request>
  </entry>
</Bundle>"#;
    let response = post_xml(app, "/fhir", bundle, "application/fhir+xml").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let answer = xml_json(&response);
    assert_eq!(answer["type"], "transaction-response");
    let statuses: Vec<&str> = answer["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201 Created", "201 Created"]);
    let reports =
        app.search("DiagnosticReport?subject.identifier=http://hospital.example/mrn|X-1").await;
    assert_eq!(reports["entry"].as_array().map(Vec::len), Some(1), "{reports}");
    let report = &reports["entry"][0]["resource"];
    assert!(report["subject"]["reference"].as_str().unwrap().starts_with("Patient/"), "{report}");
    assert_eq!(report["conclusion"], "No acute findings.");
}

/// The first issue of an XML OperationOutcome.
fn xml_issue(response: &TestResponse, status: StatusCode) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    let outcome = xml_json(response);
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
    outcome["issue"][0].clone()
}

async fn errors_are_answered_in_the_format_asked_for(app: &TestApp) {
    let missing = app
        .request(Method::GET, "/fhir/Patient/nowhere", &[("accept", "application/fhir+xml")], "")
        .await;
    assert_eq!(xml_issue(&missing, StatusCode::NOT_FOUND)["code"], "not-found");
    let unknown_type = app.get("/fhir/Nothing/1?_format=xml").await;
    assert_eq!(xml_issue(&unknown_type, StatusCode::NOT_FOUND)["code"], "not-supported");
    let bad_search = app.get("/fhir/Patient?birthdate=soon&_format=xml").await;
    assert_eq!(xml_issue(&bad_search, StatusCode::BAD_REQUEST)["code"], "invalid");
    // Not FHIR XML: 400 saying where, in the format asked for.
    let body = "<Patient xmlns=\"http://hl7.org/fhir\">\n  <gender value=\"female\"/>\n  <active value=\"true\"/>\n</Patient>";
    let issue = xml_issue(
        &post_xml(app, "/fhir/Patient", body, "application/fhir+xml").await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(issue["code"], "structure");
    let diagnostics = issue["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("<active> is out of order")
            && diagnostics.contains("line 3, column 3"),
        "{diagnostics}"
    );
    assert_eq!(issue["expression"], json!(["Patient"]));
    let json_answer = post_xml(
        app,
        "/fhir/Patient",
        "<Patient xmlns=\"http://hl7.org/fhir\"><nickname value=\"x\"/></Patient>",
        "*/*",
    )
    .await;
    json_answer.assert_outcome(StatusCode::BAD_REQUEST, "structure");
    // A resource R4 refuses: 422 with the validator's issues, as XML.
    let invalid = post_xml(
        app,
        "/fhir/Patient",
        r#"<Patient xmlns="http://hl7.org/fhir"><gender value="unknown-code"/></Patient>"#,
        "application/fhir+xml",
    )
    .await;
    assert_eq!(xml_issue(&invalid, StatusCode::UNPROCESSABLE_ENTITY)["severity"], "error");
    // A format nobody speaks is 406, whatever the body.
    app.get("/fhir/metadata?_format=turtle")
        .await
        .assert_outcome(StatusCode::NOT_ACCEPTABLE, "not-supported");
    app.request(Method::GET, "/fhir/metadata", &[("accept", "text/html")], "")
        .await
        .assert_outcome(StatusCode::NOT_ACCEPTABLE, "not-supported");
}

async fn hostile_xml_is_refused(app: &TestApp) {
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]><Patient xmlns="http://hl7.org/fhir"><name><text value="&lol2;"/></name></Patient>"#;
    let xxe = r#"<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"><name><text value="&xxe;"/></name></Patient>"#;
    for body in [laughs, xxe] {
        let issue = xml_issue(
            &post_xml(app, "/fhir/Patient", body, "application/fhir+xml").await,
            StatusCode::BAD_REQUEST,
        );
        assert!(
            issue["diagnostics"]
                .as_str()
                .unwrap()
                .contains("a document type declaration is not allowed"),
            "{issue}"
        );
    }
    let deep = format!(
        r#"<Patient xmlns="http://hl7.org/fhir">{}{}</Patient>"#,
        r#"<extension url="u">"#.repeat(2_000),
        "</extension>".repeat(2_000)
    );
    let issue = xml_issue(
        &post_xml(app, "/fhir/Patient", &deep, "application/fhir+xml").await,
        StatusCode::BAD_REQUEST,
    );
    assert!(issue["diagnostics"].as_str().unwrap().contains("nest deeper than"), "{issue}");
    // An attribute larger than the body limit (64 KiB in the tests) is never read whole.
    let huge = format!(
        r#"<Patient xmlns="http://hl7.org/fhir"><name><text value="{}"/></name></Patient>"#,
        "x".repeat(100_000)
    );
    let too_large = post_xml(app, "/fhir/Patient", &huge, "application/fhir+xml").await;
    assert_eq!(xml_issue(&too_large, StatusCode::PAYLOAD_TOO_LARGE)["code"], "too-long");
    // Nothing was written.
    let bundle = app.search("Patient").await;
    assert_eq!(bundle["total"], Value::Null);
    assert!(bundle.get("entry").is_none(), "{bundle}");
}

async fn patch_and_validate_with_xml_parameters(app: &TestApp) {
    let id = app
        .create("Patient", r#"{"resourceType":"Patient","gender":"female","active":true}"#)
        .await;
    let patch = r#"<Parameters xmlns="http://hl7.org/fhir">
  <parameter>
    <name value="operation"/>
    <part><name value="type"/><valueCode value="replace"/></part>
    <part><name value="path"/><valueString value="Patient.active"/></part>
    <part><name value="value"/><valueBoolean value="false"/></part>
  </parameter>
</Parameters>"#;
    let patched = app
        .request(
            Method::PATCH,
            &format!("/fhir/Patient/{id}"),
            &[("content-type", "application/fhir+xml"), ("accept", "application/fhir+xml")],
            patch,
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    let patched = xml_json(&patched);
    assert_eq!(patched["active"], false);
    assert_eq!(patched["meta"]["versionId"], "2");
    let validated = post_xml(
        app,
        "/fhir/Patient/$validate",
        r#"<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>"#,
        "application/fhir+xml",
    )
    .await;
    assert_eq!(xml_issue(&validated, StatusCode::OK)["severity"], "information");
}

async fn capabilities_list_xml(app: &TestApp) {
    let metadata =
        app.request(Method::GET, "/fhir/metadata", &[("accept", "application/fhir+xml")], "").await;
    let capabilities = xml_json(&metadata);
    assert_eq!(capabilities["resourceType"], "CapabilityStatement");
    let formats = capabilities["format"].as_array().unwrap();
    assert!(
        formats.contains(&json!("xml")) && formats.contains(&json!("application/fhir+xml")),
        "{formats:?}"
    );
    let mut json = app.get("/fhir/metadata").await.json();
    json["date"] = capabilities["date"].clone();
    assert_eq!(capabilities, json);
    let patch_formats = capabilities["patchFormat"].as_array().unwrap();
    assert!(patch_formats.contains(&json!("application/fhir+xml")), "{patch_formats:?}");
}

/// Under `--validation off` a resource may hold what R4 does not define, which has no XML form.
mod unvalidated {
    use axum::http::{Method, StatusCode};

    use super::{FHIR_XML, xml_issue};
    use crate::backend_tests;
    use crate::helpers::TestApp;

    backend_tests!(with cdr_interactions::EngineConfig { validation: cdr_interactions::ValidationMode::Off, ..crate::helpers::engine_config() };
        what_xml_cannot_carry_is_said_not_dropped);

    async fn what_xml_cannot_carry_is_said_not_dropped(app: &TestApp) {
        let body = r#"{"resourceType":"Patient","gender":"female","nickname":"Jo"}"#;
        let created = app
            .request(
                Method::POST,
                "/fhir/Patient",
                &[("content-type", "application/fhir+json"), ("accept", "application/fhir+xml")],
                body,
            )
            .await;
        // The write happened: its status and headers stay, and the body says why no resource follows.
        assert_eq!(created.header("content-type"), Some(FHIR_XML));
        let issue = xml_issue(&created, StatusCode::CREATED);
        assert_eq!(issue["severity"], "warning");
        assert!(
            issue["diagnostics"]
                .as_str()
                .unwrap()
                .contains("'nickname' is not an element of Patient"),
            "{issue}"
        );
        let location = created.header("location").unwrap();
        let id = location.split('/').rev().nth(2).unwrap();
        let read = app.get(&format!("/fhir/Patient/{id}?_format=xml")).await;
        let issue = xml_issue(&read, StatusCode::NOT_ACCEPTABLE);
        assert_eq!(issue["code"], "not-supported");
        assert!(read.header("etag").is_none());
        let json = app.get(&format!("/fhir/Patient/{id}")).await.json();
        assert_eq!(json["nickname"], "Jo");
    }
}
