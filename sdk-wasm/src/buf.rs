//! A growable byte buffer: what the tracker needs of `Vec<u8>` (append, cut, view as a
//! slice) in a fraction of its wasm. `Vec`'s growth is generic machinery (capacity overflow
//! checks, layouts, amortized growth, `try_reserve` paths: about 1.4 KB of the SDK's wasm);
//! here growth is one `realloc` call, and the SDK's allocator (`abi.rs`) keeps a block when
//! it grows within its size class.
//!
//! Beside `abi.rs`, the only `unsafe` code of the workspace: a pointer, a length and a
//! capacity, each use with its reason.
#![allow(unsafe_code)]

use alloc::alloc::{alloc, dealloc, handle_alloc_error, realloc, Layout};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// Bytes at `ptr`: `len` of them written, room for `cap` (`cap` 0: nothing allocated).
pub struct Buf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

/// The layout of `cap` bytes (`cap` ≤ `isize::MAX`, checked where it grows).
fn bytes(cap: usize) -> Layout {
    // SAFETY: alignment 1 is a power of two, and every capacity here is at most isize::MAX.
    unsafe { Layout::from_size_align_unchecked(cap, 1) }
}

impl Buf {
    pub const fn new() -> Buf {
        Buf {
            ptr: NonNull::dangling(),
            len: 0,
            cap: 0,
        }
    }

    /// A copy of `s`.
    pub fn of(s: &[u8]) -> Buf {
        let mut b = Buf::new();
        b.put(s);
        b
    }

    /// Takes over `len` bytes written at `ptr`, in `cap` bytes from the global allocator
    /// with alignment 1.
    ///
    /// # Safety
    /// `ptr` must come from `alloc(Layout::from_size_align(cap, 1))` with `cap > 0`, owned by
    /// no one else, and its first `len ≤ cap` bytes written.
    #[cfg(target_arch = "wasm32")]
    pub unsafe fn from_raw(ptr: *mut u8, len: usize, cap: usize) -> Buf {
        Buf {
            // SAFETY: the caller's allocation is not null.
            ptr: unsafe { NonNull::new_unchecked(ptr) },
            len,
            cap,
        }
    }

    /// Room for `more` bytes after the written ones.
    fn reserve(&mut self, more: usize) {
        let need = self.len.saturating_add(more);
        if need <= self.cap {
            return;
        }
        // From 256 bytes: an event's JSON fits in one or two steps.
        let cap = need.max(self.cap * 2).max(256);
        if cap > isize::MAX as usize {
            handle_alloc_error(bytes(0));
        }
        // SAFETY: a non-zero size; when something is allocated, `ptr` holds `cap` bytes of
        // this layout from the global allocator.
        let p = unsafe {
            if self.cap == 0 {
                alloc(bytes(cap))
            } else {
                realloc(self.ptr.as_ptr(), bytes(self.cap), cap)
            }
        };
        self.ptr = NonNull::new(p).unwrap_or_else(|| handle_alloc_error(bytes(cap)));
        self.cap = cap;
    }

    /// Appends `s`.
    pub fn put(&mut self, s: &[u8]) {
        self.reserve(s.len());
        // SAFETY: room for `s.len()` bytes after `len` was just made; `s` cannot lie inside
        // the room not yet written.
        unsafe {
            core::ptr::copy_nonoverlapping(s.as_ptr(), self.ptr.as_ptr().add(self.len), s.len())
        };
        self.len += s.len();
    }

    pub fn push(&mut self, c: u8) {
        self.put(&[c]);
    }

    /// Keeps the first `n` bytes (all of them when there are fewer).
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }
}

impl crate::redact::Out for Buf {
    fn put(&mut self, bytes: &[u8]) {
        Buf::put(self, bytes);
    }

    fn size(&self) -> usize {
        self.len
    }

    fn cut(&mut self, n: usize) {
        self.truncate(n);
    }
}

impl Deref for Buf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `len` bytes at `ptr` are written (a dangling but aligned pointer for 0).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` is the only access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if self.cap > 0 {
            // SAFETY: `ptr` holds `cap` bytes of this layout from the global allocator.
            unsafe { dealloc(self.ptr.as_ptr(), bytes(self.cap)) }
        }
    }
}

impl Clone for Buf {
    fn clone(&self) -> Buf {
        Buf::of(self)
    }
}

impl Default for Buf {
    fn default() -> Buf {
        Buf::new()
    }
}

impl PartialEq for Buf {
    fn eq(&self, other: &Buf) -> bool {
        **self == **other
    }
}

impl core::fmt::Debug for Buf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_cuts_and_copies() {
        let mut b = Buf::new();
        assert!(b.is_empty());
        for i in 0..1000u32 {
            b.push(i as u8);
        }
        b.put(b"tail");
        assert_eq!(b.len(), 1004);
        assert_eq!(&b[1000..], b"tail");
        assert_eq!(b[255], 255);
        let c = b.clone();
        b.truncate(3);
        assert_eq!(&*b, &[0, 1, 2]);
        assert_eq!(c.len(), 1004);
        b[0] = 9;
        assert_eq!(b, Buf::of(&[9, 1, 2]));
    }
}
