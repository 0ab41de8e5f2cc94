//! Trie nodes: the in-memory form, Ethereum's RLP form (for hashes and
//! proofs) and triedb's own on-disk form.
//!
//! # On-disk node format
//!
//! ```text
//! crc32c: u32   over (chunk: u32 LE, offset: u32 LE) ++ body — so a node read
//!               from the wrong place fails the check like a corrupt one
//! body:
//!   tag: u8     0 leaf(raw value) | 1 leaf(account, format 1) | 2 extension
//!               | 3 branch | 4 branch with a raw value
//!               | 5 leaf(account, packed) | 6 leaf(raw value < 256 bytes)
//!   path        (leaf, extension) u16 nibble count + packed nibbles
//!   leaf raw    u32 length + bytes (tag 6: u8 length + bytes)
//!   leaf acct   nonce u64, balance [32], code_hash [32], storage_bytes u64,
//!               storage root: child ref (kind 0 = empty trie)
//!   packed acct flags u8 (1 = has code, 2 = has storage), nonce, balance,
//!               code_hash [32] if it has code, storage_bytes, then the
//!               storage root's stored-ref fields if it has storage; nonce,
//!               balance and storage_bytes as u8 count + big-endian bytes
//!               without leading zeros
//!   extension   child ref
//!   branch      u16 bitmap, then one child ref per set bit, then (tag 4)
//!               u32 length + value bytes
//! child ref:    kind u8: 1 = inline (u8 length + Ethereum RLP, < 32 bytes)
//!                        2 = stored (hash [32], chunk u32, offset u32,
//!                            len u32, min_chunk u32)
//! ```
//!
//! A parent stores each child's hash *and* location, so hashing a new parent
//! never reads its children, and a lookup costs one read per uncached level.
//! `min_chunk` is the lowest chunk that the child's subtree touches: it lets
//! compaction find every node in old chunks without walking the whole trie.
//! Children whose RLP is shorter than 32 bytes are embedded in the parent,
//! exactly as Ethereum does, so they cost no read at all.
//!
//! Leaves are written in the packed forms (tags 5 and 6); tags 0 and 1 are
//! still read, so a format-1 file opens. An externally owned account is
//! mostly constants, the empty storage root and the empty code hash, and
//! its format-1 leaf spent 81 bytes on fixed-width fields whose content is
//! ~12 bytes (10M accounts: a bottom branch of ~10 embedded accounts, 1.35
//! KiB). Packed, the same node cache holds more bottom branches, and a cold
//! lookup finds more of them without a read.

use crate::codec::Reader;
use crate::{Error, Result};
use alloy_primitives::{B256, U256, keccak256};
use alloy_rlp::{Encodable, Header};
use std::sync::Arc;

/// Location of a stored node: logical chunk, byte offset in it, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Loc {
    pub chunk: u32,
    pub offset: u32,
    pub len: u32,
}

impl Loc {
    /// Cache key: unique for the life of the database, because logical chunk
    /// numbers are never reused.
    pub fn key(&self) -> u64 {
        (u64::from(self.chunk) << 32) | u64::from(self.offset)
    }
}

/// A reference to a node written to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoredRef {
    pub hash: B256,
    pub loc: Loc,
    /// Lowest logical chunk reachable from this node (itself included).
    pub min_chunk: u32,
}

/// A child pointer.
#[derive(Clone, Debug)]
pub(crate) enum Child {
    /// A node whose RLP is shorter than 32 bytes, embedded in its parent.
    Inline(Box<[u8]>),
    /// A node on disk.
    Stored(StoredRef),
    /// A small, self-contained subtree (a leaf, or a branch whose children
    /// are all embedded or inline) kept inside its parent's record on disk,
    /// with its hash. A lookup that reads a bottom branch has the rest of its
    /// path in hand. The subtree stays in its record form (see
    /// [`EmbeddedBody`]) and is decoded when a walk or a commit goes into
    /// it. `storage_min_chunk` is its [`Node::storage_min_chunk`], found
    /// when the parent is decoded: compaction asks for it of every embedded
    /// child it passes.
    Embedded { hash: B256, body: EmbeddedBody, storage_min_chunk: u32 },
    /// A node built by the commit in progress, not yet hashed or written.
    Mem(Box<Node>),
}

/// The record body of an embedded subtree: a range of its parent's record,
/// shared by every embedded child of that parent.
///
/// A bottom branch of the account trie holds ~15 embedded accounts.
/// Decoded, each was an `Arc<Node>`, a path and a boxed account, so a
/// bottom branch was ~50 allocations: decoding it, weighing it for the
/// cache, cloning it and freeing it at eviction walked them all, while a
/// lookup or a commit uses one or two of its children. In record form the
/// branch is its child table and one buffer; a child is decoded when it is
/// walked into, and written back by copying its bytes. Bodies are checked
/// when the parent is decoded ([`scan_body`]), so a corrupt embedded child
/// is reported with its parent's location, as before.
#[derive(Clone)]
pub(crate) struct EmbeddedBody {
    buf: Arc<[u8]>,
    start: u32,
    len: u16,
}

impl EmbeddedBody {
    /// A body of its own (a subtree the commit in progress built).
    pub fn from_bytes(bytes: &[u8]) -> EmbeddedBody {
        EmbeddedBody { buf: Arc::from(bytes), start: 0, len: bytes.len() as u16 }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start as usize..][..usize::from(self.len)]
    }

    /// The subtree, decoded (its embedded children share this buffer).
    pub fn decode(&self) -> Result<Node> {
        let mut decoder = Decoder { whole: &self.buf, shared: Some(Arc::clone(&self.buf)) };
        let mut r = Reader::new(self.bytes());
        decode_body(&mut r, &mut decoder)
            .ok_or(Error::InvalidValue("embedded node does not decode"))
    }
}

impl std::fmt::Debug for EmbeddedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmbeddedBody({} bytes)", self.len)
    }
}

