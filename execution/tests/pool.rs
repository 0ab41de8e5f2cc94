//! The transaction pool and the block payload codec.
//!
//! Every admission rejection with its typed error; replacement at the fee
//! bump boundary; eviction (gapless, fee-ordered, never for a cheaper
//! newcomer); block building (fee priority across senders, nonce order
//! within one, gas/byte/count limits, base fee); the asynchronous-execution
//! hooks (ordered blocks, executed accounts); the gossip outbox; a property
//! test of random operation sequences checked against invariants computed
//! here from the public API; payload round trips and malformed payloads.
//! `pool_throughput` (ignored) prints admission and build rates:
//! `cargo test -p wake-execution --release --test pool -- --ignored --nocapture`.

use alloy_consensus::{SignableTransaction, Signed, TxEip1559, TxEip2930, TxEip4844, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use wake_execution::pool::{RejectReason, touched_accounts};
use wake_execution::{
    AccountSource, AccountState, BlockLimits, BlockTx, PayloadError, Pool, PoolConfig, PoolError,
    PoolHead, PooledTx, SpecId, StateError, TX_BYTES_MAX, TxError, TxOrigin, decode_payload,
    encode_payload, split_payload,
};

mod common;

use common::{Key, key, sign};

const CHAIN_ID: u64 = 7;
const BASE_FEE: u64 = 10;
const BLOCK_GAS: u64 = 30_000_000;
const ETHER: u128 = 1_000_000_000_000_000_000;
const TO: Address = Address::repeat_byte(0xee);

/// The latest executed state, as a map the test edits.
#[derive(Default)]
struct Accounts {
    map: Mutex<HashMap<Address, AccountState>>,
    failing: Mutex<bool>,
}

impl Accounts {
    fn set(&self, address: Address, nonce: u64, balance: U256) {
        self.map.lock().unwrap().insert(address, AccountState { nonce, balance });
    }
}

impl AccountSource for Accounts {
    fn account_state(&self, address: Address) -> Result<AccountState, StateError> {
        if *self.failing.lock().unwrap() {
            return Err(StateError::from(wake_triedb::Error::MetadataCorrupt));
        }
        Ok(self.map.lock().unwrap().get(&address).copied().unwrap_or_default())
    }
}

fn head() -> PoolHead {
    PoolHead { spec: SpecId::CANCUN, base_fee: BASE_FEE, block_gas_limit: BLOCK_GAS }
}

fn config() -> PoolConfig {
    PoolConfig { nonce_gap_max: 4, ..PoolConfig::new(CHAIN_ID) }
}

struct Fixture {
    pool: Pool,
    accounts: Arc<Accounts>,
}

/// A pool over accounts of keys 1..=16, each holding one ether at nonce 0.
fn fixture(config: PoolConfig) -> Fixture {
    let accounts = Arc::new(Accounts::default());
    for seed in 1..=16 {
        accounts.set(key(seed).address, 0, U256::from(ETHER));
    }
    let pool = Pool::new(config, head(), accounts.clone());
    Fixture { pool, accounts }
}

fn eip1559(nonce: u64, max_fee: u128, priority_fee: u128) -> TxEip1559 {
    TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: priority_fee,
        to: TxKind::Call(TO),
        value: U256::from(1),
        access_list: Default::default(),
        input: Bytes::new(),
    }
}

fn legacy(nonce: u64, chain_id: Option<u64>) -> TxLegacy {
    TxLegacy {
        chain_id,
        nonce,
        gas_price: 100,
        gas_limit: 21_000,
        to: TxKind::Call(TO),
        value: U256::from(1),
        input: Bytes::new(),
    }
}

fn raw_1559(tx: TxEip1559, key: &Key) -> Bytes {
    BlockTx::Eip1559(sign(tx, key)).encoded_2718().into()
}

/// A signed EIP-1559 transfer.
fn transfer(key: &Key, nonce: u64, max_fee: u128, priority_fee: u128) -> Bytes {
    raw_1559(eip1559(nonce, max_fee, priority_fee), key)
}

fn insert(pool: &Pool, raw: Bytes) -> Result<wake_execution::Admitted, PoolError> {
    pool.insert(TxOrigin::Gossip, raw)
}

fn limits() -> BlockLimits {
    BlockLimits { gas_limit: BLOCK_GAS, bytes_max: 1 << 20, txs_max: 10_000, base_fee: BASE_FEE }
}

fn nonces_of(block: &[Arc<PooledTx>]) -> Vec<(Address, u64)> {
    block.iter().map(|tx| (tx.sender(), tx.nonce())).collect()
}

#[test]
fn admits_a_valid_transfer() {
    let f = fixture(config());
    let alice = key(1);
    let raw = transfer(&alice, 0, 100, 2);
    let admitted = insert(&f.pool, raw.clone()).expect("admitted");
    assert_eq!(admitted.sender, alice.address);
    assert_eq!(admitted.nonce, 0);
    assert!(admitted.ready);
    assert_eq!(admitted.replaced, None);
    assert_eq!(f.pool.len(), 1);
    assert_eq!(f.pool.bytes_len(), raw.len());
    let pooled = f.pool.get(&admitted.hash).expect("pooled");
    assert_eq!(pooled.raw(), &raw);
    assert_eq!(pooled.cost(), U256::from(21_000u64 * 100 + 1));
    let summary = f.pool.sender(&alice.address).expect("tracked");
    assert_eq!((summary.next_nonce, summary.ready, summary.queued), (1, 1, 0));
}

#[test]
fn malformed_and_oversized_encodings_are_refused() {
    let f = fixture(config());
    for bytes in [&[][..], &[0x02, 0xc0], &[0xf8, 0x01], &[0x7f, 0x01]] {
        let e = insert(&f.pool, Bytes::copy_from_slice(bytes)).unwrap_err();
        assert!(matches!(e, PoolError::Decode(_)), "{bytes:02x?}: {e}");
        assert!(e.is_peer_fault());
    }
    let mut trailing = transfer(&key(1), 0, 100, 2).to_vec();
    trailing.push(0);
    assert!(matches!(insert(&f.pool, trailing.into()), Err(PoolError::Decode(_))));
    let huge = Bytes::from(vec![0u8; TX_BYTES_MAX + 1]);
    assert!(matches!(
        insert(&f.pool, huge),
        Err(PoolError::Oversized { len, max: TX_BYTES_MAX }) if len == TX_BYTES_MAX + 1
    ));
}

