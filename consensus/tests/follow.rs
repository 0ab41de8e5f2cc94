//! A follower outside the validator set: it syncs a chain through the
//! server from a ledger and a proof log, verifies every block against the
//! validator set alone, and refuses every forged or broken answer with its
//! typed error (and then syncs from an honest server all the same).

use std::collections::BTreeMap;

use wake_consensus::codec::Encode;
use wake_consensus::crypto::ed25519_key_from_seed;
use wake_consensus::follow::{
    ProofSource, SYNC_BLOCKS_MAX, SYNC_REQUEST_BYTES, serve, verify_commit_proof,
};
use wake_consensus::{
    BlockHeader, CommitProof, Ed25519, FinalizedBlock, FollowError, Follower, FollowerConfig,
    Height, Ledger, MemLedger, ProofError, ProofLog, QuorumCert, Scheme, SignerSet, StoreError,
    SyncRequest, SyncResponse, Validator, ValidatorSet, sha256, vote_message,
};

const EPOCH: u64 = 5;

fn keys() -> Vec<ed25519_dalek::SigningKey> {
    (0..4u8).map(|i| ed25519_key_from_seed([i + 40; 32])).collect()
}

fn set() -> ValidatorSet<Ed25519> {
    let members = keys()
        .iter()
        .map(|key| Validator { public_key: Ed25519::public_key(key), stake: 1 })
        .collect();
    ValidatorSet::new(members).unwrap()
}

/// A QC for `header` signed by `signers`.
fn qc(header: &BlockHeader, signers: &[usize]) -> QuorumCert<Ed25519> {
    let keys = keys();
    let message = vote_message(header.epoch, header.round, &header.id());
    let mut set = SignerSet::with_len(keys.len());
    let mut signatures = Vec::new();
    for &signer in signers {
        set.insert(signer as u16);
        signatures.push(Ed25519::sign(&keys[signer], &message));
    }
    QuorumCert {
        epoch: header.epoch,
        round: header.round,
        block: header.id(),
        signers: set,
        aggregate: Ed25519::aggregate(&signatures),
    }
}

fn block(parent: &BlockHeader, round: u64, payload: &[u8]) -> FinalizedBlock {
    let header = BlockHeader {
        epoch: EPOCH,
        round,
        author: (round % 4) as u16,
        height: parent.height + 1,
        parent: parent.id(),
        payload_hash: sha256(&[payload]),
        delayed: None,
    };
    FinalizedBlock { header, payload: payload.to_vec() }
}

/// A finalized chain of `len` blocks: rounds consecutive except after
/// every 7th block (a failed round), so some commit steps cover several
/// blocks. Returns the blocks and, per commit step, (height, proof).
struct Chain {
    blocks: Vec<FinalizedBlock>,
    proofs: BTreeMap<Height, CommitProof<Ed25519>>,
}

fn chain(len: u64) -> Chain {
    let mut blocks: Vec<FinalizedBlock> = Vec::new();
    let mut round = 0;
    for height in 1..=len + 1 {
        round += if height % 7 == 0 { 2 } else { 1 };
        let parent = blocks.last().map_or(BlockHeader::genesis(EPOCH), |b| b.header.clone());
        blocks.push(block(&parent, round, format!("payload {height}").as_bytes()));
    }
    // The last block is only the certified child of the chain's tip.
    let mut proofs = BTreeMap::new();
    for pair in blocks.windows(2) {
        let (parent, child) = (&pair[0].header, &pair[1].header);
        if parent.round + 1 == child.round {
            proofs.insert(
                parent.height,
                CommitProof { child: child.clone(), qc: qc(child, &[0, 2, 3]) },
            );
        }
    }
    blocks.pop();
    Chain { blocks, proofs }
}

impl Chain {
    fn ledger(&self) -> MemLedger {
        let mut ledger = MemLedger::new(EPOCH);
        for block in &self.blocks {
            ledger.append(block).unwrap();
        }
        ledger
    }
}

struct MapProofs(BTreeMap<Height, CommitProof<Ed25519>>);

