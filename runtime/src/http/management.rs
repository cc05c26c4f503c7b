//! The Management API over HTTP (`/api/v2/...`, Auth0 v2 shapes): Bearer authentication with
//! hookd's own access tokens for the audience `<issuer>api/v2/`, scope checks, and the hook
//! endpoints. The operations themselves live in [`crate::manage`].

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::RequestBody;
use super::error::{Body, json_response, manage_error, management_error};
use super::routes::{AppState, now, read_body};
use crate::manage::{
    self, ApiBody, ClientBody, GrantBody, HookManager, HookPatch, NewHook, RunState, SecretsChange,
};
use crate::model::{Api, Client, Hook};
use crate::token::keys::VerifyError;

/// How often a `?follow` stream re-checks that its token still holds.
const FOLLOW_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// A `?follow` stream's state.
struct Follower {
    receiver: tokio::sync::broadcast::Receiver<crate::hooklog::HookLogEntry>,
    hook_id: String,
    caller: Caller,
    store: crate::store::Store,
    recheck: tokio::time::Interval,
}

/// Largest JSON body a management call accepts.
const MAX_JSON_BODY: usize = 1 << 20;
/// Largest module upload (JavaScript hooks are about 12 MB).
const MAX_MODULE_BODY: usize = 64 << 20;

pub use crate::manage::management_audience as audience;

/// The hook as the Management API shows it, with whether it is what its trigger runs.
fn hook_json(hooks: &HookManager, hook: &Hook) -> Value {
    let state = hooks.run_state(hook);
    let mut shown = json!({
        "id": hook.id,
        "name": hook.name,
        "triggerId": hook.trigger.trigger_id(),
        "enabled": hook.enabled,
        "dependencies": {},
        "active_version": hook.active_version,
        "versions": hook.versions,
        "limits": hook.limits,
        "failure_policy": hook.failure_policy,
        "reuse_instances": hook.reuse_instances,
        "state": state.as_str(),
    });
    if let RunState::Unavailable(reason) = &state {
        shown["state_reason"] = reason.as_str().into();
    }
    shown
}

/// Who a management call comes from: the client of a verified Management API token.
#[derive(Debug, Clone)]
struct Caller {
    client_id: String,
    /// The scopes the token was issued with.
    token_scopes: Vec<String>,
    /// The client's secret generation when the token was issued.
    secret_generation: u64,
    /// When the token expires.
    exp: u64,
    /// The Management API's audience.
    audience: String,
    /// The scopes it held when the call was authorized ([`Caller::current_scopes`]).
    held: Vec<String>,
}

impl Caller {
    /// The scopes the caller holds right now: the token's, as long as its client still
    /// exists with the same secret generation, limited to what its grant on the Management
    /// API still gives, and only until the token expires. Read from the store's in-memory
    /// records, so every management call re-checks at little cost.
    fn current_scopes(
        &self,
        store: &crate::store::Store,
        now: u64,
    ) -> Result<Vec<String>, Response<Body>> {
        let revoked = || management_error(StatusCode::UNAUTHORIZED, "Invalid token", None);
        if now >= self.exp {
            return Err(management_error(
                StatusCode::UNAUTHORIZED,
                "Expired token received for JSON Web Token validation",
                None,
            ));
        }
        let client = store
            .client(&self.client_id)
            .map_err(|e| manage_error(&e.into()))?
            .filter(|client| client.secret_generation == self.secret_generation)
            .ok_or_else(revoked)?;
        let grant = store
            .grant_for(&client.client_id, &self.audience)
            .map_err(|e| manage_error(&e.into()))?
            .ok_or_else(revoked)?;
        Ok(self
            .token_scopes
            .iter()
            .filter(|scope| grant.scope.contains(scope))
            .cloned()
            .collect())
    }

    /// Whether the caller holds every management scope: what changing the Management API
    /// itself, its grants or the applications granted it takes, so no narrower scope can
    /// be turned into a wider one.
    fn holds_every_scope(&self) -> Result<(), Response<Body>> {
        match manage::MANAGEMENT_SCOPES
            .iter()
            .find(|scope| !self.held.iter().any(|held| held == *scope))
        {
            None => Ok(()),
            Some(_) => Err(management_error(
                StatusCode::FORBIDDEN,
                "Changing the Management API, its grants or the applications granted it \
                 requires every management scope",
                Some("insufficient_scope"),
            )),
        }
    }
}

