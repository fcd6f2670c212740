use std::sync::Arc;

use clap::Parser;
use optovault_server::backup::schedule::{
    self, BackupDestination, DirectoryDestination, ScheduleConfig,
};
use optovault_server::backup::Source;
use optovault_server::backup::{
    admin, progress_line, restore_backup, restore_into_postgres, verify_backup, write_backup,
};
use optovault_server::config::{Command, Config};
use optovault_server::store::pg_store::PgOptions;
use optovault_server::store::{PgStore, RecoveringStore, SledStore};
use optovault_server::{app, AppState, Settings};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Config::parse();
    if let Some(Command::VerifyAudit { clinic, list }) = &config.command {
        match verify_audit(&config, *clinic, *list).await {
            Ok(true) => return,
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("verify-audit: {e}");
                std::process::exit(2);
            }
        }
    }
    match &config.command {
        Some(Command::Backup { out }) => exit_with(match &config.store {
            Some(url) => backup_postgres(&config, &url.0, out).await,
            None => backup(&config.data_dir, out).await,
        }),
        Some(Command::Verify { file, json }) => exit_with(verify(file, *json).await),
        Some(Command::Restore {
            file,
            into,
            into_store,
            replace,
        }) => exit_with(match (into, into_store) {
            (_, Some(url)) => restore_postgres(&config, file, &url.0).await,
            (Some(dir), None) => restore(file, dir, *replace).await,
            (None, None) => Err("restore needs --into DIR or --into-store URL".into()),
        }),
        _ => {}
    }
    if let Err(e) = run(config).await {
        tracing::error!("{e}");
        std::process::exit(1);
    }
}

/// Exit status for the backup commands: 0 done, 1 the check failed, 2 could not run.
fn exit_with(result: Result<bool, Box<dyn std::error::Error>>) -> ! {
    match result {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("\nerror: {e}");
            std::process::exit(2);
        }
    }
}

fn bytes_progress(done: u64, total: u64) {
    let pct = (done * 100).checked_div(total).unwrap_or(100);
    progress_line(&format!(
        "restoring: {pct:>3}% ({} of {} MiB)",
        done >> 20,
        total >> 20
    ));
}

/// `backup --out FILE`: through the running server's admin socket, or directly when no server
/// runs on the data directory.
async fn backup(
    data_dir: &std::path::Path,
    out: &std::path::Path,
) -> Result<bool, Box<dyn std::error::Error>> {
    let out = std::path::absolute(out)?;
    let rows = |n: u64| progress_line(&format!("backup: {n} rows copied"));
    let header = match admin::request_backup(data_dir, &out, rows).await? {
        Some(h) => h,
        None => {
            if !data_dir.join("db").exists() && !data_dir.join("conf").exists() {
                return Err(format!("{} holds no database", data_dir.display()).into());
            }
            let store = SledStore::open(data_dir).map_err(|e| {
                format!(
                    "cannot open {} ({e}); if a server runs on it, it did not answer on {}",
                    data_dir.display(),
                    admin::SOCKET_NAME
                )
            })?;
            let o = out.clone();
            tokio::task::spawn_blocking(move || write_backup(&store.into(), &o, rows)).await??
        }
    };
    print_written(&out, &header);
    Ok(true)
}

/// `--store postgres://… backup --out FILE`: one REPEATABLE READ snapshot of the database, in
/// the same format as a sled backup (servers keep writing meanwhile).
async fn backup_postgres(
    config: &Config,
    url: &str,
    out: &std::path::Path,
) -> Result<bool, Box<dyn std::error::Error>> {
    let out = std::path::absolute(out)?;
    let store = connect_postgres(config, url).await?;
    let o = out.clone();
    let source = store.clone().into();
    let header = tokio::task::spawn_blocking(move || {
        write_backup(&source, &o, |n| {
            progress_line(&format!("backup: {n} rows copied"))
        })
    })
    .await??;
    store.close().await;
    print_written(&out, &header);
    Ok(true)
}

/// `restore FILE --into-store postgres://…`: checked as `verify` does, then written into the
/// empty database in one transaction.
async fn restore_postgres(
    config: &Config,
    file: &std::path::Path,
    url: &str,
) -> Result<bool, Box<dyn std::error::Error>> {
    let store = connect_postgres(config, url).await?;
    let report = restore_into_postgres(file, &store, bytes_progress).await?;
    store.close().await;
    eprintln!();
    println!("{report}");
    println!("restored into PostgreSQL at {}", PgStore::describe(url));
    Ok(true)
}

