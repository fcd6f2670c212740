//! OPAQUE (RFC 9807) as OptoVault uses it: Ristretto255 OPRF, 3DH over Ristretto255 with SHA-512,
//! Argon2id (m = 64 MiB, t = 3, p = 1) as the key-stretching function.
//!
//! The server runs the `Server*` half with the same suite and never sees the password; the
//! client's half returns OPAQUE's `export_key`, from which the key that seals the user's private
//! key bundle is derived (`crypto::bundle_key`).

use opaque_ke::{CipherSuite, Ristretto255, TripleDh};

/// The one cipher suite of both sides.
pub struct Suite;

impl CipherSuite for Suite {
    type OprfCs = Ristretto255;
    type KeyExchange = TripleDh<Ristretto255, sha2::Sha512>;
    type Ksf = argon2::Argon2<'static>;
}

/// OPAQUE server identity bound into every login (RFC 9807 §6.1 identifiers).
pub const SERVER_IDENTITY: &[u8] = b"optovault";

/// Argon2id memory cost in KiB (64 MiB), time cost and parallelism.
pub const ARGON2_M_KIB: u32 = 64 * 1024;
pub const ARGON2_T: u32 = 3;
pub const ARGON2_P: u32 = 1;

/// The key-stretching function with OptoVault's parameters.
pub fn ksf() -> argon2::Argon2<'static> {
    let params = argon2::Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .expect("constant Argon2 parameters are valid");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

pub use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialFinalization, CredentialRequest,
    CredentialResponse, Identifiers, RegistrationRequest, RegistrationResponse, RegistrationUpload,
    ServerLogin, ServerRegistration, ServerSetup,
};
