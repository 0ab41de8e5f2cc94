//! The serial executor: the reference every faster executor must match bit
//! for bit.
//!
//! [`execute_block`] runs a validated block's transactions one after the
//! other through revm over a [`BlockState`] overlay, then applies what
//! happens outside transactions: the EIP-4788 beacon-root system call
//! first; block and ommer rewards (before the merge) and withdrawals
//! (Shanghai) last. It returns the receipts, their root and bloom, the gas
//! used and the block's [`StateUpdates`]; it never writes to triedb, so a
//! block found invalid leaves the state untouched.

use crate::eip7610::CreateCollisionGuard;
use crate::error::{BlockError, StateError, TxError};
use crate::spec::ChainSpec;
use crate::state::{BlockState, PreState};
use crate::tx::{BlockTx, blob_gas, tx_env, type_enabled};
use crate::validate::blob_gas_target_and_max;
use alloy_consensus::proofs::calculate_receipt_root;
use alloy_consensus::{
    Block, Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction, Typed2718,
};
use alloy_eips::eip2718::Encodable2718;
use alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
use alloy_primitives::{Address, B256, Bloom, U256};
use alloy_rlp::Decodable;
use alloy_trie::nodes::LeafNodeRef;
use alloy_trie::root::adjust_index_for_rlp;
use alloy_trie::{HashBuilder, Nibbles};
use parking_lot::Mutex;
use revm::context::result::{EVMError, ExecutionResult, InvalidTransaction};
use revm::context::{BlockEnv, CfgEnv, Context};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::handler::SYSTEM_ADDRESS;
use revm::primitives::hardfork::SpecId;
use revm::state::EvmState;
use revm::{ExecuteEvm, InspectEvm, MainBuilder, MainContext, SystemCallEvm};
use std::sync::atomic::{AtomicUsize, Ordering};
use wake_triedb::StateUpdates;

/// Most bytes of one encoded block we decode.
pub const BLOCK_BYTES_MAX: usize = 32 << 20;

/// Wei per gwei (withdrawal amounts are in gwei).
const GWEI: u64 = 1_000_000_000;

/// What executing a block produced.
#[derive(Clone, Debug)]
pub struct BlockOutcome {
    pub receipts: Vec<ReceiptEnvelope>,
    pub receipts_root: B256,
    pub logs_bloom: Bloom,
    pub gas_used: u64,
    pub blob_gas_used: u64,
    /// The block's state diff, for `TrieDb::commit`.
    pub updates: StateUpdates,
}

/// Decodes one RLP block and returns it with its hash, refusing inputs over
/// [`BLOCK_BYTES_MAX`] and trailing bytes.
pub fn decode_block(bytes: &[u8]) -> Result<(Block<BlockTx>, B256), BlockError> {
    if bytes.len() > BLOCK_BYTES_MAX {
        return Err(BlockError::TooLarge { len: bytes.len(), max: BLOCK_BYTES_MAX });
    }
    let mut buf = bytes;
    let sealed = Block::<BlockTx>::decode_sealed(&mut buf).map_err(BlockError::Decode)?;
    if !buf.is_empty() {
        return Err(BlockError::Decode(alloy_rlp::Error::UnexpectedLength));
    }
    let (block, hash) = sealed.into_parts();
    Ok((block, hash))
}

/// Decodes one RLP header and returns it with its hash.
pub fn decode_header(bytes: &[u8]) -> Result<(Header, B256), BlockError> {
    if bytes.len() > BLOCK_BYTES_MAX {
        return Err(BlockError::TooLarge { len: bytes.len(), max: BLOCK_BYTES_MAX });
    }
    let mut buf = bytes;
    let header = Header::decode(&mut buf).map_err(BlockError::Decode)?;
    if !buf.is_empty() {
        return Err(BlockError::Decode(alloy_rlp::Error::UnexpectedLength));
    }
    Ok((header, alloy_primitives::keccak256(bytes)))
}

/// Whether the executor runs blocks of `spec`: Frontier through Cancun.
/// Before Byzantium only [`execute_block_with_roots`] can (its receipts
/// carry intermediate state roots).
pub fn spec_supported(spec: SpecId) -> bool {
    !spec.is_enabled_in(SpecId::PRAGUE)
}

/// Gives the state root of the parent's state plus a block's cumulative
/// diff so far (pre-Byzantium receipts need one per transaction).
/// Applying a later cumulative diff over an earlier one gives the same state
/// as applying it to the parent, so a caller may commit them one after the
/// other.
pub type IntermediateRoots<'a> = dyn FnMut(&StateUpdates) -> Result<B256, StateError> + 'a;

