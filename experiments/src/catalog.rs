//! The experiments `coral-exp run` knows, described as data: each is a list
//! of [`Variant`]s (service, servers, fault, load, conditions) and a
//! [`Shape`] (durations, repetitions), QUICK and full. Nothing here runs
//! anything: the runner runs what [`experiment`] describes.
//!
//! The first experiments, with no paper conditions:
//! - `baseline`: peak throughput of unreplicated servers, no fault. Variants
//!   `one-server` (8 clients on server-a) and `two-servers` (8 clients split
//!   round-robin over server-a and server-b, both serving at once).
//! - `baseline-crash`: variant `one-server`; server-a is SIGKILLed mid-run and
//!   restarted 1.5 s later (what a supervisor would do): what clients of a
//!   server without fault tolerance see (errors, refused connects, then
//!   reconnects).
//! - `lb-compare`: [`LB_COMPARE`], each with a link cut of its target at 40%
//!   of the run (at least 1.5 s after warm-up), restored 35% of the run later.
//!
//! The experiments that regenerate the paper's results ([`NAMES`]; seed
//! paper section 4; docs/DESIGN.md section 8), each with a QUICK and a full
//! shape.
//!
//! Every one of [`NAMES`] runs on the paper's 100 Mb/s LAN with a CPU quota
//! per server host covering every process on it (application and CoRAL
//! tasks), unless `run --lan-mbit/--server-cpu` overrides them. Two quotas:
//! [`CPU_BOUND`] (0.1 core) where throughput must be bounded by server
//! capacity as on the paper's machines (Fig. 2, Table 3): with half a core
//! one unreplicated server already fills the 100 Mb/s LAN with 1 KB replies,
//! so one and two servers would look alike; and [`CPU_AMPLE`] (0.5 core)
//! where timing is measured (failover, latency, sweeps), so that CFS
//! throttling (up to 9 ms per 10 ms period at 0.1 core,
//! [`crate::conditions::CFS_PERIOD_US`]) does not hide it.
//!
//! - `fig2-throughput`: 8 clients, 1 KB replies, dual-role CoRAL, server-a's
//!   link cut mid-run, keep-alive and connection-per-request; the one- and
//!   two-unreplicated-server peaks in the same experiment and conditions;
//!   keep-alive again with the in-process application (`inproc-` variants).
//! - `fig3-latency`: every request's latency across the same fault
//!   (keep-alive, dual role).
//! - `table1-failover`: failover breakdown; dual role (server-a cut: the
//!   survivor rebuilds server-a's connections and takes the address server-a
//!   fronted) and single role with the backup cut (the primary takes the
//!   address: where it really moves); full adds single role, primary cut.
//! - `table2-integration`: reintegration (paper 3.2, Table 2): the primary
//!   killed, the spare joins the survivor under the 8 clients, single role
//!   and dual role (the spare becomes the primary of the address the killed
//!   node fronted); Table 2's rows from the survivor's `integration` event
//!   (QUICK 3 repetitions per variant, full 20).
//! - `double-fault` (the issue's, not the paper's): the same, then the
//!   survivor killed too: the service carries on from the spare; single
//!   role and dual role (the spare takes server-a's address over).
//! - `false-detection` (not the paper's; [`false_detection`]): long
//!   fault-free runs that count false detections under the loads that
//!   provoked them, at 10 and 5 ms x 3 heartbeats.
//! - `table3-overhead`: one and two unreplicated servers, single-role and
//!   dual-role CoRAL, no fault, same quotas; with the CGI application and
//!   again in process (`inproc-` variants).
//!
//! `fig2-throughput`, `fig3-latency`, `table1-failover` and `table3-overhead`
//! run the paper's application, WebStone 2.0's CGI: a `webstone-cgi` process
//! per request ([`PAPER_CGI`]); everything else, and the `inproc-` variants
//! of Fig. 2 and Table 3, the in-process generator. `run --app` overrides ([`with_app`]).
//! - `detection-sweep`: heartbeats 1, 5, 10, 50, 100 ms, 3 misses, primary
//!   cut (stall), without a CPU quota (CFS throttling pauses a host for up
//!   to a period minus its quota, longer than three 1 ms heartbeats); a fault-free loaded run
//!   per heartbeat at the [`CPU_AMPLE`] quota shows what throttling does to
//!   detection (false detections); full adds a fault-free run without quota.
//! - `scale-sweep`: failover with 8, 100, 1000, 10000 extra idle keep-alive
//!   connections (QUICK: 100 and 1000), without a CPU quota: the transition's
//!   cost per connection is what it measures, not how CFS throttling at
//!   half a core spreads that work over periods.
//! - `reply-size-sweep`: 1 KB, 16 KB, 256 KB, 1 MB replies: two unreplicated
//!   servers and dual-role CoRAL with server-a cut mid-run.

