//! Clinic team cryptography (feature `client`): signing and verifying the roster, invitation
//! MACs, safety numbers. The owner's client runs the signing side; every member's client verifies.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::UserKeys;
use crate::roster::{signing_input, Roster, RosterEntry, RosterError, SignedRosterEntry};
use crate::wire::PublicKeys;
use crate::B64;

/// Serialises and signs a roster entry.
pub fn sign_entry(entry: &RosterEntry, signer: &UserKeys) -> SignedRosterEntry {
    let bytes = serde_json::to_vec(entry).expect("roster entries serialise");
    let signature = signer.sign(&signing_input(&bytes));
    SignedRosterEntry {
        entry: B64(bytes),
        signature: B64(signature.to_vec()),
    }
}

fn verify_signature(key: &[u8], signed: &SignedRosterEntry) -> bool {
    let (Ok(key), Ok(sig)) = (
        <[u8; 32]>::try_from(key),
        <[u8; 64]>::try_from(signed.signature.as_slice()),
    ) else {
        return false;
    };
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
        return false;
    };
    vk.verify_strict(
        &signing_input(signed.entry.as_slice()),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .is_ok()
}

/// Verifies a whole roster chain from its genesis: sequence, hash links, owner signatures and the
/// membership rules. `anchor` is the Ed25519 key of the clinic's creator as this client knows it
/// (its own, for the owner; from the invitation link, for a member); `known_head` is the highest
/// roster seq this client has seen before, so a server serving an older roster is caught.
pub fn verify_roster(
    clinic_id: Uuid,
    entries: &[SignedRosterEntry],
    anchor: Option<&[u8]>,
    known_head: Option<u64>,
) -> Result<Roster, RosterError> {
    let mut roster: Option<Roster> = None;
    for signed in entries {
        let (next, _entry, signer_key) =
            Roster::apply_unverified(roster.as_ref(), clinic_id, signed)?;
        if !verify_signature(&signer_key, signed) {
            return Err(RosterError::Signature(next.head_seq));
        }
        roster = Some(next);
    }
    let roster = roster.ok_or(RosterError::Empty)?;
    if let Some(a) = anchor {
        if roster.anchor != a {
            return Err(RosterError::Anchor);
        }
    }
    if let Some(known) = known_head {
        if roster.head_seq < known {
            return Err(RosterError::Rollback {
                known,
                served: roster.head_seq,
            });
        }
    }
    Ok(roster)
}

fn invitation_mac_key(secret: &[u8]) -> Zeroizing<[u8; 32]> {
    let hk = Hkdf::<Sha256>::new(Some(b"optovault/v1/invitation"), secret);
    let mut k = Zeroizing::new([0u8; 32]);
    hk.expand(b"mac", k.as_mut()).expect("valid length");
    k
}

fn invitation_mac_input(
    invitation_id: &Uuid,
    clinic_id: &Uuid,
    account_id: &Uuid,
    username: &str,
    keys: &PublicKeys,
) -> Vec<u8> {
    let mut m = b"optovault/v1/invitation-mac\0".to_vec();
    m.extend_from_slice(invitation_id.as_bytes());
    m.extend_from_slice(clinic_id.as_bytes());
    m.extend_from_slice(account_id.as_bytes());
    m.extend_from_slice(keys.x25519.as_slice());
    m.extend_from_slice(keys.ed25519.as_slice());
    m.extend_from_slice(username.as_bytes());
    m
}

/// The invitee's MAC over its identity and public keys, keyed by the invitation's one-time secret
/// (which travels only in the link's fragment, never to the server).
pub fn invitation_mac(
    secret: &[u8],
    invitation_id: &Uuid,
    clinic_id: &Uuid,
    account_id: &Uuid,
    username: &str,
    keys: &PublicKeys,
) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(invitation_mac_key(secret).as_ref())
        .expect("HMAC takes any key length");
    mac.update(&invitation_mac_input(
        invitation_id,
        clinic_id,
        account_id,
        username,
        keys,
    ));
    mac.finalize().into_bytes().to_vec()
}

/// The owner's check of an acceptance (constant time).
pub fn verify_invitation_mac(
    secret: &[u8],
    invitation_id: &Uuid,
    clinic_id: &Uuid,
    account_id: &Uuid,
    username: &str,
    keys: &PublicKeys,
    tag: &[u8],
) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(invitation_mac_key(secret).as_ref())
        .expect("HMAC takes any key length");
    mac.update(&invitation_mac_input(
        invitation_id,
        clinic_id,
        account_id,
        username,
        keys,
    ));
    mac.verify_slice(tag).is_ok()
}

/// HPKE `info` under which an owner keeps an invitation's secret sealed to itself.
pub fn invitation_secret_info(clinic_id: &Uuid, invitation_id: &Uuid) -> Vec<u8> {
    [
        b"optovault/v1/invitation-secret\0".as_slice(),
        clinic_id.as_bytes(),
        invitation_id.as_bytes(),
    ]
    .concat()
}

fn key_material(k: &PublicKeys) -> Vec<u8> {
    [k.ed25519.as_slice(), k.x25519.as_slice()].concat()
}

/// A safety number for two parties' public keys: 60 digits in 12 groups, the same for both sides
/// whatever the order. Both people compare it (read aloud, side by side) before the owner signs.
pub fn safety_number(a: &PublicKeys, b: &PublicKeys) -> String {
    let (mut x, mut y) = (key_material(a), key_material(b));
    if x > y {
        std::mem::swap(&mut x, &mut y);
    }
    let mut h = Sha512::new();
    h.update(b"optovault/v1/safety-number");
    h.update(&x);
    h.update(&y);
    let digest = h.finalize();
    digest
        .chunks(5)
        .take(12)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A short fingerprint of one member's keys (shown in member lists).
pub fn fingerprint(k: &PublicKeys) -> String {
    let d = Sha256::digest([b"optovault/v1/fingerprint".as_slice(), &key_material(k)].concat());
    d[..10]
        .chunks(2)
        .map(|c| format!("{:02x}{:02x}", c[0], c[1]))
        .collect::<Vec<_>>()
        .join(" ")
}
