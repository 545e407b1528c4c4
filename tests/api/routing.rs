//! Report routing: a DiagnosticReport's `recipient`s are the requester and the copy-to recipients of the
//! orders it is based on, searched by reference and by the clinician's licence through the chain, and kept
//! up to date when the order changes, arrives after the report, or is written in the same Bundle.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, search_params};

backend_tests!(
    requester_and_copies_to_are_recipients,
    an_updated_order_reroutes_its_reports,
    a_bundle_routes_the_report_it_writes_with_its_order,
    reindex_rebuilds_the_recipients
);

const CPSO: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician";

/// The copy-to recipients' extension (HL7 v2 OBR-28), as `profiles/` indexes it.
const COPIES_TO: &str = "http://hl7.org.au/fhir/StructureDefinition/result-copies-to";

fn practitioner(licence: &str) -> String {
    json!({"resourceType": "Practitioner", "identifier": [{"system": CPSO, "value": licence}]})
        .to_string()
}

fn order(requester: &str, copies_to: &[Value]) -> Value {
    let mut order = json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "requester": {"reference": requester},
    });
    if !copies_to.is_empty() {
        let extensions: Vec<Value> = copies_to
            .iter()
            .map(|reference| json!({"url": COPIES_TO, "valueReference": reference}))
            .collect();
        order["extension"] = Value::Array(extensions);
    }
    order
}

fn report(order_id: &str) -> String {
    json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "CT head"},
        "basedOn": [{"reference": format!("ServiceRequest/{order_id}")}],
    })
    .to_string()
}

