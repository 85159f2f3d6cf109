//! `coral-exp run EXPERIMENT`: each repetition brings up its own topology,
//! runs `coral-load` in the client namespace, injects the experiment's fault
//! at a set time, tears the topology down, and writes
//! `RESULTS/<experiment>/<variant>/rep-<n>/` with `config.json`,
//! `requests.csv`, `events.csv` and `summary.json` (docs/CLI.md). What
//! each experiment is (variants, faults, shapes) is [`crate::catalog`]'s.

use crate::catalog::{experiment, with_app, FaultPlan, JoinPlan, Shape, Variant};
use crate::conditions::Conditions;
use crate::live::{self, UpOptions};
use crate::services::{AppMode, ServiceOptions};
use crate::topology::{self, Live, ServiceSpec, TopologyState};
use anyhow::{bail, Context, Result};
use faultinject::Event;
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::{info, info_span};
use workload::summary::{self, SummaryOptions};

/// What `coral-exp run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Experiment name (one of [`crate::catalog::experiment`]'s).
    pub experiment: String,
    /// The QUICK shape.
    pub quick: bool,
    /// Topology backend name.
    pub topology: String,
    /// Results directory.
    pub results: PathBuf,
    /// Repetitions per variant (None: the shape's).
    pub reps: Option<u32>,
    /// Only this variant (None: all).
    pub variant: Option<String>,
    /// LAN rate override, Mbit/s.
    pub lan_mbit: Option<u32>,
    /// Server CPU quota override, cores.
    pub server_cpu: Option<f64>,
    /// Name prefix of every repetition's topology.
    pub prefix: Option<String>,
    /// Application mode override (None: each variant's own, see
    /// [`crate::catalog::with_app`]).
    pub app: Option<AppMode>,
    /// Only print the plan (runs and estimated time) and run nothing.
    pub plan: bool,
    /// The backup's frame source of every CoRAL variant (none: the
    /// variant's own).
    pub front: Option<crate::services::Front>,
}

/// `config.json` of one repetition.
#[derive(Debug, Serialize)]
struct RepConfig<'a> {
    schema_version: u32,
    experiment: &'a str,
    variant: &'a str,
    rep: u32,
    quick: bool,
    topology: &'a str,
    service: &'a str,
    /// The WebStone application: `inproc` or `cgi` (a process per request).
    app: AppMode,
    servers: u8,
    clients: u32,
    size: u64,
    connection: &'a str,
    duration_s: f64,
    warmup_s: f64,
    fault: Option<&'a FaultPlan>,
    join: Option<&'a JoinPlan>,
    second_fault: Option<&'a FaultPlan>,
    service_urls: &'a [String],
    prefix: &'a str,
    conditions: serde_json::Value,
    /// CoRAL's options, for CoRAL runs.
    coral: Option<crate::services::CoralOptions>,
    idle_conns: u32,
    started_unix_ns: u64,
    coral_exp_version: &'a str,
}

