//! The clinic roster: an append-only chain of membership changes, each signed by an owner
//! (threat-model properties 4 and 8). This module is the structure every reader checks — sequence
//! numbers, the hash chain, who may sign what — and needs no key, so the server applies the same
//! rules as defence in depth. Signatures are checked by `crate::team` (feature `client`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::wire::{PublicKeys, Role};
use crate::{UnixTime, B64};

/// One membership change. Serialised to JSON once by its signer; those exact bytes are signed,
/// stored and hashed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    pub clinic_id: Uuid,
    /// 1 for the clinic's first entry (the owner adding themselves), then +1.
    pub seq: u64,
    /// [`entry_hash`] of the previous entry; 32 zero bytes for seq 1.
    pub prev_hash: B64,
    pub at: UnixTime,
    /// Account id of the owner who signs this entry.
    pub signer: Uuid,
    pub change: RosterChange,
    /// The clinic key epoch in force once this entry applies. A removal or a role that loses a
    /// compartment must raise it (the keys are rotated in the same server transaction).
    pub key_epoch: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RosterChange {
    Add {
        member: Uuid,
        username: String,
        role: Role,
        public_keys: PublicKeys,
    },
    ChangeRole {
        member: Uuid,
        role: Role,
    },
    Remove {
        member: Uuid,
    },
}

/// A roster entry as stored and sent: the signer's exact bytes and the Ed25519 signature over
/// [`signing_input`] of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignedRosterEntry {
    /// JSON of a `RosterEntry`.
    pub entry: B64,
    /// Ed25519 signature (64 bytes).
    pub signature: B64,
}

/// What the signer signs.
pub fn signing_input(entry_bytes: &[u8]) -> Vec<u8> {
    [b"optovault/v1/roster-entry\0".as_slice(), entry_bytes].concat()
}

