//! The `eth_`, `net_` and `web3_` namespaces: the methods and their
//! handlers over an [`RpcBackend`].

use super::RpcConfig;
use super::backend::{RpcBackend, SubmitError};
use super::convert::{
    RpcBlock, RpcReceipt, RpcTransaction, rpc_block, rpc_header, rpc_log, rpc_receipt,
    rpc_transaction,
};
use super::error::RpcError;
use super::store::StoredBlock;
use alloy_consensus::Header;
use alloy_eips::eip1559::BaseFeeParams;
use alloy_eips::eip7840::BlobParams;
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256};
use alloy_rpc_types_eth::pubsub::{Params, SubscriptionKind};
use alloy_rpc_types_eth::{
    EIP1186AccountProofResponse, EIP1186StorageProof, FeeHistory, Filter, FilterBlockOption, Log,
    SyncInfo, SyncStatus, TransactionRequest,
};
use alloy_serde::JsonStorageKey;
use jsonrpsee::PendingSubscriptionSink;
use jsonrpsee::core::{RpcResult, SubscriptionResult, async_trait};
use jsonrpsee::proc_macros::rpc;
use revm::context::TxEnv;
use revm::context::either::Either;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Semaphore, broadcast};
use wake_execution::call::{CallError, CallLimits, CallOutcome, call, estimate_gas};
use wake_execution::{BlockHashes, SnapshotState};
use wake_triedb::{EMPTY_ROOT, KECCAK_EMPTY};

/// Blocks `eth_maxPriorityFeePerGas` samples, newest first.
const TIP_SAMPLE_BLOCKS: u64 = 20;
/// The percentile of recent tips it suggests (geth's oracle uses 60).
const TIP_PERCENTILE: f64 = 60.0;
/// Most percentiles one `eth_feeHistory` call may ask for.
const FEE_HISTORY_PERCENTILES_MAX: usize = 100;

#[rpc(server, namespace = "eth")]
pub trait EthApi {
    #[method(name = "chainId")]
    fn chain_id(&self) -> RpcResult<U64>;

    #[method(name = "syncing")]
    fn syncing(&self) -> RpcResult<SyncStatus>;

    #[method(name = "blockNumber")]
    fn block_number(&self) -> RpcResult<U64>;

    #[method(name = "getBlockByNumber")]
    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<RpcBlock>>;

    #[method(name = "getBlockByHash")]
    fn block_by_hash(&self, hash: B256, full: bool) -> RpcResult<Option<RpcBlock>>;

    #[method(name = "getTransactionByHash")]
    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<RpcTransaction>>;

    #[method(name = "getTransactionReceipt")]
    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<RpcReceipt>>;

    #[method(name = "getBalance")]
    async fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256>;

    #[method(name = "getTransactionCount")]
    async fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64>;

    #[method(name = "getCode")]
    async fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes>;

    #[method(name = "getStorageAt")]
    async fn storage_at(
        &self,
        address: Address,
        slot: JsonStorageKey,
        block: Option<BlockId>,
    ) -> RpcResult<B256>;

    #[method(name = "getProof")]
    async fn proof(
        &self,
        address: Address,
        keys: Vec<JsonStorageKey>,
        block: Option<BlockId>,
    ) -> RpcResult<EIP1186AccountProofResponse>;

