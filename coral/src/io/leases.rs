//! The kernel-enforced lease (docs/DESIGN.md section 4): which service addresses
//! this node may send from, kept in its nft `lease` set.
//!
//! Addresses in the refreshed set get a new element expiring when the
//! heartbeat link says (`coral_core::HeartbeatLink`: the echo-anchored
//! lease, at most [`coral_core::Timing::lease_timeout_ns`] past our send
//! time of the echoed heartbeat), one libnftables call for all of them
//! (about 50 us) on the heartbeat thread; a witness grant makes an element permanent (and takes it out of
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

    /// Extend every refreshed lease to end at `until` (node clock; the
    /// heartbeat link computes it, see `coral_core::HeartbeatLink`). nft
    /// takes a relative expiry, counted from when it handles the call: if
    /// this thread was held up for more than a millisecond around the call,
    /// the expiry is set again from the time after it (or the leases are
    /// withdrawn if `until` has passed), so a stall cannot stretch a lease
    /// by more than about a millisecond plus the stall of that second call.
    pub fn extend_to(&self, until: coral_core::Instant, clock: &crate::clock::Clock) {
        let mut g = self.inner.lock().expect("leases");
        if g.refreshed.is_empty() {
            return;
        }
        let t0 = clock.now();
        let ok = self.set_expiry(&mut g, Duration::from_nanos(until.since_ns(t0)));
        let t1 = clock.now();
        if ok && t1.since_ns(t0) > 1_000_000 {
            tracing::warn!(
                stalled_ms = t1.since_ms(t0),
                "lease refresh held up; setting it again"
            );
            self.set_expiry(&mut g, Duration::from_nanos(until.since_ns(t1)));
        }
    }

    /// One nft call setting every refreshed lease to expire in `left`
    /// (withdrawn if under the 1 ms nft can express); true if nft accepted.
    fn set_expiry(&self, g: &mut Inner, left: Duration) -> bool {
        let script: String = g
            .refreshed
            .iter()
            .map(|v| {
                if left < Duration::from_millis(1) {
                    nft::revoke_lease(&self.fence, *v)
                } else {
                    nft::refresh_lease_until(&self.fence, *v, self.timeout, left)
                }
            })
            .collect();
        let ok = g.nft.run(&script).is_ok();
        let counter = if ok {
            &self.refreshes
        } else {
            &self.refresh_errors
        };
        counter.fetch_add(1, Ordering::Relaxed);
        ok
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
