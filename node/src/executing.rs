//! The executing side of a validator: state (triedb), the transaction
//! pool, the execution thread and the JSON-RPC server.
//!
//! Threads and queues (each bounded):
//! * the consensus thread hands every finalized block to
//!   [`ExecutingNode::on_commit`], which records its transactions as
//!   ordered in the pool and queues it for execution
//!   ([`EXECUTION_QUEUE`] blocks; a full queue blocks consensus, which is
//!   backpressure of last resort: the core already waits for results K
//!   blocks back before it proposes or votes);
//! * the execution thread ([`crate::pipeline::BlockExecutor`]) executes in
//!   height order, each block over its parent's state: the newest committed
//!   triedb version plus the diffs of the blocks executed after it whose
//!   commits are still running, so block `h + 1` executes while `h`
//!   commits. It hands each executed block to
//! * the commit thread (`wake-commit`, [`crate::pipeline::BlockSealer`],
//!   `COMMIT_QUEUE` blocks queued between the two), which commits version
//!   `h` to triedb, seals the header (parent hash, state root), publishes
//!   the result to [`Results`] (the core's oracle), the block to the RPC
//!   [`ChainStore`] and the touched accounts to the pool, and checks every
//!   certified delayed result against its own: a difference stops the node
//!   with both roots named. Results, RPC and the pool see a block only once
//!   it is committed;
//! * the RPC server runs on a tokio current-thread runtime of its own
//!   thread; `eth_sendRawTransaction` decodes and checks the chain id there,
//!   then queues the transaction (16,384 at most; full: `-32005`) and
//!   awaits its answer (the calls of a JSON-RPC batch run concurrently, so
//!   a batch queues together);
//! * an ingest thread admits what has queued, local transactions first,
//!   then gossiped batches, as batches: sender recovery on several threads,
//!   the accounts of new senders in one triedb batch read (io_uring), one
//!   pool lock for the batch ([`Pool::insert_batch`]);
//! * before executing a block, the execution thread reads what it will
//!   touch in a few io_uring batches ([`wake_execution::Prefetched`]: the
//!   accounts it names, then what discovery runs reveal, such as ERC-20
//!   balance slots).
//!
//! Persistence (the data directory of [`crate::import`]): triedb version
//! `h` is block `h`'s post-state, and after it commits, block `h` with its
//! senders and receipts is appended to the chain db. A restart resumes
//! from the chain db's tip: triedb opens at that version (or one newer, a
//! crash between the two writes, whose root is reused), the newest blocks
//! go back into the RPC store, their results into the consensus oracle and
//! their hashes into BLOCKHASH, and only the finalized blocks of the ledger
//! above the tip are executed before the node rejoins.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alloy_consensus::{Block, BlockBody};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_primitives::{Address, B256, Bytes, keccak256};
use anyhow::Context;
use wake_consensus::{
    BlockId, DelayedResult, ExecutionResult, FileLedger, FinalizedBlock, Height, Ledger,
    PayloadSource, PendingBlock, Round,
};
use wake_execution::pool::touched_accounts;
use wake_execution::{
    AccountSource, AccountState, BlockLimits, Pool, PoolConfig, PoolError, PoolHead, StateError,
    TxOrigin,
};
use wake_triedb::TrieDb;

