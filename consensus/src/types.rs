//! Protocol data: block headers, votes, certificates and the wire messages.
//!
//! Every signed statement has its own domain-separated byte string
//! ([`vote_message`], [`timeout_message`], [`proposal_message`]), so a
//! signature over one kind of statement can never be replayed as another.
//! A block's id is the SHA-256 of its encoded header; the payload is bound to
//! the header by `payload_hash`, so a block fetched from any peer is checked
//! against the id that a certificate or a child named.

use sha2::{Digest, Sha256};

use crate::codec::Encode;
use crate::crypto::{Scheme, SignerSet};

/// A consensus round. Round 0 is genesis; the first proposal is in round 1.
pub type Round = u64;
/// Height of a block in the chain. Genesis is height 0.
pub type Height = u64;
/// Validator-set epoch. Messages of another epoch are dropped.
pub type Epoch = u64;
/// Position of a validator in the [`crate::ValidatorSet`].
pub type ValidatorIndex = u16;

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The id of a block: SHA-256 of its encoded [`BlockHeader`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BlockId(pub [u8; 32]);

impl std::fmt::Debug for BlockId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// What execution reports for one block: the header fields that depend on
/// running it. Carried K blocks later in a proposal and checked by voters.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ExecutionResult {
    pub state_root: [u8; 32],
    pub receipts_root: [u8; 32],
    pub logs_bloom: [u8; 256],
    pub gas_used: u64,
}

/// The execution result of the block at `height`, carried by a later block.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DelayedResult {
    pub height: Height,
    pub result: ExecutionResult,
}

/// A block header. The payload itself travels beside it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockHeader {
    pub epoch: Epoch,
    /// The round this block was proposed in; a QC for it is always of this round.
    pub round: Round,
    /// The leader of `round`.
    pub author: ValidatorIndex,
    pub height: Height,
    pub parent: BlockId,
    pub payload_hash: [u8; 32],
    /// Result of block `height - K`, present exactly when that block is
    /// committed on this block's own branch (see `crate::core`).
    pub delayed: Option<DelayedResult>,
}

impl BlockHeader {
    /// The genesis header of `epoch`: round 0, height 0, empty payload.
    pub fn genesis(epoch: Epoch) -> Self {
        Self {
            epoch,
            round: 0,
            author: 0,
            height: 0,
            parent: BlockId::default(),
            payload_hash: sha256(&[]),
            delayed: None,
        }
    }

    /// The block id: SHA-256 over a domain tag and the encoded header.
    pub fn id(&self) -> BlockId {
        let mut bytes = Vec::with_capacity(128);
        self.encode(&mut bytes);
        BlockId(sha256(&[b"wake/block/v1", &bytes]))
    }
}

/// A block the ledger keeps: the header and the ordered payload.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FinalizedBlock {
    pub header: BlockHeader,
    pub payload: Vec<u8>,
}

/// A vote for a block, sent to the leader of the next round.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Vote<S: Scheme> {
    pub epoch: Epoch,
    pub round: Round,
    pub block: BlockId,
    pub signer: ValidatorIndex,
    pub signature: S::Signature,
}

/// More than 2/3 of the stake voted for `block` in `round`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct QuorumCert<S: Scheme> {
    pub epoch: Epoch,
    pub round: Round,
    pub block: BlockId,
    pub signers: SignerSet,
    /// One aggregate over [`vote_message`]; for ed25519 the list of signatures.
    pub aggregate: S::Aggregate,
}

impl<S: Scheme> QuorumCert<S> {
    /// The certificate of genesis, which needs no signatures.
    pub fn genesis(epoch: Epoch) -> Self {
        Self {
            epoch,
            round: 0,
            block: BlockHeader::genesis(epoch).id(),
            signers: SignerSet::default(),
            aggregate: S::aggregate(&[]),
        }
    }
}

/// The highest block a validator voted for, reported in its timeout so that
/// the next leader can re-propose it (tail-forking resistance).
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub struct Tip {
    pub round: Round,
    pub id: BlockId,
    /// Round of the QC the block carried for its parent.
    pub justify_round: Round,
}

/// A validator gives up on `round`. Broadcast to everyone.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Timeout<S: Scheme> {
    pub epoch: Epoch,
    pub round: Round,
    pub signer: ValidatorIndex,
    pub high_qc: QuorumCert<S>,
    pub tip: Option<Tip>,
    /// Over [`timeout_message`] (round, the high QC's round, the tip).
    pub signature: S::Signature,
}

/// One signer's part of a [`TimeoutCert`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TimeoutEntry<S: Scheme> {
    pub signer: ValidatorIndex,
    pub high_qc_round: Round,
    pub tip: Option<Tip>,
    pub signature: S::Signature,
}

/// More than 2/3 of the stake timed out in `round`. Carries the highest QC
/// its signers reported, which a proposal after it must not go below.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TimeoutCert<S: Scheme> {
    pub epoch: Epoch,
    pub round: Round,
    pub entries: Vec<TimeoutEntry<S>>,
    pub high_qc: QuorumCert<S>,
}

/// A leader's proposal for its round.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Proposal<S: Scheme> {
    pub header: BlockHeader,
    pub payload: Vec<u8>,
    /// Certificate of `header.parent`.
    pub justify: QuorumCert<S>,
    /// Present when the previous round failed.
    pub tc: Option<TimeoutCert<S>>,
    /// Set when this block re-proposes the TC's tip: the tip's original
    /// (round, author). Everything else in the header is the tip's.
    pub reproposes: Option<(Round, ValidatorIndex)>,
    /// The author's signature over [`proposal_message`] of the block id.
    pub signature: S::Signature,
}

/// Everything that travels between validators.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message<S: Scheme> {
    Proposal(Box<Proposal<S>>),
    Vote(Vote<S>),
    Timeout(Box<Timeout<S>>),
    /// Ask a peer for a block by id (the height, when known, lets a peer
    /// serve it from its ledger).
    BlockRequest {
        id: BlockId,
        height: Option<Height>,
    },
    /// A block, with the certificate of its parent when the sender has it.
    BlockResponse(Box<BlockResponse<S>>),
}

/// Answer to [`Message::BlockRequest`]; bound to the request by the id.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockResponse<S: Scheme> {
    pub header: BlockHeader,
    pub payload: Vec<u8>,
    pub justify: Option<QuorumCert<S>>,
}

/// Bytes a vote signs.
pub fn vote_message(epoch: Epoch, round: Round, block: &BlockId) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"wake/vote/v1");
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&round.to_le_bytes());
    out.extend_from_slice(&block.0);
    out
}

/// Bytes a timeout signs.
pub fn timeout_message(
    epoch: Epoch,
    round: Round,
    high_qc_round: Round,
    tip: &Option<Tip>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"wake/timeout/v1");
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&round.to_le_bytes());
    out.extend_from_slice(&high_qc_round.to_le_bytes());
    match tip {
        None => out.push(0),
        Some(tip) => {
            out.push(1);
            out.extend_from_slice(&tip.round.to_le_bytes());
            out.extend_from_slice(&tip.id.0);
            out.extend_from_slice(&tip.justify_round.to_le_bytes());
        }
    }
    out
}

/// Bytes a proposal signs.
pub fn proposal_message(block: &BlockId) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    out.extend_from_slice(b"wake/proposal/v1");
    out.extend_from_slice(&block.0);
    out
}
