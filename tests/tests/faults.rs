//! Fault injection: triedb over a [`FaultyStorage`] wrapping a real
//! [`FileStorage`] on disk.
//!
//! * a full device (ENOSPC) and a torn write at many points of one commit,
//!   from the first node write to the metadata write: the commit fails, the
//!   previous version stays readable, and a reopen finds a consistent version
//!   (the previous one, or the failed one only where its whole metadata record
//!   reached the disk) with the right root and values;
//! * a failed `fdatasync` of the nodes or of the metadata: the commit fails,
//!   the handle is poisoned, a reopen recovers;
//! * bit flips on read and bytes rotten on disk: typed errors, never a panic,
//!   never a wrong value;
//! * corrupt metadata slots, foreign files and a newer format: typed errors at
//!   open, or a fallback to the previous version when only the newest slot is bad.
//!
//! Expected values and roots come from an alloy-trie model of the same
//! deterministic workload (see `src/bin/triedb_crash_child.rs`).

#[allow(dead_code)]
use alloy_primitives::{Address, B256};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wake_tests::workload::{self, Model, SLOTS_PER_ACCOUNT, SplitMix};
use wake_triedb::fault::{FaultKind, FaultyStorage};
use wake_triedb::io::{FileStorage, Storage};
use wake_triedb::{Config, Error, StateUpdates, TrieDb};

/// Accounts of the workload's pool, and accounts touched per version.
const POOL: u64 = 2_000;
const PER_VERSION: usize = 150;
const SEED: u64 = 0xfa17_5eed;
/// Versions committed before a fault is armed.
const BEFORE_FAULT: u64 = 6;
/// File layout (triedb/src/meta.rs): two 1 MiB metadata slots, then chunks.
const META_SLOT_BYTES: u64 = 1 << 20;
const DATA_OFFSET: u64 = 2 * META_SLOT_BYTES;
const PAGE: u64 = 4096;
/// Metadata record header: magic [8] | format u32 | record_len u32 | crc u32 | seq u64 ...
const FORMAT_AT: u64 = 8;
const RECORD_LEN_AT: u64 = 12;
const SEQ_AT: u64 = 20;

fn updates_for(version: u64) -> StateUpdates {
    workload::updates(SEED, version, POOL, PER_VERSION)
}

/// `models[v]`: the state after version `v` (`models[0]` is empty).
fn models(up_to: u64) -> Vec<Model> {
    let mut models = vec![Model::default()];
    for version in 1..=up_to {
        let mut next = models.last().expect("models[0] exists").clone();
        next.apply(&updates_for(version));
        models.push(next);
    }
    models
}

fn config(path: &Path, retain_versions: u64, cache_bytes: usize) -> Config {
    let mut config = Config::new(path);
    config.chunk_bytes = 1 << 20;
    config.retain_versions = retain_versions;
    config.cache_bytes = cache_bytes;
    config
}

fn file_storage(path: &Path) -> Arc<dyn Storage> {
    Arc::new(
        FileStorage::open(path, true)
            .unwrap_or_else(|err| panic!("open {}: {err}", path.display())),
    )
}

/// Opens `config.path` over a fresh `FaultyStorage(FileStorage)`.
fn open_faulty(config: &Config) -> (TrieDb, Arc<FaultyStorage>) {
    let faulty = Arc::new(FaultyStorage::new(file_storage(&config.path)));
    let db = TrieDb::open_with_storage(config.clone(), Arc::clone(&faulty) as Arc<dyn Storage>)
        .unwrap_or_else(|err| panic!("open {} over FaultyStorage: {err}", config.path.display()));
    (db, faulty)
}

/// Opens `config.path` over a plain `FileStorage`.
fn open_clean(config: &Config, context: &str) -> TrieDb {
    TrieDb::open_with_storage(config.clone(), file_storage(&config.path))
        .unwrap_or_else(|err| panic!("{context}: reopen over a clean FileStorage: {err}"))
}

fn commit_checked(db: &TrieDb, version: u64, models: &[Model], context: &str) {
    let root = db
        .commit(version, &updates_for(version))
        .unwrap_or_else(|err| panic!("{context}: commit of version {version}: {err}"));
    assert_eq!(root, models[version as usize].root(), "{context}: root of version {version}");
}

