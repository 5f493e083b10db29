//! What rolling events up reads from a store, as one narrow trait both backends implement
//! ([`Reads`]: their I/O, each its own way), and the orchestration over it written once: the
//! delta a chunk of the log applies ([`delta_of`]) and the delta an erasure takes back
//! ([`taken_back`]). The arithmetic itself is `maidian_core::rollup`'s; how a delta is written
//! and committed (a lease and a pending chunk on MongoDB, one transaction embedded) stays with
//! each backend.

use maidian_core::bitmap::{self, Numbers};
use maidian_core::event::Event;
use maidian_core::lifecycle::Erasure;
use maidian_core::rollup::{Admitted, Delta, IndexDay, Known, PageEntry};
use maidian_core::site::Zones;

use crate::StoreError;

/// The reads of one generation's rollups that rolling events up needs.
pub(crate) trait Reads {
    /// The numbers of visitors `keys` (`site|visitor`) in the dictionary; with `assign`, those
    /// without one get new numbers of their site, in the order given.
    async fn numbers(&mut self, keys: &[String], assign: bool) -> Result<Numbers, StoreError>;
    /// The stored documents `keys` (rollup, key) that exist.
    async fn known(&mut self, keys: Vec<(&'static str, String)>) -> Result<Known, StoreError>;
    /// The pages with rows of their own on `days` in the page index
    /// (`maidian_core::rollup::PAGE_INDEX`), as it stood before the chunk being applied.
    async fn page_index(&mut self, days: &[IndexDay]) -> Result<Admitted, StoreError>;
}

/// The delta that rolling `events` up applies (days in `zones` as of `zones_at`): visitors
/// numbered (new ones given numbers), state settled against the documents as they stand,
/// pages beyond `cap` a day folded ([`Delta::cap_pages`]) before anything derives from their
/// keys (each visitor's reach), then channel visitors settled.
pub(crate) async fn delta_of(
    r: &mut impl Reads,
    events: &[Event],
    zones: &Zones,
    zones_at: i64,
    cap: usize,
) -> Result<Delta, StoreError> {
    let mut numbers = r.numbers(&bitmap::visitor_keys(events), true).await?;
    let delta = Delta::in_zones(events, zones, zones_at, &numbers);
    let mut known = r.known(delta.state_keys()).await?;
    numbers.extend(
        r.numbers(&maidian_core::rollup::session_visitors(&known), false)
            .await?,
    );
    let delta = delta.settle(&numbers, &known);
    let admitted = r.page_index(&delta.index_days()).await?;
    let delta = delta.cap_pages(&admitted, Some(cap));
    known.extend(r.known(delta.channel_keys()).await?);
    Ok(delta.settle_channels(&numbers, &known))
}

/// What erasing `rolled` (events already rolled up, days in `zones` as of `zones_at`) takes
/// back: the delta they were rolled up with, as decrements and deletes, and the page index
/// entries they alone made.
pub(crate) async fn taken_back(
    r: &mut impl Reads,
    rolled: &[&Event],
    zones: &Zones,
    zones_at: i64,
) -> Result<(Erasure, Vec<PageEntry>), StoreError> {
    let numbers = r
        .numbers(&bitmap::visitor_keys(rolled.iter().copied()), false)
        .await?;
    let delta = Delta::in_zones(rolled.iter().copied(), zones, zones_at, &numbers);
    let admitted = r.page_index(&delta.index_days()).await?;
    let delta = delta.settled_alone_in(&numbers, &admitted);
    let pages = delta.page_entries(&admitted);
    Ok((Erasure::of(delta), pages))
}

/// The value of a future that never waits: the embedded store's reads are synchronous (redb,
/// inside the caller's transaction), so [`Reads`] over it completes at the first poll.
pub(crate) fn at_once<T>(
    work: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    use futures_util::FutureExt;
    Box::pin(work).now_or_never().unwrap_or_else(|| {
        Err(StoreError::Embedded(
            "a synchronous read did not complete at once".into(),
        ))
    })
}
