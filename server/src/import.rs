//! Moving a clinic to this server: `POST /api/clinics/import` takes a clinic's export
//! (`optovault_shared::clinic_export`, made by `GET /api/clinics/{id}/export` on the old server)
//! and makes the clinic exist here with the same ids, versions, change sequence, roster, keys and
//! audit chain. Nothing is decrypted: the server checks structure, chains and signatures only.
//!
//! Who may: the upload carries an owner's Ed25519 signature over the clinic id and the file's
//! content SHA-256 (`clinic_export::import_signing_input`), checked against that owner's key in
//! the clinic's signed roster. The uploader has no account here yet, so this is the only
//! credential there can be; the owner's browser gets the key from the owner's recovery kit.
//!
//! Members sign in afterwards with their recovery kit (carried in the export, sealed under each
//! member's own recovery key): their password files were bound to the old server's OPRF key and
//! are not in the export, so imported accounts have none until recovery sets one.
//!
//! The file is read twice from a temporary copy. Pass 1 ([`plan`]) checks every block and the
//! content checksum, the section order, the roster chain and its signatures, the members against
//! the roster, the audit chain, files and chunk sizes, and the signer, and writes nothing. Pass 2
//! ([`store_rows`]) checks every record version's author signature while it stores records,
//! history, audit entries and chunks in batches that no request can reach (there is no clinic row
//! yet); then [`Store::finish_import`] creates the clinic, its members and accounts in one
//! transaction. A failure on the way removes what pass 2 stored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use optovault_shared::archive::Header;
use optovault_shared::audit::{checkpoint_signing_input, entry_hash, verify_ed25519, GENESIS_HASH};
use optovault_shared::clinic_export::{
    import_signing_input, ExportedAccount, ExportedChart, ExportedClinic, ExportedMember, TrashRow,
    SECTIONS,
};
use optovault_shared::envelope::Purpose;
use optovault_shared::roster::{entry_hash as roster_hash, signing_input, Roster};
use optovault_shared::wire::{
    AuditAnchor, AuditCheckpoint, AuditEntry, AuditKeySetup, ClinicImported, FileStatus, Role,
    SealedBlob, StoredRecord,
};
use optovault_shared::{normalize_username, UnixTime, B64};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::backup::archive::{read_archive, zstd_decompress, ArchiveError, Item, KIND_CLINIC};
use crate::error::{ApiError, ApiResult};
use crate::http::ApiQuery;
use crate::session::ClientIp;
use crate::store::{
    AccountRow, ChartRow, ClinicRow, EventDraft, FileRow, ImportBatch, ImportedClinic, MemberRow,
    RecordRow, RecoveryRow, RosterRow, Store, StoreError,
};
use crate::{now, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/clinics/import",
        // The export can be gigabytes: the handler streams it to disk under its own limit.
        post(import).layer(DefaultBodyLimit::disable()),
    )
}

/// Rows per batch of records, versions or audit entries, and bytes per batch of chunks.
const BATCH_ROWS: usize = 2_000;
const BATCH_BYTES: usize = 16 << 20;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// The owner (account id in the clinic's roster) who signs the import.
    pub signer: Uuid,
    /// Base64 Ed25519 signature over `clinic_export::import_signing_input(clinic id, content
    /// SHA-256)`, with the signer's key in the roster.
    pub signature: String,
}

/// Why an import was refused. Nothing is left behind in any case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Damaged, truncated or not an archive; names the byte offset.
    #[error("{0}")]
    Archive(String),
    #[error("this is not a clinic export (it is a {0})")]
    NotAnExport(String),
    /// The archive is intact but its content is inconsistent.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotAuthorized(String),
    #[error("clinic {0} already exists on this server")]
    ClinicExists(Uuid),
    #[error("the username {0} belongs to another account on this server")]
    UsernameTaken(String),
    #[error("account {0} exists on this server with other keys")]
    AccountConflict(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> ApiError {
        let message = e.to_string();
        match e {
            ImportError::Archive(_) => ApiError::bad_request("invalid_archive", message),
            ImportError::NotAnExport(_) => ApiError::bad_request("not_a_clinic_export", message),
            ImportError::Invalid(_) => ApiError::bad_request("invalid_export", message),
            ImportError::NotAuthorized(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "import_not_authorized", message)
            }
            ImportError::ClinicExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "clinic_exists", message)
            }
            ImportError::UsernameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "username_taken", message)
            }
            ImportError::AccountConflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "account_conflict", message)
            }
            ImportError::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<ArchiveError> for ImportError {
    fn from(e: ArchiveError) -> ImportError {
        match e {
            ArchiveError::Store(m) => ImportError::Invalid(m),
            e => ImportError::Archive(e.to_string()),
        }
    }
}

