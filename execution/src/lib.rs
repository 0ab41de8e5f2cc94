//! # wake-execution
//!
//! Turns an ordered block into its result: receipts, logs bloom, gas used,
//! and a state diff for `wake-triedb`, whose commit gives the state root.
//!
//! The pipeline for one imported block, in order:
//! 1. [`decode_block`]: bounded RLP decoding ([`BLOCK_BYTES_MAX`]).
//! 2. [`validate_block`]: header against parent (number, timestamp, gas
//!    limit bounds, EIP-1559 base fee, EIP-4844 excess blob gas and blob gas
//!    used, post-merge difficulty/nonce/ommers), transactions, ommers and
//!    withdrawals roots.
//! 3. [`recover_senders`]: ECDSA recovery with libsecp256k1, once per
//!    transaction, outside revm and on several threads.
//! 4. [`Prefetched`]: the block's senders, recipients, fee recipient,
//!    withdrawal recipients and access-list slots read from triedb in one
//!    overlapped batch, in front of the pre-state view; then discovery runs
//!    the transactions over what is loaded to find (and batch-read) the
//!    slots only running them reveals. Each transaction's last discovery
//!    run is a run over the pre-state, kept for the parallel executor
//!    ([`SpeculativeRuns`]). [`Prefetched::fetch`] does both with one batch
//!    fewer where the transactions call contracts: a first round with the
//!    senders guessed reveals the slots while the senders are being read,
//!    and the slots are read beside the senders' tail.
//! 5. [`execute_block`]: the serial reference executor. revm runs each
//!    transaction over a [`BlockState`] overlay on a [`SnapshotState`]
//!    (the parent's triedb version); beacon-root system call (EIP-4788),
//!    withdrawals, and proof-of-work rewards are applied around it.
//!    [`execute_block_parallel`] gives the same outcome, bit for bit, with
//!    transactions run optimistically on several threads (or taken from
//!    discovery) and committed in order after read-set validation (see the
//!    `parallel` module).
//! 6. [`validate_outcome`]: gas used, receipts root, logs bloom; the caller
//!    commits [`BlockOutcome::updates`] to triedb and checks the returned
//!    root with [`check_state_root`].
//!
//! Before a block exists, [`Pool`] (the `pool` module) admits transactions
//! (stateless checks and sender recovery outside its lock, nonce and funds
//! against the latest executed state) and builds the leader's block, which
//! consensus carries as a payload ([`encode_payload`], [`decode_payload`]).
//!
//! Chain rules live in [`ChainSpec`]: mainnet's schedule, a devnet's from a
//! geth `genesis.json` ([`Genesis`]), and the ethereum/tests networks.
//! [`ethtests`] runs ethereum/tests BlockchainTests through all of the above
//! and the on-disk triedb (`wake ethtests`, `tests/tests/ethtests.rs`).
//!
//! Design decisions:
//! * Nothing here writes to triedb. An invalid block is simply never
//!   committed, so the state is unchanged by construction.
//! * The pre-state is read through revm's `DatabaseRef` (`&self` reads):
//!   one [`SnapshotState`] is shared by all the parallel executor's
//!   threads, over one committed overlay.
//! * The serial executor credits the fee recipient through revm
//!   (`reward_beneficiary`); the parallel one defers the credit to commit
//!   time, so that paying fees does not make every transaction conflict.
//! * Supported forks: Frontier through Cancun. Receipts before Byzantium
//!   carry the state root after their transaction; only the caller can
//!   compute it (a trie commit), so those blocks need
//!   [`execute_block_with_roots`]. Prague (EIP-2935/7002/7251 system calls,
//!   requests) is refused with [`BlockError::UnsupportedSpec`], never
//!   executed wrongly. Mainnet's DAO-fork irregular state change is not
//!   applied.
//! * EIP-7610 (creating a contract where storage exists is a collision) is
//!   not in revm, which cannot see storage roots; [`CreateCollisionGuard`],
//!   a revm inspector, adds it, so transactions run through revm's
//!   inspecting entry point.
//! * Errors are typed: [`BlockError`] says why a block is rejected
//!   ([`TxError`] for its transactions); [`StateError`] is our own storage
//!   failing, which is not a verdict on the block.

pub mod call;
mod eip7610;
mod error;
pub mod ethtests;
mod executor;
mod parallel;
mod payload;
pub mod pending;
pub mod pool;
mod prefetch;
pub mod replay;
mod spec;
mod state;
mod tx;
mod validate;
mod workers;

pub use eip7610::CreateCollisionGuard;
pub use error::{BlockError, SpecError, StateError, TxError};
pub use executor::{
    BLOCK_BYTES_MAX, BlockOutcome, IntermediateRoots, decode_block, decode_header, execute_block,
    execute_block_with_roots, spec_supported,
};
pub use parallel::{
    IN_ORDER_SPAN, IN_ORDER_SPAN_MAX, ParallelConfig, ParallelStats, SerialReason, SpeculativeRuns,
    execute_block_parallel, execute_block_parallel_with,
};
pub use payload::{
    PayloadError, decode_payload, encode_payload, payload_item_len, payload_len, split_payload,
};
pub use pending::PendingDiff;
pub use pool::{
    AccountSource, AccountState, Admitted, BlockLimits, Pool, PoolConfig, PoolError, PoolHead,
    PooledTx, TxOrigin,
};
pub use prefetch::{CALLED_SHARE_MAX, DISCOVERY_ROUNDS_MAX, PrefetchStats, Prefetched};
pub use spec::{ChainSpec, ForkActivation, GENESIS_JSON_BYTES_MAX, Genesis, GenesisAccount};
pub use state::{
    BatchRead, BlockHashes, BlockState, CollisionState, PreAccount, PreState, SnapshotState,
};
pub use tx::{
    BlockTx, TX_BYTES_MAX, blob_gas, decode_tx, recover_sender, recover_senders, tx_env,
    type_enabled,
};
pub use validate::{
    EXTRA_DATA_BYTES_MAX, GAS_LIMIT_MAX, GAS_LIMIT_MIN, blob_gas_target_and_max, check_state_root,
    validate_block, validate_outcome,
};

/// Re-exported so callers name the same types as this crate.
pub use alloy_consensus::{Block, Header};
pub use revm::primitives::hardfork::SpecId;
