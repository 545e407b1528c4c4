//! The PostgreSQL server the tests use, one implementation for every test binary of the workspace.
//!
//! [`admin_url`] is `TEST_DATABASE_URL` when it is set, and nothing else happens. Otherwise it is the default
//! address (`postgres://postgres@127.0.0.1:5432/test`, or `TEST_DATABASE_DEFAULT_URL`) when something accepts
//! connections there; when nothing does, it is a throwaway cluster started with `initdb` and `pg_ctl`, as
//! `.ci/run` does (through `runuser -u postgres` when the tests run as root, since initdb refuses root).
//!
//! The cluster lives in a well-known folder of the temp dir, one per user
//! (`imaging-cdr-test-postgres-<uid>`: `data/`, `log`, the socket and a `lock` file). The first caller of a
//! run starts it under the lock, so the test binaries and threads that ask at the same time start it once;
//! later callers, and later runs, find its postmaster alive and reuse it; a stopped one is started again, and
//! one that no longer starts (another PostgreSQL version's) is made anew. It is left running when the tests
//! end, for the next run, and goes with the temp dir (a reboot) or with `pg_ctl -D <folder>/data stop`.
//! Each test makes and drops a schema of its own in it, as on any other server.

use std::fs::{self, File};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The address tried when `TEST_DATABASE_URL` is not set (unless `TEST_DATABASE_DEFAULT_URL` names another).
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The admin URL of the PostgreSQL server in which the tests make their schemas, decided once per process.
///
/// # Panics
/// When `TEST_DATABASE_URL` is not set, nothing answers at the default address and no throwaway cluster can
/// be started: the message says why and what to install or set. The PostgreSQL tests never skip.
pub fn admin_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            return url;
        }
        let default = std::env::var("TEST_DATABASE_DEFAULT_URL")
            .unwrap_or_else(|_| DEFAULT_URL.to_owned());
        if answers(&default) {
            return default;
        }
        throwaway(&cluster_folder()).unwrap_or_else(|why| {
            panic!(
                "PostgreSQL tests need a server: nothing answers at {default} and no throwaway cluster \
                 could be started: {why}. Set TEST_DATABASE_URL to a server's URL, start PostgreSQL at \
                 {default}, or install PostgreSQL's server programs (initdb and pg_ctl, e.g. `apt install \
                 postgresql`) so that the tests start their own"
            )
        })
    })
}

/// Whether something accepts TCP connections at the host and port of `url`. A URL whose address this does
/// not read (a Unix socket's, say) counts as answering: connecting to it will say what is wrong.
fn answers(url: &str) -> bool {
    let Some((host, port)) = address(url) else {
        return true;
    };
    let Ok(addresses) = (host.as_str(), port).to_socket_addrs() else {
        return false;
    };
    addresses
        .into_iter()
        .any(|address| TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok())
}

/// The host and port of a `postgres://user@host:port/database?…` URL (port 5432 when it has none).
fn address(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => 5432,
    };
    Some((host.to_owned(), port))
}

/// The URL of the throwaway cluster's server on `port`.
fn cluster_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/postgres")
}

/// The throwaway cluster's folder: one per user, so that runs of one user share it and users never do.
fn cluster_folder() -> PathBuf {
    let user = effective_uid().map_or_else(
        || std::env::var("USER").unwrap_or_else(|_| "user".to_owned()),
        |uid| uid.to_string(),
    );
    std::env::temp_dir().join(format!("imaging-cdr-test-postgres-{user}"))
}

/// The user id the process runs as: the owner of `/proc/self` (none where there is no `/proc`).
fn effective_uid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|metadata| metadata.uid())
}

/// The URL of the cluster in `folder`: the running one, or one started now (made first if need be).
fn throwaway(folder: &Path) -> Result<String, String> {
    fs::create_dir_all(folder).map_err(|error| format!("{}: {error}", folder.display()))?;
    let lock_path = folder.join("lock");
    let lock =
        File::create(&lock_path).map_err(|error| format!("{}: {error}", lock_path.display()))?;
    // Held until this returns: whoever comes next finds the cluster running.
    lock.lock().map_err(|error| format!("{}: {error}", lock_path.display()))?;
    if let Some(port) = running_port(folder) {
        return Ok(cluster_url(port));
    }
    let programs = Programs::find(folder)?;
    let data = folder.join("data");
    if data.join("PG_VERSION").is_file() {
        // A cluster of an earlier run. One that no longer starts (made by another PostgreSQL version, say) is
        // made again: it holds nothing but leftover test schemas.
        if let Ok(port) = start(&programs, folder) {
            return Ok(cluster_url(port));
        }
        // Whatever it started (a server still recovering when pg_ctl gave up waiting) goes first.
        let mut stop = programs.command("pg_ctl");
        stop.arg("-D").arg(&data).args(["-m", "immediate", "stop"]);
        let _ = run(stop);
    }
    // Also a half-made cluster (initdb interrupted) is made again.
    let _ = fs::remove_dir_all(&data);
    let mut initdb = programs.command("initdb");
    initdb.arg("-D").arg(&data).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
    run(initdb)?;
    start(&programs, folder).map(cluster_url)
}

