//! # wake-consensus
//!
//! Orders blocks; never executes them.
//!
//! (crate doc is rewritten at the end of this change)

pub mod codec;
pub mod core;
pub mod crypto;
pub mod journal;
pub mod ledger;
pub mod sim;
pub mod store;
mod tree;
pub mod types;
pub mod validators;

pub use crate::core::{
    Action, Config, Core, DropCounts, DropReason, Event, Evidence, ExecutionOracle, PayloadSource,
    Restore,
};
pub use crate::crypto::{Ed25519, Scheme, SignerSet};
pub use crate::journal::{
    FileJournal, JournalRecord, MemJournal, VoteJournal, VoteKind, VoteTicket,
};
pub use crate::ledger::{FileLedger, Ledger, MemLedger};
pub use crate::store::StoreError;
pub use crate::types::*;
pub use crate::validators::{Validator, ValidatorSet, ValidatorSetError};
