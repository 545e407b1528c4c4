//! Searching the audit trail's own table: every parameter it serves against events of known values (the
//! prefixes of `date` at the edges of its precision, each token form, each reference form, chains into the
//! resource tables), sort and keyset paging, type and instance history, the refusals (parameters it does not
//! serve, includes, `_has`, mixing types), and the move of AuditEvents stored as resources by an earlier
//! version into the table.

use axum::http::{Method, StatusCode};
use cdr_model::{Instant, LogicalId, VersionId};
use cdr_store::{AUDIT_EVENT, AuditRow, NewVersion, WriteMethod};
use serde_json::{Value, json};

use crate::helpers::TestApp;

crate::backend_tests!(
    with cdr_interactions::EngineConfig { update_create: true, ..crate::helpers::engine_config() };
    every_parameter_matches_what_its_values_say,
    pages_walk_the_trail_in_time_order,
    history_and_reads_serve_the_trail,
    what_the_trail_does_not_serve_is_refused,
    audit_events_stored_as_resources_are_moved_into_the_trail,
);

const REST: (&str, &str) = ("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest");
const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const INTERACTION: &str = "http://hl7.org/fhir/restful-interaction";

/// One event of the fixture: id, recorded, subtype code, action, outcome, patient, agent, entity.
struct Event {
    id: &'static str,
    recorded: &'static str,
    subtype: &'static str,
    action: &'static str,
    outcome: &'static str,
    patient: Option<&'static str>,
    agent: Option<&'static str>,
    entity: Option<&'static str>,
}

const EVENTS: [Event; 5] = [
    Event {
        id: "e1",
        recorded: "2026-01-01T10:00:00.000Z",
        subtype: "read",
        action: "R",
        outcome: "0",
        patient: Some("p1"),
        agent: Some("Practitioner/dr"),
        entity: Some("DiagnosticReport/r1/_history/1"),
    },
    Event {
        id: "e2",
        recorded: "2026-01-01T10:00:01.000Z",
        subtype: "read",
        action: "R",
        outcome: "0",
        patient: Some("p1"),
        agent: Some("https://cdr.example/fhir/Practitioner/dr"),
        entity: Some("DiagnosticReport/r1/_history/2"),
    },
    Event {
        id: "e3",
        recorded: "2026-01-01T10:00:01.999Z",
        subtype: "search-type",
        action: "E",
        outcome: "4",
        patient: Some("p2"),
        agent: Some("Practitioner/other"),
        entity: None,
    },
    Event {
        id: "e4",
        recorded: "2026-01-01T10:00:02.000Z",
        subtype: "update",
        action: "U",
        outcome: "0",
        patient: Some("p1"),
        agent: None,
        entity: Some("Patient/p1/_history/3"),
    },
    Event {
        id: "e5",
        recorded: "2026-01-02T00:00:00.000Z",
        subtype: "110122",
        action: "E",
        outcome: "8",
        patient: None,
        agent: None,
        entity: None,
    },
];

/// The AuditEvent JSON of a fixture event, in the BALP shape the server writes.
fn body(event: &Event) -> Value {
    let (event_type, subtype) = if event.subtype == "110122" {
        (json!({"system": DICOM, "code": "110114"}), json!({"system": DICOM, "code": "110122"}))
    } else {
        (
            json!({"system": REST.0, "code": REST.1}),
            json!({"system": INTERACTION, "code": event.subtype}),
        )
    };
    let mut agents = Vec::new();
    if let Some(agent) = event.agent {
        agents.push(json!({"who": {"reference": agent}, "requestor": true,
                           "policy": [format!("urn:ietf:params:oauth:jti:{}", event.id)]}));
    }
    agents.push(json!({"who": {"identifier": {"system": "https://idp.test", "value": "viewer"}},
                       "altId": "viewer", "requestor": event.agent.is_none()}));
    let mut entities = Vec::new();
    if let Some(patient) = event.patient {
        entities.push(
            json!({"what": {"reference": format!("Patient/{patient}")}, "role": {"code": "1"}}),
        );
    }
    if let Some(entity) = event.entity {
        entities.push(json!({"what": {"reference": entity}, "role": {"code": "4"}}));
    }
    json!({"resourceType": "AuditEvent", "id": event.id,
           "meta": {"versionId": "1", "lastUpdated": event.recorded},
           "type": event_type, "subtype": [subtype], "action": event.action,
           "recorded": event.recorded, "outcome": event.outcome, "agent": agents, "entity": entities,
           "source": {"observer": {"display": "cdr"}}})
}

