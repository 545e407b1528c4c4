//! `patient/` scopes confine every result to the token's patient compartment (R4 CompartmentDefinition
//! `patient`), through every door a client could use to reach another patient's report: read, vread, type and
//! system search, `_type`, `_include`, `_revinclude`, `:iterate`, chains, `_has`, history at every level,
//! transaction and batch GET entries, conditional update and delete, writes that would leave the compartment,
//! replayed paging cursors, `$validate` and asynchronous requests (whose status only their submitter reads).
//! Each door is tried against the other patient's records, and the patient's own are found.
//!
//! `user/` scopes grant access for practitioners the access policy admits: a licensed physician (directly
//! or through a PractitionerRole) and a resident are allowed; an expired licence, an extern without a
//! licence and an unknown Practitioner get 403 with the reason.

use axum::Router;
use axum::http::{Method, StatusCode};
use cdr_api::AccessPolicy;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::auth::{BASE, Idp, TestKey, call, idp_claims, router, smart_config};
use crate::helpers::{TestApp, TestResponse, build_request, send_to};

const CODES: &str = "http://example.org/codes";
const CPSO: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician";
const CNO: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-nurse";
const ROLES: &str = "http://example.org/roles";
const PGME: &str = "http://example.org/postgraduate-registration";

crate::backend_tests!(
    reads_and_vreads_outside_the_compartment_are_not_found,
    searches_see_only_the_compartment,
    includes_chains_and_has_do_not_walk_out_of_the_compartment,
    histories_see_only_the_compartment,
    bundle_entries_are_confined,
    writes_stay_in_the_compartment,
    cursors_are_bound_to_their_compartment,
    validate_and_async_requests_are_confined,
    patient_scopes_need_a_patient_context,
    practitioners_need_an_eligible_qualification,
    subscriptions_are_outside_every_compartment,
);

/// Two patients, A and B, and their records. A's report `a_cross` is based on B's order (a cross-patient
/// reference), and B's report `b_on_a` on A's order, so that chains, `_has` and includes have somewhere to
/// leak to.
struct Records {
    a: String,
    b: String,
    a_order: String,
    b_order: String,
    a_report: String,
    a_cross: String,
    b_report: String,
    b_on_a: String,
}

fn patient(family: &str) -> String {
    json!({"resourceType": "Patient", "name": [{"family": family}]}).to_string()
}

fn order(patient: &str, code: &str) -> String {
    json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
           "subject": {"reference": format!("Patient/{patient}")},
           "code": {"coding": [{"system": CODES, "code": code}]}})
    .to_string()
}

fn report(patient: &str, code: &str, based_on: Option<&str>) -> Value {
    let mut report = json!({"resourceType": "DiagnosticReport", "status": "final",
           "subject": {"reference": format!("Patient/{patient}")},
           "code": {"coding": [{"system": CODES, "code": code}]}});
    if let Some(order) = based_on {
        report["basedOn"] = json!([{"reference": format!("ServiceRequest/{order}")}]);
    }
    report
}

async fn records(app: &TestApp) -> Records {
    let a = app.create("Patient", &patient("Tremblay")).await;
    let b = app.create("Patient", &patient("Tremblay")).await;
    let a_order = app.create("ServiceRequest", &order(&a, "order-a")).await;
    let b_order = app.create("ServiceRequest", &order(&b, "secret-b")).await;
    let a_report =
        app.create("DiagnosticReport", &report(&a, "ct-a", Some(&a_order)).to_string()).await;
    let a_cross =
        app.create("DiagnosticReport", &report(&a, "ct-a", Some(&b_order)).to_string()).await;
    let b_report = app.create("DiagnosticReport", &report(&b, "secret-b", None).to_string()).await;
    let b_on_a =
        app.create("DiagnosticReport", &report(&b, "secret-b", Some(&a_order)).to_string()).await;
    Records { a, b, a_order, b_order, a_report, a_cross, b_report, b_on_a }
}

/// A token of the identity provider with `scope` and, when given, the patient context `patient`.
fn token(idp: &Idp, scope: &str, patient: Option<&str>) -> String {
    let mut claims = idp_claims(scope);
    if let Some(patient) = patient {
        claims["patient"] = json!(patient);
    }
    idp.es256.sign(&claims)
}

