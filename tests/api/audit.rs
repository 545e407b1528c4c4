//! The audit trail (`--audit on`): the AuditEvent of each interaction kind and its BALP shape, refusals
//! audited with their reason, rolled-back writes, append-only AuditEvents and their own scope, search by
//! patient, agent, date and subtype, and durability: an event is committed when its response arrives, and a
//! read whose event cannot be written is not answered.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{Method, StatusCode};
use base64::Engine as _;
use cdr_api::{
    ApiConfig, AuditConfig, ClientConfig, IssuerConfig, JwksSource, ServerKey, SmartConfig,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestResponse, api_config, build_request, send_to};

const BASE: &str = "http://cdr.test/fhir";
const IDP: &str = "https://idp.test";
const TOKEN_ENDPOINT: &str = "http://cdr.test/auth/token";
const RSA_PEM: &str = include_str!("keys/rsa-test-key.pem");
const RSA_N: &str = include_str!("keys/rsa-test-key.n.txt");
const OBSERVER: &str = "cdr-under-test";

crate::backend_tests!(
    every_interaction_kind_is_audited,
    bundles_are_audited_entry_by_entry,
    refusals_and_token_requests_are_audited,
    a_rolled_back_write_leaves_no_success,
    audit_events_are_append_only_and_need_their_own_scope,
    the_trail_answers_who_looked_at_a_patient,
    no_read_is_answered_before_its_event_is_committed,
    asynchronous_entries_are_audited_with_their_submitter,
);

fn audited(app: &TestApp, auth: Option<SmartConfig>) -> Router {
    app.router_with(ApiConfig {
        audit: Some(AuditConfig { observer: OBSERVER.to_owned() }),
        auth,
        ..api_config()
    })
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn rsa_jwks() -> Value {
    json!({"keys": [{"kty": "RSA", "kid": "rsa", "n": RSA_N.trim(), "e": "AQAB"}]})
}

fn sign(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa".to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap())
        .unwrap()
}

/// An identity provider's token for the viewer client, used by Dr. One.
fn token(scope: &str, jti: &str) -> String {
    sign(
        &json!({"iss": IDP, "aud": BASE, "sub": "dr-one", "client_id": "viewer", "exp": now() + 300,
                 "jti": jti, "scope": scope, "fhirUser": "Practitioner/dr-one"}),
    )
}

fn smart() -> SmartConfig {
    SmartConfig {
        fhir_base_url: BASE.to_owned(),
        token_endpoint: TOKEN_ENDPOINT.to_owned(),
        jwks_uri: "http://cdr.test/auth/jwks".to_owned(),
        access_token_lifetime: Duration::from_secs(300),
        issuers: vec![IssuerConfig {
            iss: IDP.to_owned(),
            aud: None,
            jwks: JwksSource::Document(rsa_jwks()),
        }],
        clients: vec![ClientConfig {
            client_id: "ris".to_owned(),
            jwks: rsa_jwks(),
            scopes: vec!["system/*.rs".to_owned()],
        }],
        server_key: ServerKey::from_pem(&ServerKey::generate_pem().unwrap()).unwrap(),
        access_policy: None,
    }
}

async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> TestResponse {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/fhir+json")];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    send_to(router, build_request(method, uri, &headers, body)).await
}

/// The AuditEvents matching `query` (read through an application without audit, so that reading the trail
/// adds nothing to it).
async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let bundle = app.search(&format!("AuditEvent?_count=500&{query}")).await;
    bundle["entry"]
        .as_array()
        .map(|entries| entries.iter().map(|entry| entry["resource"].clone()).collect())
        .unwrap_or_default()
}

async fn one_event(app: &TestApp, query: &str) -> Value {
    let found = events(app, query).await;
    assert_eq!(found.len(), 1, "{query}: {found:#?}");
    found.into_iter().next().unwrap()
}

/// The references of an event's entities.
fn entities(event: &Value) -> Vec<String> {
    event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entity| entity["what"]["reference"].as_str().map(str::to_owned))
        .collect()
}

fn report(patient: &str) -> String {
    json!({"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CT head"},
           "subject": {"reference": format!("Patient/{patient}")}})
    .to_string()
}

