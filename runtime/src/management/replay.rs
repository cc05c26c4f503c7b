//! Replay: the recorded inputs of a hook's recent invocations, and running one of them again
//! on the server against any version of the hook, with the hook's secrets put back.

use super::{Caller, Management, ManagementError};
use crate::hooklog::{LoggedOutcome, REDACTED};
use crate::proto::{RecordedEvent, ReplayBody, ReplayView, ReplayedCall};

impl Management {
    /// Hook `id`'s recorded invocation inputs, oldest first (only request `request_id`'s when
    /// given). Secret values are redacted.
    pub async fn recorded_events(
        &self,
        _caller: &Caller,
        id: &str,
        request_id: Option<&str>,
    ) -> Result<Vec<RecordedEvent>, ManagementError> {
        self.hooks.get(id).await?;
        Ok(self.hook_log.events(id, request_id))
    }

    /// Runs the event recorded for `body.request_id` again on `body.version` (default: the
    /// active version) of hook `id`, with the hook's current secrets and limits, and returns
    /// both outcomes. Nothing is written and no token is issued.
    pub async fn replay(
        &self,
        _caller: &Caller,
        id: &str,
        body: ReplayBody,
    ) -> Result<ReplayView, ManagementError> {
        let hook = self.hooks.get(id).await?;
        let recorded = self
            .hook_log
            .events(id, Some(&body.request_id))
            .pop()
            .ok_or_else(|| {
                ManagementError::NotFound(format!(
                    "no recorded invocation of this hook for request {} (the last {} are kept, \
                     in memory, on the node that ran them)",
                    body.request_id,
                    crate::hooklog::ENTRIES_PER_HOOK
                ))
            })?;
        let version = match body.version {
            Some(version) => version,
            None => hook.active_version.clone().ok_or_else(|| {
                ManagementError::Invalid("version: the hook has no active version".to_owned())
            })?,
        };
        if !hook.versions.iter().any(|v| v.sha256 == version) {
            return Err(ManagementError::Invalid(format!(
                "version: {version} is not a version of this hook"
            )));
        }
        let loaded = self.hooks.running_or_load(&hook, &version).await?;
        let secrets = self.hooks.open_secrets(&hook)?;
        let mut event = recorded.event.clone();
        for (name, value) in event.context.secrets.iter_mut() {
            // A secret deleted since the call stays redacted.
            if let Some(current) = secrets.get(name) {
                value.clone_from(current);
            } else {
                *value = REDACTED.to_owned();
            }
        }
        let invocation = self
            .hooks
            .engine
            .invoke_credentials_exchange(&loaded, event)
            .await;
        Ok(ReplayView {
            recorded,
            replayed: ReplayedCall {
                version,
                outcome: LoggedOutcome::of(&invocation.result, false),
                changes: invocation.result.as_ref().ok().cloned(),
                log: invocation.log,
                fuel_used: invocation.fuel_used,
                duration_us: invocation.elapsed.as_micros() as u64,
            },
        })
    }
}
