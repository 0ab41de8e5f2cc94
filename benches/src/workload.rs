//! The synthetic state the storage benchmarks load and update.
//!
//! Everything is a pure function of an account index `i` (and a seed), so a
//! run never has to keep ten million addresses in memory: the address of
//! account `i` is recomputed (one keccak) whenever it is needed.
//!
//! * Account `i` has address `keccak256(seed ‖ i)[12..]`.
//! * Every [`STORAGE_EVERY`]-th account (`i % STORAGE_EVERY == 0`) also holds
//!   [`SLOTS_PER_ACCOUNT`] storage slots (slot keys `0..SLOTS_PER_ACCOUNT`).
//! * An account's fields depend on `i` and a *generation*: 0 after the load,
//!   `g` after it was last written by update block `g`. Reads check the fields
//!   they get back against this, so a benchmark never times a broken lookup.
//! * Update blocks pick distinct random accounts with a seeded RNG; the same
//!   block list drives triedb and the peers.

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_trie::{EMPTY_ROOT_HASH, TrieAccount};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashSet};
use wake_triedb::{AccountInfo, AccountUpdate, KECCAK_EMPTY, StateUpdates};

/// One account in this many holds storage.
pub const STORAGE_EVERY: u64 = 8;
/// Slots of an account that holds storage.
pub const SLOTS_PER_ACCOUNT: u8 = 4;
/// Slots an update block rewrites in each storage-holding account it touches.
pub const SLOTS_PER_UPDATE: u8 = 2;

/// A seeded family of accounts.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub seed: u64,
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        Workload { seed }
    }

    /// The address of account `i`.
    pub fn address(&self, i: u64) -> Address {
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(&self.seed.to_le_bytes());
        input[8..].copy_from_slice(&i.to_le_bytes());
        Address::from_slice(&keccak256(input)[12..])
    }
}

/// Whether account `i` holds storage.
pub fn has_storage(i: u64) -> bool {
    i.is_multiple_of(STORAGE_EVERY)
}

/// The fields of account `i` at generation `generation`.
pub fn account_info(i: u64, generation: u64) -> AccountInfo {
    AccountInfo {
        nonce: generation,
        balance: U256::from(i.wrapping_mul(1_000_003) ^ (generation << 40))
            * U256::from(1_000_000_000u64),
        code_hash: KECCAK_EMPTY,
    }
}

/// The (unhashed) key of storage slot `j`.
pub fn slot_key(j: u8) -> B256 {
    B256::with_last_byte(j)
}

/// The value of slot `j` of account `i` at generation `generation` (never zero).
pub fn slot_value(i: u64, j: u8, generation: u64) -> U256 {
    U256::from(i) * U256::from(1000u64) + U256::from(j) + U256::from(generation << 32) + U256::ONE
}

/// The slots an update block of generation `generation` rewrites in a
/// storage-holding account.
pub fn updated_slots(generation: u64) -> impl Iterator<Item = u8> {
    (0..SLOTS_PER_UPDATE)
        .map(move |k| ((generation + u64::from(k)) % u64::from(SLOTS_PER_ACCOUNT)) as u8)
}

/// triedb's update for account `i` when the load writes it.
pub fn load_update(i: u64) -> AccountUpdate {
    let storage = if has_storage(i) {
        (0..SLOTS_PER_ACCOUNT).map(|j| (slot_key(j), slot_value(i, j, 0))).collect()
    } else {
        BTreeMap::new()
    };
    AccountUpdate::Set { info: account_info(i, 0), wipe_storage: false, storage }
}

/// triedb's update for account `i` in update block `generation`.
pub fn block_update(i: u64, generation: u64) -> AccountUpdate {
    let storage = if has_storage(i) {
        updated_slots(generation).map(|j| (slot_key(j), slot_value(i, j, generation))).collect()
    } else {
        BTreeMap::new()
    };
    AccountUpdate::Set { info: account_info(i, generation), wipe_storage: false, storage }
}

/// The load's state diff for accounts `range`.
pub fn load_updates(workload: &Workload, range: std::ops::Range<u64>) -> StateUpdates {
    let mut updates = StateUpdates::default();
    for i in range {
        updates.accounts.insert(workload.address(i), load_update(i));
    }
    updates
}

/// The trie form of an account (what its leaf holds, RLP-encoded).
#[allow(clippy::needless_update)] // `extension` exists when alloy-trie's `account-ext` is on
pub fn trie_account(info: &AccountInfo, storage_root: B256) -> TrieAccount {
    TrieAccount {
        nonce: info.nonce,
        balance: info.balance,
        storage_root,
        code_hash: info.code_hash,
        ..Default::default()
    }
}

/// One block of the commit phase: distinct accounts, all written at generation `generation`.
#[derive(Clone, Debug)]
pub struct Block {
    pub generation: u64,
    pub accounts: Vec<u64>,
}

