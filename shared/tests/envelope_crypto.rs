//! The client crypto against a malicious server: every way a server (or another member) could
//! tamper with, move, replay or substitute ciphertexts and keys must make opening fail.
//!
//! Run with `cargo test -p optovault-shared --features client`.
//!
//! Two layers protect a record: the author's Ed25519 signature over header + nonce + ciphertext,
//! and the AES-GCM associated data binding the same header. Most tamper cases are checked twice:
//! once as a server would do it (the signature no longer verifies), and once re-signed with the
//! author's own signing key (as a malicious member or a signature-check bug would allow), where the
//! AEAD binding alone must refuse it.
#![cfg(feature = "client")]

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use ed25519_dalek::{Signer, SigningKey};
use opaque_ke::ServerLoginParameters;
use optovault_shared::crypto::{
    self, open_key_bundle, open_record, seal_key_bundle, seal_record, unwrap_clinic_key,
    unwrap_keyring, wrap_clinic_key, ClinicKey, ClinicKeyring, CryptoError, RecordSlot, UserKeys,
};
use optovault_shared::envelope::{EnvelopeError, Purpose};
use optovault_shared::opaque::{
    CredentialFinalization, CredentialRequest, Identifiers, RegistrationRequest,
    RegistrationUpload, ServerLogin, ServerRegistration, ServerSetup, Suite, SERVER_IDENTITY,
};
use optovault_shared::wire::{PublicKeys, WrappedKey};
use optovault_shared::{Compartment, RecordEnvelope, B64};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use uuid::Uuid;

// ---- fixtures -----------------------------------------------------------------------------------

/// A member: account id, private keys, and (for re-signing tampered envelopes) the Ed25519 signing
/// key recovered from a key bundle the test sealed itself.
struct Member {
    id: Uuid,
    keys: UserKeys,
    signing: SigningKey,
}

impl Member {
    fn new() -> Member {
        let keys = UserKeys::generate();
        let signing = signing_key_of(&keys);
        Member {
            id: Uuid::new_v4(),
            keys,
            signing,
        }
    }
    fn ed25519(&self) -> Vec<u8> {
        self.keys.public_keys().ed25519.0
    }
    fn x25519(&self) -> Vec<u8> {
        self.keys.public_keys().x25519.0
    }
}

/// `UserKeys` keeps its secrets private. The test gets the Ed25519 secret out the way only the
/// owner of the export key can: seal a key bundle under a known export key and open it with the
/// documented derivation (HKDF-SHA256 of the export key, salt and info as in `crypto::bundle_key`,
/// AAD "optovault/v1/key-bundle\0" || username; plaintext = X25519 secret || Ed25519 secret).
/// If the bundle format changes, update this helper.
fn signing_key_of(keys: &UserKeys) -> SigningKey {
    let export = [7u8; 64];
    let username = "resigner";
    let sealed = seal_key_bundle(keys, &export, username);
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"optovault/v1/key-bundle/salt"), &export);
    let mut key = [0u8; 32];
    hk.expand_multi_info(&[b"optovault/v1/key-bundle", username.as_bytes()], &mut key)
        .unwrap();
    let aad = [b"optovault/v1/key-bundle\0".as_slice(), username.as_bytes()].concat();
    let pt = Aes256Gcm::new((&key).into())
        .decrypt(
            Nonce::from_slice(sealed.nonce.as_slice()),
            Payload {
                msg: sealed.ciphertext.as_slice(),
                aad: &aad,
            },
        )
        .expect("test helper: key bundle derivation differs from crypto::bundle_key");
    assert_eq!(
        pt.len(),
        64,
        "key bundle plaintext is x25519 || ed25519 secret"
    );
    let sk = SigningKey::from_bytes(pt[32..].try_into().unwrap());
    assert_eq!(
        sk.verifying_key().to_bytes().to_vec(),
        keys.public_keys().ed25519.0,
        "test helper recovered the wrong signing key"
    );
    sk
}

/// One clinic as one member (the author) sees it, plus a directory of known authors.
struct World {
    clinic: Uuid,
    keyring: ClinicKeyring,
    author: Member,
    directory: HashMap<Uuid, Vec<u8>>,
}

impl World {
    fn new() -> World {
        let author = Member::new();
        let mut directory = HashMap::new();
        directory.insert(author.id, author.ed25519());
        World {
            clinic: Uuid::new_v4(),
            keyring: ClinicKeyring::generate(),
            author,
            directory,
        }
    }

