//! The only place WIT bindings are generated on the host, and the conversions between the
//! generated types and hookd's domain types, for both forms of the credentials-exchange world
//! (typed records, or the event and answer as JSON text). Nothing generated leaves this module.

use serde::Deserialize;
use serde_json::value::RawValue;
use wasmtime::component::{Component, InstancePre};

use super::claims::RawChanges;
use super::outcome::{MAX_DENIAL_BYTES, MAX_FAILURE_BYTES, MAX_QUOTED_BYTES, bounded};
use super::{
    CredentialsExchangeEvent, Denial, DenyCode, HookError, ModuleRejected, OutputViolation,
};

/// A denial with its description bounded.
fn denial(code: DenyCode, description: String) -> HookError {
    HookError::Denied(Denial {
        code,
        description: bounded(description, MAX_DENIAL_BYTES),
    })
}

/// A reported failure with its message bounded.
fn failure(message: String) -> HookError {
    HookError::Failed {
        message: bounded(message, MAX_FAILURE_BYTES),
    }
}

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "hookd:hooks/credentials-exchange",
        exports: { default: async },
    });
}

mod generated_json {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "hookd:hooks/credentials-exchange-json",
        exports: { default: async },
    });
}

use generated::hookd::hooks::types as wit;
use generated::{CredentialsExchange, CredentialsExchangePre};
use generated_json::{CredentialsExchangeJson, CredentialsExchangeJsonPre};

/// The export of the typed `credentials-exchange` world.
const CREDENTIALS_EXCHANGE_EXPORT: &str = "exchange";
/// The export of `credentials-exchange-json`, the same call with JSON text in and out.
const CREDENTIALS_EXCHANGE_JSON_EXPORT: &str = "exchange-json";

/// A credentials-exchange hook, linked and ready to instantiate, in whichever form of the
/// world it was built for.
pub(crate) enum ExchangePre<T: 'static> {
    Typed(CredentialsExchangePre<T>),
    Json(CredentialsExchangeJsonPre<T>),
}

// Not derived: a derive would require `T: Clone`, which the store's data is not.
impl<T: 'static> Clone for ExchangePre<T> {
    fn clone(&self) -> Self {
        match self {
            ExchangePre::Typed(pre) => ExchangePre::Typed(pre.clone()),
            ExchangePre::Json(pre) => ExchangePre::Json(pre.clone()),
        }
    }
}

/// A live instance of a credentials-exchange hook.
pub(crate) enum ExchangeInstance {
    Typed(CredentialsExchange),
    Json(CredentialsExchangeJson),
}

impl<T: Send + 'static> ExchangePre<T> {
    /// Attaches the bindings of the world the component exports: `exchange` (typed) first,
    /// else `exchange-json`. Refuses a component that exports neither, or one whose export
    /// has another signature.
    pub(crate) fn new(
        component: &Component,
        instance_pre: InstancePre<T>,
        world: &'static str,
    ) -> Result<Self, ModuleRejected> {
        let engine = component.engine();
        let ty = component.component_type();
        let wrong_world = |error: wasmtime::Error| ModuleRejected::WrongWorld {
            world,
            detail: format!("{error:#}"),
        };
        if ty.get_export(engine, CREDENTIALS_EXCHANGE_EXPORT).is_some() {
            return CredentialsExchangePre::new(instance_pre)
                .map(ExchangePre::Typed)
                .map_err(wrong_world);
        }
        if ty
            .get_export(engine, CREDENTIALS_EXCHANGE_JSON_EXPORT)
            .is_some()
        {
            return CredentialsExchangeJsonPre::new(instance_pre)
                .map(ExchangePre::Json)
                .map_err(wrong_world);
        }
        Err(ModuleRejected::MissingExport {
            world,
            export: CREDENTIALS_EXCHANGE_EXPORT,
        })
    }

    /// A fresh instance in `store`.
    pub(crate) async fn instantiate(
        &self,
        store: &mut wasmtime::Store<T>,
    ) -> wasmtime::Result<ExchangeInstance> {
        Ok(match self {
            ExchangePre::Typed(pre) => ExchangeInstance::Typed(pre.instantiate_async(store).await?),
            ExchangePre::Json(pre) => ExchangeInstance::Json(pre.instantiate_async(store).await?),
        })
    }
}

fn string_map(map: std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    map.into_iter().collect()
}

/// The event as the arguments of `exchange`.
pub(crate) struct ExchangeArgs {
    pub(crate) client: wit::Client,
    pub(crate) scope: Option<Vec<String>>,
    pub(crate) audience: String,
    pub(crate) context: wit::Context,
}