#[test]
fn bad_and_high_s_signatures_are_refused() {
    let f = fixture(config());
    let tx = eip1559(0, 100, 2);
    let zero =
        BlockTx::Eip1559(tx.clone().into_signed(Signature::new(U256::ZERO, U256::ZERO, false)));
    let e = insert(&f.pool, zero.encoded_2718().into()).unwrap_err();
    assert!(matches!(e, PoolError::InvalidSignature), "{e}");
    assert!(e.is_peer_fault());

    // The same signature with s mirrored above n/2 (EIP-2).
    let good: Signed<TxEip1559> = sign(tx.clone(), &key(1));
    let n = U256::from_be_bytes(secp256k1::constants::CURVE_ORDER);
    let sig = good.signature();
    let high = Signature::new(sig.r(), n - sig.s(), !sig.v());
    let high = BlockTx::Eip1559(tx.into_signed(high));
    assert!(matches!(
        insert(&f.pool, high.encoded_2718().into()),
        Err(PoolError::InvalidSignature)
    ));
}

#[test]
fn chain_id_must_match_and_be_present() {
    let f = fixture(config());
    let alice = key(1);
    let wrong = raw_1559(TxEip1559 { chain_id: CHAIN_ID + 1, ..eip1559(0, 100, 2) }, &alice);
    assert!(matches!(
        insert(&f.pool, wrong),
        Err(PoolError::ChainIdMismatch { expected: CHAIN_ID, got }) if got == CHAIN_ID + 1
    ));
    let pre_155 = BlockTx::Legacy(sign(legacy(0, None), &alice)).encoded_2718().into();
    assert!(matches!(insert(&f.pool, pre_155), Err(PoolError::ChainIdMissing)));
    let eip155 = BlockTx::Legacy(sign(legacy(0, Some(CHAIN_ID)), &alice)).encoded_2718().into();
    assert!(insert(&f.pool, eip155).is_ok());
}

