//! `coral-exp up`, `down`, `exec`, `fault`, `run` (docs/CLI.md).
//!
//! Every command takes `--state DIR` (topology.json lives there) and works
//! from inside any namespace of the topology: namespaces are reached through
//! /run/netns paths, never through the caller's own.

use crate::campaign;
use crate::hostile;
use crate::live::{self, UpOptions};
use crate::runner::{self, RunOptions};
use crate::services::{AppMode, CoralOptions, Front, LbOptions, LbProfile, ServiceOptions};
use crate::topology::{self, Status};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// Default state directory.
pub const DEFAULT_STATE: &str = "results/live";

/// Arguments of `coral-exp up`.
#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Service to run: unreplicated; coral (a CoRAL pair on server-a and
    /// server-b); haproxy or nginx (on lb, in front of server-a and
    /// server-b); keepalived (VRRP between server-a and server-b). All but
    /// unreplicated always use both servers.
    #[arg(long)]
    pub service: String,
    /// HAProxy profile (for --service haproxy): stock-like timeouts, or
    /// tuned for fast failover.
    #[arg(long, value_enum)]
    pub lb_profile: Option<LbProfileArg>,
    /// VRRP advert interval in ms, a multiple of 10 (for --service
    /// keepalived; default 100).
    #[arg(long)]
    pub advert_ms: Option<u64>,
    /// Topology backend: netns or docker (containers through the local engine).
    #[arg(long, default_value = "netns")]
    pub topology: String,
    /// Servers running the unreplicated service (server-a, and server-b).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub servers: u8,
    /// State directory (topology.json, service logs, events.csv).
    #[arg(long, default_value = DEFAULT_STATE)]
    pub state: PathBuf,
    /// CoRAL heartbeat period in ms (for --service coral; default 100, the paper's).
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Missed heartbeats that declare the peer failed (for --service coral; default 3).
    #[arg(long)]
    pub misses: Option<u32>,
    /// Dual role: each server fronts one address (for --service coral).
    #[arg(long)]
    pub dual_role: bool,
    /// The backup's frame source (for --service coral; default ebpf; a
    /// Docker topology always runs packet).
    #[arg(long, value_enum)]
    pub front: Option<FrontArg>,
    /// Name prefix of every namespace (default: a fresh `cx` + 4 hex digits).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Limit every LAN switch port to this rate in Mbit/s (htb with a DSCP EF band; the paper: 100).
    #[arg(long, value_name = "MBIT")]
    pub lan_mbit: Option<u32>,
    /// CPU quota of each server host, in CPUs (cgroup v1; e.g. 0.5).
    #[arg(long, value_name = "CORES")]
    pub server_cpu: Option<f64>,
    /// The WebStone application on every server: inproc (generated inside
    /// the server) or cgi (a webstone-cgi process per request, the paper's).
    #[arg(long, default_value = "inproc", value_name = "inproc|cgi")]
    pub app: AppMode,
}

/// `--front`: [`Front`] as the command line spells it.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontArg {
    /// The tc ingress BPF program and its ring buffer.
    Ebpf,
    /// The AF_PACKET socket.
    Packet,
}

impl From<FrontArg> for Front {
    fn from(a: FrontArg) -> Front {
        match a {
            FrontArg::Ebpf => Front::Ebpf,
            FrontArg::Packet => Front::Packet,
        }
    }
}

/// `--lb-profile`: [`LbProfile`] as the command line spells it.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbProfileArg {
    /// Stock-like timeouts: checks every 2 s, `timeout server 30s`.
    Stock,
    /// Tuned for fast failover: 100 ms checks, `observe layer4`, retries
    /// with redispatch, `timeout server 300ms`.
    Tuned,
}

impl From<LbProfileArg> for LbProfile {
    fn from(a: LbProfileArg) -> Self {
        match a {
            LbProfileArg::Stock => LbProfile::Stock,
            LbProfileArg::Tuned => LbProfile::Tuned,
        }
    }
}

/// Arguments of `coral-exp down`.
#[derive(Args, Debug, Clone)]
pub struct DownArgs {
    /// State directory of the topology to remove.
    #[arg(long, default_value = DEFAULT_STATE)]
    pub state: PathBuf,
    /// Instead: remove every kit topology whose owning process is gone,
    /// wherever its state is, and kit namespaces (`cxNNNN-HOST`,
    /// `cxtNNNN-HOST`) that no state file knows. Topologies left up by
    /// `coral-exp up` belong to the user and are kept.
    #[arg(long)]
    pub stale: bool,
}

