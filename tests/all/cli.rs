//! `hookd hooks test`, the local runner, as a user runs it: the binary, a compiled hook, the
//! sample event file that ships with the examples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hookd_tests::{HOSTILE, SEED, admin_cli, hookd_binary};

fn sample_event() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-examples/events/credentials-exchange.json")
}

fn run(args: &[&str]) -> Output {
    let cache = tempfile::tempdir().expect("tempdir");
    Command::new(hookd_binary())
        .args(args)
        .env("HOOKD_CACHE_DIR", cache.path())
        .output()
        .expect("run hookd")
}

#[test]
fn the_seed_hook_runs_on_the_sample_event() {
    let event = sample_event();
    let out = run(&[
        "hooks",
        "test",
        SEED,
        "--event",
        event.to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("outcome  allow"), "{text}");
    assert!(
        text.contains("scope    read:reports write:reports extra"),
        "{text}"
    );
    assert!(text.contains(r#""https://foo.com/claim": "bar""#), "{text}");
    assert!(text.contains("compiled in"), "{text}");
}

#[test]
fn json_output_reports_the_failure_kind_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let event = dir.path().join("loop.json");
    std::fs::write(&event, r#"{"client": {"id": "c"}, "audience": "loop"}"#).expect("write");
    let out = run(&[
        "hooks",
        "test",
        HOSTILE,
        "--event",
        event.to_str().expect("utf-8"),
        "--fuel",
        "1000000",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["outcome"], "error");
    assert_eq!(report["error"]["kind"], "out_of_fuel");
    assert_eq!(report["fuel_used"], 1_000_000);
}

/// Kills the child process when the test ends, whatever happens.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_curl_command_that_gets_a_token() {
    use std::io::BufRead as _;

    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(hookd_binary())
        .args([
            "demo",
            "--hook",
            SEED,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("demo"))
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start hookd demo");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let mut stderr = child.0.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        let mut log = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut log);
        log
    });
    // Read the banner, then keep draining stdout for as long as the demo runs.
    let (found, curl) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.trim_start().starts_with("curl ") {
                let _ = found.send(line);
            }
        }
    });
    let curl_line = tokio::task::spawn_blocking(move || curl.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("reader")
        .expect("the demo prints a curl line");

    // Take the URL, the -u credentials and the -d fields from the printed command.
    let words: Vec<&str> = curl_line.split_whitespace().collect();
    let url = words
        .iter()
        .find(|w| w.starts_with("http://"))
        .expect("url");
    let credentials = words
        .windows(2)
        .find(|w| w[0] == "-u")
        .map(|w| w[1].trim_matches('\''))
        .expect("-u");
    let (id, secret) = credentials.split_once(':').expect("id:secret");
    let fields: Vec<(&str, &str)> = words
        .windows(2)
        .filter(|w| w[0] == "-d")
        .filter_map(|w| w[1].split_once('='))
        .collect();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let body = hookd_tests::form_body(&fields);
    let basic = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let reply = hookd_tests::send(
        http::Method::POST,
        url,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &basic),
        ],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["scope"], "read:reports write:reports extra");
    let token = reply.json["access_token"].as_str().expect("token");
    let payload = token.split('.').nth(1).expect("payload");
    let claims: serde_json::Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64url"),
        )
        .expect("json")
    };
    assert_eq!(claims["https://foo.com/claim"], "bar");

    // The log went to a pipe, so it is plain text: no terminal colour codes.
    drop(child);
    let log = String::from_utf8(log.join().expect("stderr reader")).expect("utf-8 log");
    assert!(log.contains(" INFO "), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );

    // Everything the server wrote is its user's alone, whatever the umask it was started
    // with (this test's is the usual 022): the database holds signing keys and secrets.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fn check(path: &Path, found: &mut usize) {
            let metadata = std::fs::symlink_metadata(path).expect("metadata");
            let mode = metadata.permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
            *found += 1;
            if metadata.is_dir() {
                for entry in std::fs::read_dir(path).expect("read dir") {
                    check(&entry.expect("entry").path(), found);
                }
            }
        }
        let mut found = 0;
        check(&dir.path().join("demo"), &mut found);
        assert!(found > 5, "only {found} files were checked");
    }
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_sets_up_a_client_and_deploys_and_rolls_back_a_hook() {
    use hookd_tests::DENY_BY_AUDIENCE;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = hookd_tests::TestServer::start(dir.path()).await;
    let d = dir.path();

    let keys = stdout_json(&admin_cli(&server, d, &["keys", "list", "--json"]).await);
    assert_eq!(keys.as_array().expect("keys").len(), 6);

    let client = stdout_json(
        &admin_cli(
            &server,
            d,
            &[
                "clients",
                "create",
                "--name",
                "cli-svc",
                "--metadata",
                "tier=gold",
                "--json",
            ],
        )
        .await,
    );
    let (id, secret) = (
        client["client_id"].as_str().expect("id").to_owned(),
        client["client_secret"].as_str().expect("secret").to_owned(),
    );
    let audience = "https://cli.example/";
    stdout_json(
        &admin_cli(
            &server,
            d,
            &[
                "apis",
                "create",
                "--identifier",
                audience,
                "--scope",
                "read:x",
                "--json",
            ],
        )
        .await,
    );
    stdout_json(
        &admin_cli(
            &server,
            d,
            &[
                "grants",
                "create",
                "--client-id",
                &id,
                "--audience",
                audience,
                "--scope",
                "read:x",
                "--json",
            ],
        )
        .await,
    );

    let deploy = admin_cli(
        &server,
        d,
        &["hooks", "deploy", SEED, "--name", "cli-hook", "--enable"],
    )
    .await;
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    assert!(String::from_utf8_lossy(&deploy.stdout).contains("enabled: running now"));

    let token = || {
        let (id, secret) = (id.clone(), secret.clone());
        let server = &server;
        async move {
            hookd_tests::token_form(
                server,
                Some((&id, &secret)),
                &[("grant_type", "client_credentials"), ("audience", audience)],
            )
            .await
        }
    };
    assert_eq!(token().await.json["scope"], "read:x extra");

    // A second deploy replaces the running code at once.
    let again = admin_cli(
        &server,
        d,
        &["hooks", "deploy", DENY_BY_AUDIENCE, "--name", "cli-hook"],
    )
    .await;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let denied = token().await;
    assert_eq!(denied.status, 400, "{}", denied.text);

    let versions =
        stdout_json(&admin_cli(&server, d, &["hooks", "versions", "cli-hook", "--json"]).await);
    let first = versions[0]["sha256"].as_str().expect("sha").to_owned();
    stdout_json(
        &admin_cli(
            &server,
            d,
            &[
                "hooks",
                "rollback",
                "cli-hook",
                "--version",
                &first,
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(token().await.json["scope"], "read:x extra");

    let set = stdout_json(
        &admin_cli(
            &server,
            d,
            &[
                "hooks", "secrets", "set", "cli-hook", "A=1", "B=2", "--json",
            ],
        )
        .await,
    );
    assert_eq!(set.as_array().expect("names").len(), 2);
    let changed = admin_cli(&server, d, &["hooks", "secrets", "set", "cli-hook", "A=3"]).await;
    assert!(changed.status.success());
    assert!(
        !String::from_utf8_lossy(&changed.stdout).contains('3'),
        "values are never printed"
    );

    // Human output is a table with headers.
    let list = admin_cli(&server, d, &["hooks", "list"]).await;
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.starts_with("ID"), "{text}");
    assert!(text.contains("cli-hook"));

    // Failures: non-zero exit and a one-line reason.
    let missing = admin_cli(&server, d, &["hooks", "enable", "no-such-hook"]).await;
    assert!(!missing.status.success());
    let reason = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(reason.trim().lines().count(), 1, "{reason}");
    assert!(reason.contains("no hook named"), "{reason}");
    let refused = admin_cli(
        &server,
        d,
        &[
            "clients",
            "list",
            "--admin-client-id",
            "x",
            "--admin-client-secret",
            "wrong-secret-value",
        ],
    )
    .await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("could not log in"));
    server.stop().await;
}

fn js_example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-examples/js")
        .join(name)
        .join("hook.js")
}

