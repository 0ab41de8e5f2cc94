//! Signing keys shared by the execution integration tests.

use alloy_consensus::{SignableTransaction, Signed};
use alloy_primitives::{Address, Signature, keccak256};
use secp256k1::{Message, SECP256K1, SecretKey};

/// A test account's secret key and address.
pub struct Key {
    pub secret: SecretKey,
    pub address: Address,
}

/// The key whose 32 secret bytes are all `seed`.
pub fn key(seed: u8) -> Key {
    let secret = SecretKey::from_byte_array([seed; 32]).expect("valid key");
    let public = secret.public_key(SECP256K1).serialize_uncompressed();
    let address = Address::from_slice(&keccak256(&public[1..])[12..]);
    Key { secret, address }
}

/// Signs `tx` with `key` (libsecp256k1, recoverable).
pub fn sign<T: SignableTransaction<Signature>>(tx: T, key: &Key) -> Signed<T> {
    let hash = tx.signature_hash();
    let (recid, bytes) = SECP256K1
        .sign_ecdsa_recoverable(Message::from_digest(hash.0), &key.secret)
        .serialize_compact();
    let signature = Signature::from_bytes_and_parity(&bytes, i32::from(recid) != 0);
    tx.into_signed(signature)
}
