//! The clinic's team, client side: invitation links, checking an acceptance, admitting a member,
//! removals and role changes (each a key rotation), and the invitee's acceptance. Pages call
//! these; the cryptography is `optovault_shared::team` and `crypto`.

use optovault_shared::crypto::{open_sealed, seal_to, wrap_clinic_key};
use optovault_shared::roster::{Roster, RosterChange};
use optovault_shared::team::{
    invitation_mac, invitation_secret_info, next_entry, pin_anchor, safety_number, sign_entry,
    verify_invitation_mac, wrap_epoch_for_roster, wrap_for_member,
};
use optovault_shared::wire::{
    AcceptInvitationRequest, AddMemberRequest, CreateInvitationRequest, InvitationInfo,
    InvitationView, PublicKeys, Role, RotationRequest, SealedSecret,
};
use optovault_shared::{Compartment, B64};
use rand_core::{OsRng, RngCore};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::api::{self, ApiError};
use crate::charts::rotate_charts_of;
use crate::clinic::refresh_clinic;
use crate::state::{AppState, Clinic, Unlocked};
use crate::util::{now, origin};

pub const ROLES: [Role; 5] = [
    Role::Owner,
    Role::Optometrist,
    Role::Optician,
    Role::FrontDesk,
    Role::Billing,
];

pub fn role_label(r: Role) -> &'static str {
    match r {
        Role::Owner => "Owner",
        Role::Optometrist => "Optometrist",
        Role::Optician => "Optician",
        Role::FrontDesk => "Front desk",
        Role::Billing => "Billing",
    }
}

/// The role's name on the wire (`front_desk`), used as the value of `<option>`s.
pub fn role_code(r: Role) -> &'static str {
    match r {
        Role::Owner => "owner",
        Role::Optometrist => "optometrist",
        Role::Optician => "optician",
        Role::FrontDesk => "front_desk",
        Role::Billing => "billing",
    }
}

pub fn parse_role(s: &str) -> Option<Role> {
    ROLES.into_iter().find(|r| role_code(*r) == s)
}

pub const INVITE_HOURS_DEFAULT: u32 = 72;
pub const INVITE_HOURS_MAX: u32 = 168;

fn local(code: &str, message: &str) -> ApiError {
    ApiError::local(code, message)
}

fn crypto_failed<E>(_: E) -> ApiError {
    local("crypto", "The keys for this change could not be prepared.")
}

// ---- the invitation link ----------------------------------------------------------------------

/// What an invitation link's fragment carries (never sent to the server): the one-time secret,
/// the clinic's trust anchor and the inviting owner's public keys.
pub struct InviteLink {
    pub secret: Zeroizing<Vec<u8>>,
    pub anchor: Vec<u8>,
    pub owner_keys: PublicKeys,
}

impl InviteLink {
    pub fn fragment(&self) -> String {
        format!(
            "k={}&a={}&oe={}&ox={}",
            B64::encode(&self.secret),
            B64::encode(&self.anchor),
            B64::encode(self.owner_keys.ed25519.as_slice()),
            B64::encode(self.owner_keys.x25519.as_slice()),
        )
    }

    /// Reads `#k=…&a=…&oe=…&ox=…`; every part must be there and 32 bytes long.
    pub fn parse(fragment: &str) -> Result<InviteLink, String> {
        let bad = || {
            "This invitation link is incomplete or damaged. Ask for the link again and open it \
             exactly as you received it."
                .to_string()
        };
        let mut parts = std::collections::BTreeMap::new();
        for pair in fragment.trim_start_matches('#').split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                parts.insert(k, v);
            }
        }
        let get = |name: &str| -> Result<Vec<u8>, String> {
            let v = B64::decode(parts.get(name).ok_or_else(bad)?).map_err(|_| bad())?;
            if v.len() == 32 {
                Ok(v)
            } else {
                Err(bad())
            }
        };
        Ok(InviteLink {
            secret: Zeroizing::new(get("k")?),
            anchor: get("a")?,
            owner_keys: PublicKeys {
                ed25519: B64(get("oe")?),
                x25519: B64(get("ox")?),
            },
        })
    }
}

