//! maidian's browser SDK, compiled to WebAssembly and driven by a small JS shim
//! (`sdk-wasm/js/`), which defines `initTracking`/`getTracking` at once, forwards DOM events
//! here as plain values and provides the browser functions the wasm imports ([`host`]).
//!
//! # Layout
//! - [`tracker`]: state and behaviour (identity, sessions, page views, queue, delivery).
//! - [`queue`], [`policy`], [`json`]: pure logic, unit-tested natively; [`redact`] is the
//!   `maidian-wire` crate the collector links too.
//! - [`buf`]: the byte buffer all text lives in.
//! - [`host`]: the few browser calls the tracker makes, implemented by the shim.
//! - `abi` (wasm only): the raw exports and imports the shim (`js/facade.js`) calls and
//!   provides, and the allocator; with [`buf`], the crate's only `unsafe` code.
//!
//! Nothing here may throw into the host page. The SDK depends on no server crate; its JSON is
//! written by hand (see [`json`]) to stay small.

// No std in the wasm: `core` + `alloc`, a trapping panic handler and no formatting machinery
// (BENCHMARKS.md, SDK size). Native builds (unit tests) keep std.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod buf;
pub mod host;
pub mod json;
pub mod policy;
pub mod queue;
pub use maidian_wire::redact;
pub mod tracker;

#[cfg(target_arch = "wasm32")]
mod abi;

/// The tracker's options from `initTracking`: the text ones asked through `info` (a
/// string parameter each would cost code on both sides); `batch_size` 0 means the default.
pub fn options(
    host: &impl host::Env,
    debug: bool,
    batch_size: u32,
    respect_dnt: bool,
) -> tracker::Options {
    use host::info;
    tracker::Options {
        endpoint: host.info(info::ENDPOINT),
        user_id: host.info(info::USER_ID),
        session_id: host.info(info::SESSION_ID),
        debug,
        batch_size: if batch_size == 0 {
            20
        } else {
            batch_size.min(500) as usize
        },
        respect_dnt,
        redact: tracker::Options::redact_list(&host.info(info::REDACT)),
    }
}

/// The commands that carry at most a flag and one string, as one entry point: the shim
/// numbers them in this order (`CMDS` in `js/facade.js`).
/// 0 the first page view, 1 flush (`flag`: even a partial batch; returns how many events
/// the request carries), 2 retry, 3 queue length (returned), 4 opt out, 5 opt in,
/// 6 navigated (returns 1 when a new page view started), 7 restored from the
/// back/forward cache, 8 shown, 9 hidden, 10 `trackPageView(data)`, 11 `setUserId(id)`.
/// `data`: for 6 and 9, the ending page view's Core Web Vitals as a JSON object (`{}` or
/// empty when none were measured); for 10, `JSON.stringify(data)`; for 11, the id (empty: none).
pub fn command<H: host::Env>(
    s: &mut tracker::State<H>,
    code: u32,
    flag: bool,
    data: &[u8],
) -> usize {
    match code {
        0 => s.initial_view(),
        1 => return s.flush(flag),
        2 => s.retry(),
        3 => return s.queue_len(),
        4 => s.set_off(true),
        5 => s.set_off(false),
        6 => return usize::from(s.navigated(data)),
        7 => s.restored(),
        8 => s.shown(),
        9 => s.hidden(data),
        10 => s.page_view(b"", None, data),
        11 => s.set_user(data),
        _ => {}
    }
    0
}

/// A panic in the wasm traps (the shim catches the exception and turns tracking off): no
/// message is formatted, so no formatting code is linked.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
