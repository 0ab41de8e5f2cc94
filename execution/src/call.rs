//! Read-only execution for `eth_call` and `eth_estimateGas`.
//!
//! [`call`] runs one transaction environment over a pre-state (a block's
//! post-state, usually a [`crate::SnapshotState`]) in the environment of a
//! block header, through a fresh [`BlockState`] overlay whose writes are
//! dropped. It follows geth's `eth_call` rules where they differ from block
//! execution:
//! * the nonce is not checked (a call is not a transaction of the chain);
//! * a call with a zero gas price and no priority fee runs with a zero base
//!   fee (geth's `NoBaseFee`: `BASEFEE` then reads 0), so callers need no
//!   funds for gas;
//! * the block gas limit never refuses a call: the gas is bounded by the
//!   caller's cap instead, and the block environment is widened to it.
//!
//! A call can also be stopped by wall time: [`CallLimits::deadline`] is
//! checked every [`DEADLINE_CHECK_STEPS`] instructions by an inspector, which
//! halts every frame once it has passed, and the call returns
//! [`CallError::Timeout`].
//!
//! [`estimate_gas`] is geth's binary search over [`call`]: the smallest gas
//! limit (within 1.5%) at which the call does not fail for lack of gas.

use crate::eip7610::CreateCollisionGuard;
use crate::error::{StateError, TxError};
use crate::executor::BlockEnvs;
use crate::spec::ChainSpec;
use crate::state::{BlockState, PreState};
use alloy_consensus::Header;
use alloy_primitives::{Bytes, Log, TxKind};
use revm::context::result::{EVMError, ExecutionResult};
use revm::context::{Context, TxEnv};
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::{InstructionResult, Interpreter};
use revm::{InspectEvm, Inspector, MainBuilder, MainContext};
use std::time::Instant;

/// Intrinsic gas of a plain value transfer.
pub const TRANSFER_GAS: u64 = 21_000;

/// The deadline is read once per this many instructions (reading the clock
/// at every step would cost more than most instructions).
pub const DEADLINE_CHECK_STEPS: u32 = 4_096;

/// `eth_estimateGas` stops searching when the bounds are this close
/// (relative to the upper one), as geth does.
const ESTIMATE_ERROR_RATIO: f64 = 0.015;

/// Bounds of one call.
#[derive(Clone, Copy, Debug)]
pub struct CallLimits {
    /// Wall-clock instant after which the call is stopped.
    pub deadline: Option<Instant>,
}

/// What a call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Returned normally.
    Success { gas_used: u64, output: Bytes, logs: Vec<Log> },
    /// Ended by `REVERT`: `output` is the revert data.
    Revert { gas_used: u64, output: Bytes },
    /// Failed otherwise (out of gas, invalid opcode, ...).
    Halt { gas_used: u64, reason: String },
}

impl CallOutcome {
    pub fn gas_used(&self) -> u64 {
        match self {
            CallOutcome::Success { gas_used, .. }
            | CallOutcome::Revert { gas_used, .. }
            | CallOutcome::Halt { gas_used, .. } => *gas_used,
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self, CallOutcome::Success { .. })
    }
}

/// Why a call produced no outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The transaction is invalid in this state (funds, fee cap, intrinsic
    /// gas, ...): it could not be included as it is.
    #[error("{0}")]
    Invalid(TxError),
    /// Our own storage failed.
    #[error(transparent)]
    State(StateError),
    /// [`CallLimits::deadline`] passed.
    #[error("execution aborted (timeout)")]
    Timeout,
    /// `eth_estimateGas`: the call fails even with the most gas allowed.
    #[error("gas required exceeds allowance ({cap})")]
    GasCapTooLow { cap: u64, outcome: CallOutcome },
}

