//! ethereum/tests `TrieTests/` (v14.1): all 6 files, 26 cases, run through
//! triedb's raw mode (`TrieDb::commit_raw` / `Snapshot::get_raw`).
//!
//! * `in` is a list of `[key, value]` (applied in order) or a map; strings
//!   starting with `0x` are hex, others raw ASCII; `null` deletes.
//! * Files named `*secureTrie*` / `*securetrie*` hash every key with keccak256.
//! * `trietestnextprev.json` has no `root` and a list of keys only: each key is
//!   inserted with itself as the value; its root is checked against the
//!   reference trie below (which itself is checked against the 25 fixture
//!   roots), and its `tests` entries (next/prev queries) are checked against
//!   the key set and with `get_raw` on the queried keys.
//!
//! A small, independent reference Merkle Patricia Trie (values at branch nodes
//! included, which alloy-trie's `HashBuilder` cannot do) validates the parser
//! against the fixture roots and gives the expected root after every single
//! operation of the list-ordered cases.

use alloy_primitives::{B256, keccak256};
use std::collections::BTreeMap;
use std::path::Path;
use wake_triedb::{Config, TrieDb};

const EXPECTED_FILES: usize = 6;
const EXPECTED_CASES: usize = 26;
const EXPECTED_CASES_WITH_ROOT: usize = 25;

type Key = Vec<u8>;
type Value = Vec<u8>;

#[derive(Debug)]
struct Case {
    file: String,
    name: String,
    /// Operations in order, keys already hashed for secure tries.
    ops: Vec<(Key, Option<Value>)>,
    /// `in` was a JSON list (order matters) rather than a map.
    ordered: bool,
    root: Option<B256>,
    /// next/prev queries of `trietestnextprev.json`: (key, prev, next).
    next_prev: Vec<(Key, Key, Key)>,
}

impl Case {
    fn id(&self) -> String {
        format!("{}::{}", self.file, self.name)
    }
}

fn decode_str(s: &str) -> Vec<u8> {
    match s.strip_prefix("0x") {
        Some(hex_digits) => {
            hex::decode(hex_digits).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
        }
        None => s.as_bytes().to_vec(),
    }
}

