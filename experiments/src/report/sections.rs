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
         own `one-server`/`two-servers` variants of the same connection mode, same run configuration and quotas):\n"
    );
    let _ = writeln!(md, "| variant | before fault (req/s) | of two servers | from fault + 1 s (req/s) | of one server | max stall (ms) | errors | server CPU per request (ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut notes = Vec::new();
    let baseline = crate::plot::baseline_peaks(ctx.experiments);
    for v in &corals {
        let (one, two) = crate::plot::experiment_peaks(exp, v, baseline);
        let own = crate::plot::experiment_peaks(exp, v, (None, None)) != (None, None);
        if !own {
            notes.push(format!(
                "`{}`: no unreplicated variant in this experiment; the peaks are `baseline`'s, a different run.",
                v.name
            ));
        }
        let before = over(v, |_, s| s.throughput_before_rps);
        let after = over(v, |_, s| s.throughput_after_rps);
        let b2 = pct(med(before), two);
        let a1 = pct(med(after), one);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.name),
            show(before),
            show_pct(b2),
            show(after),
            show_pct(a1),
            show(over(v, |_, s| Some(s.max_stall_ms))),
            show(over(v, |_, s| Some(s.errors as f64))),
            cpu_per_req(v).map(fmt_num).unwrap_or("—".into())
        );
        let mode = if v.name.starts_with(crate::catalog::INPROC_PREFIX) {
            crate::catalog::INPROC_PREFIX
        } else {
            ""
        };
        let unrep = exp
            .variant(&if v.name.ends_with("connection-per-request") {
                format!("{mode}two-servers-connection-per-request")
            } else {
                format!("{mode}two-servers")
            })
            .and_then(cpu_per_req);
        if let Some(b) = b2 {
            if b < 60.0 {
                notes.push(format!(
                    "`{}`: before the fault CoRAL ran at {} % of two unreplicated servers, where the paper's system ran at its maximum duplex throughput, about 70 % of two servers by its Table 3. \
                     Cause: within the same {} -core quota per host, our CoRAL spends {} ms of server CPU per request against {} ms for an unreplicated server: its front relays every client packet through a user-space AF_PACKET socket and every reply is logged to the peer over TCP, where the paper did both in its kernel module; and each request crosses both hosts (front on one, application on the other), so it waits whenever either host's quota is exhausted for the rest of its 100 ms CFS period (p99 latency {} ms).",
                    v.name,
                    fmt_num(b),
                    quota(v).map(fmt_num).unwrap_or("?".into()),
                    cpu_per_req(v).map(fmt_num).unwrap_or("?".into()),
                    unrep.map(fmt_num).unwrap_or("?".into()),
                    med(over(v, |_, s| Some(s.p99_ms))).map(fmt_num).unwrap_or("?".into())
                ));
            } else {
                notes.push(format!(
                    "`{}`: before the fault CoRAL ran at {} % of two unreplicated servers, as the paper's system ran near its maximum duplex throughput.",
                    v.name,
                    fmt_num(b)
                ));
            }
        }
        if let (Some(a), Some(after_x), Some(before_x)) = (a1, med(after), med(before)) {
            if after_x < before_x {
                notes.push(format!(
                    "`{}`: after the fault throughput fell to {} % of one unreplicated server, the drop the paper shows (simplex mode generates every reply on one host).",
                    v.name,
                    fmt_num(a)
                ));
            } else {
                notes.push(format!(
                    "`{}`: after the fault throughput did not fall (from {} to {} req/s, {} % of one server), unlike the paper's Fig. 2. Cause: in duplex mode our CoRAL is bounded by its per-packet relay and logging work, which simplex mode no longer does, so the survivor alone serves at least as much as the pair did.",
                    v.name,
                    fmt_num(before_x),
                    fmt_num(after_x),
                    fmt_num(a)
                ));
            }
        }
    }
    let _ = writeln!(
        md,
        "\nWhich figure is Fig. 2: `coral-keep-alive` (below, `{}-coral-keep-alive-throughput`), because CoRAL's claim is that live connections survive the fault; \
         `coral-connection-per-request` is drawn too, as WebStone 2.0 ran (a new connection per request), so the paper's figure mixes both effects. {}\n",
        exp.name,
        sources(ctx, exp)
    );
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
    md.push('\n');
}