/// `coral-exp run`; returns the exit code.
pub fn run(a: &RunOptions) -> Result<i32> {
    let (mut variants, mut shape) = experiment(&a.experiment, a.quick)?;
    if let Some(app) = a.app {
        with_app(&mut variants, app);
    }
    if let Some(front) = a.front {
        for v in &mut variants {
            v.coral.front = front;
        }
    }
    if let Some(r) = a.reps {
        shape.reps = r;
    }
    if let Some(only) = &a.variant {
        variants.retain(|v| &v.name == only);
        if variants.is_empty() {
            bail!("experiment {} has no variant `{only}`", a.experiment);
        }
    }
    let runs = variants.len() as u32 * shape.reps;
    let per_run_s = crate::progress::estimate_s(1, shape.duration_s);
    if a.plan {
        println!(
            "plan {}: runs={runs} estimate_s={:.0} ({} variant(s) x {} rep(s), each its {} s load + {} s of topology and drain)",
            a.experiment,
            crate::progress::estimate_s(runs, shape.duration_s),
            variants.len(),
            shape.reps,
            shape.duration_s,
            crate::progress::REP_OVERHEAD_S
        );
        return Ok(0);
    }
    topology::backend(&a.topology)?;
    for v in &variants {
        conditions(a, v).validate()?;
    }
    if let Some(p) = &a.prefix {
        topology::check_prefix(p)?;
    }
    let load_bin = topology::sibling_binary("coral-load")?;
    topology::sibling_binary("webstone-server")?;
    if variants.iter().any(|v| v.app == AppMode::Cgi) {
        topology::sibling_binary("webstone-cgi")?;
    }
    let cancel = live::install_signal_flag()?;
    let t0 = Instant::now();
    let _run = info_span!("run", experiment = %a.experiment, quick = a.quick).entered();
    let mut progress = crate::progress::Progress::new(&a.experiment, runs, per_run_s);
    for v in &variants {
        // A Docker run's results sit beside the netns ones, never over them.
        let v = &Variant {
            name: variant_dir(&v.name, &a.topology),
            ..v.clone()
        };
        for rep in 1..=shape.reps {
            let _rep = info_span!("rep", variant = %v.name, rep).entered();
            let dir = rep_dir(&a.results, &a.experiment, &v.name, rep);
            progress.start(&v.name, rep, shape.reps);
            let line = run_rep(a, v, shape, rep, &dir, &load_bin, &cancel)
                .with_context(|| format!("{} {} rep {rep}", a.experiment, v.name))?;
            progress.finish(&format!("{}/{}/rep-{rep}: {line}", a.experiment, v.name));
        }
    }
    progress.close();
    println!(
        "run {}: {} variant(s) x {} rep(s) in {:.1} s, results in {}",
        a.experiment,
        variants.len(),
        shape.reps,
        t0.elapsed().as_secs_f64(),
        a.results.join(&a.experiment).display()
    );
    Ok(0)
}

/// The variant's conditions, overridden by the command line's.
fn conditions(a: &RunOptions, v: &Variant) -> Conditions {
    Conditions {
        lan_mbit: a.lan_mbit.or(v.conditions.lan_mbit),
        server_cpu: a.server_cpu.or(v.conditions.server_cpu),
    }
}

/// `coral-load`'s command line for `load` over `urls` in `shape` (without
/// `--out`).
pub(crate) fn load_argv(
    load_bin: &Path,
    urls: &[String],
    load: &crate::catalog::LoadOptions,
    shape: Shape,
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![load_bin.into()];
    for u in urls {
        argv.push("--url".into());
        argv.push(u.into());
    }
    for (k, val) in [
        ("--clients", load.clients.to_string()),
        ("--duration-s", shape.duration_s.to_string()),
        ("--warmup-s", shape.warmup_s.to_string()),
        ("--size", load.size.to_string()),
        ("--idle-conns", load.idle_conns.to_string()),
    ] {
        argv.push(k.into());
        argv.push(val.into());
    }
    if load.connection_per_request {
        argv.push("--connection-per-request".into());
    }
    argv
}

/// Appends one of the runner's own events (source `coral-exp`) to `path`
/// and logs it.
pub(crate) fn record(path: &Path, host: &str, event: &str, detail: String) -> Result<()> {
    info!(host, "{event}: {detail}");
    let ev = Event {
        t_unix_ns: faultinject::now_unix_ns(),
        host: host.into(),
        source: "coral-exp".into(),
        event: event.into(),
        detail,
    };
    faultinject::append_event(path, &ev)
}