fn load_cases() -> Vec<Case> {
    let dir = wake_tests::ethereum_tests_dir().join("TrieTests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), EXPECTED_FILES, "TrieTests files in {}: {files:?}", dir.display());
    let mut cases = Vec::new();
    for path in &files {
        cases.extend(load_file(path));
    }
    cases
}

fn load_file(path: &Path) -> Vec<Case> {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let secure = file.to_ascii_lowercase().contains("securetrie");
    let text = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut out = Vec::new();
    for (name, case) in json.as_object().unwrap_or_else(|| panic!("{file}: not an object")) {
        let id = format!("{file}::{name}");
        let key_of = |s: &str| {
            let raw = decode_str(s);
            if secure { keccak256(&raw).to_vec() } else { raw }
        };
        let value_of = |v: &serde_json::Value| -> Option<Vec<u8>> {
            match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(decode_str(s)),
                other => panic!("{id}: bad value {other}"),
            }
        };
        let input = case.get("in").unwrap_or_else(|| panic!("{id}: no `in`"));
        let (ops, ordered) = match input {
            serde_json::Value::Array(items) => {
                let ops = items
                    .iter()
                    .map(|item| match item {
                        serde_json::Value::Array(pair) if pair.len() == 2 => (
                            key_of(pair[0].as_str().unwrap_or_else(|| panic!("{id}: bad key"))),
                            value_of(&pair[1]),
                        ),
                        // trietestnextprev.json: a bare key, inserted with itself as value.
                        serde_json::Value::String(key) => {
                            let k = key_of(key);
                            (k.clone(), Some(decode_str(key)))
                        }
                        other => panic!("{id}: bad entry {other}"),
                    })
                    .collect();
                (ops, true)
            }
            serde_json::Value::Object(map) => {
                (map.iter().map(|(k, v)| (key_of(k), value_of(v))).collect(), false)
            }
            other => panic!("{id}: bad `in` {other}"),
        };
        let root = case.get("root").map(|r| {
            r.as_str()
                .unwrap_or_else(|| panic!("{id}: bad root"))
                .parse::<B256>()
                .unwrap_or_else(|e| panic!("{id}: {e}"))
        });
        let next_prev = case
            .get("tests")
            .map(|tests| {
                tests
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        let t = t.as_array().unwrap();
                        let s = |i: usize| key_of(t[i].as_str().unwrap());
                        // Empty strings mean "none": never hash them.
                        let raw = |i: usize| {
                            if t[i].as_str().unwrap().is_empty() { Vec::new() } else { s(i) }
                        };
                        (s(0), raw(1), raw(2))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Case { file: file.clone(), name: name.clone(), ops, ordered, root, next_prev });
    }
    out
}

/// Applies operations to a model map (a `None` value or an empty value deletes).
fn apply(model: &mut BTreeMap<Key, Value>, key: &[u8], value: &Option<Value>) {
    match value {
        Some(v) if !v.is_empty() => {
            model.insert(key.to_vec(), v.clone());
        }
        _ => {
            model.remove(key);
        }
    }
}

fn final_model(case: &Case) -> BTreeMap<Key, Value> {
    let mut model = BTreeMap::new();
    for (k, v) in &case.ops {
        apply(&mut model, k, v);
    }
    model
}

// ---------------------------------------------------------------------------
// Reference MPT (recursive, from a sorted map). Independent of triedb.

fn rlp_header(out: &mut Vec<u8>, len: usize, offset: u8) {
    if len < 56 {
        out.push(offset + len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(offset + 55 + (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn rlp_str(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 9);
    if bytes.len() == 1 && bytes[0] < 0x80 {
        out.push(bytes[0]);
    } else {
        rlp_header(&mut out, bytes.len(), 0x80);
        out.extend_from_slice(bytes);
    }
    out
}

fn rlp_list(items: &[Vec<u8>]) -> Vec<u8> {
    let len: usize = items.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(len + 9);
    rlp_header(&mut out, len, 0xc0);
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

fn hex_prefix(nibbles: &[u8], leaf: bool) -> Vec<u8> {
    let flag = if leaf { 2 } else { 0 };
    let mut out = Vec::with_capacity(nibbles.len() / 2 + 1);
    let rest = if nibbles.len() % 2 == 1 {
        out.push(((flag + 1) << 4) | nibbles[0]);
        &nibbles[1..]
    } else {
        out.push(flag << 4);
        nibbles
    };
    for pair in rest.chunks(2) {
        out.push((pair[0] << 4) | pair[1]);
    }
    out
}

/// How a node is referenced from its parent: inline below 32 bytes, else by hash.
fn node_ref(encoded: Vec<u8>) -> Vec<u8> {
    if encoded.len() < 32 { encoded } else { rlp_str(keccak256(&encoded).as_slice()) }
}

/// Encodes the node holding `items` (sorted, unique, all sharing `depth` nibbles).
fn encode_node(items: &[(Vec<u8>, &[u8])], depth: usize) -> Vec<u8> {
    if items.len() == 1 {
        let (path, value) = &items[0];
        return rlp_list(&[rlp_str(&hex_prefix(&path[depth..], true)), rlp_str(value)]);
    }
    let first = &items[0].0;
    let last = &items[items.len() - 1].0;
    let common = first[depth..].iter().zip(&last[depth..]).take_while(|(a, b)| a == b).count();
    if common > 0 {
        let child = encode_node(items, depth + common);
        return rlp_list(&[
            rlp_str(&hex_prefix(&first[depth..depth + common], false)),
            node_ref(child),
        ]);
    }
    let mut fields = Vec::with_capacity(17);
    let mut value = rlp_str(&[]);
    let mut rest = items;
    if rest[0].0.len() == depth {
        value = rlp_str(rest[0].1);
        rest = &rest[1..];
    }
    for nibble in 0..16u8 {
        let n = rest.iter().take_while(|(path, _)| path[depth] == nibble).count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        fields.push(if group.is_empty() {
            rlp_str(&[])
        } else {
            node_ref(encode_node(group, depth + 1))
        });
    }
    assert!(rest.is_empty());
    fields.push(value);
    rlp_list(&fields)
}

fn reference_root(model: &BTreeMap<Key, Value>) -> B256 {
    if model.is_empty() {
        return alloy_trie::EMPTY_ROOT_HASH;
    }
    let items: Vec<(Vec<u8>, &[u8])> = model
        .iter()
        .map(|(k, v)| (k.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect(), v.as_slice()))
        .collect();
    keccak256(encode_node(&items, 0))
}

/// next/prev of `key` within the sorted key set (empty when none).
fn next_prev_of(model: &BTreeMap<Key, Value>, key: &[u8]) -> (Key, Key) {
    use std::ops::Bound::{Excluded, Unbounded};
    let prev =
        model.range::<[u8], _>((Unbounded, Excluded(key))).next_back().map(|(k, _)| k.clone());
    let next = model.range::<[u8], _>((Excluded(key), Unbounded)).next().map(|(k, _)| k.clone());
    (prev.unwrap_or_default(), next.unwrap_or_default())
}

// ---------------------------------------------------------------------------

/// Checks the parser and the reference trie without triedb: every fixture root
/// must come out of the reference trie, and the next/prev queries out of the
/// key set.
#[test]
fn trie_vectors_parse_and_match_reference_trie() {
    let cases = load_cases();
    assert_eq!(cases.len(), EXPECTED_CASES, "TrieTests case count");
    let mut roots_checked = 0;
    let mut next_prev_checked = 0;
    for case in &cases {
        let model = final_model(case);
        if let Some(root) = case.root {
            assert_eq!(reference_root(&model), root, "{}: reference trie root", case.id());
            roots_checked += 1;
        }
        for (key, prev, next) in &case.next_prev {
            assert_eq!(
                next_prev_of(&model, key),
                (prev.clone(), next.clone()),
                "{}: next/prev of {:?}",
                case.id(),
                String::from_utf8_lossy(key)
            );
            next_prev_checked += 1;
        }
    }
    assert_eq!(roots_checked, EXPECTED_CASES_WITH_ROOT);
    assert!(next_prev_checked > 0);
    println!(
        "TrieTests parser: {} cases, {roots_checked} fixture roots reproduced by the reference trie, \
         {next_prev_checked} next/prev queries",
        cases.len()
    );
}

/// The reference trie agrees with alloy-trie's HashBuilder where both apply
/// (fixed-length keys), so it is a trustworthy oracle for the per-op roots.
#[test]
fn reference_trie_matches_alloy_hash_builder() {
    for n in [1usize, 2, 3, 17, 100, 1000] {
        let model: BTreeMap<Key, Value> = (0..n as u64)
            .map(|i| {
                let key = keccak256(i.to_be_bytes()).to_vec();
                // Values of 1..=40 bytes: small leaves get inlined in their parent.
                let value = vec![(i % 251) as u8 + 1; (i as usize % 40) + 1];
                (key, value)
            })
            .collect();
        let mut hb = alloy_trie::HashBuilder::default();
        for (k, v) in &model {
            hb.add_leaf(alloy_trie::Nibbles::unpack(k), v);
        }
        assert_eq!(reference_root(&model), hb.root(), "{n} keys");
    }
}

fn open_db(dir: &Path, case: &Case, variant: &str) -> TrieDb {
    let mut config = Config::new(dir.join(format!("{variant}.db")));
    config.cache_bytes = 4 << 20;
    config.chunk_bytes = 1 << 20;
    config.retain_versions = 256;
    TrieDb::open(config).unwrap_or_else(|e| panic!("{}: open ({variant}): {e}", case.id()))
}

/// Checks `get_raw` at `version` for every key the case ever touched (present
/// ones give their value, deleted ones `None`), plus a few absent neighbours.
fn check_reads(
    db: &TrieDb,
    case: &Case,
    version: u64,
    model: &BTreeMap<Key, Value>,
    what: &str,
) -> Result<(), String> {
    let snap = db
        .snapshot(version)
        .map_err(|e| format!("{}: {what}: snapshot({version}): {e}", case.id()))?;
    let mut keys: Vec<Key> = case.ops.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(case.next_prev.iter().map(|(k, _, _)| k.clone()));
    for (k, _) in case.ops.iter().take(4) {
        let mut longer = k.clone();
        longer.push(0x7f);
        keys.push(longer);
        keys.push(k[..k.len() / 2].to_vec());
    }
    keys.sort();
    keys.dedup();
    for key in &keys {
        let got = snap
            .get_raw(key)
            .map_err(|e| format!("{}: {what}: get_raw({}): {e}", case.id(), hex::encode(key)))?;
        let want = model.get(key).cloned();
        if got != want {
            return Err(format!(
                "{}: {what}: version {version}: get_raw(0x{}) = {:?}, expected {:?}",
                case.id(),
                hex::encode(key),
                got.map(hex::encode),
                want.map(hex::encode)
            ));
        }
    }
    Ok(())
}

/// Runs one case through triedb in two ways and returns the first mismatch.
fn run_case(case: &Case) -> Result<(), String> {
    let dir = wake_tests::temp_db_dir(&format!("trie-vectors-{}", case.name));
    let expected_final = final_model(case);
    let expected_root = case.root.unwrap_or_else(|| reference_root(&expected_final));

    // 1. One commit per operation (versions 1, 2, …) for lists, so the order
    //    of the fixture is followed exactly; one commit for maps.
    let db = open_db(dir.path(), case, "ordered");
    let batches: Vec<Vec<(Key, Option<Value>)>> = if case.ordered {
        case.ops.iter().map(|op| vec![op.clone()]).collect()
    } else {
        vec![case.ops.clone()]
    };
    let mut model = BTreeMap::new();
    let mut history = Vec::new();
    for (i, batch) in batches.iter().enumerate() {
        let version = i as u64 + 1;
        for (k, v) in batch {
            apply(&mut model, k, v);
        }
        let got = db
            .commit_raw(version, batch)
            .map_err(|e| format!("{}: commit_raw version {version}: {e}", case.id()))?;
        let want = reference_root(&model);
        if got != want {
            return Err(format!(
                "{}: root after op {version}/{} (key 0x{}): got {got}, expected {want}",
                case.id(),
                batches.len(),
                hex::encode(&batch[0].0)
            ));
        }
        history.push((version, want, model.clone()));
    }
    if history.last().unwrap().1 != expected_root {
        return Err(format!(
            "{}: final root: got {}, expected {expected_root}",
            case.id(),
            history.last().unwrap().1
        ));
    }
    // Every version (all retained: at most 50 < 256) reads back its own state.
    for (version, root, model) in &history {
        let snap = db
            .snapshot(*version)
            .map_err(|e| format!("{}: snapshot({version}): {e}", case.id()))?;
        if snap.state_root() != *root {
            return Err(format!(
                "{}: snapshot({version}).state_root() = {}, expected {root}",
                case.id(),
                snap.state_root()
            ));
        }
        check_reads(&db, case, *version, model, "per-op commits")?;
    }
    drop(db);

    // 2. The same case as one commit of the final value of every key (later
    //    entries override earlier ones; keys whose last op deletes them are
    //    passed as deletions of absent keys).
    let db = open_db(dir.path(), case, "batched");
    let mut last: BTreeMap<Key, Option<Value>> = BTreeMap::new();
    for (k, v) in &case.ops {
        last.insert(k.clone(), v.clone());
    }
    let batch: Vec<(Key, Option<Value>)> = last.into_iter().collect();
    let got =
        db.commit_raw(1, &batch).map_err(|e| format!("{}: single commit_raw: {e}", case.id()))?;
    if got != expected_root {
        return Err(format!(
            "{}: root of the single-commit variant: got {got}, expected {expected_root}",
            case.id()
        ));
    }
    check_reads(&db, case, 1, &expected_final, "single commit")?;
    Ok(())
}

#[test]
fn trie_vectors_through_triedb() {
    let cases = load_cases();
    assert_eq!(cases.len(), EXPECTED_CASES, "TrieTests case count");
    let mut failures = Vec::new();
    let mut with_fixture_root = 0;
    for case in &cases {
        if case.root.is_some() {
            with_fixture_root += 1;
        }
        if let Err(e) = run_case(case) {
            failures.push(e);
        }
    }
    println!(
        "TrieTests through triedb: {} cases checked ({with_fixture_root} against the fixture root, \
         {} against the reference trie), {} failed",
        cases.len(),
        cases.len() - with_fixture_root,
        failures.len()
    );
    assert_eq!(with_fixture_root, EXPECTED_CASES_WITH_ROOT);
    assert!(
        failures.is_empty(),
        "{} of {} TrieTests cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