fn row(event: &Event) -> AuditRow {
    let (event_type, subtype) = if event.subtype == "110122" {
        ((DICOM, "110114"), (DICOM, "110122"))
    } else {
        (REST, (INTERACTION, event.subtype))
    };
    let owned = |(system, code): (&str, &str)| Some((system.to_owned(), code.to_owned()));
    AuditRow {
        id: LogicalId::parse(event.id).unwrap(),
        recorded: Instant::parse_fhir(event.recorded).unwrap(),
        event_type: owned(event_type),
        subtype: owned(subtype),
        action: Some(event.action.to_owned()),
        outcome: Some(event.outcome.to_owned()),
        patient: event.patient.map(str::to_owned),
        agent: event
            .agent
            .map(|agent| agent.trim_start_matches("https://cdr.example/fhir/").to_owned()),
        entity: event.entity.map(|entity| {
            let (resource, version) = entity.split_once("/_history/").unwrap();
            (resource.to_owned(), Some(version.to_owned()))
        }),
        altid: Some("viewer".to_owned()),
        client_issuer: Some("https://idp.test".to_owned()),
        policy: event.agent.map(|_| format!("urn:ietf:params:oauth:jti:{}", event.id)),
        address: Some(if event.id == "e3" { "10.0.0.3" } else { "10.0.0.1" }.to_owned()),
        body: body(event).to_string(),
    }
}

async fn fixture(app: &TestApp) {
    let rows: Vec<AuditRow> = EVENTS.iter().map(row).collect();
    app.store().append_audit(&rows).await.unwrap();
}

