//! `wake node --rpc-only`: serves an imported data directory (see
//! [`crate::import`]) over the node's JSON-RPC server, read-only.
//!
//! [`ReadOnlyNode::start`] opens the data directory without creating
//! anything ([`DataDir::prepare`] with `create = false`: the genesis must
//! match, triedb must hold the chain db tip's state), fills a
//! [`ChainStore`] from the chain db ([`ChainDb::load_into`]: the newest
//! `blocks_max` blocks, all marked finalized), opens triedb at its newest
//! version (nothing is wiped or rebuilt) and starts [`RpcServer`] with a
//! [`NodeBackend`] over them on a tokio current-thread runtime.
//!
//! There is no pool and no consensus: `eth_sendRawTransaction` answers
//! `-32000` "read-only node ...", `eth_syncing` is `false`, `latest`,
//! `safe` and `finalized` are all the chain db tip. State is readable for
//! the versions triedb retains (the newest 256 blocks by default).
//!
//! Errors are typed ([`ReadOnlyError`]); a missing or corrupt data
//! directory is one of them, reported by the binary as one `error:` line.
//!
//! [`ChainDb::load_into`]: crate::chaindb::ChainDb::load_into

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alloy_primitives::{B256, Bytes};

use crate::chaindb::ChainDbError;
use crate::import::{CACHE_MIB_DEFAULT, DataDir, ImportError, LoadedGenesis};
use crate::rpc::{
    ChainStore, Metrics, NodeBackend, RpcConfig, RpcServer, RpcServerHandle, RpcStartError,
    StoreConfig, SubmitError,
};

/// What `eth_sendRawTransaction` answers.
pub const READ_ONLY_MESSAGE: &str =
    "read-only node (wake node --rpc-only): transactions are not accepted";

/// The `--rpc-only` options of `wake node`.
#[derive(Debug, Clone, clap::Args)]
pub struct RpcOnlyArgs {
    /// Serve an imported data directory read-only over JSON-RPC (no
    /// consensus, no transaction pool); needs --data-dir and --genesis.
    #[arg(long, requires_all = ["data_dir", "genesis"])]
    pub rpc_only: bool,
    /// The data directory (`wake init` / `wake import`).
    #[arg(long, value_name = "DIR", requires = "rpc_only")]
    pub data_dir: Option<PathBuf>,
    /// The chain's genesis file (must be the one the directory was made with).
    #[arg(long, value_name = "FILE", requires = "rpc_only")]
    pub genesis: Option<PathBuf>,
    /// Where JSON-RPC (HTTP, WebSocket, /metrics) is served.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8545")]
    pub rpc: SocketAddr,
    /// triedb node cache, MiB.
    #[arg(long, default_value_t = CACHE_MIB_DEFAULT)]
    pub cache_mib: usize,
}

/// Why the read-only node did not start.
#[derive(Debug, thiserror::Error)]
pub enum ReadOnlyError {
    #[error("--rpc-only needs --data-dir and --genesis")]
    MissingArgs,
    #[error(transparent)]
    DataDir(#[from] ImportError),
    #[error("loading blocks from the chain db: {0}")]
    Load(#[from] ChainDbError),
    #[error("starting the RPC runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start JSON-RPC: {0}")]
    Rpc(#[from] RpcStartError),
}

/// A running read-only RPC node. Dropping it stops the server.
pub struct ReadOnlyNode {
    pub store: Arc<ChainStore>,
    pub backend: Arc<NodeBackend>,
    /// The newest block served.
    pub head_number: u64,
    pub head_hash: B256,
    rpc: RpcServerHandle,
    runtime: tokio::runtime::Runtime,
    /// Held (with its lock) while serving, so no import writes meanwhile.
    _chain_db: crate::chaindb::ChainDb,
}

impl ReadOnlyNode {
    /// Opens `args`' data directory and starts serving it.
    pub fn start(args: &RpcOnlyArgs) -> Result<ReadOnlyNode, ReadOnlyError> {
        let (Some(data_dir), Some(genesis)) = (&args.data_dir, &args.genesis) else {
            return Err(ReadOnlyError::MissingArgs);
        };
        let genesis = LoadedGenesis::load(genesis)?;
        let open = DataDir::new(data_dir).prepare(genesis, false, args.cache_mib)?;
        let store = Arc::new(ChainStore::new(StoreConfig::default()));
        let head_number = open.chain_db.load_into(&store)?.unwrap_or_default();
        let head_hash = open.chain_db.hash(head_number).unwrap_or_default();
        let submitter = |_raw: Bytes| -> Result<B256, SubmitError> {
            Err(SubmitError::Rejected(READ_ONLY_MESSAGE.into()))
        };
        let backend = Arc::new(NodeBackend::new(
            store.clone(),
            open.genesis.chain().clone(),
            open.triedb.clone(),
            Box::new(submitter),
        ));
        backend.set_consensus_head(head_number);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("wake-rpc")
            .build()
            .map_err(ReadOnlyError::Runtime)?;
        let config = RpcConfig { addr: args.rpc, ..RpcConfig::default() };
        let metrics = Arc::new(Metrics::new());
        let rpc = RpcServer::start(config, backend.clone(), metrics, runtime.handle())?;
        tracing::info!(
            data_dir = %data_dir.display(),
            head = head_number,
            hash = %head_hash,
            url = rpc.http_url(),
            "serving read-only"
        );
        Ok(ReadOnlyNode {
            store,
            backend,
            head_number,
            head_hash,
            rpc,
            runtime,
            _chain_db: open.chain_db,
        })
    }

    /// `http://addr` of the server.
    pub fn http_url(&self) -> String {
        self.rpc.http_url()
    }

    /// Serves until `stop` is set (SIGTERM / SIGINT in the binary).
    pub fn run_until(&self, stop: &AtomicBool) {
        self.runtime.block_on(async {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
}

impl Drop for ReadOnlyNode {
    fn drop(&mut self) {
        self.rpc.stop();
    }
}

/// `wake node --rpc-only`: starts, prints one line with the URL, serves
/// until `stop`.
pub fn run(args: &RpcOnlyArgs, stop: &AtomicBool) -> Result<(), ReadOnlyError> {
    let node = ReadOnlyNode::start(args)?;
    println!(
        "serving {} read-only: blocks up to {} (head {})",
        node.http_url(),
        node.head_number,
        node.head_hash
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    node.run_until(stop);
    tracing::info!("stopped");
    Ok(())
}
