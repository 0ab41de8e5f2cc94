//! The seeded simulator: N cores over a virtual network, with faults and
//! Byzantine actors, checked by independent invariants.
//!
//! Everything random comes from one [`rng::Rng`] seeded by
//! [`SimConfig::seed`]; time is a virtual millisecond clock; events sit in
//! an ordered map keyed by (time, sequence number). So a run is a function
//! of its configuration, and [`SimReport::log_hash`] (SHA-256 over every
//! processed event and every commit) proves it.
//!
//! The network delivers each message after a seeded latency plus jitter,
//! drops some, and cuts the links between two groups while a partition
//! lasts. Crashed validators lose their memory and in-flight messages and
//! restart from their journal and ledger, which persist. A validator of a
//! Byzantine [`Behavior`] runs an honest core whose output is rewritten
//! (equivocation, double votes) or padded with junk (invalid signatures,
//! stale replays, oversized and random bytes), or runs nothing (silent), or
//! runs twice under one key (Twins).
//!
//! [`bench`] is a separate, timed driver for `wake bench consensus`: honest
//! validators only, each a single server charged with the CPU its core
//! used. It measures commit latency and blocks per second, and leaves this
//! simulator and its log hash untouched.

pub mod bench;
pub mod invariants;
pub mod rng;

use std::collections::{BTreeMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::codec::{Encode, MESSAGE_BYTES_MAX};
use crate::core::{Action, Config, Core, Event, ExecutionOracle, PayloadSource, Restore};
use crate::crypto::{Ed25519, Scheme, ed25519_key_from_seed};
use crate::journal::{MemJournal, VoteJournal, VoteTicket};
use crate::ledger::{Ledger, MemLedger};
use crate::types::{
    BlockId, BlockResponse, ExecutionResult, Height, Message, Round, ValidatorIndex, Vote,
    proposal_message, sha256, vote_message,
};
use crate::validators::{Validator, ValidatorSet};
use invariants::{Observations, Violation};
use rng::Rng;

/// What a validator does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    Honest,
    /// Sends nothing at all.
    Silent,
    /// As leader, sends one proposal to half the validators and a different
    /// one to the other half.
    Equivocator,
    /// Every vote goes out together with a vote for another block.
    DoubleVoter,
    /// Floods votes, timeouts and proposals with invalid signatures.
    Spammer,
    /// Re-sends messages it received long ago.
    Replayer,
    /// Sends messages over the size cap and random bytes.
    Oversized,
    /// Two instances run under this one key.
    Twin,
}

/// A named fault pattern. Byzantine validators get `byzantine_behavior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// No faults besides the Byzantine validators.
    Happy,
    /// 3-15% of messages dropped.
    Lossy,
    /// A partition that heals.
    Partition,
    /// The Byzantine budget spent on honest validators that crash and restart.
    Crash,
    Equivocation,
    DoubleVote,
    Silent,
    Spam,
    Replay,
    Oversized,
    Twins,
    /// Every fault at once, a random behavior per Byzantine validator.
    Mixed,
    /// f+1 keys twinned across a permanent partition of the honest
    /// validators: beyond the fault bound, so the checker must fire.
    TwinsSplit,
}