/// The BALP shape every event has: RESTful type, recorded, source, and the three agents (here the
/// unauthenticated peer as requestor).
fn assert_shape(event: &Value, subtype: &str, action: &str) {
    assert_eq!(event["type"]["system"], "http://terminology.hl7.org/CodeSystem/audit-event-type");
    assert_eq!(event["type"]["code"], "rest");
    assert_eq!(event["subtype"][0]["system"], "http://hl7.org/fhir/restful-interaction");
    assert_eq!(event["subtype"][0]["code"], subtype, "{event:#}");
    assert_eq!(event["action"], action, "{event:#}");
    assert!(event["recorded"].as_str().is_some_and(|recorded| recorded.ends_with('Z')));
    assert_eq!(event["source"]["observer"]["display"], OBSERVER);
    assert_eq!(event["agent"][0]["type"]["coding"][0]["code"], "110153");
    assert_eq!(event["agent"][0]["requestor"], true);
    assert_eq!(event["agent"][1]["type"]["coding"][0]["code"], "110152");
}

async fn every_interaction_kind_is_audited(app: &TestApp) {
    let router = audited(app, None);
    let send = |method: Method, uri: &str, body: &str| {
        let router = router.clone();
        let (uri, body) = (uri.to_owned(), body.to_owned());
        async move { call(&router, method, &uri, None, &body).await }
    };
    let created =
        send(Method::POST, "/fhir/Patient", r#"{"resourceType":"Patient","active":true}"#).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let patient = created.json()["id"].as_str().unwrap().to_owned();
    let event = one_event(app, "subtype=create").await;
    assert_shape(&event, "create", "C");
    assert_eq!(event["outcome"], "0");
    assert_eq!(
        entities(&event),
        [format!("Patient/{patient}"), format!("Patient/{patient}/_history/1")]
    );
    assert_eq!(event["entity"][1]["role"]["code"], "4");

    let report_id =
        send(Method::POST, "/fhir/DiagnosticReport", &report(&patient)).await.json()["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let read_uri = format!("/fhir/DiagnosticReport/{report_id}");
    assert_eq!(send(Method::GET, &read_uri, "").await.status, StatusCode::OK);
    let event = one_event(app, "subtype=read").await;
    assert_shape(&event, "read", "R");
    assert_eq!(
        entities(&event),
        [format!("Patient/{patient}"), format!("DiagnosticReport/{report_id}/_history/1")]
    );
    assert_eq!(
        send(Method::GET, &format!("{read_uri}/_history/1"), "").await.status,
        StatusCode::OK
    );
    assert_shape(&one_event(app, "subtype=vread").await, "vread", "R");

    searches_are_audited(app, &router, &patient).await;
    for (uri, subtype) in [
        (format!("{read_uri}/_history"), "history-instance"),
        ("/fhir/DiagnosticReport/_history".to_owned(), "history-type"),
        ("/fhir/_history".to_owned(), "history-system"),
        ("/fhir/?_type=Patient".to_owned(), "search-system"),
    ] {
        assert_eq!(send(Method::GET, &uri, "").await.status, StatusCode::OK, "{uri}");
        assert_shape(&one_event(app, &format!("subtype={subtype}")).await, subtype, "E");
    }
    let updated = send(
        Method::PUT,
        &format!("/fhir/Patient/{patient}"),
        &format!(r#"{{"resourceType":"Patient","id":"{patient}","active":false}}"#),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    let event = one_event(app, "subtype=update").await;
    assert_shape(&event, "update", "U");
    assert_eq!(entities(&event)[1], format!("Patient/{patient}/_history/2"));
    let patched = send_to(
        &router,
        build_request(
            Method::PATCH,
            &format!("/fhir/Patient/{patient}"),
            &[("content-type", "application/json-patch+json")],
            r#"[{"op":"replace","path":"/active","value":true}]"#,
        ),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    assert_shape(&one_event(app, "subtype=patch").await, "patch", "U");
    // A conditional create that finds its match writes nothing: its event still names the match.
    let conditional = send_to(
        &router,
        build_request(
            Method::POST,
            "/fhir/Patient",
            &[
                ("content-type", "application/fhir+json"),
                ("if-none-exist", &format!("_id={patient}")),
            ],
            r#"{"resourceType":"Patient"}"#,
        ),
    )
    .await;
    assert_eq!(conditional.status, StatusCode::OK, "{}", conditional.text());
    let creates = events(app, &format!("subtype=create&entity=Patient/{patient}")).await;
    // The Patient's, its report's and the conditional create that found it.
    assert_eq!(creates.len(), 3, "{creates:#?}");
    assert!(creates.iter().all(|event| event["outcome"] == "0"));
    assert_eq!(
        send(Method::POST, "/fhir/Patient/$validate", r#"{"resourceType":"Patient"}"#).await.status,
        StatusCode::OK
    );
    assert_shape(&one_event(app, "subtype=operation").await, "operation", "E");
    assert_eq!(send(Method::DELETE, &read_uri, "").await.status, StatusCode::NO_CONTENT);
    let event = one_event(app, "subtype=delete").await;
    assert_shape(&event, "delete", "D");
    // A deletion has no body: the patient is the one of the version it ended.
    assert_eq!(
        entities(&event),
        [format!("Patient/{patient}"), format!("DiagnosticReport/{report_id}/_history/2")]
    );
}

/// A search's event: its query (a POST _search's form too) and the patient it names.
async fn searches_are_audited(app: &TestApp, router: &Router, patient: &str) {
    let query = format!("patient={patient}&status=final");
    assert_eq!(
        call(router, Method::GET, &format!("/fhir/DiagnosticReport?{query}"), None, "")
            .await
            .status,
        StatusCode::OK
    );
    let event = one_event(app, "subtype=search-type").await;
    assert_shape(&event, "search-type", "E");
    let query_entity = event["entity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entity| entity["role"]["code"] == "24")
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(query_entity["query"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), format!("DiagnosticReport?{query}"));
    assert_eq!(entities(&event), [format!("Patient/{patient}")]);
    // A POST _search: the form is the query.
    let posted = send_to(
        router,
        build_request(
            Method::POST,
            "/fhir/DiagnosticReport/_search",
            &[("content-type", "application/x-www-form-urlencoded")],
            &format!("subject=Patient/{patient}"),
        ),
    )
    .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text());
    let posted = events(app, "subtype=search-type&_sort=-date").await;
    assert_eq!(posted.len(), 2);
    assert_eq!(entities(&posted[0]), [format!("Patient/{patient}")]);
    let query = posted[0]["entity"][1]["query"].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD.decode(query).unwrap();
    let expected = format!("DiagnosticReport/_search?subject=Patient%2F{patient}");
    assert_eq!(String::from_utf8(decoded).unwrap(), expected);
}

async fn bundles_are_audited_entry_by_entry(app: &TestApp) {
    let router = audited(app, None);
    let send = |method: Method, uri: &str, body: &str| {
        let router = router.clone();
        let (uri, body) = (uri.to_owned(), body.to_owned());
        async move { call(&router, method, &uri, None, &body).await }
    };
    let patient = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    // A transaction: its event, and one per entry written with it.
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0c8a3d1e-0000-4000-8000-000000000001", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "MR"}, "subject": {"reference": "urn:uuid:0c8a3d1e-0000-4000-8000-000000000001"}}, "request": {"method": "POST", "url": "DiagnosticReport"}},
        {"request": {"method": "GET", "url": format!("Patient/{patient}")}}
    ]});
    let answered = send(Method::POST, "/fhir", &transaction.to_string()).await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.text());
    assert_shape(&one_event(app, "subtype=transaction").await, "transaction", "E");
    let new_patient = answered.json()["entry"][0]["response"]["location"]
        .as_str()
        .unwrap()
        .split('/')
        .take(2)
        .collect::<Vec<_>>()
        .join("/");
    let entry_events = events(app, &format!("patient={new_patient}")).await;
    assert_eq!(entry_events.len(), 2, "{entry_events:#?}");
    assert!(entry_events.iter().all(|event| event["subtype"][0]["code"] == "create"));
    assert_eq!(events(app, &format!("subtype=read&entity=Patient/{patient}")).await.len(), 1);
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Patient/{patient}")}}
    ]});
    assert_eq!(send(Method::POST, "/fhir", &batch.to_string()).await.status, StatusCode::OK);
    assert_shape(&one_event(app, "subtype=batch").await, "batch", "E");
    // The trail stays out of the system history and of searches without _type.
    let history = app.get("/fhir/_history?_count=500").await.json();
    assert!(
        history["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["resource"]["resourceType"] != "AuditEvent")
    );
    let everything = app.get("/fhir/?_count=500").await.json();
    assert!(
        everything["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["resource"]["resourceType"] != "AuditEvent")
    );
    let metadata = app.get("/fhir/metadata").await.json();
    let audit = metadata["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|resource| resource["type"] == "AuditEvent")
        .unwrap()
        .clone();
    let interactions: Vec<&str> = audit["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|code| code["code"].as_str())
        .collect();
    assert_eq!(interactions, ["read", "vread", "history-instance", "history-type", "search-type"]);
    // The parameters the trail's table serves, and no includes either way.
    let params: Vec<&str> = audit["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|param| param["name"].as_str())
        .collect();
    assert_eq!(
        params,
        [
            "_id",
            "_lastUpdated",
            "action",
            "address",
            "agent",
            "altid",
            "date",
            "entity",
            "outcome",
            "patient",
            "policy",
            "subtype",
            "type"
        ]
    );
    assert!(audit.get("searchInclude").is_none() && audit.get("searchRevInclude").is_none());
}

async fn refusals_and_token_requests_are_audited(app: &TestApp) {
    let router = audited(app, Some(smart()));
    let id = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    let uri = format!("/fhir/Patient/{id}");
    // 401: no token; the agent is the unauthenticated peer.
    assert_eq!(call(&router, Method::GET, &uri, None, "").await.status, StatusCode::UNAUTHORIZED);
    let event = one_event(app, "outcome=4&subtype=read").await;
    assert_eq!(event["agent"][0]["who"]["display"], "unauthenticated client");
    assert!(event["outcomeDesc"].as_str().unwrap().contains("401"), "{event:#}");
    assert!(event["outcomeDesc"].as_str().unwrap().contains("bearer token"), "{event:#}");
    // 403: the token lacks the scope; the user, the client and the token are named, and why.
    let refused =
        call(&router, Method::DELETE, &uri, Some(&token("system/Patient.rs", "jti-403")), "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let event = one_event(app, "outcome=4&subtype=delete").await;
    assert_eq!(event["agent"][0]["who"]["reference"], "Practitioner/dr-one");
    assert_eq!(event["agent"][0]["policy"][0], "urn:ietf:params:oauth:jti:jti-403");
    assert_eq!(event["agent"][1]["who"]["identifier"]["value"], "viewer");
    assert_eq!(event["agent"][1]["who"]["identifier"]["system"], IDP);
    assert_eq!(event["agent"][1]["requestor"], false);
    let reason = event["outcomeDesc"].as_str().unwrap();
    let diagnostics = refused.json()["issue"][0]["diagnostics"].as_str().unwrap().to_owned();
    assert!(reason.contains("403") && reason.contains(&diagnostics), "{reason} / {diagnostics}");
    assert_eq!(entities(&event), [format!("Patient/{id}"), format!("Patient/{id}")]);
    // Any other 4xx: a read of nothing.
    let missing = call(
        &router,
        Method::GET,
        "/fhir/Patient/missing",
        Some(&token("system/*.rs", "jti-404")),
        "",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let event = one_event(app, "outcome=4&entity=Patient/missing").await;
    assert!(event["outcomeDesc"].as_str().unwrap().starts_with("404"), "{event:#}");
    // A batch entry the scopes refuse: its own event, beside the batch's and the allowed entry's.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Patient/{id}")}},
        {"request": {"method": "DELETE", "url": format!("Patient/{id}")}}
    ]});
    let answered = call(
        &router,
        Method::POST,
        "/fhir",
        Some(&token("system/Patient.rs", "jti-batch")),
        &batch.to_string(),
    )
    .await;
    assert_eq!(answered.status, StatusCode::OK, "{}", answered.text());
    assert_eq!(answered.json()["entry"][1]["response"]["status"], "403 Forbidden");
    let refused_entry =
        one_event(app, "policy=urn:ietf:params:oauth:jti:jti-batch&subtype=delete").await;
    assert_eq!(refused_entry["outcome"], "4");
    assert!(refused_entry["outcomeDesc"].as_str().unwrap().starts_with("403"), "{refused_entry:#}");
    assert_eq!(entities(&refused_entry), [format!("Patient/{id}"), format!("Patient/{id}")]);
    assert_eq!(events(app, "policy=urn:ietf:params:oauth:jti:jti-batch").await.len(), 3);

    // A token request, granted and refused.
    let assertion = |jti: &str| {
        sign(
            &json!({"iss": "ris", "sub": "ris", "aud": TOKEN_ENDPOINT, "exp": now() + 60, "jti": jti}),
        )
    };
    let form = |assertion: &str| {
        format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}&scope=system%2F*.rs"
        )
    };
    let token_request = |body: String| {
        build_request(
            Method::POST,
            "/auth/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            &body,
        )
    };
    let granted = send_to(&router, token_request(form(&assertion("a-1")))).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text());
    let replayed = send_to(&router, token_request(form(&assertion("a-1")))).await;
    assert_eq!(replayed.status, StatusCode::UNAUTHORIZED, "{}", replayed.text());
    let logins =
        events(app, "subtype=http://dicom.nema.org/resources/ontology/DCM|110122&_sort=date").await;
    assert_eq!(logins.len(), 2, "{logins:#?}");
    assert_eq!(logins[0]["type"]["code"], "110114");
    assert_eq!(logins[0]["outcome"], "0");
    assert_eq!(logins[0]["agent"][0]["who"]["identifier"]["value"], "ris");
    assert_eq!(logins[1]["outcome"], "4");
    assert!(logins[1]["outcomeDesc"].as_str().unwrap().contains("already used"), "{:#}", logins[1]);
}

