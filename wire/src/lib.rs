//! What the browser SDK and the collector must agree on byte for byte, in one `no_std` crate
//! with no dependency that both compile.
//!
//! # Layout
//! - [`redact`]: sensitive URL parts redacted before an event is stored (the SDK redacts before
//!   sending, the collector again before storing, with the same code).

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod redact;
