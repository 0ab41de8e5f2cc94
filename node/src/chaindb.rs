//! [`ChainDb`]: an append-only, crash-safe file of executed blocks.
//!
//! Each record holds one executed block: the block as it is hashed (header,
//! transactions, ommers, withdrawals), the senders recovered for its
//! transactions and the receipts execution produced: everything
//! [`crate::rpc::StoredBlock`] needs to answer blocks, transactions,
//! receipts and logs. State is not here: it lives in triedb (version `h` is
//! the post-state of block `h`).
//!
//! ## Who writes it
//! * `wake init` appends the genesis block (height 0) and `wake import`
//!   every block it executed ([`crate::import`]); `wake node --rpc-only`
//!   reads it back ([`crate::readonly`]).
//! * Intended next user: the validator's executing node
//!   (`node/src/executing.rs`). After it commits block `h` to triedb it
//!   appends `h` here ([`ChainDb::append`]); on restart it opens the file,
//!   fills the RPC [`ChainStore`] with [`ChainDb::load_into`], keeps triedb
//!   (versions up to the tip, instead of wiping it) and resumes its
//!   `BlockExecutor` from [`ChainDb::tip_header`], re-executing only the
//!   ledger blocks above the tip instead of the whole chain.
//!
//! ## File layout
//! A 16-byte file header (`WAKECHDB`, format version `u32` LE, 4 zero
//! bytes), then records:
//! `len: u32 LE | crc32c(len bytes): u32 LE | crc32c(len bytes ++ body):
//! u32 LE | body`, where `body` is
//! `height: u64 LE | block hash: 32 bytes | payload` and the payload is
//! `u32 LE length + block RLP | u32 LE count + 20-byte senders |
//! u32 LE count + (u32 LE length + EIP-2718 receipt) per receipt`.
//!
//! ## Design decisions
//! | decision | why |
//! |---|---|
//! | Commit order: triedb version `h` first, then the record of `h` | the file never names a block whose state is missing; a crash in between leaves triedb one version ahead, which the importer detects and completes |
//! | Every append is `fdatasync`ed before it returns | a block the caller was told is stored survives a crash |
//! | `open` scans the whole file and checks every checksum, heights must be consecutive | corruption is found at start-up, not by a reader hours later; the scan is sequential and crc32c runs at memory speed |
//! | A bad record is a torn tail, cut off with a warning, only when it could be the last append: at most one record long and no whole record after it; any other bad record is [`ChainDbError::Corrupt`] naming the file and offset | a crash mid-append loses only that append; real corruption is never repaired silently |
//! | The length has its own checksum | a flipped bit in a length in the middle of the file would otherwise look like a record running past the end, that is, like a torn tail |
//! | Lengths are checked against [`RECORD_BYTES_MAX`] before anything is allocated, counts against the bytes left | a corrupt length cannot make us allocate gigabytes |
//! | Height and hash sit in front of the payload, outside the RLP | the start-up scan builds its in-memory index (offset, length, hash) without decoding blocks; the hash also serves `BLOCKHASH` ([`BlockHashes`]) |
//! | The payload is decoded only on [`ChainDb::get`], and the block hash is recomputed there | a record that passes its checksum but does not decode (or hashes differently) is still a typed error, never a panic |
//! | An exclusive `flock` on the file | two processes appending to one file would interleave records |
//! | After a failed write or sync the handle is poisoned | nobody knows what reached the disk; only a reopen can tell |

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use alloy_consensus::{Header, ReceiptEnvelope};
use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::{Address, B256};
use alloy_rlp::Encodable;
use wake_execution::{Block, BlockHashes, BlockTx, decode_block};

use crate::rpc::{ChainStore, StoreError, StoredBlock};

/// First bytes of every chain db file.
pub const MAGIC: [u8; 8] = *b"WAKECHDB";
/// The format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the file header.
pub const FILE_HEADER_BYTES: u64 = 16;
/// Most bytes of one record body: a block of up to
/// [`wake_execution::BLOCK_BYTES_MAX`] plus its senders and receipts.
pub const RECORD_BYTES_MAX: usize = 128 << 20;

/// `len`, its own check and `crc` in front of every record body.
const RECORD_HEADER_BYTES: u64 = 12;
/// `height` and `hash` at the start of every body.
const BODY_PREFIX_BYTES: usize = 8 + 32;

