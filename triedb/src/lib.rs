//! # wake-triedb
//!
//! The Ethereum state — an account trie keyed by `keccak(address)` and one
//! storage trie per account keyed by `keccak(slot)` — kept in one file (or raw
//! block device) on SSD, with roots bit-identical to Ethereum's.
//!
//! (The full design notes are filled in with the implementation.)

mod error;
pub mod io;
mod types;

pub use error::{Error, Result};
pub use types::*;
