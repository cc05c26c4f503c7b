//! The one place errors become HTTP responses: OAuth errors (status codes, the RFC 6749 §5.2
//! JSON body, `WWW-Authenticate` for Basic clients) and Management API errors (Auth0's
//! `{statusCode, error, message, errorCode}`), all with no-store caching.

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderValue, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::hooks::DenyCode;
use crate::token::TokenError;

/// The body type of every response: usually a full buffer, a stream for followed logs.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt as _;
    Full::new(bytes.into()).boxed()
}

/// A JSON response with `Cache-Control: no-store` (token endpoint responses must not be
/// cached, RFC 6749 §5.1).
pub fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    // Straight into bytes: `Value`'s `Display` goes through the formatter a fragment at a time.
    // Serializing hookd's answers cannot fail (their map keys are strings, the writer is a Vec).
    let mut response = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `{"error": code, "error_description": description}` with `status`.
pub fn oauth_error(status: StatusCode, code: &'static str, description: &str) -> Response<Body> {
    let mut response = json_response(
        status,
        &json!({"error": code, "error_description": description}),
    );
    response.extensions_mut().insert(OAuthErrorCode(code));
    response
}

/// The OAuth error code an answer carries, kept beside it for the metrics.
#[derive(Debug, Clone, Copy)]
pub struct OAuthErrorCode(pub &'static str);

/// Keeps a hook-supplied description printable and short; the hook is not trusted to format
/// what goes on the wire.
fn clean_description(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(500).collect()
}

/// Renders a token endpoint failure.
pub fn token_error(error: &TokenError) -> Response<Body> {
    let description = error.to_string();
    match error {
        TokenError::InvalidRequest(_) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &description)
        }
        TokenError::InvalidClient { used_basic } => {
            let mut response =
                oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &description);
            if *used_basic {
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"hookd\", charset=\"UTF-8\""),
                );
            }
            response
        }
        TokenError::UnsupportedGrantType(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &description,
        ),
        TokenError::UnauthorizedClient(_) => {
            oauth_error(StatusCode::FORBIDDEN, "unauthorized_client", &description)
        }
        TokenError::AccessDenied(_) => {
            oauth_error(StatusCode::FORBIDDEN, "access_denied", &description)
        }
        TokenError::HookDenied(denial) => {
            let status = match denial.code {
                DenyCode::InvalidScope | DenyCode::InvalidRequest => StatusCode::BAD_REQUEST,
                DenyCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            };
            oauth_error(
                status,
                denial.code.as_str(),
                &clean_description(&description),
            )
        }
        TokenError::Unavailable => {
            let mut response = oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &description,
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("2"));
            response
        }
        TokenError::HookFailed | TokenError::Internal => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            &description,
        ),
    }
}

/// 503 with `Retry-After` when the server is saturated.
pub fn saturated() -> Response<Body> {
    let mut response = oauth_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "The server is busy; retry shortly",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A Management API error in Auth0's shape:
/// `{"statusCode", "error", "message", "errorCode"}`.
pub fn management_error(
    status: StatusCode,
    message: &str,
    error_code: Option<&str>,
) -> Response<Body> {
    let body = crate::proto::ErrorBody {
        status_code: status.as_u16(),
        error: status.canonical_reason().unwrap_or("Error").to_owned(),
        message: message.to_owned(),
        error_code: error_code.map(str::to_owned),
    };
    let mut response = json_response(status, &body);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"hookd\", error=\"invalid_token\""),
        );
    }
    response
}

/// Renders a failed management operation: the one place a [`ManagementError`] becomes HTTP
/// (401, 403 `insufficient_scope`, 400 naming the field, 404, 409, or 500 with the detail only
/// in the server's log).
pub fn management_failure(error: &crate::management::ManagementError) -> Response<Body> {
    use crate::management::ManagementError;
    match error {
        ManagementError::Unauthenticated(message) => {
            management_error(StatusCode::UNAUTHORIZED, message, None)
        }
        ManagementError::Forbidden(message) => {
            management_error(StatusCode::FORBIDDEN, message, Some("insufficient_scope"))
        }
        ManagementError::Invalid(message) => {
            management_error(StatusCode::BAD_REQUEST, message, Some("invalid_body"))
        }
        ManagementError::NotSupported(message) => management_error(
            StatusCode::BAD_REQUEST,
            message,
            Some("operation_not_supported"),
        ),
        ManagementError::Module(rejected) => management_error(
            StatusCode::BAD_REQUEST,
            &format!("module: {rejected}"),
            Some("invalid_module"),
        ),
        ManagementError::NotFound(message) => {
            management_error(StatusCode::NOT_FOUND, message, Some("inexistent_resource"))
        }
        ManagementError::Conflict(message) => {
            management_error(StatusCode::CONFLICT, message, Some("conflict"))
        }
        ManagementError::Unavailable(detail) => {
            tracing::warn!(%detail, "the database is unavailable for a Management API call");
            let mut response = management_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable; nothing was changed. Retry shortly",
                Some("temporarily_unavailable"),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("2"));
            response
        }
        ManagementError::Internal(detail) => {
            tracing::error!(%detail, "internal failure in the Management API");
            management_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", None)
        }
    }
}