use crate::chaindb::{ChainDb, ChainRecord};
use crate::import::{DataDir, LoadedGenesis, OpenDataDir};
use crate::pipeline::{
    BLOCK_HASHES_KEPT, BlockExecutor, BlockSealer, ExecutedBlock, NodePayload, PAYLOAD_TXS_MAX,
    PipelineError, Results, ResultsOracle, UnsealedBlock, consensus_result, header_result,
};
use crate::profile::{Profile, Role, RoleClocks, pin, thread_cpu_ns, thread_run_queue_ns};
use crate::rpc::{
    ChainStore, Metrics, NodeBackend, RpcConfig, RpcServer, RpcServerHandle, StoreConfig,
    SubmitError, SubmitFuture, TxSubmitter,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Finalized blocks queued for execution.
pub const EXECUTION_QUEUE: usize = 64;
/// Gossiped transaction batches queued for admission (each at most
/// `TX_GOSSIP_BYTES_MAX` bytes: at most 33 MiB queued).
const INGEST_QUEUE: usize = 256;
/// Transactions admitted per ingest batch.
const INGEST_BATCH: usize = 1024;
/// Transactions from `eth_sendRawTransaction` waiting for admission; more
/// are refused with `-32005` until the ingest thread catches up.
const LOCAL_QUEUE: usize = 16_384;
/// Local transactions admitted per batch.
const LOCAL_BATCH: usize = 2_048;

/// `[execution]` of `node.toml`.
#[derive(Clone, Debug)]
pub struct ExecutionSettings {
    pub genesis: PathBuf,
    pub rpc: SocketAddr,
    /// Parallel execution threads.
    pub threads: usize,
    /// triedb node cache.
    pub cache_mib: usize,
}

/// The state, pool, execution thread and RPC server of one validator.
pub struct ExecutingNode {
    pub results: Arc<Results>,
    pub pool: Arc<Pool>,
    pub store: Arc<ChainStore>,
    pub backend: Arc<NodeBackend>,
    gas_limit: u64,
    execution: Option<crossbeam_channel::Sender<Box<FinalizedBlock>>>,
    execution_thread: Option<JoinHandle<Result<(), PipelineError>>>,
    ingest: Option<crossbeam_channel::Sender<Vec<Bytes>>>,
    ingest_thread: Option<JoinHandle<()>>,
    rpc: Option<RpcServerHandle>,
    rpc_runtime: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    clocks: Arc<RoleClocks>,
    gauges: Gauges,
}

/// Node gauges on `/metrics` (prefix `wake_`).
#[derive(Clone, Default)]
struct Gauges {
    /// Newest finalized (ordered) block.
    consensus_height: Gauge,
    /// Newest executed block.
    executed_height: Gauge,
    /// Transactions in the pool.
    pool_txs: Gauge,
    trie: TrieMetrics,
    pool: PoolMetrics,
}

/// The `reason` label of a refused transaction.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The pool's counters on `/metrics` (prefix `wake_pool_`), brought up to
/// date after every executed block from [`wake_execution::pool::PoolStats`].
#[derive(Clone, Default)]
struct PoolMetrics {
    admitted: Counter,
    evicted: Counter,
    removed_mined: Counter,
    removed_unfunded: Counter,
    rejected: Family<ReasonLabels, Counter>,
}

impl PoolMetrics {
    fn register(&self, metrics: &Metrics) {
        let counters = [
            ("pool_admitted", "Transactions admitted to the pool", &self.admitted),
            ("pool_evicted", "Pooled transactions evicted by better-paying ones", &self.evicted),
            ("pool_removed_mined", "Pooled transactions removed as executed", &self.removed_mined),
            (
                "pool_removed_unfunded",
                "Pooled transactions removed as no longer funded",
                &self.removed_unfunded,
            ),
        ];
        for (name, help, counter) in counters {
            metrics.register(name, help, counter.clone());
        }
        metrics.register(
            "pool_rejected",
            "Transactions refused by the pool, by reason",
            self.rejected.clone(),
        );
    }

    /// Moves the counters by what happened since `before`.
    fn update(
        &self,
        before: &wake_execution::pool::PoolStats,
        now: &wake_execution::pool::PoolStats,
    ) {
        advance(&[
            (&self.admitted, now.admitted, before.admitted),
            (&self.evicted, now.evicted, before.evicted),
            (&self.removed_mined, now.removed_mined, before.removed_mined),
            (&self.removed_unfunded, now.removed_unfunded, before.removed_unfunded),
        ]);
        for (&(reason, now), &(_, before)) in now.rejected.iter().zip(&before.rejected) {
            let labels = ReasonLabels { reason: reason.as_str() };
            self.rejected.get_or_create(&labels).inc_by(now.saturating_sub(before));
        }
    }
}

/// Moves each counter by `now - before` of the source figure it mirrors.
fn advance(deltas: &[(&Counter, u64, u64)]) {
    for &(counter, now, before) in deltas {
        counter.inc_by(now.saturating_sub(before));
    }
}

/// triedb's figures on `/metrics` (prefix `wake_triedb_`), brought up to
/// date after every executed block from [`wake_triedb::Stats`].
#[derive(Clone, Default)]
struct TrieMetrics {
    file_bytes: Gauge,
    live_bytes: Gauge,
    cache_bytes: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    device_reads: Counter,
    nodes_compacted: Counter,
    stale_evicted: Counter,
    commit_prefetch_us: Counter,
    commit_apply_us: Counter,
    commit_sync_us: Counter,
    commit_prefetch_reads: Counter,
    commit_apply_reads: Counter,
}

impl TrieMetrics {
    fn register(&self, metrics: &Metrics) {
        let gauges = [
            ("triedb_file_bytes", "Size of the state file", &self.file_bytes),
            (
                "triedb_live_bytes",
                "Bytes of nodes reachable from the newest version",
                &self.live_bytes,
            ),
            ("triedb_cache_bytes", "Bytes held by the node cache", &self.cache_bytes),
        ];
        for (name, help, gauge) in gauges {
            metrics.register(name, help, gauge.clone());
        }
        let counters = [
            ("triedb_cache_hits", "Node cache hits", &self.cache_hits),
            ("triedb_cache_misses", "Node cache misses", &self.cache_misses),
            (
                "triedb_device_reads",
                "Device reads issued by lookups and commits",
                &self.device_reads,
            ),
            ("triedb_nodes_compacted", "Nodes copied forward by compaction", &self.nodes_compacted),
            (
                "triedb_cache_stale_evicted",
                "Cached nodes dropped once recent versions no longer refer to them",
                &self.stale_evicted,
            ),
            (
                "triedb_commit_prefetch_microseconds",
                "Commit time reading ahead",
                &self.commit_prefetch_us,
            ),
            (
                "triedb_commit_apply_microseconds",
                "Commit time applying, compacting, hashing and writing",
                &self.commit_apply_us,
            ),
            (
                "triedb_commit_sync_microseconds",
                "Commit time in fdatasync and metadata",
                &self.commit_sync_us,
            ),
            (
                "triedb_commit_prefetch_reads",
                "Device reads of commits reading ahead (part of device_reads)",
                &self.commit_prefetch_reads,
            ),
            (
                "triedb_commit_apply_reads",
                "Device reads of commits while applying, compaction mostly (part of device_reads)",
                &self.commit_apply_reads,
            ),
        ];
        for (name, help, counter) in counters {
            metrics.register(name, help, counter.clone());
        }
    }

    /// Moves the counters by what happened since `before`.
    fn update(&self, before: &wake_triedb::Stats, now: &wake_triedb::Stats) {
        self.file_bytes.set(now.file_bytes as i64);
        self.live_bytes.set(now.live_bytes as i64);
        self.cache_bytes.set(now.cache_bytes as i64);
        advance(&[
            (&self.cache_hits, now.cache_hits, before.cache_hits),
            (&self.cache_misses, now.cache_misses, before.cache_misses),
            (&self.device_reads, now.device_reads, before.device_reads),
            (&self.nodes_compacted, now.nodes_compacted, before.nodes_compacted),
            (&self.stale_evicted, now.stale_evicted, before.stale_evicted),
            (&self.commit_prefetch_us, now.commit_prefetch_us, before.commit_prefetch_us),
            (&self.commit_apply_us, now.commit_apply_us, before.commit_apply_us),
            (&self.commit_sync_us, now.commit_sync_us, before.commit_sync_us),
            (&self.commit_prefetch_reads, now.commit_prefetch_reads, before.commit_prefetch_reads),
            (&self.commit_apply_reads, now.commit_apply_reads, before.commit_apply_reads),
        ]);
    }
}

impl Gauges {
    fn register(&self, metrics: &Metrics) {
        metrics.register(
            "consensus_height",
            "Newest finalized block (its order is final)",
            self.consensus_height.clone(),
        );
        metrics.register(
            "executed_height",
            "Newest executed block (its state is readable)",
            self.executed_height.clone(),
        );
        metrics.register("pool_transactions", "Transactions in the pool", self.pool_txs.clone());
        self.trie.register(metrics);
        self.pool.register(metrics);
    }
}

/// The pool's view of the newest executed state.
struct LatestState(TrieDb);

impl LatestState {
    /// The newest executed version; `None` before genesis is committed.
    fn snapshot(&self) -> Result<Option<wake_triedb::Snapshot>, StateError> {
        let Some(latest) = self.0.latest() else { return Ok(None) };
        self.0.snapshot(latest.version).map(Some).map_err(|e| StateError(Arc::new(e)))
    }
}

fn account_state(account: Option<wake_triedb::Account>) -> AccountState {
    account
        .map_or_else(AccountState::default, |a| AccountState { nonce: a.nonce, balance: a.balance })
}

impl AccountSource for LatestState {
    fn account_states(&self, addresses: &[Address]) -> Result<Vec<AccountState>, StateError> {
        let Some(snapshot) = self.snapshot()? else {
            return Ok(vec![AccountState::default(); addresses.len()]);
        };
        let accounts = snapshot.accounts(addresses).map_err(|e| StateError(Arc::new(e)))?;
        Ok(accounts.into_iter().map(account_state).collect())
    }

    fn account_state(&self, address: Address) -> Result<AccountState, StateError> {
        let Some(snapshot) = self.snapshot()? else { return Ok(AccountState::default()) };
        let account = snapshot.account(&address).map_err(|e| StateError(Arc::new(e)))?;
        Ok(account_state(account))
    }
}

impl ExecutingNode {
    /// Opens state at `data_dir/state`, commits genesis, re-executes the
    /// ledger, and starts the execution thread and the RPC server.
    pub fn start(
        settings: &ExecutionSettings,
        data_dir: &Path,
        ledger: &FileLedger,
        recipients: Vec<Address>,
        metrics: Arc<Metrics>,
        profile: Option<&Profile>,
        clocks: Arc<RoleClocks>,
    ) -> anyhow::Result<Self> {
        let chain_path = data_dir.join(crate::import::CHAIN_DB_FILE);
        let state_dir = data_dir.join(crate::import::STATE_DIR);
        if !chain_path.exists() && state_dir.is_dir() {
            // State without a chain db: a data directory of a version that
            // rebuilt state on every start. Rebuilt once more, from genesis.
            for entry in std::fs::read_dir(&state_dir)? {
                let path = entry?.path();
                if path.is_file() {
                    std::fs::remove_file(&path)
                        .with_context(|| format!("cannot remove {}", path.display()))?;
                }
            }
        }
        let loaded = LoadedGenesis::load(&settings.genesis)?;
        let chain = loaded.chain().clone();
        let accounts = loaded.genesis.alloc.len();
        let open = DataDir::new(data_dir).prepare(loaded, true, settings.cache_mib)?;
        let OpenDataDir { chain_db, triedb: db, initialized, genesis, .. } = open;
        let genesis_header = genesis.header;
        let Some(executed_tip) = chain_db.tip_header().cloned() else {
            anyhow::bail!("{}: the chain db has no tip", chain_path.display());
        };
        let resumed = executed_tip.number;
        if initialized {
            tracing::info!(
                accounts,
                state_root = %genesis_header.state_root,
                chain_id = chain.chain_id,
                "genesis committed"
            );
        } else {
            tracing::info!(
                executed = resumed,
                state_root = %executed_tip.state_root,
                "resumed from the data directory"
            );
        }

        let store = Arc::new(ChainStore::new(StoreConfig::default()));
        chain_db.load_into(&store).context("loading recent blocks for JSON-RPC")?;
        let head = PoolHead {
            spec: chain.spec_at(resumed + 1, executed_tip.timestamp),
            base_fee: executed_tip
                .next_block_base_fee(BaseFeeParams::ethereum())
                .unwrap_or_default(),
            block_gas_limit: executed_tip.gas_limit,
        };
        let pool = Arc::new(Pool::new(
            PoolConfig::new(chain.chain_id),
            head,
            Arc::new(LatestState(db.clone())),
        ));
        let results = Arc::new(Results::default());
        let (mut executor, mut sealer) = BlockExecutor::new(
            chain.clone(),
            Arc::new(db.clone()),
            executed_tip.clone(),
            recipients,
            settings.threads,
        );
        let sender_pool = pool.clone();
        executor.set_known_senders(Arc::new(move |hashes| sender_pool.senders_of(hashes)));
        // What consensus and BLOCKHASH need of the blocks executed before
        // the restart: their results and hashes.
        let mut hashes = Vec::new();
        let from = resumed.saturating_sub(BLOCK_HASHES_KEPT - 1);
        for item in chain_db.iter_from(from) {
            let (height, record) = item.context("reading the chain db")?;
            results.insert(height, header_result(&record.block.header));
            hashes.push((height, record.block.header.hash_slow()));
        }
        executor.remember_hashes(hashes);

        // Catch up with our own ledger: the finalized blocks not executed.
        let tip = ledger.tip_height();
        if resumed > tip {
            anyhow::bail!(
                "{} holds executed block {resumed} but the consensus ledger ends at {tip}: \
                 the data directory is inconsistent",
                chain_path.display()
            );
        }
        let mut chain_db = chain_db;
        if tip > resumed {
            let started = Instant::now();
            for height in resumed + 1..=tip {
                let block = ledger.get(height)?.context("ledger has a hole")?;
                let executed = executor.execute_and_seal(&mut sealer, &block)?;
                persist_and_publish(&mut chain_db, &executed, (&results, &store, &pool))?;
            }
            tracing::info!(
                blocks = tip - resumed,
                secs = started.elapsed().as_secs_f64(),
                "finalized blocks executed since the last run"
            );
        }

        let (local_tx, local_rx) = crossbeam_channel::bounded(LOCAL_QUEUE);
        let backend = Arc::new(NodeBackend::new(
            store.clone(),
            chain.clone(),
            db.clone(),
            Box::new(PoolSubmitter { queue: local_tx }),
        ));
        backend.set_consensus_head(tip);

        let gauges = Gauges::default();
        gauges.register(&metrics);
        clocks.register(&metrics);
        gauges.consensus_height.set(tip as i64);
        gauges.executed_height.set(tip as i64);
        let (rpc_runtime, handle) = rpc_runtime(profile.cloned())?;
        let rpc = RpcServer::start(
            RpcConfig { addr: settings.rpc, ..RpcConfig::default() },
            backend.clone(),
            metrics,
            &handle,
        )
        .with_context(|| format!("cannot start JSON-RPC on {}", settings.rpc))?;
        tracing::info!(url = rpc.http_url(), "JSON-RPC serving");

        let (execution_tx, execution_rx) = crossbeam_channel::bounded(EXECUTION_QUEUE);
        let thread_parts = (
            results.clone(),
            store.clone(),
            pool.clone(),
            clocks.clone(),
            gauges.clone(),
            chain_db,
        );
        let execution_profile = profile.cloned();
        let execution_thread =
            std::thread::Builder::new().name("wake-exec".into()).spawn(move || {
                pin(execution_profile.as_ref(), Role::Execution);
                run_execution(executor, sealer, execution_rx, thread_parts, execution_profile)
            })?;
        let (ingest_tx, ingest_rx) = crossbeam_channel::bounded(INGEST_QUEUE);
        let ingest_pool = pool.clone();
        let ingest_profile = profile.cloned();
        let ingest_thread =
            std::thread::Builder::new().name("wake-ingest".into()).spawn(move || {
                pin(ingest_profile.as_ref(), Role::Ingest);
                ingest_loop(&ingest_pool, ingest_rx, local_rx)
            })?;

        Ok(Self {
            results,
            pool,
            store,
            backend,
            gas_limit: genesis_header.gas_limit,
            execution: Some(execution_tx),
            execution_thread: Some(execution_thread),
            ingest: Some(ingest_tx),
            ingest_thread: Some(ingest_thread),
            rpc: Some(rpc),
            rpc_runtime: Some(rpc_runtime),
            clocks,
            gauges,
        })
    }

    /// A finalized block: its transactions are ordered; queue it for
    /// execution. Fails when the execution thread stopped (its error).
    pub fn on_commit(&mut self, block: Box<FinalizedBlock>) -> anyhow::Result<()> {
        mark_ordered(&self.pool, block.header.height, &block.payload);
        self.backend.set_consensus_head(block.header.height);
        self.gauges.consensus_height.set(block.header.height as i64);
        // Time spent here is backpressure: the execution queue is full.
        let started = Instant::now();
        let sent = self.execution.as_ref().map(|tx| tx.send(block));
        self.clocks.consensus.blocked(started);
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.execution_failure());
        }
        Ok(())
    }

    /// A batch of transactions from gossip; admitted on the ingest thread.
    /// False if the ingest queue is full (the batch is dropped: gossip is
    /// best effort, and the sender's pool keeps its transactions).
    pub fn ingest(&self, txs: Vec<Bytes>) -> bool {
        matches!(self.ingest.as_ref().map(|tx| tx.try_send(txs)), Some(Ok(())))
    }

    /// The consensus core's view of our results.
    pub fn oracle(&self) -> ResultsOracle {
        ResultsOracle(self.results.clone())
    }

    /// The leader's payload builder.
    pub fn payloads(&self, consensus: &crate::config::ConsensusSection) -> PoolPayloads {
        PoolPayloads {
            pool: self.pool.clone(),
            gas_limit: self.gas_limit.min(consensus.block_gas_max),
            block_time_ms: consensus.block_time_ms,
            empty_block_ms: consensus.empty_block_ms,
            marked: VecDeque::new(),
        }
    }

    /// Whether the execution thread is still running.
    pub fn is_running(&self) -> bool {
        self.execution_thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The execution thread's error, once it stopped.
    pub fn execution_failure(&mut self) -> anyhow::Error {
        self.execution = None;
        match self.execution_thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => anyhow::Error::new(e).context("execution stopped"),
            Some(Err(_)) => anyhow::anyhow!("the execution thread panicked"),
            _ => anyhow::anyhow!("the execution thread stopped"),
        }
    }
}