/// Runs `tx` over `state` in the environment of `header` (the block whose
/// post-state `state` is, or the one a call is made "at"). Nothing is
/// written anywhere.
pub fn call<D: PreState>(
    chain: &ChainSpec,
    header: &Header,
    state: D,
    tx: TxEnv,
    limits: CallLimits,
) -> Result<CallOutcome, CallError> {
    let mut envs = BlockEnvs::new(chain, header);
    envs.cfg.disable_nonce_check = true;
    if tx.gas_price == 0 && tx.gas_priority_fee.unwrap_or_default() == 0 {
        envs.block.basefee = 0;
    }
    envs.block.gas_limit = envs.block.gas_limit.max(tx.gas_limit);
    let mut evm = Context::mainnet()
        .with_db(BlockState::new(state))
        .with_block(envs.block)
        .with_cfg(envs.cfg)
        .build_mainnet_with_inspector((CreateCollisionGuard, Deadline::new(limits.deadline)));
    let result = evm.inspect_tx(tx);
    if evm.inspector.1.expired {
        return Err(CallError::Timeout);
    }
    let result = result.map_err(|e| match e {
        EVMError::Database(e) => CallError::State(e),
        EVMError::Transaction(e) => CallError::Invalid(e.into()),
        e => CallError::Invalid(TxError::Evm(revm::context::result::InvalidTransaction::Str(
            e.to_string().into(),
        ))),
    })?;
    Ok(match result.result {
        ExecutionResult::Success { gas, logs, output, .. } => {
            CallOutcome::Success { gas_used: gas.tx_gas_used(), output: output.into_data(), logs }
        }
        ExecutionResult::Revert { gas, output, .. } => {
            CallOutcome::Revert { gas_used: gas.tx_gas_used(), output }
        }
        ExecutionResult::Halt { gas, reason, .. } => {
            CallOutcome::Halt { gas_used: gas.tx_gas_used(), reason: format!("{reason:?}") }
        }
    })
}

