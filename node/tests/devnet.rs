//! `wake devnet` end to end: validator processes with real execution,
//! transactions signed by the load generator and sent as JSON-RPC batches,
//! every one of them included and executed, and the JSON summary the issue
//! asks for, with the receipts of sampled transactions read back over
//! JSON-RPC: every one succeeded (an ERC-20 transfer that reverted would
//! still be "included").

use std::process::Command;

const WAKE: &str = env!("CARGO_BIN_EXE_wake");

fn devnet(args: &[&str]) -> serde_json::Value {
    let output = Command::new(WAKE)
        .arg("devnet")
        .args(args)
        .arg("--json")
        .output()
        .expect("run wake devnet");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "wake devnet failed:\n{stderr}");
    let line = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(line.trim())
        .unwrap_or_else(|e| panic!("summary is not JSON ({e}): {line:?}\n{stderr}"))
}

#[test]
fn one_validator_includes_every_transfer() {
    let summary =
        devnet(&["--validators", "1", "--duration", "4", "--tps", "150", "--accounts", "300"]);
    for field in [
        "validators",
        "duration_s",
        "tps_sustained",
        "finality_ms_p50",
        "finality_ms_p99",
        "execution_lag_blocks_max",
        "blocks_finalized",
        "execution_mode",
    ] {
        assert!(summary.get(field).is_some(), "summary lacks {field}: {summary}");
    }
    assert_eq!(summary["txs_sent"], 600);
    assert_eq!(summary["send_errors"], 0, "{summary}");
    assert_eq!(summary["txs_included"], 600, "{summary}");
    assert!(summary["blocks_finalized"].as_u64().unwrap() > 0);
    assert_eq!(summary["execution_mode"], "async");
    assert_eq!(summary["sampled_receipts_failed"], 0, "{summary}");
    assert!(summary["sampled_receipts_ok"].as_u64().unwrap() >= 30, "{summary}");
}

/// Four validators and a full node: every transaction included, and the
/// full node (which holds no key, follows the chain through commit proofs
/// and executes it itself) ends on validator 0's block hash and state root.
#[test]
fn four_validators_include_every_erc20_and_transfer() {
    let summary = devnet(&[
        "--validators",
        "4",
        "--full-nodes",
        "1",
        "--duration",
        "4",
        "--tps",
        "100",
        "--accounts",
        "200",
        "--workload",
        "mix",
    ]);
    assert_eq!(summary["validators"], 4);
    assert_eq!(summary["send_errors"], 0, "{summary}");
    assert_eq!(summary["txs_included"], 400, "{summary}");
    assert_eq!(summary["sampled_receipts_failed"], 0, "{summary}");
    assert!(summary["sampled_receipts_ok"].as_u64().unwrap() >= 20, "{summary}");
    assert_eq!(summary["full_nodes"], 1, "{summary}");
    assert_eq!(summary["full_nodes_agree"], true, "{summary}");
    assert!(summary["full_nodes_checked_height"].as_u64().unwrap() > 0, "{summary}");
}
