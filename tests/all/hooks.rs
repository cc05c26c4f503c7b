//! The hook engine driven with real components: the examples, every hostile guest, module
//! validation, concurrency, the compiled-artifact cache and the registry.

use std::sync::Arc;
use std::time::Duration;

use hookd::hooks::{
    ArtifactCacheSettings, CredentialsExchangeEvent, DenyCode, EngineSettings, ExtensibilityPoint,
    HookEngine, HookError, HookLimits, Invocation, LoadSource, LoadedHook, ModuleRejected,
    OutputViolation, TokenChanges,
};
use hookd::registry::{ActiveHook, HookRegistry};
use hookd_tests::{
    DENY_BY_AUDIENCE, FORBIDDEN_IMPORT, FaultsOf, HOSTILE, JSON_ANSWER, METADATA_CLAIMS, SEED,
    WRONG_WORLD, engine, event, load, minor_page_faults, wasm,
};
use serde_json::json;

/// A hang fails the test instead of stalling CI. Generous: it bounds, it does not time.
const BOUND: Duration = Duration::from_secs(20);

/// One invocation of `hook` on `event`, within [`BOUND`].
async fn invoke_bounded(
    engine: &HookEngine,
    hook: &LoadedHook,
    event: CredentialsExchangeEvent,
) -> Invocation {
    tokio::time::timeout(BOUND, engine.invoke_credentials_exchange(hook, event))
        .await
        .expect("the invocation ended within the bound")
}

async fn run(engine: &HookEngine, path: &str, limits: HookLimits, audience: &str) -> Invocation {
    let hook = load(engine, path, limits);
    invoke_bounded(engine, &hook, event(audience)).await
}

/// Limits for misbehaving hooks whose fuel, memory, stack or output limit must end the call.
/// The deadline is generous, so it never wins that race on a loaded machine: only the tests
/// about deadlines use [`deadline_limits`].
fn hostile_limits() -> HookLimits {
    HookLimits {
        fuel: 50_000_000,
        memory_bytes: 16 << 20,
        timeout_ms: HookLimits::MAX_TIMEOUT_MS,
        ..HookLimits::default()
    }
}

/// Limits for the tests about deadlines: a short deadline, fuel to spare.
fn deadline_limits(timeout_ms: u64) -> HookLimits {
    HookLimits {
        fuel: u64::MAX / 2,
        timeout_ms,
        ..hostile_limits()
    }
}

#[tokio::test]
async fn seed_example_adds_the_claim_and_the_extra_scope() {
    let engine = engine();
    let invocation = run(
        &engine,
        SEED,
        HookLimits::default(),
        "https://api.example.com/",
    )
    .await;
    let changes = invocation.result.expect("seed hook allows");
    assert_eq!(
        changes.scope,
        Some(vec!["read:reports".to_owned(), "extra".to_owned()])
    );
    assert_eq!(
        serde_json::Value::Object(changes.claims),
        json!({"https://foo.com/claim": "bar"})
    );
    assert!(invocation.fuel_used > 0);
    assert!(invocation.log.notices.is_empty());
}

#[tokio::test]
async fn seed_example_with_no_scope_yields_only_extra() {
    let engine = engine();
    let hook = load(&engine, SEED, HookLimits::default());
    let mut event = event("https://api.example.com/");
    event.scope = None;
    let changes = engine
        .invoke_credentials_exchange(&hook, event)
        .await
        .result
        .expect("allows");
    assert_eq!(changes.scope, Some(vec!["extra".to_owned()]));
}

