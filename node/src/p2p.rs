//! The libp2p network of a node: tcp + noise + yamux on a tokio
//! current-thread runtime of its own thread.
//!
//! * **Identity is the validator key.** The libp2p keypair is the
//!   validator's ed25519 key, so a peer's [`PeerId`] *is* its validator
//!   public key, proven by the noise handshake. A consensus message is
//!   attributed to the validator whose key authenticated the connection;
//!   a message from any other peer is dropped and counted.
//! * **Consensus messages** (proposals, votes, timeouts, block requests
//!   and responses) go over direct streams: a request-response protocol
//!   (`/wake/consensus/1`) whose request is one length-delimited frame
//!   (u32 big-endian length, then the bytes) capped at
//!   [`wake_consensus::codec::MESSAGE_BYTES_MAX`] before anything is
//!   allocated, and whose response is an empty acknowledgement. Block sync
//!   for a validator that lags or restarts rides the same protocol: the
//!   core's block requests walk back from a certified block by id, and
//!   peers answer from their tree or their ledger.
//! * **Sync for followers** (full nodes, outside the validator set) is a
//!   request-response protocol of its own (`/wake/sync/1`) with real
//!   responses: a [`wake_consensus::SyncRequest`] frame in, a
//!   [`wake_consensus::SyncResponse`] frame out, both length-delimited and
//!   capped before allocation. Any peer may ask; at most
//!   [`SYNC_SERVING_MAX`] requests wait for the consensus thread's answer at
//!   once, and further ones are refused (the asker tries another peer).
//!   Answers are checked by the follower against the validator set, so
//!   whom it asked does not matter.
//! * **Transactions** go over gossipsub (topic [`TX_TOPIC`]) in batches:
//!   one message is an RLP list of raw transactions ([`encode_tx_batches`],
//!   [`decode_tx_batch`]), at most [`TX_GOSSIP_BYTES_MAX`] bytes and
//!   [`TX_BATCH_TXS_MAX`] transactions. Messages are not signed: every
//!   transaction carries its sender's signature, which the pool checks, and
//!   the connection itself is authenticated (noise). Signing each message
//!   would add an ed25519 signature per message and a verification per
//!   message per hop, which at a few thousand transactions per second was a
//!   quarter of a 4-validator devnet's CPU. A batch that does not decode is
//!   rejected before gossipsub forwards it, which also lowers the sender's
//!   peer score.
//! * The consensus thread talks to the network through [`NetTransport`]
//!   (the [`Transport`] of the consensus driver) and hears back through a
//!   bounded channel of [`Inbound`]. Both directions use `try_send`:
//!   a full queue drops the message and counts it (consensus survives
//!   lost messages; a stalled network never blocks the consensus thread).
//! * Peers that are down are redialled every [`REDIAL_INTERVAL`].

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use alloy_primitives::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, gossipsub, identity, noise, tcp, yamux};
use tokio::sync::mpsc;
use wake_consensus::codec::MESSAGE_BYTES_MAX;
use wake_consensus::{Transport, ValidatorIndex};

/// The consensus stream protocol.
pub const CONSENSUS_PROTOCOL: StreamProtocol = StreamProtocol::new("/wake/consensus/1");
/// The gossipsub topic of mempool transactions (batches, see the module doc).
pub const TX_TOPIC: &str = "wake/txs/1";
/// Largest gossip message: a batch of transactions. The largest transaction
/// the pool admits (128 KiB) fits alone with room for the list header.
pub const TX_GOSSIP_BYTES_MAX: usize = 128 * 1024 + 1024;
/// Most transactions in one gossip message.
pub const TX_BATCH_TXS_MAX: usize = 4096;
/// Room for a batch's RLP list header (at most 9 bytes).
const TX_BATCH_HEADER_MAX: usize = 9;
/// The follower sync protocol.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/wake/sync/1");
/// Sync requests waiting for the consensus thread's answer at once.
pub const SYNC_SERVING_MAX: usize = 64;
/// How often peers that are not connected are dialled again.
pub const REDIAL_INTERVAL: Duration = Duration::from_secs(1);

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("bad node key: {0}")]
    Key(String),
    #[error("cannot build the libp2p transport: {0}")]
    Transport(String),
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: Multiaddr, reason: String },
    #[error("cannot start the network thread: {0}")]
    Thread(io::Error),
}

