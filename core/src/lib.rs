//! maidian's pure core: what every other part agrees on, with no I/O. Nothing here opens a file
//! or a socket, spawns or waits; what can fail is bad input, said in a value.
//!
//! # Layout
//! - [`event`]: the domain [`Event`](event::Event) every part agrees on, and [`Day`](event::Day).
//! - [`site`]: site ids, a site's time zone ([`site::Zone`]) and the scope of a figure.
//! - [`stats`]: the seed's `/api/stats/*` figures (counts by event type and by page).
//! - [`rollup`]: the rollup catalog (one spec per rollup) and the pre-aggregated counts
//!   dashboards read, as commutative deltas; [`rollup::reach`]: distinct visitors over any
//!   period from gap counters.
//! - [`bitmap`]: visitor numbers and the compressed bitmaps of distinct visitors rollups keep.
//! - [`lifecycle`]: raw-event retention, and the rules of a visitor's access and erasure (the
//!   closure of linked ids, written once for both stores).
//! - [`source`] (campaign tags, click ids, channels) and [`bots`] (who is not a person), from
//!   the lists in `data/`.
//! - [`vitals`]: Core Web Vitals metrics, thresholds and the histogram buckets rollups keep.
//! - [`simulate`]: deterministic realistic visitors, for `maidian simulate` and benchmarks.

pub mod bitmap;
pub mod bots;
pub mod event;
pub mod lifecycle;
pub mod rollup;
pub mod simulate;
pub mod site;
pub mod source;
pub mod stats;
pub mod vitals;