/// The router under `--auth smart` and the identity provider whose tokens it trusts.
fn smart(app: &TestApp, policy: Option<AccessPolicy>) -> (Router, Idp) {
    let idp = Idp::new();
    let client = TestKey::ec("ris-1", Algorithm::ES384);
    let mut config = smart_config(&idp, &client);
    config.access_policy = policy;
    (router(app, config), idp)
}

async fn get(router: &Router, uri: &str, token: &str) -> TestResponse {
    call(router, Method::GET, uri, Some(token), "").await
}

/// A search's matches (and included resources) as `Type/id`, sorted.
async fn found(router: &Router, uri: &str, token: &str) -> Vec<String> {
    let response = get(router, uri, token).await;
    assert_eq!(response.status, StatusCode::OK, "{uri}: {}", response.text());
    addresses(&response.json())
}

fn addresses(bundle: &Value) -> Vec<String> {
    let mut found: Vec<String> = bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|entry| entry.get("resource"))
        .map(|resource| {
            format!(
                "{}/{}",
                resource["resourceType"].as_str().unwrap(),
                resource["id"].as_str().unwrap()
            )
        })
        .collect();
    found.sort();
    found
}

fn sorted(addresses: &[String]) -> Vec<String> {
    let mut addresses = addresses.to_vec();
    addresses.sort();
    addresses
}

fn at(resource_type: &str, id: &str) -> String {
    format!("{resource_type}/{id}")
}

