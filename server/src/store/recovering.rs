//! The store the server runs on: a [`SledStore`] that is reopened after a storage failure.
//!
//! sled 0.34 cannot carry on after a failed disk write (see `classify` in `sled_store.rs`): once
//! its log writer gets an I/O error (disk full, read-only, over quota, failing), every later
//! write and flush of that `Db` fails with the same error, even after the disk has room again,
//! and writes that reached memory but never the disk stay visible to reads. Only opening the
//! database again clears that state, and it drops those unsaved writes.
//!
//! So on the first [`StoreError::Unavailable`] this wrapper stops using the database at once:
//! every call, reads included (they could show the unsaved writes, and reads are audited, which
//! is a write), answers `Unavailable` (HTTP 503 `storage_unavailable`). A background thread waits
//! for the calls in flight to let go of the old database, closes it (releasing its files and
//! lock, so an operator can even unmount and repair the file system underneath), and opens it
//! again, retrying with backoff until that succeeds (it fails while the disk is still full or
//! read-only: sled writes to its files when it opens). Then everything works again, with every
//! acknowledged write, and without a restart of the process. The reopen is sled's crash recovery,
//! the same as after a power cut.
//!
//! It also makes sled's flush durable. On Linux sled 0.34 ends a flush with `sync_file_range`
//! (`write_to_log` in `pagecache/iobuf.rs`), which writes the data but not the file's metadata,
//! and the log is appended to, so a flushed write can still be lost with the file system (power
//! cut, kernel or file system failure) until sled's flusher thread calls `fsync`, every
//! `flush_every_ms`. So after every call that flushes (as the `Store` contract has it: writes are
//! durable before the method returns) this wrapper `fdatasync`s the database file itself.

use std::fs::File;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use optovault_shared::wire::{
    AuditCheckpoint, AuditEntry, AuditKeySetup, ClinicPolicy, InvitationStatus, WrappedAuditKey,
    WrappedKey,
};
use optovault_shared::UnixTime;
use uuid::Uuid;

use super::*;

/// The first and the longest pause between attempts to reopen the database.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// How often a database that still cannot be reopened is reported in the log.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// A [`SledStore`] that closes and reopens itself after a storage failure; see the module docs.
#[derive(Clone)]
pub struct RecoveringStore {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    /// The open database, or `None` while it is being reopened.
    current: RwLock<Option<Arc<Open>>>,
    /// Bumped at every reopen, so a failure seen on an older database does not close a new one.
    generation: AtomicU64,
    recovering: AtomicBool,
}

/// An open database and its file, to `fdatasync`.
struct Open {
    store: SledStore,
    file: File,
}

impl Open {
    fn new(dir: &Path) -> StoreResult<Open> {
        let store = SledStore::open(dir)?;
        let file = File::open(dir.join("db")).map_err(|e| {
            StoreError::Unavailable(format!("open the database file to sync it: {e}"))
        })?;
        Ok(Open { store, file })
    }
}

/// Makes everything written to the database file so far durable, metadata included.
async fn sync(open: &Arc<Open>) -> StoreResult<()> {
    let open = open.clone();
    tokio::task::spawn_blocking(move || open.file.sync_data())
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map_err(|e| StoreError::Unavailable(format!("fdatasync of the database file: {e}")))
}

