//! `coral-exp report`: `results/REPORT.md`, written from the results tree
//! (`summary.json`, `config.json`) and `experiments/paper_values.csv` only.
//!
//! One section per experiment that has results, headed as the paper names
//! what it reproduces (Fig. 2, Fig. 3, Table 1, Table 2, Table 3, "CoRAL
//! versus simple load balancers"); unknown experiments get a generic section.
//! Every table says which files its numbers come from.

pub mod agreement;
mod false_detection;
pub mod fuzzing;
pub mod headline;
pub mod lb;
pub mod paper;
mod reintegration;
pub mod reliability;
pub mod runtime;
pub mod sections;
pub mod tables;
#[cfg(test)]
mod testtree;

use crate::plot::data::{self, Experiment, Rep, Variant};
use crate::plot::stats::{fmt_num, Spread, SpreadKind};
use crate::plot::{bars_stem, figure_stem, FigureKind};
use anyhow::{Context, Result};
use clap::Args;
use paper::PaperValue;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use workload::summary::Summary;

/// Default location of the paper's numbers.
pub const DEFAULT_PAPER_VALUES: &str = "experiments/paper_values.csv";

/// Arguments of `coral-exp report`.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The results tree to read.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Where `coral-exp plot` wrote the figures.
    #[arg(long, default_value = "paper-figures")]
    pub figures: PathBuf,
    /// The report to write [default: RESULTS/REPORT.md].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The paper's numbers (falls back to the copy compiled into coral-exp
    /// when the default path does not exist).
    #[arg(long, default_value = DEFAULT_PAPER_VALUES)]
    pub paper_values: PathBuf,
    /// Another results tree of the same experiments (an earlier full run):
    /// adds a run-to-run agreement section (see `coral-exp compare`).
    #[arg(long)]
    pub against: Option<PathBuf>,
}

/// Known experiments, in report order: (name, heading, what it reproduces).
pub const KNOWN: &[(&str, &str, &str)] = &[
    (
        "baseline",
        "Unreplicated servers: the bounds of Fig. 2 and Table 3",
        "Peak throughput of one and of two unreplicated servers serving the same content; \
         the dashed lines of Fig. 2 and the reference of Table 3's overhead.",
    ),
    (
        "baseline-crash",
        "Unreplicated server crash, without fault tolerance",
        "What clients see when a server fails with no failover: the contrast to Fig. 2 and Fig. 3.",
    ),
    (
        "fig2-throughput",
        "Fig. 2: service throughput before and after a fault",
        "System throughput per second across a fault, with the one- and two-unreplicated-server peaks (paper section 4.1).",
    ),
    (
        "fig3-latency",
        "Fig. 3: client-observed request latencies across a fault",
        "Every request's latency across a fault, with a zoom on the fault point (paper section 4.2).",
    ),
    (
        "table1-failover",
        "Table 1: failover latency breakdown",
        "Time from fault detection to operation in simplex mode, by step (paper section 4.2).",
    ),
    (
        "table2-integration",
        "Table 2: integration of a new server after failover",
        "Time to bring a new server into a working simplex system, back to duplex, by step (paper section 4.3).",
    ),
    (
        "double-fault",
        "A second fault after reintegration",
        "The primary killed, the spare joined to the survivor, then the survivor killed: the service carries on from the spare (not in the paper).",
    ),
    (
        "table3-overhead",
        "Table 3: throughput overhead",
        "Throughput reduction relative to two unreplicated servers, 1 - X_coral / X_two (paper Table 3).",
    ),
    (
        "detection-sweep",
        "Failure detection time versus heartbeat interval",
        "The trade-off of paper section 4.2: heartbeat rate against failover time and overhead.",
    ),
    (
        false_detection::EXPERIMENT,
        "False detections under load",
        "Long fault-free runs at 10 and 5 ms heartbeats under the loads that once fooled detection: false detections per 10 minutes against the allowance.",
    ),
    ("scale-sweep", "Scale sweep", "The same measurements across load levels."),
    ("reply-size-sweep", "Reply size sweep", "The same measurements across reply sizes."),
    (
        "lb-compare",
        "CoRAL versus simple load balancers",
        "The same topology, workload and fault with HAProxy, nginx and keepalived VRRP (paper section 5).",
    ),
];

