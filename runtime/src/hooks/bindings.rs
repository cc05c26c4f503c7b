//! The only place WIT bindings are generated on the host, and the conversions between the
//! generated types and hookd's domain types. Nothing generated leaves this module.

use super::claims::RawChanges;
use super::{CredentialsExchangeEvent, Denial, DenyCode, HookError};

/// Most of a hook's failure message that is kept, in bytes.
const MAX_FAILURE_MESSAGE_BYTES: usize = 4 << 10;

/// Cuts a failure message to [`MAX_FAILURE_MESSAGE_BYTES`] on a character boundary.
fn truncate_message(mut message: String) -> String {
    if message.len() > MAX_FAILURE_MESSAGE_BYTES {
        let mut end = MAX_FAILURE_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("… (truncated)");
    }
    message
}

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "hookd:hooks/credentials-exchange",
        exports: { default: async },
    });
}

use generated::hookd::hooks::types as wit;
pub(crate) use generated::{CredentialsExchange, CredentialsExchangePre};

/// The name of the world's export, checked when a module is loaded.
pub(crate) const CREDENTIALS_EXCHANGE_EXPORT: &str = "exchange";

fn string_map(map: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The event as the arguments of `exchange`.
pub(crate) struct ExchangeArgs {
    pub(crate) client: wit::Client,
    pub(crate) scope: Option<Vec<String>>,
    pub(crate) audience: String,
    pub(crate) context: wit::Context,
}

impl From<&CredentialsExchangeEvent> for ExchangeArgs {
    fn from(event: &CredentialsExchangeEvent) -> Self {
        let client = &event.client;
        let context = &event.context;
        ExchangeArgs {
            client: wit::Client {
                id: client.id.clone(),
                name: client.name.clone(),
                tenant: client.tenant.clone(),
                metadata: string_map(&client.metadata),
            },
            scope: event.scope.clone(),
            audience: event.audience.clone(),
            context: wit::Context {
                secrets: string_map(&context.secrets),
                request: wit::Request {
                    ip: context.request.ip.clone(),
                    hostname: context.request.hostname.clone(),
                    method: context.request.method.clone(),
                    user_agent: context.request.user_agent.clone(),
                },
                requested_scopes: context.requested_scopes.clone(),
                resource_server: wit::ResourceServer {
                    identifier: context.resource_server.identifier.clone(),
                    name: context.resource_server.name.clone(),
                },
                tenant: context.tenant.clone(),
            },
        }
    }
}

/// Calls `exchange` on an instance and converts its answer to domain types.
pub(crate) async fn call_exchange<T: Send>(
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
        Err(wit::ExchangeError::Deny(denial)) => Err(HookError::Denied(Denial {
            code: match denial.code {
                wit::DenyCode::InvalidScope => DenyCode::InvalidScope,
                wit::DenyCode::InvalidRequest => DenyCode::InvalidRequest,
                wit::DenyCode::ServerError => DenyCode::ServerError,
            },
            description: denial.description,
        })),
        Err(wit::ExchangeError::Fail(message)) => Err(HookError::Failed {
            message: truncate_message(message),
        }),
    })
}