impl ProofSource<Ed25519> for MapProofs {
    fn proof_at_or_after(
        &self,
        from: Height,
    ) -> Result<Option<(Height, CommitProof<Ed25519>)>, StoreError> {
        Ok(self.0.range(from..).next().map(|(h, p)| (*h, p.clone())))
    }
}

fn follower(config: FollowerConfig) -> Follower<Ed25519> {
    Follower::new(set(), EPOCH, &BlockHeader::genesis(EPOCH), config)
}

/// Syncs `follower` from the server until it has nothing new; returns the
/// verified blocks and the number of round trips.
fn sync(
    follower: &mut Follower<Ed25519>,
    ledger: &MemLedger,
    proofs: &impl ProofSource<Ed25519>,
) -> (Vec<FinalizedBlock>, usize) {
    let mut verified = Vec::new();
    let mut trips = 0;
    loop {
        let request = SyncRequest::decode(&follower.request().to_bytes()).unwrap();
        let response = serve(ledger, proofs, request).unwrap();
        trips += 1;
        // Over the wire and back.
        let response = SyncResponse::<Ed25519>::decode(&response.to_bytes()).unwrap();
        if response.blocks.is_empty() {
            return (verified, trips);
        }
        verified.extend(follower.on_response(response).unwrap());
        assert!(trips < 1000, "sync does not converge");
    }
}

#[test]
fn a_follower_syncs_and_verifies_a_chain_from_a_proof_log() {
    let chain = chain(300);
    let ledger = chain.ledger();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proofs");
    {
        let mut log = ProofLog::<Ed25519>::open(&path).unwrap();
        for (height, proof) in &chain.proofs {
            log.append(*height, proof).unwrap();
            // A repeated height (a restarted core) is ignored.
            log.append(*height, proof).unwrap();
        }
        assert_eq!(log.newest(), chain.proofs.keys().last().copied());
    }
    let log = ProofLog::<Ed25519>::open(&path).unwrap();
    let mut follower = follower(FollowerConfig { blocks_per_request: 50, ..Default::default() });
    let (verified, trips) = sync(&mut follower, &ledger, &log);
    // Every block that a proof covers is verified, in order; the ones above
    // the newest proof stay pending.
    let newest = *chain.proofs.keys().last().unwrap();
    assert_eq!(follower.verified_height(), newest);
    assert_eq!(verified.len() as u64, newest);
    assert_eq!(&verified[..], &chain.blocks[..newest as usize]);
    assert_eq!(follower.pending() as u64, 300 - newest);
    assert!(trips > 300 / 50, "{trips} round trips");
    // Each proof verifies on its own, and not for another block.
    for (height, proof) in &chain.proofs {
        let header = &chain.blocks[*height as usize - 1].header;
        verify_commit_proof(&set(), EPOCH, header, proof).unwrap();
        let other = &chain.blocks[*height as usize % 300].header;
        assert!(verify_commit_proof(&set(), EPOCH, other, proof).is_err());
    }
}

#[test]
fn blocks_between_proofs_wait_as_pending_and_are_bounded() {
    let chain = chain(40);
    let ledger = chain.ledger();
    // A server with a single proof, at height 30.
    let only_30 = MapProofs(chain.proofs.range(30..=30).map(|(h, p)| (*h, p.clone())).collect());
    assert!(!only_30.0.is_empty(), "height 30 has a proof");
    let mut one_at_a_time =
        follower(FollowerConfig { blocks_per_request: 4, ..Default::default() });
    let (verified, _) = sync(&mut one_at_a_time, &ledger, &only_30);
    assert_eq!(verified.len(), 30);
    assert_eq!(one_at_a_time.verified_height(), 30);

    // Without any proof, the pending blocks hit their bound.
    let none = MapProofs(BTreeMap::new());
    let config =
        FollowerConfig { blocks_per_request: 8, pending_blocks_max: 20, ..Default::default() };
    let mut bounded = follower(config);
    let mut error = None;
    for _ in 0..10 {
        let response = serve(&ledger, &none, bounded.request()).unwrap();
        if let Err(e) = bounded.on_response(response) {
            error = Some(e);
            break;
        }
    }
    assert!(matches!(error, Some(FollowError::PendingFull { blocks: 24, .. })), "{error:?}");
    assert_eq!(bounded.pending(), 0, "the unverified blocks are dropped");
    assert_eq!(bounded.verified_height(), 0);
}

