//! Ethereum JSON-RPC over HTTP and WebSocket, on one port (jsonrpsee), and
//! Prometheus metrics on the same port at `GET /metrics`.
//!
//! ## Methods
//! `eth_chainId`, `net_version`, `web3_clientVersion`, `eth_syncing`,
//! `eth_blockNumber`; `eth_getBlockByNumber`, `eth_getBlockByHash`,
//! `eth_getTransactionByHash`, `eth_getTransactionReceipt`;
//! `eth_getBalance`, `eth_getTransactionCount`, `eth_getCode`,
//! `eth_getStorageAt`, `eth_getProof`; `eth_call`, `eth_estimateGas`,
//! `eth_gasPrice`, `eth_maxPriorityFeePerGas`, `eth_feeHistory`;
//! `eth_sendRawTransaction`, `eth_getLogs`; `eth_subscribe` /
//! `eth_unsubscribe` for `newHeads` and `logs` (WebSocket only).
//!
//! ## Block tags: the state lags consensus
//! Execution runs behind consensus (asynchronous execution: block N is
//! ordered and final before it is executed), and the RPC answers only from
//! executed blocks, so:
//! * `latest` is the **newest executed** block, not the newest ordered one;
//!   `eth_blockNumber` is its number;
//! * `safe` and `finalized` are the **newest block both finalized by
//!   consensus and executed** (the lower of the two); `null` / "header not
//!   found" until consensus has reported one ([`ChainStore::set_finalized`]);
//! * `pending` is treated as `latest` (there is no pending block), except
//!   that `eth_getTransactionCount(.., "pending")` asks the transaction pool
//!   ([`TxSubmitter::pending_nonce`]) when it knows;
//! * `earliest` is block 0 while it is still stored.
//!
//! `eth_syncing` is `false` while execution is within a few blocks of the
//! consensus head ([`backend::SYNCED_LAG_BLOCKS_DEFAULT`]), else it gives
//! the executed and the ordered heights.
//!
//! ## Retention
//! Blocks, transactions, receipts and logs are kept for the newest
//! [`StoreConfig::blocks_max`] blocks (default 16,384); older ones are
//! answered as not found (`null`). State (balances, calls, proofs) exists
//! for the versions triedb retains (its `retain_versions`, default 256):
//! a read at an older block fails with `-32000` "state of block N is not
//! available".
//!
//! ## Limits and their errors
//! | limit | default | error |
//! |---|---|---|
//! | request body | 5 MiB | HTTP 413 / `-32007` (jsonrpsee) |
//! | response body | 32 MiB | `-32008` (jsonrpsee) |
//! | batch length | 100 requests | `-32005` "batch of N requests exceeds the limit of M" |
//! | connections | 100 | refused (HTTP 429 / connection closed) |
//! | subscriptions per connection | 64 | `-32006` (jsonrpsee) |
//! | `eth_call` / `eth_estimateGas` gas | 50,000,000 (higher requests are capped, as geth) | - |
//! | `eth_call` / `eth_estimateGas` wall time | 5 s | `-32000` "execution aborted (timeout = 5000ms)" |
//! | `eth_getLogs` block range | 10,000 blocks | `-32005` "exceed maximum block range: 10000" |
//! | `eth_getLogs` results | 10,000 logs | `-32005` "query returned more than 10000 results" |
//! | `eth_getProof` storage keys | 1,024 | `-32005` |
//! | `eth_feeHistory` blocks | 1,024 (more are truncated, as geth) | - |
//! | state reads and calls at once | 16 (others wait) | - |
//!
//! Malformed parameters are `-32602`; a reverted call is code `3`,
//! "execution reverted[: reason]", with the revert data in `data` (as
//! geth); other call failures and refused transactions are `-32000`; a
//! full pool is `-32005`. See [`error`].
//!
//! ## Wiring (what the node does)
//! 1. `let store = Arc::new(ChainStore::new(StoreConfig::default()))`;
//!    insert the genesis ([`StoredBlock::without_transactions`]) and then
//!    every executed block ([`StoredBlock::new`] from the block, its
//!    recovered senders and `BlockOutcome::receipts`) after its triedb
//!    commit; call [`ChainStore::set_finalized`] as consensus commits.
//! 2. `let backend = Arc::new(NodeBackend::new(store, chain, triedb,
//!    Box::new(pool_submitter)))`; feed it
//!    [`NodeBackend::set_consensus_head`].
//! 3. `let metrics = Arc::new(Metrics::new())` (register the node's own
//!    metrics in it too), then
//!    `RpcServer::start(config, backend, metrics, runtime_handle)`; keep the
//!    returned [`RpcServerHandle`] (dropping it stops the server).

pub mod backend;
pub mod convert;
pub mod error;
pub mod eth;
pub mod metrics;
pub mod store;

pub use backend::{NodeBackend, RpcBackend, SubmitError, SubmitFuture, SyncState, TxSubmitter};
pub use error::RpcError;
pub use metrics::{Metrics, RpcMetrics};
pub use store::{ChainStore, StoreConfig, StoreError, StoredBlock};

