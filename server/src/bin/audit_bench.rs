//! Audit log benchmark (not a test): what the hash-chained audit log costs on the write path, and
//! how fast a chain of N entries verifies.
//!
//! ```text
//! cargo run --release -p optovault-server --bin audit_bench -- [--entries N] [--rounds R]
//!     [--singles S] [--batches B] [--verify-runs V]
//! ```
//!
//! 1. Write path: batches through `SledStore::write_records` (one sled transaction and a flush per
//!    batch, as the API does), with one `records_written` audit entry per batch vs. none
//!    (`vec![]`), for batch sizes 1 and 100. Per round: S batches of 1 and B batches of 100 in each
//!    mode (modes interleaved, their order alternating between rounds). Figures are medians over
//!    the rounds; the ratio is with / without.
//! 2. Chain verification of N entries: (a) in memory, `ChainVerifier` over N chained `AuditEntry`
//!    values built with `entry_hash`; (b) from sled, `audit_verify::verify_log` (paging, JSON
//!    decoding, chain check) over a log of N entries appended with `append_event(.., false)`.
//!
//! Everything lives in a fresh directory under /tmp, removed at the end. Defaults: N = 1,000,000,
//! R = 9, S = 300, B = 50, V = 3.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use optovault_server::audit_verify::verify_log;
use optovault_server::store::{
    ClinicRow, EventDraft, MemberRow, RecordWriteRow, RosterRow, SledStore, Store, WriteGuard,
};
use optovault_shared::audit::{entry_hash, ChainPoint, ChainVerifier, GENESIS_HASH};
use optovault_shared::roster::SignedRosterEntry;
use optovault_shared::wire::{AuditEntry, Role, SealedBlob};
use optovault_shared::{Compartment, UnixTime, B64};
use uuid::Uuid;

const NOW: UnixTime = 1_700_000_000;
/// Size of the opaque envelope of each record (the store never parses it).
const ENVELOPE_BYTES: usize = 1024;

struct Args {
    entries: u64,
    rounds: usize,
    singles: usize,
    batches: usize,
    verify_runs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        entries: 1_000_000,
        rounds: 9,
        singles: 300,
        batches: 50,
        verify_runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .replace('_', "");
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))?;
        if n == 0 {
            return Err(format!("{flag} must be at least 1"));
        }
        match flag.as_str() {
            "--entries" => a.entries = n,
            "--rounds" => a.rounds = n as usize,
            "--singles" => a.singles = n as usize,
            "--batches" => a.batches = n as usize,
            "--verify-runs" => a.verify_runs = n as usize,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(a)
}

/// A fresh directory under /tmp, removed on drop (also on a panic).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "optovault-audit-bench-{}-{}",
            std::process::id(),
            Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&p).expect("create the bench directory");
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_dur(v: &[Duration]) -> Duration {
    Duration::from_secs_f64(median_f64(v.iter().map(Duration::as_secs_f64).collect()))
}

fn fmt_rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0} /s")
    }
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------------------------------------
// 1. Write path
// ---------------------------------------------------------------------------------------------

/// A clinic set up as the API leaves it, so guarded writes pass `write_records`' re-check: an
/// owner member row and roster entry 1 (key epoch 1), plus the `clinic_created` entry that
/// `create_clinic` appends. The store treats the signed roster entry as opaque, so it need not be
/// a real signature for writes.
async fn writable_clinic(store: &SledStore) -> (Uuid, Uuid) {
    let clinic_id = Uuid::new_v4();
    let owner = Uuid::new_v4();
    let sealed = SealedBlob {
        nonce: B64(vec![1; 12]),
        ciphertext: B64(vec![2; 48]),
    };
    store
        .create_clinic(
            ClinicRow {
                clinic_id,
                created_at: NOW,
                created_by: owner,
                profile: b"{}".to_vec(),
                policy: Default::default(),
            },
            MemberRow {
                clinic_id,
                account_id: owner,
                role: Role::Owner,
                added_at: NOW,
                wrapped_keys: vec![],
                pinned_anchor: sealed,
            },
            RosterRow {
                seq: 1,
                hash: [1; 32],
                key_epoch: 1,
                signed: SignedRosterEntry {
                    entry: B64(b"genesis".to_vec()),
                    signature: B64(vec![0; 64]),
                },
            },
            EventDraft {
                at: NOW,
                actor: Some(owner),
                clinic_id: Some(clinic_id),
                action: "clinic_created",
                target: Some(clinic_id),
                count: 1,
                outcome: "ok",
                ip: None,
                detail: None,
            },
        )
        .await
        .expect("create clinic");
    (clinic_id, owner)
}

