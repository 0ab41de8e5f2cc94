//! `wake bench consensus`: what the consensus core costs and how fast it
//! commits.
//!
//! **Simulation** (this file, today): every pair of `--validators` ×
//! `--latency-ms` runs through the timed simulator
//! [`wake_consensus::sim::bench`]: honest validators, a fixed one-way
//! latency, no drops, each validator a single server charged with the CPU
//! time its `Core::handle` calls took (the thread CPU clock, so time the
//! shared machine gave to other processes is not charged). Per run it
//! reports blocks per second, commit latency in milliseconds and in
//! message delays (p50/p99), the latency to a QC, messages, bytes and CPU
//! per block. The model and the expected constants are in that module's
//! doc.
//!
//! **Loopback** (`crate::bench_loopback`): 4 `wake node` processes on
//! 127.0.0.1 over real libp2p, ordering only: rounds and blocks per second
//! and commit latency (the leader's proposal clock to the commit, at every
//! validator) p50/p99.
//!
//! The report is built of sections: the table prints each under its own
//! heading and `--json` gives one object per section under its name
//! (`"simulation"`, `"loopback"`).

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};
use wake_benches::progress::Bars;
use wake_consensus::sim::bench::{
    BenchConfig, BenchProgress, BenchReport, CpuCost, Spread, run_bench, wall_clock_ns,
};
use wake_node::profile::thread_cpu_ns;

#[derive(Debug, Args)]
pub struct ConsensusArgs {
    /// Shorter runs: 50 measured blocks over at least 200 virtual ms each.
    #[arg(long)]
    quick: bool,
    /// Validator counts to simulate.
    #[arg(long, value_name = "N,...", value_delimiter = ',', default_values_t = [4usize, 10, 50])]
    validators: Vec<usize>,
    /// One-way link latencies to simulate, in milliseconds.
    #[arg(long, value_name = "MS,...", value_delimiter = ',', default_values_t = [0u64, 50])]
    latency_ms: Vec<u64>,
    /// Uniform extra delay per message, 0 to this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    jitter_ms: u64,
    /// Time to make a vote's journal record durable, in microseconds.
    #[arg(long, value_name = "US", default_value_t = 0)]
    journal_us: u64,
    /// Bytes of every block's payload.
    #[arg(long, value_name = "B", default_value_t = 0)]
    payload_bytes: usize,
    /// Blocks each run measures, at least [default: 200, or 50 with --quick].
    #[arg(long, value_name = "B")]
    commits_min: Option<u64>,
    /// Virtual milliseconds each run measures, at least [default: 1000, or 200 with --quick].
    #[arg(long, value_name = "MS")]
    measure_ms: Option<u64>,
    /// Charge wall time instead of the thread's CPU time.
    #[arg(long)]
    wall_clock: bool,
    /// Seed of the keys and the jitter.
    #[arg(long, default_value_t = 0xc0de)]
    seed: u64,
    /// Print one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long)]
    no_progress: bool,
    /// Seconds of the loopback run (4 `wake node` processes over real
    /// libp2p); 0 skips it [default: 20, or 8 with --quick].
    #[arg(long, value_name = "S")]
    loopback_seconds: Option<u64>,
}

/// What charged the CPU time of the runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CpuClock {
    Thread,
    Wall,
}

impl CpuClock {
    fn name(self) -> &'static str {
        match self {
            CpuClock::Thread => "thread CPU time",
            CpuClock::Wall => "wall time",
        }
    }

    fn cost(self) -> CpuCost {
        match self {
            CpuClock::Thread => CpuCost::Measured { clock: thread_cpu_ns },
            CpuClock::Wall => CpuCost::Measured { clock: wall_clock_ns },
        }
    }
}

/// True when the thread CPU clock reads and moves.
fn thread_clock_works() -> bool {
    let before = thread_cpu_ns();
    let mut spin = 0u64;
    for i in 0..200_000u64 {
        spin = std::hint::black_box(spin.wrapping_add(i));
    }
    before > 0 && thread_cpu_ns() > before
}

