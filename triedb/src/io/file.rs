//! [`FileStorage`]: a regular file or raw block device opened with O_DIRECT.
//!
//! triedb keeps its own node cache, so the page cache would only hold a
//! second copy of the same data: the file is opened with `O_DIRECT`. Some
//! filesystems (tmpfs before Linux 6.6, some FUSE and overlay setups) refuse
//! it with `EINVAL`;
//! the file is then reopened without it and one warning says that the page
//! cache is in use. Everything else behaves the same either way, including
//! the alignment rules below, so a test on tmpfs catches the same bugs as a
//! run on an SSD.
//!
//! Alignment rules:
//! * writes: `offset` and `buf.len()` must be multiples of [`PAGE_BYTES`]
//!   (else `InvalidInput`);
//! * reads: any offset and length; with O_DIRECT an unaligned read goes
//!   through an aligned bounce buffer;
//! * buffers: any address; with O_DIRECT an unaligned one is bounced.
//!   [`AlignedBuf`] never needs a bounce.

use super::{AlignedBuf, PAGE_BYTES, Storage};
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What the path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Regular,
    BlockDevice,
}

/// A file or raw block device, read and written at byte offsets with
/// `pread`/`pwrite`, opened with `O_DIRECT` where the filesystem allows it.
///
/// Safe to share between threads: every call is positioned (no shared file
/// cursor), and growing is serialised so it never shrinks the file.
#[derive(Debug)]
pub struct FileStorage {
    file: File,
    path: PathBuf,
    kind: Kind,
    direct: bool,
    /// Serialises `set_len` so that two concurrent grows cannot shrink.
    grow_lock: Mutex<()>,
}

impl FileStorage {
    /// Opens `path` for reading and writing, creating a regular file when it
    /// is missing and `create` is set. The path may name a regular file or a
    /// block device; anything else is `InvalidInput`.
    pub fn open(path: &Path, create: bool) -> io::Result<FileStorage> {
        FileStorage::open_mode(path, create, true)
    }

    /// `open`, optionally without even trying O_DIRECT (tests of the
    /// page-cache mode on filesystems that would accept O_DIRECT).
    fn open_mode(path: &Path, create: bool, try_direct: bool) -> io::Result<FileStorage> {
        let first_try = if try_direct {
            open_with_flags(path, create, libc::O_DIRECT)
        } else {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        };
        let (file, direct) = match first_try {
            Ok(file) => (file, true),
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                let file = open_with_flags(path, create, 0)?;
                if try_direct {
                    tracing::warn!(
                        path = %path.display(),
                        "the filesystem refuses O_DIRECT; triedb reads and writes this file \
                         through the page cache"
                    );
                }
                (file, false)
            }
            Err(err) => return Err(err),
        };
        let file_type = file.metadata()?.file_type();
        let kind = if file_type.is_file() {
            Kind::Regular
        } else if file_type.is_block_device() {
            Kind::BlockDevice
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is neither a regular file nor a block device", path.display()),
            ));
        };
        Ok(FileStorage { file, path: path.to_path_buf(), kind, direct, grow_lock: Mutex::new(()) })
    }

    /// `true` when the file is open with `O_DIRECT` (the page cache is bypassed).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Takes an exclusive advisory lock (`flock`) on the file, so a second
    /// process cannot open the same database. The kernel drops it when the
    /// process exits, however it exits. `WouldBlock` means another holder.
    pub fn lock_exclusive(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this struct owns and keeps open; it
        // touches no memory.
        let rc = unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    /// `true` when the path is a raw block device.
    pub fn is_block_device(&self) -> bool {
        self.kind == Kind::BlockDevice
    }

    /// The path this storage was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `true` when an O_DIRECT transfer can use `buf` as it is.
    fn direct_ok(&self, addr: *const u8, len: usize, offset: u64) -> bool {
        !self.direct
            || ((addr as usize).is_multiple_of(PAGE_BYTES)
                && len.is_multiple_of(PAGE_BYTES)
                && offset.is_multiple_of(PAGE_BYTES as u64))
    }

    /// Reads through a page-aligned bounce buffer covering `offset..offset+len`.
    fn read_bounced(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = offset - offset % PAGE_BYTES as u64;
        let head = (offset - start) as usize;
        let end = offset.checked_add(buf.len() as u64).ok_or_else(offset_overflow)?;
        // Read only whole pages, and stop at the end of the storage so that a
        // read ending exactly at EOF is not reported as short.
        let storage_len = self.len()?;
        if end > storage_len {
            return Err(eof_error(offset, buf.len(), storage_len.saturating_sub(offset)));
        }
        let mut bounce = AlignedBuf::new(head + buf.len());
        // Whole pages only: O_DIRECT refuses a length that is not a block multiple.
        let to_eof = (storage_len - start).next_multiple_of(PAGE_BYTES as u64);
        let want = usize::try_from(to_eof).map_or(bounce.len(), |to_eof| to_eof.min(bounce.len()));
        let got = pread_full(&self.file, &mut bounce[..want], start)?;
        if got < head + buf.len() {
            return Err(eof_error(offset, buf.len(), got.saturating_sub(head) as u64));
        }
        buf.copy_from_slice(&bounce[head..head + buf.len()]);
        Ok(())
    }
}

