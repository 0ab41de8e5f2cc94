//! The kill-test workload and an independent model of the state, shared by
//! the `triedb_crash_child` binary and the durability tests (`crash.rs`,
//! `faults.rs`, `compaction.rs`).
//!
//! The updates of version `v` are a pure function of `v` ([`updates_for`]),
//! so a child that resumes after a crash recommits exactly what was lost, and
//! the parent can replay versions `1..=v` into a [`Model`] whose roots come
//! from alloy-trie, not from triedb.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_trie::TrieAccount;
use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::OnceLock;
use wake_triedb::{Account, AccountInfo, AccountUpdate, Config, KECCAK_EMPTY, StateUpdates};

/// Accounts the kill-test workload draws from.
pub const POOL_ACCOUNTS: u64 = 5_000;
/// Accounts touched by one version of the kill-test workload.
pub const ACCOUNTS_PER_VERSION: usize = 200;
/// Storage slots per contract account are drawn from `0..SLOTS_PER_ACCOUNT`.
pub const SLOTS_PER_ACCOUNT: u64 = 40;
/// Chunk size of the kill-test database: small, so chunks fill and get reused.
pub const CHUNK_BYTES: u64 = 1 << 20;
/// Versions the kill-test database keeps readable.
pub const RETAIN_VERSIONS: u64 = 16;

/// The configuration both the child and the parent open the kill-test database with.
pub fn config(path: &Path) -> Config {
    let mut config = Config::new(path);
    config.chunk_bytes = CHUNK_BYTES;
    config.retain_versions = RETAIN_VERSIONS;
    config.cache_bytes = 16 << 20;
    config
}

/// How long [`open_waiting_for_lock`] waits for the previous holder's lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the database, retrying for up to [`LOCK_WAIT`] while it is
/// `Locked`. A process that held it may be dead and reaped and its
/// `flock` still held for some milliseconds: the kernel tears an io_uring
/// down (and drops the files it holds) asynchronously after the exit.
/// Returns the result and how long the lock kept it waiting.
pub fn open_waiting_for_lock(
    config: &Config,
) -> (wake_triedb::Result<wake_triedb::TrieDb>, std::time::Duration) {
    let started = std::time::Instant::now();
    let mut locked_for = std::time::Duration::ZERO;
    loop {
        match wake_triedb::TrieDb::open(config.clone()) {
            Err(wake_triedb::Error::Locked(_)) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                locked_for = started.elapsed();
            }
            result => return (result, locked_for),
        }
    }
}

/// Aborts the whole test process when a test runs past its limit, so a
/// hang in the code under test fails loudly instead of blocking CI.
/// Dropping the guard disarms it.
pub struct Watchdog {
    _disarm: std::sync::mpsc::Sender<()>,
    progress: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Watchdog {
    pub fn arm(test: &'static str, limit: std::time::Duration) -> Watchdog {
        let (disarm, disarmed) = std::sync::mpsc::channel::<()>();
        let progress = std::sync::Arc::new(std::sync::Mutex::new(String::from("starting")));
        let seen = std::sync::Arc::clone(&progress);
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                let at = seen.lock().map(|s| s.clone()).unwrap_or_default();
                eprintln!("{test}: still running after {limit:?} (at: {at}): aborting");
                std::process::abort();
            }
        });
        Watchdog { _disarm: disarm, progress }
    }

    /// What the test is doing, for the abort message.
    pub fn progress(&self, at: impl Into<String>) {
        if let Ok(mut progress) = self.progress.lock() {
            *progress = at.into();
        }
    }
}

/// SplitMix64: a tiny deterministic generator, stable across builds and
/// crate versions (the workload must not change under the parent's feet).
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for tests (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn u256(&mut self) -> U256 {
        U256::from_limbs([self.next_u64(), self.next_u64(), self.next_u64() >> 8, 0])
    }
}

/// The address of account number `index` of a pool.
pub fn address(index: u64) -> Address {
    Address::from_slice(&keccak256(index.to_be_bytes())[12..])
}

/// Storage slot number `index` (unhashed, big-endian).
pub fn slot(index: u64) -> B256 {
    B256::from(U256::from(index))
}

/// Contract code of account number `index` (pools give code to every tenth account).
pub fn code(index: u64) -> Bytes {
    let len = 16 + (index % 97) as usize;
    let mut bytes = Vec::with_capacity(len);
    let mut rng = SplitMix(index ^ 0xc0de);
    bytes.resize_with(len, || rng.next_u64() as u8);
    Bytes::from(bytes)
}

