//! The failovers under way, per service address: the backup's
//! [`Takeover`] of each address it fronted and the primary's [`Claim`] of
//! each address whose backup failed. The node's loop hands each failover
//! action of a machine here; this finds the takeover or claim it belongs
//! to and runs the step (the steps themselves are in [`crate::takeover`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use anyhow::{anyhow, Result};
use coral_core::{Action, Iface, Lease, VipMachine};

use crate::takeover::{Claim, Takeover, TakeoverCtx};

/// Takeovers and claims under way.
#[derive(Default)]
pub struct Failovers {
    /// Takeovers under way (fronted addresses), between step 1 and step 6.
    takeovers: HashMap<Ipv4Addr, Takeover>,
    /// Claims under way (primary addresses), between `GoSimplex` and ARP.
    claims: HashMap<Ipv4Addr, Claim>,
}

impl Failovers {
    /// The backup's steps (docs/DESIGN.md 5), one per action; `port` is the
    /// address's service port.
    pub async fn take_over(&mut self, ctx: &TakeoverCtx, action: Action, port: u16) -> Result<()> {
        if let Action::SnapshotAndStopAckingLog { vip } = action {
            let t = Takeover::stop(ctx, SocketAddrV4::new(vip, port)).await?;
            self.takeovers.insert(vip, t);
            return Ok(());
        }
        // Actions of no takeover under way (a join's, say) are not ours.
        let Some(vip) = action.vip() else {
            return Ok(());
        };
        let Some(t) = self.takeovers.get_mut(&vip) else {
            return Ok(());
        };
        match action {
            Action::BuildRepairedSockets { .. } => t.rebuild(ctx).await?,
            Action::SetLease {
                lease: Lease::Permanent,
                ..
            } => t.lease(ctx)?,
            Action::AddVip {
                iface: Iface::Lan, ..
            } => t.add_address(ctx).await?,
            Action::InjectLateFrames { .. } => t.reinject(ctx).await?,
            Action::FlushLoggedReplies { .. } => t.hand_over(ctx)?,
            Action::SendGratuitousArp { .. } => {
                if let Some(t) = self.takeovers.remove(&vip) {
                    t.announce(ctx);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The primary's steps after its backup failed, one per action of
    /// `machine` (the address's machine: its next deadline is when it
    /// claims the address).
    pub async fn claim(
        &mut self,
        ctx: &TakeoverCtx,
        machine: &VipMachine,
        action: Action,
    ) -> Result<()> {
        match action {
            Action::SetLease { vip, lease } => match lease {
                Lease::Permanent => ctx.leases.make_permanent(vip)?,
                Lease::Refreshed { .. } => ctx.leases.start_refreshed(vip)?,
            },
            Action::GoSimplex { vip } => {
                let now = ctx.clock.now();
                let wait = machine.next_deadline().map_or(0, |d| d.since_ns(now));
                self.claims.insert(vip, Claim::go_simplex(ctx, vip, wait));
            }
            Action::AddVip {
                vip,
                iface: Iface::Lan,
            } => self.claim_of(vip)?.add_address(ctx).await?,
            Action::RemoveVip {
                vip,
                iface: Iface::Loopback,
            } => self.claim_of(vip)?.remove_loopback(ctx).await?,
            Action::SendGratuitousArp { vip } => self
                .claims
                .remove(&vip)
                .ok_or_else(|| anyhow!("no claim of {vip}"))?
                .announce(ctx),
            // A join's actions are carried out before they get here.
            _ => {}
        }
        Ok(())
    }

    /// Every takeover under way, taken out (a fenced node closes their
    /// rebuilt sockets silently).
    pub fn abandon(&mut self) -> Vec<Takeover> {
        self.takeovers.drain().map(|(_, t)| t).collect()
    }

    fn claim_of(&mut self, vip: Ipv4Addr) -> Result<&mut Claim> {
        self.claims
            .get_mut(&vip)
            .ok_or_else(|| anyhow!("no claim of {vip}"))
    }
}
