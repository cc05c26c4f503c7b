//! The admin commands (`hookd hooks|clients|apis|grants|keys ...`): each is one or two
//! Management API calls with the wire types of [`hookd::proto`], printed as a table or, with
//! `--json`, as the API's JSON.

use std::process::ExitCode;

use hookd::proto::{
    ApiBody, ApiScope, ApiView, CanaryBody, CanaryState, ClientBody, ClientView, FollowLine,
    GrantBody, GrantView, HookLogEntry, HookPatch, HookVersionView, HookView, LoggedOutcome,
    NewHook, NodeView, NodesView, RollbackBody, SecretsView, ShadowBody, SigningKeyView,
};
use http::Method;

use super::api::{ManagementClient, Row, or_dash, pairs, print_json, print_one, print_rows};
use super::{
    AdminArgs, ApisCommand, ClientsCommand, ClusterCommand, GrantsCommand, HooksCommand,
    KeysCommand, SecretsCommand,
};

/// One admin command.
pub enum Action {
    /// `hookd hooks ...` (other than `test`).
    Hooks(HooksCommand),
    /// `hookd clients ...`.
    Clients(ClientsCommand),
    /// `hookd apis ...`.
    Apis(ApisCommand),
    /// `hookd grants ...`.
    Grants(GrantsCommand),
    /// `hookd keys ...`.
    Keys(KeysCommand),
    /// `hookd cluster ...`.
    Cluster(ClusterCommand),
}

/// A version as tables show it: the sha256's first 12 hex digits.
fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

impl Row for HookView {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "NAME",
        "TRIGGER",
        "ENABLED",
        "STATE",
        "ACTIVE VERSION",
        "CANARY",
        "SHADOW",
    ];
    fn cells(&self) -> Vec<String> {
        let canary = self.canary.as_ref().map(|canary| match &canary.state {
            CanaryState::Running => format!("{} at {} %", short(&canary.version), canary.percent),
            CanaryState::Withdrawn { reason, .. } => {
                format!("{} withdrawn: {reason}", short(&canary.version))
            }
        });
        vec![
            self.id.clone(),
            self.name.clone(),
            self.trigger_id.clone(),
            self.enabled.to_string(),
            self.state.as_str().to_owned(),
            or_dash(self.active_version.as_deref()),
            or_dash(canary.as_deref()),
            or_dash(
                self.shadow
                    .as_ref()
                    .map(|shadow| format!("{} at {} %", short(&shadow.version), shadow.percent))
                    .as_deref(),
            ),
        ]
    }
}

impl Row for ClientView {
    const HEADERS: &'static [&'static str] = &["CLIENT ID", "NAME", "APP TYPE", "GRANT TYPES"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.client_id.clone(),
            self.name.clone(),
            self.app_type.clone(),
            self.grant_types.join(" "),
        ]
    }
}

impl Row for ApiView {
    const HEADERS: &'static [&'static str] =
        &["ID", "IDENTIFIER", "NAME", "ALG", "DIALECT", "LIFETIME"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.identifier.clone(),
            self.name.clone(),
            self.signing_alg.as_str().to_owned(),
            self.token_dialect.as_str().to_owned(),
            self.token_lifetime.to_string(),
        ]
    }
}

impl Row for GrantView {
    const HEADERS: &'static [&'static str] = &["ID", "CLIENT ID", "AUDIENCE", "SCOPE"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.client_id.clone(),
            self.audience.clone(),
            self.scope.join(" "),
        ]
    }
}

impl Row for HookVersionView {
    const HEADERS: &'static [&'static str] = &["SHA256", "SIZE", "UPLOADED AT", "ACTIVE"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.sha256.clone(),
            self.size.to_string(),
            self.uploaded_at.to_string(),
            self.active.to_string(),
        ]
    }
}

