//! Randomised conformance of triedb against an in-memory model whose roots
//! come from alloy-trie.
//!
//! Every case is a pure function of its seed (a SplitMix64 generator defined
//! here, so the sequence never changes with a dependency update). Failure
//! messages name the test, the seed and the version; rerun one seed alone with
//! `WAKE_ORACLE_SEED=<seed> cargo test --release -p wake-tests --test oracle <test>`.
//! `WAKE_ORACLE_SEEDS=<n>` changes how many seeds the seeded tests run.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt::Display;
use std::path::Path;
use std::time::Instant;
use wake_tests::workload::{Model, ModelAccount};
use wake_triedb::io::{IoBackend, IoBackendChoice};
use wake_triedb::{
    Account, AccountInfo, AccountUpdate, Config, EMPTY_ROOT, Error, KECCAK_EMPTY, Snapshot,
    StateUpdates, TrieDb, VersionInfo,
};

// ---------------------------------------------------------------------------
// Deterministic generator.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    fn range(&mut self, lo: u64, hi_inclusive: u64) -> u64 {
        lo + self.below(hi_inclusive - lo + 1)
    }
    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn b256(&mut self) -> B256 {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        B256::from(out)
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
    fn u256(&mut self) -> U256 {
        match self.below(10) {
            0 => U256::MAX,
            1..=4 => U256::from(self.range(1, 1000)),
            5..=7 => U256::from(self.next_u64() | 1),
            _ => U256::from_be_bytes(self.b256().0) | U256::from(1),
        }
    }
}

// ---------------------------------------------------------------------------
// Workload.

#[derive(Clone, Copy, Debug)]
struct Workload {
    /// Distinct addresses drawn from.
    pool: u64,
    /// Most accounts touched per commit.
    max_accounts_per_commit: u64,
    /// Slots of ordinary contracts are drawn from `0..slot_pool` (plus a few random ones).
    slot_pool: u64,
    /// The first `hot` pool addresses are contracts with big storage tries.
    hot: u64,
    /// Slot writes per hot contract per commit.
    hot_writes: u64,
}

struct Generator {
    rng: Rng,
    w: Workload,
    addresses: Vec<Address>,
    /// Addresses that existed at some point (to count re-creations).
    ever_existed: HashSet<Address>,
    /// What the generated updates did, by kind.
    kinds: OpKinds,
}

/// Counts of the kinds of operation generated, to show (and assert) that the
/// workload covers them all.
#[derive(Clone, Copy, Debug, Default)]
struct OpKinds {
    create: u64,
    recreate_after_delete: u64,
    update_fields: u64,
    unchanged: u64,
    delete_with_storage: u64,
    delete_without_storage: u64,
    delete_absent: u64,
    wipe_storage_of_existing: u64,
    slot_insert: u64,
    slot_update: u64,
    slot_delete: u64,
    slot_delete_absent: u64,
    code_written: u64,
}

impl OpKinds {
    fn add(&mut self, o: &OpKinds) {
        self.create += o.create;
        self.recreate_after_delete += o.recreate_after_delete;
        self.update_fields += o.update_fields;
        self.unchanged += o.unchanged;
        self.delete_with_storage += o.delete_with_storage;
        self.delete_without_storage += o.delete_without_storage;
        self.delete_absent += o.delete_absent;
        self.wipe_storage_of_existing += o.wipe_storage_of_existing;
        self.slot_insert += o.slot_insert;
        self.slot_update += o.slot_update;
        self.slot_delete += o.slot_delete;
        self.slot_delete_absent += o.slot_delete_absent;
        self.code_written += o.code_written;
    }

    fn assert_all_covered(&self, ctx: &str) {
        let all = [
            self.create,
            self.recreate_after_delete,
            self.update_fields,
            self.unchanged,
            self.delete_with_storage,
            self.delete_without_storage,
            self.delete_absent,
            self.wipe_storage_of_existing,
            self.slot_insert,
            self.slot_update,
            self.slot_delete,
            self.slot_delete_absent,
            self.code_written,
        ];
        assert!(
            all.iter().all(|n| *n > 0),
            "{ctx}: the workload missed a kind of operation: {self:?}"
        );
    }
}

fn pool_addresses(seed: u64, n: u64) -> Vec<Address> {
    (0..n)
        .map(|i| Address::from_word(keccak256([seed.to_be_bytes(), i.to_be_bytes()].concat())))
        .collect()
}

fn slot_key(i: u64) -> B256 {
    B256::from(U256::from(i))
}

