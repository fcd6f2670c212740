//! PostgreSQL for the end-to-end tests: a fresh database on the throwaway cluster that
//! `scripts/pg-cluster.sh start` made (its URL in `OPTOVAULT_TEST_PG_URL`), and a server on it.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use uuid::Uuid;

use crate::{ServerOptions, TestServer};

pub const URL_VAR: &str = "OPTOVAULT_TEST_PG_URL";

/// A database of its own for one test.
pub struct PgDatabase {
    /// The test's database.
    pub url: String,
    /// The cluster's database, to drop the test's from.
    pub admin_url: String,
    pub name: String,
}

/// A new database named `<prefix>_<random>`. `None` (the caller skips) without the cluster's URL,
/// unless `CI` is set: there a PostgreSQL test must never be skipped.
pub fn pg_database(prefix: &str) -> Option<PgDatabase> {
    let admin_url = match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                panic!("CI is set but {URL_VAR} is not: this PostgreSQL test must not be skipped");
            }
            eprintln!("skipped: {URL_VAR} is not set (scripts/pg-cluster.sh start prints it)");
            return None;
        }
    };
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    let status = Command::new(psql())
        .arg(&admin_url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .status()
        .expect("run psql");
    assert!(status.success(), "CREATE DATABASE failed");
    let base = admin_url.rsplit_once('/').expect("a URL with a database").0;
    Some(PgDatabase {
        url: format!("{base}/{name}"),
        admin_url,
        name,
    })
}

impl PgDatabase {
    /// Drops the database (call it after the test passed; a failed test leaves it for a look).
    /// Best effort: an autovacuum worker on it (which the test role may not terminate) makes the
    /// drop fail for a moment; the cluster is thrown away anyway.
    pub fn drop_database(&self) {
        for _ in 0..10 {
            let status = Command::new(psql())
                .arg(&self.admin_url)
                .args(["-q", "-c"])
                .arg(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .status()
                .expect("run psql");
            if status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("test database {} left behind", self.name);
    }
}

/// The debug server binary on the PostgreSQL database at `url`.
pub fn server_on_postgres(url: &str) -> TestServer {
    TestServer::start_with(ServerOptions {
        args: vec!["--store".into(), url.into()],
        ..Default::default()
    })
}

/// psql: on PATH, else the newest in Debian's server directories.
pub fn psql() -> String {
    if Command::new("psql").arg("--version").output().is_ok() {
        return "psql".into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .pop()
        .map(|p| p.display().to_string())
        .expect("psql (Debian's postgresql-client)")
}
