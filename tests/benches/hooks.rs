//! Hook engine benchmark: per-invocation cost (fresh Store + instantiate + call + drop) of
//! the seed hook in Rust, in JavaScript (Auth0 Hooks shape, verbatim) and as a JavaScript
//! Action, and of the JavaScript seed hook on a reused live instance (the opt-in per-hook
//! setting); compile versus cached load of a module. Prints medians and tails;
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

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookd::hooks::{EngineSettings, ExtensibilityPoint, HookEngine, HookLimits, LoadSource};
use hookd_tests::{FaultsOf, JS_SEED, JS_SEED_ACTION, SEED, event, minor_page_faults, wasm};

/// The system allocator, counting allocations, for a deterministic per-invocation figure
/// (like fuel) next to the noisy timings.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

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

/// Loads a module for the credentials-exchange point; returns the hook and how long it took.
fn timed_load(engine: &HookEngine, bytes: &[u8]) -> (hookd::hooks::LoadedHook, Duration) {
    let started = Instant::now();
    let hook = engine
        .load(
            ExtensibilityPoint::CredentialsExchange,
            bytes,
            HookLimits::default(),
        )
        .unwrap();
    (hook, started.elapsed())
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
    let event = event("https://api.example.com/");

    // Per invocation: the path every token request takes. The guests run in interleaved
    // blocks, so a noisy neighbour slows them alike and the ratios stay comparable.
    // Compiled artifacts come from the tests' shared cache: only invocations are measured here.
    let engine = hookd_tests::cached_engine();
    // (name, component, fewer iterations by, instance reuse)
    let guests = [
        ("seed hook, Rust", SEED, 1, false),
        (
            "seed hook, JavaScript (Auth0 Hooks shape)",
            JS_SEED,
            10,
            false,
        ),
        (
            "seed hook, JavaScript (Auth0 Action)",
            JS_SEED_ACTION,
            10,
            false,
        ),
        ("seed hook, JavaScript, reused instance", JS_SEED, 2, true),
    ];
    let hooks: Vec<_> = guests
        .iter()
        .map(|(_, path, _, reuse)| {
            let mut hook = engine
                .load(
                    ExtensibilityPoint::CredentialsExchange,
                    &wasm(path),
                    HookLimits::default(),
                )
                .unwrap();
            engine.set_instance_reuse(&mut hook, *reuse);
            hook
        })
        .collect();
    const BLOCKS: usize = 20;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); guests.len()];
    let mut fuel = vec![0; guests.len()];
    let mut faults = vec![0; guests.len()];
    let mut allocations = vec![0; guests.len()];
    runtime.block_on(async {
        for hook in &hooks {
            for _ in 0..200 {
                engine
                    .invoke_credentials_exchange(hook, event.clone())
                    .await
                    .result
                    .unwrap();
            }
        }
        for _ in 0..BLOCKS {
            for (index, hook) in hooks.iter().enumerate() {
                // JavaScript calls cost ~20x a Rust call: fewer of them per block.
                let per_block = iterations / BLOCKS / guests[index].2;
                let faults_before = minor_page_faults(FaultsOf::Process);
                for _ in 0..per_block {
                    // The server builds a fresh event per request; the copy is not timed.
                    let event = event.clone();
                    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
                    let started = Instant::now();
                    let invocation = engine.invoke_credentials_exchange(hook, event).await;
                    samples[index].push(started.elapsed());
                    allocations[index] += ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
                    fuel[index] = invocation.fuel_used;
                    invocation.result.unwrap();
                }
                faults[index] += minor_page_faults(FaultsOf::Process) - faults_before;
            }
        }
    });
    let medians: Vec<Duration> = samples
        .iter_mut()
        .map(|s| {
            s.sort();
            percentile(s, 0.5)
        })
        .collect();
    for (index, (name, _, _, reuse)) in guests.iter().enumerate() {
        let how = if *reuse {
            "live instance"
        } else {
            "fresh Store + instance"
        };
        report(
            &format!("invoke {name} ({how})"),
            std::mem::take(&mut samples[index]),
        );
        println!("{:<44} {}", "  fuel per invocation", fuel[index]);
        let calls = (iterations / BLOCKS / guests[index].2 * BLOCKS).max(1);
        println!(
            "{:<44} {:.1}",
            "  minor page faults per invocation",
            faults[index] as f64 / calls as f64
        );
        println!(
            "{:<44} {:.1}",
            "  heap allocations per invocation (host)",
            allocations[index] as f64 / calls as f64
        );
    }
    println!(
        "JavaScript (Hooks shape) / Rust median: {:.1}x",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );

    // `HOOKD_BENCH_INVOKE_ONLY=1` stops here (for profiling invocations alone).
    if std::env::var_os("HOOKD_BENCH_INVOKE_ONLY").is_some() {
        return;
    }
    let engine = HookEngine::new(EngineSettings::default()).unwrap();
    let bytes = wasm(SEED);

    // Compile versus load from the on-disk cache (what a restart does).
    let cache = tempfile::tempdir().unwrap();
    let cached_engine = HookEngine::new(EngineSettings {
        max_concurrency: 2,
        cache: Some(hookd::hooks::ArtifactCacheSettings::new(
            cache.path().to_owned(),
            b"installation key of 32 bytes ...",
        )),
    })
    .unwrap();
    let (first, _) = timed_load(&cached_engine, &bytes);
    assert!(matches!(first.source, LoadSource::Compiled { .. }));
    let mut compile = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..20 {
        let (hook, took) = timed_load(&engine, &bytes);
        compile.push(took);
        assert!(matches!(hook.source, LoadSource::Compiled { .. }));
        let (hook, took) = timed_load(&cached_engine, &bytes);
        cached.push(took);
        assert!(
            matches!(hook.source, LoadSource::Cached { .. }),
            "a reload must not compile"
        );
    }
    report("load seed hook: compile + validate", compile);
    report("load seed hook: from cache + validate", cached);

    // The same for the JavaScript seed hook (12 MB; compiling takes seconds, so once).
    let js = wasm(JS_SEED);
    let (hook, compile) = timed_load(&cached_engine, &js);
    assert!(matches!(hook.source, LoadSource::Compiled { .. }));
    let mut cached = Vec::new();
    for _ in 0..20 {
        let (hook, took) = timed_load(&cached_engine, &js);
        cached.push(took);
        assert!(matches!(hook.source, LoadSource::Cached { .. }));
    }
    report("load JS seed hook: compile + validate", vec![compile]);
    report("load JS seed hook: from cache + validate", cached);
}
