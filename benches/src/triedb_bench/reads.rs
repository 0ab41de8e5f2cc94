//! Cold account lookups through triedb's public API.
//!
//! What is timed, exactly:
//! * depth 1: each call `Snapshot::accounts_with_depth(&[a], 1)` on its own;
//!   its wall time is one lookup's latency (percentiles are per lookup).
//!   triedb serves a batch with one read in flight through its synchronous
//!   path (pread), which is cheaper than the ring at depth 1, so this and
//!   the sync row below measure the same path;
//! * depth d > 1, streamed: one call of `Snapshot::accounts_streamed` for
//!   the whole phase, its addresses drawn as triedb pulls them, so d reads
//!   stay in flight throughout, as the raw baseline and NOMT's d threads
//!   keep theirs; percentiles are per lookup, from the moment triedb pulls
//!   its address to the moment it hands back the account;
//! * depth d > 1, batched: calls `Snapshot::accounts_with_depth(&batch, d)`
//!   on batches of `BATCH_PER_DEPTH × d` random addresses, the API a block's
//!   prefetch uses (with `--batch-threads N`, a batch triedb splits across
//!   N rings is asked for at depth d / N, so d reads are in flight in all);
//!   each batch ends with its queue draining, and percentiles are of the
//!   *batch* wall time;
//! * the sync path: each call `Snapshot::account(&a)` (pread on a miss).
//!
//! Throughput is lookups divided by the summed wall time of those calls.
//! Addresses are drawn (and hashed) outside the timed calls, except in a
//! stream, where drawing them is part of the call. Every result is checked
//! against the workload before it counts.

use super::Ctx;
use crate::stats::{Percentiles, Samples};
use crate::workload::account_info;
use alloy_primitives::Address;
use anyhow::{Result, bail};
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use wake_triedb::{Account, BATCH_PART_MIN, Snapshot, TrieDb};

/// At depth d > 1 a batch holds this many × d lookups.
pub const BATCH_PER_DEPTH: usize = 32;

/// Outcome of one read phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadResult {
    pub lookups: u64,
    /// Summed wall time of the timed calls.
    pub busy: Duration,
    /// Per call (a lookup at depth 1, a batch above).
    pub latency: Percentiles,
    /// `TrieDb::stats().device_reads` delta over the phase.
    pub device_reads: u64,
}

impl ReadResult {
    pub fn reads_per_s(&self) -> f64 {
        per_s(self.lookups, self.busy)
    }

    pub fn device_reads_per_lookup(&self) -> f64 {
        if self.lookups == 0 { 0.0 } else { self.device_reads as f64 / self.lookups as f64 }
    }
}

pub fn per_s(count: u64, time: Duration) -> f64 {
    let secs = time.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// Checks that a lookup of account `i` returned the loaded fields.
pub fn check(i: u64, got: Option<&Account>) -> Result<()> {
    let want = account_info(i, 0);
    match got {
        Some(a) if a.nonce == want.nonce && a.balance == want.balance => Ok(()),
        other => bail!("account #{i} read back as {other:?}; the load wrote {want:?}"),
    }
}

/// How the lookups of a phase are issued.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `accounts_with_depth(batch, depth)`.
    Batched { depth: usize },
    /// One `accounts_streamed(.., depth, ..)` for the whole phase.
    Streamed { depth: usize },
    /// `account(a)`, one at a time (the synchronous pread path).
    Sync,
}

impl Mode {
    fn batch_len(&self) -> usize {
        match *self {
            Mode::Batched { depth: 1 } | Mode::Sync | Mode::Streamed { .. } => 1,
            Mode::Batched { depth } => BATCH_PER_DEPTH * depth,
        }
    }
}

/// How long a phase runs.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// This much wall time.
    Time(Duration),
    /// This many lookups.
    Lookups(u64),
}

