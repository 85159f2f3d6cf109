//! The kernel-enforced lease (docs/DESIGN.md section 4): which service addresses
//! this node may send from, kept in its nft `lease` set.
//!
//! Addresses in the refreshed set get a new element expiring when the
//! heartbeat link says (`coral_core::HeartbeatLink`: the echo-anchored
//! lease, at most [`coral_core::Timing::lease_timeout_ns`] past our send
//! time of the echoed heartbeat), one nfnetlink batch for all of them
//! ([`crate::io::nfnl`], about 0.14 ms; libnftables took about 0.45 ms) on
//! the heartbeat thread; a witness grant makes an element permanent (and takes it out of
//! the refreshed set: a timed refresh would end the permanence); fencing
//! revokes everything; each of those is one batch too. The libnftables
//! handle (the ruleset, and [`Leases::run`]) and the netlink socket live
//! under the mutex with the sets, so a refresh and a change of lease kind
//! never interleave.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;

use crate::io::nfnl::{ElemChange, LeaseElem, SetElemSocket};
use crate::io::nft::{self, FenceConfig, Nft};

struct Inner {
    nft: Nft,
    /// The refresh's own path to the lease set (no libnftables).
    fast: SetElemSocket,
    refreshed: BTreeSet<Ipv4Addr>,
}

/// The kernel's clock tick for set timeouts (CONFIG_HZ=250, the kernels
/// this kit runs on, docs/DESIGN.md section 4): nft takes milliseconds and
/// the kernel truncates them to whole jiffies; an element whose expiry is
/// jiffy `j` is gone from the tick that starts `j` on.
pub const JIFFY: Duration = Duration::from_millis(4);

/// The longest the nft call may take after the remaining time was read
/// before [`Leases::extend_to`] sets the expiry again.
const CALL_DELAY: Duration = Duration::from_millis(1);

/// The `expires` to hand nft for a lease that must end `left` from now, or
/// `None` when no whole jiffy fits (revoke instead).
///
/// Rounded to whole jiffies, and up rather than down as far as the lease
/// margin allows: the kernel ends an element `n` jiffies after the tick
/// before the call, so it is gone before `call + n x JIFFY`, which is at
/// most `until + margin` when `n = (left + margin - CALL_DELAY) / JIFFY`
/// and the call comes within [`CALL_DELAY`]. Rounding down instead (the
/// truncated milliseconds the kernel truncates again) gave a 1 ms x 5
/// pair's 8 ms lease, refreshed about 7.8 ms ahead, a single jiffy: the
/// element expired at every tick and was renewed by the next heartbeat up
/// to 1 ms later, and TCP's retransmission and probe timers fire exactly
/// at ticks, so every retransmission of a lost segment was dropped by the
/// lease and the clients hung (docs/DESIGN.md section 6). With two jiffies
/// the element outlives the next tick and the next refresh renews it.
pub fn kernel_expires(left: Duration, margin: Duration) -> Option<Duration> {
    let n = (left + margin).saturating_sub(CALL_DELAY).as_nanos() / JIFFY.as_nanos();
    (n > 0).then(|| JIFFY * n as u32)
}

/// The node's leases and its nft handle.
pub struct Leases {
    inner: Mutex<Inner>,
    fence: FenceConfig,
    timeout: Duration,
    /// How far past the link's `until` the kernel may keep a lease
    /// (`coral_core::Timing::margin_ns`): room for rounding up to jiffies.
    margin: Duration,
    /// Successful refreshes.
    pub refreshes: AtomicU64,
    /// Failed nft calls while refreshing.
    pub refresh_errors: AtomicU64,
}

