//! The Management API's wire types (Auth0 v2 shapes): the bodies the server accepts (unknown
//! fields are refused) and the answers it sends. The server serializes them and the CLI
//! deserializes the same structs, so a renamed field fails to compile on both sides.
//!
//! They depend only on [`crate::model`] and the hook engine's public settings types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hooks::{CredentialsExchangeEvent, HookLimits, HookLog, TokenChanges};
pub use crate::model::{
    ApiScope, CanaryObserved, CanaryRule, CanaryState, FailurePolicy, HookScopePolicy, HookVersion,
    ShadowObserved, SigningAlg, TokenDialect,
};

/// `POST`/`PATCH /api/v2/clients` bodies (Auth0 field names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    /// Display name (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text (accepted, not stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Auth0 application type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_type: Option<String>,
    /// Auth0 `client_metadata`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<BTreeMap<String, String>>,
    /// Grant types the application may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
}

/// `POST`/`PATCH /api/v2/resource-servers` bodies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiBody {
    /// The audience (required on create; cannot change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The scopes it defines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<ApiScope>>,
    /// Token lifetime in seconds (default 86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_lifetime: Option<u64>,
    /// Signing algorithm (default RS256).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_alg: Option<SigningAlg>,
    /// `access_token` (Auth0) or `rfc9068_profile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_dialect: Option<TokenDialect>,
    /// `replace` or `intersect_with_grant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_scope_policy: Option<HookScopePolicy>,
}

/// `POST`/`PATCH /api/v2/client-grants` bodies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// The client (required on create; cannot change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The API identifier (required on create; cannot change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The scopes granted (required on create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
}

/// `POST /api/v2/hooks`: what a hook is created with (its module is uploaded separately).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHook {
    /// Unique name (Auth0's pattern).
    pub name: String,
    /// The extensibility point, e.g. `credentials-exchange`.
    #[serde(rename = "triggerId")]
    pub trigger_id: String,
    /// Whether it is enabled; when absent, the first hook of a trigger is and later ones
    /// are not. An explicit value is always honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Auth0's npm `dependencies` map; accepted for compatibility, unused by Wasm hooks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, String>,
    /// Per-hook limits; omitted fields keep their defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<HookLimits>,
    /// What happens when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// Reuse live instances between calls (default false: a fresh instance per call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_instances: Option<bool>,
}

/// `PATCH /api/v2/hooks/{id}`. `triggerId` cannot be changed (Auth0 refuses it the same way).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookPatch {
    /// New name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Enable (pinning the active version) or disable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Accepted for compatibility, unused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<BTreeMap<String, String>>,
    /// New limits (whole object; omitted fields take their defaults).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<HookLimits>,
    /// New failure policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// Turn instance reuse on or off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse_instances: Option<bool>,
    /// Start (or replace) a canary rollout; `null` withdraws the one running.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub canary: Option<Option<CanaryBody>>,
    /// Start (or replace) a shadow run; `null` stops it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub shadow: Option<Option<ShadowBody>>,
}

/// `{"shadow": {...}}` in `PATCH /api/v2/hooks/{id}`: run `version` in shadow for `percent`
/// of requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowBody {
    /// The sha256 of one of the hook's versions (not the active one).
    pub version: String,
    /// The share of requests sampled, 1 to 100.
    pub percent: u8,
}

/// A hook's shadow run as the Management API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowView {
    /// The candidate version.
    pub version: String,
    /// The share of requests sampled.
    pub percent: u8,
    /// When it started, seconds since the Unix epoch.
    pub started_at: u64,
    /// This node's runs, differences and drops, while it runs here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ShadowObserved>,
}

/// A field that may be `null`: absent is `None`, `null` is `Some(None)`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `{"canary": {...}}` in `PATCH /api/v2/hooks/{id}`: run `version` for `percent` of clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryBody {
    /// The sha256 of one of the hook's versions (not the active one).
    pub version: String,
    /// The share of clients that run it, 1 to 100.
    pub percent: u8,
    /// Calls the canary makes before it is judged (default in [`CanaryRule`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_calls: Option<u32>,
    /// How many percentage points worse than the active version it may fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_percent: Option<u8>,
    /// How many recent calls of each version are compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
}

impl CanaryBody {
    /// The rule asked for, defaults filling what was not given.
    pub fn rule(&self) -> CanaryRule {
        let default = CanaryRule::default();
        CanaryRule {
            min_calls: self.min_calls.unwrap_or(default.min_calls),
            margin_percent: self.margin_percent.unwrap_or(default.margin_percent),
            window: self.window.unwrap_or(default.window),
        }
    }
}

/// A hook's canary as the Management API shows it. The call counts are this node's, over the
/// rule's window, while the canary runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryView {
    /// The version under trial.
    pub version: String,
    /// The share of clients that run it.
    pub percent: u8,
    /// When it is withdrawn automatically.
    #[serde(flatten)]
    pub rule: CanaryRule,
    /// When it started, seconds since the Unix epoch.
    pub started_at: u64,
    /// `running` or `withdrawn` (with `at` and `reason`).
    #[serde(flatten)]
    pub state: CanaryState,
    /// Its recent calls and failures, and the active version's, on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<CanaryObserved>,
}