    #[method(name = "call")]
    async fn call(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<Bytes>;

    #[method(name = "estimateGas")]
    async fn estimate_gas(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
    ) -> RpcResult<U64>;

    #[method(name = "gasPrice")]
    fn gas_price(&self) -> RpcResult<U256>;

    #[method(name = "maxPriorityFeePerGas")]
    fn max_priority_fee_per_gas(&self) -> RpcResult<U256>;

    #[method(name = "feeHistory")]
    fn fee_history(
        &self,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory>;

    #[method(name = "sendRawTransaction")]
    async fn send_raw_transaction(&self, bytes: Bytes) -> RpcResult<B256>;

    #[method(name = "getLogs")]
    async fn logs(&self, filter: Filter) -> RpcResult<Vec<Log>>;

    #[subscription(name = "subscribe" => "subscription", unsubscribe = "unsubscribe", item = serde_json::Value)]
    async fn subscribe(&self, kind: SubscriptionKind, params: Option<Params>)
    -> SubscriptionResult;
}

#[rpc(server, namespace = "net")]
pub trait NetApi {
    #[method(name = "version")]
    fn version(&self) -> RpcResult<String>;
}

#[rpc(server, namespace = "web3")]
pub trait Web3Api {
    #[method(name = "clientVersion")]
    fn client_version(&self) -> RpcResult<String>;
}

/// The handlers of all three namespaces.
#[derive(Clone)]
pub struct EthHandler {
    backend: Arc<dyn RpcBackend>,
    config: RpcConfig,
    /// Bounds the state reads and calls running on blocking threads.
    blocking: Arc<Semaphore>,
}

impl EthHandler {
    pub fn new(backend: Arc<dyn RpcBackend>, config: RpcConfig) -> EthHandler {
        let permits = config.blocking_tasks_max.max(1);
        EthHandler { backend, config, blocking: Arc::new(Semaphore::new(permits)) }
    }

    /// Runs `work` on a blocking thread (triedb reads are synchronous I/O,
    /// calls are CPU), at most [`RpcConfig::blocking_tasks_max`] at once.
    async fn blocking<T, F>(&self, work: F) -> Result<T, RpcError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn RpcBackend, &RpcConfig) -> Result<T, RpcError> + Send + 'static,
    {
        let permit = Arc::clone(&self.blocking)
            .acquire_owned()
            .await
            .map_err(|_| RpcError::Internal("the server is shutting down".into()))?;
        let backend = Arc::clone(&self.backend);
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&*backend, &config)
        })
        .await
        .map_err(|e| RpcError::Internal(format!("request task failed: {e}")))?
    }
}

/// The stored block a tag or number names (`None`: not stored).
fn block_by_tag(backend: &dyn RpcBackend, tag: BlockNumberOrTag) -> Option<Arc<StoredBlock>> {
    let store = backend.store();
    match tag {
        BlockNumberOrTag::Latest | BlockNumberOrTag::Pending => store.latest(),
        BlockNumberOrTag::Safe | BlockNumberOrTag::Finalized => store.finalized(),
        BlockNumberOrTag::Earliest => store.by_number(0),
        BlockNumberOrTag::Number(n) => store.by_number(n),
    }
}

/// The stored block an EIP-1898 block id names (default: latest).
fn block_by_id(
    backend: &dyn RpcBackend,
    id: Option<BlockId>,
) -> Result<Arc<StoredBlock>, RpcError> {
    let block = match id.unwrap_or_default() {
        BlockId::Number(tag) => block_by_tag(backend, tag),
        BlockId::Hash(hash) => backend.store().by_hash(&hash.block_hash),
    };
    block.ok_or(RpcError::HeaderNotFound)
}

fn is_pending(id: Option<BlockId>) -> bool {
    matches!(id, Some(BlockId::Number(BlockNumberOrTag::Pending)))
}

fn snapshot(
    backend: &dyn RpcBackend,
    block: &StoredBlock,
) -> Result<wake_triedb::Snapshot, RpcError> {
    backend
        .state_at(block.number())
        .map_err(|e| RpcError::StateUnavailable { number: e.number, reason: e.reason })
}

fn state_error(e: impl std::fmt::Display) -> RpcError {
    RpcError::Internal(format!("state read failed: {e}"))
}

/// Block hashes for `BLOCKHASH` in calls, from the store.
struct StoreHashes<'a>(&'a dyn RpcBackend);

impl BlockHashes for StoreHashes<'_> {
    fn block_hash(&self, number: u64) -> Option<B256> {
        self.0.store().by_number(number).map(|b| b.hash)
    }
}