impl Leases {
    /// Leases in `fence`'s table, refreshed with `timeout`, which the
    /// kernel may overrun by at most `margin` (the lease margin); fails if
    /// the refresh's netlink socket cannot be opened.
    pub fn new(
        nft: Nft,
        fence: FenceConfig,
        timeout: Duration,
        margin: Duration,
    ) -> Result<Leases> {
        let fast = SetElemSocket::open(&fence.table, nft::LEASE_SET)
            .map_err(|e| anyhow::anyhow!("netlink socket for the lease refresh: {e}"))?;
        Ok(Leases {
            inner: Mutex::new(Inner {
                nft,
                fast,
                refreshed: BTreeSet::new(),
            }),
            fence,
            timeout,
            margin,
            refreshes: AtomicU64::new(0),
            refresh_errors: AtomicU64::new(0),
        })
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
        g.fast
            .apply(&[ElemChange::Lease(LeaseElem {
                vip,
                timeout: self.timeout,
                expires: self.timeout,
            })])
            .map_err(|e| anyhow::anyhow!("leasing {vip}: {e}"))?;
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

    /// One batch setting every refreshed lease to expire in `left`, as
    /// [`kernel_expires`] rounds it (withdrawn through libnftables if that
    /// is no jiffy at all); true if the kernel accepted.
    fn set_expiry(&self, g: &mut Inner, left: Duration) -> bool {
        let expires = kernel_expires(left, self.margin);
        let changes: Vec<ElemChange> = g
            .refreshed
            .iter()
            .map(|v| match expires {
                None => ElemChange::Revoke(*v),
                Some(e) => ElemChange::Lease(LeaseElem {
                    vip: *v,
                    timeout: self.timeout.max(e),
                    expires: e,
                }),
            })
            .collect();
        let ok = match g.fast.apply(&changes) {
            Ok(()) => true,
            Err(err) => {
                tracing::debug!("lease refresh: {err}");
                false
            }
        };
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
        g.fast
            .apply(&[ElemChange::Permanent(vip)])
            .map_err(|e| anyhow::anyhow!("permanent lease on {vip}: {e}"))?;
        Ok(())
    }

    /// `vip`'s lease element goes (it is no longer refreshed): the node
    /// holds none for the address any more.
    pub fn revoke(&self, vip: Ipv4Addr) -> Result<()> {
        let mut g = self.inner.lock().expect("leases");
        g.refreshed.remove(&vip);
        g.fast
            .apply(&[ElemChange::Revoke(vip)])
            .map_err(|e| anyhow::anyhow!("revoking the lease on {vip}: {e}"))?;
        Ok(())
    }

    /// Fencing: revoke the lease of every address in `vips` at once (the
    /// table and its drop rule stay: the kernel stays silent).
    pub fn revoke_all(&self, vips: &[Ipv4Addr]) -> Result<()> {
        let mut g = self.inner.lock().expect("leases");
        g.refreshed.clear();
        let changes: Vec<ElemChange> = vips.iter().map(|v| ElemChange::Revoke(*v)).collect();
        g.fast
            .apply(&changes)
            .map_err(|e| anyhow::anyhow!("revoking every lease: {e}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Jiffies the kernel makes of an nft `expires` (it truncates).
    fn jiffies(e: Duration) -> u64 {
        (e.as_millis() as u64).max(1) * MS / JIFFY.as_nanos() as u64
    }

    #[test]
    fn a_lease_refreshed_every_millisecond_outlives_the_next_tick_and_ends_within_the_margin() {
        let margin = Duration::from_millis(4);
        // 1 ms x 5: the 8 ms lease, refreshed one heartbeat round trip
        // (20 us to 3 ms) after the echoed heartbeat left.
        for left_us in (5_000..=7_980).step_by(10) {
            let left = Duration::from_micros(left_us);
            let e = kernel_expires(left, margin).expect("a lease");
            // Two jiffies: valid through the next tick, so a timer-driven
            // retransmission at that tick leaves before the next refresh.
            assert!(jiffies(e) >= 2, "left {left:?}: expires {e:?}");
            // Gone before call + n jiffies <= until + margin.
            assert!(
                CALL_DELAY + JIFFY * jiffies(e) as u32 <= left + margin,
                "left {left:?}: expires {e:?}"
            );
        }
    }

    #[test]
    fn the_kernel_never_keeps_a_lease_past_the_margin() {
        for margin_ms in [0u64, 1, 4, 10] {
            let margin = Duration::from_millis(margin_ms);
            for left_us in (0..=40_000).step_by(7) {
                let left = Duration::from_micros(left_us);
                match kernel_expires(left, margin) {
                    None => assert!(left + margin < CALL_DELAY + JIFFY),
                    Some(e) => {
                        assert_eq!(e.as_nanos() % JIFFY.as_nanos(), 0, "whole jiffies");
                        assert!(CALL_DELAY + JIFFY * jiffies(e) as u32 <= left + margin);
                        // And as long as that allows: one jiffy more would not fit.
                        assert!(CALL_DELAY + JIFFY * (jiffies(e) as u32 + 1) > left + margin);
                    }
                }
            }
        }
    }
}
