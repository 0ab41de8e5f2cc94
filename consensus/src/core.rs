//! The consensus state machine: `(state, event) -> actions`, nothing else.
//!
//! # Protocol
//!
//! Rounds, one leader each ([`crate::ValidatorSet::leader`]). The leader of
//! round `r` proposes a block whose parent is certified by a QC of round
//! `r-1`, or, after a failed round, by a QC at least as high as every QC
//! reported in the timeout certificate (TC) of round `r-1` (the Jolteon /
//! HotStuff-2 two-chain rule). Validators vote once per round, for the first
//! valid proposal, and send the vote to the leader of `r+1`, which forms a QC
//! from > 2/3 of the stake and proposes on it. A QC for a block is reported
//! as speculative finality ([`Action::Certified`]). A block commits when its
//! child, proposed in the very next round, is certified: then it and all its
//! ancestors are final ([`Action::Commit`], in height order).
//!
//! When the round timer fires ([`Event::Timeout`], armed by
//! [`Action::ArmTimer`]), a validator stops voting in that round and
//! broadcasts a timeout carrying its highest QC and its *tip*, the highest
//! block it voted for. > 2/3 of them form a TC. Seeing > 1/3 timeouts for
//! its round makes a validator time out too, so a TC forms as soon as it can.
//!
//! **Tail-forking resistance.** After a TC the leader re-proposes the
//! highest tip in it that is above every reported QC (same parent, payload
//! and delayed result; new round and author; `Proposal::reproposes` names
//! the original), so a block that may have been certified by votes that the
//! failed leader hid is not forked away. If > 1/3 of the stake reported that
//! tip, at least one honest validator holds it and voters *require* the
//! re-proposal; otherwise it is the leader's choice. A TC with no such tip
//! proves that nothing above its highest QC can have been certified, and the
//! leader proposes afresh.
//!
//! **Delayed execution.** A block at height `h` carries the execution
//! result of block `h-K` exactly when `h-K` is committed on the block's own
//! branch (a pair of consecutive-round certified blocks at or above `h-K`
//! lies between it and the parent). That rule depends only on the branch,
//! so leader and voters agree on it, and a chain whose commits lag never
//! deadlocks waiting for a result that cannot exist yet. A voter asks its
//! [`ExecutionOracle`] for its own result; if that is not ready it waits a
//! bounded number of ticks, then lets the round time out. It never votes
//! without the check.
//!
//! **Journal.** A vote or timeout is signed, then handed to the driver as a
//! [`VoteTicket`] in [`Action::PersistVote`]. The message leaves only when
//! the ticket comes back in [`Event::VotePersisted`].
//!
//! **Bad input** is dropped and counted by [`DropReason`]; equivocation
//! (two proposals of one leader in one round, two votes of one validator in
//! one round) is kept as [`Evidence`]. Every collection is bounded by the
//! [`Config`] or by the validator count.

use std::collections::{BTreeMap, BTreeSet};

use crate::codec::{DecodeError, MESSAGE_BYTES_MAX, decode_message};
use crate::crypto::{Scheme, SignerSet};
use crate::follow::CommitProof;
use crate::journal::{JournalRecord, VoteKind, VoteTicket};
use crate::tree::{Node, Tree};
use crate::types::{
    BlockHeader, BlockId, BlockResponse, DelayedResult, Epoch, ExecutionResult, FinalizedBlock,
    Height, Message, Proposal, QuorumCert, Round, Timeout, TimeoutCert, TimeoutEntry, Tip,
    ValidatorIndex, Vote, proposal_message, sha256, timeout_message, vote_message,
};
use crate::validators::ValidatorSet;

/// Tunables. Every bound on memory is here.
#[derive(Clone, Debug)]
pub struct Config {
    pub epoch: Epoch,
    /// K: block `h` carries the execution result of block `h-K`.
    pub execution_delay: u64,
    /// First round timer; doubled after each failed round up to the max.
    pub round_timeout_ms: u64,
    pub round_timeout_max_ms: u64,
    /// Ticks a voter waits for its own execution result before giving up.
    pub execution_wait_ticks_max: u32,
    /// Ticks before a block request goes to the next peer.
    pub fetch_retry_ticks: u32,
    /// Votes and timeouts further ahead than this are dropped.
    pub round_ahead_max: u64,
    pub payload_bytes_max: usize,
    pub tree_blocks_max: usize,
    pub fetches_in_flight_max: usize,
    /// Committed blocks kept in the tree (>= K).
    pub committed_retained: usize,
    pub evidence_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            epoch: 0,
            execution_delay: 3,
            round_timeout_ms: 1000,
            round_timeout_max_ms: 16_000,
            execution_wait_ticks_max: 20,
            fetch_retry_ticks: 4,
            round_ahead_max: 64,
            payload_bytes_max: crate::codec::PAYLOAD_BYTES_MAX,
            tree_blocks_max: 4096,
            fetches_in_flight_max: 64,
            committed_retained: 64,
            evidence_max: 1024,
        }
    }
}

/// The node's own execution results, asked before voting.
pub trait ExecutionOracle {
    /// Our result for the committed block at `height`, or `None` when
    /// execution has not reached it yet.
    fn result(&self, height: Height) -> Option<ExecutionResult>;

    /// The newest height executed, if the oracle tracks execution
    /// progress. Such an oracle's execution works through every committed
    /// block in order, so a result it lacks is on its way: while a round
    /// waits for our own result, its timer is extended instead of firing
    /// and the proposal waits with it (backpressure: a validator whose
    /// execution is behind slows consensus down rather than failing
    /// rounds). `None`: the wait is bounded by
    /// [`Config::execution_wait_ticks_max`] and rounds time out as usual.
    fn executed_height(&self) -> Option<Height> {
        None
    }
}

/// An ancestor of a block being proposed that is above the committed tip:
/// its order is agreed on if the proposal is, but it is not final yet.
/// A leader leaves out what these already hold.
#[derive(Clone, Copy, Debug)]
pub struct PendingBlock<'a> {
    pub id: BlockId,
    pub height: Height,
    pub payload: &'a [u8],
}