/// One validator as the network sees it.
#[derive(Clone, Debug)]
pub struct PeerEntry {
    pub peer: PeerId,
    /// Where to dial it (none: wait for it to dial us).
    pub address: Option<Multiaddr>,
}

/// Network settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The 32-byte ed25519 secret (the validator key, or a full node's own).
    pub secret: [u8; 32],
    pub listen: Multiaddr,
    /// The validator set, in validator-index order.
    pub validators: Vec<PeerEntry>,
    /// More peers to keep connected (full nodes).
    pub extra_peers: Vec<(PeerId, Multiaddr)>,
    /// Bound of the queue from the consensus thread to the network.
    pub outbound_queue: usize,
    /// The network thread's role-to-core layout.
    pub profile: Option<crate::profile::Profile>,
    /// Every outbound message waits this long before it is sent: a one-way
    /// latency for experiments on one machine (zero in production).
    pub inject_latency: Duration,
}

/// What the network hands to the node.
#[derive(Debug)]
pub enum Inbound {
    Consensus {
        from: ValidatorIndex,
        bytes: Vec<u8>,
    },
    /// A batch of gossiped transactions, not yet checked by the pool.
    Transactions(Vec<Bytes>),
    /// A peer asks for finalized blocks: answer with
    /// [`NetTransport::sync_respond`] and this `id` (or not at all).
    SyncRequest {
        id: u64,
        bytes: Vec<u8>,
    },
    /// The answer of validator `from` to our sync request.
    SyncResponse {
        from: ValidatorIndex,
        bytes: Vec<u8>,
    },
    /// Our sync request to validator `from` failed (refused, timed out,
    /// not connected).
    SyncFailed {
        from: ValidatorIndex,
    },
    /// Not from the network: the execution thread published a result.
    ExecutionReady,
}

#[derive(Debug)]
enum Outbound {
    Send {
        to: ValidatorIndex,
        bytes: Vec<u8>,
    },
    Broadcast(Vec<u8>),
    /// One encoded transaction batch of `txs` transactions.
    Gossip {
        bytes: Vec<u8>,
        txs: usize,
    },
    SyncRequest {
        to: ValidatorIndex,
        bytes: Vec<u8>,
    },
    SyncRespond {
        id: u64,
        bytes: Vec<u8>,
    },
}

/// Counters, shared with the node's metrics.
#[derive(Debug, Default)]
pub struct NetStats {
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    /// Outbound messages dropped because the network queue was full.
    pub outbound_dropped: AtomicU64,
    /// Inbound messages dropped because the node's queue was full.
    pub inbound_dropped: AtomicU64,
    /// Consensus frames from peers that are not validators.
    pub unknown_peer_dropped: AtomicU64,
    /// Requests that failed (dial failure, timeout, closed connection).
    pub send_failures: AtomicU64,
    pub txs_gossiped: AtomicU64,
    pub sync_requests_sent: AtomicU64,
    /// Sync requests refused because [`SYNC_SERVING_MAX`] were waiting.
    pub sync_requests_refused: AtomicU64,
    pub txs_received: AtomicU64,
    /// Gossip messages that were not a valid transaction batch.
    pub bad_gossip: AtomicU64,
    pub connected_peers: AtomicU64,
}

/// The consensus driver's side of the network.
#[derive(Clone)]
pub struct NetTransport {
    outbound: mpsc::Sender<Outbound>,
    stats: Arc<NetStats>,
}

