//! The report's opening table: one row per headline result of the paper
//! (`Fig. 2`, `Fig. 3`, `Table 1`, `Table 2`, `Table 3`) and of the kit's own
//! additions, each with the paper's value, ours with its spread, and a
//! verdict against the tolerance kept beside the paper's value in
//! `paper_values.csv` (table `headline`, column `tolerance`).
//!
//! Every "ours" is measured in one experiment of the results tree; a ratio
//! to a bound uses only the bound measured in the same experiment (same run,
//! same shape). A headline whose results are absent says so instead of a
//! verdict.

use super::paper::{self, PaperValue};
use super::{cell, fmt_spread, Ctx};
use crate::plot::data::{Experiment, Variant};
use crate::plot::stats::{fmt_num, Spread};
use std::fmt::Write as _;
use std::path::Path;
use workload::summary::Summary;

/// How far ours may be from the paper's value and still reproduce it, as
/// written in `paper_values.csv`: `+-N` (absolute, in the value's unit),
/// `+-N%` (relative), `xN` (within a factor N either way), `<=` (at most the
/// paper's value), `>=` (at least).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// Within ± this many units.
    Abs(f64),
    /// Within ± this percentage of the paper's value.
    Rel(f64),
    /// Within this factor of the paper's value, either way.
    Factor(f64),
    /// At most the paper's value (a bound).
    AtMost,
    /// At least the paper's value.
    AtLeast,
}

impl Tolerance {
    /// Parses the `tolerance` column; `None` for an empty or unknown text.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let num = |t: &str| t.trim().parse::<f64>().ok().filter(|x| *x >= 0.0);
        if s == "<=" {
            Some(Self::AtMost)
        } else if s == ">=" {
            Some(Self::AtLeast)
        } else if let Some(r) = s.strip_prefix("+-").or_else(|| s.strip_prefix('±')) {
            match r.strip_suffix('%') {
                Some(p) => num(p).map(Self::Rel),
                None => num(r).map(Self::Abs),
            }
        } else {
            s.strip_prefix('x')
                .and_then(num)
                .filter(|f| *f >= 1.0)
                .map(Self::Factor)
        }
    }

    /// The tolerance as printed beside the paper's value.
    pub fn shown(self, unit: &str) -> String {
        let u = diff_unit(unit);
        match self {
            Self::Abs(x) => format!("± {}{u}", fmt_num(x)),
            Self::Rel(p) => format!("± {} % of the paper's", fmt_num(p)),
            Self::Factor(f) => format!("within {}× either way", fmt_num(f)),
            Self::AtMost => "at most the paper's".into(),
            Self::AtLeast => "at least the paper's".into(),
        }
    }

    /// The verdict for `ours` against the paper's `paper`: whether it
    /// reproduces, and by how much it is off, in words.
    pub fn verdict(self, paper: f64, ours: f64, unit: &str) -> (bool, String) {
        let u = diff_unit(unit);
        let d = ours - paper;
        let side = if d >= 0.0 { "above" } else { "below" };
        let by_units = format!("{}{u} {side}", fmt_num(d.abs()));
        match self {
            Self::Abs(t) => (d.abs() <= t, by_units),
            Self::Rel(p) => {
                let rel = if paper != 0.0 {
                    100.0 * d / paper
                } else {
                    f64::INFINITY
                };
                (
                    rel.abs() <= p,
                    format!("{} % of the paper's value {side}", fmt_num(rel.abs())),
                )
            }
            Self::Factor(f) => {
                let ratio = if paper != 0.0 { ours / paper } else { f64::NAN };
                (
                    ratio <= f && ratio >= 1.0 / f,
                    format!("{}× the paper's value", fmt_num(ratio)),
                )
            }
            Self::AtMost => (ours <= paper, by_units),
            Self::AtLeast => (ours >= paper, by_units),
        }
    }
}

/// The unit of a difference between two values in `unit`: a difference of
/// percentages is in percentage points (`pp`).
fn diff_unit(unit: &str) -> String {
    match unit {
        "" => String::new(),
        "%" => " pp".into(),
        u => format!(" {u}"),
    }
}

