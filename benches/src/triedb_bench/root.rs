//! Root of M fresh accounts: triedb's first commit into an empty database
//! against alloy-trie's in-memory `HashBuilder`, from the same input.
//!
//! Both start from the same `(address, fields)` list, built before either
//! clock starts, and both hash the addresses and sort the keys inside their
//! timed part. triedb's time is the whole `TrieDb::commit` call, so it
//! includes writing every node to disk and the two `fdatasync`s that make it
//! durable; HashBuilder writes nothing. To show how much of triedb's time the
//! device takes, the same number of bytes is then written sequentially to a
//! scratch file (O_DIRECT, 1 MiB writes) and synced: `write_baseline_ms`.
//! The same root is also computed in memory with triedb's streaming builder
//! (`wake_triedb::trie_root_with_threads`, no disk), on one thread (the
//! like-for-like comparison with HashBuilder, which is single-threaded) and
//! on every core. All roots must be equal, or the run fails.

use super::Ctx;
use crate::workload::{Workload, account_info, hash_builder_root, triedb_memory_root};
use alloy_primitives::Address;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::Instant;
use wake_triedb::io::{AlignedBuf, FileStorage, Storage};
use wake_triedb::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};

/// Seed offset of the fresh accounts (distinct from the loaded ones).
const ROOT_SEED: u64 = 0x5eed_0001;
/// Cache budget of the empty database ("a large cache").
const ROOT_CACHE_BYTES: usize = 1 << 30;

#[derive(Clone, Copy, Debug, Default)]
pub struct RootResult {
    pub accounts: u64,
    /// Durable commit into an empty database (disk write + fsync included).
    pub triedb_ms: f64,
    /// The same root in memory (`wake_triedb::trie_root_with_threads`), no
    /// disk, one thread.
    pub triedb_memory_ms: f64,
    /// The same, on `threads` threads.
    pub triedb_memory_parallel_ms: f64,
    pub threads: usize,
    pub hashbuilder_ms: f64,
    pub file_bytes: u64,
    pub write_baseline_ms: f64,
}

/// Writes `bytes` sequentially (1 MiB O_DIRECT writes) and syncs; milliseconds.
fn write_baseline(path: &Path, bytes: u64) -> Result<f64> {
    const BLOCK: usize = 1 << 20;
    let storage = FileStorage::open(path, true).context("creating the write-baseline file")?;
    let mut buf = AlignedBuf::new(BLOCK);
    for (k, b) in buf.as_mut_slice().iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(31);
    }
    let blocks = bytes.div_ceil(BLOCK as u64).max(1);
    let start = Instant::now();
    storage.set_len(blocks * BLOCK as u64).context("sizing the write-baseline file")?;
    for k in 0..blocks {
        storage
            .write_at(buf.as_slice(), k * BLOCK as u64)
            .context("writing the write-baseline file")?;
    }
    storage.sync_data().context("syncing the write-baseline file")?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    drop(storage);
    let _ = std::fs::remove_file(path);
    Ok(ms)
}

pub fn run(ctx: &Ctx, dir: &Path) -> Result<RootResult> {
    let m = ctx.opts.root_accounts;
    let workload = Workload::new(ctx.opts.seed ^ ROOT_SEED);
    let bar = ctx.bars.count("root: prepare", m, "accounts");
    let accounts: Vec<(Address, AccountInfo)> = (0..m)
        .map(|i| {
            bar.inc(1);
            (workload.address(i), account_info(i, 0))
        })
        .collect();
    let updates = StateUpdates {
        accounts: accounts
            .iter()
            .map(|(address, info)| (*address, AccountUpdate::info(*info)))
            .collect(),
        codes: Vec::new(),
    };
    bar.finish();

    let path = dir.join("root-fresh.triedb");
    let _ = std::fs::remove_file(&path);
    let mut config = Config::new(&path);
    config.cache_bytes = ROOT_CACHE_BYTES;
    let db = TrieDb::open(config).context("opening the empty database")?;
    tracing::info!(accounts = m, "root: triedb commit of fresh accounts (version 1)");
    let start = Instant::now();
    let root = db.commit(1, &updates).context("committing the fresh accounts")?;
    let triedb_ms = start.elapsed().as_secs_f64() * 1e3;
    let file_bytes = db.stats().file_bytes;
    drop(db);
    drop(updates);
    let _ = std::fs::remove_file(&path);

    tracing::info!(accounts = m, "root: alloy-trie HashBuilder over the same accounts");
    let start = Instant::now();
    let oracle = hash_builder_root(&accounts);
    let hashbuilder_ms = start.elapsed().as_secs_f64() * 1e3;
    if root != oracle {
        bail!("triedb root {root} differs from alloy-trie's {oracle} for {m} fresh accounts");
    }

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut memory_ms = [0.0; 2];
    for (ms, threads) in memory_ms.iter_mut().zip([1, threads]) {
        tracing::info!(accounts = m, threads, "root: triedb in-memory root over the same accounts");
        let start = Instant::now();
        let memory_root = triedb_memory_root(&accounts, threads);
        *ms = start.elapsed().as_secs_f64() * 1e3;
        if memory_root != oracle {
            bail!(
                "triedb in-memory root {memory_root} ({threads} threads) differs from alloy-trie's {oracle}"
            );
        }
    }

    tracing::info!(bytes = file_bytes, "root: sequential write + fdatasync baseline");
    let write_baseline_ms = write_baseline(&dir.join("write-baseline.bin"), file_bytes)?;
    Ok(RootResult {
        accounts: m,
        triedb_ms,
        triedb_memory_ms: memory_ms[0],
        triedb_memory_parallel_ms: memory_ms[1],
        threads,
        hashbuilder_ms,
        file_bytes,
        write_baseline_ms,
    })
}
