//! Compaction keeps the file bounded under steady load.
//!
//! A fixed set of accounts (a fifth of them contracts with storage) is
//! created in block 1, then every block rewrites a random part of them (a
//! tenth by default). With
//! `retain_versions = 4` almost everything ever written becomes garbage; the
//! file must level off at a size bounded by the live data, not grow with the
//! bytes written. The bound asserted at the end is
//!
//! ```text
//! file_bytes <= 3 × live_bytes + 2 × retain_versions × bytes_written_per_block + 8 × chunk_bytes
//! ```
//!
//! where `bytes_written_per_block` is the mean over the last third of the run,
//! measured by a counting [`Storage`] wrapper under the database, and
//! `live_bytes` is `stats().live_bytes` at the end. The test also checks that
//! the run wrote many times that bound (so a database that never reclaims
//! space could not pass), that the file grows by less than 10 % over the last
//! third, and that every retained version reads back the model's values and
//! roots.
//!
//! Compaction leaves the retained history alone (its nodes are young and
//! mostly live; the versions pin them whatever compaction does), so the
//! file holds that history twice: in the window compaction has not reached
//! and pinned below the floor (ARCHITECTURE.md, triedb). A second run
//! retains 64 versions, so the history outweighs the live data many times,
//! as in a small devnet with the default 256.

#[allow(dead_code)]
use alloy_primitives::{Address, B256, U256};
use std::collections::BTreeMap;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wake_tests::workload::{self, Model, SplitMix, Watchdog};
use wake_triedb::io::{FileStorage, Storage};
use wake_triedb::{AccountInfo, AccountUpdate, Config, KECCAK_EMPTY, StateUpdates, TrieDb};

/// Every fifth account is a contract with storage.
const CONTRACT_EVERY: u64 = 5;
/// Slots of a contract are drawn from `0..SLOTS`.
const SLOTS: u64 = 16;
const CHUNK_BYTES: u64 = 1 << 20;
const SAMPLE_EVERY_BLOCKS: u64 = 50;
const SEED: u64 = 0xc0_4ac7;

/// The size of the run. Defaults fit the CI budget; override with
/// `WAKE_COMPACTION_ACCOUNTS`, `WAKE_COMPACTION_BLOCKS` and
/// `WAKE_COMPACTION_PER_BLOCK` for a bigger one.
#[derive(Clone, Copy, Debug)]
struct Params {
    /// The fixed key set.
    accounts: u64,
    blocks: u64,
    /// Accounts each block after the first rewrites.
    per_block: usize,
}

impl Params {
    fn from_env() -> Params {
        let var = |name: &str, default: u64| match std::env::var(name) {
            Ok(value) => value.parse().unwrap_or_else(|err| panic!("{name}={value:?}: {err}")),
            Err(_) => default,
        };
        let params = Params {
            accounts: var("WAKE_COMPACTION_ACCOUNTS", ACCOUNTS_DEFAULT),
            blocks: var("WAKE_COMPACTION_BLOCKS", BLOCKS_DEFAULT),
            per_block: var("WAKE_COMPACTION_PER_BLOCK", PER_BLOCK_DEFAULT as u64) as usize,
        };
        assert!(
            params.blocks >= 3 * SAMPLE_EVERY_BLOCKS && params.per_block as u64 <= params.accounts,
            "{params:?}: need at least {} blocks and per_block <= accounts",
            3 * SAMPLE_EVERY_BLOCKS
        );
        params
    }
}

const ACCOUNTS_DEFAULT: u64 = 5_000;
const BLOCKS_DEFAULT: u64 = 450;
const PER_BLOCK_DEFAULT: usize = 500;

/// A [`Storage`] that counts the bytes written through it. It hands the
/// inner file's descriptor to io_uring, so reads are unchanged.
struct CountingStorage {
    inner: FileStorage,
    bytes_written: AtomicU64,
}

impl Storage for CountingStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)?;
        self.bytes_written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn direct_fd(&self) -> Option<RawFd> {
        self.inner.direct_fd()
    }
}

fn is_contract(index: u64) -> bool {
    index.is_multiple_of(CONTRACT_EVERY)
}

