//! `POST /oauth/token` as a client sends it. The input is text: the first line is the
//! Content-Type (empty: none), the second the Authorization header (empty: none), the rest
//! the body. Every answer must be an OAuth answer: never a 500, always JSON, no secret in it.
#![no_main]

#[path = "server.rs"]
mod server;

use bytes::Bytes;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let fixture = server::fixture();
    let mut parts = input.splitn(3, |byte| *byte == b'\n');
    let content_type = parts.next().unwrap_or_default();
    let authorization = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let mut request = http::Request::post("/oauth/token");
    for (name, value) in [
        ("content-type", content_type),
        ("authorization", authorization),
    ] {
        if value.is_empty() {
            continue;
        }
        // hyper never hands the server a header value it cannot represent.
        let Ok(value) = http::HeaderValue::from_bytes(value) else {
            return;
        };
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let answer = fixture.send(request);
    fixture.check(&answer, "token request", input);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
    match answer.status {
        200 => assert!(json["access_token"].is_string(), "{json}"),
        400 | 401 | 403 | 413 | 415 => assert!(json["error"].is_string(), "{json}"),
        status => panic!("unexpected status {status}: {json}"),
    }
});
