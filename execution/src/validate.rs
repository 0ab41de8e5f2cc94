//! Block validation: the header against its parent and the body against
//! the header before execution ([`validate_block`]), and the execution
//! result against the header after it ([`validate_outcome`]).
//!
//! Not checked: proof of work and the pre-merge difficulty formula (the
//! test chains run with `NoProof`; consensus replaces both for us), and
//! the full validity of ommer headers beyond their count, depth and hash.

use crate::error::BlockError;
use crate::executor::BlockOutcome;
use crate::spec::ChainSpec;
use crate::tx::BlockTx;
use alloy_consensus::proofs::{
    calculate_ommers_root, calculate_transaction_root, calculate_withdrawals_root,
};
use alloy_consensus::{Block, EMPTY_OMMER_ROOT_HASH, Header};
use alloy_eips::eip1559::{BaseFeeParams, INITIAL_BASE_FEE, calc_next_block_base_fee};
use alloy_eips::eip4844::DATA_GAS_PER_BLOB;
use revm::primitives::hardfork::SpecId;

/// Most bytes of extra data in a header.
pub const EXTRA_DATA_BYTES_MAX: usize = 32;
/// Lowest gas limit of a block.
pub const GAS_LIMIT_MIN: u64 = 5_000;
/// Highest gas limit of a block (2^63 - 1, as geth).
pub const GAS_LIMIT_MAX: u64 = i64::MAX as u64;
/// A block's gas limit moves by less than parent / this.
pub const GAS_LIMIT_BOUND_DIVISOR: u64 = 1024;
/// Most ommers per block before the merge.
pub const OMMERS_MAX: usize = 2;
/// How many generations back an ommer may be.
pub const OMMER_DEPTH_MAX: u64 = 6;

/// Blob gas target and maximum per block of a spec (EIP-4844, EIP-7691).
pub fn blob_gas_target_and_max(spec: SpecId) -> (u64, u64) {
    if spec.is_enabled_in(SpecId::PRAGUE) {
        (6 * DATA_GAS_PER_BLOB, 9 * DATA_GAS_PER_BLOB)
    } else {
        (3 * DATA_GAS_PER_BLOB, 6 * DATA_GAS_PER_BLOB)
    }
}

/// Checks `block` against its `parent` header and its own header, before
/// execution. `parent` must be the header whose hash is `block.parent_hash`
/// (the caller looks it up; an unknown parent is
/// [`BlockError::UnknownParent`]).
pub fn validate_block(
    chain: &ChainSpec,
    parent: &Header,
    block: &Block<BlockTx>,
) -> Result<SpecId, BlockError> {
    let header = &block.header;
    let spec = chain.spec_at(header.number, header.timestamp);
    let parent_spec = chain.spec_at(parent.number, parent.timestamp);

    if parent.number.checked_add(1) != Some(header.number) {
        return Err(BlockError::Number { parent: parent.number, number: header.number });
    }
    if header.timestamp <= parent.timestamp {
        return Err(BlockError::Timestamp {
            parent: parent.timestamp,
            timestamp: header.timestamp,
        });
    }
    if header.extra_data.len() > EXTRA_DATA_BYTES_MAX {
        return Err(BlockError::ExtraData { len: header.extra_data.len() });
    }
    validate_gas_limit(spec, parent_spec, parent, header)?;
    if header.gas_used > header.gas_limit {
        return Err(BlockError::GasUsedAboveLimit {
            gas_used: header.gas_used,
            gas_limit: header.gas_limit,
        });
    }

    // EIP-1559 base fee.
    let expected_base_fee = if !spec.is_enabled_in(SpecId::LONDON) {
        None
    } else if !parent_spec.is_enabled_in(SpecId::LONDON) {
        Some(INITIAL_BASE_FEE)
    } else {
        let parent_base_fee = parent
            .base_fee_per_gas
            .ok_or(BlockError::MissingField { field: "parent baseFeePerGas", spec: parent_spec })?;
        Some(calc_next_block_base_fee(
            parent.gas_used,
            parent.gas_limit,
            parent_base_fee,
            BaseFeeParams::ethereum(),
        ))
    };
    if header.base_fee_per_gas != expected_base_fee {
        return Err(BlockError::BaseFee {
            expected: expected_base_fee,
            got: header.base_fee_per_gas,
        });
    }

    // The merge: no proof of work, no ommers.
    if spec.is_enabled_in(SpecId::MERGE) {
        if !header.difficulty.is_zero() {
            return Err(BlockError::Difficulty);
        }
        if !header.nonce.is_zero() {
            return Err(BlockError::Nonce);
        }
        if !block.body.ommers.is_empty() {
            return Err(BlockError::Ommers { count: block.body.ommers.len(), max: 0 });
        }
    } else if block.body.ommers.len() > OMMERS_MAX {
        return Err(BlockError::Ommers { count: block.body.ommers.len(), max: OMMERS_MAX });
    }
    for ommer in &block.body.ommers {
        let hash = ommer.hash_slow();
        if ommer.number >= header.number || ommer.number + OMMER_DEPTH_MAX < header.number {
            return Err(BlockError::InvalidOmmer { hash, reason: "number out of range" });
        }
        if hash == parent.hash_slow() {
            return Err(BlockError::InvalidOmmer { hash, reason: "is the parent" });
        }
    }
    let ommers_hash = calculate_ommers_root(&block.body.ommers);
    if header.ommers_hash != ommers_hash {
        return Err(BlockError::OmmersHash { header: header.ommers_hash, body: ommers_hash });
    }
    if spec.is_enabled_in(SpecId::MERGE) && header.ommers_hash != EMPTY_OMMER_ROOT_HASH {
        return Err(BlockError::OmmersHash { header: header.ommers_hash, body: ommers_hash });
    }

    // Shanghai: withdrawals.
    let shanghai = spec.is_enabled_in(SpecId::SHANGHAI);
    let body_root = block.body.withdrawals.as_ref().map(|w| calculate_withdrawals_root(w));
    match (shanghai, header.withdrawals_root, body_root) {
        (true, Some(h), Some(b)) if h == b => {}
        (false, None, None) => {}
        (true, None, _) => {
            return Err(BlockError::MissingField { field: "withdrawalsRoot", spec });
        }
        (false, Some(_), _) => {
            return Err(BlockError::UnexpectedField { field: "withdrawalsRoot", spec });
        }
        (_, header_root, body_root) => {
            return Err(BlockError::WithdrawalsRoot { header: header_root, body: body_root });
        }
    }

    // Cancun: blob gas and the beacon root.
    let cancun = spec.is_enabled_in(SpecId::CANCUN);
    presence(cancun, header.blob_gas_used.is_some(), "blobGasUsed", spec)?;
    presence(cancun, header.excess_blob_gas.is_some(), "excessBlobGas", spec)?;
    presence(cancun, header.parent_beacon_block_root.is_some(), "parentBeaconBlockRoot", spec)?;
    let prague = spec.is_enabled_in(SpecId::PRAGUE);
    presence(prague, header.requests_hash.is_some(), "requestsHash", spec)?;
    if let (Some(excess), Some(used)) = (header.excess_blob_gas, header.blob_gas_used) {
        let (parent_excess, parent_used) = if parent_spec.is_enabled_in(SpecId::CANCUN) {
            (parent.excess_blob_gas.unwrap_or(0), parent.blob_gas_used.unwrap_or(0))
        } else {
            (0, 0)
        };
        let (target, max) = blob_gas_target_and_max(spec);
        let expected = parent_excess.saturating_add(parent_used).saturating_sub(target);
        if excess != expected {
            return Err(BlockError::ExcessBlobGas { expected, got: excess });
        }
        if used > max {
            return Err(BlockError::BlobGasAboveMax { used, max });
        }
        let txs: u64 = block.body.transactions.iter().map(crate::tx::blob_gas).sum();
        if used != txs {
            return Err(BlockError::BlobGasUsed { header: used, txs });
        }
    }

    let tx_root = calculate_transaction_root(&block.body.transactions);
    if header.transactions_root != tx_root {
        return Err(BlockError::TransactionsRoot {
            header: header.transactions_root,
            body: tx_root,
        });
    }
    Ok(spec)
}

