//! OptoVault server benchmark (not a test). Build the server on its own first, so Cargo does not
//! unify the tests' `client` feature of the shared crate into it, then run the bench:
//!
//! ```text
//! cargo build --release -p optovault-server
//! cargo run --release -p optovault-tests --bin bench
//! ```
//!
//! Starts the release server binary ($OPTOVAULT_SERVER_BIN, else `optovault-server` next to this
//! binary, else <workspace>/target/release/optovault-server) on 127.0.0.1 with a temporary data
//! directory, registers and logs in with OPAQUE, creates a clinic, seals every record before the
//! clock starts (the server only ever sees opaque bytes), then measures:
//!
//! (a) batched durable creates: 50,000 records of ~1 KB in batches of 1,000, records/s;
//! (b) single creates: 1,000 sequential PUTs (into a second clinic), p50/p99 latency;
//! (c) a full pull of the 50,000-record clinic via `changes since 0`, pages of 1,000: total time,
//!     and the server's peak RSS (VmHWM) during the pull and over the whole run;
//! (d) `changes since` for the last 100 changes of that clinic: median and p99 over 200 runs.
//!
//! The same workload runs against each backend in `BENCH_STORES` (default `sled,pg,pg2`): the
//! embedded sled store, PostgreSQL behind one server process, and PostgreSQL behind two server
//! processes sharing the database (requests alternate between them; in (a) two clients write
//! batches through both at once). PostgreSQL is a throwaway cluster on 127.0.0.1 that the bench
//! starts with `scripts/pg-cluster.sh` and `pg_stat_statements` loaded, so each workload also
//! reports how much of its wall time PostgreSQL spent executing statements, and which ones.
//! Then (e) a key rotation with 20 members, on the first backend.
//!
//! Every loop is bounded; all traffic is on loopback. Environment: BENCH_RECORDS (default 50000),
//! BENCH_BATCH (default 1000), BENCH_SINGLES (default 1000), BENCH_RUNS (default 200),
//! BENCH_STORES (default `sled,pg,pg2`), BENCH_MEMBERS (default 20).

use std::process::Command;
use std::time::{Duration, Instant};

use optovault_shared::wire::*;
use optovault_tests::*;
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty());
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A patient whose sealed record is about 1 KB.
fn kilobyte_patient(i: usize) -> optovault_shared::domain::Patient {
    let mut p = sample_patient(i);
    let base = serde_json::to_vec(&optovault_shared::domain::RecordBody::Patient(p.clone()))
        .unwrap()
        .len();
    p.notes
        .push_str(&"n".repeat(1000usize.saturating_sub(base)));
    p
}

struct Row {
    what: &'static str,
    value: String,
    target: String,
    ok: bool,
}

/// Which store the server runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sled,
    /// PostgreSQL behind this many server processes.
    Pg(usize),
}

impl Backend {
    fn parse(s: &str) -> Backend {
        match s.trim() {
            "sled" => Backend::Sled,
            "pg" | "pg1" => Backend::Pg(1),
            "pg2" => Backend::Pg(2),
            other => panic!("BENCH_STORES: unknown backend {other} (sled, pg, pg2)"),
        }
    }
    fn label(self) -> String {
        match self {
            Backend::Sled => "sled".into(),
            Backend::Pg(1) => "PostgreSQL, 1 process".into(),
            Backend::Pg(n) => format!("PostgreSQL, {n} processes"),
        }
    }
}

/// The throwaway cluster (`scripts/pg-cluster.sh`), with `pg_stat_statements` loaded.
struct PgCluster {
    dir: String,
    url: String,
}

impl PgCluster {
    fn start() -> PgCluster {
        let out = Command::new("bash")
            .arg(workspace_root().join("scripts/pg-cluster.sh"))
            .arg("start")
            .env(
                "OV_PG_OPTS",
                "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
            )
            .output()
            .expect("run scripts/pg-cluster.sh");
        assert!(
            out.status.success(),
            "pg-cluster.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .map(|v| v.trim_matches('\'').to_string())
                .unwrap_or_else(|| panic!("pg-cluster.sh printed no {name}: {text}"))
        };
        PgCluster {
            dir: value("OPTOVAULT_PG_CLUSTER"),
            url: value("OPTOVAULT_TEST_PG_URL"),
        }
    }

