//! An append-only file of checksummed records, shared by the file-backed
//! [`crate::FileLedger`] and [`crate::FileJournal`].
//!
//! Record layout: `len: u32 LE | crc32c(len bytes ++ body): u32 LE | body`.
//! On open the file is scanned. A record cut short by the end of the file,
//! or a checksum mismatch in the last record, is a torn tail (a crash during
//! an append): it is cut off and the file goes on from the last whole
//! record. A bad record with more data after it is corruption, reported as
//! [`StoreError::Corrupt`], never repaired silently. After a failed write or
//! fsync the handle is poisoned: nobody knows what reached the disk, and only
//! a reopen can tell.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use thiserror::Error;

use crate::codec::DecodeError;
use crate::types::Height;

const RECORD_HEADER_BYTES: u64 = 8;

/// Storage errors of the ledger and the journal.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: &'static str },
    #[error("record of {len} bytes is over the cap of {max}")]
    RecordTooLarge { len: usize, max: usize },
    #[error("record does not decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("block at height {got} does not extend the ledger tip (next height {expected})")]
    NotContiguous { expected: Height, got: Height },
    #[error("an earlier write failed; reopen to learn what is durable")]
    Poisoned,
}

/// An append-only record file.
pub struct RecordFile {
    file: File,
    len: u64,
    record_bytes_max: usize,
    sync: bool,
    poisoned: bool,
}

/// What [`RecordFile::open`] found.
pub struct Recovered {
    /// Offset and body length of every whole record, in order.
    pub records: Vec<(u64, u32)>,
    /// Bytes cut off the end (a torn tail), 0 when the file was clean.
    pub torn_tail_bytes: u64,
}

impl RecordFile {
    /// Open or create `path`, scanning and repairing a torn tail. With
    /// `sync`, every append is followed by `fdatasync`.
    pub fn open(
        path: &Path,
        record_bytes_max: usize,
        sync: bool,
    ) -> Result<(Self, Recovered), StoreError> {
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let file_len = file.metadata()?.len();
        let mut records = Vec::new();
        let mut offset = 0u64;
        let mut body = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        let mut reader = std::io::BufReader::new(&mut file);
        let good_end = loop {
            if offset == file_len {
                break offset;
            }
            if file_len - offset < RECORD_HEADER_BYTES {
                break offset; // torn header
            }
            let mut header = [0u8; 8];
            reader.read_exact(&mut header)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let end = offset + RECORD_HEADER_BYTES + len as u64;
            if end > file_len {
                break offset; // torn body (or a garbage length at the tail)
            }
            if len as usize > record_bytes_max {
                return Err(StoreError::Corrupt { offset, reason: "record length over the cap" });
            }
            body.resize(len as usize, 0);
            reader.read_exact(&mut body)?;
            if checksum(&header[..4], &body) != crc {
                if end == file_len {
                    break offset; // torn last record
                }
                return Err(StoreError::Corrupt { offset, reason: "checksum mismatch" });
            }
            records.push((offset, len));
            offset = end;
        };
        drop(reader);
        let torn_tail_bytes = file_len - good_end;
        if torn_tail_bytes > 0 {
            file.set_len(good_end)?;
            file.sync_data()?;
        }
        let store = Self { file, len: good_end, record_bytes_max, sync, poisoned: false };
        Ok((store, Recovered { records, torn_tail_bytes }))
    }

    /// Append one record; returns its offset. Durable on return when `sync`.
    pub fn append(&mut self, body: &[u8]) -> Result<u64, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned);
        }
        if body.len() > self.record_bytes_max {
            return Err(StoreError::RecordTooLarge { len: body.len(), max: self.record_bytes_max });
        }
        let len = (body.len() as u32).to_le_bytes();
        let mut record = Vec::with_capacity(body.len() + RECORD_HEADER_BYTES as usize);
        record.extend_from_slice(&len);
        record.extend_from_slice(&checksum(&len, body).to_le_bytes());
        record.extend_from_slice(body);
        let offset = self.len;
        let written = self
            .file
            .write_all_at(&record, offset)
            .and_then(|()| if self.sync { self.file.sync_data() } else { Ok(()) });
        if let Err(error) = written {
            self.poisoned = true;
            return Err(error.into());
        }
        self.len += record.len() as u64;
        Ok(offset)
    }

    /// Read the body of the record at `offset` (one returned by `open` or `append`).
    pub fn read_at(&self, offset: u64) -> Result<Vec<u8>, StoreError> {
        let mut header = [0u8; 8];
        self.file.read_exact_at(&mut header, offset)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > self.record_bytes_max {
            return Err(StoreError::Corrupt { offset, reason: "record length over the cap" });
        }
        let mut body = vec![0u8; len];
        self.file.read_exact_at(&mut body, offset + RECORD_HEADER_BYTES)?;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if checksum(&header[..4], &body) != crc {
            return Err(StoreError::Corrupt { offset, reason: "checksum mismatch" });
        }
        Ok(body)
    }

    /// Bytes in the file.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }
}

fn checksum(len: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_cut_and_appends_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records");
        {
            let (mut file, recovered) = RecordFile::open(&path, 1024, false).unwrap();
            assert!(recovered.records.is_empty());
            file.append(b"one").unwrap();
            file.append(b"two").unwrap();
        }
        let full = std::fs::metadata(&path).unwrap().len();
        for cut in 1..(RECORD_HEADER_BYTES + 3) {
            let file = OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(full - cut).unwrap();
            drop(file);
            let (mut file, recovered) = RecordFile::open(&path, 1024, false).unwrap();
            assert_eq!(recovered.records.len(), 1, "cut {cut}");
            assert_eq!(file.read_at(recovered.records[0].0).unwrap(), b"one");
            file.append(b"two").unwrap();
        }
    }

    #[test]
    fn corruption_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records");
        {
            let (mut file, _) = RecordFile::open(&path, 1024, false).unwrap();
            file.append(b"one").unwrap();
            file.append(b"two").unwrap();
        }
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"X", RECORD_HEADER_BYTES).unwrap();
        drop(file);
        assert!(matches!(
            RecordFile::open(&path, 1024, false),
            Err(StoreError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn flipped_bit_in_last_record_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records");
        {
            let (mut file, _) = RecordFile::open(&path, 1024, false).unwrap();
            file.append(b"one").unwrap();
            file.append(b"two").unwrap();
        }
        let len = std::fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"X", len - 1).unwrap();
        drop(file);
        let (_, recovered) = RecordFile::open(&path, 1024, false).unwrap();
        assert_eq!(recovered.records.len(), 1);
        assert_eq!(recovered.torn_tail_bytes, RECORD_HEADER_BYTES + 3);
    }
}