fn management_audience(state: &AppState) -> String {
    audience(&state.tokens.tenant().issuer)
}

/// Checks the Bearer token, that what it was issued for still holds (see
/// [`Caller::current_scopes`]) and that it carries `scope`.
fn authorize<B>(
    state: &AppState,
    request: &Request<B>,
    scope: &str,
) -> Result<Caller, Response<Body>> {
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim())
        })
        .ok_or_else(|| {
            management_error(StatusCode::UNAUTHORIZED, "Missing authentication", None)
        })?;
    let now = now();
    let claims = state
        .tokens
        .verify_access_token(token, &management_audience(state), now)
        .map_err(|error| {
            let message = match error {
                VerifyError::Expired => "Expired token received for JSON Web Token validation",
                VerifyError::Invalid => "Invalid token",
            };
            management_error(StatusCode::UNAUTHORIZED, message, None)
        })?;
    let invalid = || management_error(StatusCode::UNAUTHORIZED, "Invalid token", None);
    let mut caller = Caller {
        client_id: claims
            .get("sub")
            .and_then(Value::as_str)
            .and_then(|sub| sub.strip_suffix("@clients"))
            .ok_or_else(invalid)?
            .to_owned(),
        token_scopes: claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split(' ')
            .filter(|scope| !scope.is_empty())
            .map(str::to_owned)
            .collect(),
        secret_generation: claims
            .get(crate::token::MANAGEMENT_SECRET_GENERATION)
            .and_then(Value::as_u64)
            .ok_or_else(invalid)?,
        exp: claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(invalid)?,
        audience: management_audience(state),
        held: Vec::new(),
    };
    caller.held = caller.current_scopes(&state.store, now)?;
    if caller.held.iter().any(|held| held == scope) {
        Ok(caller)
    } else {
        Err(management_error(
            StatusCode::FORBIDDEN,
            &format!("Insufficient scope, expected any of: {scope}"),
            Some("insufficient_scope"),
        ))
    }
}

/// Whether `client_id` holds a grant on the Management API.
fn is_management_client(state: &AppState, client_id: &str) -> Result<bool, Response<Body>> {
    Ok(state
        .store
        .grant_for(client_id, &management_audience(state))
        .map_err(|e| manage_error(&e.into()))?
        .is_some())
}

/// Reads and parses a JSON body into `T`, rejecting unknown fields with a message naming them.
async fn json_body<T, B: RequestBody>(
    state: &AppState,
    request: Request<B>,
) -> Result<T, Response<Body>>
where
    T: for<'de> Deserialize<'de>,
{
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !is_json {
        return Err(management_error(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/json",
            Some("invalid_body"),
        ));
    }
    let bytes = read_body(request.into_body(), MAX_JSON_BODY, &state.limits).await?;
    serde_json::from_slice(&bytes).map_err(|error| {
        management_error(
            StatusCode::BAD_REQUEST,
            &format!("Payload validation error: {error}"),
            Some("invalid_body"),
        )
    })
}

/// Query parameters as pairs.
fn query<B>(request: &Request<B>) -> Vec<(String, String)> {
    request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Auth0's list paging: `page` (from 0), `per_page` (1 to 100, default 50) and
/// `include_totals`, which wraps the page as `{start, limit, total, <key>: [...]}`.
fn paginate<B>(request: &Request<B>, items: Vec<Value>, key: &str) -> Reply {
    let params = query(request);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str, default: usize| -> Result<usize, Response<Body>> {
        match param(name) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                management_error(
                    StatusCode::BAD_REQUEST,
                    &format!("{name}: must be a non-negative integer"),
                    Some("invalid_query_string"),
                )
            }),
        }
    };
    let page = number("page", 0)?;
    let per_page = number("per_page", 50)?;
    if !(1..=100).contains(&per_page) {
        return Err(management_error(
            StatusCode::BAD_REQUEST,
            "per_page: must be between 1 and 100",
            Some("invalid_query_string"),
        ));
    }
    let total = items.len();
    let start = page.saturating_mul(per_page);
    let slice: Vec<Value> = items.into_iter().skip(start).take(per_page).collect();
    let body = if param("include_totals") == Some("true") {
        json!({"start": start, "limit": per_page, "total": total, key: slice})
    } else {
        Value::Array(slice)
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn not_found() -> Response<Body> {
    management_error(StatusCode::NOT_FOUND, "Not found", None)
}

/// 405 with the `Allow` header RFC 9110 §15.5.6 asks for.
fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = management_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", None);
    response
        .headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    response
}

