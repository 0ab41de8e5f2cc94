//! The pread thread pool: the read engine where io_uring is unavailable, or
//! where the storage has no file descriptor (fault injection).
//!
//! A fixed pool of `min(depth, 64)` threads, named `triedb-pread-N`, takes
//! jobs from one bounded channel and calls [`Storage::read_at`]. Each batch
//! ([`PoolEngine::with_queue`]) has its own completion channel, so concurrent
//! batches on different threads never see each other's reads. The threads
//! exit when the engine drops.

use super::uring::{check_offset, nothing_in_flight, queue_full};
use super::{AlignedBuf, ReadDone, ReadQueue, ReadReq, Storage};
use parking_lot::Mutex;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;

/// Most worker threads, whatever the depth.
const WORKERS_MAX: usize = 64;

/// One read handed to a worker.
struct Job {
    token: u64,
    offset: u64,
    buf: AlignedBuf,
    reply: Sender<ReadDone>,
}

/// Reads through a fixed pool of threads calling `pread`.
pub(super) struct PoolEngine {
    storage: Arc<dyn Storage>,
    depth: usize,
    /// `None` when no worker thread could be started: reads then run inline.
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl PoolEngine {
    /// Starts `min(depth, 64)` workers. Should the OS refuse threads, the
    /// engine runs with fewer, and with none it reads on the caller's thread.
    pub(super) fn new(storage: Arc<dyn Storage>, depth: usize) -> PoolEngine {
        let depth = depth.max(1);
        let (jobs, receiver) = mpsc::sync_channel::<Job>(depth);
        let receiver = Arc::new(Mutex::new(receiver));
        let wanted = depth.min(WORKERS_MAX);
        let mut workers = Vec::with_capacity(wanted);
        for n in 0..wanted {
            let storage = Arc::clone(&storage);
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("triedb-pread-{n}"))
                .spawn(move || worker(&*storage, &receiver));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(err) => {
                    tracing::warn!(error = %err, started = n, wanted, "cannot start more pread worker threads");
                    break;
                }
            }
        }
        let jobs = if workers.is_empty() { None } else { Some(jobs) };
        PoolEngine { storage, depth, jobs, workers }
    }

    /// Configured depth (most reads in flight per queue).
    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    /// Runs `f` with a queue of at most `depth` reads in flight, its
    /// completions on a channel of its own. Reads `f` leaves in flight are
    /// waited for before returning.
    pub(super) fn with_queue<R>(&self, depth: usize, f: impl FnOnce(&mut dyn ReadQueue) -> R) -> R {
        let (reply, done) = mpsc::channel();
        let mut queue = PoolQueue {
            engine: self,
            depth: depth.clamp(1, self.depth),
            in_flight: 0,
            reply,
            done,
        };
        f(&mut queue)
    }
}

impl Drop for PoolEngine {
    fn drop(&mut self) {
        // Closing the job channel ends every worker's loop.
        self.jobs = None;
        for handle in self.workers.drain(..) {
            // A worker that panicked has nothing left to clean up.
            let _ = handle.join();
        }
    }
}

/// A worker: reads jobs until the engine drops the job channel.
fn worker(storage: &dyn Storage, receiver: &Mutex<Receiver<Job>>) {
    loop {
        // Only the lock holder waits on the channel; the others queue on the lock.
        let job = receiver.lock().recv();
        let Ok(job) = job else { return };
        let done = run_job(storage, job.token, job.offset, job.buf);
        // The batch waits for every read it submitted, so its receiver is
        // alive; if not, dropping the result is all that is left to do.
        let _ = job.reply.send(done);
    }
}

/// Performs one read; a panicking storage becomes an error, not a lost read.
fn run_job(storage: &dyn Storage, token: u64, offset: u64, mut buf: AlignedBuf) -> ReadDone {
    let result = catch_unwind(AssertUnwindSafe(|| storage.read_at(&mut buf, offset)))
        .unwrap_or_else(|_| Err(io::Error::other("storage read panicked")));
    ReadDone { token, buf, result }
}

/// One batch on the pool.
struct PoolQueue<'a> {
    engine: &'a PoolEngine,
    depth: usize,
    in_flight: usize,
    reply: Sender<ReadDone>,
    done: Receiver<ReadDone>,
}

impl ReadQueue for PoolQueue<'_> {
    fn depth(&self) -> usize {
        self.depth
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn submit(&mut self, req: ReadReq) -> Result<(), (ReadReq, io::Error)> {
        if self.in_flight >= self.depth {
            return Err((req, queue_full(self.depth)));
        }
        if let Err(err) = check_offset(req.offset) {
            return Err((req, err));
        }
        let ReadReq { token, offset, buf } = req;
        match &self.engine.jobs {
            Some(jobs) => {
                let job = Job { token, offset, buf, reply: self.reply.clone() };
                if let Err(mpsc::SendError(job)) = jobs.send(job) {
                    let err = io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the pread worker threads are gone",
                    );
                    return Err((
                        ReadReq { token: job.token, offset: job.offset, buf: job.buf },
                        err,
                    ));
                }
            }
            None => {
                let done = run_job(&*self.engine.storage, token, offset, buf);
                // We hold the receiver, so this send cannot fail.
                let _ = self.reply.send(done);
            }
        }
        self.in_flight += 1;
        Ok(())
    }

    fn wait(&mut self) -> ReadDone {
        if self.in_flight == 0 {
            return nothing_in_flight();
        }
        self.in_flight -= 1;
        // We hold a sender, so `recv` fails only if a reply was lost, which
        // `worker` never does; answer with an error rather than hang or panic.
        self.done.recv().unwrap_or_else(|_| ReadDone {
            token: u64::MAX,
            buf: AlignedBuf::new(0),
            result: Err(io::Error::other("a pread worker lost a read")),
        })
    }
}

