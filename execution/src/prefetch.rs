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

use crate::error::StateError;
use crate::state::PreState;
use crate::tx::BlockTx;
use alloy_consensus::{Block, Transaction};
use alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
use alloy_primitives::{Address, B256, U256, map::HashMap};
use revm::bytecode::Bytecode;
use revm::database::DatabaseRef;
use revm::state::AccountInfo as RevmAccountInfo;
use std::collections::BTreeSet;
use wake_triedb::{Account, EMPTY_ROOT, Snapshot};

/// Slots of the EIP-4788 ring buffer (timestamps, then roots).
const HISTORY_BUFFER_LENGTH: u64 = 8191;

/// A pre-state view with a block's likely reads loaded ahead.
pub struct Prefetched<D> {
    inner: D,
    accounts: HashMap<Address, Option<Account>>,
    slots: HashMap<(Address, U256), U256>,
}

/// What a prefetch read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefetchStats {
    pub accounts: usize,
    pub slots: usize,
}

impl<D: PreState> Prefetched<D> {
    /// Reads, in two batches (accounts, then slots), everything `block`
    /// names that a transaction or the block's own state changes will read,
    /// from `snapshot`, which must be the version `inner` views.
    pub fn load(
        inner: D,
        snapshot: &Snapshot,
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
        let read = snapshot.accounts(&addresses)?;
        let accounts: HashMap<Address, Option<Account>> = addresses.into_iter().zip(read).collect();
        // A slot of an account that does not exist, or has no storage, is
        // zero without a read.
        let slots: Vec<(Address, B256)> = slots
            .into_iter()
            .filter(|(address, _)| {
                accounts
                    .get(address)
                    .is_none_or(|a| a.is_some_and(|a| a.storage_root != EMPTY_ROOT))
            })
            .collect();
        let values = snapshot.storage_batch(&slots)?;
        let slots = slots
            .into_iter()
            .zip(values)
            .map(|((address, key), value)| ((address, U256::from_be_bytes(key.0)), value))
            .collect();
        Ok(Prefetched { inner, accounts, slots })
    }

    /// How much the prefetch read.
    pub fn stats(&self) -> PrefetchStats {
        PrefetchStats { accounts: self.accounts.len(), slots: self.slots.len() }
    }
}

impl<D: PreState> PreState for Prefetched<D> {
    fn has_storage_ref(&self, address: Address) -> Result<bool, StateError> {
        match self.accounts.get(&address) {
            Some(account) => Ok(account.is_some_and(|a| a.storage_root != EMPTY_ROOT)),
            None => self.inner.has_storage_ref(address),
        }
    }
}

impl<D: PreState> DatabaseRef for Prefetched<D> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<RevmAccountInfo>, StateError> {
        match self.accounts.get(&address) {
            Some(account) => Ok(account.map(|a| RevmAccountInfo {
                balance: a.balance,
                nonce: a.nonce,
                code_hash: a.code_hash,
                code: None,
                ..Default::default()
            })),
            None => self.inner.basic_ref(address),
        }
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        self.inner.code_by_hash_ref(code_hash)
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
