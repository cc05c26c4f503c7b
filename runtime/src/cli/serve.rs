//! `hookd serve`: runs the token server until SIGTERM or Ctrl-C.

use std::process::ExitCode;

use anyhow::Context as _;
use hookd::app::{self, ServeConfig};

use super::ServeArgs;

/// A multi-threaded runtime for the server.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hookd")
        .build()?)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// `HOOKD_ADMIN_CLIENT_ID` and `HOOKD_ADMIN_CLIENT_SECRET`, both or neither.
fn admin_credentials_from_env() -> anyhow::Result<Option<(String, String)>> {
    let id = std::env::var("HOOKD_ADMIN_CLIENT_ID")
        .ok()
        .filter(|v| !v.is_empty());
    let secret = std::env::var("HOOKD_ADMIN_CLIENT_SECRET")
        .ok()
        .filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        (None, None) => Ok(None),
        _ => anyhow::bail!(
            "set both HOOKD_ADMIN_CLIENT_ID and HOOKD_ADMIN_CLIENT_SECRET, or neither"
        ),
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut config = ServeConfig::new(args.data_dir, args.server.listen);
        config.cache_dir = args.cache_dir;
        config.issuer = args.server.issuer;
        config.metrics_listen = args.server.metrics_listen;
        config.change_issuer = args.change_issuer;
        config.admin_credentials = admin_credentials_from_env()?;
        let from_env = std::env::var("HOOKD_SECRETS_KEY")
            .ok()
            .filter(|v| !v.is_empty());
        config.secrets_key = match (from_env, &args.secrets_key_file) {
            (Some(_), Some(_)) => {
                anyhow::bail!("set HOOKD_SECRETS_KEY or --secrets-key-file, not both")
            }
            (key, None) => key,
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("could not read the secrets key {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
        };
        config.database = args.database;
        config.max_staleness = args.max_staleness;
        config.change_history = args.change_history;
        config.node_name = args.node_name;
        config.database_ca_file = args.database_ca_file;
        let prepared = app::prepare(config).await?;
        tracing::info!(addr = %prepared.addr, issuer = %prepared.tenant.issuer, "hookd listening");
        if let Some(metrics) = prepared.metrics_addr {
            tracing::info!(addr = %metrics, "metrics at /metrics");
        }
        if !super::json_logs() {
            eprintln!(
                "hookd listening on http://{} (issuer {})",
                prepared.addr, prepared.tenant.issuer
            );
        }
        prepared.server.run(shutdown_signal()).await;
        prepared.store.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}
