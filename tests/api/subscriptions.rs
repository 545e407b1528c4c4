//! Subscriptions against a receiver the test runs: R4 classic rest-hooks (without and with payload), topic
//! subscriptions of the Subscriptions Backport IG (history Bundles, event numbers, filters, payload contents,
//! heartbeats), the outbox under failure (a receiver down then up, one that times out, the retry horizon and
//! reactivation), `$status`, `$events`, `$deliveries`, `$resend`, ordering under concurrent writers, and
//! the Subscriptions a server refuses.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use cdr_api::DeliveryConfig;
use cdr_interactions::{IMAGING_REPORT_TOPIC, RetryPolicy};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{TestApp, build_request, send_to};

backend_tests!(
    a_requested_subscription_is_stored_active,
    subscriptions_the_server_cannot_serve_are_refused,
    only_allowed_endpoints_are_accepted_and_delivered_to,
    a_classic_rest_hook_without_payload_is_posted_each_matching_change,
    a_classic_rest_hook_with_payload_puts_the_resource,
    a_topic_subscription_sends_numbered_history_bundles,
    topic_payloads_are_empty_id_only_or_full,
    a_topic_filtered_by_recipient_licence_hears_only_its_reports,
    a_transaction_records_its_events_in_entry_order,
    a_receiver_down_then_up_gets_every_event_in_order,
    a_receiver_that_times_out_is_sent_the_event_again,
    a_slow_receiver_is_not_sent_the_event_twice,
    past_the_horizon_the_subscription_is_error_until_reactivated,
    events_can_be_replayed_and_resent,
    heartbeats_are_sent_when_nothing_else_is,
    concurrent_writers_get_gapless_numbers_delivered_once_in_order,
    two_dispatchers_share_the_outbox_without_sending_twice,
    a_deleted_or_switched_off_subscription_records_nothing,
    the_capability_statement_declares_subscriptions_and_the_topic
);

const FHIR_JSON: (&str, &str) = ("content-type", "application/fhir+json");
const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON notification")
    }
}

/// A notification endpoint: records every request, answers `status` after `delay_ms`.
#[derive(Clone)]
struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            address: listener.local_addr().unwrap(),
            received: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU64::new(0)),
        };
        let state = receiver.clone();
        let router = axum::Router::new().fallback(move |request: Request<Body>| {
            let state = state.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                state.received.lock().unwrap().push(Received {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    authorization: parts
                        .headers
                        .get("authorization")
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned),
                    body: String::from_utf8(body.to_vec()).unwrap(),
                });
                let delay = state.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap()
            }
        });
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        receiver
    }

    fn endpoint(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

/// Retries due at once (so a test's next drain makes them), 24 hours of horizon, 5 s receiver timeout.
fn delivery() -> DeliveryConfig {
    DeliveryConfig {
        retry: RetryPolicy {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            horizon: Duration::from_secs(24 * 60 * 60),
            timeout: Duration::from_secs(5),
        },
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_secs(1),
    }
}

fn report(patient: &str, status: &str) -> Value {
    json!({
        "resourceType": "DiagnosticReport",
        "status": status,
        "code": {"text": "CT head"},
        "subject": {"reference": format!("Patient/{patient}")},
    })
}

fn classic(criteria: &str, endpoint: &str, payload: Option<&str>) -> Value {
    let mut subscription = json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "reports for the test",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint, "header": ["Authorization: Bearer secret"]},
    });
    if let Some(payload) = payload {
        subscription["channel"]["payload"] = json!(payload);
    }
    subscription
}

