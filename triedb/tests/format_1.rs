//! A database written by format 1, before leaves were packed, opens on this
//! build, reads every version it retains, and takes new commits.
//!
//! `data/format-1.pages` holds the non-zero pages of a file that the last
//! format-1 build (`5b7d767`) wrote from the blocks of `format1/blocks.rs`
//! (1 MiB chunks), with the roots it printed below. The expected state is
//! replayed from the same blocks on a fresh database of the current format:
//! both are Ethereum tries, so their roots and their every value agree.

#[path = "format1/blocks.rs"]
mod blocks;

use alloy_primitives::{B256, U256, b256};
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use wake_triedb::{AccountUpdate, Config, Snapshot, StateUpdates, TrieDb};

const PAGES: &[u8] = include_bytes!("data/format-1.pages");

/// The roots the format-1 build printed for blocks 1, 2 and 3.
const FORMAT_1_ROOTS: [B256; 3] = [
    b256!("641cf77f6ee62caf35245fae3462e2983cd6f591bc61934c73f50a9c78a49e2c"),
    b256!("ac5a1ac81208d3a1333333e16735d3bd9d4b8996a4e77de5be209dfdd2cd5c71"),
    b256!("413b6afc3ae533c507b76d31690366630f360e66b007e5a17b2d7fe523578a42"),
];

/// Bytes 8..12 of a metadata slot hold its format.
fn slot_format(path: &Path, slot: u64) -> u32 {
    let file = std::fs::File::open(path).expect("open the database file");
    let mut format = [0u8; 4];
    file.read_exact_at(&mut format, slot * (1 << 20) + 8).expect("read a slot's format");
    u32::from_le_bytes(format)
}

/// Writes the fixture's file: `WAKEPAGE`, the file's length (u64), the page
/// count (u32), then each non-zero page as its offset (u64) and 4 KiB.
fn unpack(path: &Path) {
    let (magic, rest) = PAGES.split_at(8);
    assert_eq!(magic, b"WAKEPAGE");
    let len = u64::from_le_bytes(rest[..8].try_into().unwrap());
    let count = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
    let pages = &rest[12..];
    assert_eq!(pages.len(), count * (8 + 4096), "the fixture is truncated");
    let file = std::fs::File::create(path).expect("create the database file");
    file.set_len(len).expect("size the database file");
    for page in pages.chunks(8 + 4096) {
        let offset = u64::from_le_bytes(page[..8].try_into().unwrap());
        file.write_all_at(&page[8..], offset).expect("write a page");
    }
    file.sync_all().expect("sync the database file");
}

fn test_dir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-dbs");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(base).unwrap()
}

fn config(path: &Path) -> Config {
    let mut config = Config::new(path);
    config.chunk_bytes = 1 << 20;
    config
}

/// Every account of the fixture and its slots, read through `snap` from
/// both databases, must agree (the current-format one is the reference).
fn same_state(old: &Snapshot, new: &Snapshot, slots: &BTreeMap<u64, Vec<B256>>, what: &str) {
    assert_eq!(old.state_root(), new.state_root(), "{what}: roots");
    for i in 0..blocks::ACCOUNTS + 5 {
        let address = blocks::address(i);
        let account = new.account(&address).unwrap();
        assert_eq!(old.account(&address).unwrap(), account, "{what}: account {i}");
        if let Some(account) = account {
            assert_eq!(
                old.code(&account.code_hash).unwrap(),
                new.code(&account.code_hash).unwrap()
            );
        }
        for slot in slots.get(&i).into_iter().flatten() {
            let value = new.storage(&address, slot).unwrap();
            assert_eq!(old.storage(&address, slot).unwrap(), value, "{what}: {i} {slot}");
        }
    }
}

/// The slots any block writes, per account.
fn slots_written(updates: &[StateUpdates]) -> BTreeMap<u64, Vec<B256>> {
    let mut slots: BTreeMap<u64, Vec<B256>> = BTreeMap::new();
    for i in 0..blocks::ACCOUNTS {
        for block in updates {
            if let Some(AccountUpdate::Set { storage, .. }) =
                block.accounts.get(&blocks::address(i))
            {
                slots.entry(i).or_default().extend(storage.keys());
            }
        }
        if let Some(list) = slots.get_mut(&i) {
            list.sort();
            list.dedup();
        }
    }
    slots
}

#[test]
fn a_format_1_file_opens_reads_every_version_and_commits() {
    let dir = test_dir();
    let old_path = dir.path().join("format-1.triedb");
    unpack(&old_path);
    assert_eq!((slot_format(&old_path, 0), slot_format(&old_path, 1)), (1, 1));

    let mut updates: Vec<StateUpdates> = (1..=blocks::BLOCKS).map(blocks::block).collect();
    // A fourth block, written on top by this build: everything changes.
    let mut fourth = blocks::block(1);
    for update in fourth.accounts.values_mut() {
        if let AccountUpdate::Set { info, storage, .. } = update {
            info.nonce += 1000;
            for value in storage.values_mut() {
                *value += U256::from(7u64);
            }
        }
    }
    fourth.codes.clear();
    updates.push(fourth);
    let slots = slots_written(&updates);

    let new = TrieDb::open(config(&dir.path().join("current.triedb"))).unwrap();
    for (block, update) in (1..).zip(&updates[..3]) {
        let root = new.commit(block, update).unwrap();
        assert_eq!(root, FORMAT_1_ROOTS[block as usize - 1], "block {block} on this build");
    }

    let old = TrieDb::open(config(&old_path)).expect("a format-1 file opens");
    assert_eq!(old.latest().unwrap().version, 3);
    for version in 1..=3 {
        let what = format!("format-1 version {version}");
        same_state(&old.snapshot(version).unwrap(), &new.snapshot(version).unwrap(), &slots, &what);
    }

    // A commit on top (its nodes packed, beside format-1 nodes it keeps).
    let root = old.commit(4, &updates[3]).unwrap();
    assert_eq!(root, new.commit(4, &updates[3]).unwrap(), "block 4");
    drop(old);
    let formats = (slot_format(&old_path, 0), slot_format(&old_path, 1));
    assert!(formats == (1, 2) || formats == (2, 1), "slot formats after a commit: {formats:?}");

    let old = TrieDb::open(config(&old_path)).expect("reopens after a commit");
    for version in 1..=4 {
        let what = format!("reopened version {version}");
        same_state(&old.snapshot(version).unwrap(), &new.snapshot(version).unwrap(), &slots, &what);
    }
}