/// Block 1 creates every account; later blocks rewrite `params.per_block`
/// random ones (new balance and nonce; contracts also write two slots, and
/// clear one in four times).
fn block_updates(params: &Params, block: u64) -> StateUpdates {
    let mut rng = SplitMix(SEED ^ block.wrapping_mul(0x9e37_79b9));
    let mut updates = StateUpdates::default();
    if block == 1 {
        for index in 0..params.accounts {
            let update = account_update(block, index, SLOTS, &mut rng);
            updates.accounts.insert(workload::address(index), update);
        }
    } else {
        for _ in 0..params.per_block * 8 {
            if updates.accounts.len() >= params.per_block {
                break;
            }
            let index = rng.below(params.accounts);
            let update = account_update(block, index, 2, &mut rng);
            updates.accounts.insert(workload::address(index), update);
        }
    }
    updates
}

fn account_update(block: u64, index: u64, slot_writes: u64, rng: &mut SplitMix) -> AccountUpdate {
    let info = AccountInfo {
        nonce: block,
        balance: U256::from(rng.next_u64() | 1),
        code_hash: KECCAK_EMPTY,
    };
    let mut storage = BTreeMap::new();
    if is_contract(index) {
        for _ in 0..slot_writes {
            let value = if block > 1 && rng.below(4) == 0 {
                U256::ZERO
            } else {
                rng.u256() | U256::from(1)
            };
            storage.insert(workload::slot(rng.below(SLOTS)), value);
        }
    }
    AccountUpdate::Set { info, wipe_storage: false, storage }
}

struct Sample {
    block: u64,
    file_bytes: u64,
    stats_file_bytes: u64,
    live_bytes: u64,
    bytes_written: u64,
}

#[test]
fn compaction_bounds_file_size_under_steady_load() {
    run(4, 2, 1);
}

#[test]
fn compaction_bounds_file_size_with_long_history() {
    // Four times the blocks: the run must write many times the larger bound.
    run(64, 2, 4);
}

