//! Lookups: one key synchronously, or many keys with their reads overlapped
//! through the read engine (io_uring or the pread pool).
//!
//! A batch runs one small state machine per key. Each walks down through
//! cached and inline nodes until it needs a node from disk; then it parks on
//! that read. Up to `depth` reads are in flight; several keys waiting on the
//! same node share one read. When a read completes, its waiters resume with
//! the decoded node in hand, so a cache smaller than the batch still makes
//! progress.

use crate::io::{AlignedBuf, ReadQueue, ReadReq};
use crate::node::{Child, Node, StoredRef, Value};
use crate::store::{ChunkMap, Shared, decode_in_pages, page_span};
use crate::{Error, Result};
use alloy_primitives::map::HashMap;
use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// What a lookup is after.
#[derive(Clone)]
pub(crate) enum Target {
    /// The value under `key` in the trie it starts in.
    Value,
    /// An account, then the slot `slot_key` (nibbles of keccak(slot)) in its storage trie.
    Slot { slot_key: Vec<u8> },
}

struct Walk {
    index: usize,
    key: Vec<u8>,
    depth: usize,
    child: Child,
    target: Target,
    /// The trie being walked, for its top levels in a [`TopNodes`].
    trie: Trie,
    /// The pages of this walk's last read: a child written next to its
    /// parent (the bottom of a subtree is packed into one page) is decoded
    /// from them without another read.
    page: Option<(Arc<AlignedBuf>, u64)>,
}

impl Walk {
    fn new(index: usize, key: Vec<u8>, root: StoredRef, target: Target) -> Walk {
        Walk {
            index,
            key,
            depth: 0,
            child: Child::Stored(root),
            target,
            trie: Trie::First,
            page: None,
        }
    }

    /// A slot's walk goes on from its account into the account's storage
    /// trie, whose root is `storage`, for the slot's value.
    fn enter_storage(&mut self, storage: StoredRef) {
        if let Target::Slot { slot_key } = std::mem::replace(&mut self.target, Target::Value) {
            self.key = slot_key;
        }
        self.depth = 0;
        self.child = Child::Stored(storage);
        self.trie = Trie::Storage { root: storage.loc.key(), top: None };
    }
}

/// Which trie a walk is in, as far as a [`TopNodes`] is concerned.
#[derive(Clone, Copy)]
enum Trie {
    /// The trie it started in (a snapshot's account trie).
    First,
    /// A storage trie, by its root's location key, with the index of its
    /// top levels once found.
    Storage { root: u64, top: Option<usize> },
}

/// Depths of a trie whose nodes a [`TopNodes`] holds: 0 (the root) to 3.
const TOP_DEPTH: usize = 4;

/// Slots of the levels a [`TopNodes`] allocates up front (depths 0 to 2);
/// the last level's 4,096 slots come with its first node.
const EAGER_SLOTS: usize = 1 + 16 + 256;

/// The top of one snapshot's account trie (its root and the nodes at
/// depths 1 to 3: 4,369 slots), filled by the walks that pass through it,
/// and the same for the largest storage tries its slot lookups go into.
///
/// Every lookup walks these nodes. Through the node cache each level is a
/// shard lock, a hash probe and a reference count written, and both cores
/// write the same few cache lines (the root's above all) on every lookup.
/// Here a walk finds a top node by its path with one atomic load and
/// borrows it, writing nothing. A slot is keyed by the walk's path, which
/// names one node in one version of the trie, and is checked against the
/// node's location (unique for the life of the database), so a slot
/// can never serve a node that is not the child the walk holds. It pins
/// at most 4,369 inner nodes of the account trie (~6 MiB, nodes the
/// cache's inner tier holds anyway while they are current) for the
/// snapshot's life. Depth 3 was added for cold lookups at 10M accounts
/// (depths 0–4 inner, 5 the bottom): it takes one of the two cache probes a
/// lookup made before its read (benches/RESULTS.md). Its slots (~100 KiB)
/// are allocated on first use, so a snapshot taken for one RPC call costs
/// only the upper levels.
///
/// It also remembers the storage roots of the accounts its slot lookups
/// went through ([`STORAGE_ROOTS_MAX`] at most): the next slot of the same
/// account starts in its storage trie, without the account's walk (a key
/// hash and five to seven node probes). An ERC-20 block reads thousands of
/// slots of one account, whose storage trie is as deep as the account
/// trie (2.5M holders: depths 0–4 inner). So storage tries get top levels
/// too: the first [`STORAGE_TOPS_MAX`] tries walked with stored structure
/// below their root, for their branches that lead to other stored nodes,
/// and [`STORAGE_TOP_NODES_MAX`] nodes in all, which bounds what a
/// snapshot pins however many contracts it reads.
pub(crate) struct TopNodes {
    account: TopLevels,
    /// Storage roots by account key (packed nibbles).
    storage_roots: parking_lot::RwLock<HashMap<[u8; 32], StoredRef>>,
    /// Top levels of storage tries ([`STORAGE_TOPS_MAX`] cells).
    storage: OnceLock<Box<[OnceLock<StorageTop>]>>,
    /// Nodes the storage tries' top levels hold.
    storage_nodes: AtomicUsize,
}