/// Where a leader's payload comes from (the mempool in a node).
pub trait PayloadSource {
    /// Ordered transactions for a block at `height`; at most `bytes_max`
    /// bytes. `pending`: the new block's uncommitted ancestors, parent
    /// first (empty when the parent is committed).
    fn payload(
        &mut self,
        round: Round,
        height: Height,
        bytes_max: usize,
        pending: &[PendingBlock<'_>],
    ) -> Vec<u8>;

    /// Milliseconds the leader should still wait before proposing a block
    /// at `height` on a parent whose payload is `parent_payload`: a minimum
    /// block time, measured from the parent's proposal. 0: propose now.
    /// The core asks again when [`Action::TickAfter`] brings a tick.
    fn wait_ms(&mut self, _height: Height, _parent_payload: &[u8]) -> u64 {
        0
    }
}

/// Inputs from the driver.
#[derive(Debug)]
pub enum Event {
    /// Once, after construction: arms the first timer, proposes if leader.
    Start,
    /// Bytes from a peer the transport authenticated as `from`.
    Received { from: ValidatorIndex, bytes: Vec<u8> },
    /// The timer armed for `round` fired.
    Timeout { round: Round },
    /// Periodic tick: retries fetches, re-checks execution, retries proposing.
    Tick,
    /// The record of this ticket is durable.
    VotePersisted(VoteTicket),
}

/// Outputs for the driver, in order.
#[derive(Debug)]
pub enum Action<S: Scheme> {
    Send {
        to: ValidatorIndex,
        message: Message<S>,
    },
    /// To every other validator.
    Broadcast(Message<S>),
    /// Make the record durable, then return the ticket.
    PersistVote(VoteTicket),
    /// Deliver `Event::Timeout { round }` after `after_ms`.
    ArmTimer {
        round: Round,
        after_ms: u64,
    },
    /// Deliver an `Event::Tick` within `after_ms` (sooner than the
    /// periodic one): the leader is waiting out the minimum block time.
    TickAfter {
        after_ms: u64,
    },
    /// Speculative finality: the block has a QC.
    Certified {
        round: Round,
        height: Height,
        block: BlockId,
    },
    /// The block is final; append it to the ledger.
    Commit(Box<FinalizedBlock>),
    /// After the `Commit`s of one commit step: the certificate that made
    /// the last of them final, for followers that are not validators (see
    /// [`crate::follow`]). Absent when the core no longer holds the QC.
    CommitProof {
        height: Height,
        proof: Box<CommitProof<S>>,
    },
    /// A peer asked for a committed block this core no longer holds: answer
    /// with `Message::BlockResponse` from the ledger if its id matches.
    ServeFromLedger {
        to: ValidatorIndex,
        height: Height,
        id: BlockId,
    },
    Evidence(Evidence<S>),
}

/// Proof that a validator signed two conflicting statements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence<S: Scheme> {
    ConflictingProposals {
        first: Box<(BlockHeader, S::Signature)>,
        second: Box<(BlockHeader, S::Signature)>,
    },
    DoubleVote {
        first: Vote<S>,
        second: Vote<S>,
    },
}

macro_rules! drop_reasons {
    ($($name:ident: $doc:literal,)*) => {
        /// Why an input was dropped. Each has a counter in [`DropCounts`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DropReason { $(#[doc = $doc] $name,)* }

        impl DropReason {
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];

            pub fn name(self) -> &'static str {
                match self { $(DropReason::$name => stringify!($name),)* }
            }
        }
    };
}

drop_reasons! {
    Oversized: "larger than the message cap",
    Malformed: "did not decode",
    UnknownSender: "sender or signer index outside the validator set",
    WrongEpoch: "another epoch",
    RoundTooFarAhead: "a vote or timeout beyond `round_ahead_max`",
    Stale: "for a round already left",
    InvalidSignature: "a signature or certificate that does not verify",
    NotLeader: "a proposal from a validator that does not lead that round",
    NotForMe: "a vote sent to a validator that does not lead the next round",
    Duplicate: "seen before",
    Equivocation: "conflicts with a signed statement of the same signer",
    BadPayload: "payload over the cap or not matching its hash",
    InvalidProposal: "breaks a proposal rule (parent, height, round, TC rule)",
    TailFork: "skips the tip that the TC requires to be re-proposed",
    ConflictsWithCommitted: "does not extend the committed chain",
    ExecutionMismatch: "delayed execution result differs from ours",
    ExecutionNotReady: "our own result did not arrive within the bounded wait",
    TreeFull: "the block tree is at capacity",
    UnrequestedBlock: "a block response nobody asked for",
    UnknownBlock: "a request for a block we do not have",
    FetchQueueFull: "too many block requests in flight",
    PersistQueueFull: "too many votes waiting for the journal",
}

/// Per-reason drop counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    counts: BTreeMap<DropReason, u64>,
}

impl DropCounts {
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts.get(&reason).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        self.counts.iter().map(|(reason, count)| (*reason, *count))
    }

    fn add(&mut self, reason: DropReason) {
        *self.counts.entry(reason).or_default() += 1;
    }
}

/// What a restarting core is given.
#[derive(Clone, Debug, Default)]
pub struct Restore {
    /// The journal's last record (`VoteJournal::last`).
    pub last_vote: Option<JournalRecord>,
    /// The ledger's newest block.
    pub ledger_tip: Option<FinalizedBlock>,
    /// The ledger blocks just below the tip, oldest first, each the parent
    /// of the next and the last the tip's parent: the delayed-result rule
    /// looks `execution_delay` blocks back, and a restarted core with no
    /// peer to fetch them from needs them (`execution_delay` of them is
    /// enough; a chain that does not link is ignored).
    pub ledger_ancestors: Vec<FinalizedBlock>,
    /// [`Core::root_certificate`] as it was for that block, if kept. With
    /// it the restarted core can propose on top of its ledger tip even
    /// when no peer is there to show it a QC (a whole validator set
    /// restarted, or a single validator); a QC that does not verify or
    /// certifies another block is ignored.
    pub root_qc: Option<Vec<u8>>,
}

/// A signed message waiting for its journal record.
#[derive(Debug)]
enum Outgoing<S: Scheme> {
    Vote { to: ValidatorIndex, vote: Vote<S> },
    Timeout(Box<Timeout<S>>),
}

const PERSIST_QUEUE_MAX: usize = 8;

/// A proposal we may vote for once its parent or our result arrives.
struct Deferred<S: Scheme> {
    proposal: Box<Proposal<S>>,
    from: ValidatorIndex,
    waited_ticks: u32,
}

struct Fetch {
    height: Option<Height>,
    peer: ValidatorIndex,
    ticks: u32,
}

#[derive(Default)]
struct VoteSet<S: Scheme> {
    signatures: BTreeMap<ValidatorIndex, S::Signature>,
    stake: u64,
    formed: bool,
}

struct TimeoutSet<S: Scheme> {
    entries: BTreeMap<ValidatorIndex, TimeoutEntry<S>>,
    stake: u64,
    high_qc: QuorumCert<S>,
    formed: bool,
}

/// What the TC of the previous round requires of a proposal.
struct TipRule {
    max_high_qc_round: Round,
    tip: Option<Tip>,
    mandatory: bool,
}

enum Check {
    Vote,
    Wait(Option<(BlockId, Option<Height>)>),
    Reject(DropReason),
    NoVote,
}

struct Committed {
    height: Height,
    round: Round,
    id: BlockId,
}

/// The consensus core of one validator.
pub struct Core<S: Scheme> {
    config: Config,
    validators: ValidatorSet<S>,
    me: ValidatorIndex,
    key: S::PrivateKey,
    round: Round,
    failed_rounds_in_a_row: u32,
    high_qc: QuorumCert<S>,
    last_tc: Option<TimeoutCert<S>>,
    /// Highest round in which we signed a block vote or a timeout.
    voted_round: Round,
    tip: Option<Tip>,
    my_timeout: Option<Box<Timeout<S>>>,
    committed: Committed,
    tree: Tree<S>,
    /// Blocks known to be certified, with the round of their QC.
    certified: BTreeMap<BlockId, Round>,
    /// The QCs behind `certified` that we hold (pruned with it): the
    /// commit proofs handed to followers.
    certificates: BTreeMap<BlockId, QuorumCert<S>>,
    /// QCs whose signatures were checked.
    verified_qcs: BTreeSet<(Round, BlockId)>,
    seen_proposals: BTreeMap<Round, (BlockHeader, S::Signature)>,
    votes: BTreeMap<(Round, BlockId), VoteSet<S>>,
    votes_by_signer: BTreeMap<(Round, ValidatorIndex), Vote<S>>,
    timeouts: BTreeMap<Round, TimeoutSet<S>>,
    deferred: Option<Deferred<S>>,
    /// Round timers extended because our own execution was behind but
    /// advancing.
    timer_extensions: u64,
    propose_round: Option<Round>,
    persist_seq: u64,
    awaiting_persist: Vec<(u64, Outgoing<S>)>,
    fetches: BTreeMap<BlockId, Fetch>,
    drops: DropCounts,
    evidence: Vec<Evidence<S>>,
}

