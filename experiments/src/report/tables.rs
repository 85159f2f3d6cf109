//! The paper's tables by the paper's names, beside the figures:
//! `table1.md`, `table2.md` and `table3.md` in the figures directory, each
//! the paper's rows with ours beside them (median and spread over
//! repetitions), written by `coral-exp report`.

use super::paper::{self, PaperValue};
use super::{cell, fmt_spread};
use crate::plot::data::{Experiment, Variant};
use crate::plot::stats::Spread;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which breakdown of a `summary.json` a table reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Steps {
    /// `failover` (Table 1).
    Failover,
    /// `integration` (Table 2).
    Integration,
}

fn steps_of(v: &Variant, which: Steps, key: &str) -> Option<Spread> {
    let xs: Vec<f64> = v
        .summaries()
        .filter_map(|(_, s)| {
            let m = match which {
                Steps::Failover => s.failover.as_ref(),
                Steps::Integration => s.integration.as_ref(),
            };
            m?.get(key).copied()
        })
        .collect();
    Spread::of(&xs)
}

fn steps(v: &Variant, key: &str) -> Option<Spread> {
    steps_of(v, Steps::Failover, key)
}

/// A breakdown table: the paper's rows of `table` beside `v`'s `failover`
/// steps of the same key.
fn breakdown(rows: &[&PaperValue], e: &Experiment, v: &Variant, md: &mut String) {
    breakdown_of(rows, e, v, Steps::Failover, md)
}

fn breakdown_of(rows: &[&PaperValue], e: &Experiment, v: &Variant, which: Steps, md: &mut String) {
    let _ = writeln!(
        md,
        "| operation | paper (ms) | ours (ms), `{}/{}` ×{} |\n|---|---:|---:|",
        e.name,
        v.name,
        v.summaries().count()
    );
    for r in rows {
        let ours = steps_of(v, which, &r.key)
            .map(|s| fmt_spread(&s))
            .unwrap_or("not measured".into());
        let _ = writeln!(md, "| {} | {} | {ours} |", cell(&r.label), r.value);
    }
}

fn table1(experiments: &[Experiment], values: &[PaperValue]) -> String {
    let mut md = String::from("# Table 1: breakdown of failover latency\n\n");
    let rows = paper::table(values, "table1");
    match experiments
        .iter()
        .find(|e| e.name == "table1-failover")
        .and_then(|e| e.variant("dual-role").map(|v| (e, v)))
    {
        Some((e, v)) => {
            breakdown(&rows, e, v, &mut md);
            if let Some(d) = steps(v, "detection_ms") {
                let _ = writeln!(
                    md,
                    "\nNot in the paper's table (it starts at detection): fault to detection {} ms.",
                    fmt_spread(&d)
                );
            }
        }
        None => md.push_str("No `table1-failover/dual-role` results in this run.\n"),
    }
    md
}

/// The paper's rows of `table` beside one column per variant of `vs`
/// (their `which` steps of the same key).
fn breakdown_cols(
    rows: &[&PaperValue],
    e: &Experiment,
    vs: &[&Variant],
    which: Steps,
    md: &mut String,
) {
    let _ = write!(md, "| operation | paper (ms) |");
    for v in vs {
        let _ = write!(
            md,
            " ours (ms), `{}/{}` ×{} |",
            e.name,
            v.name,
            v.summaries().count()
        );
    }
    let _ = write!(md, "\n|---|---:|");
    for _ in vs {
        md.push_str("---:|");
    }
    md.push('\n');
    for r in rows {
        let _ = write!(md, "| {} | {} |", cell(&r.label), r.value);
        for v in vs {
            let ours = steps_of(v, which, &r.key)
                .map(|s| fmt_spread(&s))
                .unwrap_or("not measured".into());
            let _ = write!(md, " {ours} |");
        }
        md.push('\n');
    }
}

fn table2(experiments: &[Experiment], values: &[PaperValue]) -> String {
    let mut md =
        String::from("# Table 2: integration of a new server with a working simplex server\n\n");
    let rows = paper::table(values, "table2");
    // Every variant with an integration total, one column each (single
    // role and the paper's dual-role configuration).
    let found = experiments
        .iter()
        .find(|e| e.name == "table2-integration")
        .map(|e| {
            let vs: Vec<&Variant> = e
                .variants
                .iter()
                .filter(|v| steps_of(v, Steps::Integration, "total").is_some())
                .collect();
            (e, vs)
        })
        .filter(|(_, vs)| !vs.is_empty());
    match found {
        Some((e, vs)) => {
            breakdown_cols(&rows, e, &vs, Steps::Integration, &mut md);
            for v in &vs {
                if let Some(w) = steps_of(v, Steps::Integration, "witness") {
                    let _ = writeln!(
                        md,
                        "\nNot in the paper's table (it had no witness): `{}`'s witness round trip {} ms, inside the total.",
                        v.name,
                        fmt_spread(&w)
                    );
                }
            }
        }
        None => {
            md.push_str(
                "**Not reproduced**: this run has no `table2-integration` results. The paper's values:\n\n\
                 | operation | paper (ms) |\n|---|---:|\n",
            );
            for r in rows {
                let _ = writeln!(md, "| {} | {} |", cell(&r.label), r.value);
            }
        }
    }
    md
}

