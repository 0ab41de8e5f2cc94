//! `wake bench execution`: blocks of signed transactions executed end to end
//! over an on-disk triedb, state cached and state cold, serial and parallel,
//! prefetch on and off, every run checked.
//!
//! What one timed block costs (each part timed on its own):
//! 1. **recover**: [`recover_senders`] on `threads` threads (libsecp256k1);
//! 2. **prefetch** (when on): [`Prefetched::fetch`]: the accounts the
//!    transactions call or pay, read in one overlapped triedb batch; a
//!    discovery round over them with each sender guessed, revealing what
//!    the calls read (the ERC-20 balance slots), while the senders are read
//!    beside it; those slots, read beside the senders' tail; then discovery
//!    rounds over what is loaded, batch-reading
//!    what they reveal, up to [`DISCOVERY_ROUNDS_MAX`] rounds in all, on
//!    `threads` threads;
//! 3. **execute**: the executor over the pre-state view ([`SnapshotState`],
//!    or [`Prefetched`] in front of it);
//! 4. **commit**: `TrieDb::commit` of the block's diff, durable (fdatasync)
//!    when it returns, which also gives the state root.
//!
//! tx/s and Mgas/s are end to end (the sum of the four). Speedups compare
//! the *execution phase* (prefetch + execute), the part the executor and
//! prefetch change; the end-to-end ratios are in the table too.
//!
//! The serial executor is the one-core reference: its prefetch discovers
//! on one thread. The parallel executor's discovery runs on all `threads`,
//! and its runs are the executor's speculative runs (a conflict-free block
//! executes once, in the prefetch, and is then validated and committed), so
//! for it "execute" is mostly that commit. Recovery and the commit, the
//! same for both, are outside the ratio.
//!
//! States ([`StateMode`]):
//! * **cached**: a small population (100k fillers by default) in a 1 GiB
//!   cache; each run first reads every account and slot its blocks touch.
//!   The serial and the parallel executor both execute every block, in
//!   turns, over the same pre-state, so their ratio compares the same work.
//!   Both executors also run without a prefetch (over cached state the
//!   load and the discovery runs may cost more than they save); the
//!   speedups are given both like for like (prefetch on) and with each
//!   executor in its faster configuration.
//! * **cold**: a large population (10M fillers, 2.5M token holders) with a
//!   cache far below the data, reopened empty and warmed with random lookups
//!   (the inner nodes a running node would hold). Each run uses its own
//!   senders and random recipients, so what it touches is cold.
//!
//! Runs of one state share one database, one after the other: a run starts
//! from the state the run before it left (triedb commits only on top of its
//! newest version), which is why every run has its own senders.
//!
//! Checks, outside the clock: the recovered senders are the signers; every
//! receipt succeeded (and an ERC-20 transfer logged its `Transfer`); the
//! block's gas is the receipts' sum; where several executors run the same
//! block (cached state), their receipts and diffs are equal; after each run, sampled senders,
//! recipients and the fee recipient hold what the [`Ledger`] expects.

mod report;

pub use report::{ExecReport, RunResult, Summary};

use crate::exec_workload::{
    BENEFICIARY, ChainTip, GeneratedBlock, Kind, Ledger, Population, RunPlan, balance_slot,
    chain_spec, check_plan, generate_run, token_address,
};
use crate::progress::Bars;
use crate::usage::{process_cpu, storage_bytes};
use alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
use alloy_primitives::{Address, B256, U256};
use anyhow::{Context, Result, bail, ensure};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wake_execution::{
    BlockError, BlockOutcome, BlockTx, ChainSpec, DISCOVERY_ROUNDS_MAX, ParallelStats, PendingDiff,
    PreState, Prefetched, SnapshotState, SpecId, execute_block, execute_block_parallel,
    recover_senders,
};
use wake_triedb::{Config, ReadAhead, Snapshot, TrieDb};

/// Whether this build measures the optimistic parallel executor (a switch
/// kept for builds that compare against the serial executor alone).
pub const PARALLEL_EXECUTOR: bool = true;

