//! # wake-triedb
//!
//! The Ethereum state — an account trie keyed by `keccak(address)` and one
//! storage trie per account keyed by `keccak(slot)`, plus contract code by
//! hash — kept in one file (or raw block device) on SSD. Roots are
//! bit-identical to Ethereum's.
//!
//! ## Main types
//! * [`TrieDb`]: an open database. [`TrieDb::commit`] applies one block's
//!   [`StateUpdates`] as a new version and returns the state root;
//!   [`TrieDb::commit_expecting`] keeps the version only if its root is the
//!   one a block header names, and [`TrieDb::root_of`] computes a root
//!   without keeping anything;
//!   [`TrieDb::snapshot`] opens any retained version for reading while
//!   commits go on.
//! * [`Snapshot`]: reads of one version: [`Snapshot::account`],
//!   [`Snapshot::storage`], [`Snapshot::code`] (synchronous), the batched
//!   [`Snapshot::accounts`] / [`Snapshot::storage_batch`] (many reads in
//!   flight at once), both as one batch ([`Snapshot::read_batch`]), the
//!   streamed [`Snapshot::accounts_streamed`] (keys pulled from an iterator
//!   as read slots free, so the queue never drains between batches), and
//!   EIP-1186 proofs ([`Snapshot::proof`]). A snapshot keeps the top of its
//!   account trie, of its largest storage tries, and the storage roots its
//!   slot lookups passed, so later lookups skip those levels.
//! * [`ReadAhead`]: the nodes a block's batched reads walked
//!   ([`Snapshot::accounts_ahead`], [`Snapshot::storage_batch_ahead`],
//!   [`Snapshot::read_batch_ahead`]),
//!   handed to that block's commit ([`TrieDb::commit_ahead`]) so it reads
//!   none of them again, whatever the cache evicted in between. It pins
//!   the versions it read, which is what makes a node found by location
//!   the right one.
//! * [`io`]: the storage trait, the O_DIRECT file, and the read engine
//!   (io_uring, or a pread pool where io_uring is unavailable).
//! * [`trie_root`]: a root computed in memory, no database: a streaming
//!   builder over the sorted keys that allocates nothing per node.
//! * [`fault::FaultyStorage`]: a storage that injects torn writes, ENOSPC,
//!   failed syncs and bit flips, for tests.
//!
//! ## Design decisions
//! * **Append-only, copy-on-write.** A commit rewrites only the nodes on the
//!   paths it changes and appends them to the head chunk. Untouched subtrees
//!   are shared with older versions, so every retained version stays
//!   readable without copies, and a crash can only hit bytes no durable
//!   version refers to (each commit starts on a fresh page).
//! * **A parent stores its children's hashes and locations.** Re-hashing a
//!   path never reads a sibling, and a lookup costs one read per level that
//!   is not cached.
//! * **Leaves live inside their parent branch on disk** (when small, as
//!   every account and slot is). With the inner nodes of the tries resident
//!   in the cache's upper tier, a cold lookup is one 4 KiB read.
//! * **Leaves are packed on disk.** An account leaf writes its numbers
//!   without leading zeros and leaves out the empty code hash and the empty
//!   storage root; an externally owned account takes 45 bytes, not 113. The
//!   leaves are most of a bottom record, so the cache holds nearly twice as
//!   many bottom branches in the same budget (format 2; format-1 files
//!   still open).
//! * **Our own cache, O_DIRECT, fixed budget.** The page cache is bypassed;
//!   the node cache ([`Config::cache_bytes`]) keeps a tier for inner
//!   nodes (up to three quarters of its budget, growing with what it
//!   holds), so streams of cold leaves cannot evict them; the bottom tier
//!   borrows whatever part of that tier's capacity it does not hold, and
//!   gives it back as the inner tier fills. Once the cache
//!   is half full, bottom nodes are kept as their on-disk record
//!   (~0.8 KiB for a bottom branch of ten accounts, against ~2.4 KiB
//!   decoded) and decoded on a hit, so the budget covers more of the
//!   state; below that (a state that fits) they are kept decoded, and a
//!   commit caches every node it writes, so hits cost no decoding and the
//!   next block reads nothing back. Each snapshot keeps the top of its
//!   account trie (the root and depths 1 to 3, as lookups pass them), and
//!   of up to 16 large storage tries (8,192 nodes in all): a lookup
//!   borrows those nodes without the cache's locks and reference counts. A lookup can also be asked to stay
//!   off the device ([`Snapshot::storage_if_cached`]): an executor with
//!   other work notes what is not cached for a batch instead.
//! * **Our own io_uring ring**, bounded depth (default 32), no SQPOLL. A
//!   batch runs one state machine per key; keys waiting on the same node
//!   share one read. Queued reads enter the kernel two at a time at depth
//!   32 (a sixteenth of the depth), or when nothing else is ready. A large
//!   batch can be split across threads, a ring each
//!   ([`Config::batch_threads`], default 1), for devices faster than one
//!   thread can walk and decode for.
//! * **Compaction by chunk floor.** Each reference records the lowest chunk
//!   its subtree touches (`min_chunk`). When the chunks between the
//!   compaction floor and the head hold more than twice the live data, the
//!   floor moves forward a few chunks per commit and the commit copies every
//!   node below it forward, visiting only subtrees whose `min_chunk` is
//!   below the floor. A chunk is reused once no retained version (and no
//!   open snapshot) reaches below it.
//! * **Durability:** nodes → `fdatasync` → metadata record (versions, chunk
//!   map, write cursor; crc32c) into the older of two slots → `fdatasync`.
//!   Every node carries a crc32c seeded with its own location, so corrupt or
//!   misplaced data is a typed [`Error::CorruptNode`], never a wrong answer.
//!   A commit that fails before its metadata write rolls back in memory; one
//!   that fails during it poisons the handle ([`Error::Poisoned`]) until a
//!   reopen tells what reached the disk.

mod codec;
mod commit;
mod db;
mod error;
pub mod fault;
pub mod io;
mod meta;
mod node;
mod read;
mod root;
mod store;
mod types;

pub use db::{BATCH_PART_MIN, Config, ReadAhead, Snapshot, Stats, TrieDb};
pub use error::{Error, Result};
pub use io::{IoBackend, IoBackendChoice};
pub use root::{sorted_trie_root, trie_root, trie_root_with_threads};
pub use types::*;
