//! The in-server backup job (off unless `--backup-dir` is given): every interval it snapshots the
//! database, restores the snapshot into a scratch directory and checks it, keeps it only if every
//! check passed, copies it to each second location, prunes old backups (N daily, M weekly), and
//! records the outcome in the server's audit log and on `/api/health`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::{verify_backup, write_backup, BackupError, Source, VerifyReport};
use crate::store::{EventDraft, Store};

/// Where verified backups are copied. A directory (which may be a mounted remote disk) today;
/// an S3-compatible object store implements the same four calls.
#[async_trait]
pub trait BackupDestination: Send + Sync {
    /// For logs: where this is.
    fn describe(&self) -> String;
    /// Stores the file at `local` under `name`, completely or not at all.
    async fn put(&self, local: &Path, name: &str) -> std::io::Result<()>;
    /// Names of the backups stored here.
    async fn list(&self) -> std::io::Result<Vec<String>>;
    async fn remove(&self, name: &str) -> std::io::Result<()>;
}

/// A directory as a destination: each copy is written under a temporary name, synced, then
/// renamed, so the directory never holds a partial backup under a backup's name.
pub struct DirectoryDestination {
    pub dir: PathBuf,
}

#[async_trait]
impl BackupDestination for DirectoryDestination {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
    async fn put(&self, local: &Path, name: &str) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let target = self.dir.join(name);
        let partial = super::partial_name(&target);
        tokio::fs::copy(local, &partial).await?;
        tokio::fs::File::open(&partial).await?.sync_all().await?;
        tokio::fs::rename(&partial, &target).await?;
        super::sync_parent(&target);
        Ok(())
    }
    async fn list(&self) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut dir = match tokio::fs::read_dir(&self.dir).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        while let Some(e) = dir.next_entry().await? {
            if let Some(n) = e.file_name().to_str() {
                out.push(n.to_string());
            }
        }
        Ok(out)
    }
    async fn remove(&self, name: &str) -> std::io::Result<()> {
        tokio::fs::remove_file(self.dir.join(name)).await
    }
}

pub struct ScheduleConfig {
    /// Where backups are written and verified, and the first place they are kept.
    pub dir: PathBuf,
    pub every: Duration,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub destinations: Vec<Box<dyn BackupDestination>>,
}

/// What `/api/health` and the owners' security checklist show.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BackupStatus {
    pub scheduled: bool,
    /// When the last backup was made that passed verification and reached every destination.
    pub last_success_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    /// `verified`, or what failed: `backup_failed`, `verify_failed`, `copy_failed`.
    pub last_outcome: Option<&'static str>,
}

pub type SharedBackupStatus = Arc<Mutex<BackupStatus>>;

const PREFIX: &str = "optovault-";
const SUFFIX: &str = ".ovbk";
const NAME_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// `optovault-20261127T013000Z.ovbk` for that UTC time.
pub fn file_name(at: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(at).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{PREFIX}{}{SUFFIX}",
        t.format(NAME_FORMAT).expect("UTC time formats")
    )
}

/// The time in a backup's file name; `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<time::OffsetDateTime> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    time::PrimitiveDateTime::parse(stamp, NAME_FORMAT)
        .ok()
        .map(|t| t.assume_utc())
}

/// Which backups to keep: the newest of each of the last `daily` days that have one, the newest
/// of each of the last `weekly` ISO weeks that have one, and always the newest of all. Other
/// names are ignored (never deleted).
pub fn to_keep(names: &[String], daily: u32, weekly: u32) -> BTreeSet<String> {
    let mut dated: Vec<(time::OffsetDateTime, &String)> = names
        .iter()
        .filter_map(|n| parse_file_name(n).map(|t| (t, n)))
        .collect();
    dated.sort_by_key(|d| std::cmp::Reverse(d.0));
    let mut keep = BTreeSet::new();
    if let Some((_, newest)) = dated.first() {
        keep.insert((*newest).clone());
    }
    let mut days = BTreeSet::new();
    let mut weeks = BTreeSet::new();
    for (t, n) in &dated {
        if days.len() < daily as usize && days.insert(t.date()) {
            keep.insert((*n).clone());
        }
        let (year, week, _) = t.date().to_iso_week_date();
        if weeks.len() < weekly as usize && weeks.insert((year, week)) {
            keep.insert((*n).clone());
        }
    }
    keep
}

