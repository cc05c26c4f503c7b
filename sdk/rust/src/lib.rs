//! Write [hookd](https://example.invalid/hookd) token hooks in Rust.
//!
//! A hook is a WebAssembly component that hookd runs, sandboxed, while it issues an access
//! token. This crate gives you typed inputs, an [`AccessToken`] to put custom claims (any JSON
//! value) and scopes into, typed [`Denial`]s, and one macro that exports your hook.
//!
//! The Client Credentials Exchange hook (Auth0's `credentials-exchange` trigger) receives the
//! same four arguments as an Auth0 Hook: `client`, `scope`, `audience`, `context`.
//!
//! ```
//! use hookd_sdk::{AccessToken, Client, Context, CredentialsExchange, Denial};
//!
//! struct Seed;
//!
//! impl CredentialsExchange for Seed {
//!     fn exchange(
//!         _client: Client,
//!         scope: Option<Vec<String>>,
//!         _audience: String,
//!         _context: Context,
//!     ) -> Result<AccessToken, Denial> {
//!         let mut access_token = AccessToken::new();
//!         access_token.set_claim("https://foo.com/claim", "bar");
//!         let mut scope = scope.unwrap_or_default();
//!         scope.push("extra".to_owned());
//!         access_token.scope = Some(scope);
//!         Ok(access_token)
//!     }
//! }
//!
//! hookd_sdk::export_credentials_exchange!(Seed);
//!
//! // Hooks are plain Rust: unit-test them natively, no WebAssembly needed.
//! let token = Seed::exchange(
//!     Client::default(),
//!     Some(vec!["read:things".to_owned()]),
//!     "https://api.example.com/".to_owned(),
//!     Context::default(),
//! )
//! .unwrap();
//! assert_eq!(token.claims()["https://foo.com/claim"], "bar");
//! assert_eq!(token.scope.unwrap(), ["read:things", "extra"]);
//! ```
//!
//! Build the hook as a component with `cargo build --release --target wasm32-wasip2`
//! (`crate-type = ["cdylib"]`), then try it with `hookd hooks test hook.wasm --event event.json`.
//!
//! Anything the hook prints to stdout or stderr (including a panic message) becomes its log
//! for that call. There is no filesystem or network; clocks and randomness work.
#![deny(missing_docs)]

// The generated bindings name this crate by its path, also from inside it.
extern crate self as hookd_sdk;

use std::collections::BTreeMap;

pub use serde_json::{self, Map, Value, json};

/// Generated bindings and glue used by [`export_credentials_exchange!`]. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "hookd:hooks/credentials-exchange",
        pub_export_macro: true,
        export_macro_name: "export_credentials_exchange_world",
        default_bindings_module: "hookd_sdk::__private",
        runtime_path: "hookd_sdk::__private::wit_bindgen::rt",
    });

    use self::hookd::hooks::types as wit;
    pub use self::hookd::hooks::types::{
        Client as WitClient, Context as WitContext, ExchangeError as WitExchangeError,
        TokenChanges as WitTokenChanges,
    };

    fn map(pairs: Vec<(String, String)>) -> std::collections::BTreeMap<String, String> {
        pairs.into_iter().collect()
    }

    /// Converts the WIT arguments, runs the hook, converts its answer back.
    pub fn run<H: super::CredentialsExchange>(
        client: WitClient,
        scope: Option<Vec<String>>,
        audience: String,
        context: WitContext,
    ) -> Result<WitTokenChanges, WitExchangeError> {
        let client = super::Client {
            id: client.id,
            name: client.name,
            tenant: client.tenant,
            metadata: map(client.metadata),
        };
        let context = super::Context {
            secrets: map(context.secrets),
            request: super::Request {
                ip: context.request.ip,
                hostname: context.request.hostname,
                method: context.request.method,
                user_agent: context.request.user_agent,
            },
            requested_scopes: context.requested_scopes,
            resource_server: super::ResourceServer {
                identifier: context.resource_server.identifier,
                name: context.resource_server.name,
            },
            tenant: context.tenant,
        };
        match H::exchange(client, scope, audience, context) {
            Ok(token) => Ok(WitTokenChanges {
                scope: token.scope,
                claims: token
                    .claims
                    .into_iter()
                    .map(|(name, value)| wit::Claim {
                        name,
                        value: value.to_string(),
                    })
                    .collect(),
            }),
            Err(denial) => Err(WitExchangeError::Deny(wit::Denial {
                code: match denial.code {
                    super::DenyCode::InvalidScope => wit::DenyCode::InvalidScope,
                    super::DenyCode::InvalidRequest => wit::DenyCode::InvalidRequest,
                    super::DenyCode::ServerError => wit::DenyCode::ServerError,
                },
                description: denial.description,
            })),
        }
    }
}

/// The application (OAuth 2.0 client) asking for the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    /// The application's `client_id`.
    pub id: String,
    /// The application's display name.
    pub name: String,
    /// The tenant the application belongs to.
    pub tenant: String,
    /// The application's metadata (Auth0 `client_metadata`).
    pub metadata: BTreeMap<String, String>,
}

