//! The raw device baseline: 4 KiB O_DIRECT random reads of the database
//! file itself, through the same read engine (and io_uring code) as triedb,
//! keeping exactly `depth` reads in flight; and the same reads one at a time
//! with `pread`.
//!
//! Offsets are page-aligned and uniform over the file's data extents (found
//! with `SEEK_DATA`/`SEEK_HOLE`), so no read lands on a hole that the
//! filesystem would answer without touching the device.
//! Latency is per read: from its submission to its completion.

use super::reads::per_s;
use crate::stats::{Percentiles, Samples};
use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wake_triedb::IoBackend;
use wake_triedb::io::{
    AlignedBuf, FileStorage, IoBackendChoice, PAGE_BYTES, ReadEngine, ReadQueue, ReadReq, Storage,
};

/// Outcome of one raw phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawResult {
    pub reads: u64,
    pub wall: Duration,
    pub latency: Percentiles,
}

impl RawResult {
    pub fn reads_per_s(&self) -> f64 {
        per_s(self.reads, self.wall)
    }
}

/// The database file opened a second time for raw reads.
pub struct RawDevice {
    storage: Arc<dyn Storage>,
    engine: ReadEngine,
    picker: PagePicker,
    pub direct: bool,
    pub span_bytes: u64,
}

