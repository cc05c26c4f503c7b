//! Prometheus metrics: what the server counts and measures, with label values from small
//! fixed sets (endpoints, statuses, OAuth error codes, algorithms, operations) or from the
//! hooks operators create (hook id and version), never from clients or free text. Rendered
//! in the OpenMetrics text format for `--metrics-listen`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A request's endpoint, status and, for an OAuth error, its code (empty otherwise).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: u16,
    error: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
}

/// A hook version: the hook's id and the first 12 hex digits of the module's sha256.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook_id: String,
    version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookOutcomeLabels {
    hook_id: String,
    version: String,
    outcome: &'static str,
}

/// A shadow version's runs: `same`, `differed`, or `dropped` (the queue was full).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    hook_id: String,
    version: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlgLabels {
    alg: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    operation: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Request latencies: 100 µs to about 6.5 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Fuel per call: 1,000 to about 4 billion.
fn fuel_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1_000.0, 4.0, 12))
}

/// Every metric hookd exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<EndpointLabels>,
    in_flight: Family<EndpointLabels, Gauge>,
    refused: Family<PoolLabels, Counter>,
    hook_calls: Family<HookOutcomeLabels, Counter>,
    hook_seconds: HistogramFamily<HookLabels>,
    hook_fuel: HistogramFamily<HookLabels>,
    signed: Family<AlgLabels, Counter>,
    management_writes: Family<WriteLabels, Counter>,
    canary_withdrawals: Family<HookLabels, Counter>,
    shadow_runs: Family<ShadowLabels, Counter>,
    instance_reuses: Family<HookLabels, Counter>,
    store_writes: Histogram,
    hook_log_shipped: Counter,
    hook_log_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// How an invocation ended, as a label: `ok`, `denied`, or `failed_<kind>` for the engine's
/// failure kinds (`HookError::kind`: `out_of_fuel`, `timeout`, `trap`, ...). `None` is a call
/// that succeeded.
pub fn hook_outcome(kind: Option<&str>) -> &'static str {
    match kind {
        None => "ok",
        Some("denied") => "denied",
        Some("out_of_fuel") => "failed_out_of_fuel",
        Some("timeout") => "failed_timeout",
        Some("memory_limit") => "failed_memory_limit",
        Some("trap") => "failed_trap",
        Some("failed") => "failed_reported",
        Some("invalid_output") => "failed_invalid_output",
        Some("input_too_large") => "failed_input_too_large",
        Some("unavailable") => "failed_unavailable",
        Some(_) => "failed_host",
    }
}

/// A hook version's label value: the sha256's first 12 hex digits.
fn short_version(sha256: &str) -> String {
    sha256.chars().take(12).collect()
}

