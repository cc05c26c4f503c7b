//! Signing keys: generated on first start and persisted, parsed once and kept in memory as the
//! [`LiveKeys`] ring that the token path signs with and the management service verifies with
//! and rotates, and published as a JWKS. Signing uses aws-lc-rs directly with the parsed key
//! (parsing a key per token, as `jsonwebtoken::encode` does, costs about 2.8x for RS256).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RsaEncoding, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::model::{Api, KeyState, SigningAlg, SigningKey};
use crate::secrets::{
    AtRest, SEALED_HS256_SECRET, SEALED_SIGNING_KEY, SecretBox, random_alphanumeric,
};

/// Why keys could not be generated or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A stored key could not be parsed.
    #[error("signing key {kid} is unusable: {detail}")]
    Unusable {
        /// The key id.
        kid: String,
        /// What failed.
        detail: String,
    },
    /// Key generation failed.
    #[error("could not generate a {0} key")]
    Generate(&'static str),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

enum KeyMaterial {
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
    Ec(EcdsaKeyPair),
}

/// A parsed key, ready to sign.
pub struct ParsedKey {
    kid: String,
    alg: SigningAlg,
    state: KeyState,
    material: KeyMaterial,
}

impl std::fmt::Debug for ParsedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ParsedKey {
    fn parse(key: &SigningKey, secret_box: &SecretBox) -> Result<Self, KeyError> {
        let unusable = |detail: String| KeyError::Unusable {
            kid: key.kid.clone(),
            detail,
        };
        let encoded = secret_box
            .reveal(SEALED_SIGNING_KEY, &key.kid, &key.pkcs8)
            .map_err(|error| unusable(error.to_string()))?;
        let der = STANDARD
            .decode(&encoded)
            .map_err(|error| unusable(error.to_string()))?;
        let material = match key.alg {
            SigningAlg::RS256 | SigningAlg::PS256 => {
                let pair = RsaKeyPair::from_pkcs8(&der).map_err(|e| unusable(e.to_string()))?;
                let encoding: &'static dyn RsaEncoding = if key.alg == SigningAlg::RS256 {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                KeyMaterial::Rsa(pair, encoding)
            }
            SigningAlg::ES256 => KeyMaterial::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|e| unusable(e.to_string()))?,
            ),
            SigningAlg::HS256 => return Err(unusable("HS256 keys are per API".to_owned())),
        };
        Ok(ParsedKey {
            kid: key.kid.clone(),
            alg: key.alg,
            state: key.state,
            material,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.material {
            KeyMaterial::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(*encoding, rng, message, &mut signature)
                    .map_err(|_| KeyError::Sign)?;
                Ok(signature)
            }
            KeyMaterial::Ec(pair) => pair
                .sign(rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
        }
    }

    /// The public key as a JWK (no private members).
    fn jwk(&self) -> Value {
        match &self.material {
            KeyMaterial::Rsa(pair, _) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "use": "sig",
                    "alg": self.alg.as_str(),
                    "kid": self.kid,
                    "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                })
            }
            KeyMaterial::Ec(pair) => {
                // P-256 public keys are uncompressed points: 0x04 || X (32 bytes) || Y (32 bytes).
                let point = pair.public_key().as_ref();
                let coordinates = point.get(1..).unwrap_or_default();
                let (x, y) = coordinates.split_at(coordinates.len() / 2);
                json!({
                    "kty": "EC",
                    "use": "sig",
                    "alg": self.alg.as_str(),
                    "kid": self.kid,
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y),
                })
            }
        }
    }
}

/// One rotation, per asymmetric algorithm: the next key becomes current, the current one
/// retires (still published, so tokens it signed verify until they expire), and a new next
/// key is generated. A retired key is dropped once `keep_retired` seconds (the longest token
/// lifetime of any API) have passed since it stopped signing: however often keys rotate, no
/// live token's key goes unpublished.
pub fn rotate(
    keys: &[SigningKey],
    now: u64,
    keep_retired: u64,
    secret_box: &SecretBox,
) -> Result<Vec<SigningKey>, KeyError> {
    let mut rotated = Vec::new();
    for alg in SigningAlg::ASYMMETRIC {
        for key in keys.iter().filter(|key| key.alg == alg) {
            match key.state {
                KeyState::Previous => rotated.push(key.clone()),
                KeyState::Current => rotated.push(SigningKey {
                    state: KeyState::Previous,
                    retired_at: Some(now),
                    ..key.clone()
                }),
                KeyState::Next => rotated.push(SigningKey {
                    state: KeyState::Current,
                    ..key.clone()
                }),
            }
        }
        rotated.push(generate(alg, KeyState::Next, now, secret_box)?);
    }
    Ok(drop_expired_retired(rotated, now, keep_retired))
}