impl Row for HookLogEntry {
    const HEADERS: &'static [&'static str] = &[
        "TIME",
        "REQUEST ID",
        "CLIENT",
        "VERSION",
        "RESULT",
        "µs",
        "FUEL",
        "OUTPUT",
    ];
    fn cells(&self) -> Vec<String> {
        let result = match &self.outcome {
            LoggedOutcome::Allowed => "allowed",
            LoggedOutcome::Denied { .. } => "denied",
            LoggedOutcome::Failed { .. } => "failed",
        };
        let version = match (self.version.is_empty(), self.canary, self.shadow) {
            (true, _, _) => "-".to_owned(),
            (false, true, _) => format!("{} (canary)", short(&self.version)),
            (false, _, true) => format!("{} (shadow)", short(&self.version)),
            (false, false, false) => short(&self.version).to_owned(),
        };
        let lines: Vec<String> = self
            .log
            .output
            .trim_end()
            .lines()
            .map(str::to_owned)
            .chain(
                self.log
                    .notices
                    .iter()
                    .map(|notice| format!("[hookd] {notice}")),
            )
            .collect();
        vec![
            self.time.to_string(),
            self.request_id.clone(),
            self.client_id.clone(),
            version,
            result.to_owned(),
            self.duration_us.to_string(),
            self.fuel_used.to_string(),
            if lines.is_empty() {
                "-".to_owned()
            } else {
                lines.join(" | ")
            },
        ]
    }
}

impl Row for SigningKeyView {
    const HEADERS: &'static [&'static str] = &["KID", "ALG", "CURRENT", "NEXT", "PREVIOUS"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.kid.clone(),
            self.alg.clone(),
            self.current.to_string(),
            self.next.to_string(),
            self.previous.to_string(),
        ]
    }
}

impl Row for NodeView {
    const HEADERS: &'static [&'static str] = &[
        "NODE",
        "ADDRESS",
        "VERSION",
        "APPLIED",
        "BEHIND",
        "HEARTBEAT",
        "STATE",
    ];
    fn cells(&self) -> Vec<String> {
        let number = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
        vec![
            self.name.clone(),
            self.address.clone(),
            self.version.clone(),
            number(self.applied_revision),
            number(self.behind),
            seconds_ago(self.heartbeat_at),
            if self.live { "live" } else { "silent" }.to_owned(),
        ]
    }
}

/// A time (seconds since the Unix epoch) as how long ago it was, by this machine's clock.
fn seconds_ago(time: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    format!("{}s ago", now.saturating_sub(time))
}

/// A secret's name, as `hookd hooks secrets` lists it.
#[derive(serde::Serialize)]
struct SecretName {
    name: String,
}

impl Row for SecretName {
    const HEADERS: &'static [&'static str] = &["SECRET"];
    fn cells(&self) -> Vec<String> {
        vec![self.name.clone()]
    }
}

/// A command-line value read as the wire enum it names (e.g. `RS256`, `rfc9068_profile`).
fn wire_value<T: serde::de::DeserializeOwned>(flag: &str, text: &str) -> anyhow::Result<T> {
    serde_json::from_value(serde_json::Value::from(text))
        .map_err(|_| anyhow::anyhow!("{flag}: {text:?} is not a value the API accepts"))
}

fn secret_names(view: SecretsView) -> Vec<SecretName> {
    view.into_keys().map(|name| SecretName { name }).collect()
}

