//! The "CoRAL versus simple load balancers" section (`lb-compare`): one row
//! per service with fault-free throughput (as a ratio to two unreplicated
//! servers in the same run), latency, and what clients saw across the link
//! cut and at failback; the two figures; what the baselines do better; and
//! the configurations the baselines ran, as rendered into the results tree.

use crate::plot::data::{Experiment, Rep};
use crate::plot::lb::{self, LbRep};
use crate::plot::stats::{fmt_num, Spread};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Where the section finds things and how it names them.
#[derive(Debug, Clone, Copy)]
pub struct Where<'a> {
    /// The figures directory.
    pub figures: &'a Path,
    /// The report's directory (figure links are relative to it).
    pub out_dir: &'a Path,
    /// The results tree as the report names it.
    pub root: &'a str,
}

fn spread(xs: &[f64]) -> String {
    match Spread::of(xs) {
        Some(s) => super::fmt_spread(&s),
        None => "—".into(),
    }
}

fn errors_cell(reps: &[LbRep], get: fn(&LbRep) -> &BTreeMap<String, u64>) -> String {
    let totals: Vec<f64> = reps.iter().map(|r| lb::total(get(r)) as f64).collect();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for r in reps {
        for (k, n) in get(r) {
            *kinds.entry(k.clone()).or_default() += n;
        }
    }
    let mut s = spread(&totals);
    if !kinds.is_empty() {
        let k: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = write!(s, " [all reps: {}]", k.join(", "));
    }
    s
}

/// What the baselines ran: the rendered configuration files of the first
/// repetition of each variant that has one.
const CONFIGS: &[&str] = &["haproxy.cfg", "nginx.conf", "keepalived-server-a.conf"];

/// Writes the section body (after its heading) into `md`.
pub fn section(w: Where, exp: &Experiment, md: &mut String) {
    let _ = writeln!(
        md,
        "Every service runs on the same namespace topology with the same WebStone load (8 keep-alive \
         clients, 1 KB replies) and the same fault: the switch port of the target server is set down \
         (a link cut) and set up again later in the run (failback). The target is resolved when the \
         fault is injected: for a proxy (HAProxy, nginx) the server holding the most established \
         connections, for keepalived the VRRP master, for CoRAL the primary of 192.0.2.100; \
         `two-unreplicated` cuts server-a, which no one replaces. \"At the cut\" counts from the cut \
         to the link restore, \"at failback\" from the restore to the end; a stall is the longest \
         interval one client went without a successful reply, counted in the phase where it began. \
         Fault-free throughput is measured from the end of warm-up to the cut, as a ratio to \
         `two-unreplicated`'s in the same run (both servers serving).\n"
    );
    let (analysed, problems) = analyse(exp);
    let refs = references(&analysed);
    let reference = |topo: &str| refs.get(topo).copied();
    let ref_rps = reference("");
    let _ = writeln!(
        md,
        "| service | reps | fault-free req/s | ratio to two unreplicated | p50 ms | p99 ms | \
         errors at the cut | reconnects | digest mismatches | requests lost | longest stall at the cut (ms) | \
         errors at failback | longest stall at failback (ms) | cut host |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---|"
    );
    let mut rows: Vec<(String, Vec<LbRep>)> = Vec::new();
    for (name, reps) in analysed {
        if reps.is_empty() {
            continue;
        }
        let col = |f: fn(&LbRep) -> f64| spread(&reps.iter().map(f).collect::<Vec<_>>());
        let ratio = match reference(crate::plot::split_topology(&name).1) {
            Some(x) if x > 0.0 => {
                spread(&reps.iter().map(|r| r.before_rps / x).collect::<Vec<_>>())
            }
            _ => "—".into(),
        };
        let hosts: std::collections::BTreeSet<&str> =
            reps.iter().map(|r| r.target.as_str()).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            name,
            reps.len(),
            col(|r| r.before_rps),
            ratio,
            col(|r| r.p50_before_ms),
            col(|r| r.p99_before_ms),
            errors_cell(&reps, |r| &r.cut_errors),
            col(|r| r.reconnects as f64),
            col(|r| r.digest_mismatches as f64),
            col(|r| r.requests_lost as f64),
            col(|r| r.cut_stall_ms),
            errors_cell(&reps, |r| &r.failback_errors),
            col(|r| r.failback_stall_ms),
            hosts.into_iter().collect::<Vec<_>>().join(", ")
        );
        rows.push((name, reps));
    }
    let _ = writeln!(
        md,
        "\nCells: median over repetitions, in parentheses min–max when there are several; a `-docker` row ran on the \
         Docker topology and its ratio is to `two-unreplicated-docker`. \
         Source: `{}/{}/*/rep-*/{{requests.csv,events.csv,summary.json}}` (phases split at the \
         `link-cut` and `link-restore` rows of events.csv).\n",
        w.root, exp.name
    );
    for p in &problems {
        let _ = writeln!(md, "- could not analyse {p}");
    }
    findings(&rows, ref_rps, md);
    for stem in [lb::STALL_STEM, lb::TIMELINE_STEM] {
        let png = w.figures.join(format!("{stem}.png"));
        if png.is_file() {
            let rel = super::relative_path(w.out_dir, &png);
            let _ = writeln!(md, "![{stem}]({})\n", rel.display());
        }
    }
    configs(exp, md);
}