/// Arguments of `coral-exp exec`.
#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// State directory of the topology.
    #[arg(long, default_value = DEFAULT_STATE)]
    pub state: PathBuf,
    /// Host name (client, router, switch, server-a, server-b, spare, lb) or role.
    pub host: String,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub cmd: Vec<OsString>,
}

/// Kinds of fault.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Set the switch-side end of HOST's link down.
    LinkCut,
    /// Set it up again.
    LinkRestore,
    /// SIGKILL HOST's service processes.
    Kill,
    /// SIGSTOP them.
    Stop,
    /// SIGCONT them.
    Cont,
    /// Drop frames between HOST_A and HOST_B on the switch.
    Partition,
    /// Remove that partition.
    Heal,
    /// Cut HOST off from the witness alone: its UDP port blocked, both
    /// ways, in HOST's namespace (CoRAL topologies).
    IsolateWitness,
}

/// Arguments of `coral-exp fault`.
#[derive(Args, Debug, Clone)]
pub struct FaultArgs {
    /// State directory of the topology (events.csv is appended there).
    #[arg(long, default_value = DEFAULT_STATE)]
    pub state: PathBuf,
    /// The fault.
    pub kind: FaultKind,
    /// HOST (or HOST_A HOST_B for partition/heal): a host name or a role
    /// (primary, backup, primary:VIP, backup:VIP).
    #[arg(required = true, num_args = 1..=2)]
    pub hosts: Vec<String>,
}

/// Arguments of `coral-exp join`.
#[derive(Args, Debug, Clone)]
pub struct JoinArgs {
    /// State directory of the topology.
    #[arg(long, default_value = DEFAULT_STATE)]
    pub state: PathBuf,
    /// The host that joins: spare, or a failed server (server-a, server-b).
    pub host: String,
}

/// Arguments of `coral-exp run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Experiment: baseline, baseline-crash, lb-compare, or one of the
    /// paper's (fig2-throughput, fig3-latency, table1-failover,
    /// table2-integration, table3-overhead, detection-sweep, scale-sweep, reply-size-sweep);
    /// docs/CLI.md lists them all, an unknown name lists them too;
    /// fault-campaign takes --trials and --seed; hostile-input throws
    /// hostile input at a live pair.
    pub experiment: String,
    /// The short shape (1 repetition, short runs).
    #[arg(long)]
    pub quick: bool,
    /// Topology backend: netns, or docker (containers through the local
    /// engine; results go to variants suffixed `-docker`).
    #[arg(long, default_value = "netns")]
    pub topology: String,
    /// Results directory.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Repetitions per variant (default: 1 with --quick, else 5).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub reps: Option<u32>,
    /// Only this variant (default: all of the experiment's).
    #[arg(long)]
    pub variant: Option<String>,
    /// Print the plan (runs, estimated seconds) and run nothing.
    #[arg(long)]
    pub plan: bool,
    /// Limit every LAN switch port to this rate in Mbit/s (htb with a DSCP EF band).
    #[arg(long, value_name = "MBIT")]
    pub lan_mbit: Option<u32>,
    /// CPU quota of each server host, in CPUs (cgroup v1).
    #[arg(long, value_name = "CORES")]
    pub server_cpu: Option<f64>,
    /// Name prefix of every repetition's topology (they run one after the
    /// other; default: a fresh `cx` + 4 hex digits each).
    #[arg(long)]
    pub prefix: Option<String>,
    /// The backup's frame source of every CoRAL variant (default: ebpf; a
    /// Docker topology always runs packet).
    #[arg(long, value_enum)]
    pub front: Option<FrontArg>,
    /// The WebStone application (default: the experiment's own: cgi for
    /// fig2-throughput, fig3-latency, table1-failover and table3-overhead,
    /// inproc elsewhere). Where an experiment has both (table3-overhead),
    /// only that mode's variants run.
    #[arg(long, value_name = "inproc|cgi")]
    pub app: Option<AppMode>,
    /// fault-campaign only: trials to run (default: 10 with --quick, else 50).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub trials: Option<u32>,
    /// fault-campaign only: seed of the first trial; trial i has seed S+i,
    /// and `--trials 1 --seed S` replays the trial of seed S (default 1).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
}

