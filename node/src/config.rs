//! `node.toml` and key files: what an operator writes to run `wake node`.
//!
//! ```toml
//! data_dir = "/var/lib/wake"          # relative paths are relative to this file
//! key_file = "validator.key"          # the validator's ed25519 secret; without
//!                                     # it the node is a full node (needs [execution])
//! listen = "/ip4/0.0.0.0/tcp/30400"
//! profile = "hw-profiles/dev-2core.toml"  # optional role-to-core layout
//!
//! [consensus]                          # optional; defaults shown
//! round_timeout_ms = 1000
//! execution_delay = 3                  # K: block h carries the result of h-K
//! execution = "async"                  # or "interleaved" (see below)
//! block_time_ms = 0                    # minimum time between blocks; 0: none
//! empty_block_ms = 200                 # with an empty mempool, at most one
//!                                      # block per this many ms; 0: no pause
//! block_gas_max = 100000000            # most gas a leader puts in one block
//!                                      # (below the chain's gas limit: about
//!                                      # one block time of execution)
//!
//! [network]                            # optional; defaults shown
//! inject_latency_ms = 0                # delay every message sent (experiments)
//!
//! [execution]                          # optional: without it the validator
//! genesis = "genesis.json"             # orders blocks but executes nothing
//! rpc = "127.0.0.1:8545"
//! threads = 2                          # default: the profile's, else 2
//! cache_mib = 256
//!
//! [[validators]]                       # the validator set, in index order
//! public_key = "…64 hex digits…"
//! stake = 1
//! address = "/ip4/10.0.0.1/tcp/30400"
//! ```
//!
//! `execution = "interleaved"` is the baseline that shows what asynchronous
//! execution buys: K is 2, the smallest delay at which a block can carry a
//! result, and a result of `h-2` exists only once `h-1` is certified, which
//! is the moment the leader of `h` wants to propose and (one message later)
//! its voters want to vote. So every round waits for one block's execution
//! at the leader and then at every voter, as in a chain whose blocks are
//! executed before they are voted on: a block costs C + 2E (consensus C,
//! execution E) instead of max(C, E).
//!
//! A key file holds one line: the 32-byte ed25519 secret in hex. It is
//! created with mode 0600 by `wake keys generate` and never overwritten.
//! Every problem is a [`ConfigError`] naming the file and the field.

use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::Multiaddr;
use serde::Deserialize;

/// Most validators a config may list (the consensus codec's bound).
pub const VALIDATORS_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// `node.toml`, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    key_file: Option<PathBuf>,
    listen: String,
    profile: Option<PathBuf>,
    #[serde(default)]
    consensus: ConsensusSection,
    #[serde(default)]
    network: NetworkSection,
    execution: Option<RawExecution>,
    validators: Vec<RawValidator>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecution {
    genesis: PathBuf,
    rpc: String,
    threads: Option<usize>,
    #[serde(default = "default_cache_mib")]
    cache_mib: usize,
}

fn default_cache_mib() -> usize {
    256
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    pub round_timeout_ms: u64,
    pub execution_delay: u64,
    pub execution: ExecutionMode,
    pub block_time_ms: u64,
    /// While the mempool is empty, blocks come at most this often, so an
    /// idle chain does not spin out empty blocks as fast as consensus goes.
    /// A transaction that arrives ends the pause within
    /// [`crate::executing::EMPTY_POLL_MS`].
    pub empty_block_ms: u64,
    /// The most gas a leader puts into one block, on top of the chain's
    /// gas limit. A block is executed by every validator after it is
    /// ordered, and the next proposals wait when execution is K blocks
    /// behind; a block much larger than what execution does in a block
    /// time turns that into seconds-long stalls, so keep it near one
    /// block time of execution.
    pub block_gas_max: u64,
}

impl ConsensusSection {
    /// K as the mode makes it.
    pub fn effective_delay(&self) -> u64 {
        match self.execution {
            ExecutionMode::Async => self.execution_delay,
            ExecutionMode::Interleaved => INTERLEAVED_DELAY,
        }
    }
}

/// The default of `[consensus] block_gas_max`: 100 Mgas, 0.2 s of execution
/// at the 0.5 Ggas/s a 10k ERC-20 transfers per second node needs.
pub const BLOCK_GAS_MAX_DEFAULT: u64 = 100_000_000;