#[test]
fn hooks_test_builds_a_javascript_hook_through_the_sdk() {
    let event = sample_event();
    let hook = js_example("seed");
    let out = run(&[
        "hooks",
        "test",
        hook.to_str().expect("utf-8"),
        "--event",
        event.to_str().expect("utf-8"),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("with the JavaScript SDK"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["outcome"], "allow");
    assert_eq!(
        report["scope"],
        serde_json::json!(["read:reports", "write:reports", "extra"]),
        "{report}"
    );
    assert_eq!(report["claims"]["https://foo.com/claim"], "bar");
}

#[test]
fn broken_javascript_hooks_are_refused_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let event = sample_event();
    let syntax = dir.path().join("syntax.js");
    std::fs::write(
        &syntax,
        "module.exports = function (client, scope, audience, context, cb) {\n  cb(null, {;\n};\n",
    )
    .expect("write");
    let no_export = dir.path().join("no-export.js");
    std::fs::write(&no_export, "exports.somethingElse = () => {};\n").expect("write");

    let out = run(&[
        "hooks",
        "test",
        syntax.to_str().expect("utf-8"),
        "--event",
        event.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("syntax.js:2:"), "{stderr}");
    assert!(
        stderr.contains("cb(null, {;"),
        "the line is shown: {stderr}"
    );

    let out = run(&[
        "hooks",
        "test",
        no_export.to_str().expect("utf-8"),
        "--event",
        event.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-export.js: the module exports no hook"),
        "{stderr}"
    );
    assert!(stderr.contains("onExecuteCredentialsExchange"), "{stderr}");
}

#[test]
fn without_node_the_cli_says_how_to_get_it() {
    let empty = tempfile::tempdir().expect("tempdir");
    let event = sample_event();
    let hook = js_example("seed");
    let out = Command::new(hookd_binary())
        .args([
            "hooks",
            "test",
            hook.to_str().expect("utf-8"),
            "--event",
            event.to_str().expect("utf-8"),
        ])
        .env("PATH", empty.path())
        .output()
        .expect("run hookd");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs Node.js 18 or newer"), "{stderr}");
    assert!(stderr.contains("Install it"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_deploys_a_javascript_hook_from_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = hookd_tests::seed(dir.path(), None);
    let server = hookd_tests::TestServer::start(dir.path()).await;
    let hook = js_example("seed-action");
    let deploy = admin_cli(
        &server,
        dir.path(),
        &[
            "hooks",
            "deploy",
            hook.to_str().expect("utf-8"),
            "--name",
            "js-seed",
            "--enable",
        ],
    )
    .await;
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    let reply = hookd_tests::get_token(&server, &seeded).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["scope"], "read:reports write:reports extra");
    server.stop().await;
}

/// A `hookd serve` process on a free port over `data_dir`.
fn start_serve(data_dir: &Path) -> hookd_tests::ServeProcess {
    hookd_tests::ServeProcess::start(
        &[
            "--issuer".as_ref(),
            "https://crash.test/".as_ref(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
        ],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_secret_rotation_survives_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = start_serve(&data);
    let base = server.base.clone();
    let admin = hookd_tests::admin(&data);
    let audience = admin["audience"].as_str().expect("audience").to_owned();
    let token = hookd_tests::token_at(
        &base,
        admin["client_id"].as_str().expect("id"),
        admin["client_secret"].as_str().expect("secret"),
        &audience,
    )
    .await;
    assert_eq!(token.status, 200, "{}", token.text);
    let token = token.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let created = hookd_tests::call_at(
        &base,
        &token,
        http::Method::POST,
        "/api/v2/clients",
        Some(serde_json::json!({"name": "worker", "app_type": "non_interactive"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let client_id = created.json["client_id"].as_str().expect("id").to_owned();
    let old_secret = created.json["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let rotated = hookd_tests::call_at(
        &base,
        &token,
        http::Method::POST,
        &format!("/api/v2/clients/{client_id}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_secret = rotated.json["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    // The 200 is in: the process dies at once, with no chance to flush anything.
    server.kill();
    drop(server);

    let restarted = start_serve(&data);
    let base = restarted.base.clone();
    let old = hookd_tests::token_at(&base, &client_id, &old_secret, &audience).await;
    assert_eq!(old.status, 401, "the old secret works again: {}", old.text);
    assert_eq!(old.json["error"], "invalid_client");
    let new = hookd_tests::token_at(&base, &client_id, &new_secret, &audience).await;
    assert_ne!(new.json["error"], "invalid_client", "{}", new.text);
}

#[test]
fn hook_output_printed_as_text_has_its_control_characters_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let event = sample_event();
    let hook = dir.path().join("noisy.js");
    std::fs::write(
        &hook,
        "module.exports = function (client, scope, audience, context, cb) {\n\
         \x20 console.log('\\x1b[2J\\x1b]0;owned\\x07cleared');\n\
         \x20 cb(new InvalidRequestError('no \\x1b[31mred\\x1b[0m tokens'));\n\
         };\n",
    )
    .expect("write");
    let out = run(&[
        "hooks",
        "test",
        hook.to_str().expect("utf-8"),
        "--event",
        event.to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.stdout.iter().any(|&b| b == 0x1b || b == 0x07),
        "raw control characters reached the terminal: {text:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(r"\u{1b}[2J\u{1b}]0;owned\u{7}cleared"),
        "{text}"
    );
    assert!(text.contains(r"no \u{1b}[31mred\u{1b}[0m tokens"), "{text}");
}

/// A TLS front for a test server, as a reverse proxy or load balancer would be: an
/// `https://localhost:<port>` that forwards every connection to `target`, with a certificate
/// from a CA of its own (written to `ca.pem`, which no system trusts).
struct TlsFront {
    base: String,
    ca_pem: tempfile::NamedTempFile,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    async fn start(target: &str) -> Self {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let target = target.trim_start_matches("http://").to_owned();
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("certificate");
        let mut ca_pem = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut ca_pem, ca.pem().as_bytes()).expect("write");
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, target) = (acceptor.clone(), target.clone());
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake; that is fine.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        TlsFront {
            base: format!("https://localhost:{port}"),
            ca_pem,
            task,
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `hookd` with `args` and `stdin`, off the async threads.
async fn hookd_with_stdin(args: Vec<std::ffi::OsString>, stdin: &str) -> Output {
    use std::io::Write as _;
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(hookd_binary())
            .args(args)
            .env_remove("HOOKD_ADMIN_CLIENT_ID")
            .env_remove("HOOKD_ADMIN_CLIENT_SECRET")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run hookd");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_reaches_an_https_server_with_its_ca_and_takes_the_secret_from_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = hookd_tests::TestServer::start(dir.path()).await;
    let front = TlsFront::start(&server.base).await;
    let admin = hookd_tests::admin(dir.path());
    let client_id = admin["client_id"].as_str().expect("id").to_owned();
    let secret = admin["client_secret"].as_str().expect("secret").to_owned();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let args = |extra: &[&str]| -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = ["keys", "list", "--json", "--server"]
            .iter()
            .map(Into::into)
            .collect();
        args.push(front.base.clone().into());
        // No admin.json here: the credentials come from the flags and standard input.
        args.push("--data-dir".into());
        args.push(elsewhere.path().into());
        args.push("--admin-client-id".into());
        args.push(client_id.clone().into());
        args.push("--admin-client-secret-stdin".into());
        args.extend(extra.iter().map(Into::into));
        args
    };

    // The front's CA is nobody's: without --cacert the certificate is refused.
    let refused = hookd_with_stdin(args(&[]), &format!("{secret}\n")).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    let ca = front.ca_pem.path().to_str().expect("utf-8").to_owned();
    let listed = hookd_with_stdin(args(&["--cacert", &ca]), &format!("{secret}\n")).await;
    let keys = stdout_json(&listed);
    assert_eq!(keys.as_array().expect("keys").len(), 6);

    // A wrong secret on stdin is the server's refusal, not a crash.
    let wrong = hookd_with_stdin(args(&["--cacert", &ca]), "not-the-secret\n").await;
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("could not log in"), "{stderr}");
    assert!(!stderr.contains("not-the-secret"), "{stderr}");
    server.stop().await;
}

/// Runs an admin command and returns its stdout, failing the test when it fails.
async fn admin_ok(server: &hookd_tests::TestServer, dir: &Path, args: &[&str]) -> String {
    let out = admin_cli(server, dir, args).await;
    assert!(
        out.status.success(),
        "hookd {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_command_changes_what_it_says() {
    use hookd_tests::{Seeded, assert_oauth_error, get_token, seed};
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), None);
    let server = hookd_tests::TestServer::start(dir.path()).await;
    let d = dir.path();

    // hooks enable / disable / logs, secrets set / list / unset.
    admin_ok(&server, d, &["hooks", "deploy", SEED, "--name", "cli-hook"]).await;
    let state = |hooks: &serde_json::Value| hooks[0]["enabled"].clone();
    let listed: serde_json::Value =
        serde_json::from_str(&admin_ok(&server, d, &["hooks", "list", "--json"]).await)
            .expect("json");
    assert_eq!(state(&listed), false, "{listed}");
    admin_ok(&server, d, &["hooks", "enable", "cli-hook"]).await;
    let listed: serde_json::Value =
        serde_json::from_str(&admin_ok(&server, d, &["hooks", "list", "--json"]).await)
            .expect("json");
    assert_eq!(state(&listed), true, "{listed}");
    assert_eq!(listed[0]["state"], "running", "{listed}");
    let token = get_token(&server, &seeded).await;
    assert_eq!(token.status, 200, "{}", token.text);
    let request_id = token.headers["x-request-id"].to_str().expect("ascii");
    let logs = admin_ok(&server, d, &["hooks", "logs", "cli-hook"]).await;
    assert!(logs.contains(request_id), "{logs}");
    admin_ok(&server, d, &["hooks", "disable", "cli-hook"]).await;
    let token = get_token(&server, &seeded).await;
    let claims = hookd_tests::decode_unverified(token.json["access_token"].as_str().expect("t"));
    assert!(claims.get("https://foo.com/claim").is_none(), "{claims}");

    admin_ok(
        &server,
        d,
        &[
            "hooks",
            "secrets",
            "set",
            "cli-hook",
            "A=alpha-value",
            "B=beta-value",
        ],
    )
    .await;
    let listed = admin_ok(&server, d, &["hooks", "secrets", "list", "cli-hook"]).await;
    assert!(listed.contains('A') && listed.contains('B'), "{listed}");
    assert!(!listed.contains("alpha-value"), "{listed}");
    let left = admin_ok(
        &server,
        d,
        &["hooks", "secrets", "unset", "cli-hook", "A", "--json"],
    )
    .await;
    let left: serde_json::Value = serde_json::from_str(&left).expect("json");
    assert_eq!(left, serde_json::json!([{"name": "B"}]), "{left}");

    // clients rotate-secret / delete.
    let rotated: serde_json::Value = serde_json::from_str(
        &admin_ok(
            &server,
            d,
            &["clients", "rotate-secret", &seeded.client_id, "--json"],
        )
        .await,
    )
    .expect("json");
    assert_oauth_error(
        &get_token(&server, &seeded).await,
        401,
        "invalid_client",
        "",
    );
    let renewed = Seeded {
        client_id: seeded.client_id.clone(),
        secret: rotated["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    };
    assert_eq!(get_token(&server, &renewed).await.status, 200);

    // grants list / delete, apis list / delete.
    let grants: serde_json::Value =
        serde_json::from_str(&admin_ok(&server, d, &["grants", "list", "--json"]).await)
            .expect("json");
    let grant = grants
        .as_array()
        .expect("list")
        .iter()
        .find(|grant| grant["client_id"] == seeded.client_id.as_str())
        .expect("the seeded grant")
        .clone();
    admin_ok(
        &server,
        d,
        &["grants", "delete", grant["id"].as_str().expect("id")],
    )
    .await;
    assert_oauth_error(
        &get_token(&server, &renewed).await,
        403,
        "access_denied",
        "",
    );
    let apis: serde_json::Value =
        serde_json::from_str(&admin_ok(&server, d, &["apis", "list", "--json"]).await)
            .expect("json");
    let api_id = apis
        .as_array()
        .expect("list")
        .iter()
        .find(|api| api["identifier"] == hookd_tests::API)
        .and_then(|api| api["id"].as_str())
        .expect("the seeded API")
        .to_owned();
    admin_ok(&server, d, &["apis", "delete", &api_id]).await;
    assert!(server.store.api(&api_id).expect("read").is_none());
    admin_ok(&server, d, &["clients", "delete", &seeded.client_id]).await;
    assert!(
        server
            .store
            .client(&seeded.client_id)
            .expect("read")
            .is_none()
    );

    // keys rotate: the next key becomes current.
    let keys = |text: String| -> serde_json::Value { serde_json::from_str(&text).expect("json") };
    let before = keys(admin_ok(&server, d, &["keys", "list", "--json"]).await);
    let next_rs256 = before
        .as_array()
        .expect("list")
        .iter()
        .find(|key| key["alg"] == "RS256" && key["next"] == true)
        .and_then(|key| key["kid"].as_str())
        .expect("a next RS256 key")
        .to_owned();
    let after = keys(admin_ok(&server, d, &["keys", "rotate", "--json"]).await);
    assert!(
        after
            .as_array()
            .expect("list")
            .iter()
            .any(|key| key["kid"] == next_rs256.as_str() && key["current"] == true),
        "{after}"
    );
    server.stop().await;
}

#[test]
fn hooks_test_exits_0_when_the_hook_denies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let event = dir.path().join("event.json");
    let mut sample: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sample_event()).expect("read"))
            .expect("json");
    sample["audience"] = "https://not-allowed.example/".into();
    std::fs::write(&event, sample.to_string()).expect("write");
    let out = run(&[
        "hooks",
        "test",
        hookd_tests::DENY_BY_AUDIENCE,
        "--event",
        event.to_str().expect("utf-8"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("outcome  deny"), "{text}");
}

/// Every line a child process writes to stderr, collected as it comes.
fn collect_lines(
    stderr: std::process::ChildStderr,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::BufRead as _;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

/// Waits (bounded) until a collected line satisfies `wanted`, and returns it.
async fn wait_for_line(
    lines: &std::sync::Mutex<Vec<String>>,
    wanted: impl Fn(&str) -> bool,
) -> String {
    for _ in 0..600 {
        if let Some(line) = lines
            .lock()
            .expect("lines")
            .iter()
            .find(|line| wanted(line))
        {
            return line.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no such line within 60 s in:\n{}",
        lines.lock().expect("lines").join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_configured_by_the_environment_logs_json_without_secrets_and_stops_gracefully() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let admin_secret = "env-admin-secret-0123456789abcdef";
    let secrets_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([5u8; 32])
    };
    let mut child = KillOnDrop(
        Command::new(hookd_binary())
            .arg("serve")
            .env("HOOKD_DATA_DIR", &data)
            .env("HOOKD_LISTEN", "127.0.0.1:0")
            .env("HOOKD_LOG_FORMAT", "json")
            .env("HOOKD_LOG", "info,hookd=debug")
            .env("HOOKD_SECRETS_KEY", &secrets_key)
            .env("HOOKD_ADMIN_CLIENT_ID", "env-admin")
            .env("HOOKD_ADMIN_CLIENT_SECRET", admin_secret)
            .env_remove("HOOKD_ISSUER")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start hookd serve"),
    );
    let lines = collect_lines(child.0.stderr.take().expect("stderr"));
    let listening = wait_for_line(&lines, |line| line.contains("hookd listening")).await;
    let listening: serde_json::Value = serde_json::from_str(&listening).expect("a JSON line");
    let addr = listening["fields"]["addr"]
        .as_str()
        .expect("addr")
        .to_owned();
    // The default issuer names the address bound, not the port-0 request.
    assert_eq!(listening["fields"]["issuer"], format!("http://{addr}/"));
    assert!(!addr.ends_with(":0"), "{addr}");
    // The secrets key came from the environment: no key file was written.
    assert!(!data.join("secrets.key").exists());
    let base = format!("http://{addr}");

    // The admin from the environment; a client, an API, a grant and a hook with a secret.
    let admin =
        hookd_tests::token_at(&base, "env-admin", admin_secret, &format!("{base}/api/v2/")).await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    let admin_token = admin.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let management = |method, path: &str, body| {
        let path = format!("/api/v2/{path}");
        let (base, admin_token) = (base.clone(), admin_token.clone());
        async move { hookd_tests::call_at(&base, &admin_token, method, &path, body).await }
    };
    let client = management(
        http::Method::POST,
        "clients",
        Some(serde_json::json!({"name": "env-svc"})),
    )
    .await;
    assert_eq!(client.status, 201, "{}", client.text);
    let client_id = client.json["client_id"].as_str().expect("id").to_owned();
    let client_secret = client.json["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let audience = "https://env.example/";
    for (path, body) in [
        (
            "resource-servers",
            serde_json::json!({"identifier": audience, "scopes": [{"value": "read:x", "description": ""}]}),
        ),
        (
            "client-grants",
            serde_json::json!({"client_id": client_id, "audience": audience, "scope": ["read:x"]}),
        ),
        (
            "hooks",
            serde_json::json!({"name": "env-hook", "triggerId": "credentials-exchange"}),
        ),
    ] {
        let created = management(http::Method::POST, path, Some(body)).await;
        assert_eq!(created.status, 201, "{path}: {}", created.text);
    }
    let hooks = management(http::Method::GET, "hooks", None).await;
    let hook_id = hooks.json[0]["id"].as_str().expect("id").to_owned();
    let hook_secret = "hook-secret-value-that-must-not-be-logged";
    let secrets = management(
        http::Method::POST,
        &format!("hooks/{hook_id}/secrets"),
        Some(serde_json::json!({"API_KEY": hook_secret})),
    )
    .await;
    assert_eq!(secrets.status, 201, "{}", secrets.text);
    let uploaded =
        hookd_tests::upload_at(&base, &admin_token, &hook_id, hookd_tests::wasm(SEED)).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text);
    let token = hookd_tests::token_at(&base, &client_id, &client_secret, audience).await;
    assert_eq!(token.status, 200, "{}", token.text);
    let request_id = token.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    // The server's log line for the request carries its id.
    wait_for_line(&lines, |line| {
        serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|entry| entry["fields"]["request_id"] == request_id.as_str())
    })
    .await;

    // SIGTERM with a request in flight: it finishes, whole; then the server exits 0.
    let body = hookd_tests::form_body(&[
        ("grant_type", "client_credentials"),
        ("client_id", &client_id),
        ("client_secret", &client_secret),
        ("audience", audience),
    ]);
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let rest = rest.to_vec();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    write!(
        stream,
        "POST /oauth/token HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .expect("write");
    stream.write_all(first).expect("write");
    stream.flush().expect("flush");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    wait_for_line(&lines, |line| line.contains("shutting down")).await;
    let answer = tokio::task::spawn_blocking(move || {
        stream.write_all(&rest).expect("write the rest");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .expect("join");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, json) = answer.split_once("\r\n\r\n").expect("a body");
    let json: serde_json::Value = serde_json::from_str(json).expect("the whole JSON body");
    assert!(json["access_token"].is_string(), "{json}");
    let status = tokio::task::spawn_blocking(move || {
        for _ in 0..300 {
            if let Some(status) = child.0.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    })
    .await
    .expect("join")
    .expect("the server exits within 30 s of SIGTERM");
    assert!(status.success(), "{status}");

    // Every line is JSON, and no secret is in any of them.
    let lines = lines.lock().expect("lines").clone();
    assert!(lines.len() > 5, "{lines:?}");
    for line in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON line: {line}"
        );
        for secret in [admin_secret, &client_secret, hook_secret, &secrets_key] {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
    }
}
