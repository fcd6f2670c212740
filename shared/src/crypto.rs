//! The client's cryptography (feature `client`): key bundles, clinic key wrapping, the record
//! cipher and the client half of OPAQUE. Components never call primitives directly; they call
//! these functions. Specs: RFC 9807 (OPAQUE), RFC 9180 (HPKE), RFC 5869 (HKDF), RFC 8032
//! (Ed25519), NIST SP 800-38D (AES-GCM).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hkdf::Hkdf;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use uuid::Uuid;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::envelope::{Purpose, ENVELOPE_FORMAT, NONCE_LEN};
use crate::opaque::{self, Suite};
use crate::wire::{PublicKeys, SealedBlob, WrappedKey};
use crate::{Compartment, RecordEnvelope, B64};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Wrong password, or the server's OPAQUE answer was not for this password/account. Deliberately
    /// one error: the user must not learn which part was wrong.
    #[error("wrong username or password")]
    LoginFailed,
    #[error("OPAQUE protocol message is malformed")]
    Protocol,
    #[error("the key bundle could not be opened")]
    Bundle,
    #[error("the server presented public keys that do not match this account's private keys")]
    PublicKeyMismatch,
    #[error("a wrapped key could not be unwrapped")]
    Unwrap,
    #[error("no key {0} for this clinic")]
    UnknownKey(Uuid),
    #[error("record could not be decrypted: it was altered, moved or replayed")]
    Open,
    #[error("record signature does not verify")]
    Signature,
    #[error("unknown author {0}")]
    UnknownAuthor(Uuid),
    #[error("malformed envelope: {0}")]
    Envelope(#[from] crate::envelope::EnvelopeError),
    #[error("file chunk {0} could not be decrypted: it was altered, moved, cut short or is from another file")]
    FileChunk(u32),
    #[error("malformed file key")]
    FileKey,
    #[error("audit detail could not be opened: it was altered or moved to another entry")]
    AuditDetail,
}

type Result<T> = std::result::Result<T, CryptoError>;

fn hkdf32(ikm: &[u8], salt: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut out = Zeroizing::new([0u8; 32]);
    hk.expand_multi_info(info, out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut n);
    n
}

fn aes_seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> ([u8; NONCE_LEN], Vec<u8>) {
    let nonce = random_nonce();
    let cipher = Aes256Gcm::new(key.into());
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    (nonce, ct)
}

fn aes_open(key: &[u8; 32], nonce: &[u8], aad: &[u8], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

// ---- the user's own key pairs ------------------------------------------------------------------

/// A user's private keys. Wiped from memory when dropped (logout drops them).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct UserKeys {
    x25519_secret: [u8; 32],
    ed25519_secret: [u8; 32],
}

impl UserKeys {
    /// Fresh key pairs from the OS (browser) CSPRNG.
    pub fn generate() -> UserKeys {
        let mut ikm = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(ikm.as_mut());
        let (sk, _) = X25519HkdfSha256::derive_keypair(ikm.as_ref());
        let mut x = [0u8; 32];
        x.copy_from_slice(&sk.to_bytes());
        let signing = SigningKey::generate(&mut OsRng);
        UserKeys {
            x25519_secret: x,
            ed25519_secret: signing.to_bytes(),
        }
    }

    fn hpke_secret(&self) -> <X25519HkdfSha256 as Kem>::PrivateKey {
        <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(&self.x25519_secret)
            .expect("32 bytes is a valid X25519 secret")
    }

    fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.ed25519_secret)
    }

    /// Ed25519 signature over `msg` with this user's signing key.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing_key().sign(msg).to_bytes()
    }

    pub fn public_keys(&self) -> PublicKeys {
        let pk = X25519HkdfSha256::sk_to_pk(&self.hpke_secret());
        PublicKeys {
            x25519: B64(pk.to_bytes().to_vec()),
            ed25519: B64(self.signing_key().verifying_key().to_bytes().to_vec()),
        }
    }

    /// AES-256-GCM key for data this user seals to itself (HKDF of its private keys).
    fn self_key(&self) -> Zeroizing<[u8; 32]> {
        hkdf32(
            &self.to_bytes(),
            b"optovault/v1/self-seal/salt",
            &[b"optovault/v1/self-seal"],
        )
    }

    /// Seals data only this user can open, bound to `context` (e.g. a clinic id): used for the
    /// clinic trust anchor a member pins, kept on the server but unforgeable by it.
    pub fn seal_for_self(&self, context: &[u8], plaintext: &[u8]) -> SealedBlob {
        let aad = [b"optovault/v1/self-seal\0".as_slice(), context].concat();
        let (nonce, ct) = aes_seal(&self.self_key(), &aad, plaintext);
        SealedBlob {
            nonce: B64(nonce.to_vec()),
            ciphertext: B64(ct),
        }
    }

    /// Opens what [`UserKeys::seal_for_self`] sealed under the same `context`.
    pub fn open_for_self(&self, context: &[u8], sealed: &SealedBlob) -> Result<Zeroizing<Vec<u8>>> {
        let aad = [b"optovault/v1/self-seal\0".as_slice(), context].concat();
        aes_open(
            &self.self_key(),
            sealed.nonce.as_slice(),
            &aad,
            sealed.ciphertext.as_slice(),
        )
        .ok_or(CryptoError::Bundle)
    }

    fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(64));
        v.extend_from_slice(&self.x25519_secret);
        v.extend_from_slice(&self.ed25519_secret);
        v
    }

    fn from_bytes(b: &[u8]) -> Option<UserKeys> {
        if b.len() != 64 {
            return None;
        }
        let mut k = UserKeys {
            x25519_secret: [0; 32],
            ed25519_secret: [0; 32],
        };
        k.x25519_secret.copy_from_slice(&b[..32]);
        k.ed25519_secret.copy_from_slice(&b[32..]);
        Some(k)
    }
}

