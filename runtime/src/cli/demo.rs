//! `hookd demo`: seeds a data directory with a demo application, API, grant and the given
//! hook (enabled), starts the server and prints a curl command that gets a token.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use std::io::Write as _;

use anyhow::Context as _;
use hookd::app::{self, ServeConfig};
use hookd::hooks::{EngineSettings, ExtensibilityPoint, HookEngine};
use hookd::management::{self, NewApi};
use hookd::store::Store;
use serde::{Deserialize, Serialize};

use super::DemoArgs;
use super::serve::{runtime, shutdown_signal};

const AUDIENCE: &str = "https://api.example.com/";

/// What the demo created, kept so a second run can print the same curl line.
#[derive(Debug, Serialize, Deserialize)]
struct DemoCredentials {
    client_id: String,
    client_secret: String,
    audience: String,
}

async fn seed(data_dir: &Path, hook: &[u8]) -> anyhow::Result<DemoCredentials> {
    let store = Store::open(data_dir)?;
    let secret_box = app::load_secret_box(None, data_dir)?;
    let hasher = app::client_secret_hasher(&store, &secret_box).await?;
    let mut metadata = BTreeMap::new();
    metadata.insert("tier".to_owned(), "premium".to_owned());
    let (client, secret) =
        management::create_client(&store, &hasher, "demo-service", metadata).await?;
    management::create_api(
        &store,
        &secret_box,
        NewApi::new(AUDIENCE, "Demo API", &["read:reports", "write:reports"]),
    )
    .await?;
    management::create_grant(
        &store,
        &client.client_id,
        AUDIENCE,
        &["read:reports", "write:reports"],
    )
    .await?;
    let engine = HookEngine::new(EngineSettings::default())?;
    management::create_hook(
        &store,
        &engine,
        "seed",
        ExtensibilityPoint::CredentialsExchange,
        hook,
        true,
        hookd::clock::unix_now(),
    )
    .await
    .context("the demo hook was refused")?;
    store.flush()?;
    Ok(DemoCredentials {
        client_id: client.client_id,
        client_secret: secret,
        audience: AUDIENCE.to_owned(),
    })
}

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("could not create {}", args.data_dir.display()))?;
    let credentials_path = args.data_dir.join("demo.json");
    let credentials: DemoCredentials = match std::fs::read_to_string(&credentials_path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is damaged; delete the directory",
                credentials_path.display()
            )
        })?,
        Err(_) => {
            let hook = std::fs::read(&args.hook)
                .with_context(|| format!("could not read {}", args.hook.display()))?;
            let credentials = runtime.block_on(seed(&args.data_dir, &hook))?;
            hookd::files::write_private(
                &credentials_path,
                serde_json::to_string_pretty(&credentials)?.as_bytes(),
            )?;
            credentials
        }
    };

    runtime.block_on(async {
        let mut config = ServeConfig::new(args.data_dir.clone(), args.server.listen);
        config.issuer = args.server.issuer;
        config.metrics_listen = args.server.metrics_listen;
        let prepared = app::prepare(config).await?;
        let base = format!("http://{}", prepared.addr);
        // The server must outlive its stdout (`hookd demo | head -3`): write errors are ignored.
        let banner = format!(
            "hookd demo: token server on {base}/ with hook \"seed\" enabled (data in {})\n\
             Get a token:\n  \
             curl -s {base}/oauth/token -u '{}:{}' -d grant_type=client_credentials -d audience={}\n\
             Verify it with the keys at {base}/.well-known/jwks.json. Ctrl-C stops the server.\n",
            args.data_dir.display(),
            credentials.client_id,
            credentials.client_secret,
            credentials.audience
        );
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
        drop(stdout);
        prepared.server.run(shutdown_signal()).await;
        prepared.store.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}
