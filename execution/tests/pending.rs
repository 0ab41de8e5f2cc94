//! Reads through pending (executed, not yet committed) diffs give what the
//! committed versions give.
//!
//! Random diffs over a small key set (so that they overlap: deletions,
//! re-creations, storage wipes, slots cleared and rewritten, code deployed)
//! are committed to triedb as versions 2, 3 and 4 over a random version 1.
//! Then for every version `j` and every `k >= j`, the view "version `j` plus
//! the diffs of `j + 1..=k`" ([`SnapshotState::with_pending`]) must read
//! exactly like version `k`: accounts, slots and code, one by one and in
//! batches. Whether an account has storage may differ in one documented
//! way only (a diff that zeroes slots without a wipe is taken to leave
//! storage): the view may say "has storage" where the trie is empty, never
//! the other way round.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use revm::database::DatabaseRef;
use std::collections::BTreeMap;
use std::sync::Arc;
use wake_execution::{BatchRead, PendingDiff, PreState, SnapshotState};
use wake_triedb::{AccountInfo, AccountUpdate, Config, KECCAK_EMPTY, StateUpdates, TrieDb};

const ADDRESSES: u64 = 24;
const SLOTS: u64 = 6;
const DIFFS: u64 = 3;
const CASES: u64 = 48;

fn address(i: u64) -> Address {
    Address::from_word(keccak256(i.to_be_bytes()))
}

fn slot(i: u64) -> B256 {
    B256::from(U256::from(i))
}

/// A random diff: about half the accounts touched, some deleted, some
/// wiped, slots written (a third of them zero), now and then new code.
fn random_diff(rng: &mut StdRng, codes: &mut Vec<Bytes>, full: bool) -> StateUpdates {
    let mut updates = StateUpdates::default();
    for i in 0..ADDRESSES {
        if !full && rng.random_bool(0.5) {
            continue;
        }
        if !full && rng.random_bool(0.15) {
            updates.accounts.insert(address(i), AccountUpdate::Delete);
            continue;
        }
        let mut code_hash = KECCAK_EMPTY;
        if rng.random_bool(0.15) {
            let code = Bytes::from(vec![0x60, rng.random::<u8>(), 0x00, rng.random::<u8>()]);
            code_hash = keccak256(&code);
            updates.codes.push(code.clone());
            codes.push(code);
        } else if rng.random_bool(0.3) && !codes.is_empty() {
            code_hash = keccak256(&codes[rng.random_range(0..codes.len())]);
        }
        let info = AccountInfo {
            nonce: rng.random_range(0..4),
            balance: U256::from(rng.random_range(0..1_000u64)),
            code_hash,
        };
        let mut storage = BTreeMap::new();
        if rng.random_bool(0.6) {
            for s in 0..SLOTS {
                if rng.random_bool(0.5) {
                    let value = if rng.random_bool(0.35) {
                        U256::ZERO
                    } else {
                        U256::from(rng.random_range(1..100u64))
                    };
                    storage.insert(slot(s), value);
                }
            }
        }
        let wipe_storage = !full && rng.random_bool(0.15);
        updates.accounts.insert(address(i), AccountUpdate::Set { info, wipe_storage, storage });
    }
    updates
}