impl Storage for FileStorage {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if !self.direct_ok(buf.as_ptr(), buf.len(), offset) {
            return self.read_bounced(buf, offset);
        }
        let got = pread_full(&self.file, buf, offset)?;
        if got < buf.len() {
            return Err(eof_error(offset, buf.len(), got as u64));
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !offset.is_multiple_of(PAGE_BYTES as u64) || !buf.len().is_multiple_of(PAGE_BYTES) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "write of {} bytes at offset {offset}: offset and length must be multiples of {PAGE_BYTES}",
                    buf.len()
                ),
            ));
        }
        if buf.is_empty() {
            return Ok(());
        }
        if !self.direct_ok(buf.as_ptr(), buf.len(), offset) {
            let bounce = AlignedBuf::from_slice(buf);
            return pwrite_full(&self.file, &bounce, offset);
        }
        pwrite_full(&self.file, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        match self.kind {
            Kind::Regular => Ok(self.file.metadata()?.len()),
            // A block device reports size 0 in its metadata; seeking to its end
            // gives the size. The cursor is never used (all I/O is positioned).
            Kind::BlockDevice => (&self.file).seek(SeekFrom::End(0)),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let _guard = self.grow_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = self.len()?;
        if len <= current {
            return Ok(());
        }
        match self.kind {
            Kind::Regular => self.file.set_len(len),
            Kind::BlockDevice => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "block device {} holds {current} bytes; cannot grow it to {len} bytes",
                    self.path.display()
                ),
            )),
        }
    }

    fn direct_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

fn open_with_flags(path: &Path, create: bool, flags: i32) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(create).custom_flags(flags).open(path)
}

/// `pread` until `buf` is full or end of file; returns the bytes read.
/// Retries `EINTR`. With O_DIRECT, a read that stops mid-block at end of file
/// makes the next (unaligned) `pread` fail with `EINVAL`: that is end of file too.
fn pread_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset.checked_add(done as u64).ok_or_else(offset_overflow)?;
        match file.read_at(&mut buf[done..], at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) && !done.is_multiple_of(512) => {
                break;
            }
            Err(err) => return Err(err),
        }
    }
    Ok(done)
}

/// `pwrite` all of `buf`, retrying partial writes and `EINTR`.
fn pwrite_full(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset.checked_add(done as u64).ok_or_else(offset_overflow)?;
        match file.write_at(&buf[done..], at) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("pwrite at offset {at} wrote nothing"),
                ));
            }
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The error of a read that hit the end of the storage.
pub(super) fn eof_error(offset: u64, len: usize, got: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at offset {offset} hit end of storage after {got} bytes"),
    )
}

