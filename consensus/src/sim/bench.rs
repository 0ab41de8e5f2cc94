//! The timed simulator behind `wake bench consensus`: commit latency and
//! blocks per second of honest validators on the happy path.
//!
//! # Model
//!
//! `n` honest [`Core`]s talk over a virtual network with a fixed one-way
//! latency `L` (plus an optional uniform jitter), no drops, no faults.
//! Each validator is a **single server**: its inputs (messages, timers,
//! ticks, journal completions) wait in one FIFO inbox, and it handles the
//! next one only when it is free. Handling an input costs what
//! [`CpuCost`] says, and that cost is charged to the validator's virtual
//! clock: the messages a handler emits leave when it *finishes*, and the
//! validator is busy until then. With [`CpuCost::Measured`] the cost is
//! the real time `Core::handle` took (signing, signature and batch
//! verification, hashing) plus the encoding of the messages it emitted, so
//!
//! * at `L = 0` the figures are CPU-bound: with many validators the leader
//!   verifying votes one by one and every voter batch-verifying the QC set
//!   the pace;
//! * at `L > 0` they are latency-bound: a round is two message delays (the
//!   proposal out, the votes to the next leader), plus the CPU on its
//!   critical path.
//!
//! A vote leaves only after its journal record is durable
//! ([`BenchConfig::journal_us`] models that write). Execution is taken as
//! instant: a validator's result for a block is ready the moment it
//! commits it, so the delayed-result check (block `h` carries the result
//! of `h-K`) never makes a voter wait. A driver keeps one round timer per
//! validator: arming a new one cancels the old (the core ignores a timeout
//! for any round but its current one, so this changes nothing but the
//! cost of stale timers). Periodic ticks are delivered as a node would.
//!
//! # What is measured
//!
//! * **Commit latency**: for every committed block and every validator,
//!   the time the validator committed it minus the time its proposal left
//!   the leader; in milliseconds and, when `L > 0`, in message delays
//!   (divided by the mean one-way delay `L + jitter/2`). On this 2-chain
//!   protocol the happy path gives 4 delays at one validator (the leader of
//!   round `r+2`, which forms the QC of the child and so sees the commit
//!   first) and 5 at every other (they learn that QC from the leader's next
//!   proposal): proposal (1), votes to leader `r+1` (2), its proposal
//!   carrying the QC (3), votes to leader `r+2` (4), its proposal carrying
//!   the QC of the child (5). The QC itself (speculative finality,
//!   [`crate::Action::Certified`]) is reported too: 2 delays at the next
//!   leader, 3 elsewhere.
//! * **Blocks per second**: heights final at *every* validator, divided by
//!   the virtual time between the first and the last of them.
//! * Messages, bytes and charged CPU per block over the same window.
//!
//! The first [`BenchConfig::warmup_blocks`] heights are left out. A run
//! ends when it has measured at least [`BenchConfig::commits_min`] blocks
//! over at least [`BenchConfig::measure_ms_min`] virtual milliseconds.
//!
//! With [`CpuCost::None`] or [`CpuCost::Fixed`] a run is a function of its
//! configuration (jitter comes from [`BenchConfig::seed`]); with
//! [`CpuCost::Measured`] it is not, which is why this driver is separate
//! from the deterministic simulator in [`super`], whose behavior and log
//! hash it leaves alone.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::Instant;

use thiserror::Error;

use super::SimExecution;
use super::rng::Rng;
use crate::codec::{Encode, PAYLOAD_BYTES_MAX};
use crate::core::{Action, Config, Core, Event, PayloadSource};
use crate::crypto::{Ed25519, Scheme, VALIDATORS_MAX, ed25519_key_from_seed};
use crate::journal::VoteTicket;
use crate::types::{BlockId, Height, Message, Round, ValidatorIndex};
use crate::validators::{Validator, ValidatorSet};