    /// Runs `sql` as the cluster's superuser on `db` (through the socket in the cluster's
    /// directory) and returns psql's unaligned output.
    fn superuser(&self, db: &str, sql: &str) -> String {
        let bindir = std::fs::read_to_string(format!("{}/bindir", self.dir)).unwrap();
        let port = std::fs::read_to_string(format!("{}/port", self.dir)).unwrap();
        let psql = format!("{}/psql", bindir.trim());
        let args = [
            "-qtA",
            "-F",
            "\t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            &format!("{}/socket", self.dir),
            "-p",
            port.trim(),
            "-U",
            "postgres",
            "-d",
            db,
            "-c",
            sql,
        ];
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let out = if root {
            Command::new("runuser")
                .args(["-u", "postgres", "--", &psql])
                .args(args)
                .output()
        } else {
            Command::new(&psql).args(args).output()
        }
        .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new database owned by the cluster's role, with `pg_stat_statements`; its URL.
    fn database(&self, name: &str) -> String {
        self.superuser(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER optovault"),
        );
        self.superuser(name, "CREATE EXTENSION pg_stat_statements");
        format!("{}/{name}", self.url.rsplit_once('/').unwrap().0)
    }

    fn stop(&self) {
        let _ = Command::new("bash")
            .arg(workspace_root().join("scripts/pg-cluster.sh"))
            .args(["stop", &self.dir])
            .output();
    }
}

/// Where PostgreSQL's time went during one workload, from `pg_stat_statements`.
struct SqlTime {
    exec_ms: f64,
    calls: u64,
    /// The three statements with the most execution time: ms, calls, text.
    top: Vec<(f64, u64, String)>,
}

/// One backend's database, for resetting and reading its statement statistics.
struct PgStats<'a> {
    cluster: &'a PgCluster,
    db: String,
}

impl PgStats<'_> {
    fn reset(&self) {
        self.cluster
            .superuser(&self.db, "SELECT pg_stat_statements_reset()");
    }
    fn read(&self) -> SqlTime {
        let mine = "dbid = (SELECT oid FROM pg_database WHERE datname = current_database())";
        let total = self.cluster.superuser(
            &self.db,
            &format!(
                "SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0) \
                 FROM pg_stat_statements WHERE {mine}"
            ),
        );
        let mut t = total.trim().split('\t');
        let exec_ms = t.next().unwrap_or("0").parse().unwrap_or(0.0);
        let calls = t.next().unwrap_or("0").parse().unwrap_or(0);
        let top = self
            .cluster
            .superuser(
                &self.db,
                &format!(
                    "SELECT total_exec_time, calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 60) \
                     FROM pg_stat_statements WHERE {mine} ORDER BY total_exec_time DESC LIMIT 3"
                ),
            )
            .lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                Some((
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                    f.next()?.to_string(),
                ))
            })
            .collect();
        SqlTime {
            exec_ms,
            calls,
            top,
        }
    }
}

