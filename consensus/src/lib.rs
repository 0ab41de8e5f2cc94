//! # wake-consensus
//!
//! Orders blocks; never executes them. A pipelined BFT protocol of the
//! MonadBFT / HotStuff-2 family (two-chain commit, votes to the next
//! leader) in which block `h` carries the execution result of block `h-K`,
//! checked by every voter.
//!
//! ## Main types
//! * [`Core`]: the sans-IO state machine. `Core::handle(Event) -> Vec<Action>`;
//!   no clock (the driver delivers [`Event::Timeout`] for the timers the core
//!   arms, and periodic [`Event::Tick`]s), no socket, no randomness. The
//!   protocol is described in [`core`]'s module doc.
//! * [`ExecutionOracle`] / [`PayloadSource`]: what the core asks of the node
//!   (our execution result for a height; a leader's payload).
//! * [`Scheme`] with [`Ed25519`]: signatures and certificate aggregates
//!   behind one trait, so BLS aggregation can replace ed25519 (whose
//!   "aggregate" is a signature list checked by batch verification).
//! * [`codec`]: the bounded binary wire format of every [`Message`].
//! * [`VoteJournal`] ([`FileJournal`], [`MemJournal`]) and [`VoteTicket`]:
//!   a vote leaves only after the driver returned its ticket, i.e. after
//!   the record is durable.
//! * [`Ledger`] ([`FileLedger`], [`MemLedger`]): the append-only finalized
//!   chain on checksummed records with torn-tail recovery ([`store`]),
//!   served to peers through `Action::ServeFromLedger`.
//! * [`sim`]: the seeded simulator, its Byzantine behaviors and the
//!   invariant checkers ([`sim::invariants`]), which share no logic with
//!   the core.
//!
//! ## Decisions
//! * QC round == block round (votes are only for a block of the current
//!   round), so the commit rule and the delayed-result rule read headers
//!   only: deterministic for leader and voters alike.
//! * The delayed result is carried exactly when `h-K` is committed on the
//!   block's own branch; a chain whose commits lag never deadlocks waiting
//!   for a result that cannot exist yet.
//! * Tail-forking resistance: timeouts carry the sender's tip; after a TC the
//!   leader re-proposes the highest tip above the TC's QCs, and voters insist
//!   when > 1/3 of the stake reported it.
//! * Timeout synchronisation: > 1/3 timeouts for a round (ours or later)
//!   make a validator time out there too, so the two sides of a healed
//!   partition meet in one round.
//! * Every collection is bounded ([`Config`], validator count, codec caps);
//!   bad input is dropped and counted per [`DropReason`], equivocation kept
//!   as [`Evidence`].
//!
//! * [`follow`]: how a node outside the validator set follows the chain:
//!   [`CommitProof`] (a certified child of the next round, emitted by the
//!   core after each commit step and kept in a [`ProofLog`]), the sync
//!   request/response served from the ledger, and the sans-IO [`Follower`]
//!   that trusts no peer, only the validator set.
//! * [`Driver`]: the core plus its I/O for a real process (journal fsync
//!   before a vote leaves, wall-clock timers, ledger appends, serving
//!   blocks) over any [`Transport`]. The node's libp2p network implements
//!   [`Transport`]; neither the core nor the simulator sees libp2p.

pub mod codec;
pub mod core;
pub mod crypto;
pub mod driver;
pub mod follow;
pub mod journal;
pub mod ledger;
pub mod sim;
pub mod store;
mod tree;
pub mod types;
pub mod validators;

pub use crate::core::{
    Action, Config, Core, DropCounts, DropReason, Event, Evidence, ExecutionOracle, PayloadSource,
    PendingBlock, Restore,
};
pub use crate::crypto::{Ed25519, Scheme, SignerSet};
pub use crate::driver::{Driver, DriverError, DriverStats, Notice, Transport};
pub use crate::follow::{
    CommitProof, FollowError, Follower, FollowerConfig, ProofError, ProofLog, SyncRequest,
    SyncResponse,
};
pub use crate::journal::{
    FileJournal, JournalRecord, MemJournal, VoteJournal, VoteKind, VoteTicket,
};
pub use crate::ledger::{FileLedger, Ledger, MemLedger};
pub use crate::store::StoreError;
pub use crate::types::*;
pub use crate::validators::{Validator, ValidatorSet, ValidatorSetError};
