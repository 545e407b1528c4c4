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
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::Schema;

const SYSTEM: &str = "http://kill.test/patient-id";

/// Jobs submitted, and Patients each creates (a transaction for even jobs, a batch for odd ones).
const JOBS: usize = 24;
const PATIENTS_PER_JOB: usize = 15;

/// A fresh folder of its own for a test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "imaging-cdr-async-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `imaging-cdr serve`, killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Server {
    /// Starts a server on `database_url` with short leases and polls, and waits until `/livez` answers.
    fn start(database_url: &str, folder: &std::path::Path, log: &str) -> Server {
        let address = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
            .args(["serve", "--listen", &address.to_string(), "--database-url", database_url])
            .args(["--base-url", "http://cdr.test/fhir"])
            .args(["--async-lease-seconds", "2", "--async-poll-seconds", "1"])
            .current_dir(folder)
            .env_remove("PROFILES_DIR")
            .env_remove("BASE_URL")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(folder.join(log)).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server { child, address };
        let started = Instant::now();
        while server.request("GET", "/livez", &[], "").map(|(status, _, _)| status).ok()
            != Some(200)
        {
            assert!(server.child.try_wait().unwrap().is_none(), "the server exited at startup");
            assert!(started.elapsed() < Duration::from_secs(120), "the server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// One request on a connection of its own: the status, the header block and the body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<(u16, String, String)> {
        let mut stream = TcpStream::connect(self.address)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: cdr.test\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
        Ok((status, head.to_owned(), body.to_owned()))
    }

    /// Submits `bundle` with `Prefer: respond-async`; returns the status URL's path.
    fn submit(&self, bundle: &Value) -> String {
        let headers = [("Content-Type", "application/fhir+json"), ("Prefer", "respond-async")];
        let (status, head, body) =
            self.request("POST", "/fhir", &headers, &bundle.to_string()).unwrap();
        assert_eq!(status, 202, "{head}\n{body}");
        let location = head
            .lines()
            .find_map(|line| line.strip_prefix("content-location: "))
            .unwrap_or_else(|| panic!("no Content-Location: {head}"));
        location.strip_prefix("http://cdr.test").unwrap().to_owned()
    }

    /// The status of a job: its HTTP status and body.
    fn status(&self, status_url: &str) -> (u16, String) {
        let (status, _, body) = self.request("GET", status_url, &[], "").unwrap();
        (status, body)
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
            let (status, body) = server.status(status_url);
            match status {
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
    let server = Server::start(database_url, folder, "first.log");
    let status_urls: Vec<String> = (0..JOBS).map(|job| server.submit(&job_bundle(job))).collect();
    let started = Instant::now();
    while server.status(&status_urls[0]).0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(120), "the first job did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    let server = Server::start(database_url, folder, "second.log");
    let unfinished = await_all(&server, &status_urls);
    assert!(unfinished > 0, "every job had finished before the kill: the test killed nothing");
    assert_each_patient_once(&server);
}

#[test]
fn sqlite_jobs_killed_mid_run_finish_exactly_once_after_a_restart() {
    let folder = temp_dir("sqlite");
    kill_and_restart(&format!("sqlite://{}/cdr.db", folder.display()), &folder);
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn postgres_jobs_killed_mid_run_finish_exactly_once_after_a_restart() {
    let schema = Schema::create("test_async");
    let folder = temp_dir("postgres");
    kill_and_restart(&schema.url(), &folder);
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn two_servers_on_one_postgres_database_run_each_job_once() {
    let schema = Schema::create("test_async");
    let folder = temp_dir("two-servers");
    let first = Server::start(&schema.url(), &folder, "first.log");
    let second = Server::start(&schema.url(), &folder, "second.log");
    // Submitted to both, so that both workers are woken and race for the queue.
    let status_urls: Vec<String> = (0..JOBS)
        .map(|job| if job.is_multiple_of(2) { &first } else { &second }.submit(&job_bundle(job)))
        .collect();
    await_all(&first, &status_urls);
    assert_each_patient_once(&second);
    drop((first, second));
    std::fs::remove_dir_all(&folder).unwrap();
}
