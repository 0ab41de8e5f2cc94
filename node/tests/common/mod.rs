//! Keys and a devnet genesis shared by the node's in-process tests.

use alloy_primitives::{Address, keccak256};
use secp256k1::{SECP256K1, SecretKey};
use serde_json::json;
use wake_execution::Genesis;

pub const CHAIN_ID: u64 = 1_337;
pub const GWEI: u128 = 1_000_000_000;
pub const ETHER: u128 = 1_000_000_000_000_000_000;

/// A test account's secret key and address.
pub struct Key {
    pub secret: SecretKey,
    pub address: Address,
}

/// The key whose 32 secret bytes are all `byte`.
pub fn key(byte: u8) -> Key {
    let secret = SecretKey::from_byte_array([byte; 32]).unwrap();
    let public = secret.public_key(SECP256K1).serialize_uncompressed();
    Key { secret, address: Address::from_slice(&keccak256(&public[1..])[12..]) }
}

/// A devnet genesis with every fork through Cancun active from block 0,
/// a 30M gas limit, a 1 gwei base fee, and `alloc` (address, wei).
pub fn devnet_genesis(alloc: &[(Address, u128)]) -> Genesis {
    let alloc: serde_json::Map<String, serde_json::Value> = alloc
        .iter()
        .map(|(address, wei)| (address.to_string(), json!({ "balance": format!("{wei:#x}") })))
        .collect();
    let json = json!({
        "config": {
            "chainId": CHAIN_ID, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
            "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0,
            "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
            "terminalTotalDifficulty": 0, "shanghaiTime": 0, "cancunTime": 0
        },
        "gasLimit": "0x1c9c380",
        "timestamp": "0x6000",
        "baseFeePerGas": "0x3b9aca00",
        "alloc": alloc,
    });
    Genesis::from_json(&json.to_string()).unwrap()
}