async fn reads_and_vreads_outside_the_compartment_are_not_found(app: &TestApp) {
    let records = records(app).await;
    let (router, idp) = smart(app, None);
    // SMART v1 and v2 spellings alike.
    for scope in ["patient/*.read", "patient/*.rs", "patient/DiagnosticReport.rs patient/Patient.r"]
    {
        let a = token(&idp, scope, Some(&records.a));
        let own = get(&router, &format!("/fhir/DiagnosticReport/{}", records.a_report), &a).await;
        assert_eq!(own.status, StatusCode::OK, "{scope}: {}", own.text());
        assert_eq!(
            get(&router, &format!("/fhir/Patient/{}", records.a), &a).await.status,
            StatusCode::OK
        );
        for uri in [
            format!("/fhir/DiagnosticReport/{}", records.b_report),
            format!("/fhir/DiagnosticReport/{}/_history/1", records.b_report),
            format!("/fhir/Patient/{}", records.b),
        ] {
            // 404, not 403: another patient's record is not revealed to exist.
            get(&router, &uri, &a).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
        }
        let vread =
            get(&router, &format!("/fhir/DiagnosticReport/{}/_history/1", records.a_report), &a)
                .await;
        assert_eq!(vread.status, StatusCode::OK, "{}", vread.text());
    }
    // Types that are in no patient's compartment are not read either.
    let practitioner = app.create("Practitioner", r#"{"resourceType":"Practitioner"}"#).await;
    let a = token(&idp, "patient/*.read", Some(&records.a));
    let response = get(&router, &format!("/fhir/Practitioner/{practitioner}"), &a).await;
    response.assert_outcome(StatusCode::NOT_FOUND, "not-found");
}

async fn searches_see_only_the_compartment(app: &TestApp) {
    let records = records(app).await;
    let (router, idp) = smart(app, None);
    let a = token(&idp, "patient/*.rs", Some(&records.a));
    let own_reports = sorted(&[
        at("DiagnosticReport", &records.a_report),
        at("DiagnosticReport", &records.a_cross),
    ]);
    assert_eq!(found(&router, "/fhir/DiagnosticReport", &a).await, own_reports);
    assert_eq!(
        found(&router, "/fhir/DiagnosticReport?code=http://example.org/codes|secret-b", &a).await,
        Vec::<String>::new()
    );
    assert_eq!(
        found(&router, &format!("/fhir/DiagnosticReport?_id={}", records.b_report), &a).await,
        Vec::<String>::new()
    );
    // _total counts the compartment only.
    let response = get(&router, "/fhir/DiagnosticReport?_total=accurate", &a).await;
    assert_eq!(response.json()["total"], 2);
    let response = get(&router, "/fhir/DiagnosticReport?_summary=count", &a).await;
    assert_eq!(response.json()["total"], 2);
    // Patient: the patient itself (its own id), not the other Tremblay.
    assert_eq!(
        found(&router, "/fhir/Patient?family=Tremblay", &a).await,
        [at("Patient", &records.a)]
    );
    // System search, with and without _type.
    let everything = sorted(&[
        at("Patient", &records.a),
        at("ServiceRequest", &records.a_order),
        at("DiagnosticReport", &records.a_report),
        at("DiagnosticReport", &records.a_cross),
    ]);
    assert_eq!(found(&router, "/fhir?_lastUpdated=gt2000-01-01", &a).await, everything);
    assert_eq!(
        found(&router, &format!("/fhir?_id={},{}", records.b, records.b_report), &a).await,
        Vec::<String>::new()
    );
    let mut typed = own_reports.clone();
    typed.push(at("Patient", &records.a));
    typed.sort();
    assert_eq!(found(&router, "/fhir?_type=DiagnosticReport,Patient", &a).await, typed);
    // B's token sees B's records, and an unconfined token sees both.
    let b = token(&idp, "patient/*.rs", Some(&records.b));
    assert_eq!(
        found(&router, "/fhir/DiagnosticReport", &b).await,
        sorted(&[
            at("DiagnosticReport", &records.b_report),
            at("DiagnosticReport", &records.b_on_a)
        ])
    );
    let system = idp.token("system/*.rs");
    assert_eq!(found(&router, "/fhir/DiagnosticReport", &system).await.len(), 4);
}

async fn includes_chains_and_has_do_not_walk_out_of_the_compartment(app: &TestApp) {
    let r = records(app).await;
    let (router, idp) = smart(app, None);
    let a = token(&idp, "patient/*.rs", Some(&r.a));
    let system = idp.token("system/*.rs");
    // _include: A's order is included, B's (which A's cross report points to) is not.
    let include = format!(
        "/fhir/DiagnosticReport?_id={},{}&_include=DiagnosticReport:based-on",
        r.a_report, r.a_cross
    );
    let mut expected = vec![
        at("DiagnosticReport", &r.a_report),
        at("DiagnosticReport", &r.a_cross),
        at("ServiceRequest", &r.a_order),
    ];
    assert_eq!(found(&router, &include, &a).await, sorted(&expected));
    expected.push(at("ServiceRequest", &r.b_order));
    assert_eq!(found(&router, &include, &system).await, sorted(&expected));
    // _revinclude: B's report based on A's order is not included.
    let revinclude =
        format!("/fhir/ServiceRequest?_id={}&_revinclude=DiagnosticReport:based-on", r.a_order);
    assert_eq!(
        found(&router, &revinclude, &a).await,
        sorted(&[at("ServiceRequest", &r.a_order), at("DiagnosticReport", &r.a_report)])
    );
    assert_eq!(found(&router, &revinclude, &system).await.len(), 3);
    // :iterate: the second round (reports based on the included orders) stays in the compartment too.
    let iterate = format!(
        "/fhir/Patient?_id={}&_revinclude:iterate=ServiceRequest:subject&_revinclude:iterate=DiagnosticReport:based-on",
        r.a
    );
    assert_eq!(
        found(&router, &iterate, &a).await,
        sorted(&[
            at("Patient", &r.a),
            at("ServiceRequest", &r.a_order),
            at("DiagnosticReport", &r.a_report)
        ])
    );
    assert!(found(&router, &iterate, &system).await.contains(&at("DiagnosticReport", &r.b_on_a)));
    // A chain through B's order would tell A what B's order is: it finds nothing.
    let chain = format!("/fhir/DiagnosticReport?based-on:ServiceRequest.code={CODES}|secret-b");
    assert_eq!(found(&router, &chain, &a).await, Vec::<String>::new());
    assert_eq!(found(&router, &chain, &system).await, [at("DiagnosticReport", &r.a_cross)]);
    // Chains within the compartment work.
    let own_chain = "/fhir/DiagnosticReport?subject:Patient.family=Tremblay";
    assert_eq!(
        found(&router, own_chain, &a).await,
        sorted(&[at("DiagnosticReport", &r.a_report), at("DiagnosticReport", &r.a_cross)])
    );
    // _has over B's report based on A's order would tell A about B's report: it finds nothing.
    let has = format!("/fhir/ServiceRequest?_has:DiagnosticReport:based-on:code={CODES}|secret-b");
    assert_eq!(found(&router, &has, &a).await, Vec::<String>::new());
    assert_eq!(found(&router, &has, &system).await, [at("ServiceRequest", &r.a_order)]);
    let own_has = format!("/fhir/ServiceRequest?_has:DiagnosticReport:based-on:code={CODES}|ct-a");
    assert_eq!(found(&router, &own_has, &a).await, [at("ServiceRequest", &r.a_order)]);
}

async fn histories_see_only_the_compartment(app: &TestApp) {
    let r = records(app).await;
    // A second version of A's report and of B's.
    for (id, patient) in [(&r.a_report, &r.a), (&r.b_report, &r.b)] {
        let mut body = report(patient, "ct-a", None);
        body["id"] = json!(id);
        body["conclusion"] = json!("amended");
        let response = app.put(&format!("/fhir/DiagnosticReport/{id}"), &body.to_string()).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    }
    let (router, idp) = smart(app, None);
    let a = token(&idp, "patient/*.rs", Some(&r.a));
    let history = |uri: String| {
        let router = router.clone();
        let a = a.clone();
        async move {
            let response = get(&router, &uri, &a).await;
            assert_eq!(response.status, StatusCode::OK, "{uri}: {}", response.text());
            let bundle = response.json();
            assert_eq!(bundle["type"], "history");
            let mut versions: Vec<String> = bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|entry| {
                    entry["fullUrl"]
                        .as_str()
                        .unwrap()
                        .strip_prefix(&format!("{BASE}/"))
                        .unwrap()
                        .to_owned()
                })
                .collect();
            versions.sort();
            versions
        }
    };
    // Instance: A's report's two versions; B's report is not found.
    let own = at("DiagnosticReport", &r.a_report);
    assert_eq!(
        history(format!("/fhir/DiagnosticReport/{}/_history", r.a_report)).await,
        [own.clone(), own.clone()]
    );
    get(&router, &format!("/fhir/DiagnosticReport/{}/_history", r.b_report), &a)
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    // Type and system: A's versions only.
    let reports = sorted(&[own.clone(), own.clone(), at("DiagnosticReport", &r.a_cross)]);
    assert_eq!(history("/fhir/DiagnosticReport/_history".to_owned()).await, reports);
    let mut everything = reports.clone();
    everything.extend([at("Patient", &r.a), at("ServiceRequest", &r.a_order)]);
    everything.sort();
    assert_eq!(history("/fhir/_history".to_owned()).await, everything);
    // A report moved from B to A: A sees its new version only, not B's.
    let moved = app.create("DiagnosticReport", &report(&r.b, "ct-b", None).to_string()).await;
    let mut body = report(&r.a, "ct-a", None);
    body["id"] = json!(moved);
    let response = app.put(&format!("/fhir/DiagnosticReport/{moved}"), &body.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let moved_at = at("DiagnosticReport", &moved);
    let versions = history(format!("/fhir/DiagnosticReport/{moved}/_history")).await;
    assert_eq!(versions, std::slice::from_ref(&moved_at));
    get(&router, &format!("/fhir/DiagnosticReport/{moved}/_history/1"), &a)
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    let second = get(&router, &format!("/fhir/DiagnosticReport/{moved}/_history/2"), &a).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    everything.push(moved_at);
    everything.sort();
    // Paged one version at a time, the pages hold the same versions.
    let mut paged = Vec::new();
    let mut next = Some("/fhir/_history?_count=1".to_owned());
    while let Some(uri) = next.take() {
        let response = get(&router, &uri, &a).await;
        let bundle = response.json();
        paged.extend(addresses(&bundle));
        next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|link| link["relation"] == "next")
            .map(|link| {
                link["url"].as_str().unwrap().strip_prefix("http://cdr.test").unwrap().to_owned()
            });
    }
    paged.sort();
    assert_eq!(paged, everything);
}

