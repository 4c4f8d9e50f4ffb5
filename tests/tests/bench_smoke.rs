//! `kith-bench all --quick` as a smoke test: every scenario runs with small counts and nothing
//! sent is lost, duplicated or undecryptable. It asserts no speed: figures from a debug build on
//! a shared CI machine mean nothing (BENCHMARKS.md has the real ones).

use std::collections::BTreeSet;
use std::process::Command;

/// Every scenario `all` runs (the figures' `scenario` names).
const SCENARIOS: [&str; 8] = [
    "crypto",
    "store",
    "bare",
    "relay",
    "relay-postgres",
    "idle",
    "catchup",
    "group",
];

#[test]
fn quick_run_of_every_scenario_loses_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let json = dir.path().join("bench.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_kith-bench"))
        .args(["all", "--quick", "--json"])
        .arg(&json)
        .output()
        .expect("run kith-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kith-bench all --quick failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    let text = std::fs::read_to_string(&json).expect("the JSON lines");
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        let scenario = row["scenario"]
            .as_str()
            .expect("a scenario name")
            .to_owned();
        if let Some(sent) = row.get("sent").and_then(serde_json::Value::as_u64) {
            assert_eq!(row["lost"].as_u64(), Some(0), "{line}");
            assert_eq!(row["duplicated"].as_u64(), Some(0), "{line}");
            assert_eq!(row["delivered"].as_u64(), Some(sent), "{line}");
            assert!(sent > 0, "{line}");
        }
        seen.insert(scenario);
    }
    let postgres = std::env::var_os("KITH_TEST_DATABASE_URL").is_some()
        || std::env::var_os("KITH_BENCH_DATABASE_URL").is_some();
    for scenario in SCENARIOS {
        if scenario == "relay-postgres" && !postgres {
            println!("relay-postgres skipped: KITH_TEST_DATABASE_URL is not set");
            continue;
        }
        assert!(
            seen.contains(scenario),
            "no figures from {scenario}:\n{stdout}"
        );
    }
}
