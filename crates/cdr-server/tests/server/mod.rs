//! A running `imaging-cdr serve` for the tests that start, kill and restart the built binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh folder of its own for a test.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "imaging-cdr-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `imaging-cdr serve`, killed (SIGKILL) when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) address: SocketAddr,
}

impl Server {
    /// Starts a server on `database_url` with `extra` flags, logging to `log` in `folder`, and waits until
    /// `/livez` answers.
    pub(crate) fn start(database_url: &str, folder: &Path, log: &str, extra: &[&str]) -> Server {
        let address = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_imaging-cdr"))
            .args(["serve", "--listen", &address.to_string(), "--database-url", database_url])
            .args(["--base-url", "http://cdr.test/fhir"])
            .args(extra)
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
    pub(crate) fn request(
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

    pub(crate) fn kill(mut self) {
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
