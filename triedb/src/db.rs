//! The public database handle: open, commit, snapshots.

use crate::commit::{
    AccountOp, CommitCtx, RawOp, root_hash, sorted_hashed, sorted_ops, to_nibble_ops,
};
use crate::io::{FileStorage, IoBackend, IoBackendChoice, ReadEngine, Storage};
use crate::meta::{self, Meta, VersionRecord};
use crate::node::{AccountValue, StoredRef, Value, nibbles};
use crate::read::{self, Keeping, Kept, Target, TopNodes};
use crate::store::{ChunkMap, Shared, WriterState};
use crate::{
    Account, AccountProof, AccountUpdate, Error, Result, StateUpdates, StorageProof, VersionInfo,
};
use alloy_primitives::map::HashMap;
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
    /// Size of one chunk, used only when creating a file (default 16 MiB; a
    /// multiple of 4 KiB from 1 MiB to 1 GiB). Compaction frees whole chunks.
    pub chunk_bytes: u64,
    /// Also embed small self-contained branches (not only leaves) in their
    /// parent's record (default on). A bottom branch then keeps the small
    /// collision branches under it in its own record: a cold lookup needs
    /// one read however the bottom node was rewritten (stored, such a
    /// child stays where an older commit put it, off the parent's page),
    /// and the cache, which holds records, fits more of the bottom level.
    /// `wake bench triedb --quick` (1M accounts, 64 MiB cache): 0.82
    /// device reads per lookup against 1.09–1.15 without, and commits as
    /// fast. Commits rewrite bigger records, which cost more when nodes
    /// were decoded into separate allocations (0.6x before embedded
    /// children stayed in record form).
    pub embed_subtrees: bool,
    /// Threads one large batch lookup is split across (default 1: the
    /// caller's own). Each part runs on its own thread with its own ring and
    /// `io_depth` reads in flight, so walking, decoding and handing out
    /// completions, which cost 11-17 µs of CPU a lookup and bound one
    /// thread's batch at 50-65k lookups/s on a 2.6 GHz core
    /// (`read_probe`), use more than one core. That matters for a device
    /// faster than one thread (NVMe); on the 2-core VM of
    /// `benches/RESULTS.md` 2 threads gave 1.08-1.38x on plain batches and
    /// nothing on a block's prefetch, which waits on the disk. Parts have
    /// at least [`BATCH_PART_MIN`] lookups.
    pub batch_threads: usize,
}

/// Fewest lookups in one part of a batch split across threads
/// ([`Config::batch_threads`]): below this a thread costs more than it saves.
pub const BATCH_PART_MIN: usize = 256;

impl Config {
    /// The settings' ranges (the chunk size is checked where a file is
    /// created: an existing file keeps its own).
    fn check(&self) -> Result<()> {
        if self.retain_versions == 0 || self.retain_versions > 4096 {
            return Err(Error::InvalidConfig(format!(
                "retain_versions must be in 1..=4096, got {}",
                self.retain_versions
            )));
        }
        if self.io_depth == 0 || self.io_depth > 4096 {
            return Err(Error::InvalidConfig(format!(
                "io_depth must be in 1..=4096, got {}",
                self.io_depth
            )));
        }
        if self.batch_threads == 0 || self.batch_threads > 256 {
            return Err(Error::InvalidConfig(format!(
                "batch_threads must be in 1..=256, got {}",
                self.batch_threads
            )));
        }
        Ok(())
    }

    pub fn new(path: impl Into<PathBuf>) -> Config {
        Config {
            path: path.into(),
            cache_bytes: 256 << 20,
            io_depth: 32,
            io_backend: IoBackendChoice::Auto,
            retain_versions: 256,
            chunk_bytes: 16 << 20,
            embed_subtrees: true,
            batch_threads: 1,
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
    /// Of those, bytes of inner nodes (branches and extensions above the
    /// leaves), which have a tier of their own.
    pub cache_inner_bytes: u64,
    /// Capacity of the inner tier (it grows as the trie does, taking from
    /// the bottom tier).
    pub cache_inner_capacity: u64,
    /// Nodes in the inner tier and in the bottom tier.
    pub cache_inner_nodes: u64,
    pub cache_bottom_nodes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Device reads issued by lookups since open.
    pub device_reads: u64,
    /// Nodes copied forward by compaction since open.
    pub nodes_compacted: u64,
    /// Cached nodes dropped because recent versions no longer refer to
    /// them (replaced by a commit a few versions back), since open.
    pub stale_evicted: u64,
    /// Time commits spent reading ahead (the overlapped prefetch), in µs.
    pub commit_prefetch_us: u64,
    /// Time commits spent applying updates, compacting, hashing and
    /// writing nodes, in µs. A commit large enough to go in waves
    /// prefetches inside this span too (and counts that in both).
    pub commit_apply_us: u64,
    /// Time commits spent in fdatasync and the metadata write, in µs.
    pub commit_sync_us: u64,
    /// Device reads of commits' prefetches (part of `device_reads`).
    pub commit_prefetch_reads: u64,
    /// Device reads of commits while applying (compaction, mostly; part
    /// of `device_reads`).
    pub commit_apply_reads: u64,
}

/// An open database. Cheap to clone; share it across threads.
#[derive(Clone)]
pub struct TrieDb {
    pub(crate) inner: Arc<crate::store::Shared>,
}

/// A read-only view of one retained version.
#[derive(Clone)]
pub struct Snapshot {
    pin: Arc<Pin>,
    record: VersionRecord,
    map: Arc<ChunkMap>,
    /// The top of this version's account trie, shared by the clones.
    top: Arc<TopNodes>,
}

/// The nodes batch lookups walked through, kept for a later commit that
/// walks the same paths: a block's prefetch fills one
/// ([`Snapshot::accounts_ahead`], [`Snapshot::storage_batch_ahead`]) and
/// its commit takes it ([`TrieDb::commit_ahead`]), so the commit reads
/// nothing the prefetch read, however much the cache evicted meanwhile.
///
/// It pins every version it read from. A node is found by its location,
/// and a location holds the same node for as long as some version that
/// refers to it is retained: a commit may find here only nodes of its
/// parent's paths that an older pinned version shares, never a stale one.
/// It holds what its nodes weigh (about the block's bottom nodes, a few
/// KiB per account and slot read) until the commit drops it.
#[derive(Default)]
pub struct ReadAhead {
    nodes: Kept,
    pins: Vec<Arc<Pin>>,
}

impl ReadAhead {
    pub fn new() -> Self {
        Self::default()
    }

    /// Nodes kept.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Takes in what `other` kept: batches that run at the same time keep
    /// apart, so that none waits for another to finish, and join here.
    pub fn absorb(&mut self, other: ReadAhead) {
        if self.nodes.is_empty() {
            self.nodes = other.nodes;
        } else {
            self.nodes.extend(other.nodes);
        }
        for pin in other.pins {
            if !self.pins.iter().any(|held| Arc::ptr_eq(held, &pin)) {
                self.pins.push(pin);
            }
        }
    }

    /// Where a batch over `snapshot` keeps its nodes (pinning its version).
    fn keeping(&mut self, snapshot: &Snapshot) -> Keeping<'_> {
        if !self.pins.iter().any(|pin| Arc::ptr_eq(pin, &snapshot.pin)) {
            self.pins.push(Arc::clone(&snapshot.pin));
        }
        Keeping { nodes: &mut self.nodes, cache: true, nodes_only: false }
    }
}

/// Keeps a version's chunks from being reused while a snapshot reads them.
struct Pin {
    db: Arc<Shared>,
    version: u64,
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.db.unpin(self.version);
    }
}

/// How long `open` waits for a lock a just-killed process still holds.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Cache freshly written nodes this many nibbles below a root (when the
/// cache is filling up; see [`NodeCache::has_room`](crate::store::NodeCache::has_room)).
pub(crate) const FRESH_CACHE_DEPTH: usize = 4;
/// A commit keeps at most this share of the cache budget in fresh nodes
/// below [`FRESH_CACHE_DEPTH`] (see [`CommitCtx::fresh_budget`]): a load
/// of 250k accounts into a cache with room kept all of its nodes decoded
/// until it was durable, and peak RSS reached 946 MiB of a 256 MiB cache
/// (`wake bench triedb`, 10M accounts).
const FRESH_BUDGET_DIVISOR: u64 = 4;
/// Compaction keeps the chunks between its floor and the start of the
/// retained history (see [`compaction_due`]) within this multiple of the
/// live data (plus a few chunks of slack).
const COMPACTION_SPACE_FACTOR: u64 = 2;
const COMPACTION_SLACK_CHUNKS: u64 = 4;
/// Most chunks the compaction floor moves in one commit.
const COMPACTION_STEP_CHUNKS_MAX: u64 = 4;
/// Bytes of chunks the floor may pass per byte a commit writes for its own
/// updates. Above 2, the window shrinks while compaction runs even through
/// chunks two thirds live (each passed byte costs at most its live share
/// in copies); the average chunk in an over-full window is at most half
/// live.
const COMPACTION_PACE: u64 = 3;
/// Whether a commit's result becomes a durable version.
#[derive(Clone, Copy)]
enum Keep {
    Always,
    /// Only if the state root is this one.
    IfRoot(B256),
    /// Never: the root is computed and everything rolled back.
    Never,
}

/// A commit's nodes, staged: to be made durable, or rolled back with the
/// result to return.
enum Staged {
    Keep(Option<StoredRef>, Option<StoredRef>),
    Discard(Result<B256>),
}

/// Commits of at least this many accounts go in waves (see `commit`).
const WAVE_MIN_ACCOUNTS: usize = 1 << 16;

