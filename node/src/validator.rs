//! A validator process: the consensus driver on its own thread, fed by the
//! libp2p network thread through a bounded channel.
//!
//! Layout: the network runs on a tokio current-thread runtime in its own
//! thread ([`crate::p2p`]); the consensus driver (core, vote journal with
//! fsync before every vote, ledger) runs on the calling thread and sleeps
//! until the next message or timer. Neither blocks the other: messages
//! cross in bounded queues, and a full queue drops (consensus tolerates
//! loss).
//!
//! Execution: this process orders blocks without executing them. Each
//! committed block's "execution result" is a digest of the block
//! ([`NullExecution`]), so the delayed-result check of the protocol runs
//! exactly as it will with real execution (a voter compares the carried
//! result with its own for block `h-K`, waits while it is not ready) but
//! nothing is run. The asynchronous-execution pipeline replaces this oracle.
//!
//! Data directory: `consensus/journal` (the vote journal) and
//! `consensus/ledger` (finalized blocks). A restarted validator restores
//! its last vote from the journal (it can never vote twice in a round) and
//! its committed chain from the ledger, then catches up through the core's
//! block requests.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::Bytes;
use anyhow::{Context, bail};
use wake_consensus::{
    Config, Core, Driver, Ed25519, ExecutionOracle, ExecutionResult, FileJournal, FileLedger,
    FinalizedBlock, Height, Ledger, Notice, PayloadSource, PendingBlock, Restore, Round,
    VoteJournal, sha256,
};

use crate::config::{NodeConfig, read_key};
use crate::executing::ExecutingNode;
use crate::follower::{ROOT_QC_FILE, RootCertificate, SyncServer};
use crate::p2p::{Inbound, NetConfig, NetTransport, Network};
use crate::profile::{Role, RoleClocks};

/// Gossiped transactions sent per loop turn.
const GOSSIP_PER_WAKE: usize = 4096;

/// Bound of the queue from the network to the consensus thread.
pub(crate) const INBOUND_QUEUE: usize = 8192;
/// Bound of the queue from the consensus thread to the network.
const OUTBOUND_QUEUE: usize = 8192;

/// The network settings of a node (validator or full) from its config.
pub(crate) fn net_config(
    config: &NodeConfig,
    secret: [u8; 32],
    validators: Vec<crate::p2p::PeerEntry>,
) -> NetConfig {
    NetConfig {
        secret,
        listen: config.listen.clone(),
        validators,
        extra_peers: Vec::new(),
        outbound_queue: OUTBOUND_QUEUE,
        profile: config.profile.clone(),
        inject_latency: Duration::from_millis(config.network.inject_latency_ms),
    }
}
/// Results kept by [`NullExecution`]: K back is all a voter asks.
const RESULTS_KEPT: usize = 1024;
/// How often a status line is logged.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// The execution result of a block that is ordered but not executed: a
/// digest of its id, known the moment it commits.
#[derive(Default)]
pub struct NullExecution {
    results: BTreeMap<Height, ExecutionResult>,
}

impl NullExecution {
    pub fn on_commit(&mut self, block: &FinalizedBlock) {
        let id = block.header.id();
        let digest = |tag: &[u8]| sha256(&[b"wake/null-execution/", tag, &id.0]);
        let mut logs_bloom = [0u8; 256];
        logs_bloom[..32].copy_from_slice(&digest(b"bloom"));
        self.results.insert(
            block.header.height,
            ExecutionResult {
                state_root: digest(b"state"),
                receipts_root: digest(b"receipts"),
                logs_bloom,
                gas_used: 0,
            },
        );
        while self.results.len() > RESULTS_KEPT {
            self.results.pop_first();
        }
    }
}

impl ExecutionOracle for NullExecution {
    fn result(&self, height: Height) -> Option<ExecutionResult> {
        self.results.get(&height).cloned()
    }
}

/// Payloads of an ordering-only validator: the leader's clock (8 bytes,
/// milliseconds since the epoch, big-endian), the same prefix an executing
/// validator's payload starts with, so every node can log how long a block
/// took from proposal to commit.
pub struct ClockPayloads {
    pub block_time_ms: u64,
}

