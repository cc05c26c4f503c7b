//! Shadow runs: a candidate version runs beside the active one for a sampled share of token
//! requests, after the active version has decided the token, on a worker of its own. Its
//! answer never reaches the client; the hook log records where the two differed. Work is
//! handed over through a bounded queue that drops (and counts) what does not fit, so shadow
//! work can never hold up a token request.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::hooklog::{HookLogBook, HookLogEntry, LoggedOutcome};
use crate::hooks::{CredentialsExchangeEvent, HookEngine, HookError, LoadedHook, TokenChanges};
use crate::metrics::{ShadowMetrics, hook_outcome};
use crate::model::ShadowObserved;

/// How many requests may wait for a hook's shadow worker; more are dropped and counted.
pub const QUEUE: usize = 64;

/// How a version decided a token, as far as a comparison needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Allowed, with these changes.
    Allowed(TokenChanges),
    /// Denied with this OAuth error code.
    Denied(&'static str),
    /// Failed, of this kind (`HookError::kind`).
    Failed(&'static str),
}

impl Decision {
    /// The decision an invocation's result stands for.
    pub fn of(result: &Result<TokenChanges, HookError>) -> Self {
        match result {
            Ok(changes) => Decision::Allowed(changes.clone()),
            Err(HookError::Denied(denial)) => Decision::Denied(denial.code.as_str()),
            Err(error) => Decision::Failed(error.kind()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Decision::Allowed(_) => "allowed".to_owned(),
            Decision::Denied(code) => format!("denied ({code})"),
            Decision::Failed(kind) => format!("failed ({kind})"),
        }
    }
}

/// Claim names, comma-separated.
fn names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// Where the candidate's decision differs from the active version's, one line per kind of
/// difference: the outcome, or claims added, removed and changed (names only, never values),
/// and the scopes. Empty when they agree.
pub fn differences(active: &Decision, candidate: &Decision) -> Vec<String> {
    let (Decision::Allowed(active), Decision::Allowed(candidate)) = (active, candidate) else {
        if active == candidate {
            return Vec::new();
        }
        return vec![format!(
            "shadow outcome: active {}, candidate {}",
            active.describe(),
            candidate.describe()
        )];
    };
    let mut found = Vec::new();
    let claims = |map: &Map<String, Value>| map.keys().cloned().collect::<BTreeSet<String>>();
    let (before, after) = (claims(&active.claims), claims(&candidate.claims));
    let added: Vec<&String> = after.difference(&before).collect();
    let removed: Vec<&String> = before.difference(&after).collect();
    let changed: Vec<&String> = before
        .intersection(&after)
        .filter(|name| active.claims[name.as_str()] != candidate.claims[name.as_str()])
        .collect();
    for (what, list) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !list.is_empty() {
            found.push(format!("shadow claims {what}: {}", names(list.into_iter())));
        }
    }
    if active.scope != candidate.scope {
        let shown = |scope: &Option<Vec<String>>| match scope {
            None => "(granted)".to_owned(),
            Some(scopes) => format!("[{}]", scopes.join(" ")),
        };
        found.push(format!(
            "shadow scope: active {}, candidate {}",
            shown(&active.scope),
            shown(&candidate.scope)
        ));
    }
    found
}

/// Whether the `n`th request (from 0) is sampled at `percent`: the running count of sampled
/// requests steps up exactly `percent` times in every hundred.
fn sampled(n: u64, percent: u8) -> bool {
    let percent = u64::from(percent);
    (n + 1) * percent / 100 != n * percent / 100
}

/// A request handed to the shadow worker: the event the active version saw, and what it
/// decided.
#[derive(Debug)]
pub struct ShadowJob {
    /// The event, as the active version got it.
    pub event: CredentialsExchangeEvent,
    /// What the active version decided.
    pub active: Decision,
    /// The token request's id.
    pub request_id: String,
    /// When it was asked, seconds since the Unix epoch.
    pub time: u64,
}

/// What a shadow run has done on this node.
#[derive(Debug, Default)]
struct Counts {
    runs: AtomicU64,
    differed: AtomicU64,
    dropped: AtomicU64,
}

/// A hook's candidate version running in shadow, with its worker.
#[derive(Debug)]
pub struct ShadowRun {
    /// The candidate, compiled (the worker runs its own handle on the same code).
    pub loaded: LoadedHook,
    /// The share of requests sampled, 1 to 100.
    pub percent: u8,
    seen: AtomicU64,
    queue: mpsc::Sender<ShadowJob>,
    counts: Arc<Counts>,
    metrics: ShadowMetrics,
}

/// What a shadow worker needs besides its jobs.
#[derive(Debug, Clone)]
pub struct ShadowWorker {
    /// The engine that runs the candidate.
    pub engine: HookEngine,
    /// Where its runs are recorded.
    pub hook_log: Arc<HookLogBook>,
}

impl ShadowRun {
    /// Starts a worker running `loaded` (a candidate version of hook `hook_id`) for `percent`
    /// of requests. The worker stops once this run is dropped and its queue is empty.
    pub fn start(
        hook_id: &str,
        loaded: LoadedHook,
        percent: u8,
        worker: ShadowWorker,
        metrics: ShadowMetrics,
    ) -> Arc<Self> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let run = Arc::new(ShadowRun {
            loaded: loaded.clone(),
            percent,
            seen: AtomicU64::new(0),
            queue,
            counts: counts.clone(),
            metrics: metrics.clone(),
        });
        tokio::spawn(work(
            hook_id.to_owned(),
            loaded,
            jobs,
            worker,
            counts,
            metrics,
        ));
        run
    }

    /// Whether this request is one of the sampled share: exactly `percent` of every hundred
    /// requests, spread evenly.
    pub fn sample(&self) -> bool {
        sampled(self.seen.fetch_add(1, Ordering::Relaxed), self.percent)
    }

    /// Hands a request to the worker, or drops it (counted) when the queue is full.
    pub fn offer(&self, job: ShadowJob) {
        if self.queue.try_send(job).is_err() {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.dropped();
        }
    }

    /// Runs, differences and drops so far on this node.
    pub fn observed(&self) -> ShadowObserved {
        ShadowObserved {
            runs: self.counts.runs.load(Ordering::Relaxed),
            differed: self.counts.differed.load(Ordering::Relaxed),
            dropped: self.counts.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The shadow worker: one candidate call at a time, so shadow work takes at most one of the
/// engine's slots per hook.
async fn work(
    hook_id: String,
    loaded: LoadedHook,
    mut jobs: mpsc::Receiver<ShadowJob>,
    worker: ShadowWorker,
    counts: Arc<Counts>,
    metrics: ShadowMetrics,
) {
    while let Some(job) = jobs.recv().await {
        let (client_id, audience) = (job.event.client.id.clone(), job.event.audience.clone());
        let mut invocation = worker
            .engine
            .invoke_credentials_exchange(&loaded, job.event)
            .await;
        let candidate = Decision::of(&invocation.result);
        let found = differences(&job.active, &candidate);
        counts.runs.fetch_add(1, Ordering::Relaxed);
        if found.is_empty() {
            metrics.ran(false);
            invocation
                .log
                .notice("shadow: same decision as the active version".to_owned());
        } else {
            counts.differed.fetch_add(1, Ordering::Relaxed);
            metrics.ran(true);
            for difference in found {
                invocation.log.notice(difference);
            }
        }
        // The candidate decides no token: nothing was issued on its account.
        let outcome = LoggedOutcome::of(&invocation.result, false);
        metrics.hook.record(
            hook_outcome(invocation.result.as_ref().err().map(HookError::kind)),
            invocation.elapsed.as_secs_f64(),
            invocation.fuel_used,
        );
        let mut entry = HookLogEntry::new(
            &hook_id,
            job.time,
            &job.request_id,
            &client_id,
            &audience,
            outcome,
            &invocation,
        );
        entry.version = loaded.sha256.clone();
        entry.shadow = true;
        worker.hook_log.record(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn allowed(scope: Option<&[&str]>, claims: Value) -> Decision {
        Decision::Allowed(TokenChanges {
            scope: scope.map(|s| s.iter().map(|s| (*s).to_owned()).collect()),
            claims: claims.as_object().cloned().unwrap_or_default(),
        })
    }

    #[test]
    fn differences_name_claims_and_scopes_never_values() {
        let active = allowed(
            Some(&["read", "extra"]),
            json!({"a": 1, "b": "secret-ish", "c": 3}),
        );
        let candidate = allowed(Some(&["read"]), json!({"b": "other", "c": 3, "d": 4}));
        assert_eq!(
            differences(&active, &candidate),
            vec![
                "shadow claims added: d",
                "shadow claims removed: a",
                "shadow claims changed: b",
                "shadow scope: active [read extra], candidate [read]",
            ]
        );
        assert!(differences(&active, &active.clone()).is_empty());
        let kept = allowed(None, json!({}));
        assert_eq!(
            differences(&kept, &allowed(Some(&[]), json!({}))),
            vec!["shadow scope: active (granted), candidate []"]
        );
    }

    #[test]
    fn sampling_takes_exactly_the_share_spread_out() {
        for percent in [1, 10, 33, 50, 100] {
            let taken: Vec<u64> = (0..1000).filter(|n| sampled(*n, percent)).collect();
            assert_eq!(taken.len(), 10 * usize::from(percent), "{percent} %");
            // Spread: never more than one in a row below 50 %.
            if percent < 50 {
                assert!(
                    taken.windows(2).all(|pair| pair[1] - pair[0] > 1),
                    "{percent} %"
                );
            }
        }
    }

    #[test]
    fn differing_outcomes_are_one_line() {
        let active = allowed(None, json!({"a": 1}));
        assert_eq!(
            differences(&active, &Decision::Failed("trap")),
            vec!["shadow outcome: active allowed, candidate failed (trap)"]
        );
        assert_eq!(
            differences(&Decision::Denied("invalid_scope"), &active),
            vec!["shadow outcome: active denied (invalid_scope), candidate allowed"]
        );
        assert!(differences(&Decision::Failed("trap"), &Decision::Failed("trap")).is_empty());
    }
}