impl Block {
    /// `size` distinct random accounts of `0..n`, from a seed tied to `generation`.
    pub fn random(seed: u64, generation: u64, n: u64, size: usize) -> Block {
        let size = size.min(n as usize);
        let mut rng = StdRng::seed_from_u64(seed ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut seen = HashSet::with_capacity(size);
        let mut accounts = Vec::with_capacity(size);
        while accounts.len() < size {
            let i = rng.random_range(0..n);
            if seen.insert(i) {
                accounts.push(i);
            }
        }
        Block { generation, accounts }
    }

    /// Storage slots this block writes.
    pub fn slot_writes(&self) -> usize {
        self.accounts.iter().filter(|&&i| has_storage(i)).count() * usize::from(SLOTS_PER_UPDATE)
    }

    /// triedb's state diff of this block.
    pub fn updates(&self, workload: &Workload) -> StateUpdates {
        let mut updates = StateUpdates::default();
        for &i in &self.accounts {
            updates.accounts.insert(workload.address(i), block_update(i, self.generation));
        }
        updates
    }
}

/// The flat key-value form of the same state, for key-value peers (NOMT):
/// key `keccak256(address)` → the account's RLP (`TrieAccount`, ~70 bytes);
/// key `keccak256(address ‖ slot)` → the slot value, 32 bytes big-endian.
pub mod flat {
    use super::*;

    /// The key of account `i`.
    pub fn account_key(workload: &Workload, i: u64) -> [u8; 32] {
        keccak256(workload.address(i)).0
    }

    /// The key of slot `j` of account `i`.
    pub fn slot_key(workload: &Workload, i: u64, j: u8) -> [u8; 32] {
        let mut input = [0u8; 52];
        input[..20].copy_from_slice(workload.address(i).as_slice());
        input[20..].copy_from_slice(super::slot_key(j).as_slice());
        keccak256(input).0
    }

    /// The value stored under an account key.
    pub fn account_value(i: u64, generation: u64) -> Vec<u8> {
        let info = account_info(i, generation);
        alloy_rlp::encode(trie_account(&info, EMPTY_ROOT_HASH))
    }

    /// The value stored under a slot key.
    pub fn slot_value(i: u64, j: u8, generation: u64) -> Vec<u8> {
        super::slot_value(i, j, generation).to_be_bytes::<32>().to_vec()
    }

    /// Every (key, value) that loading account `i` writes.
    pub fn load_entries(workload: &Workload, i: u64, out: &mut Vec<([u8; 32], Vec<u8>)>) {
        out.push((account_key(workload, i), account_value(i, 0)));
        if has_storage(i) {
            for j in 0..SLOTS_PER_ACCOUNT {
                out.push((slot_key(workload, i, j), slot_value(i, j, 0)));
            }
        }
    }

    /// Every (key, value) that `block` writes.
    pub fn block_entries(workload: &Workload, block: &Block) -> Vec<([u8; 32], Vec<u8>)> {
        let mut out = Vec::with_capacity(block.accounts.len() + block.slot_writes());
        for &i in &block.accounts {
            out.push((account_key(workload, i), account_value(i, block.generation)));
            if has_storage(i) {
                for j in updated_slots(block.generation) {
                    out.push((slot_key(workload, i, j), slot_value(i, j, block.generation)));
                }
            }
        }
        out
    }
}

/// The state root of `accounts` (no storage) by alloy-trie's `HashBuilder`:
/// hashing, encoding and sorting included, as a caller starting from
/// addresses would do. The oracle and the peer for triedb's root figures.
pub fn hash_builder_root(accounts: &[(Address, AccountInfo)]) -> B256 {
    let mut leaves: Vec<(B256, Vec<u8>)> = accounts
        .iter()
        .map(|(address, info)| {
            let account = trie_account(info, EMPTY_ROOT_HASH);
            (keccak256(address), alloy_rlp::encode(account))
        })
        .collect();
    leaves.sort_unstable_by_key(|leaf| leaf.0);
    let mut builder = alloy_trie::HashBuilder::default();
    for (key, value) in &leaves {
        builder.add_leaf(alloy_trie::Nibbles::unpack(key), value);
    }
    builder.root()
}

/// The same root with triedb's in-memory builder on `threads` threads, from
/// the same input: keccak of the addresses, RLP and sorting are inside, as
/// in [`hash_builder_root`].
pub fn triedb_memory_root(accounts: &[(Address, AccountInfo)], threads: usize) -> B256 {
    let leaves: Vec<(B256, Vec<u8>)> = accounts
        .iter()
        .map(|(address, info)| {
            let account = trie_account(info, EMPTY_ROOT_HASH);
            (keccak256(address), alloy_rlp::encode(account))
        })
        .collect();
    wake_triedb::trie_root_with_threads(leaves, threads)
        .expect("the workload's addresses are distinct")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_and_stable() {
        let w = Workload::new(7);
        assert_eq!(w.address(3), w.address(3));
        assert_ne!(w.address(3), w.address(4));
        assert_ne!(w.address(3), Workload::new(8).address(3));
    }

    #[test]
    fn blocks_are_distinct_and_reproducible() {
        let a = Block::random(1, 5, 1000, 100);
        let b = Block::random(1, 5, 1000, 100);
        assert_eq!(a.accounts, b.accounts);
        let set: HashSet<_> = a.accounts.iter().collect();
        assert_eq!(set.len(), 100);
        assert!(a.accounts.iter().all(|&i| i < 1000));
    }

    #[test]
    fn account_value_is_about_seventy_bytes() {
        let len = flat::account_value(123_456, 0).len();
        assert!((60..=90).contains(&len), "{len}");
    }

    #[test]
    fn updated_slots_exist() {
        for g in 0..10 {
            assert!(updated_slots(g).all(|j| j < SLOTS_PER_ACCOUNT));
        }
    }
}