/// Sleeps until `until`, failing if `cancel` is set.
pub(crate) fn sleep_until(until: Instant, cancel: &AtomicBool) -> Result<()> {
    while Instant::now() < until {
        if cancel.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run_rep(
    a: &RunOptions,
    v: &Variant,
    shape: Shape,
    rep: u32,
    dir: &Path,
    load_bin: &Path,
    cancel: &AtomicBool,
) -> Result<String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let paths = RepPaths::new(dir);
    let live = bring_up(a, v, &paths, cancel)?;
    let st = live.state().clone();
    write_config(a, v, shape, rep, dir, &st)?;

    // The load, in the client namespace.
    let mut argv = load_argv(load_bin, &st.service_urls, &v.load, shape);
    let cgroups: Vec<String> = st.hosts.values().filter_map(|h| h.cgroup.clone()).collect();
    let cpu_start = crate::measure::CpuSample::take(&cgroups);
    argv.push("--out".into());
    argv.push(paths.load.clone().into());
    let clients = format!("{} clients", v.load.clients);
    record(&paths.runner_events, "client", "load-start", clients)?;
    let (mut child, started) = spawn_load(&live, &argv, dir)?;
    let mut load = LoadGuard(Some(&mut child));
    let mut live = Some(live);

    let fault_at = match &v.fault {
        Some(f) => Some(planned_fault(v, f, started, &mut live, &paths, cancel)?),
        None => None,
    };
    join_and_second_fault(v, started, &mut live, &paths.runner_events, cancel)?;
    // Wait for the driver: its duration, its drain (2 s) and a margin.
    let limit = started + Duration::from_secs_f64(shape.duration_s + 30.0);
    let status = load.wait(limit, "its duration + 30 s", cancel)?;
    let cpu_end = crate::measure::CpuSample::take(&cgroups);
    let detail = format!("coral-load {status}");
    record(&paths.runner_events, "client", "load-end", detail)?;
    if !status.success() {
        return Err(load_failed(status, dir));
    }
    tear_down(live.take(), &st.prefix, &paths.runner_events)?;
    results(&paths, fault_at, (&cpu_start, &cpu_end))
}

/// Where one repetition's files go.
struct RepPaths {
    /// The repetition's directory.
    dir: PathBuf,
    /// The topology's state directory (its events.csv among them).
    state: PathBuf,
    /// The runner's own events, merged into the repetition's events.csv.
    runner_events: PathBuf,
    /// coral-load's output directory (removed once read).
    load: PathBuf,
}

impl RepPaths {
    fn new(dir: &Path) -> RepPaths {
        let state = dir.join("topology");
        RepPaths {
            dir: dir.to_path_buf(),
            runner_events: state.join("runner-events.csv"),
            state,
            load: dir.join("load"),
        }
    }
}

/// The repetition's topology, up with its service running under the
/// variant's conditions; `topology-up` recorded.
fn bring_up(a: &RunOptions, v: &Variant, paths: &RepPaths, cancel: &AtomicBool) -> Result<Live> {
    let cond = conditions(a, v);
    let live = live::bring_up(
        &UpOptions {
            topology: a.topology.clone(),
            state_dir: paths.state.clone(),
            prefix: a.prefix.clone(),
            lan_mbit: cond.lan_mbit,
            service: ServiceOptions {
                name: v.service.clone(),
                servers: v.servers,
                server_cpu: cond.server_cpu,
                coral: v.coral.on_topology(&a.topology),
                lb: v.lb,
                app: v.app,
            },
        },
        cancel,
    )?;
    let st = live.state();
    let up_ms = (st.up_done_unix_ns.saturating_sub(st.up_started_unix_ns)) as f64 / 1e6;
    record(
        &paths.runner_events,
        "client",
        "topology-up",
        format!("{} in {up_ms:.0} ms", st.prefix),
    )?;
    Ok(live)
}

/// The repetition's `config.json`: what ran, on what, under what.
fn write_config(
    a: &RunOptions,
    v: &Variant,
    shape: Shape,
    rep: u32,
    dir: &Path,
    st: &TopologyState,
) -> Result<()> {
    let cond = conditions(a, v);
    let cfg = RepConfig {
        schema_version: 1,
        experiment: &a.experiment,
        variant: &v.name,
        rep,
        quick: a.quick,
        topology: &a.topology,
        service: &v.service,
        app: v.app,
        servers: v.servers,
        clients: v.load.clients,
        size: v.load.size,
        connection: if v.load.connection_per_request {
            "connection-per-request"
        } else {
            "keep-alive"
        },
        duration_s: shape.duration_s,
        warmup_s: shape.warmup_s,
        fault: v.fault.as_ref(),
        join: v.join.as_ref(),
        second_fault: v.second_fault.as_ref(),
        service_urls: &st.service_urls,
        prefix: &st.prefix,
        conditions: cond.recorded(&a.topology),
        coral: (v.service == "coral").then_some(v.coral.on_topology(&a.topology)),
        idle_conns: v.load.idle_conns,
        started_unix_ns: faultinject::now_unix_ns(),
        coral_exp_version: env!("CARGO_PKG_VERSION"),
    };
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&cfg)? + "\n",
    )?;
    Ok(())
}