#[test]
fn types_must_be_enabled_and_accepted() {
    let alice = key(1);
    let accounts = Arc::new(Accounts::default());
    accounts.set(alice.address, 0, U256::from(ETHER));
    let berlin = PoolHead { spec: SpecId::BERLIN, ..head() };
    let pool = Pool::new(config(), berlin, accounts.clone());
    assert!(matches!(
        insert(&pool, transfer(&alice, 0, 100, 2)),
        Err(PoolError::TypeNotEnabled { ty: 2, spec: SpecId::BERLIN })
    ));
    let access_list = TxEip2930 {
        chain_id: CHAIN_ID,
        nonce: 0,
        gas_price: 100,
        gas_limit: 21_000,
        to: TxKind::Call(TO),
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let raw = BlockTx::Eip2930(sign(access_list, &alice)).encoded_2718().into();
    assert!(insert(&pool, raw).is_ok());

    let f = fixture(config());
    let blob = TxEip4844 {
        chain_id: CHAIN_ID,
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 100,
        max_priority_fee_per_gas: 2,
        to: TO,
        value: U256::ZERO,
        access_list: Default::default(),
        blob_versioned_hashes: vec![B256::repeat_byte(1)],
        max_fee_per_blob_gas: 1,
        input: Bytes::new(),
    };
    let raw = BlockTx::Eip4844(sign(blob, &alice)).encoded_2718().into();
    assert!(matches!(insert(&f.pool, raw), Err(PoolError::TypeNotAccepted { ty: 3 })));
}

#[test]
fn nonce_must_be_current_and_within_the_gap_limit() {
    let f = fixture(config());
    let alice = key(1);
    f.accounts.set(alice.address, 5, U256::from(ETHER));
    assert!(matches!(
        insert(&f.pool, transfer(&alice, 4, 100, 2)),
        Err(PoolError::NonceTooLow { tx: 4, account: 5 })
    ));
    // Gap limit 4: nonce 5 + 0 pending + 4 = 9 is the highest accepted.
    assert!(matches!(
        insert(&f.pool, transfer(&alice, 10, 100, 2)),
        Err(PoolError::NonceGapTooLarge { tx: 10, max: 9 })
    ));
    let queued = insert(&f.pool, transfer(&alice, 9, 100, 2)).expect("within the gap limit");
    assert!(!queued.ready);
    // One pending transaction widens the window by one.
    assert!(insert(&f.pool, transfer(&alice, 10, 100, 2)).is_ok());
    let ready = insert(&f.pool, transfer(&alice, 5, 100, 2)).expect("fills the head");
    assert!(ready.ready);
    let summary = f.pool.sender(&alice.address).unwrap();
    assert_eq!((summary.next_nonce, summary.ready, summary.queued), (6, 1, 2));
}

#[test]
fn balance_must_cover_all_pending_costs() {
    let f = fixture(config());
    let alice = key(1);
    let one_cost = U256::from(21_000u64 * 100 + 1);
    f.accounts.set(alice.address, 0, one_cost * U256::from(2));
    assert!(insert(&f.pool, transfer(&alice, 0, 100, 2)).is_ok());
    assert!(insert(&f.pool, transfer(&alice, 1, 100, 2)).is_ok());
    // Alone the third is affordable; with the two pending it is not.
    let e = insert(&f.pool, transfer(&alice, 2, 100, 2)).unwrap_err();
    assert!(
        matches!(e, PoolError::InsufficientFunds { balance, cost }
            if balance == one_cost * U256::from(2) && cost == one_cost * U256::from(3)),
        "{e}"
    );
    assert!(!e.is_peer_fault());

    // A replacement's extra cost counts too.
    assert!(matches!(
        insert(&f.pool, transfer(&alice, 1, 110, 3)),
        Err(PoolError::InsufficientFunds { .. })
    ));

    let bob = key(2);
    f.accounts.set(bob.address, 0, U256::from(1_000));
    assert!(matches!(
        insert(&f.pool, transfer(&bob, 0, 100, 2)),
        Err(PoolError::InsufficientFunds { .. })
    ));
}

#[test]
fn gas_and_fee_rules() {
    let f = fixture(PoolConfig { max_fee_per_gas_min: 20, ..config() });
    let alice = key(1);
    let low_gas = raw_1559(TxEip1559 { gas_limit: 20_999, ..eip1559(0, 100, 2) }, &alice);
    assert!(matches!(
        insert(&f.pool, low_gas),
        Err(PoolError::IntrinsicGasTooLow { gas_limit: 20_999, intrinsic: 21_000 })
    ));
    // Calldata: 4 non-zero bytes cost 16 each.
    let with_data = TxEip1559 { input: vec![1, 2, 3, 4].into(), ..eip1559(0, 100, 2) };
    assert!(matches!(
        insert(&f.pool, raw_1559(with_data, &alice)),
        Err(PoolError::IntrinsicGasTooLow { gas_limit: 21_000, intrinsic: 21_064 })
    ));
    let huge = raw_1559(TxEip1559 { gas_limit: BLOCK_GAS + 1, ..eip1559(0, 100, 2) }, &alice);
    assert!(matches!(
        insert(&f.pool, huge),
        Err(PoolError::GasLimitAboveBlock { gas_limit, block_gas_limit: BLOCK_GAS })
            if gas_limit == BLOCK_GAS + 1
    ));
    assert!(matches!(
        insert(&f.pool, transfer(&alice, 0, 19, 2)),
        Err(PoolError::FeeTooLow { max_fee: 19, required: 20 })
    ));
    f.pool.set_head(PoolHead { base_fee: 50, ..head() });
    assert!(matches!(
        insert(&f.pool, transfer(&alice, 0, 49, 2)),
        Err(PoolError::FeeTooLow { max_fee: 49, required: 50 })
    ));
    assert!(matches!(
        insert(&f.pool, transfer(&alice, 0, 100, 101)),
        Err(PoolError::PriorityFeeAboveMaxFee { priority_fee: 101, max_fee: 100 })
    ));
    assert!(insert(&f.pool, transfer(&alice, 0, 50, 2)).is_ok());
}

#[test]
fn duplicates_and_replacements() {
    let f = fixture(config());
    let alice = key(1);
    let first = transfer(&alice, 0, 200, 100);
    let hash = insert(&f.pool, first.clone()).unwrap().hash;
    assert!(matches!(insert(&f.pool, first), Err(PoolError::AlreadyKnown(h)) if h == hash));

    // Short of +10% on either fee is not enough.
    for (max_fee, priority_fee) in [(219, 110), (220, 109), (218, 109)] {
        let e = insert(&f.pool, transfer(&alice, 0, max_fee, priority_fee)).unwrap_err();
        assert!(
            matches!(
                e,
                PoolError::ReplacementUnderpriced { max_fee_min: 220, priority_fee_min: 110 }
            ),
            "{max_fee}/{priority_fee}: {e}"
        );
    }
    // Exactly +10% on both replaces.
    let replacement = insert(&f.pool, transfer(&alice, 0, 220, 110)).expect("bumped by 10%");
    assert_eq!(replacement.replaced, Some(hash));
    assert_eq!(f.pool.len(), 1);
    assert!(!f.pool.contains(&hash));
    assert!(f.pool.contains(&replacement.hash));
    let stats = f.pool.stats();
    assert_eq!(stats.replaced, 1);
    let underpriced = stats
        .rejected
        .iter()
        .find(|(reason, _)| *reason == RejectReason::ReplacementUnderpriced)
        .map(|(_, n)| *n);
    assert_eq!(underpriced, Some(3));
}

#[test]
fn per_sender_cap() {
    let f = fixture(PoolConfig { txs_per_sender_max: 2, ..config() });
    let alice = key(1);
    insert(&f.pool, transfer(&alice, 0, 100, 2)).unwrap();
    insert(&f.pool, transfer(&alice, 1, 100, 2)).unwrap();
    assert!(matches!(
        insert(&f.pool, transfer(&alice, 2, 100, 2)),
        Err(PoolError::SenderFull { max: 2 })
    ));
    // Replacing is still allowed.
    assert!(insert(&f.pool, transfer(&alice, 1, 200, 20)).is_ok());
}

#[test]
fn a_state_read_failure_is_typed() {
    let f = fixture(config());
    *f.accounts.failing.lock().unwrap() = true;
    let e = insert(&f.pool, transfer(&key(1), 0, 100, 2)).unwrap_err();
    assert!(matches!(e, PoolError::State(_)), "{e}");
    assert!(!e.is_peer_fault());
    assert!(f.pool.is_empty());
}

#[test]
fn eviction_takes_cheapest_tails_and_never_opens_a_gap() {
    let f = fixture(PoolConfig { txs_max: 4, ..config() });
    let (a, b, c) = (key(1), key(2), key(3));
    // A: nonce 0 pays well, nonce 1 is the cheapest transaction in the pool.
    insert(&f.pool, transfer(&a, 0, 100, 50)).unwrap();
    let a1 = insert(&f.pool, transfer(&a, 1, 100, 5)).unwrap().hash;
    let b0 = insert(&f.pool, transfer(&b, 0, 100, 20)).unwrap().hash;
    let b1 = insert(&f.pool, transfer(&b, 1, 100, 10)).unwrap().hash;
    assert_eq!(f.pool.len(), 4);

    // Not above the cheapest tail (5): refused, nothing evicted.
    assert!(matches!(insert(&f.pool, transfer(&c, 0, 100, 5)), Err(PoolError::PoolFull)));
    assert_eq!(f.pool.len(), 4);

    let c0 = insert(&f.pool, transfer(&c, 0, 100, 30)).expect("outbids a tail");
    assert_eq!(c0.evicted, 1);
    assert!(!f.pool.contains(&a1), "A's tail (tip 5) goes first");
    assert_eq!(f.pool.len(), 4);

    // Next cheapest tail is B's nonce 1 (10), before B's nonce 0 (20).
    insert(&f.pool, transfer(&c, 1, 100, 15)).expect("outbids B's tail");
    assert!(!f.pool.contains(&b1));
    assert!(f.pool.contains(&b0));
    // Remaining nonces are gapless per sender.
    let mut by_sender: BTreeMap<Address, Vec<u64>> = BTreeMap::new();
    for tx in f.pool.txs() {
        by_sender.entry(tx.sender()).or_default().push(tx.nonce());
    }
    for nonces in by_sender.values() {
        assert_eq!(*nonces, (0..nonces.len() as u64).collect::<Vec<_>>());
    }
    assert_eq!(f.pool.stats().evicted, 2);
}

#[test]
fn a_full_pool_refuses_the_underpriced_before_recovering_a_signature() {
    let f = fixture(PoolConfig { txs_max: 2, ..config() });
    let (a, b) = (key(1), key(2));
    insert(&f.pool, transfer(&a, 0, 100, 5)).unwrap();
    insert(&f.pool, transfer(&b, 0, 100, 7)).unwrap();
    // An unrecoverable signature at the cheapest tail's rank: refused as
    // full, so the signature was never looked at.
    let unsigned = |priority_fee| -> Bytes {
        let tx = eip1559(0, 100, priority_fee);
        let sig = Signature::new(U256::ZERO, U256::ZERO, false);
        BlockTx::Eip1559(tx.into_signed(sig)).encoded_2718().into()
    };
    assert!(matches!(insert(&f.pool, unsigned(5)), Err(PoolError::PoolFull)));
    // Ranked above the cheapest tail it could evict: the signature is checked.
    assert!(matches!(insert(&f.pool, unsigned(6)), Err(PoolError::InvalidSignature)));
    assert_eq!(f.pool.len(), 2);

    // Room again after a block: the same rank is admitted.
    f.accounts.set(a.address, 1, U256::from(ETHER));
    f.pool
        .on_block_executed(1, [(a.address, AccountState { nonce: 1, balance: U256::from(ETHER) })]);
    assert_eq!(f.pool.len(), 1);
    insert(&f.pool, transfer(&key(3), 0, 100, 5)).expect("room after the block");
    assert_eq!(f.pool.len(), 2);
}

#[test]
fn eviction_never_takes_the_newcomers_own_predecessors() {
    let f = fixture(PoolConfig { txs_max: 2, ..config() });
    let (a, b) = (key(1), key(2));
    insert(&f.pool, transfer(&a, 0, 100, 1)).unwrap();
    insert(&f.pool, transfer(&b, 0, 100, 50)).unwrap();
    // A's nonce 1 outbids A's nonce 0 but must not evict it; B pays more.
    assert!(matches!(insert(&f.pool, transfer(&a, 1, 100, 40)), Err(PoolError::PoolFull)));
}

#[test]
fn eviction_by_bytes_frees_enough_room() {
    let small = transfer(&key(1), 0, 100, 1).len();
    let f = fixture(PoolConfig { bytes_max: small * 4, ..config() });
    for seed in 1..=4 {
        insert(&f.pool, transfer(&key(seed), 0, 100, 1)).unwrap();
    }
    // 4 small ones fill the bytes; one of between 2 and 3 small ones needs
    // 3 of them evicted.
    let data = vec![0u8; small * 2 - 10];
    let gas = 21_000 + 4 * data.len() as u64;
    let big = TxEip1559 { input: data.into(), gas_limit: gas, ..eip1559(0, 100, 9) };
    let big = raw_1559(big, &key(9));
    assert!(big.len() > small * 2 && big.len() <= small * 3);
    let admitted = insert(&f.pool, big).expect("evicts by bytes");
    assert_eq!(admitted.evicted, 3);
    assert!(f.pool.bytes_len() <= small * 4);
    assert_eq!(f.pool.len(), 2);
}

#[test]
fn build_orders_by_tip_and_nonce_within_limits() {
    let f = fixture(config());
    let (a, b, c) = (key(1), key(2), key(3));
    insert(&f.pool, transfer(&a, 0, 100, 1)).unwrap();
    insert(&f.pool, transfer(&a, 1, 100, 90)).unwrap();
    insert(&f.pool, transfer(&b, 0, 100, 50)).unwrap();
    // C's max fee leaves a tip of 20 - 10 = 10 at base fee 10.
    insert(&f.pool, transfer(&c, 0, 20, 20)).unwrap();
    // A queued transaction (nonce gap) is never built.
    insert(&f.pool, transfer(&c, 2, 100, 99)).unwrap();

    let block = f.pool.build(&limits());
    assert_eq!(
        nonces_of(&block),
        vec![(b.address, 0), (c.address, 0), (a.address, 0), (a.address, 1)]
    );
    assert_eq!(f.pool.len(), 5, "building removes nothing");

    // Gas for two transactions.
    let two = f.pool.build(&BlockLimits { gas_limit: 42_000, ..limits() });
    assert_eq!(nonces_of(&two), vec![(b.address, 0), (c.address, 0)]);
    let one = f.pool.build(&BlockLimits { txs_max: 1, ..limits() });
    assert_eq!(one.len(), 1);
    // Bytes for two: the payload of the first two transactions.
    let raws: Vec<Bytes> = block.iter().take(2).map(|tx| tx.raw().clone()).collect();
    let bytes_max = encode_payload(&raws).len();
    let two = f.pool.build(&BlockLimits { bytes_max, ..limits() });
    assert_eq!(two.len(), 2);
    assert!(
        encode_payload(&two.iter().map(|t| t.raw().clone()).collect::<Vec<_>>()).len() <= bytes_max
    );

    // At base fee 25, C (max fee 20) is skipped.
    let high = f.pool.build(&BlockLimits { base_fee: 25, ..limits() });
    assert_eq!(nonces_of(&high), vec![(b.address, 0), (a.address, 0), (a.address, 1)]);
}

#[test]
fn a_transaction_that_does_not_fit_skips_its_sender_only() {
    let f = fixture(config());
    let (a, b) = (key(1), key(2));
    let big = raw_1559(TxEip1559 { gas_limit: 100_000, ..eip1559(0, 100, 90) }, &a);
    insert(&f.pool, big).unwrap();
    insert(&f.pool, transfer(&a, 1, 100, 90)).unwrap();
    insert(&f.pool, transfer(&b, 0, 100, 1)).unwrap();
    let block = f.pool.build(&BlockLimits { gas_limit: 50_000, ..limits() });
    assert_eq!(nonces_of(&block), vec![(b.address, 0)]);
}

#[test]
fn executed_blocks_drop_mined_and_unfunded_transactions() {
    let f = fixture(config());
    let (a, b) = (key(1), key(2));
    for nonce in 0..3 {
        insert(&f.pool, transfer(&a, nonce, 100, 2)).unwrap();
        insert(&f.pool, transfer(&b, nonce, 100, 2)).unwrap();
    }
    // A's first two were mined; B spent its balance elsewhere and can fund
    // one more transaction only.
    let one_cost = U256::from(21_000u64 * 100 + 1);
    let executed = [
        (a.address, AccountState { nonce: 2, balance: U256::from(ETHER) }),
        (b.address, AccountState { nonce: 0, balance: one_cost }),
        (key(9).address, AccountState { nonce: 1, balance: U256::ZERO }),
    ];
    for (address, state) in executed {
        f.accounts.set(address, state.nonce, state.balance);
    }
    let report = f.pool.on_block_executed(1, executed);
    assert_eq!((report.mined, report.unfunded), (2, 2));
    assert_eq!(f.pool.len(), 2);
    let block = f.pool.build(&limits());
    // Equal tips: the earlier arrival first.
    assert_eq!(nonces_of(&block), vec![(b.address, 0), (a.address, 2)]);
    // The mined nonces are now too low.
    assert!(matches!(
        insert(&f.pool, transfer(&a, 1, 500, 50)),
        Err(PoolError::NonceTooLow { tx: 1, account: 2 })
    ));
    let stats = f.pool.stats();
    assert_eq!((stats.removed_mined, stats.removed_unfunded, stats.txs), (2, 2, 2));

    // Everything mined: the sender is forgotten.
    f.pool.on_block_executed(2, [(a.address, AccountState { nonce: 3, balance: U256::ZERO })]);
    assert!(f.pool.sender(&a.address).is_none());
}

#[test]
fn touched_accounts_reads_a_state_diff() {
    let mut updates = wake_triedb::StateUpdates::default();
    let info = wake_triedb::AccountInfo {
        nonce: 3,
        balance: U256::from(9),
        code_hash: wake_triedb::KECCAK_EMPTY,
    };
    updates.accounts.insert(Address::repeat_byte(1), wake_triedb::AccountUpdate::info(info));
    updates.accounts.insert(Address::repeat_byte(2), wake_triedb::AccountUpdate::Delete);
    let touched: Vec<_> = touched_accounts(&updates).collect();
    assert_eq!(
        touched,
        vec![
            (Address::repeat_byte(1), AccountState { nonce: 3, balance: U256::from(9) }),
            (Address::repeat_byte(2), AccountState::default()),
        ]
    );
}

#[test]
fn ordered_blocks_are_not_built_again() {
    let f = fixture(config());
    let (a, b) = (key(1), key(2));
    for nonce in 0..3 {
        insert(&f.pool, transfer(&a, nonce, 100, 2)).unwrap();
    }
    let first = f.pool.build(&BlockLimits { txs_max: 2, ..limits() });
    assert_eq!(nonces_of(&first), vec![(a.address, 0), (a.address, 1)]);
    f.pool.on_block_ordered(1, nonces_of(&first));
    // B's nonce 0 was ordered by another leader: not in our pool.
    f.pool.on_block_ordered(1, [(b.address, 0)]);

    let second = f.pool.build(&limits());
    assert_eq!(nonces_of(&second), vec![(a.address, 2)]);
    assert!(matches!(
        insert(&f.pool, transfer(&a, 1, 500, 50)),
        Err(PoolError::NonceTooLow { tx: 1, account: 2 })
    ));
    assert!(matches!(
        insert(&f.pool, transfer(&b, 0, 100, 2)),
        Err(PoolError::NonceTooLow { tx: 0, account: 1 })
    ));
    assert_eq!(f.pool.sender(&a.address).unwrap().next_nonce, 3);

    // Block 1 executes: state catches up and the floors go.
    f.accounts.set(a.address, 2, U256::from(ETHER));
    f.accounts.set(b.address, 1, U256::from(ETHER));
    f.pool.on_block_executed(
        1,
        [
            (a.address, AccountState { nonce: 2, balance: U256::from(ETHER) }),
            (b.address, AccountState { nonce: 1, balance: U256::from(ETHER) }),
        ],
    );
    assert_eq!(f.pool.len(), 1);
    assert!(insert(&f.pool, transfer(&b, 1, 100, 2)).is_ok());
}

#[test]
fn gossip_outbox_holds_new_local_transactions_only_and_is_bounded() {
    let f = fixture(PoolConfig { gossip_outbox_max: 2, ..config() });
    let local: Vec<Bytes> = (0..3).map(|n| transfer(&key(1), n, 100, 2)).collect();
    for raw in &local {
        f.pool.insert(TxOrigin::Local, raw.clone()).unwrap();
    }
    f.pool.insert(TxOrigin::Gossip, transfer(&key(2), 0, 100, 2)).unwrap();
    assert!(f.pool.insert(TxOrigin::Local, local[0].clone()).is_err(), "not new");
    assert_eq!(f.pool.drain_gossip(1), vec![local[1].clone()]);
    assert_eq!(f.pool.drain_gossip(10), vec![local[2].clone()]);
    assert!(f.pool.drain_gossip(10).is_empty());
    assert_eq!(f.pool.stats().gossip_dropped, 1);
}

#[test]
fn batch_insert_recovers_in_parallel_and_keeps_order() {
    let f = fixture(PoolConfig { recover_threads: 4, ..config() });
    let mut raws = Vec::new();
    for seed in 1..=16u8 {
        for nonce in 0..4 {
            raws.push(transfer(&key(seed), nonce, 100, 2));
        }
    }
    raws[10] = Bytes::from_static(&[0x02, 0xc0]);
    raws[20] = raws[19].clone();
    let results = f.pool.insert_batch(TxOrigin::Gossip, raws.clone());
    assert_eq!(results.len(), raws.len());
    for (i, result) in results.iter().enumerate() {
        match i {
            10 => assert!(matches!(result, Err(PoolError::Decode(_)))),
            20 => assert!(matches!(result, Err(PoolError::AlreadyKnown(_)))),
            // Nonce 3 follows the broken nonce 2 of key 3: queued, not ready.
            _ => assert!(result.is_ok(), "{i}: {result:?}"),
        }
    }
    assert_eq!(f.pool.len(), raws.len() - 2);
}

/// Counts how the pool reads state.
struct CountingReads {
    inner: Arc<Accounts>,
    single: Mutex<usize>,
    batches: Mutex<Vec<Vec<Address>>>,
}

impl AccountSource for CountingReads {
    fn account_state(&self, address: Address) -> Result<AccountState, StateError> {
        *self.single.lock().unwrap() += 1;
        self.inner.account_state(address)
    }

    fn account_states(&self, addresses: &[Address]) -> Result<Vec<AccountState>, StateError> {
        self.batches.lock().unwrap().push(addresses.to_vec());
        addresses.iter().map(|a| self.inner.account_state(*a)).collect()
    }
}

/// A batch reads the accounts of all its new senders in one call, and
/// admits exactly what one-by-one admission admits (an unfunded sender
/// included).
#[test]
fn batch_insert_reads_new_senders_in_one_batch() {
    let accounts = Arc::new(Accounts::default());
    for seed in 1..=16 {
        accounts.set(key(seed).address, 0, U256::from(ETHER));
    }
    accounts.set(key(16).address, 0, U256::ZERO);
    let reads = Arc::new(CountingReads {
        inner: Arc::clone(&accounts),
        single: Mutex::new(0),
        batches: Mutex::new(Vec::new()),
    });
    let batched = Pool::new(config(), head(), reads.clone());
    let one_by_one = Pool::new(config(), head(), accounts.clone());
    let raws: Vec<Bytes> = (1..=16u8)
        .flat_map(|seed| (0..3).map(move |nonce| transfer(&key(seed), nonce, 100, 2)))
        .collect();
    let results = batched.insert_batch(TxOrigin::Local, raws.clone());
    let expected: Vec<_> = raws.iter().map(|raw| insert(&one_by_one, raw.clone())).collect();
    for (i, (got, want)) in results.iter().zip(&expected).enumerate() {
        let outcome = |r: &Result<wake_execution::Admitted, PoolError>| {
            r.as_ref().map(|a| a.hash).map_err(|e| e.to_string())
        };
        assert_eq!(outcome(got), outcome(want), "{i}");
    }
    assert!(results[45..].iter().all(Result::is_err), "key 16 cannot pay");
    assert_eq!(batched.len(), one_by_one.len());
    assert_eq!(batched.len(), 45);
    assert_eq!(*reads.single.lock().unwrap(), 0, "no one-by-one reads");
    let batches = reads.batches.lock().unwrap();
    assert_eq!(batches.len(), 1, "one batch read");
    let mut senders: Vec<Address> = (1..=16).map(|seed| key(seed).address).collect();
    senders.sort();
    assert_eq!(batches[0], senders);
    drop(batches);
    // Senders the pool tracks are not read again.
    let more: Vec<Bytes> = (1..=15u8).map(|seed| transfer(&key(seed), 3, 100, 2)).collect();
    assert!(batched.insert_batch(TxOrigin::Local, more).iter().all(Result::is_ok));
    assert_eq!(reads.batches.lock().unwrap().last().unwrap(), &Vec::<Address>::new());
    assert_eq!(*reads.single.lock().unwrap(), 0);
}

#[test]
fn decoded_transactions_are_admitted_too() {
    let f = fixture(config());
    let tx = BlockTx::Eip1559(sign(eip1559(0, 100, 2), &key(1)));
    let admitted = f.pool.insert_decoded(TxOrigin::Local, tx.clone()).unwrap();
    assert_eq!(admitted.hash, *tx.tx_hash());
    assert!(matches!(f.pool.insert_decoded(TxOrigin::Local, tx), Err(PoolError::AlreadyKnown(_))));
}

// ---------------------------------------------------------------- payload

#[test]
fn payload_round_trip() {
    let txs: Vec<Bytes> = vec![
        transfer(&key(1), 0, 100, 2),
        BlockTx::Legacy(sign(legacy(0, Some(CHAIN_ID)), &key(2))).encoded_2718().into(),
    ];
    let payload = encode_payload(&txs);
    let decoded = decode_payload(&payload, 10, payload.len()).unwrap();
    let reencoded: Vec<Bytes> = decoded.iter().map(|tx| tx.encoded_2718().into()).collect();
    assert_eq!(reencoded, txs);
    assert_eq!(split_payload(&payload, 10, payload.len()).unwrap(), vec![&txs[0][..], &txs[1][..]]);
    let empty = encode_payload::<Bytes>(&[]);
    assert_eq!(empty, vec![0xc0]);
    assert!(decode_payload(&empty, 0, 1).unwrap().is_empty());
}

#[test]
fn malformed_payloads_are_refused() {
    let txs = vec![transfer(&key(1), 0, 100, 2), transfer(&key(1), 1, 100, 2)];
    let payload = encode_payload(&txs);
    let len = payload.len();
    assert_eq!(
        decode_payload(&payload, 10, len - 1),
        Err(PayloadError::TooLarge { len, max: len - 1 })
    );
    assert_eq!(decode_payload(&payload, 1, len), Err(PayloadError::TooManyTxs { max: 1 }));
    let mut trailing = payload.clone();
    trailing.push(0x80);
    assert_eq!(decode_payload(&trailing, 10, len + 1), Err(PayloadError::TrailingBytes(1)));
    assert!(matches!(decode_payload(&payload[..len - 1], 10, len), Err(PayloadError::Decode(_))));
    assert!(matches!(decode_payload(&[0x80], 10, 10), Err(PayloadError::Decode(_))));
    assert!(matches!(decode_payload(&[], 10, 10), Err(PayloadError::Decode(_))));
    // An item that is a list, not a byte string.
    assert!(matches!(decode_payload(&[0xc1, 0xc0], 10, 10), Err(PayloadError::Decode(_))));
    // A byte string that is not a transaction.
    let junk = encode_payload(&[Bytes::from_static(&[0x02, 0xc0])]);
    assert!(matches!(
        decode_payload(&junk, 10, 100),
        Err(PayloadError::Transaction { index: 0, source: TxError::Decode(_) })
    ));
    let oversized = encode_payload(&[Bytes::from(vec![0u8; TX_BYTES_MAX + 1])]);
    assert!(matches!(
        split_payload(&oversized, 10, usize::MAX),
        Err(PayloadError::Transaction { index: 0, source: TxError::Oversized { .. } })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random byte strings never panic the payload decoder.
    #[test]
    fn payload_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_payload(&bytes, 16, 256);
    }

    /// Random insert / build / order / execute sequences keep the pool's
    /// invariants, checked from the outside.
    #[test]
    fn random_operations_keep_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        run_ops(ops)?;
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        sender: u8,
        nonce: u64,
        priority_fee: u128,
        extra_fee: u128,
    },
    Build {
        txs_max: usize,
        gas_txs: u64,
        base_fee: u64,
    },
    /// The first `count` transactions of a build are ordered (consensus
    /// commits them); they execute later.
    Order {
        count: usize,
    },
    /// The oldest ordered block executes; each transaction pays its fee and
    /// the sender spends `spend` transfers' worth elsewhere.
    Execute {
        spend: u64,
    },
    /// A sender's balance is set by a block of transactions the pool never saw.
    Fund {
        sender: u8,
        balance_txs: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..5, 0u64..10, 1u128..60, 0u128..60).prop_map(
            |(sender, nonce, priority_fee, extra_fee)| Op::Insert { sender, nonce, priority_fee, extra_fee }
        ),
        2 => (1usize..10, 1u64..10, 5u64..40)
            .prop_map(|(txs_max, gas_txs, base_fee)| Op::Build { txs_max, gas_txs, base_fee }),
        2 => (0usize..6).prop_map(|count| Op::Order { count }),
        2 => (0u64..3).prop_map(|spend| Op::Execute { spend }),
        1 => (0u8..5, 0u64..8).prop_map(|(sender, balance_txs)| Op::Fund { sender, balance_txs }),
    ]
}

