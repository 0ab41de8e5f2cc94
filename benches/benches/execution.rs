//! Criterion benchmarks of block execution with cached state
//! (`cargo bench -p wake-benches --bench execution`).
//!
//! * `execute/<workload>/<executor>`: one block of 200 transactions
//!   (native transfers, ERC-20 transfers, and the one-sender chains of
//!   both) executed over a 10k-account triedb version whose every touched
//!   node is cached, by each executor this build has. Executing writes
//!   nothing, so every iteration runs the same block on the same version.
//!   Senders are recovered once, outside the clock.
//! * `recover/200`: sender recovery of the same ERC-20 block on all cores.
//!
//! The end-to-end benchmark with cold state, commits and prefetch is
//! `wake bench execution`.

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;
use wake_benches::exec_bench::{Executor, execute};
use wake_benches::exec_workload::{ChainTip, Kind, Population, RunPlan, chain_spec, generate_run};
use wake_execution::{SnapshotState, SpecId, recover_senders};
use wake_triedb::{Config, TrieDb};

const SEED: u64 = 0xe8ec;
const ACCOUNTS: u64 = 10_000;
const TXS: u64 = 200;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn execution(c: &mut Criterion) {
    let mut plans = Vec::new();
    let mut senders = 0;
    for (tag, kind) in Kind::ALL.into_iter().enumerate() {
        let plan =
            RunPlan { kind, blocks: 1, txs_per_block: TXS, first_sender: senders, tag: tag as u64 };
        senders += plan.senders_needed();
        plans.push(plan);
    }
    let population = Population::new(SEED, ACCOUNTS, senders);
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let mut config = Config::new(dir.path().join("bench.triedb"));
    config.cache_bytes = 256 << 20;
    let db = TrieDb::open(config).expect("open triedb");
    let mut version = 0;
    for (v, updates) in population.genesis_batches(ACCOUNTS, threads()).enumerate() {
        version = v as u64;
        db.commit(version, &updates).expect("genesis");
    }
    let snapshot = db.snapshot(version).expect("snapshot");
    let hashes = BTreeMap::new();
    let state = SnapshotState::new(&snapshot, &hashes);
    let chain = chain_spec();

    let mut group = c.benchmark_group("execute");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(TXS));
    let mut erc20_block = None;
    for plan in &plans {
        // Each block starts from genesis: every run is at its first block.
        let generated =
            generate_run(&population, plan, &mut ChainTip::genesis(SEED), threads()).remove(0);
        for &executor in Executor::available() {
            let block = &generated.block;
            let senders = &generated.senders;
            // The first call reads the state into the cache and checks the block.
            let (outcome, _) = execute(executor, &chain, block, senders, state, threads())
                .expect("the block executes");
            assert!(outcome.receipts.iter().all(|r| r.status()), "every transaction succeeds");
            group.bench_function(format!("{}/{}", plan.kind.name(), executor.name()), |b| {
                b.iter(|| {
                    black_box(
                        execute(executor, &chain, block, senders, state, threads())
                            .expect("execute"),
                    )
                })
            });
        }
        if plan.kind == Kind::Erc20 {
            erc20_block = Some(generated);
        }
    }
    group.finish();

    let Some(generated) = erc20_block else { return };
    let mut group = c.benchmark_group("recover");
    group.sample_size(20);
    group.throughput(Throughput::Elements(TXS));
    group.bench_function(format!("{TXS}"), |b| {
        b.iter(|| {
            black_box(
                recover_senders(&generated.block.body.transactions, SpecId::CANCUN, threads())
                    .expect("recover"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, execution);
criterion_main!(benches);