impl Generator {
    fn new(seed: u64, w: Workload) -> Generator {
        Generator {
            rng: Rng::new(seed),
            w,
            addresses: pool_addresses(seed, w.pool),
            ever_existed: HashSet::new(),
            kinds: OpKinds::default(),
        }
    }

    /// Counts what `updates` does to `model` (before it is applied).
    fn classify(&mut self, model: &Model, updates: &StateUpdates) {
        let k = &mut self.kinds;
        k.code_written += updates.codes.len() as u64;
        for (address, update) in &updates.accounts {
            let existing = model.accounts.get(address);
            match (update, existing) {
                (AccountUpdate::Delete, None) => k.delete_absent += 1,
                (AccountUpdate::Delete, Some(acc)) if acc.storage.is_empty() => {
                    k.delete_without_storage += 1
                }
                (AccountUpdate::Delete, Some(_)) => k.delete_with_storage += 1,
                (AccountUpdate::Set { info, wipe_storage, storage }, existing) => {
                    let mut old_storage = existing.map(|acc| &acc.storage);
                    match existing {
                        None if self.ever_existed.contains(address) => k.recreate_after_delete += 1,
                        None => k.create += 1,
                        Some(acc) if *wipe_storage && !acc.storage.is_empty() => {
                            k.wipe_storage_of_existing += 1;
                            old_storage = None;
                        }
                        Some(acc) if acc.info == *info && storage.is_empty() => k.unchanged += 1,
                        Some(_) => k.update_fields += 1,
                    }
                    for (slot, value) in storage {
                        let old = old_storage.and_then(|st| st.get(slot));
                        match (old, value.is_zero()) {
                            (None, true) => k.slot_delete_absent += 1,
                            (None, false) => k.slot_insert += 1,
                            (Some(_), true) => k.slot_delete += 1,
                            (Some(_), false) => k.slot_update += 1,
                        }
                    }
                    self.ever_existed.insert(*address);
                }
            }
        }
    }

    fn slot(&mut self, hot: bool) -> B256 {
        if hot {
            slot_key(self.rng.below(self.w.slot_pool * 20))
        } else if self.rng.pct(5) {
            self.rng.b256()
        } else {
            slot_key(self.rng.below(self.w.slot_pool))
        }
    }

    fn value(&mut self) -> U256 {
        self.rng.u256()
    }

    /// Random slot writes; about `zero_pct` percent of them write zero
    /// (deleting the slot, often one that exists).
    fn slot_writes(
        &mut self,
        existing: Option<&ModelAccount>,
        n: u64,
        hot: bool,
        zero_pct: u64,
    ) -> BTreeMap<B256, U256> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let slot = match existing {
                Some(acc) if !acc.storage.is_empty() && self.rng.pct(50) => {
                    let i = self.rng.below(acc.storage.len() as u64) as usize;
                    *acc.storage.keys().nth(i).unwrap()
                }
                _ => self.slot(hot),
            };
            let value = if self.rng.pct(zero_pct) { U256::ZERO } else { self.value() };
            out.insert(slot, value);
        }
        out
    }

    fn new_info(&mut self, codes: &mut Vec<Bytes>) -> AccountInfo {
        let code_hash = if self.rng.pct(30) {
            let len = self.rng.range(1, 300) as usize;
            let code = Bytes::from(self.rng.bytes(len));
            let hash = keccak256(&code);
            codes.push(code);
            hash
        } else {
            KECCAK_EMPTY
        };
        let nonce = match self.rng.below(10) {
            0 => u64::MAX,
            1..=5 => 0,
            _ => self.rng.below(1000),
        };
        let balance = if self.rng.pct(20) { U256::ZERO } else { self.value() };
        AccountInfo { nonce, balance, code_hash }
    }

    /// One block's updates against the current model.
    fn updates(&mut self, model: &Model) -> StateUpdates {
        let mut updates = StateUpdates::default();
        let n = self.rng.range(1, self.w.max_accounts_per_commit);
        for _ in 0..n {
            let index = self.rng.below(self.w.pool);
            let address = self.addresses[index as usize];
            if updates.accounts.contains_key(&address) {
                continue;
            }
            let hot = index < self.w.hot;
            let existing = model.accounts.get(&address);
            let update = match existing {
                Some(acc) => match self.rng.below(100) {
                    // Deletion with all its storage.
                    0..=7 => AccountUpdate::Delete,
                    // SELFDESTRUCT and re-creation in one block: wipe, then new slots.
                    8..=14 => {
                        let n = self.rng.below(6);
                        let storage = self.slot_writes(None, n, hot, 10);
                        AccountUpdate::Set {
                            info: self.new_info(&mut updates.codes),
                            wipe_storage: true,
                            storage,
                        }
                    }
                    // Fields only.
                    15..=34 => {
                        let mut info = acc.info;
                        info.nonce = info.nonce.wrapping_add(1);
                        if self.rng.pct(50) {
                            info.balance = self.value();
                        }
                        AccountUpdate::info(info)
                    }
                    // No change at all.
                    35..=39 => AccountUpdate::Set {
                        info: acc.info,
                        wipe_storage: false,
                        storage: BTreeMap::new(),
                    },
                    // Fields and storage.
                    _ => {
                        let mut info = acc.info;
                        if self.rng.pct(50) {
                            info.nonce = info.nonce.wrapping_add(1);
                        }
                        if self.rng.pct(50) {
                            info.balance = self.value();
                        }
                        let writes = if hot { self.w.hot_writes } else { self.rng.below(9) };
                        let storage = self.slot_writes(Some(acc), writes, hot, 25);
                        AccountUpdate::Set { info, wipe_storage: false, storage }
                    }
                },
                None => {
                    if self.rng.pct(5) {
                        // Deleting an account that does not exist: no effect.
                        AccountUpdate::Delete
                    } else {
                        let writes = if hot { self.w.hot_writes } else { self.rng.below(13) };
                        // A few zero writes: deleting slots that do not exist.
                        let storage = self.slot_writes(None, writes, hot, 5);
                        let wipe_storage = self.rng.pct(20);
                        AccountUpdate::Set {
                            info: self.new_info(&mut updates.codes),
                            wipe_storage,
                            storage,
                        }
                    }
                }
            };
            updates.accounts.insert(address, update);
        }
        self.classify(model, &updates);
        updates
    }
}