/// The top levels (depths 0 to 3) of one trie: see [`TopNodes`].
struct TopLevels {
    /// Depths 0 to 2.
    upper: Box<[OnceLock<TopNode>]>,
    /// Depth 3.
    deep: OnceLock<Box<[OnceLock<TopNode>]>>,
}

/// Most storage roots a [`TopNodes`] remembers (~80 bytes each).
const STORAGE_ROOTS_MAX: usize = 1024;

/// Most storage tries with top levels in a [`TopNodes`] (~7 KiB each, and
/// ~100 KiB more for one whose depth 3 is used).
const STORAGE_TOPS_MAX: usize = 16;

/// Most nodes the storage tries' top levels of a [`TopNodes`] hold in all
/// (inner nodes: ~1 KiB each, shared with the cache while current).
const STORAGE_TOP_NODES_MAX: usize = 8192;

/// A 64-nibble key packed into bytes.
fn packed(key: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if key.len() != 64 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(key.chunks_exact(2)) {
        *byte = (pair[0] << 4) | (pair[1] & 0x0f);
    }
    Some(out)
}

/// A top node and its location key.
type TopNode = (u64, Arc<Node>);

/// A storage trie's top levels, with its root's location key.
type StorageTop = (u64, TopLevels);

impl TopLevels {
    fn new() -> Self {
        TopLevels {
            upper: (0..EAGER_SLOTS).map(|_| OnceLock::new()).collect(),
            deep: OnceLock::new(),
        }
    }

    /// Slots of the levels above `depth`: 16^0 + ... + 16^(depth - 1).
    fn level_start(depth: usize) -> usize {
        (0..depth).map(|level| 1 << (4 * level)).sum()
    }

    /// The slot of the node at `depth` on the path `key` (nibbles): its
    /// level's first slot plus the path's first `depth` nibbles in base 16.
    fn slot(key: &[u8], depth: usize) -> Option<usize> {
        if depth >= TOP_DEPTH {
            return None;
        }
        let path = key.get(..depth)?;
        let within = path
            .iter()
            .try_fold(0usize, |at, &nibble| (nibble < 16).then(|| at * 16 + usize::from(nibble)))?;
        Some(Self::level_start(depth) + within)
    }

    /// The cell of `slot`, if its level is allocated.
    fn cell(&self, slot: usize) -> Option<&OnceLock<TopNode>> {
        match slot.checked_sub(EAGER_SLOTS) {
            None => self.upper.get(slot),
            Some(at) => self.deep.get()?.get(at),
        }
    }

    fn get(&self, slot: usize, loc_key: u64) -> Option<&Arc<Node>> {
        let (key, node) = self.cell(slot)?.get()?;
        (*key == loc_key).then_some(node)
    }

    /// Slots filled.
    #[cfg(test)]
    fn held(&self) -> usize {
        let deep = self.deep.get().map_or(&[][..], |deep| &deep[..]);
        self.upper.iter().chain(deep).filter(|slot| slot.get().is_some()).count()
    }

