//! A real hookd server for the HTTP targets, made once per fuzzing process: a data directory
//! with one client, one API, a grant and a hook (no module), driven through
//! `Server::respond` without a socket. The secrets are fixed so the seed corpora can name them.

use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// The seeded client's id and secret, as the seed corpora use them.
pub const CLIENT_ID: &str = "fuzz-client";
pub const CLIENT_SECRET: &str = "fuzz-client-secret-0123456789";
/// The seeded API.
pub const API: &str = "https://api.fuzz.test/";
/// The secrets key: 32 bytes of 7, base64url.
const SECRETS_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub server: hookd::http::Server,
    pub peer: SocketAddr,
    /// A Management API token of the (generated, unguessable) admin.
    pub admin_token: String,
    /// Ids the management target's paths refer to.
    pub api_id: String,
    pub grant_id: String,
    pub hook_id: String,
    /// What no response may ever contain.
    pub secrets: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A response as the targets check it.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Fixture {
    pub fn send(&self, request: http::Request<Full<Bytes>>) -> Answer {
        self.runtime.block_on(async {
            let response = self.server.respond(self.peer, request).await;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map(|collected| collected.to_bytes().to_vec())
                .unwrap_or_default();
            Answer { status, body }
        })
    }

    /// Checks what every answer must be: not a 500 (bad input is the client's error, never
    /// an internal one), a JSON body, and none of the installation's secrets in it unless the
    /// request itself carried it (an error may quote what the client sent).
    pub fn check(&self, answer: &Answer, what: &str, request: &[u8]) {
        assert_ne!(
            answer.status,
            500,
            "{what}: 500 {}",
            String::from_utf8_lossy(&answer.body)
        );
        if !answer.body.is_empty() {
            let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&answer.body);
            assert!(
                parsed.is_ok(),
                "{what}: not JSON: {}",
                String::from_utf8_lossy(&answer.body)
            );
        }
        let text = String::from_utf8_lossy(&answer.body);
        let sent = String::from_utf8_lossy(request);
        for secret in &self.secrets {
            assert!(
                !text.contains(secret.as_str()) || sent.contains(secret.as_str()),
                "{what}: a secret leaked: {text}"
            );
        }
    }
}

fn form(pairs: &[(&str, &str)]) -> Full<Bytes> {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        body.append_pair(name, value);
    }
    Full::new(Bytes::from(body.finish()))
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    use hookd::management::{self, NewApi};
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_box = hookd::secrets::SecretBox::from_encoded(SECRETS_KEY).expect("key");
    {
        let store = hookd::store::SledStore::open(dir.path()).expect("store");
        let hasher = now(hookd::app::client_secret_hasher(&store, &secret_box)).expect("hasher");
        now(management::create_client_with(
            &store,
            &hasher,
            "fuzzed",
            Default::default(),
            CLIENT_ID,
            CLIENT_SECRET,
        ))
        .expect("client");
        now(management::create_api(
            &store,
            &secret_box,
            NewApi::new(API, "Fuzzed", &["read:things", "write:things"]),
        ))
        .expect("api");
        now(management::create_grant(
            &store,
            CLIENT_ID,
            API,
            &["read:things"],
        ))
        .expect("grant");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut config =
        hookd::app::ServeConfig::new(dir.path().to_owned(), "127.0.0.1:0".parse().expect("addr"));
    config.issuer = Some("https://hookd.fuzz.test/".to_owned());
    config.secrets_key = Some(SECRETS_KEY.to_owned());
    config.hook_concurrency = 2;
    let prepared = runtime
        .block_on(hookd::app::prepare(config))
        .expect("server starts");
    let admin: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("admin.json")).expect("admin.json"))
            .expect("json");
    let admin_id = admin["client_id"].as_str().expect("id").to_owned();
    let admin_secret = admin["client_secret"].as_str().expect("secret").to_owned();
    let store = prepared.store.sled().cloned().expect("sled");
    let mut fixture = Fixture {
        runtime,
        server: prepared.server,
        peer: "127.0.0.1:40000".parse().expect("peer"),
        admin_token: String::new(),
        api_id: String::new(),
        grant_id: String::new(),
        hook_id: String::new(),
        secrets: vec![
            CLIENT_SECRET.to_owned(),
            admin_secret.clone(),
            SECRETS_KEY.to_owned(),
        ],
        _dir: dir,
    };
    let token = fixture.send(
        http::Request::post("/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &admin_id),
                ("client_secret", &admin_secret),
                ("audience", "https://hookd.fuzz.test/api/v2/"),
            ]))
            .expect("request"),
    );
    assert_eq!(
        token.status,
        200,
        "{}",
        String::from_utf8_lossy(&token.body)
    );
    let token: serde_json::Value = serde_json::from_slice(&token.body).expect("json");
    fixture.admin_token = token["access_token"].as_str().expect("token").to_owned();
    let hook = fixture.send(
        http::Request::post("/api/v2/hooks")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", fixture.admin_token))
            .body(Full::new(Bytes::from_static(
                br#"{"name": "fuzzed", "triggerId": "credentials-exchange"}"#,
            )))
            .expect("request"),
    );
    assert_eq!(hook.status, 201, "{}", String::from_utf8_lossy(&hook.body));
    let hook: serde_json::Value = serde_json::from_slice(&hook.body).expect("json");
    fixture.hook_id = hook["id"].as_str().expect("id").to_owned();
    fixture.api_id = store.api_by_identifier(API).expect("read").expect("api").id;
    fixture.grant_id = store
        .grant_for(CLIENT_ID, API)
        .expect("read")
        .expect("grant")
        .id;
    fixture
}

/// The result of `future`, which must complete without waiting (a call on the sled store).
fn now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a sled store call had to wait"),
    }
}
