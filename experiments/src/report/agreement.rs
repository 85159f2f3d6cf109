//! Run-to-run agreement: two results trees of the same experiments compared
//! metric by metric against the spread each run states in its report.
//!
//! For every experiment, variant and metric present in both trees, each run
//! gives a [`Spread`] over its repetitions (min–max below 20 repetitions,
//! p5–p95 from 20 on, as in the report's tables). The verdict:
//!
//! - [`Verdict::Agree`]: each run's median lies inside the other's spread
//!   (or both medians are equal);
//! - [`Verdict::Overlap`]: the spreads overlap but a median falls outside
//!   the other run's spread;
//! - [`Verdict::Differ`]: the spreads are disjoint;
//! - [`Verdict::NoSpread`]: one repetition on either side, so no spread was
//!   stated; only the ratio is shown.
//!
//! `coral-exp compare` writes the whole table (Markdown and CSV);
//! `coral-exp report --against` puts the summary into REPORT.md.

use super::{cell, fmt_spread, METRICS};
use crate::plot::data::{Experiment, Variant};
use crate::plot::stats::Spread;
use anyhow::{Context, Result};
use clap::Args;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use workload::summary::Summary;

/// How two runs' values of one metric relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Each median inside the other run's spread.
    Agree,
    /// Spreads overlap, a median outside the other's spread.
    Overlap,
    /// Spreads disjoint.
    Differ,
    /// A single repetition on one side: no spread stated.
    NoSpread,
}

impl Verdict {
    /// The word used in tables and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::Overlap => "overlap",
            Verdict::Differ => "differ",
            Verdict::NoSpread => "no spread (1 rep)",
        }
    }
}

/// Compares two spreads of the same metric.
pub fn classify(a: &Spread, b: &Spread) -> Verdict {
    if a.median == b.median {
        return Verdict::Agree;
    }
    if a.n <= 1 || b.n <= 1 {
        return Verdict::NoSpread;
    }
    let inside = |x: f64, s: &Spread| x >= s.lo && x <= s.hi;
    if inside(a.median, b) && inside(b.median, a) {
        Verdict::Agree
    } else if a.lo <= b.hi && b.lo <= a.hi {
        Verdict::Overlap
    } else {
        Verdict::Differ
    }
}

/// One compared metric.
#[derive(Debug, Clone)]
pub struct Row {
    /// Experiment name.
    pub experiment: String,
    /// Variant name.
    pub variant: String,
    /// Metric label (summary metric, or `failover: <step>`).
    pub metric: String,
    /// The first run's spread.
    pub a: Spread,
    /// The second run's spread.
    pub b: Spread,
    /// How they relate.
    pub verdict: Verdict,
}

impl Row {
    /// Second run's median over the first's (`None` when the first is 0).
    pub fn ratio(&self) -> Option<f64> {
        (self.a.median != 0.0).then(|| self.b.median / self.a.median)
    }
}

fn spread_of(v: &Variant, get: &dyn Fn(&Summary) -> Option<f64>) -> Option<Spread> {
    let xs: Vec<f64> = v.summaries().filter_map(|(_, s)| get(s)).collect();
    Spread::of(&xs)
}

/// Every metric of every variant present in both runs, in experiment and
/// variant order of the first run.
pub fn compare(a: &[Experiment], b: &[Experiment]) -> Vec<Row> {
    let mut rows = Vec::new();
    for ea in a {
        let Some(eb) = b.iter().find(|e| e.name == ea.name) else {
            continue;
        };
        for va in &ea.variants {
            let Some(vb) = eb.variant(&va.name) else {
                continue;
            };
            let mut push = |metric: String, get: &dyn Fn(&Summary) -> Option<f64>| {
                if let (Some(sa), Some(sb)) = (spread_of(va, get), spread_of(vb, get)) {
                    rows.push(Row {
                        experiment: ea.name.clone(),
                        variant: va.name.clone(),
                        metric,
                        verdict: classify(&sa, &sb),
                        a: sa,
                        b: sb,
                    });
                }
            };
            for (label, get) in METRICS {
                push(label.to_string(), get);
            }
            let steps: BTreeSet<String> = [va, vb]
                .iter()
                .flat_map(|v| v.summaries())
                .filter_map(|(_, s)| s.failover.as_ref())
                .flat_map(|f| f.keys().cloned())
                .collect();
            for step in steps {
                let key = step.clone();
                push(format!("failover: {step}"), &move |s: &Summary| {
                    s.failover.as_ref().and_then(|f| f.get(&key).copied())
                });
            }
        }
    }
    rows
}

/// Counts of each verdict.
fn counts<'a>(rows: impl Iterator<Item = &'a Row>) -> BTreeMap<Verdict, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r.verdict).or_insert(0) += 1;
    }
    m
}

fn counts_text(m: &BTreeMap<Verdict, usize>) -> String {
    [
        Verdict::Agree,
        Verdict::Overlap,
        Verdict::Differ,
        Verdict::NoSpread,
    ]
    .iter()
    .map(|v| format!("{} {}", m.get(v).copied().unwrap_or(0), v.as_str()))
    .collect::<Vec<_>>()
    .join(", ")
}

fn ratio_text(r: &Row) -> String {
    r.ratio().map(|x| format!("{:.2}", x)).unwrap_or("—".into())
}

