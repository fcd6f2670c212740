//! The embedded default: sled 0.34. Blocking sled calls run on tokio's blocking pool.
//!
//! Trees (keys are big-endian so byte order is numeric order):
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | name | server-wide values (OPAQUE server setup) |
//! | `accounts` | account id | `AccountRow` (JSON) |
//! | `usernames` | username | account id |
//! | `login_attempts` | login id | `LoginAttempt` (JSON) |
//! | `sessions` | SHA-256(token) | `SessionRow` (JSON) |
//! | `clinics` | clinic id | `ClinicRow` (JSON) |
//! | `members` | clinic id ‖ account id | `MemberRow` (JSON) |
//! | `account_clinics` | account id ‖ clinic id | role (index for "my clinics") |
//! | `records` | clinic id ‖ record id | seq ‖ version |
//! | `feed` | clinic id ‖ seq | record id ‖ chart id ‖ version ‖ updated_at ‖ compartment ‖ envelope JSON |
//! | `heads` | clinic id | last seq |
//! | `events` | clinic id (nil for account-level) ‖ seq | `AuditEntry` (JSON), hash-chained |
//! | `roster` | clinic id ‖ seq | `RosterRow` (JSON) |
//! | `roster_heads` | clinic id | seq ‖ hash ‖ key epoch |
//! | `invitations` | clinic id ‖ invitation id | `InvitationRow` (JSON) |
//! | `charts` | clinic id ‖ chart id | `ChartRow` (JSON): restricted charts |
//! | `throttle` | `user:<name>` or `ip:<address>` | `ThrottleRow` (JSON): login backoff |
//! | `account_sessions` | account id ‖ SHA-256(token) | (index to revoke an account's sessions) |
//! | `event_heads` | clinic id (nil for account-level) | last entry's seq ‖ hash (the chain head) |
//! | `versions` | clinic id ‖ record id ‖ version | seq ‖ feed row: every replaced version of a record (history) |
//! | `trash` | clinic id ‖ record id | deleted at (i64): records whose latest version is a tombstone |
//! | `audit_anchors` | clinic id (nil for account-level) | seq ‖ hash of the last entry pruned past retention |
//! | `audit_keys` | clinic id | `AuditKeySetup` (JSON): the audit key's public half, wrapped secret |
//! | `audit_checkpoints` | clinic id ‖ seq | `AuditCheckpoint` (JSON), signed by an owner |
//! | `files` | clinic id ‖ file id | `FileRow` (JSON) |
//! | `file_chunks` | clinic id ‖ file id ‖ index (u32) | chunk ciphertext, as received |
//! | `file_chunk_lens` | clinic id ‖ file id ‖ index (u32) | chunk length (u32): which chunks are present, without reading them |
//!
//! The feed holds one row per record, at its latest seq (the old row is removed on update), so a
//! pull is one range scan with no second lookup.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use optovault_shared::audit::GENESIS_HASH;
use optovault_shared::wire::{AuditEntry, ClinicPolicy};
use optovault_shared::B64;
use optovault_shared::{Compartment, UnixTime};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use uuid::Uuid;

use super::*;
use crate::backup::archive::{
    read_archive, zstd_decompress, ArchiveError, ArchiveWriter, Header, Item,
};

#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// Every write holds this shared; a backup holds it exclusively while it copies the trees,
    /// so the copy never contains half of a multi-tree write. Reads never take it.
    gate: std::sync::RwLock<()>,
    /// Writes that delete file chunks also hold this shared; a backup holds it exclusively while
    /// it copies the chunks its snapshot lists, after it has let other writes go on.
    chunk_gate: std::sync::RwLock<()>,
    meta: Tree,
    accounts: Tree,
    usernames: Tree,
    login_attempts: Tree,
    sessions: Tree,
    clinics: Tree,
    members: Tree,
    account_clinics: Tree,
    records: Tree,
    feed: Tree,
    versions: Tree,
    trash: Tree,
    heads: Tree,
    events: Tree,
    event_heads: Tree,
    audit_keys: Tree,
    audit_anchors: Tree,
    audit_checkpoints: Tree,
    roster: Tree,
    roster_heads: Tree,
    invitations: Tree,
    account_sessions: Tree,
    charts: Tree,
    throttle: Tree,
    files: Tree,
    file_chunks: Tree,
    file_chunk_lens: Tree,
}

fn archive_store(e: sled::Error) -> ArchiveError {
    ArchiveError::Store(e.to_string())
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    classify(e.to_string())
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(_) => StoreError::Unavailable(e.to_string()),
            e => backend(e),
        }
    }
}

/// How sled 0.34 fails when its disk cannot be written (ENOSPC, EROFS, EDQUOT, EIO): the log
/// writer's `pwrite`/`fsync` error becomes the `Db`'s "global error" (`Config::set_global_error`
/// in `pagecache/iobuf.rs`), and from then on every write and flush of that `Db` returns a clone
/// of it, `Error::Io` with the original kind but no OS code, even once the disk has room again;
/// only opening the database anew clears it (`PageCache::start` calls `reset_global_error`).
/// Writes that had reached memory but not the disk stay visible to reads until then. So every
/// sled I/O error is `Unavailable`, and [`super::RecoveringStore`] reopens the database on it.
/// Errors that reach [`backend`] as text (a transaction's `Storage` error) are recognised by
/// sled's `Display` prefix for `Error::Io`.
fn classify(message: String) -> StoreError {
    if message.starts_with("IO error") {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store rows serialise")
}

fn from_json<T: DeserializeOwned>(tree: &'static str, b: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(b).map_err(|_| StoreError::Corrupt(tree))
}

fn key2(a: &Uuid, b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + b.len());
    k.extend_from_slice(a.as_bytes());
    k.extend_from_slice(b);
    k
}

fn be_u64(b: &[u8]) -> StoreResult<u64> {
    b.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("counter"))
}

fn uuid_at(b: &[u8], at: usize) -> StoreResult<Uuid> {
    b.get(at..at + 16)
        .and_then(|s| Uuid::from_slice(s).ok())
        .ok_or(StoreError::Corrupt("id"))
}

const FEED_HEADER: usize = 16 + 16 + 8 + 8 + 1;

fn encode_feed_row(r: &RecordRow) -> Vec<u8> {
    let mut v = Vec::with_capacity(FEED_HEADER + r.envelope.len());
    v.extend_from_slice(r.record_id.as_bytes());
    v.extend_from_slice(r.chart_id.as_bytes());
    v.extend_from_slice(&r.version.to_be_bytes());
    v.extend_from_slice(&r.updated_at.to_be_bytes());
    v.push(r.compartment.code());
    v.extend_from_slice(&r.envelope);
    v
}

fn decode_feed_row(seq: u64, v: &[u8]) -> StoreResult<RecordRow> {
    if v.len() < FEED_HEADER {
        return Err(StoreError::Corrupt("feed"));
    }
    Ok(RecordRow {
        record_id: uuid_at(v, 0)?,
        chart_id: uuid_at(v, 16)?,
        version: be_u64(&v[32..40])?,
        updated_at: be_u64(&v[40..48])? as i64,
        compartment: Compartment::from_code(v[48]).ok_or(StoreError::Corrupt("feed"))?,
        seq,
        envelope: v[FEED_HEADER..].to_vec(),
    })
}

/// Starts an export section and hands it every row.
fn section(
    name: &str,
    rows: &mut dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), ArchiveError>>,
    sink: &mut dyn FnMut(ArchiveItem<'_>) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    sink(ArchiveItem::Tree(name))?;
    for r in rows {
        let (k, v) = r?;
        sink(ArchiveItem::Row(&k, &v))?;
    }
    Ok(())
}

/// A record row as the API serves it (its envelope parsed).
pub(super) fn stored(row: RecordRow) -> Result<optovault_shared::wire::StoredRecord, ArchiveError> {
    Ok(optovault_shared::wire::StoredRecord {
        seq: row.seq,
        updated_at: row.updated_at,
        envelope: serde_json::from_slice(&row.envelope).map_err(|_| {
            ArchiveError::Store(format!("record {} has a corrupt envelope", row.record_id))
        })?,
    })
}

fn event_scope(clinic_id: Option<Uuid>) -> Uuid {
    clinic_id.unwrap_or(Uuid::nil())
}

fn version_key(clinic_id: &Uuid, record_id: &Uuid, version: u64) -> Vec<u8> {
    let mut k = key2(clinic_id, record_id.as_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// A log's head as stored in `event_heads`: seq ‖ hash.
fn decode_event_head(b: &[u8]) -> StoreResult<(u64, [u8; 32])> {
    if b.len() != 40 {
        return Err(StoreError::Corrupt("event_heads"));
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&b[8..]);
    Ok((be_u64(&b[..8])?, hash))
}

/// Appends an entry to its log inside a transaction, chained to the head; returns its seq.
fn append_event_tx(
    events: &TransactionalTree,
    heads: &TransactionalTree,
    e: &EventDraft,
) -> Result<u64, ConflictableTransactionError<StoreError>> {
    let scope = event_scope(e.clinic_id);
    let (last, prev_hash) = match heads.get(scope.as_bytes())? {
        Some(b) => decode_event_head(&b).map_err(ConflictableTransactionError::Abort)?,
        None => (0, GENESIS_HASH),
    };
    let seq = last + 1;
    let row = e.chain(seq, prev_hash);
    let hash: [u8; 32] = row.hash.as_slice().try_into().expect("a SHA-256");
    let mut head = Vec::with_capacity(40);
    head.extend_from_slice(&seq.to_be_bytes());
    head.extend_from_slice(&hash);
    heads.insert(scope.as_bytes(), head)?;
    events.insert(key2(&scope, &seq.to_be_bytes()), to_json(&row))?;
    Ok(seq)
}

fn encode_head(h: &RosterHead) -> Vec<u8> {
    let mut v = Vec::with_capacity(44);
    v.extend_from_slice(&h.seq.to_be_bytes());
    v.extend_from_slice(&h.hash);
    v.extend_from_slice(&h.key_epoch.to_be_bytes());
    v
}

fn decode_head(b: &[u8]) -> StoreResult<RosterHead> {
    if b.len() != 44 {
        return Err(StoreError::Corrupt("roster_heads"));
    }
    Ok(RosterHead {
        seq: be_u64(&b[..8])?,
        hash: b[8..40]
            .try_into()
            .map_err(|_| StoreError::Corrupt("roster_heads"))?,
        key_epoch: u32::from_be_bytes(
            b[40..44]
                .try_into()
                .map_err(|_| StoreError::Corrupt("roster_heads"))?,
        ),
    })
}

fn abort<T>(e: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(e))
}

/// Adds wrapped keys to their recipients' member rows inside a transaction; every recipient must
/// be a member.
fn add_wraps_tx(
    members: &TransactionalTree,
    clinic_id: &Uuid,
    wraps: &[WrappedKey],
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let mut recipients: Vec<Uuid> = wraps.iter().map(|k| k.recipient).collect();
    recipients.sort();
    recipients.dedup();
    for r in recipients {
        let key = key2(clinic_id, r.as_bytes());
        let mut m: MemberRow = match members.get(&key)? {
            Some(v) => from_json("members", &v).map_err(ConflictableTransactionError::Abort)?,
            None => return abort(StoreError::Conflict("no such member".into())),
        };
        m.wrapped_keys
            .extend(wraps.iter().filter(|k| k.recipient == r).cloned());
        members.insert(key, to_json(&m))?;
    }
    Ok(())
}

/// Appends a roster row inside a transaction if it follows the current head.
fn append_roster_tx(
    roster: &TransactionalTree,
    heads: &TransactionalTree,
    clinic_id: &Uuid,
    row: &RosterRow,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let head_seq = match heads.get(clinic_id.as_bytes())? {
        Some(b) => {
            decode_head(&b)
                .map_err(ConflictableTransactionError::Abort)?
                .seq
        }
        None => 0,
    };
    if row.seq != head_seq + 1 {
        return abort(StoreError::Conflict("a newer roster entry".into()));
    }
    roster.insert(key2(clinic_id, &row.seq.to_be_bytes()), to_json(row))?;
    heads.insert(
        clinic_id.as_bytes(),
        encode_head(&RosterHead {
            seq: row.seq,
            hash: row.hash,
            key_epoch: row.key_epoch,
        }),
    )?;
    Ok(())
}

/// Applies record writes inside a transaction: version checks, feed rows, the record index and
/// the clinic's head seq. Any conflict aborts the whole transaction.
/// Re-checks each write's guard inside the transaction (see `WriteGuard`).
fn check_guards_tx(
    g: &GuardTrees<'_>,
    clinic_id: &Uuid,
    writes: &[RecordWriteRow],
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let mut clinic_epoch = None;
    for w in writes {
        if let Some(guard) = w.guard {
            check_guard_tx(g, clinic_id, &w.chart_id, &guard, &mut clinic_epoch)?;
        }
    }
    Ok(())
}

/// Re-checks one guard for a write to `chart_id` (see `WriteGuard`); `clinic_epoch` caches the
/// clinic's key epoch across the writes of one transaction.
fn check_guard_tx(
    g: &GuardTrees<'_>,
    clinic_id: &Uuid,
    chart_id: &Uuid,
    guard: &WriteGuard,
    clinic_epoch: &mut Option<u32>,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    if g.members
        .get(key2(clinic_id, guard.author.as_bytes()))?
        .is_none()
    {
        return abort(StoreError::Conflict(
            "the author is no longer a member".into(),
        ));
    }
    let want = match g.charts.get(key2(clinic_id, chart_id.as_bytes()))? {
        Some(v) => {
            let chart: ChartRow =
                from_json("charts", &v).map_err(ConflictableTransactionError::Abort)?;
            if !chart.care_team.contains(&guard.author) {
                return abort(StoreError::Conflict("the author left the care team".into()));
            }
            chart.key_epoch
        }
        None => match *clinic_epoch {
            Some(e) => e,
            None => {
                let e = match g.roster_heads.get(clinic_id.as_bytes())? {
                    Some(b) => {
                        decode_head(&b)
                            .map_err(ConflictableTransactionError::Abort)?
                            .key_epoch
                    }
                    None => return abort(StoreError::Corrupt("roster_heads")),
                };
                *clinic_epoch = Some(e);
                e
            }
        },
    };
    if guard.sealed_epoch != want {
        return abort(StoreError::Conflict("keys rotated".into()));
    }
    Ok(())
}

/// The trees a write guard reads.
struct GuardTrees<'a> {
    members: &'a TransactionalTree,
    charts: &'a TransactionalTree,
    roster_heads: &'a TransactionalTree,
}

