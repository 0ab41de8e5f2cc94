//! Malformed and invalid transactions are rejected with a typed reason and
//! never panic: bad RLP, oversized input, bad signatures, wrong chain id,
//! nonce too low / too high, insufficient funds, intrinsic gas too low,
//! oversized init code, block gas exhausted, a fork's unknown type. Plus the
//! happy path and random byte mutations of valid encodings.
//!
//! Blocks execute over a real triedb version (a temporary file under
//! `target/test-dbs`).

use alloy_consensus::{
    Block, BlockBody, Header, SignableTransaction, TxEip1559, TxEip4844, TxLegacy,
};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use wake_execution::{
    BlockError, BlockOutcome, BlockTx, ChainSpec, Prefetched, SnapshotState, SpecId, TX_BYTES_MAX,
    TxError, decode_block, decode_tx, execute_block, recover_sender, recover_senders,
};
use wake_triedb::{AccountInfo, AccountUpdate, Config, KECCAK_EMPTY, StateUpdates, TrieDb};

mod common;

use common::{Key, key, sign};

const CHAIN_ID: u64 = 1;
const BASE_FEE: u64 = 7;
const ETHER: u128 = 1_000_000_000_000_000_000;

fn transfer(nonce: u64, to: Address, value: U256) -> TxEip1559 {
    TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 100,
        max_priority_fee_per_gas: 2,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: Bytes::new(),
    }
}

fn signed_1559(tx: TxEip1559, key: &Key) -> BlockTx {
    BlockTx::Eip1559(sign(tx, key))
}

