//! Hook secrets: names and values under Auth0's add/change split, sealed under the secrets key,
//! never shown again, and live in the running hook at once.

use std::collections::BTreeMap;

use super::hooks::HookChanges;
use super::{Caller, Management, ManagementError};
use crate::proto::{REDACTED, SecretsView};
use crate::store::RecordStore as _;

/// The most secrets one hook may have (Auth0 allowed 20).
pub const MAX_SECRETS_PER_HOOK: usize = 50;
/// The longest secret value, in bytes (Auth0 Actions allow 4 KB).
pub const MAX_SECRET_BYTES: usize = 4096;

/// How a secrets call changes a hook's secrets (Auth0's semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsChange {
    /// `POST`: add new names; an existing name is 409.
    Add,
    /// `PATCH`: change existing names; an unknown name is 404.
    Update,
}

/// Every name, with its value redacted.
fn redacted(names: impl IntoIterator<Item = String>) -> SecretsView {
    names
        .into_iter()
        .map(|name| (name, REDACTED.to_owned()))
        .collect()
}

impl HookChanges {
    /// Adds or updates secrets, sealed under the secrets key; the running hook sees them at once.
    async fn set_secrets(
        &self,
        id: &str,
        values: BTreeMap<String, String>,
        change: SecretsChange,
    ) -> Result<Vec<String>, ManagementError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id).await?;
        if values.is_empty() {
            return Err(ManagementError::Invalid(
                "body: name at least one secret".to_owned(),
            ));
        }
        for (name, value) in &values {
            let valid_name = !name.is_empty()
                && name.len() <= 255
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_name {
                return Err(ManagementError::Invalid(format!(
                    "{name:?}: secret names are letters, digits, _ and -"
                )));
            }
            if value.len() > MAX_SECRET_BYTES {
                return Err(ManagementError::Invalid(format!(
                    "{name}: a secret value is at most {MAX_SECRET_BYTES} bytes"
                )));
            }
            let exists = hook.secrets.contains_key(name);
            match change {
                SecretsChange::Add if exists => {
                    return Err(ManagementError::Conflict(format!(
                        "secret {name} already exists"
                    )));
                }
                SecretsChange::Update if !exists => {
                    return Err(ManagementError::NotFound(format!(
                        "secret {name} does not exist"
                    )));
                }
                _ => {}
            }
        }
        for (name, value) in &values {
            let sealed = self.secret_box.seal(&hook.id, name, value);
            hook.secrets.insert(name.clone(), sealed);
        }
        if hook.secrets.len() > MAX_SECRETS_PER_HOOK {
            return Err(ManagementError::Invalid(format!(
                "a hook has at most {MAX_SECRETS_PER_HOOK} secrets"
            )));
        }
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook).await?;
        self.registry_follows_store(hook.trigger, prepared).await?;
        Ok(hook.secrets.keys().cloned().collect())
    }

    /// Deletes secrets by name; an unknown name is 404 and deletes nothing.
    async fn delete_secrets(&self, id: &str, names: &[String]) -> Result<(), ManagementError> {
        let _serialised = self.changes.lock().await;
        let mut hook = self.get(id).await?;
        if let Some(unknown) = names.iter().find(|name| !hook.secrets.contains_key(*name)) {
            return Err(ManagementError::NotFound(format!(
                "secret {unknown} does not exist"
            )));
        }
        for name in names {
            hook.secrets.remove(name);
        }
        let prepared = self.prepare(&hook).await?;
        self.store.update_hook(&hook).await?;
        self.registry_follows_store(hook.trigger, prepared).await
    }
}

impl Management {
    /// The names of a hook's secrets (values are never returned).
    pub async fn hook_secrets(
        &self,
        _caller: &Caller,
        id: &str,
    ) -> Result<SecretsView, ManagementError> {
        Ok(redacted(self.hooks.get(id).await?.secrets.into_keys()))
    }

    /// Adds (`POST`) or changes (`PATCH`) secrets; returns every name the hook now has.
    pub async fn set_hook_secrets(
        &self,
        _caller: &Caller,
        id: &str,
        values: BTreeMap<String, String>,
        change: SecretsChange,
    ) -> Result<SecretsView, ManagementError> {
        Ok(redacted(self.hooks.set_secrets(id, values, change).await?))
    }

    /// Deletes secrets by name.
    pub async fn delete_hook_secrets(
        &self,
        _caller: &Caller,
        id: &str,
        names: &[String],
    ) -> Result<(), ManagementError> {
        self.hooks.delete_secrets(id, names).await
    }
}
