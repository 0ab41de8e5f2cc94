//! `wake bench triedb`: the storage macro benchmark, with its baselines and
//! peer measured in the same run.
//!
//! Phases, in order (see [`run_triedb_bench`]):
//! 1. **load**: N accounts (every [`STORAGE_EVERY`]-th with
//!    [`SLOTS_PER_ACCOUNT`] storage slots), committed in versions of
//!    `load_block` accounts to bound memory;
//! 2. **cold reads**: the database is reopened (empty cache, budget far below
//!    the data), warmed with random lookups, then timed at depths 1, 8 and 32
//!    ([`reads`] says exactly what is timed);
//! 3. **raw device**: 4 KiB O_DIRECT random reads of the same file through
//!    the same io_uring engine at the same depths, and with `pread` ([`raw`]);
//! 4. **sync pread path**: `Snapshot::account`, one lookup at a time;
//! 5. **commits**: blocks of random account updates (plus storage) into the
//!    N-account trie, each commit durable (fsync) when timed;
//!    `rss_bytes_max` is the peak RSS of phases 1–5 (the kernel's peak is
//!    reset at the start of the load, of the reads and of the commits, and
//!    each of the three peaks is reported too);
//! 6. **root**: M fresh accounts into an empty database vs alloy-trie's
//!    HashBuilder ([`root`]);
//! 7. **NOMT** (feature `nomt`): the same load, lookups and blocks ([`nomt_peer`]);
//! 8. **triedb's reads again** (with NOMT): reopened and warmed as in phase
//!    2, depths 1 and 32 once more, so that triedb's two passes bracket
//!    NOMT's reads in time (A-B-A) on a disk whose speed drifts.

pub mod raw;
mod reads;
mod report;
mod root;

#[cfg(feature = "nomt")]
mod nomt_peer;

pub use report::Report;

use crate::progress::Bars;
use crate::rss::PeakTracker;
use crate::stats::Samples;
use crate::workload::{Block, SLOTS_PER_ACCOUNT, STORAGE_EVERY, Workload, load_updates};
use anyhow::{Context, Result, bail};
use reads::{Mode, ReadResult, Until, per_s};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wake_triedb::{Config, IoBackendChoice, Snapshot, TrieDb};

/// The lookup depths measured.
pub const DEPTHS: [usize; 3] = [1, 8, 32];

/// Everything `wake bench triedb` can be told.
#[derive(Clone, Debug)]
pub struct TrieDbBenchOptions {
    /// Accounts loaded.
    pub accounts: u64,
    /// Working directory; a fresh temporary one when `None`.
    pub dir: Option<PathBuf>,
    /// Keep the databases at the end.
    pub keep: bool,
    /// Node cache budget (MiB); also NOMT's (split between its two caches).
    pub cache_mib: u64,
    /// Update blocks of the commit phase.
    pub blocks: u64,
    /// Accounts updated per block.
    pub block_updates: usize,
    /// Accounts per version during the load.
    pub load_block: u64,
    /// Length of each timed read phase.
    pub phase_secs: f64,
    /// Random lookups that warm the cache before the read phases.
    pub warmup_lookups: u64,
    /// Fresh accounts of the root phase (0 skips it).
    pub root_accounts: u64,
    /// Run the NOMT peer (needs the `nomt` feature).
    pub nomt: bool,
    /// Also measure a database opened with the pread thread-pool backend.
    pub pread_pool: bool,
    /// `Config::embed_subtrees` of every database the run opens.
    pub embed_subtrees: bool,
    /// Rings the batched read phases (the warm-up and the batched depth-32
    /// row) split each batch across (`Config::batch_threads`), each at
    /// depth d / N, so the reads in flight stay d. The streamed phases run
    /// on one ring.
    pub batch_threads: usize,
    pub seed: u64,
    /// Draw progress bars on stderr.
    pub progress: bool,
}

impl TrieDbBenchOptions {
    /// The full run: 10M accounts, 256 MiB cache.
    pub fn full() -> Self {
        TrieDbBenchOptions {
            accounts: 10_000_000,
            dir: None,
            keep: false,
            cache_mib: 256,
            blocks: 50,
            block_updates: 10_000,
            // The load's peak RSS is mostly one version's working set (its
            // sorted keys and new subtree): at 10M accounts and 256 MiB,
            // 504-507 MiB with 250k accounts a version, 439 with 125k.
            load_block: 125_000,
            phase_secs: 10.0,
            warmup_lookups: 500_000,
            root_accounts: 1_000_000,
            nomt: cfg!(feature = "nomt"),
            pread_pool: false,
            embed_subtrees: Config::new("").embed_subtrees,
            batch_threads: 1,
            seed: 0x77a4e,
            progress: true,
        }
    }