/// What a failed call means to the client.
fn call_error(e: CallError, config: &RpcConfig) -> RpcError {
    match e {
        CallError::Timeout => RpcError::Call(format!(
            "execution aborted (timeout = {}ms)",
            config.call_timeout.as_millis()
        )),
        CallError::GasCapTooLow { outcome: CallOutcome::Revert { output, .. }, .. } => {
            RpcError::reverted(output)
        }
        CallError::GasCapTooLow { cap, .. } => {
            RpcError::Call(format!("gas required exceeds allowance ({cap})"))
        }
        CallError::Invalid(e) => RpcError::Call(e.to_string()),
        CallError::State(e) => RpcError::Internal(e.to_string()),
    }
}

/// The revm environment of an `eth_call` request (geth's defaults: zero
/// sender, zero gas price, gas = `gas`).
fn tx_env(request: TransactionRequest, chain_id: u64, gas: u64) -> Result<TxEnv, RpcError> {
    let data = request
        .input
        .try_into_unique_input()
        .map_err(|e| RpcError::InvalidParams(e.to_string()))?
        .unwrap_or_default();
    let (gas_price, gas_priority_fee) = match (request.gas_price, request.max_fee_per_gas) {
        (Some(_), Some(_)) => {
            return Err(RpcError::InvalidParams("both gasPrice and maxFeePerGas specified".into()));
        }
        (Some(price), None) => (price, None),
        (None, Some(max_fee)) => (max_fee, Some(request.max_priority_fee_per_gas.unwrap_or(0))),
        (None, None) => (0, request.max_priority_fee_per_gas),
    };
    let tx_type = if request.authorization_list.is_some() {
        4
    } else if request.blob_versioned_hashes.is_some() {
        3
    } else if gas_priority_fee.is_some() {
        2
    } else if request.access_list.is_some() {
        1
    } else {
        0
    };
    Ok(TxEnv {
        tx_type,
        caller: request.from.unwrap_or_default(),
        gas_limit: gas,
        gas_price,
        kind: request.to.unwrap_or(TxKind::Create),
        value: request.value.unwrap_or_default(),
        data,
        nonce: request.nonce.unwrap_or_default(),
        chain_id: Some(request.chain_id.unwrap_or(chain_id)),
        access_list: request.access_list.unwrap_or_default(),
        gas_priority_fee,
        blob_hashes: request.blob_versioned_hashes.unwrap_or_default(),
        max_fee_per_blob_gas: request.max_fee_per_blob_gas.unwrap_or_default(),
        authorization_list: request
            .authorization_list
            .unwrap_or_default()
            .into_iter()
            .map(Either::Left)
            .collect(),
    })
}

/// `eth_getLogs` over the store.
fn logs(backend: &dyn RpcBackend, config: &RpcConfig, filter: &Filter) -> RpcResult<Vec<Log>> {
    let store = backend.store();
    let blocks = match filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            vec![store.by_hash(&hash).ok_or(RpcError::Call("unknown block".into()))?]
        }
        FilterBlockOption::Range { from_block, to_block } => {
            let Some(latest) = store.latest().map(|b| b.number()) else {
                return Ok(Vec::new());
            };
            let resolve = |tag: Option<BlockNumberOrTag>| -> Result<u64, RpcError> {
                match tag.unwrap_or_default() {
                    BlockNumberOrTag::Number(n) => Ok(n.min(latest)),
                    BlockNumberOrTag::Earliest => Ok(0),
                    tag => block_by_tag(backend, tag)
                        .map(|b| b.number())
                        .ok_or(RpcError::HeaderNotFound),
                }
            };
            let from = resolve(from_block)?;
            let to = resolve(to_block)?;
            if matches!(from_block, Some(BlockNumberOrTag::Number(n)) if n > latest) {
                return Ok(Vec::new());
            }
            if from > to {
                return Err(RpcError::InvalidParams("invalid block range params".into()).into());
            }
            if to - from >= config.logs_block_range_max {
                return Err(RpcError::LimitExceeded(format!(
                    "exceed maximum block range: {}",
                    config.logs_block_range_max
                ))
                .into());
            }
            store.range(from, to, config.logs_block_range_max as usize)
        }
    };
    let mut found = Vec::new();
    let too_many = || {
        RpcError::LimitExceeded(format!(
            "query returned more than {} results",
            config.logs_results_max
        ))
    };
    for block in &blocks {
        let left = config.logs_results_max - found.len();
        let matched = block.matching_logs(filter, left).map_err(|_| too_many())?;
        found.extend(matched.iter().map(|m| rpc_log(block, m)));
    }
    Ok(found)
}

