//! The validator set: keys, stakes, quorum thresholds and the leader schedule.
//!
//! The schedule is stake-weighted round robin: one period holds each
//! validator as many times as its (scaled) stake, interleaved by the smooth
//! weighted round-robin rule (every step each validator gains its weight, the
//! richest one leads and pays the total back; ties go to the lowest index).
//! Round `r` is led by `schedule[r mod period]`. It is computed once.

use thiserror::Error;

use crate::crypto::{Scheme, VALIDATORS_MAX};
use crate::types::{Round, ValidatorIndex};

/// The longest schedule period; larger stakes are scaled down to fit.
pub const SCHEDULE_PERIOD_MAX: u64 = 4096;

/// Why a validator set was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ValidatorSetError {
    #[error("a validator set needs at least one validator")]
    Empty,
    #[error("{0} validators is over the cap of {VALIDATORS_MAX}")]
    TooMany(usize),
    #[error("validator {0} has zero stake")]
    ZeroStake(usize),
    #[error("total stake overflows")]
    StakeOverflow,
}

/// One validator.
#[derive(Clone, Debug)]
pub struct Validator<S: Scheme> {
    pub public_key: S::PublicKey,
    pub stake: u64,
}

/// The validators of one epoch.
#[derive(Clone, Debug)]
pub struct ValidatorSet<S: Scheme> {
    validators: Vec<Validator<S>>,
    stake_total: u64,
    schedule: Vec<ValidatorIndex>,
}

impl<S: Scheme> ValidatorSet<S> {
    pub fn new(validators: Vec<Validator<S>>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if validators.len() > VALIDATORS_MAX {
            return Err(ValidatorSetError::TooMany(validators.len()));
        }
        let mut stake_total = 0u64;
        for (index, validator) in validators.iter().enumerate() {
            if validator.stake == 0 {
                return Err(ValidatorSetError::ZeroStake(index));
            }
            stake_total =
                stake_total.checked_add(validator.stake).ok_or(ValidatorSetError::StakeOverflow)?;
        }
        let schedule =
            build_schedule(&validators.iter().map(|v| v.stake).collect::<Vec<_>>(), stake_total);
        Ok(Self { validators, stake_total, schedule })
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn get(&self, index: ValidatorIndex) -> Option<&Validator<S>> {
        self.validators.get(index as usize)
    }

    pub fn public_key(&self, index: ValidatorIndex) -> Option<&S::PublicKey> {
        self.get(index).map(|v| &v.public_key)
    }

    pub fn stake(&self, index: ValidatorIndex) -> u64 {
        self.get(index).map_or(0, |v| v.stake)
    }

    pub fn stake_total(&self) -> u64 {
        self.stake_total
    }

    /// True when `stake` is more than 2/3 of the total (a quorum).
    pub fn is_quorum(&self, stake: u64) -> bool {
        stake as u128 * 3 > self.stake_total as u128 * 2
    }

    /// True when `stake` is more than 1/3 of the total (so at least one
    /// honest validator is in it, if at most 1/3 is faulty).
    pub fn is_validity(&self, stake: u64) -> bool {
        stake as u128 * 3 > self.stake_total as u128
    }

    /// The leader of `round`.
    pub fn leader(&self, round: Round) -> ValidatorIndex {
        self.schedule[(round % self.schedule.len() as u64) as usize]
    }
}

fn build_schedule(stakes: &[u64], stake_total: u64) -> Vec<ValidatorIndex> {
    // Scale so that the period fits; every validator keeps at least weight 1.
    let weights: Vec<u64> = if stake_total <= SCHEDULE_PERIOD_MAX {
        stakes.to_vec()
    } else {
        stakes
            .iter()
            .map(|stake| {
                ((*stake as u128 * SCHEDULE_PERIOD_MAX as u128 / stake_total as u128) as u64).max(1)
            })
            .collect()
    };
    let period: u64 = weights.iter().sum();
    let mut current = vec![0i128; weights.len()];
    let mut schedule = Vec::with_capacity(period as usize);
    for _ in 0..period {
        let mut best = 0;
        for (index, weight) in weights.iter().enumerate() {
            current[index] += *weight as i128;
            if current[index] > current[best] {
                best = index;
            }
        }
        current[best] -= period as i128;
        schedule.push(best as ValidatorIndex);
    }
    schedule
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Ed25519, ed25519_key_from_seed};

    fn set(stakes: &[u64]) -> ValidatorSet<Ed25519> {
        ValidatorSet::new(
            stakes
                .iter()
                .enumerate()
                .map(|(i, stake)| Validator {
                    public_key: Ed25519::public_key(&ed25519_key_from_seed([i as u8; 32])),
                    stake: *stake,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn schedule_follows_stake() {
        let validators = set(&[3, 1, 1, 1]);
        let led: Vec<_> = (0..6).map(|r| validators.leader(r)).collect();
        assert_eq!(led.iter().filter(|l| **l == 0).count(), 3);
        // Interleaved, not bunched: validator 0 never leads twice in a row here.
        assert!(led.windows(2).all(|w| !(w[0] == 0 && w[1] == 0)));
    }

    #[test]
    fn quorum_is_strictly_above_two_thirds() {
        let validators = set(&[1, 1, 1, 1]);
        assert!(!validators.is_quorum(2));
        assert!(validators.is_quorum(3));
        assert!(validators.is_validity(2) && !validators.is_validity(1));
    }

    #[test]
    fn refuses_bad_sets() {
        assert_eq!(ValidatorSet::<Ed25519>::new(vec![]).unwrap_err(), ValidatorSetError::Empty);
        let key = Ed25519::public_key(&ed25519_key_from_seed([0; 32]));
        let zero = vec![Validator::<Ed25519> { public_key: key, stake: 0 }];
        assert_eq!(ValidatorSet::new(zero).unwrap_err(), ValidatorSetError::ZeroStake(0));
    }
}
