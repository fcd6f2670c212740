//! Everything the OptoVault client and server must agree on.
//!
//! * [`wire`]: the JSON request and response bodies of the HTTP API.
//! * [`envelope`]: the record envelope as the server sees it (header + opaque ciphertext), and
//!   the exact bytes that are authenticated (AAD) and signed. No cryptography here.
//! * [`opaque`]: the OPAQUE (RFC 9807) cipher suite both sides must use.
//! * [`domain`]: plaintext record types and their validation (only ever handled in the browser).
//! * `crypto` and `password` (feature `client`): the record cipher, key wrapping, key bundles and
//!   the password policy. The server does not enable this feature, so it cannot decrypt.
//!
//! Ids are random UUIDv4: they reveal nothing about order or origin.

pub mod archive;
pub mod audit;
pub mod b64;
pub mod chart;
pub mod clinic_export;
pub mod domain;
pub mod envelope;
pub mod fhir;
pub mod opaque;
pub mod patient_index;
pub mod roster;
pub mod wire;

#[cfg(feature = "client")]
pub mod crypto;
#[cfg(feature = "client")]
pub mod password;
#[cfg(feature = "client")]
pub mod team;

pub use b64::B64;
pub use envelope::{Compartment, RecordEnvelope};

/// Usernames are compared in this normalised form (lower case, trimmed) everywhere.
pub fn normalize_username(raw: &str) -> Result<String, String> {
    let u = raw.trim().to_lowercase();
    if u.len() < 3 || u.len() > 64 {
        return Err("Username must be 3 to 64 characters.".into());
    }
    if !u
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err("Username may contain only letters, digits and . _ - @".into());
    }
    Ok(u)
}

/// Seconds since the Unix epoch, the time unit of every timestamp on the wire.
pub type UnixTime = i64;

/// Limits shared by client and server so the client never builds a request the server rejects.
pub mod limits {
    /// Largest accepted request body (a batch of records).
    pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
    /// Largest ciphertext of one record.
    pub const MAX_CIPHERTEXT_BYTES: usize = 256 * 1024;
    /// Most records in one batch write.
    pub const MAX_BATCH: usize = 1000;
    /// Most records or changes returned in one page.
    pub const MAX_PAGE: usize = 1000;
    /// Largest wrapped key blob, sealed key bundle or OPAQUE message.
    pub const MAX_SMALL_BLOB: usize = 4096;
    /// Most wrapped keys sent in one clinic creation.
    pub const MAX_WRAPPED_KEYS: usize = 64;
}
