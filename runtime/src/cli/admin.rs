//! The admin commands (`hookd hooks|clients|apis|grants|keys ...`): each is one or two
//! Management API calls, printed as a table or, with `--json`, as the API's JSON.

use std::process::ExitCode;

use http::Method;
use serde_json::{Value, json};

use super::api::{ManagementClient, pairs, print};
use super::{
    AdminArgs, ApisCommand, ClientsCommand, GrantsCommand, HooksCommand, KeysCommand,
    SecretsCommand,
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
}

const HOOK_COLUMNS: &[(&str, &str)] = &[
    ("ID", "/id"),
    ("NAME", "/name"),
    ("TRIGGER", "/triggerId"),
    ("ENABLED", "/enabled"),
    ("STATE", "/state"),
    ("ACTIVE VERSION", "/active_version"),
];
const CLIENT_COLUMNS: &[(&str, &str)] = &[
    ("CLIENT ID", "/client_id"),
    ("NAME", "/name"),
    ("APP TYPE", "/app_type"),
    ("GRANT TYPES", "/grant_types"),
];
const API_COLUMNS: &[(&str, &str)] = &[
    ("ID", "/id"),
    ("IDENTIFIER", "/identifier"),
    ("NAME", "/name"),
    ("ALG", "/signing_alg"),
    ("DIALECT", "/token_dialect"),
    ("LIFETIME", "/token_lifetime"),
];
const GRANT_COLUMNS: &[(&str, &str)] = &[
    ("ID", "/id"),
    ("CLIENT ID", "/client_id"),
    ("AUDIENCE", "/audience"),
    ("SCOPE", "/scope"),
];

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
                    let created = api
                        .call(
                            Method::POST,
                            "hooks",
                            Some(json!({"name": name, "triggerId": trigger, "enabled": enable})),
                        )
                        .await?;
                    created["id"].as_str().unwrap_or_default().to_owned()
                }
            };
            let uploaded = api.upload(&id, bytes).await?;
            let mut hook = uploaded["hook"].clone();
            if enable && hook["enabled"] != true {
                hook = api
                    .call(
                        Method::PATCH,
                        &format!("hooks/{id}"),
                        Some(json!({"enabled": true})),
                    )
                    .await?;
            }
            if json {
                print(&uploaded, &[], true);
            } else {
                println!(
                    "deployed {} as version {} of hook {:?} ({})",
                    module.display(),
                    uploaded["version"]["sha256"].as_str().unwrap_or("?"),
                    name,
                    if hook["enabled"] == true {
                        "enabled: running now"
                    } else {
                        "disabled"
                    }
                );
            }
        }
        HooksCommand::List => print(&api.list("hooks").await?, HOOK_COLUMNS, json),
        HooksCommand::Versions { hook } => {
            let id = api.hook_id(&hook).await?;
            let versions = api
                .call(Method::GET, &format!("hooks/{id}/versions"), None)
                .await?;
            print(
                &versions,
                &[
                    ("SHA256", "/sha256"),
                    ("SIZE", "/size"),
                    ("UPLOADED AT", "/uploaded_at"),
                    ("ACTIVE", "/active"),
                ],
                json,
            );
        }
        HooksCommand::Enable { hook } => {
            let id = api.hook_id(&hook).await?;
            let updated = api
                .call(
                    Method::PATCH,
                    &format!("hooks/{id}"),
                    Some(json!({"enabled": true})),
                )
                .await?;
            print(&updated, HOOK_COLUMNS, json);
        }
        HooksCommand::Disable { hook } => {
            let id = api.hook_id(&hook).await?;
            let updated = api
                .call(
                    Method::PATCH,
                    &format!("hooks/{id}"),
                    Some(json!({"enabled": false})),
                )
                .await?;
            print(&updated, HOOK_COLUMNS, json);
        }
        HooksCommand::Rollback { hook, version } => {
            let id = api.hook_id(&hook).await?;
            let updated = api
                .call(
                    Method::POST,
                    &format!("hooks/{id}/rollback"),
                    Some(json!({"version": version})),
                )
                .await?;
            print(&updated, HOOK_COLUMNS, json);
        }
        HooksCommand::Logs { hook, follow } => {
            let id = api.hook_id(&hook).await?;
            let columns: &[(&str, &str)] = &[
                ("TIME", "/time"),
                ("REQUEST ID", "/request_id"),
                ("CLIENT", "/client_id"),
                ("RESULT", "/outcome/result"),
                ("µs", "/duration_us"),
                ("FUEL", "/fuel_used"),
                ("OUTPUT", "/log/output"),
            ];
            if follow {
                api.follow(&format!("hooks/{id}/logs?follow"), |entry| {
                    if json {
                        println!("{entry}");
                    } else {
                        let cells: Vec<String> = columns
                            .iter()
                            .map(|(_, field)| match entry.pointer(field) {
                                Some(Value::String(text)) => {
                                    super::terminal::safe(&text.trim_end().replace('\n', " | "))
                                }
                                Some(Value::Null) | None => "-".to_owned(),
                                Some(other) => other.to_string(),
                            })
                            .collect();
                        println!("{}", cells.join("  "));
                    }
                })
                .await?;
            } else {
                let entries = api
                    .call(Method::GET, &format!("hooks/{id}/logs"), None)
                    .await?;
                print(&entries, columns, json);
            }
        }
        HooksCommand::Secrets(command) => secrets(api, command, json).await?,
    }
    Ok(())
}

