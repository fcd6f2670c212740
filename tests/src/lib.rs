//! OptoVault test kit: a real server process ([`TestServer`]) and a native client ([`Client`])
//! that speaks the HTTP API with the real shared crypto (OPAQUE, key bundles, HPKE key wrapping,
//! sealed records), exactly as the browser client does.
//!
//! The server binary is found, in order: `$OPTOVAULT_SERVER_BIN`; `optovault-server` next to the
//! running test binary's profile directory (the same `CARGO_TARGET_DIR`); `<workspace>/target/
//! <profile>/optovault-server`. Build it first: `cargo build -p optovault-server`.
//!
//! Set `OPTOVAULT_KEEP_TEST_DIRS=1` to keep each server's temporary directory (data + log).

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use optovault_shared as shared;
use shared::crypto::{self, ClinicKeyring, CryptoError, RecordSlot, UserKeys};
use shared::domain::{Address, Patient, RecordBody, Sex};
use shared::envelope::Purpose;
use shared::opaque::{ClientLogin, Suite};
use shared::wire::*;
use shared::{Compartment, RecordEnvelope, B64};

pub use reqwest::Method;
pub mod pg;
pub mod team;

// ---- the server process ---------------------------------------------------------------------------

/// Where the workspace is (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The server binary for `profile` ("debug" or "release"); see the crate docs for the order.
pub fn server_bin(profile: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("OPTOVAULT_SERVER_BIN") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/<test> or target/<profile>/<bin>
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join("optovault-server");
            if dir.file_name().and_then(|n| n.to_str()) == Some(profile) && candidate.is_file() {
                return candidate;
            }
        }
    }
    workspace_root()
        .join("target")
        .join(profile)
        .join("optovault-server")
}

/// How to start a [`TestServer`].
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// The binary; default [`server_bin`] of the "debug" profile.
    pub bin: Option<PathBuf>,
    /// `RUST_LOG` for the server; `None` inherits the environment's.
    pub rust_log: Option<String>,
    /// Extra command-line flags, after the ones the kit passes.
    pub args: Vec<String>,
    /// The data directory; default `data` inside the server's temporary root.
    pub data_dir: Option<PathBuf>,
}

struct Running {
    child: Child,
    threads: Vec<JoinHandle<()>>,
}

/// The real server binary on 127.0.0.1, with a fresh temporary data directory. Its stdout and
/// stderr go to `log_path` (kept across restarts). Killed when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub static_dir: PathBuf,
    pub log_path: PathBuf,
    bin: PathBuf,
    rust_log: Option<String>,
    args: Vec<String>,
    tempdir: Option<tempfile::TempDir>,
    running: Option<Running>,
    log: Arc<Mutex<File>>,
    /// Exit statuses of previous runs (for `stop`/`restart` diagnostics).
    pub exits: Vec<ExitStatus>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on loopback");
    l.local_addr().unwrap().port()
}

