//! The client-credentials token flow: authenticate the client, find the API and the grant,
//! compute scopes, run the enabled hook, apply its changes, sign. Orchestration only: no
//! HTTP or storage types, and time is a parameter (`now`, seconds since the Unix epoch).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::hooklog::{CallInput, HookLogBook, HookLogEntry, LoggedOutcome, redacted};
use crate::hooks::{
    ClientInfo, CredentialsExchangeEvent, Denial, ExtensibilityPoint, HookContext, HookEngine,
    HookError, Invocation, RequestInfo, ResourceServerInfo,
};
use crate::keys::LiveKeys;
use crate::metrics::{HookMetrics, Metrics, hook_outcome};
use crate::model::{
    Api, CLIENT_CREDENTIALS, FailurePolicy, HookScopePolicy, MANAGEMENT_SECRET_GENERATION, Tenant,
    TokenDialect,
};
use crate::registry::shadow::Decision;
use crate::registry::{CanaryJudge, CanaryWithdrawal, HookRegistry, RegisteredHook, ShadowJob};
use crate::secrets::{SecretHasher, random_bytes};
use crate::store::RecordStore as _;
use crate::store::{Store, StoreError};

/// The stored hash an unknown client's secret is compared with: the same HMAC and comparison
/// as for a known client, and it matches no secret.
const NO_CLIENT_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How the client authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// No credentials at all.
    None,
    /// `client_secret_basic`: the `Authorization: Basic` header.
    Basic {
        /// The client id.
        client_id: String,
        /// The secret.
        client_secret: String,
    },
    /// `client_secret_post`: `client_id` and `client_secret` in the body.
    Post {
        /// The client id.
        client_id: String,
        /// The secret (empty when the body had none).
        client_secret: String,
    },
    /// More than one method at once (RFC 6749 §2.3: not allowed).
    Conflicting,
}

/// A token request, parsed from whatever wire format it came in.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// The client's credentials.
    pub auth: ClientAuth,
    /// `audience` (Auth0) or `resource` (RFC 8707).
    pub audience: Option<String>,
    /// `scope`, space-delimited.
    pub scope: Option<String>,
    /// Facts about the HTTP request, passed to the hook.
    pub request: RequestInfo,
    /// The request id, for logs.
    pub request_id: String,
}

/// A successfully issued token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The signed JWT.
    pub access_token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// The scopes, space-delimited, when there are any.
    pub scope: Option<String>,
}

/// Why no token was issued. Each variant is one row of the error table; `http` renders them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `invalid_client`, with `WWW-Authenticate: Basic` when Basic was used.
    #[error("Client authentication failed")]
    InvalidClient {
        /// Whether the client used the Authorization header.
        used_basic: bool,
    },
    /// 400 `unsupported_grant_type`.
    #[error("Unsupported grant type: {0}")]
    UnsupportedGrantType(String),
    /// 403 `unauthorized_client`.
    #[error("Grant type '{0}' not allowed for the client.")]
    UnauthorizedClient(String),
    /// 403 `access_denied`.
    #[error("{0}")]
    AccessDenied(String),
    /// The hook denied: 400 `invalid_scope` / `invalid_request`, 500 `server_error`.
    #[error("{}", .0.description)]
    HookDenied(Denial),
    /// The hook failed and its policy is fail-closed: 500 `server_error`, details logged only.
    #[error("The token hook failed; see the hook log for details")]
    HookFailed,
    /// The database could not be reached in time: 503 `temporarily_unavailable`.
    #[error("The store is unavailable; retry shortly")]
    Unavailable,
    /// Something on the server broke: 500 `server_error`, details logged only.
    #[error("Internal error")]
    Internal,
}

impl From<StoreError> for TokenError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "the store is unavailable to the token endpoint");
                TokenError::Unavailable
            }
            error => {
                tracing::error!(%error, "store error while issuing a token");
                TokenError::Internal
            }
        }
    }
}

/// Issues tokens. Shared by every request.
#[derive(Debug)]
pub struct TokenService {
    max_staleness: Option<u64>,
    store: Store,
    hasher: SecretHasher,
    keys: LiveKeys,
    engine: HookEngine,
    registry: Arc<HookRegistry>,
    hook_log: Arc<HookLogBook>,
    metrics: Arc<Metrics>,
    tenant: Tenant,
    /// The Management API's audience, whose tokens never run hooks.
    management_audience: String,
}

/// Longest grant type an error quotes back.
const MAX_QUOTED_GRANT_TYPE: usize = 64;