impl RecoveringStore {
    /// Opens the database in `dir` (failing as [`SledStore::open`] does).
    pub fn open(dir: &Path) -> StoreResult<RecoveringStore> {
        let open = Open::new(dir)?;
        Ok(RecoveringStore {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                current: RwLock::new(Some(Arc::new(open))),
                generation: AtomicU64::new(0),
                recovering: AtomicBool::new(false),
            }),
        })
    }

    /// Runs `f` on the database as it is now (holding a clone of it delays a reopen).
    pub fn with_current<T>(&self, f: impl FnOnce(&SledStore) -> T) -> StoreResult<T> {
        self.handle().map(|(_, open)| f(&open.store))
    }

    /// Whether the database is closed for reopening after a storage failure.
    pub fn is_recovering(&self) -> bool {
        self.shared.recovering.load(Ordering::SeqCst)
    }

    /// Flushes everything to disk (on shutdown).
    pub async fn flush(&self) -> StoreResult<()> {
        let (generation, open) = self.handle()?;
        let r = match open.store.flush().await {
            Ok(()) => sync(&open).await,
            Err(e) => Err(e),
        };
        drop(open);
        self.watch(generation, r)
    }

    fn handle(&self) -> StoreResult<(u64, Arc<Open>)> {
        let current = self
            .shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some(s) => Ok((self.shared.generation.load(Ordering::SeqCst), s.clone())),
            None => Err(StoreError::Unavailable(
                "the database is closed for reopening after a storage failure".into(),
            )),
        }
    }

    /// Passes `r` on; if it is a storage failure of the database of `generation`, starts the
    /// recovery (once).
    fn watch<T>(&self, generation: u64, r: StoreResult<T>) -> StoreResult<T> {
        if let Err(StoreError::Unavailable(cause)) = &r {
            self.fail(generation, cause);
        }
        r
    }

    fn fail(&self, generation: u64, cause: &str) {
        let old = {
            let mut current = self
                .shared
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if current.is_none() || self.shared.generation.load(Ordering::SeqCst) != generation {
                return; // closed already, or reopened since that call started
            }
            self.shared.recovering.store(true, Ordering::SeqCst);
            current.take()
        };
        tracing::error!(
            %cause,
            dir = %self.shared.dir.display(),
            "STORAGE FAILURE: a write to the database failed (disk full or read-only?). Every \
             request now gets 503 storage_unavailable; writes not yet acknowledged are dropped. \
             The database will be reopened as soon as the disk can be written again."
        );
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("store-recovery".into())
            .spawn(move || shared.recover(old));
        if let Err(e) = spawned {
            // Without the thread nothing would ever reopen the database: let a supervisor
            // restart the process instead (a restart reopens it).
            tracing::error!(error = %e, "cannot start the store recovery thread; exiting");
            std::process::exit(1);
        }
    }
}