/// The block reward of a proof-of-work block (EIP-649, EIP-1234).
fn block_reward(spec: SpecId) -> U256 {
    const ETHER: u128 = 1_000_000_000_000_000_000;
    let ether = if spec.is_enabled_in(SpecId::PETERSBURG) {
        2
    } else if spec.is_enabled_in(SpecId::BYZANTIUM) {
        3
    } else {
        5
    };
    U256::from(ether * ETHER)
}

/// Executes `block` (already checked by [`crate::validate_block`]) over
/// `state`, the post-state of its parent. `senders[i]` sent transaction `i`.
/// Blocks before Byzantium are refused here with
/// [`BlockError::UnsupportedSpec`]; run them with [`execute_block_with_roots`].
pub fn execute_block<D>(
    chain: &ChainSpec,
    block: &Block<BlockTx>,
    senders: &[Address],
    state: D,
) -> Result<BlockOutcome, BlockError>
where
    D: PreState,
{
    execute(chain, block, senders, state, None)
}

/// [`execute_block`] for every supported fork: `roots` computes the state
/// root after each transaction of a pre-Byzantium block.
pub fn execute_block_with_roots<D>(
    chain: &ChainSpec,
    block: &Block<BlockTx>,
    senders: &[Address],
    state: D,
    roots: &mut IntermediateRoots<'_>,
) -> Result<BlockOutcome, BlockError>
where
    D: PreState,
{
    execute(chain, block, senders, state, Some(roots))
}

fn execute<D>(
    chain: &ChainSpec,
    block: &Block<BlockTx>,
    senders: &[Address],
    state: D,
    mut roots: Option<&mut IntermediateRoots<'_>>,
) -> Result<BlockOutcome, BlockError>
where
    D: PreState,
{
    let header = &block.header;
    let envs = BlockEnvs::new(chain, header);
    let spec = envs.spec;
    let byzantium = spec.is_enabled_in(SpecId::BYZANTIUM);
    if !spec_supported(spec) || (!byzantium && roots.is_none()) {
        return Err(BlockError::UnsupportedSpec(spec));
    }
    assert_eq!(senders.len(), block.body.transactions.len(), "one sender per transaction");

    let mut evm = Context::mainnet()
        .with_db(BlockState::new(state))
        .with_block(envs.block.clone())
        .with_cfg(envs.cfg.clone())
        .build_mainnet_with_inspector(CreateCollisionGuard);

    // EIP-4788: store the parent beacon block root before any transaction.
    if spec.is_enabled_in(SpecId::CANCUN)
        && let Some(root) = header.parent_beacon_block_root
    {
        let outcome = evm.system_call_one(BEACON_ROOTS_ADDRESS, root.0.into());
        let changes = evm.finalize();
        let changes = beacon_root_changes(outcome.map(drop), changes, header.beneficiary)?;
        evm.ctx.journaled_state.database.commit_tx(changes);
    }

    let mut receipts = Vec::with_capacity(block.body.transactions.len());
    let mut gas_used = 0u64;
    let mut blob_gas_used = 0u64;
    for (index, (tx, sender)) in block.body.transactions.iter().zip(senders).enumerate() {
        let tx_blob_gas = envs.precheck(tx, index, gas_used, blob_gas_used)?;
        let result = evm
            .inspect_tx(tx_env(tx, *sender))
            .map_err(|e| evm_error(e, chain.chain_id, tx, index))?;
        evm.ctx.journaled_state.database.commit_tx(result.state);
        gas_used += result.result.tx_gas_used();
        blob_gas_used += tx_blob_gas;
        let status = match roots.as_mut() {
            Some(roots) if !byzantium => {
                let updates = evm.ctx.journaled_state.database.updates();
                Eip658Value::PostState(roots(&updates)?)
            }
            _ => Eip658Value::Eip658(result.result.is_success()),
        };
        receipts.push(receipt(tx.ty(), status, &result.result, gas_used));
    }

    let mut db = evm.ctx.journaled_state.database;
    apply_block_rewards(&mut db, block, spec)?;
    Ok(outcome(receipts, gas_used, blob_gas_used, db.into_updates(), 1))
}

/// The revm environments of one block, and its blob gas ceiling.
pub(crate) struct BlockEnvs {
    pub spec: SpecId,
    pub cfg: CfgEnv,
    pub block: BlockEnv,
    pub blob_gas_max: u64,
    pub gas_limit: u64,
}

