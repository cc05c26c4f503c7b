//! hookd's domain records: tenant, applications, APIs, client grants, hooks and signing keys,
//! as the token service and the Management API see them. No storage or HTTP types here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hooks::{ExtensibilityPoint, HookLimits};

/// What the token endpoint does when a hook fails (traps, runs out of fuel, memory or time,
/// returns invalid output). A denial is not a failure: it is always honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Refuse the token with 500 `server_error` (Auth0's behaviour).
    #[default]
    FailClosed,
    /// Issue the token without the hook's changes (Okta's behaviour).
    FailOpen,
}

/// Tenant-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// The tenant's name (Auth0's tenant name; passed to hooks).
    pub name: String,
    /// The issuer URL, always ending in `/` (Auth0 style): the tokens' `iss`.
    pub issuer: String,
}

/// An application: an OAuth 2.0 confidential client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The `client_id`.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Auth0 `app_type`; hookd issues tokens to `non_interactive` (machine) applications.
    pub app_type: String,
    /// Auth0 `client_metadata`, passed to hooks.
    pub metadata: BTreeMap<String, String>,
    /// Grant types the application may use, e.g. `client_credentials`.
    pub grant_types: Vec<String>,
    /// Keyed SHA-256 of the client secret (see [`crate::secrets`]); the secret itself is
    /// never stored.
    pub secret_hash: String,
    /// How many times the secret was rotated. Management API tokens carry the generation
    /// they were issued under and stop working when it moves on.
    #[serde(default)]
    pub secret_generation: u64,
}

/// How the token's claims are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenDialect {
    /// Auth0's access tokens: `typ: JWT`, `azp`, `gty`.
    #[default]
    #[serde(rename = "access_token")]
    Auth0,
    /// RFC 9068 JWT access tokens: `typ: at+jwt`, `client_id`, `jti`.
    #[serde(rename = "rfc9068_profile")]
    Rfc9068,
}

impl TokenDialect {
    /// The dialect's name on the wire, e.g. `access_token`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenDialect::Auth0 => "access_token",
            TokenDialect::Rfc9068 => "rfc9068_profile",
        }
    }
}

/// The algorithm an API's tokens are signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 on a 2048-bit key (the default, as at Auth0).
    #[default]
    RS256,
    /// RSASSA-PSS with SHA-256 on a 2048-bit key.
    PS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// HMAC-SHA256 with a secret of the API's own (not published in the JWKS).
    HS256,
}

impl SigningAlg {
    /// The JOSE name, e.g. `RS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::PS256 => "PS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::HS256 => "HS256",
        }
    }

    /// The algorithms signed with a published key pair.
    pub const ASYMMETRIC: [SigningAlg; 3] =
        [SigningAlg::RS256, SigningAlg::PS256, SigningAlg::ES256];
}

/// How a hook's scope list is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum HookScopePolicy {
    /// Auth0 Hooks: the hook's list replaces the token's scopes as it is.
    #[default]
    Replace,
    /// Auth0 Actions: the hook's list is intersected with the client grant; scopes outside the
    /// grant are dropped (and reported in the hook log).
    IntersectWithGrant,
}

/// One scope an API defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiScope {
    /// The scope, e.g. `read:reports`.
    pub value: String,
    /// What it allows.
    #[serde(default)]
    pub description: String,
}

/// An API (Auth0 resource server): what a token is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Api {
    /// hookd's id for it.
    pub id: String,
    /// The identifier clients ask for (`audience`), the token's `aud`.
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// The scopes it defines.
    pub scopes: Vec<ApiScope>,
    /// Token lifetime in seconds.
    pub token_lifetime: u64,
    /// Signing algorithm.
    pub signing_alg: SigningAlg,
    /// The HS256 secret (the text the Management API shows on create and rotate), sealed
    /// under the secrets key with the API's id as its place; `None` for the asymmetric
    /// algorithms.
    pub signing_secret: Option<crate::secrets::AtRest>,
    /// How `signing_secret` becomes the HMAC key. Records written before this field existed
    /// read as [`SecretKeyForm::Base64urlDecoded`], so their tokens keep verifying.
    #[serde(default = "SecretKeyForm::before_text_keys")]
    pub signing_secret_form: SecretKeyForm,
    /// Token layout.
    pub token_dialect: TokenDialect,
    /// How a hook's scope list is applied.
    pub hook_scope_policy: HookScopePolicy,
}