fn header(number: u64) -> Header {
    Header {
        number,
        timestamp: 1_000 + number,
        gas_limit: 30_000_000,
        base_fee_per_gas: Some(BASE_FEE),
        beneficiary: Address::repeat_byte(0xcb),
        withdrawals_root: Some(alloy_consensus::EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(0),
        parent_beacon_block_root: Some(B256::repeat_byte(0xbb)),
        ..Default::default()
    }
}

fn block(txs: Vec<BlockTx>) -> Block<BlockTx> {
    Block {
        header: header(1),
        body: BlockBody {
            transactions: txs,
            ommers: vec![],
            withdrawals: Some(Default::default()),
        },
    }
}

/// A triedb holding `accounts` (address → balance) as version 0.
struct State {
    _dir: tempfile::TempDir,
    db: TrieDb,
}

fn state(accounts: &[(Address, U256)]) -> State {
    let dir = wake_tests::temp_db_dir("execution-transactions");
    let mut config = Config::new(dir.path().join("state.db"));
    config.cache_bytes = 1 << 20;
    config.chunk_bytes = 1 << 20;
    let db = TrieDb::open(config).expect("open triedb");
    let mut updates = StateUpdates::default();
    for (address, balance) in accounts {
        updates.accounts.insert(
            *address,
            AccountUpdate::info(AccountInfo {
                nonce: 0,
                balance: *balance,
                code_hash: KECCAK_EMPTY,
            }),
        );
    }
    db.commit(0, &updates).expect("commit pre-state");
    State { _dir: dir, db }
}

fn run(state: &State, spec: SpecId, block: &Block<BlockTx>) -> Result<BlockOutcome, BlockError> {
    let chain = ChainSpec::single(CHAIN_ID, spec);
    let senders = recover_senders(&block.body.transactions, spec, 2)
        .map_err(|(index, source)| BlockError::Transaction { index, source })?;
    let snapshot = state.db.snapshot(0).expect("snapshot");
    let hashes = BTreeMap::new();
    execute_block(&chain, block, &senders, SnapshotState::new(&snapshot, &hashes))
}

fn rejected_tx(result: Result<BlockOutcome, BlockError>) -> (usize, TxError) {
    match result {
        Err(BlockError::Transaction { index, source }) => (index, source),
        Err(other) => panic!("expected a transaction error, got {other}"),
        Ok(_) => panic!("expected a rejection, the block executed"),
    }
}

fn funded(key: &Key) -> State {
    state(&[(key.address, U256::from(ETHER))])
}

#[test]
fn transfer_executes_and_yields_a_diff() {
    let alice = key(1);
    let bob = Address::repeat_byte(0xb0);
    let st = funded(&alice);
    let tx = signed_1559(transfer(0, bob, U256::from(1_000)), &alice);
    let outcome = run(&st, SpecId::CANCUN, &block(vec![tx])).expect("valid block");
    assert_eq!(outcome.gas_used, 21_000);
    assert_eq!(outcome.receipts.len(), 1);
    assert!(outcome.receipts[0].is_success());
    let AccountUpdate::Set { info, .. } = &outcome.updates.accounts[&bob] else {
        panic!("recipient must be set")
    };
    assert_eq!(info.balance, U256::from(1_000));
    let AccountUpdate::Set { info, .. } = &outcome.updates.accounts[&alice.address] else {
        panic!("sender must be set")
    };
    assert_eq!(info.nonce, 1);
    // Sender pays value + 21000 * (base fee + tip); the coinbase gets the tip.
    let spent = U256::from(1_000u64 + 21_000 * (BASE_FEE + 2));
    assert_eq!(info.balance, U256::from(ETHER) - spent);
    let AccountUpdate::Set { info, .. } = &outcome.updates.accounts[&Address::repeat_byte(0xcb)]
    else {
        panic!("coinbase must be set")
    };
    assert_eq!(info.balance, U256::from(21_000u64 * 2));
    // Committing the diff gives a new version.
    st.db.commit(1, &outcome.updates).expect("commit block");
}

#[test]
fn bad_rlp_is_a_decode_error() {
    for bytes in [&[][..], &[0xf8, 0x01], &[0x02, 0xc0], &[0x7f, 0x01, 0x02], &[0xc1, 0xc0]] {
        assert!(
            matches!(decode_tx(bytes), Err(TxError::Decode(_))),
            "{bytes:02x?} must not decode"
        );
    }
    let alice = key(1);
    let mut good = signed_1559(transfer(0, Address::ZERO, U256::ZERO), &alice).encoded_2718();
    good.push(0x00);
    assert!(matches!(decode_tx(&good), Err(TxError::Decode(_))), "trailing byte");
    assert!(matches!(decode_block(&[0xc0]), Err(BlockError::Decode(_))));
}

#[test]
fn oversized_data_is_refused_before_decoding() {
    let alice = key(1);
    let mut tx = transfer(0, Address::ZERO, U256::ZERO);
    tx.input = vec![0xab; TX_BYTES_MAX].into();
    tx.gas_limit = 10_000_000;
    let bytes = signed_1559(tx, &alice).encoded_2718();
    assert!(matches!(decode_tx(&bytes), Err(TxError::Oversized { max: TX_BYTES_MAX, .. })));
    let huge = vec![0u8; wake_execution::BLOCK_BYTES_MAX + 1];
    assert!(matches!(decode_block(&huge), Err(BlockError::TooLarge { .. })));
}

#[test]
fn bad_signature_is_refused() {
    let tx = TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce: 0,
        gas_price: 100,
        gas_limit: 21_000,
        to: TxKind::Call(Address::ZERO),
        value: U256::ZERO,
        input: Bytes::new(),
    };
    // r = 0 is not a point; s above n/2 is refused from Homestead on.
    let zero =
        BlockTx::Legacy(tx.clone().into_signed(Signature::new(U256::ZERO, U256::ZERO, false)));
    assert_eq!(recover_sender(&zero, SpecId::CANCUN), Err(TxError::InvalidSignature));
    let alice = key(1);
    let good = sign(tx.clone(), &alice);
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .unwrap();
    let sig = good.signature();
    let high_s = Signature::new(sig.r(), n - sig.s(), !sig.v());
    let high = BlockTx::Legacy(tx.into_signed(high_s));
    assert_eq!(recover_sender(&high, SpecId::CANCUN), Err(TxError::InvalidSignature));
    assert_eq!(
        recover_senders(&[BlockTx::Legacy(good), high], SpecId::CANCUN, 2).unwrap_err().0,
        1
    );
}

#[test]
fn wrong_chain_id_is_refused() {
    let alice = key(1);
    let st = funded(&alice);
    let mut tx = transfer(0, Address::ZERO, U256::ZERO);
    tx.chain_id = 5;
    let (index, error) =
        rejected_tx(run(&st, SpecId::CANCUN, &block(vec![signed_1559(tx, &alice)])));
    assert_eq!(index, 0);
    assert_eq!(error, TxError::ChainIdMismatch { expected: CHAIN_ID, got: Some(5) });
}