/// One batch of new records (version 0 → 1), each guarded like an API write.
fn batch_rows(owner: Uuid, size: usize, envelope: &[u8]) -> Vec<RecordWriteRow> {
    (0..size)
        .map(|_| {
            let record_id = Uuid::new_v4();
            RecordWriteRow {
                record_id,
                chart_id: record_id,
                expected_version: 0,
                compartment: Compartment::Demographics,
                envelope: envelope.to_vec(),
                guard: Some(WriteGuard {
                    author: owner,
                    sealed_epoch: 1,
                }),
                deleted: false,
            }
        })
        .collect()
}

/// The entry the records API appends for a batch (`records::write`).
fn written_event(clinic_id: Uuid, owner: Uuid, rows: &[RecordWriteRow]) -> EventDraft {
    EventDraft {
        at: NOW,
        actor: Some(owner),
        clinic_id: Some(clinic_id),
        action: "records_written",
        target: (rows.len() == 1).then(|| rows[0].record_id),
        count: rows.len() as u32,
        outcome: "ok",
        ip: Some("127.0.0.1".into()),
        detail: None,
    }
}

struct Run {
    /// Wall time of all batches of the run.
    total: Duration,
    /// Each batch's `write_records` call.
    per_batch: Vec<Duration>,
    records: usize,
}

async fn run_batches(
    store: &SledStore,
    clinic_id: Uuid,
    owner: Uuid,
    size: usize,
    count: usize,
    audit: bool,
) -> Run {
    let envelope = vec![b'x'; ENVELOPE_BYTES];
    // Rows and drafts are built before the clock starts.
    let work: Vec<(Vec<RecordWriteRow>, Vec<EventDraft>)> = (0..count)
        .map(|_| {
            let rows = batch_rows(owner, size, &envelope);
            let events = if audit {
                vec![written_event(clinic_id, owner, &rows)]
            } else {
                vec![]
            };
            (rows, events)
        })
        .collect();
    let mut per_batch = Vec::with_capacity(count);
    let start = Instant::now();
    for (rows, events) in work {
        let t = Instant::now();
        let out = store
            .write_records(clinic_id, rows, NOW, events)
            .await
            .expect("write_records");
        per_batch.push(t.elapsed());
        assert_eq!(out.len(), size);
    }
    Run {
        total: start.elapsed(),
        per_batch,
        records: size * count,
    }
}

struct ModeFigures {
    /// records/s of each round.
    rates: Vec<f64>,
    /// Every batch's latency, all rounds.
    latencies: Vec<Duration>,
}

impl ModeFigures {
    fn new() -> Self {
        ModeFigures {
            rates: vec![],
            latencies: vec![],
        }
    }
    fn add(&mut self, r: Run) {
        self.rates
            .push(r.records as f64 / r.total.as_secs_f64().max(1e-9));
        self.latencies.extend(r.per_batch);
    }
}

struct SizeFigures {
    size: usize,
    count: usize,
    without: ModeFigures,
    with: ModeFigures,
}