/// How an API's HS256 `signing_secret` text becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKeyForm {
    /// The text's bytes as shown: what Auth0, its SDKs and every JWT library
    /// (`jwt.verify(token, secret)`, PyJWT, jose) use. Every new secret.
    Text,
    /// The bytes the base64url text decodes to: how secrets made before hookd signed with
    /// the text were used, kept for those APIs until their secret is replaced.
    Base64urlDecoded,
}

impl SecretKeyForm {
    /// The form of a stored API record that does not say (written before `Text` existed).
    pub fn before_text_keys() -> Self {
        SecretKeyForm::Base64urlDecoded
    }

    /// The HMAC key for `secret` in this form; `None` if the text does not decode.
    pub fn key_bytes(self, secret: &str) -> Option<Vec<u8>> {
        match self {
            SecretKeyForm::Text => Some(secret.as_bytes().to_vec()),
            SecretKeyForm::Base64urlDecoded => {
                use base64::Engine as _;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(secret)
                    .ok()
            }
        }
    }
}

/// Permission for one client to get tokens for one API, with these scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientGrant {
    /// hookd's id for it.
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The API identifier.
    pub audience: String,
    /// The scopes granted.
    pub scope: Vec<String>,
}

/// One uploaded module of a hook: immutable once stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookVersion {
    /// The module's sha256, hex; also its key in the module store.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded, seconds since the Unix epoch.
    pub uploaded_at: u64,
}

/// A hook: a named, versioned module for one extensibility point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// hookd's id for it.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The extensibility point.
    pub trigger: ExtensibilityPoint,
    /// Whether it runs (at most one enabled hook per trigger).
    pub enabled: bool,
    /// Every module uploaded for it, oldest first.
    pub versions: Vec<HookVersion>,
    /// The version that runs (sha256), pinned when enabled or rolled back.
    pub active_version: Option<String>,
    /// Limits for each invocation.
    pub limits: HookLimits,
    /// What happens when it fails.
    pub failure_policy: FailurePolicy,
    /// Whether calls reuse live instances (globals carry over between calls) instead of a
    /// fresh instance each; off unless an operator turns it on.
    #[serde(default)]
    pub reuse_instances: bool,
    /// The hook's secrets, encrypted (see [`crate::secrets::SecretBox`]), by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, crate::secrets::Sealed>,
    /// A version running for a share of clients beside the active one, or the last one
    /// withdrawn.
    #[serde(default)]
    pub canary: Option<Canary>,
    /// A candidate version run in shadow for a sampled share of requests.
    #[serde(default)]
    pub shadow: Option<Shadow>,
}

/// A shadow run: a candidate version runs beside the active one for `percent` of token
/// requests after the token is decided, never changing it; the hook log records where the
/// two differed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadow {
    /// The candidate's sha256 (one of the hook's versions, not the active one).
    pub version: String,
    /// The share of requests sampled, 1 to 100.
    pub percent: u8,
    /// When it started, seconds since the Unix epoch.
    pub started_at: u64,
}

/// What one node's shadow worker has done since the shadow run started there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowObserved {
    /// Candidate calls made.
    pub runs: u64,
    /// Of which decided differently from the active version.
    pub differed: u64,
    /// Sampled requests dropped because the worker's queue was full.
    pub dropped: u64,
}

/// A canary rollout: another version of the hook runs for `percent` of clients (chosen by
/// client id, so one client always sees the same version), and is withdrawn automatically
/// when its failure rate exceeds the active version's by more than the rule's margin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// The sha256 of the version under trial (one of the hook's versions, not the active one).
    pub version: String,
    /// The share of clients that get it, 1 to 100.
    pub percent: u8,
    /// When the automatic rollback steps in.
    pub rule: CanaryRule,
    /// When it started, seconds since the Unix epoch.
    pub started_at: u64,
    /// Running, or withdrawn (and why).
    pub state: CanaryState,
}

/// When a canary is withdrawn: after at least `min_calls` calls of the canary among its last
/// `window`, its failure rate (failures, not denials) is more than `margin_percent`
/// percentage points above the active version's over the active version's last `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryRule {
    /// Calls the canary must have made before it is judged.
    pub min_calls: u32,
    /// How many percentage points worse than the active version it may be.
    pub margin_percent: u8,
    /// How many recent calls of each version are compared.
    pub window: u32,
}

impl Default for CanaryRule {
    fn default() -> Self {
        CanaryRule {
            min_calls: 20,
            margin_percent: 5,
            window: 200,
        }
    }
}

impl CanaryRule {
    /// Largest window: each version keeps one bit per call in it.
    pub const MAX_WINDOW: u32 = 100_000;