/// Our side of one headline.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// Median with its spread (the verdict uses the median), and the runs it
    /// comes from.
    Value {
        /// Over repetitions.
        spread: Spread,
        /// Which runs, e.g. `fig2-throughput/coral-keep-alive` ×3.
        from: String,
    },
    /// A count summed over every repetition (failures: the worst case shows).
    Total {
        /// The sum.
        total: f64,
        /// Repetitions counted.
        reps: usize,
        /// Which runs.
        from: String,
    },
    /// Not measured, and why.
    Absent(String),
}

impl Measured {
    fn value(&self) -> Option<f64> {
        match self {
            Self::Value { spread, .. } => Some(spread.median),
            Self::Total { total, .. } => Some(*total),
            Self::Absent(_) => None,
        }
    }
}

/// One row of the summary table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The row's name: `Fig. 2`, `Table 1`, `Detection sweep`, ….
    pub name: &'static str,
    /// Key of its `headline` row in `paper_values.csv`.
    pub key: &'static str,
    /// Ours.
    pub ours: Measured,
}

/// How one headline is measured from the tree (and the results directory).
type Measure = fn(&[Experiment], &Path) -> Measured;

/// The headlines, in the table's order: (row name, key, how ours is measured).
const HEADLINES: &[(&str, &str, Measure)] = &[
    ("Fig. 2", "fig2_before", |e, _| fig2(e, false)),
    ("Fig. 2", "fig2_after", |e, _| fig2(e, true)),
    ("Fig. 3", "fig3_gap", |e, _| fig3(e, false)),
    ("Fig. 3", "fig3_failures", |e, _| fig3(e, true)),
    ("Table 1", "table1_total", |e, _| table1(e)),
    ("Table 2", "table2_total", |e, _| table2(e)),
    ("Table 3", "table3_overhead", |e, _| table3(e)),
    ("Detection sweep", "detection_share", |e, _| detection(e)),
    ("Scale", "scale_per_conn", |e, _| scale(e)),
    ("Reply sizes", "reply_failures", |e, _| replies(e)),
    ("Load-balancer comparison", "lb_failures", |e, _| lb(e)),
    ("Reliability campaign", "campaign_pass", |_, r| campaign(r)),
];

/// Every headline measured on `experiments` (and the campaign's
/// `trials.csv` under `results`).
pub fn rows(experiments: &[Experiment], results: &Path) -> Vec<Row> {
    HEADLINES
        .iter()
        .map(|(name, key, f)| Row {
            name,
            key,
            ours: f(experiments, results),
        })
        .collect()
}

/// The row's verdict text against its paper value.
pub fn verdict(row: &Row, pv: Option<&PaperValue>) -> String {
    let Some(pv) = pv else {
        return format!("no `headline,{}` row in paper_values.csv", row.key);
    };
    let (Some(paper), Some(tol)) = (
        pv.value.parse::<f64>().ok(),
        Tolerance::parse(&pv.tolerance),
    ) else {
        return format!(
            "paper_values.csv: `{}` needs a number and a tolerance",
            row.key
        );
    };
    match row.ours.value() {
        None => match row.key {
            "table2_total" => "**not reproduced**".into(),
            _ => "not run".into(),
        },
        Some(ours) => {
            let (ok, by) = tol.verdict(paper, ours, &pv.unit);
            if ok {
                format!("reproduced ({by})")
            } else {
                format!("**differs**: {by}")
            }
        }
    }
}

