//! Commit CPU probe: blocks of updates into a cached trie, timed by
//! triedb's own counters (apply: update, hash, encode, write; sync apart).
//!
//! `cargo run --release -p wake-triedb --example commit_probe -- [ACCOUNTS] [HOLDERS] [CACHE_MIB]`
//!
//! With `HOLDERS` = 0 (the default), blocks of 10k account updates into
//! `ACCOUNTS` (default 100k) accounts. Otherwise an ERC-20-shaped load: one
//! token account holding `HOLDERS` balance slots, and blocks of 2,000
//! transfers (the sender's nonce and balance, two balance slots each).
//! `CACHE_MIB` (default 1024) sizes the node cache: one far below the state
//! keeps bottom nodes as records, as a cold benchmark's cache does.
use alloy_primitives::{Address, B256, U256, keccak256};
use std::collections::BTreeMap;
use std::time::Instant;
use wake_triedb::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};

fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_le_bytes())[..20])
}

fn slot(i: u64) -> B256 {
    keccak256(i.to_be_bytes())
}

const BLOCKS: u64 = 20;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let holders: u64 = args.next().map_or(Ok(0), |a| a.parse())?;
    let cache_mib: usize = args.next().map_or(Ok(1024), |a| a.parse())?;
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let mut config = Config::new(dir.path().join("db"));
    config.cache_bytes = cache_mib << 20;
    let db = TrieDb::open(config)?;
    let token = Address::repeat_byte(0x7e);
    let mut updates = StateUpdates::default();
    for i in 0..n {
        let info = AccountInfo { nonce: i, balance: U256::from(i), ..Default::default() };
        updates.accounts.insert(address(i), AccountUpdate::info(info));
    }
    if holders > 0 {
        let storage: BTreeMap<B256, U256> =
            (0..holders).map(|h| (slot(h), U256::from(h + 1))).collect();
        let info = AccountInfo { nonce: 1, ..Default::default() };
        updates.accounts.insert(token, AccountUpdate::Set { info, wipe_storage: false, storage });
    }
    let t = Instant::now();
    db.commit(1, &updates)?;
    println!("fresh root of {n} accounts, {holders} slots: {:?}", t.elapsed());
    let before = db.stats();
    let t = Instant::now();
    let mut changes = 0u64;
    for b in 0..BLOCKS {
        let mut updates = StateUpdates::default();
        let transfers = if holders > 0 { 2_000 } else { 10_000 };
        let mut storage = BTreeMap::new();
        for j in 0..transfers {
            let i = (b * transfers + j) * 104_729 % n;
            let info =
                AccountInfo { nonce: i + 1 + b, balance: U256::from(j), ..Default::default() };
            updates.accounts.insert(address(i), AccountUpdate::info(info));
            if holders > 0 {
                let from = (b * transfers + j) * 7_919 % holders;
                let to = (b * transfers + j) * 15_485_863 % holders;
                storage.insert(slot(from), U256::from(b * 10 + 1));
                storage.insert(slot(to), U256::from(b * 10 + 2));
            }
        }
        changes += updates.accounts.len() as u64 + storage.len() as u64;
        if holders > 0 {
            let info = AccountInfo { nonce: 1, ..Default::default() };
            updates
                .accounts
                .insert(token, AccountUpdate::Set { info, wipe_storage: false, storage });
        }
        db.commit(b + 2, &updates)?;
    }
    let s = t.elapsed().as_secs_f64();
    let after = db.stats();
    let ms = |us: u64| us as f64 / 1e3 / BLOCKS as f64;
    println!(
        "commit: {:.0} changes/s, {:.1} ms/block: read-ahead {:.1}, apply {:.1}, sync {:.1}",
        changes as f64 / s,
        s * 1000.0 / BLOCKS as f64,
        ms(after.commit_prefetch_us - before.commit_prefetch_us),
        ms(after.commit_apply_us - before.commit_apply_us),
        ms(after.commit_sync_us - before.commit_sync_us),
    );
    Ok(())
}