/// `coral-exp up`; returns the process exit code.
pub fn up(a: UpArgs) -> Result<i32> {
    if a.service != "coral"
        && (a.heartbeat_ms.is_some() || a.misses.is_some() || a.dual_role || a.front.is_some())
    {
        bail!("--heartbeat-ms, --misses, --dual-role and --front apply to --service coral only");
    }
    if a.heartbeat_ms == Some(0) || a.misses == Some(0) {
        bail!("--heartbeat-ms and --misses must be at least 1");
    }
    if a.lb_profile.is_some() && a.service != "haproxy" {
        bail!("--lb-profile applies to --service haproxy only");
    }
    if a.advert_ms.is_some() && a.service != "keepalived" {
        bail!("--advert-ms applies to --service keepalived only");
    }
    let lb_defaults = LbOptions::default();
    let cancel = live::install_signal_flag()?;
    let defaults = CoralOptions::default();
    let opts = UpOptions {
        topology: a.topology.clone(),
        state_dir: a.state.clone(),
        prefix: a.prefix,
        lan_mbit: a.lan_mbit,
        service: ServiceOptions {
            // Every service but unreplicated runs on both servers.
            servers: if a.service == "unreplicated" {
                a.servers
            } else {
                2
            },
            name: a.service,
            server_cpu: a.server_cpu,
            coral: CoralOptions {
                heartbeat_ms: a.heartbeat_ms.unwrap_or(defaults.heartbeat_ms),
                misses: a.misses.unwrap_or(defaults.misses),
                dual_role: a.dual_role,
                front: a.front.map_or(defaults.front, Front::from),
                log_requests: false,
            }
            .on_topology(&a.topology),
            lb: LbOptions {
                profile: a.lb_profile.map_or(lb_defaults.profile, LbProfile::from),
                advert_ms: a.advert_ms.unwrap_or(lb_defaults.advert_ms),
            },
            app: a.app,
        },
    };
    let t0 = std::time::Instant::now();
    let l = live::bring_up(&opts, &cancel)?;
    let st = l.state().clone();
    l.detach()?;
    println!(
        "up: {} ({}, {} server(s), app {}) in {:.0} ms; client namespace {}; {}",
        st.prefix,
        st.service,
        opts.service.servers,
        opts.service.app,
        t0.elapsed().as_secs_f64() * 1e3,
        st.client_ns,
        topology::StateHandle::path_in(&a.state).display()
    );
    for u in &st.service_urls {
        println!("  {u}");
    }
    Ok(0)
}

/// `coral-exp down`.
pub fn down(a: DownArgs) -> Result<i32> {
    if a.stale {
        return down_stale();
    }
    let path = topology::StateHandle::path_in(&a.state);
    if !path.exists() {
        println!(
            "down: no topology.json in {}: nothing to do",
            a.state.display()
        );
        return Ok(0);
    }
    let (backend, mut h) = live::load(&a.state)?;
    let t0 = std::time::Instant::now();
    let was = h.state.status;
    backend.destroy(&mut h)?;
    println!(
        "down: {} removed in {:.0} ms{}",
        h.state.prefix,
        t0.elapsed().as_secs_f64() * 1e3,
        if was == Status::Down {
            " (was already down)"
        } else {
            ""
        }
    );
    Ok(0)
}

fn owner_gone(pid: Option<u32>) -> bool {
    match pid {
        Some(p) => !faultinject::pid_alive(p),
        None => false,
    }
}

