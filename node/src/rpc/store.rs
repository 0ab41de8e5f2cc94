//! [`ChainStore`]: the node's bounded record of executed blocks, as the
//! JSON-RPC server reads them.
//!
//! The pipeline inserts one [`StoredBlock`] per executed block, in order:
//! the block (header, transactions, withdrawals), the senders it recovered
//! and the receipts execution produced. The store keeps the newest
//! [`StoreConfig::blocks_max`] blocks; older ones are answered as not found.
//! Blocks are final at consensus commit, but execution may run ahead of it,
//! so a block above the finalized one may be replaced by a later insert at
//! the same height (the blocks above it go too); a finalized block never is.
//!
//! Every insert is announced on a bounded [`tokio::sync::broadcast`]
//! channel ([`ChainStore::subscribe`]); a subscriber that falls behind by
//! more than [`StoreConfig::notify_capacity`] blocks is told it lagged.

use alloy_consensus::{Header, ReceiptEnvelope, Transaction};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip4895::Withdrawals;
use alloy_primitives::{Address, B256, Bloom, Log};
use alloy_rlp::Encodable;
use alloy_rpc_types_eth::Filter;
use parking_lot::RwLock;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;
use wake_execution::{Block, BlockTx};

/// Default number of newest blocks kept.
pub const BLOCKS_MAX_DEFAULT: usize = 16_384;
/// Default capacity of the new-block channel, in blocks.
pub const NOTIFY_CAPACITY_DEFAULT: usize = 256;

/// Options of a [`ChainStore`].
#[derive(Clone, Copy, Debug)]
pub struct StoreConfig {
    /// Newest blocks kept (at least 1).
    pub blocks_max: usize,
    /// Blocks a slow subscriber may fall behind before it lags (at least 1).
    pub notify_capacity: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { blocks_max: BLOCKS_MAX_DEFAULT, notify_capacity: NOTIFY_CAPACITY_DEFAULT }
    }
}

/// Why a block was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{txs} transactions but {senders} senders and {receipts} receipts")]
    LengthMismatch { txs: usize, senders: usize, receipts: usize },
    #[error("block {number} does not follow the newest stored block {latest}")]
    NotNext { number: u64, latest: u64 },
    #[error("block {number} names parent {parent}, but the stored parent has hash {stored}")]
    ParentMismatch { number: u64, parent: B256, stored: B256 },
    #[error("block {number} is finalized (finalized: {finalized}) and cannot be replaced")]
    Finalized { number: u64, finalized: u64 },
}

/// One executed block, as the RPC server answers it.
#[derive(Clone, Debug)]
pub struct StoredBlock {
    pub header: Header,
    pub hash: B256,
    pub transactions: Vec<BlockTx>,
    /// `senders[i]` sent `transactions[i]`.
    pub senders: Vec<Address>,
    /// `receipts[i]` is the receipt of `transactions[i]`.
    pub receipts: Vec<ReceiptEnvelope>,
    pub withdrawals: Option<Withdrawals>,
    /// Transaction hashes, in order.
    pub tx_hashes: Vec<B256>,
    /// RLP length of the whole block, in bytes.
    pub size: u64,
}

impl StoredBlock {
    /// A block as executed: `senders` and `receipts` (from
    /// `BlockOutcome::receipts`) have one entry per transaction. The hash is
    /// computed from the header.
    pub fn new(
        block: Block<BlockTx>,
        senders: Vec<Address>,
        receipts: Vec<ReceiptEnvelope>,
    ) -> Result<StoredBlock, StoreError> {
        let txs = block.body.transactions.len();
        if senders.len() != txs || receipts.len() != txs {
            return Err(StoreError::LengthMismatch {
                txs,
                senders: senders.len(),
                receipts: receipts.len(),
            });
        }
        let size = block.length() as u64;
        let Block { header, body } = block;
        let tx_hashes = body.transactions.iter().map(|tx| tx.trie_hash()).collect();
        Ok(StoredBlock {
            hash: header.hash_slow(),
            header,
            transactions: body.transactions,
            senders,
            receipts,
            withdrawals: body.withdrawals,
            tx_hashes,
            size,
        })
    }

