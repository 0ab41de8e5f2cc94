//! Commits large enough to go in waves (one per first nibble of the hashed
//! address, 65,536 accounts or more), mixed with ordinary small commits,
//! while compaction moves nodes: every root must equal the alloy-trie
//! model's, and every account and slot must read back, before and after a
//! reopen.

use alloy_primitives::{Address, B256};
use wake_tests::workload::{self, Model, SplitMix};
use wake_triedb::{Config, StateUpdates, TrieDb};

const POOL: u64 = 200_000;
const LARGE: usize = 80_000;
const SMALL: usize = 2_000;

fn config(path: &std::path::Path) -> Config {
    let mut config = Config::new(path);
    config.chunk_bytes = 1 << 20;
    // One version: compaction's window reaches up to the newest root (it
    // leaves the retained history alone), so the commits here, only twice
    // the live data apart, already move nodes while waves run.
    config.retain_versions = 1;
    config.cache_bytes = 8 << 20;
    config
}

fn check_reads(db: &TrieDb, model: &Model, seed: u64) {
    let latest = db.latest().expect("a version").version;
    let snapshot = db.snapshot(latest).expect("snapshot");
    let mut rng = SplitMix(seed);
    let addresses: Vec<Address> = (0..3_000).map(|_| workload::address(rng.below(POOL))).collect();
    let accounts = snapshot.accounts(&addresses).expect("batched reads");
    for (address, account) in addresses.iter().zip(&accounts) {
        assert_eq!(*account, model.account(address), "account {address} at version {latest}");
    }
    let slots: Vec<(Address, B256)> = model
        .accounts
        .iter()
        .filter(|(_, a)| !a.storage.is_empty())
        .take(500)
        .flat_map(|(address, a)| a.storage.keys().map(move |key| (*address, *key)))
        .collect();
    let values = snapshot.storage_batch(&slots).expect("batched slot reads");
    for ((address, key), value) in slots.iter().zip(values) {
        assert_eq!(value, model.storage(address, key), "slot {key} of {address}");
    }
}

#[test]
fn large_commits_in_waves_match_the_model() {
    let dir = wake_tests::temp_db_dir("large-commits");
    let path = dir.path().join("db");
    let db = TrieDb::open(config(&path)).expect("open");
    let mut model = Model::default();
    let sizes = [LARGE, SMALL, LARGE, SMALL, SMALL, LARGE, SMALL];
    for (v, &size) in (1..).zip(sizes.iter()) {
        let updates: StateUpdates = workload::updates(0x001a_26e5, v, POOL, size);
        assert_eq!(updates.accounts.len(), size, "the workload draws {size} accounts");
        model.apply(&updates);
        let root = db.commit(v, &updates).expect("commit");
        assert_eq!(root, model.root(), "root of version {v} ({size} accounts)");
    }
    check_reads(&db, &model, 7);
    let stats = db.stats();
    assert!(stats.nodes_compacted > 0, "compaction ran alongside the waves");
    drop(db);

    let db = TrieDb::open(config(&path)).expect("reopen");
    assert_eq!(db.latest().expect("a version").state_root, model.root());
    check_reads(&db, &model, 8);
}

/// Deletions in a commit in waves that leave a branch near the root with one
/// child: the branch collapses into that child, which an earlier wave of the
/// same commit wrote. Then the root itself collapses to one subtree.
#[test]
fn waves_collapse_branches_near_the_root() {
    use alloy_primitives::{U256, keccak256};
    use wake_triedb::{AccountInfo, AccountUpdate};

    let dir = wake_tests::temp_db_dir("large-commits-collapse");
    let db = TrieDb::open(config(&dir.path().join("db"))).expect("open");
    let mut model = Model::default();
    let first_byte = |address: &Address| keccak256(address)[0];
    let info = |v: u64, i: u64| AccountInfo {
        nonce: v,
        balance: U256::from(i + 1),
        ..AccountInfo::default()
    };
    let addresses: Vec<Address> = (0..140_000).map(workload::address).collect();
    let commit = |v: u64, updates: StateUpdates, model: &mut Model| {
        assert!(updates.accounts.len() >= 1 << 16, "large enough to go in waves");
        model.apply(&updates);
        assert_eq!(db.commit(v, &updates).expect("commit"), model.root(), "version {v}");
    };

    let mut v1 = StateUpdates::default();
    for (i, address) in (0..).zip(&addresses) {
        v1.accounts.insert(*address, AccountUpdate::info(info(1, i)));
    }
    commit(1, v1, &mut model);

    // Under first nibble 0x3, keep only the subtree 0x30 (and update it);
    // elsewhere, update every account so the commit is large.
    let mut v2 = StateUpdates::default();
    for (i, address) in (0..).zip(&addresses) {
        let byte = first_byte(address);
        let update = match byte >> 4 {
            0x3 if byte != 0x30 => AccountUpdate::Delete,
            _ => AccountUpdate::info(info(2, i)),
        };
        v2.accounts.insert(*address, update);
    }
    commit(2, v2, &mut model);

    // Keep only first nibble 0x0: the root branch collapses.
    let mut v3 = StateUpdates::default();
    for (i, address) in (0..).zip(&addresses) {
        let update = match first_byte(address) >> 4 {
            0x0 => AccountUpdate::info(info(3, i)),
            _ => AccountUpdate::Delete,
        };
        v3.accounts.insert(*address, update);
    }
    commit(3, v3, &mut model);
    let snapshot = db.snapshot(3).expect("snapshot");
    let sample: Vec<Address> = addresses.iter().step_by(37).copied().collect();
    let read = snapshot.accounts(&sample).expect("reads");
    for (address, account) in sample.iter().zip(read) {
        assert_eq!(account, model.account(address), "{address}");
    }
}

/// Wave commit after wave commit over the same accounts, so that garbage
/// builds up and compaction moves nodes while a commit goes in waves: the
/// compaction of one wave must never move nodes that a later wave of the
/// same commit then has to read.
#[test]
fn repeated_wave_commits_under_compaction_match_the_model() {
    let dir = wake_tests::temp_db_dir("large-commits-repeated");
    let db = TrieDb::open(config(&dir.path().join("db"))).expect("open");
    let mut model = Model::default();
    let mut compacted = 0;
    for v in 1..=8u64 {
        let updates: StateUpdates = workload::updates(0x7a7e_5eed, v, POOL, LARGE);
        model.apply(&updates);
        let before = db.stats().nodes_compacted;
        let root = db.commit(v, &updates).expect("commit");
        assert_eq!(root, model.root(), "root of version {v}");
        compacted += db.stats().nodes_compacted - before;
    }
    assert!(compacted > 0, "compaction ran during the wave commits");
    check_reads(&db, &model, 11);
}
