//! Search results: keyset paging (with sorting, while data changes), GET and POST `_search`, `_include` and
//! `_revinclude`, `_total`, `_summary`, `_elements`, unknown parameters, system search, conditional writes
//! through the search engine, reindexing and the CapabilityStatement.

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use cdr_search::SearchParamRegistry;
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{TestApp, end_connections, search_params};
use crate::search::{label_of, labels, patients};

backend_tests!(
    paging_walks_every_match_once,
    single_key_sorts_page_in_order,
    get_and_post_agree,
    includes,
    totals_summary_and_elements,
    unknown_parameters,
    system_search,
    conditional_writes_use_search,
    reindex_rebuilds_rows,
    reindex_of_a_live_resource_without_a_body_fails,
    planner_statistics_refresh,
    sqlite_statistics_refresh_after_writes_only,
    capabilities_list_search_parameters
);

fn link<'a>(bundle: &'a Value, relation: &str) -> Option<&'a str> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|link| link["relation"] == relation)
        .and_then(|link| link["url"].as_str())
}

/// The path and query of an absolute link, for the test router.
fn local(url: &str) -> String {
    url.strip_prefix("http://cdr.test").unwrap_or(url).to_owned()
}

fn match_entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|entry| entry["search"]["mode"] == "match")
        .map(|entry| entry["resource"].clone())
        .collect()
}

async fn create_numbered(app: &TestApp, label: &str, family: &str, birth_date: &str) {
    app.create(
        "Patient",
        &format!(
            r#"{{"resourceType":"Patient","identifier":[{{"system":"urn:test","value":"{label}"}}],
            "name":[{{"family":"{family}"}}],"birthDate":"{birth_date}"}}"#
        ),
    )
    .await;
}

/// The labels of every page of `query`, walking `next` links forward, and the labels found walking `previous`
/// links back from the last page (in forward order).
pub(crate) async fn walk_pages(app: &TestApp, query: &str) -> (Vec<String>, Vec<String>) {
    let mut url = format!("/fhir/{query}");
    let mut forward = Vec::new();
    for page in 0.. {
        assert!(page < 30, "too many pages: {query}");
        let bundle = app.get(&url).await.json();
        forward.extend(match_entries(&bundle).iter().map(label_of));
        match link(&bundle, "next") {
            Some(next) => url = local(next),
            None => break,
        }
    }
    let mut backward = Vec::new();
    for page in 0.. {
        assert!(page < 30, "too many pages back: {query}");
        let bundle = app.get(&url).await.json();
        backward.extend(match_entries(&bundle).iter().rev().map(label_of));
        match link(&bundle, "previous") {
            Some(previous) => url = local(previous),
            None => break,
        }
    }
    backward.reverse();
    (forward, backward)
}

/// What a patient sorts by.
#[derive(Debug, Clone)]
struct SortFacts {
    label: String,
    id: String,
    birth_date: Option<String>,
    lowest_family: Option<String>,
    highest_family: Option<String>,
}

