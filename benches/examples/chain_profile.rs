//! Profiling aid: the cached rows of `wake bench execution`, block after
//! block (each over a fresh snapshot, its outcome committed before the
//! next, after the bench's warm-up), so that CPU caches are as cold as in
//! the bench. Prints `ready`
//! and waits a second before the timed loop so that `perf record -p` can
//! attach after the setup.
//! `cargo run --release -p wake-benches --example chain_profile -- [erc20|transfers|erc20-chain|transfers-chain] [blocks] [accounts] [configs, e.g. 0,1,2]`
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wake_benches::exec_bench::{Executor, execute, genesis_db, warm_up};
use wake_benches::exec_workload::{ChainTip, Kind, Population, RunPlan, chain_spec, generate_run};
use wake_execution::{DISCOVERY_ROUNDS_MAX, Prefetched, SnapshotState};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("erc20", String::as_str);
    let kind = *Kind::ALL.iter().find(|k| k.name() == name).expect("a workload kind");
    let blocks: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let accounts: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    // Which of serial off (0), parallel off (1), parallel on (2) to run.
    let only: Vec<usize> = args
        .get(4)
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 1, 2]);
    let threads = 2;
    let plan = RunPlan { kind, blocks, txs_per_block: 2000, first_sender: 0, tag: 0 };
    let population = Population::new(7, accounts, plan.senders_needed());
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let path = dir.path().join("p.triedb");
    let (db, mut version) = genesis_db(&path, &population, 1 << 30, 50_000, threads).unwrap();
    let chain = chain_spec();
    let generated = generate_run(&population, &plan, &mut ChainTip::genesis(7), threads);
    // As the bench does: every account and slot the blocks touch is read
    // once, so the cached runs never wait on the disk.
    warm_up(&db.snapshot(version).unwrap(), &population, &generated).unwrap();
    let mut hashes = BTreeMap::new();
    println!("ready");
    std::thread::sleep(Duration::from_secs(2));
    // serial off, parallel off, parallel on
    let names = ["serial off", "parallel off", "parallel on"];
    let mut times = [Duration::ZERO; 3];
    for (b, generated) in generated.iter().enumerate() {
        let snapshot = db.snapshot(version).unwrap();
        let base = SnapshotState::new(&snapshot, &hashes);
        let (block, senders) = (&generated.block, &generated.senders);
        let mut updates = None;
        for k in 0..3 {
            let e = (k + b) % 3;
            if !only.contains(&e) {
                continue;
            }
            let start = Instant::now();
            let (outcome, _) = match e {
                0 => execute(Executor::Serial, &chain, block, senders, base, threads).unwrap(),
                1 => execute(Executor::Parallel, &chain, block, senders, base, threads).unwrap(),
                _ => {
                    let mut state =
                        Prefetched::load_on(base, &snapshot, block, senders, threads).unwrap();
                    state
                        .discover(&chain, block, senders, &snapshot, DISCOVERY_ROUNDS_MAX, threads)
                        .unwrap();
                    execute(Executor::Parallel, &chain, block, senders, state, threads).unwrap()
                }
            };
            times[e] += start.elapsed();
            updates = Some(outcome.updates);
        }
        version += 1;
        db.commit(version, &updates.expect("one config runs")).unwrap();
        hashes.insert(block.header.number, block.header.hash_slow());
    }
    let per = |d: Duration| d.as_secs_f64() * 1e3 / blocks as f64;
    for (name, t) in names.iter().zip(times) {
        println!("{kind:?} {name}: {:.2} ms per block", per(t));
    }
    println!(
        "serial off / parallel off {:.2}, / parallel on {:.2}",
        per(times[0]) / per(times[1]),
        per(times[0]) / per(times[2])
    );
}
