//! State views for revm: a shared read-only view of a triedb version, and
//! the in-block overlay the serial executor writes through.
//!
//! * [`SnapshotState`] implements revm's [`DatabaseRef`] (`&self` reads)
//!   over a [`Snapshot`], so many executors can share it: the shape the
//!   parallel executor needs. It may carry the diffs of blocks executed
//!   but not yet committed ([`crate::pending`]), so a block can execute
//!   while its parent commits. [`BatchRead`] reads many accounts or slots
//!   of such a view at once.
//! * [`BlockState`] is the overlay: it answers reads from the writes of the
//!   transactions executed so far in the block, then from a read cache, then
//!   from the view below; it folds each transaction's revm state into itself
//!   ([`BlockState::commit_tx`]) and at the end yields the block's
//!   [`StateUpdates`] for `TrieDb::commit`.

use crate::error::StateError;
use crate::pending::{self, Pending};
use alloy_primitives::{
    Address, B256, Bytes, U256,
    map::{HashMap, HashSet},
};
use parking_lot::Mutex;
use revm::bytecode::Bytecode;
use revm::database::{Database, DatabaseRef};
use revm::state::{AccountInfo as RevmAccountInfo, EvmState};
use std::collections::BTreeMap;
use wake_triedb::{
    Account, AccountInfo, AccountUpdate, EMPTY_ROOT, KECCAK_EMPTY, ReadAhead, Snapshot,
    StateUpdates,
};

/// Hashes of recent blocks, for the `BLOCKHASH` opcode (revm asks only for
/// the 256 ancestors it may see).
pub trait BlockHashes: Sync {
    fn block_hash(&self, number: u64) -> Option<B256>;
}

impl BlockHashes for std::collections::HashMap<u64, B256> {
    fn block_hash(&self, number: u64) -> Option<B256> {
        self.get(&number).copied()
    }
}

impl BlockHashes for BTreeMap<u64, B256> {
    fn block_hash(&self, number: u64) -> Option<B256> {
        self.get(&number).copied()
    }
}

/// A pre-state revm can read, plus the one fact revm's account type lacks.
pub trait PreState: DatabaseRef<Error = StateError> {
    /// Whether the account has any storage (its storage root is not the
    /// empty root). Needed for EIP-7610: creating a contract at an address
    /// with storage is a collision, even without code or nonce.
    fn has_storage_ref(&self, address: Address) -> Result<bool, StateError>;

    /// The account, if this view holds it in memory: a read that costs no
    /// I/O, which a caller with other work to do (discovery) reads here
    /// instead of waiting. `Some(None)`: known absent. `None`: not held (ask
    /// [`DatabaseRef::basic_ref`]).
    fn resident_account(&self, _address: Address) -> Option<Option<PreAccount>> {
        None
    }

    /// The slot, if this view holds it in memory (or knows it is zero, its
    /// account being absent or without storage); see
    /// [`resident_account`](Self::resident_account).
    fn resident_storage(&self, _address: Address, _index: U256) -> Option<U256> {
        None
    }

    /// Speculative runs of `block`'s transactions over this very state, made
    /// ahead of execution (by [`crate::Prefetched::discover`]), for the
    /// parallel executor to validate and commit instead of running the
    /// transactions again. Taken once: a second call returns `None`.
    fn take_speculative_runs(&self) -> Option<crate::parallel::SpeculativeRuns> {
        None
    }
}

impl<T: PreState + ?Sized> PreState for &T {
    fn has_storage_ref(&self, address: Address) -> Result<bool, StateError> {
        (**self).has_storage_ref(address)
    }

    fn resident_account(&self, address: Address) -> Option<Option<PreAccount>> {
        (**self).resident_account(address)
    }

    fn resident_storage(&self, address: Address, index: U256) -> Option<U256> {
        (**self).resident_storage(address, index)
    }

    fn take_speculative_runs(&self) -> Option<crate::parallel::SpeculativeRuns> {
        (**self).take_speculative_runs()
    }
}

/// A state revm executes over that can also answer the EIP-7610 question
/// for the state the block has reached (see [`crate::CreateCollisionGuard`]).
pub trait CollisionState: Database<Error = StateError> {
    /// Whether `address` has storage now.
    fn has_storage(&mut self, address: Address) -> Result<bool, StateError>;
}

