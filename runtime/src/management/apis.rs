//! APIs (Auth0 resource servers): creation and changes with their validation, HS256 secrets
//! shown only on create and rotate, and the guards on the Management API's own resource server.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Caller, Management, ManagementError, not_found};
use crate::hooks::is_scope_token;
use crate::model::{Api, ApiScope, HookScopePolicy, SecretKeyForm, SigningAlg, TokenDialect};
use crate::proto::{ApiBody, ApiView};
use crate::secrets::{AtRest, SEALED_HS256_SECRET, SecretBox, random_alphanumeric, random_bytes};
use crate::store::RecordStore;

/// The longest token lifetime an API may have: 30 days.
const MAX_TOKEN_LIFETIME: u64 = 2_592_000;

/// What an API is created with.
#[derive(Debug, Clone)]
pub struct NewApi {
    /// The audience clients ask for.
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// Scope values it defines.
    pub scopes: Vec<String>,
    /// Token lifetime in seconds.
    pub token_lifetime: u64,
    /// Signing algorithm.
    pub signing_alg: SigningAlg,
    /// Token layout.
    pub token_dialect: TokenDialect,
    /// How a hook's scopes apply.
    pub hook_scope_policy: HookScopePolicy,
}

impl NewApi {
    /// An API with Auth0's defaults: RS256, 86400 s, Auth0 token dialect, hook scopes replace.
    pub fn new(identifier: &str, name: &str, scopes: &[&str]) -> Self {
        NewApi {
            identifier: identifier.to_owned(),
            name: name.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            token_lifetime: 86_400,
            signing_alg: SigningAlg::RS256,
            token_dialect: TokenDialect::Auth0,
            hook_scope_policy: HookScopePolicy::Replace,
        }
    }
}

/// A new API, and its HS256 secret in clear when it has one (the only time it is shown,
/// with [`Management::rotate_api_secret`]).
pub async fn create_api(
    store: &impl RecordStore,
    secret_box: &SecretBox,
    new: NewApi,
) -> Result<(Api, Option<String>), ManagementError> {
    let (api, shown) = new_api_record(secret_box, new)?;
    store.insert_api(&api).await?;
    Ok((api, shown))
}

/// An API's record (and its HS256 secret in clear when it has one), checked but not stored.
pub fn new_api_record(
    secret_box: &SecretBox,
    new: NewApi,
) -> Result<(Api, Option<String>), ManagementError> {
    if new.identifier.trim().is_empty() {
        return Err(ManagementError::Invalid(
            "identifier must not be empty".to_owned(),
        ));
    }
    if new.token_lifetime == 0 || new.token_lifetime > MAX_TOKEN_LIFETIME {
        return Err(ManagementError::Invalid(format!(
            "token_lifetime must be between 1 and {MAX_TOKEN_LIFETIME} seconds"
        )));
    }
    let id = random_alphanumeric(24);
    let (signing_secret, shown) = match new.signing_alg {
        SigningAlg::HS256 => {
            let (sealed, shown) = new_signing_secret(secret_box, &id);
            (Some(sealed), Some(shown))
        }
        _ => (None, None),
    };
    let api = Api {
        id,
        identifier: new.identifier,
        name: new.name,
        scopes: new
            .scopes
            .into_iter()
            .map(|value| ApiScope {
                value,
                description: String::new(),
            })
            .collect(),
        token_lifetime: new.token_lifetime,
        signing_alg: new.signing_alg,
        signing_secret,
        signing_secret_form: SecretKeyForm::Text,
        token_dialect: new.token_dialect,
        hook_scope_policy: new.hook_scope_policy,
    };
    Ok((api, shown))
}

/// A new HS256 secret for API `api_id`: 32 random bytes as base64url text (43 characters),
/// used as the key exactly as shown. Returns it sealed (to store) and in clear (to show once).
fn new_signing_secret(secret_box: &SecretBox, api_id: &str) -> (AtRest, String) {
    let shown = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let sealed = secret_box.seal_bytes(SEALED_HS256_SECRET, api_id, shown.as_bytes());
    (AtRest::Sealed(sealed), shown)
}

/// An API's HS256 secret in clear, for tools on the server's own machine (tests, the demo):
/// the Management API shows it only on create and rotate.
pub fn reveal_signing_secret(
    secret_box: &SecretBox,
    api: &Api,
) -> Result<Option<String>, ManagementError> {
    let Some(stored) = &api.signing_secret else {
        return Ok(None);
    };
    let bytes = secret_box
        .reveal(SEALED_HS256_SECRET, &api.id, stored)
        .map_err(|error| ManagementError::Internal(format!("signing_secret: {error}")))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| ManagementError::Internal("signing_secret: not text".to_owned()))
}

fn check_api_fields(body: &ApiBody) -> Result<(), ManagementError> {
    if let Some(lifetime) = body.token_lifetime
        && (lifetime == 0 || lifetime > MAX_TOKEN_LIFETIME)
    {
        return Err(ManagementError::Invalid(format!(
            "token_lifetime: must be between 1 and {MAX_TOKEN_LIFETIME} seconds"
        )));
    }
    if let Some(bad) = body
        .scopes
        .iter()
        .flatten()
        .find(|scope| !is_scope_token(&scope.value))
    {
        return Err(ManagementError::Invalid(format!(
            "scopes: {:?} is not a valid scope token",
            bad.value
        )));
    }
    Ok(())
}