fn invalid(m: impl Into<String>) -> ArchiveError {
    ArchiveError::Store(m.into())
}

fn parse<T: serde::de::DeserializeOwned>(section: &str, v: &[u8]) -> Result<T, ArchiveError> {
    serde_json::from_slice(v)
        .map_err(|e| invalid(format!("a row of `{section}` is malformed: {e}")))
}

fn be_u64(section: &str, k: &[u8]) -> Result<u64, ArchiveError> {
    k.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| invalid(format!("a key of `{section}` is malformed")))
}

fn uuid(section: &str, k: &[u8]) -> Result<Uuid, ArchiveError> {
    Uuid::from_slice(k).map_err(|_| invalid(format!("a key of `{section}` is malformed")))
}

/// What pass 1 learned: everything but the bulk rows, checked.
#[derive(Debug)]
pub struct Plan {
    pub header: Header,
    pub clinic: ExportedClinic,
    pub members: Vec<ExportedMember>,
    pub roster: Vec<RosterRow>,
    pub charts: Vec<ExportedChart>,
    pub audit_key: Option<AuditKeySetup>,
    pub audit_anchor: Option<(u64, [u8; 32])>,
    pub checkpoints: Vec<AuditCheckpoint>,
    pub audit_head: (u64, [u8; 32]),
    pub audit_entries: u64,
    pub trash: Vec<TrashRow>,
    pub files: Vec<FileRow>,
    pub records: u64,
    pub versions: u64,
    pub accounts: BTreeMap<Uuid, ExportedAccount>,
}

/// Pass 1 state: the section being read and what has been read so far.
struct Reading {
    section: Option<usize>,
    clinic: Option<ExportedClinic>,
    members: Vec<ExportedMember>,
    roster: Option<Roster>,
    roster_rows: Vec<RosterRow>,
    charts: Vec<ExportedChart>,
    audit_key: Option<AuditKeySetup>,
    audit_anchor: Option<(u64, [u8; 32])>,
    checkpoints: Vec<AuditCheckpoint>,
    /// Checkpoints not yet met in the log: seq → the hash they vouch for.
    unmatched_checkpoints: HashMap<u64, Vec<u8>>,
    audit_head: (u64, [u8; 32]),
    audit_entries: u64,
    trash: Vec<TrashRow>,
    files: HashMap<Uuid, FileRow>,
    chunks_seen: HashSet<(Uuid, u32)>,
    /// Current version of each record.
    current: HashMap<Uuid, u64>,
    /// Every change sequence number used (current records and history).
    seqs: HashSet<u64>,
    versions_seen: HashSet<(Uuid, u64)>,
    records: u64,
    versions: u64,
    accounts: BTreeMap<Uuid, ExportedAccount>,
}

impl Reading {
    fn clinic_id(&self) -> Result<Uuid, ArchiveError> {
        self.clinic
            .as_ref()
            .map(|c| c.clinic_id)
            .ok_or_else(|| invalid("the export has no clinic row"))
    }

