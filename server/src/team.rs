//! Server-side checks of roster entries and key sets: the same structural rules the clients
//! apply (`optovault_shared::roster`), as defence in depth. The server cannot check signatures
//! (it does not link Ed25519 verification on purpose); every client does.

use std::collections::{BTreeMap, BTreeSet};

use optovault_shared::roster::{entry_hash, Roster, RosterChange, RosterEntry, SignedRosterEntry};
use optovault_shared::wire::{CreateClinicRequest, Role, SealedBlob, WrappedKey};
use optovault_shared::{limits, Compartment};
use uuid::Uuid;

use crate::clinics::wrapped_key_well_formed;
use crate::error::{ApiError, ApiResult};
use crate::store::{AccountRow, MemberRow, RosterRow, StoreError};

fn invalid_entry(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_roster_entry", message)
}

fn invalid_keys(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_wrapped_keys", message)
}

pub fn check_sealed_blob(b: &SealedBlob) -> ApiResult<()> {
    if b.nonce.len() != 12 || b.ciphertext.len() < 16 || b.ciphertext.len() > limits::MAX_SMALL_BLOB
    {
        return Err(ApiError::bad_request(
            "invalid_sealed_blob",
            "Malformed sealed data.",
        ));
    }
    Ok(())
}

fn size_ok(signed: &SignedRosterEntry) -> ApiResult<()> {
    if signed.entry.len() > limits::MAX_SMALL_BLOB || signed.signature.len() != 64 {
        return Err(invalid_entry(
            "Roster entries are at most 4 KiB with a 64-byte signature.",
        ));
    }
    Ok(())
}

fn row(signed: &SignedRosterEntry, roster: &Roster) -> RosterRow {
    RosterRow {
        seq: roster.head_seq,
        hash: entry_hash(signed),
        key_epoch: roster.key_epoch,
        signed: signed.clone(),
    }
}

/// Roster entry 1 of a new clinic: the caller adding itself as owner with its account's keys.
pub fn check_genesis(req: &CreateClinicRequest, caller: &AccountRow) -> ApiResult<RosterRow> {
    size_ok(&req.roster_genesis)?;
    let (roster, entry, _) = Roster::apply_unverified(None, req.clinic_id, &req.roster_genesis)
        .map_err(|e| invalid_entry(e.to_string()))?;
    let RosterChange::Add {
        member,
        username,
        public_keys,
        ..
    } = &entry.change
    else {
        return Err(invalid_entry("The first roster entry must add you."));
    };
    if *member != caller.account_id
        || entry.signer != caller.account_id
        || *username != caller.username
        || *public_keys != caller.public_keys
    {
        return Err(invalid_entry(
            "The first roster entry must add you, with your own public keys, signed by you.",
        ));
    }
    Ok(row(&req.roster_genesis, &roster))
}

/// Rebuilds a clinic's roster from its stored rows (structure only).
pub fn replay(clinic_id: Uuid, rows: &[RosterRow]) -> ApiResult<Roster> {
    let mut roster: Option<Roster> = None;
    for r in rows {
        let (next, _, _) = Roster::apply_unverified(roster.as_ref(), clinic_id, &r.signed)
            .map_err(|_| StoreError::Corrupt("roster"))?;
        roster = Some(next);
    }
    Ok(roster.ok_or(StoreError::Corrupt("roster"))?)
}

/// Checks that `signed` follows `roster` and is signed by the caller; returns the new roster,
/// the entry and its storage row.
pub fn check_next(
    roster: &Roster,
    signed: &SignedRosterEntry,
    caller: Uuid,
) -> ApiResult<(Roster, RosterEntry, RosterRow)> {
    size_ok(signed)?;
    let (next, entry, _) = Roster::apply_unverified(Some(roster), roster.clinic_id, signed)
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "roster_conflict",
                e.to_string(),
            )
        })?;
    if entry.signer != caller {
        return Err(invalid_entry("You must sign the entries you submit."));
    }
    let row = row(signed, &next);
    Ok((next, entry, row))
}

