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
//! Every loop is bounded; all traffic is on loopback. Environment: BENCH_RECORDS (default 50000),
//! BENCH_BATCH (default 1000), BENCH_SINGLES (default 1000), BENCH_RUNS (default 200).

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

fn main() {
    let n_records = env_usize("BENCH_RECORDS", 50_000);
    let batch_size = env_usize("BENCH_BATCH", 1000).clamp(1, optovault_shared::limits::MAX_BATCH);
    let n_singles = env_usize("BENCH_SINGLES", 1000);
    let n_runs = env_usize("BENCH_RUNS", 200).max(1);

    let bin = server_bin("release");
    println!("server binary: {}", bin.display());
    let mut server = TestServer::start_with(ServerOptions {
        bin: Some(bin),
        rust_log: None,
        ..Default::default()
    });
    let pid = server.pid();
    println!(
        "server pid {pid} on {}, data dir {}",
        server.addr,
        server.data_dir.display()
    );

    let c = server.client();
    let t = Instant::now();
    let s = c.signup(&unique_username("bench"), &strong_password());
    println!(
        "register + login (OPAQUE, Argon2id 64 MiB on the client): {:.0} ms",
        ms(t.elapsed())
    );
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
    while start < n_records {
        let end = (start + batch_size).min(n_records);
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
    let singles: Vec<(String, Vec<u8>)> = (0..n_singles)
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
        n_records,
        n_singles,
        t.elapsed().as_secs_f64(),
        sealed_bytes / n_records.max(1),
        bodies.first().map_or(0.0, |b| b.1.len() as f64 / 1048576.0)
    );

    let mut rows = Vec::new();

    // ---- (a) batched durable creates ----
    let path = format!("/api/clinics/{}/records", clinic.id);
    let mut batch_times = Vec::new();
    let t = Instant::now();
    for (n, body) in bodies {
        let t1 = Instant::now();
        let raw = c.send(Method::POST, &path, Some((body, "application/json")), &[]);
        batch_times.push(t1.elapsed());
        assert!(raw.is_success(), "batch write failed: {raw:?}");
        let resp: BatchWriteResponse = raw.parse();
        assert_eq!(resp.results.len(), n);
    }
    let total = t.elapsed();
    let rate = n_records as f64 / total.as_secs_f64();
    batch_times.sort();
    println!(
        "(a) {} records in {} batches: {:.2} s; per batch p50 {:.1} ms, max {:.1} ms",
        n_records,
        batch_times.len(),
        total.as_secs_f64(),
        ms(percentile(&batch_times, 50.0)),
        ms(*batch_times.last().unwrap())
    );
    rows.push(Row {
        what: "(a) batched durable creates",
        value: format!("{rate:.0} rec/s"),
        target: ">= 5000 rec/s".into(),
        ok: rate >= 5000.0,
    });

    // ---- (b) single creates ----
    let mut lat = Vec::with_capacity(singles.len());
    for (p, body) in singles {
        let t1 = Instant::now();
        let raw = c.send(Method::PUT, &p, Some((body, "application/json")), &[]);
        lat.push(t1.elapsed());
        assert!(raw.is_success(), "single write failed: {raw:?}");
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
    println!(
        "(b) {} single PUTs: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        ms(p50),
        ms(p99),
        ms(*lat.last().unwrap())
    );
    rows.push(Row {
        what: "(b) single create p50",
        value: format!("{:.2} ms", ms(p50)),
        target: "(info)".into(),
        ok: true,
    });
    rows.push(Row {
        what: "(b) single create p99",
        value: format!("{:.2} ms", ms(p99)),
        target: "<= 25 ms".into(),
        ok: ms(p99) <= 25.0,
    });

    // ---- (c) full pull ----
    let hwm_run_before = proc_status_kib(pid, "VmHWM").unwrap_or(0);
    // Reset the peak RSS counter so the pull's own peak is measured (Linux: clear_refs 5).
    let reset_ok = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let pull = |parse: bool| -> (Duration, usize, usize, u64) {
        let t = Instant::now();
        let mut since = 0u64;
        let mut n = 0usize;
        let mut bytes = 0usize;
        let mut pages = 0usize;
        loop {
            pages += 1;
            assert!(pages <= n_records / 1000 + 10, "pull does not terminate");
            let raw = c.get(&format!(
                "/api/clinics/{}/changes?since={since}&limit=1000",
                clinic.id
            ));
            assert!(raw.is_success(), "changes failed: {raw:?}");
            bytes += raw.body.len();
            if parse {
                let p: ChangesPage = raw.parse();
                n += p.changes.len();
                since = p.cursor;
                if !p.more {
                    break;
                }
            } else {
                // Only the cursor fields, without building records.
                #[derive(serde::Deserialize)]
                struct Cursor {
                    cursor: u64,
                    more: bool,
                    changes: Vec<serde::de::IgnoredAny>,
                }
                let p: Cursor = serde_json::from_slice(&raw.body).unwrap();
                n += p.changes.len();
                since = p.cursor;
                if !p.more {
                    break;
                }
            }
        }
        (t.elapsed(), n, bytes, since)
    };
    let (pull_t, pulled, pull_bytes, head) = pull(true);
    let hwm_pull = proc_status_kib(pid, "VmHWM").unwrap_or(0);
    assert_eq!(pulled, n_records, "full pull returned {pulled} records");
    let (pull_t2, _, _, _) = pull(false);
    let hwm_run = proc_status_kib(pid, "VmHWM")
        .unwrap_or(0)
        .max(hwm_run_before);
    println!(
        "(c) full pull: {} records, {:.1} MiB of JSON, {:.0} ms with typed parsing, {:.0} ms without",
        pulled,
        pull_bytes as f64 / 1048576.0,
        ms(pull_t),
        ms(pull_t2)
    );
    println!(
        "    server VmHWM: {:.0} MiB during the pull{}, {:.0} MiB before it (whole run so far)",
        hwm_pull as f64 / 1024.0,
        if reset_ok {
            ""
        } else {
            " (could not reset: lifetime peak)"
        },
        hwm_run_before as f64 / 1024.0
    );
    rows.push(Row {
        what: "(c) full pull of the clinic",
        value: format!("{:.0} ms", ms(pull_t)),
        target: "<= 550 ms".into(),
        ok: ms(pull_t) <= 550.0,
    });
    let peak_mib = hwm_run as f64 / 1024.0;
    rows.push(Row {
        what: "(c) server peak RSS (whole run)",
        value: format!("{peak_mib:.0} MiB"),
        target: "<= 300 MiB".into(),
        ok: peak_mib <= 300.0,
    });

    // ---- (d) changes since the last 100 ----
    let since = head.saturating_sub(100);
    let mut lat = Vec::with_capacity(n_runs);
    for _ in 0..n_runs {
        let t1 = Instant::now();
        let raw = c.get(&format!(
            "/api/clinics/{}/changes?since={since}&limit=1000",
            clinic.id
        ));
        let p: ChangesPage = raw.parse();
        lat.push(t1.elapsed());
        assert_eq!(p.changes.len(), (head - since) as usize);
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
    println!(
        "(d) changes since head-100, {} runs: median {:.2} ms, p99 {:.2} ms",
        n_runs,
        ms(p50),
        ms(p99)
    );
    rows.push(Row {
        what: "(d) changes-since-100 median",
        value: format!("{:.2} ms", ms(p50)),
        target: "<= 20 ms".into(),
        ok: ms(p50) <= 20.0,
    });
    rows.push(Row {
        what: "(d) changes-since-100 p99",
        value: format!("{:.2} ms", ms(p99)),
        target: "<= 20 ms".into(),
        ok: ms(p99) <= 20.0,
    });

    // ---- (e) key rotation with 20 members ----
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
        let link = c
            .invite(&s, &clinic, roles[i % roles.len()])
            .expect("invite");
        mc.accept(&m, &link).expect("accept");
        c.admit(&s, &clinic, link.invitation_id)
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
    let mut current = c.join_view(&s, clinic.id);
    for round in 0..6 {
        let role = if round % 2 == 0 {
            Role::Optician
        } else {
            Role::Optometrist
        };
        let t1 = Instant::now();
        let (req, _) = c.rotation_request(
            &s,
            &current,
            optovault_shared::roster::RosterChange::ChangeRole { member, role },
        );
        prep.push(t1.elapsed());
        let t2 = Instant::now();
        c.rotate(clinic.id, &req).expect("rotate");
        commit.push(t2.elapsed());
        current = c.join_view(&s, clinic.id);
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
    rows.push(Row {
        what: "(e) rotation, 20 members, client + server median",
        value: format!(
            "{:.1} ms",
            ms(percentile(&prep, 50.0)) + ms(percentile(&commit, 50.0))
        ),
        target: "report".into(),
        ok: true,
    });

    let data_bytes: u64 = all_files(&server.data_dir)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    server.stop();

    println!();
    println!("| measure | result | target | met |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.what,
            r.value,
            r.target,
            if r.ok { "yes" } else { "NO" }
        );
    }
    println!(
        "\n{} records in {} pages; data dir {:.0} MiB on disk. Loopback, {} cores shared.",
        n_records,
        n_records.div_ceil(1000),
        data_bytes as f64 / 1048576.0,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
