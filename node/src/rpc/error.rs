//! The server's typed errors and their JSON-RPC codes.
//!
//! | error | code | as in |
//! |---|---|---|
//! | [`RpcError::InvalidParams`] | -32602 | JSON-RPC 2.0 |
//! | [`RpcError::LimitExceeded`] | -32005 | EIP-1474 "limit exceeded" (Infura, geth's `eth_getLogs`) |
//! | [`RpcError::Reverted`] | 3, `data` = revert data | geth's `execution reverted` |
//! | [`RpcError::HeaderNotFound`], [`RpcError::StateUnavailable`], [`RpcError::Call`], [`RpcError::Rejected`] | -32000 | geth |
//! | [`RpcError::Internal`] | -32603 | JSON-RPC 2.0 |

use alloy_primitives::Bytes;
use jsonrpsee::types::ErrorObjectOwned;

pub const INVALID_PARAMS_CODE: i32 = -32602;
pub const INTERNAL_ERROR_CODE: i32 = -32603;
/// geth's code for most server-side failures.
pub const SERVER_ERROR_CODE: i32 = -32000;
/// EIP-1474 "limit exceeded".
pub const LIMIT_EXCEEDED_CODE: i32 = -32005;
/// geth's code for `execution reverted` (the revert data is in `data`).
pub const REVERTED_CODE: i32 = 3;

/// `Error(string)`: the selector of a Solidity revert reason.
const ERROR_STRING_SELECTOR: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
/// Longest revert reason copied into an error message.
const REVERT_REASON_CHARS_MAX: usize = 1_024;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    #[error("invalid params: {0}")]
    InvalidParams(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// The call ran `REVERT`.
    #[error("execution reverted{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Reverted { data: Bytes, reason: Option<String> },
    /// A block named by number or hash is not (or no longer) stored.
    #[error("header not found")]
    HeaderNotFound,
    /// The state of a stored block is not retained by triedb any more.
    #[error("state of block {number} is not available: {reason}")]
    StateUnavailable { number: u64, reason: String },
    /// A call failed before or while running (invalid in this state,
    /// timeout, out of gas at the cap, ...).
    #[error("{0}")]
    Call(String),
    /// The transaction pool refused a transaction.
    #[error("{0}")]
    Rejected(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RpcError {
    pub fn code(&self) -> i32 {
        match self {
            RpcError::InvalidParams(_) => INVALID_PARAMS_CODE,
            RpcError::LimitExceeded(_) => LIMIT_EXCEEDED_CODE,
            RpcError::Reverted { .. } => REVERTED_CODE,
            RpcError::HeaderNotFound
            | RpcError::StateUnavailable { .. }
            | RpcError::Call(_)
            | RpcError::Rejected(_) => SERVER_ERROR_CODE,
            RpcError::Internal(_) => INTERNAL_ERROR_CODE,
        }
    }

    /// A revert with its data, and the reason when the data is an
    /// `Error(string)`.
    pub fn reverted(data: Bytes) -> RpcError {
        RpcError::Reverted { reason: revert_reason(&data), data }
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(e: RpcError) -> Self {
        let code = e.code();
        match e {
            RpcError::Reverted { ref data, .. } => {
                ErrorObjectOwned::owned(code, e.to_string(), Some(data.clone()))
            }
            e => ErrorObjectOwned::owned(code, e.to_string(), None::<()>),
        }
    }
}

/// The string of an ABI-encoded `Error(string)`, if `data` is one.
pub fn revert_reason(data: &[u8]) -> Option<String> {
    let body = data.strip_prefix(&ERROR_STRING_SELECTOR)?;
    let word = |at: usize| -> Option<usize> {
        let bytes = body.get(at..at.checked_add(32)?)?;
        // A length or offset above 2^64 cannot be inside the data.
        if bytes[..24].iter().any(|b| *b != 0) {
            return None;
        }
        usize::try_from(u64::from_be_bytes(bytes[24..].try_into().ok()?)).ok()
    };
    let offset = word(0)?;
    let len = word(offset)?;
    let start = offset.checked_add(32)?;
    let text = body.get(start..start.checked_add(len)?)?;
    let text = String::from_utf8_lossy(text);
    Some(text.chars().take(REVERT_REASON_CHARS_MAX).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revert_reasons_decode_and_bad_data_does_not() {
        let mut data = ERROR_STRING_SELECTOR.to_vec();
        let mut word = [0u8; 32];
        word[31] = 0x20;
        data.extend_from_slice(&word);
        word[31] = 4;
        data.extend_from_slice(&word);
        let mut text = [0u8; 32];
        text[..4].copy_from_slice(b"nope");
        data.extend_from_slice(&text);
        assert_eq!(revert_reason(&data).as_deref(), Some("nope"));
        let e = RpcError::reverted(data.clone().into());
        assert_eq!(e.to_string(), "execution reverted: nope");
        assert_eq!(e.code(), 3);
        // Truncated, huge offsets, other selectors: no reason, no panic.
        for cut in 0..data.len() {
            let _ = revert_reason(&data[..cut]);
        }
        data[4] = 0xff;
        assert_eq!(revert_reason(&data), None);
        assert_eq!(revert_reason(&[1, 2, 3, 4, 5]), None);
    }
}