    /// A block without transactions (the genesis).
    pub fn without_transactions(header: Header) -> StoredBlock {
        let withdrawals = header.withdrawals_root.map(|_| Withdrawals::default());
        let block = Block {
            header,
            body: alloy_consensus::BlockBody {
                transactions: Vec::new(),
                ommers: Vec::new(),
                withdrawals,
            },
        };
        match StoredBlock::new(block, Vec::new(), Vec::new()) {
            Ok(stored) => stored,
            // Zero transactions, zero senders, zero receipts always agree.
            Err(_) => unreachable!("an empty block has matching lengths"),
        }
    }

    pub fn number(&self) -> u64 {
        self.header.number
    }

    /// Gas used by transaction `index` alone (receipts carry cumulative gas).
    pub fn gas_used_by(&self, index: usize) -> u64 {
        let cumulative = |i: usize| self.receipts.get(i).map_or(0, |r| r.cumulative_gas_used());
        let before = if index == 0 { 0 } else { cumulative(index - 1) };
        cumulative(index).saturating_sub(before)
    }

    /// Index of the first log of transaction `index` within the block.
    pub fn first_log_index(&self, index: usize) -> u64 {
        self.receipts.iter().take(index).map(|r| r.logs().len() as u64).sum()
    }

    /// The price per gas transaction `index` paid.
    pub fn effective_gas_price(&self, index: usize) -> u128 {
        self.transactions
            .get(index)
            .map_or(0, |tx| tx.effective_gas_price(self.header.base_fee_per_gas))
    }

    /// The priority fee per gas transaction `index` paid.
    pub fn effective_tip(&self, index: usize) -> u128 {
        let base_fee = u128::from(self.header.base_fee_per_gas.unwrap_or_default());
        self.effective_gas_price(index).saturating_sub(base_fee)
    }

    /// The logs matching `filter`'s addresses and topics (not its block
    /// range), each with its transaction index and its index in the block,
    /// at most `limit` of them.
    pub fn matching_logs(
        &self,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<MatchedLog<'_>>, TooManyLogs> {
        let mut found = Vec::new();
        if !filter.matches_bloom(self.logs_bloom()) {
            return Ok(found);
        }
        let mut log_index = 0u64;
        for (tx_index, receipt) in self.receipts.iter().enumerate() {
            if !filter.matches_bloom(*receipt.logs_bloom()) {
                log_index += receipt.logs().len() as u64;
                continue;
            }
            for log in receipt.logs() {
                if filter.matches_address(log.address) && filter.matches_topics(log.topics()) {
                    if found.len() == limit {
                        return Err(TooManyLogs);
                    }
                    found.push(MatchedLog { log, tx_index, log_index });
                }
                log_index += 1;
            }
        }
        Ok(found)
    }

    fn logs_bloom(&self) -> Bloom {
        self.header.logs_bloom
    }
}

/// More logs matched than the caller's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyLogs;

/// One log of a stored block, with where it is.
#[derive(Clone, Copy, Debug)]
pub struct MatchedLog<'a> {
    pub log: &'a Log,
    pub tx_index: usize,
    pub log_index: u64,
}

/// Where a transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TxLocation {
    number: u64,
    index: usize,
}

#[derive(Default)]
struct Inner {
    /// Contiguous blocks, oldest first.
    blocks: VecDeque<Arc<StoredBlock>>,
    by_hash: HashMap<B256, u64>,
    txs: HashMap<B256, TxLocation>,
    finalized: Option<u64>,
}

impl Inner {
    fn get(&self, number: u64) -> Option<&Arc<StoredBlock>> {
        let first = self.blocks.front()?.number();
        let offset = usize::try_from(number.checked_sub(first)?).ok()?;
        self.blocks.get(offset)
    }

