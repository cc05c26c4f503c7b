//! The Management API over HTTP (`/api/v2/...`, Auth0 v2 shapes): one route table (path,
//! methods, the scope each needs), Bearer tokens handed to [`crate::management`], JSON bodies
//! parsed into [`crate::proto`] types, answers serialized from them, and Auth0's list paging.
//! Every rule lives in the management service; this module only translates.

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::RequestBody;
use super::error::{Body, json_response, management_error, management_failure};
use super::routes::{AppState, now, read_body};
use crate::management::{Caller, Management, ManagementError, SecretsChange};
use crate::proto::{
    ApiBody, ClientBody, FollowLine, GrantBody, HookPatch, NewHook, ReplayBody, RollbackBody,
    SecretNames, SecretValues, Totals,
};

/// The response header naming the revision a write produced (with a shared database).
pub const REVISION_HEADER: &str = "hookd-revision";
/// How often a `?follow` stream re-checks that its token still holds.
const FOLLOW_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// Largest JSON body a management call accepts.
const MAX_JSON_BODY: usize = 1 << 20;
/// Largest module upload (JavaScript hooks are about 12 MB).
const MAX_MODULE_BODY: usize = 64 << 20;

/// One Management API operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    ListHooks,
    CreateHook,
    GetHook,
    UpdateHook,
    DeleteHook,
    UploadModule,
    HookVersions,
    RollbackHook,
    PromoteCanary,
    RecordedEvents,
    Replay,
    HookLogs,
    ListSecrets,
    AddSecrets,
    UpdateSecrets,
    DeleteSecrets,
    ListClients,
    CreateClient,
    GetClient,
    UpdateClient,
    DeleteClient,
    RotateClientSecret,
    ListApis,
    CreateApi,
    GetApi,
    UpdateApi,
    DeleteApi,
    RotateApiSecret,
    ListGrants,
    CreateGrant,
    UpdateGrant,
    DeleteGrant,
    SigningKeys,
    RotateSigningKeys,
    Nodes,
}

impl Op {
    /// The operation's name, for metrics.
    fn name(self) -> &'static str {
        match self {
            Op::ListHooks => "list_hooks",
            Op::CreateHook => "create_hook",
            Op::GetHook => "get_hook",
            Op::UpdateHook => "update_hook",
            Op::DeleteHook => "delete_hook",
            Op::UploadModule => "upload_module",
            Op::HookVersions => "hook_versions",
            Op::RollbackHook => "rollback_hook",
            Op::PromoteCanary => "promote_canary",
            Op::RecordedEvents => "recorded_events",
            Op::Replay => "replay",
            Op::HookLogs => "hook_logs",
            Op::ListSecrets => "list_secrets",
            Op::AddSecrets => "add_secrets",
            Op::UpdateSecrets => "update_secrets",
            Op::DeleteSecrets => "delete_secrets",
            Op::ListClients => "list_clients",
            Op::CreateClient => "create_client",
            Op::GetClient => "get_client",
            Op::UpdateClient => "update_client",
            Op::DeleteClient => "delete_client",
            Op::RotateClientSecret => "rotate_client_secret",
            Op::ListApis => "list_apis",
            Op::CreateApi => "create_api",
            Op::GetApi => "get_api",
            Op::UpdateApi => "update_api",
            Op::DeleteApi => "delete_api",
            Op::RotateApiSecret => "rotate_api_secret",
            Op::ListGrants => "list_grants",
            Op::CreateGrant => "create_grant",
            Op::UpdateGrant => "update_grant",
            Op::DeleteGrant => "delete_grant",
            Op::SigningKeys => "signing_keys",
            Op::RotateSigningKeys => "rotate_signing_keys",
            Op::Nodes => "nodes",
        }
    }
}

/// A path's operations by method, and the scope each needs (as Auth0's API reference lists
/// them per endpoint).
type Methods = &'static [(Method, Op, &'static str)];