/// The value in a leaf (or in a branch, for raw tries with keys of unequal length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// Raw bytes: storage values (RLP of the U256), code, raw-mode values.
    Raw(Box<[u8]>),
    /// An account of the state trie, with its storage trie.
    Account(Box<AccountValue>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountValue {
    pub nonce: u64,
    pub balance: U256,
    pub code_hash: B256,
    /// Bytes on disk of the storage trie (for space accounting).
    pub storage_bytes: u64,
    /// Root of the storage trie; `None` for the empty trie. Always `Stored`
    /// outside a commit.
    pub storage: Option<StoredRef>,
}

impl AccountValue {
    pub fn storage_root(&self) -> B256 {
        self.storage.map_or(crate::EMPTY_ROOT, |s| s.hash)
    }

    /// Ethereum's account RLP: `[nonce, balance, storage_root, code_hash]`.
    pub fn rlp(&self) -> Vec<u8> {
        let storage_root = self.storage_root();
        let payload_length = self.nonce.length()
            + self.balance.length()
            + storage_root.length()
            + self.code_hash.length();
        let mut out = Vec::with_capacity(payload_length + 3);
        Header { list: true, payload_length }.encode(&mut out);
        self.nonce.encode(&mut out);
        self.balance.encode(&mut out);
        storage_root.encode(&mut out);
        self.code_hash.encode(&mut out);
        out
    }
}

impl Value {
    /// The bytes Ethereum stores in the leaf (before the string wrapping).
    pub fn ethereum_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Value::Raw(bytes) => std::borrow::Cow::Borrowed(bytes),
            Value::Account(account) => std::borrow::Cow::Owned(account.rlp()),
        }
    }
}

/// A trie node. Paths hold one nibble per byte.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Leaf { path: Vec<u8>, value: Value },
    Extension { path: Vec<u8>, child: Child },
    Branch { children: Box<[Option<Child>; 16]>, value: Option<Value> },
}

/// Most bytes of a node on disk; bigger values are refused.
pub(crate) const MAX_NODE_BYTES: usize = 1 << 20;

const TAG_LEAF_RAW: u8 = 0;
const TAG_LEAF_ACCOUNT: u8 = 1;
const TAG_EXTENSION: u8 = 2;
const TAG_BRANCH: u8 = 3;
const TAG_BRANCH_VALUE: u8 = 4;
const TAG_LEAF_ACCOUNT_PACKED: u8 = 5;
const TAG_LEAF_RAW_SHORT: u8 = 6;
/// Flags of a packed account leaf.
const ACCOUNT_HAS_CODE: u8 = 1;
const ACCOUNT_HAS_STORAGE: u8 = 2;
const REF_NONE: u8 = 0;
const REF_INLINE: u8 = 1;
const REF_STORED: u8 = 2;
const REF_EMBEDDED: u8 = 3;
/// Self-contained subtrees with bodies up to this size are embedded in
/// their parent's record.
pub(crate) const EMBED_MAX_BYTES: usize = 512;

pub(crate) fn empty_branch() -> Box<[Option<Child>; 16]> {
    Box::default()
}

// ---------------------------------------------------------------------------
// Ethereum RLP
// ---------------------------------------------------------------------------

/// Hex-prefix encoding of a nibble path (Yellow Paper, appendix C).
fn hex_prefix(path: &[u8], leaf: bool, out: &mut Vec<u8>) {
    let flag = if leaf { 2 } else { 0 };
    let odd = path.len() % 2 == 1;
    if odd {
        out.push(((flag | 1) << 4) | path[0]);
        for pair in path[1..].chunks_exact(2) {
            out.push((pair[0] << 4) | pair[1]);
        }
    } else {
        out.push(flag << 4);
        for pair in path.chunks_exact(2) {
            out.push((pair[0] << 4) | pair[1]);
        }
    }
}

fn encode_bytes_string(bytes: &[u8], out: &mut Vec<u8>) {
    bytes.encode(out);
}

fn bytes_string_len(bytes: &[u8]) -> usize {
    bytes.length()
}

/// RLP length of a path's hex-prefix encoding (`1 + n / 2` bytes) as a
/// byte string: one byte alone when that is all (an empty or one-nibble
/// path encodes below 0x80), else with a string header. Keys of raw tries
/// (the `TrieTests`) can be longer than 64 nibbles.
fn hex_prefix_string_len(path: &[u8]) -> usize {
    match 1 + path.len() / 2 {
        1 => 1,
        len => alloy_rlp::length_of_length(len) + len,
    }
}

/// A path's hex-prefix encoding as an RLP byte string, written in place.
fn encode_hex_prefix_string(path: &[u8], leaf: bool, out: &mut Vec<u8>) {
    let len = 1 + path.len() / 2;
    if len > 1 {
        Header { list: false, payload_length: len }.encode(out);
    }
    hex_prefix(path, leaf, out);
}

/// RLP of a child as it appears inside its parent.
fn child_rlp_len(child: Option<&Child>) -> usize {
    match child {
        None => 1,
        Some(Child::Inline(rlp)) => rlp.len(),
        Some(Child::Stored(_)) | Some(Child::Embedded { .. }) => 33,
        Some(Child::Mem(_)) => unreachable!("children are sealed before their parent is encoded"),
    }
}

fn encode_child_rlp(child: Option<&Child>, out: &mut Vec<u8>) {
    match child {
        None => out.push(alloy_rlp::EMPTY_STRING_CODE),
        Some(Child::Inline(rlp)) => out.extend_from_slice(rlp),
        Some(Child::Stored(StoredRef { hash, .. })) | Some(Child::Embedded { hash, .. }) => {
            out.push(alloy_rlp::EMPTY_STRING_CODE + 32);
            out.extend_from_slice(hash.as_slice());
        }
        Some(Child::Mem(_)) => unreachable!("children are sealed before their parent is encoded"),
    }
}

impl Node {
    /// Ethereum's RLP of this node. Every child must be sealed (not `Mem`).
    pub fn ethereum_rlp(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_ethereum_rlp(&mut out);
        out
    }

