//! Restricted charts, client side: restricting a chart (its own keys, wrapped to the care team for
//! what each member's role grants, and every record of it re-sealed under them), adding to and
//! removing from a care team, and the chart keys that a member's removal or role change renews.
//! Roles and public keys come from the verified roster only, never from a server listing.

use std::sync::Arc;

use leptos::prelude::{Update, WithUntracked};

use optovault_shared::crypto::{
    open_record, seal_record, wrap_clinic_key, ClinicKeyring, RecordSlot,
};
use optovault_shared::envelope::Purpose;
use optovault_shared::roster::Roster;
use optovault_shared::wire::{
    CareTeamRequest, RecordWrite, RestrictChartRequest, RestrictedChart, Role, WrappedKey,
};
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::clinic::refresh_clinic;
use crate::state::{AppState, Clinic, Unlocked};
use crate::store::sync;

fn local(code: &str, message: &str) -> ApiError {
    ApiError::local(code, message)
}

fn crypto_failed<E>(_: E) -> ApiError {
    local("crypto", "The chart's keys could not be prepared.")
}

/// Whether `me` may restrict charts and change care teams: an owner, or a practitioner whose role
/// grants clinical records (the server applies the same rule).
pub fn may_manage(clinic: &Clinic, me: &Uuid) -> bool {
    clinic
        .roster
        .as_ref()
        .and_then(|r| r.role_of(me))
        .is_some_and(|r| r == Role::Owner || r.grants(Compartment::Clinical))
}

fn member_keys<'a>(
    roster: &'a Roster,
    id: &Uuid,
) -> Result<&'a optovault_shared::roster::RosterMember, ApiError> {
    roster.members.get(id).ok_or_else(|| {
        local(
            "not_a_member",
            "Someone on this care team is not in the clinic's signed member list.",
        )
    })
}

/// Wraps the chart's keys of `epoch` to each of `team`, for what its role grants.
pub fn wrap_chart_epoch(
    roster: &Roster,
    keyring: &ClinicKeyring,
    chart_id: Uuid,
    epoch: u32,
    team: &[Uuid],
) -> Result<Vec<WrappedKey>, ApiError> {
    let mut out = Vec::new();
    for id in team {
        let m = member_keys(roster, id)?;
        for k in keyring.keys().iter().filter(|k| {
            k.chart_id == Some(chart_id) && k.epoch == epoch && m.role.grants(k.compartment)
        }) {
            out.push(
                wrap_clinic_key(&roster.clinic_id, k, id, m.public_keys.x25519.as_slice())
                    .map_err(crypto_failed)?,
            );
        }
    }
    Ok(out)
}

/// For a removal or role change of `member`: every restricted chart it is on gets new keys at its
/// next epoch (added to `keyring`), wrapped to the care-team members who stay, each for what its
/// role grants after the change (`after`). A chart whose team would be empty gets none, and the
/// server refuses the change with `care_team_would_be_empty`.
pub fn rotate_charts_of(
    after: &Roster,
    keyring: &mut ClinicKeyring,
    charts: &[RestrictedChart],
    member: Uuid,
) -> Result<Vec<WrappedKey>, ApiError> {
    let mut out = Vec::new();
    for c in charts.iter().filter(|c| c.care_team.contains(&member)) {
        let stays: Vec<Uuid> = c
            .care_team
            .iter()
            .copied()
            .filter(|id| after.members.contains_key(id))
            .collect();
        let next = c.key_epoch + 1;
        let _fresh = keyring.add_chart_keys(c.chart_id, &Compartment::ALL, next);
        out.extend(wrap_chart_epoch(after, keyring, c.chart_id, next, &stays)?);
    }
    Ok(out)
}

/// The clinic, refreshed, with my keyring and the verified roster.
async fn fresh(app: AppState, me: &Unlocked, clinic_id: Uuid) -> Result<Arc<Clinic>, ApiError> {
    let clinic = refresh_clinic(app, me, clinic_id).await?;
    clinic
        .trusted()
        .map_err(|why| local("untrusted_clinic", &why))?;
    Ok(clinic)
}

