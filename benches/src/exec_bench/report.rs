//! The report of `wake bench execution`: every run's figures, the ratios
//! the targets are about, a table for people and one JSON line for tools.

use super::{Executor, StateMode};
use crate::exec_workload::Kind;
use alloy_primitives::B256;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;
use wake_execution::ParallelStats;

/// ERC-20 transfers per second with cold state, end to end.
pub const TARGET_ERC20_COLD_TX_PER_S: f64 = 10_000.0;
/// Parallel over serial on conflict-free blocks (2 cores).
pub const TARGET_SPEEDUP_CONFLICT_FREE: f64 = 1.7;
/// Parallel over serial on a fully dependent chain.
pub const TARGET_SPEEDUP_DEPENDENT: f64 = 0.9;
/// Prefetch on over off, cold state.
pub const TARGET_PREFETCH_SPEEDUP_COLD: f64 = 3.0;

/// One run: a workload in a state, with an executor, prefetch on or off.
/// Times are sums over its blocks.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub state: StateMode,
    pub workload: Kind,
    pub executor: Executor,
    pub prefetch: bool,
    /// Each block's commit ran on a second thread while the next block
    /// executed (over the diffs not yet committed), as in the node;
    /// `total_ms` is then the run's wall time, not the sum of the parts.
    pub pipelined: bool,
    pub blocks: u64,
    pub txs: u64,
    pub gas: u64,
    pub recover_ms: f64,
    pub prefetch_ms: f64,
    pub execute_ms: f64,
    pub commit_ms: f64,
    /// recover + prefetch + execute + commit.
    pub total_ms: f64,
    /// CPU time of the whole process (all threads, user + system) over the
    /// timed part of the run.
    pub cpu_ms: f64,
    /// `cpu_ms / total_ms`: how many cores the run kept busy on average (the
    /// machine's core count when CPU-bound).
    pub cores_busy: f64,
    /// End to end.
    pub tx_per_s: f64,
    pub mgas_per_s: f64,
    /// The execution phase only (prefetch + execute).
    pub exec_tx_per_s: f64,
    pub prefetched_accounts: u64,
    pub prefetched_slots: u64,
    /// Discovery rounds that found reads, summed over the blocks.
    pub discovery_rounds: u64,
    /// Device reads during the run's blocks (prefetch, execution, commit;
    /// in a paired cached run, of both executors together).
    pub device_reads: u64,
    pub device_reads_per_tx: f64,
    /// Of `device_reads`, those of the commits (their read-ahead of the
    /// paths they rewrite, and compaction).
    pub commit_device_reads: u64,
    /// Of `commit_device_reads`, those made while applying the diff (one
    /// at a time), not in the commits' batched read-ahead.
    pub commit_apply_device_reads: u64,
    /// Bytes the process wrote to storage during the run (`/proc/self/io`:
    /// the commits' nodes, compaction and metadata).
    pub written_bytes: u64,
    /// Of the commits' time, triedb's own split (its counters): reading
    /// ahead the paths they rewrite, applying the diff (updating, hashing,
    /// compacting and writing nodes), and the two syncs.
    pub commit_prefetch_ms: f64,
    pub commit_apply_ms: f64,
    pub commit_sync_ms: f64,
    /// State root after the run's last block.
    pub last_root: B256,
    /// Parallel executor, summed over the blocks: transactions run ahead
    /// of their turn, those whose reads held, those run at their turn over
    /// the exact state, speculative runs thrown away, chain detections,
    /// and blocks it handed to the serial executor.
    pub speculative: u64,
    pub validated: u64,
    pub exact: u64,
    pub aborted: u64,
    pub chain_detected: u64,
    pub serial_fallback_blocks: u64,
    /// Of `speculative`, runs made by the prefetch's discovery.
    pub discovered: u64,
}

