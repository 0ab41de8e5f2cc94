//! The core driven by hand: the journal ticket gates the vote, a restart
//! from the journal never votes again in the same round, and bad input is
//! counted instead of acted on.

use wake_consensus::codec::Encode;
use wake_consensus::crypto::ed25519_key_from_seed;
use wake_consensus::{
    Action, BlockHeader, Config, Core, DropReason, Ed25519, Event, ExecutionOracle,
    ExecutionResult, Height, Message, PayloadSource, PendingBlock, Proposal, QuorumCert, Restore,
    Round, Scheme, Validator, ValidatorSet, VoteKind, proposal_message, sha256,
};

struct NoExecution;
impl ExecutionOracle for NoExecution {
    fn result(&self, _: Height) -> Option<ExecutionResult> {
        None
    }
}

struct EmptyPayloads;
impl PayloadSource for EmptyPayloads {
    fn payload(&mut self, _: Round, _: Height, _: usize, _: &[PendingBlock<'_>]) -> Vec<u8> {
        Vec::new()
    }
}

fn keys() -> Vec<ed25519_dalek::SigningKey> {
    (0..4u8).map(|i| ed25519_key_from_seed([i + 1; 32])).collect()
}

fn set() -> ValidatorSet<Ed25519> {
    ValidatorSet::new(
        keys()
            .iter()
            .map(|key| Validator { public_key: Ed25519::public_key(key), stake: 1 })
            .collect(),
    )
    .unwrap()
}

fn config() -> Config {
    Config { epoch: 9, ..Config::default() }
}

/// Round 1's proposal (leader 1) on genesis, with `payload`.
fn proposal(payload: &[u8]) -> Vec<u8> {
    let header = BlockHeader {
        epoch: 9,
        round: 1,
        author: 1,
        height: 1,
        parent: BlockHeader::genesis(9).id(),
        payload_hash: sha256(&[payload]),
        delayed: None,
    };
    let signature = Ed25519::sign(&keys()[1], &proposal_message(&header.id()));
    let proposal = Proposal::<Ed25519> {
        header,
        payload: payload.to_vec(),
        justify: QuorumCert::genesis(9),
        tc: None,
        reproposes: None,
        signature,
    };
    Message::Proposal(Box::new(proposal)).to_bytes()
}

fn feed(core: &mut Core<Ed25519>, event: Event) -> Vec<Action<Ed25519>> {
    core.handle(event, &NoExecution, &mut EmptyPayloads)
}

#[test]
fn vote_leaves_only_after_the_journal_ticket_returns() {
    let mut core = Core::new(config(), set(), 0, keys()[0].clone(), Restore::default());
    feed(&mut core, Event::Start);
    let actions = feed(&mut core, Event::Received { from: 1, bytes: proposal(b"txs") });
    assert!(!actions.iter().any(|a| matches!(a, Action::Send { message: Message::Vote(_), .. })));
    let ticket = actions
        .into_iter()
        .find_map(|a| match a {
            Action::PersistVote(ticket) => Some(ticket),
            _ => None,
        })
        .expect("a vote to persist");
    assert_eq!(ticket.record().round, 1);
    assert!(matches!(ticket.record().kind, VoteKind::Block(_)));
    let actions = feed(&mut core, Event::VotePersisted(ticket));
    assert!(
        actions.iter().any(
            |a| matches!(a, Action::Send { to: 2, message: Message::Vote(v) } if v.round == 1)
        )
    );
}

#[test]
fn restart_from_the_journal_never_votes_twice_in_a_round() {
    let mut core = Core::new(config(), set(), 0, keys()[0].clone(), Restore::default());
    feed(&mut core, Event::Start);
    let actions = feed(&mut core, Event::Received { from: 1, bytes: proposal(b"first") });
    let record = actions
        .iter()
        .find_map(|a| match a {
            Action::PersistVote(ticket) => Some(*ticket.record()),
            _ => None,
        })
        .unwrap();
    // Crash before the vote was sent; restart from the journal.
    let restore = Restore { last_vote: Some(record), ..Restore::default() };
    let mut core = Core::new(config(), set(), 0, keys()[0].clone(), restore);
    feed(&mut core, Event::Start);
    for payload in [&b"first"[..], b"second"] {
        let actions = feed(&mut core, Event::Received { from: 1, bytes: proposal(payload) });
        assert!(!actions.iter().any(|a| matches!(a, Action::PersistVote(_))), "voted again");
    }
}

#[test]
fn bad_input_is_counted_not_acted_on() {
    let mut core = Core::new(config(), set(), 0, keys()[0].clone(), Restore::default());
    feed(&mut core, Event::Start);
    let mut tampered = proposal(b"txs");
    let last = tampered.len() - 1;
    tampered[last] ^= 1; // signature
    let inputs: Vec<(u16, Vec<u8>)> = vec![
        (1, vec![]),
        (1, vec![0xff; 100]),
        (1, tampered),
        (7, proposal(b"txs")),
        (1, vec![1; wake_consensus::codec::MESSAGE_BYTES_MAX + 1]),
    ];
    for (from, bytes) in inputs {
        let actions = feed(&mut core, Event::Received { from, bytes });
        assert!(actions.is_empty());
    }
    let drops = core.drops();
    assert_eq!(drops.get(DropReason::Malformed), 2);
    assert_eq!(drops.get(DropReason::InvalidSignature), 1);
    assert_eq!(drops.get(DropReason::UnknownSender), 1);
    assert_eq!(drops.get(DropReason::Oversized), 1);
    // A good proposal still gets a vote, once; a replay is a duplicate.
    assert!(
        feed(&mut core, Event::Received { from: 1, bytes: proposal(b"txs") })
            .iter()
            .any(|a| matches!(a, Action::PersistVote(_)))
    );
    feed(&mut core, Event::Received { from: 1, bytes: proposal(b"txs") });
    assert_eq!(core.drops().get(DropReason::Duplicate), 1);
    // The same leader with another block in the same round: evidence.
    feed(&mut core, Event::Received { from: 1, bytes: proposal(b"other") });
    assert_eq!(core.evidence().len(), 1);
}

#[test]
fn wrong_epoch_is_dropped() {
    let mut core = Core::new(
        Config { epoch: 10, ..config() },
        set(),
        0,
        keys()[0].clone(),
        Restore::default(),
    );
    feed(&mut core, Event::Start);
    feed(&mut core, Event::Received { from: 1, bytes: proposal(b"txs") });
    assert_eq!(core.drops().get(DropReason::WrongEpoch), 1);
}

/// Every committed block executed, with the same result.
struct AllExecuted;
impl ExecutionOracle for AllExecuted {
    fn result(&self, _: Height) -> Option<ExecutionResult> {
        Some(ExecutionResult {
            state_root: [1; 32],
            receipts_root: [2; 32],
            logs_bloom: [0; 256],
            gas_used: 21_000,
        })
    }
}

/// Drives a one-validator core: votes persisted at once, messages to
/// itself delivered, timers fired when nothing else is left. Returns the
/// committed blocks, stopping at `commits` of them or after `steps`.
fn drive_alone(
    core: &mut Core<Ed25519>,
    commits: usize,
    steps: usize,
    last_vote: &mut Option<wake_consensus::JournalRecord>,
) -> Vec<wake_consensus::FinalizedBlock> {
    drive_alone_with(core, commits, steps, last_vote, &mut EmptyPayloads, &mut |_| {})
}

fn drive_alone_with(
    core: &mut Core<Ed25519>,
    commits: usize,
    steps: usize,
    last_vote: &mut Option<wake_consensus::JournalRecord>,
    payloads: &mut impl PayloadSource,
    on_commit: &mut dyn FnMut(Height),
) -> Vec<wake_consensus::FinalizedBlock> {
    let mut queue = std::collections::VecDeque::from([Event::Start]);
    let mut timers: Vec<Round> = Vec::new();
    let mut committed = Vec::new();
    for _ in 0..steps {
        let event = match queue.pop_front() {
            Some(event) => event,
            None => match timers.pop() {
                Some(round) => Event::Timeout { round },
                None => Event::Tick,
            },
        };
        for action in core.handle(event, &AllExecuted, payloads) {
            match action {
                Action::PersistVote(ticket) => {
                    *last_vote = Some(*ticket.record());
                    queue.push_back(Event::VotePersisted(ticket));
                }
                Action::Send { to: 0, message } => {
                    queue.push_back(Event::Received { from: 0, bytes: message.to_bytes() })
                }
                Action::ArmTimer { round, .. } => timers = vec![round],
                Action::Commit(block) => {
                    on_commit(block.header.height);
                    committed.push(*block)
                }
                _ => {}
            }
        }
        if committed.len() >= commits {
            break;
        }
    }
    committed
}

fn alone() -> ValidatorSet<Ed25519> {
    let key = &keys()[0];
    ValidatorSet::new(vec![Validator { public_key: Ed25519::public_key(key), stake: 1 }]).unwrap()
}

/// A validator set of one stops and restarts from its ledger tip and the
/// root QC it kept: with no peer to show it a QC, it still proposes on its
/// tip and commits again. Without the root QC it cannot.
#[test]
fn a_lone_validator_restarted_with_its_root_qc_commits_again() {
    let mut core = Core::new(config(), alone(), 0, keys()[0].clone(), Restore::default());
    let mut last_vote = None;
    let blocks = drive_alone(&mut core, 5, 1_000, &mut last_vote);
    assert_eq!(blocks.len(), 5, "commits before the restart");
    let tip = core.committed_height();
    // The journal's last vote is in a round above the tip's.
    let restore = |root_qc| Restore {
        last_vote,
        ledger_tip: blocks.iter().find(|b| b.header.height == tip).cloned(),
        ledger_ancestors: blocks.iter().filter(|b| b.header.height < tip).cloned().collect(),
        root_qc,
    };
    let root_qc = core.root_certificate().expect("the committed block's QC");

    let mut restarted = Core::new(config(), alone(), 0, keys()[0].clone(), restore(Some(root_qc)));
    let after = drive_alone(&mut restarted, 3, 1_000, &mut None);
    assert_eq!(after.len(), 3, "commits after the restart");
    assert_eq!(after[0].header.height, tip + 1);

    let mut without = Core::new(config(), alone(), 0, keys()[0].clone(), restore(None));
    assert!(drive_alone(&mut without, 1, 1_000, &mut None).is_empty());
}

/// What a leader was shown, and what was committed, in order.
#[derive(Debug)]
enum Seen {
    /// A proposal's height and its pending ancestors (height, payload),
    /// parent first.
    Proposed(Height, Vec<(Height, Vec<u8>)>),
    Committed(Height),
}

/// Records what the core tells a leader about pending ancestors.
struct RecordingPayloads(std::rc::Rc<std::cell::RefCell<Vec<Seen>>>);

impl PayloadSource for RecordingPayloads {
    fn payload(
        &mut self,
        _: Round,
        height: Height,
        _: usize,
        pending: &[PendingBlock<'_>],
    ) -> Vec<u8> {
        let ancestors = pending.iter().map(|b| (b.height, b.payload.to_vec())).collect();
        self.0.borrow_mut().push(Seen::Proposed(height, ancestors));
        format!("block {height}").into_bytes()
    }
}

/// A leader is shown the uncommitted ancestors of what it proposes: parent
/// first, consecutive heights, each with the payload proposed for it, and
/// none committed before the proposal.
#[test]
fn a_leader_sees_the_pending_ancestors_of_its_proposal() {
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut core = Core::new(config(), alone(), 0, keys()[0].clone(), Restore::default());
    let mut payloads = RecordingPayloads(log.clone());
    let commits = log.clone();
    let mut on_commit = move |height| commits.borrow_mut().push(Seen::Committed(height));
    let blocks = drive_alone_with(&mut core, 8, 1_000, &mut None, &mut payloads, &mut on_commit);
    assert_eq!(blocks.len(), 8);
    let mut committed = Vec::new();
    let mut saw_pending = false;
    for seen in log.borrow().iter() {
        match seen {
            Seen::Committed(height) => committed.push(*height),
            Seen::Proposed(height, pending) => {
                let heights: Vec<Height> = pending.iter().map(|(h, _)| *h).collect();
                let expected: Vec<Height> =
                    (1..=heights.len() as u64).map(|back| height - back).collect();
                assert_eq!(heights, expected, "proposal at {height}");
                for (h, payload) in pending {
                    assert_eq!(payload, &format!("block {h}").into_bytes());
                    assert!(!committed.contains(h), "block {h} was committed already");
                }
                saw_pending |= !pending.is_empty();
            }
        }
    }
    assert!(saw_pending, "a chained protocol proposes on uncommitted blocks");
}
