//! `wake bench ...`: the benchmark subcommands, `triedb` (storage),
//! `execution` (blocks end to end) and `consensus` (commit latency and
//! blocks per second, see [`crate::bench_consensus`]). The storage and
//! execution drivers live in the `wake-benches` crate; this module maps the
//! command line onto them and prints the results (a table, or one JSON line
//! on stdout with `--json`).

use clap::{Args, Subcommand};
use std::path::PathBuf;
use wake_benches::{
    ExecBenchOptions, LOAD_CHILD_ENV, TrieDbBenchOptions, run_exec_bench, run_triedb_bench,
    run_triedb_load_child,
};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Storage benchmark: cold reads (depth 1/8/32) vs the raw device and
    /// pread, durable commits, root of fresh accounts vs alloy-trie, and the
    /// NOMT peer, all in one run.
    Triedb(TriedbArgs),
    /// Execution benchmark: native and ERC-20 transfer blocks, end to end
    /// (sender recovery, prefetch, execution, durable commit and state
    /// root) over an on-disk triedb, state cached and cold, serial and
    /// parallel, prefetch on and off; every run checked.
    Execution(ExecutionArgs),
    /// Consensus benchmark, in simulation: commit latency (ms and message
    /// delays) and blocks per second of 4, 10 and 50 honest validators at 0
    /// and 50 ms one-way latency, each validator charged the CPU its core used.
    Consensus(crate::bench_consensus::ConsensusArgs),
}

