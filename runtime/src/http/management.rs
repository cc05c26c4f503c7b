//! The Management API over HTTP (`/api/v2/...`, Auth0 v2 shapes): Bearer authentication with
//! hookd's own access tokens for the audience `<issuer>api/v2/`, scope checks, and the hook
//! endpoints. The operations themselves live in [`crate::manage`].

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Body, json_response, manage_error, management_error};
use super::routes::{AppState, now, read_body};
use crate::manage::{HookPatch, NewHook};
use crate::model::Hook;
use crate::token::keys::VerifyError;

/// Largest JSON body a management call accepts.
const MAX_JSON_BODY: usize = 1 << 20;
/// Largest module upload (JavaScript hooks are about 12 MB).
const MAX_MODULE_BODY: usize = 64 << 20;

/// The audience of the Management API for an issuer.
pub fn audience(issuer: &str) -> String {
    format!("{issuer}api/v2/")
}

/// The hook as the Management API shows it.
fn hook_json(hook: &Hook) -> Value {
    json!({
        "id": hook.id,
        "name": hook.name,
        "triggerId": hook.trigger.trigger_id(),
        "enabled": hook.enabled,
        "dependencies": {},
        "active_version": hook.active_version,
        "versions": hook.versions,
        "limits": hook.limits,
        "failure_policy": hook.failure_policy,
    })
}

/// Checks the Bearer token and that it carries `scope`.
fn authorize<B>(state: &AppState, request: &Request<B>, scope: &str) -> Result<(), Response<Body>> {
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
    let issuer = &state.tokens.tenant().issuer;
    let claims = state
        .tokens
        .verify_access_token(token, &audience(issuer), now())
        .map_err(|error| {
            let message = match error {
                VerifyError::Expired => "Expired token received for JSON Web Token validation",
                VerifyError::Invalid => "Invalid token",
            };
            management_error(StatusCode::UNAUTHORIZED, message, None)
        })?;
    let granted = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if granted.split(' ').any(|s| s == scope) {
        Ok(())
    } else {
        Err(management_error(
            StatusCode::FORBIDDEN,
            &format!("Insufficient scope, expected any of: {scope}"),
            Some("insufficient_scope"),
        ))
    }
}

/// Reads and parses a JSON body into `T`, rejecting unknown fields with a message naming them.
async fn json_body<T, B>(state: &AppState, request: Request<B>) -> Result<T, Response<Body>>
where
    T: for<'de> Deserialize<'de>,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
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

fn not_found() -> Response<Body> {
    management_error(StatusCode::NOT_FOUND, "Not found", None)
}

fn method_not_allowed() -> Response<Body> {
    management_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", None)
}

/// Routes `/api/v2/...`.
pub async fn handle<B>(state: &AppState, path: &str, request: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
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
        (["keys", "signing"], &Method::GET) => signing_keys(state, request),
        (["keys", "signing", "rotate"], &Method::POST) => rotate_keys(state, request).await,
        (["keys", "signing"] | ["keys", "signing", "rotate"], _) => Err(method_not_allowed()),
        (
            ["hooks"] | ["hooks", _] | ["hooks", _, "module" | "versions" | "rollback" | "logs"],
            _,
        ) => Err(method_not_allowed()),
        _ => Err(not_found()),
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
    Ok(json_response(
        StatusCode::OK,
        &Value::Array(hooks.iter().map(hook_json).collect()),
    ))
}

async fn create_hook<B>(state: &AppState, request: Request<B>) -> Reply
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    authorize(state, &request, "create:hooks")?;
    let new: NewHook = json_body(state, request).await?;
    let hook = state
        .hooks
        .create(new)
        .await
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(StatusCode::CREATED, &hook_json(&hook)))
}

fn get_hook<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "read:hooks")?;
    let hook = state.hooks.get(id).map_err(|e| manage_error(&e))?;
    Ok(json_response(StatusCode::OK, &hook_json(&hook)))
}

async fn patch_hook<B>(state: &AppState, request: Request<B>, id: &str) -> Reply
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    authorize(state, &request, "update:hooks")?;
    let patch: HookPatch = json_body(state, request).await?;
    let hook = state
        .hooks
        .update(id, patch)
        .await
        .map_err(|e| manage_error(&e))?;
    // Auth0 answers a hook PATCH with 201.
    Ok(json_response(StatusCode::CREATED, &hook_json(&hook)))
}

async fn delete_hook<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "delete:hooks")?;
    state.hooks.delete(id).await.map_err(|e| manage_error(&e))?;
    let mut response = json_response(StatusCode::NO_CONTENT, &Value::Null);
    *response.body_mut() = http_body_util::Full::new(Bytes::new());
    Ok(response)
}

async fn upload_module<B>(state: &AppState, request: Request<B>, id: &str) -> Reply
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
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
        &json!({"version": version, "hook": hook_json(&hook)}),
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

async fn rollback<B>(state: &AppState, request: Request<B>, id: &str) -> Reply
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    authorize(state, &request, "update:hooks")?;
    let body: RollbackBody = json_body(state, request).await?;
    let hook = state
        .hooks
        .rollback(id, &body.version)
        .await
        .map_err(|e| manage_error(&e))?;
    Ok(json_response(StatusCode::OK, &hook_json(&hook)))
}

fn logs<B>(state: &AppState, request: Request<B>, id: &str) -> Reply {
    authorize(state, &request, "read:logs")?;
    state.hooks.get(id).map_err(|e| manage_error(&e))?;
    let entries = state.hook_log.recent(id);
    Ok(json_response(StatusCode::OK, &json!(entries)))
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
