//! The archive format lives in `optovault_shared::archive` (the browser reads clinic exports
//! too); the server brings the codec: zstd, from the C library.

pub use optovault_shared::archive::*;

pub const ZSTD_LEVEL: i32 = 3;

pub fn zstd_compress(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(raw, ZSTD_LEVEL)
}

pub fn zstd_decompress(packed: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    zstd::bulk::decompress(packed, raw_len).map_err(|e| e.to_string())
}

/// A writer with the server's codec, for an archive of `kind` (`KIND_SERVER`, `KIND_CLINIC`).
pub fn zstd_writer<W: std::io::Write + std::io::Seek>(
    out: W,
    kind: &str,
) -> Result<ArchiveWriter<W>, ArchiveError> {
    ArchiveWriter::new(out, zstd_compress, &format!("zstd-{ZSTD_LEVEL}"), kind)
}

/// Ends an archive with this server's version in its header.
pub fn finish<W: std::io::Write + std::io::Seek>(
    w: ArchiveWriter<W>,
) -> Result<(Header, W), ArchiveError> {
    w.finish(crate::now(), env!("CARGO_PKG_VERSION"))
}
