//! `wake replay <dir>`: executes real mainnet blocks stored in the pevm
//! layout (see `wake_execution::replay`) and checks each against its
//! header: gas used, blob gas used, logs bloom, and the receipts root from
//! Byzantium on. Before Byzantium the receipts root is not checkable
//! (receipts carry intermediate state roots; the pre-state is partial) and
//! is counted as `receipts_root_unchecked`, never as a match. The state
//! root is never checked.
//!
//! Prints one line per block (number, fork, transactions, gas, execution
//! time and Mgas/s, `ok` or `MISMATCH` with the fields), then totals;
//! `--json` adds one summary line on stdout. Exit status 1 on any mismatch.
//!
//! Timing covers execution only (`execute_block` and its receipts root,
//! bloom and state diff); reading the JSON, converting the block and
//! recovering senders happen before the clock starts. With `--repeat R`
//! each block is executed R times and the median time counts; every run is
//! checked. Mgas/s = total gas / total execution time. Tables revm builds
//! lazily once per process (c-kzg's trusted setup, seconds here) are built
//! before the first block, outside the clock, and reported apart.
//!
//! Every block from Byzantium on also runs through the parallel executor
//! (`--threads`), checked against the header and against the serial
//! outcome field by field (receipts, gas, bloom, state diff). Earlier
//! blocks need a state root per receipt, which the parallel executor does
//! not compute: their parallel column reads `n/a`. The parallel Mgas/s is
//! over the blocks that ran in parallel, next to the serial Mgas/s of the
//! same blocks; a block the parallel executor hands to its serial path (one
//! thread, under two transactions) says so on its line.

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wake_execution::replay::{
    Mismatch, ReplayBlock, block_dirs, check_header, compare_outcomes, execute_serial, warm_up,
};
use wake_execution::{BlockError, BlockOutcome, ChainSpec, SerialReason, execute_block_parallel};

/// Most executions of one block per executor (`--repeat`).
const REPEAT_MAX: u32 = 1000;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A block directory (holding block.json, pre_state.json and optionally
    /// block_hashes.json), or a directory of such directories.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Print a JSON summary line on stdout at the end.
    #[arg(long)]
    json: bool,
    /// Threads of the parallel executor and of sender recovery [default:
    /// available parallelism].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Executions of each block per executor; the median time counts.
    #[arg(long, value_name = "R", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(REPEAT_MAX)))]
    repeat: u32,
}

/// What one block's replay found.
struct BlockReport {
    number: u64,
    fork: String,
    txs: usize,
    gas: u64,
    receipts_root_checked: bool,
    serial: Duration,
    /// `None` when the block cannot run in parallel (pre-Byzantium).
    parallel: Option<Duration>,
    /// Why the parallel executor ran the block serially, if it did.
    parallel_serial_reason: Option<SerialReason>,
    /// Every difference found, each prefixed with what was compared.
    mismatches: Vec<String>,
}

pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    let dirs = block_dirs(&args.dir).with_context(|| format!("listing {}", args.dir.display()))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let chain = ChainSpec::mainnet();
    tracing::info!(blocks = dirs.len(), threads, repeat = args.repeat, "replaying blocks");

    // One-time set-up of lazily built tables (KZG), outside the clock.
    let started = Instant::now();
    warm_up();
    let warm_up_time = started.elapsed();

    let bar = progress_bar(dirs.len(), args.no_progress);
    let mut reports = Vec::with_capacity(dirs.len());
    let mut load_time = Duration::ZERO;
    for dir in &dirs {
        bar.set_message(
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        );
        let started = Instant::now();
        let block = ReplayBlock::load(dir, &chain, threads)
            .with_context(|| format!("loading {}", dir.display()))?;
        load_time += started.elapsed();
        let report = replay_block(&chain, &block, threads, args.repeat);
        bar.suspend(|| println!("{}", line(&report)));
        reports.push(report);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let totals = Totals::of(&reports);
    println!(
        "{} blocks, {} txs, {:.1} Mgas: serial {:.1} ms ({:.1} Mgas/s), parallel {} ({} threads); \
         {} mismatched, {} with receipts root not checkable (pre-Byzantium); \
         loading and sender recovery {:.1} ms, one-time KZG set-up {:.1} ms (not timed)",
        reports.len(),
        totals.txs,
        totals.gas as f64 / 1e6,
        ms(totals.serial),
        mgas_per_s(totals.gas, totals.serial),
        match totals.parallel {
            Some(p) => format!(
                "{:.1} ms ({:.1} Mgas/s) over {} blocks of {:.1} Mgas (serial {:.1} Mgas/s on them)",
                ms(p.parallel),
                mgas_per_s(p.gas, p.parallel),
                p.blocks,
                p.gas as f64 / 1e6,
                mgas_per_s(p.gas, p.serial),
            ),
            None => "n/a".to_string(),
        },
        threads,
        totals.mismatched,
        totals.receipts_root_unchecked,
        ms(load_time),
        ms(warm_up_time),
    );
    if args.json {
        let json = serde_json::json!({
            "blocks": reports.len(),
            "mismatches": totals.mismatched,
            "mismatched_blocks": reports
                .iter()
                .filter(|r| !r.mismatches.is_empty())
                .map(|r| r.number)
                .collect::<Vec<_>>(),
            "receipts_root_unchecked": totals.receipts_root_unchecked,
            "txs": totals.txs,
            "gas": totals.gas,
            "serial_ms": ms(totals.serial),
            "serial_mgas_per_s": mgas_per_s(totals.gas, totals.serial),
            "parallel_blocks": totals.parallel.map_or(0, |p| p.blocks),
            "parallel_ms": totals.parallel.map(|p| ms(p.parallel)),
            "parallel_mgas_per_s": totals.parallel.map(|p| mgas_per_s(p.gas, p.parallel)),
            "serial_mgas_per_s_parallel_blocks": totals.parallel.map(|p| mgas_per_s(p.gas, p.serial)),
            "threads": threads,
            "repeat": args.repeat,
            "load_ms": ms(load_time),
            "warm_up_ms": ms(warm_up_time),
        });
        println!("{json}");
    }
    anyhow::ensure!(
        totals.mismatched == 0,
        "{} of {} blocks mismatched",
        totals.mismatched,
        reports.len()
    );
    Ok(())
}

/// Executes `block` `repeat` times with each executor, checks every run
/// against the header and the parallel runs against the serial one.
fn replay_block(
    chain: &ChainSpec,
    block: &ReplayBlock,
    threads: usize,
    repeat: u32,
) -> BlockReport {
    let mut mismatches = Vec::new();
    let (serial_times, serial_outcome) =
        timed_runs("serial", block, repeat, None, &mut mismatches, || {
            Some(execute_serial(chain, block))
        });
    let reference = serial_outcome.as_ref().map(|outcome| ("serial", outcome));
    let mut parallel_serial_reason = None;
    let (parallel_times, _) =
        timed_runs("parallel", block, repeat, reference, &mut mismatches, || {
            // Receipts before Byzantium need a state root per transaction.
            block.receipts_root_checkable().then(|| {
                execute_block_parallel(
                    chain,
                    &block.block,
                    &block.senders,
                    block.state.clone(),
                    threads,
                )
                .map(|(outcome, stats)| {
                    parallel_serial_reason = stats.serial;
                    outcome
                })
            })
        });
    mismatches.dedup();

    BlockReport {
        number: block.number(),
        fork: block.spec.to_string(),
        txs: block.block.body.transactions.len(),
        gas: block.block.header.gas_used,
        receipts_root_checked: block.receipts_root_checkable(),
        serial: median(serial_times),
        parallel: (!parallel_times.is_empty()).then(|| median(parallel_times)),
        parallel_serial_reason,
        mismatches,
    }
}

/// Runs `execute` `repeat` times (it answers `None` when there is no such
/// executor), timing each run and checking it against the header and
/// against `reference`, or without one against the first run. Returns the
/// run times and the first outcome.
fn timed_runs(
    name: &str,
    block: &ReplayBlock,
    repeat: u32,
    reference: Option<(&str, &BlockOutcome)>,
    mismatches: &mut Vec<String>,
    mut execute: impl FnMut() -> Option<Result<BlockOutcome, BlockError>>,
) -> (Vec<Duration>, Option<BlockOutcome>) {
    let mut times = Vec::with_capacity(repeat as usize);
    let mut first: Option<BlockOutcome> = None;
    for _ in 0..repeat {
        let started = Instant::now();
        let Some(result) = execute() else { break };
        times.push(started.elapsed());
        match result {
            Ok(outcome) => {
                note(mismatches, &format!("{name} vs header"), check_header(block, &outcome));
                if let Some((against, expected)) =
                    reference.or(first.as_ref().map(|first| (name, first)))
                {
                    let what = format!("{name} vs {against}");
                    note(mismatches, &what, compare_outcomes(expected, &outcome));
                }
                first.get_or_insert(outcome);
            }
            Err(e) => mismatches.push(format!("{name}: {e}")),
        }
    }
    (times, first)
}