/// What handling one input costs a validator, in virtual time.
#[derive(Clone, Copy, Debug)]
pub enum CpuCost {
    /// Free: only the network moves the clock (deterministic).
    None,
    /// The same number of nanoseconds for every handled input
    /// (deterministic; for tests of the server model).
    Fixed { ns: u64 },
    /// The real cost, read from `clock` (nanoseconds, monotonic) before and
    /// after each call. [`wall_clock_ns`] is the portable choice; a thread
    /// CPU-time clock leaves out the time other processes took the core.
    Measured { clock: fn() -> u64 },
}

impl CpuCost {
    /// Short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            CpuCost::None => "none",
            CpuCost::Fixed { .. } => "fixed",
            CpuCost::Measured { .. } => "measured",
        }
    }
}

/// Nanoseconds of wall time since the first call (monotonic).
pub fn wall_clock_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let elapsed = EPOCH.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// One timed run.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub validators: usize,
    /// One-way latency of every link.
    pub latency_us: u64,
    /// Uniform extra delay in `[0, jitter_us]` per message.
    pub jitter_us: u64,
    pub cost: CpuCost,
    /// Time to make a vote's journal record durable.
    pub journal_us: u64,
    /// Bytes of every block's payload.
    pub payload_bytes: usize,
    /// Heights left out at the start.
    pub warmup_blocks: u64,
    /// Blocks the measurement needs, at least.
    pub commits_min: u64,
    /// Virtual milliseconds the measurement needs, at least.
    pub measure_ms_min: u64,
    /// A run that has not finished after this much virtual time failed.
    pub virtual_ms_max: u64,
    pub tick_ms: u64,
    pub round_timeout_ms: u64,
    /// Execution time of one block at every validator: a block's result is
    /// ready this long after both its commit and the previous block's
    /// result (one execution thread). 0: ready at commit.
    pub execution_us: u64,
    /// Keys and jitter.
    pub seed: u64,
}

impl BenchConfig {
    /// `validators` at `latency_us`, measured CPU by the wall clock, the
    /// other settings at their defaults.
    pub fn new(validators: usize, latency_us: u64) -> Self {
        Self {
            validators,
            latency_us,
            jitter_us: 0,
            cost: CpuCost::Measured { clock: wall_clock_ns },
            journal_us: 0,
            payload_bytes: 0,
            warmup_blocks: 10,
            commits_min: 200,
            measure_ms_min: 5_000,
            virtual_ms_max: 600_000,
            tick_ms: 50,
            round_timeout_ms: 1_000,
            execution_us: 0,
            seed: 0,
        }
    }

    /// Mean one-way delay of a message, in nanoseconds.
    fn message_delay_ns(&self) -> f64 {
        (self.latency_us as f64 + self.jitter_us as f64 / 2.0) * 1_000.0
    }
}

/// Why a run could not be carried out.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BenchError {
    #[error("{validators} validators: the timed simulator runs 2 to {max}")]
    Validators { validators: usize, max: usize },
    #[error("zero latency and no CPU cost: nothing would move the virtual clock")]
    ClockCannotMove,
    #[error("commits_min must be at least 2 (a rate needs two heights)")]
    TooFewCommits,
    #[error("payload of {bytes} bytes: the wire format carries at most {max}")]
    Payload { bytes: usize, max: usize },
    #[error("{what} of {us} µs: at most {max} µs", max = DELAY_US_MAX)]
    DelayTooLong { what: &'static str, us: u64 },
    #[error("tick_ms and round_timeout_ms must be at least 1")]
    ZeroInterval,
    #[error("invalid validator set: {0}")]
    ValidatorSet(String),
    #[error(
        "no progress: {final_height} heights final at every validator after {virtual_ms} virtual ms \
         (limit {virtual_ms_max} ms)"
    )]
    Stalled { final_height: Height, virtual_ms: u64, virtual_ms_max: u64 },
}