    /// Keeps `node` in `slot`; whether the slot took it.
    fn offer(&self, slot: usize, loc_key: u64, node: &Arc<Node>) -> bool {
        if slot >= EAGER_SLOTS {
            self.deep.get_or_init(|| {
                (EAGER_SLOTS..Self::level_start(TOP_DEPTH)).map(|_| OnceLock::new()).collect()
            });
        }
        self.cell(slot).is_some_and(|cell| cell.set((loc_key, Arc::clone(node))).is_ok())
    }
}

impl TopNodes {
    pub fn new() -> Self {
        TopNodes {
            account: TopLevels::new(),
            storage_roots: parking_lot::RwLock::new(HashMap::default()),
            storage: OnceLock::new(),
            storage_nodes: AtomicUsize::new(0),
        }
    }

    /// The storage root of the account under `account_key`, if a walk
    /// of this snapshot has passed through it.
    fn storage_root(&self, account_key: &[u8]) -> Option<StoredRef> {
        self.storage_roots.read().get(&packed(account_key)?).copied()
    }

    fn offer_storage_root(&self, account_key: &[u8], root: StoredRef) {
        let Some(key) = packed(account_key) else { return };
        if self.storage_roots.read().contains_key(&key) {
            return;
        }
        let mut roots = self.storage_roots.write();
        if roots.len() < STORAGE_ROOTS_MAX {
            roots.insert(key, root);
        }
    }

    /// The top levels of `trie`: the first trie's, or a storage trie's
    /// once it has some (searched for until a walk finds them, then held
    /// by index in `trie`).
    fn levels(&self, trie: &mut Trie) -> Option<&TopLevels> {
        match trie {
            Trie::First => Some(&self.account),
            Trie::Storage { top: Some(index), .. } => Some(&self.storage.get()?[*index].get()?.1),
            Trie::Storage { root, top } => {
                let tops = self.storage.get()?;
                let index =
                    tops.iter().position(|cell| cell.get().is_some_and(|c| c.0 == *root))?;
                *top = Some(index);
                Some(&tops[index].get()?.1)
            }
        }
    }

    /// Top levels for the storage trie under `root` (a location key):
    /// its own if it has them, else new ones while there is room. Cells
    /// are claimed front to back, so a trie's own cell comes before the
    /// first free one.
    fn claim_storage_levels(&self, trie: &mut Trie) -> Option<&TopLevels> {
        let Trie::Storage { root, .. } = *trie else { return self.levels(trie) };
        let tops =
            self.storage.get_or_init(|| (0..STORAGE_TOPS_MAX).map(|_| OnceLock::new()).collect());
        for (index, cell) in tops.iter().enumerate() {
            let (owner, levels) = cell.get_or_init(|| (root, TopLevels::new()));
            if *owner == root {
                *trie = Trie::Storage { root, top: Some(index) };
                return Some(levels);
            }
        }
        None
    }

    /// Keeps `node`, walked at `depth` (slot `slot`) of `trie`'s top
    /// levels. A storage trie keeps only branches that lead to other
    /// stored nodes (its structure, not its bottom), within the nodes
    /// bound, and gets levels when such a branch is found below its root:
    /// a trie of a few hundred slots or more.
    fn offer(&self, trie: &mut Trie, depth: usize, slot: usize, loc_key: u64, node: &Arc<Node>) {
        if let Trie::First = trie {
            self.account.offer(slot, loc_key, node);
            return;
        }
        let structure = match &**node {
            Node::Branch { children, .. } => {
                children.iter().flatten().any(|child| matches!(child, Child::Stored(_)))
            }
            _ => false,
        };
        if !structure || self.storage_nodes.load(Ordering::Relaxed) >= STORAGE_TOP_NODES_MAX {
            return;
        }
        let levels = match depth {
            0 => self.levels(trie),
            _ => self.claim_storage_levels(trie),
        };
        if levels.is_some_and(|levels| levels.offer(slot, loc_key, node)) {
            self.storage_nodes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Slots filled in the first trie's top levels.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.account.held()
    }

    /// Slots filled in storage tries' top levels, and how many tries have them.
    #[cfg(test)]
    pub fn storage_held(&self) -> (usize, usize) {
        let tops = self.storage.get().map_or(&[][..], |tops| &tops[..]);
        let tries: Vec<&TopLevels> =
            tops.iter().filter_map(|cell| cell.get()).map(|c| &c.1).collect();
        (tries.iter().map(|levels| levels.held()).sum(), tries.len())
    }

    /// Storage roots remembered.
    #[cfg(test)]
    pub fn storage_roots_held(&self) -> usize {
        self.storage_roots.read().len()
    }
}

/// A node in hand: borrowed from a [`TopNodes`], or owned.
enum Held<'t> {
    Top(&'t Arc<Node>),
    Own(Arc<Node>),
}

impl Deref for Held<'_> {
    type Target = Node;

