//! Clinics: verifying a clinic's roster against my pinned anchor, unwrapping its keys, opening its
//! profile, creating a new clinic.

use std::collections::BTreeMap;
use std::sync::Arc;

use leptos::prelude::*;
use optovault_shared::crypto::{
    open_record, seal_record, unwrap_keyring, wrap_clinic_key, ClinicKeyring, RecordSlot,
};
use optovault_shared::envelope::Purpose;
use optovault_shared::roster::{Roster, RosterError, SignedRosterEntry};
use optovault_shared::team::{genesis_entry, open_pinned_anchor, pin_anchor, verify_roster};
use optovault_shared::wire::{ClinicView, CreateClinicRequest};
use optovault_shared::Compartment;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::api::{self, ApiError};
use crate::state::{AppState, Clinic, Unlocked};
use crate::util::now;

/// The plaintext of a clinic's `profile` envelope.
#[derive(Serialize, Deserialize)]
pub struct ClinicProfile {
    pub name: String,
}

pub const NAME_MAX: usize = 100;

fn describe_roster_error(e: RosterError) -> String {
    match e {
        RosterError::Rollback { known, served } => format!(
            "The server sent an older member list (entry {served}) than this browser has already \
             seen (entry {known}). Refused: the clinic is not opened."
        ),
        RosterError::Anchor => "The clinic's member list was not started by the owner you \
                                trust. Refused: the clinic is not opened."
            .into(),
        other => format!("The clinic's member list does not verify ({other}). Refused."),
    }
}

/// Verifies the roster chain against my pinned anchor and the highest head seen in this session.
fn check_roster(
    app: AppState,
    me: &Unlocked,
    view: &ClinicView,
    entries: &[SignedRosterEntry],
) -> Result<Roster, String> {
    let id = view.clinic_id;
    let anchor = open_pinned_anchor(&me.keys, &id, &view.pinned_anchor)
        .map_err(|_| "Your pinned trust anchor for this clinic could not be opened.".to_string())?;
    let roster = verify_roster(id, entries, Some(&anchor), app.known_roster_head(&id))
        .map_err(describe_roster_error)?;
    app.saw_roster_head(id, roster.head_seq);
    if !roster.members.contains_key(&me.account_id) {
        return Err("You are not in this clinic's signed member list.".into());
    }
    Ok(roster)
}

/// Opens a clinic from its view and its roster. Never fails: a clinic whose roster, keys or
/// profile do not check out is kept with the reason, and shown as unverified.
pub fn open_clinic(
    app: AppState,
    me: &Unlocked,
    view: &ClinicView,
    entries: &[SignedRosterEntry],
) -> Clinic {
    let id = view.clinic_id;
    let keyring = unwrap_keyring(&id, &view.wrapped_keys, &me.account_id, &me.keys).ok();
    let roster = check_roster(app, me, view, entries);
    let mut clinic = Clinic {
        id,
        role: view.role,
        name: Err(String::new()),
        keyring,
        roster: None,
    };
    clinic.name = match roster {
        Err(why) => Err(why),
        Ok(r) => {
            clinic.role = r.role_of(&me.account_id).unwrap_or(view.role);
            clinic.roster = Some(r);
            open_profile(&clinic, view)
        }
    };
    clinic
}

fn open_profile(clinic: &Clinic, view: &ClinicView) -> Result<String, String> {
    let id = clinic.id;
    let Some(keyring) = &clinic.keyring else {
        return Err("Its keys could not be opened with your account.".into());
    };
    if view.profile.record_id != id || view.profile.chart_id != id {
        return Err("Its profile belongs to another clinic.".into());
    }
    let plain = open_record(&id, Purpose::ClinicProfile, &view.profile, keyring, |a| {
        clinic.author_key(a)
    })
    .map_err(|_| "Its profile could not be verified.".to_string())?;
    serde_json::from_slice::<ClinicProfile>(&plain)
        .map(|p| p.name)
        .map_err(|_| "Its profile is unreadable.".to_string())
}

/// Fetches a clinic's roster and opens it.
async fn fetch_and_open(
    app: AppState,
    me: &Unlocked,
    view: &ClinicView,
) -> Result<Arc<Clinic>, ApiError> {
    let page = api::roster(view.clinic_id, 0).await?;
    Ok(Arc::new(open_clinic(app, me, view, &page.entries)))
}

/// A 403 of a clinic's security policy that the account page can fix.
pub fn is_policy_block(e: &ApiError) -> bool {
    e.status == 403
        && matches!(
            e.code.as_str(),
            "mfa_required" | "password_expired" | "password_change_required"
        )
}

