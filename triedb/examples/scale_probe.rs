//! Commit cost after a bulk load, split into prefetch / apply / sync.
//! `cargo run --release -p wake-triedb --example scale_probe -- [accounts] [cache_mib]`
use alloy_primitives::{Address, U256, keccak256};
use std::time::Instant;
use wake_triedb::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};

fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_le_bytes())[..20])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let cache_mib: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let mut config = Config::new(dir.path().join("db"));
    config.cache_bytes = cache_mib << 20;
    let db = TrieDb::open(config)?;
    let t = Instant::now();
    let mut version = 0;
    for start in (0..n).step_by(500_000) {
        let mut updates = StateUpdates::default();
        for i in start..(start + 500_000).min(n) {
            let info = AccountInfo { nonce: i, balance: U256::from(i), ..Default::default() };
            updates.accounts.insert(address(i), AccountUpdate::info(info));
        }
        version += 1;
        db.commit(version, &updates)?;
    }
    println!("load {n}: {:?}", t.elapsed());
    let before = db.stats();
    let t = Instant::now();
    for b in 0..20u64 {
        let mut updates = StateUpdates::default();
        for j in 0..10_000u64 {
            let i = (b * 10_000 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n;
            let info =
                AccountInfo { nonce: i + 1 + b, balance: U256::from(j), ..Default::default() };
            updates.accounts.insert(address(i), AccountUpdate::info(info));
        }
        version += 1;
        let tb = Instant::now();
        db.commit(version, &updates)?;
        let s = db.stats();
        println!("block {b}: {:?} compacted {}", tb.elapsed(), s.nodes_compacted);
    }
    let after = db.stats();
    println!(
        "20 blocks: {:?}; prefetch {} ms, apply {} ms, sync {} ms, device reads {}, compacted {}",
        t.elapsed(),
        (after.commit_prefetch_us - before.commit_prefetch_us) / 1000,
        (after.commit_apply_us - before.commit_apply_us) / 1000,
        (after.commit_sync_us - before.commit_sync_us) / 1000,
        after.device_reads - before.device_reads,
        after.nodes_compacted - before.nodes_compacted,
    );
    Ok(())
}
