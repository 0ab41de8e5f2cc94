//! # wake-triedb
//!
//! The Ethereum state — an account trie keyed by `keccak(address)` and one
//! storage trie per account keyed by `keccak(slot)` — kept in one file (or raw
//! block device) on SSD, with roots bit-identical to Ethereum's.
//!
//! (Design notes are completed with the implementation.)

mod commit;
mod db;
mod error;
pub mod fault;
pub mod io;
mod meta;
mod node;
mod read;
mod store;
mod types;

pub use db::{Config, Snapshot, Stats, TrieDb};
pub use error::{Error, Result};
pub use io::{IoBackend, IoBackendChoice};
pub use types::*;
