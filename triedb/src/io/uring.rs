//! The io_uring read engine.
//!
//! Each thread that reads keeps one ring in a thread-local slot and reuses it
//! for every batch, so a batch costs no ring setup. Rings are not tied to an
//! engine or a file: an SQE names the file descriptor directly, so one ring
//! per thread serves every engine. No SQPOLL: the reading thread submits
//! itself, which on a small machine beats a kernel thread spinning on a core.
//!
//! A batch ([`UringEngine::with_queue`]) works like this:
//! * `submit` puts a `Read` SQE into the submission queue without entering
//!   the kernel; its `user_data` is the index of a slot that owns the buffer
//!   until the read completes;
//! * `wait` hands out a read that already finished (after one non-blocking
//!   submit if SQEs are queued, so that the queue stays full in the kernel),
//!   else reaps the completion queue, and only when that is empty enters the
//!   kernel once to submit every queued SQE and wait for one completion; so a
//!   `wait` costs at most one `io_uring_enter`, and a batch of submits costs
//!   one;
//! * a short read is resubmitted for the rest of the buffer; a read that
//!   stops at end of file is an `UnexpectedEof` error; `EINTR`/`EAGAIN` are
//!   retried;
//! * when the batch ends with reads still in flight, they are waited for
//!   before the buffers are freed: the kernel never writes into freed memory.
//!
//! If the kernel ever refuses the ring itself (an error of `io_uring_enter`
//! other than a transient one), the buffers it may still be writing into are
//! leaked on purpose, the reads fail with that error, and the ring is thrown
//! away. Should a thread fail to create its ring (e.g. out of memory), its
//! batches run the reads synchronously with `pread` and say so once.

use super::file::eof_error;
use super::{AlignedBuf, PAGE_BYTES, ReadDone, ReadQueue, ReadReq, Storage};
use io_uring::{IoUring, Probe, opcode, types};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often one read is retried after `EINTR`/`EAGAIN` before giving up.
const RETRIES_MAX: u32 = 64;

/// Largest single read the kernel accepts in one SQE.
const READ_BYTES_MAX: usize = u32::MAX as usize;

thread_local! {
    /// This thread's ring, between batches. Taken out for the length of a
    /// batch (so a nested batch on the same thread simply builds its own).
    static RING: RefCell<Option<IoUring>> = const { RefCell::new(None) };
}

/// Reads through io_uring, with one cached ring per reading thread.
pub(super) struct UringEngine {
    /// Keeps the file descriptor open while the engine exists.
    storage: Arc<dyn Storage>,
    fd: RawFd,
    depth: usize,
}

impl UringEngine {
    /// Fails when the storage has no file descriptor for the kernel, or when
    /// this kernel (or sandbox) cannot set up a ring that supports `Read`.
    pub(super) fn new(storage: Arc<dyn Storage>, depth: usize) -> io::Result<UringEngine> {
        let fd = storage.direct_fd().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "the storage offers no file descriptor to io_uring (a wrapper such as fault injection)",
            )
        })?;
        let depth = depth.max(1);
        // Probe by building the ring this thread will use anyway.
        let ring = new_ring(depth)?;
        put_ring_back(ring);
        Ok(UringEngine { storage, fd, depth })
    }

    /// Configured depth (most reads in flight per queue).
    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    /// Runs `f` with this thread's ring as a queue of at most `depth` reads
    /// in flight. Reads `f` leaves in flight are drained before returning.
    pub(super) fn with_queue<R>(&self, depth: usize, f: impl FnOnce(&mut dyn ReadQueue) -> R) -> R {
        let depth = depth.clamp(1, self.depth);
        match take_ring(depth) {
            Ok(ring) => {
                let mut queue = UringQueue::new(ring, self.fd, depth);
                f(&mut queue)
                // `queue` drops here: drains, then returns the ring to the cache.
            }
            Err(err) => {
                static WARNED: AtomicBool = AtomicBool::new(false);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %err,
                        "cannot create an io_uring ring on this thread; its reads run one at a time with pread"
                    );
                }
                let mut queue = SyncQueue { storage: &*self.storage, depth, done: VecDeque::new() };
                f(&mut queue)
            }
        }
    }
}

