//! The report of `wake bench triedb`: one flat JSON object (`--json`) and a
//! human table. Every figure in it was measured in the run that made it.

use super::raw::RawResult;
use super::reads::ReadResult;
use crate::stats::Percentiles;
use serde::Serialize;
use std::fmt::Write as _;

/// Results of one run. Throughputs are per second, latencies in µs unless
/// the name says otherwise, sizes in bytes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    // Setup.
    pub accounts: u64,
    pub storage_accounts: u64,
    pub storage_slots: u64,
    pub cache_mib: u64,
    pub embed_subtrees: bool,
    /// Rings each large read batch is split across (reads in flight stay
    /// the phase's depth).
    pub batch_threads: usize,
    pub nproc: usize,
    pub cpu_model: String,
    pub dir: String,
    pub io_backend: String,
    pub o_direct: bool,
    pub phase_secs: f64,
    pub load_s: f64,
    pub load_versions: u64,
    pub db_file_bytes: u64,
    pub db_live_bytes: u64,

    // Cold reads through triedb.
    pub warmup_lookups: u64,
    pub warmup_device_reads_per_lookup: f64,
    pub reads_per_s_depth1: f64,
    pub reads_per_s_depth8: f64,
    pub reads_per_s_depth32: f64,
    /// Device reads per lookup over the three timed io_uring phases.
    pub device_reads_per_lookup: f64,
    pub device_reads_per_lookup_depth1: f64,
    pub device_reads_per_lookup_depth8: f64,
    pub device_reads_per_lookup_depth32: f64,
    /// Per lookup: each `accounts_with_depth(&[a], 1)` call.
    pub lookup_latency_depth1: Percentiles,
    /// Per lookup of the streamed phases (depths 8 and 32), from the moment
    /// triedb pulls the address to the moment it hands back the account.
    pub lookup_latency_depth8: Percentiles,
    pub lookup_latency_depth32: Percentiles,
    /// Depth 32 in batches (`accounts_with_depth`, the API a block's
    /// prefetch uses), each of `batch_lookups_depth32` lookups ending with
    /// its queue draining; latency per batch call.
    pub reads_per_s_depth32_batched: f64,
    pub device_reads_per_lookup_depth32_batched: f64,
    pub batch_latency_depth32: Percentiles,
    pub batch_lookups_depth32: u64,

    // Raw device, same file, same ring code.
    pub raw_io_backend: String,
    pub raw_span_bytes: u64,
    pub raw_reads_per_s_depth1: f64,
    pub raw_reads_per_s_depth8: f64,
    pub raw_reads_per_s_depth32: f64,
    /// Per read, submission to completion.
    pub raw_latency_depth1: Percentiles,
    pub raw_latency_depth8: Percentiles,
    pub raw_latency_depth32: Percentiles,
    pub raw_pread_reads_per_s_depth1: f64,
    pub raw_pread_latency_depth1: Percentiles,

    // Synchronous path (`Snapshot::account`, pread on a miss).
    pub pread_reads_per_s_depth1: f64,
    pub pread_latency_depth1: Percentiles,
    pub pread_device_reads_per_lookup: f64,
    /// A database opened with the pread thread-pool backend, depth 32 (`--pread-pool`).
    pub pread_pool_reads_per_s_depth32: Option<f64>,

    // Commits.
    pub blocks: u64,
    pub block_updates: u64,
    pub storage_updates_per_block: u64,
    /// Account updates per second of commit time (each commit durable).
    pub updates_per_s: f64,
    pub ms_per_block: f64,
    /// Per block commit.
    pub block_latency: Percentiles,
    pub db_file_bytes_after_commits: u64,

    // Memory of phases load..commits (NOMT and the root phase excluded).
    pub rss_bytes_max: u64,
    pub rss_bytes_max_load: u64,
    pub rss_bytes_max_reads: u64,
    pub rss_bytes_max_commits: u64,
    /// Cache budget + 256 MiB.
    pub rss_budget_bytes: u64,
    /// `true`: kernel peak (VmHWM after a clear_refs reset); `false`: sampled VmRSS.
    pub rss_exact: bool,

    // Root of fresh accounts.
    pub root_accounts: u64,
    /// triedb commit into an empty database, disk writes and fsyncs included.
    pub root_1m_ms: f64,
    /// The same root in memory (`trie_root_with_threads`), one thread.
    pub root_memory_1m_ms: f64,
    /// The same on `root_threads` threads.
    pub root_memory_parallel_1m_ms: f64,
    pub root_threads: usize,
    pub hashbuilder_1m_ms: f64,
    pub root_file_bytes: u64,
    /// Sequential O_DIRECT write + fdatasync of `root_file_bytes`.
    pub root_write_baseline_ms: f64,
    pub rss_bytes_max_root_phase: u64,

    // NOMT peer.
    pub nomt_load_s: Option<f64>,
    pub nomt_hashtable_buckets: Option<u32>,
    pub nomt_hashtable_occupied: Option<u64>,
    pub nomt_disk_bytes: Option<u64>,
    /// One thread, `Session::read` in a loop.
    pub nomt_reads_per_s: Option<f64>,
    pub nomt_read_latency_depth1: Option<Percentiles>,
    /// 8 and 32 threads sharing a session.
    pub nomt_reads_per_s_threads8: Option<f64>,
    pub nomt_reads_per_s_threads32: Option<f64>,
    /// The raw baselines measured again right after NOMT's reads (the
    /// disk's speed drifts between phases).
    pub raw_pread_reads_per_s_at_nomt: Option<f64>,
    pub raw_reads_per_s_depth32_at_nomt: Option<f64>,
    /// Peak RSS of NOMT's read phases (from its reopen after the load).
    pub rss_bytes_max_nomt_reads: Option<u64>,
    pub nomt_updates_per_s: Option<f64>,
    pub nomt_ms_per_block: Option<f64>,
    pub nomt_block_latency: Option<Percentiles>,
    pub rss_bytes_max_nomt: Option<u64>,
    /// triedb's depth 1 and depth 32 (streamed) lookups again, after NOMT's
    /// (phase 8): with the first pass they bracket NOMT's reads in time.
    pub reads_per_s_depth1_after_nomt: Option<f64>,
    pub reads_per_s_depth32_after_nomt: Option<f64>,
    pub device_reads_per_lookup_after_nomt: Option<f64>,

    // Ratios (higher is better for triedb) and their targets.
    /// reads_per_s_depth32 / raw_reads_per_s_depth32 (target ≥ 0.8).
    pub ratio_depth32_vs_raw: f64,
    /// reads_per_s_depth32 / pread_reads_per_s_depth1 (target ≥ 3).
    pub ratio_depth32_vs_pread: f64,
    /// hashbuilder_1m_ms / root_1m_ms: durable commit vs in-memory HashBuilder.
    pub ratio_root_vs_hashbuilder: f64,
    /// hashbuilder_1m_ms / root_memory_1m_ms: in memory vs in memory, one
    /// thread each (target ≥ 1).
    pub ratio_memory_root_vs_hashbuilder: f64,
    /// hashbuilder_1m_ms / root_memory_parallel_1m_ms (every core vs one).
    pub ratio_parallel_memory_root_vs_hashbuilder: f64,
    /// updates_per_s / nomt_updates_per_s (target ≥ 1).
    pub ratio_updates_vs_nomt: Option<f64>,
    /// reads_per_s_depth1 / nomt_reads_per_s (target ≥ 1).
    pub ratio_reads_vs_nomt: Option<f64>,
    /// reads_per_s_depth32 / nomt_reads_per_s_threads32.
    pub ratio_reads_depth32_vs_nomt_threads32: Option<f64>,
    /// The two read ratios against NOMT with each side divided by the raw
    /// device as measured next to it (depth 1: pread; depth 32: io_uring at
    /// depth 32): what the ratios would be on a disk of steady speed.
    pub ratio_reads_vs_nomt_device_adjusted: Option<f64>,
    pub ratio_reads_depth32_vs_nomt_threads32_device_adjusted: Option<f64>,
    /// The two read ratios against NOMT with triedb's rate the mean of its
    /// two passes, before and after NOMT's reads (A-B-A): a disk whose speed
    /// drifts through the run moves both sides alike.
    pub ratio_reads_vs_nomt_bracketed: Option<f64>,
    pub ratio_reads_depth32_vs_nomt_threads32_bracketed: Option<f64>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

