//! The blocks of the format-1 fixture (`tests/data/format-1.pages`): the
//! fixture was written by the last format-1 build (`5b7d767`) from exactly
//! these blocks, and `format_1.rs` replays them on the current build.
//! Shared by both, so this file must not change what it generates.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use std::collections::BTreeMap;
use wake_triedb::{AccountInfo, AccountUpdate, KECCAK_EMPTY, StateUpdates};

pub const BLOCKS: u64 = 3;
pub const ACCOUNTS: u64 = 160;

pub fn address(i: u64) -> Address {
    Address::from_slice(&keccak256(i.to_le_bytes())[12..])
}

fn code(i: u64) -> Bytes {
    Bytes::from(vec![0x60, (i % 256) as u8, 0x60, 0x00, 0x55, 0x00])
}

/// Block `block` (1-based): every account is set in block 1; later blocks
/// change a third of them, delete a few, wipe one contract's storage and
/// rewrite some slots.
pub fn block(block: u64) -> StateUpdates {
    let mut updates = StateUpdates::default();
    for i in 0..ACCOUNTS {
        let touched = block == 1 || (i + block).is_multiple_of(3);
        if !touched {
            continue;
        }
        if block > 1 && i % 37 == block {
            updates.accounts.insert(address(i), AccountUpdate::Delete);
            continue;
        }
        let contract = i.is_multiple_of(5);
        let code_hash = if contract { keccak256(code(i)) } else { KECCAK_EMPTY };
        if contract && block == 1 {
            updates.codes.push(code(i));
        }
        let mut storage = BTreeMap::new();
        if contract {
            for s in 0..(i % 23 + block) {
                let value = if (s + block).is_multiple_of(7) {
                    U256::ZERO
                } else {
                    U256::from(i * 1000 + s * block + 1)
                };
                storage.insert(B256::from(U256::from(s)), value);
            }
        }
        let info = AccountInfo {
            nonce: block * i,
            balance: U256::from(i + 1) * U256::from(10u64).pow(U256::from(15 + i % 10)),
            code_hash,
        };
        let wipe_storage = contract && block == 3 && i.is_multiple_of(10);
        updates.accounts.insert(address(i), AccountUpdate::Set { info, wipe_storage, storage });
    }
    updates
}
