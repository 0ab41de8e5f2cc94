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
use crate::parallel::{DiscoveryEnv, Guess, Missed, Round, SpeculativeRuns};
use crate::spec::ChainSpec;
use crate::state::{BatchRead, PreAccount, PreState, StreamedRead, to_revm};
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

/// The second round of the guessing prefetch runs transactions whose
/// reads have arrived in runs of at least this many while reads are still
/// in flight (a run has a fixed cost: an EVM and a view per thread).
pub const READY_RUN_MIN: usize = 128;

/// Which stream of the guessing prefetch a value comes from.
#[derive(Clone, Copy, Debug)]
enum Source {
    Senders,
    Revealed,
}

/// What the second round of the guessing prefetch waits for: the keys the
/// guessed round's transactions missed, and for each key the transactions
/// waiting on it.
struct Plan {
    /// The senders' stream's accounts, in its order.
    senders: Vec<Address>,
    /// Accounts to read beyond the senders.
    others: Vec<Address>,
    /// Slots to read (named ones first).
    slots: Vec<(Address, B256)>,
    /// By key: the transactions (by their place in `txs`) waiting on it.
    on_sender: Vec<Vec<usize>>,
    on_other: Vec<Vec<usize>>,
    on_slot: Vec<Vec<usize>>,
    /// By transaction: its index in the block and how many keys it still
    /// waits for.
    txs: Vec<(usize, usize)>,
    /// Transactions with nothing left to wait for, not yet run.
    ready: Vec<usize>,
    /// Values expected from both streams, and received.
    expected: usize,
    received: usize,
}

impl Plan {
    /// The keys `missed` names that are not loaded in `this`: a sender is
    /// read by the senders' stream (`senders`, sorted), the rest by the
    /// second stream; slots of accounts known to have no storage are not
    /// read (zero).
    fn new<D>(
        this: &Prefetched<D>,
        missed: &[Missed],
        senders: &[Address],
        named: BTreeSet<(Address, B256)>,
    ) -> Plan {
        let may_have_storage = |address: &Address| {
            this.accounts.get(address).is_none_or(|a| a.is_some_and(|a| a.has_storage))
        };
        let mut slots: Vec<(Address, B256)> =
            named.into_iter().filter(|(address, _)| may_have_storage(address)).collect();
        let mut slot_of: HashMap<(Address, B256), usize> =
            slots.iter().enumerate().map(|(k, key)| (*key, k)).collect();
        let mut others = Vec::new();
        let mut other_of: HashMap<Address, usize> = HashMap::default();
        let mut plan = Plan {
            senders: senders.to_vec(),
            others: Vec::new(),
            slots: Vec::new(),
            on_sender: vec![Vec::new(); senders.len()],
            on_other: Vec::new(),
            on_slot: vec![Vec::new(); slots.len()],
            txs: Vec::with_capacity(missed.len()),
            ready: Vec::new(),
            expected: 0,
            received: 0,
        };
        for missed in missed {
            let at = plan.txs.len();
            let mut waits = 0;
            for address in &missed.accounts {
                if let Ok(k) = senders.binary_search(address) {
                    plan.on_sender[k].push(at);
                } else if !this.accounts.contains_key(address) {
                    let k = *other_of.entry(*address).or_insert_with(|| {
                        others.push(*address);
                        plan.on_other.push(Vec::new());
                        others.len() - 1
                    });
                    plan.on_other[k].push(at);
                } else {
                    continue;
                }
                waits += 1;
            }
            for &(address, index) in &missed.slots {
                let key = (address, B256::from(index));
                if !may_have_storage(&address) {
                    continue;
                }
                let k = *slot_of.entry(key).or_insert_with(|| {
                    slots.push(key);
                    plan.on_slot.push(Vec::new());
                    slots.len() - 1
                });
                plan.on_slot[k].push(at);
                waits += 1;
            }
            plan.txs.push((missed.index, waits));
            if waits == 0 {
                plan.ready.push(missed.index);
            }
        }
        plan.expected = senders.len() + others.len() + slots.len();
        plan.others = others;
        plan.slots = slots;
        plan
    }

