//! The enabled hook of each extensibility point, as the token path runs it. Swapping is
//! atomic: a request holds the `Arc` of the hook it started with, so in-flight calls finish on
//! the old hook while new ones get the new one, and no request sees a half-replaced hook. An
//! enabled hook that could not be loaded holds its slot as [`UnavailableHook`], so its
//! requests fail (or pass) by its failure policy instead of running nothing. A hook may run
//! a canary version beside its active one ([`canary`]), and a candidate in shadow
//! ([`shadow`]); a canary the token path withdraws is reported on
//! [`HookRegistry::withdrawals`] for management to record.

pub mod canary;
pub mod shadow;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use tokio::sync::mpsc;

pub use canary::{CanaryJudge, CanaryRun};
pub use shadow::{ShadowJob, ShadowRun, ShadowWorker};

use crate::hooks::{ExtensibilityPoint, LoadedHook};
use crate::metrics::HookMetrics;
use crate::model::FailurePolicy;

/// A stored hook ready to run: the engine's loaded module with the hook's own settings.
#[derive(Clone)]
pub struct ActiveHook {
    /// The stored hook's id, for its log.
    pub id: String,
    /// The stored hook's name, for server logs.
    pub name: String,
    /// What the token endpoint does when it fails; the engine only reports the failure.
    pub failure_policy: FailurePolicy,
    /// The hook's secrets in clear, passed in each call's context. Never printed (not even
    /// by `Debug`).
    pub secrets: BTreeMap<String, String>,
    /// The compiled module.
    pub loaded: LoadedHook,
    /// Its metrics, resolved for this hook and version.
    pub metrics: HookMetrics,
    /// Another version serving a share of clients, if a canary rollout runs.
    pub canary: Option<Arc<CanaryRun>>,
    /// A candidate version run in shadow for a share of requests, if one runs.
    pub shadow: Option<Arc<ShadowRun>>,
}

impl ActiveHook {
    /// The extensibility point it runs at.
    pub fn point(&self) -> ExtensibilityPoint {
        self.loaded.point
    }
}

impl std::fmt::Debug for ActiveHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveHook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("failure_policy", &self.failure_policy)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("loaded", &self.loaded)
            .field("canary", &self.canary)
            .field("shadow", &self.shadow)
            .finish()
    }
}

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
    Ready(Arc<ActiveHook>),
    /// An enabled hook that could not be loaded.
    Unavailable(UnavailableHook),
}

/// A canary the token path took out of service, for management to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryWithdrawal {
    /// The hook.
    pub hook_id: String,
    /// The canary version's sha256.
    pub version: String,
    /// Why.
    pub reason: String,
}

/// At most one enabled hook per extensibility point.
#[derive(Debug)]
pub struct HookRegistry {
    enabled: [ArcSwapOption<RegisteredHook>; ExtensibilityPoint::ALL.len()],
    withdrawn: mpsc::UnboundedSender<CanaryWithdrawal>,
    withdrawals: Mutex<Option<mpsc::UnboundedReceiver<CanaryWithdrawal>>>,
}

impl Default for HookRegistry {
    fn default() -> Self {
        // Unbounded, yet bounded by the canaries: each is withdrawn at most once per load.
        let (withdrawn, withdrawals) = mpsc::unbounded_channel();
        HookRegistry {
            enabled: Default::default(),
            withdrawn,
            withdrawals: Mutex::new(Some(withdrawals)),
        }
    }
}

fn slot(point: ExtensibilityPoint) -> usize {
    match point {
        ExtensibilityPoint::CredentialsExchange => 0,
    }
}

fn ready(entry: Option<Arc<RegisteredHook>>) -> Option<Arc<ActiveHook>> {
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
    pub fn enabled(&self, point: ExtensibilityPoint) -> Option<Arc<ActiveHook>> {
        ready(self.current(point))
    }

    /// Enables `hook` for the point it was loaded for, replacing (and returning, when it was
    /// loaded) the hook that was there.
    pub fn enable(&self, hook: Arc<ActiveHook>) -> Option<Arc<ActiveHook>> {
        let point = hook.point();
        ready(self.enabled[slot(point)].swap(Some(Arc::new(RegisteredHook::Ready(hook)))))
    }

    /// Puts an enabled hook that could not be loaded in its point's slot.
    pub fn mark_unavailable(&self, hook: UnavailableHook) {
        let point = hook.point;
        self.enabled[slot(point)].store(Some(Arc::new(RegisteredHook::Unavailable(hook))));
    }

    /// Disables whatever hook is enabled for `point`, returning it when it was loaded.
    pub fn disable(&self, point: ExtensibilityPoint) -> Option<Arc<ActiveHook>> {
        ready(self.enabled[slot(point)].swap(None))
    }

    /// Reports a canary the token path withdrew (it already serves no one).
    pub fn canary_withdrawn(&self, withdrawal: CanaryWithdrawal) {
        // The receiver lives as long as the server; after it, there is no one to tell.
        let _ = self.withdrawn.send(withdrawal);
    }

    /// The canaries withdrawn by the token path, in order; taken once, by whoever records
    /// them.
    pub fn withdrawals(&self) -> Option<mpsc::UnboundedReceiver<CanaryWithdrawal>> {
        self.withdrawals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}