/// `POST /api/v2/hooks/{id}/rollback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The sha256 of the version to make active.
    pub version: String,
}

/// `POST`/`PATCH /api/v2/hooks/{id}/secrets`: secret values by name.
pub type SecretValues = BTreeMap<String, String>;

/// `DELETE /api/v2/hooks/{id}/secrets`: the names to delete.
pub type SecretNames = Vec<String>;

/// What the Management API shows instead of a secret's value (as Auth0 does).
pub const REDACTED: &str = "_VALUE_NOT_SHOWN_";

/// A hook's secrets as the Management API shows them: every name, never a value
/// (each is [`REDACTED`]).
pub type SecretsView = BTreeMap<String, String>;

/// An application. Never its secret's hash; the secret itself only in the answers that create
/// or rotate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientView {
    /// Its id.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Auth0 application type.
    pub app_type: String,
    /// Auth0 `client_metadata`.
    pub client_metadata: BTreeMap<String, String>,
    /// Grant types it may use.
    pub grant_types: Vec<String>,
    /// How it authenticates at the token endpoint (Auth0's field).
    pub token_endpoint_auth_method: String,
    /// The secret, in the answers that create or rotate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// An API (resource server). Its HS256 secret only in the answers that create or rotate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiView {
    /// hookd's id for it.
    pub id: String,
    /// The audience.
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// The scopes it defines.
    pub scopes: Vec<ApiScope>,
    /// Token lifetime in seconds.
    pub token_lifetime: u64,
    /// Signing algorithm.
    pub signing_alg: SigningAlg,
    /// Token layout.
    pub token_dialect: TokenDialect,
    /// How a hook's scopes apply.
    pub hook_scope_policy: HookScopePolicy,
    /// The HS256 secret, in the answers that create or rotate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// A client grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// hookd's id for it.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The API identifier.
    pub audience: String,
    /// The scopes granted.
    pub scope: Vec<String>,
}

/// Whether a hook is what its trigger runs (`state` of a hook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookState {
    /// Enabled and running its active version.
    Running,
    /// Disabled.
    Disabled,
    /// Enabled, but no module has been uploaded: the trigger runs nothing.
    NoModule,
    /// Enabled, but it could not be loaded; its requests follow its failure policy
    /// (`state_reason` says why).
    Unavailable,
    /// Enabled, and being switched to (a change is in progress).
    Pending,
}

impl HookState {
    /// The state's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HookState::Running => "running",
            HookState::Disabled => "disabled",
            HookState::NoModule => "no_module",
            HookState::Unavailable => "unavailable",
            HookState::Pending => "pending",
        }
    }
}

/// A hook, with whether it is what its trigger runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookView {
    /// hookd's id for it.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The extensibility point (Auth0 trigger id).
    #[serde(rename = "triggerId")]
    pub trigger_id: String,
    /// Whether it is its trigger's enabled hook.
    pub enabled: bool,
    /// Auth0's npm dependencies: always empty for Wasm hooks.
    pub dependencies: BTreeMap<String, String>,
    /// The sha256 of the version that runs when enabled.
    pub active_version: Option<String>,
    /// Every uploaded version, oldest first.
    pub versions: Vec<HookVersion>,
    /// The limits every call runs under.
    pub limits: HookLimits,
    /// What the token endpoint does when it fails.
    pub failure_policy: FailurePolicy,
    /// Whether calls reuse live instances.
    pub reuse_instances: bool,
    /// Whether it runs right now.
    pub state: HookState,
    /// Why it is unavailable, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// Its canary rollout, running or last withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryView>,
    /// Its shadow run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowView>,
}

/// One version in `GET /api/v2/hooks/{id}/versions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookVersionView {
    /// The module's sha256, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded, seconds since the Unix epoch.
    pub uploaded_at: u64,
    /// Whether it is the hook's active version.
    pub active: bool,
}

/// The answer to `PUT /api/v2/hooks/{id}/module`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedView {
    /// The version the upload stored.
    pub version: HookVersion,
    /// The hook after the upload.
    pub hook: HookView,
}

/// A signing key's public view (`GET /api/v2/keys/signing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyView {
    /// Its key id.
    pub kid: String,
    /// Its JWS algorithm.
    pub alg: String,
    /// Whether it signs new tokens.
    pub current: bool,
    /// Whether it is published ahead of its turn.
    pub next: bool,
    /// Whether it is retired but still published for tokens it signed.
    pub previous: bool,
}

/// The nodes of an installation (`GET /api/v2/nodes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodesView {
    /// The change feed's current revision (`null` on sled, which has no feed).
    pub revision: Option<i64>,
    /// Every node that reported in the last day, by name.
    pub nodes: Vec<NodeView>,
}