fn presence(
    required: bool,
    present: bool,
    field: &'static str,
    spec: SpecId,
) -> Result<(), BlockError> {
    match (required, present) {
        (true, false) => Err(BlockError::MissingField { field, spec }),
        (false, true) => Err(BlockError::UnexpectedField { field, spec }),
        _ => Ok(()),
    }
}

fn validate_gas_limit(
    spec: SpecId,
    parent_spec: SpecId,
    parent: &Header,
    header: &Header,
) -> Result<(), BlockError> {
    let gas_limit = header.gas_limit;
    // At the London fork block the target doubles (EIP-1559 elasticity).
    let parent_limit =
        if spec.is_enabled_in(SpecId::LONDON) && !parent_spec.is_enabled_in(SpecId::LONDON) {
            parent.gas_limit.saturating_mul(BaseFeeParams::ethereum().elasticity_multiplier as u64)
        } else {
            parent.gas_limit
        };
    let bound = parent_limit / GAS_LIMIT_BOUND_DIVISOR;
    let diff = gas_limit.abs_diff(parent_limit);
    if !(GAS_LIMIT_MIN..=GAS_LIMIT_MAX).contains(&gas_limit) || diff >= bound {
        return Err(BlockError::GasLimit { parent: parent_limit, gas_limit });
    }
    Ok(())
}

/// Checks the execution result against the header: gas used, receipts root
/// and logs bloom. The state root is checked by whoever computes it
/// ([`check_state_root`]), since that needs the trie.
pub fn validate_outcome(header: &Header, outcome: &BlockOutcome) -> Result<(), BlockError> {
    if header.gas_used != outcome.gas_used {
        return Err(BlockError::GasUsed { header: header.gas_used, executed: outcome.gas_used });
    }
    if header.receipts_root != outcome.receipts_root {
        return Err(BlockError::ReceiptsRoot {
            header: header.receipts_root,
            executed: outcome.receipts_root,
        });
    }
    if header.logs_bloom != outcome.logs_bloom {
        return Err(BlockError::LogsBloom {
            header: Box::new(header.logs_bloom),
            executed: Box::new(outcome.logs_bloom),
        });
    }
    Ok(())
}

/// Checks the state root computed by committing the block's diff.
pub fn check_state_root(
    header: &Header,
    executed: alloy_primitives::B256,
) -> Result<(), BlockError> {
    if header.state_root != executed {
        return Err(BlockError::StateRoot { header: header.state_root, executed });
    }
    Ok(())
}