use crate::conditions::Conditions;
use crate::services::{AppMode, CoralOptions, LbOptions, LbProfile};
use anyhow::{bail, Result};
use serde::Serialize;

/// Closed-loop clients of every experiment here.
pub const CLIENTS: u32 = 8;
/// Reply size in bytes.
pub const REPLY_SIZE: u64 = 1024;

/// A fault the runner injects during the load.
#[derive(Debug, Clone, Serialize)]
pub struct FaultPlan {
    /// `kill` (only kind used so far).
    pub kind: String,
    /// Host it hits.
    pub host: String,
    /// Seconds after the load driver started.
    pub at_s: f64,
    /// Restart the service this many seconds after the fault (None: never);
    /// for `link-cut`, restore the link then (failback).
    pub restart_after_s: Option<f64>,
}

/// A join the runner makes during the load (`coral-exp join HOST`).
#[derive(Debug, Clone, Serialize)]
pub struct JoinPlan {
    /// The host that joins the simplex node (spare, or a failed server).
    pub host: String,
    /// Seconds after the load driver started.
    pub at_s: f64,
}

/// The load of a variant (`coral-load` options).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LoadOptions {
    /// Closed-loop clients.
    pub clients: u32,
    /// Reply size in bytes.
    pub size: u64,
    /// A connection per request (WebStone 2.0) instead of keep-alive.
    pub connection_per_request: bool,
    /// Extra idle keep-alive connections held open through the run.
    pub idle_conns: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        default_load()
    }
}

/// One variant of an experiment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Variant {
    /// Directory name under the experiment.
    pub name: String,
    /// Service (`unreplicated`).
    pub service: String,
    /// Servers brought up.
    pub servers: u8,
    /// The fault, if any.
    pub fault: Option<FaultPlan>,
    /// A join after the fault (CoRAL), if any.
    pub join: Option<JoinPlan>,
    /// A second fault after the join, if any.
    pub second_fault: Option<FaultPlan>,
    /// CoRAL options (for `service == "coral"`).
    pub coral: CoralOptions,
    /// Load-balancer baseline options (for haproxy, keepalived).
    pub lb: LbOptions,
    /// The load.
    pub load: LoadOptions,
    /// The variant's conditions; `run --lan-mbit/--server-cpu` override.
    pub conditions: Conditions,
    /// The WebStone application on the servers; `run --app` overrides
    /// ([`with_app`]).
    pub app: AppMode,
}

/// The timing shape of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    /// Load duration in seconds (warm-up included, as `coral-load` counts).
    pub duration_s: f64,
    /// Warm-up at the start, excluded from statistics.
    pub warmup_s: f64,
    /// Repetitions per variant.
    pub reps: u32,
}