fn table3(experiments: &[Experiment], values: &[PaperValue]) -> String {
    let mut md = String::from(
        "# Table 3: throughput overhead (reduction from two standard servers)\n\n\
         | scheme | reported overhead |\n|---|---:|\n",
    );
    for r in paper::table(values, "table3") {
        let _ = writeln!(md, "| {} | {} |", cell(&r.label), paper::with_unit(r));
    }
    let Some(e) = experiments.iter().find(|e| e.name == "table3-overhead") else {
        md.push_str("\nNo `table3-overhead` results in this run.\n");
        return md;
    };
    let mut ours = Vec::new();
    for v in &e.variants {
        let Some(p) = v.name.strip_suffix("two-servers") else {
            continue;
        };
        let Some(x2) = crate::plot::median_throughput(v).filter(|x| *x > 0.0) else {
            continue;
        };
        for role in ["coral-single-role", "coral-dual-role"] {
            let Some(c) = e.variant(&format!("{p}{role}")) else {
                continue;
            };
            let xs: Vec<f64> = c
                .summaries()
                .map(|(_, s)| 100.0 * (1.0 - s.throughput_rps / x2))
                .collect();
            if let Some(s) = Spread::of(&xs) {
                ours.push(format!(
                    "| ours: `{}` against `{}` | {} % |",
                    c.name,
                    v.name,
                    fmt_spread(&s)
                ));
            }
        }
    }
    md.push_str("\nOurs (same run, same quota and application; median over repetitions, spread in parentheses):\n\n| variant | overhead |\n|---|---:|\n");
    for r in ours {
        let _ = writeln!(md, "{r}");
    }
    md
}

/// Writes `table1.md`, `table2.md` and `table3.md` into `dir`; returns them.
pub fn write(
    dir: &Path,
    experiments: &[Experiment],
    values: &[PaperValue],
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for (name, text) in [
        ("table1.md", table1(experiments, values)),
        ("table2.md", table2(experiments, values)),
        ("table3.md", table3(experiments, values)),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testtree::{faulted, joined, summary, Tree};
    use serde_json::json;

    #[test]
    fn tables_by_the_papers_names() {
        let t = Tree::new();
        let steps = [("kernel_ops", 0.4), ("total", 2.0), ("detection_ms", 310.0)];
        t.rep(
            "table1-failover",
            "dual-role",
            1,
            &faulted(1.0, 1.0, 300.0, &steps),
            json!({}),
        );
        t.rep(
            "table3-overhead",
            "cpu010-two-servers",
            1,
            &summary(200.0, 5.0),
            json!({}),
        );
        t.rep(
            "table3-overhead",
            "cpu010-coral-dual-role",
            1,
            &summary(150.0, 5.0),
            json!({}),
        );
        let exps = crate::plot::data::load_tree(&t.root()).unwrap();
        let values = paper::parse(paper::EMBEDDED, "embedded").unwrap();
        let dir = t.root().join("figs");
        write(&dir, &exps, &values).unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        let t1 = read("table1.md");
        assert!(
            t1.contains("| Kernel Notification and Operations | 0.3 | 0.4 |"),
            "{t1}"
        );
        assert!(
            t1.contains("| Identity Preservation: gratuitous ARP | 0.5 | not measured |"),
            "{t1}"
        );
        assert!(
            t1.contains("| Total | 1.5 | 2 |") && t1.contains("fault to detection 310 ms"),
            "{t1}"
        );
        let t2 = read("table2.md");
        assert!(
            t2.contains("**Not reproduced**") && t2.contains("| Total | 11.0 |"),
            "{t2}"
        );
        let t3 = read("table3.md");
        assert!(
            t3.contains("| CoRAL (Active Replication + Logging) | 30 % |"),
            "{t3}"
        );
        assert!(
            t3.contains("| ours: `cpu010-coral-dual-role` against `cpu010-two-servers` | 25 % |"),
            "{t3}"
        );
        // Once reintegration results exist, Table 2 is ours beside the paper's.
        // Single role and dual role, a column each.
        let join = [("total", 12.0), ("task_startup", 7.5), ("witness", 0.4)];
        t.rep(
            "table2-integration",
            "single-role-spare-joins",
            1,
            &joined(&join),
            json!({}),
        );
        let dual = [("total", 20.0), ("task_startup", 9.5)];
        t.rep(
            "table2-integration",
            "dual-role-spare-joins",
            1,
            &joined(&dual),
            json!({}),
        );
        let exps = crate::plot::data::load_tree(&t.root()).unwrap();
        write(&dir, &exps, &values).unwrap();
        let t2 = read("table2.md");
        assert!(
            !t2.contains("Not reproduced")
                && t2.contains("| operation | paper (ms) | ours (ms), `table2-integration/dual-role-spare-joins` ×1 | ours (ms), `table2-integration/single-role-spare-joins` ×1 |")
                && t2.contains("| Fork and Initialize Processes | 6.8 | 9.5 | 7.5 |")
                && t2.contains("| Total | 11.0 | 20 | 12 |")
                && t2.contains("`single-role-spare-joins`'s witness round trip 0.4 ms"),
            "{t2}"
        );
    }
}
