//! The PostgreSQL backend (`--store postgres://…`), for operators who host many clinics and run
//! several server processes on one database. sqlx's runtime query API only: a build never needs
//! a live database.
//!
//! **Tables mirror sled's trees** (see the table in `sled_store.rs` and
//! `server/migrations/0001_sled_trees.sql`): one table per tree, the tree's key parts as typed
//! primary-key columns with `clinic_id` first in every per-clinic table, JSON values as the same
//! bytes sled stores (`bytea`), sled's packed binary values (seq ‖ version, feed rows, heads) as
//! typed columns. No query joins or orders across clinics except operator-wide maintenance and
//! listings (`purge_expired`, `purge_trash`, `prune_audit`, `audit_logs`, `clinics_of`), and the
//! only joins are of one clinic's `records` and `feed` on (`clinic_id`, `seq`).
//!
//! **Nothing relies on process memory for correctness.** Every write is one transaction at READ
//! COMMITTED that takes row locks on what it depends on:
//! * the clinic's `heads` row (`FOR UPDATE`) before a record write reads or changes `records`,
//!   `feed`, `versions` or `trash`: record writes of one clinic are serialised, so sequence
//!   numbers are gapless and version checks see every committed write;
//! * a log's `event_heads` row (`FOR UPDATE`, created at seq 0 if missing) before an audit entry
//!   is chained to it;
//! * the clinic's `roster_heads` row (`FOR UPDATE` to append, `FOR SHARE` for a write guard), so
//!   a write checked against a key epoch cannot commit after a rotation that changed it.
//!
//! Locks are always taken in one order, so writers never wait on each other in a cycle:
//! `roster_heads` → `charts` → `members` → `heads` → the rows of one record write (records,
//! feed, versions, trash, files) → `event_heads` (several logs in id order). A deadlock or
//! serialisation failure the database reports anyway is retried (the whole transaction).
//! An import (`import_rows`, `finish_import`, `discard_import`) takes its clinic's `heads` row
//! first: the clinic does not exist yet, so no other writer holds any of its rows, and the
//! steps of two imports of one clinic (through two processes) wait for each other; the
//! accounts it creates are inserted in id order, its log's head is taken last.
//!
//! A write is durable when its transaction commits (`synchronous_commit` at its default, `on`);
//! the two writes the trait calls advisory (`touch_session`, non-durable `append_event`) commit
//! with `synchronous_commit = off`. Connection and I/O failures, a full disk and a read-only
//! server are `StoreError::Unavailable` (HTTP 503); anything else the database says is
//! `StoreError::Backend`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use optovault_shared::audit::GENESIS_HASH;
use optovault_shared::wire::{
    AuditCheckpoint, AuditEntry, AuditKeySetup, ClinicPolicy, InvitationStatus, WrappedAuditKey,
    WrappedKey,
};
use optovault_shared::B64;
use optovault_shared::{Compartment, UnixTime};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use uuid::Uuid;

use super::*;

/// The schema migrations, in order, compiled into the binary (a test checks that this list is
/// exactly `server/migrations/`). Never edit a file once released: add the next one.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "sled trees",
    include_str!("../../migrations/0001_sled_trees.sql"),
)];

/// The newest schema this binary knows.
pub const SCHEMA_VERSION: i64 = 1;

/// How many times a transaction the database aborted for a deadlock or a serialisation failure
/// is tried again.
const RETRIES: u32 = 8;

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<Vec<Migration>, Box<dyn std::error::Error + Send + Sync>>,
                > + Send
                + 's,
        >,
    > {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(*v, (*d).into(), MigrationType::Simple, (*sql).into(), false)
                })
                .collect())
        })
    }
}

/// Options of [`PgStore::connect`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections this process keeps open at most.
    pub max_connections: u32,
    /// How long a request waits for a free connection before it fails (503).
    pub acquire_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// What [`PgStore::connect`] can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PgConnectError {
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error(
        "the database's schema is version {found}, newer than this server knows ({known}): \
         run a newer OptoVault server (refusing to start)"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("schema migration failed: {0}")]
    Migrate(String),
}

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// An error inside a transaction: the database's own (kept whole, so deadlocks can be retried),
/// or the store's verdict (conflicts, corrupt rows).
enum E {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for E {
    fn from(e: sqlx::Error) -> Self {
        E::Db(e)
    }
}

impl From<StoreError> for E {
    fn from(e: StoreError) -> Self {
        E::Store(e)
    }
}

type R<T> = Result<T, E>;

impl E {
    fn into_store(self) -> StoreError {
        match self {
            E::Db(e) => classify(&e),
            E::Store(e) => e,
        }
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Deadlock detected, serialisation failure: the transaction can simply run again.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(sqlstate(e).as_deref(), Some("40P01" | "40001"))
}

/// Maps a database error to the store's: what a retry later may fix (connection, I/O, a full
/// disk, a server shutting down or read-only) is `Unavailable`, the rest `Backend`.
pub(super) fn classify(e: &sqlx::Error) -> StoreError {
    let unavailable = match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => match sqlstate(e) {
            // 08 connection exception, 53 insufficient resources (disk full, out of memory,
            // too many connections), 57P admin/crash shutdown or starting up, 58 system/I/O
            // error, 25006 read-only transaction (a standby), 40001/40P01 after the retries.
            Some(c) => {
                c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57P")
                    || c.starts_with("58")
                    || c == "25006"
                    || c == "40001"
                    || c == "40P01"
            }
            None => false,
        },
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    classify(&e)
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store rows serialise")
}

fn from_json<T: DeserializeOwned>(table: &'static str, b: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(b).map_err(|_| StoreError::Corrupt(table))
}

fn event_scope(clinic_id: Option<Uuid>) -> Uuid {
    clinic_id.unwrap_or(Uuid::nil())
}

fn u(v: i64) -> u64 {
    v as u64
}

fn i(v: u64) -> i64 {
    v as i64
}

fn hash32(table: &'static str, b: &[u8]) -> StoreResult<[u8; 32]> {
    b.try_into().map_err(|_| StoreError::Corrupt(table))
}

/// Runs `$body` (a future over `$c: &mut PgConnection`) in a transaction and commits it; retries
/// the whole transaction on a deadlock or serialisation failure.
macro_rules! tx {
    ($self:expr, |$c:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let r: R<_> = async {
                let mut t = $self.pool.begin().await?;
                let v = {
                    let $c: &mut PgConnection = &mut *t;
                    $body.await?
                };
                t.commit().await?;
                Ok(v)
            }
            .await;
            match r {
                Ok(v) => break Ok(v),
                Err(E::Db(e)) if retryable(&e) && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, "transaction retried after {e}");
                    tokio::time::sleep(Duration::from_millis(5 << attempt.min(6))).await;
                }
                Err(e) => break Err(e.into_store()),
            }
        }
    }};
}

/// Runs `$body` (a future over `$c: &mut PgConnection`) on a pooled connection, outside an
/// explicit transaction: for single-statement reads.
macro_rules! read {
    ($self:expr, |$c:ident| $body:expr) => {{
        let r: R<_> = async {
            let mut conn = $self.pool.acquire().await?;
            let $c: &mut PgConnection = &mut *conn;
            $body.await
        }
        .await;
        r.map_err(E::into_store)
    }};
}

