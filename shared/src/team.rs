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

/// Roster entry 1 of a new clinic: the creating owner adds themselves, at key epoch 1.
pub fn genesis_entry(
    clinic_id: Uuid,
    me: Uuid,
    username: &str,
    keys: &UserKeys,
    at: crate::UnixTime,
) -> SignedRosterEntry {
    let entry = RosterEntry {
        clinic_id,
        seq: 1,
        prev_hash: B64(vec![0; 32]),
        at,
        signer: me,
        change: crate::roster::RosterChange::Add {
            member: me,
            username: username.to_string(),
            role: crate::wire::Role::Owner,
            public_keys: keys.public_keys(),
        },
        key_epoch: 1,
    };
    sign_entry(&entry, keys)
}

/// The entry that follows `roster`'s head.
pub fn next_entry(
    roster: &Roster,
    signer: Uuid,
    change: crate::roster::RosterChange,
    key_epoch: u32,
    at: crate::UnixTime,
) -> RosterEntry {
    RosterEntry {
        clinic_id: roster.clinic_id,
        seq: roster.head_seq + 1,
        prev_hash: B64(roster.head_hash.to_vec()),
        at,
        signer,
        change,
        key_epoch,
    }
}

fn anchor_context(clinic_id: &Uuid) -> Vec<u8> {
    [b"clinic-anchor\0".as_slice(), clinic_id.as_bytes()].concat()
}

/// Seals the clinic's trust anchor (its creator's Ed25519 key) to myself, for the server to keep.
pub fn pin_anchor(keys: &UserKeys, clinic_id: &Uuid, anchor: &[u8]) -> crate::wire::SealedBlob {
    keys.seal_for_self(&anchor_context(clinic_id), anchor)
}

/// Opens my pinned anchor of a clinic. The server cannot forge one.
pub fn open_pinned_anchor(
    keys: &UserKeys,
    clinic_id: &Uuid,
    sealed: &crate::wire::SealedBlob,
) -> Result<Vec<u8>, crate::crypto::CryptoError> {
    keys.open_for_self(&anchor_context(clinic_id), sealed)
        .map(|z| z.to_vec())
}

/// Wraps to one member every key (all epochs) its role is granted.
pub fn wrap_for_member(
    clinic_id: &Uuid,
    keyring: &crate::crypto::ClinicKeyring,
    role: crate::wire::Role,
    member: &Uuid,
    member_keys: &PublicKeys,
) -> Result<Vec<crate::wire::WrappedKey>, crate::crypto::CryptoError> {
    keyring
        .for_role(role)
        .into_iter()
        .map(|k| {
            crate::crypto::wrap_clinic_key(clinic_id, k, member, member_keys.x25519.as_slice())
        })
        .collect()
}

/// After a rotation to `epoch`: wraps the new keys to every member of `roster` (as it stands after
/// the change), each getting the compartments its role grants.
pub fn wrap_epoch_for_roster(
    roster: &Roster,
    keyring: &crate::crypto::ClinicKeyring,
    epoch: u32,
) -> Result<Vec<crate::wire::WrappedKey>, crate::crypto::CryptoError> {
    let mut out = Vec::new();
    for (id, m) in &roster.members {
        for k in keyring
            .keys()
            .iter()
            .filter(|k| k.epoch == epoch && k.chart_id.is_none() && m.role.grants(k.compartment))
        {
            out.push(crate::crypto::wrap_clinic_key(
                &roster.clinic_id,
                k,
                id,
                m.public_keys.x25519.as_slice(),
            )?);
        }
    }
    Ok(out)
}
