//! `Snapshot::proof` (EIP-1186) verified with alloy-trie's `verify_proof`:
//! present and absent accounts, present and absent slots, in tries of 0, 1, 2
//! and 1000 accounts with 0, 1 and many slots; tampered proofs and wrong
//! expected values must fail verification.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::proof::verify_proof;
use alloy_trie::root::storage_root_unhashed;
use alloy_trie::{EMPTY_ROOT_HASH, Nibbles, TrieAccount};
use std::collections::BTreeMap;
use wake_triedb::{
    Account, AccountInfo, AccountProof, AccountUpdate, Config, KECCAK_EMPTY, StateUpdates, TrieDb,
};

type State = BTreeMap<Address, (AccountInfo, BTreeMap<B256, U256>)>;

fn address(i: u64) -> Address {
    Address::from_word(keccak256([b"proof-account".as_slice(), &i.to_be_bytes()].concat()))
}

fn slot(i: u64) -> B256 {
    B256::from(U256::from(i))
}

fn storage_root(storage: &BTreeMap<B256, U256>) -> B256 {
    storage_root_unhashed(storage.iter().map(|(k, v)| (*k, *v)))
}

fn expected_account(state: &State, a: &Address) -> Option<Account> {
    state.get(a).map(|(info, storage)| Account {
        nonce: info.nonce,
        balance: info.balance,
        code_hash: info.code_hash,
        storage_root: storage_root(storage),
    })
}

fn account_rlp(acc: &Account) -> Vec<u8> {
    alloy_rlp::encode(TrieAccount::new(acc.nonce, acc.balance, acc.storage_root, acc.code_hash))
}

fn value_rlp(value: U256) -> Option<Vec<u8>> {
    (!value.is_zero()).then(|| alloy_rlp::encode(value))
}

/// A state of `n` accounts; account `i` has `slots_of(i)` slots.
fn make_state(n: u64, slots_of: impl Fn(u64) -> u64) -> State {
    (0..n)
        .map(|i| {
            let code_hash =
                if slots_of(i) > 0 { keccak256(format!("code {i}")) } else { KECCAK_EMPTY };
            let info =
                AccountInfo { nonce: i % 7, balance: U256::from(i * 1_000_000_007 + 1), code_hash };
            let storage = (0..slots_of(i))
                .map(|j| (slot(j * 3), U256::from(j + 1) << (j % 200) as usize))
                .collect();
            (address(i), (info, storage))
        })
        .collect()
}

fn updates_of(state: &State) -> StateUpdates {
    let mut updates = StateUpdates::default();
    for (a, (info, storage)) in state {
        updates.accounts.insert(
            *a,
            AccountUpdate::Set { info: *info, wipe_storage: false, storage: storage.clone() },
        );
    }
    updates
}

fn open(name: &str) -> (tempfile::TempDir, TrieDb) {
    let dir = wake_tests::temp_db_dir(name);
    let mut config = Config::new(dir.path().join("db"));
    config.cache_bytes = 1 << 20;
    config.chunk_bytes = 1 << 20;
    let db = TrieDb::open(config).unwrap_or_else(|e| panic!("{name}: open: {e}"));
    (dir, db)
}

fn flip_byte(proof: &[Bytes], node: usize, byte: usize) -> Vec<Bytes> {
    let mut out = proof.to_vec();
    let mut bytes = out[node].to_vec();
    let i = byte % bytes.len();
    bytes[i] ^= 0x01;
    out[node] = bytes.into();
    out
}

#[derive(Default)]
struct Counts {
    present_accounts: usize,
    absent_accounts: usize,
    present_slots: usize,
    absent_slots: usize,
    tampered: usize,
}

