//! Server backups of a PostgreSQL database in sled's archive format, and restoring any server
//! backup into an empty PostgreSQL database: a backup file is the same whichever backend wrote
//! it, so a whole server moves from sled to PostgreSQL and back with `backup` and `restore`.
//!
//! The tables mirror sled's trees (`server/migrations/0001_sled_trees.sql`): each table's key
//! columns, encoded as sled encodes them (ids as their 16 bytes, counters big-endian, text as its
//! UTF-8 bytes) and concatenated, are the tree's key; its value columns, encoded the same way, are
//! the tree's value. [`TREES`] lists the mapping; the rows come out in sled's key order (uuid and
//! bytea compare bytewise, bigints are never negative, text is ordered `COLLATE "C"`).
//!
//! A backup is read in one `REPEATABLE READ, READ ONLY` transaction: one snapshot of every table,
//! taken while writes go on (nothing is paused, unlike sled). A restore writes every row in one
//! transaction into a database that holds none: it fails as a whole or not at all.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::{QueryBuilder, Row};
use uuid::Uuid;

use super::pg_store::{classify, PgStore};
use crate::backup::archive::{
    read_archive, zstd_decompress, ArchiveError, ArchiveWriter, Header, Item,
};

/// How a column is encoded in a sled key or value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum K {
    /// uuid: its 16 bytes.
    Uuid,
    /// bigint: 8 bytes, big-endian.
    U64,
    /// bigint holding a u32 (chunk index and length, key epoch): 4 bytes, big-endian.
    U32,
    /// smallint holding a u8 (a compartment code): 1 byte.
    U8,
    /// bytea of 32 bytes (a hash).
    Hash,
    /// bytea: all the bytes that are left.
    Rest,
    /// text: all the bytes that are left, as UTF-8.
    Text,
}

/// One sled tree and its table.
struct Tree {
    name: &'static str,
    key: &'static [(&'static str, K)],
    value: &'static [(&'static str, K)],
    /// Rows a backup leaves out: `heads` rows at 0 (PostgreSQL creates them when a clinic's head
    /// is locked before its first record; sled has no row then, which reads the same).
    filter: &'static str,
}

const fn t(
    name: &'static str,
    key: &'static [(&'static str, K)],
    value: &'static [(&'static str, K)],
) -> Tree {
    Tree {
        name,
        key,
        value,
        filter: "",
    }
}

const CLINIC: (&str, K) = ("clinic_id", K::Uuid);
const VALUE: &[(&str, K)] = &[("value", K::Rest)];

