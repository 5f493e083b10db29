//! The wasm's boundary with the hand-written shim (`sdk-wasm/js/facade.js`): exports and
//! imports of numbers and (pointer, length) pairs, instead of wasm-bindgen's generated glue
//! and export shims (2.5 KB gzip of JS and about 300 B of wasm per export; BENCHMARKS.md, SDK
//! size); and the wasm's allocator.
//!
//! With `buf.rs`, the workspace's only `unsafe` code, for what a raw boundary needs and
//! nothing else: the exported symbols (`export_name`), calls to the imported functions, taking
//! back a string the shim wrote into memory it got from [`alloc`], the allocator, and the
//! tracker held in a static. Each has its reason beside it.
//!
//! Exports and imports go by one-letter names (each name is bytes in both the wasm and the
//! shim): exports `a` [`alloc`], `f` [`free`], `i` [`init`], `c` [`cmd`], `e` [`event`],
//! `s` [`session`], `r` [`sent`], `k` [`element`], `y` [`scrolled`] (and `memory`); imports
//! `n` now, `r` rand, `g` get, `s` set, `i` info, `f` send (fetch), `b` beacon, `l` later,
//! `o` log, `p` put.
//!
//! Strings cross as UTF-8: into the wasm, the shim asks [`alloc`] for `n` bytes, writes
//! the string there and passes (pointer, `n`); the callee owns them from then on (as a
//! `Buf`: the tracker works on bytes, so nothing is validated or converted). Out of the
//! wasm, an import gets (pointer, length) of bytes it reads before returning. An import
//! returning a string (`get`, `info`) writes it the same way into memory from [`alloc`], stores
//! its length at the address it is given, and returns the pointer (0 for none).
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;

use crate::buf::Buf;
use crate::host::{Env, Host};
use crate::tracker::State;

/// The imports, each under a one-letter name (the names are bytes of the wasm and of the
/// shim's import object; `js/facade.js` lists them the same way).
mod raw {
    #[link(wasm_import_module = "h")]
    extern "C" {
        #[link_name = "n"]
        pub fn now() -> f64;
        #[link_name = "r"]
        pub fn rand() -> f64;
        #[link_name = "g"]
        pub fn get(key: *const u8, key_len: usize, len: *mut usize) -> *mut u8;
        #[link_name = "s"]
        pub fn set(key: *const u8, key_len: usize, value: *const u8, value_len: usize, some: u32);
        #[link_name = "i"]
        pub fn info(what: u32, len: *mut usize) -> *mut u8;
        #[link_name = "f"]
        pub fn send(url: *const u8, url_len: usize, body: *const u8, body_len: usize);
        #[link_name = "b"]
        pub fn beacon(url: *const u8, url_len: usize, body: *const u8, body_len: usize) -> u32;
        #[link_name = "l"]
        pub fn later(ms: u32);
        #[link_name = "o"]
        pub fn log(msg: *const u8, msg_len: usize);
        #[link_name = "p"]
        pub fn put(s: *const u8, len: usize);
    }
}

// SAFETY (every call into `raw`): the shim's functions take only numbers, read `len` bytes
// at each (pointer, length) pair given, which are live byte slices for the call, and write at
// most a `usize` at `len`, which points at a live local.

impl Env for Host {
    fn now(&self) -> f64 {
        unsafe { raw::now() }
    }

    fn rand(&self) -> f64 {
        unsafe { raw::rand() }
    }

    fn get(&self, key: &str) -> Option<Buf> {
        let mut len = 0;
        let p = unsafe { raw::get(key.as_ptr(), key.len(), &mut len) };
        returned(p, len)
    }

    fn set(&self, key: &str, value: Option<&[u8]>) {
        let v = value.unwrap_or_default();
        let some = u32::from(value.is_some());
        unsafe { raw::set(key.as_ptr(), key.len(), v.as_ptr(), v.len(), some) }
    }

