//! Commit cost after a bulk load, split into prefetch / apply / sync.
//! `cargo run --release -p wake-triedb --example scale_probe -- [accounts] [cache_mib] [blocks] [embed_subtrees]`
use alloy_primitives::{Address, U256, keccak256};
use std::time::Instant;
use wake_triedb::{AccountInfo, AccountUpdate, Config, StateUpdates, TrieDb};

/// User + system CPU time of this process, in milliseconds: a figure that
/// other work on a shared machine disturbs less than wall time.
fn cpu_ms() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

/// Peak resident set (VmHWM) in MiB since the last [`reset_peak`].
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}

fn reset_peak() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_le_bytes())[..20])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let cache_mib: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let blocks: u64 = args.next().map_or(Ok(20), |a| a.parse())?;
    let embed: bool = args.next().map_or(Ok(false), |a| a.parse())?;
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let mut config = Config::new(dir.path().join("db"));
    config.cache_bytes = cache_mib << 20;
    config.embed_subtrees = embed;
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
    println!("peak RSS during the load: {} MiB", peak_rss_mib());
    reset_peak();
    let before = db.stats();
    let cpu_before = cpu_ms();
    let t = Instant::now();
    for b in 0..blocks {
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
    println!("peak RSS during the blocks: {} MiB", peak_rss_mib());
    let after = db.stats();
    println!(
        "{blocks} blocks: {:?} ({} ms CPU); prefetch {} ms, apply {} ms, sync {} ms, device reads {}, compacted {}",
        t.elapsed(),
        cpu_ms() - cpu_before,
        (after.commit_prefetch_us - before.commit_prefetch_us) / 1000,
        (after.commit_apply_us - before.commit_apply_us) / 1000,
        (after.commit_sync_us - before.commit_sync_us) / 1000,
        after.device_reads - before.device_reads,
        after.nodes_compacted - before.nodes_compacted,
    );
    Ok(())
}
