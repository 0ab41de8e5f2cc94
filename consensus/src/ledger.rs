//! The finalized ledger: committed blocks in height order, append-only,
//! served to peers that sync.
//!
//! The core reports commits as [`crate::Action::Commit`] in height order; the
//! driver appends them here. A block whose height is not the next one, or
//! whose parent is not the tip, is refused ([`StoreError::NotContiguous`]),
//! so the ledger is always one hash-linked chain from genesis.

use std::path::Path;

use crate::codec::{Encode, MESSAGE_BYTES_MAX, decode_finalized};
use crate::store::{RecordFile, StoreError};
use crate::types::{BlockHeader, BlockId, Epoch, FinalizedBlock, Height};

/// Append-only storage of finalized blocks.
pub trait Ledger {
    /// Append the block at height `tip + 1` whose parent is the tip.
    fn append(&mut self, block: &FinalizedBlock) -> Result<(), StoreError>;
    /// The block at `height` (1-based; genesis is not stored).
    fn get(&self, height: Height) -> Result<Option<FinalizedBlock>, StoreError>;
    /// Height of the newest block, 0 when only genesis.
    fn tip_height(&self) -> Height;
}

/// Tracks the tip so both implementations check contiguity the same way.
#[derive(Clone, Debug)]
struct Tip {
    height: Height,
    id: BlockId,
}

impl Tip {
    fn genesis(epoch: Epoch) -> Self {
        Self { height: 0, id: BlockHeader::genesis(epoch).id() }
    }

    fn check(&self, block: &FinalizedBlock) -> Result<(), StoreError> {
        if block.header.height != self.height + 1 || block.header.parent != self.id {
            return Err(StoreError::NotContiguous {
                expected: self.height + 1,
                got: block.header.height,
            });
        }
        Ok(())
    }
}

/// An in-memory ledger (tests and the simulator, where it outlives a crash).
#[derive(Clone, Debug)]
pub struct MemLedger {
    blocks: Vec<FinalizedBlock>,
    tip: Tip,
}

impl MemLedger {
    pub fn new(epoch: Epoch) -> Self {
        Self { blocks: Vec::new(), tip: Tip::genesis(epoch) }
    }

    pub fn blocks(&self) -> &[FinalizedBlock] {
        &self.blocks
    }
}

impl Ledger for MemLedger {
    fn append(&mut self, block: &FinalizedBlock) -> Result<(), StoreError> {
        self.tip.check(block)?;
        self.tip = Tip { height: block.header.height, id: block.header.id() };
        self.blocks.push(block.clone());
        Ok(())
    }

    fn get(&self, height: Height) -> Result<Option<FinalizedBlock>, StoreError> {
        Ok(height.checked_sub(1).and_then(|index| self.blocks.get(index as usize)).cloned())
    }

    fn tip_height(&self) -> Height {
        self.tip.height
    }
}

/// A file-backed ledger: one checksummed record per block (see
/// [`crate::store`]), an in-memory index of record offsets (8 bytes a block).
pub struct FileLedger {
    file: RecordFile,
    offsets: Vec<u64>,
    tip: Tip,
    torn_tail_bytes: u64,
}

impl FileLedger {
    /// Open or create the ledger at `path`. Every record is decoded and the
    /// chain re-linked on open; a torn tail is cut (see [`Self::torn_tail_bytes`]).
    pub fn open(path: &Path, epoch: Epoch, sync: bool) -> Result<Self, StoreError> {
        let (file, recovered) = RecordFile::open(path, MESSAGE_BYTES_MAX, sync)?;
        let mut tip = Tip::genesis(epoch);
        let mut offsets = Vec::with_capacity(recovered.records.len());
        for (offset, _) in &recovered.records {
            let block = decode_finalized(&file.read_at(*offset)?)?;
            tip.check(&block).map_err(|_| StoreError::Corrupt {
                offset: *offset,
                reason: "chain link broken",
            })?;
            tip = Tip { height: block.header.height, id: block.header.id() };
            offsets.push(*offset);
        }
        Ok(Self { file, offsets, tip, torn_tail_bytes: recovered.torn_tail_bytes })
    }

    /// Bytes cut off the end on open (a crash during an append).
    pub fn torn_tail_bytes(&self) -> u64 {
        self.torn_tail_bytes
    }

    /// Id of the newest block (genesis when empty).
    pub fn tip_id(&self) -> BlockId {
        self.tip.id
    }
}

impl Ledger for FileLedger {
    fn append(&mut self, block: &FinalizedBlock) -> Result<(), StoreError> {
        self.tip.check(block)?;
        let offset = self.file.append(&block.to_bytes())?;
        self.offsets.push(offset);
        self.tip = Tip { height: block.header.height, id: block.header.id() };
        Ok(())
    }

    fn get(&self, height: Height) -> Result<Option<FinalizedBlock>, StoreError> {
        let Some(offset) = height.checked_sub(1).and_then(|index| self.offsets.get(index as usize))
        else {
            return Ok(None);
        };
        Ok(Some(decode_finalized(&self.file.read_at(*offset)?)?))
    }

    fn tip_height(&self) -> Height {
        self.tip.height
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::sha256;

    fn chain(epoch: Epoch, len: u64) -> Vec<FinalizedBlock> {
        let mut parent = BlockHeader::genesis(epoch).id();
        (1..=len)
            .map(|height| {
                let payload = height.to_le_bytes().to_vec();
                let header = BlockHeader {
                    epoch,
                    round: height,
                    author: 0,
                    height,
                    parent,
                    payload_hash: sha256(&[&payload]),
                    delayed: None,
                };
                parent = header.id();
                FinalizedBlock { header, payload }
            })
            .collect()
    }

    #[test]
    fn file_ledger_reopens_and_refuses_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let blocks = chain(7, 5);
        {
            let mut ledger = FileLedger::open(&path, 7, true).unwrap();
            for block in &blocks {
                ledger.append(block).unwrap();
            }
            assert!(matches!(
                ledger.append(&blocks[1]),
                Err(StoreError::NotContiguous { expected: 6, got: 2 })
            ));
        }
        let ledger = FileLedger::open(&path, 7, true).unwrap();
        assert_eq!(ledger.tip_height(), 5);
        assert_eq!(ledger.get(3).unwrap().as_ref(), Some(&blocks[2]));
        assert_eq!(ledger.get(0).unwrap(), None);
        assert_eq!(ledger.get(6).unwrap(), None);
    }

    #[test]
    fn file_ledger_cuts_a_torn_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let blocks = chain(1, 3);
        {
            let mut ledger = FileLedger::open(&path, 1, false).unwrap();
            for block in &blocks {
                ledger.append(block).unwrap();
            }
        }
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 5).unwrap();
        let mut ledger = FileLedger::open(&path, 1, false).unwrap();
        assert_eq!(ledger.tip_height(), 2);
        assert!(ledger.torn_tail_bytes() > 0);
        ledger.append(&blocks[2]).unwrap();
        assert_eq!(FileLedger::open(&path, 1, false).unwrap().tip_height(), 3);
    }

    #[test]
    fn mem_ledger_matches_contiguity_rule() {
        let blocks = chain(2, 2);
        let mut ledger = MemLedger::new(2);
        assert!(ledger.append(&blocks[1]).is_err());
        ledger.append(&blocks[0]).unwrap();
        ledger.append(&blocks[1]).unwrap();
        assert_eq!(ledger.tip_height(), 2);
    }
}
