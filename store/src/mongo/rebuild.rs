//! MongoDB rollup generations: `maidian rollups rebuild` builds a new generation from the whole
//! log while the live one keeps going and hands it over; the lease holder catches it up and
//! switches (`step_next`), or starts one afresh for another rollup format; retired generations
//! are dropped after a grace period.

use mongodb::bson::{self, doc, Bson, Document};

use crate::mongo::rollups::*;
use crate::mongo::MongoStore;
use crate::protocol::{now_ms, ConsumerConfig, Step};
use crate::StoreError;
use maidian_core::rollup;

impl MongoStore {
    pub(crate) fn rebuild_doc(&self) -> mongodb::Collection<Document> {
        self.state()
    }

    pub(crate) async fn read_rebuild(&self) -> Result<Rebuild, StoreError> {
        match self.rebuild_doc().find_one(doc! { "_id": REBUILD }).await? {
            Some(d) => bson::from_document(d).map_err(|e| StoreError::Corrupt(e.to_string())),
            None => Ok(Rebuild::default()),
        }
    }

    /// The lease holder takes a generation a rebuild handed over: it becomes `next` (caught
    /// up with `live`, then switched to), and the rebuild document is cleared. `None` when
    /// there is none to take.
    pub(crate) async fn take_handover(
        &self,
        cfg: &ConsumerConfig,
        st: &State,
    ) -> Result<Option<Step>, StoreError> {
        let rb = self.read_rebuild().await?;
        let Some(handed) = rb.handed else {
            return Ok(None);
        };
        if handed.generation > st.live.generation {
            // The rebuilt generation is of the current format, and replaces the live one.
            self.set_state(
                &cfg.owner,
                doc! { "next": to_bson(&handed)?, "format": FORMAT },
            )
            .await?;
        }
        self.rebuild_doc()
            .update_one(
                doc! { "_id": REBUILD, "building": handed.generation },
                doc! { "$set": { "building": Bson::Null, "handed": Bson::Null } },
            )
            .await?;
        Ok(Some(Step::Consumed(0)))
    }

    /// Retires the live generation of an older format and starts a new one at the start of
    /// the log.
    pub(crate) async fn restart_in_new_format(
        &self,
        cfg: &ConsumerConfig,
        st: &State,
        now: i64,
    ) -> Result<Step, StoreError> {
        crate::refuse_other_format(format_of(st), st.expired_before)?;
        let generation = st.live.generation + 1;
        bounded(self.ensure_gen_indexes(generation)).await?;
        let mut retired = st.retired.clone();
        retired.push(Retired {
            generation: st.live.generation,
            at: now,
        });
        let live = Cursor {
            generation,
            zones_at: now,
            ..Cursor::default()
        };
        self.set_state(
            &cfg.owner,
            doc! { "live": to_bson(&live)?, "retired": to_bson(&retired)?, "clear_to": 0_i64, "format": FORMAT },
        )
        .await?;
        tracing::warn!(
            generation,
            "rollups of an older format: rolling the event log up again into a new generation"
        );
        Ok(Step::Consumed(0))
    }

    /// A rebuilt generation catches up with `live` (never passing it), then replaces it.
    pub(crate) async fn step_next(
        &self,
        cfg: &ConsumerConfig,
        st: &State,
        next: &Cursor,
    ) -> Result<Step, StoreError> {
        if let Some(p) = &next.pending {
            return Ok(Step::Consumed(
                self.finish_pending(cfg, Which::Next, next, p).await?,
            ));
        }
        if next.pos() < st.live.pos() {
            let events = self
                .read_log(next.pos(), Some(st.live.pos()), Some(self.read_limit(cfg)))
                .await?;
            if !events.is_empty() {
                self.run_chunk(cfg, Which::Next, next, &events, None)
                    .await?;
                return Ok(Step::Consumed(events.len()));
            }
        }
        let mut retired = st.retired.clone();
        retired.push(Retired {
            generation: st.live.generation,
            at: now_ms(),
        });
        let mut live = next.clone();
        // Same events, so the same position (the rebuild may have stopped just short of an
        // identical position when the tail was empty).
        live.pos_t = st.live.pos_t;
        live.pos_id = st.live.pos_id.clone();
        self.set_state(
            &cfg.owner,
            doc! { "live": to_bson(&live)?, "next": Bson::Null, "retired": to_bson(&retired)? },
        )
        .await?;
        tracing::info!(
            from = st.live.generation,
            to = live.generation,
            events = live.events,
            "rollups switched to the rebuilt generation"
        );
        Ok(Step::Switched)
    }

