//! The audit log's structure (threat-model properties 6 and 10): how an entry is hashed into its
//! chain, how a chain is checked entry by entry, and the exact bytes an owner signs for a
//! checkpoint, an author for a reported detail and an owner for the clinic's audit key.
//!
//! The chain alone stops nobody who can rewrite the whole tail; the owners' signed checkpoints
//! do: once the head at seq N is signed, no entry up to N can change, go missing or move without
//! [`ChainVerifier`] naming it. Needs no key; signatures are checked with public keys only
//! (feature `verify`, or `client`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::wire::{AuditCheckpoint, AuditEntry, AuditKeyPublic, ReportedDetail};
use crate::UnixTime;

/// `prev_hash` of every log's first entry.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Hashes fields one by one, each length-prefixed, so no two entries share an encoding.
struct FieldHasher(Sha256);

impl FieldHasher {
    fn new(label: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(label);
        FieldHasher(h)
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_be_bytes());
        self.0.update(b);
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.0.update([0u8]),
            Some(b) => {
                self.0.update([1u8]);
                self.bytes(b);
            }
        }
    }
    fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The chain hash of an entry: SHA-256 over a label and every field but `hash`, `prev_hash`
/// included, each length-prefixed.
pub fn entry_hash(e: &AuditEntry) -> [u8; 32] {
    let mut h = FieldHasher::new(b"optovault/v1/audit-entry");
    h.bytes(&e.seq.to_be_bytes());
    h.bytes(&e.at.to_be_bytes());
    h.opt_bytes(e.actor.as_ref().map(|u| u.as_bytes().as_slice()));
    h.opt_bytes(e.clinic_id.as_ref().map(|u| u.as_bytes().as_slice()));
    h.bytes(e.action.as_bytes());
    h.opt_bytes(e.target.as_ref().map(|u| u.as_bytes().as_slice()));
    h.bytes(&e.count.to_be_bytes());
    h.bytes(e.outcome.as_bytes());
    h.opt_bytes(e.ip.as_deref().map(str::as_bytes));
    match &e.detail {
        None => h.opt_bytes(None),
        Some(d) => {
            h.opt_bytes(Some(b"detail"));
            h.bytes(d.event_id.as_bytes());
            h.bytes(d.key_id.as_bytes());
            h.bytes(d.enc.as_slice());
            h.bytes(d.ciphertext.as_slice());
            h.bytes(d.signature.as_slice());
        }
    }
    h.bytes(e.prev_hash.as_slice());
    h.finish()
}

/// Where a chain check starts: before entry 1, or at a checkpoint already trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainPoint {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl ChainPoint {
    pub const GENESIS: ChainPoint = ChainPoint {
        seq: 0,
        hash: GENESIS_HASH,
    };
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ChainError {
    #[error("entry {got} where {want} was expected (an entry is missing, repeated or moved)")]
    Sequence { want: u64, got: u64 },
    #[error("entry {0} belongs to another log")]
    WrongLog(u64),
    #[error("entry {0} does not link to the entry before it (prev_hash differs)")]
    Link(u64),
    #[error("entry {0} was altered (its stored hash does not match its contents)")]
    Altered(u64),
    #[error("checkpoint at entry {0} does not match that entry (the log was rewritten up to it)")]
    CheckpointMismatch(u64),
    #[error("checkpoint at entry {seq} names an entry past the end of the log (which ends at {head}: truncated)")]
    Truncated { seq: u64, head: u64 },
    #[error("checkpoint at entry {0} has a bad signature or a signer who is not an owner")]
    CheckpointSignature(u64),
}

impl ChainError {
    /// The entry the check names.
    pub fn seq(&self) -> u64 {
        match *self {
            ChainError::Sequence { got, .. } => got,
            ChainError::WrongLog(s)
            | ChainError::Link(s)
            | ChainError::Altered(s)
            | ChainError::CheckpointMismatch(s)
            | ChainError::CheckpointSignature(s) => s,
            ChainError::Truncated { seq, .. } => seq,
        }
    }
}

