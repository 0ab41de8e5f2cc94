//! The public database handle: open, commit, snapshots.

use crate::io::{IoBackend, IoBackendChoice, Storage};
use crate::{Account, AccountProof, Result, StateUpdates, VersionInfo};
use alloy_primitives::{Address, B256, Bytes, U256};
use std::path::PathBuf;
use std::sync::Arc;

/// Options of [`TrieDb::open`].
#[derive(Clone, Debug)]
pub struct Config {
    /// The database file (or raw block device). Created when missing.
    pub path: PathBuf,
    /// Memory budget of the node cache, in bytes (default 256 MiB).
    pub cache_bytes: usize,
    /// Most reads in flight per batch (default 32).
    pub io_depth: usize,
    /// Read backend (default: io_uring, falling back to pread).
    pub io_backend: IoBackendChoice,
    /// How many newest versions stay readable (default 256, at least 1).
    pub retain_versions: u64,
    /// Size of one chunk, used only when creating a file (default 16 MiB).
    pub chunk_bytes: u64,
}

impl Config {
    pub fn new(path: impl Into<PathBuf>) -> Config {
        Config {
            path: path.into(),
            cache_bytes: 256 << 20,
            io_depth: 32,
            io_backend: IoBackendChoice::Auto,
            retain_versions: 256,
            chunk_bytes: 16 << 20,
        }
    }
}

/// Counters and sizes, for benchmarks and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Size of the file in bytes.
    pub file_bytes: u64,
    /// Bytes of nodes reachable from the newest version.
    pub live_bytes: u64,
    /// Chunks holding data of some retained version.
    pub chunks_in_use: u64,
    /// Bytes held by the node cache.
    pub cache_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Device reads issued by lookups since open.
    pub device_reads: u64,
    /// Nodes copied forward by compaction since open.
    pub nodes_compacted: u64,
}

/// An open database. Cheap to clone; share it across threads.
#[derive(Clone)]
pub struct TrieDb {
    pub(crate) inner: Arc<crate::store::Shared>,
}

/// A read-only view of one retained version.
#[derive(Clone)]
pub struct Snapshot {
    pub(crate) db: Arc<crate::store::Shared>,
    pub(crate) version: VersionInfo,
}

#[allow(unused_variables)]
impl TrieDb {
    /// Opens (or creates) the database file named in `config`.
    pub fn open(config: Config) -> Result<TrieDb> {
        todo!()
    }
    /// Opens a database over any storage (tests use a fault-injecting one).
    pub fn open_with_storage(config: Config, storage: Arc<dyn Storage>) -> Result<TrieDb> {
        todo!()
    }
    /// The newest committed version, if any.
    pub fn latest(&self) -> Option<VersionInfo> {
        todo!()
    }
    /// All retained versions, oldest first.
    pub fn versions(&self) -> Vec<VersionInfo> {
        todo!()
    }
    /// Applies one block's state diff as `version` and returns the new state
    /// root. Durable when it returns. On error the previous version is intact.
    pub fn commit(&self, version: u64, updates: &StateUpdates) -> Result<B256> {
        todo!()
    }
    /// Raw mode (test vectors, researchers): a plain MPT from unhashed byte
    /// keys to byte values; `None` deletes. Do not mix with [`TrieDb::commit`]
    /// in one database.
    pub fn commit_raw(&self, version: u64, updates: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<B256> {
        todo!()
    }
    /// A view of a retained version.
    pub fn snapshot(&self, version: u64) -> Result<Snapshot> {
        todo!()
    }
    pub fn stats(&self) -> Stats {
        todo!()
    }
    pub fn io_backend(&self) -> IoBackend {
        todo!()
    }
}

#[allow(unused_variables)]
impl Snapshot {
    pub fn version(&self) -> u64 {
        self.version.version
    }
    pub fn state_root(&self) -> B256 {
        self.version.state_root
    }
    /// One account, read synchronously (pread on a cache miss).
    pub fn account(&self, address: &Address) -> Result<Option<Account>> {
        todo!()
    }
    /// One storage slot (zero when absent).
    pub fn storage(&self, address: &Address, slot: &B256) -> Result<U256> {
        todo!()
    }
    /// Contract code by hash.
    pub fn code(&self, code_hash: &B256) -> Result<Option<Bytes>> {
        todo!()
    }
    /// Many accounts at once, with up to the configured depth of reads in flight.
    pub fn accounts(&self, addresses: &[Address]) -> Result<Vec<Option<Account>>> {
        todo!()
    }
    /// Like [`Snapshot::accounts`] with at most `depth` reads in flight.
    pub fn accounts_with_depth(&self, addresses: &[Address], depth: usize) -> Result<Vec<Option<Account>>> {
        todo!()
    }
    /// Many storage slots at once, reads overlapped.
    pub fn storage_batch(&self, keys: &[(Address, B256)]) -> Result<Vec<U256>> {
        todo!()
    }
    /// Raw mode read.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        todo!()
    }
    /// EIP-1186 proof of `address` and `slots`.
    pub fn proof(&self, address: &Address, slots: &[B256]) -> Result<AccountProof> {
        todo!()
    }
}