/// One sort key, with ties, missing values and several values per resource: every page in order, forwards
/// and backwards, with and without other criteria. A resource sorts by its lowest value ascending and its
/// highest descending; ties go by id in the key's direction; resources without a value come last.
async fn single_key_sorts_page_in_order(app: &TestApp) {
    let families = ["Ng", "Adams", "Zhou", "Baker"];
    for index in 0..14 {
        let birth_date = if index % 5 == 4 {
            String::new()
        } else {
            format!(r#","birthDate":"19{}-01-01""#, 60 + index % 4)
        };
        let mut names = format!(r#"{{"family":"{}"}}"#, families[index % 4]);
        if index % 3 == 0 {
            names.push_str(r#",{"family":"Young"}"#);
        }
        if index % 7 == 6 {
            names = r#"{"given":["Nameless"]}"#.to_owned();
        }
        let gender = ["male", "female"][index % 2];
        app.create(
            "Patient",
            &format!(
                r#"{{"resourceType":"Patient","identifier":[{{"system":"urn:test","value":"w{index:02}"}}],
                "gender":"{gender}","name":[{names}]{birth_date}}}"#
            ),
        )
        .await;
    }
    let everyone = app.search("Patient?_count=100").await;
    let patients = match_entries(&everyone);
    // Families lowercased, as the index normalizes them.
    let facts: Vec<SortFacts> = patients
        .iter()
        .map(|patient| {
            let mut families: Vec<String> = patient["name"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|name| name["family"].as_str().map(str::to_lowercase))
                .collect();
            families.sort();
            SortFacts {
                label: label_of(patient),
                id: patient["id"].as_str().unwrap().to_owned(),
                birth_date: patient["birthDate"].as_str().map(str::to_owned),
                lowest_family: families.first().cloned(),
                highest_family: families.last().cloned(),
            }
        })
        .collect();
    let expected = |key: fn(&SortFacts) -> Option<String>, descending: bool| {
        let mut ordered = facts.clone();
        ordered.sort_by(|a, b| {
            let (value_a, value_b) = (key(a), key(b));
            let by_value = match (&value_a, &value_b) {
                (Some(x), Some(y)) if descending => y.cmp(x),
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            let by_id = if descending { b.id.cmp(&a.id) } else { a.id.cmp(&b.id) };
            by_value.then(by_id)
        });
        ordered.into_iter().map(|fact| fact.label).collect::<Vec<String>>()
    };
    let cases = [
        ("birthdate", expected(|fact| fact.birth_date.clone(), false)),
        ("-birthdate", expected(|fact| fact.birth_date.clone(), true)),
        ("family", expected(|fact| fact.lowest_family.clone(), false)),
        ("-family", expected(|fact| fact.highest_family.clone(), true)),
    ];
    for (sort, order) in cases {
        for criteria in ["", "gender=male,female&"] {
            let query = format!("Patient?{criteria}_sort={sort}&_count=3");
            let (forward, backward) = walk_pages(app, &query).await;
            assert_eq!(forward, order, "{query}");
            assert_eq!(backward, order, "{query} walked back");
        }
    }
}

/// Walks `next` links from `query`, inserting a new match before each page; every resource that existed at the
/// start appears exactly once, in sort order; then walks back with `previous` links.
async fn paging_walks_every_match_once(app: &TestApp) {
    for index in 0..23 {
        // Several patients share a birth date, and some share a family name too, so ties are broken by id.
        let birth_date = format!("19{:02}-01-01", 50 + index % 7);
        let family = ["Ng", "Adams", "Zhou"][index % 3];
        create_numbered(app, &format!("n{index:02}"), family, &birth_date).await;
    }
    app.create(
        "Patient",
        r#"{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"no-birth-date"}],"name":[{"family":"Solo"}]}"#,
    )
    .await;
    let query = "/fhir/Patient?_sort=birthdate,-family&_count=4&name:missing=false";
    let mut url = query.to_owned();
    let mut seen: Vec<Value> = Vec::new();
    let mut pages = Vec::new();
    for page in 0.. {
        assert!(page < 20, "too many pages");
        let response = app.get(&url).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text());
        let bundle = response.json();
        assert!(bundle.get("total").is_none(), "no _total, no total");
        let entries = match_entries(&bundle);
        assert!(entries.len() <= 4);
        seen.extend(entries);
        pages.push(url.clone());
        // New data between pages sorts at the very start: it must not shift what is still to come.
        create_numbered(app, &format!("late{page}"), "Ng", "1900-01-01").await;
        match link(&bundle, "next") {
            Some(next) => url = local(next),
            None => break,
        }
    }
    let found: Vec<String> = seen.iter().map(label_of).collect();
    let unique: HashSet<&String> = found.iter().collect();
    assert_eq!(unique.len(), found.len(), "a match appeared twice: {found:?}");
    assert_eq!(found.len(), 24, "{found:?}");
    assert_eq!(
        found.last().map(String::as_str),
        Some("no-birth-date"),
        "a missing sort value sorts last"
    );
    let keys: Vec<(String, String)> = seen
        .iter()
        .map(|patient| {
            let family = patient["name"][0]["family"].as_str().unwrap().to_owned();
            (patient["birthDate"].as_str().unwrap_or("9999").to_owned(), family)
        })
        .collect();
    for pair in keys.windows(2) {
        let ((date_a, family_a), (date_b, family_b)) = (&pair[0], &pair[1]);
        assert!(date_a < date_b || (date_a == date_b && family_a >= family_b), "{keys:?}");
    }
    // Walk back from the last page: the previous links give the same pages in reverse.
    let mut backwards: Vec<String> = Vec::new();
    let mut url = pages.last().cloned().unwrap();
    for _ in 0..20 {
        let bundle = app.get(&url).await.json();
        let mut page: Vec<String> = match_entries(&bundle).iter().map(label_of).collect();
        page.reverse();
        backwards.extend(page);
        match link(&bundle, "previous") {
            Some(previous) => url = local(previous),
            None => break,
        }
    }
    backwards.reverse();
    let first_page_start = backwards.iter().position(|label| label == &found[0]).unwrap();
    assert_eq!(&backwards[first_page_start..], found.as_slice());
    // A cursor only fits the sort it came from.
    let second_page = &pages[1];
    let cursor = second_page.split("_cursor=").nth(1).unwrap();
    app.get(&format!("/fhir/Patient?_sort=family,birthdate&_cursor={cursor}"))
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "not-supported");
}