/// The summary metrics tabulated for every variant: (label, getter).
type Metric = (&'static str, fn(&Summary) -> Option<f64>);

/// Rows of the per-variant results table.
pub const METRICS: &[Metric] = &[
    ("requests sent", |s| Some(s.requests as f64)),
    ("ok", |s| Some(s.ok as f64)),
    ("errors", |s| Some(s.errors as f64)),
    ("requests lost", |s| Some(s.requests_lost as f64)),
    ("digest mismatches", |s| Some(s.digest_mismatches as f64)),
    ("reconnects", |s| Some(s.reconnects as f64)),
    ("max stall (ms)", |s| Some(s.max_stall_ms)),
    ("p50 latency (ms)", |s| Some(s.p50_ms)),
    ("p99 latency (ms)", |s| Some(s.p99_ms)),
    ("throughput (req/s)", |s| Some(s.throughput_rps)),
    ("throughput before fault (req/s)", |s| {
        s.throughput_before_rps
    }),
    ("throughput from fault + 1 s (req/s)", |s| {
        s.throughput_after_rps
    }),
];

/// `median (lo-hi)`, or just the median for one value.
pub fn fmt_spread(s: &Spread) -> String {
    if s.n <= 1 || (s.lo == s.median && s.hi == s.median) {
        fmt_num(s.median)
    } else {
        format!(
            "{} ({}–{})",
            fmt_num(s.median),
            fmt_num(s.lo),
            fmt_num(s.hi)
        )
    }
}

/// Relative path from directory `from` to `to` (both made absolute against
/// the current directory first, `.`/`..` resolved lexically).
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    fn absolute(p: &Path) -> Vec<String> {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        let mut parts: Vec<String> = Vec::new();
        for c in p.components() {
            match c {
                Component::Normal(x) => parts.push(x.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        parts
    }
    let (f, t) = (absolute(from), absolute(to));
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for part in &t[common..] {
        out.push(part);
    }
    out
}

/// Escapes `|` for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Everything a section needs besides its experiment.
struct Ctx<'a> {
    results: &'a Path,
    figures: &'a Path,
    out_dir: &'a Path,
    paper: &'a [PaperValue],
    /// Where `paper` came from, as the report names it.
    paper_origin: &'a str,
    experiments: &'a [Experiment],
}

/// A section written from the whole results tree, after the experiments'
/// sections: the place for a helper's own section file (reliability,
/// fuzzing, …). It writes its heading itself and nothing when it has no data.
pub type TreeSection = fn(results: &Path, root: &str, md: &mut String);

/// The tree-wide sections, in report order. Add one line per section file.
const TREE_SECTIONS: &[TreeSection] = &[reliability::section];

impl Ctx<'_> {
    /// The results directory as the report names it (as given on the command line).
    fn root(&self) -> String {
        self.results
            .display()
            .to_string()
            .trim_end_matches('/')
            .to_string()
    }

    /// How a file under the results tree is named in the report.
    fn shown(&self, p: &Path) -> String {
        match p.strip_prefix(self.results) {
            Ok(rel) => format!("{}/{}", self.root(), rel.display()),
            Err(_) => p.display().to_string(),
        }
    }

    /// `results/<exp>/<variant>/rep-{1,2,3}/<file>` for a variant.
    fn sources(&self, exp: &Experiment, v: &Variant, file: &str, reps: &[&Rep]) -> String {
        let ns: Vec<String> = reps.iter().map(|r| r.n.to_string()).collect();
        let reps_part = if ns.len() == 1 {
            format!("rep-{}", ns[0])
        } else {
            format!("rep-{{{}}}", ns.join(","))
        };
        format!(
            "`{}/{}/{}/{}/{}`",
            self.root(),
            exp.name,
            v.name,
            reps_part,
            file
        )
    }
}

fn spread_kind_note(kinds: &BTreeSet<&'static str>) -> String {
    if kinds.is_empty() {
        return String::new();
    }
    let k: Vec<&str> = kinds.iter().copied().collect();
    format!("Cells: median over repetitions ({}).", k.join("; "))
}

fn kind_name(s: &Spread) -> &'static str {
    match (s.n, s.kind) {
        (0 | 1, _) => "one repetition: the value itself",
        (_, SpreadKind::MinMax) => "in parentheses: min–max",
        (_, SpreadKind::P5P95) => "in parentheses: p5–p95",
    }
}