    /// [`ethereum_rlp`](Self::ethereum_rlp) appended to `out`, reserved
    /// once: a commit encodes every node it writes, a full branch being 532
    /// bytes, and reuses one buffer for all of them.
    pub fn encode_ethereum_rlp(&self, out: &mut Vec<u8>) {
        match self {
            Node::Leaf { path, value } => {
                let value = value.ethereum_bytes();
                let payload_length = hex_prefix_string_len(path) + bytes_string_len(&value);
                out.reserve(payload_length + 3);
                Header { list: true, payload_length }.encode(out);
                encode_hex_prefix_string(path, true, out);
                encode_bytes_string(&value, out);
            }
            Node::Extension { path, child } => {
                let payload_length = hex_prefix_string_len(path) + child_rlp_len(Some(child));
                out.reserve(payload_length + 3);
                Header { list: true, payload_length }.encode(out);
                encode_hex_prefix_string(path, false, out);
                encode_child_rlp(Some(child), out);
            }
            Node::Branch { children, value } => {
                let value_bytes = value.as_ref().map(|v| v.ethereum_bytes());
                let value_len = value_bytes.as_ref().map_or(1, |v| bytes_string_len(v));
                let payload_length =
                    children.iter().map(|c| child_rlp_len(c.as_ref())).sum::<usize>() + value_len;
                out.reserve(payload_length + 3);
                Header { list: true, payload_length }.encode(out);
                for child in children.iter() {
                    encode_child_rlp(child.as_ref(), out);
                }
                match value_bytes {
                    Some(v) => encode_bytes_string(&v, out),
                    None => out.push(alloy_rlp::EMPTY_STRING_CODE),
                }
            }
        }
    }

    /// Decodes an embedded (inline) node from its Ethereum RLP. Inline nodes
    /// are self-contained: their children are inline too.
    pub fn from_inline_rlp(rlp: &[u8]) -> Result<Node> {
        decode_eth_node(rlp).ok_or(Error::InvalidValue("malformed inline node"))
    }

    /// True for a node that holds leaf data (a leaf, or a branch with
    /// embedded leaves): the bottom of a trie, as opposed to its inner
    /// structure, which the cache favours.
    pub fn holds_leaves(&self) -> bool {
        match self {
            Node::Leaf { .. } => true,
            Node::Extension { child, .. } => matches!(child, Child::Embedded { .. }),
            Node::Branch { children, value } => {
                value.is_some()
                    || children.iter().flatten().any(|c| matches!(c, Child::Embedded { .. }))
            }
        }
    }

    /// Lowest chunk that a storage trie hanging off an account leaf in this
    /// node, or in the subtrees embedded in it, reaches (`u32::MAX`: none).
    pub fn storage_min_chunk(&self) -> u32 {
        match self {
            Node::Leaf { value: Value::Account(account), .. } => {
                account.storage.map_or(u32::MAX, |s| s.min_chunk)
            }
            Node::Leaf { .. } => u32::MAX,
            Node::Extension { child, .. } => child_storage_min_chunk(child),
            Node::Branch { children, .. } => {
                children.iter().flatten().map(child_storage_min_chunk).min().unwrap_or(u32::MAX)
            }
        }
    }

    /// True when every child is inline or embedded: the node can itself be
    /// embedded in its parent.
    pub fn self_contained(&self) -> bool {
        let contained = |c: &Child| matches!(c, Child::Inline(_) | Child::Embedded { .. });
        match self {
            Node::Leaf { .. } => true,
            Node::Extension { child, .. } => contained(child),
            Node::Branch { children, .. } => children.iter().flatten().all(contained),
        }
    }

    /// The number of children present (branches only).
    pub fn child_count(children: &[Option<Child>; 16]) -> usize {
        children.iter().filter(|c| c.is_some()).count()
    }
}

fn decode_eth_node(mut rlp: &[u8]) -> Option<Node> {
    let header = Header::decode(&mut rlp).ok()?;
    if !header.list || header.payload_length != rlp.len() {
        return None;
    }
    let mut items: Vec<&[u8]> = Vec::with_capacity(17);
    let mut rest = rlp;
    while !rest.is_empty() {
        let start = rest;
        let item = Header::decode(&mut rest).ok()?;
        if item.payload_length > rest.len() {
            return None;
        }
        rest = &rest[item.payload_length..];
        items.push(&start[..start.len() - rest.len()]);
    }
    let string = |raw: &[u8]| -> Option<Vec<u8>> {
        let mut raw = raw;
        let h = Header::decode(&mut raw).ok()?;
        if h.list {
            return None;
        }
        Some(raw[..h.payload_length].to_vec())
    };
    let child = |raw: &[u8]| -> Option<Option<Child>> {
        if raw == [alloy_rlp::EMPTY_STRING_CODE] {
            return Some(None);
        }
        // Inside an inline node every child is an embedded list.
        if raw.first().is_some_and(|b| *b >= alloy_rlp::EMPTY_LIST_CODE) {
            Some(Some(Child::Inline(raw.into())))
        } else {
            None
        }
    };
    match items.len() {
        2 => {
            let hp = string(items[0])?;
            let (path, leaf) = decode_hex_prefix(&hp)?;
            if leaf {
                Some(Node::Leaf { path, value: Value::Raw(string(items[1])?.into()) })
            } else {
                Some(Node::Extension { path, child: child(items[1])?? })
            }
        }
        17 => {
            let mut children = empty_branch();
            for (slot, raw) in children.iter_mut().zip(&items[..16]) {
                *slot = child(raw)?;
            }
            let value = string(items[16])?;
            let value = (!value.is_empty()).then(|| Value::Raw(value.into()));
            Some(Node::Branch { children, value })
        }
        _ => None,
    }
}

fn decode_hex_prefix(hp: &[u8]) -> Option<(Vec<u8>, bool)> {
    let first = *hp.first()?;
    let flag = first >> 4;
    if flag > 3 {
        return None;
    }
    let leaf = flag & 2 != 0;
    let mut path = Vec::with_capacity(hp.len() * 2);
    if flag & 1 != 0 {
        path.push(first & 0x0f);
    }
    for byte in &hp[1..] {
        path.push(byte >> 4);
        path.push(byte & 0x0f);
    }
    Some((path, leaf))
}

/// Hashes a sealed node RLP: the reference a parent holds.
pub(crate) fn rlp_hash(rlp: &[u8]) -> B256 {
    keccak256(rlp)
}