/// The variant's fault at its time, and its restore (a cut link back up)
/// or restart (webstone-server again) if planned; the fault's instant.
fn planned_fault(
    v: &Variant,
    f: &FaultPlan,
    started: Instant,
    live: &mut Option<Live>,
    paths: &RepPaths,
    cancel: &AtomicBool,
) -> Result<u64> {
    sleep_until(started + Duration::from_secs_f64(f.at_s), cancel)?;
    let l = live.as_mut().context("topology gone")?;
    let (t, target) = inject_planned(l, f)?;
    if let (Some(r), "link-cut") = (f.restart_after_s, f.kind.as_str()) {
        sleep_until(started + Duration::from_secs_f64(f.at_s + r), cancel)?;
        let fault = l.backend.link_fault(l.state(), &target, true)?;
        let events = l.handle.dir().join("events.csv");
        let ev = faultinject::inject_and_record(&fault, &target, "faultinject", &events)?;
        info!(host = %ev.host, "{}: {}", ev.event, ev.detail);
    } else if let Some(r) = f.restart_after_s {
        sleep_until(started + Duration::from_secs_f64(f.at_s + r), cancel)?;
        restart(l, &f.host, v.app, cancel)?;
        record(
            &paths.runner_events,
            &f.host,
            "restart",
            "webstone-server started again".into(),
        )?;
    }
    Ok(t)
}

/// The topology down (if still up); `topology-down` recorded.
fn tear_down(live: Option<Live>, prefix: &str, runner_events: &Path) -> Result<()> {
    let t_down = Instant::now();
    if let Some(l) = live {
        l.down()?;
    }
    record(
        runner_events,
        "client",
        "topology-down",
        format!("{prefix} in {:.0} ms", t_down.elapsed().as_secs_f64() * 1e3),
    )
}

/// Results: requests.csv, summary.json (with the real fault instant),
/// events.csv merged in time order; the repetition's one-line outcome.
fn results(
    paths: &RepPaths,
    fault_at: Option<u64>,
    cpu: (&crate::measure::CpuSample, &crate::measure::CpuSample),
) -> Result<String> {
    let (dir, load_dir) = (&paths.dir, &paths.load);
    let records = summary::read_requests_csv(load_dir.join("requests.csv"))?;
    let driver_summary = summary::read_summary_json(load_dir.join("summary.json"))?;
    let opts = SummaryOptions {
        run_start_unix_ns: driver_summary.run_start_unix_ns,
        warmup_end_unix_ns: driver_summary.warmup_end_unix_ns,
        run_end_unix_ns: driver_summary.run_end_unix_ns,
        fault_at_unix_ns: fault_at,
    };
    let mut s = summary::compute(&records, &opts);
    std::fs::rename(load_dir.join("requests.csv"), dir.join("requests.csv"))?;
    faultinject::events::merge_sorted(
        &[&paths.runner_events, &paths.state.join("events.csv")],
        &dir.join("events.csv"),
    )?;
    let extra = crate::measure::summary_extras(
        &mut s,
        &dir.join("events.csv"),
        fault_at,
        &records,
        cpu,
        &load_dir.join("idle.json"),
    )?;
    crate::measure::write_summary_with(&dir.join("summary.json"), &s, &extra)?;
    // The driver's own summary (without the fault instant) would only confuse.
    let _ = std::fs::remove_dir_all(load_dir);
    Ok(format!(
        "{} ok, {} errors, {} reconnects, {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
        s.ok, s.errors, s.reconnects, s.throughput_rps, s.p50_ms, s.p99_ms
    ))
}

/// The variant's join (`coral-exp join HOST`), then its second fault.
fn join_and_second_fault(
    v: &Variant,
    started: Instant,
    live: &mut Option<Live>,
    runner_events: &Path,
    cancel: &AtomicBool,
) -> Result<()> {
    if let Some(j) = &v.join {
        sleep_until(started + Duration::from_secs_f64(j.at_s), cancel)?;
        let l = live.as_mut().context("topology gone")?;
        let done = crate::services::join::join(l.backend.as_ref(), &mut l.handle, &j.host, cancel)?;
        record(
            runner_events,
            &j.host,
            "join",
            format!("joined {}", done.simplex),
        )?;
    }
    if let Some(f) = &v.second_fault {
        sleep_until(started + Duration::from_secs_f64(f.at_s), cancel)?;
        let l = live.as_mut().context("topology gone")?;
        inject_planned(l, f)?;
    }
    Ok(())
}

