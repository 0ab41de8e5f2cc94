//! The timed simulator of `wake bench consensus` against what the protocol
//! implies.
//!
//! With no CPU cost the happy path is pure message delays, so its figures
//! are exact: a block is certified 2 delays after its proposal at the next
//! leader and 3 elsewhere, committed 4 delays after at the leader of the
//! round after next and 5 elsewhere; a round is one proposal delay plus one
//! vote delay (plus the vote's journal write), so blocks/s = 1 / (2L + j);
//! a round sends n-1 proposal copies and n-1 votes (the next leader's own
//! vote stays inside it). With a CPU cost every figure can only get worse.

use wake_consensus::sim::bench::{
    BenchConfig, BenchError, BenchReport, CpuCost, Spread, run_bench, wall_clock_ns,
};

fn run(config: &BenchConfig) -> BenchReport {
    run_bench(config, &mut |_| {}).expect("the happy path finishes")
}

/// A short run: `commits_min` blocks, no minimum virtual time.
fn short(validators: usize, latency_ms: u64, cost: CpuCost, commits_min: u64) -> BenchConfig {
    BenchConfig {
        cost,
        warmup_blocks: 5,
        commits_min,
        measure_ms_min: 0,
        ..BenchConfig::new(validators, latency_ms * 1_000)
    }
}

/// Quorum of `n` validators of equal stake: more than 2/3.
fn quorum(n: u64) -> u64 {
    2 * n / 3 + 1
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!((actual - expected).abs() < 1e-9, "{what}: {actual}, expected {expected}");
}

#[test]
fn network_only_happy_path_matches_the_protocol_exactly() {
    for n in [4usize, 7] {
        let report = run(&short(n, 50, CpuCost::None, 20));
        let blocks = report.blocks;
        assert!(blocks >= 20, "n={n}: measured {blocks} blocks");
        let commit = report.commit_latency_delays.expect("latency > 0");
        assert_eq!(commit.count, blocks * n as u64, "n={n}: a sample per block and validator");
        assert_close(commit.min, 4.0, "commit min (leader of r+2)");
        assert_close(commit.p50, 5.0, "commit p50");
        assert_close(commit.max, 5.0, "commit max");
        // Exactly one validator per block sees the commit at 4 delays.
        assert_close(commit.mean, 5.0 - 1.0 / n as f64, "commit mean");
        assert_close(report.commit_latency_ms.p50, 250.0, "commit p50 in ms");
        let certify = report.certify_latency_delays.expect("latency > 0");
        assert_close(certify.min, 2.0, "certify min (next leader)");
        assert_close(certify.max, 3.0, "certify max");
        assert_close(report.blocks_per_s, 1000.0 / (2.0 * 50.0), "blocks/s");
        assert_close(report.messages_per_block, 2.0 * (n as f64 - 1.0), "messages per block");
        assert_eq!(report.timeouts, 0, "n={n}: no round timed out");
        assert_eq!(report.ledger_requests, 0, "n={n}: no block had to be fetched");
        assert_close(report.cpu_us_per_block, 0.0, "no CPU charged");
    }
}

#[test]
fn the_vote_journal_adds_to_every_round() {
    let journal_us = 3_000;
    let config = BenchConfig { journal_us, ..short(4, 50, CpuCost::None, 20) };
    let report = run(&config);
    let (latency_ms, journal_ms) = (50.0, journal_us as f64 / 1_000.0);
    // A round: proposal out, vote persisted, vote to the next leader.
    assert_close(report.blocks_per_s, 1000.0 / (2.0 * latency_ms + journal_ms), "blocks/s");
    // Two vote rounds lie between a proposal and its commit.
    let commit: Spread = report.commit_latency_ms;
    assert_close(commit.max, 5.0 * latency_ms + 2.0 * journal_ms, "commit max (ms)");
    assert_close(commit.min, 4.0 * latency_ms + 2.0 * journal_ms, "commit min (ms)");
}

#[test]
fn jitter_only_delays_and_stays_deterministic() {
    let config = BenchConfig { jitter_us: 20_000, seed: 7, ..short(4, 50, CpuCost::None, 20) };
    let first = run(&config);
    let second = run(&config);
    assert_eq!(first.commit_latency_ms, second.commit_latency_ms, "same seed, same run");
    assert_eq!(first.blocks_per_s, second.blocks_per_s);
    // Every delay lies in [50, 70] ms: 4 to 5 delays of at least 50 ms each,
    // and at most 5 of at most 70 ms.
    assert!(first.commit_latency_ms.min >= 4.0 * 50.0 - 1e-9);
    assert!(first.commit_latency_ms.max <= 5.0 * 70.0 + 1e-9);
    assert!(first.blocks_per_s <= 1000.0 / (2.0 * 50.0) + 1e-9);
    assert!(first.blocks_per_s >= 1000.0 / (2.0 * 70.0) - 1e-9);
}

