//! `coral-exp plot` and `coral-exp report` on a synthetic results tree with
//! known numbers: the real binary runs, and its files are checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use workload::summary::Summary;

const T0: u64 = 1_795_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_coral-exp")
}

fn paper_values() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("paper_values.csv")
}

/// One synthetic request: (client, seq, start ns, end ns, failed).
type Req = (u32, u64, u64, u64, bool);

/// Closed-loop requests of 8 clients for `secs` seconds, each taking
/// `lat_ms`; with a fault at `fault_s`, every request outstanding at the fault
/// completes `stall_ms` later and client 0's fails with a reset.
fn requests(secs: u64, lat_ms: u64, fault: Option<(u64, u64)>) -> Vec<Req> {
    let mut out = Vec::new();
    for client in 0..8u32 {
        let mut t = T0 + u64::from(client) * 100_000;
        let mut seq = 0;
        while t < T0 + secs * 1000 * MS {
            let mut end = t + lat_ms * MS;
            let mut failed = false;
            if let Some((f, stall)) = fault {
                let fault_at = T0 + f * 1000 * MS;
                if t <= fault_at && end > fault_at {
                    end = fault_at + stall * MS;
                    failed = client == 0;
                }
            }
            out.push((client, seq, t, end, failed));
            t = end + 50_000;
            seq += 1;
        }
    }
    out
}

/// requests.csv as the load driver writes it (docs/CLI.md columns), written
/// as text so the test checks the file format, not just our own serde.
fn requests_csv(reqs: &[Req]) -> String {
    let mut s = String::from(
        "client,seq,url,local_port,new_connection,start_unix_ns,end_unix_ns,latency_us,status,bytes,digest_ok,served_by,error_kind\n",
    );
    for &(client, seq, start, end, failed) in reqs {
        let (status, bytes, ok, kind) = if failed {
            (0, 0, false, "reset")
        } else {
            (200, 1024, true, "")
        };
        s.push_str(&format!(
            "{client},{seq},http://192.0.2.100/cgi-bin/webstone?size=1024,{},{},{start},{end},{},{status},{bytes},{ok},server-a,{kind}\n",
            40000 + client,
            seq == 0,
            (end - start) / 1000
        ));
    }
    s
}

struct RepSpec<'a> {
    exp: &'a str,
    variant: &'a str,
    rep: u32,
    throughput: f64,
    stall_ms: f64,
    fault: Option<(u64, u64)>,
    failover: Option<&'a [(&'a str, f64)]>,
}

