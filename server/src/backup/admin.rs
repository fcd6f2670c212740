//! The running server's local admin socket, `<data dir>/admin.sock` (mode 0600).
//!
//! sled opens its directory exclusively, so while the server runs, `optovault-server backup`
//! cannot open the database itself: it asks the server through this socket instead, and the
//! server writes the snapshot. Whoever can open the socket already owns the data directory, so it
//! grants nothing new; it is never reachable over the network.
//!
//! Protocol: one JSON request line, `{"backup":{"out":"/absolute/path"}}`; the server answers
//! with `{"progress":rows}` lines and then `{"done":header}` or `{"error":"…"}`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::archive::Header;
use super::write_backup;
use crate::store::{RecoveringStore, SledStore};

pub const SOCKET_NAME: &str = "admin.sock";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Backup { out: PathBuf },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Progress(u64),
    Done(Header),
    Error(String),
}

/// Binds the socket (replacing a stale one left by a crash) and serves it until the process ends.
pub fn serve(data_dir: &Path, store: RecoveringStore) -> std::io::Result<()> {
    let path = data_dir.join(SOCKET_NAME);
    // sled's lock on the directory is already ours, so no other server can be using this path.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let store = store.with_current(|s| s.clone());
                    tokio::spawn(async move {
                        let store = match store {
                            Ok(s) => s,
                            Err(e) => {
                                tracing::warn!(error = %e, "admin socket: database unavailable");
                                return;
                            }
                        };
                        if let Err(e) = handle(stream, store).await {
                            tracing::warn!(error = %e, "admin socket request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "admin socket stopped accepting");
                    return;
                }
            }
        }
    });
    Ok(())
}

async fn handle(stream: UnixStream, store: SledStore) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let reply = |r: &Reply| {
        let mut v = serde_json::to_vec(r).expect("reply serialises");
        v.push(b'\n');
        v
    };
    let request: Request = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            return write
                .write_all(&reply(&Reply::Error(format!("bad request: {e}"))))
                .await
        }
    };
    match request {
        Request::Backup { out } => {
            if !out.is_absolute() {
                return write
                    .write_all(&reply(&Reply::Error("the path must be absolute".into())))
                    .await;
            }
            tracing::info!(file = %out.display(), "backup requested on the admin socket");
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
            let job = tokio::task::spawn_blocking(move || {
                write_backup(&store.into(), &out, |rows| {
                    let _ = tx.send(rows);
                })
            });
            while let Some(rows) = rx.recv().await {
                // The client may go away; the backup still completes.
                let _ = write.write_all(&reply(&Reply::Progress(rows))).await;
            }
            let result = match job.await {
                Ok(Ok(header)) => Reply::Done(header),
                Ok(Err(e)) => Reply::Error(e.to_string()),
                Err(e) => Reply::Error(e.to_string()),
            };
            if let Reply::Error(e) = &result {
                tracing::error!(error = %e, "BACKUP FAILED (admin socket)");
            }
            write.write_all(&reply(&result)).await
        }
    }
}

/// The command-line side: asks a running server for a backup. `Ok(None)` when no server answers
/// on the socket (the caller then opens the database itself).
pub async fn request_backup(
    data_dir: &Path,
    out: &Path,
    mut progress: impl FnMut(u64),
) -> Result<Option<Header>, String> {
    let path = data_dir.join(SOCKET_NAME);
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    let (read, mut write) = stream.into_split();
    let mut req = serde_json::to_vec(&Request::Backup {
        out: out.to_path_buf(),
    })
    .expect("request serialises");
    req.push(b'\n');
    write.write_all(&req).await.map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        match serde_json::from_str::<Reply>(&line).map_err(|e| e.to_string())? {
            Reply::Progress(rows) => progress(rows),
            Reply::Done(h) => return Ok(Some(h)),
            Reply::Error(e) => return Err(e),
        }
    }
    Err("the server closed the admin socket before the backup finished".into())
}