/// The gas of the smallest transaction (a plain transfer).
const TX_GAS_MIN: u64 = 21_000;

/// K of interleaved mode (see the module doc).
pub const INTERLEAVED_DELAY: u64 = 2;

/// How execution relates to consensus.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// Blocks are ordered while earlier ones execute; block h carries h-K.
    #[default]
    Async,
    /// One block's execution on the critical path of every round.
    Interleaved,
}

impl ExecutionMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Async => "async",
            Self::Interleaved => "interleaved",
        }
    }
}

/// `[network]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// Every message this node sends leaves this much later (a one-way
    /// latency for experiments on one machine).
    pub inject_latency_ms: u64,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        let defaults = wake_consensus::Config::default();
        Self {
            round_timeout_ms: defaults.round_timeout_ms,
            execution_delay: defaults.execution_delay,
            execution: ExecutionMode::Async,
            block_time_ms: 0,
            empty_block_ms: 200,
            block_gas_max: BLOCK_GAS_MAX_DEFAULT,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidator {
    public_key: String,
    stake: u64,
    address: Option<String>,
}

/// One member of the validator set.
#[derive(Clone, Debug)]
pub struct ValidatorEntry {
    pub public_key: [u8; 32],
    pub stake: u64,
    pub address: Option<Multiaddr>,
}

/// A checked `node.toml`.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    /// The validator key; absent: a full node (see `crate::follower`),
    /// whose network identity is `data_dir/node.key`, made on first start.
    pub key_file: Option<PathBuf>,
    pub listen: Multiaddr,
    /// The role-to-core layout (`hw-profiles/`); none: the OS schedules.
    pub profile: Option<crate::profile::Profile>,
    pub consensus: ConsensusSection,
    pub network: NetworkSection,
    /// Absent: an ordering-only validator (no state, no transactions).
    pub execution: Option<crate::executing::ExecutionSettings>,
    pub validators: Vec<ValidatorEntry>,
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let invalid = |reason: String| ConfigError::Invalid { path: path.to_owned(), reason };
        let raw: RawConfig = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let listen: Multiaddr =
            raw.listen.parse().map_err(|e| invalid(format!("listen {:?}: {e}", raw.listen)))?;
        if raw.validators.is_empty() || raw.validators.len() > VALIDATORS_MAX {
            return Err(invalid(format!(
                "{} validators listed; between 1 and {VALIDATORS_MAX} are needed",
                raw.validators.len()
            )));
        }
        if raw.consensus.round_timeout_ms == 0 || raw.consensus.execution_delay == 0 {
            return Err(invalid(
                "consensus.round_timeout_ms and execution_delay must be > 0".into(),
            ));
        }
        if raw.consensus.block_gas_max < TX_GAS_MIN {
            return Err(invalid(format!(
                "consensus.block_gas_max ({}) is below one transaction's {TX_GAS_MIN} gas",
                raw.consensus.block_gas_max
            )));
        }
        if raw.consensus.block_time_ms >= raw.consensus.round_timeout_ms {
            return Err(invalid(format!(
                "consensus.block_time_ms ({}) must be below round_timeout_ms ({})",
                raw.consensus.block_time_ms, raw.consensus.round_timeout_ms
            )));
        }
        if raw.consensus.empty_block_ms >= raw.consensus.round_timeout_ms {
            return Err(invalid(format!(
                "consensus.empty_block_ms ({}) must be below round_timeout_ms ({})",
                raw.consensus.empty_block_ms, raw.consensus.round_timeout_ms
            )));
        }
        if raw.network.inject_latency_ms > 10_000 {
            return Err(invalid("network.inject_latency_ms is at most 10000".into()));
        }
        let mut validators = Vec::with_capacity(raw.validators.len());
        for (index, validator) in raw.validators.iter().enumerate() {
            let public_key = parse_hex32(&validator.public_key)
                .map_err(|e| invalid(format!("validators[{index}].public_key: {e}")))?;
            let address =
                match &validator.address {
                    None => None,
                    Some(text) => Some(text.parse::<Multiaddr>().map_err(|e| {
                        invalid(format!("validators[{index}].address {text:?}: {e}"))
                    })?),
                };
            validators.push(ValidatorEntry { public_key, stake: validator.stake, address });
        }
        if raw.key_file.is_none() && raw.execution.is_none() {
            return Err(invalid(
                "no key_file, so this is a full node, and a full node needs [execution] \
                 (it executes the finalized blocks and serves JSON-RPC)"
                    .into(),
            ));
        }
        let profile = match &raw.profile {
            None => None,
            Some(file) => Some(crate::profile::Profile::load(&base.join(file))?),
        };
        let profile_threads = profile.as_ref().and_then(|p| p.execution_threads);
        let execution = match raw.execution {
            None => None,
            Some(e) => Some(crate::executing::ExecutionSettings {
                genesis: base.join(e.genesis),
                rpc: e
                    .rpc
                    .parse()
                    .map_err(|err| invalid(format!("execution.rpc {:?}: {err}", e.rpc)))?,
                threads: e.threads.or(profile_threads).unwrap_or(2).clamp(1, 256),
                cache_mib: e.cache_mib.clamp(1, 1 << 20),
            }),
        };
        Ok(Self {
            profile,
            execution,
            data_dir: base.join(raw.data_dir),
            key_file: raw.key_file.map(|file| base.join(file)),
            listen,
            consensus: raw.consensus,
            network: raw.network,
            validators,
        })
    }
}

