//! Transactions: bounded decoding, parallel sender recovery, and the
//! mapping onto revm's [`TxEnv`].
//!
//! Senders are recovered once, outside revm, with libsecp256k1 (5x faster
//! than k256 here, see DESIGN.md), on the calling thread's helpers
//! ([`crate::workers`]) when a block has enough transactions to pay for them.

use crate::error::TxError;
use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{EthereumTxEnvelope, Transaction, TxEip4844, Typed2718};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::Address;
use revm::context::TxEnv;
use revm::context::either::Either;
use revm::primitives::hardfork::SpecId;

/// A transaction as it appears in a block (blob transactions without their
/// sidecar: the network form with blobs is not a valid block encoding).
pub type BlockTx = EthereumTxEnvelope<TxEip4844>;

/// Most bytes of one transaction accepted by [`decode_tx`] (geth's pool
/// limit; in a block, size is bounded by gas instead).
pub const TX_BYTES_MAX: usize = 128 * 1024;

/// Fewest transactions per recovery thread: below this, handing a part to
/// a helper costs more than it saves (one recovery is ~40 µs).
const RECOVER_TXS_PER_THREAD_MIN: usize = 16;

/// Decodes one EIP-2718 transaction (typed or legacy), refusing inputs over
/// [`TX_BYTES_MAX`] and trailing bytes.
pub fn decode_tx(bytes: &[u8]) -> Result<BlockTx, TxError> {
    if bytes.len() > TX_BYTES_MAX {
        return Err(TxError::Oversized { len: bytes.len(), max: TX_BYTES_MAX });
    }
    let mut buf = bytes;
    let tx = BlockTx::decode_2718(&mut buf).map_err(|e| match e {
        alloy_eips::eip2718::Eip2718Error::RlpError(e) => TxError::Decode(e),
        _ => TxError::Decode(alloy_rlp::Error::Custom("unknown transaction type")),
    })?;
    if !buf.is_empty() {
        return Err(TxError::Decode(alloy_rlp::Error::UnexpectedLength));
    }
    Ok(tx)
}

/// The sender of one transaction. Signatures with a high `s` are refused
/// from Homestead on (EIP-2).
pub fn recover_sender(tx: &BlockTx, spec: SpecId) -> Result<Address, TxError> {
    let recovered = if spec.is_enabled_in(SpecId::HOMESTEAD) {
        tx.recover_signer()
    } else {
        tx.recover_signer_unchecked()
    };
    recovered.map_err(|_| TxError::InvalidSignature)
}

/// The senders of `txs`, in order, recovered on up to `threads` threads.
/// On failure: the index of the first bad transaction and why.
pub fn recover_senders(
    txs: &[BlockTx],
    spec: SpecId,
    threads: usize,
) -> Result<Vec<Address>, (usize, TxError)> {
    let threads = threads.clamp(1, txs.len().div_ceil(RECOVER_TXS_PER_THREAD_MIN).max(1));
    if threads == 1 {
        return txs
            .iter()
            .enumerate()
            .map(|(i, tx)| recover_sender(tx, spec).map_err(|e| (i, e)))
            .collect();
    }
    let chunk = txs.len().div_ceil(threads);
    let parts: Vec<(usize, &[BlockTx])> =
        txs.chunks(chunk).enumerate().map(|(c, part)| (c * chunk, part)).collect();
    // Each part stops at its first error; the block's is the lowest index.
    let recovered = crate::workers::map(parts, |(first, part)| {
        part.iter()
            .enumerate()
            .map(|(i, tx)| recover_sender(tx, spec).map_err(|e| (first + i, e)))
            .collect::<Result<Vec<Address>, (usize, TxError)>>()
    });
    let mut senders = Vec::with_capacity(txs.len());
    for part in recovered {
        senders.extend(part?);
    }
    Ok(senders)
}

/// The revm transaction environment of `tx` sent by `sender`.
pub fn tx_env(tx: &BlockTx, sender: Address) -> TxEnv {
    TxEnv {
        tx_type: tx.ty(),
        caller: sender,
        gas_limit: tx.gas_limit(),
        // Legacy and EIP-2930: the gas price; EIP-1559 and later: the fee cap.
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: tx.max_priority_fee_per_gas(),
        blob_hashes: tx.blob_versioned_hashes().map(<[_]>::to_vec).unwrap_or_default(),
        max_fee_per_blob_gas: tx.max_fee_per_blob_gas().unwrap_or_default(),
        authorization_list: tx
            .authorization_list()
            .map(|list| list.iter().cloned().map(Either::Left).collect())
            .unwrap_or_default(),
    }
}

/// Blob gas a transaction consumes (zero for non-blob transactions).
pub fn blob_gas(tx: &BlockTx) -> u64 {
    tx.blob_versioned_hashes().map_or(0, |hashes| {
        (hashes.len() as u64).saturating_mul(alloy_eips::eip4844::DATA_GAS_PER_BLOB)
    })
}

/// Whether the fork `spec` knows the transaction type `ty`.
pub fn type_enabled(ty: u8, spec: SpecId) -> bool {
    match ty {
        0 => true,
        1 => spec.is_enabled_in(SpecId::BERLIN),
        2 => spec.is_enabled_in(SpecId::LONDON),
        3 => spec.is_enabled_in(SpecId::CANCUN),
        4 => spec.is_enabled_in(SpecId::PRAGUE),
        _ => false,
    }
}
