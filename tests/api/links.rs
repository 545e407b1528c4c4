//! Links the client cannot steer: `Location`, search and history links, `fullUrl` and the
//! CapabilityStatement's `implementation.url` under each link configuration, and the attacks on each
//! (a `Host` with userinfo, malformed hosts, forwarded headers from an untrusted peer).

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use cdr_api::{ApiConfig, LinkConfig};
use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{TestApp, TestResponse, send_to};

const PATIENT: &str = r#"{"resourceType":"Patient","name":[{"family":"Tremblay"}]}"#;

/// A router of `app` with these link settings.
fn router(app: &TestApp, links: LinkConfig) -> Router {
    app.router_with(ApiConfig { links, ..ApiConfig::default() })
}

/// Sends `method uri` with `headers` from `peer` (none: no connection information, as in-process).
async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    peer: Option<&str>,
) -> TestResponse {
    let mut builder = Request::builder().method(method.clone()).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = if method == Method::POST {
        builder = builder.header("content-type", "application/fhir+json");
        Body::from(PATIENT)
    } else {
        Body::empty()
    };
    let mut request = builder.body(body).unwrap();
    if let Some(peer) = peer {
        let address: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(address));
    }
    send_to(router, request).await
}

/// Every kind of link the server writes, for a request with `headers` from `peer`: the `Location` of
/// a create, a search's self link and first `fullUrl`, a history's self link, and the
/// CapabilityStatement's `implementation.url`. Each must start with `expected`.
async fn assert_links(
    router: &Router,
    headers: &[(&str, &str)],
    peer: Option<&str>,
    expected: &str,
) {
    let created = send(router, Method::POST, "/fhir/Patient", headers, peer).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let location = created.header("location").unwrap();
    assert!(location.starts_with(&format!("{expected}/Patient/")), "{location} for {expected}");
    let search = send(router, Method::GET, "/fhir/Patient?_count=1", headers, peer).await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.text());
    let bundle = search.json();
    assert_starts(&bundle["link"][0]["url"], &format!("{expected}/Patient?"));
    assert_starts(&bundle["entry"][0]["fullUrl"], &format!("{expected}/Patient/"));
    let history = send(router, Method::GET, "/fhir/Patient/_history", headers, peer).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text());
    assert_starts(&history.json()["link"][0]["url"], &format!("{expected}/Patient/_history"));
    let metadata = send(router, Method::GET, "/fhir/metadata", headers, peer).await;
    assert_eq!(metadata.json()["implementation"]["url"], expected);
}

fn assert_starts(value: &Value, prefix: &str) {
    let text = value.as_str().unwrap_or_else(|| panic!("not a string: {value}"));
    assert!(text.starts_with(prefix), "{text} does not start with {prefix}");
}

/// Every request with `headers` (from `peer`) is refused with 400 before it does anything.
async fn assert_refused(router: &Router, headers: &[(&str, &str)], peer: Option<&str>) {
    for (method, uri) in [
        (Method::POST, "/fhir/Patient"),
        (Method::GET, "/fhir/Patient"),
        (Method::GET, "/fhir/metadata"),
        (Method::GET, "/fhir/Patient/_history"),
    ] {
        let response = send(router, method.clone(), uri, headers, peer).await;
        response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
        assert_eq!(response.header("location"), None);
    }
}

/// Hosts that are not a `host[:port]`, refused in every configuration.
const MALFORMED_HOSTS: &[&str] = &[
    "good@evil.example",
    "cdr.example.org@evil.example:8080",
    "cdr.example.org evil.example",
    "cdr.example.org:99999",
    "cdr.example.org:0",
    "cdr.example.org:80:80",
    "cdr.example.org/evil",
    "",
];

async fn links_come_from_a_well_formed_host(app: &TestApp) {
    let router = router(app, LinkConfig::default());
    assert_links(
        &router,
        &[("host", "cdr.example.org:8080")],
        None,
        "http://cdr.example.org:8080/fhir",
    )
    .await;
    assert_links(&router, &[("host", "[::1]:8080")], None, "http://[::1]:8080/fhir").await;
    for host in MALFORMED_HOSTS {
        assert_refused(&router, &[("host", host)], None).await;
    }
    // No Host at all: there is nothing to build a link from.
    let response = send(&router, Method::GET, "/fhir/metadata", &[], None).await;
    response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
    // Reads that build no link are refused as well.
    let response =
        send(&router, Method::GET, "/fhir/Patient/1", &[("host", "good@evil.example")], None).await;
    response.assert_outcome(StatusCode::BAD_REQUEST, "invalid");
}

