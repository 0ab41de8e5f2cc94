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
//! The same root is also computed in memory with triedb's merkleization code
//! (`wake_triedb::trie_root`, no disk): that is the like-for-like comparison
//! with HashBuilder. All roots must be equal, or the run fails.

use super::Ctx;
use crate::workload::{Workload, account_info, hash_builder_root, trie_account};
use alloy_primitives::{Address, B256, keccak256};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::Instant;
use wake_triedb::io::{AlignedBuf, FileStorage, Storage};
use wake_triedb::{AccountInfo, AccountUpdate, Config, EMPTY_ROOT, StateUpdates, TrieDb};

/// Seed offset of the fresh accounts (distinct from the loaded ones).
const ROOT_SEED: u64 = 0x5eed_0001;
/// Cache budget of the empty database ("a large cache").
const ROOT_CACHE_BYTES: usize = 1 << 30;

#[derive(Clone, Copy, Debug, Default)]
pub struct RootResult {
    pub accounts: u64,
    /// Durable commit into an empty database (disk write + fsync included).
    pub triedb_ms: f64,
    /// The same root in memory (`wake_triedb::trie_root`), no disk.
    pub triedb_memory_ms: f64,
    pub hashbuilder_ms: f64,
    pub file_bytes: u64,
    pub write_baseline_ms: f64,
}

/// triedb's in-memory merkleization (`wake_triedb::trie_root`) from the same
/// input, hashing and encoding inside the timed part as HashBuilder does.
fn triedb_memory_root(accounts: &[(Address, AccountInfo)]) -> B256 {
    let leaves: Vec<(B256, Vec<u8>)> = accounts
        .iter()
        .map(|(address, info)| {
            let account = trie_account(info, EMPTY_ROOT);
            (keccak256(address), alloy_rlp::encode(account))
        })
        .collect();
    wake_triedb::trie_root(leaves)
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

    tracing::info!(accounts = m, "root: triedb in-memory root over the same accounts");
    let start = Instant::now();
    let memory_root = triedb_memory_root(&accounts);
    let triedb_memory_ms = start.elapsed().as_secs_f64() * 1e3;
    if memory_root != oracle {
        bail!("triedb in-memory root {memory_root} differs from alloy-trie's {oracle}");
    }

    tracing::info!(bytes = file_bytes, "root: sequential write + fdatasync baseline");
    let write_baseline_ms = write_baseline(&dir.join("write-baseline.bin"), file_bytes)?;
    Ok(RootResult {
        accounts: m,
        triedb_ms,
        triedb_memory_ms,
        hashbuilder_ms,
        file_bytes,
        write_baseline_ms,
    })
}