/// Every tree sled has, by name (sled's `tree_names()` order), `file_chunks` last as a sled
/// backup writes it. Each table is named like its tree.
const TREES: &[Tree] = &[
    t(
        "account_clinics",
        &[("account_id", K::Uuid), CLINIC],
        &[("role", K::Rest)],
    ),
    t(
        "account_sessions",
        &[("account_id", K::Uuid), ("token_hash", K::Rest)],
        &[],
    ),
    t("accounts", &[("account_id", K::Uuid)], VALUE),
    t(
        "audit_anchors",
        &[CLINIC],
        &[("seq", K::U64), ("hash", K::Hash)],
    ),
    t("audit_checkpoints", &[CLINIC, ("seq", K::U64)], VALUE),
    t("audit_keys", &[CLINIC], VALUE),
    t("charts", &[CLINIC, ("chart_id", K::Uuid)], VALUE),
    t("clinics", &[CLINIC], VALUE),
    t(
        "event_heads",
        &[CLINIC],
        &[("seq", K::U64), ("hash", K::Hash)],
    ),
    t("events", &[CLINIC, ("seq", K::U64)], VALUE),
    t(
        "feed",
        &[CLINIC, ("seq", K::U64)],
        &[
            ("record_id", K::Uuid),
            ("chart_id", K::Uuid),
            ("version", K::U64),
            ("updated_at", K::U64),
            ("compartment", K::U8),
            ("envelope", K::Rest),
        ],
    ),
    t(
        "file_chunk_lens",
        &[CLINIC, ("file_id", K::Uuid), ("idx", K::U32)],
        &[("len", K::U32)],
    ),
    t("files", &[CLINIC, ("file_id", K::Uuid)], VALUE),
    Tree {
        name: "heads",
        key: &[CLINIC],
        value: &[("seq", K::U64)],
        filter: "WHERE seq > 0",
    },
    t("invitations", &[CLINIC, ("invitation_id", K::Uuid)], VALUE),
    t("login_attempts", &[("login_id", K::Uuid)], VALUE),
    t("members", &[CLINIC, ("account_id", K::Uuid)], VALUE),
    t("meta", &[("name", K::Text)], VALUE),
    t(
        "records",
        &[CLINIC, ("record_id", K::Uuid)],
        &[("seq", K::U64), ("version", K::U64)],
    ),
    t("roster", &[CLINIC, ("seq", K::U64)], VALUE),
    t(
        "roster_heads",
        &[CLINIC],
        &[("seq", K::U64), ("hash", K::Hash), ("key_epoch", K::U32)],
    ),
    t("sessions", &[("token_hash", K::Rest)], VALUE),
    t("throttle", &[("key", K::Text)], VALUE),
    t(
        "trash",
        &[CLINIC, ("record_id", K::Uuid)],
        &[("deleted_at", K::U64)],
    ),
    t(
        "usernames",
        &[("username", K::Text)],
        &[("account_id", K::Uuid)],
    ),
    // Key: clinic ‖ record ‖ version; value: seq ‖ the feed row (which repeats the record id and
    // the version: they must agree with the key).
    t(
        "versions",
        &[CLINIC, ("record_id", K::Uuid), ("version", K::U64)],
        &[
            ("seq", K::U64),
            ("record_id", K::Uuid),
            ("chart_id", K::Uuid),
            ("version", K::U64),
            ("updated_at", K::U64),
            ("compartment", K::U8),
            ("envelope", K::Rest),
        ],
    ),
    t(
        "file_chunks",
        &[CLINIC, ("file_id", K::Uuid), ("idx", K::U32)],
        &[("bytes", K::Rest)],
    ),
];

/// sled's default tree: in every sled backup, always empty.
const SLED_DEFAULT: &str = "__sled__default";

fn db(e: sqlx::Error) -> ArchiveError {
    ArchiveError::Store(classify(&e).to_string())
}

fn bad(tree: &str, what: &str) -> ArchiveError {
    ArchiveError::Store(format!("tree {tree}: {what}"))
}

/// A column's value, between a table row and a sled key or value.
#[derive(Clone, Debug, PartialEq)]
enum V {
    Uuid(Uuid),
    I64(i64),
    I16(i16),
    Bytes(Vec<u8>),
    Text(String),
}

fn encode(row: &PgRow, cols: &[(&str, K)], out: &mut Vec<u8>) -> Result<(), sqlx::Error> {
    for (name, kind) in cols {
        match kind {
            K::Uuid => out.extend_from_slice(row.try_get::<Uuid, _>(*name)?.as_bytes()),
            K::U64 => out.extend_from_slice(&row.try_get::<i64, _>(*name)?.to_be_bytes()),
            K::U32 => out.extend_from_slice(&(row.try_get::<i64, _>(*name)? as u32).to_be_bytes()),
            K::U8 => out.push(row.try_get::<i16, _>(*name)? as u8),
            K::Hash | K::Rest => out.extend_from_slice(&row.try_get::<Vec<u8>, _>(*name)?),
            K::Text => out.extend_from_slice(row.try_get::<String, _>(*name)?.as_bytes()),
        }
    }
    Ok(())
}

