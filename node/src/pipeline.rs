//! Asynchronous execution: consensus orders block `h` while this thread
//! executes earlier blocks; block `h + K` carries `h`'s result.
//!
//! * [`NodePayload`] is what a leader proposes: a timestamp and the ordered
//!   transactions (the pool's envelopes, [`wake_execution::encode_payload`]).
//!   Consensus treats it as opaque bytes.
//! * [`BlockExecutor`] turns a finalized consensus block into an Ethereum
//!   block: it decodes the payload (bounded), recovers senders, builds the
//!   header (number = consensus height, EIP-1559 base fee, Cancun blob
//!   fields, `prev_randao` and the beacon root set to the consensus block
//!   id, fee recipient derived from the leader's key) and executes it with
//!   the parallel executor over the parent's state. [`BlockSealer`] then
//!   commits the diff as triedb version `h` and seals the header with the
//!   parent hash and the state root.
//! * The two halves may run on two threads: block `h + 1` executes while
//!   `h` commits. The parent's state is then the newest committed version
//!   plus the diffs still being committed
//!   ([`wake_execution::SnapshotState::with_pending`]), which reads exactly
//!   like the committed version would. Only BLOCKHASH needs a commit (a
//!   block hash covers the state root): a read of a hash not sealed yet
//!   waits for it ([`BlockHashBook`]). Nothing else in executing a block
//!   depends on its parent's root.
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

use alloy_consensus::ReceiptEnvelope;
use alloy_consensus::{Block, BlockBody, EMPTY_OMMER_ROOT_HASH, Header, proofs};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_primitives::{Address, B256, Bytes, keccak256};
use parking_lot::{Condvar, Mutex, RwLock};
use revm::database::DatabaseRef;
use revm::primitives::hardfork::SpecId;
use wake_consensus::{ExecutionOracle, ExecutionResult, FinalizedBlock, Height};
use wake_execution::{
    BlockError, BlockHashes, BlockTx, ChainSpec, DISCOVERY_ROUNDS_MAX, Genesis, PendingDiff,
    Prefetched, SnapshotState, StateError, execute_block_parallel, recover_sender, recover_senders,
    split_payload,
};
use wake_triedb::{ReadAhead, TrieDb};

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
    #[error(
        "the state below block {parent} is not readable: triedb's newest version at or \
         below it is {committed}, and the executed blocks above that are {pending:?}"
    )]
    StateGap { committed: Height, parent: Height, pending: Vec<Height> },
    #[error("pipeline thread: {0}")]
    Thread(String),
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

/// One executed and committed block, as the rest of the node (RPC, pool,
/// metrics) sees it.
pub struct ExecutedBlock {
    pub header: Header,
    pub hash: B256,
    pub txs: Vec<BlockTx>,
    pub senders: Vec<Address>,
    pub receipts: Vec<ReceiptEnvelope>,
    /// The state diff committed as this block's triedb version.
    pub diff: Arc<PendingDiff>,
    /// Transactions of the payload left out (invalid when executed).
    pub dropped: usize,
    pub timings: Timings,
}

/// A block executed over its parent's state but not committed yet: its
/// header lacks the parent hash and the state root, which only the commit
/// of the parent and of the block itself give ([`BlockSealer::seal`]).
pub struct UnsealedBlock {
    header: Header,
    txs: Vec<BlockTx>,
    senders: Vec<Address>,
    receipts: Vec<ReceiptEnvelope>,
    diff: Arc<PendingDiff>,
    /// The nodes the prefetch walked, for the commit to walk again
    /// without reading them (a few KiB per account and slot read, held
    /// until the commit).
    ahead: ReadAhead,
    dropped: usize,
    timings: Timings,
}

impl UnsealedBlock {
    pub fn height(&self) -> Height {
        self.header.number
    }

