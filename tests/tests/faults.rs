//! Storage faults: the disk fills up, the file system goes read-only. The server must answer 503
//! `storage_unavailable` with a readable message (never hang, never panic, never an opaque 500),
//! lose nothing it acknowledged, and serve again once the disk is usable, without a restart.
//!
//! What sled 0.34 does (see `classify` in server/src/store/sled_store.rs): the first failed log
//! write poisons the open database, every later write fails even after space returns, and only
//! reopening it clears that; the server's `RecoveringStore` closes and reopens it.
//!
//! These tests mount file systems, so they need root and mount(2) (a container run with
//! `--privileged`, or a VM): a tmpfs of a few MiB, and an ext4 image on a loop device mounted
//! with `errors=remount-ro` (how a real file system goes read-only under a running server: the
//! kernel refuses `mount -o remount,ro` while a file is open for writing). Where that is not
//! allowed they fail, saying so.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use optovault_shared::wire::*;
use optovault_tests::*;
use uuid::Uuid;

// ---- mounts ---------------------------------------------------------------------------------

/// Runs a command; Err has its output.
fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", args[0]))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            text.trim()
        ))
    }
}

const NEEDS_MOUNT: &str = "this test mounts file systems: run it as root where mount(2) is \
                           allowed (a VM, or a container started with --privileged)";

/// A file system mounted for one test; unmounted when dropped, even when the test fails.
struct Mount {
    dir: PathBuf,
    /// The ext4 image behind a loop mount.
    image: Option<PathBuf>,
    mounted: bool,
    _root: tempfile::TempDir,
}

