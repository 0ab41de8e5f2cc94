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
//! transaction over what is loaded so far, with a view that never waits for
//! triedb (a read not loaded yet is noted and answered with a guess: an
//! absent account, a slot holding a large balance), then reads everything
//! noted in one batch, and runs again the transactions that missed
//! something, until none does. That turns the block's cold reads into a few
//! overlapped batches.
//!
//! The last run of each transaction, the one that read only loaded values,
//! is a run over the pre-state: what the parallel executor makes first
//! anyway. So it is kept ([`crate::SpeculativeRuns`]) and handed to the
//! parallel executor through [`PreState::take_speculative_runs`], which
//! validates it at the transaction's turn and commits it, or runs the
//! transaction again if an earlier one changed what it read. A
//! conflict-free block is then executed once, during the prefetch.

use crate::error::StateError;
use crate::parallel::{DiscoveryEnv, Guess, SpeculativeRuns};
use crate::spec::ChainSpec;
use crate::state::{BatchRead, PreAccount, PreState, to_revm};
use crate::tx::BlockTx;
use alloy_consensus::{Block, Transaction};
use alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
use alloy_primitives::{Address, B256, U256, map::HashMap};
use parking_lot::Mutex;
use revm::bytecode::Bytecode;
use revm::database::DatabaseRef;
use revm::state::AccountInfo as RevmAccountInfo;
use std::collections::BTreeSet;
use std::time::Instant;

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
    /// Discovery's final runs, until the parallel executor takes them.
    runs: Mutex<Option<SpeculativeRuns>>,
}

/// What a prefetch read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefetchStats {
    pub accounts: usize,
    pub slots: usize,
    /// Discovery rounds that found reads to load.
    pub discovery_rounds: usize,
}

/// [`Prefetched::fetch`] reads the called accounts ahead of the senders
/// only while they are at most one per this many senders.
pub const CALLED_SHARE_MAX: usize = 4;

/// Most discovery rounds [`Prefetched::discover`] runs.
pub const DISCOVERY_ROUNDS_MAX: usize = 4;

/// What `block` names that a transaction or the block's own state changes
/// will read: the senders, recipients, fee recipient, access lists,
/// withdrawal recipients and the EIP-4788 slots.
fn named(block: &Block<BlockTx>, senders: &[Address]) -> (Vec<Address>, BTreeSet<(Address, B256)>) {
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
    (addresses.into_iter().collect(), slots)
}

/// What `block` names ([`named`]), its accounts split by whether they
/// sign a transaction.
struct Named {
    signing: Vec<Address>,
    /// Called, paid or named in access lists, and not signing.
    called: Vec<Address>,
    slots: BTreeSet<(Address, B256)>,
}

fn named_split(block: &Block<BlockTx>, senders: &[Address]) -> Named {
    let (addresses, slots) = named(block, senders);
    let signers: std::collections::HashSet<Address> = senders.iter().copied().collect();
    let (signing, called) = addresses.into_iter().partition(|address| signers.contains(address));
    Named { signing, called, slots }
}

/// Reads `slots` in one batch, leaving out those of accounts known absent
/// or without storage (zero, without a read).
fn read_slots(
    snapshot: &impl BatchRead,
    accounts: &HashMap<Address, Option<PreAccount>>,
    slots: impl IntoIterator<Item = (Address, B256)>,
) -> Result<impl Iterator<Item = ((Address, U256), U256)>, StateError> {
    let slots = slots_to_read(accounts, slots);
    let values = snapshot.storage_batch(&slots)?;
    Ok(slot_values(slots, values))
}

/// `slots` less those of accounts known absent or without storage (zero).
fn slots_to_read(
    accounts: &HashMap<Address, Option<PreAccount>>,
    slots: impl IntoIterator<Item = (Address, B256)>,
) -> Vec<(Address, B256)> {
    slots
        .into_iter()
        .filter(|(address, _)| {
            accounts.get(address).is_none_or(|a| a.is_some_and(|a| a.has_storage))
        })
        .collect()
}