fn note(out: &mut Vec<String>, what: &str, mismatches: Vec<Mismatch>) {
    out.extend(mismatches.into_iter().map(|m| format!("{what}: {m}")));
}

/// One block's line: number, fork, txs, gas, times, Mgas/s, verdict.
fn line(r: &BlockReport) -> String {
    let parallel = match (r.parallel, r.parallel_serial_reason) {
        (None, _) => format!("parallel {:>25}", "n/a"),
        (Some(t), reason) => format!(
            "parallel {:>8.2} ms {:>7.1} Mgas/s{}",
            ms(t),
            mgas_per_s(r.gas, t),
            reason.map_or(String::new(), |reason| format!(" (ran serially: {reason:?})")),
        ),
    };
    let verdict = if r.mismatches.is_empty() {
        if r.receipts_root_checked {
            "ok".to_string()
        } else {
            "ok (gas, bloom; receipts root not checkable: pre-Byzantium)".to_string()
        }
    } else {
        format!("MISMATCH {}", r.mismatches.join("; "))
    };
    format!(
        "{:>9} {:<10} {:>5} txs {:>9} gas  serial {:>8.2} ms {:>7.1} Mgas/s  {parallel}  {verdict}",
        r.number,
        r.fork,
        r.txs,
        r.gas,
        ms(r.serial),
        mgas_per_s(r.gas, r.serial),
    )
}

struct Totals {
    txs: usize,
    gas: u64,
    serial: Duration,
    /// Over the blocks that ran in parallel; `None` when none did.
    parallel: Option<ParallelTotals>,
    mismatched: usize,
    receipts_root_unchecked: usize,
}

impl Totals {
    fn of(reports: &[BlockReport]) -> Totals {
        Totals {
            txs: reports.iter().map(|r| r.txs).sum(),
            gas: reports.iter().map(|r| r.gas).sum(),
            serial: reports.iter().map(|r| r.serial).sum(),
            parallel: ParallelTotals::of(reports),
            mismatched: reports.iter().filter(|r| !r.mismatches.is_empty()).count(),
            receipts_root_unchecked: reports.iter().filter(|r| !r.receipts_root_checked).count(),
        }
    }
}

/// The blocks that ran in parallel: their gas, and both executors' time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ParallelTotals {
    blocks: usize,
    gas: u64,
    parallel: Duration,
    serial: Duration,
}

impl ParallelTotals {
    fn of(reports: &[BlockReport]) -> Option<ParallelTotals> {
        let mut totals = None;
        for r in reports {
            if let Some(parallel) = r.parallel {
                let t = totals.get_or_insert(ParallelTotals {
                    blocks: 0,
                    gas: 0,
                    parallel: Duration::ZERO,
                    serial: Duration::ZERO,
                });
                t.blocks += 1;
                t.gas += r.gas;
                t.parallel += parallel;
                t.serial += r.serial;
            }
        }
        totals
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mgas_per_s(gas: u64, time: Duration) -> f64 {
    let secs = time.as_secs_f64();
    if secs > 0.0 { gas as f64 / 1e6 / secs } else { 0.0 }
}

fn progress_bar(blocks: usize, hidden: bool) -> ProgressBar {
    let bar = if hidden || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(Some(blocks as u64), ProgressDrawTarget::stderr_with_hz(4))
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:36.cyan/blue}] {pos}/{len} blocks {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix("replay");
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let d = Duration::from_millis;
        assert_eq!(median(vec![d(3), d(1), d(2)]), d(2));
        assert_eq!(median(vec![d(4), d(1)]), d(4));
        assert_eq!(median(Vec::new()), Duration::ZERO);
    }

    #[test]
    fn parallel_totals_cover_only_blocks_that_ran_in_parallel() {
        let report = |parallel| BlockReport {
            number: 1,
            fork: "Cancun".into(),
            txs: 1,
            gas: 21_000,
            receipts_root_checked: true,
            serial: Duration::from_millis(1),
            parallel,
            parallel_serial_reason: None,
            mismatches: Vec::new(),
        };
        let some = Some(Duration::from_millis(2));
        let totals = Totals::of(&[report(some), report(None), report(some)]);
        assert_eq!(totals.serial, Duration::from_millis(3));
        assert_eq!(
            totals.parallel,
            Some(ParallelTotals {
                blocks: 2,
                gas: 42_000,
                parallel: Duration::from_millis(4),
                serial: Duration::from_millis(2),
            })
        );
        assert_eq!(Totals::of(&[report(None)]).parallel, None);
    }
}