/// Writes the summary table (the report's first section).
pub(super) fn section(ctx: &Ctx, md: &mut String) {
    let _ = writeln!(md, "## Summary: the paper's headlines and ours\n");
    let _ = writeln!(
        md,
        "| result | what | paper | ours | tolerance | verdict |\n|---|---|---:|---|---|---|"
    );
    let head = paper::table(ctx.paper, "headline");
    let rows = rows(ctx.experiments, ctx.results);
    for r in &rows {
        let pv = head.iter().copied().find(|p| p.key == r.key);
        let unit = pv.map(|p| p.unit.as_str()).unwrap_or("");
        let u = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        let ours = match &r.ours {
            Measured::Value { spread, from } => format!("{}{u} ({from})", fmt_spread(spread)),
            Measured::Total { total, reps, from } => {
                format!("{}{u} in {reps} run(s) ({from})", fmt_num(*total))
            }
            Measured::Absent(why) => why.clone(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            cell(pv.map(|p| p.label.as_str()).unwrap_or(r.key)),
            cell(&pv.map(|p| format!("{}{u}", p.value)).unwrap_or("—".into())),
            cell(&ours),
            cell(
                &pv.and_then(|p| Tolerance::parse(&p.tolerance))
                    .map(|t| t.shown(unit))
                    .unwrap_or("—".into())
            ),
            cell(&verdict(r, pv))
        );
    }
    let cites: Vec<String> = head
        .iter()
        .map(|p| format!("`{}`: {}", p.key, p.citation))
        .collect();
    let _ = writeln!(
        md,
        "\nOurs: median over repetitions, in parentheses the spread (min–max below 20 repetitions, p5–p95 from 20), \
         then the runs it comes from; counts of failures are summed over every repetition. The verdict compares the \
         median (or the sum) with the paper's value under the tolerance beside it; paper values, tolerances and \
         citations are the `headline` rows of {}. Where the paper's value: {}.\n",
        ctx.paper_origin,
        cites.join("; ")
    );
}

fn exp<'a>(es: &'a [Experiment], name: &str) -> Result<&'a Experiment, Measured> {
    es.iter()
        .find(|e| e.name == name)
        .ok_or_else(|| Measured::Absent(format!("`{name}` not run")))
}

fn variant<'a>(e: &'a Experiment, name: &str) -> Result<&'a Variant, Measured> {
    e.variant(name)
        .ok_or_else(|| Measured::Absent(format!("no `{}/{name}` results", e.name)))
}

fn spread_of(xs: &[f64], from: String, what: &str) -> Measured {
    match Spread::of(xs) {
        Some(spread) => Measured::Value { spread, from },
        None => Measured::Absent(format!("{from}: no {what} recorded")),
    }
}

fn from(e: &Experiment, v: &Variant) -> String {
    format!("`{}/{}` ×{}", e.name, v.name, v.summaries().count())
}

/// Fig. 2: the paper's configuration (dual role, CGI, keep-alive, default
/// front), before the fault as a share of two servers, after as a share of
/// one, both bounds from the same experiment.
fn fig2(es: &[Experiment], after: bool) -> Measured {
    let run = || -> Result<Measured, Measured> {
        let e = exp(es, "fig2-throughput")?;
        let v = variant(e, "coral-keep-alive")?;
        let (one, two) = crate::plot::experiment_peaks(e, v, (None, None));
        let (bound, which) = if after {
            (one, "one-server")
        } else {
            (two, "two-servers")
        };
        let Some(b) = bound.filter(|b| *b > 0.0) else {
            return Ok(Measured::Absent(format!(
                "no `{}/{which}` in the same run: no bound to compare with",
                e.name
            )));
        };
        let xs: Vec<f64> = v
            .summaries()
            .filter_map(|(_, s)| {
                if after {
                    s.throughput_after_rps
                } else {
                    s.throughput_before_rps
                }
            })
            .map(|x| 100.0 * x / b)
            .collect();
        Ok(spread_of(&xs, from(e, v), "throughput across the fault"))
    };
    run().unwrap_or_else(|m| m)
}

fn failures(s: &Summary) -> f64 {
    (s.errors + s.requests_lost) as f64
}

fn total_of<'a>(vs: impl IntoIterator<Item = (&'a Experiment, &'a Variant)>) -> Measured {
    let mut total = 0.0;
    let mut reps = 0;
    let mut names = Vec::new();
    for (e, v) in vs {
        for (_, s) in v.summaries() {
            total += failures(s);
            reps += 1;
        }
        names.push(from(e, v));
    }
    if reps == 0 {
        return Measured::Absent("no summaries".into());
    }
    Measured::Total {
        total,
        reps,
        from: names.join(", "),
    }
}

/// Fig. 3: the longest client stall at the fault, or the failed and lost
/// requests summed over repetitions.
fn fig3(es: &[Experiment], failures_only: bool) -> Measured {
    let run = || -> Result<Measured, Measured> {
        let e = exp(es, "fig3-latency")?;
        let v = variant(e, "coral-keep-alive")?;
        if failures_only {
            return Ok(total_of([(e, v)]));
        }
        let xs: Vec<f64> = v.summaries().map(|(_, s)| s.max_stall_ms).collect();
        Ok(spread_of(&xs, from(e, v), "stall"))
    };
    run().unwrap_or_else(|m| m)
}