/// A record row from `feed` or `versions` columns.
fn record_row(r: &PgRow) -> R<RecordRow> {
    let code: i16 = r.try_get("compartment")?;
    Ok(RecordRow {
        record_id: r.try_get("record_id")?,
        chart_id: r.try_get("chart_id")?,
        seq: u(r.try_get("seq")?),
        version: u(r.try_get("version")?),
        updated_at: r.try_get("updated_at")?,
        compartment: u8::try_from(code)
            .ok()
            .and_then(Compartment::from_code)
            .ok_or(StoreError::Corrupt("feed"))?,
        envelope: r.try_get("envelope")?,
    })
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// One JSON value (the first column of at most one row), parsed.
async fn get_json<'q, T: DeserializeOwned>(
    c: &mut PgConnection,
    table: &'static str,
    sql: &'q str,
    bind: impl FnOnce(Query<'q>) -> Query<'q>,
) -> R<Option<T>> {
    let row = bind(sqlx::query(sql)).fetch_optional(&mut *c).await?;
    match row {
        Some(r) => {
            let v: Vec<u8> = r.try_get(0)?;
            Ok(Some(from_json(table, &v)?))
        }
        None => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Pieces of transactions.

/// Locks the heads of the logs `events` go to (in id order) and appends them, chained.
async fn append_events(c: &mut PgConnection, events: &[EventDraft]) -> R<Vec<u64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let scopes: BTreeSet<Uuid> = events.iter().map(|e| event_scope(e.clinic_id)).collect();
    let mut heads: BTreeMap<Uuid, (u64, [u8; 32])> = BTreeMap::new();
    for scope in scopes {
        heads.insert(scope, lock_event_head(c, scope).await?);
    }
    let mut seqs = Vec::with_capacity(events.len());
    for e in events {
        let scope = event_scope(e.clinic_id);
        let head = heads.get_mut(&scope).expect("locked above");
        let seq = head.0 + 1;
        let row = e.chain(seq, head.1);
        let hash: [u8; 32] = row.hash.as_slice().try_into().expect("a SHA-256");
        sqlx::query("INSERT INTO events (clinic_id, seq, at, value) VALUES ($1, $2, $3, $4)")
            .bind(scope)
            .bind(i(seq))
            .bind(e.at)
            .bind(to_json(&row))
            .execute(&mut *c)
            .await?;
        *head = (seq, hash);
        seqs.push(seq);
    }
    for (scope, (seq, hash)) in heads {
        sqlx::query("UPDATE event_heads SET seq = $2, hash = $3 WHERE clinic_id = $1")
            .bind(scope)
            .bind(i(seq))
            .bind(&hash[..])
            .execute(&mut *c)
            .await?;
    }
    Ok(seqs)
}

/// Locks a log's head row (creating it at seq 0 with the genesis hash) and returns it.
async fn lock_event_head(c: &mut PgConnection, scope: Uuid) -> R<(u64, [u8; 32])> {
    // `DO UPDATE` (a no-op) rather than `DO NOTHING`: it locks the existing row and returns it.
    let row = sqlx::query(
        "INSERT INTO event_heads (clinic_id, seq, hash) VALUES ($1, 0, $2) \
         ON CONFLICT (clinic_id) DO UPDATE SET seq = event_heads.seq RETURNING seq, hash",
    )
    .bind(scope)
    .bind(&GENESIS_HASH[..])
    .fetch_one(&mut *c)
    .await?;
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok((u(row.try_get("seq")?), hash32("event_heads", &hash)?))
}

/// Locks the clinic's roster head for an append and returns its seq (0 if none).
async fn lock_roster_head(c: &mut PgConnection, clinic_id: Uuid) -> R<u64> {
    let row = sqlx::query("SELECT seq FROM roster_heads WHERE clinic_id = $1 FOR UPDATE")
        .bind(clinic_id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(match row {
        Some(r) => u(r.try_get("seq")?),
        None => 0,
    })
}

/// Appends a roster row if it follows `head_seq` (locked by [`lock_roster_head`]).
async fn append_roster(
    c: &mut PgConnection,
    clinic_id: Uuid,
    head_seq: u64,
    row: &RosterRow,
) -> R<()> {
    if row.seq != head_seq + 1 {
        return Err(StoreError::Conflict("a newer roster entry".into()).into());
    }
    sqlx::query("INSERT INTO roster (clinic_id, seq, value) VALUES ($1, $2, $3)")
        .bind(clinic_id)
        .bind(i(row.seq))
        .bind(to_json(row))
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "INSERT INTO roster_heads (clinic_id, seq, hash, key_epoch) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (clinic_id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, \
         key_epoch = EXCLUDED.key_epoch",
    )
    .bind(clinic_id)
    .bind(i(row.seq))
    .bind(&row.hash[..])
    .bind(i64::from(row.key_epoch))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Locks a member row for update.
async fn lock_member(
    c: &mut PgConnection,
    clinic_id: Uuid,
    account_id: Uuid,
) -> R<Option<MemberRow>> {
    get_json(
        c,
        "members",
        "SELECT value FROM members WHERE clinic_id = $1 AND account_id = $2 FOR UPDATE",
        |q| q.bind(clinic_id).bind(account_id),
    )
    .await
}

async fn put_member(c: &mut PgConnection, m: &MemberRow) -> R<()> {
    sqlx::query(
        "INSERT INTO members (clinic_id, account_id, value) VALUES ($1, $2, $3) \
         ON CONFLICT (clinic_id, account_id) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(m.clinic_id)
    .bind(m.account_id)
    .bind(to_json(m))
    .execute(&mut *c)
    .await?;
    Ok(())
}

async fn put_account_clinic(
    c: &mut PgConnection,
    account_id: Uuid,
    clinic_id: Uuid,
    role: &Role,
) -> R<()> {
    sqlx::query(
        "INSERT INTO account_clinics (account_id, clinic_id, role) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id, clinic_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(account_id)
    .bind(clinic_id)
    .bind(to_json(role))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Adds wrapped keys to their recipients' member rows; every recipient must be a member.
async fn add_wraps(c: &mut PgConnection, clinic_id: Uuid, wraps: &[WrappedKey]) -> R<()> {
    let recipients: BTreeSet<Uuid> = wraps.iter().map(|k| k.recipient).collect();
    for r in recipients {
        let mut m = match lock_member(c, clinic_id, r).await? {
            Some(m) => m,
            None => return Err(StoreError::Conflict("no such member".into()).into()),
        };
        m.wrapped_keys
            .extend(wraps.iter().filter(|k| k.recipient == r).cloned());
        put_member(c, &m).await?;
    }
    Ok(())
}

async fn put_chart(c: &mut PgConnection, clinic_id: Uuid, chart: &ChartRow) -> R<()> {
    sqlx::query(
        "INSERT INTO charts (clinic_id, chart_id, value) VALUES ($1, $2, $3) \
         ON CONFLICT (clinic_id, chart_id) DO UPDATE SET value = EXCLUDED.value",
    )
    .bind(clinic_id)
    .bind(chart.chart_id)
    .bind(to_json(chart))
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Re-checks write guards (see `WriteGuard`), each `(chart, guard)` in order, after locking what
/// they depend on in the global order (`roster_heads`, `charts`, `members`) for share: a rotation
/// or care-team change waits until this transaction ends, or this one sees its result.
async fn check_guards(
    c: &mut PgConnection,
    clinic_id: Uuid,
    guards: &[(Uuid, WriteGuard)],
) -> R<()> {
    if guards.is_empty() {
        return Ok(());
    }
    let clinic_epoch: Option<u32> =
        sqlx::query("SELECT key_epoch FROM roster_heads WHERE clinic_id = $1 FOR SHARE")
            .bind(clinic_id)
            .fetch_optional(&mut *c)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .map(|e| e as u32);
    let chart_ids: Vec<Uuid> = guards
        .iter()
        .map(|(c, _)| *c)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut charts: HashMap<Uuid, ChartRow> = HashMap::new();
    for r in sqlx::query(
        "SELECT chart_id, value FROM charts WHERE clinic_id = $1 AND chart_id = ANY($2) \
         ORDER BY chart_id FOR SHARE",
    )
    .bind(clinic_id)
    .bind(&chart_ids)
    .fetch_all(&mut *c)
    .await?
    {
        let v: Vec<u8> = r.try_get("value")?;
        charts.insert(r.try_get("chart_id")?, from_json("charts", &v)?);
    }
    let authors: Vec<Uuid> = guards
        .iter()
        .map(|(_, g)| g.author)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let members: BTreeSet<Uuid> = sqlx::query(
        "SELECT account_id FROM members WHERE clinic_id = $1 AND account_id = ANY($2) \
         ORDER BY account_id FOR SHARE",
    )
    .bind(clinic_id)
    .bind(&authors)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| r.try_get::<Uuid, _>(0))
    .collect::<Result<_, _>>()?;
    for (chart_id, guard) in guards {
        if !members.contains(&guard.author) {
            return Err(StoreError::Conflict("the author is no longer a member".into()).into());
        }
        let want = match charts.get(chart_id) {
            Some(chart) => {
                if !chart.care_team.contains(&guard.author) {
                    return Err(StoreError::Conflict("the author left the care team".into()).into());
                }
                chart.key_epoch
            }
            None => clinic_epoch.ok_or(StoreError::Corrupt("roster_heads"))?,
        };
        if guard.sealed_epoch != want {
            return Err(StoreError::Conflict("keys rotated".into()).into());
        }
    }
    Ok(())
}

/// Locks the clinic's record head (creating it at 0) and returns its seq. Every transaction that
/// reads or changes the clinic's records, feed, versions or trash takes it first.
async fn lock_heads(c: &mut PgConnection, clinic_id: Uuid) -> R<u64> {
    let row = sqlx::query(
        "INSERT INTO heads (clinic_id, seq) VALUES ($1, 0) \
         ON CONFLICT (clinic_id) DO UPDATE SET seq = heads.seq RETURNING seq",
    )
    .bind(clinic_id)
    .fetch_one(&mut *c)
    .await?;
    Ok(u(row.try_get(0)?))
}

/// Applies record writes: version checks, history, feed rows, the record index, the trash and
/// the clinic's head seq (locked here). Any conflict fails the whole transaction, before
/// anything is written.
///
/// A constant number of statements per batch, whatever its size: the writes are first played
/// in order in memory (exactly as one statement per write would, so a batch that writes a record
/// twice sees its own first write), then each table gets one bulk statement over `UNNEST`ed
/// arrays: the replaced versions that were in the feed move to `versions` (one data-modifying
/// CTE), versions replaced within the batch go to `versions` directly, the batch's last version
/// of each record goes to `feed`, the index and the trash get one upsert (and one delete), and
/// the head one update.
async fn apply_writes(
    c: &mut PgConnection,
    clinic_id: Uuid,
    writes: &[RecordWriteRow],
    now: UnixTime,
) -> R<Vec<WriteOutcome>> {
    let mut head = lock_heads(c, clinic_id).await?;
    let ids: Vec<Uuid> = writes.iter().map(|w| w.record_id).collect();
    // Where each record is now: (seq, version); updated as the batch goes (a batch may write a
    // record twice).
    let mut current: HashMap<Uuid, (u64, u64)> = HashMap::new();
    for r in sqlx::query(
        "SELECT record_id, seq, version FROM records WHERE clinic_id = $1 AND record_id = ANY($2)",
    )
    .bind(clinic_id)
    .bind(&ids)
    .fetch_all(&mut *c)
    .await?
    {
        current.insert(
            r.try_get("record_id")?,
            (u(r.try_get("seq")?), u(r.try_get("version")?)),
        );
    }
    let first_new_seq = head + 1;
    // Replaced versions still in the feed (seq before this batch): (seq, version).
    let mut moved: Vec<(i64, i64)> = Vec::new();
    // The index of the write that put each seq of this batch (seq - first_new_seq).
    // Versions written and replaced within this batch: indices into `writes`.
    let mut superseded: Vec<usize> = Vec::new();
    // Each record's last write in the batch: index into `writes`, and the version it replaced.
    let mut last: HashMap<Uuid, (usize, u64)> = HashMap::new();
    let mut out = Vec::with_capacity(writes.len());
    for (n, w) in writes.iter().enumerate() {
        let (old_seq, current_version) = match current.get(&w.record_id) {
            Some(&(s, v)) => (Some(s), v),
            None => (None, 0),
        };
        if current_version != w.expected_version {
            return Err(StoreError::VersionConflict {
                record_id: w.record_id,
                current: current_version,
            }
            .into());
        }
        // The replaced version moves from the feed to the record's history.
        if let Some(old) = old_seq {
            if old >= first_new_seq {
                superseded.push((old - first_new_seq) as usize);
            } else {
                moved.push((i(old), i(current_version)));
            }
        }
        head += 1;
        let version = current_version + 1;
        current.insert(w.record_id, (head, version));
        last.insert(w.record_id, (n, current_version));
        out.push(WriteOutcome {
            record_id: w.record_id,
            version,
            seq: head,
        });
    }
    if writes.is_empty() {
        return Ok(out);
    }
    if !moved.is_empty() {
        sqlx::query(
            "WITH moved AS (DELETE FROM feed WHERE clinic_id = $1 AND seq = ANY($2) \
             RETURNING clinic_id, record_id, version, seq, chart_id, updated_at, compartment, \
             envelope) \
             INSERT INTO versions (clinic_id, record_id, version, seq, chart_id, updated_at, \
             compartment, envelope) \
             SELECT m.clinic_id, m.record_id, t.v, m.seq, m.chart_id, m.updated_at, \
             m.compartment, m.envelope \
             FROM moved m JOIN UNNEST($2::bigint[], $3::bigint[]) AS t(s, v) ON m.seq = t.s",
        )
        .bind(clinic_id)
        .bind(moved.iter().map(|m| m.0).collect::<Vec<i64>>())
        .bind(moved.iter().map(|m| m.1).collect::<Vec<i64>>())
        .execute(&mut *c)
        .await?;
    }
    // Rows of `writes` by where they end up: replaced within the batch (history) or last (feed).
    let rows = |idx: &mut dyn Iterator<Item = usize>| {
        let mut r = (
            Vec::<Uuid>::new(),
            Vec::<i64>::new(),
            Vec::<Uuid>::new(),
            Vec::<i64>::new(),
            Vec::<i16>::new(),
            Vec::<&[u8]>::new(),
        );
        for n in idx {
            let (w, o) = (&writes[n], &out[n]);
            r.0.push(w.record_id);
            r.1.push(i(o.seq));
            r.2.push(w.chart_id);
            r.3.push(i(o.version));
            r.4.push(i16::from(w.compartment.code()));
            r.5.push(w.envelope.as_slice());
        }
        r
    };
    let mut final_idx: Vec<usize> = last.values().map(|&(n, _)| n).collect();
    final_idx.sort_unstable();
    for (table, idx) in [("versions", &superseded), ("feed", &final_idx)] {
        if idx.is_empty() {
            continue;
        }
        let (rid, seq, chart, ver, comp, env) = rows(&mut idx.iter().copied());
        sqlx::query(&format!(
            "INSERT INTO {table} (clinic_id, record_id, seq, chart_id, version, updated_at, \
             compartment, envelope) \
             SELECT $1, r, s, ch, v, $6, co, e FROM UNNEST($2::uuid[], $3::bigint[], \
             $4::uuid[], $5::bigint[], $7::smallint[], $8::bytea[]) AS t(r, s, ch, v, co, e)"
        ))
        .bind(clinic_id)
        .bind(&rid)
        .bind(&seq)
        .bind(&chart)
        .bind(&ver)
        .bind(now)
        .bind(&comp)
        .bind(&env)
        .execute(&mut *c)
        .await?;
    }
    // The index: one row per record, at its last write (in record id order).
    let mut index: Vec<(Uuid, i64, i64)> = final_idx
        .iter()
        .map(|&n| (out[n].record_id, i(out[n].seq), i(out[n].version)))
        .collect();
    index.sort_unstable_by_key(|r| r.0);
    sqlx::query(
        "INSERT INTO records (clinic_id, record_id, seq, version) \
         SELECT $1, r, s, v FROM UNNEST($2::uuid[], $3::bigint[], $4::bigint[]) AS t(r, s, v) \
         ON CONFLICT (clinic_id, record_id) DO UPDATE SET seq = EXCLUDED.seq, \
         version = EXCLUDED.version",
    )
    .bind(clinic_id)
    .bind(index.iter().map(|r| r.0).collect::<Vec<Uuid>>())
    .bind(index.iter().map(|r| r.1).collect::<Vec<i64>>())
    .bind(index.iter().map(|r| r.2).collect::<Vec<i64>>())
    .execute(&mut *c)
    .await?;
    // The trash follows each record's last write: a tombstone is (re)put with this batch's time;
    // a live version of a record that existed before it takes the record out.
    let mut trashed: Vec<Uuid> = Vec::new();
    let mut restored: Vec<Uuid> = Vec::new();
    for &(n, replaced) in last.values() {
        let w = &writes[n];
        if w.deleted {
            trashed.push(w.record_id);
        } else if replaced > 0 {
            restored.push(w.record_id);
        }
    }
    trashed.sort_unstable();
    restored.sort_unstable();
    if !trashed.is_empty() {
        sqlx::query(
            "INSERT INTO trash (clinic_id, record_id, deleted_at) \
             SELECT $1, r, $3 FROM UNNEST($2::uuid[]) AS t(r) \
             ON CONFLICT (clinic_id, record_id) DO UPDATE SET deleted_at = EXCLUDED.deleted_at",
        )
        .bind(clinic_id)
        .bind(&trashed)
        .bind(now)
        .execute(&mut *c)
        .await?;
    }
    if !restored.is_empty() {
        sqlx::query("DELETE FROM trash WHERE clinic_id = $1 AND record_id = ANY($2)")
            .bind(clinic_id)
            .bind(&restored)
            .execute(&mut *c)
            .await?;
    }
    sqlx::query("UPDATE heads SET seq = $2 WHERE clinic_id = $1")
        .bind(clinic_id)
        .bind(i(head))
        .execute(&mut *c)
        .await?;
    Ok(out)
}

/// Deletes a file's row, chunks and chunk lengths (the file id may be a record id: an
/// attachment's record id is its file's id).
async fn delete_files(c: &mut PgConnection, clinic_id: Uuid, file_ids: &[Uuid]) -> R<u64> {
    if file_ids.is_empty() {
        return Ok(0);
    }
    for table in ["file_chunks", "file_chunk_lens"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE clinic_id = $1 AND file_id = ANY($2)"
        ))
        .bind(clinic_id)
        .bind(file_ids)
        .execute(&mut *c)
        .await?;
    }
    let n = sqlx::query("DELETE FROM files WHERE clinic_id = $1 AND file_id = ANY($2)")
        .bind(clinic_id)
        .bind(file_ids)
        .execute(&mut *c)
        .await?
        .rows_affected();
    Ok(n)
}

async fn lock_file(
    c: &mut PgConnection,
    clinic_id: Uuid,
    file_id: Uuid,
    mode: &str,
) -> R<Option<FileRow>> {
    get_json(
        c,
        "files",
        &format!("SELECT value FROM files WHERE clinic_id = $1 AND file_id = $2 FOR {mode}"),
        |q| q.bind(clinic_id).bind(file_id),
    )
    .await
}

fn file_conflict<T>(what: &str) -> R<T> {
    Err(StoreError::Conflict(what.to_string()).into())
}

/// Whether the clinic row exists.
async fn clinic_exists(c: &mut PgConnection, clinic_id: Uuid) -> R<bool> {
    let row = sqlx::query("SELECT 1 FROM clinics WHERE clinic_id = $1")
        .bind(clinic_id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.is_some())
}

/// Inserts imported record rows into `feed` or `versions` (the same columns), as they are.
async fn insert_record_rows(
    c: &mut PgConnection,
    clinic_id: Uuid,
    table: &'static str,
    rows: &[RecordRow],
) -> R<()> {
    sqlx::query(&format!(
        "INSERT INTO {table} (clinic_id, record_id, seq, chart_id, version, updated_at, \
         compartment, envelope) \
         SELECT $1, r, s, ch, v, u, co, e FROM UNNEST($2::uuid[], $3::bigint[], $4::uuid[], \
         $5::bigint[], $6::bigint[], $7::smallint[], $8::bytea[]) AS t(r, s, ch, v, u, co, e)"
    ))
    .bind(clinic_id)
    .bind(rows.iter().map(|r| r.record_id).collect::<Vec<Uuid>>())
    .bind(rows.iter().map(|r| i(r.seq)).collect::<Vec<i64>>())
    .bind(rows.iter().map(|r| r.chart_id).collect::<Vec<Uuid>>())
    .bind(rows.iter().map(|r| i(r.version)).collect::<Vec<i64>>())
    .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<i64>>())
    .bind(
        rows.iter()
            .map(|r| i16::from(r.compartment.code()))
            .collect::<Vec<i16>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.envelope.as_slice())
            .collect::<Vec<&[u8]>>(),
    )
    .execute(&mut *c)
    .await?;
    Ok(())
}

impl PgStore {
    /// Connects, runs the schema migrations (refusing a database whose schema is newer than this
    /// binary), and returns the store.
    pub async fn connect(url: &str, opts: PgOptions) -> Result<PgStore, PgConnectError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| PgConnectError::Url(e.to_string()))?
            .application_name("optovault");
        Self::connect_with(connect, opts).await
    }

    pub async fn connect_with(
        connect: PgConnectOptions,
        opts: PgOptions,
    ) -> Result<PgStore, PgConnectError> {
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(2))
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| PgConnectError::Connect(e.to_string()))?;
        migrate(&pool).await?;
        Ok(PgStore { pool })
    }

    /// Where a URL points, for logs: user, host, port and database, never the password.
    pub fn describe(url: &str) -> String {
        match PgConnectOptions::from_str(url) {
            Ok(o) => format!(
                "{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("(default)")
            ),
            Err(_) => "(an invalid PostgreSQL URL)".into(),
        }
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for tests and tools.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// The newest schema version applied to the database, if any.
async fn applied_version(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
}

/// Runs the migrations this binary has and the database lacks. Idempotent; several processes
/// starting at once wait on each other (sqlx's migrator takes an advisory lock).
async fn migrate(pool: &PgPool) -> Result<(), PgConnectError> {
    let m = |e: sqlx::Error| PgConnectError::Migrate(e.to_string());
    if let Some(found) = applied_version(pool).await.map_err(m)? {
        if found > SCHEMA_VERSION {
            return Err(PgConnectError::NewerSchema {
                found,
                known: SCHEMA_VERSION,
            });
        }
    }
    let migrator = Migrator::new(Embedded)
        .await
        .map_err(|e| PgConnectError::Migrate(e.to_string()))?;
    // Also refuses (VersionMissing) a database with a migration this binary does not know, and
    // (VersionMismatch) one whose applied migration differs from this binary's.
    migrator.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(found) => PgConnectError::NewerSchema {
            found,
            known: SCHEMA_VERSION,
        },
        e => PgConnectError::Migrate(e.to_string()),
    })?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn server_setup_or_init(&self, fresh: Vec<u8>) -> StoreResult<Vec<u8>> {
        tx!(self, |c| async {
            sqlx::query(
                "INSERT INTO meta (name, value) VALUES ('opaque_server_setup', $1) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&fresh)
            .execute(&mut *c)
            .await?;
            let v: Vec<u8> =
                sqlx::query_scalar("SELECT value FROM meta WHERE name = 'opaque_server_setup'")
                    .fetch_one(&mut *c)
                    .await?;
            R::Ok(v)
        })
    }

    async fn create_account(
        &self,
        account: AccountRow,
        event: Option<EventDraft>,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let n = sqlx::query(
                "INSERT INTO usernames (username, account_id) VALUES ($1, $2) \
                 ON CONFLICT (username) DO NOTHING",
            )
            .bind(&account.username)
            .bind(account.account_id)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict("username".into()).into());
            }
            sqlx::query(
                "INSERT INTO accounts (account_id, value) VALUES ($1, $2) \
                 ON CONFLICT (account_id) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(account.account_id)
            .bind(to_json(&account))
            .execute(&mut *c)
            .await?;
            append_events(c, event.as_slice()).await?;
            R::Ok(())
        })
    }

    async fn account(&self, account_id: Uuid) -> StoreResult<Option<AccountRow>> {
        read!(self, |c| get_json(
            c,
            "accounts",
            "SELECT value FROM accounts WHERE account_id = $1",
            |q| q.bind(account_id)
        ))
    }

    async fn account_by_username(&self, username: &str) -> StoreResult<Option<AccountRow>> {
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT account_id FROM usernames WHERE username = $1")
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        match id {
            Some(id) => self.account(id).await,
            None => Ok(None),
        }
    }

    async fn update_account(
        &self,
        account_id: Uuid,
        f: Box<dyn for<'r> Fn(&'r mut AccountRow) -> StoreResult<()> + Send + Sync>,
        event: Option<EventDraft>,
    ) -> StoreResult<AccountRow> {
        tx!(self, |c| async {
            let mut a: AccountRow = match get_json(
                c,
                "accounts",
                "SELECT value FROM accounts WHERE account_id = $1 FOR UPDATE",
                |q| q.bind(account_id),
            )
            .await?
            {
                Some(a) => a,
                None => return Err(StoreError::Conflict("no such account".into()).into()),
            };
            f(&mut a)?;
            sqlx::query("UPDATE accounts SET value = $2 WHERE account_id = $1")
                .bind(account_id)
                .bind(to_json(&a))
                .execute(&mut *c)
                .await?;
            append_events(c, event.as_slice()).await?;
            R::Ok(a)
        })
    }

    async fn put_login_attempt(&self, attempt: LoginAttempt) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO login_attempts (login_id, value) VALUES ($1, $2) \
             ON CONFLICT (login_id) DO UPDATE SET value = EXCLUDED.value",
        )
        .bind(attempt.login_id)
        .bind(to_json(&attempt))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn take_login_attempt(&self, login_id: Uuid) -> StoreResult<Option<LoginAttempt>> {
        let v: Option<Vec<u8>> =
            sqlx::query_scalar("DELETE FROM login_attempts WHERE login_id = $1 RETURNING value")
                .bind(login_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        v.map(|v| from_json("login_attempts", &v)).transpose()
    }

    async fn purge_expired(&self, now: UnixTime) -> StoreResult<usize> {
        let mut purged = 0usize;
        // Login attempts and sessions: read, then deleted by key (each delete is final).
        let rows = sqlx::query("SELECT login_id, value FROM login_attempts")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut expired = Vec::new();
        for r in rows {
            let v: Vec<u8> = r.try_get("value").map_err(db_err)?;
            let a: LoginAttempt = from_json("login_attempts", &v)?;
            if a.expires_at <= now {
                expired.push(r.try_get::<Uuid, _>("login_id").map_err(db_err)?);
            }
        }
        if !expired.is_empty() {
            purged += sqlx::query("DELETE FROM login_attempts WHERE login_id = ANY($1)")
                .bind(&expired)
                .execute(&self.pool)
                .await
                .map_err(db_err)?
                .rows_affected() as usize;
        }
        let rows = sqlx::query("SELECT token_hash, value FROM sessions")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut expired: Vec<(Vec<u8>, Uuid)> = Vec::new();
        for r in rows {
            let v: Vec<u8> = r.try_get("value").map_err(db_err)?;
            let s: SessionRow = from_json("sessions", &v)?;
            if s.expires_at <= now {
                expired.push((r.try_get("token_hash").map_err(db_err)?, s.account_id));
            }
        }
        for (token_hash, account_id) in expired {
            let n = tx!(self, |c| async {
                let n = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(&token_hash)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                sqlx::query(
                    "DELETE FROM account_sessions WHERE account_id = $1 AND token_hash = $2",
                )
                .bind(account_id)
                .bind(&token_hash)
                .execute(&mut *c)
                .await?;
                R::Ok(n)
            })?;
            purged += n as usize;
        }
        // Stale incomplete uploads: an operator-wide sweep, each file in its own transaction.
        let rows = sqlx::query("SELECT clinic_id, file_id, value FROM files")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        for r in rows {
            let v: Vec<u8> = r.try_get("value").map_err(db_err)?;
            let f: FileRow = from_json("files", &v)?;
            if f.is_complete() || f.created_at.saturating_add(INCOMPLETE_FILE_TTL_SECS) > now {
                continue;
            }
            let clinic_id: Uuid = r.try_get("clinic_id").map_err(db_err)?;
            let file_id: Uuid = r.try_get("file_id").map_err(db_err)?;
            let gone = tx!(self, |c| async {
                // Read again under its lock: it may have completed meanwhile.
                match lock_file(c, clinic_id, file_id, "UPDATE").await? {
                    Some(f) if !f.is_complete() => {
                        R::Ok(delete_files(c, clinic_id, &[file_id]).await? > 0)
                    }
                    _ => R::Ok(false),
                }
            })?;
            if gone {
                purged += 1;
            }
        }
        Ok(purged)
    }

    async fn purge_trash(&self, now: UnixTime) -> StoreResult<usize> {
        let rows = sqlx::query("SELECT clinic_id, record_id, deleted_at FROM trash")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut days: HashMap<Uuid, Option<u32>> = HashMap::new();
        let mut purged = 0;
        for r in rows {
            let clinic_id: Uuid = r.try_get("clinic_id").map_err(db_err)?;
            let record_id: Uuid = r.try_get("record_id").map_err(db_err)?;
            let deleted_at: i64 = r.try_get("deleted_at").map_err(db_err)?;
            let trash_days = match days.get(&clinic_id) {
                Some(d) => *d,
                None => {
                    let d = self.clinic(clinic_id).await?.map(|c| c.policy.trash_days);
                    days.insert(clinic_id, d);
                    d
                }
            };
            let Some(trash_days) = trash_days else {
                continue;
            };
            if deleted_at.saturating_add(i64::from(trash_days) * 86_400) > now {
                continue;
            }
            let done = tx!(self, |c| async {
                lock_heads(c, clinic_id).await?;
                // Restored (or deleted again) meanwhile: not this purge's to take.
                let n = sqlx::query(
                    "DELETE FROM trash WHERE clinic_id = $1 AND record_id = $2 AND deleted_at = $3",
                )
                .bind(clinic_id)
                .bind(record_id)
                .bind(deleted_at)
                .execute(&mut *c)
                .await?
                .rows_affected();
                if n == 0 {
                    return R::Ok(false);
                }
                let seq: Option<i64> = sqlx::query_scalar(
                    "DELETE FROM records WHERE clinic_id = $1 AND record_id = $2 RETURNING seq",
                )
                .bind(clinic_id)
                .bind(record_id)
                .fetch_optional(&mut *c)
                .await?;
                if let Some(seq) = seq {
                    sqlx::query("DELETE FROM feed WHERE clinic_id = $1 AND seq = $2")
                        .bind(clinic_id)
                        .bind(seq)
                        .execute(&mut *c)
                        .await?;
                }
                let versions =
                    sqlx::query("DELETE FROM versions WHERE clinic_id = $1 AND record_id = $2")
                        .bind(clinic_id)
                        .bind(record_id)
                        .execute(&mut *c)
                        .await?
                        .rows_affected();
                delete_files(c, clinic_id, &[record_id]).await?;
                append_events(
                    c,
                    &[EventDraft {
                        at: now,
                        actor: None,
                        clinic_id: Some(clinic_id),
                        action: "record_purged",
                        target: Some(record_id),
                        count: versions as u32 + 1,
                        outcome: "ok",
                        ip: None,
                        detail: None,
                    }],
                )
                .await?;
                R::Ok(true)
            })?;
            if done {
                purged += 1;
            }
        }
        Ok(purged)
    }

    async fn trash(&self, clinic_id: Uuid) -> StoreResult<Vec<(Uuid, UnixTime)>> {
        sqlx::query(
            "SELECT record_id, deleted_at FROM trash WHERE clinic_id = $1 ORDER BY record_id",
        )
        .bind(clinic_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(db_err)
    }

    async fn put_session(&self, session: SessionRow, event: Option<EventDraft>) -> StoreResult<()> {
        tx!(self, |c| async {
            sqlx::query(
                "INSERT INTO sessions (token_hash, value) VALUES ($1, $2) \
                 ON CONFLICT (token_hash) DO UPDATE SET value = EXCLUDED.value",
            )
            .bind(&session.token_hash[..])
            .bind(to_json(&session))
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO account_sessions (account_id, token_hash) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(session.account_id)
            .bind(&session.token_hash[..])
            .execute(&mut *c)
            .await?;
            let a: Option<AccountRow> = get_json(
                c,
                "accounts",
                "SELECT value FROM accounts WHERE account_id = $1 FOR UPDATE",
                |q| q.bind(session.account_id),
            )
            .await?;
            if let Some(mut a) = a {
                a.last_login_at = Some(session.created_at);
                sqlx::query("UPDATE accounts SET value = $2 WHERE account_id = $1")
                    .bind(session.account_id)
                    .bind(to_json(&a))
                    .execute(&mut *c)
                    .await?;
            }
            append_events(c, event.as_slice()).await?;
            R::Ok(())
        })
    }

    async fn session(&self, token_hash: [u8; 32]) -> StoreResult<Option<SessionRow>> {
        let v: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM sessions WHERE token_hash = $1")
                .bind(&token_hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        v.map(|v| from_json("sessions", &v)).transpose()
    }

    async fn delete_session(
        &self,
        token_hash: [u8; 32],
        event: Option<EventDraft>,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let v: Option<Vec<u8>> =
                sqlx::query_scalar("DELETE FROM sessions WHERE token_hash = $1 RETURNING value")
                    .bind(&token_hash[..])
                    .fetch_optional(&mut *c)
                    .await?;
            if let Some(v) = v {
                let row: SessionRow = from_json("sessions", &v)?;
                sqlx::query(
                    "DELETE FROM account_sessions WHERE account_id = $1 AND token_hash = $2",
                )
                .bind(row.account_id)
                .bind(&token_hash[..])
                .execute(&mut *c)
                .await?;
            }
            append_events(c, event.as_slice()).await?;
            R::Ok(())
        })
    }

    async fn sessions_of(&self, account_id: Uuid) -> StoreResult<Vec<SessionRow>> {
        let hashes: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT token_hash FROM account_sessions WHERE account_id = $1 ORDER BY token_hash",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT value FROM sessions WHERE token_hash = ANY($1) ORDER BY token_hash",
        )
        .bind(&hashes)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        values.iter().map(|v| from_json("sessions", v)).collect()
    }

    async fn touch_session(&self, token_hash: [u8; 32], at: UnixTime) -> StoreResult<()> {
        tx!(self, |c| async {
            // Advisory (last seen): not worth waiting for the disk.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *c)
                .await?;
            let row: Option<SessionRow> = get_json(
                c,
                "sessions",
                "SELECT value FROM sessions WHERE token_hash = $1 FOR UPDATE",
                |q| q.bind(&token_hash[..]),
            )
            .await?;
            if let Some(mut row) = row {
                row.last_seen = at;
                sqlx::query("UPDATE sessions SET value = $2 WHERE token_hash = $1")
                    .bind(&token_hash[..])
                    .bind(to_json(&row))
                    .execute(&mut *c)
                    .await?;
            }
            R::Ok(())
        })
    }

    async fn change_password(
        &self,
        account_id: Uuid,
        password_file: Vec<u8>,
        sealed_key_bundle: SealedBlob,
        keep: [u8; 32],
    ) -> StoreResult<usize> {
        tx!(self, |c| async {
            let mut a: AccountRow = match get_json(
                c,
                "accounts",
                "SELECT value FROM accounts WHERE account_id = $1 FOR UPDATE",
                |q| q.bind(account_id),
            )
            .await?
            {
                Some(a) => a,
                None => return Err(StoreError::Conflict("no such account".into()).into()),
            };
            a.password_file = password_file.clone();
            a.sealed_key_bundle = sealed_key_bundle.clone();
            sqlx::query("UPDATE accounts SET value = $2 WHERE account_id = $1")
                .bind(account_id)
                .bind(to_json(&a))
                .execute(&mut *c)
                .await?;
            let others: Vec<Vec<u8>> = sqlx::query_scalar(
                "DELETE FROM account_sessions WHERE account_id = $1 AND token_hash <> $2 \
                 RETURNING token_hash",
            )
            .bind(account_id)
            .bind(&keep[..])
            .fetch_all(&mut *c)
            .await?;
            let revoked = sqlx::query("DELETE FROM sessions WHERE token_hash = ANY($1)")
                .bind(&others)
                .execute(&mut *c)
                .await?
                .rows_affected();
            R::Ok(revoked as usize)
        })
    }

    async fn throttle(&self, key: &str) -> StoreResult<Option<ThrottleRow>> {
        let v: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        v.map(|v| from_json("throttle", &v)).transpose()
    }

    async fn update_throttle(
        &self,
        key: &str,
        f: Box<dyn Fn(Option<ThrottleRow>) -> Option<ThrottleRow> + Send + Sync>,
    ) -> StoreResult<Option<ThrottleRow>> {
        tx!(self, |c| async {
            loop {
                let current: Option<ThrottleRow> = get_json(
                    c,
                    "throttle",
                    "SELECT value FROM throttle WHERE key = $1 FOR UPDATE",
                    |q| q.bind(key),
                )
                .await?;
                let existed = current.is_some();
                let next = f(current);
                match (&next, existed) {
                    (Some(row), true) => {
                        sqlx::query("UPDATE throttle SET value = $2 WHERE key = $1")
                            .bind(key)
                            .bind(to_json(row))
                            .execute(&mut *c)
                            .await?;
                    }
                    (Some(row), false) => {
                        let n = sqlx::query(
                            "INSERT INTO throttle (key, value) VALUES ($1, $2) \
                             ON CONFLICT (key) DO NOTHING",
                        )
                        .bind(key)
                        .bind(to_json(row))
                        .execute(&mut *c)
                        .await?
                        .rows_affected();
                        if n == 0 {
                            // Another process created the row meanwhile: apply `f` to it.
                            continue;
                        }
                    }
                    (None, true) => {
                        sqlx::query("DELETE FROM throttle WHERE key = $1")
                            .bind(key)
                            .execute(&mut *c)
                            .await?;
                    }
                    (None, false) => {}
                }
                return R::Ok(next);
            }
        })
    }

    async fn revoke_sessions_of(&self, account_id: Uuid) -> StoreResult<usize> {
        tx!(self, |c| async {
            let hashes: Vec<Vec<u8>> = sqlx::query_scalar(
                "DELETE FROM account_sessions WHERE account_id = $1 RETURNING token_hash",
            )
            .bind(account_id)
            .fetch_all(&mut *c)
            .await?;
            let n = sqlx::query("DELETE FROM sessions WHERE token_hash = ANY($1)")
                .bind(&hashes)
                .execute(&mut *c)
                .await?
                .rows_affected();
            R::Ok(n as usize)
        })
    }

    async fn create_clinic(
        &self,
        clinic: ClinicRow,
        owner: MemberRow,
        genesis: RosterRow,
        event: EventDraft,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let n = sqlx::query(
                "INSERT INTO clinics (clinic_id, value) VALUES ($1, $2) \
                 ON CONFLICT (clinic_id) DO NOTHING",
            )
            .bind(clinic.clinic_id)
            .bind(to_json(&clinic))
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict("clinic".into()).into());
            }
            let head = lock_roster_head(c, clinic.clinic_id).await?;
            put_member(c, &owner).await?;
            put_account_clinic(c, owner.account_id, clinic.clinic_id, &owner.role).await?;
            append_roster(c, clinic.clinic_id, head, &genesis).await?;
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(())
        })
    }

    async fn members(&self, clinic_id: Uuid) -> StoreResult<Vec<MemberRow>> {
        let values: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT value FROM members WHERE clinic_id = $1 ORDER BY account_id",
        )
        .bind(clinic_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        values.iter().map(|v| from_json("members", v)).collect()
    }

    async fn roster(
        &self,
        clinic_id: Uuid,
        since: u64,
    ) -> StoreResult<(Vec<RosterRow>, Option<RosterHead>)> {
        let head = self.roster_head(clinic_id).await?;
        let values: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT value FROM roster WHERE clinic_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(clinic_id)
        .bind(i(since.min(i64::MAX as u64)))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let rows = values
            .iter()
            .map(|v| from_json("roster", v))
            .collect::<StoreResult<_>>()?;
        Ok((rows, head))
    }

    async fn roster_head(&self, clinic_id: Uuid) -> StoreResult<Option<RosterHead>> {
        let row = sqlx::query("SELECT seq, hash, key_epoch FROM roster_heads WHERE clinic_id = $1")
            .bind(clinic_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row {
            None => Ok(None),
            Some(r) => {
                let hash: Vec<u8> = r.try_get("hash").map_err(db_err)?;
                Ok(Some(RosterHead {
                    seq: u(r.try_get("seq").map_err(db_err)?),
                    hash: hash32("roster_heads", &hash)?,
                    key_epoch: r.try_get::<i64, _>("key_epoch").map_err(db_err)? as u32,
                }))
            }
        }
    }

    async fn create_invitation(
        &self,
        invitation: InvitationRow,
        event: EventDraft,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let n = sqlx::query(
                "INSERT INTO invitations (clinic_id, invitation_id, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (clinic_id, invitation_id) DO NOTHING",
            )
            .bind(invitation.clinic_id)
            .bind(invitation.invitation_id)
            .bind(to_json(&invitation))
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict("invitation".into()).into());
            }
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(())
        })
    }

    async fn invitation(
        &self,
        clinic_id: Uuid,
        invitation_id: Uuid,
    ) -> StoreResult<Option<InvitationRow>> {
        read!(self, |c| get_json(
            c,
            "invitations",
            "SELECT value FROM invitations WHERE clinic_id = $1 AND invitation_id = $2",
            |q| q.bind(clinic_id).bind(invitation_id)
        ))
    }

    async fn invitations(&self, clinic_id: Uuid) -> StoreResult<Vec<InvitationRow>> {
        let values: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT value FROM invitations WHERE clinic_id = $1 ORDER BY invitation_id",
        )
        .bind(clinic_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        values.iter().map(|v| from_json("invitations", v)).collect()
    }

    async fn transition_invitation(
        &self,
        from: InvitationStatus,
        next: InvitationRow,
        event: EventDraft,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let current: InvitationRow = match get_json(
                c,
                "invitations",
                "SELECT value FROM invitations WHERE clinic_id = $1 AND invitation_id = $2 \
                 FOR UPDATE",
                |q| q.bind(next.clinic_id).bind(next.invitation_id),
            )
            .await?
            {
                Some(v) => v,
                None => return Err(StoreError::Conflict("no such invitation".into()).into()),
            };
            if current.status != from {
                return Err(StoreError::Conflict("the invitation changed".into()).into());
            }
            sqlx::query(
                "UPDATE invitations SET value = $3 WHERE clinic_id = $1 AND invitation_id = $2",
            )
            .bind(next.clinic_id)
            .bind(next.invitation_id)
            .bind(to_json(&next))
            .execute(&mut *c)
            .await?;
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(())
        })
    }

    async fn add_member(
        &self,
        clinic_id: Uuid,
        entry: RosterRow,
        member: MemberRow,
        invitation_id: Uuid,
        events: Vec<EventDraft>,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let head = lock_roster_head(c, clinic_id).await?;
            let mut inv: InvitationRow = match get_json(
                c,
                "invitations",
                "SELECT value FROM invitations WHERE clinic_id = $1 AND invitation_id = $2 \
                 FOR UPDATE",
                |q| q.bind(clinic_id).bind(invitation_id),
            )
            .await?
            {
                Some(v) => v,
                None => return Err(StoreError::Conflict("no such invitation".into()).into()),
            };
            if inv.status != InvitationStatus::Accepted {
                return Err(StoreError::Conflict("the invitation is not accepted".into()).into());
            }
            if lock_member(c, clinic_id, member.account_id)
                .await?
                .is_some()
            {
                return Err(StoreError::Conflict("member".into()).into());
            }
            append_roster(c, clinic_id, head, &entry).await?;
            let n = sqlx::query(
                "INSERT INTO members (clinic_id, account_id, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (clinic_id, account_id) DO NOTHING",
            )
            .bind(clinic_id)
            .bind(member.account_id)
            .bind(to_json(&member))
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict("member".into()).into());
            }
            put_account_clinic(c, member.account_id, clinic_id, &member.role).await?;
            inv.status = InvitationStatus::Joined;
            sqlx::query(
                "UPDATE invitations SET value = $3 WHERE clinic_id = $1 AND invitation_id = $2",
            )
            .bind(clinic_id)
            .bind(invitation_id)
            .bind(to_json(&inv))
            .execute(&mut *c)
            .await?;
            append_events(c, &events).await?;
            R::Ok(())
        })
    }

    async fn rotate(
        &self,
        clinic_id: Uuid,
        entry: RosterRow,
        change: MemberChange,
        new_keys: Vec<WrappedKey>,
        charts: Vec<ChartRow>,
        events: Vec<EventDraft>,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let head = lock_roster_head(c, clinic_id).await?;
            append_roster(c, clinic_id, head, &entry).await?;
            // Charts before members: the global lock order.
            let mut sorted: Vec<&ChartRow> = charts.iter().collect();
            sorted.sort_by_key(|c| c.chart_id);
            for chart in sorted {
                put_chart(c, clinic_id, chart).await?;
            }
            match &change {
                MemberChange::Remove(account) => {
                    if lock_member(c, clinic_id, *account).await?.is_none() {
                        return Err(StoreError::Conflict("no such member".into()).into());
                    }
                    sqlx::query("DELETE FROM members WHERE clinic_id = $1 AND account_id = $2")
                        .bind(clinic_id)
                        .bind(account)
                        .execute(&mut *c)
                        .await?;
                    sqlx::query(
                        "DELETE FROM account_clinics WHERE account_id = $1 AND clinic_id = $2",
                    )
                    .bind(account)
                    .bind(clinic_id)
                    .execute(&mut *c)
                    .await?;
                }
                MemberChange::ChangeRole(account, role) => {
                    let mut m = match lock_member(c, clinic_id, *account).await? {
                        Some(m) => m,
                        None => return Err(StoreError::Conflict("no such member".into()).into()),
                    };
                    m.role = *role;
                    m.wrapped_keys.retain(|k| role.grants(k.compartment));
                    put_member(c, &m).await?;
                    put_account_clinic(c, *account, clinic_id, role).await?;
                }
            }
            add_wraps(c, clinic_id, &new_keys).await?;
            append_events(c, &events).await?;
            R::Ok(())
        })
    }

    async fn charts(&self, clinic_id: Uuid) -> StoreResult<Vec<ChartRow>> {
        let values: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT value FROM charts WHERE clinic_id = $1 ORDER BY chart_id")
                .bind(clinic_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        values.iter().map(|v| from_json("charts", v)).collect()
    }

    async fn restrict_chart(
        &self,
        clinic_id: Uuid,
        chart: ChartRow,
        wraps: Vec<WrappedKey>,
        writes: Vec<RecordWriteRow>,
        now: UnixTime,
        event: EventDraft,
    ) -> StoreResult<Vec<WriteOutcome>> {
        tx!(self, |c| async {
            // A write guard checked meanwhile found no row for this chart to lock, so it cannot
            // wait on the chart: it waits on the roster head instead (guards take it for share
            // first). Without this a new record could land in the chart under the clinic's keys
            // after it was restricted.
            lock_roster_head(c, clinic_id).await?;
            let n = sqlx::query(
                "INSERT INTO charts (clinic_id, chart_id, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (clinic_id, chart_id) DO NOTHING",
            )
            .bind(clinic_id)
            .bind(chart.chart_id)
            .bind(to_json(&chart))
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict("restricted chart".into()).into());
            }
            add_wraps(c, clinic_id, &wraps).await?;
            let out = apply_writes(c, clinic_id, &writes, now).await?;
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(out)
        })
    }

    async fn update_care_team(
        &self,
        clinic_id: Uuid,
        chart: ChartRow,
        expected_epoch: u32,
        removed: Vec<Uuid>,
        wraps: Vec<WrappedKey>,
        event: EventDraft,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let current: ChartRow = match get_json(
                c,
                "charts",
                "SELECT value FROM charts WHERE clinic_id = $1 AND chart_id = $2 FOR UPDATE",
                |q| q.bind(clinic_id).bind(chart.chart_id),
            )
            .await?
            {
                Some(v) => v,
                None => return Err(StoreError::Conflict("no such restricted chart".into()).into()),
            };
            if current.key_epoch != expected_epoch {
                return Err(StoreError::Conflict("the care team changed".into()).into());
            }
            let removed: BTreeSet<Uuid> = removed.iter().copied().collect();
            for r in removed {
                if let Some(mut m) = lock_member(c, clinic_id, r).await? {
                    m.wrapped_keys
                        .retain(|k| k.chart_id != Some(chart.chart_id));
                    put_member(c, &m).await?;
                }
            }
            add_wraps(c, clinic_id, &wraps).await?;
            put_chart(c, clinic_id, &chart).await?;
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(())
        })
    }

    async fn erase_chart(
        &self,
        clinic_id: Uuid,
        chart_id: Uuid,
        event: EventDraft,
    ) -> StoreResult<u32> {
        tx!(self, |c| async {
            let n = sqlx::query("DELETE FROM charts WHERE clinic_id = $1 AND chart_id = $2")
                .bind(clinic_id)
                .bind(chart_id)
                .execute(&mut *c)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict(erase_conflict::NOT_RESTRICTED.into()).into());
            }
            // Every copy of the chart's keys goes: what was sealed under them can no longer be
            // opened by anyone, wherever a copy of the ciphertext survives.
            let rows = sqlx::query(
                "SELECT account_id, value FROM members WHERE clinic_id = $1 \
                 ORDER BY account_id FOR UPDATE",
            )
            .bind(clinic_id)
            .fetch_all(&mut *c)
            .await?;
            for r in rows {
                let v: Vec<u8> = r.try_get("value")?;
                let mut m: MemberRow = from_json("members", &v)?;
                let before = m.wrapped_keys.len();
                m.wrapped_keys.retain(|k| k.chart_id != Some(chart_id));
                if m.wrapped_keys.len() != before {
                    put_member(c, &m).await?;
                }
            }
            // Under the clinic's head lock no record write runs meanwhile, so what is listed
            // here is what is erased (sled's CHART_CHANGED cannot happen).
            lock_heads(c, clinic_id).await?;
            let ids: Vec<Uuid> = sqlx::query_scalar(
                "SELECT record_id FROM feed WHERE clinic_id = $1 AND chart_id = $2",
            )
            .bind(clinic_id)
            .bind(chart_id)
            .fetch_all(&mut *c)
            .await?;
            sqlx::query("DELETE FROM feed WHERE clinic_id = $1 AND record_id = ANY($2)")
                .bind(clinic_id)
                .bind(&ids)
                .execute(&mut *c)
                .await?;
            for table in ["records", "versions", "trash"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE clinic_id = $1 AND record_id = ANY($2)"
                ))
                .bind(clinic_id)
                .bind(&ids)
                .execute(&mut *c)
                .await?;
            }
            delete_files(c, clinic_id, &ids).await?;
            let mut event = event.clone();
            event.count = ids.len() as u32;
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(ids.len() as u32)
        })
    }

    async fn clinic(&self, clinic_id: Uuid) -> StoreResult<Option<ClinicRow>> {
        read!(self, |c| get_json(
            c,
            "clinics",
            "SELECT value FROM clinics WHERE clinic_id = $1",
            |q| q.bind(clinic_id)
        ))
    }

    async fn set_clinic_policy(
        &self,
        clinic_id: Uuid,
        policy: ClinicPolicy,
        event: EventDraft,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let mut clinic: ClinicRow = match get_json(
                c,
                "clinics",
                "SELECT value FROM clinics WHERE clinic_id = $1 FOR UPDATE",
                |q| q.bind(clinic_id),
            )
            .await?
            {
                Some(v) => v,
                None => return Err(StoreError::Conflict("no such clinic".into()).into()),
            };
            clinic.policy = policy.clone();
            sqlx::query("UPDATE clinics SET value = $2 WHERE clinic_id = $1")
                .bind(clinic_id)
                .bind(to_json(&clinic))
                .execute(&mut *c)
                .await?;
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(())
        })
    }

    async fn member(&self, clinic_id: Uuid, account_id: Uuid) -> StoreResult<Option<MemberRow>> {
        read!(self, |c| get_json(
            c,
            "members",
            "SELECT value FROM members WHERE clinic_id = $1 AND account_id = $2",
            |q| q.bind(clinic_id).bind(account_id)
        ))
    }

    async fn clinics_of(&self, account_id: Uuid) -> StoreResult<Vec<(ClinicRow, MemberRow)>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT clinic_id FROM account_clinics WHERE account_id = $1 ORDER BY clinic_id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut out = Vec::with_capacity(ids.len());
        for clinic_id in ids {
            if let (Some(c), Some(m)) = (
                self.clinic(clinic_id).await?,
                self.member(clinic_id, account_id).await?,
            ) {
                out.push((c, m));
            }
        }
        Ok(out)
    }

    async fn write_records(
        &self,
        clinic_id: Uuid,
        writes: Vec<RecordWriteRow>,
        now: UnixTime,
        events: Vec<EventDraft>,
    ) -> StoreResult<Vec<WriteOutcome>> {
        let guards: Vec<(Uuid, WriteGuard)> = writes
            .iter()
            .filter_map(|w| w.guard.map(|g| (w.chart_id, g)))
            .collect();
        tx!(self, |c| async {
            check_guards(c, clinic_id, &guards).await?;
            let out = apply_writes(c, clinic_id, &writes, now).await?;
            append_events(c, &events).await?;
            R::Ok(out)
        })
    }

    async fn record(&self, clinic_id: Uuid, record_id: Uuid) -> StoreResult<Option<RecordRow>> {
        let row = sqlx::query(
            "SELECT r.record_id, f.seq, f.chart_id, f.version, f.updated_at, f.compartment, \
             f.envelope FROM records r LEFT JOIN feed f \
             ON f.clinic_id = r.clinic_id AND f.seq = r.seq \
             WHERE r.clinic_id = $1 AND r.record_id = $2",
        )
        .bind(clinic_id)
        .bind(record_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        match row {
            None => Ok(None),
            Some(r) => {
                let seq: Option<i64> = r.try_get("seq").map_err(db_err)?;
                if seq.is_none() {
                    return Err(StoreError::Corrupt("feed"));
                }
                record_row(&r).map(Some).map_err(E::into_store)
            }
        }
    }

    async fn record_versions(
        &self,
        clinic_id: Uuid,
        record_id: Uuid,
    ) -> StoreResult<Vec<RecordRow>> {
        let rows = sqlx::query(
            "SELECT record_id, seq, chart_id, version, updated_at, compartment, envelope \
             FROM versions WHERE clinic_id = $1 AND record_id = $2 ORDER BY version",
        )
        .bind(clinic_id)
        .bind(record_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| record_row(r).map_err(E::into_store))
            .collect()
    }

    async fn records(
        &self,
        clinic_id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<RecordRow>> {
        let rows = sqlx::query(
            "SELECT r.record_id, f.seq, f.chart_id, f.version, f.updated_at, f.compartment, \
             f.envelope FROM records r LEFT JOIN feed f \
             ON f.clinic_id = r.clinic_id AND f.seq = r.seq \
             WHERE r.clinic_id = $1 AND ($2::uuid IS NULL OR r.record_id > $2) \
             ORDER BY r.record_id LIMIT $3",
        )
        .bind(clinic_id)
        .bind(after)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let seq: Option<i64> = r.try_get("seq").map_err(db_err)?;
                if seq.is_none() {
                    return Err(StoreError::Corrupt("feed"));
                }
                record_row(r).map_err(E::into_store)
            })
            .collect()
    }

    async fn changes(
        &self,
        clinic_id: Uuid,
        since: u64,
        limit: usize,
    ) -> StoreResult<(Vec<RecordRow>, u64)> {
        // The head first: a commit between the two reads only adds rows past it (their seqs
        // come later and commit in order, under the head's lock), never hides one below it.
        let head: Option<i64> = sqlx::query_scalar("SELECT seq FROM heads WHERE clinic_id = $1")
            .bind(clinic_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        let rows = sqlx::query(
            "SELECT record_id, seq, chart_id, version, updated_at, compartment, envelope \
             FROM feed WHERE clinic_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(clinic_id)
        .bind(i(since.min(i64::MAX as u64)))
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let rows = rows
            .iter()
            .map(|r| record_row(r).map_err(E::into_store))
            .collect::<StoreResult<_>>()?;
        Ok((rows, head.map(u).unwrap_or(0)))
    }

    async fn append_event(&self, event: EventDraft, durable: bool) -> StoreResult<u64> {
        tx!(self, |c| async {
            if !durable {
                // Read events are frequent; sled flushes them with its periodic flush.
                sqlx::query("SET LOCAL synchronous_commit = off")
                    .execute(&mut *c)
                    .await?;
            }
            let seqs = append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(seqs[0])
        })
    }

    fn export_clinic(
        &self,
        clinic_id: Uuid,
        exported_by: Uuid,
        at: UnixTime,
        sink: &mut dyn FnMut(ArchiveItem<'_>) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        // Blocking (the trait's contract): on the blocking pool, the runtime's handle drives the
        // queries.
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            ArchiveError::Store("export_clinic runs on a tokio runtime's blocking pool".into())
        })?;
        export::clinic(&self.pool, &rt, clinic_id, exported_by, at, sink)
    }

    async fn audit_entries(
        &self,
        clinic_id: Option<Uuid>,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>> {
        let values: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT value FROM events WHERE clinic_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(event_scope(clinic_id))
        .bind(i(since.min(i64::MAX as u64)))
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        values.iter().map(|v| from_json("events", v)).collect()
    }

    async fn audit_head(&self, clinic_id: Option<Uuid>) -> StoreResult<(u64, [u8; 32])> {
        let row = sqlx::query("SELECT seq, hash FROM event_heads WHERE clinic_id = $1")
            .bind(event_scope(clinic_id))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row {
            None => Ok((0, GENESIS_HASH)),
            Some(r) => {
                let hash: Vec<u8> = r.try_get("hash").map_err(db_err)?;
                Ok((
                    u(r.try_get("seq").map_err(db_err)?),
                    hash32("event_heads", &hash)?,
                ))
            }
        }
    }

    async fn prune_audit(&self, before: UnixTime, now: UnixTime) -> StoreResult<usize> {
        let scopes: Vec<Uuid> =
            sqlx::query_scalar("SELECT clinic_id FROM event_heads ORDER BY clinic_id")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        let mut pruned = 0;
        for scope in scopes {
            let n = tx!(self, |c| async {
                lock_event_head(c, scope).await?;
                // Entries are in time order within a log: take the leading run older than
                // `before` (at most 10,000 per pass, so one pass never holds the log long).
                let rows = sqlx::query(
                    "SELECT seq, at FROM events WHERE clinic_id = $1 ORDER BY seq LIMIT 10000",
                )
                .bind(scope)
                .fetch_all(&mut *c)
                .await?;
                let mut old: Vec<i64> = Vec::new();
                for r in &rows {
                    let at: i64 = r.try_get("at")?;
                    if at >= before {
                        break;
                    }
                    old.push(r.try_get("seq")?);
                }
                let Some(&last_seq) = old.last() else {
                    return R::Ok(0usize);
                };
                let v: Vec<u8> = sqlx::query_scalar(
                    "SELECT value FROM events WHERE clinic_id = $1 AND seq = $2",
                )
                .bind(scope)
                .bind(last_seq)
                .fetch_one(&mut *c)
                .await?;
                let last: AuditEntry = from_json("events", &v)?;
                sqlx::query("DELETE FROM events WHERE clinic_id = $1 AND seq = ANY($2)")
                    .bind(scope)
                    .bind(&old)
                    .execute(&mut *c)
                    .await?;
                // A checkpoint over a pruned entry has nothing left to vouch for.
                sqlx::query("DELETE FROM audit_checkpoints WHERE clinic_id = $1 AND seq = ANY($2)")
                    .bind(scope)
                    .bind(&old)
                    .execute(&mut *c)
                    .await?;
                sqlx::query(
                    "INSERT INTO audit_anchors (clinic_id, seq, hash) VALUES ($1, $2, $3) \
                     ON CONFLICT (clinic_id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
                )
                .bind(scope)
                .bind(last_seq)
                .bind(&last.hash.0)
                .execute(&mut *c)
                .await?;
                append_events(
                    c,
                    &[EventDraft {
                        at: now,
                        actor: None,
                        clinic_id: (!scope.is_nil()).then_some(scope),
                        action: "audit_pruned",
                        target: None,
                        count: old.len() as u32,
                        outcome: "ok",
                        ip: None,
                        detail: None,
                    }],
                )
                .await?;
                R::Ok(old.len())
            })?;
            pruned += n;
        }
        Ok(pruned)
    }

    async fn audit_anchor(&self, clinic_id: Option<Uuid>) -> StoreResult<Option<(u64, [u8; 32])>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_anchors WHERE clinic_id = $1")
            .bind(event_scope(clinic_id))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row {
            None => Ok(None),
            Some(r) => {
                let hash: Vec<u8> = r.try_get("hash").map_err(db_err)?;
                Ok(Some((
                    u(r.try_get("seq").map_err(db_err)?),
                    hash32("audit_anchors", &hash)?,
                )))
            }
        }
    }

    async fn audit_logs(&self) -> StoreResult<Vec<Option<Uuid>>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT clinic_id FROM event_heads WHERE seq > 0 ORDER BY clinic_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids
            .into_iter()
            .map(|id| (!id.is_nil()).then_some(id))
            .collect())
    }

    async fn set_audit_key(
        &self,
        clinic_id: Uuid,
        key: AuditKeySetup,
        event: EventDraft,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let n = sqlx::query(
                "INSERT INTO audit_keys (clinic_id, value) VALUES ($1, $2) \
                 ON CONFLICT (clinic_id) DO NOTHING",
            )
            .bind(clinic_id)
            .bind(to_json(&key))
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict(audit_conflict::AUDIT_KEY_EXISTS.into()).into());
            }
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(())
        })
    }

    async fn audit_key(&self, clinic_id: Uuid) -> StoreResult<Option<AuditKeySetup>> {
        read!(self, |c| get_json(
            c,
            "audit_keys",
            "SELECT value FROM audit_keys WHERE clinic_id = $1",
            |q| q.bind(clinic_id)
        ))
    }

    async fn share_audit_key(
        &self,
        clinic_id: Uuid,
        wrapped: Vec<WrappedAuditKey>,
        events: Vec<EventDraft>,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            let mut key: AuditKeySetup = match get_json(
                c,
                "audit_keys",
                "SELECT value FROM audit_keys WHERE clinic_id = $1 FOR UPDATE",
                |q| q.bind(clinic_id),
            )
            .await?
            {
                Some(k) => k,
                None => {
                    return Err(StoreError::Conflict(audit_conflict::NO_AUDIT_KEY.into()).into())
                }
            };
            for w in &wrapped {
                if key.wrapped.iter().any(|k| k.recipient == w.recipient) {
                    return Err(
                        StoreError::Conflict(audit_conflict::AUDIT_KEY_SHARED.into()).into(),
                    );
                }
                key.wrapped.push(w.clone());
            }
            sqlx::query("UPDATE audit_keys SET value = $2 WHERE clinic_id = $1")
                .bind(clinic_id)
                .bind(to_json(&key))
                .execute(&mut *c)
                .await?;
            append_events(c, &events).await?;
            R::Ok(())
        })
    }

    async fn add_checkpoint(
        &self,
        clinic_id: Uuid,
        checkpoint: AuditCheckpoint,
        event: EventDraft,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            // The log's head lock serialises checkpoints of the clinic (and pruning).
            lock_event_head(c, clinic_id).await?;
            let last: Option<i64> =
                sqlx::query_scalar("SELECT max(seq) FROM audit_checkpoints WHERE clinic_id = $1")
                    .bind(clinic_id)
                    .fetch_one(&mut *c)
                    .await?;
            if checkpoint.seq <= last.map(u).unwrap_or(0) {
                return Err(StoreError::Conflict(audit_conflict::CHECKPOINT_STALE.into()).into());
            }
            let entry: Option<AuditEntry> = get_json(
                c,
                "events",
                "SELECT value FROM events WHERE clinic_id = $1 AND seq = $2",
                |q| q.bind(clinic_id).bind(i(checkpoint.seq)),
            )
            .await?;
            match entry {
                Some(e) if e.hash == checkpoint.head_hash => {}
                _ => {
                    return Err(
                        StoreError::Conflict(audit_conflict::CHECKPOINT_MISMATCH.into()).into(),
                    )
                }
            }
            sqlx::query(
                "INSERT INTO audit_checkpoints (clinic_id, seq, value) VALUES ($1, $2, $3)",
            )
            .bind(clinic_id)
            .bind(i(checkpoint.seq))
            .bind(to_json(&checkpoint))
            .execute(&mut *c)
            .await?;
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(())
        })
    }

    async fn checkpoints(&self, clinic_id: Uuid) -> StoreResult<Vec<AuditCheckpoint>> {
        let values: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT value FROM audit_checkpoints WHERE clinic_id = $1 ORDER BY seq",
        )
        .bind(clinic_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        values
            .iter()
            .map(|v| from_json("audit_checkpoints", v))
            .collect()
    }

    async fn create_file(
        &self,
        clinic_id: Uuid,
        file: FileRow,
        guard: WriteGuard,
    ) -> StoreResult<(FileRow, bool)> {
        tx!(self, |c| async {
            let select = "SELECT value FROM files WHERE clinic_id = $1 AND file_id = $2";
            let existing: Option<FileRow> =
                get_json(c, "files", select, |q| q.bind(clinic_id).bind(file.file_id)).await?;
            if let Some(existing) = existing {
                if existing.same_upload(&file) {
                    return R::Ok((existing, false));
                }
                return file_conflict(file_conflict::EXISTS);
            }
            check_guards(c, clinic_id, &[(file.chart_id, guard)]).await?;
            let n = sqlx::query(
                "INSERT INTO files (clinic_id, file_id, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (clinic_id, file_id) DO NOTHING",
            )
            .bind(clinic_id)
            .bind(file.file_id)
            .bind(to_json(&file))
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                // Started by a concurrent request meanwhile: the same answer as a retry.
                let existing: Option<FileRow> =
                    get_json(c, "files", select, |q| q.bind(clinic_id).bind(file.file_id)).await?;
                return match existing {
                    Some(e) if e.same_upload(&file) => R::Ok((e, false)),
                    _ => file_conflict(file_conflict::EXISTS),
                };
            }
            R::Ok((file.clone(), true))
        })
    }

    async fn file(&self, clinic_id: Uuid, file_id: Uuid) -> StoreResult<Option<FileRow>> {
        read!(self, |c| get_json(
            c,
            "files",
            "SELECT value FROM files WHERE clinic_id = $1 AND file_id = $2",
            |q| q.bind(clinic_id).bind(file_id)
        ))
    }

    async fn file_chunk_indices(&self, clinic_id: Uuid, file_id: Uuid) -> StoreResult<Vec<u32>> {
        let idx: Vec<i64> = sqlx::query_scalar(
            "SELECT idx FROM file_chunk_lens WHERE clinic_id = $1 AND file_id = $2 ORDER BY idx",
        )
        .bind(clinic_id)
        .bind(file_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(idx.into_iter().map(|i| i as u32).collect())
    }

    async fn put_file_chunk(
        &self,
        clinic_id: Uuid,
        file_id: Uuid,
        index: u32,
        uploader: Uuid,
        bytes: Vec<u8>,
    ) -> StoreResult<()> {
        tx!(self, |c| async {
            // Shared: chunks of one file may arrive in parallel; completion and the sweep lock
            // the file for update, so they wait for these.
            let f = match lock_file(c, clinic_id, file_id, "SHARE").await? {
                Some(f) => f,
                None => return file_conflict(file_conflict::NO_SUCH_FILE),
            };
            if f.uploaded_by != uploader {
                return file_conflict(file_conflict::NOT_UPLOADER);
            }
            if f.is_complete() {
                return file_conflict(file_conflict::COMPLETE);
            }
            let len = bytes.len() as u64;
            if f.chunk_len(index) != Some(len) {
                return file_conflict(file_conflict::BAD_CHUNK);
            }
            sqlx::query(
                "INSERT INTO file_chunks (clinic_id, file_id, idx, bytes) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (clinic_id, file_id, idx) DO UPDATE SET bytes = EXCLUDED.bytes",
            )
            .bind(clinic_id)
            .bind(file_id)
            .bind(i64::from(index))
            .bind(&bytes)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO file_chunk_lens (clinic_id, file_id, idx, len) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (clinic_id, file_id, idx) DO UPDATE SET len = EXCLUDED.len",
            )
            .bind(clinic_id)
            .bind(file_id)
            .bind(i64::from(index))
            .bind(len as i64)
            .execute(&mut *c)
            .await?;
            R::Ok(())
        })
    }

    async fn file_chunk(
        &self,
        clinic_id: Uuid,
        file_id: Uuid,
        index: u32,
    ) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT bytes FROM file_chunks WHERE clinic_id = $1 AND file_id = $2 AND idx = $3",
        )
        .bind(clinic_id)
        .bind(file_id)
        .bind(i64::from(index))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn complete_file(
        &self,
        clinic_id: Uuid,
        file_id: Uuid,
        guard: WriteGuard,
        now: UnixTime,
        event: EventDraft,
    ) -> StoreResult<FileRow> {
        tx!(self, |c| async {
            // The guard's rows are locked before the file's (the global lock order); the
            // file's chart never changes, so it is read first without a lock.
            let chart_id = match get_json::<FileRow>(
                c,
                "files",
                "SELECT value FROM files WHERE clinic_id = $1 AND file_id = $2",
                |q| q.bind(clinic_id).bind(file_id),
            )
            .await?
            {
                Some(f) => f.chart_id,
                None => return file_conflict(file_conflict::NO_SUCH_FILE),
            };
            let guard_result = check_guards(c, clinic_id, &[(chart_id, guard)]).await;
            let guard_error = match guard_result {
                Ok(()) => None,
                Err(E::Store(e)) => Some(e),
                Err(e) => return Err(e),
            };
            let mut f = match lock_file(c, clinic_id, file_id, "UPDATE").await? {
                Some(f) => f,
                None => return file_conflict(file_conflict::NO_SUCH_FILE),
            };
            if f.uploaded_by != guard.author {
                return file_conflict(file_conflict::NOT_UPLOADER);
            }
            if f.is_complete() {
                return R::Ok(f);
            }
            let lens: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT idx, len FROM file_chunk_lens WHERE clinic_id = $1 AND file_id = $2",
            )
            .bind(clinic_id)
            .bind(file_id)
            .fetch_all(&mut *c)
            .await?;
            let lens: HashMap<i64, i64> = lens.into_iter().collect();
            let mut stored = 0u64;
            for index in 0..f.chunk_count {
                match lens.get(&i64::from(index)) {
                    Some(&len) => stored += len as u64,
                    None => return file_conflict(file_conflict::INCOMPLETE),
                }
            }
            if stored != f.total_size {
                return file_conflict(file_conflict::INCOMPLETE);
            }
            if let Some(e) = guard_error {
                return Err(e.into());
            }
            f.completed_at = Some(now);
            sqlx::query("UPDATE files SET value = $3 WHERE clinic_id = $1 AND file_id = $2")
                .bind(clinic_id)
                .bind(file_id)
                .bind(to_json(&f))
                .execute(&mut *c)
                .await?;
            append_events(c, std::slice::from_ref(&event)).await?;
            R::Ok(f)
        })
    }

    async fn import_rows(&self, clinic_id: Uuid, batch: ImportBatch) -> StoreResult<()> {
        tx!(self, |c| async {
            // The clinic's head row serialises the import's steps with each other (and with a
            // `finish_import` through another process): once the clinic exists, no more rows.
            lock_heads(c, clinic_id).await?;
            if clinic_exists(c, clinic_id).await? {
                return Err(StoreError::Conflict("clinic".into()).into());
            }
            match &batch {
                ImportBatch::Events(entries) => {
                    let seqs: Vec<i64> = entries.iter().map(|e| i(e.seq)).collect();
                    let ats: Vec<i64> = entries.iter().map(|e| e.at).collect();
                    let values: Vec<Vec<u8>> = entries.iter().map(to_json).collect();
                    sqlx::query(
                        "INSERT INTO events (clinic_id, seq, at, value) \
                         SELECT $1, s, a, v FROM UNNEST($2::bigint[], $3::bigint[], $4::bytea[]) \
                         AS t(s, a, v)",
                    )
                    .bind(clinic_id)
                    .bind(&seqs)
                    .bind(&ats)
                    .bind(&values)
                    .execute(&mut *c)
                    .await?;
                }
                ImportBatch::Records(rows) => {
                    insert_record_rows(c, clinic_id, "feed", rows).await?;
                    sqlx::query(
                        "INSERT INTO records (clinic_id, record_id, seq, version) \
                         SELECT $1, r, s, v FROM UNNEST($2::uuid[], $3::bigint[], $4::bigint[]) \
                         AS t(r, s, v)",
                    )
                    .bind(clinic_id)
                    .bind(rows.iter().map(|r| r.record_id).collect::<Vec<Uuid>>())
                    .bind(rows.iter().map(|r| i(r.seq)).collect::<Vec<i64>>())
                    .bind(rows.iter().map(|r| i(r.version)).collect::<Vec<i64>>())
                    .execute(&mut *c)
                    .await?;
                }
                ImportBatch::Versions(rows) => {
                    insert_record_rows(c, clinic_id, "versions", rows).await?;
                }
                ImportBatch::Chunks(chunks) => {
                    let files: Vec<Uuid> = chunks.iter().map(|(f, _, _)| *f).collect();
                    let idx: Vec<i64> = chunks.iter().map(|(_, n, _)| i64::from(*n)).collect();
                    let lens: Vec<i64> = chunks.iter().map(|(_, _, b)| b.len() as i64).collect();
                    let bytes: Vec<&[u8]> = chunks.iter().map(|(_, _, b)| b.as_slice()).collect();
                    sqlx::query(
                        "INSERT INTO file_chunks (clinic_id, file_id, idx, bytes) \
                         SELECT $1, f, n, b FROM UNNEST($2::uuid[], $3::bigint[], $4::bytea[]) \
                         AS t(f, n, b)",
                    )
                    .bind(clinic_id)
                    .bind(&files)
                    .bind(&idx)
                    .bind(&bytes)
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "INSERT INTO file_chunk_lens (clinic_id, file_id, idx, len) \
                         SELECT $1, f, n, l FROM UNNEST($2::uuid[], $3::bigint[], $4::bigint[]) \
                         AS t(f, n, l)",
                    )
                    .bind(clinic_id)
                    .bind(&files)
                    .bind(&idx)
                    .bind(&lens)
                    .execute(&mut *c)
                    .await?;
                }
            }
            R::Ok(())
        })
    }

    async fn finish_import(&self, import: ImportedClinic) -> StoreResult<()> {
        let im = &import;
        let c_id = im.clinic.clinic_id;
        // Accounts in id order, so two imports naming the same new people take their rows in
        // one order.
        let mut accounts: Vec<&AccountRow> = im.accounts.iter().collect();
        accounts.sort_by_key(|a| a.account_id);
        tx!(self, |c| async {
            // The clinic's head first (as `import_rows`), then the clinic row: a clinic that
            // exists (or is being made by another transaction) is a conflict.
            lock_heads(c, c_id).await?;
            let n = sqlx::query(
                "INSERT INTO clinics (clinic_id, value) VALUES ($1, $2) \
                 ON CONFLICT (clinic_id) DO NOTHING",
            )
            .bind(c_id)
            .bind(to_json(&im.clinic))
            .execute(&mut *c)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Conflict("clinic".into()).into());
            }
            for a in &accounts {
                let here: Option<AccountRow> = get_json(
                    c,
                    "accounts",
                    "SELECT value FROM accounts WHERE account_id = $1 FOR SHARE",
                    |q| q.bind(a.account_id),
                )
                .await?;
                match here {
                    Some(here) => {
                        if here.username != a.username || here.public_keys != a.public_keys {
                            return Err(StoreError::Conflict("account".into()).into());
                        }
                    }
                    None => {
                        let n = sqlx::query(
                            "INSERT INTO usernames (username, account_id) VALUES ($1, $2) \
                             ON CONFLICT (username) DO NOTHING",
                        )
                        .bind(&a.username)
                        .bind(a.account_id)
                        .execute(&mut *c)
                        .await?
                        .rows_affected();
                        if n == 0 {
                            return Err(StoreError::Conflict("username".into()).into());
                        }
                        sqlx::query("INSERT INTO accounts (account_id, value) VALUES ($1, $2)")
                            .bind(a.account_id)
                            .bind(to_json(*a))
                            .execute(&mut *c)
                            .await?;
                    }
                }
            }
            for m in &im.members {
                put_member(c, m).await?;
                put_account_clinic(c, m.account_id, c_id, &m.role).await?;
            }
            let mut head = lock_roster_head(c, c_id).await?;
            for r in &im.roster {
                append_roster(c, c_id, head, r).await?;
                head = r.seq;
            }
            for ch in &im.charts {
                put_chart(c, c_id, ch).await?;
            }
            if let Some(k) = &im.audit_key {
                sqlx::query("INSERT INTO audit_keys (clinic_id, value) VALUES ($1, $2)")
                    .bind(c_id)
                    .bind(to_json(k))
                    .execute(&mut *c)
                    .await?;
            }
            if let Some((seq, hash)) = im.audit_anchor {
                sqlx::query("INSERT INTO audit_anchors (clinic_id, seq, hash) VALUES ($1, $2, $3)")
                    .bind(c_id)
                    .bind(i(seq))
                    .bind(&hash[..])
                    .execute(&mut *c)
                    .await?;
            }
            for cp in &im.checkpoints {
                sqlx::query(
                    "INSERT INTO audit_checkpoints (clinic_id, seq, value) VALUES ($1, $2, $3)",
                )
                .bind(c_id)
                .bind(i(cp.seq))
                .bind(to_json(cp))
                .execute(&mut *c)
                .await?;
            }
            for (record_id, at) in &im.trash {
                sqlx::query(
                    "INSERT INTO trash (clinic_id, record_id, deleted_at) VALUES ($1, $2, $3)",
                )
                .bind(c_id)
                .bind(record_id)
                .bind(at)
                .execute(&mut *c)
                .await?;
            }
            for f in &im.files {
                sqlx::query("INSERT INTO files (clinic_id, file_id, value) VALUES ($1, $2, $3)")
                    .bind(c_id)
                    .bind(f.file_id)
                    .bind(to_json(f))
                    .execute(&mut *c)
                    .await?;
            }
            sqlx::query("UPDATE heads SET seq = $2 WHERE clinic_id = $1")
                .bind(c_id)
                .bind(i(im.record_head))
                .execute(&mut *c)
                .await?;
            let (seq, hash) = im.audit_head;
            if seq > 0 {
                sqlx::query(
                    "INSERT INTO event_heads (clinic_id, seq, hash) VALUES ($1, $2, $3) \
                     ON CONFLICT (clinic_id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
                )
                .bind(c_id)
                .bind(i(seq))
                .bind(&hash[..])
                .execute(&mut *c)
                .await?;
            }
            append_events(c, std::slice::from_ref(&im.event)).await?;
            R::Ok(())
        })
    }

    async fn discard_import(&self, clinic_id: Uuid) -> StoreResult<()> {
        tx!(self, |c| async {
            lock_heads(c, clinic_id).await?;
            if clinic_exists(c, clinic_id).await? {
                return Err(StoreError::Conflict("clinic".into()).into());
            }
            for table in [
                "events",
                "records",
                "feed",
                "versions",
                "file_chunks",
                "file_chunk_lens",
                // The head row `import_rows` created (at 0) for the clinic that never came.
                "heads",
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE clinic_id = $1"))
                    .bind(clinic_id)
                    .execute(&mut *c)
                    .await?;
            }
            R::Ok(())
        })
    }
}