/// The AES-256-GCM key that seals a user's private keys: HKDF-SHA256 of OPAQUE's export key,
/// salted with a fixed label and bound to the username.
fn bundle_key(export_key: &[u8], username: &str) -> Zeroizing<[u8; 32]> {
    hkdf32(
        export_key,
        b"optovault/v1/key-bundle/salt",
        &[b"optovault/v1/key-bundle", username.as_bytes()],
    )
}

fn bundle_aad(username: &str) -> Vec<u8> {
    [b"optovault/v1/key-bundle\0".as_slice(), username.as_bytes()].concat()
}

/// Seals the user's private keys for storage on the server.
pub fn seal_key_bundle(keys: &UserKeys, export_key: &[u8], username: &str) -> SealedBlob {
    let key = bundle_key(export_key, username);
    let (nonce, ct) = aes_seal(&key, &bundle_aad(username), &keys.to_bytes());
    SealedBlob {
        nonce: B64(nonce.to_vec()),
        ciphertext: B64(ct),
    }
}

/// Opens the key bundle and checks that the public keys the server presents belong to it (so a
/// server cannot substitute its own public keys for this account).
pub fn open_key_bundle(
    sealed: &SealedBlob,
    export_key: &[u8],
    username: &str,
    presented: &PublicKeys,
) -> Result<UserKeys> {
    let key = bundle_key(export_key, username);
    let bytes = aes_open(
        &key,
        sealed.nonce.as_slice(),
        &bundle_aad(username),
        sealed.ciphertext.as_slice(),
    )
    .ok_or(CryptoError::Bundle)?;
    let keys = UserKeys::from_bytes(&bytes).ok_or(CryptoError::Bundle)?;
    if &keys.public_keys() != presented {
        return Err(CryptoError::PublicKeyMismatch);
    }
    Ok(keys)
}

// ---- clinic keys and HPKE wrapping --------------------------------------------------------------

/// One clinic key: a compartment's AES-256 key of one epoch. Wiped when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ClinicKey {
    #[zeroize(skip)]
    pub key_id: Uuid,
    #[zeroize(skip)]
    pub compartment: Compartment,
    #[zeroize(skip)]
    pub epoch: u32,
    /// `Some(chart)` for a restricted chart's own key; `None` for a clinic-wide key.
    #[zeroize(skip)]
    pub chart_id: Option<Uuid>,
    secret: [u8; 32],
}

impl std::fmt::Debug for ClinicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClinicKey({}, {:?}, epoch {})",
            self.key_id, self.compartment, self.epoch
        )
    }
}

impl ClinicKey {
    pub fn generate(compartment: Compartment, epoch: u32) -> ClinicKey {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        ClinicKey {
            key_id: Uuid::new_v4(),
            compartment,
            epoch,
            chart_id: None,
            secret,
        }
    }

    /// A restricted chart's own key.
    pub fn generate_for_chart(chart_id: Uuid, compartment: Compartment, epoch: u32) -> ClinicKey {
        ClinicKey {
            chart_id: Some(chart_id),
            ..ClinicKey::generate(compartment, epoch)
        }
    }
}

/// Seals a short secret to an X25519 public key with HPKE base mode; `info` names its purpose and
/// binds its context (also used as AAD). Returns (encapsulated key, ciphertext).
pub fn seal_to(recipient_x25519: &[u8], info: &[u8], secret: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(recipient_x25519)
        .map_err(|_| CryptoError::Unwrap)?;
    let (enc, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
        &OpModeS::Base,
        &pk,
        info,
        secret,
        info,
        &mut OsRng,
    )
    .map_err(|_| CryptoError::Unwrap)?;
    Ok((enc.to_bytes().to_vec(), ct))
}

/// Opens what [`seal_to`] sealed to me under the same `info`.
pub fn open_sealed(
    my_keys: &UserKeys,
    info: &[u8],
    enc: &[u8],
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let enc =
        <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(enc).map_err(|_| CryptoError::Unwrap)?;
    hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &my_keys.hpke_secret(),
        &enc,
        info,
        ct,
        info,
    )
    .map(Zeroizing::new)
    .map_err(|_| CryptoError::Unwrap)
}

/// The keys of one clinic that this member holds.
#[derive(Clone, Debug, Default)]
pub struct ClinicKeyring {
    keys: Vec<ClinicKey>,
}

impl ClinicKeyring {
    /// A new clinic's keys: one per compartment, epoch 1.
    pub fn generate() -> ClinicKeyring {
        ClinicKeyring {
            keys: Compartment::ALL
                .into_iter()
                .map(|c| ClinicKey::generate(c, 1))
                .collect(),
        }
    }
    pub fn keys(&self) -> &[ClinicKey] {
        &self.keys
    }
    pub fn by_id(&self, key_id: &Uuid) -> Option<&ClinicKey> {
        self.keys.iter().find(|k| &k.key_id == key_id)
    }
    /// Every key (all epochs) of the compartments `role` is granted: what a member of that role
    /// receives, so records written before a rotation stay readable to them.
    pub fn for_role(&self, role: crate::wire::Role) -> Vec<&ClinicKey> {
        self.keys
            .iter()
            .filter(|k| k.chart_id.is_none() && role.grants(k.compartment))
            .collect()
    }