/// A grant type as an error may quote it: as sent when it is short and within RFC 6749
/// §5.2's `error_description` characters, else a note that it is not shown.
fn shown_grant_type(sent: &str) -> String {
    let quotable = sent.len() <= MAX_QUOTED_GRANT_TYPE
        && sent.bytes().all(|b| {
            b == 0x20 || b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
        });
    if quotable {
        sent.to_owned()
    } else {
        format!(
            "(not shown: over {MAX_QUOTED_GRANT_TYPE} characters or outside the characters an \
             error description may hold)"
        )
    }
}

/// Which version of a loaded hook a request ran, and the canary judge to tell, if a canary
/// rollout runs.
struct RanVersion<'a> {
    sha256: &'a str,
    /// The event it was called with, secrets redacted, kept for replay.
    recorded: CredentialsExchangeEvent,
    metrics: &'a HookMetrics,
    canary: bool,
    judge: Option<&'a CanaryJudge>,
}

fn split_scopes(scope: &str) -> Vec<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What the token service is built from.
#[derive(Debug)]
pub struct TokenParts {
    /// Refuse tokens once a shared store has not been heard from for this many seconds.
    pub max_staleness: Option<u64>,
    /// The store (its in-memory records serve the token path).
    pub store: Store,
    /// Checks client secrets.
    pub hasher: SecretHasher,
    /// The signing keys in use (shared with the management service).
    pub keys: LiveKeys,
    /// Runs hooks.
    pub engine: HookEngine,
    /// What each trigger runs (shared with the management service).
    pub registry: Arc<HookRegistry>,
    /// Every hook's recent invocations.
    pub hook_log: Arc<HookLogBook>,
    /// What the server counts and measures.
    pub metrics: Arc<Metrics>,
    /// The tenant.
    pub tenant: Tenant,
}

impl TokenService {
    /// A service over these parts.
    pub fn new(parts: TokenParts) -> Self {
        TokenService {
            max_staleness: parts.max_staleness,
            management_audience: crate::model::management_audience(&parts.tenant.issuer),
            store: parts.store,
            hasher: parts.hasher,
            keys: parts.keys,
            engine: parts.engine,
            registry: parts.registry,
            hook_log: parts.hook_log,
            metrics: parts.metrics,
            tenant: parts.tenant,
        }
    }

    /// The tenant this service issues for.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The published keys as a JWKS document.
    pub fn jwks(&self) -> Value {
        self.keys.load().jwks()
    }

