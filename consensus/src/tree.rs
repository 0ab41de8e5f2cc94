//! The block tree: blocks above the committed tip, plus a short window of
//! the committed chain (for peers that fetch and for the delayed-result
//! rule, which looks K blocks back).
//!
//! Bounded: at most `capacity` blocks; an insert into a full tree is refused
//! and the caller counts the drop. Ordered maps only, so that every scan is
//! deterministic.

use std::collections::{BTreeMap, VecDeque};

use crate::crypto::Scheme;
use crate::types::{BlockHeader, BlockId, Height, QuorumCert};

/// One block and what is known about it.
#[derive(Clone, Debug)]
pub(crate) struct Node<S: Scheme> {
    pub header: BlockHeader,
    pub payload: Vec<u8>,
    /// The certificate of this block's parent, when it came with it.
    pub justify: Option<QuorumCert<S>>,
    /// Speculative finality already reported.
    pub reported: bool,
}

pub(crate) struct Tree<S: Scheme> {
    nodes: BTreeMap<BlockId, Node<S>>,
    /// Ids of the retained committed chain, oldest first.
    committed_chain: VecDeque<BlockId>,
    capacity: usize,
    committed_retained: usize,
}

impl<S: Scheme> Tree<S> {
    /// A tree rooted at the committed block `root`.
    pub fn new(
        root: BlockHeader,
        payload: Vec<u8>,
        capacity: usize,
        committed_retained: usize,
    ) -> Self {
        let id = root.id();
        let mut nodes = BTreeMap::new();
        nodes.insert(id, Node { header: root, payload, justify: None, reported: true });
        Self {
            nodes,
            committed_chain: VecDeque::from([id]),
            capacity: capacity.max(2),
            committed_retained,
        }
    }

    pub fn get(&self, id: &BlockId) -> Option<&Node<S>> {
        self.nodes.get(id)
    }

    pub fn get_mut(&mut self, id: &BlockId) -> Option<&mut Node<S>> {
        self.nodes.get_mut(id)
    }

    pub fn contains(&self, id: &BlockId) -> bool {
        self.nodes.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Insert; false when the tree is full.
    pub fn insert(&mut self, node: Node<S>) -> bool {
        if self.nodes.len() >= self.capacity {
            return false;
        }
        self.nodes.insert(node.header.id(), node);
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = (&BlockId, &Node<S>)> {
        self.nodes.iter()
    }

    /// Record that `chain` (ascending heights, each the child of the one
    /// before, the first a child of the current committed tip) is committed,
    /// then prune: committed blocks beyond the retention window and every
    /// block at or below the new tip that is not on the committed chain.
    pub fn commit(&mut self, chain: &[BlockId], tip_height: Height) {
        self.committed_chain.extend(chain.iter().copied());
        while self.committed_chain.len() > self.committed_retained.max(1) {
            if let Some(old) = self.committed_chain.pop_front() {
                self.nodes.remove(&old);
            }
        }
        let keep: std::collections::BTreeSet<BlockId> =
            self.committed_chain.iter().copied().collect();
        self.nodes.retain(|id, node| node.header.height > tip_height || keep.contains(id));
    }
}
