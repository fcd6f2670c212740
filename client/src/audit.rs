//! The clinic's audit log from the browser.
//!
//! * The audit key: an owner makes it (X25519, signed, its secret wrapped to every owner); every
//!   member trusts its public half only when an owner in the verified roster signed it.
//! * Reports: what only the browser knows (a payment, a changed phone number, "Rx printed for
//!   Jane Doe") sealed to that key and signed, sent with the write it describes or alone.
//! * For owners: reading the log with details opened, checking the whole chain and its signed
//!   checkpoints, and signing a new checkpoint over the head they have checked.

use std::sync::Arc;

use leptos::prelude::WithUntracked;
use optovault_shared::audit::{
    describe_change, detail_context, AuditDetail, ChainError, ChainPoint, ChainVerifier,
};
use optovault_shared::crypto::{
    seal_audit_detail, sign_checkpoint, verify_audit_key, verify_checkpoint,
    verify_reported_detail, AuditKey,
};
use optovault_shared::domain::RecordBody;
use optovault_shared::wire::{
    AuditCheckpoint, AuditEntry, AuditKeyPublic, AuditKeySetup, AuditKeyShare, DocumentGenerated,
    DocumentKind, ReportedEvent, Role,
};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::state::{AppState, Clinic, Unlocked};

/// The clinic's audit key as this member trusts it; `secret` only for an owner it was wrapped to.
pub struct TrustedAuditKey {
    pub public: AuditKeyPublic,
    pub secret: Option<AuditKey>,
}

fn untrusted(why: &str) -> ApiError {
    ApiError::local("untrusted_audit_key", why)
}

/// Checks the audit key's public half: for this clinic, signed by someone the verified roster
/// lists as an owner (now, or before their removal).
fn check_public(clinic: &Clinic, public: &AuditKeyPublic) -> Result<(), ApiError> {
    let roster = clinic
        .roster
        .as_ref()
        .ok_or_else(|| untrusted("The clinic's roster is not verified."))?;
    let owner = roster
        .members
        .get(&public.signer)
        .map(|m| (m.role, m.public_keys.ed25519.as_slice()))
        .or_else(|| {
            roster
                .removed
                .get(&public.signer)
                .map(|(m, _)| (m.role, m.public_keys.ed25519.as_slice()))
        });
    match owner {
        Some((Role::Owner, key))
            if public.clinic_id == clinic.id && verify_audit_key(public, key) =>
        {
            Ok(())
        }
        _ => Err(untrusted(
            "The clinic's audit key is not signed by one of its owners.",
        )),
    }
}