fn down_stale() -> Result<i32> {
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    let mut known = Vec::new();
    let d0 = topology::docker::Docker::default();
    for e in topology::registry() {
        known.push(e.prefix.clone());
        let dir = e
            .state_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let loaded = live::load(&dir)
            .ok()
            .filter(|(_, h)| h.state.prefix == e.prefix);
        let stale = match &loaded {
            // The state file says who owns it now.
            Some((_, h)) => h.state.status == Status::Down || owner_gone(h.state.owner_pid),
            // Its state file is gone: nobody can `down` it but us.
            None => true,
        };
        if !stale {
            continue;
        }
        let r = match loaded {
            Some((b, mut h)) => b.destroy(&mut h),
            None => {
                if topology::docker::engine_available().is_ok() {
                    let _ = topology::Topology::destroy_prefix(&d0, &e.prefix);
                }
                topology::Topology::destroy_prefix(&topology::netns::Netns, &e.prefix)
            }
        };
        match r {
            Ok(()) => removed.push(e.prefix),
            Err(err) => failed.push(format!("{}: {err:#}", e.prefix)),
        }
    }
    // Kit containers no registry entry knows about, first (their attached
    // namespace names would otherwise look like netns topologies).
    let d = topology::docker::Docker::default();
    if topology::docker::engine_available().is_ok() {
        for p in topology::Topology::existing_prefixes(&d) {
            // Only the kit's own prefixes (docker/compose.yaml labels its
            // containers `compose`: a user's, left alone).
            if known.contains(&p) || !topology::is_kit_prefix(&p) {
                continue;
            }
            match topology::Topology::destroy_prefix(&d, &p) {
                Ok(()) => removed.push(p),
                Err(err) => failed.push(format!("{p}: {err:#}")),
            }
        }
    }
    // Kit namespaces no registry entry knows about (e.g. a registry wiped by
    // a reboot of /run is impossible, but a crash before registering is not).
    let b = topology::netns::Netns;
    for p in topology::Topology::existing_prefixes(&b) {
        if known.contains(&p) {
            continue;
        }
        match topology::Topology::destroy_prefix(&b, &p) {
            Ok(()) => removed.push(p),
            Err(err) => failed.push(format!("{p}: {err:#}")),
        }
    }
    println!(
        "down --stale: removed {} topolog{}{}",
        removed.len(),
        if removed.len() == 1 { "y" } else { "ies" },
        if removed.is_empty() {
            String::new()
        } else {
            format!(" ({})", removed.join(", "))
        }
    );
    if !failed.is_empty() {
        bail!("could not remove: {}", failed.join("; "));
    }
    Ok(0)
}

/// `coral-exp exec`.
pub fn exec(a: ExecArgs) -> Result<i32> {
    let (backend, mut h) = live::load(&a.state)?;
    let host = live::resolve_host_now(backend.as_ref(), &mut h, &a.host)?;
    let mut cmd = backend.command(&h.state, &host, &a.cmd)?;
    let st = cmd
        .status()
        .with_context(|| format!("run {:?} on {host}", a.cmd))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (st.code(), st.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    })
}

/// `coral-exp fault`.
pub fn fault(a: FaultArgs) -> Result<i32> {
    let (backend, mut h) = live::load(&a.state)?;
    if h.state.status == Status::Down {
        bail!("the topology in {} is down", a.state.display());
    }
    let mut names = Vec::new();
    for spec in &a.hosts {
        names.push(live::resolve_host_now(backend.as_ref(), &mut h, spec)?);
    }
    let kind = a.kind.to_possible_value().context("fault kind")?;
    let fault = live::build_fault(backend.as_ref(), &h.state, kind.get_name(), &names)?;
    let t = faultinject::now_unix_ns();
    let detail = faultinject::inject(&fault)?;
    let roles: Vec<String> = a
        .hosts
        .iter()
        .zip(&names)
        .filter(|(spec, name)| spec != name)
        .map(|(spec, name)| format!("{spec}={name}"))
        .collect();
    let detail = if roles.is_empty() {
        detail
    } else {
        format!("{detail} [role {}]", roles.join(" "))
    };
    let ev = faultinject::Event {
        t_unix_ns: t,
        host: names.join("+"),
        source: "faultinject".into(),
        event: fault.name().into(),
        detail,
    };
    faultinject::append_event(&a.state.join("events.csv"), &ev)?;
    println!("{} {}: {}", ev.event, ev.host, ev.detail);
    Ok(0)
}

/// `coral-exp join`: a fresh CoRAL node on HOST joins the simplex node.
pub fn join(a: JoinArgs) -> Result<i32> {
    let (backend, mut h) = live::load(&a.state)?;
    if h.state.status == Status::Down {
        bail!("the topology in {} is down", a.state.display());
    }
    let cancel = live::install_signal_flag()?;
    let j = crate::services::join::join(backend.as_ref(), &mut h, &a.host, &cancel)?;
    let rows = j
        .integration
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "no integration event yet".into());
    println!(
        "join {}: joined {} (integration ms: {rows})",
        a.host, j.simplex
    );
    Ok(0)
}