/// Version `version` of `db` holds exactly the model's state: root, every
/// account of the pool, every slot of the contract accounts, codes.
fn check_version(db: &TrieDb, version: u64, model: &Model, context: &str) {
    let snapshot =
        db.snapshot(version).unwrap_or_else(|err| panic!("{context}: snapshot {version}: {err}"));
    assert_eq!(snapshot.state_root(), model.root(), "{context}: root of version {version}");
    let addresses: Vec<Address> = (0..POOL).map(workload::address).collect();
    let accounts = snapshot
        .accounts(&addresses)
        .unwrap_or_else(|err| panic!("{context}: accounts at {version}: {err}"));
    for (index, (address, got)) in addresses.iter().zip(&accounts).enumerate() {
        assert_eq!(
            *got,
            model.account(address),
            "{context}: account #{index} at version {version}"
        );
    }
    let keys: Vec<(Address, B256)> = (0..POOL)
        .filter(|index| index % 4 == 0)
        .flat_map(|index| {
            (0..SLOTS_PER_ACCOUNT).map(move |slot| (workload::address(index), workload::slot(slot)))
        })
        .collect();
    let values = snapshot
        .storage_batch(&keys)
        .unwrap_or_else(|err| panic!("{context}: storage at {version}: {err}"));
    for ((address, key), got) in keys.iter().zip(&values) {
        assert_eq!(
            *got,
            model.storage(address, key),
            "{context}: slot {key} of {address} at version {version}"
        );
    }
    for (hash, code) in &model.codes {
        let got = snapshot
            .code(hash)
            .unwrap_or_else(|err| panic!("{context}: code {hash} at {version}: {err}"));
        assert_eq!(got.as_ref(), Some(code), "{context}: code {hash} at version {version}");
    }
}

/// A fresh database at `<dir>/<name>` with versions `1..=BEFORE_FAULT`,
/// open over a `FaultyStorage`.
fn prepare(
    dir: &Path,
    name: &str,
    retain_versions: u64,
    models: &[Model],
) -> (Config, TrieDb, Arc<FaultyStorage>) {
    prepare_versions(dir, name, retain_versions, BEFORE_FAULT, models)
}

/// A fresh database at `<dir>/<name>` with versions `1..=versions`, open
/// over a `FaultyStorage`.
fn prepare_versions(
    dir: &Path,
    name: &str,
    retain_versions: u64,
    versions: u64,
    models: &[Model],
) -> (Config, TrieDb, Arc<FaultyStorage>) {
    let config = config(&dir.join(name), retain_versions, 16 << 20);
    let (db, faulty) = open_faulty(&config);
    for version in 1..=versions {
        commit_checked(&db, version, models, name);
    }
    (config, db, faulty)
}

/// Reads `(format, record_len, seq)` of metadata slot `slot` straight from the file.
fn slot_header(path: &Path, slot: u64) -> (u32, u32, u64) {
    let file =
        std::fs::File::open(path).unwrap_or_else(|err| panic!("open {}: {err}", path.display()));
    let mut header = [0u8; 28];
    file.read_exact_at(&mut header, slot * META_SLOT_BYTES)
        .unwrap_or_else(|err| panic!("read metadata slot {slot}: {err}"));
    assert_eq!(&header[..8], b"WAKETRIE", "slot {slot} has no magic");
    let u32_at = |at: u64| {
        u32::from_le_bytes(header[at as usize..at as usize + 4].try_into().expect("4 bytes"))
    };
    let seq = u64::from_le_bytes(
        header[SEQ_AT as usize..SEQ_AT as usize + 8].try_into().expect("8 bytes"),
    );
    (u32_at(FORMAT_AT), u32_at(RECORD_LEN_AT), seq)
}

/// The slot holding the newest metadata record (both slots are written once
/// two commits have happened).
fn newest_slot(path: &Path) -> u64 {
    let (_, _, seq_a) = slot_header(path, 0);
    let (_, _, seq_b) = slot_header(path, 1);
    assert_ne!(seq_a, seq_b, "both metadata slots have sequence number {seq_a}");
    if seq_a > seq_b { 0 } else { 1 }
}

// ---------------------------------------------------------------------------
// Write faults: ENOSPC and torn writes at many points of one commit.