    fn add_member(&mut self) -> Member {
        let m = Member::new();
        self.directory.insert(m.id, m.ed25519());
        m
    }

    fn slot(&self, record: Uuid, version: u64) -> RecordSlot {
        RecordSlot {
            clinic_id: self.clinic,
            chart_id: record,
            record_id: record,
            version,
            purpose: Purpose::Record,
        }
    }

    fn seal(&self, slot: RecordSlot, plaintext: &[u8]) -> RecordEnvelope {
        self.seal_in(slot, Compartment::Demographics, plaintext)
    }

    fn seal_in(&self, slot: RecordSlot, c: Compartment, plaintext: &[u8]) -> RecordEnvelope {
        seal_record(
            slot,
            c,
            &self.keyring,
            &self.author.id,
            &self.author.keys,
            plaintext,
        )
        .expect("seal")
    }

    fn open_as(
        &self,
        clinic: &Uuid,
        purpose: Purpose,
        env: &RecordEnvelope,
    ) -> Result<Vec<u8>, CryptoError> {
        open_record(clinic, purpose, env, &self.keyring, |id| {
            self.directory.get(id).cloned()
        })
        .map(|z| z.to_vec())
    }

    fn open(&self, env: &RecordEnvelope) -> Result<Vec<u8>, CryptoError> {
        self.open_as(&self.clinic, Purpose::Record, env)
    }

    /// The envelope re-signed by the author for where the reader will look for it.
    fn resigned(&self, env: &RecordEnvelope) -> RecordEnvelope {
        resign(env, &self.clinic, Purpose::Record, &self.author.signing)
    }
}

fn resign(
    env: &RecordEnvelope,
    clinic: &Uuid,
    purpose: Purpose,
    sk: &SigningKey,
) -> RecordEnvelope {
    let mut e = env.clone();
    e.signature = B64(sk
        .sign(&e.signing_input(clinic, purpose))
        .to_bytes()
        .to_vec());
    e
}

const PLAINTEXT: &[u8] = br#"{"kind":"patient","given_name":"Jane","family_name":"Doe"}"#;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A tamper case: as the server would send it (signature stale) it must fail with `Signature`;
/// re-signed by the author it must still fail (AEAD binding or key checks), with `resigned_err`.
#[track_caller]
fn assert_refused(w: &World, tampered: &RecordEnvelope, resigned_err: CryptoError) {
    assert_eq!(
        w.open(tampered),
        Err(CryptoError::Signature),
        "tampered envelope (stale signature) must fail the signature check"
    );
    assert_eq!(
        w.open(&w.resigned(tampered)),
        Err(resigned_err),
        "tampered envelope re-signed by the author must still fail"
    );
}

// ---- record envelope: round trip ----------------------------------------------------------------

#[test]
fn seal_open_round_trip() {
    let w = World::new();
    let rec = Uuid::new_v4();
    let env = w.seal(w.slot(rec, 1), PLAINTEXT);
    assert_eq!(env.check_structure(), Ok(()));
    assert_eq!(env.record_id, rec);
    assert_eq!(env.chart_id, rec);
    assert_eq!(env.version, 1);
    assert_eq!(env.author, w.author.id);
    assert_eq!(env.compartment, Compartment::Demographics);
    let key = w.keyring.current(Compartment::Demographics).unwrap();
    assert_eq!((env.key_id, env.epoch), (key.key_id, key.epoch));
    assert!(!contains(env.ciphertext.as_slice(), b"Jane"));
    assert_eq!(w.open(&env).unwrap(), PLAINTEXT);
    // The helper's re-signature of an untouched envelope is valid (so re-signed tamper cases
    // below fail because of the tampering, not because of the helper).
    assert_eq!(w.open(&w.resigned(&env)).unwrap(), PLAINTEXT);

    // Sealing the same plaintext twice: fresh nonce and ciphertext.
    let env2 = w.seal(w.slot(rec, 1), PLAINTEXT);
    assert_ne!(env.nonce, env2.nonce);
    assert_ne!(env.ciphertext, env2.ciphertext);
    assert_eq!(w.open(&env2).unwrap(), PLAINTEXT);

    let v2 = w.seal(w.slot(rec, 2), b"second version");
    assert_eq!(w.open(&v2).unwrap(), b"second version");

    // Every compartment, empty and large plaintexts.
    for c in Compartment::ALL {
        let e = w.seal_in(w.slot(Uuid::new_v4(), 1), c, b"in a compartment");
        assert_eq!(e.compartment, c);
        assert_eq!(e.key_id, w.keyring.current(c).unwrap().key_id);
        assert_eq!(w.open(&e).unwrap(), b"in a compartment");
    }
    let empty = w.seal(w.slot(Uuid::new_v4(), 1), b"");
    assert_eq!(w.open(&empty).unwrap(), b"");
    let big = vec![0xA5u8; 200 * 1024];
    let env_big = w.seal(w.slot(Uuid::new_v4(), 1), &big);
    assert_eq!(w.open(&env_big).unwrap(), big);
}