/// `keys` without the retired keys no token they signed can still be live in: retired more
/// than `keep_retired` seconds before `now`. A retired key without a retirement time (stored
/// before it was recorded) counts as retired `now`.
pub fn drop_expired_retired(keys: Vec<SigningKey>, now: u64, keep_retired: u64) -> Vec<SigningKey> {
    keys.into_iter()
        .filter_map(|mut key| {
            if key.state != KeyState::Previous {
                return Some(key);
            }
            let retired_at = *key.retired_at.get_or_insert(now);
            (now < retired_at.saturating_add(keep_retired)).then_some(key)
        })
        .collect()
}

/// Generates a new key pair for an asymmetric algorithm, its private half sealed.
pub fn generate(
    alg: SigningAlg,
    state: KeyState,
    now: u64,
    secret_box: &SecretBox,
) -> Result<SigningKey, KeyError> {
    let pkcs8 = match alg {
        SigningAlg::RS256 | SigningAlg::PS256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .and_then(|pair| pair.as_der().map(|der| der.as_ref().to_vec()))
            .map_err(|_| KeyError::Generate("RSA"))?,
        SigningAlg::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|pair| pair.to_pkcs8v1().map(|der| der.as_ref().to_vec()))
            .map_err(|_| KeyError::Generate("P-256"))?,
        SigningAlg::HS256 => return Err(KeyError::Generate("HS256 (per-API secret)")),
    };
    let kid = random_alphanumeric(24);
    Ok(SigningKey {
        pkcs8: seal_private_key(secret_box, &kid, &STANDARD.encode(pkcs8)),
        kid,
        alg,
        state,
        created_at: now,
        retired_at: None,
    })
}

/// A private key (PKCS#8, base64) as the store keeps it: sealed, with its kid as the place.
pub fn seal_private_key(secret_box: &SecretBox, kid: &str, pkcs8_base64: &str) -> AtRest {
    AtRest::Sealed(secret_box.seal_bytes(SEALED_SIGNING_KEY, kid, pkcs8_base64.as_bytes()))
}

/// `key` with its private half sealed, if it was stored in clear before sealing existed;
/// `None` when it is sealed already.
pub fn sealed_if_clear(key: &SigningKey, secret_box: &SecretBox) -> Option<SigningKey> {
    match &key.pkcs8 {
        AtRest::Sealed(_) => None,
        AtRest::Clear(text) => Some(SigningKey {
            pkcs8: seal_private_key(secret_box, &key.kid, text),
            ..key.clone()
        }),
    }
}

/// Why a presented token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a well-formed JWT, unknown `kid`, wrong algorithm, bad signature, wrong issuer or
    /// audience.
    #[error("the access token is invalid")]
    Invalid,
    /// Past its `exp`.
    #[error("the access token has expired")]
    Expired,
}

/// A public key ready to verify, by `kid`.
struct Verifier {
    key: jsonwebtoken::DecodingKey,
    algorithm: jsonwebtoken::Algorithm,
}