/// The tip at `percentile` of the gas used in `block` (geth's feeHistory
/// reward): transactions sorted by tip, weighted by their gas.
fn block_rewards(block: &StoredBlock, percentiles: &[f64]) -> Vec<u128> {
    let mut tips: Vec<(u128, u64)> = (0..block.transactions.len())
        .map(|i| (block.effective_tip(i), block.gas_used_by(i)))
        .collect();
    if tips.is_empty() {
        return vec![0; percentiles.len()];
    }
    tips.sort_unstable_by_key(|(tip, _)| *tip);
    let total = block.header.gas_used as f64;
    let mut rewards = Vec::with_capacity(percentiles.len());
    let mut at = 0usize;
    let mut cumulative = tips[0].1 as f64;
    for p in percentiles {
        let threshold = total * p / 100.0;
        while cumulative < threshold && at + 1 < tips.len() {
            at += 1;
            cumulative += tips[at].1 as f64;
        }
        rewards.push(tips[at].0);
    }
    rewards
}

/// The tip [`EthHandler::max_priority_fee_per_gas`] suggests.
fn suggested_tip(backend: &dyn RpcBackend, config: &RpcConfig) -> u128 {
    let store = backend.store();
    let Some(latest) = store.latest() else {
        return config.tip_default_wei;
    };
    let from = latest.number().saturating_sub(TIP_SAMPLE_BLOCKS - 1);
    let mut tips: Vec<u128> = store
        .range(from, latest.number(), TIP_SAMPLE_BLOCKS as usize)
        .iter()
        .flat_map(|b| (0..b.transactions.len()).map(|i| b.effective_tip(i)).collect::<Vec<_>>())
        .collect();
    if tips.is_empty() {
        return config.tip_default_wei;
    }
    tips.sort_unstable();
    let at = ((tips.len() - 1) as f64 * TIP_PERCENTILE / 100.0) as usize;
    tips[at.min(tips.len() - 1)]
}

fn blob_gas_used_ratio(header: &Header) -> f64 {
    let max = BlobParams::cancun().max_blob_gas_per_block();
    match header.blob_gas_used {
        Some(used) if max > 0 => used as f64 / max as f64,
        _ => 0.0,
    }
}

#[async_trait]
impl EthApiServer for EthHandler {
    fn chain_id(&self) -> RpcResult<U64> {
        Ok(U64::from(self.backend.chain().chain_id))
    }

    fn syncing(&self) -> RpcResult<SyncStatus> {
        Ok(match self.backend.sync_state() {
            None => SyncStatus::None,
            Some(state) => SyncStatus::Info(Box::new(SyncInfo {
                starting_block: U256::from(state.starting_block),
                current_block: U256::from(state.current_block),
                highest_block: U256::from(state.highest_block),
                ..Default::default()
            })),
        })
    }

    fn block_number(&self) -> RpcResult<U64> {
        Ok(U64::from(self.backend.store().latest().map_or(0, |b| b.number())))
    }

    fn block_by_number(&self, number: BlockNumberOrTag, full: bool) -> RpcResult<Option<RpcBlock>> {
        Ok(block_by_tag(&*self.backend, number).map(|b| rpc_block(&b, full)))
    }

    fn block_by_hash(&self, hash: B256, full: bool) -> RpcResult<Option<RpcBlock>> {
        Ok(self.backend.store().by_hash(&hash).map(|b| rpc_block(&b, full)))
    }

    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<RpcTransaction>> {
        Ok(self
            .backend
            .store()
            .transaction(&hash)
            .and_then(|(block, index)| rpc_transaction(&block, index)))
    }

    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<RpcReceipt>> {
        Ok(self
            .backend
            .store()
            .transaction(&hash)
            .and_then(|(block, index)| rpc_receipt(&block, index)))
    }