#[test]
fn nonce_too_low_and_too_high_are_refused() {
    let alice = key(1);
    let st = funded(&alice);
    let first = signed_1559(transfer(0, Address::ZERO, U256::ZERO), &alice);
    let replay = first.clone();
    let (index, error) = rejected_tx(run(&st, SpecId::CANCUN, &block(vec![first, replay])));
    assert_eq!((index, error), (1, TxError::NonceTooLow { tx: 0, state: 1 }));
    let gap = signed_1559(transfer(3, Address::ZERO, U256::ZERO), &alice);
    let (_, error) = rejected_tx(run(&st, SpecId::CANCUN, &block(vec![gap])));
    assert_eq!(error, TxError::NonceTooHigh { tx: 3, state: 0 });
}

#[test]
fn insufficient_funds_is_refused() {
    let alice = key(1);
    let st = funded(&alice);
    let tx = signed_1559(transfer(0, Address::ZERO, U256::from(ETHER)), &alice);
    let (_, error) = rejected_tx(run(&st, SpecId::CANCUN, &block(vec![tx])));
    assert!(matches!(error, TxError::InsufficientFunds { .. }), "{error}");
    // An unknown sender has nothing at all.
    let nobody = key(9);
    let tx = signed_1559(transfer(0, Address::ZERO, U256::ZERO), &nobody);
    let (_, error) = rejected_tx(run(&st, SpecId::CANCUN, &block(vec![tx])));
    assert!(matches!(error, TxError::InsufficientFunds { .. }), "{error}");
}

#[test]
fn intrinsic_gas_too_low_is_refused() {
    let alice = key(1);
    let st = funded(&alice);
    let mut tx = transfer(0, Address::ZERO, U256::ZERO);
    tx.gas_limit = 20_999;
    let (_, error) = rejected_tx(run(&st, SpecId::CANCUN, &block(vec![signed_1559(tx, &alice)])));
    assert_eq!(error, TxError::IntrinsicGasTooLow { gas_limit: 20_999, intrinsic: 21_000 });
}

#[test]
fn oversized_init_code_is_refused() {
    let alice = key(1);
    let st = funded(&alice);
    let mut tx = transfer(0, Address::ZERO, U256::ZERO);
    tx.to = TxKind::Create;
    tx.input = vec![0x00; 2 * 24_576 + 1].into();
    tx.gas_limit = 5_000_000;
    let (_, error) = rejected_tx(run(&st, SpecId::CANCUN, &block(vec![signed_1559(tx, &alice)])));
    assert_eq!(error, TxError::InitCodeTooLarge);
}

#[test]
fn block_gas_and_fork_types_are_enforced() {
    let alice = key(1);
    let st = funded(&alice);
    let mut tx = transfer(0, Address::ZERO, U256::ZERO);
    tx.gas_limit = 30_000_001;
    let (_, error) = rejected_tx(run(&st, SpecId::CANCUN, &block(vec![signed_1559(tx, &alice)])));
    assert_eq!(error, TxError::BlockGasExceeded { gas_limit: 30_000_001, available: 30_000_000 });

    let blob = TxEip4844 {
        chain_id: CHAIN_ID,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 100,
        max_priority_fee_per_gas: 1,
        to: Address::ZERO,
        value: U256::ZERO,
        access_list: Default::default(),
        blob_versioned_hashes: vec![B256::with_last_byte(1)],
        max_fee_per_blob_gas: 1,
        input: Bytes::new(),
    };
    let blob = BlockTx::Eip4844(sign(blob, &alice));
    let mut shanghai = block(vec![blob]);
    shanghai.header.blob_gas_used = None;
    shanghai.header.excess_blob_gas = None;
    shanghai.header.parent_beacon_block_root = None;
    let (_, error) = rejected_tx(run(&st, SpecId::SHANGHAI, &shanghai));
    assert_eq!(error, TxError::TypeNotEnabled { ty: 3, spec: SpecId::SHANGHAI });
}

/// Pre-Byzantium receipts need intermediate state roots, which only
/// `execute_block_with_roots` can get; Prague is not implemented. Both are
/// refused, never run wrongly.
#[test]
fn unsupported_forks_are_refused_not_run() {
    let alice = key(1);
    let st = funded(&alice);
    let result = run(&st, SpecId::HOMESTEAD, &block(vec![]));
    assert!(matches!(result, Err(BlockError::UnsupportedSpec(SpecId::HOMESTEAD))));
    let result = run(&st, SpecId::PRAGUE, &block(vec![]));
    assert!(matches!(result, Err(BlockError::UnsupportedSpec(SpecId::PRAGUE))));
}

