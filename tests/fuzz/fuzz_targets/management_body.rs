//! Management API calls with fuzzed bodies, sent with the admin's token. The input is text:
//! the first line is `METHOD path`, where `{api}`, `{grant}`, `{hook}` and `{client}` stand for
//! the seeded records' ids; the rest is the JSON body. Every answer must be the API's: never
//! a 500, always JSON, no secret in it.
#![no_main]

#[path = "server.rs"]
mod server;

use bytes::Bytes;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let fixture = server::fixture();
    let (head, body) = match input.iter().position(|byte| *byte == b'\n') {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let Some((method, path)) = head.split_once(' ') else {
        return;
    };
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let path = path
        .replace("{api}", &fixture.api_id)
        .replace("{grant}", &fixture.grant_id)
        .replace("{hook}", &fixture.hook_id)
        .replace("{client}", server::CLIENT_ID);
    if !path.starts_with("/api/v2/") {
        return;
    }
    // A path the request line cannot carry never reaches the server.
    let Ok(uri) = path.parse::<http::Uri>() else {
        return;
    };
    let request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", fixture.admin_token))
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let answer = fixture.send(request);
    fixture.check(&answer, "management call", input);
});
