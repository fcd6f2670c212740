//! The backup file: a fixed-size readable header, then checksummed zstd blocks.
//!
//! ```text
//! [0, 4096)  "optovault-backup v1\n" + header JSON + "\n" + SHA-256(header JSON) hex + "\n",
//!            padded with spaces
//! then       blocks: compressed len (u32 BE) ‖ raw len (u32 BE) ‖ SHA-256(compressed) ‖ zstd
//! ```
//! A block's raw bytes are whole items: `T` ‖ name len (u16) ‖ tree name, starts a tree;
//! `E` ‖ key len (u32) ‖ key ‖ value len (u32) ‖ value, one row of the current tree; `Z`, the end
//! (last item of the last block). The header is written last (the file is built under a
//! `.partial` name and renamed), and holds the SHA-256 of everything after it plus the row count
//! of every tree, so a reader can tell a damaged block (by its own checksum, with its offset), a
//! truncated file, a missing tree and a swapped block apart.
//!
//! Used for the operator's backups (every tree of the database, row by row) and for a clinic's
//! own export (its sections, see [`crate::clinic_export`]); the server writes, the server and the
//! browser read. Compression is passed in (zstd: the C library on the server, a pure-Rust
//! decoder in the browser), so this module has no dependency that wasm cannot build. Reading is
//! a push parser ([`ArchiveChecker`]): the caller fetches each block's bytes however it can (a
//! file, or slices of a browser `File`) and hands them over one by one.

use std::io::{Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8] = b"optovault-backup v1\n";
pub const HEADER_BYTES: usize = 4096;
pub const FORMAT: u32 = 1;
/// An operator's backup: every tree of the server's database.
pub const KIND_SERVER: &str = "server-backup";
/// A clinic's own export: its sections ([`crate::clinic_export`]).
pub const KIND_CLINIC: &str = "clinic-export";
/// A block is closed once its raw items reach this size (a single large row makes it larger).
const BLOCK_TARGET: usize = 1 << 20;
/// Refuse blocks claiming more than this (a corrupt length must not allocate gigabytes).
const MAX_BLOCK: u32 = 64 << 20;
/// Compresses one block (the writer's codec).
pub type Compress = fn(&[u8]) -> std::io::Result<Vec<u8>>;
/// Decompresses one block to exactly the given raw length (the reader's codec).
pub type Decompress = fn(&[u8], usize) -> Result<Vec<u8>, String>;
/// The length of a block's head: compressed len, raw len, SHA-256.
pub const BLOCK_HEAD: usize = 40;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeCount {
    pub name: String,
    pub rows: u64,
    /// Keys and values, uncompressed.
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    /// What the archive holds: [`KIND_SERVER`] or [`KIND_CLINIC`].
    pub kind: String,
    /// Unix seconds.
    pub created_at: i64,
    pub server_version: String,
    pub compression: String,
    pub trees: Vec<TreeCount>,
    pub blocks: u64,
    /// Bytes after the header.
    pub content_bytes: u64,
    /// SHA-256 of the bytes after the header, hex.
    pub content_sha256: String,
}

impl Header {
    pub fn rows(&self) -> u64 {
        self.trees.iter().map(|t| t.rows).sum()
    }
    pub fn tree(&self, name: &str) -> Option<&TreeCount> {
        self.trees.iter().find(|t| t.name == name)
    }
    /// [`content_sha256`](Self::content_sha256) as bytes (`None` if it is not 64 hex digits).
    pub fn content_digest(&self) -> Option<[u8; 32]> {
        let h = self.content_sha256.as_bytes();
        if h.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in h.chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16);
            out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Some(out)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The file is damaged or not a backup; `at` is the byte offset of the problem.
    #[error("byte {at}: {what}")]
    Corrupt { at: u64, what: String },
    /// The rows could not be stored (restore) or read (backup).
    #[error("{0}")]
    Store(String),
}

