//! The wire codec never panics on any input, and what it encodes decodes
//! to the same value.

use proptest::prelude::*;
use wake_consensus::codec::{Encode, MESSAGE_BYTES_MAX, decode_message};
use wake_consensus::crypto::ed25519_key_from_seed;
use wake_consensus::sim::{Scenario, SimConfig};
use wake_consensus::{
    BlockHeader, BlockId, DelayedResult, Ed25519, ExecutionResult, Message, Proposal, QuorumCert,
    Scheme, Tip, Vote, proposal_message, sha256, vote_message,
};

fn sample_messages() -> Vec<Message<Ed25519>> {
    let key = ed25519_key_from_seed([3; 32]);
    let header = BlockHeader {
        epoch: 1,
        round: 5,
        author: 2,
        height: 4,
        parent: BlockId([7; 32]),
        payload_hash: sha256(&[b"p"]),
        delayed: Some(DelayedResult {
            height: 1,
            result: ExecutionResult {
                state_root: [1; 32],
                receipts_root: [2; 32],
                logs_bloom: [3; 256],
                gas_used: 21_000,
            },
        }),
    };
    let proposal = Proposal {
        signature: Ed25519::sign(&key, &proposal_message(&header.id())),
        header,
        payload: b"p".to_vec(),
        justify: QuorumCert::genesis(1),
        tc: None,
        reproposes: Some((3, 1)),
    };
    let vote = Vote {
        epoch: 1,
        round: 5,
        block: BlockId([9; 32]),
        signer: 1,
        signature: Ed25519::sign(&key, &vote_message(1, 5, &BlockId([9; 32]))),
    };
    let _ = Tip { round: 1, id: BlockId([0; 32]), justify_round: 0 };
    vec![
        Message::Proposal(Box::new(proposal)),
        Message::Vote(vote),
        Message::BlockRequest { id: BlockId([4; 32]), height: Some(3) },
    ]
}

#[test]
fn messages_round_trip() {
    for message in sample_messages() {
        assert_eq!(decode_message::<Ed25519>(&message.to_bytes()).unwrap(), message);
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let bytes = vec![2u8; MESSAGE_BYTES_MAX + 1];
    assert!(decode_message::<Ed25519>(&bytes).is_err());
}

#[test]
fn sim_config_names_round_trip() {
    for scenario in Scenario::ALL {
        assert_eq!(Scenario::from_name(scenario.name()), Some(*scenario));
    }
    let _ = SimConfig::new(0, 4, 1, Scenario::Happy);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_message::<Ed25519>(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut bytes = sample_messages()[which].to_bytes();
        for (position, value) in flips {
            let len = bytes.len();
            bytes[position % len] = value;
        }
        let _ = decode_message::<Ed25519>(&bytes);
        let keep = cut % (bytes.len() + 1);
        let _ = decode_message::<Ed25519>(&bytes[..keep]);
    }
}
