//! Applying a batch of sorted updates to a trie, compaction, and sealing
//! (hashing + writing) the new nodes.
//!
//! A commit walks down from the old root only along the paths of the keys it
//! changes. Untouched subtrees keep their on-disk references (hash and
//! location), so the new version shares them with the old one
//! (copy-on-write). Changed nodes are rebuilt in memory as [`Child::Mem`] and
//! then sealed bottom-up: each is RLP-encoded and hashed, and the ones of 32
//! bytes or more are appended to the file in post-order (children before
//! parents, so a bottom branch and its leaves tend to share a page).
//!
//! Compaction rides along: every node of the new version that lives in a
//! chunk below the compaction floor is copied forward. `min_chunk` in each
//! reference says whether a subtree holds such nodes, so only those subtrees
//! are visited.

use crate::db::FRESH_CACHE_DEPTH;
use crate::io::{AlignedBuf, ReadQueue, ReadReq};
use crate::node::{
    AccountValue, Child, EMBED_MAX_BYTES, Loc, Node, StoredRef, Value, empty_branch, node_weight,
    rlp_hash,
};
use crate::store::{ChunkMap, Shared, WriterState, record_weight};
use crate::{AccountUpdate, Error, Result};
use alloy_primitives::map::HashMap;
use alloy_primitives::{B256, U256, keccak256};
use std::borrow::Cow;
use std::sync::Arc;

/// What one update does to the value under its key.
pub(crate) enum LeafChange {
    Same,
    Set(Value),
    Delete,
}

/// One key's update. Implemented for each kind of trie.
pub(crate) trait LeafOp {
    fn apply(&self, ctx: &mut CommitCtx<'_>, old: Option<&Value>) -> Result<LeafChange>;
}

/// Raw mode and code: `Some(bytes)` sets, `None` deletes.
pub(crate) struct RawOp<'a>(pub Option<&'a [u8]>);

impl LeafOp for RawOp<'_> {
    fn apply(&self, _ctx: &mut CommitCtx<'_>, old: Option<&Value>) -> Result<LeafChange> {
        Ok(match (self.0, old) {
            (None, None) => LeafChange::Same,
            (None, Some(_)) => LeafChange::Delete,
            (Some(new), Some(Value::Raw(old))) if **old == *new => LeafChange::Same,
            (Some(new), _) => LeafChange::Set(Value::Raw(new.into())),
        })
    }
}

/// A storage slot write; zero deletes.
pub(crate) struct SlotOp(pub U256);

impl LeafOp for SlotOp {
    fn apply(&self, _ctx: &mut CommitCtx<'_>, old: Option<&Value>) -> Result<LeafChange> {
        if self.0.is_zero() {
            return Ok(if old.is_some() { LeafChange::Delete } else { LeafChange::Same });
        }
        let encoded = crate::node::storage_value_rlp(self.0);
        Ok(match old {
            Some(Value::Raw(old)) if *old == encoded => LeafChange::Same,
            _ => LeafChange::Set(Value::Raw(encoded)),
        })
    }
}

/// An account update, storage included.
#[derive(Clone, Copy)]
pub(crate) struct AccountOp<'a>(pub &'a AccountUpdate);

impl LeafOp for AccountOp<'_> {
    fn apply(&self, ctx: &mut CommitCtx<'_>, old: Option<&Value>) -> Result<LeafChange> {
        let old = match old {
            None => None,
            Some(Value::Account(account)) => Some(&**account),
            Some(Value::Raw(_)) => {
                return Err(Error::InvalidValue("raw value in the account trie"));
            }
        };
        match self.0 {
            AccountUpdate::Delete => Ok(match old {
                None => LeafChange::Same,
                Some(account) => {
                    ctx.removed_bytes += account.storage_bytes;
                    LeafChange::Delete
                }
            }),
            AccountUpdate::Set { info, wipe_storage, storage } => {
                let (base_root, base_bytes) = match old {
                    Some(account) if !wipe_storage => (account.storage, account.storage_bytes),
                    Some(account) => {
                        ctx.removed_bytes += account.storage_bytes;
                        (None, 0)
                    }
                    None => (None, 0),
                };
                let (storage_root, storage_bytes) = if storage.is_empty() {
                    (base_root, base_bytes)
                } else {
                    let ops: Vec<(Vec<u8>, SlotOp)> = sorted_ops(
                        storage.iter().map(|(slot, value)| (keccak256(slot).0, SlotOp(*value))),
                    );
                    let (added, removed) = (ctx.added_bytes, ctx.removed_bytes);
                    let root = ctx.update_root(base_root, &ops)?;
                    let bytes =
                        base_bytes + (ctx.added_bytes - added) - (ctx.removed_bytes - removed);
                    (root, bytes)
                };
                let new = AccountValue {
                    nonce: info.nonce,
                    balance: info.balance,
                    code_hash: info.code_hash,
                    storage_bytes,
                    storage: storage_root,
                };
                Ok(match old {
                    Some(old) if *old == new => LeafChange::Same,
                    _ => LeafChange::Set(Value::Account(Box::new(new))),
                })
            }
        }
    }
}

/// Turns hashed keys into sorted nibble keys (a later duplicate wins).
pub(crate) fn sorted_ops<O>(items: impl Iterator<Item = ([u8; 32], O)>) -> Vec<(Vec<u8>, O)> {
    to_nibble_ops(sorted_hashed(items))
}