/// Everything `wake bench execution` can be told.
#[derive(Clone, Debug)]
pub struct ExecBenchOptions {
    /// Filler accounts of the cold state.
    pub cold_accounts: u64,
    /// Filler accounts of the cached state.
    pub cached_accounts: u64,
    /// Node cache of the cold state (MiB).
    pub cold_cache_mib: u64,
    /// Node cache of the cached state (MiB).
    pub cached_cache_mib: u64,
    pub txs_per_block: u64,
    /// Blocks per run.
    pub blocks: u64,
    /// Threads of sender recovery and of the parallel executor.
    pub threads: usize,
    /// triedb's reads in flight per batch (`Config::io_depth`).
    pub io_depth: usize,
    /// Threads one large triedb batch is split across (`Config::batch_threads`).
    pub batch_threads: usize,
    /// Random lookups that warm the cold cache.
    pub warmup_lookups: u64,
    /// Filler accounts per genesis version.
    pub load_batch: u64,
    /// Parent of the working directory.
    pub data_dir: Option<PathBuf>,
    /// Skip the cold state (the cached runs only).
    pub skip_cold: bool,
    /// Only the runs whose [name](RunSpec::name) contains one of these
    /// (empty: every run).
    pub only: Vec<String>,
    pub seed: u64,
    /// Draw progress bars on stderr.
    pub progress: bool,
}

impl ExecBenchOptions {
    /// The full run: 10M cold accounts, a 256 MiB cache, 10 blocks a run.
    pub fn full() -> Self {
        let triedb = Config::new("");
        ExecBenchOptions {
            cold_accounts: 10_000_000,
            cached_accounts: 100_000,
            cold_cache_mib: 256,
            cached_cache_mib: 1024,
            txs_per_block: 2_000,
            blocks: 10,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            io_depth: triedb.io_depth,
            batch_threads: triedb.batch_threads,
            warmup_lookups: 500_000,
            load_batch: 500_000,
            data_dir: None,
            skip_cold: false,
            only: Vec::new(),
            seed: 0xe8ec,
            progress: true,
        }
    }

    /// `--quick`: 1M cold accounts, a 64 MiB cache, 4 blocks a run.
    pub fn quick() -> Self {
        ExecBenchOptions {
            cold_accounts: 1_000_000,
            cold_cache_mib: 64,
            blocks: 4,
            warmup_lookups: 200_000,
            ..Self::full()
        }
    }

    fn validate(&self) -> Result<()> {
        ensure!(self.txs_per_block > 0, "--txs-per-block must be at least 1");
        ensure!(self.blocks > 0, "--blocks must be at least 1");
        ensure!(self.threads > 0, "--threads must be at least 1");
        ensure!((1..=4096).contains(&self.io_depth), "--io-depth must be in 1..=4096");
        ensure!((1..=256).contains(&self.batch_threads), "--batch-threads must be in 1..=256");
        ensure!(self.cold_cache_mib > 0 && self.cached_cache_mib > 0, "caches need at least 1 MiB");
        ensure!(self.load_batch > 0, "the load batch must be at least 1");
        Ok(())
    }
}

/// Where the state of a run lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateMode {
    Cached,
    Cold,
}

impl StateMode {
    pub fn name(self) -> &'static str {
        match self {
            StateMode::Cached => "cached",
            StateMode::Cold => "cold",
        }
    }
}

/// Which executor runs the blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    Serial,
    Parallel,
}

impl Executor {
    pub fn name(self) -> &'static str {
        match self {
            Executor::Serial => "serial",
            Executor::Parallel => "parallel",
        }
    }

    /// Threads the executor's prefetch discovers on, of `threads`. The
    /// serial executor is the one-core reference: its whole execution phase
    /// (prefetch and execution) runs on one thread. The parallel executor's
    /// discovery makes its speculative runs, on all of them.
    pub fn prefetch_threads(self, threads: usize) -> usize {
        match self {
            Executor::Serial => 1,
            Executor::Parallel => threads,
        }
    }

    /// The executors this build has.
    pub fn available() -> &'static [Executor] {
        if PARALLEL_EXECUTOR {
            &[Executor::Serial, Executor::Parallel]
        } else {
            &[Executor::Serial]
        }
    }
}

/// One measured configuration.
#[derive(Clone, Debug)]
struct RunSpec {
    kind: Kind,
    /// Each executes every block of the run over the same pre-state.
    executors: Vec<Executor>,
    prefetch: bool,
    /// Commit each block on a second thread while the next one executes
    /// (one executor, prefetch on).
    pipelined: bool,
}

impl RunSpec {
    /// `STATE-WORKLOAD-EXECUTORS-PF`, e.g. `cold-erc20-parallel-pipe`: what
    /// `--only` matches.
    fn name(&self, mode: StateMode) -> String {
        let executors: Vec<&str> = self.executors.iter().map(|e| e.name()).collect();
        let pf = match (self.pipelined, self.prefetch) {
            (true, _) => "pipe",
            (false, true) => "on",
            (false, false) => "off",
        };
        format!("{}-{}-{}-{pf}", mode.name(), self.kind.name(), executors.join("+"))
    }