/// `coral-exp run`.
pub fn run(a: RunArgs) -> Result<i32> {
    if a.experiment == campaign::plan::NAME {
        let other = a.reps.is_some()
            || a.variant.is_some()
            || a.lan_mbit.is_some()
            || a.server_cpu.is_some()
            || a.app.is_some();
        if other {
            bail!("fault-campaign takes --trials, --seed, --quick, --topology, --results and --prefix only");
        }
        let default = if a.quick {
            campaign::plan::TRIALS_QUICK
        } else {
            campaign::plan::TRIALS_FULL
        };
        let trials = a.trials.unwrap_or(default);
        if a.plan {
            println!(
                "plan {}: runs={trials} estimate_s={:.0} ({trials} trial(s), each its {} s load + {} s of topology and drain)",
                campaign::plan::NAME,
                crate::progress::estimate_s(trials, campaign::plan::DURATION_S),
                campaign::plan::DURATION_S,
                crate::progress::estimate_s(1, 0.0)
            );
            return Ok(0);
        }
        return campaign::run(&campaign::CampaignOptions {
            trials,
            seed: a.seed.unwrap_or(campaign::plan::DEFAULT_SEED),
            topology: a.topology,
            results: a.results,
            prefix: a.prefix,
        });
    }
    if a.trials.is_some() || a.seed.is_some() {
        bail!("--trials and --seed apply to fault-campaign only");
    }
    if a.experiment == hostile::NAME {
        let other = a.reps.is_some()
            || a.variant.is_some()
            || a.lan_mbit.is_some()
            || a.server_cpu.is_some()
            || a.app.is_some()
            || a.front.is_some();
        if other {
            bail!("hostile-input takes --quick, --topology, --results and --prefix only");
        }
        if a.plan {
            println!(
                "plan {}: runs=1 estimate_s={:.0} (one pair under {} s of load, the attacks one after the other)",
                hostile::NAME,
                crate::progress::estimate_s(1, hostile::DURATION_S),
                hostile::DURATION_S
            );
            return Ok(0);
        }
        return hostile::run(&hostile::HostileOptions {
            topology: a.topology,
            results: a.results,
            prefix: a.prefix,
        });
    }
    runner::run(&RunOptions {
        experiment: a.experiment,
        quick: a.quick,
        topology: a.topology,
        results: a.results,
        reps: a.reps,
        variant: a.variant,
        lan_mbit: a.lan_mbit,
        server_cpu: a.server_cpu,
        prefix: a.prefix,
        app: a.app,
        plan: a.plan,
        front: a.front.map(Front::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make reproduce QUICK=1` must take at most 12 minutes on 2 cores,
    /// the release build included (206 s from a clean clone on an idle
    /// machine, plus the package check and the figures, about 20 s). So
    /// the experiments' QUICK runs get at most 8.4 minutes: their loads,
    /// plus what a run costs besides its load (0.8 s a run measured over
    /// the 85 runs of an idle QUICK run). Read from the script's own list,
    /// so an experiment added there counts at once.
    #[test]
    fn quick_reproduce_fits_its_twelve_minutes() {
        const RUNS_BUDGET_S: f64 = 8.4 * 60.0;
        const OVERHEAD_PER_RUN_S: f64 = 0.8;
        let script = include_str!("../../scripts/reproduce.sh");
        let names: Vec<&str> = script
            .lines()
            .skip_while(|l| !l.starts_with("EXPERIMENTS=("))
            .skip(1)
            .take_while(|l| l.trim() != ")")
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(names.len() >= 15, "the script's list: {names:?}");
        let (mut runs, mut load_s) = (0u32, 0.0);
        for name in names {
            let (r, s) = match name {
                campaign::plan::NAME => (
                    campaign::plan::TRIALS_QUICK,
                    f64::from(campaign::plan::TRIALS_QUICK) * campaign::plan::DURATION_S,
                ),
                hostile::NAME => (1, hostile::DURATION_S),
                n => {
                    let (v, shape) = crate::catalog::experiment(n, true).unwrap();
                    let r = v.len() as u32 * shape.reps;
                    (r, f64::from(r) * shape.duration_s)
                }
            };
            runs += r;
            load_s += s;
        }
        let total = load_s + f64::from(runs) * OVERHEAD_PER_RUN_S;
        assert!(
            total <= RUNS_BUDGET_S,
            "QUICK runs: {runs} runs, {load_s} s of load, about {total:.0} s in all; \
             the budget leaves {RUNS_BUDGET_S} s for them"
        );
    }
}