/// Sorts hashed keys, keeping the later of two equal ones.
pub(crate) fn sorted_hashed<O>(items: impl Iterator<Item = ([u8; 32], O)>) -> Vec<([u8; 32], O)> {
    let mut items: Vec<([u8; 32], O)> = items.collect();
    // Stable, so that among equal keys the later one stays last.
    items.sort_by_key(|item| item.0);
    items.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    items
}

/// Expands hashed keys into the nibble keys the trie walk uses (64 bytes
/// each, so a large batch converts one wave at a time).
pub(crate) fn to_nibble_ops<O>(
    items: impl IntoIterator<Item = ([u8; 32], O)>,
) -> Vec<(Vec<u8>, O)> {
    items.into_iter().map(|(k, op)| (crate::node::nibbles(&k), op)).collect()
}

enum Outcome {
    Unchanged,
    Replaced(Option<Node>),
}

/// One commit in progress.
pub(crate) struct CommitCtx<'a> {
    pub shared: &'a Shared,
    pub map: Arc<ChunkMap>,
    /// Logical chunk and offset where this commit's writes begin: a node at
    /// or after it was written by this commit and is not readable through
    /// `map` yet.
    pub durable_head: (u32, u32),
    pub writer: &'a mut WriterState,
    /// Nodes of the new version below this chunk are copied forward.
    pub compact_below: u32,
    pub added_bytes: u64,
    pub removed_bytes: u64,
    /// Location keys of the stored nodes the new version no longer refers
    /// to (changed or moved), to evict from the cache later.
    pub replaced: Vec<u64>,
    pub nodes_compacted: u64,
    /// Bytes of nodes compaction wrote (moved, not changed).
    pub moved_bytes: u64,
    /// Freshly written nodes to cache once the commit is durable.
    pub fresh: Vec<(Loc, Fresh)>,
    /// Cache fresh nodes this close to a root (the always-hot upper levels).
    pub fresh_depth: usize,
    /// Keep fresh bottom nodes decoded, not as records (the cache has room).
    pub fresh_decoded: bool,
    /// Bytes (as the cache weighs them) of fresh nodes below the upper
    /// levels this commit may keep: they are held until the commit is
    /// durable, so a large commit into a cache with room must not hold more
    /// than the cache could take.
    pub fresh_budget: u64,
    /// Bytes of fresh nodes kept below the upper levels so far.
    pub fresh_bytes: u64,
    /// Segments of old chunks read for compaction.
    pub segments: HashMap<(u32, u32), AlignedBuf>,
    /// Segment buffers to read into again.
    pub spare_segments: Vec<AlignedBuf>,
    pub scratch: Vec<u8>,
    /// The Ethereum RLP of the node being sealed (reused, as `scratch`).
    pub rlp_scratch: Vec<u8>,
    /// Nodes the prefetch read, by location key.
    pub prefetched: crate::read::Kept,
}

/// A commit in waves (one per first byte of the key) keeps the nodes above
/// this depth in memory between waves and writes everything below.
const WAVE_KEEP_DEPTH: usize = 2;

/// What [`CommitCtx::read_compaction_ahead`] found in one level.
#[derive(Default)]
struct Found {
    /// Nodes at hand, to look into.
    ready: Vec<(Arc<Node>, usize)>,
    /// Nodes above the floor to read (a page each).
    wanted: Vec<(StoredRef, usize)>,
    /// Nodes below the floor, in segments to read.
    below: Vec<(StoredRef, usize)>,
    /// Segments to read.
    segments: Vec<(u32, u32)>,
}

/// The segment (chunk, index) that holds the start of `loc`.
fn segment_of(loc: Loc) -> (u32, u32) {
    (loc.chunk, loc.offset / SEGMENT_BYTES)
}

/// Decodes the node at `loc` out of the segment buffer that holds it.
fn decode_in_segment(loc: Loc, segment: &[u8]) -> Result<Node> {
    let at = (loc.offset % SEGMENT_BYTES) as usize;
    Node::decode(loc, &segment[at..at + loc.len as usize])
}

/// Whether the node at `loc` runs past the end of its segment.
fn straddles_segments(loc: Loc) -> bool {
    let end = u64::from(loc.offset) + u64::from(loc.len);
    end > (u64::from(loc.offset / SEGMENT_BYTES) + 1) * u64::from(SEGMENT_BYTES)
}

/// Most nodes (and segments) one compaction reads ahead (see `read_compaction_ahead`);
/// past it, the rest are read as compaction reaches them.
const COMPACTION_READ_AHEAD_MAX: usize = 1 << 16;

/// Compaction reads old chunks in segments of this size.
const SEGMENT_BYTES: u32 = 256 << 10;
/// At most this many segments (64 MiB) are held at once.
const MAX_SEGMENTS: usize = 256;