/// Why the chain db cannot be opened, read or appended to.
#[derive(Debug, thiserror::Error)]
pub enum ChainDbError {
    #[error("{}: i/o error while {context}: {source}", .path.display())]
    Io { path: PathBuf, context: &'static str, source: std::io::Error },
    #[error("{}: not a chain db file (bad magic)", .path.display())]
    BadMagic { path: PathBuf },
    #[error("{}: chain db format version {found}, this build reads version {supported}", .path.display())]
    UnsupportedVersion { path: PathBuf, found: u32, supported: u32 },
    #[error("{}: corrupt chain db record at byte offset {offset}: {reason}", .path.display())]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("{}: open in another process (locked)", .path.display())]
    Locked { path: PathBuf },
    #[error("block {height} does not follow the chain db tip (next height {expected})")]
    NotNext { height: u64, expected: u64 },
    #[error("block {height} has header number {number}")]
    NumberMismatch { height: u64, number: u64 },
    #[error("block {height} names parent {parent}, but the stored block {} has hash {stored}", .height - 1)]
    ParentMismatch { height: u64, parent: B256, stored: B256 },
    #[error("block {height}: {txs} transactions but {senders} senders and {receipts} receipts")]
    LengthMismatch { height: u64, txs: usize, senders: usize, receipts: usize },
    #[error("record of block {height} is {len} bytes, over the {max}-byte limit")]
    TooLarge { height: u64, len: usize, max: usize },
    #[error("{}: an earlier write failed; reopen to learn what is durable", .path.display())]
    Poisoned { path: PathBuf },
    #[error("RPC store refused block {height}: {source}")]
    Store { height: u64, source: StoreError },
}

/// Result alias of this module.
pub type Result<T, E = ChainDbError> = std::result::Result<T, E>;

/// One executed block as stored: `senders[i]` sent and `receipts[i]` is the
/// receipt of `block.body.transactions[i]`.
#[derive(Clone, Debug)]
pub struct ChainRecord {
    pub block: Block<BlockTx>,
    pub senders: Vec<Address>,
    pub receipts: Vec<ReceiptEnvelope>,
}

impl ChainRecord {
    /// A block without transactions (the genesis): no senders, no receipts.
    pub fn without_transactions(header: Header) -> ChainRecord {
        let withdrawals = header.withdrawals_root.map(|_| Default::default());
        ChainRecord {
            block: Block {
                header,
                body: alloy_consensus::BlockBody {
                    transactions: Vec::new(),
                    ommers: Vec::new(),
                    withdrawals,
                },
            },
            senders: Vec::new(),
            receipts: Vec::new(),
        }
    }

    /// The form the RPC server answers from.
    pub fn into_stored(self) -> Result<StoredBlock, StoreError> {
        StoredBlock::new(self.block, self.senders, self.receipts)
    }

    fn encode_payload(&self, out: &mut Vec<u8>) {
        let block_len = self.block.length();
        push_u32(out, block_len);
        self.block.encode(out);
        push_u32(out, self.senders.len());
        for sender in &self.senders {
            out.extend_from_slice(sender.as_slice());
        }
        push_u32(out, self.receipts.len());
        for receipt in &self.receipts {
            push_u32(out, receipt.encode_2718_len());
            receipt.encode_2718(out);
        }
    }

    /// Decodes a payload; `Err` is the reason it is corrupt.
    fn decode_payload(mut bytes: &[u8], hash: B256) -> std::result::Result<Self, String> {
        let block_len = take_u32(&mut bytes)? as usize;
        let block_bytes = take(&mut bytes, block_len)?;
        let (block, computed) = decode_block(block_bytes).map_err(|e| format!("block: {e}"))?;
        if computed != hash {
            return Err(format!("block hashes to {computed}, record says {hash}"));
        }
        let count = take_u32(&mut bytes)? as usize;
        if count != block.body.transactions.len() {
            return Err(format!(
                "{count} senders for {} transactions",
                block.body.transactions.len()
            ));
        }
        let sender_bytes = take(&mut bytes, count.checked_mul(20).ok_or("sender count")?)?;
        let senders = sender_bytes.chunks_exact(20).map(Address::from_slice).collect();
        let count = take_u32(&mut bytes)? as usize;
        if count != block.body.transactions.len() {
            return Err(format!(
                "{count} receipts for {} transactions",
                block.body.transactions.len()
            ));
        }
        let mut receipts = Vec::with_capacity(count);
        for index in 0..count {
            let len = take_u32(&mut bytes)? as usize;
            let mut receipt_bytes = take(&mut bytes, len)?;
            let receipt = ReceiptEnvelope::decode_2718(&mut receipt_bytes)
                .map_err(|e| format!("receipt {index}: {e}"))?;
            if !receipt_bytes.is_empty() {
                return Err(format!("receipt {index}: trailing bytes"));
            }
            receipts.push(receipt);
        }
        if !bytes.is_empty() {
            return Err(format!("{} trailing bytes", bytes.len()));
        }
        Ok(ChainRecord { block, senders, receipts })
    }
}

/// Where one record lives, and its block's hash.
#[derive(Clone, Copy, Debug)]
struct Entry {
    offset: u64,
    body_len: u32,
    hash: B256,
}

/// What [`ChainDb::open`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Whole records in the file.
    pub records: u64,
    /// Bytes of a torn final record cut off the end (0: the file was clean).
    pub torn_tail_bytes: u64,
}