#[test]
fn a_tombstone_opens_as_one_and_its_flag_cannot_be_flipped() {
    let w = World::new();
    let rec = Uuid::new_v4();
    let dead = crypto::seal_tombstone(
        w.slot(rec, 2),
        Compartment::Demographics,
        &w.keyring,
        &w.author.id,
        &w.author.keys,
        PLAINTEXT,
    )
    .unwrap();
    assert!(dead.deleted);
    assert_eq!(w.open(&dead).unwrap(), PLAINTEXT);
    // A server turning the deletion into a live write (or a live write into a deletion) breaks
    // the signature, and, re-signed, the seal.
    let mut undeleted = dead.clone();
    undeleted.deleted = false;
    assert_refused(&w, &undeleted, CryptoError::Open);
    let mut killed = w.seal(w.slot(rec, 1), PLAINTEXT);
    killed.deleted = true;
    assert_refused(&w, &killed, CryptoError::Open);
}

#[test]
fn record_in_a_chart_binds_the_chart() {
    let w = World::new();
    let chart = Uuid::new_v4();
    let rec = Uuid::new_v4();
    let slot = RecordSlot {
        clinic_id: w.clinic,
        chart_id: chart,
        record_id: rec,
        version: 1,
        purpose: Purpose::Record,
    };
    let env = w.seal_in(slot, Compartment::Clinical, b"exam");
    assert_eq!((env.chart_id, env.record_id), (chart, rec));
    assert_eq!(w.open(&env).unwrap(), b"exam");
    let mut moved = env.clone();
    moved.chart_id = Uuid::new_v4();
    assert_refused(&w, &moved, CryptoError::Open);
}

// ---- record envelope: tampering -----------------------------------------------------------------

#[test]
fn flipped_ciphertext_byte_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    for i in [0, env.ciphertext.len() / 2, env.ciphertext.len() - 1] {
        let mut t = env.clone();
        t.ciphertext.0[i] ^= 0x01;
        assert_refused(&w, &t, CryptoError::Open);
    }
    // Truncated ciphertext (tag cut off).
    let mut t = env.clone();
    t.ciphertext.0.truncate(env.ciphertext.len() - 1);
    assert_refused(&w, &t, CryptoError::Open);
}

#[test]
fn flipped_nonce_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    let mut t = env.clone();
    t.nonce.0[5] ^= 0x80;
    assert_refused(&w, &t, CryptoError::Open);
    // A nonce of the wrong length is refused structurally, before any crypto.
    let mut t = env.clone();
    t.nonce.0.pop();
    assert_eq!(w.open(&t), Err(CryptoError::Envelope(EnvelopeError::Nonce)));
}

#[test]
fn changed_signature_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    for i in [0, 31, 32, 63] {
        let mut t = env.clone();
        t.signature.0[i] ^= 0x01;
        assert_eq!(w.open(&t), Err(CryptoError::Signature), "byte {i}");
    }
    // Another valid signature by the same author over a different message.
    let other = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    let mut t = env.clone();
    t.signature = other.signature.clone();
    assert_eq!(w.open(&t), Err(CryptoError::Signature));
    // Wrong length.
    let mut t = env.clone();
    t.signature.0.push(0);
    assert_eq!(
        w.open(&t),
        Err(CryptoError::Envelope(EnvelopeError::Signature))
    );
}

#[test]
fn moved_to_another_record_fails() {
    let w = World::new();
    let rec = Uuid::new_v4();
    let env = w.seal(w.slot(rec, 1), PLAINTEXT);
    let mut t = env.clone();
    t.record_id = Uuid::new_v4();
    assert_refused(&w, &t, CryptoError::Open);
    // Another real record's id (swap two records' ciphertexts).
    let other = w.seal(w.slot(Uuid::new_v4(), 1), b"other patient");
    let mut t = other.clone();
    t.nonce = env.nonce.clone();
    t.ciphertext = env.ciphertext.clone();
    assert_refused(&w, &t, CryptoError::Open);
}