    fn row(&mut self, k: &[u8], v: &[u8]) -> Result<(), ArchiveError> {
        let name = self
            .section
            .map(|i| SECTIONS[i])
            .ok_or_else(|| invalid("a row before the first section"))?;
        match name {
            "clinic" => {
                let c: ExportedClinic = parse(name, v)?;
                if self.clinic.is_some() || k != c.clinic_id.as_bytes() {
                    return Err(invalid("the clinic section must hold exactly its clinic"));
                }
                c.profile
                    .check_structure()
                    .map_err(|e| invalid(format!("the clinic profile is malformed: {e}")))?;
                self.clinic = Some(c);
            }
            "members" => {
                let m: ExportedMember = parse(name, v)?;
                if k != m.account_id.as_bytes() {
                    return Err(invalid("a member row's key is not its account"));
                }
                self.members.push(m);
            }
            "roster" => {
                let clinic_id = self.clinic_id()?;
                let signed: optovault_shared::roster::SignedRosterEntry = parse(name, v)?;
                let (next, entry, signer_key) =
                    Roster::apply_unverified(self.roster.as_ref(), clinic_id, &signed)
                        .map_err(|e| invalid(format!("the roster: {e}")))?;
                if be_u64(name, k)? != entry.seq
                    || !verify_ed25519(
                        &signer_key,
                        &signing_input(signed.entry.as_slice()),
                        signed.signature.as_slice(),
                    )
                {
                    return Err(invalid(format!(
                        "the roster: entry {} is not signed by its signer",
                        entry.seq
                    )));
                }
                self.roster_rows.push(RosterRow {
                    seq: entry.seq,
                    hash: roster_hash(&signed),
                    key_epoch: next.key_epoch,
                    signed,
                });
                self.roster = Some(next);
            }
            "charts" => {
                let c: ExportedChart = parse(name, v)?;
                if k != c.chart_id.as_bytes() {
                    return Err(invalid("a chart row's key is not its chart"));
                }
                self.charts.push(c);
            }
            "audit_key" => {
                let key: AuditKeySetup = parse(name, v)?;
                if self.audit_key.is_some() {
                    return Err(invalid("two audit keys"));
                }
                self.audit_key = Some(key);
            }
            "audit_anchor" => {
                let a: AuditAnchor = parse(name, v)?;
                let hash: [u8; 32] = a
                    .hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| invalid("the audit anchor's hash is not 32 bytes"))?;
                if self.audit_anchor.is_some() {
                    return Err(invalid("two audit anchors"));
                }
                self.audit_anchor = Some((a.seq, hash));
                self.audit_head = (a.seq, hash);
            }
            "audit_checkpoints" => {
                let cp: AuditCheckpoint = parse(name, v)?;
                if be_u64(name, k)? != cp.seq || cp.clinic_id != self.clinic_id()? {
                    return Err(invalid("a checkpoint's key or clinic is wrong"));
                }
                // Signed by someone the roster lists as an owner (now or before their removal).
                let roster = self.roster.as_ref();
                let signer = roster.and_then(|r| {
                    r.members
                        .get(&cp.signer)
                        .or_else(|| r.removed.get(&cp.signer).map(|(m, _)| m))
                });
                let signed = signer.is_some_and(|m| {
                    verify_ed25519(
                        m.public_keys.ed25519.as_slice(),
                        &checkpoint_signing_input(&cp),
                        cp.signature.as_slice(),
                    )
                });
                if !signed {
                    return Err(invalid(format!(
                        "audit checkpoint {} is not signed by a member of the roster",
                        cp.seq
                    )));
                }
                self.unmatched_checkpoints
                    .insert(cp.seq, cp.head_hash.0.clone());
                self.checkpoints.push(cp);
            }
            "audit" => {
                let e: AuditEntry = parse(name, v)?;
                let (seq, prev) = self.audit_head;
                if be_u64(name, k)? != e.seq
                    || e.seq != seq + 1
                    || e.clinic_id != Some(self.clinic_id()?)
                    || e.prev_hash.as_slice() != prev
                    || e.hash.as_slice() != entry_hash(&e)
                {
                    return Err(invalid(format!(
                        "the audit log is broken at entry {} (missing, reordered or altered)",
                        e.seq
                    )));
                }
                self.audit_head = (e.seq, entry_hash(&e));
                self.audit_entries += 1;
                if let Some(vouched) = self.unmatched_checkpoints.remove(&e.seq) {
                    if vouched != self.audit_head.1 {
                        return Err(invalid(format!(
                            "the audit log differs from its signed checkpoint at entry {}",
                            e.seq
                        )));
                    }
                }
            }
            "trash" => {
                let t: TrashRow = parse(name, v)?;
                if k != t.record_id.as_bytes() {
                    return Err(invalid("a trash row's key is not its record"));
                }
                self.trash.push(t);
            }
            "files" => {
                let f: FileStatus = parse(name, v)?;
                if k != f.file_id.as_bytes() || f.complete != f.completed_at.is_some() {
                    return Err(invalid("a file row is inconsistent"));
                }
                let row = FileRow {
                    file_id: f.file_id,
                    chart_id: f.chart_id,
                    compartment: f.compartment,
                    key_id: f.key_id,
                    epoch: f.epoch,
                    chunk_count: f.chunk_count,
                    chunk_size: f.chunk_size,
                    total_size: f.total_size,
                    uploaded_by: f.uploaded_by,
                    created_at: f.created_at,
                    completed_at: f.completed_at,
                };
                self.files.insert(f.file_id, row);
            }
            "records" | "versions" => {
                let r: StoredRecord = parse(name, v)?;
                let env = &r.envelope;
                env.check_structure()
                    .map_err(|e| invalid(format!("record {}: {e}", env.record_id)))?;
                let head = self.clinic.as_ref().map(|c| c.record_head).unwrap_or(0);
                if r.seq == 0 || r.seq > head {
                    return Err(invalid(format!(
                        "record {} is at seq {} past the clinic's head {head}",
                        env.record_id, r.seq
                    )));
                }
                if !self.seqs.insert(r.seq) {
                    return Err(invalid(format!("change seq {} is used twice", r.seq)));
                }
                if name == "records" {
                    if be_u64(name, k)? != r.seq
                        || self.current.insert(env.record_id, env.version).is_some()
                    {
                        return Err(invalid(format!(
                            "record {} is listed twice or under another seq",
                            env.record_id
                        )));
                    }
                    self.records += 1;
                } else {
                    let mut key = env.record_id.as_bytes().to_vec();
                    key.extend_from_slice(&env.version.to_be_bytes());
                    let newer = self
                        .current
                        .get(&env.record_id)
                        .is_some_and(|v| env.version < *v);
                    if k != key
                        || !newer
                        || !self.versions_seen.insert((env.record_id, env.version))
                    {
                        return Err(invalid(format!(
                            "version {} of record {} is not an earlier version of a current record",
                            env.version, env.record_id
                        )));
                    }
                    self.versions += 1;
                }
            }
            "accounts" => {
                let a: ExportedAccount = parse(name, v)?;
                if k != a.account_id.as_bytes()
                    || normalize_username(&a.username).as_deref() != Ok(a.username.as_str())
                    || a.public_keys.ed25519.len() != 32
                    || a.public_keys.x25519.len() != 32
                    || a.recovery
                        .as_ref()
                        .is_some_and(|r| r.verifier_hash.len() != 32)
                {
                    return Err(invalid(format!("account {} is malformed", a.account_id)));
                }
                self.accounts.insert(a.account_id, a);
            }
            "file_chunks" => {
                let file_id = uuid(name, k.get(..16).unwrap_or_default())?;
                let index = k
                    .get(16..)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map(u32::from_be_bytes)
                    .ok_or_else(|| invalid("a chunk key is malformed"))?;
                let expected = self.files.get(&file_id).and_then(|f| f.chunk_len(index));
                if expected != Some(v.len() as u64) || !self.chunks_seen.insert((file_id, index)) {
                    return Err(invalid(format!(
                        "chunk {index} of file {file_id} is not one the file lists"
                    )));
                }
            }
            other => return Err(invalid(format!("unknown section {other}"))),
        }
        Ok(())
    }

    fn tree(&mut self, name: &str) -> Result<(), ArchiveError> {
        let next = self.section.map(|i| i + 1).unwrap_or(0);
        if SECTIONS.get(next) != Some(&name) {
            return Err(invalid(format!(
                "section `{name}` where `{}` belongs",
                SECTIONS.get(next).unwrap_or(&"the end")
            )));
        }
        self.section = Some(next);
        Ok(())
    }

    fn into_plan(self, header: Header) -> Result<Plan, ImportError> {
        let bad = |m: String| ImportError::Invalid(m);
        if self.section != Some(SECTIONS.len() - 1) {
            return Err(bad("the export is missing sections".into()));
        }
        let clinic = self.clinic.ok_or_else(|| bad("no clinic row".into()))?;
        let roster = self
            .roster
            .ok_or_else(|| bad("the roster is empty".into()))?;
        // The members the server would serve must be exactly the roster's, with the roster's
        // roles, and their accounts the roster's usernames and keys.
        let listed: BTreeMap<Uuid, Role> = self
            .members
            .iter()
            .map(|m| (m.account_id, m.role))
            .collect();
        let signed: BTreeMap<Uuid, Role> =
            roster.members.iter().map(|(id, m)| (*id, m.role)).collect();
        if listed != signed || listed.len() != self.members.len() {
            return Err(bad("the members differ from the signed roster".into()));
        }
        for (id, m) in &roster.members {
            let same = self
                .accounts
                .get(id)
                .is_some_and(|a| a.username == m.username && a.public_keys == m.public_keys);
            if !same {
                return Err(bad(format!(
                    "member {id}'s account differs from the signed roster"
                )));
            }
        }
        for f in self.files.values() {
            let present = (0..f.chunk_count)
                .filter(|i| self.chunks_seen.contains(&(f.file_id, *i)))
                .count() as u32;
            if f.completed_at.is_some() && present != f.chunk_count {
                return Err(bad(format!("file {} is missing chunks", f.file_id)));
            }
        }
        let head = self.roster_rows.last().map(|r| r.seq).unwrap_or(0);
        if head != roster.head_seq {
            return Err(bad("the roster is incomplete".into()));
        }
        // Checkpoints over pruned entries are dropped with them, so every one left must have
        // met its entry.
        if let Some(seq) = self.unmatched_checkpoints.keys().min() {
            return Err(bad(format!(
                "audit checkpoint {seq} names no entry of the log"
            )));
        }
        if let Some(t) = self
            .trash
            .iter()
            .find(|t| !self.current.contains_key(&t.record_id))
        {
            return Err(bad(format!(
                "the trash lists record {}, which is not in the copy",
                t.record_id
            )));
        }
        let mut names = HashSet::new();
        if let Some(a) = self
            .accounts
            .values()
            .find(|a| !names.insert(a.username.as_str()))
        {
            return Err(bad(format!("two accounts are named {}", a.username)));
        }
        let mut files: Vec<FileRow> = self.files.into_values().collect();
        files.sort_by_key(|f| f.file_id);
        Ok(Plan {
            header,
            clinic,
            members: self.members,
            roster: self.roster_rows,
            charts: self.charts,
            audit_key: self.audit_key,
            audit_anchor: self.audit_anchor,
            checkpoints: self.checkpoints,
            audit_head: self.audit_head,
            audit_entries: self.audit_entries,
            trash: self.trash,
            files,
            records: self.records,
            versions: self.versions,
            accounts: self.accounts,
        })
    }
}