fn apply_writes_tx(
    records: &TransactionalTree,
    feed: &TransactionalTree,
    versions: &TransactionalTree,
    trash: &TransactionalTree,
    heads: &TransactionalTree,
    clinic_id: &Uuid,
    writes: &[RecordWriteRow],
    now: UnixTime,
) -> Result<Vec<WriteOutcome>, ConflictableTransactionError<StoreError>> {
    let clinic_id = *clinic_id;
    let mut head = match heads.get(clinic_id.as_bytes())? {
        Some(b) => be_u64(&b).map_err(ConflictableTransactionError::Abort)?,
        None => 0,
    };
    let mut out = Vec::with_capacity(writes.len());
    for w in writes {
        let rkey = key2(&clinic_id, w.record_id.as_bytes());
        let current = records.get(&rkey)?;
        let (old_seq, current_version) = match &current {
            Some(b) if b.len() == 16 => (
                Some(be_u64(&b[..8]).map_err(ConflictableTransactionError::Abort)?),
                be_u64(&b[8..]).map_err(ConflictableTransactionError::Abort)?,
            ),
            Some(_) => {
                return Err(ConflictableTransactionError::Abort(StoreError::Corrupt(
                    "records",
                )))
            }
            None => (None, 0),
        };
        if current_version != w.expected_version {
            return Err(ConflictableTransactionError::Abort(
                StoreError::VersionConflict {
                    record_id: w.record_id,
                    current: current_version,
                },
            ));
        }
        // The replaced version moves from the feed to the record's history.
        if let Some(old) = old_seq {
            if let Some(row) = feed.remove(key2(&clinic_id, &old.to_be_bytes()))? {
                let mut v = Vec::with_capacity(8 + row.len());
                v.extend_from_slice(&old.to_be_bytes());
                v.extend_from_slice(&row);
                versions.insert(version_key(&clinic_id, &w.record_id, current_version), v)?;
            }
        }
        head += 1;
        let version = current_version + 1;
        let row = RecordRow {
            record_id: w.record_id,
            chart_id: w.chart_id,
            seq: head,
            version,
            updated_at: now,
            compartment: w.compartment,
            envelope: w.envelope.clone(),
        };
        feed.insert(key2(&clinic_id, &head.to_be_bytes()), encode_feed_row(&row))?;
        let mut idx = [0u8; 16];
        idx[..8].copy_from_slice(&head.to_be_bytes());
        idx[8..].copy_from_slice(&version.to_be_bytes());
        if w.deleted {
            trash.insert(rkey.as_slice(), &now.to_be_bytes())?;
        } else if current_version > 0 {
            trash.remove(rkey.as_slice())?;
        }
        records.insert(rkey, &idx)?;
        out.push(WriteOutcome {
            record_id: w.record_id,
            version,
            seq: head,
        });
    }
    heads.insert(clinic_id.as_bytes(), &head.to_be_bytes())?;
    Ok(out)
}

/// `clinic id ‖ file id`: a file row's key, and the prefix of its chunks.
fn file_key(clinic_id: &Uuid, file_id: &Uuid) -> Vec<u8> {
    key2(clinic_id, file_id.as_bytes())
}

/// The index in a chunk's key.
fn chunk_index_of(key: &[u8]) -> StoreResult<u32> {
    key.get(32..36)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(StoreError::Corrupt("file_chunk_lens"))
}