async fn bundle_entries_are_confined(app: &TestApp) {
    let r = records(app).await;
    let (router, idp) = smart(app, None);
    let a = token(&idp, "patient/*.rs", Some(&r.a));
    let entries = json!([
        {"request": {"method": "GET", "url": format!("DiagnosticReport/{}", r.a_report)}},
        {"request": {"method": "GET", "url": format!("DiagnosticReport/{}", r.b_report)}},
        {"request": {"method": "GET", "url": "DiagnosticReport?_count=50"}},
    ]);
    // Batch: B's report is not found, A's is read, and the search entry finds A's reports only.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
    let response = call(&router, Method::POST, "/fhir", Some(&a), &batch.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let answer = response.json();
    assert_eq!(answer["entry"][0]["response"]["status"], "200 OK");
    assert!(
        answer["entry"][1]["response"]["status"].as_str().unwrap().starts_with("404"),
        "{answer}"
    );
    assert_eq!(
        addresses(&answer["entry"][2]["resource"]),
        sorted(&[at("DiagnosticReport", &r.a_report), at("DiagnosticReport", &r.a_cross)])
    );
    // Transaction: its reads are answered after it commits, each on its own, confined the same way.
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let response = call(&router, Method::POST, "/fhir", Some(&a), &transaction.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let answer = response.json();
    assert_eq!(answer["entry"][0]["response"]["status"], "200 OK");
    assert!(
        answer["entry"][1]["response"]["status"].as_str().unwrap().starts_with("404"),
        "{answer}"
    );
    assert!(answer["entry"][1].get("resource").is_none(), "{answer}");
    assert_eq!(addresses(&answer["entry"][2]["resource"]).len(), 2);
}

async fn writes_stay_in_the_compartment(app: &TestApp) {
    let r = records(app).await;
    let (router, idp) = smart(app, None);
    let a = token(&idp, "patient/*.cruds", Some(&r.a));
    let secret = format!("code={CODES}|secret-b");
    // Conditional update and delete match within the compartment: B's reports are not touched.
    let body = report(&r.a, "secret-b", None).to_string();
    let response =
        call(&router, Method::PUT, &format!("/fhir/DiagnosticReport?{secret}"), Some(&a), &body)
            .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let created = response.json()["id"].as_str().unwrap().to_owned();
    let response =
        call(&router, Method::DELETE, &format!("/fhir/DiagnosticReport?{secret}"), Some(&a), "")
            .await;
    assert!(response.status.is_success(), "{}", response.text());
    assert_eq!(
        app.get(&format!("/fhir/DiagnosticReport/{created}")).await.status,
        StatusCode::GONE
    );
    for id in [&r.b_report, &r.b_on_a] {
        let stored = app.get(&format!("/fhir/DiagnosticReport/{id}")).await;
        assert_eq!(stored.status, StatusCode::OK);
        assert_eq!(stored.json()["meta"]["versionId"], "1");
    }
    // A conditional create matches within the compartment too: B's report does not stand in for A's.
    let authorization = format!("Bearer {a}");
    let headers = [
        ("content-type", "application/fhir+json"),
        ("if-none-exist", secret.as_str()),
        ("authorization", authorization.as_str()),
    ];
    let request = build_request(Method::POST, "/fhir/DiagnosticReport", &headers, &body);
    let response = send_to(&router, request).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    // Writing a resource outside the compartment is refused: a report of B, or moving A's report to B.
    let of_b = report(&r.b, "ct-a", None).to_string();
    let response = call(&router, Method::POST, "/fhir/DiagnosticReport", Some(&a), &of_b).await;
    response.assert_outcome(StatusCode::FORBIDDEN, "forbidden");
    assert!(response.text().contains("subject must reference"), "{}", response.text());
    let mut moved = report(&r.b, "ct-a", None);
    moved["id"] = json!(r.a_report);
    let response = call(
        &router,
        Method::PUT,
        &format!("/fhir/DiagnosticReport/{}", r.a_report),
        Some(&a),
        &moved.to_string(),
    )
    .await;
    response.assert_outcome(StatusCode::FORBIDDEN, "forbidden");
    let patch = json!([{"op": "replace", "path": "/subject/reference", "value": format!("Patient/{}", r.b)}]).to_string();
    let uri = format!("/fhir/DiagnosticReport/{}", r.a_report);
    let request = build_request(
        Method::PATCH,
        &uri,
        &[
            ("content-type", "application/json-patch+json"),
            ("authorization", &format!("Bearer {a}")),
        ],
        &patch,
    );
    send_to(&router, request).await.assert_outcome(StatusCode::FORBIDDEN, "forbidden");
    // B's resources are not found for update, patch or delete.
    let mut b_body = report(&r.b, "ct-a", None);
    b_body["id"] = json!(r.b_report);
    let uri = format!("/fhir/DiagnosticReport/{}", r.b_report);
    call(&router, Method::PUT, &uri, Some(&a), &b_body.to_string())
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    call(&router, Method::DELETE, &uri, Some(&a), "")
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    // Nor in a transaction.
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": format!("DiagnosticReport/{}", r.b_report)}},
    ]});
    let response = call(&router, Method::POST, "/fhir", Some(&a), &transaction.to_string()).await;
    response.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    // A transaction writing into B's compartment fails whole.
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": report(&r.a, "ct-a", None), "request": {"method": "POST", "url": "DiagnosticReport"}},
        {"resource": report(&r.b, "ct-a", None), "request": {"method": "POST", "url": "DiagnosticReport"}},
    ]});
    let response = call(&router, Method::POST, "/fhir", Some(&a), &transaction.to_string()).await;
    response.assert_outcome(StatusCode::FORBIDDEN, "forbidden");
    // The patient's own writes succeed, and stay the patient's.
    let own = report(&r.a, "ct-a", None).to_string();
    let response = call(&router, Method::POST, "/fhir/DiagnosticReport", Some(&a), &own).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let system = idp.token("system/*.rs");
    assert_eq!(found(&router, "/fhir/DiagnosticReport", &system).await.len(), 6);
}