impl CommitCtx<'_> {
    /// Applies `ops` (sorted, unique nibble keys) to the trie under `root`,
    /// compacts it, writes it, and returns the new root reference.
    pub fn update_root<O: LeafOp>(
        &mut self,
        root: Option<StoredRef>,
        ops: &[(Vec<u8>, O)],
    ) -> Result<Option<StoredRef>> {
        let old = root.map(Child::Stored);
        let new = match self.update(old.as_ref(), 0, ops)? {
            Outcome::Unchanged => old,
            Outcome::Replaced(node) => node.map(|n| Child::Mem(Box::new(n))),
        };
        self.finish_root(new)
    }

    /// [`update_root`](Self::update_root) for a large sorted batch given as
    /// `waves` (consecutive runs of the ops, in order). `before` runs ahead
    /// of each wave (the caller prefetches its paths there). After each wave
    /// the root's children are compacted and written, so the in-memory tree
    /// never holds more than about one wave.
    pub fn update_root_in_waves<O: LeafOp>(
        &mut self,
        root: Option<StoredRef>,
        waves: impl Iterator<Item = Vec<(Vec<u8>, O)>>,
        mut before: impl FnMut(&mut Self, &[(Vec<u8>, O)]) -> Result<()>,
    ) -> Result<Option<StoredRef>> {
        let mut current = root.map(Child::Stored);
        for wave in waves {
            before(self, &wave)?;
            if let Outcome::Replaced(node) = self.update(current.as_ref(), 0, &wave)? {
                current = node.map(|n| Child::Mem(Box::new(n)));
            }
            if let Some(child) = current.as_mut() {
                self.seal_below(child, 0, WAVE_KEEP_DEPTH)?;
            }
        }
        self.prefetched = crate::read::Kept::default();
        self.finish_root(current)
    }

    /// Compacts and writes every `Mem` subtree that starts `keep` nibbles or
    /// more below the root, keeping the few nodes above in memory (the
    /// next waves pass through them).
    ///
    /// Only `Mem` subtrees, the ones this wave built: a stored subtree
    /// there belongs to a later wave (or to none), which must find it where
    /// the previous version left it. Compacting it now would move nodes
    /// that the later wave then reads, and only the few near the root stay
    /// in memory; `finish_root` compacts what no wave touched.
    fn seal_below(&mut self, child: &mut Child, depth: usize, keep: usize) -> Result<()> {
        let Child::Mem(node) = child else { return Ok(()) };
        let visit = |ctx: &mut Self, c: &mut Child, d: usize| {
            if d >= keep {
                if !matches!(c, Child::Mem(_)) {
                    return Ok(());
                }
                ctx.compact_tree(c, d)?;
                ctx.seal_in_place(c, d)
            } else {
                ctx.seal_below(c, d, keep)
            }
        };
        match &mut **node {
            Node::Leaf { .. } => Ok(()),
            Node::Extension { path, child } => visit(self, child, depth + path.len()),
            Node::Branch { children, .. } => {
                children.iter_mut().flatten().try_for_each(|c| visit(self, c, depth + 1))
            }
        }
    }

    /// Compacts and writes a new root.
    fn finish_root(&mut self, new: Option<Child>) -> Result<Option<StoredRef>> {
        let Some(mut child) = new else { return Ok(None) };
        self.compact_tree(&mut child, 0)?;
        match self.seal(child, 0, true)? {
            Child::Stored(stored) => Ok(Some(stored)),
            _ => unreachable!("roots are always stored"),
        }
    }

    fn load(&mut self, child: &Child, depth: usize) -> Result<Node> {
        match child {
            Child::Mem(node) => Ok((**node).clone()),
            Child::Embedded { body, .. } => body.decode(),
            Child::Stored(stored) if self.written_by_this_commit(stored.loc) => {
                // Only a commit in waves reaches nodes it wrote itself: a
                // branch near the root that deletions collapse loads its
                // last child, written by an earlier wave. Such nodes sit
                // within `fresh_depth` of the root and are still in `fresh`.
                let gone = Error::InvalidValue("a node this commit wrote is no longer in memory");
                match self.fresh.iter().rev().find(|(loc, _)| *loc == stored.loc) {
                    Some((_, Fresh::Node(node))) => Ok((**node).clone()),
                    Some((_, Fresh::Record(record))) => Node::decode_record(record).ok_or(gone),
                    None => Err(gone),
                }
            }
            Child::Stored(stored) if let Some(node) = self.take_prefetched(stored.loc) => Ok(node),
            other => Ok((*self.shared.load(&self.map, other, depth)?).clone()),
        }
    }

    /// Takes a node out of what the prefetch read. A commit visits each
    /// stored node once, so it is moved out rather than copied: a node the
    /// cache does not also hold (most bottom nodes of a cold read) is then
    /// neither cloned nor freed twice.
    fn take_prefetched(&mut self, loc: Loc) -> Option<Node> {
        let node = self.prefetched.remove(&loc.key())?;
        Some(Arc::try_unwrap(node).unwrap_or_else(|shared| (*shared).clone()))
    }

    fn written_by_this_commit(&self, loc: Loc) -> bool {
        let (chunk, offset) = self.durable_head;
        loc.chunk > chunk || (loc.chunk == chunk && loc.offset >= offset)
    }

    /// Loads a node that compaction is about to copy forward. Old chunks are
    /// read in large segments, since compaction visits most of their nodes.
    fn load_old(&mut self, stored: &StoredRef, depth: usize) -> Result<Node> {
        if let Some(node) = self.shared.cache.get(stored.loc, depth) {
            return Ok((*node).clone());
        }
        let loc = stored.loc;
        // Read ahead (`read_compaction_ahead`, `read_children_ahead`).
        if let Some(node) = self.take_prefetched(loc) {
            return Ok(node);
        }
        if loc.chunk >= self.compact_below || straddles_segments(loc) {
            // An ancestor of moved nodes, above the floor: one page rather
            // than 256 KiB around it. Or a very large node: read alone.
            return self.load(&Child::Stored(*stored), depth);
        }
        let key = segment_of(loc);
        if !self.segments.contains_key(&key) {
            if self.segments.len() >= MAX_SEGMENTS {
                self.spare_segments.extend(self.segments.drain().map(|(_, buf)| buf));
            }
            let offset = self.segment_offset(key)?;
            let mut buf = self.segment_buf();
            self.shared
                .storage
                .read_at(&mut buf, offset)
                .map_err(|e| Error::io("reading a chunk for compaction", e))?;
            self.shared.counters.device_read();
            self.segments.insert(key, buf);
        }
        decode_in_segment(loc, &self.segments[&key])
    }

    /// Where segment `key` of an old chunk starts on the device.
    fn segment_offset(&self, (chunk, segment): (u32, u32)) -> Result<u64> {
        self.map.offset(Loc { chunk, offset: segment * SEGMENT_BYTES, len: 0 })
    }

    /// A buffer for one segment. Reused: a fresh 256 KiB buffer costs a
    /// zeroing and page faults.
    fn segment_buf(&mut self) -> AlignedBuf {
        self.spare_segments.pop().unwrap_or_else(|| AlignedBuf::new(SEGMENT_BYTES as usize))
    }

    fn replaced(&mut self, child: &Child) {
        if let Child::Stored(stored) = child {
            self.removed_bytes += u64::from(stored.loc.len);
            self.replaced.push(stored.loc.key());
        }
    }

    fn update<O: LeafOp>(
        &mut self,
        child: Option<&Child>,
        depth: usize,
        ops: &[(Vec<u8>, O)],
    ) -> Result<Outcome> {
        if ops.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        let Some(child) = child else {
            let mut items = Vec::with_capacity(ops.len());
            for (key, op) in ops {
                if let LeafChange::Set(value) = op.apply(self, None)? {
                    items.push((key.clone(), value));
                }
            }
            return Ok(if items.is_empty() {
                Outcome::Unchanged
            } else {
                Outcome::Replaced(build(depth, &mut items))
            });
        };
        let node = self.load(child, depth)?;
        let outcome = match node {
            Node::Leaf { path, value } => self.update_leaf(depth, path, value, ops)?,
            Node::Extension { path, child: next } => {
                let k = ops
                    .iter()
                    .map(|(key, _)| common_prefix(&path, &key[depth..]))
                    .min()
                    .unwrap_or(0);
                if k == path.len() {
                    match self.update(Some(&next), depth + k, ops)? {
                        Outcome::Unchanged => Outcome::Unchanged,
                        Outcome::Replaced(new) => Outcome::Replaced(prefix_with(&path, new)),
                    }
                } else {
                    // Some key leaves the extension: split it at nibble k.
                    let mut children = empty_branch();
                    let rest = &path[k + 1..];
                    children[usize::from(path[k])] = Some(if rest.is_empty() {
                        next
                    } else {
                        Child::Mem(Box::new(Node::Extension { path: rest.to_vec(), child: next }))
                    });
                    match self.update_branch(depth + k, children, None, ops)? {
                        Outcome::Unchanged => Outcome::Unchanged,
                        Outcome::Replaced(new) => Outcome::Replaced(prefix_with(&path[..k], new)),
                    }
                }
            }
            Node::Branch { children, value } => self.update_branch(depth, children, value, ops)?,
        };
        if let Outcome::Replaced(_) = outcome {
            self.replaced(child);
        }
        Ok(outcome)
    }

    fn update_leaf<O: LeafOp>(
        &mut self,
        depth: usize,
        path: Vec<u8>,
        value: Value,
        ops: &[(Vec<u8>, O)],
    ) -> Result<Outcome> {
        let mut items = Vec::with_capacity(ops.len() + 1);
        let mut changed = false;
        let mut leaf_seen = false;
        for (key, op) in ops {
            if key[depth..] == path[..] {
                leaf_seen = true;
                match op.apply(self, Some(&value))? {
                    LeafChange::Same => items.push((key.clone(), value.clone())),
                    LeafChange::Set(new) => {
                        changed = true;
                        items.push((key.clone(), new));
                    }
                    LeafChange::Delete => changed = true,
                }
            } else if let LeafChange::Set(new) = op.apply(self, None)? {
                changed = true;
                items.push((key.clone(), new));
            }
        }
        if !changed {
            return Ok(Outcome::Unchanged);
        }
        if !leaf_seen {
            let mut key = ops[0].0[..depth].to_vec();
            key.extend_from_slice(&path);
            items.push((key, value));
            items.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Ok(Outcome::Replaced(build(depth, &mut items)))
    }

    fn update_branch<O: LeafOp>(
        &mut self,
        depth: usize,
        mut children: Box<[Option<Child>; 16]>,
        mut value: Option<Value>,
        ops: &[(Vec<u8>, O)],
    ) -> Result<Outcome> {
        let mut changed = false;
        let mut rest = ops;
        if let Some((key, op)) = rest.first()
            && key.len() == depth
        {
            match op.apply(self, value.as_ref())? {
                LeafChange::Same => {}
                LeafChange::Set(new) => {
                    changed = true;
                    value = Some(new);
                }
                LeafChange::Delete => {
                    changed = true;
                    value = None;
                }
            }
            rest = &rest[1..];
        }
        while let Some((key, _)) = rest.first() {
            let nibble = key[depth];
            let end = rest.iter().position(|(k, _)| k[depth] != nibble).unwrap_or(rest.len());
            let (group, tail) = rest.split_at(end);
            rest = tail;
            let slot = &mut children[usize::from(nibble)];
            match self.update(slot.as_ref(), depth + 1, group)? {
                Outcome::Unchanged => {}
                Outcome::Replaced(new) => {
                    changed = true;
                    *slot = new.map(|n| Child::Mem(Box::new(n)));
                }
            }
        }
        if !changed {
            return Ok(Outcome::Unchanged);
        }
        let count = Node::child_count(&children);
        Ok(Outcome::Replaced(match (count, value) {
            (0, None) => None,
            (0, Some(value)) => Some(Node::Leaf { path: Vec::new(), value }),
            (1, None) => {
                let (nibble, only) = children
                    .iter_mut()
                    .enumerate()
                    .find_map(|(i, c)| c.take().map(|c| (i as u8, c)))
                    .expect("one child");
                Some(self.collapse(nibble, only, depth + 1)?)
            }
            (_, value) => Some(Node::Branch { children, value }),
        }))
    }

    /// A branch left with one child and no value merges into that child.
    fn collapse(&mut self, nibble: u8, only: Child, depth: usize) -> Result<Node> {
        let node = self.load(&only, depth)?;
        Ok(match node {
            Node::Leaf { path, value } => {
                self.replaced(&only);
                Node::Leaf { path: prepend(nibble, &path), value }
            }
            Node::Extension { path, child } => {
                self.replaced(&only);
                Node::Extension { path: prepend(nibble, &path), child }
            }
            Node::Branch { .. } => Node::Extension { path: vec![nibble], child: only },
        })
    }

    /// Copies every node of the new version that lives below `compact_below`
    /// forward, with every ancestor of such a node (it holds their
    /// locations). Moving a node changes locations only, never content, so a
    /// moved node keeps its hash: nothing is re-encoded as RLP or re-hashed.
    /// Each moved node is written as soon as its children are, so only the
    /// path being visited is held in memory, however much is moved.
    fn compact(&mut self, child: &mut Child, depth: usize) -> Result<()> {
        match child {
            Child::Stored(stored) => {
                if stored.min_chunk >= self.compact_below {
                    return Ok(());
                }
                let stored = *stored;
                let mut node = self.load_old(&stored, depth)?;
                self.replaced(child);
                self.nodes_compacted += 1;
                self.compact_children(&mut node, depth)?;
                *child = self.write_moved(node, stored.hash, depth)?;
            }
            Child::Embedded { hash, body, storage_min_chunk } => {
                // Only a storage trie under an embedded account leaf can
                // reach below the floor; the leaf is rewritten with its parent.
                if *storage_min_chunk >= self.compact_below {
                    return Ok(());
                }
                let hash = *hash;
                let mut node = body.decode()?;
                self.compact_children(&mut node, depth)?;
                *child = Child::embed(hash, &node);
            }
            Child::Mem(node) => self.compact_children(node, depth)?,
            Child::Inline(_) => {}
        }
        Ok(())
    }

    /// [`compact`](Self::compact) for a whole tree, after reading ahead
    /// every node it will load one page at a time.
    fn compact_tree(&mut self, child: &mut Child, depth: usize) -> Result<()> {
        self.read_compaction_ahead(child, depth)?;
        self.compact(child, depth)
    }

    /// Reads ahead, level by level and each level in one batch through the
    /// ring, what compaction of the tree under `root` will load: the nodes
    /// above the floor that lead down to nodes below it (read a page each),
    /// and the segments of old chunks that hold the nodes below it (which
    /// compaction copies). Walking depth-first instead, compaction would
    /// wait for one read per node or segment: hundreds of round trips a
    /// block. Every node found is decoded once, into `prefetched`, where
    /// compaction takes it.
    fn read_compaction_ahead(&mut self, root: &Child, depth: usize) -> Result<()> {
        let mut found = Found::default();
        let mut read = 0usize;
        self.find_reads(root, depth, &mut found);
        loop {
            loop {
                while let Some((node, depth)) = found.ready.pop() {
                    self.find_reads_below(&node, depth, &mut found);
                }
                // Nodes below the floor in segments already read: decode
                // them now and look into them; the rest wait for theirs.
                let below = std::mem::take(&mut found.below);
                for (stored, depth) in below {
                    let key = segment_of(stored.loc);
                    match self.segments.get(&key) {
                        Some(buf) => {
                            let node = Arc::new(decode_in_segment(stored.loc, buf)?);
                            self.prefetched.insert(stored.loc.key(), Arc::clone(&node));
                            found.ready.push((node, depth));
                        }
                        None => {
                            found.segments.push(key);
                            found.below.push((stored, depth));
                        }
                    }
                }
                if found.ready.is_empty() {
                    break;
                }
            }
            found.segments.sort_unstable();
            found.segments.dedup();
            found.segments.truncate(MAX_SEGMENTS.saturating_sub(self.segments.len()));
            if (found.wanted.is_empty() && found.segments.is_empty())
                || read >= COMPACTION_READ_AHEAD_MAX
            {
                return Ok(());
            }
            let refs: Vec<StoredRef> = found.wanted.iter().map(|(stored, _)| *stored).collect();
            read += refs.len() + found.segments.len();
            let io_depth = self.shared.config.io_depth;
            crate::read::read_nodes(self.shared, &self.map, &refs, io_depth, &mut self.prefetched)?;
            for (stored, depth) in found.wanted.drain(..) {
                if let Some(node) = self.prefetched.get(&stored.loc.key()) {
                    found.ready.push((Arc::clone(node), depth));
                }
            }
            let segments = std::mem::take(&mut found.segments);
            self.read_segments(&segments)?;
            // Nodes whose segment could not be read ahead (the cap) are
            // left to compaction.
            found.below.retain(|(stored, _)| self.segments.contains_key(&segment_of(stored.loc)));
        }
    }

    /// Reads segments of old chunks (see [`load_old`](Self::load_old))
    /// through the ring, all in flight together.
    fn read_segments(&mut self, keys: &[(u32, u32)]) -> Result<()> {
        let mut reqs = Vec::with_capacity(keys.len());
        for (token, &key) in keys.iter().enumerate() {
            let offset = self.segment_offset(key)?;
            reqs.push(ReadReq { token: token as u64, offset, buf: self.segment_buf() });
        }
        let io_depth = self.shared.config.io_depth;
        let counters = &self.shared.counters;
        let segments = &mut self.segments;
        let spare = &mut self.spare_segments;
        self.shared.engine.with_queue(io_depth, |queue: &mut dyn ReadQueue| {
            let mut failure: Option<Error> = None;
            let mut pending = reqs.into_iter();
            loop {
                while failure.is_none() && queue.in_flight() < queue.depth() {
                    let Some(req) = pending.next() else { break };
                    counters.device_read();
                    if let Err((req, err)) = queue.submit(req) {
                        spare.push(req.buf);
                        failure = Some(Error::io("queueing a segment read", err));
                    }
                }
                if queue.in_flight() == 0 {
                    break;
                }
                let done = queue.wait();
                match done.result {
                    Ok(()) if failure.is_none() => {
                        segments.insert(keys[done.token as usize], done.buf);
                    }
                    Ok(()) => spare.push(done.buf),
                    Err(err) => {
                        spare.push(done.buf);
                        failure.get_or_insert(Error::io("reading a chunk for compaction", err));
                    }
                }
            }
            spare.extend(pending.map(|req| req.buf));
            failure.map_or(Ok(()), Err)
        })
    }

    /// Sorts `child` (at `depth`) for [`read_compaction_ahead`]: a node to
    /// look into now, one to read first, one below the floor, or none.
    fn find_reads(&self, child: &Child, depth: usize, found: &mut Found) {
        match child {
            Child::Stored(stored) => {
                if stored.min_chunk >= self.compact_below || self.written_by_this_commit(stored.loc)
                {
                    return;
                }
                let key = stored.loc.key();
                if let Some(node) = self.prefetched.get(&key) {
                    found.ready.push((Arc::clone(node), depth));
                } else if let Some(node) = self.shared.cache.get(stored.loc, depth) {
                    found.ready.push((node, depth));
                } else if stored.loc.chunk >= self.compact_below {
                    found.wanted.push((*stored, depth));
                } else if !straddles_segments(stored.loc) {
                    found.below.push((*stored, depth));
                }
            }
            Child::Mem(node) => self.find_reads_below(node, depth, found),
            Child::Embedded { body, storage_min_chunk, .. } => {
                // A body that does not decode is reported when compaction
                // decodes it; reading ahead only saves time.
                if *storage_min_chunk < self.compact_below
                    && let Ok(node) = body.decode()
                {
                    self.find_reads_below(&node, depth, found);
                }
            }
            Child::Inline(_) => {}
        }
    }

    fn find_reads_below(&self, node: &Node, depth: usize, found: &mut Found) {
        match node {
            Node::Leaf { value: Value::Account(account), .. } => {
                if let Some(storage) = account.storage {
                    self.find_reads(&Child::Stored(storage), 0, found);
                }
            }
            Node::Leaf { .. } => {}
            Node::Extension { path, child } => {
                self.find_reads(child, depth + path.len(), found);
            }
            Node::Branch { children, .. } => {
                for child in children.iter().flatten() {
                    self.find_reads(child, depth + 1, found);
                }
            }
        }
    }

    /// Compacts the children of `node` (at `depth`) and seals them, so that
    /// `node` can be written next.
    fn compact_children(&mut self, node: &mut Node, depth: usize) -> Result<()> {
        match node {
            Node::Leaf { value: Value::Account(account), .. } => {
                if let Some(storage) = account.storage
                    && storage.min_chunk < self.compact_below
                {
                    let mut root = Child::Stored(storage);
                    self.compact(&mut root, 0)?;
                    match root {
                        Child::Stored(stored) => account.storage = Some(stored),
                        _ => unreachable!("a stored root is moved as a stored root"),
                    }
                }
            }
            Node::Leaf { .. } => {}
            Node::Extension { path, child } => {
                let depth = depth + path.len();
                self.compact(child, depth)?;
                self.seal_in_place(child, depth)?;
            }
            Node::Branch { children, .. } => {
                self.read_children_ahead(children)?;
                for child in children.iter_mut().flatten() {
                    self.compact(child, depth + 1)?;
                    self.seal_in_place(child, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// Reads the children of a branch that compaction will load one page at
    /// a time (stored above the floor, reaching below it, not cached) all
    /// at once through the ring, instead of one synchronous read each.
    fn read_children_ahead(&mut self, children: &[Option<Child>; 16]) -> Result<()> {
        let wanted: Vec<StoredRef> = children
            .iter()
            .flatten()
            .filter_map(|child| match child {
                Child::Stored(stored)
                    if stored.min_chunk < self.compact_below
                        && stored.loc.chunk >= self.compact_below
                        && !self.written_by_this_commit(stored.loc)
                        && !self.prefetched.contains_key(&stored.loc.key())
                        && !self.shared.cache.contains(stored.loc) =>
                {
                    Some(*stored)
                }
                _ => None,
            })
            .collect();
        if wanted.len() < 2 {
            return Ok(());
        }
        let io_depth = self.shared.config.io_depth;
        crate::read::read_nodes(self.shared, &self.map, &wanted, io_depth, &mut self.prefetched)
    }

    fn seal_in_place(&mut self, child: &mut Child, depth: usize) -> Result<()> {
        if matches!(child, Child::Mem(_)) {
            let node = std::mem::replace(child, Child::Inline(Box::new([])));
            *child = self.seal(node, depth, false)?;
        }
        Ok(())
    }

    /// Writes a moved node (its children already written) under its old hash.
    fn write_moved(&mut self, node: Node, hash: B256, depth: usize) -> Result<Child> {
        let min_chunk = children_min_chunk(&node);
        let loc = self.writer.append(&*self.shared.storage, &node)?;
        self.added_bytes += u64::from(loc.len);
        self.moved_bytes += u64::from(loc.len);
        self.keep_fresh(loc, node, None, depth);
        Ok(Child::Stored(StoredRef { hash, loc, min_chunk: min_chunk.min(loc.chunk) }))
    }

    /// Hashes and writes a `Mem` subtree bottom-up; returns its reference.
    fn seal(&mut self, child: Child, depth: usize, is_root: bool) -> Result<Child> {
        let Child::Mem(mut node) = child else {
            return Ok(child);
        };
        match &mut *node {
            Node::Leaf { .. } => {}
            Node::Extension { path, child } => {
                let inner = std::mem::replace(child, Child::Inline(Box::new([])));
                *child = self.seal(inner, depth + path.len(), false)?;
            }
            Node::Branch { children, .. } => {
                for slot in children.iter_mut() {
                    if let Some(c) = slot.take() {
                        *slot = Some(self.seal(c, depth + 1, false)?);
                    }
                }
            }
        }
        let min_chunk = children_min_chunk(&node);
        self.rlp_scratch.clear();
        node.encode_ethereum_rlp(&mut self.rlp_scratch);
        if !is_root && self.rlp_scratch.len() < 32 {
            return Ok(Child::Inline(self.rlp_scratch[..].into()));
        }
        let hash = rlp_hash(&self.rlp_scratch);
        let embeddable = match *node {
            Node::Leaf { .. } => true,
            _ => self.shared.config.embed_subtrees && node.self_contained(),
        };
        // Encoded once: the size decides embedding, and the same bytes are
        // what a stored node writes.
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        node.encode_body(&mut body);
        if !is_root && embeddable && body.len() <= EMBED_MAX_BYTES {
            let child = Child::embedded(hash, &node, &body);
            self.scratch = body;
            return Ok(child);
        }
        let appended = self.writer.append_body(&*self.shared.storage, &body);
        let loc = match appended {
            Ok(loc) => loc,
            Err(err) => {
                self.scratch = body;
                return Err(err);
            }
        };
        self.added_bytes += u64::from(loc.len);
        self.keep_fresh(loc, *node, Some(&body), depth);
        self.scratch = body;
        Ok(Child::Stored(StoredRef { hash, loc, min_chunk: min_chunk.min(loc.chunk) }))
    }

    /// Keeps a node just written for the cache (see [`CommitCtx::fresh`]);
    /// `body` is its record, when the caller has it. Nodes within
    /// [`FRESH_CACHE_DEPTH`] of a root are always kept (few, and on every
    /// path); those below only while they fit in `fresh_budget`.
    fn keep_fresh(&mut self, loc: Loc, node: Node, body: Option<&[u8]>, depth: usize) {
        if depth >= self.fresh_depth {
            return;
        }
        // Bottom nodes are kept as their record unless the cache has room.
        let record: Option<Cow<'_, [u8]>> =
            (node.holds_leaves() && !self.fresh_decoded).then(|| {
                body.map_or_else(
                    || {
                        let mut body = Vec::new();
                        node.encode_body(&mut body);
                        Cow::Owned(body)
                    },
                    Cow::Borrowed,
                )
            });
        let weight = record.as_deref().map_or_else(|| node_weight(&node), record_weight);
        // Weighed before anything is copied: a node over the budget is dropped.
        if depth >= FRESH_CACHE_DEPTH {
            if self.fresh_bytes + weight > self.fresh_budget {
                return;
            }
            self.fresh_bytes += weight;
        }
        let fresh = match record {
            Some(record) => Fresh::Record(Arc::from(&*record)),
            None => Fresh::Node(Arc::new(node)),
        };
        self.fresh.push((loc, fresh));
    }
}

/// Lowest chunk reached through the children of a sealed node (and the
/// storage trie of an account leaf); `u32::MAX` when none is stored.
fn children_min_chunk(node: &Node) -> u32 {
    let of = |c: &Child| match c {
        Child::Stored(s) => s.min_chunk,
        Child::Embedded { storage_min_chunk, .. } => *storage_min_chunk,
        Child::Inline(_) | Child::Mem(_) => u32::MAX,
    };
    match node {
        Node::Leaf { value: Value::Account(account), .. } => {
            account.storage.map_or(u32::MAX, |s| s.min_chunk)
        }
        Node::Leaf { .. } => u32::MAX,
        Node::Extension { child, .. } => of(child),
        Node::Branch { children, .. } => {
            children.iter().flatten().map(of).min().unwrap_or(u32::MAX)
        }
    }
}

/// A node a commit wrote, kept for the cache in the form the cache keeps
/// it in: decoded (inner nodes, and bottom nodes while the cache has room),
/// or as its record (see [`NodeCache::insert_read`](crate::store::NodeCache::insert_read)).
pub(crate) enum Fresh {
    Node(Arc<Node>),
    Record(Arc<[u8]>),
}

/// Builds a fresh subtree from sorted, unique `(key, value)` items that all
/// share the first `depth` nibbles.
pub(crate) fn build(depth: usize, items: &mut [(Vec<u8>, Value)]) -> Option<Node> {
    match items {
        [] => return None,
        [(key, value)] => {
            // Reuse the key's allocation for the leaf's path.
            let mut path = std::mem::take(key);
            path.drain(..depth);
            let value = std::mem::replace(value, Value::Raw(Box::new([])));
            return Some(Node::Leaf { path, value });
        }
        _ => {}
    }
    let first = &items[0].0;
    let last = &items[items.len() - 1].0;
    let shared = common_prefix(&first[depth..], &last[depth..]);
    if shared > 0 {
        let path = first[depth..depth + shared].to_vec();
        let branch = build_branch(depth + shared, items);
        return Some(Node::Extension { path, child: Child::Mem(Box::new(branch)) });
    }
    Some(build_branch(depth, items))
}

/// The items are sorted, so each child's keys are one contiguous run.
fn build_branch(depth: usize, mut items: &mut [(Vec<u8>, Value)]) -> Node {
    let mut children = empty_branch();
    let mut value = None;
    if let Some((key, v)) = items.first_mut()
        && key.len() == depth
    {
        value = Some(std::mem::replace(v, Value::Raw(Box::new([]))));
        items = &mut items[1..];
    }
    while let Some((key, _)) = items.first() {
        let nibble = key[depth];
        let end = items.iter().position(|(k, _)| k[depth] != nibble).unwrap_or(items.len());
        let (group, rest) = items.split_at_mut(end);
        children[usize::from(nibble)] = build(depth + 1, group).map(|n| Child::Mem(Box::new(n)));
        items = rest;
    }
    Node::Branch { children, value }
}

/// `prefix` followed by `node`, merged so no extension points at a leaf or
/// another extension.
fn prefix_with(prefix: &[u8], node: Option<Node>) -> Option<Node> {
    if prefix.is_empty() {
        return node;
    }
    Some(match node? {
        Node::Leaf { path, value } => Node::Leaf { path: concat(prefix, &path), value },
        Node::Extension { path, child } => Node::Extension { path: concat(prefix, &path), child },
        branch @ Node::Branch { .. } => {
            Node::Extension { path: prefix.to_vec(), child: Child::Mem(Box::new(branch)) }
        }
    })
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

fn prepend(nibble: u8, path: &[u8]) -> Vec<u8> {
    concat(&[nibble], path)
}

pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The state root of a version (the account root's hash).
pub(crate) fn root_hash(root: &Option<StoredRef>) -> B256 {
    root.map_or(crate::EMPTY_ROOT, |r| r.hash)
}

#[cfg(test)]
mod tests {
    use crate::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};
    use alloy_primitives::{Address, U256};

    #[test]
    fn leaves_are_embedded_in_their_branch() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(base).unwrap();
        let db = TrieDb::open(Config::new(dir.path().join("db"))).unwrap();
        let mut updates = StateUpdates::default();
        for i in 0..40u8 {
            let info = AccountInfo { nonce: 1, balance: U256::from(i), ..Default::default() };
            updates.accounts.insert(Address::repeat_byte(i), AccountUpdate::info(info));
        }
        db.commit(1, &updates).unwrap();
        let stats = db.stats();
        // 40 accounts under a root branch: the leaves live inside the
        // branches, so far fewer than 40 nodes were written.
        let published = db.inner.published.read();
        let root = published.meta.latest().unwrap().account_root.unwrap();
        use crate::node::{Child, Node};
        /// Leaves under `node`, and how many were found embedded.
        fn count(
            db: &TrieDb,
            map: &crate::store::ChunkMap,
            node: &Node,
            embedded: bool,
        ) -> (usize, usize) {
            let children: Vec<&Child> = match node {
                Node::Leaf { .. } => return (1, usize::from(embedded)),
                Node::Branch { children, .. } => children.iter().flatten().collect(),
                Node::Extension { child, .. } => vec![child],
            };
            let mut total = (0, 0);
            for child in children {
                let (leaves, inside) = match child {
                    Child::Embedded { body, .. } => count(db, map, &body.decode().unwrap(), true),
                    Child::Stored(stored) => {
                        count(db, map, &db.inner.node(map, stored, 0).unwrap(), false)
                    }
                    _ => panic!("account leaves are never inline"),
                };
                total = (total.0 + leaves, total.1 + inside);
            }
            total
        }
        let root_node = db.inner.node(&published.map, &root, 0).unwrap();
        assert_eq!(count(&db, &published.map, &root_node, false), (40, 40));
        // One record per second-level branch, plus the root.
        assert!(stats.live_bytes < 17 * 4096, "live bytes {}", stats.live_bytes);
    }
}