fn parse_hex32(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let text = text.strip_prefix("0x").unwrap_or(text);
    let bytes = hex::decode(text).map_err(|e| format!("not hex: {e}"))?;
    bytes.try_into().map_err(|bytes: Vec<u8>| format!("{} bytes, expected 32", bytes.len()))
}

/// Reads a key file (one line of hex).
pub fn read_key(path: &Path) -> Result<[u8; 32], ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse_hex32(&text).map_err(|reason| ConfigError::Invalid { path: path.to_owned(), reason })
}

/// Writes a new key file (mode 0600); refuses to overwrite one.
pub fn write_new_key(path: &Path, secret: &[u8; 32]) -> Result<(), ConfigError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = |source| ConfigError::Write { path: path.to_owned(), source };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(write)?;
    file.write_all(format!("{}\n", hex::encode(secret)).as_bytes()).map_err(write)?;
    file.sync_all().map_err(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("node.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn loads_a_config_with_paths_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &format!(
                "data_dir = \"data\"\nkey_file = \"v.key\"\nlisten = \"/ip4/127.0.0.1/tcp/0\"\n\
                 [[validators]]\npublic_key = \"{KEY}\"\nstake = 5\naddress = \"/ip4/127.0.0.1/tcp/1\"\n"
            ),
        );
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.data_dir, dir.path().join("data"));
        assert_eq!(config.validators[0].stake, 5);
        assert_eq!(config.consensus.execution_delay, 3);
    }

    #[test]
    fn every_bad_field_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("data_dir = 1", "data_dir"),
            (
                "data_dir = \"d\"\nkey_file = \"k\"\nlisten = \"nonsense\"\n[[validators]]\npublic_key = \"00\"\nstake = 1\n",
                "listen",
            ),
            (
                "data_dir = \"d\"\nkey_file = \"k\"\nlisten = \"/ip4/1.2.3.4/tcp/1\"\n[[validators]]\npublic_key = \"00\"\nstake = 1\n",
                "public_key",
            ),
            (
                "data_dir = \"d\"\nkey_file = \"k\"\nlisten = \"/ip4/1.2.3.4/tcp/1\"\nvalidators = []\n",
                "validators",
            ),
            (
                "data_dir = \"d\"\nkey_file = \"k\"\nlisten = \"/ip4/1.2.3.4/tcp/1\"\nbogus = 1\nvalidators = []\n",
                "bogus",
            ),
        ];
        for (text, field) in cases {
            let err = NodeConfig::load(&write(dir.path(), text)).unwrap_err().to_string();
            assert!(err.contains(field), "{err:?} should name {field}");
        }
    }

    #[test]
    fn key_files_are_new_private_and_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.key");
        write_new_key(&path, &[9u8; 32]).unwrap();
        assert_eq!(read_key(&path).unwrap(), [9u8; 32]);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(write_new_key(&path, &[1u8; 32]).is_err(), "an existing key is never overwritten");
        assert_eq!(read_key(&path).unwrap(), [9u8; 32]);
    }
}
