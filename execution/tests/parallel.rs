//! Differential tests: the parallel executor against the serial one.
//!
//! Generated blocks with heavy conflicts (a few senders with nonce chains,
//! one hot storage slot, value forwarded along chains, contracts created
//! with CREATE and CREATE2 at reused salts, self-destruct in a constructor
//! and from a later call, reads of the fee recipient's balance, the fee
//! recipient itself sending and receiving) must give the same receipts,
//! the same state diff and the same state root serial and parallel, across
//! many seeds and thread counts; blocks with an invalid transaction must be
//! rejected with the same error. Plus the scheduler's behaviour on a
//! conflict-free block (speculative runs validate) and a fully dependent one
//! (the chain detector bounds the wasted runs). The same blocks also run
//! over a prefetch whose discovery made the speculative runs
//! ([`Prefetched::discover`]), with one discovery round (runs left for the
//! executor) and with all of them.
//!
//! Every block executes over a real triedb version (under `target/test-dbs`).

use alloy_consensus::{Block, BlockBody, Header, TxEip1559};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use wake_execution::{
    BlockError, BlockOutcome, BlockTx, ChainSpec, ParallelConfig, ParallelStats, PreState,
    Prefetched, SnapshotState, SpecId, execute_block, execute_block_parallel_with, recover_senders,
};
use wake_triedb::{AccountInfo, AccountUpdate, Config, KECCAK_EMPTY, StateUpdates, TrieDb};

mod common;

use common::{Key, key, sign};

const CHAIN_ID: u64 = 1;
const BASE_FEE: u64 = 7;
const ETHER: u128 = 1_000_000_000_000_000_000;
const SENDERS: u8 = 8;

/// `slot0 += 1; slot[calldata[0..32]] = CALLER`: every call conflicts on slot 0.
const COUNTER: Address = Address::repeat_byte(0xc0);
const COUNTER_CODE: &[u8] =
    &[0x5f, 0x54, 0x60, 0x01, 0x01, 0x5f, 0x55, 0x33, 0x5f, 0x35, 0x55, 0x00];
/// `CALL(GAS, calldata[0..32], CALLVALUE)`: value forwarded along a chain.
const FORWARDER: Address = Address::repeat_byte(0xf0);
const FORWARDER_CODE: &[u8] = &[0x5f, 0x5f, 0x5f, 0x5f, 0x34, 0x5f, 0x35, 0x5a, 0xf1, 0x50, 0x00];
/// `slot0 = BALANCE(COINBASE); LOG0(that balance)`: reads the fee recipient.
const COINBASE_READER: Address = Address::repeat_byte(0xcb);
const COINBASE_READER_CODE: &[u8] =
    &[0x41, 0x31, 0x80, 0x5f, 0x55, 0x5f, 0x52, 0x60, 0x20, 0x5f, 0xa0, 0x00];
/// `slot0 = CREATE2(CALLVALUE, init = calldata[32..], salt = calldata[0..32])`.
const FACTORY: Address = Address::repeat_byte(0xfa);
const FACTORY_CODE: &[u8] = &[
    0x60, 0x20, 0x36, 0x03, 0x80, 0x60, 0x20, 0x5f, 0x37, 0x5f, 0x35, 0x90, 0x5f, 0x34, 0xf5, 0x5f,
    0x55, 0x00,
];
/// Init code deploying `CALLER SELFDESTRUCT`.
const INIT_SELFDESTRUCTIBLE: &[u8] = &[0x61, 0x33, 0xff, 0x5f, 0x52, 0x60, 0x02, 0x60, 0x1e, 0xf3];
/// Init code that self-destructs in the constructor (created and destroyed
/// in one transaction: deleted, so the address can be created again).
const INIT_SUICIDE: &[u8] = &[0x33, 0xff];
/// Init code writing `slot1 = 7` and deploying `CALLER SELFDESTRUCT`.
const INIT_WITH_STORAGE: &[u8] =
    &[0x60, 0x07, 0x60, 0x01, 0x55, 0x61, 0x33, 0xff, 0x5f, 0x52, 0x60, 0x02, 0x60, 0x1e, 0xf3];

