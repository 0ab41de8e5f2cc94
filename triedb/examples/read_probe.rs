//! Read CPU probe: cold lookups, batched at depth 32 or one at a time
//! through the synchronous path, with the CPU each costs.
//! `cargo run --release -p wake-triedb --example read_probe -- [accounts] [batch|sync] [batch threads]`
use alloy_primitives::{Address, U256, keccak256};
use std::time::Instant;
use wake_triedb::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};

fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_le_bytes())[..20])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map_or(Ok(1_000_000), |a| a.parse())?;
    let sync = std::env::args().nth(2).is_some_and(|mode| mode == "sync");
    let batch_threads: usize = std::env::args().nth(3).map_or(Ok(1), |a| a.parse())?;
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
    config.batch_threads = batch_threads;
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
    let bytes_before = read_bytes();
    let cpu = process_cpu_s();
    let t = Instant::now();
    let mut lookups = 0;
    while t.elapsed().as_secs() < 8 {
        if sync {
            for address in next(64) {
                snap.account(&address)?;
            }
            lookups += 64;
        } else {
            snap.accounts_with_depth(&next(1024), 32)?;
            lookups += 1024;
        }
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{}: {:.0} lookups/s, {:.2} reads/lookup, {:.2} µs CPU/lookup, {:.0} bytes/read",
        if sync { "sync".to_string() } else { format!("depth 32 on {batch_threads} thread(s)") },
        lookups as f64 / s,
        (db.stats().device_reads - before) as f64 / lookups as f64,
        (process_cpu_s() - cpu) * 1e6 / lookups as f64,
        (read_bytes() - bytes_before) as f64 / (db.stats().device_reads - before).max(1) as f64
    );
    Ok(())
}

/// CPU time of this process (all threads), in seconds.
fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Bytes this process has read from storage (`/proc/self/io`).
fn read_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("read_bytes:").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}