    fn deref(&self) -> &Node {
        match self {
            Held::Top(node) => node,
            Held::Own(node) => node,
        }
    }
}

enum Step {
    Done(Option<Value>),
    Need(StoredRef),
}

/// Nodes a batch read from disk, by location key (see [`get_many`]).
pub(crate) type Kept = HashMap<u64, Arc<Node>>;

/// Where a batch keeps the nodes it walks through.
pub(crate) struct Keeping<'k> {
    pub nodes: &'k mut Kept,
    /// Cache the nodes read from disk too. A commit's own prefetch does
    /// not (the commit replaces every one of them); a read-ahead for a
    /// later commit does, since execution may read them again first.
    pub cache: bool,
    /// Only the nodes are wanted, not the values (a commit's own
    /// read-ahead): a walk ends where its path goes into a subtree embedded
    /// in its parent's record, which it holds already. A slot's walk goes
    /// on through the account trie's embedded leaves, to the storage root.
    pub nodes_only: bool,
}

/// Walks from `walk.child` as far as the cache, inline nodes, the last pages
/// read and `given` allow.
fn advance(
    shared: &Shared,
    map: &ChunkMap,
    top: Option<&TopNodes>,
    walk: &mut Walk,
    mut given: Option<Arc<Node>>,
    mut keep: Option<&mut Keeping<'_>>,
) -> Result<Step> {
    // A slot of an account whose storage root this snapshot knows starts
    // in its storage trie.
    if let (Some(top), None, Target::Slot { .. }) = (top, &given, &walk.target)
        && matches!(walk.trie, Trie::First)
        && walk.depth == 0
        && let Some(storage) = top.storage_root(&walk.key)
    {
        walk.enter_storage(storage);
    }
    loop {
        if keep.as_ref().is_some_and(|k| k.nodes_only)
            && matches!(walk.target, Target::Value)
            && matches!(walk.child, Child::Embedded { .. } | Child::Inline(_))
        {
            return Ok(Step::Done(None));
        }
        // This child's slot in the top of its trie, if it has one.
        let top_slot = match (top, &walk.child) {
            (Some(top), Child::Stored(stored)) => {
                TopLevels::slot(&walk.key, walk.depth).map(|slot| (top, slot, stored.loc.key()))
            }
            _ => None,
        };
        let held = match given.take() {
            Some(node) => Held::Own(node),
            None => match top_slot.and_then(|(top, slot, key)| {
                top.levels(&mut walk.trie).and_then(|levels| levels.get(slot, key))
            }) {
                Some(node) => Held::Top(node),
                None => match node_of(shared, map, walk, keep.as_deref())? {
                    Ok(node) => Held::Own(node),
                    Err(stored) => return Ok(Step::Need(stored)),
                },
            },
        };
        if let (Some((top, slot, key)), Held::Own(node)) = (top_slot, &held) {
            top.offer(&mut walk.trie, walk.depth, slot, key, node);
        }
        if let (Some(keep), Child::Stored(stored)) = (keep.as_deref_mut(), &walk.child) {
            match &held {
                Held::Own(node) => {
                    keep.nodes.insert(stored.loc.key(), Arc::clone(node));
                }
                Held::Top(node) => {
                    keep.nodes.entry(stored.loc.key()).or_insert_with(|| Arc::clone(node));
                }
            }
        }
        let key = &walk.key[walk.depth..];
        let found = match &*held {
            Node::Leaf { path, value } => {
                if key != &path[..] {
                    return Ok(Step::Done(None));
                }
                value.clone()
            }
            Node::Extension { path, child } => {
                if !key.starts_with(path) {
                    return Ok(Step::Done(None));
                }
                walk.depth += path.len();
                walk.child = child.clone();
                continue;
            }
            Node::Branch { children, value } => match key.first() {
                None => match value {
                    Some(value) => value.clone(),
                    None => return Ok(Step::Done(None)),
                },
                Some(&nibble) => match &children[usize::from(nibble)] {
                    Some(child) => {
                        walk.depth += 1;
                        walk.child = child.clone();
                        continue;
                    }
                    None => return Ok(Step::Done(None)),
                },
            },
        };
        match (&walk.target, &found) {
            (Target::Slot { .. }, Value::Account(account)) => {
                let Some(storage) = account.storage else { return Ok(Step::Done(None)) };
                if let Some(top) = top
                    && matches!(walk.trie, Trie::First)
                {
                    top.offer_storage_root(&walk.key, storage);
                }
                walk.enter_storage(storage);
            }
            (Target::Slot { .. }, Value::Raw(_)) => {
                return Err(Error::InvalidValue("raw value in the account trie"));
            }
            (Target::Value, _) => return Ok(Step::Done(Some(found))),
        }
    }
}