/// An EIP-1559 transaction from `key`, signed.
fn tx(key: &Key, nonce: u64, to: TxKind, value: U256, input: Vec<u8>, gas_limit: u64) -> BlockTx {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit,
        max_fee_per_gas: 100,
        max_priority_fee_per_gas: 2,
        to,
        value,
        access_list: Default::default(),
        input: input.into(),
    };
    BlockTx::Eip1559(sign(tx, key))
}

/// A Cancun block of `txs` paying `beneficiary`.
fn block_of(beneficiary: Address, txs: Vec<BlockTx>) -> Block<BlockTx> {
    Block {
        header: header(beneficiary),
        body: BlockBody {
            transactions: txs,
            ommers: vec![],
            withdrawals: Some(Default::default()),
        },
    }
}

fn header(beneficiary: Address) -> Header {
    Header {
        number: 1,
        timestamp: 1_001,
        gas_limit: 60_000_000,
        base_fee_per_gas: Some(BASE_FEE),
        beneficiary,
        withdrawals_root: Some(alloy_consensus::EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::repeat_byte(0xbb)),
        ..Default::default()
    }
}

/// The genesis of every test: funded senders, the four contracts, and an
/// empty account with storage (an EIP-7610 create target is not needed:
/// collisions come from CREATE2 salts reused).
struct Chain {
    _dir: tempfile::TempDir,
    db: TrieDb,
    keys: Vec<Key>,
}

fn db_config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir.join("state.db"));
    config.cache_bytes = 4 << 20;
    config.chunk_bytes = 1 << 20;
    config
}

/// `chain` with its database closed and opened again: nothing cached.
fn reopened(chain: Chain) -> Chain {
    let Chain { _dir, db, keys } = chain;
    drop(db);
    let db = TrieDb::open(db_config(_dir.path())).expect("reopen triedb");
    Chain { _dir, db, keys }
}

fn chain() -> Chain {
    let dir = wake_tests::temp_db_dir("execution-parallel");
    let db = TrieDb::open(db_config(dir.path())).expect("open triedb");
    let keys: Vec<Key> = (1..=SENDERS).map(key).collect();
    let mut updates = StateUpdates::default();
    for k in &keys {
        let info = AccountInfo { nonce: 0, balance: U256::from(ETHER), code_hash: KECCAK_EMPTY };
        updates.accounts.insert(k.address, AccountUpdate::info(info));
    }
    for (address, code) in [
        (COUNTER, COUNTER_CODE),
        (FORWARDER, FORWARDER_CODE),
        (COINBASE_READER, COINBASE_READER_CODE),
        (FACTORY, FACTORY_CODE),
    ] {
        let info = AccountInfo { nonce: 1, balance: U256::from(1_000), code_hash: keccak256(code) };
        let storage = BTreeMap::from([(B256::ZERO, U256::from(1))]);
        updates.accounts.insert(address, AccountUpdate::Set { info, wipe_storage: false, storage });
        updates.codes.push(Bytes::from_static(code));
    }
    db.commit(0, &updates).expect("commit genesis");
    Chain { _dir: dir, db, keys }
}