/// The variants and shape of experiment `name`, QUICK or full.
pub fn experiment(name: &str, quick: bool) -> Result<(Vec<Variant>, Shape)> {
    let shape = if quick {
        Shape {
            duration_s: 6.0,
            warmup_s: 1.0,
            reps: 1,
        }
    } else {
        Shape {
            duration_s: 20.0,
            warmup_s: 2.0,
            reps: 5,
        }
    };
    let v = |name: &str, servers: u8, fault: Option<FaultPlan>| Variant {
        name: name.into(),
        service: "unreplicated".into(),
        servers,
        fault,
        ..Variant::default()
    };
    let variants = match name {
        "baseline" => vec![v("one-server", 1, None), v("two-servers", 2, None)],
        "baseline-crash" => vec![v(
            "one-server",
            1,
            Some(FaultPlan {
                kind: "kill".into(),
                host: "server-a".into(),
                at_s: (shape.duration_s * 0.5).max(shape.warmup_s + 1.0),
                restart_after_s: Some(1.5),
            }),
        )],
        "lb-compare" => {
            // A link cut of the target, restored later in the run (failback).
            let at_s = (shape.duration_s * 0.4).max(shape.warmup_s + 1.5);
            LB_COMPARE
                .iter()
                .map(|(name, service, target)| {
                    let mut x = v(
                        name,
                        2,
                        Some(FaultPlan {
                            kind: "link-cut".into(),
                            host: target.to_string(),
                            at_s,
                            restart_after_s: Some(shape.duration_s * 0.35),
                        }),
                    );
                    x.service = service.to_string();
                    x.coral.dual_role = *name == "coral-dual";
                    x.lb = lb_options(name);
                    x
                })
                .collect()
        }
        "double-fault" => return Ok(double_fault(quick)),
        "false-detection" => return Ok(false_detection(quick)),
        n if NAMES.contains(&n) => {
            let (mut v, s) = paper_experiment(n, quick)?;
            if PAPER_CGI.contains(&n) {
                // As the paper ran them: WebStone 2.0's CGI, a process per
                // request. Table 3 keeps in-process variants (`inproc-…`).
                for x in v.iter_mut().filter(|x| !x.name.starts_with(INPROC_PREFIX)) {
                    x.app = AppMode::Cgi;
                }
            }
            return Ok((v, s));
        }
        "fig2-throughput" | "fig3-latency" | "table1-failover" | "table2-integration"
        | "table3-overhead" | "detection-sweep" | "scale-sweep" | "reply-size-sweep" => {
            bail!("experiment `{name}` is not built yet")
        }
        other => bail!(
            "unknown experiment `{other}` (the experiments: baseline, baseline-crash, lb-compare, double-fault, false-detection, fault-campaign, hostile-input, {})",
            NAMES.join(", ")
        ),
    };
    Ok((variants, shape))
}

/// `double-fault` (not in the paper): CoRAL under the 8 clients, single
/// role (`single-role-spare`) and dual role (`dual-role-spare`: the spare
/// becomes the primary of server-a's address, server-b its front);
/// server-a killed at 1.5 s, the spare joins server-b at 3 s, server-b
/// killed at 5 s: the service carries on from the spare. The window of
/// vulnerability (first fault to fault tolerance restored) is
/// `vulnerability_ms` in summary.json.
fn double_fault(quick: bool) -> (Vec<Variant>, Shape) {
    let s = shape(quick, (7.0, 0.5, 1), (7.0, 0.5, 5));
    let kill = |host: &str, at_s: f64| FaultPlan {
        kind: "kill".into(),
        host: host.into(),
        at_s,
        restart_after_s: None,
    };
    let variant = |name: &str, dual: bool| {
        let mut v = coral(name, dual, CoralOptions::default().heartbeat_ms);
        v.fault = Some(kill("server-a", 1.5));
        v.join = Some(JoinPlan {
            host: "spare".into(),
            at_s: 3.0,
        });
        v.second_fault = Some(kill("server-b", 5.0));
        v
    };
    (
        vec![
            variant("single-role-spare", false),
            variant("dual-role-spare", true),
        ],
        s,
    )
}

/// `false-detection` (not in the paper): fault-free single-role CoRAL with
/// a witness and `rejoin = true`, each run 10 minutes (QUICK: 10 s), under the
/// two loads that provoked false detections: 1 MB replies two at a time
/// from each of the 8 client slots (16 closed-loop keep-alive clients)
/// without a CPU quota (the 100 Mb/s LAN as everywhere), and 1 KB replies
/// from 8 clients at [`CPU_BOUND`] core per server host (CFS throttling);
/// at 10 ms x 3 heartbeats (the goal: none in 10 minutes) and 5 ms x 3 (at
/// most one in 10 minutes). summary.json counts `false_detections`,
/// `lease_lapses`, `fences`, `rejoins` and the heartbeat one-way delay.
pub fn false_detection(quick: bool) -> (Vec<Variant>, Shape) {
    let s = shape(quick, (10.0, 1.0, 1), (600.0, 1.0, 1));
    let mut v = Vec::new();
    for h in [10u64, 5] {
        let mut big = coral(&format!("hb-{h:03}ms-1mb-no-quota"), false, h);
        big.load.clients = 2 * CLIENTS;
        big.load.size = 1 << 20;
        big.conditions.server_cpu = None;
        v.push(big);
        let small = coral(
            &format!(
                "hb-{h:03}ms-1kb-{}",
                cpu_prefix(CPU_BOUND).trim_end_matches('-')
            ),
            false,
            h,
        );
        v.push(with_cpu(small, CPU_BOUND));
    }
    (v, s)
}