/// Runs an admin command against the server.
pub fn run(admin: AdminArgs, action: Action) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let api = ManagementClient::connect(&admin).await?;
        let json = admin.json;
        match action {
            Action::Hooks(command) => hooks(&api, command, json).await,
            Action::Clients(command) => clients(&api, command, json).await,
            Action::Apis(command) => apis(&api, command, json).await,
            Action::Grants(command) => grants(&api, command, json).await,
            Action::Keys(command) => keys(&api, command, json).await,
            Action::Cluster(command) => cluster(&api, command, json).await,
        }?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn hooks(api: &ManagementClient, command: HooksCommand, json: bool) -> anyhow::Result<()> {
    match command {
        HooksCommand::Test(_) => anyhow::bail!("`hooks test` runs locally, not against a server"),
        HooksCommand::Deploy {
            module,
            name,
            enable,
            trigger,
        } => {
            let bytes = super::hook_source::read_hook_module(&module)?;
            let id = match api.hook_id(&name).await {
                Ok(id) => id,
                Err(_) => {
                    let new = NewHook {
                        name: name.clone(),
                        trigger_id: trigger,
                        enabled: Some(enable),
                        ..NewHook::default()
                    };
                    let created: HookView = api.call(Method::POST, "hooks", Some(&new)).await?;
                    created.id
                }
            };
            let uploaded = api.upload(&id, bytes).await?;
            let mut hook = uploaded.hook.clone();
            if enable && !hook.enabled {
                hook = enable_hook(api, &id, true).await?;
            }
            if json {
                print_json(&uploaded);
            } else {
                println!(
                    "deployed {} as version {} of hook {:?} ({})",
                    module.display(),
                    uploaded.version.sha256,
                    name,
                    if hook.enabled {
                        "enabled: running now"
                    } else {
                        "disabled"
                    }
                );
            }
        }
        HooksCommand::List => print_rows(&api.list::<HookView>("hooks").await?, json),
        HooksCommand::Versions { hook } => {
            let id = api.hook_id(&hook).await?;
            let versions: Vec<HookVersionView> = api
                .call(Method::GET, &format!("hooks/{id}/versions"), None::<&()>)
                .await?;
            print_rows(&versions, json);
        }
        HooksCommand::Enable { hook } => {
            let id = api.hook_id(&hook).await?;
            print_one(&enable_hook(api, &id, true).await?, json);
        }
        HooksCommand::Disable { hook } => {
            let id = api.hook_id(&hook).await?;
            print_one(&enable_hook(api, &id, false).await?, json);
        }
        HooksCommand::Rollback { hook, version } => {
            let id = api.hook_id(&hook).await?;
            let updated: HookView = api
                .call(
                    Method::POST,
                    &format!("hooks/{id}/rollback"),
                    Some(&RollbackBody { version }),
                )
                .await?;
            print_one(&updated, json);
        }
        HooksCommand::Get { hook } => {
            let id = api.hook_id(&hook).await?;
            let view: HookView = api
                .call(Method::GET, &format!("hooks/{id}"), None::<&()>)
                .await?;
            print_one(&view, json);
        }
        HooksCommand::Canary {
            hook,
            version,
            percent,
            min_calls,
            margin,
            window,
            withdraw,
        } => {
            let id = api.hook_id(&hook).await?;
            let canary = match (version, percent) {
                (Some(version), Some(percent)) if !withdraw => Some(CanaryBody {
                    version,
                    percent,
                    min_calls,
                    margin_percent: margin,
                    window,
                }),
                _ => None,
            };
            let patch = HookPatch {
                canary: Some(canary),
                ..HookPatch::default()
            };
            print_one(&patch_hook(api, &id, &patch).await?, json);
        }
        HooksCommand::Shadow {
            hook,
            version,
            percent,
            stop,
        } => {
            let id = api.hook_id(&hook).await?;
            let shadow = match (version, percent) {
                (Some(version), Some(percent)) if !stop => Some(ShadowBody { version, percent }),
                _ => None,
            };
            let patch = HookPatch {
                shadow: Some(shadow),
                ..HookPatch::default()
            };
            print_one(&patch_hook(api, &id, &patch).await?, json);
        }
        HooksCommand::Replay {
            request_id,
            hook,
            module,
            version,
            secrets,
        } => {
            let view = super::replay::replay(
                api,
                super::replay::ReplayArgs {
                    request_id,
                    hook,
                    module,
                    version,
                    secrets: pairs(&secrets)?,
                },
            )
            .await?;
            if json {
                print_json(&view);
            } else {
                print!("{}", super::replay::side_by_side(&view));
            }
        }
        HooksCommand::Promote { hook } => {
            let id = api.hook_id(&hook).await?;
            let updated: HookView = api
                .call(
                    Method::POST,
                    &format!("hooks/{id}/canary/promote"),
                    None::<&()>,
                )
                .await?;
            print_one(&updated, json);
        }
        HooksCommand::Logs { hook, follow } => {
            let id = api.hook_id(&hook).await?;
            if follow {
                api.follow(&format!("hooks/{id}/logs?follow"), |line| match line {
                    line if json => {
                        println!("{}", serde_json::to_string(&line).unwrap_or_default());
                    }
                    FollowLine::Entry(entry) => {
                        let cells: Vec<String> = entry
                            .cells()
                            .iter()
                            .map(|cell| super::terminal::safe(cell))
                            .collect();
                        println!("{}", cells.join("  "));
                    }
                    FollowLine::Missed { missed } => {
                        println!("({missed} entries missed: the reader fell behind)");
                    }
                })
                .await?;
            } else {
                let entries: Vec<HookLogEntry> = api
                    .call(Method::GET, &format!("hooks/{id}/logs"), None::<&()>)
                    .await?;
                print_rows(&entries, json);
            }
        }
        HooksCommand::Secrets(command) => secrets(api, command, json).await?,
    }
    Ok(())
}

