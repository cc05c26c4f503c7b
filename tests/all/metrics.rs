//! The Prometheus endpoint: off unless asked for, on an address of its own, and its values
//! move as requests are made, with labels that never carry a client's id.

use hookd_tests::{API, SEED, TestServer, admin_token, call, get_token, seed, send, token_form};
use http::Method;
use serde_json::json;

/// The value of the sample `series` (name and labels exactly as exposed), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_hook_calls_signatures_and_management_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seeded = seed(dir.path(), Some(SEED));
    let server = TestServer::start_configured(dir.path(), |config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let metrics = format!(
        "{}/metrics",
        server.metrics.as_deref().expect("a metrics listener")
    );
    let hook = server.store.hooks().expect("hooks").remove(0);
    let version: String = hook
        .active_version
        .as_deref()
        .expect("a version")
        .chars()
        .take(12)
        .collect();
    let admin = admin_token(&server, dir.path()).await;

    let before = send(Method::GET, &metrics, &[], "").await;
    assert_eq!(before.status, 200, "{}", before.text);
    assert!(
        before.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text"),
        "{:?}",
        before.headers
    );
    let build = format!(
        "hookd_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&before.text, &build), 1.0, "{}", before.text);
    let before = before.text;

    for _ in 0..3 {
        assert_eq!(get_token(&server, &seeded).await.status, 200);
    }
    let wrong = token_form(
        &server,
        Some((&seeded.client_id, "not-the-secret-at-all")),
        &[("grant_type", "client_credentials"), ("audience", API)],
    )
    .await;
    assert_eq!(wrong.status, 401);
    let jwks = send(
        Method::GET,
        &format!("{}/.well-known/jwks.json", server.base),
        &[],
        "",
    )
    .await;
    assert_eq!(jwks.status, 200);
    let renamed = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/hooks/{}", hook.id),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(renamed.status, 201, "{}", renamed.text);

    let after = send(Method::GET, &metrics, &[], "").await.text;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        moved(r#"hookd_http_requests_total{endpoint="token",status="200",error=""}"#),
        3.0,
        "{after}"
    );
    assert_eq!(
        moved(r#"hookd_http_requests_total{endpoint="token",status="401",error="invalid_client"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved(r#"hookd_http_requests_total{endpoint="jwks",status="200",error=""}"#),
        1.0
    );
    assert_eq!(
        moved(r#"hookd_http_request_duration_seconds_count{endpoint="token"}"#),
        4.0
    );
    let hook_series = format!("hook_id=\"{}\",version=\"{version}\"", hook.id);
    assert_eq!(
        moved(&format!(
            "hookd_hook_invocations_total{{{hook_series},outcome=\"ok\"}}"
        )),
        3.0,
        "{after}"
    );
    assert_eq!(
        moved(&format!(
            "hookd_hook_duration_seconds_count{{{hook_series}}}"
        )),
        3.0
    );
    assert_eq!(
        moved(&format!("hookd_hook_fuel_count{{{hook_series}}}")),
        3.0
    );
    assert!(moved(&format!("hookd_hook_fuel_sum{{{hook_series}}}")) > 3_000.0);
    assert_eq!(moved(r#"hookd_tokens_signed_total{alg="RS256"}"#), 3.0);
    assert_eq!(
        moved(r#"hookd_management_writes_total{operation="update_hook",status="201"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, r#"hookd_http_requests_in_flight{endpoint="token"}"#),
        0.0
    );
    assert!(
        !after.contains(&seeded.client_id),
        "client ids never become label values"
    );
    assert!(
        moved("hookd_store_write_duration_seconds_count") >= 1.0,
        "the hook's rename was written: {after}"
    );

    // With instance reuse on, every call after the first runs in the instance kept from the
    // one before.
    let reusing = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v2/hooks/{}", hook.id),
        Some(json!({"reuse_instances": true})),
    )
    .await;
    assert_eq!(reusing.status, 201, "{}", reusing.text);
    for _ in 0..3 {
        assert_eq!(get_token(&server, &seeded).await.status, 200);
    }
    let reused = send(Method::GET, &metrics, &[], "").await.text;
    let reuses = format!("hookd_hook_instance_reuses_total{{{hook_series}}}");
    assert_eq!(sample(&after, &reuses), 0.0, "{after}");
    assert_eq!(sample(&reused, &reuses), 2.0, "{reused}");

    // The token server's own address has no /metrics, and the metrics address nothing else.
    let on_main = send(Method::GET, &format!("{}/metrics", server.base), &[], "").await;
    assert_eq!(on_main.status, 404);
    let elsewhere = send(
        Method::GET,
        &metrics.replace("/metrics", "/oauth/token"),
        &[],
        "",
    )
    .await;
    assert_eq!(elsewhere.status, 404);
    server.stop().await;
}