/// Bytes the commit of version `versions + 1` writes after `1..=versions`,
/// in total and in its metadata record (the last write), measured on an
/// unfaulted twin.
fn measure_commit(dir: &Path, retain_versions: u64, versions: u64, models: &[Model]) -> (u64, u64) {
    let name = format!("measure-{retain_versions}-{versions}");
    let (config, db, faulty) = prepare_versions(dir, &name, retain_versions, versions, models);
    let before = faulty.bytes_written();
    commit_checked(&db, versions + 1, models, "measure");
    let total = faulty.bytes_written() - before;
    drop(db);
    let (_, record_len, _) = slot_header(&config.path, newest_slot(&config.path));
    let meta = u64::from(record_len).next_multiple_of(PAGE);
    assert!(total > meta, "the commit wrote {total} B, its metadata alone {meta} B");
    (total, meta)
}

/// Write budgets that make the commit fail at its first write, in the middle
/// of its node writes, at its last node write, and at its metadata write.
fn budgets(total: u64, meta: u64) -> Vec<(u64, bool)> {
    let nodes = total - meta;
    let mut budgets: Vec<(u64, bool)> = [0, 1, PAGE, nodes / 3, nodes / 2, nodes - 1]
        .into_iter()
        .map(|b| (b, false))
        .chain([nodes, nodes + meta / 2, total - 1].into_iter().map(|b| (b, true)))
        .collect();
    budgets.sort_unstable();
    budgets.dedup();
    budgets
}

#[test]
fn enospc_at_any_write_of_a_commit_keeps_the_previous_version() {
    let dir = wake_tests::temp_db_dir("faults-enospc");
    let models = models(BEFORE_FAULT + 3);
    let next = BEFORE_FAULT + 1;
    let (total, meta) = measure_commit(dir.path(), 8, BEFORE_FAULT, &models);
    println!("commit {next} writes {total} B, metadata {meta} B");
    for (case, (budget, at_meta)) in budgets(total, meta).into_iter().enumerate() {
        let context = format!("ENOSPC after {budget} B (case {case}, metadata write: {at_meta})");
        let (config, db, faulty) = prepare(dir.path(), &format!("enospc-{case}"), 8, &models);
        faulty.fail_writes_after(budget, FaultKind::Enospc);
        match db.commit(next, &updates_for(next)) {
            Err(Error::StorageFull { .. }) => {}
            other => panic!("{context}: commit returned {other:?}, expected Error::StorageFull"),
        }
        // The handle still serves the previous version, intact.
        let latest = db.latest().expect("a latest version");
        assert_eq!(latest.version, BEFORE_FAULT, "{context}: latest after the failed commit");
        check_version(&db, BEFORE_FAULT, &models[BEFORE_FAULT as usize], &context);

        // Space is back: the same handle either commits or asks for a reopen.
        faulty.clear();
        let retried = match db.commit(next, &updates_for(next)) {
            Ok(root) => {
                assert_eq!(
                    root,
                    models[next as usize].root(),
                    "{context}: root of the retried commit"
                );
                true
            }
            Err(Error::Poisoned) => false,
            Err(err) => panic!("{context}: retry after clear() failed: {err}"),
        };
        drop(db);

        // Reopen is the recovery. ENOSPC writes nothing, so the failed commit
        // cannot be durable: latest is the previous version or the retry.
        let db = open_clean(&config, &context);
        let expected = if retried { next } else { BEFORE_FAULT };
        let latest = db.latest().expect("a latest version").version;
        assert_eq!(latest, expected, "{context}: latest after reopen (retry succeeded: {retried})");
        check_version(&db, latest, &models[latest as usize], &context);
        for version in latest + 1..=BEFORE_FAULT + 2 {
            commit_checked(&db, version, &models, &context);
        }
        drop(db);
        let db = open_clean(&config, &context);
        assert_eq!(
            db.latest().map(|v| v.version),
            Some(BEFORE_FAULT + 2),
            "{context}: latest after the final reopen"
        );
        check_version(&db, BEFORE_FAULT + 2, &models[BEFORE_FAULT as usize + 2], &context);
        println!(
            "{context}: ok (retry on the same handle: {})",
            if retried { "committed" } else { "poisoned" }
        );
    }
}