/// Builds a ring with room for `depth` SQEs and checks that it supports `Read`.
fn new_ring(depth: usize) -> io::Result<IoUring> {
    let entries = u32::try_from(depth.next_power_of_two()).unwrap_or(u32::MAX);
    // COOP_TASKRUN (5.19) and SINGLE_ISSUER (6.0) save interrupts; the ring
    // only ever serves the thread that made it. Older kernels get a plain one.
    let ring = match IoUring::builder().setup_coop_taskrun().setup_single_issuer().build(entries) {
        Ok(ring) => ring,
        Err(_) => IoUring::new(entries)?,
    };
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    if !probe.is_supported(opcode::Read::CODE) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel's io_uring has no Read opcode",
        ));
    }
    Ok(ring)
}

/// This thread's cached ring when it is large enough, else a new one.
fn take_ring(depth: usize) -> io::Result<IoUring> {
    let cached = RING.try_with(|slot| slot.borrow_mut().take()).ok().flatten();
    match cached {
        Some(ring) if ring.params().sq_entries() as usize >= depth => Ok(ring),
        _ => new_ring(depth),
    }
}

/// Caches `ring` for this thread unless a larger one is cached already.
fn put_ring_back(ring: IoUring) {
    // `try_with` fails only while the thread is exiting: the ring then drops.
    let _ = RING.try_with(|slot| {
        let mut slot = slot.borrow_mut();
        let keep_old = slot
            .as_ref()
            .is_some_and(|old| old.params().sq_entries() >= ring.params().sq_entries());
        if !keep_old {
            *slot = Some(ring);
        }
    });
}

/// One read the kernel owns (or will own once submitted).
struct Slot {
    token: u64,
    offset: u64,
    buf: AlignedBuf,
    /// Bytes already read (a short read resubmits the rest).
    done: usize,
    retries: u32,
}

/// A batch on one ring.
struct UringQueue {
    /// `None` only after the ring was thrown away (see `broken`).
    ring: Option<IoUring>,
    fd: RawFd,
    depth: usize,
    /// In-flight reads by `user_data`.
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Slots that hold a read (SQE queued, submitted, or being resubmitted).
    in_kernel: usize,
    /// SQEs queued since the kernel last took them.
    unsubmitted: usize,
    /// Finished reads not yet handed out by `wait`.
    ready: VecDeque<ReadDone>,
    /// Set when `io_uring_enter` fails for good: the ring is unusable.
    broken: Option<io::Error>,
    /// Scratch space for reaped CQEs.
    cqes: Vec<(u64, i32)>,
}

impl UringQueue {
    fn new(ring: IoUring, fd: RawFd, depth: usize) -> UringQueue {
        UringQueue {
            ring: Some(ring),
            fd,
            depth,
            slots: Vec::with_capacity(depth),
            free: Vec::with_capacity(depth),
            in_kernel: 0,
            unsubmitted: 0,
            ready: VecDeque::with_capacity(depth),
            broken: None,
            cqes: Vec::with_capacity(depth),
        }
    }

