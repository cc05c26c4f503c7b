//! The recent invocations of each hook: a bounded in-memory ring per hook, plus a broadcast
//! channel for followers. Entries hold what hookd knows of the call (request id, client,
//! outcome, time, fuel) and what the hook logged; never the hook's secrets. An entry of a call
//! that ran a loaded hook also keeps its input, for replay, with secret values redacted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::sync::{broadcast, mpsc};

use crate::hooks::{CredentialsExchangeEvent, HookContext, HookError, Invocation, TokenChanges};

/// How many invocations are kept per hook.
pub const ENTRIES_PER_HOOK: usize = 200;

pub use crate::proto::{HookLogEntry, LoggedOutcome, REDACTED, RecordedEvent};

impl LoggedOutcome {
    /// How a call that returned `result` ended; a failure says whether the token was issued
    /// anyway (`token_issued`, by a fail-open policy).
    pub fn of(result: &Result<TokenChanges, HookError>, token_issued: bool) -> Self {
        match result {
            Ok(_) => LoggedOutcome::Allowed,
            Err(HookError::Denied(denial)) => LoggedOutcome::Denied {
                code: denial.code.as_str().to_owned(),
                description: denial.description.clone(),
            },
            Err(error) => LoggedOutcome::Failed {
                kind: error.kind().to_owned(),
                message: error.to_string(),
                token_issued,
            },
        }
    }
}

/// `event` with each secret's value replaced by [`REDACTED`] (names kept), as it is recorded.
pub fn redacted(event: &CredentialsExchangeEvent) -> CredentialsExchangeEvent {
    let context = &event.context;
    CredentialsExchangeEvent {
        client: event.client.clone(),
        scope: event.scope.clone(),
        audience: event.audience.clone(),
        context: HookContext {
            secrets: context
                .secrets
                .keys()
                .map(|name| (name.clone(), REDACTED.to_owned()))
                .collect(),
            request: context.request.clone(),
            requested_scopes: context.requested_scopes.clone(),
            resource_server: context.resource_server.clone(),
            tenant: context.tenant.clone(),
        },
    }
}

impl HookLogEntry {
    /// An entry for an invocation whose outcome the caller already decided.
    pub fn new(
        hook_id: &str,
        time: u64,
        request_id: &str,
        client_id: &str,
        audience: &str,
        outcome: LoggedOutcome,
        invocation: &Invocation,
    ) -> Self {
        HookLogEntry {
            hook_id: hook_id.to_owned(),
            time,
            request_id: request_id.to_owned(),
            client_id: client_id.to_owned(),
            audience: audience.to_owned(),
            version: String::new(),
            canary: false,
            shadow: false,
            node: None,
            outcome,
            duration_us: invocation.elapsed.as_micros() as u64,
            fuel_used: invocation.fuel_used,
            log: invocation.log.clone(),
        }
    }
}

/// What a call was given (its secrets redacted) and what it answered, kept for replay.
#[derive(Debug)]
pub struct CallInput {
    /// The event, secret values redacted ([`redacted`]).
    pub event: CredentialsExchangeEvent,
    /// The scope and claims it returned, when it allowed the token.
    pub changes: Option<TokenChanges>,
}

/// An entry as the book keeps it, with the call's input when it has one (shadow runs and
/// unavailable hooks have none).
#[derive(Debug)]
struct Kept {
    entry: HookLogEntry,
    input: Option<Box<CallInput>>,
}

/// Every hook's recent invocations, and their inputs.
#[derive(Debug)]
pub struct HookLogBook {
    rings: Mutex<HashMap<String, VecDeque<Kept>>>,
    followers: broadcast::Sender<HookLogEntry>,
    /// Where each entry is also sent when the log is shared with other nodes.
    outbox: OnceLock<mpsc::Sender<HookLogEntry>>,
    /// Entries the outbox had no room for since [`HookLogBook::take_dropped`] was last asked.
    dropped: AtomicU64,
}

impl Default for HookLogBook {
    fn default() -> Self {
        HookLogBook {
            rings: Mutex::new(HashMap::new()),
            followers: broadcast::channel(1024).0,
            outbox: OnceLock::new(),
            dropped: AtomicU64::new(0),
        }
    }
}

impl HookLogBook {
    /// An empty log book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an invocation, dropping the hook's oldest entry beyond the bound.
    pub fn record(&self, entry: HookLogEntry) {
        self.keep(entry, None);
    }

    /// Records an invocation with its input, kept for replay as long as its entry is.
    pub fn record_with_input(&self, entry: HookLogEntry, input: CallInput) {
        self.keep(entry, Some(Box::new(input)));
    }

    /// Sends every entry recorded from now on to the returned receiver as well, which holds at
    /// most `capacity` entries: when it is full, entries are dropped (and counted) rather than
    /// slowing the token path. Set once; later calls return `None`.
    pub fn ship(&self, capacity: usize) -> Option<mpsc::Receiver<HookLogEntry>> {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        self.outbox.set(sender).ok()?;
        Some(receiver)
    }