/// The route table: every Management API path under `/api/v2/`.
const ROUTES: &[(&str, Methods)] = &[
    (
        "hooks",
        &[
            (Method::GET, Op::ListHooks, "read:hooks"),
            (Method::POST, Op::CreateHook, "create:hooks"),
        ],
    ),
    (
        "hooks/{id}",
        &[
            (Method::GET, Op::GetHook, "read:hooks"),
            (Method::PATCH, Op::UpdateHook, "update:hooks"),
            (Method::DELETE, Op::DeleteHook, "delete:hooks"),
        ],
    ),
    (
        "hooks/{id}/module",
        &[(Method::PUT, Op::UploadModule, "update:hooks")],
    ),
    (
        "hooks/{id}/versions",
        &[(Method::GET, Op::HookVersions, "read:hooks")],
    ),
    (
        "hooks/{id}/rollback",
        &[(Method::POST, Op::RollbackHook, "update:hooks")],
    ),
    (
        "hooks/{id}/canary/promote",
        &[(Method::POST, Op::PromoteCanary, "update:hooks")],
    ),
    (
        "hooks/{id}/events",
        &[(Method::GET, Op::RecordedEvents, "read:logs")],
    ),
    (
        "hooks/{id}/replay",
        &[(Method::POST, Op::Replay, "read:logs")],
    ),
    (
        "hooks/{id}/logs",
        &[(Method::GET, Op::HookLogs, "read:logs")],
    ),
    (
        "hooks/{id}/secrets",
        &[
            (Method::GET, Op::ListSecrets, "read:hooks"),
            (Method::POST, Op::AddSecrets, "update:hooks"),
            (Method::PATCH, Op::UpdateSecrets, "update:hooks"),
            (Method::DELETE, Op::DeleteSecrets, "delete:hooks"),
        ],
    ),
    (
        "clients",
        &[
            (Method::GET, Op::ListClients, "read:clients"),
            (Method::POST, Op::CreateClient, "create:clients"),
        ],
    ),
    (
        "clients/{id}",
        &[
            (Method::GET, Op::GetClient, "read:clients"),
            (Method::PATCH, Op::UpdateClient, "update:clients"),
            (Method::DELETE, Op::DeleteClient, "delete:clients"),
        ],
    ),
    (
        "clients/{id}/rotate-secret",
        &[(Method::POST, Op::RotateClientSecret, "update:clients")],
    ),
    (
        "resource-servers",
        &[
            (Method::GET, Op::ListApis, "read:resource_servers"),
            (Method::POST, Op::CreateApi, "create:resource_servers"),
        ],
    ),
    (
        "resource-servers/{id}",
        &[
            (Method::GET, Op::GetApi, "read:resource_servers"),
            (Method::PATCH, Op::UpdateApi, "update:resource_servers"),
            (Method::DELETE, Op::DeleteApi, "delete:resource_servers"),
        ],
    ),
    (
        "resource-servers/{id}/rotate-secret",
        &[(Method::POST, Op::RotateApiSecret, "update:resource_servers")],
    ),
    (
        "client-grants",
        &[
            (Method::GET, Op::ListGrants, "read:client_grants"),
            (Method::POST, Op::CreateGrant, "create:client_grants"),
        ],
    ),
    (
        "client-grants/{id}",
        &[
            (Method::PATCH, Op::UpdateGrant, "update:client_grants"),
            (Method::DELETE, Op::DeleteGrant, "delete:client_grants"),
        ],
    ),
    (
        "keys/signing",
        &[(Method::GET, Op::SigningKeys, "read:signing_keys")],
    ),
    (
        "keys/signing/rotate",
        &[(Method::POST, Op::RotateSigningKeys, "update:signing_keys")],
    ),
    ("nodes", &[(Method::GET, Op::Nodes, "read:nodes")]),
];

/// The route table compiled into a matcher, built once.
static ROUTER: LazyLock<matchit::Router<Methods>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for (path, methods) in ROUTES {
        // The table is a constant: a malformed or duplicate route fails every test at once.
        if let Err(error) = router.insert(format!("/{path}"), *methods) {
            unreachable!("route /api/v2/{path}: {error}");
        }
    }
    router
});

type Reply = Result<Response<Body>, Response<Body>>;