fn child_storage_min_chunk(child: &Child) -> u32 {
    match child {
        Child::Embedded { storage_min_chunk, .. } => *storage_min_chunk,
        _ => u32::MAX,
    }
}

impl Child {
    /// `node`, with its hash, embedded in its parent; `body` is its encoded
    /// record body ([`Node::encode_body`]).
    pub fn embedded(hash: B256, node: &Node, body: &[u8]) -> Child {
        let storage_min_chunk = node.storage_min_chunk();
        Child::Embedded { hash, body: EmbeddedBody::from_bytes(body), storage_min_chunk }
    }

    /// [`embedded`](Self::embedded), encoding the body here.
    pub fn embed(hash: B256, node: &Node) -> Child {
        let mut body = Vec::new();
        node.encode_body(&mut body);
        Child::embedded(hash, node, &body)
    }
}

// ---------------------------------------------------------------------------
// Disk format
// ---------------------------------------------------------------------------

fn put_path(path: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(path.len() as u16).to_le_bytes());
    for pair in path.chunks(2) {
        let hi = pair[0];
        let lo = pair.get(1).copied().unwrap_or(0);
        out.push((hi << 4) | lo);
    }
}

fn put_value_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// `bytes` (big-endian) without its leading zeros, after their count.
fn put_trimmed(bytes: &[u8], out: &mut Vec<u8>) {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    out.push((bytes.len() - start) as u8);
    out.extend_from_slice(&bytes[start..]);
}

/// A packed account leaf's fields (after its path).
fn put_packed_account(account: &AccountValue, out: &mut Vec<u8>) {
    let has_code = account.code_hash != crate::KECCAK_EMPTY;
    let mut flags = 0;
    if has_code {
        flags |= ACCOUNT_HAS_CODE;
    }
    if account.storage.is_some() {
        flags |= ACCOUNT_HAS_STORAGE;
    }
    out.push(flags);
    put_trimmed(&account.nonce.to_be_bytes(), out);
    put_trimmed(&account.balance.to_be_bytes::<32>(), out);
    if has_code {
        out.extend_from_slice(account.code_hash.as_slice());
    }
    put_trimmed(&account.storage_bytes.to_be_bytes(), out);
    if let Some(stored) = &account.storage {
        put_stored_fields(stored, out);
    }
}

fn put_stored(stored: &StoredRef, out: &mut Vec<u8>) {
    out.push(REF_STORED);
    put_stored_fields(stored, out);
}

fn put_stored_fields(stored: &StoredRef, out: &mut Vec<u8>) {
    out.extend_from_slice(stored.hash.as_slice());
    out.extend_from_slice(&stored.loc.chunk.to_le_bytes());
    out.extend_from_slice(&stored.loc.offset.to_le_bytes());
    out.extend_from_slice(&stored.loc.len.to_le_bytes());
    out.extend_from_slice(&stored.min_chunk.to_le_bytes());
}

fn put_child(child: &Child, out: &mut Vec<u8>) {
    match child {
        Child::Inline(rlp) => {
            out.push(REF_INLINE);
            out.push(rlp.len() as u8);
            out.extend_from_slice(rlp);
        }
        Child::Stored(stored) => put_stored(stored, out),
        Child::Embedded { hash, body, .. } => {
            let bytes = body.bytes();
            out.push(REF_EMBEDDED);
            out.extend_from_slice(hash.as_slice());
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        Child::Mem(_) => unreachable!("children are sealed before their parent is written"),
    }
}

/// Checksum of a node body at its location.
pub(crate) fn node_crc(loc_chunk: u32, loc_offset: u32, body: &[u8]) -> u32 {
    let mut seed = [0u8; 8];
    seed[..4].copy_from_slice(&loc_chunk.to_le_bytes());
    seed[4..].copy_from_slice(&loc_offset.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&seed), body)
}

impl Node {
    /// Disk body of this node (without the checksum, which depends on where
    /// the node lands). Every child must be sealed.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Node::Leaf { path, value: Value::Raw(bytes) } => match u8::try_from(bytes.len()) {
                Ok(len) => {
                    out.push(TAG_LEAF_RAW_SHORT);
                    put_path(path, out);
                    out.push(len);
                    out.extend_from_slice(bytes);
                }
                Err(_) => {
                    out.push(TAG_LEAF_RAW);
                    put_path(path, out);
                    put_value_bytes(bytes, out);
                }
            },
            Node::Leaf { path, value: Value::Account(account) } => {
                out.push(TAG_LEAF_ACCOUNT_PACKED);
                put_path(path, out);
                put_packed_account(account, out);
            }
            Node::Extension { path, child } => {
                out.push(TAG_EXTENSION);
                put_path(path, out);
                put_child(child, out);
            }
            Node::Branch { children, value } => {
                out.push(if value.is_some() { TAG_BRANCH_VALUE } else { TAG_BRANCH });
                let mut bitmap = 0u16;
                for (i, child) in children.iter().enumerate() {
                    if child.is_some() {
                        bitmap |= 1 << i;
                    }
                }
                out.extend_from_slice(&bitmap.to_le_bytes());
                for child in children.iter().flatten() {
                    put_child(child, out);
                }
                if let Some(value) = value {
                    match value {
                        Value::Raw(bytes) => put_value_bytes(bytes, out),
                        // Account tries have fixed-length keys: no branch values.
                        Value::Account(_) => unreachable!("account value in a branch"),
                    }
                }
            }
        }
    }

    /// Decodes a node read from `loc`; `bytes` is exactly `loc.len` long.
    pub fn decode(loc: Loc, bytes: &[u8]) -> Result<Node> {
        let body = checked_body(loc, bytes)?;
        let mut r = Reader::new(body);
        let mut decoder = Decoder { whole: body, shared: None };
        decode_body(&mut r, &mut decoder).ok_or_else(|| corrupt(loc, "malformed node body"))
    }

    /// Like [`decode`](Self::decode), and also hands back the checked body
    /// as a shared record, which the node's embedded children point into:
    /// the cache keeps bottom nodes in this form (see
    /// [`decode_record`](Self::decode_record)).
    pub fn decode_with_record(loc: Loc, bytes: &[u8]) -> Result<(Node, Arc<[u8]>)> {
        let record: Arc<[u8]> = Arc::from(checked_body(loc, bytes)?);
        let node =
            Node::decode_record(&record).ok_or_else(|| corrupt(loc, "malformed node body"))?;
        Ok((node, record))
    }

    /// Decodes a record body that was checked when it was read (no
    /// checksum); its embedded children share `record`.
    pub fn decode_record(record: &Arc<[u8]>) -> Option<Node> {
        let mut decoder = Decoder { whole: record, shared: Some(Arc::clone(record)) };
        decode_body(&mut Reader::new(record), &mut decoder)
    }
}