/// Checks a log entry by entry, in order, without holding it: sequence, log, stored hash, link,
/// and every checkpoint (already signature-checked by the caller) against the entry it names.
pub struct ChainVerifier {
    clinic_id: Option<Uuid>,
    head: ChainPoint,
    /// Checkpoints not yet reached, by seq, ascending.
    pending: std::collections::VecDeque<(u64, [u8; 32])>,
    checked: u64,
}

impl ChainVerifier {
    /// `checkpoints` are (seq, head hash) pairs whose signatures the caller has checked.
    pub fn new(
        clinic_id: Option<Uuid>,
        start: ChainPoint,
        mut checkpoints: Vec<(u64, [u8; 32])>,
    ) -> Self {
        checkpoints.retain(|(s, _)| *s > start.seq);
        checkpoints.sort();
        ChainVerifier {
            clinic_id,
            head: start,
            pending: checkpoints.into(),
            checked: 0,
        }
    }

    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainError> {
        let want = self.head.seq + 1;
        if e.seq != want {
            return Err(ChainError::Sequence { want, got: e.seq });
        }
        if e.clinic_id != self.clinic_id {
            return Err(ChainError::WrongLog(e.seq));
        }
        let hash = entry_hash(e);
        if e.hash.as_slice() != hash {
            return Err(ChainError::Altered(e.seq));
        }
        if e.prev_hash.as_slice() != self.head.hash {
            return Err(ChainError::Link(e.seq));
        }
        while let Some(&(seq, cp_hash)) = self.pending.front() {
            if seq > e.seq {
                break;
            }
            self.pending.pop_front();
            if seq == e.seq && cp_hash != hash {
                return Err(ChainError::CheckpointMismatch(seq));
            }
        }
        self.head = ChainPoint { seq: e.seq, hash };
        self.checked += 1;
        Ok(())
    }

