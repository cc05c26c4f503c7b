//! The on-disk envelope of every record: `{"version": "1", ...fields}`. A later layout adds a
//! version and a migration in `decode`; old records keep reading.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;

#[derive(Serialize)]
#[serde(tag = "version")]
enum EnvelopeRef<'a, T> {
    #[serde(rename = "1")]
    V1(&'a T),
}

/// The envelope's version alone. Reading it first and then the record itself costs two scans
/// of the JSON but no copies: an internally tagged enum would first buffer every field of the
/// record as generic content, which made decoding the largest cost of a token request after
/// signing. (Records ignore the `version` field; none of them has a field of that name.)
#[derive(Deserialize)]
struct EnvelopeVersion<'a> {
    #[serde(borrow)]
    version: std::borrow::Cow<'a, str>,
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
    let corrupt = |detail: String| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        detail,
    };
    let envelope: EnvelopeVersion<'_> =
        serde_json::from_slice(bytes).map_err(|error| corrupt(error.to_string()))?;
    match envelope.version.as_ref() {
        "1" => serde_json::from_slice(bytes).map_err(|error| corrupt(error.to_string())),
        other => Err(corrupt(format!("unknown record version {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        name: String,
        scopes: Vec<String>,
    }

    fn record() -> Record {
        Record {
            name: "a \"quoted\" name".to_owned(),
            scopes: vec!["read".to_owned()],
        }
    }

    #[test]
    fn a_record_reads_back_with_its_version_first() {
        let bytes = encode(&record());
        assert!(bytes.starts_with(br#"{"version":"1","#));
        assert_eq!(decode::<Record>("t", b"k", &bytes).unwrap(), record());
    }

    #[test]
    fn the_version_may_come_anywhere_in_the_record() {
        let bytes = br#"{"name":"a \"quoted\" name","scopes":["read"],"version":"1"}"#;
        assert_eq!(decode::<Record>("t", b"k", bytes).unwrap(), record());
    }

    #[test]
    fn unknown_versions_and_broken_records_are_corrupt() {
        for bytes in [
            &br#"{"version":"2","name":"x","scopes":[]}"#[..],
            br#"{"name":"x","scopes":[]}"#,
            br#"{"version":"1","name":"x"}"#,
            b"not json",
        ] {
            let error = decode::<Record>("clients", b"k1", bytes).unwrap_err();
            assert!(
                matches!(&error, StoreError::Corrupt { tree: "clients", key, .. } if key == "k1"),
                "{error:?}"
            );
        }
    }
}
