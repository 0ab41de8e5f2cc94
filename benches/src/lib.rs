//! Benchmark drivers and peers.