    /// Whether `--only` keeps this run.
    fn selected(&self, mode: StateMode, only: &[String]) -> bool {
        let name = self.name(mode);
        only.is_empty() || only.iter().any(|pattern| name.contains(pattern.as_str()))
    }
}

/// Executes `block` with `executor`: the one place the executors are
/// chosen. The parallel executor also says what it did.
pub fn execute<D: PreState + Sync>(
    executor: Executor,
    chain: &ChainSpec,
    block: &wake_execution::Block<BlockTx>,
    senders: &[Address],
    state: D,
    threads: usize,
) -> Result<(BlockOutcome, Option<ParallelStats>), BlockError> {
    match executor {
        Executor::Serial => execute_block(chain, block, senders, state).map(|o| (o, None)),
        Executor::Parallel => execute_block_parallel(chain, block, senders, state, threads)
            .map(|(o, stats)| (o, Some(stats))),
    }
}

/// Opens a database at `path` with a `cache_bytes` cache and commits
/// `population`'s genesis into it, `batch` accounts a version, on `threads`
/// threads; returns it with its newest version. For the profiling examples
/// (the bench's own load shows progress and counts its time).
pub fn genesis_db(
    path: &Path,
    population: &Population,
    cache_bytes: usize,
    batch: u64,
    threads: usize,
) -> Result<(TrieDb, u64)> {
    let mut config = Config::new(path);
    config.cache_bytes = cache_bytes;
    let db = TrieDb::open(config)?;
    let mut version = 0;
    for (v, updates) in population.genesis_batches(batch, threads).enumerate() {
        version = v as u64;
        db.commit(version, &updates)?;
    }
    Ok((db, version))
}

/// Reads every account and token balance `blocks` touch (and the fee
/// recipient, the token and the beacon roots contract) from `snapshot`, so
/// that their nodes are in the cache.
pub fn warm_up(
    snapshot: &Snapshot,
    population: &Population,
    blocks: &[GeneratedBlock],
) -> Result<()> {
    let token = token_address();
    let mut accounts = vec![BENEFICIARY, token, BEACON_ROOTS_ADDRESS];
    let mut slots = Vec::new();
    for block in blocks {
        for (intent, sender) in block.intents.iter().zip(&block.senders) {
            let to = population.address(intent.to);
            accounts.extend([*sender, to]);
            if intent.token {
                slots.extend([(token, balance_slot(*sender)), (token, balance_slot(to))]);
            }
        }
    }
    snapshot.accounts(&accounts)?;
    snapshot.storage_batch(&slots)?;
    Ok(())
}

/// The runs of each state, in order. Cached: every executor on the same
/// blocks (paired, so their ratio compares like with like). Cold: one run
/// per executor and prefetch setting, each on its own cold accounts (a
/// second executor on the same block would find it cached).
fn run_specs(mode: StateMode) -> Vec<RunSpec> {
    let mut specs = Vec::new();
    match mode {
        StateMode::Cached => {
            for kind in Kind::ALL {
                specs.push(RunSpec {
                    kind,
                    executors: Executor::available().to_vec(),
                    prefetch: true,
                    pipelined: false,
                });
                // Over cached state either executor may do better without
                // a prefetch (no load, no discovery runs): each one's faster
                // configuration is compared too.
                specs.push(RunSpec {
                    kind,
                    executors: Executor::available().to_vec(),
                    prefetch: false,
                    pipelined: false,
                });
            }
        }
        StateMode::Cold => {
            for kind in [Kind::Transfers, Kind::Erc20] {
                for &executor in Executor::available() {
                    for prefetch in [false, true] {
                        specs.push(RunSpec {
                            kind,
                            executors: vec![executor],
                            prefetch,
                            pipelined: false,
                        });
                    }
                }
                let best = *Executor::available().last().unwrap_or(&Executor::Serial);
                specs.push(RunSpec {
                    kind,
                    executors: vec![best],
                    prefetch: true,
                    pipelined: true,
                });
            }
        }
    }
    specs
}