/// Runs lookups of random loaded accounts until `until` and measures them.
pub fn phase(
    ctx: &Ctx,
    db: &TrieDb,
    snap: &Snapshot,
    mode: Mode,
    bar: &ProgressBar,
    until: Until,
    rng_tag: u64,
) -> Result<ReadResult> {
    let (duration, max_lookups) = match until {
        Until::Time(d) => (d, None),
        Until::Lookups(n) => (Duration::MAX, Some(n)),
    };
    if let Mode::Streamed { depth } = mode {
        return streamed(ctx, db, snap, depth, bar, (duration, max_lookups), rng_tag);
    }
    let n = ctx.opts.accounts;
    let batch = mode.batch_len();
    let mut rng = StdRng::seed_from_u64(ctx.opts.seed ^ rng_tag);
    let mut indices = Vec::with_capacity(batch);
    let mut addresses: Vec<Address> = Vec::with_capacity(batch);
    let mut samples = Samples::with_capacity(1 << 16);
    let reads_before = db.stats().device_reads;
    let start = Instant::now();
    let mut lookups = 0u64;
    let mut busy = Duration::ZERO;
    let mut last_draw = Instant::now();
    loop {
        let elapsed = start.elapsed();
        let done = match max_lookups {
            Some(max) => lookups >= max,
            None => elapsed >= duration,
        };
        if done {
            break;
        }
        let this_batch = match max_lookups {
            Some(max) => batch.min((max - lookups) as usize),
            None => batch,
        };
        indices.clear();
        addresses.clear();
        for _ in 0..this_batch {
            let i = rng.random_range(0..n);
            indices.push(i);
            addresses.push(ctx.workload.address(i));
        }
        let t = Instant::now();
        let got = match mode {
            Mode::Batched { depth } => {
                // Split across rings the way triedb splits it, each ring
                // at its share of the depth.
                let rings = ctx.opts.batch_threads.min(this_batch / BATCH_PART_MIN).max(1);
                snap.accounts_with_depth(&addresses, (depth / rings).max(1))?
            }
            // A stream returned above.
            Mode::Sync | Mode::Streamed { .. } => vec![snap.account(&addresses[0])?],
        };
        let dt = t.elapsed();
        for (i, account) in indices.iter().zip(&got) {
            check(*i, account.as_ref())?;
        }
        samples.push(dt);
        busy += dt;
        lookups += this_batch as u64;
        if last_draw.elapsed() >= Duration::from_millis(200) {
            last_draw = Instant::now();
            draw(bar, max_lookups, lookups, start.elapsed(), busy);
        }
    }
    Ok(finish(db, bar, reads_before, lookups, busy, samples))
}

/// Moves a phase's bar: lookups done, or milliseconds of a timed phase.
fn draw(
    bar: &ProgressBar,
    max_lookups: Option<u64>,
    lookups: u64,
    elapsed: Duration,
    busy: Duration,
) {
    match max_lookups {
        Some(_) => bar.set_position(lookups),
        None => bar.set_position(elapsed.as_millis() as u64),
    }
    bar.set_message(format!("{:.0} lookups/s", per_s(lookups, busy)));
}

/// Closes a phase's bar and gathers its result.
fn finish(
    db: &TrieDb,
    bar: &ProgressBar,
    reads_before: u64,
    lookups: u64,
    busy: Duration,
    mut samples: Samples,
) -> ReadResult {
    let result = ReadResult {
        lookups,
        busy,
        latency: samples.summary(),
        device_reads: db.stats().device_reads - reads_before,
    };
    bar.finish_with_message(format!(
        "{:.0} lookups/s, {:.2} device reads/lookup",
        result.reads_per_s(),
        result.device_reads_per_lookup()
    ));
    result
}

/// A streamed phase (see the module doc): one call, addresses drawn as
/// triedb pulls them, until `duration` has passed or `max_lookups` were
/// drawn.
fn streamed(
    ctx: &Ctx,
    db: &TrieDb,
    snap: &Snapshot,
    depth: usize,
    bar: &ProgressBar,
    (duration, max_lookups): (Duration, Option<u64>),
    rng_tag: u64,
) -> Result<ReadResult> {
    let n = ctx.opts.accounts;
    let mut rng = StdRng::seed_from_u64(ctx.opts.seed ^ rng_tag);
    // Lookups in progress: their account number and when they were pulled.
    let pending: RefCell<HashMap<usize, (u64, Instant)>> = RefCell::new(HashMap::new());
    let mut samples = Samples::with_capacity(1 << 20);
    let mut wrong: Option<anyhow::Error> = None;
    let reads_before = db.stats().device_reads;
    let start = Instant::now();
    let mut last_draw = start;
    let mut drawn = 0u64;
    let addresses = std::iter::from_fn(|| {
        let now = Instant::now();
        let done = match max_lookups {
            Some(max) => drawn >= max,
            None => now - start >= duration,
        };
        if done {
            return None;
        }
        let i = rng.random_range(0..n);
        pending.borrow_mut().insert(drawn as usize, (i, now));
        drawn += 1;
        Some(ctx.workload.address(i))
    });
    let mut answered = 0u64;
    snap.accounts_streamed(addresses, depth, |index, account| {
        let Some((i, pulled)) = pending.borrow_mut().remove(&index) else {
            wrong.get_or_insert_with(|| anyhow::anyhow!("lookup {index} answered twice"));
            return;
        };
        let now = Instant::now();
        samples.push(now - pulled);
        if let Err(err) = check(i, account.as_ref()) {
            wrong.get_or_insert(err);
        }
        answered += 1;
        if now - last_draw >= Duration::from_millis(200) {
            last_draw = now;
            draw(bar, max_lookups, answered, now - start, now - start);
        }
    })?;
    let busy = start.elapsed();
    if let Some(err) = wrong {
        return Err(err);
    }
    if !pending.borrow().is_empty() {
        bail!("{} streamed lookups were never answered", pending.borrow().len());
    }
    Ok(finish(db, bar, reads_before, answered, busy, samples))
}