async fn get_and_post_agree(app: &TestApp) {
    patients(app).await;
    let get = app.search("Patient?birthdate=ge1970&gender=male,female&_sort=-birthdate").await;
    let post = app
        .request(
            Method::POST,
            "/fhir/Patient/_search?birthdate=ge1970",
            &[("content-type", "application/x-www-form-urlencoded")],
            "gender=male%2Cfemale&_sort=-birthdate",
        )
        .await;
    assert_eq!(post.status, StatusCode::OK, "{}", post.text());
    let post = post.json();
    let order = |bundle: &Value| match_entries(bundle).iter().map(label_of).collect::<Vec<_>>();
    assert_eq!(order(&get), ["p2", "p1"]);
    assert_eq!(order(&get), order(&post));
    let wrong_type = app
        .request(
            Method::POST,
            "/fhir/Patient/_search",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

async fn includes(app: &TestApp) {
    let ids = patients(app).await;
    let p1 = &ids[0];
    let sr1 = app
        .create(
            "ServiceRequest",
            &format!(
                r#"{{"resourceType":"ServiceRequest","identifier":[{{"system":"urn:test","value":"sr1"}}],
                "status":"active","intent":"order","subject":{{"reference":"Patient/{p1}"}}}}"#
            ),
        )
        .await;
    app.create(
        "DiagnosticReport",
        &format!(
            r#"{{"resourceType":"DiagnosticReport","identifier":[{{"system":"urn:test","value":"r1"}}],
            "status":"final","code":{{"text":"report"}},"basedOn":[{{"reference":"ServiceRequest/{sr1}"}}]}}"#
        ),
    )
    .await;
    let by_mode = |bundle: &Value, mode: &str| {
        let mut found: Vec<String> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["search"]["mode"] == mode)
            .map(|entry| label_of(&entry["resource"]))
            .collect();
        found.sort();
        found
    };
    let bundle = app.search("DiagnosticReport?_include=DiagnosticReport:based-on").await;
    assert_eq!(by_mode(&bundle, "match"), ["r1"]);
    assert_eq!(by_mode(&bundle, "include"), ["sr1"]);
    let entry = &bundle["entry"][1];
    assert_eq!(entry["fullUrl"], format!("http://cdr.test/fhir/ServiceRequest/{sr1}"));
    let iterate = app
        .search("DiagnosticReport?_include=DiagnosticReport:based-on&_include:iterate=ServiceRequest:subject")
        .await;
    assert_eq!(by_mode(&iterate, "include"), ["p1", "sr1"]);
    let other_type =
        "/fhir/DiagnosticReport?_include=DiagnosticReport:based-on&_include=ServiceRequest:subject";
    for prefer in [None, Some("handling=lenient")] {
        let headers: Vec<(&str, &str)> =
            prefer.map(|value| ("prefer", value)).into_iter().collect();
        let lenient = app.request(Method::GET, other_type, &headers, "").await;
        assert_eq!(lenient.status, StatusCode::OK, "{prefer:?}: {}", lenient.text());
        let lenient = lenient.json();
        assert_eq!(by_mode(&lenient, "include"), ["sr1"], "only the matches' _include applies");
        assert_eq!(
            link(&lenient, "self").unwrap(),
            "http://cdr.test/fhir/DiagnosticReport?_include=DiagnosticReport%3Abased-on",
            "the ignored _include is left out of the self link, the applied one kept"
        );
    }
    app.request(Method::GET, other_type, &[("prefer", "handling=strict")], "")
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    let reverse =
        app.search("Patient?identifier=urn:test|p1&_revinclude=ServiceRequest:subject").await;
    assert_eq!(by_mode(&reverse, "match"), ["p1"]);
    assert_eq!(by_mode(&reverse, "include"), ["sr1"]);
    let reverse_iterate = app
        .search(
            "Patient?identifier=urn:test|p1&_revinclude=ServiceRequest:subject&_revinclude:iterate=DiagnosticReport:based-on",
        )
        .await;
    assert_eq!(by_mode(&reverse_iterate, "include"), ["r1", "sr1"]);
    let wildcard = app.search("DiagnosticReport?_include=*").await;
    assert_eq!(by_mode(&wildcard, "include"), ["sr1"]);
}

