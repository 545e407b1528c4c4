//! The OpenAPI document at `/openapi.json` and the API docs page at `/docs`: the document is OpenAPI 3.1 that
//! utoipa's own types read back unchanged, names every interaction of every served type with its search
//! parameters, headers, status codes and OperationOutcome errors, and lists exactly the methods the router
//! serves on each path.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::TestApp;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    response.json()
}

/// The served types, as the CapabilityStatement lists them.
async fn served_types(app: &TestApp) -> Vec<(String, Vec<(String, String)>)> {
    let capabilities = app.get("/fhir/metadata").await.json();
    capabilities["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|resource| {
            let params = resource["searchParam"]
                .as_array()
                .unwrap()
                .iter()
                .map(|param| {
                    let text = |key: &str| param[key].as_str().unwrap().to_owned();
                    (text("name"), text("type"))
                })
                .collect();
            (resource["type"].as_str().unwrap().to_owned(), params)
        })
        .collect()
}

fn methods(document: &Value, path: &str) -> Vec<&'static str> {
    let item = &document["paths"][path];
    METHODS.into_iter().filter(|method| item.get(*method).is_some()).collect()
}

fn parameter<'a>(operation: &'a Value, name: &str, location: &str) -> Option<&'a Value> {
    operation["parameters"]
        .as_array()?
        .iter()
        .find(|parameter| parameter["name"] == name && parameter["in"] == location)
}

async fn openapi_json_is_openapi_3_that_reads_back_unchanged(app: &TestApp) {
    let document = document(app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let parsed: utoipa::openapi::OpenApi = serde_json::from_value(document.clone()).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), document, "utoipa reads every key back");
    assert_eq!(document["info"]["title"], "imaging-cdr");
}

