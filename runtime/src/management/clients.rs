//! Applications (Auth0 clients): creation with a secret shown once, validation of the fields
//! operators set, secret rotation, and the guard on applications granted the Management API.

use std::collections::BTreeMap;

use super::{Caller, Management, ManagementError, not_found};
use crate::model::{CLIENT_CREDENTIALS, Client};
use crate::proto::{ClientBody, ClientView};
use crate::secrets::{SecretHasher, new_client_secret, random_alphanumeric};
use crate::store::RecordStore;
use crate::store::StoreError;

const APP_TYPES: &[&str] = &["non_interactive", "regular_web", "spa", "native"];
const GRANT_TYPES: &[&str] = &[
    "client_credentials",
    "authorization_code",
    "implicit",
    "refresh_token",
    "password",
];

/// A new machine-to-machine application allowed the client-credentials grant. Returns it and
/// the only copy of its secret.
pub async fn create_client(
    store: &impl RecordStore,
    hasher: &SecretHasher,
    name: &str,
    metadata: BTreeMap<String, String>,
) -> Result<(Client, String), ManagementError> {
    let secret = new_client_secret();
    let client = create_client_with(
        store,
        hasher,
        name,
        metadata,
        &random_alphanumeric(32),
        &secret,
    )
    .await?;
    Ok((client, secret))
}

/// A new application with credentials chosen by the operator (the bootstrap admin from
/// `HOOKD_ADMIN_CLIENT_ID` / `HOOKD_ADMIN_CLIENT_SECRET`).
pub async fn create_client_with(
    store: &impl RecordStore,
    hasher: &SecretHasher,
    name: &str,
    metadata: BTreeMap<String, String>,
    client_id: &str,
    secret: &str,
) -> Result<Client, ManagementError> {
    let client = new_client_record(hasher, name, metadata, client_id, secret)?;
    store.insert_client(&client).await?;
    Ok(client)
}

/// A client-credentials application's record with `client_id` and `secret`, checked but not
/// stored (bootstrap stores it with the rest of the admin in one transaction).
pub fn new_client_record(
    hasher: &SecretHasher,
    name: &str,
    metadata: BTreeMap<String, String>,
    client_id: &str,
    secret: &str,
) -> Result<Client, ManagementError> {
    if name.trim().is_empty() {
        return Err(ManagementError::Invalid(
            "name: must not be empty".to_owned(),
        ));
    }
    if client_id.is_empty() {
        return Err(ManagementError::Invalid(
            "client_id: must not be empty".to_owned(),
        ));
    }
    if secret.len() < 16 {
        return Err(ManagementError::Invalid(
            "client_secret: must be at least 16 characters".to_owned(),
        ));
    }
    Ok(Client {
        client_id: client_id.to_owned(),
        name: name.to_owned(),
        app_type: "non_interactive".to_owned(),
        metadata,
        grant_types: vec![CLIENT_CREDENTIALS.to_owned()],
        secret_hash: hasher.hash(secret),
        secret_generation: 0,
    })
}

fn check_client_fields(body: &ClientBody) -> Result<(), ManagementError> {
    let invalid = |m: String| Err(ManagementError::Invalid(m));
    if let Some(name) = &body.name
        && (name.trim().is_empty() || name.len() > 255)
    {
        return invalid("name: must be 1 to 255 characters".to_owned());
    }
    if let Some(app_type) = &body.app_type
        && !APP_TYPES.contains(&app_type.as_str())
    {
        return invalid(format!("app_type: must be one of {}", APP_TYPES.join(", ")));
    }
    if let Some(unknown) = body
        .grant_types
        .iter()
        .flatten()
        .find(|grant_type| !GRANT_TYPES.contains(&grant_type.as_str()))
    {
        return invalid(format!("grant_types: unknown grant type {unknown:?}"));
    }
    Ok(())
}