/// Splits sled bytes into columns (a column already set by the key must agree).
fn decode(
    tree: &str,
    mut b: &[u8],
    cols: &[(&'static str, K)],
    into: &mut Vec<(&'static str, V)>,
) -> Result<(), ArchiveError> {
    fn take<'a>(tree: &str, b: &mut &'a [u8], n: usize) -> Result<&'a [u8], ArchiveError> {
        if b.len() < n {
            return Err(bad(tree, "a row is too short"));
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    for (name, kind) in cols {
        let v = match kind {
            K::Uuid => V::Uuid(Uuid::from_slice(take(tree, &mut b, 16)?).expect("16 bytes")),
            K::U64 => V::I64(i64::from_be_bytes(
                take(tree, &mut b, 8)?.try_into().expect("8 bytes"),
            )),
            K::U32 => V::I64(i64::from(u32::from_be_bytes(
                take(tree, &mut b, 4)?.try_into().expect("4 bytes"),
            ))),
            K::U8 => V::I16(i16::from(take(tree, &mut b, 1)?[0])),
            K::Hash => V::Bytes(take(tree, &mut b, 32)?.to_vec()),
            K::Rest => V::Bytes(std::mem::take(&mut b).to_vec()),
            K::Text => V::Text(
                String::from_utf8(std::mem::take(&mut b).to_vec())
                    .map_err(|_| bad(tree, "a key is not UTF-8"))?,
            ),
        };
        match into.iter().find(|(n, _)| n == name) {
            Some((_, known)) if *known != v => {
                return Err(bad(tree, &format!("{name} differs between key and value")))
            }
            Some(_) => {}
            None => into.push((name, v)),
        }
    }
    if !b.is_empty() {
        return Err(bad(tree, "a row is too long"));
    }
    Ok(())
}

fn columns(tree: &Tree) -> Vec<&'static str> {
    let mut cols: Vec<&'static str> = Vec::new();
    for (n, _) in tree.key.iter().chain(tree.value) {
        if !cols.contains(n) {
            cols.push(n);
        }
    }
    if tree.name == "events" {
        cols.push("at");
    }
    cols
}

impl PgStore {
    /// A consistent snapshot of the whole database in sled's trees, keys and values, into `out`
    /// (see the module comment). Blocking: call it on the blocking pool of a tokio runtime.
    pub fn write_snapshot<W: std::io::Write + std::io::Seek>(
        &self,
        out: &mut ArchiveWriter<W>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), ArchiveError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            ArchiveError::Store("a backup runs on a tokio runtime's blocking pool".into())
        })?;
        rt.block_on(snapshot(self.pool(), out, progress))
    }

    /// Restores a server backup into this database, which must hold no rows: every row in one
    /// transaction, the row counts compared with the archive's header before it commits.
    /// Blocking, like [`write_snapshot`](Self::write_snapshot). The archive should have been
    /// verified first (`crate::backup::restore_into_postgres` does).
    pub fn restore_archive(
        &self,
        input: &mut impl std::io::Read,
        progress: impl FnMut(u64, u64),
    ) -> Result<Header, ArchiveError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| {
            ArchiveError::Store("a restore runs on a tokio runtime's blocking pool".into())
        })?;
        let mut tx = rt.block_on(self.pool().begin()).map_err(db)?;
        for tree in TREES {
            let any: bool = rt
                .block_on(
                    sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", tree.name))
                        .fetch_one(&mut *tx),
                )
                .map_err(db)?;
            if any {
                return Err(ArchiveError::Store(format!(
                    "the database is not empty (table {} has rows): restore into a new, empty \
                     database",
                    tree.name
                )));
            }
        }
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut current: Option<&'static Tree> = None;
        let mut batch = Batch::default();
        let header = read_archive(
            input,
            zstd_decompress,
            |item| {
                match item {
                    Item::Tree(name) => {
                        if let Some(t) = current {
                            rt.block_on(batch.flush(t, &mut tx))?;
                        }
                        counts.insert(name.to_string(), 0);
                        current = TREES.iter().find(|t| t.name == name);
                        if current.is_none() && name != SLED_DEFAULT {
                            return Err(ArchiveError::Store(format!(
                                "the backup has a tree this server does not know: {name}"
                            )));
                        }
                    }
                    Item::Row(k, v) => {
                        let t = current.ok_or_else(|| bad(SLED_DEFAULT, "it is not empty"))?;
                        *counts.get_mut(t.name).expect("counted") += 1;
                        let mut row = Vec::with_capacity(8);
                        decode(t.name, k, t.key, &mut row)?;
                        decode(t.name, v, t.value, &mut row)?;
                        if t.name == "events" {
                            let e: optovault_shared::wire::AuditEntry =
                                serde_json::from_slice(v)
                                    .map_err(|_| bad(t.name, "an entry does not parse"))?;
                            row.push(("at", V::I64(e.at)));
                        }
                        batch.bytes += k.len() + v.len();
                        batch.rows.push(row.into_iter().map(|(_, v)| v).collect());
                        if batch.rows.len() >= 500 || batch.bytes >= 8 << 20 {
                            rt.block_on(batch.flush(t, &mut tx))?;
                        }
                    }
                    Item::BlockEnd => {}
                }
                Ok(())
            },
            progress,
        )?;
        if let Some(t) = current {
            rt.block_on(batch.flush(t, &mut tx))?;
        }
        for h in &header.trees {
            let got = counts.get(&h.name).copied().unwrap_or(0);
            if got != h.rows {
                return Err(ArchiveError::Store(format!(
                    "tree {}: {got} rows restored, the header says {}",
                    h.name, h.rows
                )));
            }
        }
        rt.block_on(tx.commit()).map_err(db)?;
        Ok(header)
    }
}