/// The methods a Management API path answers to; `None` for a path that does not exist.
fn allowed_methods(segments: &[&str]) -> Option<&'static str> {
    Some(match segments {
        ["hooks" | "clients" | "resource-servers" | "client-grants"] => "GET, POST",
        ["hooks" | "clients" | "resource-servers", _] => "GET, PATCH, DELETE",
        ["client-grants", _] => "PATCH, DELETE",
        ["clients" | "resource-servers", _, "rotate-secret"]
        | ["hooks", _, "rollback"]
        | ["keys", "signing", "rotate"] => "POST",
        ["hooks", _, "module"] => "PUT",
        ["hooks", _, "versions" | "logs"] | ["keys", "signing"] => "GET",
        ["hooks", _, "secrets"] => "GET, POST, PATCH, DELETE",
        _ => return None,
    })
}

/// Routes `/api/v2/...`.
pub async fn handle<B: RequestBody>(
    state: &AppState,
    path: &str,
    request: Request<B>,
) -> Response<Body> {
    let segments: Vec<&str> = path
        .trim_start_matches("/api/v2/")
        .trim_end_matches('/')
        .split('/')
        .collect();
    let method = request.method().clone();
    let result = match (segments.as_slice(), &method) {
        (["hooks"], &Method::GET) => list_hooks(state, request),
        (["hooks"], &Method::POST) => create_hook(state, request).await,
        (["hooks", id], &Method::GET) => get_hook(state, request, id),
        (["hooks", id], &Method::PATCH) => patch_hook(state, request, id).await,
        (["hooks", id], &Method::DELETE) => delete_hook(state, request, id).await,
        (["hooks", id, "module"], &Method::PUT) => upload_module(state, request, id).await,
        (["hooks", id, "versions"], &Method::GET) => versions(state, request, id),
        (["hooks", id, "rollback"], &Method::POST) => rollback(state, request, id).await,
        (["hooks", id, "logs"], &Method::GET) => logs(state, request, id),
        (["hooks", id, "secrets"], &Method::GET) => list_secrets(state, request, id),
        (["hooks", id, "secrets"], &Method::POST) => {
            set_secrets(state, request, id, SecretsChange::Add).await
        }
        (["hooks", id, "secrets"], &Method::PATCH) => {
            set_secrets(state, request, id, SecretsChange::Update).await
        }
        (["hooks", id, "secrets"], &Method::DELETE) => delete_secrets(state, request, id).await,
        (["clients"], &Method::GET) => list_clients(state, request),
        (["clients"], &Method::POST) => create_client(state, request).await,
        (["clients", id], &Method::GET) => get_client(state, request, id),
        (["clients", id], &Method::PATCH) => patch_client(state, request, id).await,
        (["clients", id], &Method::DELETE) => delete_client(state, request, id),
        (["clients", id, "rotate-secret"], &Method::POST) => rotate_secret(state, request, id),
        (["resource-servers"], &Method::GET) => list_apis(state, request),
        (["resource-servers"], &Method::POST) => create_api(state, request).await,
        (["resource-servers", id], &Method::GET) => get_api(state, request, id),
        (["resource-servers", id], &Method::PATCH) => patch_api(state, request, id).await,
        (["resource-servers", id], &Method::DELETE) => delete_api(state, request, id),
        (["resource-servers", id, "rotate-secret"], &Method::POST) => {
            rotate_api_secret(state, request, id)
        }
        (["client-grants"], &Method::GET) => list_grants(state, request),
        (["client-grants"], &Method::POST) => create_grant(state, request).await,
        (["client-grants", id], &Method::PATCH) => patch_grant(state, request, id).await,
        (["client-grants", id], &Method::DELETE) => delete_grant(state, request, id),
        (["keys", "signing"], &Method::GET) => signing_keys(state, request),
        (["keys", "signing", "rotate"], &Method::POST) => rotate_keys(state, request).await,
        (segments, _) => match allowed_methods(segments) {
            Some(allow) => Err(method_not_allowed(allow)),
            None => Err(not_found()),
        },
    };
    result.unwrap_or_else(|response| response)
}