    fn info(&self, what: u32) -> Buf {
        let mut len = 0;
        let p = unsafe { raw::info(what, &mut len) };
        returned(p, len).unwrap_or_default()
    }

    fn send(&self, url: &[u8], body: &[u8]) {
        unsafe { raw::send(url.as_ptr(), url.len(), body.as_ptr(), body.len()) }
    }

    fn beacon(&self, url: &[u8], body: &[u8]) -> bool {
        unsafe { raw::beacon(url.as_ptr(), url.len(), body.as_ptr(), body.len()) != 0 }
    }

    fn later(&self, ms: u32) {
        unsafe { raw::later(ms) }
    }

    fn log(&self, msg: &[u8]) {
        unsafe { raw::log(msg.as_ptr(), msg.len()) }
    }
}

/// A string an import returned: its pointer (null for none) and the length it stored.
fn returned(p: *mut u8, len: usize) -> Option<Buf> {
    (!p.is_null()).then(|| take(p, len))
}

/// `n` bytes for the shim to write a string into; given up here, taken back by [`take`].
#[export_name = "a"]
pub extern "C" fn alloc(n: usize) -> *mut u8 {
    // SAFETY: a layout of at least one byte, as `take` rebuilds it.
    unsafe { alloc::alloc::alloc(Layout::from_size_align_unchecked(n.max(1), 1)) }
}

/// Gives back memory from [`alloc`]`(n)` that the shim did not hand over (it found the
/// string was not ASCII and asks for the room its UTF-8 needs instead).
#[export_name = "f"]
pub extern "C" fn free(p: *mut u8, n: usize) {
    drop(take(p, n));
}

/// The bytes at `p`, `n` long, in memory from [`alloc`]`(n)`: owned from here on.
fn take(p: *mut u8, n: usize) -> Buf {
    // SAFETY: `p` is what `alloc(n)` returned: `max(n, 1)` bytes from the global allocator
    // with alignment 1; the shim wrote `n` of them and hands each allocation over once.
    unsafe { Buf::from_raw(p, n, n.max(1)) }
}

/// The wasm's allocator, in a few dozen bytes where dlmalloc takes a quarter of the SDK and
/// a general free-list allocator a few hundred: blocks of 2^k bytes (16 B at least), a free
/// list per size class, new blocks cut from pages the memory grows by. A block freed is reused
/// by the next request of its class, so a long-lived page that keeps recording reuses the
/// same blocks instead of growing; a buffer growing within its class keeps its block.
struct Heap(UnsafeCell<Blocks>);

struct Blocks {
    /// Each class's free blocks, linked through their first word.
    free: [*mut u8; 32],
    /// Where the unused part of the grown memory starts and ends.
    next: usize,
    end: usize,
}

// SAFETY: as `Slot` below: one thread, and no allocation runs inside another.
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap(UnsafeCell::new(Blocks {
    free: [core::ptr::null_mut(); 32],
    next: 0,
    end: 0,
}));

/// The size class of `size` bytes: blocks of `1 << class` bytes hold it.
fn class(size: usize) -> usize {
    (usize::BITS - (size.max(16) - 1).leading_zeros()) as usize
}