#[tokio::test]
async fn deny_by_audience_example_denies_unknown_apis_and_logs() {
    let engine = engine();
    let allowed = run(
        &engine,
        DENY_BY_AUDIENCE,
        HookLimits::default(),
        "https://api.example.com/",
    )
    .await;
    let changes = allowed.result.expect("allowed audience passes");
    assert_eq!(changes.scope, None);
    assert!(changes.claims.is_empty());

    let denied = run(
        &engine,
        DENY_BY_AUDIENCE,
        HookLimits::default(),
        "https://admin.example.com/",
    )
    .await;
    match denied.result {
        Err(HookError::Denied(denial)) => {
            assert_eq!(denial.code, DenyCode::InvalidRequest);
            assert!(denial.description.contains("https://admin.example.com/"));
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(
        denied.log.output,
        "denied client-1 for audience https://admin.example.com/\n"
    );
}

#[tokio::test]
async fn metadata_claims_example_reads_metadata_and_the_secret() {
    let engine = engine();
    let hook = load(&engine, METADATA_CLAIMS, HookLimits::default());
    let mut event = event("https://api.example.com/");
    event
        .context
        .secrets
        .insert("KEY_ID".to_owned(), "k-7".to_owned());
    event
        .client
        .metadata
        .insert("tier".to_owned(), "premium".to_owned());
    event
        .client
        .metadata
        .insert("region".to_owned(), "eu".to_owned());
    let changes = engine
        .invoke_credentials_exchange(&hook, event.clone())
        .await
        .result
        .expect("allows");
    assert_eq!(
        serde_json::Value::Object(changes.claims),
        json!({
            "https://hookd.example.com/tier": "premium",
            "https://hookd.example.com/key_id": "k-7",
            "https://hookd.example.com/client": {"name": "reporting", "region": "eu"},
        })
    );
    assert_eq!(
        changes.scope,
        Some(vec!["read:reports".to_owned(), "export:bulk".to_owned()])
    );

    event.context.secrets.clear();
    let missing = engine.invoke_credentials_exchange(&hook, event).await;
    assert!(matches!(
        missing.result,
        Err(HookError::Denied(ref d)) if d.code == DenyCode::ServerError
    ));
}

#[tokio::test]
async fn every_input_field_reaches_the_hook() {
    let engine = engine();
    let changes = run(
        &engine,
        HOSTILE,
        HookLimits::default(),
        "https://echo.example/",
    )
    .await
    .result
    .expect("echo allows");
    assert_eq!(
        serde_json::Value::Object(changes.claims),
        json!({
            "client_id_seen": "client-1",
            "client_name": "reporting",
            "tenant": "acme",
            "metadata": "tier=gold",
            "audience_seen": "https://echo.example/",
            "secret_names": "API_KEY",
            "secret_value": "s3cret",
            "ip": "203.0.113.7",
            "hostname": "auth.acme.example",
            "user_agent": "curl/8.5",
            "requested": "read:reports",
            "api_name": "Reports API",
            "context_tenant": "acme",
            "scope_was_none": false,
        })
    );
}

#[tokio::test]
async fn infinite_loop_runs_out_of_fuel() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "loop").await;
    assert_eq!(
        invocation.result.unwrap_err(),
        HookError::OutOfFuel { limit: 50_000_000 }
    );
    assert_eq!(invocation.fuel_used, 50_000_000);
}

#[tokio::test]
async fn infinite_loop_with_ample_fuel_hits_the_time_limit() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, deadline_limits(100), "loop").await;
    assert_eq!(
        invocation.result.unwrap_err(),
        HookError::Timeout { limit_ms: 100 }
    );
}

#[tokio::test]
async fn sleeping_in_a_host_call_hits_the_time_limit() {
    // The sleep blocks in WASI's poll, where neither fuel nor epochs reach: the engine's
    // timeout must still end it.
    let engine = engine();
    let invocation = run(&engine, HOSTILE, deadline_limits(300), "sleep").await;
    assert_eq!(
        invocation.result.unwrap_err(),
        HookError::Timeout { limit_ms: 300 }
    );
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "memory-bomb").await;
    match invocation.result {
        Err(HookError::MemoryLimit { requested, limit }) => {
            assert_eq!(limit, 16 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
}

#[tokio::test]
async fn deep_recursion_traps_on_the_bounded_stack() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "recursion").await;
    assert!(
        matches!(invocation.result, Err(HookError::Trap { .. })),
        "{:?}",
        invocation.result
    );
}

#[tokio::test]
async fn panic_traps_and_its_message_lands_in_the_log() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "panic").await;
    assert!(matches!(invocation.result, Err(HookError::Trap { .. })));
    assert!(
        invocation
            .log
            .output
            .contains("hostile guest panicked on purpose"),
        "log: {:?}",
        invocation.log
    );
}

#[tokio::test]
async fn calling_exit_is_a_trap() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "exit").await;
    match invocation.result {
        // WASI 0.2 `exit` carries only ok/err, so exit(3) arrives as status 1.
        Err(HookError::Trap { reason }) => assert!(reason.contains("called exit"), "{reason}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_output_is_invalid_output() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "oversized-output").await;
    assert!(matches!(
        invocation.result,
        Err(HookError::InvalidOutput(OutputViolation::TooLarge {
            limit: 100_000,
            ..
        }))
    ));
}

#[tokio::test]
async fn claim_that_is_not_json_is_invalid_output() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "invalid-json").await;
    assert!(matches!(
        invocation.result,
        Err(HookError::InvalidOutput(OutputViolation::ClaimNotJson { ref name, .. }))
            if name == "https://example.com/broken"
    ));
}

#[tokio::test]
async fn restricted_claims_are_dropped_and_reported() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "restricted-claims").await;
    let changes = invocation
        .result
        .expect("restricted claims do not fail the call");
    assert_eq!(
        serde_json::Value::Object(changes.claims),
        json!({"https://example.com/ok": true})
    );
    let notices = invocation.log.notices.join("\n");
    for name in ["`iss`", "`sub`", "`scope`", "`https://auth0.com/role`"] {
        assert!(notices.contains(name), "no notice for {name} in {notices}");
    }
}

