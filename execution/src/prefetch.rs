//! Prefetch: the state a block will touch, read from triedb in one batch
//! before execution, so the cold reads overlap in triedb's io_uring ring
//! instead of queueing one by one behind revm's synchronous reads.
//!
//! [`Prefetched`] wraps the pre-state view ([`PreState`]) and answers from
//! the batch first: the accounts of the senders, recipients, fee recipient,
//! withdrawal recipients and access lists, the storage slots named in
//! access lists, and the EIP-4788 slots the beacon-root call writes. Reads
//! outside the batch fall through to the view below. Every answer comes from
//! the same triedb version, so prefetching changes speed, never results.
//!
//! What a block names is not all it reads: an ERC-20 transfer reads two
//! balance slots that only running the contract reveals. [`Prefetched::discover`]
//! finds them the way Monad's first optimistic run does: it runs every
//! transaction once over what is loaded so far, with a view that never
//! waits for triedb (a read not loaded yet answers "absent" or zero and is
//! noted), then reads everything noted in one batch, and repeats for the
//! reads that the newly loaded values reveal. Those runs are thrown away;
//! they cost one EVM run per transaction and turn the block's cold reads
//! into a few overlapped batches.

use crate::error::StateError;
use crate::executor::BlockEnvs;
use crate::spec::ChainSpec;
use crate::state::{BatchRead, PreAccount, PreState, to_revm};
use crate::tx::{BlockTx, tx_env};
use alloy_consensus::{Block, Transaction};
use alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
use alloy_primitives::{Address, B256, U256, map::HashMap};
use revm::bytecode::Bytecode;
use revm::context::{BlockEnv, CfgEnv};
use revm::database::{Database, DatabaseRef};
use revm::state::AccountInfo as RevmAccountInfo;
use revm::{Context, ExecuteEvm, MainBuilder, MainContext};
use std::collections::BTreeSet;

/// Slots of the EIP-4788 ring buffer (timestamps, then roots).
const HISTORY_BUFFER_LENGTH: u64 = 8191;

/// A pre-state view with a block's likely reads loaded ahead.
pub struct Prefetched<D> {
    inner: D,
    accounts: HashMap<Address, Option<PreAccount>>,
    slots: HashMap<(Address, U256), U256>,
    /// Contract code loaded (and analysed) by discovery runs.
    codes: HashMap<B256, Bytecode>,
    /// Discovery rounds that loaded something.
    rounds: usize,
}

/// What a prefetch read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefetchStats {
    pub accounts: usize,
    pub slots: usize,
    /// Discovery rounds that found reads to load.
    pub discovery_rounds: usize,
}

/// Most discovery rounds [`Prefetched::discover`] runs.
pub const DISCOVERY_ROUNDS_MAX: usize = 4;