/// Routes `/api/v2/...`: 404 for a path the table lacks, 405 with `Allow` for a method the
/// path does not answer to, 401/403 before the body is read, then the operation.
pub async fn handle<B: RequestBody>(
    state: &AppState,
    path: &str,
    request: Request<B>,
) -> Response<Body> {
    let relative = path.trim_start_matches("/api/v2").trim_end_matches('/');
    let Ok(matched) = ROUTER.at(relative) else {
        return management_error(StatusCode::NOT_FOUND, "Not found", None);
    };
    let methods = *matched.value;
    let id = matched.params.get("id").map(str::to_owned);
    let Some((_, op, scope)) = methods
        .iter()
        .find(|(method, _, _)| method == request.method())
    else {
        return method_not_allowed(methods);
    };
    let now = now();
    let bearer = bearer_token(&request);
    let caller = match state
        .management
        .authorize(bearer.as_deref(), scope, now)
        .await
    {
        Ok(caller) => caller,
        Err(error) => return management_failure(&error),
    };
    let id = id.unwrap_or_default();
    let write = request.method() != Method::GET;
    let operation = operate(state, *op, &caller, &id, request, now);
    let (response, revision) = Management::revision_written_by(operation).await;
    let mut response = response.unwrap_or_else(|response| response);
    if let Some(revision) = revision {
        // The change feed's revision this call's writes produced: every node that has applied
        // it (`GET /api/v2/nodes`) serves them.
        response
            .headers_mut()
            .insert(REVISION_HEADER, HeaderValue::from(revision));
    }
    if write {
        state
            .metrics
            .management_write(op.name(), response.status().as_u16());
    }
    response
}

/// 405 with the `Allow` header RFC 9110 §15.5.6 asks for, listing the path's methods.
fn method_not_allowed(methods: Methods) -> Response<Body> {
    let allow = methods
        .iter()
        .map(|(method, _, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = management_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", None);
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(http::header::ALLOW, value);
    }
    response
}

/// The token of an `Authorization: Bearer` header, if there is one.
fn bearer_token<B>(request: &Request<B>) -> Option<String> {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim().to_owned())
        })
}