impl TrieDb {
    /// Opens (or creates) the database file named in `config`.
    pub fn open(config: Config) -> Result<TrieDb> {
        // Before the file is created: a bad setting leaves nothing behind.
        config.check()?;
        let storage = FileStorage::open(&config.path, true)
            .map_err(|e| Error::io("opening the database file", e))?;
        // A process killed a moment ago may hold the lock a little longer
        // (the kernel tears its io_uring down first): retry briefly.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match storage.lock_exclusive() {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() >= deadline {
                        return Err(Error::Locked(config.path.clone()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(Error::io("locking the database file", e)),
            }
        }
        Self::open_with_storage(config, Arc::new(storage))
    }

    /// Opens a database over any storage (tests use a fault-injecting one).
    pub fn open_with_storage(config: Config, storage: Arc<dyn Storage>) -> Result<TrieDb> {
        config.check()?;
        let (meta, slot) = match meta::load(&*storage)? {
            Some(found) => found,
            None => {
                if !meta::valid_chunk_bytes(config.chunk_bytes) {
                    return Err(Error::InvalidConfig(format!(
                        "chunk_bytes must be a multiple of 4096 in 1 MiB..=1 GiB, got {}",
                        config.chunk_bytes
                    )));
                }
                let meta = Meta::new(config.chunk_bytes);
                storage
                    .set_len(meta::DATA_OFFSET)
                    .map_err(|e| Error::io("creating the file", e))?;
                meta::store(&*storage, &meta, 0)?;
                (meta, 0)
            }
        };
        let engine = ReadEngine::new(Arc::clone(&storage), config.io_backend, config.io_depth)
            .map_err(|e| Error::io("setting up the read engine", e))?;
        let shared = Shared::new(storage, engine, config, meta, slot);
        {
            let mut writer = shared.writer.lock();
            let meta = writer.meta.clone();
            writer.buf.reset(&meta);
        }
        Ok(TrieDb { inner: Arc::new(shared) })
    }

    /// The newest committed version, if any.
    pub fn latest(&self) -> Option<VersionInfo> {
        self.inner.published.read().meta.latest().map(info)
    }

    /// All retained versions, oldest first.
    pub fn versions(&self) -> Vec<VersionInfo> {
        self.inner.published.read().meta.versions.iter().map(info).collect()
    }

    /// Applies one block's state diff as `version` and returns the new state
    /// root. Durable when it returns. On error the previous version is intact.
    pub fn commit(&self, version: u64, updates: &StateUpdates) -> Result<B256> {
        self.commit_keeping(version, updates, Keep::Always, Kept::default())
    }

    /// [`commit`](Self::commit), walking the nodes `ahead` holds instead of
    /// reading them again (see [`ReadAhead`]).
    pub fn commit_ahead(
        &self,
        version: u64,
        updates: &StateUpdates,
        ahead: ReadAhead,
    ) -> Result<B256> {
        let ReadAhead { nodes, pins } = ahead;
        // Another database's locations mean nothing here.
        let nodes = match pins.iter().all(|pin| Arc::ptr_eq(&pin.db, &self.inner)) {
            true => nodes,
            false => Kept::default(),
        };
        let root = self.commit_keeping(version, updates, Keep::Always, nodes);
        // The versions the nodes came from stay pinned until here.
        drop(pins);
        root
    }

    /// [`commit`](Self::commit), made durable only if the new state root is
    /// `expected` (a block header's): otherwise nothing is committed, the
    /// newest version stays as it was, and the error is
    /// [`Error::RootMismatch`] with the root the updates give.
    pub fn commit_expecting(
        &self,
        version: u64,
        updates: &StateUpdates,
        expected: B256,
    ) -> Result<B256> {
        self.commit_keeping(version, updates, Keep::IfRoot(expected), Kept::default())
    }

    /// The state root the newest version would have with `updates` applied.
    /// Nothing is committed (the nodes it writes are past the durable end
    /// and are overwritten by the next commit) and nothing is synced.
    pub fn root_of(&self, updates: &StateUpdates) -> Result<B256> {
        let next = self.latest().map_or(Some(1), |latest| latest.version.checked_add(1));
        let version =
            next.ok_or(Error::VersionNotIncreasing { new: u64::MAX, latest: u64::MAX })?;
        self.commit_keeping(version, updates, Keep::Never, Kept::default())
    }

    /// `ahead`: nodes read for this commit already (see [`ReadAhead`]).
    fn commit_keeping(
        &self,
        version: u64,
        updates: &StateUpdates,
        keep: Keep,
        ahead: Kept,
    ) -> Result<B256> {
        let accounts = sorted_hashed(
            updates
                .accounts
                .iter()
                .map(|(address, update)| (keccak256(address).0, AccountOp(update))),
        );
        let codes = sorted_ops(
            updates.codes.iter().map(|code| (keccak256(code).0, RawOp(Some(&code[..])))),
        );
        // Pinned, so that a concurrent commit cannot free what the
        // prefetch walks.
        let pinned = match self.latest().map(|latest| self.snapshot(latest.version)) {
            None | Some(Err(Error::UnknownVersion(_))) => None,
            Some(Ok(snapshot)) => Some(snapshot),
            Some(Err(err)) => return Err(err),
        };
        if accounts.len() < WAVE_MIN_ACCOUNTS {
            let accounts = to_nibble_ops(accounts);
            let prefetched = self.prefetch(pinned.as_ref(), &accounts, ahead)?;
            drop(pinned);
            return self.commit_with(version, prefetched, keep, |ctx, base| {
                let account_root = ctx.update_root(base.and_then(|b| b.account_root), &accounts)?;
                let code_root = ctx.update_root(base.and_then(|b| b.code_root), &codes)?;
                Ok((account_root, code_root))
            });
        }
        // A large commit (a bulk load, a genesis) goes in waves, one per
        // first byte of the hashed address: each prefetches, updates,
        // compacts and writes its own subtree, so about 1/256 of the
        // commit's nodes is in memory at a time. The cost is one rewrite of
        // a top-level node per wave.
        self.commit_with(version, Kept::default(), keep, |ctx, base| {
            let waves = accounts
                .chunk_by(|a, b| a.0[0] == b.0[0])
                .map(|wave| to_nibble_ops(wave.iter().copied()));
            let account_root =
                ctx.update_root_in_waves(base.and_then(|b| b.account_root), waves, |ctx, wave| {
                    ctx.prefetched = Kept::default();
                    ctx.prefetched = self.prefetch(pinned.as_ref(), wave, Kept::default())?;
                    Ok(())
                })?;
            let code_root = ctx.update_root(base.and_then(|b| b.code_root), &codes)?;
            Ok((account_root, code_root))
        })
    }