/// Turns stored code into revm bytecode (jump table analysed once per load).
pub(crate) fn bytecode(code: Bytes) -> Bytecode {
    match Bytecode::new_raw_checked(code.clone()) {
        Ok(bytecode) => bytecode,
        // An 0xEF01-prefixed blob that is not a valid EIP-7702 designator is
        // plain legacy code (it can only exist from a genesis alloc).
        Err(_) => Bytecode::new_legacy(code),
    }
}

/// Runs `batch` keeping its nodes apart, then adds them to `ahead`: the
/// lock is held only for the merge, so batches and cache probes that run
/// beside this one (a prefetch reads its senders while it discovers) never
/// wait for it.
fn keeping_apart<T>(
    ahead: &Mutex<ReadAhead>,
    batch: impl FnOnce(&mut ReadAhead) -> wake_triedb::Result<T>,
) -> wake_triedb::Result<T> {
    let mut kept = ReadAhead::new();
    let out = batch(&mut kept)?;
    ahead.lock().absorb(kept);
    Ok(out)
}

/// A read-only view of one triedb version, for revm, with the diffs of
/// blocks executed after it but not yet committed on top (none by default;
/// see [`crate::pending`]).
#[derive(Clone, Copy)]
pub struct SnapshotState<'a> {
    snapshot: &'a Snapshot,
    pending: &'a Pending,
    hashes: &'a dyn BlockHashes,
    /// Where batch reads keep the nodes they walk, for the block's commit.
    ahead: Option<&'a Mutex<ReadAhead>>,
}

impl<'a> SnapshotState<'a> {
    pub fn new(snapshot: &'a Snapshot, hashes: &'a dyn BlockHashes) -> Self {
        SnapshotState { snapshot, pending: &[], hashes, ahead: None }
    }

    /// This view, with its batch reads (a block's prefetch) keeping the
    /// nodes they walk in `ahead`, for the block's commit to walk instead
    /// of reading them again ([`wake_triedb::TrieDb::commit_ahead`]).
    pub fn reading_ahead(self, ahead: &'a Mutex<ReadAhead>) -> Self {
        SnapshotState { ahead: Some(ahead), ..self }
    }

    /// The committed account if cached (see [`Snapshot::account_if_cached`]).
    fn account_if_cached(&self, address: &Address) -> Option<Option<Account>> {
        let mut ahead = self.ahead.map(|ahead| ahead.lock());
        self.snapshot.account_if_cached(address, ahead.as_deref_mut()).ok()?
    }

    /// Accounts and slots of the snapshot in one batch (see
    /// [`Snapshot::read_batch`]), kept for the commit when reading ahead.
    fn snapshot_both(
        &self,
        addresses: &[Address],
        slots: &[(Address, B256)],
    ) -> Result<(Vec<Option<PreAccount>>, Vec<U256>), StateError> {
        let (accounts, values) = match self.ahead {
            Some(ahead) => {
                keeping_apart(ahead, |kept| self.snapshot.read_batch_ahead(addresses, slots, kept))?
            }
            None => Snapshot::read_batch(self.snapshot, addresses, slots)?,
        };
        Ok((accounts.into_iter().map(|a| a.map(pre_account)).collect(), values))
    }

    /// `snapshot` with `pending` (oldest first, the first one of the
    /// version right after the snapshot's) applied on top.
    pub fn with_pending(
        snapshot: &'a Snapshot,
        pending: &'a Pending,
        hashes: &'a dyn BlockHashes,
    ) -> Self {
        debug_assert!(
            pending.iter().zip(snapshot.version() + 1..).all(|(diff, h)| diff.height() == h),
            "pending diffs must follow the snapshot's version without a gap"
        );
        SnapshotState { snapshot, pending, hashes, ahead: None }
    }
}

