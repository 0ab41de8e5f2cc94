//! Asynchronous execution: consensus orders block `h` while this thread
//! executes earlier blocks; block `h + K` carries `h`'s result.
//!
//! * [`NodePayload`] is what a leader proposes: a timestamp and the ordered
//!   transactions (the pool's envelopes, [`wake_execution::encode_payload`]).
//!   Consensus treats it as opaque bytes.
//! * [`BlockExecutor`] turns a finalized consensus block into an Ethereum
//!   block: it decodes the payload (bounded), recovers senders, builds the
//!   header (parent hash, number = consensus height, EIP-1559 base fee,
//!   Cancun blob fields, `prev_randao` and the beacon root set to the
//!   consensus block id, fee recipient derived from the leader's key),
//!   executes it with the parallel executor over the parent's triedb
//!   version, commits the diff as version `h` and seals the header with the
//!   state root.
//! * A committed block cannot be rejected: its order is final. A
//!   transaction that turns out invalid when executed (bad signature, wrong
//!   nonce, unfundable: the leader does not execute what it proposes) is
//!   left out of the Ethereum block, deterministically, so every validator
//!   computes the same block. A payload that does not decode executes as an
//!   empty block.
//! * [`Results`] is the consensus core's [`ExecutionOracle`]: the result of
//!   every executed height, read by the consensus thread when it votes (and
//!   the backpressure: a result that is not there yet makes the core wait).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_consensus::{Block, BlockBody, EMPTY_OMMER_ROOT_HASH, Header, proofs};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_primitives::{Address, B256, Bytes, keccak256};
use parking_lot::RwLock;
use revm::database::DatabaseRef;
use revm::primitives::hardfork::SpecId;
use wake_consensus::{ExecutionOracle, ExecutionResult, FinalizedBlock, Height};
use wake_execution::{
    BlockError, BlockOutcome, BlockTx, ChainSpec, DISCOVERY_ROUNDS_MAX, Genesis, Prefetched,
    SnapshotState, StateError, execute_block_parallel, recover_sender, recover_senders,
    split_payload,
};
use wake_triedb::TrieDb;

/// Most transactions one payload may carry.
pub const PAYLOAD_TXS_MAX: usize = 65_536;
/// Block hashes kept for the BLOCKHASH opcode.
pub const BLOCK_HASHES_KEPT: u64 = 256;

/// Why the pipeline stopped. Every variant is fatal for the node: state
/// that cannot be read or written, or a result that disagrees with the
/// certified one.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("triedb: {0}")]
    Trie(#[from] wake_triedb::Error),
    #[error("executing block {height}: {source}")]
    Execution { height: Height, source: BlockError },
    #[error("reading the state of block {height} ahead: {source}")]
    Prefetch { height: Height, source: StateError },
    #[error("block {height} arrived after {expected}: blocks must execute in order")]
    OutOfOrder { height: Height, expected: Height },
    #[error(
        "our execution of block {height} differs from the certified result: \
         our state root {ours}, certified {certified}"
    )]
    Diverged { height: Height, ours: B256, certified: B256 },
    #[error(transparent)]
    ChainDb(Box<crate::chaindb::ChainDbError>),
}

impl From<crate::chaindb::ChainDbError> for PipelineError {
    fn from(e: crate::chaindb::ChainDbError) -> Self {
        PipelineError::ChainDb(Box::new(e))
    }
}

/// A leader's payload: its clock and the ordered transaction envelopes.
pub struct NodePayload;

impl NodePayload {
    /// `timestamp_ms` (big-endian u64) then the RLP list of envelopes.
    pub fn encode(timestamp_ms: u64, txs: &[Bytes]) -> Vec<u8> {
        let list = wake_execution::encode_payload(txs);
        let mut out = Vec::with_capacity(8 + list.len());
        out.extend_from_slice(&timestamp_ms.to_be_bytes());
        out.extend_from_slice(&list);
        out
    }