/// The figures section of an experiment: every figure file that exists.
fn figures_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let mut any = false;
    let by_variant = ctx.figures.join(crate::plot::VARIANTS_DIR);
    let push_in = |dir: &Path, stem: String, caption: String, md: &mut String| {
        let png = dir.join(format!("{stem}.png"));
        if png.is_file() {
            let rel = relative_path(ctx.out_dir, &png);
            let _ = writeln!(md, "![{caption}]({})\n", rel.display());
            let _ = writeln!(
                md,
                "*{caption}* (also `{}`).\n",
                relative_path(ctx.out_dir, &dir.join(format!("{stem}.svg"))).display()
            );
            true
        } else {
            false
        }
    };
    for (stem, exp_name, variant, title) in crate::plot::PAPER_FIGURES {
        if *exp_name == exp.name {
            any |= push_in(
                ctx.figures,
                stem.to_string(),
                format!("{title} (`{exp_name}/{variant}`)"),
                md,
            );
        }
    }
    let push =
        |stem: String, caption: String, md: &mut String| push_in(&by_variant, stem, caption, md);
    for v in &exp.variants {
        let rep = v.typical_rep().map(|r| r.n).unwrap_or(0);
        any |= push(
            figure_stem(&exp.name, &v.name, FigureKind::Throughput),
            format!(
                "{} / {}: successful requests per 1 s (rep-{rep}, from its requests.csv)",
                exp.name, v.name
            ),
            md,
        );
        any |= push(
            figure_stem(&exp.name, &v.name, FigureKind::Latency),
            format!(
                "{} / {}: latency of every request (rep-{rep}, from its requests.csv)",
                exp.name, v.name
            ),
            md,
        );
    }
    any |= push(
        bars_stem(&exp.name),
        format!(
            "{}: median throughput by variant, whiskers the spread (summary.json)",
            exp.name
        ),
        md,
    );
    if !any {
        let _ = writeln!(
            md,
            "No figures found in `{}` (run `coral-exp plot` first).\n",
            ctx.figures.display()
        );
    }
}

/// The configuration table: one column per variant, values of the first
/// repetition, "varies" when repetitions differ.
fn config_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for v in &exp.variants {
        for r in &v.reps {
            if let Some(o) = r.config.as_object() {
                keys.extend(o.keys().filter(|k| *k != "rep").cloned());
            }
        }
    }
    if keys.is_empty() {
        let _ = writeln!(md, "No readable `config.json` in this experiment.\n");
        return;
    }
    let _ = writeln!(md, "**Configuration** (from `config.json`):\n");
    let _ = write!(md, "| setting |");
    for v in &exp.variants {
        let _ = write!(md, " {} |", cell(&v.name));
    }
    let _ = write!(md, "\n|---|");
    for _ in &exp.variants {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    for k in &keys {
        let _ = write!(md, "| {} |", cell(k));
        for v in &exp.variants {
            let vals: BTreeSet<String> = v
                .reps
                .iter()
                .filter_map(|r| r.config.get(k))
                .map(data::json_text)
                .collect();
            let text = match vals.len() {
                0 => "—".to_string(),
                1 => vals.into_iter().next().unwrap_or_default(),
                n if n > 3 => format!("varies over repetitions ({n} distinct values)"),
                _ => format!(
                    "varies: {}",
                    vals.into_iter().collect::<Vec<_>>().join(", ")
                ),
            };
            let _ = write!(md, " {} |", cell(&text));
        }
        md.push('\n');
    }
    let srcs: Vec<String> = exp
        .variants
        .iter()
        .map(|v| ctx.sources(exp, v, "config.json", &v.reps.iter().collect::<Vec<_>>()))
        .collect();
    let _ = writeln!(md, "\nSource: {}.\n", srcs.join(", "));
}

/// The per-variant results table.
fn results_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let cols: Vec<(&Variant, Vec<(&Rep, &Summary)>)> = exp
        .variants
        .iter()
        .map(|v| (v, v.summaries().collect()))
        .collect();
    if cols.iter().all(|(_, s)| s.is_empty()) {
        let _ = writeln!(md, "No readable `summary.json` in this experiment.\n");
        return;
    }
    let _ = writeln!(md, "**Results** (from `summary.json`):\n");
    let _ = write!(md, "| metric |");
    for (v, _) in &cols {
        let _ = write!(md, " {} |", cell(&v.name));
    }
    let _ = write!(md, "\n|---|");
    for _ in &cols {
        let _ = write!(md, "---:|");
    }
    let _ = write!(md, "\n| repetitions |");
    for (_, s) in &cols {
        let _ = write!(md, " {} |", s.len());
    }
    md.push('\n');
    let mut kinds = BTreeSet::new();
    let mut row = |label: String, get: &dyn Fn(&Summary) -> Option<f64>, md: &mut String| {
        let cells: Vec<Option<Spread>> = cols
            .iter()
            .map(|(_, ss)| Spread::of(&ss.iter().filter_map(|(_, s)| get(s)).collect::<Vec<_>>()))
            .collect();
        if cells.iter().all(Option::is_none) {
            return;
        }
        let _ = write!(md, "| {} |", cell(&label));
        for c in &cells {
            match c {
                Some(s) => {
                    kinds.insert(kind_name(s));
                    let _ = write!(md, " {} |", fmt_spread(s));
                }
                None => {
                    let _ = write!(md, " — |");
                }
            }
        }
        md.push('\n');
    };
    for (label, get) in METRICS {
        row(label.to_string(), get, md);
    }
    let error_kinds: BTreeSet<String> = cols
        .iter()
        .flat_map(|(_, ss)| {
            ss.iter()
                .flat_map(|(_, s)| s.errors_by_kind.keys().cloned())
        })
        .collect();
    for k in error_kinds {
        let key = k.clone();
        row(
            format!("errors: {k}"),
            &move |s: &Summary| Some(*s.errors_by_kind.get(&key).unwrap_or(&0) as f64),
            md,
        );
    }
    let srcs: Vec<String> = cols
        .iter()
        .filter(|(_, ss)| !ss.is_empty())
        .map(|(v, ss)| {
            ctx.sources(
                exp,
                v,
                "summary.json",
                &ss.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "\n{} Source: {}.\n",
        spread_kind_note(&kinds),
        srcs.join(", ")
    );
}

/// Per variant, the repetitions that have a `failover` map, with it.
type FailoverCols<'a> = Vec<(&'a Variant, Vec<(&'a Rep, &'a BTreeMap<String, f64>)>)>;

