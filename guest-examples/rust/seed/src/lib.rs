//! The canonical Auth0 Hooks example, in Rust: add a custom claim and the `extra` scope.
//!
//! ```js
//! module.exports = function(client, scope, audience, context, cb) {
//!   var access_token = {};
//!   access_token['https://foo.com/claim'] = 'bar';
//!   access_token.scope = scope;
//!   access_token.scope.push('extra');
//!   cb(null, access_token);
//! };
//! ```

use hookd_sdk::{AccessToken, Client, Context, CredentialsExchange, Denial};

/// Adds `https://foo.com/claim` = `bar` and appends the `extra` scope.
pub struct Seed;

impl CredentialsExchange for Seed {
    fn exchange(
        _client: Client,
        scope: Option<Vec<String>>,
        _audience: String,
        _context: Context,
    ) -> Result<AccessToken, Denial> {
        let mut access_token = AccessToken::new();
        access_token.set_claim("https://foo.com/claim", "bar");
        let mut scope = scope.unwrap_or_default();
        scope.push("extra".to_owned());
        access_token.scope = Some(scope);
        Ok(access_token)
    }
}

hookd_sdk::export_credentials_exchange!(Seed);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_claim_and_the_extra_scope() {
        let token = Seed::exchange(
            Client::default(),
            Some(vec!["read:things".to_owned()]),
            "https://api.example.com/".to_owned(),
            Context::default(),
        )
        .unwrap();
        assert_eq!(token.claims()["https://foo.com/claim"], "bar");
        assert_eq!(token.scope.unwrap(), ["read:things", "extra"]);
    }
}
