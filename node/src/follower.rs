//! Full nodes: `wake node` without a validator key.
//!
//! A full node holds no key of the validator set and takes part in no
//! vote. It follows the finalized chain from the validators, executes every
//! block the moment it is final, and serves JSON-RPC: the point of
//! asynchronous execution is that *any* node can run the transactions
//! locally as soon as consensus is reached, so reads need not go to a
//! validator.
//!
//! * **Sync** ([`wake_consensus::follow`]): one [`SyncRequest`] in flight at
//!   a time, to one validator, rotating to the next on a failure, a refused
//!   answer or a timeout. Answers are checked by the sans-IO [`Follower`]
//!   against the validator set alone (hash links, payload hashes, and a
//!   commit proof with > 2/3 of the stake behind it), so a lying validator
//!   costs a round trip, never a wrong block. An answer without new blocks
//!   means we are at the top: the next request waits [`POLL_INTERVAL`].
//! * **Execution**: verified blocks are appended to the node's own ledger
//!   (`consensus/ledger`, the same file format as a validator's) and handed
//!   to the same [`ExecutingNode`] a validator runs: the execution thread,
//!   triedb, the RPC store, the pool. Its pipeline checks every certified
//!   delayed result in the blocks against our own execution and stops the
//!   node naming both roots if they differ, exactly as on a validator.
//! * **Transactions** sent to its JSON-RPC are admitted to its pool and
//!   gossiped to the validators, whose leaders order them.
//! * **Identity**: a network key of its own in `data_dir/node.key`, made
//!   (mode 0600) on first start, so its peer id is stable across restarts.
//! * **Restart**: the ledger holds every verified block; the follower goes
//!   on from its tip (the execution thread re-executes the ledger, as on a
//!   validator).
//!
//! Validators serve followers with [`SyncServer`]: the commit proofs the
//! core emits go into `consensus/proofs` ([`ProofLog`]), and a sync request
//! is answered on the consensus thread from the ledger and that log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wake_consensus::follow::serve;
use wake_consensus::{
    BlockHeader, CommitProof, Config, Ed25519, FileLedger, Follower, FollowerConfig, Height,
    Ledger, ProofLog, SyncRequest, SyncResponse, ValidatorIndex, ValidatorSet,
};

use crate::config::{NodeConfig, read_key, write_new_key};
use crate::executing::ExecutingNode;
use crate::p2p::{Inbound, NetTransport, Network};
use crate::profile::{Role, RoleClocks};

/// Wait before asking again when the last answer had no new block.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A request unanswered this long goes to the next validator.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(12);
/// Wait after a failed request before the next one.
const FAILURE_BACKOFF: Duration = Duration::from_millis(200);
/// Gossiped transactions sent per loop turn.
const GOSSIP_PER_WAKE: usize = 4096;
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// The QC of a validator's newest committed block
/// ([`wake_consensus::Core::root_certificate`]), kept in one small file and
/// handed back to the core at restart ([`wake_consensus::Restore::root_qc`]).
///
/// Rewritten in place after every commit step with a CRC32C, and not
/// synced: a process crash keeps it (the page cache survives), a torn or
/// stale one is ignored at load. Only a power loss of every validator at
/// once can then leave a set that needs a peer's QC to move on.
pub struct RootCertificate {
    path: PathBuf,
    file: Option<std::fs::File>,
    last: Option<Vec<u8>>,
    write_failed: bool,
}

/// File name of [`RootCertificate`] in the consensus directory.
pub const ROOT_QC_FILE: &str = "root_qc";
/// A QC of the largest validator set is far below this.
const ROOT_QC_BYTES_MAX: usize = 64 << 10;

impl RootCertificate {
    pub fn new(path: PathBuf) -> RootCertificate {
        RootCertificate { path, file: None, last: None, write_failed: false }
    }

    /// The stored QC, if the file is there and intact.
    pub fn load(&self) -> Option<Vec<u8>> {
        let bytes = std::fs::read(&self.path).ok()?;
        let (header, body) = bytes.split_first_chunk::<8>()?;
        let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
        let body = body.get(..len).filter(|_| len <= ROOT_QC_BYTES_MAX)?;
        (crc32c::crc32c(body) == crc).then(|| body.to_vec())
    }