fn topic(filters: &[&str], endpoint: &str, content: &str, channel_extensions: &[Value]) -> Value {
    let filters: Vec<Value> = filters
        .iter()
        .map(|filter| json!({"url": format!("{BACKPORT}backport-filter-criteria"), "valueString": filter}))
        .collect();
    let mut subscription = json!({
        "resourceType": "Subscription",
        "meta": {"profile": [format!("{BACKPORT}backport-subscription")]},
        "status": "requested",
        "reason": "imaging reports",
        "criteria": IMAGING_REPORT_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": format!("{BACKPORT}backport-payload-content"), "valueCode": content}]},
        },
    });
    if !filters.is_empty() {
        subscription["_criteria"] = json!({"extension": filters});
    }
    if !channel_extensions.is_empty() {
        subscription["channel"]["extension"] = json!(channel_extensions);
    }
    subscription
}

async fn create(app: &TestApp, resource: &Value) -> Value {
    let response = app
        .post(
            &format!("/fhir/{}", resource["resourceType"].as_str().unwrap()),
            &resource.to_string(),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    response.json()
}

async fn update(app: &TestApp, resource: &Value) -> Value {
    let uri = format!(
        "/fhir/{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    let response = app.put(&uri, &resource.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    response.json()
}

/// The status `Parameters` of a notification Bundle, by parameter name.
fn status_of(bundle: &Value) -> &Value {
    assert_eq!(bundle["type"], "history", "{bundle}");
    &bundle["entry"][0]["resource"]
}

fn parameter<'a>(parameters: &'a Value, name: &str) -> Vec<&'a Value> {
    parameters["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|parameter| parameter["name"] == name)
        .collect()
}

fn event_numbers(bundle: &Value) -> Vec<String> {
    parameter(status_of(bundle), "notification-event")
        .iter()
        .map(|event| {
            event["part"]
                .as_array()
                .unwrap()
                .iter()
                .find(|part| part["name"] == "event-number")
                .unwrap()["valueString"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn focus_ids(bundle: &Value) -> Vec<String> {
    parameter(status_of(bundle), "notification-event")
        .iter()
        .filter_map(|event| {
            let part =
                event["part"].as_array().unwrap().iter().find(|part| part["name"] == "focus")?;
            let reference = part["valueReference"]["reference"].as_str().unwrap();
            // http://cdr.test/fhir/DiagnosticReport/{id}/_history/{n}
            Some(reference.split('/').nth_back(2).unwrap().to_owned())
        })
        .collect()
}

async fn a_requested_subscription_is_stored_active(app: &TestApp) {
    let created =
        create(app, &classic("DiagnosticReport?status=final", "http://127.0.0.1:9/hook", None))
            .await;
    assert_eq!(created["status"], "active");
    let read = app.get(&format!("/fhir/Subscription/{}", created["id"].as_str().unwrap())).await;
    assert_eq!(read.json()["status"], "active");
    let topic = create(app, &topic(&[], "http://127.0.0.1:9/hook", "id-only", &[])).await;
    assert_eq!(topic["status"], "active");
}

async fn subscriptions_the_server_cannot_serve_are_refused(app: &TestApp) {
    let endpoint = "http://127.0.0.1:9/hook";
    let mut email = classic("DiagnosticReport?status=final", endpoint, None);
    email["channel"]["type"] = json!("email");
    let mut no_endpoint = classic("DiagnosticReport?status=final", endpoint, None);
    no_endpoint["channel"]["endpoint"] = json!("ftp://example.org/x");
    let mut bad_header = classic("DiagnosticReport?status=final", endpoint, None);
    bad_header["channel"]["header"] = json!(["no colon here"]);
    let cases = [
        (classic("Observation?status=final", endpoint, None), "Subscription.criteria"),
        (classic("AuditEvent?patient=Patient/p1", endpoint, None), "Subscription.criteria"),
        (classic("DiagnosticReport?colour=blue", endpoint, None), ""),
        (classic("not a search", endpoint, None), "Subscription.criteria"),
        (
            classic("DiagnosticReport?status=final", endpoint, Some("text/plain")),
            "Subscription.channel.payload",
        ),
        (email, "Subscription.channel.type"),
        (no_endpoint, "Subscription.channel.endpoint"),
        (bad_header, "Subscription.channel.header[0]"),
        (
            topic(&["DiagnosticReport?code=x"], endpoint, "id-only", &[]),
            "Subscription.criteria.extension[0]",
        ),
        (
            topic(&["Patient?name=x"], endpoint, "id-only", &[]),
            "Subscription.criteria.extension[0]",
        ),
        (topic(&[], endpoint, "everything", &[]), "Subscription.channel.payload"),
    ];
    for (subscription, location) in cases {
        let response = app.post("/fhir/Subscription", &subscription.to_string()).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{subscription}: {}",
            response.text()
        );
        if !location.is_empty() {
            assert!(response.text().contains(location), "{location}: {}", response.text());
        }
    }
    assert_eq!(app.search("Subscription?_total=accurate").await["total"], json!(0));
}

async fn only_allowed_endpoints_are_accepted_and_delivered_to(app: &TestApp) {
    let receiver = Receiver::start().await;
    // Accepted while any endpoint is allowed; then the server is restricted to another host.
    let subscription = create(app, &topic(&[], &receiver.endpoint(), "id-only", &[])).await;
    let allowed = vec!["http://emr.example.org/".to_owned()];
    let router =
        app.router_with_engine(|engine| engine.with_subscription_endpoints(allowed.clone()));
    let refused = send_to(
        &router,
        build_request(
            Method::POST,
            "/fhir/Subscription",
            &[FHIR_JSON],
            &topic(&[], &receiver.endpoint(), "id-only", &[]).to_string(),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().contains("http://emr.example.org/"), "{}", refused.text());
    let accepted = send_to(
        &router,
        build_request(
            Method::POST,
            "/fhir/Subscription",
            &[FHIR_JSON],
            &topic(&[], "http://emr.example.org/hook", "id-only", &[]).to_string(),
        ),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.text());
    // The subscription made before is not delivered to any more: it is set to error.
    create(app, &report("p1", "final")).await;
    let dispatcher = app.dispatcher_with_engine(delivery(), |engine| {
        engine.with_subscription_endpoints(allowed.clone())
    });
    dispatcher.drain().await;
    assert!(receiver.received().is_empty());
    let stored = app
        .get(&format!("/fhir/Subscription/{}", subscription["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(stored["status"], "error");
    assert!(stored["error"].as_str().unwrap().contains("http://emr.example.org/"), "{stored}");
}

async fn a_classic_rest_hook_without_payload_is_posted_each_matching_change(app: &TestApp) {
    let receiver = Receiver::start().await;
    create(app, &classic("DiagnosticReport?status=final", &receiver.endpoint(), None)).await;
    create(app, &report("p1", "final")).await;
    let mut preliminary = create(app, &report("p1", "preliminary")).await;
    create(app, &json!({"resourceType": "Patient", "name": [{"family": "Roy"}]})).await;
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 1);
    preliminary["status"] = json!("final");
    update(app, &preliminary).await;
    assert_eq!(dispatcher.drain().await, 1);
    assert_eq!(dispatcher.drain().await, 0);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    for one in &received {
        assert_eq!(one.method, "POST");
        assert_eq!(one.path, "/hook");
        assert_eq!(one.body, "");
        assert_eq!(one.authorization.as_deref(), Some("Bearer secret"));
    }
}

async fn a_classic_rest_hook_with_payload_puts_the_resource(app: &TestApp) {
    let receiver = Receiver::start().await;
    let criteria = "DiagnosticReport?subject=Patient/p1&status=final,amended";
    create(app, &classic(criteria, &receiver.endpoint(), Some("application/fhir+json"))).await;
    let mut first = create(app, &report("p1", "final")).await;
    create(app, &report("p2", "final")).await;
    first["status"] = json!("amended");
    update(app, &first).await;
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 2);
    let received = receiver.received();
    let id = first["id"].as_str().unwrap();
    assert_eq!(received.len(), 2);
    for (one, (version, status)) in received.iter().zip([("1", "final"), ("2", "amended")]) {
        assert_eq!(one.method, "PUT");
        assert_eq!(one.path, format!("/hook/DiagnosticReport/{id}"));
        let body = one.json();
        assert_eq!(body["meta"]["versionId"], version);
        assert_eq!(body["status"], status);
    }
}

async fn a_topic_subscription_sends_numbered_history_bundles(app: &TestApp) {
    let receiver = Receiver::start().await;
    let subscription = create(
        app,
        &topic(&["DiagnosticReport?patient=Patient/p1"], &receiver.endpoint(), "id-only", &[]),
    )
    .await;
    let id = subscription["id"].as_str().unwrap();
    // Each deliverable version of one report is an event; a preliminary report and another patient's are not.
    let mut report_a = create(app, &report("p1", "final")).await;
    create(app, &report("p1", "preliminary")).await;
    create(app, &report("p2", "final")).await;
    for status in ["amended", "corrected", "appended", "entered-in-error"] {
        report_a["status"] = json!(status);
        report_a = update(app, &report_a).await;
    }
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 5);
    let received = receiver.received();
    let a = report_a["id"].as_str().unwrap().to_owned();
    for (number, one) in received.iter().enumerate() {
        assert_eq!(one.method, "POST");
        assert_eq!(one.path, "/hook");
        let bundle = one.json();
        let status = status_of(&bundle);
        assert_eq!(status["resourceType"], "Parameters");
        assert_eq!(parameter(status, "type")[0]["valueCode"], "event-notification");
        assert_eq!(parameter(status, "topic")[0]["valueCanonical"], IMAGING_REPORT_TOPIC);
        assert_eq!(
            parameter(status, "subscription")[0]["valueReference"]["reference"],
            format!("http://cdr.test/fhir/Subscription/{id}")
        );
        assert_eq!(event_numbers(&bundle), vec![(number + 1).to_string()]);
        assert_eq!(focus_ids(&bundle), vec![a.clone()]);
        let event = &parameter(status, "notification-event")[0]["part"];
        let focus = event.as_array().unwrap().iter().find(|part| part["name"] == "focus").unwrap();
        assert_eq!(
            focus["valueReference"]["reference"],
            format!("http://cdr.test/fhir/DiagnosticReport/{a}/_history/{}", number + 1),
            "the version the event is about"
        );
        assert_eq!(
            bundle["entry"][1]["fullUrl"],
            format!("http://cdr.test/fhir/DiagnosticReport/{a}")
        );
        assert!(bundle["entry"][1].get("resource").is_none(), "id-only carries no resource");
    }
    // The history Bundle validates as R4 (bdl-3/bdl-4: request and response on every entry).
    let validated = app.post("/fhir/$validate", &received[0].body).await;
    assert_eq!(validated.status, StatusCode::OK);
    assert!(!validated.text().contains("\"error\""), "{}", validated.text());
}

async fn topic_payloads_are_empty_id_only_or_full(app: &TestApp) {
    let receiver = Receiver::start().await;
    let count = json!({"url": format!("{BACKPORT}backport-max-count"), "valuePositiveInt": 10});
    for content in ["empty", "id-only", "full-resource"] {
        create(
            app,
            &topic(
                &["DiagnosticReport?status=final"],
                &receiver.endpoint(),
                content,
                std::slice::from_ref(&count),
            ),
        )
        .await;
    }
    create(app, &report("p1", "final")).await;
    create(app, &report("p1", "final")).await;
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 3);
    let mut shapes: Vec<(usize, usize, usize)> = receiver
        .received()
        .iter()
        .map(|one| {
            let bundle = one.json();
            let entries = bundle["entry"].as_array().unwrap();
            let with_resource =
                entries[1..].iter().filter(|entry| entry.get("resource").is_some()).count();
            (event_numbers(&bundle).len(), entries.len() - 1, with_resource)
        })
        .collect();
    shapes.sort_unstable();
    // Two events in one notification each (max-count 10): no focus entries, two addresses, two resources.
    assert_eq!(shapes, vec![(2, 0, 0), (2, 2, 0), (2, 2, 2)]);
}

async fn a_topic_filtered_by_recipient_licence_hears_only_its_reports(app: &TestApp) {
    const CPSO: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician";
    let receiver = Receiver::start().await;
    let filter = format!("DiagnosticReport?recipient.identifier={CPSO}|12345");
    create(app, &topic(&[&filter], &receiver.endpoint(), "id-only", &[])).await;
    let practitioner = |licence: &str| {
        json!({"resourceType": "Practitioner", "identifier": [{"system": CPSO, "value": licence}],
               "name": [{"family": "Tremblay"}]})
    };
    let mine = create(app, &practitioner("12345")).await;
    let other = create(app, &practitioner("99999")).await;
    let order = |requester: &Value| {
        json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
               "subject": {"reference": "Patient/p1"},
               "requester": {"reference": format!("Practitioner/{}", requester["id"].as_str().unwrap())}})
    };
    let my_order = create(app, &order(&mine)).await;
    let other_order = create(app, &order(&other)).await;
    let based_on = |order: &Value| {
        let mut report = report("p1", "final");
        report["basedOn"] =
            json!([{"reference": format!("ServiceRequest/{}", order["id"].as_str().unwrap())}]);
        report
    };
    let routed = create(app, &based_on(&my_order)).await;
    create(app, &based_on(&other_order)).await;
    create(app, &report("p1", "final")).await;
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 1);
    let focus: Vec<String> =
        receiver.received().iter().flat_map(|one| focus_ids(&one.json())).collect();
    assert_eq!(focus, [routed["id"].as_str().unwrap()]);
}

async fn a_transaction_records_its_events_in_entry_order(app: &TestApp) {
    let receiver = Receiver::start().await;
    let subscription = create(app, &topic(&[], &receiver.endpoint(), "id-only", &[])).await;
    let entries: Vec<Value> = (0..5)
        .map(|n| json!({"fullUrl": format!("urn:uuid:00000000-0000-0000-0000-00000000000{n}"),
                        "resource": report("p1", "final"), "request": {"method": "POST", "url": "DiagnosticReport"}}))
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let response = app.post("/fhir", &bundle.to_string()).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    let written: Vec<String> = response.json()["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            entry["response"]["location"].as_str().unwrap().split('/').nth(1).unwrap().to_owned()
        })
        .collect();
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 5);
    let focus: Vec<String> =
        receiver.received().iter().flat_map(|one| focus_ids(&one.json())).collect();
    assert_eq!(focus, written);
    let events = app
        .get(&format!("/fhir/Subscription/{}/$events", subscription["id"].as_str().unwrap()))
        .await;
    assert_eq!(event_numbers(&events.json()), ["1", "2", "3", "4", "5"]);
}