    /// Loads one value into `this`, and moves the transactions it
    /// completes to `ready`.
    fn arrived<D>(
        &mut self,
        this: &mut Prefetched<D>,
        source: Source,
        read: StreamedRead,
        ready: &mut Vec<usize>,
    ) {
        self.received += 1;
        let waiting = match (source, read) {
            (Source::Senders, StreamedRead::Account(k, account)) => {
                // The senders' stream asks for the senders in order.
                this.accounts.insert(self.senders[k], account);
                std::mem::take(&mut self.on_sender[k])
            }
            (Source::Revealed, StreamedRead::Account(k, account)) => {
                this.accounts.insert(self.others[k], account);
                std::mem::take(&mut self.on_other[k])
            }
            (Source::Revealed, StreamedRead::Slot(k, value)) => {
                let (address, key) = self.slots[k];
                this.slots.insert((address, U256::from_be_bytes(key.0)), value);
                std::mem::take(&mut self.on_slot[k])
            }
            (Source::Senders, StreamedRead::Slot(..)) => Vec::new(),
        };
        for at in waiting {
            let (index, waits) = &mut self.txs[at];
            *waits -= 1;
            if *waits == 0 {
                ready.push(*index);
            }
        }
    }

    /// Transactions still waiting on something.
    fn waiting_txs(&self) -> impl Iterator<Item = usize> + '_ {
        self.txs.iter().filter(|(_, waits)| *waits > 0).map(|(index, _)| *index)
    }
}

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
    let slots: Vec<(Address, B256)> = slots
        .into_iter()
        .filter(|(address, _)| {
            accounts.get(address).is_none_or(|a| a.is_some_and(|a| a.has_storage))
        })
        .collect();
    let values = snapshot.storage_batch(&slots)?;
    Ok(slots
        .into_iter()
        .zip(values)
        .map(|((address, key), value)| ((address, U256::from_be_bytes(key.0)), value)))
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
    /// first; then the senders are streamed from the device while a
    /// discovery round runs every transaction with its sender guessed where
    /// it is not loaded (an account that can pay), revealing the slots the
    /// calls touch, and those slots are streamed beside the senders' tail.
    /// Each transaction runs again (the guessed runs are never kept) as soon
    /// as what it missed has arrived, while the rest is still being read;
    /// later rounds, if any, go as in `discover`. Where discovery finds
    /// slots to read (contract calls), that saves a batch, and neither
    /// round costs time of its own while reads last.
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
    /// The device is busy from the start and the runs hide behind reads
    /// ([`workers::beside`](crate::workers::beside) streams on a helper
    /// while this thread runs transactions; values come back over a
    /// channel, at most one message per key):
    /// 1. the senders are known before any run, so their stream starts
    ///    first, and the guessed round runs beside it;
    /// 2. what the round revealed is streamed beside the senders' tail, and
    ///    each transaction runs again once all it missed is loaded
    ///    ([`Prefetched::second_round`]), in runs of at least
    ///    [`READY_RUN_MIN`] while reads are in flight;
    /// 3. what the second round missed, if anything, is read and run as in
    ///    [`discover`](Self::discover).
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
        // Both streams send what they read here; at most one message per
        // key asked for.
        let (to_caller, arrived) = std::sync::mpsc::channel::<(Source, StreamedRead)>();
        let to_caller_revealed = to_caller.clone();
        let senders_asked = &senders;
        let (senders_read, second) = crate::workers::beside(
            move || {
                let to_caller = to_caller;
                snapshot.read_streamed(senders_asked, &[], &mut |read| {
                    // The caller may have stopped (an error): nothing to do.
                    let _ = to_caller.send((Source::Senders, read));
                })
            },
            || -> Result<_, StateError> {
                let round = runs.discover_round(env, &this, &all, Guess::Senders)?;
                guessed = Instant::now();
                if !round.accounts.is_empty() || !round.slots.is_empty() {
                    this.rounds += 1;
                }
                this.take_round(round.codes, round.slots_read);
                let mut plan = Plan::new(&this, &round.missed, &senders, named_slots);
                let (others, slots) = (&plan.others.clone(), &plan.slots.clone());
                let to_caller = to_caller_revealed;
                let (revealed_read, second) = crate::workers::beside(
                    move || {
                        snapshot.read_streamed(others, slots, &mut |read| {
                            let _ = to_caller.send((Source::Revealed, read));
                        })
                    },
                    || this.second_round(env, &mut runs, &mut plan, &arrived, rounds > 1),
                );
                revealed_read?;
                second
            },
        );
        let read = Instant::now();
        senders_read?;
        let second = second?;
        let to_run = second.again.len();
        this.load_missed(snapshot, second.accounts, second.slots)?;
        this.discover_from(env, runs, second.again, snapshot, rounds.saturating_sub(2))?;
        let ms = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1e3;
        tracing::trace!(
            called_ms = ms(started, called_read),
            guessed_round_ms = ms(called_read, guessed),
            until_read_ms = ms(guessed, read),
            later_rounds_ms = ms(read, Instant::now()),
            to_run,
            "guessing prefetch"
        );
        Ok(this)
    }

    /// The second round of [`guessing`](Self::guessing): what the
    /// streams send arrives on `arrived` and is loaded, and each
    /// transaction runs again (over what is loaded) once all it missed is
    /// in, in runs of at least [`READY_RUN_MIN`] transactions while reads
    /// are in flight. Without `run` (one round in all), nothing runs: the
    /// transactions are left to run again. Returns what the runs missed.
    fn second_round(
        &mut self,
        env: &DiscoveryEnv<'_>,
        runs: &mut SpeculativeRuns,
        plan: &mut Plan,
        arrived: &std::sync::mpsc::Receiver<(Source, StreamedRead)>,
        run: bool,
    ) -> Result<Round, StateError>
    where
        D: Sync,
    {
        let mut second = Round::default();
        let mut ready = std::mem::take(&mut plan.ready);
        let mut go = |this: &mut Self, ready: &mut Vec<usize>| -> Result<(), StateError> {
            ready.sort_unstable();
            let todo = std::mem::take(ready);
            if !run {
                second.again.extend(todo);
                return Ok(());
            }
            let round = runs.discover_round(env, &*this, &todo, Guess::Absent)?;
            this.take_round(round.codes, round.slots_read);
            second.again.extend(round.again);
            second.accounts.extend(round.accounts);
            second.slots.extend(round.slots);
            Ok(())
        };
        while plan.received < plan.expected {
            // Take what has arrived; wait only with too little to run.
            let item = match arrived.try_recv() {
                Ok(item) => Some(item),
                Err(_) if ready.len() >= READY_RUN_MIN => None,
                Err(_) => match arrived.recv() {
                    Ok(item) => Some(item),
                    // Both streams ended short: an error, which they return.
                    Err(_) => break,
                },
            };
            match item {
                Some((source, read)) => plan.arrived(self, source, read, &mut ready),
                None => go(self, &mut ready)?,
            }
        }
        // Left waiting (a stream ended short) or ready: run them all.
        ready.extend(plan.waiting_txs());
        if !ready.is_empty() {
            go(self, &mut ready)?;
        }
        second.again.sort_unstable();
        Ok(second)
    }

    /// Reads what a round missed (accounts in one batch, then the slots of
    /// those that may have storage), counting the round; false when it
    /// missed nothing.
    fn load_missed(
        &mut self,
        snapshot: &impl BatchRead,
        accounts: BTreeSet<Address>,
        slots: BTreeSet<(Address, U256)>,
    ) -> Result<bool, StateError> {
        if accounts.is_empty() && slots.is_empty() {
            return Ok(false);
        }
        self.rounds += 1;
        let addresses: Vec<Address> = accounts.into_iter().collect();
        let read = snapshot.accounts_batch(&addresses)?;
        self.accounts.extend(addresses.into_iter().zip(read));
        let slots = slots.into_iter().map(|(address, index)| (address, index.into()));
        let read = read_slots(snapshot, &self.accounts, slots)?;
        self.slots.extend(read);
        Ok(true)
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
            self.codes.extend(round.codes);
            for (slot, value) in round.slots_read {
                self.slots.entry(slot).or_insert(value);
            }
            if !self.load_missed(snapshot, round.accounts, round.slots)? {
                break;
            }
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