/// Creates an invitation: a fresh one-time secret that goes into the link and, sealed to my own
/// X25519 key, to the server (so I can check the acceptance later). Returns the link.
pub async fn create_invitation(
    me: &Unlocked,
    clinic: &Clinic,
    role: Role,
    hours: u32,
) -> Result<String, ApiError> {
    let (_, roster) = clinic
        .trusted()
        .map_err(|why| local("untrusted_clinic", &why))?;
    let clinic_id = clinic.id;
    let invitation_id = Uuid::new_v4();
    let mut secret = Zeroizing::new(vec![0u8; 32]);
    OsRng.fill_bytes(&mut secret);
    let (enc, ciphertext) = seal_to(
        me.public_keys.x25519.as_slice(),
        &invitation_secret_info(&clinic_id, &invitation_id),
        &secret,
    )
    .map_err(crypto_failed)?;
    api::create_invitation(
        clinic_id,
        &CreateInvitationRequest {
            invitation_id,
            role,
            expires_in_hours: hours,
            sealed_secret: SealedSecret {
                enc: B64(enc),
                ciphertext: B64(ciphertext),
            },
        },
    )
    .await?;
    let link = InviteLink {
        secret,
        anchor: roster.anchor.clone(),
        owner_keys: me.public_keys.clone(),
    };
    Ok(format!(
        "{}/invite/{clinic_id}/{invitation_id}#{}",
        origin(),
        link.fragment()
    ))
}

// ---- the owner's side of an acceptance ----------------------------------------------------------

/// What the owner's client makes of an accepted invitation.
#[derive(Clone, Debug, PartialEq)]
pub enum AcceptanceCheck {
    /// The MAC holds: compare this safety number with the invitee before admitting.
    Genuine { safety_number: String },
    /// The MAC does not hold: someone changed the acceptance (or the link) on the way.
    Tampered,
    /// The secret could not be opened with my keys (another owner's invitation).
    NotMine,
}

pub fn check_acceptance(me: &Unlocked, inv: &InvitationView) -> Option<AcceptanceCheck> {
    let acc = inv.acceptance.as_ref()?;
    let info = invitation_secret_info(&inv.clinic_id, &inv.invitation_id);
    let Ok(secret) = open_sealed(
        &me.keys,
        &info,
        inv.sealed_secret.enc.as_slice(),
        inv.sealed_secret.ciphertext.as_slice(),
    ) else {
        return Some(AcceptanceCheck::NotMine);
    };
    let genuine = verify_invitation_mac(
        &secret,
        &inv.invitation_id,
        &inv.clinic_id,
        &acc.account_id,
        &acc.username,
        &acc.public_keys,
        acc.mac.as_slice(),
    );
    Some(if genuine {
        AcceptanceCheck::Genuine {
            safety_number: safety_number(&me.public_keys, &acc.public_keys),
        }
    } else {
        AcceptanceCheck::Tampered
    })
}

/// Admits an accepted invitee: signs the roster entry adding them with the invited role and wraps
/// to them every key that role is granted. Refuses an acceptance that does not check out.
pub async fn admit(
    app: AppState,
    me: &Unlocked,
    clinic_id: Uuid,
    inv: &InvitationView,
) -> Result<(), ApiError> {
    let Some(AcceptanceCheck::Genuine { .. }) = check_acceptance(me, inv) else {
        return Err(local(
            "tampered",
            "This acceptance does not check out; it was not admitted.",
        ));
    };
    let acc = inv.acceptance.as_ref().expect("checked above");
    // The latest roster: the new entry must follow its head.
    let clinic = refresh_clinic(app, me, clinic_id).await?;
    let (keyring, roster) = clinic
        .trusted()
        .map_err(|why| local("untrusted_clinic", &why))?;
    let entry = next_entry(
        roster,
        me.account_id,
        RosterChange::Add {
            member: acc.account_id,
            username: acc.username.clone(),
            role: inv.role,
            public_keys: acc.public_keys.clone(),
        },
        roster.key_epoch,
        now(),
    );
    let wrapped_keys = wrap_for_member(
        &clinic_id,
        keyring,
        inv.role,
        &acc.account_id,
        &acc.public_keys,
    )
    .map_err(crypto_failed)?;
    api::add_member(
        clinic_id,
        &AddMemberRequest {
            invitation_id: inv.invitation_id,
            roster_entry: sign_entry(&entry, &me.keys),
            wrapped_keys,
        },
    )
    .await?;
    refresh_clinic(app, me, clinic_id).await?;
    Ok(())
}

/// A removal or a role change: either one rotates every compartment's key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemberChange {
    Remove,
    Role(Role),
}