fn write_rep(root: &Path, s: &RepSpec) {
    let dir = root
        .join(s.exp)
        .join(s.variant)
        .join(format!("rep-{}", s.rep));
    std::fs::create_dir_all(&dir).unwrap();
    let recs = requests(6, 5, s.fault);
    std::fs::write(dir.join("requests.csv"), requests_csv(&recs)).unwrap();
    let mut ev = String::from("t_unix_ns,host,source,event,detail\n");
    if let Some((f, _)) = s.fault {
        ev.push_str(&format!(
            "{},server-a,faultinject,link-cut,veth down\n",
            T0 + f * 1000 * MS
        ));
    }
    std::fs::write(dir.join("events.csv"), ev).unwrap();
    let errors = recs.iter().filter(|r| r.4).count() as u64;
    let summary = Summary {
        schema_version: 1,
        requests: recs.len() as u64,
        ok: recs.len() as u64 - errors,
        errors,
        errors_by_kind: if errors > 0 {
            [("reset".to_string(), errors)].into()
        } else {
            Default::default()
        },
        max_stall_ms: s.stall_ms,
        p50_ms: 5.0,
        p99_ms: 5.0,
        throughput_rps: s.throughput,
        // The summary's own fault instant is left out: plot must find it in events.csv.
        fault_at_unix_ns: None,
        throughput_before_rps: s.fault.map(|_| s.throughput),
        throughput_after_rps: s.fault.map(|_| s.throughput - 300.0),
        run_start_unix_ns: T0 - 500 * MS,
        warmup_end_unix_ns: T0 + 1000 * MS,
        run_end_unix_ns: T0 + 6000 * MS,
        failover: s
            .failover
            .map(|f| f.iter().map(|(k, v)| (k.to_string(), *v)).collect()),
        ..Default::default()
    };
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .unwrap();
    let config = serde_json::json!({
        "experiment": s.exp, "variant": s.variant, "rep": s.rep, "quick": true,
        "service": "unreplicated", "clients": 8, "size": 1024, "duration": "6s",
        "heartbeat": "100ms", "conditions": {"lan_rate": "100mbit", "cpu_quota": "synthetic-quota-42",
                       "cfs_period_us": 10042, "bridge_nf_call": 0},
        "app": if s.variant.starts_with("inproc-") { "inproc" } else { "cgi" }
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// The synthetic tree: baseline (known throughputs), a fault experiment
/// (known stalls and failover steps), table3-overhead (known overhead) and an
/// experiment with a name the report has never seen.
fn synthetic_tree(root: &Path) {
    let r = |exp, variant, rep, throughput, stall_ms, fault, failover| RepSpec {
        exp,
        variant,
        rep,
        throughput,
        stall_ms,
        fault,
        failover,
    };
    for (rep, x) in [(1, 512.5), (2, 530.5), (3, 498.0)] {
        write_rep(root, &r("baseline", "one-server", rep, x, 5.0, None, None));
    }
    for (rep, x) in [(1, 1001.0), (2, 987.5), (3, 1010.75)] {
        write_rep(root, &r("baseline", "two-servers", rep, x, 5.0, None, None));
    }
    // A fault-free false-detection run (its counts are absent: read as 0).
    write_rep(
        root,
        &r(
            "false-detection",
            "hb-010ms-1mb-no-quota",
            1,
            400.0,
            5.0,
            None,
            None,
        ),
    );
    let f1: &[(&str, f64)] = &[
        ("kernel_ops", 0.25),
        ("total", 1.25),
        ("detection_ms_synthetic", 210.0),
    ];
    let f2: &[(&str, f64)] = &[
        ("kernel_ops", 0.35),
        ("total", 1.75),
        ("detection_ms_synthetic", 230.0),
    ];
    write_rep(
        root,
        &r(
            "fig2-throughput",
            "coral",
            1,
            900.0,
            310.0,
            Some((3, 300)),
            Some(f1),
        ),
    );
    write_rep(
        root,
        &r(
            "fig2-throughput",
            "coral",
            2,
            910.0,
            290.0,
            Some((3, 300)),
            Some(f2),
        ),
    );
    write_rep(
        root,
        &r("table3-overhead", "one-server", 1, 500.0, 5.0, None, None),
    );
    write_rep(
        root,
        &r("table3-overhead", "two-servers", 1, 1000.0, 5.0, None, None),
    );
    write_rep(
        root,
        &r("table3-overhead", "coral", 1, 700.0, 5.0, None, None),
    );
    // Table 3's in-process group, and what one request cost each mode.
    write_rep(
        root,
        &r(
            "table3-overhead",
            "inproc-one-server",
            1,
            900.0,
            5.0,
            None,
            None,
        ),
    );
    write_rep(
        root,
        &r(
            "table3-overhead",
            "inproc-two-servers",
            1,
            1800.0,
            5.0,
            None,
            None,
        ),
    );
    for (variant, ms) in [("one-server", 1.5), ("inproc-one-server", 0.025)] {
        let p = root
            .join("table3-overhead")
            .join(variant)
            .join("rep-1/summary.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["cpu_ms_per_request"] = serde_json::json!(ms);
        std::fs::write(&p, v.to_string()).unwrap();
    }
    write_rep(root, &r("my-new-exp", "only", 1, 123.0, 5.0, None, None));
    // The paper's configuration of Fig. 2 with its own bounds: drawn as fig2.
    for (variant, x, fault) in [
        ("coral-keep-alive", 700.0, Some((3, 300))),
        ("one-server", 500.0, None),
        ("two-servers", 1000.0, None),
    ] {
        write_rep(
            root,
            &r("fig2-throughput", variant, 1, x, 300.0, fault, None),
        );
    }
    for (rep, k, d) in [(1, 0.6, 280.0), (2, 0.7, 300.0), (3, 0.8, 320.0)] {
        let steps = [("kernel_ops", k), ("total", 1.5), ("detection_ms", d)];
        write_rep(
            root,
            &RepSpec {
                exp: "table1-failover",
                variant: "dual-role",
                rep,
                throughput: 800.0,
                stall_ms: 300.0,
                fault: Some((3, 300)),
                failover: Some(&steps),
            },
        );
    }
    reliability_sources(root);
    double_fault(root);
}

/// `double-fault`: 8 clients for 7 s at 5 ms a request; server-a killed at
/// 1.5 s (every client stalls 300 ms, client 0's request fails), the spare
/// joins at 3 s (restored at 3.02 s), server-b killed at 5 s (200 ms stall,
/// no error).
fn double_fault(root: &Path) {
    let dir = root.join("double-fault/single-role-spare/rep-1");
    std::fs::create_dir_all(&dir).unwrap();
    let at = |ms: u64| T0 + ms * MS;
    let mut recs = Vec::new();
    for client in 0..8u32 {
        let (mut t, mut seq) = (at(0) + u64::from(client) * 100_000, 0);
        while t < at(7000) {
            let mut end = t + 5 * MS;
            let mut failed = false;
            for (f, stall, fails) in [(1500, 300, client == 0), (5000, 200, false)] {
                if t <= at(f) && end > at(f) {
                    end = at(f + stall);
                    failed = fails;
                }
            }
            recs.push((client, seq, t, end, failed));
            t = end + 50_000;
            seq += 1;
        }
    }
    std::fs::write(dir.join("requests.csv"), requests_csv(&recs)).unwrap();
    let ev = format!(
        "t_unix_ns,host,source,event,detail\n\
         {},server-a,faultinject,kill,SIGKILL\n\
         {},server-b,coral,join-accepted,node=3 epoch=3\n\
         {},server-b,coral,integration,total=1.5\n\
         {},server-b,faultinject,kill,SIGKILL\n",
        at(1500),
        at(3000),
        at(3020),
        at(5000)
    );
    std::fs::write(dir.join("events.csv"), ev).unwrap();
    let errors = recs.iter().filter(|r| r.4).count() as u64;
    let summary = Summary {
        schema_version: 1,
        requests: recs.len() as u64,
        ok: recs.len() as u64 - errors,
        errors,
        max_stall_ms: 300.0,
        p50_ms: 5.0,
        p99_ms: 5.0,
        throughput_rps: 1000.0,
        fault_at_unix_ns: Some(at(1500)),
        run_start_unix_ns: T0 - 500 * MS,
        warmup_end_unix_ns: T0 + 500 * MS,
        run_end_unix_ns: T0 + 7000 * MS,
        integration: Some([("total".to_string(), 1.5)].into()),
        ..Default::default()
    };
    let mut v = serde_json::to_value(&summary).unwrap();
    v["vulnerability_ms"] = serde_json::json!(1520.0);
    std::fs::write(dir.join("summary.json"), v.to_string()).unwrap();
    let config = serde_json::json!({"experiment": "double-fault", "variant": "single-role-spare",
        "rep": 1, "quick": true, "service": "coral", "clients": 8, "size": 1024, "app": "cgi"});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// The Reliability section's three sources, as their writers write them:
/// the campaign's trials.csv, the hostile-input experiment's attacks.csv
/// and the fuzz smoke's fuzz.csv.
fn reliability_sources(root: &Path) {
    let put = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    put(
        "fault-campaign/trials.csv",
        "seed,kind,target,target_role,instant_s,pause_s,role,shape,verdict,requests,ok,lost,errors,errors_by_kind,reconnects,digest_mismatches,duplicate_executions,split_brain,stall_ms,detail\n\
         1,kill,server-a,primary,1.3,,single,keep-alive/1KB,pass,900,900,0,0,,0,0,4,0,612.4,\n\
         2,partition,server-a+server-b,both,2.0,,dual,pipelined/16KB,pass,800,800,0,0,,0,0,0,0,1500.0,\n",
    );
    put(
        "hostile-input/attacks.csv",
        "attack,target,sent,observed,counter,counted,requests,ok,errors,lost,reconnects,digest_mismatches,detections,address_moves,verdict,detail\n\
         forged heartbeats (garbage; wrong key),server-a:7011,2000,-,server-a hb_rejected,2000,1100,1100,0,0,0,0,0,0,pass,\n\
         SYN flood from unanswered sources,192.0.2.100:80,5000,-,-,,735,735,0,0,0,0,0,0,pass,\n",
    );
    put(
        "fuzz/fuzz.csv",
        "target,seconds,runs,cov,ft,corpus,findings,status\nnode_config,60,12345,800,1500,40,0,ok\ntopology_json,60,23456,900,1700,12,0,ok\n",
    );
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(exe())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("coral-exp runs")
}

fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn check_png(p: &Path) {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(bytes.len() > 1000, "{} is too small", p.display());
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        p.display()
    );
}

fn svg(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(s.contains("<svg"), "{} is not an SVG", p.display());
    s
}

#[test]
fn plot_and_report_from_a_synthetic_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    synthetic_tree(&dir.join("results"));

    let o = run(dir, &["plot"]);
    assert_ok(&o, "plot");
    let figs = dir.join("paper-figures/variants");
    for stem in [
        "baseline-one-server-throughput",
        "baseline-one-server-latency",
        "baseline-two-servers-throughput",
        "baseline-throughput-bars",
        "fig2-throughput-coral-throughput",
        "fig2-throughput-coral-latency",
        "table3-overhead-throughput-bars",
        "my-new-exp-only-latency",
    ] {
        check_png(&figs.join(format!("{stem}.png")));
        svg(&figs.join(format!("{stem}.svg")));
    }
    // The paper's figures by the paper's names, at the top, with the same
    // run's bounds.
    let top = dir.join("paper-figures");
    check_png(&top.join("fig2.png"));
    let f = svg(&top.join("fig2.svg"));
    assert!(f.contains("Fig. 2: system throughput per second") && f.contains("(peak): 1000 req/s"));
    assert!(!top.join("fig2-throughput-coral-throughput.png").exists());
    // The baseline's own peaks (medians 512.5 -> "513" rounded and 1001) on
    // its figure; fig2-throughput/coral has its own experiment's (1000),
    // never baseline's (another run).
    let b1 = svg(&figs.join("baseline-one-server-throughput.svg"));
    assert!(
        b1.contains("two unreplicated servers (peak): 1001 req/s"),
        "two-server peak missing"
    );
    assert!(
        b1.contains("one unreplicated server (peak): 513 req/s"),
        "one-server peak missing"
    );
    // Axis titles with units and the fault from events.csv on the Fig. 2 style plot.
    let f2 = svg(&figs.join("fig2-throughput-coral-throughput.svg"));
    assert!(
        f2.contains("(peak): 1000 req/s") && !f2.contains("1001 req/s"),
        "a bound from another run"
    );
    assert!(
        f2.contains("time since run start (s), requests binned by completion"),
        "x title missing"
    );
    assert!(
        f2.contains("successful requests per second (req/s)"),
        "y title missing"
    );
    // Time zero is the driver's start from summary.json, 0.5 s before the first request.
    assert!(
        f2.contains("fault injected (t = 3.5 s)"),
        "fault line missing"
    );
    assert!(
        f2.contains("end of warm-up (t = 1.5 s)"),
        "warm-up line missing"
    );
    let f3 = svg(&figs.join("fig2-throughput-coral-latency.svg"));
    assert!(
        f3.contains("request latency (ms, log scale)"),
        "latency y title missing"
    );
    assert!(
        f3.contains("request start, time since run start (s)"),
        "latency x title missing"
    );
    assert!(f3.contains("zoom on the fault"), "zoom panel missing");
    assert!(
        f3.contains("failed request (1 in this panel)"),
        "the one reset is not drawn"
    );
    // double-fault: both faults, the join and the window on one timeline.
    check_png(&top.join("double-fault-single-role-spare.png"));
    let d = svg(&top.join("double-fault-single-role-spare.svg"));
    for label in [
        "first fault (t = 2 s)",
        "join accepted (t = 3.5 s)",
        "fault tolerance restored (t = 3.52 s)",
        "second fault (t = 5.5 s)",
        "window of vulnerability (1520 ms)",
        "failed request (1)",
    ] {
        assert!(
            d.contains(label),
            "{label} missing from the double-fault figure"
        );
    }
    // No fault in baseline: no zoom, no fault line.
    let b = svg(&figs.join("baseline-one-server-latency.svg"));
    assert!(!b.contains("zoom on the fault") && !b.contains("fault injected"));

    let pv = paper_values();
    let o = run(dir, &["report", "--paper-values", pv.to_str().unwrap()]);
    assert_ok(&o, "report");
    let md = std::fs::read_to_string(dir.join("results/REPORT.md")).unwrap();
    // The false-detection benchmark: its setting, run time and allowance,
    // shown and not judged over less than 10 minutes.
    assert!(md.contains("## False detections under load"), "{md}");
    assert!(
        md.contains("| hb-010ms-1mb-no-quota | 10 | 0.108 | 0 | 0 | 0 |"),
        "{md}"
    );
    assert!(
        md.contains("`hb-010ms-1mb-no-quota`: 0.108 min of runs, shorter than the 10 minutes"),
        "{md}"
    );
    let t2 = std::fs::read_to_string(top.join("table2.md")).unwrap();
    assert!(t2.starts_with("# Table 2") && t2.contains("**Not reproduced**"));
    assert!(top.join("table1.md").is_file() && top.join("table3.md").is_file());
    assert!(md.contains("](../paper-figures/fig2.png)"));

    // Medians and spreads over the synthetic repetitions, exactly.
    assert!(
        md.contains("| throughput (req/s) | 512.5 (498–530.5) | 1001 (987.5–1010.8) |"),
        "baseline row:\n{md}"
    );
    assert!(
        md.contains("| max stall (ms) | 300 (290–310) |"),
        "stall row:\n{md}"
    );
    assert!(
        md.contains("| Total (`total`) | 1.5 | 1.5 (1.25–1.75) |"),
        "failover total:\n{md}"
    );
    assert!(md
        .contains("| Kernel Notification and Operations (`kernel_ops`) | 0.3 | 0.3 (0.25–0.35) |"));
    assert!(md.contains("| `detection_ms_synthetic` | — | 220 (210–230) |"));
    assert!(md.contains("| errors: reset | 1 |"));
    // Fig. 2 reading against fig2's own bounds (1000 and 500), never
    // baseline's (1001 and 512.5, another run).
    assert!(
        md.contains(
            "| coral | 905 (900–910) | 90.5 % | 605 (600–610) | 121 % | 300 (290–310) | 1 | 0 | — |"
        ),
        "bounds row:\n{md}"
    );
    // Overhead 1 - 700/1000 = 30 %, against one server 1 - 700/500 = -40 %.
    assert!(
        md.contains("| none | cgi | coral | 700 | 30 % | -40 % | 5 | 5 |"),
        "overhead row:\n{md}"
    );
    // The in-process group stands apart (its own two-servers reference).
    assert!(
        md.contains("| none | inproc | inproc-two-servers | 1800 | 0 % | -100 % | 5 | 5 |"),
        "inproc rows:\n{md}"
    );
    assert!(!md.contains("| none | cgi | inproc-"), "{md}");
    // What one unreplicated request costs in each mode, and side by side.
    assert!(
        md.contains(
            "Unreplicated, one request costs 1.5 ms of server CPU with the CGI application"
        ),
        "{md}"
    );
    assert!(md.contains("one request costs 0.025 ms of server CPU with the in-process application"));
    assert!(md.contains("the CGI application costs 60× the in-process one per request"));
    // The settings table: the application mode beside the paper's.
    assert!(
        md.contains("| application (how each reply is made) | WebStone 2.0 CGI: a process per request under Apache 1.3.23 | cgi, inproc |"),
        "settings:\n{md}"
    );
    assert!(md.contains(
        "`coral` overhead 30 % against the paper's 30 % (0 pp above): within the tolerance"
    ));
    // Table 1 with p95: kernel_ops 0.6, 0.7, 0.8 ms; the paper's 0.3 ms.
    assert!(
        md.contains("| dual-role | 3 | `kernel_ops` | 0.3 | 0.7 | 0.79 | 0.8 |"),
        "table 1 p95 row:\n{md}"
    );
    assert!(md.contains("| dual-role | 3 | `detection_ms` | — | 300 | 318 | 320 |"));
    // One generated sentence for the row that differs (0.7 > 2 x 0.3), none for total (1.5).
    assert!(md.contains("`dual-role` `kernel_ops`: 0.7 ms against the paper's 0.3 ms. Not measured here; a likely cause:"));
    assert!(!md.contains("`dual-role` `total`:"));
    // Every paper value of the tables present, from paper_values.csv.
    let text = std::fs::read_to_string(&pv).unwrap();
    let mut rows = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    for row in rows.records() {
        let row = row.unwrap();
        if matches!(&row[0], "table1" | "table3" | "settings" | "headline") {
            assert!(
                md.contains(&row[3]),
                "paper value {} ({}) missing",
                &row[3],
                &row[2]
            );
            assert!(md.contains(&row[2]), "paper label {} missing", &row[2]);
        }
    }
    // Configuration from config.json, sources named, figures embedded relatively.
    assert!(md.contains("synthetic-quota-42"));
    // The testbed settings come from config.json, with why they are so.
    let tb = md
        .split("### Testbed settings")
        .nth(1)
        .expect("testbed settings section");
    assert!(
        tb.contains("| 10042 |") && tb.contains("stop-and-go"),
        "{tb}"
    );
    assert!(tb.contains("`bridge-nf-call-*`) | 0 |"), "{tb}");
    assert!(md.contains("`results/baseline/one-server/rep-{1,2,3}/summary.json`"));
    assert!(md.contains("](../paper-figures/variants/fig2-throughput-coral-throughput.png)"));
    // Sections: present ones headed as the paper names them, absent ones absent.
    assert!(
        md.contains("## Fig. 2: service throughput before and after a fault (`fig2-throughput`)")
    );
    assert!(md.contains("## Table 3: throughput overhead (`table3-overhead`)"));
    assert!(md.contains("## Experiment `my-new-exp`"));
    // The summary table comes first; Table 2 is said plainly not reproduced.
    let first = md.find("\n## ").map(|i| &md[i + 4..]).unwrap_or("");
    assert!(
        first.starts_with("Summary: the paper's headlines and ours"),
        "{md}"
    );
    assert!(md.contains("| Table 3 | CoRAL (dual role) throughput overhead"));
    assert!(md.contains("| Table 2 | integration of a new server, back to duplex | 11.0 ms | no `table2-integration` results"));
    assert!(md.contains("**not reproduced** |"));
    assert!(md.contains("## Table 2: integration of a new server after failover\n\nNot reproduced"));
    assert!(md.find("## Appendix: configurations") > md.find("## Table 3"));
    // Reliability: the campaign by fault kind, the hostile-input table and
    // the fuzzing table, each read from its CSV.
    assert!(md.contains("## Reliability"), "{md}");
    assert!(
        md.contains("| kill | 1 | 1 | 0 | 0 | 0 | 0 | 0 | 4 | 612 |"),
        "{md}"
    );
    assert!(
        md.contains("| partition | 1 | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 1500 |"),
        "{md}"
    );
    assert!(
        md.contains("| forged heartbeats (garbage; wrong key) | server-a:7011 | 2000 | - | server-a hb_rejected | 2000 | 1100 | 0 | 0 | 0 | 0 | pass |"),
        "{md}"
    );
    assert!(md.contains("2 of 2 met the standard"), "{md}");
    assert!(
        md.contains("### Fuzzing") && md.contains("| `node_config` |"),
        "{md}"
    );
    assert!(md.contains("120 s in total"), "{md}");
    // double-fault: the clients in each phase, and the figure.
    let df = md
        .split("## A second fault after reintegration")
        .nth(1)
        .expect("double-fault section");
    for row in [
        "| single-role-spare | 1 | 1520 | 1.5 |",
        "| single-role-spare | before the first fault | 1 | 1000 |",
        "| single-role-spare | window of vulnerability | 1 | 1520 |",
        "| single-role-spare | duplex again | 1 | 1980 |",
        "| single-role-spare | after the second fault | 1 | 2000 |",
    ] {
        assert!(df.contains(row), "{row} missing:\n{df}");
    }
    let phase = |name: &str| -> Vec<String> {
        let head = format!("| single-role-spare | {name} |");
        let line = df.lines().find(|l| l.starts_with(&head)).unwrap();
        line.split('|').map(|c| c.trim().to_string()).collect()
    };
    // Cells: 1 variant, 2 phase, 3 reps, 4 duration, 5 rps, 6 p50, 7 p99, 8 errors, 9 stall.
    let (w, s2) = (
        phase("window of vulnerability"),
        phase("after the second fault"),
    );
    // The stall: 300 ms (200 at the second fault) from the last completion
    // before the fault, up to 5 ms more, and client 0's retry after its error.
    let ms = |c: &str| c.parse::<f64>().unwrap();
    assert_eq!(w[8], "1", "{df}");
    assert!((300.0..=311.0).contains(&ms(&w[9])), "{df}");
    assert_eq!(s2[8], "0", "{df}");
    assert!((200.0..=206.0).contains(&ms(&s2[9])), "{df}");
    assert_eq!(phase("duplex again")[8], "0");
    assert!(
        df.contains("](../paper-figures/double-fault-single-role-spare.png)"),
        "{df}"
    );
    for absent in [
        "## Fig. 3",
        "load balancers",
        "baseline-crash",
        "Identity Restoration",
    ] {
        assert!(
            !md.contains(absent),
            "section for an absent experiment: {absent}"
        );
    }
}

#[test]
fn a_broken_repetition_is_reported_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("results");
    synthetic_tree(&root);
    std::fs::write(
        root.join("baseline/one-server/rep-3/summary.json"),
        "{ not json",
    )
    .unwrap();
    let o = run(
        tmp.path(),
        &["report", "--paper-values", paper_values().to_str().unwrap()],
    );
    assert_ok(&o, "report");
    let md = std::fs::read_to_string(root.join("REPORT.md")).unwrap();
    // Median of the two readable reps (512.5, 530.5), and the problem listed.
    assert!(
        md.contains("| throughput (req/s) | 521.5 (512.5–530.5) |"),
        "{md}"
    );
    assert!(md.contains("## Problems found in the results tree"));
    assert!(md.contains("results/baseline/one-server/rep-3/summary.json: not a summary"));
}

#[test]
fn bad_input_gives_a_clear_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["plot", "--results", "no-such-dir"][..],
        &["report", "--results", "no-such-dir"][..],
    ] {
        let o = run(tmp.path(), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("no-such-dir") && err.contains("does not exist"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // An empty tree, and a paper-values file that is not there.
    std::fs::create_dir_all(tmp.path().join("results")).unwrap();
    let o = run(tmp.path(), &["plot"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no results under"));
    synthetic_tree(&tmp.path().join("results"));
    let o = run(tmp.path(), &["report", "--paper-values", "missing.csv"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.csv"));
}

#[test]
fn two_runs_are_compared_against_their_stated_spreads() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("run-a");
    let b = tmp.path().join("run-b");
    synthetic_tree(&a);
    synthetic_tree(&b);
    // Run B: the two-server baseline far above run A's spread (987.5-1010.75),
    // one-server's middle repetition moved inside run A's spread.
    for (rep, x) in [(1, 2001.0), (2, 1987.5), (3, 2010.75)] {
        let spec = RepSpec {
            exp: "baseline",
            variant: "two-servers",
            rep,
            throughput: x,
            stall_ms: 5.0,
            fault: None,
            failover: None,
        };
        write_rep(&b, &spec);
    }
    let o = run(
        tmp.path(),
        &["compare", "--results", "run-a", "--against", "run-b"],
    );
    assert_ok(&o, "compare");
    let md = std::fs::read_to_string(a.join("AGREEMENT.md")).unwrap();
    assert!(
        md.contains(
            "| baseline | two-servers | throughput (req/s) | 1001 (987.5–1010.8) | 2001 (1987.5–2010.8) | 2.00 | differ |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| baseline | one-server | throughput (req/s) | 512.5 (498–530.5) | 512.5 (498–530.5) | 1.00 | agree |"),
        "{md}"
    );
    // One repetition per side: no spread was stated, so no verdict beyond that.
    assert!(md.contains("| my-new-exp | only | throughput (req/s) | 123 | 123 | 1.00 | agree |"));
    let csv = std::fs::read_to_string(tmp.path().join("run-a/agreement.csv")).unwrap();
    assert!(csv.starts_with("experiment,variant,metric,a_median"));
    assert!(csv.contains("baseline,two-servers,throughput (req/s),1001,987.5,1010.75,3,2001,"));

    // The report lists only what does not agree.
    let o = run(
        tmp.path(),
        &[
            "report",
            "--results",
            "run-a",
            "--against",
            "run-b",
            "--paper-values",
            paper_values().to_str().unwrap(),
        ],
    );
    assert_ok(&o, "report --against");
    let rep = std::fs::read_to_string(a.join("REPORT.md")).unwrap();
    let section = rep
        .split("## Run-to-run agreement")
        .nth(1)
        .expect("agreement section");
    assert!(section.contains("| baseline | two-servers | throughput (req/s)"));
    assert!(!section.contains("| baseline | one-server | throughput (req/s)"));

    // Nothing in common: a clear error.
    std::fs::create_dir_all(tmp.path().join("run-c/other/v/rep-1")).unwrap();
    let o = run(
        tmp.path(),
        &["compare", "--results", "run-a", "--against", "run-c"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to compare"));
}
