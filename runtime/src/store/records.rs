//! The on-disk envelope of every record: `{"version": "1", ...fields}`. A later layout adds a
//! variant and a migration in `decode`; old records keep reading.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;

#[derive(Serialize)]
#[serde(tag = "version")]
enum EnvelopeRef<'a, T> {
    #[serde(rename = "1")]
    V1(&'a T),
}

#[derive(Deserialize)]
#[serde(tag = "version")]
enum Envelope<T> {
    #[serde(rename = "1")]
    V1(T),
}

/// Serialises a record in the current envelope version.
pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising plain data structs to JSON cannot fail.
    serde_json::to_vec(&EnvelopeRef::V1(value)).unwrap_or_default()
}

/// Reads a record of any known envelope version.
pub(super) fn decode<T: DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    match serde_json::from_slice::<Envelope<T>>(bytes) {
        Ok(Envelope::V1(value)) => Ok(value),
        Err(error) => Err(StoreError::Corrupt {
            tree,
            key: String::from_utf8_lossy(key).into_owned(),
            detail: error.to_string(),
        }),
    }
}