#[test]
fn moved_to_another_chart_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    let mut t = env.clone();
    t.chart_id = Uuid::new_v4();
    assert_refused(&w, &t, CryptoError::Open);
}

#[test]
fn moved_to_another_clinic_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    let other_clinic = Uuid::new_v4();
    assert_eq!(
        w.open_as(&other_clinic, Purpose::Record, &env),
        Err(CryptoError::Signature)
    );
    let resigned = resign(&env, &other_clinic, Purpose::Record, &w.author.signing);
    assert_eq!(
        w.open_as(&other_clinic, Purpose::Record, &resigned),
        Err(CryptoError::Open)
    );
}

#[test]
fn replay_of_v1_as_v2_fails() {
    let w = World::new();
    let rec = Uuid::new_v4();
    let v1 = w.seal(w.slot(rec, 1), b"version one");
    let v2 = w.seal(w.slot(rec, 2), b"version two");
    assert_eq!(w.open(&v2).unwrap(), b"version two");
    // v1's ciphertext presented as v2.
    let mut t = v1.clone();
    t.version = 2;
    assert_refused(&w, &t, CryptoError::Open);
    // v1's nonce+ciphertext under v2's (validly signed) header.
    let mut t = v2.clone();
    t.nonce = v1.nonce.clone();
    t.ciphertext = v1.ciphertext.clone();
    assert_refused(&w, &t, CryptoError::Open);
    // Rollback: v2 presented as v1.
    let mut t = v2.clone();
    t.version = 1;
    assert_refused(&w, &t, CryptoError::Open);
}

#[test]
fn moved_to_another_compartment_fails() {
    let w = World::new();
    let env = w.seal_in(w.slot(Uuid::new_v4(), 1), Compartment::Clinical, PLAINTEXT);
    // Only the compartment label changed (key id still the clinical key).
    let mut t = env.clone();
    t.compartment = Compartment::Demographics;
    assert_refused(&w, &t, CryptoError::Open);
    // Label and key id both moved to the demographics key.
    let mut t = env.clone();
    t.compartment = Compartment::Demographics;
    t.key_id = w.keyring.current(Compartment::Demographics).unwrap().key_id;
    assert_refused(&w, &t, CryptoError::Open);
}

#[test]
fn changed_key_id_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    // Another key of this clinic (billing): compartment mismatch.
    let mut t = env.clone();
    t.key_id = w.keyring.current(Compartment::Billing).unwrap().key_id;
    assert_refused(&w, &t, CryptoError::Open);
    // A key id the reader does not hold.
    let mut t = env.clone();
    let unknown = Uuid::new_v4();
    t.key_id = unknown;
    assert_refused(&w, &t, CryptoError::UnknownKey(unknown));
}

#[test]
fn changed_epoch_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    let mut t = env.clone();
    t.epoch = env.epoch + 1;
    assert_refused(&w, &t, CryptoError::Open);
}

#[test]
fn changed_author_fails() {
    let mut w = World::new();
    let mallory = w.add_member();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    // Header claims Mallory wrote it: Mallory's key does not verify the author's signature.
    let mut t = env.clone();
    t.author = mallory.id;
    assert_eq!(w.open(&t), Err(CryptoError::Signature));
    // Mallory re-signs it as hers: the AEAD binds the original author.
    let t = resign(&t, &w.clinic, Purpose::Record, &mallory.signing);
    assert_eq!(w.open(&t), Err(CryptoError::Open));
    // Mallory signs the untouched envelope (author still the real one): signature check fails.
    let t = resign(&env, &w.clinic, Purpose::Record, &mallory.signing);
    assert_eq!(w.open(&t), Err(CryptoError::Signature));
}

#[test]
fn unknown_author_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    let r = open_record(&w.clinic, Purpose::Record, &env, &w.keyring, |_| None);
    assert_eq!(
        r.map(|z| z.to_vec()),
        Err(CryptoError::UnknownAuthor(w.author.id))
    );
    // A directory that knows others but not this author.
    let stranger = Member::new();
    let r = open_record(&w.clinic, Purpose::Record, &env, &w.keyring, |id| {
        (id == &stranger.id).then(|| stranger.ed25519())
    });
    assert_eq!(
        r.map(|z| z.to_vec()),
        Err(CryptoError::UnknownAuthor(w.author.id))
    );
}