/// The node `walk.child` names, from `keep`, the cache, the walk's last
/// pages or its own inline or embedded form; `Err` with the stored child
/// when it must be read.
fn node_of(
    shared: &Shared,
    map: &ChunkMap,
    walk: &Walk,
    keep: Option<&Keeping<'_>>,
) -> Result<std::result::Result<Arc<Node>, StoredRef>> {
    Ok(Ok(match &walk.child {
        Child::Stored(stored)
            if let Some(node) = keep.and_then(|k| k.nodes.get(&stored.loc.key())) =>
        {
            Arc::clone(node)
        }
        Child::Stored(stored) => match shared.cache.get(stored.loc, walk.depth) {
            Some(node) => {
                shared.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                node
            }
            None => {
                shared.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
                let offset = map.offset(stored.loc)?;
                match &walk.page {
                    Some((buf, start))
                        if offset >= *start
                            && offset + u64::from(stored.loc.len) <= start + buf.len() as u64 =>
                    {
                        let uncached = keep.is_some_and(|k| !k.cache);
                        decode(shared, stored.loc, buf, *start, offset, uncached)?
                    }
                    _ => return Ok(Err(*stored)),
                }
            }
        },
        Child::Inline(rlp) => Arc::new(Node::from_inline_rlp(rlp)?),
        Child::Embedded { body, .. } => Arc::new(body.decode()?),
        Child::Mem(_) => unreachable!("published tries hold no in-memory nodes"),
    }))
}

/// Decodes a node out of the pages read, caching it unless `uncached`:
/// nodes a commit's prefetch reads stay out of the cache, since the commit
/// replaces every one of them.
fn decode(
    shared: &Shared,
    loc: crate::node::Loc,
    buf: &[u8],
    start: u64,
    offset: u64,
    uncached: bool,
) -> Result<Arc<Node>> {
    match uncached {
        true => Ok(Arc::new(decode_in_pages(loc, buf, start, offset)?)),
        false => shared.decode_from_pages(loc, buf, start, offset),
    }
}

/// One lookup, reading synchronously (pread) on cache misses.
pub(crate) fn get(
    shared: &Shared,
    map: &ChunkMap,
    top: Option<&TopNodes>,
    root: Option<StoredRef>,
    key: Vec<u8>,
    target: Target,
) -> Result<Option<Value>> {
    let Some(root) = root else { return Ok(None) };
    let mut walk = Walk::new(0, key, root, target);
    let mut given = None;
    loop {
        match advance(shared, map, top, &mut walk, given.take(), None)? {
            Step::Done(value) => return Ok(value),
            Step::Need(stored) => {
                let offset = map.offset(stored.loc)?;
                let (start, len) = page_span(offset, stored.loc.len);
                let mut buf = AlignedBuf::new(len);
                shared.counters.device_read();
                shared
                    .storage
                    .read_at(&mut buf, start)
                    .map_err(|e| Error::io("reading a node", e))?;
                given = Some(shared.decode_from_pages(stored.loc, &buf, start, offset)?);
                walk.page = Some((Arc::new(buf), start));
            }
        }
    }
}