async fn cursors_are_bound_to_their_compartment(app: &TestApp) {
    let r = records(app).await;
    let (router, idp) = smart(app, None);
    let a = token(&idp, "patient/*.rs", Some(&r.a));
    let b = token(&idp, "patient/*.rs", Some(&r.b));
    let next_of = |bundle: &Value| {
        bundle["link"].as_array().unwrap().iter().find(|link| link["relation"] == "next").map(
            |link| {
                link["url"].as_str().unwrap().strip_prefix("http://cdr.test").unwrap().to_owned()
            },
        )
    };
    let first = get(&router, "/fhir/DiagnosticReport?_count=1", &b).await.json();
    let next = next_of(&first).expect("B has two reports");
    // B pages on; A's token (and an unconfined one) cannot use B's cursor.
    let own = get(&router, &next, &b).await;
    assert_eq!(own.status, StatusCode::OK);
    let mut pages = addresses(&first);
    pages.extend(addresses(&own.json()));
    pages.sort();
    assert_eq!(
        pages,
        sorted(&[at("DiagnosticReport", &r.b_report), at("DiagnosticReport", &r.b_on_a)])
    );
    let replayed = get(&router, &next, &a).await;
    replayed.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    assert!(replayed.text().contains("another caller's search"), "{}", replayed.text());
    get(&router, &next, &idp.token("system/*.rs"))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    // History cursors too: B's next page of its history is B's alone.
    let first = get(&router, "/fhir/_history?_count=1", &b).await.json();
    let next = next_of(&first).expect("B has several versions");
    let own = get(&router, &next, &b).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.text());
    assert_eq!(own.json()["type"], "history");
    let replayed = get(&router, &next, &a).await;
    replayed.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    assert!(replayed.text().contains("another caller's history"), "{}", replayed.text());
    let unconfined = next.split(':').next().unwrap().to_owned();
    get(&router, &unconfined, &b).await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