/// Runs the whole benchmark.
pub fn run_exec_bench(opts: &ExecBenchOptions) -> Result<ExecReport> {
    opts.validate()?;
    let parent = opts.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let work = tempfile::Builder::new()
        .prefix("wake-bench-execution-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let bars = Bars { enabled: opts.progress };
    let mut report = ExecReport {
        cpu_model: crate::triedb_bench::cpu_model(),
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        threads: opts.threads,
        dir: work.path().display().to_string(),
        txs_per_block: opts.txs_per_block,
        blocks_per_run: opts.blocks,
        cached_accounts: opts.cached_accounts,
        cached_cache_mib: opts.cached_cache_mib,
        cold_accounts: opts.cold_accounts,
        cold_cache_mib: opts.cold_cache_mib,
        parallel_executor: PARALLEL_EXECUTOR,
        loadavg_start: report::loadavg(),
        ..ExecReport::default()
    };
    let mut modes = vec![(StateMode::Cached, opts.cached_accounts, opts.cached_cache_mib)];
    if !opts.skip_cold {
        modes.push((StateMode::Cold, opts.cold_accounts, opts.cold_cache_mib));
    }
    for (mode, accounts, cache_mib) in modes {
        if !run_specs(mode).iter().any(|spec| spec.selected(mode, &opts.only)) {
            continue;
        }
        let path = work.path().join(format!("{}.triedb", mode.name()));
        let mut bench = StateBench::load(opts, mode, accounts, cache_mib, &path, bars)?;
        match mode {
            StateMode::Cached => {
                report.cached_load_s = bench.load_s;
                report.cached_db_live_bytes = bench.live_bytes;
            }
            StateMode::Cold => {
                report.cold_load_s = bench.load_s;
                report.cold_db_live_bytes = bench.live_bytes;
                report.cold_token_holders = accounts.div_ceil(crate::exec_workload::HOLDER_EVERY);
                report.cold_warmup_lookups = bench.warm_up_cold()?;
            }
        }
        report.io_backend = format!("{:?}", bench.db.io_backend());
        report.io_depth = opts.io_depth;
        report.batch_threads = opts.batch_threads;
        for plan in bench.plans.clone() {
            for result in bench.run(&plan)? {
                tracing::info!(
                    state = mode.name(),
                    workload = result.workload.name(),
                    executor = result.executor.name(),
                    prefetch = result.prefetch,
                    tx_per_s = result.tx_per_s as u64,
                    "run done"
                );
                report.runs.push(result);
            }
        }
        drop(bench);
        let _ = std::fs::remove_file(&path);
    }
    report.loadavg_end = report::loadavg();
    report.finish();
    Ok(report)
}

/// Device traffic and commit timers at one instant ([`StateBench::device_counts`]).
#[derive(Clone, Copy)]
struct DeviceCounts {
    reads: u64,
    commit_reads: u64,
    commit_apply_reads: u64,
    written_bytes: u64,
    /// triedb's commit timers (µs): read-ahead, apply, sync.
    commit_us: [u64; 3],
}

impl DeviceCounts {
    /// Puts the traffic from `before` to `self` into `result`.
    fn record_since(self, before: DeviceCounts, result: &mut RunResult) {
        result.device_reads = self.reads - before.reads;
        result.commit_device_reads = self.commit_reads - before.commit_reads;
        result.commit_apply_device_reads = self.commit_apply_reads - before.commit_apply_reads;
        result.written_bytes = self.written_bytes.saturating_sub(before.written_bytes);
        let ms = |k: usize| self.commit_us[k].saturating_sub(before.commit_us[k]) as f64 / 1e3;
        result.commit_prefetch_ms = ms(0);
        result.commit_apply_ms = ms(1);
        result.commit_sync_ms = ms(2);
    }
}

/// One state (database + population) and the runs planned on it.
struct StateBench<'o> {
    opts: &'o ExecBenchOptions,
    mode: StateMode,
    bars: Bars,
    chain: ChainSpec,
    population: Population,
    db: TrieDb,
    version: u64,
    tip: ChainTip,
    hashes: BTreeMap<u64, B256>,
    ledger: Ledger,
    plans: Vec<(RunSpec, RunPlan)>,
    load_s: f64,
    live_bytes: u64,
}