    /// Bytes the encoding adds around the transaction list.
    pub const OVERHEAD: usize = 8;

    /// The timestamp and the envelopes; `None` when the bytes are not a
    /// payload (an empty block executes instead).
    pub fn decode(bytes: &[u8]) -> Option<(u64, Vec<&[u8]>)> {
        let (timestamp, list) = bytes.split_first_chunk::<8>()?;
        let txs =
            split_payload(list, PAYLOAD_TXS_MAX, wake_consensus::codec::PAYLOAD_BYTES_MAX).ok()?;
        Some((u64::from_be_bytes(*timestamp), txs))
    }
}

/// The fee recipient of blocks a validator leads: the last 20 bytes of the
/// keccak of its consensus public key (like an Ethereum address of a key).
pub fn fee_recipient(public_key: &[u8; 32]) -> Address {
    Address::from_slice(&keccak256(public_key)[12..])
}

/// Executed results by height: the consensus core's execution oracle.
#[derive(Default)]
pub struct Results {
    results: RwLock<BTreeMap<Height, ExecutionResult>>,
    executed: AtomicU64,
    /// Called after each new result: wakes the consensus loop, whose core
    /// may be waiting for it (otherwise it would look again only at its
    /// next tick, up to 50 ms later, on every block execution holds up).
    waker: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// Results kept: the core asks only for `h - K` of recent heights.
const RESULTS_KEPT: usize = 4096;

impl Results {
    pub fn insert(&self, height: Height, result: ExecutionResult) {
        let mut results = self.results.write();
        results.insert(height, result);
        while results.len() > RESULTS_KEPT {
            results.pop_first();
        }
        self.executed.fetch_max(height, Ordering::Release);
        if let Some(wake) = self.waker.get() {
            wake();
        }
    }

    /// Sets what [`insert`](Self::insert) calls (once; later calls are ignored).
    pub fn set_waker(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.waker.set(wake);
    }

    /// The newest executed height.
    pub fn executed(&self) -> Height {
        self.executed.load(Ordering::Acquire)
    }
}

impl Results {
    pub fn get(&self, height: Height) -> Option<ExecutionResult> {
        self.results.read().get(&height).cloned()
    }
}

/// [`Results`] shared with the execution thread, as the core's oracle.
#[derive(Clone, Default)]
pub struct ResultsOracle(pub Arc<Results>);

impl ExecutionOracle for ResultsOracle {
    fn result(&self, height: Height) -> Option<ExecutionResult> {
        self.0.get(height)
    }

    /// The execution thread works through every finalized block in order,
    /// so the core may wait for it (backpressure) instead of failing rounds.
    fn executed_height(&self) -> Option<Height> {
        Some(self.0.executed())
    }
}

/// One executed block, as the rest of the node (RPC, pool, metrics) sees it.
pub struct ExecutedBlock {
    pub header: Header,
    pub hash: B256,
    pub txs: Vec<BlockTx>,
    pub senders: Vec<Address>,
    pub outcome: BlockOutcome,
    /// Transactions of the payload left out (invalid when executed).
    pub dropped: usize,
    pub timings: Timings,
}

/// Where one block's time went.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub recover: Duration,
    /// Reading the block's state ahead ([`Prefetched`]).
    pub prefetch: Duration,
    pub execute: Duration,
    pub commit: Duration,
}

/// Senders recovered elsewhere (the pool, at admission), looked up by the
/// keccak of the raw transaction: `None` where unknown.
pub type KnownSenders = Arc<dyn Fn(&[B256]) -> Vec<Option<Address>> + Send + Sync>;

/// Executes finalized blocks in height order over triedb.
pub struct BlockExecutor {
    chain: ChainSpec,
    db: Arc<TrieDb>,
    parent: Header,
    parent_hash: B256,
    hashes: BTreeMap<u64, B256>,
    /// Fee recipient per validator index.
    recipients: Vec<Address>,
    threads: usize,
    known_senders: Option<KnownSenders>,
}

