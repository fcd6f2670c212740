//! Writing one record: seal under the current key of its chart and compartment (a restricted
//! chart's own key, else the clinic's), send, and when the server says the keys were rotated
//! meanwhile (409 `stale_key_epoch`, or `unknown_key` for a chart restricted since), refresh the
//! clinic's keys and try once more.

use std::sync::Arc;

use leptos::prelude::{Update, WithUntracked};

use optovault_shared::crypto::{seal_record, seal_tombstone, RecordSlot};
use optovault_shared::domain::RecordBody;
use optovault_shared::envelope::Purpose;
use optovault_shared::wire::{RecordWrite, WriteResult};
use optovault_shared::Compartment;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::api::{self, ApiError};
use crate::clinic::refresh_clinic;
use crate::state::{AppState, Clinic, Unlocked};

/// Where a record goes and what it holds.
pub struct Draft<'a> {
    pub record_id: Uuid,
    pub chart_id: Uuid,
    /// 0 for a new record.
    pub expected_version: u64,
    pub compartment: Compartment,
    pub body: &'a RecordBody,
    /// The version being replaced, as held (for the audit report's field changes).
    pub previous: Option<&'a RecordBody>,
    pub intent: Intent,
}

/// What a write does to its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// A new version with `body`.
    Save,
    /// A tombstone holding `body` (the deleted content): the record goes to the trash.
    Delete,
    /// `body` again, after a tombstone: the record comes back from the trash.
    Restore,
}

pub fn seal(me: &Unlocked, clinic: &Clinic, d: &Draft) -> Result<RecordWrite, ApiError> {
    let keyring = clinic
        .trusted()
        .map_err(|why| ApiError::local("untrusted_clinic", &why))?
        .0;
    if keyring.sealing_key(&d.chart_id, d.compartment).is_none() {
        return Err(ApiError::local(
            "no_key",
            "Your role does not hold the key for this kind of record.",
        ));
    }
    let plain = Zeroizing::new(serde_json::to_vec(d.body).expect("records serialize"));
    let slot = RecordSlot {
        clinic_id: clinic.id,
        chart_id: d.chart_id,
        record_id: d.record_id,
        version: d.expected_version + 1,
        purpose: Purpose::Record,
    };
    let seal = if d.intent == Intent::Delete {
        seal_tombstone
    } else {
        seal_record
    };
    let envelope = seal(
        slot,
        d.compartment,
        keyring,
        &me.account_id,
        &me.keys,
        &plain,
    )
    .map_err(|_| ApiError::local("crypto", "The record could not be encrypted."))?;
    Ok(RecordWrite {
        expected_version: d.expected_version,
        envelope,
    })
}

/// Seals and writes one record version; returns the server's answer and the clinic as it now
/// stands (refreshed if its keys had been rotated).
pub async fn write_record(
    app: AppState,
    me: &Unlocked,
    clinic: Arc<Clinic>,
    draft: &Draft<'_>,
) -> Result<(WriteResult, Arc<Clinic>), ApiError> {
    let report = match draft.intent {
        Intent::Save => {
            crate::audit::report_change(
                app,
                me,
                &clinic,
                draft.chart_id,
                draft.previous,
                draft.body,
            )
            .await?
        }
        Intent::Delete | Intent::Restore => {
            let restored = draft.intent == Intent::Restore;
            crate::audit::report_removal(app, me, &clinic, draft.chart_id, draft.body, restored)
                .await?
        }
    };
    let send = |clinic: &Clinic, write: RecordWrite| {
        let report = report.clone();
        let clinic_id = clinic.id;
        async move {
            // The write and its audit report commit in one transaction.
            api::write_records(clinic_id, vec![write], report)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    ApiError::local("no_result", "The server answered without a result.")
                })
        }
    };
    let write = seal(me, &clinic, draft)?;
    match send(&clinic, write).await {
        // Keys rotated meanwhile, or a chart restricted since (its own key is needed now).
        Err(e) if e.code == "stale_key_epoch" || e.code == "unknown_key" => {
            let clinic = refresh_clinic(app, me, clinic.id).await?;
            let write = seal(me, &clinic, draft)?;
            let done = send(&clinic, write).await?;
            Ok((done, clinic))
        }
        Err(e) => Err(e),
        Ok(done) => Ok((done, clinic)),
    }
}