impl TestServer {
    /// Starts the debug server binary with default options.
    pub fn start() -> TestServer {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(opts: ServerOptions) -> TestServer {
        let bin = opts.bin.unwrap_or_else(|| server_bin("debug"));
        if !bin.is_file() {
            panic!(
                "server binary not found at {}.\nBuild it first: `cargo build -p optovault-server` \
                 (with the same CARGO_TARGET_DIR as the tests, or `--release` for the bench), \
                 or set OPTOVAULT_SERVER_BIN to its path.",
                bin.display()
            );
        }
        let tempdir = tempfile::Builder::new()
            .prefix("optovault-test-")
            .tempdir()
            .expect("create a temporary directory");
        let root = tempdir.path().to_path_buf();
        let data_dir = opts.data_dir.unwrap_or_else(|| root.join("data"));
        let static_dir = root.join("static");
        fs::create_dir_all(&data_dir).unwrap();
        fs::create_dir_all(&static_dir).unwrap();
        fs::write(
            static_dir.join("index.html"),
            "<!doctype html><title>OptoVault test</title>",
        )
        .unwrap();
        let log_path = root.join("server.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut s = TestServer {
            addr,
            base: format!("http://{addr}"),
            root,
            data_dir,
            static_dir,
            log_path,
            bin,
            rust_log: opts.rust_log,
            args: opts.args,
            tempdir: Some(tempdir),
            running: None,
            log: Arc::new(Mutex::new(log)),
            exits: Vec::new(),
        };
        // The port was free a moment ago; another process may take it before the server binds.
        for attempt in 1..=5 {
            match s.spawn() {
                Ok(()) => return s,
                Err(e) if attempt < 5 && e.contains("in use") => {
                    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
                    s.addr = addr;
                    s.base = format!("http://{addr}");
                }
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    fn spawn_or_panic(&mut self) {
        if let Err(e) = self.spawn() {
            panic!("{e}");
        }
    }

    /// Starts the process and waits for its `listening on` line. Err: why it did not start.
    fn spawn(&mut self) -> Result<(), String> {
        assert!(self.running.is_none(), "server already running");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--addr")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--static-dir")
            .arg(&self.static_dir)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(l) = &self.rust_log {
            cmd.env("RUST_LOG", l);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log_out = self.log.clone();
        let t_out = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = Vec::new();
            let mut announced = false;
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = log_out.lock().unwrap().write_all(&line);
                        if !announced {
                            let text = String::from_utf8_lossy(&line);
                            if text.contains("listening on") {
                                announced = true;
                                let _ = tx.send(text.trim().to_string());
                            }
                        }
                    }
                }
            }
        });
        let log_err = self.log.clone();
        let t_err = std::thread::spawn(move || {
            let mut r = stderr;
            let mut buf = [0u8; 8192];
            loop {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = log_err.lock().unwrap().write_all(&buf[..n]);
                    }
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(_line) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().ok();
                    let _ = t_out.join();
                    let _ = t_err.join();
                    return Err(format!(
                        "server exited before printing `listening on` (status {status:?}).\nlog:\n{}",
                        self.log_text()
                    ));
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                let _ = t_out.join();
                let _ = t_err.join();
                return Err(format!(
                    "server exited before printing `listening on` (status {status}).\nlog:\n{}",
                    self.log_text()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let _ = t_out.join();
                let _ = t_err.join();
                return Err(format!(
                    "server did not print `listening on` within 30 s.\nlog:\n{}",
                    self.log_text()
                ));
            }
        }
        self.running = Some(Running {
            child,
            threads: vec![t_out, t_err],
        });
        Ok(())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.running
            .as_ref()
            .expect("server not running")
            .child
            .id()
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.running {
            None => false,
            Some(r) => matches!(r.child.try_wait(), Ok(None)),
        }
    }

    fn signal_and_reap(&mut self, sig: libc::c_int, grace: Duration) -> Option<ExitStatus> {
        let mut r = self.running.take()?;
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(r.child.id() as libc::pid_t, sig);
        }
        let deadline = Instant::now() + grace;
        let status = loop {
            if let Ok(Some(s)) = r.child.try_wait() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = r.child.kill();
                break r.child.wait().expect("wait for the server");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for t in r.threads.drain(..) {
            let _ = t.join();
        }
        let _ = self.log.lock().unwrap().flush();
        self.exits.push(status);
        Some(status)
    }

    /// Stops the server as an operator would (SIGTERM, then SIGKILL after 10 s) and waits until
    /// its output is fully in the log.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.signal_and_reap(libc::SIGTERM, Duration::from_secs(10))
    }

    /// Kills the server at once (SIGKILL), as a crash or power cut would.
    pub fn kill_hard(&mut self) -> Option<ExitStatus> {
        self.signal_and_reap(libc::SIGKILL, Duration::from_secs(10))
    }

    /// Starts the server again on the same address and data directory.
    pub fn start_again(&mut self) {
        self.spawn_or_panic();
    }

    /// Like [`start_again`](Self::start_again), for a start that may fail: Err says why (with the
    /// log), and the server is then not running.
    pub fn try_start_again(&mut self) -> Result<(), String> {
        self.spawn()
    }

    /// Graceful stop, then start again on the same data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_or_panic();
    }

    /// Everything the server printed so far.
    pub fn log_text(&self) -> String {
        let _ = self.log.lock().map(|mut f| f.flush());
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.kill_hard();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "---- server log ({}), last {} lines ----",
                self.log_path.display(),
                tail.len()
            );
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
        if std::env::var_os("OPTOVAULT_KEEP_TEST_DIRS").is_some() {
            if let Some(t) = self.tempdir.take() {
                eprintln!("keeping {}", t.keep().display());
            }
        }
    }
}

/// A value from /proc/<pid>/status in KiB (e.g. "VmHWM", "VmRSS").
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

// ---- raw HTTP ---------------------------------------------------------------------------------------

/// A response as received, for assertions on status, headers and body.
#[derive(Clone)]
pub struct Raw {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub content_type: Option<String>,
    pub set_cookies: Vec<String>,
    /// Every response header (lower-case name, value).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text();
        let shown: String = text.chars().take(600).collect();
        write!(
            f,
            "{} {} -> {} ({:?}) {}{}",
            self.method,
            self.path,
            self.status,
            self.content_type,
            shown,
            if text.len() > shown.len() { "…" } else { "" }
        )
    }
}

impl Raw {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
    /// The first value of a header (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// The body as the error shape `{code, message}` (both strings, code non-empty).
    pub fn error_body(&self) -> Option<ApiErrorBody> {
        let v = self.json()?;
        let code = v.get("code")?.as_str()?.to_string();
        let message = v.get("message")?.as_str()?.to_string();
        (!code.is_empty()).then_some(ApiErrorBody { code, message })
    }
    /// Parses a success body, panicking with the response if it is not what the API promises.
    pub fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{self:?}\nbody does not parse as {}: {e}",
                std::any::type_name::<T>()
            )
        })
    }
    /// Asserts an error response: status in `allowed`, a JSON `{code, message}` body.
    #[track_caller]
    pub fn expect_error(&self, allowed: &[u16]) -> ApiErrorBody {
        assert!(
            allowed.contains(&self.status),
            "expected status in {allowed:?}, got {self:?}"
        );
        self.error_body()
            .unwrap_or_else(|| panic!("expected a JSON {{code, message}} error body, got {self:?}"))
    }
}

