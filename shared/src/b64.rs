//! Bytes on the wire: base64url without padding (RFC 4648 §5) inside JSON strings.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq, Eq, Default)]
pub struct B64(pub Vec<u8>);

impl B64 {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn encode(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }
    pub fn decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
        URL_SAFE_NO_PAD.decode(s)
    }
}

impl From<Vec<u8>> for B64 {
    fn from(v: Vec<u8>) -> Self {
        B64(v)
    }
}
impl From<&[u8]> for B64 {
    fn from(v: &[u8]) -> Self {
        B64(v.to_vec())
    }
}

impl std::fmt::Debug for B64 {
    // Never print the bytes: they may be ciphertext or key material, and logs must not hold either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "B64({} bytes)", self.0.len())
    }
}

impl Serialize for B64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        URL_SAFE_NO_PAD
            .decode(s.as_bytes())
            .map(B64)
            .map_err(|_| serde::de::Error::custom("expected base64url without padding"))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for B64 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("base64url".into())))
            .pattern(Some("^[A-Za-z0-9_-]*$"))
            .description(Some("bytes, base64url without padding"))
            .into()
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for B64 {}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_reject_padding() {
        let b = B64(vec![0, 1, 2, 250, 251]);
        let j = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<B64>(&j).unwrap(), b);
        assert!(serde_json::from_str::<B64>("\"AAE=\"").is_err());
        assert!(serde_json::from_str::<B64>("\"a b\"").is_err());
    }
}
