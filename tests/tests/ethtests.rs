//! Every BlockchainTest of ethereum/tests v14.1 (`ValidBlocks`,
//! `InvalidBlocks`, `GeneralStateTests`) through the on-disk triedb and the
//! serial executor, then again through the parallel one, exactly as
//! `wake ethtests` runs them: every test of every network we execute must
//! pass (every Cancun test among them), and the only skipped networks are
//! the ones we do not run, with known counts.
//!
//! Threads across files: `WAKE_TEST_THREADS` (default: up to 2). One small
//! triedb per test (8 MiB cache) under `target/test-dbs/`.

use std::collections::BTreeMap;
use std::time::Instant;
use wake_execution::ParallelConfig;
use wake_execution::ethtests::{RunnerConfig, Summary, TestStatus, collect_test_files, run_files};

/// JSON files under `BlockchainTests/` and the tests in them.
const EXPECTED_FILES: usize = 3_074;
const EXPECTED_TESTS: usize = 14_827;
/// Cancun tests, all of which must pass.
const EXPECTED_CANCUN: usize = 14_273;
/// Networks without a supported spec: Constantinople (with EIP-1283, never
/// deployed: it became Petersburg, "ConstantinopleFix") has no revm spec.
const EXPECTED_SKIPPED: &[(&str, usize)] = &[("Constantinople", 36)];

#[test]
fn blockchain_tests_pass_serial() {
    run_all("serial", None);
}

/// The parallel executor with every transaction run speculatively first
/// (validated at its turn, fee credited at commit), on 2 threads per block.
#[test]
fn blockchain_tests_pass_parallel() {
    run_all("parallel", Some(ParallelConfig { threads: 2, always_speculate: true }));
}

fn run_all(executor: &str, parallel: Option<ParallelConfig>) {
    let started = Instant::now();
    let root = wake_tests::ethereum_tests_dir().join("BlockchainTests");
    let files = collect_test_files(&root).expect("list BlockchainTests");
    assert_eq!(files.len(), EXPECTED_FILES, "JSON files under {}", root.display());

    let dir = wake_tests::temp_db_dir("ethtests");
    let config = RunnerConfig {
        db_dir: dir.path().to_path_buf(),
        cache_bytes: 8 << 20,
        io_depth: 4,
        parallel,
    };
    let results = run_files(&files, &config, wake_tests::test_threads(), &|_, _| {});
    let summary = Summary::of(&results);
    println!(
        "BlockchainTests ({executor}): {} on {} threads in {:.1?}",
        summary.line(),
        wake_tests::test_threads(),
        started.elapsed()
    );

    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.status {
            TestStatus::Failed(reason) => Some(format!(
                "{} :: {} ({}): {reason}",
                r.file.strip_prefix(&root).unwrap_or(&r.file).display(),
                r.name,
                r.network
            )),
            _ => None,
        })
        .collect();
    const SHOWN: usize = 50;
    assert!(
        failures.is_empty(),
        "{executor}: {} of {} BlockchainTests failed (first {SHOWN} shown):\n{}",
        failures.len(),
        results.len(),
        failures.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(results.len(), EXPECTED_TESTS, "BlockchainTests found");
    assert_eq!(summary.by_network.get("Cancun"), Some(&(EXPECTED_CANCUN, 0)), "Cancun tests");
    let expected_skipped: BTreeMap<String, usize> =
        EXPECTED_SKIPPED.iter().map(|(n, c)| (n.to_string(), *c)).collect();
    assert_eq!(summary.skipped, expected_skipped, "skipped networks");
    assert_eq!(summary.passed, EXPECTED_TESTS - summary.skipped_total());
}
