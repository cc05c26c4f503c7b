//! Refuses tokens for APIs outside an allow-list, the way an Auth0 hook calling
//! `cb(new InvalidRequestError(...))` does. Everything else passes unchanged.

use hookd_sdk::{AccessToken, Client, Context, CredentialsExchange, Denial};

/// The APIs this hook lets tokens be issued for.
const ALLOWED_AUDIENCES: &[&str] = &["https://api.example.com/", "https://billing.example.com/"];

/// Denies with `invalid_request` when the audience is not in [`ALLOWED_AUDIENCES`].
pub struct DenyByAudience;

impl CredentialsExchange for DenyByAudience {
    fn exchange(
        client: Client,
        _scope: Option<Vec<String>>,
        audience: String,
        _context: Context,
    ) -> Result<AccessToken, Denial> {
        if ALLOWED_AUDIENCES.contains(&audience.as_str()) {
            return Ok(AccessToken::new());
        }
        println!("denied {} for audience {audience}", client.id);
        Err(Denial::invalid_request(format!(
            "tokens for {audience} are not issued to machine clients"
        )))
    }
}

hookd_sdk::export_credentials_exchange!(DenyByAudience);

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(audience: &str) -> Result<AccessToken, Denial> {
        DenyByAudience::exchange(
            Client::default(),
            None,
            audience.to_owned(),
            Context::default(),
        )
    }

    #[test]
    fn allowed_audiences_pass_unchanged() {
        assert_eq!(
            exchange("https://api.example.com/").unwrap(),
            AccessToken::new()
        );
    }

    #[test]
    fn other_audiences_are_denied_with_invalid_request() {
        let denial = exchange("https://admin.example.com/").unwrap_err();
        assert_eq!(denial.code, hookd_sdk::DenyCode::InvalidRequest);
        assert!(denial.description.contains("https://admin.example.com/"));
    }
}