    /// Queues the SQE that reads the rest of slot `index`. Never enters the
    /// kernel unless the submission queue is full.
    fn push_sqe(&mut self, index: usize) -> io::Result<()> {
        let ring = match (&self.broken, self.ring.as_mut()) {
            (None, Some(ring)) => ring,
            (broken, _) => return Err(broken_error(broken.as_ref())),
        };
        let Some(slot) = self.slots[index].as_mut() else {
            return Err(io::Error::other("io_uring queue: pushing an empty slot"));
        };
        let rest = slot.buf.len() - slot.done;
        let len = u32::try_from(rest).map_err(|_| too_long(rest))?;
        // SAFETY: `done < buf.len()`, so the pointer stays inside the buffer.
        let ptr = unsafe { slot.buf.as_mut_ptr().add(slot.done) };
        let entry = opcode::Read::new(types::Fd(self.fd), ptr, len)
            .offset(slot.offset + slot.done as u64)
            .build()
            .user_data(index as u64);
        for _ in 0..2 {
            // SAFETY: the entry points at `len` bytes of the heap block owned by
            // `slots[index]`. That slot is neither freed nor reused until the
            // CQE carrying `index` is reaped (`finish`), `Drop` waits for every
            // outstanding CQE, and on a broken ring the buffer is leaked rather
            // than freed. Moving the `AlignedBuf` (e.g. when `slots` grows) does
            // not move its heap block. The fd stays open: the engine holds the
            // storage for the whole batch.
            if unsafe { ring.submission().push(&entry) }.is_ok() {
                self.unsubmitted += 1;
                return Ok(());
            }
            // Full: hand the queued SQEs to the kernel to make room. Cannot
            // happen while the ring has at least `depth` entries, kept anyway.
            let taken = submit_retrying(ring)?;
            self.unsubmitted = self.unsubmitted.saturating_sub(taken);
        }
        Err(io::Error::other("io_uring submission queue stays full"))
    }

    /// Moves every available CQE into `ready` (or resubmits short reads).
    fn reap(&mut self) {
        let Some(ring) = self.ring.as_mut() else {
            return;
        };
        self.cqes.clear();
        self.cqes.extend(ring.completion().map(|cqe| (cqe.user_data(), cqe.result())));
        let cqes = std::mem::take(&mut self.cqes);
        for &(user_data, result) in &cqes {
            self.complete(user_data as usize, result);
        }
        self.cqes = cqes;
    }

    /// Handles one CQE for slot `index`.
    fn complete(&mut self, index: usize, result: i32) {
        let Some(slot) = self.slots.get_mut(index).and_then(Option::as_mut) else {
            debug_assert!(false, "io_uring completion for unknown slot {index}");
            return;
        };
        let outcome = if result < 0 {
            let errno = -result;
            if (errno == libc::EINTR || errno == libc::EAGAIN) && slot.retries < RETRIES_MAX {
                slot.retries += 1;
                None
            } else if errno == libc::EINVAL && !slot.done.is_multiple_of(512) {
                // O_DIRECT after a read that stopped mid-block: end of file.
                Some(Err(eof_error(slot.offset, slot.buf.len(), slot.done as u64)))
            } else {
                Some(Err(io::Error::from_raw_os_error(errno)))
            }
        } else if result == 0 {
            Some(Err(eof_error(slot.offset, slot.buf.len(), slot.done as u64)))
        } else {
            slot.done += result as usize;
            if slot.done >= slot.buf.len() { Some(Ok(())) } else { None }
        };
        match outcome {
            Some(result) => self.finish(index, result),
            None => {
                if let Err(err) = self.push_sqe(index) {
                    self.finish(index, Err(err));
                }
            }
        }
    }

    /// Frees slot `index` (the kernel is done with it) and queues its result.
    fn finish(&mut self, index: usize, result: io::Result<()>) {
        if let Some(slot) = self.slots[index].take() {
            self.free.push(index);
            self.in_kernel -= 1;
            self.ready.push_back(ReadDone { token: slot.token, buf: slot.buf, result });
        }
    }

    /// Submits queued SQEs and blocks until at least one CQE is available
    /// (or a transient error says to try again). A permanent error breaks the ring.
    fn enter_and_wait(&mut self) {
        self.enter(1);
    }

    /// Hands queued SQEs to the kernel without waiting, so that reads queued
    /// while finished ones were being handed out start now.
    fn submit_queued(&mut self) {
        if self.unsubmitted > 0 && self.broken.is_none() {
            self.enter(0);
        }
    }