/// Nearest-rank percentiles of a sample set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    pub count: u64,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Spread {
    /// Percentiles of `values` (all zero when empty).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable_by(f64::total_cmp);
        let len = values.len();
        let at = |q: f64| values[((len as f64 * q).ceil() as usize).clamp(1, len) - 1];
        Self {
            count: len as u64,
            min: values[0],
            p50: at(0.50),
            p99: at(0.99),
            max: values[len - 1],
            mean: values.iter().sum::<f64>() / len as f64,
        }
    }

    fn scaled(&self, divisor: f64) -> Self {
        Self {
            count: self.count,
            min: self.min / divisor,
            p50: self.p50 / divisor,
            p99: self.p99 / divisor,
            max: self.max / divisor,
            mean: self.mean / divisor,
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub config: BenchConfig,
    /// Heights measured (final at every validator, after the warm-up).
    pub blocks: u64,
    /// Virtual time between the first and the last measured height.
    pub measured_ms: f64,
    pub blocks_per_s: f64,
    /// Proposal sent → committed, one sample per (block, validator).
    pub commit_latency_ms: Spread,
    /// The same in message delays; `None` at zero latency.
    pub commit_latency_delays: Option<Spread>,
    /// Proposal sent → a QC for it known, one sample per (block, validator).
    pub certify_latency_ms: Spread,
    pub certify_latency_delays: Option<Spread>,
    /// Messages (one per receiver) and their encoded bytes, per block.
    pub messages_per_block: f64,
    pub bytes_per_block: f64,
    /// CPU charged per block, summed over validators.
    pub cpu_us_per_block: f64,
    /// The busiest validator's share of the window spent handling inputs.
    pub busy_max_pct: f64,
    /// Timeouts broadcast in the window (0 on a healthy happy path).
    pub timeouts: u64,
    /// Rounds the measured blocks span: equal to `blocks` when no round
    /// failed (a failed round leaves a gap in the committed rounds).
    pub rounds: u64,
    /// Block requests served from a ledger, which this driver does not keep
    /// (0 on the happy path).
    pub ledger_requests: u64,
    pub virtual_ms: u64,
    /// Real time the run took.
    pub wall_ms: u64,
}

/// Progress of a run, passed to the caller's callback.
#[derive(Clone, Copy, Debug)]
pub struct BenchProgress {
    pub measured_blocks: u64,
    pub commits_min: u64,
    pub measured_ms: u64,
    pub measure_ms_min: u64,
}

/// Run `config`; `progress` is called each time a new height is final at
/// every validator.
pub fn run_bench(
    config: &BenchConfig,
    progress: &mut dyn FnMut(BenchProgress),
) -> Result<BenchReport, BenchError> {
    let started = Instant::now();
    let mut bench = Bench::new(config)?;
    let (start, end) = bench.run(progress)?;
    Ok(bench.report(&start, &end, started.elapsed().as_millis() as u64))
}

/// The longest latency, jitter, journal write, tick or round timeout a
/// run accepts (one minute): beyond it nothing is a happy path, and every
/// virtual time stays far from overflowing.
pub const DELAY_US_MAX: u64 = 60_000_000;
const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
/// Execution results kept per validator: the core asks for `h-K`, K = 3.
const RESULTS_RETAINED: u64 = 16;

enum Input {
    Start,
    Message {
        from: ValidatorIndex,
        bytes: Vec<u8>,
    },
    Timer {
        round: Round,
        generation: u64,
    },
    Tick,
    /// Our result of a committed block is ready (a tick that is not
    /// periodic): what the node's execution thread publishing it does.
    ExecutionReady,
    Persisted(VoteTicket),
}

enum Scheduled {
    /// An input reaches a validator's inbox.
    Arrive { to: usize, input: Input },
    /// A validator is free and its inbox is not empty.
    Wake { validator: usize },
}

struct Server {
    core: Core<Ed25519>,
    execution: SimExecution,
    inbox: VecDeque<Input>,
    busy_until_ns: u64,
    wake_scheduled: bool,
    /// Generation of the live round timer; older ones are cancelled.
    timer_generation: u64,
    busy_ns: u64,
    /// When the last committed block's result is ready.
    execution_ready_ns: u64,
}

/// Counters whose change over the measured window is reported.
#[derive(Clone, Copy, Default)]
struct Counters {
    messages: u64,
    bytes: u64,
    timeouts: u64,
}

struct Bench {
    config: BenchConfig,
    servers: Vec<Server>,
    queue: BTreeMap<(u64, u64), Scheduled>,
    seq: u64,
    now_ns: u64,
    rng: Rng,
    payloads: FixedPayloads,
    proposed_ns: HashMap<BlockId, u64>,
    /// Per height: validators that committed it so far.
    commit_count: BTreeMap<Height, usize>,
    /// Latency samples tagged with the block's height (the window is known
    /// only at the end).
    commit_samples: Vec<(Height, u64)>,
    certify_samples: Vec<(Height, u64)>,
    final_height: Height,
    window_start: Option<WindowMark>,
    window_end: Option<WindowMark>,
    counters: Counters,
    ledger_requests: u64,
}

/// The state of the run when a height became final everywhere.
struct WindowMark {
    height: Height,
    /// The round of the block at `height`.
    round: Round,
    at_ns: u64,
    counters: Counters,
    busy_ns: Vec<u64>,
}

struct FixedPayloads {
    bytes: usize,
}

impl PayloadSource for FixedPayloads {
    fn payload(
        &mut self,
        round: Round,
        _height: Height,
        bytes_max: usize,
        _pending: &[crate::core::PendingBlock<'_>],
    ) -> Vec<u8> {
        vec![round as u8; self.bytes.min(bytes_max)]
    }
}

impl Bench {
    fn new(config: &BenchConfig) -> Result<Self, BenchError> {
        let n = config.validators;
        if !(2..=VALIDATORS_MAX).contains(&n) {
            return Err(BenchError::Validators { validators: n, max: VALIDATORS_MAX });
        }
        if config.latency_us == 0 && config.jitter_us == 0 && matches!(config.cost, CpuCost::None) {
            return Err(BenchError::ClockCannotMove);
        }
        if config.commits_min < 2 {
            return Err(BenchError::TooFewCommits);
        }
        if config.payload_bytes > PAYLOAD_BYTES_MAX {
            return Err(BenchError::Payload {
                bytes: config.payload_bytes,
                max: PAYLOAD_BYTES_MAX,
            });
        }
        for (what, us) in [
            ("latency", config.latency_us),
            ("jitter", config.jitter_us),
            ("journal write", config.journal_us),
            ("tick", config.tick_ms.saturating_mul(1_000)),
            ("round timeout", config.round_timeout_ms.saturating_mul(1_000)),
        ] {
            if us > DELAY_US_MAX {
                return Err(BenchError::DelayTooLong { what, us });
            }
        }
        if config.tick_ms == 0 || config.round_timeout_ms == 0 {
            return Err(BenchError::ZeroInterval);
        }
        let keys: Vec<_> = (0..n)
            .map(|index| {
                let mut seed = [0u8; 32];
                seed[..8].copy_from_slice(&(index as u64).to_le_bytes());
                seed[8..16].copy_from_slice(&config.seed.to_le_bytes());
                seed[16..21].copy_from_slice(b"bench");
                ed25519_key_from_seed(seed)
            })
            .collect();
        let validator_set = ValidatorSet::new(
            keys.iter()
                .map(|key| Validator { public_key: Ed25519::public_key(key), stake: 1 })
                .collect(),
        )
        .map_err(|error| BenchError::ValidatorSet(error.to_string()))?;
        let core_config = Config {
            epoch: 1,
            round_timeout_ms: config.round_timeout_ms,
            round_timeout_max_ms: config.round_timeout_ms.saturating_mul(8),
            ..Config::default()
        };
        let servers = keys
            .into_iter()
            .enumerate()
            .map(|(index, key)| Server {
                core: Core::new(
                    core_config.clone(),
                    validator_set.clone(),
                    index as ValidatorIndex,
                    key,
                    Default::default(),
                ),
                execution: SimExecution::default(),
                inbox: VecDeque::new(),
                busy_until_ns: 0,
                wake_scheduled: false,
                timer_generation: 0,
                busy_ns: 0,
                execution_ready_ns: 0,
            })
            .collect();
        Ok(Self {
            config: config.clone(),
            servers,
            queue: BTreeMap::new(),
            seq: 0,
            now_ns: 0,
            rng: Rng::new(config.seed),
            payloads: FixedPayloads { bytes: config.payload_bytes },
            proposed_ns: HashMap::new(),
            commit_count: BTreeMap::new(),
            commit_samples: Vec::new(),
            certify_samples: Vec::new(),
            final_height: 0,
            window_start: None,
            window_end: None,
            counters: Counters::default(),
            ledger_requests: 0,
        })
    }

    /// Run until the window is measured; returns its two ends.
    fn run(
        &mut self,
        progress: &mut dyn FnMut(BenchProgress),
    ) -> Result<(WindowMark, WindowMark), BenchError> {
        let tick_ns = self.config.tick_ms.saturating_mul(NS_PER_MS);
        for validator in 0..self.servers.len() {
            self.schedule(0, Scheduled::Arrive { to: validator, input: Input::Start });
            // Ticks spread over the period, as independent nodes' would be.
            let offset = self.rng.range(0, tick_ns);
            self.schedule(offset, Scheduled::Arrive { to: validator, input: Input::Tick });
        }
        let deadline_ns = self.config.virtual_ms_max.saturating_mul(NS_PER_MS);
        let mut reported_height = 0;
        while self.window_end.is_none() {
            let Some(((at_ns, _), event)) = self.queue.pop_first() else { break };
            if at_ns > deadline_ns {
                break;
            }
            self.now_ns = at_ns;
            match event {
                Scheduled::Arrive { to, input } => self.arrive(to, input),
                Scheduled::Wake { validator } => self.wake(validator),
            }
            if self.final_height > reported_height {
                reported_height = self.final_height;
                if let Some(start) = &self.window_start {
                    progress(BenchProgress {
                        measured_blocks: self.final_height - start.height,
                        commits_min: self.config.commits_min,
                        measured_ms: self.now_ns.saturating_sub(start.at_ns) / NS_PER_MS,
                        measure_ms_min: self.config.measure_ms_min,
                    });
                }
            }
        }
        match (self.window_start.take(), self.window_end.take()) {
            (Some(start), Some(end)) => Ok((start, end)),
            _ => Err(BenchError::Stalled {
                final_height: self.final_height,
                virtual_ms: self.now_ns / NS_PER_MS,
                virtual_ms_max: self.config.virtual_ms_max,
            }),
        }
    }

    fn schedule(&mut self, at_ns: u64, event: Scheduled) {
        self.seq += 1;
        self.queue.insert((at_ns, self.seq), event);
    }

    fn arrive(&mut self, to: usize, input: Input) {
        match &input {
            Input::Tick => {
                let next_ns = self.now_ns + self.config.tick_ms.saturating_mul(NS_PER_MS);
                self.schedule(next_ns, Scheduled::Arrive { to, input: Input::Tick });
            }
            // A cancelled timer never reaches the core.
            Input::Timer { generation, .. } if *generation != self.servers[to].timer_generation => {
                return;
            }
            _ => {}
        }
        let server = &mut self.servers[to];
        server.inbox.push_back(input);
        if !server.wake_scheduled {
            server.wake_scheduled = true;
            let at_ns = server.busy_until_ns.max(self.now_ns);
            self.schedule(at_ns, Scheduled::Wake { validator: to });
        }
    }

    /// Handle the validator's next input; what it emits leaves when done.
    fn wake(&mut self, validator: usize) {
        let server = &mut self.servers[validator];
        server.wake_scheduled = false;
        let Some(input) = server.inbox.pop_front() else { return };
        let event = match input {
            Input::Start => Event::Start,
            Input::Message { from, bytes } => Event::Received { from, bytes },
            Input::Timer { round, .. } => Event::Timeout { round },
            Input::Tick | Input::ExecutionReady => Event::Tick,
            Input::Persisted(ticket) => Event::VotePersisted(ticket),
        };
        let (clock_before, fixed_ns) = match self.config.cost {
            CpuCost::None => (None, 0),
            CpuCost::Fixed { ns } => (None, ns),
            CpuCost::Measured { clock } => (Some((clock, clock())), 0),
        };
        server.execution.now_ms = self.now_ns / NS_PER_MS;
        let actions = server.core.handle(event, &server.execution, &mut self.payloads);
        // Encoding is the validator's work too: inside the clock.
        let encoded: Vec<(Action<Ed25519>, Vec<u8>)> = actions
            .into_iter()
            .map(|action| {
                let bytes = match &action {
                    Action::Send { message, .. } | Action::Broadcast(message) => message.to_bytes(),
                    _ => Vec::new(),
                };
                (action, bytes)
            })
            .collect();
        let cost_ns = match clock_before {
            Some((clock, before)) => clock().saturating_sub(before),
            None => fixed_ns,
        };
        let done_ns = self.now_ns + cost_ns;
        server.busy_until_ns = done_ns;
        server.busy_ns += cost_ns;
        if !server.inbox.is_empty() {
            server.wake_scheduled = true;
            self.schedule(done_ns, Scheduled::Wake { validator });
        }
        for (action, bytes) in encoded {
            self.dispatch(validator, done_ns, action, bytes);
        }
    }

    /// Carry out one action of `validator`, finished at `at_ns`; `bytes`
    /// is the encoded message of a send or broadcast.
    fn dispatch(&mut self, validator: usize, at_ns: u64, action: Action<Ed25519>, bytes: Vec<u8>) {
        match action {
            Action::Send { to, message } => {
                self.note_sent(at_ns, &message);
                self.transmit(validator, to as usize, at_ns, bytes);
            }
            Action::Broadcast(message) => {
                self.note_sent(at_ns, &message);
                for to in 0..self.servers.len() {
                    if to != validator {
                        self.transmit(validator, to, at_ns, bytes.clone());
                    }
                }
            }
            Action::PersistVote(ticket) => {
                let at_ns = at_ns + self.config.journal_us.saturating_mul(NS_PER_US);
                let input = Input::Persisted(ticket);
                self.schedule(at_ns, Scheduled::Arrive { to: validator, input });
            }
            Action::ArmTimer { round, after_ms } => {
                let server = &mut self.servers[validator];
                server.timer_generation += 1;
                let input = Input::Timer { round, generation: server.timer_generation };
                let at_ns = at_ns + after_ms.saturating_mul(NS_PER_MS);
                self.schedule(at_ns, Scheduled::Arrive { to: validator, input });
            }
            // Payloads here never ask for a minimum block time.
            Action::TickAfter { .. } => {}
            // Followers are not simulated here.
            Action::CommitProof { .. } => {}
            Action::Certified { height, block, .. } => {
                if let Some(proposed_ns) = self.proposed_ns.get(&block) {
                    self.certify_samples.push((height, at_ns.saturating_sub(*proposed_ns)));
                }
            }
            Action::Commit(block) => {
                let (height, id) = (block.header.height, block.header.id());
                self.commit(validator, at_ns, (height, block.header.round), id);
            }
            Action::ServeFromLedger { .. } => self.ledger_requests += 1,
            // Only Byzantine validators cause evidence; there are none here.
            Action::Evidence(_) => {}
        }
    }

    fn note_sent(&mut self, at_ns: u64, message: &Message<Ed25519>) {
        match message {
            Message::Proposal(proposal) => {
                self.proposed_ns.entry(proposal.header.id()).or_insert(at_ns);
            }
            Message::Timeout(_) => self.counters.timeouts += 1,
            _ => {}
        }
    }

    fn transmit(&mut self, from: usize, to: usize, at_ns: u64, bytes: Vec<u8>) {
        let delay_us = self.config.latency_us + self.rng.range(0, self.config.jitter_us + 1);
        self.counters.messages += 1;
        self.counters.bytes += bytes.len() as u64;
        let input = Input::Message { from: from as ValidatorIndex, bytes };
        self.schedule(at_ns + delay_us.saturating_mul(NS_PER_US), Scheduled::Arrive { to, input });
    }

    fn commit(
        &mut self,
        validator: usize,
        at_ns: u64,
        (height, round): (Height, Round),
        id: BlockId,
    ) {
        let execution_ns = self.config.execution_us.saturating_mul(NS_PER_US);
        let server = &mut self.servers[validator];
        let ready_ns = at_ns.max(server.execution_ready_ns) + execution_ns;
        server.execution_ready_ns = ready_ns;
        // Milliseconds, rounded up: never ready before the model says; the
        // validator is woken then. Without execution cost: ready at commit.
        let ready_ms =
            if execution_ns == 0 { at_ns / NS_PER_MS } else { ready_ns.div_ceil(NS_PER_MS) };
        let execution = &mut server.execution;
        execution.results.insert(height, (ready_ms, SimExecution::executed(&id)));
        while let Some(entry) = execution.results.first_entry()
            && *entry.key() + RESULTS_RETAINED < height
        {
            entry.remove();
        }
        if execution_ns > 0 {
            let at = ready_ms.saturating_mul(NS_PER_MS);
            self.schedule(at, Scheduled::Arrive { to: validator, input: Input::ExecutionReady });
        }
        if let Some(proposed_ns) = self.proposed_ns.get(&id) {
            self.commit_samples.push((height, at_ns.saturating_sub(*proposed_ns)));
        }
        let count = self.commit_count.entry(height).or_insert(0);
        *count += 1;
        if *count < self.servers.len() {
            return;
        }
        // Final everywhere. Heights finalize in order: each validator
        // commits a chain in height order, and all commit the same chain.
        self.commit_count.remove(&height);
        self.proposed_ns.remove(&id);
        self.final_height = self.final_height.max(height);
        self.mark_window(height, round, at_ns);
    }

    fn mark_window(&mut self, height: Height, round: Round, at_ns: u64) {
        let mark = || WindowMark {
            height,
            round,
            at_ns,
            counters: self.counters,
            busy_ns: self.servers.iter().map(|server| server.busy_ns).collect(),
        };
        match &self.window_start {
            None if height >= self.config.warmup_blocks.max(1) => self.window_start = Some(mark()),
            Some(start)
                if height - start.height >= self.config.commits_min
                    && at_ns.saturating_sub(start.at_ns)
                        >= self.config.measure_ms_min.saturating_mul(NS_PER_MS) =>
            {
                self.window_end = Some(mark());
            }
            _ => {}
        }
    }

    fn report(&self, start: &WindowMark, end: &WindowMark, wall_ms: u64) -> BenchReport {
        let blocks = end.height - start.height;
        let window_ns = end.at_ns.saturating_sub(start.at_ns).max(1);
        let in_window = |samples: &[(Height, u64)]| -> Vec<f64> {
            samples
                .iter()
                .filter(|(height, _)| *height > start.height && *height <= end.height)
                .map(|(_, ns)| *ns as f64)
                .collect()
        };
        let delay_ns = self.config.message_delay_ns();
        let ns_spread = |samples: &[(Height, u64)]| Spread::of(in_window(samples));
        let commit_ns = ns_spread(&self.commit_samples);
        let certify_ns = ns_spread(&self.certify_samples);
        let delays = |spread: &Spread| (delay_ns > 0.0).then(|| spread.scaled(delay_ns));
        let per_block = |delta: u64| delta as f64 / blocks as f64;
        let busy: Vec<u64> = end.busy_ns.iter().zip(&start.busy_ns).map(|(e, s)| e - s).collect();
        let busy_max = busy.iter().copied().max().unwrap_or(0);
        BenchReport {
            config: self.config.clone(),
            blocks,
            measured_ms: window_ns as f64 / NS_PER_MS as f64,
            blocks_per_s: blocks as f64 * 1e9 / window_ns as f64,
            commit_latency_ms: commit_ns.scaled(NS_PER_MS as f64),
            commit_latency_delays: delays(&commit_ns),
            certify_latency_ms: certify_ns.scaled(NS_PER_MS as f64),
            certify_latency_delays: delays(&certify_ns),
            messages_per_block: per_block(end.counters.messages - start.counters.messages),
            bytes_per_block: per_block(end.counters.bytes - start.counters.bytes),
            cpu_us_per_block: per_block(busy.iter().sum::<u64>()) / NS_PER_US as f64,
            busy_max_pct: busy_max as f64 * 100.0 / window_ns as f64,
            timeouts: end.counters.timeouts - start.counters.timeouts,
            rounds: end.round - start.round,
            ledger_requests: self.ledger_requests,
            virtual_ms: self.now_ns / NS_PER_MS,
            wall_ms,
        }
    }
}
