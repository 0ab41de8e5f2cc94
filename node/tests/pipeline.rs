//! The execution pipeline: a block executed while its parent still commits
//! (over the parent's pending diff) comes out exactly as when every block
//! is committed before the next one executes.
//!
//! A chain of finalized blocks that lean on their parents' writes (a
//! contract deployed in block 1 and called from block 2 on, a counter slot
//! each call increments, BLOCKHASH of the parent stored by each call,
//! balances moved along a chain of senders, an account created by a
//! transfer and then sending) runs twice over the same genesis: once sealing each block
//! before executing the next, once with a sealing thread that lags (it
//! sleeps before each commit), so that execution runs several blocks ahead
//! over pending diffs and waits for BLOCKHASH. Headers, hashes, receipts and
//! diffs must be identical, and the lagging run must really have executed
//! ahead (checked from the order of events).

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use alloy_rlp::Encodable;
use secp256k1::{Message, SECP256K1};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use wake_consensus::{BlockHeader, FinalizedBlock};
use wake_execution::BlockTx;
use wake_node::pipeline::{BlockExecutor, ExecutedBlock, NodePayload, genesis_header};
use wake_triedb::{Config, TrieDb};

mod common;

use common::{CHAIN_ID, ETHER, GWEI, Key, devnet_genesis, key};

const BLOCKS: u64 = 8;

fn signed(key: &Key, nonce: u64, to: TxKind, value: u128, input: Bytes) -> Bytes {
    let tx = TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 200_000,
        max_fee_per_gas: 10 * GWEI,
        max_priority_fee_per_gas: GWEI,
        to,
        value: U256::from(value),
        access_list: Default::default(),
        input,
    };
    let hash = tx.signature_hash();
    let (recid, bytes) = SECP256K1
        .sign_ecdsa_recoverable(Message::from_digest(hash.0), &key.secret)
        .serialize_compact();
    let signature = Signature::from_bytes_and_parity(&bytes, i32::from(recid) != 0);
    let mut raw = Vec::new();
    alloy_eips::eip2718::Encodable2718::encode_2718(
        &BlockTx::Eip1559(tx.into_signed(signature)),
        &mut raw,
    );
    raw.into()
}

/// Runtime code: `sstore(0, blockhash(number - 1))`, then
/// `sstore(1, sload(1) + 1)`.
const COUNTER_RUNTIME: [u8; 18] = [
    0x60, 0x01, 0x43, 0x03, 0x40, 0x60, 0x00, 0x55, // blockhash(number - 1) -> slot 0
    0x60, 0x01, 0x54, 0x60, 0x01, 0x01, 0x60, 0x01, 0x55, // slot 1 += 1
    0x00,
];

/// Init code that returns [`COUNTER_RUNTIME`].
fn counter_init_code() -> Bytes {
    let mut code = vec![0x60, COUNTER_RUNTIME.len() as u8, 0x80, 0x60, 11, 0x60, 0x00, 0x39];
    code.extend_from_slice(&[0x60, 0x00, 0xf3]);
    code.extend_from_slice(&COUNTER_RUNTIME);
    code.into()
}

/// The payloads of the chain: what each finalized block orders.
fn payloads(alice: &Key, bob: &Key, carol: &Key) -> Vec<Vec<Bytes>> {
    let counter = alice.address.create(0);
    let call = |nonce| signed(alice, nonce, TxKind::Call(counter), 0, Bytes::new());
    let mut blocks = vec![vec![
        signed(alice, 0, TxKind::Create, 0, counter_init_code()),
        signed(alice, 1, TxKind::Call(bob.address), 20 * ETHER, Bytes::new()),
    ]];
    let mut alice_nonce = 2;
    for height in 2..=BLOCKS {
        let mut txs = Vec::new();
        // Every other block calls the counter (its BLOCKHASH read waits for
        // the parent's commit); the others only move value, so execution
        // can run ahead of the commits there.
        if height % 2 == 0 {
            txs.push(call(alice_nonce));
            alice_nonce += 1;
        }
        // Bob spends what alice sent him in block 1 (his balance and nonce
        // come from the previous block's diff), carol, new in block 2, sends
        // some of it back every third block.
        txs.push(signed(bob, height - 2, TxKind::Call(carol.address), ETHER, Bytes::new()));
        if height % 3 == 0 {
            txs.push(signed(
                carol,
                (height / 3) - 1,
                TxKind::Call(bob.address),
                ETHER / 2,
                Bytes::new(),
            ));
        }
        blocks.push(txs);
    }
    blocks
}