    /// One `io_uring_enter`: submits every queued SQE and waits for `want`
    /// completions. Transient errors return (the caller loops); a permanent
    /// one breaks the ring.
    fn enter(&mut self, want: usize) {
        let ring = match (&self.broken, self.ring.as_mut()) {
            (None, Some(ring)) => ring,
            _ => return,
        };
        match ring.submit_and_wait(want) {
            Ok(taken) => self.unsubmitted = self.unsubmitted.saturating_sub(taken),
            Err(err) => match err.raw_os_error() {
                Some(libc::EINTR) => {}
                // EAGAIN: the kernel is short of resources; EBUSY: completions
                // are backed up. Reaping (next loop turn) and a pause fix both.
                Some(libc::EAGAIN) | Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_micros(50))
                }
                _ => self.break_ring(err),
            },
        }
    }

    /// Gives up on the ring after `io_uring_enter` failed for good.
    fn break_ring(&mut self, err: io::Error) {
        tracing::error!(error = %err, "io_uring_enter failed; failing this batch's reads and dropping the ring");
        self.broken = Some(err);
    }

    /// Fails one read of a broken ring. Its buffer may still be a target of
    /// the kernel, so it is leaked and the caller gets an empty buffer.
    fn fail_one_broken(&mut self) -> Option<ReadDone> {
        let index = self.slots.iter().position(Option::is_some)?;
        let slot = self.slots[index].take()?;
        self.in_kernel -= 1;
        let token = slot.token;
        std::mem::forget(slot.buf);
        Some(ReadDone {
            token,
            buf: AlignedBuf::new(0),
            result: Err(broken_error(self.broken.as_ref())),
        })
    }
}

impl ReadQueue for UringQueue {
    fn depth(&self) -> usize {
        self.depth
    }

    fn in_flight(&self) -> usize {
        self.in_kernel + self.ready.len()
    }

    fn submit(&mut self, req: ReadReq) -> Result<(), (ReadReq, io::Error)> {
        if self.in_flight() >= self.depth {
            return Err((req, queue_full(self.depth)));
        }
        if let Err(err) = check_offset(req.offset) {
            return Err((req, err));
        }
        if self.broken.is_some() {
            let err = broken_error(self.broken.as_ref());
            return Err((req, err));
        }
        if req.buf.len() > READ_BYTES_MAX {
            let err = too_long(req.buf.len());
            return Err((req, err));
        }
        if req.buf.is_empty() {
            self.ready.push_back(ReadDone { token: req.token, buf: req.buf, result: Ok(()) });
            return Ok(());
        }
        let index = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let ReadReq { token, offset, buf } = req;
        self.slots[index] = Some(Slot { token, offset, buf, done: 0, retries: 0 });
        self.in_kernel += 1;
        match self.push_sqe(index) {
            Ok(()) => Ok(()),
            Err(err) => {
                // The SQE was not queued, so the kernel never saw the buffer.
                self.in_kernel -= 1;
                self.free.push(index);
                match self.slots[index].take() {
                    Some(slot) => Err((
                        ReadReq { token: slot.token, offset: slot.offset, buf: slot.buf },
                        err,
                    )),
                    None => Err((ReadReq { token, offset, buf: AlignedBuf::new(0) }, err)),
                }
            }
        }
    }

    fn wait(&mut self) -> ReadDone {
        loop {
            if let Some(done) = self.ready.pop_front() {
                // Queued reads go to the kernel in small batches: here
                // once a sixteenth of the depth has piled up (two reads at
                // depth 32), else with the `enter_and_wait` below, when
                // nothing is ready. Waiting for more saves syscalls but
                // leaves the device short of reads: on the VM of
                // benches/RESULTS.md a stream of lookups at depth 32 ran
                // 5–8 % faster than with a quarter.
                if self.unsubmitted * 16 >= self.depth.max(16) {
                    self.submit_queued();
                }
                return done;
            }
            if self.in_kernel == 0 {
                return nothing_in_flight();
            }
            if self.broken.is_some() {
                if let Some(done) = self.fail_one_broken() {
                    return done;
                }
                return nothing_in_flight();
            }
            self.reap();
            if self.ready.is_empty() {
                self.enter_and_wait();
            }
        }
    }
}

