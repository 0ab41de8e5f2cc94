//! Latency samples and their percentiles.

use serde::Serialize;
use std::time::Duration;

/// Durations recorded one by one, in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    ns: Vec<u64>,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Samples {
        Samples { ns: Vec::with_capacity(n) }
    }

    pub fn push(&mut self, d: Duration) {
        self.ns.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn push_ns(&mut self, ns: u64) {
        self.ns.push(ns);
    }

    pub fn len(&self) -> usize {
        self.ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ns.is_empty()
    }

    /// Sum of all samples.
    pub fn total(&self) -> Duration {
        Duration::from_nanos(self.ns.iter().sum())
    }

    /// Percentiles in microseconds (all zero when empty).
    pub fn summary(&mut self) -> Percentiles {
        if self.ns.is_empty() {
            return Percentiles::default();
        }
        self.ns.sort_unstable();
        let at = |q: f64| {
            let rank = ((self.ns.len() as f64) * q).ceil() as usize;
            self.ns[rank.clamp(1, self.ns.len()) - 1] as f64 / 1000.0
        };
        let mean = self.ns.iter().sum::<u64>() as f64 / self.ns.len() as f64 / 1000.0;
        Percentiles {
            count: self.ns.len() as u64,
            mean_us: mean,
            p50_us: at(0.50),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: *self.ns.last().unwrap_or(&0) as f64 / 1000.0,
        }
    }
}

/// Nearest-rank percentiles of a sample set, in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut s = Samples::default();
        for i in 1..=1000u64 {
            s.push_ns(i * 1000);
        }
        let p = s.summary();
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_us, 500.0);
        assert_eq!(p.p99_us, 990.0);
        assert_eq!(p.p999_us, 999.0);
        assert_eq!(p.max_us, 1000.0);
        assert!((p.mean_us - 500.5).abs() < 1e-9);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Samples::default().summary(), Percentiles::default());
    }
}
