//! Keeping the clinic's patient index current (see `optovault_shared::patient_index`): a patient
//! is saved together with its index shard in one all-or-nothing batch; a clinic whose index lags
//! (patients written before the index existed, a write that could not include its shard, a chart
//! restricted since) is repaired by the next member who syncs it. Entries of restricted charts
//! are taken out: everyone holding the demographics key reads the index.

use std::collections::BTreeMap;
use std::sync::Arc;

use leptos::prelude::{Update, WithUntracked};
use optovault_shared::domain::{Patient, RecordBody};
use optovault_shared::limits;
use optovault_shared::patient_index::{shard_of, shard_record_id, IndexEntry, PatientIndexShard};
use optovault_shared::wire::{RecordWrite, WriteResult};
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::clinic::refresh_clinic;
use crate::records::{seal, Draft};
use crate::state::{AppState, Clinic, Unlocked};
use crate::store::fetch_now;

/// Shards written per request when repairing (keeps a request well under the body limit).
const SHARDS_PER_BATCH: usize = 32;

/// Tries at a write whose shard another member changed meanwhile.
const ATTEMPTS: usize = 4;

/// Seals the next version of a shard; `None` if it would exceed the record size limit (the
/// patients it leaves out are then fetched from the feed like any unindexed patient).
fn seal_shard(
    me: &Unlocked,
    clinic: &Clinic,
    version: u64,
    shard: &PatientIndexShard,
) -> Result<Option<RecordWrite>, ApiError> {
    let body = RecordBody::PatientIndex(shard.clone());
    let w = seal(
        me,
        clinic,
        &Draft {
            record_id: shard_record_id(&clinic.id, shard.shard),
            chart_id: clinic.id,
            expected_version: version,
            compartment: Compartment::Demographics,
            body: &body,
            previous: None,
            intent: crate::records::Intent::Save,
        },
    )?;
    Ok((w.envelope.ciphertext.0.len() <= limits::MAX_CIPHERTEXT_BYTES).then_some(w))
}

/// The shard as I hold it (an empty one at version 0 if none was ever written).
fn current_shard(app: AppState, clinic_id: Uuid, n: u16) -> (u64, PatientIndexShard) {
    app.store(clinic_id)
        .with_untracked(|s| s.shards.get(&n).cloned())
        .unwrap_or_else(|| (0, PatientIndexShard::new(n)))
}

/// Reads a shard again after a conflict; returns whether it moved past `version`.
async fn reload_shard(
    app: AppState,
    me: &Unlocked,
    clinic: Arc<Clinic>,
    n: u16,
    version: u64,
) -> Result<bool, ApiError> {
    let store = app.store(clinic.id);
    let id = shard_record_id(&clinic.id, n);
    fetch_now(app, me, clinic.clone(), &store, &[(id, version)]).await?;
    Ok(current_shard(app, clinic.id, n).0 > version)
}