/// The figures of one backend.
#[derive(Default)]
struct Figures {
    batch_rate: f64,
    batch_p50_ms: f64,
    single_p50_ms: f64,
    single_p99_ms: f64,
    pull_ms: f64,
    since_p50_ms: f64,
    since_p99_ms: f64,
    /// The largest peak RSS of the server processes (PostgreSQL's own not included).
    peak_rss_mib: f64,
    data_mib: f64,
    /// Per workload (a)–(d): wall time and PostgreSQL's share of it.
    sql: Vec<(&'static str, f64, SqlTime)>,
}

struct Params {
    n_records: usize,
    batch_size: usize,
    n_singles: usize,
    n_runs: usize,
}

/// Runs (a)–(d) against `servers` (one, or several on the same PostgreSQL database); returns
/// the figures, the first server's client and session, and the big clinic (for (e)).
fn workloads(
    servers: &[TestServer],
    p: &Params,
    stats: Option<&PgStats>,
) -> (Figures, Client, Session, Clinic) {
    let c = servers[0].client();
    let t = Instant::now();
    let s = c.signup(&unique_username("bench"), &strong_password());
    println!(
        "register + login (OPAQUE, Argon2id 64 MiB on the client): {:.0} ms",
        ms(t.elapsed())
    );
    // The session lives in the store: the same cookie works on every process.
    let clients: Vec<Client> = servers
        .iter()
        .map(|srv| {
            let mut other = c.clone();
            other.base = srv.base.clone();
            other
        })
        .collect();
    let n = clients.len();
    let clinic = c
        .create_clinic(&s, "Bench Optometry")
        .expect("create clinic");
    let clinic2 = c
        .create_clinic(&s, "Bench Singles")
        .expect("create clinic 2");

    // ---- seal everything before timing ----
    let t = Instant::now();
    let mut bodies: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut sealed_bytes = 0usize;
    let mut start = 0;
    while start < p.n_records {
        let end = (start + p.batch_size).min(p.n_records);
        let writes: Vec<RecordWrite> = (start..end)
            .map(|i| {
                let w = patient_write(
                    &s,
                    clinic.id,
                    &clinic.keyring,
                    Uuid::new_v4(),
                    0,
                    &kilobyte_patient(i),
                );
                sealed_bytes += w.envelope.ciphertext.len();
                w
            })
            .collect();
        bodies.push((
            end - start,
            serde_json::to_vec(&BatchWriteRequest {
                writes,
                report: None,
            })
            .unwrap(),
        ));
        start = end;
    }
    let singles: Vec<(String, Vec<u8>)> = (0..p.n_singles)
        .map(|i| {
            let w = patient_write(
                &s,
                clinic2.id,
                &clinic2.keyring,
                Uuid::new_v4(),
                0,
                &kilobyte_patient(i),
            );
            (
                format!(
                    "/api/clinics/{}/records/{}",
                    clinic2.id, w.envelope.record_id
                ),
                serde_json::to_vec(&w).unwrap(),
            )
        })
        .collect();
    println!(
        "sealed {} + {} records in {:.1} s (mean ciphertext {} bytes, batch body ~{:.1} MiB)",
        p.n_records,
        p.n_singles,
        t.elapsed().as_secs_f64(),
        sealed_bytes / p.n_records.max(1),
        bodies.first().map_or(0.0, |b| b.1.len() as f64 / 1048576.0)
    );
    let mut f = Figures::default();
    let sql = |what: &'static str, wall: Duration, f: &mut Figures| {
        if let Some(st) = stats {
            f.sql.push((what, ms(wall), st.read()));
            st.reset();
        }
    };
    if let Some(st) = stats {
        st.reset();
    }