impl BlockExecutor {
    /// Starts after `parent` (genesis, or the newest executed header).
    pub fn new(
        chain: ChainSpec,
        db: Arc<TrieDb>,
        parent: Header,
        recipients: Vec<Address>,
        threads: usize,
    ) -> Self {
        let parent_hash = parent.hash_slow();
        let hashes = BTreeMap::from([(parent.number, parent_hash)]);
        Self {
            chain,
            db,
            parent,
            parent_hash,
            hashes,
            recipients,
            threads: threads.max(1),
            known_senders: None,
        }
    }

    /// Takes senders from `known` where it has them instead of recovering
    /// them (an ECDSA recovery each). The lookup is by the hash of the very
    /// bytes the sender was recovered from, so the result is the same.
    pub fn set_known_senders(&mut self, known: KnownSenders) {
        self.known_senders = Some(known);
    }

    /// Block hashes of the executed chain before `parent`, for BLOCKHASH
    /// after a restart (the newest [`BLOCK_HASHES_KEPT`] are kept).
    pub fn remember_hashes(&mut self, hashes: impl IntoIterator<Item = (u64, B256)>) {
        self.hashes.extend(hashes);
        while self.hashes.len() as u64 > BLOCK_HASHES_KEPT {
            self.hashes.pop_first();
        }
    }

    /// The state database it executes over.
    pub fn db(&self) -> &TrieDb {
        &self.db
    }

    pub fn parent(&self) -> (&Header, B256) {
        (&self.parent, self.parent_hash)
    }

    /// Executes the next block.
    pub fn execute(&mut self, block: &FinalizedBlock) -> Result<ExecutedBlock, PipelineError> {
        let height = block.header.height;
        if height != self.parent.number + 1 {
            return Err(PipelineError::OutOfOrder { height, expected: self.parent.number + 1 });
        }
        let started = Instant::now();
        let (timestamp_ms, envelopes) = NodePayload::decode(&block.payload).unwrap_or_else(|| {
            tracing::warn!(height, "payload does not decode: executing an empty block");
            (0, Vec::new())
        });
        let mut header = self.next_header(block, timestamp_ms);
        let spec = self.chain.spec_at(header.number, header.timestamp);

        // Decode and recover; what fails is left out.
        let mut raws = Vec::with_capacity(envelopes.len());
        let mut decoded = Vec::with_capacity(envelopes.len());
        for bytes in &envelopes {
            if let Ok(tx) = wake_execution::decode_tx(bytes) {
                raws.push(*bytes);
                decoded.push(tx);
            }
        }
        let known = match &self.known_senders {
            Some(lookup) => {
                let hashes: Vec<B256> = raws.iter().map(keccak256).collect();
                lookup(&hashes)
            }
            None => vec![None; decoded.len()],
        };
        let (txs, senders) = recover_missing(decoded, known, spec, self.threads);
        let snapshot = self.db.snapshot(self.parent.number)?;
        let recovered = started.elapsed();

        let candidate = |transactions| {
            let body = BlockBody { transactions, ommers: Vec::new(), withdrawals: None };
            let mut block = Block { header: header.clone(), body };
            if spec.is_enabled_in(SpecId::SHANGHAI) {
                block.body.withdrawals = Some(Default::default());
            }
            block
        };
        // The block's reads, in a few io_uring batches, before execution
        // (the accounts it names, then what running it reveals): cold reads
        // overlap instead of queueing behind revm's one-at-a-time reads.
        // The senders' nonces for `keep_next_nonces` come from this load.
        let prefetch_error = |source| PipelineError::Prefetch { height, source };
        let named = candidate(txs);
        let mut state = Prefetched::load(
            SnapshotState::new(&snapshot, &self.hashes),
            &snapshot,
            &named,
            &senders,
        )
        .map_err(prefetch_error)?;
        let (txs, mut senders) =
            keep_next_nonces(named.body.transactions, senders, &state).map_err(prefetch_error)?;
        let block = candidate(txs);
        state
            .discover(&self.chain, &block, &senders, &snapshot, DISCOVERY_ROUNDS_MAX, self.threads)
            .map_err(prefetch_error)?;
        let mut txs = block.body.transactions;
        let prefetched = started.elapsed();
        let mut dropped = envelopes.len() - txs.len();
        let outcome = loop {
            let candidate = candidate(txs);
            match execute_block_parallel(&self.chain, &candidate, &senders, &state, self.threads) {
                Ok((outcome, _stats)) => {
                    txs = candidate.body.transactions;
                    break outcome;
                }
                Err(BlockError::Transaction { index, source }) => {
                    tracing::debug!(height, index, %source, "transaction left out of the block");
                    txs = candidate.body.transactions;
                    txs.remove(index);
                    senders.remove(index);
                    dropped += 1;
                }
                Err(source) => return Err(PipelineError::Execution { height, source }),
            }
        };
        let executed = started.elapsed();

        // A crash between the triedb commit and the chain db append leaves
        // this version committed already: our own earlier execution of
        // this very finalized block, durable, so its root is the one.
        let state_root = match self.db.latest() {
            Some(latest) if latest.version == height => self.db.snapshot(height)?.state_root(),
            _ => self.db.commit(height, &outcome.updates)?,
        };
        header.state_root = state_root;
        header.transactions_root = proofs::calculate_transaction_root(&txs);
        header.receipts_root = outcome.receipts_root;
        header.logs_bloom = outcome.logs_bloom;
        header.gas_used = outcome.gas_used;
        if spec.is_enabled_in(SpecId::CANCUN) {
            header.blob_gas_used = Some(outcome.blob_gas_used);
        }
        let hash = header.hash_slow();
        self.hashes.insert(height, hash);
        while self.hashes.len() as u64 > BLOCK_HASHES_KEPT {
            self.hashes.pop_first();
        }
        self.parent = header.clone();
        self.parent_hash = hash;
        let timings = Timings {
            recover: recovered,
            prefetch: prefetched - recovered,
            execute: executed - prefetched,
            commit: started.elapsed() - executed,
        };
        Ok(ExecutedBlock { header, hash, txs, senders, outcome, dropped, timings })
    }

