//! Storage and read I/O for triedb.
//!
//! Two layers:
//! * [`Storage`]: positioned, page-aligned reads and writes on one file or block
//!   device, plus `fdatasync`. [`FileStorage`] is the real one (O_DIRECT);
//!   [`crate::fault::FaultyStorage`] wraps any storage to inject faults in tests.
//! * [`ReadEngine`]: many reads in flight at once. With io_uring it drives a
//!   per-thread ring of bounded depth (no SQPOLL); where io_uring cannot be set
//!   up, or the storage has no file descriptor to hand to the kernel, it falls
//!   back to a pread thread pool and says so once with a warning.
//!
//! All offsets and lengths handed to a [`Storage`] or a [`ReadQueue`] are
//! multiples of [`PAGE_BYTES`], and every buffer is an [`AlignedBuf`], so the
//! same calls work with O_DIRECT.

mod aligned;
mod file;
mod pool;
mod uring;

pub use aligned::AlignedBuf;
pub use file::FileStorage;

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

/// Granule of every device read and write.
pub const PAGE_BYTES: usize = 4096;

/// A file or block device addressed by byte offset.
///
/// Implementations must be safe to call from many threads at once; writes
/// and reads never overlap the same bytes concurrently (triedb guarantees it).
#[allow(clippy::len_without_is_empty)] // a device is never "empty"; len is its size
pub trait Storage: Send + Sync + 'static {
    /// Fills `buf` from `offset`. A short read is an error (`UnexpectedEof`).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every completed write durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Current size in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Grows (never shrinks below the data in use) the storage to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// A descriptor that io_uring may read from directly, with the same
    /// offsets. `None` forces the pread pool (fault injection does this).
    fn direct_fd(&self) -> Option<RawFd>;
}

/// Which read backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IoBackendChoice {
    /// io_uring when it can be set up, else the pread pool (with one warning).
    #[default]
    Auto,
    /// io_uring or an error at open.
    IoUring,
    /// The pread thread pool.
    Pread,
}

/// The backend actually in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBackend {
    IoUring,
    Pread,
}

/// One read: `buf.len()` bytes at `offset` (both page multiples).
pub struct ReadReq {
    /// Caller's tag, handed back in [`ReadDone`].
    pub token: u64,
    pub offset: u64,
    pub buf: AlignedBuf,
}

/// A finished read.
pub struct ReadDone {
    pub token: u64,
    pub buf: AlignedBuf,
    /// `Err` on an I/O error or a short read.
    pub result: io::Result<()>,
}

/// A queue of reads in flight, owned by one thread for the length of one batch.
pub trait ReadQueue {
    /// Most reads this queue keeps in flight.
    fn depth(&self) -> usize;
    /// Reads submitted and not yet handed back by [`ReadQueue::wait`].
    fn in_flight(&self) -> usize;
    /// Queues a read. The caller keeps `in_flight() < depth()`.
    /// An error here means the read was not queued; the buffer is returned.
    fn submit(&mut self, req: ReadReq) -> Result<(), (ReadReq, io::Error)>;
    /// Blocks until at least one read finishes and returns it. Called only
    /// while `in_flight() > 0`.
    fn wait(&mut self) -> ReadDone;
}

/// Creates read queues over one storage, with io_uring or the pread pool.
pub struct ReadEngine {
    // Implementation detail (see uring.rs / pool.rs).
    inner: EngineInner,
}

enum EngineInner {
    Uring(uring::UringEngine),
    Pool(pool::PoolEngine),
}

impl ReadEngine {
    /// `depth` bounds reads in flight per queue (default 32).
    /// `Auto` tries io_uring first and falls back to the pool with a single
    /// `tracing::warn!` that names the reason.
    pub fn new(
        storage: Arc<dyn Storage>,
        choice: IoBackendChoice,
        depth: usize,
    ) -> io::Result<ReadEngine> {
        let depth = depth.clamp(1, 4096);
        match choice {
            IoBackendChoice::Pread => Ok(Self::pool(storage, depth)),
            IoBackendChoice::IoUring => {
                let engine = uring::UringEngine::new(Arc::clone(&storage), depth)?;
                Ok(ReadEngine { inner: EngineInner::Uring(engine) })
            }
            IoBackendChoice::Auto => match uring::UringEngine::new(Arc::clone(&storage), depth) {
                Ok(engine) => Ok(ReadEngine { inner: EngineInner::Uring(engine) }),
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        "io_uring unavailable; triedb falls back to a pread thread pool (fewer reads in flight per core)"
                    );
                    Ok(Self::pool(storage, depth))
                }
            },
        }
    }

    fn pool(storage: Arc<dyn Storage>, depth: usize) -> ReadEngine {
        ReadEngine { inner: EngineInner::Pool(pool::PoolEngine::new(storage, depth)) }
    }

    pub fn backend(&self) -> IoBackend {
        match self.inner {
            EngineInner::Uring(_) => IoBackend::IoUring,
            EngineInner::Pool(_) => IoBackend::Pread,
        }
    }

    /// Configured depth.
    pub fn depth(&self) -> usize {
        match &self.inner {
            EngineInner::Uring(e) => e.depth(),
            EngineInner::Pool(e) => e.depth(),
        }
    }

    /// Runs `f` with a read queue of at most `depth` (≤ the configured depth)
    /// reads in flight. With io_uring the queue is this thread's ring, reused
    /// across calls. All reads submitted by `f` must be waited for before it
    /// returns (triedb's batch reader does so); stray ones are drained.
    pub fn with_queue<R>(&self, depth: usize, f: impl FnOnce(&mut dyn ReadQueue) -> R) -> R {
        let depth = depth.clamp(1, self.depth());
        match &self.inner {
            EngineInner::Uring(e) => e.with_queue(depth, f),
            EngineInner::Pool(e) => e.with_queue(depth, f),
        }
    }
}