/// Random byte flips, truncations and extensions of valid encodings never
/// panic the decoders.
#[test]
fn mutated_encodings_never_panic() {
    let alice = key(1);
    let tx = signed_1559(transfer(0, Address::ZERO, U256::from(5)), &alice);
    let encoded_tx = tx.encoded_2718();
    let mut encoded_block = Vec::new();
    alloy_rlp::Encodable::encode(&block(vec![tx]), &mut encoded_block);
    assert!(decode_tx(&encoded_tx).is_ok());
    assert!(decode_block(&encoded_block).is_ok());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e57);
    for round in 0..20_000 {
        let base = if round % 2 == 0 { &encoded_tx } else { &encoded_block };
        let mut bytes = base.clone();
        match rng.random_range(0..3) {
            0 => {
                for _ in 0..rng.random_range(1..4) {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] = rng.random();
                }
            }
            1 => bytes.truncate(rng.random_range(0..bytes.len())),
            _ => bytes.extend((0..rng.random_range(1..8)).map(|_| rng.random::<u8>())),
        }
        if let Ok(tx) = decode_tx(&bytes) {
            let _ = recover_sender(&tx, SpecId::CANCUN);
        }
        let _ = decode_block(&bytes);
    }
}

/// Recovery on several threads gives the senders, in order, of a block
/// mixing keys and transaction types; a bad signature is reported at its
/// own index whichever thread meets it.
#[test]
fn parallel_recovery_matches_serial() {
    let keys: Vec<Key> = (1..=7).map(key).collect();
    let mut txs = Vec::new();
    let mut expected = Vec::new();
    for i in 0..200u64 {
        let k = &keys[(i % 7) as usize];
        let tx = if i % 3 == 0 {
            BlockTx::Legacy(sign(
                TxLegacy {
                    chain_id: Some(CHAIN_ID),
                    nonce: i,
                    gas_price: 100,
                    gas_limit: 21_000,
                    to: TxKind::Call(Address::ZERO),
                    value: U256::from(i),
                    input: Bytes::new(),
                },
                k,
            ))
        } else {
            signed_1559(transfer(i, Address::ZERO, U256::from(i)), k)
        };
        txs.push(tx);
        expected.push(k.address);
    }
    for threads in [1, 2, 4, 64] {
        assert_eq!(recover_senders(&txs, SpecId::CANCUN, threads).unwrap(), expected);
    }
    let unsigned = TxLegacy { gas_limit: 21_000, ..Default::default() };
    txs[150] = BlockTx::Legacy(unsigned.into_signed(Signature::new(U256::ZERO, U256::ZERO, false)));
    for threads in [1, 2, 4] {
        let (index, error) = recover_senders(&txs, SpecId::CANCUN, threads).unwrap_err();
        assert_eq!((index, error), (150, TxError::InvalidSignature));
    }
}

/// A devnet from a geth-style genesis: its alloc committed as version 0, a
/// Cancun block on top, the diff committed as version 1.
#[test]
fn devnet_genesis_block_executes() {
    let alice = key(1);
    let json = format!(
        r#"{{
            "config": {{ "chainId": {CHAIN_ID}, "homesteadBlock": 0, "eip150Block": 0,
                "eip155Block": 0, "eip158Block": 0, "byzantiumBlock": 0,
                "constantinopleBlock": 0, "petersburgBlock": 0, "istanbulBlock": 0,
                "berlinBlock": 0, "londonBlock": 0, "terminalTotalDifficulty": 0,
                "shanghaiTime": 0, "cancunTime": 0 }},
            "gasLimit": "0x1c9c380",
            "baseFeePerGas": "0x7",
            "alloc": {{ "{}": {{ "balance": "0xde0b6b3a7640000" }} }}
        }}"#,
        alice.address
    );
    let genesis = wake_execution::Genesis::from_json(&json).expect("genesis");
    assert_eq!(genesis.spec.spec_at(1, 1_001), SpecId::CANCUN);
    let dir = wake_tests::temp_db_dir("execution-devnet");
    let mut config = Config::new(dir.path().join("devnet.db"));
    config.cache_bytes = 1 << 20;
    config.chunk_bytes = 1 << 20;
    let db = TrieDb::open(config).expect("open triedb");
    db.commit(0, &genesis.state_updates()).expect("commit genesis");

    let block = block(vec![signed_1559(transfer(0, Address::ZERO, U256::from(1)), &alice)]);
    let senders = recover_senders(&block.body.transactions, SpecId::CANCUN, 1).expect("senders");
    let snapshot = db.snapshot(0).expect("snapshot");
    let hashes = BTreeMap::new();
    let outcome =
        execute_block(&genesis.spec, &block, &senders, SnapshotState::new(&snapshot, &hashes))
            .expect("valid block");
    drop(snapshot);
    assert_eq!(outcome.gas_used, 21_000);
    db.commit(1, &outcome.updates).expect("commit block");
    let after = db.snapshot(1).expect("snapshot 1");
    let account = after.account(&alice.address).expect("read").expect("sender exists");
    assert_eq!(account.nonce, 1);
}