fn corrupt(at: u64, what: impl Into<String>) -> ArchiveError {
    ArchiveError::Corrupt {
        at,
        what: what.into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes an archive. Call [`begin_tree`](Self::begin_tree) and [`row`](Self::row) in order,
/// then [`finish`](Self::finish).
pub struct ArchiveWriter<W: Write + Seek> {
    out: W,
    compress: Compress,
    compression: String,
    kind: String,
    raw: Vec<u8>,
    content: Sha256,
    content_bytes: u64,
    blocks: u64,
    trees: Vec<TreeCount>,
}

impl<W: Write + Seek> ArchiveWriter<W> {
    /// `compression` names the codec in the header (e.g. `zstd-3`); `kind` is what it holds.
    pub fn new(
        mut out: W,
        compress: Compress,
        compression: &str,
        kind: &str,
    ) -> Result<Self, ArchiveError> {
        out.write_all(&[b' '; HEADER_BYTES])?;
        Ok(ArchiveWriter {
            out,
            compress,
            compression: compression.to_string(),
            kind: kind.to_string(),
            raw: Vec::with_capacity(BLOCK_TARGET + 4096),
            content: Sha256::new(),
            content_bytes: 0,
            blocks: 0,
            trees: Vec::new(),
        })
    }

    pub fn begin_tree(&mut self, name: &str) -> Result<(), ArchiveError> {
        let len = u16::try_from(name.len()).map_err(|_| ArchiveError::Store("tree name".into()))?;
        self.raw.push(b'T');
        self.raw.extend_from_slice(&len.to_be_bytes());
        self.raw.extend_from_slice(name.as_bytes());
        self.trees.push(TreeCount {
            name: name.to_string(),
            rows: 0,
            bytes: 0,
        });
        Ok(())
    }

    pub fn row(&mut self, key: &[u8], value: &[u8]) -> Result<(), ArchiveError> {
        let too_big = |_| ArchiveError::Store("a row over 4 GiB".into());
        let tree = self
            .trees
            .last_mut()
            .ok_or_else(|| ArchiveError::Store("row before any tree".into()))?;
        tree.rows += 1;
        tree.bytes += (key.len() + value.len()) as u64;
        self.raw.push(b'E');
        self.raw
            .extend_from_slice(&u32::try_from(key.len()).map_err(too_big)?.to_be_bytes());
        self.raw.extend_from_slice(key);
        self.raw
            .extend_from_slice(&u32::try_from(value.len()).map_err(too_big)?.to_be_bytes());
        self.raw.extend_from_slice(value);
        if self.raw.len() >= BLOCK_TARGET {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Rows written so far (for progress).
    pub fn rows(&self) -> u64 {
        self.trees.iter().map(|t| t.rows).sum()
    }

    fn flush_block(&mut self) -> Result<(), ArchiveError> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let packed = (self.compress)(&self.raw)?;
        let mut head = Vec::with_capacity(40);
        head.extend_from_slice(&(packed.len() as u32).to_be_bytes());
        head.extend_from_slice(&(self.raw.len() as u32).to_be_bytes());
        head.extend_from_slice(&Sha256::digest(&packed));
        for part in [&head[..], &packed[..]] {
            self.out.write_all(part)?;
            self.content.update(part);
            self.content_bytes += part.len() as u64;
        }
        self.blocks += 1;
        self.raw.clear();
        Ok(())
    }

    /// Ends the archive, writes the header in front and returns it (and the writer, synced by
    /// the caller).
    pub fn finish(
        mut self,
        created_at: i64,
        server_version: &str,
    ) -> Result<(Header, W), ArchiveError> {
        self.raw.push(b'Z');
        self.flush_block()?;
        let header = Header {
            format: FORMAT,
            kind: std::mem::take(&mut self.kind),
            created_at,
            server_version: server_version.to_string(),
            compression: std::mem::take(&mut self.compression),
            trees: std::mem::take(&mut self.trees),
            blocks: self.blocks,
            content_bytes: self.content_bytes,
            content_sha256: hex(&self.content.finalize_reset()),
        };
        let json = serde_json::to_vec(&header).expect("header serialises");
        let mut text = MAGIC.to_vec();
        text.extend_from_slice(&json);
        text.push(b'\n');
        text.extend_from_slice(hex(&Sha256::digest(&json)).as_bytes());
        text.push(b'\n');
        if text.len() > HEADER_BYTES {
            return Err(ArchiveError::Store(format!(
                "header of {} bytes does not fit in {HEADER_BYTES}",
                text.len()
            )));
        }
        self.out.flush()?;
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&text)?;
        self.out.flush()?;
        Ok((header, self.out))
    }
}

/// Parses the first [`HEADER_BYTES`] of a file (fewer if the file is shorter).
pub fn parse_header(buf: &[u8]) -> Result<Header, ArchiveError> {
    let got = buf.len().min(HEADER_BYTES);
    if got < MAGIC.len() || &buf[..MAGIC.len()] != MAGIC {
        return Err(corrupt(
            0,
            "not an OptoVault backup (no `optovault-backup v1` line)",
        ));
    }
    if got < HEADER_BYTES {
        return Err(corrupt(got as u64, "truncated inside the header"));
    }
    let body = &buf[MAGIC.len()..HEADER_BYTES];
    let end = body
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt(MAGIC.len() as u64, "header line has no end"))?;
    let json = &body[..end];
    let sum_at = end + 1;
    let sum = body
        .get(sum_at..sum_at + 65)
        .ok_or_else(|| corrupt((MAGIC.len() + sum_at) as u64, "header checksum missing"))?;
    if sum[..64] != *hex(&Sha256::digest(json)).as_bytes() || sum[64] != b'\n' {
        return Err(corrupt(MAGIC.len() as u64, "the header fails its checksum"));
    }
    if body[sum_at + 65..].iter().any(|&b| b != b' ') {
        return Err(corrupt(
            (MAGIC.len() + sum_at + 65) as u64,
            "unexpected bytes in the header padding",
        ));
    }
    let header: Header = serde_json::from_slice(json)
        .map_err(|e| corrupt(MAGIC.len() as u64, format!("header is not valid: {e}")))?;
    if header.format != FORMAT {
        return Err(corrupt(
            MAGIC.len() as u64,
            format!(
                "format {} is not supported (this version reads {FORMAT})",
                header.format
            ),
        ));
    }
    Ok(header)
}

/// Reads only the header (cheap: the first 4 KiB).
pub fn read_header(input: &mut impl Read) -> Result<Header, ArchiveError> {
    let mut buf = vec![0u8; HEADER_BYTES];
    let got = read_full(input, &mut buf)?;
    buf.truncate(got);
    parse_header(&buf)
}

/// What a reader hands to its sink, in file order.
pub enum Item<'a> {
    Tree(&'a str),
    Row(&'a [u8], &'a [u8]),
    /// Every row of one block has been handed over (a sink may commit a batch here).
    BlockEnd,
}

/// Checks an archive block by block (a push parser). Create it from the header, hand it each
/// block's 40-byte head ([`next_block_len`](Self::next_block_len) says how many bytes follow) and
/// bytes ([`block`](Self::block)) in order, then call [`finish`](Self::finish) at the end of the
/// file. Fails at the first damaged byte with its offset.
pub struct ArchiveChecker {
    header: Header,
    content: Sha256,
    at: u64,
    counts: Vec<TreeCount>,
    blocks: u64,
    ended: bool,
}

impl ArchiveChecker {
    pub fn new(header: Header) -> Self {
        ArchiveChecker {
            header,
            content: Sha256::new(),
            at: HEADER_BYTES as u64,
            counts: Vec::new(),
            blocks: 0,
            ended: false,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Byte offset of the next block.
    pub fn offset(&self) -> u64 {
        self.at
    }

    /// Checks a block's head; returns how many bytes of compressed data follow it. `got` is how
    /// many bytes of the head could be read (a short head is a truncated file).
    pub fn next_block_len(&self, head: &[u8], got: usize) -> Result<u32, ArchiveError> {
        if got < BLOCK_HEAD || head.len() < BLOCK_HEAD {
            return Err(corrupt(
                self.at + got as u64,
                "truncated inside a block header",
            ));
        }
        if self.ended {
            return Err(corrupt(self.at, "data after the end of the archive"));
        }
        let packed_len = u32::from_be_bytes(head[0..4].try_into().unwrap());
        let raw_len = u32::from_be_bytes(head[4..8].try_into().unwrap());
        if packed_len == 0 || packed_len > MAX_BLOCK || raw_len > MAX_BLOCK {
            return Err(corrupt(
                self.at,
                format!("block {} has an impossible length", self.blocks),
            ));
        }
        Ok(packed_len)
    }

    /// Checks and unpacks one block (its head and `packed` bytes, of which `got` could be read),
    /// handing its items to `sink`.
    pub fn block(
        &mut self,
        head: &[u8],
        packed: &[u8],
        decompress: Decompress,
        sink: &mut dyn FnMut(Item<'_>) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError> {
        let packed_len = self.next_block_len(head, head.len())? as usize;
        let raw_len = u32::from_be_bytes(head[4..8].try_into().unwrap()) as usize;
        let (at, index) = (self.at, self.blocks);
        if packed.len() < packed_len {
            return Err(corrupt(
                at + BLOCK_HEAD as u64 + packed.len() as u64,
                format!("truncated inside block {index}"),
            ));
        }
        let packed = &packed[..packed_len];
        if Sha256::digest(packed)[..] != head[8..BLOCK_HEAD] {
            return Err(corrupt(
                at,
                format!("block {index} ({packed_len} bytes) fails its checksum"),
            ));
        }
        self.content.update(&head[..BLOCK_HEAD]);
        self.content.update(packed);
        let raw = decompress(packed, raw_len)
            .map_err(|e| corrupt(at, format!("block {index} does not decompress: {e}")))?;
        if raw.len() != raw_len {
            return Err(corrupt(at, format!("block {index} has the wrong length")));
        }
        self.ended = parse_block(&raw, at, index, &mut self.counts, sink)?;
        sink(Item::BlockEnd)?;
        self.at += (BLOCK_HEAD + packed_len) as u64;
        self.blocks += 1;
        Ok(())
    }

    /// Bytes of content checked so far.
    pub fn content_done(&self) -> u64 {
        self.at - HEADER_BYTES as u64
    }

    /// At the end of the file: checks the content checksum, the block count and every tree's row
    /// count against the header.
    pub fn finish(self) -> Result<Header, ArchiveError> {
        let header = self.header;
        let at = self.at;
        if !self.ended {
            return Err(corrupt(
                at,
                format!(
                    "the archive ends early, after {} of {} blocks",
                    self.blocks, header.blocks
                ),
            ));
        }
        if self.blocks != header.blocks || at - HEADER_BYTES as u64 != header.content_bytes {
            return Err(corrupt(at, "block count or length differs from the header"));
        }
        if hex(&self.content.finalize()) != header.content_sha256 {
            return Err(corrupt(
                HEADER_BYTES as u64,
                "content checksum differs from the header (blocks swapped or replaced)",
            ));
        }
        let expected: Vec<(&str, u64)> = header.trees.iter().map(|t| (&*t.name, t.rows)).collect();
        let found: Vec<(&str, u64)> = self.counts.iter().map(|t| (&*t.name, t.rows)).collect();
        if expected != found {
            return Err(corrupt(
                MAGIC.len() as u64,
                format!(
                    "row counts differ from the header: header {expected:?}, content {found:?}"
                ),
            ));
        }
        Ok(header)
    }
}

/// Reads and checks a whole archive from `input`, handing every tree and row to `sink` as it
/// goes, and `progress(done, total)` content bytes after each block.
pub fn read_archive(
    input: &mut impl Read,
    decompress: Decompress,
    mut sink: impl FnMut(Item<'_>) -> Result<(), ArchiveError>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Header, ArchiveError> {
    let mut checker = ArchiveChecker::new(read_header(input)?);
    let total = checker.header().content_bytes;
    let mut packed = Vec::new();
    loop {
        let mut head = [0u8; BLOCK_HEAD];
        let got = read_full(input, &mut head)?;
        if got == 0 {
            break;
        }
        let len = checker.next_block_len(&head, got)? as usize;
        packed.resize(len, 0);
        let n = read_full(input, &mut packed)?;
        checker.block(&head, &packed[..n], decompress, &mut sink)?;
        progress(checker.content_done(), total);
    }
    checker.finish()
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, ArchiveError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Parses one block's items; true if it ends the archive.
fn parse_block(
    raw: &[u8],
    at: u64,
    block: u64,
    counts: &mut Vec<TreeCount>,
    sink: &mut dyn FnMut(Item<'_>) -> Result<(), ArchiveError>,
) -> Result<bool, ArchiveError> {
    let bad = |what: &str| corrupt(at, format!("block {block}: {what}"));
    let mut i = 0usize;
    let take = |i: &mut usize, n: usize| -> Result<&[u8], ArchiveError> {
        let s = raw
            .get(*i..*i + n)
            .ok_or_else(|| bad("an item runs past the block's end"))?;
        *i += n;
        Ok(s)
    };
    while i < raw.len() {
        let tag = raw[i];
        i += 1;
        match tag {
            b'T' => {
                let len = u16::from_be_bytes(take(&mut i, 2)?.try_into().unwrap()) as usize;
                let name = std::str::from_utf8(take(&mut i, len)?)
                    .map_err(|_| bad("a tree name is not UTF-8"))?;
                if counts.iter().any(|t| t.name == name) {
                    return Err(bad(&format!("tree {name} appears twice")));
                }
                counts.push(TreeCount {
                    name: name.to_string(),
                    rows: 0,
                    bytes: 0,
                });
                sink(Item::Tree(name))?;
            }
            b'E' => {
                let klen = u32::from_be_bytes(take(&mut i, 4)?.try_into().unwrap()) as usize;
                let key = take(&mut i, klen)?;
                let vlen = u32::from_be_bytes(take(&mut i, 4)?.try_into().unwrap()) as usize;
                let value = take(&mut i, vlen)?;
                let tree = counts
                    .last_mut()
                    .ok_or_else(|| bad("a row before any tree"))?;
                tree.rows += 1;
                tree.bytes += (klen + vlen) as u64;
                sink(Item::Row(key, value))?;
            }
            b'Z' if i == raw.len() => return Ok(true),
            b'Z' => return Err(bad("data after the end marker")),
            _ => return Err(bad(&format!("unknown item tag {tag:#04x}"))),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    // The tests use no compression: the codec is the caller's; the layout is what is tested.
    fn store(b: &[u8]) -> std::io::Result<Vec<u8>> {
        Ok(b.to_vec())
    }
    fn unstore(b: &[u8], len: usize) -> Result<Vec<u8>, String> {
        if b.len() == len {
            Ok(b.to_vec())
        } else {
            Err("length".into())
        }
    }

    fn sample(rows: usize, value: usize) -> Vec<u8> {
        let mut w =
            ArchiveWriter::new(Cursor::new(Vec::new()), store, "none", KIND_SERVER).unwrap();
        for tree in ["a", "b"] {
            w.begin_tree(tree).unwrap();
            for i in 0..rows {
                // Incompressible-ish values so that blocks fill up.
                let v: Vec<u8> = (0..value)
                    .map(|j| (i * 31 + j * 7 + tree.len()) as u8 ^ (j >> 3) as u8)
                    .collect();
                w.row(&(i as u64).to_be_bytes(), &v).unwrap();
            }
        }
        w.begin_tree("empty").unwrap();
        let (h, out) = w.finish(1_700_000_000, "test").unwrap();
        assert_eq!(h.rows(), 2 * rows as u64);
        out.into_inner()
    }

    type Rows = Vec<(String, Vec<u8>, Vec<u8>)>;

    fn read_all(bytes: &[u8]) -> Result<(Header, Rows), ArchiveError> {
        let mut rows = Vec::new();
        let mut tree = String::new();
        let h = read_archive(
            &mut Cursor::new(bytes),
            unstore,
            |item| {
                match item {
                    Item::Tree(t) => tree = t.to_string(),
                    Item::Row(k, v) => rows.push((tree.clone(), k.to_vec(), v.to_vec())),
                    Item::BlockEnd => {}
                }
                Ok(())
            },
            |_, _| {},
        )?;
        Ok((h, rows))
    }

    #[test]
    fn round_trip_keeps_every_row_in_order() {
        let bytes = sample(3000, 900);
        let (h, rows) = read_all(&bytes).unwrap();
        assert!(h.blocks > 2, "several blocks: {}", h.blocks);
        assert_eq!(rows.len(), 6000);
        assert_eq!(h.tree("empty").unwrap().rows, 0);
        assert_eq!(rows[0].0, "a");
        assert_eq!(rows[5999].0, "b");
        assert_eq!(rows[5999].1, 2999u64.to_be_bytes());
        let text = String::from_utf8_lossy(&bytes[..200]);
        assert!(
            text.starts_with("optovault-backup v1\n{\"format\":1"),
            "{text}"
        );
        let digest = h.content_digest().unwrap();
        assert_eq!(hex(&digest), h.content_sha256);
        assert_eq!(
            digest,
            <[u8; 32]>::from(Sha256::digest(&bytes[HEADER_BYTES..]))
        );
        let mut bad = h.clone();
        bad.content_sha256.replace_range(..1, "g");
        assert_eq!(bad.content_digest(), None);
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_caught() {
        let bytes = sample(400, 700);
        // Flip one byte at a spread of offsets: header, block headers, block bodies.
        for at in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            let e = read_all(&b).expect_err(&format!("flip at {at} accepted"));
            assert!(matches!(e, ArchiveError::Corrupt { .. }), "{e}");
        }
        for len in [
            0,
            10,
            HEADER_BYTES - 1,
            HEADER_BYTES,
            HEADER_BYTES + 39,
            bytes.len() - 1,
        ] {
            let e = read_all(&bytes[..len]).expect_err(&format!("truncation at {len} accepted"));
            assert!(matches!(e, ArchiveError::Corrupt { .. }), "{e}");
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&bytes[HEADER_BYTES..HEADER_BYTES + 100]);
        assert!(read_all(&longer).is_err());
    }

    #[test]
    fn a_damaged_block_is_named_with_its_offset() {
        let bytes = sample(3000, 900);
        let h = read_header(&mut Cursor::new(&bytes)).unwrap();
        assert!(h.blocks >= 3);
        // The second block starts after the first one's 40-byte head and body.
        let first_len =
            u32::from_be_bytes(bytes[HEADER_BYTES..HEADER_BYTES + 4].try_into().unwrap());
        let second = HEADER_BYTES as u64 + 40 + u64::from(first_len);
        let mut b = bytes.clone();
        b[second as usize + 100] ^= 1;
        match read_all(&b) {
            Err(ArchiveError::Corrupt { at, what }) => {
                assert_eq!(at, second);
                assert!(what.contains("block 1"), "{what}");
            }
            other => panic!("{:?}", other.map(|(h, _)| h)),
        }
    }

    #[test]
    fn swapped_blocks_fail_the_content_checksum() {
        let bytes = sample(3000, 900);
        let mut blocks = Vec::new();
        let mut at = HEADER_BYTES;
        while at < bytes.len() {
            let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            blocks.push(bytes[at..at + 40 + len].to_vec());
            at += 40 + len;
        }
        blocks.swap(0, 1);
        let mut b = bytes[..HEADER_BYTES].to_vec();
        for blk in blocks {
            b.extend_from_slice(&blk);
        }
        assert!(read_all(&b).is_err());
    }
}