/// Starts the server of the cluster in `folder` on a free port and waits until it accepts connections.
fn start(programs: &Programs, folder: &Path) -> Result<u16, String> {
    let port = free_port()?;
    // A server for tests only: durability is not wanted, speed is.
    let options = format!(
        "-p {port} -k '{}' -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off",
        folder.display()
    );
    let log = folder.join("log");
    let mut pg_ctl = programs.command("pg_ctl");
    pg_ctl.arg("-D").arg(folder.join("data")).arg("-l").arg(&log).arg("-o").arg(options);
    pg_ctl.args(["-w", "-t", "60", "start"]);
    run(pg_ctl).map_err(|why| format!("{why} (the server's log is {})", log.display()))?;
    Ok(port)
}

/// The port of the cluster in `folder` when its postmaster is up and accepts connections.
fn running_port(folder: &Path) -> Option<u16> {
    // postmaster.pid: the pid, the data folder, the start time, the port, …
    let pid_file = fs::read_to_string(folder.join("data").join("postmaster.pid")).ok()?;
    let port = pid_file.lines().nth(3)?.trim().parse().ok()?;
    answers(&cluster_url(port)).then_some(port)
}

/// A TCP port of 127.0.0.1 that nothing listens on now.
fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|error| format!("no free port: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| format!("no free port: {error}"))
}

/// PostgreSQL's server programs, and whether they run as the `postgres` user (when the tests run as root).
struct Programs {
    bin: PathBuf,
    as_postgres: bool,
}

impl Programs {
    /// The folder holding both initdb and pg_ctl; as root, `folder` is handed to the `postgres` user.
    fn find(folder: &Path) -> Result<Programs, String> {
        let bin = server_bin().ok_or(
            "initdb and pg_ctl are not installed (looked on PATH, in `pg_config --bindir` and in \
             /usr/lib/postgresql/*/bin)",
        )?;
        let as_postgres = effective_uid() == Some(0);
        if as_postgres {
            let mut probe = Command::new("runuser");
            probe.args(["-u", "postgres", "--", "true"]);
            run(probe).map_err(|why| {
                format!(
                    "the tests run as root, which initdb refuses, and `runuser -u postgres` does not work \
                     ({why}): install util-linux's runuser and make a `postgres` user (PostgreSQL's \
                     packages make it), or run the tests as another user"
                )
            })?;
            let mut chown = Command::new("chown");
            chown.arg("postgres").arg(folder);
            run(chown)?;
        }
        Ok(Programs { bin, as_postgres })
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

/// The first folder with both `initdb` and `pg_ctl`: on PATH, then `pg_config --bindir`, then Debian's
/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn server_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").stderr(Stdio::null()).output()
        && output.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    candidates.extend(versions.into_iter().map(|(_, bin)| bin));
    candidates.into_iter().find(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
}

/// Runs `command` to its end; its standard error is the reason when it fails.
fn run(mut command: Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|error| format!("{command:?}: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_read_from_the_url() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/test", Some(("127.0.0.1", 5432))),
            ("postgresql://u:p%40ss@db.example:6543/x?sslmode=disable", Some(("db.example", 6543))),
            ("postgres://localhost/test", Some(("localhost", 5432))),
            ("postgres://postgres@[::1]:5433/test", Some(("::1", 5433))),
            ("postgres://postgres@127.0.0.1:5432?options=-c", Some(("127.0.0.1", 5432))),
            ("postgres:///test?host=/var/run/postgresql", None),
            ("postgres://h:notaport/test", None),
            ("sqlite://cdr.db", None),
        ];
        for (url, expected) in cases {
            let expected = expected.map(|(host, port)| (host.to_owned(), port));
            assert_eq!(address(url), expected, "{url}");
        }
    }

    #[test]
    fn a_port_answers_only_while_something_listens_on_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = cluster_url(listener.local_addr().unwrap().port());
        assert!(answers(&url));
        drop(listener);
        assert!(!answers(&url));
    }
}