    /// Keeps `qc` (a no-op when it did not change).
    pub fn store(&mut self, qc: Option<Vec<u8>>) {
        use std::os::unix::fs::FileExt;
        let Some(qc) = qc.filter(|qc| qc.len() <= ROOT_QC_BYTES_MAX) else { return };
        if self.last.as_ref() == Some(&qc) {
            return;
        }
        let mut bytes = Vec::with_capacity(8 + qc.len());
        bytes.extend_from_slice(&(qc.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(&qc).to_le_bytes());
        bytes.extend_from_slice(&qc);
        let written = match &self.file {
            Some(file) => Ok(file),
            None => std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&self.path)
                .map(|file| &*self.file.insert(file)),
        }
        .and_then(|file| file.write_all_at(&bytes, 0));
        match written {
            Ok(()) => self.last = Some(qc),
            // Not fatal: a restarted validator among running peers learns a
            // QC from them; the ledger's writes meet a full disk first.
            Err(error) if !std::mem::replace(&mut self.write_failed, true) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot write the root QC");
            }
            Err(_) => {}
        }
    }
}

/// A validator's side of sync: its proof log, and answers to followers.
pub struct SyncServer {
    proofs: ProofLog<Ed25519>,
    transport: NetTransport,
    proof_write_failed: bool,
    /// The QC of the newest committed block, for restarts.
    pub root: RootCertificate,
    /// Requests answered, and requests that did not decode.
    pub served: u64,
    pub bad_requests: u64,
}

impl SyncServer {
    /// Opens `path` (created if missing).
    pub fn open(
        path: &Path,
        transport: NetTransport,
        root: RootCertificate,
    ) -> anyhow::Result<SyncServer> {
        let proofs = ProofLog::open(path)
            .with_context(|| format!("cannot open the commit proof log {}", path.display()))?;
        Ok(SyncServer {
            proofs,
            transport,
            proof_write_failed: false,
            root,
            served: 0,
            bad_requests: 0,
        })
    }

    /// Keeps the proof that block `height` is final.
    pub fn on_proof(&mut self, height: Height, proof: &CommitProof<Ed25519>) {
        // Not fatal: followers wait for a later proof; the ledger's own
        // writes (which are fatal) meet a full disk first.
        if let Err(error) = self.proofs.append(height, proof)
            && !std::mem::replace(&mut self.proof_write_failed, true)
        {
            tracing::warn!(height, %error, "cannot write the commit proof log; followers will stall");
        }
    }

    /// Answers sync request `id` from `ledger`; a request that does not
    /// decode is not answered (the asker times out and asks elsewhere).
    pub fn on_request(&mut self, ledger: &impl Ledger, id: u64, bytes: &[u8]) {
        let request = match SyncRequest::decode(bytes) {
            Ok(request) => request,
            Err(error) => {
                self.bad_requests += 1;
                tracing::debug!(%error, "bad sync request");
                return;
            }
        };
        match serve::<Ed25519>(ledger, &self.proofs, request) {
            Ok(response) => {
                self.served += 1;
                self.transport.sync_respond(id, response.to_bytes());
            }
            Err(error) => {
                tracing::warn!(from = request.from, %error, "cannot serve a sync request")
            }
        }
    }
}

/// The validator set of `config`, and the network's view of it.
pub fn validator_set(
    config: &NodeConfig,
) -> anyhow::Result<(ValidatorSet<Ed25519>, Vec<crate::p2p::PeerEntry>)> {
    let mut members = Vec::with_capacity(config.validators.len());
    let mut peers = Vec::with_capacity(config.validators.len());
    for (index, entry) in config.validators.iter().enumerate() {
        let public_key = ed25519_dalek::VerifyingKey::from_bytes(&entry.public_key)
            .with_context(|| format!("validators[{index}].public_key is not an ed25519 key"))?;
        members.push(wake_consensus::Validator { public_key, stake: entry.stake });
        peers.push(crate::p2p::PeerEntry {
            peer: crate::p2p::peer_id_of(&entry.public_key)?,
            address: entry.address.clone(),
        });
    }
    Ok((ValidatorSet::new(members).context("validator set")?, peers))
}

/// The full node's network key: `data_dir/node.key`, made on first start.
fn node_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join("node.key");
    if !path.exists() {
        write_new_key(&path, &rand::random())?;
    }
    Ok(read_key(&path)?)
}

/// Where the follower's next request goes, and what is in flight.
struct Requests {
    validators: usize,
    next: ValidatorIndex,
    in_flight: Option<(ValidatorIndex, Instant)>,
    not_before: Instant,
}

impl Requests {
    fn rotate(&mut self) {
        self.next = (self.next + 1) % self.validators as ValidatorIndex;
    }

    fn failed(&mut self, now: Instant) {
        self.in_flight = None;
        self.rotate();
        self.not_before = now + FAILURE_BACKOFF;
    }
}

