//! A live topology with its service: [`bring_up`] builds it, starts the
//! service and waits until it serves; the returned [`Live`] tears everything
//! down when dropped (error, panic, Ctrl-C) unless it was detached
//! ([`Live::detach`], what `coral-exp up` does before returning).

use crate::conditions::Conditions;
use crate::topology::TOPOLOGY_SCHEMA_VERSION;
use crate::topology::{self, StateHandle, Status, Topology, TopologyState};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub use crate::services::SERVICES;

/// How to bring a topology up.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// `unreplicated` (or `coral`, not built yet).
    pub service: String,
    /// Backend name (`netns`).
    pub topology: String,
    /// Servers running the service (1 or 2).
    pub servers: u8,
    /// State directory (topology.json, logs, events.csv).
    pub state_dir: PathBuf,
    /// Resource name prefix; None picks a fresh `cxNNNN`.
    pub prefix: Option<String>,
    /// LAN rate and server CPU quota (none by default).
    pub conditions: Conditions,
    /// Options of the CoRAL service (ignored by the others).
    pub coral: crate::services::CoralOptions,
    /// Options of the haproxy and keepalived baselines (ignored by the others).
    pub lb: crate::services::LbOptions,
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

/// A topology that is (being) built; torn down on drop unless detached.
pub struct Live {
    /// Its backend.
    pub backend: Box<dyn Topology>,
    /// Its state (topology.json).
    pub handle: StateHandle,
    armed: bool,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("prefix", &self.handle.state.prefix)
            .field("armed", &self.armed)
            .finish()
    }
}

impl Live {
    /// The state.
    pub fn state(&self) -> &TopologyState {
        &self.handle.state
    }

    /// Leaves the topology up after this value is gone: status `up`, no
    /// owner (it belongs to the user now; `down --stale` leaves it alone).
    pub fn detach(mut self) -> Result<()> {
        self.handle.state.owner_pid = None;
        self.handle.save()?;
        topology::register(&self.handle)?;
        self.armed = false;
        Ok(())
    }

    /// Tears the topology down now.
    pub fn down(mut self) -> Result<()> {
        self.armed = false;
        self.backend.destroy(&mut self.handle)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            if let Err(e) = self.backend.destroy(&mut self.handle) {
                eprintln!("coral-exp: teardown after failure: {e:#}");
            }
        }
    }
}

/// Builds the topology and starts the service on it; on any error (or
/// cancel) everything created so far is removed before returning.
pub fn bring_up(opts: &UpOptions, cancel: &AtomicBool) -> Result<Live> {
    crate::services::check(opts)?;
    opts.conditions.validate()?;
    if !(1..=2).contains(&opts.servers) {
        bail!("--servers must be 1 or 2, not {}", opts.servers);
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
    let state = TopologyState::new(backend.kind(), &opts.service, &prefix);
    debug_assert_eq!(state.schema_version, TOPOLOGY_SCHEMA_VERSION);
    let handle = StateHandle::create(&opts.state_dir, state)?;
    topology::register(&handle)?;
    let mut live = Live {
        backend,
        handle,
        armed: true,
    };
    live.backend.build(&mut live.handle, cancel)?;
    if let Some(mbit) = opts.conditions.lan_mbit {
        live.backend.set_lan_rate(&mut live.handle, mbit)?;
    }

    crate::services::start(&mut live, opts, cancel)?;
    let st = &mut live.handle.state;
    st.service_url = st.service_urls.first().cloned().unwrap_or_default();
    st.status = Status::Up;
    st.up_done_unix_ns = faultinject::now_unix_ns();
    live.handle.save()?;
    Ok(live)
}

/// Waits until the process's log says "listening on", or fails if it exits
/// first, 10 s pass, or `cancel` is set.
pub fn wait_ready(pid: u32, log: &Path, cancel: &AtomicBool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("listening on") {
            return Ok(());
        }
        if !faultinject::pid_alive(pid) {
            bail!(
                "exited before it was ready; its log ({}) says: {}",
                log.display(),
                text.trim()
            );
        }
        if cancel.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!("not ready after 10 s (log {})", log.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Loads the topology in `dir` with its backend.
pub fn load(dir: &Path) -> Result<(Box<dyn Topology>, StateHandle)> {
    let h = StateHandle::load(dir)?;
    let b = topology::backend(&h.state.topology)?;
    Ok((b, h))
}