/// Enables or disables hook `id`; returns it as changed.
async fn enable_hook(api: &ManagementClient, id: &str, enabled: bool) -> anyhow::Result<HookView> {
    let patch = HookPatch {
        enabled: Some(enabled),
        ..HookPatch::default()
    };
    patch_hook(api, id, &patch).await
}

/// Applies `patch` to hook `id`; returns it as changed.
async fn patch_hook(
    api: &ManagementClient,
    id: &str,
    patch: &HookPatch,
) -> anyhow::Result<HookView> {
    api.call(Method::PATCH, &format!("hooks/{id}"), Some(patch))
        .await
}

async fn secrets(
    api: &ManagementClient,
    command: SecretsCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Set { hook, values } => {
            let id = api.hook_id(&hook).await?;
            let path = format!("hooks/{id}/secrets");
            let values = pairs(&values)?;
            let existing: SecretsView = api.call(Method::GET, &path, None::<&()>).await?;
            // Auth0's API splits add (POST) from change (PATCH): send each its names.
            let (change, add): (SecretsView, SecretsView) = values
                .into_iter()
                .partition(|(name, _)| existing.contains_key(name));
            let mut last = existing;
            if !add.is_empty() {
                last = api.call(Method::POST, &path, Some(&add)).await?;
            }
            if !change.is_empty() {
                last = api.call(Method::PATCH, &path, Some(&change)).await?;
            }
            print_rows(&secret_names(last), json);
        }
        SecretsCommand::Unset {
            hook,
            names: to_remove,
        } => {
            let id = api.hook_id(&hook).await?;
            api.delete(&format!("hooks/{id}/secrets"), Some(&to_remove))
                .await?;
            let left: SecretsView = api
                .call(Method::GET, &format!("hooks/{id}/secrets"), None::<&()>)
                .await?;
            print_rows(&secret_names(left), json);
        }
        SecretsCommand::List { hook } => {
            let id = api.hook_id(&hook).await?;
            let listed: SecretsView = api
                .call(Method::GET, &format!("hooks/{id}/secrets"), None::<&()>)
                .await?;
            print_rows(&secret_names(listed), json);
        }
    }
    Ok(())
}