fn finalized(height: u64, txs: &[Bytes]) -> FinalizedBlock {
    let payload = NodePayload::encode(1_700_000_000_000 + height * 1_000, txs);
    let header = BlockHeader {
        epoch: 0,
        round: height,
        author: 0,
        height,
        parent: Default::default(),
        payload_hash: [0; 32],
        delayed: None,
    };
    FinalizedBlock { header, payload }
}

struct Setup {
    _dir: tempfile::TempDir,
    executor: BlockExecutor,
    sealer: wake_node::pipeline::BlockSealer,
}

fn setup(alice: &Key, bob: &Key) -> Setup {
    let genesis = devnet_genesis(&[(alice.address, 1_000 * ETHER), (bob.address, ETHER)]);
    let dir = wake_tests::temp_db_dir("pipeline");
    let db = TrieDb::open(Config::new(dir.path().join("state.db"))).unwrap();
    let state_root = db.commit(0, &genesis.state_updates()).unwrap();
    let header = genesis_header(&genesis, state_root);
    let (executor, sealer) =
        BlockExecutor::new(genesis.spec.clone(), Arc::new(db), header, vec![Address::ZERO], 2);
    Setup { _dir: dir, executor, sealer }
}

/// What must be identical between the two runs.
fn fingerprint(block: &ExecutedBlock) -> (B256, Vec<u8>, String, usize) {
    let mut receipts = Vec::new();
    for receipt in &block.receipts {
        receipt.encode(&mut receipts);
    }
    (block.hash, receipts, format!("{:?}", block.diff.updates()), block.dropped)
}

#[test]
fn executing_ahead_of_commits_gives_the_same_chain() {
    let (alice, bob, carol) = (key(1), key(2), key(3));
    let blocks: Vec<FinalizedBlock> = payloads(&alice, &bob, &carol)
        .iter()
        .enumerate()
        .map(|(i, txs)| finalized(i as u64 + 1, txs))
        .collect();

    // Each block committed before the next one executes.
    let Setup { _dir: _sequential, mut executor, mut sealer } = setup(&alice, &bob);
    let sequential: Vec<ExecutedBlock> = blocks
        .iter()
        .map(|block| executor.execute_and_seal(&mut sealer, block).expect("sequential"))
        .collect();
    for block in &sequential {
        assert_eq!(block.dropped, 0, "block {} left transactions out", block.header.number);
    }

    // Commits lag: a sealing thread that sleeps before each commit.
    let Setup { _dir: _pipelined, mut executor, mut sealer } = setup(&alice, &bob);
    let (to_seal, unsealed) = mpsc::channel::<wake_node::pipeline::UnsealedBlock>();
    let (events_tx, events) = mpsc::channel::<(char, u64)>();
    let sealer_events = events_tx.clone();
    let sealing = std::thread::spawn(move || {
        let mut sealed = Vec::new();
        for block in unsealed {
            std::thread::sleep(Duration::from_millis(150));
            let height = block.height();
            sealed.push(sealer.seal(block).expect("seal"));
            sealer_events.send(('s', height)).unwrap();
        }
        sealed
    });
    for block in &blocks {
        let unsealed = executor.execute(block).expect("execute ahead");
        events_tx.send(('e', unsealed.height())).unwrap();
        to_seal.send(unsealed).unwrap();
    }
    drop(to_seal);
    let pipelined = sealing.join().expect("the sealing thread");
    drop(events_tx);

    assert_eq!(pipelined.len(), sequential.len());
    for (a, b) in sequential.iter().zip(&pipelined) {
        assert_eq!(a.header, b.header, "header of block {}", a.header.number);
        assert_eq!(fingerprint(a), fingerprint(b), "block {}", a.header.number);
    }
    // The counter stored each caller's parent hash: BLOCKHASH was answered.
    let counter = alice.address.create(0);
    let state = executor.db().snapshot(BLOCKS).unwrap();
    let last_call = BLOCKS - BLOCKS % 2;
    assert_eq!(
        state.storage(&counter, &B256::ZERO).unwrap(),
        U256::from_be_bytes(pipelined[last_call as usize - 2].hash.0),
        "slot 0 holds the hash of block {}",
        last_call - 1
    );
    assert_eq!(
        state.storage(&counter, &B256::with_last_byte(1)).unwrap(),
        U256::from(BLOCKS / 2),
        "the counter was incremented once per call"
    );
    // Execution ran ahead: some block executed before its parent was sealed.
    let order: Vec<(char, u64)> = events.iter().collect();
    let ahead = order.iter().enumerate().any(|(i, &(kind, height))| {
        kind == 'e' && height > 1 && !order[..i].contains(&('s', height - 1))
    });
    assert!(ahead, "no block executed before its parent committed: {order:?}");
}
