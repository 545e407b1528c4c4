//! `Location?near=[latitude]|[longitude]|[distance]|[units]` (R4 Location, search parameter `near`): great-circle
//! distances on the sphere, km by default, 1 km when the distance is omitted, with paging, totals, `:missing`,
//! other parameters, malformed values and the CapabilityStatement; and the reindex an older database needs for
//! positions and the systems of `code` tokens.

use axum::http::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::{TestApp, search_params};
use crate::search::labels;
use crate::search_results::walk_pages;

backend_tests!(
    near_finds_locations_within_the_distance,
    near_pages_counts_and_combines,
    malformed_near_values_are_400,
    capabilities_declare_near,
    reindex_fills_positions_and_code_systems,
);

/// Toronto (t1), 0.40 km east of it (t2), Mississauga (22.2 km from t1), Ottawa (352.1 km), R4's `Location-1`
/// position in Ann Arbor (383.7 km), two points either side of the antimeridian in Fiji (21.3 km apart), and a
/// Location without a position.
async fn locations(app: &TestApp) {
    let places: [(&str, Option<(&str, &str)>); 8] = [
        ("t1", Some(("43.6532", "-79.3832"))),
        ("t2", Some(("43.6532", "-79.3782"))),
        ("mississauga", Some(("43.5890", "-79.6441"))),
        ("ottawa", Some(("45.4215", "-75.6972"))),
        ("annarbor", Some(("42.25475478", "-83.6945691"))),
        ("fiji-east", Some(("-17.0", "179.9"))),
        ("fiji-west", Some(("-17.0", "-179.9"))),
        ("nowhere", None),
    ];
    for (label, position) in places {
        let position = position.map_or(String::new(), |(latitude, longitude)| {
            format!(r#","position":{{"longitude":{longitude},"latitude":{latitude},"altitude":0}}"#)
        });
        app.create(
            "Location",
            &format!(
                r#"{{"resourceType":"Location","identifier":[{{"system":"urn:test","value":"{label}"}}],
                "status":"active","name":"{label}"{position}}}"#
            ),
        )
        .await;
    }
}

async fn near_finds_locations_within_the_distance(app: &TestApp) {
    locations(app).await;
    let toronto = "Location?near=43.6532|-79.3832";
    let cases: Vec<(String, &[&str])> = vec![
        (format!("{toronto}|30|km"), &["mississauga", "t1", "t2"]),
        (format!("{toronto}|30"), &["mississauga", "t1", "t2"]),
        (format!("{toronto}|22|km"), &["t1", "t2"]),
        (format!("{toronto}|350|km"), &["mississauga", "t1", "t2"]),
        (format!("{toronto}|353|km"), &["mississauga", "ottawa", "t1", "t2"]),
        (format!("{toronto}|390"), &["annarbor", "mississauga", "ottawa", "t1", "t2"]),
        (format!("{toronto}|500|m"), &["t1", "t2"]),
        (format!("{toronto}|300|m"), &["t1"]),
        (format!("{toronto}|0"), &["t1"]),
        (format!("{toronto}|14|[mi_i]"), &["mississauga", "t1", "t2"]),
        (format!("{toronto}|13|mi"), &["t1", "t2"]),
        (format!("{toronto}|14|[mi_us]"), &["mississauga", "t1", "t2"]),
        // no distance: 1 km, whatever the units
        (toronto.to_owned(), &["t1", "t2"]),
        (format!("{toronto}||m"), &["t1", "t2"]),
        // across the antimeridian, and OR by comma
        ("Location?near=-17|179.9|25".to_owned(), &["fiji-east", "fiji-west"]),
        ("Location?near=-17|179.9|20".to_owned(), &["fiji-east"]),
        ("Location?near=-17|-179.95|6".to_owned(), &["fiji-west"]),
        (format!("{toronto}|1,45.4215|-75.6972|1"), &["ottawa", "t1", "t2"]),
        // the whole sphere
        (
            "Location?near=0|0|30000".to_owned(),
            &["annarbor", "fiji-east", "fiji-west", "mississauga", "ottawa", "t1", "t2"],
        ),
        ("Location?near=90|0|100".to_owned(), &[]),
        ("Location?near:missing=true".to_owned(), &["nowhere"]),
        (
            "Location?near:missing=false".to_owned(),
            &["annarbor", "fiji-east", "fiji-west", "mississauga", "ottawa", "t1", "t2"],
        ),
    ];
    for (query, expected) in &cases {
        assert_eq!(labels(&app.search(query).await), *expected, "{query}");
    }
}