type Reply = Result<Response<Body>, Response<Body>>;

fn list_hooks<B>(state: &AppState, request: Request<B>) -> Reply {
    authorize(state, &request, "read:hooks")?;
    let params = query(&request);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let enabled = match param("enabled") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(management_error(
                StatusCode::BAD_REQUEST,
                "enabled: must be true or false",
                Some("invalid_query_string"),
            ));
        }
    };
    let hooks = state
        .hooks
        .list(param("triggerId"), enabled)
        .map_err(|e| manage_error(&e))?;
    paginate(
        &request,
        hooks
            .iter()
            .map(|hook| hook_json(&state.hooks, hook))
            .collect(),
        "hooks",
    )
}

async fn create_hook<B: RequestBody>(state: &AppState, request: Request<B>) -> Reply {
    authorize(state, &request, "create:hooks")?;
    let new: NewHook = json_body(state, request).await?;
    let hook = state
        .hooks
        .create(new)
        .await
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(
        StatusCode::CREATED,
        &hook_json(&state.hooks, &hook),
    ))
}

fn get_hook<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "read:hooks")?;
    let hook = state.hooks.get(id).map_err(|e| manage_error(&e))?;
    Ok(json_response(
        StatusCode::OK,
        &hook_json(&state.hooks, &hook),
    ))
}

async fn patch_hook<B: RequestBody>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "update:hooks")?;
    let patch: HookPatch = json_body(state, request).await?;
    let hook = state
        .hooks
        .update(id, patch)
        .await
        .map_err(|e| manage_error(&e))?;
    // Auth0 answers a hook PATCH with 201.
    Ok(json_response(
        StatusCode::CREATED,
        &hook_json(&state.hooks, &hook),
    ))
}

async fn delete_hook<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "delete:hooks")?;
    state.hooks.delete(id).await.map_err(|e| manage_error(&e))?;
    Ok(no_content())
}

async fn upload_module<B: RequestBody>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "update:hooks")?;
    let is_wasm = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim(), "application/wasm" | "application/octet-stream"));
    if !is_wasm {
        return Err(management_error(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/wasm",
            Some("invalid_body"),
        ));
    }
    let bytes = read_body(request.into_body(), MAX_MODULE_BODY, &state.limits).await?;
    let (hook, version) = state
        .hooks
        .upload(id, bytes.to_vec())
        .await
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"version": version, "hook": hook_json(&state.hooks, &hook)}),
    ))
}

fn versions<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "read:hooks")?;
    let hook = state.hooks.get(id).map_err(|e| manage_error(&e))?;
    let versions: Vec<Value> = hook
        .versions
        .iter()
        .map(|version| {
            json!({
                "sha256": version.sha256,
                "size": version.size,
                "uploaded_at": version.uploaded_at,
                "active": hook.active_version.as_deref() == Some(version.sha256.as_str()),
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(versions)))
}

/// `POST /api/v2/hooks/{id}/rollback` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: String,
}

async fn rollback<B: RequestBody>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "update:hooks")?;
    let body: RollbackBody = json_body(state, request).await?;
    let hook = state
        .hooks
        .rollback(id, &body.version)
        .await
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(
        StatusCode::OK,
        &hook_json(&state.hooks, &hook),
    ))
}

fn logs<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    let caller = authorize(state, &request, "read:logs")?;
    state.hooks.get(id).map_err(|e| manage_error(&e))?;
    if query(&request).iter().any(|(name, _)| name == "follow") {
        return Ok(follow_logs(state, id, caller));
    }
    let entries = state.hook_log.recent(id);
    Ok(json_response(StatusCode::OK, &json!(entries)))
}