/// Cost of one test transfer at `max_fee`.
fn transfer_cost(max_fee: u128) -> U256 {
    U256::from(21_000u128 * max_fee + 1)
}

/// The chain as the test sees it: executed accounts, and the blocks ordered
/// but not executed yet.
struct Model {
    accounts: Arc<Accounts>,
    ordered: VecDeque<(u64, Vec<(Address, u64)>)>,
    height: u64,
    executed: u64,
}

impl Model {
    /// Where a sender's next built transaction must start.
    fn next_nonce(&self, sender: Address) -> u64 {
        let floor = self
            .ordered
            .iter()
            .flat_map(|(_, txs)| txs)
            .filter(|(s, _)| *s == sender)
            .map(|(_, nonce)| nonce + 1)
            .max()
            .unwrap_or(0);
        self.accounts.account_state(sender).unwrap().nonce.max(floor)
    }
}

fn run_ops(ops: Vec<Op>) -> Result<(), TestCaseError> {
    const TXS_MAX: usize = 12;
    let keys: Vec<Key> = (1..=5).map(key).collect();
    let accounts = Arc::new(Accounts::default());
    for k in &keys {
        accounts.set(k.address, 0, transfer_cost(200) * U256::from(6));
    }
    let config = PoolConfig { txs_max: TXS_MAX, txs_per_sender_max: 5, ..config() };
    let pool = Pool::new(config, head(), accounts.clone());
    let mut model = Model { accounts, ordered: VecDeque::new(), height: 0, executed: 0 };
    for op in ops {
        match op {
            Op::Insert { sender, nonce, priority_fee, extra_fee } => {
                let k = &keys[sender as usize];
                let state_nonce = model.accounts.account_state(k.address).unwrap().nonce;
                let max_fee = u128::from(BASE_FEE) + priority_fee + extra_fee;
                let _ = insert(&pool, transfer(k, state_nonce + nonce, max_fee, priority_fee));
            }
            Op::Build { txs_max, gas_txs, base_fee } => {
                let limits = BlockLimits {
                    gas_limit: gas_txs * 21_000,
                    bytes_max: 1 << 20,
                    txs_max,
                    base_fee,
                };
                let block = pool.build(&limits);
                check_block(&pool, &model, &block, &limits)?;
            }
            Op::Order { count } => {
                let limits = BlockLimits { txs_max: count, ..limits() };
                let block = pool.build(&limits);
                check_block(&pool, &model, &block, &limits)?;
                model.height += 1;
                pool.on_block_ordered(model.height, nonces_of(&block));
                model.ordered.push_back((model.height, nonces_of(&block)));
            }
            Op::Execute { spend } => {
                let Some((height, block)) = model.ordered.pop_front() else { continue };
                let mut touched = BTreeMap::new();
                for (sender, nonce) in block {
                    let mut state = model.accounts.account_state(sender).unwrap();
                    prop_assert_eq!(state.nonce, nonce, "ordered blocks execute in nonce order");
                    state.nonce += 1;
                    let paid =
                        transfer_cost(u128::from(BASE_FEE)) + U256::from(spend) * transfer_cost(1);
                    state.balance = state.balance.saturating_sub(paid);
                    model.accounts.set(sender, state.nonce, state.balance);
                    touched.insert(sender, state);
                }
                model.executed = height;
                pool.on_block_executed(height, touched);
            }
            Op::Fund { sender, balance_txs } => {
                let k = &keys[sender as usize];
                let mut state = model.accounts.account_state(k.address).unwrap();
                state.balance = transfer_cost(200) * U256::from(balance_txs);
                model.accounts.set(k.address, state.nonce, state.balance);
                pool.on_block_executed(model.executed, [(k.address, state)]);
            }
        }
        check_pool(&pool, &model.accounts, TXS_MAX)?;
    }
    Ok(())
}