/// The false detections `false-detection` allows in 10 minutes at a
/// heartbeat of `h` ms (3 misses), the detector's goal under load: none at
/// 10 ms, one at 5 ms.
pub fn false_detections_allowed_per_10_min(h: u64) -> Option<u64> {
    match h {
        10.. => Some(0),
        5..=9 => Some(1),
        _ => None,
    }
}

/// lb-compare's variants: (name, service, fault target). The first is the
/// reference for throughput ratios (two unreplicated servers, both serving).
/// Targets are roles resolved when the fault is injected: a proxy's busiest
/// server, the VRRP master, CoRAL's primary for 192.0.2.100.
pub const LB_COMPARE: [(&str, &str, &str); 7] = [
    ("two-unreplicated", "unreplicated", "server-a"),
    ("haproxy-stock", "haproxy", "primary"),
    ("haproxy-tuned", "haproxy", "primary"),
    ("nginx", "nginx", "primary"),
    ("keepalived", "keepalived", "primary"),
    ("coral", "coral", "primary"),
    ("coral-dual", "coral", "primary:192.0.2.100"),
];

/// Baseline options of a variant: `haproxy-tuned` runs HAProxy's tuned
/// profile; everything else the defaults (stock HAProxy, 100 ms VRRP adverts).
fn lb_options(variant: &str) -> LbOptions {
    let mut o = LbOptions::default();
    if variant == "haproxy-tuned" {
        o.profile = LbProfile::Tuned;
    }
    o
}

/// The paper's experiments (each with the paper's conditions).
pub const NAMES: &[&str] = &[
    "fig2-throughput",
    "fig3-latency",
    "table1-failover",
    "table2-integration",
    "table3-overhead",
    "detection-sweep",
    "scale-sweep",
    "reply-size-sweep",
];

/// The paper's experiments that run its application, WebStone 2.0's CGI (a
/// `webstone-cgi` process per request), by default; the others (and
/// `inproc-` variants) run the in-process generator.
pub const PAPER_CGI: &[&str] = &[
    "fig2-throughput",
    "fig3-latency",
    "table1-failover",
    "table3-overhead",
];

/// Name prefix of a variant that runs the in-process application where its
/// experiment otherwise runs CGI (Table 3's cheap-application case).
pub const INPROC_PREFIX: &str = "inproc-";

/// Apply `run --app MODE`: an experiment with variants of both modes keeps
/// only those of `MODE` (Table 3); otherwise every variant runs `MODE`.
pub fn with_app(variants: &mut Vec<Variant>, app: AppMode) {
    let mixed = variants.iter().any(|v| v.app == app) && variants.iter().any(|v| v.app != app);
    if mixed {
        variants.retain(|v| v.app == app);
    } else {
        for v in variants.iter_mut() {
            v.app = app;
        }
    }
}

/// Server CPU quota (cores) where server capacity must bound throughput.
pub const CPU_BOUND: f64 = 0.1;
/// Server CPU quota (cores) where timing is measured.
pub const CPU_AMPLE: f64 = 0.5;

/// The paper's conditions (section 4): 100 Mb/s switched LAN; server
/// capacity emulated with `cpu` cores per server host.
pub fn paper_conditions(cpu: f64) -> Conditions {
    Conditions {
        lan_mbit: Some(100),
        server_cpu: Some(cpu),
    }
}

fn shape(quick: bool, q: (f64, f64, u32), f: (f64, f64, u32)) -> Shape {
    let (duration_s, warmup_s, reps) = if quick { q } else { f };
    Shape {
        duration_s,
        warmup_s,
        reps,
    }
}

fn unreplicated(name: &str, servers: u8) -> Variant {
    Variant {
        name: name.into(),
        service: "unreplicated".into(),
        servers,
        conditions: paper_conditions(CPU_AMPLE),
        ..Variant::default()
    }
}