    /// Ends the check: a checkpoint past the last entry means the log lost its tail.
    pub fn finish(self) -> Result<ChainSummary, ChainError> {
        if let Some(&(seq, _)) = self.pending.front() {
            return Err(ChainError::Truncated {
                seq,
                head: self.head.seq,
            });
        }
        Ok(ChainSummary {
            head: self.head,
            checked: self.checked,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    pub head: ChainPoint,
    /// Entries checked (after the start point).
    pub checked: u64,
}

/// What an owner signs for a checkpoint.
pub fn checkpoint_signing_input(cp: &AuditCheckpoint) -> Vec<u8> {
    let mut v = b"optovault/v1/audit-checkpoint\0".to_vec();
    v.extend_from_slice(cp.clinic_id.as_bytes());
    v.extend_from_slice(&cp.seq.to_be_bytes());
    v.extend_from_slice(cp.head_hash.as_slice());
    v.extend_from_slice(&cp.at.to_be_bytes());
    v.extend_from_slice(cp.signer.as_bytes());
    v
}

/// What the owner who makes the clinic's audit key signs.
pub fn audit_key_signing_input(k: &AuditKeyPublic) -> Vec<u8> {
    let mut v = b"optovault/v1/audit-key\0".to_vec();
    v.extend_from_slice(k.clinic_id.as_bytes());
    v.extend_from_slice(k.key_id.as_bytes());
    v.extend_from_slice(&(k.public_key.len() as u64).to_be_bytes());
    v.extend_from_slice(k.public_key.as_slice());
    v.extend_from_slice(&k.created_at.to_be_bytes());
    v.extend_from_slice(k.signer.as_bytes());
    v
}

/// The context a reported detail is sealed in (HPKE info and AAD): the clinic, the audit key,
/// the report's own id, its author, category and target. The server cannot move a detail to
/// another entry, author or category without opening failing.
pub fn detail_context(
    clinic_id: Uuid,
    key_id: Uuid,
    event_id: Uuid,
    actor: Uuid,
    action: &str,
    target: Option<Uuid>,
) -> Vec<u8> {
    let mut v = b"optovault/v1/audit-detail\0".to_vec();
    for id in [clinic_id, key_id, event_id, actor] {
        v.extend_from_slice(id.as_bytes());
    }
    v.extend_from_slice(&(action.len() as u64).to_be_bytes());
    v.extend_from_slice(action.as_bytes());
    match target {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            v.extend_from_slice(t.as_bytes());
        }
    }
    v
}

/// What the author of a reported detail signs: its context and its sealed bytes.
pub fn detail_signing_input(context: &[u8], d: &ReportedDetail) -> Vec<u8> {
    let mut v = b"optovault/v1/audit-report\0".to_vec();
    for part in [context, d.enc.as_slice(), d.ciphertext.as_slice()] {
        v.extend_from_slice(&(part.len() as u64).to_be_bytes());
        v.extend_from_slice(part);
    }
    v
}

/// The plaintext of a reported detail: what happened, as the browser knew it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditDetail {
    /// One line for people: "Payment of 120.00 recorded", "Spectacle Rx printed".
    pub summary: String,
    /// The patient's name as shown in the chart, when the event concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Field-by-field changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldChange {
    pub field: String,
    pub from: String,
    pub to: String,
}

/// Most field changes one detail lists, and the longest value it keeps (a detail must stay
/// under the server's 16 KiB limit once sealed).
const MAX_CHANGES: usize = 40;
const MAX_VALUE_CHARS: usize = 120;

/// Fields never copied into an audit detail: key material and bulk data (a file's own key, its
/// checksum, its thumbnail). The log outlives the records it describes (erasure, purge).
const UNLOGGED_FIELDS: [&str; 3] = ["file_key", "sha256", "thumbnail"];

fn flatten(
    prefix: &str,
    v: &serde_json::Value,
    out: &mut std::collections::BTreeMap<String, String>,
) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if UNLOGGED_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Null => {}
        Value::String(s) => {
            if !s.is_empty() {
                out.insert(prefix.to_string(), s.clone());
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX_VALUE_CHARS).collect();
    t.push('…');
    t
}

/// Field-by-field differences between two versions of a record's JSON (paths like
/// `phone`, `lines[0].unit_price_cents`); absent and empty count as the same.
pub fn field_changes(old: Option<&serde_json::Value>, new: &serde_json::Value) -> Vec<FieldChange> {
    let mut a = std::collections::BTreeMap::new();
    let mut b = std::collections::BTreeMap::new();
    if let Some(old) = old {
        flatten("", old, &mut a);
    }
    flatten("", new, &mut b);
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (from, to) = (a.get(k), b.get(k));
            (from != to).then(|| FieldChange {
                field: k.clone(),
                from: clip(from.map(String::as_str).unwrap_or("")),
                to: clip(to.map(String::as_str).unwrap_or("")),
            })
        })
        .take(MAX_CHANGES)
        .collect()
}

/// What a browser reports when it saves a record: the category the operator may see and the
/// detail only owners read. `old` is the version being replaced (none for a new record);
/// `patient` the chart's patient as shown.
pub fn describe_change(
    old: Option<&crate::domain::RecordBody>,
    new: &crate::domain::RecordBody,
    patient: Option<String>,
) -> (crate::wire::ReportedAction, AuditDetail) {
    use crate::chart::billing::format_money;
    use crate::domain::RecordBody;
    use crate::wire::ReportedAction;
    let json = |b: &RecordBody| serde_json::to_value(b).unwrap_or_default();
    let changes = field_changes(old.map(json).as_ref(), &json(new));
    let what = new.kind().replace('_', " ");
    let (action, summary) = match (old, new) {
        (None, RecordBody::Payment(p)) if p.is_refund() => (
            ReportedAction::RefundRecorded,
            format!(
                "Refund of {} recorded ({:?}, {})",
                format_money(p.amount_cents),
                p.method,
                p.date
            ),
        ),
        (None, RecordBody::Payment(p)) => (
            ReportedAction::PaymentRecorded,
            format!(
                "Payment of {} recorded ({:?}, {})",
                format_money(p.amount_cents),
                p.method,
                p.date
            ),
        ),
        (_, RecordBody::Invoice(i)) if i.is_credit_note() && old.is_none() => (
            ReportedAction::CreditNoteIssued,
            format!("Credit note {} issued", i.number),
        ),
        (before, RecordBody::Invoice(i))
            if i.status == crate::chart::billing::InvoiceStatus::Posted
                && !matches!(before, Some(RecordBody::Invoice(b))
                    if b.status == crate::chart::billing::InvoiceStatus::Posted) =>
        {
            let total = i
                .totals()
                .map(|t| format_money(t.total_cents))
                .unwrap_or_default();
            (
                ReportedAction::InvoicePosted,
                format!("Invoice {} posted, total {total}", i.number),
            )
        }
        (old, RecordBody::Patient(_)) => (
            ReportedAction::PatientUpdated,
            if old.is_some() {
                "Patient details changed".into()
            } else {
                "Patient added".into()
            },
        ),
        (None, _) => (ReportedAction::RecordChanged, format!("New {what}")),
        (Some(_), _) => (ReportedAction::RecordChanged, format!("Changed {what}")),
    };
    (
        action,
        AuditDetail {
            summary,
            patient,
            changes,
        },
    )
}

