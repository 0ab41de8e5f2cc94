//! Stored blocks as the JSON-RPC types of `alloy-rpc-types-eth`, so that
//! the JSON is field for field what geth gives and viem / ethers parse.

use super::store::{MatchedLog, StoredBlock};
use alloy_consensus::Transaction as _;
use alloy_consensus::transaction::Recovered;
use alloy_eips::eip7840::BlobParams;
use alloy_primitives::{TxKind, U256};
use alloy_rpc_types_eth::{Block, BlockTransactions, Header, Log, Transaction, TransactionReceipt};
use wake_execution::{BlockTx, blob_gas};

/// A block as `eth_getBlockBy*` answers it.
pub type RpcBlock = Block<Transaction<BlockTx>, Header>;
/// A transaction as `eth_getTransactionByHash` answers it.
pub type RpcTransaction = Transaction<BlockTx>;
/// A receipt as `eth_getTransactionReceipt` answers it.
pub type RpcReceipt = TransactionReceipt;

/// The header with its hash and the block's size.
pub fn rpc_header(block: &StoredBlock) -> Header {
    Header {
        hash: block.hash,
        inner: block.header.clone(),
        total_difficulty: None,
        size: Some(U256::from(block.size)),
    }
}

/// The block, with full transactions or their hashes.
pub fn rpc_block(block: &StoredBlock, full: bool) -> RpcBlock {
    let transactions = if full {
        BlockTransactions::Full(
            (0..block.transactions.len()).filter_map(|i| rpc_transaction(block, i)).collect(),
        )
    } else {
        BlockTransactions::Hashes(block.tx_hashes.clone())
    };
    Block {
        header: rpc_header(block),
        uncles: Vec::new(),
        transactions,
        withdrawals: block.withdrawals.clone(),
    }
}

/// Transaction `index` of the block.
pub fn rpc_transaction(block: &StoredBlock, index: usize) -> Option<RpcTransaction> {
    let tx = block.transactions.get(index)?;
    let sender = *block.senders.get(index)?;
    Some(Transaction {
        inner: Recovered::new_unchecked(tx.clone(), sender),
        block_hash: Some(block.hash),
        block_number: Some(block.number()),
        transaction_index: Some(index as u64),
        effective_gas_price: Some(block.effective_gas_price(index)),
        block_timestamp: None,
    })
}

/// One log with its block, transaction and position.
pub fn rpc_log(block: &StoredBlock, matched: &MatchedLog<'_>) -> Log {
    Log {
        inner: matched.log.clone(),
        block_hash: Some(block.hash),
        block_number: Some(block.number()),
        block_timestamp: Some(block.header.timestamp),
        transaction_hash: block.tx_hashes.get(matched.tx_index).copied(),
        transaction_index: Some(matched.tx_index as u64),
        log_index: Some(matched.log_index),
        removed: false,
    }
}

/// The receipt of transaction `index`: its own gas (from the cumulative
/// figures), the price it paid, the contract it created, and its logs
/// placed in the block.
pub fn rpc_receipt(block: &StoredBlock, index: usize) -> Option<RpcReceipt> {
    let tx = block.transactions.get(index)?;
    let receipt = block.receipts.get(index)?.clone();
    let from = *block.senders.get(index)?;
    let tx_hash = *block.tx_hashes.get(index)?;
    let mut log_index = block.first_log_index(index);
    let inner = receipt.map_logs(|log| {
        let log = Log {
            inner: log,
            block_hash: Some(block.hash),
            block_number: Some(block.number()),
            block_timestamp: Some(block.header.timestamp),
            transaction_hash: Some(tx_hash),
            transaction_index: Some(index as u64),
            log_index: Some(log_index),
            removed: false,
        };
        log_index += 1;
        log
    });
    let (to, contract_address) = match tx.kind() {
        TxKind::Call(to) => (Some(to), None),
        TxKind::Create => (None, Some(from.create(tx.nonce()))),
    };
    let is_blob = tx.is_eip4844();
    Some(TransactionReceipt {
        inner,
        transaction_hash: tx_hash,
        transaction_index: Some(index as u64),
        block_hash: Some(block.hash),
        block_number: Some(block.number()),
        gas_used: block.gas_used_by(index),
        effective_gas_price: block.effective_gas_price(index),
        blob_gas_used: is_blob.then(|| blob_gas(tx)),
        blob_gas_price: if is_blob { block.header.blob_fee(BlobParams::cancun()) } else { None },
        from,
        to,
        contract_address,
    })
}