    /// Where its time went so far (the commit's share is not known yet).
    pub fn timings(&self) -> &Timings {
        &self.timings
    }
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

/// Hashes of the executed chain, for BLOCKHASH: written by the thread that
/// commits blocks (a hash covers the state root), read by the one that
/// executes them, which may be a block ahead. A hash asked for a block
/// that is executed but not yet committed is waited for; the commit side
/// [`close`](Self::close)s the book when it stops, so nobody waits forever
/// (the answer is then none, and the block that asked is never committed
/// or published: its commit thread is gone).
#[derive(Default)]
pub struct BlockHashBook {
    inner: Mutex<HashBookInner>,
    sealed: Condvar,
}

#[derive(Default)]
struct HashBookInner {
    hashes: BTreeMap<u64, B256>,
    /// The newest height executed and handed to the commit side.
    executed: u64,
    closed: bool,
}

impl BlockHashBook {
    /// Records the hash of committed block `height` (and forgets those more
    /// than [`BLOCK_HASHES_KEPT`] back).
    pub fn insert(&self, height: u64, hash: B256) {
        let mut inner = self.inner.lock();
        inner.hashes.insert(height, hash);
        inner.executed = inner.executed.max(height);
        while inner.hashes.len() as u64 > BLOCK_HASHES_KEPT {
            inner.hashes.pop_first();
        }
        drop(inner);
        self.sealed.notify_all();
    }

    /// Block `height` is executed: its hash will come (a read of it waits).
    fn executed(&self, height: u64) {
        let mut inner = self.inner.lock();
        inner.executed = inner.executed.max(height);
    }

    /// No more hashes will come: wakes every reader.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.sealed.notify_all();
    }
}

impl BlockHashes for BlockHashBook {
    fn block_hash(&self, number: u64) -> Option<B256> {
        let mut inner = self.inner.lock();
        loop {
            if let Some(hash) = inner.hashes.get(&number) {
                return Some(*hash);
            }
            let newest = inner.hashes.last_key_value().map_or(0, |(h, _)| *h);
            // Older than what is kept, or never executed: no wait helps.
            if number <= newest || number > inner.executed || inner.closed {
                return None;
            }
            self.sealed.wait(&mut inner);
        }
    }
}

/// Executes finalized blocks in height order over triedb, each over its
/// parent's state: the newest committed version plus the diffs of the
/// blocks executed after it whose commits are still running
/// ([`SnapshotState::with_pending`]). [`BlockSealer`] commits them, on this
/// thread ([`BlockExecutor::execute_and_seal`]) or on another one.
pub struct BlockExecutor {
    chain: ChainSpec,
    db: Arc<TrieDb>,
    /// The last executed block's header; its parent hash and state root
    /// may not be known yet (nothing here reads them).
    parent: Header,
    /// Diffs of executed blocks not yet committed when last looked, oldest first.
    pending: Vec<Arc<PendingDiff>>,
    hashes: Arc<BlockHashBook>,
    /// Fee recipient per validator index.
    recipients: Vec<Address>,
    threads: usize,
    known_senders: Option<KnownSenders>,
}

/// Commits executed blocks in height order and seals their headers.
pub struct BlockSealer {
    db: Arc<TrieDb>,
    parent_hash: B256,
    hashes: Arc<BlockHashBook>,
}

impl BlockExecutor {
    /// Starts after `parent` (genesis, or the newest executed header,
    /// committed), with the sealer that commits what it executes.
    pub fn new(
        chain: ChainSpec,
        db: Arc<TrieDb>,
        parent: Header,
        recipients: Vec<Address>,
        threads: usize,
    ) -> (Self, BlockSealer) {
        let parent_hash = parent.hash_slow();
        let hashes = Arc::new(BlockHashBook::default());
        hashes.insert(parent.number, parent_hash);
        let sealer = BlockSealer { db: db.clone(), parent_hash, hashes: hashes.clone() };
        let executor = Self {
            chain,
            db,
            parent,
            pending: Vec::new(),
            hashes,
            recipients,
            threads: threads.max(1),
            known_senders: None,
        };
        (executor, sealer)
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
        for (height, hash) in hashes {
            self.hashes.insert(height, hash);
        }
    }

    /// The state database it executes over.
    pub fn db(&self) -> &TrieDb {
        &self.db
    }

    /// Executes the next block and commits it on this thread.
    pub fn execute_and_seal(
        &mut self,
        sealer: &mut BlockSealer,
        block: &FinalizedBlock,
    ) -> Result<ExecutedBlock, PipelineError> {
        let unsealed = self.execute(block)?;
        sealer.seal(unsealed)
    }