impl NetTransport {
    fn push(&self, message: Outbound) {
        if self.outbound.try_send(message).is_err() {
            self.stats.outbound_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Gossip transactions (already admitted by our pool) to the others,
    /// in as few messages as the size limits allow.
    pub fn gossip_transactions(&self, txs: &[Bytes]) {
        for (bytes, txs) in encode_tx_batches(txs) {
            self.push(Outbound::Gossip { bytes, txs });
        }
    }

    /// Ask validator `to` for finalized blocks (an encoded `SyncRequest`).
    pub fn sync_request(&self, to: ValidatorIndex, bytes: Vec<u8>) {
        self.push(Outbound::SyncRequest { to, bytes });
    }

    /// Answer the sync request `id` (an encoded `SyncResponse`).
    pub fn sync_respond(&self, id: u64, bytes: Vec<u8>) {
        self.push(Outbound::SyncRespond { id, bytes });
    }
}

impl Transport for NetTransport {
    fn send(&mut self, to: ValidatorIndex, bytes: Vec<u8>) {
        self.push(Outbound::Send { to, bytes });
    }

    fn broadcast(&mut self, bytes: Vec<u8>) {
        self.push(Outbound::Broadcast(bytes));
    }
}

/// A running network thread; dropping it stops the thread.
pub struct Network {
    transport: NetTransport,
    stats: Arc<NetStats>,
    local_peer_id: PeerId,
    listening: Vec<Multiaddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Network {
    /// Starts the network thread and returns once it listens (or could not).
    pub fn start(
        config: NetConfig,
        inbound: crossbeam_channel::Sender<Inbound>,
    ) -> Result<Self, NetError> {
        let mut secret = config.secret;
        let keypair = identity::Keypair::ed25519_from_bytes(&mut secret)
            .map_err(|e| NetError::Key(e.to_string()))?;
        let local_peer_id = keypair.public().to_peer_id();
        let stats = Arc::new(NetStats::default());
        let (outbound_tx, outbound_rx) = mpsc::channel(config.outbound_queue.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("wake-net".into())
            .spawn(move || {
                let runtime =
                    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = ready_tx.send(Err(NetError::Transport(e.to_string())));
                            return;
                        }
                    };
                let channels = Channels {
                    outbound: outbound_rx,
                    inbound,
                    shutdown: shutdown_rx,
                    ready: ready_tx,
                };
                runtime.block_on(run(config, keypair, channels, thread_stats));
            })
            .map_err(NetError::Thread)?;
        let listening = match ready_rx.recv() {
            Ok(Ok(listening)) => listening,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(NetError::Transport(
                    "the network thread stopped while starting".into(),
                ));
            }
        };
        Ok(Self {
            transport: NetTransport { outbound: outbound_tx, stats: stats.clone() },
            stats,
            local_peer_id,
            listening,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    pub fn transport(&self) -> NetTransport {
        self.transport.clone()
    }

    pub fn stats(&self) -> &Arc<NetStats> {
        &self.stats
    }

    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses it listens on (the port resolved when 0 was asked).
    pub fn listening(&self) -> &[Multiaddr] {
        &self.listening
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The PeerId of a validator's ed25519 public key.
pub fn peer_id_of(public_key: &[u8; 32]) -> Result<PeerId, NetError> {
    let key = identity::ed25519::PublicKey::try_from_bytes(public_key)
        .map_err(|e| NetError::Key(e.to_string()))?;
    Ok(identity::PublicKey::from(key).to_peer_id())
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    consensus: request_response::Behaviour<FrameCodec>,
    sync: request_response::Behaviour<SyncCodec>,
    gossip: gossipsub::Behaviour,
}

async fn read_frame<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: futures::AsyncRead + Unpin + Send,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {max}-byte cap"),
        ));
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    Ok(bytes)
}

async fn write_frame<T>(io: &mut T, bytes: &[u8], max: usize) -> io::Result<()>
where
    T: futures::AsyncWrite + Unpin + Send,
{
    let len = u32::try_from(bytes.len())
        .ok()
        .filter(|len| *len as usize <= max)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame over the cap"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

/// Sync: a small request frame, a response frame of up to a message.
#[derive(Clone, Copy, Debug)]
struct SyncCodec;

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        read_frame(io, wake_consensus::follow::SYNC_REQUEST_BYTES).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        read_frame(io, MESSAGE_BYTES_MAX).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        write_frame(io, &bytes, wake_consensus::follow::SYNC_REQUEST_BYTES).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        write_frame(io, &bytes, MESSAGE_BYTES_MAX).await
    }
}

/// One length-delimited frame per request, an empty response.
#[derive(Clone, Copy, Debug)]
struct FrameCodec {
    max: usize,
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = ();

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<()>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Ok(())
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        write_frame(io, &bytes, self.max).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, (): ()) -> io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        io.close().await
    }
}