async fn totals_summary_and_elements(app: &TestApp) {
    patients(app).await;
    let accurate = app.search("Patient?birthdate=1970&_total=accurate&_count=1").await;
    assert_eq!(accurate["total"], 2);
    assert_eq!(match_entries(&accurate).len(), 1);
    let estimate = app.search("Patient?_total=estimate").await;
    assert_eq!(estimate["total"], 4);
    let none = app.search("Patient?_total=none").await;
    assert!(none.get("total").is_none());
    let count = app.search("Patient?gender=male,female&_summary=count").await;
    assert_eq!(count["total"], 2);
    assert!(count.get("entry").is_none(), "{count}");
    let zero = app.search("Patient?_count=0").await;
    assert_eq!(zero["total"], 4);
    let elements = app.search("Patient?identifier=urn:test|p1&_elements=gender,identifier").await;
    let resource = &match_entries(&elements)[0];
    assert_eq!(resource["gender"], "female");
    assert!(resource.get("name").is_none() && resource.get("birthDate").is_none(), "{resource}");
    assert!(resource["id"].is_string());
    let tags = resource["meta"]["tag"].as_array().unwrap();
    assert!(tags.iter().any(|tag| tag["code"] == "SUBSETTED"), "{resource}");
    let data = app.search("Patient?identifier=urn:test|p2&_summary=data").await;
    let resource = &match_entries(&data)[0];
    assert_eq!(resource["gender"], "male");
    assert!(
        resource["meta"]["tag"].as_array().unwrap().iter().any(|tag| tag["code"] == "SUBSETTED")
    );
    let text = app.search("Patient?identifier=urn:test|p2&_summary=text").await;
    assert!(match_entries(&text)[0].get("gender").is_none());
    let plain = app.search("Patient?identifier=urn:test|p2").await;
    assert!(match_entries(&plain)[0]["meta"].get("tag").is_none());
}