/// The newest backup in `dir` by its name (only verified backups get a backup's name).
pub fn newest_in(dir: &Path) -> Option<i64> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str().and_then(parse_file_name))
        .map(|t| t.unix_timestamp())
        .max()
}

/// Starts the job. The first backup runs at once unless the newest kept one is younger than the
/// interval.
///
/// `current` gives the database to back up at each run: for sled the one open now (after a
/// storage failure it is reopened, and a handle kept across runs would hold the old one and its
/// lock open); for PostgreSQL the pool.
pub fn spawn(
    config: ScheduleConfig,
    current: impl Fn() -> Result<Source, String> + Send + 'static,
    log: Arc<dyn Store>,
    status: SharedBackupStatus,
) {
    let newest = newest_in(&config.dir);
    {
        let mut s = status.lock().unwrap();
        s.scheduled = true;
        s.last_success_at = newest;
    }
    tokio::spawn(async move {
        let every = config.every.as_secs() as i64;
        let mut wait = match newest {
            Some(t) if crate::now() - t < every => (t + every - crate::now()).max(0),
            _ => 0,
        };
        loop {
            tokio::time::sleep(Duration::from_secs(wait as u64)).await;
            let ok = match current() {
                Ok(current) => run_once(&config, &current, &*log, &status).await,
                Err(e) => {
                    tracing::error!(error = %e, "BACKUP SKIPPED: the database is unavailable");
                    false
                }
            };
            // A failed run is tried again within the hour.
            wait = if ok { every } else { every.min(3600) };
        }
    });
}

/// One scheduled run; true if the backup was verified and reached every destination.
pub async fn run_once(
    config: &ScheduleConfig,
    store: &Source,
    log: &dyn Store,
    status: &SharedBackupStatus,
) -> bool {
    let started = crate::now();
    status.lock().unwrap().last_attempt_at = Some(started);
    let (outcome, records) = match make_and_verify(config, store, started).await {
        Err((stage, e)) => {
            tracing::error!(stage, error = %e, dir = %config.dir.display(),
                "BACKUP FAILED: no new verified backup was made; the previous ones are kept");
            (stage, 0)
        }
        Ok((name, report)) => {
            let path = config.dir.join(&name);
            let mut copied = true;
            for d in &config.destinations {
                if let Err(e) = d.put(&path, &name).await {
                    copied = false;
                    tracing::error!(destination = %d.describe(), error = %e,
                        "BACKUP COPY FAILED: the verified backup did not reach its second location");
                }
            }
            prune(config).await;
            tracing::info!(file = %path.display(), bytes = report.file_bytes,
                records = report.current_records, seconds = report.seconds,
                copies = config.destinations.len(), "backup verified");
            (
                if copied { "verified" } else { "copy_failed" },
                report.current_records,
            )
        }
    };
    let ok = outcome == "verified";
    {
        let mut s = status.lock().unwrap();
        s.last_outcome = Some(outcome);
        if ok {
            s.last_success_at = Some(started);
        }
    }
    let event = EventDraft {
        at: crate::now(),
        actor: None,
        clinic_id: None,
        action: if ok {
            "backup_verified"
        } else {
            "backup_failed"
        },
        target: None,
        count: u32::try_from(records).unwrap_or(u32::MAX),
        outcome: if ok { "ok" } else { outcome },
        ip: None,
        detail: None,
    };
    if let Err(e) = log.append_event(event, true).await {
        tracing::error!(error = %e, "the backup's audit entry could not be written");
    }
    ok
}