/// Saves one version of a chart record other than the patient record itself (an exam, a
/// prescription, an appointment, an invoice …): validates it, seals it into the compartment its
/// kind belongs to, writes it, and keeps it in the clinic's store. On a version conflict the store
/// is synced (so the latest version shows) and the conflict is returned for the form to explain.
/// Returns the new version.
pub async fn save_item(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    record_id: Uuid,
    expected_version: u64,
    body: RecordBody,
) -> Result<u64, ApiError> {
    let clinic = crate::clinic::ensure_clinic(app, &me, clinic_id).await?;
    let store = app.store(clinic_id);
    let previous = store.with_untracked(|s| {
        s.item(&chart_id, &record_id)
            .filter(|i| i.version == expected_version)
            .map(|i| i.body.clone())
    });
    let draft = Draft {
        record_id,
        chart_id,
        expected_version,
        compartment: body.compartment(),
        body: &body,
        previous: previous.as_ref(),
        intent: Intent::Save,
    };
    match write_record(app, &me, clinic, &draft).await {
        Ok((done, clinic)) => {
            let version = expected_version + 1;
            store.update(|s| s.saved_item(chart_id, record_id, version, done.seq, body, &me));
            // Pick up what others wrote meanwhile; a failure here does not undo the save.
            let _ = crate::store::sync(app, me, clinic, store).await;
            Ok(version)
        }
        Err(e) if e.code == "version_conflict" => {
            if let Some(clinic) = app.clinic(&clinic_id) {
                let _ = crate::store::sync(app, me, clinic, store).await;
            }
            Err(ApiError::local(
                "version_conflict",
                "Someone else changed this record meanwhile; the latest version is shown. \
                 Make your change again.",
            ))
        }
        Err(e) => Err(e),
    }
}

/// Deletes a chart record: a tombstone version holding its content, so it waits in the trash
/// (restorable) until the clinic's trash period ends and the server purges it.
pub async fn delete_item(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    record_id: Uuid,
) -> Result<(), ApiError> {
    let item = app
        .store(clinic_id)
        .with_untracked(|s| s.item(&chart_id, &record_id).cloned())
        .ok_or_else(|| ApiError::local("not_found", "The record is not loaded."))?;
    move_record(app, me, clinic_id, chart_id, item, Intent::Delete).await
}

/// Restores a deleted record from the trash: its content again, as a new version.
pub async fn restore_item(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    record_id: Uuid,
) -> Result<(), ApiError> {
    let item = app
        .store(clinic_id)
        .with_untracked(|s| {
            s.trash
                .get(&chart_id)
                .and_then(|t| t.get(&record_id))
                .cloned()
        })
        .ok_or_else(|| ApiError::local("not_found", "The record is not in the trash."))?;
    move_record(app, me, clinic_id, chart_id, item, Intent::Restore).await
}

async fn move_record(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    item: crate::store::Item,
    intent: Intent,
) -> Result<(), ApiError> {
    let clinic = crate::clinic::ensure_clinic(app, &me, clinic_id).await?;
    let draft = Draft {
        record_id: item.id,
        chart_id,
        expected_version: item.version,
        compartment: item.body.compartment(),
        body: &item.body,
        previous: None,
        intent,
    };
    let (done, clinic) = write_record(app, &me, clinic, &draft).await?;
    let store = app.store(clinic_id);
    let version = item.version + 1;
    store.update(|s| match intent {
        Intent::Delete => s.deleted_item(chart_id, item.id, version, done.seq, item.body, &me),
        _ => s.saved_item(chart_id, item.id, version, done.seq, item.body, &me),
    });
    let _ = crate::store::sync(app, me, clinic, store).await;
    Ok(())
}
