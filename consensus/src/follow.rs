//! Following the finalized chain without being a validator.
//!
//! A full node holds no key of the validator set. It learns which blocks
//! are final from validators it does not trust, one at a time, and checks
//! every answer against the validator set alone.
//!
//! # Proof of finality
//!
//! The core commits block `B` when a child `C` of `B`, proposed in round
//! `B.round + 1`, is certified (see [`crate::core`]). A [`CommitProof`] is
//! exactly that: `C`'s header and its QC. It proves `B` final because
//! more than 2/3 of the stake signed `C`, and an honest validator signs `C`
//! only with a valid QC of `B` in hand. So the proof is as strong as the
//! commit rule itself: forging it takes more than 1/3 of the stake.
//! The ancestors of `B` are final through their hash links: each header
//! names its parent's id. A proof therefore covers a whole range of blocks,
//! and validators keep one per commit step, not one per block
//! ([`Action::CommitProof`](crate::Action::CommitProof), stored in a
//! [`ProofLog`]).
//!
//! # Sync
//!
//! A follower asks one peer at a time for the blocks after the last it
//! verified ([`SyncRequest`]). The peer answers from its ledger and proof log
//! ([`serve`]): the blocks from `from` on, up to the first height it holds
//! a proof for, within a block count and a byte budget, plus that proof
//! when the answer reaches it ([`SyncResponse`]). The [`Follower`] checks
//! every block (epoch, height, parent link, payload hash) before it keeps
//! it as *pending*, and releases pending blocks only when a proof covers
//! the last of them. Pending blocks are bounded in count and bytes; a
//! wrong answer is a typed [`FollowError`] that clears the pending blocks
//! (they were never trusted) so the next peer starts from the last
//! verified block.

use std::collections::BTreeMap;
use std::path::Path;

use thiserror::Error;

use crate::codec::{
    DecodeError, Encode, MESSAGE_BYTES_MAX, PAYLOAD_BYTES_MAX, Reader, decode_finalized,
    decode_header, decode_qc, encode_qc,
};
use crate::crypto::Scheme;
use crate::ledger::Ledger;
use crate::store::{RecordFile, StoreError};
use crate::types::{
    BlockHeader, BlockId, Epoch, FinalizedBlock, Height, QuorumCert, sha256, vote_message,
};
use crate::validators::ValidatorSet;

/// Most blocks one [`SyncResponse`] carries.
pub const SYNC_BLOCKS_MAX: u32 = 256;
/// Bytes of one [`SyncResponse`] a server fills at most: the frame cap,
/// less room for the proof and framing.
pub const SYNC_RESPONSE_BYTES_BUDGET: usize = MESSAGE_BYTES_MAX - (64 << 10);
/// Bytes of an encoded [`SyncRequest`].
pub const SYNC_REQUEST_BYTES: usize = 1 + 8 + 4;

const SYNC_REQUEST_TAG: u8 = 0x51;
const SYNC_RESPONSE_TAG: u8 = 0x52;

/// `child` is certified by `qc`, proposed in the round after its parent:
/// its parent (and every ancestor) is final.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CommitProof<S: Scheme> {
    pub child: BlockHeader,
    pub qc: QuorumCert<S>,
}

impl<S: Scheme> CommitProof<S> {
    /// The id of the block this proves final.
    pub fn committed(&self) -> BlockId {
        self.child.parent
    }
}

/// Why a [`CommitProof`] does not prove a block final.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProofError {
    #[error("proof of epoch {found}, the chain is epoch {expected}")]
    WrongEpoch { expected: Epoch, found: Epoch },
    #[error("the QC is for another block than the proof's child")]
    QcNotForChild,
    #[error("the QC is of round {qc}, the child was proposed in round {child}")]
    QcRound { qc: u64, child: u64 },
    #[error("the proof's child does not extend block {height}")]
    NotAChild { height: Height },
    #[error("the child is of round {child}, not the round after block {height} (round {parent})")]
    NotNextRound { height: Height, parent: u64, child: u64 },
    #[error("the QC's signer set does not match the validator set")]
    SignerSet,
    #[error("the QC's signers hold no quorum of the stake")]
    NoQuorum,
    #[error("the QC's signatures do not verify")]
    BadSignature,
}