#[test]
fn author_key_swapped_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    // The server presents another key for the author.
    let impostor = Member::new();
    let r = open_record(&w.clinic, Purpose::Record, &env, &w.keyring, |_| {
        Some(impostor.ed25519())
    });
    assert_eq!(r.map(|z| z.to_vec()), Err(CryptoError::Signature));
    // ... or the author's X25519 key where the Ed25519 key belongs, or garbage lengths.
    for bad in [w.author.x25519(), vec![0u8; 31], vec![]] {
        let r = open_record(&w.clinic, Purpose::Record, &env, &w.keyring, |_| {
            Some(bad.clone())
        });
        assert_eq!(r.map(|z| z.to_vec()), Err(CryptoError::Signature));
    }
}

#[test]
fn profile_opened_as_record_fails() {
    let w = World::new();
    let slot = RecordSlot {
        clinic_id: w.clinic,
        chart_id: w.clinic,
        record_id: w.clinic,
        version: 1,
        purpose: Purpose::ClinicProfile,
    };
    let profile = w.seal(slot, br#"{"name":"Clear View Optometry"}"#);
    assert_eq!(
        w.open_as(&w.clinic, Purpose::ClinicProfile, &profile)
            .unwrap(),
        br#"{"name":"Clear View Optometry"}"#
    );
    assert_eq!(
        w.open_as(&w.clinic, Purpose::Record, &profile),
        Err(CryptoError::Signature)
    );
    let resigned = resign(&profile, &w.clinic, Purpose::Record, &w.author.signing);
    assert_eq!(
        w.open_as(&w.clinic, Purpose::Record, &resigned),
        Err(CryptoError::Open)
    );
    // And the other way round: a record opened as a profile.
    let rec = w.seal(w.slot(w.clinic, 1), PLAINTEXT);
    assert_eq!(
        w.open_as(&w.clinic, Purpose::ClinicProfile, &rec),
        Err(CryptoError::Signature)
    );
}

#[test]
fn wrong_keyring_fails() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    let other = ClinicKeyring::generate();
    let r = open_record(&w.clinic, Purpose::Record, &env, &other, |id| {
        w.directory.get(id).cloned()
    });
    assert_eq!(
        r.map(|z| z.to_vec()),
        Err(CryptoError::UnknownKey(env.key_id))
    );
    let empty = ClinicKeyring::default();
    let r = open_record(&w.clinic, Purpose::Record, &env, &empty, |id| {
        w.directory.get(id).cloned()
    });
    assert_eq!(
        r.map(|z| z.to_vec()),
        Err(CryptoError::UnknownKey(env.key_id))
    );
}

#[test]
fn malformed_headers_refused_before_crypto() {
    let w = World::new();
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    let mut t = env.clone();
    t.format = 2;
    assert_eq!(
        w.open(&t),
        Err(CryptoError::Envelope(EnvelopeError::Format(2)))
    );
    let mut t = env.clone();
    t.version = 0;
    assert_eq!(
        w.open(&t),
        Err(CryptoError::Envelope(EnvelopeError::Version))
    );
    let mut t = env.clone();
    t.ciphertext.0.truncate(15);
    assert_eq!(
        w.open(&t),
        Err(CryptoError::Envelope(EnvelopeError::CiphertextSize))
    );
    let mut t = env.clone();
    t.record_id = Uuid::nil();
    assert_eq!(w.open(&t), Err(CryptoError::Envelope(EnvelopeError::Id)));
}

// ---- key bundle -----------------------------------------------------------------------------------

fn random_export_key() -> Vec<u8> {
    let mut k = vec![0u8; 64];
    OsRng.fill_bytes(&mut k);
    k
}

