//! The poll feed: `_history?_since=` walked by its `next` links, and `_lastUpdated` searches, under concurrent
//! writers. A poll returns the versions stamped before its horizon (the history Bundle's `meta.lastUpdated`),
//! which no uncommitted or later write is stamped before, so polls that each start at the previous one's
//! horizon see every version exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, build_request, engine_config, send_to};

backend_tests!(concurrent_writers_and_pollers_see_every_version_once);

const CPSO: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician";

/// One version: type, id, version id.
type Version = (String, String, String);

/// Follows `next` links from `uri` and returns every entry and the first page's Bundle `meta.lastUpdated`.
async fn walk(router: &axum::Router, uri: &str) -> (Vec<Value>, String) {
    let mut entries = Vec::new();
    let mut horizon = None;
    let mut next = Some(uri.to_owned());
    let mut pages = 0;
    while let Some(uri) = next.take() {
        let response = send_to(router, build_request(Method::GET, &uri, &[], "")).await;
        assert_eq!(response.status, StatusCode::OK, "{uri}: {}", response.text());
        let bundle = response.json();
        let stamp = bundle["meta"]["lastUpdated"].as_str().unwrap().to_owned();
        // Every page of one walk reads up to the same horizon.
        assert_eq!(horizon.get_or_insert_with(|| stamp.clone()), &stamp, "{uri}");
        entries.extend(bundle["entry"].as_array().cloned().unwrap_or_default());
        next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|link| link["relation"] == "next")
            .map(|link| {
                link["url"].as_str().unwrap().strip_prefix("http://cdr.test").unwrap().to_owned()
            });
        pages += 1;
        assert!(pages < 10_000, "paging does not end");
    }
    (entries, horizon.unwrap())
}

fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn version_of(resource: &Value) -> Version {
    (
        resource["resourceType"].as_str().unwrap().to_owned(),
        resource["id"].as_str().unwrap().to_owned(),
        resource["meta"]["versionId"].as_str().unwrap().to_owned(),
    )
}

/// One poll of system history since `since` (all of it when `None`): the versions seen and the horizon the
/// next poll starts at.
async fn poll_history(router: &axum::Router, since: Option<&str>) -> (Vec<Version>, String) {
    let uri = match since {
        Some(since) => format!("/fhir/_history?_count=7&_since={}", encoded(since)),
        None => "/fhir/_history?_count=7".to_owned(),
    };
    let (entries, horizon) = walk(router, &uri).await;
    let versions = entries
        .iter()
        .map(|entry| {
            let (res_type, id) = entry["fullUrl"]
                .as_str()
                .unwrap()
                .strip_prefix("http://cdr.test/fhir/")
                .unwrap()
                .split_once('/')
                .unwrap();
            let etag = entry["response"]["etag"].as_str().unwrap();
            let version = etag.trim_start_matches("W/\"").trim_end_matches('"');
            (res_type.to_owned(), id.to_owned(), version.to_owned())
        })
        .collect();
    (versions, horizon)
}

/// One poll of the reports routed to licence `licence` changed after `after`, in `_lastUpdated` order: the
/// versions seen and the `lastUpdated` of the last one (the next poll's `gt`), or `after` when none.
async fn poll_reports(router: &axum::Router, licence: &str, after: &str) -> (Vec<Version>, String) {
    let uri = format!(
        "/fhir/DiagnosticReport?recipient.identifier={}&_lastUpdated=gt{}&_sort=_lastUpdated&_count=5",
        encoded(&format!("{CPSO}|{licence}")),
        encoded(after)
    );
    let (entries, _) = walk(router, &uri).await;
    let mut last = after.to_owned();
    let mut versions = Vec::new();
    for entry in &entries {
        let stamp = entry["resource"]["meta"]["lastUpdated"].as_str().unwrap();
        assert!(stamp >= last.as_str(), "pages in _lastUpdated order: {stamp} after {last}");
        stamp.clone_into(&mut last);
        versions.push(version_of(&entry["resource"]));
    }
    (versions, last)
}

