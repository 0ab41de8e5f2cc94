//! The transaction pool (mempool): admission, per-sender nonce queues, fee
//! priority, eviction under a size cap, block building, and the outbox the
//! gossip layer drains.
//!
//! The pool is fed by the JSON-RPC thread ([`TxOrigin::Local`]) and the p2p
//! thread ([`TxOrigin::Gossip`]) and read by the leader's block builder on
//! the consensus thread, so [`Pool`] is `Send + Sync` with one internal
//! lock, held only for map updates (a few microseconds per transaction).
//!
//! # Admission
//!
//! [`Pool::insert`] = [`Pool::prepare`] + [`Pool::insert_prepared`].
//! `prepare` runs **outside the lock** and does everything that needs no
//! state: the size bound ([`TX_BYTES_MAX`]), a duplicate check by hash
//! (before anything costly: gossip delivers each transaction from several
//! peers), bounded decoding, the type enabled at the head's fork and
//! accepted by the pool, the chain id (EIP-155: a legacy transaction without
//! one is refused), fees, init code size (EIP-3860), intrinsic gas (revm's
//! own `calculate_initial_tx_gas`, with the EIP-7623 floor from Prague on),
//! the gas limit against the block gas limit, and last the sender recovery
//! (~40 µs of ECDSA with libsecp256k1, EIP-2 low-s enforced).
//! [`Pool::insert_batch`] runs `prepare` on several threads, then reads the
//! accounts of the senders the pool does not track in one
//! [`AccountSource::account_states`] call and admits the batch under one
//! lock ([`Pool::insert_prepared_batch`]).
//!
//! `insert_prepared` checks the transaction against the sender's account in
//! the latest executed state plus the sender's pending transactions:
//! * nonce ≥ the account nonce (and ≥ the nonce floor of ordered but not
//!   yet executed blocks, see below);
//! * nonce ≤ account nonce + the sender's pending count + `nonce_gap_max`;
//! * balance ≥ the summed maximum cost (`gas_limit * max_fee + value`) of
//!   **all** the sender's pending transactions including this one. This is
//!   stricter than "this one plus those with lower nonces" only when a gap
//!   is filled or a transaction replaced, and it keeps the invariant that a
//!   sender's whole queue is fundable, so admitting one transaction never
//!   makes a later one unfundable.
//!
//! The account comes from an [`AccountSource`] (triedb in the node). Its read
//! happens outside the lock, and only for senders the pool does not track
//! yet: for tracked senders the pool's own copy is authoritative, because
//! [`Pool::on_block_executed`] updates it. A block executed between the read
//! and the lock bumps an epoch, and the read is redone (after two retries
//! it is done under the lock). Contract: the source must show a block's state
//! before `on_block_executed` is called for that block.
//!
//! Fee policy: `max_fee_per_gas` must be at least `max(max_fee_per_gas_min,
//! head base fee)` at admission, and the priority fee at most the max fee.
//! A transaction whose max fee later falls below a risen base fee stays in
//! the pool; the builder skips it (and its sender's later nonces) until the
//! base fee comes back down (eviction ranks ignore the base fee, see below).
//! Blob (EIP-4844) and set-code (EIP-7702) transactions are refused: the
//! payload carries no blob sidecars, so the pool cannot give EIP-4844's
//! availability guarantee, and an authorization changes other accounts'
//! nonces, which per-sender queues cannot track.
//!
//! # Queues, replacement, duplicates
//!
//! Each sender has a `BTreeMap` nonce → transaction. Its *ready* part is the
//! contiguous run from the account nonce; what follows a gap is *queued*
//! (not buildable until the gap fills or the nonce moves). A transaction
//! with the (sender, nonce) of a pending one replaces it only if both its max
//! fee and its priority fee are at least `price_bump_percent` (10) percent
//! higher (geth's rule: `new ≥ old * (100 + bump) / 100`). A hash already
//! pooled is [`PoolError::AlreadyKnown`].
//!
//! # Eviction
//!
//! When the pool is over `txs_max` or `bytes_max`, the cheapest *tail* (a
//! sender's highest nonce) goes first, so eviction never opens a gap. The
//! rank is `(min(priority fee, max fee), max fee)`, independent of the base
//! fee so the index needs no rebuild when it moves; among equals the newest
//! goes first. A newcomer only evicts transactions of other senders that
//! rank strictly lower than itself; otherwise it is refused with
//! [`PoolError::PoolFull`]. The plan is computed before anything is removed,
//! so a refused newcomer evicts nothing. A full pool refuses a newcomer that
//! ranks no higher than its cheapest tail before recovering its signature,
//! so a flood beyond capacity costs a decode per transaction, not an ECDSA
//! recovery (and, since the sender is then unknown, such a transaction is
//! refused even where it would have replaced one of its sender's own).
//!
//! # Building and asynchronous execution
//!
//! [`Pool::build`] picks by effective tip (`min(priority fee, max fee - base
//! fee)`, oldest first among equals) from a heap holding each sender's next
//! ready transaction, as reth's `BestTransactions` does, and stops at the gas,
//! byte ([`payload_len`]) or count limit. A transaction that does not fit, or
//! whose max fee is below the base fee, ends its sender's run for this block
//! (its later nonces depend on it). Building removes nothing: the block may
//! never commit.
//!
//! With asynchronous execution a block is ordered long before it is executed,
//! so the executed nonce lags. [`Pool::on_block_ordered`] records, per sender,
//! the nonce after that block's transactions; the builder starts each sender
//! there and admission refuses nonces below it, so no transaction is proposed
//! twice. Call it for every committed block and for the uncommitted ancestors
//! of the block being built. [`Pool::on_block_executed`] applies the executed
//! accounts (new nonces and balances of every touched account): mined and
//! stale transactions are dropped, balances re-checked (the first unfundable
//! transaction of a sender and all later ones are dropped), and the floors
//! of blocks up to that height are cleared (an abandoned proposal's floor
//! therefore holds its senders back until a block of that height executes).
//!
//! # Gossip
//!
//! The pool does no networking. Newly admitted [`TxOrigin::Local`]
//! transactions are queued in a bounded outbox ([`Pool::drain_gossip`]; the
//! oldest entry is dropped and counted when full). Transactions that came by
//! gossip are forwarded by the gossip protocol itself: [`Admitted`] says a
//! transaction was new, and [`PoolError::is_peer_fault`] separates a
//! provably invalid message (penalise the peer) from one that is merely not
//! wanted now.

