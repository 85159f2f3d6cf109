//! The report's readings of the paper's experiments (`crate::catalog`):
//! for each, the table that sets our numbers beside the paper's, and one
//! sentence per difference from the paper with its cause. Every number comes
//! from the repetitions' `summary.json` (extra keys written by
//! [`crate::measure`]) or, for Fig. 3, their `requests.csv`; the sentences
//! are chosen by comparing those numbers with the paper's.

use super::{cell, fmt_spread, Ctx};
use crate::plot::data::{self, Experiment, Rep, Variant};
use crate::plot::stats::{self, fmt_num, Spread};
use std::fmt::Write as _;
use workload::summary::Summary;

/// Median and spread over a variant's repetitions of a value read from each.
fn over(v: &Variant, f: impl Fn(&Rep, &Summary) -> Option<f64>) -> Option<Spread> {
    let xs: Vec<f64> = v.summaries().filter_map(|(r, s)| f(r, s)).collect();
    Spread::of(&xs)
}

/// A top-level key [`crate::measure`] added to a repetition's summary.json.
fn extra(r: &Rep, key: &str) -> Option<f64> {
    crate::measure::extra_value(&r.dir, key)
}

/// A `failover` key of a summary.
fn fo(s: &Summary, key: &str) -> Option<f64> {
    s.failover.as_ref().and_then(|m| m.get(key).copied())
}

fn show(s: Option<Spread>) -> String {
    s.as_ref().map(fmt_spread).unwrap_or_else(|| "—".into())
}

fn med(s: Option<Spread>) -> Option<f64> {
    s.map(|s| s.median)
}

fn pct(x: Option<f64>, of: Option<f64>) -> Option<f64> {
    match (x, of) {
        (Some(x), Some(o)) if o > 0.0 => Some(100.0 * x / o),
        _ => None,
    }
}

fn show_pct(x: Option<f64>) -> String {
    x.map(|x| format!("{} %", fmt_num(x)))
        .unwrap_or_else(|| "—".into())
}

/// `server_cpu` of a variant's first repetition's conditions.
fn quota(v: &Variant) -> Option<f64> {
    let r = v.reps.first()?;
    data::config_lookup(&r.config, &["server_cpu"])?.as_f64()
}

fn sources(ctx: &Ctx, exp: &Experiment) -> String {
    format!(
        "Source: `{}/{}/*/rep-*/summary.json`.",
        ctx.root(),
        exp.name
    )
}

/// The paper-specific part of `exp`'s section, if it is one of ours.
pub(super) fn paper_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    match exp.name.as_str() {
        "fig2-throughput" => fig2_md(ctx, exp, md),
        "fig3-latency" => fig3_md(ctx, exp, md),
        "table1-failover" => table1_md(ctx, exp, md),
        "table3-overhead" => table3_md(ctx, exp, md),
        "detection-sweep" => detection_md(ctx, exp, md),
        "scale-sweep" => scale_md(ctx, exp, md),
        "reply-size-sweep" => reply_md(ctx, exp, md),
        _ => {}
    }
}

/// CPU per request (ms) of the server hosts, median over repetitions.
fn cpu_per_req(v: &Variant) -> Option<f64> {
    med(over(v, |r, _| extra(r, "cpu_ms_per_request")))
}

/// A `headline` row of paper_values.csv: (value, tolerance).
fn headline(ctx: &Ctx, key: &str) -> Option<(f64, super::headline::Tolerance)> {
    let p = super::paper::table(ctx.paper, "headline")
        .into_iter()
        .find(|p| p.key == key)?;
    Some((
        p.value.parse().ok()?,
        super::headline::Tolerance::parse(&p.tolerance)?,
    ))
}

/// The paper's CoRAL overhead (Table 3), percent.
fn paper_overhead(ctx: &Ctx) -> Option<f64> {
    super::paper::table(ctx.paper, "table3")
        .into_iter()
        .find(|r| r.key == "coral")
        .and_then(|r| r.value.parse::<f64>().ok())
}

/// Failed plus lost requests of a summary.
fn failed_or_lost(s: &Summary) -> f64 {
    (s.errors + s.requests_lost) as f64
}

fn fig2_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let corals: Vec<&Variant> = exp
        .variants
        .iter()
        .filter(|v| {
            v.name
                .trim_start_matches(crate::catalog::INPROC_PREFIX)
                .starts_with("coral")
        })
        .collect();
    if corals.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "**Fig. 2 read as numbers** (medians over repetitions, spread in parentheses; the peaks are this experiment's \
         own `one-server`/`two-servers` variants of the same connection mode, application, quota and topology, measured in the same run; \
         no share is computed without them):\n"
    );
    let _ = writeln!(md, "| variant | before fault (req/s) | of two servers | from fault + 1 s (req/s) | of one server | max stall (ms) | errors | requests lost | server CPU per request (ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut notes = Vec::new();
    for v in &corals {
        let (one, two) = crate::plot::experiment_peaks(exp, v, (None, None));
        if (one, two) == (None, None) {
            notes.push(format!(
                "`{}`: no unreplicated variant of the same shape in this experiment: no share of the bounds.",
                v.name
            ));
        }
        let before = over(v, |_, s| s.throughput_before_rps);
        let after = over(v, |_, s| s.throughput_after_rps);
        let b2 = pct(med(before), two);
        let a1 = pct(med(after), one);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.name),
            show(before),
            show_pct(b2),
            show(after),
            show_pct(a1),
            show(over(v, |_, s| Some(s.max_stall_ms))),
            show(over(v, |_, s| Some(s.errors as f64))),
            show(over(v, |_, s| Some(s.requests_lost as f64))),
            cpu_per_req(v).map(fmt_num).unwrap_or("—".into())
        );
        notes.extend(fig2_notes(ctx, exp, v, (b2, a1), (med(before), med(after))));
    }
    let _ = writeln!(
        md,
        "\nWhich figure is Fig. 2: `coral-keep-alive` (`paper-figures/fig2.png`; every variant's own in `paper-figures/{}/`), because CoRAL's claim is that live connections survive the fault; \
         `coral-connection-per-request` is drawn too, as WebStone 2.0 ran (a new connection per request), so the paper's figure mixes both effects. {}\n",
        crate::plot::VARIANTS_DIR,
        sources(ctx, exp)
    );
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
    md.push('\n');
}

/// The unreplicated `two-servers` variant compared with CoRAL variant `v`.
fn two_servers_of<'a>(exp: &'a Experiment, v: &Variant) -> Option<&'a Variant> {
    let (name, topo) = crate::plot::split_topology(&v.name);
    let mode = if name.starts_with(crate::catalog::INPROC_PREFIX) {
        crate::catalog::INPROC_PREFIX
    } else {
        ""
    };
    let cpr = if name.ends_with("connection-per-request") {
        "-connection-per-request"
    } else {
        ""
    };
    exp.variant(&format!("{mode}two-servers{cpr}{topo}"))
}

