//! The optimistic parallel executor: bit-identical to [`execute_block`],
//! faster when a block's transactions do not depend on each other.
//!
//! # How it works
//! Worker threads claim transactions in block order and run them
//! *speculatively*: over the state the committed transactions have left
//! (the block's [`BlockState`], shared behind a read-write lock) on top of
//! the pre-state, while the transactions between are still running. Each
//! speculative run records everything it read (accounts, slots, the
//! EIP-7610 storage question) with the value it saw.
//!
//! Transactions are committed strictly in order, by whichever worker holds
//! the commit lock. At its turn a transaction's recorded reads are checked
//! against the state the transactions before it have left. If every read
//! still holds, the run is what a serial executor would have done (revm is
//! deterministic in what it reads), so its writes are committed as they
//! are. If one read changed, the transaction runs again at its turn, over
//! the exact state, and that run is committed. A transaction whose turn has
//! come when it is claimed runs exactly at once. So every transaction runs
//! at most twice, and the committed result is always the serial one.
//!
//! # Design decisions
//! * **Read-set validation in order** (Monad-style), not Block-STM's
//!   multi-version memory: one overlay, no per-location version lists, and
//!   validation is a lookup per read. Checking a read needs no I/O: a
//!   location the block has not written still has the pre-state value the
//!   run saw. Only the EIP-7610 storage question is recomputed.
//! * **Fee recipient deferred:** a speculative run does not credit the fee
//!   recipient (its [`revm`] handler, `DeferredFee`, records the fee
//!   instead); the fee is credited at commit, straight into the overlay
//!   (with revm's touch rules: an account the credit leaves empty is
//!   removed). So paying fees does not make every transaction depend on
//!   the one before. A transaction that reads the fee recipient itself
//!   (sender, recipient, `BALANCE`) sees a stale balance, fails validation
//!   and runs again.
//! * **Reads skip the overlay's lock** unless a one-hash Bloom filter of
//!   the locations committed so far says the overlay may hold them, so two
//!   workers reading do not pass the lock's cache line back and forth on
//!   every `SLOAD`. The filter only steers speculative reads; runs at their
//!   turn and validation always see every committed write (see
//!   [`WrittenFilter`]).
//! * **Commit path kept short:** a speculative run builds its receipt (logs
//!   and their bloom, most of a receipt's hashing) before its turn; the
//!   commit fills in the cumulative gas.
//! * **Chain detection:** when 6 of the last 8 validations fail, workers
//!   stop running ahead for the next [`IN_ORDER_SPAN`] transactions: one
//!   worker at a time runs the next transaction exactly. When it fires
//!   again right after a span, the span doubles (up to
//!   [`IN_ORDER_SPAN_MAX`]): a long chain wastes a window of runs per
//!   doubling, not one per 64 transactions. A fully dependent block then
//!   costs one serial run plus the overlay's locking, not two.
//! * **Serial fallback:** blocks before Byzantium (their receipts need a
//!   state root per transaction), blocks of one transaction, and runs with
//!   one thread and no runs from discovery go to the serial executor (with
//!   discovery's runs, one thread validates and commits them: the block is
//!   not executed twice). A transaction whose speculative
//!   run self-destructed an account is always run again at its turn, so no
//!   speculative self-destruct or redeploy is ever trusted.
//! * **Shared read cache:** pre-state reads of speculative runs that had to
//!   go to the device are cached for the whole block, so a transaction that
//!   runs again reads nothing from the device twice: the first, optimistic
//!   run is its prefetch. What the pre-state holds in memory
//!   ([`PreState::resident_account`]) is read from it directly: taking a
//!   shard's lock twice and inserting on every read cost more than the walk
//!   it saved (`par_profile transfers parallel 200 nopf`, best 5.33–5.81 →
//!   4.95–5.17 ms; ERC-20 13.07–13.75 → 12.15–12.57 ms).
//! * **Discovery's runs are speculative runs:** the prefetch's discovery
//!   ([`crate::Prefetched::discover`]) runs every transaction over the
//!   pre-state until nothing it reads is missing. That last run is what
//!   this executor would make first, so it is made there, with the same
//!   view, handler and recording ([`SpeculativeRuns`]), and handed over
//!   through [`PreState::take_speculative_runs`]; a conflict-free block is
//!   then executed once, on all threads, and only validated and committed
//!   here. Runs are tied to their block (header hash, each transaction's
//!   hash) and taken once.
//! * The calling thread is one worker; the others are its persistent
//!   helpers ([`crate::workers`]), not threads spawned for the block (a
//!   block's fresh threads faulted in fresh allocator pages: the
//!   discovery of a 2,000-transfer block took 5.7 ms that way, 1.8–2.5 ms
//!   on helpers). The receipts root's leaves are hashed on the same number
//!   of threads once every transaction has committed (most of the root's
//!   work; the serial executor hashes them on one), and the calling thread
//!   builds the state diff first while the helpers start on them: the two
//!   are the block's tail, and a 2,000-transfer block's tail went from
//!   1.70–1.77 to 1.46–1.66 ms (`par_profile transfers parallel 300 nopf`).

use crate::eip7610::CreateCollisionGuard;
use crate::error::{BlockError, StateError};
use crate::executor::{
    BlockEnvs, BlockOutcome, apply_block_rewards, beacon_root_changes, envelope, evm_error,
    execute_block, outcome_with, receipt, receipt_with_bloom,
};
use crate::spec::ChainSpec;
use crate::state::{BlockState, CollisionState, PreState, to_revm, to_triedb};
use crate::tx::{BlockTx, tx_env};
use alloy_consensus::{Block, Eip658Value, ReceiptEnvelope, ReceiptWithBloom, Typed2718};
use alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
use alloy_primitives::{Address, B256, U256, map::HashMap};
use parking_lot::{Mutex, RwLock};
use revm::bytecode::Bytecode;
use revm::context::result::{EVMError, ExecutionResult, HaltReason};
use revm::context::{Block as _, Cfg, CfgEnv, ContextTr, JournalTr, Transaction as _};
use revm::context_interface::ContextSetters;
use revm::database::Database;
use revm::handler::{
    EthFrame, EvmTr, EvmTrError, FrameResult, FrameTr, Handler, MainnetContext, MainnetEvm,
};
use revm::inspector::{InspectorEvmTr, InspectorHandler};
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::interpreter_action::FrameInit;
use revm::primitives::hardfork::SpecId;
use revm::state::{AccountInfo as RevmAccountInfo, EvmState};
use revm::{Context, ExecuteEvm, InspectEvm, Inspector, MainBuilder, MainContext, SystemCallEvm};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use wake_triedb::{AccountInfo, KECCAK_EMPTY};