    /// How many entries the shipping receiver had no room for since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// Passes an entry recorded elsewhere (another node) to this book's followers, without
    /// keeping it.
    pub fn relay(&self, entry: HookLogEntry) {
        if self.followers.receiver_count() > 0 {
            let _ = self.followers.send(entry);
        }
    }

    fn keep(&self, entry: HookLogEntry, input: Option<Box<CallInput>>) {
        if let Some(outbox) = self.outbox.get()
            && outbox.try_send(entry.clone()).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let mut rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        let ring = rings.entry(entry.hook_id.clone()).or_default();
        if ring.len() == ENTRIES_PER_HOOK {
            ring.pop_front();
        }
        if self.followers.receiver_count() == 0 {
            ring.push_back(Kept { entry, input });
            return;
        }
        ring.push_back(Kept {
            entry: entry.clone(),
            input,
        });
        drop(rings);
        // A follower may have left since the count was read; that is fine.
        let _ = self.followers.send(entry);
    }

    /// A hook's recorded inputs, oldest first; only request `request_id`'s when given.
    pub fn events(&self, hook_id: &str, request_id: Option<&str>) -> Vec<RecordedEvent> {
        let rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ring) = rings.get(hook_id) else {
            return Vec::new();
        };
        ring.iter()
            .filter(|kept| request_id.is_none_or(|id| kept.entry.request_id == id))
            .filter_map(|Kept { entry, input }| {
                let input = input.as_deref()?;
                Some(RecordedEvent {
                    hook_id: entry.hook_id.clone(),
                    request_id: entry.request_id.clone(),
                    time: entry.time,
                    version: entry.version.clone(),
                    canary: entry.canary,
                    event: input.event.clone(),
                    outcome: entry.outcome.clone(),
                    changes: input.changes.clone(),
                    fuel_used: entry.fuel_used,
                    duration_us: entry.duration_us,
                })
            })
            .collect()
    }

    /// A hook's recent invocations, oldest first.
    pub fn recent(&self, hook_id: &str) -> Vec<HookLogEntry> {
        let rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        rings
            .get(hook_id)
            .map(|ring| ring.iter().map(|kept| kept.entry.clone()).collect())
            .unwrap_or_default()
    }

    /// How many followers are attached (`?follow` streams still open).
    pub fn followers(&self) -> usize {
        self.followers.receiver_count()
    }

    /// Every invocation recorded from now on (followers filter by hook id).
    pub fn follow(&self) -> broadcast::Receiver<HookLogEntry> {
        self.followers.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{HookError, HookLog, Invocation};

    fn entry(hook: &str, n: u64) -> HookLogEntry {
        let invocation = Invocation {
            result: Err(HookError::Host("x".into())),
            log: HookLog::default(),
            fuel_used: n,
            elapsed: std::time::Duration::ZERO,
            reused_instance: false,
        };
        HookLogEntry::new(
            hook,
            n,
            "req",
            "client",
            "aud",
            LoggedOutcome::Allowed,
            &invocation,
        )
    }

    #[test]
    fn rings_are_bounded_per_hook_and_followers_see_new_entries() {
        let book = HookLogBook::new();
        let mut follower = book.follow();
        for n in 0..(ENTRIES_PER_HOOK as u64 + 5) {
            book.record(entry("a", n));
        }
        book.record(entry("b", 0));
        let recent = book.recent("a");
        assert_eq!(recent.len(), ENTRIES_PER_HOOK);
        assert_eq!(recent[0].fuel_used, 5);
        assert_eq!(book.recent("b").len(), 1);
        assert!(book.recent("c").is_empty());
        assert_eq!(follower.try_recv().map(|e| e.fuel_used), Ok(0));
    }

    #[test]
    fn shipping_takes_every_entry_it_has_room_for_and_counts_the_rest() {
        let book = HookLogBook::new();
        let mut shipped = book.ship(2).expect("the first outbox");
        assert!(book.ship(2).is_none(), "one outbox");
        for n in 0..5 {
            book.record(entry("a", n));
        }
        assert_eq!(shipped.try_recv().map(|e| e.fuel_used), Ok(0));
        assert_eq!(shipped.try_recv().map(|e| e.fuel_used), Ok(1));
        assert!(shipped.try_recv().is_err());
        assert_eq!(book.take_dropped(), 3);
        assert_eq!(book.take_dropped(), 0);
        // Every entry is kept locally all the same.
        assert_eq!(book.recent("a").len(), 5);
    }

    #[test]
    fn relayed_entries_reach_followers_but_are_not_kept() {
        let book = HookLogBook::new();
        book.relay(entry("a", 1));
        let mut follower = book.follow();
        book.relay(entry("a", 2));
        assert_eq!(follower.try_recv().map(|e| e.fuel_used), Ok(2));
        assert!(book.recent("a").is_empty());
    }
}
