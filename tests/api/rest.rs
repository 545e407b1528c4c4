//! read, vread, create, update, delete and their headers, for every served type.

use axum::http::{Method, StatusCode};
use cdr_interactions::SERVED_TYPES;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    create_then_read_keeps_the_json_exactly,
    create_ignores_a_client_id,
    update_with_if_match_and_vread,
    update_needs_the_url_id_in_the_body,
    update_as_create_is_refused_by_default,
    delete_then_read_is_gone,
    read_honours_if_none_match_and_if_modified_since,
    prefer_return_shapes_the_body,
    every_served_type_round_trips,
    capability_statement_lists_what_is_served,
    health_endpoints,
    postgres_compresses_bodies_with_lz4,
);

const PATIENT: &str = r#"{"resourceType":"Patient","identifier":[{"system":"http://hospital.example/mrn","value":"MRN-1"}],"birthDate":"1970-01-01","_birthDate":{"extension":[{"url":"http://example.org/accuracy","valueCode":"estimated"}]},"extension":[{"url":"http://example.org/weight","valueDecimal":72.50},{"url":"http://example.org/scale","valueDecimal":1.0}],"name":[{"family":"Tremblay","given":["Émilie"]}]}"#;

async fn create_then_read_keeps_the_json_exactly(app: &TestApp) {
    let created = app.post("/fhir/Patient", PATIENT).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let body = created.json();
    let id = body["id"].as_str().unwrap();
    assert_eq!(
        created.header("location"),
        Some(format!("http://cdr.test/fhir/Patient/{id}/_history/1").as_str())
    );
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    assert!(created.header("last-modified").unwrap().ends_with(" GMT"));
    assert_eq!(created.header("content-type"), Some("application/fhir+json; charset=utf-8"));
    assert_eq!(body["meta"]["versionId"], "1");

    let read = app.get(&format!("/fhir/Patient/{id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.header("etag"), Some("W/\"1\""));
    assert_eq!(read.body, created.body);
    // Everything but the server-owned id and meta is byte-for-byte what was sent, in the same order.
    let last_updated = body["meta"]["lastUpdated"].as_str().unwrap();
    let expected = PATIENT.replacen(
        r#"{"resourceType":"Patient","#,
        &format!(r#"{{"resourceType":"Patient","id":"{id}","#),
        1,
    );
    let expected = format!(
        r#"{},"meta":{{"versionId":"1","lastUpdated":"{last_updated}"}}}}"#,
        expected.strip_suffix('}').unwrap()
    );
    assert_eq!(read.text(), expected);
}

async fn create_ignores_a_client_id(app: &TestApp) {
    let created =
        app.post("/fhir/Patient", r#"{"resourceType":"Patient","id":"chosen-by-client"}"#).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_ne!(created.json()["id"], "chosen-by-client");
    app.get("/fhir/Patient/chosen-by-client")
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
}

async fn update_with_if_match_and_vread(app: &TestApp) {
    let id = app.create("Patient", r#"{"resourceType":"Patient","active":true}"#).await;
    let uri = format!("/fhir/Patient/{id}");
    let version_two = format!(r#"{{"resourceType":"Patient","id":"{id}","active":false}}"#);
    let json = ("content-type", "application/fhir+json");

    let stale =
        app.request(Method::PUT, &uri, &[json, ("if-match", "W/\"7\"")], &version_two).await;
    stale.assert_outcome(StatusCode::PRECONDITION_FAILED, "conflict");

    let updated =
        app.request(Method::PUT, &uri, &[json, ("if-match", "W/\"1\"")], &version_two).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    assert_eq!(updated.header("etag"), Some("W/\"2\""));
    assert_eq!(
        updated.header("location"),
        Some(format!("http://cdr.test{uri}/_history/2").as_str())
    );
    assert_eq!(updated.json()["meta"]["versionId"], "2");

    let again =
        app.request(Method::PUT, &uri, &[json, ("if-match", "W/\"1\"")], &version_two).await;
    again.assert_outcome(StatusCode::PRECONDITION_FAILED, "conflict");

    let first = app.get(&format!("{uri}/_history/1")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["active"], true);
    assert_eq!(first.header("etag"), Some("W/\"1\""));
    let second = app.get(&format!("{uri}/_history/2")).await;
    assert_eq!(second.json()["active"], false);
    app.get(&format!("{uri}/_history/3")).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    app.get(&format!("{uri}/_history/x")).await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");

    // The same content again changes nothing: no new version, the current one answers.
    let unchanged = app.put(&uri, &version_two).await;
    assert_eq!(unchanged.status, StatusCode::OK);
    assert_eq!(unchanged.header("etag"), Some("W/\"2\""));
    assert_eq!(unchanged.json()["meta"], updated.json()["meta"]);
    let unchanged = app
        .request(Method::PUT, &uri, &[json, ("prefer", "return=OperationOutcome")], &version_two)
        .await;
    unchanged.assert_outcome(StatusCode::OK, "informational");
    assert!(unchanged.text().contains("unchanged"), "{}", unchanged.text());
    app.get(&format!("{uri}/_history/3")).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    let unconditional = app.put(&uri, &version_two.replace("false", "true")).await;
    assert_eq!(unconditional.header("etag"), Some("W/\"3\""));
    let bad_etag = app.request(Method::PUT, &uri, &[json, ("if-match", "3")], &version_two).await;
    bad_etag.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

async fn update_needs_the_url_id_in_the_body(app: &TestApp) {
    let id = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    let uri = format!("/fhir/Patient/{id}");
    let missing = app.put(&uri, r#"{"resourceType":"Patient"}"#).await;
    missing.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(missing.json()["issue"][0]["expression"][0], "id");
    let other = app.put(&uri, r#"{"resourceType":"Patient","id":"someone-else"}"#).await;
    other.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    let wrong_type =
        app.put(&uri, &format!(r#"{{"resourceType":"Practitioner","id":"{id}"}}"#)).await;
    wrong_type.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

async fn update_as_create_is_refused_by_default(app: &TestApp) {
    let response =
        app.put("/fhir/Patient/new-one", r#"{"resourceType":"Patient","id":"new-one"}"#).await;
    response.assert_outcome(StatusCode::METHOD_NOT_ALLOWED, "not-supported");
    app.get("/fhir/Patient/new-one").await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
}

async fn delete_then_read_is_gone(app: &TestApp) {
    let id = app.create("ImagingStudy", r#"{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/p"}}"#).await;
    let uri = format!("/fhir/ImagingStudy/{id}");
    let deleted = app.delete(&uri).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.header("etag"), Some("W/\"2\""));
    let gone = app.get(&uri).await;
    gone.assert_outcome(StatusCode::GONE, "deleted");
    assert_eq!(gone.header("etag"), Some("W/\"2\""));
    app.get(&format!("{uri}/_history/2")).await.assert_outcome(StatusCode::GONE, "deleted");
    assert_eq!(app.get(&format!("{uri}/_history/1")).await.status, StatusCode::OK);

    let again = app.delete(&uri).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let history = app.get(&format!("{uri}/_history")).await.json();
    assert_eq!(
        history["entry"].as_array().unwrap().len(),
        2,
        "a repeated delete writes no version"
    );
    app.delete("/fhir/ImagingStudy/never-existed")
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");

    // An update brings a deleted resource back as a new version.
    let revived = app.put(&uri, &format!(r#"{{"resourceType":"ImagingStudy","id":"{id}","status":"available","subject":{{"reference":"Patient/p"}}}}"#)).await;
    assert_eq!(revived.status, StatusCode::CREATED, "{}", revived.text());
    assert_eq!(revived.header("etag"), Some("W/\"3\""));
}

async fn read_honours_if_none_match_and_if_modified_since(app: &TestApp) {
    let id = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    let uri = format!("/fhir/Patient/{id}");
    let cached = app.request(Method::GET, &uri, &[("if-none-match", "W/\"1\"")], "").await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
    let stale = app.request(Method::GET, &uri, &[("if-none-match", "W/\"0\"")], "").await;
    assert_eq!(stale.status, StatusCode::OK);
    let since = app
        .request(Method::GET, &uri, &[("if-modified-since", "Fri, 01 Jan 2100 00:00:00 GMT")], "")
        .await;
    assert_eq!(since.status, StatusCode::NOT_MODIFIED);
    let old = app
        .request(Method::GET, &uri, &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")], "")
        .await;
    assert_eq!(old.status, StatusCode::OK);
}

async fn prefer_return_shapes_the_body(app: &TestApp) {
    let headers = |prefer| [("content-type", "application/fhir+json"), ("prefer", prefer)];
    let minimal = app
        .request(
            Method::POST,
            "/fhir/Patient",
            &headers("return=minimal"),
            r#"{"resourceType":"Patient"}"#,
        )
        .await;
    assert_eq!(minimal.status, StatusCode::CREATED);
    assert!(minimal.body.is_empty());
    assert!(minimal.header("location").is_some());
    assert_eq!(minimal.header("etag"), Some("W/\"1\""));
    let outcome = app
        .request(
            Method::POST,
            "/fhir/Patient",
            &headers("return=OperationOutcome"),
            r#"{"resourceType":"Patient"}"#,
        )
        .await;
    assert_eq!(outcome.status, StatusCode::CREATED);
    assert_eq!(outcome.json()["resourceType"], "OperationOutcome");
    let representation = app
        .request(
            Method::POST,
            "/fhir/Patient",
            &headers("return=representation"),
            r#"{"resourceType":"Patient"}"#,
        )
        .await;
    assert_eq!(representation.json()["resourceType"], "Patient");
}

/// A minimal valid resource of each served type: its required elements (base R4) and a narrative.
fn minimal(resource_type: &str) -> String {
    let required = match resource_type {
        "Binary" => {
            return r#"{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8="}"#
                .to_owned();
        }
        "AuditEvent" => {
            r#","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110112"},"recorded":"2024-01-01T00:00:00Z","agent":[{"who":{"display":"RIS"},"requestor":true}],"source":{"observer":{"display":"imaging-cdr"}}"#
        }
        "DiagnosticReport" => r#","status":"final","code":{"text":"CT head"}"#,
        "DocumentReference" => {
            r#","status":"current","content":[{"attachment":{"url":"http://example.org/report.pdf"}}]"#
        }
        "Encounter" => {
            r#","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}"#
        }
        "Endpoint" => {
            r#","status":"active","connectionType":{"system":"http://terminology.hl7.org/CodeSystem/endpoint-connection-type","code":"dicom-wado-rs"},"payloadType":[{"text":"DICOM"}],"address":"https://pacs.example.org/wado""#
        }
        "ImagingStudy" => r#","status":"available","subject":{"reference":"Patient/p1"}"#,
        "Organization" => r#","name":"Imaging centre""#,
        "Provenance" => {
            r#","target":[{"reference":"Patient/p1"}],"recorded":"2024-01-01T00:00:00Z","agent":[{"who":{"display":"RIS"}}]"#
        }
        "ServiceRequest" => {
            r#","status":"active","intent":"order","subject":{"reference":"Patient/p1"}"#
        }
        "Subscription" => {
            r#","status":"off","reason":"test","criteria":"Patient?name=x","channel":{"type":"rest-hook","endpoint":"http://127.0.0.1:9/hook"}"#
        }
        _ => "",
    };
    format!(
        r#"{{"resourceType":"{resource_type}","text":{{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}{required}}}"#
    )
}

async fn every_served_type_round_trips(app: &TestApp) {
    // AuditEvents are written by the server alone and never changed (`audit.rs`).
    for served in SERVED_TYPES.into_iter().filter(|served| served.as_str() != "AuditEvent") {
        let resource_type = served.as_str();
        let id = app.create(resource_type, &minimal(resource_type)).await;
        let uri = format!("/fhir/{resource_type}/{id}");
        assert_eq!(app.get(&uri).await.status, StatusCode::OK, "{resource_type}");
        let mut body = app.get(&uri).await.json();
        body["meta"] =
            serde_json::json!({"tag": [{"system": "http://example.org/tags", "code": "updated"}]});
        let updated = app
            .request(
                Method::PUT,
                &uri,
                &[("content-type", "application/json"), ("if-match", "W/\"1\"")],
                &body.to_string(),
            )
            .await;
        assert_eq!(updated.status, StatusCode::OK, "{resource_type}: {}", updated.text());
        assert_eq!(
            updated.json()["meta"]["tag"][0]["code"],
            "updated",
            "meta elements the client owns survive"
        );
        assert_eq!(app.get(&format!("{uri}/_history/1")).await.status, StatusCode::OK);
        assert_eq!(app.delete(&uri).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get(&uri).await.status, StatusCode::GONE);
        let history = app.get(&format!("{uri}/_history")).await.json();
        let methods: Vec<&str> = history["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["request"]["method"].as_str().unwrap())
            .collect();
        assert_eq!(methods, ["DELETE", "PUT", "POST"], "{resource_type}");
    }
}

async fn capability_statement_lists_what_is_served(app: &TestApp) {
    let response = app.get("/fhir/metadata").await;
    assert_eq!(response.status, StatusCode::OK);
    let statement = response.json();
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.0.1");
    assert_eq!(statement["kind"], "instance");
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    let types: Vec<&str> =
        resources.iter().map(|resource| resource["type"].as_str().unwrap()).collect();
    let served: Vec<String> = SERVED_TYPES.iter().map(ToString::to_string).collect();
    assert_eq!(types, served);
    // Every type but the append-only AuditEvent, whose entry `audit.rs` checks.
    for resource in resources.iter().filter(|resource| resource["type"] != "AuditEvent") {
        assert_eq!(resource["updateCreate"], false);
        assert_eq!(resource["versioning"], "versioned-update");
        let codes: Vec<&str> = resource["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        for code in
            ["read", "vread", "update", "delete", "history-instance", "history-type", "create"]
        {
            assert!(codes.contains(&code), "{code}");
        }
    }
}

async fn health_endpoints(app: &TestApp) {
    let live = app.get("/livez").await;
    assert_eq!(live.status, StatusCode::OK);
    assert!(live.header("x-request-id").is_some());
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}

mod update_as_create_on {
    use axum::http::StatusCode;

    use crate::backend_tests;
    use crate::helpers::TestApp;

    backend_tests!(with cdr_interactions::EngineConfig { update_create: true, ..crate::helpers::engine_config() }; put_creates_at_the_client_id);

    async fn put_creates_at_the_client_id(app: &TestApp) {
        let response =
            app.put("/fhir/Patient/chosen", r#"{"resourceType":"Patient","id":"chosen"}"#).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        assert_eq!(response.header("etag"), Some("W/\"1\""));
        assert_eq!(app.get("/fhir/Patient/chosen").await.status, StatusCode::OK);
        let metadata = app.get("/fhir/metadata").await.json();
        let resources = metadata["rest"][0]["resource"].as_array().unwrap();
        let patient = resources.iter().find(|resource| resource["type"] == "Patient").unwrap();
        assert_eq!(patient["updateCreate"], true);
    }
}

/// On PostgreSQL (14 or later, built with lz4, as this machine's is) the columns holding bodies are
/// compressed with LZ4 (migration 0009), and a large body stored that way reads back byte for byte.
async fn postgres_compresses_bodies_with_lz4(app: &TestApp) {
    let Some((admin_url, schema)) = app.postgres_schema() else { return };
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
    let compressed: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, a.attcompression::text FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND a.attname IN ('body', 'response') AND c.relkind = 'r' \
         ORDER BY 1, 2",
    )
    .bind(schema)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    let expected = [
        ("async_job", "body"),
        ("async_job", "response"),
        ("async_job_entry", "response"),
        ("audit_event", "body"),
        ("resource", "body"),
        ("resource_version", "body"),
    ]
    .map(|(table, column)| (table.to_owned(), column.to_owned(), "l".to_owned()));
    assert_eq!(compressed, expected);
    // Under the tests' 64 KiB body limit, and far over the 2 KB past which PostgreSQL compresses a value.
    let div = format!(r#"<div xmlns="http://www.w3.org/1999/xhtml">{}</div>"#, "x".repeat(50_000));
    let body =
        serde_json::json!({"resourceType": "Patient", "text": {"status": "generated", "div": div}});
    let id = app.create("Patient", &body.to_string()).await;
    let read = app.get(&format!("/fhir/Patient/{id}")).await.json();
    assert_eq!(read["text"]["div"].as_str(), Some(div.as_str()));
}