type Failure = (&'static str, BackupError);

async fn make_and_verify(
    config: &ScheduleConfig,
    store: &Source,
    at: i64,
) -> Result<(String, VerifyReport), Failure> {
    std::fs::create_dir_all(&config.dir)
        .map_err(|e| ("backup_failed", super::io(&config.dir)(e)))?;
    let name = file_name(at);
    let unverified = config.dir.join(format!("{name}.unverified"));
    {
        let (s, p) = (store.clone(), unverified.clone());
        tokio::task::spawn_blocking(move || write_backup(&s, &p, |_| {}))
            .await
            .map_err(|e| ("backup_failed", BackupError::Store(e.to_string())))?
            .map_err(|e| ("backup_failed", e))?;
    }
    let report = verify_backup(&unverified, |_, _| {}).await;
    let report = match report {
        Ok(r) if r.ok() => r,
        other => {
            // Kept for inspection under a name retention never matches; the last one only.
            let failed = config.dir.join(format!("{name}.failed"));
            for old in std::fs::read_dir(&config.dir)
                .into_iter()
                .flatten()
                .flatten()
            {
                if old.file_name().to_string_lossy().ends_with(".failed") {
                    let _ = std::fs::remove_file(old.path());
                }
            }
            let _ = std::fs::rename(&unverified, &failed);
            return Err(match other {
                Ok(r) => ("verify_failed", BackupError::Refused(r.to_string())),
                Err(e) => ("verify_failed", e),
            });
        }
    };
    let path = config.dir.join(&name);
    std::fs::rename(&unverified, &path).map_err(|e| ("backup_failed", super::io(&path)(e)))?;
    super::sync_parent(&path);
    Ok((name, report))
}

/// Applies retention to the backup directory and every destination.
async fn prune(config: &ScheduleConfig) {
    let local = DirectoryDestination {
        dir: config.dir.clone(),
    };
    let places: Vec<&dyn BackupDestination> = std::iter::once(&local as &dyn BackupDestination)
        .chain(config.destinations.iter().map(|d| d.as_ref()))
        .collect();
    for place in places {
        let names = match place.list().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(place = %place.describe(), error = %e, "cannot list backups");
                continue;
            }
        };
        let keep = to_keep(&names, config.keep_daily, config.keep_weekly);
        for n in names
            .iter()
            .filter(|n| parse_file_name(n).is_some() && !keep.contains(*n))
        {
            match place.remove(n).await {
                Ok(()) => {
                    tracing::info!(place = %place.describe(), file = %n, "old backup removed")
                }
                Err(e) => tracing::warn!(place = %place.describe(), file = %n, error = %e,
                    "cannot remove an old backup"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        time::PrimitiveDateTime::parse(s, NAME_FORMAT)
            .unwrap()
            .assume_utc()
            .unix_timestamp()
    }

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        let t = at("20261127T013000Z");
        assert_eq!(file_name(t), "optovault-20261127T013000Z.ovbk");
        assert_eq!(parse_file_name(&file_name(t)).unwrap().unix_timestamp(), t);
        for other in [
            "optovault-20261127T013000Z.ovbk.partial",
            "optovault-20261127T013000Z.ovbk.unverified",
            "notes.txt",
            "optovault-2026.ovbk",
        ] {
            assert!(parse_file_name(other).is_none(), "{other}");
        }
    }

    #[test]
    fn retention_keeps_n_daily_and_m_weekly() {
        // Two backups a day for 60 days, ending Friday 2026-11-27.
        let end = at("20261127T220000Z");
        let mut names: Vec<String> = (0..120).map(|i| file_name(end - i * 12 * 3600)).collect();
        names.push("unrelated.txt".into());
        let keep = to_keep(&names, 7, 4);
        // 7 daily (the newest of Nov 21..27) + the newest of 4 ISO weeks (Nov 27, 22, 15, 8), of
        // which the first two are daily ones too: 7 + 2.
        assert_eq!(keep.len(), 9, "{keep:?}");
        assert!(keep.contains(&file_name(end)));
        assert!(keep.contains(&file_name(end - 6 * 86400)), "seventh day");
        assert!(
            !keep.contains(&file_name(end - 7 * 86400)),
            "eighth day is not daily"
        );
        // Sunday 2026-11-22 22:00 is the newest of the previous ISO week.
        assert!(keep.contains(&file_name(at("20261122T220000Z"))));
        assert!(
            keep.contains(&file_name(at("20261108T220000Z"))),
            "fourth week"
        );
        assert!(
            !keep.contains(&file_name(at("20261101T220000Z"))),
            "fifth week"
        );
        assert!(!keep.contains("unrelated.txt"));
        // Nothing configured still keeps the newest.
        assert_eq!(to_keep(&names, 0, 0).len(), 1);
    }
}
