//! A canary rollout as the token path runs it: which clients get the canary version, the
//! recent outcomes of both versions, and the verdict that withdraws a canary failing more
//! often than the active version.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

use crate::hooks::LoadedHook;
use crate::metrics::HookMetrics;
use crate::model::{CanaryObserved, CanaryRule};

/// Which of 100 buckets `client_id` falls in for hook `hook_id`: the same on every node and
/// across restarts, and unchanged when the share grows, so a client keeps its version while a
/// rollout widens (the clients in the first 10 % are among the first 20 %).
pub fn client_bucket(hook_id: &str, client_id: &str) -> u8 {
    let digest = Sha256::new()
        .chain_update(hook_id.as_bytes())
        .chain_update([0])
        .chain_update(client_id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// The last `capacity` outcomes of one version: whether each call failed.
#[derive(Debug)]
struct Window {
    failed: VecDeque<bool>,
    failures: u32,
    capacity: usize,
}

impl Window {
    fn new(capacity: u32) -> Self {
        Window {
            failed: VecDeque::new(),
            failures: 0,
            capacity: capacity as usize,
        }
    }

    fn push(&mut self, failed: bool) {
        if self.failed.len() == self.capacity && self.failed.pop_front() == Some(true) {
            self.failures -= 1;
        }
        self.failed.push_back(failed);
        self.failures += u32::from(failed);
    }

    fn calls(&self) -> u32 {
        self.failed.len() as u32
    }

    /// Failures per hundred calls (0 with no calls).
    fn percent_failed(&self) -> f64 {
        if self.failed.is_empty() {
            0.0
        } else {
            100.0 * f64::from(self.failures) / self.failed.len() as f64
        }
    }
}

#[derive(Debug)]
struct Windows {
    canary: Window,
    active: Window,
}

/// A hook's canary version, loaded, with the share of clients it serves and the judge of
/// its calls on this node.
#[derive(Debug)]
pub struct CanaryRun {
    /// The canary version, compiled.
    pub loaded: LoadedHook,
    /// Its metrics.
    pub metrics: HookMetrics,
    /// The share of clients that run it.
    pub percent: u8,
    /// Its calls and the active version's, and the verdict.
    pub judge: CanaryJudge,
}

impl CanaryRun {
    /// Whether `client_id`'s request runs the canary (never once it has been withdrawn).
    pub fn serves(&self, hook_id: &str, client_id: &str) -> bool {
        !self.judge.withdrawn() && client_bucket(hook_id, client_id) < self.percent
    }
}

/// The recent outcomes of a canary and of the active version beside it, and the rule that
/// withdraws the canary.
#[derive(Debug)]
pub struct CanaryJudge {
    rule: CanaryRule,
    windows: Mutex<Windows>,
    withdrawn: AtomicBool,
}

impl CanaryJudge {
    /// A judge with no calls seen.
    pub fn new(rule: CanaryRule) -> Self {
        CanaryJudge {
            windows: Mutex::new(Windows {
                canary: Window::new(rule.window),
                active: Window::new(rule.window),
            }),
            rule,
            withdrawn: AtomicBool::new(false),
        }
    }

    /// The rule it applies.
    pub fn rule(&self) -> CanaryRule {
        self.rule
    }

    /// Whether the canary has been withdrawn on this node.
    pub fn withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::Acquire)
    }

    /// Records a call of the canary (`canary`) or of the active version, and whether it
    /// failed. When this call makes the canary fail more often than the rule allows, the
    /// canary is withdrawn at once and the reason is returned, exactly once.
    pub fn record(&self, canary: bool, failed: bool) -> Option<String> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if !canary {
            windows.active.push(failed);
            return None;
        }
        windows.canary.push(failed);
        let (trial, baseline) = (&windows.canary, &windows.active);
        let allowed = baseline.percent_failed() + f64::from(self.rule.margin_percent);
        if trial.calls() < self.rule.min_calls
            || trial.percent_failed() <= allowed
            || self.withdrawn.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        Some(format!(
            "canary withdrawn: {:.1} % of its last {} calls failed against {:.1} % of the active \
             version's last {} (margin {} points)",
            trial.percent_failed(),
            trial.calls(),
            baseline.percent_failed(),
            baseline.calls(),
            self.rule.margin_percent,
        ))
    }

    /// The calls and failures in both windows.
    pub fn observed(&self) -> CanaryObserved {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        CanaryObserved {
            canary_calls: windows.canary.calls(),
            canary_failures: windows.canary.failures,
            active_calls: windows.active.calls(),
            active_failures: windows.active.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_spread_and_nested() {
        assert_eq!(client_bucket("h", "c"), client_bucket("h", "c"));
        let buckets: Vec<u8> = (0..1000)
            .map(|n| client_bucket("hook", &format!("client-{n}")))
            .collect();
        assert!(buckets.iter().all(|b| *b < 100));
        let under_10 = buckets.iter().filter(|b| **b < 10).count();
        assert!(
            (50..=150).contains(&under_10),
            "{under_10} of 1000 under 10"
        );
        // Another hook spreads the same clients differently.
        let other = (0..1000)
            .filter(|n| client_bucket("other", &format!("client-{n}")) == buckets[*n])
            .count();
        assert!(other < 50, "{other} clients share a bucket across hooks");
    }

    fn rule(min_calls: u32, margin_percent: u8, window: u32) -> CanaryRule {
        CanaryRule {
            min_calls,
            margin_percent,
            window,
        }
    }

    #[test]
    fn a_canary_is_judged_after_min_calls_against_the_active_rate_plus_the_margin() {
        let judge = CanaryJudge::new(rule(4, 10, 100));
        // The active version fails 1 call in 5 (20 %).
        for n in 0..10 {
            assert_eq!(judge.record(false, n % 5 == 0), None);
        }
        // Three canary failures: too few calls to judge.
        for _ in 0..3 {
            assert_eq!(judge.record(true, true), None);
        }
        assert!(!judge.withdrawn());
        // 4 calls, 3 failed (75 %) > 20 % + 10: withdrawn, once.
        let reason = judge.record(true, false).expect("withdrawn");
        assert!(reason.contains("75.0 % of its last 4 calls"), "{reason}");
        assert!(
            reason.contains("20.0 % of the active version's last 10"),
            "{reason}"
        );
        assert!(judge.withdrawn());
        assert_eq!(judge.record(true, true), None);
        assert_eq!(
            judge.observed(),
            CanaryObserved {
                canary_calls: 5,
                canary_failures: 4,
                active_calls: 10,
                active_failures: 2,
            }
        );
    }

    #[test]
    fn a_canary_within_the_margin_keeps_running() {
        let judge = CanaryJudge::new(rule(4, 25, 100));
        for n in 0..8 {
            assert_eq!(judge.record(false, n % 4 == 0), None);
        }
        // 50 % against 25 % + 25: not worse by more than the margin.
        for n in 0..40 {
            assert_eq!(judge.record(true, n % 2 == 1), None);
        }
        assert!(!judge.withdrawn());
    }

    #[test]
    fn windows_forget_old_calls() {
        let mut window = Window::new(3);
        for failed in [true, true, false, false] {
            window.push(failed);
        }
        assert_eq!((window.calls(), window.failures), (3, 1));
        window.push(false);
        assert_eq!((window.calls(), window.failures), (3, 0));
        assert_eq!(window.percent_failed(), 0.0);
    }
}