/// Runs one authorized operation.
async fn operate<B: RequestBody>(
    state: &AppState,
    op: Op,
    caller: &Caller,
    id: &str,
    request: Request<B>,
    now: u64,
) -> Reply {
    let m = &state.management;
    match op {
        Op::ListHooks => {
            let params = query(&request);
            let enabled = match param(&params, "enabled") {
                None => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => return Err(bad_query("enabled: must be true or false")),
            };
            let hooks = m.list_hooks(caller, param(&params, "triggerId"), enabled);
            paginate(&params, done(hooks.await)?, "hooks")
        }
        Op::CreateHook => {
            let new: NewHook = json_body(state, request).await?;
            answer(StatusCode::CREATED, m.create_hook(caller, new).await)
        }
        Op::GetHook => answer(StatusCode::OK, m.get_hook(caller, id).await),
        Op::UpdateHook => {
            let patch: HookPatch = json_body(state, request).await?;
            // Auth0 answers a hook PATCH with 201.
            answer(
                StatusCode::CREATED,
                m.update_hook(caller, id, patch, now).await,
            )
        }
        Op::DeleteHook => deleted(m.delete_hook(caller, id).await),
        Op::UploadModule => {
            let is_wasm = request
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    matches!(v.trim(), "application/wasm" | "application/octet-stream")
                });
            if !is_wasm {
                return Err(management_error(
                    StatusCode::BAD_REQUEST,
                    "Content-Type must be application/wasm",
                    Some("invalid_body"),
                ));
            }
            let bytes = read_body(request.into_body(), MAX_MODULE_BODY, &state.limits).await?;
            let uploaded = m.upload_module(caller, id, bytes.to_vec(), now).await;
            answer(StatusCode::CREATED, uploaded)
        }
        Op::HookVersions => answer(StatusCode::OK, m.hook_versions(caller, id).await),
        Op::RollbackHook => {
            let body: RollbackBody = json_body(state, request).await?;
            answer(
                StatusCode::OK,
                m.rollback_hook(caller, id, &body.version).await,
            )
        }
        Op::PromoteCanary => answer(StatusCode::OK, m.promote_canary(caller, id).await),
        Op::RecordedEvents => {
            let params = query(&request);
            let events = m.recorded_events(caller, id, param(&params, "request_id"));
            answer(StatusCode::OK, events.await)
        }
        Op::Replay => {
            let body: ReplayBody = json_body(state, request).await?;
            answer(StatusCode::OK, m.replay(caller, id, body).await)
        }
        Op::HookLogs => {
            if query(&request).iter().any(|(name, _)| name == "follow") {
                let receiver = done(m.follow_hook_logs(caller, id).await)?;
                return Ok(follow_logs(state, id, caller.clone(), receiver));
            }
            answer(StatusCode::OK, m.hook_logs(caller, id).await)
        }
        Op::Nodes => answer(StatusCode::OK, m.nodes(caller, now).await),
        Op::ListSecrets => answer(StatusCode::OK, m.hook_secrets(caller, id).await),
        Op::AddSecrets | Op::UpdateSecrets => {
            let change = if op == Op::AddSecrets {
                SecretsChange::Add
            } else {
                SecretsChange::Update
            };
            let values: SecretValues = json_body(state, request).await?;
            let names = m.set_hook_secrets(caller, id, values, change).await;
            answer(StatusCode::CREATED, names)
        }
        Op::DeleteSecrets => {
            let names: SecretNames = json_body(state, request).await?;
            deleted(m.delete_hook_secrets(caller, id, &names).await)
        }
        Op::ListClients => paginate(
            &query(&request),
            done(m.list_clients(caller).await)?,
            "clients",
        ),
        Op::CreateClient => {
            let body: ClientBody = json_body(state, request).await?;
            answer(StatusCode::CREATED, m.create_client(caller, body).await)
        }
        Op::GetClient => answer(StatusCode::OK, m.get_client(caller, id).await),
        Op::UpdateClient => {
            let body: ClientBody = json_body(state, request).await?;
            answer(StatusCode::OK, m.update_client(caller, id, body).await)
        }
        Op::DeleteClient => deleted(m.delete_client(caller, id).await),
        Op::RotateClientSecret => answer(StatusCode::OK, m.rotate_client_secret(caller, id).await),
        Op::ListApis => paginate(
            &query(&request),
            done(m.list_apis(caller).await)?,
            "resource_servers",
        ),
        Op::CreateApi => {
            let body: ApiBody = json_body(state, request).await?;
            answer(StatusCode::CREATED, m.create_api(caller, body).await)
        }
        Op::GetApi => answer(StatusCode::OK, m.get_api(caller, id).await),
        Op::UpdateApi => {
            let body: ApiBody = json_body(state, request).await?;
            answer(StatusCode::OK, m.update_api(caller, id, body).await)
        }
        Op::DeleteApi => deleted(m.delete_api(caller, id).await),
        Op::RotateApiSecret => answer(StatusCode::OK, m.rotate_api_secret(caller, id).await),
        Op::ListGrants => {
            let params = query(&request);
            let grants = m.list_grants(
                caller,
                param(&params, "audience"),
                param(&params, "client_id"),
            );
            paginate(&params, done(grants.await)?, "client_grants")
        }
        Op::CreateGrant => {
            let body: GrantBody = json_body(state, request).await?;
            answer(StatusCode::CREATED, m.create_grant(caller, body).await)
        }
        Op::UpdateGrant => {
            let body: GrantBody = json_body(state, request).await?;
            answer(StatusCode::OK, m.update_grant(caller, id, body).await)
        }
        Op::DeleteGrant => deleted(m.delete_grant(caller, id).await),
        Op::SigningKeys => Ok(json_response(StatusCode::OK, &m.signing_keys(caller))),
        Op::RotateSigningKeys => answer(
            StatusCode::CREATED,
            m.rotate_signing_keys(caller, now).await,
        ),
    }
}

/// The operation's result, or its error rendered.
fn done<T>(result: Result<T, ManagementError>) -> Result<T, Response<Body>> {
    result.map_err(|error| management_failure(&error))
}

/// `status` with the operation's answer as JSON, or its error rendered.
fn answer<T: Serialize>(status: StatusCode, result: Result<T, ManagementError>) -> Reply {
    Ok(json_response(status, &done(result)?))
}