/// Transactions run in order, one at a time, after the chain detector
/// fires; doubled each time it fires again right after a span (up to
/// [`IN_ORDER_SPAN_MAX`]), so a long chain pays for a few detections, not
/// one per span.
pub const IN_ORDER_SPAN: usize = 64;

/// Longest in-order span.
pub const IN_ORDER_SPAN_MAX: usize = 4096;

/// A detection this close after a span ends continues the chain.
const CHAIN_CONTINUES_WITHIN: usize = 16;

/// Failed validations among the last 8 that fire the chain detector.
const CHAIN_DETECT_FAILURES: u32 = 6;

/// How far ahead of the commit point workers run, per worker.
const LOOKAHEAD_PER_THREAD: usize = 4;

/// Shards of the shared pre-state read cache.
const CACHE_SHARDS: usize = 16;

/// Bits of the written-locations filter per transaction of the block.
const FILTER_BITS_PER_TX: usize = 64;

/// Room for the reads of a typical transaction, so recording one rarely
/// grows its log.
const READS_CAPACITY: usize = 32;

/// Why a block ran on the serial executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerialReason {
    /// One thread was asked for.
    OneThread,
    /// Fewer than two transactions: nothing to overlap.
    FewTransactions,
    /// Before Byzantium, receipts carry a state root per transaction.
    PreByzantium,
}

/// What the parallel executor did with one block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParallelStats {
    /// Worker threads, the calling thread included.
    pub threads: usize,
    /// Why the block ran serially, if it did.
    pub serial: Option<SerialReason>,
    /// Transactions run ahead of their turn.
    pub speculative: usize,
    /// Speculative runs whose reads held at their turn, committed as run.
    pub validated: usize,
    /// Transactions run at their turn over the exact state: speculative
    /// runs that failed validation, plus transactions claimed at their turn.
    pub exact: usize,
    /// Speculative runs that failed validation (or the run itself failed).
    pub aborted: usize,
    /// Times the chain detector switched to in-order execution.
    pub chain_detected: usize,
    /// Speculative runs taken from the prefetch's discovery
    /// ([`crate::Prefetched::discover`]) instead of run here; they count
    /// in `speculative` too.
    pub discovered: usize,
}

/// How the parallel executor runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParallelConfig {
    /// Worker threads, the calling thread included.
    pub threads: usize,
    /// Run every transaction speculatively first, even one claimed at its
    /// turn, and never fall back to the serial executor for lack of
    /// threads or transactions. Slower; for tests, so that deferred fees
    /// and validation are exercised on every transaction of every block.
    pub always_speculate: bool,
}

impl ParallelConfig {
    pub fn new(threads: usize) -> Self {
        ParallelConfig { threads, always_speculate: false }
    }
}

/// Executes `block` like [`execute_block`], with transactions run
/// optimistically on `threads` threads (the calling thread included). The
/// outcome, and the error of an invalid block, are the serial executor's,
/// bit for bit. `state` is read from all threads at once.
pub fn execute_block_parallel<D>(
    chain: &ChainSpec,
    block: &Block<BlockTx>,
    senders: &[Address],
    state: D,
    threads: usize,
) -> Result<(BlockOutcome, ParallelStats), BlockError>
where
    D: PreState + Sync,
{
    execute_block_parallel_with(chain, block, senders, state, ParallelConfig::new(threads))
}

/// [`execute_block_parallel`] with every knob.
pub fn execute_block_parallel_with<D>(
    chain: &ChainSpec,
    block: &Block<BlockTx>,
    senders: &[Address],
    state: D,
    config: ParallelConfig,
) -> Result<(BlockOutcome, ParallelStats), BlockError>
where
    D: PreState + Sync,
{
    let header = &block.header;
    let envs = BlockEnvs::new(chain, header);
    let always = config.always_speculate;
    // Discovery's runs are taken first: with them, one thread validates and
    // commits them instead of executing the block again.
    let pre_byzantium = !envs.spec.is_enabled_in(SpecId::BYZANTIUM);
    let runs = match pre_byzantium {
        true => None,
        false => state.take_speculative_runs().map(|runs| runs.for_block(block)),
    };
    let has_runs = runs.as_ref().is_some_and(|runs| runs.iter().any(Option::is_some));
    let serial = if config.threads <= 1 && !always && !has_runs {
        Some(SerialReason::OneThread)
    } else if block.body.transactions.len() < 2 && !always {
        Some(SerialReason::FewTransactions)
    } else if pre_byzantium {
        Some(SerialReason::PreByzantium)
    } else {
        None
    };
    if let Some(reason) = serial {
        let outcome = execute_block(chain, block, senders, state)?;
        return Ok((
            outcome,
            ParallelStats { threads: 1, serial: Some(reason), ..Default::default() },
        ));
    }
    if !crate::spec_supported(envs.spec) {
        return Err(BlockError::UnsupportedSpec(envs.spec));
    }
    assert_eq!(senders.len(), block.body.transactions.len(), "one sender per transaction");
    let txs = block.body.transactions.len();
    let threads = config.threads.clamp(1, txs.max(1));

    let shared = Shared {
        base: &state,
        committed: RwLock::new(BlockState::new(&state)),
        written: WrittenFilter::new(txs),
        cache: ReadCache::new(),
        beneficiary: header.beneficiary,
    };
    let mut main_evm = worker_evm(&shared, &envs, envs.cfg.clone());

    // EIP-4788: store the parent beacon block root before any transaction.
    if envs.spec.is_enabled_in(SpecId::CANCUN)
        && let Some(root) = header.parent_beacon_block_root
    {
        let outcome = main_evm.system_call_one(BEACON_ROOTS_ADDRESS, root.0.into());
        let changes = main_evm.finalize();
        let changes = beacon_root_changes(outcome.map(drop), changes, header.beneficiary)?;
        shared.commit_tx(changes);
    }

    let mut discovered = runs.unwrap_or_default();
    discovered.resize_with(txs, || None);
    let run = Run {
        chain_id: chain.chain_id,
        block,
        senders,
        envs: &envs,
        shared: &shared,
        slots: discovered.into_iter().map(Slot::new).collect(),
        next: AtomicUsize::new(0),
        committed: AtomicUsize::new(0),
        window: AtomicUsize::new(threads * LOOKAHEAD_PER_THREAD),
        full_window: threads * LOOKAHEAD_PER_THREAD,
        stop: AtomicBool::new(txs == 0),
        always_speculate: always,
        commit: Mutex::new(Committer::new(txs)),
    };
    crate::workers::join_with(
        threads - 1,
        || run.work(&mut main_evm),
        |_| run.work(&mut worker_evm(&shared, &envs, envs.cfg.clone())),
    );
    drop(main_evm);

    let slots = run.slots;
    let committer = run.commit.into_inner();
    if let Some(error) = committer.error {
        return Err(error);
    }
    let mut stats = committer.stats;
    stats.threads = threads;
    stats.discovered = slots.iter().filter(|slot| slot.discovered).count();
    tracing::debug!(number = header.number, txs, ?stats, "parallel block executed");
    debug_assert_eq!(committer.receipts.len(), txs);
    let mut db = shared.committed.into_inner();
    apply_block_rewards(&mut db, block, envs.spec)?;
    let outcome = outcome_with(
        committer.receipts,
        committer.gas_used,
        committer.blob_gas_used,
        threads,
        || db.into_updates(),
    );
    Ok((outcome, stats))
}