    async fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256> {
        Ok(self
            .blocking(move |backend, _| {
                let block = block_by_id(backend, block)?;
                let account = snapshot(backend, &block)?.account(&address).map_err(state_error)?;
                Ok(account.map_or(U256::ZERO, |a| a.balance))
            })
            .await?)
    }

    async fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64> {
        if is_pending(block)
            && let Some(nonce) = self.backend.pending_nonce(address)
        {
            return Ok(U64::from(nonce));
        }
        Ok(self
            .blocking(move |backend, _| {
                let block = block_by_id(backend, block)?;
                let account = snapshot(backend, &block)?.account(&address).map_err(state_error)?;
                Ok(U64::from(account.map_or(0, |a| a.nonce)))
            })
            .await?)
    }

    async fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes> {
        Ok(self
            .blocking(move |backend, _| {
                let block = block_by_id(backend, block)?;
                let snapshot = snapshot(backend, &block)?;
                let Some(account) = snapshot.account(&address).map_err(state_error)? else {
                    return Ok(Bytes::new());
                };
                if account.code_hash == KECCAK_EMPTY {
                    return Ok(Bytes::new());
                }
                Ok(snapshot.code(&account.code_hash).map_err(state_error)?.unwrap_or_default())
            })
            .await?)
    }

    async fn storage_at(
        &self,
        address: Address,
        slot: JsonStorageKey,
        block: Option<BlockId>,
    ) -> RpcResult<B256> {
        Ok(self
            .blocking(move |backend, _| {
                let block = block_by_id(backend, block)?;
                let value = snapshot(backend, &block)?
                    .storage(&address, &slot.as_b256())
                    .map_err(state_error)?;
                Ok(B256::from(value))
            })
            .await?)
    }

    async fn proof(
        &self,
        address: Address,
        keys: Vec<JsonStorageKey>,
        block: Option<BlockId>,
    ) -> RpcResult<EIP1186AccountProofResponse> {
        if keys.len() > self.config.proof_slots_max {
            return Err(RpcError::LimitExceeded(format!(
                "{} storage keys exceed the limit of {}",
                keys.len(),
                self.config.proof_slots_max
            ))
            .into());
        }
        Ok(self
            .blocking(move |backend, _| {
                let block = block_by_id(backend, block)?;
                let slots: Vec<B256> = keys.iter().map(JsonStorageKey::as_b256).collect();
                let proof =
                    snapshot(backend, &block)?.proof(&address, &slots).map_err(state_error)?;
                let account = proof.account;
                Ok(EIP1186AccountProofResponse {
                    address,
                    balance: account.map_or(U256::ZERO, |a| a.balance),
                    code_hash: account.map_or(KECCAK_EMPTY, |a| a.code_hash),
                    nonce: account.map_or(0, |a| a.nonce),
                    storage_hash: account.map_or(EMPTY_ROOT, |a| a.storage_root),
                    account_proof: proof.account_proof,
                    storage_proof: proof
                        .storage_proofs
                        .into_iter()
                        .zip(keys)
                        .map(|(p, key)| EIP1186StorageProof { key, value: p.value, proof: p.proof })
                        .collect(),
                })
            })
            .await?)
    }

    async fn call(&self, request: TransactionRequest, block: Option<BlockId>) -> RpcResult<Bytes> {
        Ok(self
            .blocking(move |backend, config| {
                let block = block_by_id(backend, block)?;
                let gas = request.gas.unwrap_or(config.call_gas_cap).min(config.call_gas_cap);
                let env = tx_env(request, backend.chain().chain_id, gas)?;
                let snapshot = snapshot(backend, &block)?;
                let hashes = StoreHashes(backend);
                let state = SnapshotState::new(&snapshot, &hashes);
                let limits = CallLimits { deadline: Some(Instant::now() + config.call_timeout) };
                match call(backend.chain(), &block.header, state, env, limits) {
                    Ok(CallOutcome::Success { output, .. }) => Ok(output),
                    Ok(CallOutcome::Revert { output, .. }) => Err(RpcError::reverted(output)),
                    Ok(CallOutcome::Halt { reason, .. }) => Err(RpcError::Call(reason)),
                    Err(e) => Err(call_error(e, config)),
                }
            })
            .await?)
    }

