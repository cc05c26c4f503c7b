//! One invocation: a fresh `Store` with the hook's limits (fuel, memory, wall clock, input,
//! output, log), the call itself, and the mapping of whatever went wrong to a [`HookError`].

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::{I32Exit, WasiCtx, WasiCtxView, WasiView};

use super::bindings;
use super::claims;
use super::engine::Prepared;
use super::log::LogCapture;
use super::reuse::WarmInstance;
use super::{
    CredentialsExchangeEvent, HookEngine, HookError, HookLimits, HookLog, Invocation, LoadedHook,
};

/// Everything a hook's `Store` holds: a WASI context with no capabilities, its resource
/// table, the memory limiter, and the log its stdout and stderr write to.
pub(crate) struct HookState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: HookLimiter,
    log: LogCapture,
}

impl WasiView for HookState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HookState {
    fn new(limits: &HookLimits) -> Self {
        let log = LogCapture::new(usize::try_from(limits.max_log_bytes).unwrap_or(usize::MAX));
        // No preopens, environment, arguments or stdin; every socket use denied; stdout and
        // stderr go to the bounded log. Clocks and randomness work, with one call's random
        // bytes bounded (the host allocates them).
        let wasi = WasiCtx::builder()
            .stdout(log.clone())
            .stderr(log.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(MAX_RANDOM_BYTES)
            .build();
        // Every resource a guest opens (streams, pollables) takes a host table entry.
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        HookState {
            wasi,
            table,
            limiter: HookLimiter {
                memory_limit: limits.memory_bytes,
                denied: None,
            },
            log,
        }
    }
}

/// Traps (rather than failing `memory.grow`) when a hook grows memory past its limit, and
/// remembers the request so the failure is reported as [`HookError::MemoryLimit`].
struct HookLimiter {
    memory_limit: u64,
    denied: Option<u64>,
}

/// The error a denied memory growth traps with.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded")]
struct MemoryLimitExceeded;

/// Most random bytes one WASI `get-random-bytes` call may ask the host for (wasmtime's
/// default is 64 MiB per call).
const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// Most host resources (streams, pollables, ...) one call may hold at once.
const MAX_RESOURCES: usize = 1_000;

/// Most table elements any hook may have (a JavaScript hook needs about 7,700).
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for HookLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_limit {
            self.denied = Some(desired as u64);
            return Err(wasmtime::Error::new(MemoryLimitExceeded));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Maps a failed call to the sandbox limit it hit, or to a trap with a readable reason.
fn classify(error: &wasmtime::Error, state: &HookState, limits: &HookLimits) -> HookError {
    if let Some(requested) = state.limiter.denied {
        return HookError::MemoryLimit {
            requested,
            limit: limits.memory_bytes,
        };
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => HookError::OutOfFuel { limit: limits.fuel },
            Trap::Interrupt => HookError::Timeout {
                limit_ms: limits.timeout_ms,
            },
            other => HookError::Trap {
                reason: other.to_string(),
            },
        };
    }
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return HookError::Trap {
            reason: format!("the hook called exit({})", exit.0),
        };
    }
    if error.is::<wasmtime::PoolConcurrencyLimitError>() {
        return HookError::Host("no free instance slot".to_owned());
    }
    HookError::Trap {
        reason: error.root_cause().to_string(),
    }
}

impl HookEngine {
    /// Runs a credentials-exchange hook on `event` in a fresh sandbox (the event's strings
    /// move into the call rather than being copied). Waits for a free slot when
    /// `max_concurrency` invocations are already running. Never panics on anything a hook
    /// does; every failure is a typed [`HookError`] in the result.
    pub async fn invoke_credentials_exchange(
        &self,
        hook: &LoadedHook,
        event: CredentialsExchangeEvent,
    ) -> Invocation {
        let limits = hook.limits;
        let started = Instant::now();
        let mut log = HookLog::default();
        let finish = |result, log, fuel_used| Invocation {
            result,
            log,
            fuel_used,
            elapsed: started.elapsed(),
            reused_instance: false,
        };

        let size = event.input_bytes();
        if size > limits.max_input_bytes {
            let error = HookError::InputTooLarge {
                size,
                limit: limits.max_input_bytes,
            };
            return finish(Err(error), log, 0);
        }
        let Prepared::CredentialsExchange(pre) = &hook.prepared;

        // One turn for the rest of the runtime before each call, so that under load the
        // connections waiting to be read get a turn between hook calls: at 64 connections
        // this keeps the p99 of token requests near the no-hook figure (docs/BENCHMARKS.md).
        tokio::task::yield_now().await;
        let Ok(_slot) = self.inner.slots.acquire().await else {
            let error = HookError::Host("the hook engine is shutting down".to_owned());
            return finish(Err(error), log, 0);
        };
        let warm = hook.warm.as_ref().and_then(|idle| idle.take());
        let reused_instance = warm.is_some();
        let (mut store, live) = match warm {
            Some(warm) => (warm.store, Some(warm.instance)),
            None => {
                let mut store = Store::new(&self.inner.engine, HookState::new(&limits));
                store.limiter(|state| &mut state.limiter);
                (store, None)
            }
        };
        store.data_mut().limiter.denied = None;
        if let Err(error) = store.set_fuel(limits.fuel) {
            return finish(Err(HookError::Host(error.to_string())), log, 0);
        }
        // Yield to the runtime at every epoch tick, starting with the next one; the wall-clock
        // limit is the timeout below, which also covers time spent blocked in host calls
        // (sleeps, polls). A store's deadline starts at epoch 0, which has always passed:
        // without setting it, every call would yield at its first epoch check.
        store.epoch_deadline_async_yield_and_update(1);
        store.set_epoch_deadline(1);

        let call = tokio::time::timeout(limits.timeout(), async {
            let instance = match live {
                Some(instance) => instance,
                None => pre.instantiate(&mut store).await?,
            };
            let answer =
                bindings::call_exchange(&instance, &mut store, event, limits.max_output_bytes)
                    .await?;
            Ok::<_, wasmtime::Error>((instance, answer))
        })
        .await;
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));

        let mut reusable = None;
        let result = match call {
            Err(_elapsed) => Err(HookError::Timeout {
                limit_ms: limits.timeout_ms,
            }),
            Ok(Err(error)) => {
                let failure = classify(&error, store.data(), &limits);
                log.notice(format!("{failure}; details: {error:?}"));
                Err(failure)
            }
            Ok(Ok((instance, Err(refusal)))) => {
                if let HookError::Failed { message } = &refusal {
                    log.notice(format!("the hook failed: {message}"));
                } else {
                    reusable = Some(instance);
                }
                Err(refusal)
            }
            Ok(Ok((instance, Ok(raw)))) => {
                let changes = claims::validate(raw, limits.max_output_bytes, &mut log)
                    .map_err(HookError::from);
                if changes.is_ok() {
                    reusable = Some(instance);
                }
                changes
            }
        };
        (log.output, log.truncated) = store.data().log.finish();
        // Only an instance that gave a normal answer (changes or a denial) is kept.
        if let (Some(idle), Some(instance)) = (hook.warm.as_ref(), reusable) {
            idle.put(WarmInstance { store, instance });
        }
        Invocation {
            reused_instance,
            ..finish(result, log, fuel_used)
        }
    }
}
