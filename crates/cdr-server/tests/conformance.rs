//! `imaging-cdr conformance run` against `imaging-cdr serve --mode micdr`, both as processes: the whole onmi kit
//! passes on SQLite and on PostgreSQL (there, two runs at once), and read-only with inputs; a fault-injecting
//! proxy between the runner and the server makes the matching tests fail; the exit statuses say what went
//! wrong; and the report of a run on SQLite, normalised, is the golden one (`tests/expect/conformance-onmi.json`,
//! rewritten with `UPDATE_EXPECT=1`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the test failing"
)]

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;

/// The kit's tests.
const TESTS: usize = 106;

/// The test of what the server does not claim: security (no access control is declared).
const OMITTED: [&str; 1] = ["1.09"];

/// The test that skips: the must-support coverage of the index entries, which have no `custodian` (the server
/// makes them, and the guide does not say whose custody to name).
const SKIPPED: [&str; 1] = ["8.09"];

fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles")
}

fn scratch(prefix: &str) -> PathBuf {
    let folder = std::env::temp_dir().join(format!(
        "imaging-cdr-{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// `imaging-cdr serve --mode micdr` on a free port, killed when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Server {
    fn start(database_url: &str, folder: &Path) -> Server {
        Server::start_with(database_url, folder, &[])
    }

    /// [`Server::start`] with more arguments, run in `folder`.
    fn start_with(database_url: &str, folder: &Path, extra: &[&str]) -> Server {
        let address = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
            .args(["serve", "--mode", "micdr", "--listen", &address.to_string()])
            .arg("--database-url")
            .arg(database_url)
            .arg("--profiles-dir")
            .arg(profiles_dir())
            .args(extra)
            .current_dir(folder)
            .env_remove("AUTH")
            .env_remove("AUTH_CONFIG")
            .env_remove("AUTH_KEY")
            .env_remove("BASE_URL")
            .env_remove("PROFILES_DIR")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(folder.join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server { child, address };
        let started = Instant::now();
        while std::net::TcpStream::connect(address).is_err() {
            assert!(server.child.try_wait().unwrap().is_none(), "the server exited at startup");
            assert!(started.elapsed() < Duration::from_secs(120), "the server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the kit against `base`; the exit status and the JSON report.
fn run_kit(base: &str, folder: &Path, extra: &[&str]) -> (i32, Value) {
    let report = folder.join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
        .args(["conformance", "run", "--base", base, "--out"])
        .arg(&report)
        .arg("--html")
        .arg(folder.join("report.html"))
        .arg("--junit")
        .arg(folder.join("report.xml"))
        .arg("--profiles-dir")
        .arg(profiles_dir())
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" skipped") && last.contains(" passed, "),
        "the last line is the summary: {stdout}"
    );
    let report = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    (output.status.code().unwrap(), report)
}

/// short id → result of every test of a report.
fn results(report: &Value) -> Vec<(String, String, String)> {
    let mut results = Vec::new();
    for group in report["groups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            results.push((
                test["short_id"].as_str().unwrap().to_owned(),
                test["result"].as_str().unwrap().to_owned(),
                test["message"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    results
}

fn assert_all_pass(status: i32, report: &Value) {
    let unexpected: Vec<_> = results(report)
        .into_iter()
        .filter(|(id, result, _)| {
            let expected = if OMITTED.contains(&id.as_str()) {
                "omit"
            } else if SKIPPED.contains(&id.as_str()) {
                "skip"
            } else {
                "pass"
            };
            result != expected
        })
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert_eq!(status, 0);
}

#[test]
fn the_kit_passes_on_sqlite_and_its_report_is_the_golden_one() {
    let folder = scratch("conformance-sqlite");
    let server = Server::start(&format!("sqlite://{}/cdr.db", folder.display()), &folder);
    let base = format!("http://{}/fhir", server.address);
    let (status, report) = run_kit(&base, &folder, &["--cleanup"]);
    assert_all_pass(status, &report);
    assert_eq!(results(&report).len(), TESTS);
    let html = std::fs::read_to_string(folder.join("report.html")).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>")
            && !html.contains("<script")
            && !html.contains("src=\"")
    );
    let junit = std::fs::read_to_string(folder.join("report.xml")).unwrap();
    assert!(junit.contains("<testsuites name=\"Ontario MI FHIR R4 server\""));
    expect_test::expect_file!["expect/conformance-onmi.json"].assert_eq(&normalise(&report, &base));
    // --cleanup deleted the run's resources: read-only, the same inputs find nothing.
    let inputs = read_only_inputs(report["run_id"].as_str().unwrap());
    let (status, report) =
        run_kit(&base, &folder, &inputs.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(status, 0);
    let patient = results(&report).into_iter().find(|(id, _, _)| id == "9.02").unwrap();
    assert_eq!(
        (patient.1.as_str(), patient.2.as_str()),
        ("skip", "nothing matched: give inputs that name data on the server")
    );
}

/// `--mode read-only` and the inputs naming what the write run `run_id` submitted.
fn read_only_inputs(run_id: &str) -> Vec<String> {
    [
        "--mode".to_owned(),
        "read-only".to_owned(),
        "--select".to_owned(),
        "1,4,5,6,7,8,9,10,11".to_owned(),
        "--input".to_owned(),
        format!("patient_identifier=http://ehealthontario.ca/fhir/NamingSystem/example-hospital-mrn|MRN-{run_id}"),
        "--input".to_owned(),
        format!("accession=http://ehealthontario.ca/fhir/NamingSystem/example-hospital-accession|ACC-{run_id}"),
        "--input".to_owned(),
        "procedure_code=urn:oid:2.16.840.1.113883.3.239.99.1|CTHEADWO".to_owned(),
        "--input".to_owned(),
        format!("practitioner_identifier=https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician|{run_id}"),
        "--input".to_owned(),
        format!("placer_number=ORD-{run_id}"),
        "--input".to_owned(),
        "organization_identifier=https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-provider-upi|101981036292".to_owned(),
    ]
    .to_vec()
}

#[test]
fn the_kit_passes_on_postgres() {
    let folder = scratch("conformance-postgres");
    let schema = support::Schema::create("conformance");
    let server = Server::start(&schema.url(), &folder);
    let base = format!("http://{}/fhir", server.address);
    // Two runs at once on one server: each sees only its own fixtures.
    let other_folder = scratch("conformance-postgres-other");
    let other = std::thread::scope(|scope| {
        let other = scope.spawn(|| run_kit(&base, &other_folder, &[]));
        let (status, report) = run_kit(&base, &folder, &[]);
        assert_all_pass(status, &report);
        assert_eq!(results(&report).len(), TESTS);
        other.join().unwrap()
    });
    assert_all_pass(other.0, &other.1);
    let report = serde_json::from_str::<Value>(
        &std::fs::read_to_string(folder.join("report.json")).unwrap(),
    )
    .unwrap();
    // Read-only, with inputs naming what the write run left: every search finds it and passes.
    let inputs = read_only_inputs(report["run_id"].as_str().unwrap());
    let (status, report) =
        run_kit(&base, &folder, &inputs.iter().map(String::as_str).collect::<Vec<_>>());
    assert_all_pass(status, &report);
    assert_eq!(results(&report).len(), 9 + 13 + 14 + 12 + 12 + 9 + 7 + 3 + 3);
}

/// The report with what changes from run to run replaced: the base, the run id, server-assigned ids, paging
/// cursors, `_since` instants, times and durations.
fn normalise(report: &Value, base: &str) -> String {
    let run_id = report["run_id"].as_str().unwrap();
    let mut report = report.clone();
    report["started_at"] = Value::from("STARTED");
    report["duration_ms"] = Value::from(0);
    for group in report["groups"].as_array_mut().unwrap() {
        for test in group["tests"].as_array_mut().unwrap() {
            test["duration_ms"] = Value::from(0);
            for request in test["requests"].as_array_mut().unwrap() {
                request["duration_ms"] = Value::from(0);
            }
        }
    }
    let text =
        serde_json::to_string_pretty(&report).unwrap().replace(base, "BASE").replace(run_id, "RUN");
    let uuid =
        regex::Regex::new("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    let cursor = regex::Regex::new("_cursor=[^&\"]*").unwrap();
    let since = regex::Regex::new("_since=[^&\"]*").unwrap();
    let digits = regex::Regex::new("RUN[0-9]*").unwrap();
    let text = uuid.replace_all(&text, "ID");
    let text = cursor.replace_all(&text, "_cursor=CURSOR");
    let text = since.replace_all(&text, "_since=SINCE");
    digits.replace_all(&text, "RUN").into_owned() + "\n"
}

/// What the proxy breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Every response says `Content-Type: text/plain`.
    WrongContentType,
    /// No `Location` header.
    NoLocation,
    /// No `ETag` header.
    NoEtag,
    /// A searchset's `next` link points back at the page it is on.
    NextLoop,
    /// A date's `ge` prefix becomes `gt` (the boundary is lost).
    GeOffByOne,
    /// `identifier=system|value` loses its system.
    SystemIgnored,
    /// `_sort=-x` becomes `_sort=x` (oldest first).
    SortReversed,
    /// A 400 becomes a 500.
    ServerErrorOnBadInput,
    /// A refused transaction is applied again as a batch: its valid entries are written.
    NonAtomic,
    /// Every ImagingStudy answered (read or in a Bundle) loses its `referrer`, a must-support element.
    MustSupportStripped,
    /// `:not` is dropped: `status:not=x` becomes `status=x`.
    NotIgnored,
    /// `:missing=true` becomes `:missing=false`.
    MissingInverted,
    /// `:of-type` is dropped: `identifier:of-type=s|c|v` becomes `identifier=s|c|v`.
    OfTypeIgnored,
    /// `_summary` and `_elements` are dropped: whole resources come back.
    SubsetIgnored,
    /// A searchset's `total` is one more than it should be.
    TotalOffByOne,
    /// The entries of a history Bundle lose their `request`.
    HistoryWithoutRequest,
    /// A conditional delete answers 204 without deleting.
    ConditionalDeleteIgnored,
    /// A DocumentReference search drops its `period`, `type` and `event` parameters.
    IndexFiltersIgnored,
    /// `:exact` is dropped: `family:exact=x` becomes `family=x`.
    ExactIgnored,
    /// `_lastUpdated` is dropped.
    LastUpdatedIgnored,
    /// `:below` and `:contains` are dropped (a uri compared whole, a string by prefix).
    PrefixModifiersIgnored,
}

/// A proxy from a free port to the server, applying the current fault; runs until the test ends.
fn start_proxy(server: SocketAddr, fault: Arc<Mutex<Fault>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let client: Client<HttpConnector, Full<Bytes>> =
                Client::builder(TokioExecutor::new()).build_http();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let client = client.clone();
                let fault = fault.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let fault = *fault.lock().unwrap();
                        forward(client.clone(), server, request, fault)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    address
}

async fn forward(
    client: Client<HttpConnector, Full<Bytes>>,
    server: SocketAddr,
    request: Request<Incoming>,
    fault: Fault,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut target = parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default();
    if fault == Fault::ConditionalDeleteIgnored
        && parts.method == hyper::Method::DELETE
        && target.contains('?')
    {
        return Ok(Response::builder().status(204).body(Full::new(Bytes::new())).unwrap());
    }
    let body = match std::str::from_utf8(&body) {
        Ok(form) if parts.method == hyper::Method::POST && target.contains("/_search") => {
            Bytes::from(rewrite_parameters(fault, &target, form))
        }
        _ => body,
    };
    if let Some((path, query)) = target.split_once('?') {
        target = format!("{path}?{}", rewrite_parameters(fault, path, query));
    }
    let send = |body: Bytes, target: &str| {
        let mut builder =
            Request::builder().method(parts.method.clone()).uri(format!("http://{server}{target}"));
        // The body may change: hyper sets its length.
        for (name, value) in parts.headers.iter().filter(|(name, _)| *name != "content-length") {
            builder = builder.header(name, value);
        }
        client.request(builder.body(Full::new(body)).unwrap())
    };
    let response = send(body.clone(), &target).await.unwrap();
    let (mut head, answer) = response.into_parts();
    let mut answer = answer.collect().await?.to_bytes();
    let is_transaction = parts.method == hyper::Method::POST
        && serde_json::from_slice::<Value>(&body)
            .is_ok_and(|bundle| bundle["type"] == "transaction");
    if fault == Fault::NonAtomic && is_transaction && head.status.is_client_error() {
        let mut bundle: Value = serde_json::from_slice(&body).unwrap();
        bundle["type"] = Value::from("batch");
        let _ = send(Bytes::from(bundle.to_string()), &target).await.unwrap();
    }
    match fault {
        Fault::WrongContentType => {
            head.headers.insert("content-type", "text/plain".parse().unwrap());
        }
        Fault::NoLocation => {
            head.headers.remove("location");
        }
        Fault::NoEtag => {
            head.headers.remove("etag");
        }
        Fault::ServerErrorOnBadInput if head.status == 400 => {
            head.status = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        }
        Fault::MustSupportStripped | Fault::TotalOffByOne | Fault::HistoryWithoutRequest => {
            if let Ok(mut body) = serde_json::from_slice::<Value>(&answer) {
                alter_answer(fault, &mut body);
                answer = Bytes::from(body.to_string());
                head.headers.remove("content-length");
            }
        }
        Fault::NextLoop => {
            if let Ok(mut bundle) = serde_json::from_slice::<Value>(&answer)
                && bundle["type"] == "searchset"
            {
                let links = bundle["link"].as_array().cloned().unwrap_or_default();
                let this = links
                    .iter()
                    .find(|link| link["relation"] == "self")
                    .map(|link| link["url"].clone());
                for link in bundle["link"].as_array_mut().into_iter().flatten() {
                    if link["relation"] == "next"
                        && let Some(this) = &this
                    {
                        link["url"] = this.clone();
                    }
                }
                answer = Bytes::from(bundle.to_string());
                head.headers.remove("content-length");
            }
        }
        _ => {}
    }
    Ok(Response::from_parts(head, Full::new(answer)))
}

/// A query string (or form body) of a search with the fault's change to its parameters; `path` says the
/// type searched.
fn rewrite_parameters(fault: Fault, path: &str, query: &str) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (name, value) = (name.into_owned(), value.into_owned());
        let rewritten = match fault {
            Fault::GeOffByOne if value.starts_with("ge") => {
                Some((name, value.replacen("ge", "gt", 1)))
            }
            Fault::SystemIgnored if name == "identifier" => {
                let code = value.rsplit('|').next().unwrap_or_default().to_owned();
                Some((name, code))
            }
            Fault::SortReversed if name == "_sort" => Some((name, value.replace('-', ""))),
            Fault::NotIgnored => Some((name.replace(":not", ""), value)),
            Fault::MissingInverted if name.ends_with(":missing") && value == "true" => {
                Some((name, "false".to_owned()))
            }
            Fault::OfTypeIgnored => Some((name.replace(":of-type", ""), value)),
            Fault::ExactIgnored => Some((name.replace(":exact", ""), value)),
            Fault::LastUpdatedIgnored if name == "_lastUpdated" => None,
            Fault::PrefixModifiersIgnored => {
                Some((name.replace(":below", "").replace(":contains", ""), value))
            }
            Fault::SubsetIgnored if name == "_summary" || name == "_elements" => None,
            Fault::IndexFiltersIgnored
                if path.contains("DocumentReference")
                    && matches!(name.as_str(), "period" | "type" | "event") =>
            {
                None
            }
            _ => Some((name, value)),
        };
        if let Some((name, value)) = rewritten {
            serializer.append_pair(&name, &value);
        }
    }
    serializer.finish()
}

/// The fault's change to a JSON answer.
fn alter_answer(fault: Fault, body: &mut Value) {
    match fault {
        Fault::MustSupportStripped => strip_referrers(body),
        Fault::TotalOffByOne if body["type"] == "searchset" => {
            if let Some(total) = body["total"].as_u64() {
                body["total"] = Value::from(total + 1);
            }
        }
        Fault::HistoryWithoutRequest if body["type"] == "history" => {
            for entry in body["entry"].as_array_mut().into_iter().flatten() {
                if let Some(entry) = entry.as_object_mut() {
                    entry.remove("request");
                }
            }
        }
        _ => {}
    }
}

/// Removes `referrer` from an ImagingStudy, or from each one in a Bundle's entries.
fn strip_referrers(body: &mut Value) {
    if body["resourceType"] == "ImagingStudy"
        && let Some(study) = body.as_object_mut()
    {
        study.remove("referrer");
    }
    let entries = body.get_mut("entry").and_then(Value::as_array_mut);
    for resource in entries.into_iter().flatten().filter_map(|entry| entry.get_mut("resource")) {
        strip_referrers(resource);
    }
}

#[test]
fn each_injected_fault_fails_its_tests() {
    let folder = scratch("conformance-faults");
    let server = Server::start(&format!("sqlite://{}/cdr.db", folder.display()), &folder);
    let fault = Arc::new(Mutex::new(Fault::None));
    let proxy = start_proxy(server.address, fault.clone());
    let base = format!("http://{proxy}/fhir");
    // Through the proxy with no fault, the selected tests pass.
    let (status, report) = run_kit(
        &base,
        &folder,
        &["--select", "1.01,2.04,3,4,5.03,5.06,5.11,5.12,5.13,6,7.11,8.05,8.07,9.05,9.06"],
    );
    assert_all_pass(status, &report);
    let cases = [
        (Fault::WrongContentType, "1.01,3.01", &["1.01", "3.01"][..]),
        (Fault::NoLocation, "3.01", &["3.01"]),
        (Fault::NoEtag, "3.01,3.02", &["3.01", "3.02"]),
        (Fault::NextLoop, "4.01", &["4.01"]),
        (Fault::GeOffByOne, "5.06,6.04", &["5.06", "6.04"]),
        (Fault::SystemIgnored, "5.03", &["5.03"]),
        (Fault::SortReversed, "4.04,4.09", &["4.04", "4.09"]),
        (Fault::ServerErrorOnBadInput, "4.07", &["4.07"]),
        (Fault::NonAtomic, "2.04", &["2.04"]),
        (Fault::MustSupportStripped, "6", &["6.12"]),
        (Fault::NotIgnored, "5.11", &["5.11"]),
        (Fault::MissingInverted, "6.10", &["6.10"]),
        (Fault::OfTypeIgnored, "5.12,7.11", &["5.12", "7.11"]),
        (Fault::SubsetIgnored, "4.11,4.12,4.13", &["4.11", "4.12", "4.13"]),
        (Fault::TotalOffByOne, "4.10,4.11", &["4.10", "4.11"]),
        (Fault::HistoryWithoutRequest, "3.13,3.14", &["3.13", "3.14"]),
        (Fault::ConditionalDeleteIgnored, "3.15", &["3.15"]),
        (Fault::IndexFiltersIgnored, "8.05,8.07", &["8.05", "8.07"]),
        (Fault::ExactIgnored, "9.05", &["9.05"]),
        (Fault::LastUpdatedIgnored, "5.13", &["5.13"]),
        (Fault::PrefixModifiersIgnored, "6.11,9.06", &["6.11", "9.06"]),
    ];
    for (injected, select, failing) in cases {
        *fault.lock().unwrap() = injected;
        let (status, report) = run_kit(&base, &folder, &["--select", select]);
        let results = results(&report);
        for id in failing {
            let result = results.iter().find(|(short_id, _, _)| short_id == id).unwrap();
            assert_eq!(result.1, "fail", "{injected:?}: {result:?}");
        }
        assert_eq!(status, 3, "{injected:?}");
    }
}

/// Under `--auth smart` the server declares `rest.security`, and the security test checks that a request
/// without credentials is refused with 401, a Bearer challenge and an OperationOutcome.
#[test]
fn the_security_test_checks_a_server_under_auth() {
    let folder = scratch("conformance-auth");
    let config = r#"{"fhir_base_url": "http://cdr.test/fhir",
        "clients": [{"client_id": "ris", "jwks": {"keys": []}, "scopes": ["system/*.rs"]}]}"#;
    std::fs::write(folder.join("auth.json"), config).unwrap();
    let database = format!("sqlite://{}/cdr.db", folder.display());
    let server = Server::start_with(
        &database,
        &folder,
        &["--auth", "smart", "--auth-config", "auth.json", "--auth-key", "signing.pem"],
    );
    let base = format!("http://{}/fhir", server.address);
    let (status, report) = run_kit(&base, &folder, &["--mode", "read-only", "--select", "1.09"]);
    let security: Vec<_> = results(&report).into_iter().filter(|(id, ..)| id == "1.09").collect();
    assert_eq!(security.len(), 1, "{report}");
    assert_eq!(security[0].1, "pass", "{security:?}");
    assert_eq!(status, 0, "{report}");
}

#[test]
fn exit_statuses_say_what_went_wrong() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
            .args(["conformance", "run", "--profiles-dir"])
            .arg(profiles_dir())
            .args(args)
            .output()
            .unwrap();
        (output.status.code().unwrap(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (status, stderr) = run(&["--base", &format!("http://{free}/fhir")]);
    assert_eq!(status, 5, "{stderr}");
    assert!(stderr.contains("the server is unreachable"), "{stderr}");
    for (args, message) in [
        (
            &["--base", "http://127.0.0.1:1/fhir", "--select", "99"][..],
            "--select 99: no group or test has that id",
        ),
        (
            &["--base", "http://127.0.0.1:1/fhir", "--input", "colour=red"],
            "--input colour: the kit takes no such input",
        ),
        (&["--base", "https://fhir.example/r4"], "an http:// URL is needed"),
        (&["--base", "http://127.0.0.1:1/fhir", "--kit", "uscore"], "no kit named uscore"),
    ] {
        let (status, stderr) = run(args);
        assert_eq!(status, 4, "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let list = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
        .args(["conformance", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains("\n1 CapabilityStatement: ")
            && list.contains("\n  4.01 Paging with _count=1"),
        "{list}"
    );
}