fn corrupt(loc: Loc, reason: &'static str) -> Error {
    Error::CorruptNode { chunk: loc.chunk, offset: loc.offset, reason }
}

/// The body of a stored node (`crc32c ‖ body`), once its checksum matches.
fn checked_body(loc: Loc, bytes: &[u8]) -> Result<&[u8]> {
    if bytes.len() < 5 {
        return Err(corrupt(loc, "node shorter than its header"));
    }
    let stored_crc = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let body = &bytes[4..];
    if node_crc(loc.chunk, loc.offset, body) != stored_crc {
        return Err(corrupt(loc, "checksum mismatch"));
    }
    Ok(body)
}

/// What the embedded children of a record being decoded point into: the
/// record's bytes, copied into a shared buffer at the first one.
struct Decoder<'a> {
    whole: &'a [u8],
    shared: Option<Arc<[u8]>>,
}

impl Decoder<'_> {
    /// An embedded body at `bytes`, a sub-slice of `whole`.
    fn embedded(&mut self, bytes: &[u8]) -> EmbeddedBody {
        let start = bytes.as_ptr() as usize - self.whole.as_ptr() as usize;
        debug_assert!(start + bytes.len() <= self.whole.len());
        let whole = self.whole;
        let buf = self.shared.get_or_insert_with(|| Arc::from(whole));
        EmbeddedBody { buf: Arc::clone(buf), start: start as u32, len: bytes.len() as u16 }
    }
}

/// Node-specific reads, on top of the shared record reader.
impl<'a> Reader<'a> {
    fn path(&mut self) -> Option<Vec<u8>> {
        let nibbles = usize::from(self.u16()?);
        let packed = self.take(nibbles.div_ceil(2))?;
        let mut path = Vec::with_capacity(nibbles);
        for (i, byte) in packed.iter().enumerate() {
            path.push(byte >> 4);
            if 2 * i + 1 < nibbles {
                path.push(byte & 0x0f);
            } else if byte & 0x0f != 0 {
                return None;
            }
        }
        Some(path)
    }
    fn value_bytes(&mut self) -> Option<Box<[u8]>> {
        let len = self.u32()? as usize;
        self.take(len).map(Into::into)
    }
    /// A value under 256 bytes (tag 6), borrowed: a scan checks it
    /// without copying it.
    fn short_value(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.u8()?);
        self.take(len)
    }
    /// A big-endian number written by [`put_trimmed`], as `N` bytes; a
    /// count above `N` or a leading zero is corruption.
    fn trimmed<const N: usize>(&mut self) -> Option<[u8; N]> {
        let len = usize::from(self.u8()?);
        if len > N {
            return None;
        }
        let bytes = self.take(len)?;
        if bytes.first() == Some(&0) {
            return None;
        }
        let mut out = [0; N];
        out[N - len..].copy_from_slice(bytes);
        Some(out)
    }
    /// The fields of a format-1 account leaf (after its path).
    fn account(&mut self) -> Option<AccountValue> {
        let nonce = self.u64()?;
        let balance = U256::from_be_bytes::<32>(self.take(32)?.try_into().ok()?);
        let code_hash = self.b256()?;
        let storage_bytes = self.u64()?;
        let storage = match self.u8()? {
            REF_NONE => None,
            REF_STORED => Some(self.stored()?),
            _ => return None,
        };
        Some(AccountValue { nonce, balance, code_hash, storage_bytes, storage })
    }
    /// The fields of a packed account leaf (after its path).
    fn packed_account(&mut self) -> Option<AccountValue> {
        let flags = self.u8()?;
        if flags & !(ACCOUNT_HAS_CODE | ACCOUNT_HAS_STORAGE) != 0 {
            return None;
        }
        let nonce = u64::from_be_bytes(self.trimmed()?);
        let balance = U256::from_be_bytes(self.trimmed::<32>()?);
        let code_hash =
            if flags & ACCOUNT_HAS_CODE != 0 { self.b256()? } else { crate::KECCAK_EMPTY };
        let storage_bytes = u64::from_be_bytes(self.trimmed()?);
        let storage = if flags & ACCOUNT_HAS_STORAGE != 0 { Some(self.stored()?) } else { None };
        Some(AccountValue { nonce, balance, code_hash, storage_bytes, storage })
    }
    fn stored(&mut self) -> Option<StoredRef> {
        let hash = self.b256()?;
        let chunk = self.u32()?;
        let offset = self.u32()?;
        let len = self.u32()?;
        let min_chunk = self.u32()?;
        if len < 5 || len as usize > MAX_NODE_BYTES || min_chunk > chunk {
            return None;
        }
        Some(StoredRef { hash, loc: Loc { chunk, offset, len }, min_chunk })
    }
    fn child(&mut self, decoder: &mut Decoder<'_>) -> Option<Child> {
        match self.u8()? {
            REF_INLINE => {
                let len = usize::from(self.u8()?);
                if len >= 32 || len == 0 {
                    return None;
                }
                Some(Child::Inline(self.take(len)?.into()))
            }
            REF_STORED => Some(Child::Stored(self.stored()?)),
            REF_EMBEDDED => {
                let (hash, bytes) = self.embedded()?;
                let storage_min_chunk = scan_body(&mut Reader::new(bytes))?;
                Some(Child::Embedded { hash, body: decoder.embedded(bytes), storage_min_chunk })
            }
            _ => None,
        }
    }

    /// An embedded child's hash and body (after its `REF_EMBEDDED` tag).
    fn embedded(&mut self) -> Option<(B256, &'a [u8])> {
        let hash = self.b256()?;
        let len = usize::from(self.u16()?);
        if len > EMBED_MAX_BYTES {
            return None;
        }
        Some((hash, self.take(len)?))
    }

    /// Skips a path, checking it as [`path`](Self::path) does; its length.
    fn skip_path(&mut self) -> Option<usize> {
        let nibbles = usize::from(self.u16()?);
        let packed = self.take(nibbles.div_ceil(2))?;
        if nibbles % 2 == 1 && packed.last().is_some_and(|b| b & 0x0f != 0) {
            return None;
        }
        Some(nibbles)
    }

    fn skip_value_bytes(&mut self) -> Option<()> {
        let len = self.u32()? as usize;
        self.take(len).map(|_| ())
    }
}

