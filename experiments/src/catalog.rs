//! The experiments that regenerate the paper's results (seed paper section
//! 4; DESIGN.md section 8), each with a QUICK and a full shape. Entry point
//! is [`crate::runner::experiment`], which hands these names here.
//!
//! Every experiment here runs on the paper's 100 Mb/s LAN with a CPU quota
//! per server host covering every process on it (application and CoRAL
//! tasks), unless `run --lan-mbit/--server-cpu` overrides them. Two quotas:
//! [`CPU_BOUND`] (0.1 core) where throughput must be bounded by server
//! capacity as on the paper's machines (Fig. 2, Table 3): with half a core
//! one unreplicated server already fills the 100 Mb/s LAN with 1 KB replies,
//! so one and two servers would look alike; and [`CPU_AMPLE`] (0.5 core)
//! where timing is measured (failover, latency, sweeps), so that CFS
//! throttling (up to 90 ms per 100 ms period at 0.1 core) does not hide it.
//!
//! - `fig2-throughput`: 8 clients, 1 KB replies, dual-role CoRAL, server-a's
//!   link cut mid-run, keep-alive and connection-per-request; the one- and
//!   two-unreplicated-server peaks in the same experiment and conditions.
//! - `fig3-latency`: every request's latency across the same fault
//!   (keep-alive, dual role).
//! - `table1-failover`: failover breakdown; dual role (server-a cut: the
//!   survivor rebuilds server-a's connections and takes the address server-a
//!   fronted) and single role with the backup cut (the primary takes the
//!   address: where it really moves); full adds single role, primary cut.
//! - `table3-overhead`: one and two unreplicated servers, single-role and
//!   dual-role CoRAL, no fault, same quotas.
//! - `detection-sweep`: heartbeats 1, 5, 10, 50, 100 ms, 3 misses, primary
//!   cut (stall), without a CPU quota (CFS throttling would pause a host for
//!   tens of ms, longer than three short heartbeats); a fault-free loaded run
//!   per heartbeat at the [`CPU_AMPLE`] quota shows what throttling does to
//!   detection (false detections); full adds a fault-free run without quota.
//! - `scale-sweep`: failover with 8, 100, 1000, 10000 extra idle keep-alive
//!   connections (QUICK: 100 and 1000).
//! - `reply-size-sweep`: 1 KB, 16 KB, 256 KB, 1 MB replies: two unreplicated
//!   servers and dual-role CoRAL with server-a cut mid-run.

use crate::conditions::Conditions;
use crate::runner::{FaultPlan, LoadOptions, Shape, Variant};
use crate::services::CoralOptions;
use anyhow::{bail, Result};

/// Experiments defined here.
pub const NAMES: &[&str] = &[
    "fig2-throughput",
    "fig3-latency",
    "table1-failover",
    "table3-overhead",
    "detection-sweep",
    "scale-sweep",
    "reply-size-sweep",
];

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

/// The variants and shape of experiment `name` (one of [`NAMES`]).
pub fn experiment(name: &str, quick: bool) -> Result<(Vec<Variant>, Shape)> {
    let hb = CoralOptions::default().heartbeat_ms;
    let (variants, shape) = match name {
        "fig2-throughput" => {
            let s = shape(quick, (8.0, 1.0, 1), (20.0, 2.0, 3));
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
            let v = vec![
                unreplicated("one-server", 1),
                unreplicated("two-servers", 2),
                ka,
                one_cpr,
                two_cpr,
                cpr,
            ];
            let v = v.into_iter().map(|x| with_cpu(x, CPU_BOUND)).collect();
            (v, s)
        }
        "fig3-latency" => {
            let s = shape(quick, (6.0, 1.0, 1), (20.0, 2.0, 3));
            let mut v = coral("coral-keep-alive", true, hb);
            v.fault = cut("server-a", s.duration_s / 2.0);
            (vec![v], s)
        }
        "table1-failover" => {
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
        "table3-overhead" => {
            let s = shape(quick, (6.0, 1.0, 1), (15.0, 2.0, 3));
            let mut v = Vec::new();
            for cpu in [CPU_BOUND, CPU_AMPLE] {
                let p = cpu_prefix(cpu);
                for x in [
                    unreplicated(&format!("{p}one-server"), 1),
                    unreplicated(&format!("{p}two-servers"), 2),
                    coral(&format!("{p}coral-single-role"), false, hb),
                    coral(&format!("{p}coral-dual-role"), true, hb),
                ] {
                    v.push(with_cpu(x, cpu));
                }
            }
            (v, s)
        }
        "detection-sweep" => {
            let s = shape(quick, (4.0, 0.5, 1), (8.0, 1.0, 3));
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
        "scale-sweep" => {
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
                    x.fault = cut("server-a", s.duration_s - 1.5);
                    x
                })
                .collect();
            (v, s)
        }
        "reply-size-sweep" => {
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
        other => bail!("`{other}` is not an experiment of the catalog"),
    };
    Ok((variants, shape))
}

/// The variant-name prefix of a CPU quota: `cpu010-` for 0.1 core.
pub fn cpu_prefix(cpu: f64) -> String {
    format!("cpu{:03}-", (cpu * 100.0).round() as u32)
}

/// Default load of a variant (8 clients, 1 KB, keep-alive, no idle conns).
pub fn default_load() -> LoadOptions {
    LoadOptions {
        clients: crate::runner::CLIENTS,
        size: crate::runner::REPLY_SIZE,
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
        assert!(experiment("nope", true).is_err());
    }
}