/// An open chain db: the file, and an in-memory index of every record.
#[derive(Debug)]
pub struct ChainDb {
    path: PathBuf,
    file: File,
    /// Bytes of whole records (and the header): where the next append goes.
    len: u64,
    /// Height of the first record (`index[0]`).
    base: u64,
    index: Vec<Entry>,
    /// Header of the newest record, kept for parent checks and resumption.
    tip_header: Option<Header>,
    poisoned: bool,
}

impl ChainDb {
    /// Creates a new, empty chain db at `path` (which must not exist).
    pub fn create(path: &Path) -> Result<ChainDb> {
        let io = |context| move |source| ChainDbError::Io { path: path.into(), context, source };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io("creating the file"))?;
        lock(&file, path)?;
        file.write_all_at(&file_header(), 0).map_err(io("writing the file header"))?;
        file.sync_all().map_err(io("syncing the file header"))?;
        // The directory entry too, or a crash could lose the whole file.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io("syncing the directory"))?;
        }
        Ok(ChainDb::empty(path, file))
    }

    /// A chain db with no blocks over `file`, whose header is written.
    fn empty(path: &Path, file: File) -> ChainDb {
        ChainDb {
            path: path.to_path_buf(),
            file,
            len: FILE_HEADER_BYTES,
            base: 0,
            index: Vec::new(),
            tip_header: None,
            poisoned: false,
        }
    }

    /// Opens an existing chain db, checking every record and cutting off a
    /// torn final record (with a warning).
    pub fn open(path: &Path) -> Result<(ChainDb, Recovery)> {
        let io = |context| move |source| ChainDbError::Io { path: path.into(), context, source };
        let file =
            OpenOptions::new().read(true).write(true).open(path).map_err(io("opening the file"))?;
        lock(&file, path)?;
        let file_len = file.metadata().map_err(io("reading the file size"))?.len();
        let mut header = [0u8; FILE_HEADER_BYTES as usize];
        let header_len = (file_len.min(FILE_HEADER_BYTES)) as usize;
        file.read_exact_at(&mut header[..header_len], 0).map_err(io("reading the file header"))?;
        if file_len < FILE_HEADER_BYTES {
            // A crash during `create`: a prefix of the header is a torn
            // create, anything else is not ours.
            if header[..header_len] != file_header()[..header_len] {
                return Err(ChainDbError::BadMagic { path: path.into() });
            }
            tracing::warn!(path = %path.display(), bytes = file_len, "chain db: torn file header rewritten");
            file.write_all_at(&file_header(), 0).map_err(io("writing the file header"))?;
            file.sync_all().map_err(io("syncing the file header"))?;
            return Ok((ChainDb::empty(path, file), Recovery::default()));
        }
        check_file_header(&header, path)?;

        let (index, base, good_end) = scan(&file, path, file_len)?;
        let torn_tail_bytes = file_len - good_end;
        if torn_tail_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                offset = good_end,
                bytes = torn_tail_bytes,
                "chain db: torn final record cut off (a crash during an append)"
            );
            file.set_len(good_end).map_err(io("cutting off a torn tail"))?;
            file.sync_all().map_err(io("syncing after cutting a torn tail"))?;
        }
        let mut db = ChainDb {
            path: path.to_path_buf(),
            file,
            len: good_end,
            base,
            index,
            tip_header: None,
            poisoned: false,
        };
        if let Some(tip) = db.tip() {
            db.tip_header = db.get(tip)?.map(|record| record.block.header);
        }
        let recovery = Recovery { records: db.index.len() as u64, torn_tail_bytes };
        Ok((db, recovery))
    }

    /// [`open`](Self::open) when `path` exists, else [`create`](Self::create).
    pub fn open_or_create(path: &Path) -> Result<(ChainDb, Recovery)> {
        if path.exists() {
            ChainDb::open(path)
        } else {
            Ok((ChainDb::create(path)?, Recovery::default()))
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Height of the newest block, `None` while empty.
    pub fn tip(&self) -> Option<u64> {
        let count = self.index.len() as u64;
        count.checked_sub(1).map(|last| self.base + last)
    }

    /// Height of the oldest block, `None` while empty.
    pub fn first(&self) -> Option<u64> {
        (!self.index.is_empty()).then_some(self.base)
    }

    /// Header of the newest block.
    pub fn tip_header(&self) -> Option<&Header> {
        self.tip_header.as_ref()
    }

    /// Hash of block `height`, from the index (no read).
    pub fn hash(&self, height: u64) -> Option<B256> {
        self.entry(height).map(|e| e.hash)
    }

    /// Bytes in the file.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// Appends block `height`, which must be the next height, number itself
    /// `height` and name the tip's hash as parent. Durable when it returns.
    /// Returns the block's hash.
    pub fn append(&mut self, height: u64, record: &ChainRecord) -> Result<B256> {
        if self.poisoned {
            return Err(ChainDbError::Poisoned { path: self.path.clone() });
        }
        let expected = self.tip().map_or(height, |tip| tip + 1);
        if height != expected {
            return Err(ChainDbError::NotNext { height, expected });
        }
        let header = &record.block.header;
        if header.number != height {
            return Err(ChainDbError::NumberMismatch { height, number: header.number });
        }
        if let Some(tip) = self.tip()
            && let Some(stored) = self.hash(tip)
            && header.parent_hash != stored
        {
            return Err(ChainDbError::ParentMismatch {
                height,
                parent: header.parent_hash,
                stored,
            });
        }
        let txs = record.block.body.transactions.len();
        if record.senders.len() != txs || record.receipts.len() != txs {
            return Err(ChainDbError::LengthMismatch {
                height,
                txs,
                senders: record.senders.len(),
                receipts: record.receipts.len(),
            });
        }
        let hash = header.hash_slow();
        let mut body = Vec::with_capacity(BODY_PREFIX_BYTES + record.block.length() + 1024);
        body.extend_from_slice(&height.to_le_bytes());
        body.extend_from_slice(hash.as_slice());
        record.encode_payload(&mut body);
        if body.len() > RECORD_BYTES_MAX {
            return Err(ChainDbError::TooLarge { height, len: body.len(), max: RECORD_BYTES_MAX });
        }
        let mut framed = Vec::with_capacity(body.len() + RECORD_HEADER_BYTES as usize);
        framed.extend_from_slice(&record_header(&body));
        framed.extend_from_slice(&body);
        let offset = self.len;
        let written = self.file.write_all_at(&framed, offset).and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            self.poisoned = true;
            return Err(ChainDbError::Io {
                path: self.path.clone(),
                context: "appending a block",
                source,
            });
        }
        if self.index.is_empty() {
            self.base = height;
        }
        self.index.push(Entry { offset, body_len: body.len() as u32, hash });
        self.len += framed.len() as u64;
        self.tip_header = Some(header.clone());
        Ok(hash)
    }

    /// Block `height`, read and decoded; `None` when it is not stored.
    pub fn get(&self, height: u64) -> Result<Option<ChainRecord>> {
        let Some(entry) = self.entry(height) else { return Ok(None) };
        self.read(entry).map(Some)
    }

    /// Every stored block from `from` on, oldest first. Each item is read
    /// when the iterator reaches it.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = Result<(u64, ChainRecord)>> + '_ {
        let start = from.max(self.base);
        let end = self.tip().map_or(start, |tip| tip + 1);
        (start..end).map(move |height| match self.entry(height) {
            Some(entry) => self.read(entry).map(|record| (height, record)),
            None => Err(self.corrupt(0, format!("index has no entry for height {height}"))),
        })
    }

    /// Every stored block, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Result<(u64, ChainRecord)>> + '_ {
        self.iter_from(self.base)
    }

    /// Inserts the newest blocks (as many as `store` keeps) into `store`,
    /// oldest first, and marks the tip finalized. Returns the tip.
    pub fn load_into(&self, store: &ChainStore) -> Result<Option<u64>> {
        let Some(tip) = self.tip() else { return Ok(None) };
        let keep = store.config().blocks_max as u64;
        let from = tip.saturating_sub(keep.saturating_sub(1)).max(self.base);
        for item in self.iter_from(from) {
            let (height, record) = item?;
            let stored =
                record.into_stored().map_err(|source| ChainDbError::Store { height, source })?;
            store.insert(stored).map_err(|source| ChainDbError::Store { height, source })?;
        }
        store.set_finalized(tip);
        Ok(Some(tip))
    }

    fn entry(&self, height: u64) -> Option<&Entry> {
        let index = usize::try_from(height.checked_sub(self.base)?).ok()?;
        self.index.get(index)
    }

    fn read(&self, entry: &Entry) -> Result<ChainRecord> {
        let mut framed = vec![0u8; RECORD_HEADER_BYTES as usize + entry.body_len as usize];
        self.file.read_exact_at(&mut framed, entry.offset).map_err(|source| ChainDbError::Io {
            path: self.path.clone(),
            context: "reading a block",
            source,
        })?;
        let (header, body) = framed.split_at(RECORD_HEADER_BYTES as usize);
        let intact = parse_record_header(header)
            .is_some_and(|(len, crc)| len == entry.body_len && checksum(&header[..4], body) == crc);
        if !intact {
            return Err(self.corrupt(entry.offset, "checksum mismatch on read".into()));
        }
        let payload = &body[BODY_PREFIX_BYTES..];
        ChainRecord::decode_payload(payload, entry.hash)
            .map_err(|reason| self.corrupt(entry.offset, reason))
    }

    fn corrupt(&self, offset: u64, reason: String) -> ChainDbError {
        ChainDbError::Corrupt { path: self.path.clone(), offset, reason }
    }
}