/// Checks that `proof` makes `committed` final under `validators`.
pub fn verify_commit_proof<S: Scheme>(
    validators: &ValidatorSet<S>,
    epoch: Epoch,
    committed: &BlockHeader,
    proof: &CommitProof<S>,
) -> Result<(), ProofError> {
    let (child, qc) = (&proof.child, &proof.qc);
    for found in [child.epoch, qc.epoch, committed.epoch] {
        if found != epoch {
            return Err(ProofError::WrongEpoch { expected: epoch, found });
        }
    }
    if qc.block != child.id() {
        return Err(ProofError::QcNotForChild);
    }
    if qc.round != child.round {
        return Err(ProofError::QcRound { qc: qc.round, child: child.round });
    }
    if child.parent != committed.id() || child.height != committed.height + 1 {
        return Err(ProofError::NotAChild { height: committed.height });
    }
    if committed.round.checked_add(1) != Some(child.round) {
        return Err(ProofError::NotNextRound {
            height: committed.height,
            parent: committed.round,
            child: child.round,
        });
    }
    if qc.signers.len_bits() != validators.len() {
        return Err(ProofError::SignerSet);
    }
    let mut stake = 0u64;
    let mut keys = Vec::with_capacity(qc.signers.count());
    for signer in qc.signers.iter() {
        stake = stake.saturating_add(validators.stake(signer));
        keys.push(validators.public_key(signer).ok_or(ProofError::SignerSet)?);
    }
    if !validators.is_quorum(stake) {
        return Err(ProofError::NoQuorum);
    }
    if !S::verify_aggregate(&keys, &vote_message(qc.epoch, qc.round, &qc.block), &qc.aggregate) {
        return Err(ProofError::BadSignature);
    }
    Ok(())
}

/// "Send me the finalized blocks from height `from` on."
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SyncRequest {
    pub from: Height,
    /// At most this many blocks (capped at [`SYNC_BLOCKS_MAX`] by the server).
    pub blocks_max: u32,
}

impl SyncRequest {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SYNC_REQUEST_BYTES);
        out.push(SYNC_REQUEST_TAG);
        out.extend_from_slice(&self.from.to_le_bytes());
        out.extend_from_slice(&self.blocks_max.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<SyncRequest, DecodeError> {
        if bytes.len() > SYNC_REQUEST_BYTES {
            return Err(DecodeError::Oversized { len: bytes.len(), max: SYNC_REQUEST_BYTES });
        }
        let mut r = Reader::new(bytes);
        match r.u8()? {
            SYNC_REQUEST_TAG => {}
            tag => return Err(DecodeError::UnknownTag { what: "sync request", tag }),
        }
        let request = SyncRequest { from: r.u64()?, blocks_max: r.u32()? };
        r.finish()?;
        if request.from == 0 {
            return Err(DecodeError::Invalid("sync from height 0 (the genesis is not served)"));
        }
        Ok(request)
    }
}

/// Consecutive finalized blocks from the requested height, and the proof
/// that the last of them is final when the server has it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SyncResponse<S: Scheme> {
    pub blocks: Vec<FinalizedBlock>,
    pub proof: Option<CommitProof<S>>,
}