/// Pass 1: reads and checks the whole export; writes nothing.
pub fn plan(input: &mut impl Read) -> Result<Plan, ImportError> {
    // The header first, to name what the file is if it is not an export.
    let mut head = vec![0u8; optovault_shared::archive::HEADER_BYTES];
    let got = read_up_to(input, &mut head).map_err(|e| ImportError::Archive(e.to_string()))?;
    head.truncate(got);
    let kind = optovault_shared::archive::parse_header(&head)?.kind;
    if kind != KIND_CLINIC {
        return Err(ImportError::NotAnExport(kind));
    }
    let mut reading = Reading {
        section: None,
        clinic: None,
        members: vec![],
        roster: None,
        roster_rows: vec![],
        charts: vec![],
        audit_key: None,
        audit_anchor: None,
        checkpoints: vec![],
        unmatched_checkpoints: HashMap::new(),
        audit_head: (0, GENESIS_HASH),
        audit_entries: 0,
        trash: vec![],
        files: HashMap::new(),
        chunks_seen: HashSet::new(),
        current: HashMap::new(),
        seqs: HashSet::new(),
        versions_seen: HashSet::new(),
        records: 0,
        versions: 0,
        accounts: BTreeMap::new(),
    };
    let header = read_archive(
        &mut std::io::Cursor::new(head).chain(input),
        zstd_decompress,
        |item| match item {
            Item::Tree(name) => reading.tree(name),
            Item::Row(k, v) => reading.row(k, v),
            Item::BlockEnd => Ok(()),
        },
        |_, _| {},
    )?;
    reading.into_plan(header)
}

fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Checks the signer against the roster, and that neither the clinic nor any of its accounts
/// conflicts with what this server has.
pub async fn authorize(
    store: &dyn Store,
    plan: &Plan,
    signer: Uuid,
    signature: &[u8],
) -> Result<(), ImportError> {
    let clinic_id = plan.clinic.clinic_id;
    let owner = plan
        .members
        .iter()
        .any(|m| m.account_id == signer && m.role == Role::Owner);
    let key = plan
        .accounts
        .get(&signer)
        .map(|a| a.public_keys.ed25519.as_slice());
    let digest = plan
        .header
        .content_digest()
        .ok_or_else(|| ImportError::Archive("the header's content checksum is malformed".into()))?;
    let signed = key
        .is_some_and(|k| verify_ed25519(k, &import_signing_input(&clinic_id, &digest), signature));
    if !owner || !signed {
        return Err(ImportError::NotAuthorized(
            "the import must be signed by one of the clinic's owners, for this file".into(),
        ));
    }
    if store.clinic(clinic_id).await?.is_some() {
        return Err(ImportError::ClinicExists(clinic_id));
    }
    for a in plan.accounts.values() {
        check_account(store, a).await?;
    }
    Ok(())
}

async fn check_account(store: &dyn Store, a: &ExportedAccount) -> Result<(), ImportError> {
    if let Some(here) = store.account(a.account_id).await? {
        if here.username != a.username || here.public_keys != a.public_keys {
            return Err(ImportError::AccountConflict(a.account_id));
        }
    } else if store.account_by_username(&a.username).await?.is_some() {
        return Err(ImportError::UsernameTaken(a.username.clone()));
    }
    Ok(())
}