/// A random block of `count` conflicting transactions from a few senders.
/// `invalid`: one transaction (at a random place) has a nonce too high.
fn random_block(chain: &Chain, rng: &mut StdRng, count: usize, invalid: bool) -> Block<BlockTx> {
    let senders = rng.random_range(1..=chain.keys.len());
    let mut nonces = vec![0u64; senders];
    let beneficiary = match rng.random_range(0..5) {
        0 => Address::repeat_byte(0xee), // does not exist: zero fees touch it empty
        1 => chain.keys[0].address,      // a sender
        2 => COINBASE_READER,
        3 => COUNTER,
        _ => chain.keys[senders - 1].address,
    };
    let bad = invalid.then(|| rng.random_range(0..count));
    let salts = [B256::repeat_byte(1), B256::repeat_byte(2), B256::repeat_byte(3)];
    let mut txs = Vec::with_capacity(count);
    for index in 0..count {
        let s = rng.random_range(0..senders);
        let key = &chain.keys[s];
        let other = chain.keys[rng.random_range(0..chain.keys.len())].address;
        let mut input = Vec::new();
        let (to, value) = match rng.random_range(0..9) {
            0 => (TxKind::Call(other), U256::from(rng.random_range(1..1_000_000u64))),
            1 => (TxKind::Call(beneficiary), U256::from(rng.random_range(0..1_000u64))),
            2 => {
                input.extend_from_slice(B256::repeat_byte(rng.random_range(0..4u8)).as_slice());
                (TxKind::Call(COUNTER), U256::ZERO)
            }
            3 => {
                input.extend_from_slice(B256::left_padding_from(other.as_slice()).as_slice());
                (TxKind::Call(FORWARDER), U256::from(rng.random_range(0..1_000u64)))
            }
            4 => (TxKind::Call(COINBASE_READER), U256::ZERO),
            5 | 6 => {
                input.extend_from_slice(salts[rng.random_range(0..salts.len())].as_slice());
                let init = [INIT_SELFDESTRUCTIBLE, INIT_SUICIDE, INIT_WITH_STORAGE];
                input.extend_from_slice(init[rng.random_range(0..init.len())]);
                (TxKind::Call(FACTORY), U256::from(rng.random_range(0..3u64)))
            }
            7 => {
                // Call a contract the factory may have created (or nothing).
                let salt = salts[rng.random_range(0..salts.len())];
                let init = [INIT_SELFDESTRUCTIBLE, INIT_WITH_STORAGE][rng.random_range(0..2)];
                (TxKind::Call(FACTORY.create2(salt, keccak256(init))), U256::ZERO)
            }
            _ => {
                let init = [INIT_SELFDESTRUCTIBLE, INIT_WITH_STORAGE, INIT_SUICIDE];
                input.extend_from_slice(init[rng.random_range(0..init.len())]);
                (TxKind::Create, U256::from(rng.random_range(0..10u64)))
            }
        };
        let mut nonce = nonces[s];
        if bad == Some(index) {
            nonce += 1;
        }
        nonces[s] += 1;
        let tx = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: 300_000,
            max_fee_per_gas: u128::from(BASE_FEE) + rng.random_range(0..20u128),
            max_priority_fee_per_gas: rng.random_range(0..4u128),
            to,
            value,
            access_list: Default::default(),
            input: input.into(),
        };
        txs.push(BlockTx::Eip1559(sign(tx, key)));
    }
    block_of(beneficiary, txs)
}

fn serial(chain: &Chain, block: &Block<BlockTx>) -> Result<BlockOutcome, BlockError> {
    let spec = ChainSpec::single(CHAIN_ID, SpecId::CANCUN);
    let senders = recover_senders(&block.body.transactions, SpecId::CANCUN, 1).expect("senders");
    let snapshot = chain.db.snapshot(0).expect("snapshot");
    let hashes = BTreeMap::new();
    execute_block(&spec, block, &senders, SnapshotState::new(&snapshot, &hashes))
}

fn parallel(
    chain: &Chain,
    block: &Block<BlockTx>,
    config: ParallelConfig,
) -> Result<(BlockOutcome, ParallelStats), BlockError> {
    let spec = ChainSpec::single(CHAIN_ID, SpecId::CANCUN);
    let senders = recover_senders(&block.body.transactions, SpecId::CANCUN, 1).expect("senders");
    let snapshot = chain.db.snapshot(0).expect("snapshot");
    let hashes = BTreeMap::new();
    let state = SnapshotState::new(&snapshot, &hashes);
    execute_block_parallel_with(&spec, block, &senders, state, config)
}

