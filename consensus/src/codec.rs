//! Bounded binary wire codec.
//!
//! Little-endian integers, length-prefixed byte strings, one tag byte per
//! enum. Every length read from the wire is checked against a hard cap
//! before anything is allocated, a message larger than [`MESSAGE_BYTES_MAX`]
//! is refused before decoding starts, and trailing bytes are an error. A
//! decode error is a value ([`DecodeError`]), never a panic.

use thiserror::Error;

use crate::crypto::{Scheme, SignerSet, VALIDATORS_MAX};
use crate::types::{
    BlockHeader, BlockId, BlockResponse, DelayedResult, ExecutionResult, FinalizedBlock, Message,
    Proposal, QuorumCert, Timeout, TimeoutCert, TimeoutEntry, Tip, Vote,
};

/// Hard cap on one encoded message.
pub const MESSAGE_BYTES_MAX: usize = 4 << 20;
/// Hard cap on one block payload (a node may configure a lower one).
pub const PAYLOAD_BYTES_MAX: usize = 2 << 20;

/// Why bytes did not decode.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("input ended early")]
    UnexpectedEnd,
    #[error("message of {len} bytes is over the cap of {max}")]
    Oversized { len: usize, max: usize },
    #[error("{what}: length {len} is over the cap of {max}")]
    TooLong { what: &'static str, len: usize, max: usize },
    #[error("{what}: unknown tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    #[error("invalid value: {0}")]
    Invalid(&'static str),
}

/// A cursor over input bytes that never reads past the end.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len).ok_or(DecodeError::UnexpectedEnd)?;
        let slice = self.bytes.get(self.pos..end).ok_or(DecodeError::UnexpectedEnd)?;
        self.pos = end;
        Ok(slice)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A u32-length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong { what, len, max });
        }
        self.take(len)
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Error unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes(extra)),
        }
    }
}

/// Types with a wire form.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

impl Encode for BlockHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.epoch);
        put_u64(out, self.round);
        out.extend_from_slice(&self.author.to_le_bytes());
        put_u64(out, self.height);
        out.extend_from_slice(&self.parent.0);
        out.extend_from_slice(&self.payload_hash);
        match &self.delayed {
            None => out.push(0),
            Some(delayed) => {
                out.push(1);
                put_u64(out, delayed.height);
                out.extend_from_slice(&delayed.result.state_root);
                out.extend_from_slice(&delayed.result.receipts_root);
                out.extend_from_slice(&delayed.result.logs_bloom);
                put_u64(out, delayed.result.gas_used);
            }
        }
    }
}

pub fn decode_header(r: &mut Reader<'_>) -> Result<BlockHeader, DecodeError> {
    let epoch = r.u64()?;
    let round = r.u64()?;
    let author = r.u16()?;
    let height = r.u64()?;
    let parent = BlockId(r.array()?);
    let payload_hash = r.array()?;
    let delayed = match r.u8()? {
        0 => None,
        1 => Some(DelayedResult {
            height: r.u64()?,
            result: ExecutionResult {
                state_root: r.array()?,
                receipts_root: r.array()?,
                logs_bloom: r.array()?,
                gas_used: r.u64()?,
            },
        }),
        tag => return Err(DecodeError::UnknownTag { what: "delayed result", tag }),
    };
    Ok(BlockHeader { epoch, round, author, height, parent, payload_hash, delayed })
}

impl Encode for FinalizedBlock {
    fn encode(&self, out: &mut Vec<u8>) {
        self.header.encode(out);
        put_bytes(out, &self.payload);
    }
}

/// Decode a whole [`FinalizedBlock`] (the ledger's record body).
pub fn decode_finalized(bytes: &[u8]) -> Result<FinalizedBlock, DecodeError> {
    let mut r = Reader::new(bytes);
    let header = decode_header(&mut r)?;
    let payload = r.bytes("payload", PAYLOAD_BYTES_MAX)?.to_vec();
    r.finish()?;
    Ok(FinalizedBlock { header, payload })
}

fn encode_signers(out: &mut Vec<u8>, signers: &SignerSet) {
    out.extend_from_slice(&(signers.len_bits() as u16).to_le_bytes());
    out.extend_from_slice(signers.bytes());
}

