//! The node: one loop that feeds inputs to the core's machines and carries
//! out the actions they hand back (the shape of quinn's `ConnectionDriver`
//! around quinn-proto). It decides nothing itself.
//!
//! Inputs: heartbeat events (detector, the peer's per-address status, lease
//! lapses),
//! witness replies, the one timer armed from the machines' next deadline,
//! a counters tick, and SIGTERM/SIGINT. Each service address has a
//! [`VipMachine`]; on a detected failure every machine gets `PeerFailed`
//! and hands out its steps in order: the backup's takeover
//! ([`Takeover`], docs/DESIGN.md section 5 steps 1-7) or the primary's
//! claim of the address its backup fronted ([`Claim`]). Without a witness
//! the node answers each `AskWitness` with an immediate grant: the same
//! steps, none waited for (see [`VipMachine::without_witness`]).
//!
//! A refusal, or a higher epoch in a peer heartbeat, makes a machine hand
//! out `Fence`: [`crate::takeover::fence_and_exit`] drops every connection silently,
//! revokes the leases, removes the addresses, stops front, log and
//! heartbeats, records `fenced` and exits with status 3, leaving the nft
//! table (a zombie kernel stays silent).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use coral_core::{
    Action, DetectorEvent, Iface, Input, JoinAction, Lease, NodeId, VipStatus, WitnessMsg,
};

use crate::clock::unix_ns;
use crate::config::{Config, ServiceRole};
use crate::io::front::{Command, FrontEvent};
use crate::io::heartbeat::{HeartbeatCmd, HeartbeatEvent, HeartbeatHandle};
use crate::io::join::JoinerInput;
use crate::io::logchan::LogServerStats;
use crate::io::nft;
use crate::joining::{JoinEnd, Joining};
use crate::reintegration::{node_view, Joins};
use crate::takeover::{Claim, Takeover, TakeoverCtx};
use crate::wiring::{self, Inputs, WitnessClient};

pub use crate::wiring::START_EPOCH;

pub use crate::takeover::FENCED_EXIT;

/// Run the node until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<()> {
    let (name, me) = (cfg.name.clone(), NodeId(cfg.node_id));
    let w = wiring::start(cfg).await?;
    serve(&name, me, w, None).await
}

/// Run a new server that joins the simplex node at `to` (its JOIN
/// endpoint), then serves as its backup until SIGTERM or SIGINT. A refused
/// or rolled-back join stops it with an error.
pub async fn join(cfg: Config, to: SocketAddrV4) -> Result<()> {
    let (name, me) = (cfg.name.clone(), NodeId(cfg.node_id));
    let (w, joining) = wiring::start_joining(cfg, to).await?;
    serve(&name, me, w, Some(joining)).await
}

async fn serve(name: &str, me: NodeId, w: wiring::Wired, joining: Option<Joining>) -> Result<()> {
    let mut node = Node {
        me,
        ctx: w.ctx,
        machines: w.machines,
        witness: w.witness,
        hb: w.hb,
        log_stats: w.log_stats,
        vips: w.vips,
        primaries: w.primaries.iter().map(|s| s.vip).collect(),
        takeovers: HashMap::new(),
        claims: HashMap::new(),
        joins: w.joins,
        joining,
        failed: None,
        reported: Vec::new(),
    };
    match node.joining {
        Some(_) => println!("coral node {name} joining"),
        None => println!("coral node {name} ready"),
    }
    node.run(w.inputs).await
}

/// Everything a running node holds.
struct Node {
    me: NodeId,
    ctx: TakeoverCtx,
    /// One machine per service address, with the role it started in and
    /// the service port.
    machines: Vec<(coral_core::VipMachine, ServiceRole, u16)>,
    witness: Option<WitnessClient>,
    hb: HeartbeatHandle,
    log_stats: Arc<LogServerStats>,
    vips: Vec<Ipv4Addr>,
    primaries: Vec<Ipv4Addr>,
    /// Takeovers under way (fronted addresses), between step 1 and step 6.
    takeovers: HashMap<Ipv4Addr, Takeover>,
    /// Claims under way (primary addresses), between `GoSimplex` and ARP.
    claims: HashMap<Ipv4Addr, Claim>,
    /// New servers joining this node once it is simplex (docs/DESIGN.md 6).
    joins: Joins,
    /// This node's own join, while it is a new server joining a simplex
    /// node.
    joining: Option<Joining>,
    /// Why the node must stop (its join failed).
    failed: Option<String>,
    /// The status our heartbeats report (the machines', as last sent).
    reported: Vec<VipStatus>,
}