/// `?follow`: one JSON object per line (NDJSON) for every new invocation of the hook, for as
/// long as the client keeps the connection open and its token holds: the stream ends when the
/// token expires, its client, grant or `read:logs` scope goes, or its secret is rotated
/// (checked every [`FOLLOW_RECHECK`]). A follower too slow to keep up is told how many
/// entries it missed instead of stalling the token endpoint.
fn follow_logs(state: &AppState, id: &str, caller: Caller) -> Response<Body> {
    use http_body_util::BodyExt as _;
    use tokio::sync::broadcast::error::RecvError;
    let follower = Follower {
        receiver: state.hook_log.follow(),
        hook_id: id.to_owned(),
        caller,
        store: state.store.clone(),
        recheck: tokio::time::interval(FOLLOW_RECHECK),
    };
    let lines = futures_util::stream::unfold(follower, |mut follower| async move {
        loop {
            let received = tokio::select! {
                received = follower.receiver.recv() => received,
                _ = follower.recheck.tick() => {
                    let still_holds = follower
                        .caller
                        .current_scopes(&follower.store, now())
                        .is_ok_and(|scopes| scopes.iter().any(|scope| scope == "read:logs"));
                    if !still_holds {
                        return None;
                    }
                    continue;
                }
            };
            let line = match received {
                Ok(entry) if entry.hook_id == follower.hook_id => json!(entry),
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => json!({"missed": missed}),
                Err(RecvError::Closed) => return None,
            };
            let frame = hyper::body::Frame::data(Bytes::from(format!("{line}\n")));
            return Some((Ok::<_, std::convert::Infallible>(frame), follower));
        }
    });
    let mut response = Response::new(http_body_util::StreamBody::new(lines).boxed());
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

fn signing_keys<B>(state: &AppState, request: Request<B>) -> Reply {
    authorize(state, &request, "read:signing_keys")?;
    Ok(json_response(
        StatusCode::OK,
        &Value::Array(state.tokens.signing_keys()),
    ))
}

/// Rotates every algorithm's keys. Tokens signed before keep verifying (their key stays
/// published as `previous`); new tokens use the promoted keys at once.
async fn rotate_keys<B>(state: &AppState, request: Request<B>) -> Reply {
    authorize(state, &request, "update:signing_keys")?;
    // RSA key generation is CPU-bound: off the async threads.
    let rotator = state.tokens.key_rotator();
    let rotated = tokio::task::spawn_blocking(move || rotator.rotate(now())).await;
    match rotated {
        Ok(Ok(keys)) => Ok(json_response(StatusCode::CREATED, &Value::Array(keys))),
        Ok(Err(error)) => Err(super::error::token_error(&error)),
        Err(_) => Err(super::error::token_error(
            &crate::token::TokenError::Internal,
        )),
    }
}

fn no_content() -> Response<Body> {
    let mut response = json_response(StatusCode::NO_CONTENT, &Value::Null);
    *response.body_mut() = super::error::full(Bytes::new());
    response
}

/// An application as the Management API shows it; never its secret (or the secret's hash).
fn client_json(client: &Client) -> Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "app_type": client.app_type,
        "client_metadata": client.metadata,
        "grant_types": client.grant_types,
        "token_endpoint_auth_method": "client_secret_post",
    })
}

/// The same, plus the secret: only in the answers that create or rotate it.
fn client_with_secret(client: &Client, secret: &str) -> Value {
    let mut value = client_json(client);
    if let Some(object) = value.as_object_mut() {
        object.insert("client_secret".into(), secret.into());
    }
    value
}

/// An API as the Management API shows it; never its HS256 secret.
fn api_json(api: &Api) -> Value {
    json!({
        "id": api.id,
        "identifier": api.identifier,
        "name": api.name,
        "scopes": api.scopes,
        "token_lifetime": api.token_lifetime,
        "signing_alg": api.signing_alg,
        "token_dialect": api.token_dialect,
        "hook_scope_policy": api.hook_scope_policy,
    })
}

/// The same, plus the HS256 secret: only in the answers that create or rotate it.
fn api_with_secret(api: &Api, secret: Option<&str>) -> Value {
    let mut value = api_json(api);
    if let (Some(secret), Some(object)) = (secret, value.as_object_mut()) {
        object.insert("signing_secret".into(), secret.into());
    }
    value
}

