//! A hook that misbehaves in whichever way its `audience` names. It uses the raw WIT bindings
//! (not the SDK) so it can return output the SDK would never produce.

use std::hint::black_box;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "hookd:hooks/credentials-exchange",
});

use hookd::hooks::types::{Claim, Denial, DenyCode};

struct Hostile;

static CALLS: AtomicU32 = AtomicU32::new(0);

/// Host pages in each of the two `scatter` areas; the call writes every other one.
const SCATTER_PAGES: usize = 128;
const HOST_PAGE: usize = 4096;
/// The value every byte of [`SCATTER_IMAGE`] starts with.
const SCATTER_IMAGE_BYTE: u8 = 0x5a;
/// Memory that starts with non-zero contents, so it is part of the module's memory image.
static SCATTER_IMAGE: [AtomicU8; SCATTER_PAGES * HOST_PAGE] =
    [const { AtomicU8::new(SCATTER_IMAGE_BYTE) }; SCATTER_PAGES * HOST_PAGE];
/// Memory that starts zeroed, past the image.
static SCATTER_ZEROED: [AtomicU8; SCATTER_PAGES * HOST_PAGE] =
    [const { AtomicU8::new(0) }; SCATTER_PAGES * HOST_PAGE];

/// Counts the pages of `area` (every other one) whose marker byte is not `initial`, then
/// writes `mark` there: 64 disjoint dirty pages per area, more disjoint runs than one
/// `PAGEMAP_SCAN` of the pool's reset reports. A fresh instance must find none written.
fn scatter(area: &[AtomicU8], initial: u8, mark: u8) -> usize {
    let mut written_before = 0;
    for page in (0..SCATTER_PAGES).step_by(2) {
        let marker = &area[page * HOST_PAGE + 123];
        if marker.load(Ordering::Relaxed) != initial {
            written_before += 1;
        }
        marker.store(mark, Ordering::Relaxed);
    }
    written_before
}

fn claim(name: &str, value: String) -> Claim {
    Claim {
        name: name.to_owned(),
        value,
    }
}

fn json_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[link(wasm_import_module = "wasi:random/random@0.2.0")]
unsafe extern "C" {
    /// WASI's `get-random-bytes`, called directly so the guest can ask for any length.
    #[link_name = "get-random-bytes"]
    fn wasi_get_random_bytes(len: i64, ret: *mut [usize; 2]);
}

#[link(wasm_import_module = "wasi:clocks/monotonic-clock@0.2.0")]
unsafe extern "C" {
    /// WASI's `subscribe-duration`: each call makes a host resource (a pollable).
    #[link_name = "subscribe-duration"]
    fn wasi_subscribe_duration(nanoseconds: i64) -> i32;
}

/// Asks the host for `len` random bytes; returns how many arrived.
fn random_bytes(len: i64) -> usize {
    let mut ret = [0usize; 2];
    // SAFETY: the canonical ABI writes the list's pointer and length to `ret`.
    unsafe { wasi_get_random_bytes(len, &mut ret) };
    ret[1]
}

#[allow(unconditional_recursion, reason = "deep recursion is the point")]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    recurse(depth + 1).wrapping_add(frame[7])
}

fn probe_sandbox() -> Vec<Claim> {
    let fs = match std::fs::read_to_string("/etc/passwd") {
        Ok(_) => "readable".to_owned(),
        Err(error) => format!("denied: {error}"),
    };
    let dir = match std::fs::read_dir(".") {
        Ok(_) => "listable".to_owned(),
        Err(error) => format!("denied: {error}"),
    };
    let net = match std::net::TcpStream::connect("127.0.0.1:9") {
        Ok(_) => "connected".to_owned(),
        Err(error) => format!("denied: {error}"),
    };
    let mut buffer = [0u8; 64];
    let stdin = match std::io::Read::read(&mut std::io::stdin(), &mut buffer) {
        Ok(0) => "closed".to_owned(),
        Ok(n) => format!("read {n} bytes"),
        Err(error) => format!("closed: {error}"),
    };
    vec![
        claim("stdin", json_string(&stdin)),
        claim("fs", json_string(&fs)),
        claim("dir", json_string(&dir)),
        claim("net", json_string(&net)),
        claim("env", std::env::vars().count().to_string()),
        claim("args", std::env::args().count().to_string()),
    ]
}