/// Everything a handler needs from outside, plus the actions it emits.
struct Ctx<'a, S: Scheme> {
    execution: &'a dyn ExecutionOracle,
    payloads: &'a mut dyn PayloadSource,
    out: Vec<Action<S>>,
}

impl<S: Scheme> Core<S> {
    /// A core for validator `me`, fresh from genesis or restored from its
    /// journal and ledger.
    pub fn new(
        config: Config,
        validators: ValidatorSet<S>,
        me: ValidatorIndex,
        key: S::PrivateKey,
        restore: Restore,
    ) -> Self {
        let epoch = config.epoch;
        let (root, payload) = match restore.ledger_tip {
            Some(block) if block.header.epoch == epoch => (block.header, block.payload),
            _ => (BlockHeader::genesis(epoch), Vec::new()),
        };
        let committed = Committed { height: root.height, round: root.round, id: root.id() };
        let mut round = root.round + 1;
        let mut voted_round = 0;
        if let Some(record) = restore.last_vote.filter(|record| record.epoch == epoch) {
            voted_round = record.round;
            round = round.max(record.round);
        }
        let mut certified = BTreeMap::new();
        certified.insert(committed.id, root.round);
        let retained = config.committed_retained.max(config.execution_delay as usize + 1);
        let mut tree = Tree::new(root.clone(), payload.clone(), config.tree_blocks_max, retained);
        let links = restore.ledger_ancestors.windows(2).all(|w| {
            w[1].header.parent == w[0].header.id() && w[1].header.height == w[0].header.height + 1
        }) && restore.ledger_ancestors.last().is_none_or(|last| {
            root.parent == last.header.id() && root.height == last.header.height + 1
        });
        if let Some((oldest, rest)) =
            restore.ledger_ancestors.split_first().filter(|_| links && root.height > 0)
        {
            // Rebuild the committed window: the oldest as root, then each
            // block up to the tip committed in order.
            tree = Tree::new(
                oldest.header.clone(),
                oldest.payload.clone(),
                config.tree_blocks_max,
                retained,
            );
            let chain = rest.iter().map(|b| (&b.header, &b.payload)).chain([(&root, &payload)]);
            for (header, block_payload) in chain {
                let node = Node {
                    header: header.clone(),
                    payload: block_payload.clone(),
                    justify: None,
                    reported: true,
                };
                tree.insert(node);
                tree.commit(&[header.id()], header.height);
            }
        }
        let root_qc = restore.root_qc.as_deref().and_then(|bytes| {
            let mut reader = crate::codec::Reader::new(bytes);
            crate::codec::decode_qc::<S>(&mut reader).ok().filter(|_| reader.finish().is_ok())
        });
        let mut core = Self {
            tree,
            high_qc: QuorumCert::genesis(epoch),
            config,
            validators,
            me,
            key,
            round,
            failed_rounds_in_a_row: 0,
            timer_extensions: 0,
            last_tc: None,
            voted_round,
            tip: None,
            my_timeout: None,
            committed,
            certified,
            certificates: BTreeMap::new(),
            verified_qcs: BTreeSet::new(),
            seen_proposals: BTreeMap::new(),
            votes: BTreeMap::new(),
            votes_by_signer: BTreeMap::new(),
            timeouts: BTreeMap::new(),
            deferred: None,
            propose_round: None,
            persist_seq: 0,
            awaiting_persist: Vec::new(),
            fetches: BTreeMap::new(),
            drops: DropCounts::default(),
            evidence: Vec::new(),
        };
        if let Some(qc) = root_qc
            && qc.block == core.committed.id
            && qc.round == core.committed.round
            && core.qc_ok(&qc)
        {
            core.certificates.insert(qc.block, qc.clone());
            core.high_qc = qc;
        }
        core
    }

    /// The QC that certifies the committed block, encoded, for
    /// [`Restore::root_qc`] after a restart. `None` before the first
    /// commit, or once the QC is pruned.
    pub fn root_certificate(&self) -> Option<Vec<u8>> {
        let qc = self.certificates.get(&self.committed.id)?;
        let mut out = Vec::new();
        crate::codec::encode_qc(&mut out, qc);
        Some(out)
    }

    pub fn round(&self) -> Round {
        self.round
    }

    pub fn committed_height(&self) -> Height {
        self.committed.height
    }

    pub fn committed_id(&self) -> BlockId {
        self.committed.id
    }

    pub fn high_qc_round(&self) -> Round {
        self.high_qc.round
    }

    pub fn drops(&self) -> &DropCounts {
        &self.drops
    }

    pub fn evidence(&self) -> &[Evidence<S>] {
        &self.evidence
    }

    pub fn me(&self) -> ValidatorIndex {
        self.me
    }

    /// Blocks held in the tree (bounded by `Config::tree_blocks_max`).
    pub fn tree_len(&self) -> usize {
        self.tree.len()
    }

    /// Feed one event; returns the actions to carry out, in order.
    pub fn handle(
        &mut self,
        event: Event,
        execution: &dyn ExecutionOracle,
        payloads: &mut dyn PayloadSource,
    ) -> Vec<Action<S>> {
        let mut ctx = Ctx { execution, payloads, out: Vec::new() };
        match event {
            Event::Start => {
                self.arm_timer(&mut ctx);
                if self.validators.leader(self.round) == self.me {
                    self.propose_round = Some(self.round);
                    self.try_propose(&mut ctx);
                }
            }
            Event::Received { from, bytes } => self.on_bytes(from, &bytes, &mut ctx),
            Event::Timeout { round } => self.on_local_timeout(round, &mut ctx),
            Event::Tick => self.on_tick(&mut ctx),
            Event::VotePersisted(ticket) => self.on_persisted(ticket, &mut ctx),
        }
        ctx.out
    }

    // ---- inputs -------------------------------------------------------

    fn on_bytes(&mut self, from: ValidatorIndex, bytes: &[u8], ctx: &mut Ctx<'_, S>) {
        if from as usize >= self.validators.len() || from == self.me {
            return self.drops.add(DropReason::UnknownSender);
        }
        if bytes.len() > MESSAGE_BYTES_MAX {
            return self.drops.add(DropReason::Oversized);
        }
        let message = match decode_message::<S>(bytes) {
            Ok(message) => message,
            Err(DecodeError::Oversized { .. }) => return self.drops.add(DropReason::Oversized),
            Err(_) => return self.drops.add(DropReason::Malformed),
        };
        match message {
            Message::Proposal(proposal) => self.on_proposal(from, proposal, ctx),
            Message::Vote(vote) => self.on_vote(vote, ctx),
            Message::Timeout(timeout) => self.on_timeout(from, *timeout, ctx),
            Message::BlockRequest { id, height } => self.on_block_request(from, id, height, ctx),
            Message::BlockResponse(response) => self.on_block_response(from, *response, ctx),
        }
    }