async fn unknown_parameters(app: &TestApp) {
    patients(app).await;
    let lenient = app.get("/fhir/Patient?gender=male&nonsense=1").await.json();
    assert_eq!(labels(&lenient), ["p2"]);
    let self_link = link(&lenient, "self").unwrap();
    assert_eq!(self_link, "http://cdr.test/fhir/Patient?gender=male");
    let explicit = app
        .request(Method::GET, "/fhir/Patient?nonsense=1", &[("prefer", "handling=lenient")], "")
        .await;
    assert_eq!(explicit.status, StatusCode::OK);
    assert_eq!(labels(&explicit.json()).len(), 4);
    app.request(
        Method::GET,
        "/fhir/Patient?gender=male&nonsense=1",
        &[("prefer", "handling=strict")],
        "",
    )
    .await
    .assert_outcome(StatusCode::BAD_REQUEST, "not-supported");
    let strict = app
        .request(Method::GET, "/fhir/Patient?gender=male", &[("prefer", "handling=strict")], "")
        .await;
    assert_eq!(strict.status, StatusCode::OK, "known parameters pass under strict handling");
    app.request(
        Method::GET,
        "/fhir/Patient?birthdate=1970-99",
        &[("prefer", "handling=lenient")],
        "",
    )
    .await
    .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

/// `GET [base]?query`.
async fn system(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/fhir?{query}")).await;
    assert_eq!(response.status, StatusCode::OK, "{query}: {}", response.text());
    let bundle = response.json();
    assert_eq!(
        link(&bundle, "self").map(|url| url.starts_with("http://cdr.test/fhir?")),
        Some(true)
    );
    bundle
}

async fn system_search(app: &TestApp) {
    let ids = patients(app).await;
    app.create(
        "Organization",
        r#"{"resourceType":"Organization","identifier":[{"system":"urn:test","value":"o1"}],"name":"Imaging"}"#,
    )
    .await;
    let everything = system(app, "_total=accurate").await;
    assert_eq!(everything["total"], 5);
    let typed = system(app, "_type=Organization").await;
    assert_eq!(labels(&typed), ["o1"]);
    let by_id = system(app, &format!("_id={}", ids[1])).await;
    assert_eq!(labels(&by_id), ["p2"]);
    let tagged = system(app, "_tag=urn:tags|vip&_type=Patient,Organization").await;
    assert_eq!(labels(&tagged), ["p1"]);
    let post = app
        .request(
            Method::POST,
            "/fhir/_search",
            &[("content-type", "application/x-www-form-urlencoded")],
            "_type=Organization,Patient&_total=accurate",
        )
        .await;
    assert_eq!(post.json()["total"], 5);
    app.get("/fhir?patient.name=x").await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

async fn conditional_writes_use_search(app: &TestApp) {
    patients(app).await;
    let body =
        r#"{"resourceType":"Patient","name":[{"family":"Conditional"}],"birthDate":"1999-09-09"}"#;
    let created = app.put("/fhir/Patient?family=conditional&birthdate=1999", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let updated = app.put("/fhir/Patient?birthdate=1999&family=conditional", body).await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.json()["id"], id.as_str());
    let headers = [
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "birthdate=1970&gender=male"),
    ];
    let existing =
        app.request(Method::POST, "/fhir/Patient", &headers, r#"{"resourceType":"Patient"}"#).await;
    assert_eq!(existing.status, StatusCode::OK);
    assert_eq!(label_of(&existing.json()), "p2");
    app.delete("/fhir/Patient?birthdate=1970")
        .await
        .assert_outcome(StatusCode::PRECONDITION_FAILED, "multiple-matches");
    assert_eq!(app.delete("/fhir/Patient?family=conditional").await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/fhir/Patient/{id}")).await.status, StatusCode::GONE);
}

async fn reindex_rebuilds_rows(app: &TestApp) {
    assert!(!app.store().needs_reindex().await.unwrap(), "an empty database needs nothing");
    app.create(
        "ImagingStudy",
        r#"{"resourceType":"ImagingStudy","identifier":[{"system":"urn:test","value":"s1"}],
        "status":"available","subject":{"display":"x"},"numberOfSeries":3}"#,
    )
    .await;
    assert_eq!(labels(&app.search("ImagingStudy?number-of-series=3").await), ["s1"]);
    assert!(!app.store().needs_reindex().await.unwrap(), "written resources are indexed");
    // Without the custom parameter its rows go; with it they come back.
    let r4 = SearchParamRegistry::r4().unwrap();
    assert_eq!(cdr_interactions::reindex(app.store(), &r4, 1).await.unwrap(), 1);
    assert!(labels(&app.search("ImagingStudy?number-of-series=3").await).is_empty());
    assert_eq!(labels(&app.search("ImagingStudy?identifier=urn:test|s1").await), ["s1"]);
    cdr_interactions::reindex(app.store(), search_params(), 100).await.unwrap();
    assert_eq!(labels(&app.search("ImagingStudy?number-of-series=3").await), ["s1"]);
}

/// A live row without a body is a corrupt database: a reindex stops with an error rather than dropping the
/// resource's index rows or skipping it unnoticed.
async fn reindex_of_a_live_resource_without_a_body_fails(app: &TestApp) {
    let id = app.create("Patient", r#"{"resourceType":"Patient","gender":"female"}"#).await;
    let corrupt = "UPDATE resource SET body = NULL WHERE res_type = 'Patient' AND res_id = $1";
    if let Some((admin_url, schema)) = app.postgres_schema() {
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
        let statement = corrupt.replace("resource", &format!("{schema}.resource"));
        sqlx::query(sqlx::AssertSqlSafe(statement)).bind(&id).execute(&mut admin).await.unwrap();
    } else if let Some(folder) = app.sqlite_folder() {
        let url = format!("sqlite://{}", folder.join("cdr.db").display());
        let mut file = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
        sqlx::query(corrupt).bind(&id).execute(&mut file).await.unwrap();
    }
    let error = cdr_interactions::reindex(app.store(), search_params(), 10).await.unwrap_err();
    assert!(error.to_string().contains("internal"), "{error}");
    let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    assert!(cause.contains(&format!("Patient/{id} is live but has no body")), "{cause}");
    // Nothing was reindexed: the resource's rows are still there (a count reads no body).
    assert_eq!(app.search("Patient?gender=female&_summary=count").await["total"], 1);
}

/// On SQLite `Store::optimize` runs `PRAGMA optimize` only when a version was written since its last run:
/// the pragma rescans the resource tables whole each time, so an idle or read-only server would otherwise
/// rescan them every ten seconds.
async fn sqlite_statistics_refresh_after_writes_only(app: &TestApp) {
    if app.sqlite_folder().is_none() {
        return;
    }
    create_numbered(app, "w1", "Ng", "1970-01-01").await;
    assert!(app.store().optimize().await.unwrap());
    assert!(!app.store().optimize().await.unwrap(), "nothing was written since");
    create_numbered(app, "w2", "Ng", "1970-01-01").await;
    assert!(app.store().optimize().await.unwrap());
}

/// `Store::optimize` analyses what changed: on PostgreSQL every store table that took more than 50 rows plus
/// 10% since its last analysis has statistics afterwards (the server calls it every ten seconds, so that plans
/// stay right when autovacuum is off or behind a bulk load).
async fn planner_statistics_refresh(app: &TestApp) {
    for index in 0..60 {
        create_numbered(app, &format!("a{index}"), "Ng", "1970-01-01").await;
    }
    let admin = match app.postgres_schema() {
        Some((admin_url, schema)) => {
            // A connection reports its writes to the statistics at most once a second, and when it exits:
            // end the application's connections (waiting until each has exited) so that all 60 writes are
            // counted when the store reads the counts. The pool opens new connections.
            let mut admin =
                <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
            end_connections(&mut admin, schema).await.unwrap();
            Some((admin, schema))
        }
        None => None,
    };
    app.store().optimize().await.unwrap();
    let Some((mut admin, schema)) = admin else { return };
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = $1 \
         AND last_analyze IS NOT NULL ORDER BY relname",
    )
    .bind(schema)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for table in ["idx_date", "idx_string", "idx_token", "resource", "resource_version"] {
        assert!(
            tables.iter().any(|analysed| analysed == table),
            "{table} not analysed: {tables:?}"
        );
    }
    assert!(!tables.iter().any(|table| table == "idx_quantity"), "unchanged tables are left alone");
}

async fn capabilities_list_search_parameters(app: &TestApp) {
    let statement = app.get("/fhir/metadata").await.json();
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    let patient = resources.iter().find(|resource| resource["type"] == "Patient").unwrap();
    let params = patient["searchParam"].as_array().unwrap();
    let find = |name: &str| params.iter().find(|param| param["name"] == name).cloned();
    assert_eq!(find("birthdate").unwrap()["type"], "date");
    assert_eq!(
        find("birthDate").unwrap()["definition"],
        "http://ontariohealth.ca/fhir/mi/SearchParameter/Patient-birthDate"
    );
    assert_eq!(find("_id").unwrap()["type"], "token");
    let interactions = patient["interaction"].as_array().unwrap();
    assert!(interactions.iter().any(|interaction| interaction["code"] == "search-type"));
    let report = resources.iter().find(|resource| resource["type"] == "DiagnosticReport").unwrap();
    let includes = report["searchInclude"].as_array().unwrap();
    assert!(includes.iter().any(|include| include == "DiagnosticReport:based-on"));
    let revincludes = patient["searchRevInclude"].as_array().unwrap();
    assert!(revincludes.iter().any(|include| include == "ImagingStudy:subject"));
}

mod patient_identifier_required {
    use axum::http::StatusCode;

    use crate::backend_tests;
    use crate::helpers::TestApp;
    use crate::search::{labels, patients};

    backend_tests!(with cdr_interactions::EngineConfig { require_patient_identifier: true, ..crate::helpers::engine_config() }; viewer_searches_name_the_patient);

    async fn viewer_searches_name_the_patient(app: &TestApp) {
        let ids = patients(app).await;
        app.create(
            "ImagingStudy",
            &format!(
                r#"{{"resourceType":"ImagingStudy","identifier":[{{"system":"urn:test","value":"s1"}}],
                "status":"available","subject":{{"reference":"Patient/{}"}}}}"#,
                ids[0]
            ),
        )
        .await;
        for query in [
            "ImagingStudy?status=available",
            "ImagingStudy?patient.identifier=p1",
            "ImagingStudy?patient.identifier=urn:test|",
        ] {
            app.get(&format!("/fhir/{query}"))
                .await
                .assert_outcome(StatusCode::BAD_REQUEST, "required");
        }
        let found = app.search("ImagingStudy?patient.identifier=urn:test|p1").await;
        assert_eq!(labels(&found), ["s1"]);
        assert_eq!(labels(&app.search("Patient?gender=male").await), ["p2"]);
    }
}