    /// Adds fresh keys at `epoch` for `compartments` (a rotation); old epochs are kept so old
    /// records stay readable. Returns the new keys.
    pub fn rotate(&mut self, compartments: &[Compartment], epoch: u32) -> Vec<ClinicKey> {
        let fresh: Vec<ClinicKey> = compartments
            .iter()
            .map(|c| ClinicKey::generate(*c, epoch))
            .collect();
        self.keys.extend(fresh.iter().cloned());
        fresh
    }

    /// Adds a restricted chart's own keys at `epoch` (restricting it, or rotating its keys when
    /// its care team shrinks). Returns the new keys.
    pub fn add_chart_keys(
        &mut self,
        chart_id: Uuid,
        compartments: &[Compartment],
        epoch: u32,
    ) -> Vec<ClinicKey> {
        let fresh: Vec<ClinicKey> = compartments
            .iter()
            .map(|c| ClinicKey::generate_for_chart(chart_id, *c, epoch))
            .collect();
        self.keys.extend(fresh.iter().cloned());
        fresh
    }

    /// Whether this keyring holds keys of a restricted chart.
    pub fn has_chart(&self, chart_id: &Uuid) -> bool {
        self.keys
            .iter()
            .any(|k| k.chart_id.as_ref() == Some(chart_id))
    }

    /// The key new writes to `chart_id` use: the chart's own newest key if the chart is
    /// restricted (and this member is on its care team), else the clinic's newest.
    pub fn sealing_key(&self, chart_id: &Uuid, c: Compartment) -> Option<&ClinicKey> {
        let chart_keys = self
            .keys
            .iter()
            .filter(|k| k.chart_id.as_ref() == Some(chart_id) && k.compartment == c)
            .max_by_key(|k| k.epoch);
        chart_keys.or_else(|| self.current(c))
    }

    /// The newest clinic-wide key of a compartment.
    pub fn current(&self, c: Compartment) -> Option<&ClinicKey> {
        self.keys
            .iter()
            .filter(|k| k.compartment == c && k.chart_id.is_none())
            .max_by_key(|k| k.epoch)
    }
}

fn wrap_info(
    clinic_id: &Uuid,
    recipient: &Uuid,
    key_id: &Uuid,
    epoch: u32,
    c: Compartment,
    chart: Option<&Uuid>,
) -> Vec<u8> {
    let mut info = b"optovault/v1/wrap\0".to_vec();
    info.extend_from_slice(clinic_id.as_bytes());
    info.extend_from_slice(recipient.as_bytes());
    info.extend_from_slice(key_id.as_bytes());
    info.extend_from_slice(&epoch.to_be_bytes());
    info.push(c.code());
    // A restricted chart's key also binds its chart, so it cannot pass for a clinic-wide key or
    // another chart's.
    if let Some(chart) = chart {
        info.push(1);
        info.extend_from_slice(chart.as_bytes());
    }
    info
}

/// Wraps a clinic key to a member's X25519 public key with HPKE base mode
/// (X25519-HKDF-SHA256, HKDF-SHA256, AES-256-GCM); `info` and `aad` bind clinic, recipient, key id,
/// epoch and compartment.
pub fn wrap_clinic_key(
    clinic_id: &Uuid,
    key: &ClinicKey,
    recipient: &Uuid,
    recipient_x25519: &[u8],
) -> Result<WrappedKey> {
    let pk = <X25519HkdfSha256 as Kem>::PublicKey::from_bytes(recipient_x25519)
        .map_err(|_| CryptoError::Unwrap)?;
    let info = wrap_info(
        clinic_id,
        recipient,
        &key.key_id,
        key.epoch,
        key.compartment,
        key.chart_id.as_ref(),
    );
    let (enc, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, X25519HkdfSha256, _>(
        &OpModeS::Base,
        &pk,
        &info,
        &key.secret,
        &info,
        &mut OsRng,
    )
    .map_err(|_| CryptoError::Unwrap)?;
    Ok(WrappedKey {
        key_id: key.key_id,
        compartment: key.compartment,
        epoch: key.epoch,
        recipient: *recipient,
        chart_id: key.chart_id,
        enc: B64(enc.to_bytes().to_vec()),
        ciphertext: B64(ct),
    })
}

/// Unwraps a clinic key wrapped to me. Fails if any bound field was changed.
pub fn unwrap_clinic_key(
    clinic_id: &Uuid,
    wrapped: &WrappedKey,
    me: &Uuid,
    my_keys: &UserKeys,
) -> Result<ClinicKey> {
    let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(wrapped.enc.as_slice())
        .map_err(|_| CryptoError::Unwrap)?;
    let info = wrap_info(
        clinic_id,
        me,
        &wrapped.key_id,
        wrapped.epoch,
        wrapped.compartment,
        wrapped.chart_id.as_ref(),
    );
    let pt = Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
            &OpModeR::Base,
            &my_keys.hpke_secret(),
            &enc,
            &info,
            wrapped.ciphertext.as_slice(),
            &info,
        )
        .map_err(|_| CryptoError::Unwrap)?,
    );
    if pt.len() != 32 {
        return Err(CryptoError::Unwrap);
    }
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&pt);
    Ok(ClinicKey {
        key_id: wrapped.key_id,
        compartment: wrapped.compartment,
        epoch: wrapped.epoch,
        chart_id: wrapped.chart_id,
        secret,
    })
}

/// Unwraps every key in `wrapped` addressed to me into a keyring.
pub fn unwrap_keyring(
    clinic_id: &Uuid,
    wrapped: &[WrappedKey],
    me: &Uuid,
    my_keys: &UserKeys,
) -> Result<ClinicKeyring> {
    let keys = wrapped
        .iter()
        .filter(|w| &w.recipient == me)
        .map(|w| unwrap_clinic_key(clinic_id, w, me, my_keys))
        .collect::<Result<Vec<_>>>()?;
    Ok(ClinicKeyring { keys })
}