/// One node as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// Its name (`--node-name`, or host name and port).
    pub name: String,
    /// The address it listens on.
    pub address: String,
    /// The hookd version it runs.
    pub version: String,
    /// When it started, seconds since the Unix epoch.
    pub started_at: u64,
    /// The newest revision it has applied (`null` on sled).
    pub applied_revision: Option<i64>,
    /// When it last reported, seconds since the Unix epoch.
    pub heartbeat_at: u64,
    /// How many revisions it is behind the current one (`null` on sled).
    pub behind: Option<i64>,
    /// Whether it reported recently enough to be counted as running.
    pub live: bool,
}

/// How an invocation ended, as the token endpoint acted on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LoggedOutcome {
    /// The hook's changes were applied.
    Allowed,
    /// The hook denied; the client got this error.
    Denied {
        /// The OAuth error code.
        code: String,
        /// The description the client got.
        description: String,
    },
    /// The hook failed; `token_issued` says whether fail-open issued the token anyway.
    Failed {
        /// `out_of_fuel`, `timeout`, `trap`, ...
        kind: String,
        /// What went wrong (for operators; never sent to the client).
        message: String,
        /// Whether the token was issued without the hook's changes (fail-open).
        token_issued: bool,
    },
}

/// One invocation of a hook (`GET /api/v2/hooks/{id}/logs`, one line of `?follow`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookLogEntry {
    /// The hook's id.
    pub hook_id: String,
    /// When it ran, seconds since the Unix epoch.
    pub time: u64,
    /// The token request's id (also in the `x-request-id` response header and server logs).
    pub request_id: String,
    /// The client that asked for the token.
    pub client_id: String,
    /// The API the token was for.
    pub audience: String,
    /// The sha256 of the version that ran (empty when the hook could not be loaded).
    #[serde(default)]
    pub version: String,
    /// Whether that version ran as a canary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
    /// Whether it was a shadow run (its answer never reached the client; its notices say
    /// where it differed from the active version).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    /// The node that ran it, when several share a database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How it ended.
    pub outcome: LoggedOutcome,
    /// Wall-clock time of the call, in microseconds.
    pub duration_us: u64,
    /// Fuel burned.
    pub fuel_used: u64,
    /// The hook's stdout and stderr, and hookd's notices about the call.
    pub log: HookLog,
}

/// The input of a recent invocation and what came of it, kept for replay
/// (`GET /api/v2/hooks/{id}/events`). The event's secret values are replaced by
/// [`REDACTED`]; a replay on the server puts the hook's secrets back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// The hook's id.
    pub hook_id: String,
    /// The token request's id.
    pub request_id: String,
    /// When it ran, seconds since the Unix epoch.
    pub time: u64,
    /// The sha256 of the version that ran.
    pub version: String,
    /// Whether that version ran as a canary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
    /// What the hook was called with (the `hookd hooks test --event` format).
    pub event: CredentialsExchangeEvent,
    /// How it ended.
    pub outcome: LoggedOutcome,
    /// The scope and claims it returned, when it allowed the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<TokenChanges>,
    /// Fuel burned.
    pub fuel_used: u64,
    /// Wall-clock time, in microseconds.
    pub duration_us: u64,
}

/// `POST /api/v2/hooks/{id}/replay`: run a recorded event again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// The token request whose event is run.
    pub request_id: String,
    /// The version to run it on (default: the active version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One run of a hook on an event, as a replay reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayedCall {
    /// The version that ran (a sha256, or a file name for a local run).
    pub version: String,
    /// How it ended.
    pub outcome: LoggedOutcome,
    /// The scope and claims it returned, when it allowed the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<TokenChanges>,
    /// Its output and hookd's notices.
    pub log: HookLog,
    /// Fuel burned.
    pub fuel_used: u64,
    /// Wall-clock time, in microseconds.
    pub duration_us: u64,
}

/// The answer to a replay: what happened then, and what happens now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayView {
    /// The recorded invocation.
    pub recorded: RecordedEvent,
    /// The run just made.
    pub replayed: ReplayedCall,
}

/// A line of a `?follow` stream: an entry, or how many entries a slow reader missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FollowLine {
    /// The next invocation.
    Entry(Box<HookLogEntry>),
    /// Entries dropped because the reader fell behind.
    Missed {
        /// How many.
        missed: u64,
    },
}

/// A paged list with `include_totals=true`: `{start, limit, total, <key>: [...]}` (the key
/// names the resource, e.g. `clients`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals<T> {
    /// Index of the first item.
    pub start: usize,
    /// Items per page.
    pub limit: usize,
    /// Items in the whole list.
    pub total: usize,
    /// The page, under the resource's key.
    #[serde(flatten)]
    pub items: BTreeMap<String, Vec<T>>,
}

/// A Management API error in Auth0's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The HTTP status.
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// The status's reason phrase.
    pub error: String,
    /// What went wrong, naming the field where there is one.
    pub message: String,
    /// Auth0's machine-readable code, e.g. `insufficient_scope`.
    #[serde(rename = "errorCode", default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// The token endpoint's success answer (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenAnswer {
    /// The signed JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The scopes it carries, space-separated, when it carries any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}
