//! Backups an operator can trust because each one is restored and checked before it is kept.
//!
//! * [`archive`]: the file format (header, checksummed zstd blocks).
//! * [`write_backup`]: a consistent snapshot of the live database into one file.
//! * [`verify_backup`]: restores a file into a temporary directory and checks it there: every
//!   tree's row count, every record version (structure and its author's signature), the record
//!   index, and every audit chain with its checkpoints.
//! * [`restore_backup`]: the same, into a data directory an operator names;
//!   [`restore_into_postgres`]: the same checks, then into an empty PostgreSQL database. A backup
//!   of PostgreSQL ([`Source::Postgres`]) is the same file as sled's (`store::pg_archive`).
//! * [`schedule`]: the in-server daily job (backup, verify, copy off-site, keep N daily and M
//!   weekly); [`admin`]: the local socket the `backup` command uses while the server runs.
//!
//! Everything in an archive is what the database holds: ciphertext, wrapped keys, signatures and
//! audit metadata. A copy on someone else's disk reveals no more than the database would.

pub mod admin;
pub mod archive;
pub mod schedule;

use std::fmt;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::audit_verify::{verify_all, LogReport};
use crate::store::{PgStore, RecordsCheck, SledStore};
use archive::{ArchiveError, Header};

/// The database a backup is taken from. The file is the same for both: sled's trees, keys and
/// values (`crate::store::pg_archive` maps PostgreSQL's tables onto them).
#[derive(Clone)]
pub enum Source {
    /// Writes pause while the trees are copied (not the file chunks).
    Sled(SledStore),
    /// One `REPEATABLE READ` snapshot; writes go on.
    Postgres(PgStore),
}

impl From<SledStore> for Source {
    fn from(s: SledStore) -> Self {
        Source::Sled(s)
    }
}