impl Report {
    /// The results of the phase at `depth` (streamed above depth 1).
    pub(super) fn set_triedb_reads(&mut self, depth: usize, r: &ReadResult) {
        let rate = r.reads_per_s();
        let per_lookup = r.device_reads_per_lookup();
        match depth {
            1 => {
                self.reads_per_s_depth1 = rate;
                self.device_reads_per_lookup_depth1 = per_lookup;
                self.lookup_latency_depth1 = r.latency;
            }
            8 => {
                self.reads_per_s_depth8 = rate;
                self.device_reads_per_lookup_depth8 = per_lookup;
                self.lookup_latency_depth8 = r.latency;
            }
            32 => {
                self.reads_per_s_depth32 = rate;
                self.device_reads_per_lookup_depth32 = per_lookup;
                self.lookup_latency_depth32 = r.latency;
            }
            _ => {}
        }
    }

    /// The results of the batched phase at depth 32.
    pub(super) fn set_triedb_batched(&mut self, r: &ReadResult) {
        self.reads_per_s_depth32_batched = r.reads_per_s();
        self.device_reads_per_lookup_depth32_batched = r.device_reads_per_lookup();
        self.batch_latency_depth32 = r.latency;
        self.batch_lookups_depth32 = (super::reads::BATCH_PER_DEPTH * 32) as u64;
    }

