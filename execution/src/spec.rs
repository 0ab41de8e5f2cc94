//! Chain rules: which revm [`SpecId`] governs a block, by number and timestamp.
//!
//! A [`ChainSpec`] is a chain id plus an ordered fork schedule. Forks up to
//! Paris activate at a block number, later ones at a timestamp, as on
//! mainnet. Three sources:
//! * [`ChainSpec::mainnet`]: Frontier through Prague at mainnet's heights
//!   and times;
//! * [`ChainSpec::from_genesis_json`]: a geth-style `genesis.json` (devnets);
//! * [`ChainSpec::for_test_network`]: the `network` names of the
//!   ethereum/tests BlockchainTests, including transition networks such as
//!   `ShanghaiToCancunAtTime15k`.

use crate::error::SpecError;
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use revm::primitives::hardfork::SpecId;
use serde::Deserialize;
use std::collections::BTreeMap;
use wake_triedb::{AccountInfo, AccountUpdate, KECCAK_EMPTY, StateUpdates};

/// When a fork activates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkActivation {
    /// At this block number and later.
    Block(u64),
    /// At the first block whose timestamp is at least this.
    Timestamp(u64),
}

impl ForkActivation {
    fn is_active(self, number: u64, timestamp: u64) -> bool {
        match self {
            ForkActivation::Block(at) => number >= at,
            ForkActivation::Timestamp(at) => timestamp >= at,
        }
    }
}

/// A chain id and its fork schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    pub chain_id: u64,
    /// Forks in activation order, the first one active from genesis.
    forks: Vec<(SpecId, ForkActivation)>,
}

/// Mainnet fork heights and times (EIP-2387 etc.; the DAO fork's irregular
/// state change at 1,920,000 is not applied: see the crate doc).
const MAINNET: &[(SpecId, ForkActivation)] = &[
    (SpecId::FRONTIER, ForkActivation::Block(0)),
    (SpecId::HOMESTEAD, ForkActivation::Block(1_150_000)),
    (SpecId::TANGERINE, ForkActivation::Block(2_463_000)),
    (SpecId::SPURIOUS_DRAGON, ForkActivation::Block(2_675_000)),
    (SpecId::BYZANTIUM, ForkActivation::Block(4_370_000)),
    (SpecId::PETERSBURG, ForkActivation::Block(7_280_000)),
    (SpecId::ISTANBUL, ForkActivation::Block(9_069_000)),
    (SpecId::BERLIN, ForkActivation::Block(12_244_000)),
    (SpecId::LONDON, ForkActivation::Block(12_965_000)),
    (SpecId::MERGE, ForkActivation::Block(15_537_394)),
    (SpecId::SHANGHAI, ForkActivation::Timestamp(1_681_338_455)),
    (SpecId::CANCUN, ForkActivation::Timestamp(1_710_338_135)),
    (SpecId::PRAGUE, ForkActivation::Timestamp(1_746_612_311)),
];

/// Single-fork test networks and the revm spec each one means.
const TEST_NETWORKS: &[(&str, SpecId)] = &[
    ("Frontier", SpecId::FRONTIER),
    ("Homestead", SpecId::HOMESTEAD),
    ("EIP150", SpecId::TANGERINE),
    ("EIP158", SpecId::SPURIOUS_DRAGON),
    ("Byzantium", SpecId::BYZANTIUM),
    // "Constantinople" (with EIP-1283) never went live and revm has no spec
    // for it; "ConstantinopleFix" is Petersburg.
    ("ConstantinopleFix", SpecId::PETERSBURG),
    ("Petersburg", SpecId::PETERSBURG),
    ("Istanbul", SpecId::ISTANBUL),
    ("Berlin", SpecId::BERLIN),
    ("London", SpecId::LONDON),
    ("Paris", SpecId::MERGE),
    ("Merge", SpecId::MERGE),
    ("Shanghai", SpecId::SHANGHAI),
    ("Cancun", SpecId::CANCUN),
    ("Prague", SpecId::PRAGUE),
];