#[test]
fn torn_write_at_any_point_of_a_commit_leaves_a_consistent_version() {
    let dir = wake_tests::temp_db_dir("faults-torn");
    // (retain_versions, versions before the torn commit). With retain 1 the
    // previous version must survive although it is the only one retained.
    // With 30 versions of 64 retained the metadata record spans two pages,
    // so a torn metadata write stores only part of it.
    let setups = [(8, BEFORE_FAULT), (1, BEFORE_FAULT), (64, 30)];
    let models = models(30 + 3);
    for (retain_versions, before) in setups {
        let next = before + 1;
        let (total, meta) = measure_commit(dir.path(), retain_versions, before, &models);
        println!(
            "retain {retain_versions}, {before} versions: commit {next} writes {total} B, metadata {meta} B"
        );
        for (case, (budget, at_meta)) in budgets(total, meta).into_iter().enumerate() {
            let context = format!(
                "torn write after {budget} B (retain {retain_versions}, {before} versions, case {case}, \
                 metadata write: {at_meta})"
            );
            let name = format!("torn-{retain_versions}-{before}-{case}");
            let (config, db, faulty) =
                prepare_versions(dir.path(), &name, retain_versions, before, &models);
            faulty.fail_writes_after(budget, FaultKind::TornWrite);
            match db.commit(next, &updates_for(next)) {
                Err(Error::Io { .. }) => {}
                other => panic!("{context}: commit returned {other:?}, expected Error::Io"),
            }
            assert!(faulty.is_crashed(), "{context}: the torn write did not fire");
            assert_eq!(
                db.latest().map(|v| v.version),
                Some(before),
                "{context}: latest after the failed commit"
            );
            check_version(&db, before, &models[before as usize], &context);
            drop(db);
            drop(faulty);

            // After the "power loss": a tear among the node writes leaves the
            // previous version; a tear in the metadata write may leave either
            // (the failed version only if its whole record reached the disk).
            let db = open_clean(&config, &context);
            let latest = db.latest().expect("a latest version").version;
            if at_meta {
                assert!(
                    latest == before || latest == next,
                    "{context}: latest after reopen is {latest}, expected {before} or {next}"
                );
            } else {
                assert_eq!(latest, before, "{context}: latest after reopen");
            }
            check_version(&db, latest, &models[latest as usize], &context);
            for version in latest + 1..=before + 2 {
                commit_checked(&db, version, &models, &context);
            }
            drop(db);
            let db = open_clean(&config, &context);
            assert_eq!(
                db.latest().map(|v| v.version),
                Some(before + 2),
                "{context}: latest after the final reopen"
            );
            check_version(&db, before + 2, &models[before as usize + 2], &context);
            println!("{context}: ok, reopened at version {latest}");
        }
    }
}

// ---------------------------------------------------------------------------
// fdatasync failures.

/// Passes everything to a `FaultyStorage` and arms `fail_sync(1)` on it just
/// before sync number `fail_at` (counted from zero), so any one sync of a
/// commit can fail, not only the next.
struct FailNthSync {
    inner: Arc<FaultyStorage>,
    syncs: AtomicU64,
    fail_at: AtomicU64,
}

impl Storage for FailNthSync {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        if self.syncs.fetch_add(1, Ordering::SeqCst) == self.fail_at.load(Ordering::SeqCst) {
            self.inner.fail_sync(1);
        }
        self.inner.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn direct_fd(&self) -> Option<RawFd> {
        None
    }
}

