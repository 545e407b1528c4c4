//! History at instance, type and system level, and paging through it.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(instance_history_pages_newest_first, type_and_system_history, history_parameters);

/// Follows `next` links from `uri`, returning every entry and the number of pages.
async fn walk(app: &TestApp, uri: &str) -> (Vec<Value>, usize) {
    let mut entries = Vec::new();
    let mut pages = 0;
    let mut next = Some(uri.to_owned());
    while let Some(uri) = next.take() {
        let response = app.get(&uri).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let bundle = response.json();
        assert_eq!(bundle["type"], "history");
        pages += 1;
        entries.extend(bundle["entry"].as_array().cloned().unwrap_or_default());
        next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|link| link["relation"] == "next")
            .map(|link| {
                link["url"].as_str().unwrap().strip_prefix("http://cdr.test").unwrap().to_owned()
            });
        assert!(pages < 100, "paging does not end");
    }
    (entries, pages)
}

async fn instance_history_pages_newest_first(app: &TestApp) {
    let id = app.create("DiagnosticReport", r#"{"resourceType":"DiagnosticReport","status":"preliminary","code":{"text":"CT head"}}"#).await;
    let uri = format!("/fhir/DiagnosticReport/{id}");
    for status in ["final", "amended", "corrected", "appended"] {
        let body = format!(
            r#"{{"resourceType":"DiagnosticReport","id":"{id}","status":"{status}","code":{{"text":"CT head"}}}}"#
        );
        assert_eq!(app.put(&uri, &body).await.status, StatusCode::OK);
    }
    let (entries, pages) = walk(app, &format!("{uri}/_history?_count=2")).await;
    assert_eq!(pages, 3);
    let versions: Vec<&str> = entries
        .iter()
        .map(|entry| entry["resource"]["meta"]["versionId"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["5", "4", "3", "2", "1"]);
    let statuses: Vec<&str> =
        entries.iter().map(|entry| entry["resource"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["appended", "corrected", "amended", "final", "preliminary"]);
    let first = &entries[4];
    assert_eq!(first["fullUrl"], format!("http://cdr.test/fhir/DiagnosticReport/{id}"));
    assert_eq!(first["request"]["method"], "POST");
    assert_eq!(first["request"]["url"], "DiagnosticReport");
    assert_eq!(first["response"]["status"], "201 Created");
    assert_eq!(first["response"]["etag"], "W/\"1\"");
    assert_eq!(entries[0]["request"]["method"], "PUT");
    assert_eq!(entries[0]["request"]["url"], format!("DiagnosticReport/{id}"));

    app.get("/fhir/DiagnosticReport/unknown/_history")
        .await
        .assert_outcome(StatusCode::NOT_FOUND, "not-found");
}

async fn type_and_system_history(app: &TestApp) {
    let mut created = HashSet::new();
    for index in 0..7 {
        created.insert((
            "Patient",
            app.create(
                "Patient",
                &format!(
                    r#"{{"resourceType":"Patient","gender":"{}"}}"#,
                    if index % 2 == 0 { "female" } else { "male" }
                ),
            )
            .await,
        ));
        created.insert((
            "Organization",
            app.create(
                "Organization",
                r#"{"resourceType":"Organization","name":"Imaging centre"}"#,
            )
            .await,
        ));
    }
    let (patients, _) = walk(app, "/fhir/Patient/_history?_count=3").await;
    assert_eq!(patients.len(), 7);
    assert!(patients.iter().all(|entry| entry["resource"]["resourceType"] == "Patient"));

    let (all, pages) = walk(app, "/fhir/_history?_count=4").await;
    assert_eq!(pages, 4);
    let seen: HashSet<(&str, String)> = all
        .iter()
        .map(|entry| {
            let resource = &entry["resource"];
            let resource_type =
                if resource["resourceType"] == "Patient" { "Patient" } else { "Organization" };
            (resource_type, resource["id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(all.len(), 14, "every version appears exactly once");
    assert_eq!(seen, created);
    let stamps: Vec<&str> = all
        .iter()
        .map(|entry| entry["resource"]["meta"]["lastUpdated"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|pair| pair[0] >= pair[1]), "newest first: {stamps:?}");
}

async fn history_parameters(app: &TestApp) {
    app.create("Patient", r#"{"resourceType":"Patient"}"#).await;
    let future = app.get("/fhir/Patient/_history?_since=2100-01-01T00:00:00Z").await.json();
    assert!(future.get("entry").is_none());
    let past = app.get("/fhir/Patient/_history?_since=2000-01-01").await.json();
    assert_eq!(past["entry"].as_array().unwrap().len(), 1);
    app.get("/fhir/Patient/_history?_since=yesterday")
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.get("/fhir/Patient/_history?_count=-1")
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.get("/fhir/Patient/_history?_list=x")
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "not-supported");
    let capped = app.get("/fhir/_history?_count=100000").await.json();
    let self_link = capped["link"][0]["url"].as_str().unwrap();
    let max_count = format!("_count={}", cdr_interactions::PageLimits::default().max_page_size);
    assert!(self_link.split(['?', '&']).any(|pair| pair == max_count), "{self_link}");
}
