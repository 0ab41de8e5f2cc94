//! File layout and the double-buffered metadata record.
//!
//! ```text
//! [0, 1 MiB)        metadata slot A
//! [1 MiB, 2 MiB)    metadata slot B
//! [2 MiB, ...)      physical chunks of `chunk_bytes` each
//! ```
//!
//! A commit writes its nodes, `fdatasync`s, then writes the whole metadata
//! record into the slot that does *not* hold the newest valid record, and
//! `fdatasync`s again. On open the valid slot with the highest sequence number
//! wins, so a torn metadata write falls back to the previous commit.
//!
//! Record (little-endian), padded to whole pages:
//!
//! ```text
//! magic "WAKETRIE" | format u32 | record_len u32 | crc32c u32 (of format + what follows)
//! seq u64 | chunk_bytes u64 | phys_chunks u32 | chunk_lo u32 | head_offset u32
//! compact_floor u32 | live_bytes u64 | map_len u32 | map [u32; map_len]
//! versions u32 | per version: version u64, state_root [32], min_chunk u32,
//!                live_bytes u64, account root ref, code root ref
//! root ref: u8 present, then hash [32], chunk u32, offset u32, len u32, min_chunk u32
//! ```

use crate::codec::Reader;
use crate::io::{AlignedBuf, PAGE_BYTES, Storage};
use crate::node::{Loc, StoredRef};
use crate::{Error, Result};
use alloy_primitives::B256;

pub(crate) const MAGIC: [u8; 8] = *b"WAKETRIE";
/// Format written by this build; files with a higher number are refused.
/// Format 2 writes leaves packed (see the node format in `node.rs`); a
/// format-1 file is still read, and is format 2 from its next commit.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// Oldest format this build reads.
const OLDEST_READABLE_FORMAT: u32 = 1;
pub(crate) const META_SLOT_BYTES: u64 = 1 << 20;
/// Byte offset of physical chunk 0.
pub(crate) const DATA_OFFSET: u64 = 2 * META_SLOT_BYTES;
const FIXED_HEADER_BYTES: usize = 20;

/// One committed, retained version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VersionRecord {
    pub version: u64,
    pub state_root: B256,
    /// Lowest chunk any node of this version lives in.
    pub min_chunk: u32,
    /// Bytes of nodes reachable from this version.
    pub live_bytes: u64,
    pub account_root: Option<StoredRef>,
    pub code_root: Option<StoredRef>,
}

/// The whole durable state of the file besides the nodes themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub seq: u64,
    pub chunk_bytes: u64,
    /// Physical chunks the file has room for.
    pub phys_chunks: u32,
    /// Logical number of `map[0]`.
    pub chunk_lo: u32,
    /// Physical chunk of each live logical chunk `chunk_lo + i`.
    pub map: Vec<u32>,
    /// Append position in the last mapped chunk (page aligned).
    pub head_offset: u32,
    /// Compaction has copied every node of the newest version out of the
    /// chunks below this one.
    pub compact_floor: u32,
    /// Retained versions, oldest first.
    pub versions: Vec<VersionRecord>,
}

impl Meta {
    pub fn new(chunk_bytes: u64) -> Meta {
        Meta {
            seq: 0,
            chunk_bytes,
            phys_chunks: 0,
            chunk_lo: 0,
            map: Vec::new(),
            head_offset: 0,
            compact_floor: 0,
            versions: Vec::new(),
        }
    }

    pub fn latest(&self) -> Option<&VersionRecord> {
        self.versions.last()
    }