#[tokio::test]
async fn a_hook_denial_is_typed() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "deny").await;
    match invocation.result {
        Err(HookError::Denied(denial)) => {
            assert_eq!(denial.code, DenyCode::InvalidScope);
            assert_eq!(denial.description, "scope not allowed for client-1");
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn a_huge_denial_is_cut_before_the_host_keeps_it() {
    let engine = engine();
    let limits = HookLimits {
        memory_bytes: 64 << 20,
        ..hostile_limits()
    };
    let invocation = run(&engine, HOSTILE, limits, "huge-deny").await;
    match invocation.result {
        Err(HookError::Denied(denial)) => {
            assert_eq!(denial.code, DenyCode::InvalidRequest);
            assert!(denial.description.starts_with("ddd"));
            assert!(
                denial.description.len() < 1_100,
                "an 8 MiB description was kept as {} bytes",
                denial.description.len()
            );
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn host_allocations_a_guest_can_ask_for_are_bounded() {
    let engine = engine();
    // A small request for random bytes works; a large one traps instead of making the host
    // allocate it.
    let small = run(&engine, HOSTILE, hostile_limits(), "random-1k").await;
    let changes = small.result.expect("1 KiB of random bytes");
    assert_eq!(changes.claims["random_bytes"], 1024);
    let flood = run(&engine, HOSTILE, hostile_limits(), "random-flood").await;
    assert!(
        matches!(flood.result, Err(HookError::Trap { .. })),
        "{:?}",
        flood.result
    );
    // So does holding more host resources than the per-call table allows.
    let resources = run(&engine, HOSTILE, hostile_limits(), "resource-flood").await;
    assert!(
        matches!(resources.result, Err(HookError::Trap { .. })),
        "{:?}",
        resources.result
    );
}

#[tokio::test]
async fn a_reported_failure_is_typed_cut_to_4_kib_and_noted() {
    let engine = engine();
    let invocation = run(&engine, HOSTILE, hostile_limits(), "fail").await;
    match &invocation.result {
        Err(HookError::Failed { message }) => {
            assert!(
                message.starts_with("lookup failed for client-1: xxx"),
                "{message}"
            );
            assert!(message.ends_with("(truncated)"), "{message}");
            assert!(message.len() < 4_200, "{}", message.len());
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(
        invocation
            .log
            .notices
            .iter()
            .any(|notice| notice.starts_with("the hook failed: lookup failed")),
        "{:?}",
        invocation.log.notices
    );
}

/// Runs the JSON-world guest, which answers with the text given (or, with `None`, changes
/// that echo the event).
async fn json_answer(answer: Option<&str>) -> Invocation {
    json_answer_within(answer, HookLimits::default()).await
}

async fn json_answer_within(answer: Option<&str>, limits: HookLimits) -> Invocation {
    let engine = engine();
    let hook = load(&engine, JSON_ANSWER, limits);
    let mut event = event("https://api.example.com/");
    if let Some(answer) = answer {
        event
            .client
            .metadata
            .insert("answer".to_owned(), answer.to_owned());
    }
    invoke_bounded(&engine, &hook, event).await
}

#[tokio::test]
async fn a_json_world_hook_gets_the_event_as_json_and_its_changes_apply() {
    let invocation = json_answer(None).await;
    let changes = invocation.result.expect("the JSON hook allows");
    assert_eq!(
        changes.scope,
        Some(vec!["read:reports".to_owned(), "json".to_owned()])
    );
    assert_eq!(
        serde_json::Value::Object(changes.claims),
        json!({
            "https://example.com/client": "client-1",
            "https://example.com/request": {
                "ip": "203.0.113.7",
                "hostname": "auth.acme.example",
                "method": "POST",
                "user_agent": "curl/8.5",
            },
            "https://example.com/n": 7,
        })
    );
}

#[tokio::test]
async fn json_world_denials_failures_and_the_claim_policy_match_the_typed_world() {
    let denied = json_answer(Some(
        r#"{"deny": {"code": "invalid_request", "description": "no"}}"#,
    ))
    .await
    .result;
    match denied {
        Err(HookError::Denied(denial)) => {
            assert_eq!(denial.code, DenyCode::InvalidRequest);
            assert_eq!(denial.description, "no");
        }
        other => panic!("expected a denial, got {other:?}"),
    }

    let failed = json_answer(Some(r#"{"fail": "lookup failed"}"#)).await;
    assert!(matches!(
        failed.result,
        Err(HookError::Failed { ref message }) if message == "lookup failed"
    ));

    let restricted = json_answer(Some(
        r#"{"changes": {"claims": {"iss": "evil", "https://example.com/ok": [1, {"a": null}]}}}"#,
    ))
    .await;
    let changes = restricted
        .result
        .expect("a restricted claim is dropped, not fatal");
    assert_eq!(changes.scope, None);
    assert_eq!(
        serde_json::Value::Object(changes.claims),
        json!({"https://example.com/ok": [1, {"a": null}]})
    );
    assert!(restricted.log.notices.iter().any(|n| n.contains("`iss`")));

    let duplicate = json_answer(Some(r#"{"changes": {"claims": {"c": 1, "c": 2}}}"#)).await;
    assert!(matches!(
        duplicate.result,
        Err(HookError::InvalidOutput(OutputViolation::DuplicateClaim { ref name })) if name == "c"
    ));
    let bad_scope = json_answer(Some(r#"{"changes": {"scope": ["has space"]}}"#)).await;
    assert!(matches!(
        bad_scope.result,
        Err(HookError::InvalidOutput(
            OutputViolation::InvalidScope { .. }
        ))
    ));
}

#[tokio::test]
async fn a_json_answer_of_the_wrong_form_is_invalid_output_never_coerced() {
    for answer in [
        "not json",
        "{}",
        r#"{"changes": {}, "deny": {"code": "invalid_scope", "description": ""}}"#,
        r#"{"changes": {"scope": "read"}}"#,
        r#"{"changes": {"scope": [1]}}"#,
        r#"{"changes": {"claims": [["a", 1]]}}"#,
        r#"{"changes": {"scopes": ["read"]}}"#,
        r#"{"deny": {"code": "access_denied", "description": "x"}}"#,
        r#"{"deny": {"code": "invalid_scope", "description": "x", "status": 401}}"#,
        r#"{"fail": 1}"#,
    ] {
        let invocation = json_answer(Some(answer)).await;
        assert!(
            matches!(
                invocation.result,
                Err(HookError::InvalidOutput(
                    OutputViolation::MalformedAnswer { .. }
                ))
            ),
            "{answer}: {:?}",
            invocation.result
        );
    }
    // Past the output limit plus room for the answer's own JSON.
    let huge = format!(
        r#"{{"changes": {{"claims": {{"big": "{}"}}}}}}"#,
        "x".repeat(20_000)
    );
    let limits = HookLimits {
        max_output_bytes: 1_000,
        ..HookLimits::default()
    };
    let invocation = json_answer_within(Some(&huge), limits).await;
    assert!(matches!(
        invocation.result,
        Err(HookError::InvalidOutput(OutputViolation::TooLarge { .. }))
    ));
}

#[tokio::test]
async fn chatty_hooks_are_truncated_not_failed() {
    let engine = engine();
    let limits = HookLimits {
        max_log_bytes: 1_000,
        ..HookLimits::default()
    };
    let invocation = run(&engine, HOSTILE, limits, "log-spam").await;
    assert!(invocation.result.is_ok());
    assert!(invocation.log.truncated);
    assert_eq!(invocation.log.output.len(), 1_000);
    assert!(
        invocation
            .log
            .output
            .starts_with("log line 0 of a chatty hook\n")
    );
}

#[tokio::test]
async fn oversized_input_is_refused_before_the_hook_runs() {
    let engine = engine();
    let limits = HookLimits {
        max_input_bytes: 64,
        ..HookLimits::default()
    };
    let invocation = run(&engine, HOSTILE, limits, "https://echo.example/").await;
    assert!(matches!(
        invocation.result,
        Err(HookError::InputTooLarge { limit: 64, .. })
    ));
    assert_eq!(invocation.fuel_used, 0);
}

#[tokio::test]
async fn the_sandbox_grants_no_filesystem_network_env_args_or_stdin() {
    let engine = engine();
    let changes = run(&engine, HOSTILE, HookLimits::default(), "probe-sandbox")
        .await
        .result
        .expect("probe allows");
    for capability in ["fs", "dir", "net"] {
        let seen = changes.claims[capability].as_str().unwrap_or_default();
        assert!(seen.starts_with("denied"), "{capability}: {seen}");
    }
    assert_eq!(changes.claims["env"], json!(0));
    assert_eq!(changes.claims["args"], json!(0));
    let stdin = changes.claims["stdin"].as_str().unwrap_or_default();
    assert!(stdin.starts_with("closed"), "stdin: {stdin}");
}

#[tokio::test]
async fn clocks_and_randomness_work_and_differ_per_instance() {
    let engine = engine();
    let hook = load(&engine, HOSTILE, HookLimits::default());
    let first = engine
        .invoke_credentials_exchange(&hook, event("clock-and-random"))
        .await
        .result
        .expect("allows");
    let second = engine
        .invoke_credentials_exchange(&hook, event("clock-and-random"))
        .await
        .result
        .expect("allows");
    let host_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let guest_now = first.claims["now"].as_u64().expect("a number");
    assert!(
        host_now.abs_diff(guest_now) < 60,
        "{guest_now} vs {host_now}"
    );
    assert_eq!(first.claims["monotonic_ok"], json!(true));
    assert_ne!(first.claims["random"], second.claims["random"]);
}

#[tokio::test]
async fn no_state_survives_between_invocations() {
    let engine = engine();
    let hook = load(&engine, HOSTILE, HookLimits::default());
    for _ in 0..3 {
        let changes = engine
            .invoke_credentials_exchange(&hook, event("counter"))
            .await
            .result
            .expect("allows");
        assert_eq!(changes.claims["calls"], json!(1));
    }
}

/// A call that writes 128 disjoint pages (more runs than one reset scan reports: the vendored
/// wasmtime patch) leaves nothing behind for the next fresh instance in its pool slot, whether
/// the pages come from the memory image or start zeroed; and the slot keeps them resident,
/// so later instances do not fault them back in. Upstream wasmtime 48 decommits everything
/// after the 32nd run, which cost each call here 170 faults.
#[tokio::test]
async fn a_call_that_dirties_many_disjoint_pages_leaves_the_next_instance_fresh_and_resident() {
    // The in-place reset needs PAGEMAP_SCAN (Linux 6.7); without it wasmtime rewrites and
    // releases the slot, which is fresh but faults pages back in, so only freshness holds.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse::<u32>().ok());
    let kernel = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    let scans = kernel >= (6, 7);
    if !scans {
        eprintln!("kernel {release}: no PAGEMAP_SCAN, so only freshness is checked, not residency");
    }
    let engine = engine();
    let hook = load(&engine, HOSTILE, HookLimits::default());
    let mut faults = Vec::new();
    for call in 0..6 {
        // The current-thread runtime runs the call on this thread, so its faults count here.
        let before = minor_page_faults(FaultsOf::Thread);
        let invocation = invoke_bounded(&engine, &hook, event("scatter")).await;
        faults.push(minor_page_faults(FaultsOf::Thread) - before);
        let changes = invocation.result.expect("scatter allows");
        assert_eq!(
            (
                &changes.claims["image_pages_written_before"],
                &changes.claims["zeroed_pages_written_before"]
            ),
            (&json!(0), &json!(0)),
            "call {call} saw an earlier call's writes"
        );
    }
    // The first calls map the slot; from then on the 128 pages stay resident. The minimum
    // over the later calls keeps unrelated host faults out of it.
    let steady = faults[2..].iter().min().expect("calls ran");
    assert!(
        !scans || *steady < 32,
        "fresh instances fault the slot's pages back in: {faults:?} faults per call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_invocations_are_correct_and_independent() {
    let engine = engine();
    let hook = Arc::new(load(&engine, HOSTILE, HookLimits::default()));
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..96 {
        let (engine, hook) = (engine.clone(), hook.clone());
        calls.spawn(async move {
            let mut event = event("https://echo.example/");
            event.client.id = format!("client-{i}");
            let invocation = engine.invoke_credentials_exchange(&hook, event).await;
            (i, invocation)
        });
    }
    let mut seen = 0;
    while let Some(joined) = calls.join_next().await {
        let (i, invocation) = joined.expect("task ran");
        let changes = invocation.result.expect("echo allows");
        assert_eq!(
            changes.claims["client_id_seen"],
            json!(format!("client-{i}"))
        );
        assert_eq!(invocation.log.output, format!("echo for client-{i}\n"));
        seen += 1;
    }
    assert_eq!(seen, 96);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_hooks_do_not_stop_the_host_serving_others() {
    let engine = HookEngine::new(EngineSettings {
        max_concurrency: 8,
        cache: None,
    })
    .expect("engine");
    let hostile = Arc::new(load(&engine, HOSTILE, hostile_limits()));
    let sleeper = Arc::new(load(&engine, HOSTILE, deadline_limits(300)));
    let seed = Arc::new(load(&engine, SEED, HookLimits::default()));
    let mut calls = tokio::task::JoinSet::new();
    type Check = fn(&Result<TokenChanges, HookError>) -> bool;
    let cases: [(&'static str, Check); 5] = [
        ("loop", |r| matches!(r, Err(HookError::OutOfFuel { .. }))),
        ("sleep", |r| matches!(r, Err(HookError::Timeout { .. }))),
        ("memory-bomb", |r| {
            matches!(r, Err(HookError::MemoryLimit { .. }))
        }),
        ("recursion", |r| matches!(r, Err(HookError::Trap { .. }))),
        ("panic", |r| matches!(r, Err(HookError::Trap { .. }))),
    ];
    for (round, (audience, check)) in cases.iter().cycle().take(10).enumerate() {
        let hook = if *audience == "sleep" {
            sleeper.clone()
        } else {
            hostile.clone()
        };
        let (engine, check, audience) = (engine.clone(), *check, *audience);
        calls.spawn(async move {
            let invocation = engine
                .invoke_credentials_exchange(&hook, event(audience))
                .await;
            (
                format!("hostile {round} {audience}: {:?}", invocation.result),
                check(&invocation.result),
            )
        });
    }
    for round in 0..40 {
        let (engine, hook) = (engine.clone(), seed.clone());
        calls.spawn(async move {
            let invocation = engine
                .invoke_credentials_exchange(&hook, event("https://api.example.com/"))
                .await;
            let good = invocation
                .result
                .is_ok_and(|c| c.claims["https://foo.com/claim"] == "bar");
            (format!("seed {round}"), good)
        });
    }
    let finished = tokio::time::timeout(BOUND, async {
        let mut outcomes = Vec::new();
        while let Some(joined) = calls.join_next().await {
            outcomes.push(joined.expect("task ran"));
        }
        outcomes
    })
    .await
    .expect("all calls ended within the bound");
    assert_eq!(finished.len(), 50);
    for (name, as_expected) in finished {
        assert!(as_expected, "{name} did not end as expected");
    }
}

#[test]
fn a_core_module_is_refused() {
    let core = wat::parse_str("(module (func (export \"exchange\")))").expect("wat");
    let error = engine()
        .load(
            ExtensibilityPoint::CredentialsExchange,
            &core,
            HookLimits::default(),
        )
        .unwrap_err();
    assert_eq!(error, ModuleRejected::CoreModule);
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    let error = engine()
        .load(
            ExtensibilityPoint::CredentialsExchange,
            b"module.exports = function () {}",
            HookLimits::default(),
        )
        .unwrap_err();
    assert_eq!(error, ModuleRejected::NotWasm);
}

#[test]
fn a_truncated_component_is_refused_as_invalid() {
    let mut bytes = wasm(SEED);
    bytes.truncate(bytes.len() / 2);
    let error = engine()
        .load(
            ExtensibilityPoint::CredentialsExchange,
            &bytes,
            HookLimits::default(),
        )
        .unwrap_err();
    assert!(matches!(error, ModuleRejected::Invalid(_)), "{error:?}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let error = engine()
        .load(
            ExtensibilityPoint::CredentialsExchange,
            &wasm(WRONG_WORLD),
            HookLimits::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            error,
            ModuleRejected::WrongWorld {
                world: "credentials-exchange",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_component_without_the_export_is_refused_naming_it() {
    let empty = wat::parse_str("(component)").expect("wat");
    let error = engine()
        .load(
            ExtensibilityPoint::CredentialsExchange,
            &empty,
            HookLimits::default(),
        )
        .unwrap_err();
    assert_eq!(
        error,
        ModuleRejected::MissingExport {
            world: "credentials-exchange",
            export: "exchange"
        }
    );
    assert!(error.to_string().contains("`exchange`"));
}

#[test]
fn a_component_importing_a_host_function_is_refused_naming_it() {
    let error = engine()
        .load(
            ExtensibilityPoint::CredentialsExchange,
            &wasm(FORBIDDEN_IMPORT),
            HookLimits::default(),
        )
        .unwrap_err();
    assert_eq!(
        error,
        ModuleRejected::UnsupportedImport {
            name: "fetch".to_owned()
        }
    );
}

#[test]
fn a_component_importing_wasi_http_is_refused_naming_it() {
    let component =
        wat::parse_str(r#"(component (import "wasi:http/outgoing-handler@0.2.10" (instance)))"#)
            .expect("wat");
    let error = engine()
        .load(
            ExtensibilityPoint::CredentialsExchange,
            &component,
            HookLimits::default(),
        )
        .unwrap_err();
    assert_eq!(
        error,
        ModuleRejected::UnsupportedImport {
            name: "wasi:http/outgoing-handler@0.2.10".to_owned()
        }
    );
}

#[test]
fn unusable_limits_are_refused() {
    let limits = HookLimits {
        timeout_ms: 0,
        ..HookLimits::default()
    };
    let error = engine()
        .load(ExtensibilityPoint::CredentialsExchange, &wasm(SEED), limits)
        .unwrap_err();
    assert!(matches!(error, ModuleRejected::InvalidLimits(_)));
}

fn cache_settings(dir: &std::path::Path, key: &[u8]) -> EngineSettings {
    EngineSettings {
        max_concurrency: 2,
        cache: Some(ArtifactCacheSettings::new(dir.to_owned(), key)),
    }
}

/// The cached artifact files in `dir` (not the key or temporaries).
fn artifacts(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .collect();
    found.sort();
    found
}

fn run_seed_like(engine: &HookEngine, hook: &LoadedHook) -> Result<TokenChanges, HookError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime
        .block_on(engine.invoke_credentials_exchange(hook, event("https://api.example.com/")))
        .result
}

#[test]
fn a_restart_loads_compiled_hooks_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = cache_settings(dir.path(), b"installation key of 32 bytes ...");
    let first = HookEngine::new(settings.clone()).expect("engine");
    let compiled = load(&first, SEED, HookLimits::default());
    assert!(matches!(compiled.source, LoadSource::Compiled { .. }));
    drop(first);

    // A new engine, as after a restart: nothing is compiled.
    let second = HookEngine::new(settings.clone()).expect("engine");
    let cached = load(&second, SEED, HookLimits::default());
    assert!(matches!(cached.source, LoadSource::Cached { .. }));
    assert_eq!(cached.sha256, compiled.sha256);
    let changes = run_seed_like(&second, &cached).expect("cached hook runs");
    assert_eq!(changes.claims["https://foo.com/claim"], "bar");
    drop((cached, second));

    // A damaged artifact is discarded and the module compiled again.
    for artifact in artifacts(dir.path()) {
        std::fs::write(artifact, b"not an artifact").expect("damage");
    }
    let third = HookEngine::new(settings).expect("engine");
    let recompiled = load(&third, SEED, HookLimits::default());
    assert!(matches!(recompiled.source, LoadSource::Compiled { .. }));

    // Another installation's key does not verify this one's artifacts.
    let other = HookEngine::new(cache_settings(
        dir.path(),
        b"another installation's key .....",
    ))
    .expect("engine");
    let foreign = load(&other, SEED, HookLimits::default());
    assert!(matches!(foreign.source, LoadSource::Compiled { .. }));
}

#[test]
fn a_swapped_artifact_is_never_run() {
    // Whoever can write the cache directory puts one hook's artifact under another's name:
    // the engine must compile the real module, never run the swapped code.
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = cache_settings(dir.path(), b"installation key of 32 bytes ...");
    let first = HookEngine::new(settings.clone()).expect("engine");
    let seed = load(&first, SEED, HookLimits::default());
    let deny = load(&first, DENY_BY_AUDIENCE, HookLimits::default());
    drop(first);
    let artifact_of = |sha: &str| {
        artifacts(dir.path())
            .into_iter()
            .find(|path| {
                path.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with(sha))
            })
            .expect("artifact")
    };
    std::fs::copy(artifact_of(&deny.sha256), artifact_of(&seed.sha256)).expect("swap");

    let second = HookEngine::new(settings).expect("engine");
    let reloaded = load(&second, SEED, HookLimits::default());
    assert!(
        matches!(reloaded.source, LoadSource::Compiled { .. }),
        "the swapped artifact was not refused: {:?}",
        reloaded.source
    );
    let changes = run_seed_like(&second, &reloaded).expect("the real seed hook runs");
    assert_eq!(changes.claims["https://foo.com/claim"], "bar");
}

#[cfg(unix)]
#[test]
fn an_artifact_writable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = cache_settings(dir.path(), b"installation key of 32 bytes ...");
    drop(load(
        &HookEngine::new(settings.clone()).expect("engine"),
        SEED,
        HookLimits::default(),
    ));
    for artifact in artifacts(dir.path()) {
        let mode = std::fs::metadata(&artifact)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "artifacts are written private: {mode:o}");
        std::fs::set_permissions(&artifact, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    }
    let second = HookEngine::new(settings).expect("engine");
    let reloaded = load(&second, SEED, HookLimits::default());
    assert!(matches!(reloaded.source, LoadSource::Compiled { .. }));
}

#[tokio::test]
async fn the_registry_swaps_hooks_atomically() {
    let engine = engine();
    let registry = HookRegistry::new();
    let point = ExtensibilityPoint::CredentialsExchange;
    assert!(registry.enabled(point).is_none());

    let metrics = hookd::metrics::Metrics::new();
    let active = |loaded: LoadedHook| {
        Arc::new(ActiveHook {
            id: String::new(),
            name: String::new(),
            failure_policy: Default::default(),
            secrets: Default::default(),
            metrics: metrics.hook("", &loaded.sha256),
            loaded,
            canary: None,
            shadow: None,
        })
    };
    let seed = active(load(&engine, SEED, HookLimits::default()));
    let deny = active(load(&engine, DENY_BY_AUDIENCE, HookLimits::default()));
    assert!(registry.enable(seed.clone()).is_none());

    // A request in flight holds the hook it started with.
    let in_flight = registry.enabled(point).expect("enabled");
    let previous = registry.enable(deny.clone()).expect("seed was enabled");
    assert_eq!(previous.loaded.sha256, seed.loaded.sha256);
    let old = engine
        .invoke_credentials_exchange(&in_flight.loaded, event("https://other.example/"))
        .await;
    assert!(
        old.result.is_ok(),
        "the old hook still runs for its request"
    );

    let current = registry.enabled(point).expect("enabled");
    assert_eq!(current.loaded.sha256, deny.loaded.sha256);
    let new = engine
        .invoke_credentials_exchange(&current.loaded, event("https://other.example/"))
        .await;
    assert!(matches!(new.result, Err(HookError::Denied(_))));

    assert_eq!(
        registry.disable(point).map(|h| h.loaded.sha256.clone()),
        Some(deny.loaded.sha256.clone())
    );
    assert!(registry.enabled(point).is_none());
}

/// A swap file turned on for the life of the value, off again when it drops.
struct SwapFile {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SwapFile {
    fn on(mib: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("swap");
        let zeros = vec![0u8; 1 << 20];
        let mut file = std::fs::File::create(&path).expect("create");
        for _ in 0..mib {
            std::io::Write::write_all(&mut file, &zeros).expect("write");
        }
        file.sync_all().expect("sync");
        drop(file);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        for (program, args) in [("mkswap", vec![&path]), ("swapon", vec![&path])] {
            let status = std::process::Command::new(program)
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap_or_else(|error| panic!("{program}: {error}"));
            assert!(status.success(), "{program} failed: run as root");
        }
        SwapFile { path, _dir: dir }
    }
}

impl Drop for SwapFile {
    fn drop(&mut self) {
        let _ = std::process::Command::new("swapoff")
            .arg(&self.path)
            .status();
    }
}

/// Asks the kernel to page out every private writable mapping of this process
/// (`MADV_PAGEOUT`); with swap on, anonymous pages go to swap. Returns `VmSwap` in KiB after.
#[allow(
    unsafe_code,
    reason = "madvise is the only way to make the kernel swap pages out on demand"
)]
fn page_out_this_process() -> u64 {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") || !perms.ends_with('p') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: MADV_PAGEOUT only asks the kernel to reclaim pages; their contents stay
        // what they were (they fault back in from swap), so no memory is invalidated.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT);
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmSwap:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Swap turned on after the engine started: a page a call wrote, which the kernel then swaps
/// out, must be reset like a present one, or the next instance in the slot reads it back.
/// Turns on a 1 GiB swap file system-wide for a few seconds, so it runs only as root with
/// `HOOKD_TEST_SWAP=1 cargo test --test all -- hooks::a_written_page_swapped`; otherwise it
/// says it was skipped.
#[tokio::test(flavor = "current_thread")]
async fn a_written_page_swapped_out_between_calls_is_reset_too() {
    if std::env::var_os("HOOKD_TEST_SWAP").is_none() {
        eprintln!("skipped: needs root and HOOKD_TEST_SWAP=1 (it turns swap on for a moment)");
        return;
    }
    let engine = engine();
    let limits = HookLimits {
        timeout_ms: 10_000,
        ..HookLimits::default()
    };
    let hook = load(&engine, HOSTILE, limits);
    let _swap = SwapFile::on(1024);
    for call in 0..3 {
        // The call writes its pages and waits; meanwhile they are swapped out, so when the
        // call ends and its slot is reset, they are not present.
        let pager = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            page_out_this_process()
        });
        let invocation = invoke_bounded(&engine, &hook, event("scatter-then-wait")).await;
        let swapped_kib = pager.join().expect("pager");
        assert!(swapped_kib > 0, "nothing was swapped out");
        invocation.result.expect("scatter-then-wait allows");
        let next = invoke_bounded(&engine, &hook, event("scatter")).await;
        let changes = next.result.expect("scatter allows");
        assert_eq!(
            (
                &changes.claims["image_pages_written_before"],
                &changes.claims["zeroed_pages_written_before"]
            ),
            (&json!(0), &json!(0)),
            "call {call}: the next instance read pages written before they were swapped out"
        );
    }
}

/// The hostile guest's call count in a successful `counter` invocation.
fn calls_seen(invocation: &Invocation) -> u64 {
    let changes = invocation.result.as_ref().expect("counter allows");
    changes.claims["calls"].as_u64().expect("a count")
}

#[tokio::test(flavor = "current_thread")]
async fn a_reused_instance_is_discarded_after_a_trap_a_limit_or_invalid_output() {
    let engine = engine();
    let mut hook = load(&engine, HOSTILE, hostile_limits());
    engine.set_instance_reuse(&mut hook, true);
    let counter = || invoke_bounded(&engine, &hook, event("counter"));
    assert_eq!(calls_seen(&counter().await), 1);
    assert_eq!(calls_seen(&counter().await), 2, "the instance is reused");
    for (audience, ends) in [
        ("panic", "trap"),
        ("loop", "out_of_fuel"),
        ("memory-bomb", "memory_limit"),
        ("invalid-json", "invalid_output"),
    ] {
        let failed = invoke_bounded(&engine, &hook, event(audience)).await;
        let error = failed.result.expect_err("the call fails");
        assert_eq!(error.kind(), ends, "{audience}: {error}");
        assert_eq!(
            hook.idle_instances(),
            0,
            "{audience} left its instance idle"
        );
        assert_eq!(
            calls_seen(&counter().await),
            1,
            "after {audience}, the next call starts on a fresh instance"
        );
        assert_eq!(calls_seen(&counter().await), 2);
    }

    // New limits are a new loaded hook: its calls start fresh too.
    let mut relimited = load(
        &engine,
        HOSTILE,
        HookLimits {
            fuel: 40_000_000,
            ..hostile_limits()
        },
    );
    engine.set_instance_reuse(&mut relimited, true);
    let first = invoke_bounded(&engine, &relimited, event("counter")).await;
    assert_eq!(calls_seen(&first), 1);
}

#[test]
fn claims_in_the_webtask_namespaces_are_dropped_and_reported() {
    let mut log = hookd::hooks::HookLog::default();
    let changes = hookd::hooks::answer::check_typed_answer(
        None,
        vec![
            (
                "https://tenant.webtask.run/role".to_owned(),
                "\"x\"".to_owned(),
            ),
            (
                "https://sandbox.webtask.io/role".to_owned(),
                "\"x\"".to_owned(),
            ),
            ("https://example.com/kept".to_owned(), "true".to_owned()),
        ],
        100_000,
        &mut log,
    )
    .expect("the call succeeds");
    assert_eq!(
        changes.claims.keys().collect::<Vec<_>>(),
        vec!["https://example.com/kept"]
    );
    assert_eq!(log.notices.len(), 2, "{:?}", log.notices);
    assert!(
        log.notices
            .iter()
            .any(|notice| notice.contains("webtask.run"))
    );
}