// ---- the record cipher --------------------------------------------------------------------------

/// Where a record goes: everything bound into its AAD besides the key and author.
#[derive(Clone, Copy, Debug)]
pub struct RecordSlot {
    pub clinic_id: Uuid,
    pub chart_id: Uuid,
    pub record_id: Uuid,
    pub version: u64,
    pub purpose: Purpose,
}

/// Per-record-version subkey: HKDF-SHA256 of the compartment key with the record's AAD as info, so
/// every (record, version) has its own AES key and random nonces never repeat under one key in
/// practice.
fn record_key(key: &ClinicKey, aad: &[u8]) -> Zeroizing<[u8; 32]> {
    hkdf32(&key.secret, b"optovault/v1/record-key", &[aad])
}

/// Encrypts and signs one record version.
pub fn seal_record(
    slot: RecordSlot,
    compartment: Compartment,
    keyring: &ClinicKeyring,
    author: &Uuid,
    author_keys: &UserKeys,
    plaintext: &[u8],
) -> Result<RecordEnvelope> {
    seal_version(
        slot,
        compartment,
        keyring,
        author,
        author_keys,
        plaintext,
        false,
    )
}

/// Encrypts and signs a tombstone: the version that deletes a record, holding the content it
/// deletes (so it can be restored), marked `deleted` in its header and AAD.
pub fn seal_tombstone(
    slot: RecordSlot,
    compartment: Compartment,
    keyring: &ClinicKeyring,
    author: &Uuid,
    author_keys: &UserKeys,
    plaintext: &[u8],
) -> Result<RecordEnvelope> {
    seal_version(
        slot,
        compartment,
        keyring,
        author,
        author_keys,
        plaintext,
        true,
    )
}

fn seal_version(
    slot: RecordSlot,
    compartment: Compartment,
    keyring: &ClinicKeyring,
    author: &Uuid,
    author_keys: &UserKeys,
    plaintext: &[u8],
    deleted: bool,
) -> Result<RecordEnvelope> {
    let key = keyring
        .sealing_key(&slot.chart_id, compartment)
        .ok_or(CryptoError::UnknownKey(Uuid::nil()))?;
    let mut env = RecordEnvelope {
        format: ENVELOPE_FORMAT,
        record_id: slot.record_id,
        chart_id: slot.chart_id,
        compartment,
        version: slot.version,
        key_id: key.key_id,
        epoch: key.epoch,
        author: *author,
        nonce: B64::default(),
        ciphertext: B64::default(),
        signature: B64::default(),
        deleted,
    };
    let aad = env.aad(&slot.clinic_id, slot.purpose);
    let (nonce, ct) = aes_seal(&record_key(key, &aad), &aad, plaintext);
    env.nonce = B64(nonce.to_vec());
    env.ciphertext = B64(ct);
    let sig = author_keys
        .signing_key()
        .sign(&env.signing_input(&slot.clinic_id, slot.purpose));
    env.signature = B64(sig.to_bytes().to_vec());
    Ok(env)
}

/// Verifies the author's signature and decrypts. `expect` is where the caller believes the record
/// sits (the clinic it is reading, the record id and version it asked for); any difference from
/// what was sealed makes this fail. `author_key` maps an author id to their Ed25519 key.
pub fn open_record(
    clinic_id: &Uuid,
    purpose: Purpose,
    env: &RecordEnvelope,
    keyring: &ClinicKeyring,
    author_key: impl Fn(&Uuid) -> Option<Vec<u8>>,
) -> Result<Zeroizing<Vec<u8>>> {
    env.check_structure()?;
    let vk_bytes = author_key(&env.author).ok_or(CryptoError::UnknownAuthor(env.author))?;
    let vk_arr: [u8; 32] = vk_bytes
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::Signature)?;
    let vk = VerifyingKey::from_bytes(&vk_arr).map_err(|_| CryptoError::Signature)?;
    let sig_arr: [u8; 64] = env
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::Signature)?;
    vk.verify_strict(
        &env.signing_input(clinic_id, purpose),
        &ed25519_dalek::Signature::from_bytes(&sig_arr),
    )
    .map_err(|_| CryptoError::Signature)?;
    let key = keyring
        .by_id(&env.key_id)
        .ok_or(CryptoError::UnknownKey(env.key_id))?;
    if key.compartment != env.compartment
        || key.epoch != env.epoch
        || key.chart_id.is_some_and(|c| c != env.chart_id)
    {
        return Err(CryptoError::Open);
    }
    let aad = env.aad(clinic_id, purpose);
    aes_open(
        &record_key(key, &aad),
        env.nonce.as_slice(),
        &aad,
        env.ciphertext.as_slice(),
    )
    .ok_or(CryptoError::Open)
}

// ---- OPAQUE, client side ----------------------------------------------------------------------

fn identifiers(username: &str) -> opaque::Identifiers<'_> {
    opaque::Identifiers {
        client: Some(username.as_bytes()),
        server: Some(opaque::SERVER_IDENTITY),
    }
}

/// OPAQUE export key (64 bytes), wiped when dropped.
pub type ExportKey = Zeroizing<Vec<u8>>;

/// Step 1 of registration: blind the password.
pub fn registration_start(password: &str) -> Result<(opaque::ClientRegistration<Suite>, Vec<u8>)> {
    let r = opaque::ClientRegistration::<Suite>::start(&mut OsRng, password.as_bytes())
        .map_err(|_| CryptoError::Protocol)?;
    Ok((r.state, r.message.serialize().to_vec()))
}