/// The whole report: one section per part of the benchmark.
pub struct ConsensusReport {
    simulation: SimulationSection,
    loopback: Option<crate::bench_loopback::LoopbackSection>,
}

struct SimulationSection {
    cpu_clock: CpuClock,
    args_summary: Value,
    runs: Vec<BenchReport>,
    load_start: Option<f64>,
    load_end: Option<f64>,
}

pub fn run(args: &ConsensusArgs) -> anyhow::Result<ConsensusReport> {
    let simulation = run_simulation(args)?;
    let seconds = args.loopback_seconds.unwrap_or(if args.quick { 8 } else { 20 });
    let loopback = match seconds {
        0 => None,
        seconds => Some(crate::bench_loopback::run(4, seconds)?),
    };
    Ok(ConsensusReport { simulation, loopback })
}

fn run_simulation(args: &ConsensusArgs) -> anyhow::Result<SimulationSection> {
    let (commits_default, measure_default) = if args.quick { (50, 200) } else { (200, 1_000) };
    let commits_min = args.commits_min.unwrap_or(commits_default);
    let measure_ms_min = args.measure_ms.unwrap_or(measure_default);
    let cpu_clock =
        if !args.wall_clock && thread_clock_works() { CpuClock::Thread } else { CpuClock::Wall };
    let bars = Bars { enabled: !args.no_progress };
    let load_start = loadavg();
    let mut runs = Vec::new();
    for &latency_ms in &args.latency_ms {
        for &validators in &args.validators {
            let config = BenchConfig {
                jitter_us: args.jitter_ms.saturating_mul(1_000),
                cost: cpu_clock.cost(),
                journal_us: args.journal_us,
                payload_bytes: args.payload_bytes,
                commits_min,
                measure_ms_min,
                seed: args.seed,
                ..BenchConfig::new(validators, latency_ms.saturating_mul(1_000))
            };
            let bar =
                bars.count(&format!("n={validators} L={latency_ms}ms"), commits_min, "blocks");
            let mut on_progress = |progress: BenchProgress| {
                bar.set_position(progress.measured_blocks.min(progress.commits_min));
                bar.set_message(format!(
                    "virtual {}/{} ms",
                    progress.measured_ms, progress.measure_ms_min
                ));
            };
            let report = run_bench(&config, &mut on_progress).with_context(|| {
                format!("simulation of {validators} validators at {latency_ms} ms")
            })?;
            bar.finish_and_clear();
            if !args.no_progress {
                eprintln!("{}", run_line(&report));
            }
            runs.push(report);
        }
    }
    let args_summary = json!({
        "jitter_ms": args.jitter_ms,
        "journal_us": args.journal_us,
        "payload_bytes": args.payload_bytes,
        "commits_min": commits_min,
        "measure_ms_min": measure_ms_min,
        "quick": args.quick,
        "seed": args.seed,
    });
    Ok(SimulationSection { cpu_clock, args_summary, runs, load_start, load_end: loadavg() })
}

/// The 1-minute load average, from `/proc/loadavg`.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// One finished run, for the progress output.
fn run_line(report: &BenchReport) -> String {
    format!(
        "n={} L={} ms: {:.1} blocks/s, commit p50 {:.2} ms, {} blocks in {:.1} s",
        report.config.validators,
        report.config.latency_us as f64 / 1_000.0,
        report.blocks_per_s,
        report.commit_latency_ms.p50,
        report.blocks,
        report.wall_ms as f64 / 1_000.0
    )
}

fn spread_json(spread: &Spread) -> Value {
    json!({ "p50": spread.p50, "p99": spread.p99, "min": spread.min, "max": spread.max,
            "mean": spread.mean, "samples": spread.count })
}

