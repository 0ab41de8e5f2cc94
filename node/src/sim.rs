//! `wake sim`: seeded consensus simulations (see `wake_consensus::sim`).
//!
//! Runs `--seeds` seeds from `--first-seed` of one scenario (or `all`) with
//! `--validators` validators of which `--byzantine` misbehave (default: the
//! most the protocol tolerates, ⌊(n-1)/3⌋). Prints one line per failing seed
//! with its violations and the command that replays it, then a summary;
//! `--json` prints the summary as one JSON line instead. Exit status 1 when
//! any invariant broke.

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use wake_consensus::sim::{Scenario, SimConfig, run as run_sim};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// How many seeds to run (per scenario).
    #[arg(long, value_name = "N", default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, value_name = "SEED", default_value_t = 0)]
    first_seed: u64,
    /// Validators in the set.
    #[arg(long, value_name = "N", default_value_t = 4)]
    validators: usize,
    /// Byzantine validators (default ⌊(n-1)/3⌋; `twins-split` needs more).
    #[arg(long, value_name = "F")]
    byzantine: Option<usize>,
    /// happy, lossy, partition, crash, equivocation, double-vote, silent,
    /// spam, replay, oversized, twins, mixed, twins-split, or all (every
    /// scenario within the fault bound).
    #[arg(long, value_name = "NAME", default_value = "mixed")]
    scenario: String,
    /// One JSON summary line on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let scenarios: Vec<Scenario> = if args.scenario == "all" {
        Scenario::ALL.iter().copied().filter(|s| *s != Scenario::TwinsSplit).collect()
    } else {
        vec![Scenario::from_name(&args.scenario).with_context(|| {
            format!("unknown scenario {:?} (see `wake sim --help`)", args.scenario)
        })?]
    };
    let byzantine = args.byzantine.unwrap_or(args.validators.saturating_sub(1) / 3);
    let started = Instant::now();
    let (mut runs, mut failing_runs, mut violations) = (0u64, 0u64, 0u64);
    let mut first_failing: Option<(u64, Scenario)> = None;
    let mut committed_height_min = u64::MAX;
    for scenario in &scenarios {
        for seed in args.first_seed..args.first_seed.saturating_add(args.seeds) {
            let config = SimConfig::new(seed, args.validators, byzantine, *scenario);
            let report = run_sim(&config).map_err(anyhow::Error::msg)?;
            runs += 1;
            committed_height_min = committed_height_min.min(report.committed_height_max);
            if report.violations.is_empty() {
                continue;
            }
            failing_runs += 1;
            violations += report.violations.len() as u64;
            first_failing.get_or_insert((seed, *scenario));
            if !args.json {
                println!(
                    "FAIL seed {seed} scenario {}: {:?}\n  replay: {}",
                    scenario.name(),
                    report.violations,
                    replay_command(seed, args.validators, byzantine, *scenario)
                );
            }
        }
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if args.json {
        let line = serde_json::json!({
            "scenarios": runs,
            "violations": violations,
            "failing_runs": failing_runs,
            "first_failing_seed": first_failing.map(|(seed, _)| seed),
            "first_failing_scenario": first_failing.map(|(_, scenario)| scenario.name()),
            "validators": args.validators,
            "byzantine": byzantine,
            "scenario": args.scenario,
            "committed_height_min": if runs == 0 { 0 } else { committed_height_min },
            "elapsed_ms": elapsed_ms,
        });
        println!("{line}");
    } else {
        println!(
            "{runs} scenarios ({} x {} seeds from {}), n={} f={byzantine}: {failing_runs} failed, \
             {violations} violations, every run committed >= {} blocks, {:.1} s",
            args.scenario,
            args.seeds,
            args.first_seed,
            args.validators,
            if runs == 0 { 0 } else { committed_height_min },
            elapsed_ms as f64 / 1000.0
        );
        if let Some((seed, scenario)) = first_failing {
            println!(
                "first failing seed: {seed}\n  replay: {}",
                replay_command(seed, args.validators, byzantine, scenario)
            );
        }
    }
    if failing_runs > 0 {
        bail!("{failing_runs} of {runs} simulations broke an invariant");
    }
    Ok(())
}

fn replay_command(seed: u64, validators: usize, byzantine: usize, scenario: Scenario) -> String {
    format!(
        "cargo run --release -p wake-node -- sim --seeds 1 --first-seed {seed} --validators {validators} \
         --byzantine {byzantine} --scenario {}",
        scenario.name()
    )
}