impl<S: Scheme> SyncResponse<S> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(SYNC_RESPONSE_TAG);
        out.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        for block in &self.blocks {
            let body = block.to_bytes();
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&body);
        }
        match &self.proof {
            None => out.push(0),
            Some(proof) => {
                out.push(1);
                proof.encode(&mut out);
            }
        }
        out
    }

    /// Decodes a response of at most [`MESSAGE_BYTES_MAX`] bytes and
    /// [`SYNC_BLOCKS_MAX`] blocks.
    pub fn decode(bytes: &[u8]) -> Result<SyncResponse<S>, DecodeError> {
        if bytes.len() > MESSAGE_BYTES_MAX {
            return Err(DecodeError::Oversized { len: bytes.len(), max: MESSAGE_BYTES_MAX });
        }
        let mut r = Reader::new(bytes);
        match r.u8()? {
            SYNC_RESPONSE_TAG => {}
            tag => return Err(DecodeError::UnknownTag { what: "sync response", tag }),
        }
        let count = r.u32()?;
        if count > SYNC_BLOCKS_MAX {
            return Err(DecodeError::TooLong {
                what: "sync blocks",
                len: count as usize,
                max: SYNC_BLOCKS_MAX as usize,
            });
        }
        let mut blocks = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let body = r.bytes("sync block", PAYLOAD_BYTES_MAX + 1024)?;
            blocks.push(decode_finalized(body)?);
        }
        let proof = match r.u8()? {
            0 => None,
            1 => Some(CommitProof::decode_from(&mut r)?),
            tag => return Err(DecodeError::UnknownTag { what: "sync proof", tag }),
        };
        r.finish()?;
        Ok(SyncResponse { blocks, proof })
    }
}

impl<S: Scheme> Encode for CommitProof<S> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.child.encode(out);
        encode_qc(out, &self.qc);
    }
}

impl<S: Scheme> CommitProof<S> {
    fn decode_from(r: &mut Reader<'_>) -> Result<CommitProof<S>, DecodeError> {
        let child = decode_header(r)?;
        let qc = decode_qc(r)?;
        Ok(CommitProof { child, qc })
    }

    /// Decodes one whole proof (a [`ProofLog`] record).
    pub fn decode(bytes: &[u8]) -> Result<CommitProof<S>, DecodeError> {
        let mut r = Reader::new(bytes);
        let proof = CommitProof::decode_from(&mut r)?;
        r.finish()?;
        Ok(proof)
    }
}

/// Where a server finds proofs.
pub trait ProofSource<S: Scheme> {
    /// The lowest height `>= from` with a proof, and the proof.
    fn proof_at_or_after(
        &self,
        from: Height,
    ) -> Result<Option<(Height, CommitProof<S>)>, StoreError>;
}

/// Answers `request` from `ledger` and `proofs`: blocks `from..=end`, where
/// `end` is the first height with a proof (or the ledger tip), cut short
/// by [`SYNC_BLOCKS_MAX`], the request's own limit and
/// [`SYNC_RESPONSE_BYTES_BUDGET`]; the proof comes along when the answer
/// reaches it. A request past the tip gets no blocks.
pub fn serve<S: Scheme>(
    ledger: &impl Ledger,
    proofs: &impl ProofSource<S>,
    request: SyncRequest,
) -> Result<SyncResponse<S>, StoreError> {
    let tip = ledger.tip_height();
    let from = request.from.max(1);
    if from > tip {
        return Ok(SyncResponse { blocks: Vec::new(), proof: None });
    }
    let proof = proofs.proof_at_or_after(from)?.filter(|(height, _)| *height <= tip);
    let count = u64::from(request.blocks_max.clamp(1, SYNC_BLOCKS_MAX));
    let mut end = proof.as_ref().map_or(tip, |(height, _)| *height);
    end = end.min(from + count - 1);
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    for height in from..=end {
        let Some(block) = ledger.get(height)? else { break };
        bytes += block.payload.len() + 256;
        if !blocks.is_empty() && bytes > SYNC_RESPONSE_BYTES_BUDGET {
            break;
        }
        blocks.push(block);
    }
    let last = blocks.last().map(|b| b.header.height);
    let proof = proof.filter(|(height, _)| Some(*height) == last).map(|(_, proof)| proof);
    Ok(SyncResponse { blocks, proof })
}