fn build_swarm(keypair: identity::Keypair) -> Result<Swarm<Behaviour>, NetError> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_behaviour(|_key| {
            let consensus = request_response::Behaviour::with_codec(
                FrameCodec { max: MESSAGE_BYTES_MAX },
                [(CONSENSUS_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(10))
                    .with_max_concurrent_streams(1024),
            );
            let sync = request_response::Behaviour::with_codec(
                SyncCodec,
                [(SYNC_PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(10))
                    .with_max_concurrent_streams(SYNC_SERVING_MAX),
            );
            let gossip_config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_millis(500))
                .max_transmit_size(TX_GOSSIP_BYTES_MAX)
                // Unsigned messages (see the module doc); each batch is
                // checked by `decode_tx_batch` before it is forwarded.
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .validate_messages()
                // Identical transactions are one message, whoever sends them.
                .message_id_fn(|message: &gossipsub::Message| {
                    gossipsub::MessageId::from(
                        wake_consensus::types::sha256(&[&message.data]).to_vec(),
                    )
                })
                .build()
                .map_err(|e| e.to_string())?;
            let gossip = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Anonymous,
                gossip_config,
            )?;
            Ok(Behaviour { consensus, sync, gossip })
        })
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

struct Channels {
    outbound: mpsc::Receiver<Outbound>,
    inbound: crossbeam_channel::Sender<Inbound>,
    shutdown: tokio::sync::oneshot::Receiver<()>,
    ready: std::sync::mpsc::SyncSender<Result<Vec<Multiaddr>, NetError>>,
}