fn with_cpu(mut v: Variant, cpu: f64) -> Variant {
    v.conditions.server_cpu = Some(cpu);
    v
}

fn coral(name: &str, dual_role: bool, heartbeat_ms: u64) -> Variant {
    Variant {
        name: name.into(),
        service: "coral".into(),
        servers: 2,
        coral: CoralOptions {
            heartbeat_ms,
            misses: 3,
            dual_role,
            ..CoralOptions::default()
        },
        conditions: paper_conditions(CPU_AMPLE),
        ..Variant::default()
    }
}

fn cut(host: &str, at_s: f64) -> Option<FaultPlan> {
    Some(FaultPlan {
        kind: "link-cut".into(),
        host: host.into(),
        at_s,
        restart_after_s: None,
    })
}

/// The variants and shape of paper experiment `name` (one of [`NAMES`]).
fn paper_experiment(name: &str, quick: bool) -> Result<(Vec<Variant>, Shape)> {
    let hb = CoralOptions::default().heartbeat_ms;
    let (variants, shape) = match name {
        "fig2-throughput" => fig2_throughput(quick, hb),
        "fig3-latency" => fig3_latency(quick, hb),
        "table1-failover" => table1_failover(quick, hb),
        "table2-integration" => table2_integration(quick, hb),
        "table3-overhead" => table3_overhead(quick, hb),
        "detection-sweep" => detection_sweep(quick),
        "scale-sweep" => scale_sweep(quick, hb),
        "reply-size-sweep" => reply_size_sweep(quick, hb),
        other => bail!("`{other}` is not an experiment of the catalog"),
    };
    Ok((variants, shape))
}

/// Fig. 2: throughput of one and two unreplicated servers and of a CoRAL pair
/// whose primary's link is cut half-way, keep-alive and connection per request,
/// CGI and in-process.
fn fig2_throughput(quick: bool, hb: u64) -> (Vec<Variant>, Shape) {
    let s = shape(quick, (6.0, 1.0, 1), (20.0, 2.0, 3));
    let at = s.duration_s / 2.0;
    let mut ka = coral("coral-keep-alive", true, hb);
    ka.fault = cut("server-a", at);
    let mut cpr = coral("coral-connection-per-request", true, hb);
    cpr.fault = cut("server-a", at);
    cpr.load.connection_per_request = true;
    let mut one_cpr = unreplicated("one-server-connection-per-request", 1);
    one_cpr.load.connection_per_request = true;
    let mut two_cpr = unreplicated("two-servers-connection-per-request", 2);
    two_cpr.load.connection_per_request = true;
    // Keep-alive again with the in-process application (`inproc-`),
    // so Fig. 2 shows both applications from one run.
    let mut inproc_ka = coral(&format!("{INPROC_PREFIX}coral-keep-alive"), true, hb);
    inproc_ka.fault = cut("server-a", at);
    let v = vec![
        unreplicated("one-server", 1),
        unreplicated("two-servers", 2),
        ka,
        one_cpr,
        two_cpr,
        cpr,
        unreplicated(&format!("{INPROC_PREFIX}one-server"), 1),
        unreplicated(&format!("{INPROC_PREFIX}two-servers"), 2),
        inproc_ka,
    ];
    let v = v.into_iter().map(|x| with_cpu(x, CPU_BOUND)).collect();
    (v, s)
}

/// Fig. 3: latency of a dual-role CoRAL pair across a link cut half-way.
fn fig3_latency(quick: bool, hb: u64) -> (Vec<Variant>, Shape) {
    let s = shape(quick, (6.0, 1.0, 1), (20.0, 2.0, 3));
    let mut v = coral("coral-keep-alive", true, hb);
    v.fault = cut("server-a", s.duration_s / 2.0);
    (vec![v], s)
}

/// Table 1: the failover breakdown, dual role and single role (the backup's or,
/// in the full shape, the primary's link cut).
fn table1_failover(quick: bool, hb: u64) -> (Vec<Variant>, Shape) {
    let s = shape(quick, (3.0, 0.5, 3), (4.0, 1.0, 20));
    let at = 1.5;
    let mut dual = coral("dual-role", true, hb);
    dual.fault = cut("server-a", at);
    let mut backup = coral("single-role-backup-cut", false, hb);
    backup.fault = cut("server-b", at);
    let mut primary = coral("single-role-primary-cut", false, hb);
    primary.fault = cut("server-a", at);
    let mut v = vec![dual, backup];
    if !quick {
        v.push(primary);
    }
    (v, s)
}