/// `clinic id ‖ file id ‖ index`: a chunk's key (in `file_chunks` and `file_chunk_lens`).
fn chunk_key(clinic_id: &Uuid, file_id: &Uuid, index: u32) -> Vec<u8> {
    let mut k = file_key(clinic_id, file_id);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn file_conflict<T>(what: &str) -> Result<T, ConflictableTransactionError<StoreError>> {
    abort(StoreError::Conflict(what.to_string()))
}

fn load_file_tx(
    files: &TransactionalTree,
    key: &[u8],
) -> Result<FileRow, ConflictableTransactionError<StoreError>> {
    match files.get(key)? {
        Some(v) => from_json("files", &v).map_err(ConflictableTransactionError::Abort),
        None => file_conflict(file_conflict::NO_SUCH_FILE),
    }
}

fn tx_result<T>(r: Result<T, TransactionError<StoreError>>) -> StoreResult<T> {
    match r {
        Ok(v) => Ok(v),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(backend(e)),
    }
}

impl SledStore {
    pub fn open(dir: &Path) -> StoreResult<SledStore> {
        Self::from_db(Self::config(dir).open()?)
    }

    fn config(dir: &Path) -> sled::Config {
        sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(200))
    }

    fn from_db(db: sled::Db) -> StoreResult<SledStore> {
        let t = |n: &str| db.open_tree(n);
        let inner = Inner {
            meta: t("meta")?,
            accounts: t("accounts")?,
            usernames: t("usernames")?,
            login_attempts: t("login_attempts")?,
            sessions: t("sessions")?,
            clinics: t("clinics")?,
            members: t("members")?,
            account_clinics: t("account_clinics")?,
            records: t("records")?,
            feed: t("feed")?,
            versions: t("versions")?,
            trash: t("trash")?,
            heads: t("heads")?,
            events: t("events")?,
            event_heads: t("event_heads")?,
            audit_keys: t("audit_keys")?,
            audit_anchors: t("audit_anchors")?,
            audit_checkpoints: t("audit_checkpoints")?,
            roster: t("roster")?,
            roster_heads: t("roster_heads")?,
            invitations: t("invitations")?,
            account_sessions: t("account_sessions")?,
            charts: t("charts")?,
            throttle: t("throttle")?,
            files: t("files")?,
            file_chunks: t("file_chunks")?,
            file_chunk_lens: t("file_chunk_lens")?,
            gate: std::sync::RwLock::new(()),
            chunk_gate: std::sync::RwLock::new(()),
            db,
        };
        Ok(SledStore {
            inner: Arc::new(inner),
        })
    }

    /// Runs blocking sled work off the async runtime.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(backend)?
    }

    /// Like [`run`](Self::run), for work that writes: it waits while a backup copies the trees.
    async fn run_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _writing = inner.gate.read().unwrap_or_else(|p| p.into_inner());
            f(&inner)
        })
        .await
        .map_err(backend)?
    }

    /// Like [`run_write`](Self::run_write), for writes that delete file chunks (purges, erasure).
    async fn run_write_deleting_chunks<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.run_write(move |s| {
            let _deleting = s.chunk_gate.read().unwrap_or_else(|p| p.into_inner());
            f(s)
        })
        .await
    }

    /// A consistent snapshot of the live database, row by row, into `out`. Blocking; `progress`
    /// gets the rows copied so far.
    ///
    /// Every tree but `file_chunks` is copied while no write runs (reads go on). The chunks are
    /// the bulk of the bytes and are never changed once their file is complete, so they are
    /// copied after writes resume: exactly the chunks that the copied `file_chunk_lens` lists,
    /// while only writes that delete chunks wait.
    pub fn write_snapshot<W: std::io::Write + std::io::Seek>(
        &self,
        out: &mut ArchiveWriter<W>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ArchiveError> {
        let waited = std::time::Instant::now();
        let paused = self.inner.gate.write().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let mut names = self.inner.db.tree_names();
        names.sort();
        let mut chunk_keys = Vec::new();
        for name in names {
            if &*name == b"file_chunks" {
                continue;
            }
            let tree = self.inner.db.open_tree(&name).map_err(archive_store)?;
            let lens = &*name == b"file_chunk_lens";
            out.begin_tree(&String::from_utf8_lossy(&name))?;
            for kv in tree.iter() {
                let (k, v) = kv.map_err(archive_store)?;
                out.row(&k, &v)?;
                if lens {
                    chunk_keys.push(k);
                }
                if out.rows() % 10_000 == 0 {
                    progress(out.rows());
                }
            }
        }
        tracing::info!(
            waited_ms = (started - waited).as_millis() as u64,
            writes_paused_ms = started.elapsed().as_millis() as u64,
            rows = out.rows(),
            "backup: trees copied; file chunks next, while writes go on"
        );
        out.begin_tree("file_chunks")?;
        self.inner
            .copy_listed_chunks(paused, chunk_keys, &mut |k, v| {
                out.row(k, v)?;
                if out.rows() % 1_000 == 0 {
                    progress(out.rows());
                }
                Ok(())
            })?;
        progress(out.rows());
        Ok(())
    }

    /// Rebuilds a database in the empty directory `dir` from an archive, checking it as it
    /// goes (see [`read_archive`]), flushes it and returns it open (sled releases its directory
    /// lock only some time after a drop, so the caller keeps this handle rather than reopening).
    pub fn restore_archive(
        dir: &Path,
        input: &mut impl std::io::Read,
        progress: impl FnMut(u64, u64),
    ) -> Result<(Header, SledStore), ArchiveError> {
        let db = Self::config(dir).open().map_err(archive_store)?;
        let mut tree: Option<Tree> = None;
        let mut batch = sled::Batch::default();
        let header = read_archive(
            input,
            zstd_decompress,
            |item| {
                // A batch never spans two trees: it is applied at every block end and before
                // the next tree starts.
                if let (Item::BlockEnd | Item::Tree(_), Some(t)) = (&item, &tree) {
                    t.apply_batch(std::mem::take(&mut batch))
                        .map_err(archive_store)?;
                }
                match item {
                    Item::Tree(name) => tree = Some(db.open_tree(name).map_err(archive_store)?),
                    Item::Row(k, v) => batch.insert(k, v),
                    Item::BlockEnd => {}
                }
                Ok(())
            },
            progress,
        )?;
        db.flush().map_err(archive_store)?;
        let store = Self::from_db(db).map_err(|e| ArchiveError::Store(e.to_string()))?;
        Ok((header, store))
    }

    /// Row counts of every tree (a restored copy is compared with its archive's header).
    pub fn tree_counts(&self) -> Vec<(String, u64)> {
        let mut names = self.inner.db.tree_names();
        names.sort();
        names
            .into_iter()
            .filter_map(|n| {
                let t = self.inner.db.open_tree(&n).ok()?;
                Some((String::from_utf8_lossy(&n).into_owned(), t.len() as u64))
            })
            .collect()
    }

    /// Checks every stored record version without any key: the feed row's header matches its
    /// envelope, the envelope is well formed and signed by its author's registered key, the
    /// record index points at the feed, and no seq is past the clinic's head. Blocking.
    pub fn check_records(&self) -> StoreResult<RecordsCheck> {
        let s = &self.inner;
        let mut check = RecordsCheck::default();
        let mut keys: std::collections::HashMap<Uuid, Option<Vec<u8>>> = Default::default();
        let mut author_key = |author: Uuid| -> StoreResult<Option<Vec<u8>>> {
            if let Some(k) = keys.get(&author) {
                return Ok(k.clone());
            }
            let row: Option<AccountRow> = s.get_json(&s.accounts, "accounts", author.as_bytes())?;
            let k = row.map(|a| a.public_keys.ed25519.0);
            keys.insert(author, k.clone());
            Ok(k)
        };
        let mut one = |clinic_id: Uuid,
                       row: &RecordRow,
                       what: &str|
         -> StoreResult<Option<String>> {
            let problem =
                match serde_json::from_slice::<optovault_shared::RecordEnvelope>(&row.envelope) {
                    Err(e) => Some(format!("envelope does not parse: {e}")),
                    Ok(env) => {
                        if let Err(e) = env.check_structure() {
                            Some(format!("envelope is malformed: {e}"))
                        } else if env.record_id != row.record_id
                            || env.chart_id != row.chart_id
                            || env.version != row.version
                            || env.compartment != row.compartment
                        {
                            Some("the row's header differs from its envelope".into())
                        } else {
                            match author_key(env.author)? {
                                None => Some(format!("author {} has no account", env.author)),
                                Some(pk) => {
                                    let msg = env.signing_input(
                                        &clinic_id,
                                        optovault_shared::envelope::Purpose::Record,
                                    );
                                    (!optovault_shared::audit::verify_ed25519(
                                        &pk,
                                        &msg,
                                        env.signature.as_slice(),
                                    ))
                                    .then(|| "the author's signature does not verify".to_string())
                                }
                            }
                        }
                    }
                };
            Ok(problem.map(|p| {
                format!(
                    "clinic {clinic_id}, record {} version {} ({what}): {p}",
                    row.record_id, row.version
                )
            }))
        };
        let mut heads: std::collections::HashMap<Uuid, u64> = Default::default();
        for kv in s.feed.iter() {
            let (k, v) = kv?;
            let clinic_id = uuid_at(&k, 0)?;
            let seq = be_u64(k.get(16..24).ok_or(StoreError::Corrupt("feed"))?)?;
            let row = decode_feed_row(seq, &v)?;
            if let Some(p) = one(clinic_id, &row, "current")? {
                check.problem(p);
            }
            let indexed = s.records.get(key2(&clinic_id, row.record_id.as_bytes()))?;
            let expected = [seq.to_be_bytes(), row.version.to_be_bytes()].concat();
            if indexed.as_deref() != Some(&expected[..]) {
                check.problem(format!(
                    "clinic {clinic_id}, record {}: the record index does not point at feed seq {seq}",
                    row.record_id
                ));
            }
            let h = heads.entry(clinic_id).or_default();
            *h = (*h).max(seq);
            check.current += 1;
        }
        for kv in s.versions.iter() {
            let (k, v) = kv?;
            let clinic_id = uuid_at(&k, 0)?;
            let seq = be_u64(v.get(..8).ok_or(StoreError::Corrupt("versions"))?)?;
            let row = decode_feed_row(seq, &v[8..])?;
            if let Some(p) = one(clinic_id, &row, "history")? {
                check.problem(p);
            }
            check.versions += 1;
        }
        if s.records.len() as u64 != check.current {
            check.problem(format!(
                "the record index has {} entries for {} current records",
                s.records.len(),
                check.current
            ));
        }
        for (clinic_id, top) in heads {
            let head = s
                .heads
                .get(clinic_id.as_bytes())?
                .map(|b| be_u64(&b))
                .transpose()?;
            if head.unwrap_or(0) < top {
                check.problem(format!(
                    "clinic {clinic_id}: feed seq {top} is past the clinic's head {head:?}"
                ));
            }
        }
        // Every chunk the uploads list is there, at its listed length, and no other.
        for kv in s.file_chunk_lens.iter() {
            let (k, v) = kv?;
            let len = v
                .as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt("file_chunk_lens"))?;
            match s.file_chunks.get(&k)? {
                Some(c) if c.len() == len as usize => check.chunks += 1,
                _ => check.problem(format!(
                    "clinic {}, file {}: chunk {} is missing or has the wrong length",
                    uuid_at(&k, 0)?,
                    uuid_at(&k, 16)?,
                    chunk_index_of(&k)?
                )),
            }
        }
        if s.file_chunks.len() as u64 != check.chunks {
            check.problem(format!(
                "{} file chunks stored, {} listed",
                s.file_chunks.len(),
                check.chunks
            ));
        }
        check.clinics = s.clinics.len() as u64;
        Ok(check)
    }

    /// Flushes everything to disk (used on shutdown, and after every durable write).
    pub async fn flush(&self) -> StoreResult<()> {
        self.inner.db.flush_async().await?;
        Ok(())
    }
}

impl Inner {
    fn get_json<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        name: &'static str,
        key: &[u8],
    ) -> StoreResult<Option<T>> {
        tree.get(key)?.map(|v| from_json(name, &v)).transpose()
    }
    /// Every row of `tree` under `prefix`, parsed.
    fn scan_json<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        name: &'static str,
        prefix: &[u8],
    ) -> StoreResult<Vec<T>> {
        tree.scan_prefix(prefix)
            .map(|kv| from_json(name, &kv?.1))
            .collect()
    }
    /// Copies the chunks a snapshot listed in `file_chunk_lens`, after letting writes resume
    /// (`paused` is released here): chunks never change once their file is complete, and the
    /// writes that delete them (purges, erasure) wait on `chunk_gate` until the copy is done.
    fn copy_listed_chunks(
        &self,
        paused: std::sync::RwLockWriteGuard<'_, ()>,
        keys: Vec<sled::IVec>,
        row: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        let _no_chunk_deletes = self.chunk_gate.write().unwrap_or_else(|p| p.into_inner());
        drop(paused);
        for k in keys {
            let v = self
                .file_chunks
                .get(&k)
                .map_err(archive_store)?
                .ok_or_else(|| ArchiveError::Store("a listed file chunk is missing".into()))?;
            row(&k, &v)?;
        }
        Ok(())
    }

    /// The indices of a file's stored chunks, ascending.
    fn chunk_indices(&self, clinic_id: &Uuid, file_id: &Uuid) -> StoreResult<Vec<u32>> {
        self.file_chunk_lens
            .scan_prefix(file_key(clinic_id, file_id))
            .keys()
            .map(|k| chunk_index_of(&k?))
            .collect()
    }
    fn durable(&self) -> StoreResult<()> {
        self.db.flush()?;
        Ok(())
    }
}

#[async_trait]
impl Store for SledStore {
    async fn server_setup_or_init(&self, fresh: Vec<u8>) -> StoreResult<Vec<u8>> {
        self.run_write(move |s| {
            let prev = s.meta.compare_and_swap(
                b"opaque_server_setup",
                None as Option<&[u8]>,
                Some(fresh.clone()),
            )?;
            s.durable()?;
            match prev {
                Ok(()) => Ok(fresh),
                Err(cas) => Ok(cas.current.map(|v| v.to_vec()).unwrap_or_default()),
            }
        })
        .await
    }

    async fn create_account(
        &self,
        account: AccountRow,
        event: Option<EventDraft>,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let trees = (&s.usernames, &s.accounts, &s.events, &s.event_heads);
            let r = trees.transaction(|(u, a, log, heads)| {
                if u.get(account.username.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                        "username".into(),
                    )));
                }
                u.insert(account.username.as_bytes(), account.account_id.as_bytes())?;
                a.insert(account.account_id.as_bytes(), to_json(&account))?;
                if let Some(e) = &event {
                    append_event_tx(log, heads, e)?;
                }
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn account(&self, account_id: Uuid) -> StoreResult<Option<AccountRow>> {
        self.run(move |s| s.get_json(&s.accounts, "accounts", account_id.as_bytes()))
            .await
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Option<AccountRow>> {
        let username = username.to_string();
        self.run(move |s| match s.usernames.get(username.as_bytes())? {
            None => Ok(None),
            Some(id) => s.get_json(&s.accounts, "accounts", &id),
        })
        .await
    }

    async fn update_account(
        &self,
        account_id: Uuid,
        f: Box<dyn for<'r> Fn(&'r mut AccountRow) -> StoreResult<()> + Send + Sync>,
        event: Option<EventDraft>,
    ) -> StoreResult<AccountRow> {
        self.run_write(move |s| {
            let trees = (&s.accounts, &s.events, &s.event_heads);
            let r = trees.transaction(|(t, log, heads)| {
                let mut a: AccountRow = match t.get(account_id.as_bytes())? {
                    Some(v) => {
                        from_json("accounts", &v).map_err(ConflictableTransactionError::Abort)?
                    }
                    None => return abort(StoreError::Conflict("no such account".into())),
                };
                f(&mut a).map_err(ConflictableTransactionError::Abort)?;
                t.insert(account_id.as_bytes(), to_json(&a))?;
                if let Some(e) = &event {
                    append_event_tx(log, heads, e)?;
                }
                Ok(a)
            });
            let a = tx_result(r)?;
            s.durable()?;
            Ok(a)
        })
        .await
    }

    async fn put_login_attempt(&self, attempt: LoginAttempt) -> StoreResult<()> {
        self.run_write(move |s| {
            s.login_attempts
                .insert(attempt.login_id.as_bytes(), to_json(&attempt))?;
            Ok(())
        })
        .await
    }

    async fn take_login_attempt(&self, login_id: Uuid) -> StoreResult<Option<LoginAttempt>> {
        self.run_write(move |s| {
            s.login_attempts
                .remove(login_id.as_bytes())?
                .map(|v| from_json("login_attempts", &v))
                .transpose()
        })
        .await
    }