/// The keys a newly admitted member must receive: exactly every key (all epochs) of the
/// compartments its role grants, as the admitting owner holds them.
pub fn check_member_keys(
    keys: &[WrappedKey],
    owner: &MemberRow,
    member: Uuid,
    role: Role,
) -> ApiResult<()> {
    let want: BTreeSet<(Uuid, Compartment, u32)> = owner
        .wrapped_keys
        .iter()
        .filter(|k| k.chart_id.is_none() && role.grants(k.compartment))
        .map(|k| (k.key_id, k.compartment, k.epoch))
        .collect();
    let mut got = BTreeSet::new();
    for k in keys {
        if !wrapped_key_well_formed(k)
            || k.recipient != member
            || !got.insert((k.key_id, k.compartment, k.epoch))
        {
            return Err(invalid_keys(
                "Each key must be well formed, wrapped to the new member, once.",
            ));
        }
    }
    if got != want {
        return Err(invalid_keys(
            "The new member must receive exactly the clinic keys its role grants (every epoch).",
        ));
    }
    Ok(())
}

/// The new-epoch keys of a rotation (older-epoch keys in `keys` are checked by
/// [`check_promotion_keys`]): one new key per compartment at the new epoch, wrapped to every
/// remaining member for exactly what its role grants.
pub fn check_rotation_keys(
    keys: &[WrappedKey],
    after: &Roster,
    existing: &[MemberRow],
) -> ApiResult<()> {
    let epoch = after.key_epoch;
    if keys.iter().any(|k| k.epoch > epoch) {
        return Err(invalid_keys("No key may be of an epoch after the new one."));
    }
    let keys: Vec<&WrappedKey> = keys.iter().filter(|k| k.epoch == epoch).collect();
    let known: BTreeSet<Uuid> = existing
        .iter()
        .flat_map(|m| m.wrapped_keys.iter().map(|k| k.key_id))
        .collect();
    let mut key_of: BTreeMap<Compartment, Uuid> = BTreeMap::new();
    let mut got = BTreeSet::new();
    for k in keys {
        if !wrapped_key_well_formed(k) || known.contains(&k.key_id) {
            return Err(invalid_keys(
                "New keys must be well formed, fresh, and of the new epoch.",
            ));
        }
        if *key_of.entry(k.compartment).or_insert(k.key_id) != k.key_id {
            return Err(invalid_keys("One new key per compartment."));
        }
        if !got.insert((k.recipient, k.compartment)) {
            return Err(invalid_keys(
                "A member received the same compartment twice.",
            ));
        }
    }
    let want: BTreeSet<(Uuid, Compartment)> = after
        .members
        .iter()
        .flat_map(|(id, m)| {
            Compartment::ALL
                .into_iter()
                .filter(|c| m.role.grants(*c))
                .map(move |c| (*id, c))
        })
        .collect();
    if got != want || key_of.len() != Compartment::ALL.len() {
        return Err(invalid_keys(
            "A rotation renews every compartment and wraps the new keys to every remaining member for exactly what its role grants.",
        ));
    }
    Ok(())
}

/// A member whose new role gains compartments must also receive every older key of those
/// compartments (as the owner holds them), so it can read what was written before; nothing else
/// of an older epoch may be sent.
pub fn check_promotion_keys(
    keys: &[WrappedKey],
    epoch: u32,
    owner: &MemberRow,
    promoted: Option<(Uuid, Role, Role)>,
) -> ApiResult<()> {
    let old: BTreeSet<(Uuid, Uuid)> = keys
        .iter()
        .filter(|k| k.epoch < epoch)
        .map(|k| {
            if wrapped_key_well_formed(k) {
                Ok((k.recipient, k.key_id))
            } else {
                Err(invalid_keys("Malformed wrapped key."))
            }
        })
        .collect::<ApiResult<_>>()?;
    let n_old = keys.iter().filter(|k| k.epoch < epoch).count();
    let want: BTreeSet<(Uuid, Uuid)> = match promoted {
        Some((member, from, to)) => owner
            .wrapped_keys
            .iter()
            .filter(|k| {
                k.chart_id.is_none() && to.grants(k.compartment) && !from.grants(k.compartment)
            })
            .map(|k| (member, k.key_id))
            .collect(),
        None => BTreeSet::new(),
    };
    if old != want || n_old != old.len() {
        return Err(invalid_keys(
            "A member whose role gains compartments receives every older key of them, once; no other older keys.",
        ));
    }
    Ok(())
}
