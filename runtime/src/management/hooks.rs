//! Hooks: creation, settings, module uploads, versions and rollback, with the one-enabled-hook
//! rule, and applying every change to the live registry so that what the API reports and what
//! the next token runs agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Caller, Management, ManagementError};
use crate::hooklog::HookLogBook;
use crate::hooks::{ExtensibilityPoint, HookEngine, HookLimits, LoadedHook};
use crate::metrics::Metrics;
use crate::model::{Canary, CanaryState, FailurePolicy, Hook, HookVersion, Shadow};
use crate::proto::{
    CanaryBody, CanaryView, HookLogEntry, HookPatch, HookState, HookVersionView, HookView, NewHook,
    ShadowBody, ShadowView, UploadedView,
};
use crate::registry::{
    ActiveHook, CanaryJudge, CanaryRun, CanaryWithdrawal, HookRegistry, RegisteredHook, ShadowRun,
    ShadowWorker, UnavailableHook,
};
use crate::secrets::{SecretBox, random_alphanumeric};
use crate::store::RecordStore;
use crate::store::Store;

/// Auth0's hook name rule: alphanumerics, spaces and dashes, not starting or ending with
/// a space or dash.
fn valid_hook_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_alphanumeric() || *b == b' ' || *b == b'-';
    !bytes.is_empty()
        && bytes.iter().all(inner)
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Refuses a name outside Auth0's hook-name pattern, naming the field.
fn check_hook_name(name: &str) -> Result<(), ManagementError> {
    if valid_hook_name(name) {
        return Ok(());
    }
    Err(ManagementError::Invalid(format!(
        "name: {name:?} must be letters, digits, spaces and dashes, starting and ending with \
         a letter or digit"
    )))
}

/// A new hook's record, with no module yet: validated name and limits, a fresh id, and
/// enabled as asked; when not asked, enabled only if it is the first hook of its trigger.
async fn new_hook_record(
    store: &impl RecordStore,
    name: &str,
    trigger: ExtensibilityPoint,
    enable: Option<bool>,
    limits: HookLimits,
    failure_policy: FailurePolicy,
) -> Result<Hook, ManagementError> {
    check_hook_name(name)?;
    limits
        .validate()
        .map_err(|error| ManagementError::Invalid(format!("limits: {error}")))?;
    let first_for_trigger = store
        .hooks()
        .await?
        .iter()
        .all(|hook| hook.trigger != trigger);
    Ok(Hook {
        id: random_alphanumeric(20),
        name: name.to_owned(),
        trigger,
        enabled: enable.unwrap_or(first_for_trigger),
        versions: Vec::new(),
        active_version: None,
        limits,
        failure_policy,
        reuse_instances: false,
        secrets: BTreeMap::new(),
        canary: None,
        shadow: None,
    })
}

/// A new hook from an uploaded module. The module is validated (compiled, checked against the
/// trigger's world) before anything is stored. The first hook of a trigger is enabled; later
/// ones start disabled unless `enable` asks otherwise.
pub async fn create_hook(
    store: &impl RecordStore,
    engine: &HookEngine,
    name: &str,
    trigger: ExtensibilityPoint,
    module: &[u8],
    enable: bool,
    now: u64,
) -> Result<Hook, ManagementError> {
    let mut hook = new_hook_record(
        store,
        name,
        trigger,
        Some(enable),
        HookLimits::default(),
        FailurePolicy::FailClosed,
    )
    .await?;
    engine.load(trigger, module, hook.limits)?;
    let sha256 = hex::encode(Sha256::digest(module));
    hook.versions.push(HookVersion {
        sha256: sha256.clone(),
        size: module.len() as u64,
        uploaded_at: now,
    });
    hook.active_version = Some(sha256);
    store.insert_hook(&hook, module).await?;
    Ok(hook)
}

