//! The report's Reliability section: the fault campaign's table by fault
//! kind (from `RESULTS/fault-campaign/trials.csv`, docs/CLI.md), the
//! hostile-input table, and the fuzzing table ([`super::fuzzing`]) as its
//! subsections. Nothing when none of them has data.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The columns of a `trials.csv` row the report uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TrialRow {
    /// The trial's seed.
    pub seed: u64,
    /// Fault kind.
    pub kind: String,
    /// Host the fault hit.
    pub target: String,
    /// `pass`, `FAIL` or `error`.
    pub verdict: String,
    /// Requests sent.
    pub requests: u64,
    /// Lost requests.
    pub lost: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Reconnects after an error.
    pub reconnects: u64,
    /// Corrupted replies.
    pub digest_mismatches: u64,
    /// Requests executed more than once (None: not logged).
    pub duplicate_executions: Option<u64>,
    /// Split-brain findings (None: no capture).
    pub split_brain: Option<u64>,
    /// Longest gap between two verified replies of one client, ms.
    pub stall_ms: f64,
    /// Why it failed.
    pub detail: String,
}

/// Reads `trials.csv`; a malformed row is an error naming it.
pub fn read(path: &Path) -> anyhow::Result<Vec<TrialRow>> {
    use anyhow::Context;
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in r.deserialize::<TrialRow>().enumerate() {
        out.push(row.with_context(|| format!("{}: row {}", path.display(), i + 2))?);
    }
    Ok(out)
}

/// Fault kinds in table order (the campaign's).
const KINDS: [&str; 5] = [
    "link-cut",
    "kill",
    "stop-cont",
    "partition",
    "isolate-witness",
];

/// Appends the Reliability section (`root`: how the report names the
/// results directory).
pub fn section(results: &Path, root: &str, md: &mut String) {
    let mut fuzz = String::new();
    super::fuzzing::section(results, root, &mut fuzz);
    let trials = results.join("fault-campaign").join("trials.csv");
    let attacks = results.join(crate::hostile::NAME).join("attacks.csv");
    if fuzz.is_empty() && !trials.exists() && !attacks.exists() {
        return;
    }
    let _ = writeln!(md, "## Reliability\n");
    if trials.exists() {
        campaign(&trials, root, md);
    }
    hostile(results, root, md);
    // The fuzzing table, one level down.
    md.push_str(&fuzz.replacen("## Fuzzing", "### Fuzzing", 1));
}

/// The hostile-input table, from `RESULTS/hostile-input/attacks.csv`
/// (`coral-exp run hostile-input`, docs/CLI.md).
fn hostile(results: &Path, root: &str, md: &mut String) {
    let _ = writeln!(md, "### Hostile input\n");
    let src = format!("{root}/{}/attacks.csv", crate::hostile::NAME);
    let path = results.join(crate::hostile::NAME).join("attacks.csv");
    if !path.exists() {
        let _ = writeln!(
            md,
            "Not part of this run (`coral-exp run hostile-input` writes `{src}`).\n"
        );
        return;
    }
    let rows = match crate::hostile::read(&path) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(md, "`{src}` could not be read: {e:#}\n");
            return;
        }
    };
    let passed = rows.iter().filter(|r| r.verdict == "pass").count();
    let sum = |f: fn(&crate::hostile::AttackRow) -> u64| rows.iter().map(f).sum::<u64>();
    let _ = writeln!(
        md,
        "{} attack(s) from a host on the server LAN at a CoRAL pair with its witness, one \
         after the other, while 8 keep-alive clients fetched verified replies (`coral-exp run \
         hostile-input`); each row is judged on its own window (the attack and {:.1} s \
         after it): {passed} of {} met the standard (the clients saw no error, lost request, \
         reconnect or corrupted reply; no node detected a failure or moved an address; the \
         node counter grew by at least what the attack sent where one counts it). Over all \
         windows: {} request(s), {} client error(s), {} lost, {} detection(s), {} address \
         move(s).\n",
        rows.len(),
        crate::hostile::SETTLE_S,
        rows.len(),
        sum(|r| r.requests),
        sum(|r| r.errors),
        sum(|r| r.lost),
        sum(|r| r.detections),
        sum(|r| r.address_moves),
    );
    let _ = writeln!(
        md,
        "| attack | target | sent | attacker saw | counted by | counted | client requests | client errors | lost | detections | address moves | verdict |"
    );
    let _ = writeln!(
        md,
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.attack,
            r.target,
            r.sent,
            r.observed,
            r.counter,
            r.counted.map_or("-".into(), |c| c.to_string()),
            r.requests,
            r.errors,
            r.lost,
            r.detections,
            r.address_moves,
            r.verdict
        );
    }
    for r in rows.iter().filter(|r| r.verdict != "pass") {
        let _ = writeln!(md, "\n- {} on {}: {}", r.attack, r.target, r.detail);
    }
    let _ = writeln!(md, "\nSource: `{src}`.\n");
}

