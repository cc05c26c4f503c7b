//! Shared harness for hookd's integration tests: paths of the guest components built from
//! source by `build.rs`, and helpers to load and run them.

#![allow(
    clippy::expect_used,
    reason = "test harness: a failed setup step should fail the test"
)]

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

use hookd::hooks::{
    ClientInfo, CredentialsExchangeEvent, EngineSettings, ExtensibilityPoint, HookContext,
    HookEngine, HookLimits, LoadedHook, RequestInfo, ResourceServerInfo,
};

/// Reads a guest component built by `build.rs`.
pub fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// An engine with no compiled-artifact cache.
pub fn engine() -> HookEngine {
    HookEngine::new(EngineSettings::default()).expect("engine")
}

/// Loads a guest for the credentials-exchange point with `limits`.
pub fn load(engine: &HookEngine, path: &str, limits: HookLimits) -> LoadedHook {
    engine
        .load(ExtensibilityPoint::CredentialsExchange, &wasm(path), limits)
        .unwrap_or_else(|error| panic!("load {path}: {error}"))
}

/// A realistic event for `audience`.
pub fn event(audience: &str) -> CredentialsExchangeEvent {
    CredentialsExchangeEvent {
        client: ClientInfo {
            id: "client-1".to_owned(),
            name: "reporting".to_owned(),
            tenant: "acme".to_owned(),
            metadata: [("tier".to_owned(), "gold".to_owned())].into(),
        },
        scope: Some(vec!["read:reports".to_owned()]),
        audience: audience.to_owned(),
        context: HookContext {
            secrets: [("API_KEY".to_owned(), "s3cret".to_owned())].into(),
            request: RequestInfo {
                ip: "203.0.113.7".to_owned(),
                hostname: "auth.acme.example".to_owned(),
                method: "POST".to_owned(),
                user_agent: Some("curl/8.5".to_owned()),
            },
            requested_scopes: vec!["read:reports".to_owned()],
            resource_server: ResourceServerInfo {
                identifier: audience.to_owned(),
                name: "Reports API".to_owned(),
            },
            tenant: "acme".to_owned(),
        },
    }
}