/// At zero latency with a fixed cost `c` per handled input, the next
/// leader's vote count gates the round: a peer's vote is sent after it
/// handled the proposal and its journal completion (2c), and the leader
/// handles quorum-1 peer votes one by one (it counts its own), so a round
/// takes at least (q + 1) c, and blocks/s <= 1 / ((q + 1) c).
#[test]
fn zero_latency_fixed_cost_is_bounded_by_the_leaders_vote_work() {
    let cost_ns = 10_000u64;
    let mut previous = f64::INFINITY;
    for n in [4usize, 7, 13] {
        let report = run(&short(n, 0, CpuCost::Fixed { ns: cost_ns }, 50));
        let bound = 1e9 / ((quorum(n as u64) + 1) * cost_ns) as f64;
        assert!(
            report.blocks_per_s <= bound + 1e-6,
            "n={n}: {} blocks/s above the bound {bound}",
            report.blocks_per_s
        );
        // Nothing else is on the critical path: the votes that arrive after
        // the quorum are handled after the proposal left, and a tick every
        // 50 ms costs one c now and then.
        assert!(
            report.blocks_per_s >= 0.99 * bound,
            "n={n}: {} blocks/s far below the bound {bound}",
            report.blocks_per_s
        );
        assert!(report.blocks_per_s < previous, "n={n}: more validators, more blocks/s");
        assert!(report.commit_latency_delays.is_none(), "no delays at zero latency");
        assert_eq!(report.timeouts, 0);
        previous = report.blocks_per_s;
    }
}

#[test]
fn measured_cpu_only_slows_the_network_bound() {
    let cost = CpuCost::Measured { clock: wall_clock_ns };
    let report = run(&short(4, 50, cost, 20));
    assert!(report.blocks_per_s <= 1000.0 / (2.0 * 50.0) + 1e-9, "{}", report.blocks_per_s);
    let commit = report.commit_latency_delays.expect("latency > 0");
    assert!(commit.min >= 4.0 && commit.p50 >= 5.0, "{commit:?}");
    assert!(report.cpu_us_per_block > 0.0, "the cores' work is charged");
    assert_eq!(report.timeouts, 0);
}

#[test]
fn more_validators_never_more_blocks_per_second_at_zero_latency() {
    // A fixed charge per input, not the wall clock: the test threads run
    // side by side, and a measured clock would charge one run the others'
    // work. What is shown is the protocol's: more votes per block.
    let cost = CpuCost::Fixed { ns: 20_000 };
    let small = run(&short(4, 0, cost, 20));
    let large = run(&short(13, 0, cost, 20));
    assert!(
        large.blocks_per_s <= small.blocks_per_s,
        "13 validators: {} blocks/s, 4: {}",
        large.blocks_per_s,
        small.blocks_per_s
    );
    assert!(large.cpu_us_per_block > small.cpu_us_per_block, "more signatures to check");
}

#[test]
fn configurations_that_cannot_run_are_refused() {
    let error = |config: BenchConfig| run_bench(&config, &mut |_| {}).err();
    assert_eq!(error(short(4, 0, CpuCost::None, 10)), Some(BenchError::ClockCannotMove));
    assert!(matches!(error(short(1, 50, CpuCost::None, 10)), Some(BenchError::Validators { .. })));
    assert_eq!(error(short(4, 50, CpuCost::None, 1)), Some(BenchError::TooFewCommits));
    let huge = BenchConfig { payload_bytes: 3 << 20, ..short(4, 50, CpuCost::None, 10) };
    assert!(matches!(error(huge), Some(BenchError::Payload { .. })));
    let slow = BenchConfig { journal_us: u64::MAX, ..short(4, 50, CpuCost::None, 10) };
    assert!(matches!(error(slow), Some(BenchError::DelayTooLong { what: "journal write", .. })));
    let stalls = BenchConfig { virtual_ms_max: 100, ..short(4, 50, CpuCost::None, 10) };
    assert!(matches!(error(stalls), Some(BenchError::Stalled { .. })));
}

/// Execution slower than the round timer: a block's result is ready 1.5 s
/// after the previous one, the timer is 1 s. Voters and leaders wait for
/// their own result of `h-K` (backpressure) with the timer extended while
/// they wait, so no round fails and the chain moves at exactly the
/// execution rate, one block per 1.5 s.
///
/// One validator per round may still time out, by design: the previous
/// leader committed first (it formed the QC), so its execution is a block
/// ahead of the next leader's; it has nothing of its own to wait for and
/// its timer fires. One timeout is far from the quorum a TC needs, so the
/// round goes on: no gap in the committed rounds.
#[test]
fn execution_slower_than_the_round_timer_is_backpressure_not_timeouts() {
    let config = BenchConfig { execution_us: 1_500_000, ..short(4, 10, CpuCost::None, 12) };
    let report = run(&config);
    assert!(report.blocks >= 12, "measured {} blocks", report.blocks);
    assert_eq!(report.rounds, report.blocks, "no round failed while execution was behind");
    assert!(
        report.timeouts <= report.blocks,
        "{} timeouts over {} rounds: more than the one validator ahead per round",
        report.timeouts,
        report.rounds
    );
    let rate = report.blocks_per_s;
    assert!((rate - 1.0 / 1.5).abs() < 0.01, "{rate} blocks/s, execution allows 0.667");
    // Commit latency: block h commits once its child's QC forms, and the
    // child's proposal waits one execution interval, as does h's own
    // successor: two intervals (3 s) plus a few 10 ms message delays.
    let latency = &report.commit_latency_ms;
    assert!(latency.p50 >= 3_000.0 && latency.p50 <= 3_000.0 + 5.0 * 10.0, "{latency:?}");
}
