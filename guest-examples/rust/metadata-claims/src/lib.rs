//! Derives claims from the application's metadata and a hook secret: the client's tier and
//! region become claims, and a per-tenant key id read from the `KEY_ID` secret is added, so
//! APIs can route and rate-limit machine clients without a lookup of their own.

use hookd_sdk::{AccessToken, Client, Context, CredentialsExchange, Denial, json};

const NAMESPACE: &str = "https://hookd.example.com";

/// Turns `client_metadata.tier` / `.region` and the `KEY_ID` secret into namespaced claims.
pub struct MetadataClaims;

impl CredentialsExchange for MetadataClaims {
    fn exchange(
        client: Client,
        scope: Option<Vec<String>>,
        _audience: String,
        context: Context,
    ) -> Result<AccessToken, Denial> {
        let Some(key_id) = context.secrets.get("KEY_ID") else {
            // A missing secret is a configuration error on our side, not the client's.
            return Err(Denial::server_error("hook secret KEY_ID is not set"));
        };
        let tier = client.metadata.get("tier").map_or("free", String::as_str);
        let mut access_token = AccessToken::new();
        access_token.set_claim(format!("{NAMESPACE}/tier"), tier);
        access_token.set_claim(format!("{NAMESPACE}/key_id"), key_id.as_str());
        access_token.set_claim(
            format!("{NAMESPACE}/client"),
            json!({ "name": client.name, "region": client.metadata.get("region") }),
        );
        // Premium clients also get the bulk-export scope.
        if tier == "premium" {
            let mut scope = scope.unwrap_or_default();
            scope.push("export:bulk".to_owned());
            access_token.scope = Some(scope);
        }
        Ok(access_token)
    }
}

hookd_sdk::export_credentials_exchange!(MetadataClaims);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn context_with_key() -> Context {
        Context {
            secrets: BTreeMap::from([("KEY_ID".to_owned(), "k-42".to_owned())]),
            ..Context::default()
        }
    }

    #[test]
    fn premium_clients_get_tier_claims_and_the_bulk_scope() {
        let client = Client {
            name: "reporting".to_owned(),
            metadata: BTreeMap::from([
                ("tier".to_owned(), "premium".to_owned()),
                ("region".to_owned(), "eu".to_owned()),
            ]),
            ..Client::default()
        };
        let token =
            MetadataClaims::exchange(client, None, String::new(), context_with_key()).unwrap();
        assert_eq!(token.claims()["https://hookd.example.com/tier"], "premium");
        assert_eq!(token.claims()["https://hookd.example.com/key_id"], "k-42");
        assert_eq!(
            token.claims()["https://hookd.example.com/client"]["region"],
            "eu"
        );
        assert_eq!(token.scope.unwrap(), ["export:bulk"]);
    }

    #[test]
    fn a_missing_secret_is_a_server_error() {
        let denial =
            MetadataClaims::exchange(Client::default(), None, String::new(), Context::default())
                .unwrap_err();
        assert_eq!(denial.code, hookd_sdk::DenyCode::ServerError);
    }
}