impl PreState for SnapshotState<'_> {
    fn has_storage_ref(&self, address: Address) -> Result<bool, StateError> {
        if let Some(known) = pending::has_storage(self.pending, &address) {
            return Ok(known);
        }
        Ok(self.snapshot.account(&address)?.is_some_and(|acc| acc.storage_root != EMPTY_ROOT))
    }

    /// From the pending diffs, or from triedb's node cache without I/O
    /// (keeping the nodes walked for the commit when reading ahead, as a
    /// batch would). A read that fails is not resident (the full read will
    /// report it).
    fn resident_account(&self, address: Address) -> Option<Option<PreAccount>> {
        match pending::account(self.pending, &address) {
            Some(None) => return Some(None),
            Some(Some(info)) => {
                let has_storage = match pending::has_storage(self.pending, &address) {
                    Some(known) => known,
                    None => self
                        .account_if_cached(&address)?
                        .is_some_and(|acc| acc.storage_root != EMPTY_ROOT),
                };
                return Some(Some(PreAccount { info, has_storage }));
            }
            None => {}
        }
        let account = self.account_if_cached(&address)?;
        Some(account.map(pre_account))
    }

    fn resident_storage(&self, address: Address, index: U256) -> Option<U256> {
        let slot = B256::from(index);
        if let Some(value) = pending::storage(self.pending, &address, &slot) {
            return Some(value);
        }
        let mut ahead = self.ahead.map(|ahead| ahead.lock());
        self.snapshot.storage_if_cached(&address, &slot, ahead.as_deref_mut()).ok()?
    }
}

impl DatabaseRef for SnapshotState<'_> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<RevmAccountInfo>, StateError> {
        if let Some(account) = pending::account(self.pending, &address) {
            return Ok(account.map(to_revm));
        }
        Ok(self.snapshot.account(&address)?.map(|acc| to_revm(acc.info())))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        if code_hash == KECCAK_EMPTY || code_hash.is_zero() {
            return Ok(Bytecode::default());
        }
        if let Some(code) = pending::code(self.pending, &code_hash) {
            return Ok(bytecode(code));
        }
        match self.snapshot.code(&code_hash)? {
            Some(code) => Ok(bytecode(code)),
            None => Err(wake_triedb::Error::InvalidValue("code hash without code").into()),
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        let slot = B256::from(index);
        if let Some(value) = pending::storage(self.pending, &address, &slot) {
            return Ok(value);
        }
        Ok(self.snapshot.storage(&address, &slot)?)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        Ok(self.hashes.block_hash(number).unwrap_or_default())
    }
}

/// An account as a batch read returns it: its fields, and whether it has
/// any storage (a storage trie that is not empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreAccount {
    pub info: AccountInfo,
    pub has_storage: bool,
}

/// Many reads of one state at once (triedb overlaps them in its io_uring
/// ring): what [`crate::Prefetched`] loads through.
pub trait BatchRead {
    /// The accounts, in order (`None`: absent).
    fn accounts_batch(&self, addresses: &[Address]) -> Result<Vec<Option<PreAccount>>, StateError>;
    /// The slots (unhashed keys), in order.
    fn storage_batch(&self, slots: &[(Address, B256)]) -> Result<Vec<U256>, StateError>;
    /// Both at once. triedb overrides this with one batch, so that the
    /// device sees one stream of reads; by default, two batches.
    fn read_batch(
        &self,
        addresses: &[Address],
        slots: &[(Address, B256)],
    ) -> Result<(Vec<Option<PreAccount>>, Vec<U256>), StateError> {
        Ok((self.accounts_batch(addresses)?, self.storage_batch(slots)?))
    }
}

fn pre_account(account: Account) -> PreAccount {
    PreAccount { info: account.info(), has_storage: account.storage_root != EMPTY_ROOT }
}

impl BatchRead for Snapshot {
    fn accounts_batch(&self, addresses: &[Address]) -> Result<Vec<Option<PreAccount>>, StateError> {
        Ok(self.accounts(addresses)?.into_iter().map(|account| account.map(pre_account)).collect())
    }

    fn storage_batch(&self, slots: &[(Address, B256)]) -> Result<Vec<U256>, StateError> {
        Ok(Snapshot::storage_batch(self, slots)?)
    }

    fn read_batch(
        &self,
        addresses: &[Address],
        slots: &[(Address, B256)],
    ) -> Result<(Vec<Option<PreAccount>>, Vec<U256>), StateError> {
        let (accounts, values) = Snapshot::read_batch(self, addresses, slots)?;
        Ok((accounts.into_iter().map(|a| a.map(pre_account)).collect(), values))
    }
}

