//! Read CPU probe: batched cold lookups at depth 32.
//! `cargo run --release -p wake-triedb --example read_probe -- [accounts]`
use alloy_primitives::{Address, U256, keccak256};
use std::time::Instant;
use wake_triedb::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};

fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_le_bytes())[..20])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let path = dir.path().join("db");
    {
        let mut config = Config::new(&path);
        config.cache_bytes = 1 << 30;
        let db = TrieDb::open(config)?;
        let mut updates = StateUpdates::default();
        for i in 0..n {
            let info = AccountInfo { nonce: i, balance: U256::from(i), ..Default::default() };
            updates.accounts.insert(address(i), AccountUpdate::info(info));
        }
        db.commit(1, &updates)?;
    }
    let mut config = Config::new(&path);
    config.cache_bytes = 64 << 20;
    let db = TrieDb::open(config)?;
    let snap = db.snapshot(1)?;
    let mut i = 0u64;
    let mut next = |count: u64| -> Vec<Address> {
        (0..count)
            .map(|_| {
                i += 1;
                address(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n)
            })
            .collect()
    };
    for _ in 0..100 {
        snap.accounts_with_depth(&next(1024), 32)?;
    }
    let before = db.stats().device_reads;
    let t = Instant::now();
    let mut lookups = 0;
    while t.elapsed().as_secs() < 8 {
        snap.accounts_with_depth(&next(1024), 32)?;
        lookups += 1024;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "depth 32: {:.0} lookups/s, {:.2} reads/lookup",
        lookups as f64 / s,
        (db.stats().device_reads - before) as f64 / lookups as f64
    );
    Ok(())
}