impl BlockEnvs {
    pub fn new(chain: &ChainSpec, header: &Header) -> Self {
        let spec = chain.spec_at(header.number, header.timestamp);
        let mut cfg = CfgEnv::new_with_spec(spec).with_chain_id(chain.chain_id);
        let (_, blob_gas_max) = blob_gas_target_and_max(spec);
        if spec.is_enabled_in(SpecId::CANCUN) {
            cfg.set_max_blobs_per_tx(blob_gas_max / alloy_eips::eip4844::DATA_GAS_PER_BLOB);
        }
        let block = BlockEnv {
            number: U256::from(header.number),
            beneficiary: header.beneficiary,
            timestamp: U256::from(header.timestamp),
            gas_limit: header.gas_limit,
            basefee: header.base_fee_per_gas.unwrap_or_default(),
            difficulty: header.difficulty,
            prevrandao: spec.is_enabled_in(SpecId::MERGE).then_some(header.mix_hash),
            blob_excess_gas_and_price: header
                .excess_blob_gas
                .map(|excess| BlobExcessGasAndPrice::new_with_spec(excess, spec)),
            ..Default::default()
        };
        BlockEnvs { spec, cfg, block, blob_gas_max, gas_limit: header.gas_limit }
    }

    /// The checks made on transaction `index` before it runs, given the gas
    /// and blob gas the transactions before it used. Returns its blob gas.
    pub fn precheck(
        &self,
        tx: &BlockTx,
        index: usize,
        gas_used: u64,
        blob_gas_used: u64,
    ) -> Result<u64, BlockError> {
        let reject = |source: TxError| BlockError::Transaction { index, source };
        if !type_enabled(tx.ty(), self.spec) {
            return Err(reject(TxError::TypeNotEnabled { ty: tx.ty(), spec: self.spec }));
        }
        let available = self.gas_limit - gas_used;
        if tx.gas_limit() > available {
            return Err(reject(TxError::BlockGasExceeded { gas_limit: tx.gas_limit(), available }));
        }
        let tx_blob_gas = blob_gas(tx);
        let blob_available = self.blob_gas_max.saturating_sub(blob_gas_used);
        if tx_blob_gas > blob_available {
            return Err(reject(TxError::BlobGasExceeded {
                blob_gas: tx_blob_gas,
                available: blob_available,
            }));
        }
        Ok(tx_blob_gas)
    }
}

/// Why revm refused transaction `index`, as a block verdict (or our own
/// storage failing).
pub(crate) fn evm_error(
    e: EVMError<StateError>,
    chain_id: u64,
    tx: &BlockTx,
    index: usize,
) -> BlockError {
    let reject = |source: TxError| BlockError::Transaction { index, source };
    match e {
        EVMError::Transaction(InvalidTransaction::InvalidChainId) => {
            reject(TxError::ChainIdMismatch { expected: chain_id, got: tx.chain_id() })
        }
        EVMError::Transaction(e) => reject(e.into()),
        EVMError::Database(e) => BlockError::State(e),
        e => reject(TxError::Evm(InvalidTransaction::Str(e.to_string().into()))),
    }
}

/// The state changes of the EIP-4788 system call, without the system
/// caller and the fee recipient (no fee is paid), or why it failed.
pub(crate) fn beacon_root_changes(
    outcome: Result<(), EVMError<StateError>>,
    mut changes: EvmState,
    beneficiary: Address,
) -> Result<EvmState, BlockError> {
    match outcome {
        Ok(()) => {
            changes.remove(&SYSTEM_ADDRESS);
            changes.remove(&beneficiary);
            Ok(changes)
        }
        Err(EVMError::Database(e)) => Err(BlockError::State(e)),
        Err(e) => {
            Err(BlockError::SystemCall { contract: BEACON_ROOTS_ADDRESS, reason: e.to_string() })
        }
    }
}

/// What happens after the last transaction: block and ommer rewards
/// before the merge, withdrawals from Shanghai on.
pub(crate) fn apply_block_rewards<D: PreState>(
    db: &mut BlockState<D>,
    block: &Block<BlockTx>,
    spec: SpecId,
) -> Result<(), StateError> {
    let header = &block.header;
    if !spec.is_enabled_in(SpecId::MERGE) {
        let reward = block_reward(spec);
        let ommers = &block.body.ommers;
        let miner = reward + (reward >> 5) * U256::from(ommers.len());
        db.increment_balance(header.beneficiary, miner)?;
        for ommer in ommers {
            // (8 + ommer number - block number) / 8 of the reward; validation
            // keeps ommers 1 to 6 generations back.
            let eighths = U256::from(ommer.number.saturating_add(8).saturating_sub(header.number));
            db.increment_balance(ommer.beneficiary, reward * eighths / U256::from(8))?;
        }
    }
    if let Some(withdrawals) = &block.body.withdrawals {
        for w in withdrawals.iter() {
            db.increment_balance(w.address, U256::from(w.amount) * U256::from(GWEI))?;
        }
    }
    Ok(())
}

