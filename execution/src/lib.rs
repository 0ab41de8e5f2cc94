//! # wake-execution
//!
//! Turns an ordered block into its result: receipts, logs bloom, gas used, a
//! state diff committed to `wake-triedb`, and the new state root.
//!
//! Planned shape (issue 3, not written yet):
//! * a chain spec mapping block number and timestamp to revm's spec id,
//!   Frontier through Cancun, plus a devnet spec from a geth-style genesis;
//! * block validation against the parent header and, after execution,
//!   against gas used, receipts root, logs bloom and state root;
//! * a serial reference executor over a triedb version plus an in-block
//!   overlay, and an optimistic parallel executor whose results are
//!   bit-identical to the serial one;
//! * prefetch of the state a block will touch through triedb's batched
//!   io_uring reads, so cold reads overlap.
//!
//! This crate holds no code yet: nothing here pretends to execute blocks.