/// An append-only file of commit proofs by height, on the checksummed
/// records of [`crate::store`]. Appends are not synced: a proof lost in a
/// crash is only a proof a follower waits one more commit for, never a
/// safety matter. A torn tail is cut on open; an index of offsets by
/// height stays in memory (16 bytes a commit step).
pub struct ProofLog<S: Scheme> {
    file: RecordFile,
    index: BTreeMap<Height, u64>,
    _scheme: std::marker::PhantomData<S>,
}

impl<S: Scheme> ProofLog<S> {
    pub fn open(path: &Path) -> Result<ProofLog<S>, StoreError> {
        let (file, recovered) = RecordFile::open(path, 64 << 10, false)?;
        let mut index = BTreeMap::new();
        for (offset, _) in recovered.records {
            let body = file.read_at(offset)?;
            let proof = CommitProof::<S>::decode(&body)?;
            index.insert(proof.child.height.saturating_sub(1), offset);
        }
        Ok(ProofLog { file, index, _scheme: std::marker::PhantomData })
    }

    /// Stores the proof of block `height`; a height not above the newest
    /// stored is ignored (a restarted core may prove a height again).
    pub fn append(&mut self, height: Height, proof: &CommitProof<S>) -> Result<(), StoreError> {
        if self.index.last_key_value().is_some_and(|(last, _)| *last >= height) {
            return Ok(());
        }
        debug_assert_eq!(proof.child.height, height + 1);
        let offset = self.file.append(&proof.to_bytes())?;
        self.index.insert(height, offset);
        Ok(())
    }

    /// The newest height with a proof.
    pub fn newest(&self) -> Option<Height> {
        self.index.last_key_value().map(|(height, _)| *height)
    }
}

impl<S: Scheme> ProofSource<S> for ProofLog<S> {
    fn proof_at_or_after(
        &self,
        from: Height,
    ) -> Result<Option<(Height, CommitProof<S>)>, StoreError> {
        let Some((height, offset)) = self.index.range(from..).next() else { return Ok(None) };
        let proof = CommitProof::decode(&self.file.read_at(*offset)?)?;
        Ok(Some((*height, proof)))
    }
}

/// Limits of a [`Follower`].
#[derive(Clone, Copy, Debug)]
pub struct FollowerConfig {
    /// Blocks asked for per request.
    pub blocks_per_request: u32,
    /// Unverified blocks held while waiting for a proof.
    pub pending_blocks_max: usize,
    pub pending_bytes_max: usize,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        Self {
            blocks_per_request: 64,
            pending_blocks_max: 4 * SYNC_BLOCKS_MAX as usize,
            pending_bytes_max: 64 << 20,
        }
    }
}

/// Why an answer was refused. Every one of them clears the pending blocks.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FollowError {
    #[error("the answer starts at height {got}, we asked for {expected}")]
    WrongStart { expected: Height, got: Height },
    #[error("block {height}: epoch {found}, the chain is epoch {expected}")]
    WrongEpoch { height: Height, expected: Epoch, found: Epoch },
    #[error("block {height} does not follow block {}", .height - 1)]
    NotLinked { height: Height },
    #[error("block {height}: the payload does not match the header's payload hash")]
    PayloadHash { height: Height },
    #[error("block {height}: payload of {len} bytes, over the cap of {max}")]
    PayloadTooLarge { height: Height, len: usize, max: usize },
    #[error("{blocks} unverified blocks ({bytes} bytes) without a proof: over the limit")]
    PendingFull { blocks: usize, bytes: usize },
    #[error("a proof came without a block to prove")]
    ProofWithoutBlock,
    #[error("bad proof for block {height}: {source}")]
    Proof { height: Height, source: ProofError },
}