async fn run(
    config: NetConfig,
    keypair: identity::Keypair,
    channels: Channels,
    stats: Arc<NetStats>,
) {
    let Channels { mut outbound, inbound, mut shutdown, ready } = channels;
    let mut swarm = match build_swarm(keypair) {
        Ok(swarm) => swarm,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let topic = gossipsub::IdentTopic::new(TX_TOPIC);
    if let Err(e) = swarm.behaviour_mut().gossip.subscribe(&topic) {
        let _ = ready.send(Err(NetError::Transport(e.to_string())));
        return;
    }
    if let Err(e) = swarm.listen_on(config.listen.clone()) {
        let _ = ready.send(Err(NetError::Listen { address: config.listen, reason: e.to_string() }));
        return;
    }
    // Wait for the listener: a port in use is reported here, not later.
    let mut listening = Vec::new();
    while listening.is_empty() {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { address, .. } => listening.push(address),
            SwarmEvent::ListenerClosed { reason: Err(e), .. }
            | SwarmEvent::ListenerError { error: e, .. } => {
                let _ = ready
                    .send(Err(NetError::Listen { address: config.listen, reason: e.to_string() }));
                return;
            }
            _ => {}
        }
    }
    let local = *swarm.local_peer_id();
    let mut index_of: HashMap<PeerId, ValidatorIndex> = HashMap::new();
    let mut dial_list: Vec<(PeerId, Multiaddr)> = config.extra_peers.clone();
    for (index, entry) in config.validators.iter().enumerate() {
        index_of.insert(entry.peer, index as ValidatorIndex);
        if let Some(address) = &entry.address
            && entry.peer != local
        {
            dial_list.push((entry.peer, address.clone()));
        }
    }
    for (peer, address) in &dial_list {
        swarm.add_peer_address(*peer, address.clone());
    }
    let _ = ready.send(Ok(listening));
    tracing::info!(peer_id = %local, peers = dial_list.len(), "network started");

    let mut redial = tokio::time::interval(REDIAL_INTERVAL);
    // Messages held back by the injected latency, in send order (one fixed
    // delay keeps them sorted by due time); bounded like the channel.
    let mut delayed: std::collections::VecDeque<(tokio::time::Instant, Outbound)> =
        std::collections::VecDeque::new();
    let latency = config.inject_latency;
    let mut serving = Serving::default();
    loop {
        let next_due = delayed.front().map(|(due, _)| *due);
        tokio::select! {
            _ = &mut shutdown => break,
            event = swarm.select_next_some() => {
                on_swarm_event(&mut swarm, event, &index_of, &inbound, &stats, &mut serving);
            }
            message = outbound.recv() => {
                let Some(message) = message else { break };
                if latency.is_zero() {
                    on_outbound(&mut swarm, message, &config.validators, local, &topic, &stats, &mut serving);
                } else if delayed.len() < config.outbound_queue {
                    delayed.push_back((tokio::time::Instant::now() + latency, message));
                } else {
                    stats.outbound_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(tokio::time::Instant::now)),
                if next_due.is_some() =>
            {
                let now = tokio::time::Instant::now();
                while let Some((_, message)) = delayed.pop_front_if(|(due, _)| *due <= now) {
                    on_outbound(&mut swarm, message, &config.validators, local, &topic, &stats, &mut serving);
                }
            }
            _ = redial.tick() => {
                for (peer, address) in &dial_list {
                    if !swarm.is_connected(peer) {
                        let _ = swarm.dial(address.clone());
                    }
                }
                stats.connected_peers.store(swarm.connected_peers().count() as u64, Ordering::Relaxed);
            }
        }
    }
    tracing::debug!("network stopped");
}

/// Sync requests waiting for their answer, by the id handed to the node.
#[derive(Default)]
struct Serving {
    next_id: u64,
    channels: HashMap<u64, request_response::ResponseChannel<Vec<u8>>>,
}

fn on_outbound(
    swarm: &mut Swarm<Behaviour>,
    message: Outbound,
    validators: &[PeerEntry],
    local: PeerId,
    topic: &gossipsub::IdentTopic,
    stats: &NetStats,
    serving: &mut Serving,
) {
    let send = |swarm: &mut Swarm<Behaviour>, peer: &PeerId, bytes: Vec<u8>| {
        stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        stats.bytes_sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        swarm.behaviour_mut().consensus.send_request(peer, bytes);
    };
    match message {
        Outbound::Send { to, bytes } => {
            if let Some(entry) = validators.get(to as usize)
                && entry.peer != local
            {
                send(swarm, &entry.peer, bytes);
            }
        }
        Outbound::Broadcast(bytes) => {
            for entry in validators.iter().filter(|entry| entry.peer != local) {
                send(swarm, &entry.peer, bytes.clone());
            }
        }
        Outbound::Gossip { bytes, txs } => {
            // `InsufficientPeers` before the mesh forms: the pool keeps the
            // transactions, so nothing is lost but the early gossip.
            if swarm.behaviour_mut().gossip.publish(topic.clone(), bytes).is_ok() {
                stats.txs_gossiped.fetch_add(txs as u64, Ordering::Relaxed);
            }
        }
        Outbound::SyncRequest { to, bytes } => {
            if let Some(entry) = validators.get(to as usize)
                && entry.peer != local
            {
                stats.sync_requests_sent.fetch_add(1, Ordering::Relaxed);
                swarm.behaviour_mut().sync.send_request(&entry.peer, bytes);
            }
        }
        Outbound::SyncRespond { id, bytes } => {
            // A channel that is gone (the asker gave up) drops the answer.
            if let Some(channel) = serving.channels.remove(&id) {
                stats.bytes_sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let _ = swarm.behaviour_mut().sync.send_response(channel, bytes);
            }
        }
    }
}

fn on_swarm_event(
    swarm: &mut Swarm<Behaviour>,
    event: SwarmEvent<BehaviourEvent>,
    index_of: &HashMap<PeerId, ValidatorIndex>,
    inbound: &crossbeam_channel::Sender<Inbound>,
    stats: &NetStats,
    serving: &mut Serving,
) {
    let deliver = |message: Inbound| {
        if inbound.try_send(message).is_err() {
            stats.inbound_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    };
    match event {
        SwarmEvent::Behaviour(BehaviourEvent::Consensus(request_response::Event::Message {
            peer,
            message: request_response::Message::Request { request, channel, .. },
            ..
        })) => {
            let _ = swarm.behaviour_mut().consensus.send_response(channel, ());
            stats.frames_received.fetch_add(1, Ordering::Relaxed);
            stats.bytes_received.fetch_add(request.len() as u64, Ordering::Relaxed);
            match index_of.get(&peer) {
                Some(&from) => {
                    deliver(Inbound::Consensus { from, bytes: request });
                }
                None => {
                    stats.unknown_peer_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        SwarmEvent::Behaviour(BehaviourEvent::Consensus(
            request_response::Event::OutboundFailure { peer, error, .. },
        )) => {
            stats.send_failures.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(%peer, %error, "consensus send failed");
        }
        SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        })) => {
            let verdict = match decode_tx_batch(&message.data) {
                Ok(txs) => {
                    stats.txs_received.fetch_add(txs.len() as u64, Ordering::Relaxed);
                    deliver(Inbound::Transactions(txs));
                    gossipsub::MessageAcceptance::Accept
                }
                Err(error) => {
                    stats.bad_gossip.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %propagation_source, %error, "bad transaction batch");
                    gossipsub::MessageAcceptance::Reject
                }
            };
            swarm.behaviour_mut().gossip.report_message_validation_result(
                &message_id,
                &propagation_source,
                verdict,
            );
        }
        SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
            peer,
            message,
            ..
        })) => match message {
            request_response::Message::Request { request, channel, .. } => {
                // Over the bound, the channel is dropped: the asker sees a
                // failure and tries another peer.
                serving.channels.retain(|_, channel| channel.is_open());
                if serving.channels.len() >= SYNC_SERVING_MAX {
                    stats.sync_requests_refused.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let id = serving.next_id;
                serving.next_id += 1;
                if deliver(Inbound::SyncRequest { id, bytes: request }) {
                    serving.channels.insert(id, channel);
                }
            }
            request_response::Message::Response { response, .. } => {
                stats.bytes_received.fetch_add(response.len() as u64, Ordering::Relaxed);
                match index_of.get(&peer) {
                    Some(&from) => {
                        deliver(Inbound::SyncResponse { from, bytes: response });
                    }
                    None => {
                        stats.unknown_peer_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        },
        SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::OutboundFailure {
            peer,
            error,
            ..
        })) => {
            tracing::debug!(%peer, %error, "sync request failed");
            if let Some(&from) = index_of.get(&peer) {
                deliver(Inbound::SyncFailed { from });
            }
        }
        SwarmEvent::ConnectionEstablished { peer_id, .. } => {
            tracing::debug!(peer = %peer_id, "connected");
        }
        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
            tracing::debug!(peer = %peer_id, "disconnected");
        }
        _ => {}
    }
}

