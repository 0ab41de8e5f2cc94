//! Where the in-memory root's time goes: `cargo run --release -p wake-triedb
//! --example root_probe -- [keys]` times the sort and the merkleization of
//! `keys` random 32-byte keys with account-sized values, one thread.

use alloy_primitives::{B256, keccak256};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args().nth(1).map_or(1_000_000, |a| a.parse().expect("keys"));
    let leaves: Vec<(B256, Vec<u8>)> =
        (0..n).map(|i| (keccak256(i.to_le_bytes()), vec![0xc5; 70])).collect();
    let start = Instant::now();
    let mut sorted = leaves.clone();
    sorted.sort_by_key(|leaf| leaf.0);
    let sort_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut unstable = leaves.clone();
    let start = Instant::now();
    unstable.sort_unstable_by_key(|leaf| leaf.0);
    let unstable_ms = start.elapsed().as_secs_f64() * 1e3;
    drop(unstable);
    let start = Instant::now();
    let root = wake_triedb::sorted_trie_root(&sorted, 1);
    let merkle_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let whole = wake_triedb::trie_root_with_threads(leaves, 1).expect("distinct keys");
    let whole_ms = start.elapsed().as_secs_f64() * 1e3;
    assert_eq!(root, whole);
    println!(
        "{n} keys: sort {sort_ms:.0} ms (unstable {unstable_ms:.0} ms), merkleize {merkle_ms:.0} ms, trie_root {whole_ms:.0} ms"
    );
}