fn list_clients<B>(state: &AppState, request: Request<B>) -> Reply {
    authorize(state, &request, "read:clients")?;
    let clients = state.store.clients().map_err(|e| manage_error(&e.into()))?;
    paginate(
        &request,
        clients.iter().map(client_json).collect(),
        "clients",
    )
}

async fn create_client<B: RequestBody>(state: &AppState, request: Request<B>) -> Reply {
    authorize(state, &request, "create:clients")?;
    let body: ClientBody = json_body(state, request).await?;
    let (client, secret) = manage::create_client_from(&state.store, &state.hasher, body)
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(
        StatusCode::CREATED,
        &client_with_secret(&client, &secret),
    ))
}

fn get_client<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "read:clients")?;
    match state.store.client(id) {
        Ok(Some(client)) => Ok(json_response(StatusCode::OK, &client_json(&client))),
        Ok(None) => Err(not_found()),
        Err(error) => Err(manage_error(&error.into())),
    }
}

async fn patch_client<B: RequestBody>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    let caller = authorize(state, &request, "update:clients")?;
    if is_management_client(state, id)? {
        caller.holds_every_scope()?;
    }
    let body: ClientBody = json_body(state, request).await?;
    let client = manage::update_client(&state.store, id, body).map_err(|e| manage_error(&e))?;
    Ok(json_response(StatusCode::OK, &client_json(&client)))
}

fn delete_client<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    let caller = authorize(state, &request, "delete:clients")?;
    if is_management_client(state, id)? {
        caller.holds_every_scope()?;
    }
    state
        .store
        .delete_client(id)
        .map_err(|e| manage_error(&e.into()))?;
    Ok(no_content())
}

fn rotate_secret<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    let caller = authorize(state, &request, "update:clients")?;
    if is_management_client(state, id)? {
        caller.holds_every_scope()?;
    }
    let (client, secret) = manage::rotate_client_secret(&state.store, &state.hasher, id)
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(
        StatusCode::OK,
        &client_with_secret(&client, &secret),
    ))
}

fn list_apis<B>(state: &AppState, request: Request<B>) -> Reply {
    authorize(state, &request, "read:resource_servers")?;
    let apis = state.store.apis().map_err(|e| manage_error(&e.into()))?;
    paginate(
        &request,
        apis.iter().map(api_json).collect(),
        "resource_servers",
    )
}

async fn create_api<B: RequestBody>(state: &AppState, request: Request<B>) -> Reply {
    authorize(state, &request, "create:resource_servers")?;
    let body: ApiBody = json_body(state, request).await?;
    let (api, secret) = manage::create_api_from(&state.store, &state.secret_box, body)
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(
        StatusCode::CREATED,
        &api_with_secret(&api, secret.as_deref()),
    ))
}

fn get_api<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "read:resource_servers")?;
    match state.store.api(id) {
        Ok(Some(api)) => Ok(json_response(StatusCode::OK, &api_json(&api))),
        Ok(None) => Err(not_found()),
        Err(error) => Err(manage_error(&error.into())),
    }
}

async fn patch_api<B: RequestBody>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    let caller = authorize(state, &request, "update:resource_servers")?;
    let body: ApiBody = json_body(state, request).await?;
    if is_management_api(state, id)? {
        caller.holds_every_scope()?;
        if body.signing_alg == Some(crate::model::SigningAlg::HS256) {
            // An HS256 secret is one more thing to leak, and clients would need it to verify.
            return Err(management_error(
                StatusCode::BAD_REQUEST,
                "signing_alg: the Management API is signed with RS256, PS256 or ES256",
                Some("operation_not_supported"),
            ));
        }
    }
    let (api, secret) = manage::update_api(&state.store, &state.secret_box, id, body)
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(
        StatusCode::OK,
        &api_with_secret(&api, secret.as_deref()),
    ))
}

/// `POST /api/v2/resource-servers/{id}/rotate-secret`: a new HS256 signing secret, shown in
/// this answer only.
fn rotate_api_secret<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "update:resource_servers")?;
    let (api, secret) = manage::rotate_api_secret(&state.store, &state.secret_box, id)
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(
        StatusCode::OK,
        &api_with_secret(&api, Some(&secret)),
    ))
}