/// Pass 2: stores the bulk rows (records and versions after checking each author's signature,
/// audit entries, chunks), in batches. Blocking: run it on the blocking pool.
pub fn store_rows(
    input: &mut impl Read,
    plan: &Plan,
    write: &mut dyn FnMut(ImportBatch) -> Result<(), StoreError>,
) -> Result<(), ImportError> {
    let clinic_id = plan.clinic.clinic_id;
    let mut section = "";
    let mut batch: Option<ImportBatch> = None;
    let mut bytes = 0usize;
    let mut store_err: Option<StoreError> = None;
    let mut flush =
        |batch: &mut Option<ImportBatch>, bytes: &mut usize| -> Result<(), ArchiveError> {
            *bytes = 0;
            match batch.take() {
                Some(b) => write(b).map_err(|e| {
                    let m = e.to_string();
                    store_err = Some(e);
                    ArchiveError::Store(m)
                }),
                None => Ok(()),
            }
        };
    let result = read_archive(
        input,
        zstd_decompress,
        |item| {
            let (k, v) = match item {
                Item::Tree(name) => {
                    flush(&mut batch, &mut bytes)?;
                    section = SECTIONS.iter().find(|s| **s == name).copied().unwrap_or("");
                    return Ok(());
                }
                Item::Row(k, v) => (k, v),
                Item::BlockEnd => return Ok(()),
            };
            match section {
                "audit" => {
                    let e: AuditEntry = parse(section, v)?;
                    match batch.get_or_insert_with(|| ImportBatch::Events(vec![])) {
                        ImportBatch::Events(rows) => rows.push(e),
                        _ => unreachable!("one batch kind per section"),
                    }
                    bytes += v.len();
                }
                "records" | "versions" => {
                    let r: StoredRecord = parse(section, v)?;
                    let env = &r.envelope;
                    let author = plan
                        .accounts
                        .get(&env.author)
                        .map(|a| a.public_keys.ed25519.as_slice());
                    let msg = env.signing_input(&clinic_id, Purpose::Record);
                    if !author.is_some_and(|pk| verify_ed25519(pk, &msg, env.signature.as_slice()))
                    {
                        return Err(invalid(format!(
                            "record {} version {}: its author's signature does not verify",
                            env.record_id, env.version
                        )));
                    }
                    let row = RecordRow {
                        record_id: env.record_id,
                        chart_id: env.chart_id,
                        seq: r.seq,
                        version: env.version,
                        updated_at: r.updated_at,
                        compartment: env.compartment,
                        envelope: serde_json::to_vec(env).expect("envelope serialises"),
                    };
                    bytes += row.envelope.len();
                    let current = section == "records";
                    match batch.get_or_insert_with(|| {
                        if current {
                            ImportBatch::Records(vec![])
                        } else {
                            ImportBatch::Versions(vec![])
                        }
                    }) {
                        ImportBatch::Records(rows) | ImportBatch::Versions(rows) => rows.push(row),
                        _ => unreachable!("one batch kind per section"),
                    }
                }
                "file_chunks" => {
                    let file_id = uuid(section, &k[..16])?;
                    let index =
                        u32::from_be_bytes(k[16..20].try_into().expect("checked in pass 1"));
                    match batch.get_or_insert_with(|| ImportBatch::Chunks(vec![])) {
                        ImportBatch::Chunks(rows) => rows.push((file_id, index, v.to_vec())),
                        _ => unreachable!("one batch kind per section"),
                    }
                    bytes += v.len();
                }
                _ => return Ok(()),
            }
            let rows = match &batch {
                Some(ImportBatch::Events(r)) => r.len(),
                Some(ImportBatch::Records(r) | ImportBatch::Versions(r)) => r.len(),
                Some(ImportBatch::Chunks(r)) => r.len(),
                None => 0,
            };
            if rows >= BATCH_ROWS || bytes >= BATCH_BYTES {
                flush(&mut batch, &mut bytes)?;
            }
            Ok(())
        },
        |_, _| {},
    );
    let result = result.and_then(|_| flush(&mut batch, &mut bytes));
    match (result, store_err) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(e)) => Err(ImportError::Store(e)),
        (Err(e), None) => Err(e.into()),
    }
}