    async fn estimate_gas(
        &self,
        request: TransactionRequest,
        block: Option<BlockId>,
    ) -> RpcResult<U64> {
        Ok(self
            .blocking(move |backend, config| {
                let block = block_by_id(backend, block)?;
                let snapshot = snapshot(backend, &block)?;
                let mut gas =
                    request.gas.unwrap_or(block.header.gas_limit).min(config.call_gas_cap);
                let env = tx_env(request, backend.chain().chain_id, gas)?;
                // As geth: with a fee set, the sender's funds bound the gas.
                if env.gas_price > 0 {
                    let balance = snapshot
                        .account(&env.caller)
                        .map_err(state_error)?
                        .map_or(U256::ZERO, |a| a.balance);
                    let left = balance.saturating_sub(env.value);
                    let affordable = left / U256::from(env.gas_price);
                    gas = gas.min(u64::try_from(affordable).unwrap_or(u64::MAX));
                }
                let env = TxEnv { gas_limit: gas, ..env };
                let hashes = StoreHashes(backend);
                let state = SnapshotState::new(&snapshot, &hashes);
                let limits = CallLimits { deadline: Some(Instant::now() + config.call_timeout) };
                estimate_gas(backend.chain(), &block.header, state, env, limits)
                    .map(U64::from)
                    .map_err(|e| call_error(e, config))
            })
            .await?)
    }

    fn gas_price(&self) -> RpcResult<U256> {
        let base_fee = self
            .backend
            .store()
            .latest()
            .and_then(|b| b.header.base_fee_per_gas)
            .unwrap_or_default();
        let tip = suggested_tip(&*self.backend, &self.config);
        Ok(U256::from(u128::from(base_fee).saturating_add(tip)))
    }

    fn max_priority_fee_per_gas(&self) -> RpcResult<U256> {
        Ok(U256::from(suggested_tip(&*self.backend, &self.config)))
    }