    /// The header of the next block before execution fills in its results.
    fn next_header(&self, block: &FinalizedBlock, timestamp_ms: u64) -> Header {
        let parent = &self.parent;
        let number = block.header.height;
        // Never before the parent: Ethereum time is in seconds, blocks are faster.
        let timestamp = (timestamp_ms / 1000).max(parent.timestamp);
        let spec = self.chain.spec_at(number, timestamp);
        let consensus_id = B256::from(block.header.id().0);
        let beneficiary =
            self.recipients.get(block.header.author as usize).copied().unwrap_or_default();
        let base_fee = parent
            .base_fee_per_gas
            .map(|_| parent.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or_default());
        let cancun = spec.is_enabled_in(SpecId::CANCUN);
        Header {
            parent_hash: self.parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary,
            number,
            gas_limit: parent.gas_limit,
            timestamp,
            mix_hash: consensus_id,
            base_fee_per_gas: base_fee,
            withdrawals_root: spec
                .is_enabled_in(SpecId::SHANGHAI)
                .then_some(alloy_trie::EMPTY_ROOT_HASH),
            excess_blob_gas: cancun.then(|| {
                parent
                    .next_block_excess_blob_gas(alloy_eips::eip7840::BlobParams::cancun())
                    .unwrap_or_default()
            }),
            blob_gas_used: cancun.then_some(0),
            parent_beacon_block_root: cancun.then_some(consensus_id),
            ..Default::default()
        }
    }
}