/// Why a gossip message is not a transaction batch.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxBatchError {
    #[error("malformed RLP: {0}")]
    Rlp(#[from] alloy_rlp::Error),
    #[error("not an RLP list")]
    NotAList,
    #[error("{0} bytes after the list")]
    Trailing(usize),
    #[error("more than {TX_BATCH_TXS_MAX} transactions")]
    TooMany,
}

/// Packs transactions, in order, into gossip messages (RLP lists) of at
/// most [`TX_GOSSIP_BYTES_MAX`] bytes and [`TX_BATCH_TXS_MAX`] transactions,
/// each with its transaction count. A transaction too large for a message
/// of its own is left out (the pool admits none that large).
pub fn encode_tx_batches(txs: &[Bytes]) -> Vec<(Vec<u8>, usize)> {
    use alloy_rlp::Encodable;
    let mut messages = Vec::new();
    let mut start = 0;
    while start < txs.len() {
        let (mut end, mut payload) = (start, 0);
        while end < txs.len() && end - start < TX_BATCH_TXS_MAX {
            let length = txs[end].length();
            if payload + length > TX_GOSSIP_BYTES_MAX - TX_BATCH_HEADER_MAX {
                break;
            }
            payload += length;
            end += 1;
        }
        if end == start {
            // Too large alone: skip it.
            start += 1;
            continue;
        }
        let mut bytes = Vec::with_capacity(payload + TX_BATCH_HEADER_MAX);
        alloy_rlp::encode_list::<Bytes, Bytes>(&txs[start..end], &mut bytes);
        messages.push((bytes, end - start));
        start = end;
    }
    messages
}