/// The variants of `exp` with a `field` breakdown (`failover` or
/// `integration`) in some `summary.json`, each with the repetitions that
/// have one.
fn breakdown_cols<'a>(exp: &'a Experiment, field: &str) -> FailoverCols<'a> {
    exp.variants
        .iter()
        .map(|v| {
            (
                v,
                v.summaries()
                    .filter_map(|(r, s)| {
                        let m = match field {
                            "integration" => s.integration.as_ref(),
                            _ => s.failover.as_ref(),
                        };
                        m.map(|f| (r, f))
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, f)| !f.is_empty())
        .collect()
}

/// The failover (or integration) breakdown with the paper's table beside:
/// Table 1 reads `summary.json` `failover`, Table 2 `integration`.
fn breakdown_md(ctx: &Ctx, exp: &Experiment, paper_table: &str, md: &mut String) {
    let field = if paper_table == "table2" {
        "integration"
    } else {
        "failover"
    };
    let cols = breakdown_cols(exp, field);
    let paper_rows = paper::table(ctx.paper, paper_table);
    let name = if paper_table == "table2" {
        "Table 2"
    } else {
        "Table 1"
    };
    let title = if paper_table == "table2" {
        "Integration breakdown"
    } else {
        "Failover breakdown"
    };
    if cols.is_empty() {
        if matches!(exp.name.as_str(), "table1-failover" | "table2-integration") {
            let _ = writeln!(
                md,
                "No `{field}` breakdown in any `summary.json` of this experiment.\n"
            );
        }
        return;
    }
    let _ = writeln!(
        md,
        "**{title}** (ms; from `summary.json` `{field}`), beside the paper's {name}:\n"
    );
    let _ = write!(md, "| step | paper (ms) |");
    for (v, _) in &cols {
        let _ = write!(md, " {} |", cell(&v.name));
    }
    let _ = write!(md, "\n|---|---:|");
    for _ in &cols {
        let _ = write!(md, "---:|");
    }
    md.push('\n');
    let ours: BTreeSet<String> = cols
        .iter()
        .flat_map(|(_, fs)| fs.iter().flat_map(|(_, f)| f.keys().cloned()))
        .collect();
    let mut rows: Vec<(String, String, String)> = Vec::new(); // (key, label, paper value)
    for p in &paper_rows {
        rows.push((
            p.key.clone(),
            format!("{} (`{}`)", p.label, p.key),
            p.value.clone(),
        ));
    }
    for k in &ours {
        if !paper_rows.iter().any(|p| &p.key == k) {
            rows.push((k.clone(), format!("`{k}`"), "—".to_string()));
        }
    }
    let mut kinds = BTreeSet::new();
    for (key, label, pv) in rows {
        let _ = write!(md, "| {} | {} |", cell(&label), cell(&pv));
        for (_, fs) in &cols {
            let xs: Vec<f64> = fs
                .iter()
                .filter_map(|(_, f)| f.get(&key).copied())
                .collect();
            match Spread::of(&xs) {
                Some(s) => {
                    kinds.insert(kind_name(&s));
                    let _ = write!(md, " {} |", fmt_spread(&s));
                }
                None => {
                    let _ = write!(md, " not measured |");
                }
            }
        }
        md.push('\n');
    }
    let cites: BTreeSet<&str> = paper_rows.iter().map(|p| p.citation.as_str()).collect();
    let srcs: Vec<String> = cols
        .iter()
        .map(|(v, fs)| {
            ctx.sources(
                exp,
                v,
                "summary.json",
                &fs.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "\nPaper rows are matched to our steps by the `key` column of paper_values.csv. Paper: {}. {} Source: {}.\n",
        cites.into_iter().collect::<Vec<_>>().join("; "),
        spread_kind_note(&kinds),
        srcs.join(", ")
    );
}

/// The paper's Table 3 as a table.
fn paper_table3_md(ctx: &Ctx, md: &mut String) {
    let rows = paper::table(ctx.paper, "table3");
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "The paper's Table 3 (reported overheads, percent reduction from two standard servers):\n"
    );
    let _ = writeln!(
        md,
        "| scheme | reported overhead | citation |\n|---|---:|---|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            cell(&r.label),
            cell(&paper::with_unit(r)),
            cell(&r.citation)
        );
    }
    md.push('\n');
}

/// Our overhead: 1 - X / X_two (and against one server), from medians.
fn overhead_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    // Only a reference measured in the same experiment (same run, shape).
    if exp.variant("two-servers").is_none() {
        return;
    }
    let reference = exp;
    let two = reference
        .variant("two-servers")
        .and_then(crate::plot::median_throughput);
    let one = reference
        .variant("one-server")
        .and_then(crate::plot::median_throughput);
    let Some(two) = two.filter(|x| *x > 0.0) else {
        return;
    };
    let measured: Vec<(&Variant, f64)> = exp
        .variants
        .iter()
        .filter(|v| !matches!(v.name.as_str(), "one-server" | "two-servers"))
        .filter_map(|v| crate::plot::median_throughput(v).map(|x| (v, x)))
        .collect();
    if measured.is_empty() {
        return;
    }
    let paper_coral = paper::table(ctx.paper, "table3")
        .into_iter()
        .find(|r| r.key == "coral")
        .map(paper::with_unit);
    let _ = writeln!(
        md,
        "**Throughput overhead** (from median `throughput_rps`): overhead = 1 − X / X_two, X_two = {} req/s{}.\n",
        fmt_num(two),
        one.map(|o| format!(", X_one = {} req/s", fmt_num(o))).unwrap_or_default()
    );
    let _ = writeln!(md, "| variant | X (req/s) | overhead vs two servers | overhead vs one server | paper (CoRAL) |\n|---|---:|---:|---:|---:|");
    for (v, x) in &measured {
        let vs_one = one
            .filter(|o| *o > 0.0)
            .map(|o| format!("{} %", fmt_num(100.0 * (1.0 - x / o))))
            .unwrap_or("—".into());
        let _ = writeln!(
            md,
            "| {} | {} | {} % | {} | {} |",
            cell(&v.name),
            fmt_num(*x),
            fmt_num(100.0 * (1.0 - x / two)),
            vs_one,
            paper_coral.clone().unwrap_or("—".into())
        );
    }
    let src_ref = format!(
        "`{}/{}/{{one-server,two-servers}}/rep-*/summary.json`",
        ctx.root(),
        reference.name
    );
    let src_ours: Vec<String> = measured
        .iter()
        .map(|(v, _)| {
            ctx.sources(
                exp,
                v,
                "summary.json",
                &v.summaries().map(|(r, _)| r).collect::<Vec<_>>(),
            )
        })
        .collect();
    let note = "reference measured in the same experiment";
    let _ = writeln!(md, "\nOverhead is negative when a variant beat the reference. {note}. Source: {src_ref}, {}.\n", src_ours.join(", "));
}

/// Throughput before and after a fault against the unreplicated bounds
/// (the reading of Fig. 2), for variants whose summaries have both and whose
/// experiment measured the bounds itself, in the same run and shape
/// ([`crate::plot::experiment_peaks`]); a bound from another experiment is
/// never used.
fn bounds_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let pct = |x: Option<f64>, of: Option<f64>| match (x, of.filter(|o| *o > 0.0)) {
        (Some(x), Some(o)) => format!("{} %", fmt_num(100.0 * x / o)),
        _ => "—".to_string(),
    };
    let mut rows = Vec::new();
    for v in &exp.variants {
        let (one, two) = crate::plot::experiment_peaks(exp, v, (None, None));
        if one.is_none() && two.is_none() {
            continue;
        }
        let get = |f: fn(&Summary) -> Option<f64>| {
            let xs: Vec<f64> = v.summaries().filter_map(|(_, s)| f(s)).collect();
            crate::plot::stats::median(&xs)
        };
        let before = get(|s| s.throughput_before_rps);
        let after = get(|s| s.throughput_after_rps);
        if before.is_none() && after.is_none() {
            continue;
        }
        rows.push(format!(
            "| {} | {} | {} | {} | {} | {} |",
            cell(&v.name),
            before.map(fmt_num).unwrap_or("—".into()),
            pct(before, two),
            after.map(fmt_num).unwrap_or("—".into()),
            pct(after, one),
            get(|s| Some(s.requests_lost as f64))
                .map(fmt_num)
                .unwrap_or("—".into())
        ));
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "**Against the unreplicated bounds measured in this experiment** (the dashed lines of Fig. 2; medians):\n"
    );
    let _ = writeln!(
        md,
        "| variant | before fault (req/s) | of two servers | from fault + 1 s (req/s) | of one server | requests lost |\n|---|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(md, "{r}");
    }
    let _ = writeln!(
        md,
        "\nSource: `throughput_before_rps` and `throughput_after_rps` of this experiment's `summary.json` files, \
         `throughput_rps` of its own `one-server`/`two-servers` variants (`{}/{}/*/rep-*/summary.json`).\n",
        ctx.root(),
        exp.name
    );
}