/// The sentences under Fig. 2 for CoRAL variant `v`, each printed only when
/// the numbers beside it support it. `shares`: before as % of two servers,
/// after as % of one; `rates`: before and after (req/s).
fn fig2_notes(
    ctx: &Ctx,
    exp: &Experiment,
    v: &Variant,
    shares: (Option<f64>, Option<f64>),
    rates: (Option<f64>, Option<f64>),
) -> Vec<String> {
    let mut notes = Vec::new();
    let paper_before = paper_overhead(ctx).map(|o| 100.0 - o);
    if let (Some(b), Some((pv, tol))) = (shares.0, headline(ctx, "fig2_before")) {
        let (ok, by) = tol.verdict(pv, b, "%");
        if ok {
            notes.push(format!(
                "`{}`: before the fault CoRAL ran at {} % of two unreplicated servers, as the paper's system ran at its maximum duplex throughput ({} % of two servers by its Table 3; {by}).",
                v.name,
                fmt_num(b),
                paper_before.map(fmt_num).unwrap_or("?".into())
            ));
        } else {
            let coral_cpu = cpu_per_req(v);
            let unrep_cpu = two_servers_of(exp, v).and_then(cpu_per_req);
            let why = match (coral_cpu, unrep_cpu) {
                (Some(c), Some(u)) if c > u => format!(
                    " Measured: within the same {} -core quota per host our CoRAL spends {} ms of server CPU per request against {} ms for an unreplicated server. Not measured here: which part of CoRAL's work (the front's relay of client packets, the reply log to the peer) costs most.",
                    quota(v).map(fmt_num).unwrap_or("?".into()),
                    fmt_num(c),
                    fmt_num(u)
                ),
                (Some(c), Some(u)) => format!(
                    " Server CPU per request does not explain it ({} ms for CoRAL against {} ms unreplicated); the cause is not measured here.",
                    fmt_num(c),
                    fmt_num(u)
                ),
                _ => " The cause is not measured in this run (no CPU per request recorded).".into(),
            };
            notes.push(format!(
                "`{}`: before the fault CoRAL ran at {} % of two unreplicated servers, where the paper's system ran at {} % ({by}).{why}",
                v.name,
                fmt_num(b),
                fmt_num(pv)
            ));
        }
    }
    if let (Some(a), Some(after_x), Some(before_x)) = (shares.1, rates.1, rates.0) {
        if after_x < before_x {
            notes.push(format!(
                "`{}`: after the fault throughput fell from {} to {} req/s ({} % of one unreplicated server): the drop the paper shows when simplex mode generates every reply on one host.",
                v.name,
                fmt_num(before_x),
                fmt_num(after_x),
                fmt_num(a)
            ));
        } else {
            notes.push(format!(
                "`{}`: after the fault throughput did not fall (from {} to {} req/s, {} % of one server), unlike the paper's Fig. 2. Hypothesis, not measured here: in duplex mode our CoRAL is bounded by work that simplex mode no longer does (relaying and logging), so the survivor alone serves at least as much as the pair did.",
                v.name,
                fmt_num(before_x),
                fmt_num(after_x),
                fmt_num(a)
            ));
        }
    }
    let lost: u64 = v.summaries().map(|(_, s)| s.requests_lost).sum();
    let failed: f64 = v.summaries().map(|(_, s)| failed_or_lost(s)).sum();
    if failed > 0.0 {
        notes.push(format!(
            "`{}`: {} request(s) failed or were lost across the fault over {} run(s) ({lost} lost: sent and never answered), where the paper's clients saw none.",
            v.name,
            fmt_num(failed),
            v.summaries().count()
        ));
    }
    notes
}

fn fig3_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let _ = writeln!(md, "**Fig. 3 read as numbers** (typical repetition: median `max_stall_ms`; latencies of requests started within 1 s of the fault, from its `requests.csv`):\n");
    let _ = writeln!(md, "| variant | rep | p50 before fault (ms) | longest latency near the fault (ms) | max stall (ms) | detection (ms) | failover transition (ms) | errors | requests lost |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut notes = Vec::new();
    for v in &exp.variants {
        let Some(rep) = v.typical_rep() else { continue };
        let Some(s) = rep.summary.as_ref() else {
            continue;
        };
        let Ok(records) = data::load_requests(rep) else {
            continue;
        };
        let fault = s.fault_at_unix_ns;
        let near: Vec<f64> = records
            .iter()
            .filter(|r| fault.is_some_and(|f| r.start_unix_ns.abs_diff(f) <= 1_000_000_000))
            .map(|r| r.latency_us as f64 / 1e3)
            .collect();
        let before: Vec<f64> = records
            .iter()
            .filter(|r| {
                r.is_ok()
                    && r.start_unix_ns >= s.warmup_end_unix_ns
                    && fault.is_none_or(|f| r.end_unix_ns < f)
            })
            .map(|r| r.latency_us as f64 / 1e3)
            .collect();
        let longest = near.iter().copied().fold(f64::NAN, f64::max);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.name),
            rep.n,
            stats::median(&before).map(fmt_num).unwrap_or("—".into()),
            fmt_num(longest),
            fmt_num(s.max_stall_ms),
            fo(s, "detection_ms").map(fmt_num).unwrap_or("—".into()),
            fo(s, "total").map(fmt_num).unwrap_or("—".into()),
            s.errors,
            s.requests_lost
        );
        notes.extend(fig3_notes(v, rep, s));
    }
    let _ = writeln!(
        md,
        "\nThe paper plots latencies in seconds; ours are in ms. The paper gives its latencies only as a figure, not as numbers, so ours are not compared with them. {}\n",
        sources(ctx, exp)
    );
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
    md.push('\n');
}

/// The sentences under Fig. 3 for one variant's typical repetition, each
/// printed only when its numbers support it.
fn fig3_notes(v: &Variant, rep: &Rep, s: &Summary) -> Vec<String> {
    let mut notes = Vec::new();
    let det = fo(s, "detection_ms");
    let hb = data::config_lookup(&rep.config, &["coral.heartbeat_ms", "heartbeat_ms"])
        .and_then(|x| x.as_f64());
    let misses =
        data::config_lookup(&rep.config, &["coral.misses", "misses"]).and_then(|x| x.as_f64());
    let setting = match (misses, hb) {
        (Some(m), Some(h)) => format!(": {} missed heartbeats of {} ms", fmt_num(m), fmt_num(h)),
        _ => String::new(),
    };
    if let Some(d) = det.filter(|_| s.max_stall_ms > 0.0) {
        let share = 100.0 * d / s.max_stall_ms;
        let transition = fo(s, "total").map(fmt_num).unwrap_or("?".into());
        if share >= 50.0 && s.max_stall_ms < 1000.0 {
            notes.push(format!(
                "`{}`: the gap at the fault lasts {} ms, {} % of it fault detection ({} ms{setting}), as in the paper, where the gap is \"a fraction of a second\" and mostly detection; our failover transition itself took {transition} ms.",
                v.name,
                fmt_num(s.max_stall_ms),
                fmt_num(share),
                fmt_num(d)
            ));
        } else {
            notes.push(format!(
                "`{}`: the gap at the fault lasts {} ms and fault detection ({} ms{setting}) is {} % of it: unlike the paper, where the gap is \"a fraction of a second\" and mostly detection. Our failover transition itself took {transition} ms.",
                v.name,
                fmt_num(s.max_stall_ms),
                fmt_num(d),
                fmt_num(share)
            ));
        }
    }
    if let (Some(d), Some(t)) = (det, fo(s, "total")) {
        let rest = s.max_stall_ms - d - t;
        if rest > 100.0 {
            notes.push(format!(
                "`{}`: {} ms of the gap is neither detection nor the transition. Hypothesis, not measured here: requests and acknowledgements sent into the cut link are lost, and the client's TCP resends them only after its retransmission timeout (Linux's minimum is 200 ms), doubling on each further loss.",
                v.name,
                fmt_num(rest)
            ));
        }
    }
    if s.errors + s.requests_lost > 0 {
        notes.push(format!(
            "`{}`: {} request(s) failed and {} were lost (sent, never answered) across the fault, where the paper's clients saw none.",
            v.name, s.errors, s.requests_lost
        ));
    }
    notes
}