mod sorting {
    use crate::backend_tests;
    use crate::helpers::TestApp;
    use crate::search::{label_of, patients};

    backend_tests!(sort_keys);

    async fn order(app: &TestApp, query: &str) -> Vec<String> {
        let bundle = app.search(query).await;
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| label_of(&entry["resource"]))
            .collect()
    }

    async fn sort_keys(app: &TestApp) {
        patients(app).await;
        assert_eq!(order(app, "Patient?_sort=-_lastUpdated").await, ["p4", "p3", "p2", "p1"]);
        assert_eq!(order(app, "Patient?_sort=_lastUpdated").await, ["p1", "p2", "p3", "p4"]);
        assert_eq!(order(app, "Patient?_sort=gender").await, ["p1", "p2", "p3", "p4"]);
        assert_eq!(order(app, "Patient?_sort=-birthdate").await, ["p4", "p3", "p2", "p1"]);
        // Names sort by their normalized form (Müller = Muller; ties by id); a missing name sorts last.
        let by_family = order(app, "Patient?_sort=family,given").await;
        assert_eq!(by_family, ["p1", "p2", "p3", "p4"]);
        assert_eq!(order(app, "Patient?_sort=-family,given&_count=2").await, ["p3", "p1"]);
        let mut by_id = order(app, "Patient?_sort=_id").await;
        let ids_sorted = {
            let bundle = app.search("Patient?_sort=_id").await;
            let ids: Vec<String> = bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|entry| entry["resource"]["id"].as_str().unwrap().to_owned())
                .collect();
            let mut sorted = ids.clone();
            sorted.sort();
            ids == sorted
        };
        assert!(ids_sorted, "{by_id:?}");
        by_id.sort();
        assert_eq!(by_id, ["p1", "p2", "p3", "p4"]);
    }
}