async fn clients(
    api: &ManagementClient,
    command: ClientsCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        ClientsCommand::Create { name, metadata } => {
            let body = ClientBody {
                name: Some(name),
                client_metadata: Some(pairs(&metadata)?),
                ..ClientBody::default()
            };
            let created: ClientView = api.call(Method::POST, "clients", Some(&body)).await?;
            if json {
                print_json(&created);
            } else {
                print_one(&created, false);
                println!(
                    "client_secret: {} (shown once: store it now)",
                    created.client_secret.as_deref().unwrap_or("?")
                );
            }
        }
        ClientsCommand::List => print_rows(&api.list::<ClientView>("clients").await?, json),
        ClientsCommand::Delete { client_id } => {
            api.delete(&format!("clients/{client_id}"), None::<&()>)
                .await?;
            println!("deleted client {client_id} and its grants");
        }
        ClientsCommand::RotateSecret { client_id } => {
            let rotated: ClientView = api
                .call(
                    Method::POST,
                    &format!("clients/{client_id}/rotate-secret"),
                    None::<&()>,
                )
                .await?;
            if json {
                print_json(&rotated);
            } else {
                println!(
                    "client_secret: {} (shown once; the old secret no longer works)",
                    rotated.client_secret.as_deref().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}

async fn apis(api: &ManagementClient, command: ApisCommand, json: bool) -> anyhow::Result<()> {
    match command {
        ApisCommand::Create {
            identifier,
            name,
            scopes,
            signing_alg,
            dialect,
            token_lifetime,
        } => {
            let body = ApiBody {
                identifier: Some(identifier),
                name,
                scopes: Some(
                    scopes
                        .into_iter()
                        .map(|value| ApiScope {
                            value,
                            description: String::new(),
                        })
                        .collect(),
                ),
                token_lifetime,
                signing_alg: signing_alg
                    .map(|alg| wire_value("--signing-alg", &alg))
                    .transpose()?,
                token_dialect: dialect
                    .map(|dialect| wire_value("--dialect", &dialect))
                    .transpose()?,
                ..ApiBody::default()
            };
            let created: ApiView = api
                .call(Method::POST, "resource-servers", Some(&body))
                .await?;
            print_one(&created, json);
        }
        ApisCommand::List => print_rows(&api.list::<ApiView>("resource-servers").await?, json),
        ApisCommand::Delete { id } => {
            api.delete(&format!("resource-servers/{id}"), None::<&()>)
                .await?;
            println!("deleted API {id} and its grants");
        }
    }
    Ok(())
}

async fn grants(api: &ManagementClient, command: GrantsCommand, json: bool) -> anyhow::Result<()> {
    match command {
        GrantsCommand::Create {
            client_id,
            audience,
            scopes,
        } => {
            let body = GrantBody {
                client_id: Some(client_id),
                audience: Some(audience),
                scope: Some(scopes),
            };
            let created: GrantView = api.call(Method::POST, "client-grants", Some(&body)).await?;
            print_one(&created, json);
        }
        GrantsCommand::List => print_rows(&api.list::<GrantView>("client-grants").await?, json),
        GrantsCommand::Delete { id } => {
            api.delete(&format!("client-grants/{id}"), None::<&()>)
                .await?;
            println!("deleted grant {id}");
        }
    }
    Ok(())
}

async fn keys(api: &ManagementClient, command: KeysCommand, json: bool) -> anyhow::Result<()> {
    let keys: Vec<SigningKeyView> = match command {
        KeysCommand::List => api.call(Method::GET, "keys/signing", None::<&()>).await?,
        KeysCommand::Rotate => {
            api.call(Method::POST, "keys/signing/rotate", None::<&()>)
                .await?
        }
    };
    print_rows(&keys, json);
    Ok(())
}

async fn cluster(
    api: &ManagementClient,
    command: ClusterCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Status => {
            let status: NodesView = api.call(Method::GET, "nodes", None::<&()>).await?;
            if json {
                print_json(&status);
                return Ok(());
            }
            match status.revision {
                Some(revision) => println!("revision {revision}"),
                None => println!("one node on its embedded store (no shared database)"),
            }
            print_rows(&status.nodes, false);
        }
    }
    Ok(())
}
