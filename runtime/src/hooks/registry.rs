//! The enabled hook of each extensibility point. Swapping is atomic: a request holds the
//! `Arc` of the hook it started with, so in-flight calls finish on the old hook while new
//! ones get the new one, and no request sees a half-replaced hook.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::{ExtensibilityPoint, LoadedHook};

/// At most one enabled hook per extensibility point.
#[derive(Debug, Default)]
pub struct HookRegistry {
    enabled: [ArcSwapOption<LoadedHook>; ExtensibilityPoint::ALL.len()],
}

fn slot(point: ExtensibilityPoint) -> usize {
    match point {
        ExtensibilityPoint::CredentialsExchange => 0,
    }
}

impl HookRegistry {
    /// A registry with no hook enabled anywhere.
    pub fn new() -> Self {
        Self::default()
    }

    /// The hook currently enabled for `point`, if any.
    pub fn enabled(&self, point: ExtensibilityPoint) -> Option<Arc<LoadedHook>> {
        self.enabled[slot(point)].load_full()
    }

    /// Enables `hook` for the point it was loaded for, replacing (and returning) the hook
    /// that was enabled there.
    pub fn enable(&self, hook: Arc<LoadedHook>) -> Option<Arc<LoadedHook>> {
        self.enabled[slot(hook.point)].swap(Some(hook))
    }

    /// Disables whatever hook is enabled for `point`, returning it.
    pub fn disable(&self, point: ExtensibilityPoint) -> Option<Arc<LoadedHook>> {
        self.enabled[slot(point)].swap(None)
    }
}