/// Makes the clinic's audit key (an owner, once): signed by me, wrapped to every owner.
async fn create_key(me: &Unlocked, clinic: &Clinic) -> Result<(), ApiError> {
    let roster = clinic
        .roster
        .as_ref()
        .ok_or_else(|| untrusted("The clinic's roster is not verified."))?;
    let key = AuditKey::generate();
    let public = key.public(clinic.id, me.account_id, &me.keys, crate::util::now());
    let wrapped = roster
        .members
        .iter()
        .filter(|(_, m)| m.role == Role::Owner)
        .map(|(id, m)| key.wrap_to(&clinic.id, *id, m.public_keys.x25519.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::local("crypto", "The audit key could not be wrapped."))?;
    match api::set_audit_key(clinic.id, &AuditKeySetup { public, wrapped }).await {
        // Another owner made it meanwhile: theirs is used.
        Err(e) if e.code == "audit_key_exists" => Ok(()),
        r => r,
    }
}

/// The clinic's trusted audit key, cached for the session. An owner makes it when the clinic
/// has none; for anyone else a clinic without one gives `None`.
pub async fn audit_key(
    app: AppState,
    me: &Unlocked,
    clinic: &Clinic,
) -> Result<Option<Arc<TrustedAuditKey>>, ApiError> {
    if let Some(k) = app.audit_key(&clinic.id) {
        return Ok(Some(k));
    }
    let mut view = api::audit_key(clinic.id).await?;
    if view.public.is_none() {
        if !clinic.is_owner(&me.account_id) {
            return Ok(None);
        }
        create_key(me, clinic).await?;
        view = api::audit_key(clinic.id).await?;
    }
    let public = view
        .public
        .ok_or_else(|| untrusted("The server did not keep the clinic's audit key."))?;
    check_public(clinic, &public)?;
    let secret = match &view.wrapped {
        Some(w) => Some(
            AuditKey::unwrap(&clinic.id, &public, w, &me.account_id, &me.keys)
                .map_err(|_| untrusted("The audit key wrapped to you could not be opened."))?,
        ),
        None => None,
    };
    // Owners made since the key was (who hold no copy) get one from an owner who holds it.
    if let Some(secret) = &secret {
        if let Some(roster) = clinic.roster.as_ref() {
            let wrapped = roster
                .members
                .iter()
                .filter(|(id, m)| m.role == Role::Owner && !view.wrapped_to.contains(id))
                .map(|(id, m)| secret.wrap_to(&clinic.id, *id, m.public_keys.x25519.as_slice()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ApiError::local("crypto", "The audit key could not be wrapped."))?;
            if !wrapped.is_empty() {
                match api::share_audit_key(clinic.id, &AuditKeyShare { wrapped }).await {
                    Err(e) if e.code == "audit_key_shared" => {}
                    r => r?,
                }
            }
        }
    }
    let key = Arc::new(TrustedAuditKey { public, secret });
    if app.is_current(me) {
        app.keep_audit_key(clinic.id, key.clone());
    }
    Ok(Some(key))
}

/// A report of `action` on `target` with `detail`, sealed and signed; `None` when the clinic has
/// no audit key yet (its owner makes it on their next visit).
pub async fn report(
    app: AppState,
    me: &Unlocked,
    clinic: &Clinic,
    action: optovault_shared::wire::ReportedAction,
    target: Option<Uuid>,
    detail: &AuditDetail,
) -> Result<Option<ReportedEvent>, ApiError> {
    let Some(key) = audit_key(app, me, clinic).await? else {
        return Ok(None);
    };
    let detail = for_the_log(app, clinic.id, target, detail);
    let sealed = seal_audit_detail(
        me.account_id,
        &me.keys,
        &key.public,
        action.action(),
        target,
        &detail,
    )
    .map_err(|_| ApiError::local("crypto", "The audit detail could not be sealed."))?;
    Ok(Some(ReportedEvent {
        action,
        target,
        detail: sealed,
    }))
}

/// What of a detail goes into the log: without the patient or values for a restricted chart
/// ([`AuditDetail::for_the_log`]).
fn for_the_log(
    app: AppState,
    clinic_id: Uuid,
    target: Option<Uuid>,
    detail: &AuditDetail,
) -> AuditDetail {
    let restricted = target.is_some_and(|chart| {
        app.store(clinic_id)
            .with_untracked(|s| s.restriction(&chart).is_some())
    });
    detail.for_the_log(restricted)
}

/// The patient of a chart as this browser shows it ("Doe, Jane").
pub fn patient_name(app: AppState, clinic_id: Uuid, chart_id: &Uuid) -> Option<String> {
    app.store(clinic_id)
        .with_untracked(|s| s.patients.get(chart_id).map(|(_, p)| p.display_name()))
}

/// The report that goes with deleting a record (`restored` false) or restoring it.
pub async fn report_removal(
    app: AppState,
    me: &Unlocked,
    clinic: &Clinic,
    chart_id: Uuid,
    body: &RecordBody,
    restored: bool,
) -> Result<Option<ReportedEvent>, ApiError> {
    let (action, detail) = optovault_shared::audit::describe_removal(
        body,
        patient_name(app, clinic.id, &chart_id),
        restored,
    );
    report(app, me, clinic, action, Some(chart_id), &detail).await
}

/// The report that goes with saving `new` over `old` in a chart.
pub async fn report_change(
    app: AppState,
    me: &Unlocked,
    clinic: &Clinic,
    chart_id: Uuid,
    old: Option<&RecordBody>,
    new: &RecordBody,
) -> Result<Option<ReportedEvent>, ApiError> {
    let (action, detail) = describe_change(old, new, patient_name(app, clinic.id, &chart_id));
    report(app, me, clinic, action, Some(chart_id), &detail).await
}

/// Logs a document made in this browser, with what and for whom sealed to the audit key, before
/// it is printed or downloaded.
pub async fn log_document(
    app: AppState,
    me: &Unlocked,
    clinic_id: Uuid,
    document: DocumentKind,
    chart_id: Option<Uuid>,
    summary: String,
) -> Result<(), ApiError> {
    let clinic = crate::clinic::ensure_clinic(app, me, clinic_id).await?;
    let detail = match audit_key(app, me, &clinic).await? {
        Some(key) => {
            let d = AuditDetail {
                summary,
                patient: chart_id.and_then(|c| patient_name(app, clinic_id, &c)),
                changes: Vec::new(),
            };
            let d = for_the_log(app, clinic_id, chart_id, &d);
            Some(
                seal_audit_detail(
                    me.account_id,
                    &me.keys,
                    &key.public,
                    document.action(),
                    chart_id,
                    &d,
                )
                .map_err(|_| ApiError::local("crypto", "The audit detail could not be sealed."))?,
            )
        }
        None => None,
    };
    api::document_generated(
        clinic_id,
        &DocumentGenerated {
            document,
            chart_id,
            detail,
        },
    )
    .await
}

// ---- owners: reading, checking and checkpointing the log ---------------------------------------

/// An entry as the owner's viewer shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ShownEntry {
    pub entry: AuditEntry,
    /// Who acted, by the verified roster.
    pub actor: String,
    /// The opened detail, or why it could not be opened (`None` when there is none).
    pub detail: Option<Result<AuditDetail, String>>,
}

/// The Ed25519 key and name of a member (current or removed) by the verified roster.
fn member(clinic: &Clinic, id: &Uuid) -> Option<(String, Vec<u8>)> {
    clinic
        .author(id)
        .map(|a| (a.username().to_string(), a.key().to_vec()))
}

/// Whether an entry's detail is signed by its actor (a member by the verified roster); `None`
/// for an entry without one.
pub fn detail_signed(clinic: &Clinic, e: &AuditEntry) -> Option<Result<(), String>> {
    let d = e.detail.as_ref()?;
    let Some(actor) = e.actor else {
        return Some(Err("a detail without an actor".into()));
    };
    let context = detail_context(clinic.id, d.key_id, d.event_id, actor, &e.action, e.target);
    let Some((_, author_key)) = member(clinic, &actor) else {
        return Some(Err("reported by someone not in the roster".into()));
    };
    Some(if verify_reported_detail(&context, d, &author_key) {
        Ok(())
    } else {
        Err("signature does not verify: not as its author wrote it".into())
    })
}

/// Opens an entry's detail: the author's signature first, then the seal.
fn open_detail(
    clinic: &Clinic,
    key: Option<&TrustedAuditKey>,
    e: &AuditEntry,
) -> Option<Result<AuditDetail, String>> {
    let d = e.detail.as_ref()?;
    let actor = e.actor?;
    let context = detail_context(clinic.id, d.key_id, d.event_id, actor, &e.action, e.target);
    if let Err(why) = detail_signed(clinic, e)? {
        return Some(Err(why));
    }
    let Some(secret) = key.and_then(|k| k.secret.as_ref()) else {
        return Some(Err("sealed to an audit key you do not hold".into()));
    };
    Some(secret.open_detail(&context, d).map_err(|e| e.to_string()))
}

/// Shows entries: actor names and opened details.
pub fn show(
    clinic: &Clinic,
    key: Option<&TrustedAuditKey>,
    entries: Vec<AuditEntry>,
) -> Vec<ShownEntry> {
    entries
        .into_iter()
        .map(|entry| ShownEntry {
            actor: entry
                .actor
                .and_then(|a| member(clinic, &a).map(|(n, _)| n))
                .unwrap_or_else(|| "-".into()),
            detail: open_detail(clinic, key, &entry),
            entry,
        })
        .collect()
}

/// The clinic's checkpoints whose signatures verify against an owner in the verified roster, as
/// (seq, hash) for the chain check; a forged one is an error naming it.
pub fn trusted_checkpoints(
    clinic: &Clinic,
    list: optovault_shared::wire::AuditCheckpointList,
) -> Result<(Vec<AuditCheckpoint>, Option<ChainPoint>), ChainError> {
    let pruned = list.pruned.and_then(|a| {
        Some(ChainPoint {
            seq: a.seq,
            hash: a.hash.as_slice().try_into().ok()?,
        })
    });
    let cps = list.checkpoints;
    let roster = clinic.roster.as_ref();
    for cp in &cps {
        let owner_key = roster.and_then(|r| {
            r.members
                .get(&cp.signer)
                .or_else(|| r.removed.get(&cp.signer).map(|(m, _)| m))
                .filter(|m| m.role == Role::Owner)
                .map(|m| m.public_keys.ed25519.0.clone())
        });
        let ok = cp.clinic_id == clinic.id
            && cp.head_hash.len() == 32
            && owner_key.is_some_and(|k| verify_checkpoint(cp, &k));
        if !ok {
            return Err(ChainError::CheckpointSignature(cp.seq));
        }
    }
    Ok((cps, pruned))
}

/// The outcome of checking a log.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// Entries checked, from `from` (0 = the whole log).
    pub checked: u64,
    pub from: u64,
    pub head: ChainPoint,
    pub checkpoints: usize,
}

