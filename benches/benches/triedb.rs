//! Criterion micro-benchmarks of triedb's public API, small enough for a
//! run of a couple of minutes (`cargo bench -p wake-benches --bench triedb`).
//!
//! * `commit`: blocks of 1k and 10k random account updates (plus storage)
//!   into a 100k-account database, each commit durable;
//! * `read`: `Snapshot::account` on cached accounts; `Snapshot::accounts`
//!   batches of 256, cached and cold (1 MiB cache, O_DIRECT);
//! * `root`: the root of 10k fresh accounts, triedb's first commit into an
//!   empty database (disk write and fsync included), and triedb's in-memory
//!   builder on one thread, vs alloy-trie's `HashBuilder` over the same
//!   accounts (hashing and sorting included in all three).
//!
//! The full storage benchmark, with baselines and peers, is
//! `wake bench triedb`.

use alloy_primitives::Address;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use wake_benches::workload::{
    Block, Workload, account_info, hash_builder_root, load_updates, triedb_memory_root,
};
use wake_triedb::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};

const ACCOUNTS: u64 = 100_000;
const SEED: u64 = 0xbe4c;

fn open(path: &Path, cache_bytes: usize) -> TrieDb {
    let mut config = Config::new(path);
    config.cache_bytes = cache_bytes;
    TrieDb::open(config).expect("open triedb")
}

/// A database of `ACCOUNTS` accounts at version 1.
fn loaded(dir: &Path, workload: &Workload) -> std::path::PathBuf {
    let path = dir.join("bench.triedb");
    let db = open(&path, 256 << 20);
    db.commit(1, &load_updates(workload, 0..ACCOUNTS)).expect("load");
    path
}

fn commit(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let workload = Workload::new(SEED);
    let path = loaded(dir.path(), &workload);
    let db = open(&path, 256 << 20);
    let mut version = db.latest().map_or(0, |v| v.version);
    let mut generation = 0;
    let mut group = c.benchmark_group("commit");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(8));
    for size in [1_000usize, 10_000] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("{size}_updates_100k_accounts"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    generation += 1;
                    version += 1;
                    let updates =
                        Block::random(SEED, generation, ACCOUNTS, size).updates(&workload);
                    let start = Instant::now();
                    black_box(db.commit(version, &updates).expect("commit"));
                    total += start.elapsed();
                }
                total
            });
        });
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let workload = Workload::new(SEED);
    let path = loaded(dir.path(), &workload);
    let addresses: Vec<Address> =
        (0..1024u64).map(|k| workload.address(k * 97 % ACCOUNTS)).collect();
    let mut group = c.benchmark_group("read");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    {
        let db = open(&path, 256 << 20);
        let snap = db.snapshot(1).expect("snapshot");
        snap.accounts(&addresses).expect("warm");
        let mut k = 0;
        group.throughput(Throughput::Elements(1));
        group.bench_function("account_cached", |b| {
            b.iter(|| {
                k = (k + 1) % addresses.len();
                black_box(snap.account(&addresses[k]).expect("read"))
            })
        });
        group.throughput(Throughput::Elements(256));
        group.bench_function("accounts_batch256_cached", |b| {
            b.iter(|| black_box(snap.accounts(&addresses[..256]).expect("read")))
        });
    }
    {
        // 1 MiB of cache for ~25 MiB of nodes: most lookups go to the device.
        let db = open(&path, 1 << 20);
        let snap = db.snapshot(1).expect("snapshot");
        let mut round = 0u64;
        group.throughput(Throughput::Elements(256));
        group.bench_function("accounts_batch256_cold", |b| {
            b.iter_batched(
                || {
                    round += 1;
                    (0..256u64)
                        .map(|k| workload.address((round * 7919 + k * 389) % ACCOUNTS))
                        .collect::<Vec<_>>()
                },
                |batch| black_box(snap.accounts(&batch).expect("read")),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn root(c: &mut Criterion) {
    const FRESH: u64 = 10_000;
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let workload = Workload::new(SEED ^ 1);
    let accounts: Vec<(Address, AccountInfo)> =
        (0..FRESH).map(|i| (workload.address(i), account_info(i, 0))).collect();
    let updates = StateUpdates {
        accounts: accounts.iter().map(|(a, info)| (*a, AccountUpdate::info(*info))).collect(),
        codes: Vec::new(),
    };
    let mut group = c.benchmark_group("root_10k_fresh");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(FRESH));
    group.bench_function("hash_builder", |b| b.iter(|| black_box(hash_builder_root(&accounts))));
    group.bench_function("triedb_in_memory_1_thread", |b| {
        b.iter(|| black_box(triedb_memory_root(&accounts, 1)))
    });
    let mut k = 0u64;
    group.bench_function("triedb_commit_empty_db", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_file(dir.path().join(format!("fresh-{k}.triedb")));
                k += 1;
                open(&dir.path().join(format!("fresh-{k}.triedb")), 256 << 20)
            },
            // The database is dropped (closed) after the clock stops.
            |db| (db.commit(1, &updates).expect("commit"), db),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, commit, read, root);
criterion_main!(benches);