fn table1_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let paper = super::paper::table(ctx.paper, "table1");
    let pv = |k: &str| {
        paper
            .iter()
            .find(|p| p.key == k)
            .and_then(|p| p.value.parse::<f64>().ok())
    };
    let _ = writeln!(md, "**Table 1, p95 beside the median** (ms over repetitions; the paper gives one value per row):\n");
    let _ = writeln!(
        md,
        "| variant | reps | step | paper | median | p95 | max |\n|---|---:|---|---:|---:|---:|---:|"
    );
    let mut notes = Vec::new();
    for v in &exp.variants {
        let n = v.summaries().filter(|(_, s)| s.failover.is_some()).count();
        for key in [
            "kernel_ops",
            "user_ops",
            "gratuitous_arp",
            "outside_ping",
            "total",
            "detection_ms",
            "address_move_ms",
        ] {
            let xs: Vec<f64> = v.summaries().filter_map(|(_, s)| fo(s, key)).collect();
            if xs.is_empty() {
                continue;
            }
            let m = stats::median(&xs);
            let p95 = stats::percentile(&xs, 95.0);
            let mx = stats::percentile(&xs, 100.0);
            let _ = writeln!(
                md,
                "| {} | {} | `{}` | {} | {} | {} | {} |",
                cell(&v.name),
                n,
                key,
                pv(key).map(fmt_num).unwrap_or("—".into()),
                m.map(fmt_num).unwrap_or("—".into()),
                p95.map(fmt_num).unwrap_or("—".into()),
                mx.map(fmt_num).unwrap_or("—".into())
            );
            if let (Some(p), Some(m)) = (pv(key), m) {
                if m > 2.0 * p || m < 0.5 * p {
                    let restored = med(over(v, |r, _| extra(r, "takeover_restored")));
                    notes.push(format!(
                        "`{}` `{key}`: {} ms against the paper's {} ms. {}",
                        v.name,
                        fmt_num(m),
                        fmt_num(p),
                        cause(key, m > p, restored, mx)
                    ));
                }
            }
        }
    }
    let _ = writeln!(
        md,
        "\nRow mapping (docs/DESIGN.md section 5): kernel notification and operations = snapshot of the shadow state, TCP_REPAIR rebuild, the witness grant, adding the address, reinjection; \
         user-level notification and operations = handing sockets to the HTTP server and the listener on the address; identity preservation = gratuitous ARP and the outside host's ping. \
         `single-role-backup-cut` is the primary taking the address its failed backup fronted (the `simplex-address` event: no connection to rebuild); `dual-role` is the survivor rebuilding the failed node's connections, with `address_move_ms` the address it also takes over. \
         `detection_ms` (fault to `peer-failed`) is not in the paper's table, which starts at detection. {}\n",
        sources(ctx, exp)
    );
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
    md.push('\n');
}

/// Why a Table 1 row differs from the paper's (`slower`: ours is larger;
/// `max`: the slowest repetition's value): a measurement where the numbers
/// show it, otherwise a hypothesis said to be one.
fn cause(key: &str, slower: bool, restored: Option<f64>, max: Option<f64>) -> String {
    let hypothesis = |why: &str| format!("Not measured here; a likely cause: {why}");
    match (key, slower) {
        ("kernel_ops", true) => hypothesis(&format!(
            "this row includes the witness grant round trip (never two voices, docs/DESIGN.md section 4), which the paper did not have, and the TCP_REPAIR rebuild of {} connection(s).",
            restored.map(fmt_num).unwrap_or("the".into())
        )),
        ("kernel_ops", false) => hypothesis("a modern CPU runs the snapshot, the repair of each socket and the address change far faster than a 350 MHz Pentium II running Linux 2.4."),
        ("user_ops", true) => hypothesis("handing rebuilt sockets to the HTTP server and opening the listener goes through the async runtime's task hand-off, which the paper's shared-memory flag did not need."),
        ("user_ops", false) => hypothesis("our user-level step is a flag and a task hand-off in one process, on a CPU an order of magnitude faster than the paper's."),
        ("gratuitous_arp", false) | ("outside_ping", false) => hypothesis("our LAN is veth pairs and a Linux bridge in one machine (no wire, no NIC), where the paper crossed a 100 Mb/s Ethernet switch."),
        ("gratuitous_arp", true) | ("outside_ping", true) => match max.filter(|m| *m >= 100.0) {
            Some(m) => format!(
                "Measured: the slowest repetition took {} ms, at least one of the 100 ms intervals after which the ARP is resent while the outside host's reply is awaited, so the late reply is in this row.",
                fmt_num(m)
            ),
            None => hypothesis("the outside host's reply is awaited before this step ends, and its scheduling on a loaded machine adds to it."),
        },
        ("total", _) => "It is the sum of the rows above; the rows that differ say what is known of why.".into(),
        (_, _) => hypothesis("a different machine and a virtual LAN."),
    }
}

fn table3_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let paper_coral = super::paper::table(ctx.paper, "table3")
        .into_iter()
        .find(|r| r.key == "coral")
        .and_then(|r| r.value.parse::<f64>().ok());
    let mut prefixes: Vec<String> = exp
        .variants
        .iter()
        .filter_map(|v| v.name.strip_suffix("two-servers").map(str::to_string))
        .collect();
    prefixes.sort();
    if prefixes.is_empty() {
        let _ = writeln!(md, "No `two-servers` variant: overhead not computed.\n");
        return;
    }
    let _ = writeln!(md, "**Table 3, ours** (overhead = 1 − X / X_two, the paper's definition, both servers serving at once in the same run; also against one server; medians over repetitions):\n");
    let _ = writeln!(md, "| server CPU quota (cores/host) | application | variant | X (req/s) | overhead vs two servers | overhead vs one server | p50 (ms) | p99 (ms) | server CPU per request (ms) | machine CPU per request (ms) |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut notes = Vec::new();
    for p in &prefixes {
        let get = |n: &str| exp.variant(&format!("{p}{n}"));
        let x = |v: &Variant| med(over(v, |_, s| Some(s.throughput_rps)));
        let two = get("two-servers").and_then(x);
        let one = get("one-server").and_then(x);
        let inproc = crate::catalog::INPROC_PREFIX;
        let others = exp.variants.iter().filter(|v| {
            v.name.starts_with(p.as_str())
                && !matches!(&v.name[p.len()..], "one-server" | "two-servers")
                // `inproc-…` variants form their own group.
                && (p.starts_with(inproc) || !v.name.starts_with(inproc))
        });
        let group: Vec<&Variant> = [get("one-server"), get("two-servers")]
            .into_iter()
            .flatten()
            .chain(others)
            .collect();
        for v in group {
            let n = &v.name[p.len()..];
            let xv = x(v);
            let ov = |r: Option<f64>| match (xv, r) {
                (Some(a), Some(b)) if b > 0.0 => Some(100.0 * (1.0 - a / b)),
                _ => None,
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                quota(v).map(fmt_num).unwrap_or("none".into()),
                app(v),
                cell(&v.name),
                show(over(v, |_, s| Some(s.throughput_rps))),
                show_pct(ov(two)),
                show_pct(ov(one)),
                show(over(v, |_, s| Some(s.p50_ms))),
                show(over(v, |_, s| Some(s.p99_ms))),
                show(over(v, |r, _| extra(r, "cpu_ms_per_request"))),
                show(over(v, |r, _| extra(r, "machine_cpu_ms_per_request")))
            );
            if n.starts_with("coral") && over(v, |r, _| extra(r, "log_rtt_p50_ms")).is_some() {
                notes.push(format!(
                    "`{}`: log round trip per reply (handed to the log until the backup's ack, the primaries' `log_rtt_*_ms`) p50 {} ms, p99 {} ms",
                    v.name,
                    show(over(v, |r, _| extra(r, "log_rtt_p50_ms"))),
                    show(over(v, |r, _| extra(r, "log_rtt_p99_ms")))
                ));
            }
            if n.starts_with("coral") {
                if let (Some(o), Some(pc)) = (ov(two), paper_coral) {
                    let unrep = get("two-servers").and_then(cpu_per_req);
                    let sentence =
                        table3_sentence(ctx, (o, pc), (cpu_per_req(v), unrep), pct(two, one));
                    notes.push(format!(
                        "Quota {} core(s)/host, `{}` overhead {}",
                        quota(v).map(fmt_num).unwrap_or("none".into()),
                        v.name,
                        sentence
                    ));
                }
            }
        }
    }
    let _ = writeln!(md, "\n{}\n", sources(ctx, exp));
    for n in app_costs(exp, &prefixes) {
        let _ = writeln!(md, "- {n}");
    }
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
    md.push('\n');
}

