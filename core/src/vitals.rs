//! Core Web Vitals: the five metrics the SDK measures, their thresholds, and the histogram
//! buckets their rollup keeps (`rollup::DAILY_VITALS`).
//!
//! A value is kept as whole *units* (milliseconds; ten-thousandths for CLS) in a logarithmic
//! bucket: bucket 0 holds 0, bucket `b ≥ 1` holds `[G^(b-1), G^b)` units with `G = 1.1`. A
//! percentile read from the histogram is the geometric middle of the bucket holding it, so it
//! is within `√G − 1` ≈ 4.9 % of the exact percentile of the unit values (README, "Core Web
//! Vitals"). Each document also carries the value's rating, so the good / needs-improvement /
//! poor shares are exact even where a bucket straddles a threshold.

use serde::{Deserialize, Serialize};

/// One of the measured metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Lcp,
    Inp,
    Cls,
    Fcp,
    Ttfb,
}

/// The bucket growth factor.
pub const GROWTH: f64 = 1.1;

/// The largest relative error of a percentile read from the buckets (`√G − 1`).
pub fn max_relative_error() -> f64 {
    GROWTH.sqrt() - 1.0
}

/// How a value rates against its metric's thresholds (web.dev's definitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    Good,
    NeedsImprovement,
    Poor,
}

impl Rating {
    pub const ALL: [Rating; 3] = [Rating::Good, Rating::NeedsImprovement, Rating::Poor];

    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::NeedsImprovement => "needs_improvement",
            Rating::Poor => "poor",
        }
    }

    pub fn parse(s: &str) -> Option<Rating> {
        Rating::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::Lcp,
        Metric::Inp,
        Metric::Cls,
        Metric::Fcp,
        Metric::Ttfb,
    ];

    /// The event field and the name in every answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Lcp => "lcp",
            Metric::Inp => "inp",
            Metric::Cls => "cls",
            Metric::Fcp => "fcp",
            Metric::Ttfb => "ttfb",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// `ms`, or empty for CLS (a score).
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Cls => "",
            _ => "ms",
        }
    }

    /// Units per value: CLS keeps four decimals.
    fn scale(self) -> f64 {
        match self {
            Metric::Cls => 10_000.0,
            _ => 1.0,
        }
    }

    /// The largest value the collector accepts: ten minutes for a paint or the server's first
    /// byte, one minute for an interaction, 100 for a layout shift score (real pages stay
    /// under 5).
    pub fn cap(self) -> f64 {
        match self {
            Metric::Lcp | Metric::Fcp | Metric::Ttfb => 600_000.0,
            Metric::Inp => 60_000.0,
            Metric::Cls => 100.0,
        }
    }

    /// (good up to, poor above): LCP 2500/4000 ms, INP 200/500 ms, CLS 0.1/0.25,
    /// FCP 1800/3000 ms, TTFB 800/1800 ms.
    pub fn thresholds(self) -> (f64, f64) {
        match self {
            Metric::Lcp => (2500.0, 4000.0),
            Metric::Inp => (200.0, 500.0),
            Metric::Cls => (0.1, 0.25),
            Metric::Fcp => (1800.0, 3000.0),
            Metric::Ttfb => (800.0, 1800.0),
        }
    }

    /// The value in whole units (what the rollup keeps).
    pub fn units(self, value: f64) -> i64 {
        (value * self.scale()).round().max(0.0) as i64
    }

    /// Units back to the metric's value.
    pub fn value(self, units: f64) -> f64 {
        units / self.scale()
    }

    /// The rating of a value kept as `units` (so that rollups and raw scans agree).
    pub fn rating(self, units: i64) -> Rating {
        let (good, poor) = self.thresholds();
        let v = self.value(units as f64);
        if v <= good {
            Rating::Good
        } else if v <= poor {
            Rating::NeedsImprovement
        } else {
            Rating::Poor
        }
    }
}

/// The bucket of a value in units.
pub fn bucket(units: i64) -> i64 {
    if units <= 0 {
        return 0;
    }
    let mut b = ((units as f64).ln() / GROWTH.ln()).floor() as i64 + 1;
    // Guard the float logarithm at exact bucket edges: `G^(b-1) <= units < G^b`.
    while b > 1 && GROWTH.powi((b - 1) as i32) > units as f64 {
        b -= 1;
    }
    while GROWTH.powi(b as i32) <= units as f64 {
        b += 1;
    }
    b
}

