//! Shared harness for hookd's integration tests: paths of the guest components built from
//! source by `build.rs`, and helpers to load and run them.

#![allow(
    clippy::expect_used,
    reason = "test harness: a failed setup step should fail the test"
)]

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

pub mod load;
pub mod postgres;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use hookd::hooks::{
    ClientInfo, CredentialsExchangeEvent, EngineSettings, ExtensibilityPoint, HookContext,
    HookEngine, HookLimits, LoadedHook, RequestInfo, ResourceServerInfo,
};

/// Reads a guest component built by `build.rs`.
pub fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// An engine with no compiled-artifact cache.
pub fn engine() -> HookEngine {
    HookEngine::new(EngineSettings::default()).expect("engine")
}

/// An engine using the compiled-hook cache the tests share ([`COMPILED_CACHE_DIR`]), so a
/// JavaScript hook (seconds to compile) compiles once across tests and runs.
pub fn cached_engine() -> HookEngine {
    cached_engine_with(EngineSettings::default().max_concurrency)
}

/// [`cached_engine`] running at most `max_concurrency` invocations at once.
pub fn cached_engine_with(max_concurrency: u32) -> HookEngine {
    HookEngine::new(EngineSettings {
        max_concurrency,
        cache: Some(hookd::app::artifact_cache(
            COMPILED_CACHE_DIR.into(),
            &hookd::secrets::SecretBox::from_encoded(TEST_SECRETS_KEY).expect("test key"),
        )),
    })
    .expect("engine")
}

/// The secret box over [`TEST_SECRETS_KEY`], for tests that write to a test server's store.
pub fn test_secret_box() -> hookd::secrets::SecretBox {
    hookd::secrets::SecretBox::from_encoded(TEST_SECRETS_KEY).expect("test key")
}

/// The client-secret hasher of a store whose server uses [`TEST_SECRETS_KEY`].
pub fn test_hasher(store: &hookd::store::SledStore) -> hookd::secrets::SecretHasher {
    now(hookd::app::client_secret_hasher(store, &test_secret_box())).expect("hasher")
}

/// The result of `future`, which must complete without waiting: a call on the sled store
/// (whose answers are ready at once), run from synchronous test code on any thread.
pub fn now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a sled store call had to wait"),
    }
}

/// The secrets key test servers use unless a test sets its own (base64url of 32 bytes): one
/// key, so the compiled artifacts in [`COMPILED_CACHE_DIR`] verify for every test server.
pub const TEST_SECRETS_KEY: &str = "aG9va2QtdGVzdHMtc2VjcmV0cy1rZXktMzItYnl0ZXM";

/// Loads a guest for the credentials-exchange point with `limits`.
pub fn load(engine: &HookEngine, path: &str, limits: HookLimits) -> LoadedHook {
    engine
        .load(ExtensibilityPoint::CredentialsExchange, &wasm(path), limits)
        .unwrap_or_else(|error| panic!("load {path}: {error}"))
}

/// A realistic event for `audience`.
pub fn event(audience: &str) -> CredentialsExchangeEvent {
    CredentialsExchangeEvent {
        client: ClientInfo {
            id: "client-1".to_owned(),
            name: "reporting".to_owned(),
            tenant: "acme".to_owned(),
            metadata: [("tier".to_owned(), "gold".to_owned())].into(),
        },
        scope: Some(vec!["read:reports".to_owned()]),
        audience: audience.to_owned(),
        context: HookContext {
            secrets: [("API_KEY".to_owned(), "s3cret".to_owned())].into(),
            request: RequestInfo {
                ip: "203.0.113.7".to_owned(),
                hostname: "auth.acme.example".to_owned(),
                method: "POST".to_owned(),
                user_agent: Some("curl/8.5".to_owned()),
            },
            requested_scopes: vec!["read:reports".to_owned()],
            resource_server: ResourceServerInfo {
                identifier: audience.to_owned(),
                name: "Reports API".to_owned(),
            },
            tenant: "acme".to_owned(),
        },
    }
}

/// The API [`seed`] creates.
pub const API: &str = "https://api.example.com/";

