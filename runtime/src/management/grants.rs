//! Client grants: which application may get tokens for which API with which scopes, checked
//! against the scopes the API defines, and the guard on grants of the Management API.

use super::{Caller, Management, ManagementError, not_found};
use crate::model::ClientGrant;
use crate::proto::{GrantBody, GrantView};
use crate::secrets::random_alphanumeric;
use crate::store::RecordStore;

/// A new grant of `scope` on `audience` to `client_id`; both must exist and every scope
/// must be one the API defines.
pub async fn create_grant(
    store: &impl RecordStore,
    client_id: &str,
    audience: &str,
    scope: &[&str],
) -> Result<ClientGrant, ManagementError> {
    if store.client(client_id).await?.is_none() {
        return Err(ManagementError::Invalid(format!(
            "client_id: no client {client_id}"
        )));
    }
    let Some(api) = store.api_by_identifier(audience).await? else {
        return Err(ManagementError::Invalid(format!(
            "audience: no API {audience}"
        )));
    };
    if let Some(unknown) = scope
        .iter()
        .find(|s| !api.scopes.iter().any(|defined| defined.value == **s))
    {
        return Err(ManagementError::Invalid(format!(
            "scope: {unknown} is not a scope of {audience}"
        )));
    }
    let grant = ClientGrant {
        id: format!("cgr_{}", random_alphanumeric(16)),
        client_id: client_id.to_owned(),
        audience: audience.to_owned(),
        scope: scope.iter().map(|s| (*s).to_owned()).collect(),
    };
    store.insert_grant(&grant).await?;
    Ok(grant)
}

fn grant_view(grant: ClientGrant) -> GrantView {
    GrantView {
        id: grant.id,
        client_id: grant.client_id,
        audience: grant.audience,
        scope: grant.scope,
    }
}

impl Management {
    /// Every grant, optionally only those for one audience or one client.
    pub async fn list_grants(
        &self,
        _caller: &Caller,
        audience: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<Vec<GrantView>, ManagementError> {
        Ok(self
            .store
            .grants()
            .await?
            .into_iter()
            .filter(|g| audience.is_none_or(|a| g.audience == a))
            .filter(|g| client_id.is_none_or(|c| g.client_id == c))
            .map(grant_view)
            .collect())
    }

    /// A new grant from a Management API body. Granting the Management API takes every
    /// management scope.
    pub async fn create_grant(
        &self,
        caller: &Caller,
        body: GrantBody,
    ) -> Result<GrantView, ManagementError> {
        if body.audience.as_deref() == Some(self.audience.as_str()) {
            caller.holds_every_scope()?;
        }
        let required = |field: &str| ManagementError::Invalid(format!("{field}: is required"));
        let client_id = body.client_id.ok_or_else(|| required("client_id"))?;
        let audience = body.audience.ok_or_else(|| required("audience"))?;
        let scope = body.scope.ok_or_else(|| required("scope"))?;
        let scope: Vec<&str> = scope.iter().map(String::as_str).collect();
        create_grant(&self.store, &client_id, &audience, &scope)
            .await
            .map(grant_view)
    }

    /// Replaces a grant's scopes; client and audience cannot change.
    pub async fn update_grant(
        &self,
        caller: &Caller,
        id: &str,
        body: GrantBody,
    ) -> Result<GrantView, ManagementError> {
        self.guard_management_grant(caller, id).await?;
        if body.client_id.is_some() || body.audience.is_some() {
            return Err(ManagementError::Invalid(
                "client_id and audience of a grant cannot be changed".to_owned(),
            ));
        }
        let mut grant = self
            .store
            .grant(id)
            .await?
            .ok_or_else(|| not_found("client grant", id))?;
        if let Some(scope) = body.scope {
            let api = self
                .store
                .api_by_identifier(&grant.audience)
                .await?
                .ok_or_else(|| not_found("API", &grant.audience))?;
            if let Some(unknown) = scope
                .iter()
                .find(|s| !api.scopes.iter().any(|defined| defined.value == **s))
            {
                return Err(ManagementError::Invalid(format!(
                    "scope: {unknown} is not a scope of {}",
                    grant.audience
                )));
            }
            grant.scope = scope;
        }
        self.store.update_grant(&grant).await?;
        Ok(grant_view(grant))
    }

    /// Deletes a grant.
    pub async fn delete_grant(&self, caller: &Caller, id: &str) -> Result<(), ManagementError> {
        self.guard_management_grant(caller, id).await?;
        Ok(self.store.delete_grant(id).await?)
    }

    /// Changing a grant on the Management API takes every management scope.
    async fn guard_management_grant(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(), ManagementError> {
        if self
            .store
            .grant(id)
            .await?
            .is_some_and(|grant| grant.audience == self.audience)
        {
            caller.holds_every_scope()?;
        }
        Ok(())
    }
}