    /// Logical chunk after the last mapped one.
    pub fn chunk_hi(&self) -> u32 {
        self.chunk_lo + self.map.len() as u32
    }

    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&[0; 8]); // record_len, crc: filled below
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.chunk_bytes.to_le_bytes());
        out.extend_from_slice(&self.phys_chunks.to_le_bytes());
        out.extend_from_slice(&self.chunk_lo.to_le_bytes());
        out.extend_from_slice(&self.head_offset.to_le_bytes());
        out.extend_from_slice(&self.compact_floor.to_le_bytes());
        out.extend_from_slice(&self.latest().map_or(0, |v| v.live_bytes).to_le_bytes());
        out.extend_from_slice(&(self.map.len() as u32).to_le_bytes());
        for phys in &self.map {
            out.extend_from_slice(&phys.to_le_bytes());
        }
        out.extend_from_slice(&(self.versions.len() as u32).to_le_bytes());
        for v in &self.versions {
            out.extend_from_slice(&v.version.to_le_bytes());
            out.extend_from_slice(v.state_root.as_slice());
            out.extend_from_slice(&v.min_chunk.to_le_bytes());
            out.extend_from_slice(&v.live_bytes.to_le_bytes());
            put_root(&v.account_root, &mut out);
            put_root(&v.code_root, &mut out);
        }
        if out.len() as u64 > META_SLOT_BYTES {
            return Err(Error::InvalidConfig(format!(
                "metadata record of {} bytes exceeds its {} byte slot: lower retain_versions or raise chunk_bytes",
                out.len(),
                META_SLOT_BYTES
            )));
        }
        let record_len = out.len() as u32;
        out[12..16].copy_from_slice(&record_len.to_le_bytes());
        let crc = record_crc(&out);
        out[16..20].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Option<Meta> {
        let mut r = Reader::new(&bytes[FIXED_HEADER_BYTES..]);
        let seq = r.u64()?;
        let chunk_bytes = r.u64()?;
        let phys_chunks = r.u32()?;
        let chunk_lo = r.u32()?;
        let head_offset = r.u32()?;
        let compact_floor = r.u32()?;
        let _live_bytes = r.u64()?;
        let map_len = r.u32()? as usize;
        if map_len > bytes.len() / 4 {
            return None;
        }
        let map = (0..map_len).map(|_| r.u32()).collect::<Option<Vec<_>>>()?;
        let versions_len = r.u32()? as usize;
        if versions_len > bytes.len() / 52 {
            return None;
        }
        let mut versions = Vec::with_capacity(versions_len);
        for _ in 0..versions_len {
            let version = r.u64()?;
            let state_root = r.b256()?;
            let min_chunk = r.u32()?;
            let live_bytes = r.u64()?;
            let account_root = get_root(&mut r)?;
            let code_root = get_root(&mut r)?;
            versions.push(VersionRecord {
                version,
                state_root,
                min_chunk,
                live_bytes,
                account_root,
                code_root,
            });
        }
        if !r.buf.is_empty() || !valid_chunk_bytes(chunk_bytes) {
            return None;
        }
        if map.iter().any(|&p| p >= phys_chunks) || u64::from(head_offset) > chunk_bytes {
            return None;
        }
        Some(Meta {
            seq,
            chunk_bytes,
            phys_chunks,
            chunk_lo,
            map,
            head_offset,
            compact_floor,
            versions,
        })
    }
}

pub(crate) fn valid_chunk_bytes(chunk_bytes: u64) -> bool {
    (1 << 20..=1 << 30).contains(&chunk_bytes) && chunk_bytes.is_multiple_of(PAGE_BYTES as u64)
}

fn put_root(root: &Option<StoredRef>, out: &mut Vec<u8>) {
    match root {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            out.extend_from_slice(r.hash.as_slice());
            out.extend_from_slice(&r.loc.chunk.to_le_bytes());
            out.extend_from_slice(&r.loc.offset.to_le_bytes());
            out.extend_from_slice(&r.loc.len.to_le_bytes());
            out.extend_from_slice(&r.min_chunk.to_le_bytes());
        }
    }
}

fn get_root(r: &mut Reader<'_>) -> Option<Option<StoredRef>> {
    match r.u8()? {
        0 => Some(None),
        1 => {
            let hash = r.b256()?;
            let loc = Loc { chunk: r.u32()?, offset: r.u32()?, len: r.u32()? };
            let min_chunk = r.u32()?;
            Some(Some(StoredRef { hash, loc, min_chunk }))
        }
        _ => None,
    }
}

/// Checksum of a record: the format field and everything after the fixed
/// header. Every future format keeps magic, format, length and this checksum
/// where they are, so any build can tell a newer file from a corrupt one.
fn record_crc(record: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&record[8..12]), &record[FIXED_HEADER_BYTES..])
}

