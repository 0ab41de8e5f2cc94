//! Quick throughput probe of triedb (the full benchmark is `wake bench triedb`).
//! `cargo run --release -p wake-triedb --example probe -- [accounts]`
use alloy_primitives::{Address, U256, keccak256};
use std::time::Instant;
use wake_triedb::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};

fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_le_bytes())[..20])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let mut config = Config::new(dir.path().join("db"));
    config.cache_bytes = 64 << 20;
    let db = TrieDb::open(config)?;
    let t = Instant::now();
    let per = 100_000u64;
    let mut version = 0;
    for start in (0..n).step_by(per as usize) {
        let mut updates = StateUpdates::default();
        for i in start..(start + per).min(n) {
            let info = AccountInfo { nonce: i, balance: U256::from(i), ..Default::default() };
            updates.accounts.insert(address(i), AccountUpdate::info(info));
        }
        version += 1;
        db.commit(version, &updates)?;
    }
    println!("load {n}: {:?} {:?}", t.elapsed(), db.stats());
    let snap = db.snapshot(version)?;
    let mut seed = 0u64;
    let mut keys = |count: u64| -> Vec<Address> {
        seed += 1;
        (0..count).map(|i| address((i * 7919 + seed * 1_000_003) % n)).collect()
    };
    for depth in [1usize, 8, 32] {
        let lookups = keys(20_000);
        let before = db.stats().device_reads;
        let t = Instant::now();
        for batch in lookups.chunks(256) {
            snap.accounts_with_depth(batch, depth)?;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "depth {depth}: {:.0} reads/s, {:.2} device reads/lookup",
            lookups.len() as f64 / s,
            (db.stats().device_reads - before) as f64 / lookups.len() as f64
        );
    }
    let lookups = keys(5000);
    let t = Instant::now();
    for a in &lookups {
        snap.account(a)?;
    }
    println!("sync pread: {:.0} reads/s", 5000.0 / t.elapsed().as_secs_f64());
    drop(snap);
    let t = Instant::now();
    let blocks = 10;
    for b in 0..blocks {
        let mut updates = StateUpdates::default();
        for j in 0..10_000u64 {
            let i = (b * 10_000 + j) * 104_729 % n;
            let info = AccountInfo { nonce: i + 1, balance: U256::from(j), ..Default::default() };
            updates.accounts.insert(address(i), AccountUpdate::info(info));
        }
        version += 1;
        db.commit(version, &updates)?;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "commit: {:.0} updates/s, {:.1} ms/block {:?}",
        100_000.0 / s,
        s * 1000.0 / blocks as f64,
        db.stats()
    );
    Ok(())
}