/// Assembles a block's outcome from its receipts and diff; the receipts
/// root is hashed on up to `threads` threads ([`receipts_root_with`]).
pub(crate) fn outcome(
    receipts: Vec<ReceiptEnvelope>,
    gas_used: u64,
    blob_gas_used: u64,
    updates: StateUpdates,
    threads: usize,
) -> BlockOutcome {
    outcome_with(receipts, gas_used, blob_gas_used, threads, || updates)
}

/// [`outcome`], with the state diff made by `updates` on the calling thread
/// while the helpers start on the receipts root's leaves (it then takes
/// leaves too): the two are most of a block's tail, and neither needs the
/// other.
pub(crate) fn outcome_with(
    receipts: Vec<ReceiptEnvelope>,
    gas_used: u64,
    blob_gas_used: u64,
    threads: usize,
    updates: impl FnOnce() -> StateUpdates,
) -> BlockOutcome {
    let logs_bloom = receipts.iter().fold(Bloom::ZERO, |bloom, r| bloom | *r.logs_bloom());
    let (receipts_root, updates) =
        receipts_root_with(&receipts, threads, PARALLEL_RECEIPTS_MIN, updates);
    BlockOutcome { receipts_root, receipts, logs_bloom, gas_used, blob_gas_used, updates }
}

/// Blocks with fewer receipts hash their receipts root on one thread:
/// below this, starting a thread costs about what it saves.
const PARALLEL_RECEIPTS_MIN: usize = 128;

/// Leaves a thread takes at a time in [`receipts_root_with`].
const LEAVES_PER_CLAIM: usize = 64;

/// The receipts root, as [`calculate_receipt_root`] computes it, with the
/// leaves hashed on up to `threads` threads when there are at least `min`
/// receipts, and `alongside` run first on the calling thread (the helpers
/// start on the leaves, claimed [`LEAVES_PER_CLAIM`] at a time, and the
/// caller takes what is left once `alongside` is done). The leaves are
/// nearly all of the work (each holds a whole receipt, its 256-byte bloom
/// included, so a leaf is three to five keccak blocks where a branch is
/// four) and each can be hashed alone once its place in the trie is known:
/// one nibble past the longest prefix it shares with a neighbouring key
/// (the keys, `rlp(index)`, are prefix-free). The leaf hashes then go into
/// a [`HashBuilder`] as hashed nodes at those places, and it builds the
/// branches above them.
pub(crate) fn receipts_root_with<T>(
    receipts: &[ReceiptEnvelope],
    threads: usize,
    min: usize,
    alongside: impl FnOnce() -> T,
) -> (B256, T) {
    let n = receipts.len();
    if threads < 2 || n < min.max(2) {
        let done = alongside();
        return (calculate_receipt_root(receipts), done);
    }
    // Trie order is not index order: rlp(0) = 0x80 sorts after rlp(1..=127).
    let keys: Vec<(Nibbles, usize)> = (0..n)
        .map(|i| {
            let index = adjust_index_for_rlp(i, n);
            (Nibbles::unpack(alloy_rlp::encode_fixed_size(&index)), index)
        })
        .collect();
    let shared = |a: usize, b: usize| keys[a].0.common_prefix_length(&keys[b].0);
    let depths: Vec<usize> = (0..n)
        .map(|p| {
            let before = if p > 0 { shared(p - 1, p) } else { 0 };
            let after = if p + 1 < n { shared(p, p + 1) } else { 0 };
            before.max(after) + 1
        })
        .collect();
    let claims = n.div_ceil(LEAVES_PER_CLAIM);
    let next = AtomicUsize::new(0);
    let hashed: Vec<Mutex<Vec<Option<B256>>>> = (0..claims).map(|_| Mutex::default()).collect();
    let hash_leaves = || {
        let (mut value, mut rlp) = (Vec::new(), Vec::new());
        loop {
            let claim = next.fetch_add(1, Ordering::Relaxed);
            if claim >= claims {
                return;
            }
            let range = claim * LEAVES_PER_CLAIM..((claim + 1) * LEAVES_PER_CLAIM).min(n);
            let hashes = keys[range.clone()]
                .iter()
                .zip(&depths[range])
                .map(|((key, index), &depth)| {
                    value.clear();
                    receipts[*index].encode_2718(&mut value);
                    rlp.clear();
                    let path = key.slice(depth..);
                    LeafNodeRef::new(&path, &value).rlp(&mut rlp).as_hash()
                })
                .collect();
            *hashed[claim].lock() = hashes;
        }
    };
    let done = crate::workers::join_with(
        threads - 1,
        || {
            let done = alongside();
            hash_leaves();
            done
        },
        |_| hash_leaves(),
    );
    let hashes = hashed.into_iter().flat_map(Mutex::into_inner);
    let mut builder = HashBuilder::default();
    for (((key, _), depth), hash) in keys.iter().zip(depths).zip(hashes) {
        // A leaf under 32 bytes is inlined in its parent, not hashed. No
        // receipt is that small (its bloom alone is 256 bytes), but the
        // one-thread root stays right even for one.
        let Some(hash) = hash else { return (calculate_receipt_root(receipts), done) };
        builder.add_branch(key.slice(..depth), hash, false);
    }
    (builder.root(), done)
}

