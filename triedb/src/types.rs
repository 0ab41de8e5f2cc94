//! Public value types: accounts, state updates, proofs.

use alloy_primitives::{Address, B256, Bytes, U256};
use std::collections::BTreeMap;

/// keccak256 of the empty string: the code hash of an account without code.
pub const KECCAK_EMPTY: B256 = alloy_trie::KECCAK_EMPTY;
/// Root of the empty trie.
pub const EMPTY_ROOT: B256 = alloy_trie::EMPTY_ROOT_HASH;

/// The account fields a block writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
}

impl Default for AccountInfo {
    fn default() -> Self {
        AccountInfo { nonce: 0, balance: U256::ZERO, code_hash: KECCAK_EMPTY }
    }
}

/// An account as read from a version: its fields and its storage root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
    pub storage_root: B256,
}

impl Account {
    pub fn info(&self) -> AccountInfo {
        AccountInfo { nonce: self.nonce, balance: self.balance, code_hash: self.code_hash }
    }
}

/// What one block does to one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountUpdate {
    /// Removes the account and its whole storage.
    Delete,
    /// Creates or updates the account.
    Set {
        info: AccountInfo,
        /// Clears all storage first (SELFDESTRUCT then re-creation, or a
        /// contract created over an address that had storage).
        wipe_storage: bool,
        /// Slot (unhashed, big-endian) → new value; zero deletes the slot.
        storage: BTreeMap<B256, U256>,
    },
}

impl AccountUpdate {
    /// An update of the account fields only.
    pub fn info(info: AccountInfo) -> Self {
        AccountUpdate::Set { info, wipe_storage: false, storage: BTreeMap::new() }
    }
}

/// A block's state diff, as handed to [`crate::TrieDb::commit`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateUpdates {
    pub accounts: BTreeMap<Address, AccountUpdate>,
    /// New contract code. Its hash is computed by triedb; code is kept
    /// forever once written (it is content-addressed and small).
    pub codes: Vec<Bytes>,
}

/// EIP-1186 (`eth_getProof`) proof of one account and some of its slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountProof {
    pub address: Address,
    /// `None` when the account does not exist (the proof shows its absence).
    pub account: Option<Account>,
    /// RLP nodes from the state root down to the account's leaf (or to where
    /// the path ends, for an absent account).
    pub account_proof: Vec<Bytes>,
    pub storage_proofs: Vec<StorageProof>,
}

/// Proof of one storage slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageProof {
    /// The slot, unhashed.
    pub key: B256,
    /// Zero when absent.
    pub value: U256,
    pub proof: Vec<Bytes>,
}

/// A committed version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u64,
    pub state_root: B256,
}