/// What a browser reports when it deletes a record (moves it to the trash) or restores it: the
/// record's fields, so the owner sees what went and came back.
pub fn describe_removal(
    body: &crate::domain::RecordBody,
    patient: Option<String>,
    restored: bool,
) -> (crate::wire::ReportedAction, AuditDetail) {
    use crate::wire::ReportedAction;
    let what = body.kind().replace('_', " ");
    let json = serde_json::to_value(body).unwrap_or_default();
    let (action, summary) = if restored {
        (
            ReportedAction::RecordRestored,
            format!("Restored {what} from the trash"),
        )
    } else {
        (
            ReportedAction::RecordDeleted,
            format!("Deleted {what} (moved to the trash)"),
        )
    };
    (
        action,
        AuditDetail {
            summary,
            patient,
            changes: field_changes(None, &json),
        },
    )
}

impl AuditDetail {
    /// What of this detail goes into the log. The audit key is the owners', and an owner need
    /// not be on a restricted chart's care team: a change in a restricted chart is logged without
    /// its patient, its values or its summary (the entry still says who did what kind of thing to
    /// which chart, and when).
    pub fn for_the_log(&self, restricted_chart: bool) -> AuditDetail {
        if !restricted_chart {
            return self.clone();
        }
        AuditDetail {
            summary: "A change in a restricted chart (its details stay with its care team)".into(),
            patient: None,
            changes: Vec::new(),
        }
    }
}

/// Checks an Ed25519 signature with a public key (32 bytes) only.
#[cfg(any(feature = "verify", feature = "client"))]
pub fn verify_ed25519(public_key: &[u8], msg: &[u8], signature: &[u8]) -> bool {
    let (Ok(pk), Ok(sig)) = (
        <[u8; 32]>::try_from(public_key),
        <[u8; 64]>::try_from(signature),
    ) else {
        return false;
    };
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else {
        return false;
    };
    vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
        .is_ok()
}