/// The sentence under Table 3 for one CoRAL row: `o` ours, `pc` the paper's
/// overhead (%); `cpu`: server CPU per request of CoRAL and of an unreplicated
/// server (ms); `two_of_one`: two servers' throughput as % of one's.
fn table3_sentence(
    ctx: &Ctx,
    (o, pc): (f64, f64),
    cpu: (Option<f64>, Option<f64>),
    two_of_one: Option<f64>,
) -> String {
    let tol = headline(ctx, "table3_overhead")
        .map(|(_, t)| t)
        .unwrap_or(super::headline::Tolerance::Abs(10.0));
    let (ok, by) = tol.verdict(pc, o, "%");
    let head = format!(
        "{} % against the paper's {} % ({by})",
        fmt_num(o),
        fmt_num(pc)
    );
    if ok {
        return format!("{head}: within the tolerance of paper_values.csv.");
    }
    let cpu_text = match cpu {
        (Some(c), Some(u)) => format!(
            "server CPU per request is {} ms for CoRAL against {} ms unreplicated",
            fmt_num(c),
            fmt_num(u)
        ),
        _ => "server CPU per request was not recorded".into(),
    };
    match (o > pc, cpu, two_of_one) {
        (true, (Some(c), Some(u)), _) if c > u => format!(
            "{head}. Measured: {cpu_text}, and the quota charges all of it to the servers. Not measured here: which part of CoRAL's work (the front's relay, the reply log) costs most."
        ),
        (false, _, Some(t)) if t < 150.0 => format!(
            "{head}. Measured: two unreplicated servers reach only {} % of one server's throughput, so the servers are not what bounds throughput at this quota (the LAN or the client machine is) and CoRAL's extra work shows less in throughput; {cpu_text}.",
            fmt_num(t)
        ),
        _ => format!("{head}; {cpu_text}. The cause is not measured here."),
    }
}

/// A variant's application mode from its first repetition's config.json
/// (`app`): `cgi` (a process per request), `inproc`, or "not recorded".
fn app(v: &Variant) -> String {
    v.reps
        .first()
        .and_then(|r| data::config_lookup(&r.config, &["app"]))
        .map(data::json_text)
        .unwrap_or_else(|| "not recorded".into())
}

/// What one request costs an unreplicated server in each application mode:
/// the `one-server` variants' server CPU per request (cgroup), per quota.
fn app_costs(exp: &Experiment, prefixes: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in prefixes {
        let Some(one) = exp.variant(&format!("{p}one-server")) else {
            continue;
        };
        let (mode, cost) = (app(one), cpu_per_req(one));
        let Some(cost) = cost else { continue };
        let what = match mode.as_str() {
            "cgi" => "with the CGI application (a `webstone-cgi` process started per request, as WebStone 2.0 ran under the paper's Apache)",
            "inproc" => "with the in-process application (no process per request)",
            _ => "(application mode not recorded)",
        };
        out.push(format!(
            "Unreplicated, one request costs {} ms of server CPU {what} at a quota of {} core(s)/host (`{}`, cgroup CPU over the load / completed requests).",
            fmt_num(cost),
            quota(one).map(fmt_num).unwrap_or("no".into()),
            one.name
        ));
    }
    // Side by side where both modes ran at the same quota.
    for p in prefixes
        .iter()
        .filter(|p| !p.starts_with(crate::catalog::INPROC_PREFIX))
    {
        let cgi_one = exp.variant(&format!("{p}one-server"));
        let q = cgi_one.and_then(quota).map(fmt_num).unwrap_or("no".into());
        let cgi = cgi_one.and_then(cpu_per_req);
        let inproc = exp
            .variant(&format!("{}{p}one-server", crate::catalog::INPROC_PREFIX))
            .and_then(cpu_per_req);
        if let (Some(c), Some(i)) = (cgi, inproc) {
            if i > 0.0 {
                out.push(format!(
                    "At a quota of {q} core(s)/host the CGI application costs {}× the in-process one per request ({} against {} ms), so CoRAL's own per-request work weighs {} in the CGI rows' overhead than in the in-process rows'.",
                    fmt_num(c / i),
                    fmt_num(c),
                    fmt_num(i),
                    if c > i { "less" } else { "more" }
                ));
            }
        }
    }
    out
}

/// One heartbeat row: (interval, median stall, false detections without
/// quota, false detections with quota, median detection).
type DetRow = (String, Option<f64>, f64, f64, Option<f64>);

