//! The "Run time" section: how long each experiment's runs took, from what
//! the runner records in every repetition's `events.csv` (`topology-up` and
//! `topology-down`, each with its own duration `in N ms`), so a reader can
//! check the time budgets without timing anything again.

use crate::plot::data::{self, Experiment, Rep};
use crate::plot::stats::fmt_num;
use std::fmt::Write as _;

/// `... in N ms` of an event's detail, in ms.
fn in_ms(detail: &str) -> Option<f64> {
    detail
        .rsplit_once(" in ")?
        .1
        .strip_suffix(" ms")?
        .trim()
        .parse()
        .ok()
}

/// One repetition's wall time (s): topology up, load, topology down.
pub fn rep_wall_s(rep: &Rep) -> Option<f64> {
    let events = data::load_events(rep).ok()?;
    let find = |name: &str| {
        events
            .iter()
            .find(|e| e.source == "coral-exp" && e.event == name)
    };
    let (up, down) = (find("topology-up")?, find("topology-down")?);
    let span = down.t_unix_ns.checked_sub(up.t_unix_ns)? as f64 / 1e9;
    Some(span + (in_ms(&up.detail)? + in_ms(&down.detail)?) / 1e3)
}

/// Writes the section for `experiments` (nothing when no run recorded it).
pub fn section(experiments: &[Experiment], md: &mut String) {
    let mut rows = Vec::new();
    let mut total = 0.0;
    for e in experiments {
        let walls: Vec<f64> = e
            .variants
            .iter()
            .flat_map(|v| v.reps.iter())
            .filter_map(rep_wall_s)
            .collect();
        if walls.is_empty() {
            continue;
        }
        let sum: f64 = walls.iter().sum();
        total += sum;
        rows.push(format!(
            "| {} | {} | {} | {} |",
            e.name,
            walls.len(),
            fmt_num(sum.round()),
            fmt_num(sum / walls.len() as f64)
        ));
    }
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Run time\n");
    let _ = writeln!(
        md,
        "| experiment | runs | seconds | seconds per run |\n|---|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(md, "{r}");
    }
    let _ = writeln!(
        md,
        "\nIn all {} s ({} min) of runs, from each repetition's `events.csv` (`topology-up` to `topology-down`, \
         plus the time each of those took); the build and the figures are not included.\n",
        fmt_num(total.round()),
        fmt_num((total / 60.0 * 10.0).round() / 10.0)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testtree::{summary, Tree};
    use serde_json::json;

    #[test]
    fn wall_time_from_the_runners_events() {
        assert_eq!(in_ms("cx12ab in 216 ms"), Some(216.0));
        assert_eq!(in_ms("no time"), None);
        let t = Tree::new();
        t.rep("baseline", "one-server", 1, &summary(1.0, 1.0), json!({}));
        t.file(
            "baseline/one-server/rep-1/events.csv",
            "t_unix_ns,host,source,event,detail\n\
             1000000000,client,coral-exp,topology-up,rp01 in 500 ms\n\
             7000000000,client,coral-exp,topology-down,rp01 in 500 ms\n",
        );
        t.rep("baseline", "two-servers", 1, &summary(1.0, 1.0), json!({}));
        let exps = data::load_tree(&t.root()).unwrap();
        let mut md = String::new();
        section(&exps, &mut md);
        assert!(md.contains("| baseline | 1 | 7 | 7 |"), "{md}");
        assert!(md.contains("In all 7 s (0.1 min)"), "{md}");
        // Without recorded times: no section, no invented number.
        t.file(
            "baseline/one-server/rep-1/events.csv",
            "t_unix_ns,host,source,event,detail\n",
        );
        let exps = data::load_tree(&t.root()).unwrap();
        let mut md = String::new();
        section(&exps, &mut md);
        assert!(md.is_empty());
    }
}