/// What one metadata slot holds.
enum Slot {
    Valid(Meta),
    /// No magic: never written (or not a triedb file).
    Foreign {
        all_zero: bool,
    },
    /// Magic but a newer format.
    Newer(u32),
    /// Magic, but torn or corrupt.
    Corrupt,
}

fn read_slot(storage: &dyn Storage, index: u64) -> Result<Slot> {
    let base = index * META_SLOT_BYTES;
    let mut first = AlignedBuf::new(PAGE_BYTES);
    storage.read_at(&mut first, base).map_err(|e| Error::io("reading metadata", e))?;
    if first[..8] != MAGIC {
        return Ok(Slot::Foreign { all_zero: first.iter().all(|&b| b == 0) });
    }
    let format = u32::from_le_bytes(first[8..12].try_into().expect("4 bytes"));
    let record_len = u32::from_le_bytes(first[12..16].try_into().expect("4 bytes")) as usize;
    if record_len < FIXED_HEADER_BYTES || record_len as u64 > META_SLOT_BYTES {
        return Ok(Slot::Corrupt);
    }
    let crc = u32::from_le_bytes(first[16..20].try_into().expect("4 bytes"));
    let padded = record_len.div_ceil(PAGE_BYTES) * PAGE_BYTES;
    let record = if padded <= PAGE_BYTES {
        first
    } else {
        let mut all = AlignedBuf::new(padded);
        storage.read_at(&mut all, base).map_err(|e| Error::io("reading metadata", e))?;
        all
    };
    let record = &record[..record_len];
    if record_crc(record) != crc {
        return Ok(Slot::Corrupt);
    }
    // Checked after the checksum, which covers the format field: a flipped
    // bit is corruption, not a file from the future.
    if format > FORMAT_VERSION {
        return Ok(Slot::Newer(format));
    }
    if format < OLDEST_READABLE_FORMAT {
        return Ok(Slot::Corrupt);
    }
    Ok(Meta::decode(record).map_or(Slot::Corrupt, Slot::Valid))
}

/// The newest valid metadata and the slot it is in; `None` for a file that
/// was never initialised (both slots zero and no data written).
pub(crate) fn load(storage: &dyn Storage) -> Result<Option<(Meta, u64)>> {
    let len = storage.len().map_err(|e| Error::io("reading the file size", e))?;
    if len < DATA_OFFSET {
        // Too short to hold both slots: accept only an empty or all-zero
        // prefix (a crash during creation), anything else is foreign.
        if len == 0 {
            return Ok(None);
        }
        if len < PAGE_BYTES as u64 {
            return Err(Error::NotTrieDb);
        }
    }
    let a = read_slot(storage, 0)?;
    let b =
        if len >= DATA_OFFSET { read_slot(storage, 1)? } else { Slot::Foreign { all_zero: true } };
    match (a, b) {
        // A newer build wrote here: opening an older slot would roll its
        // commits back, and our next commit would overwrite its record.
        (Slot::Newer(found), _) | (_, Slot::Newer(found)) => {
            Err(Error::UnsupportedFormat { found, supported: FORMAT_VERSION })
        }
        (Slot::Valid(ma), Slot::Valid(mb)) => {
            Ok(Some(if ma.seq >= mb.seq { (ma, 0) } else { (mb, 1) }))
        }
        (Slot::Valid(m), _) => Ok(Some((m, 0))),
        (_, Slot::Valid(m)) => Ok(Some((m, 1))),
        (Slot::Foreign { all_zero: true }, Slot::Foreign { all_zero: true })
            if len <= DATA_OFFSET =>
        {
            Ok(None)
        }
        (Slot::Foreign { .. }, Slot::Foreign { .. }) => Err(Error::NotTrieDb),
        _ => Err(Error::MetadataCorrupt),
    }
}

/// Writes `meta` into slot `index` and makes it durable.
pub(crate) fn store(storage: &dyn Storage, meta: &Meta, index: u64) -> Result<()> {
    let record = meta.encode()?;
    let mut buf = AlignedBuf::new(record.len().div_ceil(PAGE_BYTES) * PAGE_BYTES);
    buf[..record.len()].copy_from_slice(&record);
    storage
        .write_at(&buf, index * META_SLOT_BYTES)
        .map_err(|e| Error::io("writing metadata", e))?;
    storage.sync_data().map_err(|e| Error::io("syncing metadata", e))
}