impl Node {
    /// The loop: one input at a time, then the machines' actions.
    async fn run(&mut self, mut inputs: Inputs) -> Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_counters = String::new();
        loop {
            // The one timer: the earliest deadline any machine handed out.
            let now = self.ctx.clock.now();
            let wait = self
                .machines
                .iter()
                .filter_map(|(m, _, _)| m.next_deadline())
                .chain(self.joins.next_deadline())
                .chain(self.joining.as_ref().and_then(|j| j.next_deadline()))
                .min()
                .map(|d| Duration::from_nanos(d.since_ns(now)))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = tick.tick() => {
                    // Counters change rarely once idle; write them when they do.
                    let c = self.counters();
                    if c != last_counters {
                        self.ctx.events.record("counters", &c);
                        last_counters = c;
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                Some(m) = inputs.witness.recv() => self.on_witness(m),
                Some(j) = self.joins.recv() => {
                    let view = node_view(self.machines.iter().map(|(m, _, _)| (m.mode().tag(), m.epoch())));
                    self.joins.on_input(self.ctx.clock.now(), j, view);
                }
                Some(j) = joiner_input(&mut self.joining) => {
                    if let Some(joining) = &mut self.joining {
                        joining.on_input(j);
                    }
                }
                Some(e) = inputs.front.recv() => self.on_front(e),
                ev = inputs.heartbeat.recv() => match ev {
                    Some(ev) => self.on_heartbeat(ev),
                    None => break,
                },
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
            self.drive().await;
            if self.failed.is_some() {
                break;
            }
        }
        self.ctx.events.record("counters", &self.counters());
        let why = self.failed.take();
        self.ctx
            .events
            .record("stop", why.as_deref().unwrap_or("signal"));
        self.shutdown().await;
        why.map_or(Ok(()), |w| Err(anyhow!(w)))
    }

    fn feed(&mut self, vip: Option<Ipv4Addr>, input: Input) {
        let now = self.ctx.clock.now();
        for (m, _, _) in &mut self.machines {
            if vip.is_none_or(|v| v == m.vip()) {
                m.handle(now, input);
            }
        }
    }

    fn on_heartbeat(&mut self, ev: HeartbeatEvent) {
        match ev {
            HeartbeatEvent::Detector(d) => self.on_detector(d),
            HeartbeatEvent::PeerStatus(v) => self.on_peer_status(&v),
            HeartbeatEvent::LeaseLapsed { at } => {
                let late_ms = self.ctx.clock.now().since_ns(at) as f64 / 1e6;
                self.ctx
                    .events
                    .record("lease-lapsed", &format!("late_ms={late_ms:.3}"));
                tracing::warn!(late_ms, "lease lapsed");
            }
        }
    }

    fn on_detector(&mut self, ev: DetectorEvent) {
        let events = &self.ctx.events;
        match ev {
            DetectorEvent::PeerFailed {
                ever_heard,
                last_heard,
            } => {
                let silent_ms = self.ctx.clock.now().since_ms(last_heard);
                events.record_at(
                    unix_ns(),
                    "peer-failed",
                    &format!("ever_heard={ever_heard} silent_ms={silent_ms}"),
                );
                tracing::warn!(silent_ms, "peer failed");
                // A join in progress is rolled back (its machines ignore
                // the detection in `Joining`; the join's owner decides).
                self.joins.on_peer_failed();
                if let Some(j) = &mut self.joining {
                    j.on_peer_failed();
                }
                self.feed(None, Input::PeerFailed { last_heard });
            }
            DetectorEvent::PeerUp { epoch } => {
                events.record("peer-up", &format!("epoch={}", epoch.0))
            }
            other => events.record("detector", &format!("{other:?}")),
        }
    }

    /// A reply from the witness.
    fn on_witness(&mut self, m: WitnessMsg) {
        let Some(w) = self.witness.as_mut() else {
            return;
        };
        if let Some((vip, input)) = w.on_reply(m, self.me, &self.ctx.events) {
            let epoch = match input {
                Input::GrantReceived { epoch } | Input::GrantRefused { epoch, .. } => Some(epoch),
                _ => None,
            };
            if epoch.is_some_and(|e| self.joins.awaits_grant(vip, e)) {
                self.joins.on_witness(self.ctx.clock.now(), vip, input);
            } else {
                self.feed(Some(vip), input);
            }
        }
    }

    /// Something the front's data path reported.
    fn on_front(&mut self, e: FrontEvent) {
        let ctx = &self.ctx;
        match e {
            FrontEvent::Conn(t, c) => ctx.events.record("conn", &format!("{t} {c:?}")),
            FrontEvent::Failed(why) => ctx.events.record("front-failed", &why),
            FrontEvent::Restorable(tuple, state) => {
                crate::takeover::restore_late(ctx, tuple, state)
            }
        }
    }

    /// The peer's heartbeat reported its per-address epochs.
    fn on_peer_status(&mut self, v: &[VipStatus]) {
        for st in v {
            self.feed(Some(st.vip), Input::EpochSeen { epoch: st.epoch });
        }
    }

    /// Run every machine's due actions, in order; then report what the
    /// machines say in our heartbeats.
    async fn drive(&mut self) {
        loop {
            let now = self.ctx.clock.now();
            if let Some(a) = self.joins.poll(now, &self.ctx.events) {
                self.on_join_action(a).await;
                continue;
            }
            if let Some(a) = self
                .joining
                .as_mut()
                .and_then(|j| j.poll(now, &self.ctx.events))
            {
                self.on_join_action(a).await;
                continue;
            }
            let next = self
                .machines
                .iter_mut()
                .enumerate()
                .find_map(|(i, (m, _, _))| m.poll(now).map(|a| (i, a)));
            let Some((i, action)) = next else { break };
            if let Err(e) = self.act(i, action).await {
                self.ctx
                    .events
                    .record("action-error", &format!("{action:?}: {e:#}"));
                tracing::error!(?action, "{e:#}");
            }
        }
        self.end_of_join();
        let st: Vec<VipStatus> = self.machines.iter().map(|(m, _, _)| m.status()).collect();
        if st != self.reported {
            self.hb.command(HeartbeatCmd::Status(st.clone()));
            self.reported = st;
        }
    }

    /// This node's own join ended: joined (the node is the backup from now
    /// on, its actions take the ordinary paths) or failed (the node stops).
    fn end_of_join(&mut self) {
        let Some(end) = self.joining.as_ref().and_then(|j| j.end()) else {
            return;
        };
        if let Some(j) = self.joining.take() {
            match end {
                JoinEnd::Joined => j.record_joined(&self.ctx.events),
                JoinEnd::Failed(why) => self.failed = Some(why),
            }
        }
    }

    /// A join asks the witness or gives a machine an input.
    async fn on_join_action(&mut self, a: JoinAction) {
        match a {
            JoinAction::Machine { vip, input } => self.feed(Some(vip), input),
            JoinAction::AskWitness { vip, epoch } => match &mut self.witness {
                Some(w) => w.ask(&self.ctx.events, vip, self.me, epoch).await,
                None => self.joins.grant_now(self.ctx.clock.now(), vip, epoch),
            },
            _ => {}
        }
    }

    /// Carry out one action of machine `i`.
    async fn act(&mut self, i: usize, action: Action) -> Result<()> {
        let st: Vec<VipStatus> = self.machines.iter().map(|(m, _, _)| m.status()).collect();
        if let Some(j) = &mut self.joining {
            if let Some(r) = j.act(&self.ctx, &mut self.hb, st.clone(), action).await {
                return r;
            }
        }
        if let Some(r) = self
            .joins
            .act(&mut self.ctx, &mut self.hb, st, action)
            .await
        {
            if let Action::CloseSimplexConnectionsAfterNextResponse { .. } = action {
                // Joined: this node is the address's primary from now on.
                self.machines[i].1 = ServiceRole::Primary;
            }
            return r;
        }
        let (origin, port) = (self.machines[i].1, self.machines[i].2);
        let ctx = &self.ctx;
        match (origin, action) {
            (_, Action::ModeChanged { vip, from, to }) => {
                ctx.events
                    .record("mode", &format!("vip={vip} from={from:?} to={to:?}"));
            }
            (_, Action::StopHeartbeats) => {
                // No lease is extended from now on except by a grant.
                ctx.leases.stop_refreshing();
                self.hb.command(HeartbeatCmd::StopSending);
            }
            (_, Action::AskWitness { vip, node, epoch }) => match &mut self.witness {
                Some(w) => w.ask(&ctx.events, vip, node, epoch).await,
                // No witness: the grant arrives at once.
                None => self.machines[i]
                    .0
                    .handle(ctx.clock.now(), Input::GrantReceived { epoch }),
            },
            (_, Action::Fence { vip }) => self.fence_and_exit(vip).await,
            (ServiceRole::Backup, action) => self.take_over(action, port).await?,
            (ServiceRole::Primary, action) => self.claim(action).await?,
        }
        Ok(())
    }

    /// The backup's steps (docs/DESIGN.md 5), one per action.
    async fn take_over(&mut self, action: Action, port: u16) -> Result<()> {
        let ctx = &self.ctx;
        if let Action::SnapshotAndStopAckingLog { vip } = action {
            let t = Takeover::stop(ctx, SocketAddrV4::new(vip, port)).await?;
            self.takeovers.insert(vip, t);
            return Ok(());
        }
        // Reintegration (joins) is not wired yet: its actions carry no vip
        // of a takeover under way and are ignored here.
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

    /// The primary's steps after its backup failed, one per action.
    async fn claim(&mut self, action: Action) -> Result<()> {
        let ctx = &self.ctx;
        match action {
            Action::SetLease { vip, lease } => match lease {
                Lease::Permanent => ctx.leases.make_permanent(vip)?,
                Lease::Refreshed { .. } => ctx.leases.start_refreshed(vip)?,
            },
            Action::GoSimplex { vip } => {
                let now = ctx.clock.now();
                let wait = self
                    .machines
                    .iter()
                    .find(|(m, _, _)| m.vip() == vip)
                    .and_then(|(m, _, _)| m.next_deadline())
                    .map_or(0, |d| d.since_ns(now));
                self.claims.insert(vip, Claim::go_simplex(ctx, vip, wait));
            }
            Action::AddVip {
                vip,
                iface: Iface::Lan,
            } => claim_of(&mut self.claims, vip)?.add_address(ctx).await?,
            Action::RemoveVip {
                vip,
                iface: Iface::Loopback,
            } => {
                claim_of(&mut self.claims, vip)?
                    .remove_loopback(ctx)
                    .await?
            }
            Action::SendGratuitousArp { vip } => self
                .claims
                .remove(&vip)
                .ok_or_else(|| anyhow!("no claim of {vip}"))?
                .announce(ctx),
            // Reintegration (joins) is not wired yet.
            _ => {}
        }
        Ok(())
    }

    fn counters(&self) -> String {
        crate::events::counters(
            &self.hb,
            &self.ctx.leases,
            &self.log_stats,
            self.ctx.front.as_ref(),
        )
    }

    /// Deposed (a machine handed out `Fence`): see [`crate::takeover::fence_and_exit`].
    async fn fence_and_exit(&mut self, vip: Ipv4Addr) -> ! {
        let reason = self
            .machines
            .iter()
            .find(|(m, _, _)| m.vip() == vip)
            .map(|(m, _, _)| format!("{:?}", m.mode()))
            .unwrap_or_default();
        let pending: Vec<Takeover> = self.takeovers.drain().map(|(_, t)| t).collect();
        crate::takeover::fence_and_exit(&self.ctx, &self.hb, &self.vips, pending, vip, &reason)
            .await
    }

    async fn shutdown(&self) {
        let ctx = &self.ctx;
        if let Some(f) = &ctx.front {
            f.send(Command::StopAcking);
            f.retire();
        }
        let _ = ctx.leases.run(&nft::remove_table(ctx.leases.fence()));
        for vip in &self.primaries {
            let _ = ctx.nc.del_addr(ctx.lo.index, *vip, 32).await;
        }
    }
}

/// The next input of this node's own join (never, when it is not joining).
async fn joiner_input(j: &mut Option<Joining>) -> Option<JoinerInput> {
    match j {
        Some(j) => j.recv().await,
        None => std::future::pending().await,
    }
}

fn claim_of(claims: &mut HashMap<Ipv4Addr, Claim>, vip: Ipv4Addr) -> Result<&mut Claim> {
    claims
        .get_mut(&vip)
        .ok_or_else(|| anyhow!("no claim of {vip}"))
}