/// Saves a version of a patient record and its index entry in one batch (a restricted chart's
/// patient is taken out of the index instead). Retries when the shard changed meanwhile or the
/// keys were rotated; a conflict on the patient record itself is returned.
pub async fn save_patient(
    app: AppState,
    me: &Unlocked,
    mut clinic: Arc<Clinic>,
    record_id: Uuid,
    expected_version: u64,
    patient: &Patient,
) -> Result<(WriteResult, Arc<Clinic>), ApiError> {
    let store = app.store(clinic.id);
    let n = shard_of(&record_id);
    let body = RecordBody::Patient(patient.clone());
    // The audit report: which fields changed, from the full record held (not an index summary).
    let previous = store.with_untracked(|s| {
        s.patients
            .get(&record_id)
            .filter(|(v, _)| *v == expected_version && !s.summaries.contains(&record_id))
            .map(|(_, p)| RecordBody::Patient(p.clone()))
    });
    let report =
        crate::audit::report_change(app, me, &clinic, record_id, previous.as_ref(), &body).await?;
    for _ in 0..ATTEMPTS {
        let restricted = store.with_untracked(|s| s.restriction(&record_id).is_some());
        let (version, mut shard) = current_shard(app, clinic.id, n);
        let changed = if restricted {
            shard.remove(&record_id)
        } else {
            shard.upsert(IndexEntry::summarise(
                record_id,
                expected_version + 1,
                patient,
            ))
        };
        let mut writes = vec![seal(
            me,
            &clinic,
            &Draft {
                record_id,
                chart_id: record_id,
                expected_version,
                compartment: Compartment::Demographics,
                body: &body,
                previous: None,
                intent: crate::records::Intent::Save,
            },
        )?];
        if changed {
            writes.extend(seal_shard(me, &clinic, version, &shard)?);
        }
        let with_shard = writes.len() == 2;
        match api::write_records(clinic.id, writes, report.clone()).await {
            Ok(results) => {
                if with_shard {
                    let id = shard_record_id(&clinic.id, n);
                    store.update(|s| s.saved_shard(id, version + 1, shard));
                }
                let done = results.into_iter().next().ok_or_else(|| {
                    ApiError::local("no_result", "The server answered without a result.")
                })?;
                return Ok((done, clinic));
            }
            Err(e) if e.code == "stale_key_epoch" || e.code == "unknown_key" => {
                clinic = refresh_clinic(app, me, clinic.id).await?;
            }
            Err(e) if e.code == "version_conflict" && with_shard => {
                if !reload_shard(app, me, clinic.clone(), n, version).await? {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::local(
        "index_busy",
        "The patient index kept changing while saving; please save again.",
    ))
}

/// Takes a chart's patient out of the index (before the chart is restricted).
pub async fn remove_from_index(
    app: AppState,
    me: &Unlocked,
    clinic: Arc<Clinic>,
    chart_id: Uuid,
) -> Result<(), ApiError> {
    let n = shard_of(&chart_id);
    for _ in 0..ATTEMPTS {
        let (version, mut shard) = current_shard(app, clinic.id, n);
        if !shard.remove(&chart_id) {
            return Ok(());
        }
        let Some(w) = seal_shard(me, &clinic, version, &shard)? else {
            return Ok(());
        };
        match api::write_records(clinic.id, vec![w], None).await {
            Ok(_) => {
                let id = shard_record_id(&clinic.id, n);
                app.store(clinic.id)
                    .update(|s| s.saved_shard(id, version + 1, shard));
                return Ok(());
            }
            Err(e) if e.code == "version_conflict" => {
                reload_shard(app, me, clinic.clone(), n, version).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::local(
        "index_busy",
        "The patient index kept changing; please try again.",
    ))
}

/// The shards that need a new version: patients I hold in full whose entry is missing or older,
/// and entries of restricted charts.
fn shards_to_repair(app: AppState, clinic_id: Uuid) -> Vec<(u64, PatientIndexShard)> {
    app.store(clinic_id).with_untracked(|s| {
        if !s.index_loaded {
            return Vec::new();
        }
        let mut touched: BTreeMap<u16, (u64, PatientIndexShard)> = BTreeMap::new();
        let held = |n: u16| {
            s.shards
                .get(&n)
                .cloned()
                .unwrap_or_else(|| (0, PatientIndexShard::new(n)))
        };
        for (id, (version, p)) in &s.patients {
            if s.summaries.contains(id) || s.restriction(id).is_some() || s.errors.contains_key(id)
            {
                continue;
            }
            let n = shard_of(id);
            let fresh = s
                .shards
                .get(&n)
                .and_then(|(_, sh)| sh.get(id))
                .is_some_and(|e| e.version >= *version);
            if !fresh {
                touched
                    .entry(n)
                    .or_insert_with(|| held(n))
                    .1
                    .upsert(IndexEntry::summarise(*id, *version, p));
            }
        }
        for chart_id in s.charts.keys() {
            let n = shard_of(chart_id);
            if s.shards
                .get(&n)
                .is_some_and(|(_, sh)| sh.get(chart_id).is_some())
            {
                touched
                    .entry(n)
                    .or_insert_with(|| held(n))
                    .1
                    .remove(chart_id);
            }
        }
        touched.into_values().collect()
    })
}

/// Brings the index up to date with what I hold (see [`shards_to_repair`]); returns how many
/// shards were written. A conflict (someone else repairing or saving) is left to the next sync.
pub async fn repair(app: AppState, me: &Unlocked, clinic: Arc<Clinic>) -> Result<usize, ApiError> {
    if !clinic.holds(Compartment::Demographics) {
        return Ok(0);
    }
    let todo = shards_to_repair(app, clinic.id);
    let mut written = 0;
    for batch in todo.chunks(SHARDS_PER_BATCH) {
        let mut writes = Vec::new();
        let mut sealed = Vec::new();
        for (version, shard) in batch {
            if let Some(w) = seal_shard(me, &clinic, *version, shard)? {
                writes.push(w);
                sealed.push((*version, shard.clone()));
            }
        }
        if writes.is_empty() {
            continue;
        }
        match api::write_records(clinic.id, writes, None).await {
            Ok(_) => {
                written += sealed.len();
                app.store(clinic.id).update(|s| {
                    for (version, shard) in sealed {
                        let id = shard_record_id(&clinic.id, shard.shard);
                        s.saved_shard(id, version + 1, shard);
                    }
                });
            }
            Err(e) if e.code == "version_conflict" || e.code == "stale_key_epoch" => {
                return Ok(written)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
