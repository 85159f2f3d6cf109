//! The short fault campaign of `make test`: 20 trials from a fixed seed,
//! each a fresh CoRAL pair with one random fault, every trial decided by the
//! checker (docs/CLI.md, `coral-exp run fault-campaign`). Prints its time.

#[path = "netns_util/mod.rs"]
mod util;

use std::time::Instant;
use util::*;

/// Trials of the short campaign, and its first seed.
const TRIALS: u32 = 20;
const SEED: u64 = 1;

#[test]
fn netns_short_fault_campaign_meets_the_standard() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = test_prefix();
    let t0 = Instant::now();
    let o = coral(&[
        "run",
        "fault-campaign",
        "--trials",
        &TRIALS.to_string(),
        "--seed",
        &SEED.to_string(),
        "--results",
        dir.path().to_str().unwrap(),
        "--prefix",
        &prefix,
    ]);
    let secs = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&o.stdout);
    println!("{stdout}");
    println!("short campaign: {TRIALS} trials in {secs:.1} s");
    assert!(
        namespaces_with(&prefix).is_empty(),
        "a trial left namespaces"
    );
    let csv = std::fs::read_to_string(dir.path().join("fault-campaign/trials.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let head = rows.headers().unwrap().clone();
    let col = |n: &str| head.iter().position(|h| h == n).unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), TRIALS as usize, "{csv}");
    let seeds: Vec<u64> = rows
        .iter()
        .map(|r| r[col("seed")].parse().unwrap())
        .collect();
    assert_eq!(seeds, (SEED..SEED + TRIALS as u64).collect::<Vec<_>>());
    for r in &rows {
        // On netns the switch was captured and checked for a second voice.
        assert_ne!(&r[col("split_brain")], "", "no capture: {r:?}");
        assert!(r[col("ok")].parse::<u64>().unwrap() > 0, "{r:?}");
        // Every node logged the requests it executed: duplicates are known.
        assert!(
            r[col("duplicate_executions")].parse::<u64>().is_ok(),
            "no duplicate count: {r:?}"
        );
    }
    let failed: Vec<&csv::StringRecord> = rows
        .iter()
        .filter(|r| &r[col("verdict")] != "pass")
        .collect();
    assert!(
        failed.is_empty() && o.status.success(),
        "{} of {TRIALS} trials missed the standard (exit {:?}):\n{stdout}\n{}",
        failed.len(),
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("| link-cut |") || stdout.contains("| kill |"),
        "{stdout}"
    );
}