impl Metrics {
    /// Every family registered, with `build_info` set.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hookd");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests answered, by endpoint, status and OAuth error code",
            requests.clone(),
        );
        let request_seconds = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "http_request_duration_seconds",
            "Time from the request's head to its answer, by endpoint",
            request_seconds.clone(),
        );
        let in_flight = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being handled, by endpoint",
            in_flight.clone(),
        );
        let refused = Family::<PoolLabels, Counter>::default();
        registry.register(
            "http_requests_refused",
            "Requests answered 503 because their pool of slots was full",
            refused.clone(),
        );
        let hook_calls = Family::<HookOutcomeLabels, Counter>::default();
        registry.register(
            "hook_invocations",
            "Hook calls by hook, version and outcome (ok, denied, failed_<kind>)",
            hook_calls.clone(),
        );
        let hook_seconds = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "hook_duration_seconds",
            "Wall-clock time of a hook call, by hook and version",
            hook_seconds.clone(),
        );
        let hook_fuel = HistogramFamily::new_with_constructor(fuel_histogram as fn() -> _);
        registry.register(
            "hook_fuel",
            "Fuel a hook call burned, by hook and version",
            hook_fuel.clone(),
        );
        let signed = Family::<AlgLabels, Counter>::default();
        registry.register(
            "tokens_signed",
            "Access tokens signed, by algorithm",
            signed.clone(),
        );
        let management_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "management_writes",
            "Management API writes by operation and status",
            management_writes.clone(),
        );
        let canary_withdrawals = Family::<HookLabels, Counter>::default();
        registry.register(
            "hook_canary_withdrawals",
            "Canary versions withdrawn automatically for failing more than the active version",
            canary_withdrawals.clone(),
        );
        let shadow_runs = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "hook_shadow_runs",
            "Shadow runs of a candidate version: same or differed from the active version, or dropped",
            shadow_runs.clone(),
        );
        let instance_reuses = Family::<HookLabels, Counter>::default();
        registry.register(
            "hook_instance_reuses",
            "Hook calls that ran in a live instance kept from an earlier call (instance reuse)",
            instance_reuses.clone(),
        );
        let store_writes = latency_histogram();
        registry.register(
            "store_write_duration_seconds",
            "Time to make a store write durable",
            store_writes.clone(),
        );
        let hook_log_shipped = Counter::default();
        registry.register(
            "hook_log_entries_shipped",
            "Hook log entries written to the shared database, for every node's logs",
            hook_log_shipped.clone(),
        );
        let hook_log_dropped = Counter::default();
        registry.register(
            "hook_log_entries_dropped",
            "Hook log entries not written to the shared database because its queue was full",
            hook_log_dropped.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "hookd's version", build);
        Metrics {
            registry,
            requests,
            request_seconds,
            in_flight,
            refused,
            hook_calls,
            hook_seconds,
            hook_fuel,
            signed,
            management_writes,
            canary_withdrawals,
            shadow_runs,
            instance_reuses,
            store_writes,
            hook_log_shipped,
            hook_log_dropped,
        }
    }

    /// A request to `endpoint` began; the guard counts it in flight until dropped.
    pub fn request_started(&self, endpoint: &'static str) -> InFlight {
        let gauge = self
            .in_flight
            .get_or_create_owned(&EndpointLabels { endpoint });
        gauge.inc();
        InFlight { gauge }
    }

    /// A request to `endpoint` was answered with `status` (and OAuth `error`, or "") after
    /// `seconds`.
    pub fn request_done(
        &self,
        endpoint: &'static str,
        status: u16,
        error: &'static str,
        seconds: f64,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                status,
                error,
            })
            .inc();
        self.request_seconds
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    /// A request was refused with 503 because `pool` (`token` or `reserved`) was full.
    pub fn refused(&self, pool: &'static str) {
        self.refused.get_or_create(&PoolLabels { pool }).inc();
    }

    /// The metrics of hook `hook_id` at version `sha256`, resolved once so that recording a
    /// call builds no labels.
    pub fn hook(&self, hook_id: &str, sha256: &str) -> HookMetrics {
        let labels = HookLabels {
            hook_id: hook_id.to_owned(),
            version: short_version(sha256),
        };
        let outcome = |outcome| {
            self.hook_calls.get_or_create_owned(&HookOutcomeLabels {
                hook_id: labels.hook_id.clone(),
                version: labels.version.clone(),
                outcome,
            })
        };
        HookMetrics {
            ok: outcome("ok"),
            denied: outcome("denied"),
            reused: self.instance_reuses.get_or_create_owned(&labels),
            seconds: self.hook_seconds.get_or_create_owned(&labels),
            fuel: self.hook_fuel.get_or_create_owned(&labels),
            calls: self.hook_calls.clone(),
            labels,
        }
    }

    /// A token was signed with `alg`.
    pub fn signed(&self, alg: &'static str) {
        self.signed.get_or_create(&AlgLabels { alg }).inc();
    }

    /// A Management API write `operation` was answered with `status`.
    pub fn management_write(&self, operation: &'static str, status: u16) {
        self.management_writes
            .get_or_create(&WriteLabels { operation, status })
            .inc();
    }

    /// Hook `hook_id`'s canary version `sha256` was withdrawn automatically.
    pub fn canary_withdrawn(&self, hook_id: &str, sha256: &str) {
        self.canary_withdrawals
            .get_or_create(&HookLabels {
                hook_id: hook_id.to_owned(),
                version: short_version(sha256),
            })
            .inc();
    }

    /// The metrics of hook `hook_id`'s version `sha256` running in shadow.
    pub fn shadow(&self, hook_id: &str, sha256: &str) -> ShadowMetrics {
        let result = |result| {
            self.shadow_runs.get_or_create_owned(&ShadowLabels {
                hook_id: hook_id.to_owned(),
                version: short_version(sha256),
                result,
            })
        };
        ShadowMetrics {
            same: result("same"),
            differed: result("differed"),
            dropped: result("dropped"),
            hook: self.hook(hook_id, sha256),
        }
    }

    /// A store write became durable after `seconds`.
    pub fn store_write(&self, seconds: f64) {
        self.store_writes.observe(seconds);
    }

    /// `shipped` hook log entries reached the shared database, and `dropped` never will.
    pub fn hook_log_shipping(&self, shipped: u64, dropped: u64) {
        self.hook_log_shipped.inc_by(shipped);
        self.hook_log_dropped.inc_by(dropped);
    }

    /// Every metric in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// One hook version's metrics (see [`Metrics::hook`]).
#[derive(Debug, Clone)]
pub struct HookMetrics {
    labels: HookLabels,
    ok: Counter,
    denied: Counter,
    reused: Counter,
    seconds: Histogram,
    fuel: Histogram,
    /// For the failure outcomes, which are rare enough to be looked up when they happen.
    calls: Family<HookOutcomeLabels, Counter>,
}

impl HookMetrics {
    /// A call ran in a live instance kept from an earlier call.
    pub fn reused_instance(&self) {
        self.reused.inc();
    }

    /// A call ended with `outcome` (see [`hook_outcome`]) after `seconds`, burning `fuel`.
    pub fn record(&self, outcome: &'static str, seconds: f64, fuel: u64) {
        match outcome {
            "ok" => self.ok.inc(),
            "denied" => self.denied.inc(),
            failed => self
                .calls
                .get_or_create(&HookOutcomeLabels {
                    hook_id: self.labels.hook_id.clone(),
                    version: self.labels.version.clone(),
                    outcome: failed,
                })
                .inc(),
        };
        self.seconds.observe(seconds);
        self.fuel.observe(fuel as f64);
    }
}

/// One shadow version's metrics (see [`Metrics::shadow`]).
#[derive(Debug, Clone)]
pub struct ShadowMetrics {
    same: Counter,
    differed: Counter,
    dropped: Counter,
    /// Its calls, as any version's.
    pub hook: HookMetrics,
}

impl ShadowMetrics {
    /// A shadow call was made; `differed` when its decision was not the active version's.
    pub fn ran(&self, differed: bool) {
        if differed {
            self.differed.inc();
        } else {
            self.same.inc();
        }
    }

    /// A sampled request was dropped because the shadow queue was full.
    pub fn dropped(&self) {
        self.dropped.inc();
    }
}

/// A request counted in flight until this is dropped.
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