/// Checks the chain: from its first entry (`whole`) or from the last signed checkpoint, through
/// every signed checkpoint, to the head. `progress` hears (checked, head) after every page.
pub async fn verify(
    app: AppState,
    clinic: &Clinic,
    whole: bool,
    mut progress: impl FnMut(u64, u64),
) -> Result<Result<Checked, ChainError>, ApiError> {
    let list = api::checkpoints(clinic.id).await?;
    let (cps, pruned) = match trusted_checkpoints(clinic, list) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    // A log pruned past its retention period starts after its anchor.
    let first = pruned.unwrap_or(ChainPoint::GENESIS);
    let pairs: Vec<(u64, [u8; 32])> = cps
        .iter()
        .filter_map(|c| Some((c.seq, c.head_hash.as_slice().try_into().ok()?)))
        .collect();
    let start = match (whole, pairs.last()) {
        (false, Some(&(seq, hash))) if seq > first.seq => ChainPoint { seq, hash },
        _ => first,
    };
    // What this session verified before must still be there, with the same hash, even if the
    // checkpoints over it were removed.
    let witness = app.audit_witness(&clinic.id);
    let mut expected = pairs;
    expected.extend(witness.map(|w| (w.seq, w.hash)));
    let mut chain = ChainVerifier::new(Some(clinic.id), start, expected);
    let mut since = start.seq;
    loop {
        let page = api::audit_page(clinic.id, since, 1000, "").await?;
        for e in &page.entries {
            if let Err(err) = chain.push(e) {
                return Ok(Err(err));
            }
        }
        since = page.cursor;
        progress(since - start.seq, page.head.saturating_sub(start.seq));
        if !page.more || page.entries.is_empty() {
            break;
        }
    }
    let summary = chain.finish();
    if let Ok(s) = &summary {
        app.saw_audit_point(clinic.id, s.head);
    }
    Ok(summary.map(|s| Checked {
        checked: s.checked,
        from: start.seq,
        head: s.head,
        checkpoints: cps.len(),
    }))
}