/// Checks a record body the way [`decode_body`] would, without building
/// anything, and returns its [`Node::storage_min_chunk`]. Embedded bodies
/// are checked with it when their parent is decoded and decoded only when
/// used.
fn scan_body(r: &mut Reader<'_>) -> Option<u32> {
    let scan_child = |r: &mut Reader<'_>| -> Option<u32> {
        match r.u8()? {
            REF_INLINE => {
                let len = usize::from(r.u8()?);
                if len >= 32 || len == 0 {
                    return None;
                }
                r.take(len)?;
                Some(u32::MAX)
            }
            REF_STORED => r.stored().map(|_| u32::MAX),
            // Nested records shrink at every level: recursion is bounded.
            REF_EMBEDDED => scan_body(&mut Reader::new(r.embedded()?.1)),
            _ => None,
        }
    };
    let min = match r.u8()? {
        TAG_LEAF_RAW => {
            r.skip_path()?;
            r.skip_value_bytes()?;
            u32::MAX
        }
        TAG_LEAF_RAW_SHORT => {
            r.skip_path()?;
            r.short_value()?;
            u32::MAX
        }
        tag @ (TAG_LEAF_ACCOUNT | TAG_LEAF_ACCOUNT_PACKED) => {
            r.skip_path()?;
            let account = if tag == TAG_LEAF_ACCOUNT { r.account()? } else { r.packed_account()? };
            account.storage.map_or(u32::MAX, |s| s.min_chunk)
        }
        TAG_EXTENSION => {
            if r.skip_path()? == 0 {
                return None;
            }
            scan_child(r)?
        }
        tag @ (TAG_BRANCH | TAG_BRANCH_VALUE) => {
            let bitmap = r.u16()?;
            let mut min = u32::MAX;
            for i in 0..16 {
                if bitmap & (1 << i) != 0 {
                    min = min.min(scan_child(r)?);
                }
            }
            if tag == TAG_BRANCH_VALUE {
                r.skip_value_bytes()?;
            }
            min
        }
        _ => return None,
    };
    r.buf.is_empty().then_some(min)
}

fn decode_body(r: &mut Reader<'_>, decoder: &mut Decoder<'_>) -> Option<Node> {
    let node = match r.u8()? {
        TAG_LEAF_RAW => {
            let path = r.path()?;
            Node::Leaf { path, value: Value::Raw(r.value_bytes()?) }
        }
        TAG_LEAF_RAW_SHORT => {
            let path = r.path()?;
            Node::Leaf { path, value: Value::Raw(r.short_value()?.into()) }
        }
        tag @ (TAG_LEAF_ACCOUNT | TAG_LEAF_ACCOUNT_PACKED) => {
            let path = r.path()?;
            let account = if tag == TAG_LEAF_ACCOUNT { r.account()? } else { r.packed_account()? };
            Node::Leaf { path, value: Value::Account(Box::new(account)) }
        }
        TAG_EXTENSION => {
            let path = r.path()?;
            if path.is_empty() {
                return None;
            }
            Node::Extension { path, child: r.child(decoder)? }
        }
        tag @ (TAG_BRANCH | TAG_BRANCH_VALUE) => {
            let bitmap = r.u16()?;
            let mut children = empty_branch();
            for (i, slot) in children.iter_mut().enumerate() {
                if bitmap & (1 << i) != 0 {
                    *slot = Some(r.child(decoder)?);
                }
            }
            let value =
                if tag == TAG_BRANCH_VALUE { Some(Value::Raw(r.value_bytes()?)) } else { None };
            Node::Branch { children, value }
        }
        _ => return None,
    };
    r.buf.is_empty().then_some(node)
}

/// Approximate heap footprint of a decoded node, for the cache's budget.
pub(crate) fn node_weight(node: &Node) -> u64 {
    let base = std::mem::size_of::<Node>() as u64 + 48;
    match node {
        Node::Leaf { path, value } => base + path.len() as u64 + value_weight(value),
        Node::Extension { path, child } => base + path.len() as u64 + child_weight(child),
        Node::Branch { children, value } => {
            base + std::mem::size_of::<[Option<Child>; 16]>() as u64
                + children.iter().flatten().map(child_weight).sum::<u64>()
                + value.as_ref().map_or(0, value_weight)
        }
    }
}

fn value_weight(value: &Value) -> u64 {
    match value {
        Value::Raw(bytes) => bytes.len() as u64,
        Value::Account(_) => std::mem::size_of::<AccountValue>() as u64,
    }
}

fn child_weight(child: &Child) -> u64 {
    match child {
        Child::Inline(rlp) => rlp.len() as u64,
        Child::Embedded { body, .. } => 32 + u64::from(body.len),
        _ => 0,
    }
}

/// Converts a byte key into nibbles.
pub(crate) fn nibbles(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() * 2);
    for byte in key {
        out.push(byte >> 4);
        out.push(byte & 0x0f);
    }
    out
}