/// `BLOCKHASH` answers from the index.
impl BlockHashes for ChainDb {
    fn block_hash(&self, number: u64) -> Option<B256> {
        self.hash(number)
    }
}

/// Scans the records after the file header: returns the index, the first
/// height, and the end of the last whole record.
fn scan(file: &File, path: &Path, file_len: u64) -> Result<(Vec<Entry>, u64, u64)> {
    let io = |context| move |source| ChainDbError::Io { path: path.into(), context, source };
    let corrupt =
        |offset, reason: String| ChainDbError::Corrupt { path: path.into(), offset, reason };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    std::io::copy(&mut (&mut reader).take(FILE_HEADER_BYTES), &mut std::io::sink())
        .map_err(io("reading the file header"))?;
    let mut index: Vec<Entry> = Vec::new();
    let mut base = 0;
    let mut offset = FILE_HEADER_BYTES;
    let mut body = Vec::new();
    loop {
        if offset == file_len {
            return Ok((index, base, offset));
        }
        let bad = |reason: &str| torn_or_corrupt(file, path, offset, file_len, reason);
        if file_len - offset < RECORD_HEADER_BYTES {
            bad("record header cut short")?;
            return Ok((index, base, offset));
        }
        let mut header = [0u8; RECORD_HEADER_BYTES as usize];
        reader.read_exact(&mut header).map_err(io("reading a record header"))?;
        let Some((len, crc)) = parse_record_header(&header) else {
            bad("record header checksum mismatch")?;
            return Ok((index, base, offset));
        };
        if len as usize > RECORD_BYTES_MAX {
            return Err(corrupt(offset, format!("record length {len} over the limit")));
        }
        let end = offset + RECORD_HEADER_BYTES + u64::from(len);
        if end > file_len {
            bad("record cut short by the end of the file")?;
            return Ok((index, base, offset));
        }
        body.resize(len as usize, 0);
        reader.read_exact(&mut body).map_err(io("reading a record"))?;
        if checksum(&header[..4], &body) != crc {
            bad("checksum mismatch")?;
            return Ok((index, base, offset));
        }
        if body.len() < BODY_PREFIX_BYTES {
            return Err(corrupt(offset, "record shorter than its height and hash".into()));
        }
        let mut height_bytes = [0u8; 8];
        height_bytes.copy_from_slice(&body[..8]);
        let height = u64::from_le_bytes(height_bytes);
        let hash = B256::from_slice(&body[8..BODY_PREFIX_BYTES]);
        let expected = base + index.len() as u64;
        if index.is_empty() {
            base = height;
        } else if height != expected {
            return Err(corrupt(
                offset,
                format!(
                    "height {height} where {expected} was expected (heights must be consecutive)"
                ),
            ));
        }
        index.push(Entry { offset, body_len: len, hash });
        offset = end;
    }
}

