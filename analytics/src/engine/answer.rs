//! The figures a reader asks for by name, answered once for every way of asking: the HTTP API
//! (`/api/analytics/{name}`) and the CLI's commands of the same names both build a
//! [`Question`] and print or send the [`Answer`] it gets, so the two can never drift apart.

use serde::Serialize;

use maidian_core::stats::Period;
use maidian_store::{Store, StoreError};

use super::funnel::{self, Funnel, FunnelResult, Origin};
use super::realtime::{self, Realtime};
use super::retention::{self, Retention};
use super::summary::{self, Summary};
use super::vitals::{self, Vitals};
use super::Scope;

/// A figure by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    Summary,
    Funnel,
    Retention,
    Realtime,
    Vitals,
}

impl Figure {
    pub const ALL: [Figure; 5] = [
        Figure::Summary,
        Figure::Funnel,
        Figure::Retention,
        Figure::Realtime,
        Figure::Vitals,
    ];

    /// Its name: the last segment of its HTTP path and its CLI command.
    pub fn name(self) -> &'static str {
        match self {
            Figure::Summary => "summary",
            Figure::Funnel => "funnel",
            Figure::Retention => "retention",
            Figure::Realtime => "realtime",
            Figure::Vitals => "vitals",
        }
    }

    /// The figure named `name`, if there is one.
    pub fn named(name: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Where the HTTP API answers it.
    pub fn path(self) -> String {
        format!("/api/analytics/{}", self.name())
    }
}

/// One figure's question, beyond the site and whether bots count ([`Scope`]).
#[derive(Debug, Clone)]
pub enum Question {
    /// The summary of `period`, `top` rows in each list.
    Summary { period: Period, top: usize },
    /// `funnel` over `period`, of the visitors `origin` admits.
    Funnel {
        funnel: Funnel,
        origin: Origin,
        period: Period,
    },
    /// Day-N retention of the cohorts of `period`.
    Retention { period: Period },
    /// The last hour up to `now_ms`.
    Realtime { now_ms: i64 },
    /// Core Web Vitals of `period`, `top` pages.
    Vitals { period: Period, top: usize },
}

/// One figure's document, as the API sends it and `--json` prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Figures {
    Summary(Box<Summary>),
    Funnel(FunnelResult),
    Retention(Retention),
    Realtime(Realtime),
    Vitals(Vitals),
}

/// An answer: the figure's document with its site and, for a funnel over days whose raw
/// events retention deleted, since when raw events are kept.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    #[serde(flatten)]
    pub figures: Figures,
    pub site: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_data_since: Option<String>,
}

/// Answers `question` for `scope` from `store`.
pub async fn answer(
    store: &Store,
    question: &Question,
    scope: &Scope,
) -> Result<Answer, StoreError> {
    let mut raw_data_since = None;
    // Each figure's future is boxed: inline, their sum overflows a worker's stack in debug
    // builds.
    let figures = match question {
        Question::Summary { period, top } => Figures::Summary(Box::new(
            Box::pin(summary::summary(store, *period, *top, scope)).await?,
        )),
        Question::Funnel {
            funnel,
            origin,
            period,
        } => {
            let found =
                Box::pin(funnel::funnel_from(store, funnel, *period, scope, origin)).await?;
            raw_data_since = store.raw_gone(period).await?;
            Figures::Funnel(found)
        }
        Question::Retention { period } => {
            Figures::Retention(Box::pin(retention::retention(store, *period, scope)).await?)
        }
        Question::Realtime { now_ms } => {
            Figures::Realtime(Box::pin(realtime::realtime(store, *now_ms, scope)).await?)
        }
        Question::Vitals { period, top } => {
            Figures::Vitals(Box::pin(vitals::vitals(store, *period, scope, *top)).await?)
        }
    };
    Ok(Answer {
        figures,
        site: scope.site.clone(),
        raw_data_since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_named_as_their_paths() {
        for f in Figure::ALL {
            assert_eq!(Figure::named(f.name()), Some(f));
            assert!(f.path().ends_with(f.name()));
        }
        assert_eq!(Figure::named("funnels"), None);
    }
}