fn decode_signers(r: &mut Reader<'_>) -> Result<SignerSet, DecodeError> {
    let len = r.u16()?;
    if len as usize > VALIDATORS_MAX {
        return Err(DecodeError::TooLong {
            what: "signer set",
            len: len as usize,
            max: VALIDATORS_MAX,
        });
    }
    let bits = r.take((len as usize).div_ceil(8))?.to_vec();
    // Bits past `len` must be zero, so one set has one encoding.
    if len % 8 != 0
        && let Some(last) = bits.last()
        && last >> (len % 8) != 0
    {
        return Err(DecodeError::Invalid("signer bit past the set length"));
    }
    Ok(SignerSet::from_parts(len, bits))
}

pub(crate) fn encode_qc<S: Scheme>(out: &mut Vec<u8>, qc: &QuorumCert<S>) {
    put_u64(out, qc.epoch);
    put_u64(out, qc.round);
    out.extend_from_slice(&qc.block.0);
    encode_signers(out, &qc.signers);
    S::encode_aggregate(&qc.aggregate, out);
}

pub(crate) fn decode_qc<S: Scheme>(r: &mut Reader<'_>) -> Result<QuorumCert<S>, DecodeError> {
    let epoch = r.u64()?;
    let round = r.u64()?;
    let block = BlockId(r.array()?);
    let signers = decode_signers(r)?;
    let aggregate = S::decode_aggregate(r, signers.count())?;
    Ok(QuorumCert { epoch, round, block, signers, aggregate })
}

fn encode_tip(out: &mut Vec<u8>, tip: &Option<Tip>) {
    match tip {
        None => out.push(0),
        Some(tip) => {
            out.push(1);
            put_u64(out, tip.round);
            out.extend_from_slice(&tip.id.0);
            put_u64(out, tip.justify_round);
        }
    }
}

fn decode_tip(r: &mut Reader<'_>) -> Result<Option<Tip>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(Tip { round: r.u64()?, id: BlockId(r.array()?), justify_round: r.u64()? })),
        tag => Err(DecodeError::UnknownTag { what: "tip", tag }),
    }
}

fn encode_tc<S: Scheme>(out: &mut Vec<u8>, tc: &TimeoutCert<S>) {
    put_u64(out, tc.epoch);
    put_u64(out, tc.round);
    out.extend_from_slice(&(tc.entries.len() as u16).to_le_bytes());
    for entry in &tc.entries {
        out.extend_from_slice(&entry.signer.to_le_bytes());
        put_u64(out, entry.high_qc_round);
        encode_tip(out, &entry.tip);
        S::encode_signature(&entry.signature, out);
    }
    encode_qc(out, &tc.high_qc);
}

fn decode_tc<S: Scheme>(r: &mut Reader<'_>) -> Result<TimeoutCert<S>, DecodeError> {
    let epoch = r.u64()?;
    let round = r.u64()?;
    let count = r.u16()? as usize;
    if count > VALIDATORS_MAX {
        return Err(DecodeError::TooLong {
            what: "timeout entries",
            len: count,
            max: VALIDATORS_MAX,
        });
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        entries.push(TimeoutEntry {
            signer: r.u16()?,
            high_qc_round: r.u64()?,
            tip: decode_tip(r)?,
            signature: S::decode_signature(r)?,
        });
    }
    let high_qc = decode_qc(r)?;
    Ok(TimeoutCert { epoch, round, entries, high_qc })
}

const TAG_PROPOSAL: u8 = 1;
const TAG_VOTE: u8 = 2;
const TAG_TIMEOUT: u8 = 3;
const TAG_BLOCK_REQUEST: u8 = 4;
const TAG_BLOCK_RESPONSE: u8 = 5;