    fn on_proposal(
        &mut self,
        from: ValidatorIndex,
        proposal: Box<Proposal<S>>,
        ctx: &mut Ctx<'_, S>,
    ) {
        let header = &proposal.header;
        let epoch = self.config.epoch;
        if header.epoch != epoch
            || proposal.justify.epoch != epoch
            || proposal.tc.as_ref().is_some_and(|tc| tc.epoch != epoch)
        {
            return self.drops.add(DropReason::WrongEpoch);
        }
        if header.round < self.round {
            return self.drops.add(DropReason::Stale);
        }
        if header.author != self.validators.leader(header.round) {
            return self.drops.add(DropReason::NotLeader);
        }
        if proposal.payload.len() > self.config.payload_bytes_max
            || sha256(&[&proposal.payload]) != header.payload_hash
        {
            return self.drops.add(DropReason::BadPayload);
        }
        let id = header.id();
        let Some(author_key) = self.validators.public_key(header.author) else {
            return self.drops.add(DropReason::UnknownSender);
        };
        let signed = S::verify_batch(&[(author_key, &proposal_message(&id), &proposal.signature)]);
        if let Some((seen, seen_signature)) = self.seen_proposals.get(&header.round) {
            if seen.id() == id {
                return self.drops.add(DropReason::Duplicate);
            }
            if signed {
                let evidence = Evidence::ConflictingProposals {
                    first: Box::new((seen.clone(), seen_signature.clone())),
                    second: Box::new((header.clone(), proposal.signature.clone())),
                };
                self.record_evidence(evidence, ctx);
                return self.drops.add(DropReason::Equivocation);
            }
        }
        if !signed {
            return self.drops.add(DropReason::InvalidSignature);
        }
        let shape_ok = proposal.justify.block == header.parent
            && proposal.justify.round < header.round
            && match &proposal.tc {
                Some(tc) => tc.round + 1 == header.round,
                None => proposal.justify.round + 1 == header.round,
            }
            && (proposal.reproposes.is_none() || proposal.tc.is_some());
        if !shape_ok {
            return self.drops.add(DropReason::InvalidProposal);
        }
        if !self.qc_ok(&proposal.justify) || !proposal.tc.as_ref().is_none_or(|tc| self.tc_ok(tc)) {
            return self.drops.add(DropReason::InvalidSignature);
        }
        self.seen_proposals.insert(header.round, (header.clone(), proposal.signature.clone()));
        self.process_qc(&proposal.justify, from, ctx);
        if let Some(tc) = &proposal.tc {
            self.process_tc(tc, from, ctx);
        }
        let node = Node {
            header: proposal.header.clone(),
            payload: proposal.payload.clone(),
            justify: Some(proposal.justify.clone()),
            reported: false,
        };
        self.insert_block(node, ctx);
        if proposal.header.round == self.round {
            self.deferred = Some(Deferred { proposal, from, waited_ticks: 0 });
            self.evaluate_deferred(ctx);
        }
    }

    fn on_vote(&mut self, vote: Vote<S>, ctx: &mut Ctx<'_, S>) {
        if vote.epoch != self.config.epoch {
            return self.drops.add(DropReason::WrongEpoch);
        }
        let Some(key) = self.validators.public_key(vote.signer) else {
            return self.drops.add(DropReason::UnknownSender);
        };
        if vote.round + 1 < self.round {
            return self.drops.add(DropReason::Stale);
        }
        if vote.round > self.round + self.config.round_ahead_max {
            return self.drops.add(DropReason::RoundTooFarAhead);
        }
        if self.validators.leader(vote.round + 1) != self.me {
            return self.drops.add(DropReason::NotForMe);
        }
        let previous = self.votes_by_signer.get(&(vote.round, vote.signer)).cloned();
        if previous.as_ref().is_some_and(|previous| previous.block == vote.block) {
            return self.drops.add(DropReason::Duplicate);
        }
        if !S::verify_batch(&[(
            key,
            &vote_message(vote.epoch, vote.round, &vote.block),
            &vote.signature,
        )]) {
            return self.drops.add(DropReason::InvalidSignature);
        }
        if let Some(first) = previous {
            self.record_evidence(Evidence::DoubleVote { first, second: vote }, ctx);
            return self.drops.add(DropReason::Equivocation);
        }
        self.votes_by_signer.insert((vote.round, vote.signer), vote.clone());
        self.add_vote(vote, ctx);
    }

    /// Count a verified vote (ours or a peer's); form the QC at quorum.
    fn add_vote(&mut self, vote: Vote<S>, ctx: &mut Ctx<'_, S>) {
        let stake = self.validators.stake(vote.signer);
        let set = self.votes.entry((vote.round, vote.block)).or_insert_with(|| VoteSet {
            signatures: BTreeMap::new(),
            stake: 0,
            formed: false,
        });
        if set.formed || set.signatures.insert(vote.signer, vote.signature).is_some() {
            return;
        }
        set.stake += stake;
        if !self.validators.is_quorum(set.stake) {
            return;
        }
        set.formed = true;
        let mut signers = SignerSet::with_len(self.validators.len());
        let mut signatures = Vec::with_capacity(set.signatures.len());
        for (signer, signature) in &set.signatures {
            signers.insert(*signer);
            signatures.push(signature.clone());
        }
        let qc = QuorumCert {
            epoch: vote.epoch,
            round: vote.round,
            block: vote.block,
            signers,
            aggregate: S::aggregate(&signatures),
        };
        self.verified_qcs.insert((qc.round, qc.block));
        let me = self.me;
        self.process_qc(&qc, me, ctx);
    }

    fn on_timeout(&mut self, from: ValidatorIndex, timeout: Timeout<S>, ctx: &mut Ctx<'_, S>) {
        if timeout.epoch != self.config.epoch || timeout.high_qc.epoch != self.config.epoch {
            return self.drops.add(DropReason::WrongEpoch);
        }
        let Some(key) = self.validators.public_key(timeout.signer) else {
            return self.drops.add(DropReason::UnknownSender);
        };
        if timeout.round < self.round {
            return self.drops.add(DropReason::Stale);
        }
        if timeout.round > self.round + self.config.round_ahead_max {
            return self.drops.add(DropReason::RoundTooFarAhead);
        }
        if self
            .timeouts
            .get(&timeout.round)
            .is_some_and(|set| set.entries.contains_key(&timeout.signer))
        {
            return self.drops.add(DropReason::Duplicate);
        }
        let message =
            timeout_message(timeout.epoch, timeout.round, timeout.high_qc.round, &timeout.tip);
        if timeout.high_qc.round >= timeout.round
            || !S::verify_batch(&[(key, &message, &timeout.signature)])
            || !self.qc_ok(&timeout.high_qc)
        {
            return self.drops.add(DropReason::InvalidSignature);
        }
        self.process_qc(&timeout.high_qc, from, ctx);
        self.add_timeout(timeout, ctx);
    }