/// Restricts a chart to `team` (I am always on it): the chart's own keys at epoch 1, wrapped to
/// each member of the team for what its role grants, and every current record of the chart that
/// the feed has sent me re-sealed under them as its next version, all in one request.
pub async fn restrict(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    mut team: Vec<Uuid>,
) -> Result<(), ApiError> {
    let store = app.store(clinic_id);
    // Up to date first: every record of the chart must be re-sealed at its current version.
    let clinic = fresh(app, &me, clinic_id).await?;
    sync(app, me.clone(), clinic.clone(), store.clone()).await?;
    // Out of the patient index first (everyone with the demographics key reads it); if the
    // restriction then fails, the next sync puts the entry back.
    crate::patient_index::remove_from_index(app, &me, clinic, chart_id).await?;
    let clinic = fresh(app, &me, clinic_id).await?;
    let (keyring, roster) = clinic
        .trusted()
        .map_err(|why| local("untrusted_clinic", &why))?;
    if !team.contains(&me.account_id) {
        team.insert(0, me.account_id);
    }
    let mut ring = keyring.clone();
    let _fresh = ring.add_chart_keys(chart_id, &Compartment::ALL, 1);
    let wrapped_keys = wrap_chart_epoch(roster, &ring, chart_id, 1, &team)?;
    let ids = store.with_untracked(|s| s.records_of_chart(&chart_id));
    let mut reseal = Vec::with_capacity(ids.len());
    for id in ids {
        let stored = api::get_record(clinic_id, id).await?;
        let env = &stored.envelope;
        if env.chart_id != chart_id || env.record_id != id {
            return Err(local(
                "misfiled",
                "A record of this chart is filed elsewhere; nothing was changed.",
            ));
        }
        let plain = open_record(&clinic_id, Purpose::Record, env, keyring, |a| {
            clinic.author_key(a)
        })
        .map_err(|_| {
            local(
                "unreadable",
                "A record of this chart could not be opened with your keys, so it cannot be \
                 re-sealed; nothing was changed.",
            )
        })?;
        // A deleted record stays deleted (its tombstone is re-sealed as a tombstone).
        let seal = if env.deleted {
            optovault_shared::crypto::seal_tombstone
        } else {
            seal_record
        };
        let envelope = seal(
            RecordSlot {
                clinic_id,
                chart_id,
                record_id: id,
                version: env.version + 1,
                purpose: Purpose::Record,
            },
            env.compartment,
            &ring,
            &me.account_id,
            &me.keys,
            &plain,
        )
        .map_err(crypto_failed)?;
        reseal.push(RecordWrite {
            expected_version: env.version,
            envelope,
        });
    }
    drop(ring);
    api::restrict_chart(
        clinic_id,
        chart_id,
        &RestrictChartRequest {
            care_team: team,
            wrapped_keys,
            reseal,
        },
    )
    .await?;
    let clinic = refresh_clinic(app, &me, clinic_id).await?;
    sync(app, me, clinic, store).await
}

/// Erases a patient (an owner, after confirmation): a chart not yet restricted is first
/// restricted to me alone, so everything current is sealed under the chart's own keys; then the
/// server deletes every version of its records and its files and every copy of those keys, and
/// this browser forgets the chart. Returns how many records were erased.
pub async fn erase(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
) -> Result<u32, ApiError> {
    let store = app.store(clinic_id);
    if store.with_untracked(|s| s.restriction(&chart_id).is_none()) {
        restrict(app, me.clone(), clinic_id, chart_id, vec![me.account_id]).await?;
    }
    let done = api::erase_chart(clinic_id, chart_id).await?;
    store.update(|s| s.erased(chart_id));
    refresh_clinic(app, &me, clinic_id).await?;
    Ok(done.records)
}

/// The chart as the server now describes it (care team, key epoch).
async fn chart_now(clinic_id: Uuid, chart_id: Uuid) -> Result<RestrictedChart, ApiError> {
    api::charts(clinic_id)
        .await?
        .charts
        .into_iter()
        .find(|c| c.chart_id == chart_id)
        .ok_or_else(|| local("not_restricted", "This chart is not restricted."))
}