/// The prefetch reads a block's senders, recipients, fee recipient and
/// access-list slots in one batch; revm's reads of them are then answered
/// without touching triedb, and the outcome is the same as without it.
#[test]
fn prefetch_answers_from_its_batch_and_changes_nothing() {
    let keys: Vec<Key> = (1..=24).map(key).collect();
    let funded: Vec<(Address, U256)> =
        keys.iter().map(|k| (k.address, U256::from(ETHER))).collect();
    let state = state(&funded);
    // One account with storage, whose slot 0 an access list names.
    let slot0 = B256::with_last_byte(0);
    let mut with_storage = StateUpdates::default();
    with_storage.accounts.insert(
        keys[1].address,
        AccountUpdate::Set {
            info: AccountInfo { nonce: 0, balance: U256::from(ETHER), code_hash: KECCAK_EMPTY },
            wipe_storage: false,
            storage: BTreeMap::from([(slot0, U256::from(5))]),
        },
    );
    state.db.commit(1, &with_storage).expect("commit storage");
    let txs: Vec<BlockTx> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut tx = transfer(0, Address::repeat_byte(i as u8 + 1), U256::from(1_000 + i));
            if i % 4 == 0 {
                tx.gas_limit = 30_000;
                let slot = B256::with_last_byte(i as u8);
                tx.access_list =
                    alloy_eips::eip2930::AccessList(vec![alloy_eips::eip2930::AccessListItem {
                        address: keys[(i + 1) % keys.len()].address,
                        storage_keys: vec![slot],
                    }]);
            }
            signed_1559(tx, k)
        })
        .collect();
    let block = block(txs);
    let spec = SpecId::CANCUN;
    let chain = ChainSpec::single(CHAIN_ID, spec);
    let senders = recover_senders(&block.body.transactions, spec, 2).expect("senders");
    let snapshot = state.db.snapshot(1).expect("snapshot");
    let hashes = BTreeMap::new();

    let prefetched =
        Prefetched::load(SnapshotState::new(&snapshot, &hashes), &snapshot, &block, &senders)
            .expect("prefetch");
    let stats = prefetched.stats();
    // 24 senders, 24 recipients, the fee recipient, the beacon-roots contract.
    assert_eq!(stats.accounts, 24 + 24 + 2);
    // Of the six access-list slots only the one of the account with storage
    // is read; the others are zero without a read.
    assert_eq!(stats.slots, 1);
    let before = state.db.stats();
    for sender in &senders {
        let account = revm::database::DatabaseRef::basic_ref(&prefetched, *sender).expect("read");
        assert_eq!(account.map(|a| a.balance), Some(U256::from(ETHER)));
    }
    let value = revm::database::DatabaseRef::storage_ref(&prefetched, keys[1].address, U256::ZERO)
        .expect("slot read");
    assert_eq!(value, U256::from(5));
    let after = state.db.stats();
    assert_eq!(
        (after.cache_hits + after.cache_misses, after.device_reads),
        (before.cache_hits + before.cache_misses, before.device_reads),
        "prefetched accounts are answered without triedb"
    );

    let with = execute_block(&chain, &block, &senders, prefetched).expect("executes with prefetch");
    let without = execute_block(&chain, &block, &senders, SnapshotState::new(&snapshot, &hashes))
        .expect("executes without");
    assert_eq!(with.receipts, without.receipts);
    assert_eq!(with.gas_used, without.gas_used);
    assert_eq!(with.updates, without.updates);
}