/// 204 for a delete that happened, or its error rendered.
fn deleted(result: Result<(), ManagementError>) -> Reply {
    done(result)?;
    let mut response = json_response(StatusCode::NO_CONTENT, &Value::Null);
    *response.body_mut() = super::error::full(Bytes::new());
    Ok(response)
}

/// Reads and parses a JSON body into `T`, rejecting unknown fields with a message naming them.
async fn json_body<T, B: RequestBody>(
    state: &AppState,
    request: Request<B>,
) -> Result<T, Response<Body>>
where
    T: DeserializeOwned,
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

/// The first value of query parameter `name`.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn bad_query(message: &str) -> Response<Body> {
    management_error(
        StatusCode::BAD_REQUEST,
        message,
        Some("invalid_query_string"),
    )
}

/// Auth0's list paging: `page` (from 0), `per_page` (1 to 100, default 50) and
/// `include_totals`, which wraps the page as `{start, limit, total, <key>: [...]}`.
fn paginate<T: Serialize>(params: &[(String, String)], items: Vec<T>, key: &str) -> Reply {
    let number = |name: &str, default: usize| -> Result<usize, Response<Body>> {
        match param(params, name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| bad_query(&format!("{name}: must be a non-negative integer"))),
        }
    };
    let page = number("page", 0)?;
    let per_page = number("per_page", 50)?;
    if !(1..=100).contains(&per_page) {
        return Err(bad_query("per_page: must be between 1 and 100"));
    }
    let total = items.len();
    let start = page.saturating_mul(per_page);
    let slice: Vec<T> = items.into_iter().skip(start).take(per_page).collect();
    if param(params, "include_totals") == Some("true") {
        let totals = Totals {
            start,
            limit: per_page,
            total,
            items: [(key.to_owned(), slice)].into_iter().collect(),
        };
        Ok(json_response(StatusCode::OK, &totals))
    } else {
        Ok(json_response(StatusCode::OK, &slice))
    }
}

/// A `?follow` stream's state.
struct Follower {
    receiver: tokio::sync::broadcast::Receiver<crate::proto::HookLogEntry>,
    hook_id: String,
    caller: Caller,
    management: std::sync::Arc<crate::management::Management>,
    recheck: tokio::time::Interval,
}

/// `?follow`: one JSON object per line (NDJSON) for every new invocation of the hook, for as
/// long as the client keeps the connection open and its token holds: the stream ends when the
/// token expires, its client, grant or `read:logs` scope goes, or its secret is rotated
/// (checked every [`FOLLOW_RECHECK`]). A follower too slow to keep up is told how many
/// entries it missed instead of stalling the token endpoint.
fn follow_logs(
    state: &AppState,
    id: &str,
    caller: Caller,
    receiver: tokio::sync::broadcast::Receiver<crate::proto::HookLogEntry>,
) -> Response<Body> {
    use http_body_util::BodyExt as _;
    use tokio::sync::broadcast::error::RecvError;
    let follower = Follower {
        receiver,
        hook_id: id.to_owned(),
        caller,
        management: state.management.clone(),
        recheck: tokio::time::interval(FOLLOW_RECHECK),
    };
    let lines = futures_util::stream::unfold(follower, |mut follower| async move {
        loop {
            let received = tokio::select! {
                received = follower.receiver.recv() => received,
                _ = follower.recheck.tick() => {
                    // Checked on a task of its own: the store's futures are not `Sync`, and
                    // a response body must be.
                    let (management, caller) =
                        (follower.management.clone(), follower.caller.clone());
                    let holds = tokio::spawn(async move {
                        management.still_holds(&caller, "read:logs", now()).await
                    });
                    if !holds.await.unwrap_or(false) {
                        return None;
                    }
                    continue;
                }
            };
            let line = match received {
                Ok(entry) if entry.hook_id == follower.hook_id => {
                    FollowLine::Entry(Box::new(entry))
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => FollowLine::Missed { missed },
                Err(RecvError::Closed) => return None,
            };
            let mut text = serde_json::to_string(&line).unwrap_or_default();
            text.push('\n');
            let frame = hyper::body::Frame::data(Bytes::from(text));
            return Some((Ok::<_, std::convert::Infallible>(frame), follower));
        }
    });
    let mut response = Response::new(http_body_util::StreamBody::new(lines).boxed());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}