async fn a_rolled_back_write_leaves_no_success(app: &TestApp) {
    let router = audited(app, None);
    let id = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    // Refused inside its transaction (If-Match checked against the locked row): rolled back.
    let stale = send_to(
        &router,
        build_request(
            Method::PUT,
            &format!("/fhir/Patient/{id}"),
            &[("content-type", "application/fhir+json"), ("if-match", "W/\"7\"")],
            &format!(r#"{{"resourceType":"Patient","id":"{id}","active":true}}"#),
        ),
    )
    .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert!(events(app, "subtype=update&outcome=0").await.is_empty());
    let event = one_event(app, "subtype=update").await;
    assert_eq!(event["outcome"], "4");
    assert!(event["outcomeDesc"].as_str().unwrap().starts_with("412"), "{event:#}");
    // A transaction whose second entry fails writes nothing, and no entry's event.
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "id": id}, "request": {"method": "PUT", "url": format!("Patient/{id}"), "ifMatch": "W/\"9\""}}
    ]});
    let failed = call(&router, Method::POST, "/fhir", None, &transaction.to_string()).await;
    assert_eq!(failed.status, StatusCode::PRECONDITION_FAILED, "{}", failed.text());
    assert!(events(app, "subtype=create").await.is_empty());
    assert_eq!(one_event(app, "subtype=transaction").await["outcome"], "4");
    assert!(events(app, "outcome=0").await.is_empty(), "no event claims a success");
}

