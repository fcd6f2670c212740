//! Backup benchmark (not a test): time and size of `backup`, `verify` and `restore` against the
//! real release server, for a clinic of N records (about 1 KB each) and then with A MiB of
//! encrypted attachments added; and how long writes wait while a backup copies the trees.
//!
//! ```text
//! cargo build --release -p optovault-server
//! cargo run --release -p optovault-tests --bin backup_bench -- [--records N] [--attachments-mib A]
//! ```
//! Defaults: N = 100,000, A = 2048. Records are real sealed and signed envelopes (1,000 bytes
//! of plaintext each), written through the API in batches of 500; attachments are 32 MiB files
//! of 1 MiB chunks of random bytes (ciphertext is random, so this is its real compressibility).
//! During each backup one client writes single records in a loop: the report gives the longest
//! write and the median one. Everything lives under a temporary directory, removed at the end.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use optovault_shared::wire::FileUploadStart;
use optovault_shared::Compartment;
use optovault_tests::*;
use rand_core::{OsRng, RngCore};
use uuid::Uuid;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.replace('_', "").parse().expect("a number"))
        .unwrap_or(default)
}

fn du(path: &Path) -> u64 {
    let o = Command::new("du").arg("-sb").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

fn cli(args: &[&str]) -> (f64, String) {
    let started = Instant::now();
    let o = Command::new(server_bin("release"))
        .args(args)
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{args:?} failed:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (secs, out)
}

struct Round {
    label: String,
    data_bytes: u64,
    backup_secs: f64,
    backup_bytes: u64,
    verify_secs: f64,
    restore_secs: f64,
    restored_bytes: u64,
    writes_during: usize,
    write_p50_ms: f64,
    write_max_ms: f64,
    slowest_at: f64,
    paused_ms: u64,
}

fn round(
    label: &str,
    server: &TestServer,
    login: &(String, String),
    clinic: &Clinic,
    work: &Path,
) -> Round {
    let file = work.join(format!("{label}.ovbk"));
    // One client writes single records while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let lat: Arc<Mutex<Vec<(f64, Instant)>>> = Default::default();
    let writer = {
        let (stop, lat) = (stop.clone(), lat.clone());
        let clinic = clinic.clone();
        let w = server.client();
        let ws = w.login(&login.0, &login.1).unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                w.put_patient(&ws, &clinic, Uuid::new_v4(), 0, &sample_patient(1))
                    .unwrap();
                lat.lock()
                    .unwrap()
                    .push((t.elapsed().as_secs_f64() * 1000.0, t));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    lat.lock().unwrap().clear();
    let backup_started = Instant::now();
    let (backup_secs, _) = cli(&[
        "--data-dir",
        server.data_dir.to_str().unwrap(),
        "backup",
        "--out",
        file.to_str().unwrap(),
    ]);
    // The server logs how long the trees took to copy while writes waited.
    std::thread::sleep(Duration::from_millis(300));
    let paused_ms: u64 = server
        .log_text()
        .lines()
        .rev()
        .find_map(|l| l.split("writes_paused_ms=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let mut during = lat.lock().unwrap().clone();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    during.sort_by(|a, b| a.0.total_cmp(&b.0));
    // When the slowest write started, relative to the backup's start.
    let slowest_at = during
        .last()
        .map(|w| w.1.saturating_duration_since(backup_started).as_secs_f64())
        .unwrap_or(0.0);
    let (verify_secs, report) = cli(&["verify", file.to_str().unwrap()]);
    assert!(report.contains("VERIFIED"), "{report}");
    let into = work.join(format!("{label}-restored"));
    let (restore_secs, _) = cli(&[
        "restore",
        file.to_str().unwrap(),
        "--into",
        into.to_str().unwrap(),
    ]);
    let r = Round {
        label: label.to_string(),
        data_bytes: du(&server.data_dir),
        backup_secs,
        backup_bytes: std::fs::metadata(&file).unwrap().len(),
        verify_secs,
        restore_secs,
        restored_bytes: du(&into),
        writes_during: during.len(),
        write_p50_ms: during.get(during.len() / 2).map(|w| w.0).unwrap_or(0.0),
        write_max_ms: during.last().map(|w| w.0).unwrap_or(0.0),
        slowest_at,
        paused_ms,
    };
    std::fs::remove_dir_all(&into).unwrap();
    std::fs::remove_file(&file).unwrap();
    r
}

fn main() {
    let records = arg("--records", 100_000) as usize;
    let attach_mib = arg("--attachments-mib", 2048) as usize;
    let work = tempfile::Builder::new()
        .prefix("optovault-backup-bench-")
        .tempdir()
        .unwrap();
    let server = TestServer::start_with(ServerOptions {
        bin: Some(server_bin("release")),
        data_dir: Some(work.path().join("data")),
        ..Default::default()
    });
    let c = server.client();
    let login = (unique_username("bench"), strong_password());
    let s = c.signup(&login.0, &login.1);
    let clinic = c.create_clinic(&s, "Backup Bench Optics").unwrap();

    let t = Instant::now();
    let mut plain = vec![0u8; 1000];
    for chunk in (0..records).collect::<Vec<_>>().chunks(500) {
        let writes = chunk
            .iter()
            .map(|_| {
                OsRng.fill_bytes(&mut plain);
                let id = Uuid::new_v4();
                optovault_shared::wire::RecordWrite {
                    expected_version: 0,
                    envelope: seal_bytes(&s, clinic.id, &clinic.keyring, id, 1, &plain),
                }
            })
            .collect();
        c.batch(clinic.id, writes).unwrap();
    }
    println!(
        "wrote {records} records in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut rounds = vec![round(
        &format!("{records}-records"),
        &server,
        &login,
        &clinic,
        work.path(),
    )];

    let t = Instant::now();
    let key = clinic.keyring.current(Compartment::Clinical).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..attach_mib.div_ceil(32) {
        let req = FileUploadStart {
            file_id: Uuid::new_v4(),
            chart_id: Uuid::new_v4(),
            compartment: Compartment::Clinical,
            key_id: key.key_id,
            epoch: key.epoch,
            chunk_count: 32,
            chunk_size: 1 << 20,
            total_size: 32 << 20,
        };
        c.start_file(clinic.id, &req).unwrap();
        for i in 0..32 {
            OsRng.fill_bytes(&mut chunk);
            let raw = c.put_file_chunk(clinic.id, req.file_id, i, &chunk);
            assert_eq!(raw.status, 204, "{raw:?}");
        }
        assert_eq!(c.complete_file(clinic.id, req.file_id).status, 204);
    }
    println!(
        "uploaded {attach_mib} MiB of attachments in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    rounds.push(round(
        &format!("{records}-records+{attach_mib}MiB"),
        &server,
        &login,
        &clinic,
        work.path(),
    ));

    println!();
    println!("| data | database on disk | backup | backup file | verify | restore | restored db | writes during backup | write p50 / max (slowest began at) | writes paused |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rounds {
        println!(
            "| {} | {} | {:.1} s | {} ({:.2} of the db) | {:.1} s | {:.1} s | {} | {} | {:.1} / {:.0} ms ({:.1} s) | {} ms |",
            r.label,
            mib(r.data_bytes),
            r.backup_secs,
            mib(r.backup_bytes),
            r.backup_bytes as f64 / r.data_bytes as f64,
            r.verify_secs,
            r.restore_secs,
            mib(r.restored_bytes),
            r.writes_during,
            r.write_p50_ms,
            r.write_max_ms,
            r.slowest_at,
            r.paused_ms
        );
    }
}