    /// Count a verified timeout (ours or a peer's); form the TC at quorum.
    fn add_timeout(&mut self, timeout: Timeout<S>, ctx: &mut Ctx<'_, S>) {
        let round = timeout.round;
        if round < self.round {
            return;
        }
        let stake = self.validators.stake(timeout.signer);
        let set = self.timeouts.entry(round).or_insert_with(|| TimeoutSet {
            entries: BTreeMap::new(),
            stake: 0,
            high_qc: timeout.high_qc.clone(),
            formed: false,
        });
        if set.formed || set.entries.contains_key(&timeout.signer) {
            return;
        }
        if timeout.high_qc.round > set.high_qc.round {
            set.high_qc = timeout.high_qc.clone();
        }
        set.entries.insert(
            timeout.signer,
            TimeoutEntry {
                signer: timeout.signer,
                high_qc_round: timeout.high_qc.round,
                tip: timeout.tip,
                signature: timeout.signature,
            },
        );
        set.stake += stake;
        let stake_now = set.stake;
        if self.validators.is_quorum(stake_now) {
            set.formed = true;
            let tc = TimeoutCert {
                epoch: self.config.epoch,
                round,
                entries: set.entries.values().cloned().collect(),
                high_qc: set.high_qc.clone(),
            };
            let me = self.me;
            self.process_tc(&tc, me, ctx);
        } else if self.validators.is_validity(stake_now)
            && (round > self.round || self.my_timeout.is_none())
        {
            // > 1/3 gave up on this round: at least one honest did, so join
            // them, jumping ahead if they are in a later round (after a
            // partition the two sides may sit in different rounds, and
            // neither can form a TC alone). Entering a round without a
            // certificate is safe: nothing can be proposed in it, only
            // timeouts, and voted_round never goes down.
            if round > self.round {
                self.enter_round(round, true, ctx);
            }
            self.on_local_timeout(round, ctx);
        }
    }

    fn on_block_request(
        &mut self,
        from: ValidatorIndex,
        id: BlockId,
        height: Option<Height>,
        ctx: &mut Ctx<'_, S>,
    ) {
        if let Some(node) = self.tree.get(&id) {
            let response = BlockResponse {
                header: node.header.clone(),
                payload: node.payload.clone(),
                justify: node.justify.clone(),
            };
            ctx.out.push(Action::Send {
                to: from,
                message: Message::BlockResponse(Box::new(response)),
            });
        } else if let Some(height) =
            height.filter(|height| *height <= self.committed.height && *height > 0)
        {
            ctx.out.push(Action::ServeFromLedger { to: from, height, id });
        } else {
            self.drops.add(DropReason::UnknownBlock);
        }
    }

    fn on_block_response(
        &mut self,
        from: ValidatorIndex,
        response: BlockResponse<S>,
        ctx: &mut Ctx<'_, S>,
    ) {
        let id = response.header.id();
        if !self.fetches.contains_key(&id) {
            return self.drops.add(DropReason::UnrequestedBlock);
        }
        if response.header.epoch != self.config.epoch {
            return self.drops.add(DropReason::WrongEpoch);
        }
        if response.payload.len() > self.config.payload_bytes_max
            || sha256(&[&response.payload]) != response.header.payload_hash
        {
            return self.drops.add(DropReason::BadPayload);
        }
        let justify = match response.justify {
            Some(qc) if qc.block == response.header.parent => {
                if !self.qc_ok(&qc) {
                    return self.drops.add(DropReason::InvalidSignature);
                }
                Some(qc)
            }
            _ => None,
        };
        self.fetches.remove(&id);
        if let Some(qc) = &justify {
            self.process_qc(qc, from, ctx);
        }
        let node =
            Node { header: response.header, payload: response.payload, justify, reported: false };
        self.insert_block(node, ctx);
        self.evaluate_deferred(ctx);
        self.try_propose(ctx);
    }

    fn on_local_timeout(&mut self, round: Round, ctx: &mut Ctx<'_, S>) {
        if round != self.round {
            return;
        }
        if let Some(timeout) = &self.my_timeout {
            // Already timed out here: the timer fired again, so repeat it.
            ctx.out.push(Action::Broadcast(Message::Timeout(timeout.clone())));
            self.arm_timer(ctx);
            return;
        }
        // Backpressure: the round waits on our own execution, which is
        // behind and working. Give it another period (not doubled: no round
        // failed). Validators that are not behind still time out, and
        // their TC moves us on.
        if ctx.execution.executed_height().is_some() && self.waits_on_own_execution(ctx.execution) {
            self.timer_extensions += 1;
            self.arm_timer(ctx);
            return;
        }
        self.deferred = None;
        self.voted_round = self.voted_round.max(round);
        let message = timeout_message(self.config.epoch, round, self.high_qc.round, &self.tip);
        let timeout = Box::new(Timeout {
            epoch: self.config.epoch,
            round,
            signer: self.me,
            high_qc: self.high_qc.clone(),
            tip: self.tip,
            signature: S::sign(&self.key, &message),
        });
        self.my_timeout = Some(timeout.clone());
        let record = JournalRecord { epoch: self.config.epoch, round, kind: VoteKind::Timeout };
        self.persist(record, Outgoing::Timeout(timeout), ctx);
        self.arm_timer(ctx);
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, S>) {
        let committed_height = self.committed.height;
        self.fetches.retain(|_, fetch| fetch.height.is_none_or(|height| height > committed_height));
        let peers = self.validators.len() as ValidatorIndex;
        let retry = self.config.fetch_retry_ticks;
        let me = self.me;
        for (id, fetch) in self.fetches.iter_mut() {
            fetch.ticks += 1;
            if fetch.ticks >= retry {
                fetch.ticks = 0;
                fetch.peer = (fetch.peer + 1) % peers;
                if fetch.peer == me {
                    fetch.peer = (fetch.peer + 1) % peers;
                }
                let message = Message::BlockRequest { id: *id, height: fetch.height };
                ctx.out.push(Action::Send { to: fetch.peer, message });
            }
        }
        // With an oracle that tracks progress the round timer bounds the
        // wait (see `ExecutionOracle::executed_height`).
        let tracked = ctx.execution.executed_height().is_some();
        if let Some(deferred) = self.deferred.as_mut().filter(|_| !tracked) {
            deferred.waited_ticks += 1;
            if deferred.waited_ticks > self.config.execution_wait_ticks_max {
                self.deferred = None;
                self.drops.add(DropReason::ExecutionNotReady);
            }
        }
        self.evaluate_deferred(ctx);
        self.try_propose(ctx);
    }

    fn on_persisted(&mut self, ticket: VoteTicket, ctx: &mut Ctx<'_, S>) {
        let Some(position) = self.awaiting_persist.iter().position(|(seq, _)| *seq == ticket.seq)
        else {
            return;
        };
        let (_, outgoing) = self.awaiting_persist.remove(position);
        match outgoing {
            Outgoing::Vote { to, vote } => {
                if to == self.me {
                    self.votes_by_signer.insert((vote.round, vote.signer), vote.clone());
                    self.add_vote(vote, ctx);
                } else {
                    ctx.out.push(Action::Send { to, message: Message::Vote(vote) });
                }
            }
            Outgoing::Timeout(timeout) => {
                ctx.out.push(Action::Broadcast(Message::Timeout(timeout.clone())));
                self.add_timeout(*timeout, ctx);
            }
        }
    }

    // ---- certificates -------------------------------------------------

    fn qc_ok(&mut self, qc: &QuorumCert<S>) -> bool {
        if qc.epoch != self.config.epoch {
            return false;
        }
        if qc.round == 0 {
            return qc.block == BlockHeader::genesis(self.config.epoch).id()
                && qc.signers.count() == 0;
        }
        if self.verified_qcs.contains(&(qc.round, qc.block)) {
            return true;
        }
        if qc.signers.len_bits() != self.validators.len() {
            return false;
        }
        let mut stake = 0;
        let mut keys = Vec::with_capacity(qc.signers.count());
        for signer in qc.signers.iter() {
            stake += self.validators.stake(signer);
            match self.validators.public_key(signer) {
                Some(key) => keys.push(key),
                None => return false,
            }
        }
        if !self.validators.is_quorum(stake) {
            return false;
        }
        if !S::verify_aggregate(&keys, &vote_message(qc.epoch, qc.round, &qc.block), &qc.aggregate)
        {
            return false;
        }
        self.verified_qcs.insert((qc.round, qc.block));
        true
    }