/// A bad record at `offset` is a torn tail (a crash during the last append)
/// when it could be one append (at most one record long) and no whole
/// record follows it; otherwise it is corruption.
fn torn_or_corrupt(
    file: &File,
    path: &Path,
    offset: u64,
    file_len: u64,
    reason: &str,
) -> Result<()> {
    let corrupt = |reason: String| ChainDbError::Corrupt { path: path.into(), offset, reason };
    let rest = file_len - offset;
    if rest > RECORD_HEADER_BYTES + RECORD_BYTES_MAX as u64 {
        return Err(corrupt(format!("{reason}, with {rest} bytes after it")));
    }
    let mut tail = vec![0u8; rest as usize];
    file.read_exact_at(&mut tail, offset).map_err(|source| ChainDbError::Io {
        path: path.into(),
        context: "reading the tail",
        source,
    })?;
    for start in 1..tail.len() {
        let candidate = &tail[start..];
        let Some(header) = candidate.get(..RECORD_HEADER_BYTES as usize) else { break };
        let Some((len, crc)) = parse_record_header(header) else { continue };
        let Some(body) =
            candidate.get(RECORD_HEADER_BYTES as usize..).and_then(|b| b.get(..len as usize))
        else {
            continue;
        };
        if checksum(&header[..4], body) == crc {
            return Err(corrupt(format!(
                "{reason}, followed by a whole record at byte offset {}",
                offset + start as u64
            )));
        }
    }
    Ok(())
}

/// The body length and checksum of a record header, `None` when the
/// header's own check fails.
fn parse_record_header(header: &[u8]) -> Option<(u32, u32)> {
    let word = |i: usize| {
        let bytes = header.get(i..i + 4)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    };
    let (len, len_check, crc) = (word(0)?, word(4)?, word(8)?);
    (crc32c::crc32c(&header[..4]) == len_check).then_some((len, crc))
}

fn record_header(body: &[u8]) -> [u8; RECORD_HEADER_BYTES as usize] {
    let len = (body.len() as u32).to_le_bytes();
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    header[..4].copy_from_slice(&len);
    header[4..8].copy_from_slice(&crc32c::crc32c(&len).to_le_bytes());
    header[8..].copy_from_slice(&checksum(&len, body).to_le_bytes());
    header
}