    /// Runs the client-credentials flow for one request at time `now`.
    pub async fn issue(
        &self,
        mut request: TokenRequest,
        now: u64,
    ) -> Result<IssuedToken, TokenError> {
        match request.grant_type.as_deref() {
            None => {
                return Err(TokenError::InvalidRequest(
                    "Missing required parameter: grant_type".to_owned(),
                ));
            }
            Some(CLIENT_CREDENTIALS) => {}
            Some(other) => return Err(TokenError::UnsupportedGrantType(shown_grant_type(other))),
        }

        // A node told to fail closed refuses once its view of a shared store may be stale.
        if let Some(max) = self.max_staleness
            && self
                .store
                .silent_for(now)
                .is_some_and(|silent| silent > max)
        {
            return Err(TokenError::Unavailable);
        }
        let (client_id, secret, used_basic) = match &request.auth {
            ClientAuth::Conflicting => {
                return Err(TokenError::InvalidRequest(
                    "Only one client authentication method may be used".to_owned(),
                ));
            }
            ClientAuth::None => return Err(TokenError::InvalidClient { used_basic: false }),
            ClientAuth::Basic {
                client_id,
                client_secret,
            } => (client_id, client_secret, true),
            ClientAuth::Post {
                client_id,
                client_secret,
            } => (client_id, client_secret, false),
        };
        // One HMAC whether or not the client exists, so timing does not tell which ids do.
        let found = self.store.client(client_id).await?;
        let stored_hash = found
            .as_ref()
            .map_or(NO_CLIENT_HASH, |client| client.secret_hash.as_str());
        let secret_matches = self.hasher.verify(secret, stored_hash);
        let mut client = found
            .filter(|_| secret_matches)
            .ok_or(TokenError::InvalidClient { used_basic })?;
        if !client.grant_types.iter().any(|g| g == CLIENT_CREDENTIALS) {
            return Err(TokenError::UnauthorizedClient(
                CLIENT_CREDENTIALS.to_owned(),
            ));
        }

        let Some(audience) = request.audience.as_deref() else {
            return Err(TokenError::AccessDenied(
                "No audience parameter was provided, and no default audience has been configured"
                    .to_owned(),
            ));
        };
        let mut api = self
            .store
            .api_by_identifier(audience)
            .await?
            .ok_or_else(|| TokenError::AccessDenied(format!("Service not found: {audience}")))?;
        let grant = self
            .store
            .grant_for(&client.client_id, audience)
            .await?
            .ok_or_else(|| {
                TokenError::AccessDenied(format!(
                    "Client is not authorized to access \"{audience}\". You need to create a \
                 \"client-grant\" associated to this API."
                ))
            })?;

        let requested = request
            .scope
            .as_deref()
            .map(split_scopes)
            .unwrap_or_default();
        let not_granted: Vec<&str> = requested
            .iter()
            .filter(|scope| !grant.scope.contains(scope))
            .map(String::as_str)
            .collect();
        if !not_granted.is_empty() {
            return Err(TokenError::AccessDenied(format!(
                "Client has not been granted scopes: {}",
                not_granted.join(", ")
            )));
        }
        let mut scopes = if requested.is_empty() {
            grant.scope.clone()
        } else {
            requested.clone()
        };
        let mut custom_claims = Map::new();

        // Hooks never run for the Management API's own tokens: a denying or broken hook must
        // not lock operators out of the API that fixes it.
        let for_management = api.identifier == self.management_audience;
        let hook = self
            .registry
            .current(ExtensibilityPoint::CredentialsExchange)
            .filter(|_| !for_management);
        if let Some(registered) = hook {
            let (hook_id, hook_name, ran, failure_policy, mut invocation) = match &*registered {
                RegisteredHook::Ready(hook) => {
                    let canary = hook
                        .canary
                        .as_ref()
                        .filter(|canary| canary.serves(&hook.id, &client.client_id));
                    let (loaded, metrics) = match canary {
                        Some(canary) => (&canary.loaded, &canary.metrics),
                        None => (&hook.loaded, &hook.metrics),
                    };
                    // What the token needs later is copied; the rest moves into the event.
                    let event = CredentialsExchangeEvent {
                        client: ClientInfo {
                            id: client.client_id.clone(),
                            name: std::mem::take(&mut client.name),
                            tenant: self.tenant.name.clone(),
                            metadata: std::mem::take(&mut client.metadata),
                        },
                        scope: (!scopes.is_empty()).then(|| scopes.clone()),
                        audience: api.identifier.clone(),
                        context: HookContext {
                            secrets: hook.secrets.clone(),
                            request: std::mem::take(&mut request.request),
                            requested_scopes: requested,
                            resource_server: ResourceServerInfo {
                                identifier: api.identifier.clone(),
                                name: std::mem::take(&mut api.name),
                            },
                            tenant: self.tenant.name.clone(),
                        },
                    };
                    // A shadow run compares with the active version only.
                    let shadow = hook
                        .shadow
                        .as_ref()
                        .filter(|shadow| canary.is_none() && shadow.sample())
                        .map(|shadow| (shadow, event.clone()));
                    let recorded = redacted(&event);
                    let invocation = self.engine.invoke_credentials_exchange(loaded, event).await;
                    if let Some((shadow, event)) = shadow {
                        // Queued for the shadow worker: it runs after this response is sent,
                        // or is dropped and counted when the queue is full.
                        shadow.offer(ShadowJob {
                            event,
                            active: Decision::of(&invocation.result),
                            request_id: request.request_id.clone(),
                            time: now,
                        });
                    }
                    let ran = RanVersion {
                        sha256: &loaded.sha256,
                        recorded,
                        metrics,
                        canary: canary.is_some(),
                        judge: hook.canary.as_deref().map(|canary| &canary.judge),
                    };
                    (
                        &hook.id,
                        &hook.name,
                        Some(ran),
                        hook.failure_policy,
                        invocation,
                    )
                }
                RegisteredHook::Unavailable(hook) => (
                    &hook.id,
                    &hook.name,
                    None,
                    hook.failure_policy,
                    Invocation {
                        result: Err(HookError::Unavailable(hook.reason.clone())),
                        log: Default::default(),
                        fuel_used: 0,
                        elapsed: std::time::Duration::ZERO,
                        reused_instance: false,
                    },
                ),
            };
            let fail_open = failure_policy == FailurePolicy::FailOpen;
            let outcome = LoggedOutcome::of(&invocation.result, fail_open);
            let metric_outcome =
                hook_outcome(invocation.result.as_ref().err().map(HookError::kind));
            let (seconds, fuel) = (invocation.elapsed.as_secs_f64(), invocation.fuel_used);
            match &ran {
                Some(ran) => {
                    ran.metrics.record(metric_outcome, seconds, fuel);
                    if invocation.reused_instance {
                        ran.metrics.reused_instance();
                    }
                }
                // An unavailable hook has no loaded version.
                None => self
                    .metrics
                    .hook(hook_id, "")
                    .record(metric_outcome, seconds, fuel),
            }
            if let Some(ran) = &ran
                && let Some(judge) = ran.judge
            {
                let failed = matches!(&invocation.result, Err(error) if !matches!(error, HookError::Denied(_)));
                if let Some(reason) = judge.record(ran.canary, failed) {
                    tracing::warn!(hook = %hook_name, version = %ran.sha256, %reason, "canary withdrawn");
                    invocation.log.notice(reason.clone());
                    self.registry.canary_withdrawn(CanaryWithdrawal {
                        hook_id: hook_id.clone(),
                        version: ran.sha256.to_owned(),
                        reason,
                    });
                }
            }
            let mut entry = HookLogEntry::new(
                hook_id,
                now,
                &request.request_id,
                &client.client_id,
                &api.identifier,
                outcome,
                &invocation,
            );
            match ran {
                Some(ran) => {
                    entry.version = ran.sha256.to_owned();
                    entry.canary = ran.canary;
                    let input = CallInput {
                        event: ran.recorded,
                        changes: invocation.result.as_ref().ok().cloned(),
                    };
                    self.hook_log.record_with_input(entry, input);
                }
                None => self.hook_log.record(entry),
            }
            match invocation.result {
                Ok(changes) => {
                    if let Some(replacement) = changes.scope {
                        scopes = match api.hook_scope_policy {
                            HookScopePolicy::Replace => replacement,
                            HookScopePolicy::IntersectWithGrant => replacement
                                .into_iter()
                                .filter(|scope| grant.scope.contains(scope))
                                .collect(),
                        };
                    }
                    custom_claims = changes.claims;
                }
                Err(HookError::Denied(denial)) => {
                    tracing::info!(
                        request_id = %request.request_id,
                        hook = %hook_name,
                        code = %denial.code,
                        "hook denied the token"
                    );
                    return Err(TokenError::HookDenied(denial));
                }
                Err(error) => {
                    tracing::warn!(
                        request_id = %request.request_id,
                        hook = %hook_name,
                        kind = error.kind(),
                        %error,
                        fail_open,
                        "hook failed"
                    );
                    if !fail_open {
                        return Err(TokenError::HookFailed);
                    }
                }
            }
        }

        if for_management {
            // What each management call re-checks: a rotation ends the tokens issued before.
            custom_claims.insert(
                MANAGEMENT_SECRET_GENERATION.into(),
                client.secret_generation.into(),
            );
        }
        let access_token = self.sign(&api, &client.client_id, &scopes, custom_claims, now)?;
        Ok(IssuedToken {
            access_token,
            expires_in: api.token_lifetime,
            scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
        })
    }