use crate::error::{StateError, TxError};
use crate::payload::{payload_item_len, payload_len};
use crate::tx::{BlockTx, TX_BYTES_MAX, blob_gas, decode_tx, recover_sender, type_enabled};
use alloy_consensus::{Transaction, Typed2718};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::map::{AddressMap, B256Map};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use parking_lot::{Mutex, RwLock};
use revm::context_interface::cfg::gas::calculate_initial_tx_gas;
use revm::primitives::eip3860::MAX_INITCODE_SIZE;
use revm::primitives::hardfork::SpecId;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Gas of the cheapest transaction: below this, a block is full.
const TX_GAS_MIN: u64 = 21_000;
/// Re-reads of a new sender's account when blocks execute meanwhile, before
/// the read is done under the lock.
const STATE_READ_RETRIES: usize = 2;
/// Most transactions one admission may evict (a large transaction displacing
/// many small ones); beyond this it is refused.
const EVICTIONS_PER_INSERT_MAX: usize = 256;
/// Fewest transactions per thread in [`Pool::insert_batch`].
const PREPARE_TXS_PER_THREAD_MIN: usize = 16;

/// Limits and policy of a [`Pool`], fixed at construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Transactions must carry this chain id (EIP-155).
    pub chain_id: u64,
    /// Most transactions pooled.
    pub txs_max: usize,
    /// Most envelope bytes pooled.
    pub bytes_max: usize,
    /// Most transactions pooled per sender.
    pub txs_per_sender_max: usize,
    /// How far past `account nonce + pending count` a nonce may be.
    pub nonce_gap_max: u64,
    /// Minimum fee increase, in percent, for a replacement.
    pub price_bump_percent: u64,
    /// Lowest accepted `max_fee_per_gas` (wei), whatever the base fee.
    pub max_fee_per_gas_min: u128,
    /// Most transactions waiting in the gossip outbox.
    pub gossip_outbox_max: usize,
    /// Threads [`Pool::insert_batch`] recovers senders on.
    pub recover_threads: usize,
}

impl PoolConfig {
    /// Defaults sized for 10,000 tx/s with blocks every ~0.5 s and a
    /// pipeline a few blocks deep.
    pub fn new(chain_id: u64) -> PoolConfig {
        PoolConfig {
            chain_id,
            txs_max: 65_536,
            bytes_max: 64 * 1024 * 1024,
            txs_per_sender_max: 1_024,
            nonce_gap_max: 64,
            price_bump_percent: 10,
            max_fee_per_gas_min: 0,
            gossip_outbox_max: 16_384,
            recover_threads: 2,
        }
    }
}

/// What admission needs to know of the chain head; set by the node as
/// blocks are ordered and executed ([`Pool::set_head`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolHead {
    /// Fork of the next block: which transaction types and gas rules apply.
    pub spec: SpecId,
    /// Base fee of the next block.
    pub base_fee: u64,
    /// Gas limit of the next block.
    pub block_gas_limit: u64,
}

/// Nonce and balance of an account in the latest executed state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountState {
    pub nonce: u64,
    pub balance: U256,
}

/// The latest executed state, as the pool reads it (triedb in the node).
pub trait AccountSource: Send + Sync {
    /// The account at `address`; a missing account is the default (zero).
    fn account_state(&self, address: Address) -> Result<AccountState, StateError>;

    /// The accounts at `addresses`, in order, read together (triedb has
    /// them all in flight at once); by default one after another.
    fn account_states(&self, addresses: &[Address]) -> Result<Vec<AccountState>, StateError> {
        addresses.iter().map(|address| self.account_state(*address)).collect()
    }
}

impl<F> AccountSource for F
where
    F: Fn(Address) -> Result<AccountState, StateError> + Send + Sync,
{
    fn account_state(&self, address: Address) -> Result<AccountState, StateError> {
        self(address)
    }
}

/// The accounts a block's execution touched, as [`Pool::on_block_executed`]
/// takes them: a deleted account is nonce 0, balance 0.
pub fn touched_accounts(
    updates: &wake_triedb::StateUpdates,
) -> impl Iterator<Item = (Address, AccountState)> + '_ {
    updates.accounts.iter().map(|(address, update)| {
        let state = match update {
            wake_triedb::AccountUpdate::Delete => AccountState::default(),
            wake_triedb::AccountUpdate::Set { info, .. } => {
                AccountState { nonce: info.nonce, balance: info.balance }
            }
        };
        (*address, state)
    })
}

/// Where a transaction came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxOrigin {
    /// Submitted to this node (JSON-RPC): gossiped through the outbox.
    Local,
    /// Received from a peer: the gossip protocol forwards it.
    Gossip,
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    #[error("transaction of {len} bytes exceeds the {max}-byte limit")]
    Oversized { len: usize, max: usize },
    #[error("bad transaction encoding: {0}")]
    Decode(alloy_rlp::Error),
    #[error("transaction type {ty} is not enabled in {spec:?}")]
    TypeNotEnabled { ty: u8, spec: SpecId },
    #[error("transaction type {ty} is not accepted by the pool")]
    TypeNotAccepted { ty: u8 },
    #[error("legacy transaction without a chain id (pre-EIP-155)")]
    ChainIdMissing,
    #[error("wrong chain id {got}, chain is {expected}")]
    ChainIdMismatch { expected: u64, got: u64 },
    #[error("invalid signature: no sender can be recovered")]
    InvalidSignature,
    #[error("intrinsic gas too low: gas limit {gas_limit}, intrinsic {intrinsic}")]
    IntrinsicGasTooLow { gas_limit: u64, intrinsic: u64 },
    #[error("init code of {len} bytes exceeds {max}")]
    InitCodeTooLarge { len: usize, max: usize },
    #[error("gas limit {gas_limit} above the block gas limit {block_gas_limit}")]
    GasLimitAboveBlock { gas_limit: u64, block_gas_limit: u64 },
    #[error("max fee per gas {max_fee} below the required {required}")]
    FeeTooLow { max_fee: u128, required: u128 },
    #[error("priority fee {priority_fee} above max fee {max_fee}")]
    PriorityFeeAboveMaxFee { priority_fee: u128, max_fee: u128 },
    #[error("nonce too low: transaction {tx}, account {account}")]
    NonceTooLow { tx: u64, account: u64 },
    #[error("nonce {tx} too far ahead: at most {max} accepted")]
    NonceGapTooLarge { tx: u64, max: u64 },
    #[error("insufficient funds: balance {balance}, pending cost with this transaction {cost}")]
    InsufficientFunds { balance: U256, cost: U256 },
    #[error("transaction {0} is already pooled")]
    AlreadyKnown(B256),
    #[error(
        "replacement underpriced: needs max fee ≥ {max_fee_min} and priority fee ≥ {priority_fee_min}"
    )]
    ReplacementUnderpriced { max_fee_min: u128, priority_fee_min: u128 },
    #[error("sender already has {max} pooled transactions")]
    SenderFull { max: usize },
    #[error("pool full and the transaction does not outbid what it would evict")]
    PoolFull,
    #[error(transparent)]
    State(#[from] StateError),
}