/// Refuses a version that cannot run beside `hook`'s active one (as `field`: `canary` or
/// `shadow`): it must be one of the hook's versions other than the active one, for a share of
/// 1 to 100 %.
fn check_candidate(
    hook: &Hook,
    field: &str,
    version: &str,
    percent: u8,
) -> Result<(), ManagementError> {
    let invalid = |message: String| Err(ManagementError::Invalid(message));
    if hook.active_version.is_none() {
        return invalid(format!(
            "{field}: the hook has no active version to compare with"
        ));
    }
    if hook.active_version.as_deref() == Some(version) {
        return invalid(format!(
            "{field}.version: {version} is already the active version"
        ));
    }
    if !hook.versions.iter().any(|v| v.sha256 == version) {
        return invalid(format!(
            "{field}.version: {version} is not a version of this hook"
        ));
    }
    if !(1..=100).contains(&percent) {
        return invalid(format!("{field}.percent: must be 1 to 100"));
    }
    Ok(())
}

/// A shadow run of `hook` as `body` asks, validated.
fn new_shadow(hook: &Hook, body: ShadowBody, now: u64) -> Result<Shadow, ManagementError> {
    check_candidate(hook, "shadow", &body.version, body.percent)?;
    Ok(Shadow {
        version: body.version,
        percent: body.percent,
        started_at: now,
    })
}

/// Ends what ran beside the active version of `hook` as a candidate once it is the active
/// version itself.
fn end_candidates_now_active(hook: &mut Hook) {
    let active = hook.active_version.as_deref();
    if hook.canary.as_ref().map(|c| c.version.as_str()) == active {
        hook.canary = None;
    }
    if hook.shadow.as_ref().map(|s| s.version.as_str()) == active {
        hook.shadow = None;
    }
}

/// A canary of `hook` as `body` asks, validated: one of its versions other than the active
/// one, a share of 1 to 100 %, and a usable rule.
fn new_canary(hook: &Hook, body: CanaryBody, now: u64) -> Result<Canary, ManagementError> {
    let invalid = |message: String| Err(ManagementError::Invalid(message));
    check_candidate(hook, "canary", &body.version, body.percent)?;
    let rule = body.rule();
    if let Err(error) = rule.validate() {
        return invalid(format!("canary.{error}"));
    }
    Ok(Canary {
        version: body.version,
        percent: body.percent,
        rule,
        started_at: now,
        state: CanaryState::Running,
    })
}

/// What runs beside a hook's active version.
struct Beside {
    canary: Option<Arc<CanaryRun>>,
    shadow: Option<Arc<ShadowRun>>,
}

/// Changes to hooks, written to the store first (one transaction) and then applied to the live
/// registry: enabling, uploading to an enabled hook, or rolling it back swaps the running hook
/// atomically (requests in flight finish on the old one). Changes are serialised so the store
/// and the registry never disagree.
#[derive(Debug)]
pub(super) struct HookChanges {
    pub(super) store: Store,
    pub(super) engine: HookEngine,
    pub(super) registry: Arc<HookRegistry>,
    pub(super) secret_box: Arc<SecretBox>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) hook_log: Arc<HookLogBook>,
    pub(super) changes: tokio::sync::Mutex<()>,
}