    /// `--quick`: 1M accounts, 64 MiB cache, shorter phases.
    pub fn quick() -> Self {
        TrieDbBenchOptions {
            accounts: 1_000_000,
            cache_mib: 64,
            blocks: 20,
            phase_secs: 5.0,
            warmup_lookups: 300_000,
            ..Self::full()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.accounts == 0 {
            bail!("--accounts must be at least 1");
        }
        if self.cache_mib == 0 {
            bail!("--cache-mib must be at least 1");
        }
        if self.load_block == 0 || self.block_updates == 0 {
            bail!("load and update block sizes must be at least 1");
        }
        if !(self.phase_secs > 0.0 && self.phase_secs.is_finite()) {
            bail!("--phase-secs must be a positive number");
        }
        if !(1..=8).contains(&self.batch_threads) {
            bail!("--batch-threads must be in 1..=8");
        }
        if self.nomt && !cfg!(feature = "nomt") {
            bail!("this build has no NOMT peer (feature `nomt` of wake-benches); pass --no-nomt");
        }
        Ok(())
    }
}

/// What every phase needs.
pub(crate) struct Ctx {
    pub opts: TrieDbBenchOptions,
    pub workload: Workload,
    pub bars: Bars,
}

impl Ctx {
    pub fn phase_duration(&self) -> Duration {
        Duration::from_secs_f64(self.opts.phase_secs)
    }
}

/// The working directory; removed on drop unless kept.
struct WorkDir {
    path: PathBuf,
    temp: Option<tempfile::TempDir>,
    /// Files created in a caller-given directory, removed on drop unless kept.
    created: Vec<PathBuf>,
    keep: bool,
}

impl WorkDir {
    fn new(opts: &TrieDbBenchOptions) -> Result<WorkDir> {
        match &opts.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(WorkDir { path: dir.clone(), temp: None, created: Vec::new(), keep: opts.keep })
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("wake-bench-triedb-")
                    .tempdir_in(std::env::temp_dir())
                    .context("creating a temporary directory")?;
                Ok(WorkDir {
                    path: temp.path().to_path_buf(),
                    temp: Some(temp),
                    created: Vec::new(),
                    keep: opts.keep,
                })
            }
        }
    }

    /// A path in the directory that this run owns.
    fn file(&mut self, name: &str) -> PathBuf {
        let path = self.path.join(name);
        self.created.push(path.clone());
        path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            if let Some(temp) = self.temp.take() {
                let kept = temp.keep();
                tracing::info!(dir = %kept.display(), "kept the benchmark databases");
            }
            return;
        }
        for path in &self.created {
            if path.is_dir() {
                let _ = std::fs::remove_dir_all(path);
            } else {
                let _ = std::fs::remove_file(path);
            }
        }
        // A TempDir removes itself.
    }
}

/// Reads `/proc/cpuinfo`'s first model name.
pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Set, to the database path, in the child process that runs the load.
pub const LOAD_CHILD_ENV: &str = "WAKE_BENCH_TRIEDB_LOAD";

/// What the load child reports to its parent (one JSON line on stdout).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LoadResult {
    load_s: f64,
    versions: u64,
    file_bytes: u64,
    live_bytes: u64,
    io_backend: String,
    rss_exact: bool,
    rss_bytes_max: u64,
}