/// Each forged or broken answer is refused with its reason, clears what
/// was pending, and the honest server still gets the follower to the top.
#[test]
fn forged_and_broken_answers_are_refused() {
    let chain = chain(20);
    let ledger = chain.ledger();
    let honest = MapProofs(chain.proofs.clone());
    let honest_answer = || serve(&ledger, &honest, SyncRequest { from: 1, blocks_max: 3 }).unwrap();
    let first = honest_answer();
    assert_eq!(first.blocks.len(), 1, "block 1 has a proof of its own");

    type Tamper = Box<dyn Fn(&mut SyncResponse<Ed25519>)>;
    type Expect = fn(&FollowError) -> bool;
    let proof_of = |f: fn(&mut CommitProof<Ed25519>)| -> Tamper {
        Box::new(move |r: &mut SyncResponse<Ed25519>| f(r.proof.as_mut().unwrap()))
    };
    let cases: Vec<(&str, Tamper, Expect)> = vec![
        ("payload swapped", Box::new(|r| r.blocks[0].payload = b"other".to_vec()), |e| {
            matches!(e, FollowError::PayloadHash { height: 1 })
        }),
        ("block of another epoch", Box::new(|r| r.blocks[0].header.epoch += 1), |e| {
            matches!(e, FollowError::WrongEpoch { .. })
        }),
        ("block not on the verified tip", Box::new(|r| r.blocks[0].header.parent.0[0] ^= 1), |e| {
            matches!(e, FollowError::NotLinked { height: 1 })
        }),
        ("answer from the wrong height", Box::new(|r| r.blocks[0].header.height = 2), |e| {
            matches!(e, FollowError::WrongStart { expected: 1, got: 2 })
        }),
        ("QC of two validators out of four", proof_of(|p| p.qc = qc(&p.child, &[1, 2])), |e| {
            matches!(e, FollowError::Proof { source: ProofError::NoQuorum, .. })
        }),
        (
            "QC signed for another round",
            proof_of(|p| {
                let mut other = p.child.clone();
                other.round += 1;
                let mut forged = qc(&other, &[0, 1, 2]);
                forged.round = p.child.round;
                forged.block = p.child.id();
                p.qc = forged;
            }),
            |e| matches!(e, FollowError::Proof { source: ProofError::BadSignature, .. }),
        ),
        ("QC for another block", proof_of(|p| p.qc.block.0[3] ^= 1), |e| {
            matches!(e, FollowError::Proof { source: ProofError::QcNotForChild, .. })
        }),
        (
            "child two rounds later (no commit)",
            proof_of(|p| {
                p.child.round += 1;
                p.qc = qc(&p.child, &[0, 1, 2, 3]);
            }),
            |e| matches!(e, FollowError::Proof { source: ProofError::NotNextRound { .. }, .. }),
        ),
        (
            "child of another block",
            proof_of(|p| {
                p.child.parent.0[0] ^= 1;
                p.qc = qc(&p.child, &[0, 1, 2, 3]);
            }),
            |e| matches!(e, FollowError::Proof { source: ProofError::NotAChild { height: 1 }, .. }),
        ),
        (
            "signer set of another size",
            proof_of(|p| {
                let mut signers = SignerSet::with_len(5);
                for i in [0, 1, 2] {
                    signers.insert(i);
                }
                p.qc.signers = signers;
            }),
            |e| matches!(e, FollowError::Proof { source: ProofError::SignerSet, .. }),
        ),
        ("proof without blocks", Box::new(|r| r.blocks.clear()), |e| {
            matches!(e, FollowError::ProofWithoutBlock)
        }),
    ];
    for (name, tamper, expected) in cases {
        let mut follower = follower(FollowerConfig::default());
        let mut answer = honest_answer();
        tamper(&mut answer);
        let err = match follower.on_response(answer) {
            Ok(blocks) => panic!("{name}: accepted {} blocks", blocks.len()),
            Err(e) => e,
        };
        assert!(expected(&err), "{name}: {err}");
        assert_eq!(follower.verified_height(), 0, "{name}");
        // The honest server still brings it to the top.
        let (verified, _) = sync(&mut follower, &ledger, &honest);
        assert_eq!(verified, chain.blocks[..verified.len()], "{name}");
        assert_eq!(follower.verified_height(), *chain.proofs.keys().last().unwrap(), "{name}");
    }

    // A refused answer drops the unverified blocks held before it.
    let mut follower = follower(FollowerConfig::default());
    let none = MapProofs(BTreeMap::new());
    let pending = serve(&ledger, &none, SyncRequest { from: 1, blocks_max: 2 }).unwrap();
    assert!(follower.on_response(pending).unwrap().is_empty());
    assert_eq!(follower.pending(), 2);
    let mut bad = serve(&ledger, &honest, follower.request()).unwrap();
    bad.blocks[0].payload.push(0);
    assert!(matches!(follower.on_response(bad), Err(FollowError::PayloadHash { height: 3 })));
    assert_eq!(follower.pending(), 0);
    assert_eq!(follower.request().from, 1);
}