/// The ids a search of the trail matches, in Bundle order (one page).
async fn ids(app: &TestApp, query: &str) -> Vec<String> {
    let bundle = app.search(&format!("AuditEvent?{query}")).await;
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| entry["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn every_parameter_matches_what_its_values_say(app: &TestApp) {
    fixture(app).await;
    // Resources the chains reach, in the resource tables.
    let patient =
        r#"{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:mrn","value":"123"}]}"#;
    assert_eq!(app.put("/fhir/Patient/p1", patient).await.status, StatusCode::CREATED);
    let report =
        r#"{"resourceType":"DiagnosticReport","id":"r1","status":"final","code":{"text":"CT"}}"#;
    assert_eq!(app.put("/fhir/DiagnosticReport/r1", report).await.status, StatusCode::CREATED);
    let practitioner = r#"{"resourceType":"Practitioner","id":"dr","name":[{"family":"One"}]}"#;
    assert_eq!(app.put("/fhir/Practitioner/dr", practitioner).await.status, StatusCode::CREATED);

    let cases: &[(&str, &[&str])] = &[
        // `recorded` at millisecond precision against ranges of every width.
        ("date=2026-01-01T10:00:01Z", &["e2", "e3"]),
        ("date=2026-01-01T10:00:01.999Z", &["e3"]),
        ("date=ge2026-01-01T10:00:01Z", &["e2", "e3", "e4", "e5"]),
        ("date=gt2026-01-01T10:00:01Z", &["e4", "e5"]),
        ("date=lt2026-01-01T10:00:01Z", &["e1"]),
        ("date=le2026-01-01T10:00:01Z", &["e1", "e2", "e3"]),
        ("date=2026-01-01", &["e1", "e2", "e3", "e4"]),
        ("date=ne2026-01-01", &["e5"]),
        ("date=sa2026-01-01", &["e5"]),
        ("date=eb2026-01-02", &["e1", "e2", "e3", "e4"]),
        ("date=ge2026-01-01T10:00:01Z&date=lt2026-01-01T10:00:02Z", &["e2", "e3"]),
        ("_lastUpdated=2026-01-02", &["e5"]),
        // Tokens in each form.
        ("subtype=read", &["e1", "e2"]),
        ("subtype=http://hl7.org/fhir/restful-interaction|read,update", &["e1", "e2", "e4"]),
        ("subtype=|read", &[]),
        ("subtype=http://hl7.org/fhir/restful-interaction|", &["e1", "e2", "e3", "e4"]),
        ("subtype:not=read", &["e3", "e4", "e5"]),
        ("type=http://dicom.nema.org/resources/ontology/DCM|110114", &["e5"]),
        ("type=rest&outcome=0", &["e1", "e2", "e4"]),
        ("action=http://hl7.org/fhir/audit-event-action|E", &["e3", "e5"]),
        ("action=http://elsewhere|E", &[]),
        ("outcome=4,8", &["e3", "e5"]),
        ("outcome:missing=true", &[]),
        ("_id=e3,e4", &["e3", "e4"]),
        ("altid=viewer&subtype=update", &["e4"]),
        ("policy=urn:ietf:params:oauth:jti:e2", &["e2"]),
        ("address=10.0.0.3", &["e3"]),
        ("address=10.0.0&subtype=search-type", &["e3"]),
        ("address:exact=10.0.0", &[]),
        // References in each form.
        ("patient=p1", &["e1", "e2", "e4"]),
        ("patient=Patient/p2", &["e3"]),
        ("patient=https://cdr.example/fhir/Patient/p2", &["e3"]),
        ("patient:missing=true", &["e5"]),
        ("agent=Practitioner/dr", &["e1", "e2"]),
        ("agent=other", &["e3"]),
        ("agent:missing=true", &["e4", "e5"]),
        ("agent:identifier=https://idp.test|viewer&patient=p2", &["e3"]),
        ("entity=DiagnosticReport/r1", &["e1", "e2"]),
        ("entity=DiagnosticReport/r1/_history/2", &["e2"]),
        ("entity=r1", &["e1", "e2"]),
        // Every entity's `what`: the patient's too.
        ("entity=Patient/p2", &["e3"]),
        // Chains run their inner criterion on the resource tables.
        ("patient.identifier=urn:mrn|123", &["e1", "e2", "e4"]),
        ("patient.identifier=urn:mrn|999", &[]),
        ("entity:DiagnosticReport.status=final", &["e1", "e2"]),
        ("agent:Practitioner.name=one", &["e1", "e2"]),
    ];
    for (query, expected) in cases {
        assert_eq!(ids(app, query).await, *expected, "{query}");
    }
    let counted = app.search("AuditEvent?patient=p1&_summary=count").await;
    assert_eq!(counted["total"], 3);
    let totalled = app.search("AuditEvent?outcome=0&_total=accurate&_count=1").await;
    assert_eq!(totalled["total"], 3);
}

async fn pages_walk_the_trail_in_time_order(app: &TestApp) {
    fixture(app).await;
    assert_eq!(ids(app, "").await, ["e1", "e2", "e3", "e4", "e5"]);
    assert_eq!(ids(app, "_sort=-date").await, ["e5", "e4", "e3", "e2", "e1"]);
    assert_eq!(ids(app, "_sort=_lastUpdated&outcome=0").await, ["e1", "e2", "e4"]);
    for (sort, expected) in
        [("date", ["e1", "e2", "e3", "e4", "e5"]), ("-date", ["e5", "e4", "e3", "e2", "e1"])]
    {
        let mut walked = Vec::new();
        let mut pages = Vec::new();
        let mut url = format!("/fhir/AuditEvent?_count=2&_sort={sort}");
        loop {
            let bundle = app.get(&url).await.json();
            pages.push(bundle.clone());
            walked.extend(
                bundle["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|entry| entry["resource"]["id"].as_str().unwrap().to_owned()),
            );
            let next = bundle["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|link| link["relation"] == "next")
                .map(|link| link["url"].as_str().unwrap().to_owned());
            match next {
                Some(next) => url = next.strip_prefix("http://cdr.test").unwrap().to_owned(),
                None => break,
            }
        }
        assert_eq!(walked, expected, "_sort={sort}");
        assert_eq!(pages.len(), 3);
        // The second page's previous link leads back to the first page.
        let previous = pages[1]["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|link| link["relation"] == "previous")
            .map(|link| {
                link["url"].as_str().unwrap().strip_prefix("http://cdr.test").unwrap().to_owned()
            })
            .unwrap();
        let back = app.get(&previous).await.json();
        assert_eq!(back["entry"], pages[0]["entry"], "_sort={sort}");
    }
}

async fn history_and_reads_serve_the_trail(app: &TestApp) {
    fixture(app).await;
    let read = app.get("/fhir/AuditEvent/e3").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json(), body(&EVENTS[2]));
    assert_eq!(read.header("etag"), Some("W/\"1\""));
    assert_eq!(app.get("/fhir/AuditEvent/e3/_history/1").await.json(), body(&EVENTS[2]));
    app.get("/fhir/AuditEvent/e3/_history/2")
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
    app.get("/fhir/AuditEvent/nothing").await.assert_outcome(StatusCode::NOT_FOUND, "not-found");
    let instance = app.get("/fhir/AuditEvent/e3/_history").await.json();
    assert_eq!(instance["entry"].as_array().unwrap().len(), 1, "{instance}");
    assert_eq!(instance["entry"][0]["resource"]["id"], "e3");
    let history: Vec<String> = app.get("/fhir/AuditEvent/_history?_count=3").await.json()["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["resource"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(history, ["e5", "e4", "e3"], "newest first");
    let since = app.get("/fhir/AuditEvent/_history?_since=2026-01-01T12:00:00Z").await.json();
    assert_eq!(since["entry"].as_array().unwrap().len(), 1);
    // The system history holds the changes, never the trail.
    let system = app.get("/fhir/_history").await.json();
    assert!(system["entry"].as_array().is_none_or(|entries| {
        entries.iter().all(|entry| entry["resource"]["resourceType"] != "AuditEvent")
    }));
}

async fn what_the_trail_does_not_serve_is_refused(app: &TestApp) {
    fixture(app).await;
    for uri in [
        "/fhir/AuditEvent?source=Device/d",
        "/fhir/AuditEvent?entity-name=x",
        "/fhir/AuditEvent?_include=AuditEvent:patient",
        "/fhir/AuditEvent?_sort=subtype",
        "/fhir/Patient?_revinclude=AuditEvent:patient",
        "/fhir/Patient?_has:AuditEvent:patient:subtype=read",
        "/fhir?_type=AuditEvent,Patient",
    ] {
        let response = app.request(Method::GET, uri, &[], "").await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{uri}: {}", response.text());
        assert_eq!(response.json()["resourceType"], "OperationOutcome", "{uri}");
    }
    // A search of every type leaves the trail out.
    let everything = app.search("?_count=50").await;
    assert!(everything["entry"].as_array().is_none_or(|entries| {
        entries.iter().all(|entry| entry["resource"]["resourceType"] != "AuditEvent")
    }));
}

async fn audit_events_stored_as_resources_are_moved_into_the_trail(app: &TestApp) {
    // As an earlier version stored them: an ordinary resource with a version row (and index rows).
    let event = &EVENTS[1];
    let mut old = body(event);
    old["meta"]["lastUpdated"] = json!("2026-01-01T10:00:01.250Z");
    let old = old.to_string();
    let id = LogicalId::parse(event.id).unwrap();
    let mut tx = app.store().begin().await.unwrap();
    tx.write_all(&[NewVersion {
        res_type: AUDIT_EVENT,
        res_id: &id,
        version: VersionId::FIRST,
        last_updated: Instant::parse_fhir("2026-01-01T10:00:01.250Z").unwrap(),
        method: WriteMethod::Create,
        body: Some(&old),
        index: &[],
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids(app, "patient=p1").await, Vec::<String>::new(), "not yet in the trail");

    assert_eq!(cdr_interactions::adopt_audit_resources(app.store()).await.unwrap(), 1);
    assert_eq!(cdr_interactions::adopt_audit_resources(app.store()).await.unwrap(), 0);
    assert_eq!(ids(app, "patient=p1&agent=Practitioner/dr&date=2026-01-01T10:00:01Z&policy=urn:ietf:params:oauth:jti:e2").await, ["e2"]);
    let read = app.get("/fhir/AuditEvent/e2").await.json();
    // Its lastUpdated is now its recorded time, as the trail serves every event.
    assert_eq!(read, body(event));
    let history = app.get("/fhir/AuditEvent/_history").await.json();
    assert_eq!(history["entry"].as_array().unwrap().len(), 1);
}
