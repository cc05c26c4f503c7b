//! Request handling without a socket: routing, body limits, parsing the token request from
//! a form or JSON body and the Authorization header, discovery documents and the JWKS.

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use super::HttpLimits;
use super::RequestBody;
use super::error::{Body, json_response, oauth_error, saturated, token_error};
use crate::hooks::RequestInfo;
use crate::management::Management;
use crate::metrics::Metrics;
use crate::token::{ClientAuth, TokenRequest, TokenService};

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    /// Issues tokens.
    pub tokens: TokenService,
    /// The Management API's operations and rules.
    pub management: std::sync::Arc<Management>,
    /// What the server counts and measures.
    pub metrics: std::sync::Arc<Metrics>,
    /// The authorization server metadata (RFC 8414), built once.
    pub metadata: Value,
    /// Body size and timing limits.
    pub limits: HttpLimits,
    /// Slots for requests being handled.
    pub admission: Admission,
}

/// Slots for requests being handled, in two pools: token requests take theirs once the body
/// is in (a slow body holds a connection, never a slot), and everything else has a reserved
/// pool of its own.
#[derive(Debug)]
pub struct Admission {
    token: std::sync::Arc<tokio::sync::Semaphore>,
    reserved: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Admission {
    /// Pools of the sizes `limits` gives.
    pub fn new(limits: &HttpLimits) -> Self {
        Admission {
            token: std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight)),
            reserved: std::sync::Arc::new(tokio::sync::Semaphore::new(limits.reserved_in_flight)),
        }
    }
}

/// The token endpoint's URL under `issuer` (which ends in `/`).
pub fn token_endpoint(issuer: &str) -> String {
    format!("{issuer}oauth/token")
}

impl AppState {
    /// State over the token and management services; discovery metadata derives from the
    /// tenant's issuer.
    pub fn new(
        tokens: TokenService,
        management: std::sync::Arc<Management>,
        metrics: std::sync::Arc<Metrics>,
        limits: HttpLimits,
    ) -> Self {
        let issuer = tokens.tenant().issuer.clone();
        let metadata = json!({
            "issuer": issuer,
            "token_endpoint": token_endpoint(&issuer),
            "jwks_uri": format!("{issuer}.well-known/jwks.json"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["token"],
            "scopes_supported": [],
            "subject_types_supported": ["public"],
        });
        AppState {
            tokens,
            management,
            metrics,
            metadata,
            admission: Admission::new(&limits),
            limits,
        }
    }
}

/// The wall clock, read once per request.
pub(super) fn now() -> u64 {
    crate::clock::unix_now()
}

/// What a top-level path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `POST /oauth/token`, which takes its slot from the token pool once the body is in.
    Token,
    /// Everything else, served from the reserved pool.
    Reserved(Reserved),
}

/// An endpoint served from the reserved pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reserved {
    /// The JWKS.
    Jwks,
    /// RFC 8414 / OpenID discovery.
    Discovery,
    /// Liveness.
    Health,
    /// `/api/v2/...`, routed by the Management API's own table.
    Management,
}

const GET_HEAD: &[Method] = &[Method::GET, Method::HEAD];

/// The server's top-level route table: path, endpoint, and the methods it answers to (the
/// Management API's methods are in its own table).
const ENDPOINTS: &[(&str, Endpoint, &[Method])] = &[
    ("/oauth/token", Endpoint::Token, &[Method::POST]),
    (
        "/.well-known/jwks.json",
        Endpoint::Reserved(Reserved::Jwks),
        GET_HEAD,
    ),
    (
        "/.well-known/openid-configuration",
        Endpoint::Reserved(Reserved::Discovery),
        GET_HEAD,
    ),
    (
        "/.well-known/oauth-authorization-server",
        Endpoint::Reserved(Reserved::Discovery),
        GET_HEAD,
    ),
    ("/healthz", Endpoint::Reserved(Reserved::Health), GET_HEAD),
    ("/api/v2/", Endpoint::Reserved(Reserved::Management), &[]),
    (
        "/api/v2/{*rest}",
        Endpoint::Reserved(Reserved::Management),
        &[],
    ),
];

