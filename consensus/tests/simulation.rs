//! Seeded simulator suite: the CI sweep, determinism, and proof that the
//! invariant checker fires beyond the fault bound.
//!
//! A failing seed is printed with the command that replays it.

use wake_consensus::sim::invariants::Violation;
use wake_consensus::sim::{Scenario, SimConfig, SimReport, run};

/// Scenarios within the fault bound (everything but `twins-split`).
fn bounded_scenarios() -> impl Iterator<Item = Scenario> {
    Scenario::ALL.iter().copied().filter(|scenario| *scenario != Scenario::TwinsSplit)
}

fn replay_command(config: &SimConfig) -> String {
    format!(
        "cargo run --release -p wake-node -- sim --seeds 1 --first-seed {} --validators {} --byzantine {} --scenario {}",
        config.seed,
        config.validators,
        config.byzantine,
        config.scenario.name()
    )
}

/// Run `seeds` seeds of every bounded scenario with `n` validators and the
/// largest tolerated f; returns the number of runs.
fn sweep(n: usize, seeds: std::ops::Range<u64>) -> usize {
    let f = (n - 1) / 3;
    let mut runs = 0;
    let mut failures = Vec::new();
    for scenario in bounded_scenarios() {
        for seed in seeds.clone() {
            let config = SimConfig::new(seed, n, f, scenario);
            let report = run(&config).expect("valid configuration");
            runs += 1;
            if !report.violations.is_empty() {
                failures.push(format!(
                    "{:?}\n  replay: {}",
                    report.violations,
                    replay_command(&config)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs broke an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
    runs
}

// 12 scenarios x (18 + 14 + 10) seeds = 504 seeded runs; fewer seeds for
// the costlier large sets keeps the suite near one minute per core.
#[test]
fn sweep_4_validators() {
    assert_eq!(sweep(4, 0..18), 216);
}

#[test]
fn sweep_7_validators() {
    assert_eq!(sweep(7, 100..114), 168);
}

#[test]
fn sweep_10_validators() {
    assert_eq!(sweep(10, 200..210), 120);
}

/// Longer sweep: `cargo test --release -p wake-consensus -- --ignored`.
#[test]
#[ignore]
fn sweep_long() {
    for n in [4, 7, 10, 13] {
        sweep(n, 1000..1100);
    }
}

#[test]
fn same_seed_gives_the_same_log() {
    let config = SimConfig::new(42, 7, 2, Scenario::Mixed);
    let first = run(&config).unwrap();
    let second = run(&config).unwrap();
    assert_eq!(first.log_hash, second.log_hash);
    assert_eq!(first.committed_height_max, second.committed_height_max);
    let other = run(&SimConfig::new(43, 7, 2, Scenario::Mixed)).unwrap();
    assert_ne!(first.log_hash, other.log_hash);
}

#[test]
fn checker_catches_f_plus_one_byzantine() {
    for n in [4, 7, 10] {
        let f = (n - 1) / 3;
        let config = SimConfig::new(5, n, f + 1, Scenario::TwinsSplit);
        let report = run(&config).unwrap();
        assert!(
            report
                .violations
                .iter()
                .any(|violation| matches!(violation, Violation::Agreement { .. })),
            "n={n}: f+1 twinned keys across a partition must break agreement: {:?}",
            report.violations
        );
    }
}

#[test]
fn too_many_byzantine_is_refused_within_the_bound() {
    assert!(run(&SimConfig::new(1, 4, 2, Scenario::Silent)).is_err());
}

fn drops(report: &SimReport, reason: &str) -> u64 {
    report.drops_by_reason.get(reason).copied().unwrap_or(0)
}

#[test]
fn bad_input_is_dropped_and_counted_by_reason() {
    let spam = run(&SimConfig::new(3, 4, 1, Scenario::Spam)).unwrap();
    assert!(drops(&spam, "InvalidSignature") > 0, "{:?}", spam.drops_by_reason);
    let oversized = run(&SimConfig::new(3, 4, 1, Scenario::Oversized)).unwrap();
    assert!(drops(&oversized, "Oversized") > 0 && drops(&oversized, "Malformed") > 0);
    let replay = run(&SimConfig::new(3, 4, 1, Scenario::Replay)).unwrap();
    assert!(drops(&replay, "Stale") + drops(&replay, "Duplicate") > 0);
    for report in [&spam, &oversized, &replay] {
        assert!(report.violations.is_empty(), "{:?}", report.violations);
    }
}

#[test]
fn equivocation_is_kept_as_evidence() {
    let double = run(&SimConfig::new(3, 4, 1, Scenario::DoubleVote)).unwrap();
    assert!(double.evidence_total > 0 && drops(&double, "Equivocation") > 0);
    let equivocation = run(&SimConfig::new(3, 7, 2, Scenario::Equivocation)).unwrap();
    assert!(equivocation.evidence_total > 0, "{:?}", equivocation.drops_by_reason);
}