impl Drop for PoolQueue<'_> {
    fn drop(&mut self) {
        // Let no read of this batch run on after it: a later write to the
        // same place must not race with it.
        while self.in_flight > 0 {
            self.in_flight -= 1;
            if self.done.recv().is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::test_util::*;
    use crate::io::PAGE_BYTES;
    use crate::io::{IoBackend, IoBackendChoice, ReadEngine};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const PAGES: u64 = 512;

    /// Passes reads through and records the most running at once.
    struct Counting {
        inner: Arc<dyn Storage>,
        now: AtomicUsize,
        most: AtomicUsize,
    }

    impl Storage for Counting {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let result = self.inner.read_at(buf, offset);
            self.now.fetch_sub(1, Ordering::SeqCst);
            result
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            self.inner.write_at(buf, offset)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.inner.sync_data()
        }
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn direct_fd(&self) -> Option<std::os::fd::RawFd> {
            None
        }
    }

    fn pool_engine(storage: Arc<dyn Storage>, depth: usize) -> ReadEngine {
        let engine = ReadEngine::new(storage, IoBackendChoice::Pread, depth).unwrap();
        assert_eq!(engine.backend(), IoBackend::Pread);
        engine
    }

    #[test]
    fn reads_random_pages_at_depths_1_8_32() {
        let (_dir, storage) = patterned_storage(PAGES);
        let counting = Arc::new(Counting {
            inner: storage,
            now: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        });
        let engine = pool_engine(Arc::clone(&counting) as Arc<dyn Storage>, 32);
        assert_eq!(engine.depth(), 32);
        for (i, depth) in [1, 8, 32].into_iter().enumerate() {
            counting.most.store(0, Ordering::SeqCst);
            read_random_pages(&engine, depth, 1000, PAGES, i as u64);
            let most = counting.most.load(Ordering::SeqCst);
            assert!(most <= depth, "{most} reads ran at once at depth {depth}");
        }
    }

    #[test]
    fn auto_falls_back_to_the_pool_without_a_descriptor() {
        let (_dir, storage) = patterned_storage(16);
        let counting = Arc::new(Counting {
            inner: storage,
            now: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        });
        let engine = ReadEngine::new(counting, IoBackendChoice::Auto, 8).unwrap();
        assert_eq!(engine.backend(), IoBackend::Pread);
        read_random_pages(&engine, 8, 100, 16, 4);
    }

    #[test]
    fn two_threads_at_once() {
        let (_dir, storage) = patterned_storage(PAGES);
        let engine = pool_engine(storage, 16);
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let engine = &engine;
                s.spawn(move || read_random_pages(engine, 16, 500, PAGES, 50 + t));
            }
        });
    }

    #[test]
    fn read_past_eof_is_an_error() {
        let (_dir, storage) = patterned_storage(8);
        let engine = pool_engine(storage, 8);
        reads_past_eof_fail(&engine, 8);
    }

    #[test]
    fn workers_are_named_and_bounded_and_exit_on_drop() {
        let (_dir, storage) = patterned_storage(4);
        let engine = PoolEngine::new(Arc::clone(&storage) as Arc<dyn Storage>, 100);
        assert_eq!(engine.depth(), 100);
        assert_eq!(engine.workers.len(), WORKERS_MAX);
        assert_eq!(engine.workers[3].thread().name(), Some("triedb-pread-3"));
        let threads: Vec<_> = engine.workers.iter().map(|h| h.thread().clone()).collect();
        drop(engine); // joins every worker
        assert_eq!(threads.len(), WORKERS_MAX);
        assert_eq!(Arc::strong_count(&storage), 1, "workers released the storage");

        let engine = PoolEngine::new(storage, 3);
        assert_eq!(engine.workers.len(), 3);
    }

    #[test]
    fn reads_left_in_flight_are_drained_and_stray_waits_fail() {
        let (_dir, storage) = patterned_storage(64);
        let engine = pool_engine(storage, 8);
        engine.with_queue(8, |queue| {
            assert!(queue.wait().result.is_err());
            for i in 0..8u64 {
                let req = ReadReq {
                    token: i,
                    offset: i * PAGE_BYTES as u64,
                    buf: AlignedBuf::with_pages(1),
                };
                assert!(queue.submit(req).is_ok());
            }
        });
        read_random_pages(&engine, 8, 100, 64, 7);
    }

    #[test]
    fn unaligned_offsets_are_refused() {
        let (_dir, storage) = patterned_storage(4);
        let engine = pool_engine(storage, 4);
        engine.with_queue(4, |queue| {
            let req = ReadReq { token: 1, offset: 100, buf: AlignedBuf::with_pages(1) };
            let (_, err) = queue.submit(req).expect_err("unaligned offset");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert_eq!(queue.in_flight(), 0);
        });
    }
}