/// Paper settings beside the configurations found in the tree.
fn settings_md(ctx: &Ctx, md: &mut String) {
    let rows = paper::table(ctx.paper, "settings");
    if rows.is_empty() {
        return;
    }
    let lookups: &[(&str, &[&str])] = &[
        ("clients", &["clients"]),
        (
            "reply_size",
            &["size", "reply_size", "size_bytes", "reply_bytes"],
        ),
        (
            "heartbeat",
            &["coral.heartbeat_ms", "heartbeat_ms", "heartbeat"],
        ),
        ("lan", &["lan_mbit", "lan_rate", "lan", "rate"]),
        ("server_cpu", &["server_cpu"]),
        ("fault", &["fault"]),
        ("app", &["app"]),
    ];
    let _ = writeln!(md, "## Paper settings and ours\n");
    let _ = writeln!(md, "| setting | paper | ours (every value found in config.json) | paper citation |\n|---|---|---|---|");
    for r in rows {
        let keys = lookups
            .iter()
            .find(|(k, _)| *k == r.key)
            .map(|(_, ks)| *ks)
            .unwrap_or(&[]);
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for e in ctx.experiments {
            for v in &e.variants {
                for rep in &v.reps {
                    if let Some(x) = data::config_lookup(&rep.config, keys) {
                        seen.insert(data::json_text(x));
                    } else if data::config_has_key(&rep.config, keys) {
                        seen.insert("not set (null)".to_string());
                    }
                }
            }
        }
        let ours = if seen.is_empty() {
            "not recorded".to_string()
        } else {
            seen.into_iter().collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            cell(&r.label),
            cell(&paper::with_unit(r)),
            cell(&ours),
            cell(&r.citation)
        );
    }
    let _ = writeln!(
        md,
        "\nSource: `{}/*/*/rep-*/config.json`; the testbed settings are in the appendix.\n",
        ctx.root()
    );
}