/// The file's data extents, as page ranges, found with `SEEK_DATA` /
/// `SEEK_HOLE` (the whole file where the filesystem cannot tell).
fn data_extents(path: &Path, len: u64) -> Vec<(u64, u64)> {
    let page = PAGE_BYTES as u64;
    let whole = vec![(0, len / page)];
    let Ok(file) = std::fs::File::open(path) else {
        return whole;
    };
    let fd = file.as_raw_fd();
    let mut extents = Vec::new();
    let mut offset: i64 = 0;
    while (offset as u64) < len {
        // SAFETY: lseek on a descriptor we own; no memory is passed.
        let data = unsafe { libc::lseek(fd, offset, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: no data after `offset` (or no SEEK_DATA support).
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let hole = if hole < 0 { len as i64 } else { hole };
        let first = (data as u64).div_ceil(page);
        let end = (hole as u64).min(len) / page;
        if end > first {
            extents.push((first, end));
        }
        if hole <= data {
            break;
        }
        offset = hole;
    }
    if extents.is_empty() { whole } else { extents }
}

/// Uniform random pages over a set of extents.
struct PagePicker {
    /// (pages before this extent, first page of the extent).
    starts: Vec<(u64, u64)>,
    total: u64,
}

impl PagePicker {
    fn new(extents: &[(u64, u64)]) -> PagePicker {
        let mut starts = Vec::with_capacity(extents.len());
        let mut total = 0;
        for &(first, end) in extents {
            starts.push((total, first));
            total += end - first;
        }
        PagePicker { starts, total }
    }

    fn offset(&self, rng: &mut StdRng) -> u64 {
        let k = rng.random_range(0..self.total);
        let at = self.starts.partition_point(|&(before, _)| before <= k) - 1;
        let (before, first) = self.starts[at];
        (first + (k - before)) * PAGE_BYTES as u64
    }
}

impl RawDevice {
    pub fn open(path: &Path, max_depth: usize) -> Result<RawDevice> {
        let storage = FileStorage::open(path, false)
            .with_context(|| format!("opening {} for raw reads", path.display()))?;
        let direct = storage.is_direct();
        let len = storage.len().context("size of the database file")?;
        let extents = data_extents(path, len);
        let picker = PagePicker::new(&extents);
        let span_bytes = picker.total * PAGE_BYTES as u64;
        if picker.total == 0 {
            bail!("{} holds no data to read", path.display());
        }
        let storage: Arc<dyn Storage> = Arc::new(storage);
        let engine = ReadEngine::new(Arc::clone(&storage), IoBackendChoice::Auto, max_depth)
            .context("setting up the raw read engine")?;
        Ok(RawDevice { storage, engine, picker, direct, span_bytes })
    }

    pub fn backend(&self) -> IoBackend {
        self.engine.backend()
    }

    /// Keeps `depth` random 4 KiB reads in flight for `duration`.
    pub fn queued(
        &self,
        depth: usize,
        duration: Duration,
        seed: u64,
        bar: &ProgressBar,
    ) -> Result<RawResult> {
        self.engine.with_queue(depth, |queue: &mut dyn ReadQueue| {
            let depth = queue.depth();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut free: Vec<(u64, AlignedBuf)> =
                (0..depth as u64).map(|slot| (slot, AlignedBuf::new(PAGE_BYTES))).collect();
            let mut submitted_at = vec![Instant::now(); depth];
            let mut samples = Samples::with_capacity(1 << 18);
            let mut reads = 0u64;
            let mut failure = None;
            let start = Instant::now();
            let mut last_draw = start;
            let mut stopping = false;
            loop {
                while !stopping && queue.in_flight() < depth {
                    let Some((slot, buf)) = free.pop() else { break };
                    let offset = self.picker.offset(&mut rng);
                    submitted_at[slot as usize] = Instant::now();
                    if let Err((req, err)) = queue.submit(ReadReq { token: slot, offset, buf }) {
                        free.push((req.token, req.buf));
                        failure = Some(err);
                        stopping = true;
                    }
                }
                if queue.in_flight() == 0 {
                    break;
                }
                let done = queue.wait();
                let now = Instant::now();
                let slot = done.token;
                if let Err(err) = done.result {
                    failure.get_or_insert(err);
                    stopping = true;
                } else {
                    samples.push(now - submitted_at[slot as usize]);
                    reads += 1;
                }
                free.push((slot, done.buf));
                if now - start >= duration {
                    stopping = true;
                }
                if now - last_draw >= Duration::from_millis(200) {
                    last_draw = now;
                    bar.set_position((now - start).as_millis() as u64);
                    bar.set_message(format!("{:.0} reads/s", per_s(reads, now - start)));
                }
            }
            let wall = start.elapsed();
            if let Some(err) = failure {
                return Err(anyhow::Error::new(err).context("raw device read"));
            }
            bar.finish_with_message(format!("{:.0} reads/s", per_s(reads, wall)));
            Ok(RawResult { reads, wall, latency: samples.summary() })
        })
    }

    /// Random 4 KiB reads one at a time with `pread` for `duration`.
    pub fn pread(&self, duration: Duration, seed: u64, bar: &ProgressBar) -> Result<RawResult> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut buf = AlignedBuf::new(PAGE_BYTES);
        let mut samples = Samples::with_capacity(1 << 16);
        let start = Instant::now();
        let mut last_draw = start;
        let mut busy = Duration::ZERO;
        let mut reads = 0u64;
        while start.elapsed() < duration {
            let offset = self.picker.offset(&mut rng);
            let t = Instant::now();
            self.storage.read_at(buf.as_mut_slice(), offset).context("raw pread")?;
            let dt = t.elapsed();
            samples.push(dt);
            busy += dt;
            reads += 1;
            if last_draw.elapsed() >= Duration::from_millis(200) {
                last_draw = Instant::now();
                bar.set_position(start.elapsed().as_millis() as u64);
                bar.set_message(format!("{:.0} reads/s", per_s(reads, busy)));
            }
        }
        bar.finish_with_message(format!("{:.0} reads/s", per_s(reads, busy)));
        Ok(RawResult { reads, wall: busy, latency: samples.summary() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picker_stays_in_extents() {
        let picker = PagePicker::new(&[(0, 1), (10, 13), (100, 101)]);
        assert_eq!(picker.total, 5);
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let page = picker.offset(&mut rng) / PAGE_BYTES as u64;
            assert!([0, 10, 11, 12, 100].contains(&page), "{page}");
            seen.insert(page);
        }
        assert_eq!(seen.len(), 5);
    }
}