/// The parallel executor over a prefetch that ran `rounds` discovery
/// rounds on the executor's threads: it commits discovery's runs.
fn parallel_discovered(
    chain: &Chain,
    block: &Block<BlockTx>,
    config: ParallelConfig,
    rounds: usize,
) -> Result<(BlockOutcome, ParallelStats), BlockError> {
    let spec = ChainSpec::single(CHAIN_ID, SpecId::CANCUN);
    let senders = recover_senders(&block.body.transactions, SpecId::CANCUN, 1).expect("senders");
    let snapshot = chain.db.snapshot(0).expect("snapshot");
    let hashes = BTreeMap::new();
    let view = SnapshotState::new(&snapshot, &hashes);
    let mut prefetched = Prefetched::load(view, &snapshot, block, &senders).expect("load");
    prefetched
        .discover(&spec, block, &senders, &snapshot, rounds, config.threads)
        .expect("discover");
    execute_block_parallel_with(&spec, block, &senders, &prefetched, config)
}

/// Serial and parallel agree on `block` under `config`: same receipts,
/// diff and root, or the same rejection.
fn assert_same(chain: &Chain, block: &Block<BlockTx>, config: ParallelConfig, seed: u64) {
    check_same(chain, block, config, seed, parallel(chain, block, config));
}

/// `got` (a parallel run of `block` under `config`) agrees with serial.
fn check_same(
    chain: &Chain,
    block: &Block<BlockTx>,
    config: ParallelConfig,
    seed: u64,
    got: Result<(BlockOutcome, ParallelStats), BlockError>,
) {
    let expected = serial(chain, block);
    match (expected, got) {
        (Ok(expected), Ok((got, stats))) => {
            assert_eq!(got.receipts, expected.receipts, "seed {seed} {config:?}: receipts");
            assert_eq!(got.gas_used, expected.gas_used, "seed {seed}: gas used");
            assert_eq!(got.receipts_root, expected.receipts_root, "seed {seed}: receipts root");
            assert_eq!(got.logs_bloom, expected.logs_bloom, "seed {seed}: bloom");
            assert_eq!(got.updates, expected.updates, "seed {seed} {config:?} {stats:?}: diff");
            let root = chain.db.root_of(&got.updates).expect("root");
            assert_eq!(root, chain.db.root_of(&expected.updates).expect("root"), "seed {seed}");
            let txs = block.body.transactions.len();
            assert_eq!(stats.validated + stats.exact, txs, "seed {seed}: every tx committed once");
        }
        (Err(expected), Err(got)) => {
            assert_eq!(got.to_string(), expected.to_string(), "seed {seed}: rejection");
        }
        (expected, got) => panic!(
            "seed {seed} {config:?}: serial {:?}, parallel {:?}",
            expected.map(|o| o.gas_used),
            got.map(|(o, s)| (o.gas_used, s))
        ),
    }
}

#[test]
fn random_conflicting_blocks_match_serial() {
    let chain = chain();
    let configs = [
        ParallelConfig::new(2),
        ParallelConfig::new(4),
        ParallelConfig { threads: 2, always_speculate: true },
        ParallelConfig { threads: 1, always_speculate: true },
    ];
    let mut succeeded = 0;
    let mut discovered = 0;
    for seed in 0..160u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let count = rng.random_range(2..80);
        let invalid = seed % 7 == 3;
        let block = random_block(&chain, &mut rng, count, invalid);
        succeeded += usize::from(serial(&chain, &block).is_ok());
        for config in configs {
            assert_same(&chain, &block, config, seed);
        }
        for (threads, rounds) in [(2, 1), (2, 4), (1, 4)] {
            let config = ParallelConfig::new(threads);
            let got = parallel_discovered(&chain, &block, config, rounds);
            if let Ok((_, stats)) = &got {
                discovered += stats.discovered;
            }
            check_same(&chain, &block, config, seed, got);
        }
    }
    // Discovery's runs were used, not only made.
    assert!(discovered > 1_000, "{discovered} runs taken from discovery");
    // The generator is not vacuous: most blocks are valid, some are not.
    assert!((100..160).contains(&succeeded), "{succeeded} of 160 blocks valid");
}

