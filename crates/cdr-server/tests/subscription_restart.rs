//! Subscription events survive `kill -9`: with its receiver down, `imaging-cdr serve` (SQLite file, and
//! PostgreSQL in a schema of the test's own) records the events of a topic subscription and fails to deliver
//! them; it is killed, the receiver comes up, the server is restarted on the same database, and every event
//! arrives, in order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the test failing"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod server;
mod support;
use server::{Server, temp_dir};
use support::Schema;

/// Reports written while the receiver is down.
const REPORTS: usize = 12;

/// Quick retries, short claims and polls.
const DELIVERY: [&str; 8] = [
    "--subscription-first-retry-seconds",
    "1",
    "--subscription-max-retry-seconds",
    "1",
    "--subscription-lease-seconds",
    "3",
    "--subscription-poll-milliseconds",
    "100",
];

/// A notification endpoint on a thread of its own: answers 503 until `up`, then 200, and keeps the event
/// numbers of each notification it accepted.
struct Receiver {
    address: SocketAddr,
    up: Arc<AtomicBool>,
    refused: Arc<Mutex<usize>>,
    accepted: Arc<Mutex<Vec<u64>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let receiver = Receiver {
            address: listener.local_addr().unwrap(),
            up: Arc::default(),
            refused: Arc::default(),
            accepted: Arc::default(),
        };
        let (up, refused, accepted) = (
            Arc::clone(&receiver.up),
            Arc::clone(&receiver.refused),
            Arc::clone(&receiver.accepted),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let status = if up.load(Ordering::SeqCst) {
                    let bundle: Value = serde_json::from_slice(&body).unwrap();
                    accepted.lock().unwrap().extend(event_numbers(&bundle));
                    "200 OK"
                } else {
                    *refused.lock().unwrap() += 1;
                    "503 Service Unavailable"
                };
                let answer =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        receiver
    }
}

fn event_numbers(bundle: &Value) -> Vec<u64> {
    let status = &bundle["entry"][0]["resource"]["parameter"];
    status
        .as_array()
        .unwrap()
        .iter()
        .filter(|parameter| parameter["name"] == "notification-event")
        .map(|event| {
            let part = event["part"]
                .as_array()
                .unwrap()
                .iter()
                .find(|part| part["name"] == "event-number");
            part.unwrap()["valueString"].as_str().unwrap().parse().unwrap()
        })
        .collect()
}

fn post(server: &Server, path: &str, resource: &Value) {
    let headers = [("Content-Type", "application/fhir+json")];
    let (status, head, body) =
        server.request("POST", path, &headers, &resource.to_string()).unwrap();
    assert_eq!(status, 201, "{head}\n{body}");
}

fn kill_and_restart(database_url: &str, folder: &std::path::Path) {
    let receiver = Receiver::start();
    let server = Server::start(database_url, folder, "first.log", &DELIVERY);
    let subscription = json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "reports",
        "criteria": "urn:imaging-cdr:subscription-topic:imaging-report",
        "channel": {"type": "rest-hook", "endpoint": format!("http://{}/hook", receiver.address),
                    "payload": "application/fhir+json"},
    });
    post(&server, "/fhir/Subscription", &subscription);
    for n in 0..REPORTS {
        let report = json!({"resourceType": "DiagnosticReport", "status": "final",
                            "code": {"text": format!("report {n}")}});
        post(&server, "/fhir/DiagnosticReport", &report);
    }
    let started = Instant::now();
    while *receiver.refused.lock().unwrap() == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the server never tried to deliver");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    receiver.up.store(true, Ordering::SeqCst);
    let server = Server::start(database_url, folder, "second.log", &DELIVERY);
    let started = Instant::now();
    while receiver.accepted.lock().unwrap().len() < REPORTS {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not every event arrived after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);
    let accepted = receiver.accepted.lock().unwrap().clone();
    let expected: Vec<u64> = (1..=u64::try_from(REPORTS).unwrap()).collect();
    assert_eq!(accepted, expected, "every event once, in order");
}

#[test]
fn sqlite_events_recorded_before_a_kill_are_delivered_after_the_restart() {
    let folder = temp_dir("subscriptions-sqlite");
    kill_and_restart(&format!("sqlite://{}/cdr.db", folder.display()), &folder);
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn postgres_events_recorded_before_a_kill_are_delivered_after_the_restart() {
    let schema = Schema::create("test_subscriptions");
    let folder = temp_dir("subscriptions-postgres");
    kill_and_restart(&schema.url(), &folder);
    std::fs::remove_dir_all(&folder).unwrap();
}
