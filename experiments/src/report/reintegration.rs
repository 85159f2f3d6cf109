//! The report's reading of reintegration (paper section 3.2, Table 2;
//! docs/DESIGN.md 6) for `table2-integration` and `double-fault`: per
//! variant, the window of vulnerability (first fault to fault tolerance
//! restored: the survivor's `integration` event, summary.json
//! `vulnerability_ms`), the integration total, and what the clients saw
//! through every fault and the join (errors, reconnects, lost requests,
//! digest mismatches, summed over repetitions); for `double-fault` also
//! the clients' throughput and latency in each phase of the run (split at
//! the two faults and the restoration) and the experiment's figure.

use super::{cell, fmt_spread, Ctx};
use crate::plot::data::Experiment;
use crate::plot::double_fault;
use crate::plot::stats::Spread;
use std::fmt::Write as _;

/// The section part, for the two experiments that join a new server.
pub(super) fn md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    if !matches!(exp.name.as_str(), "table2-integration" | "double-fault") {
        return;
    }
    let _ = writeln!(
        md,
        "**Window of vulnerability** (first fault to both nodes duplex again, ms), the join's total and what the clients saw; median over repetitions, spread in parentheses:\n"
    );
    let _ = writeln!(
        md,
        "| variant | reps | window (ms) | integration total (ms) | stall during the join (ms) | p99 (ms) | errors | reconnects | lost | digest mismatches |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for v in &exp.variants {
        let extra = |key: &str| -> Vec<f64> {
            v.reps
                .iter()
                .filter_map(|r| crate::measure::extra_value(&r.dir, key))
                .collect()
        };
        let window = extra("vulnerability_ms");
        let stall = extra("join_stall_ms");
        let p99: Vec<f64> = v.summaries().map(|(_, s)| s.p99_ms).collect();
        let total: Vec<f64> = v
            .summaries()
            .filter_map(|(_, s)| s.integration.as_ref()?.get("total").copied())
            .collect();
        let sum = |f: fn(&workload::summary::Summary) -> u64| -> u64 {
            v.summaries().map(|(_, s)| f(s)).sum()
        };
        let show = |xs: &[f64]| {
            Spread::of(xs)
                .map(|s| fmt_spread(&s))
                .unwrap_or_else(|| "not measured".into())
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.name),
            v.summaries().count(),
            show(&window),
            show(&total),
            show(&stall),
            show(&p99),
            sum(|s| s.errors),
            sum(|s| s.reconnects),
            sum(|s| s.requests_lost),
            sum(|s| s.digest_mismatches),
        );
    }
    let _ = writeln!(
        md,
        "\nSource: `{}/{}/*/rep-*/summary.json`. The stall during the join: per client, the longest gap between successful completions overlapping the join (the simplex node's `join-accepted` to its `integration`), the largest over the clients; p99 is the whole run's (both faults included). Connections served alone end after their next reply with `Connection: close` (not an error, not a reconnect).\n",
        ctx.root(),
        exp.name
    );
    if exp.name == double_fault::EXPERIMENT {
        phases_md(ctx, exp, md);
    }
}