async fn audit_events_are_append_only_and_need_their_own_scope(app: &TestApp) {
    let router = audited(app, Some(smart()));
    let reader = token("system/*.rs", "wide");
    let auditor = token("system/AuditEvent.cruds", "auditor");
    let id = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    assert_eq!(
        call(&router, Method::GET, &format!("/fhir/Patient/{id}"), Some(&reader), "").await.status,
        StatusCode::OK
    );
    let event = one_event(app, "subtype=read").await;
    let event_id = event["id"].as_str().unwrap().to_owned();
    let event_uri = format!("/fhir/AuditEvent/{event_id}");
    // A wildcard does not reach the trail; a scope naming AuditEvent does.
    assert_eq!(
        call(&router, Method::GET, &event_uri, Some(&reader), "").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&router, Method::GET, "/fhir/AuditEvent", Some(&reader), "").await.status,
        StatusCode::FORBIDDEN
    );
    let read = call(&router, Method::GET, &event_uri, Some(&auditor), "").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    let found =
        call(&router, Method::GET, "/fhir/AuditEvent?subtype=read", Some(&auditor), "").await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text());
    // Reading the trail is audited too: the refused read and the answered one, nothing more.
    assert_eq!(events(app, &format!("entity=AuditEvent/{event_id}")).await.len(), 2);
    assert_eq!(events(app, &format!("entity=AuditEvent/{event_id}&outcome=0")).await.len(), 1);
    // Nobody writes it, whatever the scopes.
    let body = event.to_string();
    for (method, uri) in [
        (Method::POST, "/fhir/AuditEvent".to_owned()),
        (Method::PUT, event_uri.clone()),
        (Method::DELETE, event_uri.clone()),
        (Method::DELETE, "/fhir/AuditEvent?subtype=read".to_owned()),
    ] {
        let response = call(&router, method.clone(), &uri, Some(&auditor), &body).await;
        assert_eq!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}: {}",
            response.text()
        );
    }
    let patched = send_to(
        &router,
        build_request(
            Method::PATCH,
            &event_uri,
            &[
                ("content-type", "application/json-patch+json"),
                ("authorization", &format!("Bearer {auditor}")),
            ],
            r#"[{"op":"replace","path":"/outcome","value":"0"}]"#,
        ),
    )
    .await;
    assert_eq!(patched.status, StatusCode::METHOD_NOT_ALLOWED, "{}", patched.text());
    let unaudited = app.delete(&event_uri).await;
    assert_eq!(unaudited.status, StatusCode::METHOD_NOT_ALLOWED);
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "DELETE", "url": format!("AuditEvent/{event_id}")}}
    ]});
    let answered = app.post("/fhir", &batch.to_string()).await.json();
    assert_eq!(
        answered["entry"][0]["response"]["status"], "405 Method Not Allowed",
        "{answered:#}"
    );
    assert_eq!(app.get(&event_uri).await.json(), event);
}

