//! The one wasmtime `Engine` of the process, configured here and nowhere else, plus the WASI
//! linker, the epoch ticker and the loading (validate, compile or load from cache, prepare)
//! of hook modules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig,
};

use super::bindings::ExchangePre;
use super::cache::{ArtifactCache, ArtifactCacheSettings};
use super::invoke::HookState;
use super::module;
use super::reuse::WarmInstances;
use super::{EngineError, ExtensibilityPoint, HookLimits, ModuleRejected};

/// How often the epoch advances. A running hook yields to the async runtime at every tick, so
/// no hook holds a runtime thread for longer than this.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Largest WebAssembly stack a hook may use; deeper recursion traps with a stack overflow.
const MAX_WASM_STACK: usize = 512 << 10;

/// Linear memory kept mapped (and reset in place) between invocations in a pool slot. Covers
/// a JavaScript hook's 9 MiB initial heap, so fresh instances don't page-fault it back in
/// (with the vendored wasmtime patch that scans past 32 dirty regions: `vendor/README.md`).
const KEEP_RESIDENT_BYTES: usize = 10 << 20;

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How many invocations may run at once; more wait for a slot. Also sizes the instance
    /// pool, so it bounds the memory hooks can hold.
    pub max_concurrency: u32,
    /// Where compiled hooks are cached, and under which key; `None` compiles on every load.
    pub cache: Option<ArtifactCacheSettings>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_concurrency: 16,
            cache: None,
        }
    }
}

/// The hook engine: cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct HookEngine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub(crate) engine: Engine,
    max_concurrency: u32,
    linker: Linker<HookState>,
    pub(crate) slots: Semaphore,
    cache: Option<ArtifactCache>,
}

impl std::fmt::Debug for EngineInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineInner")
            .field("slots", &self.slots.available_permits())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Where a loaded hook's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Compiled from the module's bytes.
    Compiled {
        /// How long compiling took.
        took: Duration,
    },
    /// Loaded from the compiled-artifact cache; nothing was compiled.
    Cached {
        /// How long loading took.
        took: Duration,
    },
}

/// The compiled, linked form of a hook for its extensibility point.
#[derive(Clone)]
pub(crate) enum Prepared {
    CredentialsExchange(ExchangePre<HookState>),
}

/// A validated, compiled hook, ready to run any number of times concurrently.
#[derive(Clone)]
pub struct LoadedHook {
    /// The module's sha256, hex.
    pub sha256: String,
    /// The module's size in bytes.
    pub size_bytes: u64,
    /// The extensibility point it was loaded for.
    pub point: ExtensibilityPoint,
    /// The limits every invocation runs under.
    pub limits: HookLimits,
    /// Whether it was compiled or came from the cache.
    pub source: LoadSource,
    pub(crate) prepared: Prepared,
    /// Idle live instances, when instance reuse is on (see [`HookEngine::set_instance_reuse`]).
    pub(crate) warm: Option<Arc<WarmInstances>>,
}

impl LoadedHook {
    /// Whether calls reuse live instances instead of fresh ones.
    pub fn reuses_instances(&self) -> bool {
        self.warm.is_some()
    }

    /// How many live instances are idle, waiting for a call (0 without instance reuse).
    pub fn idle_instances(&self) -> usize {
        self.warm.as_ref().map_or(0, |warm| warm.idle_count())
    }
}

impl std::fmt::Debug for LoadedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedHook")
            .field("sha256", &self.sha256)
            .field("size_bytes", &self.size_bytes)
            .field("point", &self.point)
            .field("limits", &self.limits)
            .field("source", &self.source)
            .field("reuses_instances", &self.reuses_instances())
            .finish_non_exhaustive()
    }
}