/// Per variant and phase of `double-fault`: what the clients saw (medians
/// over repetitions, spread in parentheses), then the figure.
fn phases_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let _ = writeln!(
        md,
        "**The clients across both faults**, by phase (median over repetitions, spread in parentheses):\n\n\
         | variant | phase | reps | duration (ms) | throughput (req/s) | p50 (ms) | p99 (ms) | errors | longest stall (ms) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut problems = Vec::new();
    for v in &exp.variants {
        let mut reps = Vec::new();
        for r in &v.reps {
            match double_fault::analyze(r) {
                Ok(a) => reps.push(a),
                Err(e) => problems.push(format!("{}/rep-{}: {e:#}", v.name, r.n)),
            }
        }
        for name in double_fault::PHASES {
            let ps: Vec<&double_fault::Phase> = reps
                .iter()
                .filter_map(|a| a.phases.iter().find(|p| p.name == name))
                .collect();
            if ps.is_empty() {
                continue;
            }
            let col = |f: fn(&double_fault::Phase) -> f64| {
                let xs: Vec<f64> = ps.iter().map(|p| f(p)).collect();
                Spread::of(&xs).map(|s| fmt_spread(&s)).unwrap_or_default()
            };
            let _ = writeln!(
                md,
                "| {} | {name} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&v.name),
                ps.len(),
                col(|p| (p.span.1 - p.span.0) as f64 / 1e6),
                col(|p| p.rps),
                col(|p| p.p50_ms),
                col(|p| p.p99_ms),
                col(|p| p.errors as f64),
                col(|p| p.stall_ms),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nPhases: warm-up end to the first fault; the window of vulnerability (to the first `integration` event); duplex again (to the second fault); after it, to the run's end. Throughput counts completions in the phase, latencies the requests started in it, a stall is counted in the phase where it ends. Source: `{}/{}/*/rep-*/{{requests.csv,events.csv,summary.json}}`.\n",
        ctx.root(),
        exp.name
    );
    for p in &problems {
        let _ = writeln!(md, "- could not analyse {p}");
    }
    for v in &exp.variants {
        let png = ctx
            .figures
            .join(format!("{}.png", double_fault::stem(&v.name)));
        if png.is_file() {
            let rep = v.typical_rep().map(|r| r.n).unwrap_or(0);
            let rel = super::relative_path(ctx.out_dir, &png);
            let _ = writeln!(
                md,
                "![{} / {}: throughput and latency across both faults (rep-{rep})]({})\n",
                exp.name,
                v.name,
                rel.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::report::testtree::{joined, Tree};
    use serde_json::json;

    #[test]
    fn the_window_and_the_clients_of_every_repetition() {
        let t = Tree::new();
        let mut s = joined(&[("total", 2.0)]);
        s.errors = 1;
        t.rep(
            "double-fault",
            "single-role-spare",
            1,
            &s,
            json!({"vulnerability_ms": 1500.0, "join_stall_ms": 12.0}),
        );
        t.rep(
            "double-fault",
            "single-role-spare",
            2,
            &joined(&[("total", 4.0)]),
            json!({"vulnerability_ms": 1700.0, "join_stall_ms": 14.0}),
        );
        let r = t.report();
        let row = r
            .lines()
            .find(|l| l.starts_with("| single-role-spare |"))
            .unwrap_or_else(|| panic!("no row in\n{r}"));
        assert_eq!(
            row, "| single-role-spare | 2 | 1600 (1500–1700) | 3 (2–4) | 13 (12–14) | 9 | 1 | 0 | 0 | 0 |",
            "{r}"
        );
        assert!(r.contains("## A second fault after reintegration"), "{r}");
    }

    #[test]
    fn table2_shows_single_role_and_dual_role_each_on_its_row() {
        let t = Tree::new();
        t.rep(
            "table2-integration",
            "single-role-spare-joins",
            1,
            &joined(&[("total", 12.0)]),
            json!({"vulnerability_ms": 1510.0, "join_stall_ms": 5.0}),
        );
        t.rep(
            "table2-integration",
            "dual-role-spare-joins",
            1,
            &joined(&[("total", 20.0)]),
            json!({"vulnerability_ms": 1520.0, "join_stall_ms": 4.0}),
        );
        let r = t.report();
        let row = |name: &str| {
            r.lines()
                .find(|l| l.starts_with(&format!("| {name} |")) && l.contains("| 9 |"))
                .unwrap_or_else(|| panic!("no {name} row in\n{r}"))
                .to_string()
        };
        assert_eq!(
            row("single-role-spare-joins"),
            "| single-role-spare-joins | 1 | 1510 | 12 | 5 | 9 | 0 | 0 | 0 | 0 |"
        );
        assert_eq!(
            row("dual-role-spare-joins"),
            "| dual-role-spare-joins | 1 | 1520 | 20 | 4 | 9 | 0 | 0 | 0 | 0 |"
        );
        // The integration breakdown beside the paper's Table 2: a column each.
        let head = r
            .lines()
            .find(|l| l.starts_with("| step | paper (ms) |"))
            .unwrap_or_else(|| panic!("no breakdown in\n{r}"));
        assert!(
            head.contains("dual-role-spare-joins") && head.contains("single-role-spare-joins"),
            "{head}"
        );
    }
}