    /// Why the rule cannot work, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.window == 0 || self.window > Self::MAX_WINDOW {
            return Err(format!("window: must be 1 to {}", Self::MAX_WINDOW));
        }
        if self.min_calls == 0 || self.min_calls > self.window {
            return Err("min_calls: must be 1 to window".to_owned());
        }
        if self.margin_percent > 100 {
            return Err("margin_percent: must be 0 to 100".to_owned());
        }
        Ok(())
    }
}

/// What one node has seen of a running canary and of the active version beside it, over the
/// rule's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryObserved {
    /// The canary's calls in the window.
    pub canary_calls: u32,
    /// How many of them failed.
    pub canary_failures: u32,
    /// The active version's calls in the window.
    pub active_calls: u32,
    /// How many of them failed.
    pub active_failures: u32,
}

/// Where a canary is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CanaryState {
    /// Serving its share of clients.
    Running,
    /// Taken out of service: every client runs the active version.
    Withdrawn {
        /// When, seconds since the Unix epoch.
        at: u64,
        /// Why: the failure rates compared, or that an operator withdrew it.
        reason: String,
    },
}

/// Where a signing key is in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not yet signing: becomes current at the next rotation.
    Next,
    /// Signs new tokens.
    Current,
    /// Retired from signing; still published so tokens it signed verify until they expire.
    /// Any number may be published at once.
    Previous,
}

/// A signing key pair for one algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// Key id, the JWT header's `kid`.
    pub kid: String,
    /// The algorithm it signs with.
    pub alg: SigningAlg,
    /// The private key, PKCS#8 DER, base64, sealed under the secrets key with the kid as its
    /// place. Never leaves the server.
    pub pkcs8: crate::secrets::AtRest,
    /// Where it is in its rotation.
    pub state: KeyState,
    /// When it was created, seconds since the Unix epoch.
    pub created_at: u64,
    /// When it stopped signing (for [`KeyState::Previous`] keys), seconds since the Unix
    /// epoch; it stays published until no token it signed can still be live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

/// The grant type this server issues tokens for.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The claim a Management API token carries its client's secret generation in (see
/// [`Client::secret_generation`]).
pub const MANAGEMENT_SECRET_GENERATION: &str = "secret_generation";

/// A node of an installation as it last reported itself to the shared database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Its name (`--node-name`, or host name and port).
    pub name: String,
    /// The address it listens on.
    pub address: String,
    /// The hookd version it runs.
    pub version: String,
    /// When it started, seconds since the Unix epoch.
    pub started_at: u64,
    /// The newest revision of the change feed it has applied (`None` on sled, which has no
    /// feed).
    pub applied_revision: Option<i64>,
    /// When it last reported, seconds since the Unix epoch.
    pub heartbeat_at: u64,
}

/// The Management API's audience for an issuer: `<issuer>api/v2/`.
pub fn management_audience(issuer: &str) -> String {
    format!("{issuer}api/v2/")
}

/// Every scope of the Management API; the bootstrap admin application is granted them all.
pub const MANAGEMENT_SCOPES: &[&str] = &[
    "read:clients",
    "create:clients",
    "update:clients",
    "delete:clients",
    "read:resource_servers",
    "create:resource_servers",
    "update:resource_servers",
    "delete:resource_servers",
    "read:client_grants",
    "create:client_grants",
    "update:client_grants",
    "delete:client_grants",
    "read:hooks",
    "create:hooks",
    "update:hooks",
    "delete:hooks",
    "read:logs",
    "read:signing_keys",
    "update:signing_keys",
    "read:nodes",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_stored_before_text_keys_keeps_its_decoded_key_and_new_ones_use_the_text() {
        let stored = r#"{"id":"a","identifier":"https://x/","name":"x","scopes":[],
            "token_lifetime":60,"signing_alg":"HS256","signing_secret":"c2VjcmV0",
            "token_dialect":"access_token","hook_scope_policy":"replace"}"#;
        let api: Api = serde_json::from_str(stored).unwrap();
        assert_eq!(api.signing_secret_form, SecretKeyForm::Base64urlDecoded);
        assert_eq!(
            api.signing_secret_form.key_bytes("c2VjcmV0").unwrap(),
            b"secret"
        );
        assert_eq!(
            SecretKeyForm::Text.key_bytes("c2VjcmV0").unwrap(),
            b"c2VjcmV0"
        );
        let written = serde_json::to_value(Api {
            signing_secret_form: SecretKeyForm::Text,
            ..api
        })
        .unwrap();
        assert_eq!(written["signing_secret_form"], "text");
    }
}