/// Runs this same command again with [`LOAD_CHILD_ENV`] set, and reads the
/// load's figures from its stdout.
fn load_in_child(db_path: &Path) -> Result<LoadResult> {
    let exe = std::env::current_exe().context("finding the running binary")?;
    let output = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(LOAD_CHILD_ENV, db_path)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running the load child process")?;
    if !output.status.success() {
        bail!("the load child process failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).context("no load report")?;
    serde_json::from_str(line).context("parsing the load report")
}

/// The load child: loads the accounts into `db_path` and prints a JSON line.
pub fn run_triedb_load_child(opts: &TrieDbBenchOptions, db_path: &Path) -> Result<()> {
    opts.validate()?;
    let workload = Workload::new(opts.seed);
    let bars = Bars { enabled: opts.progress };
    let n = opts.accounts;
    let rss = PeakTracker::start();
    let db = open_db(db_path, opts, IoBackendChoice::Auto)?;
    let io_backend = format!("{:?}", db.io_backend());
    let bar = bars.count("triedb: load", n, "accounts");
    let start = Instant::now();
    let mut version = 0u64;
    let mut first = 0u64;
    while first < n {
        let last = (first + opts.load_block).min(n);
        let updates = load_updates(&workload, first..last);
        version += 1;
        db.commit(version, &updates)
            .with_context(|| format!("load: committing version {version}"))?;
        bar.inc(last - first);
        first = last;
    }
    let load_s = start.elapsed().as_secs_f64();
    bar.finish();
    let stats = db.stats();
    drop(db);
    let result = LoadResult {
        load_s,
        versions: version,
        file_bytes: stats.file_bytes,
        live_bytes: stats.live_bytes,
        io_backend,
        rss_exact: rss.exact(),
        rss_bytes_max: rss.finish(),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn open_db(path: &Path, opts: &TrieDbBenchOptions, backend: IoBackendChoice) -> Result<TrieDb> {
    let mut config = Config::new(path);
    config.cache_bytes = usize::try_from(opts.cache_mib << 20).unwrap_or(usize::MAX);
    config.embed_subtrees = opts.embed_subtrees;
    config.batch_threads = opts.batch_threads;
    config.io_depth = *DEPTHS.iter().max().unwrap_or(&32);
    config.io_backend = backend;
    TrieDb::open(config).with_context(|| format!("opening {}", path.display()))
}

fn latest_snapshot(db: &TrieDb) -> Result<Snapshot> {
    let latest = db.latest().context("the database has no version")?;
    Ok(db.snapshot(latest.version)?)
}

/// Warms the cache of a freshly opened database; device reads per lookup during the warm-up.
fn warm_up(ctx: &Ctx, db: &TrieDb, snap: &Snapshot, tag: u64) -> Result<ReadResult> {
    let lookups = ctx.opts.warmup_lookups;
    let bar = ctx.bars.count("triedb: warm-up", lookups, "lookups");
    let result = reads::phase(
        ctx,
        db,
        snap,
        Mode::Batched { depth: 32 },
        &bar,
        Until::Lookups(lookups),
        tag,
    )?;
    tracing::info!(
        lookups,
        device_reads_per_lookup = result.device_reads_per_lookup(),
        cache_bytes = db.stats().cache_bytes,
        "triedb: cache warmed"
    );
    Ok(result)
}

/// Runs the whole benchmark and returns its report.
/// Phase 8: triedb's depth 1 and depth 32 lookups again, after NOMT's, on
/// the version the load left (the one phase 2 read: the lookups check the
/// values the load wrote), reopened and warmed as in phase 2.
#[cfg(feature = "nomt")]
fn reads_again(ctx: &Ctx, db_path: &Path, report: &mut Report) -> Result<()> {
    let db = open_db(db_path, &ctx.opts, IoBackendChoice::Auto)?;
    let version = report.load_versions;
    let snap = match db.snapshot(version) {
        Ok(snap) => snap,
        Err(err) => {
            tracing::warn!(version, %err, "the load's version is gone: triedb's reads are not run again");
            return Ok(());
        }
    };
    warm_up(ctx, &db, &snap, 0x12)?;
    let duration = ctx.phase_duration();
    let (mut lookups, mut device_reads) = (0, 0);
    for (depth, tag) in [(1, 0x600), (32, 0x601)] {
        let bar = ctx.bars.timed(&format!("triedb again: depth {depth}"), duration);
        let until = Until::Time(duration);
        let r = reads::phase(ctx, &db, &snap, lookup_mode(depth), &bar, until, tag)?;
        lookups += r.lookups;
        device_reads += r.device_reads;
        match depth {
            1 => report.reads_per_s_depth1_after_nomt = Some(r.reads_per_s()),
            _ => report.reads_per_s_depth32_after_nomt = Some(r.reads_per_s()),
        }
    }
    report.device_reads_per_lookup_after_nomt =
        Some(if lookups == 0 { 0.0 } else { device_reads as f64 / lookups as f64 });
    Ok(())
}

/// How the timed lookups at `depth` run: streamed, as the raw device and
/// NOMT's threads keep their reads in flight; depth 1 is one lookup at a
/// time either way.
fn lookup_mode(depth: usize) -> Mode {
    if depth == 1 { Mode::Batched { depth } } else { Mode::Streamed { depth } }
}

pub fn run_triedb_bench(opts: &TrieDbBenchOptions) -> Result<Report> {
    opts.validate()?;
    let ctx = Ctx {
        opts: opts.clone(),
        workload: Workload::new(opts.seed),
        bars: Bars { enabled: opts.progress },
    };
    let mut work = WorkDir::new(opts)?;
    let n = opts.accounts;
    let mut report = Report {
        accounts: n,
        storage_accounts: n.div_ceil(STORAGE_EVERY),
        storage_slots: n.div_ceil(STORAGE_EVERY) * u64::from(SLOTS_PER_ACCOUNT),
        cache_mib: opts.cache_mib,
        embed_subtrees: opts.embed_subtrees,
        batch_threads: opts.batch_threads,
        nproc: std::thread::available_parallelism().map_or(1, |p| p.get()),
        cpu_model: cpu_model(),
        dir: work.path.display().to_string(),
        phase_secs: opts.phase_secs,
        ..Report::default()
    };
    tracing::info!(
        accounts = n,
        cache_mib = opts.cache_mib,
        dir = %work.path.display(),
        "bench triedb: start"
    );
    // 1. Load, in a child process: a bulk load of hundreds of thousands of
    // accounts per version holds that version's new nodes in memory, and the
    // allocator keeps what it freed; the phases measured after it must not
    // inherit that memory in their peak RSS.
    let db_path = work.file("accounts.triedb");
    let _ = std::fs::remove_file(&db_path);
    let load = load_in_child(&db_path)?;
    report.io_backend = load.io_backend.clone();
    report.load_s = load.load_s;
    report.load_versions = load.versions;
    report.db_file_bytes = load.file_bytes;
    report.db_live_bytes = load.live_bytes;
    report.rss_exact = load.rss_exact;
    report.rss_bytes_max_load = load.rss_bytes_max;
    tracing::info!(
        seconds = report.load_s,
        file_bytes = report.db_file_bytes,
        live_bytes = report.db_live_bytes,
        "triedb: loaded"
    );
    if report.db_live_bytes < 2 * (opts.cache_mib << 20) {
        tracing::warn!(
            live_bytes = report.db_live_bytes,
            cache_mib = opts.cache_mib,
            "the data is less than twice the cache budget: reads are not fully cold"
        );
    }

    // 2. Cold reads.
    let rss = PeakTracker::start();
    let db = open_db(&db_path, opts, IoBackendChoice::Auto)?;
    let snap = latest_snapshot(&db)?;
    let warm = warm_up(&ctx, &db, &snap, 0x10)?;
    report.warmup_lookups = warm.lookups;
    report.warmup_device_reads_per_lookup = warm.device_reads_per_lookup();
    let duration = ctx.phase_duration();
    let mut total_lookups = 0;
    let mut total_device_reads = 0;
    for (k, &depth) in DEPTHS.iter().enumerate() {
        let bar = ctx.bars.timed(&format!("triedb: depth {depth}"), duration);
        let until = Until::Time(duration);
        let r = reads::phase(&ctx, &db, &snap, lookup_mode(depth), &bar, until, 0x100 + k as u64)?;
        total_lookups += r.lookups;
        total_device_reads += r.device_reads;
        report.set_triedb_reads(depth, &r);
    }
    {
        let bar = ctx.bars.timed("triedb: depth 32 batched", duration);
        let mode = Mode::Batched { depth: 32 };
        let r = reads::phase(&ctx, &db, &snap, mode, &bar, Until::Time(duration), 0x130)?;
        report.set_triedb_batched(&r);
    }
    report.device_reads_per_lookup =
        if total_lookups == 0 { 0.0 } else { total_device_reads as f64 / total_lookups as f64 };

    // 3. Raw device.
    let raw = raw::RawDevice::open(&db_path, 32)?;
    report.o_direct = raw.direct;
    report.raw_span_bytes = raw.span_bytes;
    report.raw_io_backend = format!("{:?}", raw.backend());
    if !raw.direct {
        tracing::warn!(
            "the filesystem refused O_DIRECT: reads go through the page cache and are not cold"
        );
    }
    for (k, &depth) in DEPTHS.iter().enumerate() {
        let bar = ctx.bars.timed(&format!("raw: depth {depth}"), duration);
        let r = raw.queued(depth, duration, opts.seed ^ (0x200 + k as u64), &bar)?;
        report.set_raw_reads(depth, &r);
    }
    {
        let bar = ctx.bars.timed("raw: pread", duration);
        let r = raw.pread(duration, opts.seed ^ 0x300, &bar)?;
        report.raw_pread_reads_per_s_depth1 = r.reads_per_s();
        report.raw_pread_latency_depth1 = r.latency;
    }
    drop(raw);

    // 4. The synchronous pread path.
    {
        let bar = ctx.bars.timed("triedb: sync pread", duration);
        let r = reads::phase(&ctx, &db, &snap, Mode::Sync, &bar, Until::Time(duration), 0x400)?;
        report.pread_reads_per_s_depth1 = r.reads_per_s();
        report.pread_latency_depth1 = r.latency;
        report.pread_device_reads_per_lookup = r.device_reads_per_lookup();
    }
    drop(snap);
    drop(db);
    if opts.pread_pool {
        let db = open_db(&db_path, opts, IoBackendChoice::Pread)?;
        let snap = latest_snapshot(&db)?;
        warm_up(&ctx, &db, &snap, 0x11)?;
        let bar = ctx.bars.timed("triedb: pread pool d32", duration);
        let r = reads::phase(
            &ctx,
            &db,
            &snap,
            Mode::Batched { depth: 32 },
            &bar,
            Until::Time(duration),
            0x500,
        )?;
        report.pread_pool_reads_per_s_depth32 = Some(r.reads_per_s());
    }

    report.rss_bytes_max_reads = rss.finish();

    // 5. Commits.
    let rss = PeakTracker::start();
    let db = open_db(&db_path, opts, IoBackendChoice::Auto)?;
    let mut version = report.load_versions;
    let bar = ctx.bars.count("triedb: commit blocks", opts.blocks, "blocks");
    let mut samples = Samples::with_capacity(opts.blocks as usize);
    let mut accounts_updated = 0u64;
    let mut slots_updated = 0u64;
    for b in 0..opts.blocks {
        let block = Block::random(opts.seed, b + 1, n, opts.block_updates);
        let updates = block.updates(&ctx.workload);
        version += 1;
        let start = Instant::now();
        db.commit(version, &updates)
            .with_context(|| format!("committing update block {}", b + 1))?;
        samples.push(start.elapsed());
        accounts_updated += block.accounts.len() as u64;
        slots_updated += block.slot_writes() as u64;
        bar.inc(1);
    }
    bar.finish();
    let total = samples.total();
    report.blocks = opts.blocks;
    report.block_updates = opts.block_updates as u64;
    report.storage_updates_per_block = slots_updated.checked_div(opts.blocks).unwrap_or(0);
    report.updates_per_s = per_s(accounts_updated, total);
    report.ms_per_block =
        if opts.blocks == 0 { 0.0 } else { total.as_secs_f64() * 1e3 / opts.blocks as f64 };
    report.block_latency = samples.summary();
    report.db_file_bytes_after_commits = db.stats().file_bytes;
    drop(db);

    report.rss_bytes_max_commits = rss.finish();
    report.rss_bytes_max =
        report.rss_bytes_max_load.max(report.rss_bytes_max_reads).max(report.rss_bytes_max_commits);
    report.rss_budget_bytes = (opts.cache_mib << 20) + (256 << 20);
    tracing::info!(
        rss_bytes_max = report.rss_bytes_max,
        budget = report.rss_budget_bytes,
        "triedb phases done"
    );

    // 6. Root of fresh accounts vs HashBuilder.
    if opts.root_accounts > 0 {
        let tracker = PeakTracker::start();
        let r = root::run(&ctx, &work.path)?;
        report.root_accounts = r.accounts;
        report.root_1m_ms = r.triedb_ms;
        report.root_memory_1m_ms = r.triedb_memory_ms;
        report.root_memory_parallel_1m_ms = r.triedb_memory_parallel_ms;
        report.root_threads = r.threads;
        report.hashbuilder_1m_ms = r.hashbuilder_ms;
        report.root_file_bytes = r.file_bytes;
        report.root_write_baseline_ms = r.write_baseline_ms;
        report.rss_bytes_max_root_phase = tracker.finish();
    }

    // 7. NOMT.
    #[cfg(feature = "nomt")]
    if opts.nomt {
        let tracker = PeakTracker::start();
        work.created.push(work.path.join("nomt"));
        let r = nomt_peer::run(&ctx, &work.path, &db_path, &DEPTHS, opts.warmup_lookups)?;
        report.set_nomt(&r);
        report.rss_bytes_max_nomt = Some(tracker.finish());
        // 8. triedb's reads again, after NOMT's.
        reads_again(&ctx, &db_path, &mut report)?;
    }
    report.finish();
    Ok(report)
}
