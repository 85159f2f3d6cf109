//! A topology with its service running: [`bring_up`] builds the topology,
//! starts the service on it and waits until it serves; the returned
//! [`Live`] tears everything down when dropped (error, panic, Ctrl-C) unless
//! it was detached ([`Live::detach`], what `coral-exp up` does before
//! returning). [`load`] finds a running one again from its state directory,
//! [`resolve_host_now`] names the host playing a role in it now.
//!
//! This is the one place that knows both layers: the topology
//! ([`crate::topology`]) knows no service, a service
//! ([`crate::services`]) is started on a topology that is already built.

use crate::conditions::Conditions;
use crate::services::{self, ServiceOptions};
use crate::topology::TOPOLOGY_SCHEMA_VERSION;
use crate::topology::{self, Live, StateHandle, Status, Topology, TopologyState};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// How to bring a topology up, with its service.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Backend name (`netns`).
    pub topology: String,
    /// State directory (topology.json, logs, events.csv).
    pub state_dir: PathBuf,
    /// Resource name prefix; None picks a fresh `cxNNNN`.
    pub prefix: Option<String>,
    /// Rate limit of every LAN switch port, Mbit/s (none by default).
    pub lan_mbit: Option<u32>,
    /// The service and its options (its server CPU quota among them).
    pub service: ServiceOptions,
}

impl UpOptions {
    /// The run conditions these options ask for (LAN rate, server CPU quota).
    pub fn conditions(&self) -> Conditions {
        Conditions {
            lan_mbit: self.lan_mbit,
            server_cpu: self.service.server_cpu,
        }
    }
}

/// The process-wide cancel flag, set by SIGINT, SIGTERM and SIGHUP once
/// [`install_signal_flag`] ran.
pub fn cancel_flag() -> Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone()
}

/// Routes SIGINT, SIGTERM and SIGHUP to [`cancel_flag`] instead of killing
/// the process, so long operations can tear down before exiting.
pub fn install_signal_flag() -> Result<Arc<AtomicBool>> {
    let flag = cancel_flag();
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, flag.clone()).context("install signal handler")?;
    }
    Ok(flag)
}

/// Builds the topology and starts the service on it; on any error (or
/// cancel) everything created so far is removed before returning.
pub fn bring_up(opts: &UpOptions, cancel: &AtomicBool) -> Result<Live> {
    services::check(&opts.service)?;
    opts.conditions().validate()?;
    if !(1..=2).contains(&opts.service.servers) {
        bail!("--servers must be 1 or 2, not {}", opts.service.servers);
    }
    let backend = topology::backend(&opts.topology)?;
    if let Ok(old) = StateHandle::load(&opts.state_dir) {
        if old.state.status != Status::Down
            && backend.existing_prefixes().contains(&old.state.prefix)
        {
            bail!(
                "a topology ({}) is already up in {}: run `coral-exp down --state {}` first",
                old.state.prefix,
                opts.state_dir.display(),
                opts.state_dir.display()
            );
        }
    }
    let prefix = match &opts.prefix {
        Some(p) => {
            topology::check_prefix(p)?;
            if topology::prefix_in_use(p) {
                bail!("prefix `{p}` is in use (namespaces or registry entry exist)");
            }
            p.clone()
        }
        None => topology::new_prefix()?,
    };
    // Fresh per-run files in the state directory.
    let _ = std::fs::remove_file(opts.state_dir.join("events.csv"));
    let state = TopologyState::new(backend.kind(), &opts.service.name, &prefix);
    debug_assert_eq!(state.schema_version, TOPOLOGY_SCHEMA_VERSION);
    let handle = StateHandle::create(&opts.state_dir, state)?;
    topology::register(&handle)?;
    let mut live = Live::new(backend, handle);
    live.backend.build(&mut live.handle, cancel)?;
    if let Some(mbit) = opts.lan_mbit {
        live.backend.set_lan_rate(&mut live.handle, mbit)?;
    }

    services::start(&mut live, &opts.service, cancel)?;
    let st = &mut live.handle.state;
    st.service_url = st.service_urls.first().cloned().unwrap_or_default();
    st.status = Status::Up;
    st.up_done_unix_ns = faultinject::now_unix_ns();
    live.handle.save()?;
    Ok(live)
}

/// Loads the topology in `dir` with its backend.
pub fn load(dir: &Path) -> Result<(Box<dyn Topology>, StateHandle)> {
    let h = StateHandle::load(dir)?;
    let b = topology::backend(&h.state.topology)?;
    Ok((b, h))
}

/// The fault `kind` (a name of docs/CLI.md's `coral-exp fault`: `link-cut`,
/// `link-restore`, `kill`, `stop`, `cont`, `partition`, `heal`,
/// `isolate-witness`) on `hosts`, already resolved to host names (two for
/// `partition` and `heal`, else one). Building it changes nothing.
pub fn build_fault(
    backend: &dyn Topology,
    s: &TopologyState,
    kind: &str,
    hosts: &[String],
) -> Result<faultinject::Fault> {
    use faultinject::Fault;
    let two = matches!(kind, "partition" | "heal");
    match (two, hosts.len()) {
        (true, 2) | (false, 1) => {}
        (true, _) => bail!("{kind} takes two hosts: HOST_A HOST_B"),
        (false, _) => bail!("{kind} takes one host"),
    }
    let h = &hosts[0];
    let pids = || -> Result<Vec<u32>> {
        let pids = s.host(h)?.pids.clone();
        if pids.is_empty() {
            bail!("host {h} runs no service process of the kit");
        }
        Ok(pids)
    };
    Ok(match kind {
        "link-cut" => backend.link_fault(s, h, false)?,
        "link-restore" => backend.link_fault(s, h, true)?,
        "partition" => backend.partition_fault(s, h, &hosts[1], false)?,
        "heal" => backend.partition_fault(s, h, &hosts[1], true)?,
        "kill" => Fault::Kill { pids: pids()? },
        "stop" => Fault::Stop { pids: pids()? },
        "cont" => Fault::Cont { pids: pids()? },
        "isolate-witness" => services::coral::isolate_witness_fault(s, h)?,
        other => bail!("unknown fault `{other}`"),
    })
}

/// Resolves `spec` like [`TopologyState::resolve_host`], after re-resolving
/// the roles that move while a baseline runs (a proxy's busiest server, the
/// VRRP master: [`services::refresh_roles`]) and saving them to
/// topology.json. A host name is returned as is.
pub fn resolve_host_now(backend: &dyn Topology, h: &mut StateHandle, spec: &str) -> Result<String> {
    if !h.state.hosts.contains_key(spec) {
        services::refresh_roles(backend, &mut h.state)?;
        h.save()?;
    }
    h.state.resolve_host(spec)
}
