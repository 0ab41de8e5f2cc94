//! Page-aligned heap buffers for O_DIRECT and io_uring.
//!
//! O_DIRECT wants the user buffer, the file offset and the length all aligned
//! to the device's logical block size. Aligning every buffer to a whole page
//! ([`PAGE_BYTES`], 4096) covers every logical block size in use (512 and
//! 4096), and keeping the length a page multiple means a buffer can always be
//! handed to the kernel as it is.

use super::PAGE_BYTES;
use std::alloc::{self, Layout};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// A zero-initialised heap buffer whose start is aligned to [`PAGE_BYTES`]
/// and whose length is a multiple of [`PAGE_BYTES`].
///
/// It owns its memory (freed on drop) and may move between threads; the
/// kernel may write into it only while an I/O that borrowed it is in flight,
/// which the read engines guarantee by owning the buffer for that time.
pub struct AlignedBuf {
    /// Start of the allocation, or a dangling page-aligned pointer when `len == 0`.
    ptr: NonNull<u8>,
    /// Bytes allocated and initialised; always a multiple of `PAGE_BYTES`.
    len: usize,
}

// SAFETY: `AlignedBuf` uniquely owns its allocation (like `Box<[u8]>`); there
// is no shared interior state, so moving it to another thread is sound.
unsafe impl Send for AlignedBuf {}
// SAFETY: `&AlignedBuf` only gives out `&[u8]` (no interior mutability), so
// sharing references between threads is sound, as for `Box<[u8]>`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes rounded up to a multiple of
    /// [`PAGE_BYTES`] (`len()` reports the rounded length).
    ///
    /// Aborts through [`alloc::handle_alloc_error`] when memory is exhausted,
    /// like `Vec`; panics only if the rounded length overflows `isize`.
    pub fn new(len: usize) -> AlignedBuf {
        let len = round_up_to_page(len);
        if len == 0 {
            return AlignedBuf { ptr: dangling_page(), len: 0 };
        }
        let layout = layout_for(len);
        // SAFETY: `layout` has a non-zero size (len > 0) and a valid alignment.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout);
        };
        AlignedBuf { ptr, len }
    }

    /// A zeroed buffer of `pages` pages.
    pub fn with_pages(pages: usize) -> AlignedBuf {
        AlignedBuf::new(
            pages.checked_mul(PAGE_BYTES).expect("AlignedBuf: page count overflows usize"),
        )
    }

    /// A buffer holding a copy of `data`, zero-padded to a page multiple.
    pub fn from_slice(data: &[u8]) -> AlignedBuf {
        let mut buf = AlignedBuf::new(data.len());
        buf[..data.len()].copy_from_slice(data);
        buf
    }

    /// Length in bytes (a multiple of [`PAGE_BYTES`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for a zero-length buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of whole pages.
    pub fn pages(&self) -> usize {
        self.len / PAGE_BYTES
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for reads of `len` initialised bytes (or is a
        // non-null aligned dangling pointer with `len == 0`), and the borrow of
        // `self` prevents mutation for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Start of the buffer (page-aligned).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Start of the buffer (page-aligned), for handing to the kernel.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Sets the length to `len` rounded up to a page multiple, keeping the
    /// common prefix and zeroing any new bytes. Reallocates only when the
    /// rounded length changes.
    pub fn resize(&mut self, len: usize) {
        let new_len = round_up_to_page(len);
        if new_len == self.len {
            return;
        }
        if new_len == 0 {
            *self = AlignedBuf::new(0);
            return;
        }
        if self.len == 0 {
            *self = AlignedBuf::new(new_len);
            return;
        }
        let old_layout = layout_for(self.len);
        // Validates that `new_len` is a legal size for this alignment.
        let new_layout = layout_for(new_len);
        // SAFETY: `ptr` was allocated by the global allocator with `old_layout`
        // (non-zero size); `new_len` is non-zero and, with the same alignment,
        // does not overflow `isize` when rounded (checked by `layout_for`).
        // `realloc` keeps the alignment of `old_layout`.
        let raw = unsafe { alloc::realloc(self.ptr.as_ptr(), old_layout, new_len) };
        let Some(ptr) = NonNull::new(raw) else {
            // The old block is still valid and owned by `self`.
            alloc::handle_alloc_error(new_layout);
        };
        if new_len > self.len {
            // SAFETY: the new block is valid for `new_len` bytes; the bytes in
            // `self.len..new_len` are uninitialised and get zeroed here.
            unsafe { ptr.as_ptr().add(self.len).write_bytes(0, new_len - self.len) };
        }
        self.ptr = ptr;
        self.len = new_len;
    }

    /// Grows the buffer to at least `len` bytes (rounded up to a page
    /// multiple), keeping its contents; never shrinks.
    pub fn ensure_len(&mut self, len: usize) {
        if len > self.len {
            self.resize(len);
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: `ptr` was allocated by the global allocator with exactly this
        // layout (`len` non-zero, alignment `PAGE_BYTES`) and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout_for(self.len)) };
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsMut<[u8]> for AlignedBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl Clone for AlignedBuf {
    fn clone(&self) -> AlignedBuf {
        let mut copy = AlignedBuf::new(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

impl Default for AlignedBuf {
    fn default() -> AlignedBuf {
        AlignedBuf::new(0)
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf").field("len", &self.len).finish()
    }
}

impl PartialEq for AlignedBuf {
    fn eq(&self, other: &AlignedBuf) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for AlignedBuf {}

/// Rounds `len` up to a multiple of `PAGE_BYTES`.
fn round_up_to_page(len: usize) -> usize {
    len.checked_next_multiple_of(PAGE_BYTES).expect("AlignedBuf: length overflows usize")
}

/// The allocation layout of a buffer of `len` bytes (`len` a page multiple).
fn layout_for(len: usize) -> Layout {
    Layout::from_size_align(len, PAGE_BYTES).expect("AlignedBuf: length overflows isize")
}

/// A non-null, page-aligned pointer that is never dereferenced (zero length).
fn dangling_page() -> NonNull<u8> {
    NonNull::new(std::ptr::without_provenance_mut::<u8>(PAGE_BYTES)).unwrap_or(NonNull::dangling())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for len in [1, 100, 4096, 4097, 3 * 4096, 1 << 20] {
            let buf = AlignedBuf::new(len);
            assert_eq!(buf.as_ptr() as usize % PAGE_BYTES, 0, "len {len}");
            assert_eq!(buf.len() % PAGE_BYTES, 0);
            assert!(buf.len() >= len && buf.len() < len + PAGE_BYTES);
            assert!(buf.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn zero_length() {
        let mut buf = AlignedBuf::new(0);
        assert!(buf.is_empty());
        assert_eq!(buf.as_slice(), &[] as &[u8]);
        assert_eq!(buf.as_mut_ptr() as usize % PAGE_BYTES, 0);
        buf.ensure_len(1);
        assert_eq!(buf.len(), PAGE_BYTES);
        buf.resize(0);
        assert!(buf.is_empty());
    }

    #[test]
    fn write_read_clone_resize() {
        let mut buf = AlignedBuf::with_pages(2);
        assert_eq!(buf.pages(), 2);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = i as u8;
        }
        let copy = buf.clone();
        assert_eq!(copy, buf);
        assert_ne!(copy.as_ptr(), buf.as_ptr());

        buf.resize(5 * PAGE_BYTES);
        assert_eq!(buf.as_ptr() as usize % PAGE_BYTES, 0);
        assert_eq!(&buf[..2 * PAGE_BYTES], copy.as_slice());
        assert!(buf[2 * PAGE_BYTES..].iter().all(|&b| b == 0));

        buf.resize(1);
        assert_eq!(buf.len(), PAGE_BYTES);
        assert_eq!(&buf[..], &copy[..PAGE_BYTES]);

        buf.ensure_len(10); // no shrink, no change
        assert_eq!(buf.len(), PAGE_BYTES);
    }

    #[test]
    fn from_slice_pads() {
        let buf = AlignedBuf::from_slice(b"hello");
        assert_eq!(buf.len(), PAGE_BYTES);
        assert_eq!(&buf[..5], b"hello");
        assert!(buf[5..].iter().all(|&b| b == 0));
    }

    #[test]
    fn send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AlignedBuf>();
        let buf = AlignedBuf::with_pages(1);
        std::thread::spawn(move || assert_eq!(buf.len(), PAGE_BYTES)).join().unwrap();
    }
}