/// Transition test networks: (name, before, after, activation).
const TRANSITION_NETWORKS: &[(&str, SpecId, SpecId, ForkActivation)] = &[
    ("FrontierToHomesteadAt5", SpecId::FRONTIER, SpecId::HOMESTEAD, ForkActivation::Block(5)),
    ("HomesteadToEIP150At5", SpecId::HOMESTEAD, SpecId::TANGERINE, ForkActivation::Block(5)),
    ("EIP158ToByzantiumAt5", SpecId::SPURIOUS_DRAGON, SpecId::BYZANTIUM, ForkActivation::Block(5)),
    (
        "ByzantiumToConstantinopleFixAt5",
        SpecId::BYZANTIUM,
        SpecId::PETERSBURG,
        ForkActivation::Block(5),
    ),
    ("BerlinToLondonAt5", SpecId::BERLIN, SpecId::LONDON, ForkActivation::Block(5)),
    (
        "ParisToShanghaiAtTime15k",
        SpecId::MERGE,
        SpecId::SHANGHAI,
        ForkActivation::Timestamp(15_000),
    ),
    (
        "ShanghaiToCancunAtTime15k",
        SpecId::SHANGHAI,
        SpecId::CANCUN,
        ForkActivation::Timestamp(15_000),
    ),
    ("CancunToPragueAtTime15k", SpecId::CANCUN, SpecId::PRAGUE, ForkActivation::Timestamp(15_000)),
];

impl ChainSpec {
    /// Ethereum mainnet (chain id 1).
    pub fn mainnet() -> ChainSpec {
        ChainSpec { chain_id: 1, forks: MAINNET.to_vec() }
    }

    /// One spec from genesis on.
    pub fn single(chain_id: u64, spec: SpecId) -> ChainSpec {
        ChainSpec { chain_id, forks: vec![(spec, ForkActivation::Block(0))] }
    }

    /// A schedule from explicit forks. They must be in order (specs and
    /// activation points ascending) and start at genesis.
    pub fn new(
        chain_id: u64,
        forks: Vec<(SpecId, ForkActivation)>,
    ) -> Result<ChainSpec, SpecError> {
        let Some(&(_, first)) = forks.first() else {
            return Err(SpecError::EmptySchedule);
        };
        if !first.is_active(0, 0) {
            return Err(SpecError::NoGenesisFork);
        }
        for pair in forks.windows(2) {
            let ((a, at_a), (b, at_b)) = (pair[0], pair[1]);
            let ordered = a < b
                && match (at_a, at_b) {
                    (ForkActivation::Block(x), ForkActivation::Block(y))
                    | (ForkActivation::Timestamp(x), ForkActivation::Timestamp(y)) => x <= y,
                    (ForkActivation::Block(_), ForkActivation::Timestamp(_)) => true,
                    (ForkActivation::Timestamp(_), ForkActivation::Block(_)) => false,
                };
            if !ordered {
                return Err(SpecError::Unordered { earlier: a, later: b });
            }
        }
        Ok(ChainSpec { chain_id, forks })
    }

    /// The spec of the ethereum/tests network `name` (chain id 1), or
    /// [`SpecError::UnknownNetwork`] for networks without a revm spec
    /// (`Constantinople`) or unknown names.
    pub fn for_test_network(name: &str) -> Result<ChainSpec, SpecError> {
        if let Some(&(_, spec)) = TEST_NETWORKS.iter().find(|(n, _)| *n == name) {
            return Ok(ChainSpec::single(1, spec));
        }
        if let Some(&(_, before, after, at)) = TRANSITION_NETWORKS.iter().find(|(n, ..)| *n == name)
        {
            return ChainSpec::new(1, vec![(before, ForkActivation::Block(0)), (after, at)]);
        }
        Err(SpecError::UnknownNetwork(name.to_string()))
    }