type Route = (Endpoint, &'static [Method]);

/// The top-level route table compiled into a matcher, built once.
static ROUTER: std::sync::LazyLock<matchit::Router<Route>> = std::sync::LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for (path, endpoint, methods) in ENDPOINTS {
        // The table is a constant: a malformed or duplicate route fails every test at once.
        if let Err(error) = router.insert(*path, (*endpoint, *methods)) {
            unreachable!("route {path}: {error}");
        }
    }
    router
});

/// 405 with the `Allow` header RFC 9110 §15.5.6 asks for, listing the route's methods.
fn method_not_allowed(methods: &[Method]) -> Response<Body> {
    let allow = methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut response = oauth_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        &format!("Method not allowed; use {allow}"),
    );
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(ALLOW, value);
    }
    response
}

impl Endpoint {
    /// The endpoint's name in metrics.
    fn name(self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::Reserved(Reserved::Jwks) => "jwks",
            Endpoint::Reserved(Reserved::Discovery) => "discovery",
            Endpoint::Reserved(Reserved::Health) => "health",
            Endpoint::Reserved(Reserved::Management) => "management",
        }
    }
}

/// Routes one request, counting it in the metrics. The body is any `http_body::Body`, so
/// tests can call this without a socket.
pub async fn handle<B: RequestBody>(
    state: &AppState,
    peer: SocketAddr,
    request_id: &str,
    request: Request<B>,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let found = ROUTER
        .at(request.uri().path())
        .ok()
        .map(|matched| *matched.value);
    let endpoint = found.map_or("unknown", |(endpoint, _)| endpoint.name());
    let in_flight = state.metrics.request_started(endpoint);
    let response = route(state, found, peer, request_id, request).await;
    drop(in_flight);
    let error = response
        .extensions()
        .get::<super::error::OAuthErrorCode>()
        .map_or("", |code| code.0);
    state.metrics.request_done(
        endpoint,
        response.status().as_u16(),
        error,
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Answers a request whose path the route table matched to `found` (`None`: no endpoint).
async fn route<B: RequestBody>(
    state: &AppState,
    found: Option<Route>,
    peer: SocketAddr,
    request_id: &str,
    request: Request<B>,
) -> Response<Body> {
    let Some((endpoint, methods)) = found else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": "not_found", "error_description": "No such endpoint"}),
        );
    };
    let management = endpoint == Endpoint::Reserved(Reserved::Management);
    if !management && !methods.contains(request.method()) {
        return method_not_allowed(methods);
    }
    let reserved = match endpoint {
        Endpoint::Token => return token(state, peer, request_id, request).await,
        Endpoint::Reserved(reserved) => reserved,
    };
    let Ok(_slot) = state.admission.reserved.try_acquire() else {
        state.metrics.refused("reserved");
        return saturated();
    };
    match reserved {
        Reserved::Management => {
            let path = request.uri().path().to_owned();
            super::management::handle(state, &path, request).await
        }
        Reserved::Jwks => {
            let mut response = json_response(StatusCode::OK, &state.tokens.jwks());
            response.headers_mut().insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            response
        }
        Reserved::Discovery => json_response(StatusCode::OK, &state.metadata),
        Reserved::Health => json_response(StatusCode::OK, &json!({"status": "ok"})),
    }
}

/// The wire formats a token request may use.
enum BodyFormat {
    Form,
    Json,
}

fn body_format(request: &Request<impl Sized>) -> Option<BodyFormat> {
    let content_type = request.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let mime = content_type.split(';').next()?.trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-www-form-urlencoded" => Some(BodyFormat::Form),
        "application/json" => Some(BodyFormat::Json),
        _ => None,
    }
}