/// Fetches the clinics I belong to and replaces the app's list with them.
pub async fn load_clinics(app: AppState, me: &Unlocked) -> Result<(), ApiError> {
    let list = api::list_clinics().await?;
    let mut clinics = BTreeMap::new();
    for v in &list.clinics {
        let clinic = match fetch_and_open(app, me, v).await {
            Ok(c) => c,
            // The clinic's policy keeps me out (no second factor, a password to change): list it
            // with the server's reason, and let the page show how to fix it.
            Err(e) if is_policy_block(&e) => {
                if app.is_current(me) {
                    app.policy_block.set(Some(e.message.clone()));
                }
                Arc::new(Clinic {
                    id: v.clinic_id,
                    role: v.role,
                    name: Err(e.message),
                    keyring: None,
                    roster: None,
                })
            }
            Err(e) => return Err(e),
        };
        clinics.insert(v.clinic_id, clinic);
    }
    if app.is_current(me) {
        app.clinics.set(clinics);
    }
    Ok(())
}

/// Fetches the clinic again (new keys after a rotation, a changed roster) and keeps it.
pub async fn refresh_clinic(
    app: AppState,
    me: &Unlocked,
    id: Uuid,
) -> Result<Arc<Clinic>, ApiError> {
    let view = api::get_clinic(id).await?;
    let clinic = fetch_and_open(app, me, &view).await?;
    app.put_clinic(me, clinic.clone());
    Ok(clinic)
}

/// The clinic from the app's list, fetched from the server when the page was opened directly.
pub async fn ensure_clinic(
    app: AppState,
    me: &Unlocked,
    id: Uuid,
) -> Result<Arc<Clinic>, ApiError> {
    match app.clinic(&id) {
        // A clinic listed without its roster (e.g. kept out by its policy) is fetched again.
        Some(c) if c.roster.is_some() => Ok(c),
        _ => refresh_clinic(app, me, id).await,
    }
}

/// Checks a clinic name; returns it trimmed.
pub fn check_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 {
        return Err("Enter the clinic's name.".into());
    }
    if n > NAME_MAX {
        return Err(format!("At most {NAME_MAX} characters ({n} now)."));
    }
    if name.chars().any(char::is_control) {
        return Err("Control characters are not allowed.".into());
    }
    Ok(name.to_string())
}