    /// The revm spec of a block.
    pub fn spec_at(&self, number: u64, timestamp: u64) -> SpecId {
        self.forks
            .iter()
            .rev()
            .find(|(_, at)| at.is_active(number, timestamp))
            .map_or(SpecId::FRONTIER, |(spec, _)| *spec)
    }

    /// The newest fork this schedule ever reaches.
    pub fn last_spec(&self) -> SpecId {
        self.forks.last().map_or(SpecId::FRONTIER, |(spec, _)| *spec)
    }

    /// The fork schedule, in activation order.
    pub fn forks(&self) -> &[(SpecId, ForkActivation)] {
        &self.forks
    }

    /// Reads the chain spec of a geth-style `genesis.json`.
    pub fn from_genesis_json(json: &str) -> Result<ChainSpec, SpecError> {
        Ok(Genesis::from_json(json)?.spec)
    }
}

/// A geth-style genesis file: the chain spec and the initial state.
#[derive(Clone, Debug)]
pub struct Genesis {
    pub spec: ChainSpec,
    /// Initial accounts.
    pub alloc: BTreeMap<Address, GenesisAccount>,
    pub gas_limit: u64,
    pub timestamp: u64,
    pub extra_data: Bytes,
    pub base_fee_per_gas: Option<u64>,
    pub coinbase: Address,
    pub mix_hash: B256,
    pub difficulty: U256,
}

/// One account of a genesis `alloc`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenesisAccount {
    pub nonce: u64,
    pub balance: U256,
    pub code: Bytes,
    pub storage: BTreeMap<B256, U256>,
}

/// Most bytes of a genesis file we read (a devnet alloc, not a mainnet dump).
pub const GENESIS_JSON_BYTES_MAX: usize = 256 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGenesis {
    config: RawConfig,
    #[serde(default)]
    alloc: BTreeMap<Address, RawAccount>,
    gas_limit: Option<U256>,
    timestamp: Option<U256>,
    extra_data: Option<Bytes>,
    base_fee_per_gas: Option<U256>,
    coinbase: Option<Address>,
    mix_hash: Option<B256>,
    difficulty: Option<U256>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    chain_id: u64,
    homestead_block: Option<u64>,
    eip150_block: Option<u64>,
    eip158_block: Option<u64>,
    byzantium_block: Option<u64>,
    constantinople_block: Option<u64>,
    petersburg_block: Option<u64>,
    istanbul_block: Option<u64>,
    berlin_block: Option<u64>,
    london_block: Option<u64>,
    merge_netsplit_block: Option<u64>,
    terminal_total_difficulty: Option<U256>,
    #[serde(default)]
    terminal_total_difficulty_passed: bool,
    shanghai_time: Option<u64>,
    cancun_time: Option<u64>,
    prague_time: Option<u64>,
}

#[derive(Deserialize)]
struct RawAccount {
    #[serde(default)]
    nonce: Option<U256>,
    #[serde(default)]
    balance: Option<U256>,
    #[serde(default)]
    code: Option<Bytes>,
    #[serde(default)]
    storage: BTreeMap<U256, U256>,
}