#[test]
fn key_bundle_round_trip_and_failures() {
    let keys = UserKeys::generate();
    let pubs = keys.public_keys();
    assert_eq!(pubs.x25519.len(), 32);
    assert_eq!(pubs.ed25519.len(), 32);
    let export = random_export_key();
    let sealed = seal_key_bundle(&keys, &export, "jane");
    assert_eq!(sealed.nonce.len(), 12);

    let opened = open_key_bundle(&sealed, &export, "jane", &pubs).unwrap();
    assert_eq!(opened.public_keys(), pubs);
    assert_eq!(
        signing_key_of(&opened).to_bytes(),
        signing_key_of(&keys).to_bytes()
    );

    // Wrong export key (wrong password).
    let wrong = random_export_key();
    assert_eq!(
        open_key_bundle(&sealed, &wrong, "jane", &pubs).err(),
        Some(CryptoError::Bundle)
    );
    // Bundle of another username (server swapped bundles between accounts).
    assert_eq!(
        open_key_bundle(&sealed, &export, "john", &pubs).err(),
        Some(CryptoError::Bundle)
    );
    // Tampered bundle.
    let mut t = sealed.clone();
    t.ciphertext.0[3] ^= 1;
    assert_eq!(
        open_key_bundle(&t, &export, "jane", &pubs).err(),
        Some(CryptoError::Bundle)
    );
    let mut t = sealed.clone();
    t.nonce.0.pop();
    assert_eq!(
        open_key_bundle(&t, &export, "jane", &pubs).err(),
        Some(CryptoError::Bundle)
    );

    // The server presents someone else's public keys, entirely or one of the two.
    let other = UserKeys::generate().public_keys();
    assert_eq!(
        open_key_bundle(&sealed, &export, "jane", &other).err(),
        Some(CryptoError::PublicKeyMismatch)
    );
    let half = PublicKeys {
        x25519: pubs.x25519.clone(),
        ed25519: other.ed25519.clone(),
    };
    assert_eq!(
        open_key_bundle(&sealed, &export, "jane", &half).err(),
        Some(CryptoError::PublicKeyMismatch)
    );
    let half = PublicKeys {
        x25519: other.x25519.clone(),
        ed25519: pubs.ed25519.clone(),
    };
    assert_eq!(
        open_key_bundle(&sealed, &export, "jane", &half).err(),
        Some(CryptoError::PublicKeyMismatch)
    );
    // Swapped positions.
    let swapped = PublicKeys {
        x25519: pubs.ed25519.clone(),
        ed25519: pubs.x25519.clone(),
    };
    assert_eq!(
        open_key_bundle(&sealed, &export, "jane", &swapped).err(),
        Some(CryptoError::PublicKeyMismatch)
    );
}

// ---- HPKE key wrapping ----------------------------------------------------------------------------

fn demographics(k: &ClinicKeyring) -> &ClinicKey {
    k.current(Compartment::Demographics).unwrap()
}

#[test]
fn wrap_unwrap_round_trip_opens_records() {
    let w = World::new();
    let reader = Member::new();
    let wrapped: Vec<WrappedKey> = w
        .keyring
        .keys()
        .iter()
        .map(|k| wrap_clinic_key(&w.clinic, k, &reader.id, &reader.x25519()).unwrap())
        .collect();
    for (wk, k) in wrapped.iter().zip(w.keyring.keys()) {
        assert_eq!(
            (wk.key_id, wk.compartment, wk.epoch, wk.recipient),
            (k.key_id, k.compartment, k.epoch, reader.id)
        );
        assert_eq!(wk.enc.len(), 32);
    }
    let ring = unwrap_keyring(&w.clinic, &wrapped, &reader.id, &reader.keys).unwrap();
    assert_eq!(ring.keys().len(), Compartment::ALL.len());
    // The unwrapped keys really are the clinic's keys: they open the author's record.
    let env = w.seal(w.slot(Uuid::new_v4(), 1), PLAINTEXT);
    let pt = open_record(&w.clinic, Purpose::Record, &env, &ring, |id| {
        w.directory.get(id).cloned()
    })
    .unwrap();
    assert_eq!(pt.as_slice(), PLAINTEXT);
    // unwrap_keyring skips keys addressed to someone else.
    let stranger = Member::new();
    let ring = unwrap_keyring(&w.clinic, &wrapped, &stranger.id, &stranger.keys).unwrap();
    assert!(ring.keys().is_empty());
}

#[test]
fn unwrap_by_another_recipient_fails() {
    let w = World::new();
    let alice = Member::new();
    let bob = Member::new();
    let wk = wrap_clinic_key(
        &w.clinic,
        demographics(&w.keyring),
        &alice.id,
        &alice.x25519(),
    )
    .unwrap();
    assert!(unwrap_clinic_key(&w.clinic, &wk, &alice.id, &alice.keys).is_ok());
    // Bob, with his own id or claiming Alice's id: his X25519 key cannot open it.
    assert_eq!(
        unwrap_clinic_key(&w.clinic, &wk, &bob.id, &bob.keys).err(),
        Some(CryptoError::Unwrap)
    );
    assert_eq!(
        unwrap_clinic_key(&w.clinic, &wk, &alice.id, &bob.keys).err(),
        Some(CryptoError::Unwrap)
    );
    // Bob presenting it as addressed to him.
    let mut moved = wk.clone();
    moved.recipient = bob.id;
    assert!(unwrap_keyring(&w.clinic, &[moved], &bob.id, &bob.keys).is_err());
}