    async fn purge_trash(&self, now: UnixTime) -> StoreResult<usize> {
        self.run_write_deleting_chunks(move |s| {
            let mut purged = 0;
            for kv in s.trash.iter() {
                let (k, v) = kv?;
                let clinic_id = uuid_at(&k, 0)?;
                let record_id = uuid_at(&k, 16)?;
                let deleted_at = be_u64(&v)? as i64;
                let days = match s.clinics.get(clinic_id.as_bytes())? {
                    Some(c) => from_json::<ClinicRow>("clinics", &c)?.policy.trash_days,
                    None => continue,
                };
                if deleted_at.saturating_add(i64::from(days) * 86_400) > now {
                    continue;
                }
                // Sled transactions cannot scan: the version keys are listed first (versions
                // only grow by writes, which the check of the trash row below would see).
                let version_keys: Vec<sled::IVec> = s
                    .versions
                    .scan_prefix(&k)
                    .keys()
                    .collect::<Result<_, _>>()?;
                let trees = (
                    &s.trash,
                    &s.records,
                    &s.feed,
                    &s.versions,
                    &s.files,
                    &s.file_chunks,
                    &s.file_chunk_lens,
                    &s.events,
                    &s.event_heads,
                );
                let r = trees.transaction(
                    |(trash, records, feed, versions, files, chunks, lens, events, event_heads)| {
                        // Restored (or deleted again) meanwhile: not this purge's to take.
                        if trash.get(&k)?.as_deref() != Some(v.as_ref()) {
                            return Ok(false);
                        }
                        trash.remove(&k)?;
                        if let Some(idx) = records.remove(&k)? {
                            let seq =
                                be_u64(&idx[..8]).map_err(ConflictableTransactionError::Abort)?;
                            feed.remove(key2(&clinic_id, &seq.to_be_bytes()))?;
                        }
                        for vk in &version_keys {
                            versions.remove(vk)?;
                        }
                        // An attachment's record id is its file's id: the chunks go with it.
                        if let Some(f) = files.remove(k.as_ref())? {
                            let f: FileRow = from_json("files", &f)
                                .map_err(ConflictableTransactionError::Abort)?;
                            for index in 0..f.chunk_count {
                                let ck = chunk_key(&clinic_id, &record_id, index);
                                chunks.remove(ck.as_slice())?;
                                lens.remove(ck)?;
                            }
                        }
                        append_event_tx(
                            events,
                            event_heads,
                            &EventDraft {
                                at: now,
                                actor: None,
                                clinic_id: Some(clinic_id),
                                action: "record_purged",
                                target: Some(record_id),
                                count: version_keys.len() as u32 + 1,
                                outcome: "ok",
                                ip: None,
                                detail: None,
                            },
                        )?;
                        Ok(true)
                    },
                );
                if tx_result(r)? {
                    purged += 1;
                }
            }
            if purged > 0 {
                s.durable()?;
            }
            Ok(purged)
        })
        .await
    }

    async fn trash(&self, clinic_id: Uuid) -> StoreResult<Vec<(Uuid, UnixTime)>> {
        self.run(move |s| {
            s.trash
                .scan_prefix(clinic_id.as_bytes())
                .map(|kv| {
                    let (k, v) = kv?;
                    Ok((uuid_at(&k, 16)?, be_u64(&v)? as i64))
                })
                .collect()
        })
        .await
    }

    async fn purge_expired(&self, now: UnixTime) -> StoreResult<usize> {
        self.run_write_deleting_chunks(move |s| {
            let mut purged = 0;
            for kv in s.login_attempts.iter() {
                let (k, v) = kv?;
                let a: LoginAttempt = from_json("login_attempts", &v)?;
                if a.expires_at <= now && s.login_attempts.remove(k)?.is_some() {
                    purged += 1;
                }
            }
            for kv in s.sessions.iter() {
                let (k, v) = kv?;
                let row: SessionRow = from_json("sessions", &v)?;
                if row.expires_at <= now && s.sessions.remove(&k)?.is_some() {
                    s.account_sessions.remove(key2(&row.account_id, &k))?;
                    purged += 1;
                }
            }
            for kv in s.files.iter() {
                let (k, v) = kv?;
                let f: FileRow = from_json("files", &v)?;
                if f.is_complete() || f.created_at.saturating_add(INCOMPLETE_FILE_TTL_SECS) > now {
                    continue;
                }
                let trees = (&s.files, &s.file_chunks, &s.file_chunk_lens);
                let r = trees.transaction(|(files, chunks, lens)| {
                    // Read again inside the transaction: it may have completed meanwhile.
                    let f = match load_file_tx(files, &k) {
                        Ok(f) => f,
                        Err(ConflictableTransactionError::Abort(StoreError::Conflict(_))) => {
                            return Ok(false)
                        }
                        Err(e) => return Err(e),
                    };
                    if f.is_complete() {
                        return Ok(false);
                    }
                    for index in 0..f.chunk_count {
                        let mut ck = k.to_vec();
                        ck.extend_from_slice(&index.to_be_bytes());
                        chunks.remove(ck.as_slice())?;
                        lens.remove(ck)?;
                    }
                    files.remove(&k)?;
                    Ok(true)
                });
                if tx_result(r)? {
                    purged += 1;
                }
            }
            s.durable()?;
            Ok(purged)
        })
        .await
    }