/// The sans-IO state of a node following the finalized chain: what it has
/// verified, what it holds unverified, what to ask next.
pub struct Follower<S: Scheme> {
    validators: ValidatorSet<S>,
    epoch: Epoch,
    config: FollowerConfig,
    verified_height: Height,
    verified_id: BlockId,
    pending: Vec<FinalizedBlock>,
    pending_bytes: usize,
}

impl<S: Scheme> Follower<S> {
    /// A follower whose newest verified block is `tip` (the genesis header
    /// for a fresh one; the ledger tip after a restart).
    pub fn new(
        validators: ValidatorSet<S>,
        epoch: Epoch,
        tip: &BlockHeader,
        config: FollowerConfig,
    ) -> Follower<S> {
        Follower {
            validators,
            epoch,
            config,
            verified_height: tip.height,
            verified_id: tip.id(),
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    /// Height of the newest verified block.
    pub fn verified_height(&self) -> Height {
        self.verified_height
    }

    /// Blocks held unverified.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The next request to send.
    pub fn request(&self) -> SyncRequest {
        SyncRequest {
            from: self.verified_height + self.pending.len() as u64 + 1,
            blocks_max: self.config.blocks_per_request,
        }
    }

    /// Takes an answer: its blocks are checked and held; when a proof
    /// covers the last one, every held block is verified and returned in
    /// height order (to be appended to the ledger and executed).
    pub fn on_response(
        &mut self,
        response: SyncResponse<S>,
    ) -> Result<Vec<FinalizedBlock>, FollowError> {
        let result = self.take(response);
        if result.is_err() {
            self.pending.clear();
            self.pending_bytes = 0;
        }
        result
    }

    fn take(&mut self, response: SyncResponse<S>) -> Result<Vec<FinalizedBlock>, FollowError> {
        let SyncResponse { blocks, proof } = response;
        let expected = self.request().from;
        if let Some(first) = blocks.first()
            && first.header.height != expected
        {
            return Err(FollowError::WrongStart { expected, got: first.header.height });
        }
        let (mut height, mut id) = match self.pending.last() {
            Some(last) => (last.header.height, last.header.id()),
            None => (self.verified_height, self.verified_id),
        };
        let mut bytes = self.pending_bytes;
        for block in &blocks {
            let header = &block.header;
            if header.epoch != self.epoch {
                return Err(FollowError::WrongEpoch {
                    height: header.height,
                    expected: self.epoch,
                    found: header.epoch,
                });
            }
            if header.height != height + 1 || header.parent != id {
                return Err(FollowError::NotLinked { height: header.height });
            }
            if block.payload.len() > PAYLOAD_BYTES_MAX {
                return Err(FollowError::PayloadTooLarge {
                    height: header.height,
                    len: block.payload.len(),
                    max: PAYLOAD_BYTES_MAX,
                });
            }
            if sha256(&[&block.payload]) != header.payload_hash {
                return Err(FollowError::PayloadHash { height: header.height });
            }
            height = header.height;
            id = header.id();
            bytes += block.payload.len();
        }
        let count = self.pending.len() + blocks.len();
        if count > self.config.pending_blocks_max || bytes > self.config.pending_bytes_max {
            return Err(FollowError::PendingFull { blocks: count, bytes });
        }
        if let Some(proof) = &proof {
            let last =
                blocks.last().or(self.pending.last()).ok_or(FollowError::ProofWithoutBlock)?;
            verify_commit_proof(&self.validators, self.epoch, &last.header, proof)
                .map_err(|source| FollowError::Proof { height: last.header.height, source })?;
        }
        self.pending.extend(blocks);
        self.pending_bytes = bytes;
        if proof.is_none() {
            return Ok(Vec::new());
        }
        self.pending_bytes = 0;
        let verified = std::mem::take(&mut self.pending);
        if let Some(last) = verified.last() {
            self.verified_height = last.header.height;
            self.verified_id = last.header.id();
        }
        Ok(verified)
    }
}