/// The chain hash of a signed entry: SHA-256 over a label, the entry bytes and the signature,
/// each length-prefixed.
pub fn entry_hash(signed: &SignedRosterEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"optovault/v1/roster-hash");
    for part in [signed.entry.as_slice(), signed.signature.as_slice()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RosterError {
    #[error("roster entry {0} is not valid JSON of a roster entry")]
    Malformed(u64),
    #[error("roster entry for another clinic")]
    WrongClinic,
    #[error(
        "roster entry {got} where {want} was expected (a dropped, replayed or reordered entry)"
    )]
    Sequence { want: u64, got: u64 },
    #[error("roster entry {0} does not link to the previous entry")]
    Chain(u64),
    #[error("roster entry {0} is not signed by an owner")]
    NotOwner(u64),
    #[error("roster entry {0} has a bad signature")]
    Signature(u64),
    #[error("roster entry {0} does not fit the roster: {1}")]
    Invalid(u64, &'static str),
    #[error("the roster went back from entry {known} to {served}")]
    Rollback { known: u64, served: u64 },
    #[error("the clinic's first owner is not the one this client trusts")]
    Anchor,
    #[error("the roster is empty")]
    Empty,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RosterMember {
    pub username: String,
    pub role: Role,
    pub public_keys: PublicKeys,
    /// Roster seq of the entry that added this member.
    pub added_in: u64,
}

/// The membership that a verified chain of entries describes.
#[derive(Clone, Debug, PartialEq)]
pub struct Roster {
    pub clinic_id: Uuid,
    pub members: BTreeMap<Uuid, RosterMember>,
    /// Members ever removed, with the seq of their removal (their old signatures stay verifiable
    /// for what they wrote before it).
    pub removed: BTreeMap<Uuid, (RosterMember, u64)>,
    pub head_seq: u64,
    pub head_hash: [u8; 32],
    pub key_epoch: u32,
    /// Ed25519 key of the account that created the clinic (the genesis signer).
    pub anchor: Vec<u8>,
}

impl Roster {
    /// The structural step: checks `signed` as the next entry and applies it. The signature is
    /// not checked here (that needs the `client` feature); the signer must be an owner.
    /// Returns the parsed entry and the signer's Ed25519 key, for the caller to verify.
    pub fn apply_unverified(
        roster: Option<&Roster>,
        clinic_id: Uuid,
        signed: &SignedRosterEntry,
    ) -> Result<(Roster, RosterEntry, Vec<u8>), RosterError> {
        let want = roster.map(|r| r.head_seq + 1).unwrap_or(1);
        let entry: RosterEntry = serde_json::from_slice(signed.entry.as_slice())
            .map_err(|_| RosterError::Malformed(want))?;
        if entry.clinic_id != clinic_id {
            return Err(RosterError::WrongClinic);
        }
        if entry.seq != want {
            return Err(RosterError::Sequence {
                want,
                got: entry.seq,
            });
        }
        let prev = roster.map(|r| r.head_hash).unwrap_or([0; 32]);
        if entry.prev_hash.as_slice() != prev {
            return Err(RosterError::Chain(entry.seq));
        }
        if signed.signature.len() != 64 {
            return Err(RosterError::Signature(entry.seq));
        }
        let seq = entry.seq;
        let invalid = |why| RosterError::Invalid(seq, why);
        let mut next = match roster {
            None => {
                // Genesis: the creator adds themselves as owner and signs with the key it adds.
                let RosterChange::Add {
                    member,
                    username,
                    role: Role::Owner,
                    public_keys,
                } = &entry.change
                else {
                    return Err(invalid("the first entry must add the creating owner"));
                };
                if *member != entry.signer || entry.key_epoch != 1 {
                    return Err(invalid(
                        "the first entry must be signed by the owner it adds, at epoch 1",
                    ));
                }
                check_keys(public_keys).map_err(invalid)?;
                let mut members = BTreeMap::new();
                members.insert(
                    *member,
                    RosterMember {
                        username: username.clone(),
                        role: Role::Owner,
                        public_keys: public_keys.clone(),
                        added_in: 1,
                    },
                );
                Roster {
                    clinic_id,
                    members,
                    removed: BTreeMap::new(),
                    head_seq: 0,
                    head_hash: [0; 32],
                    key_epoch: 1,
                    anchor: public_keys.ed25519.0.clone(),
                }
            }
            Some(r) => r.clone(),
        };
        let signer_key = match next.members.get(&entry.signer) {
            Some(m) if m.role == Role::Owner || roster.is_none() => m.public_keys.ed25519.0.clone(),
            _ => return Err(RosterError::NotOwner(seq)),
        };
        if entry.key_epoch < next.key_epoch {
            return Err(invalid("the key epoch went backwards"));
        }
        if roster.is_some() {
            match &entry.change {
                RosterChange::Add {
                    member,
                    username,
                    role,
                    public_keys,
                } => {
                    if next.members.contains_key(member) || next.removed.contains_key(member) {
                        return Err(invalid("member added twice"));
                    }
                    check_keys(public_keys).map_err(invalid)?;
                    next.members.insert(
                        *member,
                        RosterMember {
                            username: username.clone(),
                            role: *role,
                            public_keys: public_keys.clone(),
                            added_in: seq,
                        },
                    );
                }
                RosterChange::ChangeRole { member, role } => {
                    let old = next
                        .members
                        .get(member)
                        .map(|m| m.role)
                        .ok_or(invalid("no such member"))?;
                    if loses_a_compartment(old, *role) && entry.key_epoch <= next.key_epoch {
                        return Err(invalid("lowering a role must rotate the keys"));
                    }
                    next.members.get_mut(member).expect("checked above").role = *role;
                    if next.owner_count() == 0 {
                        return Err(invalid("the last owner cannot step down"));
                    }
                }
                RosterChange::Remove { member } => {
                    let m = next
                        .members
                        .remove(member)
                        .ok_or(invalid("no such member"))?;
                    if entry.key_epoch <= next.key_epoch {
                        return Err(invalid("a removal must rotate the keys"));
                    }
                    if next.owner_count() == 0 {
                        return Err(invalid("the last owner cannot be removed"));
                    }
                    next.removed.insert(*member, (m, seq));
                }
            }
        }
        next.key_epoch = entry.key_epoch;
        next.head_seq = seq;
        next.head_hash = entry_hash(signed);
        Ok((next, entry, signer_key))
    }

    pub fn owner_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Owner)
            .count()
    }

    pub fn role_of(&self, member: &Uuid) -> Option<Role> {
        self.members.get(member).map(|m| m.role)
    }

    /// The Ed25519 key of a current member, or of a removed one for what they signed before
    /// their removal is all the caller can trust; callers decide which they accept.
    pub fn signing_key(&self, member: &Uuid) -> Option<&[u8]> {
        self.members
            .get(member)
            .map(|m| m.public_keys.ed25519.as_slice())
    }
}

fn check_keys(k: &PublicKeys) -> Result<(), &'static str> {
    if k.x25519.len() != 32 || k.ed25519.len() != 32 {
        return Err("public keys must be 32 bytes each");
    }
    Ok(())
}

/// Whether moving from `old` to `new` takes away any compartment.
pub fn loses_a_compartment(old: Role, new: Role) -> bool {
    crate::Compartment::ALL
        .iter()
        .any(|c| old.grants(*c) && !new.grants(*c))
}