async fn near_pages_counts_and_combines(app: &TestApp) {
    locations(app).await;
    let query = "Location?near=43.6532|-79.3832|390|km";
    let (forward, backward) = walk_pages(app, &format!("{query}&_count=2")).await;
    let mut found = forward.clone();
    found.sort();
    assert_eq!(found, ["annarbor", "mississauga", "ottawa", "t1", "t2"]);
    assert_eq!(forward, backward);
    assert_eq!(app.search(&format!("{query}&_total=accurate&_count=1")).await["total"], 5);
    assert_eq!(app.search(&format!("{query}&_summary=count")).await["total"], 5);
    assert_eq!(labels(&app.search(&format!("{query}&name=ottawa")).await), ["ottawa"]);
    assert_eq!(labels(&app.search(&format!("{query}&name=fiji")).await), Vec::<String>::new());
    let both = format!("{query}&near=45.4215|-75.6972|400");
    assert_eq!(labels(&app.search(&both).await), ["mississauga", "ottawa", "t1", "t2"]);
    let sorted = app.search(&format!("{query}&_sort=-name")).await;
    let names: Vec<&str> = sorted["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["resource"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t2", "t1", "ottawa", "mississauga", "annarbor"]);
    // in a chain, and in _has
    let ottawa = app.search("Location?name=ottawa").await["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create(
        "Encounter",
        &format!(
            r#"{{"resourceType":"Encounter","identifier":[{{"system":"urn:test","value":"e1"}}],"status":"finished",
            "class":{{"code":"AMB"}},"location":[{{"location":{{"reference":"Location/{ottawa}"}}}}]}}"#
        ),
    )
    .await;
    assert_eq!(labels(&app.search("Encounter?location.near=45.42|-75.70|1").await), ["e1"]);
    assert!(labels(&app.search("Encounter?location.near=43.6532|-79.3832|30").await).is_empty());
    let has = "Location?_has:Encounter:location:status=finished&near=45|-75|100";
    assert_eq!(labels(&app.search(has).await), ["ottawa"]);
    // the same as a POST _search
    let posted = app
        .request(
            Method::POST,
            "/fhir/Location/_search",
            &[("content-type", "application/x-www-form-urlencoded")],
            "near=43.6532%7C-79.3832%7C30",
        )
        .await;
    assert_eq!(posted.status, StatusCode::OK);
    assert_eq!(labels(&posted.json()), ["mississauga", "t1", "t2"]);
}

/// Out-of-range coordinates, negative distances, unknown units and malformed numbers are a 400 under lenient
/// and strict handling alike; a sort by `near` is refused.
async fn malformed_near_values_are_400(app: &TestApp) {
    for value in [
        "91|0|1",
        "-90.5|0",
        "0|180.1",
        "0|-181|1",
        "0|0|-1",
        "0|0|5|furlong",
        "0|0|5|KM",
        "0|0||parsec",
        "abc|0",
        "0|0x1",
        "0|0|1.",
        "0",
        "0|0|1|km|extra",
        "",
    ] {
        for handling in ["handling=lenient", "handling=strict"] {
            app.request(
                Method::GET,
                &format!("/fhir/Location?near={value}"),
                &[("prefer", handling)],
                "",
            )
            .await
            .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
        }
    }
    app.get("/fhir/Location?_sort=near").await.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    app.get("/fhir/Location?near:exact=0|0")
        .await
        .assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

async fn capabilities_declare_near(app: &TestApp) {
    let statement = app.get("/fhir/metadata").await.json();
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    let location = resources.iter().find(|resource| resource["type"] == "Location").unwrap();
    let params = location["searchParam"].as_array().unwrap();
    let near = params.iter().find(|param| param["name"] == "near").unwrap();
    assert_eq!(near["type"], "special");
    assert_eq!(near["definition"], "http://hl7.org/fhir/SearchParameter/Location-near");
}

/// Runs `statement` on the test's database, outside the server (the state of a database written before a
/// change to extraction).
async fn run_sql(app: &TestApp, statement: &str) {
    if let Some((admin_url, schema)) = app.postgres_schema() {
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url).await.unwrap();
        let statement = statement.replace("idx_", &format!("{schema}.idx_"));
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut admin).await.unwrap();
    } else if let Some(folder) = app.sqlite_folder() {
        let url = format!("sqlite://{}", folder.join("cdr.db").display());
        let mut file = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(statement.to_owned())).execute(&mut file).await.unwrap();
    }
}

/// A database indexed before positions and the systems of `code` tokens were extracted has no position rows
/// and `code` rows without a system: `near` and `system|code` find nothing there until a reindex.
async fn reindex_fills_positions_and_code_systems(app: &TestApp) {
    locations(app).await;
    app.create("Patient", r#"{"resourceType":"Patient","identifier":[{"system":"urn:test","value":"p1"}],"gender":"male"}"#)
        .await;
    run_sql(app, "DELETE FROM idx_position").await;
    run_sql(app, "UPDATE idx_token SET system = NULL WHERE param IN ('gender', 'status')").await;
    let near = "Location?near=43.6532|-79.3832|30";
    let gender = "Patient?gender=http://hl7.org/fhir/administrative-gender|male";
    let status = "Location?status=http://hl7.org/fhir/location-status|active&name=t1";
    for query in [near, gender, status] {
        assert!(labels(&app.search(query).await).is_empty(), "{query}");
    }
    assert_eq!(labels(&app.search("Patient?gender=male").await), ["p1"]);
    cdr_interactions::reindex(app.store(), search_params(), 3).await.unwrap();
    assert_eq!(labels(&app.search(near).await), ["mississauga", "t1", "t2"]);
    assert_eq!(labels(&app.search(gender).await), ["p1"]);
    assert_eq!(labels(&app.search(status).await), ["t1"]);
}