impl Drop for UringQueue {
    fn drop(&mut self) {
        // Never free a buffer the kernel may still write into.
        while self.in_kernel > 0 && self.broken.is_none() {
            self.reap();
            if self.in_kernel > 0 {
                self.enter_and_wait();
            }
        }
        if self.broken.is_some() {
            while self.fail_one_broken().is_some() {}
            // Dropping the ring closes it; the kernel cancels what is left.
            self.ring = None;
        }
        self.ready.clear();
        if let Some(ring) = self.ring.take() {
            put_ring_back(ring);
        }
    }
}

/// The fallback queue of a thread without a ring: each read runs at submit.
struct SyncQueue<'a> {
    storage: &'a dyn Storage,
    depth: usize,
    done: VecDeque<ReadDone>,
}

impl ReadQueue for SyncQueue<'_> {
    fn depth(&self) -> usize {
        self.depth
    }

    fn in_flight(&self) -> usize {
        self.done.len()
    }

    fn submit(&mut self, req: ReadReq) -> Result<(), (ReadReq, io::Error)> {
        if self.done.len() >= self.depth {
            return Err((req, queue_full(self.depth)));
        }
        if let Err(err) = check_offset(req.offset) {
            return Err((req, err));
        }
        let ReadReq { token, offset, mut buf } = req;
        let result = self.storage.read_at(&mut buf, offset);
        self.done.push_back(ReadDone { token, buf, result });
        Ok(())
    }

    fn wait(&mut self) -> ReadDone {
        self.done.pop_front().unwrap_or_else(nothing_in_flight)
    }
}

/// Both engines refuse a read offset that is not a page multiple, so that
/// a test on the pread pool fails where io_uring with O_DIRECT would.
pub(super) fn check_offset(offset: u64) -> io::Result<()> {
    if offset.is_multiple_of(PAGE_BYTES as u64) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("read offset {offset} is not a multiple of {PAGE_BYTES}"),
    ))
}

pub(super) fn queue_full(depth: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("read queue full: {depth} reads already in flight"),
    )
}

/// What `wait` returns when called with nothing in flight (a caller bug):
/// an error rather than blocking forever.
pub(super) fn nothing_in_flight() -> ReadDone {
    ReadDone {
        token: u64::MAX,
        buf: AlignedBuf::new(0),
        result: Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "ReadQueue::wait called with no read in flight",
        )),
    }
}

fn too_long(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("read of {len} bytes exceeds the 4 GiB io_uring limit"),
    )
}

fn broken_error(cause: Option<&io::Error>) -> io::Error {
    match cause {
        Some(err) => io::Error::new(err.kind(), format!("io_uring ring failed: {err}")),
        None => io::Error::other("io_uring ring failed"),
    }
}