#[derive(Default)]
struct Batch {
    rows: Vec<Vec<V>>,
    bytes: usize,
}

impl Batch {
    async fn flush(
        &mut self,
        tree: &Tree,
        tx: &mut sqlx::Transaction<'static, Postgres>,
    ) -> Result<(), ArchiveError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let cols = columns(tree);
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "INSERT INTO {} ({}) ",
            tree.name,
            cols.join(", ")
        ));
        q.push_values(self.rows.drain(..), |mut b, row| {
            for v in row {
                match v {
                    V::Uuid(u) => b.push_bind(u),
                    V::I64(n) => b.push_bind(n),
                    V::I16(n) => b.push_bind(n),
                    V::Bytes(x) => b.push_bind(x),
                    V::Text(s) => b.push_bind(s),
                };
            }
        });
        q.build().execute(&mut **tx).await.map_err(db)?;
        self.bytes = 0;
        Ok(())
    }
}

async fn snapshot<W: std::io::Write + std::io::Seek>(
    pool: &PgPool,
    out: &mut ArchiveWriter<W>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), ArchiveError> {
    let mut tx = pool.begin().await.map_err(db)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    out.begin_tree(SLED_DEFAULT)?;
    for tree in TREES {
        let cols = columns(tree);
        let order: Vec<String> = tree
            .key
            .iter()
            .map(|(n, k)| match k {
                K::Text => format!("{n} COLLATE \"C\""),
                _ => n.to_string(),
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} {} ORDER BY {}",
            cols.join(", "),
            tree.name,
            tree.filter,
            order.join(", ")
        );
        out.begin_tree(tree.name)?;
        let mut rows = sqlx::query(&sql).fetch(&mut *tx);
        let (mut k, mut v) = (Vec::new(), Vec::new());
        while let Some(row) = rows.try_next().await.map_err(db)? {
            k.clear();
            v.clear();
            encode(&row, tree.key, &mut k).map_err(db)?;
            // A versions row's value repeats the record id and version of its key.
            encode(&row, tree.value, &mut v).map_err(db)?;
            out.row(&k, &v)?;
            if out.rows() % 10_000 == 0 {
                progress(out.rows());
            }
        }
    }
    drop(tx);
    progress(out.rows());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::pg_store::testing::{drop_database, fresh_store};
    use super::*;
    use crate::backup::{write_backup, Source};
    use crate::store::SledStore;

    type Rows = Vec<(String, Vec<u8>, Vec<u8>)>;

    /// Every tree (a row with an empty key and value marks its start), key and value, in order.
    fn rows_of(file: &std::path::Path) -> (Header, Rows) {
        let mut rows = Vec::new();
        let mut tree = String::new();
        let header = read_archive(
            &mut std::fs::File::open(file).unwrap(),
            zstd_decompress,
            |item| {
                match item {
                    Item::Tree(name) => {
                        tree = name.to_string();
                        rows.push((tree.clone(), vec![], vec![]));
                    }
                    Item::Row(k, v) => rows.push((tree.clone(), k.to_vec(), v.to_vec())),
                    Item::BlockEnd => {}
                }
                Ok(())
            },
            |_, _| {},
        )
        .unwrap();
        (header, rows)
    }

    async fn backup_of(source: Source, file: &std::path::Path) -> (Header, Rows) {
        let f = file.to_path_buf();
        tokio::task::spawn_blocking(move || write_backup(&source, &f, |_| {}))
            .await
            .unwrap()
            .unwrap();
        rows_of(file)
    }

    fn same(a: &Rows, b: &Rows, what: &str) {
        for (n, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(x == y, "{what}: row {n} differs, in tree {} / {}", x.0, y.0);
        }
        assert_eq!(a.len(), b.len(), "{what}");
    }

    /// sled (filled by the whole Store suite: every tree has rows) → backup → restore into
    /// PostgreSQL → backup from PostgreSQL: the same trees, keys and values in the same order;
    /// and that file restored into sled again backs up the same once more.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_backup_moves_between_sled_and_postgres_row_for_row() {
        let Some((pg, _, db)) = fresh_store().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let sled = SledStore::open(&dir.path().join("sled")).unwrap();
        crate::store::suite::run_all(&sled).await;
        // The suite leaves no record in the trash: one tombstone (its time is an i64 value).
        let c = Uuid::new_v4();
        let r = Uuid::new_v4();
        let mut row = crate::store::RecordWriteRow {
            record_id: r,
            chart_id: r,
            expected_version: 0,
            compartment: optovault_shared::Compartment::Demographics,
            envelope: b"v1".to_vec(),
            guard: None,
            deleted: false,
        };
        crate::store::Store::write_records(&sled, c, vec![row.clone()], 7, vec![])
            .await
            .unwrap();
        (row.expected_version, row.deleted, row.envelope) = (1, true, b"gone".to_vec());
        crate::store::Store::write_records(&sled, c, vec![row], -3, vec![])
            .await
            .unwrap();
        let (h1, from_sled) = backup_of(sled.clone().into(), &dir.path().join("1.ovbk")).await;
        let empty: Vec<&str> = h1
            .trees
            .iter()
            .filter(|t| t.rows == 0 && t.name != SLED_DEFAULT)
            // What the suite removes again or never makes without signatures.
            .filter(|t| {
                ![
                    "audit_checkpoints",
                    "audit_keys",
                    "login_attempts",
                    "throttle",
                ]
                .contains(&t.name.as_str())
            })
            .map(|t| t.name.as_str())
            .collect();
        assert!(empty.is_empty(), "the suite fills every tree: {empty:?}");
        let names: Vec<&str> = h1.trees.iter().map(|t| t.name.as_str()).collect();
        let mine: Vec<&str> = std::iter::once(SLED_DEFAULT)
            .chain(TREES.iter().map(|t| t.name))
            .collect();
        assert_eq!(names, mine, "the trees sled has, in its order");

        let (p, f) = (pg.clone(), dir.path().join("1.ovbk"));
        tokio::task::spawn_blocking(move || {
            p.restore_archive(&mut std::fs::File::open(&f).unwrap(), |_, _| {})
        })
        .await
        .unwrap()
        .unwrap();
        let (h2, from_pg) = backup_of(pg.clone().into(), &dir.path().join("2.ovbk")).await;
        assert_eq!(
            h1.trees
                .iter()
                .map(|t| (&t.name, t.rows, t.bytes))
                .collect::<Vec<_>>(),
            h2.trees
                .iter()
                .map(|t| (&t.name, t.rows, t.bytes))
                .collect::<Vec<_>>()
        );
        same(&from_sled, &from_pg, "sled, then PostgreSQL");

        // A database with rows is refused, and nothing is written.
        let (p, f) = (pg.clone(), dir.path().join("1.ovbk"));
        let again = tokio::task::spawn_blocking(move || {
            p.restore_archive(&mut std::fs::File::open(&f).unwrap(), |_, _| {})
        })
        .await
        .unwrap();
        assert!(
            matches!(&again, Err(ArchiveError::Store(m)) if m.contains("not empty")),
            "{again:?}"
        );

        // Back into sled from PostgreSQL's file.
        let f = dir.path().join("2.ovbk");
        let back = dir.path().join("back");
        let (_, sled2) = tokio::task::spawn_blocking(move || {
            SledStore::restore_archive(&back, &mut std::fs::File::open(&f).unwrap(), |_, _| {})
        })
        .await
        .unwrap()
        .unwrap();
        let (_, round) = backup_of(sled2.into(), &dir.path().join("3.ovbk")).await;
        same(&from_sled, &round, "sled, PostgreSQL, sled");
        drop_database(pg, &db).await;
    }
}