/// Signs the change at a new key epoch, generates that epoch's keys and wraps them to every member
/// that remains, each for what their role grants; the server commits both at once. With them go:
/// for a role that gains compartments, every older clinic-wide key of those compartments, wrapped
/// to the member (so it can read what was written before); and for every restricted chart the
/// member is on, the chart's next keys for the care team that stays.
pub async fn change_member(
    app: AppState,
    me: &Unlocked,
    clinic_id: Uuid,
    member: Uuid,
    change: MemberChange,
) -> Result<(), ApiError> {
    let clinic = refresh_clinic(app, me, clinic_id).await?;
    // Owners see every care team.
    let charts = api::charts(clinic_id).await?.charts;
    let (keyring, roster) = clinic
        .trusted()
        .map_err(|why| local("untrusted_clinic", &why))?;
    let epoch = roster.key_epoch + 1;
    let mut rotated = keyring.clone();
    let _fresh = rotated.rotate(&Compartment::ALL, epoch);
    let change = match change {
        MemberChange::Remove => RosterChange::Remove { member },
        MemberChange::Role(role) => RosterChange::ChangeRole { member, role },
    };
    let signed = sign_entry(
        &next_entry(roster, me.account_id, change, epoch, now()),
        &me.keys,
    );
    let (after, _, _) =
        Roster::apply_unverified(Some(roster), clinic_id, &signed).map_err(|e| {
            local(
                "invalid_change",
                &format!("This change is not allowed: {e}."),
            )
        })?;
    let mut wrapped_keys = wrap_epoch_for_roster(&after, &rotated, epoch).map_err(crypto_failed)?;
    // A role that gains compartments also receives their older keys: exactly those.
    if let (Some(from), Some(m)) = (roster.role_of(&member), after.members.get(&member)) {
        for k in keyring.keys().iter().filter(|k| {
            k.chart_id.is_none()
                && k.epoch < epoch
                && m.role.grants(k.compartment)
                && !from.grants(k.compartment)
        }) {
            wrapped_keys.push(
                wrap_clinic_key(&clinic_id, k, &member, m.public_keys.x25519.as_slice())
                    .map_err(crypto_failed)?,
            );
        }
    }
    wrapped_keys.extend(rotate_charts_of(&after, &mut rotated, &charts, member)?);
    drop(rotated);
    api::rotate(
        clinic_id,
        &RotationRequest {
            roster_entry: signed,
            wrapped_keys,
        },
    )
    .await?;
    refresh_clinic(app, me, clinic_id).await?;
    Ok(())
}

// ---- the invitee's side -----------------------------------------------------------------------

/// The safety number the invitee reads to the owner.
pub fn invitee_safety_number(me: &Unlocked, link: &InviteLink) -> String {
    safety_number(&link.owner_keys, &me.public_keys)
}

/// Accepts: a MAC with the link's secret over who I am and my public keys, and my own sealed
/// copy of the clinic's trust anchor from the link.
pub async fn accept(
    me: &Unlocked,
    clinic_id: Uuid,
    invitation_id: Uuid,
    link: &InviteLink,
) -> Result<InvitationInfo, ApiError> {
    let mac = invitation_mac(
        &link.secret,
        &invitation_id,
        &clinic_id,
        &me.account_id,
        &me.username,
        &me.public_keys,
    );
    api::accept_invitation(
        clinic_id,
        invitation_id,
        &AcceptInvitationRequest {
            mac: B64(mac),
            pinned_anchor: pin_anchor(&me.keys, &clinic_id, &link.anchor),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::crypto::UserKeys;

    #[test]
    fn a_link_fragment_round_trips_and_damage_is_caught() {
        let owner = UserKeys::generate();
        let link = InviteLink {
            secret: Zeroizing::new(vec![7; 32]),
            anchor: vec![9; 32],
            owner_keys: owner.public_keys(),
        };
        let f = link.fragment();
        let back = InviteLink::parse(&format!("#{f}")).unwrap();
        assert_eq!(back.secret.as_slice(), link.secret.as_slice());
        assert_eq!(back.anchor, link.anchor);
        assert_eq!(back.owner_keys, link.owner_keys);
        assert!(InviteLink::parse("").is_err());
        assert!(InviteLink::parse(&f.replace("k=", "x=")).is_err());
        assert!(InviteLink::parse(&f[..f.len() - 3]).is_err());
    }

    #[test]
    fn role_codes_match_the_wire() {
        for r in ROLES {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", role_code(r)));
            assert_eq!(parse_role(role_code(r)), Some(r));
        }
    }
}