impl<'o> StateBench<'o> {
    /// Plans the runs, loads their genesis into a new database at `path`,
    /// and reopens it with an empty cache of `cache_mib`.
    fn load(
        opts: &'o ExecBenchOptions,
        mode: StateMode,
        accounts: u64,
        cache_mib: u64,
        path: &Path,
        bars: Bars,
    ) -> Result<StateBench<'o>> {
        let mut plans = Vec::new();
        let mut senders = 0u64;
        for (k, spec) in run_specs(mode).into_iter().enumerate() {
            if !spec.selected(mode, &opts.only) {
                continue;
            }
            let plan = RunPlan {
                kind: spec.kind,
                blocks: opts.blocks,
                txs_per_block: opts.txs_per_block,
                first_sender: senders,
                tag: k as u64 + if mode == StateMode::Cold { 1000 } else { 0 },
            };
            senders += plan.senders_needed();
            plans.push((spec, plan));
        }
        let population = Population::new(opts.seed, accounts, senders);
        for (_, plan) in &plans {
            check_plan(&population, plan).map_err(anyhow::Error::msg)?;
        }
        let _ = std::fs::remove_file(path);
        let start = Instant::now();
        let db = open_db(path, cache_mib.max(256), opts)?;
        let batches = population.genesis_batches_len(opts.load_batch);
        let bar = bars.count(&format!("{}: genesis", mode.name()), batches, "versions");
        let mut version = 0u64;
        for (v, updates) in population.genesis_batches(opts.load_batch, opts.threads).enumerate() {
            version = v as u64;
            db.commit(version, &updates)
                .with_context(|| format!("{}: genesis version {v} of {batches}", mode.name()))?;
            bar.inc(1);
        }
        bar.finish();
        let load_s = start.elapsed().as_secs_f64();
        let live_bytes = db.stats().live_bytes;
        drop(db);
        let db = open_db(path, cache_mib, opts)?;
        tracing::info!(
            state = mode.name(),
            accounts,
            senders,
            load_s,
            live_mib = live_bytes >> 20,
            cache_mib,
            "genesis loaded"
        );
        if mode == StateMode::Cold && live_bytes < 2 * (cache_mib << 20) {
            tracing::warn!(
                live_bytes,
                cache_mib,
                "the data is less than twice the cache: the cold state is not fully cold"
            );
        }
        Ok(StateBench {
            opts,
            mode,
            bars,
            chain: chain_spec(),
            population,
            db,
            version,
            tip: ChainTip::genesis(opts.seed),
            hashes: BTreeMap::new(),
            ledger: Ledger::default(),
            plans,
            load_s,
            live_bytes,
        })
    }

    /// Device traffic so far: triedb's reads since open (all, and the
    /// commits'), the bytes this process wrote to storage, and triedb's
    /// commit timers.
    fn device_counts(&self) -> DeviceCounts {
        let stats = self.db.stats();
        DeviceCounts {
            reads: stats.device_reads,
            commit_reads: stats.commit_prefetch_reads + stats.commit_apply_reads,
            commit_apply_reads: stats.commit_apply_reads,
            written_bytes: storage_bytes().map_or(0, |(_, written)| written),
            commit_us: [stats.commit_prefetch_us, stats.commit_apply_us, stats.commit_sync_us],
        }
    }

    fn snapshot(&self) -> Result<Snapshot> {
        Ok(self.db.snapshot(self.version)?)
    }

    /// Random lookups of fillers and token balances, so the cache holds the
    /// inner nodes a running node would. Returns the lookups made.
    fn warm_up_cold(&mut self) -> Result<u64> {
        const BATCH: usize = 1024;
        let total = self.opts.warmup_lookups;
        let bar = self.bars.count("cold: warm-up", total, "lookups");
        let snapshot = self.snapshot()?;
        let mut rng = StdRng::seed_from_u64(self.opts.seed ^ 0x3a3a);
        let token = token_address();
        let holders = self.population.accounts.div_ceil(crate::exec_workload::HOLDER_EVERY);
        let mut done = 0u64;
        while done < total {
            let n = BATCH.min((total - done) as usize);
            let accounts: Vec<Address> = (0..n)
                .map(|_| {
                    self.population.filler_address(rng.random_range(0..self.population.accounts))
                })
                .collect();
            snapshot.accounts(&accounts)?;
            // Half as many token balances (the token's storage trie).
            let slots: Vec<(Address, B256)> = (0..n / 2)
                .map(|_| {
                    let i = rng.random_range(0..holders) * crate::exec_workload::HOLDER_EVERY;
                    (token, balance_slot(self.population.filler_address(i)))
                })
                .collect();
            snapshot.storage_batch(&slots)?;
            done += n as u64;
            bar.inc(n as u64);
        }
        bar.finish();
        Ok(done)
    }

    /// Reads everything `blocks` touch, so a cached run never waits on the disk.
    fn warm_up_cached(&self, blocks: &[GeneratedBlock]) -> Result<()> {
        warm_up(&self.snapshot()?, &self.population, blocks)
    }

    /// Generates, runs and checks one planned run: its blocks are executed
    /// by each of the run's executors over the same pre-state (in turns: the
    /// executor that goes first changes with every block, so neither always
    /// finds the other's reads in the cache), their outcomes must be equal,
    /// and one diff is committed. Returns one result per executor; the
    /// recovery and the commit count in each.
    fn run(&mut self, (spec, plan): &(RunSpec, RunPlan)) -> Result<Vec<RunResult>> {
        if spec.pipelined {
            return self.run_pipelined(spec, plan).map(|result| vec![result]);
        }
        let names: Vec<&str> = spec.executors.iter().map(|e| e.name()).collect();
        let label = format!(
            "{} {} {}{}",
            self.mode.name(),
            spec.kind.name(),
            names.join("+"),
            if spec.prefetch { "" } else { " no-pf" }
        );
        let blocks = generate_run(&self.population, plan, &mut self.tip, self.opts.threads);
        if self.mode == StateMode::Cached {
            self.warm_up_cached(&blocks)?;
        }
        let mut results: Vec<RunResult> = spec
            .executors
            .iter()
            .map(|&executor| RunResult {
                state: self.mode,
                workload: spec.kind,
                executor,
                prefetch: spec.prefetch,
                blocks: plan.blocks,
                ..RunResult::default()
            })
            .collect();
        let counts_before = self.device_counts();
        let bar = self.bars.count(&label, plan.blocks, "blocks");
        let threads = self.opts.threads;
        tracing::info!(run = %label, blocks = blocks.len(), "timed part starts");
        // Per executor: recover, prefetch, execute, commit.
        let mut times = vec![[Duration::ZERO; 4]; spec.executors.len()];
        // Process CPU time: of each executor's part, and of the shared parts
        // (recovery and commit), which count in every executor's.
        let mut cpu = vec![Duration::ZERO; spec.executors.len()];
        let mut cpu_shared = Duration::ZERO;
        for (b, generated) in blocks.iter().enumerate() {
            let block = &generated.block;
            let snapshot = self.snapshot()?;
            let base = SnapshotState::new(&snapshot, &self.hashes);
            // The prefetch's nodes, for the commit (as the node does).
            let ahead = parking_lot::Mutex::new(ReadAhead::new());
            let reading = base.reading_ahead(&ahead);

            let cpu_start = process_cpu();
            let start = Instant::now();
            let senders = recover(&block.body.transactions, threads)?;
            let recover = start.elapsed();
            cpu_shared += process_cpu() - cpu_start;
            ensure!(senders == generated.senders, "recovered senders differ from the signers");

            let mut outcome: Option<BlockOutcome> = None;
            for k in 0..spec.executors.len() {
                let e = (k + b) % spec.executors.len();
                let executor = spec.executors[e];
                let cpu_start = process_cpu();
                let start = Instant::now();
                let ((run, stats), prefetch) = if spec.prefetch {
                    let prefetch_threads = executor.prefetch_threads(threads);
                    let state = Prefetched::fetch(
                        base,
                        &reading,
                        &self.chain,
                        block,
                        &senders,
                        DISCOVERY_ROUNDS_MAX,
                        prefetch_threads,
                    )?;
                    let prefetch = start.elapsed();
                    let s = state.stats();
                    results[e].prefetched_accounts += s.accounts as u64;
                    results[e].prefetched_slots += s.slots as u64;
                    results[e].discovery_rounds += s.discovery_rounds as u64;
                    (execute(executor, &self.chain, block, &senders, state, threads)?, prefetch)
                } else {
                    (
                        execute(executor, &self.chain, block, &senders, base, threads)?,
                        Duration::ZERO,
                    )
                };
                let total = start.elapsed();
                cpu[e] += process_cpu() - cpu_start;
                times[e][0] += recover;
                times[e][1] += prefetch;
                times[e][2] += total - prefetch;
                if let Some(stats) = stats {
                    results[e].add_parallel_stats(&stats);
                }
                match &outcome {
                    None => outcome = Some(run),
                    Some(first) => ensure!(
                        first.receipts == run.receipts && first.updates == run.updates,
                        "{label}: block {}: the executors' outcomes differ",
                        block.header.number
                    ),
                }
            }
            let outcome = outcome.context("a run has at least one executor")?;

            let cpu_start = process_cpu();
            let start = Instant::now();
            self.version += 1;
            let root = self.db.commit_ahead(self.version, &outcome.updates, ahead.into_inner())?;
            let commit = start.elapsed();
            cpu_shared += process_cpu() - cpu_start;
            for t in &mut times {
                t[3] += commit;
            }

            let gas: u64 = outcome.receipts.last().map_or(0, |r| r.cumulative_gas_used());
            ensure!(gas == outcome.gas_used, "block gas {} != receipts' {gas}", outcome.gas_used);
            self.ledger
                .record(&self.population, generated, &outcome.receipts)
                .with_context(|| format!("{label}: block {}", block.header.number))?;
            self.hashes.insert(block.header.number, block.header.hash_slow());
            for result in &mut results {
                result.txs += block.body.transactions.len() as u64;
                result.gas += outcome.gas_used;
                result.last_root = root;
            }
            bar.inc(1);
        }
        bar.finish();
        // Device traffic is shared by the executors of a run.
        let counts = self.device_counts();
        self.check_balances(&blocks).with_context(|| format!("{label}: balances"))?;
        for ((result, times), cpu) in results.iter_mut().zip(times).zip(cpu) {
            counts.record_since(counts_before, result);
            result.set_times(times);
            result.set_cpu(cpu + cpu_shared);
        }
        Ok(results)
    }

    /// Runs a planned run the way the node does, in three stages on their
    /// own threads: senders are recovered ahead (the node's pool recovers
    /// them at admission, before a block is built), block `h + 1` is
    /// prefetched and executed over the newest committed version plus the
    /// diffs still committing ([`SnapshotState::with_pending`]), and block
    /// `h` is committed. Stages hand over through queues of one block. The
    /// parts are timed as in [`run`](Self::run), each on its own thread;
    /// end to end is the wall time from the first block's recovery to the
    /// last block's durable commit, so every stage's work is inside it.
    fn run_pipelined(&mut self, spec: &RunSpec, plan: &RunPlan) -> Result<RunResult> {
        let executor = spec.executors.first().copied().context("a run has an executor")?;
        let label = format!("{} {} {executor:?} pipelined", self.mode.name(), spec.kind.name());
        let blocks = generate_run(&self.population, plan, &mut self.tip, self.opts.threads);
        if self.mode == StateMode::Cached {
            self.warm_up_cached(&blocks)?;
        }
        let mut result = RunResult {
            state: self.mode,
            workload: spec.kind,
            executor,
            prefetch: true,
            pipelined: true,
            blocks: plan.blocks,
            ..RunResult::default()
        };
        let counts_before = self.device_counts();
        let bar = self.bars.count(&label, plan.blocks, "blocks");
        let threads = self.opts.threads;
        let db = self.db.clone();
        let first_version = self.version + 1;
        let mut times = [Duration::ZERO; 4];
        tracing::info!(run = %label, blocks = blocks.len(), "timed part starts");
        let cpu_start = process_cpu();
        let started = Instant::now();
        let (to_commit, committing) =
            std::sync::mpsc::sync_channel::<(Arc<PendingDiff>, ReadAhead)>(1);
        let committer = std::thread::Builder::new().name("bench-commit".into()).spawn(
            move || -> Result<(Vec<B256>, Duration)> {
                let (mut roots, mut busy) = (Vec::new(), Duration::ZERO);
                for (diff, ahead) in committing {
                    let start = Instant::now();
                    roots.push(db.commit_ahead(diff.height(), diff.updates(), ahead)?);
                    busy += start.elapsed();
                }
                Ok((roots, busy))
            },
        )?;
        // Sender recovery, one block ahead of execution.
        let (recovered, recovering) =
            std::sync::mpsc::sync_channel::<(Result<Vec<Address>>, Duration)>(1);
        let txs: Vec<Vec<BlockTx>> =
            blocks.iter().map(|g| g.block.body.transactions.clone()).collect();
        let recoverer =
            std::thread::Builder::new().name("bench-recover".into()).spawn(move || {
                for block in txs {
                    let start = Instant::now();
                    let senders = recover(&block, threads);
                    if recovered.send((senders, start.elapsed())).is_err() {
                        return; // Execution stopped.
                    }
                }
            })?;
        let mut pending: Vec<Arc<PendingDiff>> = Vec::new();
        let mut executed = Vec::with_capacity(blocks.len());
        for (b, generated) in blocks.iter().enumerate() {
            let block = &generated.block;
            let version = first_version + b as u64;
            let committed = self.db.latest().map_or(0, |latest| latest.version);
            let snapshot = self.db.snapshot(committed)?;
            pending.retain(|diff| diff.height() > committed);
            let ahead = parking_lot::Mutex::new(ReadAhead::new());
            let base = SnapshotState::with_pending(&snapshot, &pending, &self.hashes)
                .reading_ahead(&ahead);

            let (senders, recover) = recovering.recv().context("the recovery thread stopped")?;
            let senders = senders?;
            times[0] += recover;
            ensure!(senders == generated.senders, "recovered senders differ from the signers");

            let start = Instant::now();
            let discovery_threads = executor.prefetch_threads(threads);
            let state = Prefetched::fetch(
                base,
                &base,
                &self.chain,
                block,
                &senders,
                DISCOVERY_ROUNDS_MAX,
                discovery_threads,
            )?;
            let prefetch = start.elapsed();
            let s = state.stats();
            result.prefetched_accounts += s.accounts as u64;
            result.prefetched_slots += s.slots as u64;
            result.discovery_rounds += s.discovery_rounds as u64;
            let (outcome, stats) = execute(executor, &self.chain, block, &senders, state, threads)?;
            times[1] += prefetch;
            times[2] += start.elapsed() - prefetch;
            if let Some(stats) = stats {
                result.add_parallel_stats(&stats);
            }
            let gas: u64 = outcome.receipts.last().map_or(0, |r| r.cumulative_gas_used());
            ensure!(gas == outcome.gas_used, "block gas {} != receipts' {gas}", outcome.gas_used);
            result.txs += block.body.transactions.len() as u64;
            result.gas += outcome.gas_used;
            let diff = Arc::new(PendingDiff::new(version, outcome.updates));
            pending.push(Arc::clone(&diff));
            executed.push(outcome.receipts);
            self.hashes.insert(block.header.number, block.header.hash_slow());
            if to_commit.send((diff, ahead.into_inner())).is_err() {
                break; // The commit failed: its error comes from the join.
            }
            bar.inc(1);
        }
        drop(to_commit);
        drop(recovering);
        recoverer.join().map_err(|_| anyhow::anyhow!("{label}: the recovery thread panicked"))?;
        let (roots, commit_busy) = committer
            .join()
            .map_err(|_| anyhow::anyhow!("{label}: the commit thread panicked"))??;
        let wall = started.elapsed();
        let cpu = process_cpu() - cpu_start;
        let counts = self.device_counts();
        bar.finish();
        ensure!(
            roots.len() == blocks.len(),
            "{label}: {} of {} blocks committed",
            roots.len(),
            blocks.len()
        );
        self.version += blocks.len() as u64;
        times[3] = commit_busy;
        for (generated, receipts) in blocks.iter().zip(&executed) {
            self.ledger
                .record(&self.population, generated, receipts)
                .with_context(|| format!("{label}: block {}", generated.block.header.number))?;
        }
        self.check_balances(&blocks).with_context(|| format!("{label}: balances"))?;
        result.last_root = roots.last().copied().unwrap_or_default();
        counts.record_since(counts_before, &mut result);
        result.set_times(times);
        result.set_wall(wall);
        result.set_cpu(cpu);
        Ok(result)
    }

    /// Compares sampled accounts of `blocks` (first and last transaction of
    /// each block, both ends) and the fee recipient with the ledger.
    fn check_balances(&self, blocks: &[GeneratedBlock]) -> Result<()> {
        let snapshot = self.snapshot()?;
        let token = token_address();
        let mut sample = Vec::new();
        for block in blocks {
            for i in [0, block.intents.len().saturating_sub(1)] {
                if let Some(intent) = block.intents.get(i) {
                    sample.push(block.senders[i]);
                    sample.push(self.population.address(intent.to));
                }
            }
        }
        for address in sample {
            let ether = snapshot.account(&address)?.map_or(U256::ZERO, |a| a.balance);
            let tokens = snapshot.storage(&token, &balance_slot(address))?;
            self.ledger.check(address, ether, tokens)?;
        }
        let fees = snapshot.account(&BENEFICIARY)?.map_or(U256::ZERO, |a| a.balance);
        if fees != self.ledger.fees_to_beneficiary {
            bail!("fee recipient holds {fees}, expected {}", self.ledger.fees_to_beneficiary);
        }
        Ok(())
    }
}

/// The senders of `txs`, recovered on `threads` threads.
fn recover(txs: &[BlockTx], threads: usize) -> Result<Vec<Address>> {
    recover_senders(txs, SpecId::CANCUN, threads)
        .map_err(|(index, e)| anyhow::anyhow!("recovering transaction {index}: {e}"))
}

fn open_db(path: &Path, cache_mib: u64, opts: &ExecBenchOptions) -> Result<TrieDb> {
    let mut config = Config::new(path);
    config.cache_bytes = usize::try_from(cache_mib << 20).unwrap_or(usize::MAX);
    config.io_depth = opts.io_depth;
    config.batch_threads = opts.batch_threads;
    TrieDb::open(config).with_context(|| format!("opening {}", path.display()))
}