#[test]
fn failed_fsync_poisons_the_handle_and_reopen_recovers() {
    let dir = wake_tests::temp_db_dir("faults-fsync");
    let models = models(BEFORE_FAULT + 3);
    let next = BEFORE_FAULT + 1;
    // A commit syncs its nodes, then its metadata record.
    for (sync, what) in [(0u64, "node sync"), (1, "metadata sync")] {
        let context = format!("failed {what}");
        let config = config(&dir.path().join(format!("fsync-{sync}")), 8, 16 << 20);
        let faulty = Arc::new(FaultyStorage::new(file_storage(&config.path)));
        let storage = Arc::new(FailNthSync {
            inner: Arc::clone(&faulty),
            syncs: AtomicU64::new(0),
            fail_at: AtomicU64::new(u64::MAX),
        });
        let db =
            TrieDb::open_with_storage(config.clone(), Arc::clone(&storage) as Arc<dyn Storage>)
                .unwrap_or_else(|err| panic!("{context}: open: {err}"));
        for version in 1..=BEFORE_FAULT {
            commit_checked(&db, version, &models, &context);
        }
        let syncs_before = storage.syncs.load(Ordering::SeqCst);
        storage.fail_at.store(syncs_before + sync, Ordering::SeqCst);
        match db.commit(next, &updates_for(next)) {
            Err(Error::Io { .. }) => {}
            other => panic!("{context}: commit returned {other:?}, expected Error::Io"),
        }
        let syncs_made = storage.syncs.load(Ordering::SeqCst) - syncs_before;
        assert_eq!(syncs_made, sync + 1, "{context}: the commit stopped after {syncs_made} syncs");
        // After a failed fdatasync the state of the disk is unknown: the
        // handle must refuse further commits, but still serve reads.
        faulty.clear();
        match db.commit(next, &updates_for(next)) {
            Err(Error::Poisoned) => {}
            other => panic!(
                "{context}: a commit after the failed sync returned {other:?}, expected Error::Poisoned"
            ),
        }
        assert_eq!(
            db.latest().map(|v| v.version),
            Some(BEFORE_FAULT),
            "{context}: latest on the poisoned handle"
        );
        check_version(&db, BEFORE_FAULT, &models[BEFORE_FAULT as usize], &context);
        drop(db);

        let db = open_clean(&config, &context);
        let latest = db.latest().expect("a latest version").version;
        if sync == 0 {
            // The metadata was never written.
            assert_eq!(latest, BEFORE_FAULT, "{context}: latest after reopen");
        } else {
            assert!(
                latest == BEFORE_FAULT || latest == next,
                "{context}: latest after reopen is {latest}, expected {BEFORE_FAULT} or {next}"
            );
        }
        check_version(&db, latest, &models[latest as usize], &context);
        for version in latest + 1..=BEFORE_FAULT + 2 {
            commit_checked(&db, version, &models, &context);
        }
        drop(db);
        let db = open_clean(&config, &context);
        check_version(&db, BEFORE_FAULT + 2, &models[BEFORE_FAULT as usize + 2], &context);
        println!("{context}: ok, reopened at version {latest}");
    }
}

// ---------------------------------------------------------------------------
// Read faults and rot on disk.

/// Reads every account, every contract slot and every code of `version`,
/// one by one and in batches. Each read must return the model's value or a
/// corruption error. Returns the number of errors.
fn read_all_tolerating_corruption(
    db: &TrieDb,
    version: u64,
    model: &Model,
    context: &str,
) -> usize {
    let snapshot = match db.snapshot(version) {
        Ok(snapshot) => snapshot,
        Err(err) => panic!("{context}: snapshot {version}: {err}"),
    };
    let mut errors = 0;
    let mut tolerate = |what: &str, err: Error| {
        assert!(
            matches!(err, Error::CorruptNode { .. } | Error::DanglingRef { .. }),
            "{context}: {what} failed with {err:?}, expected a corruption error"
        );
        errors += 1;
    };
    let addresses: Vec<Address> = (0..POOL).map(workload::address).collect();
    match snapshot.accounts(&addresses) {
        Ok(accounts) => {
            for (index, (address, got)) in addresses.iter().zip(&accounts).enumerate() {
                assert_eq!(
                    *got,
                    model.account(address),
                    "{context}: account #{index} (batch), no error reported"
                );
            }
        }
        Err(err) => tolerate("batch account read", err),
    }
    for (index, address) in addresses.iter().enumerate() {
        match snapshot.account(address) {
            Ok(got) => assert_eq!(
                got,
                model.account(address),
                "{context}: account #{index}, no error reported"
            ),
            Err(err) => tolerate("account read", err),
        }
        if index % 4 == 0 {
            for slot in 0..SLOTS_PER_ACCOUNT {
                let key = workload::slot(slot);
                match snapshot.storage(address, &key) {
                    Ok(got) => assert_eq!(
                        got,
                        model.storage(address, &key),
                        "{context}: slot {slot} of account #{index}, no error reported"
                    ),
                    Err(err) => tolerate("storage read", err),
                }
            }
        }
    }
    for (hash, code) in &model.codes {
        match snapshot.code(hash) {
            Ok(got) => {
                assert_eq!(got.as_ref(), Some(code), "{context}: code {hash}, no error reported")
            }
            Err(err) => tolerate("code read", err),
        }
    }
    errors
}