/// `submit()`, retrying `EINTR`.
fn submit_retrying(ring: &IoUring) -> io::Result<usize> {
    loop {
        match ring.submit() {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::test_util::*;
    use crate::io::{IoBackend, IoBackendChoice, ReadEngine};

    const PAGES: u64 = 512;

    fn uring_engine(storage: Arc<dyn Storage>, depth: usize) -> ReadEngine {
        let engine = ReadEngine::new(storage, IoBackendChoice::IoUring, depth).unwrap();
        assert_eq!(engine.backend(), IoBackend::IoUring);
        engine
    }

    #[test]
    fn reads_random_pages_at_depths_1_8_32() {
        let (_dir, storage) = patterned_storage(PAGES);
        let engine = uring_engine(storage, 32);
        assert_eq!(engine.depth(), 32);
        for (i, depth) in [1, 8, 32].into_iter().enumerate() {
            read_random_pages(&engine, depth, 1000, PAGES, i as u64);
        }
        // The ring is reused: a second round costs no setup and still works.
        read_random_pages(&engine, 8, 100, PAGES, 9);
    }

    #[test]
    fn two_threads_at_once() {
        let (_dir, storage) = patterned_storage(PAGES);
        let engine = uring_engine(storage, 16);
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let engine = &engine;
                s.spawn(move || {
                    for round in 0..5 {
                        read_random_pages(engine, 16, 400, PAGES, t * 100 + round);
                    }
                });
            }
        });
    }

    #[test]
    fn read_past_eof_is_an_error() {
        let (_dir, storage) = patterned_storage(8);
        let engine = uring_engine(storage, 8);
        reads_past_eof_fail(&engine, 8);
    }

    #[test]
    fn read_past_eof_of_an_unaligned_file() {
        let (dir, storage) = patterned_storage(2);
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("data"))
            .unwrap()
            .set_len(2 * PAGE_BYTES as u64 + 100)
            .unwrap();
        let engine = uring_engine(storage, 4);
        engine.with_queue(4, |queue| {
            let req =
                ReadReq { token: 1, offset: PAGE_BYTES as u64, buf: AlignedBuf::with_pages(3) };
            assert!(queue.submit(req).is_ok());
            let done = queue.wait();
            assert_eq!(done.token, 1);
            assert_eq!(done.result.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        });
    }

    #[test]
    fn reads_left_in_flight_are_drained() {
        let (_dir, storage) = patterned_storage(PAGES);
        let engine = uring_engine(storage, 32);
        for round in 0..20u64 {
            engine.with_queue(32, |queue| {
                for i in 0..32u64 {
                    let page = (round * 32 + i) % PAGES;
                    let req = ReadReq {
                        token: i,
                        offset: page * PAGE_BYTES as u64,
                        buf: AlignedBuf::with_pages(1),
                    };
                    assert!(queue.submit(req).is_ok());
                }
                // Take only one back; the rest are drained on return.
                queue.wait().result.unwrap();
            });
        }
        read_random_pages(&engine, 32, 200, PAGES, 1);
    }

    #[test]
    fn nested_queues_on_one_thread() {
        let (_dir, storage) = patterned_storage(PAGES);
        let engine = uring_engine(storage, 8);
        engine.with_queue(8, |outer| {
            let req =
                ReadReq { token: 7, offset: 3 * PAGE_BYTES as u64, buf: AlignedBuf::with_pages(1) };
            assert!(outer.submit(req).is_ok());
            read_random_pages(&engine, 4, 100, PAGES, 3);
            let done = outer.wait();
            assert_eq!(done.token, 7);
            check_pages(&done.buf, 3);
        });
    }

    #[test]
    fn empty_reads_and_stray_waits() {
        let (_dir, storage) = patterned_storage(4);
        let engine = uring_engine(storage, 4);
        engine.with_queue(4, |queue| {
            assert!(
                queue.wait().result.is_err(),
                "wait with nothing in flight is an error, not a hang"
            );
            assert!(queue.submit(ReadReq { token: 5, offset: 0, buf: AlignedBuf::new(0) }).is_ok());
            assert_eq!(queue.in_flight(), 1);
            let done = queue.wait();
            assert_eq!(done.token, 5);
            done.result.unwrap();
        });
    }

    #[test]
    fn a_larger_depth_gets_a_larger_ring() {
        let (_dir, storage) = patterned_storage(PAGES);
        let small = uring_engine(Arc::clone(&storage) as Arc<dyn Storage>, 2);
        let large = uring_engine(storage, 64);
        std::thread::scope(|s| {
            s.spawn(|| {
                read_random_pages(&small, 2, 50, PAGES, 1);
                read_random_pages(&large, 64, 500, PAGES, 2);
                read_random_pages(&small, 2, 50, PAGES, 3);
            });
        });
    }

    #[test]
    fn unaligned_offsets_are_refused() {
        let (_dir, storage) = patterned_storage(4);
        let engine = uring_engine(storage, 4);
        engine.with_queue(4, |queue| {
            let req = ReadReq { token: 1, offset: 512, buf: AlignedBuf::with_pages(1) };
            let (back, err) = queue.submit(req).expect_err("unaligned offset");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert_eq!((back.token, back.buf.len()), (1, PAGE_BYTES));
            assert_eq!(queue.in_flight(), 0);
        });
    }
}