/// The slots read, keyed as the pre-state view asks for them.
fn slot_values(
    slots: Vec<(Address, B256)>,
    values: Vec<U256>,
) -> impl Iterator<Item = ((Address, U256), U256)> {
    slots
        .into_iter()
        .zip(values)
        .map(|((address, key), value)| ((address, U256::from_be_bytes(key.0)), value))
}

/// The accounts of `addresses` that `inner` holds in memory (looked up on
/// `threads` threads, without I/O), and the others, to read. On one thread
/// none: a walk of the cached levels before the batch would cost a cold
/// account twice.
fn resident_accounts<D: PreState + Sync>(
    inner: &D,
    addresses: Vec<Address>,
    threads: usize,
) -> (HashMap<Address, Option<PreAccount>>, Vec<Address>) {
    if threads <= 1 {
        return (HashMap::default(), addresses);
    }
    let part = addresses.len().div_ceil(threads).max(1);
    let resident: Vec<Option<Option<PreAccount>>> =
        crate::workers::map(addresses.chunks(part).collect(), |part| {
            part.iter().map(|a| inner.resident_account(*a)).collect::<Vec<_>>()
        })
        .into_iter()
        .flatten()
        .collect();
    let mut accounts: HashMap<Address, Option<PreAccount>> = HashMap::default();
    let mut missing = Vec::new();
    for (address, found) in addresses.into_iter().zip(resident) {
        match found {
            Some(account) => {
                accounts.insert(address, account);
            }
            None => missing.push(address),
        }
    }
    (accounts, missing)
}

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
        let (addresses, slots) = named(block, senders);
        let read = snapshot.accounts_batch(&addresses)?;
        let accounts = addresses.into_iter().zip(read).collect();
        Self::load_slots(inner, snapshot, accounts, slots)
    }

    /// [`load`](Self::load) on `threads` threads: the accounts `inner`
    /// holds in memory (its cache, without I/O) are read there, split
    /// across the threads, and only the others go into the batch. On one
    /// thread this is `load`: a walk of the cached levels before the batch
    /// would cost a cold account twice.
    pub fn load_on(
        inner: D,
        snapshot: &impl BatchRead,
        block: &Block<BlockTx>,
        senders: &[Address],
        threads: usize,
    ) -> Result<Self, StateError>
    where
        D: Sync,
    {
        let (addresses, slots) = named(block, senders);
        let (mut accounts, missing) = resident_accounts(&inner, addresses, threads);
        let read = snapshot.accounts_batch(&missing)?;
        accounts.extend(missing.into_iter().zip(read));
        Self::load_slots(inner, snapshot, accounts, slots)
    }

    /// The whole prefetch of `block`: [`load_on`](Self::load_on) and
    /// [`discover`](Self::discover) with one batch fewer. The accounts the
    /// transactions call or pay (what decides which code runs) are read
    /// first; then the senders' batch goes to the device while a discovery
    /// round runs every transaction with its sender guessed where it is not
    /// loaded (an account that can pay), revealing the slots the calls
    /// touch, and those slots are read beside the senders' tail. Discovery
    /// then goes on as in `discover` (the guessed runs are never kept: each
    /// runs again over what was read). Where discovery finds slots to read
    /// (contract calls), that saves a batch, and the round costs no time of
    /// its own while the senders' reads last.
    /// The first batch is a round trip of its own, worth it only while it
    /// is short: where the block calls or pays more than one account per
    /// [`CALLED_SHARE_MAX`] senders (plain transfers to many recipients),
    /// and with `rounds == 0`, this is `load_on` + `discover`.
    pub fn fetch(
        inner: D,
        snapshot: &(impl BatchRead + Sync),
        chain: &ChainSpec,
        block: &Block<BlockTx>,
        senders: &[Address],
        rounds: usize,
        threads: usize,
    ) -> Result<Self, StateError>
    where
        D: Sync,
    {
        let named = named_split(block, senders);
        if rounds > 0 && named.called.len() * CALLED_SHARE_MAX <= named.signing.len() {
            let env = DiscoveryEnv::new(chain, block, senders, threads);
            return Self::guessing(inner, snapshot, &env, named, rounds);
        }
        let mut this = Self::load_on(inner, snapshot, block, senders, threads)?;
        this.discover(chain, block, senders, snapshot, rounds, threads)?;
        Ok(this)
    }

    /// [`fetch`](Self::fetch) with the guessing round, whatever the block
    /// (at least one round).
    pub fn fetch_guessing(
        inner: D,
        snapshot: &(impl BatchRead + Sync),
        chain: &ChainSpec,
        block: &Block<BlockTx>,
        senders: &[Address],
        rounds: usize,
        threads: usize,
    ) -> Result<Self, StateError>
    where
        D: Sync,
    {
        let env = DiscoveryEnv::new(chain, block, senders, threads);
        Self::guessing(inner, snapshot, &env, named_split(block, senders), rounds)
    }

    /// The guessing prefetch of [`fetch`](Self::fetch), of what `named`
    /// holds (`env`'s block), with `rounds` discovery rounds in all.
    ///
    /// The senders are known before any run, so their batch goes to the
    /// device first, on a helper ([`workers::beside`](crate::workers::beside)),
    /// while this thread runs the guessed round and then reads what the
    /// round revealed: the device is busy from the start, and the round's
    /// computation hides behind the senders' reads instead of standing
    /// between two batches.
    fn guessing(
        inner: D,
        snapshot: &(impl BatchRead + Sync),
        env: &DiscoveryEnv<'_>,
        named: Named,
        rounds: usize,
    ) -> Result<Self, StateError>
    where
        D: Sync,
    {
        let Named { signing, called, slots: named_slots } = named;
        let threads = env.threads;
        let started = Instant::now();
        let (mut accounts, missing) = resident_accounts(&inner, called, threads);
        accounts.extend(missing.iter().copied().zip(snapshot.accounts_batch(&missing)?));
        let mut this = Prefetched {
            inner,
            accounts,
            slots: HashMap::default(),
            codes: HashMap::default(),
            rounds: 0,
            runs: Mutex::new(None),
        };
        // Senders already loaded (a sender that is also called) stay out;
        // those the cache holds are answered there by the batch itself.
        let senders: Vec<Address> =
            signing.into_iter().filter(|a| !this.accounts.contains_key(a)).collect();
        let mut runs = SpeculativeRuns::new(env.block);
        let all: Vec<usize> = (0..env.block.body.transactions.len()).collect();
        let called_read = Instant::now();
        let mut guessed = called_read;
        let (read_senders, revealed) = crate::workers::beside(
            || snapshot.accounts_batch(&senders),
            || -> Result<_, StateError> {
                let round = runs.discover_round(env, &this, &all, Guess::Senders)?;
                guessed = Instant::now();
                // What the round found beyond the senders, with the slots,
                // in one batch beside the senders' tail.
                let others: Vec<Address> = round
                    .accounts
                    .iter()
                    .filter(|a| {
                        !this.accounts.contains_key(*a) && senders.binary_search(*a).is_err()
                    })
                    .copied()
                    .collect();
                let revealed = round.slots.iter().map(|&(address, index)| (address, index.into()));
                let slots =
                    slots_to_read(&this.accounts, named_slots.iter().copied().chain(revealed));
                let (read_others, values) = snapshot.read_batch(&others, &slots)?;
                Ok((round, others, read_others, slots, values))
            },
        );
        let read = Instant::now();
        let (round, others, read_others, slots, values) = revealed?;
        this.accounts.extend(senders.into_iter().zip(read_senders?));
        this.accounts.extend(others.into_iter().zip(read_others));
        this.take_round(round.codes, round.slots_read);
        this.slots.extend(slot_values(slots, values));
        if !round.accounts.is_empty() || !round.slots.is_empty() {
            this.rounds += 1;
        }
        let again = round.again.len();
        this.discover_from(env, runs, round.again, snapshot, rounds.saturating_sub(1))?;
        let ms = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1e3;
        tracing::trace!(
            called_ms = ms(started, called_read),
            guessed_round_ms = ms(called_read, guessed),
            reads_after_round_ms = ms(guessed, read),
            later_rounds_ms = ms(read, Instant::now()),
            again,
            "guessing prefetch"
        );
        Ok(this)
    }

    /// Adds the code a round loaded and the slots its final runs read.
    fn take_round(
        &mut self,
        codes: HashMap<B256, Bytecode>,
        slots_read: Vec<((Address, U256), U256)>,
    ) {
        self.codes.extend(codes);
        for (slot, value) in slots_read {
            self.slots.entry(slot).or_insert(value);
        }
    }

    /// Reads the named slots of accounts that have storage, in one batch.
    fn load_slots(
        inner: D,
        snapshot: &impl BatchRead,
        accounts: HashMap<Address, Option<PreAccount>>,
        slots: BTreeSet<(Address, B256)>,
    ) -> Result<Self, StateError> {
        let slots = read_slots(snapshot, &accounts, slots)?.collect();
        Ok(Prefetched {
            inner,
            accounts,
            slots,
            codes: HashMap::default(),
            rounds: 0,
            runs: Mutex::new(None),
        })
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
    /// each, and runs again the transactions that missed something, while a
    /// round finds something, at most `rounds` times
    /// ([`DISCOVERY_ROUNDS_MAX`] at most). Code the runs need is read at
    /// once (a contract's code is needed to discover its slots). Each
    /// transaction's final run is kept for the parallel executor.
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
        let env = DiscoveryEnv::new(chain, block, senders, threads);
        let runs = SpeculativeRuns::new(block);
        let todo: Vec<usize> = (0..block.body.transactions.len()).collect();
        self.discover_from(&env, runs, todo, snapshot, rounds)
    }

    /// The rounds of [`discover`](Self::discover), from transactions `todo`
    /// with the runs `runs` kept so far.
    fn discover_from(
        &mut self,
        env: &DiscoveryEnv<'_>,
        mut runs: SpeculativeRuns,
        mut todo: Vec<usize>,
        snapshot: &impl BatchRead,
        rounds: usize,
    ) -> Result<(), StateError>
    where
        D: Sync,
    {
        for _ in 0..rounds.min(DISCOVERY_ROUNDS_MAX) {
            if todo.is_empty() {
                break;
            }
            let round = runs.discover_round(env, &*self, &todo, Guess::Absent)?;
            self.take_round(round.codes, round.slots_read);
            if round.accounts.is_empty() && round.slots.is_empty() {
                break;
            }
            self.rounds += 1;
            let addresses: Vec<Address> = round.accounts.into_iter().collect();
            let read = snapshot.accounts_batch(&addresses)?;
            self.accounts.extend(addresses.into_iter().zip(read));
            let slots = round.slots.into_iter().map(|(address, index)| (address, index.into()));
            let read = read_slots(snapshot, &self.accounts, slots)?;
            self.slots.extend(read);
            todo = round.again;
        }
        *self.runs.get_mut() = Some(runs);
        Ok(())
    }
}

impl<D: PreState> PreState for Prefetched<D> {
    fn has_storage_ref(&self, address: Address) -> Result<bool, StateError> {
        match self.accounts.get(&address) {
            Some(account) => Ok(account.is_some_and(|a| a.has_storage)),
            None => self.inner.has_storage_ref(address),
        }
    }

    fn resident_account(&self, address: Address) -> Option<Option<PreAccount>> {
        match self.accounts.get(&address) {
            Some(account) => Some(*account),
            None => self.inner.resident_account(address),
        }
    }

    fn resident_storage(&self, address: Address, index: U256) -> Option<U256> {
        if let Some(value) = self.slots.get(&(address, index)) {
            return Some(*value);
        }
        match self.accounts.get(&address) {
            // Absent, or without storage: zero.
            Some(None) => Some(U256::ZERO),
            Some(Some(a)) if !a.has_storage => Some(U256::ZERO),
            _ => self.inner.resident_storage(address, index),
        }
    }

    fn take_speculative_runs(&self) -> Option<SpeculativeRuns> {
        self.runs.lock().take()
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
