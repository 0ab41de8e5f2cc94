//! The shared database state: storage, read engine, node cache, chunk map,
//! and the append writer used by commits.

use crate::db::Config;
use crate::io::{AlignedBuf, PAGE_BYTES, ReadEngine, Storage};
use crate::meta::{DATA_OFFSET, Meta, VersionRecord};
use crate::node::{Loc, MAX_NODE_BYTES, Node, StoredRef, node_crc, node_weight};
use crate::{Error, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Decodes the node at absolute `offset` out of a page buffer read at
/// `buf_start`, without caching it.
pub(crate) fn decode_in_pages(loc: Loc, buf: &[u8], buf_start: u64, offset: u64) -> Result<Node> {
    Node::decode(loc, node_in_pages(loc, buf, buf_start, offset)?)
}

/// [`decode_in_pages`], also handing back the node's record.
fn decode_in_pages_with_record(
    loc: Loc,
    buf: &[u8],
    buf_start: u64,
    offset: u64,
) -> Result<(Node, Arc<[u8]>)> {
    Node::decode_with_record(loc, node_in_pages(loc, buf, buf_start, offset)?)
}

/// The bytes of the node at absolute `offset` in a page buffer read at `buf_start`.
fn node_in_pages(loc: Loc, buf: &[u8], buf_start: u64, offset: u64) -> Result<&[u8]> {
    let at = (offset - buf_start) as usize;
    buf.get(at..at + loc.len as usize).ok_or(Error::CorruptNode {
        chunk: loc.chunk,
        offset: loc.offset,
        reason: "node outside the pages read",
    })
}

/// Logical chunk → physical chunk, for the chunks some retained version uses.
#[derive(Clone, Debug)]
pub(crate) struct ChunkMap {
    pub lo: u32,
    pub phys: Vec<u32>,
    pub chunk_bytes: u64,
}

impl ChunkMap {
    pub fn from_meta(meta: &Meta) -> ChunkMap {
        ChunkMap { lo: meta.chunk_lo, phys: meta.map.clone(), chunk_bytes: meta.chunk_bytes }
    }

    /// Absolute byte offset of `loc` in the file.
    pub fn offset(&self, loc: Loc) -> Result<u64> {
        let index =
            loc.chunk.checked_sub(self.lo).ok_or(Error::DanglingRef { chunk: loc.chunk })?;
        let phys = *self.phys.get(index as usize).ok_or(Error::DanglingRef { chunk: loc.chunk })?;
        if u64::from(loc.offset) + u64::from(loc.len) > self.chunk_bytes {
            return Err(Error::CorruptNode {
                chunk: loc.chunk,
                offset: loc.offset,
                reason: "node extends past its chunk",
            });
        }
        Ok(DATA_OFFSET + u64::from(phys) * self.chunk_bytes + u64::from(loc.offset))
    }
}

/// The page-aligned span covering `len` bytes at `offset`.
pub(crate) fn page_span(offset: u64, len: u32) -> (u64, usize) {
    let page = PAGE_BYTES as u64;
    let start = offset / page * page;
    let end = (offset + u64::from(len)).div_ceil(page) * page;
    (start, (end - start) as usize)
}

/// A cached node with its weight, worked out once: the cache weighs an
/// entry on insert and again for every entry its eviction scans.
#[derive(Clone)]
pub(crate) struct CachedNode {
    entry: Entry,
    weight: u64,
}

/// How a node is kept: inner nodes decoded, bottom nodes as their record.
///
/// A decoded bottom branch of the account trie (10M accounts: ~10 embedded
/// accounts) weighs ~2.4 KiB, its 16-slot child table alone 1 KiB; its
/// record was ~1.35 KiB, and is ~0.8 KiB since leaves are packed (format 2). Kept as records, the same budget holds ~1.7 times
/// as many bottom nodes, and a cold lookup under one of them needs no read
/// (10M accounts, 256 MiB: 53k → 81k bottom nodes cached, device reads per
/// cold lookup 0.994 → 0.955). A hit decodes the record (the embedded
/// children stay in record form, so that is the child table and a few
/// checks); evicting one frees one buffer instead of a node, its table and a
/// reference per child. The two about cancel: CPU per lookup stayed the same.
#[derive(Clone)]
enum Entry {
    Node(Arc<Node>),
    Record(Arc<[u8]>),
}

/// Bytes a record entry costs beyond its body: the buffer's header, the
/// entry and the cache's own slot.
const RECORD_OVERHEAD: u64 = 64;

/// What a bottom node kept as its record weighs in the cache.
pub(crate) fn record_weight(record: &[u8]) -> u64 {
    record.len() as u64 + RECORD_OVERHEAD
}

#[derive(Clone, Copy)]
pub(crate) struct NodeWeighter;

impl quick_cache::Weighter<u64, CachedNode> for NodeWeighter {
    fn weight(&self, _key: &u64, cached: &CachedNode) -> u64 {
        cached.weight
    }
}

type Tier = quick_cache::sync::Cache<u64, CachedNode, NodeWeighter>;

/// The node cache, under a fixed memory budget, in two tiers. The inner
/// structure of the tries (branches and extensions without leaf data: few
/// nodes, on every path) has a tier of its own, so a stream of cold
/// lookups, whose bottom branches are each read once, cannot push it out.
/// With the inner nodes resident a cold lookup costs one read.
///
/// The inner tier may take up to three quarters of the budget, but it is
/// given only what it holds plus as much again: the rest serves the lower
/// tier, which also borrows the part of the inner tier's capacity that is
/// not in use ([`lend_to_lower`](Self::lend_to_lower)). A state whose
/// inner nodes are small (1M accounts with embedded bottom branches: ~10
/// MiB of them) then leaves nearly all of the budget to bottom nodes
/// instead of reserving three quarters of it for nothing. The
/// slack is deliberate: every commit replaces the inner nodes on its paths,
/// and the old ones stay in the tier until [`evict`](Self::evict) drops
/// them, [`STALE_AFTER_VERSIONS`] versions later. A tier grown by a
/// quarter instead, and only on reads (10M accounts: 63 MiB held in 69 MiB,
/// not 128), had to evict live nodes to make room for that garbage within a
/// few blocks, and cold ERC-20 blocks went from 3.58 to 3.83 device reads
/// a transaction (`wake bench execution --only cold-erc20-parallel`).
///
/// Replaced nodes are dropped by location, not left to the eviction
/// policy: a state that fits in the budget would otherwise fill it with
/// old versions' nodes within a few hundred blocks, look full to
/// [`has_room`](Self::has_room), stop caching the bottom nodes commits
/// write, and read them from the device again (the cached ERC-20 rows of
/// `wake bench execution`: 0.11 device reads a transaction after the
/// transfer runs had filled 1 GiB with 38 MiB of live state).
pub(crate) struct NodeCache {
    upper: Tier,
    lower: Tier,
    budget: u64,
    /// The inner tier's current capacity (it only grows).
    upper_capacity: AtomicU64,
    /// Bytes inserted into the inner tier since its weight was last checked.
    upper_inserted: AtomicU64,
    /// Less than half the budget was in use when last weighed.
    room: AtomicBool,
    /// Bytes inserted since `room` was last worked out.
    inserted_since_weighed: AtomicU64,
}

/// Adds `bytes` to `counter`; true, with the counter reset, once it has
/// reached `every`. For work that weighs the cache (every shard's lock),
/// done once per so many bytes inserted rather than on every insert.
fn due(counter: &AtomicU64, bytes: u64, every: u64) -> bool {
    let since = counter.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if since < every {
        return false;
    }
    counter.store(0, Ordering::Relaxed);
    true
}

/// Smallest capacity of the inner tier.
const UPPER_MIN_BYTES: u64 = 1 << 20;

/// Share of the inner tier kept for entries hit since they came in. Every
/// commit replaces the inner nodes on its paths (a 1,700-transaction block
/// over 1M accounts: ~2,500 of the 4,369 nodes above the bottom, ~1.5 MiB)
/// and caches the new ones, which the next block's lookups and commit read
/// first: recency again. With quick_cache's default (3 % for new entries,
/// a few hundred KiB) they were evicted before that first read, and each
/// was then read from the device once per version: `wake devnet`, 1M
/// accounts, `mix`, 30 s at 7,000 tx/s: per 5 s, lookups read depth-3
/// nodes 28,000 times and commits read 40,000 nodes ahead (65-83 ms a
/// block) at 0.97; 2,500 and 300-2,000 (3-5 ms a block) at 0.5.
const UPPER_HOT_SHARE: f64 = 0.5;

/// Share of the bottom tier kept for entries hit since they came in. A
/// bottom node is mostly read a few times within a few seconds and then
/// replaced: by the pool's admission of a sender, by the block's prefetch,
/// by the commit that rewrites it. That is recency, not frequency: with the
/// default 3 % for new entries a node read at prefetch was often evicted
/// before its commit read it again (`wake devnet`, 1M accounts, `mix`:
/// 6.70 device reads per transaction at 0.97, 5.77 at 0.5).
const LOWER_HOT_SHARE: f64 = 0.5;

impl NodeCache {
    fn new(budget_bytes: u64) -> NodeCache {
        let upper_max = budget_bytes / 4 * 3;
        let upper_bytes = UPPER_MIN_BYTES.min(upper_max);
        // ~600 bytes per cached node on average.
        let tier = |items: u64, bytes: u64, hot: f64| {
            let options = quick_cache::OptionsBuilder::new()
                .estimated_items_capacity((items / 600).max(64) as usize)
                .weight_capacity(bytes)
                .hot_allocation(hot)
                .build()
                .expect("both capacities are set");
            Tier::with_options(options, NodeWeighter, Default::default(), Default::default())
        };
        NodeCache {
            upper: tier(upper_max, upper_bytes, UPPER_HOT_SHARE),
            lower: tier(budget_bytes, budget_bytes - upper_bytes, LOWER_HOT_SHARE),
            budget: budget_bytes,
            upper_capacity: AtomicU64::new(upper_bytes),
            upper_inserted: AtomicU64::new(0),
            room: AtomicBool::new(true),
            inserted_since_weighed: AtomicU64::new(0),
        }
    }

    /// `_depth` (nibbles below the root) is kept for policies that want it.
    pub fn get(&self, loc: Loc, _depth: usize) -> Option<Arc<Node>> {
        let key = loc.key();
        match self.upper.get(&key).or_else(|| self.lower.get(&key))?.entry {
            Entry::Node(node) => Some(node),
            // The record was checked when it was read; one that no longer
            // decodes (it cannot) is a miss, and the read reports it.
            Entry::Record(record) => Node::decode_record(&record).map(Arc::new),
        }
    }

    /// Whether `loc` is cached (no hit is recorded).
    pub fn contains(&self, loc: Loc) -> bool {
        let key = loc.key();
        self.upper.peek(&key).is_some() || self.lower.peek(&key).is_some()
    }

    /// Caches a node, as a commit that wrote it would.
    #[cfg(test)]
    pub fn insert(&self, loc: Loc, node: Arc<Node>, _depth: usize) {
        if node.holds_leaves() {
            let mut body = Vec::new();
            node.encode_body(&mut body);
            self.insert_bottom(loc, Arc::from(body));
            return;
        }
        self.insert_inner(loc, node);
    }

    /// Caches a node read from disk, with its record (see
    /// [`Node::decode_with_record`]). A bottom node is kept as its record
    /// while the cache is filling up (more of them fit), decoded while it
    /// has room (a state that fits: a hit then costs no decoding).
    pub fn insert_read(&self, loc: Loc, node: &Arc<Node>, record: Arc<[u8]>) {
        match node.holds_leaves() {
            true if !self.has_room() => self.insert_bottom(loc, record),
            _ => self.insert_node(loc, Arc::clone(node)),
        }
    }

    /// Caches a decoded node: inner nodes in the inner tier, bottom nodes
    /// in the lower one.
    pub fn insert_node(&self, loc: Loc, node: Arc<Node>) {
        if !node.holds_leaves() {
            return self.insert_inner(loc, node);
        }
        let weight = node_weight(&node);
        self.inserted(weight);
        self.lower.insert(loc.key(), CachedNode { entry: Entry::Node(node), weight });
    }

    /// Caches a bottom node as its record.
    pub fn insert_bottom(&self, loc: Loc, record: Arc<[u8]>) {
        let weight = record_weight(&record);
        self.inserted(weight);
        self.lower.insert(loc.key(), CachedNode { entry: Entry::Record(record), weight });
    }

    /// Caches an inner node (read, or written by a commit).
    pub fn insert_inner(&self, loc: Loc, node: Arc<Node>) {
        let weight = node_weight(&node);
        self.inserted(weight);
        self.grow_upper(weight);
        self.upper.insert(loc.key(), CachedNode { entry: Entry::Node(node), weight });
    }

    /// Doubles the inner tier (taking from the lower one) when `incoming`
    /// more bytes would bring it near its capacity, up to three quarters of
    /// the budget, and lends the lower tier what the inner one does not
    /// hold (see [`lend_to_lower`](Self::lend_to_lower)).
    fn grow_upper(&self, incoming: u64) {
        let capacity = self.upper_capacity.load(Ordering::Relaxed);
        // Weighing the tier takes every shard's lock: do it once per
        // sixteenth of its capacity inserted, not on every insert.
        if !due(&self.upper_inserted, incoming, capacity / 16) {
            return;
        }
        let held = self.upper.weight();
        let upper_max = self.budget / 4 * 3;
        let grown = capacity.saturating_mul(2).min(upper_max);
        let grows = capacity < upper_max
            && held * 8 >= capacity * 7
            && self
                .upper_capacity
                .compare_exchange(capacity, grown, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        // Shrink the lower tier first: the two never hold more than the budget.
        self.lend_to_lower(held);
        if grows {
            self.upper.set_capacity(grown);
        }
    }

    /// Gives the lower tier the budget less what the inner tier holds
    /// (`upper_held`, just weighed) and a margin of an eighth of its
    /// capacity. The inner tier's capacity is slack for the nodes commits
    /// replace; while it is not used, bottom nodes use it (10M accounts,
    /// 256 MiB: 63 MiB held in a 128 MiB tier). The inner tier is weighed
    /// again once a sixteenth of its capacity has come in, so it cannot
    /// outgrow the margin in between: the two never hold more than the
    /// budget.
    fn lend_to_lower(&self, upper_held: u64) {
        let capacity = self.upper_capacity.load(Ordering::Relaxed);
        let reserved = upper_held.saturating_add(capacity / 8).min(capacity);
        self.lower.set_capacity(self.budget - reserved);
    }

    /// The memory budget, in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Whether less than half the budget is in use: a commit then caches
    /// every node it writes, not only those near a root, since keeping them
    /// evicts nothing. Weighing takes every shard's lock, so the answer is
    /// worked out again once per 1/64 of the budget inserted, and after an
    /// eviction.
    pub fn has_room(&self) -> bool {
        self.room.load(Ordering::Relaxed)
    }

    /// Works [`has_room`](Self::has_room)'s answer out again; returns what
    /// the inner tier holds, weighed on the way.
    fn reweigh(&self) -> u64 {
        let upper = self.upper.weight();
        self.room.store(upper + self.lower.weight() < self.budget / 2, Ordering::Relaxed);
        upper
    }

    /// Drops the nodes at `keys` (location keys), in whichever tier holds
    /// them; returns how many were held. For nodes no recent version refers
    /// to: without this they would stay until the tier is full, and a state
    /// that fits would look full to [`has_room`](Self::has_room).
    pub fn evict(&self, keys: &[u64]) -> u64 {
        let mut held = 0;
        for key in keys {
            if self.upper.remove(key).is_some() || self.lower.remove(key).is_some() {
                held += 1;
            }
        }
        if held > 0 {
            let upper = self.reweigh();
            self.lend_to_lower(upper);
        }
        held
    }

    /// Counts `bytes` inserted; weighs the cache again when enough were.
    fn inserted(&self, bytes: u64) {
        if due(&self.inserted_since_weighed, bytes, (self.budget / 64).max(1)) {
            self.reweigh();
        }
    }

    /// Bytes held.
    pub fn weight(&self) -> u64 {
        self.upper.weight() + self.lower.weight()
    }

    pub fn inner_weight(&self) -> u64 {
        self.upper.weight()
    }

    pub fn inner_capacity(&self) -> u64 {
        self.upper_capacity.load(Ordering::Relaxed)
    }

    pub fn inner_len(&self) -> u64 {
        self.upper.len() as u64
    }

    pub fn bottom_len(&self) -> u64 {
        self.lower.len() as u64
    }
}

/// Counters since open.
#[derive(Default)]
pub(crate) struct Counters {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub device_reads: AtomicU64,
    pub nodes_compacted: AtomicU64,
    pub stale_evicted: AtomicU64,
    pub commit_prefetch_us: AtomicU64,
    pub commit_apply_us: AtomicU64,
    pub commit_sync_us: AtomicU64,
    pub commit_prefetch_reads: AtomicU64,
    pub commit_apply_reads: AtomicU64,
}

thread_local! {
    /// Device reads this thread issued (of every database): lets a commit
    /// count its own reads while other threads read too.
    static THREAD_DEVICE_READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Counters {
    /// One device read, issued by the calling thread.
    pub fn device_read(&self) {
        self.device_reads.fetch_add(1, Ordering::Relaxed);
        THREAD_DEVICE_READS.with(|reads| reads.set(reads.get() + 1));
    }
}

/// Device reads the calling thread has issued so far.
pub(crate) fn thread_device_reads() -> u64 {
    THREAD_DEVICE_READS.with(std::cell::Cell::get)
}

/// What readers see: the durable metadata and the chunk map.
pub(crate) struct Published {
    pub meta: Meta,
    pub map: Arc<ChunkMap>,
}

/// State shared by every handle of one open database.
pub(crate) struct Shared {
    pub storage: Arc<dyn Storage>,
    pub engine: ReadEngine,
    pub cache: NodeCache,
    pub config: Config,
    pub published: RwLock<Published>,
    pub writer: Mutex<WriterState>,
    /// Versions held by live snapshots: version → (count, min_chunk).
    pub pins: Mutex<BTreeMap<u64, (usize, u32)>>,
    pub poisoned: AtomicBool,
    pub counters: Counters,
}

impl Shared {
    pub fn new(
        storage: Arc<dyn Storage>,
        engine: ReadEngine,
        config: Config,
        meta: Meta,
        meta_slot: u64,
    ) -> Shared {
        let cache = NodeCache::new(config.cache_bytes.max(1 << 20) as u64);
        let map = Arc::new(ChunkMap::from_meta(&meta));
        let writer = WriterState::new(&meta, meta_slot);
        Shared {
            storage,
            engine,
            cache,
            config,
            published: RwLock::new(Published { meta, map }),
            writer: Mutex::new(writer),
            pins: Mutex::new(BTreeMap::new()),
            poisoned: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    /// A node `depth` nibbles below its root, from the cache or read
    /// synchronously (pread).
    pub fn node(&self, map: &ChunkMap, stored: &StoredRef, depth: usize) -> Result<Arc<Node>> {
        if let Some(node) = self.cache.get(stored.loc, depth) {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(node);
        }
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        let offset = map.offset(stored.loc)?;
        let (start, len) = page_span(offset, stored.loc.len);
        let mut buf = AlignedBuf::new(len);
        self.counters.device_read();
        self.storage.read_at(&mut buf, start).map_err(|e| Error::io("reading a node", e))?;
        self.decode_from_pages(stored.loc, &buf, start, offset)
    }

    /// Decodes the node at absolute `offset` out of a page buffer read at
    /// `buf_start`, and caches it.
    pub fn decode_from_pages(
        &self,
        loc: Loc,
        buf: &[u8],
        buf_start: u64,
        offset: u64,
    ) -> Result<Arc<Node>> {
        let (node, record) = decode_in_pages_with_record(loc, buf, buf_start, offset)?;
        let node = Arc::new(node);
        self.cache.insert_read(loc, &node, record);
        Ok(node)
    }

    /// Resolves a child reference to a node (inline nodes decode in place).
    pub fn load(
        &self,
        map: &ChunkMap,
        child: &crate::node::Child,
        depth: usize,
    ) -> Result<Arc<Node>> {
        match child {
            crate::node::Child::Stored(stored) => self.node(map, stored, depth),
            crate::node::Child::Inline(rlp) => Ok(Arc::new(Node::from_inline_rlp(rlp)?)),
            crate::node::Child::Embedded { body, .. } => Ok(Arc::new(body.decode()?)),
            crate::node::Child::Mem(node) => Ok(Arc::new((**node).clone())),
        }
    }

    /// Pins `version` for a snapshot; `None` when it is not retained.
    pub fn pin(&self, version: u64) -> Option<(VersionRecord, Arc<ChunkMap>)> {
        let published = self.published.read();
        let record = *published.meta.versions.iter().find(|v| v.version == version)?;
        let mut pins = self.pins.lock();
        let entry = pins.entry(version).or_insert((0, record.min_chunk));
        entry.0 += 1;
        Some((record, Arc::clone(&published.map)))
    }

    pub fn unpin(&self, version: u64) {
        let mut pins = self.pins.lock();
        if let Some(entry) = pins.get_mut(&version) {
            entry.0 -= 1;
            if entry.0 == 0 {
                pins.remove(&version);
            }
        }
    }
}

/// The committer's private state.
pub(crate) struct WriterState {
    /// Metadata as of the last durable commit, with the writer's changes.
    pub meta: Meta,
    /// Slot holding the newest durable metadata.
    pub meta_slot: u64,
    /// Physical chunks not in the map.
    pub free: Vec<u32>,
    pub buf: WriteBuf,
    /// Location keys of the nodes each of the last commits replaced,
    /// oldest first, to evict from the cache once no reader of a recent
    /// version needs them (see [`STALE_AFTER_VERSIONS`]).
    pub stale: VecDeque<Vec<u64>>,
}

/// The nodes a commit replaced leave the cache once this many newer
/// versions are published. The newest version never refers to them, and a
/// node's executor reads the version before the one committing (with its
/// pending diff on top), so one would do; two leave room for a reader a
/// version further behind (RPC at `latest` while a commit lands). Older
/// versions stay readable: their nodes are read from disk again.
pub(crate) const STALE_AFTER_VERSIONS: usize = 2;

impl WriterState {
    pub fn new(meta: &Meta, meta_slot: u64) -> WriterState {
        let mut used = vec![false; meta.phys_chunks as usize];
        for &p in &meta.map {
            used[p as usize] = true;
        }
        // Highest first, so pop() hands out low chunks first.
        let free = (0..meta.phys_chunks).rev().filter(|&p| !used[p as usize]).collect();
        WriterState {
            meta: meta.clone(),
            meta_slot,
            free,
            buf: WriteBuf::new(),
            stale: VecDeque::new(),
        }
    }
}

/// Appends nodes to the head chunk through a page-aligned staging buffer.
///
/// Every commit starts on a fresh page, so a torn write can only ever hit
/// pages that no durable version refers to.
pub(crate) struct WriteBuf {
    staging: AlignedBuf,
    /// Chunk offset that `staging[0]` maps to (page aligned).
    stage_start: u32,
    stage_len: usize,
    /// Logical and physical head chunk, once one is open.
    head: Option<(u32, u32)>,
    scratch: Vec<u8>,
    /// Bytes written by the commit in progress.
    pub bytes_written: u64,
    /// How far (in bytes of chunks) the compaction floor may still move:
    /// earned by the bytes commits write for their own updates, spent as
    /// the floor moves (see `compaction_floor` in db.rs).
    pub compaction_credit: u64,
}

const STAGING_BYTES: usize = 2 * MAX_NODE_BYTES;

impl WriteBuf {
    fn new() -> WriteBuf {
        WriteBuf {
            staging: AlignedBuf::new(STAGING_BYTES),
            stage_start: 0,
            stage_len: 0,
            head: None,
            scratch: Vec::with_capacity(1024),
            bytes_written: 0,
            compaction_credit: 0,
        }
    }

    /// Positions the buffer at the durable append point of `meta`.
    pub fn reset(&mut self, meta: &Meta) {
        self.stage_len = 0;
        self.bytes_written = 0;
        self.stage_start = meta.head_offset;
        self.head = meta.map.last().map(|&phys| (meta.chunk_hi() - 1, phys));
    }
}

impl WriterState {
    /// Appends one node; returns where it landed.
    pub fn append(&mut self, storage: &dyn Storage, node: &Node) -> Result<Loc> {
        let mut body = std::mem::take(&mut self.buf.scratch);
        body.clear();
        node.encode_body(&mut body);
        let result = self.append_body(storage, &body);
        self.buf.scratch = body;
        result
    }

    /// Appends one node given as its encoded body (`Node::encode_body`).
    pub fn append_body(&mut self, storage: &dyn Storage, body: &[u8]) -> Result<Loc> {
        let total = 4 + body.len();
        if total > MAX_NODE_BYTES {
            return Err(Error::InvalidValue("node larger than 1 MiB"));
        }
        let chunk_bytes = self.meta.chunk_bytes as usize;
        self.make_room(storage, total + PAGE_BYTES)?;
        // Keep small nodes inside one page: one read fetches them whole.
        let cursor = self.buf.stage_start as usize + self.buf.stage_len;
        let in_page = cursor % PAGE_BYTES;
        if total <= PAGE_BYTES && in_page + total > PAGE_BYTES {
            self.pad(PAGE_BYTES - in_page);
        }
        let cursor = self.buf.stage_start as usize + self.buf.stage_len;
        if self.buf.head.is_none() || cursor + total > chunk_bytes {
            self.finish(storage)?;
            self.open_chunk(storage)?;
        }
        if self.buf.stage_len + total > self.buf.staging.len() {
            self.flush_full_pages(storage)?;
        }
        let (chunk, _) = self.buf.head.expect("a head chunk is open");
        let offset = self.buf.stage_start + self.buf.stage_len as u32;
        let at = self.buf.stage_len;
        let crc = node_crc(chunk, offset, body);
        self.buf.staging[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        self.buf.staging[at + 4..at + total].copy_from_slice(body);
        self.buf.stage_len += total;
        Ok(Loc { chunk, offset, len: total as u32 })
    }

    /// Flushes whole pages if fewer than `bytes` are free in the staging buffer.
    fn make_room(&mut self, storage: &dyn Storage, bytes: usize) -> Result<()> {
        if self.buf.head.is_some() && self.buf.stage_len + bytes > self.buf.staging.len() {
            self.flush_full_pages(storage)?;
        }
        Ok(())
    }

    fn pad(&mut self, n: usize) {
        let at = self.buf.stage_len;
        self.buf.staging[at..at + n].fill(0);
        self.buf.stage_len += n;
    }

    fn open_chunk(&mut self, storage: &dyn Storage) -> Result<()> {
        let phys = match self.free.pop() {
            Some(phys) => phys,
            None => {
                let phys = self.meta.phys_chunks;
                let len = DATA_OFFSET + (u64::from(phys) + 1) * self.meta.chunk_bytes;
                storage.set_len(len).map_err(|e| Error::io("growing the file", e))?;
                self.meta.phys_chunks += 1;
                phys
            }
        };
        let logical = self.meta.chunk_hi();
        self.meta.map.push(phys);
        self.buf.head = Some((logical, phys));
        self.buf.stage_start = 0;
        self.buf.stage_len = 0;
        self.meta.head_offset = 0;
        Ok(())
    }

    fn write_staged(&mut self, storage: &dyn Storage, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (_, phys) = self.buf.head.expect("a head chunk is open");
        let offset =
            DATA_OFFSET + u64::from(phys) * self.meta.chunk_bytes + u64::from(self.buf.stage_start);
        storage
            .write_at(&self.buf.staging[..len], offset)
            .map_err(|e| Error::io("writing nodes", e))?;
        self.buf.bytes_written += len as u64;
        Ok(())
    }

    /// Writes the whole pages staged so far, keeping the partial last page.
    fn flush_full_pages(&mut self, storage: &dyn Storage) -> Result<()> {
        let full = self.buf.stage_len / PAGE_BYTES * PAGE_BYTES;
        self.write_staged(storage, full)?;
        let tail = self.buf.stage_len - full;
        self.buf.staging.copy_within(full..full + tail, 0);
        self.buf.stage_start += full as u32;
        self.buf.stage_len = tail;
        Ok(())
    }

    /// Pads to a page boundary and writes everything staged.
    pub fn finish(&mut self, storage: &dyn Storage) -> Result<()> {
        if self.buf.head.is_none() {
            return Ok(());
        }
        let rem = self.buf.stage_len % PAGE_BYTES;
        if rem != 0 {
            self.pad(PAGE_BYTES - rem);
        }
        let len = self.buf.stage_len;
        self.write_staged(storage, len)?;
        self.buf.stage_start += len as u32;
        self.buf.stage_len = 0;
        self.meta.head_offset = self.buf.stage_start;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{Value, empty_branch};

    #[test]
    fn cache_keeps_inner_nodes_apart_from_leaf_data() {
        let cache = NodeCache::new(8 << 20);
        let inner = Arc::new(Node::Branch { children: empty_branch(), value: None });
        let leafy = Arc::new(Node::Leaf { path: vec![1], value: Value::Raw(vec![1].into()) });
        let loc = |offset| Loc { chunk: 1, offset, len: 100 };
        cache.insert(loc(0), Arc::clone(&inner), 0);
        cache.insert(loc(4096), Arc::clone(&leafy), 9);
        assert!(cache.get(loc(0), 0).is_some());
        assert!(cache.get(loc(4096), 9).is_some());
        // A flood of leaf data evicts leaf data, not the inner node.
        for i in 0..100_000u32 {
            cache.insert(Loc { chunk: 2, offset: i * 8, len: 100 }, Arc::clone(&leafy), 9);
        }
        assert!(cache.get(loc(0), 0).is_some());
        assert!(cache.weight() <= 8 << 20);
    }

    /// An inner node as a read from disk hands it to the cache.
    fn read_inner(cache: &NodeCache, loc: Loc, node: &Arc<Node>) {
        let mut body = Vec::new();
        node.encode_body(&mut body);
        cache.insert_read(loc, node, Arc::from(body));
    }

    fn inner_node() -> Arc<Node> {
        let mut children = empty_branch();
        children[0] = Some(crate::node::Child::Inline(vec![0xc2, 0x20, 0x01].into()));
        let inner = Arc::new(Node::Branch { children, value: None });
        assert!(!inner.holds_leaves());
        inner
    }

    #[test]
    fn inner_tier_grows_with_what_it_holds_and_lends_the_rest() {
        let budget = 16u64 << 20;
        let cache = NodeCache::new(budget);
        let leafy = Arc::new(Node::Leaf { path: vec![1], value: Value::Raw(vec![1].into()) });
        // Few inner nodes: nearly the whole budget serves leaf data.
        for i in 0..200_000u32 {
            cache.insert(Loc { chunk: 2, offset: i * 8, len: 100 }, Arc::clone(&leafy), 9);
        }
        assert!(cache.lower.weight() > budget / 4 * 3, "lower tier held {}", cache.lower.weight());
        assert!(cache.weight() <= budget);
        // Many inner nodes, read or written: the tier grows to three quarters, no more.
        let inner = inner_node();
        for i in 0..100_000u32 {
            read_inner(&cache, Loc { chunk: 3, offset: i * 8, len: 100 }, &inner);
            cache.insert(Loc { chunk: 4, offset: i * 8, len: 100 }, Arc::clone(&inner), 2);
        }
        assert_eq!(cache.upper_capacity.load(Ordering::Relaxed), budget / 4 * 3);
        assert!(cache.upper.weight() > budget / 2, "upper tier held {}", cache.upper.weight());
        assert!(cache.weight() <= budget);
    }

    /// The part of the inner tier's capacity it does not hold serves the
    /// lower tier until the inner tier needs it, and the two never hold
    /// more than the budget, whichever fills first.
    #[test]
    fn the_lower_tier_borrows_what_the_inner_tier_does_not_hold() {
        let budget = 16u64 << 20;
        let cache = NodeCache::new(budget);
        let leafy = Arc::new(Node::Leaf { path: vec![1], value: Value::Raw(vec![1].into()) });
        let inner = inner_node();
        // Enough inner nodes to double the tier a few times, then leaf data.
        let mut next = 0u32;
        while cache.upper_capacity.load(Ordering::Relaxed) < 4 << 20 {
            cache.insert(Loc { chunk: 4, offset: next * 8, len: 100 }, Arc::clone(&inner), 2);
            next += 1;
        }
        let capacity = cache.upper_capacity.load(Ordering::Relaxed);
        for i in 0..400_000u32 {
            cache.insert(Loc { chunk: 2, offset: i * 8, len: 100 }, Arc::clone(&leafy), 9);
            assert!(cache.weight() <= budget, "{} after {i} leaves", cache.weight());
        }
        let unused = capacity - cache.upper.weight();
        assert!(unused > capacity / 4, "inner tier held {} of {capacity}", cache.upper.weight());
        assert!(
            cache.lower.weight() > budget - capacity + unused / 2,
            "lower tier held {} beside an inner tier of {capacity} holding {}",
            cache.lower.weight(),
            cache.upper.weight()
        );
        // The inner tier takes its capacity back as it fills.
        for _ in 0..40_000u32 {
            cache.insert(Loc { chunk: 4, offset: next * 8, len: 100 }, Arc::clone(&inner), 2);
            next += 1;
            assert!(cache.weight() <= budget, "{} with {next} inner nodes", cache.weight());
        }
        assert!(cache.upper.weight() > capacity / 2);
    }

    #[test]
    fn bottom_nodes_come_back_from_their_records_as_they_went_in() {
        let cache = NodeCache::new(8 << 20);
        let account = crate::node::AccountValue {
            nonce: 7,
            balance: alloy_primitives::U256::from(1234),
            code_hash: alloy_primitives::B256::repeat_byte(1),
            storage_bytes: 0,
            storage: None,
        };
        let leaf = Node::Leaf { path: vec![1, 2, 3], value: Value::Account(Box::new(account)) };
        let mut leaf_body = Vec::new();
        leaf.encode_body(&mut leaf_body);
        let mut children = empty_branch();
        children[3] = Some(crate::node::Child::embedded(
            alloy_primitives::B256::repeat_byte(9),
            &leaf,
            &leaf_body,
        ));
        children[5] = Some(crate::node::Child::Inline(vec![0xc2, 0x20, 0x01].into()));
        let bottom = Arc::new(Node::Branch { children, value: None });
        assert!(bottom.holds_leaves());
        let loc = Loc { chunk: 1, offset: 0, len: 100 };
        cache.insert(loc, Arc::clone(&bottom), 5);
        let back = cache.get(loc, 5).expect("cached");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        bottom.encode_body(&mut a);
        back.encode_body(&mut b);
        assert_eq!(a, b);
        let Node::Branch { children, .. } = &*back else { panic!("not a branch") };
        let Some(crate::node::Child::Embedded { body, .. }) = &children[3] else {
            panic!("embedded child lost")
        };
        let Node::Leaf { path, .. } = body.decode().expect("decodes") else { panic!("not a leaf") };
        assert_eq!(path, vec![1, 2, 3]);
    }
}