/// One block's updates over a pool of `pool` accounts touching `per_version`
/// of them, a pure function of `(seed, v)`.
///
/// Mix: ~3 % account deletes (with their storage), ~3 % storage wipes with
/// re-creation, every fourth account a contract with storage writes and
/// deletes (value zero), every tenth account has code.
pub fn updates(seed: u64, v: u64, pool: u64, per_version: usize) -> StateUpdates {
    let mut rng = SplitMix(seed ^ v.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut updates = StateUpdates::default();
    let mut code_indexes = Vec::new();
    // Bounded: at most 8 draws per wanted account (duplicates are rare).
    for _ in 0..per_version * 8 {
        if updates.accounts.len() >= per_version {
            break;
        }
        let index = rng.below(pool);
        let address = address(index);
        if updates.accounts.contains_key(&address) {
            continue;
        }
        let roll = rng.below(100);
        let update = if roll < 3 {
            AccountUpdate::Delete
        } else {
            let code_hash = if index.is_multiple_of(10) {
                code_indexes.push(index);
                keccak256(code(index))
            } else {
                KECCAK_EMPTY
            };
            let info = AccountInfo {
                nonce: v,
                // Never zero: no empty accounts.
                balance: U256::from(rng.next_u64() >> 1) + U256::from(1),
                code_hash,
            };
            let mut storage = BTreeMap::new();
            if index.is_multiple_of(4) {
                for _ in 0..rng.below(6) {
                    let key = slot(rng.below(SLOTS_PER_ACCOUNT));
                    let value = if rng.below(4) == 0 { U256::ZERO } else { rng.u256() };
                    storage.insert(key, value);
                }
            }
            AccountUpdate::Set { info, wipe_storage: roll < 6, storage }
        };
        updates.accounts.insert(address, update);
    }
    updates.codes = code_indexes.into_iter().map(code).collect();
    updates
}

/// The kill-test workload: the updates of version `v`.
pub fn updates_for(v: u64) -> StateUpdates {
    updates(0x6b11_7e57, v, POOL_ACCOUNTS, ACCOUNTS_PER_VERSION)
}

/// An in-memory model of the state, with roots computed by alloy-trie
/// (independently of triedb).
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub accounts: BTreeMap<Address, ModelAccount>,
    pub codes: HashMap<B256, Bytes>,
}

/// One account of a [`Model`].
#[derive(Clone, Debug, Default)]
pub struct ModelAccount {
    pub info: AccountInfo,
    pub storage: BTreeMap<B256, U256>,
    /// alloy-trie's root of `storage`, computed on demand, reset on change.
    storage_root: OnceLock<B256>,
}

impl ModelAccount {
    pub fn storage_root(&self) -> B256 {
        *self
            .storage_root
            .get_or_init(|| storage_root_unhashed(self.storage.iter().map(|(k, v)| (*k, *v))))
    }
}

impl Model {
    /// Applies one block's updates with the semantics documented on
    /// [`AccountUpdate`].
    pub fn apply(&mut self, updates: &StateUpdates) {
        for code in &updates.codes {
            self.codes.insert(keccak256(code), code.clone());
        }
        for (address, update) in &updates.accounts {
            match update {
                AccountUpdate::Delete => {
                    self.accounts.remove(address);
                }
                AccountUpdate::Set { info, wipe_storage, storage } => {
                    let entry = self.accounts.entry(*address).or_default();
                    entry.info = *info;
                    if *wipe_storage || !storage.is_empty() {
                        entry.storage_root = OnceLock::new();
                    }
                    if *wipe_storage {
                        entry.storage.clear();
                    }
                    for (key, value) in storage {
                        if value.is_zero() {
                            entry.storage.remove(key);
                        } else {
                            entry.storage.insert(*key, *value);
                        }
                    }
                }
            }
        }
    }

    /// The account as triedb should return it.
    pub fn account(&self, address: &Address) -> Option<Account> {
        let account = self.accounts.get(address)?;
        Some(Account {
            nonce: account.info.nonce,
            balance: account.info.balance,
            code_hash: account.info.code_hash,
            storage_root: account.storage_root(),
        })
    }

    pub fn storage(&self, address: &Address, key: &B256) -> U256 {
        self.accounts
            .get(address)
            .and_then(|account| account.storage.get(key).copied())
            .unwrap_or(U256::ZERO)
    }

    /// The state root, by alloy-trie.
    pub fn root(&self) -> B256 {
        state_root_unhashed(self.accounts.iter().map(|(address, account)| {
            let info = &account.info;
            let storage_root = account.storage_root();
            (*address, TrieAccount::new(info.nonce, info.balance, storage_root, info.code_hash))
        }))
    }
}
