//! Benchmark drivers and peers for wake.
//!
//! * [`triedb_bench`]: the storage macro benchmark behind `wake bench triedb`
//!   (cold reads at several depths, the raw device and pread baselines,
//!   durable commits, the root of fresh accounts against alloy-trie, and the
//!   NOMT peer, all in one run);
//! * [`exec_bench`]: the execution macro benchmark behind `wake bench
//!   execution` (state cached and cold, serial and parallel, prefetch on
//!   and off, end to end through the triedb commit);
//! * [`exec_workload`]: signed native and ERC-20 transfer blocks over a
//!   seeded genesis (fillers, keyed senders, a vendored ERC-20), and the
//!   [`exec_workload::Ledger`] that checks what they did;
//! * [`workload`]: the synthetic accounts and update blocks, shared with the
//!   criterion benches in `benches/benches/`;
//! * [`stats`], [`rss`], [`usage`], [`progress`]: percentiles, resident memory,
//!   CPU time and storage bytes, progress bars.

pub mod exec_bench;
pub mod exec_workload;
pub mod progress;
pub mod rss;
pub mod stats;
pub mod triedb_bench;
pub mod usage;
pub mod workload;

pub use exec_bench::{ExecBenchOptions, ExecReport, run_exec_bench};
pub use triedb_bench::{
    LOAD_CHILD_ENV, Report, TrieDbBenchOptions, run_triedb_bench, run_triedb_load_child,
};
