//! Who a management call comes from: the client of a verified Management API token, re-checked
//! against the store's records on every call, and the rule that changing the Management API's
//! own resources takes every management scope.

use serde_json::Value;

use super::{Management, ManagementError};
use crate::keys::VerifyError;
use crate::model::{MANAGEMENT_SCOPES, MANAGEMENT_SECRET_GENERATION};
use crate::store::RecordStore as _;

/// An authenticated caller, made only by [`Management::authorize`].
#[derive(Debug, Clone)]
pub struct Caller {
    client_id: String,
    /// The scopes the token was issued with.
    token_scopes: Vec<String>,
    /// The client's secret generation when the token was issued.
    secret_generation: u64,
    /// When the token expires.
    exp: u64,
    /// The scopes it held when the call was authorized ([`Management::current_scopes`]).
    held: Vec<String>,
}

impl Caller {
    /// The calling application's id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether the caller holds every management scope: what changing the Management API
    /// itself, its grants or the applications granted it takes, so no narrower scope can be
    /// turned into a wider one.
    pub(super) fn holds_every_scope(&self) -> Result<(), ManagementError> {
        match MANAGEMENT_SCOPES
            .iter()
            .find(|scope| !self.held.iter().any(|held| held == *scope))
        {
            None => Ok(()),
            Some(_) => Err(ManagementError::Forbidden(
                "Changing the Management API, its grants or the applications granted it \
                 requires every management scope"
                    .to_owned(),
            )),
        }
    }
}

impl Management {
    /// Checks a Bearer token (`None` when the request had none): that it verifies for the
    /// Management API at `now`, that what it was issued for still holds (see
    /// [`Management::current_scopes`]) and that it carries `scope`.
    pub async fn authorize(
        &self,
        token: Option<&str>,
        scope: &str,
        now: u64,
    ) -> Result<Caller, ManagementError> {
        let token = token.ok_or(ManagementError::Unauthenticated("Missing authentication"))?;
        let claims = self
            .keys
            .load()
            .verify(token, &self.tenant.issuer, &self.audience, now)
            .map_err(|error| {
                ManagementError::Unauthenticated(match error {
                    VerifyError::Expired => "Expired token received for JSON Web Token validation",
                    VerifyError::Invalid => "Invalid token",
                })
            })?;
        let invalid = || ManagementError::Unauthenticated("Invalid token");
        let mut caller = Caller {
            client_id: claims
                .get("sub")
                .and_then(Value::as_str)
                .and_then(|sub| sub.strip_suffix("@clients"))
                .ok_or_else(invalid)?
                .to_owned(),
            token_scopes: claims
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .split(' ')
                .filter(|scope| !scope.is_empty())
                .map(str::to_owned)
                .collect(),
            secret_generation: claims
                .get(MANAGEMENT_SECRET_GENERATION)
                .and_then(Value::as_u64)
                .ok_or_else(invalid)?,
            exp: claims
                .get("exp")
                .and_then(Value::as_u64)
                .ok_or_else(invalid)?,
            held: Vec::new(),
        };
        caller.held = self.current_scopes(&caller, now).await?;
        if caller.held.iter().any(|held| held == scope) {
            Ok(caller)
        } else {
            Err(ManagementError::Forbidden(format!(
                "Insufficient scope, expected any of: {scope}"
            )))
        }
    }

    /// The scopes `caller` holds at `now`: its token's, as long as its client still exists
    /// with the same secret generation, limited to what its grant on the Management API still
    /// gives, and only until the token expires. Read from the store's in-memory records, so
    /// every management call re-checks at little cost.
    async fn current_scopes(
        &self,
        caller: &Caller,
        now: u64,
    ) -> Result<Vec<String>, ManagementError> {
        let revoked = || ManagementError::Unauthenticated("Invalid token");
        if now >= caller.exp {
            return Err(ManagementError::Unauthenticated(
                "Expired token received for JSON Web Token validation",
            ));
        }
        let client = self
            .store
            .client(&caller.client_id)
            .await?
            .filter(|client| client.secret_generation == caller.secret_generation)
            .ok_or_else(revoked)?;
        let grant = self
            .store
            .grant_for(&client.client_id, &self.audience)
            .await?
            .ok_or_else(revoked)?;
        Ok(caller
            .token_scopes
            .iter()
            .filter(|scope| grant.scope.contains(scope))
            .cloned()
            .collect())
    }

    /// Whether `caller` still holds `scope` at `now` (a `?follow` log stream asks every
    /// second and ends when this turns false).
    pub async fn still_holds(&self, caller: &Caller, scope: &str, now: u64) -> bool {
        self.current_scopes(caller, now)
            .await
            .is_ok_and(|scopes| scopes.iter().any(|held| held == scope))
    }
}