/// A clinic's export: the same sections, keys and values as `SledStore::export_clinic` (the
/// rows sled's trees hold under the clinic's prefix, with the prefix cut off), read in one
/// REPEATABLE READ, READ ONLY transaction: a consistent snapshot while writes go on. Large
/// sections are read in pages, so memory stays bounded.
mod export {
    use super::*;
    use optovault_shared::clinic_export::*;
    use sqlx::Postgres;

    const PAGE: i64 = 1000;
    const CHUNK_PAGE: i64 = 16;

    struct Reader<'a> {
        rt: &'a tokio::runtime::Handle,
        tx: sqlx::Transaction<'static, Postgres>,
    }

    fn db(e: sqlx::Error) -> ArchiveError {
        ArchiveError::Store(classify(&e).to_string())
    }

    fn st(e: StoreError) -> ArchiveError {
        ArchiveError::Store(e.to_string())
    }

    fn decode(e: E) -> ArchiveError {
        ArchiveError::Store(e.into_store().to_string())
    }

    impl Reader<'_> {
        fn all(&mut self, q: Query<'_>) -> Result<Vec<PgRow>, ArchiveError> {
            self.rt.block_on(q.fetch_all(&mut *self.tx)).map_err(db)
        }
    }

    pub(super) fn clinic(
        pool: &PgPool,
        rt: &tokio::runtime::Handle,
        clinic_id: Uuid,
        exported_by: Uuid,
        at: UnixTime,
        sink: &mut dyn FnMut(ArchiveItem<'_>) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        let tx = rt.block_on(pool.begin()).map_err(db)?;
        let mut r = Reader { rt, tx };
        r.all(sqlx::query(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        ))?;
        let c = clinic_id.as_bytes().to_vec();
        let one = |rows: Vec<PgRow>, col: &str| -> Result<Option<Vec<u8>>, ArchiveError> {
            rows.first()
                .map(|row| row.try_get::<Vec<u8>, _>(col))
                .transpose()
                .map_err(db)
        };
        let clinic: ClinicRow = match one(
            r.all(sqlx::query("SELECT value FROM clinics WHERE clinic_id = $1").bind(clinic_id))?,
            "value",
        )? {
            Some(v) => from_json("clinics", &v).map_err(st)?,
            None => return Err(ArchiveError::Store("no such clinic".into())),
        };
        let head: i64 = match r
            .all(sqlx::query("SELECT seq FROM heads WHERE clinic_id = $1").bind(clinic_id))?
            .first()
        {
            Some(row) => row.try_get("seq").map_err(db)?,
            None => 0,
        };
        let members: Vec<MemberRow> = r
            .all(
                sqlx::query("SELECT value FROM members WHERE clinic_id = $1 ORDER BY account_id")
                    .bind(clinic_id),
            )?
            .iter()
            .map(|row| {
                let v: Vec<u8> = row.try_get("value").map_err(db)?;
                from_json("members", &v).map_err(st)
            })
            .collect::<Result<_, _>>()?;
        // Everyone whose public key a reader needs: members, authors, uploaders, actors.
        let member_ids: BTreeSet<Uuid> = members.iter().map(|m| m.account_id).collect();
        let mut people = member_ids.clone();
        people.insert(clinic.created_by);
        let profile = serde_json::from_slice(&clinic.profile)
            .map_err(|_| ArchiveError::Store("corrupt clinic profile".into()))?;
        let info = ExportedClinic {
            clinic_id,
            created_at: clinic.created_at,
            created_by: clinic.created_by,
            profile,
            policy: clinic.policy.clone(),
            record_head: u(head),
            exported_at: at,
            exported_by,
        };
        sink(ArchiveItem::Tree("clinic"))?;
        sink(ArchiveItem::Row(&c, &to_json(&info)))?;

        sink(ArchiveItem::Tree("members"))?;
        for m in members {
            let e = ExportedMember {
                account_id: m.account_id,
                role: m.role,
                added_at: m.added_at,
                wrapped_keys: m.wrapped_keys,
                pinned_anchor: m.pinned_anchor,
            };
            sink(ArchiveItem::Row(m.account_id.as_bytes(), &to_json(&e)))?;
        }

        sink(ArchiveItem::Tree("roster"))?;
        for row in r.all(
            sqlx::query("SELECT seq, value FROM roster WHERE clinic_id = $1 ORDER BY seq")
                .bind(clinic_id),
        )? {
            let seq: i64 = row.try_get("seq").map_err(db)?;
            let v: Vec<u8> = row.try_get("value").map_err(db)?;
            let roster: RosterRow = from_json("roster", &v).map_err(st)?;
            sink(ArchiveItem::Row(
                &seq.to_be_bytes(),
                &to_json(&roster.signed),
            ))?;
        }

        sink(ArchiveItem::Tree("charts"))?;
        for row in r.all(
            sqlx::query("SELECT value FROM charts WHERE clinic_id = $1 ORDER BY chart_id")
                .bind(clinic_id),
        )? {
            let v: Vec<u8> = row.try_get("value").map_err(db)?;
            let chart: ChartRow = from_json("charts", &v).map_err(st)?;
            let e = ExportedChart {
                chart_id: chart.chart_id,
                care_team: chart.care_team,
                key_epoch: chart.key_epoch,
                restricted_by: chart.restricted_by,
                restricted_at: chart.restricted_at,
            };
            sink(ArchiveItem::Row(chart.chart_id.as_bytes(), &to_json(&e)))?;
        }

        sink(ArchiveItem::Tree("audit_key"))?;
        if let Some(v) = one(
            r.all(
                sqlx::query("SELECT value FROM audit_keys WHERE clinic_id = $1").bind(clinic_id),
            )?,
            "value",
        )? {
            sink(ArchiveItem::Row(&c, &v))?;
        }

        sink(ArchiveItem::Tree("audit_anchor"))?;
        if let Some(row) = r
            .all(
                sqlx::query("SELECT seq, hash FROM audit_anchors WHERE clinic_id = $1")
                    .bind(clinic_id),
            )?
            .first()
        {
            let a = optovault_shared::wire::AuditAnchor {
                seq: u(row.try_get("seq").map_err(db)?),
                hash: B64(row.try_get("hash").map_err(db)?),
            };
            sink(ArchiveItem::Row(&c, &to_json(&a)))?;
        }

        sink(ArchiveItem::Tree("audit_checkpoints"))?;
        for row in r.all(
            sqlx::query(
                "SELECT seq, value FROM audit_checkpoints WHERE clinic_id = $1 ORDER BY seq",
            )
            .bind(clinic_id),
        )? {
            let seq: i64 = row.try_get("seq").map_err(db)?;
            let v: Vec<u8> = row.try_get("value").map_err(db)?;
            sink(ArchiveItem::Row(&seq.to_be_bytes(), &v))?;
        }

        sink(ArchiveItem::Tree("audit"))?;
        let mut after = 0i64;
        loop {
            let rows = r.all(
                sqlx::query(
                    "SELECT seq, value FROM events WHERE clinic_id = $1 AND seq > $2                      ORDER BY seq LIMIT $3",
                )
                .bind(clinic_id)
                .bind(after)
                .bind(PAGE),
            )?;
            for row in &rows {
                after = row.try_get("seq").map_err(db)?;
                let v: Vec<u8> = row.try_get("value").map_err(db)?;
                let e: AuditEntry = from_json("events", &v).map_err(st)?;
                people.extend(e.actor);
                sink(ArchiveItem::Row(&after.to_be_bytes(), &v))?;
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }

        sink(ArchiveItem::Tree("trash"))?;
        for row in r.all(
            sqlx::query(
                "SELECT record_id, deleted_at FROM trash WHERE clinic_id = $1 ORDER BY record_id",
            )
            .bind(clinic_id),
        )? {
            let record_id: Uuid = row.try_get("record_id").map_err(db)?;
            let deleted_at: i64 = row.try_get("deleted_at").map_err(db)?;
            sink(ArchiveItem::Row(
                record_id.as_bytes(),
                &to_json(&TrashRow {
                    record_id,
                    deleted_at,
                }),
            ))?;
        }

        sink(ArchiveItem::Tree("files"))?;
        let files = r.all(
            sqlx::query("SELECT value FROM files WHERE clinic_id = $1 ORDER BY file_id")
                .bind(clinic_id),
        )?;
        for row in files {
            let v: Vec<u8> = row.try_get("value").map_err(db)?;
            let f: FileRow = from_json("files", &v).map_err(st)?;
            people.insert(f.uploaded_by);
            let received: Vec<u32> = r
                .all(
                    sqlx::query(
                        "SELECT idx FROM file_chunk_lens WHERE clinic_id = $1 AND file_id = $2                          ORDER BY idx",
                    )
                    .bind(clinic_id)
                    .bind(f.file_id),
                )?
                .iter()
                .map(|row| row.try_get::<i64, _>(0).map(|i| i as u32))
                .collect::<Result<_, _>>()
                .map_err(db)?;
            sink(ArchiveItem::Row(
                f.file_id.as_bytes(),
                &to_json(&f.status(received)),
            ))?;
        }

        sink(ArchiveItem::Tree("records"))?;
        let mut after = 0i64;
        loop {
            let rows = r.all(
                sqlx::query(
                    "SELECT record_id, seq, chart_id, version, updated_at, compartment, envelope                      FROM feed WHERE clinic_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(clinic_id)
                .bind(after)
                .bind(PAGE),
            )?;
            for row in &rows {
                let rec = record_row(row).map_err(decode)?;
                after = i(rec.seq);
                let s = super::super::sled_store::stored(rec)?;
                people.insert(s.envelope.author);
                sink(ArchiveItem::Row(&after.to_be_bytes(), &to_json(&s)))?;
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }

        sink(ArchiveItem::Tree("versions"))?;
        let (mut after_record, mut after_version) = (Uuid::nil(), -1i64);
        loop {
            let rows = r.all(
                sqlx::query(
                    "SELECT record_id, seq, chart_id, version, updated_at, compartment, envelope                      FROM versions WHERE clinic_id = $1 AND (record_id, version) > ($2, $3)                      ORDER BY record_id, version LIMIT $4",
                )
                .bind(clinic_id)
                .bind(after_record)
                .bind(after_version)
                .bind(PAGE),
            )?;
            for row in &rows {
                let rec = record_row(row).map_err(decode)?;
                (after_record, after_version) = (rec.record_id, i(rec.version));
                let mut key = rec.record_id.as_bytes().to_vec();
                key.extend_from_slice(&rec.version.to_be_bytes());
                let s = super::super::sled_store::stored(rec)?;
                people.insert(s.envelope.author);
                sink(ArchiveItem::Row(&key, &to_json(&s)))?;
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }

        // Accounts last but the chunks: everyone the rows above name.
        sink(ArchiveItem::Tree("accounts"))?;
        let ids: Vec<Uuid> = people.into_iter().collect();
        let mut accounts: BTreeMap<Uuid, AccountRow> = BTreeMap::new();
        for row in
            r.all(sqlx::query("SELECT value FROM accounts WHERE account_id = ANY($1)").bind(&ids))?
        {
            let v: Vec<u8> = row.try_get("value").map_err(db)?;
            let a: AccountRow = from_json("accounts", &v).map_err(st)?;
            accounts.insert(a.account_id, a);
        }
        for (id, a) in accounts {
            // Current members' recovery kits, as sled exports them: what lets them sign in
            // again wherever the export is imported (useless without each member's own key).
            let recovery =
                a.recovery
                    .filter(|_| member_ids.contains(&id))
                    .map(|r| ExportedRecovery {
                        sealed_key_bundle: r.sealed_key_bundle,
                        verifier_hash: B64(r.verifier_hash.to_vec()),
                        created_at: r.created_at,
                    });
            let e = ExportedAccount {
                account_id: a.account_id,
                username: a.username,
                public_keys: a.public_keys,
                recovery,
            };
            sink(ArchiveItem::Row(id.as_bytes(), &to_json(&e)))?;
        }

        sink(ArchiveItem::Tree("file_chunks"))?;
        let (mut after_file, mut after_idx) = (Uuid::nil(), -1i64);
        loop {
            let rows = r.all(
                sqlx::query(
                    "SELECT file_id, idx, bytes FROM file_chunks WHERE clinic_id = $1                      AND (file_id, idx) > ($2, $3) ORDER BY file_id, idx LIMIT $4",
                )
                .bind(clinic_id)
                .bind(after_file)
                .bind(after_idx)
                .bind(CHUNK_PAGE),
            )?;
            for row in &rows {
                after_file = row.try_get("file_id").map_err(db)?;
                after_idx = row.try_get("idx").map_err(db)?;
                let bytes: Vec<u8> = row.try_get("bytes").map_err(db)?;
                let mut key = after_file.as_bytes().to_vec();
                key.extend_from_slice(&(after_idx as u32).to_be_bytes());
                sink(ArchiveItem::Row(&key, &bytes))?;
            }
            if (rows.len() as i64) < CHUNK_PAGE {
                break;
            }
        }
        r.rt.block_on(r.tx.commit()).map_err(db)?;
        Ok(())
    }
}

/// A fresh database on the test cluster for each test (see `scripts/pg-cluster.sh`).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use sqlx::{Connection, Executor};

    pub const URL_VAR: &str = "OPTOVAULT_TEST_PG_URL";

    /// The cluster's URL; `None` (the test is skipped) when it is not set, unless `CI` is set:
    /// then the PostgreSQL tests must run, and fail.
    pub fn url() -> Option<String> {
        match std::env::var(URL_VAR) {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                    panic!(
                        "CI is set but {URL_VAR} is not: the PostgreSQL tests must not be skipped \
                         in CI (start a cluster with scripts/pg-cluster.sh, or run scripts/test.sh)"
                    );
                }
                eprintln!("skipped: {URL_VAR} is not set (scripts/pg-cluster.sh start prints it)");
                None
            }
        }
    }

    /// A new, empty database on the cluster; returns its connect options.
    pub async fn fresh_database() -> Option<(PgConnectOptions, String)> {
        let url = url()?;
        let admin = PgConnectOptions::from_str(&url).expect("a valid PostgreSQL URL");
        let name = format!("ov_test_{}", Uuid::new_v4().simple());
        let mut c = PgConnection::connect_with(&admin)
            .await
            .expect("connect to the test cluster");
        c.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create a test database");
        c.close().await.ok();
        Some((admin.database(&name), name))
    }

    /// A store on a fresh database, and the database's name.
    pub async fn fresh_store() -> Option<(PgStore, PgConnectOptions, String)> {
        let (opts, name) = fresh_database().await?;
        let store = PgStore::connect_with(opts.clone(), PgOptions::default())
            .await
            .expect("connect and migrate");
        Some((store, opts, name))
    }

    /// Drops a test's database (after the test passed; a failed test leaves it for a look).
    /// Best effort: an autovacuum worker on it (which this role may not terminate) makes the
    /// drop fail for a moment; the cluster is thrown away anyway.
    pub async fn drop_database(store: PgStore, name: &str) {
        store.close().await;
        let url = url().expect("set");
        let admin = PgConnectOptions::from_str(&url).expect("a valid PostgreSQL URL");
        let mut c = PgConnection::connect_with(&admin).await.expect("connect");
        for attempt in 1..=10 {
            match c
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
            {
                Ok(_) => break,
                Err(e) if attempt == 10 => eprintln!("test database {name} left behind: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        c.close().await.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// One test per suite function, each on its own database.
    macro_rules! suite_on_postgres {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, _, db)) = fresh_store().await else { return };
                super::super::suite::$name(&store).await;
                drop_database(store, &db).await;
            }
        )*};
    }

    suite_on_postgres!(
        server_setup_is_written_once,
        accounts,
        login_attempts_are_single_use,
        sessions,
        expired_rows_are_purged,
        clinics_and_members,
        record_writes_and_conflicts,
        every_version_is_kept,
        deleted_records_wait_in_the_trash_then_are_purged,
        erasing_a_chart_takes_every_version_and_every_key,
        audit_entries_chain_and_checkpoints,
        batch_is_all_or_nothing,
        a_batch_may_write_a_record_twice,
        change_feed,
        record_listing,
        clinics_are_isolated,
        events_are_appended_per_clinic,
        concurrent_writes_keep_sequence_gapless,
        invitations_change_state_once,
        admitting_a_member_is_atomic,
        rotation_is_atomic,
        sessions_of_an_account_are_revoked,
        restricting_a_chart_is_atomic,
        guarded_writes_recheck_membership_and_epoch,
        file_creation_is_idempotent_and_conflicts,
        file_chunks_until_completion,
        file_completion_rechecks_the_guard,
        files_are_isolated_between_clinics,
        incomplete_files_are_swept,
        pruning_keeps_the_rest_of_the_log_verifiable,
        importing_a_clinic_makes_it_exist_at_once,
    );

    /// The whole suite in sequence on one database, as sled runs it (tests sharing a store).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_store_passes_the_store_suite() {
        let Some((store, _, db)) = fresh_store().await else {
            return;
        };
        super::super::suite::run_all(&store).await;
        drop_database(store, &db).await;
    }

    /// Two pools on one database are what two server processes are.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_pools_write_one_clinic() {
        let Some((a, opts, db)) = fresh_store().await else {
            return;
        };
        let b = PgStore::connect_with(opts, PgOptions::default())
            .await
            .unwrap();
        super::super::suite::concurrent_writes_through_two_handles(&a, &b).await;
        b.close().await;
        drop_database(a, &db).await;
    }

    /// Connecting again runs the migrations again (nothing to do) and finds the data.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_survives_reconnect_and_migrations_are_idempotent() {
        let Some((store, opts, db)) = fresh_store().await else {
            return;
        };
        let clinic = super::super::suite::seed_for_reopen(&store).await;
        store.close().await;
        let store = PgStore::connect_with(opts.clone(), PgOptions::default())
            .await
            .unwrap();
        super::super::suite::check_after_reopen(&store, clinic).await;
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(applied, MIGRATIONS.len() as i64);
        drop_database(store, &db).await;
    }

    /// A database migrated by a newer server is refused, not touched.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_newer_schema_is_refused() {
        let Some((store, opts, db)) = fresh_store().await else {
            return;
        };
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES ($1, 'from the future', true, '\\x00', 0)",
        )
        .bind(SCHEMA_VERSION + 1)
        .execute(store.pool())
        .await
        .unwrap();
        match PgStore::connect_with(opts, PgOptions::default()).await {
            Err(PgConnectError::NewerSchema { found, known }) => {
                assert_eq!((found, known), (SCHEMA_VERSION + 1, SCHEMA_VERSION))
            }
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a newer schema must be refused"),
        }
        drop_database(store, &db).await;
    }

    /// A connection failure is `Unavailable` (the server answers 503), not a backend error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_database_is_unavailable() {
        let Some((store, _, db)) = fresh_store().await else {
            return;
        };
        let probe = store.clone();
        store.close().await;
        match probe.clinic(Uuid::new_v4()).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("want Unavailable, got {other:?}"),
        }
        drop_database(store, &db).await;
    }

    fn envelope(
        record_id: Uuid,
        chart_id: Uuid,
        version: u64,
        author: Uuid,
        deleted: bool,
    ) -> Vec<u8> {
        serde_json::to_vec(&optovault_shared::RecordEnvelope {
            format: 1,
            record_id,
            chart_id,
            compartment: Compartment::Demographics,
            version,
            key_id: Uuid::from_u128(0x4b),
            epoch: 1,
            author,
            nonce: B64(vec![3; 12]),
            ciphertext: B64(vec![version as u8; 40]),
            signature: B64(vec![5; 64]),
            deleted,
        })
        .unwrap()
    }

    fn ev(clinic_id: Option<Uuid>, action: &'static str, at: UnixTime) -> EventDraft {
        EventDraft {
            at,
            actor: Some(Uuid::from_u128(0xa1)),
            clinic_id,
            action,
            target: None,
            count: 1,
            outcome: "ok",
            ip: None,
            detail: None,
        }
    }

    /// The same clinic, made the same way (fixed ids and times) on any store: records with
    /// history, a tombstone, a complete file.
    async fn same_clinic(store: &dyn Store) -> (Uuid, Uuid) {
        use optovault_shared::roster::SignedRosterEntry;
        use optovault_shared::wire::PublicKeys;
        let owner = Uuid::from_u128(0xa1);
        let clinic = Uuid::from_u128(0xc1);
        let (p1, p2, file) = (
            Uuid::from_u128(0x91),
            Uuid::from_u128(0x92),
            Uuid::from_u128(0xf1),
        );
        let blob = SealedBlob {
            nonce: B64(vec![1; 12]),
            ciphertext: B64(vec![2; 48]),
        };
        let account = AccountRow {
            account_id: owner,
            username: "owner".into(),
            password_file: vec![1, 2, 3],
            public_keys: PublicKeys {
                x25519: B64(vec![9; 32]),
                ed25519: B64(vec![8; 32]),
            },
            sealed_key_bundle: blob.clone(),
            created_at: 1,
            last_login_at: None,
            totp: None,
            password_set_at: 1,
            must_change_password: false,
            // Exported with the member (the export carries current members' recovery kits).
            recovery: Some(RecoveryRow {
                sealed_key_bundle: SealedBlob {
                    nonce: B64(vec![3; 12]),
                    ciphertext: B64(vec![4; 80]),
                },
                verifier_hash: [5; 32],
                created_at: 1,
            }),
            mfa_recovery_hashes: vec![],
            passkeys: vec![],
            pending_passkey: None,
        };
        store
            .create_account(account, Some(ev(None, "account_created", 1)))
            .await
            .unwrap();
        store
            .create_clinic(
                ClinicRow {
                    clinic_id: clinic,
                    created_at: 2,
                    created_by: owner,
                    profile: envelope(clinic, clinic, 1, owner, false),
                    policy: Default::default(),
                },
                MemberRow {
                    clinic_id: clinic,
                    account_id: owner,
                    role: Role::Owner,
                    added_at: 2,
                    wrapped_keys: vec![],
                    pinned_anchor: blob,
                },
                RosterRow {
                    seq: 1,
                    hash: [7; 32],
                    key_epoch: 1,
                    signed: SignedRosterEntry {
                        entry: B64(b"genesis".to_vec()),
                        signature: B64(vec![0; 64]),
                    },
                },
                ev(Some(clinic), "clinic_created", 2),
            )
            .await
            .unwrap();
        let w = |record_id: Uuid, expected_version: u64, deleted: bool| RecordWriteRow {
            record_id,
            chart_id: record_id,
            expected_version,
            compartment: Compartment::Demographics,
            envelope: envelope(record_id, record_id, expected_version + 1, owner, deleted),
            guard: Some(WriteGuard {
                author: owner,
                sealed_epoch: 1,
            }),
            deleted,
        };
        let writes = [
            vec![w(p1, 0, false), w(p2, 0, false)],
            vec![w(p1, 1, false)],
            vec![w(p2, 1, true)],
        ];
        for (n, batch) in writes.into_iter().enumerate() {
            let at = 10 + n as i64;
            store
                .write_records(
                    clinic,
                    batch,
                    at,
                    vec![ev(Some(clinic), "records_written", at)],
                )
                .await
                .unwrap();
        }
        let guard = WriteGuard {
            author: owner,
            sealed_epoch: 1,
        };
        let f = FileRow {
            file_id: file,
            chart_id: p1,
            compartment: Compartment::Clinical,
            key_id: Uuid::from_u128(0x4c),
            epoch: 1,
            chunk_count: 2,
            chunk_size: 4,
            total_size: 7,
            uploaded_by: owner,
            created_at: 20,
            completed_at: None,
        };
        store.create_file(clinic, f, guard).await.unwrap();
        store
            .put_file_chunk(clinic, file, 0, owner, vec![1, 2, 3, 4])
            .await
            .unwrap();
        store
            .put_file_chunk(clinic, file, 1, owner, vec![5, 6, 7])
            .await
            .unwrap();
        store
            .complete_file(
                clinic,
                file,
                guard,
                21,
                ev(Some(clinic), "file_uploaded", 21),
            )
            .await
            .unwrap();
        store
            .append_event(ev(Some(clinic), "records_read", 22), false)
            .await
            .unwrap();
        (clinic, owner)
    }

    /// Every section, key and value of an export, in order.
    fn export_rows(store: &dyn Store, clinic: Uuid, by: Uuid) -> Vec<(String, Vec<u8>, Vec<u8>)> {
        let mut rows = Vec::new();
        let mut tree = String::new();
        store
            .export_clinic(clinic, by, 99, &mut |item| {
                match item {
                    ArchiveItem::Tree(name) => {
                        tree = name.to_string();
                        rows.push((tree.clone(), Vec::new(), Vec::new()));
                    }
                    ArchiveItem::Row(k, v) => rows.push((tree.clone(), k.to_vec(), v.to_vec())),
                    ArchiveItem::BlockEnd => {}
                }
                Ok(())
            })
            .unwrap();
        rows
    }

    /// A clinic exported from PostgreSQL is, byte for byte, the clinic exported from sled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clinics_export_is_the_same_as_from_sled() {
        let Some((pg, _, db)) = fresh_store().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let sled = crate::store::SledStore::open(dir.path()).unwrap();
        let (clinic, owner) = same_clinic(&sled).await;
        assert_eq!(same_clinic(&pg).await, (clinic, owner));
        let (a, b) = (pg.clone(), sled.clone());
        let (from_pg, from_sled) = tokio::task::spawn_blocking(move || {
            (
                export_rows(&a, clinic, owner),
                export_rows(&b, clinic, owner),
            )
        })
        .await
        .unwrap();
        let sections: Vec<&str> = from_sled
            .iter()
            .filter(|r| r.1.is_empty())
            .map(|r| r.0.as_str())
            .collect();
        assert_eq!(sections.len(), 14, "{sections:?}");
        assert!(from_sled.len() > 30, "the scenario fills the export");
        let owner_row = from_sled
            .iter()
            .find(|r| r.0 == "accounts" && r.1 == owner.as_bytes())
            .expect("the owner's account is exported");
        assert!(
            String::from_utf8_lossy(&owner_row.2).contains("\"recovery\""),
            "the member's recovery kit travels"
        );
        for (n, (p, s)) in from_pg.iter().zip(&from_sled).enumerate() {
            assert_eq!(
                p,
                s,
                "row {n} of section {}: {} / {}",
                s.0,
                String::from_utf8_lossy(&p.2),
                String::from_utf8_lossy(&s.2)
            );
        }
        assert_eq!(from_pg.len(), from_sled.len());
        drop_database(pg, &db).await;
    }

    /// Two pools, mixed: guarded record writes, key rotations and audit events on one clinic at
    /// once. Only the conflicts the trait promises may come back (a write sealed under an epoch
    /// that was just rotated away, a roster entry that lost the race); no deadlock or other
    /// error reaches the caller, and sequences, the roster and the audit chain stay gapless.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_and_rotations_through_two_pools() {
        use optovault_shared::audit::{ChainPoint, ChainVerifier};
        use optovault_shared::roster::SignedRosterEntry;
        let Some((a, opts, db)) = fresh_store().await else {
            return;
        };
        let b = PgStore::connect_with(opts, PgOptions::default())
            .await
            .unwrap();
        let (clinic, owner) = same_clinic(&a).await;
        let (_, head_before) = a.changes(clinic, 0, 0).await.unwrap();
        let writer = |s: PgStore| async move {
            let mut acknowledged = Vec::new();
            while acknowledged.len() < 40 {
                let epoch = s.roster_head(clinic).await.unwrap().unwrap().key_epoch;
                let r = Uuid::new_v4();
                let w = RecordWriteRow {
                    record_id: r,
                    chart_id: r,
                    expected_version: 0,
                    compartment: Compartment::Demographics,
                    envelope: b"e".to_vec(),
                    guard: Some(WriteGuard {
                        author: owner,
                        sealed_epoch: epoch,
                    }),
                    deleted: false,
                };
                match s
                    .write_records(
                        clinic,
                        vec![w],
                        30,
                        vec![ev(Some(clinic), "records_written", 30)],
                    )
                    .await
                {
                    Ok(o) => acknowledged.extend(o),
                    Err(StoreError::Conflict(m)) if m == "keys rotated" => {}
                    Err(e) => panic!("write: {e:?}"),
                }
            }
            acknowledged
        };
        let rotator = |s: PgStore| async move {
            let mut done = 0;
            while done < 10 {
                let head = s.roster_head(clinic).await.unwrap().unwrap();
                let entry = RosterRow {
                    seq: head.seq + 1,
                    hash: [head.seq as u8; 32],
                    key_epoch: head.key_epoch + 1,
                    signed: SignedRosterEntry {
                        entry: B64(vec![1]),
                        signature: B64(vec![0; 64]),
                    },
                };
                match s
                    .rotate(
                        clinic,
                        entry,
                        MemberChange::ChangeRole(owner, Role::Owner),
                        vec![],
                        vec![],
                        vec![ev(Some(clinic), "keys_rotated", 31)],
                    )
                    .await
                {
                    Ok(()) => done += 1,
                    Err(StoreError::Conflict(m)) if m == "a newer roster entry" => {}
                    Err(e) => panic!("rotate: {e:?}"),
                }
            }
        };
        let reader = |s: PgStore| async move {
            for n in 0..40 {
                s.append_event(ev(Some(clinic), "records_read", 32), n % 3 == 0)
                    .await
                    .unwrap();
            }
        };
        let (w1, w2, (), (), (), ()) = tokio::join!(
            writer(a.clone()),
            writer(b.clone()),
            rotator(a.clone()),
            rotator(b.clone()),
            reader(a.clone()),
            reader(b.clone()),
        );
        let mut seqs: Vec<u64> = w1.iter().chain(&w2).map(|o| o.seq).collect();
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (head_before + 1..=head_before + 80).collect::<Vec<_>>()
        );
        let (roster, head) = b.roster(clinic, 0).await.unwrap();
        assert_eq!(
            roster.iter().map(|r| r.seq).collect::<Vec<_>>(),
            (1..=21).collect::<Vec<_>>()
        );
        assert_eq!(head.unwrap().key_epoch, 21);
        let entries = b.audit_entries(Some(clinic), 0, 10_000).await.unwrap();
        let mut chain = ChainVerifier::new(Some(clinic), ChainPoint::GENESIS, vec![]);
        for e in &entries {
            chain.push(e).unwrap();
        }
        chain.finish().unwrap();
        let count = |action: &str| entries.iter().filter(|e| e.action == action).count();
        assert_eq!(count("keys_rotated"), 20);
        assert_eq!(count("records_read"), 80 + 1);
        b.close().await;
        drop_database(a, &db).await;
    }

    /// Every file in `server/migrations/` is compiled in, in order, and nothing else.
    #[test]
    fn compiled_migrations_are_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len(), "{files:?}");
        for (file, (version, _, sql)) in files.iter().zip(MIGRATIONS) {
            assert!(file.starts_with(&format!("{version:04}_")), "{file}");
            assert_eq!(std::fs::read_to_string(dir.join(file)).unwrap(), *sql);
        }
        assert_eq!(MIGRATIONS.last().unwrap().0, SCHEMA_VERSION);
    }
}