impl PoolError {
    /// The counter this rejection is recorded under.
    pub fn reason(&self) -> RejectReason {
        use RejectReason as R;
        match self {
            PoolError::Oversized { .. } => R::Oversized,
            PoolError::Decode(_) => R::Decode,
            PoolError::TypeNotEnabled { .. } | PoolError::TypeNotAccepted { .. } => R::Type,
            PoolError::ChainIdMissing | PoolError::ChainIdMismatch { .. } => R::ChainId,
            PoolError::InvalidSignature => R::Signature,
            PoolError::IntrinsicGasTooLow { .. } | PoolError::InitCodeTooLarge { .. } => {
                R::IntrinsicGas
            }
            PoolError::GasLimitAboveBlock { .. } => R::GasLimit,
            PoolError::FeeTooLow { .. } | PoolError::PriorityFeeAboveMaxFee { .. } => R::Fee,
            PoolError::NonceTooLow { .. } => R::NonceTooLow,
            PoolError::NonceGapTooLarge { .. } => R::NonceGap,
            PoolError::InsufficientFunds { .. } => R::Funds,
            PoolError::AlreadyKnown(_) => R::AlreadyKnown,
            PoolError::ReplacementUnderpriced { .. } => R::ReplacementUnderpriced,
            PoolError::SenderFull { .. } => R::SenderFull,
            PoolError::PoolFull => R::PoolFull,
            PoolError::State(_) => R::State,
        }
    }

    /// True when the transaction is invalid whatever the state (bad
    /// encoding, signature, chain id, intrinsic gas): a peer that gossips it
    /// misbehaves. False for rejections that depend on the pool or the
    /// state, and for our own storage failing.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            PoolError::Oversized { .. }
                | PoolError::Decode(_)
                | PoolError::ChainIdMissing
                | PoolError::ChainIdMismatch { .. }
                | PoolError::InvalidSignature
                | PoolError::IntrinsicGasTooLow { .. }
                | PoolError::InitCodeTooLarge { .. }
                | PoolError::PriorityFeeAboveMaxFee { .. }
        )
    }
}

impl From<TxError> for PoolError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Oversized { len, max } => PoolError::Oversized { len, max },
            TxError::Decode(e) => PoolError::Decode(e),
            // `decode_tx` and `recover_sender` return nothing else.
            _ => PoolError::InvalidSignature,
        }
    }
}

/// Rejection counters, one per reason ([`PoolError::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    Oversized,
    Decode,
    Type,
    ChainId,
    Signature,
    IntrinsicGas,
    GasLimit,
    Fee,
    NonceTooLow,
    NonceGap,
    Funds,
    AlreadyKnown,
    ReplacementUnderpriced,
    SenderFull,
    PoolFull,
    State,
}

impl RejectReason {
    /// Every reason, in counter order.
    pub const ALL: [RejectReason; 16] = [
        RejectReason::Oversized,
        RejectReason::Decode,
        RejectReason::Type,
        RejectReason::ChainId,
        RejectReason::Signature,
        RejectReason::IntrinsicGas,
        RejectReason::GasLimit,
        RejectReason::Fee,
        RejectReason::NonceTooLow,
        RejectReason::NonceGap,
        RejectReason::Funds,
        RejectReason::AlreadyKnown,
        RejectReason::ReplacementUnderpriced,
        RejectReason::SenderFull,
        RejectReason::PoolFull,
        RejectReason::State,
    ];

    /// A metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Oversized => "oversized",
            RejectReason::Decode => "decode",
            RejectReason::Type => "type",
            RejectReason::ChainId => "chain_id",
            RejectReason::Signature => "signature",
            RejectReason::IntrinsicGas => "intrinsic_gas",
            RejectReason::GasLimit => "gas_limit",
            RejectReason::Fee => "fee",
            RejectReason::NonceTooLow => "nonce_too_low",
            RejectReason::NonceGap => "nonce_gap",
            RejectReason::Funds => "funds",
            RejectReason::AlreadyKnown => "already_known",
            RejectReason::ReplacementUnderpriced => "replacement_underpriced",
            RejectReason::SenderFull => "sender_full",
            RejectReason::PoolFull => "pool_full",
            RejectReason::State => "state",
        }
    }
}

/// Eviction rank: the tip at a zero base fee, then the max fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct FeeRank {
    tip: u128,
    max_fee: u128,
}

/// A pooled transaction with everything admission derived from it. Shared
/// (`Arc`) between the pool and the blocks built from it.
#[derive(Debug)]
pub struct PooledTx {
    tx: BlockTx,
    raw: Bytes,
    hash: B256,
    sender: Address,
    max_fee: u128,
    priority_fee: u128,
    cost: U256,
    origin: TxOrigin,
    /// Arrival order; unique within a pool.
    seq: u64,
}

impl PooledTx {
    /// The decoded transaction.
    pub fn tx(&self) -> &BlockTx {
        &self.tx
    }
    /// Its EIP-2718 envelope, as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
    pub fn hash(&self) -> B256 {
        self.hash
    }
    pub fn sender(&self) -> Address {
        self.sender
    }
    pub fn nonce(&self) -> u64 {
        self.tx.nonce()
    }
    pub fn gas_limit(&self) -> u64 {
        self.tx.gas_limit()
    }
    pub fn max_fee_per_gas(&self) -> u128 {
        self.max_fee
    }
    /// The priority fee (the gas price for legacy and EIP-2930).
    pub fn priority_fee_per_gas(&self) -> u128 {
        self.priority_fee
    }
    /// Most wei it can take from the sender: `gas_limit * max_fee + value`
    /// (plus blob gas at its max blob fee).
    pub fn cost(&self) -> U256 {
        self.cost
    }
    pub fn origin(&self) -> TxOrigin {
        self.origin
    }
    /// What the block producer earns per gas at `base_fee`, or `None` when
    /// the max fee is below it.
    pub fn effective_tip(&self, base_fee: u64) -> Option<u128> {
        let headroom = self.max_fee.checked_sub(u128::from(base_fee))?;
        Some(self.priority_fee.min(headroom))
    }
    fn rank(&self) -> FeeRank {
        FeeRank { tip: self.priority_fee.min(self.max_fee), max_fee: self.max_fee }
    }
    fn size(&self) -> usize {
        self.raw.len()
    }
}

/// A transaction that passed every stateless check, sender recovered
/// ([`Pool::prepare`]); [`Pool::insert_prepared`] adds the stateful ones.
#[derive(Debug)]
pub struct PreparedTx(PooledTx);

impl PreparedTx {
    pub fn hash(&self) -> B256 {
        self.0.hash
    }
    pub fn sender(&self) -> Address {
        self.0.sender
    }
    pub fn tx(&self) -> &BlockTx {
        &self.0.tx
    }
}

/// A successful admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub hash: B256,
    pub sender: Address,
    pub nonce: u64,
    /// The pooled transaction it replaced (same sender and nonce).
    pub replaced: Option<B256>,
    /// Transactions of other senders evicted to make room.
    pub evicted: usize,
    /// Buildable now (no nonce gap before it); false: queued behind a gap.
    pub ready: bool,
}

/// Limits of one block for [`Pool::build`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLimits {
    pub gas_limit: u64,
    /// Most bytes of the encoded payload ([`crate::encode_payload`]).
    pub bytes_max: usize,
    pub txs_max: usize,
    pub base_fee: u64,
}