/// One block's parallel run: the scheduler state every worker shares.
struct Run<'r, 'a, D> {
    chain_id: u64,
    block: &'r Block<BlockTx>,
    senders: &'r [Address],
    envs: &'r BlockEnvs,
    shared: &'r Shared<'a, D>,
    /// Speculative results, by transaction index.
    slots: Vec<Slot>,
    /// The next transaction to hand out.
    next: AtomicUsize,
    /// Transactions committed (the next one to commit).
    committed: AtomicUsize,
    /// How far past `committed` a transaction may be handed out.
    window: AtomicUsize,
    full_window: usize,
    /// Set when the block is done or rejected.
    stop: AtomicBool,
    /// See [`ParallelConfig::always_speculate`].
    always_speculate: bool,
    commit: Mutex<Committer>,
}

/// A speculative result waiting for its turn.
struct Slot {
    ready: AtomicBool,
    run: Mutex<Option<Speculated>>,
    /// The run came from discovery: the transaction is never handed out to
    /// run ahead, only committed (or run again at its turn).
    discovered: bool,
}

impl Slot {
    fn new(discovered: Option<Speculated>) -> Slot {
        Slot {
            ready: AtomicBool::new(discovered.is_some()),
            discovered: discovered.is_some(),
            run: Mutex::new(discovered),
        }
    }
}

/// Speculative runs of a block's transactions, each over the block's
/// pre-state alone, made by the prefetch's discovery
/// ([`crate::Prefetched::discover`]) and handed to the parallel executor
/// through [`PreState::take_speculative_runs`]. The executor validates
/// each at its turn like a run of its own, so a conflict-free block is
/// executed once, during the prefetch, and then only committed.
///
/// A run is kept only if it read nothing discovery had not loaded, its
/// transaction was valid, and its nonce is the sender's (discovery runs
/// without the nonce check, so that a sender's later transactions still
/// reveal their reads; with the nonce equal, the check would have passed
/// and the run is the one the executor would make).
pub struct SpeculativeRuns {
    /// The header the runs saw (their block environment).
    header: B256,
    /// By transaction index, with the transaction's hash.
    runs: Vec<Option<(B256, Speculated)>>,
}

/// What discovery runs: `block`'s transactions sent by `senders`, on
/// `threads` threads, in the block's environment without the nonce check,
/// so that each run sees the pre-state and a sender's later transactions
/// still run (and reveal their reads).
pub(crate) struct DiscoveryEnv<'b> {
    envs: BlockEnvs,
    cfg: CfgEnv,
    pub(crate) block: &'b Block<BlockTx>,
    pub(crate) senders: &'b [Address],
    pub(crate) threads: usize,
}

impl<'b> DiscoveryEnv<'b> {
    pub(crate) fn new(
        chain: &ChainSpec,
        block: &'b Block<BlockTx>,
        senders: &'b [Address],
        threads: usize,
    ) -> Self {
        let envs = BlockEnvs::new(chain, &block.header);
        let mut cfg = envs.cfg.clone();
        cfg.disable_nonce_check = true;
        DiscoveryEnv { envs, cfg, block, senders, threads }
    }
}

/// What one discovery round left to do ([`SpeculativeRuns::discover_round`]).
#[derive(Default)]
pub(crate) struct Round {
    /// Transactions whose run read something not loaded: to run again once
    /// it is.
    pub again: Vec<usize>,
    pub accounts: BTreeSet<Address>,
    pub slots: BTreeSet<(Address, U256)>,
    /// Code the runs loaded.
    pub codes: HashMap<B256, Bytecode>,
    /// Pre-state slots the final runs read (where the view held them
    /// without I/O), so that later readers find them loaded.
    pub slots_read: Vec<((Address, U256), U256)>,
}

impl SpeculativeRuns {
    /// No runs yet, for `block`.
    pub(crate) fn new(block: &Block<BlockTx>) -> Self {
        SpeculativeRuns {
            header: block.header.hash_slow(),
            runs: (0..block.body.transactions.len()).map(|_| None).collect(),
        }
    }

