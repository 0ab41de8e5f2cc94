//! # wake-node (library)
//!
//! The parts of the `wake` binary that run a node: the validator process
//! and its libp2p transport, the transaction pool, the JSON-RPC server and
//! the asynchronous-execution pipeline. `src/main.rs` is the CLI over them;
//! the integration tests under `tests/` drive them too.

pub mod chaindb;
pub mod config;
pub mod devnet;
pub mod executing;
pub mod follower;
pub mod import;
pub mod p2p;
pub mod pipeline;
pub mod profile;
pub mod readonly;
pub mod rpc;
pub mod validator;