impl Genesis {
    /// Parses a geth-style genesis file.
    pub fn from_json(json: &str) -> Result<Genesis, SpecError> {
        if json.len() > GENESIS_JSON_BYTES_MAX {
            return Err(SpecError::TooLarge { len: json.len(), max: GENESIS_JSON_BYTES_MAX });
        }
        let raw: RawGenesis =
            serde_json::from_str(json).map_err(|e| SpecError::Json(e.to_string()))?;
        let c = &raw.config;
        let mut forks = vec![(SpecId::FRONTIER, ForkActivation::Block(0))];
        let by_block = [
            (SpecId::HOMESTEAD, c.homestead_block),
            (SpecId::TANGERINE, c.eip150_block),
            (SpecId::SPURIOUS_DRAGON, c.eip158_block),
            (SpecId::BYZANTIUM, c.byzantium_block),
            // geth's Constantinople without Petersburg was never deployed;
            // both map to Petersburg, whichever comes first.
            (SpecId::PETERSBURG, c.petersburg_block.or(c.constantinople_block)),
            (SpecId::ISTANBUL, c.istanbul_block),
            (SpecId::BERLIN, c.berlin_block),
            (SpecId::LONDON, c.london_block),
        ];
        for (spec, block) in by_block {
            if let Some(block) = block {
                push_fork(&mut forks, spec, ForkActivation::Block(block));
            }
        }
        let merged_at_genesis = c.terminal_total_difficulty_passed
            || c.terminal_total_difficulty.is_some_and(|ttd| ttd.is_zero());
        match (c.merge_netsplit_block, merged_at_genesis) {
            (Some(block), _) => push_fork(&mut forks, SpecId::MERGE, ForkActivation::Block(block)),
            (None, true) => push_fork(&mut forks, SpecId::MERGE, ForkActivation::Block(0)),
            (None, false) if c.shanghai_time.is_some() => {
                return Err(SpecError::Json(
                    "shanghaiTime without a merge (mergeNetsplitBlock or terminalTotalDifficulty 0)"
                        .into(),
                ));
            }
            (None, false) => {}
        }
        for (spec, time) in [
            (SpecId::SHANGHAI, c.shanghai_time),
            (SpecId::CANCUN, c.cancun_time),
            (SpecId::PRAGUE, c.prague_time),
        ] {
            if let Some(time) = time {
                push_fork(&mut forks, spec, ForkActivation::Timestamp(time));
            }
        }
        let spec = ChainSpec::new(c.chain_id, forks)?;

        let quantity = |name: &'static str, v: Option<U256>| -> Result<u64, SpecError> {
            u64::try_from(v.unwrap_or_default()).map_err(|_| SpecError::Overflow(name))
        };
        let mut alloc = BTreeMap::new();
        for (address, acc) in raw.alloc {
            let storage = acc
                .storage
                .into_iter()
                .map(|(k, v)| (B256::from(k), v))
                .filter(|(_, v)| !v.is_zero())
                .collect();
            alloc.insert(
                address,
                GenesisAccount {
                    nonce: quantity("alloc nonce", acc.nonce)?,
                    balance: acc.balance.unwrap_or_default(),
                    code: acc.code.unwrap_or_default(),
                    storage,
                },
            );
        }
        Ok(Genesis {
            spec,
            alloc,
            gas_limit: quantity("gasLimit", raw.gas_limit)?,
            timestamp: quantity("timestamp", raw.timestamp)?,
            extra_data: raw.extra_data.unwrap_or_default(),
            base_fee_per_gas: raw
                .base_fee_per_gas
                .map(|v| quantity("baseFeePerGas", Some(v)))
                .transpose()?,
            coinbase: raw.coinbase.unwrap_or_default(),
            mix_hash: raw.mix_hash.unwrap_or_default(),
            difficulty: raw.difficulty.unwrap_or_default(),
        })
    }

    /// The alloc as a triedb diff (commit it as the genesis version).
    pub fn state_updates(&self) -> StateUpdates {
        let mut updates = StateUpdates::default();
        for (address, acc) in &self.alloc {
            let code_hash = if acc.code.is_empty() { KECCAK_EMPTY } else { keccak256(&acc.code) };
            if !acc.code.is_empty() {
                updates.codes.push(acc.code.clone());
            }
            let info = AccountInfo { nonce: acc.nonce, balance: acc.balance, code_hash };
            updates.accounts.insert(
                *address,
                AccountUpdate::Set { info, wipe_storage: false, storage: acc.storage.clone() },
            );
        }
        updates
    }
}

