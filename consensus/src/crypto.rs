//! Signature schemes behind one trait, so that certificates stay abstract.
//!
//! A quorum certificate is a [`SignerSet`] plus a [`Scheme::Aggregate`] over
//! one message. For ed25519 ([`Ed25519`]) the aggregate is the list of the
//! signers' signatures, checked with one batch verification; a BLS scheme
//! would make it a single aggregated signature and nothing else changes.

use std::fmt::Debug;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::codec::{DecodeError, Reader};
use crate::types::ValidatorIndex;

/// The most validators a set may hold (bounds bitmaps and certificates).
pub const VALIDATORS_MAX: usize = 1024;

/// A signature scheme with aggregation over one message.
pub trait Scheme: Sized + Clone + Debug + 'static {
    type PublicKey: Clone + Debug + PartialEq + Eq;
    type PrivateKey;
    type Signature: Clone + Debug + PartialEq + Eq;
    type Aggregate: Clone + Debug + PartialEq + Eq;

    fn public_key(key: &Self::PrivateKey) -> Self::PublicKey;
    fn sign(key: &Self::PrivateKey, message: &[u8]) -> Self::Signature;
    /// True when every `(key, message, signature)` holds.
    fn verify_batch(items: &[(&Self::PublicKey, &[u8], &Self::Signature)]) -> bool;
    /// Combine signatures over one message, in signer-index order.
    fn aggregate(signatures: &[Self::Signature]) -> Self::Aggregate;
    /// True when `aggregate` is exactly one valid signature per key over `message`.
    fn verify_aggregate(
        keys: &[&Self::PublicKey],
        message: &[u8],
        aggregate: &Self::Aggregate,
    ) -> bool;

    fn encode_signature(signature: &Self::Signature, out: &mut Vec<u8>);
    fn decode_signature(reader: &mut Reader<'_>) -> Result<Self::Signature, DecodeError>;
    fn encode_aggregate(aggregate: &Self::Aggregate, out: &mut Vec<u8>);
    /// Decode the aggregate of `signers` signers (a bound the caller checked).
    fn decode_aggregate(
        reader: &mut Reader<'_>,
        signers: usize,
    ) -> Result<Self::Aggregate, DecodeError>;
}

/// ed25519 (RFC 8032) through ed25519-dalek, with batch verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ed25519;

impl Scheme for Ed25519 {
    type PublicKey = VerifyingKey;
    type PrivateKey = SigningKey;
    type Signature = ed25519_dalek::Signature;
    type Aggregate = Vec<ed25519_dalek::Signature>;

    fn public_key(key: &SigningKey) -> VerifyingKey {
        key.verifying_key()
    }

    fn sign(key: &SigningKey, message: &[u8]) -> Self::Signature {
        key.sign(message)
    }

    fn verify_batch(items: &[(&VerifyingKey, &[u8], &Self::Signature)]) -> bool {
        match items {
            [] => true,
            [(key, message, signature)] => key.verify_strict(message, signature).is_ok(),
            _ => {
                let messages: Vec<&[u8]> = items.iter().map(|item| item.1).collect();
                let signatures: Vec<_> = items.iter().map(|item| *item.2).collect();
                let keys: Vec<_> = items.iter().map(|item| *item.0).collect();
                ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
            }
        }
    }

    fn aggregate(signatures: &[Self::Signature]) -> Self::Aggregate {
        signatures.to_vec()
    }

    fn verify_aggregate(
        keys: &[&VerifyingKey],
        message: &[u8],
        aggregate: &Self::Aggregate,
    ) -> bool {
        if keys.len() != aggregate.len() {
            return false;
        }
        let items: Vec<_> =
            keys.iter().zip(aggregate).map(|(key, signature)| (*key, message, signature)).collect();
        Self::verify_batch(&items)
    }

    fn encode_signature(signature: &Self::Signature, out: &mut Vec<u8>) {
        out.extend_from_slice(&signature.to_bytes());
    }

    fn decode_signature(reader: &mut Reader<'_>) -> Result<Self::Signature, DecodeError> {
        let bytes: [u8; 64] = reader.array()?;
        Ok(ed25519_dalek::Signature::from_bytes(&bytes))
    }

    fn encode_aggregate(aggregate: &Self::Aggregate, out: &mut Vec<u8>) {
        for signature in aggregate {
            Self::encode_signature(signature, out);
        }
    }

    fn decode_aggregate(
        reader: &mut Reader<'_>,
        signers: usize,
    ) -> Result<Self::Aggregate, DecodeError> {
        if signers > VALIDATORS_MAX {
            return Err(DecodeError::TooLong {
                what: "aggregate",
                len: signers,
                max: VALIDATORS_MAX,
            });
        }
        (0..signers).map(|_| Self::decode_signature(reader)).collect()
    }
}

/// Derive an ed25519 key from a 32-byte seed (tests and the simulator).
pub fn ed25519_key_from_seed(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

/// A set of validator indices, as a bitmap of `len` bits.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct SignerSet {
    len: u16,
    bits: Vec<u8>,
}

impl SignerSet {
    /// An empty set over `len` validators (`len <= VALIDATORS_MAX`).
    pub fn with_len(len: usize) -> Self {
        let len = len.min(VALIDATORS_MAX);
        Self { len: len as u16, bits: vec![0; len.div_ceil(8)] }
    }

    /// Rebuild from decoded parts; the caller checked `bits.len()`.
    pub(crate) fn from_parts(len: u16, bits: Vec<u8>) -> Self {
        Self { len, bits }
    }

    pub fn len_bits(&self) -> usize {
        self.len as usize
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bits
    }

    /// Add `index`; false when it is out of range.
    pub fn insert(&mut self, index: ValidatorIndex) -> bool {
        if index >= self.len {
            return false;
        }
        self.bits[index as usize / 8] |= 1 << (index % 8);
        true
    }

    pub fn contains(&self, index: ValidatorIndex) -> bool {
        index < self.len && self.bits[index as usize / 8] & (1 << (index % 8)) != 0
    }

    pub fn count(&self) -> usize {
        self.bits.iter().map(|byte| byte.count_ones() as usize).sum()
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = ValidatorIndex> + '_ {
        (0..self.len).filter(|index| self.contains(*index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_rejects_one_bad_signature() {
        let keys: Vec<_> = (0..4u8).map(|i| ed25519_key_from_seed([i; 32])).collect();
        let publics: Vec<_> = keys.iter().map(Ed25519::public_key).collect();
        let signatures: Vec<_> = keys.iter().map(|key| Ed25519::sign(key, b"m")).collect();
        let refs: Vec<_> = publics.iter().collect();
        assert!(Ed25519::verify_aggregate(&refs, b"m", &Ed25519::aggregate(&signatures)));
        let mut bad = signatures.clone();
        bad[2] = Ed25519::sign(&keys[2], b"other");
        assert!(!Ed25519::verify_aggregate(&refs, b"m", &Ed25519::aggregate(&bad)));
        assert!(!Ed25519::verify_aggregate(&refs[..3], b"m", &Ed25519::aggregate(&signatures)));
    }

    #[test]
    fn signer_set_bounds() {
        let mut set = SignerSet::with_len(10);
        assert!(set.insert(9));
        assert!(!set.insert(10));
        assert!(set.contains(9) && !set.contains(3) && !set.contains(200));
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![9]);
    }
}
