//! The clinic's own encrypted copy, for owners: download it as the server stores it (streamed to
//! a file, with progress), and check a copy with my own keys ("a backup that has been tested").
//!
//! The check reads the file block by block (never all of it at once), verifies every checksum,
//! the signed roster against my pinned anchor, and then opens every record and every earlier
//! version with the keys wrapped to me inside the file, decrypts every attachment chunk and
//! compares each file with its checksum, and checks the audit chain through every signed
//! checkpoint. Plaintext is dropped as soon as it is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use js_sys::{Array, Uint8Array};
use optovault_shared::archive::{
    parse_header, ArchiveChecker, ArchiveError, Header, Item, BLOCK_HEAD, HEADER_BYTES, KIND_CLINIC,
};
use optovault_shared::audit::{ChainPoint, ChainVerifier};
use optovault_shared::clinic_export::{
    ExportedAccount, ExportedChart, ExportedClinic, ExportedMember, SECTIONS,
};
use optovault_shared::crypto::{
    open_file_chunk, open_record, unwrap_keyring, FileContext, FileKey,
};
use optovault_shared::domain::RecordBody;
use optovault_shared::envelope::Purpose;
use optovault_shared::roster::SignedRosterEntry;
use optovault_shared::team::{open_pinned_anchor, verify_roster};
use optovault_shared::wire::{
    AuditAnchor, AuditCheckpoint, AuditCheckpointList, AuditEntry, FileStatus, StoredRecord,
};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::api::{self, ApiError};
use crate::clinic::ClinicProfile;
use crate::state::{Clinic, Unlocked};
use crate::store::{open_change, Opened};

/// The pure-Rust zstd decoder (the server compresses with the C library; the frames are the same).
pub fn unzstd(packed: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::with_capacity(raw_len);
    ruzstd::decoding::StreamingDecoder::new(packed)
        .map_err(|e| e.to_string())?
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// What a check found. Problems are listed (the first 50) and counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportReport {
    pub clinic_name: Option<String>,
    pub exported_at: i64,
    pub exported_by: String,
    pub file_bytes: u64,
    pub members: usize,
    pub roster_entries: usize,
    pub records: u64,
    pub records_opened: u64,
    /// Records of restricted charts whose care team I am not on: present and well formed, but
    /// sealed under keys only the care team holds.
    pub sealed_for_care_team: u64,
    pub versions: u64,
    pub versions_opened: u64,
    pub files: usize,
    pub files_checked: usize,
    pub chunks: u64,
    pub audit_entries: u64,
    pub checkpoints: usize,
    pub details_signed: u64,
    pub problem_count: u64,
    pub problems: Vec<String>,
}

impl ExportReport {
    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }
    fn problem(&mut self, p: impl Into<String>) {
        self.problem_count += 1;
        if self.problems.len() < 50 {
            self.problems.push(p.into());
        }
    }
}

/// A file of an attachment record, checked as its chunks go by.
struct FileCheck {
    chart_id: Uuid,
    key: FileKey,
    chunk_count: u32,
    sha256: Vec<u8>,
    next: u32,
    hash: Sha256,
}

/// Checks an export row by row, in file order (a push parser over [`Item`]s).
pub struct ExportCheck {
    me: Arc<Unlocked>,
    expected: Uuid,
    section: usize,
    info: Option<ExportedClinic>,
    members: Vec<ExportedMember>,
    roster: Vec<SignedRosterEntry>,
    clinic: Option<Clinic>,
    charts: BTreeMap<Uuid, ExportedChart>,
    anchor: Option<AuditAnchor>,
    checkpoints: Vec<AuditCheckpoint>,
    chain: Option<ChainVerifier>,
    statuses: BTreeMap<Uuid, FileStatus>,
    files: BTreeMap<Uuid, FileCheck>,
    record_ids: BTreeSet<Uuid>,
    pub report: ExportReport,
}

fn parse<T: DeserializeOwned>(what: &str, v: &[u8]) -> Result<T, String> {
    serde_json::from_slice(v).map_err(|e| format!("a {what} row does not parse: {e}"))
}

impl ExportCheck {
    pub fn new(me: Arc<Unlocked>, clinic_id: Uuid) -> Self {
        ExportCheck {
            me,
            expected: clinic_id,
            section: 0,
            info: None,
            members: Vec::new(),
            roster: Vec::new(),
            clinic: None,
            charts: BTreeMap::new(),
            anchor: None,
            checkpoints: Vec::new(),
            chain: None,
            statuses: BTreeMap::new(),
            files: BTreeMap::new(),
            record_ids: BTreeSet::new(),
            report: ExportReport::default(),
        }
    }