async fn verify(file: &std::path::Path, json: bool) -> Result<bool, Box<dyn std::error::Error>> {
    match verify_backup(file, bytes_progress).await {
        Ok(report) => {
            eprintln!();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(report.ok())
        }
        Err(e) => {
            eprintln!();
            println!("FAILED: {} cannot be restored: {e}", file.display());
            Ok(false)
        }
    }
}

async fn restore(
    file: &std::path::Path,
    into: &std::path::Path,
    replace: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let (report, moved) = restore_backup(file, into, replace, bytes_progress).await?;
    eprintln!();
    println!("{report}");
    if let Some(old) = moved {
        println!("the directory's previous contents are in {}", old.display());
    }
    println!("restored into {}", into.display());
    Ok(true)
}

/// `verify-audit`: prints one line per log (and each entry with `--list`); true if all intact.
async fn verify_audit(
    config: &Config,
    clinic: Option<uuid::Uuid>,
    list: bool,
) -> Result<bool, Box<dyn std::error::Error>> {
    let store: Box<dyn optovault_server::store::Store> = match &config.store {
        Some(url) => Box::new(connect_postgres(config, &url.0).await?),
        None => {
            if !config.data_dir.join("db").exists() && !config.data_dir.join("conf").exists() {
                return Err(format!("{} holds no database", config.data_dir.display()).into());
            }
            Box::new(SledStore::open(&config.data_dir)?)
        }
    };
    let reports = optovault_server::audit_verify::verify_all(&*store, clinic, |e| {
        if list {
            let id = |u: Option<uuid::Uuid>| u.map(|u| u.to_string()).unwrap_or_else(|| "-".into());
            println!(
                "  {:>8} {} {:<26} actor={} target={} count={} {}{}",
                e.seq,
                e.at,
                e.action,
                id(e.actor),
                id(e.target),
                e.count,
                e.outcome,
                if e.detail.is_some() {
                    " [sealed detail]"
                } else {
                    ""
                }
            );
        }
    })
    .await?;
    let mut intact = true;
    for r in &reports {
        let log = r
            .clinic_id
            .map(|c| format!("clinic {c}"))
            .unwrap_or_else(|| "account log".into());
        let checkpoints = match r.last_checkpoint {
            Some(last) => format!(
                "{} signed checkpoints (last at entry {last})",
                r.checkpoints
            ),
            None => "no signed checkpoint".into(),
        };
        match &r.problem {
            None => println!("{log}: {} entries, {checkpoints}: intact", r.entries),
            Some(p) => {
                intact = false;
                println!("{log}: BROKEN after {} good entries: {p}", r.entries);
            }
        }
    }
    println!(
        "{} logs checked, {}",
        reports.len(),
        if intact {
            "all intact"
        } else {
            "TAMPERING DETECTED"
        }
    );
    Ok(intact)
}

/// Connects to PostgreSQL and migrates its schema (logging where, never the password).
async fn connect_postgres(
    config: &Config,
    url: &str,
) -> Result<PgStore, Box<dyn std::error::Error>> {
    let target = PgStore::describe(url);
    tracing::info!(database = %target, "connecting to PostgreSQL");
    let store = PgStore::connect(
        url,
        PgOptions {
            max_connections: config.pg_max_connections,
            ..PgOptions::default()
        },
    )
    .await?;
    tracing::info!(database = %target, "PostgreSQL schema up to date");
    Ok(store)
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(url) = &config.store {
        return run_on_postgres(&config, &url.0).await;
    }
    std::fs::create_dir_all(&config.data_dir)?;
    // Reopens the database by itself after a storage failure (disk full, read-only).
    let store = RecoveringStore::open(&config.data_dir)?;
    let state = AppState::new(Arc::new(store.clone()), settings(&config)).await?;
    warn_without_client(&config);
    spawn_sweeper(
        state.clone(),
        i64::from(config.audit_retention_days) * 86_400,
    );
    {
        let store = store.clone();
        spawn_backups(&config, &state, move || {
            store
                .with_current(|s| Source::Sled(s.clone()))
                .map_err(|e| e.to_string())
        });
    }
    admin::serve(&config.data_dir, store.clone())?;
    serve(
        &config,
        state,
        &format!("sled in {}", config.data_dir.display()),
    )
    .await?;
    let _ = std::fs::remove_file(config.data_dir.join(admin::SOCKET_NAME));
    store.flush().await?;
    tracing::info!("stopped; database flushed");
    Ok(())
}

