//! The execution workloads produce blocks the serial executor runs without
//! a failed transaction, over a real on-disk triedb, and the balances move
//! exactly as the workload intended (checked for every touched account,
//! against the independent [`Ledger`]). Prefetch changes nothing. The
//! benchmark driver runs end to end on a tiny state.

use alloy_primitives::U256;
use std::collections::BTreeMap;
use wake_benches::exec_workload::{
    BENEFICIARY, ChainTip, Kind, Ledger, Population, RunPlan, balance_slot, chain_spec,
    generate_run, token_address,
};
use wake_benches::{ExecBenchOptions, run_exec_bench};
use wake_execution::{Prefetched, SnapshotState, SpecId, execute_block, recover_senders};
use wake_triedb::{Config, TrieDb};

const SEED: u64 = 0x5eed;
const TXS: u64 = 24;
const BLOCKS: u64 = 2;

fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temporary directory under the target dir")
}

#[test]
fn every_workload_executes_and_moves_balances() {
    let mut plans = Vec::new();
    let mut senders = 0;
    for (tag, kind) in Kind::ALL.into_iter().enumerate() {
        let plan = RunPlan {
            kind,
            blocks: BLOCKS,
            txs_per_block: TXS,
            first_sender: senders,
            tag: tag as u64,
        };
        senders += plan.senders_needed();
        plans.push(plan);
    }
    let population = Population::new(SEED, 1_000, senders);
    let dir = temp_dir("exec-workloads-");
    let mut config = Config::new(dir.path().join("state.triedb"));
    config.cache_bytes = 8 << 20;
    config.chunk_bytes = 1 << 20;
    let db = TrieDb::open(config).expect("open triedb");
    let mut version = 0;
    // Small batches, so the genesis spans several versions.
    for (v, updates) in population.genesis_batches(300, 2).enumerate() {
        version = v as u64;
        db.commit(version, &updates).expect("genesis commit");
    }
    let token = token_address();
    let genesis = db.snapshot(version).expect("snapshot");
    assert_eq!(
        genesis.storage(&token, &wake_benches::exec_workload::TOTAL_SUPPLY_SLOT).unwrap(),
        population.total_supply()
    );
    drop(genesis);

    let chain = chain_spec();
    let hashes = BTreeMap::new();
    let mut tip = ChainTip::genesis(SEED);
    let mut ledger = Ledger::default();
    let mut touched = Vec::new();
    for plan in &plans {
        let blocks = generate_run(&population, plan, &mut tip, 2);
        assert_eq!(blocks.len() as u64, BLOCKS);
        for generated in &blocks {
            let block = &generated.block;
            assert_eq!(block.body.transactions.len() as u64, TXS);
            let senders = recover_senders(&block.body.transactions, SpecId::CANCUN, 2)
                .expect("every signature recovers");
            assert_eq!(senders, generated.senders, "{}: recovered senders", plan.kind.name());
            let snapshot = db.snapshot(version).expect("snapshot");
            let base = SnapshotState::new(&snapshot, &hashes);
            let plain = execute_block(&chain, block, &senders, base).expect("the block executes");
            let prefetched = Prefetched::load(base, &snapshot, block, &senders).expect("prefetch");
            let with_prefetch =
                execute_block(&chain, block, &senders, prefetched).expect("prefetched");
            assert_eq!(plain.receipts, with_prefetch.receipts);
            assert_eq!(plain.updates, with_prefetch.updates);
            ledger
                .record(&population, generated, &plain.receipts)
                .unwrap_or_else(|e| panic!("{}: {e}", plan.kind.name()));
            let gas_per_tx = plain.gas_used / TXS;
            if plan.kind.is_erc20() {
                assert!((30_000..60_000).contains(&gas_per_tx), "ERC-20 gas {gas_per_tx}");
            } else {
                assert_eq!(gas_per_tx, 21_000);
            }
            version += 1;
            db.commit(version, &plain.updates).expect("block commit");
            for (intent, sender) in generated.intents.iter().zip(&generated.senders) {
                touched.push(*sender);
                touched.push(population.address(intent.to));
            }
        }
    }

    let snapshot = db.snapshot(version).expect("snapshot");
    for address in &touched {
        let account = snapshot.account(address).unwrap().expect("a touched account exists");
        let tokens = snapshot.storage(&token, &balance_slot(*address)).unwrap();
        ledger.check(*address, account.balance, tokens).unwrap_or_else(|e| panic!("{e}"));
    }
    // The ledger is no rubber stamp.
    let first = touched[0];
    let (ether, tokens) = ledger.expected(&first).expect("touched");
    assert!(ledger.check(first, ether + U256::ONE, tokens).is_err());
    assert!(ledger.check(first, ether, tokens + U256::ONE).is_err());
    // Chain senders sent every transaction of their run, in order.
    for plan in plans.iter().filter(|p| p.kind.is_chain()) {
        let sender = population.sender(plan.first_sender).address;
        assert_eq!(snapshot.account(&sender).unwrap().unwrap().nonce, BLOCKS * TXS);
    }
    let fees = snapshot.account(&BENEFICIARY).unwrap().map_or(U256::ZERO, |a| a.balance);
    assert_eq!(fees, ledger.fees_to_beneficiary);
    assert!(!fees.is_zero());
}

#[test]
fn the_benchmark_runs_end_to_end_on_a_tiny_state() {
    let dir = temp_dir("exec-bench-");
    let opts = ExecBenchOptions {
        cold_accounts: 4_000,
        cached_accounts: 2_000,
        cold_cache_mib: 4,
        cached_cache_mib: 64,
        txs_per_block: 40,
        blocks: 2,
        threads: 2,
        warmup_lookups: 2_000,
        load_batch: 1_500,
        data_dir: Some(dir.path().to_path_buf()),
        progress: false,
        ..ExecBenchOptions::quick()
    };
    let report = run_exec_bench(&opts).expect("the benchmark runs and its checks pass");
    assert!(!report.runs.is_empty());
    for run in &report.runs {
        assert_eq!(run.txs, 80);
        assert!(run.tx_per_s > 0.0 && run.mgas_per_s > 0.0);
    }
    assert!(report.summary.erc20_cold_tx_per_s.is_some());
    // The headline cold figure is the pipelined run's (commit overlapping
    // the next block, balances checked after it like every run's).
    assert!(report.summary.erc20_cold_pipelined);
    assert!(report.summary.erc20_cold_sequential_tx_per_s.is_some());
    assert_eq!(report.runs.iter().filter(|r| r.pipelined).count(), 2);
    assert!(report.summary.prefetch_speedup_cold.is_some());
    assert!(report.summary.prefetch_speedup_cold_serial.is_some());
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    for key in [
        "erc20_cold_tx_per_s",
        "parallel_speedup_conflict_free",
        "parallel_speedup_dependent",
        "prefetch_speedup_cold",
        "prefetch_speedup_cold_serial",
    ] {
        assert!(json.get(key).is_some(), "{key} in the JSON line");
    }
    assert!(report.table().contains("ERC-20 cold"));
}
