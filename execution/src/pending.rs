//! State that is executed but not yet committed: the diffs of blocks whose
//! triedb commit is still running, layered over the newest committed
//! version.
//!
//! A node that commits block `N` on one thread while it executes `N + 1` on
//! another reads `N + 1`'s pre-state as triedb's version `N - 1` plus `N`'s
//! [`PendingDiff`] (more than one when the commit falls further behind).
//! The diff is exactly what the commit will apply, so every read gives what
//! it would give from the committed version `N`:
//!
//! * an account: the newest diff that names it decides (`Delete`: absent);
//! * a slot: the newest diff that names its account decides when it wrote
//!   the slot, wiped the storage or deleted the account; otherwise the next
//!   older diff, then triedb;
//! * code: code a diff deployed, by its hash;
//! * whether an account has storage (EIP-7610's collision rule, and the
//!   prefetch skipping slot reads of accounts without storage): a non-zero
//!   write says yes, a wipe or deletion with none says no, otherwise the
//!   older state decides. A diff that zeroes every slot of an account that
//!   keeps its other slots untouched cannot be told from one that leaves
//!   some: the answer is then "has storage", as for a block's own writes in
//!   [`crate::BlockState`]. Only code can clear slots, and an account with
//!   code is a collision anyway, so the rule's outcome is the same.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256, map::HashMap};
use std::sync::Arc;
use wake_triedb::{AccountInfo, AccountUpdate, StateUpdates};

/// One executed block's state diff, waiting for (or in) its triedb commit.
#[derive(Debug)]
pub struct PendingDiff {
    height: u64,
    updates: StateUpdates,
    /// The code it deploys, by hash.
    codes: HashMap<B256, Bytes>,
}

impl PendingDiff {
    /// The diff of block `height` (what `TrieDb::commit(height, ..)` gets).
    pub fn new(height: u64, updates: StateUpdates) -> Self {
        let codes = updates.codes.iter().map(|code| (keccak256(code), code.clone())).collect();
        PendingDiff { height, updates, codes }
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn updates(&self) -> &StateUpdates {
        &self.updates
    }
}

/// Diffs in height order, oldest first, all above the committed version
/// they are read over.
pub type Pending = [Arc<PendingDiff>];

/// The account as the pending diffs leave it (`Some(None)`: deleted);
/// `None`: no diff names it, read the committed state.
pub(crate) fn account(pending: &Pending, address: &Address) -> Option<Option<AccountInfo>> {
    pending.iter().rev().find_map(|diff| match diff.updates.accounts.get(address)? {
        AccountUpdate::Delete => Some(None),
        AccountUpdate::Set { info, .. } => Some(Some(*info)),
    })
}

/// The slot as the pending diffs leave it; `None`: read the committed state.
pub(crate) fn storage(pending: &Pending, address: &Address, slot: &B256) -> Option<U256> {
    pending.iter().rev().find_map(|diff| match diff.updates.accounts.get(address)? {
        AccountUpdate::Delete => Some(U256::ZERO),
        AccountUpdate::Set { wipe_storage, storage, .. } => match storage.get(slot) {
            Some(value) => Some(*value),
            None => wipe_storage.then_some(U256::ZERO),
        },
    })
}

/// Whether the account has storage, if the pending diffs decide it (see
/// the module doc); `None`: ask the committed state.
pub(crate) fn has_storage(pending: &Pending, address: &Address) -> Option<bool> {
    pending.iter().rev().find_map(|diff| match diff.updates.accounts.get(address)? {
        AccountUpdate::Delete => Some(false),
        AccountUpdate::Set { wipe_storage, storage, .. } => {
            if storage.values().any(|value| !value.is_zero()) {
                Some(true)
            } else {
                wipe_storage.then_some(false)
            }
        }
    })
}

/// Code a pending diff deployed.
pub(crate) fn code(pending: &Pending, code_hash: &B256) -> Option<Bytes> {
    pending.iter().rev().find_map(|diff| diff.codes.get(code_hash).cloned())
}
