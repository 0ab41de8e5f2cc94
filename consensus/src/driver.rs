//! The driver of one validator: the [`Core`] plus the I/O it asks for.
//!
//! The core is sans-IO; something has to make votes durable, keep timers,
//! append commits to the ledger, answer block requests from it and move
//! bytes between validators. The simulator does that over a virtual clock;
//! [`Driver`] does it for a real process, over wall-clock [`Instant`]s and
//! any [`Transport`] (the node's libp2p network, or channels in tests), so
//! the core never sees a socket and the transport never sees the protocol.
//!
//! The driver runs on one thread and never blocks on the network: it
//! hands bytes to the transport, which must queue them (bounded) or drop
//! them; consensus tolerates lost messages. It does block on the journal:
//! a vote leaves only after its record is durable (the core enforces it
//! with [`crate::VoteTicket`]s; the driver appends, fsyncs, then feeds
//! the ticket back at once). A journal or ledger that cannot be written
//! stops the driver with a [`DriverError`]: a validator that cannot
//! remember its votes must not vote.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::codec::Encode;
use crate::core::{Action, Core, DropCounts, Event, Evidence, ExecutionOracle, PayloadSource};
use crate::crypto::Scheme;
use crate::journal::VoteJournal;
use crate::ledger::Ledger;
use crate::store::StoreError;
use crate::types::{
    BlockId, BlockResponse, FinalizedBlock, Height, Message, Round, ValidatorIndex,
};

/// How often the core gets an [`Event::Tick`] (fetch retries, execution
/// re-checks, proposal retries). The simulator uses the same period.
pub const TICK: Duration = Duration::from_millis(50);

/// Most timers kept; the core arms one per round, older ones are useless.
const TIMERS_MAX: usize = 64;

/// Moves encoded consensus messages between validators.
///
/// Implementations must not block: queue (bounded) or drop. The peer a
/// message arrives from must be authenticated by the transport, since the
/// core trusts [`Event::Received`]'s `from` for vote routing.
pub trait Transport {
    fn send(&mut self, to: ValidatorIndex, bytes: Vec<u8>);
    /// To every other validator.
    fn broadcast(&mut self, bytes: Vec<u8>);
}

/// What the driver reports to the node, in order.
#[derive(Debug)]
pub enum Notice<S: Scheme> {
    /// Speculative finality: the block has a QC.
    Certified {
        round: Round,
        height: Height,
        block: BlockId,
    },
    /// Final, and appended to the ledger.
    Committed(Box<FinalizedBlock>),
    /// The proof that the block at `height` is final (after its
    /// `Committed`), for followers: see [`crate::follow`].
    CommitProof {
        height: Height,
        proof: Box<crate::follow::CommitProof<S>>,
    },
    Evidence(Box<Evidence<S>>),
}

/// Why the driver stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("vote journal write failed (a validator that cannot record its votes must stop): {0}")]
    Journal(StoreError),
    #[error("ledger append of finalized block {height} failed: {source}")]
    Ledger { height: Height, source: StoreError },
}

/// Counters for logs and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct DriverStats {
    pub sent: u64,
    pub broadcast: u64,
    pub received: u64,
    pub votes_persisted: u64,
    pub commits: u64,
    pub served_from_ledger: u64,
}

/// One validator's consensus, driven by wall-clock time.
pub struct Driver<S: Scheme, J, L, T, O, P> {
    core: Core<S>,
    journal: J,
    ledger: L,
    transport: T,
    oracle: O,
    payloads: P,
    /// Armed round timers by deadline.
    timers: BTreeMap<(Instant, Round), ()>,
    next_tick: Instant,
    stats: DriverStats,
    notices: Vec<Notice<S>>,
}

