//! `imaging-cdr import`, run as a process from the repository root (so `profiles/` is the default profiles
//! folder) on the fixtures of `tests/fixtures/`: in process on SQLite and PostgreSQL, and over HTTP to a
//! running `imaging-cdr serve`. Each run's summary is checked against what the database then holds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the test failing"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::Connection;

mod support;
use support::Schema;

const FIXTURES: [&str; 3] = [
    "tests/fixtures/submission-bundle.json",
    "tests/fixtures/collection.json",
    "tests/fixtures/patients.ndjson",
];

/// The first import of the fixtures: 6 resources from the transaction, 4 from the collection, 3 lines.
const FIRST_RUN: &str = "13 resources from 3 files: 13 created, 0 updated, 0 unchanged, 0 failed";
/// A rerun writes nothing: the transaction's conditional PUTs find their 6 resources with the same content
/// (an update that changes nothing writes no version), the conditional creates of the collection and the
/// NDJSON lines find theirs.
const RERUN: &str = "13 resources from 3 files: 0 created, 0 updated, 13 unchanged, 0 failed";

fn repository_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh folder of its own for a test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "imaging-cdr-import-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn import(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
        .arg("import")
        .args(args)
        .current_dir(repository_dir())
        .env_remove("PROFILES_DIR")
        .env_remove("DATABASE_URL")
        .env_remove("VALIDATION")
        .env_remove("UPDATE_CREATE")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Asserts the exit status and that the summary starts with `summary` (the time and rate follow it).
fn assert_run(output: &Output, code: i32, summary: &str) {
    assert_eq!(output.status.code(), Some(code), "{output:?}");
    assert!(stdout(output).starts_with(&format!("{summary} in ")), "{output:?}");
}

/// `(current resources, versions)` in the database at `url`.
fn stored(url: &str) -> (i64, i64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let sql_resources = "SELECT COUNT(*) FROM resource";
        let sql_versions = "SELECT COUNT(*) FROM resource_version";
        if url.starts_with("sqlite:") {
            let mut connection = sqlx::SqliteConnection::connect(url).await.unwrap();
            let resources = sqlx::query_scalar(sql_resources).fetch_one(&mut connection).await;
            let versions = sqlx::query_scalar(sql_versions).fetch_one(&mut connection).await;
            (resources.unwrap(), versions.unwrap())
        } else {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            let resources = sqlx::query_scalar(sql_resources).fetch_one(&mut connection).await;
            let versions = sqlx::query_scalar(sql_versions).fetch_one(&mut connection).await;
            (resources.unwrap(), versions.unwrap())
        }
    })
}