async fn validate_and_async_requests_are_confined(app: &TestApp) {
    let r = records(app).await;
    let (router, idp) = smart(app, None);
    let a = token(&idp, "patient/*.cruds", Some(&r.a));
    let parameters = |mode: &str, resource: Option<Value>| {
        let mut parameter = vec![json!({"name": "mode", "valueCode": mode})];
        if let Some(resource) = resource {
            parameter.push(json!({"name": "resource", "resource": resource}));
        }
        json!({"resourceType": "Parameters", "parameter": parameter}).to_string()
    };
    let uri = format!("/fhir/DiagnosticReport/{}/$validate", r.b_report);
    call(&router, Method::POST, &uri, Some(&a), &parameters("delete", None))
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    let mut b_body = report(&r.b, "ct-a", None);
    b_body["id"] = json!(r.b_report);
    call(&router, Method::POST, &uri, Some(&a), &parameters("update", Some(b_body)))
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    // A create or update that would write outside the compartment is reported as the write would be refused.
    let of_b = parameters("create", Some(report(&r.b, "ct-a", None)));
    let response =
        call(&router, Method::POST, "/fhir/DiagnosticReport/$validate", Some(&a), &of_b).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let issues = response.json()["issue"].clone();
    assert!(
        issues
            .as_array()
            .unwrap()
            .iter()
            .any(|issue| issue["code"] == "forbidden" && issue["severity"] == "error"),
        "{issues}"
    );
    let of_a = parameters("create", Some(report(&r.a, "ct-a", None)));
    let response =
        call(&router, Method::POST, "/fhir/DiagnosticReport/$validate", Some(&a), &of_a).await;
    assert!(!response.text().contains("forbidden"), "{}", response.text());
    let own = format!("/fhir/DiagnosticReport/{}/$validate", r.a_report);
    let response = call(&router, Method::POST, &own, Some(&a), &parameters("delete", None)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());

    // A confined caller cannot queue a request (its job would run outside the request).
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("DiagnosticReport/{}", r.b_report)}}]})
    .to_string();
    let submit = |token: String| {
        let router = router.clone();
        let batch = batch.clone();
        async move {
            let authorization = format!("Bearer {token}");
            let headers = [
                ("content-type", "application/fhir+json"),
                ("prefer", "respond-async"),
                ("authorization", authorization.as_str()),
            ];
            send_to(&router, build_request(Method::POST, "/fhir", &headers, &batch)).await
        }
    };
    submit(a.clone()).await.assert_outcome(StatusCode::FORBIDDEN, "forbidden");
    // Only the client that queued a job reads or cancels its status.
    let response = submit(idp.token("system/*.rs")).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
    let status = response
        .header("content-location")
        .unwrap()
        .strip_prefix("http://cdr.test")
        .unwrap()
        .to_owned();
    let mut other = idp_claims("system/*.rs");
    other["client_id"] = json!("portal");
    let other = idp.es256.sign(&other);
    get(&router, &status, &other).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    call(&router, Method::DELETE, &status, Some(&other), "")
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    // A confined caller of the same client has no jobs.
    get(&router, &status, &a).await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    let own = get(&router, &status, &idp.token("system/*.rs")).await;
    assert_eq!(own.status, StatusCode::ACCEPTED, "{}", own.text());
    let cancelled =
        call(&router, Method::DELETE, &status, Some(&idp.token("system/*.rs")), "").await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.text());
}