    fn tc_ok(&mut self, tc: &TimeoutCert<S>) -> bool {
        if tc.epoch != self.config.epoch || tc.entries.len() > self.validators.len() {
            return false;
        }
        let mut stake = 0;
        let mut max_high_qc_round = 0;
        let mut last_signer = None;
        let mut messages = Vec::with_capacity(tc.entries.len());
        let mut keys = Vec::with_capacity(tc.entries.len());
        for entry in &tc.entries {
            // Strictly increasing signers: no duplicates, one encoding.
            if last_signer.is_some_and(|last| entry.signer <= last)
                || entry.high_qc_round >= tc.round
            {
                return false;
            }
            last_signer = Some(entry.signer);
            let Some(key) = self.validators.public_key(entry.signer) else {
                return false;
            };
            keys.push(key);
            stake += self.validators.stake(entry.signer);
            max_high_qc_round = max_high_qc_round.max(entry.high_qc_round);
            messages.push(timeout_message(tc.epoch, tc.round, entry.high_qc_round, &entry.tip));
        }
        if !self.validators.is_quorum(stake) || max_high_qc_round != tc.high_qc.round {
            return false;
        }
        let items: Vec<_> = tc
            .entries
            .iter()
            .zip(&keys)
            .zip(&messages)
            .map(|((entry, key), message)| (*key, message.as_slice(), &entry.signature))
            .collect();
        S::verify_batch(&items) && self.qc_ok(&tc.high_qc)
    }

    fn process_qc(&mut self, qc: &QuorumCert<S>, from: ValidatorIndex, ctx: &mut Ctx<'_, S>) {
        self.mark_certified(qc.block, qc.round, ctx);
        if qc.round > 0 {
            self.certificates.entry(qc.block).or_insert_with(|| qc.clone());
        }
        if qc.round > self.high_qc.round {
            self.high_qc = qc.clone();
        }
        if qc.round > self.committed.round && !self.tree.contains(&qc.block) {
            self.fetch(qc.block, None, from, ctx);
        }
        self.try_commit(ctx);
        if qc.round >= self.round {
            self.enter_round(qc.round + 1, false, ctx);
        }
    }

    fn process_tc(&mut self, tc: &TimeoutCert<S>, from: ValidatorIndex, ctx: &mut Ctx<'_, S>) {
        self.process_qc(&tc.high_qc, from, ctx);
        if tc.round >= self.round {
            self.last_tc = Some(tc.clone());
            self.enter_round(tc.round + 1, true, ctx);
        }
    }

    fn mark_certified(&mut self, id: BlockId, round: Round, ctx: &mut Ctx<'_, S>) {
        if round == 0 {
            return;
        }
        self.certified.entry(id).or_insert(round);
        self.report_certified(&id, ctx);
    }

    fn report_certified(&mut self, id: &BlockId, ctx: &mut Ctx<'_, S>) {
        if !self.certified.contains_key(id) {
            return;
        }
        if let Some(node) = self.tree.get_mut(id)
            && !node.reported
        {
            node.reported = true;
            let (round, height) = (node.header.round, node.header.height);
            ctx.out.push(Action::Certified { round, height, block: *id });
        }
    }

    fn enter_round(&mut self, round: Round, after_tc: bool, ctx: &mut Ctx<'_, S>) {
        if round <= self.round {
            return;
        }
        self.failed_rounds_in_a_row =
            if after_tc { self.failed_rounds_in_a_row.saturating_add(1) } else { 0 };
        self.round = round;
        self.my_timeout = None;
        if self.deferred.as_ref().is_some_and(|deferred| deferred.proposal.header.round < round) {
            self.deferred = None;
        }
        self.votes.retain(|(vote_round, _), _| vote_round + 1 >= round);
        self.votes_by_signer.retain(|(vote_round, _), _| vote_round + 1 >= round);
        self.timeouts.retain(|timeout_round, _| *timeout_round >= round);
        self.seen_proposals.retain(|proposal_round, _| proposal_round + 4 >= round);
        let horizon = round.saturating_sub(self.config.round_ahead_max * 4);
        self.verified_qcs.retain(|(qc_round, _)| *qc_round >= horizon);
        if self.last_tc.as_ref().is_some_and(|tc| tc.round + 1 < round) {
            self.last_tc = None;
        }
        self.arm_timer(ctx);
        if self.validators.leader(round) == self.me {
            self.propose_round = Some(round);
            self.try_propose(ctx);
        }
    }

    /// Whether the next vote or proposal of this round needs our own
    /// result for a height that execution has not reached.
    fn waits_on_own_execution(&self, execution: &dyn ExecutionOracle) -> bool {
        let (parent, height) = match &self.deferred {
            Some(deferred) => (deferred.proposal.header.parent, deferred.proposal.header.height),
            // The proposal we wait for extends the newest block proposed
            // up to this round (we voted for it; its QC is with the next
            // leader), else our highest QC's block.
            None => {
                let voted = self.seen_proposals.range(..=self.round).next_back().map(|(_, p)| p);
                match voted {
                    Some((header, _)) => (header.id(), header.height + 1),
                    None => match self.tree.get(&self.high_qc.block) {
                        Some(node) => (self.high_qc.block, node.header.height + 1),
                        None => return false,
                    },
                }
            }
        };
        // Only a committed height is on its way: execution never reaches
        // one consensus has not committed (a fork's, say) while we wait.
        matches!(
            self.delayed_rule(&parent, height),
            Ok(Some(target)) if target <= self.committed.height && execution.result(target).is_none()
        )
    }

    /// Round timers extended for backpressure so far.
    pub fn timer_extensions(&self) -> u64 {
        self.timer_extensions
    }

    fn arm_timer(&self, ctx: &mut Ctx<'_, S>) {
        let shift = self.failed_rounds_in_a_row.min(16);
        let after_ms = self
            .config
            .round_timeout_ms
            .saturating_mul(1 << shift)
            .min(self.config.round_timeout_max_ms);
        ctx.out.push(Action::ArmTimer { round: self.round, after_ms });
    }

    // ---- commit ---------------------------------------------------------

