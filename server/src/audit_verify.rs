//! The operator's audit verifier (`optovault-server verify-audit`): checks every log in a data
//! directory with no key at all. Per clinic it replays the signed roster (signatures included)
//! to learn who was an owner and every member's Ed25519 key, checks each owner checkpoint's
//! signature, walks the chain entry by entry (`shared::audit::ChainVerifier`) and checks the
//! author signature of every client-reported detail, which it cannot read.
//!
//! What it trusts: the roster in the same database. A forger who rewrites the roster from its
//! first entry can fool this tool but not a member's browser, which pins the clinic's first
//! owner (docs/SECURITY.md).

use std::collections::BTreeMap;

use optovault_shared::audit::{
    checkpoint_signing_input, detail_context, detail_signing_input, verify_ed25519, ChainError,
    ChainPoint, ChainVerifier,
};
use optovault_shared::roster::{signing_input, Roster, RosterChange};
use optovault_shared::wire::{AuditEntry, Role};
use uuid::Uuid;

use crate::store::{Store, StoreResult};

/// What the verifier found in one log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogReport {
    /// `None` for the account-level log.
    pub clinic_id: Option<Uuid>,
    pub entries: u64,
    pub head_seq: u64,
    pub checkpoints: usize,
    pub last_checkpoint: Option<u64>,
    /// The last entry pruned past the retention period, if any (the check starts after it).
    pub pruned_through: Option<u64>,
    /// The first problem, naming the entry; `None` when the log is intact.
    pub problem: Option<Problem>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    Chain(ChainError),
    /// A reported detail whose author signature fails (or whose author is unknown).
    Detail(u64),
    /// The roster itself does not verify (its entry number).
    Roster(String),
    /// The log's stored head differs from its last entry.
    Head {
        stored: u64,
        last: u64,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Chain(e) => write!(f, "{e}"),
            Problem::Detail(seq) => write!(
                f,
                "entry {seq}: its reported detail is not signed by its actor"
            ),
            Problem::Roster(e) => write!(f, "roster: {e}"),
            Problem::Head { stored, last } => write!(
                f,
                "the log's head says entry {stored} but its last entry is {last}"
            ),
        }
    }
}

/// Members' Ed25519 keys and who was ever an owner, from a clinic's signed roster.
struct Signers {
    keys: BTreeMap<Uuid, Vec<u8>>,
    owners: BTreeMap<Uuid, ()>,
}

async fn signers(store: &dyn Store, clinic_id: Uuid) -> StoreResult<Result<Signers, String>> {
    let (rows, _) = store.roster(clinic_id, 0).await?;
    let mut roster: Option<Roster> = None;
    let mut s = Signers {
        keys: BTreeMap::new(),
        owners: BTreeMap::new(),
    };
    for row in rows {
        let (next, entry, signer_key) =
            match Roster::apply_unverified(roster.as_ref(), clinic_id, &row.signed) {
                Ok(x) => x,
                Err(e) => return Ok(Err(e.to_string())),
            };
        if !verify_ed25519(
            &signer_key,
            &signing_input(row.signed.entry.as_slice()),
            row.signed.signature.as_slice(),
        ) {
            return Ok(Err(format!("entry {} has a bad signature", entry.seq)));
        }
        match &entry.change {
            RosterChange::Add {
                member,
                role,
                public_keys,
                ..
            } => {
                s.keys.insert(*member, public_keys.ed25519.0.clone());
                if *role == Role::Owner {
                    s.owners.insert(*member, ());
                }
            }
            RosterChange::ChangeRole { member, role } if *role == Role::Owner => {
                s.owners.insert(*member, ());
            }
            _ => {}
        }
        roster = Some(next);
    }
    Ok(Ok(s))
}