mod summaries {
    use crate::backend_tests;
    use crate::helpers::TestApp;
    use crate::search::patients;

    backend_tests!(summary_true_keeps_summary_elements);

    async fn summary_true_keeps_summary_elements(app: &TestApp) {
        patients(app).await;
        let bundle = app.search("Patient?identifier=urn:test|p1&_summary=true").await;
        let patient = &bundle["entry"][0]["resource"];
        assert_eq!(patient["gender"], "female");
        assert_eq!(patient["birthDate"], "1970-01-15");
        assert!(
            patient["meta"]["tag"].as_array().unwrap().iter().any(|tag| tag["code"] == "SUBSETTED")
        );
        let report = app
            .create(
                "DiagnosticReport",
                r#"{"resourceType":"DiagnosticReport","status":"final","code":{"text":"x"},
                "conclusion":"long text","presentedForm":[{"contentType":"text/plain","data":"eA=="}]}"#,
            )
            .await;
        let bundle = app.search(&format!("DiagnosticReport?_id={report}&_summary=true")).await;
        let report = &bundle["entry"][0]["resource"];
        assert_eq!(report["status"], "final");
        assert!(
            report.get("conclusion").is_none() && report.get("presentedForm").is_none(),
            "{report}"
        );
        let text = app.search("DiagnosticReport?_summary=text").await;
        let report = &text["entry"][0]["resource"];
        assert_eq!(report["code"]["text"], "x", "mandatory elements stay: {text}");
        assert!(report.get("conclusion").is_none());
        let study = app
            .create(
                "ImagingStudy",
                r#"{"resourceType":"ImagingStudy","status":"available","subject":{"reference":"Patient/p"},
                "text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">CT</div>"},
                "series":[{"uid":"1.2.3.1","number":1,
                    "modality":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"CT"},
                    "performer":[{"actor":{"reference":"Practitioner/x","display":"Dr X"}}],
                    "instance":[{"uid":"1.2.3.1.1","sopClass":{"system":"urn:ietf:rfc:3986",
                        "code":"urn:oid:1.2.840.10008.5.1.4.1.1.2"},"number":1}]}]}"#,
            )
            .await;
        let bundle = app.search(&format!("ImagingStudy?_id={study}&_summary=true")).await;
        let study = &bundle["entry"][0]["resource"];
        let series = &study["series"][0];
        assert_eq!(series["uid"], "1.2.3.1");
        assert_eq!(series["modality"]["code"], "CT");
        assert_eq!(series["performer"][0]["actor"]["display"], "Dr X", "data types stay whole");
        assert!(series.get("instance").is_none(), "series.instance is not summary: {study}");
        assert!(study.get("text").is_none() && study["subject"].is_object(), "{study}");
        assert!(
            study["meta"]["tag"].as_array().unwrap().iter().any(|tag| tag["code"] == "SUBSETTED")
        );
        let full = app.search(&format!("ImagingStudy?_id={}", study["id"].as_str().unwrap())).await;
        assert!(full["entry"][0]["resource"]["series"][0]["instance"].is_array(), "{full}");
    }
}