/// Several writers create and update reports routed to one clinician, as concurrent requests, while a history
/// poller and a report poller each poll from where their previous poll ended, walking every page; then each
/// polls once more. The history poller has seen every version written exactly once, the report poller every
/// report's last version, and no version twice.
async fn concurrent_writers_and_pollers_see_every_version_once(app: &TestApp) {
    let practitioner =
        json!({"resourceType": "Practitioner", "identifier": [{"system": CPSO, "value": "77777"}]});
    let practitioner = app.create("Practitioner", &practitioner.to_string()).await;
    let order = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p"}, "requester": {"reference": format!("Practitioner/{practitioner}")}});
    let order = app.create("ServiceRequest", &order.to_string()).await;
    let (before, start) = poll_history(&app.router(), None).await;
    assert_eq!(before.len(), 2);

    let done = Arc::new(AtomicBool::new(false));
    let history_poller = {
        let (router, done) = (app.router(), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut seen, mut since) = (Vec::new(), start);
            loop {
                let finished = done.load(Ordering::SeqCst);
                let (versions, horizon) = poll_history(&router, Some(&since)).await;
                seen.extend(versions);
                since = horizon;
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let report_poller = {
        let (router, done) = (app.router(), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut seen, mut after) = (Vec::new(), "2000-01-01T00:00:00.000Z".to_owned());
            loop {
                let finished = done.load(Ordering::SeqCst);
                let (versions, last) = poll_reports(&router, "77777", &after).await;
                seen.extend(versions);
                after = last;
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let (router, order) = (app.router(), order.clone());
            tokio::spawn(async move {
                let mut written = Vec::new();
                for round in 0..4 {
                    let body = json!({"resourceType": "DiagnosticReport", "status": "preliminary",
                        "code": {"text": format!("writer {writer} round {round}")},
                        "basedOn": [{"reference": format!("ServiceRequest/{order}")}]});
                    let request = build_request(
                        Method::POST,
                        "/fhir/DiagnosticReport",
                        &[("content-type", "application/fhir+json")],
                        &body.to_string(),
                    );
                    let created = send_to(&router, request).await;
                    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
                    let mut report = created.json();
                    written.push(version_of(&report));
                    report["status"] = json!("final");
                    let id = report["id"].as_str().unwrap().to_owned();
                    let request = build_request(
                        Method::PUT,
                        &format!("/fhir/DiagnosticReport/{id}"),
                        &[("content-type", "application/fhir+json")],
                        &report.to_string(),
                    );
                    let updated = send_to(&router, request).await;
                    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
                    written.push(version_of(&updated.json()));
                }
                written
            })
        })
        .collect();
    let mut written = Vec::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let history = history_poller.await.unwrap();
    let reports = report_poller.await.unwrap();

    let mut expected = written.clone();
    expected.sort();
    let mut seen = history.clone();
    seen.sort();
    assert_eq!(seen, expected, "history: every version written, each once");
    let distinct: BTreeSet<&Version> = reports.iter().collect();
    assert_eq!(distinct.len(), reports.len(), "no report version seen twice");
    let latest: BTreeMap<&str, &str> =
        written.iter().map(|(_, id, version)| (id.as_str(), version.as_str())).collect();
    for (id, version) in latest {
        let found = reports.iter().any(|(_, seen_id, seen)| seen_id == id && seen == version);
        assert!(found, "DiagnosticReport/{id} version {version} was not seen by the report poller");
    }
}

/// A write stamped, then held uncommitted, while later writes commit and both feeds are polled: neither poll
/// returns the later writes, and the next polls return them all with the held one. Without the horizon, the
/// first polls return the later writes and the next ones, starting after them, never see the held write.
/// (PostgreSQL only: SQLite admits one writer at a time, so no write commits while another is held; the
/// concurrent test above covers it.) The write is held by a second connection that inserted, uncommitted,
/// the version row it is about to insert, so its insert waits on the unique key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_committed_late_is_in_the_next_poll() {
    let config = cdr_interactions::EngineConfig { update_create: true, ..engine_config() };
    let app = TestApp::spawn_with(Backend::Postgres, config).await;
    let practitioner =
        json!({"resourceType": "Practitioner", "identifier": [{"system": CPSO, "value": "88888"}]});
    let practitioner = app.create("Practitioner", &practitioner.to_string()).await;
    let order = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p"}, "requester": {"reference": format!("Practitioner/{practitioner}")}});
    let order = app.create("ServiceRequest", &order.to_string()).await;
    let report = |id: Option<&str>| {
        let mut report = json!({"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CT"},
            "basedOn": [{"reference": format!("ServiceRequest/{order}")}]});
        if let Some(id) = id {
            report["id"] = json!(id);
        }
        report.to_string()
    };
    let (_, start) = poll_history(&app.router(), None).await;

    let (admin_url, schema) = app.postgres_schema().unwrap();
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query(
        "INSERT INTO resource_version (res_type, res_id, version, last_updated, method, body) \
         VALUES ('DiagnosticReport', 'held', 1, 0, 'POST', NULL)",
    )
    .execute(&mut holder)
    .await
    .unwrap();
    let held = {
        let router = app.router();
        let request = build_request(
            Method::PUT,
            "/fhir/DiagnosticReport/held",
            &[("content-type", "application/fhir+json")],
            &report(Some("held")),
        );
        tokio::spawn(async move { send_to(&router, request).await })
    };
    // Wait until the held write waits on the holder's row: stamped, written in part, uncommitted.
    let mut observer = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
    let mut waits = 0;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
        )
        .bind(schema)
        .fetch_one(&mut observer)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        waits += 1;
        assert!(waits < 2_000, "the held write never waited on the holder");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let requests = (0..6)
        .map(|_| {
            build_request(
                Method::POST,
                "/fhir/DiagnosticReport",
                &[("content-type", "application/fhir+json")],
                &report(None),
            )
        })
        .collect();
    let later: Vec<Version> = app
        .race(requests)
        .await
        .iter()
        .map(|response| {
            assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
            version_of(&response.json())
        })
        .collect();

    let (first_history, horizon) = poll_history(&app.router(), Some(&start)).await;
    let (first_reports, last) =
        poll_reports(&app.router(), "88888", "2000-01-01T00:00:00.000Z").await;
    for version in &later {
        assert!(
            !first_history.contains(version),
            "history returned {version:?} before the held write"
        );
        assert!(
            !first_reports.contains(version),
            "the search returned {version:?} before the held write"
        );
    }

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let held = held.await.unwrap();
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text());
    let held = version_of(&held.json());

    let (next_history, _) = poll_history(&app.router(), Some(&horizon)).await;
    let (next_reports, _) = poll_reports(&app.router(), "88888", &last).await;
    let mut expected = later.clone();
    expected.push(held);
    expected.sort();
    for (name, first, next) in
        [("history", first_history, next_history), ("reports", first_reports, next_reports)]
    {
        let mut seen: Vec<Version> = first
            .into_iter()
            .chain(next)
            .filter(|(res_type, _, _)| res_type == "DiagnosticReport")
            .collect();
        seen.sort();
        assert_eq!(seen, expected, "{name}: every report once");
    }
}