/// Table 2: a spare joins the survivor of a killed primary under load,
/// single role (`single-role-spare-joins`) and in the paper's dual-role
/// configuration (`dual-role-spare-joins`: the spare becomes the primary
/// of the address server-a fronted, server-b its front).
fn table2_integration(quick: bool, hb: u64) -> (Vec<Variant>, Shape) {
    // The primary killed at 1.5 s; the spare joins the survivor
    // 1.5 s later, under the 8 clients (Table 2 from the simplex
    // node's `integration` event).
    let s = shape(quick, (5.0, 0.5, 3), (5.0, 0.5, 20));
    let variant = |name: &str, dual: bool| {
        let mut v = coral(name, dual, hb);
        v.fault = Some(FaultPlan {
            kind: "kill".into(),
            host: "server-a".into(),
            at_s: 1.5,
            restart_after_s: None,
        });
        v.join = Some(JoinPlan {
            host: "spare".into(),
            at_s: 3.0,
        });
        v
    };
    (
        vec![
            variant("single-role-spare-joins", false),
            variant("dual-role-spare-joins", true),
        ],
        s,
    )
}

/// Table 3: CoRAL's overhead against one and two unreplicated servers, CPU-
/// bound and with ample CPU, CGI and in-process.
fn table3_overhead(quick: bool, hb: u64) -> (Vec<Variant>, Shape) {
    let s = shape(quick, (4.0, 1.0, 1), (15.0, 2.0, 3));
    let mut v = Vec::new();
    // CGI (the paper's application; the caller marks it) and, with
    // the `inproc-` prefix, the cheap in-process application.
    for mode in ["", INPROC_PREFIX] {
        for cpu in [CPU_BOUND, CPU_AMPLE] {
            let p = format!("{mode}{}", cpu_prefix(cpu));
            for x in [
                unreplicated(&format!("{p}one-server"), 1),
                unreplicated(&format!("{p}two-servers"), 2),
                coral(&format!("{p}coral-single-role"), false, hb),
                coral(&format!("{p}coral-dual-role"), true, hb),
            ] {
                v.push(with_cpu(x, cpu));
            }
        }
    }
    (v, s)
}

/// The heartbeat interval swept: a cut at each, and fault-free runs for false
/// detections.
fn detection_sweep(quick: bool) -> (Vec<Variant>, Shape) {
    let s = shape(quick, (3.0, 0.5, 1), (8.0, 1.0, 3));
    let mut v = Vec::new();
    for h in [1u64, 5, 10, 50, 100] {
        let mut f = coral(&format!("hb-{h:03}ms-cut"), false, h);
        f.fault = cut("server-a", s.duration_s - 1.5);
        f.conditions.server_cpu = None;
        v.push(f);
        if !quick {
            let mut q = coral(&format!("hb-{h:03}ms-no-fault"), false, h);
            q.conditions.server_cpu = None;
            v.push(q);
        }
        let p = cpu_prefix(CPU_AMPLE);
        let p = p.trim_end_matches('-');
        v.push(coral(&format!("hb-{h:03}ms-no-fault-{p}"), false, h));
    }
    (v, s)
}

/// Failover with many idle connections open.
fn scale_sweep(quick: bool, hb: u64) -> (Vec<Variant>, Shape) {
    let s = shape(quick, (4.0, 0.5, 1), (8.0, 1.0, 3));
    let counts: &[u32] = if quick {
        &[100, 1000]
    } else {
        &[8, 100, 1000, 10000]
    };
    let v = counts
        .iter()
        .map(|n| {
            let mut x = coral(&format!("idle-{n:05}"), false, hb);
            x.load.idle_conns = *n;
            x.conditions.server_cpu = None;
            x.fault = cut("server-a", s.duration_s - 1.5);
            x
        })
        .collect();
    (v, s)
}

