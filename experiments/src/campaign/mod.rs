//! `coral-exp run fault-campaign [--trials N] [--seed S]`: randomized
//! single faults against fresh CoRAL pairs, each trial decided by a checker.
//!
//! - [`plan`]: what a trial is, drawn from its seed (the campaign's
//!   catalog: data only).
//! - [`check`]: the checker (pure): lost, errors by kind, reconnects,
//!   digest mismatches, duplicate executions, stall, split brain.
//! - [`capture`]: the switch capture the checker reads.
//! - this module: runs the trials on the kit's own machinery (the topology
//!   and service through [`live::bring_up`], the load through
//!   `coral-load`, faults through [`live::build_fault`] and faultinject),
//!   writes `RESULTS/fault-campaign/trials.csv`, prints a table by fault
//!   kind and the replay command of every failed trial, and exits 0 only
//!   when every trial met the standard.

pub mod capture;
pub mod check;
pub mod plan;

use crate::catalog::{LoadOptions, Shape};
use crate::live::{self, UpOptions};
use crate::runner::{load_argv, load_failed, record, sleep_until, spawn_load, LoadGuard};
use crate::services::{AppMode, CoralOptions, ServiceOptions};
use crate::topology::{self, Live};
use anyhow::{bail, Context, Result};
use plan::{ConnShape, FaultKind, TrialPlan};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::{info, info_span, warn};
use workload::summary::{self, SummaryOptions};

/// What `coral-exp run fault-campaign` was asked to do.
#[derive(Debug, Clone)]
pub struct CampaignOptions {
    /// Trials to run.
    pub trials: u32,
    /// Seed of the first trial; trial i has seed `seed + i`.
    pub seed: u64,
    /// Topology backend name.
    pub topology: String,
    /// Results directory (the campaign writes `RESULTS/fault-campaign/`).
    pub results: PathBuf,
    /// Name prefix of every trial's topology.
    pub prefix: Option<String>,
}

/// One row of trials.csv.
#[derive(Debug, Clone, Serialize)]
pub struct TrialRow {
    /// The trial's seed.
    pub seed: u64,
    /// Fault kind.
    pub kind: &'static str,
    /// Host the fault hit (`server-a+server-b` for a partition).
    pub target: String,
    /// What the target was: primary, backup, primary+backup, both.
    pub target_role: &'static str,
    /// Fault instant, seconds after the load started.
    pub instant_s: f64,
    /// `stop-cont`: the pause, seconds.
    pub pause_s: Option<f64>,
    /// `single` or `dual`.
    pub role: &'static str,
    /// Connection use and reply size.
    pub shape: String,
    /// `pass`, `FAIL`, or `error` (the trial could not run).
    pub verdict: String,
    /// Requests sent.
    pub requests: u64,
    /// Verified replies.
    pub ok: u64,
    /// Lost requests.
    pub lost: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Errors by kind, `kind=n;…`.
    pub errors_by_kind: String,
    /// Reconnects after an error.
    pub reconnects: u64,
    /// Corrupted replies.
    pub digest_mismatches: u64,
    /// Requests executed by both nodes (empty: not known).
    pub duplicate_executions: Option<u64>,
    /// Split-brain findings in the switch capture (empty: no capture).
    pub split_brain: Option<usize>,
    /// Longest gap between two verified replies of one client, ms.
    pub stall_ms: f64,
    /// Why it failed, or what went wrong running it.
    pub detail: String,
}