use eth::{EthApiServer, EthHandler, NetApiServer, Web3ApiServer};
use jsonrpsee::RpcModule;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{BatchRequestConfig, Server, ServerConfig, ServerHandle};
use metrics::{MetricsHttpLayer, RpcMetricsLayer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Every method the server serves (also the metrics' `method` labels).
pub const METHODS: &[&str] = &[
    "eth_chainId",
    "net_version",
    "web3_clientVersion",
    "eth_syncing",
    "eth_blockNumber",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_getProof",
    "eth_call",
    "eth_estimateGas",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_feeHistory",
    "eth_sendRawTransaction",
    "eth_getLogs",
    "eth_subscribe",
    "eth_unsubscribe",
];

/// Options of the server.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Where HTTP, WebSocket and `/metrics` are served.
    pub addr: SocketAddr,
    pub request_body_bytes_max: u32,
    pub response_body_bytes_max: u32,
    pub batch_requests_max: usize,
    pub connections_max: u32,
    pub subscriptions_per_connection_max: u32,
    /// Most gas one `eth_call` / `eth_estimateGas` may use.
    pub call_gas_cap: u64,
    /// Most wall time one `eth_call` / `eth_estimateGas` may take.
    pub call_timeout: Duration,
    /// Most blocks one `eth_getLogs` may span.
    pub logs_block_range_max: u64,
    /// Most logs one `eth_getLogs` may return.
    pub logs_results_max: usize,
    /// Most blocks one `eth_feeHistory` reports.
    pub fee_history_blocks_max: u64,
    /// Most storage keys one `eth_getProof` may ask for.
    pub proof_slots_max: usize,
    /// Most state reads and calls running at once (on blocking threads).
    pub blocking_tasks_max: usize,
    /// `eth_maxPriorityFeePerGas` when recent blocks have no transactions.
    pub tip_default_wei: u128,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8545)),
            request_body_bytes_max: 5 << 20,
            response_body_bytes_max: 32 << 20,
            batch_requests_max: 100,
            connections_max: 100,
            subscriptions_per_connection_max: 64,
            call_gas_cap: 50_000_000,
            call_timeout: Duration::from_secs(5),
            logs_block_range_max: 10_000,
            logs_results_max: 10_000,
            fee_history_blocks_max: 1_024,
            proof_slots_max: 1_024,
            blocking_tasks_max: 16,
            tip_default_wei: 1_000_000_000,
        }
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum RpcStartError {
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("registering methods: {0}")]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
}

/// A running server. Dropping it stops the server.
#[derive(Debug)]
pub struct RpcServerHandle {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl RpcServerHandle {
    /// The address it listens on (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://addr`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Asks the server to stop (idempotent).
    pub fn stop(&self) {
        let _ = self.handle.stop();
    }

    /// Resolves once the server has stopped.
    pub async fn stopped(self) {
        self.handle.stopped().await
    }
}

/// The JSON-RPC server.
#[derive(Debug)]
pub struct RpcServer;

impl RpcServer {
    /// Binds `config.addr` and serves on `runtime` (HTTP and WebSocket on
    /// the one port, `GET /metrics` too), with the RPC metrics registered
    /// in `metrics`.
    pub fn start(
        config: RpcConfig,
        backend: Arc<dyn RpcBackend>,
        metrics: Arc<Metrics>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<RpcServerHandle, RpcStartError> {
        let addr = config.addr;
        let bind = |source| RpcStartError::Bind { addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let local_addr = listener.local_addr().map_err(bind)?;

        let handler = EthHandler::new(backend, config.clone());
        let mut module = RpcModule::new(());
        module.merge(EthApiServer::into_rpc(handler.clone()))?;
        module.merge(NetApiServer::into_rpc(handler.clone()))?;
        module.merge(Web3ApiServer::into_rpc(handler))?;

        let server_config = ServerConfig::builder()
            .max_request_body_size(config.request_body_bytes_max)
            .max_response_body_size(config.response_body_bytes_max)
            .max_connections(config.connections_max)
            .max_subscriptions_per_connection(config.subscriptions_per_connection_max)
            // Counted (and refused with -32005) by RpcMetricsLayer; the
            // request body cap bounds what is parsed.
            .set_batch_request_config(BatchRequestConfig::Unlimited)
            .custom_tokio_runtime(runtime.clone())
            .set_id_provider(HexIdProvider)
            .build();
        let rpc_metrics = RpcMetrics::register(&metrics);
        let rpc_middleware = RpcServiceBuilder::new().layer(RpcMetricsLayer::new(
            rpc_metrics,
            config.batch_requests_max,
            config.response_body_bytes_max as usize,
        ));
        let http_middleware = tower::ServiceBuilder::new().layer(MetricsHttpLayer::new(metrics));
        let _entered = runtime.enter();
        let server = Server::builder()
            .set_config(server_config)
            .set_rpc_middleware(rpc_middleware)
            .set_http_middleware(http_middleware)
            .build_from_tcp(listener)
            .map_err(bind)?;
        let handle = server.start(module);
        tracing::info!(addr = %local_addr, "JSON-RPC server listening (HTTP, WebSocket, /metrics)");
        Ok(RpcServerHandle { addr: local_addr, handle })
    }
}

/// Subscription ids as Ethereum clients expect them: a `0x`-prefixed hex
/// string of 16 random bytes, as geth and reth give. jsonrpsee's default is
/// a JSON number, which viem never matches to its notifications.
#[derive(Debug)]
struct HexIdProvider;

impl jsonrpsee::core::traits::IdProvider for HexIdProvider {
    fn next_id(&self) -> jsonrpsee::types::SubscriptionId<'static> {
        let bytes: [u8; 16] = rand::random();
        jsonrpsee::types::SubscriptionId::Str(format!("0x{}", hex::encode(bytes)).into())
    }
}