    /// Executes the next block over its parent's state; [`BlockSealer::seal`]
    /// must commit it (blocks are sealed in the order they are executed).
    pub fn execute(&mut self, block: &FinalizedBlock) -> Result<UnsealedBlock, PipelineError> {
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
        let snapshot = self.parent_state()?;
        let ahead = Mutex::new(ReadAhead::new());
        let base = SnapshotState::with_pending(&snapshot, &self.pending, &*self.hashes)
            .reading_ahead(&ahead);
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
        let mut state = Prefetched::load_on(base, &base, &named, &senders, self.threads)
            .map_err(prefetch_error)?;
        let (txs, mut senders) =
            keep_next_nonces(named.body.transactions, senders, &state).map_err(prefetch_error)?;
        let block = candidate(txs);
        state
            .discover(&self.chain, &block, &senders, &base, DISCOVERY_ROUNDS_MAX, self.threads)
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
        drop(state);
        header.transactions_root = proofs::calculate_transaction_root(&txs);
        header.receipts_root = outcome.receipts_root;
        header.logs_bloom = outcome.logs_bloom;
        header.gas_used = outcome.gas_used;
        if spec.is_enabled_in(SpecId::CANCUN) {
            header.blob_gas_used = Some(outcome.blob_gas_used);
        }
        let diff = Arc::new(PendingDiff::new(height, outcome.updates));
        self.pending.push(diff.clone());
        self.hashes.executed(height);
        self.parent = header.clone();
        let executed = started.elapsed();
        let timings = Timings {
            recover: recovered,
            prefetch: prefetched - recovered,
            execute: executed - prefetched,
            commit: Duration::ZERO,
        };
        Ok(UnsealedBlock {
            header,
            txs,
            senders,
            receipts: outcome.receipts,
            diff,
            ahead: ahead.into_inner(),
            dropped,
            timings,
        })
    }

    /// The newest committed version at or below the parent, with the diffs
    /// above it left in `pending` (a version newer than the parent exists
    /// only after a crash between a commit and its chain db record).
    fn parent_state(&mut self) -> Result<wake_triedb::Snapshot, PipelineError> {
        let parent = self.parent.number;
        let committed = self.db.latest().map_or(0, |latest| latest.version).min(parent);
        let snapshot = self.db.snapshot(committed)?;
        self.pending.retain(|diff| diff.height() > committed);
        let covered = self.pending.iter().map(|diff| diff.height()).eq(committed + 1..=parent);
        if !covered {
            return Err(PipelineError::StateGap {
                committed,
                parent,
                pending: self.pending.iter().map(|diff| diff.height()).collect(),
            });
        }
        Ok(snapshot)
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
            // Sealed in once the parent is committed (`BlockSealer::seal`).
            parent_hash: B256::ZERO,
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

impl BlockSealer {
    /// Commits an executed block as its triedb version and completes its
    /// header (parent hash, state root) and hash. Blocks come in the order
    /// they were executed.
    pub fn seal(&mut self, block: UnsealedBlock) -> Result<ExecutedBlock, PipelineError> {
        let started = Instant::now();
        let UnsealedBlock { mut header, txs, senders, receipts, diff, ahead, dropped, mut timings } =
            block;
        let height = header.number;
        // A crash between the triedb commit and the chain db append leaves
        // this version committed already: our own earlier execution of
        // this very finalized block, durable, so its root is the one.
        let state_root = match self.db.latest() {
            Some(latest) if latest.version == height => self.db.snapshot(height)?.state_root(),
            _ => self.db.commit_ahead(height, diff.updates(), ahead)?,
        };
        header.parent_hash = self.parent_hash;
        header.state_root = state_root;
        let hash = header.hash_slow();
        self.hashes.insert(height, hash);
        self.parent_hash = hash;
        timings.commit = started.elapsed();
        Ok(ExecutedBlock { header, hash, txs, senders, receipts, diff, dropped, timings })
    }

    /// The state database it commits to.
    pub fn db(&self) -> &TrieDb {
        &self.db
    }

    /// Tells readers of block hashes that no more will come (the commit
    /// side stops).
    pub fn close(&self) {
        self.hashes.close();
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