/// The testbed settings the paper's hardware had without saying so, with the
/// values found in the tree and why they are set so.
fn testbed_md(ctx: &Ctx, md: &mut String) {
    const ROWS: [(&str, &str, &str); 3] = [
        (
            "cfs_period_us",
            "CFS period of the server CPU quota (µs)",
            "A quota is a budget per period; a host that spent it stands still until the next one. \
             With the kernel's 100 ms period, 0.1 core means up to 90 ms of standstill per period \
             (one unreplicated server showed 85 ms p99 latencies from that alone): a stop-and-go \
             CPU. With 10 ms the longest standstill is 9 ms: a slow CPU, like the paper's. The \
             period is longer only where the quota would fall under the kernel's 1 ms minimum \
             (below 0.1 core).",
        ),
        (
            "bridge_nf_call",
            "netfilter hooks on the LAN switch (`bridge-nf-call-*`)",
            "The switch is a Linux bridge; with these on (the default in every new namespace \
             when br_netfilter is in the kernel) every frame crossing it runs the IP netfilter \
             hooks as if routed, about 28 % of a log round trip here. A real switch runs none, so \
             they are 0 in the switch namespace, for every service alike.",
        ),
        (
            "lan_qdisc",
            "queueing on the shaped switch ports",
            "A plain FIFO at the port rate made heartbeats wait behind downloads and the log \
             channel for up to its 20 ms bound, and the pair declared each other failed. A \
             switch that trusts DSCP serves EF (the heartbeats) first; the data band still \
             holds 20 ms at the port rate.",
        ),
    ];
    let mut out = String::new();
    for (key, label, why) in ROWS {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for e in ctx.experiments {
            for v in &e.variants {
                for rep in &v.reps {
                    if let Some(x) = data::config_lookup(&rep.config, &[key]) {
                        seen.insert(data::json_text(x));
                    } else if data::config_has_key(&rep.config, &[key]) {
                        seen.insert(
                            if key == "lan_qdisc" {
                                "none (no rate limit)"
                            } else {
                                "none (no quota)"
                            }
                            .to_string(),
                        );
                    }
                }
            }
        }
        if seen.is_empty() {
            continue;
        }
        let vals = seen.into_iter().collect::<Vec<_>>().join(", ");
        let _ = writeln!(out, "| {} | {} | {} |", cell(label), cell(&vals), cell(why));
    }
    if out.is_empty() {
        return;
    }
    let _ = writeln!(md, "### Testbed settings\n");
    let _ = writeln!(
        md,
        "| setting | ours (every value found in config.json) | why |\n|---|---|---|"
    );
    md.push_str(&out);
    let _ = writeln!(
        md,
        "\nSource: `conditions` of `{}/*/*/rep-*/config.json`.\n",
        ctx.root()
    );
}