#[derive(Debug, Args)]
pub struct ExecutionArgs {
    /// Smaller cold state: 1M accounts, 64 MiB cache, 4 blocks per run.
    #[arg(long)]
    quick: bool,
    /// Filler accounts of the cold state [default: 10000000, or 1000000 with --quick].
    #[arg(long, value_name = "N")]
    accounts: Option<u64>,
    /// Filler accounts of the cached state.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    cached_accounts: u64,
    /// Transactions per block.
    #[arg(long, value_name = "T", default_value_t = 2_000)]
    txs_per_block: u64,
    /// Blocks per run [default: 10, or 4 with --quick].
    #[arg(long, value_name = "B")]
    blocks: Option<u64>,
    /// Node cache of the cold state in MiB [default: 256, or 64 with --quick].
    #[arg(long, value_name = "C")]
    cache_mib: Option<u64>,
    /// Threads for sender recovery and the parallel executor [default: all cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Reads in flight in triedb's batches (its `io_depth`) [default: triedb's, 32].
    #[arg(long, value_name = "Q")]
    io_depth: Option<usize>,
    /// Threads one large triedb batch is split across (its `batch_threads`),
    /// each with its own ring and `--io-depth` reads in flight [default: triedb's, 1].
    #[arg(long, value_name = "N")]
    batch_threads: Option<usize>,
    /// Where the temporary databases go (a real file system: O_DIRECT) [default: the system temp dir].
    #[arg(long, value_name = "D")]
    data_dir: Option<PathBuf>,
    /// Only the cached state.
    #[arg(long)]
    skip_cold: bool,
    /// Only the runs whose name (`STATE-WORKLOAD-EXECUTOR-PF`, e.g.
    /// `cold-erc20-parallel-pipe`, `cached-transfers-serial+parallel-on`)
    /// contains one of these comma-separated patterns [default: every run].
    #[arg(long, value_name = "PATTERNS", value_delimiter = ',')]
    only: Vec<String>,
    /// Seed of the workload.
    #[arg(long, default_value_t = 0xe8ec)]
    seed: u64,
    /// Print one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

impl ExecutionArgs {
    pub fn options(&self) -> ExecBenchOptions {
        let base = if self.quick { ExecBenchOptions::quick() } else { ExecBenchOptions::full() };
        ExecBenchOptions {
            cold_accounts: self.accounts.unwrap_or(base.cold_accounts),
            cached_accounts: self.cached_accounts,
            cold_cache_mib: self.cache_mib.unwrap_or(base.cold_cache_mib),
            txs_per_block: self.txs_per_block,
            blocks: self.blocks.unwrap_or(base.blocks),
            threads: self.threads.unwrap_or(base.threads),
            io_depth: self.io_depth.unwrap_or(base.io_depth),
            batch_threads: self.batch_threads.unwrap_or(base.batch_threads),
            data_dir: self.data_dir.clone(),
            skip_cold: self.skip_cold,
            only: self.only.clone(),
            seed: self.seed,
            progress: !self.no_progress,
            ..base
        }
    }
}

#[derive(Debug, Args)]
pub struct TriedbArgs {
    /// Accounts to load [default: 10000000, or 1000000 with --quick].
    #[arg(long, value_name = "N")]
    accounts: Option<u64>,
    /// Smaller run: 1M accounts, 64 MiB cache, 20 blocks, 5 s phases.
    #[arg(long)]
    quick: bool,
    /// Working directory [default: a new temporary directory, removed at the end].
    #[arg(long, value_name = "D")]
    dir: Option<PathBuf>,
    /// Keep the databases at the end.
    #[arg(long)]
    keep: bool,
    /// Cache budget in MiB [default: 256, or 64 with --quick].
    #[arg(long, value_name = "MIB")]
    cache_mib: Option<u64>,
    /// Update blocks of the commit phase [default: 50, or 20 with --quick].
    #[arg(long, value_name = "B")]
    blocks: Option<u64>,
    /// Accounts updated per block.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    block_updates: usize,
    /// Accounts committed per version during the load (the update batch
    /// the benchmark builds for each is part of the load's peak RSS).
    #[arg(long, value_name = "N", default_value_t = 125_000)]
    load_block: u64,
    /// Seconds per timed read phase [default: 10, or 5 with --quick].
    #[arg(long, value_name = "S")]
    phase_secs: Option<f64>,
    /// Random lookups that warm the cache before the read phases
    /// [default: 500000, or 300000 with --quick].
    #[arg(long, value_name = "N")]
    warmup: Option<u64>,
    /// Fresh accounts of the root-vs-HashBuilder phase (0 skips it).
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    root_accounts: u64,
    /// Skip the NOMT peer.
    #[arg(long)]
    no_nomt: bool,
    /// Also measure a database opened with the pread thread-pool backend.
    #[arg(long)]
    pread_pool: bool,
    /// Embed small self-contained bottom branches in their parent
    /// (`Config::embed_subtrees`) [default: the triedb default].
    #[arg(long, value_name = "BOOL")]
    embed_subtrees: Option<bool>,
    /// Rings (threads) each large read batch is split across (triedb's
    /// `batch_threads`), each at depth d / N, so the reads in flight stay
    /// the phase's depth: the warm-up and the batched depth-32 row (the
    /// streamed phases run on one ring).
    #[arg(long, value_name = "N", default_value_t = 1)]
    batch_threads: usize,
    /// Seed of the workload.
    #[arg(long, default_value_t = 0x77a4e)]
    seed: u64,
    /// Print one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
}

impl TriedbArgs {
    pub fn options(&self) -> TrieDbBenchOptions {
        let base =
            if self.quick { TrieDbBenchOptions::quick() } else { TrieDbBenchOptions::full() };
        TrieDbBenchOptions {
            accounts: self.accounts.unwrap_or(base.accounts),
            dir: self.dir.clone(),
            keep: self.keep,
            cache_mib: self.cache_mib.unwrap_or(base.cache_mib),
            blocks: self.blocks.unwrap_or(base.blocks),
            block_updates: self.block_updates,
            load_block: self.load_block,
            phase_secs: self.phase_secs.unwrap_or(base.phase_secs),
            warmup_lookups: self.warmup.unwrap_or(base.warmup_lookups),
            root_accounts: self.root_accounts,
            nomt: !self.no_nomt,
            pread_pool: self.pread_pool,
            embed_subtrees: self.embed_subtrees.unwrap_or(base.embed_subtrees),
            batch_threads: self.batch_threads,
            seed: self.seed,
            progress: !self.no_progress,
        }
    }
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Triedb(args) => {
            // The benchmark runs its load in a child process: this one.
            if let Some(db_path) = std::env::var_os(LOAD_CHILD_ENV) {
                return run_triedb_load_child(&args.options(), std::path::Path::new(&db_path));
            }
            let report = run_triedb_bench(&args.options())?;
            print_report(args.json, &report.table(), &report.to_json());
            Ok(())
        }
        BenchCommand::Execution(args) => {
            let report = run_exec_bench(&args.options())?;
            print_report(args.json, &report.table(), &report.to_json());
            Ok(())
        }
        BenchCommand::Consensus(args) => {
            let report = crate::bench_consensus::run(&args)?;
            print_report(args.json, &report.table(), &report.to_json());
            Ok(())
        }
    }
}

/// The table on stdout; with `--json`, the table on stderr and the JSON line on stdout.
fn print_report(json: bool, table: &str, json_line: &str) {
    if json {
        eprint!("{table}");
        println!("{json_line}");
    } else {
        print!("{table}");
    }
}