    fn forget(&mut self, block: &StoredBlock) {
        self.by_hash.remove(&block.hash);
        for hash in &block.tx_hashes {
            if self.txs.get(hash).is_some_and(|at| at.number == block.number()) {
                self.txs.remove(hash);
            }
        }
    }
}

/// The executed blocks the RPC server can answer, newest
/// [`StoreConfig::blocks_max`] kept. Thread-safe; share it in an `Arc`.
pub struct ChainStore {
    inner: RwLock<Inner>,
    config: StoreConfig,
    new_blocks: broadcast::Sender<Arc<StoredBlock>>,
}

impl std::fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.read();
        f.debug_struct("ChainStore")
            .field("blocks", &inner.blocks.len())
            .field("latest", &inner.blocks.back().map(|b| b.number()))
            .field("finalized", &inner.finalized)
            .finish()
    }
}

impl ChainStore {
    pub fn new(config: StoreConfig) -> ChainStore {
        let config = StoreConfig {
            blocks_max: config.blocks_max.max(1),
            notify_capacity: config.notify_capacity.max(1),
        };
        let (new_blocks, _) = broadcast::channel(config.notify_capacity);
        ChainStore { inner: RwLock::new(Inner::default()), config, new_blocks }
    }

    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// Records an executed block. It must follow the newest stored block
    /// (number and parent hash), or replace a stored block above the
    /// finalized one (dropping the blocks above it). The first block
    /// inserted may have any number.
    pub fn insert(&self, block: StoredBlock) -> Result<(), StoreError> {
        let block = Arc::new(block);
        {
            let mut inner = self.inner.write();
            let number = block.number();
            if let Some(latest) = inner.blocks.back().map(|b| b.number()) {
                if number > latest.saturating_add(1) {
                    return Err(StoreError::NotNext { number, latest });
                }
                if let Some(finalized) = inner.finalized
                    && number <= finalized
                {
                    return Err(StoreError::Finalized { number, finalized });
                }
                let first = inner.blocks.front().map_or(0, |b| b.number());
                if number < first {
                    return Err(StoreError::NotNext { number, latest });
                }
                if number > first {
                    let parent = inner.get(number - 1).map(|b| b.hash).unwrap_or_default();
                    if parent != block.header.parent_hash {
                        return Err(StoreError::ParentMismatch {
                            number,
                            parent: block.header.parent_hash,
                            stored: parent,
                        });
                    }
                }
                // Replace: drop `number` and everything above it.
                while inner.blocks.back().is_some_and(|b| b.number() >= number) {
                    if let Some(dropped) = inner.blocks.pop_back() {
                        inner.forget(&dropped);
                    }
                }
            }
            inner.by_hash.insert(block.hash, number);
            for (index, hash) in block.tx_hashes.iter().enumerate() {
                inner.txs.insert(*hash, TxLocation { number, index });
            }
            inner.blocks.push_back(Arc::clone(&block));
            while inner.blocks.len() > self.config.blocks_max {
                if let Some(dropped) = inner.blocks.pop_front() {
                    inner.forget(&dropped);
                }
            }
        }
        // No receivers is not an error: nobody subscribed.
        let _ = self.new_blocks.send(block);
        Ok(())
    }

    /// Marks `number` (and everything below) finalized by consensus. The
    /// finalized block the RPC reports is the lower of this and the newest
    /// executed block.
    pub fn set_finalized(&self, number: u64) {
        let mut inner = self.inner.write();
        inner.finalized = Some(inner.finalized.map_or(number, |f| f.max(number)));
    }

    /// The newest executed block.
    pub fn latest(&self) -> Option<Arc<StoredBlock>> {
        self.inner.read().blocks.back().cloned()
    }

