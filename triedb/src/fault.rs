//! Fault injection for storage tests.
//!
//! [`FaultyStorage`] wraps any [`Storage`] (usually a
//! [`FileStorage`](crate::io::FileStorage)) and, when armed, makes it
//! misbehave the way disks do: a full device, a write torn by a crash, a
//! failing `fdatasync`, a bit flipped on the way back, bytes rotten on the
//! medium, a write landing at the wrong place. Faults are armed and
//! disarmed at run time through `&self`, so a test can hold the wrapper in an
//! `Arc` shared with the database under test.
//!
//! The wrapper offers no file descriptor ([`Storage::direct_fd`] is `None`),
//! so every read goes through [`Storage::read_at`] and can be faulted: a
//! database opened over it uses the pread pool, never io_uring.

use crate::io::{AlignedBuf, PAGE_BYTES, Storage};
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How writes fail once the budget of [`FaultyStorage::fail_writes_after`]
/// runs out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The device is full: the write that would exceed the budget, and every
    /// write after it, fails with `ENOSPC` and writes nothing. Reads and
    /// syncs keep working (what was written before is intact).
    Enospc,
    /// Power is lost in the middle of a write: the write that would exceed
    /// the budget stores only a prefix — half its length rounded down to a
    /// multiple of 512 bytes (a sector) — and fails with `EIO`. From then on
    /// every write, sync and `set_len` fails with `EIO`, as on a machine that
    /// is down; reads still work so a test can inspect what reached the disk
    /// (or reopen the underlying file).
    TornWrite,
}

/// A [`Storage`] wrapper that injects faults on demand. Unarmed, it passes
/// every call through unchanged (and counts them).
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    faults: Mutex<Faults>,
    /// Fast path: `false` while no read fault is armed.
    read_faults_armed: AtomicBool,
    reads: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
    bytes_written: AtomicU64,
}

/// The armed faults.
#[derive(Debug, Default)]
struct Faults {
    /// Bytes further writes may still store, and what happens past them.
    write_budget: Option<(u64, FaultKind)>,
    /// An `Enospc` budget ran out: every write fails.
    out_of_space: bool,
    /// A `TornWrite` happened: every write and sync fails.
    crashed: bool,
    /// Number of upcoming `sync_data` calls that fail.
    failing_syncs: u32,
    /// Offsets whose byte comes back with its lowest bit flipped.
    flipped_bytes: BTreeSet<u64>,
    /// Offsets whose reads fail with `EIO`.
    unreadable_bytes: BTreeSet<u64>,
    /// Where the next write lands instead of its own offset.
    misdirect_next_write: Option<u64>,
}

/// What a write does, decided under the lock and carried out outside it.
enum WritePlan {
    Write { offset: u64 },
    Torn,
}