async fn bench_write_path(dir: &Path, args: &Args) -> Vec<SizeFigures> {
    let store = SledStore::open(&dir.join("write-path")).expect("open sled");
    let (clinic_id, owner) = writable_clinic(&store).await;
    // The clinic's log already holds what creating it appended.
    let (head_before, _) = store.audit_head(Some(clinic_id)).await.expect("audit head");
    // Warm-up: sled's first writes allocate segments.
    run_batches(&store, clinic_id, owner, 1, 50, true).await;
    run_batches(&store, clinic_id, owner, 100, 5, false).await;

    let mut sizes = vec![
        SizeFigures {
            size: 1,
            count: args.singles,
            without: ModeFigures::new(),
            with: ModeFigures::new(),
        },
        SizeFigures {
            size: 100,
            count: args.batches,
            without: ModeFigures::new(),
            with: ModeFigures::new(),
        },
    ];
    for round in 0..args.rounds {
        for s in sizes.iter_mut() {
            // Alternate which mode goes first, so drift (a growing tree) hits both alike.
            let order = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for audit in order {
                let r = run_batches(&store, clinic_id, owner, s.size, s.count, audit).await;
                if audit {
                    s.with.add(r);
                } else {
                    s.without.add(r);
                }
            }
        }
        eprintln!("  write path: round {}/{} done", round + 1, args.rounds);
    }
    let (head, _) = store.audit_head(Some(clinic_id)).await.expect("audit head");
    let expected: usize =
        head_before as usize + 50 + sizes.iter().map(|s| s.count * args.rounds).sum::<usize>();
    assert_eq!(head as usize, expected, "one audit entry per audited batch");
    sizes
}

// ---------------------------------------------------------------------------------------------
// 2. Chain verification
// ---------------------------------------------------------------------------------------------

/// An account-level entry (`login_ok`-like), before chaining: same fields the server fills.
fn account_entry(seq: u64, actor: Uuid) -> AuditEntry {
    AuditEntry {
        seq,
        at: NOW + seq as i64,
        actor: Some(actor),
        clinic_id: None,
        action: "login_ok".into(),
        target: Some(actor),
        count: 1,
        outcome: "ok".into(),
        ip: Some("127.0.0.1".into()),
        detail: None,
        prev_hash: B64(vec![]),
        hash: B64(vec![]),
    }
}

fn build_chain(n: u64) -> Vec<AuditEntry> {
    let actor = Uuid::new_v4();
    let mut prev = GENESIS_HASH;
    let mut out = Vec::with_capacity(n as usize);
    for seq in 1..=n {
        let mut e = account_entry(seq, actor);
        e.prev_hash = B64(prev.to_vec());
        prev = entry_hash(&e);
        e.hash = B64(prev.to_vec());
        out.push(e);
    }
    out
}

struct VerifyFigures {
    runs: Vec<Duration>,
}

impl VerifyFigures {
    fn median(&self) -> Duration {
        median_dur(&self.runs)
    }
    fn min(&self) -> Duration {
        *self.runs.iter().min().unwrap()
    }
    fn max(&self) -> Duration {
        *self.runs.iter().max().unwrap()
    }
}

struct ChainFigures {
    build: Duration,
    memory: VerifyFigures,
    setup: Duration,
    setup_flush: Duration,
    store_warm: VerifyFigures,
    reopen: Duration,
    store_reopened: Duration,
}

async fn timed_verify_log(store: &SledStore, n: u64) -> Duration {
    let mut seen = 0u64;
    let t = Instant::now();
    let report = verify_log(store, None, |_| seen += 1)
        .await
        .expect("verify_log");
    let d = t.elapsed();
    assert_eq!(report.problem, None, "the log verifies");
    assert_eq!((report.entries, report.head_seq, seen), (n, n, n));
    d
}