    pub(super) fn set_raw_reads(&mut self, depth: usize, r: &RawResult) {
        let rate = r.reads_per_s();
        match depth {
            1 => {
                self.raw_reads_per_s_depth1 = rate;
                self.raw_latency_depth1 = r.latency;
            }
            8 => {
                self.raw_reads_per_s_depth8 = rate;
                self.raw_latency_depth8 = r.latency;
            }
            32 => {
                self.raw_reads_per_s_depth32 = rate;
                self.raw_latency_depth32 = r.latency;
            }
            _ => {}
        }
    }

    #[cfg(feature = "nomt")]
    pub(super) fn set_nomt(&mut self, r: &super::nomt_peer::NomtResult) {
        self.nomt_load_s = Some(r.load_s);
        self.nomt_hashtable_buckets = Some(r.hashtable_buckets);
        self.nomt_hashtable_occupied = Some(r.hashtable_occupied);
        self.nomt_disk_bytes = Some(r.disk_bytes);
        self.nomt_reads_per_s = Some(r.reads_per_s);
        self.nomt_read_latency_depth1 = Some(r.read_latency);
        for &(threads, rate) in &r.reads_per_s_threads {
            match threads {
                8 => self.nomt_reads_per_s_threads8 = Some(rate),
                32 => self.nomt_reads_per_s_threads32 = Some(rate),
                _ => {}
            }
        }
        self.raw_pread_reads_per_s_at_nomt = Some(r.raw_pread_reads_per_s);
        self.raw_reads_per_s_depth32_at_nomt = Some(r.raw_reads_per_s_depth32);
        self.rss_bytes_max_nomt_reads = Some(r.rss_bytes_max_reads);
        self.nomt_updates_per_s = Some(r.updates_per_s);
        self.nomt_ms_per_block = Some(r.ms_per_block);
        self.nomt_block_latency = Some(r.block_latency);
    }