fn detection_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let hbs = heartbeats(exp);
    // The quota'd fault-free runs: `hb-NNNms-no-fault-cpuNNN`.
    let quota_run = |h: &str| {
        exp.variants
            .iter()
            .find(|v| v.name.starts_with(&format!("hb-{h}ms-no-fault-cpu")))
    };
    let q = hbs
        .first()
        .and_then(|h| quota_run(h))
        .and_then(quota)
        .map(fmt_num)
        .unwrap_or("?".into());
    let _ = writeln!(md, "**Heartbeat interval against failover time and cost** (3 missed heartbeats declare the peer failed; `cut` runs cut the primary and, like `no-fault`, run without a CPU quota; `no-fault-cpuNNN` runs are loaded, fault-free, at {q} core per server host; medians over repetitions):\n");
    let _ = writeln!(md, "| heartbeat (ms) | detection (ms) | client stall at the cut (ms) | errors | false detections without quota (before the cut + no-fault runs) | false detections at {q} core/host | throughput at {q} core/host (req/s) | requests lost at {q} core/host | server CPU per request at {q} core/host (ms) | machine CPU per request, no fault (ms) | heartbeat one-way delay p99 / max at {q} core/host (ms) | lease lapses, no fault (all runs) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows: Vec<DetRow> = Vec::new();
    for h in &hbs {
        let cutv = exp.variant(&format!("hb-{h}ms-cut"));
        let quiet = exp.variant(&format!("hb-{h}ms-no-fault"));
        let quota_v = quota_run(h);
        let (f_free, n_free) = false_detections(&[cutv, quiet]);
        let (f_quota, n_quota) = false_detections(&[quota_v]);
        let det = cutv.and_then(|v| over(v, |_, s| fo(s, "detection_ms")));
        let stall = cutv.and_then(|v| over(v, |_, s| Some(s.max_stall_ms)));
        let machine = quiet.or(quota_v);
        let lapses: f64 = [quiet, quota_v]
            .iter()
            .flatten()
            .flat_map(|v| v.reps.iter())
            .filter_map(|r| extra(r, "lease_lapses"))
            .sum();
        let delay = format!(
            "{} / {}",
            show(quota_v.and_then(|v| over(v, |r, _| extra(r, "hb_delay_p99_ms")))),
            show(quota_v.and_then(|v| over(v, |r, _| extra(r, "hb_delay_max_ms"))))
        );
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} in {} | {} in {} | {} | {} | {} | {} | {} | {} |",
            h.trim_start_matches('0'),
            show(det),
            show(stall),
            show(cutv.and_then(|v| over(v, |_, s| Some(s.errors as f64)))),
            fmt_num(f_free),
            n_free,
            fmt_num(f_quota),
            n_quota,
            show(quota_v.and_then(|v| over(v, |_, s| Some(s.throughput_rps)))),
            show(quota_v.and_then(|v| over(v, |_, s| Some(s.requests_lost as f64)))),
            show(quota_v.and_then(|v| over(v, |r, _| extra(r, "cpu_ms_per_request")))),
            show(machine.and_then(|v| over(v, |r, _| extra(r, "machine_cpu_ms_per_request")))),
            delay,
            fmt_num(lapses)
        );
        rows.push((
            h.trim_start_matches('0').to_string(),
            med(stall),
            f_free,
            f_quota,
            med(det),
        ));
    }
    let total = |key: &str| -> f64 {
        exp.variants
            .iter()
            .flat_map(|v| v.reps.iter())
            .filter_map(|r| extra(r, key))
            .sum()
    };
    let _ = writeln!(md, "\nThe paper names this trade-off (section 4.2: faster heartbeats detect sooner but cost CPU) without measuring it; it used 100 ms. A false detection is a `peer-failed` of a node that had heard its peer, with no fault injected. The heartbeat one-way delay is the peer's send time to the kernel's arrival stamp (both nodes share the machine's clock), the larger node's value. Across every run of this sweep: {} node(s) fenced after losing a race, {} rejoined their peer. {}\n", fmt_num(total("fences")), fmt_num(total("rejoins")), sources(ctx, exp));
    let period_ms = hbs
        .first()
        .and_then(|h| quota_run(h))
        .and_then(|v| v.reps.first())
        .and_then(|r| data::config_lookup(&r.config, &["cfs_period_us"]))
        .and_then(|x| x.as_f64())
        .map(|us| us / 1e3);
    let cpu = hbs.first().and_then(|h| quota_run(h)).and_then(quota);
    for n in detection_notes(&rows, &q, cpu, period_ms) {
        let _ = writeln!(md, "- {n}");
    }
    md.push('\n');
}

/// The heartbeat intervals of the sweep's variants (`hb-NNNms-...`), as
/// named, sorted.
fn heartbeats(exp: &Experiment) -> Vec<String> {
    let mut hbs: Vec<String> = exp
        .variants
        .iter()
        .filter_map(|v| {
            v.name
                .strip_prefix("hb-")
                .and_then(|r| r.split_once("ms-"))
                .map(|(h, _)| h.to_string())
        })
        .collect();
    hbs.sort();
    hbs.dedup();
    hbs
}

/// The false detections of the variants `vs`, and their runs and run time
/// (minutes, for a rate) as a cell.
fn false_detections(vs: &[Option<&Variant>]) -> (f64, String) {
    let reps: Vec<&Rep> = vs.iter().flatten().flat_map(|v| v.reps.iter()).collect();
    let n: f64 = reps
        .iter()
        .filter_map(|r| extra(r, "false_detections"))
        .sum();
    let minutes: f64 = vs
        .iter()
        .flatten()
        .flat_map(|v| v.summaries())
        .map(|(_, s)| s.run_end_unix_ns.saturating_sub(s.run_start_unix_ns) as f64 / 60e9)
        .sum();
    (
        n,
        format!("{} run(s), {} min", reps.len(), fmt_num(minutes)),
    )
}

/// The sentences under the detection sweep, each printed only when the
/// rows support it. `q`: the quota as printed; `cpu`: the quota in cores;
/// `period_ms`: its CFS period.
fn detection_notes(
    rows: &[DetRow],
    q: &str,
    cpu: Option<f64>,
    period_ms: Option<f64>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(slowest) = rows.last() else {
        return notes;
    };
    // Intervals whose cut was not preceded by a false detection.
    let clean: Vec<&DetRow> = rows
        .iter()
        .filter(|r| r.2 == 0.0 && r.1.is_some())
        .collect();
    let best = clean
        .iter()
        .min_by(|a, b| a.1.unwrap_or(f64::MAX).total_cmp(&b.1.unwrap_or(f64::MAX)));
    if let (Some(b), Some(ss)) = (best, slowest.1) {
        let shares: Vec<(String, f64)> = clean
            .iter()
            .filter_map(|r| Some((r.0.clone(), 100.0 * r.4? / r.1.filter(|x| *x > 0.0)?)))
            .collect();
        let minority: Vec<String> = shares
            .iter()
            .filter(|(_, sh)| *sh < 50.0)
            .map(|(h, sh)| format!("{h} ms ({} %)", fmt_num(*sh)))
            .collect();
        let verdict = if shares.is_empty() {
            "detection times were not recorded, so which part dominates is not measured."
                .to_string()
        } else if minority.is_empty() && ss >= b.1.unwrap_or(f64::NAN) {
            "detection (three heartbeats) is most of the stall at every interval without false detections: detection dominates failover time, as the paper says.".to_string()
        } else if minority.is_empty() {
            "yet the stall does not shrink with the interval, so detection alone does not set it."
                .to_string()
        } else {
            format!(
                "detection is less than half of the stall at {}: there, something other than detection dominates, unlike the paper's claim.",
                minority.join(", ")
            )
        };
        notes.push(format!(
            "Without false detections, the client-observed stall goes from {} ms at a {} ms heartbeat to {} ms at {} ms; {verdict}",
            fmt_num(ss),
            slowest.0,
            fmt_num(b.1.unwrap_or(f64::NAN)),
            b.0
        ));
    }
    let dirty: Vec<String> = rows
        .iter()
        .filter(|r| r.2 > 0.0)
        .map(|r| format!("{} ms", r.0))
        .collect();
    if !dirty.is_empty() {
        notes.push(format!(
            "At {} a node declared its live peer failed before the cut, so that row's stall and detection are not the cut's.",
            dirty.join(", ")
        ));
    }
    let list = |sel: fn(&DetRow) -> f64| {
        let v: Vec<String> = rows
            .iter()
            .filter(|r| sel(r) > 0.0)
            .map(|r| format!("{} ms ({})", r.0, fmt_num(sel(r))))
            .collect();
        if v.is_empty() {
            "none at any interval".to_string()
        } else {
            format!("at {}", v.join(", "))
        }
    };
    notes.push(format!(
        "False detections under load without a quota: {}.",
        list(|r| r.2)
    ));
    let with_quota = list(|r| r.3);
    if rows.iter().any(|r| r.3 > 0.0) {
        let stand = match (cpu, period_ms) {
            (Some(c), Some(p)) => format!(
                " for up to {} ms of every {} ms period at {q} core",
                fmt_num(p * (1.0 - c)),
                fmt_num(p)
            ),
            _ => String::new(),
        };
        notes.push(format!(
            "False detections under load at {q} core per host: {with_quota}. Hypothesis, not measured here: CFS throttling stops every process of a host that has used its quota{stand}, so heartbeats are late and the backup takes over from a live primary (the run's `events.csv` shows who declared whom failed). On real, unthrottled servers scheduling delays are far shorter."
        ));
    } else {
        notes.push(format!(
            "False detections under load at {q} core per host: {with_quota}."
        ));
    }
    notes
}

