//! Command-line flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(
    name = "optovault-server",
    version,
    about = "OptoVault zero-knowledge records server"
)]
pub struct Config {
    /// Without a command, the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "OPTOVAULT_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Directory of the embedded sled database (created if missing).
    #[arg(
        long,
        env = "OPTOVAULT_DATA_DIR",
        default_value = "data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Where the data lives instead of the sled directory: a `postgres://` (or `postgresql://`)
    /// URL selects the PostgreSQL backend (schema migrations run at start-up). Without it, the
    /// embedded sled database in `--data-dir` is used. Give the password through the URL or
    /// PostgreSQL's own `PGPASSWORD`/`~/.pgpass`; it is never logged.
    #[arg(long, env = "OPTOVAULT_STORE", global = true, value_parser = parse_store_url)]
    pub store: Option<StoreUrl>,
    /// Connections to PostgreSQL each server process keeps open at most.
    #[arg(long, env = "OPTOVAULT_PG_MAX_CONNECTIONS", default_value_t = 16,
        value_parser = clap::value_parser!(u32).range(2..))]
    pub pg_max_connections: u32,
    /// Directory of the built web client (Trunk's dist/). Without it only the API is served.
    #[arg(long, env = "OPTOVAULT_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    /// Mark the session cookie `Secure`. Turn on whenever clients reach the server over TLS
    /// (e.g. behind a TLS-terminating proxy).
    #[arg(long, env = "OPTOVAULT_COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,
    /// Absolute session lifetime in hours.
    #[arg(long, env = "OPTOVAULT_SESSION_HOURS", default_value_t = 12)]
    pub session_hours: u32,
    /// A session unused for this many minutes ends.
    #[arg(long, env = "OPTOVAULT_SESSION_IDLE_MINUTES", default_value_t = 15)]
    pub session_idle_minutes: u32,
    /// The address people open in the browser (scheme, host, port). Its host name is the
    /// relying party ID of passkeys, so it must be a name, not an IP address; with `localhost`
    /// any port is accepted.
    #[arg(
        long,
        env = "OPTOVAULT_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: String,
    /// Audit entries are kept this many days, then pruned (the log keeps the last pruned entry's
    /// hash, so what remains still verifies). At least 2190 (six years, the HIPAA documentation
    /// rule); longer is allowed.
    #[arg(long, env = "OPTOVAULT_AUDIT_RETENTION_DAYS", default_value_t = 2190,
        value_parser = clap::value_parser!(u32).range(2190..))]
    pub audit_retention_days: u32,
    /// Turns on the daily backup job: each backup is written here, restored into a scratch
    /// directory and checked, and kept only if every check passed.
    #[arg(long, env = "OPTOVAULT_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Hours between scheduled backups.
    #[arg(long, env = "OPTOVAULT_BACKUP_EVERY_HOURS", default_value_t = 24,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub backup_every_hours: u32,
    /// Keep the newest backup of each of this many days.
    #[arg(long, env = "OPTOVAULT_BACKUP_KEEP_DAILY", default_value_t = 7)]
    pub backup_keep_daily: u32,
    /// Also keep the newest backup of each of this many ISO weeks.
    #[arg(long, env = "OPTOVAULT_BACKUP_KEEP_WEEKLY", default_value_t = 4)]
    pub backup_keep_weekly: u32,
    /// A second location each verified backup is copied to (e.g. a mounted remote disk). May be
    /// given more than once; the same retention applies there.
    #[arg(long, env = "OPTOVAULT_BACKUP_COPY_TO", value_delimiter = ',')]
    pub backup_copy_to: Vec<PathBuf>,
    /// The largest clinic export `POST /api/clinics/import` accepts, in MiB (0: no imports).
    #[arg(long, env = "OPTOVAULT_IMPORT_MAX_MIB", default_value_t = 16 * 1024)]
    pub import_max_mib: u64,
}

/// A PostgreSQL URL; its `Debug` leaves out everything but the scheme (the URL may hold a
/// password).
#[derive(Clone)]
pub struct StoreUrl(pub String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreUrl(postgres://…)")
    }
}

/// Accepts only a PostgreSQL URL: the sled directory is `--data-dir`.
fn parse_store_url(s: &str) -> Result<StoreUrl, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(StoreUrl(s.to_string()))
    } else {
        Err("expected a postgres:// URL (the sled database's directory is --data-dir)".into())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Writes a consistent snapshot of the whole database to one file (header with counts and
    /// SHA-256, zstd blocks). Works while the server runs (it asks the server through
    /// `<data dir>/admin.sock`) or with the server stopped. With `--store postgres://…` it reads
    /// one snapshot of the database while servers keep writing; the file is the same format
    /// (sled's trees), so it restores into either backend.
    Backup {
        /// The file to write (replaced if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Checks a backup file: checksums and structure, then restores it into a temporary
    /// directory and checks every tree's row count, every record's envelope and signature, and
    /// every audit chain. Prints a report; exits 1 on any problem.
    Verify {
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restores a backup file into a sled data directory (`--into`) or an empty PostgreSQL
    /// database (`--into-store`), after the same checks as `verify`. A backup of either backend
    /// restores into either.
    Restore {
        file: PathBuf,
        /// The data directory to create (sled).
        #[arg(
            long,
            required_unless_present = "into_store",
            conflicts_with = "into_store"
        )]
        into: Option<PathBuf>,
        /// A `postgres://` URL of an empty database (its schema is created first); the rows are
        /// written in one transaction. The password as for `--store`; it is never logged.
        #[arg(long, value_parser = parse_store_url)]
        into_store: Option<StoreUrl>,
        /// Allow a non-empty directory: its contents are moved aside to `<into>.replaced-<time>`,
        /// never deleted. (A PostgreSQL database must be empty.)
        #[arg(long, conflicts_with = "into_store")]
        replace: bool,
    },
    /// Verifies every audit log in the data directory with no key: the hash chain, the owners'
    /// signed checkpoints (against the signed roster) and the signature of every client-reported
    /// detail. Reports the first broken entry of each log; exits 1 if any log is broken. Stop the
    /// server first (the database is opened exclusively), or point it at a restored backup.
    VerifyAudit {
        /// Only this clinic's log.
        #[arg(long)]
        clinic: Option<Uuid>,
        /// Also print every entry checked: seq, time, action, actor, target, outcome. Details
        /// stay sealed; the operator sees categories, never their contents.
        #[arg(long)]
        list: bool,
    },
}
