//! The services `coral-exp up` can run on a topology, one module each. A
//! service starts its processes through the backend (so they land in the
//! right namespace and cgroup), waits until they serve, and fills in the
//! roles and service URLs of topology.json.

pub mod coral;
pub mod unreplicated;

use crate::live::{Live, UpOptions};
use anyhow::{bail, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Services `up` knows.
pub const SERVICES: [&str; 2] = ["unreplicated", "coral"];

/// Options of the CoRAL service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CoralOptions {
    /// Heartbeat period, ms.
    pub heartbeat_ms: u64,
    /// Missed heartbeats that declare the peer failed.
    pub misses: u32,
    /// Dual role: each server fronts one address and is primary for the other.
    pub dual_role: bool,
}

impl Default for CoralOptions {
    fn default() -> Self {
        // The paper's heartbeat period (section 4.2).
        CoralOptions {
            heartbeat_ms: 100,
            misses: 3,
            dual_role: false,
        }
    }
}

/// Check the service name and its options before anything is built.
pub fn check(opts: &UpOptions) -> Result<()> {
    match opts.service.as_str() {
        "unreplicated" => Ok(()),
        "coral" => coral::check(opts),
        "haproxy" | "nginx" | "keepalived" => bail!("--service {} is not built yet", opts.service),
        other => bail!(
            "unknown service `{other}` (one of: {})",
            SERVICES.join(", ")
        ),
    }
}

/// Start the service of `opts` on the built topology and wait until it serves.
pub fn start(live: &mut Live, opts: &UpOptions, cancel: &AtomicBool) -> Result<()> {
    match opts.service.as_str() {
        "unreplicated" => unreplicated::start(live, opts, cancel),
        "coral" => coral::start(live, opts, cancel),
        other => bail!("unknown service `{other}`"),
    }
}

/// Waits until `log` contains `marker`; fails if the process exits first,
/// `within` passes, or `cancel` is set.
pub fn wait_for_log(
    pid: u32,
    log: &Path,
    marker: &str,
    within: Duration,
    cancel: &AtomicBool,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(marker) {
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
            bail!(
                "not ready after {} s (log {})",
                within.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