fn run_json(report: &BenchReport) -> Value {
    json!({
        "validators": report.config.validators,
        "latency_ms": report.config.latency_us as f64 / 1_000.0,
        "blocks_per_s": report.blocks_per_s,
        "commit_latency_ms": spread_json(&report.commit_latency_ms),
        "commit_latency_delays": report.commit_latency_delays.as_ref().map(spread_json),
        "certify_latency_ms": spread_json(&report.certify_latency_ms),
        "certify_latency_delays": report.certify_latency_delays.as_ref().map(spread_json),
        "messages_per_block": report.messages_per_block,
        "bytes_per_block": report.bytes_per_block,
        "cpu_us_per_block": report.cpu_us_per_block,
        "busy_max_pct": report.busy_max_pct,
        "timeouts": report.timeouts,
        "blocks": report.blocks,
        "measured_ms": report.measured_ms,
        "wall_ms": report.wall_ms,
    })
}

impl ConsensusReport {
    pub fn to_json(&self) -> String {
        let simulation = &self.simulation;
        json!({
            "bench": "consensus",
            "simulation": {
                "cpu_clock": simulation.cpu_clock.name(),
                "settings": simulation.args_summary,
                "load_average_start": simulation.load_start,
                "load_average_end": simulation.load_end,
                "runs": simulation.runs.iter().map(run_json).collect::<Vec<_>>(),
            },
            "loopback": self.loopback.as_ref().map(crate::bench_loopback::LoopbackSection::to_json),
        })
        .to_string()
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let simulation = &self.simulation;
        let load = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            t,
            "wake bench consensus — simulation: honest validators, fixed one-way latency, \
             each validator one server charged its core's {}; load average {} → {}",
            simulation.cpu_clock.name(),
            load(simulation.load_start),
            load(simulation.load_end)
        );
        let _ = writeln!(
            t,
            "{:>4} {:>7} {:>9} | {:>22} | {:>13} | {:>16} | {:>8} {:>9} {:>9} {:>6} | {:>6} {:>6}",
            "n",
            "L (ms)",
            "blocks/s",
            "commit p50/p99 (ms)",
            "(delays)",
            "certified p50 ms",
            "msgs/blk",
            "bytes/blk",
            "cpu µs/blk",
            "busy%",
            "blocks",
            "wall s"
        );
        for run in &simulation.runs {
            let delays = run
                .commit_latency_delays
                .map_or("-".to_string(), |d| format!("{:.2}/{:.2}", d.p50, d.p99));
            let certified = match run.certify_latency_delays {
                Some(d) => format!("{:.2} ({:.2} d)", run.certify_latency_ms.p50, d.p50),
                None => format!("{:.3}", run.certify_latency_ms.p50),
            };
            let _ = writeln!(
                t,
                "{:>4} {:>7} {:>9.1} | {:>22} | {:>13} | {:>16} | {:>8.1} {:>9.0} {:>9.0} {:>6.1} | {:>6} {:>6.1}",
                run.config.validators,
                run.config.latency_us as f64 / 1_000.0,
                run.blocks_per_s,
                format!("{:.3}/{:.3}", run.commit_latency_ms.p50, run.commit_latency_ms.p99),
                delays,
                certified,
                run.messages_per_block,
                run.bytes_per_block,
                run.cpu_us_per_block,
                run.busy_max_pct,
                run.blocks,
                run.wall_ms as f64 / 1_000.0
            );
            if run.timeouts > 0 {
                let _ = writeln!(
                    t,
                    "     ^ {} timeouts in the window: not a clean happy path",
                    run.timeouts
                );
            }
        }
        let wall_s: f64 = simulation.runs.iter().map(|r| r.wall_ms as f64 / 1_000.0).sum();
        let _ = writeln!(
            t,
            "{} runs in {wall_s:.1} s. commit = proposal sent → committed, over every (block, \
             validator); delays = ms / one-way latency; certified = proposal sent → QC known; \
             cpu = charged to all validators per block; busy% = busiest validator's share of the window.",
            simulation.runs.len()
        );
        if let Some(loopback) = &self.loopback {
            t.push_str(&loopback.table());
        }
        t
    }
}