async fn openapi_json_describes_every_interaction_of_every_served_type(app: &TestApp) {
    let document = document(app).await;
    let types = served_types(app).await;
    assert_eq!(types.len(), 15);
    for (type_name, params) in &types {
        let base = format!("/fhir/{type_name}");
        let expected: [(String, &[&str]); 8] = [
            (base.clone(), &["get", "post", "put", "patch", "delete"]),
            (format!("{base}/_search"), &["post"]),
            (format!("{base}/_history"), &["get"]),
            (format!("{base}/$validate"), &["post"]),
            (format!("{base}/{{id}}"), &["get", "put", "patch", "delete"]),
            (format!("{base}/{{id}}/_history"), &["get"]),
            (format!("{base}/{{id}}/_history/{{version}}"), &["get"]),
            (format!("{base}/{{id}}/$validate"), &["post"]),
        ];
        for (path, verbs) in &expected {
            assert_eq!(methods(&document, path), *verbs, "{path}");
        }
        // Every search parameter of the CapabilityStatement, with its FHIR type, on both forms of search.
        let search = &document["paths"][&base]["get"];
        assert!(!params.is_empty(), "{type_name}");
        for (name, kind) in params {
            let described =
                parameter(search, name, "query").unwrap_or_else(|| panic!("{base}?{name}"));
            assert_eq!(described["schema"]["type"], "string");
            let text = described["description"].as_str().unwrap();
            assert!(text.contains(&format!("of type {kind}")), "{name}: {text}");
            assert!(
                parameter(&document["paths"][format!("{base}/_search")]["post"], name, "query")
                    .is_some()
            );
        }
        for result in
            ["_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total"]
        {
            assert!(parameter(search, result, "query").is_some(), "{base}?{result}");
        }
    }
    let served: Vec<&str> = types.iter().map(|(name, _)| name.as_str()).collect();
    for (path, verbs) in [
        ("/fhir", &["get", "post"][..]),
        ("/fhir/Bundle", &["post"]),
        ("/fhir/_search", &["post"]),
        ("/fhir/_history", &["get"]),
        ("/fhir/metadata", &["get"]),
        ("/fhir/$validate", &["post"]),
        ("/fhir/_async/{id}", &["get", "delete"]),
        ("/fhir/Subscription/{id}/$status", &["get"]),
        ("/fhir/Subscription/{id}/$events", &["get"]),
        ("/fhir/Subscription/{id}/$deliveries", &["get"]),
        ("/fhir/Subscription/{id}/$resend", &["post"]),
        ("/livez", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
        ("/docs", &["get"]),
        ("/", &["get"]),
        ("/viewer.js", &["get"]),
        ("/viewer.css", &["get"]),
    ] {
        assert_eq!(methods(&document, path), verbs, "{path}");
    }
    // The Subscription operations are described on Subscription alone.
    assert!(document["paths"].get("/fhir/Patient/{id}/$status").is_none());
    // Without --auth smart neither the token endpoint nor the SMART configuration is served.
    for path in ["/auth/token", "/auth/jwks", "/fhir/.well-known/smart-configuration"] {
        assert!(document["paths"].get(path).is_none(), "{path}");
    }
    // R4 names these parameters for these types (search-parameters.json), with these types.
    let patient = &document["paths"]["/fhir/Patient"]["get"];
    for (name, kind) in [
        ("identifier", "token"),
        ("birthdate", "date"),
        ("family", "string"),
        ("general-practitioner", "reference"),
    ] {
        let text = parameter(patient, name, "query").unwrap()["description"].as_str().unwrap();
        assert!(text.contains(&format!("of type {kind}")), "{name}: {text}");
    }
    assert!(served.contains(&"ImagingStudy"));
    let study = &document["paths"]["/fhir/ImagingStudy"]["get"];
    assert!(
        parameter(study, "modality", "query").unwrap()["description"]
            .as_str()
            .unwrap()
            .contains("token")
    );
}

async fn openapi_json_names_the_headers_status_codes_and_error_body(app: &TestApp) {
    let document = document(app).await;
    let paths = &document["paths"];
    let read = &paths["/fhir/Patient/{id}"]["get"];
    assert!(parameter(read, "id", "path").unwrap()["required"] == true);
    assert!(parameter(read, "If-None-Match", "header").is_some());
    assert!(read["responses"]["200"]["headers"].get("ETag").is_some(), "{read}");
    assert!(read["responses"]["304"].is_object() && read["responses"]["410"].is_object());
    let update = &paths["/fhir/Patient/{id}"]["put"];
    assert!(parameter(update, "If-Match", "header").is_some());
    assert!(update["responses"]["412"].is_object() && update["responses"]["422"].is_object());
    let create = &paths["/fhir/Patient"]["post"];
    assert!(parameter(create, "If-None-Exist", "header").is_some());
    assert!(parameter(create, "Prefer", "header").is_some());
    assert!(create["responses"]["201"]["headers"].get("Location").is_some(), "{create}");
    assert!(create["requestBody"]["content"].get("application/fhir+json").is_some());
    let patch = &paths["/fhir/Patient/{id}"]["patch"];
    assert!(patch["requestBody"]["content"].get("application/json-patch+json").is_some());
    let bundle = &paths["/fhir"]["post"];
    assert!(bundle["responses"]["202"]["headers"].get("Content-Location").is_some(), "{bundle}");
    let error = &read["responses"]["400"]["content"]["application/fhir+json"]["schema"]["$ref"];
    assert_eq!(error, "#/components/schemas/OperationOutcome");
    for (operation, status) in [(read, "404"), (read, "410"), (update, "412"), (create, "422")] {
        let schema = &operation["responses"][status]["content"]["application/fhir+json"]["schema"];
        assert_eq!(schema["$ref"], "#/components/schemas/OperationOutcome", "{status}");
    }
    assert_eq!(document["components"]["schemas"]["OperationOutcome"]["type"], "object");
    // No route needs a token without --auth smart.
    assert!(document.get("security").is_none() && read.get("security").is_none());
}

/// Whether the router itself refused the request (no route, or not this method), rather than a handler.
fn refused_by_the_router(status: StatusCode, body: &str) -> bool {
    status == StatusCode::METHOD_NOT_ALLOWED
        || (status == StatusCode::NOT_FOUND && body.contains("no FHIR endpoint at"))
}

async fn the_router_serves_exactly_the_documented_methods_of_each_path(app: &TestApp) {
    let document = document(app).await;
    let types = served_types(app).await;
    let paths = document["paths"].as_object().unwrap();
    let mut probed = 0;
    for (path, item) in paths {
        // The typed routes are the same for every type: probe them on Patient.
        let other_type =
            path.strip_prefix("/fhir/").and_then(|rest| rest.split('/').next()).is_some_and(
                |segment| segment != "Patient" && types.iter().any(|(name, _)| name == segment),
            );
        if other_type {
            continue;
        }
        let uri = path.replace("{id}", "x").replace("{version}", "1");
        for method in METHODS {
            let response =
                app.request(method.to_uppercase().parse::<Method>().unwrap(), &uri, &[], "").await;
            let refused = refused_by_the_router(response.status, &response.text());
            let documented = item.get(method).is_some();
            assert_eq!(
                refused,
                !documented,
                "{method} {uri}: {} {}",
                response.status,
                response.text()
            );
            probed += 1;
        }
    }
    assert!(probed >= 5 * 20, "{probed}");
}

async fn docs_page_renders_the_document_without_downloads(app: &TestApp) {
    let response = app.get("/docs").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"));
    let page = response.text();
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("fetch(\"/openapi.json\")"), "{page}");
    // Self-contained: no script, style or font from anywhere else.
    assert!(!page.contains("://") && !page.contains(" src="), "{page}");
}

backend_tests!(
    openapi_json_is_openapi_3_that_reads_back_unchanged,
    openapi_json_describes_every_interaction_of_every_served_type,
    openapi_json_names_the_headers_status_codes_and_error_body,
    the_router_serves_exactly_the_documented_methods_of_each_path,
    docs_page_renders_the_document_without_downloads,
);