async fn a_receiver_down_then_up_gets_every_event_in_order(app: &TestApp) {
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let subscription = create(app, &topic(&[], &receiver.endpoint(), "id-only", &[])).await;
    let id = subscription["id"].as_str().unwrap();
    let mut written = Vec::new();
    for _ in 0..3 {
        written.push(create(app, &report("p1", "final")).await["id"].as_str().unwrap().to_owned());
    }
    let dispatcher = app.dispatcher(delivery());
    for _ in 0..3 {
        assert_eq!(dispatcher.drain().await, 1, "a failure ends the round");
    }
    let deliveries = app.get(&format!("/fhir/Subscription/{id}/$deliveries")).await.json();
    let entries = deliveries["entry"].as_array().unwrap();
    let state = &entries[0]["resource"];
    assert_eq!(parameter(state, "state")[0]["valueCode"], "active");
    assert_eq!(parameter(state, "events")[0]["valueString"], "3");
    assert_eq!(parameter(state, "delivered-through")[0]["valueString"], "0");
    assert_eq!(parameter(state, "attempts")[0]["valueInteger"], 3);
    assert_eq!(parameter(state, "error")[0]["valueString"], "the endpoint answered 503");
    let attempt = &entries[1]["resource"];
    assert_eq!(parameter(attempt, "outcome")[0]["valueCode"], "failed");
    assert_eq!(parameter(attempt, "http-status")[0]["valueInteger"], 503);
    assert_eq!(parameter(attempt, "first-event")[0]["valueString"], "1");
    let status = app.get(&format!("/fhir/Subscription/{id}/$status")).await.json();
    let parameters = &status["entry"][0]["resource"];
    assert_eq!(parameter(parameters, "type")[0]["valueCode"], "query-status");
    assert_eq!(parameter(parameters, "events-since-subscription-start")[0]["valueString"], "3");
    assert_eq!(
        parameter(parameters, "error")[0]["valueCodeableConcept"]["text"],
        "the endpoint answered 503"
    );

    receiver.answer(200);
    assert_eq!(dispatcher.drain().await, 3);
    let delivered: Vec<Vec<String>> =
        receiver.received().iter().skip(3).map(|one| focus_ids(&one.json())).collect();
    assert_eq!(delivered, written.iter().map(|id| vec![id.clone()]).collect::<Vec<_>>());
    let status = app.get(&format!("/fhir/Subscription/{id}/$status")).await.json();
    assert!(parameter(&status["entry"][0]["resource"], "error").is_empty());
}