impl Shared {
    fn recover(&self, old: Option<Arc<Open>>) {
        let started = Instant::now();
        if let Some(mut old) = old {
            // Calls in flight hold the old database; each ends promptly (a failed database fails
            // fast). It must be closed before it can be opened again (sled locks its file).
            let mut warned = false;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(open) => {
                        // sled skips its final flush once it has failed; never let a panic in a
                        // destructor take the recovery down.
                        if catch_unwind(AssertUnwindSafe(move || drop(open))).is_err() {
                            tracing::warn!("closing the failed database panicked; going on");
                        }
                        break;
                    }
                    Err(still_shared) => {
                        old = still_shared;
                        if !warned && started.elapsed() > Duration::from_secs(10) {
                            tracing::warn!(
                                "requests in flight still hold the failed database after 10 s; \
                                 waiting for them before reopening it"
                            );
                            warned = true;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        let mut pause = FIRST_RETRY;
        let mut reported = None::<Instant>;
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            let opened = if self.dir.join("db").is_file() {
                catch_unwind(AssertUnwindSafe(|| Open::new(&self.dir)))
            } else {
                // sled would create an empty database here (say the file system holding the data
                // is unmounted for repair): wait for the real one to be back instead.
                Ok(Err(StoreError::Unavailable(
                    "the data directory holds no database now (unmounted?); not creating an \
                     empty one"
                        .into(),
                )))
            };
            match opened {
                Ok(Ok(open)) => {
                    let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                    self.generation.fetch_add(1, Ordering::SeqCst);
                    *current = Some(Arc::new(open));
                    self.recovering.store(false, Ordering::SeqCst);
                    drop(current);
                    tracing::warn!(
                        after_ms = started.elapsed().as_millis() as u64,
                        attempts,
                        "STORAGE RECOVERED: the database was reopened; requests are served again"
                    );
                    return;
                }
                Ok(Err(e)) => {
                    if reported.map_or(true, |at| at.elapsed() >= REPORT_EVERY) {
                        tracing::error!(
                            error = %e,
                            dir = %self.dir.display(),
                            attempts,
                            "the database cannot be reopened yet (free some space, or make the \
                             file system writable); still answering 503 and retrying"
                        );
                        reported = Some(Instant::now());
                    }
                }
                Err(_) => tracing::error!("reopening the database panicked; retrying"),
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(MAX_RETRY);
        }
    }
}

/// Implements [`Store`] by passing each call to the current database and watching its result;
/// after the calls that flush (`durable`), it syncs the database file too.
macro_rules! delegate {
    (
        durable {
            $(async fn $dname:ident(&self $(, $darg:ident: $dty:ty)* $(,)?) -> $dret:ty;)*
        }
        other {
            $(async fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;)*
        }
    ) => {
        #[async_trait]
        impl Store for RecoveringStore {
            $(
                async fn $dname(&self $(, $darg: $dty)*) -> $dret {
                    let (generation, open) = self.handle()?;
                    let r = match open.store.$dname($($darg),*).await {
                        Ok(v) => sync(&open).await.map(|()| v),
                        Err(e) => Err(e),
                    };
                    drop(open);
                    self.watch(generation, r)
                }
            )*
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    let (generation, open) = self.handle()?;
                    let r = open.store.$name($($arg),*).await;
                    drop(open);
                    self.watch(generation, r)
                }
            )*
            fn export_clinic(
                &self,
                clinic_id: Uuid,
                exported_by: Uuid,
                at: UnixTime,
                sink: &mut dyn FnMut(ArchiveItem<'_>) -> Result<(), ArchiveError>,
            ) -> Result<(), ArchiveError> {
                let (_, open) = self.handle().map_err(|e| ArchiveError::Store(e.to_string()))?;
                open.store.export_clinic(clinic_id, exported_by, at, sink)
            }
            async fn append_event(&self, event: EventDraft, durable: bool) -> StoreResult<u64> {
                let (generation, open) = self.handle()?;
                let r = match open.store.append_event(event, durable).await {
                    Ok(v) if durable => sync(&open).await.map(|()| v),
                    r => r,
                };
                drop(open);
                self.watch(generation, r)
            }
        }
    };
}

delegate! {
    // The calls that flush before they return (`SledStore` calls `durable()` in them).
    durable {
        async fn server_setup_or_init(&self, fresh: Vec<u8>) -> StoreResult<Vec<u8>>;
        async fn create_account(
            &self,
            account: AccountRow,
            event: Option<EventDraft>,
        ) -> StoreResult<()>;
        async fn update_account(
            &self,
            account_id: Uuid,
            f: Box<dyn for<'r> Fn(&'r mut AccountRow) -> StoreResult<()> + Send + Sync>,
            event: Option<EventDraft>,
        ) -> StoreResult<AccountRow>;
        async fn purge_expired(&self, now: UnixTime) -> StoreResult<usize>;
        async fn purge_trash(&self, now: UnixTime) -> StoreResult<usize>;
        async fn put_session(
            &self,
            session: SessionRow,
            event: Option<EventDraft>,
        ) -> StoreResult<()>;
        async fn delete_session(
            &self,
            token_hash: [u8; 32],
            event: Option<EventDraft>,
        ) -> StoreResult<()>;
        async fn create_clinic(
            &self,
            clinic: ClinicRow,
            owner: MemberRow,
            genesis: RosterRow,
            event: EventDraft,
        ) -> StoreResult<()>;
        async fn create_invitation(
            &self,
            invitation: InvitationRow,
            event: EventDraft,
        ) -> StoreResult<()>;
        async fn transition_invitation(
            &self,
            from: InvitationStatus,
            next: InvitationRow,
            event: EventDraft,
        ) -> StoreResult<()>;
        async fn add_member(
            &self,
            clinic_id: Uuid,
            entry: RosterRow,
            member: MemberRow,
            invitation_id: Uuid,
            events: Vec<EventDraft>,
        ) -> StoreResult<()>;
        async fn rotate(
            &self,
            clinic_id: Uuid,
            entry: RosterRow,
            change: MemberChange,
            new_keys: Vec<WrappedKey>,
            charts: Vec<ChartRow>,
            events: Vec<EventDraft>,
        ) -> StoreResult<()>;
        async fn restrict_chart(
            &self,
            clinic_id: Uuid,
            chart: ChartRow,
            wraps: Vec<WrappedKey>,
            writes: Vec<RecordWriteRow>,
            now: UnixTime,
            event: EventDraft,
        ) -> StoreResult<Vec<WriteOutcome>>;
        async fn update_care_team(
            &self,
            clinic_id: Uuid,
            chart: ChartRow,
            expected_epoch: u32,
            removed: Vec<Uuid>,
            wraps: Vec<WrappedKey>,
            event: EventDraft,
        ) -> StoreResult<()>;
        async fn erase_chart(
            &self,
            clinic_id: Uuid,
            chart_id: Uuid,
            event: EventDraft,
        ) -> StoreResult<u32>;
        async fn finish_import(&self, import: ImportedClinic) -> StoreResult<()>;
        async fn discard_import(&self, clinic_id: Uuid) -> StoreResult<()>;
        async fn change_password(
            &self,
            account_id: Uuid,
            password_file: Vec<u8>,
            sealed_key_bundle: SealedBlob,
            keep: [u8; 32],
        ) -> StoreResult<usize>;
        async fn revoke_sessions_of(&self, account_id: Uuid) -> StoreResult<usize>;
        async fn set_clinic_policy(
            &self,
            clinic_id: Uuid,
            policy: ClinicPolicy,
            event: EventDraft,
        ) -> StoreResult<()>;
        async fn write_records(
            &self,
            clinic_id: Uuid,
            writes: Vec<RecordWriteRow>,
            now: UnixTime,
            events: Vec<EventDraft>,
        ) -> StoreResult<Vec<WriteOutcome>>;
        async fn prune_audit(&self, before: UnixTime, now: UnixTime) -> StoreResult<usize>;
        async fn set_audit_key(
            &self,
            clinic_id: Uuid,
            key: AuditKeySetup,
            event: EventDraft,
        ) -> StoreResult<()>;
        async fn share_audit_key(
            &self,
            clinic_id: Uuid,
            wrapped: Vec<WrappedAuditKey>,
            events: Vec<EventDraft>,
        ) -> StoreResult<()>;
        async fn add_checkpoint(
            &self,
            clinic_id: Uuid,
            checkpoint: AuditCheckpoint,
            event: EventDraft,
        ) -> StoreResult<()>;
        async fn create_file(
            &self,
            clinic_id: Uuid,
            file: FileRow,
            guard: WriteGuard,
        ) -> StoreResult<(FileRow, bool)>;
        async fn put_file_chunk(
            &self,
            clinic_id: Uuid,
            file_id: Uuid,
            index: u32,
            uploader: Uuid,
            bytes: Vec<u8>,
        ) -> StoreResult<()>;
        async fn complete_file(
            &self,
            clinic_id: Uuid,
            file_id: Uuid,
            guard: WriteGuard,
            now: UnixTime,
            event: EventDraft,
        ) -> StoreResult<FileRow>;
    }
    // Reads, and writes that are not flushed (login attempts, throttling, session last-seen).
    other {
        async fn import_rows(&self, clinic_id: Uuid, batch: ImportBatch) -> StoreResult<()>;
        async fn account(&self, account_id: Uuid) -> StoreResult<Option<AccountRow>>;
        async fn account_by_username(&self, username: &str) -> StoreResult<Option<AccountRow>>;
        async fn put_login_attempt(&self, attempt: LoginAttempt) -> StoreResult<()>;
        async fn take_login_attempt(&self, login_id: Uuid) -> StoreResult<Option<LoginAttempt>>;
        async fn trash(&self, clinic_id: Uuid) -> StoreResult<Vec<(Uuid, UnixTime)>>;
        async fn session(&self, token_hash: [u8; 32]) -> StoreResult<Option<SessionRow>>;
        async fn members(&self, clinic_id: Uuid) -> StoreResult<Vec<MemberRow>>;
        async fn roster(
            &self,
            clinic_id: Uuid,
            since: u64,
        ) -> StoreResult<(Vec<RosterRow>, Option<RosterHead>)>;
        async fn roster_head(&self, clinic_id: Uuid) -> StoreResult<Option<RosterHead>>;
        async fn invitation(
            &self,
            clinic_id: Uuid,
            invitation_id: Uuid,
        ) -> StoreResult<Option<InvitationRow>>;
        async fn invitations(&self, clinic_id: Uuid) -> StoreResult<Vec<InvitationRow>>;
        async fn charts(&self, clinic_id: Uuid) -> StoreResult<Vec<ChartRow>>;
        async fn sessions_of(&self, account_id: Uuid) -> StoreResult<Vec<SessionRow>>;
        async fn touch_session(&self, token_hash: [u8; 32], at: UnixTime) -> StoreResult<()>;
        async fn throttle(&self, key: &str) -> StoreResult<Option<ThrottleRow>>;
        async fn update_throttle(
            &self,
            key: &str,
            f: Box<dyn Fn(Option<ThrottleRow>) -> Option<ThrottleRow> + Send + Sync>,
        ) -> StoreResult<Option<ThrottleRow>>;
        async fn clinic(&self, clinic_id: Uuid) -> StoreResult<Option<ClinicRow>>;
        async fn member(&self, clinic_id: Uuid, account_id: Uuid) -> StoreResult<Option<MemberRow>>;
        async fn clinics_of(&self, account_id: Uuid) -> StoreResult<Vec<(ClinicRow, MemberRow)>>;
        async fn record(&self, clinic_id: Uuid, record_id: Uuid) -> StoreResult<Option<RecordRow>>;
        async fn record_versions(
            &self,
            clinic_id: Uuid,
            record_id: Uuid,
        ) -> StoreResult<Vec<RecordRow>>;
        async fn records(
            &self,
            clinic_id: Uuid,
            after: Option<Uuid>,
            limit: usize,
        ) -> StoreResult<Vec<RecordRow>>;
        async fn changes(
            &self,
            clinic_id: Uuid,
            since: u64,
            limit: usize,
        ) -> StoreResult<(Vec<RecordRow>, u64)>;
        async fn audit_entries(
            &self,
            clinic_id: Option<Uuid>,
            since: u64,
            limit: usize,
        ) -> StoreResult<Vec<AuditEntry>>;
        async fn audit_head(&self, clinic_id: Option<Uuid>) -> StoreResult<(u64, [u8; 32])>;
        async fn audit_anchor(
            &self,
            clinic_id: Option<Uuid>,
        ) -> StoreResult<Option<(u64, [u8; 32])>>;
        async fn audit_logs(&self) -> StoreResult<Vec<Option<Uuid>>>;
        async fn audit_key(&self, clinic_id: Uuid) -> StoreResult<Option<AuditKeySetup>>;
        async fn checkpoints(&self, clinic_id: Uuid) -> StoreResult<Vec<AuditCheckpoint>>;
        async fn file(&self, clinic_id: Uuid, file_id: Uuid) -> StoreResult<Option<FileRow>>;
        async fn file_chunk_indices(&self, clinic_id: Uuid, file_id: Uuid) -> StoreResult<Vec<u32>>;
        async fn file_chunk(
            &self,
            clinic_id: Uuid,
            file_id: Uuid,
            index: u32,
        ) -> StoreResult<Option<Vec<u8>>>;
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recovering_store_passes_the_store_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::RecoveringStore::open(dir.path()).unwrap();
        super::super::suite::run_all(&store).await;
        assert!(!store.is_recovering());
    }
}
