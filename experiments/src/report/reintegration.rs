//! The report's reading of reintegration (paper section 3.2, Table 2;
//! docs/DESIGN.md 6) for `table2-integration` and `double-fault`: per
//! variant, the window of vulnerability (first fault to fault tolerance
//! restored: the survivor's `integration` event, summary.json
//! `vulnerability_ms`), the integration total, and what the clients saw
//! through every fault and the join (errors, reconnects, lost requests,
//! digest mismatches, summed over repetitions).

use super::{cell, fmt_spread, Ctx};
use crate::plot::data::Experiment;
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
}