async fn the_trail_answers_who_looked_at_a_patient(app: &TestApp) {
    let router = audited(app, Some(smart()));
    let patient = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    let other = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    let report_id = app.create("DiagnosticReport", &report(&patient)).await;
    let other_report = app.create("DiagnosticReport", &report(&other)).await;
    let viewer = token("system/DiagnosticReport.rs", "look-1");
    for id in [&report_id, &other_report] {
        let response =
            call(&router, Method::GET, &format!("/fhir/DiagnosticReport/{id}"), Some(&viewer), "")
                .await;
        assert_eq!(response.status, StatusCode::OK);
    }
    let today = &cdr_model::Instant::now().to_fhir()[..10];
    let query = format!(
        "patient=Patient/{patient}&agent=Practitioner/dr-one&date=ge{today}&type=rest&subtype=read&outcome=0&entity=DiagnosticReport/{report_id}&action=R"
    );
    let event = one_event(app, &query).await;
    assert_eq!(entities(&event)[1], format!("DiagnosticReport/{report_id}/_history/1"));
    // The README's question: the reads of this patient's reports.
    let reads = events(app, &format!("entity:DiagnosticReport.subject=Patient/{patient}&subtype=read,vread&date=ge{today}&outcome=0")).await;
    assert_eq!(reads.len(), 1, "{reads:#?}");
    assert_eq!(reads[0]["id"], event["id"]);
    assert_eq!(events(app, "agent:identifier=https://idp.test|viewer").await.len(), 2);
    assert_eq!(
        events(
            app,
            &format!("patient={other}&altid=viewer&policy=urn:ietf:params:oauth:jti:look-1")
        )
        .await
        .len(),
        1
    );
    assert!(events(app, &format!("patient={patient}&date=lt{today}")).await.is_empty());
    assert!(
        events(app, &format!("patient={patient}&agent=Practitioner/someone-else")).await.is_empty()
    );
}