    /// One discovery round: runs transactions `todo` of `block`, each over
    /// `base` alone (the pre-state: only what it holds in memory is read),
    /// on `threads` threads, in `env`. A run that read only what is loaded is final: kept if it can
    /// stand for the executor's own run (see [`SpeculativeRuns`]), else
    /// dropped and left to the executor. One that read something missing is
    /// to run again; what it missed is returned for loading.
    pub(crate) fn discover_round<D: PreState + Sync>(
        &mut self,
        env: &DiscoveryEnv<'_>,
        base: &D,
        todo: &[usize],
        guess: Guess,
    ) -> Result<Round, StateError> {
        if todo.is_empty() {
            return Ok(Round::default());
        }
        let (block, senders, threads) = (env.block, env.senders, env.threads);
        let shared = Shared {
            base,
            committed: RwLock::new(BlockState::new(base)),
            written: WrittenFilter::new(0),
            cache: ReadCache::new(),
            beneficiary: block.header.beneficiary,
        };
        let chunk = todo.len().div_ceil(threads.clamp(1, todo.len()));
        let txs = &block.body.transactions;
        // By transaction: `Err(())` to run again, else the final run if kept.
        type Part =
            (Vec<(usize, Result<Option<Speculated>, ()>)>, Missing, Vec<((Address, U256), U256)>);
        let view = &shared;
        let parts: Vec<Result<Part, StateError>> =
            crate::workers::map(todo.chunks(chunk).collect(), |part: &[usize]| {
                let mut evm = worker_evm(view, &env.envs, env.cfg.clone());
                let mut found = Missing::default();
                let mut slots_read = Vec::new();
                let mut done = Vec::with_capacity(part.len());
                for &index in part {
                    let view = &mut evm.ctx.journaled_state.database;
                    view.discovery = Some(Missing::default());
                    view.guessed_sender = (guess == Guess::Senders).then_some(senders[index]);
                    let mut run = speculate(&mut evm, &txs[index], senders[index]);
                    let view = &mut evm.ctx.journaled_state.database;
                    let missing = view.discovery.take().unwrap_or_default();
                    if let Some(e) = missing.error {
                        return Err(e);
                    }
                    if !missing.is_empty() {
                        found.accounts.extend(missing.accounts);
                        found.slots.extend(missing.slots);
                        done.push((index, Err(())));
                        continue;
                    }
                    // Nothing was missing: every read is the pre-state's.
                    slots_read.extend(run.reads.iter().filter_map(|read| match *read {
                        Read::Storage(address, index, value) => Some(((address, index), value)),
                        _ => None,
                    }));
                    let keep = run.result.is_some()
                        && sender_nonce_read(&run.reads, senders[index])
                            == Some(alloy_consensus::Transaction::nonce(&txs[index]));
                    if keep {
                        run.build_receipt();
                    }
                    done.push((index, Ok(keep.then_some(run))));
                }
                Ok((done, found, slots_read))
            });
        let mut round = Round::default();
        for part in parts {
            let (done, found, slots_read) = part?;
            round.slots_read.extend(slots_read);
            round.accounts.extend(found.accounts);
            round.slots.extend(found.slots);
            for (index, run) in done {
                match run {
                    Err(()) => round.again.push(index),
                    Ok(run) => self.runs[index] = run.map(|run| (*txs[index].tx_hash(), run)),
                }
            }
        }
        round.again.sort_unstable();
        round.codes = shared.cache.code.into_inner();
        Ok(round)
    }

    /// Runs kept.
    pub fn len(&self) -> usize {
        self.runs.iter().filter(|run| run.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The runs by transaction index, if they were made for `block`: the
    /// same header and, run by run, the same transaction.
    fn for_block(self, block: &Block<BlockTx>) -> Vec<Option<Speculated>> {
        let txs = &block.body.transactions;
        if self.runs.len() != txs.len() || self.header != block.header.hash_slow() {
            tracing::debug!(number = block.header.number, "speculative runs of another block");
            return Vec::new();
        }
        self.runs
            .into_iter()
            .zip(txs)
            .map(|(run, tx)| run.filter(|(hash, _)| hash == tx.tx_hash()).map(|(_, run)| run))
            .collect()
    }
}

struct Speculated {
    /// `None`: the run failed (invalid at that state, or a read failed);
    /// only a run at its turn can say whether the block is invalid.
    result: Option<ExecutionResult>,
    /// The run's receipt, its bloom hashed off the commit path; the
    /// cumulative gas is filled in at commit.
    receipt: Option<ReceiptWithBloom>,
    state: EvmState,
    reads: Vec<Read>,
    /// The fee the recipient is owed (credited at commit).
    fee: U256,
}

impl Speculated {
    /// Builds the receipt (all but the cumulative gas), off the commit path.
    fn build_receipt(&mut self) {
        self.receipt = self
            .result
            .as_ref()
            .map(|result| receipt_with_bloom(Eip658Value::Eip658(result.is_success()), result, 0));
    }
}

/// Runs `tx` over what `evm`'s view shows, recording its reads, with the
/// fee recipient's credit deferred; the receipt is left to
/// [`Speculated::build_receipt`].
fn speculate<D: PreState + Sync>(
    evm: &mut WorkerEvm<'_, '_, D>,
    tx: &BlockTx,
    sender: Address,
) -> Speculated {
    let db = &mut evm.ctx.journaled_state.database;
    db.reads.clear();
    db.recording = true;
    evm.ctx.set_tx(tx_env(tx, sender));
    let mut handler: DeferredFee<_, EVMError<StateError>, EthFrame<EthInterpreter>> =
        DeferredFee::default();
    let result = handler.inspect_run(evm).ok();
    let state = evm.finalize();
    let db = &mut evm.ctx.journaled_state.database;
    db.recording = false;
    let reads = std::mem::replace(&mut db.reads, Vec::with_capacity(READS_CAPACITY));
    Speculated { result, receipt: None, state, reads, fee: handler.fee.get() }
}

/// The commit side, held by one worker at a time.
struct Committer {
    receipts: Vec<ReceiptEnvelope>,
    gas_used: u64,
    blob_gas_used: u64,
    /// Validation outcomes, newest in bit 0 (1 = failed).
    history: u8,
    /// Run in order until this many transactions are committed.
    in_order_until: usize,
    /// Length of the last in-order span.
    span: usize,
    error: Option<BlockError>,
    stats: ParallelStats,
}

impl Committer {
    fn new(txs: usize) -> Self {
        Committer {
            receipts: Vec::with_capacity(txs),
            gas_used: 0,
            blob_gas_used: 0,
            history: 0,
            in_order_until: 0,
            span: 0,
            error: None,
            stats: ParallelStats::default(),
        }
    }
}

enum Claim {
    /// Run transaction `index`; `exact`: every transaction before it is
    /// committed, so run it at its turn.
    Tx { index: usize, exact: bool },
    /// Nothing may be handed out now.
    Wait,
}

type WorkerEvm<'s, 'a, D> = MainnetEvm<MainnetContext<View<'s, 'a, D>>, CreateCollisionGuard>;

fn worker_evm<'s, 'a, D: PreState + Sync>(
    shared: &'s Shared<'a, D>,
    envs: &BlockEnvs,
    cfg: CfgEnv,
) -> WorkerEvm<'s, 'a, D> {
    Context::mainnet()
        .with_db(View {
            shared,
            reads: Vec::with_capacity(READS_CAPACITY),
            recording: false,
            codes: HashMap::default(),
            discovery: None,
            guessed_sender: None,
        })
        .with_block(envs.block.clone())
        .with_cfg(cfg)
        .build_mainnet_with_inspector(CreateCollisionGuard)
}

impl<'a, D: PreState + Sync> Run<'_, 'a, D> {
    /// One worker's loop: claim, run, commit what is ready, until the block
    /// is done or rejected. A panic stops every worker before it goes on
    /// unwinding (to the caller, as in the serial executor), so the others
    /// never wait for a transaction that will not come.
    fn work<'s>(&self, evm: &mut WorkerEvm<'s, 'a, D>) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work_on(evm)));
        if let Err(panic) = outcome {
            self.stop.store(true, Ordering::Release);
            std::panic::resume_unwind(panic);
        }
    }