/// The pending diffs answer what they name; the rest is one batch of the
/// snapshot.
impl BatchRead for SnapshotState<'_> {
    fn accounts_batch(&self, addresses: &[Address]) -> Result<Vec<Option<PreAccount>>, StateError> {
        Ok(self.read_batch(addresses, &[])?.0)
    }

    fn storage_batch(&self, slots: &[(Address, B256)]) -> Result<Vec<U256>, StateError> {
        Ok(self.read_batch(&[], slots)?.1)
    }

    fn read_batch(
        &self,
        addresses: &[Address],
        slots: &[(Address, B256)],
    ) -> Result<(Vec<Option<PreAccount>>, Vec<U256>), StateError> {
        if self.pending.is_empty() {
            return self.snapshot_both(addresses, slots);
        }
        let (mut accounts, missing_accounts) = self.pending_accounts(addresses)?;
        let (mut values, missing_slots) = self.pending_slots(slots);
        let wanted_accounts: Vec<Address> =
            missing_accounts.iter().map(|&i| addresses[i]).collect();
        let wanted_slots: Vec<(Address, B256)> = missing_slots.iter().map(|&i| slots[i]).collect();
        let (read_accounts, read_values) = self.snapshot_both(&wanted_accounts, &wanted_slots)?;
        for (i, account) in missing_accounts.into_iter().zip(read_accounts) {
            accounts[i] = account;
        }
        for (i, value) in missing_slots.into_iter().zip(read_values) {
            values[i] = value;
        }
        Ok((accounts, values))
    }
}

impl SnapshotState<'_> {
    /// The accounts the pending diffs answer, and the indices of the rest.
    fn pending_accounts(
        &self,
        addresses: &[Address],
    ) -> Result<(Vec<Option<PreAccount>>, Vec<usize>), StateError> {
        let mut out = vec![None; addresses.len()];
        let mut missing = Vec::new();
        for (i, address) in addresses.iter().enumerate() {
            match pending::account(self.pending, address) {
                Some(None) => {}
                Some(Some(info)) => {
                    let has_storage = match pending::has_storage(self.pending, address) {
                        Some(known) => known,
                        None => self.has_storage_ref(*address)?,
                    };
                    out[i] = Some(PreAccount { info, has_storage });
                }
                None => missing.push(i),
            }
        }
        Ok((out, missing))
    }

    /// The slots the pending diffs answer, and the indices of the rest.
    fn pending_slots(&self, slots: &[(Address, B256)]) -> (Vec<U256>, Vec<usize>) {
        let mut out = vec![U256::ZERO; slots.len()];
        let mut missing = Vec::new();
        for (i, (address, slot)) in slots.iter().enumerate() {
            match pending::storage(self.pending, address, slot) {
                Some(value) => out[i] = value,
                None => missing.push(i),
            }
        }
        (out, missing)
    }
}

/// One account as the block has left it so far.
#[derive(Clone, Debug, Default)]
struct Written {
    /// `None`: the account does not exist (destroyed in this block).
    info: Option<AccountInfo>,
    /// The storage below must not be read (self-destruct or re-creation).
    storage_wiped: bool,
    /// Slots written in this block (zero = cleared).
    storage: HashMap<U256, U256>,
}

/// The in-block overlay over a [`DatabaseRef`] view.
pub struct BlockState<D> {
    base: D,
    /// State as the executed transactions have left it.
    written: HashMap<Address, Written>,
    /// Reads from `base`, so a block reads each item at most once.
    accounts_read: HashMap<Address, Option<RevmAccountInfo>>,
    storage_read: HashMap<(Address, U256), U256>,
    has_storage_read: HashMap<Address, bool>,
    code: HashMap<B256, Bytecode>,
    /// Code deployed in this block, in deployment order, and its hashes.
    new_code: Vec<Bytes>,
    new_code_hashes: HashSet<B256>,
}