/// Failover with replies from 1 KB to 1 MB, against two unreplicated servers.
fn reply_size_sweep(quick: bool, hb: u64) -> (Vec<Variant>, Shape) {
    let s = shape(quick, (4.0, 0.5, 1), (12.0, 1.0, 3));
    let mut v = Vec::new();
    for (label, size) in [
        ("0001KB", 1024u64),
        ("0016KB", 16 * 1024),
        ("0256KB", 256 * 1024),
        ("1024KB", 1024 * 1024),
    ] {
        let mut u = unreplicated(&format!("two-servers-{label}"), 2);
        u.load.size = size;
        let mut c = coral(&format!("coral-dual-role-{label}"), true, hb);
        c.load.size = size;
        c.fault = cut("server-a", s.duration_s * 0.6);
        v.push(u);
        v.push(c);
    }
    (v, s)
}

/// The variant-name prefix of a CPU quota: `cpu010-` for 0.1 core.
pub fn cpu_prefix(cpu: f64) -> String {
    format!("cpu{:03}-", (cpu * 100.0).round() as u32)
}

/// Default load of a variant (8 clients, 1 KB, keep-alive, no idle conns).
pub fn default_load() -> LoadOptions {
    LoadOptions {
        clients: CLIENTS,
        size: REPLY_SIZE,
        connection_per_request: false,
        idle_conns: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_experiment_has_both_shapes() {
        for name in NAMES {
            for quick in [true, false] {
                let (v, s) = experiment(name, quick).unwrap();
                assert!(!v.is_empty(), "{name}");
                for x in &v {
                    if let Some(f) = &x.fault {
                        assert!(
                            f.at_s > s.warmup_s && f.at_s + 1.0 < s.duration_s,
                            "{name}/{}: fault at {} in a {} s run",
                            x.name,
                            f.at_s,
                            s.duration_s
                        );
                    }
                    assert!(x.load.clients > 0 && x.load.size > 0);
                }
            }
        }
        let (_, s) = experiment("table1-failover", false).unwrap();
        assert!(s.reps >= 20);
        let (v, _) = experiment("scale-sweep", false).unwrap();
        assert_eq!(
            v.iter().map(|x| x.load.idle_conns).collect::<Vec<_>>(),
            vec![8, 100, 1000, 10000]
        );
        assert!(v.iter().all(|x| x.conditions.server_cpu.is_none()));
        assert!(experiment("nope", true).is_err());
    }

    #[test]
    fn experiments_and_shapes() {
        let (v, s) = experiment("baseline", true).unwrap();
        assert_eq!(
            v.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
            vec!["one-server", "two-servers"]
        );
        assert_eq!(s.reps, 1);
        let (v, s) = experiment("baseline-crash", false).unwrap();
        let f = v[0].fault.as_ref().unwrap();
        assert!(f.at_s > s.warmup_s && f.at_s + 1.0 < s.duration_s);
        assert_eq!(s.reps, 5);
        let (v, s) = experiment("table2-integration", false).unwrap();
        assert_eq!(s.reps, 20, "the issue asks for at least 20");
        let names: Vec<&str> = v.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["single-role-spare-joins", "dual-role-spare-joins"]);
        let dual: Vec<bool> = v.iter().map(|x| x.coral.dual_role).collect();
        assert_eq!(dual, [false, true]);
        for x in &v {
            let (f, j) = (x.fault.as_ref().unwrap(), x.join.as_ref().unwrap());
            assert!(f.at_s > s.warmup_s && f.at_s + 1.0 <= j.at_s && j.at_s + 1.0 < s.duration_s);
            assert_eq!((f.host.as_str(), j.host.as_str()), ("server-a", "spare"));
        }
        let (q, qs) = experiment("table2-integration", true).unwrap();
        assert!(
            q.len() == 2 && qs.reps <= 5,
            "QUICK: at most 5 repetitions per variant"
        );
        let (v, s) = experiment("double-fault", true).unwrap();
        let (f, j, g) = (
            v[0].fault.as_ref().unwrap(),
            v[0].join.as_ref().unwrap(),
            v[0].second_fault.as_ref().unwrap(),
        );
        assert!(f.at_s < j.at_s && j.at_s + 1.0 < g.at_s && g.at_s + 1.0 < s.duration_s);
        assert_eq!((f.host.as_str(), g.host.as_str()), ("server-a", "server-b"));
        let dual: Vec<bool> = v.iter().map(|x| x.coral.dual_role).collect();
        assert_eq!(dual, [false, true]);
        assert!(experiment("nope", true).is_err());
        let (v, s) = experiment("lb-compare", true).unwrap();
        assert_eq!(v.len(), 7);
        for x in &v {
            let f = x.fault.as_ref().unwrap();
            let back = f.at_s + f.restart_after_s.unwrap();
            assert!(f.kind == "link-cut" && f.at_s > s.warmup_s + 1.0 && back + 1.0 < s.duration_s);
        }
        assert!(v.iter().any(|x| x.service == "keepalived"));
        assert!(v.iter().filter(|x| x.coral.dual_role).count() == 1);
        assert!(v.iter().all(|x| x.app == AppMode::Inproc));
    }

    #[test]
    fn false_detection_runs_ten_fault_free_minutes_per_setting() {
        let (v, s) = experiment("false-detection", false).unwrap();
        assert_eq!((s.duration_s, s.reps), (600.0, 1));
        assert_eq!(
            experiment("false-detection", true).unwrap().1.duration_s,
            10.0
        );
        let names: Vec<&str> = v.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hb-010ms-1mb-no-quota",
                "hb-010ms-1kb-cpu010",
                "hb-005ms-1mb-no-quota",
                "hb-005ms-1kb-cpu010"
            ]
        );
        for x in &v {
            assert!(x.fault.is_none() && x.join.is_none() && x.service == "coral");
            assert_eq!((x.coral.misses, x.coral.dual_role), (3, false));
        }
        assert_eq!((v[0].load.clients, v[0].load.size), (16, 1 << 20));
        assert_eq!(v[0].conditions.server_cpu, None);
        assert_eq!((v[1].load.clients, v[1].load.size), (8, 1024));
        assert_eq!(v[1].conditions.server_cpu, Some(CPU_BOUND));
        assert_eq!(false_detections_allowed_per_10_min(10), Some(0));
        assert_eq!(false_detections_allowed_per_10_min(5), Some(1));
        assert_eq!(false_detections_allowed_per_10_min(1), None);
    }

    #[test]
    fn the_papers_experiments_run_cgi_and_table3_keeps_inproc() {
        for name in NAMES {
            let (v, _) = experiment(name, true).unwrap();
            for x in &v {
                let want = if PAPER_CGI.contains(name) && !x.name.starts_with(INPROC_PREFIX) {
                    AppMode::Cgi
                } else {
                    AppMode::Inproc
                };
                assert_eq!(x.app, want, "{name}/{}", x.name);
            }
        }
        let (mut v, _) = experiment("table3-overhead", true).unwrap();
        let cgi = v.iter().filter(|x| x.app == AppMode::Cgi).count();
        assert_eq!(cgi, 8);
        assert_eq!(v.len(), 16);
        assert!(v.iter().any(|x| x.name == "inproc-cpu010-one-server"));
        // Fig. 2 shows both applications from one run.
        let (f, _) = experiment("fig2-throughput", true).unwrap();
        for n in ["coral-keep-alive", "one-server", "two-servers"] {
            let cgi = f.iter().find(|x| x.name == n).unwrap();
            let inproc = f
                .iter()
                .find(|x| x.name == format!("{INPROC_PREFIX}{n}"))
                .unwrap();
            assert_eq!((cgi.app, inproc.app), (AppMode::Cgi, AppMode::Inproc));
        }
        assert!(v
            .iter()
            .any(|x| x.name == "cpu010-one-server" && x.app == AppMode::Cgi));
        // run --app on a mixed experiment selects; elsewhere it sets.
        with_app(&mut v, AppMode::Inproc);
        assert_eq!(v.len(), 8);
        assert!(v.iter().all(|x| x.name.starts_with(INPROC_PREFIX)));
        let (mut v, _) = experiment("fig3-latency", true).unwrap();
        with_app(&mut v, AppMode::Inproc);
        assert!(!v.is_empty() && v.iter().all(|x| x.app == AppMode::Inproc));
        let (mut v, _) = experiment("baseline", true).unwrap();
        with_app(&mut v, AppMode::Cgi);
        assert!(v.len() == 2 && v.iter().all(|x| x.app == AppMode::Cgi));
        assert!(v
            .iter()
            .all(|x| (x.lb.profile == LbProfile::Tuned) == (x.name == "haproxy-tuned")));
    }
}