fn failover_total(e: &Experiment, v: &Variant) -> Measured {
    let xs: Vec<f64> = v
        .summaries()
        .filter_map(|(_, s)| s.failover.as_ref()?.get("total").copied())
        .collect();
    spread_of(&xs, from(e, v), "`failover.total`")
}

fn table1(es: &[Experiment]) -> Measured {
    let run = || -> Result<Measured, Measured> {
        let e = exp(es, "table1-failover")?;
        Ok(failover_total(e, variant(e, "dual-role")?))
    };
    run().unwrap_or_else(|m| m)
}

/// A variant's `integration.total` (the join's Table 2 total).
fn integration_total(e: &Experiment, v: &Variant) -> Measured {
    let xs: Vec<f64> = v
        .summaries()
        .filter_map(|(_, s)| s.integration.as_ref()?.get("total").copied())
        .collect();
    spread_of(&xs, from(e, v), "`integration.total`")
}

/// Table 2: the `integration.total` of `table2-integration`'s dual-role
/// variant (the paper's configuration) when it has one, else of the first
/// variant that has one; not reproduced when the experiment has no results.
fn table2(es: &[Experiment]) -> Measured {
    let Some(e) = es.iter().find(|e| e.name == "table2-integration") else {
        return Measured::Absent(
            "no `table2-integration` results: reintegration is not reproduced in this run".into(),
        );
    };
    let dual = e
        .variants
        .iter()
        .filter(|v| v.name == "dual-role-spare-joins");
    dual.chain(e.variants.iter())
        .map(|v| integration_total(e, v))
        .find(|m| m.value().is_some())
        .unwrap_or_else(|| {
            Measured::Absent("`table2-integration` recorded no integration total".into())
        })
}

/// Table 3: `cpu010-coral-dual-role` against `cpu010-two-servers` of the
/// same run (the paper's application and the CPU-bound quota).
fn table3(es: &[Experiment]) -> Measured {
    let run = || -> Result<Measured, Measured> {
        let e = exp(es, "table3-overhead")?;
        let p = crate::catalog::cpu_prefix(crate::catalog::CPU_BOUND);
        let v = variant(e, &format!("{p}coral-dual-role"))?;
        let two = variant(e, &format!("{p}two-servers"))?;
        let Some(x2) = crate::plot::median_throughput(two).filter(|x| *x > 0.0) else {
            return Ok(Measured::Absent("two servers served nothing".into()));
        };
        let xs: Vec<f64> = v
            .summaries()
            .map(|(_, s)| 100.0 * (1.0 - s.throughput_rps / x2))
            .collect();
        Ok(spread_of(&xs, from(e, v), "throughput"))
    };
    run().unwrap_or_else(|m| m)
}

/// Detection sweep: detection's share of the client stall at a 100 ms
/// heartbeat (the paper's), per repetition.
fn detection(es: &[Experiment]) -> Measured {
    let run = || -> Result<Measured, Measured> {
        let e = exp(es, "detection-sweep")?;
        let v = variant(e, "hb-100ms-cut")?;
        let xs: Vec<f64> = v
            .summaries()
            .filter_map(|(_, s)| {
                let d = s.failover.as_ref()?.get("detection_ms").copied()?;
                (s.max_stall_ms > 0.0).then(|| 100.0 * d / s.max_stall_ms)
            })
            .collect();
        Ok(spread_of(&xs, from(e, v), "detection time"))
    };
    run().unwrap_or_else(|m| m)
}

/// Scale: growth of the failover transition per extra idle connection,
/// between the fewest and the most idle connections (medians).
fn scale(es: &[Experiment]) -> Measured {
    let run = || -> Result<Measured, Measured> {
        let e = exp(es, "scale-sweep")?;
        let mut pts: Vec<(u32, f64)> = e
            .variants
            .iter()
            .filter_map(|v| {
                let n = v.name.strip_prefix("idle-")?.parse::<u32>().ok()?;
                let xs: Vec<f64> = v
                    .summaries()
                    .filter_map(|(_, s)| s.failover.as_ref()?.get("total").copied())
                    .collect();
                Some((n, crate::plot::stats::median(&xs)?))
            })
            .collect();
        pts.sort_by_key(|p| p.0);
        match (pts.first(), pts.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                let per_us = (b.1 - a.1) / f64::from(b.0 - a.0) * 1e3;
                Ok(spread_of(
                    &[per_us],
                    format!("`{}`: idle-{} to idle-{}, medians", e.name, a.0, b.0),
                    "transition",
                ))
            }
            _ => Ok(Measured::Absent(
                "fewer than two idle-connection counts with a failover total".into(),
            )),
        }
    };
    run().unwrap_or_else(|m| m)
}