/// Creates a clinic: fresh keys for every compartment wrapped to my own X25519 key, the profile
/// sealed under the demographics key, the roster's genesis entry (me, owner) and my pinned copy of
/// the clinic's trust anchor (my own Ed25519 key).
pub async fn create_clinic(
    app: AppState,
    me: &Unlocked,
    name: String,
) -> Result<Arc<Clinic>, ApiError> {
    let crypto_failed = |_| ApiError::local("crypto", "The clinic's keys could not be created.");
    let clinic_id = Uuid::new_v4();
    let keyring = ClinicKeyring::generate();
    let wrapped_keys = keyring
        .keys()
        .iter()
        .map(|k| {
            wrap_clinic_key(
                &clinic_id,
                k,
                &me.account_id,
                me.public_keys.x25519.as_slice(),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(crypto_failed)?;
    let plain = Zeroizing::new(
        serde_json::to_vec(&ClinicProfile { name: name.clone() }).expect("a string serializes"),
    );
    let slot = RecordSlot {
        clinic_id,
        chart_id: clinic_id,
        record_id: clinic_id,
        version: 1,
        purpose: Purpose::ClinicProfile,
    };
    let profile = seal_record(
        slot,
        Compartment::Demographics,
        &keyring,
        &me.account_id,
        &me.keys,
        &plain,
    )
    .map_err(crypto_failed)?;
    let anchor = me.public_keys.ed25519.as_slice();
    let roster_genesis = genesis_entry(clinic_id, me.account_id, &me.username, &me.keys, now());
    let roster = verify_roster(
        clinic_id,
        std::slice::from_ref(&roster_genesis),
        Some(anchor),
        None,
    )
    .map_err(|_| ApiError::local("crypto", "The clinic's member list could not be signed."))?;
    let view = api::create_clinic(&CreateClinicRequest {
        clinic_id,
        profile,
        wrapped_keys,
        roster_genesis,
        pinned_anchor: pin_anchor(&me.keys, &clinic_id, anchor),
    })
    .await?;
    app.saw_roster_head(clinic_id, roster.head_seq);
    Ok(Arc::new(Clinic {
        id: clinic_id,
        role: view.role,
        name: Ok(name),
        keyring: Some(keyring),
        roster: Some(roster),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::crypto::UserKeys;
    use optovault_shared::roster::RosterChange;
    use optovault_shared::team::{next_entry, sign_entry};
    use optovault_shared::wire::Role;

    struct Fixture {
        app: AppState,
        me: Unlocked,
        view: ClinicView,
        entries: Vec<SignedRosterEntry>,
    }

    /// A clinic I created, with a second member added (roster head 2).
    fn fixture() -> Fixture {
        let me = Unlocked::new(Uuid::new_v4(), "owner".into(), UserKeys::generate());
        let clinic_id = Uuid::new_v4();
        let keyring = ClinicKeyring::generate();
        let profile = seal_record(
            RecordSlot {
                clinic_id,
                chart_id: clinic_id,
                record_id: clinic_id,
                version: 1,
                purpose: Purpose::ClinicProfile,
            },
            Compartment::Demographics,
            &keyring,
            &me.account_id,
            &me.keys,
            br#"{"name":"Lakeside"}"#,
        )
        .unwrap();
        let genesis = genesis_entry(clinic_id, me.account_id, "owner", &me.keys, 1);
        let r1 = verify_roster(clinic_id, std::slice::from_ref(&genesis), None, None).unwrap();
        let other = UserKeys::generate();
        let add = sign_entry(
            &next_entry(
                &r1,
                me.account_id,
                RosterChange::Add {
                    member: Uuid::new_v4(),
                    username: "optom".into(),
                    role: Role::Optometrist,
                    public_keys: other.public_keys(),
                },
                1,
                2,
            ),
            &me.keys,
        );
        let wrapped_keys = keyring
            .keys()
            .iter()
            .map(|k| {
                wrap_clinic_key(
                    &clinic_id,
                    k,
                    &me.account_id,
                    me.public_keys.x25519.as_slice(),
                )
                .unwrap()
            })
            .collect();
        let view = ClinicView {
            clinic_id,
            role: Role::Owner,
            created_at: 1,
            profile,
            wrapped_keys,
            pinned_anchor: pin_anchor(&me.keys, &clinic_id, me.public_keys.ed25519.as_slice()),
            roster_head: 2,
            key_epoch: 1,
        };
        Fixture {
            app: AppState::new(),
            me,
            view,
            entries: vec![genesis, add],
        }
    }

    #[test]
    fn opens_a_clinic_whose_roster_verifies() {
        let f = fixture();
        let c = open_clinic(f.app, &f.me, &f.view, &f.entries);
        assert_eq!(c.name, Ok("Lakeside".to_string()));
        assert_eq!(c.roster.as_ref().map(|r| r.members.len()), Some(2));
        assert!(c.is_owner(&f.me.account_id));
        assert_eq!(f.app.known_roster_head(&f.view.clinic_id), Some(2));
    }

    #[test]
    fn refuses_a_roster_older_than_one_seen_in_this_session() {
        let f = fixture();
        assert!(open_clinic(f.app, &f.me, &f.view, &f.entries)
            .trusted()
            .is_ok());
        let rolled_back = open_clinic(f.app, &f.me, &f.view, &f.entries[..1]);
        let why = rolled_back.trusted().err().unwrap();
        assert!(why.contains("older member list"), "{why}");
        assert!(rolled_back.roster.is_none());
        assert_eq!(f.app.known_roster_head(&f.view.clinic_id), Some(2));
    }

    #[test]
    fn refuses_a_roster_not_started_by_my_pinned_anchor() {
        let f = fixture();
        // The server swaps in a whole chain of its own, signed by a key it holds.
        let mallory = Unlocked::new(Uuid::new_v4(), "owner".into(), UserKeys::generate());
        let forged = genesis_entry(
            f.view.clinic_id,
            mallory.account_id,
            "owner",
            &mallory.keys,
            1,
        );
        let c = open_clinic(f.app, &f.me, &f.view, &[forged]);
        assert!(c
            .trusted()
            .err()
            .unwrap()
            .contains("not started by the owner you trust"));
        // Or hands me an anchor sealed by someone else.
        let mut view = f.view.clone();
        view.pinned_anchor = pin_anchor(
            &mallory.keys,
            &view.clinic_id,
            mallory.public_keys.ed25519.as_slice(),
        );
        let c = open_clinic(f.app, &f.me, &view, &f.entries);
        assert!(c.trusted().err().unwrap().contains("anchor"));
    }
}