impl<S, J, L, T, O, P> Driver<S, J, L, T, O, P>
where
    S: Scheme,
    J: VoteJournal,
    L: Ledger,
    T: Transport,
    O: ExecutionOracle,
    P: PayloadSource,
{
    pub fn new(core: Core<S>, journal: J, ledger: L, transport: T, oracle: O, payloads: P) -> Self {
        Self {
            core,
            journal,
            ledger,
            transport,
            oracle,
            payloads,
            timers: BTreeMap::new(),
            next_tick: Instant::now() + TICK,
            stats: DriverStats::default(),
            notices: Vec::new(),
        }
    }

    /// Arms the first timer; proposes when this validator leads round 1.
    pub fn start(&mut self, now: Instant) -> Result<Vec<Notice<S>>, DriverError> {
        self.next_tick = now + TICK;
        self.feed(Event::Start, now)
    }

    /// Bytes the transport authenticated as coming from validator `from`.
    pub fn on_message(
        &mut self,
        from: ValidatorIndex,
        bytes: Vec<u8>,
        now: Instant,
    ) -> Result<Vec<Notice<S>>, DriverError> {
        self.stats.received += 1;
        self.feed(Event::Received { from, bytes }, now)
    }

    /// Fires every timer and tick due at `now`.
    pub fn on_wake(&mut self, now: Instant) -> Result<Vec<Notice<S>>, DriverError> {
        let mut notices = Vec::new();
        while let Some((&(deadline, round), ())) = self.timers.first_key_value() {
            if deadline > now {
                break;
            }
            self.timers.remove(&(deadline, round));
            notices.extend(self.feed(Event::Timeout { round }, now)?);
        }
        if self.next_tick <= now {
            // Skip ticks missed while busy rather than replaying a burst.
            self.next_tick = now + TICK;
            notices.extend(self.feed(Event::Tick, now)?);
        }
        Ok(notices)
    }

    /// Makes the next [`Self::on_wake`] deliver a tick at once: something
    /// the core may be waiting for (our own execution result) is ready.
    pub fn tick_now(&mut self, now: Instant) {
        self.next_tick = self.next_tick.min(now);
    }

    /// When [`Self::on_wake`] has something to do.
    pub fn next_wake(&self) -> Instant {
        self.timers
            .first_key_value()
            .map_or(self.next_tick, |(&(deadline, _), ())| deadline.min(self.next_tick))
    }

    pub fn core(&self) -> &Core<S> {
        &self.core
    }

    pub fn drops(&self) -> &DropCounts {
        self.core.drops()
    }

    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    pub fn oracle_mut(&mut self) -> &mut O {
        &mut self.oracle
    }

    pub fn payloads_mut(&mut self) -> &mut P {
        &mut self.payloads
    }

    /// Runs one event and every event its actions cause (persisted votes).
    fn feed(&mut self, event: Event, now: Instant) -> Result<Vec<Notice<S>>, DriverError> {
        let mut pending = vec![event];
        while let Some(event) = pending.pop() {
            let actions = self.core.handle(event, &self.oracle, &mut self.payloads);
            for action in actions {
                if let Some(event) = self.act(action, now)? {
                    pending.push(event);
                }
            }
        }
        Ok(std::mem::take(&mut self.notices))
    }

    fn act(&mut self, action: Action<S>, now: Instant) -> Result<Option<Event>, DriverError> {
        match action {
            Action::Send { to, message } => {
                self.stats.sent += 1;
                self.transport.send(to, message.to_bytes());
            }
            Action::Broadcast(message) => {
                self.stats.broadcast += 1;
                self.transport.broadcast(message.to_bytes());
            }
            Action::PersistVote(ticket) => {
                self.journal.append(ticket.record()).map_err(DriverError::Journal)?;
                self.stats.votes_persisted += 1;
                return Ok(Some(Event::VotePersisted(ticket)));
            }
            Action::ArmTimer { round, after_ms } => {
                self.timers.insert((now + Duration::from_millis(after_ms), round), ());
                // Only the newest rounds' timers can matter.
                while self.timers.len() > TIMERS_MAX {
                    let oldest = self.timers.keys().min_by_key(|(_, round)| *round).copied();
                    if let Some(key) = oldest {
                        self.timers.remove(&key);
                    }
                }
            }
            Action::TickAfter { after_ms } => {
                self.next_tick = self.next_tick.min(now + Duration::from_millis(after_ms));
            }
            Action::Certified { round, height, block } => {
                self.notices.push(Notice::Certified { round, height, block });
            }
            Action::Commit(block) => {
                let height = block.header.height;
                self.ledger
                    .append(&block)
                    .map_err(|source| DriverError::Ledger { height, source })?;
                self.stats.commits += 1;
                self.notices.push(Notice::Committed(block));
            }
            Action::CommitProof { height, proof } => {
                self.notices.push(Notice::CommitProof { height, proof });
            }
            Action::ServeFromLedger { to, height, id } => {
                // A read error only means this peer cannot serve; another will.
                if let Ok(Some(block)) = self.ledger.get(height)
                    && block.header.id() == id
                {
                    self.stats.served_from_ledger += 1;
                    let response = BlockResponse {
                        header: block.header,
                        payload: block.payload,
                        justify: None,
                    };
                    self.transport
                        .send(to, Message::<S>::BlockResponse(Box::new(response)).to_bytes());
                }
            }
            Action::Evidence(evidence) => self.notices.push(Notice::Evidence(Box::new(evidence))),
        }
        Ok(None)
    }
}