fn detail_signed(e: &AuditEntry, signers: &Signers) -> bool {
    let Some(d) = &e.detail else { return true };
    let (Some(clinic), Some(actor)) = (e.clinic_id, e.actor) else {
        return false;
    };
    let Some(key) = signers.keys.get(&actor) else {
        return false;
    };
    let context = detail_context(clinic, d.key_id, d.event_id, actor, &e.action, e.target);
    verify_ed25519(
        key,
        &detail_signing_input(&context, d),
        d.signature.as_slice(),
    )
}

/// Verifies one log from its first entry. `on_entry` sees every entry checked (for listing).
pub async fn verify_log(
    store: &dyn Store,
    clinic_id: Option<Uuid>,
    mut on_entry: impl FnMut(&AuditEntry),
) -> StoreResult<LogReport> {
    let (head_seq, _) = store.audit_head(clinic_id).await?;
    let mut report = LogReport {
        clinic_id,
        entries: 0,
        head_seq,
        checkpoints: 0,
        last_checkpoint: None,
        pruned_through: None,
        problem: None,
    };
    let signers = match clinic_id {
        Some(c) => match signers(store, c).await? {
            Ok(s) => Some(s),
            Err(e) => {
                report.problem = Some(Problem::Roster(e));
                return Ok(report);
            }
        },
        None => None,
    };
    let mut trusted = Vec::new();
    if let (Some(c), Some(signers)) = (clinic_id, &signers) {
        let cps = store.checkpoints(c).await?;
        report.checkpoints = cps.len();
        report.last_checkpoint = cps.last().map(|cp| cp.seq);
        for cp in &cps {
            let signed = signers.owners.contains_key(&cp.signer)
                && signers.keys.get(&cp.signer).is_some_and(|k| {
                    verify_ed25519(k, &checkpoint_signing_input(cp), cp.signature.as_slice())
                });
            let hash = <[u8; 32]>::try_from(cp.head_hash.as_slice());
            match (signed && cp.clinic_id == c, hash) {
                (true, Ok(h)) => trusted.push((cp.seq, h)),
                _ => {
                    report.problem = Some(Problem::Chain(ChainError::CheckpointSignature(cp.seq)));
                    return Ok(report);
                }
            }
        }
    }
    // A log pruned past its retention period starts after its anchor.
    let start = match store.audit_anchor(clinic_id).await? {
        Some((seq, hash)) => ChainPoint { seq, hash },
        None => ChainPoint::GENESIS,
    };
    report.pruned_through = (start.seq > 0).then_some(start.seq);
    let mut chain = ChainVerifier::new(clinic_id, start, trusted);
    let mut since = start.seq;
    loop {
        let page = store.audit_entries(clinic_id, since, 1000).await?;
        let Some(last) = page.last() else { break };
        since = last.seq;
        for e in &page {
            if let Err(err) = chain.push(e) {
                report.problem = Some(Problem::Chain(err));
                return Ok(report);
            }
            if let Some(s) = &signers {
                if !detail_signed(e, s) {
                    report.problem = Some(Problem::Detail(e.seq));
                    return Ok(report);
                }
            }
            report.entries += 1;
            on_entry(e);
        }
    }
    match chain.finish() {
        Err(err) => report.problem = Some(Problem::Chain(err)),
        Ok(summary) if summary.head.seq != head_seq => {
            report.problem = Some(Problem::Head {
                stored: head_seq,
                last: summary.head.seq,
            })
        }
        Ok(_) => {}
    }
    Ok(report)
}

/// Verifies every log in the store (or one clinic's).
pub async fn verify_all(
    store: &dyn Store,
    only: Option<Uuid>,
    mut on_entry: impl FnMut(&AuditEntry),
) -> StoreResult<Vec<LogReport>> {
    let logs = match only {
        Some(c) => vec![Some(c)],
        None => store.audit_logs().await?,
    };
    let mut out = Vec::new();
    for log in logs {
        out.push(verify_log(store, log, &mut on_entry).await?);
    }
    Ok(out)
}