/// The ids of the DiagnosticReports a search finds.
async fn reports(app: &TestApp, query: &str) -> Vec<String> {
    let bundle = app.search(&format!("DiagnosticReport?{query}")).await;
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|entry| entry["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn by_licence(licence: &str) -> String {
    format!("recipient.identifier={CPSO}|{licence}")
}

/// The requester and each copy-to recipient (by reference, or by licence alone) route the report; a
/// requester that is an Organization does not, and neither does a licence no order names.
async fn requester_and_copies_to_are_recipients(app: &TestApp) {
    let ordering = app.create("Practitioner", &practitioner("12345")).await;
    let family = app.create("Practitioner", &practitioner("23456")).await;
    let clinic =
        app.create("Organization", r#"{"resourceType":"Organization","name":"Clinic"}"#).await;
    let copies_to = [
        json!({"reference": format!("Practitioner/{family}")}),
        json!({"type": "Practitioner", "identifier": {"system": CPSO, "value": "34567"}}),
        json!({"reference": format!("Organization/{clinic}")}),
    ];
    let order_id = app
        .create(
            "ServiceRequest",
            &order(&format!("Practitioner/{ordering}"), &copies_to).to_string(),
        )
        .await;
    let routed = app.create("DiagnosticReport", &report(&order_id)).await;
    let clinic_order = app
        .create("ServiceRequest", &order(&format!("Organization/{clinic}"), &[]).to_string())
        .await;
    let unrouted = app.create("DiagnosticReport", &report(&clinic_order)).await;

    assert_eq!(reports(app, &by_licence("12345")).await, vec![routed.clone()]);
    assert_eq!(reports(app, &by_licence("23456")).await, vec![routed.clone()]);
    assert_eq!(
        reports(app, &format!("recipient=Practitioner/{ordering}")).await,
        vec![routed.clone()]
    );
    assert_eq!(reports(app, &format!("recipient={family}")).await, vec![routed.clone()]);
    assert_eq!(
        reports(app, &format!("recipient:identifier={CPSO}|34567")).await,
        vec![routed.clone()],
        "a copy-to recipient named by licence alone"
    );
    assert!(reports(app, &by_licence("99999")).await.is_empty());
    assert_eq!(
        reports(app, "recipient:missing=true").await,
        vec![unrouted],
        "an Organization is no recipient"
    );
    // Several orders: the report reaches the recipients of each.
    let second = app.create("Practitioner", &practitioner("45678")).await;
    let second_order = app
        .create("ServiceRequest", &order(&format!("Practitioner/{second}"), &[]).to_string())
        .await;
    let both = json!({
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "CT head"},
        "basedOn": [{"reference": format!("ServiceRequest/{order_id}")}, {"reference": format!("ServiceRequest/{second_order}")}],
    });
    let both = app.create("DiagnosticReport", &both.to_string()).await;
    let mut expected = vec![routed.clone(), both.clone()];
    expected.sort();
    assert_eq!(reports(app, &by_licence("12345")).await, expected);
    assert_eq!(reports(app, &by_licence("45678")).await, vec![both]);
    // A licence changed on the Practitioner needs no re-routing: the chain reads the Practitioner's own rows.
    let renewed = json!({"resourceType": "Practitioner", "id": ordering, "identifier": [{"system": CPSO, "value": "12399"}]});
    let response = app.put(&format!("/fhir/Practitioner/{ordering}"), &renewed.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(reports(app, &by_licence("12399")).await.len(), 2);
    assert!(reports(app, &by_licence("12345")).await.is_empty());
}

/// A changed order re-routes the reports based on it, in the same transaction: a new requester, copies
/// added and removed; a report updated keeps its recipients; a deleted order routes nothing.
async fn an_updated_order_reroutes_its_reports(app: &TestApp) {
    let first = app.create("Practitioner", &practitioner("11111")).await;
    let second = app.create("Practitioner", &practitioner("22222")).await;
    let order_id = app
        .create("ServiceRequest", &order(&format!("Practitioner/{first}"), &[]).to_string())
        .await;
    let report_id = app.create("DiagnosticReport", &report(&order_id)).await;
    assert_eq!(reports(app, &by_licence("11111")).await, vec![report_id.clone()]);

    let mut changed = order(
        &format!("Practitioner/{second}"),
        &[json!({"reference": format!("Practitioner/{first}")})],
    );
    changed["id"] = json!(order_id);
    let response = app.put(&format!("/fhir/ServiceRequest/{order_id}"), &changed.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(reports(app, &by_licence("22222")).await, vec![report_id.clone()]);
    assert_eq!(
        reports(app, &by_licence("11111")).await,
        vec![report_id.clone()],
        "now a copy-to recipient"
    );

    let mut requester_only = order(&format!("Practitioner/{second}"), &[]);
    requester_only["id"] = json!(order_id);
    let response =
        app.put(&format!("/fhir/ServiceRequest/{order_id}"), &requester_only.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert!(reports(app, &by_licence("11111")).await.is_empty(), "the copy was withdrawn");

    // A new version of the report is routed again from its order.
    let mut amended: Value = serde_json::from_str(&report(&order_id)).unwrap();
    amended["id"] = json!(report_id);
    amended["status"] = json!("amended");
    let response =
        app.put(&format!("/fhir/DiagnosticReport/{report_id}"), &amended.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(reports(app, &by_licence("22222")).await, vec![report_id.clone()]);

    assert_eq!(
        app.delete(&format!("/fhir/ServiceRequest/{order_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(reports(app, &by_licence("22222")).await.is_empty(), "a deleted order routes nothing");
}

/// A transaction that writes the report, its order and the order's requester together (the report first)
/// routes the report from the order it writes.
async fn a_bundle_routes_the_report_it_writes_with_its_order(app: &TestApp) {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:5c4a7d1e-0000-4000-8000-000000000001",
             "resource": {"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CT head"},
                          "basedOn": [{"reference": "urn:uuid:5c4a7d1e-0000-4000-8000-000000000002"}]},
             "request": {"method": "POST", "url": "DiagnosticReport"}},
            {"fullUrl": "urn:uuid:5c4a7d1e-0000-4000-8000-000000000002",
             "resource": order("urn:uuid:5c4a7d1e-0000-4000-8000-000000000003", &[]),
             "request": {"method": "POST", "url": "ServiceRequest"}},
            {"fullUrl": "urn:uuid:5c4a7d1e-0000-4000-8000-000000000003",
             "resource": {"resourceType": "Practitioner", "identifier": [{"system": CPSO, "value": "33333"}]},
             "request": {"method": "POST", "url": "Practitioner"}},
        ],
    });
    let response = app.post("/fhir", &bundle.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let location = response.json()["entry"][0]["response"]["location"].as_str().unwrap().to_owned();
    let report_id = location.split('/').nth(1).unwrap().to_owned();
    assert_eq!(reports(app, &by_licence("33333")).await, vec![report_id]);
}

/// `imaging-cdr reindex` rebuilds the `recipient` rows with the rest, whichever of report and order comes
/// first in its batches.
async fn reindex_rebuilds_the_recipients(app: &TestApp) {
    let practitioner_id = app.create("Practitioner", &practitioner("55555")).await;
    let order_id = app
        .create(
            "ServiceRequest",
            &order(&format!("Practitioner/{practitioner_id}"), &[]).to_string(),
        )
        .await;
    let report_id = app.create("DiagnosticReport", &report(&order_id)).await;
    for batch in [1, 1_000] {
        cdr_interactions::reindex(app.store(), search_params(), batch).await.unwrap();
        assert_eq!(
            reports(app, &by_licence("55555")).await,
            vec![report_id.clone()],
            "batch {batch}"
        );
    }
}

mod before_the_order {
    //! With update as create on, a report can name an order by the id it will have.

    use axum::http::StatusCode;
    use serde_json::json;

    use super::{by_licence, order, practitioner, report, reports};
    use crate::backend_tests;
    use crate::helpers::TestApp;

    backend_tests!(with cdr_interactions::EngineConfig { update_create: true, ..crate::helpers::engine_config() }; a_report_written_before_its_order_is_routed_when_it_comes);

    /// The report is written first and reaches no one; writing its order (at the id the report names) routes
    /// it, through the reverse reference index.
    async fn a_report_written_before_its_order_is_routed_when_it_comes(app: &TestApp) {
        let report_id = app.create("DiagnosticReport", &report("order-1")).await;
        let practitioner_id = app.create("Practitioner", &practitioner("66666")).await;
        assert_eq!(reports(app, "recipient:missing=true").await, vec![report_id.clone()]);
        let mut order = order(&format!("Practitioner/{practitioner_id}"), &[]);
        order["id"] = json!("order-1");
        let response = app.put("/fhir/ServiceRequest/order-1", &order.to_string()).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
        assert_eq!(reports(app, &by_licence("66666")).await, vec![report_id]);
    }
}