impl TrialRow {
    fn new(p: &TrialPlan, outcome: &Result<check::Verdict>) -> TrialRow {
        let mut row = TrialRow {
            seed: p.seed,
            kind: p.kind.as_str(),
            target: if p.kind == FaultKind::Partition {
                "server-a+server-b".into()
            } else {
                p.target.into()
            },
            target_role: p.target_role(),
            instant_s: p.instant_s,
            pause_s: p.pause_s,
            role: p.role(),
            shape: p.shape_label(),
            verdict: "error".into(),
            requests: 0,
            ok: 0,
            lost: 0,
            errors: 0,
            errors_by_kind: String::new(),
            reconnects: 0,
            digest_mismatches: 0,
            duplicate_executions: None,
            split_brain: None,
            stall_ms: 0.0,
            detail: String::new(),
        };
        match outcome {
            Ok(v) => {
                row.verdict = v.label().into();
                row.requests = v.requests;
                row.ok = v.ok;
                row.lost = v.lost;
                row.errors = v.errors();
                row.errors_by_kind = v.errors_cell();
                row.reconnects = v.reconnects;
                row.digest_mismatches = v.digest_mismatches;
                row.duplicate_executions = v.duplicate_executions;
                row.split_brain = v.captured.then_some(v.split_brain.len());
                row.stall_ms = (v.stall_ms * 10.0).round() / 10.0;
                row.detail = v
                    .failures()
                    .into_iter()
                    .chain(v.early_detection.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
            }
            Err(e) => row.detail = format!("{e:#}"),
        }
        row
    }

    /// Met the standard.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }
}

/// Runs the campaign; returns the exit code (0: every trial passed).
pub fn run(o: &CampaignOptions) -> Result<i32> {
    if o.trials == 0 {
        bail!("--trials must be at least 1");
    }
    topology::backend(&o.topology)?;
    if let Some(p) = &o.prefix {
        topology::check_prefix(p)?;
    }
    let load_bin = topology::sibling_binary("coral-load")?;
    topology::sibling_binary("coral")?;
    let cancel = live::install_signal_flag()?;
    let dir = o.results.join(plan::NAME);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let csv_path = dir.join("trials.csv");
    let _span = info_span!("campaign", trials = o.trials, seed = o.seed).entered();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    for (i, seed) in plan::seeds(o.seed, o.trials).enumerate() {
        let p = plan::trial(seed);
        let tdir = dir.join(format!("trial-{seed}"));
        let outcome = {
            let _t = info_span!("trial", seed).entered();
            run_trial(o, &p, &tdir, &load_bin, &cancel)
        };
        if cancel.load(Ordering::SeqCst) {
            bail!("interrupted after {i} trials (trials.csv has them)");
        }
        let row = TrialRow::new(&p, &outcome);
        println!("{}", trial_line(i as u32 + 1, o.trials, &row));
        if row.passed() {
            // A passing trial's records are summed up in its row.
            let _ = std::fs::remove_dir_all(&tdir);
        } else {
            println!("  {}", row.detail);
            println!("  replay: {}", p.replay_command());
        }
        rows.push(row);
        write_csv(&csv_path, &rows)?;
    }
    print!("{}", table(&rows));
    let failed: Vec<&TrialRow> = rows.iter().filter(|r| !r.passed()).collect();
    println!(
        "{}: {} trials in {:.1} s, {} passed, {} failed; {}",
        plan::NAME,
        rows.len(),
        t0.elapsed().as_secs_f64(),
        rows.len() - failed.len(),
        failed.len(),
        csv_path.display()
    );
    for r in &failed {
        println!(
            "FAILED seed {} ({} {} at {} s): {}",
            r.seed,
            r.kind,
            r.target,
            r.instant_s,
            plan::trial(r.seed).replay_command()
        );
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

fn trial_line(n: u32, of: u32, r: &TrialRow) -> String {
    format!(
        "trial {n}/{of} seed {}: {} {} ({}) at {:.3} s, {} role, {}: {} ({} ok, {} lost, {} errors, {} reconnects, stall {:.0} ms)",
        r.seed,
        r.kind,
        r.target,
        r.target_role,
        r.instant_s,
        r.role,
        r.shape,
        r.verdict,
        r.ok,
        r.lost,
        r.errors,
        r.reconnects,
        r.stall_ms
    )
}

/// Writes every row so far (rewritten after each trial: an interrupted
/// campaign keeps the trials it ran).
pub fn write_csv(path: &Path, rows: &[TrialRow]) -> Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("write {}", path.display()))?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// The campaign table by fault kind (Markdown): trials, passed, and the
/// counts summed over the kind's trials.
pub fn table(rows: &[TrialRow]) -> String {
    let mut by: BTreeMap<&str, Vec<&TrialRow>> = BTreeMap::new();
    for r in rows {
        by.entry(r.kind).or_default().push(r);
    }
    let mut t = String::from(
        "| fault | trials | passed | lost | errors | reconnects | digest mismatches | split brain | duplicate executions | max stall (ms) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let order = FaultKind::ALL.iter().map(|k| k.as_str());
    for k in order {
        let Some(rs) = by.get(k) else { continue };
        let sum = |f: fn(&TrialRow) -> u64| rs.iter().map(|r| f(r)).sum::<u64>();
        let dup: Option<u64> = rs.iter().map(|r| r.duplicate_executions).sum();
        t.push_str(&format!(
            "| {k} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
            rs.len(),
            rs.iter().filter(|r| r.passed()).count(),
            sum(|r| r.lost),
            sum(|r| r.errors),
            sum(|r| r.reconnects),
            sum(|r| r.digest_mismatches),
            sum(|r| r.split_brain.unwrap_or(0) as u64),
            dup.map_or("-".into(), |d| d.to_string()),
            rs.iter().map(|r| r.stall_ms).fold(0.0, f64::max),
        ));
    }
    t
}

/// The load options of a trial.
fn trial_load(p: &TrialPlan) -> LoadOptions {
    LoadOptions {
        clients: p.clients,
        size: p.size,
        connection_per_request: p.shape == ConnShape::ConnectionPerRequest,
        idle_conns: 0,
    }
}

/// One trial: a fresh pair, the load, the fault, the checker's verdict.
fn run_trial(
    o: &CampaignOptions,
    p: &TrialPlan,
    dir: &Path,
    load_bin: &Path,
    cancel: &AtomicBool,
) -> Result<check::Verdict> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("plan.json"),
        serde_json::to_string_pretty(p)? + "\n",
    )?;
    let state_dir = dir.join("topology");
    let mut live = bring_up_pair(o, p, &state_dir, cancel)?;
    let st = live.state().clone();
    let vips: Vec<String> = st
        .service_urls
        .iter()
        .filter_map(|u| u.strip_prefix("http://")?.split('/').next())
        .map(String::from)
        .collect();
    let runner_events = state_dir.join("runner-events.csv");
    let capture = capture::Capture::start(&live, &vips, dir)?;
    let load_dir = dir.join("load");
    let argv = trial_argv(load_bin, &st.service_urls, p, &load_dir);
    let (mut child, started) = spawn_load(&live, &argv, dir)?;
    let mut load = LoadGuard(Some(&mut child));
    record(&runner_events, "client", "load-start", p.shape_label())?;

    sleep_until(started + Duration::from_secs_f64(p.instant_s), cancel)?;
    let fault_unix_ns = faultinject::now_unix_ns();
    let early = || {
        let events = faultinject::events::read_events(&state_dir.join("events.csv"));
        check::early_detection(&events.unwrap_or_default(), fault_unix_ns)
    };
    if let Err(e) = inject(&mut live, p, started, cancel) {
        // A target that fenced itself after a false detection is gone.
        return Err(match early() {
            Some(d) => e.context(d),
            None => e,
        });
    }

    let limit = started + Duration::from_secs_f64(plan::DURATION_S + plan::DRAIN_S + 30.0);
    let status = load.wait(limit, "its duration, drain and 30 s", cancel)?;
    record(
        &runner_events,
        "client",
        "load-end",
        format!("coral-load {status}"),
    )?;
    let capture = capture.map(capture::Capture::stop).transpose()?;
    live.down()?;
    if !status.success() {
        return Err(load_failed(status, dir));
    }
    faultinject::events::merge_sorted(
        &[&runner_events, &state_dir.join("events.csv")],
        &dir.join("events.csv"),
    )?;
    let records = summary::read_requests_csv(load_dir.join("requests.csv"))?;
    let s = summary::read_summary_json(load_dir.join("summary.json"))?;
    let vip_refs: Vec<&str> = vips.iter().map(String::as_str).collect();
    let executions = executions(&state_dir);
    let mut verdict = check::check(&check::Evidence {
        records: &records,
        window: SummaryOptions {
            run_start_unix_ns: s.run_start_unix_ns,
            warmup_end_unix_ns: s.warmup_end_unix_ns,
            run_end_unix_ns: s.run_end_unix_ns,
            fault_at_unix_ns: None,
        },
        capture: capture.as_deref(),
        vips: &vip_refs,
        voice_until: check::first_join(
            &faultinject::events::read_events(&dir.join("events.csv")).unwrap_or_default(),
        ),
        executions: Some(&executions),
    });
    verdict.early_detection = early();
    Ok(verdict)
}

/// A fresh CoRAL pair for trial `p` (its role layout; every node logs the
/// requests it executes), state in `state_dir`.
fn bring_up_pair(
    o: &CampaignOptions,
    p: &TrialPlan,
    state_dir: &Path,
    cancel: &AtomicBool,
) -> Result<Live> {
    live::bring_up(
        &UpOptions {
            topology: o.topology.clone(),
            state_dir: state_dir.to_path_buf(),
            prefix: o.prefix.clone(),
            lan_mbit: None,
            service: ServiceOptions {
                name: "coral".into(),
                servers: 2,
                server_cpu: None,
                coral: CoralOptions {
                    dual_role: p.dual_role,
                    log_requests: true,
                    ..CoralOptions::default()
                },
                lb: Default::default(),
                app: AppMode::Inproc,
            },
        },
        cancel,
    )
}

/// coral-load's arguments for trial `p`: its load and connection shape,
/// the campaign's duration and drain, results into `load_dir`.
fn trial_argv(load_bin: &Path, urls: &[String], p: &TrialPlan, load_dir: &Path) -> Vec<OsString> {
    let shape = Shape {
        duration_s: plan::DURATION_S,
        warmup_s: plan::WARMUP_S,
        reps: 1,
    };
    let mut argv = load_argv(load_bin, urls, &trial_load(p), shape);
    for (k, val) in [
        ("--drain-s", plan::DRAIN_S.to_string()),
        (
            "--timeout-s",
            (plan::DURATION_S + plan::DRAIN_S).to_string(),
        ),
        ("--out", load_dir.display().to_string()),
    ] {
        argv.push(k.into());
        argv.push(val.into());
    }
    if p.shape == ConnShape::Pipelined {
        argv.push("--pipeline".into());
        argv.push(plan::PIPELINE_DEPTH.to_string().into());
    }
    argv
}

/// Request id -> the nodes that executed it, from the request lines each
/// node printed into its log in the topology's state directory (the
/// node's `log_requests`; a missing log is a node that never started).
fn executions(state_dir: &Path) -> BTreeMap<String, Vec<String>> {
    let logs: Vec<(&str, String)> = ["server-a", "server-b"]
        .into_iter()
        .map(|h| {
            let text = std::fs::read_to_string(state_dir.join(format!("{h}.log")));
            (h, text.unwrap_or_default())
        })
        .collect();
    let refs: Vec<(&str, &str)> = logs.iter().map(|(h, t)| (*h, t.as_str())).collect();
    check::executions(&refs)
}

/// Injects the trial's fault (and, for `stop-cont`, the SIGCONT after the
/// pause) into the topology's events.csv.
fn inject(
    live: &mut topology::Live,
    p: &TrialPlan,
    started: Instant,
    cancel: &AtomicBool,
) -> Result<()> {
    let events = live.handle.dir().join("events.csv");
    let (kind, hosts): (&str, Vec<String>) = match p.kind {
        FaultKind::LinkCut => ("link-cut", vec![p.target.into()]),
        FaultKind::Kill => ("kill", vec![p.target.into()]),
        FaultKind::StopCont => ("stop", vec![p.target.into()]),
        FaultKind::Partition => ("partition", vec!["server-a".into(), "server-b".into()]),
        FaultKind::IsolateWitness => ("isolate-witness", vec![p.target.into()]),
    };
    let fault = live::build_fault(live.backend.as_ref(), live.state(), kind, &hosts)?;
    let ev = faultinject::inject_and_record(&fault, &hosts.join("+"), "faultinject", &events)?;
    info!(host = %ev.host, "{}: {}", ev.event, ev.detail);
    if let Some(pause) = p.pause_s {
        sleep_until(
            started + Duration::from_secs_f64(p.instant_s + pause),
            cancel,
        )?;
        let cont = live::build_fault(live.backend.as_ref(), live.state(), "cont", &hosts)?;
        match faultinject::inject_and_record(&cont, &hosts.join("+"), "faultinject", &events) {
            Ok(ev) => info!(host = %ev.host, "{}: {}", ev.event, ev.detail),
            // A node that fenced itself may have exited already... but a
            // stopped process cannot exit: this is a real failure to report.
            Err(e) => warn!("SIGCONT after the pause: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_join_both_nodes_logs_by_request_id() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("server-a.log"),
            "coral node server-a ready\nrequest id=0-1 peer=x status=200\nrequest id=0-2 peer=x status=200\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("server-b.log"),
            "2026 INFO takeover\nrequest id=0-2 peer=x status=200\nrequest id=0-3 peer=x status=200\n",
        )
        .unwrap();
        let x = executions(d.path());
        assert_eq!(x.len(), 3);
        assert_eq!(x["0-2"], ["server-a", "server-b"]);
        // A node that never started left no log: its requests are none.
        std::fs::remove_file(d.path().join("server-b.log")).unwrap();
        assert_eq!(executions(d.path()).len(), 2);
    }
}