/// The Markdown: verdict counts per experiment, then the rows selected by
/// `all` (every row) or only those that do not agree.
pub fn markdown(rows: &[Row], a_name: &str, b_name: &str, all: bool, md: &mut String) {
    let _ = writeln!(
        md,
        "Run A is `{a_name}`, run B is `{b_name}`. For each metric of each variant (medians over \
         repetitions, spreads as stated in the report: min–max below 20 repetitions, p5–p95 from 20 on): \
         **agree** = each run's median lies inside the other run's spread; **overlap** = the spreads overlap \
         but a median lies outside the other's spread; **differ** = the spreads are disjoint; \
         **no spread** = one repetition on a side (QUICK shapes), only the ratio B/A is shown. \
         Calibration: for two runs drawn from the *same* distribution with 3 repetitions a side, \
         both medians fall inside the other's min–max only about 2 times in 5, and the min–max ranges \
         are disjoint (*differ*) about 1 time in 10 (all three of one run below all three of the other); \
         so a tenth of the metrics differing is what chance alone gives, and more than that, or a \
         large ratio, signals a real change between the runs.\n"
    );
    let _ = writeln!(
        md,
        "| experiment | metrics compared | verdicts |\n|---|---:|---|"
    );
    let names: Vec<&str> = {
        let mut seen = Vec::new();
        for r in rows {
            if !seen.contains(&r.experiment.as_str()) {
                seen.push(r.experiment.as_str());
            }
        }
        seen
    };
    for name in &names {
        let these: Vec<&Row> = rows.iter().filter(|r| r.experiment == *name).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            cell(name),
            these.len(),
            counts_text(&counts(these.iter().copied()))
        );
    }
    let _ = writeln!(
        md,
        "| **all** | {} | {} |\n",
        rows.len(),
        counts_text(&counts(rows.iter()))
    );
    let shown: Vec<&Row> = rows
        .iter()
        .filter(|r| all || r.verdict != Verdict::Agree)
        .collect();
    if shown.is_empty() {
        let _ = writeln!(md, "Every compared metric agrees.\n");
        return;
    }
    let _ = writeln!(
        md,
        "{}\n\n| experiment | variant | metric | run A | run B | B / A | verdict |\n|---|---|---|---:|---:|---:|---|",
        if all {
            "Every compared metric:"
        } else {
            "The metrics that do not agree:"
        }
    );
    for r in shown {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&r.experiment),
            cell(&r.variant),
            cell(&r.metric),
            fmt_spread(&r.a),
            fmt_spread(&r.b),
            ratio_text(r),
            r.verdict.as_str()
        );
    }
    md.push('\n');
}

/// Writes the rows as CSV (one line per metric).
pub fn write_csv(rows: &[Row], path: &Path) -> Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record([
        "experiment",
        "variant",
        "metric",
        "a_median",
        "a_lo",
        "a_hi",
        "a_reps",
        "b_median",
        "b_lo",
        "b_hi",
        "b_reps",
        "ratio_b_over_a",
        "verdict",
    ])?;
    for r in rows {
        w.write_record([
            r.experiment.clone(),
            r.variant.clone(),
            r.metric.clone(),
            r.a.median.to_string(),
            r.a.lo.to_string(),
            r.a.hi.to_string(),
            r.a.n.to_string(),
            r.b.median.to_string(),
            r.b.lo.to_string(),
            r.b.hi.to_string(),
            r.b.n.to_string(),
            r.ratio().map(|x| format!("{x:.4}")).unwrap_or_default(),
            r.verdict.as_str().to_string(),
        ])?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Arguments of `coral-exp compare`.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Run A: the results tree the report is about.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Run B: another results tree of the same experiments.
    #[arg(long)]
    pub against: PathBuf,
    /// Markdown with every compared metric [default: RESULTS/AGREEMENT.md];
    /// the CSV goes beside it as agreement.csv.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `coral-exp compare`; returns the process exit code (0 when the table was
/// written, whatever the verdicts).
pub fn run(a: CompareArgs) -> Result<i32> {
    let ta = crate::plot::data::load_tree(&a.results)?;
    let tb = crate::plot::data::load_tree(&a.against)?;
    let rows = compare(&ta, &tb);
    if rows.is_empty() {
        anyhow::bail!(
            "nothing to compare: {} and {} share no experiment/variant with a summary.json",
            a.results.display(),
            a.against.display()
        );
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| a.results.join("AGREEMENT.md"));
    let mut md = String::from("# Run-to-run agreement\n\nWritten by `coral-exp compare` from the two results trees' `summary.json` files.\n\n");
    markdown(
        &rows,
        &a.results.display().to_string(),
        &a.against.display().to_string(),
        true,
        &mut md,
    );
    std::fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
    let csv_path = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("agreement.csv");
    write_csv(&rows, &csv_path)?;
    tracing::info!(
        "{} metrics: {}; wrote {} and {}",
        rows.len(),
        counts_text(&counts(rows.iter())),
        out.display(),
        csv_path.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[f64]) -> Spread {
        Spread::of(v).unwrap()
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            classify(&s(&[1.0, 2.0, 3.0]), &s(&[1.5, 2.5, 2.9])),
            Verdict::Agree
        );
        assert_eq!(
            classify(&s(&[1.0, 2.0, 3.0]), &s(&[2.9, 3.5, 4.0])),
            Verdict::Overlap
        );
        assert_eq!(
            classify(&s(&[1.0, 2.0, 3.0]), &s(&[4.0, 5.0, 6.0])),
            Verdict::Differ
        );
        assert_eq!(classify(&s(&[1.0]), &s(&[1.1])), Verdict::NoSpread);
        assert_eq!(classify(&s(&[0.0]), &s(&[0.0])), Verdict::Agree);
        assert_eq!(
            classify(&s(&[0.0, 0.0, 0.0]), &s(&[0.0, 1.0, 1.0])),
            Verdict::Overlap
        );
    }
}