/// One run retaining `retain` versions, with the bound's history term
/// `history_factor × retain × bytes_written_per_block`, over `length` times
/// the configured blocks.
fn run(retain: u64, history_factor: u64, length: u64) {
    let mut params = Params::from_env();
    params.blocks *= length;
    let Params { accounts, blocks, .. } = params;
    println!("{params:?}");
    // A hang guard, generous for the default size and growing with a bigger run.
    let limit = Duration::from_secs(300 + blocks * params.per_block as u64 / 1_000);
    let watchdog = Watchdog::arm("compaction test", limit);
    let started = Instant::now();
    let dir = wake_tests::temp_db_dir("compaction");
    let path = dir.path().join("state.triedb");
    let storage = Arc::new(CountingStorage {
        inner: FileStorage::open(&path, true).expect("create the database file"),
        bytes_written: AtomicU64::new(0),
    });
    let mut config = Config::new(&path);
    config.chunk_bytes = CHUNK_BYTES;
    config.retain_versions = retain;
    config.cache_bytes = 64 << 20;
    let db = TrieDb::open_with_storage(config, Arc::clone(&storage) as Arc<dyn Storage>)
        .expect("open the database");

    let mut model = Model::default();
    // The model at each of the last `retain` blocks.
    let mut retained_models: BTreeMap<u64, Model> = BTreeMap::new();
    let mut samples = Vec::new();
    let mut written_at_last_third = 0;
    let last_third_start = blocks - blocks / 3;
    for block in 1..=blocks {
        watchdog.progress(format!("block {block}"));
        let updates = block_updates(&params, block);
        model.apply(&updates);
        db.commit(block, &updates).unwrap_or_else(|err| panic!("commit of block {block}: {err}"));
        if block > blocks - retain {
            retained_models.insert(block, model.clone());
        }
        if block == last_third_start {
            written_at_last_third = storage.bytes_written.load(Ordering::Relaxed);
        }
        if block % SAMPLE_EVERY_BLOCKS == 0 || block == blocks {
            let stats = db.stats();
            let file_bytes = std::fs::metadata(&path).expect("stat the database file").len();
            let sample = Sample {
                block,
                file_bytes,
                stats_file_bytes: stats.file_bytes,
                live_bytes: stats.live_bytes,
                bytes_written: storage.bytes_written.load(Ordering::Relaxed),
            };
            println!(
                "block {:>5}: file {:>6.1} MiB (stats {:>6.1} MiB), live {:>6.1} MiB, written {:>8.1} MiB, \
                 chunks in use {}, nodes compacted {}, {:.1} s",
                sample.block,
                mib(sample.file_bytes),
                mib(sample.stats_file_bytes),
                mib(sample.live_bytes),
                mib(sample.bytes_written),
                stats.chunks_in_use,
                stats.nodes_compacted,
                started.elapsed().as_secs_f64()
            );
            samples.push(sample);
        }
    }
    let commit_secs = started.elapsed().as_secs_f64();

    // The bound, from the end state.
    let end = samples.last().expect("samples were taken");
    let total_written = end.bytes_written;
    let per_block_written = (total_written - written_at_last_third) / (blocks - last_third_start);
    let history = history_factor * retain * per_block_written;
    let bound = 3 * end.live_bytes + history + 8 * CHUNK_BYTES;
    println!(
        "end: file {} B, stats.file_bytes {} B, live {} B, written per block (last third) {} B, \
         total written {} B, bound {} B = 3 × live + {history_factor} × {retain} × per block + 8 × {CHUNK_BYTES}",
        end.file_bytes,
        end.stats_file_bytes,
        end.live_bytes,
        per_block_written,
        total_written,
        bound
    );
    assert!(end.live_bytes > 0, "stats().live_bytes is zero with {accounts} accounts");
    // Without reclaiming space the file would hold everything written.
    assert!(
        total_written >= 4 * bound,
        "the workload wrote only {total_written} B against a bound of {bound} B: it cannot tell compaction apart"
    );
    assert!(
        end.file_bytes <= bound,
        "file is {} B ({:.1} MiB) after {blocks} blocks, over the bound {bound} B ({:.1} MiB) = \
         3 × live {} + {history_factor} × {retain} × {per_block_written} per block + 8 chunks",
        end.file_bytes,
        mib(end.file_bytes),
        mib(bound),
        end.live_bytes
    );
    assert_eq!(
        end.stats_file_bytes, end.file_bytes,
        "stats().file_bytes differs from the file's size"
    );
    // Levelled off: less than 10 % growth over the last third.
    let at_two_thirds = samples
        .iter()
        .rfind(|s| s.block <= last_third_start)
        .expect("a sample before the last third");
    assert!(
        end.file_bytes * 10 < at_two_thirds.file_bytes * 11,
        "file grew from {} B at block {} to {} B at block {blocks}: 10 % or more over the last third",
        at_two_thirds.file_bytes,
        at_two_thirds.block,
        end.file_bytes
    );

    // Every retained version reads back the model's values and roots.
    let retained: Vec<u64> = db.versions().iter().map(|v| v.version).collect();
    for version in blocks - retain + 1..=blocks {
        assert!(retained.contains(&version), "version {version} not retained: {retained:?}");
    }
    let addresses: Vec<Address> = (0..accounts).map(workload::address).collect();
    let slot_keys: Vec<(Address, B256)> = (0..accounts)
        .filter(|&index| is_contract(index))
        .flat_map(|index| {
            (0..SLOTS).map(move |slot| (workload::address(index), workload::slot(slot)))
        })
        .collect();
    for (&version, expected) in &retained_models {
        watchdog.progress(format!("checking version {version}"));
        let snapshot =
            db.snapshot(version).unwrap_or_else(|err| panic!("snapshot {version}: {err}"));
        let root = expected.root();
        assert_eq!(
            snapshot.state_root(),
            root,
            "root of version {version} differs from the alloy-trie model"
        );
        let read = snapshot
            .accounts(&addresses)
            .unwrap_or_else(|err| panic!("accounts at {version}: {err}"));
        for (index, (address, got)) in addresses.iter().zip(&read).enumerate() {
            assert_eq!(*got, expected.account(address), "account #{index} at version {version}");
        }
        let values = snapshot
            .storage_batch(&slot_keys)
            .unwrap_or_else(|err| panic!("storage at {version}: {err}"));
        for ((address, key), got) in slot_keys.iter().zip(&values) {
            assert_eq!(
                *got,
                expected.storage(address, key),
                "slot {key} of {address} at version {version}"
            );
        }
    }
    drop(db);
    drop(watchdog);
    println!(
        "compaction test: {blocks} blocks in {commit_secs:.1} s, total {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(dir);
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}