/// A JSON object's members in order, repeats included (a `Value` would keep only the last
/// of a repeated name, hiding the repeat that RFC 6749 §3.2 makes an error).
struct JsonMembers(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for JsonMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = JsonMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonMembers, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(JsonMembers(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// Body parameters with RFC 6749 §3.2 rules: a repeated parameter is an error, one with an
/// empty value counts as absent. Linear in the number of parameters, so a body of thousands
/// of distinct names costs no more than reading it.
fn parameters(format: BodyFormat, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let pairs: Vec<(String, String)> = match format {
        BodyFormat::Form => form_urlencoded::parse(body).into_owned().collect(),
        BodyFormat::Json => {
            let value: Value = serde_json::from_slice(body)
                .map_err(|_| "The request body is not valid JSON".to_owned())?;
            if !value.is_object() {
                return Err("The request body must be a JSON object".to_owned());
            }
            let JsonMembers(members) = serde_json::from_slice(body)
                .map_err(|_| "The request body is not valid JSON".to_owned())?;
            members
                .into_iter()
                .map(|(name, value)| match value {
                    Value::String(text) => Ok((name, text)),
                    Value::Null => Ok((name, String::new())),
                    _ => Err(format!("Parameter {name} must be a string")),
                })
                .collect::<Result<_, _>>()?
        }
    };
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    if let Some((name, _)) = pairs.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return Err(format!("Parameter {name} is repeated"));
    }
    Ok(pairs
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect())
}

/// `Authorization: Basic` credentials: base64 of `id:secret`, each form-urlencoded first
/// (RFC 6749 §2.3.1). `Err` when the header is present but malformed.
fn basic_credentials(request: &Request<impl Sized>) -> Result<Option<(String, String)>, ()> {
    let Some(header) = request.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let header = header.to_str().map_err(drop)?;
    let Some((scheme, encoded)) = header.split_once(' ') else {
        return Err(());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(drop)?;
    let decoded = String::from_utf8(decoded).map_err(drop)?;
    let (id, secret) = decoded.split_once(':').ok_or(())?;
    let unescape = |part: &str| -> String {
        form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// The host of a `Host` header without its port, as Express's `req.hostname` gives it: an
/// IPv6 literal keeps its brackets (`[::1]:8080` is `[::1]`); a header that is not a valid
/// authority is passed on as it came.
fn host_name(host: &str) -> String {
    match host.parse::<http::uri::Authority>() {
        Ok(authority) => authority.host().to_owned(),
        Err(_) => host.to_owned(),
    }
}

/// Reads a whole request body of at most `max` bytes within the body timeout; the error is
/// the response to send (413, 408 or 400).
pub(super) async fn read_body<B: RequestBody>(
    body: B,
    max: usize,
    limits: &super::HttpLimits,
) -> Result<Bytes, Response<Body>> {
    match tokio::time::timeout(limits.body_timeout, Limited::new(body, max).collect()).await {
        Err(_) => Err(oauth_error(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request",
            "The request body was not received in time",
        )),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            &format!("The request body is larger than {max} bytes"),
        )),
        Ok(Err(_)) => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body could not be read",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

async fn token<B: RequestBody>(
    state: &AppState,
    peer: SocketAddr,
    request_id: &str,
    request: Request<B>,
) -> Response<Body> {
    let Some(format) = body_format(&request) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded or application/json",
        );
    };
    let basic = basic_credentials(&request);
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let hostname = header(HOST).as_deref().map(host_name).unwrap_or_default();
    let info = RequestInfo {
        ip: peer.ip().to_string(),
        hostname,
        method: "POST".to_owned(),
        user_agent: header(USER_AGENT),
    };

    let bytes = match read_body(
        request.into_body(),
        state.limits.max_body_bytes,
        &state.limits,
    )
    .await
    {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let Ok(_slot) = state.admission.token.try_acquire() else {
        state.metrics.refused("token");
        return saturated();
    };
    let params = match parameters(format, &bytes) {
        Ok(params) => params,
        Err(message) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &message),
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };

    let body_id = param("client_id");
    let body_secret = param("client_secret");
    let auth = match (basic, body_id, body_secret) {
        (Err(()), _, _) => {
            return token_error(&crate::token::TokenError::InvalidClient { used_basic: true });
        }
        (Ok(Some(_)), _, Some(_)) => ClientAuth::Conflicting,
        (Ok(Some((id, _))), Some(body_id), None) if body_id != id => ClientAuth::Conflicting,
        (Ok(Some((client_id, client_secret))), _, None) => ClientAuth::Basic {
            client_id,
            client_secret,
        },
        (Ok(None), Some(client_id), secret) => ClientAuth::Post {
            client_id,
            client_secret: secret.unwrap_or_default(),
        },
        (Ok(None), None, _) => ClientAuth::None,
    };
    let audience = match (param("audience"), param("resource")) {
        (Some(audience), Some(resource)) if audience != resource => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "audience and resource name different APIs",
            );
        }
        (audience, resource) => audience.or(resource),
    };
    let token_request = TokenRequest {
        grant_type: param("grant_type"),
        auth,
        audience,
        scope: param("scope"),
        request: info,
        request_id: request_id.to_owned(),
    };
    match state.tokens.issue(token_request, now()).await {
        Ok(issued) => {
            let answer = crate::proto::TokenAnswer {
                access_token: issued.access_token,
                token_type: "Bearer".to_owned(),
                expires_in: issued.expires_in,
                scope: issued.scope,
            };
            json_response(StatusCode::OK, &answer)
        }
        Err(error) => token_error(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_drop_the_port_and_keep_ipv6_brackets() {
        assert_eq!(host_name("auth.example:8443"), "auth.example");
        assert_eq!(host_name("auth.example"), "auth.example");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("[2001:db8::7]"), "[2001:db8::7]");
        assert_eq!(host_name("127.0.0.1:80"), "127.0.0.1");
    }

    #[test]
    fn a_repeated_parameter_is_refused_in_a_form_and_in_json() {
        let form = parameters(BodyFormat::Form, b"grant_type=a&scope=x&grant_type=b");
        assert_eq!(form.unwrap_err(), "Parameter grant_type is repeated");
        let json = parameters(
            BodyFormat::Json,
            br#"{"client_id":"a","client_secret":"s","client_id":"b"}"#,
        );
        assert_eq!(json.unwrap_err(), "Parameter client_id is repeated");
        let fine = parameters(BodyFormat::Json, br#"{"grant_type":"x","scope":null}"#).unwrap();
        assert_eq!(fine, vec![("grant_type".to_owned(), "x".to_owned())]);
        assert!(parameters(BodyFormat::Json, b"[1]").is_err());
        assert!(parameters(BodyFormat::Json, br#"{"a":1}"#).is_err());
    }

    /// The fastest of a few runs of `parse` on `body`, in nanoseconds.
    fn fastest(body: &[u8]) -> u128 {
        (0..5)
            .map(|_| {
                let started = std::time::Instant::now();
                let parsed = parameters(BodyFormat::Form, body);
                std::hint::black_box(parsed.is_ok());
                started.elapsed().as_nanos()
            })
            .min()
            .unwrap_or(u128::MAX)
    }

    #[test]
    fn many_distinct_names_cost_linear_time() {
        // A 64 KiB body of 12,000 distinct short names against one of a tenth as many, in
        // the same run: linear parsing costs about 10x, the quadratic check it replaces cost
        // about 100x. No wall-clock threshold, only the ratio.
        let body = |count: usize| {
            (0..count)
                .map(|i| format!("{i:x}"))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        };
        let (large, small) = (body(12_000), body(1_200));
        assert!(large.len() <= 64 << 10);
        let ratio = fastest(&large) as f64 / fastest(&small).max(1) as f64;
        assert!(ratio < 30.0, "10x the parameters cost {ratio:.0}x the time");
    }
}