/// [`get`] without I/O: `None` when a node on the way is not cached. With
/// `keep`, the nodes walked are kept there too (and found there first).
pub(crate) fn get_cached(
    shared: &Shared,
    map: &ChunkMap,
    top: Option<&TopNodes>,
    root: Option<StoredRef>,
    key: Vec<u8>,
    target: Target,
    mut keep: Option<Keeping<'_>>,
) -> Result<Option<Option<Value>>> {
    let Some(root) = root else { return Ok(Some(None)) };
    let mut walk = Walk::new(0, key, root, target);
    match advance(shared, map, top, &mut walk, None, keep.as_mut())? {
        Step::Done(value) => Ok(Some(value)),
        Step::Need(_) => Ok(None),
    }
}

struct InFlight {
    stored: StoredRef,
    offset: u64,
    start: u64,
    waiters: Vec<Walk>,
}

/// Many lookups with up to `depth` reads in flight. With `keep`, every
/// stored node the walks pass through is also handed back there, and
/// nodes already there are not read again (a commit's prefetch keeps them
/// for the commit, whatever the cache evicts meanwhile).
pub(crate) fn get_many(
    shared: &Shared,
    map: &ChunkMap,
    top: Option<&TopNodes>,
    root: Option<StoredRef>,
    lookups: Vec<(Vec<u8>, Target)>,
    depth: usize,
    keep: Option<Keeping<'_>>,
) -> Result<Vec<Option<Value>>> {
    let mut results = vec![None; lookups.len()];
    get_stream(shared, map, top, root, lookups.into_iter(), depth, keep, |index, value| {
        results[index] = value;
    })?;
    Ok(results)
}

/// Walks started per read the queue can take: a walk that joins a read
/// already in flight (its node shared with another key's path) takes no
/// slot of the queue, so the walks in progress are bounded separately.
const WALKS_PER_DEPTH: usize = 8;