impl Default for RunResult {
    fn default() -> Self {
        RunResult {
            state: StateMode::Cached,
            workload: Kind::Transfers,
            executor: Executor::Serial,
            prefetch: true,
            pipelined: false,
            blocks: 0,
            txs: 0,
            gas: 0,
            recover_ms: 0.0,
            prefetch_ms: 0.0,
            execute_ms: 0.0,
            commit_ms: 0.0,
            total_ms: 0.0,
            cpu_ms: 0.0,
            cores_busy: 0.0,
            tx_per_s: 0.0,
            mgas_per_s: 0.0,
            exec_tx_per_s: 0.0,
            prefetched_accounts: 0,
            prefetched_slots: 0,
            discovery_rounds: 0,
            device_reads: 0,
            device_reads_per_tx: 0.0,
            commit_device_reads: 0,
            commit_apply_device_reads: 0,
            written_bytes: 0,
            commit_prefetch_ms: 0.0,
            commit_apply_ms: 0.0,
            commit_sync_ms: 0.0,
            last_root: B256::ZERO,
            speculative: 0,
            validated: 0,
            exact: 0,
            aborted: 0,
            chain_detected: 0,
            serial_fallback_blocks: 0,
            discovered: 0,
        }
    }
}

impl RunResult {
    /// Sets the times (recover, prefetch, execute, commit) and the rates.
    pub(super) fn set_times(&mut self, [recover, prefetch, execute, commit]: [Duration; 4]) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        self.recover_ms = ms(recover);
        self.prefetch_ms = ms(prefetch);
        self.execute_ms = ms(execute);
        self.commit_ms = ms(commit);
        self.total_ms = ms(recover + prefetch + execute + commit);
        let per_s = |n: f64, ms: f64| if ms > 0.0 { n * 1e3 / ms } else { 0.0 };
        self.tx_per_s = per_s(self.txs as f64, self.total_ms);
        self.mgas_per_s = per_s(self.gas as f64 / 1e6, self.total_ms);
        self.exec_tx_per_s = per_s(self.txs as f64, self.prefetch_ms + self.execute_ms);
        self.device_reads_per_tx =
            if self.txs == 0 { 0.0 } else { self.device_reads as f64 / self.txs as f64 };
    }

    /// Adds one block's parallel-executor counters.
    pub(super) fn add_parallel_stats(&mut self, stats: &ParallelStats) {
        self.speculative += stats.speculative as u64;
        self.validated += stats.validated as u64;
        self.exact += stats.exact as u64;
        self.aborted += stats.aborted as u64;
        self.chain_detected += stats.chain_detected as u64;
        self.serial_fallback_blocks += u64::from(stats.serial.is_some());
        self.discovered += stats.discovered as u64;
    }

    /// `total` (ms, reads) spread over the run's blocks.
    fn per_block(&self, total: f64) -> f64 {
        total / self.blocks.max(1) as f64
    }

    /// The run's prefetch mode: `[short, long]` names.
    fn mode(&self) -> [&'static str; 2] {
        match (self.pipelined, self.prefetch) {
            (true, _) => ["pipe", "pipelined"],
            (false, true) => ["on", "prefetch on"],
            (false, false) => ["off", "prefetch off"],
        }
    }

    /// Prefetch + execute, the part executors and prefetch change.
    pub fn exec_phase_ms(&self) -> f64 {
        self.prefetch_ms + self.execute_ms
    }

    /// A pipelined run: end to end is its wall time (the commit overlaps
    /// the next block's recovery, prefetch and execution).
    pub(super) fn set_wall(&mut self, wall: Duration) {
        self.total_ms = wall.as_secs_f64() * 1e3;
        if self.total_ms > 0.0 {
            self.tx_per_s = self.txs as f64 * 1e3 / self.total_ms;
            self.mgas_per_s = self.gas as f64 / 1e6 * 1e3 / self.total_ms;
        }
    }

    /// The process's CPU time over the timed part; call after the times.
    pub(super) fn set_cpu(&mut self, cpu: Duration) {
        self.cpu_ms = cpu.as_secs_f64() * 1e3;
        self.cores_busy = if self.total_ms > 0.0 { self.cpu_ms / self.total_ms } else { 0.0 };
    }
}

