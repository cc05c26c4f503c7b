//! Opt-in reuse of live hook instances between calls, a per-hook setting that is off by
//! default. With it on, a call takes an idle instance of the same loaded hook (same module,
//! limits and settings) instead of instantiating a fresh one, so the module's globals carry
//! over from earlier calls, as they did in Auth0's warm webtasks. One instance never runs two
//! calls at once, every call still gets its full fuel, memory and time limits, and an
//! instance is discarded after anything but a normal answer (trap, limit, reported failure,
//! invalid output).

use std::sync::Mutex;

use wasmtime::Store;

use super::bindings::ExchangeInstance;
use super::invoke::HookState;

/// A live instance with its store, between calls.
pub(crate) struct WarmInstance {
    pub(crate) store: Store<HookState>,
    pub(crate) instance: ExchangeInstance,
}

/// The idle instances of one loaded hook. Dropping it (when the hook is replaced and its
/// last call ends) frees them.
pub(crate) struct WarmInstances {
    idle: Mutex<Vec<WarmInstance>>,
    capacity: usize,
}

impl WarmInstances {
    /// Keeps at most `capacity` idle instances.
    pub(crate) fn new(capacity: usize) -> Self {
        WarmInstances {
            idle: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<WarmInstance>> {
        // A poisoned lock only means a panic elsewhere mid-push or pop; the list is intact.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An idle instance, if there is one.
    pub(crate) fn take(&self) -> Option<WarmInstance> {
        self.idle().pop()
    }

    /// Keeps an instance for a later call, or drops it when enough are idle already.
    pub(crate) fn put(&self, warm: WarmInstance) {
        let mut idle = self.idle();
        if idle.len() < self.capacity {
            idle.push(warm);
        }
    }

    /// How many instances are idle now.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle().len()
    }
}