/// The parsed signing keys: the current one per algorithm signs; all are published, and all
/// verify.
pub struct KeyRing {
    current: HashMap<SigningAlg, Arc<ParsedKey>>,
    published: Vec<Arc<ParsedKey>>,
    verifiers: HashMap<String, Verifier>,
    rng: SystemRandom,
    /// Opens the sealed private keys and HS256 secrets, and seals new ones.
    secret_box: Arc<SecretBox>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Parses stored keys.
    pub fn from_keys(keys: &[SigningKey], secret_box: Arc<SecretBox>) -> Result<Self, KeyError> {
        let mut ring = KeyRing {
            current: HashMap::new(),
            published: Vec::new(),
            verifiers: HashMap::new(),
            rng: SystemRandom::new(),
            secret_box,
        };
        for key in keys {
            let parsed = Arc::new(ParsedKey::parse(key, &ring.secret_box)?);
            if key.state == KeyState::Current {
                ring.current.insert(key.alg, parsed.clone());
            }
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(parsed.jwk()).map_err(|error| KeyError::Unusable {
                    kid: key.kid.clone(),
                    detail: error.to_string(),
                })?;
            let verifier = Verifier {
                key: jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|error| {
                    KeyError::Unusable {
                        kid: key.kid.clone(),
                        detail: error.to_string(),
                    }
                })?,
                algorithm: match key.alg {
                    SigningAlg::RS256 => jsonwebtoken::Algorithm::RS256,
                    SigningAlg::PS256 => jsonwebtoken::Algorithm::PS256,
                    SigningAlg::ES256 => jsonwebtoken::Algorithm::ES256,
                    SigningAlg::HS256 => jsonwebtoken::Algorithm::HS256,
                },
            };
            ring.verifiers.insert(key.kid.clone(), verifier);
            ring.published.push(parsed);
        }
        Ok(ring)
    }

    /// Verifies a token this server signed with a published key: signature (by `kid`, with
    /// that key's algorithm only), issuer, audience, and expiry against `now`. Returns the
    /// claims.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: u64,
    ) -> Result<serde_json::Map<String, Value>, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
        let verifier = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifiers.get(kid))
            .ok_or(VerifyError::Invalid)?;
        let mut validation = jsonwebtoken::Validation::new(verifier.algorithm);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        // Expiry is checked below against the caller's clock, not jsonwebtoken's.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &verifier.key,
            &validation,
        )
        .map_err(|_| VerifyError::Invalid)?
        .claims;
        match claims.get("exp").and_then(Value::as_u64) {
            Some(exp) if exp > now => Ok(claims),
            Some(_) => Err(VerifyError::Expired),
            None => Err(VerifyError::Invalid),
        }
    }

    /// The (algorithm, state) pairs a complete key set lacks: every asymmetric algorithm has
    /// a current key that signs and a next key published ahead of its rotation.
    pub fn missing(keys: &[SigningKey]) -> Vec<(SigningAlg, KeyState)> {
        SigningAlg::ASYMMETRIC
            .into_iter()
            .flat_map(|alg| [(alg, KeyState::Current), (alg, KeyState::Next)])
            .filter(|(alg, state)| !keys.iter().any(|k| k.alg == *alg && k.state == *state))
            .collect()
    }

    /// The published keys' public view: kid, algorithm and state of each.
    pub fn summary(&self) -> Vec<(String, SigningAlg, KeyState)> {
        self.published
            .iter()
            .map(|key| (key.kid.clone(), key.alg, key.state))
            .collect()
    }

    /// The secrets key the ring's private keys are sealed under.
    pub fn secret_box(&self) -> &Arc<SecretBox> {
        &self.secret_box
    }

    /// The HMAC key `api` signs HS256 tokens with (`None` for the asymmetric algorithms): its
    /// sealed `signing_secret` opened, then read in the API's [`SecretKeyForm`].
    pub fn hs256_key(&self, api: &Api) -> Result<Option<Vec<u8>>, KeyError> {
        let Some(stored) = &api.signing_secret else {
            return Ok(None);
        };
        let unusable = |detail: &str| KeyError::Unusable {
            kid: format!("HS256 secret of API {}", api.id),
            detail: detail.to_owned(),
        };
        let text = self
            .secret_box
            .reveal(SEALED_HS256_SECRET, &api.id, stored)
            .map_err(|error| unusable(&error.to_string()))?;
        let text = std::str::from_utf8(&text).map_err(|_| unusable("not text"))?;
        api.signing_secret_form
            .key_bytes(text)
            .map(Some)
            .ok_or_else(|| unusable("not in its stored form"))
    }

    /// `{"keys": [...]}`: every published public key.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published.iter().map(|key| key.jwk()).collect::<Vec<_>>() })
    }

    /// Signs `header.payload` (already base64url) and returns the compact JWT.
    pub fn sign_jwt(
        &self,
        alg: SigningAlg,
        hs256_secret: Option<&[u8]>,
        typ: &str,
        payload: &Value,
    ) -> Result<String, KeyError> {
        let (kid, key) = match alg {
            SigningAlg::HS256 => (None, None),
            _ => {
                let key = self.current.get(&alg).ok_or(KeyError::Sign)?;
                (Some(key.kid.as_str()), Some(key))
            }
        };
        let header = match kid {
            Some(kid) => json!({"alg": alg.as_str(), "typ": typ, "kid": kid}),
            None => json!({"alg": alg.as_str(), "typ": typ}),
        };
        // Straight into bytes: `Value`'s `Display` goes through the formatter a fragment at a
        // time. Serializing a `Value` cannot fail (string keys, a Vec to write to).
        let json = |value: &Value| serde_json::to_vec(value).map_err(|_| KeyError::Sign);
        let mut jwt = URL_SAFE_NO_PAD.encode(json(&header)?);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(json(payload)?, &mut jwt);
        let signature = match key {
            Some(key) => key.sign(&self.rng, jwt.as_bytes())?,
            None => {
                let secret = hs256_secret.ok_or(KeyError::Sign)?;
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
                hmac::sign(&key, jwt.as_bytes()).as_ref().to_vec()
            }
        };
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(jwt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_box() -> Arc<SecretBox> {
        Arc::new(SecretBox::new(&[7; 32]))
    }

    #[test]
    fn rotation_keeps_retired_keys_published_until_no_token_they_signed_can_be_live() {
        let secret_box = test_box();
        let mut keys: Vec<SigningKey> = KeyRing::missing(&[])
            .into_iter()
            .map(|(alg, state)| generate(alg, state, 0, &secret_box).unwrap())
            .collect();
        assert_eq!(keys.len(), 6);
        let kid_of = |keys: &[SigningKey], alg, state| {
            keys.iter()
                .find(|k| k.alg == alg && k.state == state)
                .map(|k| k.kid.clone())
        };
        let next_before = kid_of(&keys, SigningAlg::ES256, KeyState::Next);
        let current_before = kid_of(&keys, SigningAlg::ES256, KeyState::Current);
        // Tokens live 100 s; three rotations 10 s apart keep all three retired keys.
        keys = rotate(&keys, 1_000, 100, &secret_box).unwrap();
        assert_eq!(
            kid_of(&keys, SigningAlg::ES256, KeyState::Current),
            next_before
        );
        assert_eq!(
            kid_of(&keys, SigningAlg::ES256, KeyState::Previous),
            current_before
        );
        assert_eq!(keys.len(), 9);
        keys = rotate(&keys, 1_010, 100, &secret_box).unwrap();
        keys = rotate(&keys, 1_020, 100, &secret_box).unwrap();
        assert_eq!(
            keys.len(),
            6 + 3 * 3,
            "every retired key is still published"
        );
        assert!(KeyRing::missing(&keys).is_empty());
        // 100 s after the first retirement, its keys go; the later ones stay.
        keys = rotate(&keys, 1_100, 100, &secret_box).unwrap();
        assert_eq!(keys.len(), 6 + 3 * 3);
        assert!(!keys.iter().any(|k| Some(&k.kid) == current_before.as_ref()));
        assert!(
            keys.iter()
                .all(|k| k.state != KeyState::Previous || k.retired_at >= Some(1_010))
        );
        // Retired keys stored without a time count as retired at the next rotation.
        let mut undated = keys.clone();
        for key in &mut undated {
            key.retired_at = None;
        }
        let kept = drop_expired_retired(undated, 5_000, 100);
        assert_eq!(kept.len(), keys.len());
        assert!(
            kept.iter()
                .all(|k| k.state != KeyState::Previous || k.retired_at == Some(5_000))
        );
    }

    #[test]
    fn verification_checks_expiry_against_the_callers_clock_and_rejects_other_keys() {
        let secret_box = test_box();
        let key = generate(SigningAlg::ES256, KeyState::Current, 0, &secret_box).unwrap();
        let ring = KeyRing::from_keys(std::slice::from_ref(&key), secret_box.clone()).unwrap();
        let claims = json!({"iss": "https://i/", "aud": "a", "sub": "s", "exp": 1_000});
        let token = ring
            .sign_jwt(SigningAlg::ES256, None, "JWT", &claims)
            .unwrap();
        assert!(ring.verify(&token, "https://i/", "a", 999).is_ok());
        assert_eq!(
            ring.verify(&token, "https://i/", "a", 1_000),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            ring.verify(&token, "https://i/", "b", 999),
            Err(VerifyError::Invalid)
        );
        assert_eq!(
            ring.verify(&token, "https://x/", "a", 999),
            Err(VerifyError::Invalid)
        );
        // Another ring's key (same kid space, different key) does not verify it.
        let another = generate(SigningAlg::ES256, KeyState::Current, 0, &secret_box).unwrap();
        let another_pkcs8 = secret_box
            .reveal(SEALED_SIGNING_KEY, &another.kid, &another.pkcs8)
            .unwrap();
        let other = KeyRing::from_keys(
            &[SigningKey {
                kid: key.kid.clone(),
                pkcs8: seal_private_key(
                    &secret_box,
                    &key.kid,
                    std::str::from_utf8(&another_pkcs8).unwrap(),
                ),
                ..another
            }],
            secret_box.clone(),
        )
        .unwrap();
        assert_eq!(
            other.verify(&token, "https://i/", "a", 999),
            Err(VerifyError::Invalid)
        );
    }

    #[test]
    fn private_keys_are_sealed_to_their_kid_and_clear_ones_from_before_still_load() {
        let secret_box = test_box();
        let key = generate(SigningAlg::ES256, KeyState::Current, 0, &secret_box).unwrap();
        let stored = serde_json::to_string(&key).unwrap();
        let pkcs8 = secret_box
            .reveal(SEALED_SIGNING_KEY, &key.kid, &key.pkcs8)
            .unwrap();
        let pkcs8 = std::str::from_utf8(&pkcs8).unwrap();
        assert!(
            !stored.contains(pkcs8),
            "the record holds no private key in clear"
        );
        // Under another secrets key, or moved to another kid, it does not open.
        assert!(
            KeyRing::from_keys(
                std::slice::from_ref(&key),
                Arc::new(SecretBox::new(&[8; 32]))
            )
            .is_err()
        );
        let moved = SigningKey {
            kid: "another".to_owned(),
            ..key.clone()
        };
        assert!(KeyRing::from_keys(&[moved], secret_box.clone()).is_err());
        // A record written before sealing (base64 in clear) still signs, and seals once.
        let clear: SigningKey = serde_json::from_str(
            &serde_json::to_string(&json!({
                "kid": key.kid, "alg": "ES256", "pkcs8": pkcs8, "state": "current", "created_at": 0,
            }))
            .unwrap(),
        )
        .unwrap();
        assert!(matches!(clear.pkcs8, AtRest::Clear(_)));
        assert!(KeyRing::from_keys(std::slice::from_ref(&clear), secret_box.clone()).is_ok());
        let sealed = sealed_if_clear(&clear, &secret_box).expect("sealed now");
        assert!(sealed_if_clear(&sealed, &secret_box).is_none());
        assert!(KeyRing::from_keys(&[sealed], secret_box.clone()).is_ok());
    }
}

/// The key ring in use, shared by the token path (which signs with it) and the management
/// service (which verifies its own tokens with it and rotates it): a rotation swaps the whole
/// ring at once, and requests in flight finish on the ring they loaded.
#[derive(Debug, Clone)]
pub struct LiveKeys {
    ring: Arc<ArcSwap<KeyRing>>,
}

impl LiveKeys {
    /// Live keys starting from `ring`.
    pub fn new(ring: KeyRing) -> Self {
        LiveKeys {
            ring: Arc::new(ArcSwap::from_pointee(ring)),
        }
    }

    /// The ring in use now.
    pub fn load(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.ring.load()
    }

    /// Makes `ring` the one in use.
    pub fn swap(&self, ring: KeyRing) {
        self.ring.store(Arc::new(ring));
    }
}