/// An owner checks the log since the last checkpoint and signs its head, so no entry up to it
/// can change unnoticed. Returns the checkpoint's seq (`None` when the head is already signed).
pub async fn checkpoint(
    app: AppState,
    me: &Unlocked,
    clinic: &Clinic,
) -> Result<Result<Option<u64>, ChainError>, ApiError> {
    let checked = match verify(app, clinic, false, |_, _| {}).await? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    if checked.checked == 0 {
        return Ok(Ok(None));
    }
    let cp = sign_checkpoint(
        clinic.id,
        checked.head.seq,
        checked.head.hash,
        crate::util::now(),
        me.account_id,
        &me.keys,
    );
    match api::add_checkpoint(clinic.id, &cp).await {
        Ok(()) => Ok(Ok(Some(cp.seq))),
        // Another owner signed a later head meanwhile.
        Err(e) if e.code == "checkpoint_stale" => Ok(Ok(None)),
        Err(e) => Err(e),
    }
}

/// For an owner opening a clinic: make sure it has an audit key and sign a checkpoint over the
/// log's head. Failures are logged to the console only; the owner's audit page shows the state.
pub async fn on_owner_open(app: AppState, me: Arc<Unlocked>, clinic: Arc<Clinic>) {
    if !clinic.is_owner(&me.account_id) || clinic.trusted().is_err() {
        return;
    }
    if !app.first_audit_visit(clinic.id) {
        return;
    }
    if let Err(e) = audit_key(app, &me, &clinic).await {
        leptos::logging::warn!("audit key: {}", e.message);
    }
    match checkpoint(app, &me, &clinic).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => leptos::logging::error!("the clinic's audit log does not verify: {e}"),
        Err(e) => leptos::logging::warn!("audit checkpoint: {}", e.message),
    }
}