#[test]
fn every_kind_of_transaction_succeeds_somewhere() {
    // Guards the generator: creations, self-destructs, forwarded value and
    // fee-recipient reads really happen (a broken bytecode would make the
    // differential test compare failures only).
    let chain = chain();
    let mut rng = StdRng::seed_from_u64(7);
    let block = random_block(&chain, &mut rng, 79, false);
    let outcome = serial(&chain, &block).expect("valid block");
    let succeeded = outcome.receipts.iter().filter(|r| r.is_success()).count();
    assert!(succeeded * 10 >= block.body.transactions.len() * 8, "{succeeded} succeeded");
    let updates = &outcome.updates;
    let created = updates.accounts.keys().filter(|a| {
        [INIT_SELFDESTRUCTIBLE, INIT_WITH_STORAGE].iter().any(|init| {
            (0..3).any(|s| FACTORY.create2(B256::repeat_byte(s + 1), keccak256(init)) == **a)
        })
    });
    assert!(created.count() > 0, "the factory created contracts");
    assert!(!updates.codes.is_empty(), "new code was deployed");
    let AccountUpdate::Set { storage, .. } = &updates.accounts[&COUNTER] else {
        panic!("counter written")
    };
    assert!(storage[&B256::ZERO] > U256::from(1), "hot slot incremented");
}

/// Each sender pays a distinct fresh address; the fee recipient is not
/// touched by any transaction.
fn conflict_free_transfers(chain: &Chain) -> Vec<BlockTx> {
    (0..SENDERS)
        .map(|s| {
            let to = TxKind::Call(Address::with_last_byte(s + 1));
            tx(&chain.keys[usize::from(s)], 0, to, U256::from(1_000), vec![], 21_000)
        })
        .collect()
}

#[test]
fn conflict_free_block_commits_speculative_runs() {
    let chain = chain();
    let txs = conflict_free_transfers(&chain);
    let block = block_of(Address::repeat_byte(0xee), txs);
    let config = ParallelConfig { threads: 2, always_speculate: true };
    let (_, stats) = parallel(&chain, &block, config).expect("valid block");
    assert_eq!(stats.validated, SENDERS as usize, "{stats:?}: every run validates");
    assert_eq!(stats.aborted, 0, "{stats:?}");
    assert_same(&chain, &block, config, 0);
}

#[test]
fn conflict_free_block_is_executed_by_discovery() {
    let chain = chain();
    let txs = conflict_free_transfers(&chain);
    let block = block_of(Address::repeat_byte(0xee), txs);
    let config = ParallelConfig::new(2);
    let (_, stats) = parallel_discovered(&chain, &block, config, 4).expect("valid block");
    let all = SENDERS as usize;
    assert_eq!(stats.discovered, all, "{stats:?}: every transaction ran in discovery");
    assert_eq!((stats.validated, stats.exact, stats.aborted), (all, 0, 0), "{stats:?}");
    check_same(&chain, &block, config, 0, parallel_discovered(&chain, &block, config, 4));
    // One thread with discovery's runs commits them (no serial fallback).
    let config = ParallelConfig::new(1);
    let (_, stats) = parallel_discovered(&chain, &block, config, 4).expect("valid block");
    assert_eq!((stats.threads, stats.serial, stats.discovered), (1, None, all), "{stats:?}");
    check_same(&chain, &block, config, 0, parallel_discovered(&chain, &block, config, 4));
}

