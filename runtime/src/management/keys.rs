//! Signing keys as the Management API shows and rotates them: a rotation generates keys off
//! the async threads, persists the new set and swaps it into the live keys the token path
//! signs with.

use super::{Caller, Management, ManagementError};
use crate::keys::{self, KeyRing};
use crate::model::KeyState;
use crate::proto::SigningKeyView;
use crate::store::RecordStore;
use crate::store::StoreError;

/// The longest token lifetime of any API: how long a retired signing key stays published.
pub async fn longest_token_lifetime(store: &impl RecordStore) -> Result<u64, StoreError> {
    Ok(store
        .apis()
        .await?
        .iter()
        .map(|api| api.token_lifetime)
        .max()
        .unwrap_or(0))
}

fn views(ring: &KeyRing) -> Vec<SigningKeyView> {
    ring.summary()
        .into_iter()
        .map(|(kid, alg, state)| SigningKeyView {
            kid,
            alg: alg.as_str().to_owned(),
            current: state == KeyState::Current,
            next: state == KeyState::Next,
            previous: state == KeyState::Previous,
        })
        .collect()
}

impl Management {
    /// Swaps in the signing keys the store holds, after another node rotated them.
    pub(super) async fn reload_signing_keys(&self) -> Result<(), ManagementError> {
        let _one_at_a_time = self.rotation.lock().await;
        let stored = self.store.signing_keys().await?;
        let secret_box = self.keys.load().secret_box().clone();
        let ring = KeyRing::from_keys(&stored, secret_box).map_err(|error| {
            ManagementError::Internal(format!("stored keys are unusable: {error}"))
        })?;
        self.keys.swap(ring);
        Ok(())
    }

    /// The published signing keys.
    pub fn signing_keys(&self, _caller: &Caller) -> Vec<SigningKeyView> {
        views(&self.keys.load())
    }

    /// Rotates every algorithm's keys at `now` (see [`keys::rotate`]), persists the new set and
    /// swaps it in: tokens signed from now on use the promoted keys, and tokens signed before
    /// still verify. Returns the new keys' public view.
    pub async fn rotate_signing_keys(
        &self,
        _caller: &Caller,
        now: u64,
    ) -> Result<Vec<SigningKeyView>, ManagementError> {
        // One rotation at a time: each reads the set the previous one wrote.
        let _one_at_a_time = self.rotation.lock().await;
        let stored = self.store.signing_keys().await?;
        let stored_kids = stored.clone();
        let secret_box = self.keys.load().secret_box().clone();
        let keep_retired = longest_token_lifetime(&self.store).await?;
        // RSA key generation is CPU-bound (~100 ms per key): off the async threads.
        let (rotated, ring) = tokio::task::spawn_blocking(move || {
            let rotated = keys::rotate(&stored, now, keep_retired, &secret_box)
                .map_err(|error| ManagementError::Internal(format!("key rotation: {error}")))?;
            let ring = KeyRing::from_keys(&rotated, secret_box).map_err(|error| {
                ManagementError::Internal(format!("rotated keys are unusable: {error}"))
            })?;
            Ok::<_, ManagementError>((rotated, ring))
        })
        .await
        .map_err(|error| ManagementError::Internal(error.to_string()))??;
        // Written only if no other node rotated since `stored` was read: of two nodes rotating
        // at once, one wins and the other answers 409 (and keeps signing with what it had).
        self.store
            .replace_signing_keys(&stored_kids, &rotated)
            .await
            .map_err(|error| match error {
                StoreError::Conflict(_) => ManagementError::Conflict(
                    "the signing keys were rotated at the same moment through another node; \
                     list them, and rotate again if another rotation is wanted"
                        .to_owned(),
                ),
                other => other.into(),
            })?;
        let shown = views(&ring);
        self.keys.swap(ring);
        tracing::info!("signing keys rotated");
        Ok(shown)
    }
}