/// Decodes one gossip message into its raw transactions (not checked: the
/// pool does that). Bounded by the message size and [`TX_BATCH_TXS_MAX`].
pub fn decode_tx_batch(mut bytes: &[u8]) -> Result<Vec<Bytes>, TxBatchError> {
    let header = alloy_rlp::Header::decode(&mut bytes)?;
    if !header.list {
        return Err(TxBatchError::NotAList);
    }
    if bytes.len() != header.payload_length {
        return Err(TxBatchError::Trailing(bytes.len().saturating_sub(header.payload_length)));
    }
    let mut txs = Vec::new();
    while !bytes.is_empty() {
        if txs.len() == TX_BATCH_TXS_MAX {
            return Err(TxBatchError::TooMany);
        }
        let tx = alloy_rlp::Header::decode_bytes(&mut bytes, false)?;
        txs.push(Bytes::copy_from_slice(tx));
    }
    Ok(txs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_batches_round_trip_within_their_limits() {
        let txs: Vec<Bytes> = (0..10_000u32)
            .map(|i| Bytes::from(vec![i as u8; 1 + (i as usize * 7) % 300]))
            .collect();
        let messages = encode_tx_batches(&txs);
        let mut decoded = Vec::new();
        for (bytes, count) in &messages {
            assert!(bytes.len() <= TX_GOSSIP_BYTES_MAX);
            let batch = decode_tx_batch(bytes).unwrap();
            assert_eq!(batch.len(), *count);
            assert!(batch.len() <= TX_BATCH_TXS_MAX);
            decoded.extend(batch);
        }
        assert_eq!(decoded, txs);
        assert!(messages.len() > 1, "10,000 transactions need several messages");
        // The largest transaction the pool admits goes alone; a larger one
        // is left out rather than sent over the limit.
        let big = Bytes::from(vec![1u8; 128 * 1024]);
        let huge = Bytes::from(vec![2u8; TX_GOSSIP_BYTES_MAX]);
        let messages = encode_tx_batches(&[big.clone(), huge, big.clone()]);
        assert_eq!(messages.len(), 2);
        for (bytes, count) in &messages {
            assert_eq!((decode_tx_batch(bytes).unwrap(), *count), (vec![big.clone()], 1));
        }
    }

    #[test]
    fn malformed_transaction_batches_are_refused() {
        let (good, _) = encode_tx_batches(&[Bytes::from_static(b"tx")]).remove(0);
        assert_eq!(decode_tx_batch(&[]), Err(TxBatchError::Rlp(alloy_rlp::Error::InputTooShort)));
        assert_eq!(decode_tx_batch(&good[1..]), Err(TxBatchError::NotAList));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode_tx_batch(&trailing), Err(TxBatchError::Trailing(1)));
        // A list item that is itself a list is not a raw transaction.
        let nested = [0xc2, 0xc1, 0x80];
        assert!(matches!(decode_tx_batch(&nested), Err(TxBatchError::Rlp(_))));
        // A header claiming more than the message holds.
        assert!(decode_tx_batch(&[0xf9, 0xff, 0xff, 0x80]).is_err());
        let many: Vec<u8> = {
            let items = vec![Bytes::from_static(b"x"); TX_BATCH_TXS_MAX + 1];
            let mut out = Vec::new();
            alloy_rlp::encode_list::<Bytes, Bytes>(&items, &mut out);
            out
        };
        assert_eq!(decode_tx_batch(&many), Err(TxBatchError::TooMany));
    }

    #[test]
    fn peer_id_is_the_validator_key() {
        let secret = [7u8; 32];
        let signing = ed25519_dalek::SigningKey::from_bytes(&secret);
        let from_validator = peer_id_of(signing.verifying_key().as_bytes()).unwrap();
        let mut bytes = secret;
        let keypair = identity::Keypair::ed25519_from_bytes(&mut bytes).unwrap();
        assert_eq!(keypair.public().to_peer_id(), from_validator);
    }
}