/// A sender's later transactions run in discovery without the nonce check
/// (to find their reads) and are not kept; the counter's calls all read
/// its hot slot, so all but the first fail validation and run again.
#[test]
fn discovery_runs_that_cannot_stand_are_not_used() {
    let chain = chain();
    let mut txs: Vec<BlockTx> = (0..4)
        .map(|nonce| tx(&chain.keys[0], nonce, TxKind::Call(COUNTER), U256::ZERO, vec![], 90_000))
        .collect();
    txs.extend((1..4).map(|s| {
        tx(&chain.keys[s], 0, TxKind::Call(COUNTER), U256::ZERO, vec![s as u8; 32], 90_000)
    }));
    let block = block_of(Address::repeat_byte(0xee), txs);
    let config = ParallelConfig::new(2);
    let (_, stats) = parallel_discovered(&chain, &block, config, 4).expect("valid block");
    assert_eq!(stats.discovered, 4, "{stats:?}: the first sender's nonce 0 and three others");
    assert_eq!(stats.validated, 1, "{stats:?}: only the first reads the counter unchanged");
    assert_eq!(stats.validated + stats.exact, 7, "{stats:?}");
    check_same(&chain, &block, config, 0, parallel_discovered(&chain, &block, config, 4));
}

/// Runs are handed over once, and only for the block they were made for.
#[test]
fn discovery_runs_serve_only_their_block_once() {
    let chain = chain();
    let spec = ChainSpec::single(CHAIN_ID, SpecId::CANCUN);
    let txs = conflict_free_transfers(&chain);
    let block = block_of(Address::repeat_byte(0xee), txs.clone());
    let other_header = block_of(Address::repeat_byte(0xef), txs.clone());
    let reordered = block_of(Address::repeat_byte(0xee), txs.into_iter().rev().collect());
    let snapshot = chain.db.snapshot(0).expect("snapshot");
    let hashes = BTreeMap::new();
    let config = ParallelConfig::new(2);
    let senders = |b: &Block<BlockTx>| recover_senders(&b.body.transactions, SpecId::CANCUN, 1);
    for (target, expect_discovered) in
        [(&block, SENDERS as usize), (&other_header, 0), (&reordered, 0)]
    {
        let view = SnapshotState::new(&snapshot, &hashes);
        let found = senders(&block).expect("senders");
        let mut prefetched = Prefetched::load(view, &snapshot, &block, &found).expect("load");
        prefetched.discover(&spec, &block, &found, &snapshot, 4, 2).expect("discover");
        let target_senders = senders(target).expect("senders");
        let first =
            execute_block_parallel_with(&spec, target, &target_senders, &prefetched, config);
        assert_eq!(first.as_ref().map(|(_, s)| s.discovered).ok(), Some(expect_discovered));
        check_same(&chain, target, config, 0, first);
        let again =
            execute_block_parallel_with(&spec, target, &target_senders, &prefetched, config);
        assert_eq!(again.as_ref().map(|(_, s)| s.discovered).ok(), Some(0), "taken once");
        check_same(&chain, target, config, 0, again);
    }
}