/// Step 2 of registration (runs Argon2id): returns the upload for the server and the export key.
pub fn registration_finish(
    state: opaque::ClientRegistration<Suite>,
    password: &str,
    username: &str,
    response: &[u8],
) -> Result<(Vec<u8>, ExportKey)> {
    let response = opaque::RegistrationResponse::<Suite>::deserialize(response)
        .map_err(|_| CryptoError::Protocol)?;
    let ksf = opaque::ksf();
    let r = state
        .finish(
            &mut OsRng,
            password.as_bytes(),
            response,
            opaque::ClientRegistrationFinishParameters::new(identifiers(username), Some(&ksf)),
        )
        .map_err(|_| CryptoError::Protocol)?;
    Ok((
        r.message.serialize().to_vec(),
        Zeroizing::new(r.export_key.to_vec()),
    ))
}

/// Step 1 of login.
pub fn login_start(password: &str) -> Result<(opaque::ClientLogin<Suite>, Vec<u8>)> {
    let r = opaque::ClientLogin::<Suite>::start(&mut OsRng, password.as_bytes())
        .map_err(|_| CryptoError::Protocol)?;
    Ok((r.state, r.message.serialize().to_vec()))
}

/// Step 2 of login (runs Argon2id): the finalization for the server, and the export key.
/// A wrong password and an unknown username both give [`CryptoError::LoginFailed`].
pub fn login_finish(
    state: opaque::ClientLogin<Suite>,
    password: &str,
    username: &str,
    response: &[u8],
) -> Result<(Vec<u8>, ExportKey)> {
    let response = opaque::CredentialResponse::<Suite>::deserialize(response)
        .map_err(|_| CryptoError::LoginFailed)?;
    let ksf = opaque::ksf();
    let r = state
        .finish(
            &mut OsRng,
            password.as_bytes(),
            response,
            opaque::ClientLoginFinishParameters::new(None, identifiers(username), Some(&ksf)),
        )
        .map_err(|_| CryptoError::LoginFailed)?;
    Ok((
        r.message.serialize().to_vec(),
        Zeroizing::new(r.export_key.to_vec()),
    ))
}

// ---- the recovery kit ------------------------------------------------------------------------

/// A 256-bit recovery key: the second way (besides the password) to open a user's key bundle.
/// Shown once, as 13 groups of 4 base32 characters, for the user to print and keep.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RecoveryKey([u8; 32]);

const RECOVERY_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

impl RecoveryKey {
    pub fn generate() -> RecoveryKey {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        RecoveryKey(k)
    }

    /// 52 characters of an unambiguous base32 alphabet (no I, O, 0, 1) in groups of four.
    pub fn to_display(&self) -> String {
        let mut bits: u64 = 0;
        let mut n = 0;
        let mut out = String::with_capacity(64);
        for b in self.0.iter() {
            bits = (bits << 8) | u64::from(*b);
            n += 8;
            while n >= 5 {
                n -= 5;
                out.push(RECOVERY_ALPHABET[((bits >> n) & 31) as usize] as char);
            }
        }
        if n > 0 {
            out.push(RECOVERY_ALPHABET[((bits << (5 - n)) & 31) as usize] as char);
        }
        out.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("ASCII"))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// Parses what [`RecoveryKey::to_display`] printed (case, spaces and dashes ignored).
    pub fn parse(s: &str) -> Option<RecoveryKey> {
        let mut bits: u64 = 0;
        let mut n = 0;
        let mut out = Vec::with_capacity(32);
        for c in s.chars().filter(|c| c.is_ascii_alphanumeric()) {
            let c = c.to_ascii_uppercase() as u8;
            let v = RECOVERY_ALPHABET.iter().position(|a| *a == c)? as u64;
            bits = (bits << 5) | v;
            n += 5;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
            }
        }
        let key: [u8; 32] = out.as_slice().try_into().ok()?;
        Some(RecoveryKey(key))
    }

    fn derive(&self, purpose: &[u8], username: &str) -> Zeroizing<[u8; 32]> {
        hkdf32(
            &self.0,
            b"optovault/v1/recovery/salt",
            &[purpose, username.as_bytes()],
        )
    }

    /// What the client proves the recovery key with at reset time. The server keeps only its
    /// SHA-256; HKDF domain separation keeps it useless for opening the recovery bundle.
    pub fn verifier(&self, username: &str) -> Zeroizing<[u8; 32]> {
        self.derive(b"optovault/v1/recovery/verifier\0", username)
    }

    /// SHA-256 of the verifier: what the server stores.
    pub fn verifier_hash(&self, username: &str) -> [u8; 32] {
        use sha2::Digest;
        Sha256::digest(self.verifier(username).as_ref()).into()
    }

    /// Seals the user's private keys under the recovery key (the recovery bundle).
    pub fn seal_bundle(&self, keys: &UserKeys, username: &str) -> SealedBlob {
        let key = self.derive(b"optovault/v1/recovery/bundle\0", username);
        let aad = [
            b"optovault/v1/recovery-bundle\0".as_slice(),
            username.as_bytes(),
        ]
        .concat();
        let (nonce, ct) = aes_seal(&key, &aad, &keys.to_bytes());
        SealedBlob {
            nonce: B64(nonce.to_vec()),
            ciphertext: B64(ct),
        }
    }

    /// Opens the recovery bundle and checks it against the account's public keys.
    pub fn open_bundle(
        &self,
        sealed: &SealedBlob,
        username: &str,
        presented: &PublicKeys,
    ) -> Result<UserKeys> {
        let key = self.derive(b"optovault/v1/recovery/bundle\0", username);
        let aad = [
            b"optovault/v1/recovery-bundle\0".as_slice(),
            username.as_bytes(),
        ]
        .concat();
        let bytes = aes_open(
            &key,
            sealed.nonce.as_slice(),
            &aad,
            sealed.ciphertext.as_slice(),
        )
        .ok_or(CryptoError::Bundle)?;
        let keys = UserKeys::from_bytes(&bytes).ok_or(CryptoError::Bundle)?;
        if &keys.public_keys() != presented {
            return Err(CryptoError::PublicKeyMismatch);
        }
        Ok(keys)
    }
}