impl HookChanges {
    /// Changes over the server's store, engine and registry.
    pub(super) fn new(
        store: Store,
        engine: HookEngine,
        registry: Arc<HookRegistry>,
        secret_box: Arc<SecretBox>,
        metrics: Arc<Metrics>,
        hook_log: Arc<HookLogBook>,
    ) -> Self {
        HookChanges {
            store,
            engine,
            registry,
            secret_box,
            metrics,
            hook_log,
            changes: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads every enabled hook into the registry (at startup). A hook that cannot be loaded
    /// (its module missing, a secret that will not open) does not stop the server: it holds
    /// its trigger as unavailable, so its token requests fail or pass by its failure policy,
    /// and the Management API shows why ([`HookChanges::run_state`]).
    pub(super) async fn load_enabled(&self) -> Result<(), ManagementError> {
        for point in ExtensibilityPoint::ALL {
            if let Some(hook) = self.store.enabled_hook(point).await? {
                self.load_or_mark_unavailable(&hook).await;
            }
        }
        Ok(())
    }

    /// Puts `hook` (the trigger's enabled hook) in the registry, loaded or, when it cannot be
    /// loaded, as unavailable.
    async fn load_or_mark_unavailable(&self, hook: &Hook) {
        match self.prepare(hook).await {
            Ok(Some(loaded)) => {
                let sha256 = loaded.loaded.sha256.clone();
                let replaced = self.registry.enable(loaded);
                // Said when what runs changes, not each time a node re-reads the same hook.
                if replaced.is_none_or(|was| was.id != hook.id || was.loaded.sha256 != sha256) {
                    tracing::info!(hook = %hook.name, trigger = %hook.trigger, version = %sha256, "hook enabled");
                }
            }
            Ok(None) => {
                self.registry.disable(hook.trigger);
            }
            Err(error) => {
                tracing::error!(
                    hook = %hook.name,
                    trigger = %hook.trigger,
                    failure_policy = ?hook.failure_policy,
                    %error,
                    "the enabled hook cannot be loaded: its token requests follow its failure policy"
                );
                self.registry.mark_unavailable(UnavailableHook {
                    id: hook.id.clone(),
                    name: hook.name.clone(),
                    point: hook.trigger,
                    failure_policy: hook.failure_policy,
                    reason: error.to_string(),
                });
            }
        }
    }

    /// Whether `hook` is what its trigger runs right now, as the Management API shows it, and
    /// why when it is unavailable.
    pub(super) fn run_state(&self, hook: &Hook) -> (HookState, Option<String>) {
        if !hook.enabled {
            return (HookState::Disabled, None);
        }
        let Some(active) = &hook.active_version else {
            return (HookState::NoModule, None);
        };
        match self.registry.current(hook.trigger).as_deref() {
            Some(RegisteredHook::Ready(running))
                if running.id == hook.id && running.loaded.sha256 == *active =>
            {
                (HookState::Running, None)
            }
            Some(RegisteredHook::Unavailable(unavailable)) if unavailable.id == hook.id => {
                (HookState::Unavailable, Some(unavailable.reason.clone()))
            }
            _ => (HookState::Pending, None),
        }
    }

    /// The hook's secrets in clear, for the running hook.
    pub(super) fn open_secrets(
        &self,
        hook: &Hook,
    ) -> Result<BTreeMap<String, String>, ManagementError> {
        hook.secrets
            .iter()
            .map(|(name, sealed)| {
                self.secret_box
                    .open(&hook.id, name, sealed)
                    .map(|value| (name.clone(), value))
                    .map_err(|error| ManagementError::Internal(format!("secret {name}: {error}")))
            })
            .collect()
    }

    /// Every hook, optionally only those of one trigger or enabled state.
    pub(super) async fn list(
        &self,
        trigger: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<Vec<Hook>, ManagementError> {
        Ok(self
            .store
            .hooks()
            .await?
            .into_iter()
            .filter(|hook| trigger.is_none_or(|t| hook.trigger.trigger_id() == t))
            .filter(|hook| enabled.is_none_or(|e| hook.enabled == e))
            .collect())
    }

    /// One hook.
    pub(super) async fn get(&self, id: &str) -> Result<Hook, ManagementError> {
        self.store
            .hook(id)
            .await?
            .ok_or_else(|| super::not_found("hook", id))
    }

    /// What the registry runs for `hook`'s trigger, when that is `hook` (any version).
    fn running(&self, hook: &Hook) -> Option<Arc<ActiveHook>> {
        self.registry
            .enabled(hook.trigger)
            .filter(|running| running.id == hook.id)
    }

    /// Version `sha` of `hook` compiled from the store, with the hook's instance reuse, to run
    /// beside its active version.
    async fn load_beside(&self, hook: &Hook, sha: &str) -> Result<LoadedHook, ManagementError> {
        let mut loaded = self.load_version(hook, sha).await?;
        self.engine
            .set_instance_reuse(&mut loaded, hook.reuse_instances);
        Ok(loaded)
    }

    /// What the registry should run for `hook` if it is the trigger's enabled hook: its
    /// active version loaded with its settings, or `None` when it is disabled or has no
    /// module yet. Called before a change is written, so a version that cannot be loaded
    /// fails the change and the store is left as it was.
    pub(super) async fn prepare(
        &self,
        hook: &Hook,
    ) -> Result<Option<Arc<ActiveHook>>, ManagementError> {
        let Some(sha) = hook.active_version.clone().filter(|_| hook.enabled) else {
            return Ok(None);
        };
        let running = self
            .running(hook)
            .filter(|running| running.loaded.sha256 == sha);
        let loaded = match running
            .as_ref()
            .filter(|running| running.loaded.limits == hook.limits)
        {
            // Same code and limits: no need to load again, only the settings change.
            Some(running) => running.loaded.clone(),
            None => self.load_version(hook, &sha).await?,
        };
        let beside = self.prepare_beside(hook).await?;
        self.with_settings(hook, loaded, beside).map(Some)
    }

    /// The canary and shadow run `hook` runs beside its active version.
    async fn prepare_beside(&self, hook: &Hook) -> Result<Beside, ManagementError> {
        Ok(Beside {
            canary: self.prepare_canary(hook).await?,
            shadow: self.prepare_shadow(hook).await?,
        })
    }

    /// The shadow run of `hook`, if one is asked for: the one the registry runs when nothing
    /// about it changed (its worker and counts carry on), else its version loaded afresh
    /// with a new worker.
    async fn prepare_shadow(&self, hook: &Hook) -> Result<Option<Arc<ShadowRun>>, ManagementError> {
        let Some(shadow) = hook.shadow.as_ref().filter(|_| hook.enabled) else {
            return Ok(None);
        };
        let running = self
            .running(hook)
            .and_then(|running| running.shadow.clone())
            .filter(|run| {
                run.loaded.sha256 == shadow.version
                    && run.percent == shadow.percent
                    && run.loaded.limits == hook.limits
                    && run.loaded.reuses_instances() == hook.reuse_instances
            });
        if running.is_some() {
            return Ok(running);
        }
        let loaded = self.load_beside(hook, &shadow.version).await?;
        Ok(Some(ShadowRun::start(
            &hook.id,
            loaded,
            shadow.percent,
            ShadowWorker {
                engine: self.engine.clone(),
                hook_log: self.hook_log.clone(),
            },
            self.metrics.shadow(&hook.id, &shadow.version),
        )))
    }

    /// Version `sha` of `hook` as the registry runs it (active, canary or shadow), or compiled
    /// from the store when it does not run.
    pub(super) async fn running_or_load(
        &self,
        hook: &Hook,
        sha: &str,
    ) -> Result<LoadedHook, ManagementError> {
        let running = self.running(hook).and_then(|running| {
            [
                Some(running.loaded.clone()),
                running.canary.as_ref().map(|run| run.loaded.clone()),
                running.shadow.as_ref().map(|run| run.loaded.clone()),
            ]
            .into_iter()
            .flatten()
            .find(|loaded| loaded.sha256 == sha && loaded.limits == hook.limits)
        });
        match running {
            Some(loaded) => Ok(loaded),
            None => self.load_version(hook, sha).await,
        }
    }

    /// Compiles version `sha` of `hook` from the store, off the async threads.
    async fn load_version(&self, hook: &Hook, sha: &str) -> Result<LoadedHook, ManagementError> {
        let module = self
            .store
            .module(sha)
            .await?
            .ok_or_else(|| ManagementError::Internal(format!("module {sha} is missing")))?;
        let (engine, trigger, limits) = (self.engine.clone(), hook.trigger, hook.limits);
        tokio::task::spawn_blocking(move || engine.load(trigger, &module, limits))
            .await
            .map_err(|error| ManagementError::Internal(error.to_string()))?
            .map_err(ManagementError::from)
    }

    /// The canary `hook` runs beside its active version, if one is running: the one the
    /// registry runs when nothing about it changed (so its judge keeps what it has seen),
    /// else its version loaded afresh.
    async fn prepare_canary(&self, hook: &Hook) -> Result<Option<Arc<CanaryRun>>, ManagementError> {
        let Some(canary) = hook
            .canary
            .as_ref()
            .filter(|canary| hook.enabled && canary.state == CanaryState::Running)
        else {
            return Ok(None);
        };
        let running = self
            .running(hook)
            .and_then(|running| running.canary.clone())
            .filter(|run| run.loaded.sha256 == canary.version);
        if let Some(run) = running {
            if run.judge.withdrawn() {
                // The token path withdrew it a moment ago; recording that is on its way.
                return Ok(None);
            }
            if run.percent == canary.percent
                && run.judge.rule() == canary.rule
                && run.loaded.limits == hook.limits
                && run.loaded.reuses_instances() == hook.reuse_instances
            {
                return Ok(Some(run));
            }
        }
        let loaded = self.load_beside(hook, &canary.version).await?;
        Ok(Some(Arc::new(CanaryRun {
            metrics: self.metrics.hook(&hook.id, &canary.version),
            loaded,
            percent: canary.percent,
            judge: CanaryJudge::new(canary.rule),
        })))
    }

    /// `loaded` (a module of `hook`) with the hook's id, name, failure policy, instance reuse,
    /// secrets, canary and shadow run, ready for the registry.
    fn with_settings(
        &self,
        hook: &Hook,
        mut loaded: LoadedHook,
        beside: Beside,
    ) -> Result<Arc<ActiveHook>, ManagementError> {
        self.engine
            .set_instance_reuse(&mut loaded, hook.reuse_instances);
        Ok(Arc::new(ActiveHook {
            id: hook.id.clone(),
            name: hook.name.clone(),
            failure_policy: hook.failure_policy,
            secrets: self.open_secrets(hook)?,
            metrics: self.metrics.hook(&hook.id, &loaded.sha256),
            loaded,
            canary: beside.canary,
            shadow: beside.shadow,
        }))
    }

    /// Makes the registry run exactly what the store now says is `trigger`'s enabled hook,
    /// after a change was written: `prepared` is what [`Self::prepare`] made for the hook the
    /// change wrote; any other enabled hook keeps running as it is (or is loaded, if it is not
    /// the one running). Nothing enabled, or an enabled hook with no module, runs nothing.
    pub(super) async fn registry_follows_store(
        &self,
        trigger: ExtensibilityPoint,
        prepared: Option<Arc<ActiveHook>>,
    ) -> Result<(), ManagementError> {
        let Some(enabled) = self.store.enabled_hook(trigger).await? else {
            self.registry.disable(trigger);
            return Ok(());
        };
        match prepared.filter(|active| active.id == enabled.id) {
            Some(active) => {
                self.registry.enable(active);
            }
            // The change was to another hook (or the enabled one has no module yet): the
            // enabled one is (re)loaded as it is, and if it cannot be, it stays unavailable
            // rather than failing a change that is written.
            None => self.load_or_mark_unavailable(&enabled).await,
        }
        Ok(())
    }

    /// Makes the registry run what the store says for every trigger, after another node
    /// changed hooks: a version already running is kept (with its canary and shadow run), a
    /// new one is compiled (or taken from the artifact cache) before it is switched to.
    pub(super) async fn follow_store(&self) -> Result<(), ManagementError> {
        let _serialised = self.changes.lock().await;
        for point in ExtensibilityPoint::ALL {
            self.registry_follows_store(point, None).await?;
        }
        Ok(())
    }

    /// Creates a hook with no module yet. The first hook of a trigger is enabled (it runs as
    /// soon as a module is uploaded); later ones start disabled unless `enabled` asks.
    pub(super) async fn create(&self, new: NewHook) -> Result<Hook, ManagementError> {
        let _serialised = self.changes.lock().await;
        let trigger = ExtensibilityPoint::from_trigger_id(&new.trigger_id).ok_or_else(|| {
            ManagementError::Invalid(format!("triggerId: unknown trigger {:?}", new.trigger_id))
        })?;
        let hook = new_hook_record(
            &self.store,
            &new.name,
            trigger,
            new.enabled,
            new.limits.unwrap_or_default(),
            new.failure_policy.unwrap_or_default(),
        )
        .await?;
        let hook = Hook {
            reuse_instances: new.reuse_instances.unwrap_or(false),
            ..hook
        };
        self.store.insert_hook(&hook, &[]).await?;
        // Enabling it disabled the trigger's other hooks; it has no module yet, so the
        // trigger now runs nothing.
        self.registry_follows_store(trigger, None).await?;
        Ok(hook)
    }

    /// Uploads a module as the hook's newest version and makes it the active one (live at
    /// once when the hook is enabled). A module that fails validation stores nothing.
    pub(super) async fn upload(
        &self,
        id: &str,
        module: Vec<u8>,
        now: u64,
    ) -> Result<(Hook, HookVersion), ManagementError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id).await?;
        let (engine, trigger, limits) = (self.engine.clone(), hook.trigger, hook.limits);
        let (module, checked) = tokio::task::spawn_blocking(move || {
            let checked = engine.load(trigger, &module, limits);
            (module, checked)
        })
        .await
        .map_err(|error| ManagementError::Internal(error.to_string()))?;
        let loaded = checked?;
        let sha256 = hex::encode(Sha256::digest(&module));
        let version = HookVersion {
            sha256: sha256.clone(),
            size: module.len() as u64,
            uploaded_at: now,
        };
        hook.versions.retain(|existing| existing.sha256 != sha256);
        hook.versions.push(version.clone());
        hook.active_version = Some(sha256);
        end_candidates_now_active(&mut hook);
        let prepared = if hook.enabled {
            let beside = self.prepare_beside(&hook).await?;
            Some(self.with_settings(&hook, loaded, beside)?)
        } else {
            None
        };
        self.store.add_hook_version(&hook, &module).await?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok((hook, version))
    }

    /// Applies a patch. Enabling disables the trigger's other hooks in the same transaction.
    pub(super) async fn update(
        &self,
        id: &str,
        patch: HookPatch,
        now: u64,
    ) -> Result<Hook, ManagementError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id).await?;
        if let Some(name) = patch.name {
            check_hook_name(&name)?;
            hook.name = name;
        }
        if let Some(limits) = patch.limits {
            limits
                .validate()
                .map_err(|error| ManagementError::Invalid(format!("limits: {error}")))?;
            hook.limits = limits;
        }
        if let Some(policy) = patch.failure_policy {
            hook.failure_policy = policy;
        }
        if let Some(reuse) = patch.reuse_instances {
            hook.reuse_instances = reuse;
        }
        if let Some(enabled) = patch.enabled {
            hook.enabled = enabled;
        }
        match patch.canary {
            None => {}
            Some(Some(body)) => hook.canary = Some(new_canary(&hook, body, now)?),
            Some(None) => {
                if let Some(canary) = hook
                    .canary
                    .as_mut()
                    .filter(|canary| canary.state == CanaryState::Running)
                {
                    canary.state = CanaryState::Withdrawn {
                        at: now,
                        reason: "withdrawn by an operator".to_owned(),
                    };
                }
            }
        }
        match patch.shadow {
            None => {}
            Some(Some(body)) => hook.shadow = Some(new_shadow(&hook, body, now)?),
            Some(None) => hook.shadow = None,
        }
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook).await?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok(hook)
    }

    /// Makes an earlier version the active one (live at once when the hook is enabled).
    pub(super) async fn rollback(&self, id: &str, sha256: &str) -> Result<Hook, ManagementError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id).await?;
        if !hook.versions.iter().any(|version| version.sha256 == sha256) {
            return Err(ManagementError::Invalid(format!(
                "version: {sha256} is not a version of this hook"
            )));
        }
        hook.active_version = Some(sha256.to_owned());
        end_candidates_now_active(&mut hook);
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook).await?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok(hook)
    }

    /// Makes the running canary's version the active one, for every client.
    pub(super) async fn promote_canary(&self, id: &str) -> Result<Hook, ManagementError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id).await?;
        let canary = match hook.canary.take() {
            Some(canary) if canary.state == CanaryState::Running => canary,
            Some(_) => {
                return Err(ManagementError::Invalid(
                    "canary: it was withdrawn; start it again or roll back to its version"
                        .to_owned(),
                ));
            }
            None => {
                return Err(ManagementError::Invalid(
                    "canary: the hook has no canary to promote".to_owned(),
                ));
            }
        };
        hook.active_version = Some(canary.version);
        end_candidates_now_active(&mut hook);
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook).await?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok(hook)
    }

    /// Records a canary the token path withdrew (it serves no one already), unless the hook
    /// has moved on since (deleted, or another canary started).
    pub(super) async fn record_withdrawal(
        &self,
        withdrawal: CanaryWithdrawal,
        now: u64,
    ) -> Result<(), ManagementError> {
        let _serialised = self.changes.lock().await;
        let Some(mut hook) = self.store.hook(&withdrawal.hook_id).await? else {
            return Ok(());
        };
        let Some(canary) = hook.canary.as_mut().filter(|canary| {
            canary.version == withdrawal.version && canary.state == CanaryState::Running
        }) else {
            return Ok(());
        };
        canary.state = CanaryState::Withdrawn {
            at: now,
            reason: withdrawal.reason,
        };
        self.metrics
            .canary_withdrawn(&withdrawal.hook_id, &withdrawal.version);
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook).await?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok(())
    }

    /// Deletes a hook (stopping it if it runs).
    pub(super) async fn delete(&self, id: &str) -> Result<(), ManagementError> {
        let _serialised = self.changes.lock().await;
        let hook = self.store.delete_hook(id).await?;
        self.registry_follows_store(hook.trigger, None).await
    }
}

