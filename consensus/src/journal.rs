//! The vote journal: every vote and timeout a validator signs is recorded
//! durably *before* it leaves, so that a restarted validator knows the
//! highest round it spoke in and never signs a second, different vote there.
//!
//! The ordering is enforced by types, not by care: the core hands out a
//! [`VoteTicket`] in [`crate::Action::PersistVote`] and keeps the signed
//! message to itself. Only when the driver gives the ticket back in
//! [`crate::Event::VotePersisted`] (after [`VoteJournal::append`] returned)
//! does the core emit the send. A ticket cannot be built or copied outside
//! this crate.

use std::path::Path;

use crate::codec::{DecodeError, Reader};
use crate::store::{RecordFile, StoreError};
use crate::types::{BlockId, Epoch, Round};

/// What a validator signed in a round.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VoteKind {
    /// A vote for a block.
    Block(BlockId),
    /// A timeout for the round.
    Timeout,
}

/// One journal entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct JournalRecord {
    pub epoch: Epoch,
    pub round: Round,
    pub kind: VoteKind,
}

impl JournalRecord {
    const BYTES: usize = 8 + 8 + 1 + 32;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::BYTES);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&self.round.to_le_bytes());
        match self.kind {
            VoteKind::Block(id) => {
                out.push(1);
                out.extend_from_slice(&id.0);
            }
            VoteKind::Timeout => {
                out.push(2);
                out.extend_from_slice(&[0; 32]);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let epoch = r.u64()?;
        let round = r.u64()?;
        let tag = r.u8()?;
        let id = BlockId(r.array()?);
        r.finish()?;
        let kind = match tag {
            1 => VoteKind::Block(id),
            2 => VoteKind::Timeout,
            tag => return Err(DecodeError::UnknownTag { what: "journal record", tag }),
        };
        Ok(Self { epoch, round, kind })
    }
}

/// Proof that the core asked for `record` to be persisted. Returned to the
/// core in [`crate::Event::VotePersisted`] once it is durable.
#[derive(Debug, PartialEq, Eq)]
pub struct VoteTicket {
    pub(crate) seq: u64,
    pub(crate) record: JournalRecord,
}

impl VoteTicket {
    /// The record to write before handing the ticket back.
    pub fn record(&self) -> &JournalRecord {
        &self.record
    }
}

/// Durable storage of signed votes and timeouts.
pub trait VoteJournal {
    /// Record durably; the vote may leave only after this returns `Ok`.
    fn append(&mut self, record: &JournalRecord) -> Result<(), StoreError>;
    /// The highest round with a record, and whether a block vote is in it.
    fn last(&self) -> Option<JournalRecord>;
}

/// In-memory journal: the simulator keeps it across a node's crash, and the
/// invariant checker reads every record.
#[derive(Clone, Debug, Default)]
pub struct MemJournal {
    records: Vec<JournalRecord>,
}

impl MemJournal {
    pub fn records(&self) -> &[JournalRecord] {
        &self.records
    }
}

impl VoteJournal for MemJournal {
    fn append(&mut self, record: &JournalRecord) -> Result<(), StoreError> {
        self.records.push(*record);
        Ok(())
    }

    fn last(&self) -> Option<JournalRecord> {
        last_of(self.records.iter().copied())
    }
}

/// The record of the highest round; a block vote wins over a timeout in it.
fn last_of(records: impl Iterator<Item = JournalRecord>) -> Option<JournalRecord> {
    records.max_by_key(|record| (record.round, matches!(record.kind, VoteKind::Block(_))))
}

/// File-backed journal: checksummed records (see [`crate::store`]),
/// fdatasync per append when opened with `sync`.
pub struct FileJournal {
    file: RecordFile,
    last: Option<JournalRecord>,
    torn_tail_bytes: u64,
}

impl FileJournal {
    pub fn open(path: &Path, sync: bool) -> Result<Self, StoreError> {
        let (file, recovered) = RecordFile::open(path, JournalRecord::BYTES, sync)?;
        let mut records = Vec::with_capacity(recovered.records.len());
        for (offset, _) in &recovered.records {
            records.push(JournalRecord::decode(&file.read_at(*offset)?)?);
        }
        Ok(Self {
            file,
            last: last_of(records.into_iter()),
            torn_tail_bytes: recovered.torn_tail_bytes,
        })
    }

    pub fn torn_tail_bytes(&self) -> u64 {
        self.torn_tail_bytes
    }

    /// Every record of the journal at `path`, in order: for audits ("did
    /// this validator ever sign two blocks in one round?"). Opens the file
    /// like [`Self::open`] (a torn tail is cut), so not while a node runs.
    pub fn read_records(path: &Path) -> Result<Vec<JournalRecord>, StoreError> {
        let (file, recovered) = RecordFile::open(path, JournalRecord::BYTES, false)?;
        let mut records = Vec::with_capacity(recovered.records.len());
        for (offset, _) in &recovered.records {
            records.push(JournalRecord::decode(&file.read_at(*offset)?)?);
        }
        Ok(records)
    }
}

impl VoteJournal for FileJournal {
    fn append(&mut self, record: &JournalRecord) -> Result<(), StoreError> {
        self.file.append(&record.encode())?;
        self.last = last_of(self.last.into_iter().chain([*record]));
        Ok(())
    }

    fn last(&self) -> Option<JournalRecord> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_journal_remembers_the_highest_round() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            let mut journal = FileJournal::open(&path, true).unwrap();
            assert_eq!(journal.last(), None);
            journal
                .append(&JournalRecord {
                    epoch: 1,
                    round: 5,
                    kind: VoteKind::Block(BlockId([9; 32])),
                })
                .unwrap();
            journal.append(&JournalRecord { epoch: 1, round: 5, kind: VoteKind::Timeout }).unwrap();
            journal.append(&JournalRecord { epoch: 1, round: 4, kind: VoteKind::Timeout }).unwrap();
        }
        let journal = FileJournal::open(&path, true).unwrap();
        assert_eq!(
            journal.last(),
            Some(JournalRecord { epoch: 1, round: 5, kind: VoteKind::Block(BlockId([9; 32])) })
        );
    }

    #[test]
    fn record_round_trips_and_rejects_bad_tags() {
        let record = JournalRecord { epoch: 3, round: 9, kind: VoteKind::Timeout };
        assert_eq!(JournalRecord::decode(&record.encode()).unwrap(), record);
        let mut bad = record.encode();
        bad[16] = 7;
        assert!(JournalRecord::decode(&bad).is_err());
        assert!(JournalRecord::decode(&bad[..10]).is_err());
    }
}
