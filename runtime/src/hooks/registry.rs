//! The enabled hook of each extensibility point. Swapping is atomic: a request holds the
//! `Arc` of the hook it started with, so in-flight calls finish on the old hook while new
//! ones get the new one, and no request sees a half-replaced hook. An enabled hook that could
//! not be loaded holds its slot as [`UnavailableHook`], so its requests fail (or pass) by its
//! failure policy instead of running nothing.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::{ExtensibilityPoint, FailurePolicy, LoadedHook};

/// An enabled hook that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableHook {
    /// The stored hook's id.
    pub id: String,
    /// Its name, for server logs.
    pub name: String,
    /// The extensibility point it is enabled for.
    pub point: ExtensibilityPoint,
    /// What its token requests get: refused (fail closed) or issued without it (fail open).
    pub failure_policy: FailurePolicy,
    /// Why it could not be loaded, for operators.
    pub reason: String,
}

/// What occupies an extensibility point.
#[derive(Debug, Clone)]
pub enum RegisteredHook {
    /// A loaded hook, run for every request.
    Ready(Arc<LoadedHook>),
    /// An enabled hook that could not be loaded.
    Unavailable(UnavailableHook),
}

/// At most one enabled hook per extensibility point.
#[derive(Debug, Default)]
pub struct HookRegistry {
    enabled: [ArcSwapOption<RegisteredHook>; ExtensibilityPoint::ALL.len()],
}

fn slot(point: ExtensibilityPoint) -> usize {
    match point {
        ExtensibilityPoint::CredentialsExchange => 0,
    }
}

fn ready(entry: Option<Arc<RegisteredHook>>) -> Option<Arc<LoadedHook>> {
    match entry.as_deref()? {
        RegisteredHook::Ready(hook) => Some(hook.clone()),
        RegisteredHook::Unavailable(_) => None,
    }
}

impl HookRegistry {
    /// A registry with no hook enabled anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// What occupies `point`: a loaded hook, an unavailable one, or nothing.
    pub fn current(&self, point: ExtensibilityPoint) -> Option<Arc<RegisteredHook>> {
        self.enabled[slot(point)].load_full()
    }

    /// The loaded hook currently enabled for `point`, if any.
    pub fn enabled(&self, point: ExtensibilityPoint) -> Option<Arc<LoadedHook>> {
        ready(self.current(point))
    }

    /// Enables `hook` for the point it was loaded for, replacing (and returning, when it was
    /// loaded) the hook that was there.
    pub fn enable(&self, hook: Arc<LoadedHook>) -> Option<Arc<LoadedHook>> {
        let point = hook.point;
        ready(self.enabled[slot(point)].swap(Some(Arc::new(RegisteredHook::Ready(hook)))))
    }

    /// Puts an enabled hook that could not be loaded in its point's slot.
    pub fn mark_unavailable(&self, hook: UnavailableHook) {
        let point = hook.point;
        self.enabled[slot(point)].store(Some(Arc::new(RegisteredHook::Unavailable(hook))));
    }

    /// Disables whatever hook is enabled for `point`, returning it when it was loaded.
    pub fn disable(&self, point: ExtensibilityPoint) -> Option<Arc<LoadedHook>> {
        ready(self.enabled[slot(point)].swap(None))
    }
}