#[test]
fn dependent_chain_is_detected_and_matches_serial() {
    let chain = chain();
    // One sender, 200 transactions: each depends on the one before (nonce).
    let to = TxKind::Call(Address::with_last_byte(9));
    let txs = (0..200)
        .map(|nonce| tx(&chain.keys[0], nonce, to, U256::from(1), vec![], 21_000))
        .collect();
    let block = block_of(Address::repeat_byte(0xee), txs);
    for config in [ParallelConfig::new(2), ParallelConfig { threads: 2, always_speculate: true }] {
        let (_, stats) = parallel(&chain, &block, config).expect("valid block");
        // How many runs ahead of their turn fail depends on timing; the
        // detector bounds them: it fires after at most 6 failures, and
        // after it fires at most a full window (4 per thread) of runs
        // started earlier can still fail.
        let bound = (stats.chain_detected + 1) * (6 + 4 * stats.threads);
        assert!(stats.aborted <= bound, "{stats:?}: wasted runs over the detector's bound");
        assert_eq!(stats.validated + stats.exact, 200, "{stats:?}");
    }
    assert_same(&chain, &block, ParallelConfig::new(2), 0);
    assert_same(&chain, &block, ParallelConfig { threads: 2, always_speculate: true }, 0);
    // Over discovery, only the first transaction's run can stand (the
    // others ran with the sender's pre-state nonce); the chain detector
    // takes over as without it.
    let config = ParallelConfig::new(2);
    let (_, stats) = parallel_discovered(&chain, &block, config, 4).expect("valid block");
    assert_eq!(stats.discovered, 1, "{stats:?}");
    check_same(&chain, &block, config, 0, parallel_discovered(&chain, &block, config, 4));
}

/// Discovery runs find the slots only running a contract reveals (here the
/// counter's `slot[calldata]`), load them (in a batch when they are not in
/// triedb's cache, at once when they are), and change nothing: serial and
/// parallel over the discovered prefetch match serial without.
#[test]
fn discovery_prefetch_finds_contract_slots_and_changes_nothing() {
    for cold in [true, false] {
        let chain = if cold { reopened(chain()) } else { chain() };
        discovery_finds_contract_slots(&chain, cold);
    }
}

/// `Prefetched::fetch_guessing` (the senders guessed in a first round,
/// then read with the slots it reveals in one batch) loads what `load` +
/// `discover` load, in one round on a cold state, and leaves every
/// transaction's final run for the executor; results over it, and over
/// `fetch` (which does not guess for so few senders), match serial
/// without a prefetch.
#[test]
fn fetch_guesses_senders_and_changes_nothing() {
    for cold in [true, false] {
        let chain = if cold { reopened(chain()) } else { chain() };
        let (keys, block, senders) = counter_calls(&chain);
        let spec = ChainSpec::single(CHAIN_ID, SpecId::CANCUN);
        let snapshot = chain.db.snapshot(0).expect("snapshot");
        let hashes = BTreeMap::new();
        let fetch = || {
            let view = SnapshotState::new(&snapshot, &hashes);
            Prefetched::fetch_guessing(view, &snapshot, &spec, &block, &senders, 3, 2)
                .expect("fetch")
        };
        // 3 accounts called or paid (counter, fee recipient, beacon roots)
        // against 8 senders: `fetch` itself does not guess for this block.
        let plain = || {
            let view = SnapshotState::new(&snapshot, &hashes);
            Prefetched::fetch(view, &snapshot, &spec, &block, &senders, 3, 2).expect("fetch")
        };
        let fetched = fetch();
        let stats = fetched.stats();
        // After the fetch, which must find the state cold.
        let mut reference =
            Prefetched::load(SnapshotState::new(&snapshot, &hashes), &snapshot, &block, &senders)
                .expect("load");
        reference.discover(&spec, &block, &senders, &snapshot, 3, 2).expect("discover");
        assert!(stats.accounts >= SENDERS as usize, "cold {cold}: {stats:?}");
        assert_eq!(stats.slots, reference.stats().slots, "cold {cold}: {stats:?}");
        assert_eq!(stats.discovery_rounds, usize::from(cold), "cold {cold}: {stats:?}");
        let before = chain.db.stats();
        for (s, key) in keys.iter().chain([&B256::ZERO]).enumerate() {
            let index = U256::from_be_bytes(key.0);
            revm::database::DatabaseRef::storage_ref(&fetched, COUNTER, index).expect("slot");
            revm::database::DatabaseRef::basic_ref(&fetched, senders[s]).expect("sender");
        }
        let after = chain.db.stats();
        assert_eq!(after.cache_hits + after.cache_misses, before.cache_hits + before.cache_misses);
        let runs = fetched.take_speculative_runs().expect("discovery's runs");
        assert_eq!(runs.len(), SENDERS as usize, "cold {cold}: a final run per transaction");

        let expected = serial(&chain, &block).expect("valid block");
        let fetched = fetch();
        let (got, _) =
            execute_block_parallel_with(&spec, &block, &senders, &fetched, ParallelConfig::new(2))
                .expect("parallel over the prefetch");
        assert_eq!(got.receipts, expected.receipts);
        assert_eq!(got.updates, expected.updates);
        let got = execute_block(&spec, &block, &senders, fetch()).expect("serial over it");
        assert_eq!(got.receipts, expected.receipts);
        assert_eq!(got.updates, expected.updates);
        let plain = plain();
        assert_eq!(plain.stats().slots, stats.slots);
        let (got, _) =
            execute_block_parallel_with(&spec, &block, &senders, &plain, ParallelConfig::new(2))
                .expect("parallel over the plain fetch");
        assert_eq!(got.receipts, expected.receipts);
        assert_eq!(got.updates, expected.updates);
    }
}