/// The client [`seed`] creates.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Its `client_id`.
    pub client_id: String,
    /// Its secret.
    pub secret: String,
}

/// Seeds a data directory: one client granted `read:reports write:reports` on [`API`], and
/// the hook `module` (a guest path), if any, enabled. Done before a server starts, as the
/// server loads the enabled hook at startup.
pub fn seed(dir: &std::path::Path, module: Option<&str>) -> Seeded {
    use hookd::management::{self, NewApi};
    let store = hookd::store::SledStore::open(dir).expect("store");
    let hasher = test_hasher(&store);
    let metadata = [("tier".to_owned(), "gold".to_owned())].into();
    let (client, secret) = now(management::create_client(
        &store,
        &hasher,
        "reporting",
        metadata,
    ))
    .expect("client");
    now(management::create_api(
        &store,
        &test_secret_box(),
        NewApi::new(API, "Reports", &["read:reports", "write:reports", "admin"]),
    ))
    .expect("api");
    now(management::create_grant(
        &store,
        &client.client_id,
        API,
        &["read:reports", "write:reports"],
    ))
    .expect("grant");
    if let Some(path) = module {
        now(management::create_hook(
            &store,
            &cached_engine(),
            "under-test",
            ExtensibilityPoint::CredentialsExchange,
            &wasm(path),
            true,
            hookd::clock::unix_now(),
        ))
        .expect("hook");
    }
    store.flush().expect("flush");
    Seeded {
        client_id: client.client_id,
        secret,
    }
}

/// A real hookd server on 127.0.0.1 with its own data directory.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The sled store the server uses (shared, live).
    pub store: hookd::store::SledStore,
    /// The tenant (issuer) it serves.
    pub tenant: hookd::model::Tenant,
    /// Every hook's recent invocations.
    pub hook_log: std::sync::Arc<hookd::hooklog::HookLogBook>,
    /// `http://127.0.0.1:<port>` of the metrics listener, when the config asked for one.
    pub metrics: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server on a free port over `data_dir` with `http` limits.
    pub async fn start_with(data_dir: &std::path::Path, http: hookd::http::HttpLimits) -> Self {
        Self::start_configured(data_dir, |config| config.http = http).await
    }

    async fn start_from(config: hookd::app::ServeConfig) -> Self {
        let prepared = hookd::app::prepare(config).await.expect("server starts");
        Self::run_prepared(prepared)
    }

    fn run_prepared(prepared: hookd::app::Prepared) -> Self {
        let addr = prepared.addr;
        let metrics = prepared.metrics_addr.map(|addr| format!("http://{addr}"));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = prepared.server;
        let store = prepared
            .store
            .sled()
            .cloned()
            .expect("test servers run on sled");
        let (tenant, hook_log) = (prepared.tenant, prepared.hook_log);
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        TestServer {
            base: format!("http://{addr}"),
            store,
            tenant,
            hook_log,
            metrics,
            shutdown: Some(shutdown),
            task,
        }
    }

    /// The configuration the tests start servers with: a free port on 127.0.0.1, issuer
    /// `https://hookd.test/`, compiled hooks cached in [`COMPILED_CACHE_DIR`], the test
    /// secrets key.
    pub fn config(data_dir: &std::path::Path) -> hookd::app::ServeConfig {
        let mut config = hookd::app::ServeConfig::new(
            data_dir.to_owned(),
            "127.0.0.1:0".parse().expect("address"),
        );
        config.issuer = Some("https://hookd.test/".to_owned());
        config.cache_dir = Some(COMPILED_CACHE_DIR.into());
        config.secrets_key = Some(TEST_SECRETS_KEY.to_owned());
        config
    }

    /// Starts a server with `config`, or says why it would not start.
    pub async fn try_start(
        config: hookd::app::ServeConfig,
    ) -> Result<Self, hookd::app::StartError> {
        let prepared = hookd::app::prepare(config).await?;
        Ok(Self::run_prepared(prepared))
    }

    /// Starts a server with a customised [`TestServer::config`].
    pub async fn start_configured(
        data_dir: &std::path::Path,
        configure: impl FnOnce(&mut hookd::app::ServeConfig),
    ) -> Self {
        let mut config = Self::config(data_dir);
        configure(&mut config);
        Self::start_from(config).await
    }

    /// Starts a server with default HTTP limits.
    pub async fn start(data_dir: &std::path::Path) -> Self {
        Self::start_with(data_dir, hookd::http::HttpLimits::default()).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Err(error) = (&mut self.task).await {
            panic!("the server task ended abnormally: {error}");
        }
        self.store.flush().expect("flush");
    }
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body parsed as JSON (`Null` when it is not JSON).
    pub json: serde_json::Value,
    /// Raw body.
    pub text: String,
}