/// Leaves out every transaction whose nonce is not its sender's next: the
/// parent state's nonce (read from `state`, the block's prefetch) plus the
/// transactions of the same sender kept before it in the block. A leader
/// proposes against a state K blocks old and does not see every pending
/// block, so repeated and skipped nonces do
/// reach finalized blocks; this rule is a function of the parent state and
/// the block alone, so every validator leaves out the same ones. (The
/// executor would refuse them too, one re-execution of the block each.)
fn keep_next_nonces(
    txs: Vec<BlockTx>,
    senders: Vec<Address>,
    state: &impl DatabaseRef<Error = StateError>,
) -> Result<(Vec<BlockTx>, Vec<Address>), StateError> {
    use alloy_consensus::Transaction;
    let mut next: std::collections::HashMap<Address, u64> = std::collections::HashMap::new();
    for sender in &senders {
        if !next.contains_key(sender) {
            next.insert(*sender, state.basic_ref(*sender)?.map_or(0, |a| a.nonce));
        }
    }
    Ok(txs
        .into_iter()
        .zip(senders)
        .filter(|(tx, sender)| match next.get_mut(sender) {
            Some(expected) if *expected == tx.nonce() => {
                *expected = expected.saturating_add(1);
                true
            }
            _ => false,
        })
        .unzip())
}

/// The transactions with a sender: `known` where given, else recovered (in
/// parallel on up to `threads` threads, and one by one only when a
/// signature is bad); those whose signature does not recover are left out.
fn recover_missing(
    txs: Vec<BlockTx>,
    mut known: Vec<Option<Address>>,
    spec: SpecId,
    threads: usize,
) -> (Vec<BlockTx>, Vec<Address>) {
    let missing: Vec<usize> = (0..txs.len()).filter(|&i| known[i].is_none()).collect();
    if !missing.is_empty() {
        let to_recover: Vec<BlockTx> = missing.iter().map(|&i| txs[i].clone()).collect();
        let recovered: Vec<Option<Address>> = match recover_senders(&to_recover, spec, threads) {
            Ok(senders) => senders.into_iter().map(Some).collect(),
            Err(_) => to_recover.iter().map(|tx| recover_sender(tx, spec).ok()).collect(),
        };
        for (i, sender) in missing.into_iter().zip(recovered) {
            known[i] = sender;
        }
    }
    txs.into_iter().zip(known).filter_map(|(tx, sender)| Some((tx, sender?))).unzip()
}

/// The genesis header of a devnet: its alloc committed as triedb version 0.
pub fn genesis_header(genesis: &Genesis, state_root: B256) -> Header {
    let spec = genesis.spec.spec_at(0, genesis.timestamp);
    let cancun = spec.is_enabled_in(SpecId::CANCUN);
    Header {
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: genesis.coinbase,
        state_root,
        difficulty: genesis.difficulty,
        gas_limit: genesis.gas_limit,
        timestamp: genesis.timestamp,
        extra_data: genesis.extra_data.clone(),
        mix_hash: genesis.mix_hash,
        base_fee_per_gas: spec
            .is_enabled_in(SpecId::LONDON)
            .then(|| genesis.base_fee_per_gas.unwrap_or(1_000_000_000)),
        withdrawals_root: spec
            .is_enabled_in(SpecId::SHANGHAI)
            .then_some(alloy_trie::EMPTY_ROOT_HASH),
        blob_gas_used: cancun.then_some(0),
        excess_blob_gas: cancun.then_some(0),
        parent_beacon_block_root: cancun.then_some(B256::ZERO),
        ..Default::default()
    }
}

/// The consensus form of an executed block's result.
pub fn consensus_result(block: &ExecutedBlock) -> ExecutionResult {
    header_result(&block.header)
}

/// The result consensus certifies, from an executed block's header.
pub fn header_result(header: &Header) -> ExecutionResult {
    ExecutionResult {
        state_root: header.state_root.0,
        receipts_root: header.receipts_root.0,
        logs_bloom: header.logs_bloom.0.0,
        gas_used: header.gas_used,
    }
}