/// Lookups pulled from `lookups` as the queue has room, each result handed
/// to `sink` with its index in the stream as soon as it is known (in no
/// particular order), with up to `depth` reads in flight throughout.
///
/// A fixed batch drains at its end: its last reads run with the queue
/// emptying, and the slowest of them (a device's p99.9 is ten times its
/// median) holds the whole batch. A stream starts the next lookup the
/// moment a read slot frees, so the device sees `depth` reads until the
/// iterator ends. At most `WALKS_PER_DEPTH × depth` walks are in progress.
#[allow(clippy::too_many_arguments)]
pub(crate) fn get_stream(
    shared: &Shared,
    map: &ChunkMap,
    top: Option<&TopNodes>,
    root: Option<StoredRef>,
    lookups: impl Iterator<Item = (Vec<u8>, Target)>,
    depth: usize,
    mut keep: Option<Keeping<'_>>,
    mut sink: impl FnMut(usize, Option<Value>),
) -> Result<()> {
    let Some(root) = root else {
        lookups.enumerate().for_each(|(index, _)| sink(index, None));
        return Ok(());
    };
    let mut lookups = lookups.enumerate();
    let mut ready: VecDeque<(Walk, Option<Arc<Node>>)> = VecDeque::new();
    shared.engine.with_queue(depth, |queue: &mut dyn ReadQueue| {
        let mut in_flight: HashMap<u64, InFlight> = HashMap::default();
        // Walks whose read could not be queued yet (queue full).
        let mut blocked: VecDeque<(Walk, StoredRef)> = VecDeque::new();
        let mut failure: Option<Error> = None;
        // Walks started and not finished, and how many may be (the queue's
        // depth is the one asked for, bounded by the engine's).
        let mut walking = 0usize;
        let walks_max = queue.depth().saturating_mul(WALKS_PER_DEPTH);
        let mut drained = false;
        loop {
            // Resume the walks whose reads finished, then queue reads, and
            // start new walks while the queue has room for their reads.
            loop {
                while failure.is_none()
                    && let Some((mut walk, given)) = ready.pop_front()
                {
                    match advance(shared, map, top, &mut walk, given, keep.as_mut()) {
                        Ok(Step::Done(value)) => {
                            walking -= 1;
                            sink(walk.index, value);
                        }
                        Ok(Step::Need(stored)) => match in_flight.get_mut(&stored.loc.key()) {
                            Some(read) => read.waiters.push(walk),
                            None => blocked.push_back((walk, stored)),
                        },
                        Err(err) => failure = Some(err),
                    }
                }
                while failure.is_none() && queue.in_flight() < queue.depth() {
                    let Some((walk, stored)) = blocked.pop_front() else { break };
                    let key = stored.loc.key();
                    if let Some(read) = in_flight.get_mut(&key) {
                        read.waiters.push(walk);
                        continue;
                    }
                    match submit_read(shared, map, queue, stored) {
                        Ok((offset, start)) => {
                            let read = InFlight { stored, offset, start, waiters: vec![walk] };
                            in_flight.insert(key, read);
                        }
                        Err(err) => failure = Some(err),
                    }
                }
                if failure.is_some()
                    || drained
                    || queue.in_flight() >= queue.depth()
                    || walking >= walks_max
                {
                    break;
                }
                match lookups.next() {
                    Some((index, (key, target))) => {
                        walking += 1;
                        ready.push_back((Walk::new(index, key, root, target), None));
                    }
                    None => drained = true,
                }
            }
            if queue.in_flight() == 0 {
                break;
            }
            let done = queue.wait();
            let Some(read) = in_flight.remove(&done.token) else { continue };
            if failure.is_some() {
                continue;
            }
            let node = done.result.map_err(|e| Error::io("reading a node", e)).and_then(|()| {
                let (loc, start, offset) = (read.stored.loc, read.start, read.offset);
                let uncached = keep.as_ref().is_some_and(|k| !k.cache);
                decode(shared, loc, &done.buf, start, offset, uncached)
            });
            match node {
                Ok(node) => {
                    let page = Arc::new(done.buf);
                    for mut walk in read.waiters {
                        walk.page = Some((Arc::clone(&page), read.start));
                        ready.push_back((walk, Some(Arc::clone(&node))));
                    }
                }
                Err(err) => failure = Some(err),
            }
        }
        match failure {
            Some(err) => Err(err),
            None => {
                debug_assert!(blocked.is_empty() && ready.is_empty() && walking == 0);
                Ok(())
            }
        }
    })
}

/// Queues the read of the pages holding `stored` (token: its location
/// key); returns the node's offset and that of its first page.
fn submit_read(
    shared: &Shared,
    map: &ChunkMap,
    queue: &mut dyn ReadQueue,
    stored: StoredRef,
) -> Result<(u64, u64)> {
    let offset = map.offset(stored.loc)?;
    let (start, len) = page_span(offset, stored.loc.len);
    let req = ReadReq { token: stored.loc.key(), offset: start, buf: AlignedBuf::new(len) };
    shared.counters.device_read();
    queue.submit(req).map_err(|(_, err)| Error::io("queueing a read", err))?;
    Ok((offset, start))
}

/// Reads the nodes `refs`, with up to `depth` reads in flight, into `keep`
/// (not the cache: compaction moves every node it reads ahead). Compaction
/// reads a branch's children this way before it visits them.
pub(crate) fn read_nodes(
    shared: &Shared,
    map: &ChunkMap,
    refs: &[StoredRef],
    depth: usize,
    keep: &mut Kept,
) -> Result<()> {
    let mut pending = refs.iter();
    shared.engine.with_queue(depth, |queue: &mut dyn ReadQueue| {
        // (ref, offset of the node, offset of its first page)
        let mut in_flight: HashMap<u64, (StoredRef, u64, u64)> = HashMap::default();
        let mut failure: Option<Error> = None;
        loop {
            while failure.is_none() && queue.in_flight() < queue.depth() {
                let Some(&stored) = pending.next() else { break };
                let key = stored.loc.key();
                if in_flight.contains_key(&key) || keep.contains_key(&key) {
                    continue;
                }
                match submit_read(shared, map, queue, stored) {
                    Ok((offset, start)) => {
                        in_flight.insert(key, (stored, offset, start));
                    }
                    Err(err) => failure = Some(err),
                }
            }
            if queue.in_flight() == 0 {
                break;
            }
            let done = queue.wait();
            let Some((stored, offset, start)) = in_flight.remove(&done.token) else {
                continue;
            };
            if failure.is_some() {
                continue;
            }
            let node = done
                .result
                .map_err(|e| Error::io("reading a node", e))
                .and_then(|()| decode_in_pages(stored.loc, &done.buf, start, offset));
            match node {
                Ok(node) => {
                    keep.insert(stored.loc.key(), Arc::new(node));
                }
                Err(err) => failure = Some(err),
            }
        }
        failure.map_or(Ok(()), Err)
    })
}