    fn sign(
        &self,
        api: &Api,
        client_id: &str,
        scopes: &[String],
        custom_claims: Map<String, Value>,
        now: u64,
    ) -> Result<String, TokenError> {
        let mut claims = Map::new();
        claims.insert("iss".into(), self.tenant.issuer.clone().into());
        claims.insert("sub".into(), format!("{client_id}@clients").into());
        claims.insert("aud".into(), api.identifier.clone().into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + api.token_lifetime).into());
        let typ = match api.token_dialect {
            TokenDialect::Auth0 => {
                claims.insert("azp".into(), client_id.into());
                claims.insert("gty".into(), "client-credentials".into());
                "JWT"
            }
            TokenDialect::Rfc9068 => {
                claims.insert("client_id".into(), client_id.into());
                claims.insert(
                    "jti".into(),
                    URL_SAFE_NO_PAD.encode(random_bytes::<16>()).into(),
                );
                "at+jwt"
            }
        };
        if !scopes.is_empty() {
            claims.insert("scope".into(), scopes.join(" ").into());
        }
        for (name, value) in custom_claims {
            // Restricted names never reach here (the hook engine drops them); standard claims
            // win regardless.
            claims.entry(name).or_insert(value);
        }
        let ring = self.keys.load();
        let secret = ring.hs256_key(api).map_err(|error| {
            tracing::error!(%error, api = %api.identifier, "the HS256 secret is unusable");
            TokenError::Internal
        })?;
        let token = ring
            .sign_jwt(
                api.signing_alg,
                secret.as_deref(),
                typ,
                &Value::Object(claims),
            )
            .map_err(|error| {
                tracing::error!(%error, api = %api.identifier, "signing failed");
                TokenError::Internal
            })?;
        self.metrics.signed(api.signing_alg.as_str());
        Ok(token)
    }
}