fn replies(es: &[Experiment]) -> Measured {
    let run = || -> Result<Measured, Measured> {
        let e = exp(es, "reply-size-sweep")?;
        let vs: Vec<(&Experiment, &Variant)> = e
            .variants
            .iter()
            .filter(|v| v.name.starts_with("coral-"))
            .map(|v| (e, v))
            .collect();
        Ok(total_of(vs))
    };
    run().unwrap_or_else(|m| m)
}

fn lb(es: &[Experiment]) -> Measured {
    let run = || -> Result<Measured, Measured> {
        let e = exp(es, crate::plot::lb::EXPERIMENT)?;
        let vs: Vec<(&Experiment, &Variant)> = ["coral", "coral-dual"]
            .iter()
            .filter_map(|n| e.variant(n))
            .map(|v| (e, v))
            .collect();
        Ok(total_of(vs))
    };
    run().unwrap_or_else(|m| m)
}

/// Where the fault campaign writes its per-trial table.
pub const CAMPAIGN_TRIALS: &str = "fault-campaign/trials.csv";

/// Reliability campaign: the share of `trials.csv` rows whose `verdict`
/// says the trial met the standard (`ok`, `pass`, `passed`, `met`).
fn campaign(results: &Path) -> Measured {
    let path = results.join(CAMPAIGN_TRIALS);
    let Ok(mut r) = csv::Reader::from_path(&path) else {
        return Measured::Absent(format!("no `{CAMPAIGN_TRIALS}`: the campaign did not run"));
    };
    let Some(col) = r
        .headers()
        .ok()
        .and_then(|h| h.iter().position(|c| c.trim() == "verdict"))
    else {
        return Measured::Absent(format!("`{CAMPAIGN_TRIALS}` has no `verdict` column"));
    };
    let (mut n, mut passed) = (0usize, 0usize);
    for rec in r.records().flatten() {
        n += 1;
        let v = rec.get(col).unwrap_or("").trim().to_ascii_lowercase();
        if matches!(v.as_str(), "ok" | "pass" | "passed" | "met") {
            passed += 1;
        }
    }
    if n == 0 {
        return Measured::Absent(format!("`{CAMPAIGN_TRIALS}` has no trial"));
    }
    Measured::Value {
        spread: Spread::of(&[100.0 * passed as f64 / n as f64]).expect("one value"),
        from: format!("{passed} of {n} trials, `{CAMPAIGN_TRIALS}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerances_parse_and_judge() {
        assert_eq!(Tolerance::parse("+-15"), Some(Tolerance::Abs(15.0)));
        assert_eq!(Tolerance::parse("±10%"), Some(Tolerance::Rel(10.0)));
        assert_eq!(Tolerance::parse("x2"), Some(Tolerance::Factor(2.0)));
        assert_eq!(Tolerance::parse("<="), Some(Tolerance::AtMost));
        assert_eq!(Tolerance::parse(">="), Some(Tolerance::AtLeast));
        for bad in ["", "x0.5", "+-", "about", "+--1"] {
            assert_eq!(Tolerance::parse(bad), None, "{bad}");
        }
        let t = Tolerance::Abs(15.0);
        assert_eq!(t.verdict(70.0, 80.0, "%"), (true, "10 pp above".into()));
        assert_eq!(t.verdict(70.0, 40.0, "%"), (false, "30 pp below".into()));
        let f = Tolerance::Factor(2.0);
        assert!(f.verdict(1.5, 2.9, "ms").0);
        assert_eq!(
            f.verdict(1.5, 4.5, "ms"),
            (false, "3× the paper's value".into())
        );
        assert!(!f.verdict(1.5, 0.7, "ms").0);
        assert!(Tolerance::AtMost.verdict(0.0, 0.0, "").0);
        assert_eq!(
            Tolerance::AtMost.verdict(0.0, 3.0, ""),
            (false, "3 above".into())
        );
        assert!(!Tolerance::AtLeast.verdict(50.0, 49.0, "%").0);
        assert!(Tolerance::Rel(10.0).verdict(100.0, 109.0, "").0);
        assert!(!Tolerance::Rel(10.0).verdict(100.0, 89.0, "").0);
    }

    #[test]
    fn every_headline_has_a_paper_value_and_a_tolerance() {
        let values = paper::parse(paper::EMBEDDED, "embedded").unwrap();
        let head = paper::table(&values, "headline");
        for (name, key, _) in HEADLINES {
            let p = head
                .iter()
                .find(|p| p.key == *key)
                .unwrap_or_else(|| panic!("{name}: no headline row {key}"));
            assert!(p.value.parse::<f64>().is_ok(), "{key}");
            assert!(Tolerance::parse(&p.tolerance).is_some(), "{key}");
        }
    }

    use crate::report::testtree::{faulted, joined, summary, summary_row, Tree};
    use serde_json::json;

    fn fig2_tree(before: f64, after: f64, with_bounds: bool) -> Tree {
        let t = Tree::new();
        let e = "fig2-throughput";
        if with_bounds {
            t.rep(e, "one-server", 1, &summary(100.0, 5.0), json!({}));
            t.rep(e, "two-servers", 1, &summary(200.0, 5.0), json!({}));
        }
        for n in 1..=3 {
            let d = f64::from(n);
            t.rep(
                e,
                "coral-keep-alive",
                n,
                &faulted(before + d, after + d, 300.0, &[]),
                json!({}),
            );
        }
        // A bound from another experiment must never be used.
        t.rep("baseline", "one-server", 1, &summary(50.0, 5.0), json!({}));
        t.rep(
            "baseline",
            "two-servers",
            1,
            &summary(100.0, 5.0),
            json!({}),
        );
        t
    }

    #[test]
    fn fig2_rows_judge_against_the_same_runs_bounds() {
        // 142/200 = 71 % of two servers; 102/100 = 102 % of one server.
        let md = fig2_tree(140.0, 100.0, true).report();
        let before = summary_row(&md, "Fig. 2", "throughput before the fault");
        assert!(
            before.contains("| 71 (70.5–71.5) % (`fig2-throughput/coral-keep-alive` ×3) |"),
            "{before}"
        );
        assert!(before.contains("| reproduced (1 pp above) |"), "{before}");
        let after = summary_row(&md, "Fig. 2", "throughput from fault + 1 s");
        assert!(after.contains("| 102 (101–103) % "), "{after}");
        assert!(after.contains("reproduced"), "{after}");
        // 62/200 = 31 %: far below the paper's 70 %.
        let md = fig2_tree(60.0, 100.0, true).report();
        let before = summary_row(&md, "Fig. 2", "throughput before the fault");
        assert!(before.contains("| **differs**: 39 pp below |"), "{before}");
        // Without the experiment's own bounds: no verdict from baseline's.
        let md = fig2_tree(140.0, 100.0, false).report();
        let before = summary_row(&md, "Fig. 2", "throughput before the fault");
        assert!(
            before.contains("no `fig2-throughput/two-servers` in the same run"),
            "{before}"
        );
        assert!(before.ends_with("| not run |"), "{before}");
    }

    #[test]
    fn failures_are_summed_over_every_repetition() {
        let t = Tree::new();
        let mut bad = faulted(100.0, 90.0, 400.0, &[]);
        bad.requests_lost = 2;
        bad.errors = 1;
        t.rep(
            "fig3-latency",
            "coral-keep-alive",
            1,
            &faulted(100.0, 90.0, 350.0, &[]),
            json!({}),
        );
        t.rep("fig3-latency", "coral-keep-alive", 2, &bad, json!({}));
        let md = t.report();
        let gap = summary_row(&md, "Fig. 3", "longest client stall");
        assert!(
            gap.contains("| 375 (350–400) ms ") && gap.contains("reproduced (625 ms below)"),
            "{gap}"
        );
        let fail = summary_row(&md, "Fig. 3", "requests failed or lost");
        assert!(
            fail.contains("| 3 in 2 run(s) ") && fail.contains("**differs**: 3 above"),
            "{fail}"
        );
        // Absent experiments: said so, no verdict.
        let row = summary_row(&md, "Table 1", "failover transition");
        assert!(
            row.contains("`table1-failover` not run") && row.ends_with("| not run |"),
            "{row}"
        );
    }

    #[test]
    fn table2_is_not_reproduced_until_its_results_exist() {
        let t = Tree::new();
        t.rep("baseline", "one-server", 1, &summary(100.0, 5.0), json!({}));
        let row = summary_row(&t.report(), "Table 2", "integration");
        assert!(row.ends_with("| **not reproduced** |"), "{row}");
        // A failover total is not an integration total.
        t.rep(
            "table2-integration",
            "join",
            1,
            &faulted(1.0, 1.0, 0.0, &[("total", 12.5)]),
            json!({}),
        );
        let row = summary_row(&t.report(), "Table 2", "integration");
        assert!(row.contains("recorded no integration total"), "{row}");
        t.rep(
            "table2-integration",
            "join",
            1,
            &joined(&[("total", 12.5)]),
            json!({}),
        );
        let row = summary_row(&t.report(), "Table 2", "integration");
        assert!(
            row.contains("| 12.5 ms ") && row.contains("reproduced (1.136× the paper's value)"),
            "{row}"
        );
        t.rep(
            "table2-integration",
            "join",
            2,
            &joined(&[("total", 60.0)]),
            json!({}),
        );
        t.rep(
            "table2-integration",
            "join",
            3,
            &joined(&[("total", 70.0)]),
            json!({}),
        );
        let row = summary_row(&t.report(), "Table 2", "integration");
        assert!(
            row.contains("**differs**: 5.455× the paper's value"),
            "{row}"
        );
        // The dual-role variant, the paper's configuration, when it has a total.
        t.rep(
            "table2-integration",
            "dual-role-spare-joins",
            1,
            &joined(&[("total", 13.0)]),
            json!({}),
        );
        let row = summary_row(&t.report(), "Table 2", "integration");
        assert!(
            row.contains("| 13 ms (`table2-integration/dual-role-spare-joins` ×1)"),
            "{row}"
        );
    }

    #[test]
    fn table3_detection_scale_and_campaign_rows() {
        let t = Tree::new();
        let e = "table3-overhead";
        t.rep(e, "cpu010-two-servers", 1, &summary(200.0, 5.0), json!({}));
        t.rep(
            e,
            "cpu010-coral-dual-role",
            1,
            &summary(130.0, 5.0),
            json!({}),
        );
        let hb = [("detection_ms", 300.0), ("total", 2.0)];
        t.rep(
            "detection-sweep",
            "hb-100ms-cut",
            1,
            &faulted(100.0, 90.0, 400.0, &hb),
            json!({}),
        );
        t.rep(
            "scale-sweep",
            "idle-00100",
            1,
            &faulted(1.0, 1.0, 1.0, &[("total", 2.0)]),
            json!({}),
        );
        t.rep(
            "scale-sweep",
            "idle-01000",
            1,
            &faulted(1.0, 1.0, 1.0, &[("total", 11.0)]),
            json!({}),
        );
        t.file(
            CAMPAIGN_TRIALS,
            "seed,kind,verdict\n1,link-cut,ok\n2,kill,FAIL\n3,stop,ok\n4,kill,ok\n",
        );
        let md = t.report();
        let row = summary_row(&md, "Table 3", "CoRAL (dual role)");
        assert!(
            row.contains("| 35 % ") && row.contains("reproduced (5 pp above)"),
            "{row}"
        );
        let row = summary_row(&md, "Detection sweep", "detection's share");
        assert!(
            row.contains("| 75 % ") && row.contains("reproduced (25 pp above)"),
            "{row}"
        );
        let row = summary_row(&md, "Scale", "failover transition per extra");
        assert!(
            row.contains("| 10 µs ") && row.contains("reproduced (1× the paper's value)"),
            "{row}"
        );
        let row = summary_row(&md, "Reliability campaign", "trials meeting");
        assert!(
            row.contains("| 75 % (3 of 4 trials") && row.contains("**differs**: 25 pp below"),
            "{row}"
        );
        // Detection below half of the stall contradicts the paper's claim.
        let hb = [("detection_ms", 100.0), ("total", 2.0)];
        t.rep(
            "detection-sweep",
            "hb-100ms-cut",
            1,
            &faulted(100.0, 90.0, 400.0, &hb),
            json!({}),
        );
        let row = summary_row(&t.report(), "Detection sweep", "detection's share");
        assert!(row.contains("**differs**: 25 pp below"), "{row}");
    }
}