#[test]
fn sync_messages_are_bounded_and_never_panic() {
    let chain = chain(10);
    let ledger = chain.ledger();
    let response =
        serve(&ledger, &MapProofs(chain.proofs.clone()), SyncRequest { from: 1, blocks_max: 9 })
            .unwrap();
    let bytes = response.to_bytes();
    assert_eq!(SyncResponse::<Ed25519>::decode(&bytes).unwrap(), response);
    // Every truncation and every single-byte change decodes or errs.
    for len in 0..bytes.len() {
        assert!(SyncResponse::<Ed25519>::decode(&bytes[..len]).is_err(), "prefix {len}");
    }
    for at in 0..bytes.len() {
        let mut mutated = bytes.clone();
        mutated[at] ^= 0x5a;
        let _ = SyncResponse::<Ed25519>::decode(&mutated);
    }
    // A block count over the cap is refused before anything is read.
    let mut huge = vec![0x52];
    huge.extend_from_slice(&(SYNC_BLOCKS_MAX + 1).to_le_bytes());
    assert!(SyncResponse::<Ed25519>::decode(&huge).is_err());
    // Requests: exact size, no height 0, no trailing bytes.
    let request = SyncRequest { from: 7, blocks_max: 3 };
    assert_eq!(request.to_bytes().len(), SYNC_REQUEST_BYTES);
    assert_eq!(SyncRequest::decode(&request.to_bytes()).unwrap(), request);
    assert!(SyncRequest::decode(&SyncRequest { from: 0, blocks_max: 1 }.to_bytes()).is_err());
    let mut long = request.to_bytes();
    long.push(0);
    assert!(SyncRequest::decode(&long).is_err());
    assert!(SyncRequest::decode(&[]).is_err());
    // Past the tip: no blocks, no proof.
    let past =
        serve(&ledger, &MapProofs(chain.proofs.clone()), SyncRequest { from: 11, blocks_max: 5 })
            .unwrap();
    assert!(past.blocks.is_empty() && past.proof.is_none());
    // A proof record round trips.
    let proof = chain.proofs.values().next().unwrap();
    assert_eq!(&CommitProof::<Ed25519>::decode(&proof.to_bytes()).unwrap(), proof);
}

#[test]
fn a_proof_log_cuts_a_torn_tail_and_goes_on() {
    let chain = chain(20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proofs");
    let heights: Vec<Height> = chain.proofs.keys().copied().collect();
    {
        let mut log = ProofLog::<Ed25519>::open(&path).unwrap();
        for height in &heights {
            log.append(*height, &chain.proofs[height]).unwrap();
        }
    }
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
    let mut log = ProofLog::<Ed25519>::open(&path).unwrap();
    let last = *heights.last().unwrap();
    assert_eq!(log.newest(), heights.iter().rev().nth(1).copied());
    log.append(last, &chain.proofs[&last]).unwrap();
    let log = ProofLog::<Ed25519>::open(&path).unwrap();
    assert_eq!(log.newest(), Some(last));
    let (height, proof) = log.proof_at_or_after(last).unwrap().unwrap();
    assert_eq!((height, &proof), (last, &chain.proofs[&last]));
    assert!(log.proof_at_or_after(last + 1).unwrap().is_none());
}