async fn a_receiver_that_times_out_is_sent_the_event_again(app: &TestApp) {
    let receiver = Receiver::start().await;
    receiver.delay_ms.store(3_000, Ordering::SeqCst);
    let subscription =
        create(app, &classic("DiagnosticReport?status=final", &receiver.endpoint(), None)).await;
    create(app, &report("p1", "final")).await;
    let mut config = delivery();
    config.retry.timeout = Duration::from_millis(300);
    let dispatcher = app.dispatcher(config);
    assert_eq!(dispatcher.drain().await, 1);
    let deliveries = app
        .get(&format!("/fhir/Subscription/{}/$deliveries", subscription["id"].as_str().unwrap()))
        .await
        .json();
    let attempt = &deliveries["entry"][1]["resource"];
    assert_eq!(
        parameter(attempt, "error")[0]["valueString"],
        "the endpoint did not answer within 0.3 s"
    );
    assert!(parameter(attempt, "http-status").is_empty());
    receiver.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(dispatcher.drain().await, 1);
    assert_eq!(
        receiver.received().len(),
        2,
        "at least once: the timed-out notification is sent again"
    );
}

async fn a_slow_receiver_is_not_sent_the_event_twice(app: &TestApp) {
    let receiver = Receiver::start().await;
    receiver.delay_ms.store(1_500, Ordering::SeqCst);
    create(app, &classic("DiagnosticReport?status=final", &receiver.endpoint(), None)).await;
    create(app, &report("p1", "final")).await;
    // Claims of 300 ms, renewed every 100 ms while the receiver takes 1.5 s: a second dispatcher looking
    // meanwhile finds nothing to send.
    let mut config = delivery();
    config.lease = Duration::from_millis(300);
    let (one, two) = (app.dispatcher(config), app.dispatcher(config));
    let second = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        two.drain().await
    };
    let (first, second) = tokio::join!(one.drain(), second);
    assert_eq!((first, second), (1, 0));
    assert_eq!(receiver.received().len(), 1);
}