/// The smallest gas limit, within 1.5%, at which `tx` succeeds, searched
/// between the intrinsic gas and `tx.gas_limit` (the caller's cap). A plain
/// transfer to an account without code is 21,000 without running anything.
/// If the call fails at the cap, the error carries that outcome (a revert's
/// data is the caller's to report).
pub fn estimate_gas<D: PreState + Copy>(
    chain: &ChainSpec,
    header: &Header,
    state: D,
    tx: TxEnv,
    limits: CallLimits,
) -> Result<u64, CallError> {
    let cap = tx.gas_limit;
    if let TxKind::Call(to) = tx.kind
        && tx.data.is_empty()
        && cap >= TRANSFER_GAS
    {
        let code_hash = state.basic_ref(to).map_err(CallError::State)?.map(|a| a.code_hash);
        if code_hash.is_none_or(|h| h == revm::primitives::KECCAK_EMPTY) {
            // Still check that the transfer itself is valid (funds, fees).
            let outcome =
                call(chain, header, state, TxEnv { gas_limit: TRANSFER_GAS, ..tx }, limits)?;
            return match outcome {
                CallOutcome::Success { .. } => Ok(TRANSFER_GAS),
                outcome => Err(CallError::GasCapTooLow { cap, outcome }),
            };
        }
    }
    let run =
        |gas_limit: u64| call(chain, header, state, TxEnv { gas_limit, ..tx.clone() }, limits);
    let first = run(cap)?;
    if !first.is_success() {
        return Err(CallError::GasCapTooLow { cap, outcome: first });
    }
    // Failing limits are below `lo`+1; `hi` succeeds.
    let mut lo = first.gas_used().saturating_sub(1);
    let mut hi = cap;
    // geth's first guess: what was used plus the 63/64 rule's reserve.
    let optimistic = first.gas_used().saturating_add(2_300).saturating_mul(64) / 63;
    if optimistic < hi {
        match run(optimistic) {
            Ok(outcome) if outcome.is_success() => hi = optimistic,
            Ok(_) | Err(CallError::Invalid(TxError::IntrinsicGasTooLow { .. })) => lo = optimistic,
            Err(e) => return Err(e),
        }
    }
    while lo + 1 < hi {
        if (hi - lo) as f64 / hi as f64 <= ESTIMATE_ERROR_RATIO {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        match run(mid) {
            Ok(outcome) if outcome.is_success() => hi = mid,
            Ok(_) | Err(CallError::Invalid(TxError::IntrinsicGasTooLow { .. })) => lo = mid,
            Err(e) => return Err(e),
        }
    }
    Ok(hi)
}

/// Halts every frame once the deadline has passed.
struct Deadline {
    deadline: Option<Instant>,
    steps: u32,
    expired: bool,
}

impl Deadline {
    fn new(deadline: Option<Instant>) -> Self {
        Deadline { deadline, steps: 0, expired: false }
    }
}

impl<CTX> Inspector<CTX, EthInterpreter> for Deadline {
    fn step(&mut self, interp: &mut Interpreter<EthInterpreter>, _context: &mut CTX) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if !self.expired {
            self.steps = self.steps.wrapping_add(1);
            if !self.steps.is_multiple_of(DEADLINE_CHECK_STEPS) || Instant::now() < deadline {
                return;
            }
            self.expired = true;
        }
        interp.halt(InstructionResult::OutOfGas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SnapshotState;
    use alloy_primitives::{Address, B256, U256};
    use revm::primitives::hardfork::SpecId;
    use std::collections::HashMap;
    use wake_triedb::{AccountInfo, AccountUpdate, Config, KECCAK_EMPTY, StateUpdates, TrieDb};

    /// `JUMPDEST PUSH1 0 JUMP`: loops until it runs out of gas or time.
    const LOOP: [u8; 4] = [0x5b, 0x60, 0x00, 0x56];

    fn db_with(code: &[u8]) -> (tempfile::TempDir, TrieDb, Address) {
        let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        let db = TrieDb::open(Config::new(dir.path().join("db"))).unwrap();
        let target = Address::repeat_byte(0xcc);
        let code = Bytes::copy_from_slice(code);
        let mut updates = StateUpdates::default();
        updates.accounts.insert(
            target,
            AccountUpdate::info(AccountInfo {
                nonce: 1,
                balance: U256::ZERO,
                code_hash: alloy_primitives::keccak256(&code),
            }),
        );
        updates.codes.push(code);
        updates.accounts.insert(
            Address::repeat_byte(0xaa),
            AccountUpdate::info(AccountInfo {
                nonce: 0,
                balance: U256::from(10u64).pow(U256::from(18)),
                code_hash: KECCAK_EMPTY,
            }),
        );
        db.commit(1, &updates).unwrap();
        (dir, db, target)
    }

    fn header() -> Header {
        Header {
            number: 1,
            gas_limit: 30_000_000,
            base_fee_per_gas: Some(7),
            excess_blob_gas: Some(0),
            blob_gas_used: Some(0),
            ..Default::default()
        }
    }

    /// Runs `test` over a state holding `code` at a contract address and
    /// a funded sender `0xaa..aa`.
    fn with_state(code: &[u8], test: impl FnOnce(&ChainSpec, SnapshotState<'_>, Address)) {
        let (_dir, db, target) = db_with(code);
        let snapshot = db.snapshot(1).unwrap();
        let hashes: HashMap<u64, B256> = HashMap::new();
        let state = SnapshotState::new(&snapshot, &hashes);
        test(&ChainSpec::single(1, SpecId::CANCUN), state, target);
    }

    #[test]
    fn deadline_stops_an_endless_loop() {
        with_state(&LOOP, |chain, state, target| {
            let tx = TxEnv {
                caller: Address::repeat_byte(0xaa),
                kind: TxKind::Call(target),
                gas_limit: u64::MAX / 2,
                chain_id: Some(1),
                ..Default::default()
            };
            let deadline = Some(Instant::now() + std::time::Duration::from_millis(50));
            let started = Instant::now();
            let e = call(chain, &header(), state, tx.clone(), CallLimits { deadline }).unwrap_err();
            assert!(matches!(e, CallError::Timeout), "{e:?}");
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
            // Without a deadline, the same loop ends by running out of gas.
            let tx = TxEnv { gas_limit: 1_000_000, ..tx };
            let outcome = call(chain, &header(), state, tx, CallLimits { deadline: None }).unwrap();
            assert!(
                matches!(outcome, CallOutcome::Halt { gas_used: 1_000_000, .. }),
                "{outcome:?}"
            );
        });
    }

    #[test]
    fn transfer_estimate_is_intrinsic() {
        with_state(&LOOP, |chain, state, _| {
            let tx = TxEnv {
                caller: Address::repeat_byte(0xaa),
                kind: TxKind::Call(Address::repeat_byte(0x01)),
                value: U256::from(5u64),
                gas_limit: 50_000_000,
                chain_id: Some(1),
                ..Default::default()
            };
            let limits = CallLimits { deadline: None };
            assert_eq!(estimate_gas(chain, &header(), state, tx, limits).unwrap(), TRANSFER_GAS);
        });
    }
}