/// A block in which each sender calls the counter once, with one of the
/// returned keys as calldata (the counter reads `slot[calldata]` and slot
/// 0), and its senders.
fn counter_calls(chain: &Chain) -> ([B256; 3], Block<BlockTx>, Vec<Address>) {
    let keys = [B256::with_last_byte(5), B256::with_last_byte(6), B256::with_last_byte(7)];
    let txs = (0..SENDERS as usize)
        .map(|s| {
            let input = keys[s % keys.len()].to_vec();
            tx(&chain.keys[s], 0, TxKind::Call(COUNTER), U256::ZERO, input, 100_000)
        })
        .collect();
    let block = block_of(Address::repeat_byte(0xee), txs);
    let senders = recover_senders(&block.body.transactions, SpecId::CANCUN, 1).expect("senders");
    (keys, block, senders)
}

fn discovery_finds_contract_slots(chain: &Chain, cold: bool) {
    let (keys, block, senders) = counter_calls(chain);
    let spec = ChainSpec::single(CHAIN_ID, SpecId::CANCUN);
    let snapshot = chain.db.snapshot(0).expect("snapshot");
    let hashes = BTreeMap::new();
    let view = SnapshotState::new(&snapshot, &hashes);
    let mut prefetched = Prefetched::load(view, &snapshot, &block, &senders).expect("prefetch");
    let loaded = prefetched.stats();
    prefetched.discover(&spec, &block, &senders, &snapshot, 3, 2).expect("discover");
    let stats = prefetched.stats();
    // Slot 0 (the hot counter) and the three `slot[calldata]`.
    assert_eq!(stats.slots, loaded.slots + 4, "{stats:?}");
    let rounds = usize::from(cold);
    assert_eq!(stats.discovery_rounds, rounds, "cold {cold}: one batch round, or none if cached");
    let before = chain.db.stats();
    for key in keys.iter().chain([&B256::ZERO]) {
        let index = U256::from_be_bytes(key.0);
        revm::database::DatabaseRef::storage_ref(&prefetched, COUNTER, index).expect("slot read");
    }
    let after = chain.db.stats();
    assert_eq!(after.cache_hits + after.cache_misses, before.cache_hits + before.cache_misses);

    let expected = serial(chain, &block).expect("valid block");
    let (got, _) =
        execute_block_parallel_with(&spec, &block, &senders, &prefetched, ParallelConfig::new(2))
            .expect("parallel over the prefetch");
    assert_eq!(got.receipts, expected.receipts);
    assert_eq!(got.updates, expected.updates);
    let got =
        execute_block(&spec, &block, &senders, &prefetched).expect("serial over the prefetch");
    assert_eq!(got.receipts, expected.receipts);
    assert_eq!(got.updates, expected.updates);
}