/// The rows [`Store::finish_import`] writes, from the plan.
pub fn imported_clinic(plan: &Plan, at: UnixTime, event: EventDraft) -> ImportedClinic {
    let c = &plan.clinic;
    let member_ids: HashSet<Uuid> = plan.members.iter().map(|m| m.account_id).collect();
    let accounts = plan
        .accounts
        .values()
        .map(|a| AccountRow {
            account_id: a.account_id,
            username: a.username.clone(),
            // No password until the member resets it with the recovery kit.
            password_file: vec![],
            public_keys: a.public_keys.clone(),
            sealed_key_bundle: SealedBlob {
                nonce: B64(vec![]),
                ciphertext: B64(vec![]),
            },
            created_at: at,
            last_login_at: None,
            totp: None,
            password_set_at: 0,
            must_change_password: false,
            recovery: a
                .recovery
                .as_ref()
                .filter(|_| member_ids.contains(&a.account_id))
                .map(|r| RecoveryRow {
                    sealed_key_bundle: r.sealed_key_bundle.clone(),
                    verifier_hash: r.verifier_hash.as_slice().try_into().expect("checked"),
                    created_at: r.created_at,
                }),
            mfa_recovery_hashes: vec![],
            passkeys: vec![],
            pending_passkey: None,
        })
        .collect();
    ImportedClinic {
        clinic: ClinicRow {
            clinic_id: c.clinic_id,
            created_at: c.created_at,
            created_by: c.created_by,
            profile: serde_json::to_vec(&c.profile).expect("envelope serialises"),
            policy: c.policy.clone(),
        },
        members: plan
            .members
            .iter()
            .map(|m| MemberRow {
                clinic_id: c.clinic_id,
                account_id: m.account_id,
                role: m.role,
                added_at: m.added_at,
                wrapped_keys: m.wrapped_keys.clone(),
                pinned_anchor: m.pinned_anchor.clone(),
            })
            .collect(),
        accounts,
        roster: plan.roster.clone(),
        charts: plan
            .charts
            .iter()
            .map(|ch| ChartRow {
                chart_id: ch.chart_id,
                care_team: ch.care_team.clone(),
                key_epoch: ch.key_epoch,
                restricted_by: ch.restricted_by,
                restricted_at: ch.restricted_at,
            })
            .collect(),
        audit_key: plan.audit_key.clone(),
        audit_anchor: plan.audit_anchor,
        checkpoints: plan.checkpoints.clone(),
        trash: plan
            .trash
            .iter()
            .map(|t| (t.record_id, t.deleted_at))
            .collect(),
        files: plan.files.clone(),
        record_head: c.record_head,
        audit_head: plan.audit_head,
        event,
    }
}

/// What the answer says about the members.
fn summary(plan: &Plan, created: u32) -> ClinicImported {
    let (mut with, mut without) = (vec![], vec![]);
    for m in &plan.members {
        if let Some(a) = plan.accounts.get(&m.account_id) {
            if a.recovery.is_some() {
                with.push(a.username.clone());
            } else {
                without.push(a.username.clone());
            }
        }
    }
    ClinicImported {
        clinic_id: plan.clinic.clinic_id,
        records: plan.records,
        versions: plan.versions,
        files: plan.files.len() as u64,
        audit_entries: plan.audit_entries,
        accounts_created: created,
        members_with_recovery: with,
        members_without_recovery: without,
    }
}

