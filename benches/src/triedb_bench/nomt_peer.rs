//! The NOMT peer (crate `nomt` 1.0), on the same key/value workload.
//!
//! Keys and values are the flat form of the triedb workload
//! ([`crate::workload::flat`]): `keccak256(address)` → the account's RLP
//! (~70 bytes), and `keccak256(address ‖ slot)` → 32-byte slot values. The
//! load, the update blocks and the random lookups are the same as triedb's.
//! NOMT is a binary trie (Blake3 here, its default hasher and cheaper than
//! keccak), so only throughput is compared, never roots.
//!
//! Cache budget: NOMT's page cache and leaf cache get half of the budget each
//! (plus its default two upper page levels, ~16 MiB; its branch nodes are
//! always all in memory). Reads start cold: the database is reopened after
//! the load, then warmed with the same number of random lookups as triedb.
//! NOMT's leaf cache evicts only when a commit ends, so reads run in chunks
//! with an empty commit between them, off the clock ([`chunk_reads`]);
//! without that, a read-only stretch would pull the whole data set into
//! memory and the reads would not be cold.
//!
//! Reads: NOMT's public read API is the blocking `Session::read`; it has no
//! batched or asynchronous read. Depth 1 is one thread calling it in a loop
//! (latency per read); "depth d" is d threads sharing one session, each
//! calling it in a loop (throughput only). Updates: one session per block,
//! `finish` with the block's sorted blind writes, then `commit`, which
//! returns once the block is durable.