/// An API as the Management API shows it; its HS256 secret only when given.
fn api_view(api: &Api, signing_secret: Option<String>) -> ApiView {
    ApiView {
        id: api.id.clone(),
        identifier: api.identifier.clone(),
        name: api.name.clone(),
        scopes: api.scopes.clone(),
        token_lifetime: api.token_lifetime,
        signing_alg: api.signing_alg,
        token_dialect: api.token_dialect,
        hook_scope_policy: api.hook_scope_policy,
        signing_secret,
    }
}

impl Management {
    /// Every API.
    pub async fn list_apis(&self, _caller: &Caller) -> Result<Vec<ApiView>, ManagementError> {
        Ok(self
            .store
            .apis()
            .await?
            .iter()
            .map(|api| api_view(api, None))
            .collect())
    }

    /// One API.
    pub async fn get_api(&self, _caller: &Caller, id: &str) -> Result<ApiView, ManagementError> {
        let api = self
            .store
            .api(id)
            .await?
            .ok_or_else(|| not_found("API", id))?;
        Ok(api_view(&api, None))
    }

    /// A new API from a Management API body, with its HS256 secret in clear when it has one.
    pub async fn create_api(
        &self,
        _caller: &Caller,
        body: ApiBody,
    ) -> Result<ApiView, ManagementError> {
        check_api_fields(&body)?;
        let identifier = body
            .identifier
            .clone()
            .ok_or_else(|| ManagementError::Invalid("identifier: is required".to_owned()))?;
        let mut new = NewApi::new(
            &identifier,
            body.name.as_deref().unwrap_or(&identifier),
            &[],
        );
        new.token_lifetime = body.token_lifetime.unwrap_or(new.token_lifetime);
        new.signing_alg = body.signing_alg.unwrap_or(new.signing_alg);
        new.token_dialect = body.token_dialect.unwrap_or(new.token_dialect);
        new.hook_scope_policy = body.hook_scope_policy.unwrap_or(new.hook_scope_policy);
        let (mut api, shown) = new_api_record(&self.secret_box, new)?;
        if let Some(scopes) = body.scopes {
            api.scopes = scopes;
        }
        self.store.insert_api(&api).await?;
        Ok(api_view(&api, shown))
    }

    /// Applies a patch to an API. Its identifier cannot change. Switching to HS256 gives it a
    /// secret, returned in clear that once. The Management API itself takes every management
    /// scope to change, and is never HS256.
    pub async fn update_api(
        &self,
        caller: &Caller,
        id: &str,
        body: ApiBody,
    ) -> Result<ApiView, ManagementError> {
        let found = self.store.api(id).await?;
        if found
            .as_ref()
            .is_some_and(|api| api.identifier == self.audience)
        {
            caller.holds_every_scope()?;
            if body.signing_alg == Some(SigningAlg::HS256) {
                // An HS256 secret is one more thing to leak, and clients would need it to verify.
                return Err(ManagementError::NotSupported(
                    "signing_alg: the Management API is signed with RS256, PS256 or ES256",
                ));
            }
        }
        check_api_fields(&body)?;
        let mut api = found.ok_or_else(|| not_found("API", id))?;
        if body
            .identifier
            .as_ref()
            .is_some_and(|identifier| *identifier != api.identifier)
        {
            return Err(ManagementError::Invalid(
                "identifier: cannot be changed".to_owned(),
            ));
        }
        if let Some(name) = body.name {
            api.name = name;
        }
        if let Some(scopes) = body.scopes {
            api.scopes = scopes;
        }
        if let Some(lifetime) = body.token_lifetime {
            api.token_lifetime = lifetime;
        }
        let mut shown = None;
        if let Some(alg) = body.signing_alg {
            if alg == SigningAlg::HS256 && api.signing_secret.is_none() {
                let (sealed, text) = new_signing_secret(&self.secret_box, &api.id);
                api.signing_secret = Some(sealed);
                api.signing_secret_form = SecretKeyForm::Text;
                shown = Some(text);
            }
            api.signing_alg = alg;
        }
        if let Some(dialect) = body.token_dialect {
            api.token_dialect = dialect;
        }
        if let Some(policy) = body.hook_scope_policy {
            api.hook_scope_policy = policy;
        }
        self.store.update_api(&api).await?;
        Ok(api_view(&api, shown))
    }

    /// Replaces an HS256 API's signing secret; returns the API with the new secret in clear.
    /// Tokens signed with the old secret stop verifying at once, as at Auth0.
    pub async fn rotate_api_secret(
        &self,
        _caller: &Caller,
        id: &str,
    ) -> Result<ApiView, ManagementError> {
        let mut api = self
            .store
            .api(id)
            .await?
            .ok_or_else(|| not_found("API", id))?;
        if api.signing_alg != SigningAlg::HS256 {
            return Err(ManagementError::Invalid(
                "signing_secret: only an HS256 API has a signing secret".to_owned(),
            ));
        }
        let (sealed, shown) = new_signing_secret(&self.secret_box, &api.id);
        api.signing_secret = Some(sealed);
        api.signing_secret_form = SecretKeyForm::Text;
        self.store.update_api(&api).await?;
        Ok(api_view(&api, Some(shown)))
    }

    /// Deletes an API and its grants. The Management API cannot be deleted.
    pub async fn delete_api(&self, _caller: &Caller, id: &str) -> Result<(), ManagementError> {
        if self
            .store
            .api(id)
            .await?
            .is_some_and(|api| api.identifier == self.audience)
        {
            return Err(ManagementError::NotSupported(
                "The Management API cannot be deleted",
            ));
        }
        Ok(self.store.delete_api(id).await?)
    }
}