async fn past_the_horizon_the_subscription_is_error_until_reactivated(app: &TestApp) {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let subscription = create(app, &topic(&[], &receiver.endpoint(), "id-only", &[])).await;
    let id = subscription["id"].as_str().unwrap().to_owned();
    create(app, &report("p1", "final")).await;
    let mut config = delivery();
    config.retry.horizon = Duration::ZERO;
    let dispatcher = app.dispatcher(config);
    assert_eq!(dispatcher.drain().await, 1);
    let stored = app.get(&format!("/fhir/Subscription/{id}")).await.json();
    assert_eq!(stored["status"], "error");
    assert_eq!(stored["error"], "the endpoint answered 500");
    assert_eq!(stored["meta"]["versionId"], "2");
    // In error: nothing is sent, but events are still recorded.
    create(app, &report("p1", "final")).await;
    receiver.answer(200);
    assert_eq!(dispatcher.drain().await, 0);
    let mut resumed = stored.clone();
    resumed["status"] = json!("requested");
    let resumed = update(app, &resumed).await;
    assert_eq!(resumed["status"], "active");
    assert!(resumed.get("error").is_none());
    assert_eq!(dispatcher.drain().await, 2);
    let numbers: Vec<Vec<String>> =
        receiver.received().iter().skip(1).map(|one| event_numbers(&one.json())).collect();
    assert_eq!(numbers, [vec!["1".to_owned()], vec!["2".to_owned()]]);
}

