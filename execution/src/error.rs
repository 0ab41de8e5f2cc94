//! Typed errors: why a block or a transaction is rejected, and why a state
//! read failed. A rejection is a verdict on the input; a [`StateError`] is
//! a failure of our own storage and says nothing about the block.

use alloy_primitives::{B256, Bloom, U256};
use revm::context::result::InvalidTransaction;
use revm::primitives::hardfork::SpecId;

/// Errors of the chain spec and genesis parsers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("empty fork schedule")]
    EmptySchedule,
    #[error("the first fork must be active at genesis")]
    NoGenesisFork,
    #[error("fork schedule out of order: {earlier:?} then {later:?}")]
    Unordered { earlier: SpecId, later: SpecId },
    #[error("network {0:?} has no revm spec")]
    UnknownNetwork(String),
    #[error("genesis json: {0}")]
    Json(String),
    #[error("genesis json of {len} bytes exceeds {max}")]
    TooLarge { len: usize, max: usize },
    #[error("genesis {0} does not fit in 64 bits")]
    Overflow(&'static str),
}

/// A failed read of the pre-state (triedb). Not a verdict on the block.
#[derive(Debug, Clone, thiserror::Error)]
#[error("state read failed: {0}")]
pub struct StateError(pub std::sync::Arc<wake_triedb::Error>);

impl From<wake_triedb::Error> for StateError {
    fn from(e: wake_triedb::Error) -> Self {
        StateError(std::sync::Arc::new(e))
    }
}

impl revm::database::DBErrorMarker for StateError {}

/// Why a transaction is invalid (the whole block is then invalid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction of {len} bytes exceeds the {max}-byte limit")]
    Oversized { len: usize, max: usize },
    #[error("bad transaction encoding: {0}")]
    Decode(alloy_rlp::Error),
    #[error("invalid signature: no sender can be recovered")]
    InvalidSignature,
    #[error("transaction type {ty} is not enabled in {spec:?}")]
    TypeNotEnabled { ty: u8, spec: SpecId },
    #[error("wrong chain id: transaction has {got:?}, chain is {expected}")]
    ChainIdMismatch { expected: u64, got: Option<u64> },
    #[error("nonce too low: transaction {tx}, account {state}")]
    NonceTooLow { tx: u64, state: u64 },
    #[error("nonce too high: transaction {tx}, account {state}")]
    NonceTooHigh { tx: u64, state: u64 },
    #[error("nonce overflow")]
    NonceOverflow,
    #[error("insufficient funds: balance {balance}, cost up to {cost}")]
    InsufficientFunds { balance: U256, cost: U256 },
    #[error("gas cost overflows")]
    CostOverflow,
    #[error("intrinsic gas too low: gas limit {gas_limit}, intrinsic {intrinsic}")]
    IntrinsicGasTooLow { gas_limit: u64, intrinsic: u64 },
    #[error("init code too large")]
    InitCodeTooLarge,
    #[error("gas limit {gas_limit} exceeds the {available} gas left in the block")]
    BlockGasExceeded { gas_limit: u64, available: u64 },
    #[error("blob gas {blob_gas} exceeds the {available} blob gas left in the block")]
    BlobGasExceeded { blob_gas: u64, available: u64 },
    #[error("max fee per gas below the block's base fee")]
    FeeCapTooLow,
    #[error("priority fee greater than max fee")]
    PriorityFeeAboveFeeCap,
    #[error("sender has code (EIP-3607)")]
    SenderNotEoa,
    #[error("rejected by the EVM: {0}")]
    Evm(InvalidTransaction),
}