impl<D: PreState> BlockState<D> {
    pub fn new(base: D) -> Self {
        BlockState {
            base,
            written: HashMap::default(),
            accounts_read: HashMap::default(),
            storage_read: HashMap::default(),
            has_storage_read: HashMap::default(),
            code: HashMap::default(),
            new_code: Vec::new(),
            new_code_hashes: HashSet::default(),
        }
    }

    /// The account as the block has left it, if the block wrote it
    /// (`Some(None)`: destroyed). `None`: read the view below.
    pub(crate) fn peek_account(&self, address: Address) -> Option<Option<AccountInfo>> {
        self.written.get(&address).map(|written| written.info)
    }

    /// The slot as the block has left it, if the block wrote it or wiped
    /// the account's storage. `None`: read the view below.
    pub(crate) fn peek_storage(&self, address: Address, index: U256) -> Option<U256> {
        let written = self.written.get(&address)?;
        match written.storage.get(&index) {
            Some(value) => Some(*value),
            None => written.storage_wiped.then_some(U256::ZERO),
        }
    }

    /// Whether the account has storage, if the block's writes decide it
    /// (see [`CollisionState::has_storage`]). `None`: ask the view below.
    pub(crate) fn peek_has_storage(&self, address: Address) -> Option<bool> {
        let written = self.written.get(&address)?;
        if written.storage.values().any(|v| !v.is_zero()) {
            return Some(true);
        }
        written.storage_wiped.then_some(false)
    }

    /// Code deployed in this block or already loaded through this overlay.
    pub(crate) fn peek_code(&self, code_hash: &B256) -> Option<Bytecode> {
        self.code.get(code_hash).cloned()
    }

    /// Credits `amount` wei to `address`, creating it when missing
    /// (withdrawals, block and ommer rewards). A zero amount does nothing.
    pub fn increment_balance(&mut self, address: Address, amount: U256) -> Result<(), StateError> {
        if amount.is_zero() {
            return Ok(());
        }
        let current = self.basic(address)?;
        let mut info = current.map(|i| to_triedb(&i)).unwrap_or_default();
        info.balance = info.balance.saturating_add(amount);
        let entry = self.written.entry(address).or_default();
        entry.info = Some(info);
        Ok(())
    }

    /// Credits a transaction's fee to the fee recipient as revm's
    /// `reward_beneficiary` then the commit of its state would: the account
    /// is touched and credited (left as it was if the sum overflows), and
    /// removed with its storage when that leaves it empty (EIP-161; the
    /// parallel executor, the only caller, runs Byzantium and later).
    pub(crate) fn credit_fee(&mut self, address: Address, fee: U256) -> Result<(), StateError> {
        let current = match self.peek_account(address) {
            Some(written) => written,
            None => self.basic(address)?.map(|info| to_triedb(&info)),
        };
        let mut info = current.unwrap_or_default();
        if let Some(balance) = info.balance.checked_add(fee) {
            info.balance = balance;
        }
        let entry = self.written.entry(address).or_default();
        if to_revm(info).is_empty() {
            entry.info = None;
            entry.storage_wiped = true;
            entry.storage.clear();
        } else {
            entry.info = Some(info);
        }
        Ok(())
    }

    /// Folds one transaction's (or system call's) final revm state into the
    /// overlay, with revm's commit rules: untouched accounts are ignored,
    /// self-destructed ones are removed with their storage, created ones
    /// get fresh storage, and touched empty ones are removed (EIP-161; revm
    /// has already normalised pre-Spurious-Dragon state so this holds).
    pub fn commit_tx(&mut self, state: EvmState) {
        for (address, account) in state {
            if !account.is_touched() {
                continue;
            }
            if account.is_selfdestructed() || (account.is_empty() && !account.is_created()) {
                let entry = self.written.entry(address).or_default();
                entry.info = None;
                entry.storage_wiped = true;
                entry.storage.clear();
                continue;
            }
            // Code is stored when a contract is created with it (once per
            // block; storing code that triedb already has is harmless). A
            // rule of the transaction alone, so every executor agrees on it.
            if account.is_created()
                && account.info.code_hash != KECCAK_EMPTY
                && let Some(code) = &account.info.code
                && self.new_code_hashes.insert(account.info.code_hash)
            {
                self.new_code.push(code.original_bytes());
                self.code.insert(account.info.code_hash, code.clone());
            }
            let entry = self.written.entry(address).or_default();
            if account.is_created() {
                entry.storage_wiped = true;
                entry.storage.clear();
            }
            entry.info = Some(to_triedb(&account.info));
            for (slot, value) in account.storage.iter() {
                if value.is_changed() || account.is_created() {
                    entry.storage.insert(*slot, value.present_value);
                }
            }
        }
    }