impl<D: PreState> Prefetched<D> {
    /// Reads, in two batches (accounts, then slots), everything `block`
    /// names that a transaction or the block's own state changes will read,
    /// from `snapshot`, which must be the state `inner` views.
    pub fn load(
        inner: D,
        snapshot: &impl BatchRead,
        block: &Block<BlockTx>,
        senders: &[Address],
    ) -> Result<Self, StateError> {
        let header = &block.header;
        let mut addresses: BTreeSet<Address> = senders.iter().copied().collect();
        addresses.insert(header.beneficiary);
        let mut slots: BTreeSet<(Address, B256)> = BTreeSet::new();
        for tx in &block.body.transactions {
            if let Some(to) = tx.to() {
                addresses.insert(to);
            }
            for item in tx.access_list().map(|list| list.0.as_slice()).unwrap_or_default() {
                addresses.insert(item.address);
                slots.extend(item.storage_keys.iter().map(|key| (item.address, *key)));
            }
        }
        for withdrawal in block.body.withdrawals.iter().flat_map(|w| w.iter()) {
            addresses.insert(withdrawal.address);
        }
        if header.parent_beacon_block_root.is_some() {
            addresses.insert(BEACON_ROOTS_ADDRESS);
            let index = header.timestamp % HISTORY_BUFFER_LENGTH;
            for slot in [index, index + HISTORY_BUFFER_LENGTH] {
                slots.insert((BEACON_ROOTS_ADDRESS, B256::from(U256::from(slot))));
            }
        }
        let addresses: Vec<Address> = addresses.into_iter().collect();
        let read = snapshot.accounts_batch(&addresses)?;
        let accounts: HashMap<Address, Option<PreAccount>> =
            addresses.into_iter().zip(read).collect();
        // A slot of an account that does not exist, or has no storage, is
        // zero without a read.
        let slots: Vec<(Address, B256)> = slots
            .into_iter()
            .filter(|(address, _)| {
                accounts.get(address).is_none_or(|a| a.is_some_and(|a| a.has_storage))
            })
            .collect();
        let values = snapshot.storage_batch(&slots)?;
        let slots = slots
            .into_iter()
            .zip(values)
            .map(|((address, key), value)| ((address, U256::from_be_bytes(key.0)), value))
            .collect();
        Ok(Prefetched { inner, accounts, slots, codes: HashMap::default(), rounds: 0 })
    }

    /// How much the prefetch read.
    pub fn stats(&self) -> PrefetchStats {
        PrefetchStats {
            accounts: self.accounts.len(),
            slots: self.slots.len(),
            discovery_rounds: self.rounds,
        }
    }

    /// Runs every transaction of `block` over what is loaded (each over the
    /// pre-state, on `threads` threads), notes the accounts and slots they
    /// read that are not loaded, reads those from `snapshot` in one batch
    /// each, and repeats while a round finds something, at most `rounds`
    /// times ([`DISCOVERY_ROUNDS_MAX`] at most). Code the runs need is read
    /// at once (a contract's code is needed to discover its slots).
    pub fn discover(
        &mut self,
        chain: &ChainSpec,
        block: &Block<BlockTx>,
        senders: &[Address],
        snapshot: &impl BatchRead,
        rounds: usize,
        threads: usize,
    ) -> Result<(), StateError>
    where
        D: Sync,
    {
        let envs = BlockEnvs::new(chain, &block.header);
        let mut cfg = envs.cfg.clone();
        // Each run sees the pre-state, not the transactions before it: a
        // sender's second transaction must still run.
        cfg.disable_nonce_check = true;
        let txs: Vec<(&BlockTx, Address)> =
            block.body.transactions.iter().zip(senders.iter().copied()).collect();
        if txs.is_empty() {
            return Ok(());
        }
        let threads = threads.clamp(1, txs.len());
        let chunk = txs.len().div_ceil(threads);
        for _ in 0..rounds.min(DISCOVERY_ROUNDS_MAX) {
            let this = &*self;
            let found: Vec<Result<Found, StateError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = txs
                    .chunks(chunk)
                    .map(|part| {
                        let (cfg, block_env) = (cfg.clone(), envs.block.clone());
                        scope.spawn(move || this.discover_part(part, cfg, block_env))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            });
            let mut all = Found::default();
            for part in found {
                let part = part?;
                all.accounts.extend(part.accounts);
                all.slots.extend(part.slots);
                all.codes.extend(part.codes);
            }
            self.codes.extend(all.codes);
            if all.accounts.is_empty() && all.slots.is_empty() {
                break;
            }
            self.rounds += 1;
            let addresses: Vec<Address> = all.accounts.into_iter().collect();
            let read = snapshot.accounts_batch(&addresses)?;
            self.accounts.extend(addresses.into_iter().zip(read));
            let slots: Vec<(Address, B256)> = all
                .slots
                .into_iter()
                .filter(|(address, _)| {
                    self.accounts.get(address).is_none_or(|a| a.is_some_and(|a| a.has_storage))
                })
                .map(|(address, index)| (address, B256::from(index)))
                .collect();
            let values = snapshot.storage_batch(&slots)?;
            self.slots.extend(
                slots
                    .into_iter()
                    .zip(values)
                    .map(|((address, key), value)| ((address, U256::from_be_bytes(key.0)), value)),
            );
        }
        Ok(())
    }