/// The server on PostgreSQL: no data directory and no admin socket (`backup` reads its own
/// snapshot of the database); scheduled backups read one snapshot each, as `backup` does.
async fn run_on_postgres(config: &Config, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = connect_postgres(config, url).await?;
    let state = AppState::new(Arc::new(store.clone()), settings(config)).await?;
    warn_without_client(config);
    spawn_sweeper(
        state.clone(),
        i64::from(config.audit_retention_days) * 86_400,
    );
    {
        let store = store.clone();
        spawn_backups(config, &state, move || Ok(Source::Postgres(store.clone())));
    }
    serve(
        config,
        state,
        &format!("PostgreSQL at {}", PgStore::describe(url)),
    )
    .await?;
    // Every write was durable when its transaction committed; only the pool is left to close.
    store.close().await;
    tracing::info!("stopped; connections to PostgreSQL closed");
    Ok(())
}

/// The scheduled backup job, if `--backup-dir` is given.
fn spawn_backups(
    config: &Config,
    state: &AppState,
    current: impl Fn() -> Result<Source, String> + Send + 'static,
) {
    let Some(dir) = &config.backup_dir else {
        return;
    };
    let destinations = config
        .backup_copy_to
        .iter()
        .map(|d| Box::new(DirectoryDestination { dir: d.clone() }) as Box<dyn BackupDestination>)
        .collect();
    schedule::spawn(
        ScheduleConfig {
            dir: dir.clone(),
            every: std::time::Duration::from_secs(u64::from(config.backup_every_hours) * 3600),
            keep_daily: config.backup_keep_daily,
            keep_weekly: config.backup_keep_weekly,
            destinations,
        },
        current,
        state.store.clone(),
        state.backups.clone(),
    );
    tracing::info!(dir = %dir.display(), every_hours = config.backup_every_hours,
        copies = ?config.backup_copy_to, "scheduled backups on");
}

fn settings(config: &Config) -> Settings {
    Settings {
        cookie_secure: config.cookie_secure,
        session_ttl_secs: i64::from(config.session_hours.max(1)) * 3600,
        session_idle_secs: i64::from(config.session_idle_minutes.max(1)) * 60,
        public_url: config.public_url.clone(),
        import_max_bytes: config.import_max_mib.saturating_mul(1 << 20),
    }
}

fn warn_without_client(config: &Config) {
    if let Some(dir) = &config.static_dir {
        if !dir.join("index.html").exists() {
            tracing::warn!(dir = %dir.display(), "static dir has no index.html; build the client first");
        }
    }
}

/// Serves the API until SIGTERM or SIGINT.
async fn serve(
    config: &Config,
    state: AppState,
    storage: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let router = app(state, config.static_dir.as_deref());
    // Listen for SIGTERM before announcing readiness, so a stop sent right after the ready line
    // still shuts down gracefully (and flushes).
    let term = signal(SignalKind::terminate())?;
    let interrupt = signal(SignalKind::interrupt())?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    // Tests and scripts wait for this exact line.
    println!("listening on http://{addr}");
    tracing::info!(storage, "OptoVault server started");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal(term, interrupt))
    .await?;
    Ok(())
}

/// Removes expired login attempts and sessions once a minute, purges deleted records past their
/// clinic's trash period and audit entries past the retention period (each purge is itself an
/// audit entry).
fn spawn_sweeper(state: AppState, audit_retention_secs: i64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            match state.store.purge_expired(optovault_server::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(
                    purged = n,
                    "expired sessions, login attempts and stale uploads removed"
                ),
                Err(e) => tracing::warn!(error = %e, "sweeping expired sessions failed"),
            }
            match state.store.purge_trash(optovault_server::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    purged = n,
                    "deleted records past their clinic's trash period purged"
                ),
                Err(e) => tracing::error!(error = %e, "purging the trash failed"),
            }
            let now = optovault_server::now();
            match state
                .store
                .prune_audit(now - audit_retention_secs, now)
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(pruned = n, "audit entries past the retention period pruned")
                }
                Err(e) => tracing::error!(error = %e, "pruning the audit log failed"),
            }
        }
    });
}

async fn shutdown_signal(mut term: Signal, mut interrupt: Signal) {
    tokio::select! {
        _ = term.recv() => {},
        _ = interrupt.recv() => {},
    }
}

/// The last line of `backup`, after its progress line.
fn print_written(out: &std::path::Path, header: &optovault_server::backup::archive::Header) {
    eprintln!();
    println!(
        "backup written to {}: {} rows in {} trees, {} bytes, content SHA-256 {}",
        out.display(),
        header.rows(),
        header.trees.len(),
        header.content_bytes + optovault_server::backup::archive::HEADER_BYTES as u64,
        header.content_sha256
    );
}