use super::Ctx;
use super::reads::per_s;
use crate::stats::{Percentiles, Samples};
use crate::workload::{Block, flat};
use anyhow::{Context, Result, bail};
use nomt::hasher::Blake3Hasher;
use nomt::{KeyReadWrite, Nomt, Options, SessionParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Db = Nomt<Blake3Hasher>;

#[derive(Clone, Debug, Default)]
pub struct NomtResult {
    pub load_s: f64,
    pub hashtable_buckets: u32,
    pub hashtable_occupied: u64,
    pub reads_per_s: f64,
    pub read_latency: Percentiles,
    pub reads_per_s_threads: Vec<(usize, f64)>,
    /// Raw 4 KiB reads of triedb's file (pread, and io_uring at depth 32)
    /// right after NOMT's reads.
    pub raw_pread_reads_per_s: f64,
    pub raw_reads_per_s_depth32: f64,
    /// Peak RSS from reopening after the load to the end of the reads (it
    /// includes what the allocator kept from the load, if any).
    pub rss_bytes_max_reads: u64,
    pub updates_per_s: f64,
    pub ms_per_block: f64,
    /// Per block commit, in microseconds.
    pub block_latency: Percentiles,
    pub disk_bytes: u64,
}

fn options(ctx: &Ctx, dir: &Path, buckets: u32) -> Options {
    let mut o = Options::new();
    o.path(dir);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    o.commit_concurrency(cores.min(64));
    let half_mib = (ctx.opts.cache_mib / 2).max(1) as usize;
    o.page_cache_size(half_mib);
    o.leaf_cache_size(half_mib);
    o.hashtable_buckets(buckets);
    o.bitbox_seed(*b"wake-bench-nomt!");
    o
}

fn open(ctx: &Ctx, dir: &Path, buckets: u32) -> Result<Db> {
    Db::open(options(ctx, dir, buckets)).context("opening NOMT")
}

fn commit(db: &Db, mut entries: Vec<([u8; 32], Vec<u8>)>) -> Result<()> {
    entries.sort_unstable_by_key(|entry| entry.0);
    let actuals =
        entries.into_iter().map(|(key, value)| (key, KeyReadWrite::Write(Some(value)))).collect();
    let session = db.begin_session(SessionParams::default());
    session.finish(actuals).context("NOMT session finish")?.commit(db).context("NOMT commit")
}

fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

/// Empty commits between read chunks, so NOMT's leaf cache keeps its budget.
///
/// NOMT's leaf cache inserts every leaf a read loads and evicts only at the
/// end of a commit, so a long read-only stretch would grow it past its
/// budget until the whole data set sits in memory. Reads therefore run in
/// chunks of at most this many reads (a small fraction of the leaf budget),
/// each followed by an empty commit that trims the cache, off the clock.
fn chunk_reads(ctx: &Ctx) -> u64 {
    let leaf_pages = (ctx.opts.cache_mib / 2).max(1) * 256;
    (leaf_pages / 8).max(256)
}

fn trim_caches(db: &Db) -> Result<()> {
    commit(db, Vec::new()).context("NOMT: empty commit that trims its caches")
}

/// Reads of random loaded accounts by `threads` threads sharing one session,
/// in chunks with cache trims between them, for `duration` or `max_reads`.
/// Returns the reads, the time spent reading (trims excluded), and with one
/// thread the per-read latencies.
fn reads(
    ctx: &Ctx,
    db: &Db,
    threads: usize,
    duration: Duration,
    max_reads: Option<u64>,
    tag: u64,
    bar: &indicatif::ProgressBar,
) -> Result<(u64, Duration, Samples)> {
    let n = ctx.opts.accounts;
    let chunk = chunk_reads(ctx);
    let mut total = 0u64;
    let mut busy = Duration::ZERO;
    let mut samples = Samples::with_capacity(if threads == 1 { 1 << 16 } else { 0 });
    let mut round = 0u64;
    loop {
        let target = match max_reads {
            Some(max) if total >= max => break,
            Some(max) => chunk.min(max - total),
            None if busy >= duration => break,
            None => chunk,
        };
        let session = db.begin_session(SessionParams::default());
        if threads == 1 {
            let mut rng = StdRng::seed_from_u64(ctx.opts.seed ^ tag ^ (round << 20));
            for _ in 0..target {
                let i = rng.random_range(0..n);
                let key = flat::account_key(&ctx.workload, i);
                let t = Instant::now();
                let got = session.read(key).context("NOMT read")?;
                let dt = t.elapsed();
                if got.as_deref() != Some(&flat::account_value(i, 0)[..]) {
                    bail!("NOMT returned {got:?} for account #{i}");
                }
                samples.push(dt);
                busy += dt;
            }
        } else {
            let session = &session;
            let next = AtomicU64::new(0);
            let barrier = Barrier::new(threads + 1);
            let outcome: Result<Duration> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads as u64)
                    .map(|t| {
                        let (next, barrier) = (&next, &barrier);
                        scope.spawn(move || -> Result<()> {
                            let mut rng = StdRng::seed_from_u64(
                                ctx.opts.seed ^ tag ^ (round << 20) ^ (t << 40),
                            );
                            barrier.wait();
                            while next.fetch_add(1, Ordering::Relaxed) < target {
                                let i = rng.random_range(0..n);
                                let key = flat::account_key(&ctx.workload, i);
                                let got = session.read(key).context("NOMT read")?;
                                if got.as_deref() != Some(&flat::account_value(i, 0)[..]) {
                                    bail!("NOMT returned {got:?} for account #{i}");
                                }
                            }
                            Ok(())
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                let mut failure = None;
                for handle in handles {
                    match handle.join() {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => failure = Some(err),
                        Err(_) => failure = Some(anyhow::anyhow!("a NOMT reader panicked")),
                    }
                }
                let wall = start.elapsed();
                match failure {
                    Some(err) => Err(err),
                    None => Ok(wall),
                }
            });
            busy += outcome?;
        }
        drop(session);
        total += target;
        round += 1;
        trim_caches(db)?;
        match max_reads {
            Some(_) => bar.set_position(total),
            None => bar.set_position(busy.as_millis() as u64),
        }
        bar.set_message(format!("{:.0} reads/s", per_s(total, busy)));
    }
    Ok((total, busy, samples))
}

/// `raw_file` is triedb's database file: the raw device baselines are
/// measured on it again right after NOMT's reads, since this disk's speed
/// moves by a large factor between the triedb and NOMT read phases (minutes
/// apart: see benches/RESULTS.md).
pub fn run(
    ctx: &Ctx,
    dir: &Path,
    raw_file: &Path,
    read_depths: &[usize],
    warmup: u64,
) -> Result<NomtResult> {
    let n = ctx.opts.accounts;
    let dir = dir.join("nomt");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).context("clearing an old NOMT directory")?;
    }
    // Keys: one per account plus its slots. The hash table holds trie pages
    // (each holds six levels of the binary trie, so far fewer pages than
    // keys); a quarter of the key count leaves it mostly empty.
    let keys = n + n.div_ceil(crate::workload::STORAGE_EVERY)
        * u64::from(crate::workload::SLOTS_PER_ACCOUNT);
    let buckets = u32::try_from((keys / 4).max(64_000)).unwrap_or(u32::MAX);
    let mut result = NomtResult { hashtable_buckets: buckets, ..NomtResult::default() };

    // Load.
    let db = open(ctx, &dir, buckets)?;
    let bar = ctx.bars.count("nomt: load", n, "accounts");
    let start = Instant::now();
    let mut first = 0;
    while first < n {
        let last = (first + ctx.opts.load_block).min(n);
        let mut entries = Vec::with_capacity((last - first) as usize * 3 / 2);
        for i in first..last {
            flat::load_entries(&ctx.workload, i, &mut entries);
        }
        commit(&db, entries)?;
        bar.inc(last - first);
        first = last;
    }
    result.load_s = start.elapsed().as_secs_f64();
    bar.finish();
    result.hashtable_occupied = db.hash_table_utilization().occupied as u64;
    drop(db);
    tracing::info!(
        seconds = result.load_s,
        occupied = result.hashtable_occupied,
        buckets,
        "nomt: loaded"
    );

    // Cold reads.
    let read_rss = crate::rss::PeakTracker::start();
    let db = open(ctx, &dir, buckets)?;
    trim_caches(&db)?;
    let bar = ctx.bars.count("nomt: warm-up", warmup, "lookups");
    reads(ctx, &db, 32, Duration::MAX, Some(warmup), 0x77, &bar)?;
    bar.finish();

    let duration = ctx.phase_duration();
    for &threads in read_depths {
        let name = if threads == 1 {
            "nomt: read 1 thread".to_string()
        } else {
            format!("nomt: read {threads} threads")
        };
        let bar = ctx.bars.timed(&name, duration);
        let (total, busy, mut samples) =
            reads(ctx, &db, threads, duration, None, 0x2000 + threads as u64, &bar)?;
        let rate = per_s(total, busy);
        bar.finish_with_message(format!("{rate:.0} reads/s"));
        if threads == 1 {
            result.reads_per_s = rate;
            result.read_latency = samples.summary();
        } else {
            result.reads_per_s_threads.push((threads, rate));
        }
    }

    result.rss_bytes_max_reads = read_rss.finish();

    // The device, as NOMT's reads just found it.
    {
        let raw = super::raw::RawDevice::open(raw_file, 32)?;
        let bar = ctx.bars.timed("raw again: pread", duration);
        result.raw_pread_reads_per_s =
            raw.pread(duration, ctx.opts.seed ^ 0x3100, &bar)?.reads_per_s();
        let bar = ctx.bars.timed("raw again: depth 32", duration);
        result.raw_reads_per_s_depth32 =
            raw.queued(32, duration, ctx.opts.seed ^ 0x3200, &bar)?.reads_per_s();
    }

    // Update blocks.
    let blocks = ctx.opts.blocks;
    let bar = ctx.bars.count("nomt: commit blocks", blocks, "blocks");
    let mut samples = Samples::with_capacity(blocks as usize);
    let mut accounts = 0u64;
    for b in 0..blocks {
        let block = Block::random(ctx.opts.seed, b + 1, n, ctx.opts.block_updates);
        let entries = flat::block_entries(&ctx.workload, &block);
        let start = Instant::now();
        commit(&db, entries)?;
        samples.push(start.elapsed());
        accounts += block.accounts.len() as u64;
        bar.inc(1);
    }
    bar.finish();
    let total = samples.total();
    result.updates_per_s = per_s(accounts, total);
    result.ms_per_block = if blocks == 0 { 0.0 } else { total.as_secs_f64() * 1e3 / blocks as f64 };
    result.block_latency = samples.summary();
    drop(db);
    result.disk_bytes = dir_bytes(&dir);
    Ok(result)
}