async fn bench_chain(dir: &Path, args: &Args) -> ChainFigures {
    let n = args.entries;

    // (a) In memory.
    eprintln!("  chain: building {n} entries in memory");
    let t = Instant::now();
    let chain = build_chain(n);
    let build = t.elapsed();
    let mut memory = VerifyFigures { runs: vec![] };
    for _ in 0..args.verify_runs {
        let t = Instant::now();
        let mut v = ChainVerifier::new(None, ChainPoint::GENESIS, vec![]);
        for e in &chain {
            v.push(e).expect("intact chain");
        }
        let summary = v.finish().expect("intact chain");
        memory.runs.push(t.elapsed());
        assert_eq!(summary.checked, n);
    }
    drop(chain);

    // (b) From sled. The account-level log (`clinic_id = None`): `verify_log` replays a clinic's
    // signed roster, checking every Ed25519 signature, before its chain, and the server does not
    // link the signing half of the crypto, so a clinic log would need a genuinely signed roster.
    // The account-level log has no roster, checkpoints or reported details; for a clinic log
    // without checkpoints or details those add a fixed roster replay and one `is_none` test per
    // entry, so the per-entry cost measured here (paging, JSON decoding, hashing) is the same.
    let path = dir.join("chain");
    let store = SledStore::open(&path).expect("open sled");
    let actor = Uuid::new_v4();
    eprintln!("  chain: appending {n} entries with append_event(.., false)");
    let t = Instant::now();
    for i in 1..=n {
        let draft = EventDraft {
            at: NOW + i as i64,
            actor: Some(actor),
            clinic_id: None,
            action: "login_ok",
            target: Some(actor),
            count: 1,
            outcome: "ok",
            ip: Some("127.0.0.1".into()),
            detail: None,
        };
        let seq = store.append_event(draft, false).await.expect("append");
        debug_assert_eq!(seq, i);
        if i % 100_000 == 0 {
            eprintln!("    {i} appended ({:.1} s)", t.elapsed().as_secs_f64());
        }
    }
    let setup = t.elapsed();
    let t = Instant::now();
    store.flush().await.expect("flush");
    let setup_flush = t.elapsed();

    let mut store_warm = VerifyFigures { runs: vec![] };
    for _ in 0..args.verify_runs {
        store_warm.runs.push(timed_verify_log(&store, n).await);
    }

    // As `optovault-server verify-audit` does: open the data directory afresh (sled's page cache
    // empty; the OS's file cache may still hold it).
    drop(store);
    let t = Instant::now();
    let store = SledStore::open(&path).expect("reopen sled");
    let reopen = t.elapsed();
    let store_reopened = timed_verify_log(&store, n).await;
    drop(store);

    ChainFigures {
        build,
        memory,
        setup,
        setup_flush,
        store_warm,
        reopen,
        store_reopened,
    }
}

// ---------------------------------------------------------------------------------------------

fn print_write_path(args: &Args, sizes: &[SizeFigures]) {
    println!(
        "1. Write path: SledStore::write_records, one transaction + flush per batch, {ENVELOPE_BYTES} B envelopes"
    );
    println!(
        "   {} rounds; per round and mode {} batches of 1 and {} batches of 100; medians over rounds",
        args.rounds, args.singles, args.batches
    );
    println!(
        "   {:>5}  {:<14} {:>12} {:>14} {:>14}",
        "batch", "audit entries", "records/s", "batch p50", "batch p90"
    );
    for s in sizes {
        for (label, m) in [("none (vec![])", &s.without), ("1 per batch", &s.with)] {
            let mut lat = m.latencies.clone();
            lat.sort();
            let p90 = lat[((lat.len() * 9).div_ceil(10)).clamp(1, lat.len()) - 1];
            println!(
                "   {:>5}  {:<14} {:>12.0} {:>14} {:>14}",
                s.size,
                label,
                median_f64(m.rates.clone()),
                fmt_ms(median_dur(&m.latencies)),
                fmt_ms(p90),
            );
        }
    }
    for s in sizes {
        let with = median_f64(s.with.rates.clone());
        let without = median_f64(s.without.rates.clone());
        let per_batch = median_dur(&s.with.latencies).as_secs_f64()
            - median_dur(&s.without.latencies).as_secs_f64();
        // Each round runs both modes back to back, so the per-round ratio is a paired figure,
        // less sensitive to drift between rounds than the ratio of the two medians.
        let paired: Vec<f64> = s
            .with
            .rates
            .iter()
            .zip(&s.without.rates)
            .map(|(w, wo)| w / wo)
            .collect();
        let listed: Vec<String> = paired.iter().map(|r| format!("{r:.3}")).collect();
        println!(
            "   batch {:>3}: with/without records/s: ratio of medians {:.3}, median of per-round ratios {:.3}",
            s.size,
            with / without,
            median_f64(paired.clone()),
        );
        println!(
            "              per round: {}; p50 batch latency {:+.1} us with the entry",
            listed.join(" "),
            per_batch * 1e6,
        );
    }
}