    /// Drops generations replaced more than a grace period ago.
    pub(crate) async fn drop_retired(
        &self,
        cfg: &ConsumerConfig,
        st: &State,
        now: i64,
    ) -> Result<(), StoreError> {
        let (old, keep): (Vec<Retired>, Vec<Retired>) = st
            .retired
            .iter()
            .cloned()
            .partition(|r| now - r.at > RETIRE_GRACE_MS);
        if old.is_empty() {
            return Ok(());
        }
        for r in &old {
            self.drop_generation(r.generation).await?;
        }
        self.set_state(&cfg.owner, doc! { "retired": to_bson(&keep)? })
            .await
    }

    pub(crate) async fn drop_generation(&self, generation: i64) -> Result<(), StoreError> {
        for name in rollup::all() {
            self.db
                .collection::<Document>(&gen_name(name, generation))
                .drop()
                .await?;
        }
        Ok(())
    }

    /// Builds a new generation from the whole log while the live one keeps going, hands it to
    /// the consumer to catch up and switch, and waits for the switch (running the consumer
    /// itself when no collector holds the lease).
    pub async fn rebuild_rollups(
        &self,
        cfg: &ConsumerConfig,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, StoreError> {
        let generation = self.claim_rebuild().await?;
        let built = self
            .build_generation(cfg, generation, &mut progress)
            .await?;
        self.hand_over(cfg, generation, &built, &mut progress).await
    }

    /// Claims the next generation for a rebuild (refused while another runs, or once
    /// retention deleted raw events), dropping orphans of crashed ones and indexing it.
    async fn claim_rebuild(&self) -> Result<i64, StoreError> {
        self.ready().await?;
        let st = self.ensure_state("", 0).await?;
        if st.expired_before > 0 {
            return Err(StoreError::Busy(maidian_core::lifecycle::no_rebuild(
                st.expired_before,
            )));
        }
        let rb = self.read_rebuild().await?;
        let generation = [
            Some(st.live.generation),
            st.next.as_ref().map(|n| n.generation),
            rb.building,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0)
            + 1;
        let now = now_ms();
        match self
            .rebuild_doc()
            .insert_one(doc! { "_id": REBUILD, "building": Bson::Null, "building_at": 0_i64 })
            .await
        {
            Ok(_) => {}
            Err(e) if is_duplicate(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let claimed = if st.next.is_some() {
            0
        } else {
            self.rebuild_doc()
                .update_one(
                    doc! { "_id": REBUILD, "$or": [
                        { "building": Bson::Null },
                        { "building_at": { "$lt": now - REBUILD_STALE_MS } },
                    ] },
                    doc! { "$set": { "building": generation, "building_at": now, "handed": Bson::Null } },
                )
                .await?
                .matched_count
        };
        if claimed != 1 {
            return Err(StoreError::Busy(
                "another rollup rebuild is in progress".into(),
            ));
        }
        // Retired generations are the consumer's to drop, after their grace period (readers
        // may still be on them); dropping them here too raced with it.
        let keep: Vec<i64> = std::iter::once(st.live.generation)
            .chain(st.retired.iter().map(|r| r.generation))
            .collect();
        // Collection drops and index builds are the calls that have hung on FerretDB under
        // concurrent writes: bounded, they fail loudly instead.
        bounded(self.drop_orphans(&keep)).await?;
        bounded(self.ensure_gen_indexes(generation)).await?;
        Ok(generation)
    }

    /// Rolls the whole log up into `generation`, chasing the live cursor a few passes.
    async fn build_generation(
        &self,
        cfg: &ConsumerConfig,
        generation: i64,
        progress: &mut impl FnMut(u64),
    ) -> Result<Cursor, StoreError> {
        // The whole log counts in the zones of now (see `maidian_core::site`).
        let mut cur = Cursor {
            generation,
            zones_at: now_ms(),
            ..Cursor::default()
        };
        // Chase the live cursor a few passes, each to where it stood when the pass began; the
        // consumer catches up the rest (pausing the live generation for that little while).
        for _pass in 0..3 {
            let st = self.building_state(generation).await?;
            let target = (st.live.pos_t, st.live.pos_id.clone());
            while cur.pos() < (target.0, target.1.as_str()) {
                let events = self
                    .read_log(
                        cur.pos(),
                        Some((target.0, &target.1)),
                        Some(self.read_limit(cfg)),
                    )
                    .await?;
                let Some(last) = events.last() else { break };
                let chunk = cur.chunk + 1;
                let zones = self.zones().await?;
                let delta = self
                    .delta_of((&cur, chunk), cfg.max_pages_per_day, &events, &zones)
                    .await?;
                self.apply_chunk(None, generation, chunk, &delta, false)
                    .await?;
                cur = cur.advanced(chunk, last.received_at, &last.event_id, events.len());
                progress(u64::try_from(cur.events).unwrap_or(0));
                self.building_state(generation).await?;
            }
        }
        Ok(cur)
    }

    /// Hands the built generation to the lease holder and waits until it is live: the events
    /// it holds.
    async fn hand_over(
        &self,
        cfg: &ConsumerConfig,
        generation: i64,
        cur: &Cursor,
        progress: &mut impl FnMut(u64),
    ) -> Result<u64, StoreError> {
        let handed = self
            .rebuild_doc()
            .update_one(
                doc! { "_id": REBUILD, "building": generation },
                doc! { "$set": { "handed": to_bson(cur)?, "building_at": now_ms() } },
            )
            .await?;
        if handed.matched_count != 1 {
            return Err(StoreError::Busy(
                "the rebuild was taken over by another one".into(),
            ));
        }
        // The lease owner (a collector, or this process when none runs) catches the new
        // generation up with the live one and switches.
        let events = loop {
            let st = self.existing_state().await?;
            if st.live.generation == generation {
                break st.live.events;
            }
            if let Some(next) = &st.next {
                progress(u64::try_from(next.events).unwrap_or(0));
            }
            // Steps only run when the lease is free; losing it to a collector is fine.
            match self.rollup_step(cfg).await {
                Ok(Step::NotOwner) | Err(StoreError::LeaseLost) => {
                    tokio::time::sleep(cfg.idle_poll).await
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        };
        self.release_lease(&cfg.owner).await?;
        Ok(u64::try_from(events).unwrap_or(0))
    }

    /// The state while `generation` is being built (its heartbeat refreshed), or an error when
    /// another rebuild has taken over.
    pub(crate) async fn building_state(&self, generation: i64) -> Result<State, StoreError> {
        let beat = self
            .rebuild_doc()
            .update_one(
                doc! { "_id": REBUILD, "building": generation },
                doc! { "$set": { "building_at": now_ms() } },
            )
            .await?;
        if beat.matched_count != 1 {
            return Err(StoreError::Busy(
                "the rebuild was taken over by another one".into(),
            ));
        }
        self.existing_state().await
    }

    /// Drops rollup collections of generations that are neither `keep` nor in use.
    pub(crate) async fn drop_orphans(&self, keep: &[i64]) -> Result<(), StoreError> {
        for name in self.db.list_collection_names().await? {
            let orphan = rollup::all().iter().any(|r| {
                name.strip_prefix(r)
                    .and_then(|rest| rest.strip_prefix("_g"))
                    .and_then(|g| g.parse::<i64>().ok())
                    .is_some_and(|g| !keep.contains(&g))
            });
            if orphan {
                self.db.collection::<Document>(&name).drop().await?;
            }
        }
        Ok(())
    }
}