    /// Computes the ratios.
    pub(super) fn finish(&mut self) {
        self.ratio_depth32_vs_raw = ratio(self.reads_per_s_depth32, self.raw_reads_per_s_depth32);
        self.ratio_depth32_vs_pread =
            ratio(self.reads_per_s_depth32, self.pread_reads_per_s_depth1);
        self.ratio_root_vs_hashbuilder = ratio(self.hashbuilder_1m_ms, self.root_1m_ms);
        self.ratio_memory_root_vs_hashbuilder =
            ratio(self.hashbuilder_1m_ms, self.root_memory_1m_ms);
        self.ratio_parallel_memory_root_vs_hashbuilder =
            ratio(self.hashbuilder_1m_ms, self.root_memory_parallel_1m_ms);
        self.ratio_updates_vs_nomt =
            self.nomt_updates_per_s.map(|nomt| ratio(self.updates_per_s, nomt));
        self.ratio_reads_vs_nomt =
            self.nomt_reads_per_s.map(|nomt| ratio(self.reads_per_s_depth1, nomt));
        self.ratio_reads_depth32_vs_nomt_threads32 =
            self.nomt_reads_per_s_threads32.map(|nomt| ratio(self.reads_per_s_depth32, nomt));
        let adjusted = |ours: f64, our_raw: f64, nomt: Option<f64>, nomt_raw: Option<f64>| {
            Some(ratio(ratio(ours, our_raw), ratio(nomt?, nomt_raw?))).filter(|r| *r > 0.0)
        };
        self.ratio_reads_vs_nomt_device_adjusted = adjusted(
            self.reads_per_s_depth1,
            self.raw_pread_reads_per_s_depth1,
            self.nomt_reads_per_s,
            self.raw_pread_reads_per_s_at_nomt,
        );
        self.ratio_reads_depth32_vs_nomt_threads32_device_adjusted = adjusted(
            self.reads_per_s_depth32,
            self.raw_reads_per_s_depth32,
            self.nomt_reads_per_s_threads32,
            self.raw_reads_per_s_depth32_at_nomt,
        );
        let bracketed = |first: f64, after: Option<f64>, nomt: Option<f64>| {
            Some(ratio((first + after?) / 2.0, nomt?)).filter(|r| *r > 0.0)
        };
        self.ratio_reads_vs_nomt_bracketed = bracketed(
            self.reads_per_s_depth1,
            self.reads_per_s_depth1_after_nomt,
            self.nomt_reads_per_s,
        );
        self.ratio_reads_depth32_vs_nomt_threads32_bracketed = bracketed(
            self.reads_per_s_depth32,
            self.reads_per_s_depth32_after_nomt,
            self.nomt_reads_per_s_threads32,
        );
    }