/// Start coral-load in the client host with `argv`, its output in
/// `dir/load.log`; returns the process and when it started.
pub(crate) fn spawn_load(
    live: &Live,
    argv: &[OsString],
    dir: &Path,
) -> Result<(std::process::Child, Instant)> {
    let log = std::fs::File::create(dir.join("load.log"))?;
    let mut cmd = live.backend.command(live.state(), "client", argv)?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let started = Instant::now();
    let child = cmd.spawn().context("start coral-load")?;
    Ok((child, started))
}

/// The error for a coral-load that exited with `status`, quoting its log.
pub(crate) fn load_failed(status: std::process::ExitStatus, dir: &Path) -> anyhow::Error {
    let text = std::fs::read_to_string(dir.join("load.log")).unwrap_or_default();
    anyhow::anyhow!("coral-load failed ({status}): {}", text.trim())
}

/// Kills coral-load if the rep ends early (error, interrupt).
pub(crate) struct LoadGuard<'a>(pub(crate) Option<&'a mut std::process::Child>);

impl LoadGuard<'_> {
    /// Waits for coral-load to exit, by `limit` at the latest (`what` names
    /// the limit in the error), and stops guarding it once it has exited.
    pub(crate) fn wait(
        &mut self,
        limit: Instant,
        what: &str,
        cancel: &AtomicBool,
    ) -> Result<std::process::ExitStatus> {
        loop {
            if let Some(s) = self.0.as_mut().context("load")?.try_wait()? {
                self.0 = None;
                return Ok(s);
            }
            if cancel.load(Ordering::SeqCst) {
                bail!("interrupted");
            }
            if Instant::now() > limit {
                bail!("coral-load did not finish within {what}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Injects a planned fault into `l`, records it in the topology's
/// events.csv; returns its instant and the host it hit.
fn inject_planned(l: &mut Live, f: &FaultPlan) -> Result<(u64, String)> {
    let host = live::resolve_host_now(l.backend.as_ref(), &mut l.handle, &f.host)?;
    let fault = live::build_fault(
        l.backend.as_ref(),
        l.state(),
        &f.kind,
        std::slice::from_ref(&host),
    )?;
    let ev = faultinject::inject_and_record(
        &fault,
        &host,
        "faultinject",
        &l.handle.dir().join("events.csv"),
    )?;
    info!(host = %ev.host, "{}: {}", ev.event, ev.detail);
    Ok((ev.t_unix_ns, host))
}

/// Starts webstone-server (running `app`) on `host` again and waits until
/// it listens.
fn restart(l: &mut Live, host: &str, app: AppMode, cancel: &AtomicBool) -> Result<()> {
    let bin = topology::sibling_binary("webstone-server")?;
    let log = l.handle.dir().join(format!("{host}.restart.log"));
    let mut argv: Vec<OsString> = vec![
        bin.into(),
        "--listen".into(),
        "0.0.0.0:80".into(),
        "--served-by".into(),
        host.into(),
    ];
    argv.extend(crate::services::app_args(app)?);
    let spec = ServiceSpec {
        host: host.into(),
        argv,
        log: log.clone(),
    };
    let pid = l.backend.spawn_service(&mut l.handle, &spec)?;
    crate::services::wait_ready(pid, &log, cancel)
}

/// The results folder name of variant `name` on `topology`: the variant's
/// own on netns, suffixed `-docker` on Docker.
pub fn variant_dir(name: &str, topology: &str) -> String {
    if topology == "netns" {
        name.to_string()
    } else {
        format!("{name}-{topology}")
    }
}

/// The results directory of one repetition.
pub fn rep_dir(results: &Path, experiment: &str, variant: &str, rep: u32) -> PathBuf {
    results
        .join(experiment)
        .join(variant)
        .join(format!("rep-{rep}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rep_dirs() {
        assert_eq!(variant_dir("coral", "docker"), "coral-docker");
        assert_eq!(variant_dir("coral", "netns"), "coral");
        assert_eq!(
            rep_dir(Path::new("r"), "e", "v", 2),
            PathBuf::from("r/e/v/rep-2")
        );
    }
}
