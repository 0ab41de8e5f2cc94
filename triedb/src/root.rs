//! Roots computed in memory, without a database: for callers that need a
//! root and no storage (block building, receipts and transactions roots), and
//! to measure merkleization apart from the disk.
//!
//! The builder streams over the sorted keys, as alloy-trie's `HashBuilder`
//! does, but without its per-key bookkeeping: each subtree is one contiguous
//! run of the sorted slice, so a node is encoded straight from the slice
//! (a leaf's compact path is a copy of the key's tail) into one scratch
//! buffer, and the parent keeps only its children's references (at most 33
//! bytes each, on the stack). Nothing is allocated per node. The subtrees
//! under the top branch are independent, so large inputs spread them over
//! the available cores.

use crate::{Error, Result};
use alloy_primitives::{B256, keccak256};
use alloy_rlp::{EMPTY_STRING_CODE, Header};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many leaves, threads cost more than they save.
const PARALLEL_MIN_LEAVES: usize = 1 << 15;
/// A branch over at most this many leaves prefetches their values.
const PREFETCH_MAX_LEAVES: usize = 64;

/// Root of the trie holding `leaves` (keys already hashed, for a secure trie,
/// or raw; values as stored in the leaf; an empty value is no entry). Keys
/// must be distinct: a repeated key is [`Error::InvalidValue`], since which
/// value was meant is unknowable. Large inputs use every available core;
/// see [`trie_root_with_threads`].
pub fn trie_root(leaves: Vec<(B256, Vec<u8>)>) -> Result<B256> {
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    trie_root_with_threads(leaves, threads)
}

/// [`trie_root`] with at most `threads` threads (1: on the calling thread only).
pub fn trie_root_with_threads(leaves: Vec<(B256, Vec<u8>)>, threads: usize) -> Result<B256> {
    let mut leaves = leaves;
    // Unstable: a third of the time of a stable sort here, and with distinct
    // keys the order is the same.
    leaves.sort_unstable_by_key(|leaf| leaf.0);
    if leaves.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(Error::InvalidValue("trie_root: a key occurs more than once"));
    }
    leaves.retain(|(_, value)| !value.is_empty());
    Ok(sorted_trie_root(&leaves, threads))
}

/// Root of the trie holding `leaves`, which must be sorted by key, unique,
/// with no empty value.
pub fn sorted_trie_root<V: AsRef<[u8]> + Sync>(leaves: &[(B256, V)], threads: usize) -> B256 {
    debug_assert!(leaves.windows(2).all(|w| w[0].0 < w[1].0), "leaves must be sorted and unique");
    if leaves.is_empty() {
        return crate::EMPTY_ROOT;
    }
    let mut scratch = Vec::with_capacity(1024);
    if threads > 1 && leaves.len() >= PARALLEL_MIN_LEAVES {
        encode_parallel(leaves, 0, threads, &mut scratch);
    } else {
        encode(leaves, 0, &mut scratch);
    }
    // The root is hashed even when its encoding is shorter than 32 bytes.
    keccak256(&scratch)
}

/// How a parent holds a child: its RLP when shorter than 32 bytes, else its
/// hash as a 33-byte RLP string.
#[derive(Clone, Copy)]
struct Ref {
    len: u8,
    bytes: [u8; 33],
}

impl Ref {
    const EMPTY: Ref = Ref { len: 0, bytes: [0; 33] };

    fn of(rlp: &[u8]) -> Ref {
        let mut r = Ref::EMPTY;
        if rlp.len() < 32 {
            r.bytes[..rlp.len()].copy_from_slice(rlp);
            r.len = rlp.len() as u8;
        } else {
            r.bytes[0] = EMPTY_STRING_CODE + 32;
            r.bytes[1..].copy_from_slice(keccak256(rlp).as_slice());
            r.len = 33;
        }
        r
    }

    /// The bytes in the parent's list (an absent child is the empty string).
    fn rlp(&self) -> &[u8] {
        if self.len == 0 { &[EMPTY_STRING_CODE] } else { &self.bytes[..self.len as usize] }
    }
}

/// Asks the CPU to start loading `bytes` into the cache.
#[inline]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(first), Some(last)) = (bytes.first(), bytes.last()) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is only a hint: it never faults and never
        // changes memory, and both pointers are into a live slice anyway.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(first).cast());
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(last).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

fn nibble(key: &B256, i: usize) -> u8 {
    let byte = key[i / 2];
    if i.is_multiple_of(2) { byte >> 4 } else { byte & 0x0f }
}

/// Length of the nibble prefix `a` and `b` share, given that they share at
/// least `from` nibbles.
fn common_nibbles(a: &B256, b: &B256, from: usize) -> usize {
    for i in from / 2..32 {
        let x = a[i] ^ b[i];
        if x != 0 {
            return 2 * i + usize::from(x & 0xf0 == 0);
        }
    }
    64
}