    async fn put_session(&self, session: SessionRow, event: Option<EventDraft>) -> StoreResult<()> {
        self.run_write(move |s| {
            let trees = (
                &s.sessions,
                &s.account_sessions,
                &s.accounts,
                &s.events,
                &s.event_heads,
            );
            let r = trees.transaction(|(sessions, index, accounts, log, heads)| {
                sessions.insert(&session.token_hash, to_json(&session))?;
                index.insert(key2(&session.account_id, &session.token_hash), &[])?;
                if let Some(v) = accounts.get(session.account_id.as_bytes())? {
                    let mut a: AccountRow =
                        from_json("accounts", &v).map_err(ConflictableTransactionError::Abort)?;
                    a.last_login_at = Some(session.created_at);
                    accounts.insert(session.account_id.as_bytes(), to_json(&a))?;
                }
                if let Some(e) = &event {
                    append_event_tx(log, heads, e)?;
                }
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn session(&self, token_hash: [u8; 32]) -> StoreResult<Option<SessionRow>> {
        self.run(move |s| s.get_json(&s.sessions, "sessions", &token_hash))
            .await
    }

    async fn delete_session(
        &self,
        token_hash: [u8; 32],
        event: Option<EventDraft>,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let trees = (&s.sessions, &s.account_sessions, &s.events, &s.event_heads);
            let r = trees.transaction(|(sessions, index, log, heads)| {
                if let Some(v) = sessions.remove(&token_hash)? {
                    let row: SessionRow =
                        from_json("sessions", &v).map_err(ConflictableTransactionError::Abort)?;
                    index.remove(key2(&row.account_id, &token_hash))?;
                }
                if let Some(e) = &event {
                    append_event_tx(log, heads, e)?;
                }
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn sessions_of(&self, account_id: Uuid) -> StoreResult<Vec<SessionRow>> {
        self.run(move |s| {
            let mut out = Vec::new();
            for kv in s.account_sessions.scan_prefix(account_id.as_bytes()) {
                let (k, _) = kv?;
                if let Some(v) = s.sessions.get(&k[16..])? {
                    out.push(from_json("sessions", &v)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn touch_session(&self, token_hash: [u8; 32], at: UnixTime) -> StoreResult<()> {
        self.run_write(move |s| {
            // A lost update here only makes "last seen" a little older; no transaction needed.
            if let Some(v) = s.sessions.get(token_hash)? {
                let mut row: SessionRow = from_json("sessions", &v)?;
                row.last_seen = at;
                s.sessions.insert(token_hash, to_json(&row))?;
            }
            Ok(())
        })
        .await
    }

    async fn change_password(
        &self,
        account_id: Uuid,
        password_file: Vec<u8>,
        sealed_key_bundle: SealedBlob,
        keep: [u8; 32],
    ) -> StoreResult<usize> {
        self.run_write(move |s| {
            // The sessions to revoke are read first; a session created meanwhile would need a
            // login with the old password, which the new password file already refuses.
            let others: Vec<Vec<u8>> = s
                .account_sessions
                .scan_prefix(account_id.as_bytes())
                .map(|kv| kv.map(|(k, _)| k.to_vec()))
                .collect::<Result<_, _>>()?;
            let trees = (&s.accounts, &s.sessions, &s.account_sessions);
            let r = trees.transaction(|(accounts, sessions, index)| {
                let mut a: AccountRow = match accounts.get(account_id.as_bytes())? {
                    Some(v) => {
                        from_json("accounts", &v).map_err(ConflictableTransactionError::Abort)?
                    }
                    None => return abort(StoreError::Conflict("no such account".into())),
                };
                a.password_file = password_file.clone();
                a.sealed_key_bundle = sealed_key_bundle.clone();
                accounts.insert(account_id.as_bytes(), to_json(&a))?;
                let mut revoked = 0;
                for k in &others {
                    if k[16..] == keep[..] {
                        continue;
                    }
                    if sessions.remove(&k[16..])?.is_some() {
                        revoked += 1;
                    }
                    index.remove(k.as_slice())?;
                }
                Ok(revoked)
            });
            let revoked = tx_result(r)?;
            s.durable()?;
            Ok(revoked)
        })
        .await
    }

    async fn throttle(&self, key: &str) -> StoreResult<Option<ThrottleRow>> {
        let key = key.to_string();
        self.run(move |s| s.get_json(&s.throttle, "throttle", key.as_bytes()))
            .await
    }

    async fn update_throttle(
        &self,
        key: &str,
        f: Box<dyn Fn(Option<ThrottleRow>) -> Option<ThrottleRow> + Send + Sync>,
    ) -> StoreResult<Option<ThrottleRow>> {
        let key = key.to_string();
        self.run_write(move |s| {
            let r = s.throttle.transaction(|t| {
                let current = match t.get(key.as_bytes())? {
                    Some(v) => Some(
                        from_json("throttle", &v).map_err(ConflictableTransactionError::Abort)?,
                    ),
                    None => None,
                };
                let next = f(current);
                match &next {
                    Some(row) => t.insert(key.as_bytes(), to_json(row))?,
                    None => t.remove(key.as_bytes())?,
                };
                Ok(next)
            });
            tx_result(r)
        })
        .await
    }

    async fn revoke_sessions_of(&self, account_id: Uuid) -> StoreResult<usize> {
        self.run_write(move |s| {
            let mut n = 0;
            for kv in s.account_sessions.scan_prefix(account_id.as_bytes()) {
                let (k, _) = kv?;
                if s.sessions.remove(&k[16..])?.is_some() {
                    n += 1;
                }
                s.account_sessions.remove(k)?;
            }
            s.durable()?;
            Ok(n)
        })
        .await
    }

    async fn create_clinic(
        &self,
        clinic: ClinicRow,
        owner: MemberRow,
        genesis: RosterRow,
        event: EventDraft,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let trees = (
                &s.clinics,
                &s.members,
                &s.account_clinics,
                &s.roster,
                &s.roster_heads,
                &s.events,
                &s.event_heads,
            );
            let r = trees.transaction(|(c, m, ac, roster, heads, log, log_heads)| {
                if c.get(clinic.clinic_id.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict(
                        "clinic".into(),
                    )));
                }
                c.insert(clinic.clinic_id.as_bytes(), to_json(&clinic))?;
                m.insert(
                    key2(&clinic.clinic_id, owner.account_id.as_bytes()),
                    to_json(&owner),
                )?;
                ac.insert(
                    key2(&owner.account_id, clinic.clinic_id.as_bytes()),
                    to_json(&owner.role),
                )?;
                append_roster_tx(roster, heads, &clinic.clinic_id, &genesis)?;
                append_event_tx(log, log_heads, &event)?;
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn clinic(&self, clinic_id: Uuid) -> StoreResult<Option<ClinicRow>> {
        self.run(move |s| s.get_json(&s.clinics, "clinics", clinic_id.as_bytes()))
            .await
    }

    async fn set_clinic_policy(
        &self,
        clinic_id: Uuid,
        policy: ClinicPolicy,
        event: EventDraft,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let r = (&s.clinics, &s.events, &s.event_heads).transaction(|(t, log, heads)| {
                let mut c: ClinicRow = match t.get(clinic_id.as_bytes())? {
                    Some(v) => {
                        from_json("clinics", &v).map_err(ConflictableTransactionError::Abort)?
                    }
                    None => return abort(StoreError::Conflict("no such clinic".into())),
                };
                c.policy = policy.clone();
                t.insert(clinic_id.as_bytes(), to_json(&c))?;
                append_event_tx(log, heads, &event)?;
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn member(&self, clinic_id: Uuid, account_id: Uuid) -> StoreResult<Option<MemberRow>> {
        self.run(move |s| {
            s.get_json(
                &s.members,
                "members",
                &key2(&clinic_id, account_id.as_bytes()),
            )
        })
        .await
    }

    async fn clinics_of(&self, account_id: Uuid) -> StoreResult<Vec<(ClinicRow, MemberRow)>> {
        self.run(move |s| {
            let mut out = Vec::new();
            for kv in s.account_clinics.scan_prefix(account_id.as_bytes()) {
                let (k, _) = kv?;
                let clinic_id = uuid_at(&k, 16)?;
                let clinic: Option<ClinicRow> =
                    s.get_json(&s.clinics, "clinics", clinic_id.as_bytes())?;
                let member: Option<MemberRow> = s.get_json(
                    &s.members,
                    "members",
                    &key2(&clinic_id, account_id.as_bytes()),
                )?;
                if let (Some(c), Some(m)) = (clinic, member) {
                    out.push((c, m));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn members(&self, clinic_id: Uuid) -> StoreResult<Vec<MemberRow>> {
        self.run(move |s| s.scan_json(&s.members, "members", clinic_id.as_bytes()))
            .await
    }

    async fn roster(
        &self,
        clinic_id: Uuid,
        since: u64,
    ) -> StoreResult<(Vec<RosterRow>, Option<RosterHead>)> {
        self.run(move |s| {
            let head = s
                .roster_heads
                .get(clinic_id.as_bytes())?
                .map(|b| decode_head(&b))
                .transpose()?;
            let start = key2(&clinic_id, &since.saturating_add(1).to_be_bytes());
            let end = key2(&clinic_id, &u64::MAX.to_be_bytes());
            let rows = s
                .roster
                .range(start..=end)
                .map(|kv| from_json("roster", &kv?.1))
                .collect::<StoreResult<Vec<RosterRow>>>()?;
            Ok((rows, head))
        })
        .await
    }

    async fn roster_head(&self, clinic_id: Uuid) -> StoreResult<Option<RosterHead>> {
        self.run(move |s| {
            s.roster_heads
                .get(clinic_id.as_bytes())?
                .map(|b| decode_head(&b))
                .transpose()
        })
        .await
    }

    async fn create_invitation(
        &self,
        invitation: InvitationRow,
        event: EventDraft,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let key = key2(&invitation.clinic_id, invitation.invitation_id.as_bytes());
            let r = (&s.invitations, &s.events, &s.event_heads).transaction(
                |(invitations, events, event_heads)| {
                    if invitations.get(&key)?.is_some() {
                        return abort(StoreError::Conflict("invitation".into()));
                    }
                    invitations.insert(key.as_slice(), to_json(&invitation))?;
                    append_event_tx(events, event_heads, &event)?;
                    Ok(())
                },
            );
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn invitation(
        &self,
        clinic_id: Uuid,
        invitation_id: Uuid,
    ) -> StoreResult<Option<InvitationRow>> {
        self.run(move |s| {
            s.get_json(
                &s.invitations,
                "invitations",
                &key2(&clinic_id, invitation_id.as_bytes()),
            )
        })
        .await
    }

    async fn invitations(&self, clinic_id: Uuid) -> StoreResult<Vec<InvitationRow>> {
        self.run(move |s| s.scan_json(&s.invitations, "invitations", clinic_id.as_bytes()))
            .await
    }

    async fn transition_invitation(
        &self,
        from: InvitationStatus,
        next: InvitationRow,
        event: EventDraft,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let key = key2(&next.clinic_id, next.invitation_id.as_bytes());
            let trees = (&s.invitations, &s.events, &s.event_heads);
            let r = trees.transaction(|(t, log, log_heads)| {
                let current: InvitationRow = match t.get(&key)? {
                    Some(v) => {
                        from_json("invitations", &v).map_err(ConflictableTransactionError::Abort)?
                    }
                    None => return abort(StoreError::Conflict("no such invitation".into())),
                };
                if current.status != from {
                    return abort(StoreError::Conflict("the invitation changed".into()));
                }
                t.insert(key.as_slice(), to_json(&next))?;
                append_event_tx(log, log_heads, &event)?;
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn add_member(
        &self,
        clinic_id: Uuid,
        entry: RosterRow,
        member: MemberRow,
        invitation_id: Uuid,
        events: Vec<EventDraft>,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let trees = (
                &s.roster,
                &s.roster_heads,
                &s.members,
                &s.account_clinics,
                &s.invitations,
                &s.events,
                &s.event_heads,
            );
            let r = trees.transaction(
                |(roster, heads, members, ac, invitations, log, log_heads)| {
                    let ikey = key2(&clinic_id, invitation_id.as_bytes());
                    let mut inv: InvitationRow = match invitations.get(&ikey)? {
                        Some(v) => from_json("invitations", &v)
                            .map_err(ConflictableTransactionError::Abort)?,
                        None => return abort(StoreError::Conflict("no such invitation".into())),
                    };
                    if inv.status != InvitationStatus::Accepted {
                        return abort(StoreError::Conflict(
                            "the invitation is not accepted".into(),
                        ));
                    }
                    let mkey = key2(&clinic_id, member.account_id.as_bytes());
                    if members.get(&mkey)?.is_some() {
                        return abort(StoreError::Conflict("member".into()));
                    }
                    append_roster_tx(roster, heads, &clinic_id, &entry)?;
                    members.insert(mkey, to_json(&member))?;
                    ac.insert(
                        key2(&member.account_id, clinic_id.as_bytes()),
                        to_json(&member.role),
                    )?;
                    inv.status = InvitationStatus::Joined;
                    invitations.insert(ikey, to_json(&inv))?;
                    for e in &events {
                        append_event_tx(log, log_heads, e)?;
                    }
                    Ok(())
                },
            );
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn rotate(
        &self,
        clinic_id: Uuid,
        entry: RosterRow,
        change: MemberChange,
        new_keys: Vec<WrappedKey>,
        charts: Vec<ChartRow>,
        events: Vec<EventDraft>,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let trees = (
                &s.roster,
                &s.roster_heads,
                &s.members,
                &s.account_clinics,
                &s.charts,
                &s.events,
                &s.event_heads,
            );
            let r = trees.transaction(|(roster, heads, members, ac, chart_tree, log, log_heads)| {
                append_roster_tx(roster, heads, &clinic_id, &entry)?;
                let load = |account: &Uuid| -> Result<MemberRow, ConflictableTransactionError<StoreError>> {
                    match members.get(key2(&clinic_id, account.as_bytes()))? {
                        Some(v) => from_json("members", &v).map_err(ConflictableTransactionError::Abort),
                        None => abort(StoreError::Conflict("no such member".into())),
                    }
                };
                match &change {
                    MemberChange::Remove(account) => {
                        load(account)?;
                        members.remove(key2(&clinic_id, account.as_bytes()))?;
                        ac.remove(key2(account, clinic_id.as_bytes()))?;
                    }
                    MemberChange::ChangeRole(account, role) => {
                        let mut m = load(account)?;
                        m.role = *role;
                        m.wrapped_keys.retain(|k| role.grants(k.compartment));
                        members.insert(key2(&clinic_id, account.as_bytes()), to_json(&m))?;
                        ac.insert(key2(account, clinic_id.as_bytes()), to_json(role))?;
                    }
                }
                add_wraps_tx(members, &clinic_id, &new_keys)?;
                for c in &charts {
                    chart_tree.insert(key2(&clinic_id, c.chart_id.as_bytes()), to_json(c))?;
                }
                for e in &events {
                    append_event_tx(log, log_heads, e)?;
                }
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn charts(&self, clinic_id: Uuid) -> StoreResult<Vec<ChartRow>> {
        self.run(move |s| s.scan_json(&s.charts, "charts", clinic_id.as_bytes()))
            .await
    }

    async fn restrict_chart(
        &self,
        clinic_id: Uuid,
        chart: ChartRow,
        wraps: Vec<WrappedKey>,
        writes: Vec<RecordWriteRow>,
        now: UnixTime,
        event: EventDraft,
    ) -> StoreResult<Vec<WriteOutcome>> {
        self.run_write(move |s| {
            let trees = (
                &s.charts,
                &s.members,
                &s.records,
                &s.feed,
                &s.versions,
                &s.trash,
                &s.heads,
                &s.events,
                &s.event_heads,
            );
            let r = trees.transaction(
                |(charts, members, records, feed, versions, trash, heads, events, event_heads)| {
                    let ckey = key2(&clinic_id, chart.chart_id.as_bytes());
                    if charts.get(&ckey)?.is_some() {
                        return abort(StoreError::Conflict("restricted chart".into()));
                    }
                    charts.insert(ckey, to_json(&chart))?;
                    add_wraps_tx(members, &clinic_id, &wraps)?;
                    let out = apply_writes_tx(
                        records, feed, versions, trash, heads, &clinic_id, &writes, now,
                    )?;
                    append_event_tx(events, event_heads, &event)?;
                    Ok(out)
                },
            );
            let out = tx_result(r)?;
            s.durable()?;
            Ok(out)
        })
        .await
    }

    async fn update_care_team(
        &self,
        clinic_id: Uuid,
        chart: ChartRow,
        expected_epoch: u32,
        removed: Vec<Uuid>,
        wraps: Vec<WrappedKey>,
        event: EventDraft,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let trees = (&s.charts, &s.members, &s.events, &s.event_heads);
            let r = trees.transaction(|(charts, members, log, log_heads)| {
                let ckey = key2(&clinic_id, chart.chart_id.as_bytes());
                let current: ChartRow = match charts.get(&ckey)? {
                    Some(v) => {
                        from_json("charts", &v).map_err(ConflictableTransactionError::Abort)?
                    }
                    None => return abort(StoreError::Conflict("no such restricted chart".into())),
                };
                if current.key_epoch != expected_epoch {
                    return abort(StoreError::Conflict("the care team changed".into()));
                }
                for r in &removed {
                    let key = key2(&clinic_id, r.as_bytes());
                    if let Some(v) = members.get(&key)? {
                        let mut m: MemberRow = from_json("members", &v)
                            .map_err(ConflictableTransactionError::Abort)?;
                        m.wrapped_keys
                            .retain(|k| k.chart_id != Some(chart.chart_id));
                        members.insert(key, to_json(&m))?;
                    }
                }
                add_wraps_tx(members, &clinic_id, &wraps)?;
                charts.insert(ckey, to_json(&chart))?;
                append_event_tx(log, log_heads, &event)?;
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn erase_chart(
        &self,
        clinic_id: Uuid,
        chart_id: Uuid,
        event: EventDraft,
    ) -> StoreResult<u32> {
        self.run_write_deleting_chunks(move |s| {
            // Sled transactions cannot scan: what the chart holds is listed first, and each
            // record's position re-checked inside the transaction (a write meanwhile aborts).
            let mut records = Vec::new();
            for kv in s.feed.scan_prefix(clinic_id.as_bytes()) {
                let (k, v) = kv?;
                let row = decode_feed_row(be_u64(&k[16..])?, &v)?;
                if row.chart_id == chart_id {
                    let rkey = key2(&clinic_id, row.record_id.as_bytes());
                    let versions: Vec<sled::IVec> = s
                        .versions
                        .scan_prefix(&rkey)
                        .keys()
                        .collect::<Result<_, _>>()?;
                    records.push((row.record_id, row.seq, row.version, versions));
                }
            }
            let member_keys: Vec<sled::IVec> = s
                .members
                .scan_prefix(clinic_id.as_bytes())
                .keys()
                .collect::<Result<_, _>>()?;
            let mut event = event;
            event.count = records.len() as u32;
            let trees = (
                &s.records,
                &s.feed,
                &s.versions,
                &s.trash,
                &s.files,
                &s.file_chunks,
                &s.file_chunk_lens,
                &s.members,
                &s.charts,
                &s.events,
                &s.event_heads,
            );
            let r = trees.transaction(
                |(idx, feed, versions, trash, files, chunks, lens, members, charts, log, heads)| {
                    let ckey = key2(&clinic_id, chart_id.as_bytes());
                    if charts.remove(ckey)?.is_none() {
                        return abort(StoreError::Conflict(erase_conflict::NOT_RESTRICTED.into()));
                    }
                    for (record_id, seq, version, version_keys) in &records {
                        let rkey = key2(&clinic_id, record_id.as_bytes());
                        let mut want = [0u8; 16];
                        want[..8].copy_from_slice(&seq.to_be_bytes());
                        want[8..].copy_from_slice(&version.to_be_bytes());
                        if idx.remove(rkey.as_slice())?.as_deref() != Some(want.as_slice()) {
                            return abort(StoreError::Conflict(
                                erase_conflict::CHART_CHANGED.into(),
                            ));
                        }
                        feed.remove(key2(&clinic_id, &seq.to_be_bytes()))?;
                        for vk in version_keys {
                            versions.remove(vk)?;
                        }
                        trash.remove(rkey.as_slice())?;
                        if let Some(f) = files.remove(rkey.as_slice())? {
                            let f: FileRow = from_json("files", &f)
                                .map_err(ConflictableTransactionError::Abort)?;
                            for index in 0..f.chunk_count {
                                let ck = chunk_key(&clinic_id, record_id, index);
                                chunks.remove(ck.as_slice())?;
                                lens.remove(ck)?;
                            }
                        }
                    }
                    // Every copy of the chart's keys goes: what was sealed under them can no
                    // longer be opened by anyone, wherever a copy of the ciphertext survives.
                    for mk in &member_keys {
                        if let Some(v) = members.get(mk)? {
                            let mut m: MemberRow = from_json("members", &v)
                                .map_err(ConflictableTransactionError::Abort)?;
                            let before = m.wrapped_keys.len();
                            m.wrapped_keys.retain(|k| k.chart_id != Some(chart_id));
                            if m.wrapped_keys.len() != before {
                                members.insert(mk, to_json(&m))?;
                            }
                        }
                    }
                    append_event_tx(log, heads, &event)?;
                    Ok(records.len() as u32)
                },
            );
            let n = tx_result(r)?;
            s.durable()?;
            Ok(n)
        })
        .await
    }

    async fn write_records(
        &self,
        clinic_id: Uuid,
        writes: Vec<RecordWriteRow>,
        now: UnixTime,
        events: Vec<EventDraft>,
    ) -> StoreResult<Vec<WriteOutcome>> {
        self.run_write(move |s| {
            let trees = (
                &s.records,
                &s.feed,
                &s.versions,
                &s.trash,
                &s.heads,
                &s.events,
                &s.event_heads,
                &s.members,
                &s.charts,
                &s.roster_heads,
            );
            let r = trees.transaction(
                |(
                    records,
                    feed,
                    versions,
                    trash,
                    heads,
                    audit,
                    event_heads,
                    members,
                    charts,
                    roster_heads,
                )| {
                    let guards = GuardTrees {
                        members,
                        charts,
                        roster_heads,
                    };
                    check_guards_tx(&guards, &clinic_id, &writes)?;
                    let out = apply_writes_tx(
                        records, feed, versions, trash, heads, &clinic_id, &writes, now,
                    )?;
                    for event in &events {
                        append_event_tx(audit, event_heads, event)?;
                    }
                    Ok(out)
                },
            );
            let out = tx_result(r)?;
            s.durable()?;
            Ok(out)
        })
        .await
    }

    async fn record_versions(
        &self,
        clinic_id: Uuid,
        record_id: Uuid,
    ) -> StoreResult<Vec<RecordRow>> {
        self.run(move |s| {
            s.versions
                .scan_prefix(key2(&clinic_id, record_id.as_bytes()))
                .map(|kv| {
                    let (_, v) = kv?;
                    if v.len() < 8 {
                        return Err(StoreError::Corrupt("versions"));
                    }
                    decode_feed_row(be_u64(&v[..8])?, &v[8..])
                })
                .collect()
        })
        .await
    }

    async fn record(&self, clinic_id: Uuid, record_id: Uuid) -> StoreResult<Option<RecordRow>> {
        self.run(move |s| {
            let Some(idx) = s.records.get(key2(&clinic_id, record_id.as_bytes()))? else {
                return Ok(None);
            };
            let seq = be_u64(idx.get(..8).ok_or(StoreError::Corrupt("records"))?)?;
            match s.feed.get(key2(&clinic_id, &seq.to_be_bytes()))? {
                Some(v) => decode_feed_row(seq, &v).map(Some),
                None => Err(StoreError::Corrupt("feed")),
            }
        })
        .await
    }

    async fn records(
        &self,
        clinic_id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<RecordRow>> {
        self.run(move |s| {
            let start = match after {
                Some(a) => {
                    let mut k = key2(&clinic_id, a.as_bytes());
                    k.push(0); // strictly after `a`
                    k
                }
                None => clinic_id.as_bytes().to_vec(),
            };
            let mut end = clinic_id.as_bytes().to_vec();
            end.extend_from_slice(&[0xff; 17]);
            let mut out = Vec::new();
            for kv in s.records.range(start..end).take(limit) {
                let (_, idx) = kv?;
                let seq = be_u64(idx.get(..8).ok_or(StoreError::Corrupt("records"))?)?;
                let v = s
                    .feed
                    .get(key2(&clinic_id, &seq.to_be_bytes()))?
                    .ok_or(StoreError::Corrupt("feed"))?;
                out.push(decode_feed_row(seq, &v)?);
            }
            Ok(out)
        })
        .await
    }

    async fn changes(
        &self,
        clinic_id: Uuid,
        since: u64,
        limit: usize,
    ) -> StoreResult<(Vec<RecordRow>, u64)> {
        self.run(move |s| {
            let head = match s.heads.get(clinic_id.as_bytes())? {
                Some(b) => be_u64(&b)?,
                None => 0,
            };
            let start = key2(&clinic_id, &since.saturating_add(1).to_be_bytes());
            let end = key2(&clinic_id, &u64::MAX.to_be_bytes());
            let mut out = Vec::with_capacity(limit.min(1024));
            for kv in s.feed.range(start..=end).take(limit) {
                let (k, v) = kv?;
                let seq = be_u64(&k[16..])?;
                out.push(decode_feed_row(seq, &v)?);
            }
            Ok((out, head))
        })
        .await
    }

    fn export_clinic(
        &self,
        clinic_id: Uuid,
        exported_by: Uuid,
        at: UnixTime,
        sink: &mut dyn FnMut(ArchiveItem<'_>) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        use optovault_shared::clinic_export::*;
        let s = &*self.inner;
        let store_err = |e: StoreError| ArchiveError::Store(e.to_string());
        let c = clinic_id.as_bytes();
        let paused = s.gate.write().unwrap_or_else(|p| p.into_inner());
        let clinic: ClinicRow = s
            .get_json(&s.clinics, "clinics", c)
            .map_err(store_err)?
            .ok_or_else(|| ArchiveError::Store("no such clinic".into()))?;
        let head = s
            .heads
            .get(c)
            .map_err(archive_store)?
            .map(|b| be_u64(&b))
            .transpose()
            .map_err(store_err)?
            .unwrap_or(0);
        let members: Vec<MemberRow> = s.scan_json(&s.members, "members", c).map_err(store_err)?;
        // Everyone whose public key a reader needs: members, authors, uploaders, actors.
        let member_ids: std::collections::BTreeSet<Uuid> =
            members.iter().map(|m| m.account_id).collect();
        let mut people = member_ids.clone();
        people.insert(clinic.created_by);

        let profile = serde_json::from_slice(&clinic.profile)
            .map_err(|_| ArchiveError::Store("corrupt clinic profile".into()))?;
        let info = ExportedClinic {
            clinic_id,
            created_at: clinic.created_at,
            created_by: clinic.created_by,
            profile,
            policy: clinic.policy.clone(),
            record_head: head,
            exported_at: at,
            exported_by,
        };
        section(
            "clinic",
            &mut std::iter::once(Ok((c.to_vec(), to_json(&info)))),
            sink,
        )?;
        // Rows under the clinic's prefix of one tree, with the prefix cut off the key.
        let under = |tree: &Tree| {
            tree.scan_prefix(c).map(|kv| {
                kv.map(|(k, v)| (k[16..].to_vec(), v.to_vec()))
                    .map_err(archive_store)
            })
        };
        let decode_current =
            |k: &[u8], v: &[u8]| -> Result<optovault_shared::wire::StoredRecord, ArchiveError> {
                let seq = be_u64(k).map_err(store_err)?;
                stored(decode_feed_row(seq, v).map_err(store_err)?)
            };
        let decode_old = |v: &[u8]| -> Result<optovault_shared::wire::StoredRecord, ArchiveError> {
            let seq = be_u64(
                v.get(..8)
                    .ok_or(StoreError::Corrupt("versions"))
                    .map_err(store_err)?,
            )
            .map_err(store_err)?;
            stored(decode_feed_row(seq, &v[8..]).map_err(store_err)?)
        };
        let files: Vec<FileRow> = s.scan_json(&s.files, "files", c).map_err(store_err)?;
        people.extend(files.iter().map(|f| f.uploaded_by));
        let mut rows = members.into_iter().map(|m| {
            let e = ExportedMember {
                account_id: m.account_id,
                role: m.role,
                added_at: m.added_at,
                wrapped_keys: m.wrapped_keys,
                pinned_anchor: m.pinned_anchor,
            };
            Ok((m.account_id.as_bytes().to_vec(), to_json(&e)))
        });
        section("members", &mut rows, sink)?;
        let mut rows = under(&s.roster).map(|kv| {
            let (k, v) = kv?;
            let row: RosterRow = from_json("roster", &v).map_err(store_err)?;
            Ok((k, to_json(&row.signed)))
        });
        section("roster", &mut rows, sink)?;
        let mut rows = under(&s.charts).map(|kv| {
            let (k, v) = kv?;
            let row: ChartRow = from_json("charts", &v).map_err(store_err)?;
            let e = ExportedChart {
                chart_id: row.chart_id,
                care_team: row.care_team,
                key_epoch: row.key_epoch,
                restricted_by: row.restricted_by,
                restricted_at: row.restricted_at,
            };
            Ok((k, to_json(&e)))
        });
        section("charts", &mut rows, sink)?;
        let key = s.audit_keys.get(c).map_err(archive_store)?;
        let mut rows = key.into_iter().map(|v| Ok((c.to_vec(), v.to_vec())));
        section("audit_key", &mut rows, sink)?;
        let anchor = s.audit_anchors.get(c).map_err(archive_store)?;
        let mut rows = anchor.into_iter().map(|v| {
            let (seq, hash) = decode_event_head(&v).map_err(store_err)?;
            let a = optovault_shared::wire::AuditAnchor {
                seq,
                hash: B64(hash.to_vec()),
            };
            Ok((c.to_vec(), to_json(&a)))
        });
        section("audit_anchor", &mut rows, sink)?;
        let mut rows = under(&s.audit_checkpoints);
        section("audit_checkpoints", &mut rows, sink)?;
        let mut rows = under(&s.events).map(|kv| {
            let (k, v) = kv?;
            let e: AuditEntry = from_json("events", &v).map_err(store_err)?;
            people.extend(e.actor);
            Ok((k, v))
        });
        section("audit", &mut rows, sink)?;
        let mut rows = under(&s.trash).map(|kv| {
            let (k, v) = kv?;
            let deleted_at = be_u64(&v).map_err(store_err)? as i64;
            let record_id = uuid_at(&k, 0).map_err(store_err)?;
            Ok((
                k,
                to_json(&TrashRow {
                    record_id,
                    deleted_at,
                }),
            ))
        });
        section("trash", &mut rows, sink)?;
        let mut file_rows = Vec::new();
        for f in files {
            let received = s.chunk_indices(&clinic_id, &f.file_id).map_err(store_err)?;
            file_rows.push(Ok((
                f.file_id.as_bytes().to_vec(),
                to_json(&f.status(received)),
            )));
        }
        section("files", &mut file_rows.into_iter(), sink)?;
        let mut rows = under(&s.feed).map(|kv| {
            let (k, v) = kv?;
            let r = decode_current(&k, &v)?;
            people.insert(r.envelope.author);
            Ok((k, to_json(&r)))
        });
        section("records", &mut rows, sink)?;
        let mut rows = under(&s.versions).map(|kv| {
            let (k, v) = kv?;
            let r = decode_old(&v)?;
            people.insert(r.envelope.author);
            Ok((k, to_json(&r)))
        });
        section("versions", &mut rows, sink)?;
        // Accounts last but the chunks: everyone the rows above name (members, authors,
        // uploaders, actors), collected while they were written.
        let mut accounts = Vec::new();
        for id in &people {
            if let Some(a) = s
                .get_json::<AccountRow>(&s.accounts, "accounts", id.as_bytes())
                .map_err(store_err)?
            {
                // Current members' recovery kits: what lets them sign in again wherever the
                // export is imported (useless without each member's own recovery key).
                let recovery =
                    a.recovery
                        .filter(|_| member_ids.contains(id))
                        .map(|r| ExportedRecovery {
                            sealed_key_bundle: r.sealed_key_bundle,
                            verifier_hash: B64(r.verifier_hash.to_vec()),
                            created_at: r.created_at,
                        });
                let exported = ExportedAccount {
                    account_id: a.account_id,
                    username: a.username,
                    public_keys: a.public_keys,
                    recovery,
                };
                accounts.push(Ok((id.as_bytes().to_vec(), to_json(&exported))));
            }
        }
        section("accounts", &mut accounts.into_iter(), sink)?;

        let chunk_keys = s
            .file_chunk_lens
            .scan_prefix(c)
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(archive_store)?;
        sink(ArchiveItem::Tree("file_chunks"))?;
        s.copy_listed_chunks(paused, chunk_keys, &mut |k, v| {
            sink(ArchiveItem::Row(&k[16..], v))
        })
    }

    async fn import_rows(&self, clinic_id: Uuid, batch: ImportBatch) -> StoreResult<()> {
        self.run_write(move |s| {
            if s.clinics.contains_key(clinic_id.as_bytes())? {
                return Err(StoreError::Conflict("clinic".into()));
            }
            let mut b = sled::Batch::default();
            let tree = match &batch {
                ImportBatch::Events(entries) => {
                    for e in entries {
                        b.insert(key2(&clinic_id, &e.seq.to_be_bytes()), to_json(e));
                    }
                    &s.events
                }
                ImportBatch::Records(rows) => {
                    let mut index = sled::Batch::default();
                    for r in rows {
                        b.insert(key2(&clinic_id, &r.seq.to_be_bytes()), encode_feed_row(r));
                        let idx = [r.seq.to_be_bytes(), r.version.to_be_bytes()].concat();
                        index.insert(key2(&clinic_id, r.record_id.as_bytes()), idx);
                    }
                    s.records.apply_batch(index)?;
                    &s.feed
                }
                ImportBatch::Versions(rows) => {
                    for r in rows {
                        let mut v = r.seq.to_be_bytes().to_vec();
                        v.extend_from_slice(&encode_feed_row(r));
                        b.insert(version_key(&clinic_id, &r.record_id, r.version), v);
                    }
                    &s.versions
                }
                ImportBatch::Chunks(chunks) => {
                    let mut lens = sled::Batch::default();
                    for (file_id, index, bytes) in chunks {
                        let key = chunk_key(&clinic_id, file_id, *index);
                        lens.insert(key.clone(), &(bytes.len() as u32).to_be_bytes());
                        b.insert(key, bytes.as_slice());
                    }
                    s.file_chunk_lens.apply_batch(lens)?;
                    &s.file_chunks
                }
            };
            tree.apply_batch(b)?;
            // Not flushed here: `finish_import` flushes once before the clinic exists.
            Ok(())
        })
        .await
    }

    async fn finish_import(&self, import: ImportedClinic) -> StoreResult<()> {
        self.run_write(move |s| {
            // Everything an import wrote so far must be on disk before the clinic row is.
            s.durable()?;
            let trees = [
                &s.clinics,
                &s.members,
                &s.account_clinics,
                &s.accounts,
                &s.usernames,
                &s.roster,
                &s.roster_heads,
                &s.charts,
                &s.audit_keys,
                &s.audit_anchors,
                &s.audit_checkpoints,
                &s.trash,
                &s.files,
                &s.heads,
                &s.events,
                &s.event_heads,
            ];
            let im = &import;
            let c = im.clinic.clinic_id;
            let r = trees.as_slice().transaction(|t| {
                let [clinics, members, account_clinics, accounts, usernames, roster, roster_heads, charts, audit_keys, audit_anchors, checkpoints, trash, files, heads, events, event_heads] =
                    &t[..]
                else {
                    unreachable!("sixteen trees")
                };
                if clinics.get(c.as_bytes())?.is_some() {
                    return abort(StoreError::Conflict("clinic".into()));
                }
                for a in &im.accounts {
                    let by_name = usernames.get(a.username.as_bytes())?;
                    match accounts.get(a.account_id.as_bytes())? {
                        Some(v) => {
                            let here: AccountRow = from_json("accounts", &v)
                                .map_err(ConflictableTransactionError::Abort)?;
                            if here.username != a.username || here.public_keys != a.public_keys {
                                return abort(StoreError::Conflict("account".into()));
                            }
                        }
                        None => {
                            if by_name.is_some() {
                                return abort(StoreError::Conflict("username".into()));
                            }
                            usernames.insert(a.username.as_bytes(), a.account_id.as_bytes())?;
                            accounts.insert(a.account_id.as_bytes(), to_json(a))?;
                        }
                    }
                }
                clinics.insert(c.as_bytes(), to_json(&im.clinic))?;
                for m in &im.members {
                    members.insert(key2(&c, m.account_id.as_bytes()), to_json(m))?;
                    account_clinics.insert(key2(&m.account_id, c.as_bytes()), to_json(&m.role))?;
                }
                for r in &im.roster {
                    append_roster_tx(roster, roster_heads, &c, r)?;
                }
                for ch in &im.charts {
                    charts.insert(key2(&c, ch.chart_id.as_bytes()), to_json(ch))?;
                }
                if let Some(k) = &im.audit_key {
                    audit_keys.insert(c.as_bytes(), to_json(k))?;
                }
                if let Some((seq, hash)) = im.audit_anchor {
                    audit_anchors.insert(c.as_bytes(), [&seq.to_be_bytes()[..], &hash].concat())?;
                }
                for cp in &im.checkpoints {
                    checkpoints.insert(key2(&c, &cp.seq.to_be_bytes()), to_json(cp))?;
                }
                for (record_id, at) in &im.trash {
                    trash.insert(key2(&c, record_id.as_bytes()), &at.to_be_bytes())?;
                }
                for f in &im.files {
                    files.insert(key2(&c, f.file_id.as_bytes()), to_json(f))?;
                }
                heads.insert(c.as_bytes(), &im.record_head.to_be_bytes())?;
                let (seq, hash) = im.audit_head;
                if seq > 0 {
                    event_heads.insert(c.as_bytes(), [&seq.to_be_bytes()[..], &hash].concat())?;
                }
                append_event_tx(events, event_heads, &im.event)?;
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn discard_import(&self, clinic_id: Uuid) -> StoreResult<()> {
        self.run_write_deleting_chunks(move |s| {
            let c = clinic_id.as_bytes();
            if s.clinics.contains_key(c)? {
                return Err(StoreError::Conflict("clinic".into()));
            }
            for tree in [
                &s.events,
                &s.records,
                &s.feed,
                &s.versions,
                &s.file_chunks,
                &s.file_chunk_lens,
            ] {
                let mut b = sled::Batch::default();
                for k in tree.scan_prefix(c).keys() {
                    b.remove(k?);
                }
                tree.apply_batch(b)?;
            }
            s.durable()
        })
        .await
    }

    async fn append_event(&self, event: EventDraft, durable: bool) -> StoreResult<u64> {
        self.run_write(move |s| {
            let r = (&s.events, &s.event_heads)
                .transaction(|(events, heads)| append_event_tx(events, heads, &event));
            let seq = tx_result(r)?;
            if durable {
                s.durable()?;
            }
            Ok(seq)
        })
        .await
    }

    async fn audit_entries(
        &self,
        clinic_id: Option<Uuid>,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.run(move |s| {
            let scope = event_scope(clinic_id);
            let start = key2(&scope, &since.saturating_add(1).to_be_bytes());
            let end = key2(&scope, &u64::MAX.to_be_bytes());
            s.events
                .range(start..=end)
                .take(limit)
                .map(|kv| {
                    let (_, v) = kv?;
                    from_json("events", &v)
                })
                .collect()
        })
        .await
    }

    async fn audit_head(&self, clinic_id: Option<Uuid>) -> StoreResult<(u64, [u8; 32])> {
        self.run(
            move |s| match s.event_heads.get(event_scope(clinic_id).as_bytes())? {
                Some(b) => decode_event_head(&b),
                None => Ok((0, GENESIS_HASH)),
            },
        )
        .await
    }

    async fn prune_audit(&self, before: UnixTime, now: UnixTime) -> StoreResult<usize> {
        self.run_write(move |s| {
            let mut pruned = 0;
            for scope in s.event_heads.iter().keys() {
                let scope = uuid_at(&scope?, 0)?;
                // Entries are in time order within a log: take the leading run older than
                // `before` (at most 10,000 per pass, so one pass never holds the store long).
                let mut old = Vec::new();
                for kv in s.events.scan_prefix(scope.as_bytes()).take(10_000) {
                    let (k, v) = kv?;
                    let e: AuditEntry = from_json("events", &v)?;
                    if e.at >= before {
                        break;
                    }
                    old.push((k, e.seq, e.hash.0));
                }
                let Some((_, last_seq, last_hash)) = old.last().cloned() else {
                    continue;
                };
                let clinic_id = (!scope.is_nil()).then_some(scope);
                let r = (
                    &s.events,
                    &s.event_heads,
                    &s.audit_anchors,
                    &s.audit_checkpoints,
                )
                    .transaction(|(events, heads, anchors, cps)| {
                        for (k, _, _) in &old {
                            events.remove(k)?;
                            // A checkpoint over a pruned entry has nothing left to vouch for.
                        }
                        for (_, seq, _) in &old {
                            if let Some(c) = clinic_id {
                                cps.remove(key2(&c, &seq.to_be_bytes()))?;
                            }
                        }
                        let mut anchor = Vec::with_capacity(40);
                        anchor.extend_from_slice(&last_seq.to_be_bytes());
                        anchor.extend_from_slice(&last_hash);
                        anchors.insert(scope.as_bytes(), anchor)?;
                        append_event_tx(
                            events,
                            heads,
                            &EventDraft {
                                at: now,
                                actor: None,
                                clinic_id,
                                action: "audit_pruned",
                                target: None,
                                count: old.len() as u32,
                                outcome: "ok",
                                ip: None,
                                detail: None,
                            },
                        )?;
                        Ok(())
                    });
                tx_result(r)?;
                pruned += old.len();
            }
            if pruned > 0 {
                s.durable()?;
            }
            Ok(pruned)
        })
        .await
    }

    async fn audit_anchor(&self, clinic_id: Option<Uuid>) -> StoreResult<Option<(u64, [u8; 32])>> {
        self.run(move |s| {
            s.audit_anchors
                .get(event_scope(clinic_id).as_bytes())?
                .map(|b| decode_event_head(&b))
                .transpose()
        })
        .await
    }

    async fn audit_logs(&self) -> StoreResult<Vec<Option<Uuid>>> {
        self.run(move |s| {
            s.event_heads
                .iter()
                .keys()
                .map(|k| {
                    let id = uuid_at(&k?, 0)?;
                    Ok((!id.is_nil()).then_some(id))
                })
                .collect()
        })
        .await
    }

    async fn set_audit_key(
        &self,
        clinic_id: Uuid,
        key: AuditKeySetup,
        event: EventDraft,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let r = (&s.audit_keys, &s.events, &s.event_heads).transaction(
                |(keys, events, event_heads)| {
                    if keys.get(clinic_id.as_bytes())?.is_some() {
                        return abort(StoreError::Conflict(
                            audit_conflict::AUDIT_KEY_EXISTS.into(),
                        ));
                    }
                    keys.insert(clinic_id.as_bytes(), to_json(&key))?;
                    append_event_tx(events, event_heads, &event)?;
                    Ok(())
                },
            );
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn share_audit_key(
        &self,
        clinic_id: Uuid,
        wrapped: Vec<WrappedAuditKey>,
        events: Vec<EventDraft>,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let r = (&s.audit_keys, &s.events, &s.event_heads).transaction(|(keys, log, heads)| {
                let mut key: AuditKeySetup = match keys.get(clinic_id.as_bytes())? {
                    Some(v) => {
                        from_json("audit_keys", &v).map_err(ConflictableTransactionError::Abort)?
                    }
                    None => {
                        return abort(StoreError::Conflict(audit_conflict::NO_AUDIT_KEY.into()))
                    }
                };
                for w in &wrapped {
                    if key.wrapped.iter().any(|k| k.recipient == w.recipient) {
                        return abort(StoreError::Conflict(
                            audit_conflict::AUDIT_KEY_SHARED.into(),
                        ));
                    }
                    key.wrapped.push(w.clone());
                }
                keys.insert(clinic_id.as_bytes(), to_json(&key))?;
                for e in &events {
                    append_event_tx(log, heads, e)?;
                }
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn audit_key(&self, clinic_id: Uuid) -> StoreResult<Option<AuditKeySetup>> {
        self.run(move |s| {
            s.audit_keys
                .get(clinic_id.as_bytes())?
                .map(|v| from_json("audit_keys", &v))
                .transpose()
        })
        .await
    }

    async fn add_checkpoint(
        &self,
        clinic_id: Uuid,
        checkpoint: AuditCheckpoint,
        event: EventDraft,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            // The newest checkpoint, read before the transaction (sled transactions cannot
            // range-scan) and re-checked inside it by its key.
            let prefix_end = key2(&clinic_id, &u64::MAX.to_be_bytes());
            let last = s
                .audit_checkpoints
                .range(key2(&clinic_id, &0u64.to_be_bytes())..=prefix_end)
                .next_back()
                .transpose()?
                .map(|(k, _)| be_u64(&k[16..]))
                .transpose()?
                .unwrap_or(0);
            let r = (&s.audit_checkpoints, &s.events, &s.event_heads).transaction(
                |(cps, events, event_heads)| {
                    if checkpoint.seq <= last
                        || cps
                            .get(key2(&clinic_id, &checkpoint.seq.to_be_bytes()))?
                            .is_some()
                    {
                        return abort(StoreError::Conflict(
                            audit_conflict::CHECKPOINT_STALE.into(),
                        ));
                    }
                    let entry: Option<AuditEntry> = events
                        .get(key2(&clinic_id, &checkpoint.seq.to_be_bytes()))?
                        .map(|v| from_json("events", &v))
                        .transpose()
                        .map_err(ConflictableTransactionError::Abort)?;
                    match entry {
                        Some(e) if e.hash == checkpoint.head_hash => {}
                        _ => {
                            return abort(StoreError::Conflict(
                                audit_conflict::CHECKPOINT_MISMATCH.into(),
                            ))
                        }
                    }
                    cps.insert(
                        key2(&clinic_id, &checkpoint.seq.to_be_bytes()),
                        to_json(&checkpoint),
                    )?;
                    append_event_tx(events, event_heads, &event)?;
                    Ok(())
                },
            );
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn checkpoints(&self, clinic_id: Uuid) -> StoreResult<Vec<AuditCheckpoint>> {
        self.run(move |s| {
            s.audit_checkpoints
                .scan_prefix(clinic_id.as_bytes())
                .map(|kv| {
                    let (_, v) = kv?;
                    from_json("audit_checkpoints", &v)
                })
                .collect()
        })
        .await
    }

    async fn create_file(
        &self,
        clinic_id: Uuid,
        file: FileRow,
        guard: WriteGuard,
    ) -> StoreResult<(FileRow, bool)> {
        self.run_write(move |s| {
            let trees = (&s.files, &s.members, &s.charts, &s.roster_heads);
            let r = trees.transaction(|(files, members, charts, roster_heads)| {
                let key = file_key(&clinic_id, &file.file_id);
                if let Some(v) = files.get(&key)? {
                    let existing: FileRow =
                        from_json("files", &v).map_err(ConflictableTransactionError::Abort)?;
                    if existing.same_upload(&file) {
                        return Ok((existing, false));
                    }
                    return file_conflict(file_conflict::EXISTS);
                }
                let g = GuardTrees {
                    members,
                    charts,
                    roster_heads,
                };
                check_guard_tx(&g, &clinic_id, &file.chart_id, &guard, &mut None)?;
                files.insert(key, to_json(&file))?;
                Ok((file.clone(), true))
            });
            let out = tx_result(r)?;
            if out.1 {
                s.durable()?;
            }
            Ok(out)
        })
        .await
    }

    async fn file(&self, clinic_id: Uuid, file_id: Uuid) -> StoreResult<Option<FileRow>> {
        self.run(move |s| s.get_json(&s.files, "files", &file_key(&clinic_id, &file_id)))
            .await
    }

    async fn file_chunk_indices(&self, clinic_id: Uuid, file_id: Uuid) -> StoreResult<Vec<u32>> {
        self.run(move |s| s.chunk_indices(&clinic_id, &file_id))
            .await
    }

    async fn put_file_chunk(
        &self,
        clinic_id: Uuid,
        file_id: Uuid,
        index: u32,
        uploader: Uuid,
        bytes: Vec<u8>,
    ) -> StoreResult<()> {
        self.run_write(move |s| {
            let trees = (&s.files, &s.file_chunks, &s.file_chunk_lens);
            let r = trees.transaction(|(files, chunks, lens)| {
                let f = load_file_tx(files, &file_key(&clinic_id, &file_id))?;
                if f.uploaded_by != uploader {
                    return file_conflict(file_conflict::NOT_UPLOADER);
                }
                if f.is_complete() {
                    return file_conflict(file_conflict::COMPLETE);
                }
                let len = bytes.len() as u64;
                if f.chunk_len(index) != Some(len) {
                    return file_conflict(file_conflict::BAD_CHUNK);
                }
                let key = chunk_key(&clinic_id, &file_id, index);
                chunks.insert(key.as_slice(), bytes.as_slice())?;
                lens.insert(key, &(len as u32).to_be_bytes())?;
                Ok(())
            });
            tx_result(r)?;
            s.durable()
        })
        .await
    }

    async fn file_chunk(
        &self,
        clinic_id: Uuid,
        file_id: Uuid,
        index: u32,
    ) -> StoreResult<Option<Vec<u8>>> {
        self.run(move |s| {
            Ok(s.file_chunks
                .get(chunk_key(&clinic_id, &file_id, index))?
                .map(|v| v.to_vec()))
        })
        .await
    }

    async fn complete_file(
        &self,
        clinic_id: Uuid,
        file_id: Uuid,
        guard: WriteGuard,
        now: UnixTime,
        event: EventDraft,
    ) -> StoreResult<FileRow> {
        self.run_write(move |s| {
            let trees = (
                &s.files,
                &s.file_chunk_lens,
                &s.members,
                &s.charts,
                &s.roster_heads,
                &s.events,
                &s.event_heads,
            );
            let r = trees.transaction(
                |(files, lens, members, charts, roster_heads, events, event_heads)| {
                    let key = file_key(&clinic_id, &file_id);
                    let mut f = load_file_tx(files, &key)?;
                    if f.uploaded_by != guard.author {
                        return file_conflict(file_conflict::NOT_UPLOADER);
                    }
                    if f.is_complete() {
                        return Ok((f, false));
                    }
                    let mut stored = 0u64;
                    for index in 0..f.chunk_count {
                        match lens.get(chunk_key(&clinic_id, &file_id, index))? {
                            Some(b) if b.len() == 4 => {
                                stored += u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                            }
                            Some(_) => return abort(StoreError::Corrupt("file_chunk_lens")),
                            None => return file_conflict(file_conflict::INCOMPLETE),
                        }
                    }
                    if stored != f.total_size {
                        return file_conflict(file_conflict::INCOMPLETE);
                    }
                    let g = GuardTrees {
                        members,
                        charts,
                        roster_heads,
                    };
                    check_guard_tx(&g, &clinic_id, &f.chart_id, &guard, &mut None)?;
                    f.completed_at = Some(now);
                    files.insert(key, to_json(&f))?;
                    append_event_tx(events, event_heads, &event)?;
                    Ok((f, true))
                },
            );
            let (f, changed) = tx_result(r)?;
            if changed {
                s.durable()?;
            }
            Ok(f)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sled_store_passes_the_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SledStore::open(dir.path()).unwrap();
        super::super::suite::run_all(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_write_one_clinic() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SledStore::open(dir.path()).unwrap();
        let other = store.clone();
        super::super::suite::concurrent_writes_through_two_handles(&store, &other).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let clinic = {
            let store = super::SledStore::open(dir.path()).unwrap();
            super::super::suite::seed_for_reopen(&store).await
        };
        // sled's background flusher can hold the directory lock for a moment after the last
        // handle is dropped (seen under load): wait for it, as a restarted server would.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let store = loop {
            match super::SledStore::open(dir.path()) {
                Ok(s) => break s,
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(e.to_string().contains("could not acquire lock"), "{e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("reopen: {e}"),
            }
        };
        super::super::suite::check_after_reopen(&store, clinic).await;
    }
}