    fn work_on<'s>(&self, evm: &mut WorkerEvm<'s, 'a, D>) {
        let mut idle = 0u32;
        while !self.stop.load(Ordering::Acquire) {
            match self.claim() {
                Claim::Tx { index, exact: true } => {
                    let mut committer = self.commit.lock();
                    self.run_at_turn(&mut committer, evm, index);
                    self.drain(&mut committer, evm);
                    drop(committer);
                    self.try_drain(evm);
                    idle = 0;
                }
                Claim::Tx { index, exact: false } => {
                    let run = self.speculate(evm, index);
                    *self.slots[index].run.lock() = Some(run);
                    self.slots[index].ready.store(true, Ordering::SeqCst);
                    self.try_drain(evm);
                    idle = 0;
                }
                Claim::Wait => {
                    if self.try_drain(evm) {
                        idle = 0;
                    } else {
                        backoff(&mut idle);
                    }
                }
            }
        }
    }

    fn claim(&self) -> Claim {
        loop {
            let index = self.next.load(Ordering::Acquire);
            if index >= self.slots.len() {
                return Claim::Wait;
            }
            let committed = self.committed.load(Ordering::Acquire);
            if index >= committed + self.window.load(Ordering::Acquire) {
                return Claim::Wait;
            }
            if self
                .next
                .compare_exchange(index, index + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                if self.slots[index].discovered {
                    // Its run is in the slot: a drain commits it.
                    continue;
                }
                // `committed` only grows and cannot pass an unclaimed index.
                return Claim::Tx { index, exact: index == committed && !self.always_speculate };
            }
        }
    }

    /// Runs transaction `index` ahead of its turn, recording its reads.
    fn speculate<'s>(&self, evm: &mut WorkerEvm<'s, 'a, D>, index: usize) -> Speculated {
        let mut run = speculate(evm, &self.block.body.transactions[index], self.senders[index]);
        run.build_receipt();
        run
    }

    /// Commits, in order, every transaction whose speculative run is ready.
    fn drain<'s>(&self, committer: &mut Committer, evm: &mut WorkerEvm<'s, 'a, D>) {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let index = self.committed.load(Ordering::Acquire);
            if index == self.slots.len() {
                self.stop.store(true, Ordering::Release);
                return;
            }
            if !self.slots[index].ready.load(Ordering::SeqCst) {
                return;
            }
            let Some(run) = self.slots[index].run.lock().take() else { return };
            self.commit_speculated(committer, evm, index, run);
        }
    }

    /// [`Run::drain`] if the commit lock is free; true if it committed
    /// anything. Checks again after letting go of the lock, so a result
    /// stored while the lock was held is never left waiting.
    fn try_drain<'s>(&self, evm: &mut WorkerEvm<'s, 'a, D>) -> bool {
        let mut progressed = false;
        loop {
            let Some(mut committer) = self.commit.try_lock() else { return progressed };
            let before = self.committed.load(Ordering::Acquire);
            self.drain(&mut committer, evm);
            progressed |= self.committed.load(Ordering::Acquire) > before;
            drop(committer);
            let next = self.committed.load(Ordering::Acquire);
            if self.stop.load(Ordering::Acquire)
                || next >= self.slots.len()
                || !self.slots[next].ready.load(Ordering::SeqCst)
            {
                return progressed;
            }
        }
    }

    /// Commits speculative run `run` of transaction `index` if its reads
    /// hold, else runs the transaction again at its turn.
    fn commit_speculated<'s>(
        &self,
        committer: &mut Committer,
        evm: &mut WorkerEvm<'s, 'a, D>,
        index: usize,
        run: Speculated,
    ) {
        committer.stats.speculative += 1;
        let tx = &self.block.body.transactions[index];
        let tx_blob_gas =
            match self.envs.precheck(tx, index, committer.gas_used, committer.blob_gas_used) {
                Ok(blob_gas) => blob_gas,
                Err(e) => return self.reject(committer, e),
            };
        let trusted =
            run.result.is_some() && !run.state.values().any(|account| account.is_selfdestructed());
        let holds = match trusted.then(|| self.shared.reads_hold(&run.reads)) {
            Some(Ok(holds)) => holds,
            Some(Err(e)) => return self.reject(committer, BlockError::State(e)),
            None => false,
        };
        self.detect_chain(committer, !holds);
        if !holds {
            committer.stats.aborted += 1;
            return self.run_at_turn(committer, evm, index);
        }
        let Some(result) = run.result else { unreachable!("trusted runs have a result") };
        if let Err(e) = self.shared.commit_speculated(run.state, run.fee) {
            return self.reject(committer, BlockError::State(e));
        }
        committer.stats.validated += 1;
        self.record(committer, tx, &result, run.receipt, tx_blob_gas);
    }

    /// Runs transaction `index` at its turn (every transaction before it is
    /// committed) and commits it: the serial executor's step, verbatim.
    fn run_at_turn<'s>(
        &self,
        committer: &mut Committer,
        evm: &mut WorkerEvm<'s, 'a, D>,
        index: usize,
    ) {
        debug_assert_eq!(self.committed.load(Ordering::Acquire), index);
        if self.stop.load(Ordering::Acquire) {
            return;
        }
        committer.stats.exact += 1;
        let tx = &self.block.body.transactions[index];
        let tx_blob_gas =
            match self.envs.precheck(tx, index, committer.gas_used, committer.blob_gas_used) {
                Ok(blob_gas) => blob_gas,
                Err(e) => return self.reject(committer, e),
            };
        let outcome = evm.inspect_tx(tx_env(tx, self.senders[index]));
        match outcome {
            Ok(result) => {
                self.shared.commit_tx(result.state);
                self.record(committer, tx, &result.result, None, tx_blob_gas);
            }
            Err(e) => self.reject(committer, evm_error(e, self.chain_id, tx, index)),
        }
    }

    /// Books a committed transaction's receipt (`built`: the speculative
    /// run's, all but its cumulative gas) and moves the commit point.
    fn record(
        &self,
        committer: &mut Committer,
        tx: &BlockTx,
        result: &ExecutionResult,
        built: Option<ReceiptWithBloom>,
        tx_blob_gas: u64,
    ) {
        committer.gas_used += result.tx_gas_used();
        committer.blob_gas_used += tx_blob_gas;
        let gas_used = committer.gas_used;
        committer.receipts.push(match built {
            Some(mut built) => {
                built.receipt.cumulative_gas_used = gas_used;
                envelope(tx.ty(), built)
            }
            None => {
                let status = Eip658Value::Eip658(result.is_success());
                receipt(tx.ty(), status, result, gas_used)
            }
        });
        let committed = self.committed.fetch_add(1, Ordering::AcqRel) + 1;
        if committed == committer.in_order_until {
            self.window.store(self.full_window, Ordering::Release);
        }
        if committed == self.slots.len() {
            self.stop.store(true, Ordering::Release);
        }
    }

    /// The block is invalid (or our storage failed): stop every worker.
    fn reject(&self, committer: &mut Committer, error: BlockError) {
        committer.error = Some(error);
        self.stop.store(true, Ordering::Release);
    }

    /// Feeds one validation outcome to the chain detector.
    fn detect_chain(&self, committer: &mut Committer, failed: bool) {
        committer.history = (committer.history << 1) | u8::from(failed);
        if committer.history.count_ones() >= CHAIN_DETECT_FAILURES {
            committer.history = 0;
            committer.stats.chain_detected += 1;
            let committed = self.committed.load(Ordering::Acquire);
            committer.span = next_span(committer.span, committer.in_order_until, committed);
            committer.in_order_until = committed + committer.span;
            self.window.store(1, Ordering::Release);
        }
    }
}

