//! A throwaway PostgreSQL for a test: `initdb` into a temporary directory (as the `postgres`
//! user when the tests run as root, which `initdb` refuses), `pg_ctl` on a free port of
//! 127.0.0.1 with its socket in that directory, stopped and removed when dropped.
//! PostgreSQL comes from Debian's packages (`/usr/lib/postgresql/<version>/bin`), or from
//! the directory `HOOKD_PG_BIN` names.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running PostgreSQL cluster of its own.
#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    /// Holds the cluster's files; removed after the server stops.
    dir: tempfile::TempDir,
    /// Server settings beyond the defaults (`-c name=value ...`).
    settings: String,
}

/// The directory holding `initdb` and `pg_ctl`: `HOOKD_PG_BIN`, else the newest Debian
/// installation.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HOOKD_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: `apt-get install postgresql` (.ci/run does this)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/<version>/bin/initdb")
}

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid() == 0
    }
}

/// `program args...`, as the `postgres` user when running as root.
fn command(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

impl TestPostgres {
    /// Creates and starts a cluster whose superuser `hookd` logs in without a password from
    /// 127.0.0.1 (trust authentication: the cluster listens on loopback only and lives as long
    /// as the test).
    pub fn start() -> Self {
        Self::start_with(|_| String::new())
    }

    /// [`TestPostgres::start`] with TLS on (clients may still connect without it), serving
    /// the certificate chain and key given in PEM.
    pub fn start_with_tls(certificate_pem: &str, key_pem: &str) -> Self {
        let (certificate_pem, key_pem) = (certificate_pem.to_owned(), key_pem.to_owned());
        Self::start_with(move |dir| {
            let certificate = dir.join("server.crt");
            let key = dir.join("server.key");
            std::fs::write(&certificate, &certificate_pem).expect("write the certificate");
            std::fs::write(&key, &key_pem).expect("write the key");
            // The server refuses a key others can read, or one it does not own.
            run(
                {
                    let mut chmod = Command::new("chmod");
                    chmod.arg("0600").arg(&key);
                    chmod
                },
                "chmod the key",
            );
            if is_root() {
                run(
                    {
                        let mut chown = Command::new("chown");
                        chown.arg("postgres:").arg(&certificate).arg(&key);
                        chown
                    },
                    "chown the certificate and key",
                );
            }
            format!(
                "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                certificate.display(),
                key.display()
            )
        })
    }

    /// Creates and starts a cluster with the settings `settings` returns, given the cluster's
    /// directory.
    fn start_with(settings: impl FnOnce(&Path) -> String) -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        if is_root() {
            run(
                {
                    let mut chown = Command::new("chown");
                    chown.arg("postgres:").arg(dir.path());
                    chown
                },
                "chown the cluster directory",
            );
        }
        let data = dir.path().join("data");
        let mut initdb = command(&bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "hookd", "-A", "trust", "-E", "UTF8", "--no-sync"]);
        run(initdb, "initdb");
        let settings = settings(dir.path());
        let postgres = TestPostgres {
            bin,
            data,
            port: free_port(),
            dir,
            settings,
        };
        postgres.resume();
        postgres
    }

    /// Stops the server at once (the cluster and its data stay), as a crash or an outage
    /// would: clients' connections drop and new ones are refused.
    pub fn halt(&self) {
        let mut pg_ctl = command(&self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        run(pg_ctl, "pg_ctl stop");
    }

    /// Starts the server (again) on the same port.
    pub fn resume(&self) {
        let mut pg_ctl = command(&self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
                self.port,
                self.dir.path().display(),
                self.settings
            ))
            .args(["-w", "-t", "30", "start"]);
        run(pg_ctl, "pg_ctl start");
    }

    /// Creates the empty database `name`; returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        self.url(name)
    }

    /// The URL of database `name` (the cluster starts with `postgres`).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://hookd@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let mut pg_ctl = command(&self.bin.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        // Best effort: a cluster that will not stop still goes with its directory.
        let _ = pg_ctl.output();
    }
}