fn fig3_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
    let _ = writeln!(md, "**Fig. 3 read as numbers** (typical repetition: median `max_stall_ms`; latencies of requests started within 1 s of the fault, from its `requests.csv`):\n");
    let _ = writeln!(md, "| variant | rep | p50 before fault (ms) | longest latency near the fault (ms) | max stall (ms) | detection (ms) | failover transition (ms) | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|");
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
        let det = fo(s, "detection_ms");
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&v.name),
            rep.n,
            stats::median(&before).map(fmt_num).unwrap_or("—".into()),
            fmt_num(longest),
            fmt_num(s.max_stall_ms),
            det.map(fmt_num).unwrap_or("—".into()),
            fo(s, "total").map(fmt_num).unwrap_or("—".into()),
            s.errors
        );
        if let Some(d) = det {
            notes.push(format!(
                "`{}`: the gap at the fault lasts {} ms, {} % of it fault detection ({} ms: 3 missed heartbeats of the paper's 100 ms), as in the paper, where the gap is \"a fraction of a second\" and mostly detection; our failover transition itself took {} ms.",
                v.name,
                fmt_num(s.max_stall_ms),
                fmt_num(100.0 * d / s.max_stall_ms.max(1e-9)),
                fmt_num(d),
                fo(s, "total").map(fmt_num).unwrap_or("?".into())
            ));
        }
        if let (Some(d), Some(t)) = (det, fo(s, "total")) {
            let rest = s.max_stall_ms - d - t;
            if rest > 100.0 {
                notes.push(format!(
                    "`{}`: {} ms of the gap is neither detection nor the transition: requests and acknowledgements sent into the cut link are lost, and the client's TCP resends them only after its retransmission timeout (Linux's minimum is 200 ms), doubling on each further loss.",
                    v.name,
                    fmt_num(rest)
                ));
            }
        }
        if s.errors > 0 {
            notes.push(format!(
                "`{}`: {} request(s) failed across the fault, where the paper's clients saw none.",
                v.name, s.errors
            ));
        }
    }
    let _ = writeln!(
        md,
        "\nThe paper plots latencies in seconds; ours are in ms. Our latencies before the fault are lower than the paper's because our servers are a modern machine's cores behind veth pairs, not 350 MHz PCs. {}\n",
        sources(ctx, exp)
    );
    for n in notes {
        let _ = writeln!(md, "- {n}");
    }
    md.push('\n');
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
                        "`{}` `{key}`: {} ms against the paper's {} ms. Cause: {}",
                        v.name,
                        fmt_num(m),
                        fmt_num(p),
                        cause(key, m > p, restored)
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