impl FaultyStorage {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: Arc<dyn Storage>) -> FaultyStorage {
        FaultyStorage {
            inner,
            faults: Mutex::new(Faults::default()),
            read_faults_armed: AtomicBool::new(false),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
        }
    }

    /// The wrapped storage (to inspect what really reached it).
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// Lets further writes store `bytes` more bytes in total; the write that
    /// would go past that fails as `kind` describes (see [`FaultKind`]).
    /// `fail_writes_after(0, ..)` fails the very next non-empty write.
    /// Replaces any budget armed before.
    pub fn fail_writes_after(&self, bytes: u64, kind: FaultKind) {
        self.faults.lock().write_budget = Some((bytes, kind));
    }

    /// Makes the next `next_n` calls of `sync_data` fail with `EIO` without
    /// syncing anything (the data may or may not be durable, as after a real
    /// `fdatasync` error). Later calls sync normally.
    pub fn fail_sync(&self, next_n: u32) {
        self.faults.lock().failing_syncs = next_n;
    }

    /// Every read whose range covers byte `offset` returns that byte with its
    /// lowest bit flipped (a bus or memory error); the storage itself is
    /// unchanged. Several offsets may be armed at once.
    pub fn flip_bit_on_read(&self, offset: u64) {
        self.faults.lock().flipped_bytes.insert(offset);
        self.read_faults_armed.store(true, Ordering::Release);
    }

    /// Every read whose range covers byte `offset` fails with `EIO` (an
    /// unreadable sector). Several offsets may be armed at once.
    pub fn fail_read_at(&self, offset: u64) {
        self.faults.lock().unreadable_bytes.insert(offset);
        self.read_faults_armed.store(true, Ordering::Release);
    }

    /// The next write stores its data at `to_offset` instead of its own
    /// offset and reports success (a misdirected write: the intended place
    /// keeps its old contents, another place is overwritten). `to_offset`
    /// should be a multiple of [`PAGE_BYTES`].
    pub fn misdirect_next_write(&self, to_offset: u64) {
        self.faults.lock().misdirect_next_write = Some(to_offset);
    }

    /// Overwrites `len` bytes at `offset` of the underlying storage with
    /// garbage (bit rot): every byte in the range changes, nothing outside it
    /// does. Done now, through the inner storage, by reading and rewriting
    /// the whole pages that cover the range; it ignores armed faults and is
    /// not counted. The range must lie inside the storage.
    pub fn corrupt_on_disk(&self, offset: u64, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let page = PAGE_BYTES as u64;
        let end = offset.checked_add(len as u64).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "offset + len overflows u64")
        })?;
        let start = offset - offset % page;
        let span = usize::try_from(end.next_multiple_of(page) - start).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "corrupted range too large")
        })?;
        let mut pages = AlignedBuf::new(span);
        self.inner.read_at(&mut pages, start)?;
        let head = (offset - start) as usize;
        let mut state = offset ^ 0x9E37_79B9_7F4A_7C15;
        for byte in &mut pages[head..head + len] {
            // xorshift64: deterministic garbage; `| 1` makes every byte change.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte ^= (state as u8) | 1;
        }
        self.inner.write_at(&pages, start)
    }

    /// Disarms every fault, including a crash or full device already
    /// reached. Counters keep counting.
    pub fn clear(&self) {
        *self.faults.lock() = Faults::default();
        self.read_faults_armed.store(false, Ordering::Release);
    }

    /// `true` after a [`FaultKind::TornWrite`] fired (until [`Self::clear`]).
    pub fn is_crashed(&self) -> bool {
        self.faults.lock().crashed
    }

    /// Calls of `read_at` so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Calls of `write_at` so far, failed ones included.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Calls of `sync_data` so far, failed ones included.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Bytes handed to the inner storage by `write_at` (torn prefixes
    /// included; `corrupt_on_disk` excluded).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    /// Sets every counter back to zero.
    pub fn reset_counters(&self) {
        for counter in [&self.reads, &self.writes, &self.syncs, &self.bytes_written] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// Decides what the write of `len` bytes at `offset` does.
    fn plan_write(&self, len: u64, offset: u64) -> io::Result<WritePlan> {
        let mut faults = self.faults.lock();
        if faults.crashed {
            return Err(eio());
        }
        if len == 0 {
            return Ok(WritePlan::Write { offset });
        }
        if faults.out_of_space {
            return Err(enospc());
        }
        if let Some((budget, kind)) = faults.write_budget.as_mut() {
            if len > *budget {
                return match kind {
                    FaultKind::Enospc => {
                        faults.out_of_space = true;
                        Err(enospc())
                    }
                    FaultKind::TornWrite => {
                        faults.crashed = true;
                        Ok(WritePlan::Torn)
                    }
                };
            }
            *budget -= len;
        }
        let offset = faults.misdirect_next_write.take().unwrap_or(offset);
        Ok(WritePlan::Write { offset })
    }

    /// Stores the first `prefix` bytes of `buf` at `offset`, in whole pages:
    /// the last, partial page is read, patched and written back.
    fn write_prefix(&self, buf: &[u8], offset: u64, prefix: usize) -> io::Result<()> {
        let whole = prefix - prefix % PAGE_BYTES;
        if whole > 0 {
            self.inner.write_at(&buf[..whole], offset)?;
        }
        let partial = prefix - whole;
        if partial > 0 {
            let at = offset + whole as u64;
            let mut page = AlignedBuf::new(PAGE_BYTES);
            self.inner.read_at(&mut page, at)?;
            page[..partial].copy_from_slice(&buf[whole..prefix]);
            self.inner.write_at(&page, at)?;
        }
        self.bytes_written.fetch_add(prefix as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Applies armed read faults to `buf`, just read from `offset`.
    fn fault_read(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.saturating_add(buf.len() as u64);
        let faults = self.faults.lock();
        if faults.unreadable_bytes.range(offset..end).next().is_some() {
            return Err(eio());
        }
        for &at in faults.flipped_bytes.range(offset..end) {
            buf[(at - offset) as usize] ^= 1;
        }
        Ok(())
    }
}

impl Storage for FaultyStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read_at(buf, offset)?;
        if self.read_faults_armed.load(Ordering::Acquire) {
            self.fault_read(buf, offset)?;
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        match self.plan_write(buf.len() as u64, offset)? {
            WritePlan::Write { offset } => {
                self.inner.write_at(buf, offset)?;
                self.bytes_written.fetch_add(buf.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            WritePlan::Torn => {
                let prefix = buf.len() / 2 / 512 * 512;
                self.write_prefix(buf, offset, prefix)?;
                Err(eio())
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        {
            let mut faults = self.faults.lock();
            if faults.crashed {
                return Err(eio());
            }
            if faults.failing_syncs > 0 {
                faults.failing_syncs -= 1;
                return Err(eio());
            }
        }
        self.inner.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.faults.lock().crashed {
            return Err(eio());
        }
        self.inner.set_len(len)
    }

    /// Always `None`: reads must pass through [`Storage::read_at`] to be faulted.
    fn direct_fd(&self) -> Option<RawFd> {
        None
    }
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

/// Helpers shared by the I/O and fault tests.
#[cfg(test)]
pub(crate) mod test_util {
    use crate::io::{AlignedBuf, FileStorage, PAGE_BYTES, ReadEngine, ReadReq, Storage};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::io;
    use std::sync::Arc;

    /// A fresh file storage in a temporary directory under `std::env::temp_dir()`
    /// (on disk here, so O_DIRECT applies), holding `pages` patterned pages.
    pub(crate) fn patterned_storage(pages: u64) -> (tempfile::TempDir, Arc<FileStorage>) {
        let dir =
            tempfile::Builder::new().prefix("triedb-io-").tempdir_in(std::env::temp_dir()).unwrap();
        let storage = FileStorage::open(&dir.path().join("data"), true).unwrap();
        storage.set_len(pages * PAGE_BYTES as u64).unwrap();
        let mut buf = AlignedBuf::new(64 * PAGE_BYTES);
        for first in (0..pages).step_by(64) {
            let count = (pages - first).min(64);
            for i in 0..count {
                fill_page(&mut buf[i as usize * PAGE_BYTES..][..PAGE_BYTES], first + i);
            }
            storage
                .write_at(&buf[..count as usize * PAGE_BYTES], first * PAGE_BYTES as u64)
                .unwrap();
        }
        storage.sync_data().unwrap();
        (dir, Arc::new(storage))
    }

    /// Known contents of page `page`: every 8-byte word differs.
    pub(crate) fn fill_page(out: &mut [u8], page: u64) {
        for (word, chunk) in out.chunks_exact_mut(8).enumerate() {
            let value = page.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (word as u64) ^ 0xA5A5;
            chunk.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// Asserts that `data` holds pages `first..` in the pattern of `fill_page`.
    pub(crate) fn check_pages(data: &[u8], first: u64) {
        let mut expected = vec![0u8; PAGE_BYTES];
        for (i, page) in data.chunks_exact(PAGE_BYTES).enumerate() {
            fill_page(&mut expected, first + i as u64);
            assert!(page == &expected[..], "page {} differs", first + i as u64);
        }
    }

    /// Reads `count` random runs of 1–4 pages out of `pages` through one
    /// queue of `depth`, keeping it full, and checks every page. Asserts that
    /// the queue never holds more than `depth` reads and refuses one more.
    pub(crate) fn read_random_pages(
        engine: &ReadEngine,
        depth: usize,
        count: usize,
        pages: u64,
        seed: u64,
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        engine.with_queue(depth, |queue| {
            assert_eq!(queue.depth(), depth);
            assert_eq!(queue.in_flight(), 0);
            let (mut submitted, mut finished, mut most_in_flight) = (0, 0, 0);
            let mut refused_once = false;
            while finished < count {
                while submitted < count && queue.in_flight() < queue.depth() {
                    let run = rng.random_range(1..=4u64).min(pages);
                    let first = rng.random_range(0..=pages - run);
                    let req = ReadReq {
                        token: first << 8 | run,
                        offset: first * PAGE_BYTES as u64,
                        buf: AlignedBuf::with_pages(run as usize),
                    };
                    if let Err((_, err)) = queue.submit(req) {
                        panic!("submit failed: {err}");
                    }
                    submitted += 1;
                    most_in_flight = most_in_flight.max(queue.in_flight());
                }
                if !refused_once && queue.in_flight() == depth {
                    let extra = ReadReq { token: 0, offset: 0, buf: AlignedBuf::with_pages(1) };
                    let (back, err) =
                        queue.submit(extra).expect_err("a full queue must refuse a read");
                    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
                    assert_eq!(back.buf.len(), PAGE_BYTES);
                    refused_once = true;
                }
                let done = queue.wait();
                done.result.unwrap();
                let (first, run) = (done.token >> 8, done.token & 0xff);
                assert_eq!(done.buf.len(), run as usize * PAGE_BYTES);
                check_pages(&done.buf, first);
                finished += 1;
            }
            assert!(most_in_flight <= depth, "{most_in_flight} reads in flight at depth {depth}");
            assert_eq!(most_in_flight, depth.min(count));
            assert_eq!(queue.in_flight(), 0);
        });
    }

    /// Reads that reach past the end of a storage of `pages` pages fail
    /// with `UnexpectedEof`, and reads before it still work.
    pub(crate) fn reads_past_eof_fail(engine: &ReadEngine, pages: u64) {
        let page = PAGE_BYTES as u64;
        engine.with_queue(4, |queue| {
            let reqs = [
                (1, pages * page, 1),       // wholly past the end
                (2, (pages - 1) * page, 2), // straddles the end
                (3, (pages + 10) * page, 1),
                (4, (pages - 1) * page, 1), // the last page: fine
            ];
            for (token, offset, n) in reqs {
                let req = ReadReq { token, offset, buf: AlignedBuf::with_pages(n) };
                assert!(queue.submit(req).is_ok());
            }
            let mut seen = 0;
            while queue.in_flight() > 0 {
                let done = queue.wait();
                seen |= 1 << done.token;
                if done.token == 4 {
                    done.result.unwrap();
                    check_pages(&done.buf, pages - 1);
                } else {
                    let err = done.result.expect_err("read past the end must fail");
                    assert_eq!(
                        err.kind(),
                        io::ErrorKind::UnexpectedEof,
                        "token {}: {err}",
                        done.token
                    );
                }
            }
            assert_eq!(seen, 0b11110);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;
    use crate::io::{IoBackend, IoBackendChoice, ReadEngine};

    const PAGE: u64 = PAGE_BYTES as u64;

    fn faulty(pages: u64) -> (tempfile::TempDir, FaultyStorage) {
        let (dir, storage) = patterned_storage(pages);
        (dir, FaultyStorage::new(storage))
    }

    fn page_of(page: u64) -> AlignedBuf {
        let mut buf = AlignedBuf::with_pages(1);
        fill_page(&mut buf, page);
        buf
    }

    fn read_pages(storage: &dyn Storage, first: u64, n: usize) -> AlignedBuf {
        let mut buf = AlignedBuf::with_pages(n);
        storage.read_at(&mut buf, first * PAGE).unwrap();
        buf
    }

    #[test]
    fn passes_through_and_counts() {
        let (_dir, storage) = faulty(4);
        assert!(storage.direct_fd().is_none());
        storage.write_at(&page_of(100), PAGE).unwrap();
        storage.sync_data().unwrap();
        check_pages(&read_pages(&storage, 1, 1), 100);
        check_pages(&read_pages(&storage, 2, 2), 2);
        assert_eq!(
            (storage.writes(), storage.syncs(), storage.bytes_written(), storage.reads()),
            (1, 1, PAGE, 2)
        );
        storage.reset_counters();
        assert_eq!(
            storage.writes() + storage.syncs() + storage.bytes_written() + storage.reads(),
            0
        );
    }

    #[test]
    fn enospc_writes_nothing_and_sticks_until_clear() {
        let (_dir, storage) = faulty(8);
        storage.fail_writes_after(3 * PAGE, FaultKind::Enospc);
        let mut two = AlignedBuf::with_pages(2);
        fill_page(&mut two[..PAGE_BYTES], 10);
        fill_page(&mut two[PAGE_BYTES..], 11);
        storage.write_at(&two, 0).unwrap(); // 2 of 3 pages used
        let err = storage.write_at(&two, 2 * PAGE).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        check_pages(&read_pages(&storage, 2, 2), 2); // nothing of it written
        // Full stays full, even for a write that would fit the old budget.
        let err = storage.write_at(&page_of(12), 4 * PAGE).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        storage.sync_data().unwrap();
        assert_eq!(storage.bytes_written(), 2 * PAGE);
        assert_eq!(storage.writes(), 3);
        check_pages(&read_pages(&storage, 0, 2), 10);

        storage.clear();
        storage.write_at(&two, 2 * PAGE).unwrap();
        check_pages(&read_pages(&storage, 2, 2), 10);
    }

    #[test]
    fn torn_write_stores_a_prefix_then_everything_fails() {
        let (_dir, storage) = faulty(8);
        storage.fail_writes_after(0, FaultKind::TornWrite);
        let mut three = AlignedBuf::with_pages(3);
        for i in 0..3 {
            fill_page(&mut three[i * PAGE_BYTES..][..PAGE_BYTES], 20 + i as u64);
        }
        // 3 pages: the prefix is 6144 bytes, a page and a half.
        let err = storage.write_at(&three, PAGE).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert!(storage.is_crashed());
        let on_disk = read_pages(&**storage.inner(), 1, 3);
        check_pages(&on_disk[..PAGE_BYTES], 20);
        assert_eq!(&on_disk[PAGE_BYTES..PAGE_BYTES + 2048], &three[PAGE_BYTES..PAGE_BYTES + 2048]);
        let mut old = vec![0u8; PAGE_BYTES];
        fill_page(&mut old, 2);
        assert_eq!(&on_disk[PAGE_BYTES + 2048..2 * PAGE_BYTES], &old[2048..]);
        check_pages(&on_disk[2 * PAGE_BYTES..], 3);
        assert_eq!(storage.bytes_written(), 6144);

        // The machine is down: writes, syncs and growth fail; reads work.
        assert_eq!(storage.write_at(&page_of(1), 0).unwrap_err().raw_os_error(), Some(libc::EIO));
        assert_eq!(storage.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        assert!(storage.set_len(100 * PAGE).is_err());
        check_pages(&read_pages(&storage, 4, 1), 4);

        storage.clear();
        assert!(!storage.is_crashed());
        storage.write_at(&page_of(30), 0).unwrap();
        storage.sync_data().unwrap();
    }

    #[test]
    fn torn_single_page_keeps_a_sector_aligned_half() {
        let (_dir, storage) = faulty(2);
        storage.fail_writes_after(PAGE, FaultKind::TornWrite);
        storage.write_at(&page_of(40), 0).unwrap(); // within the budget
        assert!(storage.write_at(&page_of(41), PAGE).is_err());
        let on_disk = read_pages(&**storage.inner(), 0, 2);
        check_pages(&on_disk[..PAGE_BYTES], 40);
        let (mut new, mut old) = (vec![0u8; PAGE_BYTES], vec![0u8; PAGE_BYTES]);
        fill_page(&mut new, 41);
        fill_page(&mut old, 1);
        assert_eq!(&on_disk[PAGE_BYTES..PAGE_BYTES + 2048], &new[..2048]);
        assert_eq!(&on_disk[PAGE_BYTES + 2048..], &old[2048..]);
    }

    #[test]
    fn sync_fails_n_times() {
        let (_dir, storage) = faulty(1);
        storage.fail_sync(2);
        assert_eq!(storage.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        assert_eq!(storage.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        storage.sync_data().unwrap();
        assert_eq!(storage.syncs(), 3);
        storage.fail_sync(1);
        storage.clear();
        storage.sync_data().unwrap();
    }

    #[test]
    fn bit_flip_on_read_leaves_the_file_alone() {
        let (_dir, storage) = faulty(4);
        let target = 2 * PAGE + 123;
        storage.flip_bit_on_read(target);
        let clean = read_pages(&**storage.inner(), 0, 4);

        let seen = read_pages(&storage, 0, 4);
        for (i, (&a, &b)) in seen.iter().zip(clean.iter()).enumerate() {
            if i as u64 == target {
                assert_eq!(a, b ^ 1);
            } else {
                assert_eq!(a, b, "byte {i}");
            }
        }
        let mut small = [0u8; 3];
        storage.read_at(&mut small, target - 1).unwrap();
        assert_eq!(small[1], clean[target as usize] ^ 1);
        check_pages(&read_pages(&storage, 1, 1), 1); // does not cover it
        assert_eq!(read_pages(&**storage.inner(), 0, 4), clean);

        storage.clear();
        assert_eq!(read_pages(&storage, 0, 4), clean);
    }

    #[test]
    fn unreadable_byte_fails_reads_covering_it() {
        let (_dir, storage) = faulty(4);
        storage.fail_read_at(PAGE + 5);
        let mut buf = AlignedBuf::with_pages(2);
        assert_eq!(storage.read_at(&mut buf, 0).unwrap_err().raw_os_error(), Some(libc::EIO));
        check_pages(&read_pages(&storage, 2, 2), 2);
        storage.clear();
        check_pages(&read_pages(&storage, 0, 2), 0);
    }

    #[test]
    fn corrupt_on_disk_changes_exactly_the_range() {
        let (_dir, storage) = faulty(4);
        let before = read_pages(&**storage.inner(), 0, 4);
        let (offset, len) = (PAGE - 10, 30usize);
        storage.corrupt_on_disk(offset, len).unwrap();
        let after = read_pages(&**storage.inner(), 0, 4);
        for i in 0..4 * PAGE_BYTES {
            let inside = (offset as usize..offset as usize + len).contains(&i);
            assert_eq!(before[i] != after[i], inside, "byte {i}");
        }
        assert_eq!(storage.writes(), 0);
        assert!(storage.corrupt_on_disk(4 * PAGE, 1).is_err(), "past the end");
    }

    #[test]
    fn misdirected_write_lands_elsewhere() {
        let (_dir, storage) = faulty(4);
        storage.misdirect_next_write(3 * PAGE);
        storage.write_at(&page_of(50), PAGE).unwrap();
        check_pages(&read_pages(&storage, 1, 1), 1); // intended place unchanged
        check_pages(&read_pages(&storage, 3, 1), 50);
        storage.write_at(&page_of(51), PAGE).unwrap(); // only the next one
        check_pages(&read_pages(&storage, 1, 1), 51);
    }

    #[test]
    fn read_engines_over_faulty_storage() {
        let (_dir, storage) = faulty(64);
        let storage = Arc::new(storage);
        storage.flip_bit_on_read(5 * PAGE);
        assert!(
            ReadEngine::new(Arc::clone(&storage) as Arc<dyn Storage>, IoBackendChoice::IoUring, 8)
                .is_err()
        );
        let engine =
            ReadEngine::new(Arc::clone(&storage) as Arc<dyn Storage>, IoBackendChoice::Auto, 8)
                .unwrap();
        assert_eq!(engine.backend(), IoBackend::Pread);
        engine.with_queue(8, |queue| {
            let req =
                crate::io::ReadReq { token: 5, offset: 5 * PAGE, buf: AlignedBuf::with_pages(1) };
            assert!(queue.submit(req).is_ok());
            let done = queue.wait();
            done.result.unwrap();
            let mut expected = page_of(5);
            expected[0] ^= 1;
            assert_eq!(done.buf, expected);
        });
        storage.clear();
        read_random_pages(&engine, 8, 200, 64, 11);
    }
}