    /// Raw mode (test vectors, researchers): a plain MPT from unhashed byte
    /// keys to byte values; `None` deletes. Do not mix with [`TrieDb::commit`]
    /// in one database.
    pub fn commit_raw(&self, version: u64, updates: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<B256> {
        let mut map = std::collections::BTreeMap::new();
        for (key, value) in updates {
            map.insert(nibbles(key), RawOp(value.as_deref()));
        }
        let ops: Vec<_> = map.into_iter().collect();
        self.commit_with(version, Kept::default(), Keep::Always, |ctx, base| {
            let root = ctx.update_root(base.and_then(|b| b.account_root), &ops)?;
            Ok((root, base.and_then(|b| b.code_root)))
        })
    }

    /// Reads every node a commit will walk through, with the reads
    /// overlapped, so the commit itself finds them in the cache. Nodes
    /// in `kept` already are not read.
    fn prefetch(
        &self,
        snapshot: Option<&Snapshot>,
        accounts: &[(Vec<u8>, AccountOp<'_>)],
        mut kept: Kept,
    ) -> Result<Kept> {
        let started = std::time::Instant::now();
        let reads_before = crate::store::thread_device_reads();
        let shared = &*self.inner;
        let Some(snapshot) = snapshot else { return Ok(kept) };
        let mut lookups = Vec::with_capacity(accounts.len());
        for (key, AccountOp(update)) in accounts {
            lookups.push((key.clone(), Target::Value));
            if let AccountUpdate::Set { storage, wipe_storage: false, .. } = update {
                for slot in storage.keys() {
                    let slot_key = nibbles(keccak256(slot).as_slice());
                    lookups.push((key.clone(), Target::Slot { slot_key }));
                }
            }
        }
        let root = snapshot.record.account_root;
        let depth = shared.config.io_depth;
        let keeping = Keeping { nodes: &mut kept, cache: false, nodes_only: true };
        read::get_many(
            shared,
            &snapshot.map,
            Some(&snapshot.top),
            root,
            lookups,
            depth,
            Some(keeping),
        )?;
        add_us(&shared.counters.commit_prefetch_us, started);
        let reads = crate::store::thread_device_reads() - reads_before;
        shared.counters.commit_prefetch_reads.fetch_add(reads, Ordering::Relaxed);
        Ok(kept)
    }

    fn commit_with(
        &self,
        version: u64,
        prefetched: Kept,
        keep: Keep,
        apply: impl FnOnce(
            &mut CommitCtx<'_>,
            Option<&VersionRecord>,
        ) -> Result<(Option<StoredRef>, Option<StoredRef>)>,
    ) -> Result<B256> {
        let shared = &*self.inner;
        if shared.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let mut writer = shared.writer.lock();
        let durable = writer.meta.clone();
        let free_before = writer.free.clone();
        if let Some(latest) = durable.latest()
            && version <= latest.version
        {
            return Err(Error::VersionNotIncreasing { new: version, latest: latest.version });
        }
        let map = Arc::clone(&shared.published.read().map);
        let compact_below = match keep {
            // Every node of the newest version is at or above its floor
            // already: a root that is not kept moves nothing.
            Keep::Never => durable.compact_floor.max(durable.chunk_lo),
            Keep::Always | Keep::IfRoot(_) => {
                compaction_floor(&durable, writer.buf.compaction_credit)
            }
        };
        let base = durable.latest().copied();
        let durable_head = match durable.map.is_empty() {
            true => (0, 0),
            false => (durable.chunk_hi() - 1, durable.head_offset),
        };
        let room = shared.cache.has_room();
        let mut ctx = CommitCtx {
            shared,
            map,
            durable_head,
            writer: &mut writer,
            compact_below,
            added_bytes: 0,
            removed_bytes: 0,
            replaced: Vec::new(),
            nodes_compacted: 0,
            moved_bytes: 0,
            fresh: Vec::new(),
            // With the cache less than half full (a state that fits in
            // it), keeping every written node, decoded, costs nothing and
            // saves the next block reading (or decoding) them again;
            // otherwise only the upper levels.
            fresh_depth: if room { usize::MAX } else { FRESH_CACHE_DEPTH },
            fresh_decoded: room,
            fresh_budget: shared.cache.budget() / FRESH_BUDGET_DIVISOR,
            fresh_bytes: 0,
            segments: HashMap::default(),
            spare_segments: Vec::new(),
            scratch: Vec::new(),
            rlp_scratch: Vec::new(),
            prefetched,
        };
        let started = std::time::Instant::now();
        let reads_before = crate::store::thread_device_reads();
        let staged = apply(&mut ctx, base.as_ref()).and_then(|(account_root, code_root)| {
            let computed = root_hash(&account_root);
            match keep {
                Keep::Never => return Ok(Staged::Discard(Ok(computed))),
                Keep::IfRoot(expected) if expected != computed => {
                    let mismatch = Error::RootMismatch { version, expected, computed };
                    return Ok(Staged::Discard(Err(mismatch)));
                }
                Keep::Always | Keep::IfRoot(_) => {}
            }
            ctx.writer.finish(&*shared.storage)?;
            Ok(Staged::Keep(account_root, code_root))
        });
        let CommitCtx {
            added_bytes,
            removed_bytes,
            replaced,
            nodes_compacted,
            moved_bytes,
            fresh,
            ..
        } = ctx;
        add_us(&shared.counters.commit_apply_us, started);
        let reads = crate::store::thread_device_reads() - reads_before;
        shared.counters.commit_apply_reads.fetch_add(reads, Ordering::Relaxed);
        let (account_root, code_root) = match staged {
            Ok(Staged::Keep(account_root, code_root)) => (account_root, code_root),
            Ok(Staged::Discard(result)) => {
                roll_back(&mut writer, durable, free_before);
                return result;
            }
            Err(err) => {
                roll_back(&mut writer, durable, free_before);
                return Err(err);
            }
        };
        let live_before = base.map_or(0, |b| b.live_bytes);
        let chunk_hi = writer.meta.chunk_hi();
        let record = VersionRecord {
            version,
            state_root: root_hash(&account_root),
            min_chunk: account_root
                .iter()
                .chain(code_root.iter())
                .map(|r| r.min_chunk)
                .min()
                .unwrap_or(chunk_hi),
            live_bytes: (live_before + added_bytes).saturating_sub(removed_bytes),
            account_root,
            code_root,
        };
        let mut next = writer.meta.clone();
        next.seq += 1;
        next.compact_floor = compact_below;
        next.versions.push(record);
        let excess = next.versions.len().saturating_sub(shared.config.retain_versions as usize);
        next.versions.drain(..excess);
        let slot = 1 - writer.meta_slot;
        let started = std::time::Instant::now();
        let durable_result = shared
            .storage
            .sync_data()
            .map_err(|e| Error::io("syncing nodes", e))
            .and_then(|()| meta::store(&*shared.storage, &next, slot));
        if let Err(err) = durable_result {
            // The metadata may or may not have reached the disk: only a
            // reopen can tell. Refuse further commits until then.
            shared.poisoned.store(true, Ordering::Release);
            return Err(err);
        }
        add_us(&shared.counters.commit_sync_us, started);
        writer.meta_slot = slot;
        let own_bytes = writer.buf.bytes_written.saturating_sub(moved_bytes);
        writer.buf.compaction_credit =
            compaction_credit(&durable, &next, writer.buf.compaction_credit, own_bytes);
        writer.buf.bytes_written = 0;
        for (loc, node) in fresh {
            match node {
                crate::commit::Fresh::Node(node) => shared.cache.insert_node(loc, node),
                crate::commit::Fresh::Record(record) => shared.cache.insert_bottom(loc, record),
            }
        }
        shared.counters.nodes_compacted.fetch_add(nodes_compacted, Ordering::Relaxed);
        // Publish, and free the chunks no retained or pinned version uses,
        // under the lock that snapshots pin through.
        let mut published = shared.published.write();
        let pins = shared.pins.lock();
        let floor = next
            .versions
            .iter()
            .map(|v| v.min_chunk)
            .chain(pins.values().map(|&(_, min_chunk)| min_chunk))
            .min()
            .unwrap_or(u32::MAX)
            .min(next.chunk_hi().saturating_sub(1));
        drop(pins);
        let mut working = next.clone();
        while working.chunk_lo < floor && !working.map.is_empty() {
            let phys = working.map.remove(0);
            working.chunk_lo += 1;
            writer.free.push(phys);
        }
        published.map = Arc::new(ChunkMap::from_meta(&working));
        published.meta = next;
        drop(published);
        writer.meta = working;
        writer.stale.push_back(replaced);
        if writer.stale.len() > crate::store::STALE_AFTER_VERSIONS
            && let Some(stale) = writer.stale.pop_front()
        {
            let evicted = shared.cache.evict(&stale);
            shared.counters.stale_evicted.fetch_add(evicted, Ordering::Relaxed);
        }
        tracing::trace!(
            version,
            added_bytes,
            removed_bytes,
            moved_bytes,
            nodes_compacted,
            "committed"
        );
        Ok(record.state_root)
    }

    /// A view of a retained version.
    pub fn snapshot(&self, version: u64) -> Result<Snapshot> {
        let (record, map) = self.inner.pin(version).ok_or(Error::UnknownVersion(version))?;
        let pin = Arc::new(Pin { db: Arc::clone(&self.inner), version });
        Ok(Snapshot { pin, record, map, top: Arc::new(TopNodes::new()) })
    }

    /// Sizes and counters.
    pub fn stats(&self) -> Stats {
        let shared = &*self.inner;
        let published = shared.published.read();
        let meta = &published.meta;
        Stats {
            file_bytes: shared.storage.len().unwrap_or(0),
            live_bytes: meta.latest().map_or(0, |v| v.live_bytes),
            chunks_in_use: published.map.phys.len() as u64,
            cache_bytes: shared.cache.weight(),
            cache_inner_bytes: shared.cache.inner_weight(),
            cache_inner_capacity: shared.cache.inner_capacity(),
            cache_inner_nodes: shared.cache.inner_len(),
            cache_bottom_nodes: shared.cache.bottom_len(),
            cache_hits: shared.counters.cache_hits.load(Ordering::Relaxed),
            cache_misses: shared.counters.cache_misses.load(Ordering::Relaxed),
            device_reads: shared.counters.device_reads.load(Ordering::Relaxed),
            nodes_compacted: shared.counters.nodes_compacted.load(Ordering::Relaxed),
            stale_evicted: shared.counters.stale_evicted.load(Ordering::Relaxed),
            commit_prefetch_us: shared.counters.commit_prefetch_us.load(Ordering::Relaxed),
            commit_apply_us: shared.counters.commit_apply_us.load(Ordering::Relaxed),
            commit_sync_us: shared.counters.commit_sync_us.load(Ordering::Relaxed),
            commit_prefetch_reads: shared.counters.commit_prefetch_reads.load(Ordering::Relaxed),
            commit_apply_reads: shared.counters.commit_apply_reads.load(Ordering::Relaxed),
        }
    }

    /// The read backend in use.
    pub fn io_backend(&self) -> IoBackend {
        self.inner.engine.backend()
    }
}

/// Where compaction's floor goes for the next commit: forward while the
/// chunks between floor and retained history hold much more than the live
/// data (see [`compaction_due`]), by
/// whole chunks as the `credit` (see [`compaction_credit`]) pays for them,
/// so compaction's work stays proportional to what commits write: many
/// small commits earn one chunk's move together instead of each moving a
/// chunk (and copying its live nodes) alone.
fn compaction_floor(meta: &Meta, credit: u64) -> u32 {
    let floor = meta.compact_floor.max(meta.chunk_lo);
    let head = meta.chunk_hi();
    if !compaction_due(meta) {
        return floor;
    }
    let step = (credit / meta.chunk_bytes).min(COMPACTION_STEP_CHUNKS_MAX);
    let step = u32::try_from(step).unwrap_or(u32::MAX);
    floor.saturating_add(step).min(head - 1)
}

/// Whether the chunks between compaction's floor and the start of the
/// retained history hold more than [`COMPACTION_SPACE_FACTOR`] times the
/// live data (plus slack).
///
/// The retained history starts where the oldest retained version's root
/// was written (a commit writes its root last, so that is where the head
/// stood). Chunks after it are pinned by the retained versions whatever
/// compaction does, and their nodes are young: most are still live, so
/// copying them forward would cost nearly a byte per byte passed and free
/// nothing until those versions expire. Counting them in the window made
/// compaction run without pause wherever the history outweighs twice the
/// live data (256 versions of a 1M-account devnet: ~4 GiB of history
/// against ~250 MiB live), copying nodes a few dozen blocks old, about 40 %
/// of them live. Behind the history, nodes are `retain_versions` blocks
/// older and mostly replaced. The file then holds about twice the live data
/// plus the history twice over (once in the window, once pinned below the
/// floor), where moved nodes are a much smaller part of that history.
fn compaction_due(meta: &Meta) -> bool {
    let floor = meta.compact_floor.max(meta.chunk_lo);
    let head = meta.chunk_hi();
    let history_start = meta
        .versions
        .first()
        .and_then(|oldest| oldest.account_root)
        .map_or(head, |root| root.loc.chunk)
        .min(head);
    if history_start <= floor + 1 {
        return false;
    }
    let live = meta.latest().map_or(0, |v| v.live_bytes);
    let window = u64::from(history_start - floor) * meta.chunk_bytes;
    window > COMPACTION_SPACE_FACTOR * live + COMPACTION_SLACK_CHUNKS * meta.chunk_bytes
}

/// The compaction credit after a durable commit from `before` to `after`
/// that wrote `own_bytes` for its updates (moved nodes excluded, so
/// compaction never pays for itself): earns [`COMPACTION_PACE`] bytes per
/// byte, spends a chunk per chunk the floor moved. Bounded, so a huge
/// commit (a bulk load) is not followed by one that copies hundreds of
/// megabytes at once; while no compaction is due it holds at most one
/// chunk, so the first moves do not come in a burst either.
fn compaction_credit(before: &Meta, after: &Meta, credit: u64, own_bytes: u64) -> u64 {
    let floor_before = before.compact_floor.max(before.chunk_lo);
    let moved = u64::from(after.compact_floor.saturating_sub(floor_before)) * before.chunk_bytes;
    let credit = credit.saturating_sub(moved).saturating_add(COMPACTION_PACE * own_bytes);
    let cap = if compaction_due(after) { COMPACTION_STEP_CHUNKS_MAX } else { 1 };
    credit.min(cap * after.chunk_bytes)
}

/// Forgets a commit that did not become durable: nothing durable refers to
/// what it wrote, and the next commit writes over it.
fn roll_back(writer: &mut WriterState, durable: Meta, free: Vec<u32>) {
    writer.buf.reset(&durable);
    writer.meta = durable;
    writer.free = free;
}

fn add_us(counter: &std::sync::atomic::AtomicU64, since: std::time::Instant) {
    counter.fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
}

fn info(record: &VersionRecord) -> VersionInfo {
    VersionInfo { version: record.version, state_root: record.state_root }
}

/// The lookup of `slot` (unhashed) in the storage of `address`.
fn slot_lookup(address: &Address, slot: &B256) -> (Vec<u8>, Target) {
    let slot_key = nibbles(keccak256(slot).as_slice());
    (account_key(address), Target::Slot { slot_key })
}

fn account_from(value: Option<Value>) -> Result<Option<Account>> {
    match value {
        None => Ok(None),
        Some(Value::Account(account)) => Ok(Some(to_account(&account))),
        Some(Value::Raw(_)) => Err(Error::InvalidValue("raw value in the account trie")),
    }
}

fn to_account(account: &AccountValue) -> Account {
    Account {
        nonce: account.nonce,
        balance: account.balance,
        code_hash: account.code_hash,
        storage_root: account.storage_root(),
    }
}

fn slot_from(value: Option<Value>) -> Result<U256> {
    match value {
        None => Ok(U256::ZERO),
        Some(Value::Raw(bytes)) => alloy_rlp::decode_exact::<U256>(&bytes[..])
            .map_err(|_| Error::InvalidValue("storage value is not an RLP integer")),
        Some(Value::Account(_)) => Err(Error::InvalidValue("account in a storage trie")),
    }
}

fn account_key(address: &Address) -> Vec<u8> {
    nibbles(keccak256(address).as_slice())
}

impl Snapshot {
    pub fn version(&self) -> u64 {
        self.record.version
    }

    pub fn state_root(&self) -> B256 {
        self.record.state_root
    }

    fn shared(&self) -> &Shared {
        &self.pin.db
    }

    /// One lookup from the account root.
    fn get(&self, key: Vec<u8>, target: Target) -> Result<Option<Value>> {
        read::get(self.shared(), &self.map, Some(&self.top), self.record.account_root, key, target)
    }

    /// One account, read synchronously (pread on a cache miss).
    pub fn account(&self, address: &Address) -> Result<Option<Account>> {
        account_from(self.get(account_key(address), Target::Value)?)
    }

    /// One storage slot (zero when absent).
    pub fn storage(&self, address: &Address, slot: &B256) -> Result<U256> {
        let target = Target::Slot { slot_key: nibbles(keccak256(slot).as_slice()) };
        slot_from(self.get(account_key(address), target)?)
    }

    /// The account if every node on its path is in the cache (no I/O);
    /// `None` otherwise. For a caller that has other work while a read
    /// would wait: it notes the account for a batch instead. With `ahead`,
    /// the nodes walked are kept for the commit, as a batch would keep them.
    pub fn account_if_cached(
        &self,
        address: &Address,
        ahead: Option<&mut ReadAhead>,
    ) -> Result<Option<Option<Account>>> {
        let (root, key) = (self.record.account_root, account_key(address));
        let keeping = ahead.map(|ahead| ahead.keeping(self));
        let top = Some(&*self.top);
        match read::get_cached(self.shared(), &self.map, top, root, key, Target::Value, keeping)? {
            Some(value) => account_from(value).map(Some),
            None => Ok(None),
        }
    }

    /// The slot if every node on its path is in the cache (no I/O); see
    /// [`account_if_cached`](Self::account_if_cached).
    pub fn storage_if_cached(
        &self,
        address: &Address,
        slot: &B256,
        ahead: Option<&mut ReadAhead>,
    ) -> Result<Option<U256>> {
        let target = Target::Slot { slot_key: nibbles(keccak256(slot).as_slice()) };
        let (root, key) = (self.record.account_root, account_key(address));
        let keeping = ahead.map(|ahead| ahead.keeping(self));
        match read::get_cached(
            self.shared(),
            &self.map,
            Some(&self.top),
            root,
            key,
            target,
            keeping,
        )? {
            Some(value) => slot_from(value).map(Some),
            None => Ok(None),
        }
    }

    /// Contract code by hash.
    pub fn code(&self, code_hash: &B256) -> Result<Option<Bytes>> {
        let (shared, key) = (self.shared(), nibbles(code_hash.as_slice()));
        match read::get(shared, &self.map, None, self.record.code_root, key, Target::Value)? {
            None => Ok(None),
            Some(Value::Raw(code)) => Ok(Some(Bytes::copy_from_slice(&code))),
            Some(Value::Account(_)) => Err(Error::InvalidValue("account in the code trie")),
        }
    }

    /// Many accounts at once, with up to the configured depth of reads in flight.
    pub fn accounts(&self, addresses: &[Address]) -> Result<Vec<Option<Account>>> {
        self.accounts_with_depth(addresses, self.shared().config.io_depth)
    }

    /// [`accounts`](Self::accounts), keeping the nodes walked in `ahead`
    /// for the commit that will update these accounts.
    pub fn accounts_ahead(
        &self,
        addresses: &[Address],
        ahead: &mut ReadAhead,
    ) -> Result<Vec<Option<Account>>> {
        let depth = self.shared().config.io_depth;
        self.accounts_keeping(addresses, depth, Some(ahead.keeping(self)))
    }

    /// [`storage_batch`](Self::storage_batch), keeping the nodes walked in
    /// `ahead` for the commit that will update these slots.
    pub fn storage_batch_ahead(
        &self,
        keys: &[(Address, B256)],
        ahead: &mut ReadAhead,
    ) -> Result<Vec<U256>> {
        self.storage_keeping(keys, Some(ahead.keeping(self)))
    }

    /// Like [`Snapshot::accounts`] with at most `depth` reads in flight.
    pub fn accounts_with_depth(
        &self,
        addresses: &[Address],
        depth: usize,
    ) -> Result<Vec<Option<Account>>> {
        self.accounts_keeping(addresses, depth, None)
    }

    /// Account lookups pulled from `addresses` as read slots free up, with
    /// `depth` reads in flight until the addresses run out. `found(i,
    /// account)` gets the `i`-th address's account as soon as it is known,
    /// in no set order.
    ///
    /// For a long or open-ended run of keys (a scan, a prefetcher, the
    /// benchmark): a batch's queue drains at its end, and its slowest read
    /// holds the batch, while a stream keeps the device at `depth`
    /// throughout. A stream runs on one ring ([`Config::batch_threads`]
    /// does not apply).
    pub fn accounts_streamed(
        &self,
        addresses: impl IntoIterator<Item = Address>,
        depth: usize,
        mut found: impl FnMut(usize, Option<Account>),
    ) -> Result<()> {
        let (shared, map, root) = (self.shared(), &*self.map, self.record.account_root);
        let lookups = addresses.into_iter().map(|a| (account_key(&a), Target::Value));
        let mut invalid = None;
        read::get_stream(shared, map, Some(&*self.top), root, lookups, depth, None, |i, value| {
            match account_from(value) {
                Ok(account) => found(i, account),
                Err(err) => {
                    invalid.get_or_insert(err);
                }
            }
        })?;
        invalid.map_or(Ok(()), Err)
    }

    /// Many storage slots at once, reads overlapped.
    pub fn storage_batch(&self, keys: &[(Address, B256)]) -> Result<Vec<U256>> {
        self.storage_keeping(keys, None)
    }

    /// Accounts and slots in one batch: their lookups go to the device as
    /// one stream, so neither waits for the other's slowest read (two
    /// batches would drain the queue in between). In order, as
    /// [`accounts`](Self::accounts) and [`storage_batch`](Self::storage_batch)
    /// give them.
    pub fn read_batch(
        &self,
        addresses: &[Address],
        slots: &[(Address, B256)],
    ) -> Result<(Vec<Option<Account>>, Vec<U256>)> {
        self.read_batch_keeping(addresses, slots, None)
    }

    /// [`read_batch`](Self::read_batch), keeping the nodes walked in
    /// `ahead` for the commit that will update these accounts and slots.
    pub fn read_batch_ahead(
        &self,
        addresses: &[Address],
        slots: &[(Address, B256)],
        ahead: &mut ReadAhead,
    ) -> Result<(Vec<Option<Account>>, Vec<U256>)> {
        self.read_batch_keeping(addresses, slots, Some(ahead.keeping(self)))
    }

    fn read_batch_keeping(
        &self,
        addresses: &[Address],
        slots: &[(Address, B256)],
        keeping: Option<Keeping<'_>>,
    ) -> Result<(Vec<Option<Account>>, Vec<U256>)> {
        let lookups = addresses
            .iter()
            .map(|a| (account_key(a), Target::Value))
            .chain(slots.iter().map(|(address, slot)| slot_lookup(address, slot)))
            .collect();
        let depth = self.shared().config.io_depth;
        let mut values = self.lookup_batch(lookups, depth, keeping)?;
        let slot_values = values.split_off(addresses.len());
        let accounts = values.into_iter().map(account_from).collect::<Result<_>>()?;
        let slots = slot_values.into_iter().map(slot_from).collect::<Result<_>>()?;
        Ok((accounts, slots))
    }

    /// A batch of account lookups, keeping the nodes walked in `keeping`.
    fn accounts_keeping(
        &self,
        addresses: &[Address],
        depth: usize,
        keeping: Option<Keeping<'_>>,
    ) -> Result<Vec<Option<Account>>> {
        let lookups = addresses.iter().map(|a| (account_key(a), Target::Value)).collect();
        self.lookup_batch(lookups, depth, keeping)?.into_iter().map(account_from).collect()
    }

    /// [`read::get_many`] from the account root, split across up to
    /// [`Config::batch_threads`] threads when the batch is large enough.
    /// Each part keeps what it walks in a map of its own; the maps go into
    /// `keeping` at the end.
    fn lookup_batch(
        &self,
        mut lookups: Vec<(Vec<u8>, Target)>,
        depth: usize,
        mut keeping: Option<Keeping<'_>>,
    ) -> Result<Vec<Option<Value>>> {
        let (shared, map, root) = (self.shared(), &*self.map, self.record.account_root);
        let top = Some(&*self.top);
        // One read in flight gains nothing from the ring, and costs more
        // than a pread: on the 2-core VM of benches/RESULTS.md a random
        // 4 KiB O_DIRECT read takes 58 µs through io_uring at depth 1
        // against 49 µs through pread (the completion's wake-up).
        if keeping.is_none() && (depth <= 1 || lookups.len() == 1) {
            return lookups
                .into_iter()
                .map(|(key, target)| read::get(shared, map, top, root, key, target))
                .collect();
        }
        let threads = shared.config.batch_threads.min(lookups.len() / BATCH_PART_MIN);
        if threads <= 1 {
            return read::get_many(shared, map, top, root, lookups, depth, keeping);
        }
        let total = lookups.len();
        let part_len = total.div_ceil(threads);
        let mut parts = Vec::with_capacity(threads);
        while lookups.len() > part_len {
            let rest = lookups.split_off(part_len);
            parts.push(std::mem::replace(&mut lookups, rest));
        }
        parts.push(lookups);
        let cache = keeping.as_ref().map(|k| k.cache);
        let done: Vec<Result<(Vec<Option<Value>>, Kept)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    scope.spawn(move || {
                        let mut kept = Kept::default();
                        let keeping = cache.map(|cache| Keeping {
                            nodes: &mut kept,
                            cache,
                            nodes_only: false,
                        });
                        let values = read::get_many(shared, map, top, root, part, depth, keeping)?;
                        Ok((values, kept))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut values = Vec::with_capacity(total);
        for part in done {
            let (part, kept) = part?;
            values.extend(part);
            if let Some(keeping) = keeping.as_mut() {
                keeping.nodes.extend(kept);
            }
        }
        Ok(values)
    }

    /// A batch of slot lookups, keeping the nodes walked in `keeping`.
    fn storage_keeping(
        &self,
        keys: &[(Address, B256)],
        keeping: Option<Keeping<'_>>,
    ) -> Result<Vec<U256>> {
        let lookups = keys.iter().map(|(address, slot)| slot_lookup(address, slot)).collect();
        let depth = self.shared().config.io_depth;
        self.lookup_batch(lookups, depth, keeping)?.into_iter().map(slot_from).collect()
    }

    /// Raw mode read.
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.get(nibbles(key), Target::Value)? {
            None => Ok(None),
            Some(Value::Raw(bytes)) => Ok(Some(bytes.to_vec())),
            Some(Value::Account(_)) => Err(Error::InvalidValue("account in a raw trie")),
        }
    }

    /// EIP-1186 proof of `address` and `slots`.
    pub fn proof(&self, address: &Address, slots: &[B256]) -> Result<AccountProof> {
        let shared = self.shared();
        let (account_proof, found) =
            read::proof(shared, &self.map, self.record.account_root, &account_key(address))?;
        let storage_root = match &found {
            Some(Value::Account(account)) => account.storage,
            _ => None,
        };
        let account = account_from(found)?;
        let mut storage_proofs = Vec::with_capacity(slots.len());
        for slot in slots {
            let key = nibbles(keccak256(slot).as_slice());
            let (proof, value) = read::proof(shared, &self.map, storage_root, &key)?;
            storage_proofs.push(StorageProof { key: *slot, value: slot_from(value)?, proof });
        }
        Ok(AccountProof { address: *address, account, account_proof, storage_proofs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AccountInfo;
    use alloy_trie::{HashBuilder, Nibbles, TrieAccount};
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::collections::BTreeMap;

    type Model = BTreeMap<Address, (AccountInfo, BTreeMap<B256, U256>)>;

    fn storage_root(slots: &BTreeMap<B256, U256>) -> B256 {
        alloy_trie::root::storage_root_unhashed(
            slots.iter().filter(|(_, v)| !v.is_zero()).map(|(k, v)| (*k, *v)),
        )
    }

    fn oracle(model: &Model) -> B256 {
        let mut leaves: Vec<(B256, Vec<u8>)> = model
            .iter()
            .map(|(address, (info, slots))| {
                let account = TrieAccount {
                    nonce: info.nonce,
                    balance: info.balance,
                    storage_root: storage_root(slots),
                    code_hash: info.code_hash,
                };
                (keccak256(address), alloy_rlp::encode(account))
            })
            .collect();
        leaves.sort_by_key(|leaf| leaf.0);
        let mut hb = HashBuilder::default();
        for (key, value) in &leaves {
            hb.add_leaf(Nibbles::unpack(key), value);
        }
        hb.root()
    }

    fn test_dir() -> tempfile::TempDir {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
        std::fs::create_dir_all(&base).unwrap();
        tempfile::tempdir_in(base).unwrap()
    }

    /// A fresh database with a `cache_bytes` cache, and `n` addresses
    /// spread over the key space.
    fn db_and_addresses(cache_bytes: usize, n: u64) -> (tempfile::TempDir, TrieDb, Vec<Address>) {
        let dir = test_dir();
        let mut config = Config::new(dir.path().join("db"));
        config.cache_bytes = cache_bytes;
        let db = TrieDb::open(config).unwrap();
        let addresses = (0..n).map(|i| Address::from_word(keccak256(i.to_be_bytes()))).collect();
        (dir, db, addresses)
    }

    /// Every account of `addresses` set to nonce `version`, balance
    /// `balance(i)` and storage slot 1 holding `version`.
    fn every_account_set(
        addresses: &[Address],
        version: u64,
        balance: impl Fn(usize) -> U256,
    ) -> StateUpdates {
        let mut updates = StateUpdates::default();
        for (i, address) in addresses.iter().enumerate() {
            let info = AccountInfo { nonce: version, balance: balance(i), ..Default::default() };
            let storage = BTreeMap::from([(B256::with_last_byte(1), U256::from(version))]);
            updates
                .accounts
                .insert(*address, AccountUpdate::Set { info, wipe_storage: false, storage });
        }
        updates
    }

    /// A stream of lookups gives each index the account a single lookup
    /// gives, once each, at every depth: present and absent addresses,
    /// repeats (walks that share a read in flight), through a cache far
    /// smaller than the trie so that the nodes come from the device (each
    /// stream on a fresh snapshot, with no top nodes held). An empty stream
    /// gives nothing, and an empty trie nothing but `None`.
    #[test]
    fn streamed_lookups_read_what_single_lookups_read() {
        let (_dir, db, mut addresses) = db_and_addresses(64 << 10, 3000);
        db.commit(1, &every_account_set(&addresses, 1, |i| U256::from(i))).unwrap();
        let snapshot = db.snapshot(1).unwrap();
        let absent =
            (0..300u64).map(|i| Address::from_word(keccak256(((i + 1) << 40).to_be_bytes())));
        addresses.extend(absent);
        addresses.extend_from_within(..500);
        let want: Vec<Option<Account>> =
            addresses.iter().map(|a| snapshot.account(a).unwrap()).collect();
        assert_eq!(want.iter().filter(|a| a.is_some()).count(), 3500);
        for depth in [1, 4, 32, 32] {
            let mut got = vec![None; addresses.len()];
            let mut seen = vec![false; addresses.len()];
            let reads = db.stats().device_reads;
            // A fresh snapshot each time: nothing held at the top.
            db.snapshot(1)
                .unwrap()
                .accounts_streamed(addresses.iter().copied(), depth, |i, account| {
                    assert!(!std::mem::replace(&mut seen[i], true), "index {i} twice");
                    got[i] = account;
                })
                .unwrap();
            assert!(seen.iter().all(|s| *s), "depth {depth}: an index never answered");
            assert_eq!(got, want, "depth {depth}");
            assert!(db.stats().device_reads > reads + 10, "depth {depth}: no reads");
        }
        let mut calls = 0;
        snapshot.accounts_streamed(std::iter::empty(), 32, |_, _| calls += 1).unwrap();
        assert_eq!(calls, 0);
        let (_dir, empty, _) = db_and_addresses(64 << 10, 0);
        empty.commit(1, &StateUpdates::default()).unwrap();
        let mut nones = 0;
        let stream = addresses.iter().copied();
        empty
            .snapshot(1)
            .unwrap()
            .accounts_streamed(stream, 8, |_, a| nones += usize::from(a.is_none()))
            .unwrap();
        assert_eq!(nones, addresses.len());
    }

    /// Accounts and slots read in one batch are what the single lookups
    /// give, in order: present and absent accounts, set, unset and absent
    /// accounts' slots, through a cache far smaller than the state; the
    /// read-ahead form keeps the nodes it walked for the commit.
    #[test]
    fn one_batch_reads_accounts_and_slots() {
        let (_dir, db, mut addresses) = db_and_addresses(64 << 10, 2000);
        db.commit(1, &every_account_set(&addresses, 1, |i| U256::from(i + 7))).unwrap();
        addresses.extend(
            (0..200u64).map(|i| Address::from_word(keccak256(((i + 1) << 40).to_be_bytes()))),
        );
        let slots: Vec<(Address, B256)> = addresses
            .iter()
            .step_by(3)
            .flat_map(|a| [(*a, B256::with_last_byte(1)), (*a, B256::with_last_byte(2))])
            .collect();
        let snapshot = db.snapshot(1).unwrap();
        let want_accounts: Vec<_> =
            addresses.iter().map(|a| snapshot.account(a).unwrap()).collect();
        let want_slots: Vec<_> =
            slots.iter().map(|(a, s)| snapshot.storage(a, s).unwrap()).collect();
        assert_eq!(want_accounts.iter().flatten().count(), 2000);
        assert!(want_slots.iter().any(|v| *v == U256::from(1)) && want_slots.contains(&U256::ZERO));
        let fresh = db.snapshot(1).unwrap();
        assert_eq!(
            fresh.read_batch(&addresses, &slots).unwrap(),
            (want_accounts.clone(), want_slots.clone())
        );
        let mut ahead = ReadAhead::new();
        let read =
            db.snapshot(1).unwrap().read_batch_ahead(&addresses, &slots, &mut ahead).unwrap();
        assert_eq!(read, (want_accounts, want_slots));
        // The nodes two batches would keep.
        let mut two = ReadAhead::new();
        let fresh = db.snapshot(1).unwrap();
        fresh.accounts_ahead(&addresses, &mut two).unwrap();
        fresh.storage_batch_ahead(&slots, &mut two).unwrap();
        assert!(ahead.len() > 100 && ahead.len() == two.len(), "{} != {}", ahead.len(), two.len());
        assert_eq!(fresh.read_batch(&[], &[]).unwrap(), (vec![], vec![]));
    }

    /// A snapshot's top nodes (see [`TopNodes`]) serve its later lookups
    /// and only its own version's: two snapshots read in turns, of versions
    /// whose top nodes all differ, each see their own values (synchronous,
    /// resident-only and batched lookups alike; slots through the storage
    /// roots the snapshot remembers), in a cache too small to hold the
    /// tries.
    #[test]
    fn top_nodes_serve_their_own_version_only() {
        let (_dir, db, addresses) = db_and_addresses(64 << 10, 2000);
        let balances = |version: u64| move |i: usize| U256::from(version * 1_000_000 + i as u64);
        for version in 1..=2u64 {
            db.commit(version, &every_account_set(&addresses, version, balances(version))).unwrap();
        }
        let snapshots = [db.snapshot(1).unwrap(), db.snapshot(2).unwrap()];
        for round in 0..2 {
            for (i, address) in addresses.iter().enumerate() {
                for (version, snapshot) in (1..=2u64).zip(&snapshots) {
                    let account = snapshot.account(address).unwrap().unwrap();
                    assert_eq!(account.balance, balances(version)(i), "round {round}");
                    let slot = snapshot.storage(address, &B256::with_last_byte(1)).unwrap();
                    assert_eq!(slot, U256::from(version));
                    if let Some(Some(cached)) = snapshot.account_if_cached(address, None).unwrap() {
                        assert_eq!(cached.nonce, version);
                    }
                }
            }
        }
        for (version, snapshot) in (1..=2u64).zip(&snapshots) {
            let batch = snapshot.accounts(&addresses).unwrap();
            for (i, account) in batch.iter().enumerate() {
                assert_eq!(account.as_ref().unwrap().balance, balances(version)(i));
            }
            // At least the root and its 16 children (each over a hundred
            // accounts, so stored, never embedded in the root's record).
            assert!(snapshot.top.held() >= 17, "version {version}: {:?}", snapshot.top.held());
            // The storage roots of the first 1,024 accounts whose slots were
            // read (their later slot lookups started there, and read their
            // own version's values above).
            assert_eq!(snapshot.top.storage_roots_held(), 1024);
        }
    }

    /// A large storage trie gets top levels of its own in each snapshot
    /// that reads it (see [`TopNodes`]), and they too serve only their
    /// own version: two snapshots of a token whose 3,000 slots all change
    /// between the versions read every slot in turns (synchronous and
    /// batched), through a cache too small to hold the trie, and each sees
    /// its own values. Small storage tries (one slot: a leaf) get none.
    #[test]
    fn storage_tops_serve_their_own_version_only() {
        let (_dir, db, addresses) = db_and_addresses(64 << 10, 200);
        let token = Address::repeat_byte(0x7e);
        let slots: Vec<B256> = (0..3000u64).map(|i| keccak256(i.to_be_bytes())).collect();
        let value = |version: u64, i: usize| U256::from(version * 1_000_000 + i as u64 + 1);
        for version in 1..=2u64 {
            let mut updates = every_account_set(&addresses, version, |_| U256::from(version));
            let storage = slots.iter().enumerate().map(|(i, s)| (*s, value(version, i))).collect();
            let info = AccountInfo { nonce: 1, ..Default::default() };
            updates
                .accounts
                .insert(token, AccountUpdate::Set { info, wipe_storage: false, storage });
            db.commit(version, &updates).unwrap();
        }
        let snapshots = [db.snapshot(1).unwrap(), db.snapshot(2).unwrap()];
        for round in 0..2 {
            for (i, slot) in slots.iter().enumerate() {
                for (version, snapshot) in (1..=2u64).zip(&snapshots) {
                    let got = snapshot.storage(&token, slot).unwrap();
                    assert_eq!(got, value(version, i), "round {round}, slot {i}");
                }
            }
            for address in &addresses {
                for (version, snapshot) in (1..=2u64).zip(&snapshots) {
                    let got = snapshot.storage(address, &B256::with_last_byte(1)).unwrap();
                    assert_eq!(got, U256::from(version));
                }
            }
        }
        let wanted: Vec<(Address, B256)> = slots.iter().map(|slot| (token, *slot)).collect();
        for (version, snapshot) in (1..=2u64).zip(&snapshots) {
            let batch = snapshot.storage_batch(&wanted).unwrap();
            for (i, got) in batch.iter().enumerate() {
                assert_eq!(*got, value(version, i), "version {version}, slot {i}");
            }
            // The token's root and its 16 children at least (each over a
            // hundred slots), in the one trie with levels.
            let (held, tries) = snapshot.top.storage_held();
            assert!(held >= 17 && tries == 1, "version {version}: {held} nodes, {tries} tries");
        }
    }

    /// The nodes a commit replaces leave the cache once newer versions
    /// are published, so a state that fits in the cache keeps fitting
    /// however many blocks rewrite it; an old retained version still reads
    /// its own values (from disk).
    #[test]
    fn replaced_nodes_leave_the_cache() {
        let (_dir, db, addresses) = db_and_addresses(64 << 20, 3000);
        let commit = |version: u64| {
            let balance = |i: usize| U256::from(version * 10_000 + i as u64);
            db.commit(version, &every_account_set(&addresses, version, balance)).unwrap();
        };
        let versions = 40u64;
        let mut weights = Vec::new();
        for version in 1..=versions {
            commit(version);
            weights.push(db.stats().cache_bytes);
        }
        let stats = db.stats();
        // Every commit rewrites every node (all accounts change), so all
        // but the last STALE_AFTER_VERSIONS commits' replaced nodes left.
        assert!(stats.stale_evicted > 0, "{stats:?}");
        let settled = weights[crate::store::STALE_AFTER_VERSIONS + 2];
        let last = *weights.last().unwrap();
        assert!(
            last <= settled + settled / 4,
            "the cache grew from {settled} to {last} bytes over {versions} versions of one state"
        );
        assert!(db.stats().cache_bytes < (64 << 20) / 2, "a state that fits keeps fitting");
        // The oldest retained version reads its own values back, from disk.
        let old = db.snapshot(1).unwrap();
        let new = db.snapshot(versions).unwrap();
        for (i, address) in addresses.iter().enumerate().step_by(7) {
            assert_eq!(
                old.account(address).unwrap().unwrap().balance,
                U256::from(10_000 + i as u64)
            );
            assert_eq!(old.storage(address, &B256::with_last_byte(1)).unwrap(), U256::from(1));
            let balance = U256::from(versions * 10_000 + i as u64);
            assert_eq!(new.account(address).unwrap().unwrap().balance, balance);
        }
    }

    #[test]
    fn random_commits_match_alloy_trie_and_survive_reopen() {
        random_commits(false);
    }

    #[test]
    fn random_commits_with_embedded_subtrees() {
        random_commits(true);
    }

    /// Commits that walk a read-ahead (as a block's prefetch fills one)
    /// give the oracle's roots, including when the read-ahead came from
    /// the version before the parent (a pipelined prefetch) with so small
    /// a history and cache that chunks are reused and nodes evicted
    /// meanwhile; read over the parent, the commit reads nothing again,
    /// also where the slots' batch kept its nodes apart and they were
    /// absorbed ([`ReadAhead::absorb`]).
    #[test]
    fn read_ahead_commits_match_the_oracle_and_read_nothing_again() {
        let dir = test_dir();
        let mut config = Config::new(dir.path().join("db"));
        config.embed_subtrees = true;
        config.chunk_bytes = 1 << 20;
        config.cache_bytes = 64 << 10;
        config.retain_versions = 2;
        let db = TrieDb::open(config).unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        let pool: Vec<Address> =
            (0..3000).map(|_| Address::from(rng.random::<[u8; 20]>())).collect();
        let mut model = Model::new();
        let mut genesis = StateUpdates::default();
        for address in &pool {
            let info = AccountInfo { nonce: 1, balance: U256::from(7), ..Default::default() };
            let storage: BTreeMap<B256, U256> =
                (0..3u8).map(|i| (B256::with_last_byte(i), U256::from(i + 1))).collect();
            model.insert(*address, (info, storage.clone()));
            genesis
                .accounts
                .insert(*address, AccountUpdate::Set { info, wipe_storage: false, storage });
        }
        db.commit(1, &genesis).unwrap();
        let mut stale: Option<Snapshot> = None;
        let (mut without_reads, mut apply_checked) = (0, 0);
        for version in 2..=60u64 {
            let mut updates = StateUpdates::default();
            let mut slots = Vec::new();
            for _ in 0..rng.random_range(20..120) {
                let address = pool[rng.random_range(0..pool.len())];
                if updates.accounts.contains_key(&address) {
                    continue;
                }
                let update = if rng.random_bool(0.05) {
                    model.remove(&address);
                    AccountUpdate::Delete
                } else {
                    let entry = model.entry(address).or_default();
                    let wipe = rng.random_bool(0.03);
                    if wipe {
                        entry.1.clear();
                    }
                    entry.0.nonce += 1;
                    let mut storage = BTreeMap::new();
                    for _ in 0..rng.random_range(0..4) {
                        let slot = B256::with_last_byte(rng.random_range(0..8));
                        let value = U256::from(rng.random_range(0..3u8));
                        storage.insert(slot, value);
                        slots.push((address, slot));
                        match value.is_zero() {
                            true => entry.1.remove(&slot),
                            false => entry.1.insert(slot, value),
                        };
                    }
                    AccountUpdate::Set { info: entry.0, wipe_storage: wipe, storage }
                };
                updates.accounts.insert(address, update);
            }
            let parent = db.snapshot(version - 1).unwrap();
            // Every other commit reads ahead over the version before its parent.
            let (read_over, next_stale) = match stale.take() {
                Some(older) => (older, None),
                None => (parent.clone(), Some(parent.clone())),
            };
            let addresses: Vec<Address> = updates.accounts.keys().copied().collect();
            let mut ahead = ReadAhead::new();
            read_over.accounts_ahead(&addresses, &mut ahead).unwrap();
            if version % 3 == 0 {
                // Kept apart (batches run beside each other), then joined.
                let mut apart = ReadAhead::new();
                read_over.storage_batch_ahead(&slots, &mut apart).unwrap();
                ahead.absorb(apart);
            } else {
                read_over.storage_batch_ahead(&slots, &mut ahead).unwrap();
            }
            assert!(!ahead.is_empty());
            let over_parent = read_over.version() == version - 1;
            drop((read_over, parent));
            let before = db.stats();
            let root = db.commit_ahead(version, &updates, ahead).unwrap();
            assert_eq!(root, oracle(&model), "version {version}");
            let after = db.stats();
            if over_parent {
                assert_eq!(after.commit_prefetch_reads, before.commit_prefetch_reads, "{version}");
                without_reads += 1;
            }
            // The commit's own read-ahead stops at embedded subtrees; what
            // it kept is all the update walks, which read nothing.
            if after.nodes_compacted == before.nodes_compacted {
                assert_eq!(after.commit_apply_reads, before.commit_apply_reads, "{version}");
                apply_checked += 1;
            }
            stale = next_stale;
        }
        assert!(without_reads >= 25);
        assert!(apply_checked >= 10, "{apply_checked} commits without compaction");
        let latest = db.snapshot(60).unwrap();
        for address in pool.iter().take(300) {
            let want = model.get(address).map(|w| w.0);
            assert_eq!(latest.account(address).unwrap().map(|a| a.info()), want);
        }
    }

    /// Out-of-range settings are refused with a typed error naming the
    /// setting, before the file is touched.
    #[test]
    fn out_of_range_settings_are_refused() {
        let dir = test_dir();
        let path = dir.path().join("db");
        type Setting = (&'static str, fn(&mut Config));
        let settings: [Setting; 4] = [
            ("io_depth", |c| c.io_depth = 0),
            ("io_depth", |c| c.io_depth = 4097),
            ("retain_versions", |c| c.retain_versions = 0),
            ("batch_threads", |c| c.batch_threads = 0),
        ];
        for (name, set) in settings {
            let mut config = Config::new(&path);
            set(&mut config);
            match TrieDb::open(config) {
                Err(Error::InvalidConfig(message)) => assert!(message.contains(name), "{message}"),
                Err(other) => panic!("{name}: {other}"),
                Ok(_) => panic!("{name}: opened"),
            }
            assert!(!path.exists(), "{name}: the file was created");
        }
    }

    /// A batch split across threads (`batch_threads`) answers what single
    /// lookups answer, in order, and keeps every node its parts walked for
    /// the commit: reading ahead over the parent, the commit reads nothing.
    #[test]
    fn split_batches_read_what_single_lookups_read_and_keep_it_for_the_commit() {
        let dir = test_dir();
        let mut config = Config::new(dir.path().join("db"));
        config.chunk_bytes = 1 << 20;
        config.cache_bytes = 64 << 10;
        config.batch_threads = 3;
        let db = TrieDb::open(config).unwrap();
        let mut rng = StdRng::seed_from_u64(29);
        let mut model = Model::new();
        let mut genesis = StateUpdates::default();
        let pool: Vec<Address> =
            (0..4000).map(|_| Address::from(rng.random::<[u8; 20]>())).collect();
        for (i, address) in pool.iter().enumerate() {
            let info =
                AccountInfo { nonce: i as u64, balance: U256::from(i), ..Default::default() };
            let storage: BTreeMap<B256, U256> = (1..3u8)
                .map(|k| (B256::with_last_byte(k), U256::from(i * 10 + usize::from(k))))
                .collect();
            model.insert(*address, (info, storage.clone()));
            genesis
                .accounts
                .insert(*address, AccountUpdate::Set { info, wipe_storage: false, storage });
        }
        db.commit(1, &genesis).unwrap();
        let snapshot = db.snapshot(1).unwrap();
        // Present and absent accounts, present and absent slots, enough for
        // three parts of more than `BATCH_PART_MIN`.
        let mut addresses: Vec<Address> = pool.iter().step_by(2).copied().collect();
        addresses.extend((0..500).map(|_| Address::from(rng.random::<[u8; 20]>())));
        let slots: Vec<(Address, B256)> = pool
            .iter()
            .take(1500)
            .map(|a| (*a, B256::with_last_byte(rng.random_range(1..5))))
            .collect();
        let mut ahead = ReadAhead::new();
        let accounts = snapshot.accounts_ahead(&addresses, &mut ahead).unwrap();
        let values = snapshot.storage_batch_ahead(&slots, &mut ahead).unwrap();
        assert_eq!(accounts.len(), addresses.len());
        for (address, account) in addresses.iter().zip(&accounts) {
            assert_eq!(account, &snapshot.account(address).unwrap(), "{address}");
            assert_eq!(account.map(|a| a.info()), model.get(address).map(|m| m.0));
        }
        for ((address, slot), value) in slots.iter().zip(&values) {
            assert_eq!(*value, snapshot.storage(address, slot).unwrap());
            let want = model.get(address).and_then(|m| m.1.get(slot)).copied().unwrap_or_default();
            assert_eq!(*value, want, "{address} {slot}");
        }

        let mut updates = StateUpdates::default();
        for (address, slot) in &slots {
            let entry = model.get_mut(address).unwrap();
            entry.0.nonce += 1;
            entry.1.insert(*slot, U256::from(7));
            let storage = BTreeMap::from([(*slot, U256::from(7))]);
            updates.accounts.insert(
                *address,
                AccountUpdate::Set { info: entry.0, wipe_storage: false, storage },
            );
        }
        drop(snapshot);
        let before = db.stats().commit_prefetch_reads;
        assert_eq!(db.commit_ahead(2, &updates, ahead).unwrap(), oracle(&model));
        assert_eq!(db.stats().commit_prefetch_reads, before, "the commit read what was kept");
    }

    fn random_commits(embed_subtrees: bool) {
        let dir = test_dir();
        let path = dir.path().join("db");
        let mut config = Config::new(&path);
        config.embed_subtrees = embed_subtrees;
        config.chunk_bytes = 1 << 20;
        config.cache_bytes = 1 << 20;
        config.retain_versions = 8;
        let mut rng = StdRng::seed_from_u64(7);
        let pool: Vec<Address> =
            (0..300).map(|_| Address::from(rng.random::<[u8; 20]>())).collect();
        let mut model = Model::new();
        let mut history = Vec::new();
        {
            let db = TrieDb::open(config.clone()).unwrap();
            for version in 1..=60u64 {
                let mut updates = StateUpdates::default();
                for _ in 0..rng.random_range(1..40) {
                    let address = pool[rng.random_range(0..pool.len())];
                    if updates.accounts.contains_key(&address) {
                        continue;
                    }
                    let update = if rng.random_bool(0.1) {
                        model.remove(&address);
                        AccountUpdate::Delete
                    } else {
                        let wipe = rng.random_bool(0.05);
                        let entry = model
                            .entry(address)
                            .or_insert_with(|| (AccountInfo::default(), BTreeMap::new()));
                        if wipe {
                            entry.1.clear();
                        }
                        entry.0.nonce += 1;
                        entry.0.balance = U256::from(rng.random::<u64>());
                        let mut storage = BTreeMap::new();
                        for _ in 0..rng.random_range(0..6) {
                            let slot = B256::with_last_byte(rng.random_range(0..20));
                            let value = if rng.random_bool(0.3) {
                                U256::ZERO
                            } else {
                                U256::from(rng.random::<u32>())
                            };
                            storage.insert(slot, value);
                        }
                        for (slot, value) in &storage {
                            if value.is_zero() {
                                entry.1.remove(slot);
                            } else {
                                entry.1.insert(*slot, *value);
                            }
                        }
                        AccountUpdate::Set { info: entry.0, wipe_storage: wipe, storage }
                    };
                    updates.accounts.insert(address, update);
                }
                let root = db.commit(version, &updates).unwrap();
                assert_eq!(root, oracle(&model), "version {version}");
                history.push((version, root, model.clone()));
            }
            for (version, root, model) in history.iter().rev().take(8) {
                let snap = db.snapshot(*version).unwrap();
                assert_eq!(snap.state_root(), *root);
                for address in pool.iter().take(100) {
                    let got = snap.account(address).unwrap();
                    let want = model.get(address);
                    assert_eq!(got.map(|a| a.info()), want.map(|w| w.0), "v{version} {address}");
                    if let Some((_, slots)) = want {
                        for (slot, value) in slots {
                            assert_eq!(snap.storage(address, slot).unwrap(), *value);
                        }
                    }
                }
                let batch = snap.accounts(&pool).unwrap();
                for (address, got) in pool.iter().zip(batch) {
                    assert_eq!(got.map(|a| a.info()), model.get(address).map(|w| w.0));
                }
            }
            assert!(matches!(db.snapshot(1), Err(Error::UnknownVersion(1))));
        }
        let db = TrieDb::open(config).unwrap();
        let (version, root, _) = history.last().unwrap();
        assert_eq!(db.latest().unwrap(), VersionInfo { version: *version, state_root: *root });
    }

    /// `root_of` and refused `commit_expecting`s leave no trace: a database
    /// that gets them between its commits gives exactly the roots of one
    /// that does not, through compaction and a reopen.
    #[test]
    fn roots_not_kept_leave_no_trace() {
        let dir = test_dir();
        let config = |name: &str| {
            let mut config = Config::new(dir.path().join(name));
            config.chunk_bytes = 1 << 20;
            config.cache_bytes = 1 << 20;
            config.retain_versions = 2;
            config
        };
        let tried = TrieDb::open(config("tried")).unwrap();
        let plain = TrieDb::open(config("plain")).unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        let pool: Vec<Address> =
            (0..3_000).map(|_| Address::from(rng.random::<[u8; 20]>())).collect();
        let random_updates = |rng: &mut StdRng| {
            let mut updates = StateUpdates::default();
            for _ in 0..600 {
                let address = pool[rng.random_range(0..pool.len())];
                let info = AccountInfo {
                    nonce: rng.random_range(0..1_000),
                    balance: U256::from(rng.random::<u64>()),
                    code_hash: crate::KECCAK_EMPTY,
                };
                let storage = (0..rng.random_range(0..4))
                    .map(|_| (B256::with_last_byte(rng.random()), U256::from(rng.random::<u16>())))
                    .collect();
                let update = if rng.random_bool(0.05) {
                    AccountUpdate::Delete
                } else {
                    AccountUpdate::Set { info, wipe_storage: false, storage }
                };
                updates.accounts.insert(address, update);
            }
            updates
        };
        for version in 1..=40u64 {
            let updates = random_updates(&mut rng);
            let predicted = tried.root_of(&updates).unwrap();
            let decoy = random_updates(&mut rng);
            let decoy_root = tried.root_of(&decoy).unwrap();
            assert_ne!(decoy_root, predicted);
            match tried.commit_expecting(version, &decoy, predicted) {
                Err(Error::RootMismatch { version: v, expected, computed }) => {
                    assert_eq!((v, expected, computed), (version, predicted, decoy_root));
                }
                other => panic!("a wrong root was kept: {other:?}"),
            }
            assert_eq!(
                tried.latest().map(|l| l.version),
                version.checked_sub(1).filter(|&v| v > 0)
            );
            let root = tried.commit_expecting(version, &updates, predicted).unwrap();
            assert_eq!(root, plain.commit(version, &updates).unwrap(), "version {version}");
            assert_eq!(root, predicted);
        }
        assert!(tried.stats().nodes_compacted > 0, "compaction ran");
        let latest = tried.latest().unwrap();
        drop(tried);
        let tried = TrieDb::open(config("tried")).unwrap();
        assert_eq!(tried.latest().unwrap(), latest);
        let snapshot = tried.snapshot(latest.version).unwrap();
        let expected = plain.snapshot(latest.version).unwrap().accounts(&pool).unwrap();
        assert_eq!(snapshot.accounts(&pool).unwrap(), expected);
    }

    /// After a bulk load, a long run of small commits keeps the file within
    /// compaction's space bound, and compaction moves the floor as their
    /// writes pay for it: whole chunks now and then, not a chunk (and its
    /// live nodes) on every small commit.
    #[test]
    fn small_commits_after_a_bulk_load_share_the_compaction_work() {
        let dir = test_dir();
        let mut config = Config::new(dir.path().join("db"));
        config.chunk_bytes = 1 << 20;
        config.cache_bytes = 4 << 20;
        config.retain_versions = 2;
        let db = TrieDb::open(config).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let accounts: Vec<Address> =
            (0..40_000).map(|_| Address::from(rng.random::<[u8; 20]>())).collect();
        let set = |address: &Address, nonce: u64| {
            let info =
                AccountInfo { nonce, balance: U256::from(nonce), code_hash: crate::KECCAK_EMPTY };
            (
                *address,
                AccountUpdate::Set { info, wipe_storage: false, storage: Default::default() },
            )
        };
        let bulk = StateUpdates {
            accounts: accounts.iter().map(|a| set(a, 1)).collect(),
            ..Default::default()
        };
        db.commit(1, &bulk).unwrap();
        let chunk = 1u64 << 20;
        let (mut written, mut commits_compacting, mut due_commits) = (0u64, 0usize, 0usize);
        // Commits since compaction first became due: the file at its bound.
        let mut bounded_commits = 0usize;
        let mut file_max = 0;
        for version in 2..=1_500u64 {
            let before = db.stats();
            let durable = db.inner.writer.lock().meta.clone();
            let updates = StateUpdates {
                accounts: (0..20)
                    .map(|_| set(&accounts[rng.random_range(0..accounts.len())], version))
                    .collect(),
                ..Default::default()
            };
            db.commit(version, &updates).unwrap();
            let after = db.stats();
            written += after.live_bytes.abs_diff(before.live_bytes);
            if compaction_due(&durable) {
                due_commits += 1;
            }
            if due_commits > 0 {
                bounded_commits += 1;
                if after.nodes_compacted > before.nodes_compacted {
                    commits_compacting += 1;
                }
            }
            file_max = file_max.max(after.file_bytes);
        }
        let stats = db.stats();
        assert!(stats.nodes_compacted > 0, "compaction ran");
        assert!(due_commits > 100, "the run reached the space bound ({due_commits} commits)");
        // Each small commit writes a few tens of KiB: several share a chunk
        // (compaction is due again as soon as the head has moved a chunk,
        // and then moves the floor at once with what they banked).
        assert!(
            commits_compacting * 3 < bounded_commits,
            "{commits_compacting} of {bounded_commits} commits at the bound moved the floor"
        );
        // Floor to head within 2 × live + slack, plus the step in flight and
        // the chunks the retained versions still hold.
        let bound = COMPACTION_SPACE_FACTOR * stats.live_bytes
            + (COMPACTION_SLACK_CHUNKS + COMPACTION_STEP_CHUNKS_MAX + 4) * chunk;
        assert!(file_max <= bound, "file grew to {file_max} bytes, bound {bound} ({written})");
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_until_the_first_closes() {
        let dir = test_dir();
        let config = Config::new(dir.path().join("db"));
        let first = TrieDb::open(config.clone()).unwrap();
        assert!(matches!(TrieDb::open(config.clone()), Err(Error::Locked(_))));
        drop(first);
        TrieDb::open(config).unwrap();
    }
}