    /// One item of the archive. A problem with a record is noted and the check goes on; an
    /// export that cannot be checked at all (another clinic, not my keys) stops it.
    pub fn item(&mut self, item: Item<'_>) -> Result<(), ArchiveError> {
        let stop = |m: String| ArchiveError::Store(m);
        match item {
            Item::BlockEnd => Ok(()),
            Item::Tree(name) => {
                let Some(i) = SECTIONS.iter().position(|s| *s == name) else {
                    return Err(stop(format!("unknown section {name}")));
                };
                if i < self.section || (self.section == 0 && i != 0 && self.info.is_none()) {
                    return Err(stop(format!("section {name} is out of order")));
                }
                // Leaving a section may complete a step.
                while self.section < i {
                    self.section += 1;
                    self.entered(SECTIONS[self.section]).map_err(stop)?;
                }
                Ok(())
            }
            Item::Row(k, v) => self.row(SECTIONS[self.section], k, v).map_err(stop),
        }
    }

    fn clinic_id(&self) -> Uuid {
        self.expected
    }

    /// Called when section `name` starts (every earlier one is complete).
    fn entered(&mut self, name: &str) -> Result<(), String> {
        match name {
            "charts" => self.open_clinic(),
            "audit" => {
                let Some(clinic) = &self.clinic else {
                    return Ok(());
                };
                let list = AuditCheckpointList {
                    checkpoints: std::mem::take(&mut self.checkpoints),
                    pruned: self.anchor.clone(),
                };
                match crate::audit::trusted_checkpoints(clinic, list) {
                    Err(e) => self.report.problem(format!("audit log: {e}")),
                    Ok((cps, pruned)) => {
                        self.report.checkpoints = cps.len();
                        let pairs = cps
                            .iter()
                            .filter_map(|c| Some((c.seq, c.head_hash.as_slice().try_into().ok()?)))
                            .collect();
                        self.chain = Some(ChainVerifier::new(
                            Some(self.clinic_id()),
                            pruned.unwrap_or(ChainPoint::GENESIS),
                            pairs,
                        ));
                    }
                }
                Ok(())
            }
            "trash" => {
                if let Some(chain) = self.chain.take() {
                    if let Err(e) = chain.finish() {
                        self.report.problem(format!("audit log: {e}"));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// After the roster: my keys, the verified roster, the clinic's name.
    fn open_clinic(&mut self) -> Result<(), String> {
        let id = self.clinic_id();
        let me = self.me.clone();
        let Some(mine) = self.members.iter().find(|m| m.account_id == me.account_id) else {
            return Err("You are not a member in this export, so your keys are not in it.".into());
        };
        let keyring =
            unwrap_keyring(&id, &mine.wrapped_keys, &me.account_id, &me.keys).map_err(|_| {
                "The clinic's keys in this export do not open with your account.".to_string()
            })?;
        let anchor = open_pinned_anchor(&me.keys, &id, &mine.pinned_anchor)
            .map_err(|_| "Your pinned trust anchor in this export does not open.".to_string())?;
        let roster = verify_roster(id, &self.roster, Some(&anchor), None)
            .map_err(|e| format!("The member list in this export does not verify: {e}"))?;
        self.report.members = self.members.len();
        self.report.roster_entries = self.roster.len();
        let mut clinic = Clinic {
            id,
            role: mine.role,
            name: Err(String::new()),
            keyring: Some(keyring),
            roster: Some(roster),
        };
        if let Some(info) = &self.info {
            let opened = open_record(
                &id,
                Purpose::ClinicProfile,
                &info.profile,
                clinic.keyring.as_ref().unwrap(),
                |a| clinic.author_key(a),
            );
            match opened
                .ok()
                .and_then(|p| serde_json::from_slice::<ClinicProfile>(&p).ok())
            {
                Some(p) => {
                    self.report.clinic_name = Some(p.name.clone());
                    clinic.name = Ok(p.name);
                }
                None => self.report.problem("the clinic's profile does not open"),
            }
            self.report.exported_by = clinic
                .author(&info.exported_by)
                .map(|a| a.username().to_string())
                .unwrap_or_else(|| info.exported_by.to_string());
        }
        self.clinic = Some(clinic);
        Ok(())
    }

    fn row(&mut self, section: &str, key: &[u8], v: &[u8]) -> Result<(), String> {
        match section {
            "clinic" => {
                let info: ExportedClinic = parse("clinic", v)?;
                if info.clinic_id != self.expected {
                    return Err("This export is of another clinic.".into());
                }
                self.report.exported_at = info.exported_at;
                self.info = Some(info);
            }
            // Usernames and keys come from the verified roster; these rows are for an import.
            "accounts" => {
                parse::<ExportedAccount>("account", v)?;
            }
            "members" => self.members.push(parse("member", v)?),
            "roster" => self.roster.push(parse("roster", v)?),
            "charts" => {
                let c: ExportedChart = parse("chart", v)?;
                self.charts.insert(c.chart_id, c);
            }
            "audit_key" => {}
            "audit_anchor" => self.anchor = Some(parse("audit anchor", v)?),
            "audit_checkpoints" => self.checkpoints.push(parse("checkpoint", v)?),
            "audit" => {
                let e: AuditEntry = parse("audit", v)?;
                self.report.audit_entries += 1;
                if let Some(chain) = &mut self.chain {
                    if let Err(err) = chain.push(&e) {
                        self.report.problem(format!("audit log: {err}"));
                        self.chain = None;
                    }
                }
                if let Some(clinic) = &self.clinic {
                    match crate::audit::detail_signed(clinic, &e) {
                        Some(Ok(())) => self.report.details_signed += 1,
                        Some(Err(why)) => self
                            .report
                            .problem(format!("audit entry {}: its detail's {why}", e.seq)),
                        None => {}
                    }
                }
            }
            "trash" => {}
            "files" => {
                let f: FileStatus = parse("file", v)?;
                self.statuses.insert(f.file_id, f);
            }
            "records" => self.record(v, true)?,
            "versions" => self.record(v, false)?,
            "file_chunks" => self.chunk(key, v),
            _ => {}
        }
        Ok(())
    }

    fn record(&mut self, v: &[u8], current: bool) -> Result<(), String> {
        let r: StoredRecord = parse("record", v)?;
        let env = &r.envelope;
        if current {
            self.report.records += 1;
            if !self.record_ids.insert(env.record_id) {
                self.report
                    .problem(format!("record {} appears twice", env.record_id));
            }
            if let Some(info) = &self.info {
                if r.seq > info.record_head {
                    self.report.problem(format!(
                        "record {} is past the clinic's last change",
                        env.record_id
                    ));
                }
            }
        } else {
            self.report.versions += 1;
        }
        let Some(clinic) = &self.clinic else {
            return Ok(());
        };
        if let Some(chart) = self.charts.get(&env.chart_id) {
            if !chart.care_team.contains(&self.me.account_id) {
                self.report.sealed_for_care_team += 1;
                return Ok(());
            }
        }
        match open_change(clinic, env).0 {
            Opened::Bad(why) => self.report.problem(format!(
                "record {} version {}: {why}",
                env.record_id, env.version
            )),
            Opened::Skip => self.report.problem(format!(
                "record {} version {}: not a record of this clinic your keys open",
                env.record_id, env.version
            )),
            opened => {
                if current {
                    self.report.records_opened += 1;
                } else {
                    self.report.versions_opened += 1;
                }
                if let (
                    true,
                    Opened::Item {
                        chart_id,
                        body: RecordBody::Attachment(a),
                    },
                ) = (current, opened)
                {
                    if let Ok(key) = FileKey::from_b64(&a.file_key) {
                        self.files.insert(
                            env.record_id,
                            FileCheck {
                                chart_id,
                                key,
                                chunk_count: a.chunk_count,
                                sha256: a.sha256.0.clone(),
                                next: 0,
                                hash: Sha256::new(),
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn chunk(&mut self, key: &[u8], v: &[u8]) {
        self.report.chunks += 1;
        let (Some(file_id), Some(index)) = (
            key.get(..16).and_then(|b| Uuid::from_slice(b).ok()),
            key.get(16..20)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes),
        ) else {
            self.report.problem("a file chunk with a malformed key");
            return;
        };
        let clinic_id = self.clinic_id();
        let Some(f) = self.files.get_mut(&file_id) else {
            // A file whose record I cannot open (a restricted chart), or an unfinished upload.
            return;
        };
        if index != f.next {
            self.report
                .problem(format!("file {file_id}: chunk {index} out of order"));
            self.files.remove(&file_id);
            return;
        }
        let ctx = FileContext {
            clinic_id,
            chart_id: f.chart_id,
            file_id,
        };
        match open_file_chunk(&f.key, &ctx, index, index + 1 == f.chunk_count, v) {
            Err(_) => {
                self.report
                    .problem(format!("file {file_id}: chunk {index} does not open"));
                self.files.remove(&file_id);
            }
            Ok(plain) => {
                f.hash.update(plain.as_slice());
                f.next += 1;
                if f.next == f.chunk_count {
                    let f = self.files.remove(&file_id).unwrap();
                    if f.hash.finalize()[..] == f.sha256[..] {
                        self.report.files_checked += 1;
                    } else {
                        self.report
                            .problem(format!("file {file_id}: does not match its checksum"));
                    }
                }
            }
        }
    }

    /// At the end of the file.
    pub fn finish(mut self) -> ExportReport {
        if self.section + 1 < SECTIONS.len() {
            self.report
                .problem("the export ends before its last section");
        }
        self.report.files = self.statuses.values().filter(|f| f.complete).count();
        for (id, f) in &self.files {
            self.report.problem(format!(
                "file {id}: {} of {} chunks present",
                f.next, f.chunk_count
            ));
        }
        self.report
    }
}

/// Reads `len` bytes at `at` of a browser file.
async fn read_slice(file: &web_sys::File, at: u64, len: u64) -> Result<Vec<u8>, String> {
    let blob = file
        .slice_with_f64_and_f64(at as f64, (at + len) as f64)
        .map_err(|_| "The browser could not read the file.".to_string())?;
    let buf = JsFuture::from(blob.array_buffer())
        .await
        .map_err(|_| "The browser could not read the file.".to_string())?;
    Ok(Uint8Array::new(&buf).to_vec())
}

/// Checks an export the owner picked. `progress(done, total)` in bytes. `Err` when the file is
/// damaged (with the byte where) or cannot be checked at all; `Ok` with the report otherwise.
pub async fn check_file(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    file: &web_sys::File,
    mut progress: impl FnMut(u64, u64),
) -> Result<ExportReport, String> {
    let size = file.size() as u64;
    let head = read_slice(file, 0, HEADER_BYTES as u64).await?;
    let header: Header = parse_header(&head).map_err(|e| e.to_string())?;
    if header.kind != KIND_CLINIC {
        return Err(format!(
            "this file is a {}, not a clinic's export",
            header.kind
        ));
    }
    let mut checker = ArchiveChecker::new(header);
    let mut check = ExportCheck::new(me, clinic_id);
    check.report.file_bytes = size;
    let mut at = HEADER_BYTES as u64;
    while at < size {
        let head = read_slice(file, at, BLOCK_HEAD as u64).await?;
        let len = checker
            .next_block_len(&head, head.len())
            .map_err(|e| e.to_string())?;
        let packed = read_slice(file, at + BLOCK_HEAD as u64, u64::from(len)).await?;
        checker
            .block(&head, &packed, unzstd, &mut |item| check.item(item))
            .map_err(|e| e.to_string())?;
        at = checker.offset();
        progress(at, size);
        // Let the page paint the progress bar between blocks.
        crate::util::sleep(0).await;
    }
    checker.finish().map_err(|e| e.to_string())?;
    Ok(check.finish())
}

/// What an import needs from a copy before anything leaves the browser.
pub struct ImportTicket {
    pub clinic_id: Uuid,
    /// The content SHA-256 from the header (what the owner signs), checked against the content.
    pub content_sha256: [u8; 32],
    /// The importing member's account in the copy, with their sealed recovery kit.
    pub account: ExportedAccount,
}

/// Reads a copy through, checking every block and the content checksum, for its clinic and the
/// account of `username` (which must hold a recovery kit: it is how the keys are unsealed).
pub async fn find_importer(
    file: &web_sys::File,
    username: &str,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportTicket, String> {
    let size = file.size() as u64;
    let head = read_slice(file, 0, HEADER_BYTES as u64).await?;
    let header: Header = parse_header(&head).map_err(|e| e.to_string())?;
    if header.kind != KIND_CLINIC {
        return Err(format!(
            "this file is a {}, not a clinic's export",
            header.kind
        ));
    }
    let content_sha256 = header
        .content_digest()
        .ok_or("the file's header is damaged")?;
    let mut checker = ArchiveChecker::new(header);
    let (mut section, mut clinic_id, mut account) = (String::new(), None, None);
    let mut sink = |item: Item<'_>| -> Result<(), ArchiveError> {
        match item {
            Item::Tree(t) => section = t.to_string(),
            Item::Row(_, v) if section == "clinic" => {
                let c: ExportedClinic = parse("clinic", v).map_err(ArchiveError::Store)?;
                clinic_id = Some(c.clinic_id);
            }
            Item::Row(_, v) if section == "accounts" => {
                let a: ExportedAccount = parse("account", v).map_err(ArchiveError::Store)?;
                if a.username == username {
                    account = Some(a);
                }
            }
            _ => {}
        }
        Ok(())
    };
    let mut at = HEADER_BYTES as u64;
    while at < size {
        let head = read_slice(file, at, BLOCK_HEAD as u64).await?;
        let len = checker
            .next_block_len(&head, head.len())
            .map_err(|e| e.to_string())?;
        let packed = read_slice(file, at + BLOCK_HEAD as u64, u64::from(len)).await?;
        checker
            .block(&head, &packed, unzstd, &mut sink)
            .map_err(|e| e.to_string())?;
        at = checker.offset();
        progress(at, size);
        crate::util::sleep(0).await;
    }
    checker.finish().map_err(|e| e.to_string())?;
    let clinic_id = clinic_id.ok_or("the copy has no clinic in it")?;
    let account = account.ok_or_else(|| format!("{username} is not a member in this copy"))?;
    if account.recovery.is_none() {
        return Err(format!(
            "{username} had no recovery kit when this copy was made, so the keys cannot be \
             opened here; an owner with a recovery kit must import it"
        ));
    }
    Ok(ImportTicket {
        clinic_id,
        content_sha256,
        account,
    })
}

/// Downloads the clinic's export to a file, streamed (the browser keeps the parts; nothing is
/// decrypted). `progress(done, total)` in bytes. Returns the size.
pub async fn download(
    clinic_id: Uuid,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, ApiError> {
    let fail = |m: &str| ApiError::local("export_failed", m);
    let resp = api::export(clinic_id).await?;
    let total: u64 = resp
        .headers()
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let name = resp
        .headers()
        .get("content-disposition")
        .and_then(|d| {
            d.split("filename=\"")
                .nth(1)
                .map(|n| n.trim_end_matches('"').to_string())
        })
        .unwrap_or_else(|| format!("optovault-clinic-{}.ovbk", clinic_id.simple()));
    let body = resp
        .body()
        .ok_or_else(|| fail("The export came back empty."))?;
    let reader: web_sys::ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|_| fail("The browser cannot stream the export."))?;
    let parts = Array::new();
    let mut done = 0u64;
    loop {
        let step: web_sys::ReadableStreamReadResult = JsFuture::from(reader.read())
            .await
            .map_err(|_| fail("The download was interrupted."))?
            .unchecked_into();
        if step.get_done().unwrap_or(true) {
            break;
        }
        let chunk: Uint8Array = step.get_value().unchecked_into();
        done += u64::from(chunk.length());
        parts.push(&chunk);
        progress(done, total.max(done));
    }
    if total != 0 && done != total {
        return Err(fail("The download ended early; try again."));
    }
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/octet-stream");
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(|_| fail("The browser could not assemble the file."))?;
    crate::files::save_as(&blob, &name)?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    //! The check against real exports of the real server (the kit starts it), honest and
    //! tampered after the fact with every checksum recomputed: only the keys can tell.
    use std::io::Cursor;

    use optovault_shared::archive::{ArchiveWriter, KIND_CLINIC};
    use optovault_shared::chart::attachment::{Attachment, AttachmentCategory};
    use optovault_shared::crypto::seal_file_chunk;
    use optovault_shared::wire::FileUploadStart;
    use optovault_shared::{Compartment, B64};
    use optovault_tests::*;

    use super::*;

    struct Fixture {
        _server: TestServer,
        export: Vec<u8>,
        me: Arc<Unlocked>,
        clinic_id: Uuid,
        patient: Uuid,
    }

    fn fixture() -> Fixture {
        let server = TestServer::start();
        let c = server.client();
        let s = c.signup(&unique_username("exporter"), &strong_password());
        let clinic = c.create_clinic(&s, "Export Check Optics").unwrap();
        let patient = Uuid::new_v4();
        c.put_patient(&s, &clinic, patient, 0, &sample_patient(1))
            .unwrap();
        c.put_patient(&s, &clinic, patient, 1, &sample_patient(2))
            .unwrap();
        // An attachment of one chunk, sealed as the browser does.
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let key = FileKey::generate();
        let file_id = Uuid::new_v4();
        let ctx = FileContext {
            clinic_id: clinic.id,
            chart_id: patient,
            file_id,
        };
        let sealed = seal_file_chunk(&key, &ctx, 0, true, &plain).unwrap();
        let ck = clinic.keyring.current(Compartment::Clinical).unwrap();
        c.start_file(
            clinic.id,
            &FileUploadStart {
                file_id,
                chart_id: patient,
                compartment: Compartment::Clinical,
                key_id: ck.key_id,
                epoch: ck.epoch,
                chunk_count: 1,
                chunk_size: sealed.len() as u32,
                total_size: sealed.len() as u64,
            },
        )
        .unwrap();
        assert_eq!(c.put_file_chunk(clinic.id, file_id, 0, &sealed).status, 204);
        assert_eq!(c.complete_file(clinic.id, file_id).status, 204);
        let body = RecordBody::Attachment(Attachment {
            file_name: "scan.bin".into(),
            mime_type: "application/octet-stream".into(),
            size_bytes: plain.len() as u64,
            category: AttachmentCategory::Oct,
            taken: None,
            chunk_count: 1,
            thumbnail: None,
            eye: None,
            description: String::new(),
            file_key: key.to_b64(),
            sha256: B64(Sha256::digest(&plain).to_vec()),
        });
        c.batch(
            clinic.id,
            vec![chart_write(
                &s,
                clinic.id,
                &clinic.keyring,
                patient,
                file_id,
                &body,
            )],
        )
        .unwrap();
        let raw = c.get(&format!("/api/clinics/{}/export", clinic.id));
        assert_eq!(raw.status, 200, "{raw:?}");
        let me = Arc::new(Unlocked {
            account_id: s.account_id,
            username: s.username.clone(),
            public_keys: s.keys.public_keys(),
            keys: s.keys,
        });
        Fixture {
            _server: server,
            export: raw.body.to_vec(),
            me,
            clinic_id: clinic.id,
            patient,
        }
    }

    /// Checks an export held in memory, block by block as the browser does.
    fn check(me: &Arc<Unlocked>, clinic_id: Uuid, bytes: &[u8]) -> Result<ExportReport, String> {
        let header = parse_header(bytes).map_err(|e| e.to_string())?;
        let mut checker = ArchiveChecker::new(header);
        let mut check = ExportCheck::new(me.clone(), clinic_id);
        let mut at = HEADER_BYTES;
        while at < bytes.len() {
            let head = &bytes[at..(at + BLOCK_HEAD).min(bytes.len())];
            let len = checker
                .next_block_len(head, head.len())
                .map_err(|e| e.to_string())? as usize;
            let end = (at + BLOCK_HEAD + len).min(bytes.len());
            checker
                .block(head, &bytes[at + BLOCK_HEAD..end], unzstd, &mut |i| {
                    check.item(i)
                })
                .map_err(|e| e.to_string())?;
            at = checker.offset() as usize;
        }
        checker.finish().map_err(|e| e.to_string())?;
        Ok(check.finish())
    }

    fn zstd(raw: &[u8]) -> std::io::Result<Vec<u8>> {
        Ok(ruzstd::encoding::compress_to_vec(
            Cursor::new(raw.to_vec()),
            ruzstd::encoding::CompressionLevel::Fastest,
        ))
    }

    /// Rewrites an export row by row through `edit` (section, key, value; false drops the row),
    /// with fresh, valid checksums: what a forger with the file but not the keys can make.
    fn forge(
        bytes: &[u8],
        mut edit: impl FnMut(&str, &mut Vec<u8>, &mut Vec<u8>) -> bool,
    ) -> Vec<u8> {
        let mut w = ArchiveWriter::new(Cursor::new(Vec::new()), zstd, "zstd", KIND_CLINIC).unwrap();
        let mut section = String::new();
        optovault_shared::archive::read_archive(
            &mut Cursor::new(bytes),
            unzstd,
            |item| {
                match item {
                    Item::Tree(t) => {
                        section = t.to_string();
                        w.begin_tree(t)?;
                    }
                    Item::Row(k, v) => {
                        let (mut k, mut v) = (k.to_vec(), v.to_vec());
                        if edit(&section, &mut k, &mut v) {
                            w.row(&k, &v)?;
                        }
                    }
                    Item::BlockEnd => {}
                }
                Ok(())
            },
            |_, _| {},
        )
        .unwrap();
        w.finish(0, "forger").unwrap().1.into_inner()
    }

    fn json_edit<T: serde::Serialize + DeserializeOwned>(v: &mut Vec<u8>, f: impl FnOnce(&mut T)) {
        let mut t: T = serde_json::from_slice(v).unwrap();
        f(&mut t);
        *v = serde_json::to_vec(&t).unwrap();
    }

    #[test]
    fn honest_and_forged_exports() {
        let f = fixture();
        let r = check(&f.me, f.clinic_id, &f.export).unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!(r.clinic_name.as_deref(), Some("Export Check Optics"));
        assert_eq!(r.exported_by, f.me.username);
        // The patient and the attachment; the patient's first version.
        assert_eq!((r.records, r.records_opened), (2, 2));
        assert_eq!((r.versions, r.versions_opened), (1, 1));
        assert_eq!((r.files, r.files_checked, r.chunks), (1, 1, 1));
        assert!(r.audit_entries >= 5 && r.roster_entries == 1 && r.members == 1);

        // A forger re-packs the file with valid checksums; each change is caught by the keys.
        let problems = |bytes: Vec<u8>| check(&f.me, f.clinic_id, &bytes).map(|r| r.problems);
        // The patient's ciphertext altered.
        let p = problems(forge(&f.export, |s, _, v| {
            if s == "records" {
                json_edit::<StoredRecord>(v, |r| {
                    if r.envelope.record_id == f.patient {
                        r.envelope.ciphertext.0[3] ^= 1;
                    }
                });
            }
            true
        }))
        .unwrap();
        assert!(
            p.iter().any(|p| p.contains(&f.patient.to_string())),
            "{p:?}"
        );
        // The version number rewritten (it is bound into the AAD and the signature).
        let p = problems(forge(&f.export, |s, _, v| {
            if s == "records" {
                json_edit::<StoredRecord>(v, |r| {
                    if r.envelope.record_id == f.patient {
                        r.envelope.version = 1;
                    }
                });
            }
            true
        }))
        .unwrap();
        assert!(!p.is_empty(), "a rewritten version number must not verify");
        // An audit entry edited.
        let p = problems(forge(&f.export, |s, _, v| {
            if s == "audit" {
                json_edit::<AuditEntry>(v, |e| {
                    if e.seq == 2 {
                        e.count += 1;
                    }
                });
            }
            true
        }))
        .unwrap();
        assert!(p.iter().any(|p| p.starts_with("audit log")), "{p:?}");
        // An audit entry dropped from the middle.
        let p = problems(forge(&f.export, |s, k, _| {
            !(s == "audit" && k[..] == 3u64.to_be_bytes())
        }))
        .unwrap();
        assert!(p.iter().any(|p| p.starts_with("audit log")), "{p:?}");
        // The file's chunk altered.
        let p = problems(forge(&f.export, |s, _, v| {
            if s == "file_chunks" {
                v[10] ^= 1;
            }
            true
        }))
        .unwrap();
        assert!(p.iter().any(|p| p.contains("does not open")), "{p:?}");
        // The member list altered (a byte of its signed genesis entry).
        let e = check(
            &f.me,
            f.clinic_id,
            &forge(&f.export, |s, _, v| {
                if s == "roster" {
                    v.iter_mut()
                        .rev()
                        .find(|b| b.is_ascii_alphanumeric())
                        .map(|b| *b ^= 1);
                }
                true
            }),
        );
        assert!(e.is_err() || !e.unwrap().ok());
        // Another clinic's export is refused outright.
        let other = Uuid::new_v4();
        assert!(check(&f.me, other, &f.export).is_err());
        // Someone else's keys open nothing.
        let stranger = Arc::new(Unlocked {
            account_id: Uuid::new_v4(),
            username: "stranger".into(),
            public_keys: f.me.keys.public_keys(),
            keys: optovault_shared::crypto::UserKeys::generate(),
        });
        let e = check(&stranger, f.clinic_id, &f.export).unwrap_err();
        assert!(e.contains("not a member"), "{e}");
    }
}