/// Appends a fork, replacing an earlier entry at the same spec (geth files
/// name some forks twice, e.g. eip155Block and eip158Block).
fn push_fork(forks: &mut Vec<(SpecId, ForkActivation)>, spec: SpecId, at: ForkActivation) {
    forks.retain(|(s, _)| *s != spec);
    forks.push((spec, at));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainnet_schedule() {
        let m = ChainSpec::mainnet();
        assert_eq!(m.spec_at(0, 0), SpecId::FRONTIER);
        assert_eq!(m.spec_at(1_150_000, 0), SpecId::HOMESTEAD);
        assert_eq!(m.spec_at(4_369_999, 0), SpecId::SPURIOUS_DRAGON);
        assert_eq!(m.spec_at(12_965_000, 0), SpecId::LONDON);
        assert_eq!(m.spec_at(15_537_394, 1_663_224_179), SpecId::MERGE);
        assert_eq!(m.spec_at(17_034_870, 1_681_338_455), SpecId::SHANGHAI);
        assert_eq!(m.spec_at(19_426_587, 1_710_338_135), SpecId::CANCUN);
        assert_eq!(m.spec_at(19_426_586, 1_710_338_123), SpecId::SHANGHAI);
        assert_eq!(m.spec_at(22_431_084, 1_746_612_311), SpecId::PRAGUE);
    }

    #[test]
    fn test_networks() {
        assert_eq!(ChainSpec::for_test_network("Cancun").unwrap().spec_at(1, 1), SpecId::CANCUN);
        assert_eq!(
            ChainSpec::for_test_network("ConstantinopleFix").unwrap().last_spec(),
            SpecId::PETERSBURG
        );
        let t = ChainSpec::for_test_network("ShanghaiToCancunAtTime15k").unwrap();
        assert_eq!(t.spec_at(1, 14_999), SpecId::SHANGHAI);
        assert_eq!(t.spec_at(2, 15_000), SpecId::CANCUN);
        assert!(matches!(
            ChainSpec::for_test_network("Constantinople"),
            Err(SpecError::UnknownNetwork(_))
        ));
    }

    #[test]
    fn unordered_schedule_is_rejected() {
        let forks = vec![
            (SpecId::FRONTIER, ForkActivation::Block(0)),
            (SpecId::CANCUN, ForkActivation::Timestamp(10)),
            (SpecId::LONDON, ForkActivation::Block(5)),
        ];
        assert!(matches!(ChainSpec::new(1, forks), Err(SpecError::Unordered { .. })));
        assert!(matches!(
            ChainSpec::new(1, vec![(SpecId::LONDON, ForkActivation::Block(3))]),
            Err(SpecError::NoGenesisFork)
        ));
    }

    #[test]
    fn geth_genesis() {
        let json = r#"{
            "config": {
                "chainId": 1337, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
                "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0,
                "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
                "terminalTotalDifficulty": 0, "shanghaiTime": 0, "cancunTime": 100
            },
            "gasLimit": "0x1c9c380",
            "timestamp": "0x0",
            "baseFeePerGas": "0x3b9aca00",
            "alloc": {
                "0x00000000000000000000000000000000000000aa": {
                    "balance": "0xde0b6b3a7640000",
                    "code": "0x6001",
                    "storage": {"0x01": "0x02"}
                }
            }
        }"#;
        let g = Genesis::from_json(json).unwrap();
        assert_eq!(g.spec.chain_id, 1337);
        assert_eq!(g.spec.spec_at(1, 50), SpecId::SHANGHAI);
        assert_eq!(g.spec.spec_at(2, 100), SpecId::CANCUN);
        assert_eq!(g.gas_limit, 30_000_000);
        assert_eq!(g.base_fee_per_gas, Some(1_000_000_000));
        let updates = g.state_updates();
        assert_eq!(updates.accounts.len(), 1);
        assert_eq!(updates.codes.len(), 1);
        assert!(Genesis::from_json("{").is_err());
    }
}