/// Writes the RLP string header for `len` bytes whose first byte is `first`.
fn string_header_len(len: usize, first: u8) -> usize {
    if len == 1 && first < EMPTY_STRING_CODE {
        0
    } else {
        Header { list: false, payload_length: len }.length()
    }
}

fn put_string(bytes: &[u8], out: &mut Vec<u8>) {
    if !(bytes.len() == 1 && bytes[0] < EMPTY_STRING_CODE) {
        Header { list: false, payload_length: bytes.len() }.encode(out);
    }
    out.extend_from_slice(bytes);
}

/// Encodes the subtree of `leaves` (sorted, unique, sharing their first
/// `depth` nibbles) into `out`, replacing its contents.
fn encode<V: AsRef<[u8]>>(leaves: &[(B256, V)], depth: usize, out: &mut Vec<u8>) {
    out.clear();
    let [first, .., last] = leaves else {
        let (key, value) = &leaves[0];
        return encode_leaf(key, depth, value.as_ref(), out);
    };
    let shared = common_nibbles(&first.0, &last.0, depth);
    if shared > depth {
        encode(leaves, shared, out);
        let child = Ref::of(out);
        return encode_extension(&first.0, depth, shared, &child, out);
    }
    if leaves.len() <= PREFETCH_MAX_LEAVES {
        // The values sit wherever the caller allocated them, so in key order
        // each is a cache miss: start them all now, not one after another.
        for (_, value) in leaves {
            prefetch(value.as_ref());
        }
    }
    let mut refs = [Ref::EMPTY; 16];
    let mut rest = leaves;
    while let Some((key, _)) = rest.first() {
        let n = nibble(key, depth);
        let run = rest.partition_point(|(k, _)| nibble(k, depth) == n);
        encode(&rest[..run], depth + 1, out);
        refs[n as usize] = Ref::of(out);
        rest = &rest[run..];
    }
    encode_branch(&refs, out);
}

/// [`encode`] with the top branch's subtrees spread over `threads` threads.
fn encode_parallel<V: AsRef<[u8]> + Sync>(
    leaves: &[(B256, V)],
    depth: usize,
    threads: usize,
    out: &mut Vec<u8>,
) {
    let (first, last) = (&leaves[0].0, &leaves[leaves.len() - 1].0);
    let shared = common_nibbles(first, last, depth);
    if shared > depth {
        encode_parallel(leaves, shared, threads, out);
        let child = Ref::of(out);
        return encode_extension(first, depth, shared, &child, out);
    }
    let mut runs: Vec<(u8, &[(B256, V)])> = Vec::with_capacity(16);
    let mut rest = leaves;
    while let Some((key, _)) = rest.first() {
        let n = nibble(key, depth);
        let run = rest.partition_point(|(k, _)| nibble(k, depth) == n);
        runs.push((n, &rest[..run]));
        rest = &rest[run..];
    }
    let next = AtomicUsize::new(0);
    let refs = std::sync::Mutex::new([Ref::EMPTY; 16]);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(runs.len()) {
            scope.spawn(|| {
                let mut scratch = Vec::with_capacity(1024);
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(n, run)) = runs.get(k) else { break };
                    encode(run, depth + 1, &mut scratch);
                    let r = Ref::of(&scratch);
                    refs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())[n as usize] = r;
                }
            });
        }
    });
    let refs = refs.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    encode_branch(&refs, out);
}

/// A leaf at `depth`: its path is the rest of the key.
fn encode_leaf(key: &B256, depth: usize, value: &[u8], out: &mut Vec<u8>) {
    // Compact path: flag nibble 2 (leaf) + 1 if the nibble count is odd.
    let mut path = [0u8; 33];
    let tail = &key[depth.div_ceil(2)..];
    path[0] = if !depth.is_multiple_of(2) { 0x30 | (key[depth / 2] & 0x0f) } else { 0x20 };
    path[1..=tail.len()].copy_from_slice(tail);
    let path = &path[..=tail.len()];
    let payload = string_header_len(path.len(), path[0])
        + path.len()
        + string_header_len(value.len(), value.first().copied().unwrap_or(0))
        + value.len();
    Header { list: true, payload_length: payload }.encode(out);
    put_string(path, out);
    put_string(value, out);
}

/// An extension from `depth` to `end` (nibbles of `key`), over `child`,
/// into `out` (replacing its contents).
fn encode_extension(key: &B256, depth: usize, end: usize, child: &Ref, out: &mut Vec<u8>) {
    out.clear();
    let count = end - depth;
    let mut path = [0u8; 33];
    let mut at = depth;
    if !count.is_multiple_of(2) {
        path[0] = 0x10 | nibble(key, at);
        at += 1;
    }
    let mut len = 1;
    while at < end {
        path[len] = (nibble(key, at) << 4) | nibble(key, at + 1);
        len += 1;
        at += 2;
    }
    let path = &path[..len];
    let payload = string_header_len(path.len(), path[0]) + path.len() + child.rlp().len();
    Header { list: true, payload_length: payload }.encode(out);
    put_string(path, out);
    out.extend_from_slice(child.rlp());
}