impl Scenario {
    pub const ALL: &'static [Scenario] = &[
        Scenario::Happy,
        Scenario::Lossy,
        Scenario::Partition,
        Scenario::Crash,
        Scenario::Equivocation,
        Scenario::DoubleVote,
        Scenario::Silent,
        Scenario::Spam,
        Scenario::Replay,
        Scenario::Oversized,
        Scenario::Twins,
        Scenario::Mixed,
        Scenario::TwinsSplit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Happy => "happy",
            Scenario::Lossy => "lossy",
            Scenario::Partition => "partition",
            Scenario::Crash => "crash",
            Scenario::Equivocation => "equivocation",
            Scenario::DoubleVote => "double-vote",
            Scenario::Silent => "silent",
            Scenario::Spam => "spam",
            Scenario::Replay => "replay",
            Scenario::Oversized => "oversized",
            Scenario::Twins => "twins",
            Scenario::Mixed => "mixed",
            Scenario::TwinsSplit => "twins-split",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|scenario| scenario.name() == name)
    }

    fn byzantine_behavior(self, rng: &mut Rng) -> Behavior {
        match self {
            Scenario::Happy | Scenario::Lossy | Scenario::Partition | Scenario::Crash => {
                Behavior::Honest
            }
            Scenario::Equivocation => Behavior::Equivocator,
            Scenario::DoubleVote => Behavior::DoubleVoter,
            Scenario::Silent => Behavior::Silent,
            Scenario::Spam => Behavior::Spammer,
            Scenario::Replay => Behavior::Replayer,
            Scenario::Oversized => Behavior::Oversized,
            Scenario::Twins | Scenario::TwinsSplit => Behavior::Twin,
            Scenario::Mixed => {
                const KINDS: [Behavior; 7] = [
                    Behavior::Silent,
                    Behavior::Equivocator,
                    Behavior::DoubleVoter,
                    Behavior::Spammer,
                    Behavior::Replayer,
                    Behavior::Oversized,
                    Behavior::Twin,
                ];
                KINDS[rng.range(0, KINDS.len() as u64) as usize]
            }
        }
    }
}

/// One simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub validators: usize,
    pub byzantine: usize,
    pub scenario: Scenario,
    /// Virtual run time after the last fault heals.
    pub liveness_window_ms: u64,
    /// Commits the honest validators must add after healing.
    pub liveness_commits_min: u64,
}

impl SimConfig {
    pub fn new(seed: u64, validators: usize, byzantine: usize, scenario: Scenario) -> Self {
        Self {
            seed,
            validators,
            byzantine,
            scenario,
            liveness_window_ms: 10_000,
            liveness_commits_min: 3,
        }
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub seed: u64,
    /// SHA-256 over the processed events and commits, in order.
    pub log_hash: [u8; 32],
    pub violations: Vec<Violation>,
    /// Highest height an honest validator committed.
    pub committed_height_max: Height,
    pub messages_delivered: u64,
    pub drops_total: u64,
    /// Drops of the cores alive at the end, by reason.
    pub drops_by_reason: BTreeMap<&'static str, u64>,
    /// Highest round a core reached.
    pub round_max: Round,
    pub evidence_total: u64,
    /// Commit proofs of honest validators checked against the block they
    /// prove, as a follower checks them (a failure is a violation).
    pub commit_proofs_verified: u64,
    pub virtual_ms: u64,
}

/// Run `config`; a bad configuration is an `Err` with the reason.
pub fn run(config: &SimConfig) -> Result<SimReport, String> {
    Sim::new(config)?.run()
}

const TICK_MS: u64 = 50;
const FSYNC_MS: u64 = 1;
const ROUND_TIMEOUT_MS: u64 = 400;
const REPLAY_BUFFER_MAX: usize = 64;

enum SimEvent {
    Deliver { to: usize, from: ValidatorIndex, bytes: Vec<u8> },
    Timer { instance: usize, incarnation: u32, round: Round },
    Tick { instance: usize },
    Persisted { instance: usize, incarnation: u32, ticket: VoteTicket },
    Crash { instance: usize },
    Restart { instance: usize },
}

/// A validator's execution in the simulator: a result per committed block,
/// derived from its id, ready a seeded delay after the commit.
#[derive(Default)]
struct SimExecution {
    results: BTreeMap<Height, (u64, ExecutionResult)>,
    now_ms: u64,
}

impl SimExecution {
    fn executed(id: &BlockId) -> ExecutionResult {
        let state_root = sha256(&[b"state", &id.0]);
        let receipts_root = sha256(&[b"receipts", &id.0]);
        let mut logs_bloom = [0u8; 256];
        logs_bloom[..32].copy_from_slice(&sha256(&[b"bloom", &id.0]));
        ExecutionResult {
            state_root,
            receipts_root,
            logs_bloom,
            gas_used: u64::from(id.0[0]) * 21_000,
        }
    }
}

impl ExecutionOracle for SimExecution {
    fn result(&self, height: Height) -> Option<ExecutionResult> {
        self.results
            .get(&height)
            .filter(|(ready_ms, _)| *ready_ms <= self.now_ms)
            .map(|(_, result)| result.clone())
    }