    /// One thread's share of a discovery round.
    fn discover_part(
        &self,
        txs: &[(&BlockTx, Address)],
        cfg: CfgEnv,
        block_env: BlockEnv,
    ) -> Result<Found, StateError> {
        let view = Discovery { loaded: self, found: Found::default(), error: None };
        let mut evm =
            Context::mainnet().with_db(view).with_block(block_env).with_cfg(cfg).build_mainnet();
        for (tx, sender) in txs {
            // A run that fails tells what it read before failing; that is
            // all discovery wants.
            let _ = evm.transact(tx_env(tx, *sender));
        }
        let view = evm.ctx.journaled_state.database;
        match view.error {
            Some(e) => Err(e),
            None => Ok(view.found),
        }
    }
}

/// Reads a discovery round found missing, and code it loaded.
#[derive(Default)]
struct Found {
    accounts: BTreeSet<Address>,
    slots: BTreeSet<(Address, U256)>,
    codes: HashMap<B256, Bytecode>,
}

/// A view over what a [`Prefetched`] has loaded that never reads triedb
/// for accounts or slots: a read not loaded is noted and answered as
/// absent (or zero).
struct Discovery<'p, D> {
    loaded: &'p Prefetched<D>,
    found: Found,
    /// A code read that failed (our storage, not the block).
    error: Option<StateError>,
}

impl<D: PreState> Database for Discovery<'_, D> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<RevmAccountInfo>, StateError> {
        match self.loaded.accounts.get(&address) {
            Some(account) => Ok(account.map(|a| to_revm(a.info))),
            None => {
                self.found.accounts.insert(address);
                Ok(None)
            }
        }
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        if let Some(code) = self.loaded.codes.get(&code_hash).or(self.found.codes.get(&code_hash)) {
            return Ok(code.clone());
        }
        match self.loaded.inner.code_by_hash_ref(code_hash) {
            Ok(code) => {
                self.found.codes.insert(code_hash, code.clone());
                Ok(code)
            }
            Err(e) => {
                self.error.get_or_insert(e.clone());
                Err(e)
            }
        }
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, StateError> {
        if let Some(value) = self.loaded.slots.get(&(address, index)) {
            return Ok(*value);
        }
        match self.loaded.accounts.get(&address) {
            // Absent, or without storage: zero, nothing to load.
            Some(None) => Ok(U256::ZERO),
            Some(Some(a)) if !a.has_storage => Ok(U256::ZERO),
            _ => {
                self.found.slots.insert((address, index));
                Ok(U256::ZERO)
            }
        }
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        self.loaded.inner.block_hash_ref(number)
    }
}

impl<D: PreState> PreState for Prefetched<D> {
    fn has_storage_ref(&self, address: Address) -> Result<bool, StateError> {
        match self.accounts.get(&address) {
            Some(account) => Ok(account.is_some_and(|a| a.has_storage)),
            None => self.inner.has_storage_ref(address),
        }
    }
}

impl<D: PreState> DatabaseRef for Prefetched<D> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<RevmAccountInfo>, StateError> {
        match self.accounts.get(&address) {
            Some(account) => Ok(account.map(|a| to_revm(a.info))),
            None => self.inner.basic_ref(address),
        }
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        match self.codes.get(&code_hash) {
            Some(code) => Ok(code.clone()),
            None => self.inner.code_by_hash_ref(code_hash),
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        match self.slots.get(&(address, index)) {
            Some(value) => Ok(*value),
            None => self.inner.storage_ref(address, index),
        }
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        self.inner.block_hash_ref(number)
    }
}