impl Mount {
    fn root() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::Builder::new()
            .prefix("optovault-faults-")
            .tempdir()
            .expect("create a temporary directory");
        let dir = root.path().join("mnt");
        fs::create_dir(&dir).unwrap();
        (root, dir)
    }

    /// A tmpfs of `size` (as mount takes it: "24m").
    fn tmpfs(size: &str) -> Mount {
        let (root, dir) = Self::root();
        let opts = format!("size={size},mode=0755");
        if let Err(e) = run(&["mount", "-t", "tmpfs", "-o", &opts, "tmpfs", path(&dir)]) {
            panic!("{NEEDS_MOUNT}.\n{e}");
        }
        Mount {
            dir,
            image: None,
            mounted: true,
            _root: root,
        }
    }

    /// A fresh ext4 file system of `mib` MiB on a loop device, mounted with errors=remount-ro.
    fn ext4(mib: u64) -> Mount {
        let (root, dir) = Self::root();
        let image = root.path().join("fs.img");
        fs::File::create(&image)
            .and_then(|f| f.set_len(mib << 20))
            .expect("create the image file");
        if let Err(e) = run(&["mkfs.ext4", "-q", "-F", path(&image)]) {
            panic!("this test needs mkfs.ext4 (e2fsprogs): {e}");
        }
        let mut m = Mount {
            dir,
            image: Some(image),
            mounted: false,
            _root: root,
        };
        if let Err(e) = m.mount_image() {
            panic!("{NEEDS_MOUNT}, with loop devices and ext4.\n{e}");
        }
        m
    }

    fn mount_image(&mut self) -> Result<(), String> {
        let image = self.image.clone().expect("an image mount");
        run(&[
            "mount",
            "-o",
            "loop,errors=remount-ro",
            path(&image),
            path(&self.dir),
        ])?;
        self.mounted = true;
        Ok(())
    }

    fn remount(&self, how: &str) -> Result<(), String> {
        run(&["mount", "-o", &format!("remount,{how}"), path(&self.dir)]).map(|_| ())
    }

    /// Unmounts, retrying while the file system is busy for up to `patience`.
    fn unmount(&mut self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        loop {
            match run(&["umount", path(&self.dir)]) {
                Ok(_) => {
                    self.mounted = false;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Makes the kernel find an error in this ext4 file system, as a failing disk would; with
    /// errors=remount-ro it turns the file system read-only at once, under open files.
    fn fail_ext4(&self) {
        let source = run(&["findmnt", "-n", "-o", "SOURCE", path(&self.dir)]).unwrap();
        let dev = Path::new(source.trim())
            .file_name()
            .expect("a device")
            .to_owned();
        let knob = Path::new("/sys/fs/ext4").join(dev).join("trigger_fs_error");
        fs::write(&knob, "optovault fault test\n")
            .unwrap_or_else(|e| panic!("write {}: {e}", knob.display()));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = self.unmount(Duration::from_secs(5)) {
                eprintln!("{e}; detaching lazily");
                let _ = run(&["umount", "-l", path(&self.dir)]);
            }
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Fills the file system holding `file` by writing `file` until nothing more fits; returns the
/// bytes written.
fn fill(file: &Path) -> u64 {
    let mut f = fs::File::create(file).expect("create the filler file");
    let chunk = vec![0xA5u8; 1 << 20];
    let (mut size, mut total) = (chunk.len(), 0u64);
    loop {
        match f.write(&chunk[..size]) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                if size == 512 {
                    break;
                }
                size /= 2;
            }
            Err(e) => panic!("fill {}: {e}", file.display()),
        }
    }
    total
}

/// The files process `pid` has open under `dir`.
fn open_files_under(pid: u32, dir: &Path) -> Vec<PathBuf> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter(|target| target.starts_with(dir))
        .collect()
}

/// Whether a new file can be written in `dir` (Err: the OS error).
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let p = dir.join(".probe");
    fs::write(&p, b"probe")?;
    fs::remove_file(&p)
}

// ---- the API side ---------------------------------------------------------------------------------

/// A logged-in owner of one clinic, writing new patients.
struct Writer {
    c: Client,
    s: Session,
    clinic: Clinic,
    user: String,
    password: String,
    n: usize,
}

/// A write the server acknowledged.
#[derive(Debug)]
struct Acked {
    record_id: Uuid,
    seq: u64,
    write: RecordWrite,
}

impl Writer {
    fn new(server: &TestServer, clinic_name: &str) -> Writer {
        // Every request answers within this, or the test fails: a hung request is a bug.
        let c = Client::with_timeout(&server.base, Duration::from_secs(20));
        let user = unique_username("faults");
        let password = strong_password();
        let s = c.signup(&user, &password);
        let clinic = c.create_clinic(&s, clinic_name).unwrap();
        Writer {
            c,
            s,
            clinic,
            user,
            password,
            n: 0,
        }
    }

    fn send(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Raw {
        self.c
            .try_send(
                method.clone(),
                path,
                body.map(|b| (b, "application/json")),
                &[],
            )
            .unwrap_or_else(|e| panic!("{method} {path}: no answer (hung or dropped): {e}"))
    }

    /// Writes a new patient; the write and the answer.
    fn write(&mut self) -> (RecordWrite, Raw) {
        self.n += 1;
        let id = Uuid::new_v4();
        let w = patient_write(
            &self.s,
            self.clinic.id,
            &self.clinic.keyring,
            id,
            0,
            &sample_patient(self.n),
        );
        let path = format!("/api/clinics/{}/records/{id}", self.clinic.id);
        let raw = self.send(Method::PUT, &path, Some(serde_json::to_vec(&w).unwrap()));
        (w, raw)
    }

    fn acked(w: RecordWrite, raw: &Raw) -> Acked {
        let r: WriteResult = raw.parse();
        assert_eq!(r.record_id, w.envelope.record_id);
        assert_eq!(r.version, 1);
        Acked {
            record_id: r.record_id,
            seq: r.seq,
            write: w,
        }
    }

    fn write_ok(&mut self) -> Acked {
        let (w, raw) = self.write();
        assert!(raw.is_success(), "{raw:?}");
        Self::acked(w, &raw)
    }

    /// Writes until one succeeds (the store recovering), for up to `patience`; 503 meanwhile.
    fn write_when_back(&mut self, patience: Duration) -> (Acked, Duration) {
        let started = Instant::now();
        loop {
            let (w, raw) = self.write();
            if raw.is_success() {
                return (Self::acked(w, &raw), started.elapsed());
            }
            assert_unavailable(&raw);
            assert!(
                started.elapsed() < patience,
                "writes still refused {patience:?} after the disk was usable again: {raw:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Reads one record: Some(it) if served, None on 503 (anything else fails the test).
    fn read(&self, record_id: Uuid) -> Option<StoredRecord> {
        let raw = self.send(
            Method::GET,
            &format!("/api/clinics/{}/records/{record_id}", self.clinic.id),
            None,
        );
        if raw.is_success() {
            Some(raw.parse())
        } else {
            assert_unavailable(&raw);
            None
        }
    }

    /// Every record by the change feed; the seqs must be exactly 1..=head (these tests only
    /// create records).
    fn feed(&self) -> BTreeMap<Uuid, StoredRecord> {
        let (changes, cursor, _) = self.c.all_changes(self.clinic.id, 0, 1000, 100).unwrap();
        let head = self.c.changes(self.clinic.id, 0, 1).unwrap().head;
        assert_eq!(cursor, head);
        let seqs: Vec<u64> = changes.iter().map(|r| r.seq).collect();
        assert_eq!(
            seqs,
            (1..=head).collect::<Vec<_>>(),
            "change seqs are not exactly 1..={head}"
        );
        changes
            .into_iter()
            .map(|r| (r.envelope.record_id, r))
            .collect()
    }

    /// A session that works: the same one, or a new login if the old one is gone (401).
    fn ensure_session(&mut self) {
        if let Err(e) = self.c.session() {
            assert_eq!(e.status, 401, "{e}");
            self.s = self.c.login(&self.user, &self.password).unwrap();
        }
    }
}

/// 503 `storage_unavailable` with a message a person can act on, and Retry-After.
#[track_caller]
fn assert_unavailable(raw: &Raw) {
    let e = raw.expect_error(&[503]);
    assert_eq!(e.code, "storage_unavailable", "{raw:?}");
    assert!(
        e.message.contains("disk") && e.message.contains("Try again"),
        "{raw:?}"
    );
    assert!(raw.header("retry-after").is_some(), "{raw:?}");
}

/// Every acknowledged write is in `feed` at its seq with its exact envelope; returns how many.
#[track_caller]
fn assert_all_there(feed: &BTreeMap<Uuid, StoredRecord>, acked: &[Acked]) -> usize {
    let lost: Vec<&Acked> = acked
        .iter()
        .filter(|a| {
            feed.get(&a.record_id)
                .map_or(true, |r| r.seq != a.seq || r.envelope != a.write.envelope)
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost or changed: {:?}",
        lost.len(),
        acked.len(),
        lost.iter()
            .map(|a| (a.record_id, a.seq))
            .collect::<Vec<_>>()
    );
    acked.len()
}

/// How many of the refused writes are in `feed` anyway (they should not be).
fn refused_but_stored(feed: &BTreeMap<Uuid, StoredRecord>, refused: &[RecordWrite]) -> usize {
    refused
        .iter()
        .filter(|w| feed.contains_key(&w.envelope.record_id))
        .count()
}

#[track_caller]
fn assert_log_clean(server: &TestServer) {
    let log = server.log_text();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

fn data_dir_on(m: &Mount) -> ServerOptions {
    ServerOptions {
        data_dir: Some(m.dir.join("data")),
        ..Default::default()
    }
}

// ---- the tests ------------------------------------------------------------------------------

#[test]
fn a_full_disk_answers_503_loses_nothing_and_recovers_without_a_restart() {
    let mut mount = Mount::tmpfs("24m");
    let mut server = TestServer::start_with(data_dir_on(&mount));
    let pid = server.pid();
    let mut w = Writer::new(&server, "Full Disk Optics");
    let mut acked: Vec<Acked> = (0..10).map(|_| w.write_ok()).collect();
    let before = w.feed();
    let first = *before.keys().next().unwrap();

    let filler = mount.dir.join("filler");
    let filled = fill(&filler);
    assert_eq!(
        probe_write(&mount.dir).unwrap_err().raw_os_error(),
        Some(libc::ENOSPC),
        "the disk should be full"
    );

    // (a) Writes go on until the disk refuses one: 503, with a clear body.
    let mut refused = Vec::new();
    let mut fitted = 0;
    while refused.is_empty() {
        let (rw, raw) = w.write();
        if raw.is_success() {
            acked.push(Writer::acked(rw, &raw));
            fitted += 1;
            assert!(fitted < 2000, "2000 writes fitted on a full disk?");
        } else {
            assert_unavailable(&raw);
            refused.push(rw);
        }
    }
    // While the disk stays full, every write is refused the same way, and every read is
    // either served correctly or refused the same way; the server stays up.
    for _ in 0..5 {
        let (rw, raw) = w.write();
        assert_unavailable(&raw);
        refused.push(rw);
        if let Some(r) = w.read(first) {
            assert_eq!(&r, &before[&first]);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.is_running(), "the server died on a full disk");
    let log = server.log_text();
    assert!(log.contains("STORAGE FAILURE"), "no loud log line:\n{log}");

    // (c) Space returns: writes work again, in the same process.
    fs::remove_file(&filler).unwrap();
    let (next, waited) = w.write_when_back(Duration::from_secs(30));
    acked.push(next);
    assert_eq!(server.pid(), pid, "the server restarted");
    assert!(server.is_running());
    assert!(server.log_text().contains("STORAGE RECOVERED"));

    // (b) Nothing acknowledged is lost; the seqs stay gapless (a refused write's seq is reused).
    w.ensure_session();
    let after = w.feed();
    for (id, r) in &before {
        assert_eq!(after.get(id), Some(r), "record {id} changed");
    }
    let kept = assert_all_there(&after, &acked);
    let ghosts = refused_but_stored(&after, &refused);
    assert_eq!(ghosts, 0, "refused writes were stored after all");
    for _ in 0..5 {
        acked.push(w.write_ok());
    }

    // And all of it is on disk: a clean restart shows the same.
    server.restart();
    w.ensure_session();
    let restarted = w.feed();
    assert_all_there(&restarted, &acked);
    assert_log_clean(&server);
    eprintln!(
        "disk full: filler {filled} bytes; {fitted} writes fitted after it; {} refused (503); \
         writable again {waited:?} after space returned, same process; {kept} acknowledged \
         writes all kept",
        refused.len()
    );
    drop(server);
    mount.unmount(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_file_system_gone_read_only_answers_503_and_recovers_after_repair_without_a_restart() {
    let mut mount = Mount::ext4(64);
    let mut server = TestServer::start_with(data_dir_on(&mount));
    let pid = server.pid();
    let mut w = Writer::new(&server, "Read Only Optics");
    let mut acked: Vec<Acked> = (0..10).map(|_| w.write_ok()).collect();
    let before = w.feed();
    let first = *before.keys().next().unwrap();

    // The kernel turns the file system read-only under the running server, right after the
    // last acknowledgement: whatever the journal had not committed by then is gone, so this
    // also checks that an acknowledged write is on disk with its metadata (sled's own flush
    // ends with sync_file_range, which leaves the file's size and extents to a later commit).
    mount.fail_ext4();
    assert_eq!(
        probe_write(&mount.dir).unwrap_err().raw_os_error(),
        Some(libc::EROFS),
        "the file system should be read-only now"
    );
    let mut refused = Vec::new();
    for _ in 0..5 {
        let (rw, raw) = w.write();
        assert_unavailable(&raw);
        refused.push(rw);
        if let Some(r) = w.read(first) {
            assert_eq!(&r, &before[&first]);
        }
    }
    assert!(server.is_running(), "the server died on a read-only disk");

    // The repair an operator does: unmount, check, mount (an ext4 that aborted its journal
    // cannot simply be remounted read-write). The server has closed its database, so the file
    // system can be unmounted under it; while it is away the server must not create an empty
    // database in the bare mount point.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = open_files_under(pid, &mount.dir);
        if open.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server still has files of the failed database open: {open:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let restarted = match mount.unmount(Duration::from_secs(2)) {
        Ok(()) => {
            std::thread::sleep(Duration::from_millis(700));
            let (_, raw) = w.write();
            assert_unavailable(&raw);
            assert!(
                !mount.dir.join("data").exists(),
                "the server created a database in the unmounted mount point"
            );
            false
        }
        Err(e) => {
            // Something other than an open file pins the mount (say a socket bound in the data
            // directory): the repair then needs the server stopped, and a start recovers.
            eprintln!("{e}: the server has no file open there; stopping it for the repair");
            server.stop();
            mount.unmount(Duration::from_secs(5)).unwrap();
            true
        }
    };
    let image = mount.image.clone().unwrap();
    match Command::new("e2fsck")
        .args(["-f", "-y"])
        .arg(&image)
        .status()
    {
        Ok(s) if matches!(s.code(), Some(0..=2)) => {}
        other => panic!("e2fsck: {other:?}"),
    }
    mount.mount_image().unwrap();
    if restarted {
        server.start_again();
    }
    let (next, waited) = w.write_when_back(Duration::from_secs(30));
    acked.push(next);
    if !restarted {
        assert_eq!(server.pid(), pid, "the server restarted");
    }

    w.ensure_session();
    let after = w.feed();
    let kept = assert_all_there(&after, &acked);
    assert_eq!(refused_but_stored(&after, &refused), 0);
    assert_log_clean(&server);
    eprintln!(
        "read-only ext4: {} writes refused (503); writable {waited:?} after the repaired file \
         system was mounted again, {}; {kept} acknowledged writes all kept",
        refused.len(),
        if restarted {
            "after a restart"
        } else {
            "same process"
        }
    );
    drop(server);
    mount.unmount(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_read_only_data_directory_is_refused_clearly_and_loses_nothing() {
    let mut mount = Mount::tmpfs("24m");
    let mut server = TestServer::start_with(data_dir_on(&mount));
    let mut w = Writer::new(&server, "Read Only Dir Optics");
    let mut acked: Vec<Acked> = (0..10).map(|_| w.write_ok()).collect();

    // A live `mount -o remount,ro` is refused by the kernel while the server holds its database
    // open for writing. Should a kernel allow it, the server must handle it like a full disk.
    match mount.remount("ro") {
        Err(e) => {
            assert!(e.contains("busy"), "unexpected: {e}");
            eprintln!("live read-only remount refused by the kernel (busy), as expected");
        }
        Ok(()) => {
            let (_, raw) = w.write();
            assert_unavailable(&raw);
            mount.remount("rw").unwrap();
            acked.push(w.write_when_back(Duration::from_secs(30)).0);
        }
    }
    let before = w.feed();

    // Started on a read-only data directory, the server refuses to start, saying why.
    server.stop();
    mount
        .remount("ro")
        .expect("remount read-only with the server stopped");
    let err = server
        .try_start_again()
        .expect_err("the server started on a read-only data directory");
    assert!(
        err.contains("storage unavailable") && err.contains("Read-only file system"),
        "the refusal should say the disk is read-only:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // Writable again: everything is there.
    mount.remount("rw").unwrap();
    server.start_again();
    w.ensure_session();
    let after = w.feed();
    assert_eq!(after, before);
    assert_all_there(&after, &acked);
    acked.push(w.write_ok());
    assert_log_clean(&server);
    drop(server);
    mount.unmount(Duration::from_secs(5)).unwrap();
}
