//! Hook engine benchmark: per-invocation cost (fresh Store + instantiate + call + drop) of
//! the seed Rust hook, and compile versus cached load of a module. Prints medians and tails;
//! `docs/BENCHMARKS.md` records the numbers with this command:
//!
//!     cargo bench -p hookd-tests --bench hooks
//!
//! Plain `std::time` over many iterations (no criterion): the quantities are medians of
//! thousands of samples, and ratios within one run are what the document compares.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "benchmark: a failed step aborts"
)]

use std::time::{Duration, Instant};

use hookd::hooks::{EngineSettings, ExtensibilityPoint, HookEngine, HookLimits, LoadSource};
use hookd_tests::{SEED, event, wasm};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<44} n={:<6} median {:>9.1} µs   p90 {:>9.1} µs   p99 {:>9.1} µs",
        samples.len(),
        us(percentile(&samples, 0.5)),
        us(percentile(&samples, 0.9)),
        us(percentile(&samples, 0.99)),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let iterations: usize = std::env::var("HOOKD_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let bytes = wasm(SEED);
    let event = event("https://api.example.com/");

    // Per invocation: the path every token request takes.
    let engine = HookEngine::new(EngineSettings::default()).unwrap();
    let hook = engine
        .load(
            ExtensibilityPoint::CredentialsExchange,
            &bytes,
            HookLimits::default(),
        )
        .unwrap();
    let mut fuel = 0;
    let samples: Vec<Duration> = runtime.block_on(async {
        for _ in 0..1_000 {
            engine
                .invoke_credentials_exchange(&hook, &event)
                .await
                .result
                .unwrap();
        }
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let started = Instant::now();
            let invocation = engine.invoke_credentials_exchange(&hook, &event).await;
            samples.push(started.elapsed());
            fuel = invocation.fuel_used;
            invocation.result.unwrap();
        }
        samples
    });
    report("invoke seed hook (fresh Store + instance)", samples);
    println!("{:<44} {fuel}", "fuel per invocation");

    // Compile versus load from the on-disk cache (what a restart does).
    let cache = tempfile::tempdir().unwrap();
    let cached_engine = HookEngine::new(EngineSettings {
        max_concurrency: 2,
        cache_dir: Some(cache.path().to_owned()),
    })
    .unwrap();
    let first = cached_engine
        .load(
            ExtensibilityPoint::CredentialsExchange,
            &bytes,
            HookLimits::default(),
        )
        .unwrap();
    assert!(matches!(first.source, LoadSource::Compiled { .. }));
    let mut compile = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let hook = engine
            .load(
                ExtensibilityPoint::CredentialsExchange,
                &bytes,
                HookLimits::default(),
            )
            .unwrap();
        compile.push(started.elapsed());
        assert!(matches!(hook.source, LoadSource::Compiled { .. }));

        let started = Instant::now();
        let hook = cached_engine
            .load(
                ExtensibilityPoint::CredentialsExchange,
                &bytes,
                HookLimits::default(),
            )
            .unwrap();
        cached.push(started.elapsed());
        assert!(
            matches!(hook.source, LoadSource::Cached { .. }),
            "a reload must not compile"
        );
    }
    report("load seed hook: compile + validate", compile);
    report("load seed hook: from cache + validate", cached);
}
