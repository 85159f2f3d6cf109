//! How the node stops: deposed (a machine handed out `Fence`: the node
//! fences itself and exits, [`crate::takeover::fence_and_exit`]) or asked
//! to (SIGTERM or SIGINT, or its own join failed: [`shut_down`]).

use std::net::Ipv4Addr;

use crate::failover::Failovers;
use crate::io::front::Command;
use crate::io::heartbeat::HeartbeatHandle;
use crate::io::nft;
use crate::machines::Machines;
use crate::takeover::{fence_and_exit, TakeoverCtx};

/// Deposed: fence every address in `vips` because `vip`'s machine handed
/// out `Fence` (its mode is the reason recorded), closing the rebuilt
/// sockets of every takeover under way silently; never returns.
pub async fn fence(
    ctx: &TakeoverCtx,
    hb: &HeartbeatHandle,
    vips: &[Ipv4Addr],
    machines: &Machines,
    failovers: &mut Failovers,
    vip: Ipv4Addr,
) -> ! {
    let reason = machines.mode_name(vip);
    let pending = failovers.abandon();
    fence_and_exit(ctx, hb, vips, pending, vip, &reason).await
}

/// Asked to stop (`why`, or a signal): record `stop`, stop the front
/// acknowledging and retire it, remove the nft table (fence and leases),
/// and take the addresses this node is primary for (`primaries`) off
/// loopback.
pub async fn shut_down(ctx: &TakeoverCtx, primaries: &[Ipv4Addr], why: Option<&str>) {
    ctx.events.record("stop", why.unwrap_or("signal"));
    if let Some(f) = &ctx.front {
        f.send(Command::StopAcking);
        f.retire();
    }
    let _ = ctx.leases.run(&nft::remove_table(ctx.leases.fence()));
    for vip in primaries {
        let _ = ctx.nc.del_addr(ctx.lo.index, *vip, 32).await;
    }
}