// ---------------------------------------------------------------------------
// Checks.

fn ok<T, E: Display>(r: Result<T, E>, ctx: &str, what: impl FnOnce() -> String) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{ctx}: {}: {e}", what()),
    }
}

fn config(
    path: &Path,
    retain: u64,
    chunk_bytes: u64,
    cache_bytes: usize,
    io: IoBackendChoice,
) -> Config {
    let mut c = Config::new(path);
    c.retain_versions = retain;
    c.chunk_bytes = chunk_bytes;
    c.cache_bytes = cache_bytes;
    c.io_backend = io;
    c
}

/// How thoroughly [`check_version`] reads.
#[derive(Clone, Copy)]
struct Coverage {
    /// Pool accounts read one by one (all of them in batch calls).
    sync_accounts: usize,
    /// Also read with `accounts_with_depth` at these depths.
    depths: &'static [usize],
}

const FULL: Coverage = Coverage { sync_accounts: usize::MAX, depths: &[1, 3, 64] };
const LIGHT: Coverage = Coverage { sync_accounts: 200, depths: &[4] };

/// Reads `version` back and compares it with `model` (whose roots are computed).
fn check_version(
    db: &TrieDb,
    version: u64,
    model: &Model,
    pool: &[Address],
    cov: Coverage,
    ctx: &str,
) {
    let ctx = format!("{ctx}, checking version {version}");
    let ctx = ctx.as_str();
    let snap: Snapshot = ok(db.snapshot(version), ctx, || "snapshot".into());
    assert_eq!(snap.version(), version, "{ctx}: Snapshot::version");
    let m = model.clone();
    let want_root = m.root();
    assert_eq!(snap.state_root(), want_root, "{ctx}: Snapshot::state_root vs alloy-trie oracle");

    // Accounts: the whole pool (present and absent) plus never-used addresses.
    let mut addresses: Vec<Address> = pool.to_vec();
    addresses.extend(pool_addresses(u64::MAX - version, 8));
    let want: Vec<Option<Account>> = addresses.iter().map(|a| m.account(a)).collect();
    for (i, address) in addresses.iter().enumerate().take(cov.sync_accounts) {
        let got = ok(snap.account(address), ctx, || format!("account({address})"));
        assert_eq!(got, want[i], "{ctx}: account({address})");
    }
    let got = ok(snap.accounts(&addresses), ctx, || "accounts(pool)".into());
    assert_eq!(got.len(), addresses.len(), "{ctx}: accounts() length");
    for (i, address) in addresses.iter().enumerate() {
        assert_eq!(got[i], want[i], "{ctx}: accounts()[{i}] = account {address}");
    }
    for &depth in cov.depths {
        let got = ok(snap.accounts_with_depth(&addresses, depth), ctx, || {
            format!("accounts_with_depth({depth})")
        });
        assert_eq!(got.len(), addresses.len(), "{ctx}: accounts_with_depth({depth}) length");
        for (i, address) in addresses.iter().enumerate() {
            assert_eq!(
                got[i], want[i],
                "{ctx}: accounts_with_depth({depth})[{i}] = account {address}"
            );
        }
    }

    // Storage: every slot of every account, absent slots of present accounts,
    // and slots of absent accounts.
    let mut keys: Vec<(Address, B256)> = Vec::new();
    for (address, acc) in &m.accounts {
        keys.extend(acc.storage.keys().map(|slot| (*address, *slot)));
        keys.push((*address, slot_key(u64::MAX)));
        keys.push((*address, keccak256(address)));
    }
    for address in pool.iter().filter(|a| !m.accounts.contains_key(*a)).take(50) {
        keys.push((*address, slot_key(0)));
        keys.push((*address, slot_key(1)));
    }
    let want: Vec<U256> = keys.iter().map(|(a, s)| m.storage(a, s)).collect();
    let got = ok(snap.storage_batch(&keys), ctx, || "storage_batch".into());
    assert_eq!(got.len(), keys.len(), "{ctx}: storage_batch length");
    for (i, (address, slot)) in keys.iter().enumerate() {
        assert_eq!(got[i], want[i], "{ctx}: storage_batch[{i}] = storage({address}, {slot})");
    }
    let step = if cov.sync_accounts == usize::MAX { 1 } else { (keys.len() / 500).max(1) };
    for (i, (address, slot)) in keys.iter().enumerate().step_by(step) {
        let got = ok(snap.storage(address, slot), ctx, || format!("storage({address}, {slot})"));
        assert_eq!(got, want[i], "{ctx}: storage({address}, {slot})");
    }
}

