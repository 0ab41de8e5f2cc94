//! Cold-read probe over the `wake bench triedb` workload, on a database kept
//! between runs: the load (minutes at 10M accounts) is done once, and each
//! run reopens it cold, warms the cache as the benchmark does, and measures
//! depth 1 and depth 32 with the cache's make-up (inner and bottom tiers).
//! A depth written `s32` streams its lookups (`Snapshot::accounts_streamed`)
//! instead of batching them; `r32` reads the raw file at depth 32 instead.
//!
//! `cargo run --release -p wake-benches --example cache_probe -- DIR [accounts] [cache MiB] [secs] [depths, e.g. 1,32,s32]`
use alloy_primitives::Address;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use wake_benches::triedb_bench::raw::RawDevice;
use wake_benches::usage::process_cpu;
use wake_benches::workload::{Workload, load_updates};
use wake_triedb::{Config, Snapshot, TrieDb};

const SEED: u64 = 490_062;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next().ok_or("usage: cache_probe DIR [accounts] [cache MiB] [secs]")?,
    );
    let n: u64 = args.next().map_or(Ok(10_000_000), |a| a.parse())?;
    let cache_mib: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let secs: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let workload = Workload::new(SEED);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("accounts-{n}.triedb"));
    if !path.exists() {
        let db = TrieDb::open(Config::new(&path))?;
        let t = Instant::now();
        let (mut first, mut version) = (0, 0);
        while first < n {
            let last = (first + 250_000).min(n);
            version += 1;
            db.commit(version, &load_updates(&workload, first..last))?;
            first = last;
        }
        eprintln!("loaded {n} accounts in {:.0} s", t.elapsed().as_secs_f64());
    }
    let mut config = Config::new(&path);
    config.cache_bytes = cache_mib << 20;
    let db = TrieDb::open(config)?;
    let snap = db.snapshot(db.latest().ok_or("empty database")?.version)?;
    let mut rng = StdRng::seed_from_u64(SEED ^ 0x10);
    let mut batch = |count: usize| -> Vec<Address> {
        (0..count).map(|_| workload.address(rng.random_range(0..n))).collect()
    };
    let warm = run(&db, &snap, &mut batch, 32, false, Limit::Lookups(500_000))?;
    report("warm-up d32", &db, warm);
    let depths: Vec<String> = match args.next() {
        Some(list) => list.split(',').map(String::from).collect(),
        None => {
            raw_reads(&path, None, secs)?;
            vec!["1".into(), "32".into(), "1".into()]
        }
    };
    for depth in depths {
        let limit = Limit::Time(Duration::from_secs(secs));
        if let Some(depth) = depth.strip_prefix('r') {
            raw_reads(&path, Some(depth.parse()?), secs)?;
            continue;
        }
        let (streamed, depth) = match depth.strip_prefix('s') {
            Some(depth) => (true, depth.parse()?),
            None => (false, depth.parse()?),
        };
        let r = run(&db, &snap, &mut batch, depth, streamed, limit)?;
        report(&format!("depth {depth}{}", if streamed { "s" } else { "" }), &db, r);
    }
    Ok(())
}

enum Limit {
    Lookups(u64),
    Time(Duration),
}

struct Run {
    lookups: u64,
    reads: u64,
    wall: Duration,
    cpu: Duration,
}

fn run(
    db: &TrieDb,
    snap: &Snapshot,
    batch: &mut impl FnMut(usize) -> Vec<Address>,
    depth: usize,
    streamed: bool,
    limit: Limit,
) -> Result<Run, Box<dyn std::error::Error>> {
    let reads = db.stats().device_reads;
    let cpu = process_cpu();
    let start = Instant::now();
    let mut lookups = 0;
    let mut missing = 0u64;
    let more = |lookups: u64| match limit {
        Limit::Lookups(max) => lookups < max,
        Limit::Time(max) => start.elapsed() < max,
    };
    if streamed {
        let mut drawn = 0;
        let addresses = std::iter::from_fn(|| {
            drawn += 1;
            more(drawn - 1).then(|| batch(1)[0])
        });
        snap.accounts_streamed(addresses, depth, |_, account| {
            lookups += 1;
            missing += u64::from(account.is_none());
        })?;
    }
    let per_call = if depth == 1 { 1 } else { 32 * depth };
    while !streamed && more(lookups) {
        let addresses = batch(per_call);
        let got = match depth {
            1 => vec![snap.account(&addresses[0])?],
            _ => snap.accounts_with_depth(&addresses, depth)?,
        };
        missing += got.iter().filter(|a| a.is_none()).count() as u64;
        lookups += per_call as u64;
    }
    if missing > 0 {
        return Err(format!("{missing} loaded accounts were not found").into());
    }
    Ok(Run {
        lookups,
        reads: db.stats().device_reads - reads,
        wall: start.elapsed(),
        cpu: process_cpu() - cpu,
    })
}

fn report(what: &str, db: &TrieDb, r: Run) {
    let s = db.stats();
    let lookups = r.lookups as f64;
    println!(
        "{what:12} {:>8.0} lookups/s  {:.3} reads/lookup  {:5.1} µs CPU/lookup  \
         cache {} MiB: inner {} MiB of {} MiB ({} nodes), bottom {} nodes",
        lookups / r.wall.as_secs_f64(),
        r.reads as f64 / lookups,
        r.cpu.as_secs_f64() * 1e6 / lookups,
        s.cache_bytes >> 20,
        s.cache_inner_bytes >> 20,
        s.cache_inner_capacity >> 20,
        s.cache_inner_nodes,
        s.cache_bottom_nodes,
    );
}

/// Random 4 KiB O_DIRECT reads of the same file: with `depth`, through
/// io_uring with that many in flight; without, preads one at a time (the
/// benchmark's raw baselines).
fn raw_reads(
    path: &std::path::Path,
    depth: Option<usize>,
    secs: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let raw = RawDevice::open(path, depth.unwrap_or(1))?;
    let (time, bar) = (Duration::from_secs(secs), indicatif::ProgressBar::hidden());
    let cpu = process_cpu();
    let r = match depth {
        Some(depth) => raw.queued(depth, time, 7, &bar)?,
        None => raw.pread(time, 7, &bar)?,
    };
    let cpu = process_cpu() - cpu;
    let what = depth.map_or("raw pread".to_string(), |d| format!("raw depth {d}"));
    println!(
        "{what:12} {:>8.0} reads/s    {:5.1} µs CPU/read",
        r.reads_per_s(),
        cpu.as_secs_f64() * 1e6 / r.reads as f64
    );
    Ok(())
}