/// The in-order span after a detection at `committed`: twice the last one
/// if the last span ended just before (the chain goes on), else the first.
fn next_span(last: usize, last_end: usize, committed: usize) -> usize {
    if last > 0 && committed <= last_end + CHAIN_CONTINUES_WITHIN {
        (last * 2).min(IN_ORDER_SPAN_MAX)
    } else {
        IN_ORDER_SPAN
    }
}

/// Waits a little longer each time nothing could be done.
fn backoff(idle: &mut u32) {
    *idle = idle.saturating_add(1);
    if *idle < 64 {
        std::hint::spin_loop();
    } else if *idle < 256 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(20));
    }
}

/// One read of a speculative run, with the value it saw.
#[derive(Clone, Copy, Debug)]
enum Read {
    Account(Address, Option<AccountInfo>),
    Storage(Address, U256, U256),
    HasStorage(Address, bool),
}

/// What all workers share: the pre-state, the committed overlay, and a
/// cache of pre-state reads.
struct Shared<'a, D> {
    base: &'a D,
    committed: RwLock<BlockState<&'a D>>,
    /// What `committed` may hold, so most reads skip its lock.
    written: WrittenFilter,
    cache: ReadCache,
    beneficiary: Address,
}

impl<D: PreState + Sync> Shared<'_, D> {
    /// Commits a transaction's changes to the overlay, marking every
    /// location they can touch in the filter first.
    fn commit_tx(&self, state: EvmState) {
        self.mark_written(&state);
        self.committed.write().commit_tx(state);
    }

    /// Sets the filter's bits of every location `state` can touch.
    fn mark_written(&self, state: &EvmState) {
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            self.written.insert(WrittenFilter::account(address));
            if account.is_selfdestructed() || account.is_created() || account.is_empty() {
                self.written.insert(WrittenFilter::wipe(address));
            }
            for index in account.storage.keys() {
                self.written.insert(WrittenFilter::slot(address, index));
            }
        }
    }

    /// The account as the committed transactions have left it, if they
    /// wrote it (see [`BlockState::peek_account`]).
    fn peek_account(&self, address: Address) -> Option<Option<AccountInfo>> {
        if !self.written.contains(WrittenFilter::account(&address)) {
            return None;
        }
        self.committed.read().peek_account(address)
    }

    /// The slot as the committed transactions have left it, if they wrote
    /// it or wiped its account's storage.
    fn peek_storage(&self, address: Address, index: U256) -> Option<U256> {
        if !self.written.contains(WrittenFilter::slot(&address, &index))
            && !self.written.contains(WrittenFilter::wipe(&address))
        {
            return None;
        }
        self.committed.read().peek_storage(address, index)
    }

    fn base_account(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        if let Some(known) = self.base.resident_account(address) {
            return Ok(known.map(|account| account.info));
        }
        let shard = self.cache.shard(&address, 0);
        if let Some(known) = shard.lock().accounts.get(&address) {
            return Ok(*known);
        }
        let read = self.base.basic_ref(address)?.map(|info| to_triedb(&info));
        shard.lock().accounts.insert(address, read);
        Ok(read)
    }

    fn base_storage(&self, address: Address, index: U256) -> Result<U256, StateError> {
        if let Some(known) = self.base.resident_storage(address, index) {
            return Ok(known);
        }
        let shard = self.cache.shard(&address, index.byte(0));
        if let Some(known) = shard.lock().storage.get(&(address, index)) {
            return Ok(*known);
        }
        let read = self.base.storage_ref(address, index)?;
        shard.lock().storage.insert((address, index), read);
        Ok(read)
    }

    fn base_has_storage(&self, address: Address) -> Result<bool, StateError> {
        if let Some(known) = self.base.resident_account(address) {
            return Ok(known.is_some_and(|account| account.has_storage));
        }
        let shard = self.cache.shard(&address, 0);
        if let Some(known) = shard.lock().has_storage.get(&address) {
            return Ok(*known);
        }
        let read = self.base.has_storage_ref(address)?;
        shard.lock().has_storage.insert(address, read);
        Ok(read)
    }

    fn code(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        if let Some(code) = self.committed.read().peek_code(&code_hash) {
            return Ok(code);
        }
        if let Some(code) = self.cache.code.read().get(&code_hash) {
            return Ok(code.clone());
        }
        let code = self.base.code_by_hash_ref(code_hash)?;
        self.cache.code.write().insert(code_hash, code.clone());
        Ok(code)
    }

    /// Whether every read of a speculative run still holds in the committed
    /// state. A location the block has not written still holds the
    /// pre-state value the run read, so this needs no I/O (except for the
    /// storage question, which the block's writes do not always decide).
    fn reads_hold(&self, reads: &[Read]) -> Result<bool, StateError> {
        let committed = self.committed.read();
        for read in reads {
            let holds = match *read {
                Read::Account(address, seen) => {
                    committed.peek_account(address).is_none_or(|now| now == seen)
                }
                Read::Storage(address, index, seen) => {
                    committed.peek_storage(address, index).is_none_or(|now| now == seen)
                }
                Read::HasStorage(address, seen) => {
                    let now = match committed.peek_has_storage(address) {
                        Some(now) => now,
                        None => self.base_has_storage(address)?,
                    };
                    now == seen
                }
            };
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Commits a validated speculative run with its deferred fee, as
    /// revm's `reward_beneficiary` would have paid it at the end of the
    /// run: the recipient is touched and credited unless the sum
    /// overflows. When the run touched the recipient itself, the fee goes
    /// into its state before the commit; otherwise it is credited to the
    /// overlay directly (the same result, without adding an account to
    /// the run's state on the commit path).
    fn commit_speculated(&self, mut state: EvmState, fee: U256) -> Result<(), StateError> {
        let beneficiary = self.beneficiary;
        if let Some(account) = state.get_mut(&beneficiary) {
            account.mark_touch();
            if let Some(balance) = account.info.balance.checked_add(fee) {
                account.info.balance = balance;
            }
            self.commit_tx(state);
            return Ok(());
        }
        self.mark_written(&state);
        self.written.insert(WrittenFilter::account(&beneficiary));
        self.written.insert(WrittenFilter::wipe(&beneficiary));
        let mut committed = self.committed.write();
        committed.commit_tx(state);
        committed.credit_fee(beneficiary, fee)
    }
}

#[derive(Default)]
struct CacheShard {
    accounts: HashMap<Address, Option<AccountInfo>>,
    storage: HashMap<(Address, U256), U256>,
    has_storage: HashMap<Address, bool>,
}

/// The locations the block's committed transactions have written, as a
/// Bloom filter with one hash: a read whose bit is clear goes straight to
/// the pre-state, without touching the overlay's lock (whose every read
/// would otherwise move a cache line between cores).
///
/// Bits are set by the committer before the overlay is written, under the
/// commit lock, so a run at its turn (which holds that lock) never misses
/// a write. A speculative run may race with a commit and read the
/// pre-state where the overlay already holds a newer value; that is the
/// stale read validation exists to catch, so the filter cannot change a
/// committed result, only how often a speculative run must run again.
struct WrittenFilter {
    words: Box<[AtomicU64]>,
    /// Bits minus one (a power of two).
    mask: u64,
}

impl WrittenFilter {
    /// A filter for a block of `txs` transactions.
    fn new(txs: usize) -> Self {
        let bits = (txs.max(64) * FILTER_BITS_PER_TX).next_power_of_two();
        WrittenFilter {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: bits as u64 - 1,
        }
    }

    fn account(address: &Address) -> u64 {
        mix(address_word(address))
    }

    /// An account's storage as a whole (wiped, created, destroyed).
    fn wipe(address: &Address) -> u64 {
        mix(address_word(address) ^ 0x5bd1_e995_5bd1_e995)
    }

    fn slot(address: &Address, index: &U256) -> u64 {
        let [a, b, c, d] = *index.as_limbs();
        let index = a ^ b.rotate_left(17) ^ c.rotate_left(31) ^ d.rotate_left(47);
        mix(address_word(address) ^ mix(index))
    }

    fn insert(&self, key: u64) {
        let bit = key & self.mask;
        let word = &self.words[(bit / 64) as usize];
        let flag = 1u64 << (bit % 64);
        // A plain load first: most keys are set already, and a load keeps
        // the line shared where an RMW would take it from the other cores.
        if word.load(Ordering::Relaxed) & flag == 0 {
            word.fetch_or(flag, Ordering::Relaxed);
        }
    }

    fn contains(&self, key: u64) -> bool {
        let bit = key & self.mask;
        self.words[(bit / 64) as usize].load(Ordering::Relaxed) & (1u64 << (bit % 64)) != 0
    }
}

/// The nonce `reads` saw for `sender`'s account (zero if it was absent).
fn sender_nonce_read(reads: &[Read], sender: Address) -> Option<u64> {
    reads.iter().find_map(|read| match *read {
        Read::Account(address, info) if address == sender => {
            Some(info.map_or(0, |info| info.nonce))
        }
        _ => None,
    })
}

/// The first and last four bytes of an address as one word.
fn address_word(address: &Address) -> u64 {
    let b = &address.0.0;
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[16], b[17], b[18], b[19]])
}