/// Checks one proof fully, including that tampering breaks it.
fn check_proof(
    ctx: &str,
    root: B256,
    state: &State,
    a: &Address,
    slots: &[B256],
    proof: &AccountProof,
    counts: &mut Counts,
) {
    let ctx = format!("{ctx}, account {a}");
    let ctx = ctx.as_str();
    let key = Nibbles::unpack(keccak256(a));
    let want = expected_account(state, a);
    assert_eq!(proof.address, *a, "{ctx}: proof.address");
    assert_eq!(proof.account, want, "{ctx}: proof.account");
    let expected_value = want.as_ref().map(account_rlp);
    if let Err(e) = verify_proof(root, key, expected_value.clone(), &proof.account_proof) {
        panic!(
            "{ctx}: account proof does not verify against root {root}: {e:?}\nproof: {:?}",
            proof.account_proof
        );
    }
    match &want {
        Some(acc) => {
            counts.present_accounts += 1;
            assert!(!proof.account_proof.is_empty(), "{ctx}: empty proof of a present account");
            let mut wrong = *acc;
            wrong.balance += U256::from(1);
            assert!(
                verify_proof(root, key, Some(account_rlp(&wrong)), &proof.account_proof).is_err(),
                "{ctx}: account proof verifies with a wrong balance"
            );
            assert!(
                verify_proof(root, key, None, &proof.account_proof).is_err(),
                "{ctx}: proof of a present account verifies as an exclusion proof"
            );
        }
        None => {
            counts.absent_accounts += 1;
            let some = Account {
                nonce: 0,
                balance: U256::ZERO,
                code_hash: KECCAK_EMPTY,
                storage_root: EMPTY_ROOT_HASH,
            };
            assert!(
                verify_proof(root, key, Some(account_rlp(&some)), &proof.account_proof).is_err(),
                "{ctx}: exclusion proof verifies as an inclusion proof"
            );
        }
    }
    for node in 0..proof.account_proof.len() {
        for byte in [0, 1, 7, proof.account_proof[node].len() - 1] {
            let tampered = flip_byte(&proof.account_proof, node, byte);
            assert!(
                verify_proof(root, key, expected_value.clone(), &tampered).is_err(),
                "{ctx}: account proof with byte {byte} of node {node} flipped still verifies"
            );
            counts.tampered += 1;
        }
    }

    // Storage proofs, in request order.
    let storage_root = want.map_or(EMPTY_ROOT_HASH, |acc| acc.storage_root);
    assert_eq!(proof.storage_proofs.len(), slots.len(), "{ctx}: number of storage proofs");
    for (i, (sp, slot)) in proof.storage_proofs.iter().zip(slots).enumerate() {
        let ctx = format!("{ctx}, slot {slot} (#{i})");
        let ctx = ctx.as_str();
        let want = state.get(a).and_then(|(_, st)| st.get(slot).copied()).unwrap_or(U256::ZERO);
        assert_eq!(sp.key, *slot, "{ctx}: storage proof key (request order)");
        assert_eq!(sp.value, want, "{ctx}: storage proof value");
        let key = Nibbles::unpack(keccak256(slot));
        if let Err(e) = verify_proof(storage_root, key, value_rlp(want), &sp.proof) {
            panic!(
                "{ctx}: storage proof does not verify against storage root {storage_root}: {e:?}\nproof: {:?}",
                sp.proof
            );
        }
        if want.is_zero() {
            counts.absent_slots += 1;
            assert!(
                verify_proof(storage_root, key, value_rlp(U256::from(1)), &sp.proof).is_err(),
                "{ctx}: slot exclusion proof verifies as an inclusion proof"
            );
        } else {
            counts.present_slots += 1;
            assert!(
                verify_proof(storage_root, key, value_rlp(want + U256::from(1)), &sp.proof)
                    .is_err(),
                "{ctx}: slot proof verifies with a wrong value"
            );
            assert!(
                verify_proof(storage_root, key, None, &sp.proof).is_err(),
                "{ctx}: proof of a present slot verifies as an exclusion proof"
            );
        }
        for node in 0..sp.proof.len() {
            let tampered = flip_byte(&sp.proof, node, i + node);
            assert!(
                verify_proof(storage_root, key, value_rlp(want), &tampered).is_err(),
                "{ctx}: storage proof with node {node} tampered still verifies"
            );
            counts.tampered += 1;
        }
    }
}

/// Commits `state` as version 1 of a fresh database, then proves every
/// present account (or every `stride`-th) and `absent` absent ones.
fn prove_state(name: &str, state: &State, stride: usize, absent: u64) -> Counts {
    let (_dir, db) = open(name);
    let root = db.commit(1, &updates_of(state)).unwrap_or_else(|e| panic!("{name}: commit: {e}"));
    let oracle = alloy_trie::root::state_root_unhashed(state.iter().map(|(a, (info, st))| {
        (*a, TrieAccount::new(info.nonce, info.balance, storage_root(st), info.code_hash))
    }));
    assert_eq!(root, oracle, "{name}: state root vs alloy-trie oracle");
    let snap = db.snapshot(1).unwrap_or_else(|e| panic!("{name}: snapshot: {e}"));
    let mut counts = Counts::default();
    let mut queries: Vec<Address> = state.keys().step_by(stride.max(1)).copied().collect();
    // Accounts with storage are always proven.
    queries.extend(state.iter().filter(|(_, (_, st))| !st.is_empty()).map(|(a, _)| *a));
    queries.sort();
    queries.dedup();
    queries.extend((0..absent).map(|i| address(1_000_000 + i)));
    for a in &queries {
        let mut slots: Vec<B256> =
            state.get(a).map(|(_, st)| st.keys().take(40).copied().collect()).unwrap_or_default();
        // Absent slots: between the present ones (slot keys are multiples of 3) and far away.
        slots.extend([slot(1), slot(4), keccak256(a)]);
        // A repeated request and an empty request are answered too.
        if let Some(first) = slots.first().copied() {
            slots.push(first);
        }
        let proof = snap.proof(a, &slots).unwrap_or_else(|e| panic!("{name}: proof({a}): {e}"));
        check_proof(name, root, state, a, &slots, &proof, &mut counts);
        let proof = snap.proof(a, &[]).unwrap_or_else(|e| panic!("{name}: proof({a}, []): {e}"));
        check_proof(name, root, state, a, &[], &proof, &mut counts);
    }
    println!(
        "{name}: {} present accounts, {} absent accounts, {} present slots, {} absent slots, {} tampered proofs rejected",
        counts.present_accounts,
        counts.absent_accounts,
        counts.present_slots,
        counts.absent_slots,
        counts.tampered
    );
    counts
}

