//! The report's fuzzing table, from `RESULTS/fuzz/fuzz.csv` (written by
//! `make fuzz`, see docs/CLI.md): per target the time, runs, coverage and
//! findings, and the totals.

use serde::Deserialize;
use std::fmt::Write as _;
use std::path::Path;

/// One row of `fuzz.csv`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FuzzRow {
    /// Fuzz target name.
    pub target: String,
    /// Wall time spent on it, seconds.
    pub seconds: u64,
    /// libFuzzer's executed units.
    pub runs: u64,
    /// Edge coverage at the end.
    pub cov: u64,
    /// Feature coverage at the end.
    pub ft: u64,
    /// Inputs in the corpus at the end.
    pub corpus: u64,
    /// 1 if the target crashed, leaked, timed out or ran out of memory.
    pub findings: u64,
    /// `ok`, `finding` or `no-runs`.
    pub status: String,
}

/// Reads `fuzz.csv`; every malformed row is an error naming it.
pub fn read(path: &Path) -> anyhow::Result<Vec<FuzzRow>> {
    use anyhow::Context;
    let mut r =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in r.deserialize::<FuzzRow>().enumerate() {
        out.push(row.with_context(|| format!("{}: row {}", path.display(), i + 2))?);
    }
    Ok(out)
}

/// Appends the fuzzing section if `results/fuzz/fuzz.csv` exists (`root`
/// is how the report names the results directory).
pub fn section(results: &Path, root: &str, md: &mut String) {
    let path = results.join("fuzz").join("fuzz.csv");
    if !path.exists() {
        return;
    }
    let _ = writeln!(md, "## Fuzzing\n");
    let rows = match read(&path) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(md, "`{root}/fuzz/fuzz.csv` could not be read: {e:#}\n");
            return;
        }
    };
    let secs: u64 = rows.iter().map(|r| r.seconds).sum();
    let runs: u64 = rows.iter().map(|r| r.runs).sum();
    let findings: u64 = rows.iter().map(|r| r.findings).sum();
    let bad: Vec<&str> = rows
        .iter()
        .filter(|r| r.status != "ok")
        .map(|r| r.target.as_str())
        .collect();
    let _ = writeln!(
        md,
        "Every parser and decoder that takes bytes from the network or disk has a libFuzzer \
         target (`coral/core/fuzz`, `experiments/fuzz`; docs/CLI.md lists them); `make fuzz` ran {} target(s) for {secs} s in total, \
         {runs} runs, with {findings} finding(s){}.\n",
        rows.len(),
        if bad.is_empty() {
            String::new()
        } else {
            format!(" (not ok: {})", bad.join(", "))
        }
    );
    let _ = writeln!(
        md,
        "| target | seconds | runs | cov (edges) | ft (features) | corpus | findings | status |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
            r.target, r.seconds, r.runs, r.cov, r.ft, r.corpus, r.findings, r.status
        );
    }
    let _ = writeln!(md, "\nSource: `{root}/fuzz/fuzz.csv`.\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_totals_from_the_csv() {
        let d = tempfile::tempdir().unwrap();
        let mut md = String::new();
        section(d.path(), "results", &mut md);
        assert!(md.is_empty(), "no fuzz.csv, no section");

        std::fs::create_dir_all(d.path().join("fuzz")).unwrap();
        std::fs::write(
            d.path().join("fuzz/fuzz.csv"),
            "target,seconds,runs,cov,ft,corpus,findings,status\n\
             conn_table,61,9000,1900,8000,400,0,ok\n\
             tcp_options,60,900000,284,438,80,1,finding\n",
        )
        .unwrap();
        section(d.path(), "results", &mut md);
        assert!(md.contains("2 target(s) for 121 s in total, 909000 runs, with 1 finding(s) (not ok: tcp_options)"), "{md}");
        assert!(
            md.contains("| `conn_table` | 61 | 9000 | 1900 | 8000 | 400 | 0 | ok |"),
            "{md}"
        );

        std::fs::write(
            d.path().join("fuzz/fuzz.csv"),
            "target,seconds\nx,notanumber\n",
        )
        .unwrap();
        let mut md = String::new();
        section(d.path(), "results", &mut md);
        assert!(
            md.contains("could not be read") && md.contains("row 2"),
            "{md}"
        );
    }
}