/// An API call that did not succeed: the status and the error body.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub raw: Box<Raw>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {:?}", self.status, self.code, self.raw)
    }
}
impl std::error::Error for ApiError {}

impl From<Raw> for ApiError {
    fn from(raw: Raw) -> Self {
        match raw.error_body() {
            Some(b) => ApiError {
                status: raw.status,
                code: b.code,
                message: b.message,
                raw: Box::new(raw),
            },
            None => ApiError {
                status: raw.status,
                code: "<not a JSON {code,message} body>".into(),
                message: raw.text(),
                raw: Box::new(raw),
            },
        }
    }
}

#[derive(Debug)]
pub enum LoginError {
    /// The client-side OPAQUE finish or key bundle failed (wrong password, unknown user, ...).
    Crypto(CryptoError),
    /// The server refused a step.
    Api(ApiError),
}

impl From<ApiError> for LoginError {
    fn from(e: ApiError) -> Self {
        LoginError::Api(e)
    }
}

/// A logged-in account as the client holds it: its private keys live only here.
pub struct Session {
    pub account_id: Uuid,
    pub username: String,
    pub keys: UserKeys,
    pub info: SessionInfo,
    /// The `Set-Cookie` header of login/finish, verbatim.
    pub set_cookie: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({}, {})", self.username, self.account_id)
    }
}

impl Session {
    /// `ov_session=<value>` as it would be sent back in a `Cookie` header.
    pub fn cookie_pair(&self) -> String {
        self.set_cookie
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    }
    pub fn ed25519(&self) -> Vec<u8> {
        self.keys.public_keys().ed25519.0
    }
}

/// The clinic's profile plaintext (sealed under the demographics key, purpose ClinicProfile).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicProfile {
    pub name: String,
}

/// A clinic as its creator holds it.
#[derive(Clone, Debug)]
pub struct Clinic {
    pub id: Uuid,
    pub keyring: ClinicKeyring,
    pub view: ClinicView,
}