#[test]
fn a_rerun_creates_nothing() {
    let dir = temp_dir("rerun");
    let url = format!("sqlite://{}/cdr.db", dir.display());
    let mut args = vec!["--database-url", &url];
    args.extend(FIXTURES);
    let first = import(&args);
    assert_run(&first, 0, FIRST_RUN);
    assert_eq!(stderr(&first), "", "no failure, no warning");
    assert_eq!(stored(&url), (13, 13));
    let rerun = import(&args);
    assert_run(&rerun, 0, RERUN);
    assert_eq!(stored(&url), (13, 13), "no new resource, no new version");
    // Loose resources alone: nothing at all is written.
    let loose = import(&["--database-url", &url, FIXTURES[1], FIXTURES[2]]);
    assert_run(&loose, 0, "7 resources from 2 files: 0 created, 0 updated, 7 unchanged, 0 failed");
    assert_eq!(stored(&url), (13, 13));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_folder_is_walked_recursively_for_json_and_ndjson() {
    let dir = temp_dir("folder");
    let inputs = dir.join("inputs");
    std::fs::create_dir_all(inputs.join("a/b")).unwrap();
    let fixture = |name: &str| repository_dir().join("tests/fixtures").join(name);
    std::fs::copy(fixture("submission-bundle.json"), inputs.join("submission-bundle.json"))
        .unwrap();
    std::fs::copy(fixture("collection.json"), inputs.join("a/collection.json")).unwrap();
    std::fs::copy(fixture("patients.ndjson"), inputs.join("a/b/patients.ndjson")).unwrap();
    std::fs::copy(fixture("README.md"), inputs.join("a/README.md")).unwrap();
    let url = format!("sqlite://{}/cdr.db", dir.display());
    // Small batches, one in flight at a time and several at once: the same outcome.
    let output = import(&[
        "--database-url",
        &url,
        "--batch-size",
        "2",
        "--concurrency",
        "1",
        inputs.to_str().unwrap(),
    ]);
    assert_run(&output, 0, FIRST_RUN);
    let output = import(&["--database-url", &url, "--concurrency", "8", inputs.to_str().unwrap()]);
    assert_run(&output, 0, RERUN);
    assert_eq!(stored(&url), (13, 13));
    // The repository's fixture folder holds the same three files (its README.md is not imported).
    let fresh = format!("sqlite://{}/fresh.db", dir.display());
    assert_run(&import(&["--database-url", &fresh, "tests/fixtures"]), 0, FIRST_RUN);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failures_are_printed_with_their_place_and_exit_one() {
    let dir = temp_dir("failures");
    let ndjson = dir.join("patients.ndjson");
    std::fs::write(
        &ndjson,
        concat!(
            r#"{"resourceType":"Patient","identifier":[{"system":"https://fhir.hospital.example/mrn","value":"MRN-1"}]}"#,
            "\n\n",
            r#"{"resourceType":"Patient","identifier":[{"system":"https://fhir.hospital.example/mrn","value":"MRN-2"}],"gender":"unknown-to-fhir"}"#,
            "\n",
            r#"{"resourceType":"Patient","#,
            "\n",
            r#"{"resourceType":"NotAType"}"#,
            "\n",
        ),
    )
    .unwrap();
    let transaction = dir.join("transaction.json");
    std::fs::write(
        &transaction,
        r#"{"resourceType":"Bundle","type":"transaction","entry":[
            {"resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"POST","url":"Patient"}},
            {"resource":{"resourceType":"Patient","birthDate":"yesterday"},"request":{"method":"POST","url":"Patient"}}]}"#,
    )
    .unwrap();
    // In a collection, the entry of the file is named, not that of the batch made of it.
    let collection = dir.join("collection.json");
    std::fs::write(
        &collection,
        r#"{"resourceType":"Bundle","type":"collection","entry":[
            {"fullUrl":"urn:uuid:3f0e4a52-8c1d-4d5e-9b7a-0c2d4e6f8a01"},
            {"resource":{"resourceType":"Patient","identifier":[{"system":"https://fhir.hospital.example/mrn","value":"MRN-3"}]}},
            {"resource":{"resourceType":"Patient","identifier":[{"system":"https://fhir.hospital.example/mrn","value":"MRN-4"}],"gender":"unknown-to-fhir"}}]}"#,
    )
    .unwrap();
    let url = format!("sqlite://{}/cdr.db", dir.display());
    let (ndjson, transaction) = (ndjson.to_str().unwrap(), transaction.to_str().unwrap());
    let collection = collection.to_str().unwrap();
    let output = import(&["--database-url", &url, ndjson, transaction, collection]);
    assert_run(&output, 1, "9 resources from 3 files: 2 created, 0 updated, 0 unchanged, 7 failed");
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    let has_line = |start: String| lines.iter().any(|line| line.starts_with(&start));
    assert!(has_line(format!("{ndjson}:3: 422 error Patient.gender: ")), "{text}");
    assert!(has_line(format!("{ndjson}:4: error: not valid JSON")), "{text}");
    assert!(
        has_line(format!("{ndjson}:5: error: 'NotAType' is not an R4 resource type")),
        "{text}"
    );
    assert!(
        has_line(format!("{transaction}: 422 error Bundle.entry[1].resource.birthDate: ")),
        "{text}"
    );
    assert!(has_line(format!("{transaction}: the transaction was rolled back")), "{text}");
    assert!(has_line(format!("{collection}: error: Bundle.entry[0] has no resource")), "{text}");
    assert!(
        has_line(format!("{collection}: 422 error Bundle.entry[2].resource.gender: ")),
        "{text}"
    );
    assert_eq!(lines.len(), 7, "{text}");
    assert_eq!(stored(&url), (2, 2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn loose_resources_are_written_by_the_first_rule_that_applies() {
    let dir = temp_dir("rules");
    let ndjson = dir.join("rules.ndjson");
    std::fs::write(
        &ndjson,
        concat!(
            r#"{"resourceType":"Organization","id":"exh-di","name":"Example Hospital DI"}"#,
            "\n",
            r#"{"resourceType":"Organization","name":"Walk-in Imaging"}"#,
            "\n",
            r#"{"resourceType":"Organization","id":"ignored","identifier":[{"value":"no system"},{"system":"https://fhir.hospital.example/organization","value":"A,1|b$c\\d&e=f+g"}]}"#,
            "\n",
        ),
    )
    .unwrap();
    let url = format!("sqlite://{}/cdr.db", dir.display());
    let ndjson = ndjson.to_str().unwrap();
    // An id and no identifier: PUT at the id, refused without update-as-create.
    let refused = import(&["--database-url", &url, ndjson]);
    assert_run(
        &refused,
        1,
        "3 resources from 1 files: 2 created, 0 updated, 0 unchanged, 1 failed",
    );
    let text = stderr(&refused);
    assert!(text.contains(&format!("{ndjson}:1: 405 error Organization: ")), "{text}");
    assert!(text.contains(&format!("{ndjson}:1: note: ")), "{text}");
    assert!(text.contains("--update-create"), "{text}");
    // Neither: a plain POST, warned about.
    assert!(text.contains(&format!("{ndjson}:2: warning: ")), "{text}");
    let allowed = import(&["--database-url", &url, "--update-create", ndjson]);
    assert_run(
        &allowed,
        0,
        "3 resources from 1 files: 2 created, 0 updated, 1 unchanged, 0 failed",
    );
    let again = import(&["--database-url", &url, "--update-create", ndjson]);
    // The PUT at the id finds the same content and writes nothing.
    assert_run(&again, 0, "3 resources from 1 files: 1 created, 0 updated, 2 unchanged, 0 failed");
    // The first identifier with a system and a value keys the conditional create, whatever its characters;
    // the plain POST stored the nameless organization once a run.
    assert_eq!(stored(&url), (5, 5));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_validation_mode_and_profiles_are_the_servers() {
    let dir = temp_dir("validation");
    let ndjson = dir.join("unidentified.ndjson");
    std::fs::write(&ndjson, "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"male\"}\n")
        .unwrap();
    let ndjson = ndjson.to_str().unwrap();
    let url = format!("sqlite://{}/cdr.db", dir.display());
    let mut args = vec!["--database-url", &url, "--validation", "strict", "--update-create"];
    args.extend(FIXTURES);
    assert_run(&import(&args), 0, FIRST_RUN);
    // Base R4 takes a Patient with no MRN nor health card number; the Ontario profile does not.
    let strict =
        import(&["--database-url", &url, "--validation", "strict", "--update-create", ndjson]);
    assert_run(&strict, 1, "1 resources from 1 files: 0 created, 0 updated, 0 unchanged, 1 failed");
    assert!(
        stderr(&strict).contains(&format!("{ndjson}:1: 422 error Patient: ca-on-mi-pat-1")),
        "{strict:?}"
    );
    let base = import(&["--database-url", &url, "--update-create", ndjson]);
    assert_run(&base, 0, "1 resources from 1 files: 1 created, 0 updated, 0 unchanged, 0 failed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_and_setup_errors_exit_two() {
    assert_eq!(import(&[]).status.code(), Some(2));
    assert_eq!(import(&["no-such-file.json"]).status.code(), Some(2));
    let both =
        import(&["--base", "http://127.0.0.1:1/fhir", "--database-url", "sqlite://x.db", "x"]);
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    assert!(stderr(&both).contains("not both"), "{both:?}");
    let https = import(&["--base", "https://cdr.example.org/fhir", FIXTURES[0]]);
    assert_eq!(https.status.code(), Some(2), "{https:?}");
    // Port 1 on the loopback: nothing listens there.
    let unreachable = import(&["--base", "http://127.0.0.1:1/fhir", FIXTURES[0]]);
    assert_eq!(unreachable.status.code(), Some(2), "{unreachable:?}");
    assert!(stderr(&unreachable).contains("cannot reach the FHIR server"), "{unreachable:?}");
}

/// A running `imaging-cdr serve` on SQLite, killed when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
    folder: PathBuf,
}

impl Server {
    /// Starts the server on a free port and waits until `/livez` answers.
    fn start() -> Server {
        let folder = temp_dir("server");
        let address = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
            .arg("serve")
            .args(["--listen", &address.to_string()])
            .arg("--database-url")
            .arg(format!("sqlite://{}/cdr.db", folder.display()))
            .current_dir(repository_dir())
            .env_remove("PROFILES_DIR")
            .env_remove("BASE_URL")
            .env_remove("VALIDATION")
            .env_remove("UPDATE_CREATE")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Server { child, address, folder };
        let started = Instant::now();
        while !server.get("/livez").is_ok_and(|response| response.starts_with("HTTP/1.1 200")) {
            assert!(server.child.try_wait().unwrap().is_none(), "the server exited at startup");
            assert!(started.elapsed() < Duration::from_secs(120), "the server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn get(&self, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(self.address)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    }

    /// The `total` of the search `query` (with `_summary=count`).
    fn total(&self, query: &str) -> u64 {
        let response = self.get(&format!("/fhir/{query}")).unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1;
        let bundle: serde_json::Value = serde_json::from_str(body).unwrap();
        bundle["total"].as_u64().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

#[test]
fn base_mode_posts_the_bundles_to_a_running_server() {
    let server = Server::start();
    let base = format!("http://{}/fhir/", server.address);
    let mut args = vec!["--base", &base];
    args.extend(FIXTURES);
    assert_run(&import(&args), 0, FIRST_RUN);
    assert_run(&import(&args), 0, RERUN);
    assert_eq!(server.total("Patient?_summary=count"), 5);
    let study = "identifier=urn:dicom:uid|urn:oid:2.25.246813579024681357902468135790246813";
    assert_eq!(server.total(&format!("ImagingStudy?{study}&_summary=count")), 1);
    // Failed entries come back in the batch-response, with the outcome's location.
    let dir = temp_dir("base-failures");
    let bad = dir.join("bad.ndjson");
    std::fs::write(&bad, "{\"resourceType\":\"Patient\",\"gender\":\"unknown-to-fhir\"}\n")
        .unwrap();
    let bad = bad.to_str().unwrap();
    let output = import(&["--base", &base, bad]);
    assert_run(&output, 1, "1 resources from 1 files: 0 created, 0 updated, 0 unchanged, 1 failed");
    assert!(
        stderr(&output).contains(&format!("{bad}:1: 422 error Patient.gender: ")),
        "{output:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn postgres_imports_and_reruns_alike() {
    let schema = Schema::create("test_import");
    let url = schema.url();
    assert_run(&import(&["--database-url", &url, "tests/fixtures"]), 0, FIRST_RUN);
    assert_run(&import(&["--database-url", &url, "tests/fixtures"]), 0, RERUN);
    assert_eq!(stored(&url), (13, 13));
}