/// Moves the event's strings; only the two maps become new lists.
impl From<CredentialsExchangeEvent> for ExchangeArgs {
    fn from(event: CredentialsExchangeEvent) -> Self {
        let client = event.client;
        let context = event.context;
        ExchangeArgs {
            client: wit::Client {
                id: client.id,
                name: client.name,
                tenant: client.tenant,
                metadata: string_map(client.metadata),
            },
            scope: event.scope,
            audience: event.audience,
            context: wit::Context {
                secrets: string_map(context.secrets),
                request: wit::Request {
                    ip: context.request.ip,
                    hostname: context.request.hostname,
                    method: context.request.method,
                    user_agent: context.request.user_agent,
                },
                requested_scopes: context.requested_scopes,
                resource_server: wit::ResourceServer {
                    identifier: context.resource_server.identifier,
                    name: context.resource_server.name,
                },
                tenant: context.tenant,
            },
        }
    }
}

/// Calls the hook on `event` and converts its answer to domain types. An `Err` is a trap
/// (or a host failure); `Ok(Err(..))` is the hook's own refusal or failure, or an answer in
/// the JSON form that is not one.
pub(crate) async fn call_exchange<T: Send>(
    instance: &ExchangeInstance,
    store: &mut wasmtime::Store<T>,
    event: CredentialsExchangeEvent,
    max_output_bytes: u64,
) -> wasmtime::Result<Result<RawChanges, HookError>> {
    match instance {
        ExchangeInstance::Typed(instance) => {
            call_typed(instance, store, &ExchangeArgs::from(event)).await
        }
        ExchangeInstance::Json(instance) => {
            // Serializing plain strings and maps cannot fail.
            let text = serde_json::to_string(&event)?;
            let answer = instance.call_exchange_json(&mut *store, &text).await?;
            Ok(json_answer(&answer, max_output_bytes))
        }
    }
}

/// Calls `exchange` on a typed instance.
async fn call_typed<T: Send>(
    instance: &CredentialsExchange,
    mut store: &mut wasmtime::Store<T>,
    args: &ExchangeArgs,
) -> wasmtime::Result<Result<RawChanges, HookError>> {
    let answer = instance
        .call_exchange(
            &mut store,
            &args.client,
            args.scope.as_deref(),
            &args.audience,
            &args.context,
        )
        .await?;
    Ok(match answer {
        Ok(changes) => Ok(RawChanges {
            scope: changes.scope,
            claims: changes
                .claims
                .into_iter()
                .map(|claim| (claim.name, claim.value))
                .collect(),
        }),
        Err(wit::ExchangeError::Deny(refusal)) => Err(denial(
            match refusal.code {
                wit::DenyCode::InvalidScope => DenyCode::InvalidScope,
                wit::DenyCode::InvalidRequest => DenyCode::InvalidRequest,
                wit::DenyCode::ServerError => DenyCode::ServerError,
            },
            refusal.description,
        )),
        Err(wit::ExchangeError::Fail(message)) => Err(failure(message)),
    })
}

/// Room for the answer's own JSON (braces, quotes, member names) on top of the output limit,
/// which counts claim names, claim values and scopes as for the typed world.
const JSON_ANSWER_SLACK_BYTES: u64 = 8 << 10;

/// The answer of `exchange-json`, as the WIT documents it.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum JsonAnswer {
    Changes(JsonChanges),
    Deny(JsonDenial),
    Fail(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonDenial {
    code: DenyCode,
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonChanges {
    #[serde(default)]
    scope: Option<Vec<String>>,
    #[serde(default, deserialize_with = "claim_pairs")]
    claims: Vec<(String, Box<RawValue>)>,
}

/// A JSON object's members in order, duplicates kept (the claim policy reports them).
fn claim_pairs<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, Box<RawValue>)>, D::Error> {
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(String, Box<RawValue>)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of claim names and JSON values")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(pair) = map.next_entry()? {
                pairs.push(pair);
            }
            Ok(pairs)
        }
    }
    deserializer.deserialize_map(Pairs)
}

/// Reads an `exchange-json` answer: changes for the claim policy, a denial or a failure.
pub(crate) fn json_answer(text: &str, max_output_bytes: u64) -> Result<RawChanges, HookError> {
    let size = text.len() as u64;
    let limit = max_output_bytes.saturating_add(JSON_ANSWER_SLACK_BYTES);
    if size > limit {
        return Err(OutputViolation::TooLarge { size, limit }.into());
    }
    let answer: JsonAnswer =
        serde_json::from_str(text).map_err(|error| OutputViolation::MalformedAnswer {
            error: bounded(error.to_string(), MAX_QUOTED_BYTES),
        })?;
    match answer {
        JsonAnswer::Changes(changes) => Ok(RawChanges {
            scope: changes.scope,
            claims: changes
                .claims
                .into_iter()
                .map(|(name, value)| (name, String::from(Box::<str>::from(value))))
                .collect(),
        }),
        JsonAnswer::Deny(JsonDenial { code, description }) => Err(denial(code, description)),
        JsonAnswer::Fail(message) => Err(failure(message)),
    }
}