/// The value in units a bucket stands for: the geometric middle of its bounds.
pub fn representative(bucket: i64) -> f64 {
    if bucket <= 0 {
        return 0.0;
    }
    GROWTH.powi((bucket - 1) as i32) * GROWTH.sqrt()
}

/// Bucket counts of one metric, summed over any set of rollup documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Samples per bucket, in bucket order (what a quantile walks).
    counts: std::collections::BTreeMap<i64, u64>,
    /// Samples per [`Rating`], in its order.
    ratings: [u64; 3],
}

impl Histogram {
    pub fn add(&mut self, bucket: i64, rating: Rating, n: u64) {
        *self.counts.entry(bucket).or_default() += n;
        self.ratings[rating as usize] += n;
    }

    pub fn samples(&self) -> u64 {
        self.counts.values().sum()
    }

    /// How many samples rate `r`.
    pub fn rated(&self, r: Rating) -> u64 {
        self.ratings[r as usize]
    }

    /// The `q`-quantile (nearest rank) in units, `None` without samples.
    pub fn quantile_units(&self, q: f64) -> Option<f64> {
        let n = self.samples();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (b, c) in &self.counts {
            seen += c;
            if seen >= rank {
                return Some(representative(*b));
            }
        }
        None
    }
}

/// The exact nearest-rank `q`-quantile of unit values (what a raw scan gives).
pub fn exact_quantile_units(values: &mut [i64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    Some(values[rank - 1] as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_bounds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 1);
        let mut last = 0;
        for u in 1..200_000 {
            let b = bucket(u);
            assert!(b >= last, "buckets grow with the value");
            last = b;
            let lo = GROWTH.powi((b - 1) as i32);
            let hi = GROWTH.powi(b as i32);
            assert!(lo <= u as f64 && (u as f64) < hi, "{u} in bucket {b}");
            let err = (representative(b) / u as f64 - 1.0).abs();
            assert!(err <= max_relative_error() + 1e-12, "{u}: {err}");
        }
    }

    #[test]
    fn ratings_follow_the_thresholds() {
        let r = |m: Metric, v: f64| m.rating(m.units(v));
        assert_eq!(r(Metric::Lcp, 2500.0), Rating::Good);
        assert_eq!(r(Metric::Lcp, 2501.0), Rating::NeedsImprovement);
        assert_eq!(r(Metric::Lcp, 4001.0), Rating::Poor);
        assert_eq!(r(Metric::Cls, 0.1), Rating::Good);
        assert_eq!(r(Metric::Cls, 0.1001), Rating::NeedsImprovement);
        assert_eq!(r(Metric::Cls, 0.25), Rating::NeedsImprovement);
        assert_eq!(r(Metric::Cls, 0.2501), Rating::Poor);
        assert_eq!(r(Metric::Inp, 200.0), Rating::Good);
        assert_eq!(r(Metric::Inp, 501.0), Rating::Poor);
        assert_eq!(r(Metric::Ttfb, 800.4), Rating::Good);
        assert_eq!(r(Metric::Fcp, 3000.0), Rating::NeedsImprovement);
    }

    #[test]
    fn histogram_p75_is_within_the_documented_error_of_the_exact_one() {
        // Deterministic pseudo-random samples of several shapes.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (n, spread) in [
            (1usize, 10u64),
            (3, 5),
            (4, 3000),
            (75, 12_000),
            (1000, 600_000),
        ] {
            let mut values: Vec<i64> = (0..n).map(|_| (next() % spread) as i64).collect();
            let mut h = Histogram::default();
            for v in &values {
                h.add(bucket(*v), Metric::Lcp.rating(*v), 1);
            }
            let exact = exact_quantile_units(&mut values, 0.75).unwrap();
            let est = h.quantile_units(0.75).unwrap();
            assert!(
                (est - exact).abs() <= exact * max_relative_error() + 1e-9,
                "n={n}: {est} vs {exact}"
            );
        }
        assert_eq!(Histogram::default().quantile_units(0.75), None);
    }
}