/// What [`Pool::on_block_executed`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecutedReport {
    /// Nonce below the executed account nonce: mined, or replaced on chain.
    pub mined: usize,
    /// No longer fundable at the executed balance (with all later nonces).
    pub unfunded: usize,
}

/// One sender's view, for JSON-RPC and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderSummary {
    /// The account as the pool last saw it executed.
    pub account: AccountState,
    /// The nonce the next transaction should use (after ready transactions
    /// and ordered blocks).
    pub next_nonce: u64,
    pub ready: usize,
    pub queued: usize,
}

/// Counter snapshot ([`Pool::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub admitted: u64,
    pub replaced: u64,
    pub evicted: u64,
    pub removed_mined: u64,
    pub removed_unfunded: u64,
    pub gossip_dropped: u64,
    /// Rejections per reason, in [`RejectReason::ALL`] order.
    pub rejected: Vec<(RejectReason, u64)>,
    pub txs: u64,
    pub bytes: u64,
    pub senders: u64,
}

#[derive(Default)]
struct Counters {
    admitted: AtomicU64,
    replaced: AtomicU64,
    evicted: AtomicU64,
    removed_mined: AtomicU64,
    removed_unfunded: AtomicU64,
    gossip_dropped: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    txs: AtomicU64,
    bytes: AtomicU64,
    senders: AtomicU64,
}

/// The transaction pool. See the module documentation.
pub struct Pool {
    config: PoolConfig,
    head: RwLock<PoolHead>,
    source: Arc<dyn AccountSource>,
    inner: Mutex<Inner>,
    counters: Counters,
    /// The pool's fullness as of the last change, for refusing, before the
    /// signature is recovered, what a full pool would refuse anyway.
    fullness: RwLock<Fullness>,
}

/// What [`Pool::check`] needs of the pool's state, published under the
/// pool's lock whenever its size changes.
#[derive(Clone, Copy, Default)]
struct Fullness {
    txs: usize,
    bytes: usize,
    /// The rank of the cheapest tail (the first a newcomer would evict).
    cheapest: Option<FeeRank>,
}

