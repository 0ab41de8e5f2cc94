//! Roots computed in memory with triedb's merkleization code (the same tree
//! building and node RLP a commit uses), without touching a database: for
//! callers that need a root and no storage (block building, receipts and
//! transactions roots), and to measure merkleization apart from the disk.

use crate::commit::build;
use crate::node::{Child, Loc, Node, StoredRef, Value, nibbles, rlp_hash};
use alloy_primitives::B256;

/// Root of the trie holding `leaves` (keys already hashed, for a secure trie,
/// or raw; values as stored in the leaf). A later duplicate key wins.
pub fn trie_root(leaves: Vec<(B256, Vec<u8>)>) -> B256 {
    let mut leaves = leaves;
    leaves.sort_by_key(|leaf| leaf.0);
    leaves.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    let mut items: Vec<(Vec<u8>, Value)> = leaves
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (nibbles(key.as_slice()), Value::Raw(value.into())))
        .collect();
    match build(0, &mut items) {
        None => crate::EMPTY_ROOT,
        Some(node) => rlp_hash(&seal(node)),
    }
}

/// Replaces every child by its hash reference, bottom-up; returns the RLP.
fn seal(mut node: Node) -> Vec<u8> {
    let seal_child = |child: &mut Child| {
        if let Child::Mem(inner) = child {
            let inner = std::mem::replace(
                &mut **inner,
                Node::Leaf { path: Vec::new(), value: Value::Raw(Box::new([])) },
            );
            let rlp = seal(inner);
            *child = if rlp.len() < 32 {
                Child::Inline(rlp.into())
            } else {
                // Only the hash is read when the parent is encoded.
                let loc = Loc { chunk: 0, offset: 0, len: 0 };
                Child::Stored(StoredRef { hash: rlp_hash(&rlp), loc, min_chunk: 0 })
            };
        }
    };
    match &mut node {
        Node::Leaf { .. } => {}
        Node::Extension { child, .. } => seal_child(child),
        Node::Branch { children, .. } => children.iter_mut().flatten().for_each(seal_child),
    }
    node.ethereum_rlp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::{HashBuilder, Nibbles};

    #[test]
    fn matches_hash_builder() {
        for n in [0usize, 1, 2, 3, 17, 300, 5000] {
            let leaves: Vec<(B256, Vec<u8>)> = (0..n)
                .map(|i| {
                    (
                        alloy_primitives::keccak256(i.to_le_bytes()),
                        vec![0x80 + (i % 50) as u8; 1 + i % 40],
                    )
                })
                .collect();
            let mut sorted = leaves.clone();
            sorted.sort_by_key(|leaf| leaf.0);
            let mut hb = HashBuilder::default();
            for (key, value) in &sorted {
                hb.add_leaf(Nibbles::unpack(key), value);
            }
            assert_eq!(trie_root(leaves), hb.root(), "{n} leaves");
        }
    }
}