    /// One JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
        let _ = writeln!(
            t,
            "wake bench triedb: {} accounts ({} with {} slots), cache {} MiB, embedded subtrees {}, batches on {} ring(s), {} cores ({}), backend {}, O_DIRECT {}",
            self.accounts,
            self.storage_accounts,
            self.storage_slots,
            self.cache_mib,
            self.embed_subtrees,
            self.batch_threads,
            self.nproc,
            self.cpu_model,
            self.io_backend,
            self.o_direct
        );
        let _ = writeln!(
            t,
            "load {:.1} s in {} versions; file {:.0} MiB, live {:.0} MiB ({:.1}× the cache)",
            self.load_s,
            self.load_versions,
            mib(self.db_file_bytes),
            mib(self.db_live_bytes),
            ratio(mib(self.db_live_bytes), self.cache_mib as f64)
        );
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:<38} {:>12} {:>10} {:>10} {:>10}",
            "cold reads (random accounts)", "reads/s", "p50 µs", "p99 µs", "p99.9 µs"
        );
        let row = |t: &mut String, name: &str, rate: f64, p: &Percentiles| {
            let _ = writeln!(
                t,
                "{:<38} {:>12.0} {:>10.1} {:>10.1} {:>10.1}",
                name, rate, p.p50_us, p.p99_us, p.p999_us
            );
        };
        row(
            &mut t,
            "triedb depth 1 (per lookup)",
            self.reads_per_s_depth1,
            &self.lookup_latency_depth1,
        );
        row(
            &mut t,
            "triedb depth 8 (streamed, per lookup)",
            self.reads_per_s_depth8,
            &self.lookup_latency_depth8,
        );
        row(
            &mut t,
            "triedb depth 32 (streamed, per lookup)",
            self.reads_per_s_depth32,
            &self.lookup_latency_depth32,
        );
        row(
            &mut t,
            &format!("triedb depth 32 (per {}-batch)", self.batch_lookups_depth32),
            self.reads_per_s_depth32_batched,
            &self.batch_latency_depth32,
        );
        row(
            &mut t,
            "triedb sync pread (account)",
            self.pread_reads_per_s_depth1,
            &self.pread_latency_depth1,
        );
        row(
            &mut t,
            "raw 4 KiB depth 1 (per read)",
            self.raw_reads_per_s_depth1,
            &self.raw_latency_depth1,
        );
        row(
            &mut t,
            "raw 4 KiB depth 8 (per read)",
            self.raw_reads_per_s_depth8,
            &self.raw_latency_depth8,
        );
        row(
            &mut t,
            "raw 4 KiB depth 32 (per read)",
            self.raw_reads_per_s_depth32,
            &self.raw_latency_depth32,
        );
        row(
            &mut t,
            "raw 4 KiB pread",
            self.raw_pread_reads_per_s_depth1,
            &self.raw_pread_latency_depth1,
        );
        if let (Some(rate), Some(p)) = (self.nomt_reads_per_s, &self.nomt_read_latency_depth1) {
            row(&mut t, "NOMT 1 thread (per read)", rate, p);
        }
        if let Some(rate) = self.nomt_reads_per_s_threads8 {
            let _ = writeln!(t, "{:<38} {:>12.0}", "NOMT 8 threads", rate);
        }
        if let Some(rate) = self.nomt_reads_per_s_threads32 {
            let _ = writeln!(t, "{:<38} {:>12.0}", "NOMT 32 threads", rate);
        }
        if let (Some(pread), Some(d32)) =
            (self.raw_pread_reads_per_s_at_nomt, self.raw_reads_per_s_depth32_at_nomt)
        {
            let _ = writeln!(t, "{:<38} {:>12.0}", "raw pread, right after NOMT", pread);
            let _ = writeln!(t, "{:<38} {:>12.0}", "raw depth 32, right after NOMT", d32);
        }
        if let (Some(d1), Some(d32)) =
            (self.reads_per_s_depth1_after_nomt, self.reads_per_s_depth32_after_nomt)
        {
            let _ = writeln!(t, "{:<38} {:>12.0}", "triedb depth 1, after NOMT", d1);
            let _ = writeln!(t, "{:<38} {:>12.0}", "triedb depth 32 streamed, after NOMT", d32);
        }
        if let Some(rate) = self.pread_pool_reads_per_s_depth32 {
            let _ = writeln!(t, "{:<38} {:>12.0}", "triedb pread pool depth 32", rate);
        }
        let _ = writeln!(
            t,
            "device reads per lookup: {:.3} (depth 1 {:.3}, 8 {:.3}, 32 {:.3}, 32 batched {:.3}; sync {:.3}; warm-up {:.3} over {} lookups)",
            self.device_reads_per_lookup,
            self.device_reads_per_lookup_depth1,
            self.device_reads_per_lookup_depth8,
            self.device_reads_per_lookup_depth32,
            self.device_reads_per_lookup_depth32_batched,
            self.pread_device_reads_per_lookup,
            self.warmup_device_reads_per_lookup,
            self.warmup_lookups
        );
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:<38} {:>12} {:>10} {:>10} {:>10}",
            "commits (durable)", "updates/s", "ms/block", "p50 ms", "p99 ms"
        );
        let _ = writeln!(
            t,
            "{:<38} {:>12.0} {:>10.1} {:>10.1} {:>10.1}",
            format!(
                "triedb {} × {} (+{} slots)",
                self.blocks, self.block_updates, self.storage_updates_per_block
            ),
            self.updates_per_s,
            self.ms_per_block,
            self.block_latency.p50_us / 1e3,
            self.block_latency.p99_us / 1e3
        );
        if let (Some(rate), Some(ms), Some(p)) =
            (self.nomt_updates_per_s, self.nomt_ms_per_block, &self.nomt_block_latency)
        {
            let _ = writeln!(
                t,
                "{:<38} {:>12.0} {:>10.1} {:>10.1} {:>10.1}",
                "NOMT, same blocks",
                rate,
                ms,
                p.p50_us / 1e3,
                p.p99_us / 1e3
            );
        }
        let _ = writeln!(t);
        if self.root_accounts > 0 {
            let _ = writeln!(
                t,
                "root of {} fresh accounts: triedb in memory {:.0} ms (1 thread), {:.0} ms ({} threads), HashBuilder {:.0} ms; triedb durable commit {:.0} ms (incl. writing {:.0} MiB + fsync; a plain sequential write+fsync of that size takes {:.0} ms)",
                self.root_accounts,
                self.root_memory_1m_ms,
                self.root_memory_parallel_1m_ms,
                self.root_threads,
                self.hashbuilder_1m_ms,
                self.root_1m_ms,
                mib(self.root_file_bytes),
                self.root_write_baseline_ms
            );
        }
        let _ = writeln!(
            t,
            "peak RSS (load..commits): {:.0} MiB of a {:.0} MiB budget (load {:.0}, reads {:.0}, commits {:.0} MiB; {}){}",
            mib(self.rss_bytes_max),
            mib(self.rss_budget_bytes),
            mib(self.rss_bytes_max_load),
            mib(self.rss_bytes_max_reads),
            mib(self.rss_bytes_max_commits),
            if self.rss_exact { "VmHWM" } else { "sampled VmRSS" },
            match self.rss_bytes_max_nomt {
                Some(n) => format!(
                    "; root phase {:.0} MiB; NOMT phase {:.0} MiB, its reads {:.0} MiB",
                    mib(self.rss_bytes_max_root_phase),
                    mib(n),
                    mib(self.rss_bytes_max_nomt_reads.unwrap_or(0)),
                ),
                None => String::new(),
            }
        );
        let _ = writeln!(t);
        let _ = writeln!(t, "{:<44} {:>8} {:>8}  ", "ratio", "measured", "target");
        let target = |t: &mut String, name: &str, value: f64, want: f64| {
            let _ = writeln!(
                t,
                "{:<44} {:>8.2} {:>8}  {}",
                name,
                value,
                format!("≥ {want}"),
                if value >= want { "ok" } else { "MISSED" }
            );
        };
        target(&mut t, "triedb depth 32 / raw depth 32", self.ratio_depth32_vs_raw, 0.8);
        target(&mut t, "triedb depth 32 / sync pread", self.ratio_depth32_vs_pread, 3.0);
        if self.root_accounts > 0 {
            target(
                &mut t,
                "in-memory root: HashBuilder / triedb, 1 thread",
                self.ratio_memory_root_vs_hashbuilder,
                1.0,
            );
        }
        if let Some(r) = self.ratio_updates_vs_nomt {
            target(&mut t, "updates/s: triedb / NOMT", r, 1.0);
        }
        if let Some(r) = self.ratio_reads_vs_nomt {
            target(&mut t, "reads/s depth 1: triedb / NOMT", r, 1.0);
        }
        if let Some(r) = self.ratio_reads_depth32_vs_nomt_threads32 {
            target(&mut t, "reads/s: triedb depth 32 / NOMT 32 threads", r, 1.0);
        }
        if let (Some(d1), Some(d32)) = (
            self.ratio_reads_vs_nomt_device_adjusted,
            self.ratio_reads_depth32_vs_nomt_threads32_device_adjusted,
        ) {
            let _ = writeln!(
                t,
                "  (the two read ratios with each side over the raw device measured next to it: \
                 depth 1 {d1:.2}, depth 32 {d32:.2})"
            );
        }
        if let (Some(d1), Some(d32)) = (
            self.ratio_reads_vs_nomt_bracketed,
            self.ratio_reads_depth32_vs_nomt_threads32_bracketed,
        ) {
            let _ = writeln!(
                t,
                "  (the same with triedb's rate the mean of its passes before and after NOMT's: \
                 depth 1 {d1:.2}, depth 32 {d32:.2})"
            );
        }
        let within = self.rss_bytes_max <= self.rss_budget_bytes;
        let _ = writeln!(
            t,
            "{:<44} {:>8} {:>8}  {}",
            "peak RSS within cache + 256 MiB",
            format!("{:.0}M", mib(self.rss_bytes_max)),
            format!("{:.0}M", mib(self.rss_budget_bytes)),
            if within { "ok" } else { "MISSED" }
        );
        t
    }
}