#[test]
fn bit_flips_on_read_are_errors_never_wrong_values() {
    let dir = wake_tests::temp_db_dir("faults-bitflip");
    let models = models(BEFORE_FAULT);
    let (config, db, faulty) = prepare(dir.path(), "bitflip", 8, &models);
    drop(db);
    drop(faulty);
    let model = &models[BEFORE_FAULT as usize];
    // A 64 KiB cache: nearly every read goes to the (faulty) storage.
    let config = Config { cache_bytes: 64 << 10, ..config };
    let (db, faulty) = open_faulty(&config);
    let file_len = faulty.len().expect("file length");
    let mut rng = SplitMix(0xb17f);

    // Dense: a flipped byte every 32 bytes of the data area. Every node read
    // covers one, so every lookup that reaches the disk must fail.
    for offset in (DATA_OFFSET..file_len).step_by(32) {
        faulty.flip_bit_on_read(offset + rng.below(32));
    }
    let dense_errors = read_all_tolerating_corruption(&db, BEFORE_FAULT, model, "dense bit flips");
    assert!(dense_errors > 0, "dense bit flips: no read reported an error");

    // Healthy again once disarmed: nothing bad was cached.
    faulty.clear();
    check_version(&db, BEFORE_FAULT, model, "after clear() of the dense flips");
    drop(db);
    drop(faulty);

    // Sparse: one flipped byte in every page, cold cache again: some lookups
    // fail, the others must be right.
    let (db, faulty) = open_faulty(&config);
    for page in (DATA_OFFSET..file_len).step_by(PAGE as usize) {
        faulty.flip_bit_on_read(page + rng.below(PAGE));
    }
    let sparse_errors =
        read_all_tolerating_corruption(&db, BEFORE_FAULT, model, "sparse bit flips");
    faulty.clear();
    check_version(&db, BEFORE_FAULT, model, "after clear() of the sparse flips");
    println!(
        "bit flips: {dense_errors} errors with dense flips, {sparse_errors} with one flip per page"
    );
}

#[test]
fn rot_in_the_data_area_is_an_error_never_a_wrong_value() {
    let dir = wake_tests::temp_db_dir("faults-rot");
    let models = models(BEFORE_FAULT);
    let model = &models[BEFORE_FAULT as usize];
    let mut rng = SplitMix(0x707);
    // Three patterns: the whole data area, 48 bytes in every page, and one
    // 512-byte run in every 16th page.
    for (case, pattern) in
        ["whole data area", "48 B in every page", "512 B in every 16th page"].iter().enumerate()
    {
        let context = format!("rot: {pattern}");
        let (config, db, faulty) = prepare(dir.path(), &format!("rot-{case}"), 8, &models);
        drop(db);
        let file_len = faulty.len().expect("file length");
        match case {
            0 => faulty.corrupt_on_disk(DATA_OFFSET, (file_len - DATA_OFFSET) as usize),
            1 => (DATA_OFFSET..file_len)
                .step_by(PAGE as usize)
                .try_for_each(|page| faulty.corrupt_on_disk(page + rng.below(PAGE - 48), 48)),
            _ => (DATA_OFFSET..file_len)
                .step_by(16 * PAGE as usize)
                .try_for_each(|page| faulty.corrupt_on_disk(page + rng.below(PAGE - 512), 512)),
        }
        .unwrap_or_else(|err| panic!("{context}: corrupt_on_disk: {err}"));
        drop(faulty);

        let config = Config { cache_bytes: 64 << 10, ..config };
        let db = match TrieDb::open_with_storage(config.clone(), file_storage(&config.path)) {
            Ok(db) => db,
            // Open may read nodes; then it must say they are corrupt.
            Err(err @ (Error::CorruptNode { .. } | Error::DanglingRef { .. })) => {
                println!("{context}: open refused: {err}");
                continue;
            }
            Err(err) => panic!(
                "{context}: open failed with {err:?}, expected success or a corruption error"
            ),
        };
        assert_eq!(
            db.latest().map(|v| v.version),
            Some(BEFORE_FAULT),
            "{context}: latest (metadata is intact)"
        );
        let errors = read_all_tolerating_corruption(&db, BEFORE_FAULT, model, &context);
        if case < 2 {
            assert!(errors > 0, "{context}: no read reported an error");
        }
        println!("{context}: {errors} reads failed with a corruption error, the others were right");
    }
}

// ---------------------------------------------------------------------------
// Metadata, foreign files, format.

