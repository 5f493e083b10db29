//! maidian's storage and analytics core.
//!
//! # Layout
//! - [`event`]: the domain [`Event`](event::Event) every part agrees on, and [`Day`](event::Day).
//! - [`store`]: the [`Store`](store::Store) behind the collector and the CLI: MongoDB (storage of
//!   record), the embedded store (zero-setup default) and, for benchmarks only, a sink.
//! - [`site`]: site ids, the store's registry of sites and their time zones ([`site::Zone`]).
//! - [`stats`]: the seed's `/api/stats/*` figures (counts by event type and by page).
//! - [`rollup`]: the pre-aggregated counts dashboards read, as commutative deltas.
//! - [`bitmap`]: visitor numbers and the compressed bitmaps of distinct visitors rollups keep;
//!   [`rollup::reach`]: distinct visitors over any period from gap counters.
//! - [`consumer`]: the checkpointed, leased reader of the event log that keeps rollups exact.
//! - [`engine`]: summary, funnel, retention and real-time figures.
//! - [`lifecycle`]: raw-event retention, and a visitor's access and erasure (the closure of
//!   linked ids, written once for both stores).
//! - [`source`] (campaign tags, click ids, channels) and [`bots`] (who is not a person), from
//!   the lists in `data/`.
//! - [`vitals`]: Core Web Vitals metrics, thresholds and the histogram buckets rollups keep.
//! - [`export`] (CSV) and [`report`] (self-contained HTML).
//! - [`simulate`]: deterministic realistic visitors, for `maidian simulate` and benchmarks.
//! - [`client`]: the CLI's HTTP client for a collector (hyper over TCP or rustls TLS, bounded in
//!   time and size; `maidian --url`, `maidian simulate`).
//!
//! This crate never imports warp and knows no JSON request shape: the collector turns wire input
//! into [`Event`](event::Event)s before anything here sees it.

pub mod bitmap;
pub mod bots;
pub mod client;
pub mod consumer;
pub mod engine;
pub mod event;
pub mod export;
pub mod lifecycle;
pub mod report;
pub mod rollup;
pub mod simulate;
pub mod site;
pub mod source;
pub mod stats;
pub mod store;
pub mod vitals;