#[test]
fn wrapped_key_moved_fails() {
    let w = World::new();
    let alice = Member::new();
    let key = demographics(&w.keyring);
    let wk = wrap_clinic_key(&w.clinic, key, &alice.id, &alice.x25519()).unwrap();
    assert!(unwrap_clinic_key(&w.clinic, &wk, &alice.id, &alice.keys).is_ok());

    // Another clinic.
    assert_eq!(
        unwrap_clinic_key(&Uuid::new_v4(), &wk, &alice.id, &alice.keys).err(),
        Some(CryptoError::Unwrap)
    );
    // Another recipient id for the same X25519 key (account ids are bound).
    let other_id = Uuid::new_v4();
    let mut t = wk.clone();
    t.recipient = other_id;
    assert_eq!(
        unwrap_clinic_key(&w.clinic, &t, &other_id, &alice.keys).err(),
        Some(CryptoError::Unwrap)
    );
    // Another epoch.
    let mut t = wk.clone();
    t.epoch += 1;
    assert_eq!(
        unwrap_clinic_key(&w.clinic, &t, &alice.id, &alice.keys).err(),
        Some(CryptoError::Unwrap)
    );
    // Another compartment.
    let mut t = wk.clone();
    t.compartment = Compartment::Clinical;
    assert_eq!(
        unwrap_clinic_key(&w.clinic, &t, &alice.id, &alice.keys).err(),
        Some(CryptoError::Unwrap)
    );
    // Another key id.
    let mut t = wk.clone();
    t.key_id = Uuid::new_v4();
    assert_eq!(
        unwrap_clinic_key(&w.clinic, &t, &alice.id, &alice.keys).err(),
        Some(CryptoError::Unwrap)
    );
    // Tampered ciphertext or encapsulated key; enc of another wrapping.
    let mut t = wk.clone();
    t.ciphertext.0[0] ^= 1;
    assert_eq!(
        unwrap_clinic_key(&w.clinic, &t, &alice.id, &alice.keys).err(),
        Some(CryptoError::Unwrap)
    );
    let other = wrap_clinic_key(&w.clinic, key, &alice.id, &alice.x25519()).unwrap();
    let mut t = wk.clone();
    t.enc = other.enc.clone();
    assert_eq!(
        unwrap_clinic_key(&w.clinic, &t, &alice.id, &alice.keys).err(),
        Some(CryptoError::Unwrap)
    );
    let mut t = wk.clone();
    t.enc.0.truncate(31);
    assert_eq!(
        unwrap_clinic_key(&w.clinic, &t, &alice.id, &alice.keys).err(),
        Some(CryptoError::Unwrap)
    );
}

#[test]
fn wrap_to_invalid_public_key_fails() {
    let w = World::new();
    let r = wrap_clinic_key(
        &w.clinic,
        demographics(&w.keyring),
        &Uuid::new_v4(),
        &[1u8; 31],
    );
    assert_eq!(r.err(), Some(CryptoError::Unwrap));
}

// ---- OPAQUE in process ------------------------------------------------------------------------------

/// The server half, as the real server must run it (same suite, identifiers, credential id).
struct OpaqueServer {
    setup: ServerSetup<Suite>,
    files: HashMap<String, ServerRegistration<Suite>>,
}

fn ids(username: &str) -> Identifiers<'_> {
    Identifiers {
        client: Some(username.as_bytes()),
        server: Some(SERVER_IDENTITY),
    }
}

impl OpaqueServer {
    fn new() -> Self {
        OpaqueServer {
            setup: ServerSetup::<Suite>::new(&mut OsRng),
            files: HashMap::new(),
        }
    }

    /// Full registration; returns the client's export key.
    fn register(&mut self, username: &str, password: &str) -> Vec<u8> {
        let (state, req) = crypto::registration_start(password).unwrap();
        let resp = ServerRegistration::<Suite>::start(
            &self.setup,
            RegistrationRequest::deserialize(&req).unwrap(),
            username.as_bytes(),
        )
        .unwrap();
        let (upload, export) =
            crypto::registration_finish(state, password, username, &resp.message.serialize())
                .unwrap();
        let file =
            ServerRegistration::<Suite>::finish(RegistrationUpload::deserialize(&upload).unwrap());
        self.files.insert(username.to_string(), file);
        export.to_vec()
    }