/// Codes are kept forever: the newest version returns every code ever written.
fn check_codes(db: &TrieDb, version: u64, model: &Model, ctx: &str) {
    let snap = ok(db.snapshot(version), ctx, || format!("snapshot({version})"));
    for (hash, code) in &model.codes {
        let got = ok(snap.code(hash), ctx, || format!("code({hash})"));
        assert_eq!(got.as_ref(), Some(code), "{ctx}: code({hash}) at version {version}");
    }
    let absent = keccak256(b"wake: a code nobody wrote");
    assert_eq!(
        ok(snap.code(&absent), ctx, || "code(absent)".into()),
        None,
        "{ctx}: code of an unknown hash"
    );
}

/// Versions readable now and the saved model of each.
struct History {
    retain: u64,
    saved: VecDeque<(u64, B256, Model)>,
}

impl History {
    fn push(&mut self, version: u64, root: B256, model: &Model) {
        self.saved.push_back((version, root, model.clone()));
        while self.saved.len() as u64 > self.retain {
            self.saved.pop_front();
        }
    }

    fn check_all(&self, db: &TrieDb, pool: &[Address], cov: Coverage, ctx: &str) {
        let want: Vec<VersionInfo> = self
            .saved
            .iter()
            .map(|(version, state_root, _)| VersionInfo {
                version: *version,
                state_root: *state_root,
            })
            .collect();
        assert_eq!(
            db.versions(),
            want,
            "{ctx}: TrieDb::versions() (retain_versions = {})",
            self.retain
        );
        assert_eq!(db.latest(), want.last().copied(), "{ctx}: TrieDb::latest()");
        for (version, _, model) in &self.saved {
            check_version(db, *version, model, pool, cov, ctx);
        }
        // Versions outside the window.
        let oldest = self.saved.front().map_or(0, |s| s.0);
        let newest = self.saved.back().map_or(0, |s| s.0);
        let mut gone = vec![newest + 1, newest + 1000];
        if oldest > 1 {
            gone.push(oldest - 1);
            gone.push(1);
        }
        for v in gone {
            match db.snapshot(v) {
                Err(Error::UnknownVersion(got)) => {
                    assert_eq!(got, v, "{ctx}: UnknownVersion payload")
                }
                Err(e) => panic!(
                    "{ctx}: snapshot({v}) outside the retained window {oldest}..={newest}: wrong error {e}"
                ),
                Ok(_) => panic!(
                    "{ctx}: snapshot({v}) outside the retained window {oldest}..={newest} succeeded"
                ),
            }
        }
    }
}