async fn forwarded_headers_of_untrusted_peers_are_ignored(app: &TestApp) {
    let spoofing = [
        ("host", "cdr.example.org"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
    ];
    let forwarded = [("host", "cdr.example.org"), ("forwarded", "proto=https;host=evil.example")];
    // No trusted proxies at all.
    let open = router(app, LinkConfig::default());
    assert_links(&open, &spoofing, Some("10.1.2.3:5000"), "http://cdr.example.org/fhir").await;
    assert_links(&open, &forwarded, None, "http://cdr.example.org/fhir").await;
    // A peer outside the trusted blocks.
    let trusting = router(
        app,
        LinkConfig {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..LinkConfig::default()
        },
    );
    assert_links(&trusting, &spoofing, Some("192.0.2.7:5000"), "http://cdr.example.org/fhir").await;
    assert_links(&trusting, &forwarded, None, "http://cdr.example.org/fhir").await;
}

async fn trusted_proxies_decide_scheme_and_host(app: &TestApp) {
    let router = router(
        app,
        LinkConfig {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()],
            allowed_hosts: vec!["cdr.example.org".parse().unwrap()],
            ..LinkConfig::default()
        },
    );
    let proxy = Some("10.1.2.3:5000");
    let x_forwarded = [
        ("host", "backend.internal:8080"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example, cdr.example.org"),
    ];
    assert_links(&router, &x_forwarded, proxy, "https://cdr.example.org/fhir").await;
    let forwarded = [
        ("host", "backend.internal:8080"),
        (
            "forwarded",
            "for=198.51.100.1;proto=http;host=evil.example, for=203.0.113.5;proto=https;host=\"cdr.example.org:8443\"",
        ),
    ];
    assert_links(&router, &forwarded, Some("[::1]:5000"), "https://cdr.example.org:8443/fhir")
        .await;
    // The proxy's scheme with the request's own host.
    let proto_only = [("host", "cdr.example.org"), ("x-forwarded-proto", "https")];
    assert_links(&router, &proto_only, proxy, "https://cdr.example.org/fhir").await;
    // A forwarded host must be well-formed and allowed, a forwarded scheme http or https.
    for headers in [
        &[("host", "cdr.example.org"), ("x-forwarded-host", "good@evil.example")][..],
        &[("host", "cdr.example.org"), ("x-forwarded-host", "evil.example")],
        &[("host", "cdr.example.org"), ("forwarded", "host=good@evil.example")],
        &[("host", "cdr.example.org"), ("x-forwarded-proto", "javascript")],
        &[("host", "cdr.example.org"), ("forwarded", "proto")],
    ] {
        assert_refused(&router, headers, proxy).await;
    }
    // The Host itself is still checked against the allowed hosts.
    assert_refused(&router, &[("host", "backend.internal")], proxy).await;
}

async fn allowed_hosts_bound_the_host_header(app: &TestApp) {
    let router = router(
        app,
        LinkConfig {
            allowed_hosts: vec![
                "cdr.example.org".parse().unwrap(),
                "10.0.0.5:8080".parse().unwrap(),
            ],
            ..LinkConfig::default()
        },
    );
    assert_links(
        &router,
        &[("host", "CDR.example.org:8443")],
        None,
        "http://cdr.example.org:8443/fhir",
    )
    .await;
    assert_links(&router, &[("host", "10.0.0.5:8080")], None, "http://10.0.0.5:8080/fhir").await;
    for host in ["evil.example", "cdr.example.org.evil.example", "10.0.0.5", "10.0.0.5:9090"] {
        assert_refused(&router, &[("host", host)], None).await;
    }
    for host in MALFORMED_HOSTS {
        assert_refused(&router, &[("host", host)], None).await;
    }
}

async fn a_configured_base_url_decides_every_link(app: &TestApp) {
    let router = router(
        app,
        LinkConfig {
            base_url: Some("https://cdr.example.org/r4/fhir/".parse().unwrap()),
            trusted_proxies: vec!["0.0.0.0/0".parse().unwrap()],
            allowed_hosts: vec!["other.example".parse().unwrap()],
        },
    );
    let expected = "https://cdr.example.org/r4/fhir";
    assert_links(&router, &[("host", "evil.example")], None, expected).await;
    assert_links(&router, &[], None, expected).await;
    let spoofing = [
        ("host", "evil.example"),
        ("x-forwarded-proto", "http"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "proto=http;host=evil.example"),
    ];
    assert_links(&router, &spoofing, Some("10.1.2.3:5000"), expected).await;
    for host in MALFORMED_HOSTS {
        assert_refused(&router, &[("host", host)], None).await;
    }
}

backend_tests!(
    links_come_from_a_well_formed_host,
    forwarded_headers_of_untrusted_peers_are_ignored,
    trusted_proxies_decide_scheme_and_host,
    allowed_hosts_bound_the_host_header,
    a_configured_base_url_decides_every_link,
);
