//! # wake-consensus
//!
//! Orders blocks; never executes them. A pipelined BFT protocol of the
//! MonadBFT / HotStuff-2 family in which proposal N carries the execution
//! result of block N-K, checked by every voter.
//!
//! Planned shape (issue 4, not written yet):
//! * a sans-IO core, `(state, event) -> actions`, with no clock, socket or
//!   randomness inside;
//! * a seeded simulator with latency, drops, partitions, crashes and
//!   Byzantine actors, and invariant checkers independent of the protocol;
//! * a vote journal fsynced before a vote leaves, and a finalized-block ledger;
//! * a libp2p transport (tcp + noise + yamux) behind a trait.
//!
//! This crate holds no code yet: nothing here pretends to reach consensus.