    /// Commit the highest block whose child of the next round is certified.
    fn try_commit(&mut self, ctx: &mut Ctx<'_, S>) {
        // (height of the block to commit, its id, its certified child)
        let mut target: Option<(Height, BlockId, BlockId)> = None;
        for (id, node) in self.tree.iter() {
            if node.header.height <= self.committed.height + 1 || !self.certified.contains_key(id) {
                continue;
            }
            let Some(parent) = self.tree.get(&node.header.parent) else { continue };
            if parent.header.round + 1 == node.header.round
                && target.is_none_or(|(height, ..)| parent.header.height > height)
            {
                target = Some((parent.header.height, node.header.parent, *id));
            }
        }
        let Some((_, mut cursor, child)) = target else { return };
        let mut chain = Vec::new();
        loop {
            let Some(node) = self.tree.get(&cursor) else {
                let from = self.me.wrapping_add(1) % self.validators.len() as ValidatorIndex;
                self.fetch(cursor, None, from, ctx);
                return;
            };
            if node.header.height == self.committed.height + 1 {
                if node.header.parent != self.committed.id {
                    // Only a broken quorum assumption can get here.
                    self.drops.add(DropReason::ConflictsWithCommitted);
                    return;
                }
                chain.push(cursor);
                break;
            }
            if node.header.height <= self.committed.height {
                self.drops.add(DropReason::ConflictsWithCommitted);
                return;
            }
            chain.push(cursor);
            cursor = node.header.parent;
        }
        chain.reverse();
        for id in &chain {
            let Some(node) = self.tree.get(id) else { return };
            ctx.out.push(Action::Commit(Box::new(FinalizedBlock {
                header: node.header.clone(),
                payload: node.payload.clone(),
            })));
            self.committed =
                Committed { height: node.header.height, round: node.header.round, id: *id };
        }
        if let (Some(node), Some(qc)) = (self.tree.get(&child), self.certificates.get(&child)) {
            let proof = CommitProof { child: node.header.clone(), qc: qc.clone() };
            ctx.out.push(Action::CommitProof {
                height: self.committed.height,
                proof: Box::new(proof),
            });
        }
        self.tree.commit(&chain, self.committed.height);
        let horizon = self.round.saturating_sub(self.config.round_ahead_max * 4);
        let committed = self.committed.id;
        self.certified.retain(|id, round| *round >= horizon || *id == committed);
        self.certificates.retain(|_, qc| qc.round >= horizon);
    }

    // ---- proposing ------------------------------------------------------

    fn try_propose(&mut self, ctx: &mut Ctx<'_, S>) {
        let Some(round) = self.propose_round else { return };
        if round != self.round || self.my_timeout.is_some() {
            self.propose_round = None;
            return;
        }
        if self.high_qc.round + 1 == round {
            let justify = self.high_qc.clone();
            return self.propose_fresh(round, justify, None, ctx);
        }
        let Some(tc) = self.last_tc.clone().filter(|tc| tc.round + 1 == round) else { return };
        let rule = self.tip_rule(&tc);
        if let Some(tip) = rule.tip {
            let held = self.tree.get(&tip.id).and_then(|node| {
                let justify = node.justify.clone().filter(|qc| qc.round == tip.justify_round)?;
                Some((node.header.clone(), node.payload.clone(), justify))
            });
            match held {
                Some((header, payload, justify)) => {
                    return self.repropose(round, header, payload, justify, tc, ctx);
                }
                None if rule.mandatory => {
                    // An honest reporter holds it: fetch from the reporters.
                    let reporter = tc
                        .entries
                        .iter()
                        .find(|entry| entry.tip == Some(tip))
                        .map(|entry| entry.signer);
                    if let Some(reporter) = reporter.filter(|reporter| *reporter != self.me) {
                        self.fetch(tip.id, None, reporter, ctx);
                    }
                    return;
                }
                None => {}
            }
        }
        let justify = self.high_qc.clone();
        self.propose_fresh(round, justify, Some(tc), ctx);
    }

    fn propose_fresh(
        &mut self,
        round: Round,
        justify: QuorumCert<S>,
        tc: Option<TimeoutCert<S>>,
        ctx: &mut Ctx<'_, S>,
    ) {
        let Some(parent) = self.tree.get(&justify.block) else {
            let from = self.me.wrapping_add(1) % self.validators.len() as ValidatorIndex;
            return self.fetch(justify.block, None, from, ctx);
        };
        let height = parent.header.height + 1;
        let delayed = match self.delayed_rule(&justify.block, height) {
            Err(missing) => {
                let from = self.me.wrapping_add(1) % self.validators.len() as ValidatorIndex;
                return self.fetch(missing, None, from, ctx);
            }
            Ok(None) => None,
            Ok(Some(target)) => match ctx.execution.result(target) {
                Some(result) => Some(DelayedResult { height: target, result }),
                None => return, // wait for execution; retried on Tick
            },
        };
        let wait_ms = ctx.payloads.wait_ms(height, &parent.payload);
        if wait_ms > 0 {
            // The minimum block time: retried on the tick asked for.
            ctx.out.push(Action::TickAfter { after_ms: wait_ms });
            return;
        }
        let mut pending = Vec::new();
        let mut cursor = Some(parent);
        while let Some(block) = cursor.filter(|b| b.header.height > self.committed.height) {
            pending.push(PendingBlock {
                id: block.header.id(),
                height: block.header.height,
                payload: &block.payload,
            });
            cursor = self.tree.get(&block.header.parent);
        }
        let mut payload =
            ctx.payloads.payload(round, height, self.config.payload_bytes_max, &pending);
        if payload.len() > self.config.payload_bytes_max {
            payload.clear();
        }
        let header = BlockHeader {
            epoch: self.config.epoch,
            round,
            author: self.me,
            height,
            parent: justify.block,
            payload_hash: sha256(&[&payload]),
            delayed,
        };
        self.send_proposal(header, payload, justify, tc, None, ctx);
    }

    fn repropose(
        &mut self,
        round: Round,
        tip: BlockHeader,
        payload: Vec<u8>,
        justify: QuorumCert<S>,
        tc: TimeoutCert<S>,
        ctx: &mut Ctx<'_, S>,
    ) {
        let reproposes = Some((tip.round, tip.author));
        let header = BlockHeader { round, author: self.me, ..tip };
        self.send_proposal(header, payload, justify, Some(tc), reproposes, ctx);
    }

    fn send_proposal(
        &mut self,
        header: BlockHeader,
        payload: Vec<u8>,
        justify: QuorumCert<S>,
        tc: Option<TimeoutCert<S>>,
        reproposes: Option<(Round, ValidatorIndex)>,
        ctx: &mut Ctx<'_, S>,
    ) {
        self.propose_round = None;
        let signature = S::sign(&self.key, &proposal_message(&header.id()));
        let proposal = Box::new(Proposal { header, payload, justify, tc, reproposes, signature });
        ctx.out.push(Action::Broadcast(Message::Proposal(proposal.clone())));
        let node = Node {
            header: proposal.header.clone(),
            payload: proposal.payload.clone(),
            justify: Some(proposal.justify.clone()),
            reported: false,
        };
        self.seen_proposals
            .insert(proposal.header.round, (proposal.header.clone(), proposal.signature.clone()));
        self.insert_block(node, ctx);
        let me = self.me;
        self.deferred = Some(Deferred { proposal, from: me, waited_ticks: 0 });
        self.evaluate_deferred(ctx);
    }

    // ---- voting ---------------------------------------------------------

    fn evaluate_deferred(&mut self, ctx: &mut Ctx<'_, S>) {
        let Some(deferred) = self.deferred.take() else { return };
        match self.check_vote(&deferred.proposal, ctx.execution) {
            Check::Vote => self.cast_vote(&deferred.proposal, ctx),
            Check::Wait(missing) => {
                if let Some((id, height)) = missing {
                    self.fetch(id, height, deferred.from, ctx);
                }
                self.deferred = Some(deferred);
            }
            Check::Reject(reason) => self.drops.add(reason),
            Check::NoVote => {}
        }
    }

