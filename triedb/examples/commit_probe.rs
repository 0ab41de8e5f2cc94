//! Commit CPU probe: blocks of 10k updates into a cached 100k-account trie.
//! `cargo run --release -p wake-triedb --example commit_probe`
use alloy_primitives::{Address, U256, keccak256};
use std::time::Instant;
use wake_triedb::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};

fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_le_bytes())[..20])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map_or(Ok(100_000), |a| a.parse())?;
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let mut config = Config::new(dir.path().join("db"));
    config.cache_bytes = 1 << 30;
    let db = TrieDb::open(config)?;
    let mut updates = StateUpdates::default();
    for i in 0..n {
        let info = AccountInfo { nonce: i, balance: U256::from(i), ..Default::default() };
        updates.accounts.insert(address(i), AccountUpdate::info(info));
    }
    let t = Instant::now();
    db.commit(1, &updates)?;
    println!("fresh root of {n}: {:?}", t.elapsed());
    let t = Instant::now();
    let blocks = 20u64;
    for b in 0..blocks {
        let mut updates = StateUpdates::default();
        for j in 0..10_000u64 {
            let i = (b * 10_000 + j) * 104_729 % n;
            let info =
                AccountInfo { nonce: i + 1 + b, balance: U256::from(j), ..Default::default() };
            updates.accounts.insert(address(i), AccountUpdate::info(info));
        }
        db.commit(b + 2, &updates)?;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "commit: {:.0} updates/s, {:.1} ms/block {:?}",
        (blocks * 10_000) as f64 / s,
        s * 1000.0 / blocks as f64,
        db.stats()
    );
    Ok(())
}