    /// Full login as `client_username` typed by the user, against the server's record for
    /// `server_username`. Returns the client's result and whether the server accepted the
    /// finalization (None when the client gave up).
    fn login(
        &self,
        server_username: &str,
        client_username: &str,
        password: &str,
    ) -> (Result<Vec<u8>, CryptoError>, Option<bool>) {
        let (state, req) = crypto::login_start(password).unwrap();
        let params = ServerLoginParameters {
            context: None,
            identifiers: ids(server_username),
        };
        let start = ServerLogin::start(
            &mut OsRng,
            &self.setup,
            self.files.get(server_username).cloned(),
            CredentialRequest::deserialize(&req).unwrap(),
            server_username.as_bytes(),
            params,
        )
        .unwrap();
        match crypto::login_finish(state, password, client_username, &start.message.serialize()) {
            Err(e) => (Err(e), None),
            Ok((fin, export)) => {
                let params = ServerLoginParameters {
                    context: None,
                    identifiers: ids(server_username),
                };
                let ok = start
                    .state
                    .finish(CredentialFinalization::deserialize(&fin).unwrap(), params)
                    .is_ok();
                (Ok(export.to_vec()), Some(ok))
            }
        }
    }
}

#[test]
fn opaque_round_trip_wrong_password_and_unknown_user() {
    let mut server = OpaqueServer::new();
    let password = "violet tractor sings 42 ferns";
    let export_reg = server.register("jane", password);
    assert_eq!(export_reg.len(), 64);

    // Right password: the same export key as at registration, and the server accepts.
    let (r, accepted) = server.login("jane", "jane", password);
    assert_eq!(r.as_deref(), Ok(export_reg.as_slice()));
    assert_eq!(accepted, Some(true));

    // The export key opens a key bundle sealed at registration.
    let keys = UserKeys::generate();
    let sealed = seal_key_bundle(&keys, &export_reg, "jane");
    let opened = open_key_bundle(&sealed, &r.unwrap(), "jane", &keys.public_keys()).unwrap();
    assert_eq!(opened.public_keys(), keys.public_keys());

    // Wrong password: the client fails, with the one undifferentiated error.
    let (r, accepted) = server.login("jane", "jane", "violet tractor sings 43 ferns");
    assert_eq!(r, Err(CryptoError::LoginFailed));
    assert_eq!(accepted, None);

    // Unknown user: the server answers with a fake record; the client fails the same way.
    let (r, _) = server.login("nobody", "nobody", password);
    assert_eq!(r, Err(CryptoError::LoginFailed));

    // Right password, but the client binds another username than the server's record.
    let (r, _) = server.login("jane", "jane2", password);
    assert_eq!(r, Err(CryptoError::LoginFailed));

    // Re-registering the same username and password gives a different export key (fresh envelope
    // nonce), so an old bundle does not open under the new registration.
    let export_again = server.register("jane", password);
    assert_ne!(export_again, export_reg);
}

#[test]
fn opaque_server_rejects_garbage_finalization_and_malformed_messages() {
    let mut server = OpaqueServer::new();
    let password = "correct staple mauve 1987 kite";
    server.register("john", password);
    let (state, req) = crypto::login_start(password).unwrap();
    let params = ServerLoginParameters {
        context: None,
        identifiers: ids("john"),
    };
    let start = ServerLogin::start(
        &mut OsRng,
        &server.setup,
        server.files.get("john").cloned(),
        CredentialRequest::deserialize(&req).unwrap(),
        b"john",
        params,
    )
    .unwrap();
    let (fin, _) =
        crypto::login_finish(state, password, "john", &start.message.serialize()).unwrap();
    let mut garbage = fin.clone();
    garbage[10] ^= 1;
    let params = ServerLoginParameters {
        context: None,
        identifiers: ids("john"),
    };
    let r = CredentialFinalization::<Suite>::deserialize(&garbage)
        .map_err(|_| ())
        .and_then(|f| start.state.finish(f, params).map_err(|_| ()));
    assert!(r.is_err(), "server must reject a tampered finalization");

    // Malformed OPAQUE messages reaching the client are Protocol / LoginFailed, never a panic.
    let (state, _) = crypto::registration_start(password).unwrap();
    assert_eq!(
        crypto::registration_finish(state, password, "john", &[0u8; 5]).err(),
        Some(CryptoError::Protocol)
    );
    let (state, _) = crypto::login_start(password).unwrap();
    assert_eq!(
        crypto::login_finish(state, password, "john", &[1u8; 7]).err(),
        Some(CryptoError::LoginFailed)
    );
}