    /// The newest block that is both finalized and executed.
    pub fn finalized(&self) -> Option<Arc<StoredBlock>> {
        let inner = self.inner.read();
        let finalized = inner.finalized?;
        let latest = inner.blocks.back()?.number();
        inner.get(finalized.min(latest)).cloned()
    }

    /// The oldest block still kept.
    pub fn earliest(&self) -> Option<Arc<StoredBlock>> {
        self.inner.read().blocks.front().cloned()
    }

    pub fn by_number(&self, number: u64) -> Option<Arc<StoredBlock>> {
        self.inner.read().get(number).cloned()
    }

    pub fn by_hash(&self, hash: &B256) -> Option<Arc<StoredBlock>> {
        let inner = self.inner.read();
        let number = *inner.by_hash.get(hash)?;
        inner.get(number).cloned()
    }

    /// The block holding transaction `hash`, and its index there.
    pub fn transaction(&self, hash: &B256) -> Option<(Arc<StoredBlock>, usize)> {
        let inner = self.inner.read();
        let at = *inner.txs.get(hash)?;
        Some((inner.get(at.number)?.clone(), at.index))
    }

    /// Blocks `from..=to` that are stored, oldest first, at most `max`.
    pub fn range(&self, from: u64, to: u64, max: usize) -> Vec<Arc<StoredBlock>> {
        let inner = self.inner.read();
        let mut blocks = Vec::new();
        let mut number = from;
        while number <= to && blocks.len() < max {
            if let Some(block) = inner.get(number) {
                blocks.push(Arc::clone(block));
            }
            let Some(next) = number.checked_add(1) else { break };
            number = next;
        }
        blocks
    }

    /// Every block inserted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredBlock>> {
        self.new_blocks.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(number: u64, parent: B256) -> Header {
        Header { number, parent_hash: parent, ..Default::default() }
    }

    #[test]
    fn bounded_ordered_and_replaceable_above_finalized() {
        let store = ChainStore::new(StoreConfig { blocks_max: 3, notify_capacity: 4 });
        let mut rx = store.subscribe();
        let mut parent = B256::ZERO;
        let mut hashes = Vec::new();
        for n in 0..5 {
            let block = StoredBlock::without_transactions(header(n, parent));
            parent = block.hash;
            hashes.push(block.hash);
            store.insert(block).unwrap();
        }
        assert_eq!(store.latest().unwrap().number(), 4);
        assert_eq!(store.earliest().unwrap().number(), 2);
        assert!(store.by_number(1).is_none());
        assert!(store.by_hash(&hashes[1]).is_none());
        assert_eq!(store.by_hash(&hashes[3]).unwrap().number(), 3);
        // Five blocks through a channel of four: the slow subscriber is told.
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(1))));
        assert_eq!(rx.try_recv().unwrap().number(), 1);

        // Gaps and wrong parents are refused.
        let gap = StoredBlock::without_transactions(header(6, parent));
        assert!(matches!(store.insert(gap), Err(StoreError::NotNext { .. })));
        let orphan = StoredBlock::without_transactions(header(5, B256::repeat_byte(1)));
        assert!(matches!(store.insert(orphan), Err(StoreError::ParentMismatch { .. })));

        // Above the finalized block, a block may be replaced.
        assert!(store.finalized().is_none());
        store.set_finalized(3);
        assert_eq!(store.finalized().unwrap().number(), 3);
        let other = StoredBlock::without_transactions(Header {
            extra_data: vec![1].into(),
            ..header(4, hashes[3])
        });
        let other_hash = other.hash;
        store.insert(other).unwrap();
        assert_eq!(store.latest().unwrap().hash, other_hash);
        assert!(store.by_hash(&hashes[4]).is_none());
        let again = StoredBlock::without_transactions(header(3, hashes[2]));
        assert!(matches!(store.insert(again), Err(StoreError::Finalized { .. })));
        // Finalized beyond execution reports the newest executed block.
        store.set_finalized(100);
        assert_eq!(store.finalized().unwrap().number(), 4);
    }
}