fn print_chain(n: u64, c: &ChainFigures) {
    let rate = |d: Duration| fmt_rate(n as f64 / d.as_secs_f64().max(1e-9));
    let secs = |d: Duration| format!("{:.3} s", d.as_secs_f64());
    println!();
    println!("2. Chain verification, N = {n} entries (account-level log, no checkpoints/details)");
    println!("   {:<72} {:>10} {:>12}", "what", "seconds", "entries/s");
    println!(
        "   {:<72} {:>10} {:>12}",
        "(a) build N chained AuditEntry values (entry_hash each)",
        secs(c.build),
        rate(c.build)
    );
    println!(
        "   {:<72} {:>10} {:>12}",
        format!(
            "(a) ChainVerifier over them, median of {} [min {:.3}, max {:.3}]",
            c.memory.runs.len(),
            c.memory.min().as_secs_f64(),
            c.memory.max().as_secs_f64()
        ),
        secs(c.memory.median()),
        rate(c.memory.median())
    );
    println!(
        "   {:<72} {:>10} {:>12}",
        "(b) setup: N x append_event(draft, durable=false), sequential",
        secs(c.setup),
        rate(c.setup)
    );
    println!(
        "   {:<72} {:>10} {:>12}",
        "(b) setup: final SledStore::flush",
        secs(c.setup_flush),
        ""
    );
    println!(
        "   {:<72} {:>10} {:>12}",
        format!(
            "(b) verify_log, store just written, median of {} [min {:.3}, max {:.3}]",
            c.store_warm.runs.len(),
            c.store_warm.min().as_secs_f64(),
            c.store_warm.max().as_secs_f64()
        ),
        secs(c.store_warm.median()),
        rate(c.store_warm.median())
    );
    println!(
        "   {:<72} {:>10} {:>12}",
        "(b) SledStore::open of that directory afresh",
        secs(c.reopen),
        ""
    );
    println!(
        "   {:<72} {:>10} {:>12}",
        "(b) verify_log right after that open (1 run)",
        secs(c.store_reopened),
        rate(c.store_reopened)
    );
    println!(
        "   verify_log / in-memory ChainVerifier time: {:.2}x",
        c.store_warm.median().as_secs_f64() / c.memory.median().as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("audit_bench: {e}");
            }
            eprintln!(
                "usage: audit_bench [--entries N] [--rounds R] [--singles S] [--batches B] [--verify-runs V]"
            );
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("audit_bench: debug build; run with --release for meaningful figures");
    }
    let dir = TempDir::new();
    eprintln!("audit_bench: data in {}", dir.path().display());
    let wall = Instant::now();

    let sizes = bench_write_path(dir.path(), &args).await;
    let chain = bench_chain(dir.path(), &args).await;

    println!(
        "OptoVault audit bench (sled 0.34, data dir {}, {} CPUs)",
        dir.path().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print_write_path(&args, &sizes);
    print_chain(args.entries, &chain);
    println!();
    println!("total bench time: {:.1} s", wall.elapsed().as_secs_f64());
    drop(dir);
}