/// Whether API `id` is the Management API itself.
fn is_management_api(state: &AppState, id: &str) -> Result<bool, Response<Body>> {
    Ok(state
        .store
        .api(id)
        .map_err(|e| manage_error(&e.into()))?
        .is_some_and(|api| api.identifier == management_audience(state)))
}

fn delete_api<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "delete:resource_servers")?;
    if is_management_api(state, id)? {
        return Err(management_error(
            StatusCode::BAD_REQUEST,
            "The Management API cannot be deleted",
            Some("operation_not_supported"),
        ));
    }
    state
        .store
        .delete_api(id)
        .map_err(|e| manage_error(&e.into()))?;
    Ok(no_content())
}

fn list_grants<B>(state: &AppState, request: Request<B>) -> Reply {
    authorize(state, &request, "read:client_grants")?;
    let params = query(&request);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let (audience, client_id) = (param("audience"), param("client_id"));
    let grants = state.store.grants().map_err(|e| manage_error(&e.into()))?;
    let grants: Vec<Value> = grants
        .into_iter()
        .filter(|g| audience.as_ref().is_none_or(|a| g.audience == *a))
        .filter(|g| client_id.as_ref().is_none_or(|c| g.client_id == *c))
        .map(|g| json!(g))
        .collect();
    paginate(&request, grants, "client_grants")
}

async fn create_grant<B: RequestBody>(state: &AppState, request: Request<B>) -> Reply {
    let caller = authorize(state, &request, "create:client_grants")?;
    let body: GrantBody = json_body(state, request).await?;
    if body.audience.as_deref() == Some(management_audience(state).as_str()) {
        caller.holds_every_scope()?;
    }
    let grant = manage::create_grant_from(&state.store, body).map_err(|e| manage_error(&e))?;
    Ok(json_response(StatusCode::CREATED, &json!(grant)))
}

/// Whether grant `id` is a grant on the Management API.
fn is_management_grant(state: &AppState, id: &str) -> Result<bool, Response<Body>> {
    Ok(state
        .store
        .grant(id)
        .map_err(|e| manage_error(&e.into()))?
        .is_some_and(|grant| grant.audience == management_audience(state)))
}

async fn patch_grant<B: RequestBody>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    let caller = authorize(state, &request, "update:client_grants")?;
    if is_management_grant(state, id)? {
        caller.holds_every_scope()?;
    }
    let body: GrantBody = json_body(state, request).await?;
    let grant = manage::update_grant(&state.store, id, body).map_err(|e| manage_error(&e))?;
    Ok(json_response(StatusCode::OK, &json!(grant)))
}

fn delete_grant<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    let caller = authorize(state, &request, "delete:client_grants")?;
    if is_management_grant(state, id)? {
        caller.holds_every_scope()?;
    }
    state
        .store
        .delete_grant(id)
        .map_err(|e| manage_error(&e.into()))?;
    Ok(no_content())
}

/// What the Management API shows instead of a secret's value (as Auth0 does).
const REDACTED: &str = "_VALUE_NOT_SHOWN_";

fn redacted(names: &[String]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|name| (name.clone(), Value::from(REDACTED)))
            .collect(),
    )
}

fn list_secrets<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "read:hooks")?;
    let names = state.hooks.secret_names(id).map_err(|e| manage_error(&e))?;
    Ok(json_response(StatusCode::OK, &redacted(&names)))
}

async fn set_secrets<B: RequestBody>(
    state: &AppState,
    request: Request<B>,
    id: &str,
    change: SecretsChange,
) -> Reply {
    authorize(state, &request, "update:hooks")?;
    let values: std::collections::BTreeMap<String, String> = json_body(state, request).await?;
    let names = state
        .hooks
        .set_secrets(id, values, change)
        .await
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(StatusCode::CREATED, &redacted(&names)))
}

async fn delete_secrets<B: RequestBody>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "delete:hooks")?;
    let names: Vec<String> = json_body(state, request).await?;
    state
        .hooks
        .delete_secrets(id, &names)
        .await
        .map_err(|e| manage_error(&e))?;
    Ok(no_content())
}