impl PayloadSource for ClockPayloads {
    fn payload(
        &mut self,
        _round: Round,
        _height: Height,
        bytes_max: usize,
        _pending: &[PendingBlock<'_>],
    ) -> Vec<u8> {
        let mut payload = unix_ms().to_be_bytes().to_vec();
        payload.truncate(bytes_max);
        payload
    }

    fn wait_ms(&mut self, _height: Height, parent_payload: &[u8]) -> u64 {
        block_time_wait(self.block_time_ms, parent_payload)
    }
}

/// Milliseconds until `block_time_ms` has passed since the parent was
/// proposed (its payload's clock prefix). At most `block_time_ms`, so a
/// leader whose clock runs ahead cannot stall the next one.
pub fn block_time_wait(block_time_ms: u64, parent_payload: &[u8]) -> u64 {
    let Some((stamp, _)) = parent_payload.split_first_chunk::<8>() else { return 0 };
    if block_time_ms == 0 {
        return 0;
    }
    u64::from_be_bytes(*stamp)
        .saturating_add(block_time_ms)
        .saturating_sub(unix_ms())
        .min(block_time_ms)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds from the leader's proposal (the payload's clock prefix) to
/// now; `None` for a payload without one.
fn proposal_age_ms(payload: &[u8]) -> Option<u64> {
    let (stamp, _) = payload.split_first_chunk::<8>()?;
    Some(unix_ms().saturating_sub(u64::from_be_bytes(*stamp)))
}

/// Runs a validator until `stop` is set or a fatal error.
pub fn run(config: &NodeConfig, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let Some(key_file) = &config.key_file else {
        return crate::follower::run_full_node(config, stop);
    };
    let secret = read_key(key_file)?;
    let signing = wake_consensus::crypto::ed25519_key_from_seed(secret);
    let public = signing.verifying_key();
    let me =
        config.validators.iter().position(|v| v.public_key == *public.as_bytes()).with_context(
            || {
                format!(
                    "the key in {} ({}) is not in the validator set",
                    key_file.display(),
                    hex::encode(public.as_bytes())
                )
            },
        )? as wake_consensus::ValidatorIndex;

    let (validators, peers) = crate::follower::validator_set(config)?;

    let dir = config.data_dir.join("consensus");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let consensus_config = Config {
        round_timeout_ms: config.consensus.round_timeout_ms,
        execution_delay: config.consensus.effective_delay(),
        ..Config::default()
    };
    let journal = open_journal(&dir.join("journal"))?;
    let ledger = open_ledger(&dir.join("ledger"), consensus_config.epoch)?;
    let ledger_tip = match ledger.tip_height() {
        0 => None,
        height => ledger.get(height).context("reading the ledger tip")?,
    };
    // The committed window the delayed-result rule looks back over.
    let mut ledger_ancestors = Vec::new();
    let tip = ledger.tip_height();
    for height in tip.saturating_sub(consensus_config.execution_delay + 1).max(1)..tip {
        if let Some(block) = ledger.get(height).context("reading the ledger")? {
            ledger_ancestors.push(block);
        }
    }
    let root_qc = RootCertificate::new(dir.join(ROOT_QC_FILE));
    let restore = Restore {
        last_vote: journal.last(),
        ledger_tip,
        ledger_ancestors,
        root_qc: root_qc.load(),
    };
    let tip_height = ledger.tip_height();
    tracing::info!(
        validator = me,
        validators = config.validators.len(),
        ledger_height = tip_height,
        last_vote_round = restore.last_vote.map(|r| r.round),
        executing = config.execution.is_some(),
        execution_mode = config.consensus.execution.name(),
        execution_delay = consensus_config.execution_delay,
        block_time_ms = config.consensus.block_time_ms,
        "starting validator"
    );
    let core = Core::new(consensus_config.clone(), validators, me, signing, restore);
    tracing::info!(
        round = core.round(),
        high_qc_round = core.high_qc_round(),
        "consensus restored"
    );
    let net_config = net_config(config, secret, peers);
    let clocks = Arc::new(RoleClocks::default());
    crate::profile::pin(config.profile.as_ref(), Role::Consensus);

    match &config.execution {
        None => {
            let mut execution = NullExecution::default();
            let payloads = ClockPayloads { block_time_ms: config.consensus.block_time_ms };
            // The oracle must know the results of the committed blocks the
            // next proposals will carry (K back from the tip).
            let from = tip_height.saturating_sub(consensus_config.execution_delay + 1).max(1);
            for height in from..=tip_height {
                if let Some(block) = ledger.get(height).context("reading the ledger")? {
                    execution.on_commit(&block);
                }
            }
            let (inbound_tx, inbound_rx) = crossbeam_channel::bounded(INBOUND_QUEUE);
            let network = Network::start(net_config, inbound_tx)?;
            tracing::info!(listen = ?network.listening(), peer_id = %network.local_peer_id(), "listening");
            let mut driver =
                Driver::new(core, journal, ledger, network.transport(), execution, payloads);
            let hooks = Hooks {
                on_commit: |driver: &mut Driver<_, _, _, _, NullExecution, _>,
                            block: Box<FinalizedBlock>| {
                    driver.oracle_mut().on_commit(&block);
                    Ok(())
                },
                on_transactions: |_: Vec<Bytes>| {},
                on_idle: || Ok(()),
            };
            let mut sync = SyncServer::open(&dir.join("proofs"), network.transport(), root_qc)?;
            run_loop(
                &mut driver,
                &inbound_rx,
                &network,
                &mut sync,
                stop,
                Status::new(tip_height, clocks.clone()),
                hooks,
            )
        }
        Some(settings) => {
            let recipients = config
                .validators
                .iter()
                .map(|v| crate::pipeline::fee_recipient(&v.public_key))
                .collect();
            let metrics = Arc::new(crate::rpc::Metrics::new());
            let cell = std::cell::RefCell::new(ExecutingNode::start(
                settings,
                &config.data_dir,
                &ledger,
                recipients,
                metrics,
                config.profile.as_ref(),
                clocks.clone(),
            )?);
            let (inbound_tx, inbound_rx) = crossbeam_channel::bounded(INBOUND_QUEUE);
            let inbound_tx_wake = inbound_tx.clone();
            let network = Network::start(net_config, inbound_tx)?;
            tracing::info!(listen = ?network.listening(), peer_id = %network.local_peer_id(), "listening");
            let transport = network.transport();
            let (results, payloads) = {
                let node = cell.borrow();
                (node.oracle(), node.payloads(&config.consensus))
            };
            let waker = inbound_tx_wake;
            results.0.set_waker(Box::new(move || {
                let _ = waker.try_send(Inbound::ExecutionReady);
            }));
            let mut driver =
                Driver::new(core, journal, ledger, transport.clone(), results, payloads);
            let hooks = Hooks {
                on_commit: |_: &mut Driver<_, _, _, _, _, _>, block: Box<FinalizedBlock>| {
                    cell.borrow_mut().on_commit(block)
                },
                on_transactions: |txs: Vec<Bytes>| {
                    cell.borrow().ingest(txs);
                },
                on_idle: || {
                    let mut node = cell.borrow_mut();
                    transport.gossip_transactions(&node.pool.drain_gossip(GOSSIP_PER_WAKE));
                    if !node.is_running() {
                        return Err(node.execution_failure());
                    }
                    Ok(())
                },
            };
            let mut sync = SyncServer::open(&dir.join("proofs"), network.transport(), root_qc)?;
            run_loop(
                &mut driver,
                &inbound_rx,
                &network,
                &mut sync,
                stop,
                Status::new(tip_height, clocks.clone()),
                hooks,
            )
        }
    }
}

/// The driver of a validator process; `O` and `P` differ between the
/// ordering-only and the executing validator.
type NodeDriver<O, P> = Driver<Ed25519, FileJournal, FileLedger, NetTransport, O, P>;

/// What the consensus loop does besides driving the core.
struct Hooks<C, T, I> {
    on_commit: C,
    on_transactions: T,
    on_idle: I,
}

fn run_loop<O, P, C, T, I>(
    driver: &mut NodeDriver<O, P>,
    inbound_rx: &crossbeam_channel::Receiver<Inbound>,
    network: &Network,
    sync: &mut SyncServer,
    stop: &Arc<AtomicBool>,
    mut status: Status,
    mut hooks: Hooks<C, T, I>,
) -> anyhow::Result<()>
where
    O: ExecutionOracle,
    P: PayloadSource,
    C: FnMut(&mut NodeDriver<O, P>, Box<FinalizedBlock>) -> anyhow::Result<()>,
    T: FnMut(Vec<Bytes>),
    I: FnMut() -> anyhow::Result<()>,
{
    let notices = driver.start(Instant::now())?;
    status.on_notices(driver, notices, &mut hooks.on_commit, sync)?;
    while !stop.load(Ordering::Relaxed) {
        // Wake at least every 20 ms to see `stop` and drain the gossip outbox.
        let deadline = driver.next_wake().min(Instant::now() + Duration::from_millis(20));
        let waiting = Instant::now();
        let received = inbound_rx.recv_deadline(deadline);
        status.clocks.consensus.idle(waiting);
        let working = Instant::now();
        let notices = match received {
            Ok(Inbound::Consensus { from, bytes }) => {
                driver.on_message(from, bytes, Instant::now())?
            }
            Ok(Inbound::Transactions(txs)) => {
                (hooks.on_transactions)(txs);
                Vec::new()
            }
            Ok(Inbound::SyncRequest { id, bytes }) => {
                sync.on_request(driver.ledger(), id, &bytes);
                Vec::new()
            }
            // A validator follows nobody: its core syncs through consensus.
            Ok(Inbound::SyncResponse { .. } | Inbound::SyncFailed { .. }) => Vec::new(),
            Ok(Inbound::ExecutionReady) => {
                driver.tick_now(Instant::now());
                Vec::new()
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Vec::new(),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                bail!("the network thread stopped")
            }
        };
        status.on_notices(driver, notices, &mut hooks.on_commit, sync)?;
        let notices = driver.on_wake(Instant::now())?;
        status.on_notices(driver, notices, &mut hooks.on_commit, sync)?;
        (hooks.on_idle)()?;
        status.clocks.consensus.busy(working);
        status.maybe_log(driver, network);
    }
    tracing::info!(committed = driver.core().committed_height(), "stopped");
    Ok(())
}

fn open_journal(path: &Path) -> anyhow::Result<FileJournal> {
    let journal = FileJournal::open(path, true)
        .with_context(|| format!("cannot open the vote journal {}", path.display()))?;
    if journal.torn_tail_bytes() > 0 {
        tracing::warn!(bytes = journal.torn_tail_bytes(), "vote journal: torn tail cut");
    }
    Ok(journal)
}

fn open_ledger(path: &Path, epoch: u64) -> anyhow::Result<FileLedger> {
    let ledger = FileLedger::open(path, epoch, true)
        .with_context(|| format!("cannot open the ledger {}", path.display()))?;
    if ledger.torn_tail_bytes() > 0 {
        tracing::warn!(bytes = ledger.torn_tail_bytes(), "ledger: torn tail cut");
    }
    Ok(ledger)
}

struct Status {
    started: Instant,
    last_log: Instant,
    start_height: Height,
    evidence: u64,
    clocks: Arc<RoleClocks>,
    consensus_seen: (u64, u64, u64),
    execution_seen: (u64, u64, u64),
    commit_seen: (u64, u64, u64),
}

impl Status {
    fn new(start_height: Height, clocks: Arc<RoleClocks>) -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last_log: now,
            start_height,
            evidence: 0,
            clocks,
            consensus_seen: (0, 0, 0),
            execution_seen: (0, 0, 0),
            commit_seen: (0, 0, 0),
        }
    }

    fn on_notices<O, P, C>(
        &mut self,
        driver: &mut NodeDriver<O, P>,
        notices: Vec<Notice<Ed25519>>,
        on_commit: &mut C,
        sync: &mut SyncServer,
    ) -> anyhow::Result<()>
    where
        O: ExecutionOracle,
        P: PayloadSource,
        C: FnMut(&mut NodeDriver<O, P>, Box<FinalizedBlock>) -> anyhow::Result<()>,
    {
        for notice in notices {
            match notice {
                Notice::Committed(block) => {
                    tracing::info!(
                        height = block.header.height,
                        round = block.header.round,
                        author = block.header.author,
                        payload_bytes = block.payload.len(),
                        age_ms = proposal_age_ms(&block.payload),
                        "committed"
                    );
                    on_commit(driver, block)?;
                }
                Notice::CommitProof { height, proof } => {
                    sync.on_proof(height, &proof);
                    sync.root.store(driver.core().root_certificate());
                }
                Notice::Certified { round, height, .. } => {
                    tracing::debug!(round, height, "certified");
                }
                Notice::Evidence(evidence) => {
                    self.evidence += 1;
                    tracing::warn!(?evidence, "equivocation evidence");
                }
            }
        }
        Ok(())
    }

    fn maybe_log<O, P>(&mut self, driver: &NodeDriver<O, P>, network: &Network)
    where
        O: ExecutionOracle,
        P: PayloadSource,
    {
        if self.last_log.elapsed() < STATUS_INTERVAL {
            return;
        }
        self.last_log = Instant::now();
        let core = driver.core();
        let stats = driver.stats();
        let net = network.stats();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let consensus = self.clocks.consensus.share_since(&mut self.consensus_seen);
        let execution = self.clocks.execution.share_since(&mut self.execution_seen);
        let commit = self.clocks.commit.share_since(&mut self.commit_seen);
        let pct = |x: f64| format!("{:.0}%", x * 100.0);
        tracing::info!(
            round = core.round(),
            committed = core.committed_height(),
            blocks_per_s =
                format!("{:.1}", (core.committed_height() - self.start_height) as f64 / secs),
            peers = net.connected_peers.load(Ordering::Relaxed),
            dropped = driver.drops().total(),
            votes = stats.votes_persisted,
            evidence = self.evidence,
            consensus_busy = pct(consensus.busy),
            consensus_blocked = pct(consensus.blocked),
            execution_busy = pct(execution.busy),
            execution_idle = pct(execution.idle),
            execution_blocked = pct(execution.blocked),
            commit_busy = pct(commit.busy),
            "status"
        );
    }
}