#[test]
fn pending_diffs_read_like_the_committed_versions() {
    let dir = wake_tests::temp_db_dir("pending-diffs");
    let no_hashes = BTreeMap::<u64, B256>::new();
    let addresses: Vec<Address> = (0..ADDRESSES).map(address).collect();
    let slot_keys: Vec<(Address, B256)> =
        addresses.iter().flat_map(|a| (0..SLOTS).map(move |s| (*a, slot(s)))).collect();
    let mut storage_disagreements = 0usize;
    for case in 0..CASES {
        let path = dir.path().join(format!("case-{case}.triedb"));
        let db = TrieDb::open(Config::new(&path)).expect("open");
        let mut rng = StdRng::seed_from_u64(0x9e4d_1f00 + case);
        let mut codes = Vec::new();
        db.commit(1, &random_diff(&mut rng, &mut codes, true)).expect("commit the base");
        let mut diffs = Vec::new();
        for version in 2..2 + DIFFS {
            let updates = random_diff(&mut rng, &mut codes, false);
            db.commit(version, &updates).expect("commit a diff");
            diffs.push(Arc::new(PendingDiff::new(version, updates)));
        }
        let last = 1 + DIFFS;
        for base in 1..=last {
            let snapshot = db.snapshot(base).expect("snapshot of the base");
            for target in base..=last {
                let pending = &diffs[(base - 1) as usize..(target - 1) as usize];
                let view = SnapshotState::with_pending(&snapshot, pending, &no_hashes);
                let truth = db.snapshot(target).expect("snapshot of the target");
                let exact = SnapshotState::new(&truth, &no_hashes);
                let at = format!("case {case}, version {base} + diffs up to {target}");
                for a in &addresses {
                    assert_eq!(
                        view.basic_ref(*a).unwrap(),
                        exact.basic_ref(*a).unwrap(),
                        "{at}: account {a}"
                    );
                    let (seen, real) =
                        (view.has_storage_ref(*a).unwrap(), exact.has_storage_ref(*a).unwrap());
                    if seen != real {
                        assert!(
                            !real && zeroes_only(pending, a),
                            "{at}: {a} has storage {real}, the view says {seen}"
                        );
                        storage_disagreements += 1;
                    }
                }
                for (a, s) in &slot_keys {
                    let index = U256::from_be_bytes(s.0);
                    assert_eq!(
                        view.storage_ref(*a, index).unwrap(),
                        exact.storage_ref(*a, index).unwrap(),
                        "{at}: slot {s} of {a}"
                    );
                }
                for code in &codes {
                    let hash = keccak256(code);
                    if truth.code(&hash).unwrap().is_some() {
                        assert_eq!(
                            view.code_by_hash_ref(hash).unwrap().original_bytes(),
                            *code,
                            "{at}: code {hash}"
                        );
                    }
                }
                // Batches agree with the reads one by one.
                let accounts = view.accounts_batch(&addresses).unwrap();
                for (a, got) in addresses.iter().zip(&accounts) {
                    let info = view.basic_ref(*a).unwrap();
                    assert_eq!(got.map(|g| g.info.nonce), info.as_ref().map(|i| i.nonce), "{at}");
                    assert_eq!(got.map(|g| g.info.balance), info.map(|i| i.balance), "{at}");
                    if let Some(got) = got {
                        assert_eq!(got.has_storage, view.has_storage_ref(*a).unwrap(), "{at}");
                    }
                }
                let values = view.storage_batch(&slot_keys).unwrap();
                for ((a, s), got) in slot_keys.iter().zip(values) {
                    let one = view.storage_ref(*a, U256::from_be_bytes(s.0)).unwrap();
                    assert_eq!(got, one, "{at}: batched slot {s} of {a}");
                }
            }
        }
    }
    // The one allowed difference is rare: the check above is not vacuous
    // only if the views mostly agree on it.
    let checked = (CASES * (1..=DIFFS + 1).sum::<u64>() * ADDRESSES) as usize;
    println!("{storage_disagreements} of {checked} storage answers differ (allowed)");
    assert!(
        storage_disagreements * 100 < checked,
        "{storage_disagreements} of {checked} storage answers differ"
    );
}

/// The one case where the view may say "has storage" of an account whose
/// storage trie is empty: the newest pending diff that names it sets it
/// without a wipe and writes only zeros.
fn zeroes_only(pending: &[Arc<PendingDiff>], address: &Address) -> bool {
    let newest = pending.iter().rev().find_map(|diff| diff.updates().accounts.get(address));
    matches!(
        newest,
        Some(AccountUpdate::Set { wipe_storage: false, storage, .. })
            if storage.values().all(|v| v.is_zero())
    )
}