fn scale_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let _ = writeln!(md, "**Failover transition against open connections** (extra idle keep-alive connections held open by the load driver besides the 8 busy clients; primary cut; medians over repetitions):\n");
    let _ = writeln!(md, "| idle connections | connections rebuilt | failover transition (ms) | kernel operations (ms) | user-level operations (ms) | client stall (ms) | idle connections alive at the end | errors |\n|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut pts = Vec::new();
    for v in &exp.variants {
        let Some(n) = v
            .name
            .strip_prefix("idle-")
            .and_then(|x| x.parse::<u32>().ok())
        else {
            continue;
        };
        let total = over(v, |_, s| fo(s, "total"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            n,
            show(over(v, |r, _| extra(r, "takeover_restored"))),
            show(total),
            show(over(v, |_, s| fo(s, "kernel_ops"))),
            show(over(v, |_, s| fo(s, "user_ops"))),
            show(over(v, |_, s| Some(s.max_stall_ms))),
            show(over(v, |r, _| extra(r, "idle_conns_open_at_end"))),
            show(over(v, |_, s| Some(s.errors as f64)))
        );
        if let Some(t) = med(total) {
            pts.push((n, t));
        }
    }
    let _ = writeln!(
        md,
        "\nThe paper measured its 1.5 ms transition with the 8 clients' connections only. {}\n",
        sources(ctx, exp)
    );
    if let (Some(a), Some(b)) = (pts.first(), pts.last()) {
        if b.0 > a.0 {
            let per = (b.1 - a.1) / f64::from(b.0 - a.0) * 1e3;
            let _ = writeln!(
                md,
                "- From {} to {} idle connections the transition grows from {} to {} ms, about {} µs per extra connection (docs/DESIGN.md measured about 10 µs per TCP_REPAIR socket in C).\n",
                a.0,
                b.0,
                fmt_num(a.1),
                fmt_num(b.1),
                fmt_num(per)
            );
        }
    }
}

fn reply_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let _ = writeln!(md, "**Reply size against duplex overhead and failover stall** (two unreplicated servers and dual-role CoRAL, same conditions; CoRAL's throughput before its fault; medians over repetitions):\n");
    let _ = writeln!(md, "| reply size | two servers (req/s) | two servers' reply payload (Mb/s) | two servers' longest stall, no fault (ms) | CoRAL before fault (req/s) | overhead vs two servers | CoRAL stall at failover (ms) | CoRAL errors | CoRAL requests lost | digest mismatches |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut sizes: Vec<String> = exp
        .variants
        .iter()
        .filter_map(|v| v.name.strip_prefix("two-servers-").map(str::to_string))
        .collect();
    sizes.sort();
    let mut notes = Vec::new();
    let mut lan_bound = Vec::new();
    let mut lost = Vec::new();
    for sz in &sizes {
        let two = exp.variant(&format!("two-servers-{sz}"));
        let c = exp.variant(&format!("coral-dual-role-{sz}"));
        let tx = two.and_then(|v| med(over(v, |_, s| Some(s.throughput_rps))));
        let cx = c.and_then(|v| med(over(v, |_, s| s.throughput_before_rps)));
        let ov = match (cx, tx) {
            (Some(a), Some(b)) if b > 0.0 => Some(100.0 * (1.0 - a / b)),
            _ => None,
        };
        let label = format!("{} KB", sz.trim_end_matches("KB").trim_start_matches('0'));
        let bytes = two
            .and_then(|v| v.reps.first())
            .and_then(|r| data::config_lookup(&r.config, &["size"]))
            .and_then(|x| x.as_f64());
        let mbit = match (tx, bytes) {
            (Some(x), Some(b)) => Some(x * b * 8.0 / 1e6),
            _ => None,
        };
        let lost_total: u64 = c
            .map(|v| v.summaries().map(|(_, s)| s.requests_lost).sum())
            .unwrap_or(0);
        if lost_total > 0 {
            lost.push(format!(
                "{label} ({lost_total} in {} run(s))",
                c.map(|v| v.summaries().count()).unwrap_or(0)
            ));
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            label,
            show(two.and_then(|v| over(v, |_, s| Some(s.throughput_rps)))),
            mbit.map(fmt_num).unwrap_or("—".into()),
            show(two.and_then(|v| over(v, |_, s| Some(s.max_stall_ms)))),
            show(c.and_then(|v| over(v, |_, s| s.throughput_before_rps))),
            show_pct(ov),
            show(c.and_then(|v| over(v, |_, s| Some(s.max_stall_ms)))),
            show(c.and_then(|v| over(v, |_, s| Some(s.errors as f64)))),
            show(c.and_then(|v| over(v, |_, s| Some(s.requests_lost as f64)))),
            show(c.and_then(|v| over(v, |_, s| Some(s.digest_mismatches as f64))))
        );
        if let Some(o) = ov {
            notes.push((label.clone(), o));
        }
        if let Some(m) = mbit.filter(|m| *m >= 70.0) {
            lan_bound.push(format!("{label} ({} Mb/s)", fmt_num(m)));
        }
    }
    let _ = writeln!(
        md,
        "\nThe paper measured 1 KB replies only. {}\n",
        sources(ctx, exp)
    );
    let largest_stall = sizes
        .last()
        .and_then(|sz| exp.variant(&format!("two-servers-{sz}")))
        .and_then(|v| med(over(v, |_, s| Some(s.max_stall_ms))));
    for n in reply_notes(&lan_bound, largest_stall, &lost, &notes) {
        let _ = writeln!(md, "- {n}");
    }
    md.push('\n');
}

/// The sentences under the reply-size sweep, each printed only when the
/// numbers support it. `lan_bound`: sizes at which two unreplicated servers
/// moved at least 70 Mb/s of replies; `largest_stall`: two servers' longest
/// stall at the largest size (ms, no fault); `lost`: sizes where CoRAL lost
/// requests; `overheads`: (size, overhead %) in size order.
fn reply_notes(
    lan_bound: &[String],
    largest_stall: Option<f64>,
    lost: &[String],
    overheads: &[(String, f64)],
) -> Vec<String> {
    let mut out = Vec::new();
    if !lan_bound.is_empty() {
        out.push(format!(
            "Measured: two unreplicated servers moved at least 70 Mb/s of replies on the 100 Mb/s LAN at {}, so the LAN, not the servers, bounds them there.",
            lan_bound.join(", ")
        ));
    }
    if let Some(st) = largest_stall.filter(|s| *s >= 200.0) {
        out.push(format!(
            "Two unreplicated servers stalled {} ms at the largest reply size without any fault: the floor for CoRAL's stall at that size. Hypothesis, not measured here: a reply that loses a segment at a full switch port waits for TCP's retransmission timeout (at least 200 ms).",
            fmt_num(st)
        ));
    }
    if !lost.is_empty() {
        out.push(format!(
            "Requests lost by CoRAL (sent, never answered before the end of the run: a failure the client sees as a hang): {}.",
            lost.join(", ")
        ));
    }
    if let (Some(a), Some(b)) = (overheads.first(), overheads.last()) {
        let why = if b.1 < a.1
            && lan_bound
                .iter()
                .any(|l| l.starts_with(&format!("{} (", b.0)))
        {
            format!(
                "consistent with the LAN bounding both systems at {} (measured above), which hides CoRAL's per-request server work.",
                b.0
            )
        } else if b.1 < a.1 {
            "the LAN did not bound two servers at the largest size, so why the overhead falls is not measured here.".to_string()
        } else {
            "why it grows is not measured here (a hypothesis: CoRAL relays and logs every reply byte).".to_string()
        };
        out.push(format!(
            "Overhead is {} % at {} and {} % at {}: {why}",
            fmt_num(a.1),
            a.0,
            fmt_num(b.1),
            b.0
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    //! Every generated sentence against data that support it and data that
    //! contradict it, on synthetic results trees.
    use crate::report::testtree::{faulted, request, summary, Tree};
    use serde_json::json;

    /// A fig3-latency tree: 8 requests before the fault, one spanning it.
    fn fig3_tree(stall: f64, detection: f64, errors: u64, lost: u64) -> String {
        let t = Tree::new();
        let mut s = faulted(
            100.0,
            90.0,
            stall,
            &[("detection_ms", detection), ("total", 2.0)],
        );
        s.errors = errors;
        s.requests_lost = lost;
        s.warmup_end_unix_ns = crate::report::testtree::T0;
        t.rep("fig3-latency", "coral-keep-alive", 1, &s, json!({}));
        let mut recs: Vec<_> = (0..8)
            .map(|i| request(0, i, i * 10, i * 10 + 4, false))
            .collect();
        recs.push(request(1, 0, 2990, 2990 + stall as u64, false));
        t.requests("fig3-latency", "coral-keep-alive", 1, &recs);
        t.report()
    }

    #[test]
    fn fig3_says_mostly_detection_only_when_detection_is_most_of_the_gap() {
        let md = fig3_tree(350.0, 300.0, 0, 0);
        assert!(md.contains("the gap at the fault lasts 350 ms, 85.714 % of it fault detection (300 ms), as in the paper"), "{md}");
        assert!(!md.contains("unlike the paper, where the gap"));
        let md = fig3_tree(900.0, 200.0, 0, 0);
        assert!(md.contains("the gap at the fault lasts 900 ms and fault detection (200 ms) is 22.222 % of it: unlike the paper"), "{md}");
        assert!(!md.contains("as in the paper, where"));
        // The paper's latencies are not in its text: no comparison with them.
        assert!(!md.contains("lower than the paper's"));
        assert!(md.contains("not compared with them"));
    }

    #[test]
    fn fig3_puts_lost_requests_beside_errors() {
        let md = fig3_tree(350.0, 300.0, 1, 2);
        assert!(md.contains("| errors | requests lost |"), "{md}");
        assert!(md.contains("| 1 | 2 |\n"), "{md}");
        assert!(md.contains("1 request(s) failed and 2 were lost"), "{md}");
        let md = fig3_tree(350.0, 300.0, 0, 0);
        assert!(!md.contains("were lost (sent, never answered)"), "{md}");
        // Neither detection nor the transition: a hypothesis, said to be one.
        let md = fig3_tree(900.0, 200.0, 0, 0);
        assert!(md.contains("698 ms of the gap is neither detection nor the transition. Hypothesis, not measured here"), "{md}");
        let md = fig3_tree(350.0, 300.0, 0, 0);
        assert!(
            !md.contains("is neither detection nor the transition"),
            "{md}"
        );
    }

    fn fig2_tree(before: f64, cpu: Option<(f64, f64)>, docker: bool) -> String {
        let t = Tree::new();
        let e = "fig2-throughput";
        let x = |c: f64| {
            cpu.map(|_| json!({"cpu_ms_per_request": c}))
                .unwrap_or(json!({}))
        };
        let (cc, cu) = cpu.unwrap_or((0.0, 0.0));
        t.rep(e, "one-server", 1, &summary(100.0, 5.0), x(cu));
        t.rep(e, "two-servers", 1, &summary(200.0, 5.0), x(cu));
        let mut s = faulted(before, 90.0, 300.0, &[]);
        s.requests_lost = 3;
        t.rep(e, "coral-keep-alive", 1, &s, x(cc));
        if docker {
            t.rep(e, "one-server-docker", 1, &summary(50.0, 5.0), json!({}));
            t.rep(e, "two-servers-docker", 1, &summary(100.0, 5.0), json!({}));
            t.rep(
                e,
                "coral-keep-alive-docker",
                1,
                &faulted(80.0, 40.0, 300.0, &[]),
                json!({}),
            );
        }
        t.report()
    }

    #[test]
    fn fig2_reads_the_papers_70_percent_and_says_what_is_measured() {
        let md = fig2_tree(140.0, None, false);
        assert!(md.contains("before the fault CoRAL ran at 70 % of two unreplicated servers, as the paper's system ran at its maximum duplex throughput (70 % of two servers by its Table 3; 0 pp above)"), "{md}");
        // Lost requests beside errors, in the table and the notes.
        assert!(
            md.contains("| coral-keep-alive | 140 | 70 % | 90 | 90 % | 300 | 0 | 3 | — |"),
            "{md}"
        );
        assert!(
            md.contains("3 request(s) failed or were lost across the fault over 1 run(s) (3 lost"),
            "{md}"
        );
        assert!(md.contains("the drop the paper shows"), "{md}");
        let md = fig2_tree(60.0, Some((2.0, 1.0)), false);
        assert!(md.contains("ran at 30 % of two unreplicated servers, where the paper's system ran at 70 % (40 pp below). Measured: within the same 0.5 -core quota per host our CoRAL spends 2 ms of server CPU per request against 1 ms"), "{md}");
        assert!(md.contains("did not fall (from 60 to 90 req/s, 90 % of one server), unlike the paper's Fig. 2. Hypothesis, not measured here"), "{md}");
        let md = fig2_tree(60.0, None, false);
        assert!(
            md.contains("The cause is not measured in this run (no CPU per request recorded)."),
            "{md}"
        );
        let md = fig2_tree(60.0, Some((1.0, 2.0)), false);
        assert!(
            md.contains("Server CPU per request does not explain it"),
            "{md}"
        );
    }

    #[test]
    fn docker_variants_are_read_beside_netns_against_their_own_bounds() {
        let md = fig2_tree(140.0, None, true);
        assert!(
            md.contains("| coral-keep-alive | 140 | 70 % | 90 | 90 % |"),
            "{md}"
        );
        assert!(
            md.contains("| coral-keep-alive-docker | 80 | 80 % | 40 | 80 % |"),
            "{md}"
        );
    }

    fn detection_tree(rows: &[(&str, f64, f64)]) -> String {
        detection_tree_with(rows, json!({"false_detections": 0}))
    }

    fn detection_tree_with(rows: &[(&str, f64, f64)], extras: serde_json::Value) -> String {
        let t = Tree::new();
        for (name, det, stall) in rows {
            let s = faulted(
                100.0,
                90.0,
                *stall,
                &[("detection_ms", *det), ("total", 2.0)],
            );
            t.rep("detection-sweep", name, 1, &s, extras.clone());
        }
        t.report()
    }

    #[test]
    fn detection_sweep_counts_fences_and_rejoins() {
        let md = detection_tree_with(
            &[("hb-010ms-cut", 30.0, 50.0), ("hb-100ms-cut", 300.0, 400.0)],
            json!({"false_detections": 1, "fences": 1, "rejoins": 1, "lease_lapses": 0}),
        );
        assert!(
            md.contains("Across every run of this sweep: 2 node(s) fenced after losing a race, 2 rejoined their peer."),
            "{md}"
        );
        assert!(md.contains("heartbeat one-way delay p99 / max"), "{md}");
    }

    #[test]
    fn detection_dominates_only_when_it_is_most_of_every_stall() {
        let md = detection_tree(&[("hb-010ms-cut", 30.0, 50.0), ("hb-100ms-cut", 300.0, 400.0)]);
        assert!(md.contains("goes from 400 ms at a 100 ms heartbeat to 50 ms at 10 ms; detection (three heartbeats) is most of the stall at every interval without false detections: detection dominates failover time, as the paper says."), "{md}");
        let md = detection_tree(&[("hb-010ms-cut", 30.0, 50.0), ("hb-100ms-cut", 100.0, 400.0)]);
        assert!(
            md.contains("detection is less than half of the stall at 100 ms (25 %)"),
            "{md}"
        );
        assert!(!md.contains("as the paper says"), "{md}");
        // No false detection at any interval: no throttling explanation.
        assert!(
            md.contains("False detections under load at ? core per host: none at any interval."),
            "{md}"
        );
        assert!(!md.contains("CFS throttling"), "{md}");
    }

    fn reply_tree(big_rps: f64, big_stall: f64, big_coral: f64) -> String {
        let t = Tree::new();
        let e = "reply-size-sweep";
        let sizes = [
            ("0001KB", 1024.0, 1000.0, 800.0),
            ("1024KB", 1048576.0, big_rps, big_coral),
        ];
        for (label, bytes, two, coral) in sizes {
            let d = t.root().join(e);
            t.rep(
                e,
                &format!("two-servers-{label}"),
                1,
                &summary(two, big_stall),
                json!({}),
            );
            t.rep(
                e,
                &format!("coral-dual-role-{label}"),
                1,
                &faulted(coral, coral, 300.0, &[]),
                json!({}),
            );
            let cfg = json!({"size": bytes, "conditions": {"lan_mbit": 100}});
            std::fs::write(
                d.join(format!("two-servers-{label}/rep-1/config.json")),
                cfg.to_string(),
            )
            .unwrap();
        }
        t.report()
    }

    #[test]
    fn reply_size_causes_need_their_numbers() {
        // 11 req/s of 1 MiB = 92 Mb/s: the LAN bounds two servers.
        let md = reply_tree(11.0, 250.0, 10.5);
        assert!(md.contains("Measured: two unreplicated servers moved at least 70 Mb/s of replies on the 100 Mb/s LAN at 1024 KB (92.275 Mb/s)"), "{md}");
        assert!(
            md.contains("consistent with the LAN bounding both systems at 1024 KB"),
            "{md}"
        );
        assert!(
            md.contains("stalled 250 ms at the largest reply size without any fault"),
            "{md}"
        );
        // 3 req/s = 25 Mb/s: not the LAN; and no stall floor at 20 ms.
        let md = reply_tree(3.0, 20.0, 2.9);
        assert!(!md.contains("at least 70 Mb/s"), "{md}");
        assert!(md.contains("the LAN did not bound two servers at the largest size, so why the overhead falls is not measured here."), "{md}");
        assert!(
            !md.contains("at the largest reply size without any fault"),
            "{md}"
        );
        let md = reply_tree(3.0, 20.0, 1.0);
        assert!(md.contains("why it grows is not measured here"), "{md}");
    }

    fn table1_tree(arp: &[f64]) -> String {
        let t = Tree::new();
        for (i, a) in arp.iter().enumerate() {
            let s = faulted(1.0, 1.0, 300.0, &[("gratuitous_arp", *a), ("total", 1.5)]);
            t.rep("table1-failover", "dual-role", i as u32 + 1, &s, json!({}));
        }
        t.report()
    }

    #[test]
    fn table1_causes_are_measured_or_said_to_be_hypotheses() {
        let md = table1_tree(&[1.0, 2.0, 150.0]);
        assert!(md.contains("`dual-role` `gratuitous_arp`: 2 ms against the paper's 0.5 ms. Measured: the slowest repetition took 150 ms"), "{md}");
        let md = table1_tree(&[1.5, 2.0, 3.0]);
        assert!(md.contains("`gratuitous_arp`: 2 ms against the paper's 0.5 ms. Not measured here; a likely cause:"), "{md}");
        let md = table1_tree(&[0.5, 0.6, 0.4]);
        assert!(!md.contains("`dual-role` `gratuitous_arp`:"), "{md}");
    }

    fn table3_tree(coral: f64, two: f64, cpu: (f64, f64)) -> String {
        let t = Tree::new();
        let e = "table3-overhead";
        t.rep(
            e,
            "cpu010-one-server",
            1,
            &summary(100.0, 5.0),
            json!({"cpu_ms_per_request": cpu.1}),
        );
        t.rep(
            e,
            "cpu010-two-servers",
            1,
            &summary(two, 5.0),
            json!({"cpu_ms_per_request": cpu.1}),
        );
        t.rep(
            e,
            "cpu010-coral-dual-role",
            1,
            &summary(coral, 5.0),
            json!({"cpu_ms_per_request": cpu.0}),
        );
        t.report()
    }

    #[test]
    fn table3_sentences_follow_the_numbers() {
        let md = table3_tree(140.0, 200.0, (2.0, 1.0));
        assert!(
            md.contains(
                "overhead 30 % against the paper's 30 % (0 pp above): within the tolerance"
            ),
            "{md}"
        );
        let md = table3_tree(60.0, 200.0, (2.0, 1.0));
        assert!(md.contains("overhead 70 % against the paper's 30 % (40 pp above). Measured: server CPU per request is 2 ms for CoRAL against 1 ms unreplicated"), "{md}");
        let md = table3_tree(60.0, 200.0, (1.0, 2.0));
        assert!(md.contains("The cause is not measured here."), "{md}");
        // Two servers barely above one: the servers do not bound throughput.
        let md = table3_tree(120.0, 120.0, (2.0, 1.0));
        assert!(md.contains("(30 pp below). Measured: two unreplicated servers reach only 120 % of one server's throughput"), "{md}");
        let md = table3_tree(190.0, 200.0, (2.0, 1.0));
        assert!(!md.contains("reach only"), "{md}");
    }
}