    fn executed_height(&self) -> Option<Height> {
        // Results become ready in height order.
        let ready = self.results.iter().rev().find(|(_, (ready_ms, _))| *ready_ms <= self.now_ms);
        Some(ready.map_or(0, |(height, _)| *height))
    }
}

struct SimPayloads {
    instance: usize,
}

impl PayloadSource for SimPayloads {
    fn payload(
        &mut self,
        round: Round,
        height: Height,
        bytes_max: usize,
        _pending: &[crate::core::PendingBlock<'_>],
    ) -> Vec<u8> {
        let mut payload = format!("txs r{round} h{height} i{}", self.instance).into_bytes();
        payload.truncate(bytes_max);
        payload
    }
}

struct Instance {
    validator: ValidatorIndex,
    behavior: Behavior,
    /// Twins: which side of a split this copy is on.
    side: u8,
    core: Option<Core<Ed25519>>,
    incarnation: u32,
    journal: MemJournal,
    ledger: MemLedger,
    execution: SimExecution,
    received: VecDeque<Vec<u8>>,
}

struct Partition {
    from_ms: u64,
    until_ms: u64,
    /// Group of each instance.
    group: Vec<u8>,
}

struct Sim {
    config: SimConfig,
    core_config: Config,
    validator_set: ValidatorSet<Ed25519>,
    keys: Vec<ed25519_dalek::SigningKey>,
    weights: Vec<u64>,
    instances: Vec<Instance>,
    queue: BTreeMap<(u64, u64), SimEvent>,
    seq: u64,
    now_ms: u64,
    rng: Rng,
    latency_ms: u64,
    jitter_ms: u64,
    drop_per_mille: u64,
    partition: Option<Partition>,
    healed_at_ms: u64,
    end_ms: u64,
    log: Sha256,
    observations: Observations,
    committed_at_heal: Option<Height>,
    delivered: u64,
    evidence: u64,
    commit_proofs_verified: u64,
    ledger_refusals: Vec<Violation>,
}

impl Sim {
    fn new(config: &SimConfig) -> Result<Self, String> {
        let n = config.validators;
        if !(1..=64).contains(&n) {
            return Err(format!("{n} validators: the simulator runs 1 to 64"));
        }
        let f_max = (n - 1) / 3;
        let beyond_bound = config.scenario == Scenario::TwinsSplit;
        if config.byzantine > f_max && !beyond_bound {
            return Err(format!(
                "{} byzantine of {n}: at most {f_max} (use twins-split to go beyond)",
                config.byzantine
            ));
        }
        let mut rng = Rng::new(config.seed);
        let keys: Vec<_> = (0..n)
            .map(|index| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(index as u64).to_le_bytes());
                seed[8..16].copy_from_slice(&config.seed.to_le_bytes());
                ed25519_key_from_seed(seed)
            })
            .collect();
        let weights = vec![1u64; n];
        let validator_set = ValidatorSet::new(
            keys.iter()
                .map(|key| Validator { public_key: Ed25519::public_key(key), stake: 1 })
                .collect(),
        )
        .map_err(|error| error.to_string())?;
        let core_config = Config {
            epoch: 1,
            execution_delay: 3,
            round_timeout_ms: ROUND_TIMEOUT_MS,
            round_timeout_max_ms: ROUND_TIMEOUT_MS * 2,
            execution_wait_ticks_max: 6,
            fetch_retry_ticks: 3,
            round_ahead_max: 64,
            payload_bytes_max: 4096,
            tree_blocks_max: 1024,
            fetches_in_flight_max: 32,
            committed_retained: 32,
            evidence_max: 256,
        };
        // Which validators are Byzantine, and how.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.range(0, i as u64 + 1) as usize);
        }
        let byzantine_count = config.byzantine.min(n);
        let mut behaviors = vec![Behavior::Honest; n];
        for index in order.iter().take(byzantine_count) {
            behaviors[*index] = config.scenario.byzantine_behavior(&mut rng);
        }
        let mut instances = Vec::new();
        for (index, behavior) in behaviors.iter().enumerate() {
            let copies = if *behavior == Behavior::Twin { 2 } else { 1 };
            for side in 0..copies {
                instances.push(Instance {
                    validator: index as ValidatorIndex,
                    behavior: *behavior,
                    side,
                    core: None,
                    incarnation: 0,
                    journal: MemJournal::default(),
                    ledger: MemLedger::new(core_config.epoch),
                    execution: SimExecution::default(),
                    received: VecDeque::new(),
                });
            }
        }
        let latency_ms = rng.range(5, 60);
        let jitter_ms = rng.range(0, 30);
        let drop_per_mille = match config.scenario {
            Scenario::Lossy => rng.range(30, 150),
            Scenario::Mixed | Scenario::Partition => rng.range(0, 50),
            _ => 0,
        };
        let mut sim = Self {
            config: config.clone(),
            core_config,
            validator_set,
            keys,
            weights,
            instances,
            queue: BTreeMap::new(),
            seq: 0,
            now_ms: 0,
            rng,
            latency_ms,
            jitter_ms,
            drop_per_mille,
            partition: None,
            healed_at_ms: 0,
            end_ms: 0,
            log: Sha256::new(),
            observations: Observations::default(),
            committed_at_heal: None,
            delivered: 0,
            evidence: 0,
            commit_proofs_verified: 0,
            ledger_refusals: Vec::new(),
        };
        sim.plan_faults(&order[byzantine_count..]);
        Ok(sim)
    }

    /// Partitions and crashes from the seed; sets the heal time and the end.
    fn plan_faults(&mut self, honest_order: &[usize]) {
        let count = self.instances.len();
        let scenario = self.config.scenario;
        if matches!(scenario, Scenario::Partition | Scenario::Mixed) {
            let from_ms = self.rng.range(500, 3000);
            let until_ms = from_ms + self.rng.range(500, 4000);
            let group = (0..count).map(|_| self.rng.range(0, 2) as u8).collect();
            self.partition = Some(Partition { from_ms, until_ms, group });
            self.healed_at_ms = self.healed_at_ms.max(until_ms);
        }
        if scenario == Scenario::TwinsSplit {
            // Twins on both sides; honest validators split in two halves.
            let mut group = vec![0u8; count];
            let mut honest_side = 0u8;
            for (index, instance) in self.instances.iter().enumerate() {
                group[index] = if instance.behavior == Behavior::Twin {
                    instance.side
                } else {
                    honest_side ^= 1;
                    honest_side
                };
            }
            self.partition = Some(Partition { from_ms: 0, until_ms: u64::MAX, group });
        }
        let crashers: Vec<usize> = match scenario {
            // The fault budget goes to honest validators that crash.
            Scenario::Crash => {
                let budget = (self.config.validators - 1) / 3;
                honest_order.iter().take(budget.max(1)).copied().collect()
            }
            Scenario::Mixed => honest_order.iter().take(1).copied().collect(),
            _ => Vec::new(),
        };
        for validator in crashers {
            let Some(instance) =
                self.instances.iter().position(|i| i.validator as usize == validator)
            else {
                continue;
            };
            let crash_ms = self.rng.range(300, 4000);
            let restart_ms = crash_ms + self.rng.range(200, 3000);
            self.schedule(crash_ms, SimEvent::Crash { instance });
            self.schedule(restart_ms, SimEvent::Restart { instance });
            self.healed_at_ms = self.healed_at_ms.max(restart_ms);
        }
        self.end_ms = self.healed_at_ms.max(1000) + self.config.liveness_window_ms;
    }

    fn schedule(&mut self, at_ms: u64, event: SimEvent) {
        self.seq += 1;
        self.queue.insert((at_ms, self.seq), event);
    }

    fn run(mut self) -> Result<SimReport, String> {
        for instance in 0..self.instances.len() {
            if self.instances[instance].behavior != Behavior::Silent {
                self.start(instance, Restore::default());
            }
            let offset = self.rng.range(0, TICK_MS);
            self.schedule(offset, SimEvent::Tick { instance });
        }
        while let Some(((at_ms, _), event)) = self.queue.pop_first() {
            if at_ms > self.end_ms {
                break;
            }
            if self.committed_at_heal.is_none() && at_ms >= self.healed_at_ms {
                self.committed_at_heal = Some(self.honest_committed_max());
            }
            self.now_ms = at_ms;
            self.process(event);
        }
        Ok(self.finish())
    }

    fn is_honest(&self, instance: usize) -> bool {
        self.instances[instance].behavior == Behavior::Honest
    }

    fn honest_committed_max(&self) -> Height {
        (0..self.instances.len())
            .filter(|i| self.is_honest(*i))
            .map(|i| self.instances[i].ledger.tip_height())
            .max()
            .unwrap_or(0)
    }

    fn log(&mut self, kind: u8, instance: usize, detail: &[u8]) {
        self.log.update(self.now_ms.to_le_bytes());
        self.log.update([kind]);
        self.log.update((instance as u64).to_le_bytes());
        self.log.update(sha256(&[detail]));
    }

    fn start(&mut self, instance: usize, restore: Restore) {
        let inst = &mut self.instances[instance];
        let validator = inst.validator;
        let key = self.keys[validator as usize].clone();
        inst.incarnation += 1;
        inst.core = Some(Core::new(
            self.core_config.clone(),
            self.validator_set.clone(),
            validator,
            key,
            restore,
        ));
        self.feed(instance, Event::Start);
    }

    fn process(&mut self, event: SimEvent) {
        match event {
            SimEvent::Deliver { to, from, bytes } => {
                self.log(1, to, &bytes);
                if self.instances[to].core.is_none() {
                    return;
                }
                self.delivered += 1;
                if self.instances[to].behavior == Behavior::Replayer {
                    let received = &mut self.instances[to].received;
                    if received.len() >= REPLAY_BUFFER_MAX {
                        received.pop_front();
                    }
                    received.push_back(bytes.clone());
                }
                self.feed(to, Event::Received { from, bytes });
            }
            SimEvent::Timer { instance, incarnation, round } => {
                self.log(2, instance, &round.to_le_bytes());
                if self.instances[instance].incarnation == incarnation {
                    self.feed(instance, Event::Timeout { round });
                }
            }
            SimEvent::Tick { instance } => {
                self.schedule(self.now_ms + TICK_MS, SimEvent::Tick { instance });
                if self.instances[instance].core.is_some() {
                    self.misbehave(instance);
                    self.feed(instance, Event::Tick);
                }
            }
            SimEvent::Persisted { instance, incarnation, ticket } => {
                self.log(3, instance, &ticket.record().round.to_le_bytes());
                if self.instances[instance].incarnation == incarnation
                    && self.instances[instance].core.is_some()
                {
                    self.feed(instance, Event::VotePersisted(ticket));
                }
            }
            SimEvent::Crash { instance } => {
                self.log(4, instance, &[]);
                let inst = &mut self.instances[instance];
                inst.core = None;
                inst.incarnation += 1;
                inst.execution = SimExecution::default();
            }
            SimEvent::Restart { instance } => {
                self.log(5, instance, &[]);
                let inst = &mut self.instances[instance];
                // Execution replays the ledger on restart.
                let blocks = inst.ledger.blocks().to_vec();
                for block in &blocks {
                    let result = SimExecution::executed(&block.header.id());
                    inst.execution.results.insert(block.header.height, (0, result));
                }
                // What a node restores: the tip and the window below it
                // (no root QC here; the peers show one).
                let below = blocks.len().saturating_sub(1);
                let restore = Restore {
                    last_vote: inst.journal.last(),
                    ledger_tip: blocks.last().cloned(),
                    ledger_ancestors: blocks[below.saturating_sub(4)..below].to_vec(),
                    root_qc: None,
                };
                self.start(instance, restore);
            }
        }
    }

    fn feed(&mut self, instance: usize, event: Event) {
        let now_ms = self.now_ms;
        let inst = &mut self.instances[instance];
        inst.execution.now_ms = now_ms;
        let mut payloads = SimPayloads { instance };
        let Some(core) = inst.core.as_mut() else { return };
        let actions = core.handle(event, &inst.execution, &mut payloads);
        for action in actions {
            self.act(instance, action);
        }
    }

    fn act(&mut self, instance: usize, action: Action<Ed25519>) {
        match action {
            Action::Send { to, message } => self.send_message(instance, Some(to), message),
            Action::Broadcast(message) => self.send_message(instance, None, message),
            Action::PersistVote(ticket) => {
                let inst = &mut self.instances[instance];
                // The in-memory journal cannot fail; a file journal's error
                // would stop the vote here, before it is sent.
                if inst.journal.append(ticket.record()).is_ok() {
                    let incarnation = inst.incarnation;
                    self.schedule(
                        self.now_ms + FSYNC_MS,
                        SimEvent::Persisted { instance, incarnation, ticket },
                    );
                }
            }
            Action::ArmTimer { round, after_ms } => {
                let incarnation = self.instances[instance].incarnation;
                self.schedule(
                    self.now_ms + after_ms,
                    SimEvent::Timer { instance, incarnation, round },
                );
            }
            // Payloads here never ask for a minimum block time.
            Action::TickAfter { .. } => {}
            Action::Certified { .. } => {}
            Action::Commit(block) => {
                let id = block.header.id();
                self.log(6, instance, &id.0);
                let delay = self.rng.range(0, 150);
                let inst = &mut self.instances[instance];
                let result = SimExecution::executed(&id);
                inst.execution.results.insert(block.header.height, (self.now_ms + delay, result));
                if inst.ledger.append(&block).is_err() {
                    let height = block.header.height;
                    self.ledger_refusals.push(Violation::Validity {
                        instance,
                        height,
                        reason: "ledger refused the commit",
                    });
                }
                if self.is_honest(instance) {
                    self.observations.commit(instance, *block);
                }
            }
            Action::CommitProof { height, proof } => {
                if !self.is_honest(instance) {
                    return;
                }
                let committed = self.instances[instance].ledger.get(height).ok().flatten();
                let verified = committed.is_some_and(|block| {
                    let epoch = self.core_config.epoch;
                    crate::follow::verify_commit_proof(
                        &self.validator_set,
                        epoch,
                        &block.header,
                        &proof,
                    )
                    .is_ok()
                });
                if verified {
                    self.commit_proofs_verified += 1;
                } else {
                    self.ledger_refusals.push(Violation::Validity {
                        instance,
                        height,
                        reason: "commit proof does not prove the committed block",
                    });
                }
            }
            Action::ServeFromLedger { to, height, id } => {
                if let Ok(Some(block)) = self.instances[instance].ledger.get(height)
                    && block.header.id() == id
                {
                    let response = BlockResponse {
                        header: block.header,
                        payload: block.payload,
                        justify: None,
                    };
                    self.send_message(
                        instance,
                        Some(to),
                        Message::BlockResponse(Box::new(response)),
                    );
                }
            }
            Action::Evidence(_) => self.evidence += 1,
        }
    }

    /// Put a core's message on the wire, rewritten by Byzantine behaviors.
    fn send_message(
        &mut self,
        instance: usize,
        to: Option<ValidatorIndex>,
        message: Message<Ed25519>,
    ) {
        let inst = &self.instances[instance];
        let (validator, behavior) = (inst.validator, inst.behavior);
        match &message {
            Message::Proposal(proposal) => {
                self.observations.proposals.insert(proposal.header.id(), validator);
                if behavior == Behavior::Equivocator && to.is_none() {
                    let mut other = proposal.clone();
                    other.payload.extend_from_slice(b" (equivocated)");
                    other.header.payload_hash = sha256(&[&other.payload]);
                    let other_id = other.header.id();
                    other.signature =
                        Ed25519::sign(&self.keys[validator as usize], &proposal_message(&other_id));
                    self.observations.proposals.insert(other_id, validator);
                    let first = message.to_bytes();
                    let second = Message::Proposal(other).to_bytes();
                    // Halves get different blocks; every third validator gets
                    // both, so the equivocation is seen and kept as evidence.
                    for target in 0..self.config.validators as ValidatorIndex {
                        if target != validator {
                            let bytes =
                                if target % 2 == 0 { first.clone() } else { second.clone() };
                            self.transmit(instance, target, bytes);
                            if target % 3 == 0 {
                                let bytes =
                                    if target % 2 == 0 { second.clone() } else { first.clone() };
                                self.transmit(instance, target, bytes);
                            }
                        }
                    }
                    return;
                }
            }
            Message::Vote(vote) => {
                if behavior == Behavior::Honest {
                    self.observations.vote(vote.signer, vote.round, vote.block);
                }
                if behavior == Behavior::DoubleVoter
                    && let Some(to) = to
                {
                    let block = BlockId(sha256(&[b"other", &vote.block.0]));
                    let other = Vote {
                        signature: Ed25519::sign(
                            &self.keys[validator as usize],
                            &vote_message(vote.epoch, vote.round, &block),
                        ),
                        block,
                        ..vote.clone()
                    };
                    self.transmit(instance, to, Message::Vote(other).to_bytes());
                }
            }
            _ => {}
        }
        let bytes = message.to_bytes();
        match to {
            Some(to) => self.transmit(instance, to, bytes),
            None => {
                for target in 0..self.config.validators as ValidatorIndex {
                    if target != validator {
                        self.transmit(instance, target, bytes.clone());
                    }
                }
            }
        }
    }

    /// Extra traffic of the noisy Byzantine behaviors, once per tick.
    fn misbehave(&mut self, instance: usize) {
        let (validator, behavior) =
            (self.instances[instance].validator, self.instances[instance].behavior);
        let round = self.instances[instance].core.as_ref().map_or(0, |core| core.round());
        let n = self.config.validators as ValidatorIndex;
        match behavior {
            Behavior::Spammer => {
                let signer = self.rng.range(0, n as u64) as ValidatorIndex;
                let block = BlockId(self.rng.bytes(32).try_into().unwrap_or([0; 32]));
                let junk: [u8; 64] = self.rng.bytes(64).try_into().unwrap_or([0; 64]);
                let vote = Vote::<Ed25519> {
                    epoch: self.core_config.epoch,
                    round,
                    block,
                    signer,
                    signature: ed25519_dalek::Signature::from_bytes(&junk),
                };
                let bytes = Message::Vote(vote).to_bytes();
                for target in 0..n {
                    if target != validator {
                        self.transmit(instance, target, bytes.clone());
                    }
                }
            }
            Behavior::Replayer => {
                let received = &self.instances[instance].received;
                if received.len() > 8 {
                    let pick = self.rng.range(0, (received.len() / 2) as u64) as usize;
                    let bytes = received[pick].clone();
                    for target in 0..n {
                        if target != validator {
                            self.transmit(instance, target, bytes.clone());
                        }
                    }
                }
            }
            Behavior::Oversized => {
                let target = self.rng.range(0, n as u64) as ValidatorIndex;
                if target != validator {
                    let len = self.rng.range(1, 512) as usize;
                    let junk = self.rng.bytes(len);
                    self.transmit(instance, target, junk);
                    if self.rng.chance(50) {
                        self.transmit(instance, target, vec![2u8; MESSAGE_BYTES_MAX + 1]);
                    }
                }
            }
            _ => {}
        }
    }

    /// Deliver to every instance of validator `to` (two for Twins), through
    /// drops, partitions and latency.
    fn transmit(&mut self, from_instance: usize, to: ValidatorIndex, bytes: Vec<u8>) {
        let from = self.instances[from_instance].validator;
        let targets: Vec<usize> =
            (0..self.instances.len()).filter(|i| self.instances[*i].validator == to).collect();
        for target in targets {
            if target == from_instance {
                continue;
            }
            if let Some(partition) = &self.partition
                && self.now_ms >= partition.from_ms
                && self.now_ms < partition.until_ms
                && partition.group[from_instance] != partition.group[target]
            {
                continue;
            }
            if self.drop_per_mille > 0 && self.rng.chance(self.drop_per_mille) {
                continue;
            }
            let delay = self.latency_ms + self.rng.range(0, self.jitter_ms + 1);
            self.schedule(
                self.now_ms + delay,
                SimEvent::Deliver { to: target, from, bytes: bytes.clone() },
            );
        }
    }

    fn finish(mut self) -> SimReport {
        let mut violations = std::mem::take(&mut self.ledger_refusals);
        self.observations.check_safety(&self.weights, &mut violations);
        let honest: Vec<ValidatorIndex> = self
            .instances
            .iter()
            .filter(|i| i.behavior == Behavior::Honest)
            .map(|i| i.validator)
            .collect();
        let journals: Vec<(ValidatorIndex, &[_])> = self
            .instances
            .iter()
            .filter(|i| i.behavior == Behavior::Honest)
            .map(|i| (i.validator, i.journal.records()))
            .collect();
        self.observations.check_double_votes(&honest, &journals, &mut violations);
        // Liveness: only meaningful within the fault bound.
        let committed_at_end = self.honest_committed_max();
        let committed_at_heal = self.committed_at_heal.unwrap_or(0);
        if self.config.scenario != Scenario::TwinsSplit {
            let lagging: Vec<usize> = (0..self.instances.len())
                .filter(|i| {
                    self.is_honest(*i) && self.instances[*i].ledger.tip_height() < committed_at_heal
                })
                .collect();
            if committed_at_end < committed_at_heal + self.config.liveness_commits_min
                || !lagging.is_empty()
            {
                violations.push(Violation::Liveness {
                    healed_at_ms: self.healed_at_ms,
                    committed_at_heal,
                    committed_at_end,
                    lagging,
                });
            }
        }
        let mut drops_by_reason = BTreeMap::new();
        for core in self.instances.iter().filter_map(|i| i.core.as_ref()) {
            for (reason, count) in core.drops().iter() {
                *drops_by_reason.entry(reason.name()).or_insert(0) += count;
            }
        }
        let drops_total = drops_by_reason.values().sum();
        let round_max = self
            .instances
            .iter()
            .filter_map(|i| i.core.as_ref())
            .map(|c| c.round())
            .max()
            .unwrap_or(0);
        for (instance, blocks) in &self.observations.commits {
            self.log.update((*instance as u64).to_le_bytes());
            self.log.update((blocks.len() as u64).to_le_bytes());
        }
        SimReport {
            seed: self.config.seed,
            log_hash: self.log.finalize().into(),
            violations,
            committed_height_max: committed_at_end,
            messages_delivered: self.delivered,
            drops_total,
            drops_by_reason,
            round_max,
            evidence_total: self.evidence,
            commit_proofs_verified: self.commit_proofs_verified,
            virtual_ms: self.now_ms,
        }
    }
}