impl From<InvalidTransaction> for TxError {
    fn from(e: InvalidTransaction) -> Self {
        use InvalidTransaction as I;
        match e {
            I::NonceTooLow { tx, state } => TxError::NonceTooLow { tx, state },
            I::NonceTooHigh { tx, state } => TxError::NonceTooHigh { tx, state },
            I::NonceOverflowInTransaction => TxError::NonceOverflow,
            I::LackOfFundForMaxFee { fee, balance } => {
                TxError::InsufficientFunds { balance: *balance, cost: *fee }
            }
            I::OverflowPaymentInTransaction => TxError::CostOverflow,
            I::CallGasCostMoreThanGasLimit { initial_gas, gas_limit } => {
                TxError::IntrinsicGasTooLow { gas_limit, intrinsic: initial_gas }
            }
            I::GasFloorMoreThanGasLimit { gas_floor, gas_limit } => {
                TxError::IntrinsicGasTooLow { gas_limit, intrinsic: gas_floor }
            }
            I::CreateInitCodeSizeLimit => TxError::InitCodeTooLarge,
            I::GasPriceLessThanBasefee => TxError::FeeCapTooLow,
            I::PriorityFeeGreaterThanMaxFee => TxError::PriorityFeeAboveFeeCap,
            I::RejectCallerWithCode => TxError::SenderNotEoa,
            other => TxError::Evm(other),
        }
    }
}

/// Why a block is invalid, or why it could not be executed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlockError {
    #[error("block of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("bad block encoding: {0}")]
    Decode(alloy_rlp::Error),
    #[error("parent {0} is unknown")]
    UnknownParent(B256),
    #[error("block number {number} does not follow parent {parent}")]
    Number { parent: u64, number: u64 },
    #[error("timestamp {timestamp} is not after the parent's {parent}")]
    Timestamp { parent: u64, timestamp: u64 },
    #[error("gas limit {gas_limit} out of bounds for parent gas limit {parent}")]
    GasLimit { parent: u64, gas_limit: u64 },
    #[error("gas used {gas_used} above the gas limit {gas_limit}")]
    GasUsedAboveLimit { gas_used: u64, gas_limit: u64 },
    #[error("extra data of {len} bytes exceeds 32")]
    ExtraData { len: usize },
    #[error("base fee: expected {expected:?}, header has {got:?}")]
    BaseFee { expected: Option<u64>, got: Option<u64> },
    #[error("excess blob gas: expected {expected}, header has {got}")]
    ExcessBlobGas { expected: u64, got: u64 },
    #[error("blob gas used: header has {header}, transactions use {txs}")]
    BlobGasUsed { header: u64, txs: u64 },
    #[error("blob gas used {used} above the block maximum {max}")]
    BlobGasAboveMax { used: u64, max: u64 },
    #[error("header field {field} is required in {spec:?}")]
    MissingField { field: &'static str, spec: SpecId },
    #[error("header field {field} is not allowed in {spec:?}")]
    UnexpectedField { field: &'static str, spec: SpecId },
    #[error("difficulty must be zero after the merge")]
    Difficulty,
    #[error("nonce must be zero after the merge")]
    Nonce,
    #[error("{count} ommers (at most {max} allowed)")]
    Ommers { count: usize, max: usize },
    #[error("ommer {hash}: {reason}")]
    InvalidOmmer { hash: B256, reason: &'static str },
    #[error("ommers hash: header {header}, body {body}")]
    OmmersHash { header: B256, body: B256 },
    #[error("transactions root: header {header}, body {body}")]
    TransactionsRoot { header: B256, body: B256 },
    #[error("withdrawals root: header {header:?}, body {body:?}")]
    WithdrawalsRoot { header: Option<B256>, body: Option<B256> },
    #[error("transaction {index}: {source}")]
    Transaction { index: usize, source: TxError },
    #[error("gas used: header {header}, execution {executed}")]
    GasUsed { header: u64, executed: u64 },
    #[error("receipts root: header {header}, execution {executed}")]
    ReceiptsRoot { header: B256, executed: B256 },
    #[error("logs bloom differs: header {header}, execution {executed}")]
    LogsBloom { header: Box<Bloom>, executed: Box<Bloom> },
    #[error("state root: header {header}, execution {executed}")]
    StateRoot { header: B256, executed: B256 },
    #[error("{0:?} is not supported by this executor")]
    UnsupportedSpec(SpecId),
    #[error("system call to {contract} failed: {reason}")]
    SystemCall { contract: alloy_primitives::Address, reason: String },
    #[error(transparent)]
    State(#[from] StateError),
}

impl BlockError {
    /// True when the block itself is at fault (reject it); false for our
    /// own storage failures and unsupported forks.
    pub fn is_invalid_block(&self) -> bool {
        !matches!(self, BlockError::State(_) | BlockError::UnsupportedSpec(_))
    }
}