pub(crate) fn receipt(
    ty: u8,
    status: Eip658Value,
    result: &ExecutionResult,
    cumulative_gas_used: u64,
) -> ReceiptEnvelope {
    envelope(ty, receipt_with_bloom(status, result, cumulative_gas_used))
}

/// A receipt's fields and its logs bloom (the bloom is most of a
/// receipt's hashing).
pub(crate) fn receipt_with_bloom(
    status: Eip658Value,
    result: &ExecutionResult,
    cumulative_gas_used: u64,
) -> ReceiptWithBloom {
    ReceiptWithBloom::from(Receipt { status, cumulative_gas_used, logs: result.logs().to_vec() })
}

/// The receipt of a transaction of type `ty`.
pub(crate) fn envelope(ty: u8, with_bloom: ReceiptWithBloom) -> ReceiptEnvelope {
    match ty {
        0 => ReceiptEnvelope::Legacy(with_bloom),
        1 => ReceiptEnvelope::Eip2930(with_bloom),
        2 => ReceiptEnvelope::Eip1559(with_bloom),
        3 => ReceiptEnvelope::Eip4844(with_bloom),
        _ => ReceiptEnvelope::Eip7702(with_bloom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Bytes, Log, LogData};
    use rand::{Rng, SeedableRng};

    /// Receipts of every type, with zero to three logs of random sizes.
    fn random_receipts(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<ReceiptEnvelope> {
        let mut cumulative = 0u64;
        (0..n)
            .map(|_| {
                cumulative += rng.random_range(21_000..200_000);
                let logs = (0..rng.random_range(0..4))
                    .map(|_| {
                        let topics = (0..rng.random_range(0..4))
                            .map(|_| B256::from(rng.random::<[u8; 32]>()))
                            .collect();
                        let data: Vec<u8> =
                            (0..rng.random_range(0..200)).map(|_| rng.random()).collect();
                        Log {
                            address: Address::from(rng.random::<[u8; 20]>()),
                            data: LogData::new_unchecked(topics, Bytes::from(data)),
                        }
                    })
                    .collect();
                let status = Eip658Value::Eip658(rng.random_bool(0.9));
                let receipt = Receipt { status, cumulative_gas_used: cumulative, logs };
                let with_bloom = ReceiptWithBloom::from(receipt);
                match rng.random_range(0..5) {
                    0 => ReceiptEnvelope::Legacy(with_bloom),
                    1 => ReceiptEnvelope::Eip2930(with_bloom),
                    2 => ReceiptEnvelope::Eip1559(with_bloom),
                    3 => ReceiptEnvelope::Eip4844(with_bloom),
                    _ => ReceiptEnvelope::Eip7702(with_bloom),
                }
            })
            .collect()
    }

    #[test]
    fn the_receipts_root_hashed_on_threads_is_alloys() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x7ec3);
        // Every size around the key-length boundaries of rlp(index)
        // (1 byte up to 127, 0x81 xx up to 255, 0x82 xx xx above), then
        // larger blocks.
        let sizes = (0..=300).chain([511, 512, 1000, 2049, 5000]);
        for n in sizes {
            let receipts = random_receipts(&mut rng, n);
            let expected = calculate_receipt_root(&receipts);
            for threads in [1, 2, 3, 8] {
                // What runs alongside comes back, whatever the split.
                let (root, alongside) = receipts_root_with(&receipts, threads, 0, || n * 7);
                assert_eq!((root, alongside), (expected, n * 7), "{n} receipts");
            }
        }
        // Past 65,535 the keys grow to 0x83 xx xx xx.
        let receipts = random_receipts(&mut rng, 70_000);
        let (root, ()) = receipts_root_with(&receipts, 2, 0, || ());
        assert_eq!(root, calculate_receipt_root(&receipts));
    }
}