/// splitmix64's finaliser, so that every bit of the key moves the
/// filter's bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Pre-state reads of the block so far, shared by the workers.
struct ReadCache {
    shards: Vec<Mutex<CacheShard>>,
    code: RwLock<HashMap<B256, Bytecode>>,
}

impl ReadCache {
    fn new() -> Self {
        ReadCache {
            shards: (0..CACHE_SHARDS).map(|_| Mutex::default()).collect(),
            code: RwLock::default(),
        }
    }

    fn shard(&self, address: &Address, salt: u8) -> &Mutex<CacheShard> {
        &self.shards[usize::from(address.0[19] ^ salt) % CACHE_SHARDS]
    }
}

/// A worker's view for revm: the committed overlay, then the pre-state
/// (through the shared cache; in discovery, only what it holds in memory).
/// While `recording`, every read is logged with the value it returned.
struct View<'s, 'a, D> {
    shared: &'s Shared<'a, D>,
    reads: Vec<Read>,
    recording: bool,
    /// Code this worker has loaded.
    codes: HashMap<B256, Bytecode>,
    /// Set for discovery runs: the pre-state is read only where it is
    /// resident, and what is not is noted here instead of read.
    discovery: Option<Missing>,
    /// In a discovery run, the sender to answer with [`SENDER_GUESS`]
    /// when it is not loaded (see [`Guess::Senders`]).
    guessed_sender: Option<Address>,
}

/// What a discovery run read that the prefetch has not loaded.
#[derive(Default)]
struct Missing {
    accounts: Vec<Address>,
    slots: Vec<(Address, U256)>,
    /// A code read that failed (our storage, not the block).
    error: Option<StateError>,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.slots.is_empty()
    }
}

/// What a discovery run reads for a slot the prefetch has not loaded: a
/// large balance rather than zero. Most reads in front of a transfer guard
/// it (`require(balance >= amount)`); read as zero, the run reverts there
/// and reveals the recipient's slot only in the next round, read as funds
/// it goes on and reveals both in one. Such a run is never kept, so the
/// guess decides only what is loaded, never a result.
const MISSING_SLOT_GUESS: U256 = U256::from_limbs([0, 0, 0, 1 << 32]);

/// What a guessing discovery run reads for its own sender when it is not
/// loaded: an account without code that can pay (2^224 wei; the nonce is
/// not checked in discovery). Read as absent, the sender could not pay
/// and the run would stop before the call that reveals the slots. Such a
/// run is never kept either.
const SENDER_GUESS: AccountInfo = AccountInfo {
    nonce: 0,
    balance: U256::from_limbs([0, 0, 0, 1 << 32]),
    code_hash: KECCAK_EMPTY,
};