/// Every variant's repetitions analysed (each requests.csv read once), in
/// the section's order, and the repetitions that could not be.
fn analyse(exp: &Experiment) -> (Vec<(String, Vec<LbRep>)>, Vec<String>) {
    let mut problems = Vec::new();
    let analysed = lb::ordered(exp)
        .into_iter()
        .map(|v| {
            let mut reps = Vec::new();
            for r in &v.reps {
                match lb::analyze(r) {
                    Ok(a) => reps.push(a),
                    Err(e) => problems.push(format!("{}/rep-{}: {e:#}", v.name, r.n)),
                }
            }
            (v.name.clone(), reps)
        })
        .collect();
    (analysed, problems)
}

/// The fault-free throughput of the reference per topology: each
/// topology's rows are read against their own reference (a `-docker` row
/// against `two-unreplicated-docker`), the same run and shape only.
fn references(analysed: &[(String, Vec<LbRep>)]) -> BTreeMap<String, f64> {
    analysed
        .iter()
        .filter_map(|(n, r)| {
            let (base, topo) = crate::plot::split_topology(n);
            let xs: Vec<f64> = r.iter().map(|a| a.before_rps).collect();
            (base == lb::REFERENCE)
                .then(|| crate::plot::stats::median(&xs).map(|m| (topo.to_string(), m)))
                .flatten()
        })
        .collect()
}

fn median(reps: &[LbRep], f: fn(&LbRep) -> f64) -> f64 {
    crate::plot::stats::median(&reps.iter().map(f).collect::<Vec<_>>()).unwrap_or(0.0)
}

