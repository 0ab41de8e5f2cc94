//! Typed errors of triedb.

use std::io;

/// Result alias for triedb.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in triedb. Corruption and bad files are
/// errors, never panics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error from the device, with what triedb was doing.
    #[error("i/o error while {context}: {source}")]
    Io { context: &'static str, source: io::Error },
    /// The device is full (ENOSPC / EDQUOT / EFBIG). The previous version is intact.
    #[error("storage full while {context}: {source}")]
    StorageFull { context: &'static str, source: io::Error },
    /// The file does not start with triedb's magic bytes.
    #[error("not a triedb file (bad magic)")]
    NotTrieDb,
    /// The file was written by a newer format than this build reads.
    #[error("file format version {found} is newer than the supported {supported}")]
    UnsupportedFormat { found: u32, supported: u32 },
    /// Neither metadata slot holds a valid (checksummed) record.
    #[error("both metadata slots are corrupt")]
    MetadataCorrupt,
    /// A node read from disk fails its checksum or does not decode.
    #[error("corrupt node at chunk {chunk} offset {offset}: {reason}")]
    CorruptNode { chunk: u32, offset: u32, reason: &'static str },
    /// A reference points outside the live part of the file.
    #[error("dangling node reference to chunk {chunk}")]
    DanglingRef { chunk: u32 },
    /// The version asked for is not retained (too old, or never committed).
    #[error("version {0} is not retained")]
    UnknownVersion(u64),
    /// Versions must increase with every commit.
    #[error("commit of version {new} after version {latest}: versions must increase")]
    VersionNotIncreasing { new: u64, latest: u64 },
    /// [`crate::TrieDb::commit_expecting`]: the updates give another root;
    /// nothing was committed.
    #[error(
        "version {version} would have state root {computed}, expected {expected}; not committed"
    )]
    RootMismatch {
        version: u64,
        expected: alloy_primitives::B256,
        computed: alloy_primitives::B256,
    },
    /// A value stored in the trie does not decode as the expected kind.
    #[error("invalid value in trie: {0}")]
    InvalidValue(&'static str),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Another process (or handle) has the database open.
    #[error("database {0} is open elsewhere (locked)")]
    Locked(std::path::PathBuf),
    /// The database was poisoned by an earlier failed commit whose outcome on
    /// disk is unknown; reopen it.
    #[error("database must be reopened after a failed commit")]
    Poisoned,
}

impl Error {
    /// Classifies an `io::Error`: a full device becomes [`Error::StorageFull`].
    pub(crate) fn io(context: &'static str, source: io::Error) -> Error {
        let full = matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG))
            || source.kind() == io::ErrorKind::StorageFull;
        if full { Error::StorageFull { context, source } } else { Error::Io { context, source } }
    }
}