    /// The block's state diff, for `TrieDb::commit`.
    pub fn into_updates(self) -> StateUpdates {
        self.updates()
    }

    /// The diff of everything executed so far (before Byzantium, a receipt
    /// carries the state root after its transaction: commit this to get it).
    pub fn updates(&self) -> StateUpdates {
        // Sorted first: a BTreeMap built from sorted items is built in
        // one pass, where inserting them one by one searches the tree
        // for each (half the cost of this function on a 2,000-transfer block).
        let mut accounts: Vec<(Address, AccountUpdate)> = self
            .written
            .iter()
            .map(|(address, written)| {
                let update = match written.info {
                    None => AccountUpdate::Delete,
                    Some(info) => {
                        let mut storage: Vec<(B256, U256)> = written
                            .storage
                            .iter()
                            .filter(|(_, v)| !(written.storage_wiped && v.is_zero()))
                            .map(|(k, v)| (B256::from(*k), *v))
                            .collect();
                        storage.sort_unstable_by_key(|(slot, _)| *slot);
                        AccountUpdate::Set {
                            info,
                            wipe_storage: written.storage_wiped,
                            storage: storage.into_iter().collect(),
                        }
                    }
                };
                (*address, update)
            })
            .collect();
        accounts.sort_unstable_by_key(|(address, _)| *address);
        StateUpdates { accounts: accounts.into_iter().collect(), codes: self.new_code.clone() }
    }
}

impl<D: PreState> CollisionState for BlockState<D> {
    /// Slots cleared in this block are not tracked down to an empty trie:
    /// an account that can be created over (no code, nonce 0) never ran
    /// code that could clear them.
    fn has_storage(&mut self, address: Address) -> Result<bool, StateError> {
        if let Some(known) = self.peek_has_storage(address) {
            return Ok(known);
        }
        if let Some(&known) = self.has_storage_read.get(&address) {
            return Ok(known);
        }
        let known = self.base.has_storage_ref(address)?;
        self.has_storage_read.insert(address, known);
        Ok(known)
    }
}

/// An account as revm sees it; its code is loaded on demand through
/// `code_by_hash`.
pub(crate) fn to_revm(info: AccountInfo) -> RevmAccountInfo {
    RevmAccountInfo {
        balance: info.balance,
        nonce: info.nonce,
        code_hash: info.code_hash,
        code: None,
        ..Default::default()
    }
}

pub(crate) fn to_triedb(info: &RevmAccountInfo) -> AccountInfo {
    AccountInfo { nonce: info.nonce, balance: info.balance, code_hash: info.code_hash }
}

impl<D: PreState> Database for BlockState<D> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<RevmAccountInfo>, StateError> {
        if let Some(written) = self.written.get(&address) {
            return Ok(written.info.map(to_revm));
        }
        if let Some(read) = self.accounts_read.get(&address) {
            return Ok(read.clone());
        }
        let read = self.base.basic_ref(address)?;
        self.accounts_read.insert(address, read.clone());
        Ok(read)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, StateError> {
        if let Some(code) = self.code.get(&code_hash) {
            return Ok(code.clone());
        }
        let code = self.base.code_by_hash_ref(code_hash)?;
        self.code.insert(code_hash, code.clone());
        Ok(code)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, StateError> {
        if let Some(written) = self.written.get(&address) {
            if let Some(value) = written.storage.get(&index) {
                return Ok(*value);
            }
            if written.storage_wiped {
                return Ok(U256::ZERO);
            }
        }
        if let Some(value) = self.storage_read.get(&(address, index)) {
            return Ok(*value);
        }
        let value = self.base.storage_ref(address, index)?;
        self.storage_read.insert((address, index), value);
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, StateError> {
        self.base.block_hash_ref(number)
    }
}