/// Plain statements drawn from the numbers, then what the baselines do
/// better by construction.
fn findings(rows: &[(String, Vec<LbRep>)], ref_rps: Option<f64>, md: &mut String) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "**What the numbers say** (medians):\n");
    let zero: Vec<&str> = rows
        .iter()
        .filter(|(_, r)| median(r, |a| lb::total(&a.cut_errors) as f64) == 0.0)
        .map(|(n, _)| n.as_str())
        .collect();
    let _ = writeln!(
        md,
        "- No client error across the cut: {}.",
        if zero.is_empty() {
            "none".into()
        } else {
            zero.join(", ")
        }
    );
    let mut by_stall: Vec<(&str, f64)> = rows
        .iter()
        .map(|(n, r)| (n.as_str(), median(r, |a| a.cut_stall_ms)))
        .collect();
    by_stall.sort_by(|a, b| a.1.total_cmp(&b.1));
    let _ = writeln!(
        md,
        "- Longest stall at the cut, shortest first: {}.",
        by_stall
            .iter()
            .map(|(n, s)| format!("{n} {s:.0} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let waited: Vec<&str> = rows
        .iter()
        .filter(|(_, r)| {
            let outage = median(r, |a| {
                a.restore_ns
                    .map(|b| b.saturating_sub(a.cut_ns) as f64 / 1e6)
                    .unwrap_or(f64::INFINITY)
            });
            median(r, |a| a.cut_stall_ms) >= 0.9 * outage
        })
        .map(|(n, _)| n.as_str())
        .collect();
    if !waited.is_empty() {
        let _ = writeln!(
            md,
            "- Stalled until the link came back (their stall is the outage plus TCP's retransmission \
             back-off, not a failover): {}.{}",
            waited.join(", "),
            if waited.contains(&"haproxy-stock") {
                " For haproxy-stock the bound would otherwise be its `timeout server` of 30 s, \
                 then an error."
            } else {
                ""
            }
        );
    }
    let fb: Vec<String> = rows
        .iter()
        .filter(|(_, r)| median(r, |a| lb::total(&a.failback_errors) as f64) > 0.0)
        .map(|(n, r)| {
            format!(
                "{n} ({:.0})",
                median(r, |a| lb::total(&a.failback_errors) as f64)
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "- Errors at failback: {}.",
        if fb.is_empty() {
            "none".into()
        } else {
            fb.join(", ")
        }
    );
    if let Some(x) = ref_rps.filter(|x| *x > 0.0) {
        let mut by_tp: Vec<(&str, f64)> = rows
            .iter()
            .map(|(n, r)| (n.as_str(), median(r, |a| a.before_rps) / x))
            .collect();
        by_tp.sort_by(|a, b| b.1.total_cmp(&a.1));
        let _ = writeln!(
            md,
            "- Fault-free throughput relative to two unreplicated servers, highest first: {}.",
            by_tp
                .iter()
                .map(|(n, r)| format!("{n} {r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(md, "\n**Where a baseline does better.**\n");
    for n in baseline_notes(rows, ref_rps) {
        let _ = writeln!(md, "- {n}");
    }
    md.push('\n');
}

/// The sentences on what the baselines do better: what holds by
/// construction is said to be so; what is measured is printed only when the
/// rows show it.
fn baseline_notes(rows: &[(String, Vec<LbRep>)], ref_rps: Option<f64>) -> Vec<String> {
    let mut out = vec![
        "By construction (not measured here): a proxy keeps no replica state, so both servers serve different requests \
         at once and more can be added behind it, whereas a CoRAL pair spends the backup's CPU and the LAN on logging \
         and forwarding every request and reply; but every request crosses the proxy (an extra hop, and a single point \
         of failure that would need VRRP of its own). A proxy that hides a dead server by resending requests can do so \
         only for requests without side effects, and loses a reply already half-sent, which CoRAL's log covers."
            .to_string(),
    ];
    let get = |name: &str| {
        rows.iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_slice())
    };
    if let Some(k) = get("keepalived") {
        if let Some(x) = ref_rps.filter(|x| *x > 0.0) {
            let ratio = median(k, |a| a.before_rps) / x;
            let like_one = (0.4..=0.6).contains(&ratio);
            out.push(format!(
                "Measured: keepalived's fault-free throughput was {:.2} of two unreplicated servers'{}.",
                ratio,
                if like_one {
                    ", about one server's: only the VRRP master serves, and nothing is added to it"
                } else {
                    ""
                }
            ));
        }
        let errs = median(k, |a| lb::total(&a.cut_errors) as f64);
        let reconn = median(k, |a| a.reconnects as f64);
        if errs > 0.0 || reconn > 0.0 {
            out.push(format!(
                "Measured: keepalived does not keep connections across the move ({} error(s) at the cut, {} reconnect(s), medians).",
                fmt_num(errs),
                fmt_num(reconn)
            ));
        } else {
            out.push("Measured: keepalived's clients saw no error and no reconnect at the cut in the median run.".into());
        }
    }
    if let Some(h) = get("haproxy-tuned") {
        let errs = median(h, |a| lb::total(&a.cut_errors) as f64);
        out.push(if errs == 0.0 {
            "Measured: HAProxy with short timeouts and retries hid the dead server from these GET requests (no error at the cut in the median run), as CoRAL does.".to_string()
        } else {
            format!(
                "Measured: even HAProxy with short timeouts and retries let {} request(s) fail at the cut (median).",
                fmt_num(errs)
            )
        });
    }
    out
}

/// The baselines' configurations as rendered into the first repetition.
fn configs(exp: &Experiment, md: &mut String) {
    let mut shown = Vec::new();
    for v in lb::ordered(exp) {
        let Some(rep): Option<&Rep> = v.reps.first() else {
            continue;
        };
        for f in CONFIGS {
            let p = rep.dir.join("topology").join(f);
            if let Ok(text) = std::fs::read_to_string(&p) {
                shown.push((v.name.clone(), rep.n, f.to_string(), text));
            }
        }
    }
    if shown.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "**Configurations the baselines ran** (rendered by `coral-exp up` from `experiments/templates/`; \
         paths point into each repetition's state directory):\n"
    );
    for (variant, n, file, text) in shown {
        let _ = writeln!(
            md,
            "<details><summary>{variant}: <code>{file}</code> (rep-{n})</summary>\n\n```\n{}\n```\n\n</details>\n",
            text.trim_end()
        );
    }
}