// ---- files: sealed in chunks -------------------------------------------------------------------
//
// Images and documents (up to 50 MiB) are sealed in 1 MiB chunks with the STREAM construction
// (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over AES-256-GCM, from the `aead` crate: the chunk's
// position and a last-chunk flag are part of each nonce, so reordering, swapping, dropping or
// truncating chunks fails to open. Each file has its own random key and nonce prefix, kept in the
// file's metadata record (sealed like every record under the compartment key): no (key, nonce)
// pair is ever used for two different plaintexts, and a retried upload re-seals the same chunk to
// the same bytes. The associated data binds every chunk to its clinic, chart and file.

use aead::stream::{NewStream, StreamBE32, StreamPrimitive};

/// Plaintext bytes per chunk; every chunk but the last is exactly this long.
pub const FILE_CHUNK_BYTES: usize = 1024 * 1024;
/// AES-GCM's tag: a sealed chunk is this much longer than its plaintext.
pub const FILE_CHUNK_OVERHEAD: usize = 16;
/// The largest file a clinic can attach.
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
const FILE_NONCE_PREFIX: usize = 7;

/// One file's own key. Wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct FileKey {
    key: [u8; 32],
    nonce_prefix: [u8; FILE_NONCE_PREFIX],
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

impl FileKey {
    pub fn generate() -> FileKey {
        let mut k = FileKey {
            key: [0; 32],
            nonce_prefix: [0; FILE_NONCE_PREFIX],
        };
        OsRng.fill_bytes(&mut k.key);
        OsRng.fill_bytes(&mut k.nonce_prefix);
        k
    }

    /// The key as it is stored inside the file's (sealed) metadata record.
    pub fn to_b64(&self) -> B64 {
        let mut raw = Vec::with_capacity(32 + FILE_NONCE_PREFIX);
        raw.extend_from_slice(&self.key);
        raw.extend_from_slice(&self.nonce_prefix);
        B64(raw)
    }

    pub fn from_b64(b: &B64) -> Result<FileKey> {
        if b.0.len() != 32 + FILE_NONCE_PREFIX {
            return Err(CryptoError::FileKey);
        }
        let mut k = FileKey {
            key: [0; 32],
            nonce_prefix: [0; FILE_NONCE_PREFIX],
        };
        k.key.copy_from_slice(&b.0[..32]);
        k.nonce_prefix.copy_from_slice(&b.0[32..]);
        Ok(k)
    }

    fn stream(&self) -> StreamBE32<Aes256Gcm> {
        StreamBE32::from_aead(
            Aes256Gcm::new((&self.key).into()),
            (&self.nonce_prefix).into(),
        )
    }
}

/// Where a file belongs: bound into every chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileContext {
    pub clinic_id: Uuid,
    pub chart_id: Uuid,
    pub file_id: Uuid,
}

impl FileContext {
    fn aad(&self) -> Vec<u8> {
        let mut aad = b"optovault/file-chunk/v1".to_vec();
        aad.extend_from_slice(self.clinic_id.as_bytes());
        aad.extend_from_slice(self.chart_id.as_bytes());
        aad.extend_from_slice(self.file_id.as_bytes());
        aad
    }
}

