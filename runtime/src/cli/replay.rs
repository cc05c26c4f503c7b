//! `hookd hooks replay`: runs a recorded invocation again, on the server against a version of
//! the hook or locally against a module file, and shows the two outcomes side by side.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use hookd::hooklog::LoggedOutcome;
use hookd::hooks::{ExtensibilityPoint, TokenChanges};
use hookd::proto::{HookView, RecordedEvent, ReplayBody, ReplayView, ReplayedCall};
use http::Method;

use super::api::ManagementClient;
use super::terminal::safe;

/// What `hookd hooks replay` was asked.
pub struct ReplayArgs {
    /// The token request whose event runs again.
    pub request_id: String,
    /// The hook, when the caller named it.
    pub hook: Option<String>,
    /// A module to run locally instead of a version on the server.
    pub module: Option<PathBuf>,
    /// The version to run on the server (default: the active one).
    pub version: Option<String>,
    /// Secrets for a local run.
    pub secrets: BTreeMap<String, String>,
}

/// The hook that recorded `request_id` (the one named, or the first of all hooks that did),
/// and its recorded event.
async fn find_recorded(
    api: &ManagementClient,
    request_id: &str,
    hook: Option<&str>,
) -> anyhow::Result<(HookView, RecordedEvent)> {
    let hooks: Vec<HookView> = api.list("hooks").await?;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("request_id", request_id)
        .finish();
    for candidate in hooks
        .into_iter()
        .filter(|candidate| hook.is_none_or(|h| candidate.id == h || candidate.name == h))
    {
        let mut recorded: Vec<RecordedEvent> = api
            .call(
                Method::GET,
                &format!("hooks/{}/events?{query}", candidate.id),
                None::<&()>,
            )
            .await?;
        if let Some(found) = recorded.pop() {
            return Ok((candidate, found));
        }
    }
    Err(anyhow!(
        "no hook{} has a recorded invocation for request {request_id} (the last 200 per hook \
         are kept, in memory, on the node that ran them)",
        hook.map(|h| format!(" named {h:?}")).unwrap_or_default()
    ))
}

/// Runs the replay `args` asks for.
pub async fn replay(api: &ManagementClient, args: ReplayArgs) -> anyhow::Result<ReplayView> {
    let (hook, recorded) = find_recorded(api, &args.request_id, args.hook.as_deref()).await?;
    let Some(module) = args.module else {
        let body = ReplayBody {
            request_id: args.request_id,
            version: args.version,
        };
        return api
            .call(
                Method::POST,
                &format!("hooks/{}/replay", hook.id),
                Some(&body),
            )
            .await;
    };
    let bytes = super::hook_source::read_hook_module(&module)?;
    let mut event = recorded.event.clone();
    for (name, value) in args.secrets {
        event.context.secrets.insert(name, value);
    }
    let engine = super::hooks_test::local_engine(None, false)?;
    let loaded = engine
        .load(ExtensibilityPoint::CredentialsExchange, &bytes, hook.limits)
        .with_context(|| format!("{} cannot be used as a hook", module.display()))?;
    let invocation = engine.invoke_credentials_exchange(&loaded, event).await;
    Ok(ReplayView {
        recorded,
        replayed: ReplayedCall {
            version: module.display().to_string(),
            outcome: LoggedOutcome::of(&invocation.result, false),
            changes: invocation.result.as_ref().ok().cloned(),
            log: invocation.log,
            fuel_used: invocation.fuel_used,
            duration_us: invocation.elapsed.as_micros() as u64,
        },
    })
}

fn outcome_text(outcome: &LoggedOutcome) -> String {
    match outcome {
        LoggedOutcome::Allowed => "allowed".to_owned(),
        LoggedOutcome::Denied { code, description } => format!("denied {code}: {description}"),
        LoggedOutcome::Failed { kind, message, .. } => format!("failed {kind}: {message}"),
    }
}

fn scope_text(changes: Option<&TokenChanges>) -> String {
    match changes.map(|c| c.scope.as_ref()) {
        None => "-".to_owned(),
        Some(None) => "(granted)".to_owned(),
        Some(Some(scopes)) => scopes.join(" "),
    }
}

fn short(version: &str) -> &str {
    if version.len() == 64 && version.bytes().all(|b| b.is_ascii_hexdigit()) {
        &version[..12]
    } else {
        version
    }
}

/// The two runs in two columns: version, outcome, scope, each claim, fuel and time; then what
/// the replayed run logged.
pub fn side_by_side(view: &ReplayView) -> String {
    let (then, now) = (&view.recorded, &view.replayed);
    let mut rows: Vec<(String, String, String)> = vec![
        (
            "version".into(),
            short(&then.version).into(),
            short(&now.version).into(),
        ),
        (
            "outcome".into(),
            outcome_text(&then.outcome),
            outcome_text(&now.outcome),
        ),
        (
            "scope".into(),
            scope_text(then.changes.as_ref()),
            scope_text(now.changes.as_ref()),
        ),
    ];
    let claims =
        |changes: Option<&TokenChanges>| changes.map(|c| c.claims.clone()).unwrap_or_default();
    let (before, after) = (claims(then.changes.as_ref()), claims(now.changes.as_ref()));
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        let shown = |value: Option<&serde_json::Value>| value.map_or("-".into(), |v| v.to_string());
        rows.push((
            format!("claim {name}"),
            shown(before.get(name)),
            shown(after.get(name)),
        ));
    }
    let compared = rows.len();
    rows.push((
        "fuel".into(),
        then.fuel_used.to_string(),
        now.fuel_used.to_string(),
    ));
    rows.push((
        "time".into(),
        format!("{} µs", then.duration_us),
        format!("{} µs", now.duration_us),
    ));
    // A cell is one line of at most CELL characters (a failure message can be 4 KiB; `--json`
    // has it whole).
    const CELL: usize = 60;
    let cell = |text: &str| {
        let text = safe(text);
        if text.chars().count() <= CELL {
            text
        } else {
            format!("{}…", text.chars().take(CELL - 1).collect::<String>())
        }
    };
    let rows: Vec<[String; 3]> = rows
        .into_iter()
        .map(|(what, a, b)| [safe(&what), cell(&a), cell(&b)])
        .collect();
    let width = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .chain([8])
            .max()
            .unwrap_or(8)
    };
    let (w0, w1) = (width(0), width(1));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "request {} ({})",
        safe(&then.request_id),
        if then.canary { "canary" } else { "recorded" }
    );
    let _ = writeln!(out, "{:w0$}  {:w1$}    replayed", "", "recorded");
    // Differences that matter are marked; fuel and time always differ a little.
    for (n, row) in rows.iter().enumerate() {
        let mark = if n < compared && row[1] != row[2] {
            "≠"
        } else {
            " "
        };
        let _ = writeln!(out, "{:w0$}  {:w1$}  {mark} {}", row[0], row[1], row[2]);
    }
    let lines: Vec<String> = now
        .log
        .output
        .trim_end()
        .lines()
        .map(str::to_owned)
        .chain(now.log.notices.iter().map(|n| format!("[hookd] {n}")))
        .collect();
    if !lines.is_empty() {
        let _ = writeln!(out, "replayed log:");
        for line in lines {
            let _ = writeln!(out, "  {}", safe(&line));
        }
    }
    out
}