/// The ratios and headline figures the targets are about (`None`: not
/// measured in this run).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Cold ERC-20 run with prefetch (parallel when available), end to
    /// end: the pipelined run when measured (each block's commit
    /// overlapping the next block, as in the node), else the sequential one.
    pub erc20_cold_tx_per_s: Option<f64>,
    pub erc20_cold_mgas_per_s: Option<f64>,
    /// The configuration of that run.
    pub erc20_cold_executor: Option<Executor>,
    pub erc20_cold_pipelined: bool,
    /// The same executor with each block committed before the next runs.
    pub erc20_cold_sequential_tx_per_s: Option<f64>,
    /// Cached state, execution phase, parallel over serial, both with
    /// prefetch (the serial executor's on one core): the lower of the
    /// transfer and ERC-20 figures.
    pub parallel_speedup_conflict_free: Option<f64>,
    pub parallel_speedup_conflict_free_transfers: Option<f64>,
    pub parallel_speedup_conflict_free_erc20: Option<f64>,
    /// The same on one-sender chains: the lower of the two.
    pub parallel_speedup_dependent: Option<f64>,
    /// Execution alone (the prefetch left out), cached state, serial with
    /// prefetch over parallel. The parallel executor's runs are made in its
    /// prefetch, so this compares serial execution with validating and
    /// committing them: not a speedup of the block, kept to show the split.
    pub parallel_speedup_execute_transfers: Option<f64>,
    pub parallel_speedup_execute_erc20: Option<f64>,
    pub parallel_speedup_dependent_transfers: Option<f64>,
    pub parallel_speedup_dependent_erc20: Option<f64>,
    /// The same two ratios with each executor in its faster configuration
    /// on cached state, prefetch on or off (off skips the load and the
    /// discovery runs, which cost more than they save when nothing is
    /// cold): lower of the two workloads each.
    pub parallel_speedup_conflict_free_best: Option<f64>,
    pub parallel_speedup_dependent_best: Option<f64>,
    /// Cold state, execution phase (prefetch + execute) with prefetch off
    /// over on, same executor (parallel when available): ERC-20.
    pub prefetch_speedup_cold: Option<f64>,
    pub prefetch_speedup_cold_transfers: Option<f64>,
    /// The same ratio end to end (commit included).
    pub prefetch_speedup_cold_e2e: Option<f64>,
    /// The execution-phase ratio for ERC-20 with the serial executor, whose
    /// prefetch-off runs read one node at a time (the parallel executor's
    /// keep one read in flight per worker).
    pub prefetch_speedup_cold_serial: Option<f64>,
    pub transfers_cached_tx_per_s: Option<f64>,
    pub erc20_cached_tx_per_s: Option<f64>,
    pub transfers_cold_tx_per_s: Option<f64>,
}

/// Everything one run of `wake bench execution` measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExecReport {
    pub cpu_model: String,
    pub nproc: usize,
    pub threads: usize,
    pub io_backend: String,
    /// triedb's reads in flight per batch.
    pub io_depth: usize,
    /// Threads one large triedb batch is split across.
    pub batch_threads: usize,
    pub dir: String,
    pub parallel_executor: bool,
    /// `/proc/loadavg`'s 1-minute load when the run started and ended: on
    /// a shared machine, what else competed for the cores.
    pub loadavg_start: Option<f64>,
    pub loadavg_end: Option<f64>,
    pub txs_per_block: u64,
    pub blocks_per_run: u64,
    pub cached_accounts: u64,
    pub cached_cache_mib: u64,
    pub cached_load_s: f64,
    pub cached_db_live_bytes: u64,
    pub cold_accounts: u64,
    pub cold_token_holders: u64,
    pub cold_cache_mib: u64,
    pub cold_load_s: f64,
    pub cold_db_live_bytes: u64,
    pub cold_warmup_lookups: u64,
    #[serde(flatten)]
    pub summary: Summary,
    pub runs: Vec<RunResult>,
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (a > 0.0 && b > 0.0).then(|| a / b)
}