#[test]
fn corrupt_metadata_slots() {
    let dir = wake_tests::temp_db_dir("faults-meta");
    let models = models(BEFORE_FAULT + 1);
    for (case, which) in ["both slots", "the newest slot", "the older slot"].iter().enumerate() {
        let context = format!("corrupt {which}");
        let (config, db, faulty) = prepare(dir.path(), &format!("meta-{case}"), 8, &models);
        drop(db);
        let newest = newest_slot(&config.path);
        let slots = match case {
            0 => vec![0, 1],
            1 => vec![newest],
            _ => vec![1 - newest],
        };
        for slot in slots {
            // Past the magic and format: the checksum no longer matches.
            faulty
                .corrupt_on_disk(slot * META_SLOT_BYTES + SEQ_AT, 16)
                .unwrap_or_else(|err| panic!("{context}: corrupt_on_disk: {err}"));
        }
        drop(faulty);
        let opened = TrieDb::open_with_storage(config.clone(), file_storage(&config.path));
        let expected_latest = match case {
            0 => {
                match opened {
                    Err(Error::MetadataCorrupt) => {}
                    Err(err) => panic!(
                        "{context}: open failed with {err:?}, expected Error::MetadataCorrupt"
                    ),
                    Ok(db) => panic!(
                        "{context}: open succeeded at {:?}, expected Error::MetadataCorrupt",
                        db.latest()
                    ),
                }
                println!("{context}: open refused with MetadataCorrupt");
                continue;
            }
            1 => BEFORE_FAULT - 1,
            _ => BEFORE_FAULT,
        };
        let db = opened.unwrap_or_else(|err| panic!("{context}: open: {err}"));
        assert_eq!(
            db.latest().map(|v| v.version),
            Some(expected_latest),
            "{context}: latest after open"
        );
        for version in expected_latest.saturating_sub(6).max(1)..=expected_latest {
            check_version(
                &db,
                version,
                &models[version as usize],
                &format!("{context}, version {version}"),
            );
        }
        // The database goes on, and the bad slot is rewritten.
        for version in expected_latest + 1..=BEFORE_FAULT + 1 {
            commit_checked(&db, version, &models, &context);
        }
        drop(db);
        let db = open_clean(&config, &context);
        assert_eq!(
            db.latest().map(|v| v.version),
            Some(BEFORE_FAULT + 1),
            "{context}: latest after the final reopen"
        );
        check_version(&db, BEFORE_FAULT + 1, &models[BEFORE_FAULT as usize + 1], &context);
        println!("{context}: opened at version {expected_latest}");
    }
}

/// Writes `bytes` to a new file `name` in `dir` and tries to open it.
/// The open must fail and leave the file as it was.
fn open_foreign(dir: &Path, name: &str, bytes: &[u8]) -> Error {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
    let result = TrieDb::open(config(&path, 8, 16 << 20));
    let after = std::fs::read(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    assert!(
        after == bytes,
        "{name}: a failed open changed the file ({} B before, {} B after)",
        bytes.len(),
        after.len()
    );
    match result {
        Ok(db) => panic!("{name}: opened as a triedb file at {:?}", db.latest()),
        Err(err) => err,
    }
}

#[test]
fn foreign_files_are_refused_untouched() {
    let dir = wake_tests::temp_db_dir("faults-foreign");
    let mut rng = SplitMix(0xf0e1);
    let mut random = |len: usize| -> Vec<u8> { (0..len).map(|_| rng.next_u64() as u8).collect() };
    let text: Vec<u8> =
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n".repeat(200).into_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random-64k", random(64 << 10)),
        ("random-3m", random(3 << 20)),
        ("random-100b", random(100)),
        ("text-11k", text),
        ("text-short", b"hello, world\n".to_vec()),
    ];
    for (name, bytes) in &cases {
        match open_foreign(dir.path(), name, bytes) {
            Error::NotTrieDb => println!("{name}: NotTrieDb"),
            err => panic!("{name}: open failed with {err:?}, expected Error::NotTrieDb"),
        }
    }
    // The magic followed by garbage: a triedb file whose metadata is bad.
    let mut magic = random(64 << 10);
    magic[..8].copy_from_slice(b"WAKETRIE");
    magic[8..12].copy_from_slice(&1u32.to_le_bytes());
    match open_foreign(dir.path(), "magic-then-garbage", &magic) {
        Error::MetadataCorrupt => println!("magic-then-garbage: MetadataCorrupt"),
        err => {
            panic!("magic-then-garbage: open failed with {err:?}, expected Error::MetadataCorrupt")
        }
    }
    // All zeros, shorter than the metadata area: what a crash while creating
    // the file leaves. Opening it as a new, empty database is right, and so
    // is refusing it; anything else is not.
    let path = dir.path().join("zeros-8k");
    std::fs::write(&path, vec![0u8; 8192]).expect("write zeros");
    match TrieDb::open(config(&path, 8, 16 << 20)) {
        Ok(db) => {
            assert_eq!(db.latest(), None, "zeros-8k: opened with a version");
            let models = models(1);
            commit_checked(&db, 1, &models, "zeros-8k");
            println!("zeros-8k: opened as a new database");
        }
        Err(Error::NotTrieDb) => println!("zeros-8k: NotTrieDb"),
        Err(err) => {
            panic!("zeros-8k: open failed with {err:?}, expected success or Error::NotTrieDb")
        }
    }
}