    fn check_vote(&self, proposal: &Proposal<S>, execution: &dyn ExecutionOracle) -> Check {
        let header = &proposal.header;
        if header.round != self.round
            || header.round <= self.voted_round
            || self.my_timeout.is_some()
        {
            return Check::NoVote;
        }
        let Some(parent) = self.tree.get(&header.parent) else {
            return Check::Wait(Some((header.parent, header.height.checked_sub(1))));
        };
        if parent.header.height + 1 != header.height {
            return Check::Reject(DropReason::InvalidProposal);
        }
        // The parent must extend our committed block.
        let mut cursor = parent;
        while cursor.header.height > self.committed.height {
            match self.tree.get(&cursor.header.parent) {
                Some(node) => cursor = node,
                None => {
                    return Check::Wait(Some((
                        cursor.header.parent,
                        cursor.header.height.checked_sub(1),
                    )));
                }
            }
        }
        if cursor.header.id() != self.committed.id {
            return Check::Reject(DropReason::ConflictsWithCommitted);
        }
        match &proposal.tc {
            None => {
                if proposal.reproposes.is_some() {
                    return Check::Reject(DropReason::InvalidProposal);
                }
            }
            Some(tc) => {
                let rule = self.tip_rule(tc);
                if proposal.justify.round < rule.max_high_qc_round {
                    return Check::Reject(DropReason::InvalidProposal);
                }
                let is_reproposal = match (rule.tip, proposal.reproposes) {
                    (Some(tip), Some((round, author))) => {
                        let original = BlockHeader { round, author, ..header.clone() };
                        round == tip.round
                            && original.id() == tip.id
                            && proposal.justify.round == tip.justify_round
                    }
                    _ => false,
                };
                if proposal.reproposes.is_some() && !is_reproposal {
                    return Check::Reject(DropReason::InvalidProposal);
                }
                if rule.mandatory && !is_reproposal {
                    return Check::Reject(DropReason::TailFork);
                }
            }
        }
        match self.delayed_rule(&header.parent, header.height) {
            Err(missing) => Check::Wait(Some((missing, None))),
            Ok(None) if header.delayed.is_some() => Check::Reject(DropReason::ExecutionMismatch),
            Ok(None) => Check::Vote,
            Ok(Some(target)) => match &header.delayed {
                Some(delayed) if delayed.height == target => match execution.result(target) {
                    Some(ours) if ours == delayed.result => Check::Vote,
                    Some(_) => Check::Reject(DropReason::ExecutionMismatch),
                    None => Check::Wait(None),
                },
                _ => Check::Reject(DropReason::ExecutionMismatch),
            },
        }
    }

    fn cast_vote(&mut self, proposal: &Proposal<S>, ctx: &mut Ctx<'_, S>) {
        let header = &proposal.header;
        let id = header.id();
        self.voted_round = header.round;
        self.tip = Some(Tip { round: header.round, id, justify_round: proposal.justify.round });
        let vote = Vote {
            epoch: self.config.epoch,
            round: header.round,
            block: id,
            signer: self.me,
            signature: S::sign(&self.key, &vote_message(self.config.epoch, header.round, &id)),
        };
        let record = JournalRecord {
            epoch: self.config.epoch,
            round: header.round,
            kind: VoteKind::Block(id),
        };
        let to = self.validators.leader(header.round + 1);
        self.persist(record, Outgoing::Vote { to, vote }, ctx);
    }

    fn persist(&mut self, record: JournalRecord, outgoing: Outgoing<S>, ctx: &mut Ctx<'_, S>) {
        if self.awaiting_persist.len() >= PERSIST_QUEUE_MAX {
            // The driver stopped completing tickets; signing on would only
            // pile up. The round times out instead.
            return self.drops.add(DropReason::PersistQueueFull);
        }
        self.persist_seq += 1;
        self.awaiting_persist.push((self.persist_seq, outgoing));
        ctx.out.push(Action::PersistVote(VoteTicket { seq: self.persist_seq, record }));
    }

    // ---- rules ------------------------------------------------------------

    /// Which height's execution result a block at `height` on top of
    /// `parent` must carry: `Some(height - K)` when that block is committed
    /// on this branch, `None` otherwise. `Err` names a missing ancestor.
    fn delayed_rule(&self, parent: &BlockId, height: Height) -> Result<Option<Height>, BlockId> {
        let Some(target) =
            height.checked_sub(self.config.execution_delay).filter(|target| *target > 0)
        else {
            return Ok(None);
        };
        let mut child = self.tree.get(parent).ok_or(*parent)?;
        while child.header.height > target {
            let parent_id = child.header.parent;
            let parent = self.tree.get(&parent_id).ok_or(parent_id)?;
            if parent.header.round + 1 == child.header.round {
                return Ok(Some(target));
            }
            child = parent;
        }
        Ok(None)
    }

    /// The highest-round tip reported in `tc` that lies above every QC the
    /// TC reports, and whether > 1/3 of the stake reported exactly it.
    fn tip_rule(&self, tc: &TimeoutCert<S>) -> TipRule {
        let max_high_qc_round = tc.high_qc.round;
        let tip = tc
            .entries
            .iter()
            .filter_map(|entry| entry.tip)
            .filter(|tip| tip.round > max_high_qc_round && tip.justify_round >= max_high_qc_round)
            .max_by(|a, b| a.round.cmp(&b.round).then(b.id.cmp(&a.id)));
        let mandatory = tip.is_some_and(|tip| {
            let stake: u64 = tc
                .entries
                .iter()
                .filter(|entry| entry.tip == Some(tip))
                .map(|entry| self.validators.stake(entry.signer))
                .sum();
            self.validators.is_validity(stake)
        });
        TipRule { max_high_qc_round, tip, mandatory }
    }

    // ---- blocks -----------------------------------------------------------

    fn insert_block(&mut self, node: Node<S>, ctx: &mut Ctx<'_, S>) {
        let id = node.header.id();
        if node.header.height <= self.committed.height {
            return;
        }
        if let Some(existing) = self.tree.get_mut(&id) {
            if existing.justify.is_none() {
                existing.justify = node.justify;
            }
            return;
        }
        let parent = node.header.parent;
        let height = node.header.height;
        if let Some(justify) = &node.justify {
            self.certified.entry(parent).or_insert(justify.round);
            if justify.round > 0 {
                self.certificates.entry(parent).or_insert_with(|| justify.clone());
            }
        }
        if !self.tree.insert(node) {
            return self.drops.add(DropReason::TreeFull);
        }
        self.fetches.remove(&id);
        self.report_certified(&parent, ctx);
        self.report_certified(&id, ctx);
        // Sync backwards until the chain reaches what we hold.
        if !self.tree.contains(&parent) && height > self.committed.height + 1 {
            let from =
                self.fetches.values().next().map_or(self.me.wrapping_add(1), |fetch| fetch.peer)
                    % self.validators.len() as ValidatorIndex;
            self.fetch(parent, Some(height - 1), from, ctx);
        }
        self.try_commit(ctx);
    }

    fn fetch(
        &mut self,
        id: BlockId,
        height: Option<Height>,
        peer: ValidatorIndex,
        ctx: &mut Ctx<'_, S>,
    ) {
        if self.tree.contains(&id) || self.fetches.contains_key(&id) {
            return;
        }
        if self.fetches.len() >= self.config.fetches_in_flight_max {
            return self.drops.add(DropReason::FetchQueueFull);
        }
        let peers = self.validators.len() as ValidatorIndex;
        let peer = if peer == self.me { (peer + 1) % peers } else { peer % peers };
        self.fetches.insert(id, Fetch { height, peer, ticks: 0 });
        ctx.out.push(Action::Send { to: peer, message: Message::BlockRequest { id, height } });
    }

    fn record_evidence(&mut self, evidence: Evidence<S>, ctx: &mut Ctx<'_, S>) {
        if self.evidence.len() < self.config.evidence_max {
            self.evidence.push(evidence.clone());
        }
        ctx.out.push(Action::Evidence(evidence));
    }
}
