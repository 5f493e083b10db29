//! maidian's analytics engine: the figures dashboards, the HTTP API and the CLI answer, read from
//! the store's rollups (and, for funnels, its event log).
//!
//! # Layout
//! - [`engine`]: summary, funnel, retention, real-time and vitals figures.
//! - [`export`] (CSV) and [`report`] (self-contained HTML).
//!
//! The crates below, re-exported under their old module names so that the collector and the CLI
//! name one crate: [`maidian_core`]'s modules ([`event`], [`site`], [`rollup`], …, no I/O) and
//! [`maidian_store`] as [`store`] with its [`consumer`]. Cargo enforces the direction: core knows
//! no store, the store knows no engine (ARCHITECTURE.md, *Layers*).
//!
//! This crate never imports warp and knows no JSON request shape: the collector turns wire input
//! into [`Event`](event::Event)s before anything here sees it.

pub mod engine;
pub mod export;
pub mod report;

pub use maidian_core::{
    bitmap, bots, event, lifecycle, rollup, simulate, site, source, stats, vitals,
};
pub use maidian_store as store;
pub use maidian_store::consumer;