    // ---- (a) batched durable creates: with several processes, one client per process writes
    // its share of the batches at the same time as the others ----
    let path = format!("/api/clinics/{}/records", clinic.id);
    let t = Instant::now();
    let mut shares: Vec<Vec<(usize, Vec<u8>)>> = (0..n).map(|_| Vec::new()).collect();
    for (i, b) in bodies.into_iter().enumerate() {
        shares[i % n].push(b);
    }
    let mut batch_times: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .zip(&clients)
            .map(|(share, client)| {
                let path = &path;
                scope.spawn(move || {
                    let mut times = Vec::new();
                    for (count, body) in share {
                        let t1 = Instant::now();
                        let raw =
                            client.send(Method::POST, path, Some((body, "application/json")), &[]);
                        times.push(t1.elapsed());
                        assert!(raw.is_success(), "batch write failed: {raw:?}");
                        let resp: BatchWriteResponse = raw.parse();
                        assert_eq!(resp.results.len(), count);
                    }
                    times
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect()
    });
    let total = t.elapsed();
    sql("(a) batched creates", total, &mut f);
    f.batch_rate = p.n_records as f64 / total.as_secs_f64();
    batch_times.sort();
    f.batch_p50_ms = ms(percentile(&batch_times, 50.0));
    println!(
        "(a) {} records in {} batches through {n} process(es): {:.2} s; per batch p50 {:.1} ms, max {:.1} ms",
        p.n_records,
        batch_times.len(),
        total.as_secs_f64(),
        f.batch_p50_ms,
        ms(*batch_times.last().unwrap())
    );

    // ---- (b) single creates, alternating between the processes ----
    let t = Instant::now();
    let mut lat = Vec::with_capacity(singles.len());
    for (i, (path, body)) in singles.into_iter().enumerate() {
        let t1 = Instant::now();
        let raw = clients[i % n].send(Method::PUT, &path, Some((body, "application/json")), &[]);
        lat.push(t1.elapsed());
        assert!(raw.is_success(), "single write failed: {raw:?}");
    }
    sql("(b) single creates", t.elapsed(), &mut f);
    lat.sort();
    f.single_p50_ms = ms(percentile(&lat, 50.0));
    f.single_p99_ms = ms(percentile(&lat, 99.0));
    println!(
        "(b) {} single PUTs: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        f.single_p50_ms,
        f.single_p99_ms,
        ms(*lat.last().unwrap())
    );

    // ---- (c) full pull, pages alternating between the processes ----
    let t = Instant::now();
    let mut since = 0u64;
    let (mut pulled, mut bytes, mut pages) = (0usize, 0usize, 0usize);
    loop {
        assert!(pages <= p.n_records / 1000 + 10, "pull does not terminate");
        let raw = clients[pages % n].get(&format!(
            "/api/clinics/{}/changes?since={since}&limit=1000",
            clinic.id
        ));
        pages += 1;
        assert!(raw.is_success(), "changes failed: {raw:?}");
        bytes += raw.body.len();
        let page: ChangesPage = raw.parse();
        pulled += page.changes.len();
        since = page.cursor;
        if !page.more {
            break;
        }
    }
    let pull_t = t.elapsed();
    sql("(c) full pull", pull_t, &mut f);
    assert_eq!(pulled, p.n_records, "full pull returned {pulled} records");
    let head = since;
    f.pull_ms = ms(pull_t);
    println!(
        "(c) full pull: {} records, {:.1} MiB of JSON in {} pages, {:.0} ms with typed parsing",
        pulled,
        bytes as f64 / 1048576.0,
        pages,
        f.pull_ms
    );

    // ---- (d) changes since the last 100 ----
    let since = head.saturating_sub(100);
    let t = Instant::now();
    let mut lat = Vec::with_capacity(p.n_runs);
    for i in 0..p.n_runs {
        let t1 = Instant::now();
        let raw = clients[i % n].get(&format!(
            "/api/clinics/{}/changes?since={since}&limit=1000",
            clinic.id
        ));
        let page: ChangesPage = raw.parse();
        lat.push(t1.elapsed());
        assert_eq!(page.changes.len(), (head - since) as usize);
    }
    sql("(d) changes since head-100", t.elapsed(), &mut f);
    lat.sort();
    f.since_p50_ms = ms(percentile(&lat, 50.0));
    f.since_p99_ms = ms(percentile(&lat, 99.0));
    println!(
        "(d) changes since head-100, {} runs: median {:.2} ms, p99 {:.2} ms",
        p.n_runs, f.since_p50_ms, f.since_p99_ms
    );
    f.peak_rss_mib = servers
        .iter()
        .filter_map(|srv| proc_status_kib(srv.pid(), "VmHWM"))
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    (f, c, s, clinic)
}

/// (e) A key rotation in a clinic of `n_members` members: the client's part (verify the roster,
/// new keys, wrap them to everyone) and the server's commit, medians of 6 rounds.
fn rotation(
    server: &TestServer,
    c: &Client,
    s: &Session,
    clinic: &Clinic,
    n_records: usize,
) -> Row {
    // Rotation re-wraps keys to members; records are re-encrypted lazily on their next write, so
    // its cost depends on the member count, not on the number of charts.
    let n_members = env_usize("BENCH_MEMBERS", 20).max(2);
    let roles = [
        Role::Optometrist,
        Role::Optician,
        Role::FrontDesk,
        Role::Billing,
        Role::Owner,
    ];
    let t = Instant::now();
    let mut rotating = None;
    for i in 1..n_members {
        let mc = server.client();
        let m = mc.signup(&unique_username("member"), &strong_password());
        let link = c.invite(s, clinic, roles[i % roles.len()]).expect("invite");
        mc.accept(&m, &link).expect("accept");
        c.admit(s, clinic, link.invitation_id)
            .expect("mac")
            .expect("admit");
        if roles[i % roles.len()] == Role::Optometrist && rotating.is_none() {
            rotating = Some(m.account_id);
        }
    }
    println!(
        "(e) {} members joined in {:.1} s (invite, accept, verify, admit)",
        n_members,
        t.elapsed().as_secs_f64()
    );
    let member = rotating.expect("an optometrist joined");
    let mut prep = Vec::new();
    let mut commit = Vec::new();
    let mut current = c.join_view(s, clinic.id);
    for round in 0..6 {
        let role = if round % 2 == 0 {
            Role::Optician
        } else {
            Role::Optometrist
        };
        let t1 = Instant::now();
        let (req, _) = c.rotation_request(
            s,
            &current,
            optovault_shared::roster::RosterChange::ChangeRole { member, role },
        );
        prep.push(t1.elapsed());
        let t2 = Instant::now();
        c.rotate(clinic.id, &req).expect("rotate");
        commit.push(t2.elapsed());
        current = c.join_view(s, clinic.id);
    }
    prep.sort();
    commit.sort();
    println!(
        "(e) rotation, {} members, {} charts: client (verify roster, new keys, wrap) median {:.1} ms; server commit median {:.1} ms",
        n_members,
        n_records,
        ms(percentile(&prep, 50.0)),
        ms(percentile(&commit, 50.0))
    );
    Row {
        what: "(e) rotation, 20 members, client + server median",
        value: format!(
            "{:.1} ms",
            ms(percentile(&prep, 50.0)) + ms(percentile(&commit, 50.0))
        ),
        target: "report".into(),
        ok: true,
    }
}

/// The foundation's targets, checked on one backend's figures.
fn target_rows(f: &Figures) -> Vec<Row> {
    vec![
        Row {
            what: "(a) batched durable creates",
            value: format!("{:.0} rec/s", f.batch_rate),
            target: ">= 5000 rec/s".into(),
            ok: f.batch_rate >= 5000.0,
        },
        Row {
            what: "(b) single create p50",
            value: format!("{:.2} ms", f.single_p50_ms),
            target: "(info)".into(),
            ok: true,
        },
        Row {
            what: "(b) single create p99",
            value: format!("{:.2} ms", f.single_p99_ms),
            target: "<= 25 ms".into(),
            ok: f.single_p99_ms <= 25.0,
        },
        Row {
            what: "(c) full pull of the clinic",
            value: format!("{:.0} ms", f.pull_ms),
            target: "<= 550 ms".into(),
            ok: f.pull_ms <= 550.0,
        },
        Row {
            what: "(c) server peak RSS (whole run)",
            value: format!("{:.0} MiB", f.peak_rss_mib),
            target: "<= 300 MiB".into(),
            ok: f.peak_rss_mib <= 300.0,
        },
        Row {
            what: "(d) changes-since-100 median",
            value: format!("{:.2} ms", f.since_p50_ms),
            target: "<= 20 ms".into(),
            ok: f.since_p50_ms <= 20.0,
        },
        Row {
            what: "(d) changes-since-100 p99",
            value: format!("{:.2} ms", f.since_p99_ms),
            target: "<= 20 ms".into(),
            ok: f.since_p99_ms <= 20.0,
        },
    ]
}

fn main() {
    let params = Params {
        n_records: env_usize("BENCH_RECORDS", 50_000),
        batch_size: env_usize("BENCH_BATCH", 1000).clamp(1, optovault_shared::limits::MAX_BATCH),
        n_singles: env_usize("BENCH_SINGLES", 1000),
        n_runs: env_usize("BENCH_RUNS", 200).max(1),
    };
    let backends: Vec<Backend> = std::env::var("BENCH_STORES")
        .unwrap_or_else(|_| "sled,pg,pg2".into())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Backend::parse)
        .collect();
    let bin = server_bin("release");
    println!("server binary: {}", bin.display());
    let cluster = backends
        .iter()
        .any(|b| matches!(b, Backend::Pg(_)))
        .then(PgCluster::start);

    let mut results: Vec<(Backend, Figures)> = Vec::new();
    let mut rotation_row = None;
    for (k, backend) in backends.iter().enumerate() {
        println!("\n== {}", backend.label());
        let (servers, stats) = match *backend {
            Backend::Sled => (
                vec![TestServer::start_with(ServerOptions {
                    bin: Some(bin.clone()),
                    ..Default::default()
                })],
                None,
            ),
            Backend::Pg(n) => {
                let cluster = cluster.as_ref().expect("cluster started");
                let db = format!("ov_bench_{k}_{n}");
                let url = cluster.database(&db);
                let servers = (0..n)
                    .map(|_| {
                        TestServer::start_with(ServerOptions {
                            bin: Some(bin.clone()),
                            args: vec!["--store".into(), url.clone()],
                            ..Default::default()
                        })
                    })
                    .collect();
                (servers, Some(PgStats { cluster, db }))
            }
        };
        for srv in &servers {
            println!("server pid {} on {}", srv.pid(), srv.addr);
        }
        let (mut f, c, s, clinic) = workloads(&servers, &params, stats.as_ref());
        if k == 0 {
            rotation_row = Some(rotation(&servers[0], &c, &s, &clinic, params.n_records));
        }
        f.data_mib = match &stats {
            None => {
                all_files(&servers[0].data_dir)
                    .iter()
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum::<u64>() as f64
                    / 1048576.0
            }
            Some(st) => {
                st.cluster
                    .superuser(&st.db, "SELECT pg_database_size(current_database())")
                    .trim()
                    .parse::<f64>()
                    .unwrap_or(0.0)
                    / 1048576.0
            }
        };
        for mut srv in servers {
            srv.stop();
        }
        results.push((*backend, f));
    }
    if let Some(c) = &cluster {
        c.stop();
    }

    for (backend, f) in &results {
        println!("\n{} against the foundation's targets:\n", backend.label());
        println!("| measure | result | target | met |");
        println!("|---|---|---|---|");
        let mut rows = target_rows(f);
        if Some(backend) == backends.first() {
            rows.extend(rotation_row.take());
        }
        for r in &rows {
            println!(
                "| {} | {} | {} | {} |",
                r.what,
                r.value,
                r.target,
                if r.ok { "yes" } else { "NO" }
            );
        }
    }

    if results.len() > 1 {
        println!("\nSide by side (ratio: each backend's figure over the first's):\n");
        print!("| measure |");
        for (b, _) in &results {
            print!(" {} |", b.label());
        }
        println!();
        println!("|---|{}", "---|".repeat(results.len()));
        type Pick = fn(&Figures) -> f64;
        let measures: [(&str, Pick); 8] = [
            ("(a) batched creates, rec/s", |f| f.batch_rate),
            ("(a) per batch p50, ms", |f| f.batch_p50_ms),
            ("(b) single create p50, ms", |f| f.single_p50_ms),
            ("(b) single create p99, ms", |f| f.single_p99_ms),
            ("(c) full pull, ms", |f| f.pull_ms),
            ("(d) changes since 100, median ms", |f| f.since_p50_ms),
            ("server peak RSS, MiB", |f| f.peak_rss_mib),
            ("data on disk, MiB", |f| f.data_mib),
        ];
        for (what, pick) in measures {
            print!("| {what} |");
            let base = pick(&results[0].1);
            for (i, (_, f)) in results.iter().enumerate() {
                let v = pick(f);
                if i == 0 || base == 0.0 {
                    print!(" {v:.2} |");
                } else {
                    print!(" {v:.2} ({:.2}x) |", v / base);
                }
            }
            println!();
        }
    }

    for (backend, f) in &results {
        if f.sql.is_empty() {
            continue;
        }
        println!(
            "\nWhere the time goes, {} (pg_stat_statements: time PostgreSQL spent executing \
             statements, COMMIT's WAL flush included; the rest is round trips, the server and the \
             client):",
            backend.label()
        );
        for (what, wall_ms, st) in &f.sql {
            println!(
                "- {what}: wall {wall_ms:.0} ms, SQL {:.0} ms ({:.0}%), {} statements",
                st.exec_ms,
                100.0 * st.exec_ms / wall_ms.max(1e-9),
                st.calls
            );
            for (t, calls, q) in &st.top {
                println!("    {t:.0} ms in {calls} calls: {q}");
            }
        }
    }
    println!(
        "\n{} records in {} pages. Loopback, {} cores shared by the client, the server(s) and PostgreSQL.",
        params.n_records,
        params.n_records.div_ceil(1000),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