/// Time an entry would carry now (seconds).
pub fn unix_now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::B64;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let clinic = Uuid::from_u128(7);
        let mut prev = GENESIS_HASH;
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    at: 1_700_000_000 + seq as i64,
                    actor: Some(Uuid::from_u128(1)),
                    clinic_id: Some(clinic),
                    action: "records_written".into(),
                    target: Some(Uuid::from_u128(seq as u128)),
                    count: 1,
                    outcome: "ok".into(),
                    ip: Some("127.0.0.1".into()),
                    detail: None,
                    prev_hash: B64(prev.to_vec()),
                    hash: B64(vec![]),
                };
                prev = entry_hash(&e);
                e.hash = B64(prev.to_vec());
                e
            })
            .collect()
    }

    fn check(
        entries: &[AuditEntry],
        cps: Vec<(u64, [u8; 32])>,
    ) -> Result<ChainSummary, ChainError> {
        let mut v = ChainVerifier::new(Some(Uuid::from_u128(7)), ChainPoint::GENESIS, cps);
        for e in entries {
            v.push(e)?;
        }
        v.finish()
    }

    fn rehash_from(entries: &mut [AuditEntry], from: usize) {
        for i in from..entries.len() {
            let prev = if i == 0 {
                GENESIS_HASH.to_vec()
            } else {
                entries[i - 1].hash.0.clone()
            };
            entries[i].prev_hash = B64(prev);
            entries[i].hash = B64(entry_hash(&entries[i]).to_vec());
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(20);
        let s = check(&c, vec![(10, c[9].hash.0.clone().try_into().unwrap())]).unwrap();
        assert_eq!((s.head.seq, s.checked), (20, 20));
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let base = chain(3);
        let edits: Vec<Box<dyn Fn(&mut AuditEntry)>> = vec![
            Box::new(|e| e.at += 1),
            Box::new(|e| e.actor = None),
            Box::new(|e| e.action = "records_read".into()),
            Box::new(|e| e.target = None),
            Box::new(|e| e.count = 2),
            Box::new(|e| e.outcome = "denied".into()),
            Box::new(|e| e.ip = Some("10.0.0.1".into())),
            Box::new(|e| {
                e.detail = Some(ReportedDetail {
                    event_id: Uuid::from_u128(9),
                    key_id: Uuid::from_u128(9),
                    enc: B64(vec![1]),
                    ciphertext: B64(vec![2]),
                    signature: B64(vec![3]),
                })
            }),
        ];
        for edit in edits {
            let mut c = base.clone();
            edit(&mut c[1]);
            assert_eq!(check(&c, vec![]), Err(ChainError::Altered(2)));
        }
    }

    #[test]
    fn deletion_swap_and_rehashing_are_named() {
        let c = chain(10);
        let cp = |i: usize| {
            (
                c[i - 1].seq,
                <[u8; 32]>::try_from(c[i - 1].hash.0.clone()).unwrap(),
            )
        };

        let mut deleted = c.clone();
        deleted.remove(4);
        assert_eq!(check(&deleted, vec![]).unwrap_err().seq(), 6);

        let mut swapped = c.clone();
        swapped.swap(3, 4);
        assert_eq!(
            check(&swapped, vec![]).unwrap_err(),
            ChainError::Sequence { want: 4, got: 5 }
        );

        // A forger who edits entry 3 and re-hashes everything after it passes the bare chain,
        // but not a checkpoint signed over entry 8.
        let mut rewritten = c.clone();
        rewritten[2].count = 99;
        rehash_from(&mut rewritten, 2);
        assert!(check(&rewritten, vec![]).is_ok());
        assert_eq!(
            check(&rewritten, vec![cp(8)]),
            Err(ChainError::CheckpointMismatch(8))
        );

        // Truncating after a checkpoint and appending fresh entries: the checkpoint no longer
        // matches; truncating it away altogether leaves it past the end.
        let mut reappended = c[..6].to_vec();
        reappended.extend(chain(10)[6..].iter().cloned().map(|mut e| {
            e.action = "login_ok".into();
            e
        }));
        rehash_from(&mut reappended, 6);
        assert!(check(&reappended, vec![]).is_ok());
        assert_eq!(
            check(&reappended, vec![cp(8)]),
            Err(ChainError::CheckpointMismatch(8))
        );
        assert_eq!(
            check(&c[..6], vec![cp(8)]),
            Err(ChainError::Truncated { seq: 8, head: 6 })
        );
    }

    #[test]
    fn a_check_can_start_at_a_trusted_checkpoint() {
        let c = chain(10);
        let start = ChainPoint {
            seq: 5,
            hash: c[4].hash.0.clone().try_into().unwrap(),
        };
        let mut v = ChainVerifier::new(Some(Uuid::from_u128(7)), start, vec![]);
        for e in &c[5..] {
            v.push(e).unwrap();
        }
        assert_eq!(v.finish().unwrap().checked, 5);
        let mut v = ChainVerifier::new(Some(Uuid::from_u128(7)), start, vec![]);
        assert_eq!(v.push(&c[4]), Err(ChainError::Sequence { want: 6, got: 5 }));
    }

    #[test]
    fn changes_name_the_fields_and_a_payment_is_its_own_category() {
        use crate::chart::billing::{Payment, PaymentMethod};
        use crate::domain::{Patient, RecordBody};
        use crate::wire::ReportedAction;
        let before = Patient {
            given_name: "Jane".into(),
            family_name: "Doe".into(),
            phone: "555-0100".into(),
            ..Default::default()
        };
        let after = Patient {
            phone: "555-0199".into(),
            ..before.clone()
        };
        let (action, d) = describe_change(
            Some(&RecordBody::Patient(before)),
            &RecordBody::Patient(after),
            Some("Doe, Jane".into()),
        );
        assert_eq!(action, ReportedAction::PatientUpdated);
        assert_eq!(
            d.changes,
            vec![FieldChange {
                field: "phone".into(),
                from: "555-0100".into(),
                to: "555-0199".into()
            }]
        );
        let pay = Payment {
            invoice_id: Uuid::from_u128(1),
            amount_cents: 12_000,
            method: PaymentMethod::Card,
            date: "2026-11-26".into(),
            refund_of: None,
            reference: String::new(),
        };
        let (action, d) = describe_change(None, &RecordBody::Payment(pay.clone()), None);
        assert_eq!(action, ReportedAction::PaymentRecorded);
        assert_eq!(d.summary, "Payment of 120.00 recorded (Card, 2026-11-26)");
        let refund = Payment {
            refund_of: Some(Uuid::from_u128(2)),
            ..pay
        };
        assert_eq!(
            describe_change(None, &RecordBody::Payment(refund), None).0,
            ReportedAction::RefundRecorded
        );
    }

    #[test]
    fn key_material_and_thumbnails_are_never_logged() {
        let old = serde_json::json!({"file_name": "a.png", "file_key": "SECRET", "thumbnail": {"data": "BYTES"}, "sha256": "SUM"});
        let new = serde_json::json!({"file_name": "b.png", "file_key": "SECRET2", "thumbnail": {"data": "BYTES2"}, "sha256": "SUM2"});
        let c = field_changes(Some(&old), &new);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "file_name");
        assert!(field_changes(None, &new)
            .iter()
            .all(|c| !c.to.contains("SECRET") && !c.to.contains("BYTES") && !c.to.contains("SUM")));
    }

    #[test]
    fn a_restricted_charts_detail_keeps_nothing_of_the_patient() {
        let d = AuditDetail {
            summary: "Payment of 120.00 recorded".into(),
            patient: Some("Doe, Jane".into()),
            changes: vec![FieldChange {
                field: "phone".into(),
                from: "1".into(),
                to: "2".into(),
            }],
        };
        assert_eq!(d.for_the_log(false), d);
        let r = d.for_the_log(true);
        assert_eq!((r.patient, r.changes.len()), (None, 0));
        assert!(!r.summary.contains("120.00"));
    }

    #[test]
    fn long_values_and_many_changes_are_clipped() {
        let old = serde_json::json!({"notes": "a", "list": (0..100).collect::<Vec<_>>()});
        let new = serde_json::json!({"notes": "b".repeat(1000), "list": []});
        let c = field_changes(Some(&old), &new);
        assert_eq!(c.len(), MAX_CHANGES);
        let notes = field_changes(
            Some(&serde_json::json!({"notes": "a"})),
            &serde_json::json!({"notes": "b".repeat(1000)}),
        );
        assert_eq!(notes[0].to.chars().count(), MAX_VALUE_CHARS + 1);
    }

    #[test]
    fn another_logs_entry_is_refused() {
        let mut c = chain(2);
        c[1].clinic_id = None;
        rehash_from(&mut c, 1);
        assert_eq!(check(&c, vec![]), Err(ChainError::WrongLog(2)));
    }
}