/// The report's opening paragraph.
fn intro_md(ctx: &Ctx, md: &mut String) {
    let _ = writeln!(md, "# CoRAL reproduction: results\n");
    let _ = writeln!(
        md,
        "Written by `coral-exp report` from the results tree `{}` and the paper's numbers in {}. \
         Nothing here is typed by hand: every number of ours comes from the `summary.json` or `config.json` \
         named under its table, every figure from the `requests.csv` named in its caption (drawn by `coral-exp plot`). \
         Paper: N. Aghdaie and Y. Tamir, \"Fast Transparent Failover for Reliable Web Service\", \
         PDCS 2003 (the \"paper\" below). The summary table comes first; the configurations of every run are in \
         the appendix at the end.\n",
        ctx.results.display(),
        ctx.paper_origin
    );
}

/// The experiments present, in report order, with their headings.
fn ordered<'a>(ctx: &Ctx<'a>) -> Vec<(&'a Experiment, String, String)> {
    let mut ordered: Vec<(&Experiment, String, String)> = Vec::new();
    for (name, heading, what) in KNOWN {
        if let Some(e) = ctx.experiments.iter().find(|e| e.name == *name) {
            ordered.push((e, format!("{heading} (`{name}`)"), what.to_string()));
        }
    }
    for e in ctx.experiments {
        if !KNOWN.iter().any(|(n, _, _)| *n == e.name) {
            ordered.push((e, format!("Experiment `{}`", e.name), String::new()));
        }
    }
    ordered
}

/// One experiment's section (its configuration goes to the appendix).
fn experiment_md(ctx: &Ctx, e: &Experiment, heading: &str, what: &str, md: &mut String) {
    let _ = writeln!(md, "## {heading}\n");
    if !what.is_empty() {
        let _ = writeln!(md, "{what}\n");
    }
    if e.name == "table3-overhead" {
        paper_table3_md(ctx, md);
    }
    if e.name == crate::plot::lb::EXPERIMENT {
        let root = ctx.root();
        let w = lb::Where {
            figures: ctx.figures,
            out_dir: ctx.out_dir,
            root: &root,
        };
        lb::section(w, e, md);
    }
    results_md(ctx, e, md);
    // The paper's experiments read their own same-run references.
    let ours = crate::catalog::NAMES.contains(&e.name.as_str())
        || ["double-fault", false_detection::EXPERIMENT].contains(&e.name.as_str());
    sections::paper_md(ctx, e, md);
    reintegration::md(ctx, e, md);
    false_detection::md(ctx, e, md);
    if e.name != "baseline" && !ours {
        bounds_md(ctx, e, md);
    }
    if !ours {
        overhead_md(ctx, e, md);
    }
    if !e.name.ends_with("-sweep") && e.name != false_detection::EXPERIMENT {
        let table = if e.name == "table2-integration" {
            "table2"
        } else {
            "table1"
        };
        breakdown_md(ctx, e, table, md);
    }
    figures_md(ctx, e, md);
}