fn offset_overflow() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "offset + length overflows u64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::test_util::*;

    fn temp_dir() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("triedb-file-").tempdir_in(std::env::temp_dir()).unwrap()
    }

    #[test]
    fn write_read_sync_grow_reopen() {
        let dir = temp_dir();
        let path = dir.path().join("db");
        let storage = FileStorage::open(&path, true).unwrap();
        eprintln!("O_DIRECT in use: {}", storage.is_direct());
        assert!(!storage.is_block_device());
        assert!(storage.direct_fd().is_some());
        assert_eq!(storage.len().unwrap(), 0);

        storage.set_len(4 * PAGE_BYTES as u64).unwrap();
        assert_eq!(storage.len().unwrap(), 4 * PAGE_BYTES as u64);
        storage.set_len(PAGE_BYTES as u64).unwrap(); // never shrinks
        assert_eq!(storage.len().unwrap(), 4 * PAGE_BYTES as u64);

        let mut buf = AlignedBuf::with_pages(2);
        fill_page(&mut buf[..PAGE_BYTES], 1);
        fill_page(&mut buf[PAGE_BYTES..], 2);
        storage.write_at(&buf, PAGE_BYTES as u64).unwrap();
        // Writing past the end grows a regular file.
        let mut last = AlignedBuf::with_pages(1);
        fill_page(&mut last, 5);
        storage.write_at(&last, 5 * PAGE_BYTES as u64).unwrap();
        assert_eq!(storage.len().unwrap(), 6 * PAGE_BYTES as u64);
        storage.sync_data().unwrap();

        let mut back = AlignedBuf::with_pages(2);
        storage.read_at(&mut back, PAGE_BYTES as u64).unwrap();
        check_pages(&back, 1);
        drop(storage);

        let storage = FileStorage::open(&path, false).unwrap();
        let mut all = AlignedBuf::with_pages(6);
        storage.read_at(&mut all, 0).unwrap();
        assert!(all[..PAGE_BYTES].iter().all(|&b| b == 0));
        check_pages(&all[PAGE_BYTES..3 * PAGE_BYTES], 1);
        assert!(all[3 * PAGE_BYTES..5 * PAGE_BYTES].iter().all(|&b| b == 0));
        check_pages(&all[5 * PAGE_BYTES..], 5);
    }

    #[test]
    fn unaligned_reads_work_and_unaligned_writes_are_refused() {
        let (_dir, storage) = patterned_storage(4);
        let mut expected = vec![0u8; 4 * PAGE_BYTES];
        for p in 0..4 {
            fill_page(&mut expected[p * PAGE_BYTES..][..PAGE_BYTES], p as u64);
        }
        // Odd offsets and lengths, into a plain Vec (unaligned address).
        for (offset, len) in
            [(100usize, 50usize), (4000, 200), (1, 4 * PAGE_BYTES - 1), (PAGE_BYTES, PAGE_BYTES)]
        {
            let mut out = vec![0u8; len + 1];
            storage.read_at(&mut out[1..], offset as u64).unwrap();
            assert_eq!(&out[1..], &expected[offset..offset + len], "offset {offset} len {len}");
        }
        // A page-multiple write from an unaligned buffer is fine.
        let mut data = vec![0u8; PAGE_BYTES + 1];
        fill_page(&mut data[1..], 9);
        storage.write_at(&data[1..], 2 * PAGE_BYTES as u64).unwrap();
        let mut back = AlignedBuf::with_pages(1);
        storage.read_at(&mut back, 2 * PAGE_BYTES as u64).unwrap();
        check_pages(&back, 9);

        for (offset, len) in [(1u64, PAGE_BYTES), (0, 100), (512, 512)] {
            let err = storage.write_at(&vec![0u8; len], offset).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn reads_past_eof_are_errors() {
        let (_dir, storage) = patterned_storage(3);
        let end = 3 * PAGE_BYTES as u64;
        for (offset, len) in [
            (end, PAGE_BYTES),
            (end - PAGE_BYTES as u64, 2 * PAGE_BYTES),
            (end - 10, 20),
            (end + 1, 1),
        ] {
            let mut buf = AlignedBuf::new(len);
            let err = storage.read_at(&mut buf[..len], offset).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "offset {offset} len {len}");
        }
        // Ending exactly at the end is fine, aligned or not.
        let mut buf = vec![0u8; 10];
        storage.read_at(&mut buf, end - 10).unwrap();
    }

    #[test]
    fn reads_past_eof_of_an_unaligned_file() {
        let (dir, storage) = patterned_storage(2);
        // Make the file end 100 bytes into a third page.
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("data"))
            .unwrap()
            .set_len(2 * PAGE_BYTES as u64 + 100)
            .unwrap();
        let mut buf = AlignedBuf::with_pages(2);
        let err = storage.read_at(&mut buf, PAGE_BYTES as u64).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut tail = vec![0u8; 100];
        storage.read_at(&mut tail, 2 * PAGE_BYTES as u64).unwrap();
        assert!(tail.iter().all(|&b| b == 0));
    }

    #[test]
    fn open_errors() {
        let dir = temp_dir();
        let missing = FileStorage::open(&dir.path().join("missing"), false).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(FileStorage::open(dir.path(), false).is_err(), "a directory is not storage");
    }

    #[test]
    fn page_cache_fallback_on_tmpfs() {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return;
        }
        let Ok(dir) = tempfile::Builder::new().prefix("triedb-shm-").tempdir_in(shm) else {
            return;
        };
        let storage = FileStorage::open(&dir.path().join("db"), true).unwrap();
        eprintln!("tmpfs: O_DIRECT in use: {}", storage.is_direct());
        let mut buf = AlignedBuf::with_pages(1);
        fill_page(&mut buf, 7);
        storage.write_at(&buf, 0).unwrap();
        storage.sync_data().unwrap();
        let mut back = AlignedBuf::with_pages(1);
        storage.read_at(&mut back, 0).unwrap();
        check_pages(&back, 7);
    }

    #[test]
    fn concurrent_grow_never_shrinks() {
        let dir = temp_dir();
        let storage = std::sync::Arc::new(FileStorage::open(&dir.path().join("db"), true).unwrap());
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let storage = &storage;
                s.spawn(move || {
                    for i in 0..200u64 {
                        storage.set_len((i * 4 + t) * PAGE_BYTES as u64).unwrap();
                    }
                });
            }
        });
        assert_eq!(storage.len().unwrap(), (199 * 4 + 3) * PAGE_BYTES as u64);
    }

    #[test]
    fn page_cache_mode_behaves_the_same() {
        let dir = temp_dir();
        let path = dir.path().join("db");
        let storage = FileStorage::open_mode(&path, true, false).unwrap();
        assert!(!storage.is_direct());
        storage.set_len(3 * PAGE_BYTES as u64).unwrap();
        let mut buf = AlignedBuf::with_pages(2);
        fill_page(&mut buf[..PAGE_BYTES], 1);
        fill_page(&mut buf[PAGE_BYTES..], 2);
        storage.write_at(&buf, PAGE_BYTES as u64).unwrap();
        storage.sync_data().unwrap();
        let mut odd = vec![0u8; 300];
        storage.read_at(&mut odd, PAGE_BYTES as u64 + 7).unwrap();
        assert_eq!(&odd[..], &buf[7..307]);
        assert_eq!(
            storage.write_at(&[0u8; 512], 0).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let mut past = AlignedBuf::with_pages(2);
        let err = storage.read_at(&mut past, 2 * PAGE_BYTES as u64).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        // io_uring reads a page-cache file just as well.
        let storage: std::sync::Arc<dyn Storage> = std::sync::Arc::new(storage);
        let engine =
            crate::io::ReadEngine::new(storage, crate::io::IoBackendChoice::Auto, 4).unwrap();
        engine.with_queue(4, |queue| {
            let req = crate::io::ReadReq {
                token: 1,
                offset: 2 * PAGE_BYTES as u64,
                buf: AlignedBuf::with_pages(1),
            };
            assert!(queue.submit(req).is_ok());
            let done = queue.wait();
            done.result.unwrap();
            check_pages(&done.buf, 2);
        });
        reads_past_eof_fail(&engine, 3);
    }

    /// Destroys the contents of the device named by `TRIEDB_TEST_BLOCK_DEVICE`
    /// (e.g. a loop device: `losetup -f --show img`), so it only runs on request:
    /// `TRIEDB_TEST_BLOCK_DEVICE=/dev/loop0 cargo test --release -p wake-triedb
    /// block_device -- --ignored`.
    #[test]
    #[ignore = "needs a scratch block device in TRIEDB_TEST_BLOCK_DEVICE"]
    fn block_device() {
        let Some(path) = std::env::var_os("TRIEDB_TEST_BLOCK_DEVICE") else {
            return;
        };
        let storage = FileStorage::open(Path::new(&path), false).unwrap();
        assert!(storage.is_block_device());
        eprintln!("block device: O_DIRECT in use: {}", storage.is_direct());
        let size = storage.len().unwrap();
        assert!(size >= 4 * PAGE_BYTES as u64 && size.is_multiple_of(PAGE_BYTES as u64));
        storage.set_len(size).unwrap();
        let err = storage.set_len(size + PAGE_BYTES as u64).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        eprintln!("growing past the end: {err}");

        let last = size / PAGE_BYTES as u64 - 1;
        let mut buf = AlignedBuf::with_pages(1);
        fill_page(&mut buf, last);
        storage.write_at(&buf, last * PAGE_BYTES as u64).unwrap();
        storage.sync_data().unwrap();
        let mut back = AlignedBuf::with_pages(1);
        storage.read_at(&mut back, last * PAGE_BYTES as u64).unwrap();
        check_pages(&back, last);
        let mut past = AlignedBuf::with_pages(2);
        let err = storage.read_at(&mut past, last * PAGE_BYTES as u64).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

        let storage: std::sync::Arc<dyn Storage> = std::sync::Arc::new(storage);
        let engine =
            crate::io::ReadEngine::new(storage, crate::io::IoBackendChoice::IoUring, 4).unwrap();
        engine.with_queue(4, |queue| {
            let offset = last * PAGE_BYTES as u64;
            let req = crate::io::ReadReq { token: 1, offset, buf: AlignedBuf::with_pages(1) };
            assert!(queue.submit(req).is_ok());
            let done = queue.wait();
            done.result.unwrap();
            check_pages(&done.buf, last);
        });
        reads_past_eof_fail(&engine, last + 1);
    }
}
