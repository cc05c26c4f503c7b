//! `cargo xtask cluster`: PostgreSQL and several hookd nodes on 127.0.0.1, for trying the
//! multi-node mode. PostgreSQL runs from Debian's packages (or `HOOKD_PG_BIN`) in a temporary
//! directory, in the foreground of this task like the nodes, so Ctrl-C stops everything;
//! Enter stops it too and removes the directory.

use std::io::{BufRead as _, Read as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Children that are stopped (SIGTERM, then waited for) when this goes out of scope.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        // Nodes first, PostgreSQL (the first child) last.
        for child in self.0.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// The newest Debian PostgreSQL's `bin`, or `HOOKD_PG_BIN`.
fn pg_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("HOOKD_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| {
            "PostgreSQL is not installed: `apt-get install postgresql` (or set HOOKD_PG_BIN \
             to the directory holding initdb and postgres)"
                .to_owned()
        })?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| "no /usr/lib/postgresql/<version>/bin/initdb".to_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program`, as the `postgres` user when this runs as root (PostgreSQL refuses root).
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| format!("no free port: {error}"))
}

/// Base64url without padding of `bytes`.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|error| format!("/dev/urandom: {error}"))?;
    Ok(bytes)
}

/// Waits until something accepts connections on `port` of 127.0.0.1.
fn wait_for_port(port: u16, what: &str) -> Result<(), String> {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!(
                "{what} did not listen on 127.0.0.1:{port} within 30 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Runs PostgreSQL and `nodes` hookd nodes until Enter or Ctrl-C.
pub fn cluster(args: &[String]) -> Result<(), String> {
    let nodes: usize = match args.first() {
        None => 3,
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| (1..=9).contains(n))
            .ok_or_else(|| format!("cluster: {n:?} is not a number of nodes from 1 to 9"))?,
    };
    let bin = pg_bin()?;
    super::run(super::cargo().args(["build", "--quiet", "--package", "hookd"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| super::root().join("target"), PathBuf::from);
    let hookd = target.join("debug").join("hookd");

    let dir = std::env::temp_dir().join(format!("hookd-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    if is_root() {
        super::run(Command::new("chown").arg("postgres:").arg(&dir))?;
    }
    let data = dir.join("postgres");
    super::run(
        as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "hookd", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null()),
    )?;
    let port = free_port()?;
    let mut children = Children(Vec::new());
    children.0.push(
        as_postgres(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .stderr(std::fs::File::create(dir.join("postgres.log")).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|error| format!("could not start postgres: {error}"))?,
    );
    wait_for_port(port, "PostgreSQL")?;
    // The server takes a moment after it listens before it accepts logins.
    let started = Instant::now();
    while !as_postgres(&bin.join("createdb"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "hookd",
            "hookd",
        ])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
    {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("could not create the database hookd".to_owned());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = format!("postgres://hookd@127.0.0.1:{port}/hookd");
    let key_file = dir.join("secrets.key");
    std::fs::write(&key_file, base64url(&random_bytes::<32>()?))
        .map_err(|error| format!("{}: {error}", key_file.display()))?;
    let admin_secret = base64url(&random_bytes::<24>()?);

    let ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect::<Result<_, _>>()?;
    let issuer = format!("http://127.0.0.1:{}/", ports[0]);
    for (n, node_port) in ports.iter().enumerate() {
        children.0.push(
            Command::new(&hookd)
                .args(["serve", "--listen", &format!("127.0.0.1:{node_port}")])
                .args([
                    "--issuer",
                    &issuer,
                    "--database",
                    &url,
                    "--secrets-key-file",
                ])
                .arg(&key_file)
                .arg("--data-dir")
                .arg(dir.join(format!("node-{}", n + 1)))
                .args(["--node-name", &format!("node-{}", n + 1)])
                .env("HOOKD_ADMIN_CLIENT_ID", "cluster-admin")
                .env("HOOKD_ADMIN_CLIENT_SECRET", &admin_secret)
                .env_remove("HOOKD_SECRETS_KEY")
                .env_remove("HOOKD_DATABASE_URL")
                .stderr(
                    std::fs::File::create(dir.join(format!("node-{}.log", n + 1)))
                        .map_err(|e| e.to_string())?,
                )
                .spawn()
                .map_err(|error| format!("could not start {}: {error}", hookd.display()))?,
        );
    }
    for node_port in &ports {
        wait_for_port(*node_port, "a hookd node")?;
    }
    let first = ports[0];
    let last = ports[ports.len() - 1];
    println!(
        "PostgreSQL: {url}\n\
         nodes: {}\n\
         issuer (every node's): {issuer}\n\
         admin: client_id cluster-admin, client_secret {admin_secret}\n\
         logs and data: {}\n\n\
         A Management API token from node 1, and the same credentials working on node {nodes}:\n  \
         curl -s http://127.0.0.1:{first}/oauth/token -d grant_type=client_credentials \\\n    \
         -d client_id=cluster-admin -d client_secret={admin_secret} -d audience={issuer}api/v2/\n  \
         curl -s http://127.0.0.1:{last}/oauth/token -d grant_type=client_credentials \\\n    \
         -d client_id=cluster-admin -d client_secret={admin_secret} -d audience={issuer}api/v2/\n\n\
         Deploy a hook through node 1 (hookd hooks deploy ... --server http://127.0.0.1:{first} \
         --admin-client-id cluster-admin) and the other nodes run it within a second.\n\
         Every node, the revision it applied and its heartbeat:\n  \
         HOOKD_ADMIN_CLIENT_SECRET={admin_secret} hookd cluster status \\\n    \
         --server http://127.0.0.1:{last} --admin-client-id cluster-admin\n\
         Press Enter (or Ctrl-C) to stop everything.",
        ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
            .join(" "),
        dir.display()
    );
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