/// Ethereum RLP of every hashed node on the path to `key` (an EIP-1186 proof
/// for one trie), and the value found.
pub(crate) fn proof(
    shared: &Shared,
    map: &ChunkMap,
    root: Option<StoredRef>,
    key: &[u8],
) -> Result<(Vec<alloy_primitives::Bytes>, Option<Value>)> {
    let mut nodes = Vec::new();
    let Some(root) = root else {
        return Ok((nodes, None));
    };
    let mut child = Child::Stored(root);
    let mut depth = 0;
    loop {
        let node = shared.load(map, &child, depth)?;
        if let Child::Stored(_) | Child::Embedded { .. } = child {
            nodes.push(node.ethereum_rlp().into());
        }
        let rest = &key[depth..];
        match &*node {
            Node::Leaf { path, value } => {
                let found = (rest == &path[..]).then(|| value.clone());
                return Ok((nodes, found));
            }
            Node::Extension { path, child: next } => {
                if !rest.starts_with(path) {
                    return Ok((nodes, None));
                }
                depth += path.len();
                child = next.clone();
            }
            Node::Branch { children, value } => {
                let Some(&nibble) = rest.first() else {
                    return Ok((nodes, value.clone()));
                };
                match &children[usize::from(nibble)] {
                    Some(next) => {
                        depth += 1;
                        child = next.clone();
                    }
                    None => return Ok((nodes, None)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every node of the top levels has a slot of its own, in range, that
    /// keeps what is offered to it (the lazily allocated deepest level
    /// too); deeper nodes and paths with a nibble out of range have none.
    #[test]
    fn top_slots_are_distinct_and_in_range() {
        let top = TopLevels::new();
        assert_eq!(EAGER_SLOTS, TopLevels::level_start(TOP_DEPTH - 1));
        let slots = TopLevels::level_start(TOP_DEPTH);
        let mut seen = std::collections::HashSet::new();
        for depth in 0..TOP_DEPTH {
            for path in 0..1usize << (4 * depth) {
                let key: Vec<u8> =
                    (0..depth).rev().map(|i| ((path >> (4 * i)) & 15) as u8).collect();
                let slot = TopLevels::slot(&key, depth).unwrap();
                assert!(slot < slots);
                assert!(seen.insert(slot), "depth {depth}, path {key:?}");
            }
        }
        assert_eq!(seen.len(), slots);
        assert_eq!(top.held(), 0);
        let node = Arc::new(Node::Leaf { path: vec![1], value: Value::Raw(Box::new([7])) });
        for slot in [0, EAGER_SLOTS - 1, EAGER_SLOTS, slots - 1] {
            assert!(top.get(slot, 40 + slot as u64).is_none());
            assert!(top.offer(slot, 40 + slot as u64, &node));
            assert!(Arc::ptr_eq(top.get(slot, 40 + slot as u64).unwrap(), &node), "slot {slot}");
            assert!(top.get(slot, 41 + slot as u64).is_none(), "slot {slot}: another location");
        }
        assert_eq!(top.held(), 4);
        assert_eq!(TopLevels::slot(&[1, 2, 3], TOP_DEPTH), None);
        assert_eq!(TopLevels::slot(&[1, 16], 2), None);
        assert_eq!(TopLevels::slot(&[1], 2), None);
    }
}