async fn secrets(
    api: &ManagementClient,
    command: SecretsCommand,
    json: bool,
) -> anyhow::Result<()> {
    let names = |value: &Value| -> Value {
        Value::Array(
            value
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .map(|name| json!({"name": name}))
                .collect(),
        )
    };
    match command {
        SecretsCommand::Set { hook, values } => {
            let id = api.hook_id(&hook).await?;
            let path = format!("hooks/{id}/secrets");
            let values = pairs(&values)?;
            let existing = api.call(Method::GET, &path, None).await?;
            // Auth0's API splits add (POST) from change (PATCH): send each its names.
            let (mut add, mut change) = (serde_json::Map::new(), serde_json::Map::new());
            for (name, value) in values.as_object().into_iter().flatten() {
                if existing.get(name).is_some() {
                    change.insert(name.clone(), value.clone());
                } else {
                    add.insert(name.clone(), value.clone());
                }
            }
            let mut last = existing;
            if !add.is_empty() {
                last = api
                    .call(Method::POST, &path, Some(Value::Object(add)))
                    .await?;
            }
            if !change.is_empty() {
                last = api
                    .call(Method::PATCH, &path, Some(Value::Object(change)))
                    .await?;
            }
            print(&names(&last), &[("SECRET", "/name")], json);
        }
        SecretsCommand::Unset {
            hook,
            names: to_remove,
        } => {
            let id = api.hook_id(&hook).await?;
            api.call(
                Method::DELETE,
                &format!("hooks/{id}/secrets"),
                Some(json!(to_remove)),
            )
            .await?;
            let left = api
                .call(Method::GET, &format!("hooks/{id}/secrets"), None)
                .await?;
            print(&names(&left), &[("SECRET", "/name")], json);
        }
        SecretsCommand::List { hook } => {
            let id = api.hook_id(&hook).await?;
            let listed = api
                .call(Method::GET, &format!("hooks/{id}/secrets"), None)
                .await?;
            print(&names(&listed), &[("SECRET", "/name")], json);
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
            let body = json!({"name": name, "client_metadata": pairs(&metadata)?});
            let created = api.call(Method::POST, "clients", Some(body)).await?;
            if json {
                print(&created, &[], true);
            } else {
                print(&created, CLIENT_COLUMNS, false);
                println!(
                    "client_secret: {} (shown once: store it now)",
                    created["client_secret"].as_str().unwrap_or("?")
                );
            }
        }
        ClientsCommand::List => print(&api.list("clients").await?, CLIENT_COLUMNS, json),
        ClientsCommand::Delete { client_id } => {
            api.call(Method::DELETE, &format!("clients/{client_id}"), None)
                .await?;
            println!("deleted client {client_id} and its grants");
        }
        ClientsCommand::RotateSecret { client_id } => {
            let rotated = api
                .call(
                    Method::POST,
                    &format!("clients/{client_id}/rotate-secret"),
                    None,
                )
                .await?;
            if json {
                print(&rotated, &[], true);
            } else {
                println!(
                    "client_secret: {} (shown once; the old secret no longer works)",
                    rotated["client_secret"].as_str().unwrap_or("?")
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
            let mut body = json!({
                "identifier": identifier,
                "scopes": scopes.iter().map(|s| json!({"value": s})).collect::<Vec<_>>(),
            });
            for (field, value) in [
                ("name", name.map(Value::from)),
                ("signing_alg", signing_alg.map(Value::from)),
                ("token_dialect", dialect.map(Value::from)),
                ("token_lifetime", token_lifetime.map(Value::from)),
            ] {
                if let (Some(value), Some(object)) = (value, body.as_object_mut()) {
                    object.insert(field.to_owned(), value);
                }
            }
            let created = api
                .call(Method::POST, "resource-servers", Some(body))
                .await?;
            print(&created, API_COLUMNS, json);
        }
        ApisCommand::List => print(&api.list("resource-servers").await?, API_COLUMNS, json),
        ApisCommand::Delete { id } => {
            api.call(Method::DELETE, &format!("resource-servers/{id}"), None)
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
            let body = json!({"client_id": client_id, "audience": audience, "scope": scopes});
            let created = api.call(Method::POST, "client-grants", Some(body)).await?;
            print(&created, GRANT_COLUMNS, json);
        }
        GrantsCommand::List => print(&api.list("client-grants").await?, GRANT_COLUMNS, json),
        GrantsCommand::Delete { id } => {
            api.call(Method::DELETE, &format!("client-grants/{id}"), None)
                .await?;
            println!("deleted grant {id}");
        }
    }
    Ok(())
}

async fn keys(api: &ManagementClient, command: KeysCommand, json: bool) -> anyhow::Result<()> {
    let columns: &[(&str, &str)] = &[
        ("KID", "/kid"),
        ("ALG", "/alg"),
        ("CURRENT", "/current"),
        ("NEXT", "/next"),
        ("PREVIOUS", "/previous"),
    ];
    let keys = match command {
        KeysCommand::List => api.call(Method::GET, "keys/signing", None).await?,
        KeysCommand::Rotate => api.call(Method::POST, "keys/signing/rotate", None).await?,
    };
    print(&keys, columns, json);
    Ok(())
}