    fn fee_history(
        &self,
        block_count: U64,
        newest_block: BlockNumberOrTag,
        reward_percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory> {
        let percentiles = reward_percentiles.unwrap_or_default();
        if percentiles.len() > FEE_HISTORY_PERCENTILES_MAX {
            return Err(RpcError::LimitExceeded(format!(
                "{} reward percentiles exceed the limit of {FEE_HISTORY_PERCENTILES_MAX}",
                percentiles.len()
            ))
            .into());
        }
        let mut previous = 0.0;
        for p in &percentiles {
            if !(0.0..=100.0).contains(p) || *p < previous {
                return Err(
                    RpcError::InvalidParams(format!("invalid reward percentile: {p}")).into()
                );
            }
            previous = *p;
        }
        let count = block_count.saturating_to::<u64>().min(self.config.fee_history_blocks_max);
        let newest = block_by_tag(&*self.backend, newest_block).ok_or(RpcError::HeaderNotFound)?;
        if count == 0 {
            return Ok(FeeHistory::default());
        }
        let oldest = newest.number().saturating_sub(count - 1);
        let blocks = self.backend.store().range(oldest, newest.number(), count as usize);
        let oldest_block = blocks.first().map_or(newest.number(), |b| b.number());
        let mut history = FeeHistory {
            oldest_block,
            reward: (!percentiles.is_empty()).then(Vec::new),
            ..Default::default()
        };
        for block in &blocks {
            let header = &block.header;
            history.base_fee_per_gas.push(u128::from(header.base_fee_per_gas.unwrap_or_default()));
            history.gas_used_ratio.push(if header.gas_limit == 0 {
                0.0
            } else {
                header.gas_used as f64 / header.gas_limit as f64
            });
            history
                .base_fee_per_blob_gas
                .push(header.blob_fee(BlobParams::cancun()).unwrap_or_default());
            history.blob_gas_used_ratio.push(blob_gas_used_ratio(header));
            if let Some(reward) = history.reward.as_mut() {
                reward.push(block_rewards(block, &percentiles));
            }
        }
        let last = &newest.header;
        history.base_fee_per_gas.push(u128::from(
            last.next_block_base_fee(BaseFeeParams::ethereum()).unwrap_or_default(),
        ));
        history
            .base_fee_per_blob_gas
            .push(last.next_block_blob_fee(BlobParams::cancun()).unwrap_or_default());
        Ok(history)
    }

    async fn send_raw_transaction(&self, bytes: Bytes) -> RpcResult<B256> {
        let tx = wake_execution::decode_tx(&bytes).map_err(|e| RpcError::Call(e.to_string()))?;
        let chain_id = self.backend.chain().chain_id;
        if let Some(id) = alloy_consensus::Transaction::chain_id(&tx)
            && id != chain_id
        {
            return Err(RpcError::Call(format!(
                "invalid chain id: transaction has {id}, chain is {chain_id}"
            ))
            .into());
        }
        self.backend.submit_raw_transaction(bytes).await.map_err(|e| {
            match e {
                SubmitError::Rejected(message) => RpcError::Rejected(message),
                SubmitError::Busy(message) => RpcError::LimitExceeded(message),
            }
            .into()
        })
    }

    async fn logs(&self, filter: Filter) -> RpcResult<Vec<Log>> {
        let backend = Arc::clone(&self.backend);
        let config = self.config.clone();
        let permit = Arc::clone(&self.blocking)
            .acquire_owned()
            .await
            .map_err(|_| RpcError::Internal("the server is shutting down".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            logs(&*backend, &config, &filter)
        })
        .await
        .map_err(|e| RpcError::Internal(format!("request task failed: {e}")))?
    }

    async fn subscribe(
        &self,
        pending: PendingSubscriptionSink,
        kind: SubscriptionKind,
        params: Option<Params>,
    ) -> SubscriptionResult {
        let filter = match (kind, params) {
            (SubscriptionKind::NewHeads, None | Some(Params::None)) => None,
            (SubscriptionKind::Logs, None | Some(Params::None)) => Some(Filter::default()),
            (SubscriptionKind::Logs, Some(Params::Logs(filter))) => Some(*filter),
            (SubscriptionKind::NewHeads | SubscriptionKind::Logs, Some(_)) => {
                pending.reject(RpcError::InvalidParams("unexpected params".into())).await;
                return Ok(());
            }
            (kind, _) => {
                let message = format!("unsupported subscription: {kind:?}");
                pending.reject(RpcError::InvalidParams(message)).await;
                return Ok(());
            }
        };
        // Subscribe before accepting, so no block inserted after the
        // client learns its subscription id is missed.
        let mut blocks = self.backend.store().subscribe();
        let sink = pending.accept().await?;
        loop {
            let block = tokio::select! {
                _ = sink.closed() => return Ok(()),
                block = blocks.recv() => block,
            };
            let block = match block {
                Ok(block) => block,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Err(format!(
                        "subscriber too slow: {missed} blocks were dropped; subscribe again"
                    )
                    .into());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            };
            match &filter {
                None => {
                    let header = serde_json::value::to_raw_value(&rpc_header(&block))?;
                    sink.send(header).await?;
                }
                Some(filter) => {
                    let matched = block.matching_logs(filter, usize::MAX).unwrap_or_default();
                    for m in &matched {
                        sink.send(serde_json::value::to_raw_value(&rpc_log(&block, m))?).await?;
                    }
                }
            }
        }
    }
}

impl NetApiServer for EthHandler {
    fn version(&self) -> RpcResult<String> {
        Ok(self.backend.chain().chain_id.to_string())
    }
}

impl Web3ApiServer for EthHandler {
    fn client_version(&self) -> RpcResult<String> {
        Ok(format!(
            "wake/v{}/{}-{}/rust",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        ))
    }
}