/// Invariants of the pool's contents, from its public API only.
fn check_pool(pool: &Pool, accounts: &Accounts, txs_max: usize) -> Result<(), TestCaseError> {
    let txs = pool.txs();
    prop_assert!(txs.len() <= txs_max);
    prop_assert_eq!(txs.len(), pool.len());
    prop_assert_eq!(txs.iter().map(|tx| tx.raw().len()).sum::<usize>(), pool.bytes_len());
    let hashes: HashSet<B256> = txs.iter().map(|tx| tx.hash()).collect();
    prop_assert_eq!(hashes.len(), txs.len(), "duplicate hashes");
    let mut by_sender: BTreeMap<Address, Vec<&Arc<PooledTx>>> = BTreeMap::new();
    for tx in &txs {
        by_sender.entry(tx.sender()).or_default().push(tx);
    }
    for (sender, sender_txs) in by_sender {
        let state = accounts.account_state(sender).unwrap();
        let nonces: Vec<u64> = sender_txs.iter().map(|tx| tx.nonce()).collect();
        prop_assert!(nonces.windows(2).all(|w| w[0] < w[1]), "nonce order");
        prop_assert!(nonces.iter().all(|n| *n >= state.nonce), "stale nonce kept");
        let cost: U256 = sender_txs.iter().map(|tx| tx.cost()).sum();
        prop_assert!(cost <= state.balance, "unfunded queue");
        let ready = nonces.iter().zip(state.nonce..).take_while(|(n, want)| **n == *want).count();
        let summary = pool.sender(&sender).expect("a sender with transactions is tracked");
        prop_assert_eq!(summary.ready, ready);
        prop_assert_eq!(summary.queued, nonces.len() - ready);
        prop_assert_eq!(summary.account, state);
    }
    Ok(())
}