/// The whole import from a file: both passes and the commit, or nothing.
pub async fn import_file(
    store: std::sync::Arc<dyn Store>,
    file: std::fs::File,
    signer: Uuid,
    signature: Vec<u8>,
    ip: Option<String>,
) -> Result<ClinicImported, ImportError> {
    let (plan, file) = tokio::task::spawn_blocking(move || {
        let mut file = file;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ImportError::Archive(e.to_string()))?;
        let plan = plan(&mut std::io::BufReader::with_capacity(1 << 20, &mut file))?;
        Ok::<_, ImportError>((plan, file))
    })
    .await
    .map_err(|e| ImportError::Invalid(format!("the check failed: {e}")))??;
    authorize(&*store, &plan, signer, &signature).await?;
    let clinic_id = plan.clinic.clinic_id;
    // Rows an interrupted import of this clinic left behind go first.
    discard(&*store, clinic_id).await?;
    let mut created = 0;
    for a in plan.accounts.values() {
        if store.account(a.account_id).await?.is_none() {
            created += 1;
        }
    }
    let plan = std::sync::Arc::new(plan);
    let (p, s, rt) = (
        plan.clone(),
        store.clone(),
        tokio::runtime::Handle::current(),
    );
    let stored = tokio::task::spawn_blocking(move || {
        let mut file = file;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ImportError::Archive(e.to_string()))?;
        let mut input = std::io::BufReader::with_capacity(1 << 20, file);
        store_rows(&mut input, &p, &mut |batch| {
            rt.block_on(s.import_rows(clinic_id, batch))
        })
    })
    .await
    .map_err(|e| ImportError::Invalid(format!("the import failed: {e}")));
    let at = now();
    let event = EventDraft {
        at,
        actor: Some(signer),
        clinic_id: Some(clinic_id),
        action: "clinic_imported",
        target: Some(clinic_id),
        count: u32::try_from(plan.records).unwrap_or(u32::MAX),
        outcome: "ok",
        ip,
        detail: None,
    };
    let finished = match stored.and_then(|r| r) {
        Ok(()) => store
            .finish_import(imported_clinic(&plan, at, event))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(what) if what == "clinic" => {
                    ImportError::ClinicExists(clinic_id)
                }
                StoreError::Conflict(what) if what == "username" || what == "account" => {
                    ImportError::Invalid(format!(
                        "an account of the clinic appeared on this server meanwhile ({what})"
                    ))
                }
                e => e.into(),
            }),
        Err(e) => Err(e),
    };
    if let Err(e) = finished {
        discard(&*store, clinic_id).await.ok();
        return Err(e);
    }
    tracing::info!(clinic = %clinic_id, records = plan.records, files = plan.files.len(), "clinic imported");
    Ok(summary(&plan, created))
}

async fn discard(store: &dyn Store, clinic_id: Uuid) -> Result<(), ImportError> {
    match store.discard_import(clinic_id).await {
        Err(StoreError::Conflict(_)) => Err(ImportError::ClinicExists(clinic_id)),
        r => Ok(r?),
    }
}

/// Imports a clinic's export. Unauthenticated (the uploader has no account here yet): the
/// signature of an owner in the export's roster is what authorizes it. One import runs at a time.
#[utoipa::path(post, path = "/api/clinics/import", params(ImportQuery),
    request_body(content = Vec<u8>, description = "The clinic's export file", content_type = "application/octet-stream"),
    responses((status = 201, body = ClinicImported),
        (status = 400, body = optovault_shared::wire::ApiErrorBody),
        (status = 403, body = optovault_shared::wire::ApiErrorBody),
        (status = 409, body = optovault_shared::wire::ApiErrorBody),
        (status = 413, body = optovault_shared::wire::ApiErrorBody)), tag = "backup")]
pub async fn import(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiQuery(q): ApiQuery<ImportQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<ClinicImported>)> {
    use base64::Engine;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(q.signature.as_bytes())
        .ok()
        .filter(|s| s.len() == 64)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_signature",
                "The signature must be 64 bytes of base64.",
            )
        })?;
    let max = state.settings.import_max_bytes;
    if max == 0 {
        return Err(ApiError::forbidden(
            "This server does not accept clinic imports.",
        ));
    }
    let Ok(one_at_a_time) = state.imports.clone().try_lock_owned() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "import_in_progress",
            "Another import is running; try again when it has finished.",
        ));
    };
    // To a temporary file first: the export is read twice and may be larger than memory.
    let write_failed = |e: std::io::Error| {
        tracing::error!(error = %e, "writing an import to a temporary file");
        ApiError::internal()
    };
    let mut file = tokio::fs::File::from_std(tempfile::tempfile().map_err(write_failed)?);
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("upload_interrupted", "The upload did not arrive whole.")
        })?;
        received += chunk.len() as u64;
        if received > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "import_too_large",
                format!("This server accepts imports of at most {max} bytes."),
            ));
        }
        file.write_all(&chunk).await.map_err(write_failed)?;
    }
    file.flush().await.map_err(write_failed)?;
    let file = file.into_std().await;
    // In its own task, holding the lock: a browser that goes away mid-import must not leave a
    // half-stored clinic behind (the task finishes or discards), nor let a second import start.
    let store = state.store.clone();
    let imported = tokio::spawn(async move {
        let _one_at_a_time = one_at_a_time;
        import_file(store, file, q.signer, signature, ip).await
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "the import task failed");
        ApiError::internal()
    })?;
    match imported {
        Ok(summary) => Ok((StatusCode::CREATED, Json(summary))),
        Err(e) => {
            tracing::warn!(error = %e, "clinic import refused");
            Err(e.into())
        }
    }
}