/// A blocking HTTP client with a cookie store, one per simulated browser.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Self::with_timeout(base, Duration::from_secs(120))
    }

    /// A client whose every request fails with a transport error after `timeout`.
    pub fn with_timeout(base: &str, timeout: Duration) -> Client {
        Client {
            base: base.to_string(),
            http: reqwest::blocking::Client::builder()
                .cookie_store(true)
                .timeout(timeout)
                .pool_max_idle_per_host(4)
                .build()
                .expect("build HTTP client"),
        }
    }

    /// A request with full control: method, path, optional body with content type, extra headers.
    /// Returns the transport error instead of panicking (e.g. a connection closed mid-upload).
    pub fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        headers: &[(&str, &str)],
    ) -> Result<Raw, reqwest::Error> {
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some((bytes, ct)) = body {
            rb = rb.header(reqwest::header::CONTENT_TYPE, ct).body(bytes);
        }
        let resp = rb.send()?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let set_cookies = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp.bytes()?.to_vec();
        Ok(Raw {
            method: method.to_string(),
            path: path.to_string(),
            status,
            content_type,
            set_cookies,
            headers,
            body,
        })
    }

    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        headers: &[(&str, &str)],
    ) -> Raw {
        self.try_send(method.clone(), path, body, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: transport error {e:?}"))
    }

    pub fn get(&self, path: &str) -> Raw {
        self.send(Method::GET, path, None, &[])
    }
    pub fn delete(&self, path: &str) -> Raw {
        self.send(Method::DELETE, path, None, &[])
    }
    pub fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Raw {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(Method::POST, path, Some((bytes, "application/json")), &[])
    }
    pub fn put<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Raw {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(Method::PUT, path, Some((bytes, "application/json")), &[])
    }
    /// POST without a body.
    pub fn post_empty(&self, path: &str) -> Raw {
        self.send(Method::POST, path, None, &[])
    }
    pub fn post_raw(&self, path: &str, bytes: Vec<u8>, content_type: &str) -> Raw {
        self.send(Method::POST, path, Some((bytes, content_type)), &[])
    }
    /// PUT with a raw body of the given content type.
    pub fn put_raw(&self, path: &str, bytes: Vec<u8>, content_type: &str) -> Raw {
        self.send(Method::PUT, path, Some((bytes, content_type)), &[])
    }

    // ---- encrypted files ----

    /// POST /api/clinics/{clinic_id}/files (201 on a new upload, 200 on a retried start).
    pub fn start_file_raw(&self, clinic_id: Uuid, req: &FileUploadStart) -> Raw {
        self.post(&format!("/api/clinics/{clinic_id}/files"), req)
    }
    pub fn start_file(
        &self,
        clinic_id: Uuid,
        req: &FileUploadStart,
    ) -> Result<FileStatus, ApiError> {
        Self::typed(self.start_file_raw(clinic_id, req))
    }
    pub fn file_status(&self, clinic_id: Uuid, file_id: Uuid) -> Result<FileStatus, ApiError> {
        Self::typed(self.get(&format!("/api/clinics/{clinic_id}/files/{file_id}")))
    }
    /// PUT one chunk as application/octet-stream.
    pub fn put_file_chunk(&self, clinic_id: Uuid, file_id: Uuid, index: u32, bytes: &[u8]) -> Raw {
        self.put_raw(
            &format!("/api/clinics/{clinic_id}/files/{file_id}/chunks/{index}"),
            bytes.to_vec(),
            "application/octet-stream",
        )
    }
    pub fn get_file_chunk(&self, clinic_id: Uuid, file_id: Uuid, index: u32) -> Raw {
        self.get(&format!(
            "/api/clinics/{clinic_id}/files/{file_id}/chunks/{index}"
        ))
    }
    pub fn complete_file(&self, clinic_id: Uuid, file_id: Uuid) -> Raw {
        self.post_empty(&format!(
            "/api/clinics/{clinic_id}/files/{file_id}/complete"
        ))
    }

    pub fn typed<T: DeserializeOwned>(raw: Raw) -> Result<T, ApiError> {
        if raw.is_success() {
            Ok(raw.parse())
        } else {
            Err(raw.into())
        }
    }

    fn empty(raw: Raw) -> Result<(), ApiError> {
        if raw.is_success() {
            Ok(())
        } else {
            Err(raw.into())
        }
    }

    // ---- accounts and sessions ----

    /// Registers with OPAQUE; generates the account's key pairs and seals them under the export key.
    pub fn register(&self, username: &str, password: &str) -> Result<Uuid, ApiError> {
        let username = shared::normalize_username(username).unwrap_or_else(|_| username.into());
        let (state, req) = crypto::registration_start(password).expect("registration start");
        let start: RegisterStartResponse = Self::typed(self.post(
            "/api/accounts/register/start",
            &RegisterStartRequest {
                username: username.clone(),
                registration_request: B64(req),
            },
        ))?;
        let (upload, export) = crypto::registration_finish(
            state,
            password,
            &username,
            start.registration_response.as_slice(),
        )
        .expect("registration finish (client side) on the server's RegistrationResponse");
        let keys = UserKeys::generate();
        let sealed = crypto::seal_key_bundle(&keys, &export, &username);
        let raw = self.post(
            "/api/accounts/register/finish",
            &RegisterFinishRequest {
                username,
                registration_upload: B64(upload),
                public_keys: keys.public_keys(),
                sealed_key_bundle: sealed,
            },
        );
        if raw.is_success() {
            assert_eq!(raw.status, 201, "register/finish must answer 201: {raw:?}");
        }
        let created: AccountCreated = Self::typed(raw)?;
        Ok(created.account_id)
    }

    /// Step one of login: the client's OPAQUE state and the server's answer.
    pub fn login_start(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(ClientLogin<Suite>, LoginStartResponse), ApiError> {
        let (state, req) = crypto::login_start(password).expect("login start");
        let resp: LoginStartResponse = Self::typed(self.post(
            "/api/session/login/start",
            &LoginStartRequest {
                username: username.to_string(),
                credential_request: B64(req),
            },
        ))?;
        Ok((state, resp))
    }

    /// Full login. On a client-side OPAQUE failure it reports the failure with login/abort (as
    /// the browser client does) and returns `LoginError::Crypto`.
    pub fn login(&self, username: &str, password: &str) -> Result<Session, LoginError> {
        let (raw, export, username) = self.login_password_step(username, password)?;
        self.session_from(raw, &export, &username)
    }

    /// The OPAQUE part of a login: returns the raw login/finish answer (200 with a session, or
    /// 202 asking for a second factor), the export key and the normalised username.
    pub fn login_password_step(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(Raw, crypto::ExportKey, String), LoginError> {
        let username = shared::normalize_username(username).unwrap_or_else(|_| username.into());
        let (state, start) = self.login_start(&username, password)?;
        let (fin, export) = match crypto::login_finish(
            state,
            password,
            &username,
            start.credential_response.as_slice(),
        ) {
            Ok(x) => x,
            Err(e) => {
                let raw = self.post(
                    "/api/session/login/abort",
                    &LoginAbortRequest {
                        login_id: start.login_id,
                    },
                );
                assert_eq!(raw.status, 204, "login/abort must answer 204: {raw:?}");
                return Err(LoginError::Crypto(e));
            }
        };
        let raw = self.post(
            "/api/session/login/finish",
            &LoginFinishRequest {
                login_id: start.login_id,
                credential_finalization: B64(fin),
            },
        );
        Ok((raw, export, username))
    }

    /// The second step of a login with a second factor.
    pub fn mfa_step(
        &self,
        mfa_token: Uuid,
        code: Option<&str>,
        recovery_code: Option<&str>,
    ) -> Raw {
        self.post(
            "/api/session/mfa",
            &MfaVerifyRequest {
                mfa_token,
                code: code.map(str::to_string),
                recovery_code: recovery_code.map(str::to_string),
                passkey: None,
            },
        )
    }

    /// Turns an answer carrying a session (login/finish or the MFA step) into a `Session`.
    pub fn session_from(
        &self,
        raw: Raw,
        export: &[u8],
        username: &str,
    ) -> Result<Session, LoginError> {
        let set_cookie = raw
            .set_cookies
            .iter()
            .find(|c| c.trim_start().starts_with("ov_session="))
            .cloned()
            .unwrap_or_default();
        let info: SessionInfo = Self::typed(raw)?;
        let keys =
            crypto::open_key_bundle(&info.sealed_key_bundle, export, username, &info.public_keys)
                .map_err(LoginError::Crypto)?;
        Ok(Session {
            account_id: info.account_id,
            username: username.to_string(),
            keys,
            info,
            set_cookie,
        })
    }

    /// Registers then logs in.
    pub fn signup(&self, username: &str, password: &str) -> Session {
        self.register(username, password)
            .unwrap_or_else(|e| panic!("register {username}: {e}"));
        self.login(username, password)
            .unwrap_or_else(|e| panic!("login {username}: {e:?}"))
    }

    pub fn session(&self) -> Result<SessionInfo, ApiError> {
        Self::typed(self.get("/api/session"))
    }

    pub fn logout(&self) -> Result<(), ApiError> {
        Self::empty(self.post_empty("/api/session/logout"))
    }

    pub fn health(&self) -> Raw {
        self.get("/api/health")
    }

    // ---- clinics ----

    pub fn create_clinic(&self, s: &Session, name: &str) -> Result<Clinic, ApiError> {
        let (req, keyring) = clinic_request(s, name);
        let raw = self.post("/api/clinics", &req);
        if raw.is_success() {
            assert_eq!(
                raw.status, 201,
                "POST /api/clinics must answer 201: {raw:?}"
            );
        }
        let view: ClinicView = Self::typed(raw)?;
        Ok(Clinic {
            id: req.clinic_id,
            keyring,
            view,
        })
    }

    pub fn clinics(&self) -> Result<ClinicList, ApiError> {
        Self::typed(self.get("/api/clinics"))
    }

    pub fn clinic(&self, clinic_id: Uuid) -> Result<ClinicView, ApiError> {
        Self::typed(self.get(&format!("/api/clinics/{clinic_id}")))
    }

    // ---- records ----

    pub fn put_record(
        &self,
        clinic_id: Uuid,
        write: &RecordWrite,
    ) -> Result<WriteResult, ApiError> {
        Self::typed(self.put(
            &format!(
                "/api/clinics/{clinic_id}/records/{}",
                write.envelope.record_id
            ),
            write,
        ))
    }

    /// Seals and writes one patient (create with `expected_version` 0).
    pub fn put_patient(
        &self,
        s: &Session,
        clinic: &Clinic,
        record_id: Uuid,
        expected_version: u64,
        p: &Patient,
    ) -> Result<WriteResult, ApiError> {
        let w = patient_write(
            s,
            clinic.id,
            &clinic.keyring,
            record_id,
            expected_version,
            p,
        );
        self.put_record(clinic.id, &w)
    }

    pub fn batch(
        &self,
        clinic_id: Uuid,
        writes: Vec<RecordWrite>,
    ) -> Result<BatchWriteResponse, ApiError> {
        Self::typed(self.post(
            &format!("/api/clinics/{clinic_id}/records"),
            &BatchWriteRequest {
                writes,
                report: None,
            },
        ))
    }

    pub fn get_record(&self, clinic_id: Uuid, record_id: Uuid) -> Result<StoredRecord, ApiError> {
        Self::typed(self.get(&format!("/api/clinics/{clinic_id}/records/{record_id}")))
    }

    pub fn list_records(
        &self,
        clinic_id: Uuid,
        after: Option<Uuid>,
        limit: Option<usize>,
    ) -> Result<RecordPage, ApiError> {
        let mut q = Vec::new();
        if let Some(a) = after {
            q.push(format!("after={a}"));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        Self::typed(self.get(&format!("/api/clinics/{clinic_id}/records?{}", q.join("&"))))
    }

    pub fn changes(
        &self,
        clinic_id: Uuid,
        since: u64,
        limit: usize,
    ) -> Result<ChangesPage, ApiError> {
        Self::typed(self.get(&format!(
            "/api/clinics/{clinic_id}/changes?since={since}&limit={limit}"
        )))
    }

    pub fn change_headers(
        &self,
        clinic_id: Uuid,
        since: u64,
        limit: usize,
    ) -> Result<ChangeHeaderPage, ApiError> {
        Self::typed(self.get(&format!(
            "/api/clinics/{clinic_id}/change-headers?since={since}&limit={limit}"
        )))
    }

    /// `POST …/records/read`: the records among `record_ids` the caller may read.
    pub fn read_records(
        &self,
        clinic_id: Uuid,
        record_ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, ApiError> {
        Self::typed::<ReadRecordsResponse>(self.post(
            &format!("/api/clinics/{clinic_id}/records/read"),
            &ReadRecordsRequest {
                record_ids: record_ids.to_vec(),
            },
        ))
        .map(|r| r.records)
    }

    /// Follows `changes` pages from `since` until `more` is false (at most `max_pages`).
    pub fn all_changes(
        &self,
        clinic_id: Uuid,
        since: u64,
        limit: usize,
        max_pages: usize,
    ) -> Result<(Vec<StoredRecord>, u64, usize), ApiError> {
        let mut out = Vec::new();
        let mut cursor = since;
        for pages in 1..=max_pages {
            let p = self.changes(clinic_id, cursor, limit)?;
            out.extend(p.changes);
            cursor = p.cursor;
            if !p.more {
                return Ok((out, cursor, pages));
            }
        }
        panic!("changes feed still had `more` after {max_pages} pages");
    }

    pub fn access_events(
        &self,
        clinic_id: Uuid,
        since: u64,
        limit: usize,
    ) -> Result<AuditPage, ApiError> {
        Self::typed(self.get(&format!(
            "/api/clinics/{clinic_id}/audit?since={since}&limit={limit}"
        )))
    }
}

// ---- sealing helpers --------------------------------------------------------------------------------

/// A new clinic's creation request (keys generated, wrapped to the creator, profile sealed).
pub fn clinic_request(s: &Session, name: &str) -> (CreateClinicRequest, ClinicKeyring) {
    clinic_request_for(s, Uuid::new_v4(), name)
}

/// A clinic creation request for a given clinic id (e.g. one that exists already).
pub fn clinic_request_for(
    s: &Session,
    clinic_id: Uuid,
    name: &str,
) -> (CreateClinicRequest, ClinicKeyring) {
    let keyring = ClinicKeyring::generate();
    let profile = crypto::seal_record(
        RecordSlot {
            clinic_id,
            chart_id: clinic_id,
            record_id: clinic_id,
            version: 1,
            purpose: Purpose::ClinicProfile,
        },
        Compartment::Demographics,
        &keyring,
        &s.account_id,
        &s.keys,
        &serde_json::to_vec(&ClinicProfile { name: name.into() }).unwrap(),
    )
    .expect("seal clinic profile");
    let my_x25519 = s.keys.public_keys().x25519;
    let wrapped_keys = keyring
        .keys()
        .iter()
        .map(|k| {
            crypto::wrap_clinic_key(&clinic_id, k, &s.account_id, my_x25519.as_slice())
                .expect("wrap clinic key")
        })
        .collect();
    let me = s.keys.public_keys();
    (
        CreateClinicRequest {
            clinic_id,
            profile,
            wrapped_keys,
            roster_genesis: optovault_shared::team::genesis_entry(
                clinic_id,
                s.account_id,
                &s.username,
                &s.keys,
                1_800_000_000,
            ),
            pinned_anchor: optovault_shared::team::pin_anchor(
                &s.keys,
                &clinic_id,
                me.ed25519.as_slice(),
            ),
        },
        keyring,
    )
}

/// Opens a clinic as seen by member `s`: unwraps its keys and decrypts its profile.
pub fn open_clinic(
    s: &Session,
    view: &ClinicView,
) -> Result<(ClinicProfile, ClinicKeyring), CryptoError> {
    let keyring =
        crypto::unwrap_keyring(&view.clinic_id, &view.wrapped_keys, &s.account_id, &s.keys)?;
    let pt = crypto::open_record(
        &view.clinic_id,
        Purpose::ClinicProfile,
        &view.profile,
        &keyring,
        |id| (id == &s.account_id).then(|| s.ed25519()),
    )?;
    let profile = serde_json::from_slice(&pt).map_err(|_| CryptoError::Open)?;
    Ok((profile, keyring))
}

/// Seals a patient as record `record_id` (its own chart) at `version`.
pub fn seal_patient(
    s: &Session,
    clinic_id: Uuid,
    keyring: &ClinicKeyring,
    record_id: Uuid,
    version: u64,
    p: &Patient,
) -> RecordEnvelope {
    seal_bytes(
        s,
        clinic_id,
        keyring,
        record_id,
        version,
        &serde_json::to_vec(&RecordBody::Patient(p.clone())).unwrap(),
    )
}

/// Seals arbitrary plaintext as a demographics record.
pub fn seal_bytes(
    s: &Session,
    clinic_id: Uuid,
    keyring: &ClinicKeyring,
    record_id: Uuid,
    version: u64,
    plaintext: &[u8],
) -> RecordEnvelope {
    crypto::seal_record(
        RecordSlot {
            clinic_id,
            chart_id: record_id,
            record_id,
            version,
            purpose: Purpose::Record,
        },
        Compartment::Demographics,
        keyring,
        &s.account_id,
        &s.keys,
        plaintext,
    )
    .expect("seal record")
}

/// A write of `p` as the next version after `expected_version`.
pub fn patient_write(
    s: &Session,
    clinic_id: Uuid,
    keyring: &ClinicKeyring,
    record_id: Uuid,
    expected_version: u64,
    p: &Patient,
) -> RecordWrite {
    RecordWrite {
        expected_version,
        envelope: seal_patient(s, clinic_id, keyring, record_id, expected_version + 1, p),
    }
}

/// Verifies and decrypts a patient record written by `s` (the only author in these tests).
pub fn open_patient(
    s: &Session,
    clinic_id: Uuid,
    keyring: &ClinicKeyring,
    env: &RecordEnvelope,
) -> Result<Patient, CryptoError> {
    open_patient_by(&[s], clinic_id, keyring, env)
}

/// Verifies and decrypts a patient record written by one of `authors`.
pub fn open_patient_by(
    authors: &[&Session],
    clinic_id: Uuid,
    keyring: &ClinicKeyring,
    env: &RecordEnvelope,
) -> Result<Patient, CryptoError> {
    let dir: HashMap<Uuid, Vec<u8>> = authors
        .iter()
        .map(|s| (s.account_id, s.ed25519()))
        .collect();
    let pt = crypto::open_record(&clinic_id, Purpose::Record, env, keyring, |id| {
        dir.get(id).cloned()
    })?;
    match serde_json::from_slice::<RecordBody>(&pt) {
        Ok(RecordBody::Patient(p)) => Ok(p),
        _ => Err(CryptoError::Open),
    }
}

/// A plausible, distinct patient.
pub fn sample_patient(i: usize) -> Patient {
    const GIVEN: [&str; 8] = [
        "Ada", "Bao", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana",
    ];
    const FAMILY: [&str; 8] = [
        "Okafor", "Nguyen", "Silva", "Kowalski", "Haddad", "Moreau", "Ito", "Berg",
    ];
    Patient {
        given_name: format!("{}{}", GIVEN[i % 8], i),
        family_name: FAMILY[(i / 8) % 8].to_string(),
        date_of_birth: format!("19{:02}-{:02}-{:02}", 40 + i % 60, 1 + i % 12, 1 + i % 28),
        sex: Sex::ALL[i % 4],
        phone: format!("+1 555 01{:05}", i % 100_000),
        email: format!("patient{i}@example.org"),
        address: Address {
            line1: format!("{} Lens Street", 1 + i),
            line2: String::new(),
            city: "Springfield".into(),
            region: "IL".into(),
            postal_code: format!("{:05}", 60000 + i % 1000),
            country: "US".into(),
        },
        insurance_member_id: format!("VSP-{i:06}"),
        notes: format!("Patient number {i}."),
        ..Default::default()
    }
}

/// A strong password of the kind the client's policy accepts, unique per call.
pub fn strong_password() -> String {
    format!(
        "violet tractor sings {} ferns",
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

/// A unique username with a readable prefix.
pub fn unique_username(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..10])
}

// ---- byte scanning (canary test) ----------------------------------------------------------------

/// The encodings under which a secret could sit in a file: the bytes themselves, lower case, hex,
/// and base64 (standard and URL alphabets) at each of the three alignments inside a longer
/// encoded blob. Each entry is (label, needle).
pub fn needle_variants(secret: &str) -> Variants {
    let b = secret.as_bytes();
    let mut out = vec![
        ("plain".to_string(), b.to_vec()),
        ("lowercase".to_string(), secret.to_lowercase().into_bytes()),
        (
            "hex".to_string(),
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
                .into_bytes(),
        ),
    ];
    let engines: [(&str, &base64::engine::GeneralPurpose); 2] = [
        ("base64", &base64::engine::general_purpose::STANDARD_NO_PAD),
        (
            "base64url",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ),
    ];
    for (name, engine) in engines {
        for shift in 0..3usize {
            // Encode with `shift` bytes in front, drop the characters those bytes influence, and
            // drop the last (possibly partial) quantum.
            let mut buf = vec![0u8; shift];
            buf.extend_from_slice(b);
            let enc = engine.encode(&buf);
            let skip = match shift {
                0 => 0,
                1 => 2,
                _ => 3,
            };
            let usable = (buf.len() / 3) * 4; // full quanta only
            if usable > skip + 8 {
                out.push((
                    format!("{name}@{shift}"),
                    enc.as_bytes()[skip..usable].to_vec(),
                ));
            }
        }
    }
    out
}

/// Every regular file under `dir` (recursively).
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// One needle found in one file.
#[derive(Clone, Debug)]
pub struct Hit {
    pub file: PathBuf,
    pub needle: String,
    pub variant: String,
    pub offset: usize,
}

/// Encodings of one secret: (variant label, bytes to search for).
pub type Variants = Vec<(String, Vec<u8>)>;

/// Searches every file for every (name, variants) needle.
pub fn scan_files(files: &[PathBuf], needles: &[(String, Variants)]) -> Vec<Hit> {
    let mut hits = Vec::new();
    for f in files {
        let bytes = fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        for (name, variants) in needles {
            for (variant, needle) in variants {
                if let Some(offset) = memchr::memmem::find(&bytes, needle) {
                    hits.push(Hit {
                        file: f.clone(),
                        needle: name.clone(),
                        variant: variant.clone(),
                        offset,
                    });
                }
            }
        }
    }
    hits
}

/// A random lowercase hex string of `n` characters.
pub fn random_hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

/// A realistic exam for visit `visit` of patient `i` (dates a year apart; IOP drifting up), used
/// to fill large clinics for benchmarks.
pub fn sample_exam(i: usize, visit: usize, provider: Uuid) -> shared::chart::Exam {
    use shared::chart::*;
    let year = 2024 + visit as i32 % 3;
    let va = |eye, entered: &str| {
        VisualAcuity::new(
            eye,
            VaDistance::Distance,
            VaCorrection::Cc,
            VaNotation::SnellenFeet,
            entered,
        )
        .expect("valid acuity")
    };
    let quarter = |q: i32| Diopters(q * 25);
    Exam {
        exam_type: ExamType::Comprehensive,
        provider: Some(StaffRef {
            account_id: provider,
            name: "Dr Fixture".into(),
        }),
        date: format!("{year}-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
        history: History {
            chief_complaint: format!("Routine check {visit}"),
            ..Default::default()
        },
        visual_acuity: vec![va(EyeSel::Od, "20/20"), va(EyeSel::Os, "20/25")],
        refractions: vec![Refraction {
            refraction_type: RefractionType::Manifest,
            od: Some(EyeRefraction {
                sphere: quarter(-(i as i32 % 16)),
                cylinder: quarter(-(visit as i32 % 3)),
                axis: (visit % 3 != 0).then_some(90),
                ..Default::default()
            }),
            os: Some(EyeRefraction {
                sphere: quarter(-(i as i32 % 12)),
                ..Default::default()
            }),
            notes: String::new(),
        }],
        iop: vec![
            IopReading {
                eye: Side::Od,
                mmhg: 14 + (i % 5) as u16 + visit as u16,
                method: IopMethod::Goldmann,
                time: Some("10:00".into()),
            },
            IopReading {
                eye: Side::Os,
                mmhg: 15 + (i % 4) as u16 + visit as u16,
                method: IopMethod::Goldmann,
                time: Some("10:00".into()),
            },
        ],
        plan: "Recall in 12 months".into(),
        ..Default::default()
    }
}

/// A write of a chart record other than the patient itself, sealed into its kind's compartment.
/// The first version of every index shard that `patients` (id, version, patient) fall into,
/// as a browser writes them: sealed into demographics, chart = the clinic.
pub fn index_writes(
    s: &Session,
    clinic_id: Uuid,
    keyring: &ClinicKeyring,
    patients: &[(Uuid, u64, Patient)],
) -> Vec<RecordWrite> {
    use shared::patient_index::{shard_of, shard_record_id, IndexEntry, PatientIndexShard};
    let mut shards: std::collections::BTreeMap<u16, PatientIndexShard> = Default::default();
    for (id, version, p) in patients {
        let n = shard_of(id);
        shards
            .entry(n)
            .or_insert_with(|| PatientIndexShard::new(n))
            .upsert(IndexEntry::summarise(*id, *version, p));
    }
    shards
        .into_values()
        .map(|shard| {
            let record_id = shard_record_id(&clinic_id, shard.shard);
            let body = RecordBody::PatientIndex(shard);
            let envelope = crypto::seal_record(
                RecordSlot {
                    clinic_id,
                    chart_id: clinic_id,
                    record_id,
                    version: 1,
                    purpose: Purpose::Record,
                },
                Compartment::Demographics,
                keyring,
                &s.account_id,
                &s.keys,
                &serde_json::to_vec(&body).expect("records serialise"),
            )
            .expect("seal record");
            RecordWrite {
                expected_version: 0,
                envelope,
            }
        })
        .collect()
}

pub fn chart_write(
    s: &Session,
    clinic_id: Uuid,
    keyring: &ClinicKeyring,
    chart_id: Uuid,
    record_id: Uuid,
    body: &RecordBody,
) -> RecordWrite {
    let envelope = crypto::seal_record(
        RecordSlot {
            clinic_id,
            chart_id,
            record_id,
            version: 1,
            purpose: Purpose::Record,
        },
        body.compartment(),
        keyring,
        &s.account_id,
        &s.keys,
        &serde_json::to_vec(body).expect("records serialise"),
    )
    .expect("seal record");
    RecordWrite {
        expected_version: 0,
        envelope,
    }
}