/// Sets the format field of metadata slot `slot` and re-seals the record's
/// checksum (crc32c of the format field, then everything after the 20-byte
/// fixed header), as a newer build writing that format would.
fn set_format(path: &Path, slot: u64, format: u32) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|err| panic!("open {}: {err}", path.display()));
    let base = slot * META_SLOT_BYTES;
    let mut header = [0u8; 20];
    file.read_exact_at(&mut header, base).unwrap_or_else(|err| panic!("read slot {slot}: {err}"));
    let record_len = u32::from_le_bytes(header[12..16].try_into().unwrap()) as usize;
    let mut record = vec![0u8; record_len];
    file.read_exact_at(&mut record, base).unwrap_or_else(|err| panic!("read slot {slot}: {err}"));
    record[8..12].copy_from_slice(&format.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&record[8..12]), &record[20..]);
    record[16..20].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&record[..20], base)
        .and_then(|()| file.sync_data())
        .unwrap_or_else(|err| panic!("patch the format of slot {slot}: {err}"));
}

#[test]
fn newer_format_is_refused() {
    let dir = wake_tests::temp_db_dir("faults-format");
    let models = models(BEFORE_FAULT);
    let (config, db, faulty) = prepare(dir.path(), "format", 8, &models);
    drop(db);
    drop(faulty);
    let (format, _, _) = slot_header(&config.path, 0);
    let newer = format + 1;
    set_format(&config.path, 0, newer);
    set_format(&config.path, 1, newer);
    match TrieDb::open_with_storage(config.clone(), file_storage(&config.path)) {
        Err(Error::UnsupportedFormat { found, supported }) => {
            assert_eq!((found, supported), (newer, format), "UnsupportedFormat fields");
        }
        Err(err) => panic!("open failed with {err:?}, expected Error::UnsupportedFormat"),
        Ok(db) => panic!("a file of format {newer} opened at {:?}", db.latest()),
    }
    // Back to the current format, the file opens as before.
    set_format(&config.path, 0, format);
    set_format(&config.path, 1, format);
    let db = open_clean(&config, "format restored");
    check_version(&db, BEFORE_FAULT, &models[BEFORE_FAULT as usize], "format restored");
}

/// A newer build that committed once leaves its format in the newest slot
/// only. Opening the older slot instead would silently drop that commit, and
/// the next commit would overwrite the newer record: refuse.
#[test]
fn newer_format_in_the_newest_slot_only_is_refused() {
    let dir = wake_tests::temp_db_dir("faults-format-newest");
    let models = models(BEFORE_FAULT);
    let (config, db, faulty) = prepare(dir.path(), "format-newest", 8, &models);
    drop(db);
    drop(faulty);
    let newest = newest_slot(&config.path);
    let (format, _, _) = slot_header(&config.path, newest);
    set_format(&config.path, newest, format + 1);
    match TrieDb::open_with_storage(config.clone(), file_storage(&config.path)) {
        Err(Error::UnsupportedFormat { found, .. }) => {
            assert_eq!(found, format + 1, "UnsupportedFormat.found")
        }
        Err(err) => panic!("open failed with {err:?}, expected Error::UnsupportedFormat"),
        Ok(db) => panic!(
            "the newest metadata slot says format {} but the file opened at {:?} (the older slot), \
             silently rolling back a commit of the newer build",
            format + 1,
            db.latest()
        ),
    }
}