// SAFETY (the whole impl): blocks are handed out once until freed; every block of class `c`
// is `1 << c` bytes at a multiple of 16 (pages are 64 KiB, and blocks are cut from them in
// sizes that are multiples of 16), enough for every alignment the tracker asks (at most 8).
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > 1 << 30 {
            return core::ptr::null_mut();
        }
        let b = unsafe { &mut *self.0.get() };
        let c = class(layout.size());
        let p = b.free[c];
        if !p.is_null() {
            b.free[c] = unsafe { *p.cast::<*mut u8>() };
            return p;
        }
        let size = 1 << c;
        if b.end - b.next < size {
            let pages = (size >> 16) + 1;
            let first = core::arch::wasm32::memory_grow(0, pages);
            if first == usize::MAX {
                return core::ptr::null_mut();
            }
            if b.end != first << 16 {
                b.next = first << 16;
            }
            b.end = (first + pages) << 16;
        }
        b.next += size;
        (b.next - size) as *mut u8
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let b = unsafe { &mut *self.0.get() };
        let c = class(layout.size());
        unsafe { *p.cast::<*mut u8>() = b.free[c] };
        b.free[c] = p;
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        if class(size) == class(layout.size()) {
            return p;
        }
        let q = unsafe { self.alloc(Layout::from_size_align_unchecked(size, layout.align())) };
        if !q.is_null() {
            unsafe {
                core::ptr::copy_nonoverlapping(p, q, layout.size().min(size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}

/// The tracker, once `init` made it.
struct Slot(UnsafeCell<Option<State<Host>>>);

// SAFETY: the wasm runs on the page's one thread (no wasm threads, no shared memory).
unsafe impl Sync for Slot {}

static TRACKER: Slot = Slot(UnsafeCell::new(None));

/// Runs `f` on the tracker; before `init`, returns the default.
fn with<R: Default>(f: impl FnOnce(&mut State<Host>) -> R) -> R {
    // SAFETY: one thread, and no export runs inside another: the imports never call back
    // into the wasm except through `alloc`, which does not touch the tracker (the shim
    // answers `send` and `later` from later tasks). So this is the only reference.
    match unsafe { &mut *TRACKER.0.get() } {
        Some(s) => f(s),
        None => R::default(),
    }
}

/// `initTracking`'s flags and batch size, once the wasm loaded: the text options are asked
/// through `info`.
#[export_name = "i"]
pub extern "C" fn init(debug: u32, batch_size: u32, respect_dnt: u32) {
    let opts = crate::options(&Host, debug != 0, batch_size, respect_dnt != 0);
    let state = State::new(Host, opts);
    // SAFETY: as in `with`; nothing else holds a reference while an export runs.
    unsafe { *TRACKER.0.get() = Some(state) };
}

/// [`crate::command`].
#[export_name = "c"]
pub extern "C" fn cmd(code: u32, flag: u32, p: *mut u8, n: usize) -> usize {
    let data = take(p, n);
    with(|s| crate::command(s, code, flag != 0, &data))
}

/// `trackEvent(type, data)`: `data` is `JSON.stringify(data)` without reserved keys.
#[export_name = "e"]
pub extern "C" fn event(tp: *mut u8, tn: usize, dp: *mut u8, dn: usize) {
    let (event_type, data) = (take(tp, tn), take(dp, dn));
    with(|s| {
        if let Some(mut o) = s.event(&event_type) {
            o.fields(&data);
            s.commit(o);
        }
    });
}

/// `getSessionId()`: handed to the shim through `put`.
#[export_name = "s"]
pub extern "C" fn session() {
    with(|s| {
        let id = s.session_id();
        unsafe { raw::put(id.as_ptr(), id.len()) }
    });
}

/// The answer to `send` (`retry_after_ms` below 0: none); returns how many events were stored.
#[export_name = "r"]
pub extern "C" fn sent(status: u32, retry_after_ms: i32) -> usize {
    let status = u16::try_from(status).unwrap_or(0);
    with(|s| s.sent(status, u32::try_from(retry_after_ms).ok()))
}

/// A click (`id`, class, text, page x/y) or, with `form`, a form submit (`id`, name, action).
#[export_name = "k"]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn element(
    form: u32,
    ip: *mut u8,
    il: usize,
    ap: *mut u8,
    al: usize,
    bp: *mut u8,
    bl: usize,
    x: i32,
    y: i32,
) {
    let (id, a, b) = (take(ip, il), take(ap, al), take(bp, bl));
    with(|s| s.element(form != 0, &id, &a, &b, x, y));
}

#[export_name = "y"]
pub extern "C" fn scrolled(scroll_y: f64, viewport_h: f64, doc_h: f64) {
    with(|s| s.scrolled(scroll_y, viewport_h, doc_h));
}