impl Management {
    /// A hook as the Management API shows it, with whether it is what its trigger runs.
    fn hook_view(&self, hook: Hook) -> HookView {
        let (state, state_reason) = self.hooks.run_state(&hook);
        let canary = hook
            .canary
            .clone()
            .map(|canary| self.canary_view(&hook, canary));
        let shadow = hook
            .shadow
            .clone()
            .map(|shadow| self.shadow_view(&hook, shadow));
        HookView {
            trigger_id: hook.trigger.trigger_id().to_owned(),
            id: hook.id,
            name: hook.name,
            enabled: hook.enabled,
            dependencies: BTreeMap::new(),
            active_version: hook.active_version,
            versions: hook.versions,
            limits: hook.limits,
            failure_policy: hook.failure_policy,
            reuse_instances: hook.reuse_instances,
            state,
            state_reason,
            canary,
            shadow,
        }
    }

    /// `shadow` of `hook` as the API shows it, with this node's counts while it runs.
    fn shadow_view(&self, hook: &Hook, shadow: Shadow) -> ShadowView {
        let observed = self
            .hooks
            .running(hook)
            .and_then(|running| running.shadow.clone())
            .filter(|run| run.loaded.sha256 == shadow.version)
            .map(|run| run.observed());
        ShadowView {
            version: shadow.version,
            percent: shadow.percent,
            started_at: shadow.started_at,
            observed,
        }
    }