async fn no_read_is_answered_before_its_event_is_committed(app: &TestApp) {
    let router = audited(app, None);
    let id = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    let uri = format!("/fhir/Patient/{id}");
    for count in 1..=3 {
        assert_eq!(call(&router, Method::GET, &uri, None, "").await.status, StatusCode::OK);
        assert_eq!(events(app, &format!("entity=Patient/{id}&subtype=read")).await.len(), count);
    }
    // Concurrent reads share group commits, and each is answered once its event is in.
    let reads: Vec<_> = (0..24)
        .map(|_| {
            let router = router.clone();
            let uri = uri.clone();
            tokio::spawn(async move { call(&router, Method::GET, &uri, None, "").await.status })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(events(app, &format!("entity=Patient/{id}&subtype=read")).await.len(), 27);

    // When the trail cannot be written, the read is not answered, and a write is not made.
    refuse_audit_events(app).await;
    let refused = call(&router, Method::GET, &uri, None, "").await;
    refused.assert_outcome(StatusCode::SERVICE_UNAVAILABLE, "transient");
    let write = call(
        &router,
        Method::POST,
        "/fhir/Patient",
        None,
        r#"{"resourceType":"Patient","active":false}"#,
    )
    .await;
    assert!(write.status.is_server_error(), "{}", write.text());
    assert_eq!(app.search("Patient?active=false").await["entry"], Value::Null);
    assert_eq!(app.get(&uri).await.status, StatusCode::OK, "without audit the read is answered");
}

/// Makes the database refuse every new AuditEvent, as a full disk or a broken audit table would.
async fn refuse_audit_events(app: &TestApp) {
    if let Some((admin_url, schema)) = app.postgres_schema() {
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
        for statement in [
            format!(
                "CREATE FUNCTION {schema}.refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$"
            ),
            format!(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON {schema}.audit_event FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_audit()"
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await.unwrap();
        }
    } else if let Some(folder) = app.sqlite_folder() {
        let url = format!("sqlite://{}/cdr.db", folder.display());
        let mut connection =
            <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_event \
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END",
        )
        .execute(&mut connection)
        .await
        .unwrap();
    }
}

async fn asynchronous_entries_are_audited_with_their_submitter(app: &TestApp) {
    let router = audited(app, Some(smart()));
    let patient = app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    let submitter = token("system/*.cruds", "jti-async");
    let submit = |bundle: Value| {
        let router = router.clone();
        let submitter = submitter.clone();
        async move {
            let request = build_request(
                Method::POST,
                "/fhir",
                &[
                    ("content-type", "application/fhir+json"),
                    ("prefer", "respond-async"),
                    ("authorization", &format!("Bearer {submitter}")),
                ],
                &bundle.to_string(),
            );
            let accepted = send_to(&router, request).await;
            assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
        }
    };
    submit(json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": report(&patient).parse::<Value>().unwrap(), "request": {"method": "POST", "url": "DiagnosticReport"}}
    ]}))
    .await;
    submit(json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Patient/{patient}")}},
        {"request": {"method": "GET", "url": "Patient/nobody"}},
        {"resource": report(&patient).parse::<Value>().unwrap(), "request": {"method": "POST", "url": "DiagnosticReport"}}
    ]}))
    .await;
    // Accepted: one event each, before any entry ran.
    let policy = "policy=urn:ietf:params:oauth:jti:jti-async";
    assert_eq!(events(app, &format!("{policy}&subtype=transaction,batch")).await.len(), 2);
    assert_eq!(app.job_worker().drain().await, 2);
    // Run later by the worker: each entry's event names the submitter, as a synchronous request would.
    let creates = events(app, &format!("{policy}&subtype=create&patient={patient}")).await;
    assert_eq!(creates.len(), 2, "{creates:#?}");
    assert!(
        creates.iter().all(|event| event["agent"][0]["who"]["reference"] == "Practitioner/dr-one")
    );
    let read = one_event(app, &format!("{policy}&subtype=read&outcome=0")).await;
    assert_eq!(
        entities(&read),
        [format!("Patient/{patient}"), format!("Patient/{patient}/_history/1")]
    );
    let missing = one_event(app, &format!("{policy}&subtype=read&outcome=4")).await;
    assert_eq!(entities(&missing), ["Patient/nobody", "Patient/nobody"]);
}