/// Renders the whole report.
fn render(ctx: &Ctx) -> String {
    let mut md = String::new();
    intro_md(ctx, &mut md);
    headline::section(ctx, &mut md);
    settings_md(ctx, &mut md);

    let ordered = ordered(ctx);
    let _ = writeln!(md, "## Contents\n");
    for (e, heading, _) in &ordered {
        let reps: usize = e.variants.iter().map(|v| v.reps.len()).sum();
        let _ = writeln!(
            md,
            "- {heading}: {} variant(s), {reps} repetition(s)",
            e.variants.len()
        );
    }
    md.push('\n');

    for (e, heading, what) in &ordered {
        experiment_md(ctx, e, heading, what, &mut md);
    }
    if !ctx
        .experiments
        .iter()
        .any(|e| e.name == "table2-integration")
    {
        let _ = writeln!(
            md,
            "## Table 2: integration of a new server after failover\n\n\
             Not reproduced: this results tree has no `table2-integration` results, so the paper's Table 2 \
             (integration of a new server, back to duplex) has no counterpart here.\n"
        );
    }

    runtime::section(ctx.experiments, &mut md);
    let root = ctx.root();
    for section in TREE_SECTIONS {
        section(ctx.results, &root, &mut md);
    }

    let warnings: Vec<&String> = ctx
        .experiments
        .iter()
        .flat_map(|e| {
            e.variants
                .iter()
                .flat_map(|v| v.reps.iter().flat_map(|r| r.warnings.iter()))
        })
        .collect();
    if !warnings.is_empty() {
        let _ = writeln!(md, "## Problems found in the results tree\n");
        for w in warnings {
            let _ = writeln!(md, "- {}", ctx.shown(Path::new(w)));
        }
        md.push('\n');
    }
    appendix_md(ctx, &ordered, &mut md);
    md
}

/// The appendix: the testbed settings and every experiment's configuration.
fn appendix_md(ctx: &Ctx, ordered: &[(&Experiment, String, String)], md: &mut String) {
    let _ = writeln!(md, "## Appendix: configurations\n");
    testbed_md(ctx, md);
    for (e, _, _) in ordered {
        let _ = writeln!(md, "### `{}`\n", e.name);
        config_md(ctx, e, md);
    }
}

/// `coral-exp report`; returns the process exit code.
pub fn run(a: ReportArgs) -> Result<i32> {
    let experiments = data::load_tree(&a.results)?;
    if experiments.is_empty() {
        anyhow::bail!(
            "no results under {} (expected <experiment>/<variant>/rep-<n>/)",
            a.results.display()
        );
    }
    let fallback = a.paper_values == Path::new(DEFAULT_PAPER_VALUES);
    let (paper_values, origin) = paper::load(&a.paper_values, fallback)?;
    let out = a.out.clone().unwrap_or_else(|| a.results.join("REPORT.md"));
    let out_dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let origin = format!("`{origin}`");
    let ctx = Ctx {
        results: &a.results,
        figures: &a.figures,
        out_dir: &out_dir,
        paper: &paper_values,
        paper_origin: &origin,
        experiments: &experiments,
    };
    let mut md = render(&ctx);
    if let Some(other) = &a.against {
        let rows = agreement::compare(&experiments, &data::load_tree(other)?);
        let _ = writeln!(md, "## Run-to-run agreement\n");
        if rows.is_empty() {
            let _ = writeln!(
                md,
                "`{}` shares no experiment and variant with this run: nothing compared.\n",
                other.display()
            );
        } else {
            agreement::markdown(
                &rows,
                &a.results.display().to_string(),
                &other.display().to_string(),
                false,
                &mut md,
            );
        }
    }
    std::fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
    let tables = tables::write(&a.figures, &experiments, &paper_values)?;
    tracing::info!("wrote {} table(s) to {}", tables.len(), a.figures.display());
    tracing::info!(
        "wrote {} ({} experiment(s))",
        out.display(),
        experiments.len()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/a/results"), Path::new("/a/paper-figures/x.png")),
            PathBuf::from("../paper-figures/x.png")
        );
        assert_eq!(
            relative_path(Path::new("/a"), Path::new("/a/b/x.png")),
            PathBuf::from("b/x.png")
        );
        assert_eq!(
            relative_path(Path::new("/a/./r/../r"), Path::new("/a/f.png")),
            PathBuf::from("../f.png")
        );
    }

    #[test]
    fn spread_cells() {
        assert_eq!(fmt_spread(&Spread::of(&[2.0]).unwrap()), "2");
        assert_eq!(
            fmt_spread(&Spread::of(&[1.0, 2.0, 4.0]).unwrap()),
            "2 (1–4)"
        );
        assert_eq!(fmt_spread(&Spread::of(&[3.0, 3.0]).unwrap()), "3");
    }

    #[test]
    fn markdown_cells_escape_pipes() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