async fn events_can_be_replayed_and_resent(app: &TestApp) {
    let receiver = Receiver::start().await;
    let subscription = create(app, &topic(&[], &receiver.endpoint(), "id-only", &[])).await;
    let id = subscription["id"].as_str().unwrap();
    let mut written = Vec::new();
    for _ in 0..4 {
        written.push(create(app, &report("p1", "final")).await);
    }
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 4);
    let events = app
        .get(&format!("/fhir/Subscription/{id}/$events?eventsSinceNumber=2&eventsUntilNumber=3"))
        .await;
    assert_eq!(events.status, StatusCode::OK);
    let events = events.json();
    assert_eq!(parameter(status_of(&events), "type")[0]["valueCode"], "query-event");
    assert_eq!(event_numbers(&events), ["2", "3"]);
    assert!(events["entry"][1].get("resource").is_none());
    let full = app
        .get(&format!("/fhir/Subscription/{id}/$events?eventsSinceNumber=4&content=full-resource"))
        .await
        .json();
    assert_eq!(event_numbers(&full), ["4"]);
    assert_eq!(full["entry"][1]["resource"]["id"], written[3]["id"]);
    for bad in
        ["eventsSinceNumber=x", "eventsSinceNumber=3&eventsUntilNumber=2", "content=everything"]
    {
        let response = app.get(&format!("/fhir/Subscription/{id}/$events?{bad}")).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    let resent =
        app.post(&format!("/fhir/Subscription/{id}/$resend?eventsSinceNumber=3"), "").await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.text());
    assert_eq!(dispatcher.drain().await, 2);
    let numbers: Vec<Vec<String>> =
        receiver.received().iter().map(|one| event_numbers(&one.json())).collect();
    let expected: Vec<Vec<String>> =
        ["1", "2", "3", "4", "3", "4"].iter().map(|n| vec![(*n).to_owned()]).collect();
    assert_eq!(numbers, expected);
    assert_eq!(
        app.post(&format!("/fhir/Subscription/{id}/$resend"), "").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.get("/fhir/Subscription/unknown/$status").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/fhir/Patient/{id}/$status")).await.status,
        StatusCode::BAD_REQUEST
    );
}

