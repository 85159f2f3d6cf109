//! The kernel-enforced lease (docs/DESIGN.md section 4): which service addresses
//! this node may send from, kept in its nft `lease` set.
//!
//! Addresses in the refreshed set get a new element with timeout
//! [`coral_core::Timing::lease_timeout_ns`] on every fresh
//! authenticated heartbeat (one libnftables call for all of them, about
//! 50 us); a witness grant makes an element permanent (and takes it out of
//! the refreshed set: a timed refresh would end the permanence); fencing
//! revokes everything. The libnftables handle is not `Sync`: it lives under
//! the mutex with the sets, so a refresh and a change of lease kind never
//! interleave.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;

use crate::io::nft::{self, FenceConfig, Nft};

struct Inner {
    nft: Nft,
    refreshed: BTreeSet<Ipv4Addr>,
}

/// The node's leases and its nft handle.
pub struct Leases {
    inner: Mutex<Inner>,
    fence: FenceConfig,
    timeout: Duration,
    /// Successful refreshes.
    pub refreshes: AtomicU64,
    /// Failed nft calls while refreshing.
    pub refresh_errors: AtomicU64,
}

impl Leases {
    /// Leases in `fence`'s table, refreshed with `timeout`.
    pub fn new(nft: Nft, fence: FenceConfig, timeout: Duration) -> Leases {
        Leases {
            inner: Mutex::new(Inner {
                nft,
                refreshed: BTreeSet::new(),
            }),
            fence,
            timeout,
            refreshes: AtomicU64::new(0),
            refresh_errors: AtomicU64::new(0),
        }
    }

    /// The fence table's configuration.
    pub fn fence(&self) -> &FenceConfig {
        &self.fence
    }

    /// The refresh timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run any nft script through the handle.
    pub fn run(&self, script: &str) -> Result<String> {
        self.inner.lock().expect("leases").nft.run(script)
    }

    /// Lease `vip` now for one timeout and refresh it on every heartbeat.
    pub fn start_refreshed(&self, vip: Ipv4Addr) -> Result<()> {
        let mut g = self.inner.lock().expect("leases");
        g.nft
            .run(&nft::refresh_lease(&self.fence, vip, self.timeout))?;
        g.refreshed.insert(vip);
        Ok(())
    }

    /// A fresh authenticated heartbeat arrived `age` ago: extend every
    /// refreshed lease to one timeout after its arrival. Anchoring at the
    /// arrival (not at this call) keeps the lease inside the bound the peer
    /// computes from its own last heartbeat, however late this process runs
    /// (a loaded or just-continued process must not stretch it).
    pub fn refresh(&self, age: std::time::Duration) {
        let t0 = std::time::Instant::now();
        let mut g = self.inner.lock().expect("leases");
        if g.refreshed.is_empty() {
            return;
        }
        let left = self.timeout.saturating_sub(age + t0.elapsed());
        if left < std::time::Duration::from_millis(1) {
            return; // already past: let the lease lapse
        }
        let script: String = g
            .refreshed
            .iter()
            .map(|v| nft::refresh_lease_until(&self.fence, *v, self.timeout, left))
            .collect();
        match g.nft.run(&script) {
            Ok(_) => self.refreshes.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.refresh_errors.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Stop refreshing every lease (they lapse within one timeout); used
    /// when the peer is declared failed: only a grant brings a lease back.
    pub fn stop_refreshing(&self) {
        self.inner.lock().expect("leases").refreshed.clear();
    }

    /// A grant: `vip`'s lease becomes permanent.
    pub fn make_permanent(&self, vip: Ipv4Addr) -> Result<()> {
        let mut g = self.inner.lock().expect("leases");
        g.refreshed.remove(&vip);
        g.nft.run(&nft::permanent_lease(&self.fence, vip))?;
        Ok(())
    }

    /// Fencing: revoke the lease of every address in `vips` at once (the
    /// table and its drop rule stay: the kernel stays silent).
    pub fn revoke_all(&self, vips: &[Ipv4Addr]) -> Result<()> {
        let mut g = self.inner.lock().expect("leases");
        g.refreshed.clear();
        let script: String = vips
            .iter()
            .map(|v| nft::revoke_lease(&self.fence, *v))
            .collect();
        g.nft.run(&script)?;
        Ok(())
    }
}