fn file_header() -> [u8; FILE_HEADER_BYTES as usize] {
    let mut header = [0u8; FILE_HEADER_BYTES as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header
}

fn check_file_header(header: &[u8; FILE_HEADER_BYTES as usize], path: &Path) -> Result<()> {
    if header[..8] != MAGIC {
        return Err(ChainDbError::BadMagic { path: path.into() });
    }
    let found = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if found != FORMAT_VERSION {
        return Err(ChainDbError::UnsupportedVersion {
            path: path.into(),
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// An exclusive advisory lock for the life of the handle.
fn lock(file: &File, path: &Path) -> Result<()> {
    // SAFETY: `flock` on a file descriptor we own and keep open; no memory
    // is passed to the kernel.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let source = std::io::Error::last_os_error();
    if source.kind() == std::io::ErrorKind::WouldBlock {
        return Err(ChainDbError::Locked { path: path.into() });
    }
    Err(ChainDbError::Io { path: path.into(), context: "locking the file", source })
}

fn checksum(len: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), body)
}

fn push_u32(out: &mut Vec<u8>, value: usize) {
    // Every length written is below RECORD_BYTES_MAX, checked after encoding.
    out.extend_from_slice(&(value.min(u32::MAX as usize) as u32).to_le_bytes());
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> std::result::Result<&'a [u8], String> {
    if bytes.len() < len {
        return Err(format!("{len} bytes announced, {} left", bytes.len()));
    }
    let (head, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(head)
}

fn take_u32(bytes: &mut &[u8]) -> std::result::Result<u32, String> {
    let raw = take(bytes, 4)?;
    Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::StoreConfig;
    use alloy_consensus::{
        Eip658Value, Receipt, ReceiptWithBloom, SignableTransaction, TxEip1559, TxLegacy,
    };
    use alloy_primitives::{Bytes, Log, LogData, Signature, TxKind, U256};

    fn signature() -> Signature {
        Signature::new(U256::from(1u64), U256::from(2u64), false)
    }

    /// A chain of `n` blocks after a genesis, each with `height % 3`
    /// transactions (legacy and EIP-1559), receipts with logs.
    fn chain(n: u64) -> Vec<ChainRecord> {
        let genesis = Header {
            withdrawals_root: Some(alloy_trie::EMPTY_ROOT_HASH),
            base_fee_per_gas: Some(7),
            ..Default::default()
        };
        let mut records = vec![ChainRecord::without_transactions(genesis)];
        for height in 1..=n {
            let parent = records.last().map(|r| r.block.header.hash_slow()).unwrap_or_default();
            let mut txs = Vec::new();
            let mut receipts = Vec::new();
            let mut senders = Vec::new();
            for i in 0..height % 3 {
                let tx: BlockTx = if i % 2 == 0 {
                    let tx = TxLegacy {
                        chain_id: Some(1),
                        nonce: height,
                        gas_price: 10,
                        gas_limit: 21_000,
                        to: TxKind::Call(Address::repeat_byte(i as u8)),
                        value: U256::from(height),
                        input: Bytes::new(),
                    };
                    tx.into_signed(signature()).into()
                } else {
                    let tx = TxEip1559 {
                        chain_id: 1,
                        nonce: height,
                        gas_limit: 50_000,
                        max_fee_per_gas: 100,
                        max_priority_fee_per_gas: 1,
                        to: TxKind::Create,
                        value: U256::ZERO,
                        access_list: Default::default(),
                        input: Bytes::from(vec![0x60, 0x00]),
                    };
                    tx.into_signed(signature()).into()
                };
                txs.push(tx);
                senders.push(Address::repeat_byte(0x10 + i as u8));
                let log = Log {
                    address: Address::repeat_byte(0xaa),
                    data: LogData::new_unchecked(vec![B256::repeat_byte(1)], Bytes::from(vec![1])),
                };
                let receipt = Receipt {
                    status: Eip658Value::Eip658(true),
                    cumulative_gas_used: 21_000 * (i + 1),
                    logs: vec![log],
                };
                let with_bloom = ReceiptWithBloom::from(receipt);
                receipts.push(if i % 2 == 0 {
                    ReceiptEnvelope::Legacy(with_bloom)
                } else {
                    ReceiptEnvelope::Eip1559(with_bloom)
                });
            }
            let header = Header {
                parent_hash: parent,
                number: height,
                timestamp: height * 12,
                withdrawals_root: Some(alloy_trie::EMPTY_ROOT_HASH),
                base_fee_per_gas: Some(7),
                ..Default::default()
            };
            records.push(ChainRecord {
                block: Block {
                    header,
                    body: alloy_consensus::BlockBody {
                        transactions: txs,
                        ommers: Vec::new(),
                        withdrawals: Some(Default::default()),
                    },
                },
                senders,
                receipts,
            });
        }
        records
    }

    fn write(path: &Path, records: &[ChainRecord]) -> Vec<B256> {
        let mut db = ChainDb::create(path).unwrap();
        records
            .iter()
            .enumerate()
            .map(|(height, record)| db.append(height as u64, record).unwrap())
            .collect()
    }

    fn flip(path: &Path, offset: u64) {
        let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, offset).unwrap();
        file.write_all_at(&[byte[0] ^ 0x40], offset).unwrap();
    }

    #[test]
    fn round_trip_reopen_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.db");
        let records = chain(7);
        let hashes = write(&path, &records);
        let (db, recovery) = ChainDb::open(&path).unwrap();
        assert_eq!(recovery, Recovery { records: 8, torn_tail_bytes: 0 });
        assert_eq!(db.tip(), Some(7));
        assert_eq!(db.first(), Some(0));
        assert_eq!(db.tip_header().map(|h| h.number), Some(7));
        for (height, record) in records.iter().enumerate() {
            let got = db.get(height as u64).unwrap().unwrap();
            assert_eq!(got.block, record.block);
            assert_eq!(got.senders, record.senders);
            assert_eq!(got.receipts, record.receipts);
            assert_eq!(db.hash(height as u64), Some(hashes[height]));
            assert_eq!(db.block_hash(height as u64), Some(hashes[height]));
        }
        assert!(db.get(8).unwrap().is_none());
        assert_eq!(db.iter().count(), 8);
        assert_eq!(db.iter_from(5).map(|r| r.unwrap().0).collect::<Vec<_>>(), vec![5, 6, 7]);

        let store = ChainStore::new(StoreConfig { blocks_max: 4, notify_capacity: 4 });
        assert_eq!(db.load_into(&store).unwrap(), Some(7));
        assert_eq!(store.latest().map(|b| b.hash), Some(hashes[7]));
        assert_eq!(store.earliest().map(|b| b.number()), Some(4));
        assert_eq!(store.finalized().map(|b| b.number()), Some(7));
        let five = store.by_number(5).unwrap();
        assert_eq!(five.transactions.len(), 2);
        assert_eq!(five.receipts, records[5].receipts);
    }

    #[test]
    fn appends_must_be_consecutive_and_linked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.db");
        let records = chain(3);
        let mut db = ChainDb::create(&path).unwrap();
        db.append(0, &records[0]).unwrap();
        assert!(matches!(db.append(2, &records[2]), Err(ChainDbError::NotNext { .. })));
        assert!(matches!(db.append(1, &records[2]), Err(ChainDbError::NumberMismatch { .. })));
        let mut orphan = records[1].clone();
        orphan.block.header.parent_hash = B256::repeat_byte(9);
        assert!(matches!(db.append(1, &orphan), Err(ChainDbError::ParentMismatch { .. })));
        let mut short = records[1].clone();
        short.senders.clear();
        assert!(matches!(db.append(1, &short), Err(ChainDbError::LengthMismatch { .. })));
        db.append(1, &records[1]).unwrap();
        // A second handle is refused while the first is open.
        assert!(matches!(ChainDb::open(&path), Err(ChainDbError::Locked { .. })));
        drop(db);
        let (mut db, _) = ChainDb::open(&path).unwrap();
        db.append(2, &records[2]).unwrap();
        assert!(matches!(ChainDb::create(&path), Err(ChainDbError::Io { .. })));
    }

    #[test]
    fn torn_tail_is_cut_and_appends_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.db");
        let records = chain(4);
        write(&path, &records);
        let full = std::fs::metadata(&path).unwrap().len();
        let last_len = {
            let (db, _) = ChainDb::open(&path).unwrap();
            full - db.index[4].offset
        };
        for cut in [1, 2, 7, 11, 12, 13, last_len / 2, last_len - 1] {
            std::fs::copy(&path, dir.path().join("copy.db")).unwrap();
            let copy = dir.path().join("copy.db");
            OpenOptions::new().write(true).open(&copy).unwrap().set_len(full - cut).unwrap();
            let (mut db, recovery) = ChainDb::open(&copy).unwrap();
            assert_eq!(recovery.records, 4, "cut {cut}");
            assert_eq!(recovery.torn_tail_bytes, last_len - cut, "cut {cut}");
            assert_eq!(db.tip(), Some(3));
            assert_eq!(db.tip_header().map(|h| h.number), Some(3));
            db.append(4, &records[4]).unwrap();
            drop(db);
            let (db, recovery) = ChainDb::open(&copy).unwrap();
            assert_eq!(recovery, Recovery { records: 5, torn_tail_bytes: 0 });
            assert_eq!(db.get(4).unwrap().unwrap().block, records[4].block);
        }
        // A flipped byte in the last record is a torn tail too.
        let end = std::fs::metadata(&path).unwrap().len();
        flip(&path, end - 3);
        let (db, recovery) = ChainDb::open(&path).unwrap();
        assert_eq!(recovery.records, 4);
        assert_eq!(db.tip(), Some(3));
        drop(db);
        // Zeros after the last record (space allocated, data never written).
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let end = std::fs::metadata(&path).unwrap().len();
        file.set_len(end + 300).unwrap();
        let (db, recovery) = ChainDb::open(&path).unwrap();
        assert_eq!(recovery.torn_tail_bytes, 300);
        assert_eq!(db.tip(), Some(3));
        drop(db);
        // A torn create (part of the header) is an empty file.
        let torn = dir.path().join("torn.db");
        std::fs::write(&torn, &MAGIC[..5]).unwrap();
        let (mut db, recovery) = ChainDb::open(&torn).unwrap();
        assert_eq!(recovery.records, 0);
        assert_eq!(db.tip(), None);
        db.append(0, &records[0]).unwrap();
    }

    #[test]
    fn flipped_byte_before_the_tail_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.db");
        write(&path, &chain(5));
        let offsets: Vec<u64> = {
            let (db, _) = ChainDb::open(&path).unwrap();
            db.index.iter().map(|e| e.offset).collect()
        };
        // Body, checksum, length and the length's check of a record in the
        // middle.
        for at in [offsets[2] + 60, offsets[2] + 9, offsets[3] + 1, offsets[3] + 5] {
            let copy = dir.path().join("copy.db");
            std::fs::copy(&path, &copy).unwrap();
            flip(&copy, at);
            let err = ChainDb::open(&copy).unwrap_err();
            let ChainDbError::Corrupt { offset, .. } = &err else { panic!("flip at {at}: {err}") };
            assert!(*offset == offsets[2] || *offset == offsets[3], "flip at {at}: {err}");
            let message = err.to_string();
            assert!(message.contains("copy.db") && message.contains("offset"), "{message}");
        }
        // A length over the limit (with a valid check) is refused before
        // anything is allocated.
        let copy = dir.path().join("copy.db");
        std::fs::copy(&path, &copy).unwrap();
        let file = OpenOptions::new().write(true).open(&copy).unwrap();
        let huge = ((RECORD_BYTES_MAX + 1) as u32).to_le_bytes();
        file.write_all_at(&huge, offsets[1]).unwrap();
        file.write_all_at(&crc32c::crc32c(&huge).to_le_bytes(), offsets[1] + 4).unwrap();
        let err = ChainDb::open(&copy).unwrap_err();
        assert!(
            matches!(&err, ChainDbError::Corrupt { offset, reason, .. }
                if *offset == offsets[1] && reason.contains("over the limit")),
            "{err}"
        );
    }

    #[test]
    fn undecodable_record_is_a_typed_error_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.db");
        let records = chain(2);
        let mut db = ChainDb::create(&path).unwrap();
        db.append(0, &records[0]).unwrap();
        let bad_at = db.len_bytes();
        drop(db);
        // A body with a valid checksum but a payload that is not a block.
        let mut bad = 1u64.to_le_bytes().to_vec();
        bad.extend_from_slice(records[1].block.header.hash_slow().as_slice());
        bad.extend_from_slice(&[3, 0, 0, 0, 0xc1, 0x80, 0x80]);
        let append_raw = |body: &[u8], at: u64| {
            let mut framed = record_header(body).to_vec();
            framed.extend_from_slice(body);
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all_at(&framed, at).unwrap();
            at + framed.len() as u64
        };
        let after_bad = append_raw(&bad, bad_at);

        // As the tip, it is found at open (the tip header is decoded there).
        let err = ChainDb::open(&path).unwrap_err();
        assert!(matches!(err, ChainDbError::Corrupt { offset, .. } if offset == bad_at), "{err}");

        // In the middle, behind a good tip, it is found when it is read.
        let mut good = 2u64.to_le_bytes().to_vec();
        good.extend_from_slice(records[2].block.header.hash_slow().as_slice());
        records[2].encode_payload(&mut good);
        append_raw(&good, after_bad);
        let (db, _) = ChainDb::open(&path).unwrap();
        assert_eq!(db.tip(), Some(2));
        let err = db.get(1).unwrap_err();
        assert!(matches!(err, ChainDbError::Corrupt { offset, .. } if offset == bad_at), "{err}");
        assert_eq!(db.get(2).unwrap().unwrap().block, records[2].block);
        let store = ChainStore::new(StoreConfig::default());
        assert!(matches!(db.load_into(&store), Err(ChainDbError::Corrupt { .. })));
    }

    #[test]
    fn wrong_magic_or_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.db");
        write(&path, &chain(1));
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&2u32.to_le_bytes(), 8).unwrap();
        assert!(matches!(
            ChainDb::open(&path),
            Err(ChainDbError::UnsupportedVersion { found: 2, supported: FORMAT_VERSION, .. })
        ));
        file.write_all_at(b"NOTACHDB", 0).unwrap();
        assert!(matches!(ChainDb::open(&path), Err(ChainDbError::BadMagic { .. })));
        let other = dir.path().join("other");
        std::fs::write(&other, b"hello").unwrap();
        assert!(matches!(ChainDb::open(&other), Err(ChainDbError::BadMagic { .. })));
        assert!(matches!(ChainDb::open(&dir.path().join("missing")), Err(ChainDbError::Io { .. })));
    }
}