impl From<PgStore> for Source {
    fn from(s: PgStore) -> Self {
        Source::Postgres(s)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("the restored copy does not open: {0}")]
    Store(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a snapshot of `store` to `path` (via `path.partial`, synced, then renamed, so a
/// crash never leaves a half file under the final name). Blocking.
pub fn write_backup(
    store: &Source,
    path: &Path,
    mut progress: impl FnMut(u64),
) -> Result<Header, BackupError> {
    let partial = partial_name(path);
    let file = File::create(&partial).map_err(io(&partial))?;
    let result = (|| {
        let mut w = archive::zstd_writer(
            BufWriter::with_capacity(1 << 20, SyncEvery::new(file)),
            archive::KIND_SERVER,
        )?;
        match store {
            Source::Sled(s) => s.write_snapshot(&mut w, &mut progress)?,
            Source::Postgres(p) => p.write_snapshot(&mut w, &mut progress)?,
        }
        let (header, out) = archive::finish(w)?;
        let file = out
            .into_inner()
            .map_err(|e| BackupError::Io {
                path: partial.clone(),
                source: e.into_error(),
            })?
            .file;
        file.sync_all().map_err(io(&partial))?;
        Ok(header)
    })();
    match result {
        Ok(header) => {
            fs::rename(&partial, path).map_err(io(path))?;
            sync_parent(path);
            Ok(header)
        }
        Err(e) => {
            let _ = fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// A file that is synced every 32 MiB written. Without it, gigabytes of a backup sit in the page
/// cache as dirty pages, and the server's own flush before each acknowledged write waits behind
/// their write-back (seconds, measured by `backup_bench`).
struct SyncEvery {
    file: File,
    unsynced: u64,
}

impl SyncEvery {
    const EVERY: u64 = 32 << 20;
    fn new(file: File) -> Self {
        SyncEvery { file, unsynced: 0 }
    }
}

impl Write for SyncEvery {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= Self::EVERY {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl std::io::Seek for SyncEvery {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

pub(crate) fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Makes a rename durable (best effort: some file systems cannot sync a directory).
pub(crate) fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// What [`verify_backup`] or [`restore_backup`] found.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub file: PathBuf,
    pub file_bytes: u64,
    pub header: Header,
    pub seconds: f64,
    /// Trees whose restored row count differs from the header: (name, header, restored).
    pub count_mismatches: Vec<(String, u64, u64)>,
    pub clinics: u64,
    pub current_records: u64,
    pub history_versions: u64,
    pub file_chunks: u64,
    pub record_problem_count: u64,
    pub record_problems: Vec<String>,
    pub audit_logs: Vec<AuditLogLine>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditLogLine {
    /// None: the account-level log.
    pub clinic_id: Option<uuid::Uuid>,
    pub entries: u64,
    pub checkpoints: u64,
    pub problem: Option<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.count_mismatches.is_empty()
            && self.record_problem_count == 0
            && self.audit_logs.iter().all(|l| l.problem.is_none())
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        let created = time::OffsetDateTime::from_unix_timestamp(h.created_at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| h.created_at.to_string());
        writeln!(f, "backup {}", self.file.display())?;
        writeln!(
            f,
            "  made {created} by server {}, format {}, {}; {} bytes in {} blocks; content SHA-256 {}",
            h.server_version, h.format, h.compression, self.file_bytes, h.blocks, h.content_sha256
        )?;
        writeln!(
            f,
            "  checksums: header and all {} blocks match; restored {} rows into a scratch database",
            h.blocks,
            h.rows()
        )?;
        for t in h.trees.iter().filter(|t| t.rows > 0) {
            writeln!(
                f,
                "    {:<20} {:>10} rows {:>14} bytes",
                t.name, t.rows, t.bytes
            )?;
        }
        if self.count_mismatches.is_empty() {
            writeln!(f, "  row counts: every tree matches the header")?;
        }
        for (name, want, got) in &self.count_mismatches {
            writeln!(
                f,
                "  ROW COUNT MISMATCH in {name}: header {want}, restored {got}"
            )?;
        }
        writeln!(
            f,
            "  records: {} clinics, {} current records, {} earlier versions, {} file chunks; {} problems",
            self.clinics,
            self.current_records,
            self.history_versions,
            self.file_chunks,
            self.record_problem_count
        )?;
        for p in &self.record_problems {
            writeln!(f, "    RECORD PROBLEM: {p}")?;
        }
        for l in &self.audit_logs {
            let log = l
                .clinic_id
                .map(|c| format!("clinic {c}"))
                .unwrap_or_else(|| "account log".into());
            match &l.problem {
                None => writeln!(
                    f,
                    "  audit {log}: {} entries, {} checkpoints: intact",
                    l.entries, l.checkpoints
                )?,
                Some(p) => writeln!(f, "  AUDIT {log}: BROKEN after {} entries: {p}", l.entries)?,
            }
        }
        write!(
            f,
            "{} in {:.1} s",
            if self.ok() {
                "VERIFIED: the backup restores and every check passed"
            } else {
                "FAILED: the backup restores, but see the problems above"
            },
            self.seconds
        )
    }
}

/// Restores `file` into the empty directory `dir` and checks the result there (blocking parts
/// run on the blocking pool). An archive that is damaged fails with the byte offset.
async fn restore_and_check(
    file: &Path,
    dir: &Path,
    progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<VerifyReport, BackupError> {
    let started = Instant::now();
    let file_bytes = fs::metadata(file).map_err(io(file))?.len();
    let kind = archive::read_header(&mut File::open(file).map_err(io(file))?)?.kind;
    if kind != archive::KIND_SERVER {
        return Err(BackupError::Refused(format!(
            "{} is a {kind}, not a server backup (a clinic's export is checked by its owner in \
             the browser)",
            file.display()
        )));
    }
    let (f, d) = (file.to_path_buf(), dir.to_path_buf());
    let (header, store) = tokio::task::spawn_blocking(move || {
        let mut input = BufReader::with_capacity(1 << 20, File::open(&f).map_err(io(&f))?);
        SledStore::restore_archive(&d, &mut input, progress).map_err(BackupError::from)
    })
    .await
    .map_err(|e| BackupError::Store(e.to_string()))??;
    let (counts, records) = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || (s.tree_counts(), s.check_records()))
            .await
            .map_err(|e| BackupError::Store(e.to_string()))?
    };
    let records: RecordsCheck = records.map_err(|e| BackupError::Store(e.to_string()))?;
    let mut count_mismatches = Vec::new();
    for t in &header.trees {
        let got = counts
            .iter()
            .find(|(n, _)| *n == t.name)
            .map(|c| c.1)
            .unwrap_or(0);
        if got != t.rows {
            count_mismatches.push((t.name.clone(), t.rows, got));
        }
    }
    let logs: Vec<LogReport> = verify_all(&store, None, |_| {})
        .await
        .map_err(|e| BackupError::Store(e.to_string()))?;
    store
        .flush()
        .await
        .map_err(|e| BackupError::Store(e.to_string()))?;
    Ok(VerifyReport {
        file: file.to_path_buf(),
        file_bytes,
        header,
        seconds: started.elapsed().as_secs_f64(),
        count_mismatches,
        clinics: records.clinics,
        current_records: records.current,
        history_versions: records.versions,
        file_chunks: records.chunks,
        record_problem_count: records.problem_count,
        record_problems: records.problems,
        audit_logs: logs
            .into_iter()
            .map(|l| AuditLogLine {
                clinic_id: l.clinic_id,
                entries: l.entries,
                checkpoints: l.checkpoints as u64,
                problem: l.problem.map(|p| p.to_string()),
            })
            .collect(),
    })
}

/// Restores a backup into a scratch directory (removed afterwards) and checks it.
pub async fn verify_backup(
    file: &Path,
    progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<VerifyReport, BackupError> {
    let scratch = scratch_beside(file)?;
    restore_and_check(file, &scratch.path().join("db"), progress).await
}

/// A scratch directory for a restore: beside the backup (the disk that holds backups has room for
/// one restored copy; `/tmp` may be a small tmpfs), or the system's temporary directory when the
/// backup's directory cannot be written.
fn scratch_beside(file: &Path) -> Result<tempfile::TempDir, BackupError> {
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix(".optovault-verify-");
        b
    };
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    builder()
        .tempdir_in(parent)
        .or_else(|_| builder().tempdir())
        .map_err(io(&std::env::temp_dir()))
}

/// Restores `file` into `into`. Refuses a non-empty directory unless `replace`; even then the
/// old contents are not deleted but moved aside (`<into>.replaced-<unix time>`), after the new
/// copy has been restored and checked. A backup that fails any check is never put in place.
pub async fn restore_backup(
    file: &Path,
    into: &Path,
    replace: bool,
    progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<(VerifyReport, Option<PathBuf>), BackupError> {
    let occupied = fs::read_dir(into)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if occupied && !replace {
        return Err(BackupError::Refused(format!(
            "{} is not empty; restore into a new directory, or pass --replace to move its \
             contents aside",
            into.display()
        )));
    }
    if occupied {
        // A running server holds sled's lock: opening fails, and nothing is moved.
        SledStore::open(into).map_err(|e| {
            BackupError::Refused(format!(
                "{} is in use or is not a database ({e}); stop its server first",
                into.display()
            ))
        })?;
    }
    let staging = sibling(into, ".restoring");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    let report = match restore_and_check(file, &staging, progress).await {
        Ok(r) if r.ok() => r,
        Ok(r) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(BackupError::Refused(format!(
                "the backup restores but fails its checks; nothing was changed\n{r}"
            )));
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let mut moved = None;
    if into.exists() {
        if occupied {
            let aside = sibling(into, &format!(".replaced-{}", crate::now()));
            fs::rename(into, &aside).map_err(io(into))?;
            moved = Some(aside);
        } else {
            fs::remove_dir(into).map_err(io(into))?;
        }
    }
    fs::rename(&staging, into).map_err(io(into))?;
    sync_parent(into);
    Ok((report, moved))
}

/// Restores `file` into the PostgreSQL database `store` is connected to, which must be empty:
/// the backup is first restored into a scratch sled database beside it and checked there (as
/// [`verify_backup`] does); only a backup that passes every check is then written to
/// PostgreSQL, in one transaction, its row counts compared with the header before it commits.
pub async fn restore_into_postgres(
    file: &Path,
    store: &PgStore,
    progress: impl FnMut(u64, u64) + Clone + Send + 'static,
) -> Result<VerifyReport, BackupError> {
    let report = verify_backup(file, progress.clone()).await?;
    if !report.ok() {
        return Err(BackupError::Refused(format!(
            "the backup restores but fails its checks; nothing was written\n{report}"
        )));
    }
    let (f, s) = (file.to_path_buf(), store.clone());
    tokio::task::spawn_blocking(move || {
        let mut input = BufReader::with_capacity(1 << 20, File::open(&f).map_err(io(&f))?);
        s.restore_archive(&mut input, progress)
            .map_err(BackupError::from)
    })
    .await
    .map_err(|e| BackupError::Store(e.to_string()))??;
    Ok(report)
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Writes `text` to stderr as one line (progress for the command-line tools).
pub fn progress_line(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\r{text:<70}");
    let _ = e.flush();
}