/// How many chunks a file of `size` plaintext bytes has (an empty file has one, empty, chunk).
pub fn file_chunk_count(size: u64) -> u32 {
    let n = size.div_ceil(FILE_CHUNK_BYTES as u64).max(1);
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Seals chunk `index` of a file; `last` must be true exactly for the final chunk.
pub fn seal_file_chunk(
    key: &FileKey,
    ctx: &FileContext,
    index: u32,
    last: bool,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    key.stream()
        .encrypt(
            index,
            last,
            Payload {
                msg: plaintext,
                aad: &ctx.aad(),
            },
        )
        .map_err(|_| CryptoError::FileChunk(index))
}

/// Opens chunk `index`; fails if the chunk was altered, is from another position, file, chart or
/// clinic, or if `last` does not match how it was sealed (a file cut short).
pub fn open_file_chunk(
    key: &FileKey,
    ctx: &FileContext,
    index: u32,
    last: bool,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    key.stream()
        .decrypt(
            index,
            last,
            Payload {
                msg: ciphertext,
                aad: &ctx.aad(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::FileChunk(index))
}

#[cfg(test)]
mod file_tests {
    use super::*;

    fn ctx() -> FileContext {
        FileContext {
            clinic_id: Uuid::new_v4(),
            chart_id: Uuid::new_v4(),
            file_id: Uuid::new_v4(),
        }
    }

    fn seal_all(key: &FileKey, ctx: &FileContext, data: &[u8]) -> Vec<Vec<u8>> {
        let n = file_chunk_count(data.len() as u64);
        (0..n)
            .map(|i| {
                let start = i as usize * FILE_CHUNK_BYTES;
                let end = (start + FILE_CHUNK_BYTES).min(data.len());
                seal_file_chunk(key, ctx, i, i + 1 == n, &data[start..end]).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_file_round_trips_and_chunks_are_bound_to_their_place() {
        let key = FileKey::generate();
        let c = ctx();
        let data: Vec<u8> = (0..(2 * FILE_CHUNK_BYTES + 123)).map(|i| i as u8).collect();
        let sealed = seal_all(&key, &c, &data);
        assert_eq!(sealed.len(), 3);
        assert_eq!(sealed[0].len(), FILE_CHUNK_BYTES + FILE_CHUNK_OVERHEAD);
        let mut opened = Vec::new();
        for (i, ct) in sealed.iter().enumerate() {
            opened.extend_from_slice(&open_file_chunk(&key, &c, i as u32, i == 2, ct).unwrap());
        }
        assert_eq!(opened, data);
        // Swapped positions.
        assert_eq!(
            open_file_chunk(&key, &c, 0, false, &sealed[1]),
            Err(CryptoError::FileChunk(0))
        );
        // Cut short: the second chunk presented as the last.
        assert!(open_file_chunk(&key, &c, 1, true, &sealed[1]).is_err());
        // The last chunk presented as a middle one (a file extended past its end).
        assert!(open_file_chunk(&key, &c, 2, false, &sealed[2]).is_err());
        // Another file, chart or clinic.
        for other in [
            FileContext {
                file_id: Uuid::new_v4(),
                ..c
            },
            FileContext {
                chart_id: Uuid::new_v4(),
                ..c
            },
            FileContext {
                clinic_id: Uuid::new_v4(),
                ..c
            },
        ] {
            assert!(open_file_chunk(&key, &other, 0, false, &sealed[0]).is_err());
        }
        // Another key; a flipped bit.
        assert!(open_file_chunk(&FileKey::generate(), &c, 0, false, &sealed[0]).is_err());
        let mut flipped = sealed[0].clone();
        flipped[10] ^= 1;
        assert!(open_file_chunk(&key, &c, 0, false, &flipped).is_err());
    }

    #[test]
    fn sealing_is_deterministic_per_file_key_and_keys_differ() {
        let key = FileKey::generate();
        let c = ctx();
        // A retried upload re-seals the same plaintext to the same bytes (no new nonce needed).
        assert_eq!(
            seal_file_chunk(&key, &c, 0, true, b"scan").unwrap(),
            seal_file_chunk(&key, &c, 0, true, b"scan").unwrap()
        );
        // Two files never share a key stream.
        let other = FileKey::generate();
        assert_ne!(
            seal_file_chunk(&key, &c, 0, true, b"scan").unwrap(),
            seal_file_chunk(&other, &c, 0, true, b"scan").unwrap()
        );
        let restored = FileKey::from_b64(&key.to_b64()).unwrap();
        assert_eq!(
            open_file_chunk(
                &restored,
                &c,
                0,
                true,
                &seal_file_chunk(&key, &c, 0, true, b"x").unwrap()
            )
            .unwrap()
            .as_slice(),
            b"x"
        );
        assert_eq!(
            FileKey::from_b64(&B64(vec![0; 10])).unwrap_err(),
            CryptoError::FileKey
        );
    }

    #[test]
    fn chunk_counts() {
        assert_eq!(file_chunk_count(0), 1);
        assert_eq!(file_chunk_count(1), 1);
        assert_eq!(file_chunk_count(FILE_CHUNK_BYTES as u64), 1);
        assert_eq!(file_chunk_count(FILE_CHUNK_BYTES as u64 + 1), 2);
        assert_eq!(file_chunk_count(MAX_FILE_BYTES), 50);
    }
}

// ---- audit log: the clinic's audit key, reported details, checkpoints --------------------------

/// The secret half of a clinic's audit key (X25519): details are sealed to its public half by
/// any member, and only owners it is wrapped to can open them.
pub struct AuditKey {
    pub key_id: Uuid,
    secret: Zeroizing<[u8; 32]>,
}

fn audit_wrap_info(clinic_id: &Uuid, key_id: &Uuid, recipient: &Uuid) -> Vec<u8> {
    let mut v = b"optovault/v1/audit-key-wrap\0".to_vec();
    for id in [clinic_id, key_id, recipient] {
        v.extend_from_slice(id.as_bytes());
    }
    v
}

impl AuditKey {
    pub fn generate() -> AuditKey {
        let mut ikm = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(ikm.as_mut());
        let (sk, _) = X25519HkdfSha256::derive_keypair(ikm.as_ref());
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&sk.to_bytes());
        AuditKey {
            key_id: Uuid::new_v4(),
            secret,
        }
    }

    fn private(&self) -> <X25519HkdfSha256 as Kem>::PrivateKey {
        <X25519HkdfSha256 as Kem>::PrivateKey::from_bytes(self.secret.as_ref())
            .expect("32 bytes is a valid X25519 secret")
    }

    pub fn public_key(&self) -> Vec<u8> {
        X25519HkdfSha256::sk_to_pk(&self.private())
            .to_bytes()
            .to_vec()
    }

    /// The signed public half, made by owner `signer`.
    pub fn public(
        &self,
        clinic_id: Uuid,
        signer: Uuid,
        signer_keys: &UserKeys,
        created_at: crate::UnixTime,
    ) -> crate::wire::AuditKeyPublic {
        let mut p = crate::wire::AuditKeyPublic {
            clinic_id,
            key_id: self.key_id,
            public_key: B64(self.public_key()),
            created_at,
            signer,
            signature: B64(vec![]),
        };
        p.signature = B64(signer_keys
            .sign(&crate::audit::audit_key_signing_input(&p))
            .to_vec());
        p
    }

    /// Wraps the secret to an owner's X25519 key.
    pub fn wrap_to(
        &self,
        clinic_id: &Uuid,
        recipient: Uuid,
        recipient_x25519: &[u8],
    ) -> Result<crate::wire::WrappedAuditKey> {
        let info = audit_wrap_info(clinic_id, &self.key_id, &recipient);
        let (enc, ct) = seal_to(recipient_x25519, &info, self.secret.as_ref())?;
        Ok(crate::wire::WrappedAuditKey {
            recipient,
            enc: B64(enc),
            ciphertext: B64(ct),
        })
    }

    /// Unwraps the audit key wrapped to me, and checks it is the secret of the signed `public`.
    pub fn unwrap(
        clinic_id: &Uuid,
        public: &crate::wire::AuditKeyPublic,
        wrapped: &crate::wire::WrappedAuditKey,
        me: &Uuid,
        my_keys: &UserKeys,
    ) -> Result<AuditKey> {
        if wrapped.recipient != *me || public.clinic_id != *clinic_id {
            return Err(CryptoError::Unwrap);
        }
        let info = audit_wrap_info(clinic_id, &public.key_id, me);
        let pt = open_sealed(
            my_keys,
            &info,
            wrapped.enc.as_slice(),
            wrapped.ciphertext.as_slice(),
        )?;
        let secret: [u8; 32] = pt.as_slice().try_into().map_err(|_| CryptoError::Unwrap)?;
        let key = AuditKey {
            key_id: public.key_id,
            secret: Zeroizing::new(secret),
        };
        if key.public_key() != public.public_key.as_slice() {
            return Err(CryptoError::Unwrap);
        }
        Ok(key)
    }

    /// Opens a reported detail. The caller has checked its author's signature
    /// ([`verify_reported_detail`]); the context binds clinic, key, report id, author, category
    /// and target.
    pub fn open_detail(
        &self,
        context: &[u8],
        d: &crate::wire::ReportedDetail,
    ) -> Result<crate::audit::AuditDetail> {
        if d.key_id != self.key_id {
            return Err(CryptoError::UnknownKey(d.key_id));
        }
        let enc = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(d.enc.as_slice())
            .map_err(|_| CryptoError::AuditDetail)?;
        let pt = Zeroizing::new(
            hpke::single_shot_open::<AesGcm256, HkdfSha256, X25519HkdfSha256>(
                &OpModeR::Base,
                &self.private(),
                &enc,
                context,
                d.ciphertext.as_slice(),
                context,
            )
            .map_err(|_| CryptoError::AuditDetail)?,
        );
        serde_json::from_slice(&pt).map_err(|_| CryptoError::AuditDetail)
    }
}

/// Checks the signature on an audit key's public half against its signer's Ed25519 key.
pub fn verify_audit_key(public: &crate::wire::AuditKeyPublic, signer_ed25519: &[u8]) -> bool {
    crate::audit::verify_ed25519(
        signer_ed25519,
        &crate::audit::audit_key_signing_input(public),
        public.signature.as_slice(),
    )
}

/// Seals `detail` to the clinic's audit key and signs it as `author`: what a browser attaches to
/// an entry it reports. `action` and `target` must be those of the entry.
pub fn seal_audit_detail(
    author: Uuid,
    author_keys: &UserKeys,
    audit_key: &crate::wire::AuditKeyPublic,
    action: &str,
    target: Option<Uuid>,
    detail: &crate::audit::AuditDetail,
) -> Result<crate::wire::ReportedDetail> {
    let event_id = Uuid::new_v4();
    let context = crate::audit::detail_context(
        audit_key.clinic_id,
        audit_key.key_id,
        event_id,
        author,
        action,
        target,
    );
    let pt = Zeroizing::new(serde_json::to_vec(detail).expect("detail serialises"));
    let (enc, ct) = seal_to(audit_key.public_key.as_slice(), &context, &pt)?;
    let mut d = crate::wire::ReportedDetail {
        event_id,
        key_id: audit_key.key_id,
        enc: B64(enc),
        ciphertext: B64(ct),
        signature: B64(vec![]),
    };
    d.signature = B64(author_keys
        .sign(&crate::audit::detail_signing_input(&context, &d))
        .to_vec());
    Ok(d)
}

/// Checks a reported detail's author signature; `context` from [`crate::audit::detail_context`].
pub fn verify_reported_detail(
    context: &[u8],
    d: &crate::wire::ReportedDetail,
    author_ed25519: &[u8],
) -> bool {
    crate::audit::verify_ed25519(
        author_ed25519,
        &crate::audit::detail_signing_input(context, d),
        d.signature.as_slice(),
    )
}

/// An owner's signature over the chain head at `seq`.
pub fn sign_checkpoint(
    clinic_id: Uuid,
    seq: u64,
    head_hash: [u8; 32],
    at: crate::UnixTime,
    signer: Uuid,
    signer_keys: &UserKeys,
) -> crate::wire::AuditCheckpoint {
    let mut cp = crate::wire::AuditCheckpoint {
        clinic_id,
        seq,
        head_hash: B64(head_hash.to_vec()),
        at,
        signer,
        signature: B64(vec![]),
    };
    cp.signature = B64(signer_keys
        .sign(&crate::audit::checkpoint_signing_input(&cp))
        .to_vec());
    cp
}

/// Checks a checkpoint's signature against its signer's Ed25519 key.
pub fn verify_checkpoint(cp: &crate::wire::AuditCheckpoint, signer_ed25519: &[u8]) -> bool {
    crate::audit::verify_ed25519(
        signer_ed25519,
        &crate::audit::checkpoint_signing_input(cp),
        cp.signature.as_slice(),
    )
}