/// A branch with these children and no value, into `out` (replacing its
/// contents).
fn encode_branch(refs: &[Ref; 16], out: &mut Vec<u8>) {
    out.clear();
    let payload = refs.iter().map(|r| r.rlp().len()).sum::<usize>() + 1;
    Header { list: true, payload_length: payload }.encode(out);
    for r in refs {
        out.extend_from_slice(r.rlp());
    }
    out.push(EMPTY_STRING_CODE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::{HashBuilder, Nibbles};

    fn oracle(leaves: &[(B256, Vec<u8>)]) -> B256 {
        let mut sorted: Vec<_> = leaves.iter().filter(|(_, v)| !v.is_empty()).collect();
        sorted.sort_by_key(|leaf| leaf.0);
        let mut hb = HashBuilder::default();
        for (key, value) in sorted {
            hb.add_leaf(Nibbles::unpack(key), value);
        }
        hb.root()
    }

    fn value(i: usize) -> Vec<u8> {
        vec![0x80 + (i % 50) as u8; 1 + i % 40]
    }

    #[test]
    fn matches_hash_builder() {
        for n in [0usize, 1, 2, 3, 17, 300, 5000] {
            let leaves: Vec<(B256, Vec<u8>)> =
                (0..n).map(|i| (keccak256(i.to_le_bytes()), value(i))).collect();
            assert_eq!(trie_root(leaves.clone()).unwrap(), oracle(&leaves), "{n} leaves");
        }
    }

    /// Keys that share long prefixes, so extensions start and end at odd and
    /// even depths, leaves sit at every depth down to 64 (an empty path),
    /// and single-byte values are encoded as themselves.
    #[test]
    fn clustered_keys_match_hash_builder() {
        for seed in 0..200u64 {
            let base = keccak256(seed.to_le_bytes());
            let n = 1 + (seed % 23) as usize;
            let mut leaves: Vec<(B256, Vec<u8>)> = (0..n)
                .map(|i| {
                    let noise = keccak256([seed.to_le_bytes(), (i as u64).to_le_bytes()].concat());
                    // Keep the first `keep` nibbles of `base`, then noise.
                    let keep = (noise[0] as usize + seed as usize) % 65;
                    let mut key = base;
                    for nib in keep..64 {
                        let src = noise[nib / 2];
                        let v = if nib.is_multiple_of(2) { src >> 4 } else { src & 0x0f };
                        let byte = &mut key[nib / 2];
                        *byte = if nib.is_multiple_of(2) {
                            (*byte & 0x0f) | (v << 4)
                        } else {
                            (*byte & 0xf0) | v
                        };
                    }
                    let v = if i % 3 == 0 { vec![(i % 0x80) as u8] } else { value(i) };
                    (key, v)
                })
                .collect();
            let mut seen = std::collections::HashSet::new();
            leaves.retain(|(key, _)| seen.insert(*key));
            assert_eq!(trie_root(leaves.clone()).unwrap(), oracle(&leaves), "seed {seed}");
        }
    }

    #[test]
    fn empty_values_are_absent_and_repeated_keys_refused() {
        let mut leaves: Vec<(B256, Vec<u8>)> = (0..500usize)
            .map(|i| (keccak256(i.to_le_bytes()), if i % 11 == 0 { Vec::new() } else { value(i) }))
            .collect();
        assert_eq!(trie_root(leaves.clone()).unwrap(), oracle(&leaves));
        let only_empty: Vec<(B256, Vec<u8>)> = vec![(B256::ZERO, vec![])];
        assert_eq!(trie_root(only_empty).unwrap(), crate::EMPTY_ROOT);
        leaves.push(leaves[17].clone());
        assert!(matches!(trie_root(leaves), Err(Error::InvalidValue(_))));
    }

    /// Large enough to take the parallel path, including the case where every
    /// key shares its first nibbles (an extension above the split).
    #[test]
    fn parallel_matches_serial() {
        let n = PARALLEL_MIN_LEAVES + 1000;
        let mut leaves: Vec<(B256, Vec<u8>)> =
            (0..n).map(|i| (keccak256(i.to_le_bytes()), value(i))).collect();
        let expected = oracle(&leaves);
        assert_eq!(trie_root_with_threads(leaves.clone(), 1).unwrap(), expected);
        assert_eq!(trie_root_with_threads(leaves.clone(), 3).unwrap(), expected);
        for (key, _) in &mut leaves {
            key[0] = 0xab;
            key[1] = (key[1] & 0x0f) | 0xc0;
        }
        let expected = oracle(&leaves);
        assert_eq!(trie_root_with_threads(leaves.clone(), 4).unwrap(), expected);
        assert_eq!(trie_root_with_threads(leaves, 1).unwrap(), expected);
    }
}