/// Facts about the HTTP request that asked for the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The caller's IP address.
    pub ip: String,
    /// The host the request was addressed to, without the port.
    pub hostname: String,
    /// The HTTP method (`POST`).
    pub method: String,
    /// The `User-Agent` header, when there was one.
    pub user_agent: Option<String>,
}

/// The API (resource server) the token is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceServer {
    /// The API identifier, which is the token's `aud`.
    pub identifier: String,
    /// The API's display name.
    pub name: String,
}

/// Everything else a hook may use to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The hook's secrets (Auth0 `context.webtask.secrets`).
    pub secrets: BTreeMap<String, String>,
    /// The HTTP request that asked for the token.
    pub request: Request,
    /// The scopes the client asked for (empty when it asked for none).
    pub requested_scopes: Vec<String>,
    /// The API the token is for.
    pub resource_server: ResourceServer,
    /// The tenant's name.
    pub tenant: String,
}

/// How the hook changes the access token: Auth0's `access_token` object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessToken {
    /// The scopes the token carries from now on, replacing the granted ones. `None` keeps the
    /// granted scopes (in Auth0 Hooks, leaving `access_token.scope` unset reset them; here
    /// you opt in to replacing).
    pub scope: Option<Vec<String>>,
    claims: Map<String, Value>,
}

impl AccessToken {
    /// No changes yet: granted scopes kept, no custom claims.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a custom claim to any JSON value: strings, numbers, booleans, vectors,
    /// [`json!`] objects. Setting a name again replaces its value.
    ///
    /// Use namespaced names (`https://example.com/tier`). Restricted claims (`iss`, `sub`,
    /// `aud`, `exp`, `scope`, ...) are dropped by hookd and reported in the hook log.
    pub fn set_claim(&mut self, name: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Sets a custom claim to any `serde` value, e.g. a struct deriving `Serialize`.
    pub fn set_claim_serialized<T: serde::Serialize + ?Sized>(
        &mut self,
        name: impl Into<String>,
        value: &T,
    ) -> Result<&mut Self, serde_json::Error> {
        let value = serde_json::to_value(value)?;
        Ok(self.set_claim(name, value))
    }

    /// Removes a custom claim set earlier, returning its value.
    pub fn remove_claim(&mut self, name: &str) -> Option<Value> {
        self.claims.remove(name)
    }

    /// The custom claims set so far.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// The OAuth 2.0 error code a denial gives the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyCode {
    /// HTTP 400 `invalid_scope`.
    InvalidScope,
    /// HTTP 400 `invalid_request`.
    InvalidRequest,
    /// HTTP 500 `server_error`.
    ServerError,
}

/// A refusal to issue the token; the client receives `code` and `description` as
/// `error` and `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The OAuth 2.0 error code.
    pub code: DenyCode,
    /// The `error_description`. Keep secrets out of it.
    pub description: String,
}

impl Denial {
    /// HTTP 400 `invalid_scope` (Auth0 `InvalidScopeError`).
    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Denial {
            code: DenyCode::InvalidScope,
            description: description.into(),
        }
    }

    /// HTTP 400 `invalid_request` (Auth0 `InvalidRequestError`).
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Denial {
            code: DenyCode::InvalidRequest,
            description: description.into(),
        }
    }

    /// HTTP 500 `server_error` (Auth0 `ServerError`).
    pub fn server_error(description: impl Into<String>) -> Self {
        Denial {
            code: DenyCode::ServerError,
            description: description.into(),
        }
    }
}

/// A Client Credentials Exchange hook: runs on every client-credentials token request, after
/// the client is authenticated and its grant checked, before the token is signed.
pub trait CredentialsExchange {
    /// Decides how to change the token, or refuses it.
    ///
    /// - `client`: the application asking for the token.
    /// - `scope`: the scopes the token will carry (`None`: no scope at all).
    /// - `audience`: the API identifier, the token's `aud`.
    /// - `context`: secrets, request facts, requested scopes, the API, the tenant.
    fn exchange(
        client: Client,
        scope: Option<Vec<String>>,
        audience: String,
        context: Context,
    ) -> Result<AccessToken, Denial>;
}

/// Exports a type implementing [`CredentialsExchange`] as the component's hook. Use it once,
/// in the hook crate's `lib.rs`.
#[macro_export]
macro_rules! export_credentials_exchange {
    ($hook:ty) => {
        const _: () = {
            struct HookdCredentialsExchange;

            impl $crate::__private::Guest for HookdCredentialsExchange {
                fn exchange(
                    client: $crate::__private::WitClient,
                    scope: ::core::option::Option<::std::vec::Vec<::std::string::String>>,
                    audience: ::std::string::String,
                    context: $crate::__private::WitContext,
                ) -> ::core::result::Result<
                    $crate::__private::WitTokenChanges,
                    $crate::__private::WitExchangeError,
                > {
                    $crate::__private::run::<$hook>(client, scope, audience, context)
                }
            }

            $crate::__private::export_credentials_exchange_world!(
                HookdCredentialsExchange with_types_in $crate::__private
            );
        };
    };
}
