//! What the RPC server needs from the node: [`RpcBackend`], and
//! [`NodeBackend`], the implementation over the node's real parts (a
//! [`ChainStore`], a [`TrieDb`], the [`ChainSpec`] and a [`TxSubmitter`]).

use super::store::ChainStore;
use alloy_primitives::{Address, B256, Bytes};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wake_execution::ChainSpec;
use wake_triedb::{Snapshot, TrieDb};

/// Why the pool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The transaction is invalid or unwanted (nonce too low, underpriced,
    /// already known, ...): `-32000` with this message.
    #[error("{0}")]
    Rejected(String),
    /// The pool is full or the node is not accepting transactions now:
    /// `-32005`.
    #[error("{0}")]
    Busy(String),
}

/// The answer to a submitted transaction: ready at once, or once the
/// admission batch it joined has run.
pub type SubmitFuture = Pin<Box<dyn Future<Output = Result<B256, SubmitError>> + Send>>;

/// Where `eth_sendRawTransaction` hands transactions: the node plugs its
/// transaction pool in here. A closure `Fn(Bytes) -> Result<B256,
/// SubmitError>` is one (answering at once).
pub trait TxSubmitter: Send + Sync + 'static {
    /// Admits one EIP-2718 encoded transaction (already decoded once by the
    /// server, so well formed and within `TX_BYTES_MAX`); resolves to its
    /// hash. The node's submitter queues it for the admission thread, which
    /// admits what has queued meanwhile as one batch.
    fn submit(&self, raw: Bytes) -> SubmitFuture;

    /// The next nonce of `address` counting the pool's pending
    /// transactions, for `eth_getTransactionCount(.., "pending")`. `None`:
    /// the state's nonce is answered.
    fn pending_nonce(&self, address: Address) -> Option<u64> {
        let _ = address;
        None
    }
}

impl<F> TxSubmitter for F
where
    F: Fn(Bytes) -> Result<B256, SubmitError> + Send + Sync + 'static,
{
    fn submit(&self, raw: Bytes) -> SubmitFuture {
        Box::pin(std::future::ready(self(raw)))
    }
}

/// Why the state of a block cannot be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("state of block {number} is not available: {reason}")]
pub struct StateUnavailable {
    pub number: u64,
    pub reason: String,
}

/// How far the node is from the chain head, for `eth_syncing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncState {
    /// The block the node started syncing from.
    pub starting_block: u64,
    /// The newest executed block.
    pub current_block: u64,
    /// The newest block consensus has ordered.
    pub highest_block: u64,
}

/// What the server reads. `Send + Sync`: handlers run on the RPC runtime
/// and on its blocking threads.
pub trait RpcBackend: Send + Sync + 'static {
    /// The executed blocks.
    fn store(&self) -> &ChainStore;

    /// The chain's rules (its id, forks).
    fn chain(&self) -> &ChainSpec;

    /// The post-state of block `number` (triedb version `number`).
    fn state_at(&self, number: u64) -> Result<Snapshot, StateUnavailable>;

    /// Hands a transaction to the pool.
    fn submit_raw_transaction(&self, raw: Bytes) -> SubmitFuture;

    /// The pool's next nonce for `address`, if it knows better than the state.
    fn pending_nonce(&self, address: Address) -> Option<u64>;

    /// `None` when the node is caught up (`eth_syncing` is then `false`).
    fn sync_state(&self) -> Option<SyncState>;
}

/// Default lag, in blocks behind the consensus head, under which the node
/// counts as synced (execution runs K = 3 blocks behind by design).
pub const SYNCED_LAG_BLOCKS_DEFAULT: u64 = 8;

/// The node's backend: state from triedb (block N is version N).
pub struct NodeBackend {
    store: Arc<ChainStore>,
    chain: ChainSpec,
    triedb: TrieDb,
    submitter: Box<dyn TxSubmitter>,
    /// The newest block consensus has ordered (0 until told).
    consensus_head: AtomicU64,
    starting_block: AtomicU64,
    synced_lag_blocks: u64,
}

impl std::fmt::Debug for NodeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBackend")
            .field("store", &self.store)
            .field("chain_id", &self.chain.chain_id)
            .field("consensus_head", &self.consensus_head.load(Ordering::Relaxed))
            .finish()
    }
}

impl NodeBackend {
    pub fn new(
        store: Arc<ChainStore>,
        chain: ChainSpec,
        triedb: TrieDb,
        submitter: Box<dyn TxSubmitter>,
    ) -> NodeBackend {
        let starting_block = store.latest().map_or(0, |b| b.number());
        NodeBackend {
            store,
            chain,
            triedb,
            submitter,
            consensus_head: AtomicU64::new(0),
            starting_block: AtomicU64::new(starting_block),
            synced_lag_blocks: SYNCED_LAG_BLOCKS_DEFAULT,
        }
    }

    /// Counts the node as syncing while execution is more than `blocks`
    /// behind the consensus head.
    pub fn with_synced_lag(mut self, blocks: u64) -> NodeBackend {
        self.synced_lag_blocks = blocks;
        self
    }

    /// Tells the backend the newest block consensus has ordered.
    pub fn set_consensus_head(&self, number: u64) {
        self.consensus_head.fetch_max(number, Ordering::Relaxed);
    }

    pub fn store_arc(&self) -> &Arc<ChainStore> {
        &self.store
    }
}

impl RpcBackend for NodeBackend {
    fn store(&self) -> &ChainStore {
        &self.store
    }

    fn chain(&self) -> &ChainSpec {
        &self.chain
    }

    fn state_at(&self, number: u64) -> Result<Snapshot, StateUnavailable> {
        self.triedb.snapshot(number).map_err(|e| {
            let retained = self.triedb.versions();
            let reason = match (retained.first(), retained.last()) {
                (Some(first), Some(last)) => {
                    format!("{e} (retained: blocks {} to {})", first.version, last.version)
                }
                _ => e.to_string(),
            };
            StateUnavailable { number, reason }
        })
    }

    fn submit_raw_transaction(&self, raw: Bytes) -> SubmitFuture {
        self.submitter.submit(raw)
    }

    fn pending_nonce(&self, address: Address) -> Option<u64> {
        self.submitter.pending_nonce(address)
    }

    fn sync_state(&self) -> Option<SyncState> {
        let current_block = self.store.latest().map_or(0, |b| b.number());
        let highest_block = self.consensus_head.load(Ordering::Relaxed);
        if highest_block <= current_block.saturating_add(self.synced_lag_blocks) {
            return None;
        }
        Some(SyncState {
            starting_block: self.starting_block.load(Ordering::Relaxed),
            current_block,
            highest_block,
        })
    }
}