async fn patient_scopes_need_a_patient_context(app: &TestApp) {
    let r = records(app).await;
    let (router, idp) = smart(app, None);
    let uri = format!("/fhir/DiagnosticReport/{}", r.a_report);
    let response = get(&router, &uri, &token(&idp, "patient/*.read", None)).await;
    response.assert_outcome(StatusCode::FORBIDDEN, "forbidden");
    assert!(response.text().contains("need the patient context"), "{}", response.text());
    let response =
        get(&router, "/fhir/DiagnosticReport", &token(&idp, "patient/*.rs", Some("not an id!")))
            .await;
    response.assert_outcome(StatusCode::FORBIDDEN, "forbidden");
    // The SMART configuration says patient/ scopes are honoured; user/ ones only with an access policy.
    let configuration =
        call(&router, Method::GET, "/fhir/.well-known/smart-configuration", None, "").await.json();
    let capabilities = configuration["capabilities"].as_array().unwrap();
    assert!(capabilities.contains(&json!("permission-patient")));
    assert!(!capabilities.contains(&json!("permission-user")));
}

fn policy() -> AccessPolicy {
    AccessPolicy::from_json(&json!({"eligible": [
        {"name": "physician (CPSO licence)", "system": CPSO},
        {"name": "nurse (CNO registration)", "system": CNO},
        {"name": "resident", "qualification": format!("{ROLES}|resident"), "system": PGME},
    ]}))
    .unwrap()
}

fn practitioner(identifiers: &Value, qualifications: &Value) -> String {
    let mut practitioner = json!({"resourceType": "Practitioner"});
    for (name, value) in [("identifier", identifiers), ("qualification", qualifications)] {
        if value.as_array().is_some_and(|items| !items.is_empty()) {
            practitioner[name] = value.clone();
        }
    }
    practitioner.to_string()
}

