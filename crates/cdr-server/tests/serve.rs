//! `imaging-cdr serve` as a process on a free port with SQLite, driven over raw TCP: the header-read
//! timeout, the connection cap, the peer address behind `--trusted-proxies`, graceful shutdown with a
//! deadline, the settings refused at startup, configured cost limits, and the choice of `--auth`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is the test failing"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running server, killed when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
    folder: PathBuf,
}

impl Server {
    /// Starts `imaging-cdr serve` with `args` on a free port and waits until `/livez` answers.
    fn start(args: &[&str]) -> Server {
        Server::start_with(args, &[])
    }

    /// [`Server::start`] with these environment variables set.
    fn start_with(args: &[&str], environment: &[(&str, &str)]) -> Server {
        let address = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        Server::start_in(Server::new_folder(), address, args, environment)
    }

    /// Starts `imaging-cdr serve` with `args` listening on `listen` (its port must be free), reached on the
    /// loopback address, and waits until `/livez` answers.
    fn start_on(listen: SocketAddr, args: &[&str]) -> Server {
        Server::start_in(Server::new_folder(), listen, args, &[])
    }

    fn new_folder() -> PathBuf {
        let folder = std::env::temp_dir().join(format!(
            "imaging-cdr-serve-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(&folder).unwrap();
        folder
    }

    /// Starts `imaging-cdr serve` in `folder` (its working directory).
    fn start_in(
        folder: PathBuf,
        listen: SocketAddr,
        args: &[&str],
        environment: &[(&str, &str)],
    ) -> Server {
        let address = SocketAddr::from(([127, 0, 0, 1], listen.port()));
        let child = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
            .arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--database-url")
            .arg(format!("sqlite://{}/cdr.db", folder.display()))
            .args(args)
            .current_dir(&folder)
            .env_remove("PROFILES_DIR")
            .env_remove("BASE_URL")
            .env_remove("AUTH")
            .env_remove("AUTH_CONFIG")
            .env_remove("AUTH_KEY")
            .env("RUST_LOG", "info,tower_http=debug")
            .envs(environment.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(folder.join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server { child, address, folder };
        let started = Instant::now();
        loop {
            if let Ok(response) =
                server.try_request("GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                && response.starts_with("HTTP/1.1 200")
            {
                return server;
            }
            assert!(server.child.try_wait().unwrap().is_none(), "the server exited at startup");
            assert!(started.elapsed() < Duration::from_secs(120), "the server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the server has logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.folder.join("server.log")).unwrap()
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream
    }

    /// Sends `request` on a new connection and reads until the server closes it.
    fn try_request(&self, request: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(self.address)?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    }

    /// Sends SIGTERM and waits (at most `limit`) for the process to exit.
    fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.signal_term();
        self.wait_for_exit(limit, started)
    }

    fn signal_term(&self) {
        let status =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits (until `limit` after `started`) for the process to exit.
    fn wait_for_exit(&mut self, limit: Duration, started: Instant) -> (ExitStatus, Duration) {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(started.elapsed() < limit, "the server did not stop within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// Reads until `marker` has arrived on the connection (which stays open).
fn read_until(stream: &mut TcpStream, marker: &str) {
    let mut bytes = Vec::new();
    let mut chunk = [0_u8; 512];
    while !String::from_utf8_lossy(&bytes).contains(marker) {
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "closed before '{marker}': {}", String::from_utf8_lossy(&bytes));
        bytes.extend_from_slice(&chunk[..read]);
    }
}

/// Reads until the peer closes the connection; `Err` when it stays open past the read timeout.
fn read_until_closed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[test]
fn half_a_header_is_cut_off_after_the_header_read_timeout() {
    let server = Server::start(&["--header-read-timeout-seconds", "1"]);
    let mut stream = server.connect();
    let started = Instant::now();
    stream.write_all(b"GET /fhir/metadata HTTP/1.1\r\nHost: test\r\nAccept: appl").unwrap();
    read_until_closed(&mut stream).expect("the server closes the connection");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "closed after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "closed after {elapsed:?}");
    // An idle keep-alive connection is closed the same way.
    let mut stream = server.connect();
    stream.write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let started = Instant::now();
    let response = read_until_closed(&mut stream).expect("the server closes the idle connection");
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn connections_over_the_cap_wait_until_one_closes() {
    let server =
        Server::start(&["--max-http-connections", "1", "--header-read-timeout-seconds", "30"]);
    // The first connection is served (so it holds the only slot) and kept open.
    let mut first = server.connect();
    first.write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    read_until(&mut first, "\r\n\r\n");
    let mut second = server.connect();
    second.write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    second.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut byte = [0_u8; 1];
    let waiting = second.read(&mut byte).expect_err("no answer while the first connection is open");
    assert!(matches!(waiting.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{waiting}");
    drop(first);
    second.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let response = read_until_closed(&mut second).unwrap();
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"), "{response:?}");
}

#[test]
fn forwarded_headers_count_only_from_trusted_peers() {
    let request = "GET /fhir/metadata HTTP/1.1\r\nHost: backend:8080\r\nX-Forwarded-Proto: https\r\n\
                   X-Forwarded-Host: cdr.example.org\r\nConnection: close\r\n\r\n";
    let trusting = Server::start(&["--trusted-proxies", "10.0.0.0/8,127.0.0.1"]);
    let response = trusting.try_request(request).unwrap();
    assert!(response.contains(r#""url":"https://cdr.example.org/fhir""#), "{response}");
    let untrusting = Server::start(&["--trusted-proxies", "10.0.0.0/8"]);
    let response = untrusting.try_request(request).unwrap();
    assert!(response.contains(r#""url":"http://backend:8080/fhir""#), "{response}");
    let response = untrusting
        .try_request(
            "GET /fhir/metadata HTTP/1.1\r\nHost: good@evil.example\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(!response.contains("evil.example/fhir"), "{response}");
}

#[test]
fn shutdown_waits_for_requests_at_most_the_shutdown_timeout() {
    let mut server = Server::start(&[
        "--shutdown-timeout-seconds",
        "1",
        "--body-read-timeout-seconds",
        "60",
        "--request-timeout-seconds",
        "60",
    ]);
    let mut stream = server.connect();
    // A create whose body never finishes: a request in flight for as long as the client likes.
    // `Expect: 100-continue` makes the server say when the handler starts reading the body, so the request
    // is known to be in flight before the signal.
    stream
        .write_all(
            b"POST /fhir/Patient HTTP/1.1\r\nHost: test\r\nContent-Type: application/fhir+json\r\n\
              Content-Length: 100\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    read_until(&mut stream, "100 Continue");
    stream.write_all(b"{\"resourceType\":").unwrap();
    let (status, elapsed) = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(elapsed >= Duration::from_millis(900), "stopped after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "stopped after {elapsed:?}");
}

#[test]
fn shutdown_lets_a_request_in_flight_finish() {
    let mut server = Server::start(&["--shutdown-timeout-seconds", "30"]);
    let mut stream = server.connect();
    let body = br#"{"resourceType":"Patient","active":true}"#;
    stream
        .write_all(
            format!(
                "POST /fhir/Patient HTTP/1.1\r\nHost: test\r\nContent-Type: application/fhir+json\r\n\
                 Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    read_until(&mut stream, "100 Continue");
    let started = Instant::now();
    server.signal_term();
    // The listener closes at the signal; the request already in flight is still answered.
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(server.address).is_ok() {
        assert!(Instant::now() < deadline, "the server still accepts connections");
        std::thread::sleep(Duration::from_millis(20));
    }
    stream.write_all(body).unwrap();
    let response = String::from_utf8(read_until_closed(&mut stream).unwrap()).unwrap();
    assert!(response.contains("HTTP/1.1 201 Created"), "{response}");
    let (status, _) = server.wait_for_exit(Duration::from_secs(20), started);
    assert!(status.success(), "{status}");
}

#[test]
fn a_config_file_sets_what_the_command_line_and_environment_leave_unset() {
    let folder = std::env::temp_dir().join(format!("imaging-cdr-config-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("imaging-cdr.toml");
    std::fs::write(
        &file,
        "max-body-bytes = 64\nmetrics = false\nmax-search-value-bytes = 4\n\
         cors-allowed-origins = \"https://viewer.example.org\"\nallowed-hosts = [\"test\"]\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    // The command line overrides the file's max-search-value-bytes.
    let server = Server::start(&["--config", config, "--max-search-value-bytes", "100"]);
    let request = |text: &str| server.try_request(text).unwrap();
    let body = r#"{"resourceType":"Patient","name":[{"family":"A name longer than the limit"}]}"#;
    let create_request = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: test\r\nContent-Type: application/fhir+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let create = request(&create_request);
    assert!(create.starts_with("HTTP/1.1 413"), "{create}");
    let metrics = request("GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert!(metrics.starts_with("HTTP/1.1 404"), "{metrics}");
    let search = request(
        "GET /fhir/Patient?family=abcdefgh HTTP/1.1\r\nHost: test\r\n\
         Origin: https://viewer.example.org\r\nConnection: close\r\n\r\n",
    );
    assert!(search.starts_with("HTTP/1.1 200"), "{search}");
    assert!(
        search
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: https://viewer.example.org"),
        "{search}"
    );
    let other_host =
        request("GET /fhir/metadata HTTP/1.1\r\nHost: elsewhere\r\nConnection: close\r\n\r\n");
    assert!(other_host.starts_with("HTTP/1.1 400"), "{other_host}");

    drop(server);

    // The environment overrides the file too.
    let server = Server::start_with(&["--config", config], &[("MAX_BODY_BYTES", "1000")]);
    let create = server.try_request(&create_request).unwrap();
    assert!(create.starts_with("HTTP/1.1 201"), "{create}");
    drop(server);

    // An unknown key stops the server, naming it and the file.
    std::fs::write(&file, "max-body-bytes = 64\nmax-body-byte = 1\n").unwrap();
    let text = refused(&["--config", config]);
    assert!(text.contains("unknown key 'max-body-byte'") && text.contains(config), "{text}");
    std::fs::remove_dir_all(&folder).unwrap();
}

#[test]
fn request_logs_name_query_parameters_but_never_their_values() {
    let mut server = Server::start(&[]);
    let response = server
        .try_request(
            "GET /fhir/Patient?identifier=https%3A%2F%2Fehealthontario.ca%7C9876543217&family=Tremblay \
             HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    server.terminate(Duration::from_secs(20));
    let log = server.log();
    assert!(log.contains("identifier=…&family=…"), "{log}");
    for value in ["9876543217", "Tremblay", "ehealthontario"] {
        assert!(!log.contains(value), "{value} in {log}");
    }
}

#[test]
fn an_idle_server_stops_at_once() {
    let mut server = Server::start(&["--shutdown-timeout-seconds", "30"]);
    let (status, elapsed) = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}");
    assert!(elapsed < Duration::from_secs(5), "stopped after {elapsed:?}");
}

/// Runs `imaging-cdr serve` with settings that must be refused before it opens anything.
fn refused(args: &[&str]) -> String {
    let (status, stderr) = refused_status(args);
    assert!(status != Some(0), "{args:?} started");
    stderr
}

/// The exit status of `imaging-cdr serve` with `args`, which must be refused before it opens anything.
fn refused_status(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
        .arg("serve")
        .args(["--database-url", "sqlite:///nonexistent-folder/never-opened.db"])
        .args(args)
        .env_remove("BASE_URL")
        .env_remove("AUTH")
        .env_remove("AUTH_CONFIG")
        .env_remove("ACCESS_POLICY")
        .output()
        .unwrap();
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_non_loopback_address_needs_an_explicit_auth_choice() {
    let (status, text) = refused_status(&["--listen", "0.0.0.0:8080"]);
    assert_eq!(status, Some(2), "{text}");
    assert!(text.contains("without an explicit --auth choice"), "{text}");
    let (status, text) = refused_status(&["--listen", "127.0.0.1:8080", "--auth", "smart"]);
    assert_eq!(status, Some(2), "{text}");
    assert!(text.contains("--auth smart needs --auth-config"), "{text}");
    // An explicit --auth none serves there, with a warning.
    let port = TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port();
    let server = Server::start_on(SocketAddr::from(([0, 0, 0, 0], port)), &["--auth", "none"]);
    let response = server
        .try_request("GET /fhir/metadata HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(server.log().contains("--auth none on a non-loopback address"), "{}", server.log());
}

#[test]
fn auth_smart_generates_its_key_and_requires_tokens() {
    let folder = Server::new_folder();
    let config = r#"{"fhir_base_url": "http://cdr.test/fhir",
        "clients": [{"client_id": "ris", "jwks": {"keys": []}, "scopes": ["system/*.rs"]}]}"#;
    std::fs::write(folder.join("auth.json"), config).unwrap();
    let address = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = Server::start_in(
        folder.clone(),
        address,
        &["--auth", "smart", "--auth-config", "auth.json", "--auth-key", "keys/signing.pem"],
        &[],
    );
    let key = std::fs::read_to_string(folder.join("keys/signing.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(folder.join("keys/signing.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let request = |path: &str| {
        server
            .try_request(&format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"))
            .unwrap()
    };
    let response = request("/fhir/Patient");
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.to_ascii_lowercase().contains("www-authenticate: bearer"), "{response}");
    let response = request("/fhir/.well-known/smart-configuration");
    assert!(response.contains(r#""token_endpoint":"http://cdr.test/auth/token""#), "{response}");
    drop(server);
    // A scope this server does not honour is refused at startup.
    let folder = Server::new_folder();
    let config = r#"{"fhir_base_url": "http://cdr.test/fhir",
        "clients": [{"client_id": "portal", "jwks": {"keys": []}, "scopes": ["patient/*.read"]}]}"#;
    std::fs::write(folder.join("auth.json"), config).unwrap();
    let path = folder.join("auth.json");
    let (status, text) = refused_status(&[
        "--auth",
        "smart",
        "--auth-config",
        path.to_str().unwrap(),
        "--auth-key",
        folder.join("key.pem").to_str().unwrap(),
    ]);
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("grants system/ scopes only"), "{text}");
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn the_access_policy_is_read_at_startup() {
    let folder = Server::new_folder();
    let config = r#"{"fhir_base_url": "http://cdr.test/fhir"}"#;
    std::fs::write(folder.join("auth.json"), config).unwrap();
    let policy = r#"{"eligible": [{"name": "physician (CPSO licence)",
        "system": "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-license-physician"}]}"#;
    std::fs::write(folder.join("policy.json"), policy).unwrap();
    std::fs::write(folder.join("imaging-cdr.toml"), "access-policy = \"policy.json\"\n").unwrap();
    let address = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = Server::start_in(
        folder.clone(),
        address,
        &["--auth", "smart", "--auth-config", "auth.json", "--config", "imaging-cdr.toml"],
        &[],
    );
    let response = server
        .try_request(
            "GET /fhir/.well-known/smart-configuration HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    assert!(response.contains(r#""permission-user""#), "{response}");
    drop(server);
    // A malformed policy, or a policy without --auth smart, is refused.
    let folder = Server::new_folder();
    std::fs::write(folder.join("auth.json"), config).unwrap();
    std::fs::write(folder.join("policy.json"), r#"{"eligible": [{"name": "nobody"}]}"#).unwrap();
    let auth = folder.join("auth.json");
    let policy = folder.join("policy.json");
    let key = folder.join("key.pem");
    let (status, text) = refused_status(&[
        "--auth",
        "smart",
        "--auth-config",
        auth.to_str().unwrap(),
        "--auth-key",
        key.to_str().unwrap(),
        "--access-policy",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("needs a 'system', a 'qualification', or both"), "{text}");
    let text = refused(&["--access-policy", policy.to_str().unwrap()]);
    assert!(text.contains("--access-policy needs --auth smart"), "{text}");
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn bad_settings_are_refused_at_startup() {
    assert!(refused(&["--max-page-size", "0"]).contains("--max-page-size"));
    assert!(refused(&["--default-page-size", "0"]).contains("--default-page-size"));
    let text = refused(&["--default-page-size", "50", "--max-page-size", "10"]);
    assert!(text.contains("--default-page-size 50 is larger than --max-page-size 10"), "{text}");
    for base in
        ["cdr.example.org/fhir", "ftp://cdr.example.org/fhir", "https://a@evil.example/fhir"]
    {
        assert!(refused(&["--base-url", base]).contains("--base-url"), "{base}");
    }
    assert!(refused(&["--trusted-proxies", "10.0.0.0/40"]).contains("--trusted-proxies"));
    assert!(refused(&["--allowed-hosts", "good@evil.example"]).contains("--allowed-hosts"));
    assert!(refused(&["--max-http-connections", "0"]).contains("--max-http-connections"));
    assert!(refused(&["--header-read-timeout-seconds", "0"]).contains("--header-read-timeout"));
}

#[test]
fn configured_cost_limits_hold() {
    let server = Server::start(&[
        "--max-sort-keys",
        "1",
        "--max-contained-resources",
        "1",
        "--max-bundle-entries",
        "1",
        "--max-search-value-bytes",
        "8",
    ]);
    let long_value = server
        .try_request(
            "GET /fhir/Patient?family=abcdefghi HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    assert!(long_value.starts_with("HTTP/1.1 400"), "{long_value}");
    assert!(long_value.contains("max_value_bytes"), "{long_value}");
    let short_value = server
        .try_request(
            "GET /fhir/Patient?family=abcdefgh HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    assert!(short_value.starts_with("HTTP/1.1 200"), "{short_value}");
    let sorted = server
        .try_request(
            "GET /fhir/Patient?_sort=family,given HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    assert!(sorted.starts_with("HTTP/1.1 400"), "{sorted}");
    assert!(sorted.contains("too-costly"), "{sorted}");
    let body = r##"{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"a"},{"resourceType":"Organization","id":"b"}],"generalPractitioner":[{"reference":"#a"},{"reference":"#b"}]}"##;
    let create = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: test\r\nContent-Type: application/fhir+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let refused = server.try_request(&create).unwrap();
    assert!(refused.starts_with("HTTP/1.1 422"), "{refused}");
    assert!(refused.contains("more than 1 contained resources"), "{refused}");
    let entry = r#"{"request":{"method":"GET","url":"Patient"}}"#;
    let bundle = format!(r#"{{"resourceType":"Bundle","type":"batch","entry":[{entry},{entry}]}}"#);
    let batch = format!(
        "POST /fhir HTTP/1.1\r\nHost: test\r\nContent-Type: application/fhir+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{bundle}",
        bundle.len()
    );
    let refused = server.try_request(&batch).unwrap();
    assert!(refused.starts_with("HTTP/1.1 422"), "{refused}");
    assert!(refused.contains("at most 1 in one Bundle"), "{refused}");
}

/// `--mode micdr` turns on the contribution rules, strict validation and the viewer-search rule together.
#[test]
fn micdr_mode_is_one_switch() {
    let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/../../profiles");
    let server = Server::start(&["--mode", "micdr", "--profiles-dir", profiles]);
    let search = server
        .try_request("GET /fhir/ImagingStudy?modality=CT HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(search.starts_with("HTTP/1.1 400"), "{search}");
    let bundle = r#"{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}"#;
    let post = format!(
        "POST /fhir HTTP/1.1\r\nHost: test\r\nContent-Type: application/fhir+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{bundle}",
        bundle.len()
    );
    let refused = server.try_request(&post).unwrap();
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(refused.contains("conditional PUTs"), "{refused}");
    let metadata = server
        .try_request("GET /fhir/metadata HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(
        metadata.contains("ca-on-mi-profile-patient"),
        "strict mode declares the Ontario profiles"
    );

    let clash = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
        .args(["serve", "--mode", "micdr", "--update-create", "--profiles-dir", profiles])
        .args(["--database-url", "sqlite::memory:", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!clash.status.success());
    assert!(String::from_utf8_lossy(&clash.stderr).contains("--update-create"));
}

/// `--registry-file` loads the known patients for the miCDR registry check; a malformed file, or the flag
/// without `--mode micdr`, stops the server at start.
#[test]
fn a_registry_file_is_checked_in_micdr_mode() {
    const HCN: &str = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn";
    let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/../../profiles");
    let folder = std::env::temp_dir().join(format!("imaging-cdr-registry-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let registry = folder.join("registry.ndjson");
    std::fs::write(
        &registry,
        format!(
            "{{\"kind\":\"patient\",\"system\":\"{HCN}\",\"value\":\"9876543217\",\"birthDate\":\"1970-01-01\"}}\n"
        ),
    )
    .unwrap();
    let registry_arg = registry.to_str().unwrap();
    let server = Server::start(&[
        "--mode",
        "micdr",
        "--profiles-dir",
        profiles,
        "--registry-file",
        registry_arg,
    ]);
    let body = format!(
        r#"{{"resourceType":"Patient","identifier":[{{"system":"{HCN}","value":"9876543217"}}],"birthDate":"1999-01-01"}}"#
    );
    let put = format!(
        "PUT /fhir/Patient?identifier={HCN}|9876543217 HTTP/1.1\r\nHost: test\r\nContent-Type: application/fhir+json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let refused = server.try_request(&put).unwrap();
    assert!(refused.starts_with("HTTP/1.1 422"), "{refused}");
    assert!(refused.contains("Patient.birthDate") && refused.contains("1970-01-01"), "{refused}");

    let start = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
            .args(["serve", "--profiles-dir", profiles])
            .args(["--database-url", "sqlite::memory:", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap()
    };
    let open = start(&["--registry-file", registry_arg]);
    assert!(!open.status.success());
    assert!(String::from_utf8_lossy(&open.stderr).contains("--mode micdr"));
    std::fs::write(&registry, "{\"kind\":\"clinic\"}\n").unwrap();
    let malformed = start(&["--mode", "micdr", "--registry-file", registry_arg]);
    assert!(!malformed.status.success());
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("line 1"));
    std::fs::remove_dir_all(&folder).unwrap();
}