    /// `canary` of `hook` as the API shows it, with this node's counts while it runs.
    fn canary_view(&self, hook: &Hook, canary: Canary) -> CanaryView {
        let observed = self
            .hooks
            .running(hook)
            .and_then(|running| running.canary.clone())
            .filter(|run| {
                run.loaded.sha256 == canary.version && canary.state == CanaryState::Running
            })
            .map(|run| run.judge.observed());
        CanaryView {
            version: canary.version,
            percent: canary.percent,
            rule: canary.rule,
            started_at: canary.started_at,
            state: canary.state,
            observed,
        }
    }

    /// Every hook, optionally only those of one trigger or enabled state.
    pub async fn list_hooks(
        &self,
        _caller: &Caller,
        trigger_id: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<Vec<HookView>, ManagementError> {
        Ok(self
            .hooks
            .list(trigger_id, enabled)
            .await?
            .into_iter()
            .map(|hook| self.hook_view(hook))
            .collect())
    }

    /// One hook.
    pub async fn get_hook(&self, _caller: &Caller, id: &str) -> Result<HookView, ManagementError> {
        Ok(self.hook_view(self.hooks.get(id).await?))
    }

    /// Creates a hook with no module yet. The first hook of a trigger is enabled (it runs as
    /// soon as a module is uploaded); later ones start disabled unless `enabled` asks.
    pub async fn create_hook(
        &self,
        _caller: &Caller,
        new: NewHook,
    ) -> Result<HookView, ManagementError> {
        Ok(self.hook_view(self.hooks.create(new).await?))
    }

    /// Applies a patch at `now`; enabling disables the trigger's other hooks in the same
    /// transaction, and a canary starts or is withdrawn.
    pub async fn update_hook(
        &self,
        _caller: &Caller,
        id: &str,
        patch: HookPatch,
        now: u64,
    ) -> Result<HookView, ManagementError> {
        Ok(self.hook_view(self.hooks.update(id, patch, now).await?))
    }

    /// Makes the running canary's version the active one, for every client.
    pub async fn promote_canary(
        &self,
        _caller: &Caller,
        id: &str,
    ) -> Result<HookView, ManagementError> {
        Ok(self.hook_view(self.hooks.promote_canary(id).await?))
    }

    /// Records a canary the token path withdrew at `now` (see
    /// [`HookRegistry::withdrawals`]).
    pub async fn record_canary_withdrawal(
        &self,
        withdrawal: CanaryWithdrawal,
        now: u64,
    ) -> Result<(), ManagementError> {
        self.hooks.record_withdrawal(withdrawal, now).await
    }

    /// Deletes a hook (stopping it if it runs).
    pub async fn delete_hook(&self, _caller: &Caller, id: &str) -> Result<(), ManagementError> {
        self.hooks.delete(id).await
    }

    /// Uploads a module as the hook's newest version at `now` and makes it the active one
    /// (live at once when the hook is enabled). A module that fails validation stores nothing.
    pub async fn upload_module(
        &self,
        _caller: &Caller,
        id: &str,
        module: Vec<u8>,
        now: u64,
    ) -> Result<UploadedView, ManagementError> {
        let (hook, version) = self.hooks.upload(id, module, now).await?;
        Ok(UploadedView {
            version,
            hook: self.hook_view(hook),
        })
    }

    /// A hook's versions, oldest first, marking the active one.
    pub async fn hook_versions(
        &self,
        _caller: &Caller,
        id: &str,
    ) -> Result<Vec<HookVersionView>, ManagementError> {
        let hook = self.hooks.get(id).await?;
        Ok(hook
            .versions
            .iter()
            .map(|version| HookVersionView {
                sha256: version.sha256.clone(),
                size: version.size,
                uploaded_at: version.uploaded_at,
                active: hook.active_version.as_deref() == Some(version.sha256.as_str()),
            })
            .collect())
    }

    /// Makes an earlier version the active one (live at once when the hook is enabled).
    pub async fn rollback_hook(
        &self,
        _caller: &Caller,
        id: &str,
        sha256: &str,
    ) -> Result<HookView, ManagementError> {
        Ok(self.hook_view(self.hooks.rollback(id, sha256).await?))
    }

    /// A hook's recent invocations, oldest first.
    pub async fn hook_logs(
        &self,
        _caller: &Caller,
        id: &str,
    ) -> Result<Vec<HookLogEntry>, ManagementError> {
        self.hooks.get(id).await?;
        match &self.store {
            // Every node's invocations, as the nodes ship them.
            Store::Postgres(shared) => shared
                .hook_logs(id, crate::hooklog::ENTRIES_PER_HOOK)
                .await?
                .iter()
                .map(|text| {
                    serde_json::from_str(text).map_err(|error| {
                        ManagementError::Internal(format!(
                            "a stored log entry is unreadable: {error}"
                        ))
                    })
                })
                .collect(),
            Store::Sled(_) => Ok(self.hook_log.recent(id)),
        }
    }

    /// Every new invocation of hook `id`, for a `?follow` stream (which also re-checks its
    /// caller with [`Management::still_holds`]).
    pub async fn follow_hook_logs(
        &self,
        _caller: &Caller,
        id: &str,
    ) -> Result<tokio::sync::broadcast::Receiver<HookLogEntry>, ManagementError> {
        self.hooks.get(id).await?;
        Ok(self.hook_log.follow())
    }
}

#[cfg(test)]
mod tests {
    use super::valid_hook_name;

    #[test]
    fn hook_names_follow_auth0s_pattern() {
        for good in ["seed", "add claims", "a-1", "A"] {
            assert!(valid_hook_name(good), "{good}");
        }
        for bad in ["", " seed", "seed-", "seed_hook", "séed"] {
            assert!(!valid_hook_name(bad), "{bad}");
        }
    }
}
