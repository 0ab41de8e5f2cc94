//! What this process has used so far: CPU time (user + system, all
//! threads, from `getrusage(RUSAGE_SELF)`) and bytes read from and written
//! to storage (`/proc/self/io`). Over a stretch of wall time the first says
//! how many cores the work kept busy, which tells a CPU-bound stretch from
//! one that waits on the disk; the second what the disk was asked to move.

use std::time::Duration;

/// User + system time of every thread of this process so far (zero where
/// the kernel refuses, which Linux does not).
pub fn process_cpu() -> Duration {
    // SAFETY: `rusage` is plain old data, so all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the call's duration.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Bytes this process had read from and written to storage so far
/// (`read_bytes`, `write_bytes` of `/proc/self/io`: what reached the block
/// layer, O_DIRECT included, page-cache hits not), or `None` where the
/// kernel does not say.
pub fn storage_bytes() -> Option<(u64, u64)> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| -> Option<u64> {
        io.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
    };
    Some((field("read_bytes")?, field("write_bytes")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu();
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let used = process_cpu() - before;
        assert!(used >= Duration::from_millis(20), "50 ms of spinning counted as {used:?}");
    }

    #[test]
    fn storage_bytes_count_a_synced_write() {
        let Some((_, written_before)) = storage_bytes() else {
            return; // No /proc/self/io here: nothing to check.
        };
        // Under the workspace's target directory: a real file system (a
        // tmpfs write never reaches the block layer).
        let parent = concat!(env!("CARGO_MANIFEST_DIR"), "/../target");
        std::fs::create_dir_all(parent).expect("target dir");
        let dir = tempfile::tempdir_in(parent).expect("temp dir");
        let path = dir.path().join("written");
        std::fs::write(&path, vec![7u8; 1 << 20]).expect("write");
        std::fs::File::open(&path).and_then(|f| f.sync_all()).expect("sync");
        let (_, written) = storage_bytes().expect("it answered before");
        assert!(
            written - written_before >= 1 << 20,
            "1 MiB synced, {} counted",
            written - written_before
        );
    }
}