fn min(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl ExecReport {
    fn find(
        &self,
        state: StateMode,
        kind: Kind,
        executor: Executor,
        prefetch: bool,
    ) -> Option<&RunResult> {
        self.runs.iter().find(|r| {
            r.state == state
                && r.workload == kind
                && r.executor == executor
                && r.prefetch == prefetch
                && !r.pipelined
        })
    }

    /// The pipelined cold run of `kind`.
    fn find_pipelined(&self, kind: Kind) -> Option<&RunResult> {
        self.runs.iter().find(|r| r.state == StateMode::Cold && r.workload == kind && r.pipelined)
    }

    /// Execution phase: serial time over parallel time, cached state, both
    /// with prefetch; with `best`, each executor's faster run.
    fn parallel_speedup(&self, kind: Kind, best: bool) -> Option<f64> {
        self.parallel_ratio(kind, RunResult::exec_phase_ms, best)
    }

    /// Execution alone: serial time over parallel time, cached state.
    fn parallel_speedup_execute(&self, kind: Kind) -> Option<f64> {
        self.parallel_execute_ratio(kind)
    }

    /// `time` of the serial run over that of the parallel run, cached state:
    /// both with prefetch, or with `best` each executor's faster run (with
    /// or without).
    fn parallel_ratio(
        &self,
        kind: Kind,
        time: impl Fn(&RunResult) -> f64,
        best: bool,
    ) -> Option<f64> {
        let fastest = |executor| {
            [true, false][..if best { 2 } else { 1 }]
                .iter()
                .filter_map(|&prefetch| self.find(StateMode::Cached, kind, executor, prefetch))
                .map(&time)
                .filter(|t| *t > 0.0)
                .min_by(f64::total_cmp)
        };
        ratio(fastest(Executor::Serial)?, fastest(Executor::Parallel)?)
    }

    /// Execution alone, serial with prefetch over parallel, cached state.
    fn parallel_execute_ratio(&self, kind: Kind) -> Option<f64> {
        let serial = self.find(StateMode::Cached, kind, Executor::Serial, true)?;
        let parallel = self.find(StateMode::Cached, kind, Executor::Parallel, true)?;
        ratio(serial.execute_ms, parallel.execute_ms)
    }

    /// The executor the headline figures use: parallel when measured.
    fn best_executor(&self) -> Executor {
        if self.runs.iter().any(|r| r.executor == Executor::Parallel) {
            Executor::Parallel
        } else {
            Executor::Serial
        }
    }

    /// Cold, prefetch off over on, with the headline executor: (execution
    /// phase, end to end).
    fn prefetch_speedup(&self, kind: Kind) -> (Option<f64>, Option<f64>) {
        self.prefetch_speedup_with(kind, self.best_executor())
    }

    /// Cold, prefetch off over on, with `executor`: (execution phase, end to end).
    fn prefetch_speedup_with(&self, kind: Kind, executor: Executor) -> (Option<f64>, Option<f64>) {
        let off = self.find(StateMode::Cold, kind, executor, false);
        let on = self.find(StateMode::Cold, kind, executor, true);
        match (off, on) {
            (Some(off), Some(on)) => {
                (ratio(off.exec_phase_ms(), on.exec_phase_ms()), ratio(off.total_ms, on.total_ms))
            }
            _ => (None, None),
        }
    }

    /// Computes the summary from the runs.
    pub(super) fn finish(&mut self) {
        let executor = self.best_executor();
        let mut s = Summary::default();
        let sequential = self.find(StateMode::Cold, Kind::Erc20, executor, true);
        s.erc20_cold_sequential_tx_per_s = sequential.map(|run| run.tx_per_s);
        // The node's way when measured (commit overlapping the next block).
        if let Some(run) = self.find_pipelined(Kind::Erc20).or(sequential) {
            s.erc20_cold_tx_per_s = Some(run.tx_per_s);
            s.erc20_cold_mgas_per_s = Some(run.mgas_per_s);
            s.erc20_cold_executor = Some(run.executor);
            s.erc20_cold_pipelined = run.pipelined;
        }
        s.parallel_speedup_conflict_free_transfers = self.parallel_speedup(Kind::Transfers, false);
        s.parallel_speedup_conflict_free_erc20 = self.parallel_speedup(Kind::Erc20, false);
        s.parallel_speedup_conflict_free =
            min(s.parallel_speedup_conflict_free_transfers, s.parallel_speedup_conflict_free_erc20);
        s.parallel_speedup_dependent_transfers = self.parallel_speedup(Kind::TransfersChain, false);
        s.parallel_speedup_dependent_erc20 = self.parallel_speedup(Kind::Erc20Chain, false);
        s.parallel_speedup_dependent =
            min(s.parallel_speedup_dependent_transfers, s.parallel_speedup_dependent_erc20);
        let best = |kind| self.parallel_speedup(kind, true);
        s.parallel_speedup_conflict_free_best = min(best(Kind::Transfers), best(Kind::Erc20));
        s.parallel_speedup_dependent_best = min(best(Kind::TransfersChain), best(Kind::Erc20Chain));
        s.parallel_speedup_execute_transfers = self.parallel_speedup_execute(Kind::Transfers);
        s.parallel_speedup_execute_erc20 = self.parallel_speedup_execute(Kind::Erc20);
        (s.prefetch_speedup_cold, s.prefetch_speedup_cold_e2e) = self.prefetch_speedup(Kind::Erc20);
        s.prefetch_speedup_cold_transfers = self.prefetch_speedup(Kind::Transfers).0;
        s.prefetch_speedup_cold_serial =
            self.prefetch_speedup_with(Kind::Erc20, Executor::Serial).0;
        s.transfers_cached_tx_per_s =
            self.find(StateMode::Cached, Kind::Transfers, executor, true).map(|r| r.tx_per_s);
        s.erc20_cached_tx_per_s =
            self.find(StateMode::Cached, Kind::Erc20, executor, true).map(|r| r.tx_per_s);
        s.transfers_cold_tx_per_s =
            self.find(StateMode::Cold, Kind::Transfers, executor, true).map(|r| r.tx_per_s);
        self.summary = s;
    }

    /// One JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The targets: (name, measured, target, met).
    pub fn targets(&self) -> Vec<(&'static str, Option<f64>, f64)> {
        let s = &self.summary;
        vec![
            ("ERC-20 cold, tx/s end to end", s.erc20_cold_tx_per_s, TARGET_ERC20_COLD_TX_PER_S),
            (
                "parallel / serial, conflict-free",
                s.parallel_speedup_conflict_free,
                TARGET_SPEEDUP_CONFLICT_FREE,
            ),
            (
                "parallel / serial, dependent chain",
                s.parallel_speedup_dependent,
                TARGET_SPEEDUP_DEPENDENT,
            ),
            (
                "  the same, each in its faster config",
                s.parallel_speedup_conflict_free_best,
                TARGET_SPEEDUP_CONFLICT_FREE,
            ),
            (
                "  dependent, each in its faster config",
                s.parallel_speedup_dependent_best,
                TARGET_SPEEDUP_DEPENDENT,
            ),
            (
                "prefetch on / off, cold (ERC-20)",
                s.prefetch_speedup_cold,
                TARGET_PREFETCH_SPEEDUP_COLD,
            ),
        ]
    }

    /// The human-readable table and summary.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        let _ = writeln!(
            t,
            "wake bench execution: {} cores ({}), {} threads, backend {} at depth {} on {} batch threads, {} blocks × {} txs per run{}",
            self.nproc,
            self.cpu_model,
            self.threads,
            self.io_backend,
            self.io_depth,
            self.batch_threads,
            self.blocks_per_run,
            self.txs_per_block,
            if self.parallel_executor { "" } else { ", serial executor only" }
        );
        let load = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            t,
            "load average (1 min) at start {}, at end {}",
            load(self.loadavg_start),
            load(self.loadavg_end)
        );
        let _ = writeln!(
            t,
            "cached: {} fillers, cache {} MiB, live {:.0} MiB (load {:.1} s)",
            self.cached_accounts,
            self.cached_cache_mib,
            mib(self.cached_db_live_bytes),
            self.cached_load_s
        );
        if self.cold_db_live_bytes > 0 {
            let _ = writeln!(
                t,
                "cold:   {} fillers ({} token holders), cache {} MiB, live {:.0} MiB = {:.1}× the cache (load {:.1} s), {} warm-up lookups",
                self.cold_accounts,
                self.cold_token_holders,
                self.cold_cache_mib,
                mib(self.cold_db_live_bytes),
                mib(self.cold_db_live_bytes) / self.cold_cache_mib as f64,
                self.cold_load_s,
                self.cold_warmup_lookups
            );
        }
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:<6} {:<15} {:<8} {:<4} {:>7} {:>9} {:>8} {:>10} | {:>8} {:>8} {:>8} {:>8} | {:>8} {:>7} {:>8} | {:>5}",
            "state",
            "workload",
            "executor",
            "pf",
            "txs",
            "tx/s",
            "Mgas/s",
            "exec tx/s",
            "recover",
            "prefetch",
            "execute",
            "commit",
            "reads/tx",
            "commit",
            "KiB w/tx",
            "cores"
        );
        let _ = writeln!(t, "{:>72}| {:^35} | {:^25} | busy", "", "ms per block", "device");
        for r in &self.runs {
            let _ = writeln!(
                t,
                "{:<6} {:<15} {:<8} {:<4} {:>7} {:>9.0} {:>8.1} {:>10.0} | {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>8.2} {:>7.2} {:>8.2} | {:>5.2}",
                r.state.name(),
                r.workload.name(),
                r.executor.name(),
                r.mode()[0],
                r.txs,
                r.tx_per_s,
                r.mgas_per_s,
                r.exec_tx_per_s,
                r.per_block(r.recover_ms),
                r.per_block(r.prefetch_ms),
                r.per_block(r.execute_ms),
                r.per_block(r.commit_ms),
                r.device_reads_per_tx,
                r.commit_device_reads as f64 / r.txs.max(1) as f64,
                r.written_bytes as f64 / 1024.0 / r.txs.max(1) as f64,
                r.cores_busy
            );
        }
        for r in self.runs.iter().filter(|r| r.executor == Executor::Parallel) {
            let _ = writeln!(
                t,
                "parallel {} {}{}: {} run ahead ({} in discovery), {} held, {} at their turn, {} aborted, {} chain detections, {} serial blocks",
                r.state.name(),
                r.workload.name(),
                match (r.pipelined, r.prefetch) {
                    (true, _) => " (pipelined)",
                    (false, true) => "",
                    (false, false) => " (prefetch off)",
                },
                r.speculative,
                r.discovered,
                r.validated,
                r.exact,
                r.aborted,
                r.chain_detected,
                r.serial_fallback_blocks
            );
        }
        for r in &self.runs {
            let _ = writeln!(
                t,
                "commit {} {} {} {}: per block {:.1} ms read-ahead, {:.1} ms apply ({:.0} device \
                 reads of {:.0}), {:.1} ms sync",
                r.state.name(),
                r.workload.name(),
                r.executor.name(),
                r.mode()[1],
                r.per_block(r.commit_prefetch_ms),
                r.per_block(r.commit_apply_ms),
                r.per_block(r.commit_apply_device_reads as f64),
                r.per_block(r.commit_device_reads as f64),
                r.per_block(r.commit_sync_ms),
            );
        }
        let _ = writeln!(t);
        let s = &self.summary;
        let fmt = |v: Option<f64>| v.map_or("not measured".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            t,
            "prefetch speedup, cold, execution phase: ERC-20 {}, transfers {}; ERC-20 end to end {}; \
             ERC-20 with the serial executor {}",
            fmt(s.prefetch_speedup_cold),
            fmt(s.prefetch_speedup_cold_transfers),
            fmt(s.prefetch_speedup_cold_e2e),
            fmt(s.prefetch_speedup_cold_serial)
        );
        let _ = writeln!(
            t,
            "ERC-20 cold end to end: {} tx/s {}, {} tx/s committing each block before the next \
             (pf \"pipe\": as in the node, three stages on their own threads: senders \
             recovered a block ahead, block h + 1 prefetched and executed over h's pending \
             diff, block h committed)",
            s.erc20_cold_tx_per_s.map_or("?".into(), |v| format!("{v:.0}")),
            if s.erc20_cold_pipelined { "pipelined" } else { "sequential" },
            s.erc20_cold_sequential_tx_per_s.map_or("?".into(), |v| format!("{v:.0}")),
        );
        let _ = writeln!(
            t,
            "parallel speedup, cached, execution phase, both with prefetch (serial on one \
             core): transfers {}, ERC-20 {}, transfer chain {}, ERC-20 chain {}; each \
             executor in its faster configuration (prefetch on or off): conflict-free {}, \
             dependent {}",
            fmt(s.parallel_speedup_conflict_free_transfers),
            fmt(s.parallel_speedup_conflict_free_erc20),
            fmt(s.parallel_speedup_dependent_transfers),
            fmt(s.parallel_speedup_dependent_erc20),
            fmt(s.parallel_speedup_conflict_free_best),
            fmt(s.parallel_speedup_dependent_best)
        );
        let _ = writeln!(
            t,
            "serial execution over the parallel executor's commit of its discovered runs \
             (prefetch left out), cached: transfers {}, ERC-20 {}",
            fmt(s.parallel_speedup_execute_transfers),
            fmt(s.parallel_speedup_execute_erc20)
        );
        let _ = writeln!(t);
        let _ = writeln!(t, "{:<38} {:>12} {:>10}  verdict", "target", "measured", "target");
        for (name, value, target) in self.targets() {
            let verdict = match value {
                None => "not measured".to_string(),
                Some(v) if v >= target => "met".to_string(),
                Some(v) => format!("missed ({:.0} % of it)", 100.0 * v / target),
            };
            let _ = writeln!(t, "{name:<38} {:>12} {target:>10}  {verdict}", fmt(value));
        }
        t
    }
}