impl Guest for Hostile {
    fn exchange(
        client: Client,
        scope: Option<Vec<String>>,
        audience: String,
        context: Context,
    ) -> Result<TokenChanges, ExchangeError> {
        let calls = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        let claims = match audience.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(black_box(vec![7u8; 1 << 20]));
                }
            }
            "recursion" => vec![claim("depth", recurse(0).to_string())],
            "panic" => panic!("hostile guest panicked on purpose"),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(30));
                vec![]
            }
            "exit" => std::process::exit(3),
            "oversized-output" => vec![claim("big", json_string(&"x".repeat(200_000)))],
            "invalid-json" => vec![claim("https://example.com/broken", "{not json".to_owned())],
            "restricted-claims" => vec![
                claim("iss", json_string("https://evil.example/")),
                claim("sub", json_string("admin")),
                claim("scope", json_string("admin:all")),
                claim("https://auth0.com/role", json_string("owner")),
                claim("https://example.com/ok", "true".to_owned()),
            ],
            "log-spam" => {
                for i in 0..20_000 {
                    println!("log line {i} of a chatty hook");
                }
                vec![]
            }
            "counter" => vec![claim("calls", calls.to_string())],
            "probe-sandbox" => probe_sandbox(),
            "scatter" => {
                let mark = 0x80 | (calls as u8);
                vec![
                    claim(
                        "image_pages_written_before",
                        scatter(&SCATTER_IMAGE, SCATTER_IMAGE_BYTE, mark).to_string(),
                    ),
                    claim(
                        "zeroed_pages_written_before",
                        scatter(&SCATTER_ZEROED, 0, mark).to_string(),
                    ),
                ]
            }
            // Writes like `scatter`, then waits a second before returning, so the host can
            // do something to those pages while the instance still holds them.
            "scatter-then-wait" => {
                let mark = 0x80 | (calls as u8);
                let written = scatter(&SCATTER_IMAGE, SCATTER_IMAGE_BYTE, mark)
                    + scatter(&SCATTER_ZEROED, 0, mark);
                std::thread::sleep(std::time::Duration::from_secs(1));
                vec![claim("pages_written_before", written.to_string())]
            }
            "clock-and-random" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let mut random = [0u8; 8];
                let started = std::time::Instant::now();
                // HashMap's RandomState seeds itself from WASI random.
                let hasher = std::collections::hash_map::RandomState::new();
                use std::hash::BuildHasher;
                random.copy_from_slice(&hasher.hash_one(42u8).to_le_bytes());
                vec![
                    claim("now", now.to_string()),
                    claim("random", u64::from_le_bytes(random).to_string()),
                    claim(
                        "monotonic_ok",
                        (started.elapsed().as_secs() < 5).to_string(),
                    ),
                ]
            }
            "random-1k" => vec![claim("random_bytes", random_bytes(1 << 10).to_string())],
            "random-flood" => vec![claim("random_bytes", random_bytes(16 << 20).to_string())],
            "resource-flood" => {
                // Never dropped: every one holds a host table entry.
                let handles: Vec<i32> = (0..100_000)
                    .map(|_| unsafe { wasi_subscribe_duration(1_000_000_000) })
                    .collect();
                vec![claim("resources", handles.len().to_string())]
            }
            "huge-deny" => {
                return Err(ExchangeError::Deny(Denial {
                    code: DenyCode::InvalidRequest,
                    description: "d".repeat(8 << 20),
                }));
            }
            "deny" => {
                return Err(ExchangeError::Deny(Denial {
                    code: DenyCode::InvalidScope,
                    description: format!("scope not allowed for {}", client.id),
                }));
            }
            "fail" => {
                // A failure reported through the world's `fail` case, with an oversized
                // message the host cuts to 4 KiB.
                return Err(ExchangeError::Fail(format!(
                    "lookup failed for {}: {}",
                    client.id,
                    "x".repeat(10_000)
                )));
            }
            _ => {
                // Echo: reflect the inputs so the host can check what the hook received.
                eprintln!("echo for {}", client.id);
                let metadata: Vec<String> = client
                    .metadata
                    .iter()
                    .map(|(k, v)| format!("{}={}", k, v))
                    .collect();
                let secrets: Vec<&str> = context.secrets.iter().map(|(k, _)| k.as_str()).collect();
                vec![
                    claim("client_id_seen", json_string(&client.id)),
                    claim("client_name", json_string(&client.name)),
                    claim("tenant", json_string(&client.tenant)),
                    claim("metadata", json_string(&metadata.join(","))),
                    claim("audience_seen", json_string(&audience)),
                    claim("secret_names", json_string(&secrets.join(","))),
                    claim(
                        "secret_value",
                        json_string(context.secrets.first().map_or("", |(_, v)| v.as_str())),
                    ),
                    claim("ip", json_string(&context.request.ip)),
                    claim("hostname", json_string(&context.request.hostname)),
                    claim(
                        "user_agent",
                        json_string(context.request.user_agent.as_deref().unwrap_or("-")),
                    ),
                    claim(
                        "requested",
                        json_string(&context.requested_scopes.join(" ")),
                    ),
                    claim("api_name", json_string(&context.resource_server.name)),
                    claim("context_tenant", json_string(&context.tenant)),
                    claim("scope_was_none", scope.is_none().to_string()),
                ]
            }
        };
        Ok(TokenChanges {
            scope: None,
            claims,
        })
    }
}

export!(Hostile);