/// Commits versions `first..=last`, checking each root against the oracle.
#[allow(clippy::too_many_arguments)]
fn run_commits(
    db: &TrieDb,
    gen_: &mut Generator,
    model: &mut Model,
    history: &mut History,
    first: u64,
    last: u64,
    check_every: u64,
    ctx: &str,
) -> usize {
    let mut ops = 0;
    for version in first..=last {
        let updates = gen_.updates(model);
        ops += updates.accounts.len()
            + updates
                .accounts
                .values()
                .map(|u| match u {
                    AccountUpdate::Set { storage, .. } => storage.len(),
                    AccountUpdate::Delete => 0,
                })
                .sum::<usize>();
        model.apply(&updates);
        let want = model.root();
        let got = ok(db.commit(version, &updates), ctx, || format!("commit({version})"));
        if got != want {
            panic!(
                "{ctx}: root of version {version}: triedb {got}, alloy-trie oracle {want} \
                 ({} account updates in this commit, {} accounts in the state)",
                updates.accounts.len(),
                model.accounts.len()
            );
        }
        history.push(version, got, model);
        if check_every > 0 && version % check_every == 0 {
            check_version(db, version, model, &gen_.addresses, LIGHT, ctx);
        }
    }
    ops
}

fn seeds(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("WAKE_ORACLE_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let n = std::env::var("WAKE_ORACLE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    (0..n).collect()
}

fn context(test: &str, seed: u64) -> String {
    format!(
        "[{test} seed {seed}; rerun with WAKE_ORACLE_SEED={seed} cargo test --release -p wake-tests --test oracle {test}]"
    )
}

// ---------------------------------------------------------------------------
// Tests.

/// Many seeds, default sizes: every commit's root equals alloy-trie's, every
/// retained version reads back exactly, older versions are gone.
#[test]
fn random_commits_match_alloy_oracle() {
    let start = Instant::now();
    let seeds = seeds(24);
    let mut total_ops = 0;
    let mut total_commits = 0;
    let mut kinds = OpKinds::default();
    for &seed in &seeds {
        let ctx = context("random_commits_match_alloy_oracle", seed);
        let pool = [64, 128, 256, 512][(seed % 4) as usize];
        let retain = if seed % 6 == 5 { 1 } else { 8 };
        let versions = 40;
        let w =
            Workload { pool, max_accounts_per_commit: 120, slot_pool: 16, hot: 2, hot_writes: 20 };
        let mut gen_ = Generator::new(seed, w);
        let dir = wake_tests::temp_db_dir(&format!("oracle-random-{seed}"));
        let db = ok(
            TrieDb::open(config(
                &dir.path().join("db"),
                retain,
                4 << 20,
                16 << 20,
                IoBackendChoice::Auto,
            )),
            &ctx,
            || "open".into(),
        );
        assert_eq!(db.latest(), None, "{ctx}: latest() of a new database");
        assert!(db.versions().is_empty(), "{ctx}: versions() of a new database");
        let mut model = Model::default();
        let mut history = History { retain, saved: VecDeque::new() };
        total_ops += run_commits(&db, &mut gen_, &mut model, &mut history, 1, versions, 10, &ctx);
        total_commits += versions;
        history.check_all(&db, &gen_.addresses, FULL, &ctx);
        check_codes(&db, versions, &model, &ctx);

        // A commit whose version does not increase is refused and changes nothing.
        let updates = gen_.updates(&model);
        for bad in [versions, versions - 1] {
            match db.commit(bad, &updates) {
                Err(Error::VersionNotIncreasing { new, latest }) => {
                    assert_eq!((new, latest), (bad, versions), "{ctx}: VersionNotIncreasing fields")
                }
                Err(e) => panic!("{ctx}: commit({bad}) after {versions}: wrong error {e}"),
                Ok(root) => {
                    panic!("{ctx}: commit({bad}) after {versions} succeeded with root {root}")
                }
            }
        }
        history.check_all(&db, &gen_.addresses, LIGHT, &ctx);
        // ... and the database goes on.
        model.apply(&updates);
        let want = model.root();
        let got =
            ok(db.commit(versions + 1, &updates), &ctx, || "commit after refused commits".into());
        assert_eq!(got, want, "{ctx}: root of version {} after refused commits", versions + 1);
        history.push(versions + 1, got, &model);
        history.check_all(&db, &gen_.addresses, LIGHT, &ctx);
        kinds.add(&gen_.kinds);
    }
    println!(
        "random_commits_match_alloy_oracle: {} seeds, {total_commits} commits, {total_ops} account+slot operations, {:.1?}\n  {kinds:?}",
        seeds.len(),
        start.elapsed()
    );
    kinds.assert_all_covered("[random_commits_match_alloy_oracle, all seeds]");
}

/// An empty commit, an empty state, deleting everything: the empty root.
#[test]
fn empty_states_give_the_empty_root() {
    let ctx = "[empty_states_give_the_empty_root]";
    let dir = wake_tests::temp_db_dir("oracle-empty");
    let db = ok(
        TrieDb::open(config(&dir.path().join("db"), 8, 1 << 20, 1 << 20, IoBackendChoice::Auto)),
        ctx,
        || "open".into(),
    );
    let root = ok(db.commit(0, &StateUpdates::default()), ctx, || "empty commit".into());
    assert_eq!(root, EMPTY_ROOT, "{ctx}: root of an empty first commit");
    let pool = pool_addresses(7, 20);
    let mut updates = StateUpdates::default();
    for (i, a) in pool.iter().enumerate() {
        let storage = (0..i as u64).map(|s| (slot_key(s), U256::from(s + 1))).collect();
        updates.accounts.insert(
            *a,
            AccountUpdate::Set {
                info: AccountInfo { nonce: i as u64, ..Default::default() },
                wipe_storage: false,
                storage,
            },
        );
    }
    let mut model = Model::default();
    model.apply(&updates);
    let root = ok(db.commit(1, &updates), ctx, || "commit 1".into());
    assert_eq!(root, model.root(), "{ctx}: root of version 1");
    // An empty commit keeps the root.
    let root2 = ok(db.commit(2, &StateUpdates::default()), ctx, || "commit 2".into());
    assert_eq!(root2, root, "{ctx}: an empty commit changes the root");
    check_version(&db, 2, &model, &pool, FULL, ctx);
    // Wiping all storage, then deleting everything.
    let mut wipe = StateUpdates::default();
    for a in &pool {
        let info = model.accounts[a].info;
        wipe.accounts
            .insert(*a, AccountUpdate::Set { info, wipe_storage: true, storage: BTreeMap::new() });
    }
    model.apply(&wipe);
    let root3 = ok(db.commit(3, &wipe), ctx, || "commit 3 (wipe all storage)".into());
    assert_eq!(root3, model.root(), "{ctx}: root after wiping all storage");
    check_version(&db, 3, &model, &pool, FULL, ctx);
    let mut delete = StateUpdates::default();
    for a in &pool {
        delete.accounts.insert(*a, AccountUpdate::Delete);
    }
    let root4 = ok(db.commit(4, &delete), ctx, || "commit 4 (delete all)".into());
    assert_eq!(root4, EMPTY_ROOT, "{ctx}: root after deleting every account");
    model.apply(&delete);
    check_version(&db, 4, &model, &pool, FULL, ctx);
    // Older versions still read back theirs.
    let mut m1 = Model::default();
    m1.apply(&updates);
    check_version(&db, 1, &m1, &pool, FULL, ctx);
}

/// Tiny chunks (1 MiB, the smallest triedb accepts) and a tiny cache (1 MiB):
/// nodes are read back from disk, chunks fill
/// up and compaction copies live nodes forward, and the roots stay right.
#[test]
fn tiny_chunks_and_cache_force_disk_reads_and_compaction() {
    let start = Instant::now();
    let mut total_ops = 0;
    let seeds = seeds(1);
    for &seed in &seeds {
        let ctx = context("tiny_chunks_and_cache_force_disk_reads_and_compaction", seed);
        let retain = 8;
        let w = Workload {
            pool: 2000,
            max_accounts_per_commit: 300,
            slot_pool: 32,
            hot: 8,
            hot_writes: 40,
        };
        let mut gen_ = Generator::new(1000 + seed, w);
        let dir = wake_tests::temp_db_dir(&format!("oracle-tiny-{seed}"));
        let db = ok(
            TrieDb::open(config(
                &dir.path().join("db"),
                retain,
                1 << 20, // the smallest chunk triedb accepts (1 MiB)
                1 << 20,
                IoBackendChoice::Auto,
            )),
            &ctx,
            || "open".into(),
        );
        let mut model = Model::default();
        let mut history = History { retain, saved: VecDeque::new() };
        let versions = 150;
        let t = Instant::now();
        total_ops += run_commits(&db, &mut gen_, &mut model, &mut history, 1, versions, 25, &ctx);
        let commit_time = t.elapsed();
        let t = Instant::now();
        history.check_all(&db, &gen_.addresses, LIGHT, &ctx);
        // The newest version, fully.
        check_version(&db, versions, &model, &gen_.addresses, FULL, &ctx);
        check_codes(&db, versions, &model, &ctx);
        gen_.kinds.assert_all_covered(&ctx);
        let stats = db.stats();
        println!("{ctx}: {:?}", gen_.kinds);
        println!(
            "{ctx}: {versions} commits (with oracle) in {commit_time:.1?}, reads in {:.1?}; stats {stats:?}",
            t.elapsed()
        );
        assert!(
            stats.device_reads > 0,
            "{ctx}: a 1 MiB cache never read from the device: {stats:?}"
        );
        assert!(stats.cache_misses > 0, "{ctx}: a 1 MiB cache never missed: {stats:?}");
        assert!(
            stats.nodes_compacted > 0,
            "{ctx}: {versions} commits into 1 MiB chunks with 8 versions retained never compacted: {stats:?}"
        );
        assert!(
            stats.live_bytes > 0 && stats.live_bytes <= stats.file_bytes,
            "{ctx}: live/file bytes: {stats:?}"
        );
    }
    println!(
        "tiny_chunks_and_cache_force_disk_reads_and_compaction: {} seeds, {total_ops} operations, {:.1?}",
        seeds.len(),
        start.elapsed()
    );
}

/// Drop and reopen: the same versions, roots and values; then more commits.
#[test]
fn reopen_preserves_retained_versions() {
    let start = Instant::now();
    let seeds = seeds(3);
    for &seed in &seeds {
        let ctx = context("reopen_preserves_retained_versions", seed);
        let retain = 8;
        let w = Workload {
            pool: 500,
            max_accounts_per_commit: 150,
            slot_pool: 16,
            hot: 3,
            hot_writes: 30,
        };
        let mut gen_ = Generator::new(2000 + seed, w);
        let dir = wake_tests::temp_db_dir(&format!("oracle-reopen-{seed}"));
        let path = dir.path().join("db");
        let cfg = config(&path, retain, 1 << 20, 4 << 20, IoBackendChoice::Auto);
        let mut model = Model::default();
        let mut history = History { retain, saved: VecDeque::new() };
        let mut version = 0;
        for round in 0..3 {
            let db = ok(TrieDb::open(cfg.clone()), &ctx, || format!("open (round {round})"));
            if round > 0 {
                // What the previous handle committed is all there after reopening.
                history.check_all(
                    &db,
                    &gen_.addresses,
                    FULL,
                    &format!("{ctx} after reopen {round}"),
                );
                check_codes(&db, version, &model, &ctx);
            }
            run_commits(
                &db,
                &mut gen_,
                &mut model,
                &mut history,
                version + 1,
                version + 20,
                0,
                &ctx,
            );
            version += 20;
            history.check_all(&db, &gen_.addresses, LIGHT, &format!("{ctx} round {round}"));
        }
        // Reopened with another chunk size (used only at creation) and a backend choice.
        let mut cfg2 = cfg.clone();
        cfg2.chunk_bytes = 16 << 20;
        cfg2.io_backend = IoBackendChoice::Pread;
        let db = ok(TrieDb::open(cfg2), &ctx, || "final reopen".into());
        history.check_all(&db, &gen_.addresses, FULL, &format!("{ctx} final reopen"));
    }
    println!("reopen_preserves_retained_versions: {} seeds, {:.1?}", seeds.len(), start.elapsed());
}

/// The batch reads, on both read backends, with small and large depths,
/// duplicate and absent keys, an empty batch, and readers on other threads
/// while the writer commits.
#[test]
fn batch_reads_on_both_backends() {
    let start = Instant::now();
    for (choice, backend) in
        [(IoBackendChoice::IoUring, IoBackend::IoUring), (IoBackendChoice::Pread, IoBackend::Pread)]
    {
        let ctx = format!("[batch_reads_on_both_backends {backend:?}]");
        let ctx = ctx.as_str();
        let retain = 8;
        let w = Workload {
            pool: 1500,
            max_accounts_per_commit: 400,
            slot_pool: 24,
            hot: 4,
            hot_writes: 50,
        };
        let mut gen_ = Generator::new(3000, w);
        let dir = wake_tests::temp_db_dir(&format!("oracle-batch-{backend:?}"));
        let mut cfg = config(&dir.path().join("db"), retain, 1 << 20, 1 << 20, choice);
        cfg.io_depth = 8;
        let db = ok(TrieDb::open(cfg), ctx, || "open".into());
        assert_eq!(db.io_backend(), backend, "{ctx}: io_backend()");
        let mut model = Model::default();
        let mut history = History { retain, saved: VecDeque::new() };
        run_commits(&db, &mut gen_, &mut model, &mut history, 1, 20, 0, ctx);
        let latest = 20;
        history.check_all(&db, &gen_.addresses, LIGHT, ctx);
        check_version(&db, latest, &model, &gen_.addresses, FULL, ctx);

        let snap = ok(db.snapshot(latest), ctx, || "snapshot".into());
        assert_eq!(
            ok(snap.accounts(&[]), ctx, || "accounts([])".into()),
            Vec::<Option<Account>>::new(),
            "{ctx}: accounts([])"
        );
        assert_eq!(
            ok(snap.storage_batch(&[]), ctx, || "storage_batch([])".into()),
            Vec::<U256>::new(),
            "{ctx}: storage_batch([])"
        );

        // Duplicates, reversed order, depths 1..=more than the batch.
        let mut addresses: Vec<Address> = gen_.addresses.iter().rev().copied().collect();
        addresses.extend_from_slice(&gen_.addresses[..100]);
        addresses.extend_from_slice(&gen_.addresses[..100]);
        let want: Vec<Option<Account>> = addresses.iter().map(|a| model.account(a)).collect();
        for depth in [1, 2, 8, 32, 10_000] {
            let got = ok(snap.accounts_with_depth(&addresses, depth), ctx, || {
                format!("accounts_with_depth({depth})")
            });
            assert_eq!(got.len(), want.len(), "{ctx}: accounts_with_depth({depth}) length");
            for i in 0..want.len() {
                assert_eq!(
                    got[i], want[i],
                    "{ctx}: accounts_with_depth({depth})[{i}] = {}",
                    addresses[i]
                );
            }
        }
        let mut keys: Vec<(Address, B256)> = Vec::new();
        for (i, a) in gen_.addresses.iter().enumerate() {
            keys.push((*a, slot_key(i as u64 % w.slot_pool)));
            if let Some(acc) = model.accounts.get(a) {
                keys.extend(acc.storage.keys().rev().map(|s| (*a, *s)));
            }
        }
        let dup: Vec<_> = keys[..200].to_vec();
        keys.extend(dup);
        let want_slots: Vec<U256> = keys.iter().map(|(a, s)| model.storage(a, s)).collect();
        let got = ok(snap.storage_batch(&keys), ctx, || "storage_batch".into());
        assert_eq!(got.len(), want_slots.len(), "{ctx}: storage_batch length");
        for i in 0..keys.len() {
            assert_eq!(
                got[i], want_slots[i],
                "{ctx}: storage_batch[{i}] = storage({}, {})",
                keys[i].0, keys[i].1
            );
        }

        // Readers on two threads over the newest and the oldest retained
        // versions while this thread commits 3 more (both stay retained).
        let oldest = history.saved.front().unwrap().0 + 3;
        let old_model = history.saved.iter().find(|s| s.0 == oldest).unwrap().2.clone();
        let old_model_rooted = old_model.clone();
        old_model_rooted.root();
        let latest_model = model.clone();
        std::thread::scope(|s| {
            for (version, m) in [(latest, &latest_model), (oldest, &old_model_rooted)] {
                let db = db.clone();
                let addresses = gen_.addresses.clone();
                s.spawn(move || {
                    let snap = ok(db.snapshot(version), ctx, || format!("snapshot({version}) on a reader thread"));
                    for round in 0..5 {
                        let got = ok(snap.accounts(&addresses), ctx, || "accounts on a reader thread".into());
                        for (i, a) in addresses.iter().enumerate() {
                            assert_eq!(got[i], m.account(a), "{ctx}: reader thread, version {version}, round {round}, account {a}");
                        }
                    }
                });
            }
            run_commits(&db, &mut gen_, &mut model, &mut history, latest + 1, latest + 3, 0, ctx);
        });
        history.check_all(&db, &gen_.addresses, LIGHT, ctx);
        println!("{ctx}: stats {:?}", db.stats());
    }
    println!("batch_reads_on_both_backends: {:.1?}", start.elapsed());
}