#[test]
fn proofs_in_an_empty_trie() {
    let name = "proofs-empty";
    let (_dir, db) = open(name);
    let root =
        db.commit(1, &StateUpdates::default()).unwrap_or_else(|e| panic!("{name}: commit: {e}"));
    assert_eq!(root, EMPTY_ROOT_HASH, "{name}: empty state root");
    let snap = db.snapshot(1).unwrap();
    let mut counts = Counts::default();
    for i in 0..5 {
        let a = address(i);
        let slots = [slot(0), slot(1)];
        let proof = snap.proof(&a, &slots).unwrap_or_else(|e| panic!("{name}: proof({a}): {e}"));
        check_proof(name, root, &State::new(), &a, &slots, &proof, &mut counts);
    }
    assert_eq!(counts.absent_accounts, 5);
}

#[test]
fn proofs_with_one_account() {
    let c = prove_state("proofs-1-account-0-slots", &make_state(1, |_| 0), 1, 10);
    assert_eq!((c.present_accounts, c.absent_accounts), (2, 20));
    let c = prove_state("proofs-1-account-1-slot", &make_state(1, |_| 1), 1, 10);
    assert_eq!((c.present_accounts, c.present_slots), (2, 2));
    let c = prove_state("proofs-1-account-many-slots", &make_state(1, |_| 300), 1, 10);
    assert_eq!(c.present_slots, 41);
}

#[test]
fn proofs_with_two_accounts() {
    let c = prove_state("proofs-2-accounts", &make_state(2, |i| [1, 120][i as usize]), 1, 20);
    assert_eq!((c.present_accounts, c.absent_accounts), (4, 40));
    assert!(c.present_slots > 0 && c.absent_slots > 0);
    let c = prove_state("proofs-2-accounts-no-storage", &make_state(2, |_| 0), 1, 20);
    assert_eq!(c.present_accounts, 4);
}

#[test]
fn proofs_with_1000_accounts() {
    let state = make_state(1000, |i| match i % 100 {
        0 => 250,
        n if n % 10 == 0 => 1,
        n if n % 10 == 5 => 12,
        _ => 0,
    });
    let c = prove_state("proofs-1000-accounts", &state, 7, 100);
    assert!(c.present_accounts >= 2 * 1000 / 7, "present accounts proven: {}", c.present_accounts);
    assert_eq!(c.absent_accounts, 200);
    assert!(c.present_slots > 500 && c.absent_slots > 500 && c.tampered > 1000);
}

/// Proofs of an older retained version verify against that version's root,
/// and not against the newer one when the account changed.
#[test]
fn proofs_of_an_older_version() {
    let name = "proofs-versions";
    let (_dir, db) = open(name);
    let state1 = make_state(300, |i| if i % 3 == 0 { 5 } else { 0 });
    let root1 = db.commit(1, &updates_of(&state1)).unwrap();
    let mut state2 = state1.clone();
    let mut updates = StateUpdates::default();
    for i in (0..300).step_by(2) {
        let a = address(i);
        let (info, storage) = state2.get_mut(&a).unwrap();
        info.balance += U256::from(5);
        storage.insert(slot(1), U256::from(99));
        updates.accounts.insert(
            a,
            AccountUpdate::Set {
                info: *info,
                wipe_storage: false,
                storage: BTreeMap::from([(slot(1), U256::from(99))]),
            },
        );
    }
    let root2 = db.commit(2, &updates).unwrap();
    assert_ne!(root1, root2);
    let (snap1, snap2) = (db.snapshot(1).unwrap(), db.snapshot(2).unwrap());
    let mut counts = Counts::default();
    for i in 0..40 {
        let a = address(i);
        let slots = [slot(0), slot(1), slot(3)];
        let p1 = snap1.proof(&a, &slots).unwrap();
        check_proof(&format!("{name} v1"), root1, &state1, &a, &slots, &p1, &mut counts);
        let p2 = snap2.proof(&a, &slots).unwrap();
        check_proof(&format!("{name} v2"), root2, &state2, &a, &slots, &p2, &mut counts);
        // Version 1's proof does not prove version 2's account, nor the other way round.
        let key = Nibbles::unpack(keccak256(a));
        let v2 = expected_account(&state2, &a).map(|acc| account_rlp(&acc));
        assert!(
            verify_proof(root2, key, v2, &p1.account_proof).is_err(),
            "{name}: v1 proof of {a} verifies against root 2"
        );
    }
    assert_eq!(counts.present_accounts, 80);
}
