//! Resident memory of this process (Linux `/proc/self`).
//!
//! Peak RSS (`VmHWM`) covers the whole life of the process, so a benchmark
//! that runs several systems in one process resets it between them by
//! writing `5` to `/proc/self/clear_refs` (Linux ≥ 4.0). Where that is not
//! allowed, a sampler thread that polls `VmRSS` gives a lower bound instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Current resident set size in bytes.
pub fn current() -> Option<u64> {
    status_field("VmRSS")
}

/// Peak resident set size since start (or since the last [`reset_peak`]).
pub fn peak() -> Option<u64> {
    status_field("VmHWM")
}

/// Resets the kernel's peak-RSS counter to the current RSS. `false` where
/// the kernel refuses.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Measures the peak RSS of one stretch of work.
pub struct PeakTracker {
    reset_ok: bool,
    sampled: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

impl PeakTracker {
    /// Resets the kernel peak and starts a 20 ms `VmRSS` sampler.
    pub fn start() -> PeakTracker {
        let reset_ok = reset_peak();
        let sampled = Arc::new(AtomicU64::new(current().unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let sampled = Arc::clone(&sampled);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("rss-sampler".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(rss) = current() {
                            sampled.fetch_max(rss, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                })
                .ok()
        };
        PeakTracker { reset_ok, sampled, stop, sampler }
    }

    /// The peak so far: the kernel's `VmHWM` when the reset worked (exact),
    /// else the highest sampled `VmRSS` (a lower bound).
    pub fn peak(&self) -> u64 {
        let sampled = self.sampled.load(Ordering::Relaxed);
        if self.reset_ok {
            peak().unwrap_or(0).max(sampled)
        } else {
            sampled.max(current().unwrap_or(0))
        }
    }

    /// Whether the peak is exact (kernel counter reset at start).
    pub fn exact(&self) -> bool {
        self.reset_ok
    }

    /// Stops the sampler and returns the peak.
    pub fn finish(mut self) -> u64 {
        let peak = self.peak();
        self.stop_sampler();
        peak
    }

    fn stop_sampler(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.sampler.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for PeakTracker {
    fn drop(&mut self) {
        self.stop_sampler();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc() {
        if std::path::Path::new("/proc/self/status").exists() {
            let rss = current().unwrap();
            assert!(rss > 0);
            assert!(peak().unwrap() >= rss / 2);
            let tracker = PeakTracker::start();
            assert!(tracker.finish() > 0);
        }
    }
}
