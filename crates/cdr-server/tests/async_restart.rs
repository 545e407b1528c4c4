//! Asynchronous submissions survive `kill -9`: `imaging-cdr serve` (SQLite file, and PostgreSQL in a schema
//! of the test's own) is killed while it runs queued Bundles whose entries are not idempotent (plain `POST`
//! creates of Patients with unique identifiers), then restarted on the same database; every job must finish
//! and every identifier exist exactly once. And two server processes on one PostgreSQL database, draining
//! one queue, run each job once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the test failing"
)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod server;
mod support;
use server::{Server, temp_dir};
use support::Schema;

/// Short leases and polls, so a restarted server takes over soon.
const ASYNC: [&str; 4] = ["--async-lease-seconds", "2", "--async-poll-seconds", "1"];

const SYSTEM: &str = "http://kill.test/patient-id";

/// Jobs submitted, and Patients each creates (a transaction for even jobs, a batch for odd ones).
const JOBS: usize = 24;
const PATIENTS_PER_JOB: usize = 15;

/// Submits `bundle` with `Prefer: respond-async`; returns the status URL's path.
fn submit(server: &Server, bundle: &Value) -> String {
    let headers = [("Content-Type", "application/fhir+json"), ("Prefer", "respond-async")];
    let (status, head, body) =
        server.request("POST", "/fhir", &headers, &bundle.to_string()).unwrap();
    assert_eq!(status, 202, "{head}\n{body}");
    let location = head
        .lines()
        .find_map(|line| line.strip_prefix("content-location: "))
        .unwrap_or_else(|| panic!("no Content-Location: {head}"));
    location.strip_prefix("http://cdr.test").unwrap().to_owned()
}

/// The status of a job: its HTTP status and body.
fn status(server: &Server, status_url: &str) -> (u16, String) {
    let (status, _, body) = server.request("GET", status_url, &[], "").unwrap();
    (status, body)
}

/// Job `job`: `PATIENTS_PER_JOB` plain creates of Patients with identifiers of their own.
fn job_bundle(job: usize) -> Value {
    let entries: Vec<Value> = (0..PATIENTS_PER_JOB)
        .map(|n| {
            json!({"resource": {"resourceType": "Patient",
                                "identifier": [{"system": SYSTEM, "value": format!("J{job}-P{n}")}]},
                   "request": {"method": "POST", "url": "Patient"}})
        })
        .collect();
    let kind = if job.is_multiple_of(2) { "transaction" } else { "batch" };
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

/// Polls every status URL until each answers 200 (at most three minutes); checks each response; returns
/// how many were still unfinished at the first look.
fn await_all(server: &Server, status_urls: &[String]) -> usize {
    let started = Instant::now();
    let mut unfinished_at_first = None;
    loop {
        let mut unfinished = 0;
        for (job, status_url) in status_urls.iter().enumerate() {
            let (answer, body) = status(server, status_url);
            match answer {
                202 => unfinished += 1,
                200 => check_response(job, &body),
                other => panic!("job {job} answered {other}: {body}"),
            }
        }
        unfinished_at_first.get_or_insert(unfinished);
        if unfinished == 0 {
            return unfinished_at_first.unwrap_or_default();
        }
        assert!(started.elapsed() < Duration::from_secs(180), "{unfinished} jobs did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn check_response(job: usize, body: &str) {
    let response: Value = serde_json::from_str(body).unwrap();
    let expected = if job.is_multiple_of(2) { "transaction-response" } else { "batch-response" };
    assert_eq!(response["type"], expected, "{response}");
    let entries = response["entry"].as_array().unwrap();
    assert_eq!(entries.len(), PATIENTS_PER_JOB, "{response}");
    for entry in entries {
        assert_eq!(entry["response"]["status"], "201 Created", "{response}");
    }
}

/// Every identifier exists exactly once.
fn assert_each_patient_once(server: &Server) {
    let query = format!("/fhir/Patient?identifier={SYSTEM}%7C&_count=500&_elements=identifier");
    let (status, _, body) = server.request("GET", &query, &[], "").unwrap();
    assert_eq!(status, 200, "{body}");
    let bundle: Value = serde_json::from_str(&body).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for entry in bundle["entry"].as_array().unwrap() {
        let value = entry["resource"]["identifier"][0]["value"].as_str().unwrap();
        *seen.entry(value.to_owned()).or_default() += 1;
    }
    assert!(bundle["link"].as_array().unwrap().iter().all(|link| link["relation"] != "next"));
    for job in 0..JOBS {
        for n in 0..PATIENTS_PER_JOB {
            let value = format!("J{job}-P{n}");
            assert_eq!(seen.get(&value), Some(&1), "{value} exists {:?} times", seen.get(&value));
        }
    }
    assert_eq!(seen.len(), JOBS * PATIENTS_PER_JOB);
}

/// Submits every job, kills the server as soon as the first has finished, restarts it on the same
/// database and waits for all.
fn kill_and_restart(database_url: &str, folder: &std::path::Path) {
    let server = Server::start(database_url, folder, "first.log", &ASYNC);
    let status_urls: Vec<String> = (0..JOBS).map(|job| submit(&server, &job_bundle(job))).collect();
    let started = Instant::now();
    while status(&server, &status_urls[0]).0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(120), "the first job did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    let server = Server::start(database_url, folder, "second.log", &ASYNC);
    let unfinished = await_all(&server, &status_urls);
    assert!(unfinished > 0, "every job had finished before the kill: the test killed nothing");
    assert_each_patient_once(&server);
}

#[test]
fn sqlite_jobs_killed_mid_run_finish_exactly_once_after_a_restart() {
    let folder = temp_dir("async-sqlite");
    kill_and_restart(&format!("sqlite://{}/cdr.db", folder.display()), &folder);
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn postgres_jobs_killed_mid_run_finish_exactly_once_after_a_restart() {
    let schema = Schema::create("test_async");
    let folder = temp_dir("async-postgres");
    kill_and_restart(&schema.url(), &folder);
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn two_servers_on_one_postgres_database_run_each_job_once() {
    let schema = Schema::create("test_async");
    let folder = temp_dir("async-two-servers");
    let first = Server::start(&schema.url(), &folder, "first.log", &ASYNC);
    let second = Server::start(&schema.url(), &folder, "second.log", &ASYNC);
    // Submitted to both, so that both workers are woken and race for the queue.
    let status_urls: Vec<String> = (0..JOBS)
        .map(|job| submit(if job.is_multiple_of(2) { &first } else { &second }, &job_bundle(job)))
        .collect();
    await_all(&first, &status_urls);
    assert_each_patient_once(&second);
    drop((first, second));
    std::fs::remove_dir_all(&folder).unwrap();
}