/// Why a Table 1 row differs from the paper's (`slower`: ours is larger).
fn cause(key: &str, slower: bool, restored: Option<f64>) -> String {
    match (key, slower) {
        ("kernel_ops", true) => format!(
            "this row includes the witness grant round trip (never two voices, docs/DESIGN.md section 4), which the paper did not have, and the TCP_REPAIR rebuild of {} connection(s).",
            restored.map(fmt_num).unwrap_or("the".into())
        ),
        ("kernel_ops", false) => "a modern CPU runs the snapshot, the repair of each socket (about 10 µs) and the address change far faster than a 350 MHz Pentium II running Linux 2.4.".into(),
        ("user_ops", true) => "handing rebuilt sockets to the HTTP server and opening the listener goes through the async runtime's task hand-off, which the paper's shared-memory flag did not need.".into(),
        ("user_ops", false) => "our user-level step is a flag and a task hand-off in one process, on a CPU an order of magnitude faster than the paper's.".into(),
        ("gratuitous_arp", false) | ("outside_ping", false) => "our LAN is veth pairs and a Linux bridge in one machine: no wire, no NIC, a round trip of tens of microseconds, where the paper crossed a 100 Mb/s Ethernet switch.".into(),
        ("gratuitous_arp", true) | ("outside_ping", true) => "the outside host answered late in some repetitions (the reply is awaited and the ARP resent every 100 ms until it comes), so this row carries a resend interval.".into(),
        ("total", true) => "the sum of the rows above; the rows that differ say why.".into(),
        (_, _) => "the sum of the rows above, each faster on a modern machine and a virtual LAN.".into(),
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
            if n.starts_with("coral") {
                if let (Some(o), Some(pc)) = (ov(two), paper_coral) {
                    let unrep = get("two-servers").and_then(cpu_per_req);
                    let sentence = if (o - pc).abs() <= 10.0 {
                        format!(
                            "{} % against the paper's {} %: close.",
                            fmt_num(o),
                            fmt_num(pc)
                        )
                    } else if o > pc {
                        format!(
                            "{} % against the paper's {} %. Cause: our CoRAL spends {} ms of server CPU per request against {} ms unreplicated (user-space AF_PACKET relay of every client packet and reply logging over TCP to the peer, where the paper's kernel module forwarded packets in the kernel), and the quota charges all of it to the server.",
                            fmt_num(o),
                            fmt_num(pc),
                            cpu_per_req(v).map(fmt_num).unwrap_or("?".into()),
                            unrep.map(fmt_num).unwrap_or("?".into())
                        )
                    } else {
                        let two_vs_one = pct(two, one).unwrap_or(f64::NAN);
                        let unrep = get("two-servers").and_then(cpu_per_req);
                        format!(
                            "{} % against the paper's {} %. Cause: at this quota the servers are not what bounds throughput: two unreplicated servers reach only {} % of one server's throughput, so the 100 Mb/s LAN (or the client machine) is the bottleneck and CoRAL's extra server work does not show in throughput; it shows in CPU: {} ms of server CPU per request against {} ms unreplicated.",
                            fmt_num(o),
                            fmt_num(pc),
                            fmt_num(two_vs_one),
                            cpu_per_req(v).map(fmt_num).unwrap_or("?".into()),
                            unrep.map(fmt_num).unwrap_or("?".into())
                        )
                    };
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
/// quota, false detections with quota).
type DetRow = (String, Option<f64>, f64, f64);

fn detection_md(ctx: &Ctx, exp: &Experiment, md: &mut String) {
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
    let _ = writeln!(md, "| heartbeat (ms) | detection (ms) | client stall at the cut (ms) | errors | false detections without quota (before the cut + no-fault runs) | false detections at {q} core/host | throughput at {q} core/host (req/s) | requests lost at {q} core/host | server CPU per request at {q} core/host (ms) | machine CPU per request, no fault (ms) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows: Vec<DetRow> = Vec::new();
    for h in &hbs {
        let cutv = exp.variant(&format!("hb-{h}ms-cut"));
        let quiet = exp.variant(&format!("hb-{h}ms-no-fault"));
        let quota_v = quota_run(h);
        let count = |vs: &[Option<&Variant>]| {
            let reps: Vec<&Rep> = vs.iter().flatten().flat_map(|v| v.reps.iter()).collect();
            let n: f64 = reps
                .iter()
                .filter_map(|r| extra(r, "false_detections"))
                .sum();
            (n, reps.len())
        };
        let (f_free, n_free) = count(&[cutv, quiet]);
        let (f_quota, n_quota) = count(&[quota_v]);
        let det = cutv.and_then(|v| over(v, |_, s| fo(s, "detection_ms")));
        let stall = cutv.and_then(|v| over(v, |_, s| Some(s.max_stall_ms)));
        let machine = quiet.or(quota_v);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} in {} run(s) | {} in {} run(s) | {} | {} | {} | {} |",
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
            show(machine.and_then(|v| over(v, |r, _| extra(r, "machine_cpu_ms_per_request"))))
        );
        rows.push((
            h.trim_start_matches('0').to_string(),
            med(stall),
            f_free,
            f_quota,
        ));
    }
    let _ = writeln!(md, "\nThe paper names this trade-off (section 4.2: faster heartbeats detect sooner but cost CPU) without measuring it; it used 100 ms. A false detection is a `peer-failed` of a node that had heard its peer, with no fault injected. {}\n", sources(ctx, exp));
    if let (Some(_), Some(s)) = (rows.first(), rows.last()) {
        // The shortest stall among intervals without false detections.
        let clean: Vec<&DetRow> = rows
            .iter()
            .filter(|r| r.2 == 0.0 && r.1.is_some())
            .collect();
        let best = clean
            .iter()
            .min_by(|a, b| a.1.unwrap_or(f64::MAX).total_cmp(&b.1.unwrap_or(f64::MAX)));
        if let (Some(b), Some(ss)) = (best, s.1) {
            let _ = writeln!(
                md,
                "- Without false detections, the client-observed stall goes from {} ms at a {} ms heartbeat down to {} ms at {} ms: detection (three heartbeats) dominates failover time, as the paper says.",
                fmt_num(ss),
                s.0,
                fmt_num(b.1.unwrap_or(f64::NAN)),
                b.0
            );
        }
        let dirty: Vec<String> = rows
            .iter()
            .filter(|r| r.2 > 0.0)
            .map(|r| format!("{} ms", r.0))
            .collect();
        if !dirty.is_empty() {
            let _ = writeln!(
                md,
                "- At {} a node declared its live peer failed before the cut, so that row's stall and detection are not the cut's.",
                dirty.join(", ")
            );
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
        let _ = writeln!(
            md,
            "- False detections under load without a quota: {}.",
            list(|r| r.2)
        );
        let _ = writeln!(
            md,
            "- False detections under load at {q} core per host: {}. CFS throttling stops every process of a host that has used its quota for the rest of the 100 ms period (up to {} ms at {q} core), longer than three heartbeats of 10 ms or less; the backup then takes over from a live primary; where the throughput column drops to near zero with requests lost, both nodes declared each other failed and the service stopped answering (see the run's `events.csv`). On real, unthrottled servers scheduling delays are far shorter, so this is a cost of emulating server capacity with quotas, and a reason for heartbeats of tens of ms on a loaded host.\n",
            list(|r| r.3),
            quota_run(hbs.first().map(String::as_str).unwrap_or(""))
                .and_then(quota)
                .map(|c| fmt_num(100.0 * (1.0 - c)))
                .unwrap_or("?".into())
        );
    }
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
    if !lan_bound.is_empty() {
        let _ = writeln!(
            md,
            "- The 100 Mb/s LAN bounds two unreplicated servers at {}: there CoRAL's extra server work is hidden and the overhead measures only what CoRAL adds on the wire.",
            lan_bound.join(", ")
        );
    }
    let _ = writeln!(
        md,
        "- The longest stall of two unreplicated servers without any fault is the floor for large replies: a reply that loses a segment at a full 100 Mb/s switch port waits for TCP's retransmission timeout (at least 200 ms)."
    );
    if !lost.is_empty() {
        let _ = writeln!(
            md,
            "- Requests lost by CoRAL (sent, never answered before the end of the run: a failure the client sees as a hang): {}.",
            lost.join(", ")
        );
    }
    if let (Some(a), Some(b)) = (notes.first(), notes.last()) {
        let _ = writeln!(
            md,
            "- Overhead is {} % at {} and {} % at {}: {}\n",
            fmt_num(a.1),
            a.0,
            fmt_num(b.1),
            b.0,
            if b.1 < a.1 {
                "large replies are bounded by the 100 Mb/s LAN, which both systems share, so CoRAL's per-request work matters less as replies grow."
            } else {
                "CoRAL's per-byte work (relaying and logging every reply byte) grows with the reply."
            }
        );
    }
}