impl Drop for ExecutingNode {
    fn drop(&mut self) {
        self.execution = None;
        self.ingest = None;
        if let Some(thread) = self.execution_thread.take() {
            let _ = thread.join();
        }
        if let Some(thread) = self.ingest_thread.take() {
            let _ = thread.join();
        }
        if let Some(rpc) = self.rpc.take() {
            rpc.stop();
        }
        if let Some((stop, thread)) = self.rpc_runtime.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// Tells the pool that the transactions of a block's payload are ordered at
/// `height`, so that no later proposal repeats them before the block is
/// executed.
fn mark_ordered(pool: &Pool, height: Height, payload: &[u8]) {
    if let Some((_, envelopes)) = NodePayload::decode(payload) {
        let hashes: Vec<B256> = envelopes.iter().map(keccak256).collect();
        pool.on_block_ordered_hashes(height, &hashes);
    }
}

/// Pending blocks a leader remembers having marked (their transactions are
/// not hashed again at its next proposal).
const MARKED_BLOCKS_MAX: usize = 64;

/// How often a leader pausing for an empty mempool looks at it again.
pub const EMPTY_POLL_MS: u64 = 10;

/// The leader's payloads: the pool's best transactions up to the gas limit
/// (the chain's, or `[consensus] block_gas_max` if lower).
pub struct PoolPayloads {
    pool: Arc<Pool>,
    gas_limit: u64,
    block_time_ms: u64,
    empty_block_ms: u64,
    /// Pending blocks already passed to [`mark_ordered`], newest last.
    marked: VecDeque<BlockId>,
}

impl PayloadSource for PoolPayloads {
    fn payload(
        &mut self,
        _round: Round,
        height: Height,
        bytes_max: usize,
        pending: &[PendingBlock<'_>],
    ) -> Vec<u8> {
        // Blocks above the committed tip (another leader's, most often) are
        // ordered once this proposal is: leave their transactions out. A
        // pending block that then loses its fork keeps its transactions
        // back only until the height it had is executed.
        for block in pending {
            if !self.marked.contains(&block.id) {
                mark_ordered(&self.pool, block.height, block.payload);
                if self.marked.len() == MARKED_BLOCKS_MAX {
                    self.marked.pop_front();
                }
                self.marked.push_back(block.id);
            }
        }
        let limits = BlockLimits {
            gas_limit: self.gas_limit,
            bytes_max: bytes_max.saturating_sub(NodePayload::OVERHEAD),
            txs_max: PAYLOAD_TXS_MAX,
            base_fee: self.pool.head().base_fee,
        };
        let txs = self.pool.build(&limits);
        // Our next proposal must not repeat these, committed or not yet.
        self.pool.on_block_ordered(height, txs.iter().map(|tx| (tx.sender(), tx.nonce())));
        let raws: Vec<Bytes> = txs.iter().map(|tx| tx.raw().clone()).collect();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        NodePayload::encode(now_ms, &raws)
    }

    fn wait_ms(&mut self, _height: Height, parent_payload: &[u8]) -> u64 {
        let block_time = crate::validator::block_time_wait(self.block_time_ms, parent_payload);
        if block_time > 0 || !self.pool.is_empty() {
            return block_time;
        }
        // Nothing to order: pause, but look again soon (the core asks
        // again on the tick), so a transaction is not kept waiting.
        crate::validator::block_time_wait(self.empty_block_ms, parent_payload).min(EMPTY_POLL_MS)
    }
}

fn submit_error(e: PoolError) -> SubmitError {
    match e {
        PoolError::PoolFull => SubmitError::Busy(e.to_string()),
        e => SubmitError::Rejected(e.to_string()),
    }
}

type Parts = (Arc<Results>, Arc<ChainStore>, Arc<Pool>, Arc<RoleClocks>, Gauges, ChainDb);

/// An executed block on its way to the commit thread, with the delayed
/// result certified by the consensus block it came in.
struct ToSeal {
    block: UnsealedBlock,
    certified: Option<DelayedResult>,
}

/// Executes finalized blocks and hands them to a commit thread of its own
/// (`wake-commit`), which it starts, so that block `h + 1` executes while
/// `h` commits. Returns when the block queue closes or either side fails;
/// the commit thread's error comes first (it is the one that stops both).
fn run_execution(
    executor: BlockExecutor,
    sealer: BlockSealer,
    blocks: crossbeam_channel::Receiver<Box<FinalizedBlock>>,
    parts: Parts,
    profile: Option<Profile>,
) -> Result<(), PipelineError> {
    let clocks = parts.3.clone();
    let (to_commit, executed) = crossbeam_channel::bounded(COMMIT_QUEUE);
    // Never sent on: it disconnects when the commit thread ends.
    let (alive, commit_stopped) = crossbeam_channel::bounded::<()>(0);
    let commit_thread = std::thread::Builder::new()
        .name("wake-commit".into())
        .spawn(move || {
            pin(profile.as_ref(), Role::Commit);
            let _alive = alive;
            let mut sealer = sealer;
            let result = commit_loop(&mut sealer, executed, parts);
            sealer.close();
            result
        })
        .map_err(|e| PipelineError::Thread(e.to_string()))?;
    let executing = execution_loop(executor, blocks, &to_commit, &commit_stopped, &clocks);
    drop(to_commit);
    let committing = match commit_thread.join() {
        Ok(result) => result,
        Err(_) => Err(PipelineError::Thread("the commit thread panicked".into())),
    };
    committing.and(executing)
}

/// Blocks executed and waiting for the commit thread, besides the one it
/// commits: the execution thread runs at most this many blocks ahead.
const COMMIT_QUEUE: usize = 1;

fn execution_loop(
    mut executor: BlockExecutor,
    blocks: crossbeam_channel::Receiver<Box<FinalizedBlock>>,
    to_commit: &crossbeam_channel::Sender<ToSeal>,
    commit_stopped: &crossbeam_channel::Receiver<()>,
    clocks: &RoleClocks,
) -> Result<(), PipelineError> {
    let mut times = ThreadTimes::new("execution thread");
    let (mut prefetch, mut execute) = (Duration::ZERO, Duration::ZERO);
    loop {
        let waiting = Instant::now();
        let block = crossbeam_channel::select! {
            recv(blocks) -> block => match block {
                Ok(block) => block,
                Err(_) => break,
            },
            // The commit thread stopped: its error is the node's.
            recv(commit_stopped) -> _ => break,
        };
        clocks.execution.idle(waiting);
        let working = Instant::now();
        let unsealed = executor.execute(&block)?;
        prefetch += unsealed.timings().prefetch;
        execute += unsealed.timings().execute;
        clocks.execution.busy(working);
        times.busy(working.elapsed());
        // Waiting here is backpressure from the commit thread.
        let handing = Instant::now();
        let sent = to_commit.send(ToSeal { block: unsealed, certified: block.header.delayed });
        clocks.execution.blocked(handing);
        if sent.is_err() {
            break;
        }
        if let Some(blocks) = times.log_due() {
            tracing::info!(
                prefetch_ms = prefetch.as_millis() as u64 / blocks,
                exec_ms = execute.as_millis() as u64 / blocks,
                "executed (per block)"
            );
            (prefetch, execute) = (Duration::ZERO, Duration::ZERO);
        }
    }
    Ok(())
}

/// Commits executed blocks in order, checks every certified delayed result
/// against our own (a difference stops the node naming both roots), then
/// persists and publishes each block.
fn commit_loop(
    sealer: &mut BlockSealer,
    executed: crossbeam_channel::Receiver<ToSeal>,
    (results, store, pool, clocks, gauges, mut chain_db): Parts,
) -> Result<(), PipelineError> {
    // Delayed results certified by consensus, waiting for our own.
    let mut certified: BTreeMap<Height, ExecutionResult> = BTreeMap::new();
    // triedb figures as of the last log line, and as of the last block.
    let mut last_stats = sealer.db().stats();
    let mut block_stats = last_stats;
    let mut pool_stats = pool.stats();
    let mut times = ThreadTimes::new("commit thread");
    let (mut txs, mut commit) = (0usize, Duration::ZERO);
    let mut window = Instant::now();
    loop {
        let waiting = Instant::now();
        let Ok(ToSeal { block, certified: delayed }) = executed.recv() else { break };
        clocks.commit.idle(waiting);
        let working = Instant::now();
        if let Some(delayed) = delayed {
            certified.insert(delayed.height, delayed.result);
        }
        let executed = sealer.seal(block)?;
        let height = executed.header.number;
        let ours = consensus_result(&executed);
        // Check every certified result we have ours for.
        let checkable: Vec<Height> = certified.range(..=height).map(|(h, _)| *h).collect();
        for h in checkable {
            let Some(theirs) = certified.remove(&h) else { continue };
            let mine = if h == height { Some(ours.clone()) } else { results.get(h) };
            if let Some(mine) = mine
                && mine != theirs
            {
                return Err(PipelineError::Diverged {
                    height: h,
                    ours: B256::from(mine.state_root),
                    certified: B256::from(theirs.state_root),
                });
            }
        }
        txs += executed.txs.len();
        commit += executed.timings.commit;
        persist_and_publish(&mut chain_db, &executed, (&results, &store, &pool))?;
        gauges.executed_height.set(height as i64);
        gauges.pool_txs.set(pool.len() as i64);
        let stats = sealer.db().stats();
        gauges.trie.update(&block_stats, &stats);
        block_stats = stats;
        let now = pool.stats();
        gauges.pool.update(&pool_stats, &now);
        pool_stats = now;
        clocks.commit.busy(working);
        times.busy(working.elapsed());
        if let Some(blocks) = times.log_due() {
            let per_block_ms = |now: u64, then: u64| now.saturating_sub(then) / 1000 / blocks;
            tracing::info!(
                commit_prefetch_ms =
                    per_block_ms(stats.commit_prefetch_us, last_stats.commit_prefetch_us),
                commit_apply_ms = per_block_ms(stats.commit_apply_us, last_stats.commit_apply_us),
                commit_sync_ms = per_block_ms(stats.commit_sync_us, last_stats.commit_sync_us),
                device_reads = stats.device_reads - last_stats.device_reads,
                commit_prefetch_reads =
                    stats.commit_prefetch_reads - last_stats.commit_prefetch_reads,
                commit_apply_reads = stats.commit_apply_reads - last_stats.commit_apply_reads,
                cache_misses = stats.cache_misses - last_stats.cache_misses,
                nodes_compacted = stats.nodes_compacted - last_stats.nodes_compacted,
                live_mib = stats.live_bytes >> 20,
                file_mib = stats.file_bytes >> 20,
                "triedb"
            );
            last_stats = stats;
            tracing::info!(
                height,
                blocks,
                txs,
                tps = format!("{:.0}", txs as f64 / window.elapsed().as_secs_f64()),
                commit_ms = commit.as_millis() as u64 / blocks,
                pool = pool.len(),
                "committed"
            );
            (txs, commit, window) = (0, Duration::ZERO, Instant::now());
        }
    }
    Ok(())
}

/// A pipeline thread's own time, logged every 5 s: busy (wall time at work)
/// against CPU time and run-queue time. Busy minus CPU is time off the CPU,
/// waiting for a core (the run queue) or blocked (the device, fsync, a lock).
struct ThreadTimes {
    name: &'static str,
    since: Instant,
    busy: Duration,
    blocks: u64,
    cpu_ns: u64,
    queued_ns: u64,
}

impl ThreadTimes {
    fn new(name: &'static str) -> Self {
        ThreadTimes {
            name,
            since: Instant::now(),
            busy: Duration::ZERO,
            blocks: 0,
            cpu_ns: thread_cpu_ns(),
            queued_ns: thread_run_queue_ns(),
        }
    }

    /// One block's work took `busy`.
    fn busy(&mut self, busy: Duration) {
        self.busy += busy;
        self.blocks += 1;
    }

    /// Every 5 s: logs the line and returns the blocks since the last one
    /// (at least 1), for the caller's own per-block figures.
    fn log_due(&mut self) -> Option<u64> {
        if self.since.elapsed().as_secs() < 5 {
            return None;
        }
        let (cpu_ns, queued_ns) = (thread_cpu_ns(), thread_run_queue_ns());
        tracing::info!(
            thread = self.name,
            blocks = self.blocks,
            busy_ms = self.busy.as_millis() as u64,
            cpu_ms = cpu_ns.saturating_sub(self.cpu_ns) / 1_000_000,
            run_queue_ms = queued_ns.saturating_sub(self.queued_ns) / 1_000_000,
            "pipeline thread"
        );
        let blocks = self.blocks.max(1);
        *self = ThreadTimes { name: self.name, ..ThreadTimes::new(self.name) };
        Some(blocks)
    }
}

/// Appends an executed block to the chain db (after its triedb version:
/// the chain db never names a block whose state is missing), then makes it
/// visible: one record serves both.
fn persist_and_publish(
    chain_db: &mut ChainDb,
    executed: &ExecutedBlock,
    (results, store, pool): (&Results, &ChainStore, &Pool),
) -> Result<(), PipelineError> {
    let record = ChainRecord {
        block: Block {
            header: executed.header.clone(),
            body: BlockBody {
                transactions: executed.txs.clone(),
                ommers: Vec::new(),
                withdrawals: executed.header.withdrawals_root.map(|_| Default::default()),
            },
        },
        senders: executed.senders.clone(),
        receipts: executed.receipts.clone(),
    };
    chain_db.append(executed.header.number, &record)?;
    publish(executed, record, results, store, pool);
    Ok(())
}

/// Makes an executed block visible: oracle, RPC store, pool.
fn publish(
    executed: &ExecutedBlock,
    record: ChainRecord,
    results: &Results,
    store: &ChainStore,
    pool: &Pool,
) {
    let height = executed.header.number;
    results.insert(height, consensus_result(executed));
    match record.into_stored() {
        Ok(stored) => {
            if let Err(e) = store.insert(stored) {
                tracing::warn!(height, %e, "RPC store refused the block");
            }
            store.set_finalized(height);
        }
        Err(e) => tracing::warn!(height, %e, "block not stored for RPC"),
    }
    pool.on_block_executed(height, touched_accounts(executed.diff.updates()));
    let mut head = pool.head();
    head.base_fee =
        executed.header.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or(head.base_fee);
    pool.set_head(head);
}

/// A transaction from `eth_sendRawTransaction`, and where its answer goes.
struct LocalTx {
    raw: Bytes,
    reply: tokio::sync::oneshot::Sender<Result<B256, SubmitError>>,
}

/// `eth_sendRawTransaction` into the pool: the transaction is queued for
/// the ingest thread, which admits everything queued meanwhile as one
/// batch (sender recovery on several threads, the unknown senders' accounts
/// in one triedb batch, one pool lock), off the RPC thread.
struct PoolSubmitter {
    queue: crossbeam_channel::Sender<LocalTx>,
}

impl TxSubmitter for PoolSubmitter {
    fn submit(&self, raw: Bytes) -> SubmitFuture {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let refused = match self.queue.try_send(LocalTx { raw, reply }) {
            Ok(()) => {
                return Box::pin(async move {
                    answer.await.unwrap_or_else(|_| {
                        Err(SubmitError::Busy("the node is shutting down".into()))
                    })
                });
            }
            Err(crossbeam_channel::TrySendError::Full(_)) => {
                format!("transaction admission queue is full ({LOCAL_QUEUE} waiting)")
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                "the node is shutting down".to_string()
            }
        };
        Box::pin(std::future::ready(Err(SubmitError::Busy(refused))))
    }
}

/// Admits gossiped batches and local transactions until the gossip side
/// closes (the node stops). Local ones go first: a user waits on each.
fn ingest_loop(
    pool: &Pool,
    gossip: crossbeam_channel::Receiver<Vec<Bytes>>,
    local: crossbeam_channel::Receiver<LocalTx>,
) {
    let mut local_open = true;
    loop {
        let (mut locals, mut gossiped) = (Vec::new(), Vec::new());
        if local_open {
            crossbeam_channel::select! {
                recv(local) -> tx => match tx {
                    Ok(tx) => locals.push(tx),
                    Err(_) => local_open = false,
                },
                recv(gossip) -> batch => match batch {
                    Ok(batch) => gossiped = batch,
                    Err(_) => return,
                },
            }
        } else {
            match gossip.recv() {
                Ok(batch) => gossiped = batch,
                Err(_) => return,
            }
        }
        locals.extend(local.try_iter().take(LOCAL_BATCH.saturating_sub(locals.len())));
        if !locals.is_empty() {
            let (raws, replies): (Vec<Bytes>, Vec<_>) =
                locals.into_iter().map(|tx| (tx.raw, tx.reply)).unzip();
            for (result, reply) in pool.insert_batch(TxOrigin::Local, raws).into_iter().zip(replies)
            {
                // The caller may have gone (a closed connection): nothing to do.
                let _ = reply.send(result.map(|a| a.hash).map_err(submit_error));
            }
        }
        if gossiped.len() < INGEST_BATCH {
            for more in gossip.try_iter() {
                gossiped.extend(more);
                if gossiped.len() >= INGEST_BATCH {
                    break;
                }
            }
        }
        if !gossiped.is_empty() {
            for result in pool.insert_batch(TxOrigin::Gossip, gossiped) {
                if let Err(e) = result {
                    tracing::trace!(%e, "gossiped transaction not admitted");
                }
            }
        }
    }
}

/// A tokio current-thread runtime on its own thread for the RPC server.
#[allow(clippy::type_complexity)]
fn rpc_runtime(
    profile: Option<Profile>,
) -> anyhow::Result<((tokio::sync::oneshot::Sender<()>, JoinHandle<()>), tokio::runtime::Handle)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let handle = runtime.handle().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("wake-rpc".into()).spawn(move || {
        pin(profile.as_ref(), Role::Rpc);
        let _ = runtime.block_on(stop_rx);
    })?;
    Ok(((stop_tx, thread), handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// triedb's counters move by what happened between two readings, and
    /// its sizes are the latest, in the Prometheus text `/metrics` serves.
    #[test]
    fn triedb_figures_reach_metrics() {
        let metrics = Metrics::new();
        let trie = TrieMetrics::default();
        trie.register(&metrics);
        let first = wake_triedb::Stats { device_reads: 10, live_bytes: 100, ..Default::default() };
        let second = wake_triedb::Stats {
            device_reads: 25,
            nodes_compacted: 7,
            stale_evicted: 3,
            live_bytes: 90,
            file_bytes: 4096,
            ..first
        };
        trie.update(&Default::default(), &first);
        trie.update(&first, &second);
        let text = metrics.encode();
        for line in [
            "wake_triedb_device_reads_total 25",
            "wake_triedb_nodes_compacted_total 7",
            "wake_triedb_cache_stale_evicted_total 3",
            "wake_triedb_live_bytes 90",
            "wake_triedb_file_bytes 4096",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}
