//! `hookd hooks test`: the local runner. Loads a module, runs it once on an event and reports
//! the outcome, log, fuel and time (Auth0's Runner, Shopify's function-runner).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use hookd::hooks::{
    ArtifactCacheSettings, CredentialsExchangeEvent, EngineSettings, ExtensibilityPoint,
    HookEngine, HookError, HookLimits, Invocation, LoadSource, LoadedHook,
};
use serde_json::json;

use super::HooksTestArgs;

/// The default cache: `$XDG_CACHE_HOME/hookd` or `~/.cache/hookd`.
fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|base| base.join("hookd").join("compiled"))
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// An engine for one local run, caching compiled hooks in `cache_dir` (default
/// `~/.cache/hookd/compiled`) unless `no_cache`.
pub(super) fn local_engine(
    cache_dir: Option<PathBuf>,
    no_cache: bool,
) -> anyhow::Result<HookEngine> {
    let cache = if no_cache {
        None
    } else {
        cache_dir
            .or_else(default_cache_dir)
            .map(|dir| {
                ArtifactCacheSettings::with_local_key(dir.clone()).with_context(|| {
                    format!("could not open the compiled-hook cache {}", dir.display())
                })
            })
            .transpose()?
    };
    Ok(HookEngine::new(EngineSettings {
        max_concurrency: 1,
        cache,
    })?)
}

pub fn run(args: HooksTestArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    let bytes = super::hook_source::read_hook_module(&args.module)?;
    let event_text = std::fs::read_to_string(&args.event)
        .with_context(|| format!("could not read {}", args.event.display()))?;
    let event: CredentialsExchangeEvent = serde_json::from_str(&event_text).with_context(|| {
        format!(
            "{} is not a credentials-exchange event",
            args.event.display()
        )
    })?;

    let defaults = HookLimits::default();
    let limits = HookLimits {
        fuel: args.fuel.unwrap_or(defaults.fuel),
        memory_bytes: args.memory_bytes.unwrap_or(defaults.memory_bytes),
        timeout_ms: args.timeout_ms.unwrap_or(defaults.timeout_ms),
        ..defaults
    };
    let engine = local_engine(args.cache_dir.clone(), args.no_cache)?;
    let hook = engine
        .load(ExtensibilityPoint::CredentialsExchange, &bytes, limits)
        .with_context(|| format!("{} cannot be used as a hook", args.module.display()))?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let invocation = runtime.block_on(engine.invoke_credentials_exchange(&hook, event));

    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&args, &hook, &invocation))?
        );
    } else {
        print!("{}", report_text(&args, &hook, &invocation));
    }
    Ok(match &invocation.result {
        Ok(_) | Err(HookError::Denied(_)) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    })
}

fn load_text(source: LoadSource) -> String {
    match source {
        LoadSource::Compiled { took } => format!("compiled in {:.1} ms", millis(took)),
        LoadSource::Cached { took } => format!("loaded from cache in {:.2} ms", millis(took)),
    }
}

fn report_text(args: &HooksTestArgs, hook: &LoadedHook, invocation: &Invocation) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let value = super::terminal::safe(value);
        let mut lines = value.lines();
        out.push_str(&format!("{label:<9}{}\n", lines.next().unwrap_or_default()));
        for more in lines {
            out.push_str(&format!("{:<9}{more}\n", ""));
        }
    };
    line(
        "hook",
        &format!(
            "{} ({} bytes, sha256 {}…, {})",
            args.module.display(),
            hook.size_bytes,
            &hook.sha256[..12],
            load_text(hook.source)
        ),
    );
    match &invocation.result {
        Ok(changes) => {
            line("outcome", "allow");
            let scope = match &changes.scope {
                None => "(unchanged)".to_owned(),
                Some(list) if list.is_empty() => "(none)".to_owned(),
                Some(list) => list.join(" "),
            };
            line("scope", &scope);
            let claims = serde_json::to_string_pretty(&changes.claims).unwrap_or_default();
            line("claims", &claims);
        }
        Err(HookError::Denied(denial)) => {
            line(
                "outcome",
                &format!("deny {}: {}", denial.code, denial.description),
            );
        }
        Err(error) => line("outcome", &format!("failed ({}): {error}", error.kind())),
    }
    let log = &invocation.log;
    let mut log_text = if log.output.is_empty() {
        "(empty)".to_owned()
    } else {
        log.output.trim_end().to_owned()
    };
    if log.truncated {
        log_text.push_str("\n[log truncated]");
    }
    line("log", &log_text);
    for notice in &log.notices {
        line("note", notice);
    }
    line(
        "fuel",
        &format!("{} of {}", invocation.fuel_used, hook.limits.fuel),
    );
    line("time", &format!("{:.2} ms", millis(invocation.elapsed)));
    out
}

fn report_json(
    args: &HooksTestArgs,
    hook: &LoadedHook,
    invocation: &Invocation,
) -> serde_json::Value {
    let (load, load_ms) = match hook.source {
        LoadSource::Compiled { took } => ("compiled", millis(took)),
        LoadSource::Cached { took } => ("cached", millis(took)),
    };
    let mut report = json!({
        "module": {
            "path": args.module,
            "sha256": hook.sha256,
            "size_bytes": hook.size_bytes,
            "load": load,
            "load_ms": load_ms,
        },
        "log": invocation.log,
        "fuel_used": invocation.fuel_used,
        "fuel_limit": hook.limits.fuel,
        "elapsed_ms": millis(invocation.elapsed),
    });
    let outcome = match &invocation.result {
        Ok(changes) => {
            json!({"outcome": "allow", "scope": changes.scope, "claims": changes.claims})
        }
        Err(HookError::Denied(denial)) => json!({"outcome": "deny", "denial": denial}),
        Err(error) => json!({
            "outcome": "error",
            "error": {"kind": error.kind(), "message": error.to_string()},
        }),
    };
    if let (Some(report), Some(outcome)) = (report.as_object_mut(), outcome.as_object()) {
        report.extend(outcome.clone());
    }
    report
}