fn campaign(path: &Path, root: &str, md: &mut String) {
    let _ = writeln!(md, "### Fault campaign\n");
    let rows = match read(path) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(
                md,
                "`{root}/fault-campaign/trials.csv` could not be read: {e:#}\n"
            );
            return;
        }
    };
    let passed = rows.iter().filter(|r| r.verdict == "pass").count();
    let _ = writeln!(
        md,
        "{} trial(s), each a fresh CoRAL pair with one fault of a random kind at a random \
         instant (`coral-exp run fault-campaign`); {passed} met the standard (no request \
         lost, no error, no reconnect, no corrupted reply, no split brain in the switch \
         capture). Duplicate executions (requests the application ran more than once, \
         e.g. by both nodes around a takeover, from the request ids each node logged) are \
         counted, not part of the standard: a takeover re-executes the requests whose \
         reply was not yet logged (docs/DESIGN.md); `-` where no node logged ids.\n",
        rows.len()
    );
    let _ = writeln!(
        md,
        "| fault | trials | passed | lost | errors | reconnects | digest mismatches | split brain | duplicate executions | max stall (ms) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut by: BTreeMap<&str, Vec<&TrialRow>> = BTreeMap::new();
    for r in &rows {
        by.entry(r.kind.as_str()).or_default().push(r);
    }
    let known = KINDS.iter().copied();
    let others: Vec<&str> = by.keys().copied().filter(|k| !KINDS.contains(k)).collect();
    for k in known.chain(others) {
        let Some(rs) = by.get(k) else { continue };
        let sum = |f: fn(&TrialRow) -> u64| rs.iter().map(|r| f(r)).sum::<u64>();
        // Summed over the trials that logged ids; `-` if none did.
        let dup = rs
            .iter()
            .filter_map(|r| r.duplicate_executions)
            .reduce(|a, b| a + b)
            .map_or("-".to_string(), |d| d.to_string());
        let _ = writeln!(
            md,
            "| {k} | {} | {} | {} | {} | {} | {} | {} | {dup} | {:.0} |",
            rs.len(),
            rs.iter().filter(|r| r.verdict == "pass").count(),
            sum(|r| r.lost),
            sum(|r| r.errors),
            sum(|r| r.reconnects),
            sum(|r| r.digest_mismatches),
            sum(|r| r.split_brain.unwrap_or(0)),
            rs.iter().map(|r| r.stall_ms).fold(0.0, f64::max),
        );
    }
    let failed: Vec<&TrialRow> = rows.iter().filter(|r| r.verdict != "pass").collect();
    if !failed.is_empty() {
        let _ = writeln!(
            md,
            "\nTrials that missed the standard (replay each with the command):\n"
        );
        for r in failed {
            let _ = writeln!(
                md,
                "- seed {} ({} {}): {}: `coral-exp run fault-campaign --trials 1 --seed {}`",
                r.seed, r.kind, r.target, r.detail, r.seed
            );
        }
    }
    let _ = writeln!(md, "\nSource: `{root}/fault-campaign/trials.csv`.\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "seed,kind,target,target_role,instant_s,pause_s,role,shape,verdict,requests,ok,lost,errors,errors_by_kind,reconnects,digest_mismatches,duplicate_executions,split_brain,stall_ms,detail\n";

    #[test]
    fn campaign_table_by_kind_and_failed_trials() {
        let d = tempfile::tempdir().unwrap();
        let mut md = String::new();
        section(d.path(), "results", &mut md);
        assert!(md.is_empty(), "no data, no section");
        std::fs::create_dir_all(d.path().join("fault-campaign")).unwrap();
        std::fs::write(
            d.path().join("fault-campaign/trials.csv"),
            format!(
                "{HEAD}1,link-cut,server-b,primary+backup,1.3,,dual,keep-alive/1MB,FAIL,30,29,0,1,eof=1,1,0,,0,983.7,1 errors; 1 reconnects\n\
                 2,kill,server-a,primary,2.0,,single,keep-alive/1KB,pass,900,900,0,0,,0,0,,0,400.5,\n\
                 3,link-cut,server-a,primary,1.1,,single,pipelined/16KB,pass,875,875,0,0,,0,0,3,0,1932.8,\n"
            ),
        )
        .unwrap();
        section(d.path(), "results", &mut md);
        assert!(md.starts_with("## Reliability\n"), "{md}");
        assert!(
            md.contains("3 trial(s)") && md.contains("2 met the standard"),
            "{md}"
        );
        assert!(
            md.contains("| link-cut | 2 | 1 | 0 | 1 | 1 | 0 | 0 | 3 | 1933 |"),
            "{md}"
        );
        assert!(
            md.contains("| kill | 1 | 1 | 0 | 0 | 0 | 0 | 0 | - | 400 |"),
            "{md}"
        );
        assert!(md.contains("--trials 1 --seed 1`"), "{md}");
        assert!(md.contains("### Hostile input"));
        assert!(md.contains("Not part of this run"), "{md}");
        // The hostile-input table, read from attacks.csv.
        std::fs::create_dir_all(d.path().join("hostile-input")).unwrap();
        std::fs::write(
            d.path().join("hostile-input/attacks.csv"),
            "attack,target,sent,observed,counter,counted,requests,ok,errors,lost,reconnects,digest_mismatches,detections,address_moves,verdict,detail\n\
             forged heartbeats,server-a:7011,2000,-,server-a hb_rejected,2000,900,900,0,0,0,0,0,0,pass,\n\
             SYN flood,192.0.2.100:80,5000,-,-,,700,699,1,0,0,0,0,0,FAIL,1 client errors\n",
        )
        .unwrap();
        let mut md = String::new();
        section(d.path(), "results", &mut md);
        assert!(
            md.contains("| forged heartbeats | server-a:7011 | 2000 | - | server-a hb_rejected | 2000 | 900 | 0 | 0 | 0 | 0 | pass |"),
            "{md}"
        );
        assert!(
            md.contains("| SYN flood | 192.0.2.100:80 | 5000 | - | - | - | 700 | 1 |"),
            "{md}"
        );
        assert!(md.contains("1 of 2 met the standard"), "{md}");
        assert!(
            md.contains("- SYN flood on 192.0.2.100:80: 1 client errors"),
            "{md}"
        );
        // The fuzzing table becomes a subsection.
        std::fs::create_dir_all(d.path().join("fuzz")).unwrap();
        std::fs::write(
            d.path().join("fuzz/fuzz.csv"),
            "target,seconds,runs,cov,ft,corpus,findings,status\nframes,3,100,10,20,5,0,ok\n",
        )
        .unwrap();
        let mut md = String::new();
        section(d.path(), "results", &mut md);
        assert!(
            md.contains("### Fuzzing") && !md.contains("\n## Fuzzing"),
            "{md}"
        );
    }
}