/// Runs a full node until `stop` is set or a fatal error.
pub fn run_full_node(config: &NodeConfig, stop: &Arc<AtomicBool>) -> anyhow::Result<()> {
    let Some(settings) = &config.execution else {
        bail!("a full node needs [execution] in its config");
    };
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!("cannot create the data directory {}", config.data_dir.display())
    })?;
    let secret = node_key(&config.data_dir)?;
    let (validators, peers) = validator_set(config)?;
    let epoch = Config::default().epoch;
    let dir = config.data_dir.join("consensus");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    let ledger_path = dir.join("ledger");
    let mut ledger = FileLedger::open(&ledger_path, epoch, true)
        .with_context(|| format!("cannot open the ledger {}", ledger_path.display()))?;
    let tip: BlockHeader = match ledger.tip_height() {
        0 => BlockHeader::genesis(epoch),
        height => {
            ledger
                .get(height)
                .context("reading the ledger tip")?
                .context("the ledger has no tip block")?
                .header
        }
    };
    let mut follower = Follower::new(validators, epoch, &tip, FollowerConfig::default());
    tracing::info!(
        validators = config.validators.len(),
        ledger_height = tip.height,
        "starting full node"
    );

    let recipients =
        config.validators.iter().map(|v| crate::pipeline::fee_recipient(&v.public_key)).collect();
    let clocks = Arc::new(RoleClocks::default());
    crate::profile::pin(config.profile.as_ref(), Role::Consensus);
    let metrics = Arc::new(crate::rpc::Metrics::new());
    let mut node = ExecutingNode::start(
        settings,
        &config.data_dir,
        &ledger,
        recipients,
        metrics,
        config.profile.as_ref(),
        clocks,
    )?;
    let net_config = crate::validator::net_config(config, secret, peers);
    let (inbound_tx, inbound_rx) = crossbeam_channel::bounded(crate::validator::INBOUND_QUEUE);
    let network = Network::start(net_config, inbound_tx)?;
    let transport = network.transport();
    tracing::info!(listen = ?network.listening(), peer_id = %network.local_peer_id(), "listening");

    let mut requests = Requests {
        validators: config.validators.len(),
        next: 0,
        in_flight: None,
        not_before: Instant::now(),
    };
    let started = Instant::now();
    let start_height = follower.verified_height();
    let mut last_log = Instant::now();
    let mut refused = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if requests.in_flight.is_none() && now >= requests.not_before {
            transport.sync_request(requests.next, follower.request().to_bytes());
            requests.in_flight = Some((requests.next, now));
        }
        if let Some((peer, sent)) = requests.in_flight
            && now.duration_since(sent) > REQUEST_TIMEOUT
        {
            tracing::debug!(peer, "sync request timed out");
            requests.failed(now);
        }
        let wait = match requests.in_flight {
            Some(_) => Duration::from_millis(20),
            None => {
                requests.not_before.saturating_duration_since(now).min(Duration::from_millis(20))
            }
        };
        match inbound_rx.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(Inbound::SyncResponse { from, bytes }) => {
                if requests.in_flight.map(|(peer, _)| peer) != Some(from) {
                    continue; // a late answer to a request we gave up on
                }
                requests.in_flight = None;
                let verified = SyncResponse::<Ed25519>::decode(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|response| {
                        let empty = response.blocks.is_empty();
                        follower
                            .on_response(response)
                            .map(|blocks| (empty, blocks))
                            .map_err(|e| e.to_string())
                    });
                match verified {
                    Ok((empty, blocks)) => {
                        if empty {
                            requests.not_before = Instant::now() + POLL_INTERVAL;
                        }
                        for block in blocks {
                            ledger.append(&block).with_context(|| {
                                format!("appending block {} to the ledger", block.header.height)
                            })?;
                            node.on_commit(Box::new(block))?;
                        }
                    }
                    Err(reason) => {
                        refused += 1;
                        tracing::warn!(validator = from, %reason, "sync answer refused");
                        requests.failed(Instant::now());
                    }
                }
            }
            Ok(Inbound::SyncFailed { from }) => {
                if requests.in_flight.map(|(peer, _)| peer) == Some(from) {
                    requests.failed(Instant::now());
                }
            }
            Ok(Inbound::Transactions(txs)) => {
                node.ingest(txs);
            }
            // Full nodes vote on nothing and serve no sync (yet).
            Ok(
                Inbound::Consensus { .. } | Inbound::SyncRequest { .. } | Inbound::ExecutionReady,
            ) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                bail!("the network thread stopped")
            }
        }
        transport.gossip_transactions(&node.pool.drain_gossip(GOSSIP_PER_WAKE));
        if !node.is_running() {
            return Err(node.execution_failure());
        }
        if last_log.elapsed() >= STATUS_INTERVAL {
            last_log = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let height = follower.verified_height();
            tracing::info!(
                finalized = height,
                pending = follower.pending(),
                blocks_per_s = format!("{:.1}", (height - start_height) as f64 / secs),
                peers = network.stats().connected_peers.load(Ordering::Relaxed),
                refused,
                "full node status"
            );
        }
    }
    tracing::info!(finalized = follower.verified_height(), "stopped");
    Ok(())
}