/// A real HTTP/1.1 client over TCP to 127.0.0.1.
pub async fn send(
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<bytes::Bytes>,
) -> Reply {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Full::new(body.into()))
        .expect("request");
    let response = client.request(request).await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Reply {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        text,
    }
}

/// The bootstrap credentials from `DIR/admin.json`.
pub fn admin(dir: &std::path::Path) -> serde_json::Value {
    let path = dir.join("admin.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("admin.json")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "admin.json must be private");
    }
    serde_json::from_str(&std::fs::read_to_string(path).expect("admin.json")).expect("json")
}

/// A Management API token for the bootstrap admin of the server over `dir`.
pub async fn admin_token(server: &TestServer, dir: &std::path::Path) -> String {
    let admin = admin(dir);
    let reply = token_form(
        server,
        Some((
            admin["client_id"].as_str().expect("id"),
            admin["client_secret"].as_str().expect("secret"),
        )),
        &[
            ("grant_type", "client_credentials"),
            ("audience", admin["audience"].as_str().expect("audience")),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// Calls the Management API with a bearer token and an optional JSON body.
pub async fn call(
    server: &TestServer,
    token: &str,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Reply {
    call_at(&server.base, token, method, path, body).await
}

/// [`call`] for a server known by its base URL only (a `hookd serve` process).
pub async fn call_at(
    base: &str,
    token: &str,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Reply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("authorization", bearer.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    send(method, &format!("{base}{path}"), &headers, body).await
}

/// Creates a hook through the Management API with `body` and returns its id.
pub async fn create_hook(server: &TestServer, token: &str, body: serde_json::Value) -> String {
    let created = call(
        server,
        token,
        http::Method::POST,
        "/api/v2/hooks",
        Some(body),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    created.json["id"].as_str().expect("a hook id").to_owned()
}

/// Uploads a module as hook `id`'s new version.
pub async fn upload(server: &TestServer, token: &str, id: &str, module: Vec<u8>) -> Reply {
    upload_at(&server.base, token, id, module).await
}

/// [`upload`] for a server known by its base URL only.
pub async fn upload_at(base: &str, token: &str, id: &str, module: Vec<u8>) -> Reply {
    let bearer = format!("Bearer {token}");
    send(
        http::Method::PUT,
        &format!("{base}/api/v2/hooks/{id}/module"),
        &[
            ("authorization", &bearer),
            ("content-type", "application/wasm"),
        ],
        module,
    )
    .await
}

/// Gets a token for the seeded client and [`API`] with Basic credentials.
pub async fn get_token(server: &TestServer, seeded: &Seeded) -> Reply {
    get_token_for(server, seeded, API).await
}

/// Gets a token for the seeded client and `audience` with Basic credentials.
pub async fn get_token_for(server: &TestServer, seeded: &Seeded, audience: &str) -> Reply {
    token_form(
        server,
        Some((&seeded.client_id, &seeded.secret)),
        &[("grant_type", "client_credentials"), ("audience", audience)],
    )
    .await
}

/// The server's published JWKS.
pub async fn jwks(server: &TestServer) -> jsonwebtoken::jwk::JwkSet {
    let reply = send(
        http::Method::GET,
        &format!("{}/.well-known/jwks.json", server.base),
        &[],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    serde_json::from_value(reply.json).expect("a JWKS")
}

/// A JWT's header, decoded.
pub fn header(token: &str) -> serde_json::Value {
    let part = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

/// A JWT's payload, decoded without checking its signature.
pub fn payload(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("json")
}

/// Verifies `token` the way a resource server would: by the `kid` in the JWKS (or the API's
/// secret for HS256), checking algorithm, issuer, audience and expiry.
pub async fn verify(
    server: &TestServer,
    token: &str,
    alg: jsonwebtoken::Algorithm,
    audience: &str,
) -> serde_json::Value {
    let key = if alg == jsonwebtoken::Algorithm::HS256 {
        let api = server
            .store
            .api_by_identifier(audience)
            .expect("store")
            .expect("api");
        // As Auth0's SDKs, PyJWT and jose do: the secret's text, as the API shows it.
        let secret = hookd::management::reveal_signing_secret(&test_secret_box(), &api)
            .expect("opens")
            .expect("HS256 secret");
        jsonwebtoken::DecodingKey::from_secret(secret.as_bytes())
    } else {
        let kid = header(token)["kid"].as_str().expect("kid").to_owned();
        let set = jwks(server).await;
        let jwk = set.find(&kid).expect("the kid is published");
        jsonwebtoken::DecodingKey::from_jwk(jwk).expect("usable JWK")
    };
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["https://hookd.test/"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .expect("the token verifies")
        .claims
}

/// An API named `identifier` with a grant of `read:reports` for `client_id`, on a live server.
pub fn add_api(
    server: &TestServer,
    client_id: &str,
    new: hookd::management::NewApi,
) -> hookd::model::Api {
    let identifier = new.identifier.clone();
    let (api, _) = now(hookd::management::create_api(
        &server.store,
        &test_secret_box(),
        new,
    ))
    .expect("api");
    now(hookd::management::create_grant(
        &server.store,
        client_id,
        &identifier,
        &["read:reports"],
    ))
    .expect("grant");
    api
}

/// POSTs a form body to `/oauth/token`, optionally with Basic credentials.
pub async fn token_form(
    server: &TestServer,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Reply {
    use base64_helper::encode_basic;
    let body: String = form_body(form);
    let authorization = basic.map(|(id, secret)| encode_basic(id, secret));
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(value) = authorization.as_deref() {
        headers.push(("authorization", value));
    }
    send(
        http::Method::POST,
        &format!("{}/oauth/token", server.base),
        &headers,
        body,
    )
    .await
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub fn form_body(pairs: &[(&str, &str)]) -> String {
    let escape = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

mod base64_helper {
    /// `Basic base64(id:secret)`, written out here so the tests do not share the server's
    /// encoder.
    pub fn encode_basic(id: &str, secret: &str) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let input = format!("{id}:{secret}").into_bytes();
        let mut out = String::new();
        for chunk in input.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        format!("Basic {out}")
    }
}

/// Whose page faults [`minor_page_faults`] counts.
#[derive(Debug, Clone, Copy)]
pub enum FaultsOf {
    /// The whole process.
    Process,
    /// The calling thread only.
    Thread,
}

/// Minor page faults so far (`getrusage`): a count the kernel keeps, not a time, so it does
/// not depend on how busy the machine is.
#[allow(
    unsafe_code,
    reason = "getrusage is the only way to read the kernel's page-fault counts"
)]
pub fn minor_page_faults(of: FaultsOf) -> u64 {
    let who = match of {
        FaultsOf::Process => libc::RUSAGE_SELF,
        FaultsOf::Thread => libc::RUSAGE_THREAD,
    };
    // SAFETY: `rusage` is plain data; getrusage only writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(who, &mut usage), 0, "getrusage");
        usage
    };
    usage.ru_minflt as u64
}

/// A JWT's claims, read without checking its signature (for tests that look at what a token
/// says after another test has verified how it is signed).
pub fn decode_unverified(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Asserts that `reply` is a Management API error in Auth0's shape: `status` as `statusCode`
/// and HTTP status, its reason phrase as `error`, `errorCode` exactly `error_code` (absent
/// when `None`), and a non-empty `message` that contains `message`.
#[track_caller]
pub fn assert_management_error(
    reply: &Reply,
    status: u16,
    error_code: Option<&str>,
    message: &str,
) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json["statusCode"], status, "{}", reply.text);
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|status| status.canonical_reason())
        .expect("a standard status");
    assert_eq!(reply.json["error"], reason, "{}", reply.text);
    match error_code {
        Some(code) => assert_eq!(reply.json["errorCode"], code, "{}", reply.text),
        None => assert!(reply.json.get("errorCode").is_none(), "{}", reply.text),
    }
    let shown = reply.json["message"].as_str().unwrap_or_default();
    assert!(
        !shown.is_empty() && shown.contains(message),
        "message {shown:?} should contain {message:?}: {}",
        reply.text
    );
}

/// Asserts that `reply` is an OAuth error (RFC 6749 §5.2) with `status` and `error`, and an
/// `error_description` that contains `description`.
#[track_caller]
pub fn assert_oauth_error(reply: &Reply, status: u16, error: &str, description: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.json["error"], error, "{}", reply.text);
    let shown = reply.json["error_description"].as_str().unwrap_or_default();
    assert!(
        shown.contains(description),
        "error_description {shown:?} should contain {description:?}: {}",
        reply.text
    );
}

/// The `hookd` binary next to this test binary (`cargo test --workspace` builds it for the
/// runtime crate's own CLI tests).
pub fn hookd_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("hookd");
    assert!(
        binary.is_file(),
        "{} is missing: run the whole workspace's tests (`cargo test --workspace`) or \
         `cargo build -p hookd` first",
        binary.display()
    );
    binary
}

/// Runs `hookd` against a test server, off the async threads.
pub async fn admin_cli(
    server: &TestServer,
    dir: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    let mut command = std::process::Command::new(hookd_binary());
    command
        .args(args)
        .args(["--server", &server.base, "--data-dir"])
        .arg(dir)
        .env_remove("HOOKD_ADMIN_CLIENT_ID")
        .env_remove("HOOKD_ADMIN_CLIENT_SECRET");
    tokio::task::spawn_blocking(move || command.output().expect("run hookd"))
        .await
        .expect("join")
}

/// A `hookd serve` process on a free port of 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct ServeProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`, read from its "hookd listening" log line.
    pub base: String,
    /// Every line it wrote to stderr so far.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// Kills the process at once (SIGKILL: no chance to flush or finish anything).
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Stops the process where it is (SIGSTOP) until [`ServeProcess::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// What it wrote to stderr so far (its log).
    pub fn log(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Starts `hookd serve --listen 127.0.0.1:0` with `args` and `env` (HOOKD_ADMIN_* and
    /// HOOKD_SECRETS_KEY are removed first, so a test sets what it means), and waits for its
    /// address.
    pub fn start(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        let mut command = std::process::Command::new(hookd_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("HOOKD_LOG", "info")
            .env_remove("HOOKD_ADMIN_CLIENT_ID")
            .env_remove("HOOKD_ADMIN_CLIENT_SECRET")
            .env_remove("HOOKD_SECRETS_KEY")
            .env_remove("HOOKD_DATABASE_URL")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start hookd serve");
        let stderr = child.stderr.take().expect("stderr");
        let (found, addr) = std::sync::mpsc::channel();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("hookd listening")
                    && let Some(rest) = line.split("addr=").nth(1)
                {
                    let _ = found.send(Ok(rest.split_whitespace().next().unwrap_or("").to_owned()));
                }
                kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
            let all = kept.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
            let _ = found.send(Err(all));
        });
        let mut process = ServeProcess {
            child,
            base: String::new(),
            stderr: seen,
        };
        match addr.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(Ok(addr)) => process.base = format!("http://{addr}"),
            Ok(Err(output)) => panic!("hookd serve stopped before listening:\n{output}"),
            Err(_) => panic!("hookd serve did not log its address within 60 s"),
        }
        process
    }
}

/// A client-credentials token request to the server at `base` (a `hookd serve` process),
/// with the credentials in the form body.
pub async fn token_at(base: &str, id: &str, secret: &str, audience: &str) -> Reply {
    send(
        http::Method::POST,
        &format!("{base}/oauth/token"),
        &[("content-type", "application/x-www-form-urlencoded")],
        form_body(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("audience", audience),
        ]),
    )
    .await
}
