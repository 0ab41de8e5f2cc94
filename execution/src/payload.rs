//! The block payload: the ordered transactions that consensus agrees on.
//!
//! Encoding: one RLP list whose items are RLP byte strings, each holding one
//! transaction's EIP-2718 envelope (the bytes its hash is taken over; a
//! legacy transaction is its own RLP list, a typed one `type || rlp`). Every
//! item is therefore opaque to the list decoder, so a payload splits into
//! transactions without decoding any of them, and the bytes a leader sends
//! are exactly the bytes its pool admitted.
//!
//! Decoding is bounded before anything is allocated: the payload's length,
//! its number of items, and each transaction's length ([`TX_BYTES_MAX`]);
//! trailing bytes after the list are an error. The checks that need state
//! or a signature (chain id, nonce, sender) are the executor's.

use crate::error::TxError;
use crate::tx::{BlockTx, TX_BYTES_MAX, decode_tx};
use alloy_rlp::{Encodable, Header};

/// Why a payload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("payload holds more than {max} transactions")]
    TooManyTxs { max: usize },
    #[error("bad payload encoding: {0}")]
    Decode(alloy_rlp::Error),
    #[error("{0} trailing bytes after the payload list")]
    TrailingBytes(usize),
    #[error("transaction {index}: {source}")]
    Transaction { index: usize, source: TxError },
}

/// Encodes `txs` (EIP-2718 envelopes, in block order) as a payload.
pub fn encode_payload<T: AsRef<[u8]>>(txs: &[T]) -> Vec<u8> {
    let payload_length: usize = txs.iter().map(|tx| tx.as_ref().length()).sum();
    let header = Header { list: true, payload_length };
    let mut out = Vec::with_capacity(header.length_with_payload());
    header.encode(&mut out);
    for tx in txs {
        tx.as_ref().encode(&mut out);
    }
    out
}

/// Bytes that one transaction of `tx_len` envelope bytes adds to a payload.
pub fn payload_item_len(tx_len: usize) -> usize {
    // A one-byte envelope below 0x80 would be its own encoding; no
    // transaction is that short, and counting its header is the safe side.
    Header { list: false, payload_length: tx_len }.length_with_payload()
}

/// Length of a payload whose items add up to `items_len` bytes.
pub fn payload_len(items_len: usize) -> usize {
    Header { list: true, payload_length: items_len }.length_with_payload()
}

/// Splits a payload into its transactions' envelopes without decoding them.
/// Refuses payloads over `bytes_max`, with more than `txs_max` items, with
/// an item over [`TX_BYTES_MAX`], or with trailing bytes.
pub fn split_payload(
    bytes: &[u8],
    txs_max: usize,
    bytes_max: usize,
) -> Result<Vec<&[u8]>, PayloadError> {
    if bytes.len() > bytes_max {
        return Err(PayloadError::TooLarge { len: bytes.len(), max: bytes_max });
    }
    let mut buf = bytes;
    let header = Header::decode(&mut buf).map_err(PayloadError::Decode)?;
    if !header.list {
        return Err(PayloadError::Decode(alloy_rlp::Error::UnexpectedString));
    }
    // `Header::decode` checked that the payload fits in `buf`.
    let (mut items, rest) = buf.split_at(header.payload_length);
    if !rest.is_empty() {
        return Err(PayloadError::TrailingBytes(rest.len()));
    }
    let mut txs = Vec::new();
    while !items.is_empty() {
        if txs.len() == txs_max {
            return Err(PayloadError::TooManyTxs { max: txs_max });
        }
        let index = txs.len();
        let item = Header::decode_bytes(&mut items, false).map_err(PayloadError::Decode)?;
        if item.len() > TX_BYTES_MAX {
            let source = TxError::Oversized { len: item.len(), max: TX_BYTES_MAX };
            return Err(PayloadError::Transaction { index, source });
        }
        txs.push(item);
    }
    Ok(txs)
}

/// Decodes a payload into its transactions (bounded as [`split_payload`];
/// each transaction as [`decode_tx`]).
pub fn decode_payload(
    bytes: &[u8],
    txs_max: usize,
    bytes_max: usize,
) -> Result<Vec<BlockTx>, PayloadError> {
    split_payload(bytes, txs_max, bytes_max)?
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            decode_tx(raw).map_err(|source| PayloadError::Transaction { index, source })
        })
        .collect()
}