#[cfg(test)]
mod tests {
    use super::super::{Ctx, TrieDbBenchOptions};
    use super::*;
    use crate::progress::Bars;
    use crate::workload::{Workload, load_updates};
    use wake_triedb::Config;

    /// A database of the workload's first `n` accounts under `seed`, with a
    /// cache far smaller than it, and a context that draws from them.
    fn setup(n: u64, seed: u64) -> (tempfile::TempDir, TrieDb, Ctx) {
        let dir = tempfile::Builder::new().prefix("wake-reads-").tempdir_in("../target").unwrap();
        let mut config = Config::new(dir.path().join("db"));
        config.cache_bytes = 256 << 10;
        let db = TrieDb::open(config).unwrap();
        db.commit(1, &load_updates(&Workload::new(seed), 0..n)).unwrap();
        let opts = TrieDbBenchOptions { accounts: n, seed, ..TrieDbBenchOptions::quick() };
        let ctx = Ctx { workload: Workload::new(seed), opts, bars: Bars { enabled: false } };
        (dir, db, ctx)
    }

    /// Every mode counts what it looked up, one latency sample per call
    /// (per lookup when streamed), and the device reads it caused; a
    /// stream stops at its lookup count exactly.
    #[test]
    fn phases_count_lookups_latencies_and_reads() {
        // Enough accounts that a trie's bottom is below the top nodes a
        // snapshot keeps; each mode on a fresh snapshot.
        let (_dir, db, ctx) = setup(100_000, 3);
        let bar = ProgressBar::hidden();
        for (mode, calls) in [
            (Mode::Streamed { depth: 8 }, 3_000),
            (Mode::Batched { depth: 8 }, 3_000usize.div_ceil(BATCH_PER_DEPTH * 8)),
            (Mode::Sync, 3_000),
        ] {
            let snap = db.snapshot(1).unwrap();
            let r = phase(&ctx, &db, &snap, mode, &bar, Until::Lookups(3_000), 1).unwrap();
            assert_eq!(r.lookups, 3_000, "{mode:?}");
            assert_eq!(r.latency.count, calls as u64, "{mode:?}");
            assert!(r.device_reads > 0, "{mode:?}: nothing read from the device");
            assert!(r.reads_per_s() > 0.0, "{mode:?}");
        }
        let timed = Until::Time(Duration::from_millis(50));
        let snap = db.snapshot(1).unwrap();
        let r = phase(&ctx, &db, &snap, Mode::Streamed { depth: 32 }, &bar, timed, 2).unwrap();
        assert!(r.lookups > 0 && r.latency.count == r.lookups);
    }

    /// A lookup that does not find what the workload loaded fails the
    /// phase, streamed or batched: the checks are live. The same phase
    /// passes on the database the workload loaded and fails on one another
    /// seed loaded (its accounts sit at other addresses).
    #[test]
    fn phases_fail_on_wrong_accounts() {
        let (_dir, db, ctx) = setup(2_000, 3);
        let snap = db.snapshot(1).unwrap();
        let bar = ProgressBar::hidden();
        let (_other_dir, other, _) = setup(2_000, 4);
        let other_snap = other.snapshot(1).unwrap();
        for mode in [Mode::Streamed { depth: 8 }, Mode::Batched { depth: 8 }] {
            assert!(phase(&ctx, &db, &snap, mode, &bar, Until::Lookups(500), 1).is_ok());
            let err = phase(&ctx, &other, &other_snap, mode, &bar, Until::Lookups(500), 1);
            assert!(err.is_err(), "{mode:?}: the other workload's state passed the checks");
        }
    }
}