fn engine_config(max_concurrency: u32) -> Config {
    // Twice the concurrency: room for the idle instances that a hook with instance reuse keeps
    // (at most the concurrency) next to the calls of the hook replacing it.
    let slots = max_concurrency.max(1) * 2;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 32)
        .total_memories(slots * 2)
        .total_tables(slots * 8)
        .total_stacks(slots)
        .max_memory_size(HookLimits::MAX_MEMORY_BYTES as usize)
        .max_core_instance_size(4 << 20)
        .table_elements(100_000)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(1 << 20)
        // After a call, `PAGEMAP_SCAN` finds the pages it wrote and only those are reset,
        // however many disjoint runs they form, including pages the kernel swapped out in the
        // meantime (both vendored patches, `vendor/README.md`). Without the ioctl (kernels
        // before 6.7), the first `keep_resident` bytes are rewritten and the rest decommitted.
        .pagemap_scan(Enabled::Auto);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .cranelift_opt_level(OptLevel::Speed)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) -> Result<(), EngineError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("hookd-epoch".to_owned())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .map_err(|error| EngineError::Config(format!("could not start the epoch ticker: {error}")))
}

impl HookEngine {
    /// Builds the engine, its linker and (if configured) opens the compiled-hook cache.
    pub fn new(settings: EngineSettings) -> Result<Self, EngineError> {
        let engine = Engine::new(&engine_config(settings.max_concurrency))
            .map_err(|error| EngineError::Config(error.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|error| EngineError::Config(error.to_string()))?;
        let cache = settings
            .cache
            .as_ref()
            .map(|cache| ArtifactCache::open(cache, &engine))
            .transpose()?;
        spawn_epoch_ticker(&engine)?;
        Ok(HookEngine {
            inner: Arc::new(EngineInner {
                engine,
                max_concurrency: settings.max_concurrency.max(1),
                linker,
                slots: Semaphore::new(settings.max_concurrency.max(1) as usize),
                cache,
            }),
        })
    }

    /// Validates and compiles (or loads from the cache) a hook module for `point`.
    ///
    /// Compiling is CPU-bound (milliseconds for a Rust hook, seconds for a JavaScript one):
    /// from async code, call it on a blocking thread.
    pub fn load(
        &self,
        point: ExtensibilityPoint,
        bytes: &[u8],
        limits: HookLimits,
    ) -> Result<LoadedHook, ModuleRejected> {
        limits.validate().map_err(ModuleRejected::InvalidLimits)?;
        module::check_encoding(bytes)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let engine = &self.inner.engine;

        let started = Instant::now();
        let cached = self
            .inner
            .cache
            .as_ref()
            .and_then(|cache| cache.load(engine, &sha256));
        let (component, source) = match cached {
            Some(component) => (
                component,
                LoadSource::Cached {
                    took: started.elapsed(),
                },
            ),
            None => {
                let component = Component::new(engine, bytes)
                    .map_err(|error| ModuleRejected::Invalid(format!("{error:#}")))?;
                let took = started.elapsed();
                (component, LoadSource::Compiled { took })
            }
        };

        let world = point.trigger_id();
        module::check_imports(engine, &component)?;
        let prepared = match point {
            ExtensibilityPoint::CredentialsExchange => {
                let instance_pre =
                    self.inner
                        .linker
                        .instantiate_pre(&component)
                        .map_err(|error| ModuleRejected::WrongWorld {
                            world,
                            detail: format!("{error:#}"),
                        })?;
                Prepared::CredentialsExchange(ExchangePre::new(&component, instance_pre, world)?)
            }
        };

        // Only a module that passed every check is worth caching.
        if let (Some(cache), LoadSource::Compiled { .. }) = (&self.inner.cache, source) {
            cache.store(&component, &sha256);
        }
        Ok(LoadedHook {
            sha256,
            size_bytes: bytes.len() as u64,
            point,
            limits,
            source,
            prepared,
            warm: None,
        })
    }

    /// Turns instance reuse on or off for a loaded hook; either way its idle instances, if
    /// any, are let go. Off (fresh instance per call) is the default and the safe choice: with
    /// reuse on, the module's globals carry over from one call to the next, so one request
    /// may see what an earlier one left behind. Each hook keeps at most the engine's
    /// concurrency in idle instances.
    pub fn set_instance_reuse(&self, hook: &mut LoadedHook, reuse: bool) {
        let capacity = self.inner.max_concurrency as usize;
        hook.warm = reuse.then(|| Arc::new(WarmInstances::new(capacity)));
    }
}
