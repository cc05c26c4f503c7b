//! The input of a credentials-exchange hook, as hookd's own types. The JSON form of
//! [`CredentialsExchangeEvent`] is what `hookd hooks test --event` reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything a credentials-exchange hook is called with: Auth0's
/// `(client, scope, audience, context)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsExchangeEvent {
    /// The application asking for the token.
    pub client: ClientInfo,
    /// The scopes the token will carry; `None` when it carries none.
    #[serde(default)]
    pub scope: Option<Vec<String>>,
    /// The API identifier, the token's `aud`.
    pub audience: String,
    /// Secrets, request facts, requested scopes, API and tenant.
    #[serde(default)]
    pub context: HookContext,
}

/// The application (OAuth 2.0 client) asking for the token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInfo {
    /// The `client_id`.
    pub id: String,
    /// The application's display name.
    #[serde(default)]
    pub name: String,
    /// The tenant the application belongs to.
    #[serde(default)]
    pub tenant: String,
    /// The application's metadata (Auth0 `client_metadata`).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// What else the hook may use to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookContext {
    /// The hook's secrets.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// The HTTP request that asked for the token.
    #[serde(default)]
    pub request: RequestInfo,
    /// The scopes the client asked for (empty when it asked for none).
    #[serde(default)]
    pub requested_scopes: Vec<String>,
    /// The API the token is for.
    #[serde(default)]
    pub resource_server: ResourceServerInfo,
    /// The tenant's name.
    #[serde(default)]
    pub tenant: String,
}

/// Facts about the HTTP request that asked for the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestInfo {
    /// The caller's IP address.
    #[serde(default)]
    pub ip: String,
    /// The `Host` the request was addressed to, without the port.
    #[serde(default)]
    pub hostname: String,
    /// The HTTP method.
    #[serde(default = "post")]
    pub method: String,
    /// The `User-Agent` header, if any.
    #[serde(default)]
    pub user_agent: Option<String>,
}

fn post() -> String {
    "POST".to_owned()
}

impl Default for RequestInfo {
    fn default() -> Self {
        RequestInfo {
            ip: String::new(),
            hostname: String::new(),
            method: post(),
            user_agent: None,
        }
    }
}

/// The API (resource server) the token is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceServerInfo {
    /// The API identifier (the token's `aud`).
    pub identifier: String,
    /// The API's display name.
    #[serde(default)]
    pub name: String,
}

impl CredentialsExchangeEvent {
    /// The event's size as the hook receives it: every string added up, in bytes. Compared
    /// against [`HookLimits::max_input_bytes`](super::HookLimits::max_input_bytes).
    pub fn input_bytes(&self) -> u64 {
        fn map(m: &BTreeMap<String, String>) -> usize {
            m.iter().map(|(k, v)| k.len() + v.len()).sum()
        }
        fn list(l: &[String]) -> usize {
            l.iter().map(String::len).sum()
        }
        let client = &self.client;
        let context = &self.context;
        let request = &context.request;
        let total = client.id.len()
            + client.name.len()
            + client.tenant.len()
            + map(&client.metadata)
            + self.scope.as_deref().map_or(0, list)
            + self.audience.len()
            + map(&context.secrets)
            + request.ip.len()
            + request.hostname.len()
            + request.method.len()
            + request.user_agent.as_ref().map_or(0, String::len)
            + list(&context.requested_scopes)
            + context.resource_server.identifier.len()
            + context.resource_server.name.len()
            + context.tenant.len();
        total as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_event_json_fills_defaults() {
        let event: CredentialsExchangeEvent = serde_json::from_str(
            r#"{"client": {"id": "abc"}, "audience": "https://api.example.com/"}"#,
        )
        .unwrap();
        assert_eq!(event.scope, None);
        assert_eq!(event.context.request.method, "POST");
        assert_eq!(event.input_bytes(), 3 + 24 + 4);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<CredentialsExchangeEvent>(
            r#"{"client": {"id": "a"}, "audience": "x", "audiense": "y"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("audiense"));
    }
}
