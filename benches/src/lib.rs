//! Benchmark drivers and peers for wake.
//!
//! * [`triedb_bench`]: the storage macro benchmark behind `wake bench triedb`
//!   (cold reads at several depths, the raw device and pread baselines,
//!   durable commits, the root of fresh accounts against alloy-trie, and the
//!   NOMT peer, all in one run);
//! * [`workload`]: the synthetic accounts and update blocks, shared with the
//!   criterion benches in `benches/benches/`;
//! * [`stats`], [`rss`], [`progress`]: percentiles, resident memory, progress bars.

pub mod progress;
pub mod rss;
pub mod stats;
pub mod triedb_bench;
pub mod workload;

pub use triedb_bench::{
    LOAD_CHILD_ENV, Report, TrieDbBenchOptions, run_triedb_bench, run_triedb_load_child,
};
