//! Profiling aid: one 2,000-transaction block prefetched (load and
//! discovery, over cached state) and executed again and again, serial and
//! parallel: the bench's execution phase. Discovery's runs are what the
//! parallel executor commits, so the two are timed together.
//! With `nopf`, the block runs over the snapshot alone (no load, no
//! discovery), as the bench's cached "prefetch off" rows do.
//! `cargo run --release -p wake-benches --example par_profile -- [erc20|transfers] [serial|parallel|both] [iters] [nopf]`
use std::collections::BTreeMap;
use std::time::Instant;
use wake_benches::exec_bench::{Executor, execute, genesis_db};
use wake_benches::exec_workload::{ChainTip, Kind, Population, RunPlan, chain_spec, generate_run};
use wake_execution::{DISCOVERY_ROUNDS_MAX, Prefetched, SnapshotState};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = match args.get(1).map(String::as_str) {
        Some("transfers") => Kind::Transfers,
        _ => Kind::Erc20,
    };
    let which = args.get(2).cloned().unwrap_or_else(|| "both".into());
    let iters: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let no_prefetch = args.get(4).is_some_and(|a| a == "nopf");
    let threads = 2;
    let plan = RunPlan { kind, blocks: 1, txs_per_block: 2000, first_sender: 0, tag: 0 };
    let population = Population::new(7, 20_000, plan.senders_needed());
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let path = dir.path().join("p.triedb");
    let (db, version) = genesis_db(&path, &population, 256 << 20, 20_000, threads).unwrap();
    let snapshot = db.snapshot(version).unwrap();
    let hashes = BTreeMap::new();
    let base = SnapshotState::new(&snapshot, &hashes);
    let chain = chain_spec();
    let generated = generate_run(&population, &plan, &mut ChainTip::genesis(7), threads).remove(0);
    let block = &generated.block;
    let senders = &generated.senders;
    let prefetched = || {
        let mut state = Prefetched::load_on(base, &snapshot, block, senders, threads).unwrap();
        state.discover(&chain, block, senders, &snapshot, DISCOVERY_ROUNDS_MAX, threads).unwrap();
        state
    };
    if no_prefetch {
        for executor in [Executor::Serial, Executor::Parallel] {
            if which != "both" && which != executor.name() {
                continue;
            }
            let mut times: Vec<f64> = (0..iters)
                .map(|_| {
                    let start = Instant::now();
                    execute(executor, &chain, block, senders, base, threads).unwrap();
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            times.sort_by(f64::total_cmp);
            println!(
                "{kind:?} {} without prefetch: median {:.2} ms, best {:.2} ms",
                executor.name(),
                times[iters / 2],
                times[0]
            );
        }
        return;
    }
    if which == "both" {
        // Interleaved, so both see the same machine; medians.
        let (mut ser, mut par) = (Vec::new(), Vec::new());
        for _ in 0..iters {
            for (executor, out) in [(Executor::Serial, &mut ser), (Executor::Parallel, &mut par)] {
                let start = Instant::now();
                execute(executor, &chain, block, senders, prefetched(), threads).unwrap();
                out.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        ser.sort_by(f64::total_cmp);
        par.sort_by(f64::total_cmp);
        let (s, p) = (ser[iters / 2], par[iters / 2]);
        println!("{kind:?}: serial median {s:.2} ms, parallel {p:.2} ms, ratio {:.2}", s / p);
        return;
    }
    for executor in [Executor::Serial, Executor::Parallel] {
        if which != executor.name() {
            continue;
        }
        // Each phase on its own, medians.
        let mut phases = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..iters {
            let start = Instant::now();
            let mut state = Prefetched::load_on(base, &snapshot, block, senders, threads).unwrap();
            let loaded = start.elapsed();
            state
                .discover(&chain, block, senders, &snapshot, DISCOVERY_ROUNDS_MAX, threads)
                .unwrap();
            let discovered = start.elapsed();
            execute(executor, &chain, block, senders, state, threads).unwrap();
            let done = start.elapsed();
            for (out, d) in phases.iter_mut().zip([loaded, discovered - loaded, done - discovered])
            {
                out.push(d.as_secs_f64() * 1e3);
            }
        }
        let [load, discover, exec] = phases.map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[iters / 2]
        });
        println!(
            "{kind:?} {}: load {load:.2} ms, discover {discover:.2} ms, execute {exec:.2} ms",
            executor.name()
        );
        let mut best = f64::MAX;
        let mut total = 0.0;
        let mut stats = None;
        for _ in 0..iters {
            let start = Instant::now();
            let (_, s) = execute(executor, &chain, block, senders, prefetched(), threads).unwrap();
            let ms = start.elapsed().as_secs_f64() * 1e3;
            best = best.min(ms);
            total += ms;
            stats = s;
        }
        println!(
            "{:?} {}: best {best:.2} ms, mean {:.2} ms {stats:?}",
            kind,
            executor.name(),
            total / iters as f64
        );
    }
}
