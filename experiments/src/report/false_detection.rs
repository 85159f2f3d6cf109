//! The report's reading of `false-detection` (docs/DESIGN.md 4,
//! "Detection that load does not fool"): per setting (heartbeat, load,
//! quota), the fault-free run time, the false detections counted in it and
//! their rate per 10 minutes against the allowance
//! ([`crate::catalog::false_detections_allowed_per_10_min`]), lease lapses,
//! fences and rejoins, and the heartbeat one-way delay; what the clients
//! saw beside it. The allowance is judged only over 10 minutes or more of
//! runs: a QUICK run is shown, not judged.

use super::{cell, Ctx};
use crate::plot::data::{Experiment, Variant};
use crate::plot::stats::fmt_num;
use std::fmt::Write as _;

/// The experiment this module reads.
pub const EXPERIMENT: &str = "false-detection";

/// The heartbeat (ms) of a `hb-NNNms-…` variant.
fn heartbeat_ms(v: &Variant) -> Option<u64> {
    v.name
        .strip_prefix("hb-")?
        .split_once("ms-")?
        .0
        .parse()
        .ok()
}

fn sum(v: &Variant, key: &str) -> f64 {
    v.reps
        .iter()
        .filter_map(|r| crate::measure::extra_value(&r.dir, key))
        .sum()
}

fn largest(v: &Variant, key: &str) -> Option<f64> {
    v.reps
        .iter()
        .filter_map(|r| crate::measure::extra_value(&r.dir, key))
        .reduce(f64::max)
}

/// The section part.
pub(super) fn md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    if exp.name != EXPERIMENT {
        return;
    }
    let _ = writeln!(
        md,
        "**False detections without any fault** (3 missed heartbeats declare the peer failed; single role with a witness and `rejoin = true`; a false detection is a `peer-failed` of a node that had heard its peer; rates per 10 minutes of run time, summed over repetitions):\n"
    );
    let _ = writeln!(
        md,
        "| setting | heartbeat (ms) | run time (min) | false detections | per 10 min | allowed per 10 min | lease lapses | fences | rejoins | heartbeat one-way delay p50 / p99 / max (ms) | errors | lost | max stall (ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut verdicts = Vec::new();
    for v in &exp.variants {
        let h = heartbeat_ms(v);
        let minutes: f64 = v
            .summaries()
            .map(|(_, s)| s.run_end_unix_ns.saturating_sub(s.run_start_unix_ns) as f64 / 60e9)
            .sum();
        let fd = sum(v, "false_detections");
        let rate = (minutes > 0.0).then(|| fd * 10.0 / minutes);
        let allowed = h.and_then(crate::catalog::false_detections_allowed_per_10_min);
        let delay = ["p50", "p99", "max"]
            .map(|q| {
                largest(v, &format!("hb_delay_{q}_ms"))
                    .map(fmt_num)
                    .unwrap_or_else(|| "—".into())
            })
            .join(" / ");
        let stall = v
            .summaries()
            .map(|(_, s)| s.max_stall_ms)
            .reduce(f64::max)
            .map(fmt_num)
            .unwrap_or_else(|| "—".into());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.name),
            h.map(|h| h.to_string()).unwrap_or_else(|| "?".into()),
            fmt_num(minutes),
            fmt_num(fd),
            rate.map(fmt_num).unwrap_or_else(|| "—".into()),
            allowed.map(|a| a.to_string()).unwrap_or_else(|| "—".into()),
            fmt_num(sum(v, "lease_lapses")),
            fmt_num(sum(v, "fences")),
            fmt_num(sum(v, "rejoins")),
            delay,
            v.summaries().map(|(_, s)| s.errors).sum::<u64>(),
            v.summaries().map(|(_, s)| s.requests_lost).sum::<u64>(),
            stall,
        );
        if let Some(a) = allowed {
            verdicts.push(if minutes < 10.0 {
                format!(
                    "`{}`: {} min of runs, shorter than the 10 minutes the allowance is stated for: not judged.",
                    v.name,
                    fmt_num(minutes)
                )
            } else if fd * 10.0 / minutes <= a as f64 {
                format!(
                    "`{}`: {} false detection(s) in {} min, within the allowance of {a} per 10 minutes.",
                    v.name,
                    fmt_num(fd),
                    fmt_num(minutes)
                )
            } else {
                format!(
                    "`{}`: {} false detection(s) in {} min, **more than the allowance** of {a} per 10 minutes.",
                    v.name,
                    fmt_num(fd),
                    fmt_num(minutes)
                )
            });
        }
    }
    let _ = writeln!(
        md,
        "\nThe heartbeat one-way delay is the peer's send time to the kernel's arrival stamp (both nodes share the machine's clock), the largest of any repetition. A node that loses a race fences and rejoins its peer, so a false detection costs a window without a backup, not the service: the errors, lost requests and longest stall are the clients' whole runs. Source: `{}/{}/*/rep-*/summary.json`.\n",
        ctx.root(),
        exp.name
    );
    for v in verdicts {
        let _ = writeln!(md, "- {v}");
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use crate::report::testtree::{summary, Tree};
    use serde_json::json;

    fn minutes(m: u64) -> workload::summary::Summary {
        let mut s = summary(100.0, 30.0);
        s.run_start_unix_ns = 1_000_000_000;
        s.run_end_unix_ns = s.run_start_unix_ns + m * 60_000_000_000;
        s
    }

    #[test]
    fn the_rate_per_setting_with_its_run_time_judged_over_ten_minutes() {
        let t = Tree::new();
        let e = "false-detection";
        let x = |fd: u64| {
            json!({"false_detections": fd, "lease_lapses": 0, "fences": fd, "rejoins": fd,
                   "hb_delay_p50_ms": 0.05, "hb_delay_p99_ms": 0.2, "hb_delay_max_ms": 3.0})
        };
        t.rep(e, "hb-010ms-1mb-no-quota", 1, &minutes(10), x(0));
        t.rep(e, "hb-010ms-1kb-cpu010", 1, &minutes(10), x(1));
        t.rep(e, "hb-005ms-1mb-no-quota", 1, &minutes(20), x(2));
        t.rep(e, "hb-005ms-1kb-cpu010", 1, &minutes(1), x(0));
        let r = t.report();
        let row = |name: &str| {
            r.lines()
                .find(|l| l.starts_with(&format!("| {name} |")))
                .unwrap_or_else(|| panic!("no row {name} in\n{r}"))
                .to_string()
        };
        assert_eq!(
            row("hb-010ms-1mb-no-quota"),
            "| hb-010ms-1mb-no-quota | 10 | 10 | 0 | 0 | 0 | 0 | 0 | 0 | 0.05 / 0.2 / 3 | 0 | 0 | 30 |"
        );
        assert!(
            row("hb-005ms-1mb-no-quota")
                .starts_with("| hb-005ms-1mb-no-quota | 5 | 20 | 2 | 1 | 1 |"),
            "{r}"
        );
        assert!(r.contains("`hb-010ms-1mb-no-quota`: 0 false detection(s) in 10 min, within the allowance of 0"), "{r}");
        assert!(r.contains("`hb-010ms-1kb-cpu010`: 1 false detection(s) in 10 min, **more than the allowance** of 0"), "{r}");
        assert!(r.contains("`hb-005ms-1mb-no-quota`: 2 false detection(s) in 20 min, within the allowance of 1"), "{r}");
        assert!(
            r.contains("`hb-005ms-1kb-cpu010`: 1 min of runs, shorter than the 10 minutes"),
            "{r}"
        );
        assert!(r.contains("## False detections under load"), "{r}");
    }
}