impl Pool {
    pub fn new(config: PoolConfig, head: PoolHead, source: Arc<dyn AccountSource>) -> Pool {
        Pool {
            config,
            head: RwLock::new(head),
            source,
            inner: Mutex::new(Inner::default()),
            counters: Counters::default(),
            fullness: RwLock::new(Fullness::default()),
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub fn head(&self) -> PoolHead {
        *self.head.read()
    }

    /// Sets the fork, base fee and gas limit of the next block. Pooled
    /// transactions are not re-checked: the builder skips what no longer pays.
    pub fn set_head(&self, head: PoolHead) {
        *self.head.write() = head;
    }

    /// Admits one EIP-2718 envelope: [`Pool::prepare`] then
    /// [`Pool::insert_prepared`].
    pub fn insert(&self, origin: TxOrigin, raw: Bytes) -> Result<Admitted, PoolError> {
        let tx = self.prepare(raw)?;
        self.insert_prepared(origin, tx)
    }

    /// Admits an already decoded transaction (re-encoded for the payload).
    pub fn insert_decoded(&self, origin: TxOrigin, tx: BlockTx) -> Result<Admitted, PoolError> {
        let tx = self.prepare_decoded(tx)?;
        self.insert_prepared(origin, tx)
    }

    /// Admits many envelopes, running [`Pool::prepare`] (sender recovery) on
    /// up to `recover_threads` threads; results in input order. The caller
    /// bounds the batch (one gossip message, one RPC batch).
    pub fn insert_batch(
        &self,
        origin: TxOrigin,
        raws: Vec<Bytes>,
    ) -> Vec<Result<Admitted, PoolError>> {
        let threads = self
            .config
            .recover_threads
            .clamp(1, raws.len().div_ceil(PREPARE_TXS_PER_THREAD_MIN).max(1));
        let prepared: Vec<Result<PreparedTx, PoolError>> = if threads == 1 {
            raws.into_iter().map(|raw| self.prepare(raw)).collect()
        } else {
            let chunk = raws.len().div_ceil(threads);
            let mut raws = raws.into_iter();
            let chunks: Vec<Vec<Bytes>> = (0..threads)
                .map(|_| raws.by_ref().take(chunk).collect())
                .filter(|c: &Vec<Bytes>| !c.is_empty())
                .collect();
            crate::workers::map(chunks, |chunk| {
                chunk.into_iter().map(|raw| self.prepare(raw)).collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect()
        };
        self.insert_prepared_batch(origin, prepared)
    }

    /// [`Pool::insert_prepared`] for many: the accounts of the senders the
    /// pool does not track are read in one batch (outside the lock), then
    /// every transaction is admitted under one lock, in order. Errors of
    /// `prepared` pass through.
    pub fn insert_prepared_batch(
        &self,
        origin: TxOrigin,
        prepared: Vec<Result<PreparedTx, PoolError>>,
    ) -> Vec<Result<Admitted, PoolError>> {
        let inner = self.inner.lock();
        let mut missing: Vec<Address> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|tx| tx.0.sender))
            .filter(|sender| !inner.senders.contains_key(sender))
            .collect();
        let epoch = inner.epoch;
        drop(inner);
        missing.sort_unstable();
        missing.dedup();
        // A failed read is left to each transaction's own read (and error).
        let read: AddressMap<AccountState> = match self.source.account_states(&missing) {
            Ok(states) => missing.into_iter().zip(states).collect(),
            Err(_) => AddressMap::default(),
        };
        let mut inner = self.inner.lock();
        // An executed block in between changed accounts read before it:
        // those transactions read again, one by one (`admit_with_state`).
        let fresh = epoch == inner.epoch;
        let mut results = Vec::with_capacity(prepared.len());
        for p in prepared {
            let tx = match p {
                Ok(tx) => tx,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let mut tx = tx.0;
            tx.origin = origin;
            let sender = tx.sender;
            let result = if inner.senders.contains_key(&sender) {
                inner.admit(&self.config, tx, None)
            } else if let Some(account) = read.get(&sender).filter(|_| fresh) {
                inner.admit(&self.config, tx, Some(*account))
            } else {
                drop(inner);
                let result = self.admit_with_state(tx);
                inner = self.inner.lock();
                result
            };
            self.count_admission(&result);
            results.push(result);
        }
        self.publish_sizes(&inner);
        if let Some(dropped) = inner.outbox_overflow(self.config.gossip_outbox_max) {
            self.counters.gossip_dropped.fetch_add(dropped as u64, Relaxed);
        }
        results
    }

    /// The stateless checks and sender recovery; no lock is held except for
    /// the duplicate lookup.
    pub fn prepare(&self, raw: Bytes) -> Result<PreparedTx, PoolError> {
        let result = self.prepare_raw(raw);
        self.count(&result);
        result
    }

    /// [`Pool::prepare`] for a decoded transaction.
    pub fn prepare_decoded(&self, tx: BlockTx) -> Result<PreparedTx, PoolError> {
        let raw = Bytes::from(tx.encoded_2718());
        let result = self.check_size_and_known(&raw).and_then(|hash| self.check(tx, raw, hash));
        self.count(&result);
        result
    }

    /// The stateful checks against the sender's account and pending
    /// transactions; then the transaction is pooled (evicting cheaper ones
    /// if the pool is full).
    pub fn insert_prepared(&self, origin: TxOrigin, tx: PreparedTx) -> Result<Admitted, PoolError> {
        let mut tx = tx.0;
        tx.origin = origin;
        let result = self.admit_with_state(tx);
        self.count_admission(&result);
        result
    }

    /// The best transactions for a block within `limits`, in block order.
    /// Nothing is removed.
    pub fn build(&self, limits: &BlockLimits) -> Vec<Arc<PooledTx>> {
        self.inner.lock().build(limits)
    }

    /// Records the transactions (sender, nonce) of a block whose order is
    /// fixed before it executes (see the module doc). `height` is its
    /// block number. What this keeps is bounded by the blocks ordered and
    /// not yet executed, which consensus bounds (execution may lag by at
    /// most the delay K before consensus waits).
    pub fn on_block_ordered(&self, height: u64, txs: impl IntoIterator<Item = (Address, u64)>) {
        self.inner.lock().on_block_ordered(height, txs);
    }

    /// [`Pool::on_block_ordered`] for a block given by its transaction
    /// hashes: those the pool holds are looked up and recorded under one
    /// lock (the others it cannot propose anyway).
    pub fn on_block_ordered_hashes(&self, height: u64, hashes: &[B256]) {
        let mut inner = self.inner.lock();
        let txs: Vec<(Address, u64)> =
            hashes.iter().filter_map(|hash| inner.by_hash.get(hash).copied()).collect();
        inner.on_block_ordered(height, txs);
    }

    /// Applies the accounts touched by executing block `height` (all of
    /// them: [`touched_accounts`] of its updates): drops mined and stale
    /// transactions, re-checks balances, clears ordered-block floors up to
    /// `height`.
    pub fn on_block_executed(
        &self,
        height: u64,
        accounts: impl IntoIterator<Item = (Address, AccountState)>,
    ) -> ExecutedReport {
        let mut inner = self.inner.lock();
        let report = inner.on_block_executed(height, accounts);
        self.publish_sizes(&inner);
        drop(inner);
        self.counters.removed_mined.fetch_add(report.mined as u64, Relaxed);
        self.counters.removed_unfunded.fetch_add(report.unfunded as u64, Relaxed);
        report
    }

    /// Up to `max` newly admitted local transactions for the gossip layer,
    /// oldest first.
    pub fn drain_gossip(&self, max: usize) -> Vec<Bytes> {
        let mut inner = self.inner.lock();
        let n = max.min(inner.outbox.len());
        inner.outbox.drain(..n).collect()
    }

    pub fn contains(&self, hash: &B256) -> bool {
        self.inner.lock().by_hash.contains_key(hash)
    }

    /// The recovered sender of each pooled transaction among `hashes` (one
    /// lock for all), so a block's executor need not recover them again.
    pub fn senders_of(&self, hashes: &[B256]) -> Vec<Option<Address>> {
        let inner = self.inner.lock();
        hashes.iter().map(|hash| inner.by_hash.get(hash).map(|(sender, _)| *sender)).collect()
    }

    pub fn get(&self, hash: &B256) -> Option<Arc<PooledTx>> {
        let inner = self.inner.lock();
        let (sender, nonce) = inner.by_hash.get(hash)?;
        inner.senders.get(sender)?.txs.get(nonce).cloned()
    }

    /// Every pooled transaction, grouped by sender in nonce order.
    pub fn txs(&self) -> Vec<Arc<PooledTx>> {
        let inner = self.inner.lock();
        let mut out = Vec::with_capacity(inner.txs_len);
        for queue in inner.senders.values() {
            out.extend(queue.txs.values().cloned());
        }
        out
    }

    pub fn sender(&self, sender: &Address) -> Option<SenderSummary> {
        let inner = self.inner.lock();
        let queue = inner.senders.get(sender)?;
        let ready = queue.txs.range(queue.account.nonce..queue.ready_end).count();
        let floor = inner.floors.get(sender).map_or(0, |f| f.next_nonce);
        Some(SenderSummary {
            account: queue.account,
            next_nonce: queue.ready_end.max(floor),
            ready,
            queued: queue.txs.len() - ready,
        })
    }

    /// Number of pooled transactions.
    pub fn len(&self) -> usize {
        self.inner.lock().txs_len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Envelope bytes pooled.
    pub fn bytes_len(&self) -> usize {
        self.inner.lock().bytes_len
    }

    /// Counter snapshot; takes no lock.
    pub fn stats(&self) -> PoolStats {
        let c = &self.counters;
        PoolStats {
            admitted: c.admitted.load(Relaxed),
            replaced: c.replaced.load(Relaxed),
            evicted: c.evicted.load(Relaxed),
            removed_mined: c.removed_mined.load(Relaxed),
            removed_unfunded: c.removed_unfunded.load(Relaxed),
            gossip_dropped: c.gossip_dropped.load(Relaxed),
            rejected: RejectReason::ALL
                .iter()
                .zip(&c.rejected)
                .map(|(reason, n)| (*reason, n.load(Relaxed)))
                .collect(),
            txs: c.txs.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            senders: c.senders.load(Relaxed),
        }
    }

    /// Counts the outcome of a stateful admission.
    fn count_admission(&self, result: &Result<Admitted, PoolError>) {
        self.count(result);
        if let Ok(admitted) = result {
            self.counters.admitted.fetch_add(1, Relaxed);
            self.counters.evicted.fetch_add(admitted.evicted as u64, Relaxed);
            if admitted.replaced.is_some() {
                self.counters.replaced.fetch_add(1, Relaxed);
            }
        }
    }

    fn count<T>(&self, result: &Result<T, PoolError>) {
        if let Err(e) = result {
            self.counters.rejected[e.reason() as usize].fetch_add(1, Relaxed);
        }
    }

    fn publish_sizes(&self, inner: &Inner) {
        self.counters.txs.store(inner.txs_len as u64, Relaxed);
        self.counters.bytes.store(inner.bytes_len as u64, Relaxed);
        self.counters.senders.store(inner.senders.len() as u64, Relaxed);
        *self.fullness.write() = Fullness {
            txs: inner.txs_len,
            bytes: inner.bytes_len,
            cheapest: inner.tails.first().map(|tail| tail.rank),
        };
    }

    /// Whether a full pool would refuse a newcomer of `rank` and `size`
    /// bytes: it could evict only tails ranked strictly below it, and the
    /// cheapest tail is not. Checked before the signature is recovered, so
    /// a node flooded beyond its capacity sheds the excess for the price
    /// of a decode (geth refuses underpriced transactions to a full pool
    /// the same way). It cannot tell a replacement apart (that needs the
    /// sender), so a full pool also refuses a replacement ranked no higher
    /// than its cheapest tail.
    fn refused_as_full(&self, rank: FeeRank, size: usize) -> bool {
        let full = *self.fullness.read();
        let over = full.txs >= self.config.txs_max
            || full.bytes.saturating_add(size) > self.config.bytes_max;
        over && full.cheapest.is_some_and(|cheapest| rank <= cheapest)
    }

    fn prepare_raw(&self, raw: Bytes) -> Result<PreparedTx, PoolError> {
        let hash = self.check_size_and_known(&raw)?;
        let tx = decode_tx(&raw)?;
        self.check(tx, raw, hash)
    }

    fn check_size_and_known(&self, raw: &[u8]) -> Result<B256, PoolError> {
        if raw.len() > TX_BYTES_MAX {
            return Err(PoolError::Oversized { len: raw.len(), max: TX_BYTES_MAX });
        }
        let hash = keccak256(raw);
        if self.contains(&hash) {
            return Err(PoolError::AlreadyKnown(hash));
        }
        Ok(hash)
    }

    /// Every stateless check, cheapest first; the signature last.
    fn check(&self, tx: BlockTx, raw: Bytes, hash: B256) -> Result<PreparedTx, PoolError> {
        let head = self.head();
        let ty = tx.ty();
        if !type_enabled(ty, head.spec) {
            return Err(PoolError::TypeNotEnabled { ty, spec: head.spec });
        }
        if tx.is_eip4844() || tx.is_eip7702() {
            return Err(PoolError::TypeNotAccepted { ty });
        }
        match tx.chain_id() {
            None => return Err(PoolError::ChainIdMissing),
            Some(got) if got != self.config.chain_id => {
                return Err(PoolError::ChainIdMismatch { expected: self.config.chain_id, got });
            }
            Some(_) => {}
        }
        let gas_limit = tx.gas_limit();
        if gas_limit > head.block_gas_limit {
            return Err(PoolError::GasLimitAboveBlock {
                gas_limit,
                block_gas_limit: head.block_gas_limit,
            });
        }
        let max_fee = tx.max_fee_per_gas();
        let priority_fee = tx.max_priority_fee_per_gas().unwrap_or(max_fee);
        if priority_fee > max_fee {
            return Err(PoolError::PriorityFeeAboveMaxFee { priority_fee, max_fee });
        }
        let required = self.config.max_fee_per_gas_min.max(u128::from(head.base_fee));
        if max_fee < required {
            return Err(PoolError::FeeTooLow { max_fee, required });
        }
        check_intrinsic_gas(&tx, head.spec)?;
        let rank = FeeRank { tip: priority_fee.min(max_fee), max_fee };
        if self.refused_as_full(rank, raw.len()) {
            return Err(PoolError::PoolFull);
        }
        let sender = recover_sender(&tx, head.spec)?;
        let cost = max_cost(&tx);
        Ok(PreparedTx(PooledTx {
            tx,
            raw,
            hash,
            sender,
            max_fee,
            priority_fee,
            cost,
            origin: TxOrigin::Gossip,
            seq: 0,
        }))
    }

    /// Admission under the lock, with the sender's account read outside it
    /// when the pool does not track the sender (see the module doc).
    fn admit_with_state(&self, tx: PooledTx) -> Result<Admitted, PoolError> {
        let sender = tx.sender;
        let mut read: Option<(AccountState, u64)> = None;
        let mut reads = 0;
        loop {
            let mut inner = self.inner.lock();
            let account = if inner.senders.contains_key(&sender) {
                None
            } else if let Some((account, _)) = read.filter(|(_, epoch)| *epoch == inner.epoch) {
                Some(account)
            } else if reads > STATE_READ_RETRIES {
                Some(self.source.account_state(sender)?)
            } else {
                let epoch = inner.epoch;
                drop(inner);
                read = Some((self.source.account_state(sender)?, epoch));
                reads += 1;
                continue;
            };
            let result = inner.admit(&self.config, tx, account);
            if result.is_ok() {
                self.publish_sizes(&inner);
            }
            if let Some(dropped) = inner.outbox_overflow(self.config.gossip_outbox_max) {
                self.counters.gossip_dropped.fetch_add(dropped as u64, Relaxed);
            }
            return result;
        }
    }
}

/// Intrinsic gas (revm's table for `spec`), the EIP-7623 floor from Prague
/// on, and the EIP-3860 init code limit from Shanghai on.
fn check_intrinsic_gas(tx: &BlockTx, spec: SpecId) -> Result<(), PoolError> {
    let input = tx.input();
    if tx.is_create() && spec.is_enabled_in(SpecId::SHANGHAI) && input.len() > MAX_INITCODE_SIZE {
        return Err(PoolError::InitCodeTooLarge { len: input.len(), max: MAX_INITCODE_SIZE });
    }
    let (accounts, slots) = tx.access_list().map_or((0, 0), |list| {
        list.iter().fold((0u64, 0u64), |(a, s), item| (a + 1, s + item.storage_keys.len() as u64))
    });
    let authorizations = tx.authorization_list().map_or(0, |list| list.len() as u64);
    let gas = calculate_initial_tx_gas(
        spec,
        input,
        tx.is_create(),
        accounts,
        slots,
        authorizations,
        None,
    );
    let gas_limit = tx.gas_limit();
    let mut intrinsic = gas.initial_total_gas();
    if spec.is_enabled_in(SpecId::PRAGUE) {
        intrinsic = intrinsic.max(gas.floor_gas);
    }
    if intrinsic > gas_limit {
        return Err(PoolError::IntrinsicGasTooLow { gas_limit, intrinsic });
    }
    Ok(())
}

/// `gas_limit * max_fee + value + blob_gas * max_blob_fee`, saturating (a
/// saturated cost is unfundable anyway).
fn max_cost(tx: &BlockTx) -> U256 {
    let gas = U256::from(tx.gas_limit()).saturating_mul(U256::from(tx.max_fee_per_gas()));
    let blob = U256::from(blob_gas(tx))
        .saturating_mul(U256::from(tx.max_fee_per_blob_gas().unwrap_or_default()));
    gas.saturating_add(tx.value()).saturating_add(blob)
}

/// `fee * (100 + bump) / 100`, geth's replacement threshold.
fn bumped(fee: u128, bump_percent: u64) -> u128 {
    let bumped = U256::from(fee) * U256::from(100 + u128::from(bump_percent)) / U256::from(100);
    bumped.try_into().unwrap_or(u128::MAX)
}

/// One sender's pending transactions.
struct SenderQueue {
    /// As of the latest executed block (or the first read).
    account: AccountState,
    txs: BTreeMap<u64, Arc<PooledTx>>,
    /// Sum of `txs` costs; never above `account.balance`.
    cost_total: U256,
    /// First nonce ≥ `account.nonce` with no transaction: `txs` below it are
    /// ready, above it queued.
    ready_end: u64,
}

impl SenderQueue {
    fn new(account: AccountState) -> SenderQueue {
        SenderQueue {
            account,
            txs: BTreeMap::new(),
            cost_total: U256::ZERO,
            ready_end: account.nonce,
        }
    }

    fn advance_ready_end(&mut self) {
        while self.txs.contains_key(&self.ready_end) {
            self.ready_end += 1;
        }
    }

    fn tail_key(&self) -> Option<TailKey> {
        self.txs.last_key_value().map(|(&nonce, tx)| TailKey::of(tx, nonce))
    }
}

/// A transaction in eviction order: lowest rank first, newest first among
/// equals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TailKey {
    rank: FeeRank,
    newest: Reverse<u64>,
    sender: Address,
    nonce: u64,
}

impl TailKey {
    fn of(tx: &PooledTx, nonce: u64) -> TailKey {
        TailKey { rank: tx.rank(), newest: Reverse(tx.seq), sender: tx.sender, nonce }
    }
}

/// The nonce after a sender's transactions in ordered, unexecuted blocks.
#[derive(Clone, Copy, Debug)]
struct NonceFloor {
    next_nonce: u64,
    /// The highest block that set it.
    height: u64,
}

#[derive(Default)]
struct Inner {
    by_hash: B256Map<(Address, u64)>,
    senders: AddressMap<SenderQueue>,
    /// Each sender's tail, for eviction.
    tails: BTreeSet<TailKey>,
    floors: AddressMap<NonceFloor>,
    /// Ordered blocks not yet executed: (height, senders), to clear floors.
    ordered: VecDeque<(u64, Vec<Address>)>,
    txs_len: usize,
    bytes_len: usize,
    next_seq: u64,
    /// Bumped by every executed block (see `Pool::admit_with_state`).
    epoch: u64,
    outbox: VecDeque<Bytes>,
}

impl Inner {
    /// The stateful checks and the insertion. `account` is the sender's
    /// state when the pool does not track the sender yet.
    fn admit(
        &mut self,
        config: &PoolConfig,
        mut tx: PooledTx,
        account: Option<AccountState>,
    ) -> Result<Admitted, PoolError> {
        if self.by_hash.contains_key(&tx.hash) {
            return Err(PoolError::AlreadyKnown(tx.hash));
        }
        let sender = tx.sender;
        let nonce = tx.nonce();
        let fresh;
        let queue = match self.senders.get(&sender) {
            Some(queue) => queue,
            None => {
                fresh = SenderQueue::new(account.unwrap_or_default());
                &fresh
            }
        };
        let floor = self.floors.get(&sender).map_or(0, |f| f.next_nonce);
        let nonce_min = queue.account.nonce.max(floor);
        if nonce < nonce_min {
            return Err(PoolError::NonceTooLow { tx: nonce, account: nonce_min });
        }
        let replaced = queue.txs.get(&nonce);
        let is_replacement = replaced.is_some();
        match replaced {
            Some(old) => {
                let max_fee_min = bumped(old.max_fee, config.price_bump_percent);
                let priority_fee_min = bumped(old.priority_fee, config.price_bump_percent);
                if tx.max_fee < max_fee_min || tx.priority_fee < priority_fee_min {
                    return Err(PoolError::ReplacementUnderpriced {
                        max_fee_min,
                        priority_fee_min,
                    });
                }
            }
            None => {
                if queue.txs.len() >= config.txs_per_sender_max {
                    return Err(PoolError::SenderFull { max: config.txs_per_sender_max });
                }
                // Ordered blocks may hold nonces the pool never saw.
                let max = queue
                    .account
                    .nonce
                    .saturating_add(queue.txs.len() as u64)
                    .max(floor)
                    .saturating_add(config.nonce_gap_max);
                if nonce > max {
                    return Err(PoolError::NonceGapTooLarge { tx: nonce, max });
                }
            }
        }
        let replaced_cost = replaced.map_or(U256::ZERO, |old| old.cost);
        let cost = queue.cost_total.saturating_sub(replaced_cost).saturating_add(tx.cost);
        if cost > queue.account.balance {
            return Err(PoolError::InsufficientFunds { balance: queue.account.balance, cost });
        }
        let replaced_size = replaced.map_or(0, |old| old.size());
        let txs_over = (self.txs_len + usize::from(!is_replacement)).saturating_sub(config.txs_max);
        let bytes_over = (self.bytes_len.saturating_sub(replaced_size) + tx.size())
            .saturating_sub(config.bytes_max);
        let evictions = if txs_over > 0 || bytes_over > 0 {
            self.eviction_plan(sender, tx.rank(), txs_over, bytes_over)?
        } else {
            Vec::new()
        };

        // Every check passed: apply.
        for &(victim, victim_nonce) in &evictions {
            self.remove_tail(victim, victim_nonce);
        }
        tx.seq = self.next_seq;
        self.next_seq += 1;
        let hash = tx.hash;
        let size = tx.size();
        let origin = tx.origin;
        let raw = tx.raw.clone();
        let tx = Arc::new(tx);
        let queue = self
            .senders
            .entry(sender)
            .or_insert_with(|| SenderQueue::new(account.unwrap_or_default()));
        if let Some(tail) = queue.tail_key() {
            self.tails.remove(&tail);
        }
        let replaced = queue.txs.insert(nonce, tx);
        queue.cost_total = cost;
        queue.advance_ready_end();
        let ready = nonce < queue.ready_end;
        if let Some(tail) = queue.tail_key() {
            self.tails.insert(tail);
        }
        if let Some(old) = &replaced {
            self.by_hash.remove(&old.hash);
            self.bytes_len -= old.size();
        } else {
            self.txs_len += 1;
        }
        self.bytes_len += size;
        self.by_hash.insert(hash, (sender, nonce));
        if origin == TxOrigin::Local {
            self.outbox.push_back(raw);
        }
        Ok(Admitted {
            hash,
            sender,
            nonce,
            replaced: replaced.map(|old| old.hash),
            evicted: evictions.len(),
            ready,
        })
    }

    /// The tails to evict, in order, so that `txs_over` transactions and
    /// `bytes_over` bytes are freed by transactions of senders other than
    /// `exclude`, each ranked strictly below `rank`. Removes nothing.
    fn eviction_plan(
        &self,
        exclude: Address,
        rank: FeeRank,
        mut txs_over: usize,
        mut bytes_over: usize,
    ) -> Result<Vec<(Address, u64)>, PoolError> {
        let mut tails = self.tails.iter().filter(|key| key.sender != exclude).peekable();
        // Predecessors of planned victims: they become tails in turn.
        let mut exposed: BinaryHeap<Reverse<TailKey>> = BinaryHeap::new();
        let mut plan = Vec::new();
        while txs_over > 0 || bytes_over > 0 {
            if plan.len() == EVICTIONS_PER_INSERT_MAX {
                return Err(PoolError::PoolFull);
            }
            let from_tails = match (tails.peek(), exposed.peek()) {
                (Some(tail), Some(Reverse(next))) => *tail < next,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return Err(PoolError::PoolFull),
            };
            let victim = match from_tails {
                true => tails.next().copied(),
                false => exposed.pop().map(|Reverse(key)| key),
            }
            .ok_or(PoolError::PoolFull)?;
            if victim.rank >= rank {
                return Err(PoolError::PoolFull);
            }
            let queue = self.senders.get(&victim.sender).ok_or(PoolError::PoolFull)?;
            let size = queue.txs.get(&victim.nonce).map_or(0, |tx| tx.size());
            txs_over = txs_over.saturating_sub(1);
            bytes_over = bytes_over.saturating_sub(size);
            plan.push((victim.sender, victim.nonce));
            if let Some((&nonce, tx)) = queue.txs.range(..victim.nonce).next_back() {
                exposed.push(Reverse(TailKey::of(tx, nonce)));
            }
        }
        Ok(plan)
    }

    /// Removes `sender`'s highest-nonce transaction, `nonce`.
    fn remove_tail(&mut self, sender: Address, nonce: u64) {
        let Some(queue) = self.senders.get_mut(&sender) else { return };
        if let Some(tail) = queue.tail_key() {
            self.tails.remove(&tail);
        }
        if let Some(tx) = queue.txs.remove(&nonce) {
            queue.cost_total = queue.cost_total.saturating_sub(tx.cost);
            queue.ready_end = queue.ready_end.min(nonce).max(queue.account.nonce);
            self.by_hash.remove(&tx.hash);
            self.txs_len -= 1;
            self.bytes_len -= tx.size();
        }
        match queue.tail_key() {
            Some(tail) => {
                self.tails.insert(tail);
            }
            None => {
                self.senders.remove(&sender);
            }
        }
    }

    fn build(&self, limits: &BlockLimits) -> Vec<Arc<PooledTx>> {
        let mut heap = BinaryHeap::new();
        for (sender, queue) in &self.senders {
            let floor = self.floors.get(sender).map_or(0, |f| f.next_nonce);
            let start = queue.account.nonce.max(floor);
            if let Some(tx) = queue.txs.get(&start)
                && let Some(candidate) = Candidate::new(tx, queue, limits.base_fee)
            {
                heap.push(candidate);
            }
        }
        let mut block = Vec::new();
        let mut gas_left = limits.gas_limit;
        let mut items_len = 0usize;
        while block.len() < limits.txs_max && gas_left >= TX_GAS_MIN {
            let Some(Candidate { tx, queue, .. }) = heap.pop() else { break };
            let item_len = payload_item_len(tx.size());
            if tx.gas_limit() > gas_left || payload_len(items_len + item_len) > limits.bytes_max {
                // Its sender's later nonces depend on it: skip the sender.
                continue;
            }
            gas_left -= tx.gas_limit();
            items_len += item_len;
            block.push(Arc::clone(tx));
            if let Some(next) = queue.txs.get(&(tx.nonce() + 1))
                && let Some(candidate) = Candidate::new(next, queue, limits.base_fee)
            {
                heap.push(candidate);
            }
        }
        block
    }

    fn on_block_ordered(&mut self, height: u64, txs: impl IntoIterator<Item = (Address, u64)>) {
        let mut senders = Vec::new();
        for (sender, nonce) in txs {
            let next_nonce = nonce.saturating_add(1);
            let floor = self.floors.entry(sender).or_insert(NonceFloor { next_nonce, height });
            floor.next_nonce = floor.next_nonce.max(next_nonce);
            floor.height = floor.height.max(height);
            senders.push(sender);
        }
        if !senders.is_empty() {
            self.ordered.push_back((height, senders));
        }
    }

    fn on_block_executed(
        &mut self,
        height: u64,
        accounts: impl IntoIterator<Item = (Address, AccountState)>,
    ) -> ExecutedReport {
        self.epoch += 1;
        let mut report = ExecutedReport::default();
        for (sender, account) in accounts {
            if self.senders.contains_key(&sender) {
                self.apply_account(sender, account, &mut report);
            }
        }
        while self.ordered.front().is_some_and(|(h, _)| *h <= height) {
            let Some((_, senders)) = self.ordered.pop_front() else { break };
            for sender in senders {
                if self.floors.get(&sender).is_some_and(|f| f.height <= height) {
                    self.floors.remove(&sender);
                }
            }
        }
        report
    }

    /// Re-bases one tracked sender on its executed account.
    fn apply_account(
        &mut self,
        sender: Address,
        account: AccountState,
        report: &mut ExecutedReport,
    ) {
        let Some(mut queue) = self.senders.remove(&sender) else { return };
        if let Some(tail) = queue.tail_key() {
            self.tails.remove(&tail);
        }
        let kept = queue.txs.split_off(&account.nonce);
        let mut removed: Vec<Arc<PooledTx>> =
            std::mem::replace(&mut queue.txs, kept).into_values().collect();
        report.mined += removed.len();
        queue.account = account;
        // Keep the longest nonce-ordered prefix the balance funds.
        let mut cost_total = U256::ZERO;
        let mut unfunded_from = None;
        for (&nonce, tx) in &queue.txs {
            match cost_total.checked_add(tx.cost).filter(|c| *c <= account.balance) {
                Some(c) => cost_total = c,
                None => {
                    unfunded_from = Some(nonce);
                    break;
                }
            }
        }
        if let Some(nonce) = unfunded_from {
            let unfunded = queue.txs.split_off(&nonce);
            report.unfunded += unfunded.len();
            removed.extend(unfunded.into_values());
        }
        for tx in removed {
            self.by_hash.remove(&tx.hash);
            self.txs_len -= 1;
            self.bytes_len -= tx.size();
        }
        queue.cost_total = cost_total;
        queue.ready_end = account.nonce;
        queue.advance_ready_end();
        if let Some(tail) = queue.tail_key() {
            self.tails.insert(tail);
            self.senders.insert(sender, queue);
        }
    }

    /// Drops the oldest outbox entries beyond `max`; how many.
    fn outbox_overflow(&mut self, max: usize) -> Option<usize> {
        let over = self.outbox.len().checked_sub(max).filter(|n| *n > 0)?;
        self.outbox.drain(..over);
        Some(over)
    }
}

/// A sender's next transaction in the builder's heap.
struct Candidate<'a> {
    tip: u128,
    tx: &'a Arc<PooledTx>,
    queue: &'a SenderQueue,
}

impl<'a> Candidate<'a> {
    fn new(tx: &'a Arc<PooledTx>, queue: &'a SenderQueue, base_fee: u64) -> Option<Self> {
        Some(Candidate { tip: tx.effective_tip(base_fee)?, tx, queue })
    }
}

impl PartialEq for Candidate<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate<'_> {}

impl PartialOrd for Candidate<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate<'_> {
    /// Higher tip first, then earlier arrival.
    fn cmp(&self, other: &Self) -> Ordering {
        self.tip.cmp(&other.tip).then_with(|| other.tx.seq.cmp(&self.tx.seq))
    }
}
