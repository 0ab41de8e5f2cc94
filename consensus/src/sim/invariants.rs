//! Invariant checkers, written apart from the protocol code.
//!
//! They see only what an outside observer could: the blocks each honest
//! validator committed (in order), every proposal and vote as it went on
//! the wire, and each honest validator's journal. They recompute the leader
//! schedule from its definition (smooth weighted round robin) with their
//! own code, and hash payloads themselves. Nothing here calls into
//! `crate::core`.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::journal::{JournalRecord, VoteKind};
use crate::types::{BlockId, FinalizedBlock, Height, Round, ValidatorIndex};

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two honest validators committed different blocks at one height.
    Agreement { height: Height, first: (usize, BlockId), second: (usize, BlockId) },
    /// A committed block that its round's leader did not propose, or whose
    /// payload or parent link does not hold.
    Validity { instance: usize, height: Height, reason: &'static str },
    /// After the network healed, commits did not resume in time.
    Liveness {
        healed_at_ms: u64,
        committed_at_heal: Height,
        committed_at_end: Height,
        lagging: Vec<usize>,
    },
    /// An honest validator signed two different block votes in one round.
    DoubleVote { validator: ValidatorIndex, round: Round, first: BlockId, second: BlockId },
}

/// Leader of `round` by the schedule's definition: each step every
/// validator gains its weight, the one with the most leads and loses the
/// total; ties go to the lowest index. Period = total weight.
pub fn spec_leader(weights: &[u64], round: Round) -> ValidatorIndex {
    let total: u64 = weights.iter().sum();
    let steps = round % total + 1;
    let mut credit: Vec<i128> = vec![0; weights.len()];
    let mut leader = 0;
    for _ in 0..steps {
        for (index, weight) in weights.iter().enumerate() {
            credit[index] += *weight as i128;
        }
        let max = *credit.iter().max().unwrap_or(&0);
        leader = credit.iter().position(|credit| *credit == max).unwrap_or(0);
        credit[leader] -= total as i128;
    }
    leader as ValidatorIndex
}

/// What the checker accumulates during a run.
#[derive(Default)]
pub struct Observations {
    /// Committed blocks per honest instance, in commit order.
    pub commits: BTreeMap<usize, Vec<FinalizedBlock>>,
    /// Block ids proposed on the wire, with the validator whose instance sent them.
    pub proposals: BTreeMap<BlockId, ValidatorIndex>,
    /// Block votes honest instances put on the wire: (signer, round) -> block.
    pub wire_votes: BTreeMap<(ValidatorIndex, Round), Vec<BlockId>>,
}

fn block_id_of(block: &FinalizedBlock) -> BlockId {
    block.header.id()
}

impl Observations {
    pub fn commit(&mut self, instance: usize, block: FinalizedBlock) {
        self.commits.entry(instance).or_default().push(block);
    }

    pub fn vote(&mut self, signer: ValidatorIndex, round: Round, block: BlockId) {
        let votes = self.wire_votes.entry((signer, round)).or_default();
        if !votes.contains(&block) {
            votes.push(block);
        }
    }

    /// Agreement and validity over everything committed.
    pub fn check_safety(&self, weights: &[u64], violations: &mut Vec<Violation>) {
        let mut by_height: BTreeMap<Height, (usize, BlockId)> = BTreeMap::new();
        for (instance, blocks) in &self.commits {
            let mut previous: Option<&FinalizedBlock> = None;
            for block in blocks {
                let id = block_id_of(block);
                match by_height.get(&block.header.height) {
                    Some((other, other_id)) if *other_id != id => {
                        violations.push(Violation::Agreement {
                            height: block.header.height,
                            first: (*other, *other_id),
                            second: (*instance, id),
                        })
                    }
                    Some(_) => {}
                    None => {
                        by_height.insert(block.header.height, (*instance, id));
                    }
                }
                let mut bad = |reason| {
                    violations.push(Violation::Validity {
                        instance: *instance,
                        height: block.header.height,
                        reason,
                    })
                };
                if spec_leader(weights, block.header.round) != block.header.author {
                    bad("author is not the round's leader");
                }
                if self.proposals.get(&id) != Some(&block.header.author) {
                    bad("never proposed on the wire by its author");
                }
                let payload_hash: [u8; 32] = Sha256::digest(&block.payload).into();
                if payload_hash != block.header.payload_hash {
                    bad("payload does not match its hash");
                }
                if let Some(previous) = previous
                    && (previous.header.height + 1 != block.header.height
                        || block_id_of(previous) != block.header.parent)
                {
                    bad("not linked to the previous commit");
                }
                previous = Some(block);
            }
        }
    }

    /// No honest validator voted for two blocks in one round, on the wire
    /// or in its journal (which outlives crashes).
    pub fn check_double_votes(
        &self,
        honest: &[ValidatorIndex],
        journals: &[(ValidatorIndex, &[JournalRecord])],
        violations: &mut Vec<Violation>,
    ) {
        let mut seen: BTreeMap<(ValidatorIndex, Round), BlockId> = BTreeMap::new();
        let wire = self.wire_votes.iter().flat_map(|((signer, round), blocks)| {
            blocks.iter().map(move |block| (*signer, *round, *block))
        });
        let journaled = journals.iter().flat_map(|(validator, records)| {
            records.iter().filter_map(move |record| match record.kind {
                VoteKind::Block(block) => Some((*validator, record.round, block)),
                VoteKind::Timeout => None,
            })
        });
        for (validator, round, block) in wire.chain(journaled) {
            if !honest.contains(&validator) {
                continue;
            }
            match seen.get(&(validator, round)) {
                Some(first) if *first != block => violations.push(Violation::DoubleVote {
                    validator,
                    round,
                    first: *first,
                    second: block,
                }),
                Some(_) => {}
                None => {
                    seen.insert((validator, round), block);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_leader_follows_the_definition() {
        // weights 2,1: credits (2,1)->lead 0 (-1,1) -> (1,2) lead 1 -> (1,-1)+(2,1)=(3,0) lead 0.
        assert_eq!((0..3).map(|r| spec_leader(&[2, 1], r)).collect::<Vec<_>>(), vec![0, 1, 0]);
        assert_eq!(
            (0..4).map(|r| spec_leader(&[1, 1, 1, 1], r)).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
    }
}