/// A built block: per sender, contiguous nonces from where the executed
/// state and the ordered blocks leave it; fees covering the base fee;
/// within the limits; only pooled transactions.
fn check_block(
    pool: &Pool,
    model: &Model,
    block: &[Arc<PooledTx>],
    limits: &BlockLimits,
) -> Result<(), TestCaseError> {
    prop_assert!(block.len() <= limits.txs_max);
    prop_assert!(block.iter().map(|tx| tx.gas_limit()).sum::<u64>() <= limits.gas_limit);
    let mut next: HashMap<Address, u64> = HashMap::new();
    for tx in block {
        prop_assert!(pool.contains(&tx.hash()));
        prop_assert!(tx.max_fee_per_gas() >= u128::from(limits.base_fee));
        let expected = match next.get(&tx.sender()) {
            Some(n) => *n,
            None => model.next_nonce(tx.sender()),
        };
        prop_assert_eq!(tx.nonce(), expected, "nonce order within a sender");
        next.insert(tx.sender(), expected + 1);
    }
    Ok(())
}

// ------------------------------------------------------------- throughput

/// Not a test: admission and build rates. Run in release:
/// `cargo test -p wake-execution --release --test pool -- --ignored --nocapture`.
#[test]
#[ignore]
fn pool_throughput() {
    const SENDERS: usize = 1_000;
    const PER_SENDER: u64 = 10;
    let keys: Vec<Key> = (0..SENDERS).map(|i| secret_key(i as u32 + 1)).collect();
    let mut raws = Vec::with_capacity(SENDERS * PER_SENDER as usize);
    let started = Instant::now();
    for nonce in 0..PER_SENDER {
        for (i, k) in keys.iter().enumerate() {
            let tip = 1 + (i as u128 * 7919 + u128::from(nonce)) % 50;
            raws.push(transfer(k, nonce, 100 + tip, tip));
        }
    }
    println!("signed {} txs in {:?}", raws.len(), started.elapsed());
    let new_pool = || {
        let accounts = Arc::new(Accounts::default());
        for k in &keys {
            accounts.set(k.address, 0, U256::from(ETHER));
        }
        Pool::new(config(), head(), accounts)
    };

    let pool = new_pool();
    let started = Instant::now();
    for raw in &raws {
        pool.insert(TxOrigin::Gossip, raw.clone()).expect("admitted");
    }
    let elapsed = started.elapsed();
    println!(
        "insert, 1 thread: {} txs in {elapsed:?} = {:.0} tx/s",
        raws.len(),
        raws.len() as f64 / elapsed.as_secs_f64()
    );

    for threads in [2, 4] {
        let pool = Pool::new(PoolConfig { recover_threads: threads, ..config() }, head(), {
            let accounts = Arc::new(Accounts::default());
            for k in &keys {
                accounts.set(k.address, 0, U256::from(ETHER));
            }
            accounts
        });
        let started = Instant::now();
        for batch in raws.chunks(512) {
            for result in pool.insert_batch(TxOrigin::Gossip, batch.to_vec()) {
                result.expect("admitted");
            }
        }
        let elapsed = started.elapsed();
        println!(
            "insert_batch(512), {threads} threads: {} txs in {elapsed:?} = {:.0} tx/s",
            raws.len(),
            raws.len() as f64 / elapsed.as_secs_f64()
        );
    }

    // Stateful part alone: senders recovered beforehand.
    let pool2 = new_pool();
    let started = Instant::now();
    let prepared: Vec<_> = raws.iter().map(|raw| pool2.prepare(raw.clone()).unwrap()).collect();
    let elapsed = started.elapsed();
    println!(
        "prepare (decode, checks, sender recovery; no state): {:.1} µs/tx",
        elapsed.as_secs_f64() * 1e6 / raws.len() as f64
    );
    let started = Instant::now();
    for tx in prepared {
        pool2.insert_prepared(TxOrigin::Gossip, tx).expect("admitted");
    }
    let elapsed = started.elapsed();
    println!(
        "insert_prepared (under the lock): {} txs in {elapsed:?} = {:.0} tx/s",
        raws.len(),
        raws.len() as f64 / elapsed.as_secs_f64()
    );

    let limits = BlockLimits {
        gas_limit: 21_000 * 10_000,
        bytes_max: 16 << 20,
        txs_max: 10_000,
        base_fee: BASE_FEE,
    };
    let mut best = std::time::Duration::MAX;
    let mut block = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        block = pool.build(&limits);
        best = best.min(started.elapsed());
    }
    assert_eq!(block.len(), 10_000);
    let started = Instant::now();
    let payload = encode_payload(&block.iter().map(|tx| tx.raw().clone()).collect::<Vec<_>>());
    let encode = started.elapsed();
    println!(
        "build of a {}-tx block from {} pooled: {best:?} (best of 5); payload {} bytes encoded in {encode:?}",
        block.len(),
        pool.len(),
        payload.len()
    );
}

/// Keys beyond the 255 of `common::key`.
fn secret_key(n: u32) -> Key {
    let mut bytes = [0x11u8; 32];
    bytes[28..].copy_from_slice(&n.to_be_bytes());
    let secret = secp256k1::SecretKey::from_byte_array(bytes).expect("valid key");
    let public = secret.public_key(secp256k1::SECP256K1).serialize_uncompressed();
    let address = Address::from_slice(&alloy_primitives::keccak256(&public[1..])[12..]);
    Key { secret, address }
}