/// RLP of a storage value as Ethereum stores it in the storage trie.
pub(crate) fn storage_value_rlp(value: U256) -> Box<[u8]> {
    alloy_rlp::encode(value).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(node: &Node) -> Node {
        let loc = Loc { chunk: 7, offset: 4096, len: 0 };
        let mut body = Vec::new();
        node.encode_body(&mut body);
        let crc = node_crc(loc.chunk, loc.offset, &body);
        let mut bytes = crc.to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let loc = Loc { len: bytes.len() as u32, ..loc };
        Node::decode(loc, &bytes).expect("decodes")
    }

    #[test]
    fn disk_roundtrip_preserves_rlp() {
        let stored = StoredRef {
            hash: B256::repeat_byte(0xab),
            loc: Loc { chunk: 3, offset: 100, len: 200 },
            min_chunk: 1,
        };
        let mut children = empty_branch();
        children[0] = Some(Child::Stored(stored));
        children[9] = Some(Child::Inline(vec![0xc2, 0x20, 0x01].into()));
        children[4] = Some(Child::embed(
            B256::repeat_byte(9),
            &Node::Leaf { path: vec![1; 40], value: Value::Raw(vec![5; 60].into()) },
        ));
        let nodes = [
            Node::Leaf { path: vec![1, 2, 3], value: Value::Raw(vec![0x82, 1, 2].into()) },
            Node::Leaf {
                path: vec![0xf; 63],
                value: Value::Account(Box::new(AccountValue {
                    nonce: 5,
                    balance: U256::from(1234567u64),
                    code_hash: B256::repeat_byte(3),
                    storage_bytes: 99,
                    storage: Some(stored),
                })),
            },
            Node::Extension { path: vec![4, 5], child: Child::Stored(stored) },
            Node::Branch { children: children.clone(), value: None },
            Node::Branch { children, value: Some(Value::Raw(vec![7; 40].into())) },
        ];
        for node in &nodes {
            assert_eq!(roundtrip(node).ethereum_rlp(), node.ethereum_rlp());
        }
    }

    #[test]
    fn corruption_and_misplacement_are_detected() {
        let node = Node::Leaf { path: vec![1, 2], value: Value::Raw(vec![1].into()) };
        let mut body = Vec::new();
        node.encode_body(&mut body);
        let mut bytes = node_crc(1, 0, &body).to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let loc = Loc { chunk: 1, offset: 0, len: bytes.len() as u32 };
        assert!(Node::decode(loc, &bytes).is_ok());
        let moved = Loc { offset: 4096, ..loc };
        assert!(matches!(Node::decode(moved, &bytes), Err(Error::CorruptNode { .. })));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(Node::decode(loc, &bytes), Err(Error::CorruptNode { .. })));
    }

    #[test]
    fn inline_rlp_roundtrip() {
        let leaf = Node::Leaf { path: vec![3], value: Value::Raw(vec![0x01].into()) };
        let rlp = leaf.ethereum_rlp();
        assert!(rlp.len() < 32);
        assert_eq!(Node::from_inline_rlp(&rlp).unwrap().ethereum_rlp(), rlp);
    }

    fn account_leaf(nibble: u8, storage: Option<StoredRef>) -> Node {
        Node::Leaf {
            path: vec![nibble; 61],
            value: Value::Account(Box::new(AccountValue {
                nonce: u64::from(nibble),
                balance: U256::from(nibble),
                code_hash: B256::repeat_byte(nibble),
                storage_bytes: 0,
                storage,
            })),
        }
    }

    /// A bottom branch whose child 2 is an embedded branch with embedded
    /// leaves of its own: the nested bodies share the parent's buffer.
    fn nested_bottom_branch() -> Node {
        let stored = |min_chunk| StoredRef {
            hash: B256::repeat_byte(0xee),
            loc: Loc { chunk: 9, offset: 0, len: 64 },
            min_chunk,
        };
        let mut inner = empty_branch();
        inner[1] = Some(Child::embed(B256::repeat_byte(1), &account_leaf(1, Some(stored(7)))));
        inner[5] = Some(Child::embed(B256::repeat_byte(5), &account_leaf(5, None)));
        let inner = Node::Branch { children: inner, value: None };
        let mut outer = empty_branch();
        outer[2] = Some(Child::embed(B256::repeat_byte(2), &inner));
        outer[3] = Some(Child::embed(B256::repeat_byte(3), &account_leaf(3, Some(stored(4)))));
        outer[8] = Some(Child::Stored(stored(2)));
        Node::Branch { children: outer, value: None }
    }

    #[test]
    fn embedded_children_decode_on_demand_from_the_shared_record() {
        let node = nested_bottom_branch();
        let decoded = roundtrip(&node);
        assert_eq!(decoded.ethereum_rlp(), node.ethereum_rlp());
        // Storage reached through embedded accounts: 4 directly, 7 nested.
        assert_eq!(decoded.storage_min_chunk(), 4);
        let Node::Branch { children, .. } = &decoded else { panic!("a branch") };
        let Some(Child::Embedded { body, storage_min_chunk, .. }) = &children[2] else {
            panic!("child 2 embedded")
        };
        assert_eq!(*storage_min_chunk, 7);
        let inner = body.decode().expect("the nested branch decodes");
        let Node::Branch { children: inner_children, .. } = &inner else { panic!("a branch") };
        let Some(Child::Embedded { body: leaf, .. }) = &inner_children[5] else {
            panic!("nested leaf embedded")
        };
        let leaf = leaf.decode().expect("the nested leaf decodes");
        assert_eq!(leaf.ethereum_rlp(), account_leaf(5, None).ethereum_rlp());
        // Written back as the same bytes, without decoding the children.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        node.encode_body(&mut a);
        decoded.encode_body(&mut b);
        assert_eq!(a, b);
    }

    /// A record whose checksum holds but whose embedded body is malformed
    /// is refused when the parent is decoded, not when the child is used.
    #[test]
    fn malformed_embedded_bodies_are_refused_with_their_parent() {
        let mut body = Vec::new();
        nested_bottom_branch().encode_body(&mut body);
        // The first embedded body starts after the tag, the bitmap, the
        // child's reference tag, its hash and its length.
        let first = 1 + 2 + 1 + 32 + 2;
        for (at, byte) in [(first, 0x7f), (first + 1, 0xff), (body.len() - 1, 0x55)] {
            let mut bad = body.clone();
            bad[at] ^= byte;
            let mut bytes = node_crc(1, 0, &bad).to_le_bytes().to_vec();
            bytes.extend_from_slice(&bad);
            let loc = Loc { chunk: 1, offset: 0, len: bytes.len() as u32 };
            assert!(
                matches!(Node::decode(loc, &bytes), Err(Error::CorruptNode { .. })),
                "byte {at} flipped with {byte:#x} was accepted"
            );
        }
    }

    /// A leaf as format 1 wrote it (tags 0 and 1).
    fn format_1_leaf(path: &[u8], value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        match value {
            Value::Raw(bytes) => {
                out.push(TAG_LEAF_RAW);
                put_path(path, &mut out);
                put_value_bytes(bytes, &mut out);
            }
            Value::Account(account) => {
                out.push(TAG_LEAF_ACCOUNT);
                put_path(path, &mut out);
                out.extend_from_slice(&account.nonce.to_le_bytes());
                out.extend_from_slice(&account.balance.to_be_bytes::<32>());
                out.extend_from_slice(account.code_hash.as_slice());
                out.extend_from_slice(&account.storage_bytes.to_le_bytes());
                match &account.storage {
                    None => out.push(REF_NONE),
                    Some(stored) => put_stored(stored, &mut out),
                }
            }
        }
        out
    }

    fn decode_body_bytes(body: &[u8]) -> Option<Node> {
        decode_body(&mut Reader::new(body), &mut Decoder { whole: body, shared: None })
    }

    fn edge_accounts() -> Vec<AccountValue> {
        let stored = StoredRef {
            hash: B256::repeat_byte(0x5a),
            loc: Loc { chunk: 12, offset: 8192, len: 300 },
            min_chunk: 3,
        };
        let mut accounts = Vec::new();
        for nonce in [0, 1, 0xff, 0x100, u64::MAX] {
            for balance in
                [U256::ZERO, U256::from(1u64), U256::from(10u64).pow(U256::from(21)), U256::MAX]
            {
                for code_hash in [crate::KECCAK_EMPTY, B256::repeat_byte(0xc0), B256::ZERO] {
                    for (storage_bytes, storage) in [(0, None), (u64::MAX, Some(stored)), (7, None)]
                    {
                        accounts.push(AccountValue {
                            nonce,
                            balance,
                            code_hash,
                            storage_bytes,
                            storage,
                        });
                    }
                }
            }
        }
        accounts
    }

    /// Packed leaves decode to the same node, with the same Ethereum RLP and
    /// the same `storage_min_chunk`, as the format-1 bytes of that leaf, for
    /// every edge of every field; an externally owned account's leaf is
    /// under half its format-1 size.
    #[test]
    fn packed_leaves_decode_like_their_format_1_bytes() {
        let path = vec![0xa; 57];
        let mut values: Vec<Value> =
            edge_accounts().into_iter().map(|a| Value::Account(Box::new(a))).collect();
        for len in [0, 1, 33, 255, 256, 5000] {
            values.push(Value::Raw(vec![0x81; len].into()));
        }
        for value in values {
            let leaf = Node::Leaf { path: path.clone(), value: value.clone() };
            let mut packed = Vec::new();
            leaf.encode_body(&mut packed);
            let legacy = format_1_leaf(&path, &value);
            let (new, old) = (decode_body_bytes(&packed), decode_body_bytes(&legacy));
            let (Some(new), Some(old)) = (new, old) else { panic!("{value:?} does not decode") };
            let Node::Leaf { value: decoded, .. } = &new else { panic!("a leaf") };
            assert_eq!(decoded, &value);
            assert_eq!(new.ethereum_rlp(), leaf.ethereum_rlp());
            assert_eq!(old.ethereum_rlp(), leaf.ethereum_rlp());
            assert_eq!(new.storage_min_chunk(), old.storage_min_chunk());
            assert_eq!(scan_body(&mut Reader::new(&packed)), scan_body(&mut Reader::new(&legacy)));
            // At worst (every number at full width) three count bytes more.
            assert!(packed.len() <= legacy.len() + 3, "{value:?}: {}", packed.len());
        }
        let eoa = Value::Account(Box::new(AccountValue {
            nonce: 3,
            balance: U256::from(10u64).pow(U256::from(19)),
            code_hash: crate::KECCAK_EMPTY,
            storage_bytes: 0,
            storage: None,
        }));
        let mut packed = Vec::new();
        Node::Leaf { path: path.clone(), value: eoa.clone() }.encode_body(&mut packed);
        let legacy = format_1_leaf(&path, &eoa);
        assert_eq!((packed.len(), legacy.len()), (45, 113));
    }

    /// A packed account whose flags, counts or numbers are not what the
    /// encoder writes is refused, not read as some other account.
    #[test]
    fn malformed_packed_accounts_are_refused() {
        let account = AccountValue {
            nonce: 0x1234,
            balance: U256::from(0x56u64),
            code_hash: crate::KECCAK_EMPTY,
            storage_bytes: 0,
            storage: None,
        };
        let mut body = Vec::new();
        Node::Leaf { path: vec![1, 2], value: Value::Account(Box::new(account)) }
            .encode_body(&mut body);
        // tag, path (u16 count + one byte), flags, nonce count 2 + 2 bytes,
        // balance count 1 + 1 byte, storage_bytes count 0.
        assert_eq!(body, [TAG_LEAF_ACCOUNT_PACKED, 2, 0, 0x12, 0, 2, 0x12, 0x34, 1, 0x56, 0]);
        assert!(decode_body_bytes(&body).is_some());
        let with = |at: usize, byte: u8| {
            let mut bad = body.clone();
            bad[at] = byte;
            bad
        };
        let cases = [
            ("unknown flag", with(4, 4)),
            ("storage flag without a reference", with(4, ACCOUNT_HAS_STORAGE)),
            ("nonce count above 8", with(5, 9)),
            ("leading zero in the nonce", with(6, 0)),
            ("balance count past the end", with(8, 3)),
            ("storage_bytes count past the end", with(10, 1)),
        ];
        for (what, bad) in cases {
            assert!(decode_body_bytes(&bad).is_none(), "{what}: accepted");
            assert!(scan_body(&mut Reader::new(&bad)).is_none(), "{what}: scanned");
        }
        let mut long = body.clone();
        long.push(0);
        assert!(decode_body_bytes(&long).is_none(), "a trailing byte: accepted");
    }
}