/// An application as the Management API shows it; the secret only when given.
fn client_view(client: &Client, secret: Option<String>) -> ClientView {
    ClientView {
        client_id: client.client_id.clone(),
        name: client.name.clone(),
        app_type: client.app_type.clone(),
        client_metadata: client.metadata.clone(),
        grant_types: client.grant_types.clone(),
        token_endpoint_auth_method: "client_secret_post".to_owned(),
        client_secret: secret,
    }
}

impl Management {
    /// Every application.
    pub async fn list_clients(&self, _caller: &Caller) -> Result<Vec<ClientView>, ManagementError> {
        Ok(self
            .store
            .clients()
            .await?
            .iter()
            .map(|client| client_view(client, None))
            .collect())
    }

    /// One application.
    pub async fn get_client(
        &self,
        _caller: &Caller,
        id: &str,
    ) -> Result<ClientView, ManagementError> {
        let client = self
            .store
            .client(id)
            .await?
            .ok_or_else(|| not_found("client", id))?;
        Ok(client_view(&client, None))
    }

    /// A new application from a Management API body, with its only secret.
    pub async fn create_client(
        &self,
        _caller: &Caller,
        body: ClientBody,
    ) -> Result<ClientView, ManagementError> {
        check_client_fields(&body)?;
        let name = body
            .name
            .clone()
            .ok_or_else(|| ManagementError::Invalid("name: is required".to_owned()))?;
        let secret = new_client_secret();
        let mut client = new_client_record(
            &self.hasher,
            &name,
            body.client_metadata.unwrap_or_default(),
            &random_alphanumeric(32),
            &secret,
        )?;
        if let Some(app_type) = body.app_type {
            client.app_type = app_type;
        }
        if let Some(grant_types) = body.grant_types {
            client.grant_types = grant_types;
        }
        self.store.insert_client(&client).await?;
        Ok(client_view(&client, Some(secret)))
    }

    /// Applies a patch to an application. Only the fields the body names change, applied to
    /// the record as stored at the moment of writing: a rotation that lands meanwhile is kept.
    pub async fn update_client(
        &self,
        caller: &Caller,
        id: &str,
        body: ClientBody,
    ) -> Result<ClientView, ManagementError> {
        self.guard_management_client(caller, id).await?;
        check_client_fields(&body)?;
        let client = self
            .store
            .modify_client(id, |client| {
                if let Some(name) = &body.name {
                    client.name = name.clone();
                }
                if let Some(app_type) = &body.app_type {
                    client.app_type = app_type.clone();
                }
                if let Some(metadata) = &body.client_metadata {
                    client.metadata = metadata.clone();
                }
                if let Some(grant_types) = &body.grant_types {
                    client.grant_types = grant_types.clone();
                }
            })
            .await
            .map_err(|error| match error {
                StoreError::NotFound(_) => not_found("client", id),
                other => other.into(),
            })?;
        Ok(client_view(&client, None))
    }

    /// Deletes an application and its grants.
    pub async fn delete_client(&self, caller: &Caller, id: &str) -> Result<(), ManagementError> {
        self.guard_management_client(caller, id).await?;
        Ok(self.store.delete_client(id).await?)
    }

    /// Gives an application a new secret; the old one stops working at once, and so do the
    /// Management API tokens it got with the old one (its secret generation moves on).
    pub async fn rotate_client_secret(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<ClientView, ManagementError> {
        self.guard_management_client(caller, id).await?;
        let secret = new_client_secret();
        let secret_hash = self.hasher.hash(&secret);
        let client = self
            .store
            .modify_client(id, |client| {
                client.secret_hash = secret_hash.clone();
                client.secret_generation += 1;
            })
            .await
            .map_err(|error| match error {
                StoreError::NotFound(_) => not_found("client", id),
                other => other.into(),
            })?;
        Ok(client_view(&client, Some(secret)))
    }

    /// Changing an application granted the Management API takes every management scope.
    async fn guard_management_client(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(), ManagementError> {
        if self.is_management_client(id).await? {
            caller.holds_every_scope()?;
        }
        Ok(())
    }
}