async fn heartbeats_are_sent_when_nothing_else_is(app: &TestApp) {
    let receiver = Receiver::start().await;
    let heartbeat =
        json!({"url": format!("{BACKPORT}backport-heartbeat-period"), "valueUnsignedInt": 1});
    create(app, &topic(&[], &receiver.endpoint(), "id-only", &[heartbeat])).await;
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 0, "no heartbeat is due yet");
    // The heartbeat period is a time: wait it out.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(dispatcher.drain().await, 1);
    assert_eq!(dispatcher.drain().await, 0, "the next one is a period later");
    let bundle = receiver.received()[0].json();
    let status = status_of(&bundle);
    assert_eq!(parameter(status, "type")[0]["valueCode"], "heartbeat");
    assert_eq!(parameter(status, "events-since-subscription-start")[0]["valueString"], "0");
    assert!(parameter(status, "notification-event").is_empty());
}

async fn concurrent_writers_get_gapless_numbers_delivered_once_in_order(app: &TestApp) {
    let receiver = Receiver::start().await;
    let subscription = create(app, &topic(&[], &receiver.endpoint(), "id-only", &[])).await;
    let id = subscription["id"].as_str().unwrap();
    let requests: Vec<Request<Body>> = (0..24)
        .map(|_| {
            build_request(
                Method::POST,
                "/fhir/DiagnosticReport",
                &[FHIR_JSON],
                &report("p1", "final").to_string(),
            )
        })
        .collect();
    let responses = app.race(requests).await;
    let mut written: Vec<String> = responses
        .iter()
        .map(|response| {
            assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
            response.json()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 24);
    let received = receiver.received();
    let numbers: Vec<String> = received.iter().flat_map(|one| event_numbers(&one.json())).collect();
    assert_eq!(numbers, (1..=24).map(|n| n.to_string()).collect::<Vec<_>>());
    let mut focus: Vec<String> = received.iter().flat_map(|one| focus_ids(&one.json())).collect();
    focus.sort_unstable();
    written.sort_unstable();
    assert_eq!(focus, written, "every report exactly once");
    let status = app.get(&format!("/fhir/Subscription/{id}/$status")).await.json();
    assert_eq!(
        parameter(&status["entry"][0]["resource"], "events-since-subscription-start")[0]["valueString"],
        "24"
    );
}

async fn two_dispatchers_share_the_outbox_without_sending_twice(app: &TestApp) {
    let receiver = Receiver::start().await;
    for _ in 0..3 {
        create(app, &topic(&[], &receiver.endpoint(), "id-only", &[])).await;
    }
    for _ in 0..5 {
        create(app, &report("p1", "final")).await;
    }
    let (one, two) = (app.dispatcher(delivery()), app.dispatcher(delivery()));
    let (a, b) = tokio::join!(one.drain(), two.drain());
    assert_eq!(a + b, 15);
    let received = receiver.received();
    let mut by_subscription: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for one in &received {
        let bundle = one.json();
        let subscription =
            parameter(status_of(&bundle), "subscription")[0]["valueReference"]["reference"]
                .as_str()
                .unwrap()
                .to_owned();
        by_subscription.entry(subscription).or_default().extend(event_numbers(&bundle));
    }
    assert_eq!(by_subscription.len(), 3);
    for numbers in by_subscription.values() {
        assert_eq!(numbers, &["1", "2", "3", "4", "5"], "in order, once each");
    }
}

async fn a_deleted_or_switched_off_subscription_records_nothing(app: &TestApp) {
    let receiver = Receiver::start().await;
    let deleted =
        create(app, &classic("DiagnosticReport?status=final", &receiver.endpoint(), None)).await;
    let mut off =
        create(app, &classic("DiagnosticReport?status=final", &receiver.endpoint(), None)).await;
    off["status"] = json!("off");
    update(app, &off).await;
    let response =
        app.delete(&format!("/fhir/Subscription/{}", deleted["id"].as_str().unwrap())).await;
    assert!(response.status.is_success(), "{}", response.text());
    create(app, &report("p1", "final")).await;
    let dispatcher = app.dispatcher(delivery());
    assert_eq!(dispatcher.drain().await, 0);
    assert!(receiver.received().is_empty());
    let status =
        app.get(&format!("/fhir/Subscription/{}/$status", deleted["id"].as_str().unwrap())).await;
    assert_eq!(status.status, StatusCode::NOT_FOUND);
}

async fn the_capability_statement_declares_subscriptions_and_the_topic(app: &TestApp) {
    let metadata = app.get("/fhir/metadata").await.json();
    let resources = metadata["rest"][0]["resource"].as_array().unwrap();
    let subscription =
        resources.iter().find(|resource| resource["type"] == "Subscription").unwrap();
    assert_eq!(subscription["extension"][0]["valueCanonical"], IMAGING_REPORT_TOPIC);
    let operations: Vec<&str> = subscription["operation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["name"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["validate", "status", "events", "deliveries", "resend"]);
}
