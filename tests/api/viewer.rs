//! The imaging record viewer at `/`: its page, script and style sheet are served with their content types, a
//! strict Content-Security-Policy, `nosniff` and revalidating cache headers (304 on a matching ETag), and they are
//! self-contained: no inline script or style, nothing from another origin, the FHIR API named relative to the
//! page, and no HTML parsing of what the server sends. `tests/clients/python/check_viewer.py` drives the page itself
//! in Chromium.

use axum::http::{Method, StatusCode};

use crate::backend_tests;
use crate::helpers::TestApp;

const POLICY: &str = "default-src 'self'; frame-src blob:; object-src 'none'; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

const ASSETS: [(&str, &str); 3] = [
    ("/", "text/html; charset=utf-8"),
    ("/viewer.js", "text/javascript; charset=utf-8"),
    ("/viewer.css", "text/css; charset=utf-8"),
];

async fn body(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status, StatusCode::OK, "{path}");
    response.text()
}

async fn assets_have_their_types_a_strict_policy_and_revalidate(app: &TestApp) {
    let mut etags = Vec::new();
    for (path, content_type) in ASSETS {
        let response = app.get(path).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_eq!(response.header("content-type"), Some(content_type), "{path}");
        assert_eq!(response.header("content-security-policy"), Some(POLICY), "{path}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(response.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(response.header("cache-control"), Some("no-cache"), "{path}");
        let etag = response.header("etag").unwrap().to_owned();
        assert!(
            etag.starts_with("W/\"") && etag.ends_with('"') && etag.len() == 20,
            "{path}: {etag}"
        );
        // A cache that holds this version gets 304 and no body; one holding another version gets the asset.
        for (if_none_match, expected) in [
            (etag.clone(), StatusCode::NOT_MODIFIED),
            (format!("W/\"0000000000000000\", {etag}"), StatusCode::NOT_MODIFIED),
            (etag.trim_start_matches("W/").to_owned(), StatusCode::NOT_MODIFIED),
            ("*".to_owned(), StatusCode::NOT_MODIFIED),
            ("W/\"0000000000000000\"".to_owned(), StatusCode::OK),
        ] {
            let conditional =
                app.request(Method::GET, path, &[("if-none-match", &if_none_match)], "").await;
            assert_eq!(conditional.status, expected, "{path} If-None-Match: {if_none_match}");
            assert_eq!(conditional.header("etag"), Some(etag.as_str()));
            assert_eq!(conditional.body.is_empty(), expected == StatusCode::NOT_MODIFIED);
        }
        etags.push(etag);
    }
    etags.dedup();
    assert_eq!(etags.len(), 3, "each asset has its own ETag: {etags:?}");
}

async fn the_page_loads_only_its_own_script_and_style(app: &TestApp) {
    let page = body(app, "/").await;
    assert!(page.starts_with("<!doctype html>"));
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(page.contains(r#"<script src="viewer.js" defer></script>"#), "{page}");
    assert!(page.contains(r#"<link rel="stylesheet" href="viewer.css">"#), "{page}");
    // No inline style or handler (the policy would refuse them), and links relative to the page.
    for forbidden in [" style=", "<style", " onclick=", " onload=", "href=\"/", "src=\"/"] {
        assert!(!page.contains(forbidden), "{forbidden}");
    }
    for link in [r#"href="fhir/metadata""#, r#"href="docs""#, r#"href="openapi.json""#] {
        assert!(page.contains(link), "{link}");
    }
    assert!(!page.contains("://"), "the page names no other origin");
    assert!(!body(app, "/viewer.css").await.contains("://"), "nor does its style sheet");
}

async fn the_script_reads_the_api_relative_to_the_page_and_parses_no_server_html(app: &TestApp) {
    let script = body(app, "/viewer.js").await;
    assert!(script.contains(r#"fetch("fhir/" + path, { headers })"#), "one fetch, below the page");
    assert_eq!(script.matches("fetch(").count(), 1);
    // The only absolute URLs are the identifiers of an extension and a naming system, never fetched.
    let urls: Vec<&str> = script.split('"').filter(|part| part.contains("://")).collect();
    assert_eq!(
        urls,
        [
            "http://ontariohealth.ca/fhir/mi/StructureDefinition/ext-di-addendum-of",
            "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"
        ]
    );
    assert_eq!(script.matches("://").count(), 2, "no other URL, in a comment or a template either");
    for forbidden in
        ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "srcdoc"]
    {
        assert!(!script.contains(forbidden), "{forbidden}");
    }
    assert!(
        !script.contains("localStorage") && !script.contains("sessionStorage"),
        "the token stays in memory"
    );
}

backend_tests!(
    assets_have_their_types_a_strict_policy_and_revalidate,
    the_page_loads_only_its_own_script_and_style,
    the_script_reads_the_api_relative_to_the_page_and_parses_no_server_html,
);