impl<S: Scheme> Encode for Message<S> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Proposal(p) => {
                out.push(TAG_PROPOSAL);
                p.header.encode(out);
                put_bytes(out, &p.payload);
                encode_qc(out, &p.justify);
                match &p.tc {
                    None => out.push(0),
                    Some(tc) => {
                        out.push(1);
                        encode_tc(out, tc);
                    }
                }
                match p.reproposes {
                    None => out.push(0),
                    Some((round, author)) => {
                        out.push(1);
                        put_u64(out, round);
                        out.extend_from_slice(&author.to_le_bytes());
                    }
                }
                S::encode_signature(&p.signature, out);
            }
            Message::Vote(v) => {
                out.push(TAG_VOTE);
                put_u64(out, v.epoch);
                put_u64(out, v.round);
                out.extend_from_slice(&v.block.0);
                out.extend_from_slice(&v.signer.to_le_bytes());
                S::encode_signature(&v.signature, out);
            }
            Message::Timeout(t) => {
                out.push(TAG_TIMEOUT);
                put_u64(out, t.epoch);
                put_u64(out, t.round);
                out.extend_from_slice(&t.signer.to_le_bytes());
                encode_qc(out, &t.high_qc);
                encode_tip(out, &t.tip);
                S::encode_signature(&t.signature, out);
            }
            Message::BlockRequest { id, height } => {
                out.push(TAG_BLOCK_REQUEST);
                out.extend_from_slice(&id.0);
                match height {
                    None => out.push(0),
                    Some(height) => {
                        out.push(1);
                        put_u64(out, *height);
                    }
                }
            }
            Message::BlockResponse(b) => {
                out.push(TAG_BLOCK_RESPONSE);
                b.header.encode(out);
                put_bytes(out, &b.payload);
                match &b.justify {
                    None => out.push(0),
                    Some(qc) => {
                        out.push(1);
                        encode_qc(out, qc);
                    }
                }
            }
        }
    }
}

/// Decode one message. Oversized input is refused before any parsing.
pub fn decode_message<S: Scheme>(bytes: &[u8]) -> Result<Message<S>, DecodeError> {
    if bytes.len() > MESSAGE_BYTES_MAX {
        return Err(DecodeError::Oversized { len: bytes.len(), max: MESSAGE_BYTES_MAX });
    }
    let mut r = Reader::new(bytes);
    let message = match r.u8()? {
        TAG_PROPOSAL => {
            let header = decode_header(&mut r)?;
            let payload = r.bytes("payload", PAYLOAD_BYTES_MAX)?.to_vec();
            let justify = decode_qc(&mut r)?;
            let tc = match r.u8()? {
                0 => None,
                1 => Some(decode_tc(&mut r)?),
                tag => return Err(DecodeError::UnknownTag { what: "tc", tag }),
            };
            let reproposes = match r.u8()? {
                0 => None,
                1 => Some((r.u64()?, r.u16()?)),
                tag => return Err(DecodeError::UnknownTag { what: "reproposes", tag }),
            };
            let signature = S::decode_signature(&mut r)?;
            Message::Proposal(Box::new(Proposal {
                header,
                payload,
                justify,
                tc,
                reproposes,
                signature,
            }))
        }
        TAG_VOTE => Message::Vote(Vote {
            epoch: r.u64()?,
            round: r.u64()?,
            block: BlockId(r.array()?),
            signer: r.u16()?,
            signature: S::decode_signature(&mut r)?,
        }),
        TAG_TIMEOUT => Message::Timeout(Box::new(Timeout {
            epoch: r.u64()?,
            round: r.u64()?,
            signer: r.u16()?,
            high_qc: decode_qc(&mut r)?,
            tip: decode_tip(&mut r)?,
            signature: S::decode_signature(&mut r)?,
        })),
        TAG_BLOCK_REQUEST => {
            let id = BlockId(r.array()?);
            let height = match r.u8()? {
                0 => None,
                1 => Some(r.u64()?),
                tag => return Err(DecodeError::UnknownTag { what: "height", tag }),
            };
            Message::BlockRequest { id, height }
        }
        TAG_BLOCK_RESPONSE => {
            let header = decode_header(&mut r)?;
            let payload = r.bytes("payload", PAYLOAD_BYTES_MAX)?.to_vec();
            let justify = match r.u8()? {
                0 => None,
                1 => Some(decode_qc(&mut r)?),
                tag => return Err(DecodeError::UnknownTag { what: "justify", tag }),
            };
            Message::BlockResponse(Box::new(BlockResponse { header, payload, justify }))
        }
        tag => return Err(DecodeError::UnknownTag { what: "message", tag }),
    };
    r.finish()?;
    Ok(message)
}