/// How a discovery round answers an account it has not loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guess {
    /// As absent.
    Absent,
    /// A transaction's own sender as [`SENDER_GUESS`], others as absent: a
    /// round run while the senders are being read reveals the slots the
    /// calls touch.
    Senders,
}

impl<D: PreState + Sync> View<'_, '_, D> {
    /// The account in the pre-state: in discovery, what the pre-state holds
    /// in memory (else noted); otherwise through the shared read cache.
    fn base_account(&mut self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        let Some(missing) = &mut self.discovery else {
            return self.shared.base_account(address);
        };
        match self.shared.base.resident_account(address) {
            Some(known) => Ok(known.map(|account| account.info)),
            None => {
                missing.accounts.push(address);
                Ok((self.guessed_sender == Some(address)).then_some(SENDER_GUESS))
            }
        }
    }

    /// The slot in the pre-state; see [`View::base_account`].
    fn base_storage(&mut self, address: Address, index: U256) -> Result<U256, StateError> {
        let Some(missing) = &mut self.discovery else {
            return self.shared.base_storage(address, index);
        };
        match self.shared.base.resident_storage(address, index) {
            Some(known) => Ok(known),
            None => {
                missing.slots.push((address, index));
                Ok(MISSING_SLOT_GUESS)
            }
        }
    }
}

impl<D: PreState + Sync> Database for View<'_, '_, D> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<RevmAccountInfo>, StateError> {
        let written = self.shared.peek_account(address);
        let info = match written {
            Some(info) => info,
            None => self.base_account(address)?,
        };
        if self.recording {
            self.reads.push(Read::Account(address, info));
        }
        Ok(info.map(to_revm))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        if code_hash == wake_triedb::KECCAK_EMPTY || code_hash.is_zero() {
            return Ok(Bytecode::default());
        }
        // Code is named by its hash, so a worker may keep what it loaded.
        if let Some(code) = self.codes.get(&code_hash) {
            return Ok(code.clone());
        }
        let code = match self.shared.code(code_hash) {
            Ok(code) => code,
            Err(e) => {
                if let Some(missing) = &mut self.discovery {
                    missing.error.get_or_insert(e.clone());
                }
                return Err(e);
            }
        };
        self.codes.insert(code_hash, code.clone());
        Ok(code)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, StateError> {
        let written = self.shared.peek_storage(address, index);
        let value = match written {
            Some(value) => value,
            None => self.base_storage(address, index)?,
        };
        if self.recording {
            self.reads.push(Read::Storage(address, index, value));
        }
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        self.shared.base.block_hash_ref(number)
    }
}

impl<D: PreState + Sync> CollisionState for View<'_, '_, D> {
    fn has_storage(&mut self, address: Address) -> Result<bool, StateError> {
        let written = self.shared.committed.read().peek_has_storage(address);
        let known = match written {
            Some(known) => known,
            None => self.shared.base_has_storage(address)?,
        };
        if self.recording {
            self.reads.push(Read::HasStorage(address, known));
        }
        Ok(known)
    }
}

/// revm's mainnet handler, except that the fee recipient is not credited:
/// the fee is recorded and credited when the transaction commits.
struct DeferredFee<EVM, ERROR, FRAME> {
    fee: Cell<U256>,
    _types: PhantomData<(EVM, ERROR, FRAME)>,
}

impl<EVM, ERROR, FRAME> Default for DeferredFee<EVM, ERROR, FRAME> {
    fn default() -> Self {
        DeferredFee { fee: Cell::new(U256::ZERO), _types: PhantomData }
    }
}

impl<EVM, ERROR, FRAME> Handler for DeferredFee<EVM, ERROR, FRAME>
where
    EVM: EvmTr<Context: ContextTr<Journal: JournalTr<State = EvmState>>, Frame = FRAME>,
    ERROR: EvmTrError<EVM>,
    FRAME: FrameTr<FrameResult = FrameResult, FrameInit = FrameInit>,
{
    type Evm = EVM;
    type Error = ERROR;
    type HaltReason = HaltReason;

    /// revm's `post_execution::reward_beneficiary`, computing the reward
    /// without paying it.
    fn reward_beneficiary(
        &self,
        evm: &mut Self::Evm,
        exec_result: &mut FrameResult,
    ) -> Result<(), Self::Error> {
        let context = evm.ctx();
        if context.cfg().is_fee_charge_disabled() {
            return Ok(());
        }
        let basefee = context.block().basefee() as u128;
        let effective_gas_price = context.tx().effective_gas_price(basefee);
        let spec: SpecId = context.cfg().spec().into();
        let coinbase_gas_price = if spec.is_enabled_in(SpecId::LONDON) {
            effective_gas_price.saturating_sub(basefee)
        } else {
            effective_gas_price
        };
        let gas = exec_result.gas();
        let used = gas.used().saturating_sub(gas.reservoir());
        self.fee.set(U256::from(coinbase_gas_price * used as u128));
        Ok(())
    }
}

impl<EVM, ERROR> InspectorHandler for DeferredFee<EVM, ERROR, EthFrame<EthInterpreter>>
where
    EVM: InspectorEvmTr<
            Context: ContextTr<Journal: JournalTr<State = EvmState>>,
            Frame = EthFrame<EthInterpreter>,
            Inspector: Inspector<<<Self as Handler>::Evm as EvmTr>::Context, EthInterpreter>,
        >,
    ERROR: EvmTrError<EVM>,
{
    type IT = EthInterpreter;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_spans_double_while_the_chain_goes_on() {
        assert_eq!(next_span(0, 0, 10), IN_ORDER_SPAN);
        assert_eq!(next_span(64, 74, 80), 128, "fired 6 after the span ended");
        assert_eq!(next_span(128, 208, 220), 256);
        assert_eq!(next_span(4096, 5000, 5001), IN_ORDER_SPAN_MAX);
        assert_eq!(next_span(256, 500, 900), IN_ORDER_SPAN, "independent work came between");
    }

    #[test]
    fn chain_detector_fires_on_six_of_eight() {
        let mut history = 0u8;
        let mut fired = 0;
        for failed in [true, false, true, true, false, true, true] {
            history = (history << 1) | u8::from(failed);
            fired += usize::from(history.count_ones() >= CHAIN_DETECT_FAILURES);
        }
        assert_eq!(fired, 0, "5 of 7 failed");
        history = (history << 1) | 1;
        assert!(history.count_ones() >= CHAIN_DETECT_FAILURES);
    }
}