/// Adds `newcomer` to the care team: it receives every key of the chart (all epochs) its role
/// grants, wrapped to it; the chart's key epoch stays.
pub async fn add_to_team(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    newcomer: Uuid,
) -> Result<(), ApiError> {
    let clinic = fresh(app, &me, clinic_id).await?;
    let chart = chart_now(clinic_id, chart_id).await?;
    let (keyring, roster) = clinic
        .trusted()
        .map_err(|why| local("untrusted_clinic", &why))?;
    if chart.care_team.contains(&newcomer) {
        return Ok(());
    }
    let m = member_keys(roster, &newcomer)?;
    let wrapped_keys = keyring
        .keys()
        .iter()
        .filter(|k| k.chart_id == Some(chart_id) && m.role.grants(k.compartment))
        .map(|k| wrap_clinic_key(&clinic_id, k, &newcomer, m.public_keys.x25519.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(crypto_failed)?;
    let mut care_team = chart.care_team.clone();
    care_team.push(newcomer);
    api::change_care_team(
        clinic_id,
        chart_id,
        &CareTeamRequest {
            care_team,
            key_epoch: chart.key_epoch,
            wrapped_keys,
        },
    )
    .await?;
    let clinic = refresh_clinic(app, &me, clinic_id).await?;
    sync(app, me, clinic, app.store(clinic_id)).await
}

/// Takes `leaving` off the care team: the chart's next key epoch, with new keys for everyone who
/// stays (each for what its role grants), so nothing written from now on opens with its keys.
pub async fn remove_from_team(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    leaving: Uuid,
) -> Result<(), ApiError> {
    let clinic = fresh(app, &me, clinic_id).await?;
    let chart = chart_now(clinic_id, chart_id).await?;
    let (keyring, roster) = clinic
        .trusted()
        .map_err(|why| local("untrusted_clinic", &why))?;
    let stays: Vec<Uuid> = chart
        .care_team
        .iter()
        .copied()
        .filter(|id| *id != leaving)
        .collect();
    let next = chart.key_epoch + 1;
    let mut ring = keyring.clone();
    let _fresh = ring.add_chart_keys(chart_id, &Compartment::ALL, next);
    let wrapped_keys = wrap_chart_epoch(roster, &ring, chart_id, next, &stays)?;
    drop(ring);
    api::change_care_team(
        clinic_id,
        chart_id,
        &CareTeamRequest {
            care_team: stays,
            key_epoch: next,
            wrapped_keys,
        },
    )
    .await?;
    let clinic = refresh_clinic(app, &me, clinic_id).await?;
    sync(app, me, clinic, app.store(clinic_id)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::crypto::{unwrap_keyring, UserKeys};
    use optovault_shared::roster::RosterChange;
    use optovault_shared::team::{genesis_entry, next_entry, sign_entry, verify_roster};

    fn chart(chart_id: Uuid, care_team: Vec<Uuid>, key_epoch: u32) -> RestrictedChart {
        RestrictedChart {
            chart_id,
            in_care_team: true,
            care_team,
            key_epoch,
            restricted_at: 1,
        }
    }

    #[test]
    fn a_removal_renews_the_keys_of_every_chart_the_member_is_on_for_those_who_stay() {
        let clinic_id = Uuid::new_v4();
        let people: Vec<(Uuid, UserKeys)> = (0..3)
            .map(|_| (Uuid::new_v4(), UserKeys::generate()))
            .collect();
        let [(owner, owner_keys), (optom, optom_keys), (desk, desk_keys)] = &people[..] else {
            unreachable!()
        };
        let mut entries = vec![genesis_entry(clinic_id, *owner, "owner", owner_keys, 1)];
        for (id, keys, role) in [
            (optom, optom_keys, Role::Optometrist),
            (desk, desk_keys, Role::FrontDesk),
        ] {
            let r = verify_roster(clinic_id, &entries, None, None).unwrap();
            entries.push(sign_entry(
                &next_entry(
                    &r,
                    *owner,
                    RosterChange::Add {
                        member: *id,
                        username: id.to_string(),
                        role,
                        public_keys: keys.public_keys(),
                    },
                    1,
                    2,
                ),
                owner_keys,
            ));
        }
        let r = verify_roster(clinic_id, &entries, None, None).unwrap();
        entries.push(sign_entry(
            &next_entry(&r, *owner, RosterChange::Remove { member: *optom }, 2, 3),
            owner_keys,
        ));
        let after = verify_roster(clinic_id, &entries, None, None).unwrap();

        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let charts = vec![
            chart(a, vec![*owner, *optom, *desk], 1),
            chart(b, vec![*owner, *desk], 2),
            chart(c, vec![*optom], 1),
        ];
        let mut ring = ClinicKeyring::generate();
        let wrapped = rotate_charts_of(&after, &mut ring, &charts, *optom).unwrap();
        // Chart a: epoch 2, four keys to the owner, demographics only to the front desk.
        assert!(wrapped
            .iter()
            .all(|w| w.chart_id == Some(a) && w.epoch == 2 && w.recipient != *optom));
        assert_eq!(wrapped.iter().filter(|w| w.recipient == *owner).count(), 4);
        let to_desk: Vec<_> = wrapped.iter().filter(|w| w.recipient == *desk).collect();
        assert_eq!(to_desk.len(), 1);
        assert_eq!(to_desk[0].compartment, Compartment::Demographics);
        // Chart b is not the member's: untouched. Chart c would be left empty: the server refuses.
        assert!(!ring.has_chart(&b));
        // The desk's wrapped key opens with its own keys, as a key of chart a.
        let got = unwrap_keyring(&clinic_id, &wrapped, desk, desk_keys).unwrap();
        assert_eq!(got.keys().len(), 1);
        assert_eq!(got.keys()[0].chart_id, Some(a));
        assert!(ring
            .sealing_key(&a, Compartment::Clinical)
            .is_some_and(|k| k.epoch == 2 && k.chart_id == Some(a)));
    }
}