async fn practitioners_need_an_eligible_qualification(app: &TestApp) {
    let r = records(app).await;
    let licensed = app
        .create(
            "Practitioner",
            &practitioner(
                &json!([{"system": CPSO, "value": "10001", "period": {"start": "2001-07-01"}}]),
                &json!([]),
            ),
        )
        .await;
    let nurse = app
        .create(
            "Practitioner",
            &practitioner(&json!([{"system": CNO, "value": "N-7"}]), &json!([])),
        )
        .await;
    let resident = app
        .create(
            "Practitioner",
            &practitioner(
                &json!([]),
                &json!([{"identifier": [{"system": PGME, "value": "R-3"}],
                         "code": {"coding": [{"system": ROLES, "code": "resident"}]},
                         "period": {"start": "2020-07-01"}}]),
            ),
        )
        .await;
    let expired = app
        .create(
            "Practitioner",
            &practitioner(
                &json!([{"system": CPSO, "value": "10002", "period": {"end": "2019-12-31"}}]),
                &json!([]),
            ),
        )
        .await;
    // An extern: registered with the postgraduate office, but not as a resident.
    let extern_ = app
        .create(
            "Practitioner",
            &practitioner(
                &json!([]),
                &json!([{"identifier": [{"system": PGME, "value": "E-1"}],
                         "code": {"coding": [{"system": ROLES, "code": "extern"}]}}]),
            ),
        )
        .await;
    let role = app
        .create(
            "PractitionerRole",
            &json!({"resourceType": "PractitionerRole", "practitioner": {"reference": format!("Practitioner/{licensed}")}}).to_string(),
        )
        .await;
    let (router, idp) = smart(app, Some(policy()));
    let user_token = |fhir_user: &str| {
        let mut claims = idp_claims("user/*.read");
        claims["fhirUser"] = json!(fhir_user);
        idp.es256.sign(&claims)
    };
    let uri = format!("/fhir/DiagnosticReport/{}", r.b_report);
    for fhir_user in [
        format!("Practitioner/{licensed}"),
        format!("{BASE}/Practitioner/{nurse}"),
        format!("Practitioner/{resident}"),
        format!("PractitionerRole/{role}"),
    ] {
        let response = get(&router, &uri, &user_token(&fhir_user)).await;
        assert_eq!(response.status, StatusCode::OK, "{fhir_user}: {}", response.text());
        // Not confined: every patient's reports.
        assert_eq!(
            found(&router, "/fhir/DiagnosticReport", &user_token(&fhir_user)).await.len(),
            4
        );
    }
    for (fhir_user, reason) in [
        (format!("Practitioner/{expired}"), "10002 is outside its period"),
        (
            format!("Practitioner/{extern_}"),
            "no current qualification that the access policy admits",
        ),
        ("Practitioner/nobody".to_owned(), "not a Practitioner this server holds"),
        (format!("Patient/{}", r.a), "not a Practitioner or PractitionerRole"),
        (format!("https://elsewhere.test/fhir/Practitioner/{licensed}"), "of this server"),
    ] {
        let response = get(&router, &uri, &user_token(&fhir_user)).await;
        response.assert_outcome(StatusCode::FORBIDDEN, "forbidden");
        assert!(response.text().contains(reason), "{fhir_user}: {}", response.text());
    }
    // The stored Practitioner is read on each request: once the licence ends, access ends.
    let ended = json!({"resourceType": "Practitioner", "id": licensed,
                       "identifier": [{"system": CPSO, "value": "10001", "period": {"start": "2001-07-01", "end": "2020-01-01"}}]});
    let response = app.put(&format!("/fhir/Practitioner/{licensed}"), &ended.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let response = get(&router, &uri, &user_token(&format!("Practitioner/{licensed}"))).await;
    response.assert_outcome(StatusCode::FORBIDDEN, "forbidden");
    let configuration =
        call(&router, Method::GET, "/fhir/.well-known/smart-configuration", None, "").await.json();
    assert!(configuration["capabilities"].as_array().unwrap().contains(&json!("permission-user")));
}

/// A Subscription would tell its creator of every report its criteria match, another patient's too: no
/// Subscription is in a patient's compartment, so a confined caller can neither create one nor read one's state.
async fn subscriptions_are_outside_every_compartment(app: &TestApp) {
    let r = records(app).await;
    let subscription = json!({"resourceType": "Subscription", "status": "requested", "reason": "reports",
        "criteria": "DiagnosticReport?status=final",
        "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"}});
    let id = app.create("Subscription", &subscription.to_string()).await;
    let (router, idp) = smart(app, None);
    let a = token(&idp, "patient/*.cruds", Some(&r.a));
    let created =
        call(&router, Method::POST, "/fhir/Subscription", Some(&a), &subscription.to_string())
            .await;
    assert_eq!(created.status, StatusCode::FORBIDDEN, "{}", created.text());
    for operation in ["$status", "$events", "$deliveries"] {
        get(&router, &format!("/fhir/Subscription/{id}/{operation}"), &a)
            .await
            .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    }
    let resend = format!("/fhir/Subscription/{id}/$resend?eventsSinceNumber=1");
    call(&router, Method::POST, &resend, Some(&a), "")
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
}
