//! Header and body validation against the parent: each rule breaks with its
//! own typed reason. (The ethereum/tests InvalidBlocks run through
//! `tests/tests/ethtests.rs` too; these pin the reasons down.)

use alloy_consensus::proofs::calculate_transaction_root;
use alloy_consensus::{Block, BlockBody, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH, Header};
use alloy_eips::eip4844::DATA_GAS_PER_BLOB;
use alloy_primitives::{B256, U256};
use wake_execution::{BlockError, BlockTx, ChainSpec, SpecId, validate_block};

fn parent() -> Header {
    Header {
        number: 10,
        timestamp: 100,
        gas_limit: 30_000_000,
        gas_used: 20_000_000,
        base_fee_per_gas: Some(1_000_000_000),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(4 * DATA_GAS_PER_BLOB),
        excess_blob_gas: Some(2 * DATA_GAS_PER_BLOB),
        parent_beacon_block_root: Some(B256::ZERO),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        ..Default::default()
    }
}

/// A valid empty Cancun child of [`parent`].
fn child() -> Block<BlockTx> {
    let parent = parent();
    let header = Header {
        parent_hash: parent.hash_slow(),
        number: 11,
        timestamp: 112,
        gas_limit: 30_000_000,
        // 20M used of a 15M target: +1/8 * 5/15.
        base_fee_per_gas: Some(1_041_666_666),
        withdrawals_root: Some(EMPTY_ROOT_HASH),
        blob_gas_used: Some(0),
        // 2 + 4 blobs minus the 3-blob target.
        excess_blob_gas: Some(3 * DATA_GAS_PER_BLOB),
        parent_beacon_block_root: Some(B256::repeat_byte(1)),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        transactions_root: calculate_transaction_root::<BlockTx>(&[]),
        ..Default::default()
    };
    Block {
        header,
        body: BlockBody {
            transactions: vec![],
            ommers: vec![],
            withdrawals: Some(Default::default()),
        },
    }
}

fn check(block: &Block<BlockTx>) -> Result<SpecId, BlockError> {
    validate_block(&ChainSpec::single(1, SpecId::CANCUN), &parent(), block)
}

fn broken(edit: impl FnOnce(&mut Block<BlockTx>)) -> BlockError {
    let mut block = child();
    edit(&mut block);
    check(&block).expect_err("the edit must make the block invalid")
}

#[test]
fn valid_child_passes() {
    assert_eq!(check(&child()).expect("valid"), SpecId::CANCUN);
}

#[test]
fn header_rules_have_typed_reasons() {
    assert!(matches!(
        broken(|b| b.header.number = 12),
        BlockError::Number { parent: 10, number: 12 }
    ));
    assert!(matches!(broken(|b| b.header.timestamp = 100), BlockError::Timestamp { .. }));
    assert!(matches!(
        broken(|b| b.header.gas_limit = 30_000_000 + 30_000_000 / 1024),
        BlockError::GasLimit { .. }
    ));
    assert!(matches!(broken(|b| b.header.gas_limit = 4_999), BlockError::GasLimit { .. }));
    assert!(matches!(
        broken(|b| b.header.gas_used = 30_000_001),
        BlockError::GasUsedAboveLimit { .. }
    ));
    assert!(matches!(
        broken(|b| b.header.extra_data = vec![0; 33].into()),
        BlockError::ExtraData { len: 33 }
    ));
    assert!(matches!(
        broken(|b| b.header.base_fee_per_gas = Some(1_000_000_000)),
        BlockError::BaseFee { expected: Some(1_041_666_666), got: Some(1_000_000_000) }
    ));
    assert!(matches!(
        broken(|b| b.header.excess_blob_gas = Some(0)),
        BlockError::ExcessBlobGas { got: 0, .. }
    ));
    assert!(matches!(
        broken(|b| b.header.blob_gas_used = Some(DATA_GAS_PER_BLOB)),
        BlockError::BlobGasUsed { header: DATA_GAS_PER_BLOB, txs: 0 }
    ));
    assert!(matches!(
        broken(|b| b.header.blob_gas_used = Some(7 * DATA_GAS_PER_BLOB)),
        BlockError::BlobGasAboveMax { .. }
    ));
    assert!(matches!(
        broken(|b| b.header.parent_beacon_block_root = None),
        BlockError::MissingField { field: "parentBeaconBlockRoot", .. }
    ));
    assert!(matches!(
        broken(|b| b.header.requests_hash = Some(B256::ZERO)),
        BlockError::UnexpectedField { field: "requestsHash", .. }
    ));
    assert!(matches!(broken(|b| b.header.difficulty = U256::from(1)), BlockError::Difficulty));
    assert!(matches!(broken(|b| b.header.nonce = [1u8; 8].into()), BlockError::Nonce));
}

#[test]
fn body_rules_have_typed_reasons() {
    assert!(matches!(
        broken(|b| b.header.transactions_root = B256::repeat_byte(7)),
        BlockError::TransactionsRoot { .. }
    ));
    assert!(matches!(
        broken(|b| b.body.withdrawals = None),
        BlockError::WithdrawalsRoot { body: None, .. }
    ));
    assert!(matches!(
        broken(|b| b.header.withdrawals_root = Some(B256::repeat_byte(7))),
        BlockError::WithdrawalsRoot { .. }
    ));
    assert!(matches!(
        broken(|b| b.body.ommers.push(parent())),
        BlockError::Ommers { count: 1, max: 0 }
    ));
    assert!(matches!(
        broken(|b| b.header.ommers_hash = B256::repeat_byte(7)),
        BlockError::OmmersHash { .. }
    ));
}

#[test]
fn fork_boundaries_change_the_rules() {
    // At the London block the base fee starts at 1 gwei and the gas target
    // doubles; before Cancun blob fields are not allowed.
    let chain = ChainSpec::for_test_network("BerlinToLondonAt5").expect("known network");
    let parent = Header { number: 4, timestamp: 4, gas_limit: 10_000_000, ..Default::default() };
    let header = Header {
        parent_hash: parent.hash_slow(),
        number: 5,
        timestamp: 5,
        gas_limit: 20_000_000,
        base_fee_per_gas: Some(1_000_000_000),
        difficulty: U256::from(1),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        transactions_root: calculate_transaction_root::<BlockTx>(&[]),
        ..Default::default()
    };
    let block: Block<BlockTx> = Block { header, body: BlockBody::default() };
    assert_eq!(validate_block(&chain, &parent, &block).expect("London fork block"), SpecId::LONDON);
    let mut early = block.clone();
    early.header.blob_gas_used = Some(0);
    assert!(matches!(
        validate_block(&chain, &parent, &early),
        Err(BlockError::UnexpectedField { field: "blobGasUsed", .. })
    ));
}
